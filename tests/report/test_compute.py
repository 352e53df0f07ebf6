"""The board's own compute cost (compute.csv and the "Compute" line): a pure function of the result files."""

from __future__ import annotations

import json

import pandas as pd
from report_helpers import bits, write_result

from robench.report import load_results
from robench.report.board import compute_table
from robench.report.write import write_leaderboard

# per run (method, seed): training wall seconds; each run has an id and a shift result
TRAIN = {("vanilla", 0): 600.0, ("vanilla", 1): 660.0, ("ram", 0): 1200.0, ("ram", 1): 1320.0}
EVAL = {"id": 30.0, "shift": 90.0}  # evaluator wall seconds, the same for every run


def write_runs(root, train=TRAIN, wall=EVAL):
    for (method, seed), train_s in train.items():
        correct = bits(0.7 if method == "vanilla" else 0.8, 50, seed)
        acc = correct.count("1") / 50
        write_result(root, method, seed, "id", {"accuracy": acc, "n": 50}, {"correct": correct},
                     wall_time_s=wall["id"], train_wall=train_s)
        sets = {"amazon": bits(acc - 0.1, 50, seed + 1), "tweets": bits(acc - 0.1, 50, seed + 2)}
        accs = {k: v.count("1") / 50 for k, v in sets.items()}
        mean = sum(accs.values()) / 2
        write_result(root, method, seed, "shift", {"mean_accuracy": mean, "drop": acc - mean, "accuracy": accs},
                     {"correct": sets}, wall_time_s=wall["shift"], train_wall=train_s)


def row(table, stage, evaluator=""):
    return table[(table["stage"] == stage) & (table["evaluator"] == evaluator)].iloc[0]


def test_training_time_counts_each_run_once(tmp_path):
    """Four runs with two result files each: training is the sum over the 4 runs, not the 8 files."""
    write_runs(tmp_path)
    table = compute_table(load_results(tmp_path))
    train = row(table, "training")
    assert (train["runs"], train["results"], train["lacking"]) == (4, 8, 0)
    assert train["minutes"] == sum(TRAIN.values()) / 60 == 63.0  # once per file would be 126.0
    _board, written = write_leaderboard(tmp_path, tmp_path / "out", plots=False, n_boot=50)
    markdown = written["markdown"].read_text()
    assert "4 runs; training 63.0 min" in markdown
    assert "evaluation 8.0 min over 8 results (id 2.0 min; shift 6.0 min)" in markdown
    csv = pd.read_csv(written["compute_csv"], keep_default_na=False)
    assert list(csv["evaluator"]) == ["", "id", "shift", "all"]
    assert list(csv["minutes"]) == [63.0, 2.0, 6.0, 8.0]


def test_evaluator_minutes_are_sums_of_wall_times(tmp_path):
    """One result file's wall time +60 s: its evaluator and the total gain exactly 1.0 min, nothing else moves."""
    write_runs(tmp_path)
    before = compute_table(load_results(tmp_path))
    path = tmp_path / "sentiment" / "tiny" / "ram" / "seed1" / "results" / "shift.json"
    data = json.loads(path.read_text())
    data["wall_time_s"] += 60
    path.write_text(json.dumps(data))
    after = compute_table(load_results(tmp_path))
    gain = after["minutes"] - before["minutes"]
    assert list(after["evaluator"]) == ["", "id", "shift", "all"]
    assert list(gain) == [0.0, 0.0, 1.0, 1.0]
    assert row(after, "evaluation", "shift")["minutes"] == 7.0 and row(after, "evaluation", "all")["minutes"] == 9.0


def test_missing_wall_times_are_not_summed(tmp_path):
    """A result without wall_time_s, and result files written before they carried the training wall time:
    n/a with the count, never a sum over part of them."""
    runs = tmp_path / "runs"
    write_runs(runs)
    path = runs / "sentiment" / "tiny" / "vanilla" / "seed0" / "results" / "id.json"
    data = json.loads(path.read_text())
    del data["wall_time_s"]
    del data["run"]["train_wall_seconds"]
    path.write_text(json.dumps(data))
    # vanilla seed 0's shift result still carries its run's training time: the run is counted, from there
    table = compute_table(load_results(runs))
    assert row(table, "training")["minutes"] == 63.0
    assert row(table, "evaluation", "id")["lacking"] == 1 and pd.isna(row(table, "evaluation", "id")["minutes"])
    assert pd.isna(row(table, "evaluation", "all")["minutes"])
    assert row(table, "evaluation", "shift")["minutes"] == 6.0
    # result files from before robench recorded the training wall time: every run lacks it
    other = tmp_path / "old"
    write_runs(other, train={run: None for run in TRAIN})
    _board, written = write_leaderboard(other, tmp_path / "out-old", plots=False, n_boot=50)
    markdown = written["markdown"].read_text()
    assert "4 runs; training n/a (4 of 4 runs lack a wall time)" in markdown
    _board, written = write_leaderboard(runs, tmp_path / "out", plots=False, n_boot=50)
    markdown = written["markdown"].read_text()
    assert "evaluation n/a (1 of 8 results lack a wall time) over 8 results (id n/a (1 of 4 results lack a " \
           "wall time); shift 6.0 min)" in markdown
