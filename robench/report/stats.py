"""The statistics of the board: Wilson intervals, paired bootstrap against vanilla, relative improvement."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from robench.metrics import wilson_interval  # noqa: F401  (re-exported: the board's intervals)


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
                     n_boot: int = 1000, seed: int = 0) -> float:
    """Two-sided paired bootstrap p-value of "method and base have equal (mean-over-sets) accuracy".

    ``method`` / ``base``: one {set: 0/1 correctness} per seed. Each example's correctness is
    averaged over the seeds of each side, paired by example index; the statistic is the mean over
    sets of the mean per-example difference, and examples are resampled within each set. Returns
    NaN where the two sides share no set of equal length.
    """
    if not method or not base or n_boot < 1:
        return float("nan")
    sets = sorted(set.intersection(*(set(s) for s in [*method, *base])))
    diffs = []
    for name in sets:
        lengths = {len(s[name]) for s in [*method, *base]}
        if len(lengths) != 1:
            continue
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
    low = (np.sum(stats <= 0) + 1) / (n_boot + 1)
    high = (np.sum(stats >= 0) + 1) / (n_boot + 1)
    return float(min(1.0, 2 * min(low, high)))


def significance_marker(p: float) -> str:
    if p is None or not np.isfinite(p):
        return ""
    return "**" if p < 0.01 else "*" if p < 0.05 else ""


def relative_improvement(value: float, base: float, higher_is_better: bool) -> float:
    """Positive = better than the baseline, as a fraction of the baseline (direction-aware)."""
    if not (np.isfinite(value) and np.isfinite(base)) or base == 0:
        return float("nan")
    delta = (value - base) if higher_is_better else (base - value)
    return float(delta / abs(base))
