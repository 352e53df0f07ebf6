"""What robench may write over: every ``--out`` is checked here before any work starts.

The rule is one sentence: robench replaces only what robench wrote, of the same kind. A run
folder replaces a finished run folder (with ``--force``) and nothing else; a leaderboard goes into
a new or empty folder or one holding a robench leaderboard; a tuned file, a baseline or an attack
set replaces only a file of its own kind. Anything else (a user's notes, a folder of runs, the
folder holding the task file, any plain file) is refused with one line naming the path and the
fix; ``--force`` never overrides that.

Writing can still fail for reasons outside robench (a full disk, a read-only folder):
:func:`write_failure` turns those ``OSError`` s into one line naming the folder and what was kept.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from robench.errors import ConfigError, RobenchError
from robench.progress import console
from robench.records import RUN_FILE, read_json

BOARD_FILE = "LEADERBOARD.md"
BOARD_HEADING = "# robench leaderboard"
# What a finished run folder holds besides what run.json lists in ``files``: the names robench's own
# writers use (save_pretrained's weights, config and tokenizer files; eval's results, cache and
# artifacts folders). Runs written before ``files`` was recorded are judged by these names.
RUN_SUBDIRS = frozenset({"results", "cache", "artifacts"})
RUN_KNOWN_FILES = frozenset({
    RUN_FILE, "model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt",
    "added_tokens.json", "sentencepiece.bpe.model", "spm.model", "tokenizer.model",
})


def _listing(names: Iterable[str], limit: int = 5) -> str:
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def schema_of(path: Path) -> str:
    """The ``schema`` a robench JSON file names ("" for anything else): how a file's kind is told."""
    data = read_json(path)
    return str(data.get("schema", "")) if isinstance(data, dict) else ""


def is_run_record(path: Path) -> bool:
    """Whether ``path`` is a robench run.json (by its schema, not its name)."""
    return schema_of(path).startswith("robench.run/")


def run_folder_extras(out: Path) -> list[str]:
    """Entries of a finished run folder that robench did not write there (empty: all of it is robench's)."""
    record = read_json(out / RUN_FILE)
    recorded = record.get("files") if isinstance(record, dict) else None
    # the files the run recorded writing; the usual writers' names only for runs from before that record
    owned = ({str(n) for n in recorded} | {RUN_FILE} if isinstance(recorded, list) else set(RUN_KNOWN_FILES)) | RUN_SUBDIRS
    return sorted(p.name for p in out.iterdir() if p.name not in owned)


def guard_run_out(out: Path, force: bool) -> None:
    """Before training into ``out``: refuse anything but a new path, an empty folder, or (with
    ``--force``) a finished robench run folder that holds nothing robench did not write."""
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ConfigError(f"--out {out} is an existing file, not a run folder; robench never replaces it: pass "
                          "--out a new path")
    if not out.exists():
        return
    entries = [p.name for p in out.iterdir()]
    if not entries:
        return
    if not is_run_record(out / RUN_FILE):
        raise ConfigError(f"--out {out} is an existing folder that is not a robench run (it holds "
                          f"{_listing(entries)}); robench never deletes it, --force included: pass --out a new "
                          "or empty folder")
    if not force:
        raise ConfigError(f"run directory {out} already holds a finished run; pass --force to replace it or "
                          "--out elsewhere")
    extras = run_folder_extras(out)
    if extras:
        raise ConfigError(f"run directory {out} also holds files robench did not write ({_listing(extras)}); "
                          "--force replaces only a run's own files: move those out first, or pass --out elsewhere")


def guard_checkpoint_dir(ckpt: Path, marker: str) -> None:
    """A checkpoint folder is robench's when it is empty or holds its state file; anything else at that
    (hidden) name is left alone."""
    if ckpt.is_symlink() or (ckpt.exists() and not ckpt.is_dir()):
        raise ConfigError(f"{ckpt} (where this run keeps its checkpoint) is a file robench did not write; move "
                          "it, or pass --out elsewhere")
    if ckpt.is_dir() and any(ckpt.iterdir()) and not (ckpt / marker).exists():
        raise ConfigError(f"{ckpt} (where this run keeps its checkpoint) holds files that are not a robench "
                          "checkpoint; move it, or pass --out elsewhere")


def is_board_folder(out: Path) -> bool:
    try:
        with open(out / BOARD_FILE, encoding="utf-8") as fh:
            return fh.readline().rstrip("\n") == BOARD_HEADING
    except (OSError, UnicodeDecodeError):
        return False


def guard_board_out(out: Path, option: str = "--out") -> None:
    """A leaderboard folder: new, empty, or one holding a robench leaderboard (it rewrites its own files
    and removes its own stale ones); an existing file or another folder is refused."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{option} {out} is an existing file; a leaderboard is a folder of files: pass "
                          f"{option} a new or empty folder")
    if not out.exists():
        return
    entries = [p.name for p in out.iterdir()]
    if entries and not is_board_folder(out):
        raise ConfigError(f"{option} {out} is a folder that holds no robench leaderboard ({_listing(entries)}); "
                          f"robench never writes over it: pass {option} a new or empty folder, or one that "
                          "holds a robench leaderboard")


def guard_file_out(path: Path, kind: str, is_own: Callable[[Path], bool], option: str = "--out") -> None:
    """A single output file: new, or an existing file of the same kind that robench wrote."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder; give a file path for the {kind}")
    if path.exists() and not is_own(path):
        raise ConfigError(f"{option} {path} exists and is not a robench {kind}; robench never replaces it: pass "
                          f"{option} a new path")


# --------------------------------------------------------------------------------------------- write failures

_NO_ROOM = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is used up",
            errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted"}


def os_error_of(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc``: itself, one in its chain, or one that safetensors' Rust writer reports
    only in its message ("... Os { code: 28, ... }")."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError):
            return exc
        match = re.search(r"(?:os error |code: )(\d+)", str(exc))
        if match:
            code = int(match[1])
            return OSError(code, os.strerror(code))
        exc = exc.__cause__ or exc.__context__
    return None


def is_write_failure(exc: BaseException | None) -> bool:
    return isinstance(exc, OSError) and exc.errno in _NO_ROOM


def write_failure(exc: OSError, path: Path | str | None, kept: str) -> RobenchError:
    """One line for a write that the machine refused: what, where, what was kept, and the fix."""
    where = Path(path) if path is not None else (Path(exc.filename) if exc.filename else None)
    folder = (where if where is not None and where.is_dir() else where.parent) if where is not None else None
    place = f"in {folder}" if folder is not None else "(location unknown)"
    return RobenchError(f"cannot write {place}: {_NO_ROOM.get(exc.errno, exc.strerror)}; {kept}; free space or "
                        "make the folder writable, then run the same command again")


# --------------------------------------------------------------------------------------------- run locks


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``<run_dir>.lock`` (``fcntl.flock``, exclusive) while a run is trained and evaluated: a second
    process on the same run waits, then finds it done. Where the file system has no locks (or there is no
    ``fcntl``), it goes on unlocked."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    lock = run_dir.with_name(run_dir.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        try:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                console.print(f"[dim]{run_dir}: another process holds {lock.name}; waiting for it[/dim]")
                fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError as exc:  # e.g. ENOLCK / ENOSYS on a file system mounted without locks
            console.print(f"[yellow]warning: cannot lock {lock} ({exc.strerror}); going on without a lock[/yellow]")
        yield  # closing the file releases the lock
