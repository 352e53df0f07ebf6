"""The CLI's numeric options are checked at the edge: a value out of range is one line naming the option
and its limit, exit 2, before any work."""

from __future__ import annotations

import pytest
from cli_helpers import TINY, assert_one_line_error, run_cli


@pytest.mark.parametrize("args, fragment", [
    (["eval", "--n", "0"], "--n must be >= 1"),
    (["eval", "--n", "-1"], "--n must be >= 1"),
    (["eval", "--query-budget", "-3"], "--query-budget must be >= 1"),
    (["eval", "--limit", "0"], "--limit must be >= 1"),
    (["train", "--max-length", "0"], "--max-length must be >= 1"),
    (["train", "--max-length", "-5"], "--max-length must be >= 1"),
    (["train", "--lr", "nan"], "--lr must be a finite number"),
    (["train", "--epochs", "0"], "--epochs must be >= 1"),
    (["run", "--lr", "inf"], "--lr must be a finite number"),
    (["leaderboard", "--bootstrap", "0"], "--bootstrap must be >= 1"),
])
def test_numeric_options_are_checked_at_the_edge(monkeypatch, capsys, tmp_path, args, fragment):
    extra = ["--run", str(tmp_path)] if args[0] == "eval" else []
    extra += ["--model", "tiny-bert", "--out", str(tmp_path / "r")] if args[0] == "train" else []
    code, _, err = run_cli(monkeypatch, capsys, *args, *extra)
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "r").exists()



BIG_SEED = str(2**40)


@pytest.mark.parametrize("args, fragment", [
    (("train", *TINY, "--seed", BIG_SEED), "--seed must be <= 4294967295 (numpy's seed range)"),
    (("run", *TINY, "--methods", "vanilla", "--seeds", "-1", "--suite", "id"), "bad --seeds value -1"),
    (("run", *TINY, "--methods", "vanilla", "--seeds", f"0,{BIG_SEED}", "--suite", "id"), f"bad --seeds value {BIG_SEED}"),
    (("tune", "--method", "vanilla", *TINY, "--seeds", "-1"), "bad --seeds value -1"),
    (("eval", "--run", "RUN", "--suite", "perturb", "--seed", BIG_SEED), "--seed must be <= 4294967295"),
    (("attack", "--run", "RUN", "--save", "OUT/a.jsonl", "--seed", BIG_SEED), "--seed must be <= 4294967295"),
    (("train", *TINY, "--max-length", "1000"), "--max-length 1000 is longer than model 'tiny-bert' can read (128"),
], ids=["train-seed", "run-negative-seed", "run-big-seed", "tune-negative-seed", "eval-seed", "attack-seed",
        "max-length"])
def test_numbers_out_of_range_are_one_line(monkeypatch, capsys, tmp_path, run, args, fragment):
    args = [str(run) if a == "RUN" else a.replace("OUT", str(tmp_path)) for a in args]
    if args[0] in ("train", "run", "tune"):
        args += ["--out" if args[0] == "train" else "--runs-dir", str(tmp_path / "r")]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "r" / "run.json").exists()
