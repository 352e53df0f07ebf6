"""The adversarial evaluator: worst case over recipes, per-example outcomes, intervals, threat-model card,
transfer-set sources, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binomtest

OPTIONS = {"adversarial": {"recipes": ["deepwordbug", "pwws"], "n": 6, "seed": 1}}


def _evaluate(run, **extra):
    from robench.evaluate import evaluate_run

    opts = {"adversarial": {**OPTIONS["adversarial"], **extra}}
    written = evaluate_run(run, "adversarial", device="cpu", force=True, options=opts)
    return json.loads(written["adversarial"].read_text())


def _log_bits(run, art):
    """1 where the logged attack failed (the model stayed right), read straight from the log."""
    lines = [json.loads(line) for line in (run / art).read_text().splitlines()]
    return np.array([1 if r["outcome"] == "failed" else 0 for r in lines if r.get("type") == "example"])


def test_worst_case_outcomes_intervals_and_card(tiny_run):
    result = _evaluate(tiny_run)
    metrics, details, settings = result["metrics"], result["details"], result["settings"]
    logs = {art.split("attack-")[1].split("-")[0]: art for art in result["artifacts"]}
    assert set(logs) == {"deepwordbug", "pwws"}
    per_recipe = {r: _log_bits(tiny_run, art) for r, art in logs.items()}
    worst = per_recipe["deepwordbug"] & per_recipe["pwws"]  # robust only when every recipe failed
    (sid, bits), = details["robust"].items()
    assert sid.startswith("test:") and bits == "".join(map(str, worst))
    assert {r: b[sid] for r, b in details["robust_by_recipe"].items()} == {
        r: "".join(map(str, b)) for r, b in per_recipe.items()}
    assert metrics["accuracy_under_attack"] == pytest.approx(worst.mean())
    assert metrics["accuracy_under_attack"] <= min(m["accuracy_under_attack"] for m in metrics["recipes"].values())
    assert metrics["mean_accuracy_under_attack"] == pytest.approx(np.mean([b.mean() for b in per_recipe.values()]))
    # Wilson 95% intervals, checked against scipy's
    ci = binomtest(int(worst.sum()), len(worst)).proportion_ci(method="wilson")
    assert (metrics["accuracy_under_attack_low"], metrics["accuracy_under_attack_high"]) == pytest.approx(
        (ci.low, ci.high))
    for r, b in per_recipe.items():
        ci = binomtest(int(b.sum()), len(b)).proportion_ci(method="wilson")
        m = metrics["recipes"][r]
        assert (m["accuracy_under_attack_low"], m["accuracy_under_attack_high"]) == pytest.approx((ci.low, ci.high))
        assert "valid_success_rate" in m and "num_valid" in m
    # the threat-model card
    card = settings["threat_model"]
    assert set(card["recipes"]) == {"deepwordbug", "pwws"}
    assert (card["constraints"], card["query_budget"], card["n"], card["sampling_seed"], card["split"]) == (
        "filtered", 1000, 6, 1, "test")
    assert card["label_preservation"] == "valence"  # the sentiment task declares it
    assert card["sample"] == sid and len(card["card_id"]) == 12
    # the static transfer set names its source model, which is not this run
    (name, source), = settings["transfer_sources"].items()
    assert source["weights_fingerprint"] and source["weights_fingerprint"] != result["run"]["weights_fingerprint"]
    assert details["transfer_correct"][name].count("1") / len(details["transfer_correct"][name]) == pytest.approx(
        metrics["transfer_accuracy"])


def test_threat_model_card_changes_with_every_setting(tiny_run):
    from robench.attacks.runner import sample_indices
    from robench.evaluate import make_context
    from robench.evaluators.adversarial import Adversarial

    ctx = make_context(tiny_run, device="cpu")
    idx = sample_indices(len(ctx.texts("test")), 6, 1)
    base = Adversarial(recipes=["pwws"], n=6, seed=1).threat_model(ctx, idx)["card_id"]
    assert Adversarial(recipes=["pwws"], n=6, seed=1).threat_model(ctx, idx)["card_id"] == base
    for change in ({"constraints": "strict"}, {"query_budget": 50}, {"label_preservation": "valence"},
                   {"recipes": ["deepwordbug"]}):
        kwargs = {"recipes": ["pwws"], "n": 6, "seed": 1, **change}
        assert Adversarial(**kwargs).threat_model(ctx, idx)["card_id"] != base, change
    assert Adversarial(recipes=["pwws"], n=6, seed=2).threat_model(
        ctx, sample_indices(len(ctx.texts("test")), 6, 2))["card_id"] != base


def test_unknown_constraint_preset_is_one_clear_error():
    from robench.errors import ConfigError
    from robench.evaluators.adversarial import Adversarial

    with pytest.raises(ConfigError, match="constraint preset 'lenient'.*recipe, filtered, strict"):
        Adversarial(constraints="lenient")


def test_interrupted_evaluation_resumes_to_identical_metrics(tiny_run):
    def strip(metrics):
        out = json.loads(json.dumps(metrics))
        for m in out["recipes"].values():
            m.pop("seconds_per_example")
        return out

    first = _evaluate(tiny_run, recipes=["deepwordbug"])
    log = tiny_run / first["artifacts"][0]
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])  # killed mid-write after 2 examples
    second = _evaluate(tiny_run, recipes=["deepwordbug"])
    assert strip(second["metrics"]) == strip(first["metrics"])
    assert second["details"]["robust"] == first["details"]["robust"]


def test_run_that_is_a_transfer_source_is_warned(tiny_run, monkeypatch):
    from robench.evaluators import adversarial

    fp = json.loads((tiny_run / "run.json").read_text())["weights_fingerprint"]
    monkeypatch.setattr(adversarial, "read_transfer_source",
                        lambda ctx, name: {"weights_fingerprint": fp, "description": "this very run"})
    result = _evaluate(tiny_run, recipes=["deepwordbug"], n=2)
    assert any("source model of transfer set" in w for w in result["warnings"])
    assert all(s["weights_fingerprint"] == fp for s in result["settings"]["transfer_sources"].values())
