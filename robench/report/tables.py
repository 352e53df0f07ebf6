"""The board as text: Markdown, LaTeX (booktabs), CSV, and a terminal table that fits its width;
the attack table (per recipe and worst case, with Wilson intervals; its stored examples with the word
swaps marked and its human-audit lines); the excluded-runs note.

One table per (task, model): every comparison on the board is within such a group
(:mod:`robench.report.board`), and each table's heading names both (:func:`group_title`).

Conventions. Headline metrics lie in [0, 1] and are shown in percent. Best value per column in
bold (none where all tie); ``*`` p < 0.05, ``**`` p < 0.01 against the baseline method, Holm-adjusted
over the tested columns of the method's row (``<key>_p_holm``); ``†`` a column tested for other
methods but not for this one (its or the baseline's results lack per-example data).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from robench.errors import ConfigError
from robench.report.aspects import Column
from robench.report.board import (
    ADVERSARIAL,
    DETECTORS,
    MODELS_GROUP,
    Board,
    example_units,
    flagged,
    threat_card,
)
from robench.report.stats import (
    hierarchical_bootstrap,
    outcome_sets,
    paired_bootstrap,
    significance_marker,
    wilson_interval,
)

DETECTOR_DEPENDENT = "‡"  # a cell whose sign against the baseline differs across detectors / temperature fits
EXTRA_HEADERS = ["better / worse", "rank", "Δ vs vanilla", "cost ×"]
EXTRA_SHORT = ["+/-", "rank", "Δ", "cost"]


def _is_best(frame: pd.DataFrame, i, aspect: Column) -> bool:
    col = frame[f"{aspect.key}_mean"].dropna()
    if len(col) < 2 or col.max() == col.min() or not np.isfinite(frame.at[i, f"{aspect.key}_mean"]):
        return False  # nothing to single out
    best = col.max() if aspect.higher_is_better else col.min()
    return bool(np.isclose(frame.at[i, f"{aspect.key}_mean"], best, rtol=0, atol=1e-12))


UNTESTED = "†"


def untested(board: Board, row: pd.Series, aspect: Column) -> bool:
    """A cell that should carry a test against the baseline and does not (see :attr:`Board.untested`)."""
    return (row["task"], row["model"], row["method"], aspect.key) in board.untested


def _cell(frame: pd.DataFrame, i, aspect: Column, fmt: str, digits: int, std: bool = True,
          dagger: bool = False) -> str:
    mean = frame.at[i, f"{aspect.key}_mean"]
    if not np.isfinite(mean):
        return "–" if fmt != "latex" else "--"
    spread = frame.at[i, f"{aspect.key}_std"]
    mark = UNTESTED if dagger else significance_marker(frame.at[i, f"{aspect.key}_p_holm"])
    if f"{aspect.key}_choice_dependent" in frame and flagged(frame.at[i, f"{aspect.key}_choice_dependent"]):
        mark += DETECTOR_DEPENDENT
    best = _is_best(frame, i, aspect)
    value = f"{mean * 100:.{digits}f}"
    spread = f"{spread * 100:.{digits}f}" if std and np.isfinite(spread) else None
    if fmt == "latex":
        value = rf"\textbf{{{value}}}" if best else value
        text = value + (rf" {{\scriptsize $\pm$ {spread}}}" if spread else "")
        mark = r"\dagger" if dagger else mark.replace(DETECTOR_DEPENDENT, r"\ddagger")
        return text + (f"$^{{{mark}}}$" if mark else "")
    text = value + (f" ± {spread}" if spread else "")
    if fmt == "markdown":
        text = f"**{text}**" if best else text
        return text + mark.replace("*", r"\*")
    return text + mark  # plain (terminal)


def _extra_cells(row: pd.Series, baseline: str, short: bool = False) -> list[str]:
    imp, ratio = row["avg_improvement"], row["cost_ratio"]
    ref = "ref" if short else "0 (ref)"
    verdicts = "ref" if row["method"] == baseline else f"{int(row['better'])} / {int(row['worse'])}"
    return [
        verdicts,
        f"{int(row['rank'])}" if np.isfinite(row["rank"]) else "–",
        ref if row["method"] == baseline else (f"{imp * 100:+.1f}%" if np.isfinite(imp) else "–"),
        f"{ratio:.2f}×" if np.isfinite(ratio) else "–",
    ]


def group_title(task: str, model: str) -> str:
    """The heading of one (task, model) table, the same in every file and in the terminal."""
    return f"{task} (models)" if model == MODELS_GROUP else f"{task} (model {model})"


def table_groups(frame: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    """The frame's (task, model) groups, sorted by task then model, each in the frame's row order."""
    return [((str(task), str(model)), sub) for (task, model), sub in frame.groupby(["task", "model"], sort=True)]


def shown_aspects(board: Board) -> list[Column]:
    """Columns with at least one value."""
    return [a for a in board.aspects if board.frame[f"{a.key}_mean"].notna().any()] or list(board.aspects)


def table_rows(board: Board, fmt: str = "text", *, digits: int = 1, std: bool = True, short: bool = False
               ) -> dict[tuple[str, str], tuple[list[str], list[list[str]]]]:
    """{(task, model): (headers, rows)} of display strings, one table per task and model (the best value
    of a column is the best within that table)."""
    chosen = shown_aspects(board)
    out = {}
    for key, sub in table_groups(board.frame):
        arrow = {True: r"$\uparrow$", False: r"$\downarrow$"} if fmt == "latex" else {True: "↑", False: "↓"}
        headers = ["model" if key[1] == MODELS_GROUP else "method", "seeds", *[f"{a.short if short else a.label} {arrow[a.higher_is_better]}" for a in chosen],
                   *(EXTRA_SHORT if short else EXTRA_HEADERS)]
        if short:
            headers = [h.replace(" ↑", "↑").replace(" ↓", "↓") for h in headers]
        if fmt == "latex":
            headers = [h.replace("Δ", r"$\Delta$").replace("×", r"$\times$") for h in headers]
        rows = []
        changed = changed_data_rows(board)
        for i, row in sub.iterrows():
            mark = CHANGED_MARK if (key[0], key[1], row["method"]) in changed else ""
            cells = [str(row["method"]) + mark, str(int(row["seeds"])),
                     *[_cell(sub, i, a, fmt, digits, std, untested(board, row, a)) for a in chosen],
                     *_extra_cells(row, board.baseline, short)]
            if fmt == "latex":
                extra = len(EXTRA_HEADERS)
                cells = [_latex_escape(cells[0]), *cells[1:-extra],
                         *[c.replace("%", r"\%").replace("×", r"$\times$").replace("–", "--") for c in cells[-extra:]]]
            rows.append(cells)
        out[key] = (headers, rows)
    return out


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#"),
                 ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        text = text.replace(a, b)
    return text


def markdown_table(headers: list[str], rows: list[list[str]], *, text: bool = False) -> str:
    """A Markdown table: numbers right-aligned after the first column, or every column left-aligned (``text``)."""
    align = ["---"] * len(headers) if text else ["---", "--:", *["--:"] * (len(headers) - 2)]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def latex_table(title: str, headers: list[str], rows: list[list[str]]) -> str:
    spec = "l" + "r" * (len(headers) - 1)
    lines = [f"% robench leaderboard: {title}. Mean over seeds (percent), {{\\scriptsize $\\pm$ std}}; best per",
             "% column in bold; $^{*}$ p<0.05, $^{**}$ p<0.01 (paired bootstrap vs vanilla over seeds and examples,",
             "% Holm-adjusted over the table's tested cells); $^{\\dagger}$ not tested for that method. rank: columns",
             "% significantly better minus worse, ties by mean rank; $^{\\ddagger}$ OOD sign depends on the detector",
             "% (no verdict). Needs \\usepackage{booktabs}.",
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
    for (task, model), (headers, rows) in table_rows(board, fmt, digits=digits).items():
        title = group_title(task, model)
        parts.append(latex_table(title, headers, rows) if fmt == "latex"
                     else f"### {title}\n\n" + markdown_table(headers, rows))
    note = excluded_note(board)
    if note:
        parts.append(f"% {note}" if fmt == "latex" else note)
    return "\n\n".join(parts) + "\n"


CHANGED_MARK = " (changed data)"


def changed_data_rows(board: Board) -> set[tuple[str, str, str]]:
    """(task, model, method) rows with a result evaluated on data that changed since training."""
    return {(r.task, r.model, r.method) for r in board.records if r.data_changed}


def data_notes(board: Board) -> list[str]:
    """Footnotes on the data behind the board: results evaluated on changed data (--allow-changed-data),
    and evaluation sets that share texts with the training set (counted when the run was trained)."""
    notes = []
    changed: dict[tuple, set[str]] = {}
    for r in board.records:
        if r.data_changed:
            changed.setdefault((r.task, r.model, r.method, r.seed), set()).update(r.data_changed)
    if changed:
        runs = "; ".join(f"{t} / {m} / {meth} / seed {seed}: {', '.join(sorted(sets))}"
                         for (t, m, meth, seed), sets in sorted(changed.items(), key=str))
        notes.append(f"Rows marked '{CHANGED_MARK.strip()}' were evaluated with --allow-changed-data on data that "
                     f"differs from what the run was trained and recorded with ({runs}); their numbers are not "
                     "comparable with the other rows.")
    overlap: dict[tuple[str, str], dict[str, set[int]]] = {}
    for r in board.records:
        for key, count in r.overlap.items():
            if count:
                overlap.setdefault((r.task, r.model), {}).setdefault(key, set()).add(int(count))
    for (task, model), sets in sorted(overlap.items()):
        shown = ", ".join(f"{key} {'/'.join(str(c) for c in sorted(counts))}" for key, counts in sorted(sets.items()))
        notes.append(f"{task} (model {model}): evaluation sets share texts with the training set (exact text, "
                     f"counted at training): {shown}; those sets' scores are inflated.")
    return notes


def excluded_note(board: Board) -> str | None:
    """One line naming the runs left off the board (their weights generated a transfer set), or None."""
    if not board.excluded:
        return None
    runs = "; ".join(f"{task} / {model} / {method} / seed {seed} ({reason})"
                     for task, model, method, seed, reason in board.excluded)
    plural = "s" if len(board.excluded) > 1 else ""
    return (f"Excluded {len(board.excluded)} run{plural} (all evaluators): {runs}. A model's accuracy on "
            "adversarial examples generated against itself is not a transfer result.")


# --------------------------------------------------------------------------------------------- attacks


def _recipes(records) -> list[str]:
    """Recipe names in first-seen order, from ``recipes.<recipe>.accuracy_under_attack`` metrics."""
    out: dict[str, None] = {}
    for rec in records:
        for metric in rec.metrics:
            parts = metric.split(".")
            if len(parts) == 3 and parts[0] == "recipes" and parts[2] == "accuracy_under_attack":
                out.setdefault(parts[1], None)
    return list(out)


def _mean(values: list[float]) -> float:
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def _examples(outcomes: list[dict[str, np.ndarray]], counts: list[float]) -> float:
    """Examples per seed: from the per-example outcomes where stored, else the declared counts."""
    if outcomes:
        return float(np.mean([sum(len(v) for v in o.values()) for o in outcomes]))
    return _mean(counts)


def _attack_p(board: Board, mine: list, theirs: list) -> float:
    """The board's own test (hierarchical, or examples with ``--significance examples``) on outcomes."""
    if board.significance == "examples":
        return paired_bootstrap(mine, theirs, board.n_boot, board.boot_seed)
    return hierarchical_bootstrap(example_units(mine, None), example_units(theirs, None), board.n_boot,
                                  board.boot_seed)


def attack_table(board: Board) -> pd.DataFrame:
    """Per (task, model, method) with adversarial results: per recipe the seed-mean accuracy under attack
    with its Wilson 95% interval (``<recipe>_acc``, ``_acc_low``, ``_acc_high``), its attack success
    rate and valid success rate (``<recipe>_success_rate``, ``<recipe>_valid_success_rate``); the worst
    case over recipes (``worst_acc``, ``worst_acc_low``, ``worst_acc_high``) and its paired-bootstrap
    p-value against the baseline method on the per-example ``robust`` outcomes (``worst_p``).
    ``n_examples``: attacked examples per seed (the interval's n); ``threat_model``: the card id."""
    # the results with live attacks (a task may score its static adversarial sets alone: recipes [])
    adv = [r for r in board.records if r.evaluator == ADVERSARIAL and "accuracy_under_attack" in r.metrics]
    recipes = _recipes(adv)
    groups: dict[tuple[str, str, str], list] = {}
    for rec in adv:
        groups.setdefault((rec.task, rec.model, rec.method), []).append(rec)
    robust = {key: [o for r in recs if (o := outcome_sets(r.details.get("robust")))] for key, recs in groups.items()}
    columns = ["task", "model", "method", "seeds", "threat_model", "n_examples"]
    for recipe in recipes:
        columns += [f"{recipe}_{s}" for s in ("acc", "acc_low", "acc_high", "success_rate", "valid_success_rate")]
    columns += ["worst_acc", "worst_acc_low", "worst_acc_high", "worst_p"]
    rows = []
    for key, recs in groups.items():
        task, model, method = key
        row: dict[str, Any] = {"task": task, "model": model, "method": method, "seeds": len({str(r.seed) for r in recs}),
                               "threat_model": ", ".join(sorted({threat_card(r)[0] for r in recs}))}
        for recipe in recipes:
            m = f"recipes.{recipe}."
            acc = _mean([r.metrics.get(m + "accuracy_under_attack", np.nan) for r in recs])
            by_recipe = [o for r in recs if isinstance(r.details.get("robust_by_recipe"), dict)
                         and (o := outcome_sets(r.details["robust_by_recipe"].get(recipe)))]
            n = _examples(by_recipe, [r.metrics.get(m + "num_examples", np.nan) for r in recs])
            row[f"{recipe}_acc"] = acc
            row[f"{recipe}_acc_low"], row[f"{recipe}_acc_high"] = wilson_interval(acc * n, n)
            row[f"{recipe}_success_rate"] = _mean([r.metrics.get(m + "attack_success_rate", np.nan) for r in recs])
            row[f"{recipe}_valid_success_rate"] = _mean([r.metrics.get(m + "valid_success_rate", np.nan) for r in recs])
        worst = _mean([r.metrics.get("accuracy_under_attack", np.nan) for r in recs])
        n = _examples(robust[key], [max((r.metrics.get(f"recipes.{x}.num_examples", np.nan) for x in recipes),
                                        default=np.nan) for r in recs])
        row["n_examples"] = n
        row["worst_acc"] = worst
        row["worst_acc_low"], row["worst_acc_high"] = wilson_interval(worst * n, n)
        base = (task, model, board.baseline)
        # as on the board: tested only where every seed of both sides stored its outcomes
        complete = all(len(robust[k]) == len(groups[k]) for k in (key, base) if k in groups)
        row["worst_p"] = (_attack_p(board, robust[key], robust.get(base, []))
                          if method != board.baseline and base in groups and complete else float("nan"))
        rows.append(row)
    frame = pd.DataFrame(rows).reindex(columns=columns)
    if frame.empty:
        return frame
    order = frame["method"].map(lambda m: (0 if m == board.baseline else 1, m))
    return frame.assign(_o=order).sort_values(["task", "model", "_o"]).drop(columns="_o").reset_index(drop=True)


def _pct(value: float, digits: int = 1) -> str:
    return f"{value * 100:.{digits}f}" if np.isfinite(value) else "–"


def _with_interval(row: pd.Series, key: str) -> str:
    value, low, high = row[key], row[f"{key}_low"], row[f"{key}_high"]
    if not np.isfinite(value):
        return "–"
    return _pct(value) + (f" [{_pct(low)}, {_pct(high)}]" if np.isfinite(low) and np.isfinite(high) else "")


def _setting(value: Any, sep: str = "<br>") -> str:
    """One threat-model card value as one table cell: a dict as ``key: value`` items, a list as its items
    (a constraint as ``name (its parameters)``), one item a line (``sep``; ``; `` inside an item), None as
    ``none``; pipes and line breaks escaped."""
    if isinstance(value, dict):
        text = sep.join(f"{k}: {_setting(v, '; ')}" for k, v in value.items()) or "–"
    elif isinstance(value, list | tuple):
        items = []
        for item in value:
            if isinstance(item, dict) and "constraint" in item:
                rest = {k: v for k, v in item.items() if k != "constraint"}
                items.append(f"{item['constraint']}" + (f" ({_setting(rest, '; ')})" if rest else ""))
            else:
                items.append(_setting(item, "; "))
        text = sep.join(items) or "–"
    elif value is None:
        text = "none"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def threat_card_lines(card: dict[str, Any]) -> list[str]:
    """A threat-model card as Markdown: a table of its settings (one row per field), a table of its recipes
    (one row per recipe setting, one column per recipe) where the card describes them, and the card itself
    as JSON in a collapsed block (machine-readable; ``attacks.csv``'s ``threat_model`` column names its id)."""
    if not card:
        return ["Threat model: none recorded (result files written before threat-model cards).", ""]
    recipes = card.get("recipes") if isinstance(card.get("recipes"), dict) else {}
    general = [[str(k).replace("_", " "), _setting(v)] for k, v in card.items()
               if k != "card_id" and not (k == "recipes" and recipes)]
    lines = [f"Threat model (card `{card.get('card_id', '(no id)')}`):", "",
             markdown_table(["setting", "value"], general, text=True), ""]
    if recipes:
        blocks = {str(r): (b if isinstance(b, dict) else {"setting": b}) for r, b in recipes.items()}
        fields = list(dict.fromkeys(f for b in blocks.values() for f in b))
        rows = [[str(f).replace("_", " "), *[_setting(b[f]) if f in b else "–" for b in blocks.values()]]
                for f in fields]
        lines += ["Recipes:", "", markdown_table(["recipe setting", *blocks], rows, text=True), ""]
    lines += ["<details><summary>The threat-model card as JSON</summary>", "", "```json",
              json.dumps(card, sort_keys=True, default=str), "```", "", "</details>", ""]
    return lines


PRESET_MEANING = {
    "valid": "only attacks that found an example passing the valid checks count (label and meaning kept, typos "
             "judged as typos; docs/evaluation.md)",
    "filtered": "an upper bound on vulnerability: a reading of its successes found most word swaps changed the label "
                "or the meaning",
    "recipe": "an upper bound on vulnerability: the recipes' own constraints, which let most word swaps change the "
              "label or the meaning",
}


def preset_phrase(board, task: str, model: str) -> str:
    """Names the constraint preset(s) of a table's attack column and what each means."""
    presets = sorted({str(threat_card(r)[1].get("constraints") or "unrecorded") for r in board.records
                      if r.evaluator == ADVERSARIAL and (r.task, r.model) == (task, model)})
    parts = [f"`{p}` ({PRESET_MEANING.get(p, 'see the threat model card')})" for p in presets]
    return f"constraint preset {', '.join(parts)}."


def calibration_phrase(board, task: str, model: str) -> str:
    """What a table's ECE column rests on, read from its calibration results' settings: the temperature fit,
    the set it is fitted on, and the sets the headline averages (results before version 3 followed the
    paper's protocol: the grid on validation, in-distribution ECE left out)."""
    found = set()
    for r in board.records:
        if r.evaluator != "calibration" or (r.task, r.model) != (task, model):
            continue
        st = r.settings
        method = "the paper's temperature grid" if st.get("temperature_method") == "grid" else \
            "a continuous NLL temperature fit (Guo et al. 2017)"
        sets = ("the in-distribution test set (`id`), the shift sets and the adversarial sets"
                if st.get("headline_includes_id") else
                "the shift and adversarial sets (`id`, the in-distribution test set, is not in it)")
        found.add(f"{method} on the `{st.get('temperature_fit_set', 'validation')}` split; the ECE column averages "
                  f"{sets}, one weight per set (protocol `{st.get('protocol', 'paper')}`)")
    if len(found) > 1:
        return "the results of this table used different calibration protocols, so their ECE is not comparable: " + \
            "; ".join(sorted(found))
    return next(iter(found), "")


def attack_markdown(board: Board, frame: pd.DataFrame | None = None) -> str | None:
    """The attack table as Markdown, one section per (task, model) with its threat model; None without
    adversarial results. Under each table a line per run whose result holds a human audit (``robench
    audit``), and after the threat model the stored examples of one run (``details.examples``); one line
    at the end when no result stores examples (files written before they were stored)."""
    frame = attack_table(board) if frame is None else frame
    if frame.empty:
        return None
    recipes = [c[: -len("_valid_success_rate")] for c in frame.columns if c.endswith("_valid_success_rate")]
    cards = {}
    for rec in board.records:
        if rec.evaluator == ADVERSARIAL:
            cards.setdefault((rec.task, rec.model), threat_card(rec)[1])
    sources: dict[tuple[str, str], dict] = {}
    for rec in [*board.records, *board.excluded_records]:
        declared = rec.settings.get("transfer_sources") if rec.evaluator == ADVERSARIAL else None
        if isinstance(declared, dict):
            sources.setdefault((rec.task, rec.model), {}).update(declared)
    lines = ["# robench attacks", "",
             "Accuracy under attack in percent, mean over seeds, with the Wilson 95% interval over the attacked "
             "examples (n per seed; it covers the sampling of examples, not of seeds). succ / valid: attack success "
             "rate and the share of attacked examples whose successful adversarial example also passes the strict "
             "validity check (percent). Worst case: an example counts as robust only if every recipe failed to flip "
             f"it; this is the leaderboard's Attack column. p: the board's test ({board.significance}; "
             f"{board.n_boot} resamples) of the worst-case per-example outcomes against {board.baseline}, examples "
             "paired by sample id; raw, not adjusted (the leaderboard's markers are Holm-adjusted over the table's "
             "tested cells).", ""]
    adv = [rec for rec in board.records if rec.evaluator == ADVERSARIAL]
    any_examples = any(_examples_of(rec) for rec in adv)
    if any(_audited(rec) for rec in adv):
        lines += [AUDIT_LEGEND, ""]
    for key, sub in table_groups(frame):
        headers = ["model" if key[1] == MODELS_GROUP else "method", "seeds", "n"]
        for recipe in recipes:
            headers += [f"{recipe} acc [95% CI]", f"{recipe} succ / valid"]
        headers += ["worst case [95% CI]", f"p vs {board.baseline}"]
        rows = []
        for _, row in sub.iterrows():
            cells = [str(row["method"]), str(int(row["seeds"])),
                     f"{row['n_examples']:.0f}" if np.isfinite(row["n_examples"]) else "–"]
            for recipe in recipes:
                cells += [_with_interval(row, f"{recipe}_acc"),
                          f"{_pct(row[f'{recipe}_success_rate'])} / {_pct(row[f'{recipe}_valid_success_rate'])}"]
            p = row["worst_p"]
            cells += [_with_interval(row, "worst_acc"),
                      "ref" if row["method"] == board.baseline else (f"{p:.3g}" if np.isfinite(p) else "–")]
            rows.append(cells)
        group = [r for r in adv if (r.task, r.model) == key]
        lines += [f"## {group_title(*key)}", "", markdown_table(headers, rows), ""]
        lines += audit_lines(group, board.baseline)
        lines += [f"Accuracy under attack of this table: {preset_phrase(board, *key)}", ""]
        lines += threat_card_lines(cards.get(key) or {})
        for name, source in sorted(sources.get(key, {}).items()):
            if isinstance(source, dict):
                from robench.evaluators.adversarial import source_fingerprints

                lines += [f"Transfer set `{name}`: generated against weights "
                          + ", ".join(f"`{f}`" for f in source_fingerprints(source) or ["unknown"])
                          + (f" ({source['description']})" if source.get("description") else ""), ""]
        if any_examples:
            lines += examples_lines(group, board.baseline)
    if not any_examples:
        lines += [NO_EXAMPLES, ""]
    note = excluded_note(board)
    if note:
        lines += [note, ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- the audit trail

NO_EXAMPLES = ("Examples: no result file records adversarial examples (written before robench stored five per "
               "recipe); re-evaluate a run ('robench eval --suite adversarial --force') to show them here.")
AUDIT_LEGEND = ("Human-validated (audit): raters judged a seeded sample of a run's successful adversarial examples "
                "('robench audit'); one is valid when the gold label still holds and the meaning is kept (4 or 5 of "
                "5). Valid share with its Wilson 95% interval over the rated examples; validated success rate = "
                "attack success rate (worst case over recipes) x valid share, its interval scaled alike.")
_WORD = re.compile(r"[\w'*@-]+")  # a word as TextAttack splits a text: letters, digits, _ ' - * @
_EDGE = "'-_*@"  # stripped from a word's ends, as TextAttack does
_MD_SPECIAL = re.compile(r"([\\`*_~\[\]<>|#])")


def _escape(text: str) -> str:
    """Plain text as Markdown that renders as itself, on one line (runs of white space as one space)."""
    return _MD_SPECIAL.sub(r"\\\1", re.sub(r"\s+", " ", str(text)))


def _md(text: str) -> str:
    return _escape(text).strip()


def _bare(word: str) -> str:
    return word.strip(_EDGE).lower()


def marked_text(original: str, perturbed: str, swaps: list) -> str:
    """The perturbed text as Markdown with each swapped word shown as ``~~old~~ **new**``. ``swaps``: the
    (old, new) pairs in text order (``validity.word_swaps``, lower case); each is found at the next word of
    the perturbed text that reads ``new``, preferring the position where the original reads ``old`` (word
    swaps keep the word count); a swap not found is left unmarked."""
    words = list(_WORD.finditer(perturbed))
    before = list(_WORD.finditer(original))
    aligned = len(before) == len(words)
    marks: dict[int, str] = {}
    start = 0
    for pair in swaps:
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            continue
        old, new = str(pair[0]), str(pair[1]).lower()
        found = [p for p in range(start, len(words)) if _bare(words[p].group()) == new]
        there = [p for p in found if aligned and _bare(before[p].group()) == old.lower()]
        pick = (there or found or [None])[0]
        if pick is None:
            continue
        marks[pick] = before[pick].group().strip(_EDGE) if pick in there else old
        start = pick + 1
    out, last = [], 0
    for p, m in enumerate(words):
        if p in marks:
            out += [_escape(perturbed[last:m.start()]), f"~~{_md(marks[p])}~~ **{_md(m.group())}**"]
            last = m.end()
    out.append(_escape(perturbed[last:]))
    return "".join(out).strip()


def example_line(example: dict[str, Any]) -> str:
    """One stored example (``details.examples``) as one Markdown list item: index, gold label, the prediction
    flip, and the perturbed text with its swaps marked."""
    def show(value: Any) -> str:
        return "?" if value is None else _md(str(value))

    text = marked_text(str(example.get("original", "")), str(example.get("perturbed", "")),
                       example.get("swaps") or [])
    return (f"- example {show(example.get('index'))} (gold {show(example.get('label'))}; prediction "
            f"{show(example.get('original_prediction'))} → {show(example.get('perturbed_prediction'))}): {text}")


def _examples_of(rec) -> dict[str, list]:
    found = rec.details.get("examples")
    return {str(r): v for r, v in found.items() if isinstance(v, list)} if isinstance(found, dict) else {}


def _run_order(baseline: str):
    """Sort key of a table's results: the baseline method first, then by method, then the lowest seed."""
    def key(rec) -> tuple:
        seed = rec.seed
        return (rec.method != baseline, rec.method, (0, seed, "") if isinstance(seed, int) else (1, 0, str(seed)))
    return key


def examples_lines(records: list, baseline: str) -> list[str]:
    """The "Examples" subsection of a (task, model) section: per recipe the stored examples of one run (the
    baseline method's if it has them, else the first method by name; its lowest seed)."""
    runs = sorted((r for r in records if _examples_of(r)), key=_run_order(baseline))
    lines = ["### Examples", ""]
    if not runs:
        return [*lines, "None recorded for this table's runs (result files written before robench stored them).", ""]
    rec = runs[0]
    lines += [f"Successful adversarial examples of {_md(rec.method)} seed {rec.seed} (up to five per recipe, a seeded "
              "draw stored in the result); a swapped word shows as ~~original~~ **replacement**.", ""]
    for recipe, examples in _examples_of(rec).items():
        lines += [f"**{_md(recipe)}**", ""]
        shown = [example_line(e) for e in examples if isinstance(e, dict)]
        lines += [*(shown or ["- no successful example"]), ""]
    return lines


def _audited(rec) -> bool:
    return "audit.rated" in rec.metrics


def _share(metrics: dict[str, float], prefix: str) -> str:
    """``70.0% [39.7, 89.2]``: a share in percent with its interval."""
    value = metrics.get(prefix, float("nan"))
    low, high = metrics.get(f"{prefix}_low", float("nan")), metrics.get(f"{prefix}_high", float("nan"))
    return f"{_pct(value)}%" + (f" [{_pct(low)}, {_pct(high)}]" if np.isfinite(low) and np.isfinite(high) else "")


def audit_lines(records: list, baseline: str) -> list[str]:
    """One line per run of a (task, model) section whose adversarial result holds an ``audit`` block (``robench
    audit --ratings``): valid share with its interval, how many were rated, the human-validated success rate
    and the valid share per recipe. Nothing when no result has one."""
    lines = []
    for rec in sorted((r for r in records if _audited(r)), key=_run_order(baseline)):
        m = rec.metrics
        recipes = sorted({k.split(".")[2] for k in m if k.startswith("audit.recipes.") and k.endswith(".rated")})
        per = ", ".join(f"{_md(r)} {_pct(m.get(f'audit.recipes.{r}.valid_share', float('nan')))}% of "
                        f"{m.get(f'audit.recipes.{r}.rated', 0):.0f}" for r in recipes)
        lines += [f"{_md(rec.method)} seed {rec.seed}, human-validated (audit): valid share "
                  f"{_share(m, 'audit.valid_share')} of {m['audit.rated']:.0f} rated; validated success rate "
                  f"{_share(m, 'audit.validated_success_rate')}" + (f" (per recipe: {per})" if per else ""), ""]
    return lines


def detector_table(board: Board, choices: Sequence[str] = DETECTORS) -> dict[tuple[str, str], tuple[list[str], list[list[str]]]]:
    """{(task, model): (headers, rows)}: each column's value per free choice (percent, mean over seeds): the OOD
    column's AUROC per detector (``choices=DETECTORS``) or the ECE column's per temperature fit (``FITS``), with
    whether the sign against the baseline depends on the choice."""
    out = {}
    for key, sub in table_groups(board.frame):
        for a in shown_aspects(board):
            dets = [c for c in sub.columns if c.startswith(f"{a.key}_") and c.endswith("_mean") and
                    c[len(a.key) + 1:-5] in choices and sub[c].notna().any()]
            if not dets:
                continue
            names = [c[len(a.key) + 1:-5] for c in dets]
            what = "detector" if choices == DETECTORS else "temperature fit"
            headers = ["method", *names, "sign vs " + board.baseline]
            rows = []
            for _, row in sub.iterrows():
                dependent = row.get(f"{a.key}_choice_dependent")
                verdict = ("ref" if row["method"] == board.baseline else
                           f"depends on the {what}" if flagged(dependent) else f"the same for every {what}")
                rows.append([str(row["method"]), *[f"{row[c] * 100:.1f}" if np.isfinite(row[c]) else "–" for c in dets],
                             verdict])
            out[key] = (headers, rows)
    return out


def per_set_table(board: Board) -> dict[tuple[str, str], tuple[list[str], list[list[str]]]]:
    """{(task, model): (headers, rows)}: an ECE column per scored set (percent, mean over seeds), the
    in-distribution test set first (it is not part of the column's average)."""
    out = {}
    for key, sub in table_groups(board.frame):
        for a in shown_aspects(board):
            cols = sorted((c for c in sub.columns if c.startswith(f"{a.key}_set_") and sub[c].notna().any()),
                          key=lambda c: (not c.endswith("_set_id_mean"), c))
            if cols:
                names = [c[len(f"{a.key}_set_"):-len("_mean")] for c in cols]
                rows = [[str(row["method"]), *[f"{row[c] * 100:.1f}" if np.isfinite(row[c]) else "–" for c in cols]]
                        for _, row in sub.iterrows()]
                out[key] = (["method", *names], rows)
    return out


def improvement_table(board: Board) -> dict[tuple[str, str], tuple[list[str], list[list[str]]]]:
    """{(task, model): (headers, rows)}: each method's bounded change against the baseline (on the same
    task and model) per aspect (percent)."""
    chosen = shown_aspects(board)
    out = {}
    for key, sub in table_groups(board.frame):
        headers = ["method", *[a.label for a in chosen], "average"]
        rows = []
        for _, row in sub[sub["method"] != board.baseline].iterrows():
            vals = [row[f"{a.key}_delta"] for a in chosen] + [row["avg_improvement"]]
            rows.append([str(row["method"]), *[f"{v * 100:+.1f}%" if np.isfinite(v) else "–" for v in vals]])
        out[key] = (headers, rows)
    return out


def terminal_tables(board: Board, width: int) -> list:
    """Rich tables, one per (task, model), that fit ``width`` columns: with ± std where it fits, else means
    only with short headers (method names are never cut)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    def build(title: str, headers: list[str], rows: list[list[str]], compact: bool) -> Table:
        note = "; std over seeds: LEADERBOARD.md" if compact else ""
        table = Table(title=f"leaderboard: {title}",
                      caption=f"* p<.05, ** p<.01 vs {board.baseline} (Holm-adjusted); † untested{note}",
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
    for key in full:
        table = build(group_title(*key), *full[key], compact=False)
        if not fits(table):
            headers, rows = compact[key]
            # "seeds" moves into the title to save a column
            seeds = sorted({r[1] for r in rows}, key=int)
            plural = "" if seeds == ["1"] else "s"
            table = build(f"{group_title(*key)} ({'/'.join(seeds)} seed{plural})", [headers[0], *headers[2:]],
                          [[r[0], *r[2:]] for r in rows], compact=True)
        tables.append(table)
    return tables
