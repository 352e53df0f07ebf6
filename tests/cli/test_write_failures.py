"""Failed writes and interruptions on the command line: a full disk or a read-only folder is one line
saying what was kept, and Ctrl-C says how to resume."""

from __future__ import annotations

import errno
import os

import pytest
from cli_helpers import TINY, assert_one_line_error, run_cli


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
