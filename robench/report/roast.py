"""RoAST's five-number summary from robench result files: one row per run (``robench table --format roast``).

RoAST (Kim et al., "RoAST: Robustifying Language Models via Adversarial Perturbation with Selective
Training", EMNLP 2023 Findings) evaluates a fine-tuned model with its released script ``robust_eval.py``
(github.com/bbuing9/RoAST) and prints one line, ``inD: .., ooD: .., adv: .., ece: .., auroc: ..``. This
module computes that line from a run's robench results, the way the script does:

1. Every per-set number is first truncated (not rounded) to three decimals in the script's own units:
   accuracy in percent (``int(1000 * acc) / 1000`` of a percentage), ECE and AUROC as fractions
   (``int(1000 * ece) / 1000``). robench stores fractions, so an accuracy is multiplied by 100 before its
   truncation; a 1e-9 is added before the floor so that a value like 0.29 (28.999999999999996 in binary
   floating point) truncates to 29.0, as the script's exact float32 count ratios do.
2. ``inD``: the mean accuracy of the in-distribution sets: the task's test set (the ``id`` evaluator's
   ``accuracy``), plus, on MNLI, the mismatched validation set, which RoAST counts as in-distribution
   (:data:`IN_DISTRIBUTION_SHIFT`: the shift set ``mnli_mm`` of ``tasks/mnli.yaml``). For SST-2 this is
   ``all_res[0]``; for MNLI ``sum(all_res[:2]) / 2``, as in the script.
3. ``ooD``: the unweighted mean accuracy over the shift sets (the ``shift`` evaluator's
   ``accuracy.<set>``), the in-distribution ones of step 2 left out (the script's ``all_res[1:]`` /
   ``all_res[2:]``).
4. ``adv``: the unweighted mean accuracy over the static adversarial sets (the ``adversarial``
   evaluator's ``transfer.<set>``; without that result, the ``calibration`` evaluator's
   ``sets.adversarial:<set>.accuracy``, the same number). Attack recipes (``accuracy_under_attack``) are
   not part of it: the script scores fixed adversarial sets only.
5. ``ece``: the unweighted mean ECE over every in-distribution, shift and adversarial set (the script's
   ``all_ece``: its evaluation sets, then its adversarial sets): the ``calibration`` evaluator's ``id.ece``
   and ``sets.<set>.ece``, whichever protocol it ran with (the per-set values do not depend on whether
   its own headline includes the in-distribution set).
6. ``auroc``: the unweighted mean AUROC over the OOD sets of the maximum-softmax-probability detector
   (the ``anomaly`` evaluator's ``scores.msp.<set>.auroc``; the script's ``get_ood_metrics`` scores MSP).

All five are reported in percent (the script prints ECE and AUROC as fractions); a part without its result
file is empty, and each row counts the sets behind every part (``n_ind`` ... ``n_auroc``) so that a run
evaluated on fewer sets than the protocol's is visible.

What is the script's and what is robench's, checked against robust_eval.py and evals/test_acc.py of the
repository as released (commit f870d4d): the set lists, the truncation, the averages and which sets each
average covers (steps 1-6) follow the script. The per-set numbers are robench's and differ from the
script's where the evaluators differ: the script's ECE picks a temperature for each set by 10-fold cross
validation on that set itself (from the grid 0.25 ... 8, passing the grid *index* on as the temperature),
robench fits one temperature on the task's calibration split; the script's MNLI OOD reference is the
mismatched validation set, robench's is the task's test set (matched). On HANS, QNLI, WNLI and NQ-NLI the
script counts a predicted neutral as non-entailment; so does robench, by the sets' ``merge_predictions``
in ``tasks/mnli.yaml`` (the shift evaluator's accuracies). Not verified:
how the paper's tables round these numbers.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from robench.results import ResultRecord, load_results

ROAST_COLUMNS = ("inD", "ooD", "adv", "ece", "auroc")
COUNT_COLUMNS = ("n_ind", "n_ood", "n_adv", "n_ece", "n_auroc")
KEY_COLUMNS = ("task", "model", "method", "seed")
# Shift sets that RoAST's summary counts as in-distribution, by task name.
IN_DISTRIBUTION_SHIFT: dict[str, tuple[str, ...]] = {"mnli": ("mnli_mm",)}
HEADLINE_DETECTOR = "msp"


def truncate3(value: float) -> float:
    """``int(1000 * value) / 1000`` of robust_eval.py for the non-negative values it truncates, with a 1e-9
    guard against binary representation error (see the module docstring, step 1)."""
    return math.floor(value * 1000 + 1e-9) / 1000


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _metrics(rec: ResultRecord | None) -> dict[str, Any]:
    """A result's metrics as written (nested; set names may hold dots or colons, so never flattened)."""
    return rec.file.metrics if rec is not None else {}


def roast_row(results: dict[str, ResultRecord]) -> dict[str, Any]:
    """One run's summary from its results by evaluator name (``id``, ``shift``, ``adversarial``,
    ``calibration``, ``anomaly``); see the module docstring for each part."""
    first = next(iter(results.values()))
    task_name = str(first.file.run.task or "")
    id_shift = IN_DISTRIBUTION_SHIFT.get(task_name, ())
    id_m, shift_m = _metrics(results.get("id")), _metrics(results.get("shift"))
    adv_m, cal_m = _metrics(results.get("adversarial")), _metrics(results.get("calibration"))
    anomaly_m = _metrics(results.get("anomaly"))
    cal_sets = cal_m.get("sets") if isinstance(cal_m.get("sets"), dict) else {}
    cal_id = cal_m.get("id") if isinstance(cal_m.get("id"), dict) else {}

    # ---- accuracies (fractions -> percent, truncated)
    id_acc = next((v for v in (_number(id_m.get("accuracy")), _number(shift_m.get("id_accuracy")),
                               _number(cal_id.get("accuracy"))) if v is not None), None)
    shift_acc: dict[str, float] = {}
    if isinstance(shift_m.get("accuracy"), dict):
        shift_acc = {n: v for n, raw in shift_m["accuracy"].items() if (v := _number(raw)) is not None}
    else:  # no shift result: the calibration evaluator scores the same sets
        shift_acc = {n: v for n, s in cal_sets.items() if not n.startswith("adversarial:") and isinstance(s, dict)
                     and (v := _number(s.get("accuracy"))) is not None}
    adv_acc: dict[str, float] = {}
    if isinstance(adv_m.get("transfer"), dict):
        adv_acc = {n: v for n, raw in adv_m["transfer"].items() if (v := _number(raw)) is not None}
    else:
        adv_acc = {n.split(":", 1)[1]: v for n, s in cal_sets.items() if n.startswith("adversarial:")
                   and isinstance(s, dict) and (v := _number(s.get("accuracy"))) is not None}
    ind = ([truncate3(100 * id_acc)] if id_acc is not None else []) + \
        [truncate3(100 * shift_acc[n]) for n in id_shift if n in shift_acc]
    ood = [truncate3(100 * v) for n, v in shift_acc.items() if n not in id_shift]
    adv = [truncate3(100 * v) for v in adv_acc.values()]

    # ---- ECE over the in-distribution, shift and adversarial sets; AUROC over the OOD sets (fractions)
    eces = [truncate3(v) for v in [_number(cal_id.get("ece")),
                                   *(_number(s.get("ece")) for s in cal_sets.values() if isinstance(s, dict))]
            if v is not None]
    detector = (anomaly_m.get("scores") or {}).get(HEADLINE_DETECTOR) if isinstance(anomaly_m.get("scores"), dict) \
        else None
    aurocs = []
    if isinstance(detector, dict):
        aurocs = [truncate3(v) for n, s in detector.items() if n != "mean" and isinstance(s, dict)
                  and (v := _number(s.get("auroc"))) is not None]
    return {
        "task": first.task, "model": first.model, "method": first.method, "seed": first.seed,
        "inD": _mean(ind), "ooD": _mean(ood), "adv": _mean(adv),
        "ece": 100 * _mean(eces), "auroc": 100 * _mean(aurocs),
        "n_ind": len(ind), "n_ood": len(ood), "n_adv": len(adv), "n_ece": len(eces), "n_auroc": len(aurocs),
    }


def roast_rows(records: Iterable[ResultRecord]) -> list[dict[str, Any]]:
    """One summary row per run (task, model, method, seed), in the records' order (sorted by run)."""
    runs: dict[tuple[str, str, str, str], dict[str, ResultRecord]] = {}
    for rec in records:
        runs.setdefault((rec.task, rec.model, rec.method, str(rec.seed)), {})[rec.evaluator] = rec
    return [roast_row(results) for results in runs.values()]


def load_roast_rows(roots: Path | str | Iterable[Path | str]) -> list[dict[str, Any]]:
    """:func:`roast_rows` of every result under ``roots`` (folders of runs or result files)."""
    return roast_rows(load_results(roots))


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}" if math.isfinite(value) else "–"
    return str(value)


def roast_text(rows: list[dict[str, Any]], digits: int = 2) -> str:
    """The rows as an aligned plain-text table (percent, ``digits`` decimals; ``–`` where a part has no
    result), with a note on what each column averages."""
    headers = [*KEY_COLUMNS, *ROAST_COLUMNS, "sets (inD/ooD/adv/ece/auroc)"]
    body = [[*(_cell(r[k], digits) for k in (*KEY_COLUMNS, *ROAST_COLUMNS)),
             "/".join(str(r[k]) for k in COUNT_COLUMNS)] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in body)) if body else len(h) for i, h in enumerate(headers)]
    numeric = set(range(len(KEY_COLUMNS), len(KEY_COLUMNS) + len(ROAST_COLUMNS)))

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    out = [line(headers), line(["-" * w for w in widths]), *(line(cells) for cells in body)]
    if not rows:
        out.append("(no results)")
    out.append("RoAST's summary (robust_eval.py), in percent: inD = in-distribution accuracy, ooD = mean shift-set "
               "accuracy, adv = mean static adversarial-set accuracy, ece = mean ECE over those sets, auroc = mean "
               "MSP AUROC over the OOD sets; each per-set value truncated to 3 decimals first "
               "(robench.report.roast).")
    return "\n".join(out).rstrip() + "\n"


def roast_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV: every value unrounded beyond 6 decimals, an empty cell where a part has no result."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*KEY_COLUMNS, *ROAST_COLUMNS, *COUNT_COLUMNS])
    for r in rows:
        writer.writerow([*(r[k] for k in KEY_COLUMNS),
                         *("" if not math.isfinite(r[k]) else f"{round(r[k], 6):.6f}".rstrip("0").rstrip(".")
                           for k in ROAST_COLUMNS),
                         *(r[k] for k in COUNT_COLUMNS)])
    return buffer.getvalue()
