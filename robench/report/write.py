"""Writing the leaderboard files: LEADERBOARD.md (its legend a short list), LEGEND.md (the full legend),
leaderboard.csv, leaderboard.tex, compute.csv (the board's own training and evaluation minutes, also a
"Compute" line under each table), plots/ (drawn by robench.plots, chosen by robench.report.figures), artifacts/,
attacks.csv / attacks.md where there are adversarial results, and cross_model.csv (with its section in
LEADERBOARD.md) where a task was run on two or more models."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from robench.outputs import BOARD_HEADING, guard_board_out, is_board_folder
from robench.report.board import (
    ADVERSARIAL,
    BASELINE_METHOD,
    FITS,
    NO_CARD,
    Board,
    build_board,
    compute_table,
    regulariser_table,
    threat_card,
    verdict,
)
from robench.report.cross import cross_model_csv, cross_model_lines, cross_model_table
from robench.report.stats import N_BOOT
from robench.report.tables import (
    attack_markdown,
    attack_table,
    calibration_phrase,
    data_notes,
    detector_table,
    excluded_note,
    format_table,
    group_title,
    improvement_table,
    markdown_table,
    per_set_table,
    preset_phrase,
    table_rows,
)
from robench.storage import atomic_write_text

LEGEND_FILE = "LEGEND.md"


def _test_name(board: Board) -> str:
    return ("hierarchical paired bootstrap over seeds and test examples" if board.significance == "hierarchical"
            else "paired bootstrap over test examples, seeds fixed")


def _short_test(board: Board) -> str:
    return "seeds and examples resampled" if board.significance == "hierarchical" else "examples resampled, seeds fixed"


def _few(board: Board) -> str:
    """The tables (all rows) or rows that get no verdict for lack of seeds."""
    rows: dict[tuple[str, str], list[str]] = {}
    for task, model, method in sorted(board.few_seeds):
        rows.setdefault((task, model), []).append(method)
    out = []
    for (task, model), methods in rows.items():
        tested = board.frame[(board.frame["task"] == task) & (board.frame["model"] == model)
                             & (board.frame["method"] != board.baseline)]
        out.append(f"{task} ({model})" if set(methods) >= set(tested["method"]) else
                   f"{', '.join(methods)} on {task} ({model})")
    return "; ".join(out)


def _unranked(board: Board) -> str:
    """The rows left unranked, each with the columns it lacks."""
    return "; ".join(f"{method} on {task} ({model}: no {', '.join(cols)})"
                     for (task, model, method), cols in sorted(board.unranked.items()))


def legend(board: Board) -> str:
    """The board's header: a short list (one line per convention), the details linked (:func:`legend_details`)."""
    base = board.baseline
    tested = any(a.bootstrap for a in board.aspects)
    untested = [a.label for a in board.aspects if not a.bootstrap]
    items = [
        "Numbers: mean over seeds in percent, ± the sample standard deviation over seeds (blank with one seed).",
        "↑ higher is better, ↓ lower is better; **bold**: the best value of the column.",
        (f"`*` p < 0.05, `**` p < 0.01 against {base} ({_short_test(board)}; Holm over the table)"
         + ("; `†` not tested for that method" if board.untested else "")
         + (f"; not tested: {', '.join(untested)}." if untested else ".")) if tested
        else "No column is tested for significance.",
        *([f"No significance on {_few(board)}: fewer than 3 seeds per method (--significance examples holds the "
           "seeds fixed)."] if board.few_seeds else []),
        f"rank: columns significantly better minus worse than {base} (`+/-`), ties by the mean column rank: a "
        "constant predictor cannot win it.",
        *([f"Not ranked, no Δ: {_unranked(board)}: a row without a column {base} has is not ranked (it would be "
           "scored only where it was evaluated)."] if board.unranked else []),
        f"Δ vs {base}: mean change per column as a share of the room to the ideal (gains) or to the worst (losses); "
        f"cost ×: training time per example relative to {base}.",
        "Figures: each seed a point, the mean a line; reliability and ROC curves one per seed.",
        f"How each column is tested, p-values, intervals, untested columns: [{LEGEND_FILE}]({LEGEND_FILE}).",
    ]
    return "\n".join(f"- {item}" for item in items)


def legend_details(board: Board) -> list[tuple[str, str]]:
    """The full legend, section by section: [(heading, paragraph)], written to LEGEND.md: what each number
    is, exactly what is tested and how, and what the figures show."""
    base = board.baseline
    accuracies = [a.label for a in board.aspects if a.accuracy_like]
    by_metric = {s: [a.label for a in board.aspects if a.statistic == s] for s in ("ece", "auroc")}
    untested = [a.label for a in board.aspects if not a.bootstrap]
    daggers = [a.label for a in board.aspects if any(cell[3] == a.key for cell in board.untested)]
    tests = []
    if accuracies:
        tests.append(f"{', '.join(accuracies)}: the statistic is the mean over sets of the per-example difference in "
                     "correctness, each example's correctness averaged over seeds")
    if by_metric["ece"]:
        tests.append(f"{', '.join(by_metric['ece'])}: the metric itself, recomputed on every resample from the stored "
                     "per-example confidences (after temperature scaling; the evaluator's fitted temperature is held "
                     "fixed) and correctness with the evaluator's binning, per set, averaged over sets as the evaluator "
                     f"does, then over seeds; the statistic is the method's value minus {base}'s")
    if by_metric["auroc"]:
        tests.append(f"{', '.join(by_metric['auroc'])}: likewise the metric itself, from the stored per-example scores "
                     "of the headline OOD detector (the in-distribution test set and each OOD set resampled on their "
                     "own), averaged over OOD sets, then over seeds")
    sections = [("Numbers",
                 "Mean over seeds in percent, ± the sample standard deviation over seeds (blank with one seed). "
                 "↑ higher is better, ↓ lower is better (as each evaluator declares); the best value per column is "
                 "bold.")]
    if tests:
        seeds = ("each resample first draws, on each side, as many seeds as that side has, with replacement (so the "
                 "spread over training seeds counts; at least 3 seeds per method, else no verdict), then " if
                 board.significance == "hierarchical" else "the seeds are held fixed; each resample ")
        sections.append((
            "Significance",
            f"Significance against {base} (same task and model): {_test_name(board)} ({board.n_boot} resamples, "
            f"seed {board.boot_seed}); {seeds}draws one set of example indices per evaluated set, shared by the "
            f"method and {base} and by all their seeds (examples paired by index within each set, attacked examples "
            "by sample id); each drawn seed's metric is computed on those examples and averaged over the drawn "
            "seeds. " + ". ".join(tests) + ". "
            "p is two-sided: twice the smaller of the shares (count + 1) / (resamples + 1) of resampled differences "
            "at or below and at or above 0, at most 1. `*` p < 0.05, `**` p < 0.01 after Holm's step-down "
            "correction over every tested cell of the (task, model) table (the family: all its methods' columns "
            "with a p-value); leaderboard.csv gives `<key>_p` (raw) and `<key>_p_holm` (adjusted). With "
            "`--significance examples` the seeds are held fixed (the older test: a seed's luck counts as the "
            "method's effect)."
            + (f" No verdict on {_few(board)}: fewer than 3 seeds per method." if board.few_seeds else "")
            + (f" `†` (on this board: {', '.join(daggers)}): not tested for that method, because its results or "
               f"{base}'s for that column carry no per-example data (written by an older evaluator version: re-run "
               f"`robench eval --force` on those runs), data that do not give back the result's headline metric, or "
               f"examples that do not pair with {base}'s; never tested on part of the seeds, and left out of the "
               "row's Holm family." if daggers else "")))
    else:
        sections.append(("Significance", "No column is tested for significance."))
    if untested:
        sections.append(("Not tested", "Not tested (no result on this board carries per-example data for them, e.g. "
                         "written by an older evaluator version, or the evaluator stores none): "
                         f"{', '.join(untested)}."))
    if accuracies:
        sections.append(("Intervals", "For the accuracy columns leaderboard.csv also gives `<key>_low` / `<key>_high`: "
                         "the Wilson 95% interval of the seed mean with n = the size of the largest set one seed was "
                         "scored on (conservative for several disjoint sets); it covers the sampling of examples, not "
                         "the spread over seeds."))
    sections.append(("Δ, rank, cost",
                     f"rank: the score (columns significantly better minus significantly worse than {base}, after "
                     "Holm; `better`, `worse`, `score` in leaderboard.csv) orders the rows, ties broken by the mean "
                     "per-column rank (`mean_rank`): a row must win verdicts to rank first, so no constant or random "
                     f"predictor can; a row that lacks a column {base} has gets no rank and no Δ. Δ vs {base}: the mean over columns of the direction-aware change as a share of "
                     f"{base}'s room: a gain closes part of the distance to the ideal value ((m - b) / (1 - b) for a "
                     "higher-is-better metric), a loss gives up part of the distance from the worst ((m - b) / b), so "
                     "each column lies in [-100%, 100%] and a near-zero base cannot explode (the paper's plain "
                     "relative change would put 1.9% -> 4.0% at +113%; here it is +2.1%). cost ×: training seconds "
                     f"per example relative to {base}."))
    sections.append(("Figures",
                     "Under each table, `plots/<task>-<model>-aspects.png` has one small panel per column of the "
                     "table (its direction arrow in the panel title): each method's value on every seed is a point, "
                     "its mean (the table's number) a black line. `-reliability.png` (one panel per method, a "
                     "reliability diagram per seed, from the calibration results' stored per-example confidences "
                     "after temperature scaling, pooled over the sets the ECE column averages, binned as the ECE "
                     "bins them) and `-roc.png` (one panel per method, per OOD set the ROC curve of every seed, from "
                     "the anomaly results' stored scores of the headline detector, OOD positive) are drawn where "
                     "those results carry their per-example data. Where the runs' folders are at hand, each run's "
                     "own figures (as its evaluators drew them) are copied to `artifacts/<task>/<model>/<method>/"
                     "seed<N>/` and linked once under the table."))
    return sections


def legend_markdown(board: Board) -> str:
    """LEGEND.md: the board's full legend."""
    lines = ["# robench leaderboard: legend", "",
             "The details behind the short list at the top of [LEADERBOARD.md](LEADERBOARD.md).", ""]
    for heading, text in legend_details(board):
        lines += [f"## {heading}", "", text, ""]
    return "\n".join(lines)


FILES_SUBDIR = "files"


def collect_results(board: Board, dest: Path) -> list[Path]:
    """Copy every result file the board was built from under ``dest`` (sanitised names), so the
    leaderboard folder carries its own sources: ``robench leaderboard --results <out>/files``
    rebuilds the same board anywhere."""
    from robench.report.figures import slug

    dest = Path(dest)
    copied = []
    for rec in [*board.records, *board.excluded_records]:  # excluded too: a rebuild excludes them again
        target = (dest / slug(rec.task) / slug(rec.model) / slug(rec.method) / slug(f"seed{rec.seed}")
                  / f"{slug(rec.path.stem)}.json")
        if target.resolve() != rec.path.resolve():
            atomic_write_text(target, rec.path.read_text(encoding="utf-8"))
        copied.append(target)
    keep = {p.resolve() for p in copied}
    # results of this board's (task, model) groups that are no longer on it; other groups are left alone
    for group in {(slug(r.task), slug(r.model)) for r in [*board.records, *board.excluded_records]}:
        for stale in (dest / group[0] / group[1]).rglob("*.json"):
            if stale.resolve() not in keep:
                stale.unlink()
    return copied


def _regulariser_lines(board: Board, task: str, model: str) -> list[str]:
    """The regulariser-alive check from training diagnostics, as Markdown lines (none if absent)."""
    table = regulariser_table(board)
    if table.empty or "alive_ratio" not in table:
        return []
    sub = table[(table["task"] == task) & (table["model"] == model) & table["alive_ratio"].notna()]
    if sub.empty:
        return []
    rows = []
    for _, r in sub.iterrows():
        terms = ", ".join(f"{k} {r[k]:.3g}" for k in ("ce", "sym_kl", "bregman", "adv_ce") if k in r and pd.notna(r[k]))
        share = r.get("ascent_share")
        share = f"{share:.3g}" if share is not None and pd.notna(share) else "-"
        rows.append([r["method"], f"{r['sampled_sym_kl']:.3g}",
                     f"{r['dropout_sym_kl']:.3g}", f"{r['alive_ratio']:.2f}", share, terms])
    return ["Regulariser check (from training, mean over epochs and seeds): symKL between the clean and the "
            "perturbed pass, against the symKL of a second clean pass with fresh dropout on the same sampled "
            "batches. A ratio near 1 means the perturbation adds nothing beyond dropout. The ascent share is "
            "the part of the final perturbation that the gradient step supplies (per token, "
            "||step|| / ||perturbation||, mean over tokens and steps): near 0 the perturbation is its initial "
            "noise and the method trains as a noise regulariser, whatever the ratio says (- : not recorded; R3F has no "
            "gradient step, and runs trained before the share was recorded have none).", "",
            markdown_table(["method", "symKL perturbed", "symKL dropout-only", "ratio", "ascent share",
                            "loss terms (mean)"], rows), ""]


def _tuned_lines(board: Board, task: str, model: str) -> list[str]:
    """The settings chosen by ``robench tune`` that rows of this table trained with (none: no line)."""
    if "tuned" not in board.frame:
        return []
    frame = board.frame
    sub = frame[(frame["task"] == task) & (frame["model"] == model) & frame["tuned"].notna()]
    shown = [f"{r['method']}: {r['tuned']}" for _, r in sub.iterrows()]
    if not shown:
        return []
    return [f"Tuned on validation (`robench tune`, best mean validation accuracy): {'; '.join(shown)}.", ""]


def _compute_lines(compute: pd.DataFrame, task: str, model: str) -> list[str]:
    """The table's own wall time (training and evaluation minutes), as one Markdown paragraph."""
    sub = compute[(compute["task"] == task) & (compute["model"] == model)]
    if sub.empty:
        return []

    def amount(row: pd.Series, what: str) -> str:
        if row["lacking"]:
            return f"n/a ({row['lacking']} of {row[what]} {what} lack a wall time)"
        return f"{row['minutes']:.1f} min"

    train = sub[sub["stage"] == "training"].iloc[0]
    evals = sub[sub["stage"] == "evaluation"]
    total = evals[evals["evaluator"] == "all"].iloc[0]
    each = "; ".join(f"{r['evaluator']} {amount(r, 'results')}" for _, r in evals.iterrows() if r["evaluator"] != "all")
    return [f"Compute (wall time from the result files; [compute.csv](compute.csv)): {train['runs']} runs; training "
            f"{amount(train, 'runs')} (each run's `train_wall_seconds` once, however many result files it has); "
            f"evaluation {amount(total, 'results')} over {total['results']} results ({each}).", ""]


def adversarial_aspect_lines(board: Board, task: str, model: str) -> list[str]:
    """What the adversarial columns of one table are, as the task declared them (the adversarial results'
    ``settings.adversarial_aspect``: live recipes, static sets, how they combine); one line per declaration."""
    seen: dict[str, dict[str, Any]] = {}
    for rec in board.records:
        declared = rec.settings.get("adversarial_aspect") if rec.evaluator == ADVERSARIAL else None
        if rec.task == task and rec.model == model and isinstance(declared, dict):
            seen.setdefault(json.dumps(declared, sort_keys=True, default=str), declared)
    lines = []
    for a in seen.values():
        live, static = ", ".join(a.get("live") or []), ", ".join(a.get("static") or [])
        if a.get("combine") == "mean":
            text = (f"Adv: the unweighted mean of the live worst-case accuracy (recipes {live or 'none'}) and the "
                    f"accuracy on each static adversarial set ({static or 'none'}), as the task declares (combine: "
                    "mean); Attack and Transfer are its parts (leaderboard.csv).")
        elif not live:
            text = (f"Adversarial: the static adversarial sets only ({static}; Transfer: their mean accuracy), no live "
                    "attack, as the task declares (recipes: []).")
        else:
            text = (f"Adversarial, as the task declares (combine: separate): Attack, the live recipes ({live}), worst "
                    "case; " + (f"Transfer, the mean accuracy on the static sets ({static})." if static else
                                "no static adversarial set."))
        lines += [text, ""]
    return lines


def verdict_lines(board: Board, task: str, model: str) -> list[str]:
    """The table's verdicts in words, read from the board (the one place the README's claims come from)."""
    sub = board.frame[(board.frame["task"] == task) & (board.frame["model"] == model)]
    few = {m for t, mo, m in board.few_seeds if (t, mo) == (task, model)}
    if few and few >= set(sub["method"]) - {board.baseline}:
        return ["Verdicts: none (fewer than 3 seeds per method; see the legend).", ""]
    out = []
    for _, row in sub[sub["method"] != board.baseline].iterrows():
        if row["method"] in few:
            out.append(f"- {row['method']} against {board.baseline}: no verdict (fewer than 3 seeds).")
            continue
        better, worse, depends = [], [], []
        for a in board.aspects:
            said = verdict(row, a)
            choice = "detector" if a.statistic == "auroc" else "temperature fit"
            cell = (f"{a.label}, whose sign depends on the {choice}" if said == "choice-dependent"
                    else f"{a.label} (p {row[f'{a.key}_p_holm']:.3g})")
            {"better": better, "worse": worse, "choice-dependent": depends}.get(said, []).append(cell)
        parts = [f"better on {', '.join(better)}" if better else "", f"worse on {', '.join(worse)}" if worse else "",
                 f"no verdict on {'; '.join(depends)}" if depends else ""]
        said = "; ".join(p for p in parts if p) or "no significant difference"
        out.append(f"- {row['method']} against {board.baseline}: {said}.")
    if not out:
        return []
    return [f"Verdicts ({board.significance} test, Holm over the table, p adjusted):", "", *out, ""]


def write_leaderboard(results: Path | str | Iterable[Path | str], out: Path | str = "results", *,
                      aspects: str | Sequence[str] | None = None, plots: bool = True, n_boot: int = N_BOOT,
                      baseline: str = BASELINE_METHOD, by: str = "method",
                      significance: str | None = None) -> tuple[Board, dict[str, Path]]:
    """Build the board once from result files and write it into ``out``; returns (board, written paths).
    ``by="model"``: rows are models and ``baseline`` names the reference model (robench.report.board.by_model)."""
    out = Path(out)
    guard_board_out(out)  # a new or empty folder, or a robench leaderboard's: never over a user's files
    board = build_board(results, aspects, by=by, reference=baseline if by == "model" or baseline != BASELINE_METHOD
                        else None, n_boot=n_boot, significance=significance)
    out.mkdir(parents=True, exist_ok=True)
    if not is_board_folder(out):  # new or empty: mark it robench's first, so a write cut short can be redone
        atomic_write_text(out / "LEADERBOARD.md", f"{BOARD_HEADING}\n\n(being written: run the same robench "
                          "leaderboard command again if this line stays)\n")
    written = {"csv": out / "leaderboard.csv", "latex": out / "leaderboard.tex", "markdown": out / "LEADERBOARD.md",
               "compute_csv": out / "compute.csv"}
    collect_results(board, out / FILES_SUBDIR)
    atomic_write_text(written["csv"], format_table(board, "csv"))
    compute = compute_table(board.records)
    atomic_write_text(written["compute_csv"], compute.to_csv(index=False))
    atomic_write_text(written["latex"], format_table(board, "latex"))
    attacks = attack_table(board)
    if not attacks.empty:
        written["attacks_csv"], written["attacks_markdown"] = out / "attacks.csv", out / "attacks.md"
        atomic_write_text(written["attacks_csv"], attacks.to_csv(index=False, float_format="%.6g"))
        atomic_write_text(written["attacks_markdown"], attack_markdown(board, attacks))
    else:  # a board without adversarial results leaves no stale attack table behind
        for stale in (out / "attacks.csv", out / "attacks.md"):
            stale.unlink(missing_ok=True)
    attack_tables = set(zip(attacks["task"], attacks["model"], strict=True)) if not attacks.empty else set()
    cards: dict[tuple[str, str], set[str]] = {}
    for rec in board.records:
        if rec.evaluator == ADVERSARIAL:
            cards.setdefault((rec.task, rec.model), set()).add(threat_card(rec)[0])
    worst_case = {key: NO_CARD not in ids for key, ids in cards.items()}
    cross = cross_model_table(board.frame, board.aspects, board.baseline)
    written_cross = out / "cross_model.csv"
    if not cross.empty:
        written["cross_model_csv"] = written_cross
        atomic_write_text(written_cross, cross_model_csv(cross))
    else:  # a board without two models of one task leaves no stale summary behind
        written_cross.unlink(missing_ok=True)

    figures: dict[tuple[str, str], list[Path]] = {}
    artefacts: dict[tuple[str, str], Path] = {}
    notes: list[str] = []
    if plots:
        from robench.report.figures import collect_artifacts, plot_leaderboard

        figures = plot_leaderboard(board, out / "plots")
        artefacts, notes = collect_artifacts(board.records, out / "artifacts")
        if any(p.stem.endswith(("-reliability", "-roc")) for paths in figures.values() for p in paths):
            notes = []  # the board draws the calibration and anomaly curves itself

    written["legend"] = out / LEGEND_FILE
    atomic_write_text(written["legend"], legend_markdown(board))
    lines = ["# robench leaderboard", "",
             f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {len(board.records)} result files "
             + (f"(+{len(board.excluded_records)} excluded, see below) " if board.excluded_records else "")
             + f"({board.source}).", "", legend(board), ""]
    note = excluded_note(board)
    if note:
        lines += [note, ""]
    for note in data_notes(board):
        lines += [note, ""]
    tables = table_rows(board, "markdown")
    gains = improvement_table(board)
    detectors = detector_table(board)
    fits = detector_table(board, FITS)
    per_set = per_set_table(board)
    for key, (headers, rows) in tables.items():
        lines += [f"## {group_title(*key)}", "", markdown_table(headers, rows), ""]
        lines += verdict_lines(board, *key)
        lines += _tuned_lines(board, *key)
        lines += _compute_lines(compute, *key)
        attack = next((a for a in board.aspects if a.evaluator == ADVERSARIAL and a.metric == "accuracy_under_attack"),
                      None)
        if key in attack_tables and attack is not None:
            what = ("the worst case over the attack recipes (an example counts as robust only if every recipe failed "
                    "to flip it)" if worst_case.get(key) else "as each adversarial result file defines it (some were "
                    "written before threat-model cards)")
            lines += [f"{attack.label}: {what}; {preset_phrase(board, *key)} Per recipe, with success rates and "
                      "Wilson 95% intervals: [attacks.md](attacks.md).", ""]
        lines += adversarial_aspect_lines(board, *key)
        if gains.get(key) and gains[key][1]:
            lines += [f"Change against {baseline} per column (Δ: a gain as a share of {baseline}'s room to the ideal "
                      "value, a loss as a share of its distance from the worst; direction-aware):", "",
                      markdown_table(*gains[key]), ""]
        if per_set.get(key):
            lines += [f"ECE per set (percent, mean over seeds, after temperature scaling by "
                      f"{calibration_phrase(board, *key)}):", "", markdown_table(*per_set[key]), ""]
        if fits.get(key):
            lines += ["ECE per temperature fit (percent, mean over seeds; each fit's temperature on the same split and "
                      "the same sets; ‡ on the ECE column: the sign against "
                      f"{baseline} depends on the fit, so no verdict):", "", markdown_table(*fits[key]), ""]
        if detectors.get(key):
            lines += ["OOD detection per detector (AUROC, percent; the AUROC column is the headline detector, MSP; "
                      f"‡ in the table: the sign against {baseline} depends on the detector, so no verdict):", "",
                      markdown_table(*detectors[key]), ""]
        lines += _regulariser_lines(board, *key)
        for fig in figures.get(key, []):
            lines += [f"![{fig.stem}]({fig.relative_to(out).as_posix()})", ""]
        if key in artefacts:
            folder = artefacts[key].relative_to(out).as_posix() + "/"
            lines += [f"Per-run figures (each run's own, as its evaluators drew them, per method and seed): "
                      f"[{folder}]({folder})", ""]
    threat_models: dict[str, dict[str, str]] = {}
    for (task, model), ids in cards.items():
        threat_models.setdefault(task, {})[model] = ", ".join(sorted(ids))
    lines += cross_model_lines(cross, baseline, threat_models)
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    lines += [f"Files: [{LEGEND_FILE}]({LEGEND_FILE}) (the full legend), [leaderboard.csv](leaderboard.csv) "
              "(every number), [leaderboard.tex](leaderboard.tex) "
              "(LaTeX booktabs), [compute.csv](compute.csv) (training and evaluation minutes per table and "
              "evaluator), "
              + ("[attacks.md](attacks.md) / [attacks.csv](attacks.csv) (each attack recipe), " if attack_tables else "")
              + ("[cross_model.csv](cross_model.csv) (each method's change on every model), " if not cross.empty else "")
              + f"[{FILES_SUBDIR}/]({FILES_SUBDIR}/) (the result files this board is built from: "
              f"`robench leaderboard --results {out.as_posix()}/{FILES_SUBDIR} --out DIR` rebuilds it).", ""]
    atomic_write_text(written["markdown"], "\n".join(lines))
    return board, written
