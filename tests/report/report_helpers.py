"""Synthetic result files for the board tests (not a test module): write_result writes one evaluator's
result with its declared metrics, make_suite a run's five results with per-example outcomes."""

from __future__ import annotations

import numpy as np

from robench.evaluators import EVALUATORS
from robench.identity import result_path
from robench.results import make_result
from robench.storage import atomic_write_json


def write_result(root, method, seed, evaluator, metrics, details=None, *, model="tiny", task="sentiment",
                 cost=1e-3, selective=False, artifacts=None, wall_time_s=0.0, train_wall=None):
    run = {"run_id": f"{task}/{model}/{method}/seed{seed}", "task": {"name": task, "profile": "default"},
           "model": {"name": model}, "method": {"name": method, "selective": selective}, "seed": seed,
           "training": {"seconds_per_example": cost, **({"wall_seconds": train_wall} if train_wall is not None else {})}}
    run_dir = root / task / model / (method + ("+selective" if selective else "")) / f"seed{seed}"
    atomic_write_json(result_path(run_dir, evaluator),
                      make_result(evaluator, run, metrics, details=details, artifacts=artifacts,
                                  specs=EVALUATORS.get(evaluator).metrics, wall_time_s=wall_time_s))
    return run_dir


def bits(acc: float, n: int = 200, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return "".join("1" if x else "0" for x in rng.random(n) < acc)


def exact_bits(k: int, n: int, seed: int) -> str:
    """n outcomes with exactly k ones, in a seeded random order."""
    order = np.random.default_rng(seed).permutation(n)
    return "".join("1" if i < k else "0" for i in order)


def ece_examples(ece: float, n: int = 200, acc: float = 0.6, pattern: int = 7) -> dict:
    """Calibration per-example data whose headline ECE is exactly ``ece``: in each of two sets every
    confidence is acc + ece and exactly acc * n examples are correct (the same examples for every method)."""
    sets = {name: {"confidence": [acc + ece] * n, "correct": exact_bits(round(acc * n), n, pattern + i)}
            for i, name in enumerate(("amazon", "tweets"))}
    return {"bins": 10, "temperature": 1.0, "sets": sets}


def scores_with_auroc(auroc: float, n: int, seed: int) -> tuple[list[float], list[float]]:
    """In-distribution scores 0..n-1 and n OOD scores whose AUROC against them is exactly ``auroc``:
    an OOD score c - 0.5 lies above exactly c in-scores, and the c sum to auroc * n * n."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, n + 1, size=n)
    target = round(auroc * n * n)
    while counts.sum() != target:  # step random counts towards the target, staying in [0, n]
        j = rng.integers(n)
        counts[j] = min(n, counts[j] + 1) if counts.sum() < target else max(0, counts[j] - 1)
    return [float(i) for i in range(n)], [float(c) - 0.5 for c in counts]


def auroc_examples(auroc: float, seed: int, n: int = 200) -> dict:
    scores_in, trec = scores_with_auroc(auroc, n, seed)
    _, sms = scores_with_auroc(auroc, n, seed + 1000)
    return {"score": "msp", "in": scores_in, "out": {"trec": trec, "sms": sms}}


def make_suite(root, method, seed, acc, *, shift=None, ece=0.1, auroc=0.8, attack=0.3, transfer=0.5, cost=1e-3,
               model="tiny", n=200):
    correct = bits(acc, n, seed)
    real = correct.count("1") / n
    write_result(root, method, seed, "id", {"accuracy": real, "n": n}, {"correct": correct}, model=model, cost=cost)
    s_acc = shift if shift is not None else acc - 0.1
    sets = {"amazon": bits(s_acc, n, seed + 100), "tweets": bits(s_acc, n, seed + 200)}
    accs = {k: v.count("1") / n for k, v in sets.items()}
    write_result(root, method, seed, "shift", {"mean_accuracy": float(np.mean(list(accs.values()))),
                                               "drop": real - float(np.mean(list(accs.values()))), "accuracy": accs},
                 {"correct": sets}, model=model, cost=cost)
    write_result(root, method, seed, "calibration", {"ece": ece, "ece_raw": ece * 2, "temperature": 1.0},
                 {"examples": ece_examples(ece)}, model=model, cost=cost)
    write_result(root, method, seed, "anomaly", {"auroc": auroc, "aupr": auroc - 0.1, "fpr95": 1 - auroc},
                 {"examples": auroc_examples(auroc, seed)}, model=model, cost=cost)
    write_result(root, method, seed, "adversarial", {"accuracy_under_attack": attack, "transfer_accuracy": transfer,
                                                     "recipes": {"textfooler": {"accuracy_under_attack": attack}}},
                 {"robust": {"test:sample": exact_bits(round(attack * 100), 100, seed + 300)},
                  "transfer_correct": {"tf": exact_bits(round(transfer * 100), 100, seed + 400)}},
                 model=model, cost=cost)
