"""Leaderboard columns ("aspects"), resolved from the metric declarations that result files carry.

An evaluator declares its headline metrics (``robench.results.MetricSpec``: column key, label,
direction, per-example outcomes); a column here is one such declaration. Nothing is inferred
from a metric's name: a custom column ``evaluator.metric`` takes its direction from the
evaluator's declaration, and an undeclared or directionless metric is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from robench.configs import name_list
from robench.errors import ConfigError
from robench.results import ResultRecord

# The paper's aspects, in its order: the default columns (where some result declares them).
DEFAULT_ASPECTS = ("id", "shift", "attack", "transfer", "adv", "ece", "auroc")  # adv: combine: mean


@dataclass(frozen=True)
class Column:
    """A board column: one declared headline metric (or ``evaluator.metric``). "Aspect" elsewhere means
    the robustness aspect an evaluator measures (``Evaluator.aspect``, ``MetricSpec.aspect``); ``--aspects``
    picks the board's columns by key."""

    key: str  # column key (--aspects, DataFrame columns): "id", "ece", or "evaluator.metric"
    evaluator: str
    metric: str  # flattened metric name inside the evaluator's result
    label: str  # header in files ("ID acc")
    short: str  # header in the terminal ("ID")
    higher_is_better: bool = True
    per_example: str | None = None  # details key with per-example data: the paired test runs on it
    statistic: str | None = None  # how the metric is recomputed from that data (MetricSpec.statistic)

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    @property
    def bootstrap(self) -> bool:
        """Tested against the baseline (where both sides' results carry the per-example data)."""
        return self.per_example is not None

    @property
    def accuracy_like(self) -> bool:
        """Per-example 0/1 outcomes whose mean is the metric: the column also gets a Wilson interval."""
        return self.per_example is not None and self.statistic is None


def declared_columns(records: Sequence[ResultRecord]) -> dict[str, Column]:
    """Every headline column some result declares, by key, in first-seen order."""
    out: dict[str, Column] = {}
    for rec in records:
        for spec in rec.specs:
            if not spec.headline:
                continue
            aspect = Column(spec.column, rec.evaluator, spec.name, spec.label, spec.short or spec.label,
                            spec.direction != "lower", spec.per_example, spec.statistic)
            old = out.get(aspect.key)
            if old is not None and (old.evaluator, old.metric, old.higher_is_better) != (
                    aspect.evaluator, aspect.metric, aspect.higher_is_better):
                raise ConfigError(f"two results declare leaderboard column {aspect.key!r} differently "
                                  f"({old.evaluator}.{old.metric} and {aspect.evaluator}.{aspect.metric}; "
                                  f"see {rec.path}); re-evaluate the older runs with one robench version")
            if old is not None and old.per_example is None and aspect.per_example is not None:
                # an older evaluator version stored no per-example data: the column is tested where a
                # result declares it, and each result is checked against this declaration (board.example_data)
                out[aspect.key] = aspect
            out.setdefault(aspect.key, aspect)
    return out


def _custom(key: str, records: Sequence[ResultRecord]) -> Column:
    evaluator, metric = key.split(".", 1)
    directions = {rec.direction(metric) for rec in records if rec.evaluator == evaluator and metric in rec.metrics}
    if not directions:
        raise ConfigError(f"no result has metric {metric!r} of evaluator {evaluator!r} (column {key!r}); "
                          "see a result file's metrics for the names")
    if len(directions) > 1 or "none" in directions:
        raise ConfigError(f"column {key!r}: the evaluator declares no better/worse direction for it "
                          f"(declared: {', '.join(sorted(directions))}); pick a metric with a direction")
    per_example = None
    return Column(key, evaluator, metric, key, key, directions.pop() == "higher", per_example)


def resolve_aspects(spec: str | Sequence[str] | None, records: Sequence[ResultRecord]) -> list[Column]:
    """``None`` -> the default columns that some result declares; else a comma list / sequence of
    column keys, ``all``, or ``evaluator.metric`` names."""
    columns = declared_columns(records)
    if spec is None:
        return [columns[k] for k in DEFAULT_ASPECTS if k in columns]
    keys = [key for item in ([spec] if isinstance(spec, str) else spec) for key in name_list(str(item))]
    if not keys:
        raise ConfigError("empty --aspects; give aspect names separated by commas, e.g. id,shift,ece")
    out: list[Column] = []
    for key in keys:
        if key == "all":
            out.extend(columns.values())
        elif key in columns:
            out.append(columns[key])
        elif "." in key:
            by_name = {f"{a.evaluator}.{a.metric}": a for a in columns.values()}
            out.append(by_name[key] if key in by_name else _custom(key, records))
        else:
            known = ", ".join(columns) or "(none: no result declares a headline metric)"
            raise ConfigError(f"unknown aspect {key!r}; the results declare: {known} "
                              "(or name any evaluator.metric, such as shift.accuracy.amazon)")
    return list(dict.fromkeys(out))
