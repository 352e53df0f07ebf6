"""Which figures a leaderboard shows, from what data, under which names. Nothing is drawn here: every
figure is drawn by :mod:`robench.plots` (one module, one rule for backend, style and atomic files).

Per (task, model) table, in ``plots/`` and named ``<task>-<model>-<kind>.png``:

- ``aspects``: one small panel per column of the table (its aspects, with their direction arrows): each
  method's value on every seed a point, its mean (the table's number) a line;
- ``reliability``: one panel per method, a reliability diagram per seed overlaid (the calibration
  evaluator's stored per-example confidences, after temperature scaling, pooled over the sets the ECE
  column averages), where the ECE column's results carry them;
- ``roc``: one panel per method, per OOD set the ROC curve of every seed overlaid (the anomaly
  evaluator's stored scores of the headline detector), where the AUROC column's results carry them.

Figures a rewrite no longer draws are removed: earlier versions' kinds (``radar``, ``attack``, ``gain``)
and per-task names (``<task>-<kind>.png``), and a kind that no longer applies to a table.

Per-run figures (each run's ``artifacts/*.png``, drawn by the evaluators) are copied under
``artifacts/<task>/<model>/<method>/seed<N>/`` by :func:`collect_artifacts` and linked once per table.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from robench import plots
from robench.report.board import BASELINE_METHOD, Board, example_data, seed_values
from robench.report.tables import group_title, shown_aspects, table_groups
from robench.results import ResultRecord
from robench.storage import atomic_write


def slug(text: str) -> str:
    """A safe single path part: letters, digits, '.', '+', '-', never starting or ending with '.' or '-'."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(text)).strip("-.") or "x"


FIGURE_KINDS = ("aspects", "reliability", "roc")
OLD_KINDS = ("radar", "attack", "gain")  # drawn by earlier versions; removed when a board is rewritten


def _pct(value: float) -> str:
    return f"{value * 100:.1f}" if np.isfinite(value) else "–"


def aspect_strips(board: Board, task: str, model: str) -> list[plots.Strip]:
    """The ``aspects`` figure's data: one :class:`robench.plots.Strip` per shown column of the table, with
    every (method, seed) value and each method's mean, in percent."""
    sub = board.frame[(board.frame["task"] == task) & (board.frame["model"] == model)]
    values = seed_values(board, task, model)
    strips = []
    for aspect in shown_aspects(board):
        if not sub[f"{aspect.key}_mean"].notna().any():
            continue  # no value in this table
        per_method = values[aspect.key]
        strips.append(plots.Strip(
            title=f"{aspect.label} {aspect.arrow}",
            values={m: [v * 100 for _, v in per_method[m]] for m in per_method},
            means={str(r["method"]): float(r[f"{aspect.key}_mean"]) * 100 for _, r in sub.iterrows()}))
    return strips


def _results_by_method(board: Board, task: str, model: str, statistic: str):
    """(aspect, {method: [(seed, parsed per-example data)]}) for the column tested with ``statistic``
    (``ece`` or ``auroc``): the data of each seed whose result carries usable data; None without such a column."""
    aspect = next((a for a in board.aspects if a.statistic == statistic), None)
    if aspect is None:
        return None, {}
    sub = board.frame[(board.frame["task"] == task) & (board.frame["model"] == model)]
    out: dict[str, list[tuple[str, dict]]] = {str(m): [] for m in sub["method"]}
    for rec in sorted(board.records, key=lambda r: (len(str(r.seed)), str(r.seed))):
        if (rec.task, rec.model) == (task, model) and rec.method in out and rec.evaluator == aspect.evaluator:
            data = example_data(rec, aspect)
            if data is not None:
                out[rec.method].append((str(rec.seed), data | {"value": rec.metrics[aspect.metric]}))
    return aspect, {m: runs for m, runs in out.items() if runs}


def _panel_title(board: Board, task: str, model: str, method: str, aspect) -> str:
    row = board.row(method, task, model)
    std = row[f"{aspect.key}_std"]
    return f"{method}: {aspect.label} {_pct(row[f'{aspect.key}_mean'])}" + (f" ± {_pct(std)}" if np.isfinite(std)
                                                                            else "")


def plot_reliability(board: Board, task: str, model: str, path: Path, title: str) -> Path | None:
    """The ``reliability`` figure of a table: per method, each seed's stored confidences and correctness
    pooled over the ECE column's sets; None where no result carries them."""
    aspect, runs = _results_by_method(board, task, model, "ece")
    if not runs:
        return None
    panels, bins = {}, 10
    for method, seeds in runs.items():
        curves = {}
        for seed, data in seeds:
            conf = np.concatenate([c for c, _ in data["units"].values()])
            hits = np.concatenate([h for _, h in data["units"].values()])
            curves[f"seed {seed} (ECE {_pct(data['value'])})"] = (conf, hits)
            bins = data["bins"]
        panels[_panel_title(board, task, model, method, aspect)] = curves
    return plots.reliability_seeds(panels, path, bins=bins, title=title)


def plot_roc(board: Board, task: str, model: str, path: Path, title: str) -> Path | None:
    """The ``roc`` figure of a table: per method and OOD set, each seed's ROC curve from the stored scores
    of the headline detector; None where no result carries them."""
    from robench.metrics import roc

    aspect, runs = _results_by_method(board, task, model, "auroc")
    if not runs:
        return None
    panels = {}
    for method, seeds in runs.items():
        sets: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        for _seed, data in seeds:
            scores_in = data["units"][("in",)]
            for unit, scores in data["units"].items():
                if unit[0] == "out":
                    sets.setdefault(unit[1], []).append(roc(scores_in, scores))
        panels[_panel_title(board, task, model, method, aspect)] = sets
    return plots.roc_seeds(panels, path, title=title)


def plot_leaderboard(board: Board, out_dir: Path) -> dict[tuple[str, str], list[Path]]:
    """Every leaderboard figure, per (task, model): {(task, model): [png paths]}. A figure that no longer
    applies to a table is removed, and so are the earlier versions' kinds and per-task names."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = table_groups(board.frame)
    stems = {key: f"{slug(key[0])}-{slug(key[1])}" for key, _ in tables}
    kinds = FIGURE_KINDS + OLD_KINDS
    stale = {f"{stem}-{kind}.png" for stem in stems.values() for kind in kinds}
    stale |= {f"{slug(task)}-{kind}.png" for (task, _), _ in tables for kind in kinds}
    for name in stale:
        (out_dir / name).unlink(missing_ok=True)  # what this board draws again, or an earlier version's name
    figures: dict[tuple[str, str], list[Path]] = {}
    for key, _sub in tables:
        title, path = group_title(*key), {kind: out_dir / f"{stems[key]}-{kind}.png" for kind in FIGURE_KINDS}
        strips = aspect_strips(board, *key)
        made = [
            plots.seed_strips(strips, path["aspects"], title=f"{title}: each seed a point, the mean a line")
            if strips else None,
            plot_reliability(board, *key, path["reliability"],
                             f"{title}: reliability per seed (after temperature scaling, the ECE column's sets)"),
            plot_roc(board, *key, path["roc"], f"{title}: ROC per seed and OOD set (OOD positive)"),
        ]
        figures[key] = [p for p in made if p is not None]
    return figures


def _clear_copies(folder: Path) -> None:
    """Remove an earlier board's copied figures under ``folder`` (its files, then the emptied folders;
    links are removed, never followed)."""
    if folder.is_symlink() or not folder.is_dir():
        return
    for root, dirs, files in os.walk(folder, topdown=False):
        for name in files:
            (Path(root) / name).unlink()
        for name in dirs:
            p = Path(root) / name
            if p.is_symlink():
                p.unlink()
            elif not any(p.iterdir()):
                p.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


def collect_artifacts(records: list[ResultRecord], dest: Path) -> tuple[dict[tuple[str, str], Path], list[str]]:
    """Copy every run's ``artifacts/*.png`` to ``dest/<task>/<model>/<method>/seed<N>/``, after removing
    the copies an earlier board left for these (task, model) tables (other tables' are left alone).

    Returns ({(task, model): the table's folder under ``dest``, where it got figures}, notes). A note says
    when no run has figures. Figures are found beside the result file (its ``artifacts`` list is relative
    to the run folder that holds ``results/``); results copied elsewhere simply come without figures.
    """
    dest = Path(dest)
    for task, model in {(r.task, r.model) for r in records}:
        _clear_copies(dest / slug(task) / slug(model))
    for folder in [*{dest / slug(r.task) for r in records}, dest]:  # and the folders that emptied
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()
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
    folders: dict[tuple[str, str], Path] = {}
    for run_dir, rec in sorted(runs.items(), key=lambda kv: (kv[1].task, kv[1].model, kv[1].method != BASELINE_METHOD,
                                                            kv[1].method, str(kv[1].seed))):
        for src in sorted(p for p in pngs[run_dir] if p.is_file()):
            # every path part from sanitised fields: a crafted seed or name cannot leave ``dest``
            table = dest / slug(rec.task) / slug(rec.model)
            target = table / slug(rec.method) / slug(f"seed{rec.seed}") / slug(src.name)
            data = src.read_bytes()
            atomic_write(target, lambda fh, data=data: fh.write(data))
            folders[(rec.task, rec.model)] = table
    notes = []
    if not folders:
        notes.append("no per-run figures (reliability diagrams, ROC curves) found in the runs' artifacts/ "
                     "folders; the calibration and anomaly evaluators write them there when they run")
    return folders, notes
