"""The training loop and run directories: contents, determinism, crashes, existing runs, bf16 on CPU, and
the presets and diagnostics run.json records."""

from __future__ import annotations

import json

import pytest

from robench.evaluation import evaluate_run
from robench.records import load_run as load_record
from robench.records import to_json
from robench.train import TrainConfig, train


def load_run(path):
    """run.json as its mapping, read through the typed loader."""
    return to_json(load_record(path))


def tiny(tmp_path, name="run", **kw):
    cfg = dict(model="tiny-bert", limit=48, epochs=1, batch_size=16, out=str(tmp_path / name), device="cpu")
    cfg.update(kw)
    return TrainConfig(**cfg)


def test_run_directory_contents(tiny_run):
    files = {p.name for p in tiny_run.iterdir()}
    assert {"model.safetensors", "config.json", "run.json", "tokenizer.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files), "weights must be safetensors only"
    run = load_run(tiny_run)
    assert run["method"]["name"] == "vanilla" and run["seed"] == 0
    assert set(run["task"]["fingerprints"]) == {"train", "validation"}
    assert run["training"]["examples_per_second"] > 0 and run["training"]["wall_seconds"] > 0
    assert {"torch", "transformers", "datasets", "robench"} <= set(run["versions"])
    assert "git_commit" in run and len(run["weights_fingerprint"]) == 16
    assert run["training"]["best_epoch"] == 1


def test_same_seed_same_weights_and_scores(tmp_path):
    a = load_run(train(tiny(tmp_path, "a", epochs=2)))
    b = load_run(train(tiny(tmp_path, "b", epochs=2)))
    c = load_run(train(tiny(tmp_path, "c", epochs=2, seed=1)))
    assert a["weights_fingerprint"] == b["weights_fingerprint"]
    assert a["training"]["history"] == [
        {**h, "epoch_seconds": a["training"]["history"][i]["epoch_seconds"]} for i, h in enumerate(b["training"]["history"])
    ]
    assert a["weights_fingerprint"] != c["weights_fingerprint"]


def test_model_selection_keeps_best_validation_epoch(tmp_path, monkeypatch):
    import robench.train as tr

    scores = iter([0.7, 0.9, 0.8])
    monkeypatch.setattr(tr, "accuracy", lambda *a, **k: next(scores))
    run = load_run(train(tiny(tmp_path, epochs=3)))
    assert run["training"]["best_epoch"] == 2 and run["training"]["best_val_accuracy"] == 0.9


def test_crash_leaves_nothing_that_looks_valid(tmp_path, monkeypatch):
    from robench.methods.vanilla import Vanilla

    calls = {"n": 0}
    original = Vanilla.training_step

    def failing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Vanilla, "training_step", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(tiny(tmp_path))
    assert not (tmp_path / "run").exists()
    assert not list(tmp_path.glob(".run.tmp-*"))


def test_existing_run_needs_force(tmp_path):
    from robench.errors import ConfigError

    train(tiny(tmp_path))
    with pytest.raises(ConfigError, match="already holds a finished run; pass --force"):
        train(tiny(tmp_path))
    train(tiny(tmp_path, force=True))


def test_bf16_training_and_prediction_run_on_cpu(tmp_path):
    import numpy as np

    run = train(tiny(tmp_path, precision="bf16"))
    assert load_run(run)["training"]["precision"] == "bf16"
    result = json.loads(evaluate_run(run, "id", device="cpu", precision="bf16")["id"].read_text())
    assert result["settings"]["precision"] == "bf16" and np.isfinite(result["metrics"]["accuracy"])


# ------------------------------------------------------------------------------ method presets

def test_run_json_records_preset_and_diagnostics(tmp_path):
    run = load_run(train(tiny(tmp_path, method="freelb", limit=32)))
    # the task's FreeLB preset has the defaults' values, and run.json says so
    assert run["method"]["preset"] == {"name": "sentiment", "source": "task (same values as the defaults)"}
    assert set(run["spec"]["sources"]["method_config"].values()) == {"default"}
    assert run["method"]["config"]["max_norm"] == 0.6 and run["method"]["config"]["adv_steps"] == 2
    diag = run["training"]["history"][0]["diagnostics"]
    assert {"adv_ce", "ce_first", "ce_last", "sampled_sym_kl", "dropout_sym_kl", "alive_ratio"} <= set(diag)
    run = load_run(train(tiny(tmp_path, "user", method="freelb", limit=32, preset="entailment")))
    assert run["method"]["preset"] == {"name": "entailment", "source": "user"}
    assert run["method"]["config"]["max_norm"] == 0.3
    sources = run["spec"]["sources"]
    assert sources["method_config"]["max_norm"] == "preset entailment (user)"
    assert sources["method_config"]["adv_steps"] == "default"
    assert sources["trainer"]["epochs"] == "cli" and sources["trainer"]["lr"] == "default"
