"""A fabricated attacked run for the audit tests (not a test module): run.json, attack logs written the way
robench.attacks.runner writes them, and the adversarial result that names them."""

from __future__ import annotations

import csv
import json

LABELS = ["negative", "positive"]
RECIPES = ("textfooler", "pwws")
N = 12  # per recipe: 8 successful, 2 failed, 2 skipped (see outcome)
SUCCESSES = 8
DECOY_INDEX = 9000  # examples only in logs the audit must never read (.stale, one process's shard)


def run_id(method: str = "vanilla", seed: int = 0) -> str:
    return f"sentiment/tiny/{method}/seed{seed}"


def run_record(method: str = "vanilla", seed: int = 0) -> dict:
    return {"schema": "robench.run/1", "run_id": run_id(method, seed),
            "task": {"name": "sentiment", "profile": "default", "labels": LABELS},
            "model": {"name": "tiny"}, "method": {"name": method}, "seed": seed,
            "weights_fingerprint": f"w-{method}-{seed}", "training": {"seconds_per_example": 1e-3}}


def outcome(i: int) -> str:
    """Positions 0-11: successful but for 3, 7 (failed) and 5, 11 (skipped)."""
    return "skipped" if i % 6 == 5 else "failed" if i % 4 == 3 else "successful"


def original_text(recipe: str, index: int) -> str:
    return f"scene {index} of this {recipe} film was good"


def attack_records(recipe: str, n: int = N, indices: list[int] | None = None, word: str = "decent") -> list[dict]:
    """Example records as the runner logs them; a success swaps 'good' for ``word``."""
    indices = indices if indices is not None else [100 + 7 * i for i in range(n)]
    records = []
    for i, index in enumerate(indices):
        out, label = outcome(i), i % 2
        original = original_text(recipe, index)
        success = out == "successful"
        records.append({
            "type": "example", "i": i, "index": index, "original": original,
            "perturbed": original.replace("good", word) if success else original, "label": label,
            "original_prediction": label if out != "skipped" else 1 - label,
            "perturbed_prediction": 1 - label if out != "failed" else label, "outcome": out, "queries": 3,
            "num_words": 7, "words_changed": 1 if success else 0,
            "words_changed_fraction": 1 / 7 if success else None, "min_word_cos": 0.95 if success else None,
            "sentence_similarity": 0.99 if success else None, "valid": (i % 2 == 0) if success else None,
            "seconds": 0.01})
    return records


def write_attack_run(root, method: str = "vanilla", seed: int = 0, *, examples: bool = True, word: str = "decent",
                     decoys: bool = False, result: bool = True):
    """A run folder with run.json, one attack log per recipe (and, with ``decoys``, a stale log and a shard log
    whose successes must never be drawn) and its adversarial result (with ``details.examples`` unless
    ``examples`` is False). Returns the run folder."""
    import numpy as np

    from robench.attacks.runner import shard_log_path, summarize, write_log
    from robench.audit import draw_examples
    from robench.evaluators import EVALUATORS
    from robench.evaluators.adversarial import attack_log_name, with_interval
    from robench.identity import result_path
    from robench.results import make_result
    from robench.storage import atomic_write_json

    run_dir = root / "sentiment" / "tiny" / method / f"seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run_dir / "run.json", run_record(method, seed))
    logs, per_recipe, robust, shown = [], {}, {}, {}
    for recipe in RECIPES:
        records = attack_records(recipe, word=word)
        log = run_dir / "artifacts" / attack_log_name(recipe, N, 0, 1000)
        header = {"type": "header", "version": 2, "recipe": recipe, "split": "test", "n": N, "query_budget": 1000,
                  "seed": 0}
        write_log(log, header, records)
        if decoys:
            decoy = attack_records(recipe, indices=[DECOY_INDEX + i for i in range(N)], word=word)
            write_log(log.with_name(log.name + ".stale"), header, decoy)
            write_log(shard_log_path(log, 0, 2), {**header, "shard": {"rank": 0, "world_size": 2}}, decoy)
        logs.append(f"artifacts/{log.name}")
        summary = summarize(records)
        bits = np.array([r["outcome"] == "failed" for r in records], dtype=np.uint8)
        with_interval(summary, "accuracy_under_attack", float(bits.sum()), len(bits))
        per_recipe[recipe], robust[recipe] = summary, "".join(map(str, bits))
        shown[recipe] = draw_examples(records, 5, 0, LABELS)
    if result:
        metrics = {"accuracy_under_attack": per_recipe["textfooler"]["accuracy_under_attack"],
                   "attack_success_rate": SUCCESSES / 10, "num_examples": N, "recipes": per_recipe}
        details = {"robust": {"test:abc123abc123": robust["textfooler"]},
                   "robust_by_recipe": {r: {"test:abc123abc123": b} for r, b in robust.items()}}
        if examples:
            details["examples"] = shown
        atomic_write_json(result_path(run_dir, "adversarial"),
                          make_result("adversarial", run_record(method, seed), metrics, details=details,
                                      artifacts=logs, specs=EVALUATORS.get("adversarial").metrics))
    return run_dir


def read_sheet(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def fill_sheet(path, ratings: list[tuple[str, str]]) -> list[dict]:
    """Write (label_kept, meaning) into the sheet's rows, in order; returns the filled rows."""
    from robench.audit import SHEET_COLUMNS

    rows = read_sheet(path)
    assert len(rows) == len(ratings), (len(rows), len(ratings))
    for row, (kept, meaning) in zip(rows, ratings, strict=True):
        row["label_kept"], row["meaning"] = kept, meaning
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(SHEET_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def result_of(run_dir) -> dict:
    return json.loads((run_dir / "results" / "adversarial.json").read_text())
