"""Damaged or foreign files that robench reads (a run folder and its run.json, result files, tuned files):
one line naming the file and the key, exit 2, never a traceback or a wrong number."""

from __future__ import annotations

import json

import pytest
from cli_helpers import TINY, assert_one_line_error, edit_json, id_result, run_cli


@pytest.mark.parametrize("damage, fragment", [
    (lambda r: (r / "config.json").unlink(), "no config.json"),
    (lambda r: (r / "config.json").write_text("{not json"), "could not be loaded"),
    (lambda r: ((r / "tokenizer.json").unlink(), (r / "vocab.txt").unlink(missing_ok=True)), "no tokenizer.json"),
    (lambda r: (r / "tokenizer.json").write_text("[1, 2"), "tokenizer could not be loaded"),
    (lambda r: (r / "run.json").write_text("[1, 2, 3]"), "not a robench run record"),
    (lambda r: (r / "run.json").write_bytes(b"\xff\xfe\x00garbage"), "not valid JSON"),
    (lambda r: _edit_run(r, lambda d: d.pop("task")), "key 'task'"),
    (lambda r: _edit_run(r, lambda d: d.__setitem__("seed", "zero")), "seed is 'zero'"),
    (lambda r: _edit_run(r, lambda d: d["config"].__setitem__("max_length", "long")), "config.max_length"),
])
def test_damaged_run_gives_one_line(monkeypatch, capsys, run, damage, fragment):
    damage(run)
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--device", "cpu")
    assert_one_line_error(code, err, fragment)


def _edit_run(run, change) -> None:
    data = json.loads((run / "run.json").read_text())
    change(data)
    (run / "run.json").write_text(json.dumps(data))




@pytest.mark.parametrize("damage, fragment", [
    (lambda p: p.write_text(p.read_text()[:200]), "not valid JSON"),
    (lambda p: p.write_bytes(b""), "empty or damaged"),
    (lambda p: p.write_bytes(b"\x00" * 64), "empty or damaged"),
    (lambda p: edit_json(p, lambda d: d["metric_specs"][0].__setitem__("name", 5)), "metric_specs[0].name is 5, not text"),
    (lambda p: edit_json(p, lambda d: d["run"].__setitem__("training_diagnostics", 5)), "training_diagnostics"),
    (lambda p: edit_json(p, lambda d: d.__setitem__("metrics", [1, 2])), "metrics is [1, 2], not a mapping"),
    (lambda p: edit_json(p, lambda d: d["run"].__setitem__("seed", "0; rm")), "run.seed"),
    (lambda p: edit_json(p, lambda d: d.__setitem__("metric_specs", [{"name": "accuracy"}])), "key 'metric_specs[0].direction' is missing"),
    (lambda p: edit_json(p, lambda d: d.__setitem__("artifacts", "x.png")), "artifacts is 'x.png', not a list"),
])
def test_damaged_result_names_the_file(monkeypatch, capsys, tmp_path, run, damage, fragment):
    path = id_result(run)
    assert run_cli(monkeypatch, capsys, "baseline", "record", "--results", str(run), "--out",
                   str(tmp_path / "b.json"))[0] == 0
    damage(path)
    for command in (["leaderboard", "--results", str(run), "--out", str(tmp_path / "lb"), "--no-plots"],
                    ["check", "--results", str(run), "--baseline", str(tmp_path / "b.json")]):
        code, _, err = run_cli(monkeypatch, capsys, *command)
        assert_one_line_error(code, err, str(path), fragment)






@pytest.mark.parametrize("lr, fragment", [
    ("fast", "has chosen lr 'fast', not a positive number"),
    ("1e-4", "has chosen lr '1e-4', not a positive number"),
    (-1, "has chosen lr -1, not a positive number"),
], ids=["word", "number-as-text", "negative"])
def test_a_tuned_file_with_a_bad_lr_is_one_line(monkeypatch, capsys, tmp_path, lr, fragment):
    tuned = tmp_path / "tuned.json"
    tuned.write_text(json.dumps({"schema": "robench.tuned/1", "task": {"name": "sentiment"}, "model": "tiny-bert",
                                 "methods": {"vanilla": {"chosen": {"setting": {"lr": lr}}}}}))
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY, "--tuned", str(tuned), "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, str(tuned), fragment)


def _result(run, monkeypatch, capsys):
    assert run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--device", "cpu")[0] == 0
    return run / "results" / "id.json"


@pytest.mark.parametrize("edit, fragment", [
    (lambda r: r.update(schema="robench.result/9"), "written by a newer robench (schema 'robench.result/9'"),
    (lambda r: r["metrics"].update(accuracy="0.9"), "metric 'accuracy' is '0.9', not a number"),
], ids=["newer-schema", "text-metric"])
def test_result_files_that_cannot_be_read_say_why(monkeypatch, capsys, tmp_path, run, edit, fragment):
    path = _result(run, monkeypatch, capsys)
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    code, _, err = run_cli(monkeypatch, capsys, "leaderboard", "--results", str(run), "--out", str(tmp_path / "b"),
                           "--no-plots")
    assert_one_line_error(code, err, str(path), fragment)
    if "newer" in fragment:
        assert "upgrade robench" in err and "delete it" not in err
