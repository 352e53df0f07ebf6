"""Adversarial robustness: TextAttack recipes on a seeded sample, plus static adversarial sets.

Headline ``accuracy_under_attack`` is the mean over recipes; ``recipes`` holds each recipe's
TextAttack summary. ``transfer_accuracy`` is the mean accuracy on the task's static
``adversarial:*`` sets (absent when the task has none). Each recipe's per-example log is an
artifact (``artifacts/attack-<recipe>-...jsonl``); an interrupted evaluation resumes from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robench.evaluators.base import EvalOutput, Evaluator, register_evaluator
from robench.results import MetricSpec

DEFAULT_RECIPES = ("deepwordbug", "textfooler", "pwws")


def attack_log_name(recipe: str, n: int | None, seed: int, query_budget: int | None) -> str:
    qb = "inf" if query_budget is None else str(query_budget)
    return f"attack-{recipe}-n{n if n is not None else 'all'}-seed{seed}-qb{qb}.jsonl"


def make_wrapper(ctx):
    from robench.attacks.wrapper import RobenchModelWrapper

    return RobenchModelWrapper(ctx.model, ctx.tokenizer, max_length=ctx.max_length, device=ctx.device,
                               precision=ctx.precision, batch_size=min(int(getattr(ctx, "batch_size", 64)), 64))


def attack_recipe(ctx, recipe: str, *, n: int | None, seed: int, query_budget: int | None, wrapper=None,
                  log_path: Path | None = None, max_examples: int | None = None) -> tuple[dict[str, Any], list[dict], Path]:
    """Run one recipe on the attack split of a context; returns (summary, records, log path)."""
    from robench.attacks.recipes import build_attack
    from robench.attacks.runner import run_attack, sample_indices, summarize

    key = ctx.task.attack_split
    texts, labels = ctx.texts(key), ctx.labels(key)
    wrapper = wrapper or make_wrapper(ctx)
    attack = build_attack(recipe, wrapper, query_budget=query_budget, device=ctx.device)
    indices = sample_indices(len(texts), n, seed)
    log_path = log_path or ctx.artifact(attack_log_name(recipe, n, seed, query_budget))
    header = {"recipe": recipe, "split": key, "data": ctx.data.fingerprint(key), "n": n,
              "query_budget": query_budget, "weights": ctx.run.get("weights_fingerprint"),
              "precision": ctx.precision, "max_length": ctx.max_length}
    records = run_attack(attack, texts, labels, indices=indices, log_path=log_path, header=header, seed=seed,
                         max_examples=max_examples)
    return summarize(records), records, log_path


@register_evaluator("adversarial", quick=False, aliases=("attack",))
class Adversarial(Evaluator):
    description = "TextAttack recipes (deepwordbug, textfooler, pwws; offline) + static adversarial sets"
    aspect = "adversarial"
    metrics = (
        MetricSpec("accuracy_under_attack", "higher", aspect, headline=True, column="attack", label="Attack acc",
                   short="Atk"),
        MetricSpec("transfer_accuracy", "higher", aspect, headline=True, column="transfer", label="Transfer acc",
                   short="Trans"),
        MetricSpec("attack_success_rate", "lower", aspect),
        MetricSpec("original_accuracy", "higher", aspect),
        MetricSpec("recipes.*.accuracy_under_attack", "higher", aspect),
        MetricSpec("recipes.*.original_accuracy", "higher", aspect),
        MetricSpec("recipes.*.attack_success_rate", "lower", aspect),
        MetricSpec("recipes.*", "none", aspect),  # queries, perturbed-word share, counts, seconds
        MetricSpec("transfer.*", "higher", aspect),
    )

    def __init__(self, recipes: list[str] | tuple[str, ...] | str | None = None, n: int | None = 100,
                 query_budget: int | None = None, seed: int = 0, **options: Any) -> None:
        if isinstance(recipes, str):
            recipes = [r.strip() for r in recipes.split(",") if r.strip()]
        self.recipes = [r.lower() for r in (recipes or DEFAULT_RECIPES)]
        self.n = None if n is None else int(n)
        self.query_budget = None if query_budget is None else int(query_budget)
        self.seed = int(seed)
        super().__init__(recipes=self.recipes, n=self.n, query_budget=self.query_budget, seed=self.seed, **options)

    def evaluate(self, ctx) -> EvalOutput:
        from robench.attacks.recipes import recipe_settings, require_recipe

        for recipe in self.recipes:  # every recipe checked before the first one runs
            require_recipe(recipe)
        wrapper = make_wrapper(ctx)  # shared: its score cache serves every recipe
        per_recipe: dict[str, dict[str, Any]] = {}
        artifacts: list[str] = []
        for recipe in self.recipes:
            summary, _records, log = attack_recipe(ctx, recipe, n=self.n, seed=self.seed,
                                                   query_budget=self.query_budget, wrapper=wrapper)
            per_recipe[recipe] = summary
            artifacts.append(str(Path(log).relative_to(ctx.run_dir)))
        metrics: dict[str, Any] = {
            "accuracy_under_attack": float(np.mean([m["accuracy_under_attack"] for m in per_recipe.values()])),
            "attack_success_rate": float(np.nanmean([m["attack_success_rate"] for m in per_recipe.values()]))
            if any(m["num_successful"] + m["num_failed"] for m in per_recipe.values()) else float("nan"),
            "original_accuracy": float(np.mean([m["original_accuracy"] for m in per_recipe.values()])),
            "recipes": per_recipe,
        }
        transfer: dict[str, float] = {}
        for name in ctx.task.set_names("adversarial"):
            key = f"adversarial:{name}"
            preds = ctx.predict(key)
            transfer[name] = float(np.mean(preds.logits.argmax(-1) == ctx.labels(key)))
        if transfer:
            metrics["transfer_accuracy"] = float(np.mean(list(transfer.values())))
            metrics["transfer"] = transfer
        keys = [ctx.task.attack_split, *[f"adversarial:{n}" for n in ctx.task.set_names("adversarial")]]
        settings = {"recipe_settings": {r: recipe_settings(r) for r in self.recipes},
                    "attack_split": ctx.task.attack_split}
        details = {"textfooler": "GloVe 6B 50d neighbours + MiniLM sentence encoder (USE substitute); "
                                 "no part-of-speech constraint (no offline tagger)"} if "textfooler" in self.recipes else {}
        return EvalOutput(metrics=metrics, details=details, data=ctx.data_info(keys), settings=settings,
                          artifacts=artifacts)
