"""The leaderboard: pure functions from result files to tables (DataFrame, Markdown, CSV, LaTeX).

Read order: :func:`load_results` (every result JSON under some folders, with the run's cost and
per-example correctness) -> :func:`leaderboard` (one row per task x model x method, mean and std
over seeds for each aspect, relative improvement over vanilla, ranks, training-cost ratio and a
paired bootstrap p-value against vanilla) -> :func:`format_table` / :func:`write_leaderboard`.

Conventions. Every headline metric lies in [0, 1] and is shown in percent. ``std`` is the sample
standard deviation over seeds (blank with one seed). The relative improvement of a method on an
aspect is ``(m - v) / |v|`` where higher is better and ``(v - m) / |v|`` where lower is better
(ECE), so positive always means "better than vanilla"; the headline ``avg_improvement`` is its
mean over the aspects both runs have (the paper's headline). Significance: a paired bootstrap
over test examples (``details.correct``), pairing examples by index, averaging each example's
correctness over the seeds of each method; ``*`` marks p < 0.05 and ``**`` p < 0.01.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from robench.errors import ConfigError
from robench.results import RUN_FILE, _flatten, atomic_write_text, iter_result_files

BASELINE_METHOD = "vanilla"


@dataclass(frozen=True)
class Aspect:
    key: str  # short name used on the command line (--aspects) and in DataFrame columns
    evaluator: str
    metric: str  # flattened metric name inside the evaluator's result
    label: str
    higher_is_better: bool = True
    bootstrap: bool = False  # the evaluator writes details.correct for this metric

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def name(self) -> str:
        return f"{self.evaluator}.{self.metric}"


ASPECTS: dict[str, Aspect] = {a.key: a for a in [
    Aspect("id", "id", "accuracy", "ID acc", True, bootstrap=True),
    Aspect("shift", "shift", "mean_accuracy", "Shift acc", True, bootstrap=True),
    Aspect("attack", "adversarial", "accuracy_under_attack", "Attack acc", True),
    Aspect("transfer", "adversarial", "transfer_accuracy", "Transfer acc", True),
    Aspect("ece", "calibration", "ece", "ECE", False),
    Aspect("auroc", "anomaly", "auroc", "AUROC", True),
    Aspect("perturb", "perturb", "mean_accuracy", "Perturb acc", True, bootstrap=True),
]}
# The leaderboard's columns (the paper's aspects); "perturb" is available with --aspects.
DEFAULT_ASPECTS = ["id", "shift", "attack", "transfer", "ece", "auroc"]

# Metric direction by name component, for anything that is not an aspect (regression checks).
LOWER_IS_BETTER = {"ece", "ece_raw", "mce", "mce_raw", "ece_shift", "ece_adversarial", "fpr95", "drop", "mean_drop",
                   "attack_success_rate", "success_rate", "brier", "brier_raw", "nll", "nll_raw"}
HIGHER_IS_BETTER = {"accuracy", "auroc", "aupr", "accuracy_under_attack", "transfer_accuracy", "transfer",
                    "perturbations", "f1"}


def metric_direction(metric: str) -> str | None:
    """'higher', 'lower' or None (informational: counts, temperatures, confidences) for a flattened name.

    The leaf decides first (``*accuracy`` is higher-better, ECE / FPR95 / drops lower-better), then
    the enclosing names (``accuracy.amazon``, ``perturbations.typo``, ``scores.msp.trec.fpr95``).
    """
    parts = metric.split(".")
    for part in reversed(parts):
        if part in LOWER_IS_BETTER or part.endswith("_drop") or part.startswith(("ece_", "mce_")):
            return "lower"
        if part in HIGHER_IS_BETTER or part.endswith("accuracy"):
            return "higher"
    return None


def resolve_aspects(spec: str | Sequence[str] | None) -> list[Aspect]:
    """``None`` -> the default columns; else a comma list / sequence of aspect keys or evaluator.metric names."""
    if spec is None:
        keys: list[str] = list(DEFAULT_ASPECTS)
    elif isinstance(spec, str):
        keys = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        keys = [s.strip() for item in spec for s in str(item).split(",") if s.strip()]
    if not keys:
        raise ConfigError("empty --aspects; give aspect names separated by commas, e.g. id,shift,ece")
    by_name = {a.name: a for a in ASPECTS.values()}
    out = []
    for key in keys:
        if key == "all":
            out.extend(a for a in ASPECTS.values() if a not in out)
        elif key in ASPECTS:
            out.append(ASPECTS[key])
        elif key in by_name:
            out.append(by_name[key])
        elif "." in key:  # any evaluator.metric: a custom column, direction from its name
            evaluator, metric = key.split(".", 1)
            out.append(Aspect(key, evaluator, metric, key, metric_direction(metric) != "lower"))
        else:
            raise ConfigError(f"unknown aspect {key!r}; choose from: {', '.join(ASPECTS)} "
                              "(or any evaluator.metric such as shift.accuracy.amazon)")
    return list(dict.fromkeys(out))


# --------------------------------------------------------------------------------------------- loading


@dataclass
class ResultRecord:
    """One result file, with what the leaderboard needs from it and its run."""

    path: Path
    evaluator: str
    task: str  # task label: name plus profile / limit when not the default
    model: str
    method: str  # method name, "+selective" appended for selective training
    seed: Any
    run_id: str | None
    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    cost: float | None = None  # training seconds per example
    created: str = ""

    @property
    def run_dir(self) -> Path:
        return self.path.parent.parent


def _task_label(run: dict[str, Any], record: dict[str, Any] | None) -> str:
    name = run.get("task") or "?"
    profile = run.get("profile")
    limit = (record or {}).get("task", {}).get("limit")
    extras = [p for p in (profile if profile not in (None, "default") else None,
                          f"limit {limit}" if limit else None) if p]
    return f"{name} ({', '.join(extras)})" if extras else str(name)


def load_results(roots: Path | str | Iterable[Path | str]) -> list[ResultRecord]:
    """Every robench result under the given folders (recursively), one record per (run, evaluator).

    Duplicates (the same run and evaluator reached twice, or an identical run found in two folders)
    keep the newest file.
    """
    if isinstance(roots, str | Path):
        roots = [roots]
    roots = [Path(r) for r in roots]
    for root in roots:
        if not root.exists():
            raise ConfigError(f"results folder {root} does not exist; pass the runs folder that "
                              "'robench run' / 'robench eval' wrote (e.g. --results runs)")
    seen: dict[tuple, ResultRecord] = {}
    run_cache: dict[Path, dict[str, Any] | None] = {}
    for root in roots:
        for path, data in iter_result_files(root):
            path = path.resolve()
            run = data.get("run", {}) or {}
            run_dir = path.parent.parent
            if run_dir not in run_cache:
                try:
                    run_cache[run_dir] = json.loads((run_dir / RUN_FILE).read_text())
                except (OSError, json.JSONDecodeError):
                    run_cache[run_dir] = None
            record = run_cache[run_dir]
            cost = run.get("train_cost_s_per_example")
            if cost is None and record:
                cost = record.get("training", {}).get("seconds_per_example")
            metrics = {k: float(v) for k, v in _flatten(data.get("metrics", {}) or {}).items()
                       if isinstance(v, int | float) and not isinstance(v, bool)}
            method = str(run.get("method") or "?") + ("+selective" if run.get("selective") else "")
            rec = ResultRecord(path=path, evaluator=str(data.get("evaluator")), task=_task_label(run, record),
                               model=str(run.get("model") or "?"), method=method, seed=run.get("seed"),
                               run_id=run.get("run_id"), metrics=metrics, details=data.get("details", {}) or {},
                               artifacts=list(data.get("artifacts", []) or []),
                               cost=float(cost) if isinstance(cost, int | float) else None,
                               created=str(data.get("created", "")))
            key = (rec.task, rec.model, rec.method, str(rec.seed), rec.evaluator)
            if key not in seen or rec.created >= seen[key].created:
                seen[key] = rec
    return sorted(seen.values(), key=lambda r: (r.task, r.model, r.method, str(r.seed), r.evaluator))


# --------------------------------------------------------------------------------------------- statistics


def _correct_sets(value: Any) -> dict[str, np.ndarray]:
    """``details.correct`` (a '0101' string, or {set: string}) -> {set: 0/1 array}."""
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


# --------------------------------------------------------------------------------------------- the board


def leaderboard(records: Sequence[ResultRecord], aspects: str | Sequence[str] | None = None, *,
                baseline: str = BASELINE_METHOD, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per (task, model, method); per aspect ``<key>_mean``, ``_std``, ``_n``, ``_delta``, ``_p``.

    Further columns: ``seeds`` (number of seeds seen), ``avg_improvement`` (mean relative
    improvement over ``baseline`` across aspects, a fraction), ``rank`` (1 = best
    avg_improvement within a task x model), ``mean_rank`` (mean per-aspect rank),
    ``cost_s_per_example`` and ``cost_ratio`` (training cost relative to the baseline).
    """
    chosen = resolve_aspects(aspects)
    groups: dict[tuple[str, str, str], list[ResultRecord]] = {}
    for rec in records:
        groups.setdefault((rec.task, rec.model, rec.method), []).append(rec)
    rows = []
    correct: dict[tuple[tuple[str, str, str], str], list[dict[str, np.ndarray]]] = {}
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
                correct[(key, aspect.key)] = [c for r in recs if r.evaluator == aspect.evaluator
                                              and (c := _correct_sets(r.details.get("correct")))]
        costs = {str(r.seed): r.cost for r in recs if r.cost is not None}
        row["cost_s_per_example"] = float(np.mean(list(costs.values()))) if costs else float("nan")
        rows.append(row)
    columns = ["task", "model", "method", "seeds"]
    for aspect in chosen:
        columns += [f"{aspect.key}_{s}" for s in ("mean", "std", "n", "delta", "p")]
    columns += ["avg_improvement", "rank", "mean_rank", "cost_s_per_example", "cost_ratio"]
    board = pd.DataFrame(rows)
    if board.empty:
        return pd.DataFrame(columns=columns)

    for (task, model), idx in board.groupby(["task", "model"]).groups.items():
        sub = board.loc[idx]
        base_rows = sub[sub["method"] == baseline]
        base = base_rows.iloc[0] if len(base_rows) else None
        for aspect in chosen:
            deltas, pvals = [], []
            for i in idx:
                if base is None:
                    deltas.append(float("nan"))
                    pvals.append(float("nan"))
                    continue
                deltas.append(relative_improvement(board.at[i, f"{aspect.key}_mean"],
                                                   base[f"{aspect.key}_mean"], aspect.higher_is_better))
                p = float("nan")
                if aspect.bootstrap and board.at[i, "method"] != baseline:
                    p = paired_bootstrap(correct.get(((task, model, board.at[i, "method"]), aspect.key), []),
                                         correct.get(((task, model, baseline), aspect.key), []), n_boot, seed)
                pvals.append(p)
            board.loc[idx, f"{aspect.key}_delta"] = deltas
            board.loc[idx, f"{aspect.key}_p"] = pvals
        delta_cols = [f"{a.key}_delta" for a in chosen]
        board.loc[idx, "avg_improvement"] = board.loc[idx, delta_cols].mean(axis=1, skipna=True).round(12) + 0.0
        board.loc[idx, "rank"] = board.loc[idx, "avg_improvement"].rank(ascending=False, method="min")
        per_aspect = pd.DataFrame({a.key: board.loc[idx, f"{a.key}_mean"].rank(ascending=not a.higher_is_better,
                                                                                method="min") for a in chosen})
        board.loc[idx, "mean_rank"] = per_aspect.mean(axis=1, skipna=True)
        base_cost = base["cost_s_per_example"] if base is not None else float("nan")
        board.loc[idx, "cost_ratio"] = (board.loc[idx, "cost_s_per_example"] / base_cost
                                        if base_cost and np.isfinite(base_cost) else float("nan"))
    board = board.reindex(columns=columns)
    order = board["method"].map(lambda m: (0 if m == baseline else 1, m))
    board = board.assign(_o=order).sort_values(["task", "model", "_o"]).drop(columns="_o").reset_index(drop=True)
    return board


def build_leaderboard(results: Path | str | Iterable[Path | str], aspects: str | Sequence[str] | None = None,
                      **kwargs: Any) -> pd.DataFrame:
    records = load_results(results)
    if not records:
        raise ConfigError(f"no robench result files found under {_fmt_roots(results)}; "
                          "evaluate runs first ('robench eval' or 'robench run')")
    return leaderboard(records, aspects, **kwargs)


def _fmt_roots(results: Any) -> str:
    return str(results) if isinstance(results, str | Path) else ", ".join(map(str, results))


# --------------------------------------------------------------------------------------------- formatting


def _fmt_num(x: float, scale: float, digits: int) -> str:
    return f"{x * scale:.{digits}f}"


def _is_best(board: pd.DataFrame, i: Any, aspect: Aspect) -> bool:
    col = board[f"{aspect.key}_mean"].dropna()
    if len(col) < 2 or col.max() == col.min() or not np.isfinite(board.at[i, f"{aspect.key}_mean"]):
        return False  # nothing to single out
    best = col.max() if aspect.higher_is_better else col.min()
    return bool(np.isclose(board.at[i, f"{aspect.key}_mean"], best, rtol=0, atol=1e-12))


def _cell(board: pd.DataFrame, i: Any, aspect: Aspect, fmt: str, scale: float, digits: int) -> str:
    mean = board.at[i, f"{aspect.key}_mean"]
    if not np.isfinite(mean):
        return "–" if fmt != "latex" else "--"
    std = board.at[i, f"{aspect.key}_std"]
    mark = significance_marker(board.at[i, f"{aspect.key}_p"])
    best = _is_best(board, i, aspect)
    value = _fmt_num(mean, scale, digits)
    spread = _fmt_num(std, scale, digits) if np.isfinite(std) else None
    if fmt == "latex":
        value = rf"\textbf{{{value}}}" if best else value
        text = value + (rf" {{\scriptsize $\pm$ {spread}}}" if spread else "")
        return text + (f"$^{{{mark}}}$" if mark else "")
    text = value + (f" ± {spread}" if spread else "")
    if fmt == "markdown":
        text = f"**{text}**" if best else text
        return text + mark.replace("*", r"\*")
    return text + mark  # plain (rich / text)


def _extra_cells(row: pd.Series, baseline: str) -> list[str]:
    imp = row["avg_improvement"]
    ratio = row["cost_ratio"]
    return [
        "0 (ref)" if row["method"] == baseline else (f"{imp * 100:+.1f}%" if np.isfinite(imp) else "–"),
        f"{int(row['rank'])}" if np.isfinite(row["rank"]) else "–",
        f"{ratio:.2f}×" if np.isfinite(ratio) else "–",
    ]


EXTRA_HEADERS = ["Δ vs vanilla", "rank", "cost ×"]


def _row_label(row: pd.Series, show_model: bool) -> str:
    return f"{row['method']} ({row['model']})" if show_model else str(row["method"])


def table_rows(board: pd.DataFrame, aspects: str | Sequence[str] | None = None, fmt: str = "text", *,
               scale: float = 100.0, digits: int = 1, baseline: str = BASELINE_METHOD
               ) -> dict[str, tuple[list[str], list[list[str]]]]:
    """{task: (headers, rows)} of display strings, one table per task."""
    chosen = [a for a in resolve_aspects(aspects) if f"{a.key}_mean" in board.columns]
    if aspects is None:  # default columns: leave out aspects no run has measured
        chosen = [a for a in chosen if board[f"{a.key}_mean"].notna().any()] or chosen
    out = {}
    for task, sub in board.groupby("task", sort=True):
        show_model = sub["model"].nunique() > 1
        arrow = {True: r"$\uparrow$", False: r"$\downarrow$"} if fmt == "latex" else {True: "↑", False: "↓"}
        headers = ["method", "seeds", *[f"{a.label} {arrow[a.higher_is_better]}" for a in chosen], *EXTRA_HEADERS]
        if fmt == "latex":
            headers = [h.replace("Δ", r"$\Delta$").replace("×", r"$\times$") for h in headers]
        rows = []
        for i, row in sub.iterrows():
            cells = [_row_label(row, show_model), str(int(row["seeds"])),
                     *[_cell(sub, i, a, fmt, scale, digits) for a in chosen], *_extra_cells(row, baseline)]
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


def format_table(board: pd.DataFrame, fmt: str = "markdown", aspects: str | Sequence[str] | None = None, *,
                 digits: int = 1, baseline: str = BASELINE_METHOD) -> str:
    """The leaderboard as 'markdown', 'latex' (booktabs) or 'csv' (every number, unrounded)."""
    fmt = fmt.lower()
    if fmt == "csv":
        chosen = [a.key for a in resolve_aspects(aspects)]
        keep = [c for c in board.columns if c.rsplit("_", 1)[0] not in ASPECTS or c.rsplit("_", 1)[0] in chosen]
        return board[keep].to_csv(index=False, float_format="%.6g")
    if fmt not in {"markdown", "latex", "md", "tex"}:
        raise ConfigError(f"unknown table format {fmt!r}; choose one of: latex, markdown, csv")
    fmt = {"md": "markdown", "tex": "latex"}.get(fmt, fmt)
    parts = []
    for task, (headers, rows) in table_rows(board, aspects, fmt, digits=digits, baseline=baseline).items():
        if fmt == "latex":
            parts.append(latex_table(task, headers, rows))
        else:
            parts.append(f"### {task}\n\n" + markdown_table(headers, rows))
    return "\n\n".join(parts) + "\n"


def improvement_table(board: pd.DataFrame, aspects: str | Sequence[str] | None = None,
                      baseline: str = BASELINE_METHOD) -> dict[str, tuple[list[str], list[list[str]]]]:
    """{task: (headers, rows)}: each method's relative improvement over vanilla per aspect (percent)."""
    chosen = [a for a in resolve_aspects(aspects) if f"{a.key}_delta" in board.columns]
    out = {}
    for task, sub in board.groupby("task", sort=True):
        show_model = sub["model"].nunique() > 1
        headers = ["method", *[a.label for a in chosen], "average"]
        rows = []
        for _, row in sub[sub["method"] != baseline].iterrows():
            vals = [row[f"{a.key}_delta"] for a in [*chosen]] + [row["avg_improvement"]]
            rows.append([_row_label(row, show_model), *[f"{v * 100:+.1f}%" if np.isfinite(v) else "–" for v in vals]])
        out[str(task)] = (headers, rows)
    return out


# --------------------------------------------------------------------------------------------- the files


LEGEND = (
    "Mean over seeds in percent, ± the sample standard deviation over seeds (blank with one seed). "
    "↑ higher is better, ↓ lower is better; the best value per column is bold. "
    "`*` p < 0.05, `**` p < 0.01: paired bootstrap over test examples against vanilla (same task and "
    "model), examples paired by index, correctness averaged over seeds; only aspects with per-example "
    "correctness (in-distribution, shift) are tested. Δ vs vanilla: mean over aspects of the relative "
    "improvement over vanilla (direction-aware, so positive is better for ECE too); rank orders it. "
    "cost ×: training seconds per example relative to vanilla."
)


def write_leaderboard(results: Path | str | Iterable[Path | str], out: Path | str = "results", *,
                      aspects: str | Sequence[str] | None = None, plots: bool = True, n_boot: int = 1000,
                      baseline: str = BASELINE_METHOD) -> dict[str, Path]:
    """Write LEADERBOARD.md, leaderboard.csv, leaderboard.tex (+ plots/ and collected artefacts) into ``out``."""
    records = load_results(results)
    if not records:
        raise ConfigError(f"no robench result files found under {_fmt_roots(results)}; "
                          "evaluate runs first ('robench eval' or 'robench run')")
    board = leaderboard(records, aspects, baseline=baseline, n_boot=n_boot)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {"csv": out / "leaderboard.csv", "latex": out / "leaderboard.tex", "markdown": out / "LEADERBOARD.md"}
    atomic_write_text(written["csv"], format_table(board, "csv", aspects))
    atomic_write_text(written["latex"], format_table(board, "latex", aspects, baseline=baseline))

    figures: dict[str, list[Path]] = {}
    artefacts: dict[str, list[tuple[str, list[Path]]]] = {}
    notes: list[str] = []
    if plots:
        from robench.plots_report import collect_artifacts, plot_leaderboard

        figures = plot_leaderboard(board, out / "plots", aspects)
        artefacts, notes = collect_artifacts(records, out / "artifacts")

    lines = ["# robench leaderboard", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {len(records)} result files "
             f"({_fmt_roots(results)}).", "", LEGEND, ""]
    tables = table_rows(board, aspects, "markdown", baseline=baseline)
    gains = improvement_table(board, aspects, baseline)
    for task, (headers, rows) in tables.items():
        lines += [f"## {task}", "", markdown_table(headers, rows), ""]
        if gains.get(task) and gains[task][1]:
            lines += ["Improvement over vanilla per aspect (the paper's headline, relative, direction-aware):", "",
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
    return written
