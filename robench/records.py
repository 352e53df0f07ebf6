"""Every file robench writes and reads again, each defined once as a typed record.

- :class:`RunRecord`: a run folder's ``run.json`` (what was trained, how, and its weights' fingerprint);
- :class:`ResultFile`: one evaluator's ``results/<evaluator>.json`` (metrics, their declarations, and the
  :class:`ResultRun` block that lets a board re-aggregate it without the run folder);
- :class:`TunedFile`: ``robench tune``'s ``tuned.json``;
- :class:`Baseline`: a recorded baseline that ``robench check`` compares against.

A record is a dataclass tree. :func:`parse` checks a JSON value against the type hints (and the
``check`` in a field's metadata) and builds the record; the first problem is one line naming the
key (``run.seed is 'zero', not a whole number``). :func:`to_json` writes it back. Keys a record does
not declare are kept in ``extra`` (newer writers add keys; readers that do not know them keep them).

The file loaders (:func:`load_run`, :func:`load_record`) turn every problem into one line naming the
file and the fix. This is the bottom layer: it imports nothing from robench but the errors.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from robench.errors import ConfigError

RUN_SCHEMA = "robench.run/1"
RESULT_SCHEMA = "robench.result/2"
RESULT_SCHEMAS = ("robench.result/1", RESULT_SCHEMA)  # /1: before metric declarations (read with frozen ones)
TUNED_SCHEMA = "robench.tuned/1"
BASELINE_SCHEMA = "robench.baseline/1"
RUN_FILE = "run.json"


class RecordProblem(ValueError):
    """What is wrong with a record, as one line naming the key."""


# ------------------------------------------------------------------------------------------ the checks


def is_number(value: Any, *, finite: bool = False) -> bool:
    """A real number (bools are not), and with ``finite`` neither NaN nor infinite: the one number check."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    return not finite or math.isfinite(value)


def flatten(d: dict[str, Any], prefix: str = "", *, keep_empty: bool = False) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: the one flattening of nested metrics and settings. An empty
    mapping vanishes, or with ``keep_empty`` stays a value (so comparing two cards sees it)."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and (value or not keep_empty):
            out.update(flatten(value, name + ".", keep_empty=keep_empty))
        else:
            out[name] = value
    return out


def checked(check: Any, what: str) -> dict[str, Any]:
    """Field metadata: ``check(value) -> bool`` on top of the type, and what a good value is."""
    return {"check": check, "what": what}


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _finite(v: Any) -> bool:
    return is_number(v, finite=True)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _what(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is str:
        return "text"
    if tp is bool:
        return "true/false"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if origin is dict or tp is dict or dataclasses.is_dataclass(tp):
        return "a mapping"
    if origin is list or tp is list:
        return "a list"
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_what(a) for a in typing.get_args(tp) if a is not type(None))
    return "a value"


def _key(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parse(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        problems = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _parse(arg, value, path)
            except RecordProblem as exc:
                problems.append(exc)
        if len(problems) == 1:
            raise problems[0]
        raise RecordProblem(f"{path} is {_show(value)}, not {_what(tp)}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise RecordProblem(f"{path} is {_show(value)}, not a mapping")
        return parse(tp, value, path)
    ok = {str: lambda v: isinstance(v, str), bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool), float: is_number}.get(tp)
    if ok is not None:
        if not ok(value):
            raise RecordProblem(f"{path} is {_show(value)}, not {_what(tp)}")
        return value
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise RecordProblem(f"{path} is {_show(value)}, not {_what(tp)}")
        return value
    container = dict if dict in (origin, tp) else list if list in (origin, tp) else None
    if container is not None:
        if not isinstance(value, container):
            raise RecordProblem(f"{path} is {_show(value)}, not {_what(tp)}")
        item = (typing.get_args(tp) or (Any,))[-1]
        if item is Any:
            return value
        if container is dict:
            return {k: _parse(item, v, f"{path}[{json.dumps(k)}]") for k, v in value.items()}
        return [_parse(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"records: unsupported type {tp!r} at {path}")  # a programming error, not a bad file


def parse(cls: type, data: Any, path: str = "") -> Any:
    """``data`` (a JSON value) checked against ``cls``'s type hints and built into a ``cls``; raises
    :class:`RecordProblem` naming the first bad key."""
    if not isinstance(data, dict):
        raise RecordProblem(f"{path or 'the top level'} is a {type(data).__name__}, not a mapping")
    hints = _hints(cls)
    values: dict[str, Any] = {}
    known = set()
    for f in dataclasses.fields(cls):
        if f.name == "extra":
            continue
        known.add(f.name)
        key = _key(path, f.name)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.name not in data:
            if required:
                raise RecordProblem(f"key '{key}' is missing")
            continue
        value = _parse(hints[f.name], data[f.name], key)
        check = f.metadata.get("check")
        if check is not None and value is not None and not check(value):
            raise RecordProblem(f"{key} is {_show(value)}, not {f.metadata['what']}")
        values[f.name] = value
    if "extra" in {f.name for f in dataclasses.fields(cls)}:
        values["extra"] = {k: v for k, v in data.items() if k not in known}
    record = cls(**values)
    problem = record.problem(path) if hasattr(record, "problem") else None
    if problem:
        raise RecordProblem(problem)
    return record


def to_json(record: Any) -> dict[str, Any]:
    """A record as the JSON mapping it was parsed from (``extra`` keys back at the top of their level)."""
    out: dict[str, Any] = {}
    fields = dataclasses.fields(record)  # the record's own keys first (a result names its schema first), then
    for f in [*(f for f in fields if not f.kw_only), *(f for f in fields if f.kw_only)]:  # its provenance
        if f.name != "extra":
            out[f.name] = _json_value(getattr(record, f.name))
    out.update(getattr(record, "extra", {}))
    return out


def _json_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json(value)
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------ run.json


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Where a record came from (robench.storage.provenance): package versions, commit, version, time."""

    versions: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    robench_version: str | None = None
    created: str = ""


@dataclass(frozen=True)
class RunTask:
    name: str
    source: str | None = None
    profile: str | None = None
    limit: int | None = None
    spec_hash: str | None = None
    data_hash: str | None = None
    labels: list[str] = field(default_factory=list)
    fingerprints: dict[str, str] = field(default_factory=dict)  # the train and validation sets
    sizes: dict[str, int] = field(default_factory=dict)
    set_fingerprints: dict[str, str] = field(default_factory=dict)  # every evaluated set, when training saw it
    overlap_with_train: dict[str, int] = field(default_factory=dict)  # texts each set shares with train
    files: dict[str, str] = field(default_factory=dict)  # source -> file the data came from
    dropped_rows: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunModel:
    name: str | None = None
    num_parameters: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # an outside checkpoint's source and revision


@dataclass(frozen=True)
class RunMethod:
    name: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    passes: int | str | None = None  # forward and backward passes per step, e.g. "3F+3B"
    preset: dict[str, Any] | str | None = None
    selective: bool = False
    selective_config: dict[str, Any] | None = None
    state: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord(Provenance):
    """A run folder's ``run.json``: written once by ``robench train`` (or by registering an outside
    checkpoint), read by ``eval``, ``tune`` and ``run``."""

    schema: Literal["robench.run/1"]
    task: RunTask
    seed: int
    run_id: str | None = None
    model: RunModel = field(default_factory=RunModel)
    method: RunMethod = field(default_factory=RunMethod)
    config: dict[str, Any] = field(default_factory=dict)  # the TrainConfig as given
    spec: dict[str, Any] | None = None  # {key, fields, sources}: what decides the weights (robench.runspec)
    training: dict[str, Any] = field(default_factory=dict)  # history, timings, precision, device...
    weights_fingerprint: str | None = None
    files: list[str] = field(default_factory=list)  # what the run wrote into its folder
    external: dict[str, Any] | None = None  # an outside checkpoint: folder, source, label order
    extra: dict[str, Any] = field(default_factory=dict)

    def problem(self, path: str = "") -> str | None:
        max_length = self.config.get("max_length", 128)
        if not _positive_int(max_length):
            return f"config.max_length is {_show(max_length)}, not a positive whole number"
        return None

    def result_run(self, eval_limit: int | None = None) -> ResultRun:
        """The block a result file carries about the run that produced it."""
        task, method, training = self.task, self.method, self.training
        history = training.get("history") or []
        return ResultRun(
            run_id=self.run_id, task=task.name, task_source=task.source, task_spec_hash=task.spec_hash,
            profile=task.profile, train_limit=task.limit,
            limit=eval_limit if eval_limit is not None else task.limit,
            model=self.model.name, method=method.name, method_config=method.config,
            method_preset=method.preset, selective=bool(method.selective),
            selective_config=method.selective_config, seed=self.seed,
            weights_fingerprint=self.weights_fingerprint, train_fingerprints=task.fingerprints,
            overlap_with_train=task.overlap_with_train, data_files=task.files,
            train_cost_s_per_example=training.get("seconds_per_example"),
            train_wall_seconds=training.get("wall_seconds"), precision=training.get("precision"),
            tuned=self.config.get("tuned"),
            training_diagnostics=[h.get("diagnostics") or {} for h in history if isinstance(h, dict)])


# ------------------------------------------------------------------------------------------ result files


@dataclass(frozen=True)
class ResultRun:
    """What a result file says about its run: enough to re-aggregate it years later without the folder."""

    run_id: str | None = None
    task: str | None = None
    task_source: str | None = None
    task_spec_hash: str | None = None
    profile: str | None = None
    train_limit: int | None = None
    limit: int | None = None  # the data limit this result saw
    model: str | None = None
    method: str | None = None
    method_config: dict[str, Any] | None = None
    method_preset: dict[str, Any] | str | None = None
    selective: bool = False
    selective_config: dict[str, Any] | None = None
    seed: int | None = None
    weights_fingerprint: str | None = None
    train_fingerprints: dict[str, Any] | None = None
    overlap_with_train: dict[str, Any] | None = None
    data_files: dict[str, Any] | None = None
    train_cost_s_per_example: float | None = None
    train_wall_seconds: float | None = None  # the run's training wall time
    precision: str | None = None
    tuned: dict[str, Any] | None = None  # {file, sha256, method, setting, overridden} (robench.tune)
    training_diagnostics: list[dict[str, Any]] = field(default_factory=list)  # per epoch (methods/diagnostics.py)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricDeclaration:
    """A metric as a result file declares it (robench.results.MetricSpec is its working form)."""

    name: str
    direction: str
    aspect: str
    column: str | None = None
    label: str | None = None
    short: str | None = None
    headline: bool = False
    per_example: str | None = None
    statistic: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ResultFile(Provenance):
    """One evaluator's result for one run (``results/<evaluator>.json``)."""

    schema: Literal["robench.result/1", "robench.result/2"]
    evaluator: str
    metrics: dict[str, Any]  # name -> number (or None), possibly nested; see problem()
    run: ResultRun
    evaluator_version: str | int = 1
    metric_specs: list[MetricDeclaration] | None = None  # None: a schema-1 file (declarations frozen in legacy_specs)
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)  # paths relative to the run folder
    data: dict[str, Any] = field(default_factory=dict)  # set -> {size, fingerprint}
    settings: dict[str, Any] = field(default_factory=dict)  # the evaluator's settings (threat model card...)
    wall_time_s: float | None = None
    # --allow-changed-data: {set or "task file": {"trained": fingerprint, "now": fingerprint}}; empty normally
    data_changed: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def problem(self, path: str = "") -> str | None:
        for name, value in flatten(self.metrics).items():
            if value is not None and not is_number(value):
                return f"metric {name!r} is {_show(value)}, not a number"
        return None

    def number_metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in flatten(self.metrics).items() if is_number(v)}


# ------------------------------------------------------------------------------------------ tuned.json


@dataclass(frozen=True)
class TunedChoice:
    setting: dict[str, int | float | str | bool]  # lr and the method's hyper-parameters
    extra: dict[str, Any] = field(default_factory=dict)

    def problem(self, path: str = "") -> str | None:
        lr = self.setting.get("lr")
        if not (is_number(lr, finite=True) and lr > 0):
            return f"{path} has chosen lr {_show(lr)}, not a positive number"
        return None


@dataclass(frozen=True)
class TunedMethod:
    chosen: TunedChoice
    extra: dict[str, Any] = field(default_factory=dict)  # trials, margins, seeds


@dataclass(frozen=True)
class TunedFile:
    """``robench tune``'s chosen settings per method, for one (task, model)."""

    schema: Literal["robench.tuned/1"]
    task: dict[str, Any]  # {name, profile, limit, ...}
    model: str
    methods: dict[str, TunedMethod]
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ baselines


@dataclass(frozen=True)
class BaselineScore:
    value: float = field(metadata=checked(_finite, "a finite number"))
    direction: Literal["higher", "lower"]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Baseline:
    """Recorded scores per ``task | model | method`` and metric, with per-metric tolerances."""

    schema: Literal["robench.baseline/1"]
    scores: dict[str, dict[str, BaselineScore]] = field(metadata=checked(
        lambda s: any(s.values()), "a mapping with scores to check"))
    tolerances: dict[str, float] = field(default_factory=dict, metadata=checked(
        lambda t: all(_finite(v) and v >= 0 for v in t.values()), "a mapping of metric patterns to numbers >= 0"))
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ loading files


def read_json(path: Path | str) -> object | None:
    """A JSON file's content, or None when it is missing, unreadable or not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def load_record(cls: type, path: Path | str, what: str, fix: str) -> Any:
    """A robench JSON file of one kind (``cls``: :class:`TunedFile`, :class:`Baseline`), or one line
    saying why it is not: a folder, missing, not JSON, another schema, or a bad key. ``fix`` says how
    to write a good one."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; give the path of the file ({fix})")
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist; {fix}")
    data = read_json(path)
    if data is None:
        raise ConfigError(f"{what} {path} is not valid JSON; {fix}")
    schema = typing.get_args(_hints(cls)["schema"])[0]
    if not isinstance(data, dict) or data.get("schema") != schema:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"{path} is not a robench {what} (schema {found!r}, expected {schema!r}); {fix}")
    try:
        return parse(cls, data)
    except RecordProblem as exc:
        raise ConfigError(f"{what} {path}: {exc}; {fix}") from None


def load_run(run_dir: Path | str) -> RunRecord:
    """A finished run folder's record, or one line saying why the folder is not one."""
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
    return load_record(RunRecord, path, "run record", "re-train the run ('robench train --force')")
