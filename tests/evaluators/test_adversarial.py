"""The adversarial evaluator: worst case over recipes, per-example outcomes, intervals, threat-model card,
transfer-set sources, resume."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy.stats import binomtest

OPTIONS = {"adversarial": {"recipes": ["deepwordbug", "pwws"], "n": 6, "seed": 1}}


def _evaluate(run, **extra):
    from robench.evaluation import evaluate_run

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
        "valid", 1000, 6, 1, "test")
    assert card["label_preservation"] == "valence"  # the sentiment task declares it
    assert card["sample"] == sid and len(card["card_id"]) == 12
    assert card["validity_check"]["sentence_cos"] == 0.82 and set(card["transfer_sets"]) == {"valid_transfer"}
    # the top-level rates are per example over recipes (broken by any recipe), like the headline
    logs_recs = {r: [json.loads(x) for x in (tiny_run / a).read_text().splitlines()][1:] for r, a in logs.items()}
    attacked = [i for i in range(6) if logs_recs["pwws"][i]["outcome"] != "skipped"]
    broken = [i for i in attacked if any(recs[i]["outcome"] == "successful" for recs in logs_recs.values())]
    assert metrics["attack_success_rate"] == pytest.approx(len(broken) / len(attacked))
    assert metrics["accuracy_under_attack"] == pytest.approx((len(attacked) - len(broken)) / 6)
    # the static transfer set names its source model, which is not this run
    (name, source), = settings["transfer_sources"].items()
    from robench.evaluators.adversarial import source_fingerprints

    assert source_fingerprints(source) and result["run"]["weights_fingerprint"] not in source_fingerprints(source)
    assert details["transfer_correct"][name].count("1") / len(details["transfer_correct"][name]) == pytest.approx(
        metrics["transfer_accuracy"])


def test_worst_case_is_per_example_over_recipes(tiny_run, monkeypatch):
    """The tiny model is never broken by a real attack, so the recipes' outcomes are set here: the worst case
    must be the per-example AND, not the mean or the minimum of the per-recipe accuracies."""
    from robench.attacks.runner import sample_indices, summarize
    from robench.evaluation import make_context
    from robench.evaluators import adversarial

    ctx = make_context(tiny_run, device="cpu")
    idx = sample_indices(len(ctx.texts("test")), 6, 1)
    outcomes = {"deepwordbug": ["failed", "successful", "skipped", "failed", "failed", "successful"],
                "pwws": ["successful", "failed", "skipped", "failed", "successful", "successful"]}
    valid = {"deepwordbug": [None, True, None, None, None, False], "pwws": [False, None, None, None, False, False]}

    def fake(ctx_, recipe, **kwargs):
        recs = [{"index": i, "outcome": o, "valid": v, "words_changed": 1, "num_words": 5, "queries": 3,
                 "seconds": 0.0, "original": "x", "perturbed": "y", "label": 0}
                for i, o, v in zip(idx, outcomes[recipe], valid[recipe], strict=True)]
        return summarize(recs), recs, ctx_.run_dir / "artifacts" / f"fake-{recipe}.jsonl"

    monkeypatch.setattr(adversarial, "attack_recipe", fake)
    out = adversarial.Adversarial(recipes=["deepwordbug", "pwws"], n=6, seed=1).evaluate(ctx)
    m = out.metrics
    # robust only where both failed: example 3 (0, 4: one recipe broke it; 2: skipped)
    assert out.details["robust"] == {adversarial.sample_id("test", idx): "000100"}
    assert m["accuracy_under_attack"] == pytest.approx(1 / 6)  # below both recipes' own 3/6 and 2/6
    assert m["recipes"]["deepwordbug"]["accuracy_under_attack"] == pytest.approx(3 / 6)
    assert m["recipes"]["pwws"]["accuracy_under_attack"] == pytest.approx(2 / 6)
    assert m["mean_accuracy_under_attack"] == pytest.approx(2.5 / 6)
    assert m["attack_success_rate"] == pytest.approx(4 / 5)  # examples 0, 1, 4, 5 broken by some recipe, of 5 attacked
    assert m["valid_success_rate"] == pytest.approx(1 / 5)  # only example 1's success passes the strict check


def test_threat_model_card_changes_with_every_setting(tiny_run):
    from robench.attacks.runner import sample_indices
    from robench.evaluation import make_context
    from robench.evaluators.adversarial import Adversarial

    ctx = make_context(tiny_run, device="cpu")
    idx = sample_indices(len(ctx.texts("test")), 6, 1)
    base = Adversarial(recipes=["pwws"], n=6, seed=1).threat_model(ctx, idx)["card_id"]
    assert Adversarial(recipes=["pwws"], n=6, seed=1).threat_model(ctx, idx)["card_id"] == base
    for change in ({"constraints": "filtered"}, {"query_budget": 50}, {"label_preservation": "valence"},
                   {"recipes": ["deepwordbug"]}):
        kwargs = {"recipes": ["pwws"], "n": 6, "seed": 1, **change}
        assert Adversarial(**kwargs).threat_model(ctx, idx)["card_id"] != base, change
    assert Adversarial(recipes=["pwws"], n=6, seed=2).threat_model(
        ctx, sample_indices(len(ctx.texts("test")), 6, 2))["card_id"] != base
    # nothing of the run is in the card: another training seed's weights share the column
    ctx.weights, ctx.run = "0" * 16, dataclasses.replace(ctx.run, weights_fingerprint="0" * 16, seed=7)
    assert Adversarial(recipes=["pwws"], n=6, seed=1).threat_model(ctx, idx)["card_id"] == base


def test_card_records_the_sentence_encoder_precision(tiny_run, monkeypatch):
    from robench.attacks import resources
    from robench.attacks.runner import sample_indices
    from robench.evaluation import make_context
    from robench.evaluators.adversarial import Adversarial

    ctx = make_context(tiny_run, device="cpu")
    idx = sample_indices(len(ctx.texts("test")), 6, 1)
    cards = {}
    for native in (True, False):
        monkeypatch.setattr(resources, "native_bf16", lambda device="cpu", _n=native: _n)
        cards[native] = Adversarial(recipes=["pwws"], n=6, seed=1).threat_model(ctx, idx)
    assert (cards[True]["sentence_encoder_precision"], cards[False]["sentence_encoder_precision"]) == ("bf16", "fp32")
    assert cards[True]["card_id"] != cards[False]["card_id"]


def test_sentence_vectors_do_not_depend_on_their_batch():
    from robench.attacks.resources import MiniLMEncoder

    for precision in ("fp32", "bf16"):
        enc = MiniLMEncoder(precision=precision)
        alone = enc.encode(["a quietly moving film"])[0]
        enc._cache.clear()
        crowd = enc.encode(["an overlong, self-indulgent and badly paced mess of a film", "a quietly moving film",
                            "fine"])[1]
        assert np.array_equal(alone, crowd), precision


def test_transfer_source_record_must_match_its_set(tiny_run, tmp_path):
    import hashlib

    from robench.evaluation import make_context
    from robench.evaluators.adversarial import read_transfer_source

    ctx = make_context(tiny_run, device="cpu")
    (name,) = ctx.task.set_names("adversarial")
    ctx.texts(f"adversarial:{name}")  # loads the set, so its file is known
    info = read_transfer_source(ctx, name)
    assert info["weights_fingerprints"] and {s["seed"] for s in info["sources"]} == {100, 101}  # set and record agree
    file = next(iter(v for v in ctx.data.files.values() if v.endswith(".jsonl")))
    assert info["set_sha256"] == hashlib.sha256(open(file, "rb").read()).hexdigest()
    # a record that does not describe the file is not trusted
    src = ctx.task.sets[f"adversarial:{name}"].source
    copy = tmp_path / "set.jsonl"
    copy.write_text(open(file, encoding="utf-8").read() + "\n")
    (tmp_path / "set.source.json").write_text(json.dumps(info))
    ctx.data.files[src] = str(copy)
    stale = read_transfer_source(ctx, name)
    assert stale["weights_fingerprint"] is None and "set_sha256 differs" in stale["description"]


def test_unknown_constraint_preset_is_one_clear_error():
    from robench.errors import ConfigError
    from robench.evaluators.adversarial import Adversarial

    with pytest.raises(ConfigError, match="constraint preset 'lenient'.*valid, filtered, recipe"):
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


# ------------------------------------------------------------------------------ static sets, and how they combine

def _fake_attacks(monkeypatch, ctx, outcomes):
    """The recipes' outcomes set by hand (the tiny model is never broken by a real attack)."""
    from robench.attacks.runner import sample_indices, summarize
    from robench.evaluators import adversarial

    idx = sample_indices(len(ctx.texts("test")), len(next(iter(outcomes.values()))), 1)

    def fake(ctx_, recipe, **kwargs):
        recs = [{"index": i, "outcome": o, "valid": True, "words_changed": 1, "num_words": 5, "queries": 3,
                 "seconds": 0.0, "original": "x", "perturbed": "y", "label": 0}
                for i, o in zip(idx, outcomes[recipe], strict=True)]
        return summarize(recs), recs, ctx_.run_dir / "artifacts" / f"fake-{recipe}.jsonl"

    monkeypatch.setattr(adversarial, "attack_recipe", fake)
    return idx


def test_static_sets_only_run_no_attack_and_drop_the_attack_column(tiny_run, monkeypatch):
    from robench.evaluation import make_context
    from robench.evaluators import adversarial

    ctx = make_context(tiny_run, device="cpu")
    monkeypatch.setattr(adversarial, "attack_recipe", lambda *a, **k: pytest.fail("a live attack ran"))
    for recipes in ([], "none"):
        ev = adversarial.Adversarial(recipes=recipes)
        out = ev.evaluate(ctx)
        assert ev.recipes == [] and "accuracy_under_attack" not in out.metrics and "robust" not in out.details
        bits = out.details["transfer_correct"]["valid_transfer"]
        assert out.metrics["transfer_accuracy"] == pytest.approx(bits.count("1") / len(bits))
        heads = {m.column for m in ev.metrics if m.headline}
        assert heads == {"transfer"}
        assert out.settings["adversarial_aspect"] == {
            "combine": "separate", "live": [], "static": ["valid_transfer"],
            "headline": "separate columns: live attacks (worst case) and static sets (mean accuracy)"}
        assert out.settings["threat_model"]["recipes"] == {} and len(out.settings["threat_model"]["card_id"]) == 12
    # no recipe and no static set: one line, before anything runs
    ctx.task.sets = {k: s for k, s in ctx.task.sets.items() if not k.startswith("adversarial:")}
    with pytest.raises(Exception, match=r"no static adversarial sets and the adversarial evaluator runs no attack"):
        adversarial.Adversarial(recipes=[]).evaluate(ctx)


def test_combine_mean_averages_the_worst_case_and_each_static_set(tiny_run, monkeypatch):
    """Adv = the unweighted mean over [live worst case, each static set]: a second static set (with another
    accuracy) and hand-set attack outcomes make every weight visible."""
    from robench.evaluation import make_context
    from robench.evaluators import adversarial
    from robench.tasks import SetSpec

    ctx = make_context(tiny_run, device="cpu")
    ctx.task.sets["adversarial:again"] = SetSpec(source=ctx.task.sets["test"].source, limit=10)
    idx = _fake_attacks(monkeypatch, ctx, {"deepwordbug": ["failed", "successful", "failed", "successful"],
                                           "pwws": ["failed", "failed", "successful", "successful"]})
    ev = adversarial.Adversarial(recipes=["deepwordbug", "pwws"], n=4, seed=1, combine="mean")
    out = ev.evaluate(ctx)
    static = {n: out.metrics["transfer"][n] for n in ("valid_transfer", "again")}
    assert static["valid_transfer"] != static["again"]  # distinct parts, so a wrong weight shows
    worst = 1 / 4  # only the first example survives both recipes
    assert out.metrics["accuracy_under_attack"] == pytest.approx(worst)
    assert out.metrics["adversarial_accuracy"] == pytest.approx((worst + sum(static.values())) / 3)
    assert out.metrics["adversarial_accuracy"] != pytest.approx((worst + out.metrics["transfer_accuracy"]) / 2)
    parts = out.details["adversarial_correct"]
    assert set(parts) == {f"attack:{adversarial.sample_id('test', idx)}", "static:valid_transfer", "static:again"}
    from robench.report.stats import example_metric, parse_examples

    assert example_metric(parse_examples(parts, None), None) == pytest.approx(out.metrics["adversarial_accuracy"])
    heads = {m.column: m.name for m in ev.metrics if m.headline}
    assert heads == {"adv": "adversarial_accuracy"}  # Attack and Transfer become its parts, not columns
    assert out.settings["threat_model"]["combine"] == "mean"
    separate = adversarial.Adversarial(recipes=["deepwordbug", "pwws"], n=4, seed=1)
    assert "combine" not in separate.threat_model(ctx, idx)  # the default card (and its id) is unchanged
    assert {m.column for m in separate.metrics if m.headline} == {"attack", "transfer"}


def test_live_attacks_on_sentence_pairs_are_one_line(tiny_run, monkeypatch):
    from robench.errors import ConfigError
    from robench.evaluation import make_context
    from robench.evaluators import adversarial

    ctx = make_context(tiny_run, device="cpu")
    monkeypatch.setattr(type(ctx), "is_pairs", lambda self, key: True)
    with pytest.raises(ConfigError, match=r"attack split of this task holds sentence pairs; set the adversarial "
                                          r"evaluator's recipes: \[\]") as info:
        adversarial.Adversarial(recipes=["pwws"], n=2).evaluate(ctx)
    assert "\n" not in str(info.value)


def test_board_shows_the_adv_column_and_says_how_it_is_made(run, monkeypatch, tmp_path):
    from robench.evaluation import evaluate_run, make_context
    from robench.report.write import write_leaderboard

    _fake_attacks(monkeypatch, make_context(run, device="cpu"), {"pwws": ["failed", "successful", "failed"]})
    written = evaluate_run(run, "adversarial", device="cpu", force=True,
                           options={"adversarial": {"recipes": ["pwws"], "n": 3, "seed": 1, "combine": "mean"}})
    result = json.loads(written["adversarial"].read_text())
    board, files = write_leaderboard([run], tmp_path / "board", plots=False, n_boot=20)
    assert [a.key for a in board.aspects if a.evaluator == "adversarial"] == ["adv"]
    row = board.frame.iloc[0]
    assert row["adv_mean"] == pytest.approx(result["metrics"]["adversarial_accuracy"])
    text = files["markdown"].read_text()
    assert "Adv: the unweighted mean of the live worst-case accuracy (recipes pwws) and the accuracy on each static " \
           "adversarial set (valid_transfer), as the task declares (combine: mean)" in text


@pytest.mark.parametrize("recipes", [[], "none", ["none"], "None"])
def test_no_recipe_spellings_all_mean_static_sets_only(recipes):
    from robench.evaluators.adversarial import Adversarial

    assert Adversarial(recipes=recipes).recipes == []
    assert Adversarial(recipes=None).recipes == ["deepwordbug", "textfooler", "pwws"]


def test_default_combine_keeps_older_results_cache_hits():
    from robench.evaluators.adversarial import Adversarial

    assert "combine" not in Adversarial().settings_key()  # results written before the option still match
    assert Adversarial(combine="mean").settings_key()["combine"] == "mean"
