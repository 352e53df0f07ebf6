"""The cross-model summary: does a method's change against the baseline keep its sign from one backbone
to the next?

A pure function of the board frame. For every task the board holds on two or more models, one row per
(method, aspect) and one for the average: the method's change against the baseline (bounded Δ, as on the tables) on each
model (``<key>_delta`` of that model's table, direction-aware, so positive is better for ECE too), its
Holm-adjusted p-value on that model (``<key>_p_holm``: the same family and test as the model's own
table) and whether that is significant (p_holm < 0.05), and the agreement of the signs across the task's
models: ``agree`` (all better or all worse), ``disagree``, or ``n/a`` where a model has no value or a
change of exactly 0. Nothing is compared or tested across models: each number comes from its own
(task, model) group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from robench.report.aspects import Column
from robench.report.board import BASELINE_METHOD, flagged
from robench.report.stats import significance_marker
from robench.report.tables import DETECTOR_DEPENDENT, markdown_table

AGREE, DISAGREE, NOT_COMPARABLE = "agree", "disagree", "n/a"
AVERAGE = "average"  # the aspect key of the avg_improvement row
SIGNIFICANT = 0.05  # on p_holm, as the tables' "*"
MODEL_SEP = ", "  # the ``models`` column: the task's models, the ones ``agreement`` is over


def sign_agreement(deltas: Sequence[float]) -> str:
    """``agree`` when every change has one sign, ``disagree`` when not, ``n/a`` when fewer than two are
    given or one is missing (NaN) or exactly 0 (no direction to agree with)."""
    values = [float(d) for d in deltas]
    if len(values) < 2 or any(not np.isfinite(v) or v == 0 for v in values):
        return NOT_COMPARABLE
    return AGREE if all(v > 0 for v in values) or all(v < 0 for v in values) else DISAGREE


def _significant(p: float) -> bool | None:
    return None if not np.isfinite(p) else bool(p < SIGNIFICANT)


def cross_model_table(frame: pd.DataFrame, aspects: Sequence[Column], baseline: str = BASELINE_METHOD
                      ) -> pd.DataFrame:
    """Per task with >= 2 models, per method other than the baseline, per aspect (and ``average``):
    ``<model>_delta``, ``<model>_p_holm`` and ``<model>_significant`` for every model of the board (NaN /
    empty for a model the task lacks), ``models`` (the task's models, comma-separated) and ``agreement``
    over them. Empty (no rows) when no task has two models."""
    models = sorted({str(m) for m in frame["model"]}) if len(frame) else []
    columns = ["task", "method", "aspect", "label"]
    columns += [f"{m}_{s}" for m in models for s in ("delta", "p_holm", "significant")] + ["models", "agreement"]
    rows = []
    for task, sub in frame.groupby("task", sort=True):
        task_models = sorted({str(m) for m in sub["model"]})
        if len(task_models) < 2:
            continue
        shown = [a for a in aspects if sub[f"{a.key}_mean"].notna().any()]
        cells = [(a.key, a.label, f"{a.key}_delta", f"{a.key}_p_holm") for a in shown]
        cells.append((AVERAGE, "average", "avg_improvement", None))
        methods = sorted({str(m) for m in sub["method"]} - {baseline})
        by_model = {m: sub[sub["model"] == m].set_index("method") for m in task_models}
        for method in methods:
            for key, label, delta_col, p_col in cells:
                row: dict[str, Any] = {"task": str(task), "method": method, "aspect": key, "label": label}
                deltas = []
                for m in task_models:
                    here = by_model[m]
                    present = method in here.index
                    delta = float(here.at[method, delta_col]) if present else float("nan")
                    p = float(here.at[method, p_col]) if present and p_col else float("nan")
                    # a cell whose sign depends on the OOD detector or the temperature fit carries no verdict there
                    depends = present and f"{key}_choice_dependent" in here.columns and flagged(
                        here.at[method, f"{key}_choice_dependent"])
                    row[f"{m}_delta"], row[f"{m}_p_holm"] = delta, p
                    row[f"{m}_significant"] = None if depends else _significant(p)
                    deltas.append(delta)
                row["models"], row["agreement"] = MODEL_SEP.join(task_models), sign_agreement(deltas)
                rows.append(row)
    table = pd.DataFrame(rows, columns=columns)
    flags = [c for c in columns if c.endswith("_significant")]
    # True / False / None (untested, choice-dependent, or the model lacks the task), also where a column happens to
    # hold no None
    table[flags] = table[flags].astype(object).where(table[flags].notna(), None)
    return table


def cross_model_csv(table: pd.DataFrame) -> str:
    """``cross_model.csv``'s text: every column of :func:`cross_model_table`, floats to 6 significant digits."""
    return table.to_csv(index=False, float_format="%.6g")


def cross_model_markdown(table: pd.DataFrame) -> dict[str, tuple[list[str], list[list[str]], dict[str, int]]]:
    """{task: (headers, rows, {agreement: count over the (method, aspect) rows, the averages left out})}:
    per model the change in percent with ``*`` / ``**``
    from its Holm-adjusted p-value (as in that model's table), and the signs' agreement."""
    out = {}
    for task, sub in table.groupby("task", sort=True):
        present = str(sub["models"].iloc[0]).split(MODEL_SEP)
        headers = ["method", "aspect", *present, "signs"]
        rows = []
        for _, r in sub.iterrows():
            values = []
            for m in present:
                delta, p = r[f"{m}_delta"], r[f"{m}_p_holm"]
                mark = significance_marker(p).replace("*", r"\*")
                if r[f"{m}_significant"] is None and mark:  # significant, but its sign depends on a choice
                    mark = DETECTOR_DEPENDENT
                values.append(f"{delta * 100:+.1f}%{mark}" if np.isfinite(delta) else "–")
            rows.append([r["method"], r["label"], *values, r["agreement"]])
        aspects = sub[sub["aspect"] != AVERAGE]  # the average is not counted again beside its aspects
        counts = {k: int((aspects["agreement"] == k).sum()) for k in (AGREE, DISAGREE, NOT_COMPARABLE)}
        out[str(task)] = (headers, rows, counts)
    return out


def cross_model_lines(table: pd.DataFrame, baseline: str = BASELINE_METHOD,
                      threat_models: dict[str, dict[str, str]] | None = None) -> list[str]:
    """The leaderboard's cross-model section as Markdown lines (none when no task has two models).
    ``threat_models``: {task: {model: card id}} of the adversarial results, named under the table."""
    if table.empty:
        return []
    lines = []
    for task, (headers, rows, counts) in cross_model_markdown(table).items():
        lines += [f"## Across models: {task}", "",
                  f"Δ against {baseline} on each model (as on the tables: bounded, direction-aware, positive is better; each "
                  "from that model's own table, never across models); `*` p < 0.05, `**` p < 0.01 after Holm on "
                  "that model (as in its table). signs: agree (the change has one sign on every model), disagree, "
                  "or n/a (a model has no value, or a change of exactly 0). "
                  f"Over the methods' aspects (averages aside): {counts[AGREE]} agree, {counts[DISAGREE]} disagree, "
                  f"{counts[NOT_COMPARABLE]} n/a. "
                  + (f"`{DETECTOR_DEPENDENT}`: p < 0.05, but the sign depends on the OOD detector or the temperature "
                     "fit (no verdict, as in the tables). " if any(DETECTOR_DEPENDENT in v for row in rows for v in row)
                     else "")
                  + "Every number: [cross_model.csv](cross_model.csv).", "",
                  markdown_table(headers, rows), ""]
        cards = (threat_models or {}).get(task, {})
        if len(cards) > 1:
            shown = ", ".join(f"{m}: `{c}`" for m, c in sorted(cards.items()))
            same = len(set(cards.values())) == 1
            lines += [f"Threat model of the attack columns: {'the same on every model' if same else 'differs'} "
                      f"({shown})" + ("." if same else "; each model's attack change is measured under its own "
                                                       "card, so their signs compare two different attacks."), ""]
    return lines
