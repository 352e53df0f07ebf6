"""ECE per method under both temperature fits, with and without the in-distribution set, from result files.

    python benchmarks/ece_protocols.py [RESULTS_DIR ...]    # default: results/files (the committed board)

Reads each calibration result's stored per-example data (``details.examples``: top-label confidence after
scaling by the temperature the result used, and correctness) and both fitted temperatures
(``details.temperature``). For a two-class task the top-label confidence at another temperature follows
exactly from the one stored: the logit margin is ``T * log(c / (1 - c))``, so ``c' = sigmoid(margin / T')``
(correctness does not change with T). Prints, per (task, model, method), the mean and standard deviation
over seeds of four ECEs: {grid, continuous} temperature x {shift + adversarial sets (the paper's headline),
in-distribution + shift + adversarial (robench's)}. The temperatures are the ones the files fitted (on
validation for results before calibration version 3; on the calibration split after).

The script assumes two-class tasks (the committed boards'); a result with a top-label confidence below
0.5 is skipped with a note (with more classes the other temperature's confidence cannot be recovered from
the top label alone); version-3 results store ``fits.<fit>.ece`` directly and need no
recovery, but are recomputed the same way here so the two kinds of file are read alike.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robench import metrics as M  # noqa: E402
from robench.results import load_results  # noqa: E402


def rescale(confidence: np.ndarray, t_used: float, t_new: float) -> np.ndarray:
    """Two-class top-label confidences at temperature ``t_new`` from those at ``t_used``."""
    if confidence.min() < 0.5:
        raise ValueError("a top-label confidence below 0.5: not a two-class task")
    c = np.clip(confidence, 0.5, 1 - 1e-15)  # top label: at least 0.5; 1.0 exactly has no finite margin
    margin = t_used * np.log(c / (1 - c))
    return 1.0 / (1.0 + np.exp(-margin / t_new))


def eces(details: dict) -> dict[tuple[str, bool], float] | None:
    ex, temps = details.get("examples"), details.get("temperature")
    if not isinstance(ex, dict) or not isinstance(temps, dict):
        return None
    t_used, bins = float(ex["temperature"]), int(ex["bins"])
    fits = {"grid": float(temps["grid"]["temperature"]), "continuous": float(temps["continuous"]["temperature"])}
    blocks = {name: b for name, b in ex["sets"].items() if name != "id"}
    out = {}
    for fit, t in fits.items():
        per_set = {}
        for name, block in [*blocks.items(), ("id", ex["id"])]:
            conf = np.asarray(block["confidence"], dtype=np.float64)
            hits = np.frombuffer(block["correct"].encode(), dtype=np.uint8) - ord("0")
            per_set[name] = M.ece_from_confidence(rescale(conf, t_used, t), hits.astype(np.int64), bins)
        out[(fit, False)] = float(np.mean([per_set[n] for n in blocks]))
        out[(fit, True)] = float(np.mean(list(per_set.values())))
    return out


def main(argv: list[str]) -> int:
    folders = [Path(a) for a in argv] or [ROOT / "results" / "files"]
    table: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    skipped, mismatch = 0, 0.0
    for folder in folders:
        for rec in load_results(folder):
            if rec.evaluator != "calibration":
                continue
            if rec.details.get("examples", {}).get("id") is None:
                skipped += 1
                continue
            try:
                values = eces(rec.details)
            except ValueError:
                values = None
            if values is None:
                skipped += 1
                continue
            used = (rec.details["temperature"]["used"], bool(rec.settings.get("headline_includes_id")))
            mismatch = max(mismatch, abs(values[used] - rec.metrics["ece"]))  # the file's own headline, recomputed
            table[(rec.task, rec.model, rec.method)].append(values)
    heads = [("grid", False), ("grid", True), ("continuous", False), ("continuous", True)]
    print("ECE (percent, mean ± std over seeds); temperatures as each file fitted them")
    print(f"{'task / model / method':44} {'seeds':>5} " + " ".join(
        f"{fit + (' +id' if with_id else ' no id'):>16}" for fit, with_id in heads))
    for (task, model, method), runs in sorted(table.items()):
        cells = []
        for head in heads:
            vals = np.array([r[head] for r in runs]) * 100
            cells.append(f"{vals.mean():7.1f} ± {vals.std(ddof=1) if len(vals) > 1 else 0:5.1f}")
        print(f"{task + ' / ' + model + ' / ' + method:44} {len(runs):>5} " + " ".join(f"{c:>16}" for c in cells))
    print(f"check: each file's own headline ECE recomputed from its per-example data, largest difference "
          f"{mismatch:.1e}")
    if skipped:
        print(f"({skipped} calibration result(s) skipped: no per-example in-distribution data or more than two classes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
