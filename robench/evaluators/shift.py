"""Distribution shift: accuracy on each of the task's shift sets vs the in-distribution test set.

Also holds the small input checks the calibration and anomaly evaluators share
(:func:`group_keys`, :func:`labelled_predictions`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robench.errors import ConfigError
from robench.evaluators.base import EvalOutput, Evaluator, register_evaluator
from robench.results import MetricSpec, outcome_string
from robench.tasks import example_key


def group_keys(ctx, group: str, evaluator: str) -> list[str]:
    """Set keys (``shift:amazon``...) of one group of the task; ConfigError when the task has none."""
    names = ctx.task.set_names(group)
    if not names:
        raise ConfigError(f"task {ctx.task.name!r} has no {group} sets, so the {evaluator!r} evaluator cannot run; "
                          f"add a '{group}:' section to the task file or drop {evaluator!r} from --suite")
    return [f"{group}:{n}" for n in names]


def checked_labels(ctx, key: str) -> np.ndarray:
    """Labels of a labelled set, checked against the task's label names (ConfigError otherwise)."""
    labels = ctx.labels(key)
    names = list(ctx.task.labels)
    if labels.size == 0:
        raise ConfigError(f"task {ctx.task.name!r}: set {key!r} is empty; check its source and limit")
    bad = labels[(labels < 0) | (labels >= len(names))]
    if bad.size:
        raise ConfigError(f"task {ctx.task.name!r}: set {key!r} has {bad.size} example(s) with label {int(bad[0])}, "
                          f"outside the task's labels {names}; fix the source's label_map")
    return labels


def checked_logits(ctx, key: str, n: int, features: bool = False):
    """Predictions of a set, checked to have one row per example and one column per task label."""
    preds = ctx.predict(key, features=features)
    k = len(ctx.task.labels)
    if preds.logits.ndim != 2 or preds.logits.shape != (n, k):
        raise ConfigError(f"set {key!r}: model output has shape {tuple(preds.logits.shape)}, expected ({n}, {k}); "
                          "the run's model does not match the task's labels")
    if not np.all(np.isfinite(preds.logits)):
        raise ConfigError(f"set {key!r}: the model produced NaN/inf logits; the run's weights are broken")
    return preds


def labelled_predictions(ctx, key: str, features: bool = False):
    """(predictions, labels) of a labelled set, both validated."""
    labels = checked_labels(ctx, key)
    return checked_logits(ctx, key, len(labels), features), labels


correct_string = outcome_string  # the evaluators' name for it


def merged_predictions(ctx, keys: list[str]) -> dict[str, Any]:
    """``{"merge_predictions": {set: {predicted: counted as}}}`` for the sets scored with merged predictions
    (the task's ``merge_predictions``), or ``{}``: a result says how its accuracies were counted."""
    merged = {k.split(":", 1)[-1]: dict(ctx.task.sets[k].merge_predictions) for k in keys
              if ctx.task.sets[k].merge_predictions}
    return {"merge_predictions": merged} if merged else {}


@register_evaluator("shift", aliases=("distribution-shift", "ood-generalization"))
class Shift(Evaluator):
    description = "accuracy under distribution shift: each shift set vs the in-distribution test set"
    aspect = "shift"
    metrics = (
        MetricSpec("mean_accuracy", "higher", aspect, headline=True, column="shift", label="Shift acc", short="Shift",
                   per_example="correct"),
        MetricSpec("id_accuracy", "higher", aspect),
        MetricSpec("drop", "lower", aspect),
        MetricSpec("accuracy.*", "higher", aspect),
        MetricSpec("n.*", "none", aspect),
    )

    def evaluate(self, ctx) -> EvalOutput:
        keys = group_keys(ctx, "shift", self.name)
        preds, labels = labelled_predictions(ctx, "test")
        id_correct = ctx.correct("test", preds.logits)
        id_acc = float(np.mean(id_correct))
        acc: dict[str, float] = {}
        correct: dict[str, str] = {}
        sizes: dict[str, int] = {}
        test_texts = {example_key(t) for t in ctx.texts("test")}
        for key in keys:
            name = key.split(":", 1)[1]
            texts = ctx.texts(key)
            if texts and all(example_key(t) in test_texts for t in texts):  # as an OOD set inside test is refused
                raise ConfigError(f"task {ctx.task.name!r}: every text of shift set {key!r} also occurs in the "
                                  "in-distribution test set; it measures no shift (its drop would read 0): give it "
                                  "another source or part")
            p, y = labelled_predictions(ctx, key)
            c = ctx.correct(key, p.logits)
            acc[name] = float(np.mean(c))
            correct[name] = correct_string(c)
            sizes[name] = int(len(y))
        mean = float(np.mean(list(acc.values())))
        warnings = [f"shift set {n!r} has only {s} examples; its accuracy is noisy" for n, s in sizes.items() if s < 50]
        return EvalOutput(
            metrics={"mean_accuracy": mean, "id_accuracy": id_acc, "drop": id_acc - mean, "accuracy": acc,
                     "n": sizes},
            details={"correct": correct, "id_correct": correct_string(id_correct)},
            data=ctx.data_info(["test", *keys]),
            settings={"headline": "mean accuracy over shift sets (unweighted)", **merged_predictions(ctx, keys)},
            warnings=warnings,
        )
