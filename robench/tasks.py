"""Tasks are data: ``tasks/*.yaml`` -> a validated :class:`TaskSpec` -> HF ``datasets`` splits.

A task file names its labels, its data *sources* (a packaged asset file, a local file or a
Hugging Face hub dataset), and which source feeds each *set*: train / validation / test,
named distribution-shift sets, named OOD sets and static adversarial sets. Every set comes
out as a ``datasets.Dataset`` with a ``text`` column and (except OOD sets) an integer
``label`` column, in a seeded order, capped by its limit.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from robench.errors import ConfigError, OfflineError

TASKS_DIR = Path(__file__).resolve().parent.parent / "tasks"
FILE_FORMATS = {"csv", "tsv", "jsonl", "json", "parquet", "lines"}
SOURCE_KEYS = {
    "asset", "file", "hub", "format", "text_column", "label_column", "label_map", "binarize",
    "text_pattern", "partition", "seed",
}
SET_KEYS = {"source", "part", "limit"}
TOP_KEYS = {
    "name", "description", "labels", "sources", "train", "validation", "test", "shift", "ood",
    "adversarial", "attack_split", "profiles", "evaluators", "method_presets",
}
ROLES = ("train", "validation", "test")
GROUPS = ("shift", "ood", "adversarial")


def _fail(path: Path | str, key: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"{path}: key '{key}': {problem}; {fix}")


@dataclass(frozen=True)
class SourceSpec:
    name: str
    asset: str | None = None
    file: str | None = None
    hub: dict[str, Any] | None = None
    format: str | None = None
    text_column: str = "text"
    label_column: str | None = None
    label_map: dict[Any, str] | None = None
    binarize: dict[str, float] | None = None
    text_pattern: str | None = None
    partition: dict[str, Any] | None = None
    seed: int = 0


@dataclass(frozen=True)
class SetSpec:
    source: str
    part: str | None = None
    limit: int | None = None


@dataclass
class TaskSpec:
    name: str
    labels: list[str]
    sources: dict[str, SourceSpec]
    sets: dict[str, SetSpec]  # keys: "train", "validation", "test", "shift:amazon", "ood:trec", ...
    attack_split: str = "test"
    description: str = ""
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Per-evaluator default options for this task (e.g. attack sample size); CLI options override them.
    evaluator_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The preset each method trains with on this task ({"ram": "sentiment"}); --preset / --set override it.
    method_presets: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    spec_hash: str = ""  # hash of the task file's content: which definition a run and its results used

    def set_names(self, group: str) -> list[str]:
        """Names of the sets of one group (shift / ood / adversarial), in file order."""
        return [k.split(":", 1)[1] for k in self.sets if k.startswith(group + ":")]


# ---------------------------------------------------------------- loading and validation


def task_path(name_or_path: str) -> Path:
    """A task name (``sentiment``) or a path to a YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        if not candidate.is_file():
            raise ConfigError(f"task file {candidate} does not exist; check the path")
        return candidate
    path = TASKS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = ", ".join(list_tasks()) or "(none)"
        raise ConfigError(f"unknown task {name_or_path!r}; choose one of: {known} or pass a path to a .yaml file")
    return path


def list_tasks() -> list[str]:
    return sorted(p.stem for p in TASKS_DIR.glob("*.yaml"))


def load_task(name_or_path: str, profile: str | None = None, limit: int | None = None) -> TaskSpec:
    """Load and validate a task; ``profile`` picks preset set sizes, ``limit`` caps every set."""
    path = task_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise ConfigError(f"{path}: malformed YAML ({first}); fix the syntax of the file") from None
    spec = parse_task(raw, path)
    spec.spec_hash = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]
    if profile:
        spec = apply_profile(spec, profile)
    if limit is not None:
        if limit <= 0:
            raise ConfigError(f"--limit must be a positive number of examples, got {limit}")
        spec.sets = {k: SetSpec(s.source, s.part, min(limit, s.limit or limit)) for k, s in spec.sets.items()}
    return spec


def apply_profile(spec: TaskSpec, profile: str) -> TaskSpec:
    """Profiles override set limits by role (``train``, ``test``, ``shift``...); ``null`` = no limit."""
    if profile == "default":
        return spec
    if profile not in spec.profiles:
        known = ", ".join(["default", *spec.profiles])
        raise ConfigError(f"task {spec.name!r} has no profile {profile!r}; choose one of: {known}")
    sizes = dict(spec.profiles[profile])
    for name, opts in (sizes.pop("evaluators", None) or {}).items():
        spec.evaluator_options[name] = {**spec.evaluator_options.get(name, {}), **opts}
    sets = {}
    for key, s in spec.sets.items():
        role = key.split(":", 1)[0]
        sets[key] = SetSpec(s.source, s.part, sizes[role]) if role in sizes else s
    spec.sets = sets
    return spec


def parse_task(raw: Any, path: Path | str = "<task>") -> TaskSpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a task file must be a mapping of keys; see tasks/sentiment.yaml for the layout")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise _fail(path, key, "unknown key", f"allowed keys are: {', '.join(sorted(TOP_KEYS))}")
    for key in ("name", "labels", "sources", "train", "validation", "test"):
        if key not in raw:
            raise _fail(path, key, "missing", "every task needs name, labels, sources, train, validation and test")
    labels = raw["labels"]
    if not (isinstance(labels, list) and len(labels) >= 2 and all(isinstance(x, str) for x in labels)):
        raise _fail(path, "labels", "must be a list of at least two label names", "e.g. labels: [negative, positive]")
    if len(set(labels)) != len(labels):
        raise _fail(path, "labels", "label names repeat", "give each label a distinct name")
    if not isinstance(raw["sources"], dict) or not raw["sources"]:
        raise _fail(path, "sources", "must be a mapping of source name to source", "see tasks/sentiment.yaml")
    sources = {name: _parse_source(name, s, path, labels) for name, s in raw["sources"].items()}

    sets: dict[str, SetSpec] = {}
    for role in ROLES:
        sets[role] = _parse_set(role, raw[role], path, sources)
    for group in GROUPS:
        entries = raw.get(group) or {}
        if not isinstance(entries, dict):
            raise _fail(path, group, "must be a mapping of set name to set", f"e.g. {group}: {{name: {{source: x}}}}")
        for set_name, s in entries.items():
            sets[f"{group}:{set_name}"] = _parse_set(f"{group}.{set_name}", s, path, sources)
    for key, s in sets.items():
        needs_label = not key.startswith("ood:")
        if needs_label and sources[s.source].label_column is None:
            raise _fail(path, f"sources.{s.source}.label_column", f"set {key!r} needs labels but its source has none",
                        "add label_column (and label_map or binarize) to the source")
    attack_split = raw.get("attack_split", "test")
    if attack_split not in sets or attack_split.startswith("ood:"):
        raise _fail(path, "attack_split", f"{attack_split!r} is not a labelled set of this task",
                    "use test, validation or a shift set name like shift:amazon")
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise _fail(path, "profiles", "must map profile names to {role: limit}", "e.g. profiles: {quick: {train: 500}}")
    evaluator_options = raw.get("evaluators") or {}
    _check_evaluator_options(evaluator_options, "evaluators", path)
    for pname, sizes in profiles.items():
        for role, lim in sizes.items():
            if role == "evaluators":
                _check_evaluator_options(lim, f"profiles.{pname}.evaluators", path)
                continue
            if role not in (*ROLES, *GROUPS):
                raise _fail(path, f"profiles.{pname}.{role}", "unknown role", f"use one of {', '.join((*ROLES, *GROUPS))}")
            if lim is not None and (not isinstance(lim, int) or lim <= 0):
                raise _fail(path, f"profiles.{pname}.{role}", "must be a positive integer or null", "e.g. train: 500")
    method_presets = _parse_method_presets(raw.get("method_presets"), path)
    return TaskSpec(
        name=str(raw["name"]), labels=labels, sources=sources, sets=sets, attack_split=attack_split,
        description=str(raw.get("description", "")), profiles=profiles,
        evaluator_options={k: dict(v) for k, v in evaluator_options.items()}, method_presets=method_presets,
        path=Path(path) if not isinstance(path, Path) else path,
    )


def _parse_method_presets(raw: Any, path: Path | str) -> dict[str, str]:
    """``{method: preset}``, checked against the method registry (aliases map to the method's name)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise _fail(path, "method_presets", "must map method names to preset names", "e.g. method_presets: {ram: sentiment}")
    from robench.methods import METHODS  # only tasks that name presets pay for importing the methods

    out: dict[str, str] = {}
    for method, preset in raw.items():
        where = f"method_presets.{method}"
        if method.lower() not in METHODS:
            raise _fail(path, where, f"unknown method {method!r}", f"use one of: {', '.join(METHODS.names())}")
        cls = METHODS.get(method)
        known = list(dict.fromkeys(["paper", *cls.presets]))
        if preset not in known:
            raise _fail(path, where, f"method {cls.name!r} has no preset {preset!r}", f"use one of: {', '.join(known)}")
        out[cls.name] = preset
    return out


def _check_evaluator_options(options: Any, where: str, path: Path | str) -> None:
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise _fail(path, where, "must map evaluator names to option mappings", "e.g. adversarial: {n: 50}")


def _parse_source(name: str, s: Any, path: Path | str, labels: list[str]) -> SourceSpec:
    where = f"sources.{name}"
    if not isinstance(s, dict):
        raise _fail(path, where, "must be a mapping", "give asset/file/hub and columns")
    unknown = set(s) - SOURCE_KEYS
    if unknown:
        raise _fail(path, f"{where}.{sorted(unknown)[0]}", "unknown key", f"allowed: {', '.join(sorted(SOURCE_KEYS))}")
    kinds = [k for k in ("asset", "file", "hub") if k in s]
    if len(kinds) != 1:
        raise _fail(path, where, "needs exactly one of asset, file or hub", "e.g. file: data/train.csv")
    fmt = s.get("format")
    if kinds[0] != "hub":
        if fmt is None:
            fmt = _guess_format(str(s[kinds[0]]))
        if fmt not in FILE_FORMATS:
            raise _fail(path, f"{where}.format", f"unknown or missing format {fmt!r}",
                        f"set format to one of: {', '.join(sorted(FILE_FORMATS))}")
    if kinds[0] == "hub":
        hub = s["hub"]
        if isinstance(hub, str):
            hub = {"path": hub}
        if not isinstance(hub, dict) or "path" not in hub or set(hub) - {"path", "name", "split"}:
            raise _fail(path, f"{where}.hub", "must be a dataset id or {path, name, split}",
                        "e.g. hub: {path: glue, name: sst2, split: train}")
        s = {**s, "hub": hub}
    label_map = s.get("label_map")
    if label_map is not None:
        if not isinstance(label_map, dict):
            raise _fail(path, f"{where}.label_map", "must map raw values to label names", "e.g. {0: negative, 1: positive}")
        bad = [v for v in label_map.values() if v is not None and v not in labels]
        if bad:
            raise _fail(path, f"{where}.label_map", f"maps to {bad[0]!r}, which is not a task label",
                        f"map to one of {labels} (or null to drop the example)")
    binarize = s.get("binarize")
    if binarize is not None:
        if not isinstance(binarize, dict) or set(binarize) - {"threshold", "min_abs"} or len(labels) != 2:
            raise _fail(path, f"{where}.binarize", "must be {threshold, min_abs} on a two-label task",
                        "e.g. binarize: {threshold: 0.0, min_abs: 0.5}")
    if s.get("text_pattern") is not None:
        try:
            if re.compile(s["text_pattern"]).groups != 1:
                raise re.error("needs exactly one group")
        except re.error as exc:
            raise _fail(path, f"{where}.text_pattern", f"bad regular expression ({exc})",
                        "give a regex with one capturing group around the text") from None
    partition = s.get("partition")
    if partition is not None:
        fr = partition.get("fractions") if isinstance(partition, dict) else None
        if not isinstance(fr, dict) or not fr or abs(sum(fr.values()) - 1.0) > 1e-6:
            raise _fail(path, f"{where}.partition", "needs fractions that sum to 1",
                        "e.g. partition: {fractions: {train: 0.8, validation: 0.1, test: 0.1}}")
    return SourceSpec(
        name=name, asset=s.get("asset"), file=s.get("file"), hub=s.get("hub"), format=fmt,
        text_column=s.get("text_column", "text"), label_column=s.get("label_column"),
        label_map=label_map, binarize=binarize, text_pattern=s.get("text_pattern"),
        partition=partition, seed=int(s.get("seed", 0)),
    )


def _parse_set(where: str, s: Any, path: Path | str, sources: dict[str, SourceSpec]) -> SetSpec:
    if isinstance(s, str):
        s = {"source": s}
    if not isinstance(s, dict) or "source" not in s:
        raise _fail(path, where, "must name a source", "e.g. {source: movies, part: train}")
    unknown = set(s) - SET_KEYS
    if unknown:
        raise _fail(path, f"{where}.{sorted(unknown)[0]}", "unknown key", f"allowed: {', '.join(sorted(SET_KEYS))}")
    src = sources.get(s["source"])
    if src is None:
        raise _fail(path, f"{where}.source", f"no source named {s['source']!r}", f"define it under sources (have: {', '.join(sources)})")
    part = s.get("part")
    if part is not None and (src.partition is None or part not in src.partition["fractions"]):
        raise _fail(path, f"{where}.part", f"source {src.name!r} has no part {part!r}", "add it to the source's partition fractions")
    limit = s.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit <= 0):
        raise _fail(path, f"{where}.limit", "must be a positive integer", "e.g. limit: 1000")
    return SetSpec(source=s["source"], part=part, limit=limit)


def _guess_format(name: str) -> str | None:
    for suffix, fmt in ((".tsv", "tsv"), (".csv", "csv"), (".jsonl", "jsonl"), (".json", "json"),
                        (".parquet", "parquet"), (".txt", "lines")):
        if name.endswith(suffix):
            return fmt
    return None


# ---------------------------------------------------------------- building datasets


def _resolve_file(spec: SourceSpec, task_file: Path | None) -> Path:
    from robench.assets import asset_file

    if spec.asset is not None:
        return asset_file(spec.asset)
    path = Path(spec.file)
    if not path.is_absolute() and task_file is not None and not path.exists():
        path = task_file.parent / path
    if not path.is_file():
        raise ConfigError(f"source {spec.name!r}: file {spec.file} not found; fix the path in the task file")
    return path


def _load_raw(spec: SourceSpec, task_file: Path | None):
    import datasets

    datasets.disable_progress_bars()
    if spec.hub is not None:
        return _load_hub(spec)
    path = str(_resolve_file(spec, task_file))
    fmt = spec.format
    if fmt in {"csv", "tsv"}:
        kwargs = {"sep": "\t", "quoting": 3} if fmt == "tsv" else {}
        ds = datasets.load_dataset("csv", data_files=path, split="train", **kwargs)
    elif fmt in {"jsonl", "json"}:
        ds = datasets.load_dataset("json", data_files=path, split="train")
    elif fmt == "parquet":
        ds = datasets.load_dataset("parquet", data_files=path, split="train")
    else:
        ds = datasets.load_dataset("text", data_files=path, split="train")
    return ds


def hub_offline_message(spec: SourceSpec) -> str:
    hub = spec.hub or {}
    ident = hub.get("path", "?") + (f"/{hub['name']}" if hub.get("name") else "")
    return (f"hub dataset {ident} (source {spec.name!r}) cannot be downloaded: the Hugging Face hub is unreachable; "
            "run once with internet to cache it, or point the task's source to a local file (file: ...)")


def _load_hub(spec: SourceSpec):
    import datasets

    from robench.hub import use_cache_only_if_offline

    hub = spec.hub or {}
    offline = use_cache_only_if_offline()
    try:
        return datasets.load_dataset(hub["path"], hub.get("name"), split=hub.get("split", "train"))
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one clear line
        text = f"{type(exc).__name__}: {exc}"
        offline_markers = ("offline", "connection", "resolve", "network", "timed out", "unreachable",
                           "couldn't reach", "Max retries", "Name or service")
        if offline or any(m.lower() in text.lower() for m in offline_markers):
            raise OfflineError(hub_offline_message(spec)) from None
        raise ConfigError(f"hub dataset {hub.get('path')} (source {spec.name!r}) failed to load: "
                          f"{text.splitlines()[0]}; check path/name/split in the task file") from None


def _to_examples(spec: SourceSpec, ds, labels: list[str], with_labels: bool) -> tuple[list[str], list[int]]:
    columns = ds.column_names
    text_col = spec.text_column if spec.format != "lines" else "text"
    if text_col not in columns:
        raise ConfigError(f"source {spec.name!r}: no text column {text_col!r} (columns: {', '.join(columns)}); "
                          "set text_column in the task file")
    texts_raw = ds.data.column(text_col).to_pylist()  # whole columns: row access is slow
    labels_raw = None
    if with_labels:
        if spec.label_column not in columns:
            raise ConfigError(f"source {spec.name!r}: no label column {spec.label_column!r} (columns: "
                              f"{', '.join(columns)}); set label_column in the task file")
        labels_raw = ds.data.column(spec.label_column).to_pylist()
    pattern = re.compile(spec.text_pattern) if spec.text_pattern else None
    texts: list[str] = []
    ys: list[int] = []
    for i, text in enumerate(texts_raw):
        if text is None:
            continue
        text = str(text)
        if pattern is not None:
            m = pattern.match(text)
            if not m:
                continue
            text = m.group(1)
        text = text.strip()
        if not text:
            continue
        y = -1
        if labels_raw is not None:
            y = _map_label(spec, labels_raw[i], labels)
            if y is None:
                continue
        texts.append(text)
        ys.append(y)
    return texts, ys


def _map_label(spec: SourceSpec, raw: Any, labels: list[str]) -> int | None:
    if raw is None:
        return None
    if spec.binarize is not None:
        score = float(raw)
        if abs(score - spec.binarize.get("threshold", 0.0)) < spec.binarize.get("min_abs", 0.0):
            return None
        return int(score >= spec.binarize.get("threshold", 0.0))
    if spec.label_map is not None:
        for key in (raw, str(raw)):
            if key in spec.label_map:
                name = spec.label_map[key]
                return None if name is None else labels.index(name)
        try:
            as_int = int(raw)
        except (TypeError, ValueError):
            as_int = None
        if as_int is not None and as_int in spec.label_map:
            name = spec.label_map[as_int]
            return None if name is None else labels.index(name)
        raise ConfigError(f"source {spec.name!r}: label value {raw!r} is not in label_map; add it (or map it to null)")
    if isinstance(raw, str):
        if raw in labels:
            return labels.index(raw)
        raise ConfigError(f"source {spec.name!r}: label {raw!r} is not one of the task labels {labels}; add a label_map")
    value = int(raw)
    if not 0 <= value < len(labels):
        raise ConfigError(f"source {spec.name!r}: label index {value} is outside the task's {len(labels)} labels; add a label_map")
    return value


def fingerprint(texts: list[str], labels: list[int]) -> str:
    """Hash of the examples actually used (order included): a run's data identity."""
    h = hashlib.sha256()
    for t, y in zip(texts, labels, strict=True):
        h.update(json.dumps([t, int(y)], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


class TaskData:
    """Builds (and memoises) the sets of one task as ``datasets.Dataset`` objects."""

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self._source_cache: dict[tuple[str, bool], tuple[list[str], list[int]]] = {}
        self._set_cache: dict[str, Any] = {}
        self._fingerprints: dict[str, str] = {}

    def _source_examples(self, name: str, with_labels: bool) -> tuple[list[str], list[int]]:
        key = (name, with_labels)
        if key not in self._source_cache:
            src = self.spec.sources[name]
            ds = _load_raw(src, self.spec.path)
            texts, ys = _to_examples(src, ds, self.spec.labels, with_labels)
            order = np.random.RandomState(src.seed).permutation(len(texts))
            self._source_cache[key] = ([texts[i] for i in order], [ys[i] for i in order])
        return self._source_cache[key]

    def get(self, key: str):
        """A set by key: ``train``, ``validation``, ``test``, ``shift:<name>``, ``ood:<name>``..."""
        import datasets

        if key in self._set_cache:
            return self._set_cache[key]
        if key not in self.spec.sets:
            known = ", ".join(self.spec.sets)
            raise ConfigError(f"task {self.spec.name!r} has no set {key!r}; sets: {known}")
        s = self.spec.sets[key]
        src = self.spec.sources[s.source]
        with_labels = not key.startswith("ood:") or src.label_column is not None
        texts, ys = self._source_examples(s.source, with_labels)
        if s.part is not None:
            fractions = src.partition["fractions"]
            n = len(texts)
            start = 0.0
            for part_name, frac in fractions.items():
                if part_name == s.part:
                    lo, hi = round(start * n), round((start + frac) * n)
                    texts, ys = texts[lo:hi], ys[lo:hi]
                    break
                start += frac
        if s.limit is not None:
            texts, ys = texts[: s.limit], ys[: s.limit]
        if not texts:
            raise ConfigError(f"task {self.spec.name!r}: set {key!r} is empty after filtering; check its source and limit")
        ds = datasets.Dataset.from_dict({"text": texts, "label": ys})
        self._fingerprints[key] = fingerprint(texts, ys)
        self._set_cache[key] = ds
        return ds

    def fingerprint(self, key: str) -> str:
        self.get(key)
        return self._fingerprints[key]

    def sizes(self) -> dict[str, int]:
        return {k: len(self.get(k)) for k in self.spec.sets}
