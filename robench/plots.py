"""Plots as PNG files: reliability diagrams and ROC curves (reusable by reports and the leaderboard).

Uses matplotlib's object API with the Agg canvas directly (no pyplot, no global backend state),
so it works headless and in threads. Every function takes plain numpy arrays / dicts and a path,
writes the PNG atomically (temp file + rename) and returns the path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _save(fig, path: Path | str) -> Path:
    from robench.results import atomic_write

    path = Path(path)
    fig.tight_layout()
    atomic_write(path, lambda fh: fig.savefig(fh, format="png"))
    return path


def reliability_diagram(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path | str, *,
                        bins: int = 10, title: str = "Reliability diagram",
                        panels: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]] | None = None) -> Path:
    """Accuracy vs confidence per equal-width bin, one line per set, plus the diagonal.

    ``curves``: name -> (probs (N, K), labels (N,)). ``panels`` (optional) draws several
    side-by-side panels instead, e.g. ``{"before scaling": {...}, "after scaling": {...}}``.
    Bars at the bottom show the share of examples per bin for the first set of each panel.
    """
    from robench.metrics import ece, reliability_bins

    groups = dict(panels) if panels else {title: curves}
    fig, axes = _figure(5.0 * len(groups), 4.6, ncols=len(groups))
    centers = (np.arange(bins) + 0.5) / bins
    for ax, (panel_title, sets) in zip(axes, groups.items(), strict=True):
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
        first = True
        for name, (probs, labels) in sets.items():
            b = reliability_bins(probs, labels, bins)
            conf = np.array([np.nan if v is None else v for v in b["confidence"]])
            acc = np.array([np.nan if v is None else v for v in b["accuracy"]])
            keep = ~np.isnan(acc)
            ax.plot(conf[keep], acc[keep], marker="o", linewidth=1.5,
                    label=f"{name} (ECE {ece(probs, labels, bins):.3f})")
            if first:
                share = np.asarray(b["count"], dtype=float) / max(1, sum(b["count"]))
                ax.bar(centers, share, width=1.0 / bins, alpha=0.15, color="C0", edgecolor="none")
                first = False
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top label)")
        ax.set_ylabel("accuracy")
        ax.set_title(panel_title)
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
    fig, axes = _figure(4.6 * len(groups), 4.4, ncols=len(groups))
    for ax, (panel_title, sets) in zip(axes, groups.items(), strict=True):
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
        for name, (fpr, tpr) in sets.items():
            key = f"{panel_title}/{name}" if panels else name
            label = f"{name} (AUROC {aurocs[key]:.3f})" if aurocs and key in aurocs else name
            ax.plot(fpr, tpr, linewidth=1.5, label=label)
        ax.axhline(0.95, color="grey", linewidth=0.6, linestyle=":")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false-positive rate (in-distribution flagged)")
        ax.set_ylabel("true-positive rate (OOD detected)")
        ax.set_title(panel_title)
        ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def bar_chart(values: Mapping[str, float], path: Path | str, *, title: str = "", ylabel: str = "",
              errors: Mapping[str, float] | None = None, order: Sequence[str] | None = None) -> Path:
    """A simple labelled bar chart (e.g. accuracy per shift set, or per-method deltas)."""
    names = list(order or values)
    fig, (ax,) = _figure(max(4.0, 0.8 * len(names) + 1.5), 3.8)
    heights = [values[n] for n in names]
    yerr = [errors.get(n, 0.0) for n in names] if errors else None
    ax.bar(range(len(names)), heights, yerr=yerr, color="C0", alpha=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _save(fig, path)
