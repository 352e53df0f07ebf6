"""Evaluating a checkpoint robench did not train (robench/external.py), from the CLI and from Python
(robench/api.py), and boards whose rows are models (robench.report.board.by_model)."""

from __future__ import annotations

import json
import shutil

import numpy as np
from cli_helpers import assert_one_line_error, run_cli

import robench

LIMIT = "16"


def saved_checkpoint(tiny_run, dest, id2label=None):
    """The tiny run's weights as an ordinary save_pretrained folder (no run.json), optionally relabelled."""
    shutil.copytree(tiny_run, dest, ignore=shutil.ignore_patterns("run.json", "results", "cache", "artifacts"))
    if id2label is not None:
        config = json.loads((dest / "config.json").read_text())
        config["id2label"] = {str(i): name for i, name in enumerate(id2label)}
        config["label2id"] = {name: i for i, name in enumerate(id2label)}
        (dest / "config.json").write_text(json.dumps(config))
    return dest


def id_metrics(path):
    return json.loads(path.read_text())["metrics"]


def test_cli_and_api_evaluate_a_saved_checkpoint_like_the_run_itself(monkeypatch, capsys, tmp_path, tiny_run):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("results", "cache", "artifacts"))
    ckpt = saved_checkpoint(tiny_run, tmp_path / "ckpt")
    assert run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--device", "cpu")[0] == 0
    code, out, err = run_cli(monkeypatch, capsys, "eval", "--model", str(ckpt), "--suite", "id", "--limit", "64",
                             "--device", "cpu", "--out", str(tmp_path / "ext-cli"))
    assert code == 0, err
    record = json.loads((tmp_path / "ext-cli" / "run.json").read_text())
    assert record["external"]["trained_outside_robench"] is True and record["method"]["name"] == "external"
    assert record["external"]["source"] == str(ckpt.resolve()) and record["weights_fingerprint"]
    res = robench.evaluate(str(ckpt), task="sentiment", suite="id", limit=64, device="cpu", out=tmp_path / "ext-api")
    cli_metrics = id_metrics(tmp_path / "ext-cli" / "results" / "id.json")
    assert cli_metrics == id_metrics(res.paths["id"])
    own = id_metrics(run / "results" / "id.json")  # the same weights evaluated as a robench run
    assert cli_metrics["accuracy"] == own["accuracy"] and cli_metrics["n"] == own["n"] == 64
    frame = res.to_frame()
    assert set(frame["metric"]) >= {"accuracy"} and set(frame["method"]) == {"external"}
    assert res.headline()["id"] == own["accuracy"]


def test_a_model_object_is_evaluated_like_its_folder(tmp_path, tiny_run):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_run)
    tokenizer = AutoTokenizer.from_pretrained(tiny_run)
    res = robench.evaluate(model, tokenizer=tokenizer, suite="id", limit=32, device="cpu", out=tmp_path / "obj")
    folder = robench.evaluate(str(saved_checkpoint(tiny_run, tmp_path / "ckpt")), suite="id", limit=32, device="cpu",
                              out=tmp_path / "dir")
    assert id_metrics(res.paths["id"])["accuracy"] == id_metrics(folder.paths["id"])["accuracy"]


def test_label_names_are_matched_and_mismatches_are_one_line(monkeypatch, capsys, tmp_path, tiny_run):
    ckpt = saved_checkpoint(tiny_run, tmp_path / "ckpt", ["LABEL_0", "LABEL_1"])
    args = ("eval", "--model", str(ckpt), "--suite", "id", "--limit", LIMIT, "--device", "cpu")
    code, _, err = run_cli(monkeypatch, capsys, *args, "--out", str(tmp_path / "a"))
    assert_one_line_error(code, err, "label names do not match", "outputs [LABEL_0, LABEL_1]",
                          "task labels [negative, positive]", "--label-map negative=0,positive=1")
    assert not (tmp_path / "a").exists()
    code, _, err = run_cli(monkeypatch, capsys, *args, "--out", str(tmp_path / "b"), "--label-map",
                           "negative=0,positive=1")
    assert code == 0, err
    straight = id_metrics(tmp_path / "b" / "results" / "id.json")
    # swapped names: matched by name, so the outputs are reordered and every prediction flips
    swapped = saved_checkpoint(tiny_run, tmp_path / "swapped", ["Positive", "NEGATIVE"])
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--model", str(swapped), "--suite", "id", "--limit", LIMIT,
                           "--device", "cpu", "--out", str(tmp_path / "c"))
    assert code == 0, err
    flipped = id_metrics(tmp_path / "c" / "results" / "id.json")
    assert np.isclose(flipped["accuracy"], 1 - straight["accuracy"])
    code, _, err = run_cli(monkeypatch, capsys, *args, "--out", str(tmp_path / "d"), "--label-map", "negative=0,positive=0")
    assert_one_line_error(code, err, "must give each task label one distinct output index")


def test_wrong_label_count_pickle_weights_and_offline_hub_ids_are_one_line(monkeypatch, capsys, tmp_path, tiny_run):
    three = saved_checkpoint(tiny_run, tmp_path / "three", ["negative", "neutral", "positive"])
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--model", str(three), "--suite", "id", "--out",
                           str(tmp_path / "a"))
    assert_one_line_error(code, err, "label count mismatch", "[negative, neutral, positive]")
    pickled = saved_checkpoint(tiny_run, tmp_path / "pickled")
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--model", str(pickled), "--suite", "id", "--out",
                           str(tmp_path / "b"))
    assert_one_line_error(code, err, "has no safetensors weights", "pytorch_model.bin", "never loads")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--model", "someone/finetuned-sst2-xyz", "--suite", "id",
                           "--out", str(tmp_path / "c"))
    assert code == 2 and "hub is unreachable" in err and "save_pretrained" in err and "Traceback" not in err


def test_changed_weights_after_registration_are_refused(monkeypatch, capsys, tmp_path, tiny_run):
    ckpt = saved_checkpoint(tiny_run, tmp_path / "ckpt")
    args = ("eval", "--model", str(ckpt), "--suite", "id", "--limit", LIMIT, "--device", "cpu",
            "--out", str(tmp_path / "r"))
    assert run_cli(monkeypatch, capsys, *args)[0] == 0
    assert run_cli(monkeypatch, capsys, *args)[0] == 0  # the same checkpoint again: the same folder, skipped
    with open(ckpt / "model.safetensors", "r+b") as fh:
        fh.seek(-8, 2)
        fh.write(b"\x00" * 8)
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(tmp_path / "r"), "--suite", "id")
    assert_one_line_error(code, err, "changed since they were registered", "--force")
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert_one_line_error(code, err, "was registered differently (weights differ)", "--force")


def test_eval_needs_exactly_one_of_run_and_model(monkeypatch, capsys, tiny_run):
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--suite", "id")
    assert_one_line_error(code, err, "give either --run")
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(tiny_run), "--model", str(tiny_run))
    assert_one_line_error(code, err, "give either --run")


def test_model_board_compares_checkpoints_against_a_reference(monkeypatch, capsys, tmp_path, tiny_run):
    good = saved_checkpoint(tiny_run, tmp_path / "good")
    bad = saved_checkpoint(tiny_run, tmp_path / "bad", ["positive", "negative"])  # every prediction flipped
    for ckpt in (good, bad):
        robench.evaluate(str(ckpt), suite="id", limit=64, device="cpu", out=tmp_path / "runs" / ckpt.name)
    frame = robench.leaderboard([tmp_path / "runs"], "id", by="model", reference="good", n_boot=200)
    assert list(frame["method"]) == ["good", "bad"] and set(frame["model"]) == {"models"}
    rows = frame.set_index("method")
    good_acc, bad_acc = rows.loc["good", "id_mean"], rows.loc["bad", "id_mean"]
    assert np.isclose(bad_acc, 1 - good_acc) and bad_acc != good_acc  # every prediction flipped
    assert np.isclose(rows.loc["bad", "id_delta"], (bad_acc - good_acc) / good_acc)
    assert 0 < rows.loc["bad", "id_p"] <= 1 and np.isnan(rows.loc["good", "id_p"])
    # the same statistics as a method board: the same records with the rows renamed give the same p-value

    from robench.report import leaderboard as method_board

    renamed = [r.relabel(method="vanilla" if r.model == "good" else "bad", model="m")
               for r in robench.load_results([tmp_path / "runs"])]
    same = method_board(renamed, "id", n_boot=200, significance="examples").frame.set_index("method")
    assert same.loc["bad", "id_p"] == rows.loc["bad", "id_p"]
    code, out, err = run_cli(monkeypatch, capsys, "leaderboard", "--results", str(tmp_path / "runs"), "--out",
                             str(tmp_path / "board"), "--by", "model", "--reference", "good", "--no-plots",
                             "--aspects", "id")
    assert code == 0, err
    board = (tmp_path / "board" / "LEADERBOARD.md").read_text()
    assert "## sentiment (limit 64) (models)" in board or "(models)" in board
    assert "| model | seeds |" in board
    code, _, err = run_cli(monkeypatch, capsys, "leaderboard", "--results", str(tmp_path / "runs"), "--out",
                           str(tmp_path / "board2"), "--by", "model", "--no-plots")
    assert_one_line_error(code, err, "needs a reference model", "rows: bad, good")


def test_a_registration_is_reused_only_for_the_same_limit_profile_and_model(tmp_path, tiny_run):
    """The same --out asked again with another data limit (or profile) is refused, not answered with the numbers
    of the first limit; --force registers again and recomputes."""
    from robench.errors import ConfigError
    from robench.external import register

    ckpt, out = saved_checkpoint(tiny_run, tmp_path / "ckpt"), tmp_path / "ext"
    first = robench.evaluate(str(ckpt), suite="id", limit=16, device="cpu", out=out)
    assert id_metrics(first.paths["id"])["n"] == 16
    assert register(str(ckpt), "sentiment", out, limit=16) == out  # the same request: reused
    for kw, what in (({}, "data limit"), ({"limit": 16, "profile": "quick"}, "profile"),
                     ({"limit": 16, "max_length": 32}, "max length")):
        try:
            register(str(ckpt), "sentiment", out, **kw)
        except ConfigError as exc:
            assert what in str(exc) and "--force" in str(exc)
        else:
            raise AssertionError(f"{kw}: reused a registration made with limit 16")
    again = robench.evaluate(str(ckpt), suite="id", limit=32, device="cpu", out=out, force=True)
    assert id_metrics(again.paths["id"])["n"] == 32
    assert json.loads((out / "run.json").read_text())["task"]["limit"] == 32


def test_force_on_the_same_registration_keeps_the_other_results(monkeypatch, capsys, tmp_path, tiny_run):
    """--force recomputes the evaluators asked for; the results of the others stay (they are this model's)."""
    ckpt, out = saved_checkpoint(tiny_run, tmp_path / "ckpt"), tmp_path / "ext"
    args = ("eval", "--model", str(ckpt), "--limit", LIMIT, "--device", "cpu", "--out", str(out))
    assert run_cli(monkeypatch, capsys, *args, "--suite", "id,calibration")[0] == 0
    calibration = (out / "results" / "calibration.json").read_bytes()
    assert run_cli(monkeypatch, capsys, *args, "--suite", "id", "--force")[0] == 0
    assert (out / "results" / "calibration.json").read_bytes() == calibration


def test_model_objects_are_rows_of_their_own(tmp_path, tiny_run):
    """Two model objects evaluated into two folders are two models on the board (named after their folders, as
    the Trainer callback's step-<N>), not one overwriting the other; a different object is not saved over a
    registered one without force."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from robench.errors import ConfigError
    from robench.results import load_results

    tokenizer = AutoTokenizer.from_pretrained(tiny_run)
    a = AutoModelForSequenceClassification.from_pretrained(tiny_run)
    b = AutoModelForSequenceClassification.from_pretrained(tiny_run)
    with torch.no_grad():
        b.classifier.weight.mul_(-1)
    robench.evaluate(a, tokenizer=tokenizer, suite="id", limit=16, device="cpu", out=tmp_path / "step-1")
    robench.evaluate(b, tokenizer=tokenizer, suite="id", limit=16, device="cpu", out=tmp_path / "step-2")
    records = load_results([tmp_path / "step-1", tmp_path / "step-2"])
    assert sorted(r.model for r in records) == ["step-1", "step-2"]
    weights = (tmp_path / "step-1" / "checkpoint" / "model.safetensors").read_bytes()
    try:
        robench.evaluate(b, tokenizer=tokenizer, suite="id", limit=16, device="cpu", out=tmp_path / "step-1")
    except ConfigError as exc:
        assert "another model's checkpoint" in str(exc)
    else:
        raise AssertionError("saved another model over a registered checkpoint")
    assert (tmp_path / "step-1" / "checkpoint" / "model.safetensors").read_bytes() == weights
    assert sorted(p.name for p in (tmp_path / "step-1").iterdir()) == ["checkpoint", "run"]  # no leftover
    res = robench.evaluate(a, tokenizer=tokenizer, suite="id", limit=16, device="cpu", out=tmp_path / "step-1")
    assert res.run_dir == tmp_path / "step-1" / "run"
