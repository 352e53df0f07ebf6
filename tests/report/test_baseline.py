"""Regression baselines through the CLI: check passes on equal results and fails on worse ones; a damaged
baseline is one line."""

from __future__ import annotations

import json

import pytest
from cli_helpers import assert_one_line_error, id_result, run_cli
from typer.testing import CliRunner

from robench.baseline import parse_tolerances, tolerance_for
from robench.cli import app
from robench.errors import ConfigError
from robench.evaluators import EVALUATORS
from robench.identity import result_path
from robench.results import make_result
from robench.storage import atomic_write_json


def result(evaluator, run, metrics, **kwargs):
    """A result file's content with the evaluator's own metric declarations."""
    return make_result(evaluator, run, metrics, specs=EVALUATORS.get(evaluator).metrics, **kwargs)

runner = CliRunner()


def write_runs(root, *, acc=0.80, ece=0.10, auroc=0.90, seeds=(0, 1)):
    for method, bonus in (("vanilla", 0.0), ("ram", 0.02)):
        for seed in seeds:
            run = {"run_id": f"s/tiny/{method}/seed{seed}", "task": {"name": "sentiment", "profile": "quick"},
                   "model": {"name": "tiny"}, "method": {"name": method, "selective": False}, "seed": seed}
            run_dir = root / method / f"seed{seed}"
            atomic_write_json(result_path(run_dir, "id"),
                              result("id", run, {"accuracy": acc + bonus, "n": 100}, details={"correct": "10"}))
            atomic_write_json(result_path(run_dir, "calibration"),
                              result("calibration", run, {"ece": ece, "temperature": 2.0}))
            atomic_write_json(result_path(run_dir, "anomaly"),
                              result("anomaly", run, {"auroc": auroc, "fpr95": 1 - auroc}))


@pytest.fixture
def baseline(tmp_path):
    write_runs(tmp_path / "base")
    path = tmp_path / "baselines" / "b.json"
    res = runner.invoke(app, ["baseline", "record", "--results", str(tmp_path / "base"), "--out", str(path)])
    assert res.exit_code == 0, res.output
    data = json.loads(path.read_text())
    scores = data["scores"]["sentiment (quick) | tiny | ram"]
    assert scores["id.accuracy"]["value"] == pytest.approx(0.82)
    assert scores["calibration.ece"]["direction"] == "lower"
    assert "calibration.temperature" not in scores and "id.n" not in scores  # informational, not stored
    return path


def test_check_passes_on_equal(tmp_path, baseline):
    write_runs(tmp_path / "now")
    res = runner.invoke(app, ["check", "--results", str(tmp_path / "now"), "--baseline", str(baseline)])
    assert res.exit_code == 0, res.output
    assert "OK" in res.output and "none regressed" in res.output


def test_check_passes_on_better_and_within_tolerance(tmp_path, baseline):
    write_runs(tmp_path / "now", acc=0.795, ece=0.05, auroc=0.95)  # accuracy -0.005 < default tolerance 0.01
    res = runner.invoke(app, ["check", "--results", str(tmp_path / "now"), "--baseline", str(baseline)])
    assert res.exit_code == 0, res.output
    assert "improved" in res.output


def test_check_fails_on_worse(tmp_path, baseline):
    write_runs(tmp_path / "now", acc=0.70)
    res = runner.invoke(app, ["check", "--results", str(tmp_path / "now"), "--baseline", str(baseline)])
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.output and "id.accuracy" in res.output and "regressed" in res.output
    assert "calibration.ece" not in res.output  # only regressed metrics are listed
    # a generous per-metric tolerance lets the same results pass
    res = runner.invoke(app, ["check", "--results", str(tmp_path / "now"), "--baseline", str(baseline),
                              "--tolerance", "id.accuracy=0.2"])
    assert res.exit_code == 0, res.output


def test_check_is_direction_aware(tmp_path, baseline):
    write_runs(tmp_path / "now", ece=0.15)  # ECE up = worse
    res = runner.invoke(app, ["baseline", "check", "--results", str(tmp_path / "now"), "--baseline", str(baseline)])
    assert res.exit_code == 1 and "calibration.ece" in res.output
    write_runs(tmp_path / "now2", auroc=0.80)  # AUROC down and FPR95 up = worse
    res = runner.invoke(app, ["check", "--results", str(tmp_path / "now2"), "--baseline", str(baseline)])
    assert res.exit_code == 1 and "anomaly.auroc" in res.output and "anomaly.fpr95" in res.output


def test_check_missing_metric(tmp_path, baseline):
    write_runs(tmp_path / "now")
    for p in (tmp_path / "now").rglob("anomaly.json"):
        p.unlink()
    res = runner.invoke(app, ["check", "--results", str(tmp_path / "now"), "--baseline", str(baseline)])
    assert res.exit_code == 1 and "missing" in res.output
    res = runner.invoke(app, ["check", "--results", str(tmp_path / "now"), "--baseline", str(baseline),
                              "--allow-missing"])
    assert res.exit_code == 0, res.output
    assert "missing, allowed" in " ".join(res.output.split())
    # allowed to miss metrics, but not all of them: an empty results folder checks nothing
    (tmp_path / "empty").mkdir()
    write_runs(tmp_path / "other", seeds=(5,))  # results of other seeds only: none of the baseline's
    res = runner.invoke(app, ["check", "--results", str(tmp_path / "other"), "--baseline", str(baseline),
                              "--allow-missing"])
    assert res.exit_code == 1 and "nothing was checked" in " ".join(res.output.split())


def test_a_seed_that_is_absent_or_scored_nan_is_missing_not_left_out(tmp_path, baseline):
    """The baseline holds seeds 0 and 1: a run that lost seed 1 (absent, or a NaN score) does not pass on the
    mean of seed 0 alone."""
    write_runs(tmp_path / "one", seeds=(0,))
    res = runner.invoke(app, ["check", "--results", str(tmp_path / "one"), "--baseline", str(baseline)])
    assert res.exit_code == 1 and "missing" in res.output
    write_runs(tmp_path / "nan")
    path = tmp_path / "nan" / "ram" / "seed1" / "results" / "calibration.json"
    data = json.loads(path.read_text())
    data["metrics"]["ece"] = float("nan")
    path.write_text(json.dumps(data))
    res = runner.invoke(app, ["check", "--results", str(tmp_path / "nan"), "--baseline", str(baseline)])
    assert res.exit_code == 1 and "calibration.ece" in res.output and "missing" in res.output


@pytest.mark.parametrize("value", ["nan", "inf", "ece=nan", "-0.1"])
def test_a_tolerance_that_lets_anything_pass_is_refused(monkeypatch, capsys, tmp_path, baseline, value):
    write_runs(tmp_path / "now", acc=0.10)  # a collapse
    code, _, err = run_cli(monkeypatch, capsys, "check", "--results", str(tmp_path / "now"), "--baseline",
                           str(baseline), "--tolerance", value)
    assert_one_line_error(code, err, f"bad --tolerance {value!r}")
    code, _, err = run_cli(monkeypatch, capsys, "baseline", "record", "--results", str(tmp_path / "now"), "--out",
                           str(tmp_path / "b2.json"), "--tolerance", value)
    assert_one_line_error(code, err, f"bad --tolerance {value!r}")


def test_tolerances_and_errors(tmp_path):
    tol = parse_tolerances(["0.02", "ece=0.005,shift.*=0.03"])
    assert tolerance_for("id.accuracy", tol) == 0.02
    assert tolerance_for("calibration.ece", tol) == 0.005
    assert tolerance_for("shift.accuracy.amazon", tol) == 0.03
    assert tolerance_for("id.accuracy", {}) == 0.01
    with pytest.raises(ConfigError):
        parse_tolerances(["ece=abc"])
    res = runner.invoke(app, ["check", "--results", str(tmp_path), "--baseline", str(tmp_path / "nope.json")])
    assert isinstance(res.exception, ConfigError)


def test_directions_come_from_declarations(tmp_path):
    """The gate reads the direction each result declares: flip a declaration and the verdict flips."""
    from robench.baseline import collect_scores

    write_runs(tmp_path / "r", seeds=(0,))
    scores = collect_scores(tmp_path / "r")["sentiment (quick) | tiny | vanilla"]
    assert scores["calibration.ece"]["direction"] == "lower" and scores["id.accuracy"]["direction"] == "higher"
    for path in (tmp_path / "r").rglob("calibration.json"):  # declare ECE higher-is-better (a wrong declaration)
        data = json.loads(path.read_text())
        for spec in data["metric_specs"]:
            if spec["name"] == "ece":
                spec["direction"] = "higher"
        path.write_text(json.dumps(data))
    assert collect_scores(tmp_path / "r")["sentiment (quick) | tiny | vanilla"]["calibration.ece"]["direction"] == "higher"
    for path in (tmp_path / "r").rglob("id.json"):  # an undeclared metric is never checked
        data = json.loads(path.read_text())
        data["metric_specs"] = []
        path.write_text(json.dumps(data))
    assert "id.accuracy" not in collect_scores(tmp_path / "r")["sentiment (quick) | tiny | vanilla"]


@pytest.mark.parametrize("scores", [{}, {"a | b | c": {}}, {"a | b | c": {"id.accuracy": {"value": float("nan"),
                                                                                          "direction": "higher"}}},
                                    {"a | b | c": {"id.accuracy": {"value": 0.5}}}])
def test_baseline_with_nothing_to_check_is_an_error(tmp_path, scores):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"schema": "robench.baseline/1", "tolerances": {"*": 0.01}, "scores": scores}))
    write_runs(tmp_path / "now", seeds=(0,))
    res = runner.invoke(app, ["check", "--results", str(tmp_path / "now"), "--baseline", str(path)])
    assert isinstance(res.exception, ConfigError), res.output




@pytest.mark.parametrize("content, fragment", [
    (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not valid JSON"),
    (json.dumps({"schema": "robench.baseline/1", "scores": []}).encode(), "scores is [], not a mapping"),
    (json.dumps({"schema": "robench.baseline/1", "scores": {}}).encode(), "scores is {}, not a mapping with scores to check"),
    (json.dumps({"schema": "robench.baseline/1", "scores": {"a | b | c": {"id.accuracy": {
        "value": 0.5, "direction": "higher"}}, "x": []}}).encode(), 'scores["x"] is [], not a mapping'),
    (json.dumps({"schema": "robench.baseline/1", "scores": {"a | b | c": {"id.accuracy": {"direction": "higher"}}}}
                ).encode(), 'key \'scores["a | b | c"]["id.accuracy"].value\' is missing'),
    (json.dumps({"schema": "robench.baseline/1", "scores": {"a | b | c": {"id.accuracy": {
        "value": "high", "direction": "higher"}}}}).encode(), "value is 'high', not a number"),
    (json.dumps({"schema": "robench.baseline/1", "scores": {"a | b | c": {"id.accuracy": {
        "value": 0.5, "direction": "higher"}}}, "tolerances": {"*": "big"}}).encode(), 'tolerances["*"] is \'big\', not a number'),
])
def test_bad_baseline_gives_one_line(monkeypatch, capsys, tmp_path, run, content, fragment):
    id_result(run)
    baseline = tmp_path / "b.json"
    baseline.write_bytes(content)
    code, _, err = run_cli(monkeypatch, capsys, "check", "--results", str(run), "--baseline", str(baseline))
    assert_one_line_error(code, err, fragment)
