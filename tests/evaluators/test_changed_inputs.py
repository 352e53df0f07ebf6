"""No changed input is scored silently: eval checks the task and every set against what run.json recorded
at training (robench/evaluation.py, robench/tasks/), the board marks what was evaluated anyway and
footnotes overlaps with train."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from cli_helpers import assert_one_line_error, run_cli

from robench.errors import ConfigError
from robench.tasks import TaskData, load_task

TASK = """name: movies
labels: [negative, positive]
sources:
  m:
    file: data.csv
    label_column: label
    partition: {{fractions: {{train: {train}, validation: 0.2, test: {test}}}}}
  s:
    file: {shift}
    label_column: label
  o:
    file: ood.txt
train: {{source: m, part: train}}
validation: {{source: m, part: validation}}
test: {{source: m, part: test}}
shift:
  other: s
ood:
  q: o
evaluators:
  adversarial: {{n: {n}}}
"""

WORDS = ["good", "great", "fine", "superb", "lovely", "bad", "awful", "dull", "poor", "weak"]


def rows(n: int = 80, flip: bool = False) -> str:
    lines = ["text,label"]
    for i in range(n):
        label = int(WORDS[i % 10] in WORDS[:5]) ^ flip
        lines.append(f"film {i} was {WORDS[i % 10]},{label}")
    return "\n".join(lines) + "\n"


def write_task(folder, train=0.6, test=0.2, shift="shift.csv", n=5) -> str:
    (folder / "task.yaml").write_text(TASK.format(train=train, test=test, shift=shift, n=n))
    return str(folder / "task.yaml")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run on a task of its own folder, trained from another working directory."""
    from robench.train import TrainConfig, train

    folder = tmp_path_factory.mktemp("task")
    (folder / "data.csv").write_text(rows())
    (folder / "shift.csv").write_text("text,label\na new kind of film,1\nan old kind,0\nnice,1\nugly,0\n")
    (folder / "ood.txt").write_text("what time is it\nwhere is the station\n")
    write_task(folder)
    run = tmp_path_factory.mktemp("runs") / "run"
    cwd = os.getcwd()
    os.chdir(folder.parent)  # the task is given relative to where training runs, as users do
    try:
        train(TrainConfig(task=f"{folder.name}/task.yaml", model="tiny-bert", epochs=1, batch_size=16, out=str(run),
                          device="cpu"))
    finally:
        os.chdir(cwd)
    return folder, run


@pytest.fixture
def setup(trained, tmp_path):
    """A private copy of the task folder and the run, with the run pointing at the copy."""
    folder, run = trained
    task_dir, run_dir = tmp_path / "task", tmp_path / "run"
    shutil.copytree(folder, task_dir)
    shutil.copytree(run, run_dir)
    record = json.loads((run_dir / "run.json").read_text())
    record["task"]["source"] = str(task_dir / "task.yaml")
    (run_dir / "run.json").write_text(json.dumps(record))
    return task_dir, run_dir


def evaluate(monkeypatch, capsys, run_dir, *extra):
    return run_cli(monkeypatch, capsys, "eval", "--run", str(run_dir), "--suite", "id", "--device", "cpu", *extra)


def test_run_records_every_sets_fingerprint_and_an_absolute_task_path(trained):
    folder, run = trained
    task = json.loads((run / "run.json").read_text())["task"]
    assert task["source"] == str((folder / "task.yaml").resolve())
    assert set(task["set_fingerprints"]) == {"train", "validation", "test", "shift:other", "ood:q"}
    assert task["data_hash"] and task["spec_hash"]


def test_unchanged_task_evaluates_and_an_evaluator_option_edit_is_not_a_data_change(monkeypatch, capsys, setup):
    task_dir, run_dir = setup
    write_task(task_dir, n=7)  # only an evaluator option
    code, _, err = evaluate(monkeypatch, capsys, run_dir)
    assert code == 0, err
    result = json.loads((run_dir / "results" / "id.json").read_text())
    assert result["data_changed"] == {}


def _edit_fractions(task_dir):
    write_task(task_dir, train=0.5, test=0.3)


def _flip_labels(task_dir):
    (task_dir / "data.csv").write_text(rows(flip=True))


@pytest.mark.parametrize("change, fragments", [
    (_edit_fractions, ("task 'movies' changed since run", "sources, sets, labels or sizes differ",
                       "--allow-changed-data")),
    (_flip_labels, ("set 'test' is not the data the run recorded", "fingerprint", "run.json has",
                    "--allow-changed-data")),
], ids=["split-fractions", "flipped-labels"])
def test_changed_data_is_an_error_or_marked(monkeypatch, capsys, tmp_path, setup, change, fragments):
    task_dir, run_dir = setup
    change(task_dir)
    code, _, err = evaluate(monkeypatch, capsys, run_dir, "--force")
    assert_one_line_error(code, err, *fragments)
    assert not (run_dir / "results" / "id.json").exists()
    code, _, err = evaluate(monkeypatch, capsys, run_dir, "--force", "--allow-changed-data")
    assert code == 0, err
    changed = json.loads((run_dir / "results" / "id.json").read_text())["data_changed"]
    assert changed and all(set(v) == {"trained", "now"} and v["trained"] != v["now"] for v in changed.values())
    code, out, err = run_cli(monkeypatch, capsys, "leaderboard", "--results", str(run_dir), "--out",
                             str(tmp_path / "board"), "--no-plots")
    assert code == 0, err
    board = (tmp_path / "board" / "LEADERBOARD.md").read_text()
    assert "| vanilla (changed data) |" in board and "--allow-changed-data" in board


def test_a_shift_set_identical_to_test_is_an_error(monkeypatch, capsys, setup):
    task_dir, run_dir = setup
    from robench.evaluation import make_context
    from robench.evaluators import EVALUATORS

    ctx = make_context(run_dir, "cpu")
    (task_dir / "test_copy.csv").write_text(
        "text,label\n" + "".join(f'"{t}",{y}\n' for t, y in zip(ctx.texts("test"), ctx.labels("test"), strict=True)))
    write_task(task_dir, shift="test_copy.csv")
    ctx = make_context(run_dir, "cpu", allow_changed_data=True)
    with pytest.raises(ConfigError, match="every text of shift set 'shift:other' also occurs in the in-distribution"):
        EVALUATORS.get("shift")().evaluate(ctx)


def test_eval_works_from_any_working_directory(monkeypatch, capsys, trained, tmp_path):
    folder, run = trained
    run_dir = tmp_path / "run"
    shutil.copytree(run, run_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = evaluate(monkeypatch, capsys, run_dir)
    assert code == 0, err


def test_overlap_with_train_is_a_board_footnote(monkeypatch, capsys, tmp_path, setup):
    _, run_dir = setup
    code, _, err = evaluate(monkeypatch, capsys, run_dir)
    assert code == 0, err
    record = json.loads((run_dir / "run.json").read_text())
    record["task"]["overlap_with_train"]["test"] = 3
    (run_dir / "run.json").write_text(json.dumps(record))
    code, _, err = evaluate(monkeypatch, capsys, run_dir, "--force")
    assert code == 0 and "share texts with this run's train set" in " ".join(err.split()) and "test 3" in err
    result_file = run_dir / "results" / "id.json"
    result = json.loads(result_file.read_text())
    assert result["run"]["overlap_with_train"]["test"] == 3
    code, out, err = run_cli(monkeypatch, capsys, "leaderboard", "--results", str(run_dir), "--out",
                             str(tmp_path / "board"), "--no-plots")
    assert code == 0, err
    board = (tmp_path / "board" / "LEADERBOARD.md").read_text()
    assert "evaluation sets share texts with the training set" in board and "test 3" in board
    assert "share texts with the training set" in " ".join(out.split())  # the terminal wraps it


def test_dropped_rows_are_counted_reported_and_recorded(tmp_path):
    (tmp_path / "data.csv").write_text(rows() + '"   ",1\nfilm without a label,\n')
    (tmp_path / "shift.csv").write_text("text,label\nx,1\ny,0\n")
    (tmp_path / "ood.txt").write_text("q\n")
    warnings: list[str] = []
    checks = TaskData(load_task(write_task(tmp_path))).train_checks(warn=warnings.append)
    assert checks["dropped_rows"] == {"m": {"no_text": 1, "no_label": 1}}
    assert any("source 'm': left out 1 with no text, 1 with no label" in w for w in warnings)
