"""Run by test_distributed.py (beside it) under ``torchrun --nproc_per_node 2``: trains the tiny model with
every method in a real 2-process gloo group, then evaluates a finished run with the group, and
writes what each rank saw to ``<out>/rank<r>.json``. Not a test module itself (no ``test_`` prefix)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch


def main(out: Path, methods: list[str], eval_run: Path, suite: str) -> None:
    from robench import distributed
    from robench.evaluation import evaluate_run, make_context
    from robench.train import TrainConfig, train

    st = distributed.state("cpu")
    report: dict = {"rank": st.process_index, "world_size": st.num_processes,
                    "distributed_type": str(st.distributed_type), "backend": st.backend,
                    "group_initialized": torch.distributed.is_initialized(), "methods": {}}
    for method in methods:
        run = train(TrainConfig(model="tiny-bert", method=method, limit=32, epochs=2, batch_size=8, device="cpu",
                                out=str(out / "runs" / method)))
        record = json.loads((run / "run.json").read_text())
        # what this rank holds right now must be what the run directory holds
        report["methods"][method] = {"run_hash": record["training"]["replica_weights_sha256"],
                                     "world_size": record["training"]["world_size"],
                                     "per_process_batch_size": record["training"]["per_process_batch_size"],
                                     "gathered": distributed.gather_objects(record["training"]["replica_weights_sha256"])}

    # killed mid-epoch on every rank (a lost job), then the same command again: resumes to the same weights
    from robench.methods import METHODS

    ram = METHODS.get("ram")
    step, calls = ram.training_step, []

    def dies_at_step_3(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return step(self, *args)

    cfg = TrainConfig(model="tiny-bert", method="ram", limit=32, epochs=2, batch_size=8, device="cpu",
                      checkpoint_steps=1, out=str(out / "runs" / "ram-resumed"))
    ram.training_step = dies_at_step_3
    try:
        train(cfg)
        report["killed"] = False
    except KeyboardInterrupt:
        report["killed"] = True
    finally:
        ram.training_step = step
    resumed = json.loads((train(cfg) / "run.json").read_text())["training"]
    report["resumed"] = {"points": resumed["resumed"], "hash": resumed["replica_weights_sha256"]}

    # drift must be caught: RAM's mask drawn from a different seed on each rank
    import robench.methods.selective as selective

    shared = selective.distributed.broadcast_object
    selective.distributed.broadcast_object = lambda obj, src=0: obj + distributed.rank()
    try:
        train(TrainConfig(model="tiny-bert", method="ram", limit=32, epochs=1, batch_size=8, device="cpu",
                          out=str(out / "runs" / "ram-drift")))
        report["drift"] = "not detected"
    except RuntimeError as exc:
        report["drift"] = str(exc)
    finally:
        selective.distributed.broadcast_object = shared

    import robench.predict as predict

    seen: list[int] = []
    run_batches = predict._run_batches

    def counting(model, tokenizer, items, order, batch_ids, **kw):
        out = run_batches(model, tokenizer, items, order, batch_ids, **kw)
        seen.extend(int(i) for b in out for i in order[b * kw["batch_size"]:(b + 1) * kw["batch_size"]])
        return out

    predict._run_batches = counting
    # small batches, so that the sets (64 examples here) span several batches to deal out
    written = evaluate_run(eval_run, suite, force=True, ctx=make_context(eval_run, "cpu", batch_size=16))
    predict._run_batches = run_batches
    report["predicted_examples"] = len(seen)
    report["eval"] = {name: json.loads(Path(p).read_text())["metrics"] for name, p in written.items()}
    distributed.barrier()
    (out / f"rank{st.process_index}.json").write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2].split(","), Path(sys.argv[3]), sys.argv[4])
