"""Distributed training and evaluation in a real 2-process gloo group on CPU.

One ``torchrun --nproc_per_node 2`` launch (distributed_worker.py, beside this file) trains the tiny model
with every method, checks that a rank-dependent mask is caught, and evaluates a finished run;
this test compares what each rank reports with the run directories and with a single-process
evaluation of the same weights.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from robench.evaluators import suites
from robench.methods import METHODS

SUITE = ",".join(suites()["quick"])  # every quick evaluator; the attacks' group run: test_distributed_attack.py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, tiny_run):
    out = tmp_path_factory.mktemp("dist")
    eval_run = out / "eval-run"
    shutil.copytree(tiny_run, eval_run, ignore=shutil.ignore_patterns("cache", "results"))  # predict afresh
    env = {**os.environ, "ROBENCH_PROGRESS": "0", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           str(Path(__file__).with_name("distributed_worker.py")), str(out), ",".join(METHODS.names()),
           str(eval_run), SUITE]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def test_two_processes_form_a_gloo_group(two_ranks):
    _, reports = two_ranks
    assert [r["rank"] for r in reports] == [0, 1]
    for r in reports:
        assert r["world_size"] == 2 and r["group_initialized"] and r["backend"] == "gloo"
        assert r["distributed_type"].endswith("MULTI_CPU")


@pytest.mark.parametrize("method", METHODS.names())
def test_every_method_ends_with_identical_replicas_and_writes_rank0s_weights(two_ranks, method):
    from safetensors.torch import load_file

    from robench.train import state_hash

    out, reports = two_ranks
    a, b = (r["methods"][method] for r in reports)
    assert a["gathered"] == b["gathered"] and len(set(a["gathered"])) == 1  # both ranks hold the same weights
    assert a["world_size"] == 2 and a["per_process_batch_size"] == 4  # the global batch 8, split over 2
    saved = load_file(str(out / "runs" / method / "model.safetensors"))
    assert state_hash(saved) == a["gathered"][0]  # the run on disk is what the ranks held
    run = json.loads((out / "runs" / method / "run.json").read_text())
    assert run["training"]["world_size"] == 2 and run["training"]["distributed_type"] == "MULTI_CPU"


def test_a_killed_group_resumes_to_the_same_weights(two_ranks):
    _, reports = two_ranks
    for r in reports:
        assert r["killed"]
        assert [p["global_step"] for p in r["resumed"]["points"]] == [2]  # the last checkpoint before the kill
        assert r["resumed"]["hash"] == r["methods"]["ram"]["run_hash"]  # as the uninterrupted 2-process run


def test_drifting_replicas_are_an_error_and_nothing_is_written(two_ranks):
    out, reports = two_ranks
    for r in reports:
        assert "ended with different weights" in r["drift"]
    assert not (out / "runs" / "ram-drift").exists()


def test_evaluation_under_two_processes_equals_one_process(two_ranks, tiny_run, monkeypatch):
    import robench.predict as predict
    from robench.evaluation import evaluate_run, make_context

    predicted = []
    run_batches = predict._run_batches

    def counting(model, tokenizer, items, order, batch_ids, **kw):
        out = run_batches(model, tokenizer, items, order, batch_ids, **kw)
        predicted.extend(len(order[b * kw["batch_size"]:(b + 1) * kw["batch_size"]]) for b in out)
        return out

    shutil.rmtree(tiny_run / "cache", ignore_errors=True)  # predict afresh, as the group did
    monkeypatch.setattr(predict, "_run_batches", counting)
    single = {name: json.loads(Path(p).read_text())["metrics"]
              for name, p in evaluate_run(tiny_run, SUITE, force=True, ctx=make_context(tiny_run, "cpu", batch_size=16)).items()}
    # each example predicted exactly once over the two ranks, and both ranks took a share
    shares = [r["predicted_examples"] for r in two_ranks[1]]
    assert sum(shares) == sum(predicted) and min(shares) > 0
    for r in two_ranks[1]:
        assert set(r["eval"]) == set(single)
        for name, metrics in single.items():
            assert metrics.keys() == r["eval"][name].keys()
            for key, value in metrics.items():
                if isinstance(value, float):
                    assert r["eval"][name][key] == pytest.approx(value, abs=1e-5), (name, key)
                else:
                    assert r["eval"][name][key] == value, (name, key)


def test_a_launch_that_runs_one_process_instead_of_two_is_refused(tmp_path):
    """``accelerate launch --cpu --num_processes 2`` starts ONE process: one clear line, exit 2, no run."""
    launcher = Path(sys.executable).with_name("accelerate")
    env = {**os.environ, "ROBENCH_PROGRESS": "0"}
    cmd = [str(launcher), "launch", "--cpu", "--num_processes", "2", "-m", "robench.cli", "train", "--model",
           "tiny-bert", "--limit", "16", "--epochs", "1", "--out", str(tmp_path / "run")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "asked for 2 processes but this one runs alone" in lines[0], proc.stderr[-2000:]
    assert "torchrun --nproc_per_node N" in lines[0]
    assert not (tmp_path / "run").exists()


def test_shards_are_contiguous_disjoint_and_cover():
    from robench.distributed import shard

    items = list(range(11))
    for count in (1, 2, 3, 4, 11, 12):
        parts = [shard(items, i, count) for i in range(count)]
        assert sum(parts, []) == items  # in order, each exactly once
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ValueError):
        shard(items, 2, 2)
