"""Assets shipped as one zip split over several packages (robench/split_asset.py): assembled once and
atomically; a corrupted or missing part is one clear line; a crash leaves nothing that looks valid."""

from __future__ import annotations

import hashlib
import os
import zipfile

import pytest

from robench.errors import AssetCorruptError, AssetMissingError
from robench.split_asset import SplitZip, assembled_dir


def make_split(tmp_path, files: dict[str, bytes], n_parts: int = 3) -> tuple[SplitZip, list]:
    """A small zip of ``files`` under ``ckpt/``, split into ``n_parts`` part files, and its SplitZip."""
    zpath = tmp_path / "whole.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for name, data in files.items():
            zf.writestr(f"ckpt/{name}", data)
        zf.writestr("ckpt/desktop.ini", b"junk the asset leaves out")
    data = zpath.read_bytes()
    size = -(-len(data) // n_parts)
    parts = []
    for i in range(n_parts):
        part = tmp_path / f"whole.zip.{i + 1:03d}"
        part.write_bytes(data[i * size:(i + 1) * size])
        parts.append(part)
    split = SplitZip(packages=tuple(f"robench-test-part-{i:03d}" for i in range(1, n_parts + 1)),
                     zip_sha256=hashlib.sha256(data).hexdigest(), folder="ckpt", files=tuple(files),
                     description="the test encoder", fix="install it with: make install-test",
                     reinstall="reinstall it with: make install-test")
    return split, parts


FILES = {"config.json": b'{"model_type": "mpnet"}', "model.safetensors": os.urandom(50_000), "vocab.txt": b"a\nb\n"}


def test_split_zip_assembles_once_atomically(tmp_path):
    split, parts = make_split(tmp_path, FILES)
    cache = tmp_path / "cache"
    folder = assembled_dir(split, parts, cache)
    assert folder == cache / split.cache_name
    assert {p.name for p in folder.iterdir()} == set(FILES)  # desktop.ini left out
    assert all((folder / n).read_bytes() == d for n, d in FILES.items())
    assert [p.name for p in cache.iterdir()] == [folder.name]  # no temporary folder or joined zip left
    (folder / "vocab.txt").unlink()  # damaged by hand: assembled again
    assert assembled_dir(split, parts, cache) == folder and (folder / "vocab.txt").read_bytes() == FILES["vocab.txt"]
    for part in parts:  # once assembled, the parts are not read again
        part.unlink()
    assert assembled_dir(split, parts, cache) == folder


@pytest.mark.parametrize("damage", ["flip", "truncate", "reorder"])
def test_corrupted_part_is_refused_with_one_clear_line(tmp_path, damage):
    split, parts = make_split(tmp_path, FILES)
    if damage == "flip":
        data = bytearray(parts[1].read_bytes())
        data[len(data) // 2] ^= 0xFF
        parts[1].write_bytes(bytes(data))
    elif damage == "truncate":
        parts[2].write_bytes(parts[2].read_bytes()[:-10])
    else:
        parts = [parts[1], parts[0], parts[2]]
    cache = tmp_path / "cache"
    with pytest.raises(AssetCorruptError) as info:
        assembled_dir(split, parts, cache)
    message = str(info.value)
    assert "\n" not in message and "failed its integrity check" in message and "reinstall it with" in message
    assert list(cache.iterdir()) == []  # nothing that could pass for the asset


def test_crash_midway_leaves_no_folder_that_looks_valid(tmp_path, monkeypatch):
    split, parts = make_split(tmp_path, FILES)
    cache = tmp_path / "cache"
    real_copy = __import__("shutil").copyfileobj
    calls = []

    def crash_on_second(src, dst, length=0):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return real_copy(src, dst, length)

    monkeypatch.setattr("robench.split_asset.shutil.copyfileobj", crash_on_second)
    with pytest.raises(AssetMissingError, match=r"could not be assembled .*disk full \(simulated\).*ROBENCH_CACHE"):
        assembled_dir(split, parts, cache)
    assert list(cache.iterdir()) == []
    monkeypatch.undo()
    assert sorted(p.name for p in assembled_dir(split, parts, cache).iterdir()) == sorted(FILES)


def test_missing_part_package_names_the_install_command(tmp_path):
    split, _ = make_split(tmp_path, FILES)
    with pytest.raises(AssetMissingError, match=r"package robench-test-part-001 missing\); install it with: make"):
        assembled_dir(split, None, tmp_path / "cache")
