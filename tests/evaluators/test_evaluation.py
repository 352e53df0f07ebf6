"""Evaluating a run (robench/evaluation.py): the id result and when it is recomputed, limited evaluations
that never replace the full result, and the prediction cache: damaged weights are refused, a damaged
cache or an unreadable old result is recomputed, never scored."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli

from robench.evaluation import evaluate_run
from robench.identity import result_path

# ------------------------------------------------------------------------------------- data lost / wrong numbers


def test_limited_eval_never_replaces_the_full_result(monkeypatch, capsys, run):
    assert run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--device", "cpu")[0] == 0
    full = json.loads((run / "results" / "id.json").read_text())
    assert run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--limit", "16",
                   "--device", "cpu")[0] == 0
    assert json.loads((run / "results" / "id.json").read_text()) == full  # untouched
    limited = json.loads((run / "results" / "id.limit16.json").read_text())
    assert limited["metrics"]["n"] == 16 and limited["run"]["limit"] == 16
    from robench.results import load_results

    labels = {r.task: r.metrics["n"] for r in load_results(run)}
    # never one row, and never the row of a run trained on 16 examples
    assert labels == {"sentiment (limit 64)": 64, "sentiment (limit 64, eval limit 16)": 16}


def test_a_limited_eval_of_a_run_trained_on_all_data_is_not_a_limited_runs_row():
    from robench.identity import task_label

    assert task_label("sentiment", None, 16, None) == "sentiment (eval limit 16)"
    assert task_label("sentiment", None, 16, 16) == "sentiment (limit 16)"  # trained and evaluated on 16
    assert task_label("sentiment", "quick", 16, None) == "sentiment (quick, eval limit 16)"
    assert task_label("sentiment", None, None, None) == "sentiment"
    assert task_label("sentiment", "default", 64, 64) == "sentiment (limit 64)"


def test_limited_eval_keeps_the_full_figures_and_logs(run):
    from robench.evaluation import evaluate_run, make_context

    evaluate_run(run, "calibration", device="cpu")
    full = (run / "artifacts" / "calibration_reliability.png").read_bytes()
    evaluate_run(run, "calibration", device="cpu", limit=16)
    assert (run / "artifacts" / "calibration_reliability.png").read_bytes() == full
    assert (run / "artifacts" / "calibration_reliability.limit16.png").is_file()
    ctx = make_context(run, "cpu", limit=16)
    assert ctx.artifact("attack-pwws-n20-seed0-qbnone.jsonl").name == "attack-pwws-n20-seed0-qbnone.limit16.jsonl"
    assert make_context(run, "cpu", limit=64).eval_limit is None  # the run's own limit: the full result


def test_damaged_weights_are_not_scored_from_the_cache(monkeypatch, capsys, run):
    assert run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--device", "cpu")[0] == 0
    weights = run / "model.safetensors"
    with open(weights, "r+b") as fh:
        fh.truncate(100_000)
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--force", "--device", "cpu")
    assert_one_line_error(code, err, "model.safetensors", "truncated or replaced", "re-train")


@pytest.mark.parametrize("cache_bytes", [b"", b"PK\x03\x04 truncated"])
def test_damaged_cache_is_recomputed(run, cache_bytes):
    from robench.evaluation import evaluate_run

    first = json.loads(evaluate_run(run, "id", device="cpu")["id"].read_text())["metrics"]
    caches = list((run / "cache").glob("*.npz"))
    assert caches
    for cache in caches:
        cache.write_bytes(cache_bytes)
    again = json.loads(evaluate_run(run, "id", device="cpu", force=True)["id"].read_text())["metrics"]
    assert again == first
    for cache in caches:  # rewritten whole
        with np.load(cache) as z:
            assert z["logits"].shape[0] == 64


def test_concurrent_cache_writes_use_unique_temp_names(tmp_path):
    from robench.evaluation import _write_cache

    target = tmp_path / "cache" / "k.npz"
    errors: list[Exception] = []

    def write() -> None:
        for _ in range(40):
            try:
                _write_cache(target, {"logits": np.zeros((4, 2), np.float32)})
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not list(target.parent.glob(".*tmp*"))


# ------------------------------------------------------------------------------------- results and baselines


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"[1, 2]", b'{"settings": 5}'])
def test_unreadable_old_result_is_recomputed_not_a_traceback(run, content):
    from robench.evaluation import evaluate_run

    path = run / "results" / "id.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    evaluate_run(run, "id", device="cpu")  # no --force: the damaged file is not "the same settings"
    assert json.loads(path.read_text())["metrics"]["n"] == 64


def test_eval_id_writes_result_and_skips_unless_forced(tiny_run):
    written = evaluate_run(tiny_run, "id", device="cpu", force=True)
    path = written["id"]
    assert path == result_path(tiny_run, "id")
    result = json.loads(path.read_text())
    assert result["schema"] == "robench.result/2" and result["evaluator"] == "id"
    assert 0.0 <= result["metrics"]["accuracy"] <= 1.0 and result["metrics"]["n"] == 64
    assert len(result["details"]["correct"]) == 64
    assert result["data"]["test"]["size"] == 64 and result["run"]["method"] == "vanilla"
    mtime = path.stat().st_mtime_ns
    evaluate_run(tiny_run, "id", device="cpu")
    assert path.stat().st_mtime_ns == mtime, "an existing result must be skipped"
    evaluate_run(tiny_run, "id", device="cpu", force=True)
    assert path.stat().st_mtime_ns != mtime
    again = json.loads(path.read_text())
    assert again["metrics"] == result["metrics"], "same run, same scores"


def test_a_result_in_another_precision_is_not_reused(run):
    """A result answers a request only in its own precision: asked in fp32, a bf16 result is recomputed (a file
    from before the precision was recorded counts as fp32, robench's evaluation default)."""
    path = evaluate_run(run, "id", device="cpu")["id"]
    result = json.loads(path.read_text())
    assert result["settings"]["precision"] == "fp32"
    result["settings"]["precision"] = "bf16"
    path.write_text(json.dumps(result))
    evaluate_run(run, "id", device="cpu")
    assert json.loads(path.read_text())["settings"]["precision"] == "fp32"  # recomputed
    result = json.loads(path.read_text())
    del result["settings"]["precision"]
    path.write_text(json.dumps(result))
    mtime = path.stat().st_mtime_ns
    evaluate_run(run, "id", device="cpu")
    assert path.stat().st_mtime_ns == mtime  # no precision recorded: fp32, reused


def test_a_model_without_a_recognised_head_still_gets_its_ood_scores(run, monkeypatch):
    """A head robench cannot hook (named other than classifier/score) costs the Mahalanobis score only, with a
    warning; the anomaly evaluation itself goes on."""
    import robench.predict as predict

    def no_head(model, store):
        raise ValueError("model has no `classifier` head; cannot extract penultimate features")

    monkeypatch.setattr(predict, "_penultimate_hook", no_head)
    path = evaluate_run(run, "anomaly", device="cpu")["anomaly"]
    result = json.loads(path.read_text())
    assert "mahalanobis" not in result["metrics"]["scores"] and "msp" in result["metrics"]["scores"]
    assert any("mahalanobis score skipped" in w for w in result["warnings"])
    assert result["settings"]["scores_computed"] == ["msp", "max_logit", "energy"]
