"""The CLI: commands work, and every user error is one line naming the fix, exit 2, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cli_helpers import assert_one_line_error, run_cli


@pytest.mark.parametrize("what", ["methods", "tasks", "evaluators", "suites"])
def test_list(monkeypatch, capsys, what):
    code, out, _ = run_cli(monkeypatch, capsys, "list", what)
    assert code == 0 and out.strip()


def test_list_unknown(monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "list", "bananas")
    assert_one_line_error(code, err, "cannot list 'bananas'")


def test_unknown_method(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "train", "--method", "magic", "--model", "tiny-bert", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "unknown method 'magic'", "vanilla")
    assert not (tmp_path / "r").exists()


def test_unknown_hyperparameter(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "train", "--set", "nonsense=1", "--model", "tiny-bert", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "has no hyper-parameter 'nonsense'")


def test_unknown_task(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "train", "--task", "nope", "--model", "tiny-bert", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "unknown task 'nope'")


def test_malformed_yaml(monkeypatch, capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("labels: [a,\n")
    code, _, err = run_cli(monkeypatch, capsys, "train", "--task", str(bad), "--model", "tiny-bert", "--out", str(tmp_path / "r"))
    assert_one_line_error(code, err, "malformed YAML", str(bad))


def test_unknown_suite_and_evaluator(monkeypatch, capsys, tiny_run):
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(tiny_run), "--suite", "everything")
    assert_one_line_error(code, err, "unknown suite or evaluator 'everything'", "quick")


def test_unknown_calibration_protocol(monkeypatch, capsys, tiny_run):
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(tiny_run), "--suite", "calibration",
                           "--calibration", "guo")
    assert_one_line_error(code, err, "calibration: protocol must be one of robench, paper, got 'guo'")


def test_run_dir_without_weights(monkeypatch, capsys, tiny_run, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken)
    (broken / "model.safetensors").unlink()
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(broken), "--suite", "id")
    assert_one_line_error(code, err, "has no model.safetensors")
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(tmp_path / "missing"), "--suite", "id")
    assert_one_line_error(code, err, "does not exist")


def test_train_and_eval_through_cli(monkeypatch, capsys, tmp_path):
    run = tmp_path / "cli-run"
    code, out, err = run_cli(monkeypatch, capsys, "train", "--model", "tiny-bert", "--limit", "32", "--epochs", "1",
                             "--device", "cpu", "--out", str(run))
    assert code == 0, err
    assert "run written" in out and (run / "run.json").exists()
    code, out, err = run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--device", "cpu")
    assert code == 0, err
    assert "accuracy=" in out


def test_real_process_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "robench.cli", "eval", "--run", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "does not exist" in proc.stderr


def test_library_chatter_is_quiet_unless_verbose():
    """TextAttack logs "Goal function ... compatible with model" at INFO on every attack: hidden by
    default, shown with --verbose."""
    import logging

    from robench.attacks.offline import import_textattack
    from robench.logs import quiet_libraries

    logger = logging.getLogger("textattack.shared.utils.install")  # TextAttack's own logger
    try:
        quiet_libraries(True)
        import_textattack()
        assert not logger.isEnabledFor(logging.INFO)
        quiet_libraries(False)
        assert logger.isEnabledFor(logging.INFO)
    finally:
        quiet_libraries(True)


def test_eval_run_that_is_a_file_says_so(monkeypatch, capsys, tmp_path):
    (tmp_path / "run.json").write_text("{}")
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(tmp_path / "run.json"), "--suite", "id")
    assert_one_line_error(code, err, "is a file, not a run directory", "the folder that holds run.json")


def test_train_and_eval_contact_nothing(blocked_sockets, monkeypatch, capsys, tmp_path):
    run = tmp_path / "run"
    code, _, err = run_cli(monkeypatch, capsys, "train", "--model", "tiny-bert", "--limit", "32", "--epochs", "1",
                           "--device", "cpu", "--out", str(run))
    assert code == 0, err
    record = json.loads((run / "run.json").read_text())
    assert set(record["task"]["overlap_with_train"].values()) == {0}
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--device", "cpu")
    assert code == 0, err
    assert blocked_sockets == []
