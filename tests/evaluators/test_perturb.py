"""Noise-perturbation evaluator: offline nlpaug augmenters, deterministic metrics."""

from __future__ import annotations

import json

import pytest


def test_perturbations_are_deterministic_and_change_text(monkeypatch):
    from robench.evaluators.perturb import PERTURBATIONS, perturb_texts

    monkeypatch.setenv("ROBENCH_PERTURB_CACHE", "0")  # generated each time: the determinism is nlpaug's seeding

    texts = ["a wonderful moving film with superb acting", "dull and lifeless a complete waste of time", "ok"]
    for name in PERTURBATIONS:
        a = perturb_texts(texts, name, 0.2, seed=0)
        assert a == perturb_texts(texts, name, 0.2, seed=0)
        assert len(a) == 3 and all(isinstance(t, str) and t for t in a)
        assert a[:2] != texts[:2], name
        # per-example seeding: a text's version does not depend on its neighbours
        assert perturb_texts(texts[:1], name, 0.2, seed=0)[0] == a[0]


def test_perturbed_texts_are_cached_per_text_rate_seed_and_perturbation(monkeypatch, tmp_path):
    from robench.evaluators import perturb

    monkeypatch.setenv("ROBENCH_CACHE", str(tmp_path))
    calls = []
    real = perturb._generate
    monkeypatch.setattr(perturb, "_generate", lambda *a: calls.append(a) or real(*a))
    texts = ["a wonderful moving film with superb acting", "dull and lifeless a complete waste of time"]
    first = perturb.perturb_texts(texts, "keyboard", 0.2, seed=0)
    assert len(calls) == 1 and len(list((tmp_path / "perturb").glob("*.json"))) == 1  # a miss computes and stores
    assert perturb.perturb_texts(texts, "keyboard", 0.2, seed=0) == first and len(calls) == 1  # a hit
    # a different text, rate, seed or perturbation each miss
    for args in ((texts[:1], "keyboard", 0.2, 0), (texts, "keyboard", 0.3, 0), (texts, "keyboard", 0.2, 1),
                 (texts, "ocr", 0.2, 0)):
        before = len(calls)
        perturb.perturb_texts(args[0], args[1], args[2], seed=args[3])
        assert len(calls) == before + 1, args
    # a damaged cache file is a miss: regenerated and rewritten, never trusted
    cached = perturb._cache_path(perturb._cache_key(texts, "keyboard", 0.2, 0))
    cached.write_text('{"key": "x", "texts": ["garbage"]', encoding="utf-8")
    before = len(calls)
    assert perturb.perturb_texts(texts, "keyboard", 0.2, seed=0) == first and len(calls) == before + 1
    assert perturb.perturb_texts(texts, "keyboard", 0.2, seed=0) == first and len(calls) == before + 1
    # the off switch
    monkeypatch.setenv("ROBENCH_PERTURB_CACHE", "0")
    assert perturb.perturb_texts(texts, "keyboard", 0.2, seed=0) == first and len(calls) == before + 2


def test_perturb_evaluator_on_tiny_run(tiny_run):
    from robench.evaluation import evaluate_run
    from robench.evaluators.perturb import PERTURBATIONS

    results = []
    for _ in range(2):
        path = evaluate_run(tiny_run, "perturb", device="cpu", force=True)["perturb"]
        results.append(json.loads(path.read_text()))
    m = results[0]["metrics"]
    assert set(m["perturbations"]) == set(PERTURBATIONS)
    assert all(0.0 <= v <= 1.0 for v in m["perturbations"].values())
    assert m["mean_accuracy"] == pytest.approx(sum(m["perturbations"].values()) / len(PERTURBATIONS))
    assert m["mean_drop"] == pytest.approx(m["clean_accuracy"] - m["mean_accuracy"])
    assert results[1]["metrics"] == m
    assert results[0]["settings"]["seed"] == 0 and results[0]["settings"]["rate"] == 0.1
    # per-example correctness per perturbation, in test-split order: it reproduces each accuracy
    correct = results[0]["details"]["correct"]
    # keyed by perturbation, rate and seed: runs pair only on the same noisy texts
    assert set(correct) == {f"{p}@rate0.1:seed0" for p in PERTURBATIONS}
    for key, bits in correct.items():
        assert len(bits) == m["n"] and set(bits) <= {"0", "1"}
        assert bits.count("1") / len(bits) == pytest.approx(m["perturbations"][key.split("@")[0]])
    assert results[1]["details"]["correct"] == correct
    assert results[0]["evaluator_version"] == 2
    spec = next(s for s in results[0]["metric_specs"] if s["name"] == "mean_accuracy")
    assert spec["per_example"] == "correct"


def _perturb_result(root, method, seed, correct):
    from robench.evaluators import EVALUATORS
    from robench.identity import result_path
    from robench.results import make_result
    from robench.storage import atomic_write_json

    run = {"run_id": f"sentiment/tiny/{method}/seed{seed}", "task": {"name": "sentiment", "profile": "default"},
           "model": {"name": "tiny"}, "method": {"name": method}, "seed": seed}
    per = {k: v.count("1") / len(v) for k, v in correct.items()}
    mean = sum(per.values()) / len(per)
    atomic_write_json(result_path(root / method / f"seed{seed}", "perturb"),
                      make_result("perturb", run, {"mean_accuracy": mean, "perturbations": per, "n": 100},
                                  details={"correct": correct}, specs=EVALUATORS.get("perturb").metrics))


def test_perturb_column_gets_a_p_value(tmp_path):
    """With per-example outcomes declared, the board's paired test and Wilson interval cover the column."""
    import numpy as np

    from robench.report import build_leaderboard

    rng = np.random.default_rng(0)

    def bits(p):
        return "".join("1" if x else "0" for x in rng.random(100) < p)

    for seed in (0, 1):
        _perturb_result(tmp_path, "vanilla", seed, {"keyboard": bits(0.5), "ocr": bits(0.5)})
        _perturb_result(tmp_path, "ram", seed, {"keyboard": bits(0.95), "ocr": bits(0.95)})
    row = build_leaderboard(tmp_path, "perturb", n_boot=300, significance="examples").frame.set_index("method")
    assert row.loc["ram", "perturb_p"] < 0.01
    assert np.isnan(row.loc["vanilla", "perturb_p"])
    assert row.loc["ram", "perturb_low"] < row.loc["ram", "perturb_mean"] < row.loc["ram", "perturb_high"]
