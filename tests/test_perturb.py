"""Noise-perturbation evaluator: offline nlpaug augmenters, deterministic metrics."""

from __future__ import annotations

import json

import pytest


def test_perturbations_are_deterministic_and_change_text():
    from robench.evaluators.perturb import PERTURBATIONS, perturb_texts

    texts = ["a wonderful moving film with superb acting", "dull and lifeless a complete waste of time", "ok"]
    for name in PERTURBATIONS:
        a = perturb_texts(texts, name, 0.2, seed=0)
        assert a == perturb_texts(texts, name, 0.2, seed=0)
        assert len(a) == 3 and all(isinstance(t, str) and t for t in a)
        assert a[:2] != texts[:2], name
        # per-example seeding: a text's version does not depend on its neighbours
        assert perturb_texts(texts[:1], name, 0.2, seed=0)[0] == a[0]


def test_perturb_evaluator_on_tiny_run(tiny_run):
    from robench.evaluate import evaluate_run
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
