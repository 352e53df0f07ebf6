"""Attacks shared by several processes: `torchrun --nproc_per_node 2 -m robench.cli eval --suite adversarial`
(gloo on CPU) gives the single-process result, example for example; each process resumes its own log."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from robench.attacks.runner import read_log

ADV = ["--suite", "adversarial", "--recipe", "deepwordbug", "--n", "6", "--seed", "1", "--device", "cpu"]
OPTIONS = {"adversarial": {"recipes": ["deepwordbug"], "n": 6, "seed": 1}}
LOG = "attack-deepwordbug-valid-valence-n6-seed1-qb1000.jsonl"


def _copy(run: Path, dest: Path) -> Path:
    """The run's weights and record, without anything an earlier test evaluated."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns("results", "artifacts"))
    return dest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(run: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    """``--`` ends torchrun's own options: without it argparse takes ``--run`` / ``--n`` for abbreviations of
    its ``--run-path`` / ``--nproc_per_node`` and stops."""
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun) if torchrun.exists() else sys.executable, *([] if torchrun.exists() else
           ["-m", "torch.distributed.run"]), "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "robench.cli", "--", "eval", "--run", str(run), *ADV]
    env = {**os.environ, "ROBENCH_PROGRESS": "0", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def _records(path: Path) -> tuple[dict, list[dict]]:
    header, records = read_log(path)
    return header, [{k: v for k, v in r.items() if k != "seconds"} for r in records]  # all but the timing


def _result(run: Path) -> dict:
    data = json.loads((run / "results" / "adversarial.json").read_text())
    for m in data["metrics"]["recipes"].values():
        m.pop("seconds_per_example")
    return {k: data[k] for k in ("metrics", "details", "settings", "artifacts", "data")}


def test_two_processes_give_the_single_process_result(tiny_run, tmp_path):
    import torch

    from robench.evaluation import evaluate_run

    sharded, single = _copy(tiny_run, tmp_path / "sharded"), _copy(tiny_run, tmp_path / "single")
    proc = _torchrun(sharded)
    assert proc.returncode == 0, proc.stderr[-3000:]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as under torchrun (OMP_NUM_THREADS=1)
    try:
        evaluate_run(single, "adversarial", device="cpu", options=OPTIONS)
    finally:
        torch.set_num_threads(threads)

    # one result, written once, equal to the single-process one (but for timings)
    assert sorted(p.name for p in (sharded / "results").iterdir()) == ["adversarial.json"]
    assert _result(sharded) == _result(single)
    # the whole-sample log the first process wrote equals the single-process log, header and records
    assert _records(sharded / "artifacts" / LOG) == _records(single / "artifacts" / LOG)
    # each process attacked a contiguous half into its own log, whose header names the shard
    _, whole = _records(single / "artifacts" / LOG)
    for rank in (0, 1):
        header, records = read_log(sharded / "artifacts" / LOG.replace(".jsonl", f".rank{rank}of2.jsonl"))
        assert header["shard"] == {"rank": rank, "world_size": 2, "of_n": 6}
        assert [r["index"] for r in records] == [r["index"] for r in whole[3 * rank:3 * rank + 3]]

    # a process resumes its own log: cut rank 1's log mid-record, run again, same result
    log1 = sharded / "artifacts" / LOG.replace(".jsonl", ".rank1of2.jsonl")
    lines = log1.read_text().splitlines(keepends=True)
    kept = "".join(lines[:2])  # header + 1 record
    log1.write_text(kept + lines[2][:20])
    (sharded / "results" / "adversarial.json").unlink()
    proc = _torchrun(sharded)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert log1.read_text().startswith(kept) and len(read_log(log1)[1]) == 3  # the first record was not redone
    assert _result(sharded) == _result(single)

    # a single process resumes from the whole log (nothing attacked again) and never reads a shard's log as one
    before = read_log(sharded / "artifacts" / LOG)[1]
    evaluate_run(sharded, "adversarial", device="cpu", force=True, options=OPTIONS)
    assert read_log(sharded / "artifacts" / LOG)[1] == before  # same timings: resumed, not recomputed
    shutil.copy(log1, sharded / "artifacts" / LOG)  # a shard's log where the whole one belongs
    evaluate_run(sharded, "adversarial", device="cpu", force=True, options=OPTIONS)
    assert (sharded / "artifacts" / (LOG + ".stale")).exists()  # set aside, the sample attacked afresh
    assert _result(sharded) == _result(single)


def test_eval_under_a_launch_that_is_not_a_group_is_refused(tiny_run, monkeypatch):
    """WORLD_SIZE=2 in the environment but the process is alone: evaluation refuses before any work."""
    from robench.errors import ConfigError
    from robench.evaluation import make_context

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr("accelerate.state.PartialState", lambda cpu=True: type(
        "Alone", (), {"num_processes": 1, "distributed_type": "NO", "process_index": 0})())
    with pytest.raises(ConfigError, match="asked for 2 processes but this one runs alone"):
        make_context(tiny_run, device="cpu")
