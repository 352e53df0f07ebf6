"""Regression baselines: record every score, later check that nothing got worse beyond a tolerance.

A baseline file (``baselines/NAME.json``) stores, per (task, model, method), every directional
metric of every evaluator (``evaluator.metric`` -> mean over seeds, per-seed values, direction)
plus the tolerances it was recorded with. ``check`` compares current results with it:
a metric regressed when it moved in the bad direction (down for accuracies / AUROC, up for
ECE / FPR95 / drops) by more than its tolerance; a metric in the baseline that the current
results lack counts as a regression too ("missing"), unless ``allow_missing``. Improvements and
new metrics never fail. Informational numbers (counts, temperatures) are not stored.

Directions come from the metric declarations that each result file carries (the evaluator's
``metrics``), and are stored in the baseline; nothing is inferred from a metric's name. A
baseline with nothing to check, or with a non-finite value or a missing direction, is an error.
"""

from __future__ import annotations

import fnmatch
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robench.configs import name_list
from robench.errors import ConfigError
from robench.outputs import guard_file_out, schema_of
from robench.records import BASELINE_SCHEMA, Baseline, load_record, parse, to_json
from robench.results import load_results
from robench.storage import atomic_write_json

DEFAULT_TOLERANCE = 0.01  # absolute, in the metric's own units (0.01 = one accuracy point)


def parse_tolerances(specs: Iterable[str] | str | None, base: dict[str, float] | None = None) -> dict[str, float]:
    """``["0.02", "ece=0.005", "shift.*=0.03"]`` -> {"*": 0.02, "ece": 0.005, "shift.*": 0.03}.

    A bare number is the default for every metric; ``PATTERN=NUMBER`` sets metrics whose
    ``evaluator.metric`` name, or metric name alone, matches PATTERN (exact or a shell glob).
    Comma-separated lists work too.
    """
    out = dict(base or {})
    if isinstance(specs, str):
        specs = [specs]
    for spec in specs or []:
        for part in name_list(str(spec)):
            pattern, _, value = part.rpartition("=")
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"bad --tolerance {part!r}; use a number (0.01) or metric=number "
                                  "(ece=0.005, shift.*=0.02)") from None
            if not math.isfinite(number) or number < 0:  # a NaN or infinite tolerance would let anything pass
                raise ConfigError(f"bad --tolerance {part!r}: tolerances are absolute and must be finite numbers >= 0")
            out[pattern.strip() or "*"] = number
    return out


def tolerance_for(name: str, tolerances: dict[str, float]) -> float:
    """The most specific matching tolerance for ``evaluator.metric``: exact > metric-only > glob > default."""
    metric = name.split(".", 1)[1] if "." in name else name
    for key in (name, metric):
        if key in tolerances:
            return tolerances[key]
    globs = [(len(p), v) for p, v in tolerances.items()
             if p != "*" and (fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(metric, p))]
    if globs:
        return max(globs)[1]
    return tolerances.get("*", DEFAULT_TOLERANCE)


def _key(task: str, model: str, method: str) -> str:
    return f"{task} | {model} | {method}"


def collect_scores(results: Path | str | Iterable[Path | str]) -> dict[str, dict[str, dict[str, Any]]]:
    """{"task | model | method": {"evaluator.metric": {"value", "seeds", "direction"}}} over directional metrics."""
    per: dict[str, dict[str, dict[str, float]]] = {}
    directions: dict[str, str] = {}
    for rec in load_results(results):
        entry = per.setdefault(_key(rec.task, rec.model, rec.method), {})
        for metric, value in rec.metrics.items():
            direction = rec.direction(metric)
            if direction == "none":
                continue
            name = f"{rec.evaluator}.{metric}"
            directions[name] = direction
            entry.setdefault(name, {})[str(rec.seed)] = value  # NaN kept: a seed that scored nothing is no score
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key, metrics in sorted(per.items()):
        for name, seeds in sorted(metrics.items()):
            finite = {s: v for s, v in sorted(seeds.items()) if np.isfinite(v)}
            if finite:  # "seeds": the finite ones; "failed_seeds": those that scored NaN or inf
                out.setdefault(key, {})[name] = {
                    "value": float(np.mean(list(finite.values()))), "seeds": finite, "direction": directions[name],
                    **({"failed_seeds": sorted(s for s in seeds if s not in finite)} if len(finite) < len(seeds) else {})}
    return out


def record_baseline(results: Path | str | Iterable[Path | str], out: Path | str,
                    tolerances: dict[str, float] | None = None) -> dict[str, Any]:
    guard_file_out(Path(out), "baseline", _is_baseline)  # replaces a baseline, never another file
    scores = collect_scores(results)
    if not scores:
        raise ConfigError(f"no robench result files with scores found under {results}; evaluate runs first")
    baseline = {"schema": BASELINE_SCHEMA, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "tolerances": tolerances or {"*": DEFAULT_TOLERANCE}, "scores": scores}
    atomic_write_json(Path(out), to_json(parse(Baseline, baseline)))  # checked by its type
    return baseline


def _is_baseline(path: Path) -> bool:
    return schema_of(path) == BASELINE_SCHEMA


def packaged_baseline(name: str) -> Path | None:
    """A baseline shipped with robench (``baselines/NAME.json``, installed as robench._baselines), by name."""
    from importlib.resources import files

    path = Path(str(files("robench._baselines"))) / f"{name}.json"
    return path if path.is_file() else None


def load_baseline(path: Path | str) -> Baseline:
    """A recorded baseline (:class:`robench.records.Baseline`), by path or packaged name (``ci-minilm``)."""
    path = Path(path)
    if not path.exists() and not path.suffix and len(path.parts) == 1 and packaged_baseline(path.name):
        path = packaged_baseline(path.name)  # a packaged baseline by name, e.g. --baseline ci-minilm
    return load_record(Baseline, path, "baseline", "re-record it with 'robench baseline record'")


@dataclass
class Comparison:
    run: str  # "task | model | method"
    metric: str  # evaluator.metric
    direction: str
    baseline: float
    current: float | None
    tolerance: float
    status: str  # ok, improved, regressed, missing, "missing (allowed)" (--allow-missing: not compared)

    @property
    def delta(self) -> float | None:
        return None if self.current is None else self.current - self.baseline

    @property
    def failed(self) -> bool:
        return self.status in {"regressed", "missing"}

    @property
    def compared(self) -> bool:
        return not self.status.startswith("missing")


def compare(baseline: Baseline, current: dict[str, dict[str, dict[str, Any]]],
            tolerances: dict[str, float] | None = None, allow_missing: bool = False) -> list[Comparison]:
    tol = {**baseline.tolerances, **(tolerances or {})}
    rows = []
    for run, metrics in baseline.scores.items():
        for name, entry in metrics.items():
            direction = entry.direction
            base = float(entry.value)
            cur_entry = current.get(run, {}).get(name)
            t = tolerance_for(name, tol)
            # the baseline's seeds, each of which the results must score (a seed that is absent or scored NaN
            # is missing, not left out of the mean)
            seeds = [str(k) for k in (entry.extra.get("seeds") or {})]
            have = (cur_entry or {}).get("seeds") or {}
            if cur_entry is None or any(k not in have for k in seeds):
                rows.append(Comparison(run, name, direction, base, None, t,
                                       "missing (allowed)" if allow_missing else "missing"))
                continue
            cur = float(np.mean([have[k] for k in seeds])) if seeds else float(cur_entry["value"])
            worse = (base - cur) if direction == "higher" else (cur - base)
            status = "regressed" if worse > t + 1e-12 else "improved" if worse < -1e-12 else "ok"
            rows.append(Comparison(run, name, direction, base, cur, t, status))
    return rows


def check(results: Path | str | Iterable[Path | str], baseline_path: Path | str,
          tolerances: dict[str, float] | None = None, allow_missing: bool = False) -> list[Comparison]:
    baseline = load_baseline(baseline_path)
    return compare(baseline, collect_scores(results), tolerances, allow_missing)


def regression_table(rows: Sequence[Comparison], title: str):
    from rich.table import Table

    table = Table(title=title)
    for col in ("task | model | method", "metric", "dir", "baseline", "current", "Δ", "tolerance", "status"):
        table.add_column(col, justify="right" if col in {"baseline", "current", "Δ", "tolerance"} else "left",
                         no_wrap=col in {"metric", "status"})
    for r in rows:
        table.add_row(r.run, r.metric, "↑" if r.direction == "higher" else "↓", f"{r.baseline:.4f}",
                      "-" if r.current is None else f"{r.current:.4f}",
                      "-" if r.delta is None else f"{r.delta:+.4f}", f"{r.tolerance:g}",
                      f"[red]{r.status}[/red]" if r.failed else r.status)
    return table
