"""Writing files (robench/storage.py): an atomic write never leaves half a file, and files keep the
process umask."""

from __future__ import annotations

import json

import pytest


def test_files_are_written_with_the_process_umask(tmp_path, run):
    from robench.storage import UMASK, atomic_write_text

    atomic_write_text(tmp_path / "x.json", "{}")
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~UMASK
    assert UMASK & 0o044 == 0, "the test machine's umask hides files from the group: this test proves nothing"
    assert (run / "run.json").stat().st_mode & 0o777 == 0o666 & ~UMASK  # what training wrote


def test_atomic_write_never_leaves_half_a_file(tmp_path, monkeypatch):
    import robench.storage as results

    target = tmp_path / "r.json"
    results.atomic_write_json(target, {"ok": 1})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(results.os, "replace", boom)
    with pytest.raises(OSError):
        results.atomic_write_json(target, {"ok": 2})
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
