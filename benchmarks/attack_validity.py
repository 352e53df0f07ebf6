"""Validity of the successful examples of attack logs: how many swaps change the part of speech, swap in
an antonym or flip sentiment polarity, and how many successes pass the valid preset post hoc.

    python benchmarks/attack_validity.py runs/sentiment/minilm/vanilla/seed0/artifacts/attack-*.jsonl
    python benchmarks/attack_validity.py --label-preservation valence --margin 0.2 --json LOG [LOG ...]

Reads JSONL logs written by ``robench.attacks.runner.run_attack`` (log version 1 or 2): everything is
re-derived from each record's original and perturbed text (word pairs from TextAttack's
``AttackedText.all_words_diff``), so old logs work too. The valid success rate re-checks every successful
example with ``robench.attacks.validity.ValidityChecker`` (GloVe table, MiniLM encoder, WordNet, lexicons);
label preservation comes from the log header when it records one, else from ``--label-preservation``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any


def analyse(path: Path, *, label_preservation: str | None = None, margin: float | None = None,
            device: str = "cpu", vocab_size: int | None = None, checker=None) -> dict[str, Any]:
    from robench.attacks.constraints import (
        DEFAULT_VALENCE_MARGIN,
        are_antonyms,
        pos_incompatible,
        valence,
        valence_flip,
    )
    from robench.attacks.runner import read_log
    from robench.attacks.validity import ValidityChecker, word_swaps

    margin = DEFAULT_VALENCE_MARGIN if margin is None else float(margin)
    header, records = read_log(Path(path))
    if header is None:
        raise SystemExit(f"{path}: not an attack log (no header line)")
    recorded = (header.get("attack_constraints") or {}).get("label_preservation")
    lp = recorded or label_preservation
    checker = checker or ValidityChecker(lp, device=device, margin=margin, vocab_size=vocab_size)
    succ = [r for r in records if r.get("outcome") == "successful"]
    attacked = [r for r in records if r.get("outcome") in ("successful", "failed")]
    swaps: list[tuple[str, str]] = []
    valid = 0
    for rec in succ:
        pairs, _ = word_swaps(rec["original"], rec["perturbed"])
        swaps += pairs
        valid += bool(checker.check(rec["original"], rec["perturbed"])["valid"])
    in_lex = [(a, b) for a, b in swaps if valence(a) is not None and valence(b) is not None]
    flips = sum(valence_flip(a, b, margin) for a, b in in_lex)

    def share(k: int, n: int) -> float:
        return k / n if n else math.nan

    return {
        "log": str(path), "version": header.get("version"), "recipe": header.get("recipe"),
        "constraints": (header.get("attack_constraints") or {}).get("constraints", "recipe (log v1)"),
        "label_preservation": lp, "n": len(records),
        "success_rate": share(len(succ), len(attacked)),
        "valid_success_rate": share(valid, len(attacked)),
        "swaps": len(swaps),
        "pos_incompatible_share": share(sum(pos_incompatible(a, b) for a, b in swaps), len(swaps)),
        "in_lexicons_share": share(len(in_lex), len(swaps)),
        "polarity_flip_share": share(flips, len(in_lex)),
        "polarity_flips": flips, "in_lexicons": len(in_lex),
        "antonyms": sum(are_antonyms(a, b) for a, b in swaps),
        "margin": margin,
    }


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.3f}"
    return str(x)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", nargs="+", type=Path, help="attack logs (JSONL) written by run_attack")
    parser.add_argument("--label-preservation", choices=["valence"], default=None,
                        help="for logs whose header records none (log version 1)")
    parser.add_argument("--margin", type=float, default=None, help="valence margin (default: the constraint's)")
    parser.add_argument("--vocab-size", type=int, default=None, help="GloVe words (default: the attacks' 65,713)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="one JSON object per log instead of a table")
    args = parser.parse_args(argv)

    from robench.attacks.constraints import DEFAULT_VALENCE_MARGIN
    from robench.attacks.validity import ValidityChecker

    margin = DEFAULT_VALENCE_MARGIN if args.margin is None else args.margin
    checkers: dict[str | None, ValidityChecker] = {}
    cols = ("recipe", "constraints", "n", "success_rate", "valid_success_rate", "swaps", "pos_incompatible_share",
            "in_lexicons_share", "polarity_flip_share", "antonyms")
    if not args.json:
        print("\t".join(("log", *cols)))
    for path in args.logs:
        header_lp = None
        try:
            with open(path, encoding="utf-8") as f:
                header_lp = ((json.loads(f.readline()) or {}).get("attack_constraints") or {}).get("label_preservation")
        except (OSError, ValueError, AttributeError):
            pass
        lp = header_lp or args.label_preservation
        if lp not in checkers:  # one checker (one GloVe table, one encoder) per label-preservation setting
            checkers[lp] = ValidityChecker(lp, device=args.device, margin=margin, vocab_size=args.vocab_size)
        row = analyse(path, label_preservation=lp, margin=margin, device=args.device,
                      vocab_size=args.vocab_size, checker=checkers[lp])
        if args.json:
            print(json.dumps(row))
        else:
            print("\t".join((str(path), *(_fmt(row[c]) for c in cols))))


if __name__ == "__main__":
    main()
