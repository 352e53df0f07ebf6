"""Step cost of every fine-tuning method relative to vanilla, on the same batches.

    python benchmarks/bench_methods.py                      # packaged MiniLM, batch 16
    python benchmarks/bench_methods.py --model tiny-bert --steps 5 --warmup 1

A step is what the trainer does per batch: ``training_step`` + ``after_backward`` + clipping +
``before_optimizer_step`` + AdamW step + ``after_optimizer_step``. The predicted ratio comes
from each method's pass count with a backward costing two forwards (B = 2F, so vanilla
1F+1B = 3F): R3F 2F+2B = 2 (one backward through both graphs), SMART/ALUM/RAM 3F+2B = 7/3
(SMART + teacher forward 8/3), FreeLB with adv_steps 2 (fairseq's count: 1 + 2 passes) 3F+3B = 3.
The ascent backward of SMART/ALUM/RAM goes only to delta (no weight gradients), so a measured
ratio a little under the prediction is expected. The regulariser-alive diagnostic adds one
forward every ``diag_every`` (10) steps; ``--diag-every 0`` times the methods without it.

RAM's mask work (importance accumulation in ``after_backward``, the per-epoch re-ranking and
sampling, the gradient multiply) is reported as a share of RAM's time over the timed steps
treated as one epoch (one re-sampling at its end); the one-off Fisher pass is timed apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import statistics
import time

import torch

from robench.methods import METHODS as METHOD_REGISTRY
from robench.methods import build_method
from robench.methods.selective import SelectiveTraining
from robench.models import load_model, load_tokenizer, resolve_device
from robench.tasks import TaskData, load_task

METHODS = ["vanilla", "r3f", "freelb", "alum", "smart", "ram"]


def predicted_ratio(passes: str) -> float:
    """Cost in forward units with B = 2F, over vanilla's 3F."""
    f = sum(int(n) for n in re.findall(r"(\d+)F", passes))
    b = sum(int(n) for n in re.findall(r"(\d+)B", passes))
    return (f + 2 * b) / 3.0


class Acc:
    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_batches(model_name: str, n: int, batch_size: int, max_length: int, device: torch.device):
    data = TaskData(load_task("sentiment", None, n * batch_size))
    train = data.get("train")
    tokenizer = load_tokenizer(model_name)
    batches = []
    for i in range(0, min(len(train), n * batch_size), batch_size):
        rows = train[i:i + batch_size]
        enc = tokenizer(rows["text"], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        enc["labels"] = torch.tensor(rows["label"])
        batches.append({k: v.to(device) for k, v in enc.items()})
    return batches


def run_method(name: str, args, batches, device) -> dict:
    model = load_model(args.model, num_labels=2, seed=0).to(device)
    model.train()
    fields = {f.name for f in dataclasses.fields(METHOD_REGISTRY.get(name).Config)}
    overrides = {"diag_every": str(args.diag_every)} if "diag_every" in fields else {}
    method = build_method(name, overrides)
    hooks = [method, *method.extra_hooks()]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    acc = Acc()
    sync(device)
    t0 = time.perf_counter()
    for hook in hooks:
        hook.setup(model, batches, acc)
    sync(device)
    setup_s = time.perf_counter() - t0
    sel = next((h for h in hooks if isinstance(h, SelectiveTraining)), None)
    if sel is not None:
        sel.seconds.update(accumulate=0.0, apply=0.0, resample=0.0)
        sel.steps = 0

    times = []
    for i in range(args.warmup + args.steps):
        batch = batches[i % len(batches)]
        sync(device)
        t0 = time.perf_counter()
        method.training_step(model, batch, acc)
        for hook in hooks:
            hook.after_backward(model)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for hook in hooks:
            hook.before_optimizer_step(model)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        for hook in hooks:
            hook.after_optimizer_step(model)
        sync(device)
        if i == args.warmup - 1 and sel is not None:  # count only the timed steps' mask work
            sel.seconds.update(accumulate=0.0, apply=0.0)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    out = {"name": name, "passes": method.passes, "step_s": statistics.median(times), "total_s": sum(times),
           "setup_s": setup_s}
    if sel is not None:
        t0 = time.perf_counter()
        for hook in hooks:
            hook.on_epoch_end(model, 1)
        sync(device)
        resample = time.perf_counter() - t0
        work = sel.seconds["accumulate"] + sel.seconds["apply"] + resample
        out.update(mask_share=work / (sum(times) + resample), per_step_mask_s=(sel.seconds["accumulate"]
                   + sel.seconds["apply"]) / max(len(times), 1), resample_s=resample,
                   fisher_s=setup_s, fisher_batches=len(batches), masked_entries=sel.masked_entries)
    del model, optimizer, method
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batches", type=int, default=8, help="distinct batches cycled through (and the Fisher pass)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    parser.add_argument("--diag-every", type=int, default=10,
                        help="regulariser-alive diagnostic: a dropout-only pass every N steps (0 = off)")
    parser.add_argument("--epoch-steps", type=int, default=75,
                        help="steps in a real epoch, to extrapolate the mask share (default task: 1200 / 16 = 75)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    batches = make_batches(args.model, args.batches, args.batch_size, args.max_length, device)
    names = [m.strip() for m in args.methods.split(",") if m.strip()]
    if "vanilla" not in names:
        names.insert(0, "vanilla")
    run_method("vanilla", argparse.Namespace(**{**vars(args), "steps": 1}), batches, device)  # process warm-up, discarded
    results = [run_method(name, args, batches, device) for name in names]
    base = next(r for r in results if r["name"] == "vanilla")["step_s"]

    print(f"model {args.model}, device {device}, batch {args.batch_size}, {len(batches)} batches, "
          f"{args.warmup} warm-up + {args.steps} timed steps each, torch threads {torch.get_num_threads()}; "
          "predicted ratio assumes B = 2F")
    print(f"{'method':<9} {'passes':<18} {'step ms':>9} {'measured':>9} {'predicted':>9}")
    for r in results:
        print(f"{r['name']:<9} {r['passes']:<18} {1000 * r['step_s']:>9.1f} {r['step_s'] / base:>9.2f} "
              f"{predicted_ratio(r['passes']):>9.2f}")
    for r in results:
        if "mask_share" in r:
            print(f"\n{r['name']} selective training over {r['masked_entries']:,} encoder entries:")
            print(f"  mask work per step (accumulate + apply): {1000 * r['per_step_mask_s']:.2f} ms")
            print(f"  re-rank + re-sample once per epoch:      {1000 * r['resample_s']:.1f} ms")
            print(f"  mask share of step time over the {args.steps}-step 'epoch': {100 * r['mask_share']:.2f}%")
            e = args.epoch_steps
            share = (r["per_step_mask_s"] * e + r["resample_s"]) / (r["step_s"] * e + r["resample_s"])
            print(f"  mask share over a {e}-step epoch (measured per-step and re-rank costs): {100 * share:.2f}%")
            print(f"  one-off Fisher pass: {r['fisher_s']:.2f} s over {r['fisher_batches']} batches "
                  f"({1000 * r['fisher_s'] / r['fisher_batches']:.1f} ms/batch, ranking included)")


if __name__ == "__main__":
    main()
