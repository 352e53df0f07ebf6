"""Merge attack sets saved by `robench attack --save` into one validated static adversarial (transfer) set,
with its .source.json record and a datasheet (Markdown) beside it.

    python benchmarks/build_transfer_set.py --out tasks/data/sentiment-valid-transfer.jsonl \
        [--old FORMER_SET.jsonl] SAVED.jsonl [SAVED.jsonl ...]

Every input must come from `robench attack --save` (its .source.json beside it names the source model and
the settings). Each example is checked again post hoc against the `valid` preset (ValidityChecker with the
recorded label preservation); examples that fail are dropped and counted, and so are duplicates: the same
perturbed text from another recipe or source, or a second example of the same original and recipe (the two
source models often yield the same or a near-identical edit; the first source listed wins). `--old` scores a former transfer set with the same checker
and reports the share of its examples each check rejects. The datasheet prints 20 examples drawn with a
fixed seed, swaps marked.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections import Counter
from pathlib import Path

CHECKS = ("bad_edits", "unlisted_swaps", "antonym_swaps", "valence_flips", "pos_changes")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _failures(result: dict) -> list[str]:
    out = [k for k in CHECKS if result.get(k)]
    if result.get("min_word_cos") is not None and result["min_word_cos"] < 0.89:
        out.append("word_cos")
    if result.get("sentence_similarity") is not None and result["sentence_similarity"] < 0.82:
        out.append("sentence_cos")
    return out


def _marked(original: str, perturbed: str) -> str:
    from robench.attacks.validity import _aligned

    wa, wb, diff = _aligned(original, perturbed)
    out = perturbed
    for i in diff:
        out = out.replace(wb[i], f"~~{wa[i]}~~ **{wb[i]}**", 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--old", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from robench.attacks.validity import ValidityChecker
    from robench.storage import atomic_write_text

    sources, kept, seen = [], [], set()
    counts: Counter = Counter()
    failed: Counter = Counter()
    checkers: dict = {}
    for path in args.inputs:
        record = json.loads(path.with_suffix(".source.json").read_text(encoding="utf-8"))
        sources.append({k: record.get(k) for k in ("weights_fingerprint", "run_id", "method", "seed", "task",
                                                     "split", "recipe", "n", "sampling_seed", "query_budget",
                                                     "constraints", "label_preservation", "attacked",
                                                     "successful")} | {"file": path.name})
        lp = record.get("label_preservation")
        checker = checkers.setdefault(lp, ValidityChecker(lp))
        for row in _rows(path):
            key = (record["recipe"], record.get("seed"))
            counts[("successful", *key)] += 1
            result = checker.check(row["original"], row["text"])
            if not result["valid"]:
                counts[("invalid", *key)] += 1
                for name in _failures(result):
                    failed[name] += 1
                continue
            if row["text"] in seen or (row["original"], record["recipe"]) in seen:
                counts[("duplicate", *key)] += 1
                continue
            seen.update({row["text"], (row["original"], record["recipe"])})
            counts[("kept", *key)] += 1
            kept.append({**row, "source_seed": record.get("seed"), "source_weights": record.get("weights_fingerprint")})
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)
    atomic_write_text(args.out, text)
    fingerprints = sorted({s["weights_fingerprint"] for s in sources if s["weights_fingerprint"]})
    summary = {
        "weights_fingerprint": fingerprints[0] if len(fingerprints) == 1 else None,
        "weights_fingerprints": fingerprints,
        "description": f"validated static adversarial set: {len(kept)} examples from {len(args.inputs)} attack sets "
                       f"against {len(fingerprints)} source models, each passing the valid preset",
        "sources": sources, "examples": len(kept),
        "recipe_mix": dict(Counter(r["recipe"] for r in kept)),
        "set_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
    }
    atomic_write_text(args.out.with_suffix(".source.json"), json.dumps(summary, indent=2) + "\n")
    # the datasheet
    lines = [f"# {args.out.name}: datasheet", "", summary["description"] + ".", "",
             "| source seed | recipe | successful | failed the post-hoc valid check | duplicates | kept |",
             "|--:|---|--:|--:|--:|--:|"]
    for src in sources:
        key = (src["recipe"], src["seed"])
        lines.append(f"| {src['seed']} | {src['recipe']} | {counts[('successful', *key)]} | "
                     f"{counts[('invalid', *key)]} | {counts[('duplicate', *key)]} | {counts[('kept', *key)]} |")
    lines += ["", "Source models (weights fingerprints): " + ", ".join(f"`{f}`" for f in fingerprints) + ".",
              "Recipe mix: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["recipe_mix"].items())) + ".", ""]
    if args.old is not None and args.old.exists():
        old = _rows(args.old)
        reasons: Counter = Counter()
        invalid = 0
        checker = ValidityChecker("valence")
        for row in old:
            result = checker.check(row["original"], row["text"])
            invalid += not result["valid"]
            for name in _failures(result):
                reasons[name] += 1
        lines += [f"The former transfer set `{args.old.name}` ({len(old)} examples, `filtered` preset) checked the "
                  f"same way: {invalid} of {len(old)} fail the valid preset. Share of its examples each check "
                  "rejects (an example can fail several):", "",
                  "| check | examples rejected | share |", "|---|--:|--:|"]
        for name, k in reasons.most_common():
            lines.append(f"| {name} | {k} | {100 * k / len(old):.1f}% |")
        lines.append("")
    rng = random.Random(args.seed)
    sample = rng.sample(kept, min(20, len(kept)))
    lines += [f"20 examples drawn with seed {args.seed} (swapped words as ~~old~~ **new**):", ""]
    for row in sample:
        lines.append(f"- [{row['label']}, {row['recipe']}, source seed {row['source_seed']}] "
                     f"{_marked(row['original'], row['text'])}")
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines[:12 + len(sources)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
