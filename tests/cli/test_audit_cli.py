"""`robench audit`: a rating sheet from a run's attack logs (--run), a filled one read back into the run's
adversarial result (--ratings); every user error one line, exit 2."""

from __future__ import annotations

import json

from audit_helpers import SUCCESSES, fill_sheet, read_sheet, result_of, write_attack_run
from cli_helpers import assert_one_line_error, run_cli


def test_sheet_then_ratings_through_the_cli(monkeypatch, capsys, tmp_path):
    run = write_attack_run(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "audit", "--run", str(run), "--n", "50", "--seed", "2")
    assert code == 0, err
    sheet = run / "audit" / "audit-sheet.csv"
    rows = read_sheet(sheet)
    assert len(rows) == 2 * SUCCESSES  # fewer successes than --n: all of them, and it says so
    said = " ".join(out.split())
    assert "rating sheet written" in said and "only 16 successful" in said and "robench audit --ratings" in said
    fill_sheet(sheet, [("yes", "5")] * 12 + [("no", "4")] * 4)
    code, out, err = run_cli(monkeypatch, capsys, "audit", "--ratings", str(sheet))
    assert code == 0, err
    said = " ".join(out.split())
    assert "audit written" in said and "adversarial.json" in said
    block = result_of(run)["metrics"]["audit"]
    assert (block["rated"], block["valid"], block["valid_share"]) == (16, 12, 0.75)
    # --results names the folder to look in; the sheet elsewhere
    moved = tmp_path / "rated.csv"
    moved.write_bytes(sheet.read_bytes())
    code, out, err = run_cli(monkeypatch, capsys, "audit", "--ratings", str(moved), "--results", str(tmp_path))
    assert code == 0, err
    assert json.loads((run / "results" / "adversarial.json").read_text())["details"]["audit"]["sheet"] == str(moved)


def test_a_bad_rating_is_one_line_naming_row_and_column(monkeypatch, capsys, tmp_path):
    run = write_attack_run(tmp_path)
    assert run_cli(monkeypatch, capsys, "audit", "--run", str(run), "--n", "10")[0] == 0
    sheet = run / "audit" / "audit-sheet.csv"
    fill_sheet(sheet, [("yes", "5")] * 3 + [("yes", "high")] + [("yes", "5")] * 6)
    code, _, err = run_cli(monkeypatch, capsys, "audit", "--ratings", str(sheet))
    assert_one_line_error(code, err, "row 4", "column meaning", "'high'", "1 to 5")
    assert "audit" not in result_of(run)["metrics"]


def test_user_errors_are_one_line(monkeypatch, capsys, tmp_path):
    run = write_attack_run(tmp_path, result=False)
    code, _, err = run_cli(monkeypatch, capsys, "audit")
    assert_one_line_error(code, err, "--run", "--ratings")
    code, _, err = run_cli(monkeypatch, capsys, "audit", "--run", str(run), "--results", str(tmp_path))
    assert_one_line_error(code, err, "--results goes with --ratings")
    code, _, err = run_cli(monkeypatch, capsys, "audit", "--ratings", str(tmp_path / "x.csv"), "--n", "5")
    assert_one_line_error(code, err, "--n, --seed and --out go with --run")
    code, _, err = run_cli(monkeypatch, capsys, "audit", "--ratings", str(tmp_path / "missing.csv"))
    assert_one_line_error(code, err, "missing.csv does not exist")
    code, _, err = run_cli(monkeypatch, capsys, "audit", "--run", str(run), "--n", "0")
    assert_one_line_error(code, err, "--n must be >= 1")
    # a run without attack logs: evaluate it first
    for log in (run / "artifacts").iterdir():
        log.unlink()
    code, _, err = run_cli(monkeypatch, capsys, "audit", "--run", str(run))
    assert_one_line_error(code, err, "no attack logs", "robench eval", "--suite adversarial")
    # ratings of a run that has no adversarial result: nothing to write into
    other = write_attack_run(tmp_path / "other", result=False)
    assert run_cli(monkeypatch, capsys, "audit", "--run", str(other), "--n", "4")[0] == 0
    sheet = other / "audit" / "audit-sheet.csv"
    fill_sheet(sheet, [("yes", "5")] * 4)
    code, _, err = run_cli(monkeypatch, capsys, "audit", "--ratings", str(sheet))
    assert_one_line_error(code, err, "no adversarial result of run", "--results")


def test_a_filled_sheet_is_never_replaced(monkeypatch, capsys, tmp_path):
    run = write_attack_run(tmp_path)
    assert run_cli(monkeypatch, capsys, "audit", "--run", str(run), "--n", "10")[0] == 0
    sheet = run / "audit" / "audit-sheet.csv"
    fill_sheet(sheet, [("yes", "5")] * 10)
    filled = sheet.read_bytes()
    code, _, err = run_cli(monkeypatch, capsys, "audit", "--run", str(run), "--n", "10")
    assert_one_line_error(code, err, "holds ratings", "--out")
    assert sheet.read_bytes() == filled
