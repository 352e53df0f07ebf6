"""Attack speed: robench's runner + wrapper vs TextAttack's stock Attacker + HuggingFaceModelWrapper,
and robench now vs robench as it was (the ``recipe`` constraint preset with an fp32 sentence encoder).

Same fine-tuned model, same sampled examples, same recipe object construction, same per-example
RNG seeds (the stock side gets them through a dataset that reseeds before each example is handed
to ``Attacker``), so the outcomes must match; the difference is the model wrapper (per-batch
padding, length-sorted batches, inference mode, memoised scores, optional bf16) and the runner.
The "before" pass runs robench with ``--before-constraints`` (default ``recipe``: no validity
filters) and an fp32 sentence encoder: the configuration robench used before the filters and the
bf16 encoder, so ``speedup_vs_before`` is the throughput gained on the same examples.

    python benchmarks/bench_attack.py --run runs/sentiment/minilm/vanilla/seed0 --recipe textfooler --n 20

Prints a JSON line with examples/s, success rates, outcome agreement and the speed-ups.
"""

from __future__ import annotations

import argparse
import json
import time

from robench.attacks.offline import import_textattack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a finished run directory (a fine-tuned model)")
    parser.add_argument("--recipe", default="deepwordbug")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--query-budget", type=int, default=None)
    parser.add_argument("--precision", default="fp32", help="robench side only (bf16 may change outcomes)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--constraints", default="valid", help="constraint preset: valid, filtered or recipe")
    parser.add_argument("--label-preservation", default="valence", help="'valence' or 'none'")
    parser.add_argument("--encoder-precision", default=None, help="fp32 or bf16 (default: bf16 where native)")
    parser.add_argument("--before-constraints", default="recipe", help="preset of the 'before' pass")
    parser.add_argument("--before-encoder-precision", default="fp32",
                        help="sentence-encoder precision of the 'before' pass (fp32: robench as it was; 'same': as now)")
    parser.add_argument("--no-stock", action="store_true", help="skip the (slow) stock TextAttack pass")
    args = parser.parse_args()
    lp = None if args.label_preservation == "none" else args.label_preservation

    import_textattack()
    import random

    import numpy as np
    import textattack
    import torch
    from textattack.models.wrappers import HuggingFaceModelWrapper

    from robench.attacks import resources
    from robench.attacks.recipes import build_attack
    from robench.attacks.resources import encoder_precision, minilm_encoder
    from robench.attacks.runner import _example_seed, _outcome, attack_one, sample_indices
    from robench.attacks.wrapper import RobenchModelWrapper
    from robench.evaluation import make_context

    ctx = make_context(args.run, device=args.device, precision=args.precision, allow_changed_data=True)  # reads the attack split only
    key = ctx.task.attack_split
    texts, labels = ctx.texts(key), ctx.labels(key)
    indices = sample_indices(len(texts), args.n, args.seed)
    enc_precision = encoder_precision(ctx.device, args.encoder_precision)
    shared = resources.minilm_encoder

    def use_encoder(precision):
        """The recipes look their sentence encoder up through resources.minilm_encoder: pin its precision."""
        resources.minilm_encoder = lambda device="cpu", _p=None: shared(device, precision)
        for p in ("fp32", "bf16"):
            minilm_encoder(ctx.device, p)._cache.clear()  # every pass starts with an empty encoder cache

    def timed_robench(constraints, precision):
        use_encoder(precision)
        try:
            wrapper = RobenchModelWrapper(ctx.model, ctx.tokenizer, max_length=ctx.max_length, device=ctx.device,
                                          precision=ctx.precision)
            attack = build_attack(args.recipe, wrapper, query_budget=args.query_budget, device=ctx.device,
                                  constraints=constraints, label_preservation=lp)
            start = time.perf_counter()
            records = [attack_one(attack, texts[i], int(labels[i]), seed=args.seed, index=i) for i in indices]
            return records, time.perf_counter() - start, wrapper
        finally:
            resources.minilm_encoder = shared

    holder: dict = {}

    class SeededDataset(textattack.datasets.Dataset):
        """Reseeds the RNGs (and clears the attack's caches) before handing out each example."""

        def __getitem__(self, i):
            idx = indices[i]
            s = _example_seed(args.seed, idx)
            random.seed(s)
            np.random.seed(s)
            torch.manual_seed(s)
            holder["attack"].clear_cache()
            return super().__getitem__(i)

    def run_stock():
        """TextAttack stock: Attacker + HuggingFaceModelWrapper (pads to the tokenizer's max length)."""
        use_encoder(enc_precision)
        try:
            stock_wrapper = HuggingFaceModelWrapper(ctx.model, ctx.tokenizer)
            holder["attack"] = build_attack(args.recipe, stock_wrapper, query_budget=args.query_budget,
                                            device=ctx.device, model_batch_size=32, constraints=args.constraints,
                                            label_preservation=lp)
            dataset = SeededDataset([(texts[i], int(labels[i])) for i in indices])
            attack_args = textattack.AttackArgs(num_examples=len(indices), disable_stdout=True, silent=True,
                                                random_seed=args.seed, query_budget=args.query_budget)
            start = time.perf_counter()
            results = textattack.Attacker(holder["attack"], dataset, attack_args).attack_dataset()
            return results, time.perf_counter() - start
        finally:
            resources.minilm_encoder = shared

    # robench before (the recipe preset, fp32 sentence encoder), robench now, then the stock runner
    before_precision = enc_precision if args.before_encoder_precision == "same" else args.before_encoder_precision
    before_records, before_s, _ = timed_robench(args.before_constraints, before_precision)
    records, robench_s, wrapper = timed_robench(args.constraints, enc_precision)
    stock_results, stock_s = (None, float("nan")) if args.no_stock else run_stock()

    def rate(outs):
        attacked = [o for o in outs if o != "skipped"]
        return sum(o == "successful" for o in attacked) / len(attacked) if attacked else float("nan")

    ours = [r["outcome"] for r in records]
    report = {
        "recipe": args.recipe, "n": len(indices), "seed": args.seed, "device": ctx.device,
        "precision": ctx.precision, "model": ctx.run.model.name,
        "constraints": args.constraints, "label_preservation": lp, "encoder_precision": enc_precision,
        "before": {"constraints": args.before_constraints, "encoder_precision": before_precision,
                   "examples_per_s": len(indices) / before_s,
                   "success_rate": rate([r["outcome"] for r in before_records]),
                   "queries": int(sum(r["queries"] for r in before_records))},
        "robench_examples_per_s": len(indices) / robench_s,
        "speedup_vs_before": before_s / robench_s,
        "robench_success_rate": rate(ours),
        "robench_queries": int(sum(r["queries"] for r in records)),
        "robench_forward_texts": wrapper.forward_texts,
    }
    if stock_results is not None:
        stock_outcomes = [_outcome(r) for r in stock_results]
        stock_texts = [r.perturbed_result.attacked_text.text for r in stock_results]
        report.update({
            "stock_examples_per_s": len(indices) / stock_s, "speedup_vs_stock": stock_s / robench_s,
            "stock_success_rate": rate(stock_outcomes),
            "same_outcomes": sum(a == b for a, b in zip(stock_outcomes, ours, strict=True)),
            "same_perturbed_text": int(sum(a == (r["perturbed"] if r["outcome"] == "successful" else r["original"])
                                           or r["outcome"] != "successful"
                                           for a, r in zip(stock_texts, records, strict=True))),
            "stock_queries": int(sum(r.perturbed_result.num_queries for r in stock_results)),
        })
    print(json.dumps(report))


if __name__ == "__main__":
    main()
