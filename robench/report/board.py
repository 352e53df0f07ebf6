"""The leaderboard as data: result records -> one row per (task, model, method).

Per aspect: ``<key>_mean``, ``_std`` (sample std over seeds), ``_n``, ``_delta`` (relative
improvement over the baseline method, direction-aware so positive is better) and ``_p`` (paired
bootstrap against the baseline, only for aspects whose evaluator stores per-example outcomes).
Further: ``seeds``, ``avg_improvement`` (the paper's headline: mean of the deltas), ``rank``,
``mean_rank``, ``cost_s_per_example`` and ``cost_ratio``. A pure function of result records.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robench.errors import ConfigError
from robench.report.aspects import Aspect, resolve_aspects
from robench.report.stats import outcome_sets, paired_bootstrap, relative_improvement
from robench.results import ResultRecord, load_results

BASELINE_METHOD = "vanilla"


@dataclass
class Board:
    """The leaderboard: its DataFrame, the columns it was built for, and what it came from."""

    frame: pd.DataFrame
    aspects: list[Aspect]
    records: list[ResultRecord]
    baseline: str = BASELINE_METHOD
    n_boot: int = 1000
    source: str = ""

    def row(self, method: str, task: str | None = None) -> pd.Series:
        sub = self.frame[self.frame["method"] == method]
        if task is not None:
            sub = sub[sub["task"] == task]
        return sub.iloc[0]


def leaderboard(records: Sequence[ResultRecord], aspects: str | Sequence[str] | None = None, *,
                baseline: str = BASELINE_METHOD, n_boot: int = 1000, seed: int = 0) -> Board:
    chosen = resolve_aspects(aspects, records)
    groups: dict[tuple[str, str, str], list[ResultRecord]] = {}
    for rec in records:
        groups.setdefault((rec.task, rec.model, rec.method), []).append(rec)
    rows = []
    outcomes: dict[tuple[tuple[str, str, str], str], list[dict[str, np.ndarray]]] = {}
    for key, recs in groups.items():
        row: dict[str, Any] = {"task": key[0], "model": key[1], "method": key[2],
                               "seeds": len({str(r.seed) for r in recs})}
        for aspect in chosen:
            values = [r.metrics[aspect.metric] for r in recs
                      if r.evaluator == aspect.evaluator and aspect.metric in r.metrics]
            row[f"{aspect.key}_mean"] = float(np.mean(values)) if values else float("nan")
            row[f"{aspect.key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
            row[f"{aspect.key}_n"] = len(values)
            if aspect.bootstrap:
                outcomes[(key, aspect.key)] = [o for r in recs if r.evaluator == aspect.evaluator
                                               and (o := outcome_sets(r.details.get(aspect.per_example)))]
        costs = {str(r.seed): r.cost for r in recs if r.cost is not None}
        row["cost_s_per_example"] = float(np.mean(list(costs.values()))) if costs else float("nan")
        rows.append(row)
    columns = ["task", "model", "method", "seeds"]
    for aspect in chosen:
        columns += [f"{aspect.key}_{s}" for s in ("mean", "std", "n", "delta", "p")]
    columns += ["avg_improvement", "rank", "mean_rank", "cost_s_per_example", "cost_ratio"]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return Board(pd.DataFrame(columns=columns), chosen, list(records), baseline, n_boot)

    for (task, model), idx in frame.groupby(["task", "model"]).groups.items():
        sub = frame.loc[idx]
        base_rows = sub[sub["method"] == baseline]
        base = base_rows.iloc[0] if len(base_rows) else None
        for aspect in chosen:
            deltas, pvals = [], []
            for i in idx:
                if base is None:
                    deltas.append(float("nan"))
                    pvals.append(float("nan"))
                    continue
                deltas.append(relative_improvement(frame.at[i, f"{aspect.key}_mean"],
                                                   base[f"{aspect.key}_mean"], aspect.higher_is_better))
                p = float("nan")
                if aspect.bootstrap and frame.at[i, "method"] != baseline:
                    p = paired_bootstrap(outcomes.get(((task, model, frame.at[i, "method"]), aspect.key), []),
                                         outcomes.get(((task, model, baseline), aspect.key), []), n_boot, seed)
                pvals.append(p)
            frame.loc[idx, f"{aspect.key}_delta"] = deltas
            frame.loc[idx, f"{aspect.key}_p"] = pvals
        delta_cols = [f"{a.key}_delta" for a in chosen]
        if delta_cols:
            frame.loc[idx, "avg_improvement"] = frame.loc[idx, delta_cols].mean(axis=1, skipna=True).round(12) + 0.0
            frame.loc[idx, "rank"] = frame.loc[idx, "avg_improvement"].rank(ascending=False, method="min")
            per_aspect = pd.DataFrame({a.key: frame.loc[idx, f"{a.key}_mean"].rank(ascending=not a.higher_is_better,
                                                                                    method="min") for a in chosen})
            frame.loc[idx, "mean_rank"] = per_aspect.mean(axis=1, skipna=True)
        base_cost = base["cost_s_per_example"] if base is not None else float("nan")
        frame.loc[idx, "cost_ratio"] = (frame.loc[idx, "cost_s_per_example"] / base_cost
                                        if base_cost and np.isfinite(base_cost) else float("nan"))
    frame = frame.reindex(columns=columns)
    order = frame["method"].map(lambda m: (0 if m == baseline else 1, m))
    frame = frame.assign(_o=order).sort_values(["task", "model", "_o"]).drop(columns="_o").reset_index(drop=True)
    return Board(frame, chosen, list(records), baseline, n_boot)


def regulariser_table(board: Board) -> pd.DataFrame:
    """Per (task, model, method): each training-loss term's mean and the regulariser-alive ratio
    (perturbed-pass symKL / dropout-only symKL on the same batches), averaged over epochs and seeds.
    A perturbation method whose ratio is about 1 adds nothing beyond dropout."""
    rows = []
    runs: dict[tuple[str, str, str], dict[str, list[dict[str, Any]]]] = {}
    for rec in board.records:  # every evaluator's result carries the same run block: one per seed
        if rec.diagnostics:
            runs.setdefault((rec.task, rec.model, rec.method), {})[str(rec.seed)] = rec.diagnostics
    for (task, model, method), seeds in sorted(runs.items()):
        epochs = [d for per_seed in seeds.values() for d in per_seed if d]
        if not epochs:
            continue
        keys = sorted({k for d in epochs for k, v in d.items() if _number(v) and k != "sampled_steps"})
        row: dict[str, Any] = {"task": task, "model": model, "method": method, "seeds": len(seeds)}
        row.update({k: float(np.mean([d[k] for d in epochs if _number(d.get(k))])) for k in keys})
        if "sampled_sym_kl" in row and row.get("dropout_sym_kl"):  # the ratio of the two means shown beside it
            row["alive_ratio"] = row["sampled_sym_kl"] / row["dropout_sym_kl"]
        rows.append(row)
    return pd.DataFrame(rows)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def fmt_roots(results: Any) -> str:
    """The result folders, short: a long list of run folders is named by their common parent."""
    import os

    roots = [str(results)] if isinstance(results, str | Path) else [str(r) for r in results]
    if len(roots) <= 3:
        return ", ".join(roots)
    try:
        common = os.path.commonpath(roots)
    except ValueError:  # mixed absolute and relative paths
        common = ""
    return f"{len(roots)} folders" + (f" under {common}" if common else "")


def build_leaderboard(results: Path | str | Iterable[Path | str], aspects: str | Sequence[str] | None = None,
                      **kwargs: Any) -> Board:
    """Load every result under ``results`` and build the board; an error when there is none."""
    records = load_results(results)
    if not records:
        raise ConfigError(f"no robench result files found under {fmt_roots(results)}; "
                          "evaluate runs first ('robench eval' or 'robench run')")
    board = leaderboard(records, aspects, **kwargs)
    board.source = fmt_roots(results)
    return board
