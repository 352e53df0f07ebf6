"""Run records and result files: the schema every reader shares.

Here live: atomic writing; the run identity (one place builds ``ram+selective``, run ids and
run folders); the provenance block (versions, commit, time) shared by run.json and result
files; metric declarations (:class:`MetricSpec`: direction, aspect, headline, per-example
outcomes, written into each result file); and :func:`load_results`, the one loader that the
leaderboard, the paper tables and the regression gate read. A result file is self-contained:
nothing reads a run folder to interpret it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, BinaryIO

from robench._version import __version__
from robench.errors import ConfigError

RUN_SCHEMA = "robench.run/1"
RESULT_SCHEMA = "robench.result/2"
RESULT_SCHEMAS = ("robench.result/1", RESULT_SCHEMA)  # /1: before metric declarations (read with the registry's)
RUN_FILE = "run.json"
RESULTS_SUBDIR = "results"


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


def provenance() -> dict[str, Any]:
    """Where a record came from: package versions, robench version and commit, time. Shared by
    run.json and every result file."""
    return {"versions": package_versions(), "git_commit": git_commit(), "robench_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def load_run(run_dir: Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run {run_dir} is a file, not a run directory; pass the folder that holds run.json "
                          "(written by 'robench train')")
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist; pass a folder written by 'robench train'")
    path = run_dir / RUN_FILE
    if not path.exists():
        raise ConfigError(f"run directory {run_dir} has no {RUN_FILE}; it is not a finished robench run "
                          "(train it with 'robench train')")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ConfigError(f"{path} is not valid JSON; re-train the run ('robench train --force')") from None
    if not isinstance(record, dict) or record.get("schema") != RUN_SCHEMA:
        schema = record.get("schema") if isinstance(record, dict) else type(record).__name__
        raise ConfigError(f"{path} is not a robench run record (schema {schema!r}); re-train the run")
    problem = _run_record_problem(record)
    if problem:
        raise ConfigError(f"{path}: {problem}; the run record is damaged: re-train the run ('robench train --force')")
    return record


def _run_record_problem(record: dict[str, Any]) -> str | None:
    """What is wrong with a run record's structure, or None."""
    task = record.get("task")
    if not isinstance(task, dict) or not isinstance(task.get("name"), str):
        return "key 'task' is missing or not a mapping with a 'name'"
    if task.get("limit") is not None and (not isinstance(task["limit"], int) or isinstance(task["limit"], bool)):
        return f"task.limit is {task['limit']!r}, not a whole number"
    if not isinstance(record.get("seed"), int) or isinstance(record.get("seed"), bool):
        return f"seed is {record.get('seed')!r}, not a whole number"
    for key in ("model", "method", "config", "training"):
        if not isinstance(record.get(key, {}), dict):
            return f"key {key!r} is not a mapping"
    max_length = (record.get("config") or {}).get("max_length", 128)
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
        return f"config.max_length is {max_length!r}, not a positive whole number"
    return None


def result_path(run_dir: Path, evaluator: str, limit: int | None = None) -> Path:
    """``results/<evaluator>.json``; a result computed under an evaluation ``--limit`` gets its own
    ``results/<evaluator>.limit<N>.json`` (and its own board row), so it never replaces the full one."""
    suffix = f".limit{int(limit)}" if limit is not None else ""
    return Path(run_dir) / RESULTS_SUBDIR / f"{evaluator}{suffix}.json"


# --------------------------------------------------------------------------------------------- identity


SELECTIVE_SUFFIX = "+selective"


def method_label(method: str, selective: bool = False) -> str:
    """The method as the board and run folders name it: ``ram``, ``r3f+selective``."""
    return f"{method}{SELECTIVE_SUFFIX if selective else ''}"


def parse_method_label(label: str) -> tuple[str, bool]:
    """``"r3f+selective"`` -> ``("r3f", True)``."""
    if label.endswith(SELECTIVE_SUFFIX):
        return label[: -len(SELECTIVE_SUFFIX)], True
    return label, False


def model_label(model: str) -> str:
    """A model as a folder name: a local folder's name, or the hub id with ``/`` -> ``--``."""
    return Path(model).name if Path(model).exists() else model.replace("/", "--")


@dataclass(frozen=True)
class RunIdentity:
    """What names a run: task (profile, limit), model, method (+ selective) and seed.

    The one builder of run ids, run folders and the task label the board groups by.
    """

    task: str
    model: str
    method: str
    selective: bool = False
    seed: int = 0
    profile: str | None = None
    limit: int | None = None

    @property
    def task_name(self) -> str:
        return Path(self.task).stem

    @property
    def method_label(self) -> str:
        return method_label(self.method, self.selective)

    @property
    def run_id(self) -> str:
        return f"{self.task_name}/{self.model}/{self.method_label}/seed{self.seed}"

    def run_dir(self, root: Path | str = "runs") -> Path:
        profile = f"-{self.profile}" if self.profile and self.profile != "default" else ""
        limit = f"-limit{self.limit}" if self.limit else ""
        return Path(root) / f"{self.task_name}{profile}{limit}" / model_label(self.model) / self.method_label / f"seed{self.seed}"


def task_label(task: str, profile: str | None, limit: int | None, train_limit: int | None = None) -> str:
    """The board's task label: the name, plus the profile and data limit when not the default. A result
    evaluated under a limit other than its run's training limit says both, so it never shares a row
    with a run trained under that limit."""
    if limit and train_limit is not None and limit != train_limit:
        limits = [f"limit {train_limit}" if train_limit else None, f"eval limit {limit}"]
    else:
        limits = [f"limit {limit}" if limit else None]
    extras = [p for p in (profile if profile not in (None, "default") else None, *limits) if p]
    return f"{task} ({', '.join(extras)})" if extras else str(task)


# --------------------------------------------------------------------------------------------- metric declarations


DIRECTIONS = ("higher", "lower", "none")
STATISTICS = (None, "ece", "auroc")  # how a metric is recomputed from its per-example data (None: mean of 0/1)


@dataclass(frozen=True)
class MetricSpec:
    """One metric (or a family, by shell glob over the flattened name) that an evaluator declares.

    ``direction``: "higher" / "lower" is better, "none" for informational numbers (counts,
    temperatures). ``column``/``label``/``short``: a headline metric's leaderboard column key,
    its header in files and its short header in the terminal. ``per_example``: the key in the
    result's ``details`` that holds this metric's per-example data; only such metrics get a paired
    significance test. ``statistic``: what that data is and how the metric is recomputed from it:
    ``None`` (default) per-example 0/1 outcomes (a '0110' string or {set: string}), the metric being
    the mean over sets of the mean outcome (an accuracy); ``"ece"`` per-example top-label confidence
    and correctness per set (``{"bins": B, "sets": {set: {"confidence": [...], "correct": "0110"}}}``),
    the metric being the mean over sets of the ECE; ``"auroc"`` per-example anomaly scores
    (``{"in": [...], "out": {set: [...]}}``), the metric being the mean over OOD sets of the AUROC
    against the in-distribution scores.
    """

    name: str
    direction: str
    aspect: str
    headline: bool = False
    column: str | None = None
    label: str | None = None
    short: str | None = None
    per_example: str | None = None
    statistic: str | None = None

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.name!r}: direction must be one of {DIRECTIONS}")
        if self.statistic not in STATISTICS:
            raise ValueError(f"metric {self.name!r}: statistic must be one of {STATISTICS}")
        if self.statistic is not None and self.per_example is None:
            raise ValueError(f"metric {self.name!r}: a statistic needs the per_example key of its data")
        if self.headline and not (self.column and self.label):
            raise ValueError(f"headline metric {self.name!r} needs a column key and a label")

    @property
    def higher_is_better(self) -> bool:
        return self.direction != "lower"

    def matches(self, metric: str) -> bool:
        return metric == self.name or fnmatchcase(metric, self.name)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, False)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MetricSpec:
        return cls(**{k: data[k] for k in ("name", "direction", "aspect", "headline", "column", "label", "short",
                                           "per_example", "statistic") if k in data})


def find_spec(specs: Sequence[MetricSpec], metric: str) -> MetricSpec | None:
    """The declaration of a flattened metric name: an exact name first, then the first glob."""
    for spec in specs:
        if spec.name == metric:
            return spec
    for spec in specs:
        if spec.matches(metric):
            return spec
    return None


def undeclared(specs: Sequence[MetricSpec], metrics: dict[str, Any]) -> list[str]:
    """Numeric metrics of a result that no declaration covers (an evaluator bug)."""
    return [k for k, v in _flatten(metrics).items() if _is_number(v) and find_spec(specs, k) is None]


# --------------------------------------------------------------------------------------------- result files


def run_block(run: dict[str, Any], eval_limit: int | None = None) -> dict[str, Any]:
    """The run identity and config a result carries, from the run's record (run.json)."""
    task = run.get("task", {}) or {}
    method = run.get("method", {}) or {}
    training = run.get("training", {}) or {}
    train_limit = task.get("limit")
    return {
        "run_id": run.get("run_id"),
        "task": task.get("name"),
        "task_source": task.get("source"),
        "task_spec_hash": task.get("spec_hash"),
        "profile": task.get("profile"),
        "train_limit": train_limit,
        "limit": eval_limit if eval_limit is not None else train_limit,  # the data limit this result saw
        "model": (run.get("model", {}) or {}).get("name"),
        "method": method.get("name"),
        "method_config": method.get("config"),
        "method_preset": method.get("preset"),
        "selective": bool(method.get("selective")),
        "selective_config": method.get("selective_config"),
        "seed": run.get("seed"),
        "weights_fingerprint": run.get("weights_fingerprint"),
        "train_fingerprints": task.get("fingerprints"),
        "overlap_with_train": task.get("overlap_with_train"),  # texts each set shares with train
        "data_files": task.get("files"),
        "train_cost_s_per_example": training.get("seconds_per_example"),
        "train_wall_seconds": training.get("wall_seconds"),  # the run's training wall time (run.json)
        "precision": training.get("precision"),
        # robench run/train --tuned: {file, sha256, method, setting, overridden} (robench.tune), else None
        "tuned": (run.get("config") or {}).get("tuned"),
        # per epoch: each loss term's mean and the regulariser-alive ratio (methods/diagnostics.py)
        "training_diagnostics": [h.get("diagnostics") or {} for h in training.get("history", []) or []
                                 if isinstance(h, dict)],
    }


def make_result(evaluator: str, run: dict[str, Any], metrics: dict[str, Any], *, details: dict[str, Any] | None = None,
                data: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
                warnings: list[str] | None = None, wall_time_s: float = 0.0,
                artifacts: list[str] | None = None, specs: Sequence[MetricSpec] = (),
                evaluator_version: str | int = 1, eval_limit: int | None = None,
                data_changed: dict[str, Any] | None = None) -> dict[str, Any]:
    """One result file's content: metrics, their declarations, and everything needed to re-aggregate it
    years later without the run folder."""
    return {
        "schema": RESULT_SCHEMA,
        "evaluator": evaluator,
        "evaluator_version": evaluator_version,
        "metrics": metrics,
        "metric_specs": [s.to_json() for s in specs],
        "details": details or {},
        "warnings": warnings or [],
        "artifacts": artifacts or [],
        "run": run_block(run, eval_limit),
        "data": data or {},
        "settings": settings or {},
        "wall_time_s": round(wall_time_s, 3),
        # --allow-changed-data: {set or "task file": {"trained": fingerprint, "now": fingerprint}}; empty normally
        "data_changed": data_changed or {},
        **provenance(),
    }


def iter_result_files(root: Path):
    """Every robench result JSON under ``root`` (recursively), skipping temp files and other JSON."""
    root = Path(root)
    paths = [root] if root.is_file() else sorted(root.rglob("*.json"))
    for path in paths:
        if path.name.startswith(".") or path.suffix != ".json":
            continue
        try:
            with open(path, "rb") as fh:  # a result names its schema first: skip other JSON unparsed
                head = fh.read(256)
        except OSError:
            continue
        if b'"robench.result/' not in head:
            if path.parent.name == RESULTS_SUBDIR or not head.strip():
                # where results live (or an empty file): damaged, not someone else's JSON
                raise ConfigError(f"{path}: not a robench result (empty or damaged); delete it or recompute it "
                                  "with 'robench eval --force'")
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: a robench result that is not valid JSON ({type(exc).__name__}); delete it "
                              "or recompute it with 'robench eval --force'") from None
        newer = _newer_schema(data.get("schema") if isinstance(data, dict) else None)
        if newer:
            raise ConfigError(f"{path}: written by a newer robench (schema {newer!r}; this robench "
                              f"{__version__} reads up to {RESULT_SCHEMA!r}); upgrade robench to read it")
        problem = _result_problem(data)
        if problem:
            raise ConfigError(f"{path}: not a valid robench result ({problem}); delete it or recompute it with "
                              "'robench eval --force'")
        yield path, data


def _newer_schema(schema: Any) -> str | None:
    """``schema`` when it is a robench result schema newer than the ones this version reads, else None."""
    prefix = RESULT_SCHEMA.rsplit("/", 1)[0] + "/"
    if not isinstance(schema, str) or not schema.startswith(prefix):
        return None
    try:
        version = int(schema[len(prefix):])
    except ValueError:
        return None
    return schema if version > int(RESULT_SCHEMA.rsplit("/", 1)[1]) else None


def _result_problem(data: Any) -> str | None:
    """What is wrong with a result file's structure (the types every reader relies on), or None."""
    if not isinstance(data, dict):
        return f"the top level is a {type(data).__name__}, not a mapping"
    if data.get("schema") not in RESULT_SCHEMAS:
        return f"unknown schema {data.get('schema')!r}"
    if not isinstance(data.get("evaluator"), str):
        return "'evaluator' is not a name"
    for key in ("metrics", "run"):
        if not isinstance(data.get(key), dict):
            return f"{key!r} is missing or not a mapping"
    for key in ("details", "settings", "data"):
        if not isinstance(data.get(key, {}), dict):
            return f"{key!r} is not a mapping"
    if not isinstance(data.get("artifacts", []), list) or not all(isinstance(a, str) for a in data.get("artifacts", [])):
        return "'artifacts' is not a list of paths"
    for name, value in _flatten(data["metrics"]).items():
        if value is not None and not _is_number(value):
            return f"metric {name!r} is {value!r}, not a number"
    run = data["run"]
    for key in ("task", "model", "method", "profile", "run_id"):
        if run.get(key) is not None and not isinstance(run[key], str):
            return f"run.{key} is {run[key]!r}, not a name"
    for key in ("seed", "limit"):
        if run.get(key) is not None and (not isinstance(run[key], int) or isinstance(run[key], bool)):
            return f"run.{key} is {run[key]!r}, not a whole number"
    for key in ("train_cost_s_per_example", "train_wall_seconds"):
        if run.get(key) is not None and not _is_number(run[key]):
            return f"run.{key} is {run[key]!r}, not a number"
    if data.get("wall_time_s") is not None and not _is_number(data["wall_time_s"]):
        return f"wall_time_s is {data['wall_time_s']!r}, not a number"
    diagnostics = run.get("training_diagnostics", [])
    if not isinstance(diagnostics, list):
        return "run.training_diagnostics is not a list"
    specs = data.get("metric_specs", [])
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        return "'metric_specs' is not a list of declarations"
    for spec in specs:
        for key in ("name", "direction", "aspect"):
            if not isinstance(spec.get(key), str):
                return f"a metric declaration's {key!r} is {spec.get(key)!r}, not text"
        for key in ("column", "label", "short", "per_example", "statistic"):
            if spec.get(key) is not None and not isinstance(spec[key], str):
                return f"a metric declaration's {key!r} is {spec[key]!r}, not text"
        if not isinstance(spec.get("headline", False), bool):
            return "a metric declaration's 'headline' is not true/false"
    try:
        [MetricSpec.from_json(s) for s in specs]
    except (TypeError, ValueError) as exc:
        return f"a metric declaration is invalid ({exc})"
    return None


@dataclass
class ResultRecord:
    """One result file as every reader sees it (nothing here comes from the run folder)."""

    path: Path
    evaluator: str
    task: str  # task label: name plus profile / limit when not the default
    model: str
    method: str  # method label, "+selective" appended for selective training
    seed: Any
    run_id: str | None
    metrics: dict[str, float]
    specs: list[MetricSpec] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    cost: float | None = None  # training seconds per example
    created: str = ""
    diagnostics: list[dict[str, Any]] = field(default_factory=list)  # per training epoch
    settings: dict[str, Any] = field(default_factory=dict)  # the evaluator's settings (threat model card...)
    weights: str | None = None  # run.weights_fingerprint: which trained weights were evaluated
    tuned: dict[str, Any] | None = None  # run.tuned: the tuned setting the run trained with (robench.tune)
    wall_time: float | None = None  # wall_time_s: the evaluator's seconds for this result (None: not recorded)
    train_wall: float | None = None  # run.train_wall_seconds: the run's training wall time (None: not recorded)
    data_changed: dict[str, Any] = field(default_factory=dict)  # evaluated with --allow-changed-data: what changed
    overlap: dict[str, Any] = field(default_factory=dict)  # run.overlap_with_train: {set: texts shared with train}

    @property
    def run_dir(self) -> Path:
        """Where the result sits (``<run>/results/<evaluator>.json``): only for copying its figures."""
        return self.path.parent.parent

    def spec(self, metric: str) -> MetricSpec | None:
        return find_spec(self.specs, metric)

    def direction(self, metric: str) -> str:
        spec = self.spec(metric)
        return spec.direction if spec else "none"


@functools.lru_cache(maxsize=1)
def _legacy_table() -> dict[str, list[dict[str, Any]]]:
    from importlib.resources import files

    return json.loads((files("robench") / "legacy_specs.json").read_text(encoding="utf-8"))["evaluators"]


def _legacy_specs(evaluator: str) -> list[MetricSpec]:
    """Declarations for a schema-1 file (written before results carried them): the evaluators' declarations
    when schema 2 came, frozen in ``legacy_specs.json`` (so this bottom layer never imports the evaluators)."""
    return [MetricSpec.from_json(s) for s in _legacy_table().get(evaluator, [])]


def is_number(value: Any, *, finite: bool = False) -> bool:
    """A real number (bools are not), and with ``finite`` neither NaN nor infinite: the one number check."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return not finite or math.isfinite(value)


_is_number = is_number


def outcome_string(bits: Any) -> str:
    """Per-example 0/1 outcomes as result files store them: ``"0110"`` (the one writer of that format)."""
    return "".join("1" if b else "0" for b in bits)


def load_results(roots: Path | str | Iterable[Path | str]) -> list[ResultRecord]:
    """Every robench result under the given folders or files, one record per (task, model, method, seed,
    evaluator); where the same one is found twice, the newest file wins."""
    if isinstance(roots, str | Path):
        roots = [roots]
    roots = [Path(r) for r in roots]
    for root in roots:
        if not root.exists():
            raise ConfigError(f"results folder {root} does not exist; pass the runs folder that "
                              "'robench run' / 'robench eval' wrote (e.g. --results runs)")
    seen: dict[tuple, ResultRecord] = {}
    for root in roots:
        for path, data in iter_result_files(root):
            run = data.get("run", {}) or {}
            evaluator = str(data.get("evaluator"))
            if "metric_specs" in data:
                specs = [MetricSpec.from_json(s) for s in data.get("metric_specs") or []]
            else:
                specs = _legacy_specs(evaluator)
            cost = run.get("train_cost_s_per_example")
            metrics = {k: float(v) for k, v in _flatten(data.get("metrics", {}) or {}).items() if _is_number(v)}
            method = method_label(str(run.get("method") or "?"), bool(run.get("selective")))
            weights = run.get("weights_fingerprint")
            wall, train_wall = data.get("wall_time_s"), run.get("train_wall_seconds")
            rec = ResultRecord(path=path.resolve(), evaluator=evaluator,
                               task=task_label(run.get("task") or "?", run.get("profile"), run.get("limit"),
                                               run.get("train_limit", run.get("limit"))),
                               model=str(run.get("model") or "?"), method=method, seed=run.get("seed"),
                               run_id=run.get("run_id"), metrics=metrics, specs=specs,
                               details=data.get("details", {}) or {}, artifacts=list(data.get("artifacts", []) or []),
                               cost=float(cost) if _is_number(cost) else None, created=str(data.get("created", "")),
                               diagnostics=[d for d in run.get("training_diagnostics") or [] if isinstance(d, dict)],
                               settings=data.get("settings", {}) or {},
                               weights=weights if isinstance(weights, str) and weights else None,
                               tuned=run.get("tuned") if isinstance(run.get("tuned"), dict) else None,
                               wall_time=float(wall) if _is_number(wall) else None,
                               train_wall=float(train_wall) if _is_number(train_wall) else None,
                               data_changed=dict(data.get("data_changed") or {}) if isinstance(
                                   data.get("data_changed"), dict) else {},
                               overlap={k: v for k, v in (run.get("overlap_with_train") or {}).items()
                                        if _is_number(v)} if isinstance(run.get("overlap_with_train"), dict) else {})
            key = (rec.task, rec.model, rec.method, str(rec.seed), rec.evaluator)
            if key not in seen or rec.created >= seen[key].created:
                seen[key] = rec
    return sorted(seen.values(), key=lambda r: (r.task, r.model, r.method, str(r.seed), r.evaluator))


def results_frame(roots: Path | str | Iterable[Path | str]):
    """All results as one long pandas DataFrame: one row per (run, evaluator, metric), with its direction."""
    import pandas as pd

    rows = [{"task": r.task, "model": r.model, "method": r.method, "seed": r.seed, "run_id": r.run_id,
             "evaluator": r.evaluator, "metric": metric, "value": value, "direction": r.direction(metric),
             "file": str(r.path)}
            for r in load_results(roots) for metric, value in r.metrics.items()]
    return pd.DataFrame(rows, columns=["task", "model", "method", "seed", "run_id", "evaluator", "metric", "value",
                                       "direction", "file"])


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out
