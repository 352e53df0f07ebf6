"""The one-command benchmark end to end on the tiny model; a second call is a no-op (resumable)."""

from __future__ import annotations

import pytest

from robench.errors import ConfigError
from robench.matrix import parse_seeds, resolve_methods, run_benchmark
from robench.methods import METHODS


def test_run_benchmark_resumable(tmp_path):
    kwargs = dict(task="sentiment", methods="vanilla", seeds="0", suite="id", profile=None, model="tiny-bert",
                  runs_dir=tmp_path / "runs", results_dir=tmp_path / "results", limit=32, epochs=1,
                  device="cpu", n_boot=100)
    first = run_benchmark(**kwargs)
    assert len(first.trained) == 1 and len(first.evaluated) == 1
    run_dir = first.run_dirs[0]
    assert (run_dir / "run.json").exists() and (run_dir / "results" / "id.json").exists()
    md = (tmp_path / "results" / "LEADERBOARD.md").read_text()
    assert "vanilla" in md and (tmp_path / "results" / "leaderboard.csv").exists()

    second = run_benchmark(**kwargs)
    assert second.trained == [] and second.evaluated == []
    assert second.skipped_train == [run_dir]


def test_plan_errors():
    assert resolve_methods("vanilla") == [("vanilla", False)]
    assert resolve_methods("vanilla+selective,vanilla") == [("vanilla", True), ("vanilla", False)]
    assert resolve_methods("all") == [(name, False) for name in METHODS.names()]
    assert parse_seeds("0, 2,2") == [0, 2]
    with pytest.raises(ConfigError):
        parse_seeds("a,b")
    with pytest.raises(ConfigError):
        resolve_methods("no-such-method")
