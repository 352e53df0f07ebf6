"""Run records and result files: schema, atomic writing, provenance, loading into pandas."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import robench
from robench.errors import ConfigError

RUN_SCHEMA = "robench.run/1"
RESULT_SCHEMA = "robench.result/1"
RUN_FILE = "run.json"
RESULTS_SUBDIR = "results"


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same folder + rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


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

    out = {"python": platform.python_version(), "robench": robench.__version__}
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


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def load_run(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist; pass a folder written by 'robench train'")
    path = run_dir / RUN_FILE
    if not path.exists():
        raise ConfigError(f"run directory {run_dir} has no {RUN_FILE}; it is not a finished robench run "
                          "(train it with 'robench train')")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        raise ConfigError(f"{path} is not valid JSON; re-train the run") from None
    if record.get("schema") != RUN_SCHEMA:
        raise ConfigError(f"{path} is not a robench run record (schema {record.get('schema')!r})")
    return record


def result_path(run_dir: Path, evaluator: str) -> Path:
    return Path(run_dir) / RESULTS_SUBDIR / f"{evaluator}.json"


def make_result(evaluator: str, run: dict[str, Any], metrics: dict[str, Any], *, details: dict[str, Any] | None = None,
                data: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
                warnings: list[str] | None = None, wall_time_s: float = 0.0,
                artifacts: list[str] | None = None) -> dict[str, Any]:
    """One result file's content: metrics plus everything needed to re-aggregate it years later."""
    return {
        "schema": RESULT_SCHEMA,
        "evaluator": evaluator,
        "metrics": metrics,
        "details": details or {},
        "warnings": warnings or [],
        "artifacts": artifacts or [],
        "run": {
            "run_id": run.get("run_id"),
            "task": run.get("task", {}).get("name"),
            "profile": run.get("task", {}).get("profile"),
            "model": run.get("model", {}).get("name"),
            "method": run.get("method", {}).get("name"),
            "method_config": run.get("method", {}).get("config"),
            "selective": run.get("method", {}).get("selective"),
            "seed": run.get("seed"),
            "weights_fingerprint": run.get("weights_fingerprint"),
            "train_cost_s_per_example": run.get("training", {}).get("seconds_per_example"),
        },
        "data": data or {},
        "settings": settings or {},
        "versions": package_versions(),
        "git_commit": git_commit(),
        "wall_time_s": round(wall_time_s, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "robench_version": robench.__version__,
    }


def iter_result_files(root: Path):
    """Every robench result JSON under ``root`` (recursively), skipping temp files and other JSON."""
    for path in sorted(Path(root).rglob("*.json")):
        if path.name.startswith(".") or path.parent.name != RESULTS_SUBDIR:
            continue
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("schema") == RESULT_SCHEMA:
            yield path, data


def results_frame(root: Path):
    """All results under ``root`` as one long pandas DataFrame: one row per (run, evaluator, metric)."""
    import pandas as pd

    rows = []
    for path, data in iter_result_files(root):
        run = data.get("run", {})
        for metric, value in _flatten(data.get("metrics", {})).items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            rows.append({
                "task": run.get("task"), "model": run.get("model"), "method": run.get("method"),
                "selective": bool(run.get("selective")), "seed": run.get("seed"), "run_id": run.get("run_id"),
                "evaluator": data.get("evaluator"), "metric": metric, "value": float(value), "file": str(path),
            })
    return pd.DataFrame(rows, columns=["task", "model", "method", "selective", "seed", "run_id", "evaluator",
                                       "metric", "value", "file"])


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out
