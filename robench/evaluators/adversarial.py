"""Adversarial robustness: TextAttack recipes on a seeded sample, plus static (transfer) adversarial sets.

Headline ``accuracy_under_attack`` is robust accuracy under the WORST CASE over recipes: an attacked
example counts as robust only if every recipe failed to flip it (an example the model gets wrong
unattacked is never robust). Each recipe keeps its own numbers under ``recipes.<name>``, with the
success rate and the *valid* success rate (successes that also pass the ``valid`` constraint preset
post hoc, ``robench.attacks.validity``; under the default preset ``valid`` every success does). Accuracies carry Wilson 95% intervals (``_low``/``_high``).

Per-example outcomes are stored (``details.robust``: one bit per attacked example, in sample
order, keyed by the sample's id), so the board runs the paired bootstrap against vanilla on the
same examples. ``settings.threat_model`` is the threat-model card: recipes with every constraint
and threshold, the constraint preset, the query budget, n, the sampling seed, the split and the
substitutes used offline; its ``card_id`` must agree across a leaderboard column.

``transfer_accuracy`` is the mean accuracy on the task's static ``adversarial:*`` sets (scored like shift
sets: per-example outcomes, the set's ``merge_predictions``; the calibration evaluator gives their ECE).
What the adversarial aspect of the board is, the task declares (``evaluators: {adversarial: ...}``):
``recipes: []`` runs no live attack (the static sets alone, as RoAST's protocol scores them);
``combine: separate`` (default) keeps two columns, Attack (live, worst case) and Transfer (static
sets); ``combine: mean`` makes one column, ``adversarial_accuracy`` (Adv): the unweighted mean of the
live worst-case accuracy and each static set's accuracy, tested on their per-example outcomes. The
result's ``settings.adversarial_aspect`` names the parts and the board prints it under the table. The model
each set was generated against is read from the set's ``<file>.source.json`` (written by
``robench attack --save``) and recorded in ``settings.transfer_sources``, so the board can drop a
run that is the set's own source. Each recipe's per-example log is an artifact
(``artifacts/attack-<recipe>-...jsonl``); an interrupted evaluation resumes from it.

Under several processes (``torchrun``, a process group of N > 1) each process attacks a contiguous
1/N of the sample into its own log (``attack-....rank<r>of<N>.jsonl``, resumed by that process), the
records are gathered in rank order, and the result equals the single-process one; the first process
then writes the whole-sample log, and only it writes the result file (``robench.evaluation``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from robench import distributed
from robench.audit import AUDIT_SPECS, draw_examples
from robench.configs import name_list, names, option, whole
from robench.errors import ConfigError
from robench.evaluators.base import EvalOutput, Evaluator, register_evaluator
from robench.metrics import wilson_interval
from robench.results import MetricSpec, outcome_string

DEFAULT_RECIPES = ("deepwordbug", "textfooler", "pwws")
# None of the recipes' papers bounds the queries (TextFooler, PWWS and DeepWordBug search until they
# succeed or run out of words; TextAttack's default budget is unlimited). We bound them so one
# example's cost is bounded: 1000 is about 3x the largest count seen on the committed board's
# unbounded attacks (489 queries, textfooler; median 67), so it caps pathological inputs without
# changing typical outcomes. ``--query-budget`` changes it (and the threat-model card with it).
DEFAULT_QUERY_BUDGET = 1000
DEFAULT_N = 270  # Wilson 95% half-width <= 6 points at any accuracy (263 suffice at p = 0.5)
COMBINE = ("separate", "mean")  # how live attacks and static sets make the adversarial aspect (module docstring)
ADV_SPEC = MetricSpec("adversarial_accuracy", "higher", "adversarial", headline=True, column="adv",
                      label="Adv acc (attacks + static sets)", short="Adv", per_example="adversarial_correct")
PAIRS_NO_ATTACK = ("live attack recipes rewrite one text per example, and the attack split of this task holds sentence "
                   "pairs; set the adversarial evaluator's recipes: [] (static adversarial sets only) or "
                   "--recipe none")


def _unknown_recipe(value: Any) -> str | None:
    from robench.attacks.recipes import unknown_recipe_message

    if value is None or [str(v).strip().lower() for v in name_list(value)] == ["none"]:
        return None
    return next((m for m in map(unknown_recipe_message, name_list(value)) if m), None)


def attack_log_name(recipe: str, n: int | None, seed: int, query_budget: int | None, constraints: str = "valid",
                    label_preservation: str | None = None) -> str:
    qb = "inf" if query_budget is None else str(query_budget)
    lp = f"-{label_preservation}" if label_preservation else ""
    return f"attack-{recipe}-{constraints}{lp}-n{n if n is not None else 'all'}-seed{seed}-qb{qb}.jsonl"


def sample_id(split: str, indices: list[int]) -> str:
    """Names an attacked sample: outcomes pair across runs only when their samples are identical."""
    return f"{split}:{hashlib.sha256(json.dumps([int(i) for i in indices]).encode()).hexdigest()[:12]}"


def make_wrapper(ctx):
    from robench.attacks.wrapper import RobenchModelWrapper

    return RobenchModelWrapper(ctx.model, ctx.tokenizer, max_length=ctx.max_length, device=ctx.device,
                               precision=ctx.precision, batch_size=min(int(getattr(ctx, "batch_size", 64)), 64))


def attack_recipe(ctx, recipe: str, *, n: int | None, seed: int, query_budget: int | None, wrapper=None,
                  log_path: Path | None = None, max_examples: int | None = None, constraints: str = "valid",
                  label_preservation: str | None = None, checker=None) -> tuple[dict[str, Any], list[dict], Path]:
    """Run one recipe on the attack split of a context; returns (summary, records, log path)."""
    from robench.attacks.recipes import build_attack, recipe_settings
    from robench.attacks.resources import encoder_precision
    from robench.attacks.runner import run_attack, sample_indices, summarize
    from robench.attacks.validity import ValidityChecker

    key = ctx.task.attack_split
    if ctx.is_pairs(key):
        raise ConfigError(f"task {ctx.task.name!r}: {PAIRS_NO_ATTACK}")
    texts, labels = ctx.texts(key), ctx.labels(key)
    wrapper = wrapper or make_wrapper(ctx)
    attack = build_attack(recipe, wrapper, query_budget=query_budget, device=ctx.device, constraints=constraints,
                          label_preservation=label_preservation)
    checker = checker or ValidityChecker(label_preservation=label_preservation, device=ctx.device)
    indices = sample_indices(len(texts), n, seed)
    log_path = log_path or ctx.artifact(attack_log_name(recipe, n, seed, query_budget, constraints,
                                                        label_preservation))
    header = {"recipe": recipe, "split": key, "data": ctx.data.fingerprint(key), "n": n,
              "query_budget": query_budget, "weights": ctx.weights,  # the file as it is on disk
              "precision": ctx.precision, "max_length": ctx.max_length,
              "settings": recipe_settings(recipe, constraints=constraints, label_preservation=label_preservation),
              "encoder_precision": encoder_precision(ctx.device)}
    if distributed.world_size() > 1:
        records = _sharded_attack(attack, texts, labels, indices=indices, log_path=Path(log_path), header=header,
                                  seed=seed, max_examples=max_examples, checker=checker)
    else:
        records = run_attack(attack, texts, labels, indices=indices, log_path=log_path, header=header, seed=seed,
                             max_examples=max_examples, checker=checker)
    return summarize(records), records, log_path


def _sharded_attack(attack, texts, labels, *, indices: list[int], log_path: Path, header: dict[str, Any], seed: int,
                    max_examples: int | None, checker) -> list[dict]:
    """Several processes: each attacks its contiguous slice of the sample into its own, resumable log
    (``<log>.rank<r>of<N>.jsonl``, the header names the shard); the records are gathered in rank order, so
    every process returns the single-process records (with ``i``, the position in the whole sample). Once
    the sample is complete the first process also writes the whole log at ``log_path``, as one process
    would have, so a later single-process run resumes from it (it never reads a shard's log: another
    name, and the header would not match)."""
    from robench.attacks.runner import log_header, run_attack, shard_log_path, write_log

    r, count = distributed.rank(), distributed.world_size()
    mine = distributed.shard(indices, r, count)
    offset = sum(len(distributed.shard(indices, q, count)) for q in range(r))
    own = run_attack(attack, texts, labels, indices=mine, log_path=shard_log_path(log_path, r, count),
                     header={**header, "shard": {"rank": r, "world_size": count, "of_n": len(indices)}}, seed=seed,
                     max_examples=max_examples, checker=checker)
    own = [{**rec, "i": offset + rec["i"]} for rec in own]
    records = [rec for part in distributed.gather_objects(own) for rec in part]
    complete = [rec["index"] for rec in records] == list(indices)
    if complete and distributed.is_main():
        write_log(log_path, log_header(attack, header, seed=seed, indices=indices, checker=checker), records)
    return records


def robust_bits(records: list[dict]) -> np.ndarray:
    """1 where the model stayed correct under the recipe (the attack failed), in sample order."""
    return np.array([1 if r["outcome"] == "failed" else 0 for r in records], dtype=np.uint8)


bits_string = outcome_string  # the adversarial evaluator's name for it


def with_interval(out: dict[str, Any], name: str, successes: float, n: int) -> None:
    out[name] = successes / n if n else float("nan")
    out[f"{name}_low"], out[f"{name}_high"] = wilson_interval(successes, n)


def read_transfer_source(ctx, name: str) -> dict[str, Any]:
    """What a static adversarial set records about the model it was made against (its ``.source.json``)."""
    src = ctx.task.sets[f"adversarial:{name}"].source
    file = ctx.data.files.get(src)
    sidecar = Path(file).with_suffix(".source.json") if file else None
    if sidecar is None or not sidecar.is_file():
        return {"weights_fingerprint": None, "description": "unknown: no .source.json beside the set's file"}
    try:
        info = json.loads(sidecar.read_text(encoding="utf-8"))
        content = hashlib.sha256(Path(file).read_bytes()).hexdigest()
    except (OSError, ValueError):
        return {"weights_fingerprint": None, "description": f"unreadable {sidecar.name}"}
    if not isinstance(info, dict):
        return {"weights_fingerprint": None, "description": f"bad {sidecar.name}"}
    if info.get("set_sha256") != content:  # the set was regenerated or edited without its record
        return {"weights_fingerprint": None,
                "description": f"{sidecar.name} does not describe this file (set_sha256 differs); regenerate both"}
    return info


def source_fingerprints(source: Any) -> list[str]:
    """The weights fingerprints of the models a static set was made against: ``weights_fingerprints`` (a set
    merged from several sources, benchmarks/build_transfer_set.py) or the single ``weights_fingerprint``."""
    if not isinstance(source, dict):
        return []
    many = source.get("weights_fingerprints")
    if isinstance(many, list):
        return [f for f in many if isinstance(f, str) and f]
    one = source.get("weights_fingerprint")
    return [one] if isinstance(one, str) and one else []


@register_evaluator("adversarial", quick=False, aliases=("attack",))
class Adversarial(Evaluator):
    description = ("TextAttack recipes (deepwordbug, textfooler, pwws; offline), worst case over recipes, "
                   "+ static adversarial sets")
    aspect = "adversarial"
    # 3: recipes may be [] (static sets only), combine, merge_predictions on static sets; 4: the valid preset reads
    # whole texts, judges a change of case and rechecks every swap's tag (attack log version 3)
    version = 4
    metrics = (
        MetricSpec("accuracy_under_attack", "higher", aspect, headline=True, column="attack",
                   label="Attack acc (worst case)", short="Atk", per_example="robust"),
        MetricSpec("transfer_accuracy", "higher", aspect, headline=True, column="transfer", label="Transfer acc",
                   short="Trans", per_example="transfer_correct"),
        MetricSpec("accuracy_under_attack_low", "none", aspect),
        MetricSpec("accuracy_under_attack_high", "none", aspect),
        MetricSpec("mean_accuracy_under_attack", "higher", aspect),
        MetricSpec("attack_success_rate", "lower", aspect),
        MetricSpec("valid_success_rate", "lower", aspect),
        MetricSpec("original_accuracy", "higher", aspect),
        MetricSpec("num_examples", "none", aspect),
        MetricSpec("recipes.*.accuracy_under_attack", "higher", aspect),
        MetricSpec("recipes.*.original_accuracy", "higher", aspect),
        MetricSpec("recipes.*.attack_success_rate", "lower", aspect),
        MetricSpec("recipes.*.valid_success_rate", "lower", aspect),
        MetricSpec("recipes.*.num_valid", "none", aspect),
        MetricSpec("recipes.*", "none", aspect),  # intervals, queries, perturbed-word share, counts, seconds
        MetricSpec("transfer.*", "higher", aspect),
        *AUDIT_SPECS,  # audit.*: written by 'robench audit --ratings' (human ratings of a sample of successes)
    )

    @dataclass
    class Config:
        recipes: list[str] = field(default_factory=lambda: list(DEFAULT_RECIPES), metadata=option(
            "a recipe name, a list of recipe names, or [] / none (static adversarial sets only)",
            lambda v: v is None or v == [] or names(v),
            "recipes: [deepwordbug, pwws]", _unknown_recipe))
        n: int | None = field(default=DEFAULT_N, metadata=option(
            "a positive integer or null (every example)", whole(1, none=True), "n: 20"))
        query_budget: int | None = field(default=DEFAULT_QUERY_BUDGET, metadata=option(
            "a positive integer or null", whole(1, none=True), "query_budget: 2000"))
        seed: int = field(default=0, metadata=option("an integer", whole(), "seed: 0"))
        constraints: str = field(default="valid", metadata=option(
            "a constraint preset name (valid, filtered, recipe)", lambda v: isinstance(v, str), "constraints: filtered"))
        label_preservation: str | None = field(default=None, metadata=option(
            "a label-preservation constraint or null", lambda v: v is None or isinstance(v, str),
            "label_preservation: valence"))
        combine: str = field(default="separate", metadata=option(
            f"one of {', '.join(COMBINE)}", lambda v: v in COMBINE, "combine: mean"))

        def __post_init__(self) -> None:
            from robench.attacks.recipes import check_constraint_options

            if self.recipes is None:
                self.recipes = list(DEFAULT_RECIPES)
            listed = [r.strip().lower() for r in name_list(self.recipes)]
            self.recipes = [] if listed == ["none"] else listed  # "none" / ["none"] (--recipe none): static sets only
            problem = _unknown_recipe(self.recipes)
            if problem:
                raise ConfigError(problem)
            self.n = None if self.n is None else int(self.n)
            self.query_budget = None if self.query_budget is None else int(self.query_budget)
            self.seed = int(self.seed)
            check_constraint_options(self.constraints, self.label_preservation)

    def __init__(self, config: Config | None = None, **options: Any) -> None:
        from robench.attacks.recipes import check_constraint_options

        super().__init__(config, **options)
        c = self.config
        self.recipes, self.n, self.query_budget, self.seed = c.recipes, c.n, c.query_budget, c.seed
        self.constraints, self.label_preservation = check_constraint_options(c.constraints, c.label_preservation)
        self.combine = c.combine
        if self.combine == "mean":  # one column: the live and static parts become its components
            self.metrics = (ADV_SPEC, *(replace(m, headline=False) if m.headline else m for m in type(self).metrics))
        elif not self.recipes:  # static sets only: no Attack column
            self.metrics = tuple(replace(m, headline=False) if m.name == "accuracy_under_attack" else m
                                 for m in type(self).metrics)

    def settings_key(self) -> dict[str, Any]:
        """The options, ``combine`` only where it is not the default: a result written before the option
        existed (the default's result) stays a cache hit."""
        key = super().settings_key()
        if key.get("combine") == "separate":
            key.pop("combine")
        return key

    def threat_model(self, ctx, indices: list[int], checker=None) -> dict[str, Any]:
        """The threat-model card: what an attacker may do and how hard it tries. Two different cards never
        share a leaderboard column (``card_id``)."""
        from robench.attacks.recipes import recipe_settings
        from robench.attacks.resources import encoder_precision
        from robench.attacks.validity import ValidityChecker

        key = ctx.task.attack_split
        card = {
            "goal": "untargeted: flip the predicted label of an example the model gets right",
            "access": "black-box: the model's output scores (logits) for any query",
            "recipes": {r: recipe_settings(r, constraints=self.constraints, label_preservation=self.label_preservation)
                        for r in self.recipes},
            "constraints": self.constraints,
            "label_preservation": self.label_preservation,
            # MiniLM stands in for USE; bf16 where the hardware has it natively (resources.encoder_precision)
            "sentence_encoder_precision": encoder_precision(ctx.device),
            "query_budget": self.query_budget,
            "query_budget_source": ("robench default: none of the recipes' papers bounds queries; 1000 is ~3x the "
                                    "largest unbounded count seen on the default task") if self.query_budget ==
            DEFAULT_QUERY_BUDGET else "user setting",
            "n": len(indices),
            "sampling_seed": self.seed,
            "split": key,
            "split_size": len(ctx.texts(key)),
            "split_fingerprint": ctx.data.fingerprint(key),
            "sample": sample_id(key, indices),
            "headline": "robust accuracy, worst case over recipes",
            # what the valid success rate is measured against (post hoc, the valid preset's checks)
            "validity_check": (checker or ValidityChecker(label_preservation=self.label_preservation,
                                                          device=ctx.device)).describe(),
            # the static transfer sets, by content: one Transfer column never mixes two different sets
            "transfer_sets": {n: ctx.data.fingerprint(f"adversarial:{n}") for n in ctx.task.set_names("adversarial")},
        }
        if self.combine != "separate":  # one Adv column never mixes two ways of combining
            card["combine"] = self.combine
        card["card_id"] = hashlib.sha256(json.dumps(card, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return card

    def static_card(self, ctx) -> dict[str, Any]:
        """The card of a result without live attacks: the static sets by content (and how they combine)."""
        card = {"goal": "static adversarial sets only: no live attack", "recipes": {},
                "transfer_sets": {n: ctx.data.fingerprint(f"adversarial:{n}") for n in ctx.task.set_names("adversarial")},
                "combine": self.combine}
        card["card_id"] = hashlib.sha256(json.dumps(card, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return card

    def evaluate(self, ctx) -> EvalOutput:
        static = ctx.task.set_names("adversarial")
        if not self.recipes and not static:
            raise ConfigError(f"task {ctx.task.name!r} has no static adversarial sets and the adversarial evaluator "
                              "runs no attack recipe (recipes: []): nothing to measure; name recipes or add an "
                              "'adversarial:' section to the task")
        key = ctx.task.attack_split
        metrics: dict[str, Any] = {}
        details: dict[str, Any] = {}
        artifacts: list[str] = []
        settings: dict[str, Any] = {"attack_split": key}
        worst = None
        sid = None
        if self.recipes:
            worst, sid = self._attack(ctx, metrics, details, artifacts, settings)
        else:
            settings["threat_model"] = self.static_card(ctx)
        transfer: dict[str, float] = {}
        transfer_correct: dict[str, str] = {}
        static_bits: dict[str, np.ndarray] = {}
        sources: dict[str, dict[str, Any]] = {}
        warnings: list[str] = []
        for name in static:
            set_key = f"adversarial:{name}"
            correct = ctx.correct(set_key, ctx.predict(set_key).logits)
            static_bits[name] = correct
            transfer[name] = float(np.mean(correct))
            transfer_correct[name] = bits_string(correct)
            sources[name] = read_transfer_source(ctx, name)
            fps = source_fingerprints(sources[name])
            if not fps:
                warnings.append(f"transfer set {name!r} does not record the model it was made against; a run of "
                                "that model would score it unfairly (regenerate it with 'robench attack --save')")
            elif ctx.weights in fps:
                warnings.append(f"this run is the source model of transfer set {name!r}: its transfer accuracy is "
                                "0 by construction and the board excludes the run")
        if transfer:
            metrics["transfer_accuracy"] = float(np.mean(list(transfer.values())))
            metrics["transfer"] = transfer
        details["transfer_correct"] = transfer_correct
        parts = {**({f"attack:{sid}": worst} if worst is not None else {}),
                 **{f"static:{n}": b for n, b in static_bits.items()}}
        if self.combine == "mean":
            metrics["adversarial_accuracy"] = float(np.mean([np.mean(b) for b in parts.values()]))
            details["adversarial_correct"] = {p: bits_string(b) for p, b in parts.items()}
        settings.update({"transfer_sources": sources, "adversarial_aspect": {
            "combine": self.combine, "live": list(self.recipes), "static": list(static),
            "headline": ("unweighted mean of the live worst-case accuracy and each static set's accuracy"
                         if self.combine == "mean" else "separate columns: live attacks (worst case) and static sets "
                         "(mean accuracy)")}})
        keys = ([key] if self.recipes else []) + [f"adversarial:{n}" for n in static]
        return EvalOutput(metrics=metrics, details=details, data=ctx.data_info(keys), settings=settings,
                          artifacts=artifacts, warnings=warnings)

    def _attack(self, ctx, metrics: dict[str, Any], details: dict[str, Any], artifacts: list[str],
                settings: dict[str, Any]) -> tuple[np.ndarray, str]:
        """The live recipes on the attack split: fills the attack metrics, details and the threat-model card;
        returns the worst-case robust bits and the sample's id."""
        from robench.attacks.recipes import require_recipe
        from robench.attacks.runner import sample_indices
        from robench.attacks.validity import ValidityChecker

        key = ctx.task.attack_split
        if ctx.is_pairs(key):
            raise ConfigError(f"task {ctx.task.name!r}: {PAIRS_NO_ATTACK}")
        for recipe in self.recipes:  # every recipe checked before the first one runs
            require_recipe(recipe)
        wrapper = make_wrapper(ctx)  # shared: its score cache serves every recipe
        checker = ValidityChecker(label_preservation=self.label_preservation, device=ctx.device)
        indices = sample_indices(len(ctx.texts(key)), self.n, self.seed)
        sid = sample_id(key, indices)
        per_recipe: dict[str, dict[str, Any]] = {}
        robust: dict[str, np.ndarray] = {}
        flipped = np.zeros(len(indices), dtype=bool)  # some recipe succeeded
        flipped_valid = np.zeros(len(indices), dtype=bool)  # some recipe's success passes the valid check
        skipped = np.zeros(len(indices), dtype=bool)
        examples: dict[str, list[dict]] = {}  # five successes per recipe, seeded: the audit trail (robench.audit)
        for recipe in self.recipes:
            summary, records, log = attack_recipe(ctx, recipe, n=self.n, seed=self.seed,
                                                  query_budget=self.query_budget, wrapper=wrapper,
                                                  constraints=self.constraints,
                                                  label_preservation=self.label_preservation, checker=checker)
            if [r["index"] for r in records] != indices:  # the log holds exactly the sample, in order
                raise RuntimeError(f"attack log {log} does not match the sample; delete it and re-run")
            bits = robust_bits(records)
            flipped |= np.array([r["outcome"] == "successful" for r in records], dtype=bool)
            flipped_valid |= np.array([r["outcome"] == "successful" and bool(r.get("valid")) for r in records],
                                      dtype=bool)
            skipped |= np.array([r["outcome"] == "skipped" for r in records], dtype=bool)
            with_interval(summary, "accuracy_under_attack", float(bits.sum()), len(bits))
            per_recipe[recipe] = summary
            robust[recipe] = bits
            examples[recipe] = draw_examples(records, 5, self.seed, ctx.task.labels)
            artifacts.append(str(Path(log).relative_to(ctx.run_dir)))
        worst = np.minimum.reduce(list(robust.values()))
        with_interval(metrics, "accuracy_under_attack", float(worst.sum()), len(worst))
        attacked = int((~skipped).sum())  # worst case: an example is broken when any recipe broke it
        metrics.update({
            "mean_accuracy_under_attack": float(np.mean([m["accuracy_under_attack"] for m in per_recipe.values()])),
            "attack_success_rate": float(flipped[~skipped].mean()) if attacked else float("nan"),
            "valid_success_rate": float(flipped_valid[~skipped].mean()) if attacked else float("nan"),
            "original_accuracy": float(np.mean([m["original_accuracy"] for m in per_recipe.values()])),
            "num_examples": len(worst),
            "recipes": per_recipe,
        })
        details.update({"robust": {sid: bits_string(worst)},
                        "robust_by_recipe": {r: {sid: bits_string(b)} for r, b in robust.items()},
                        "indices": indices,
                        "examples": examples})
        settings["threat_model"] = self.threat_model(ctx, indices, checker)
        return worst, sid
