"""Run identity (robench/identity.py): method labels, run ids and run folders built in one place."""

from __future__ import annotations


def test_run_identity_is_built_in_one_place(tmp_path):
    from robench.identity import RunIdentity, method_label, parse_method_label, task_label
    from robench.train import TrainConfig, default_run_dir

    ident = RunIdentity("sentiment", "minilm", "r3f", selective=True, seed=2, profile="quick", limit=64)
    assert ident.method_label == "r3f+selective" == method_label("r3f", True)
    assert parse_method_label("r3f+selective") == ("r3f", True) and parse_method_label("ram") == ("ram", False)
    assert ident.run_id == "sentiment/minilm/r3f+selective/seed2"
    assert ident.run_dir("runs").as_posix() == "runs/sentiment-quick-limit64/minilm/r3f+selective/seed2"
    cfg = TrainConfig(method="r3f", selective=True, seed=2, profile="quick", limit=64)
    assert default_run_dir(cfg, "runs") == ident.run_dir("runs")
    assert task_label("sentiment", "quick", 64) == "sentiment (quick, limit 64)"
    assert task_label("sentiment", "default", None) == "sentiment"
