"""Nothing a user owns is ever deleted or overwritten (robench/outputs.py): every --out is checked before
any work, and only robench's own output of the same kind is replaced. Table-driven: one row per case."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run_cli

TINY_TRAIN = ("--model", "tiny-bert", "--limit", "16", "--epochs", "1", "--device", "cpu")


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` (or ``root`` itself) with its content hash."""
    root = Path(root)
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and (".old-" in p.name or ".tmp" in p.name))


# ------------------------------------------------------------------------------ train --out


def _notes_folder(tmp_path, tiny_run) -> Path:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.md").write_text("three weeks of notes\n")
    return out


def _two_runs(tmp_path, tiny_run) -> Path:
    out = tmp_path / "runs"
    for name in ("a", "b"):
        shutil.copytree(tiny_run, out / name)
    return out


def _task_folder(tmp_path, tiny_run) -> Path:
    out = tmp_path / "t"
    out.mkdir()
    (out / "data.csv").write_text("text,label\ngood,1\nbad,0\n")
    (out / "task.yaml").write_text("name: t\n")
    return out


def _plain_file(tmp_path, tiny_run) -> Path:
    out = tmp_path / "report.txt"
    out.write_text("a user's file\n")
    return out


def _run_with_notes(tmp_path, tiny_run) -> Path:
    out = tmp_path / "run"
    shutil.copytree(tiny_run, out)
    (out / "my-analysis.ipynb").write_text("{}")
    return out


@pytest.mark.parametrize("make, force, fragment", [
    (_notes_folder, False, "is an existing folder that is not a robench run (it holds notes.md)"),
    (_notes_folder, True, "never deletes it, --force included"),
    (_two_runs, False, "is an existing folder that is not a robench run (it holds a, b)"),
    (_two_runs, True, "is an existing folder that is not a robench run"),
    (_task_folder, True, "it holds data.csv, task.yaml"),
    (_plain_file, False, "is an existing file, not a run folder"),
    (_plain_file, True, "robench never replaces it"),
    (_run_with_notes, True, "also holds files robench did not write (my-analysis.ipynb)"),
], ids=["notes", "notes-force", "two-runs", "two-runs-force", "task-folder-force", "file", "file-force",
        "run-with-user-file-force"])
def test_train_out_never_replaces_what_robench_did_not_write(monkeypatch, capsys, tmp_path, tiny_run, make, force,
                                                             fragment):
    out = make(tmp_path, tiny_run)
    before = snapshot(out)
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY_TRAIN, "--out", str(out), *(["--force"] if force else []))
    assert_one_line_error(code, err, str(out), fragment)
    assert snapshot(out) == before  # every byte still there
    assert hidden_leftovers(out.parent) == []


def test_train_force_replaces_only_a_run_of_its_own(monkeypatch, capsys, tmp_path, tiny_run):
    out = tmp_path / "run"
    shutil.copytree(tiny_run, out)
    (out / "results").mkdir(exist_ok=True)
    (out / "results" / "id.json").write_text("{}")  # eval's own output: replaced with the run
    old = json.loads((out / "run.json").read_text())
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY_TRAIN, "--seed", "1", "--out", str(out), "--force")
    assert code == 0, err
    new = json.loads((out / "run.json").read_text())
    assert new["seed"] == 1 and old["seed"] == 0
    assert not (out / "results").exists()
    # run.json lists what the run wrote, which is all a later --force may replace
    assert set(new["files"]) == {p.name for p in out.iterdir()} and "run.json" in new["files"]


def test_force_keeps_a_users_file_with_a_tokenizer_files_name(monkeypatch, capsys, tmp_path, tiny_run):
    """run.json records the files the run wrote: a user's merges.txt beside a run that wrote none is not the
    run's, whatever its name (the usual writers' names count only for runs written before that record)."""
    from robench.outputs import run_folder_extras

    out = tmp_path / "run"
    shutil.copytree(tiny_run, out)
    assert "merges.txt" not in json.loads((out / "run.json").read_text())["files"]
    (out / "merges.txt").write_text("my BPE merges\n")
    assert run_folder_extras(out) == ["merges.txt"]
    before = snapshot(out)
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY_TRAIN, "--out", str(out), "--force")
    assert_one_line_error(code, err, "also holds files robench did not write (merges.txt)")
    assert snapshot(out) == before
    record = json.loads((out / "run.json").read_text())
    del record["files"]  # a run from before the record: judged by the writers' usual names
    (out / "run.json").write_text(json.dumps(record))
    assert run_folder_extras(out) == []


def test_a_leaderboard_write_cut_short_can_be_redone(monkeypatch, capsys, tmp_path, tiny_run):
    """The folder is marked as a robench leaderboard before anything else is written, so an interrupted
    write (here the copy of the result files fails) does not lock the user out of their own --out."""
    import robench.report.write as write

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--device", "cpu")[0] == 0
    out = tmp_path / "board"

    def disk_full(*_a, **_k):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(write, "collect_results", disk_full)
        code, _, _err = run_cli(monkeypatch, capsys, "leaderboard", "--results", str(run), "--out", str(out),
                                "--no-plots")
    assert code != 0 and (out / "LEADERBOARD.md").read_text().startswith("# robench leaderboard\n")
    code, _, err = run_cli(monkeypatch, capsys, "leaderboard", "--results", str(run), "--out", str(out), "--no-plots")
    assert code == 0, err
    assert "being written" not in (out / "LEADERBOARD.md").read_text() and (out / "leaderboard.csv").is_file()


def test_empty_folder_is_a_fine_out(monkeypatch, capsys, tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY_TRAIN, "--out", str(out))
    assert code == 0, err
    assert (out / "run.json").is_file()


def test_a_foreign_folder_at_the_checkpoint_name_is_left_alone(monkeypatch, capsys, tmp_path):
    ckpt = tmp_path / ".run.ckpt"
    ckpt.mkdir()
    (ckpt / "mine.txt").write_text("x")
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY_TRAIN, "--out", str(tmp_path / "run"))
    assert_one_line_error(code, err, str(ckpt), "not a robench checkpoint")
    assert (ckpt / "mine.txt").read_text() == "x"


# ------------------------------------------------------------------------------ leaderboard, tune, baseline, attack


def _board_file(tmp_path):
    path = tmp_path / "board.md"
    path.write_text("mine\n")
    return path


def _board_foreign_folder(tmp_path):
    path = tmp_path / "paper"
    path.mkdir()
    (path / "leaderboard.csv").write_text("my own numbers\n")
    (path / "draft.tex").write_text("\\section{}\n")
    return path


@pytest.mark.parametrize("make, fragment", [
    (_board_file, "is an existing file; a leaderboard is a folder"),
    (_board_foreign_folder, "holds no robench leaderboard (draft.tex, leaderboard.csv)"),
], ids=["file", "foreign-folder"])
def test_leaderboard_out_never_writes_over_a_users_files(monkeypatch, capsys, tmp_path, tiny_run, make, fragment):
    out = make(tmp_path)
    before = snapshot(out)
    code, _, err = run_cli(monkeypatch, capsys, "leaderboard", "--results", str(tiny_run), "--out", str(out),
                           "--no-plots")
    assert_one_line_error(code, err, str(out), fragment)
    assert snapshot(out) == before


def test_run_checks_its_results_dir_before_training(monkeypatch, capsys, tmp_path):
    out = _board_foreign_folder(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "run", "--model", "tiny-bert", "--methods", "vanilla", "--seeds", "0",
                           "--suite", "id", "--limit", "16", "--epochs", "1", "--device", "cpu",
                           "--runs-dir", str(tmp_path / "runs"), "--results-dir", str(out))
    assert_one_line_error(code, err, "--results-dir", "holds no robench leaderboard")
    assert not (tmp_path / "runs").exists()  # refused before any training


def test_leaderboard_rewrites_its_own_folder(monkeypatch, capsys, tmp_path, tiny_run):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--device", "cpu")[0] == 0
    out = tmp_path / "board"
    for _ in range(2):
        code, _, err = run_cli(monkeypatch, capsys, "leaderboard", "--results", str(run), "--out", str(out),
                               "--no-plots")
        assert code == 0, err


@pytest.mark.parametrize("args, target, fragment", [
    (("tune", "--method", "vanilla", "--model", "tiny-bert", "--limit", "16"), "folder", "is a folder; give a file path for the tuned file"),
    (("tune", "--method", "vanilla", "--model", "tiny-bert", "--limit", "16"), "file", "is not a robench tuned file"),
    (("baseline", "record", "--results", "RUN"), "file", "is not a robench baseline"),
], ids=["tune-folder", "tune-foreign-file", "baseline-foreign-file"])
def test_file_outputs_replace_only_their_own_kind(monkeypatch, capsys, tmp_path, tiny_run, args, target, fragment):
    out = tmp_path / "out"
    if target == "folder":
        out.mkdir()
        (out / "keep.txt").write_text("k")
    else:
        out.write_text('{"mine": true}\n')
    before = snapshot(out)
    args = tuple(str(tiny_run) if a == "RUN" else a for a in args)
    code, _, err = run_cli(monkeypatch, capsys, *args, "--out", str(out), "--runs-dir", str(tmp_path / "r")) \
        if args[0] == "tune" else run_cli(monkeypatch, capsys, *args, "--out", str(out))
    assert_one_line_error(code, err, str(out), fragment)
    assert snapshot(out) == before
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("own_record", [False, True], ids=["no-record", "record-of-another-file"])
def test_attack_save_never_replaces_a_users_file(monkeypatch, capsys, tmp_path, tiny_run, own_record):
    save = tmp_path / "adv.jsonl"
    save.write_text('{"text": "my hand-made set", "label": "positive"}\n')
    if own_record:  # a record that names another file's content does not make this file robench's
        (tmp_path / "adv.source.json").write_text(json.dumps({"set_sha256": "0" * 64}))
    before = snapshot(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "attack", "--run", str(tiny_run), "--recipe", "deepwordbug", "--n", "2",
                           "--save", str(save), "--device", "cpu")
    assert_one_line_error(code, err, str(save), "is not a robench attack set")
    assert snapshot(tmp_path) == before
