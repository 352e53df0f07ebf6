"""Every figure robench draws, as PNG files: one module, one rule.

The rule: matplotlib's object API on the Agg canvas (no pyplot, no global backend state, so it works
headless and in threads); one style (:data:`DPI`, font sizes and grid in :func:`_style`); small panels,
at most :data:`MAX_COLS` to a row; every file written atomically (temp file + rename, through
:func:`robench.storage.atomic_write`). Each function takes plain data (numpy arrays, dicts, lists) and a
path, and returns the path. Nothing here knows the leaderboard or an evaluator: they call in.

Per run (the calibration and anomaly evaluators draw these into the run's ``artifacts/``):
:func:`reliability_diagram`, :func:`roc_plot`.

Per leaderboard table (:mod:`robench.report.figures` chooses what to draw and names the files):
:func:`seed_strips` (one small panel per aspect: each seed's value a point, the mean a line),
:func:`reliability_seeds` and :func:`roc_seeds` (one panel per method, its seeds' curves overlaid).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DPI = 120
MAX_COLS = 3  # panels per row
SPREAD = 0.18  # half-width of the horizontal spread of one method's seed points (x units: one per method)


def _figure(n: int, panel_width: float, panel_height: float, max_cols: int = MAX_COLS):
    """A figure of ``n`` panels, at most ``max_cols`` to a row: (figure, [axes])."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(1, n)
    cols = min(n, max_cols)
    rows = -(-n // cols)
    fig = Figure(figsize=(panel_width * cols, panel_height * rows), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(rows, cols, i + 1) for i in range(n)]


def _style(ax, title: str, xlabel: str = "", ylabel: str = "") -> None:
    """The one look of every panel."""
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3, linewidth=0.6)


def _save(fig, path: Path | str, title: str = "") -> Path:
    from robench.storage import atomic_write

    path = Path(path)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=DPI))
    return path


# --------------------------------------------------------------------------------------------- per run


def reliability_diagram(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path | str, *,
                        bins: int = 10, title: str = "Reliability diagram",
                        panels: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]] | None = None) -> Path:
    """Accuracy vs confidence per equal-width bin, one line per set, plus the diagonal.

    ``curves``: name -> (probs (N, K), labels (N,)). ``panels`` (optional) draws several
    panels instead, e.g. ``{"before scaling": {...}, "after scaling": {...}}``.
    Bars at the bottom show the share of examples per bin for the first set of each panel.
    """
    from robench.metrics import ece, reliability_bins

    groups = dict(panels) if panels else {title: curves}
    fig, axes = _figure(len(groups), 5.0, 4.6)
    centers = (np.arange(bins) + 0.5) / bins
    for ax, (panel_title, sets) in zip(axes, groups.items(), strict=True):
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
        first = True
        for name, (probs, labels) in sets.items():
            b = reliability_bins(probs, labels, bins)
            conf, acc = _binned(b)
            keep = ~np.isnan(acc)
            ax.plot(conf[keep], acc[keep], marker="o", linewidth=1.5,
                    label=f"{name} (ECE {ece(probs, labels, bins):.3f})")
            if first:
                share = np.asarray(b["count"], dtype=float) / max(1, sum(b["count"]))
                ax.bar(centers, share, width=1.0 / bins, alpha=0.15, color="C0", edgecolor="none")
                first = False
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        _style(ax, panel_title, "confidence (top label)", "accuracy")
        ax.legend(fontsize=7, loc="upper left")
    return _save(fig, path)


def roc_plot(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path | str, *,
             title: str = "ROC (OOD positive)", aurocs: Mapping[str, float] | None = None,
             panels: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]] | None = None) -> Path:
    """ROC curves: ``curves`` name -> (fpr, tpr). ``panels`` draws one panel per group (e.g. per score).

    ``aurocs`` (name -> value) is shown in the legend when given; in panel mode keys are
    ``"<panel>/<name>"``.
    """
    groups = dict(panels) if panels else {title: curves}
    fig, axes = _figure(len(groups), 4.6, 4.4)
    for ax, (panel_title, sets) in zip(axes, groups.items(), strict=True):
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        for name, (fpr, tpr) in sets.items():
            key = f"{panel_title}/{name}" if panels else name
            label = f"{name} (AUROC {aurocs[key]:.3f})" if aurocs and key in aurocs else name
            ax.plot(fpr, tpr, linewidth=1.5, label=label)
        ax.axhline(0.95, color="grey", linewidth=0.6, linestyle=":")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        _style(ax, panel_title, "false-positive rate (in-distribution flagged)", "true-positive rate (OOD detected)")
        ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def _binned(b: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(mean confidence, accuracy) per bin of a reliability_bins / confidence_bins dict; NaN where empty."""
    conf = np.array([np.nan if v is None else v for v in b["confidence"]], dtype=float)
    acc = np.array([np.nan if v is None else v for v in b["accuracy"]], dtype=float)
    return conf, acc


# --------------------------------------------------------------------------------------------- per board table


@dataclass(frozen=True)
class Strip:
    """One panel of :func:`seed_strips`: its title (an aspect with its direction arrow), each method's
    per-seed values and each method's mean as its table shows it, methods in drawing order."""

    title: str
    values: Mapping[str, Sequence[float]]
    means: Mapping[str, float]


def strips_figure(strips: Sequence[Strip], *, title: str = "", ylabel: str = "percent"):
    """The figure of :func:`seed_strips`, unsaved (tests read its axes): per panel, one scatter
    collection per method holding one point per finite seed value, and one short horizontal line
    (a ``Line2D``) at the method's mean."""
    fig, axes = _figure(len(strips), max(2.8, 0.45 * max((len(s.values) for s in strips), default=1) + 1.0), 2.8)
    for ax, strip in zip(axes, strips, strict=True):
        methods = list(strip.values)
        for i, method in enumerate(methods):
            vals = np.asarray([v for v in strip.values[method] if np.isfinite(v)], dtype=float)
            if vals.size:
                xs = i + (np.linspace(-SPREAD, SPREAD, vals.size) if vals.size > 1 else np.zeros(1))
                ax.scatter(xs, vals, s=16, color=f"C{i % 10}", alpha=0.8, linewidths=0, zorder=3, label=method)
            mean = strip.means.get(method, float("nan"))
            if np.isfinite(mean):
                ax.plot([i - 1.6 * SPREAD, i + 1.6 * SPREAD], [mean, mean], color="black", linewidth=1.6, zorder=2)
        ax.set_xticks(range(len(methods)))
        ax.set_xticklabels(methods, rotation=30, ha="right")
        ax.set_xlim(-0.6, len(methods) - 0.4)
        _style(ax, strip.title, "", ylabel)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def seed_strips(strips: Sequence[Strip], path: Path | str, *, title: str = "", ylabel: str = "percent") -> Path:
    """One small panel per aspect: each seed's value of each method a point, the mean a black line."""
    return _save(strips_figure(strips, title=title, ylabel=ylabel), path)


def reliability_seeds(panels: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]], path: Path | str, *,
                      bins: int = 10, title: str = "") -> Path:
    """One panel per method: a reliability curve per seed, overlaid, and the diagonal.

    ``panels``: panel title -> {curve label (a seed): (top-label confidences (N,), 0/1 correctness (N,))},
    binned as the ECE bins them (:func:`robench.metrics.confidence_bins`)."""
    from robench.metrics import confidence_bins

    fig, axes = _figure(len(panels), 2.9, 2.8)
    for ax, (panel_title, curves) in zip(axes, panels.items(), strict=True):
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        for j, (label, (conf, hits)) in enumerate(curves.items()):
            mean_conf, acc = _binned(confidence_bins(conf, hits, bins))
            keep = ~np.isnan(acc)
            ax.plot(mean_conf[keep], acc[keep], marker="o", markersize=2.5, linewidth=1.1, color=f"C{j % 10}",
                    alpha=0.85, label=label)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        _style(ax, panel_title, "confidence", "accuracy")
        ax.legend(fontsize=6, loc="upper left")
    return _save(fig, path, title)


def roc_seeds(panels: Mapping[str, Mapping[str, Sequence[tuple[np.ndarray, np.ndarray]]]], path: Path | str, *,
              title: str = "") -> Path:
    """One panel per method: per OOD set (one colour) the ROC curve of every seed, overlaid.

    ``panels``: panel title -> {OOD set: [(fpr, tpr), one per seed]}."""
    fig, axes = _figure(len(panels), 2.9, 2.8)
    for ax, (panel_title, sets) in zip(axes, panels.items(), strict=True):
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        for j, (name, curves) in enumerate(sets.items()):
            for k, (fpr, tpr) in enumerate(curves):
                ax.plot(fpr, tpr, linewidth=0.9, color=f"C{j % 10}", alpha=0.7, label=name if k == 0 else None)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        _style(ax, panel_title, "false-positive rate", "true-positive rate")
        ax.legend(fontsize=6, loc="lower right")
    return _save(fig, path, title)
