"""The board as text: Markdown, LaTeX (booktabs), CSV, and a terminal table that fits its width.

Conventions. Headline metrics lie in [0, 1] and are shown in percent. Best value per column in
bold (none where all tie); ``*`` p < 0.05, ``**`` p < 0.01 against the baseline method.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from robench.errors import ConfigError
from robench.report.aspects import Aspect
from robench.report.board import Board
from robench.report.stats import significance_marker

EXTRA_HEADERS = ["Δ vs vanilla", "rank", "cost ×"]
EXTRA_SHORT = ["Δ", "rank", "cost"]


def _is_best(frame: pd.DataFrame, i, aspect: Aspect) -> bool:
    col = frame[f"{aspect.key}_mean"].dropna()
    if len(col) < 2 or col.max() == col.min() or not np.isfinite(frame.at[i, f"{aspect.key}_mean"]):
        return False  # nothing to single out
    best = col.max() if aspect.higher_is_better else col.min()
    return bool(np.isclose(frame.at[i, f"{aspect.key}_mean"], best, rtol=0, atol=1e-12))


def _cell(frame: pd.DataFrame, i, aspect: Aspect, fmt: str, digits: int, std: bool = True) -> str:
    mean = frame.at[i, f"{aspect.key}_mean"]
    if not np.isfinite(mean):
        return "–" if fmt != "latex" else "--"
    spread = frame.at[i, f"{aspect.key}_std"]
    mark = significance_marker(frame.at[i, f"{aspect.key}_p"])
    best = _is_best(frame, i, aspect)
    value = f"{mean * 100:.{digits}f}"
    spread = f"{spread * 100:.{digits}f}" if std and np.isfinite(spread) else None
    if fmt == "latex":
        value = rf"\textbf{{{value}}}" if best else value
        text = value + (rf" {{\scriptsize $\pm$ {spread}}}" if spread else "")
        return text + (f"$^{{{mark}}}$" if mark else "")
    text = value + (f" ± {spread}" if spread else "")
    if fmt == "markdown":
        text = f"**{text}**" if best else text
        return text + mark.replace("*", r"\*")
    return text + mark  # plain (terminal)


def _extra_cells(row: pd.Series, baseline: str, short: bool = False) -> list[str]:
    imp, ratio = row["avg_improvement"], row["cost_ratio"]
    ref = "ref" if short else "0 (ref)"
    return [
        ref if row["method"] == baseline else (f"{imp * 100:+.1f}%" if np.isfinite(imp) else "–"),
        f"{int(row['rank'])}" if np.isfinite(row["rank"]) else "–",
        f"{ratio:.2f}×" if np.isfinite(ratio) else "–",
    ]


def _row_label(row: pd.Series, show_model: bool) -> str:
    return f"{row['method']} ({row['model']})" if show_model else str(row["method"])


def _shown(board: Board) -> list[Aspect]:
    """Columns with at least one value."""
    return [a for a in board.aspects if board.frame[f"{a.key}_mean"].notna().any()] or list(board.aspects)


def table_rows(board: Board, fmt: str = "text", *, digits: int = 1, std: bool = True, short: bool = False
               ) -> dict[str, tuple[list[str], list[list[str]]]]:
    """{task: (headers, rows)} of display strings, one table per task."""
    chosen = _shown(board)
    out = {}
    for task, sub in board.frame.groupby("task", sort=True):
        show_model = sub["model"].nunique() > 1
        arrow = {True: r"$\uparrow$", False: r"$\downarrow$"} if fmt == "latex" else {True: "↑", False: "↓"}
        headers = ["method", "seeds", *[f"{a.short if short else a.label} {arrow[a.higher_is_better]}" for a in chosen],
                   *(EXTRA_SHORT if short else EXTRA_HEADERS)]
        if short:
            headers = [h.replace(" ↑", "↑").replace(" ↓", "↓") for h in headers]
        if fmt == "latex":
            headers = [h.replace("Δ", r"$\Delta$").replace("×", r"$\times$") for h in headers]
        rows = []
        for i, row in sub.iterrows():
            cells = [_row_label(row, show_model), str(int(row["seeds"])),
                     *[_cell(sub, i, a, fmt, digits, std) for a in chosen], *_extra_cells(row, board.baseline, short)]
            if fmt == "latex":
                cells = [_latex_escape(cells[0]), *cells[1:-3],
                         *[c.replace("%", r"\%").replace("×", r"$\times$").replace("–", "--") for c in cells[-3:]]]
            rows.append(cells)
        out[str(task)] = (headers, rows)
    return out


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#"),
                 ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        text = text.replace(a, b)
    return text


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    align = ["---", "--:", *["--:"] * (len(headers) - 2)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def latex_table(task: str, headers: list[str], rows: list[list[str]]) -> str:
    spec = "l" + "r" * (len(headers) - 1)
    lines = [f"% robench leaderboard: {task}. Mean over seeds (percent), {{\\scriptsize $\\pm$ std}}; best per",
             "% column in bold; $^{*}$ p<0.05, $^{**}$ p<0.01 (paired bootstrap vs vanilla). Needs \\usepackage{booktabs}.",
             f"\\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(headers) + r" \\", r"\midrule"]
    lines += [" & ".join(cells) + r" \\" for cells in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def format_table(board: Board, fmt: str = "markdown", *, digits: int = 1) -> str:
    """The leaderboard as 'markdown', 'latex' (booktabs) or 'csv' (every number, unrounded)."""
    fmt = fmt.lower()
    if fmt == "csv":
        return board.frame.to_csv(index=False, float_format="%.6g")
    if fmt not in {"markdown", "latex", "md", "tex"}:
        raise ConfigError(f"unknown table format {fmt!r}; choose one of: latex, markdown, csv")
    fmt = {"md": "markdown", "tex": "latex"}.get(fmt, fmt)
    parts = []
    for task, (headers, rows) in table_rows(board, fmt, digits=digits).items():
        parts.append(latex_table(task, headers, rows) if fmt == "latex" else f"### {task}\n\n" + markdown_table(headers, rows))
    return "\n\n".join(parts) + "\n"


def improvement_table(board: Board) -> dict[str, tuple[list[str], list[list[str]]]]:
    """{task: (headers, rows)}: each method's relative improvement over the baseline per aspect (percent)."""
    chosen = _shown(board)
    out = {}
    for task, sub in board.frame.groupby("task", sort=True):
        show_model = sub["model"].nunique() > 1
        headers = ["method", *[a.label for a in chosen], "average"]
        rows = []
        for _, row in sub[sub["method"] != board.baseline].iterrows():
            vals = [row[f"{a.key}_delta"] for a in chosen] + [row["avg_improvement"]]
            rows.append([_row_label(row, show_model), *[f"{v * 100:+.1f}%" if np.isfinite(v) else "–" for v in vals]])
        out[str(task)] = (headers, rows)
    return out


def terminal_tables(board: Board, width: int) -> list:
    """Rich tables, one per task, that fit ``width`` columns: with ± std where it fits, else means
    only with short headers (method names are never cut)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    def build(task: str, headers: list[str], rows: list[list[str]], compact: bool) -> Table:
        note = "; std over seeds: LEADERBOARD.md" if compact else ""
        table = Table(title=f"leaderboard: {task}", caption=f"* p<.05, ** p<.01 vs {board.baseline}{note}",
                      box=box.SIMPLE_HEAD if compact else box.HEAVY_HEAD, padding=(0, 1) if not compact else (0, 0),
                      pad_edge=not compact, collapse_padding=compact)
        for i, h in enumerate(headers):
            table.add_column(h, justify="left" if i == 0 else "right", no_wrap=True)
        for cells in rows:
            table.add_row(*cells)
        return table

    def fits(table: Table) -> bool:
        probe = Console(width=10_000, record=True, file=io.StringIO())
        probe.print(table)
        return max(len(line) for line in probe.export_text().splitlines()) <= width

    tables = []
    full = table_rows(board, "text")
    compact = table_rows(board, "text", std=False, short=True)
    for task in full:
        table = build(task, *full[task], compact=False)
        if not fits(table):
            headers, rows = compact[task]
            # "seeds" moves into the title to save a column
            seeds = sorted({r[1] for r in rows}, key=int)
            plural = "" if seeds == ["1"] else "s"
            table = build(f"{task} ({'/'.join(seeds)} seed{plural})", [headers[0], *headers[2:]],
                          [[r[0], *r[2:]] for r in rows], compact=True)
        tables.append(table)
    return tables
