"""Writing the leaderboard files: LEADERBOARD.md, leaderboard.csv, leaderboard.tex, plots/, artifacts/."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from robench.report.board import BASELINE_METHOD, Board, build_leaderboard
from robench.report.tables import format_table, improvement_table, markdown_table, table_rows
from robench.results import atomic_write_text


def legend(board: Board) -> str:
    tested = [a.label for a in board.aspects if a.bootstrap]
    untested = [a.label for a in board.aspects if not a.bootstrap]
    return (
        "Mean over seeds in percent, ± the sample standard deviation over seeds (blank with one seed). "
        "↑ higher is better, ↓ lower is better (as each evaluator declares); the best value per column is bold. "
        f"`*` p < 0.05, `**` p < 0.01: paired bootstrap ({board.n_boot} resamples) over test examples against "
        f"{board.baseline} (same task and model), examples paired by index, correctness averaged over seeds; "
        f"tested: {', '.join(tested) or 'none'}"
        + (f"; not tested (no per-example outcomes stored): {', '.join(untested)}" if untested else "") + ". "
        f"Δ vs {board.baseline}: mean over aspects of the relative improvement (direction-aware, so positive is "
        "better for ECE too); rank orders it. cost ×: training seconds per example relative to "
        f"{board.baseline}."
    )


def write_leaderboard(results: Path | str | Iterable[Path | str], out: Path | str = "results", *,
                      aspects: str | Sequence[str] | None = None, plots: bool = True, n_boot: int = 1000,
                      baseline: str = BASELINE_METHOD) -> tuple[Board, dict[str, Path]]:
    """Build the board once from result files and write it into ``out``; returns (board, written paths)."""
    board = build_leaderboard(results, aspects, baseline=baseline, n_boot=n_boot)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {"csv": out / "leaderboard.csv", "latex": out / "leaderboard.tex", "markdown": out / "LEADERBOARD.md"}
    atomic_write_text(written["csv"], format_table(board, "csv"))
    atomic_write_text(written["latex"], format_table(board, "latex"))

    figures: dict[str, list[Path]] = {}
    artefacts: dict[str, list[tuple[str, list[Path]]]] = {}
    notes: list[str] = []
    if plots:
        from robench.report.figures import collect_artifacts, plot_leaderboard

        figures = plot_leaderboard(board, out / "plots")
        artefacts, notes = collect_artifacts(board.records, out / "artifacts")

    lines = ["# robench leaderboard", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {len(board.records)} result files "
             f"({board.source}).", "", legend(board), ""]
    tables = table_rows(board, "markdown")
    gains = improvement_table(board)
    for task, (headers, rows) in tables.items():
        lines += [f"## {task}", "", markdown_table(headers, rows), ""]
        if gains.get(task) and gains[task][1]:
            lines += [f"Improvement over {baseline} per aspect (the paper's headline, relative, direction-aware):", "",
                      markdown_table(*gains[task]), ""]
        for fig in figures.get(task, []):
            lines += [f"![{fig.stem}]({fig.relative_to(out).as_posix()})", ""]
        for label, pngs in artefacts.get(task, []):
            lines += [f"**{label}**", "", " ".join(f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in pngs), ""]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    lines += ["Files: [leaderboard.csv](leaderboard.csv) (every number), [leaderboard.tex](leaderboard.tex) "
              "(LaTeX booktabs).", ""]
    atomic_write_text(written["markdown"], "\n".join(lines))
    return board, written
