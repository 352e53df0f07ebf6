"""The CLI's edges: every remaining traceback is one line (seeds, lengths, tuned files, full disks,
read-only folders, Ctrl-C), files keep the user's umask, and messages say what is actually wrong."""

from __future__ import annotations

import errno
import json
import os
import shutil

import pytest
from test_cli import assert_one_line_error, run_cli

TINY = ("--model", "tiny-bert", "--limit", "16", "--epochs", "1", "--device", "cpu")
BIG_SEED = str(2**40)


@pytest.fixture
def run(tiny_run, tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(tiny_run, dest, ignore=shutil.ignore_patterns("results", "cache", "artifacts"))
    return dest


@pytest.mark.parametrize("args, fragment", [
    (("train", *TINY, "--seed", BIG_SEED), "--seed must be <= 4294967295 (numpy's seed range)"),
    (("run", *TINY, "--methods", "vanilla", "--seeds", "-1", "--suite", "id"), "bad --seeds value -1"),
    (("run", *TINY, "--methods", "vanilla", "--seeds", f"0,{BIG_SEED}", "--suite", "id"), f"bad --seeds value {BIG_SEED}"),
    (("tune", "--method", "vanilla", *TINY, "--seeds", "-1"), "bad --seeds value -1"),
    (("eval", "--run", "RUN", "--suite", "perturb", "--seed", BIG_SEED), "--seed must be <= 4294967295"),
    (("attack", "--run", "RUN", "--save", "OUT/a.jsonl", "--seed", BIG_SEED), "--seed must be <= 4294967295"),
    (("train", *TINY, "--max-length", "1000"), "--max-length 1000 is longer than model 'tiny-bert' can read (128"),
], ids=["train-seed", "run-negative-seed", "run-big-seed", "tune-negative-seed", "eval-seed", "attack-seed",
        "max-length"])
def test_numbers_out_of_range_are_one_line(monkeypatch, capsys, tmp_path, run, args, fragment):
    args = [str(run) if a == "RUN" else a.replace("OUT", str(tmp_path)) for a in args]
    if args[0] in ("train", "run", "tune"):
        args += ["--out" if args[0] == "train" else "--runs-dir", str(tmp_path / "r")]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert_one_line_error(code, err, fragment)
    assert not (tmp_path / "r" / "run.json").exists()


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


def test_disk_full_during_training_names_the_folder_and_what_was_kept(monkeypatch, capsys, tmp_path):
    import safetensors.torch

    def full(*args, **kwargs):  # how safetensors' Rust writer reports a full disk
        raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space '
                           'left on device" })')

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY, "--out", str(tmp_path / "r"))
    err = "\n".join(ln for ln in err.splitlines() if not ln.startswith("epoch "))  # training's own progress lines
    assert_one_line_error(code, err, f"cannot write in {tmp_path}", "no space left on the device",
                          "the same command resumes")
    assert not (tmp_path / "r").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no half-written checkpoint or run


@pytest.mark.parametrize("code_, words", [(errno.ENOSPC, "no space left on the device"),
                                          (errno.EROFS, "the file system is read-only")], ids=["full", "read-only"])
def test_eval_into_a_full_or_read_only_run_folder_is_one_line(monkeypatch, capsys, run, code_, words):
    import robench.storage

    def refuse(fd):
        raise OSError(code_, os.strerror(code_))

    monkeypatch.setattr(robench.storage.os, "fsync", refuse)
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(run), "--suite", "id", "--device", "cpu")
    assert_one_line_error(code, err, f"cannot write in {run}", words, "none was half-written")  # its cache or results
    assert not list((run / "results").glob("*.json")) and not list((run / "results").glob(".*"))


def test_ctrl_c_prints_how_to_resume(monkeypatch, capsys, tmp_path):
    import robench.train

    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(robench.train, "train", interrupted)
    code, _, err = run_cli(monkeypatch, capsys, "train", *TINY, "--out", str(tmp_path / "r"))
    assert code == 130
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted:") and "run the same command again" in lines[0]


def test_files_are_written_with_the_process_umask(tmp_path, run):
    from robench.storage import UMASK, atomic_write_text

    atomic_write_text(tmp_path / "x.json", "{}")
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~UMASK
    assert UMASK & 0o044 == 0, "the test machine's umask hides files from the group: this test proves nothing"
    assert (run / "run.json").stat().st_mode & 0o777 == 0o666 & ~UMASK  # what training wrote


def test_eval_run_that_is_a_file_says_so(monkeypatch, capsys, tmp_path):
    (tmp_path / "run.json").write_text("{}")
    code, _, err = run_cli(monkeypatch, capsys, "eval", "--run", str(tmp_path / "run.json"), "--suite", "id")
    assert_one_line_error(code, err, "is a file, not a run directory", "the folder that holds run.json")


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
