"""The evaluators of the quick suite on the tiny finished run: every result's declarations and version,
and the shift, calibration and anomaly evaluators' numbers."""

from __future__ import annotations

import copy
import dataclasses
import json
import shutil

import numpy as np
import pytest

from robench import metrics as M
from robench.errors import ConfigError
from robench.evaluation import evaluate_run, make_context
from robench.evaluators import EVALUATORS, suites
from robench.results import MetricSpec, undeclared
from robench.tasks import TaskData, fingerprint

SUITE = ",".join(suites()["quick"])  # the quick suite; adversarial and perturb: test_adversarial.py, test_perturb.py


def _inject(ctx, key: str, texts: list[str], labels: list[int]) -> None:
    """Replace (or add) one set of the context's task data in memory."""
    import datasets

    from robench.tasks import SetSpec

    if key not in ctx.task.sets:
        ctx.task.sets[key] = SetSpec(source=ctx.task.sets["test"].source)
    ctx.data._set_cache[key] = datasets.Dataset.from_dict({"text": texts, "label": labels})
    ctx.data._fingerprints[key] = fingerprint(texts, labels)
    ctx._memo.pop((key, False), None)
    ctx._memo.pop((key, True), None)


def _fresh(ctx, memo: bool = True, model: bool = True):
    """A copy of a context with its own task spec and set table (loading the task files takes seconds)."""
    task = copy.copy(ctx.task)
    task.sets = dict(ctx.task.sets)
    data = TaskData(task)
    data._source_cache = ctx.data._source_cache
    data._set_cache = dict(ctx.data._set_cache)
    data._fingerprints = dict(ctx.data._fingerprints)
    return dataclasses.replace(ctx, task=task, data=data, _memo=dict(ctx._memo) if memo else {},
                               _model=ctx._model if model else None,
                               _tokenizer=ctx._tokenizer if model else None)


@pytest.fixture(scope="module")
def base_ctx(tiny_run):
    ctx = make_context(tiny_run, device="cpu")
    ctx.data.sizes()  # build every set once
    ctx.model  # noqa: B018 - load once, shared by the copies
    return ctx


@pytest.fixture(scope="module")
def evaluated(tiny_run, base_ctx):
    """Evaluate from an empty prediction cache, counting the prediction passes."""
    import robench.evaluation as ev

    shutil.rmtree(tiny_run / "cache", ignore_errors=True)
    calls: list[int] = []
    real = ev.predict

    def counting(*args, **kwargs):
        calls.append(len(args[2]))
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ev, "predict", counting)
        paths = evaluate_run(tiny_run, SUITE, force=True, ctx=_fresh(base_ctx, memo=False))
        first = list(calls)
        calls.clear()
        second_ctx = _fresh(base_ctx, memo=False, model=False)
        evaluate_run(tiny_run, SUITE, force=True, ctx=second_ctx)
        second = list(calls)
    results = {name: json.loads(path.read_text()) for name, path in paths.items()}
    return results, first, second, second_ctx


@pytest.fixture(scope="module")
def results(evaluated):
    return evaluated[0]


def test_result_files_have_the_contract_keys(results, tiny_run, base_ctx):
    assert set(results) == set(suites()["quick"])
    run = json.loads((tiny_run / "run.json").read_text())
    for name, res in results.items():
        assert res["schema"] == "robench.result/2"
        for rel in res["artifacts"]:
            assert (tiny_run / rel).is_file()
        # self-contained: identity, task definition, limit, provenance and the metric declarations
        block = res["run"]
        assert block["run_id"] == run["run_id"] and block["task"] == "sentiment" and block["profile"] == "default"
        assert block["limit"] == run["task"]["limit"] == 64 and block["task_spec_hash"] == run["task"]["spec_hash"]
        assert len(block["task_spec_hash"]) == 16 and block["weights_fingerprint"] == run["weights_fingerprint"]
        assert res["evaluator_version"] == EVALUATORS.get(name).version
        assert {"versions", "git_commit", "robench_version", "created"} <= set(res)
        specs = [MetricSpec.from_json(s) for s in res["metric_specs"]]
        assert specs == list(EVALUATORS.get(name).metrics)
        assert not undeclared(specs, res["metrics"])  # every number it wrote is declared

    shift = results["shift"]["metrics"]
    assert set(shift["accuracy"]) == {"amazon", "tweets"}
    assert shift["mean_accuracy"] == pytest.approx(np.mean(list(shift["accuracy"].values())))
    assert shift["drop"] == pytest.approx(shift["id_accuracy"] - shift["mean_accuracy"])
    correct = results["shift"]["details"]["correct"]
    for name, acc in shift["accuracy"].items():
        assert set(correct[name]) <= {"0", "1"}
        assert len(correct[name]) == results["shift"]["data"][f"shift:{name}"]["size"]
        assert correct[name].count("1") / len(correct[name]) == pytest.approx(acc)

    cal = results["calibration"]["metrics"]
    for key in ("ece", "ece_raw", "mce", "brier", "nll"):
        assert key in cal["id"]
    assert set(cal["sets"]) == {"amazon", "tweets", "adversarial:valid_transfer"}
    # the headline: one weight per set, the in-distribution test set included (robench protocol)
    headline = [cal["id"], *cal["sets"].values()]
    assert cal["ece"] == pytest.approx(np.mean([s["ece"] for s in headline]))
    assert cal["ece_raw"] == pytest.approx(np.mean([s["ece_raw"] for s in headline]))
    assert cal["ece_id"] == cal["id"]["ece"]
    assert cal["ece_shift"] == pytest.approx(np.mean([cal["sets"][n]["ece"] for n in ("amazon", "tweets")]))
    assert cal["temperature"] > 0
    settings = results["calibration"]["settings"]
    assert settings["protocol"] == "robench" and settings["headline_includes_id"]
    assert settings["temperature_method"] == "continuous" and settings["temperature_fit_set"] == "calibration"
    assert any(a.endswith(".png") for a in results["calibration"]["artifacts"])

    ano = results["anomaly"]["metrics"]
    assert set(ano["scores"]) == {"msp", "max_logit", "energy", "mahalanobis"}
    for score in ano["scores"].values():
        assert set(score) == {"trec", "sms", "mean"}
        for m in score.values():
            assert set(m) == {"auroc", "aupr", "fpr95"} and all(0 <= v <= 1 for v in m.values())
    assert ano["auroc"] == ano["scores"]["msp"]["mean"]["auroc"]
    assert ano["fpr95"] == ano["scores"]["msp"]["mean"]["fpr95"]
    assert any(a.endswith(".png") for a in results["anomaly"]["artifacts"])


def test_temperature_is_fitted_on_the_calibration_split(results, tiny_run, base_ctx):
    ctx = _fresh(base_ctx)
    cal_logits, cal_y = ctx.predict("calibration").logits, ctx.labels("calibration")
    details = results["calibration"]["details"]["temperature"]
    assert details["fit_set"] == "calibration" and details["fit_n"] == len(cal_y)
    t = results["calibration"]["metrics"]["temperature"]
    assert t == pytest.approx(M.fit_temperature_nll(cal_logits, cal_y)["temperature"])
    assert details["grid"]["temperature"] == M.fit_temperature_grid(cal_logits, cal_y)["temperature"]
    # not the validation fit: the temperature does not see the examples that chose the epoch
    val_t = M.fit_temperature_nll(ctx.predict("validation").logits, ctx.labels("validation"))["temperature"]
    assert t != pytest.approx(val_t)
    # the id metrics use that temperature on the test logits
    test = ctx.predict("test").logits
    expected = M.ece(M.softmax(test, t), ctx.labels("test"))
    assert results["calibration"]["metrics"]["id"]["ece"] == pytest.approx(expected)
    # the headline under each fit: the continuous one is the headline, the grid one recomputed from the logits
    fits = results["calibration"]["metrics"]["fits"]
    assert fits["continuous"]["ece"] == results["calibration"]["metrics"]["ece"]
    t_grid = fits["grid"]["temperature"]
    keys = ["test", "shift:amazon", "shift:tweets", "adversarial:valid_transfer"]
    grid = np.mean([M.ece(M.softmax(ctx.predict(k).logits, t_grid), ctx.labels(k)) for k in keys])
    assert fits["grid"]["ece"] == pytest.approx(grid)


def test_calibration_split_is_disjoint_from_train_and_validation(base_ctx):
    ctx = _fresh(base_ctx)
    held_out = set(ctx.texts("calibration"))
    assert held_out and not held_out & set(ctx.texts("validation"))
    assert not held_out & set(ctx.texts("train"))


def test_paper_protocol_grid_on_validation_without_id(tiny_run, base_ctx):
    ctx = _fresh(base_ctx)
    res = json.loads(evaluate_run(tiny_run, "calibration", force=True, ctx=ctx,
                                  options={"calibration": {"protocol": "paper"}})["calibration"].read_text())
    val, val_y = ctx.predict("validation").logits, ctx.labels("validation")
    metrics, settings = res["metrics"], res["settings"]
    assert settings["protocol"] == "paper" and settings["temperature_fit_set"] == "validation"
    assert metrics["temperature"] == M.fit_temperature_grid(val, val_y)["temperature"]
    assert metrics["temperature"] in M.PAPER_TEMPERATURES
    assert metrics["ece"] == pytest.approx(np.mean([s["ece"] for s in metrics["sets"].values()]))  # no id
    assert list(res["details"]["examples"]["sets"]) == list(metrics["sets"])


def test_task_without_calibration_set_falls_back_to_validation(tiny_run, base_ctx):
    ctx = _fresh(base_ctx)
    del ctx.task.sets["calibration"]
    res = json.loads(evaluate_run(tiny_run, "calibration", force=True, ctx=ctx)["calibration"].read_text())
    assert res["settings"]["temperature_fit_set"] == "validation"
    assert any("has no calibration set" in w for w in res["warnings"])
    val, val_y = ctx.predict("validation").logits, ctx.labels("validation")
    assert res["metrics"]["temperature"] == pytest.approx(M.fit_temperature_nll(val, val_y)["temperature"])


def test_anomaly_msp_matches_direct_computation(results, tiny_run, base_ctx):
    ctx = _fresh(base_ctx)
    s_in = M.msp_score(ctx.predict("test").logits)
    s_out = M.msp_score(ctx.predict("ood:trec").logits)
    assert results["anomaly"]["metrics"]["scores"]["msp"]["trec"]["auroc"] == pytest.approx(M.auroc(s_in, s_out))


def test_stored_per_example_data_reproduce_the_headlines(results, tiny_run):
    """Calibration stores each scored example's confidence (after temperature scaling) and correctness, anomaly
    the headline detector's score of every example; recomputed from them, ECE (the evaluator's own netcal
    binning) and AUROC (scikit-learn) equal the headline numbers exactly, and the board tests on them."""
    from sklearn.metrics import roc_auc_score

    from robench.report.aspects import declared_columns
    from robench.report.board import example_data
    from robench.results import load_results

    cal, ano = results["calibration"], results["anomaly"]
    assert cal["evaluator_version"] == 3 and ano["evaluator_version"] == 2
    ex = cal["details"]["examples"]
    assert ex["bins"] == cal["settings"]["bins"] and ex["temperature"] == cal["metrics"]["temperature"]
    assert list(ex["sets"]) == ["id", *cal["metrics"]["sets"]]  # exactly the sets the headline averages
    assert ex["sets"]["id"] == ex["id"]
    eces = []
    for name, block in ex["sets"].items():
        metrics = cal["metrics"]["id"] if name == "id" else cal["metrics"]["sets"][name]
        conf, hits = np.array(block["confidence"]), np.array([int(c) for c in block["correct"]])
        assert len(conf) == len(hits) == metrics["n"]
        assert M.ece_from_confidence(conf, hits, ex["bins"]) == metrics["ece"]
        assert hits.mean() == pytest.approx(metrics["accuracy"]) and conf.mean() == pytest.approx(metrics["confidence"])
        eces.append(M.ece_from_confidence(conf, hits, ex["bins"]))
    assert float(np.mean(eces)) == cal["metrics"]["ece"]

    ex = ano["details"]["examples"]
    assert ex["score"] == "msp" and len(ex["in"]) == ano["details"]["n_in"]
    aurocs = []
    for name, scores in ex["out"].items():
        assert len(scores) == ano["details"]["n_out"][name]
        y = np.r_[np.zeros(len(ex["in"])), np.ones(len(scores))]
        aurocs.append(roc_auc_score(y, np.r_[ex["in"], scores]))
        assert aurocs[-1] == ano["metrics"]["scores"]["msp"][name]["auroc"]
    assert float(np.mean(aurocs)) == ano["metrics"]["auroc"]

    records = [r for r in load_results(tiny_run / "results") if r.evaluator in ("calibration", "anomaly")]
    columns = declared_columns(records)
    assert columns["ece"].statistic == "ece" and columns["auroc"].statistic == "auroc"
    for rec in records:
        aspect = columns["ece" if rec.evaluator == "calibration" else "auroc"]
        assert example_data(rec, aspect) is not None


def test_predictions_computed_once_and_cached(evaluated):
    _, first, second, second_ctx = evaluated
    # one pass per distinct set (test, validation, train, 2 shift, 2 OOD) although four evaluators
    # read the test set, one of them with features
    assert len(first) == 8  # train, validation, test, 2 shift, 2 OOD, 1 static adversarial set
    assert second == []  # a fresh context reads everything from the disk cache ...
    assert second_ctx._model is None  # ... without even loading the model


def test_overlapping_ood_texts_are_dropped_with_warning(tiny_run, base_ctx):
    ctx = _fresh(base_ctx)
    test_texts = ctx.texts("test")
    ood = ctx.texts("ood:sms")
    mixed = test_texts[:5] + ood[:20]
    _inject(ctx, "ood:sms", mixed, [-1] * len(mixed))
    path = evaluate_run(tiny_run, "anomaly", force=True, ctx=ctx)["anomaly"]
    res = json.loads(path.read_text())
    assert any("dropped 5 of 25" in w for w in res["warnings"])
    assert res["details"]["dropped_overlap"]["sms"] == 5
    assert res["details"]["n_out"]["sms"] == 20 == len(res["details"]["examples"]["out"]["sms"])
    assert res["data"]["ood:sms"]["used"] == 20


def test_ood_set_inside_test_set_is_an_error(tiny_run, base_ctx):
    ctx = _fresh(base_ctx)
    texts = ctx.texts("test")[:10]
    _inject(ctx, "ood:trec", texts, [-1] * 10)
    with pytest.raises(ConfigError, match="every text of OOD set 'ood:trec'"):
        evaluate_run(tiny_run, "anomaly", force=True, ctx=ctx)


def test_label_outside_task_labels_is_an_error(tiny_run, base_ctx):
    ctx = _fresh(base_ctx)
    texts = ctx.texts("shift:amazon")[:6]
    _inject(ctx, "shift:amazon", texts, [0, 1, 2, 0, 1, 0])
    for name in ("shift", "calibration"):
        with pytest.raises(ConfigError, match="outside the task's labels"):
            evaluate_run(tiny_run, name, force=True, ctx=ctx)


def test_task_without_shift_or_ood_sets_is_an_error(tiny_run, base_ctx):
    ctx = _fresh(base_ctx)
    ctx.task.sets = {k: v for k, v in ctx.task.sets.items() if not k.startswith(("shift:", "ood:", "adversarial:"))}
    for name, group in (("shift", "shift"), ("calibration", "shift"), ("anomaly", "ood")):
        with pytest.raises(ConfigError, match=f"has no {group} sets") as err:
            evaluate_run(tiny_run, name, force=True, ctx=ctx)
        assert "\n" not in str(err.value)


def test_fit_set_equal_to_a_scored_set_is_an_error(tiny_run, base_ctx):
    ctx = _fresh(base_ctx)
    _inject(ctx, "calibration", ctx.texts("shift:tweets"), list(ctx.labels("shift:tweets")))
    with pytest.raises(ConfigError, match="the calibration split is identical to scored set 'shift:tweets'"):
        evaluate_run(tiny_run, "calibration", force=True, ctx=ctx)
    ctx = _fresh(base_ctx)
    _inject(ctx, "validation", ctx.texts("shift:tweets"), list(ctx.labels("shift:tweets")))
    with pytest.raises(ConfigError, match="held-out"):
        evaluate_run(tiny_run, "calibration", force=True, ctx=ctx, options={"calibration": {"protocol": "paper"}})
    ctx = _fresh(base_ctx)
    _inject(ctx, "calibration", ctx.texts("validation"), list(ctx.labels("validation")))
    with pytest.raises(ConfigError, match="calibration split is identical to validation"):
        evaluate_run(tiny_run, "calibration", force=True, ctx=ctx)


def test_adversarial_sets_join_the_calibration_average(tiny_run, base_ctx):
    ctx = _fresh(base_ctx)
    _inject(ctx, "adversarial:fake", ctx.texts("test")[:20][::-1], list(ctx.labels("test")[:20][::-1]))
    res = json.loads(evaluate_run(tiny_run, "calibration", force=True, ctx=ctx)["calibration"].read_text())
    sets = res["metrics"]["sets"]
    assert "adversarial:fake" in sets
    assert res["metrics"]["ece"] == pytest.approx(np.mean([s["ece"] for s in [res["metrics"]["id"], *sets.values()]]))


def test_bad_options(tiny_run, base_ctx):
    with pytest.raises(ConfigError, match="temperature must be one of"):
        evaluate_run(tiny_run, "calibration", options={"calibration": {"temperature": "magic"}}, ctx=base_ctx)
    with pytest.raises(ConfigError, match="protocol must be one of robench, paper"):
        evaluate_run(tiny_run, "calibration", options={"calibration": {"protocol": "guo"}}, ctx=base_ctx)
    with pytest.raises(ConfigError, match="unknown score"):
        evaluate_run(tiny_run, "anomaly", options={"anomaly": {"scores": ["nope"]}}, ctx=base_ctx)
