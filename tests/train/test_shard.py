"""`robench run --shard K/N`: N disjoint slices of the method x seed jobs cover the matrix once, and the
leaderboard over the shared runs folder equals the unsharded run's board."""

from __future__ import annotations

import random
import threading
import time

import pytest
from cli_helpers import run_cli

from robench.errors import ConfigError
from robench.matrix import parse_shard, run_benchmark, run_lock, shard_jobs

JOBS = [(m, sel, s) for m, sel in [("vanilla", False), ("r3f", False), ("r3f", True), ("ram", False), ("alum", False)]
        for s in (0, 1, 2)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 7, 20])
def test_shards_are_disjoint_cover_balanced_and_order_free(n):
    slices = [shard_jobs(JOBS, k, n) for k in range(1, n + 1)]
    flat = [j for part in slices for j in part]
    assert sorted(flat) == sorted(JOBS) and len(flat) == len(set(flat))  # every job exactly once
    assert max(map(len, slices)) - min(map(len, slices)) <= 1  # balanced
    for k, part in enumerate(slices, 1):
        assert shard_jobs(JOBS, k, n) == part  # deterministic
        assert part == [j for j in JOBS if j in part]  # the given order within a shard
        shuffled = random.Random(k).sample(JOBS, len(JOBS))  # methods / seeds listed in another order
        assert set(shard_jobs(shuffled, k, n)) == set(part)


def test_parse_shard():
    assert parse_shard(None) is None
    assert parse_shard("1/1") == (1, 1) and parse_shard(" 3 / 6 ") == (3, 6) and parse_shard((2, 2)) == (2, 2)
    for bad in ("0/6", "7/6", "1/0", "-1/3", "2-6", "a/b", "1/2/3", ""):
        with pytest.raises(ConfigError, match="bad --shard"):
            parse_shard(bad)


@pytest.mark.parametrize(("value", "fragment"), [
    ("0/6", "K counts from 1 to 6"), ("7/6", "K counts from 1 to 6"), ("1/0", "must be >= 1"),
    ("2-6", "give K/N with 1 <= K <= N"), ("x", "give K/N"),
])
def test_bad_shard_is_one_line_before_any_work(monkeypatch, capsys, tmp_path, value, fragment):
    code, _, err = run_cli(monkeypatch, capsys, "run", "--shard", value, "--model", "tiny-bert", "--methods", "vanilla",
                           "--seeds", "0", "--suite", "id", "--runs-dir", str(tmp_path / "runs"),
                           "--results-dir", str(tmp_path / "results"), "--device", "cpu")
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: bad --shard") and fragment in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "runs").exists() and not (tmp_path / "results").exists()


def test_run_lock_makes_a_second_process_wait(tmp_path):
    run_dir = tmp_path / "runs" / "t" / "m" / "vanilla" / "seed0"
    events: list[str] = []

    def second() -> None:
        with run_lock(run_dir):  # another open file description: flock blocks like another process would
            events.append("second")

    with run_lock(run_dir):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        events.append("first done")
    thread.join(10)
    assert events == ["first done", "second"]
    assert (run_dir.parent / "seed0.lock").exists() and not run_dir.exists()


def test_two_shards_merge_into_the_unsharded_board(tmp_path, monkeypatch, capsys):
    runs, results = tmp_path / "runs", tmp_path / "results"
    kwargs = dict(task="sentiment", methods="vanilla,r3f", seeds="0", suite="id", profile=None, model="tiny-bert",
                  runs_dir=runs, results_dir=results, limit=32, epochs=1, device="cpu", n_boot=100, plots=False)
    shards = [run_benchmark(**kwargs, shard=(k, 2)) for k in (1, 2)]
    assert [len(s.trained) for s in shards] == [1, 1] and set(shards[0].trained).isdisjoint(shards[1].trained)
    assert all(s.board is None and not s.leaderboard for s in shards) and not results.exists()  # no partial board
    common = shards[0].trained[0].parent.parent  # runs/<task>/<model>: holds every run of the matrix
    assert shards[0].merge_command == shards[1].merge_command == (
        f"robench leaderboard --results {common.as_posix()} --out {results.as_posix()}")
    assert f"merge them: {shards[0].merge_command}" in capsys.readouterr().err  # the progress console: stderr

    merged = tmp_path / "merged"
    code, out, err = run_cli(monkeypatch, capsys, "leaderboard", "--results", str(common), "--out", str(merged),
                             "--no-plots", "--bootstrap", "100")
    assert code == 0, err
    whole = run_benchmark(**kwargs)  # the unsharded command on the same folder: nothing left to do
    assert whole.trained == [] and whole.evaluated == [] and sorted(whole.skipped_train) == sorted(
        d for s in shards for d in s.trained)
    board = (results / "leaderboard.csv").read_text()
    assert "vanilla" in board and "r3f" in board
    assert (merged / "leaderboard.csv").read_text() == board
