"""The leaderboard, paper tables and figures: pure functions of result files.

Modules, in data-flow order (no cycles; each imports only those before it):
``aspects`` (columns, from the metric declarations in result files) -> ``stats`` (Wilson
intervals, paired bootstrap on per-example outcomes and on the ECE / AUROC metric itself, Holm's
correction, relative improvement) -> ``board`` (records -> :class:`Board`) ->
``tables`` (Markdown, LaTeX, CSV, terminal, the attack table; one table per (task, model)) -> ``cross``
(the cross-model summary: does a method's change keep its sign across models) -> ``figures``
(which figures a board shows; :mod:`robench.plots` draws every figure) -> ``write`` (the files).
Result loading lives with the result schema in :mod:`robench.results`.
"""

from robench.report.aspects import DEFAULT_ASPECTS, Column, declared_columns, resolve_aspects
from robench.report.board import (
    BASELINE_METHOD,
    MODELS_GROUP,
    Board,
    build_board,
    build_leaderboard,
    by_model,
    leaderboard,
)
from robench.report.cross import cross_model_table, sign_agreement
from robench.report.stats import (
    holm,
    metric_bootstrap,
    paired_bootstrap,
    relative_improvement,
    significance_marker,
    wilson_interval,
)
from robench.report.tables import (
    attack_table,
    excluded_note,
    format_table,
    group_title,
    improvement_table,
    table_rows,
    terminal_tables,
)
from robench.report.write import write_leaderboard
from robench.results import ResultRecord, load_results

__all__ = [
    "MODELS_GROUP",
    "build_board",
    "by_model",
    "BASELINE_METHOD", "DEFAULT_ASPECTS", "Column", "Board", "ResultRecord", "attack_table", "build_leaderboard",
    "cross_model_table", "declared_columns", "excluded_note", "format_table", "group_title", "holm",
    "improvement_table", "leaderboard", "load_results", "metric_bootstrap", "paired_bootstrap", "relative_improvement",
    "resolve_aspects", "sign_agreement", "significance_marker", "table_rows", "terminal_tables", "wilson_interval",
    "write_leaderboard",
]
