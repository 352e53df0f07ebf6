"""Attack a seeded sample of a labelled set, logging each example to JSONL as it finishes.

The log starts with a header line (recipe, seed, sample, query budget, model and data identity);
each following line is one attacked example. A restart with the same header resumes after the
last complete line (a torn last line is dropped); a different header starts a fresh log (the old
one is kept as ``*.stale``). Every example is attacked with its own seeded RNG state and a fresh
goal-function cache, so an interrupted-and-resumed attack gives the same outcomes as one run.

Metrics follow TextAttack's summary (accuracies and success rate as fractions in [0, 1]):
original accuracy, accuracy under attack, attack success rate, average perturbed word %
(over successful attacks), average number of queries (over non-skipped examples), counts.

Validity (``robench.attacks.validity``): with a ``checker``, each successful example's record holds
``words_changed_fraction``, ``min_word_cos``, ``sentence_similarity`` and ``valid`` (passes the strict
preset post hoc); they are null for failed and skipped examples and, but for ``words_changed_fraction``,
when no checker is given. ``valid_success_rate`` = valid successes / attacked examples.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

# 2: validity fields per record, constraint preset and checker in the header; 3: under `valid` the sentence check
# encodes the whole text (it read the text between its first and last word), a case-only edit is judged, and the
# tagger checks every swapped word again in each new candidate (it checked only the newest)
LOG_VERSION = 3


def sample_indices(size: int, n: int | None, seed: int) -> list[int]:
    """A seeded sample of ``n`` distinct indices of a set of ``size`` (all of it, shuffled, if n >= size)."""
    perm = np.random.RandomState(seed).permutation(size)
    return [int(i) for i in (perm if n is None else perm[:n])]


def _example_seed(seed: int, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:4], "little")


def read_log(path: Path) -> tuple[dict | None, list[dict]]:
    """Header and complete example records of a log (a torn or invalid trailing line is ignored)."""
    if not path.exists():
        return None, []
    header, records = None, []
    with open(path, encoding="utf-8", errors="replace") as f:  # a non-UTF-8 line fails json, below
        for line in f:
            if not line.endswith("\n"):
                break  # torn write
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                break
            if not isinstance(obj, dict) or "\ufffd" in line:
                break  # not a record of ours (or not UTF-8): keep what came before, redo the rest
            if obj.get("type") == "header" and header is None:
                header = obj
            elif obj.get("type") == "example" and header is not None:
                records.append(obj)
    return header, records


def _rewrite(path: Path, header: dict, records: list[dict]) -> None:
    from robench.storage import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in [header, *records]))


def _outcome(result) -> str:
    from textattack.attack_results import FailedAttackResult, SkippedAttackResult, SuccessfulAttackResult

    if isinstance(result, SuccessfulAttackResult):
        return "successful"
    if isinstance(result, SkippedAttackResult):
        return "skipped"
    if isinstance(result, FailedAttackResult):
        return "failed"
    return "failed"


VALIDITY_FIELDS = ("words_changed_fraction", "min_word_cos", "sentence_similarity", "valid")


def attack_one(attack, text: str, label: int, *, seed: int, index: int, checker=None) -> dict[str, Any]:
    """Attack one example deterministically; returns its log record (without position fields)."""
    s = _example_seed(seed, index)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
    attack.clear_cache()  # queries and outcomes of this example do not depend on earlier ones
    start = time.perf_counter()
    result = attack.attack(text, int(label))
    seconds = time.perf_counter() - start
    original = result.original_result
    perturbed = result.perturbed_result
    outcome = _outcome(result)
    words = len(original.attacked_text.words)
    changed = len(original.attacked_text.all_words_diff(perturbed.attacked_text)) if outcome == "successful" else 0
    perturbed_text = perturbed.attacked_text.text if outcome == "successful" else text
    validity: dict[str, Any] = dict.fromkeys(VALIDITY_FIELDS)
    if outcome == "successful":
        validity["words_changed_fraction"] = changed / words if words else 0.0
        if checker is not None:
            checked = checker.check(text, perturbed_text)
            validity.update({k: checked[k] for k in VALIDITY_FIELDS})
            for key in ("min_word_cos", "sentence_similarity"):
                if validity[key] is not None:
                    validity[key] = round(float(validity[key]), 6)
    return {
        "index": int(index), "original": text, "perturbed": perturbed_text,
        "label": int(label), "original_prediction": int(original.output), "perturbed_prediction": int(perturbed.output),
        "outcome": outcome, "queries": int(perturbed.num_queries), "num_words": words, "words_changed": changed,
        **validity, "seconds": round(seconds, 4),
    }


def log_header(attack, header: dict[str, Any], *, seed: int, indices: list[int], checker=None) -> dict[str, Any]:
    """The header line of a log of ``indices``: what a log must agree on to be resumed."""
    return {"type": "header", "version": LOG_VERSION, **header,
            "attack_constraints": getattr(attack, "robench_constraints", None),
            "checker": checker.describe() if checker is not None else None, "seed": seed,
            "indices_sha": hashlib.sha256(json.dumps(list(indices)).encode()).hexdigest()[:16]}


def write_log(path: Path, header: dict[str, Any], records: list[dict]) -> None:
    """Write a whole log at once (atomically): the header line, then the records."""
    _rewrite(Path(path), header, records)


def shard_log_path(path: Path, rank: int, count: int) -> Path:
    """The log of process ``rank`` of ``count`` beside the single-process log ``path``:
    ``attack-....jsonl`` -> ``attack-....rank0of2.jsonl``. Never the name of a whole-sample log."""
    path = Path(path)
    return path.with_name(f"{path.stem}.rank{rank}of{count}{path.suffix}")


def run_attack(attack, texts: list[str], labels, *, indices: list[int], log_path: Path, header: dict[str, Any],
               seed: int, max_examples: int | None = None,
               on_example: Callable[[dict], None] | None = None, checker=None) -> list[dict]:
    """Attack ``texts[i]`` for i in ``indices`` (resuming from ``log_path``); returns all records in order.

    ``max_examples`` stops after that many newly attacked examples (the log stays resumable). ``checker``
    (a ``ValidityChecker``) fills the validity fields of successful examples. The header records the
    attack's constraint preset (``attack.robench_constraints``, set by ``build_attack``) and the checker's
    settings, so a log made under other constraints or another checker is not resumed.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    header = log_header(attack, header, seed=seed, indices=indices, checker=checker)
    old_header, records = read_log(log_path)
    if old_header is not None and old_header != json.loads(json.dumps(header)):
        log_path.replace(log_path.with_name(log_path.name + ".stale"))
        old_header, records = None, []
    expected = list(indices)
    good: list[dict] = []
    for rec in records:  # keep the longest prefix that matches the sample order
        if len(good) < len(expected) and rec.get("i") == len(good) and rec.get("index") == expected[len(good)]:
            good.append(rec)
        else:
            break
    _rewrite(log_path, header, good)
    done = len(good)
    new = 0
    with open(log_path, "a", encoding="utf-8") as f:
        for pos in range(done, len(expected)):
            if max_examples is not None and new >= max_examples:
                break
            idx = expected[pos]
            rec = {"type": "example", "i": pos, **attack_one(attack, texts[idx], int(labels[idx]), seed=seed, index=idx,
                                                             checker=checker)}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()
            good.append(rec)
            new += 1
            if on_example is not None:
                on_example(rec)
    return good


def summarize(records: list[dict]) -> dict[str, Any]:
    """TextAttack's summary metrics over attack records (fractions, not percentages, for accuracies), plus
    ``num_valid`` and ``valid_success_rate`` (valid successes / attacked; NaN when nothing was attacked or
    when a success has no validity verdict, e.g. a log made without a checker)."""
    total = len(records)
    succ = [r for r in records if r["outcome"] == "successful"]
    fail = [r for r in records if r["outcome"] == "failed"]
    skip = [r for r in records if r["outcome"] == "skipped"]
    attacked = succ + fail
    pct = [100.0 * r["words_changed"] / max(r["num_words"], 1) for r in succ]
    verdicts = [r.get("valid") for r in succ]
    num_valid = sum(v is True for v in verdicts)
    known = attacked and all(v is not None for v in verdicts)
    return {
        "original_accuracy": (total - len(skip)) / total if total else float("nan"),
        "accuracy_under_attack": len(fail) / total if total else float("nan"),
        "attack_success_rate": len(succ) / len(attacked) if attacked else float("nan"),
        "avg_perturbed_word_pct": float(np.mean(pct)) if pct else 0.0,
        "avg_num_queries": float(np.mean([r["queries"] for r in attacked])) if attacked else 0.0,
        "valid_success_rate": num_valid / len(attacked) if known else float("nan"),
        "num_valid": num_valid,
        "num_successful": len(succ),
        "num_failed": len(fail),
        "num_skipped": len(skip),
        "num_examples": total,
        "seconds_per_example": float(np.mean([r["seconds"] for r in records])) if records else 0.0,
    }
