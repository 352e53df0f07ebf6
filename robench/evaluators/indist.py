"""In-distribution accuracy on the task's test set."""

from __future__ import annotations

import numpy as np

from robench.evaluators.base import EvalOutput, Evaluator, register_evaluator


@register_evaluator("id", aliases=("in-distribution", "accuracy"))
class InDistribution(Evaluator):
    description = "accuracy on the task's in-distribution test set"
    aspect = "in-distribution"

    def evaluate(self, ctx) -> EvalOutput:
        preds = ctx.predict("test")
        labels = ctx.labels("test")
        acc = float(np.mean(preds.logits.argmax(-1) == labels))
        return EvalOutput(metrics={"accuracy": acc, "n": int(len(labels))}, data=ctx.data_info(["test"]))
