"""Writing files safely and saying where they came from: the one atomic writer (every JSON, text,
cache, figure and table robench writes goes through :func:`atomic_write`), file hashing, and the
provenance block (versions, commit, time) shared by run.json and every result file."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from robench._version import __version__


def _process_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _process_umask()  # read once: files are written as the process's other files would be


def private_temp(folder: Path, prefix: str, suffix: str) -> tuple[int, str]:
    """A unique temp file in ``folder`` (mkstemp), with the mode a plain ``open`` would give it under the
    process umask (mkstemp's own 0600 would hide every result from colleagues sharing the folder)."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~UMASK)
    except OSError:  # a file system without modes: keep mkstemp's
        pass
    return fd, tmp


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """The one atomic writer: ``write(fh)`` fills a unique temp file in the same folder (process umask),
    which is synced and renamed over ``path``: readers never see half a file, concurrent writers never
    share a temp name. A write the machine refuses (disk full, read-only) is an OSError naming ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = private_temp(path.parent, f".{path.name}.", ".tmp")
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not exc.filename:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def as_written(data: Any) -> Any:
    """``data`` as :func:`atomic_write_json` writes it and ``json.load`` reads it back (tuples as lists, numpy
    numbers as numbers): what to compare a file's contents with."""
    return json.loads(json.dumps(data, default=_json_default))


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "robench": __version__}
    for pkg in ("torch", "transformers", "datasets", "accelerate", "textattack", "nlpaug", "netcal", "numpy",
                "scikit-learn", "pandas"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    """The robench source commit (with ``+dirty`` when the tree has changes), if in a git checkout."""
    repo = Path(__file__).resolve().parent.parent
    if not (repo / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


PROVENANCE_KEYS = ("versions", "git_commit", "robench_version", "created")  # what provenance() adds to a record


def provenance() -> dict[str, Any]:
    """Where a record came from: package versions, robench version and commit, time. Shared by
    run.json and every result file (its keys: :data:`PROVENANCE_KEYS`)."""
    return dict(zip(PROVENANCE_KEYS, (package_versions(), git_commit(), __version__,
                                      time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())), strict=True))


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]
