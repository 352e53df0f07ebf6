"""Where does vanilla's validation accuracy plateau? One training per (epochs, seed), then a plot.

    python benchmarks/epochs_curve.py --epochs 1,2,3,4,6 --seeds 0,1,2 --out results/epochs
    python benchmarks/epochs_curve.py --model tiny-bert --limit 48 --epochs 1,2 --seeds 0   # seconds

Each point is a separate ``robench train`` run with that many epochs (the linear schedule decays
to zero at the end of each, as a real run would; reading epoch k of one long run instead would
mix in a learning rate that has not decayed). Runs are resumable: finished ones are read back.
Reported per number of epochs: validation accuracy of the selected (best) epoch, mean and std
over seeds, and the training wall time. The plateau is the fewest epochs whose mean is within
``--tolerance`` points of the best mean (default: the seed std of the best point, i.e. more
epochs buy less than the noise between seeds). Writes ``<out>/epochs.png`` and ``<out>/epochs.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from robench.results import atomic_write_json
from robench.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="vanilla")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--epochs", default="1,2,3,4,6")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--runs-dir", default="runs-epochs")
    parser.add_argument("--out", default="results/epochs")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="points of accuracy counted as a plateau (default: the best point's seed std)")
    args = parser.parse_args()
    epochs = [int(e) for e in args.epochs.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for e in epochs:
        accs, walls = [], []
        for seed in seeds:
            out = Path(args.runs_dir) / f"{args.method}-e{e}" / f"seed{seed}"
            if not (out / "run.json").exists():
                train(TrainConfig(method=args.method, model=args.model, seed=seed, epochs=e, precision=args.precision,
                                  limit=args.limit, out=str(out)))
            tr = json.loads((out / "run.json").read_text())["training"]
            accs.append(100 * tr["best_val_accuracy"])
            walls.append(tr["wall_seconds"])
        rows.append({"epochs": e, "val_acc": accs, "mean": float(np.mean(accs)),
                     "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0, "wall_s": float(np.mean(walls))})
    top = max(rows, key=lambda r: r["mean"])
    best = top["mean"]
    tolerance = top["std"] if args.tolerance is None else args.tolerance
    plateau = next(r["epochs"] for r in rows if r["mean"] >= best - tolerance)
    print(f"{args.method} on {args.model}, seeds {seeds}, precision {args.precision}: validation accuracy (%)")
    print(f"{'epochs':>6} {'mean':>6} {'std':>5} {'per seed':<24} {'train s':>8}")
    for r in rows:
        print(f"{r['epochs']:>6} {r['mean']:>6.1f} {r['std']:>5.1f} {', '.join(f'{a:.1f}' for a in r['val_acc']):<24} "
              f"{r['wall_s']:>8.0f}")
    print(f"plateau (fewest epochs within {tolerance:.2f} points of the best mean {best:.1f}): {plateau}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    xs = [r["epochs"] for r in rows]
    ax.errorbar(xs, [r["mean"] for r in rows], yerr=[r["std"] for r in rows], marker="o", capsize=3,
                label=f"{args.method}, mean ± std over {len(seeds)} seeds")
    for i in range(len(seeds)):
        ax.plot(xs, [r["val_acc"][i] for r in rows], lw=0.6, alpha=0.5, color="grey")
    ax.axvline(plateau, ls="--", color="tab:red", lw=0.8, label=f"plateau: {plateau} epochs")
    ax.set_xlabel("training epochs (one run each, linear decay to 0)")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_xticks(xs)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "epochs.png", dpi=120)
    atomic_write_json(out / "epochs.json", {"method": args.method, "model": args.model, "seeds": seeds,
                                            "precision": args.precision, "limit": args.limit, "rows": rows,
                                            "tolerance": tolerance, "plateau": plateau})
    print(f"written: {out / 'epochs.png'}, {out / 'epochs.json'}")


if __name__ == "__main__":
    main()
