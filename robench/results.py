"""Metric declarations and result files: the schema every reader shares.

An evaluator declares each metric it writes (:class:`MetricSpec`: direction, aspect, headline,
per-example outcomes); :func:`make_result` builds a result file (:class:`robench.records.ResultFile`)
that carries those declarations and the run's block, so it is self-contained: nothing reads a run
folder to interpret it. :func:`load_results` is the one loader that the leaderboard, the paper
tables and the regression gate read.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from robench._version import __version__
from robench.errors import ConfigError
from robench.identity import RESULTS_SUBDIR, method_label, task_label
from robench.records import (
    RESULT_SCHEMA,
    RUN_SCHEMA,
    RecordProblem,
    ResultFile,
    RunRecord,
    flatten,
    is_number,
    parse,
    to_json,
)
from robench.storage import provenance

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
    return [k for k, v in flatten(metrics).items() if is_number(v) and find_spec(specs, k) is None]


# --------------------------------------------------------------------------------------------- result files


def make_result(evaluator: str, run: RunRecord | dict[str, Any], metrics: dict[str, Any], *, details: dict[str, Any] | None = None,
                data: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
                warnings: list[str] | None = None, wall_time_s: float = 0.0,
                artifacts: list[str] | None = None, specs: Sequence[MetricSpec] = (),
                evaluator_version: str | int = 1, eval_limit: int | None = None,
                data_changed: dict[str, Any] | None = None) -> dict[str, Any]:
    """One result file's content (a :class:`~robench.records.ResultFile` as JSON): metrics, their
    declarations, and everything needed to re-aggregate it years later without the run folder. ``run`` is
    the run's record (a mapping is read as run.json's content)."""
    if isinstance(run, dict):
        run = parse(RunRecord, {"schema": RUN_SCHEMA, **run})
    return to_json(parse(ResultFile, {
        "schema": RESULT_SCHEMA, "evaluator": evaluator, "evaluator_version": evaluator_version,
        "metrics": metrics, "metric_specs": [s.to_json() for s in specs], "details": details or {},
        "warnings": warnings or [], "artifacts": artifacts or [], "run": to_json(run.result_run(eval_limit)),
        "data": data or {}, "settings": settings or {}, "wall_time_s": round(wall_time_s, 3),
        "data_changed": data_changed or {}, **provenance()}))


def iter_result_files(root: Path):
    """Every robench result JSON under ``root`` (recursively), skipping temp files and other JSON, as
    (path, parsed file, its metric declarations)."""
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
        if isinstance(data, dict) and isinstance(data.get("run"), dict) and "train_limit" not in data["run"]:
            data["run"]["train_limit"] = data["run"].get("limit")  # written before evaluation limits had their own
        try:
            result = parse(ResultFile, data)
            specs = ([MetricSpec.from_json(to_json(s)) for s in result.metric_specs]
                     if result.metric_specs is not None else _legacy_specs(result.evaluator))
        except (RecordProblem, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: not a valid robench result ({exc}); delete it or recompute it with "
                              "'robench eval --force'") from None
        yield path, result, specs


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


@dataclass
class ResultRecord:
    """One result file as every reader sees it: the parsed :class:`~robench.records.ResultFile`, where it
    sits, and the labels the board groups by (nothing here comes from the run folder)."""

    path: Path
    file: ResultFile
    specs: list[MetricSpec] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # labels a board view renamed (model, method)

    def relabel(self, **names: str) -> ResultRecord:
        """The same result under other row labels (``method=``, ``model=``): a board view's rows."""
        return dataclasses.replace(self, names={**self.names, **names})

    @property
    def evaluator(self) -> str:
        return self.file.evaluator

    @property
    def task(self) -> str:
        """The task label: name plus profile / limit when not the default."""
        run = self.file.run
        return task_label(run.task or "?", run.profile, run.limit, run.train_limit)

    @property
    def model(self) -> str:
        return self.names.get("model") or str(self.file.run.model or "?")

    @property
    def method(self) -> str:
        """The method label, "+selective" appended for selective training."""
        if "method" in self.names:
            return self.names["method"]
        return method_label(str(self.file.run.method or "?"), bool(self.file.run.selective))

    @property
    def seed(self) -> Any:
        return self.file.run.seed

    @property
    def run_id(self) -> str | None:
        return self.file.run.run_id

    @functools.cached_property
    def metrics(self) -> dict[str, float]:
        return self.file.number_metrics()

    @property
    def details(self) -> dict[str, Any]:
        return self.file.details

    @property
    def artifacts(self) -> list[str]:
        return self.file.artifacts

    @property
    def cost(self) -> float | None:
        """Training seconds per example."""
        return _float(self.file.run.train_cost_s_per_example)

    @property
    def created(self) -> str:
        return self.file.created

    @property
    def diagnostics(self) -> list[dict[str, Any]]:
        """Per training epoch: each loss term's mean and the regulariser-alive ratio."""
        return [d for d in self.file.run.training_diagnostics if isinstance(d, dict)]

    @property
    def settings(self) -> dict[str, Any]:
        """The evaluator's settings (threat model card...)."""
        return self.file.settings

    @property
    def weights(self) -> str | None:
        """Which trained weights were evaluated (the run's weights fingerprint)."""
        return self.file.run.weights_fingerprint or None

    @property
    def tuned(self) -> dict[str, Any] | None:
        """The tuned setting the run trained with (robench.tune)."""
        return self.file.run.tuned

    @property
    def wall_time(self) -> float | None:
        """The evaluator's seconds for this result (None: not recorded)."""
        return _float(self.file.wall_time_s)

    @property
    def train_wall(self) -> float | None:
        """The run's training wall time (None: not recorded)."""
        return _float(self.file.run.train_wall_seconds)

    @property
    def data_changed(self) -> dict[str, Any]:
        """Evaluated with --allow-changed-data: what changed."""
        return self.file.data_changed

    @property
    def overlap(self) -> dict[str, Any]:
        """{set: texts shared with train}."""
        return {k: v for k, v in (self.file.run.overlap_with_train or {}).items() if is_number(v)}

    @property
    def run_dir(self) -> Path:
        """Where the result sits (``<run>/results/<evaluator>.json``): only for copying its figures."""
        return self.path.parent.parent

    def spec(self, metric: str) -> MetricSpec | None:
        return find_spec(self.specs, metric)

    def direction(self, metric: str) -> str:
        spec = self.spec(metric)
        return spec.direction if spec else "none"


def _float(value: Any) -> float | None:
    return float(value) if is_number(value) else None


@functools.lru_cache(maxsize=1)
def _legacy_table() -> dict[str, list[dict[str, Any]]]:
    from importlib.resources import files

    return json.loads((files("robench") / "legacy_specs.json").read_text(encoding="utf-8"))["evaluators"]


def _legacy_specs(evaluator: str) -> list[MetricSpec]:
    """Declarations for a schema-1 file (written before results carried them): the evaluators' declarations
    when schema 2 came, frozen in ``legacy_specs.json`` (so this bottom layer never imports the evaluators)."""
    return [MetricSpec.from_json(s) for s in _legacy_table().get(evaluator, [])]


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
        for path, result, specs in iter_result_files(root):
            rec = ResultRecord(path=path.resolve(), file=result, specs=specs)
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
