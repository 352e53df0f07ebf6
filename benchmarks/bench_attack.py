"""Attack speed: robench's runner + wrapper vs TextAttack's stock Attacker + HuggingFaceModelWrapper.

Same fine-tuned model, same sampled examples, same recipe object construction, same per-example
RNG seeds (the stock side gets them through a dataset that reseeds before each example is handed
to ``Attacker``), so the outcomes must match; the difference is the model wrapper (per-batch
padding, length-sorted batches, inference mode, memoised scores, optional bf16) and the runner.

    python benchmarks/bench_attack.py --run runs/sentiment/minilm/vanilla/seed0 --recipe deepwordbug --n 20

Prints a JSON line with examples/s, success rates, outcome agreement and the speed-up.
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
    args = parser.parse_args()

    import_textattack()
    import textattack
    from textattack.models.wrappers import HuggingFaceModelWrapper

    from robench.attacks.recipes import build_attack
    from robench.attacks.resources import minilm_encoder
    from robench.attacks.runner import _example_seed, attack_one, sample_indices
    from robench.attacks.wrapper import RobenchModelWrapper
    from robench.evaluate import make_context

    ctx = make_context(args.run, device=args.device, precision=args.precision)
    key = ctx.task.attack_split
    texts, labels = ctx.texts(key), ctx.labels(key)
    indices = sample_indices(len(texts), args.n, args.seed)

    def reset_encoder():
        if args.recipe == "textfooler":
            minilm_encoder(ctx.device)._cache.clear()

    # --- TextAttack stock: Attacker + HuggingFaceModelWrapper (pads to the tokenizer's max length)
    stock_wrapper = HuggingFaceModelWrapper(ctx.model, ctx.tokenizer)
    stock_attack = build_attack(args.recipe, stock_wrapper, query_budget=args.query_budget, device=ctx.device,
                                model_batch_size=32)

    import random

    import numpy as np
    import torch

    class SeededDataset(textattack.datasets.Dataset):
        """Reseeds the RNGs (and clears the attack's caches) before handing out each example."""

        def __getitem__(self, i):
            idx = indices[i]
            s = _example_seed(args.seed, idx)
            random.seed(s)
            np.random.seed(s)
            torch.manual_seed(s)
            stock_attack.clear_cache()
            return super().__getitem__(i)

    dataset = SeededDataset([(texts[i], int(labels[i])) for i in indices])
    attack_args = textattack.AttackArgs(num_examples=len(indices), disable_stdout=True, silent=True,
                                        random_seed=args.seed, query_budget=args.query_budget)
    reset_encoder()
    start = time.perf_counter()
    stock_results = textattack.Attacker(stock_attack, dataset, attack_args).attack_dataset()
    stock_s = time.perf_counter() - start

    # --- robench: runner + RobenchModelWrapper
    wrapper = RobenchModelWrapper(ctx.model, ctx.tokenizer, max_length=ctx.max_length, device=ctx.device,
                                  precision=ctx.precision)
    attack = build_attack(args.recipe, wrapper, query_budget=args.query_budget, device=ctx.device)
    reset_encoder()
    start = time.perf_counter()
    records = [attack_one(attack, texts[i], int(labels[i]), seed=args.seed, index=i) for i in indices]
    robench_s = time.perf_counter() - start

    from robench.attacks.runner import _outcome

    stock_outcomes = [_outcome(r) for r in stock_results]
    ours = [r["outcome"] for r in records]
    stock_texts = [r.perturbed_result.attacked_text.text for r in stock_results]
    same_text = sum(a == (r["perturbed"] if r["outcome"] == "successful" else r["original"]) or o != "successful"
                    for a, r, o in zip(stock_texts, records, ours, strict=True))

    def rate(outs):
        attacked = [o for o in outs if o != "skipped"]
        return sum(o == "successful" for o in attacked) / len(attacked) if attacked else float("nan")

    report = {
        "recipe": args.recipe, "n": len(indices), "seed": args.seed, "device": ctx.device,
        "precision": ctx.precision, "model": ctx.run.get("model", {}).get("name"),
        "stock_examples_per_s": len(indices) / stock_s, "robench_examples_per_s": len(indices) / robench_s,
        "speedup": stock_s / robench_s,
        "stock_success_rate": rate(stock_outcomes), "robench_success_rate": rate(ours),
        "same_outcomes": sum(a == b for a, b in zip(stock_outcomes, ours, strict=True)),
        "same_perturbed_text": int(same_text),
        "stock_queries": int(sum(r.num_queries for r in [x.perturbed_result for x in stock_results])),
        "robench_queries": int(sum(r["queries"] for r in records)),
        "robench_forward_texts": wrapper.forward_texts,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
