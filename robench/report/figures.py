"""Leaderboard figures (matplotlib, Agg): aspect bars, a radar, attack bars, gains over vanilla; one set
per (task, model) table, named ``<task>-<model>-<kind>.png``.

Per-run figures (reliability diagrams, ROC curves) are drawn by the evaluators into each run's
``artifacts/*.png``; :func:`collect_artifacts` copies them next to the leaderboard, grouped so
that the same figure of different methods sits side by side, and says so when there are none.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from robench.report.board import BASELINE_METHOD, Board
from robench.report.tables import group_title, table_groups
from robench.results import ResultRecord


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def slug(text: str) -> str:
    """A safe single path part: letters, digits, '.', '+', '-', never starting or ending with '.' or '-'."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(text)).strip("-.") or "x"


def plot_aspect_bars(sub: pd.DataFrame, aspects, path: Path, title: str) -> Path | None:
    """Grouped bars: one group per aspect, one bar per method, error bars = std over seeds."""
    chosen = [a for a in aspects if sub[f"{a.key}_mean"].notna().any()]
    if not chosen:
        return None
    plt = _plt()
    n = len(sub)
    width = 0.8 / max(n, 1)
    x = np.arange(len(chosen))
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(chosen) + 0.3 * n), 4))
    for j, (_, row) in enumerate(sub.iterrows()):
        means = [row[f"{a.key}_mean"] * 100 for a in chosen]
        stds = [np.nan_to_num(row[f"{a.key}_std"] * 100) for a in chosen]
        ax.bar(x + (j - (n - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=str(row["method"]))
    ax.set_xticks(x, [f"{a.label} {a.arrow}" for a in chosen])
    ax.set_ylabel("percent")
    ax.set_title(title)
    ax.legend(fontsize="small", ncols=min(n, 4))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_radar(sub: pd.DataFrame, aspects, path: Path, title: str) -> Path | None:
    """A radar of aspect scores oriented so that outward is better (ECE drawn as 1 - ECE)."""
    chosen = [a for a in aspects if sub[f"{a.key}_mean"].notna().any()]
    if len(chosen) < 3:
        return None
    plt = _plt()
    angles = np.linspace(0, 2 * np.pi, len(chosen), endpoint=False).tolist()
    fig, ax = plt.subplots(figsize=(5.5, 5.5), subplot_kw={"polar": True})
    for _, row in sub.iterrows():
        vals = [row[f"{a.key}_mean"] if a.higher_is_better else 1 - row[f"{a.key}_mean"] for a in chosen]
        vals = [float(np.nan_to_num(v)) for v in vals]
        ax.plot(angles + angles[:1], vals + vals[:1], label=str(row["method"]))
        ax.fill(angles + angles[:1], vals + vals[:1], alpha=0.08)
    ax.set_xticks(angles, [a.label if a.higher_is_better else f"1 - {a.label}" for a in chosen])
    ax.set_ylim(0, 1)
    ax.set_rlabel_position(90 + 180 / len(chosen))
    ax.set_title(title, pad=18)
    ax.legend(fontsize="small", loc="upper right", bbox_to_anchor=(1.35, 1.1))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_attack_bars(sub: pd.DataFrame, path: Path, title: str) -> Path | None:
    """Accuracy under attack (and transfer accuracy where measured) per method."""
    cols = [(k, lbl) for k, lbl in (("attack", "under attack"), ("transfer", "transfer"))
            if f"{k}_mean" in sub.columns and sub[f"{k}_mean"].notna().any()]
    if not cols:
        return None
    plt = _plt()
    labels = [str(m) for m in sub["method"]]
    x = np.arange(len(sub))
    width = 0.8 / len(cols)
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(sub) + 2), 3.8))
    for j, (key, lbl) in enumerate(cols):
        ax.bar(x + (j - (len(cols) - 1) / 2) * width, sub[f"{key}_mean"] * 100, width,
               yerr=np.nan_to_num(sub[f"{key}_std"] * 100), capsize=2, label=f"accuracy {lbl}")
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylabel("accuracy (%) ↑")
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_improvement(sub: pd.DataFrame, path: Path, title: str, baseline: str = BASELINE_METHOD) -> Path | None:
    """Average relative improvement over vanilla per method (the paper's headline)."""
    rows = sub[(sub["method"] != baseline) & sub["avg_improvement"].notna()]
    if rows.empty:
        return None
    plt = _plt()
    vals = rows["avg_improvement"].to_numpy() * 100
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(rows) + 2), 3.5))
    ax.bar([str(m) for m in rows["method"]], vals,
           color=["tab:green" if v >= 0 else "tab:red" for v in vals])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("mean relative improvement over vanilla (%)")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


FIGURE_KINDS = ("aspects", "radar", "attack", "gain")


def plot_leaderboard(board: Board, out_dir: Path) -> dict[tuple[str, str], list[Path]]:
    """Every leaderboard figure, per (task, model): {(task, model): [png paths]}. A figure that no longer
    applies to a table is removed, and so are the per-task figures of earlier versions (``<task>-<kind>.png``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = board.aspects
    tables = table_groups(board.frame)
    stems = {key: f"{slug(key[0])}-{slug(key[1])}" for key, _ in tables}
    current = {f"{stem}-{kind}.png" for stem in stems.values() for kind in FIGURE_KINDS}
    for name in {f"{slug(task)}-{kind}.png" for (task, _), _ in tables for kind in FIGURE_KINDS} | current:
        (out_dir / name).unlink(missing_ok=True)  # what this board draws again, or an earlier version's per-task name
    figures: dict[tuple[str, str], list[Path]] = {}
    for key, sub in tables:
        title, path = group_title(*key), {kind: out_dir / f"{stems[key]}-{kind}.png" for kind in FIGURE_KINDS}
        made = [
            plot_aspect_bars(sub, chosen, path["aspects"], f"{title}: aspects per method"),
            plot_radar(sub, chosen, path["radar"], f"{title}: outward is better"),
            plot_attack_bars(sub, path["attack"], f"{title}: adversarial accuracy"),
            plot_improvement(sub, path["gain"], f"{title}: improvement over {board.baseline}", board.baseline),
        ]
        figures[key] = [p for p in made if p is not None]
    return figures


def collect_artifacts(records: list[ResultRecord], dest: Path
                      ) -> tuple[dict[tuple[str, str], list[tuple[str, list[Path]]]], list[str]]:
    """Copy every run's ``artifacts/*.png`` under ``dest``; group the same figure across methods.

    Returns ({(task, model): [(label, [copied pngs])]}, notes). A note says when no run has figures.
    Figures are found beside the result file (its ``artifacts`` list is relative to the run
    folder that holds ``results/``); results copied elsewhere simply come without figures.
    """
    dest = Path(dest)
    runs: dict[Path, ResultRecord] = {}
    pngs: dict[Path, set[Path]] = {}
    for rec in records:
        run_dir = rec.run_dir.resolve()
        if rec.path.parent.name != "results" or not (run_dir / "run.json").is_file():
            continue  # a result copied away from its run: no figures beside it
        runs.setdefault(run_dir, rec)
        found = pngs.setdefault(run_dir, set())
        candidates = [*(run_dir / "artifacts").glob("*.png"),
                      *(run_dir / a for a in rec.artifacts if str(a).endswith(".png"))]
        # only figures inside the run's own folder (links followed): ../../etc/x.png copies nothing
        found.update(p for c in candidates if (p := c.resolve()).is_relative_to(run_dir) and p.is_file())
    groups: dict[tuple[str, str], dict[tuple[str, str, str], list[Path]]] = {}
    for run_dir, rec in sorted(runs.items(), key=lambda kv: (kv[1].task, kv[1].model, kv[1].method != BASELINE_METHOD,
                                                            kv[1].method, str(kv[1].seed))):
        for src in sorted(p for p in pngs[run_dir] if p.is_file()):
            # every path part from sanitised fields: a crafted seed or name cannot leave ``dest``
            target = dest / slug(rec.task) / slug(rec.model) / slug(rec.method) / slug(f"seed{rec.seed}") / slug(src.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            key = (rec.model, src.stem, str(rec.seed))
            groups.setdefault((rec.task, rec.model), {}).setdefault(key, []).append(target)
    out: dict[tuple[str, str], list[tuple[str, list[Path]]]] = {}
    for table, by_key in groups.items():
        out[table] = []
        for (model, stem, seed), paths in sorted(by_key.items()):
            methods = ", ".join(p.parent.parent.name for p in paths)
            out[table].append((f"{stem} ({model}, seed {seed}; left to right: {methods})", paths))
    notes = []
    if not groups:
        notes.append("no per-run figures (reliability diagrams, ROC curves) found in the runs' artifacts/ "
                      "folders; the calibration and anomaly evaluators write them there when they run")
    return out, notes
