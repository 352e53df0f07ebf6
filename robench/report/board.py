"""The leaderboard as data: result records -> one row per (task, model, method).

Per aspect: ``<key>_mean``, ``_std`` (sample std over seeds), ``_n``, ``_delta`` (the change against
the baseline method as a share of the baseline's room, direction-aware so positive is better, in [-1, 1]:
:func:`~robench.report.stats.bounded_improvement`), ``_p`` (raw two-sided p-value against the baseline:
by default the hierarchical bootstrap over seeds and examples, which needs 3 seeds per side; with
``significance="examples"`` the seeds are held fixed) and ``_p_holm`` (``_p`` after Holm's step-down
correction over every tested cell of the (task, model) table; the tables' ``*`` / ``**`` come from it).
An OOD column also gets each detector's mean AUROC (``<key>_<detector>_mean``) and
``<key>_choice_dependent`` (the sign against the baseline differs across the free choices the column rests
on, the OOD detectors or the ECE's temperature fits: no verdict).
Tested are the aspects whose evaluator declares per-example data (``MetricSpec.per_example``):
accuracies on their 0/1 outcomes (:func:`~robench.report.stats.paired_bootstrap`), ECE and AUROC by
recomputing the metric on every resample (:func:`~robench.report.stats.metric_bootstrap`). A method
is tested on an aspect only where every result of it and of the baseline that enters the means
carries that data and reproduces its headline metric from it; elsewhere ``_p`` is NaN and the cell
is listed in :attr:`Board.untested` (never a test on part of the seeds).
Accuracy aspects also get ``_low`` / ``_high``: the Wilson 95% interval of the
seed-mean accuracy with n = the size of the largest set one seed was scored on (conservative for
several disjoint sets; perturbations are the same examples edited differently). It covers
the sampling of test examples only, not the spread over training seeds (that is ``_std``).
Further: ``seeds``, ``better`` / ``worse`` (columns significantly better / worse than the baseline,
detector-dependent verdicts left out), ``score`` (better - worse), ``rank`` (by score, ties by
``mean_rank``, the mean per-column rank: no degenerate predictor can win it; a row that lacks a column
the baseline has is not ranked, NaN, and listed in :attr:`Board.unranked`), ``avg_improvement`` (the
mean of the deltas; NaN for an unranked row), ``cost_s_per_example`` and ``cost_ratio``. A pure function of result records; so is
:func:`compute_table`, the board's own wall time (training and evaluation minutes).

Every comparison (delta, p-values, Holm, ranks, cost ratio) is made within one (task, model) group:
the baseline of a row is the baseline method on the same task and model, never another model's.

Two guards before anything is aggregated. Threat models: the adversarial results of one (task, model)
table must share one threat-model card (``settings.threat_model.card_id``; a result without one
is card "none"), else a ConfigError names the differing fields; two models' tables of one task may
carry different cards (the card records e.g. the attack encoder's precision, which follows the device).
Transfer sources: a run whose weights generated a static transfer set
(``settings.transfer_sources[*].weights_fingerprint`` of any adversarial result) is left off the board
with all its results, and listed in :attr:`Board.excluded`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robench.errors import ConfigError
from robench.records import flatten, is_number
from robench.report.aspects import Column, resolve_aspects
from robench.report.stats import (
    MIN_SEEDS,
    N_BOOT,
    SIGNIFICANCE,
    bounded_improvement,
    example_metric,
    hierarchical_bootstrap,
    holm,
    metric_bootstrap,
    outcome_sets,
    paired_bootstrap,
    parse_examples,
    wilson_interval,
)
from robench.results import ResultRecord, load_results
from robench.runspec import tuned_label

BASELINE_METHOD = "vanilla"
ADVERSARIAL = "adversarial"
NO_CARD = "none"


@dataclass
class Board:
    """The leaderboard: its DataFrame, the columns it was built for, and what it came from."""

    frame: pd.DataFrame
    aspects: list[Column]
    records: list[ResultRecord]
    baseline: str = BASELINE_METHOD
    n_boot: int = N_BOOT
    source: str = ""
    # runs left off the board: (task, model, method, seed, reason), and their result records
    excluded: list[tuple[str, str, str, Any, str]] = field(default_factory=list)
    excluded_records: list[ResultRecord] = field(default_factory=list)
    boot_seed: int = 0  # the paired bootstrap's random seed
    # (task, model, method, aspect key) of the cells that should carry a p-value but do not: the method's
    # or the baseline's results lack usable per-example data (shown with a dagger)
    untested: set[tuple[str, str, str, str]] = field(default_factory=set)
    significance: str = "hierarchical"  # hierarchical (seeds and examples resampled) or examples (--significance)
    # (task, model, method) rows with no verdicts: fewer than 3 seeds on their side or the baseline's, in any
    # tested column (then none of the row's columns is tested, so the legend's "no verdict" holds for the row)
    few_seeds: set[tuple[str, str, str]] = field(default_factory=set)
    # (task, model, method) -> the column labels the baseline has and the row lacks: the row is not ranked and
    # has no Δ (a row scored only on the columns it would win must not rank first)
    unranked: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)

    def row(self, method: str, task: str | None = None, model: str | None = None) -> pd.Series:
        sub = self.frame[self.frame["method"] == method]
        if task is not None:
            sub = sub[sub["task"] == task]
        if model is not None:
            sub = sub[sub["model"] == model]
        return sub.iloc[0]


def transfer_exclusions(records: Sequence[ResultRecord]
                        ) -> tuple[list[ResultRecord], list[ResultRecord], list[tuple[str, str, str, Any, str]]]:
    """Split off the runs whose weights generated a static transfer set of some adversarial result:
    (kept records, excluded records, [(task, model, method, seed, reason)], one entry per run)."""
    sources: dict[str, list[str]] = {}
    for rec in records:
        if rec.evaluator != ADVERSARIAL:
            continue
        declared = rec.settings.get("transfer_sources")
        for name, source in (declared.items() if isinstance(declared, dict) else ()):
            from robench.evaluators.adversarial import source_fingerprints

            for fingerprint in source_fingerprints(source):
                if str(name) not in sources.setdefault(fingerprint, []):
                    sources[fingerprint].append(str(name))
    kept, dropped, excluded = [], [], {}
    for rec in records:
        if rec.weights is None or rec.weights not in sources:
            kept.append(rec)
            continue
        dropped.append(rec)
        sets = ", ".join(repr(n) for n in sorted(sources[rec.weights]))
        excluded.setdefault((rec.task, rec.model, rec.method, str(rec.seed)),
                            (rec.task, rec.model, rec.method, rec.seed,
                             f"its weights generated the transfer set {sets}"))
    return kept, dropped, list(excluded.values())


def threat_card(rec: ResultRecord) -> tuple[str, dict[str, Any]]:
    """(card id, card) of an adversarial result; ``("none", {})`` where the file carries none."""
    card = rec.settings.get("threat_model")
    if not isinstance(card, dict):
        return NO_CARD, {}
    card_id = card.get("card_id")
    if not card_id:  # a card without its id: identify it by its content
        card_id = json.dumps(card, sort_keys=True, default=str)
    return str(card_id), card


def _short(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def card_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The fields in which two threat-model cards differ, as ``field: a vs b``."""
    if not a or not b:
        return ["threat model card: " + " vs ".join(
            _short(c.get("card_id", "(no id)")) if c else f"{NO_CARD} (result written before threat-model cards)"
            for c in (a, b))]
    fa = flatten({k: v for k, v in a.items() if k != "card_id"}, keep_empty=True)
    fb = flatten({k: v for k, v in b.items() if k != "card_id"}, keep_empty=True)
    diffs = [f"{k}: {_short(fa.get(k, '(unset)'))} vs {_short(fb.get(k, '(unset)'))}"
             for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]
    return diffs or [f"card_id: {_short(a.get('card_id'))} vs {_short(b.get('card_id'))}"]


def check_threat_models(records: Sequence[ResultRecord]) -> None:
    """ConfigError when the adversarial results of one (task, model) table carry different threat-model cards
    (attack accuracies under two threat models must never share a column). Two models of one task get two
    tables, so their cards may differ."""
    by_table: dict[tuple[str, str], dict[str, tuple[dict[str, Any], ResultRecord]]] = {}
    for rec in records:
        if rec.evaluator == ADVERSARIAL:
            card_id, card = threat_card(rec)
            by_table.setdefault((rec.task, rec.model), {}).setdefault(card_id, (card, rec))
    for (task, model), cards in by_table.items():
        if len(cards) < 2:
            continue
        (card_a, rec_a), (card_b, rec_b) = list(cards.values())[:2]
        runs = " vs ".join(f"{r.model}/{r.method}/seed{r.seed}" for r in (rec_a, rec_b))
        raise ConfigError(
            f"task {task!r}, model {model!r}: the adversarial results use {len(cards)} different threat models "
            f"({runs}: {'; '.join(card_differences(card_a, card_b))}), so their attack accuracies cannot share a "
            "column; re-run 'robench eval --suite adversarial --force' on these runs with one setting, or build the "
            "boards separately (--results)")


REPRODUCE_TOL = 1e-9  # per-example data must give back the headline metric to this tolerance


def example_data(rec: ResultRecord, aspect: Column) -> Any:
    """One result's per-example data for an aspect's test, parsed; None where the result declares none
    or declares it differently (an older evaluator version), its data are missing or malformed, or they
    do not reproduce the result's headline metric (mean over sets of the accuracy, ECE or AUROC)."""
    spec = rec.spec(aspect.metric)
    if spec is None or (spec.per_example, spec.statistic) != (aspect.per_example, aspect.statistic):
        return None
    data = parse_examples(rec.details.get(aspect.per_example), aspect.statistic)
    if not data:
        return None
    if not abs(example_metric(data, aspect.statistic) - rec.metrics.get(aspect.metric, float("nan"))) <= REPRODUCE_TOL:
        return None
    return data


def aspect_results(records: Sequence[ResultRecord], aspect: Column) -> list[ResultRecord]:
    """The results of one board row whose value enters an aspect's mean (one per seed): the one rule
    the board's means and the figures' per-seed points share."""
    return [r for r in records if r.evaluator == aspect.evaluator and aspect.metric in r.metrics]


def seed_values(board: Board, task: str, model: str) -> dict[str, dict[str, list[tuple[str, float]]]]:
    """Each aspect's per-seed values in one (task, model) table: {aspect key: {method: [(seed, value)]}},
    methods in the board's row order, seeds sorted; the ``_mean`` and ``_std`` of a row are the mean and
    sample std of its values here."""
    rows = board.frame[(board.frame["task"] == task) & (board.frame["model"] == model)]
    recs: dict[str, list[ResultRecord]] = {str(m): [] for m in rows["method"]}
    for rec in board.records:
        if rec.task == task and rec.model == model and rec.method in recs:
            recs[rec.method].append(rec)
    out: dict[str, dict[str, list[tuple[str, float]]]] = {}
    for aspect in board.aspects:
        out[aspect.key] = {method: sorted(((str(r.seed), float(r.metrics[aspect.metric]))
                                           for r in aspect_results(mine, aspect)), key=lambda sv: (len(sv[0]), sv[0]))
                           for method, mine in recs.items()}
    return out


def leaderboard(records: Sequence[ResultRecord], aspects: str | Sequence[str] | None = None, *,
                baseline: str = BASELINE_METHOD, n_boot: int = N_BOOT, seed: int = 0,
                significance: str | None = "hierarchical") -> Board:
    significance = significance or "hierarchical"
    if significance not in SIGNIFICANCE:
        raise ConfigError(f"unknown --significance {significance!r}; choose from: {', '.join(SIGNIFICANCE)}")
    records, dropped, excluded = transfer_exclusions(records)
    check_threat_models(records)
    chosen = resolve_aspects(aspects, records)
    groups: dict[tuple[str, str, str], list[ResultRecord]] = {}
    for rec in records:
        groups.setdefault((rec.task, rec.model, rec.method), []).append(rec)
    rows = []
    # per (group, aspect): each seed's per-example data, or None when some result entering the mean lacks it
    samples: dict[tuple[tuple[str, str, str], str], list[Any] | None] = {}
    for key, recs in groups.items():
        row: dict[str, Any] = {"task": key[0], "model": key[1], "method": key[2],
                               "seeds": len({str(r.seed) for r in recs})}
        for aspect in chosen:
            used = aspect_results(recs, aspect)
            values = [r.metrics[aspect.metric] for r in used]
            mean = float(np.mean(values)) if values else float("nan")
            row[f"{aspect.key}_mean"] = mean
            row[f"{aspect.key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
            row[f"{aspect.key}_n"] = len(values)
            if aspect.bootstrap:
                data = [example_data(r, aspect) for r in used]
                samples[(key, aspect.key)] = data if data and all(d is not None for d in data) else None
            if aspect.accuracy_like:
                sets = [o for r in used if (o := outcome_sets(r.details.get(aspect.per_example)))]
                # n = the largest set one seed was scored on: sets may be the same examples edited differently
                # (perturb), so summing them would overstate n; for disjoint sets (shift) this is conservative
                per_seed = float(np.mean([max(len(v) for v in o.values()) for o in sets])) if sets else 0.0
                row[f"{aspect.key}_low"], row[f"{aspect.key}_high"] = wilson_interval(mean * per_seed, per_seed)
        for aspect in chosen:  # what a column rests on: each OOD detector's AUROC, each set's ECE
            for det, values in detector_values(aspect_results(recs, aspect), aspect).items():
                row[f"{aspect.key}_{det}_mean"] = float(np.mean(values))
            for fit, values in fit_values(aspect_results(recs, aspect), aspect).items():
                row[f"{aspect.key}_{fit}_mean"] = float(np.mean(values))
            for name, values in set_values(aspect_results(recs, aspect), aspect).items():
                row[f"{aspect.key}_set_{name}_mean"] = float(np.mean(values))
        row["tuned"] = row_tuned(key, recs)
        costs = {str(r.seed): r.cost for r in recs if r.cost is not None}
        row["cost_s_per_example"] = float(np.mean(list(costs.values()))) if costs else float("nan")
        rows.append(row)
    columns = ["task", "model", "method", "seeds"]
    for aspect in chosen:
        interval = ("low", "high") if aspect.accuracy_like else ()
        columns += [f"{aspect.key}_{s}" for s in ("mean", "std", "n", *interval, "delta", "p", "p_holm")]
    columns += ["better", "worse", "score", "rank", "mean_rank", "avg_improvement", "cost_s_per_example", "cost_ratio"]
    for aspect in chosen:
        columns += sorted({c for r in rows for c in r if c.startswith(f"{aspect.key}_set_")})
        have = {c[len(aspect.key) + 1:-5] for r in rows for c in r if c.startswith(f"{aspect.key}_") and c.endswith("_mean")}
        found = [d for d in CHOICES if d in have]  # the headline detector (MSP) first
        columns += [f"{aspect.key}_{d}_mean" for d in found] + ([f"{aspect.key}_choice_dependent"] if found else [])
    columns += ["tuned"] if any(r["tuned"] for r in rows) else []  # robench run --tuned: the setting used
    frame = pd.DataFrame(rows)
    untested: set[tuple[str, str, str, str]] = set()
    few_seeds: set[tuple[str, str, str]] = set()
    unranked: dict[tuple[str, str, str], list[str]] = {}
    extras = {"excluded": excluded, "excluded_records": dropped, "boot_seed": seed, "untested": untested,
              "significance": significance, "few_seeds": few_seeds, "unranked": unranked}
    if frame.empty:
        return Board(pd.DataFrame(columns=columns), chosen, list(records), baseline, n_boot, **extras)

    for aspect in chosen:
        frame[f"{aspect.key}_p_holm"] = float("nan")
    for (task, model), idx in frame.groupby(["task", "model"]).groups.items():
        sub = frame.loc[idx]
        base_rows = sub[sub["method"] == baseline]
        base = base_rows.iloc[0] if len(base_rows) else None
        if significance != "examples" and base is not None:
            # a row short of seeds in any tested column gets no test at all: its verdicts are "none" as a whole
            for i in idx:
                method = frame.at[i, "method"]
                for aspect in chosen:
                    mine = samples.get(((task, model, method), aspect.key))
                    theirs = samples.get(((task, model, baseline), aspect.key))
                    if (aspect.bootstrap and method != baseline and mine is not None and theirs is not None
                            and min(len(mine), len(theirs)) < MIN_SEEDS):
                        few_seeds.add((task, model, method))
        for aspect in chosen:
            deltas, pvals = [], []
            for i in idx:
                if base is None:
                    deltas.append(float("nan"))
                    pvals.append(float("nan"))
                    continue
                deltas.append(bounded_improvement(frame.at[i, f"{aspect.key}_mean"],
                                                  base[f"{aspect.key}_mean"], aspect.higher_is_better))
                p = float("nan")
                method = frame.at[i, "method"]
                if aspect.bootstrap and method != baseline:
                    mine = samples.get(((task, model, method), aspect.key))
                    theirs = samples.get(((task, model, baseline), aspect.key))
                    if mine is not None and theirs is not None:
                        if significance == "examples":
                            test = paired_bootstrap if aspect.statistic is None else metric_bootstrap
                            p = test(mine, theirs, n_boot, seed)
                        elif (task, model, method) in few_seeds:
                            pass  # no verdict: the seeds' spread is unknown (in this column or another of the row)
                        else:
                            p = hierarchical_bootstrap(*(example_units(d, aspect.statistic) for d in (mine, theirs)), n_boot,
                                                       seed)
                    if not np.isfinite(p) and (task, model, method) not in few_seeds and np.isfinite(
                            frame.at[i, f"{aspect.key}_mean"]) and np.isfinite(base[f"{aspect.key}_mean"]):
                        untested.add((task, model, method, aspect.key))
                pvals.append(p)
            frame.loc[idx, f"{aspect.key}_delta"] = deltas
            frame.loc[idx, f"{aspect.key}_p"] = pvals
        # Holm over every tested cell of the (task, model) table: one family for all its verdicts
        p_cols = [f"{a.key}_p" for a in chosen]
        if p_cols:
            block = frame.loc[idx, p_cols].to_numpy(dtype=float)
            frame.loc[idx, [f"{c}_holm" for c in p_cols]] = holm(block.ravel()).reshape(block.shape)
        delta_cols = [f"{a.key}_delta" for a in chosen]
        if delta_cols:
            frame.loc[idx, "avg_improvement"] = frame.loc[idx, delta_cols].mean(axis=1, skipna=True).round(12) + 0.0
            per_aspect = pd.DataFrame({a.key: frame.loc[idx, f"{a.key}_mean"].rank(ascending=not a.higher_is_better,
                                                                                    method="min") for a in chosen})
            frame.loc[idx, "mean_rank"] = per_aspect.mean(axis=1, skipna=True)
            for aspect in chosen:  # a verdict that depends on the detector or the temperature fit is neither
                dets = [c for c in frame.columns if c.startswith(f"{aspect.key}_") and c.endswith("_mean")
                        and c != f"{aspect.key}_mean" and c[len(aspect.key) + 1:-5] in CHOICES]
                if dets and base is not None:
                    signs = np.sign(frame.loc[idx, dets].to_numpy(dtype=float) - base[dets].to_numpy(dtype=float))
                    frame.loc[idx, f"{aspect.key}_choice_dependent"] = [
                        bool((r > 0).any() and (r < 0).any()) for r in signs]
            wins, losses = _verdicts(frame.loc[idx], chosen)
            frame.loc[idx, "better"], frame.loc[idx, "worse"] = wins, losses
            frame.loc[idx, "score"] = wins - losses
            # a row without a column the baseline has is not ranked: scored only where it was evaluated, it could
            # win by missing the columns it would lose (a constant predictor evaluated on attacks alone)
            ranked = []
            for j in idx:
                lacks = [a.label for a in chosen if base is not None and f"{a.key}_mean" in frame.columns
                         and is_number(base[f"{a.key}_mean"], finite=True)
                         and not is_number(frame.at[j, f"{a.key}_mean"], finite=True)]
                if lacks:
                    unranked[(task, model, frame.at[j, "method"])] = lacks
                    frame.at[j, "avg_improvement"] = float("nan")
                else:
                    ranked.append(j)
            # rank: significant wins minus losses against the baseline, ties by the mean per-aspect rank
            def tie(j):  # a row with no value in any column (no mean rank) goes after every row that has one
                value = frame.at[j, "mean_rank"]
                return value if is_number(value, finite=True) else float("inf")

            order = sorted(ranked, key=lambda j: (-frame.at[j, "score"], tie(j)))
            keys = [(frame.at[j, "score"], tie(j)) for j in order]
            frame.loc[order, "rank"] = [keys.index(k) + 1 for k in keys]
        base_cost = base["cost_s_per_example"] if base is not None else float("nan")
        frame.loc[idx, "cost_ratio"] = (frame.loc[idx, "cost_s_per_example"] / base_cost
                                        if base_cost and np.isfinite(base_cost) else float("nan"))
    frame = frame.reindex(columns=columns)
    order = frame["method"].map(lambda m: (0 if m == baseline else 1, m))
    frame = frame.assign(_o=order).sort_values(["task", "model", "_o"]).drop(columns="_o").reset_index(drop=True)
    return Board(frame, chosen, list(records), baseline, n_boot, **extras)


SIGNIFICANT = 0.05  # a verdict: Holm-adjusted p below this (the tables' "*")


def verdict(row: pd.Series, column: Column) -> str | None:
    """One cell's verdict against the baseline: ``better`` / ``worse`` (Holm-adjusted p < 0.05 and the
    sign of the delta), ``choice-dependent`` (significant, but the sign flips across the OOD detectors or
    the ECE's temperature fits: no verdict), or None."""
    p = row.get(f"{column.key}_p_holm")
    if not (is_number(p) and p < SIGNIFICANT):
        return None
    if flagged(row.get(f"{column.key}_choice_dependent")):
        return "choice-dependent"
    delta = row.get(f"{column.key}_delta")
    return "better" if delta > 0 else "worse" if delta < 0 else None


def _verdicts(rows: pd.DataFrame, chosen: Sequence[Column]) -> tuple[np.ndarray, np.ndarray]:
    """Per row: how many columns are significantly better, and how many worse, than the baseline."""
    cells = [[verdict(row, a) for a in chosen] for _, row in rows.iterrows()]
    return (np.array([c.count("better") for c in cells], dtype=int),
            np.array([c.count("worse") for c in cells], dtype=int))


DETECTORS = ("msp", "max_logit", "energy", "mahalanobis")  # the anomaly evaluator's scores
FITS = ("fit_grid", "fit_continuous")  # the calibration evaluator's temperature fits (metrics fits.<fit>.ece)
CHOICES = DETECTORS + FITS  # the free choices a column's verdict must not hinge on


def flagged(value: Any) -> bool:
    """A True in a flag column of the frame (numpy or Python bool; NaN or missing is False)."""
    return isinstance(value, bool | np.bool_) and bool(value)


def set_values(records: Sequence[ResultRecord], aspect: Column) -> dict[str, list[float]]:
    """For an ECE column: each scored set's ECE per seed (``sets.<set>.ece``) and the in-distribution test
    set's (``id.ece``, not part of the paper's average), where every seed has it."""
    if aspect.statistic != "ece":
        return {}
    names = sorted({k[len("sets."):-len(".ece")] for r in records for k in r.metrics
                    if k.startswith("sets.") and k.endswith(".ece")})
    out: dict[str, list[float]] = {}
    for name, metric in [("id", "id.ece"), *((n, f"sets.{n}.ece") for n in names)]:
        values = [r.metrics.get(metric) for r in records]
        if values and all(v is not None for v in values):
            out[name.replace(":", "-")] = values
    return out


def fit_values(records: Sequence[ResultRecord], aspect: Column) -> dict[str, list[float]]:
    """For an ECE column: its value under each temperature fit per seed (``fits.<fit>.ece``, same sets and
    averaging), keyed ``fit_grid`` / ``fit_continuous``; empty where some seed lacks it (results before
    calibration version 3)."""
    if aspect.statistic != "ece":
        return {}
    prefix = aspect.metric.rpartition(".")[0]
    out: dict[str, list[float]] = {}
    for fit in FITS:
        metric = ".".join(p for p in (prefix, "fits", fit.removeprefix("fit_"), "ece") if p)
        values = [r.metrics.get(metric) for r in records]
        if values and all(v is not None for v in values):
            out[fit] = values
    return out


def detector_values(records: Sequence[ResultRecord], aspect: Column) -> dict[str, list[float]]:
    """For an OOD column (the anomaly evaluator's AUROC): each detector's AUROC per seed, from the results'
    ``scores.<detector>.mean.auroc`` (empty for any other column, or where some seed lacks the detector)."""
    if aspect.statistic != "auroc":
        return {}
    prefix = aspect.metric.rpartition(".")[0]
    out: dict[str, list[float]] = {}
    for det in DETECTORS:  # the anomaly evaluator writes scores.<det>.mean.auroc (the mean over OOD sets)
        names = [".".join(p for p in (prefix, "scores", det, *mid, "auroc") if p) for mid in (("mean",), ())]
        values = [next((r.metrics[n] for n in names if n in r.metrics), None) for r in records]
        if values and all(v is not None for v in values):
            out[det] = values
    return out


def example_units(data: list[Any], statistic: str | None) -> list[Any]:
    """Per-seed example data in the form the hierarchical bootstrap reads (accuracies as one unit per set)."""
    if statistic is not None:
        return data
    return [{"statistic": "accuracy", "bins": None, "units": {("set", k): (v,) for k, v in d.items()}} for d in data]


def row_tuned(key: tuple[str, str, str], recs: Sequence[ResultRecord]) -> str | None:
    """The tuned setting (``robench run --tuned``) every run of a board row trained with, or None; a
    ConfigError naming the runs where they differ (tuned and untuned, or tuned differently)."""
    runs = {(str(r.run_dir), tuned_label(r.tuned)) for r in recs}
    if len({label for _, label in runs}) < 2:
        return next(iter(runs))[1] if runs else None
    shown = "; ".join(f"{run}: {label or 'untuned'}" for run, label in sorted(runs, key=str)[:4])
    raise ConfigError(f"{' / '.join(key)}: the runs of one row trained with different tuned settings ({shown}); "
                      "train every seed with the same --tuned file (or none), or build the boards separately (--results)")


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


COMPUTE_COLUMNS = ["task", "model", "stage", "evaluator", "runs", "results", "minutes", "lacking"]


def compute_table(records: Sequence[ResultRecord]) -> pd.DataFrame:
    """What a board cost, from its result records alone: per (task, model) one ``training`` row (the sum
    over runs of ``run.train_wall_seconds``, each run -- task, model, method, seed -- counted once however
    many result files it has), one ``evaluation`` row per evaluator (the sum of the results' ``wall_time_s``)
    and one ``evaluation`` row ``all`` (every evaluator). ``minutes`` is NaN where ``lacking`` (runs,
    resp. results, without the time) is not 0: never a sum over part of them."""
    rows: list[dict[str, Any]] = []
    tables: dict[tuple[str, str], list[ResultRecord]] = {}
    for rec in records:
        tables.setdefault((rec.task, rec.model), []).append(rec)

    def minutes(seconds: list[float | None]) -> tuple[float, int]:
        lacking = sum(s is None for s in seconds)
        return (float("nan") if lacking else round(sum(seconds) / 60, 6)), lacking  # type: ignore[arg-type]

    for (task, model), recs in sorted(tables.items()):
        runs: dict[tuple[str, str], list[ResultRecord]] = {}
        for rec in recs:
            runs.setdefault((rec.method, str(rec.seed)), []).append(rec)
        # a run's training time: the newest of its result files that carries one (all copy one run.json)
        train = [max(((r.created, r.train_wall) for r in rs if r.train_wall is not None), default=(None, None))[1]
                 for rs in runs.values()]
        mins, lacking = minutes(train)
        rows.append({"task": task, "model": model, "stage": "training", "evaluator": "", "runs": len(runs),
                     "results": len(recs), "minutes": mins, "lacking": lacking})
        for evaluator in [*sorted({r.evaluator for r in recs}), "all"]:
            used = [r for r in recs if evaluator in ("all", r.evaluator)]
            mins, lacking = minutes([r.wall_time for r in used])
            rows.append({"task": task, "model": model, "stage": "evaluation", "evaluator": evaluator,
                         "runs": len({(r.method, str(r.seed)) for r in used}), "results": len(used),
                         "minutes": mins, "lacking": lacking})
    return pd.DataFrame(rows, columns=COMPUTE_COLUMNS)


def _number(value: Any) -> bool:
    return is_number(value, finite=True)


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


MODELS_GROUP = "models"  # the model column of a board whose rows are models (by_model)


def by_model(records: Iterable[ResultRecord]) -> list[ResultRecord]:
    """The records of a board whose rows are models (RobustBench's model-zoo view): one table per task,
    one row per model (``model/method`` for robench-trained runs, the model's name for a checkpoint
    trained outside robench). The statistics are the method board's, with rows renamed."""
    return [r.relabel(method=r.model if r.method == "external" else f"{r.model}/{r.method}", model=MODELS_GROUP)
            for r in records]


def build_board(results: Iterable[ResultRecord] | Path | str | Iterable[Path | str],
                aspects: str | Sequence[str] | None = None, *, by: str = "method", reference: str | None = None,
                n_boot: int | None = None, significance: str | None = None) -> Board:
    """The board of method rows (``by="method"``, against vanilla or ``reference``) or of model rows
    (``by="model"``, against the ``reference`` model): the one builder the CLI and the API share.
    ``significance`` defaults to ``hierarchical`` for method rows (a method is a population of training
    seeds) and to ``examples`` for model rows (a row is one fixed checkpoint: the question is whether it
    beats the reference on this data)."""
    if significance is None:
        significance = "examples" if by == "model" else "hierarchical"
    items = list(results) if not isinstance(results, str | Path) else [results]
    records = items if items and all(isinstance(r, ResultRecord) for r in items) else load_results(items)
    if not records:
        raise ConfigError(f"no robench result files found under {fmt_roots(results)}; "
                          "evaluate runs first ('robench eval' or 'robench run')")
    if by not in ("method", "model"):
        raise ConfigError(f"unknown board kind {by!r}; rows are 'method' or 'model'")
    if by == "model":
        records = by_model(records)
        rows = sorted({r.method for r in records})
        if reference is None or reference not in rows:
            what = "give the reference row with --reference" if reference is None else f"no row {reference!r}"
            raise ConfigError(f"a board of models needs a reference model for its deltas and significance: {what}; "
                              f"rows: {', '.join(rows)}")
    board = leaderboard(records, aspects, baseline=reference or BASELINE_METHOD,
                        n_boot=N_BOOT if n_boot is None else n_boot, significance=significance)
    board.source = fmt_roots(results) if not (items and isinstance(items[0], ResultRecord)) else "records"
    return board


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
