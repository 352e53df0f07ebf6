"""Do two protocols give the same scores? Compare the result files of two run folders method by method.

    python benchmarks/compare_runs.py runs/sentiment/minilm runs-bf16/sentiment/minilm --methods vanilla,ram

For example fp32 training against bf16 autocast (issue 11: bf16 becomes a default only if every
aspect is unchanged within noise). Per method and leaderboard aspect: mean and sample std over
seeds on each side, the difference, and where the aspect stores per-example outcomes (ID, shift,
attack, transfer) the paired bootstrap p-value of B against A on the same examples, seeds held
fixed (the leaderboard's ``--significance examples`` test, ``robench.report.stats.paired_bootstrap``;
the board's default also resamples seeds). "within noise": |difference| is
at most the larger seed std of the two sides.
"""

from __future__ import annotations

import argparse

import numpy as np

from robench.report.aspects import resolve_aspects
from robench.report.stats import outcome_sets, paired_bootstrap
from robench.results import load_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="folder of protocol A's runs (the reference)")
    parser.add_argument("b", help="folder of protocol B's runs")
    parser.add_argument("--methods", default=None, help="methods to compare (default: those on both sides)")
    parser.add_argument("--aspects", default=None, help="leaderboard aspects (default: the board's six)")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    a, b = load_results(args.a), load_results(args.b)
    aspects = resolve_aspects(args.aspects, a + b)
    methods = args.methods.split(",") if args.methods else sorted({r.method for r in a} & {r.method for r in b})
    print(f"A = {args.a}, B = {args.b}; mean ± std over seeds in percent; p: paired bootstrap of B vs A")
    print(f"{'method':<9} {'aspect':<22} {'A':>14} {'B':>14} {'B - A':>7} {'p':>6}  verdict")
    for method in methods:
        for aspect in aspects:
            sides = []
            for recs in (a, b):
                mine = [r for r in recs if r.method == method and r.evaluator == aspect.evaluator
                        and aspect.metric in r.metrics]
                values = np.array([100 * r.metrics[aspect.metric] for r in mine])
                sets = [o for r in mine if aspect.bootstrap and (o := outcome_sets(r.details.get(aspect.per_example)))]
                sides.append((values, sets))
            (va, sa), (vb, sb) = sides
            if not len(va) or not len(vb):
                continue
            sd = [float(np.std(v, ddof=1)) if len(v) > 1 else float("nan") for v in (va, vb)]
            diff = float(vb.mean() - va.mean())
            p = paired_bootstrap(sb, sa, args.bootstrap, 0) if sa and sb else float("nan")
            noise = np.nanmax(sd) if not np.all(np.isnan(sd)) else float("nan")
            verdict = "within noise" if abs(diff) <= noise else "DIFFERS"
            if np.isfinite(p) and p < 0.05:
                verdict += f" (p < .05{', seeds agree' if abs(diff) <= noise else ''})"
            print(f"{method:<9} {aspect.label[:22]:<22} {va.mean():>6.1f} ± {sd[0]:>4.1f} {vb.mean():>6.1f} ± {sd[1]:>4.1f} "
                  f"{diff:>+7.1f} {p:>6.3f}  {verdict}")


if __name__ == "__main__":
    main()
