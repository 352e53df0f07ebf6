"""In-distribution accuracy on the task's test set."""

from __future__ import annotations

import numpy as np

from robench.evaluators.base import EvalOutput, Evaluator, register_evaluator
from robench.results import MetricSpec, outcome_string


@register_evaluator("id", aliases=("in-distribution", "accuracy"))
class InDistribution(Evaluator):
    description = "accuracy on the task's in-distribution test set"
    aspect = "in-distribution"
    metrics = (
        MetricSpec("accuracy", "higher", aspect, headline=True, column="id", label="ID acc", short="ID",
                   per_example="correct"),
        MetricSpec("n", "none", aspect),
    )

    def evaluate(self, ctx) -> EvalOutput:
        preds = ctx.predict("test")
        labels = ctx.labels("test")
        correct = ctx.correct("test", preds.logits)
        # Per-example correctness (as a 0/1 string) lets reports run paired bootstrap tests later.
        return EvalOutput(metrics={"accuracy": float(np.mean(correct)), "n": int(len(labels))},
                          details={"correct": outcome_string(correct)},
                          data=ctx.data_info(["test"]))
