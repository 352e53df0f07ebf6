"""The statistics of the board: Wilson intervals, paired bootstrap against vanilla (on per-example
outcomes for accuracies, on the metric itself for ECE and AUROC), Holm's correction, relative improvement.

Two bootstraps. The default, :func:`hierarchical_bootstrap`, treats training seeds as a sample too: each
resample draws seeds with replacement on each side, then one set of example indices per set, shared by
both sides and all their seeds; each drawn seed's metric is computed on those examples and averaged over
the drawn seeds. It needs at least :data:`MIN_SEEDS` seeds per side. The older ones
(:func:`paired_bootstrap`, :func:`metric_bootstrap`: ``--significance examples``) resample examples only,
with the seeds fixed, so a seed's luck counts as the method's effect.

Every test here is two-sided with the same convention: B resampled differences d (method - base) of
the statistic; p = min(1, 2 min((#{d <= 0} + 1) / (B + 1), (#{d >= 0} + 1) / (B + 1))).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from robench import metrics as M
from robench.metrics import N_BOOT, wilson_interval  # noqa: F401  (re-exported: the board's defaults)

ZERO = 1e-12  # resampled metric differences this small are float noise (summation order), counted as 0
MIN_SEEDS = 3  # the hierarchical test resamples seeds: with fewer per side it cannot say how they vary
SIGNIFICANCE = ("hierarchical", "examples")  # --significance: seeds and examples resampled / examples only


def outcome_sets(value: Any) -> dict[str, np.ndarray]:
    """Per-example outcomes as stored in ``details`` (a '0101' string, or {set: string}) -> {set: 0/1 array}."""
    if isinstance(value, str):
        value = {"": value}
    if not isinstance(value, dict):
        return {}
    out = {}
    for name, bits in value.items():
        if isinstance(bits, str) and bits and set(bits) <= {"0", "1"}:
            out[str(name)] = np.frombuffer(bits.encode(), dtype=np.uint8) - ord("0")
    return out


def paired_bootstrap(method: Sequence[dict[str, np.ndarray]], base: Sequence[dict[str, np.ndarray]],
                     n_boot: int = N_BOOT, seed: int = 0) -> float:
    """Two-sided paired bootstrap p-value of "method and base have equal (mean-over-sets) accuracy".

    ``method`` / ``base``: one {set: 0/1 correctness} per seed. Each example's correctness is
    averaged over the seeds of each side, paired by example index; the statistic is the mean over
    sets of the mean per-example difference, and examples are resampled within each set. Returns
    NaN unless every seed of both sides has the same sets with the same lengths: a test on part of the
    sets could point the other way from the cell's delta, which is over all of them.
    """
    if not method or not base or n_boot < 1:
        return float("nan")
    shapes = {tuple(sorted((name, len(bits)) for name, bits in s.items())) for s in [*method, *base]}
    if len(shapes) != 1:
        return float("nan")
    sets = sorted(method[0])
    diffs = []
    for name in sets:
        m = np.mean([s[name] for s in method], axis=0)
        b = np.mean([s[name] for s in base], axis=0)
        diffs.append(m - b)
    if not diffs:
        return float("nan")
    if all(not np.any(d) for d in diffs):
        return 1.0
    rng = np.random.default_rng(seed)
    stats = np.zeros(n_boot)
    for d in diffs:
        n = len(d)
        chunk = max(1, min(n_boot, 2_000_000 // max(n, 1)))
        for start in range(0, n_boot, chunk):
            size = min(chunk, n_boot - start)
            stats[start:start + size] += d[rng.integers(0, n, size=(size, n))].mean(axis=1)
    stats /= len(diffs)
    return two_sided_p(stats)


def two_sided_p(stats: np.ndarray) -> float:
    """The two-sided bootstrap p-value of "no difference" from B resampled differences (see the module)."""
    n_boot = len(stats)
    low = (np.sum(stats <= 0) + 1) / (n_boot + 1)
    high = (np.sum(stats >= 0) + 1) / (n_boot + 1)
    return float(min(1.0, 2 * min(low, high)))


# ----------------------------------------------------------------- metric bootstrap (ECE, AUROC)
#
# Per-example data parsed for the metric bootstrap: {"statistic": "ece" | "auroc", "bins": int | None,
# "units": {unit: arrays}}; a unit is one set resampled on its own: ("set", name) for ECE (arrays:
# confidence, correctness), ("in",) and ("out", name) for AUROC (arrays: scores). Two results pair
# when they have the same statistic, bins, units and unit sizes.


def _floats(value: Any) -> np.ndarray | None:
    if not isinstance(value, list) or not value or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                                            for v in value):
        return None
    out = np.asarray(value, dtype=np.float64)
    return out if np.all(np.isfinite(out)) else None


def _bits(value: Any) -> np.ndarray | None:
    if not isinstance(value, str) or not value or not set(value) <= {"0", "1"}:
        return None
    return (np.frombuffer(value.encode(), dtype=np.uint8) - ord("0")).astype(np.int64)


def ece_examples(value: Any) -> dict[str, Any] | None:
    """``details.examples`` of a calibration result (``{"bins": B, "sets": {set: {"confidence": [...],
    "correct": "0110"}}}``) -> parsed data, or None where it is missing or malformed."""
    if not isinstance(value, dict) or not isinstance(value.get("sets"), dict) or not value["sets"]:
        return None
    bins = value.get("bins")
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
        return None
    units = {}
    for name, block in value["sets"].items():
        if not isinstance(block, dict):
            return None
        conf, hits = _floats(block.get("confidence")), _bits(block.get("correct"))
        if conf is None or hits is None or len(conf) != len(hits) or conf.min() < 0 or conf.max() > 1:
            return None
        units[("set", str(name))] = (conf, hits)
    return {"statistic": "ece", "bins": bins, "units": units}


def auroc_examples(value: Any) -> dict[str, Any] | None:
    """``details.examples`` of an anomaly result (``{"in": [scores], "out": {set: [scores]}}``) -> parsed
    data, or None where it is missing or malformed."""
    if not isinstance(value, dict) or not isinstance(value.get("out"), dict) or not value["out"]:
        return None
    units = {("in",): _floats(value.get("in"))}
    units.update({("out", str(name)): _floats(scores) for name, scores in value["out"].items()})
    if any(v is None for v in units.values()):
        return None
    return {"statistic": "auroc", "bins": None, "units": units}


def parse_examples(value: Any, statistic: str | None) -> Any:
    """Per-example data as a result stores it -> what the tests read: {set: 0/1 array} for accuracies
    (``statistic`` None), parsed ECE / AUROC data otherwise; empty / None where there is none."""
    if statistic is None:
        return outcome_sets(value)
    if statistic == "ece":
        return ece_examples(value)
    if statistic == "auroc":
        return auroc_examples(value)
    raise ValueError(f"unknown per-example statistic {statistic!r}")


def _ece(data: dict[str, Any], weights: dict[tuple, np.ndarray]) -> np.ndarray:
    """Mean over sets of the ECE, per row of the weights (as the calibration evaluator averages)."""
    return np.mean([M.ece_weighted(conf, hits, data["bins"], weights.get(unit))
                    for unit, (conf, hits) in data["units"].items()], axis=0)


def _auroc(data: dict[str, Any], weights: dict[tuple, np.ndarray]) -> np.ndarray:
    """Mean over OOD sets of the AUROC against the in-distribution scores (as the anomaly evaluator averages)."""
    scores_in = data["units"][("in",)]
    return np.mean([M.auroc_weighted(scores_in, scores, weights.get(("in",)), weights.get(unit))
                    for unit, scores in data["units"].items() if unit[0] == "out"], axis=0)


STATISTICS: dict[str, Callable[[dict[str, Any], dict[tuple, np.ndarray]], np.ndarray]] = {"ece": _ece, "auroc": _auroc}


def example_metric(data: Any, statistic: str | None) -> float:
    """The metric recomputed from one result's parsed per-example data (every example once): the mean
    over sets of the accuracy, ECE or AUROC. The board tests a result only where this equals its headline."""
    if statistic is None:
        return float(np.mean([v.mean() for v in data.values()])) if data else float("nan")
    return float(STATISTICS[statistic](data, {})[0])


def _signature(data: dict[str, Any]) -> tuple:
    return data["statistic"], data["bins"], tuple(sorted((unit, len(arrays[0]) if isinstance(arrays, tuple)
                                                          else len(arrays)) for unit, arrays in data["units"].items()))


def metric_bootstrap(method: Sequence[dict[str, Any]], base: Sequence[dict[str, Any]], n_boot: int = N_BOOT,
                     seed: int = 0) -> float:
    """Two-sided paired bootstrap p-value of "method and base have the same (seed-mean) metric", the
    metric (ECE, AUROC) itself recomputed on every resample.

    ``method`` / ``base``: parsed per-example data (:func:`ece_examples`, :func:`auroc_examples`), one per
    seed. Resample b draws one set of example indices per set (each set on its own: the scored sets for
    ECE; the in-distribution set and each OOD set for AUROC), shared by both sides and all their seeds,
    so examples pair by index within each set. On it each seed's metric is computed as its evaluator
    averages it (mean over sets), then averaged over that side's seeds; the statistic is the difference
    of the two sides. NaN where the two sides' results do not all pair (other sets or set sizes)."""
    diffs = resampled_differences(method, base, n_boot, seed, seeds=False)
    return float("nan") if diffs is None else two_sided_p(diffs)


def _accuracy(data: dict[str, Any], weights: dict[tuple, np.ndarray]) -> np.ndarray:
    """Mean over sets of the (example-weighted) accuracy, per row of the weights."""
    out = []
    for unit, (hits,) in data["units"].items():
        w = weights.get(unit)
        out.append(np.atleast_1d(hits.mean()) if w is None else (w @ hits) / w.sum(axis=1))
    return np.mean(out, axis=0)


HIERARCHICAL_STATISTICS = {**STATISTICS, "accuracy": _accuracy}


def resampled_differences(method: Sequence[dict[str, Any]], base: Sequence[dict[str, Any]], n_boot: int = N_BOOT,
                          seed: int = 0, seeds: bool = True) -> np.ndarray | None:
    """B resampled differences (method - base) of the seed-mean metric. Each resample draws, with ``seeds``,
    the seeds of each side with replacement (as many as it has), and one set of example indices per set,
    shared by both sides and all their seeds; each drawn seed's metric (as its evaluator averages it over
    sets) is computed on those examples and averaged over the drawn seeds. ``method`` / ``base``: parsed
    per-example data (accuracies as ``{"statistic": "accuracy", "units": {("set", name): (0/1 array,)}}``,
    :func:`ece_examples`, :func:`auroc_examples`), one per seed. None where the results do not all pair
    (other sets or set sizes)."""
    if not method or not base or n_boot < 1:
        return None
    signatures = {_signature(d) for d in [*method, *base]}
    if len(signatures) != 1:
        return None
    statistic, _bins, units = signatures.pop()
    stat = HIERARCHICAL_STATISTICS[statistic]
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 2_000_000 // max(n for _, n in units)))
    diffs = np.zeros(n_boot)
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        weights = {}
        for unit, n in units:  # sorted: the draws depend only on the sets and their sizes, not on the sides
            idx = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
            weights[unit] = np.bincount(idx.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
        sides = []
        for side in (method, base):
            per_seed = np.stack([stat(d, weights) for d in side])  # (seeds, size)
            if seeds:
                drawn = rng.integers(0, len(side), size=(size, len(side)))
                sides.append(per_seed[drawn, np.arange(size)[:, None]].mean(axis=1))
            else:
                sides.append(per_seed.mean(axis=0))
        diffs[start:start + size] = sides[0] - sides[1]
    diffs[np.abs(diffs) <= ZERO] = 0.0
    return diffs


def hierarchical_bootstrap(method: Sequence[dict[str, Any]], base: Sequence[dict[str, Any]], n_boot: int = N_BOOT,
                           seed: int = 0) -> float:
    """Two-sided p-value of "equal seed-mean metric" with seeds and examples resampled
    (:func:`resampled_differences`); NaN with fewer than :data:`MIN_SEEDS` seeds on a side or unpaired data."""
    if min(len(method), len(base)) < MIN_SEEDS:
        return float("nan")
    diffs = resampled_differences(method, base, n_boot, seed)
    return float("nan") if diffs is None else two_sided_p(diffs)


def difference_interval(method: Sequence[dict[str, Any]], base: Sequence[dict[str, Any]], n_boot: int = N_BOOT,
                        seed: int = 0, seeds: bool = True, level: float = 0.95) -> tuple[float, float]:
    """The percentile interval of the resampled differences (method - base)."""
    diffs = resampled_differences(method, base, n_boot, seed, seeds)
    if diffs is None:
        return float("nan"), float("nan")
    low, high = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values, in the input order. The family is the finite
    p-values (NaN: not tested, stays NaN): sorted ascending p_(1) <= ... <= p_(m), the adjusted
    p_(i) = min(1, max_{j <= i} (m - j + 1) p_(j)), monotone in p and capped at 1."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(np.isfinite(p))
    m = len(tested)
    if m:
        order = tested[np.argsort(p[tested], kind="stable")]
        out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def significance_marker(p: float) -> str:
    """``**`` p < 0.01, ``*`` p < 0.05 (the board passes Holm-adjusted p-values)."""
    if p is None or not np.isfinite(p):
        return ""
    return "**" if p < 0.01 else "*" if p < 0.05 else ""


def relative_improvement(value: float, base: float, higher_is_better: bool) -> float:
    """Positive = better than the baseline, as a fraction of the baseline (direction-aware): the paper's
    relative change, unbounded (a base near 0 makes any change huge); the board uses
    :func:`bounded_improvement`, and the tests show why."""
    if not (np.isfinite(value) and np.isfinite(base)) or base == 0:
        return float("nan")
    delta = (value - base) if higher_is_better else (base - value)
    return float(delta / abs(base))


def bounded_improvement(value: float, base: float, higher_is_better: bool) -> float:
    """The relative change on a scale where no base can make it explode, in [-1, 1], for metrics in [0, 1]
    (direction-aware: positive is better). A gain is the share of the baseline's room to the ideal value
    that the method closes ((m - b) / (1 - b) for a higher-is-better metric); a loss the share of the
    baseline's distance from the worst value that it gives up ((m - b) / b). So 1.9% -> 4.0% attack
    accuracy is +2.1% (of the 98.1 points of room), not +113%."""
    if not (np.isfinite(value) and np.isfinite(base)):
        return float("nan")
    good, bad = (value, base) if higher_is_better else (1.0 - value, 1.0 - base)  # on a higher-is-better scale
    delta = good - bad
    if delta == 0:
        return 0.0
    room = (1.0 - bad) if delta > 0 else bad
    return float(np.clip(delta / room, -1.0, 1.0)) if room > 0 else float(np.sign(delta))
