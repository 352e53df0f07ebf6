"""Attack speed: robench's runner + wrapper vs TextAttack's stock Attacker + HuggingFaceModelWrapper,
robench now vs robench as it was (the ``recipe`` constraint preset with an fp32 sentence encoder), and
robench with its on-disk attack caches cold vs warm (``robench.attacks.cache``).

Same fine-tuned model, same sampled examples, same recipe object construction, same per-example
RNG seeds (the stock side gets them through a dataset that reseeds before each example is handed
to ``Attacker``), so the outcomes must match; the difference is the model wrapper (per-batch
padding, length-sorted batches, inference mode, memoised scores, optional bf16), the runner and the
caches. The "before" pass runs robench with ``--before-constraints`` (default ``recipe``: no validity
filters), an fp32 sentence encoder and the on-disk caches off: the configuration robench used before the
filters, the bf16 encoder and the caches, so ``speedup_vs_before`` is the throughput gained on the same
examples (one difference remains: since the caches, the encoder encodes every text alone, also in the "before"
pass, where the ``recipe`` preset's windows made it batch many texts; so that pass is slower than robench
before the caches was, and ``speedup_vs_before`` is an upper bound).

Cold and warm: robench runs twice, with the attack caches in a fresh folder (``--cache-dir``, default a
temporary folder removed at the end): the cold pass computes every tag, sentence vector and WordNet list and
stores them; the warm pass starts with empty in-memory layers (as a new process would, e.g. the next run of a
board) and reads them back. Both must give identical records (``cold_warm_identical``). The "before" and the
stock passes run with the on-disk caches off (``ROBENCH_ATTACK_CACHE=0``) and empty in-memory layers.

    python benchmarks/bench_attack.py --run runs/sentiment/minilm/vanilla/seed0 --recipe textfooler --n 20
    python benchmarks/bench_attack.py --run DIR --recipe default --n 20   # deepwordbug, textfooler, pwws
    python benchmarks/bench_attack.py --run DIR --recipe default --n 60 --no-stock --no-before --agreement

``--agreement`` attacks once more with the victim's queries in bf16 autocast (caches warm, so only the model's
precision differs) and reports ``bf16_agreement``: how many outcomes and perturbed texts match the fp32 pass.
Boards attack in fp32 (``--precision`` of ``robench eval``, default fp32); bf16 queries are for a board only
if this agreement is total on its sample, or its cards record the precision.

Where the time goes (``victim``, per recipe and in the totals): the seconds each side spends in the attacked
model's forward passes, their share of the attack, their FLOPs (counted from each batch's shape: the encoder's
projections and feed-forward layers, plus attention's two products, which grow with the padded length) and the
GFLOP/s they reach against this machine's matmul roof in the victim's precision (the best of a few GEMM shapes,
as ``bench_train.py`` measures it). ``ceiling_vs_stock`` is the stock runner's time over robench's victim
seconds alone: the speed-up robench would reach if everything but its own model queries took no time. Where
that ceiling is below a target and the queries already run near the roof, the target cannot be met with the
same queries in the same precision (the stock wrapper pads every query to 512 tokens; robench pads each batch
to its longest text, so the gap is about the ratio of padded lengths).

Prints a JSON line per recipe with examples/s (cold, warm), success rates, outcome agreement, cache
statistics, the victim's time and FLOPs and the speed-ups; with several recipes, a last line with the totals
(``"recipe": "total"``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from robench.attacks.offline import import_textattack


def _strip(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "seconds"}


def encoder_flops(config, shapes) -> float:
    """FLOPs of a BERT-style encoder's forward passes over batches of ``(texts, padded length)``: per token
    and layer the four attention projections and the two feed-forward matrices (2 FLOPs per multiply-add),
    plus the attention scores and their weighted sum (each 2 x length x hidden per token and layer). The
    embeddings, layer norms, softmax, pooler and classifier are left out (under 1% at these sizes)."""
    h, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    per_token = 2 * layers * (4 * h * h + 2 * h * inner)
    return float(sum(n * length * (per_token + 4 * layers * length * h) for n, length in shapes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a finished run directory (a fine-tuned model)")
    parser.add_argument("--recipe", default="deepwordbug",
                        help="a recipe, a comma-separated list, or 'default' (the board's: deepwordbug,textfooler,pwws)")
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
    parser.add_argument("--no-before", action="store_true", help="skip the 'before' pass")
    parser.add_argument("--no-stock", action="store_true", help="skip the (slow) stock TextAttack pass")
    parser.add_argument("--no-warm", action="store_true", help="skip the warm-cache pass")
    parser.add_argument("--agreement", action="store_true",
                        help="also attack with the victim's queries in bf16 autocast (warm caches) and report how "
                             "many outcomes and perturbed texts agree with the fp32 pass: the check that must pass "
                             "before bf16 model queries are used for a board's attacks")
    parser.add_argument("--cache-dir", default=None,
                        help="folder of the attack caches for the cold and warm passes (default: a fresh temporary "
                             "folder, removed at the end; an existing folder makes the 'cold' pass partly warm)")
    args = parser.parse_args()
    lp = None if args.label_preservation == "none" else args.label_preservation

    import_textattack()
    import os
    import random
    import shutil
    import tempfile

    import numpy as np
    import textattack
    import torch
    from textattack.models.wrappers import HuggingFaceModelWrapper

    from robench.attacks import cache, resources
    from robench.attacks.recipes import build_attack
    from robench.attacks.resources import encoder_precision
    from robench.attacks.runner import _example_seed, _outcome, attack_one, sample_indices
    from robench.attacks.wrapper import RobenchModelWrapper
    from robench.evaluation import make_context
    from robench.evaluators.adversarial import DEFAULT_RECIPES

    recipes = list(DEFAULT_RECIPES) if args.recipe.strip().lower() == "default" else \
        [r.strip().lower() for r in args.recipe.split(",") if r.strip()]
    ctx = make_context(args.run, device=args.device, precision=args.precision, allow_changed_data=True)  # reads the attack split only
    key = ctx.task.attack_split
    texts, labels = ctx.texts(key), ctx.labels(key)
    indices = sample_indices(len(texts), args.n, args.seed)
    enc_precision = encoder_precision(ctx.device, args.encoder_precision)
    shared = resources.minilm_encoder
    temporary = args.cache_dir is None
    cache_folder = tempfile.mkdtemp(prefix="robench-attack-cache-") if temporary else args.cache_dir
    saved_env = {k: os.environ.get(k) for k in (cache.DIR_ENV, cache.SWITCH_ENV)}

    def cache_mode(on: bool) -> None:
        """The on-disk attack caches on (in the benchmark's folder) or off; every pass starts with empty
        in-memory layers (tags, sentence vectors, WordNet lists, word-pair memos), as a new process would."""
        os.environ[cache.DIR_ENV] = cache_folder
        os.environ[cache.SWITCH_ENV] = "1" if on else "0"
        cache.clear_memory()
        cache.reset_stats()

    def use_encoder(precision):
        """The recipes look their sentence encoder up through resources.minilm_encoder: pin its precision."""
        resources.minilm_encoder = lambda device="cpu", _p=None: shared(device, precision)

    def timed_robench(recipe, constraints, precision, victim_precision=None):
        use_encoder(precision)
        try:
            wrapper = RobenchModelWrapper(ctx.model, ctx.tokenizer, max_length=ctx.max_length, device=ctx.device,
                                          precision=victim_precision or ctx.precision)
            attack = build_attack(recipe, wrapper, query_budget=args.query_budget, device=ctx.device,
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

    class TimedStockWrapper(HuggingFaceModelWrapper):
        """TextAttack's stock wrapper, unchanged, with the time and batch shapes of its forward passes."""

        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.forward_seconds, self.forward_shapes = 0.0, []

        def __call__(self, text_input_list):
            start = time.perf_counter()
            out = super().__call__(text_input_list)
            if torch.cuda.is_available() and isinstance(out, torch.Tensor) and out.is_cuda:
                torch.cuda.synchronize()  # its logits stay on the GPU: wait for them, as robench's wrapper does
            self.forward_seconds += time.perf_counter() - start
            padded = 512 if self.tokenizer.model_max_length == int(1e30) else self.tokenizer.model_max_length
            self.forward_shapes.append((len(text_input_list), padded))  # it pads every query to this length
            return out

    def run_stock(recipe):
        """TextAttack stock: Attacker + HuggingFaceModelWrapper (pads to the tokenizer's max length)."""
        use_encoder(enc_precision)
        try:
            stock_wrapper = holder["stock_wrapper"] = TimedStockWrapper(ctx.model, ctx.tokenizer)
            holder["attack"] = build_attack(recipe, stock_wrapper, query_budget=args.query_budget,
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

    def rate(outs):
        attacked = [o for o in outs if o != "skipped"]
        return sum(o == "successful" for o in attacked) / len(attacked) if attacked else float("nan")

    before_precision = enc_precision if args.before_encoder_precision == "same" else args.before_encoder_precision
    totals = {"before_s": 0.0, "cold_s": 0.0, "warm_s": 0.0, "stock_s": 0.0, "victim_s": 0.0, "stock_victim_s": 0.0}
    victim_dtype = torch.bfloat16 if ctx.precision == "bf16" else torch.float32
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_train import roof  # the machine's matmul roof, measured as the training benchmark measures it

    machine_roof = roof(victim_dtype, torch.device(ctx.device))
    # the stock wrapper always runs in fp32: its share of the roof is against the fp32 roof
    fp32_roof = machine_roof if victim_dtype == torch.float32 else roof(torch.float32, torch.device(ctx.device))

    def victim(wrapper, seconds: float, roof_gflops: float | None = None) -> dict:
        roof_gflops = roof_gflops or machine_roof
        flops = encoder_flops(ctx.model.config, wrapper.forward_shapes)
        texts_run = sum(n for n, _ in wrapper.forward_shapes)
        return {"seconds": wrapper.forward_seconds, "share_of_attack": wrapper.forward_seconds / seconds,
                "batches": len(wrapper.forward_shapes), "texts": texts_run,
                "mean_padded_length": sum(n * length for n, length in wrapper.forward_shapes) / max(texts_run, 1),
                "gflop": flops / 1e9, "gflop_per_s": flops / 1e9 / wrapper.forward_seconds if wrapper.forward_seconds else None,
                "pct_of_roof": 100 * flops / 1e9 / wrapper.forward_seconds / roof_gflops if wrapper.forward_seconds else None}
    try:
        for recipe in recipes:
            # robench before (the recipe preset, fp32 sentence encoder, no on-disk caches), robench now with the
            # caches cold, then warm, then the stock runner (no on-disk caches)
            if not args.no_before:
                cache_mode(False)
                before_records, before_s, _ = timed_robench(recipe, args.before_constraints, before_precision)
            cache_mode(True)
            if temporary:
                for path in os.listdir(cache_folder):  # every recipe starts cold
                    os.remove(os.path.join(cache_folder, path))
            records, robench_s, wrapper = timed_robench(recipe, args.constraints, enc_precision)
            cold_stats = cache.stats()
            if not args.no_warm:
                cache.clear_memory()
                cache.reset_stats()
                warm_records, warm_s, warm_wrapper = timed_robench(recipe, args.constraints, enc_precision)
                warm_stats = cache.stats()
            if args.agreement:  # the victim's queries in bf16, caches warm: only the model's precision differs
                cache.clear_memory()
                bf16_records, bf16_s, _ = timed_robench(recipe, args.constraints, enc_precision, "bf16")
            cache.close_all()
            if not args.no_stock:
                cache_mode(False)
                stock_results, stock_s = run_stock(recipe)

            ours = [r["outcome"] for r in records]
            report = {
                "recipe": recipe, "n": len(indices), "seed": args.seed, "device": ctx.device,
                "precision": ctx.precision, "model": ctx.run.model.name,
                "constraints": args.constraints, "label_preservation": lp, "encoder_precision": enc_precision,
                "robench_examples_per_s": len(indices) / robench_s,
                "robench_success_rate": rate(ours),
                "robench_queries": int(sum(r["queries"] for r in records)),
                "robench_forward_texts": wrapper.forward_texts,
                "cache_cold": cold_stats,
            }
            totals["cold_s"] += robench_s
            # the victim's share: the warm pass where there is one (what the next run of a board sees)
            ref_wrapper, ref_s = (wrapper, robench_s) if args.no_warm else (warm_wrapper, warm_s)
            report["victim"] = {"pass": "cold" if args.no_warm else "warm", "precision": ctx.precision,
                                "roof_gflop_per_s": machine_roof, **victim(ref_wrapper, ref_s)}
            totals["victim_s"] += ref_wrapper.forward_seconds
            if not args.no_before:
                totals["before_s"] += before_s
                report["before"] = {"constraints": args.before_constraints, "encoder_precision": before_precision,
                                    "examples_per_s": len(indices) / before_s,
                                    "success_rate": rate([r["outcome"] for r in before_records]),
                                    "queries": int(sum(r["queries"] for r in before_records))}
                report["speedup_vs_before"] = before_s / robench_s
            if not args.no_warm:
                totals["warm_s"] += warm_s
                report.update({
                    "robench_warm_examples_per_s": len(indices) / warm_s,
                    "warm_speedup_vs_cold": robench_s / warm_s,
                    "cold_warm_identical": [_strip(r) for r in records] == [_strip(r) for r in warm_records],
                    "cache_warm": warm_stats,
                })
                if not args.no_before:
                    report["warm_speedup_vs_before"] = before_s / warm_s
            if args.agreement:
                reference = warm_records if not args.no_warm else records
                reference_s = warm_s if not args.no_warm else robench_s
                report["bf16_agreement"] = {
                    "victim_precision": f"bf16 against {ctx.precision}", "n": len(indices),
                    "same_outcomes": sum(a["outcome"] == b["outcome"] for a, b in zip(reference, bf16_records,
                                                                                         strict=True)),
                    "same_perturbed_text": sum(a.get("perturbed") == b.get("perturbed")
                                               for a, b in zip(reference, bf16_records, strict=True)),
                    "success_rate": rate([r["outcome"] for r in bf16_records]),
                    "examples_per_s": len(indices) / bf16_s, "speedup": reference_s / bf16_s,
                }
            if not args.no_stock:
                totals["stock_s"] += stock_s
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
                if not args.no_warm:
                    report["warm_speedup_vs_stock"] = stock_s / warm_s
                stock_victim = {**victim(holder["stock_wrapper"], stock_s, fp32_roof), "precision": "fp32",
                                "roof_gflop_per_s": fp32_roof}
                report["victim"]["stock"] = stock_victim
                report["victim"]["ceiling_vs_stock"] = stock_s / ref_wrapper.forward_seconds
                totals["stock_victim_s"] += stock_victim["seconds"]
            print(json.dumps(report), flush=True)
    finally:
        cache.close_all()
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if temporary:
            shutil.rmtree(cache_folder, ignore_errors=True)

    if len(recipes) > 1:
        examples = len(indices) * len(recipes)
        total = {"recipe": "total", "recipes": recipes, "n": len(indices),
                 "robench_examples_per_s": examples / totals["cold_s"]}
        if not args.no_warm:
            total["robench_warm_examples_per_s"] = examples / totals["warm_s"]
        if not args.no_before:
            total["speedup_vs_before"] = totals["before_s"] / totals["cold_s"]
        if not args.no_stock:
            total["stock_examples_per_s"] = examples / totals["stock_s"]
            total["speedup_vs_stock"] = totals["stock_s"] / totals["cold_s"]
            if not args.no_warm:
                total["warm_speedup_vs_stock"] = totals["stock_s"] / totals["warm_s"]
            total["victim_ceiling_vs_stock"] = totals["stock_s"] / totals["victim_s"]
            total["stock_victim_share"] = totals["stock_victim_s"] / totals["stock_s"]
        reference_s = totals["cold_s"] if args.no_warm else totals["warm_s"]
        total["victim_share"] = totals["victim_s"] / reference_s
        print(json.dumps(total))


if __name__ == "__main__":
    main()
