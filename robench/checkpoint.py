"""Resumable training: checkpoints beside the run directory, and the leftovers of killed saves.

A checkpoint is the folder ``<parent>/.<run>.ckpt/`` beside the run directory ``<parent>/<run>``
(never inside it: a run directory only ever holds a finished run). It holds two files:
``tensors.safetensors`` (every tensor: weights, optimiser moments, hook state, RNG states) and
``state.json`` (everything else, with ``{"__tensor__": key}`` where a tensor was; tuples and
dicts with non-string keys, such as an optimiser's ``state``, are tagged so they come back as
they were). Nothing is pickled, so reading a checkpoint never runs code.

Folders are written like run directories: into ``.<name>.tmp-PID``, then renamed into place
(``replace_dir``), so a kill at any moment leaves the previous version readable. A killed save
leaves ``.<name>.tmp-PID`` (half written) or ``.<name>.old-PID`` (the previous version, moved
aside for the swap); ``clean_leftovers`` removes those whose process is gone (and only robench's own:
:func:`owned`), and renames an
``.old-PID`` back when the kill fell between the two renames and nothing else is in place.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robench.progress import console
from robench.storage import atomic_write_json

SCHEMA = "robench.checkpoint/1"
STATE_FILE = "state.json"
TENSORS_FILE = "tensors.safetensors"


def checkpoint_dir(out: Path) -> Path:
    """Where the checkpoint of the run directory ``out`` lives."""
    return out.parent / f".{out.name}.ckpt"


def sibling(target: Path, kind: str, pid: int | None = None) -> Path:
    """``.<name>.<kind>-<pid>`` beside ``target`` (a hidden ``target`` keeps its one leading dot)."""
    stem = target.name if target.name.startswith(".") else f".{target.name}"
    return target.parent / f"{stem}.{kind}-{os.getpid() if pid is None else pid}"


# Written first into every temporary folder robench makes, and removed just before the folder is renamed into
# place (by then it holds its own robench run.json or state.json): a leftover is robench's to delete only with
# one of the two. A user's folder that happens to have a leftover's name is never touched.
OWNER_FILE = ".robench-partial"
OWNED_RECORDS = ("run.json", STATE_FILE)


def owned(path: Path) -> bool:
    """Whether the folder ``path`` is robench's own: it carries :data:`OWNER_FILE`, or a run.json /
    state.json that names a robench schema."""
    if path.is_symlink() or not path.is_dir():
        return False
    if (path / OWNER_FILE).is_file():
        return True
    for name in OWNED_RECORDS:
        try:
            data = json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(data, dict) and str(data.get("schema", "")).startswith("robench."):
            return True
    return False


def discard(path: Path) -> None:
    """Remove a leftover folder if it is robench's own (or empty); anything else stays where it is."""
    if owned(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    try:
        path.rmdir()  # an empty folder: a temporary one killed before its first write
    except OSError:
        pass


def make_temporary(target: Path) -> Path:
    """A new temporary folder beside ``target`` (``.<name>.tmp-<pid>``), marked as robench's."""
    tmp = sibling(target, "tmp")
    discard(tmp)
    if tmp.exists():
        raise OSError(errno.EEXIST, "a folder robench did not write is in the way of its temporary folder; move it",
                      str(tmp))
    tmp.mkdir()
    (tmp / OWNER_FILE).write_text(f"{os.getpid()}\n", encoding="utf-8")
    return tmp


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (another user's process counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def replace_dir(tmp: Path, dest: Path) -> None:
    """Put the finished folder ``tmp`` at ``dest``: two renames, the old version moved aside first."""
    (tmp / OWNER_FILE).unlink(missing_ok=True)  # from here on its run.json / state.json says it is robench's
    if dest.exists():
        old = sibling(dest, "old")
        discard(old)
        dest.rename(old)  # fails (nothing lost) if a folder robench did not write is at that name
        tmp.rename(dest)
        shutil.rmtree(old, ignore_errors=True)  # the version just replaced, which the caller has vetted
    else:
        tmp.rename(dest)


def clean_leftovers(target: Path, marker: str) -> None:
    """Remove the ``.tmp-PID`` / ``.old-PID`` siblings of ``target`` left by killed processes.

    A folder whose process is alive is never touched (it may be mid-save), nor one that is not robench's
    (:func:`owned`: a user's folder with such a name stays). When ``target`` is missing and a dead process's
    ``.old-PID`` is complete (holds ``marker``), the kill fell between the two renames of ``replace_dir``:
    that folder is renamed back, not deleted.
    """

    def newest_first(pm) -> float:
        try:
            return -pm[0].stat().st_mtime
        except OSError:  # removed meanwhile by another rank of the same launch
            return 0.0

    stem = target.name if target.name.startswith(".") else f".{target.name}"
    pattern = re.compile(re.escape(stem) + r"\.(tmp|old)-(\d+)")
    found = [(p, m) for p in target.parent.glob(glob.escape(stem) + ".*-*") if (m := pattern.fullmatch(p.name))]
    found.sort(key=newest_first)  # the newest complete .old wins
    for path, match in found:
        if pid_alive(int(match[2])) or not path.exists():
            continue
        if match[1] == "old" and not target.exists() and (path / marker).exists() and owned(path):
            try:
                path.rename(target)
            except OSError:  # another process (a rank of the same launch) was first
                continue
            console.print(f"restored {target} from {path.name}, left by a save killed between two renames",
                          markup=False, soft_wrap=True)
        else:
            discard(path)


def config_key(payload: dict[str, Any]) -> str:
    """A short hash of what must be equal for a checkpoint to belong to this command."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- RNG states ----------------------------------------------------------------------------------


def rng_state() -> dict[str, Any]:
    """Python's, NumPy's, torch's CPU and (if present) every CUDA device's random state."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": {"kind": str(kind), "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss),
                      "gauss": float(gauss)},
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    np.random.set_state((n["kind"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- save / load ---------------------------------------------------------------------------------


def save(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (nested dicts, lists, tuples, JSON scalars and tensors) as the checkpoint ``path``."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    meta = _flatten({"schema": SCHEMA, **state}, "", tensors, set())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temporary(path)
    try:
        save_file(tensors, str(tmp / TENSORS_FILE))
        atomic_write_json(tmp / STATE_FILE, meta)
        replace_dir(tmp, path)
    except BaseException as exc:
        discard(tmp)
        raise_with_place(exc, path.parent)
        raise


def raise_with_place(exc: BaseException, folder: Path) -> None:
    """Re-raise a write the machine refused (disk full, read-only; safetensors reports those only in its
    message) as an OSError that names ``folder``; anything else is left to the caller's ``raise``."""
    from robench.outputs import is_write_failure, os_error_of

    os_exc = os_error_of(exc)
    if is_write_failure(os_exc) and not (isinstance(exc, OSError) and exc.filename):
        raise OSError(os_exc.errno, os_exc.strerror, str(folder)) from exc


def load(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (tensors on the CPU), or None if there is none of this schema."""
    from safetensors.torch import load_file

    if not (path / STATE_FILE).exists():
        return None
    meta = json.loads((path / STATE_FILE).read_text())
    if meta.get("schema") != SCHEMA:
        return None
    return _unflatten(meta, load_file(str(path / TENSORS_FILE)))


def _flatten(obj: Any, key: str, tensors: dict[str, torch.Tensor], storages: set[int]) -> Any:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        if ptr in storages:  # safetensors refuses two tensors on one storage (views of one mask)
            t = t.clone()
        storages.add(t.untyped_storage().data_ptr())
        tensors[key] = t
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _flatten(v, f"{key}/{k}", tensors, storages) for k, v in obj.items()}
        return {"__items__": [[k, _flatten(v, f"{key}/{k}", tensors, storages)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_flatten(v, f"{key}/{i}", tensors, storages) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_flatten(v, f"{key}/{i}", tensors, storages) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {key or '/'}")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__tuple__" in obj:
        return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {k: _unflatten(v, tensors) for k, v in obj["__items__"]}
    return {k: _unflatten(v, tensors) for k, v in obj.items()}
