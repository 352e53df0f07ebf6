"""Robustness to natural noise: accuracy under nlpaug character and word perturbations (offline).

Each perturbation edits the test set at a fixed rate with a fixed seed (the RNG is reseeded per
example from the seed, the perturbation and the example's position, so every run scored on the same set
sees the same perturbed texts; a reordered or resized set, e.g. under another ``--limit``, gets other edits,
and a sentence pair's second text is seeded at position n + i of its n-pair set).
``mean_accuracy`` is the mean over perturbations; ``mean_drop`` = clean accuracy - mean_accuracy.
Per-example correctness is stored per perturbation (``details.correct``: {perturbation: '0101...'},
in test-split order), so the board's paired test runs on this column.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robench.configs import name_list, names, number, option, whole
from robench.errors import ConfigError
from robench.evaluators.base import EvalOutput, Evaluator, register_evaluator
from robench.evaluators.shift import correct_string
from robench.predict import predict
from robench.results import MetricSpec
from robench.storage import atomic_write_json

PERTURBATIONS = ("keyboard", "ocr", "char_random", "word_swap", "word_delete", "spelling")
DEFAULT_RATE = 0.1


def _unknown_perturbation(value: Any) -> str | None:
    bad = [n for n in name_list(value) if n not in PERTURBATIONS]
    return f"unknown perturbation {bad[0]!r}; choose from {', '.join(PERTURBATIONS)}" if bad else None


def make_augmenter(name: str, rate: float):
    import nlpaug.augmenter.char as nac
    import nlpaug.augmenter.word as naw

    char = {"aug_char_p": rate, "aug_word_p": rate, "aug_char_max": None, "aug_word_max": None}
    if name == "keyboard":
        return nac.KeyboardAug(**char, include_special_char=False, include_numeric=False)
    if name == "ocr":
        return nac.OcrAug(**char)
    if name == "char_random":
        return nac.RandomCharAug(action="substitute", **char, include_numeric=False)
    if name == "word_swap":
        return naw.RandomWordAug(action="swap", aug_p=rate, aug_max=None)
    if name == "word_delete":
        return naw.RandomWordAug(action="delete", aug_p=rate, aug_max=None)
    if name == "spelling":
        return naw.SpellingAug(aug_p=rate, aug_max=None)
    raise ValueError(f"unknown perturbation {name!r}; choose from {', '.join(PERTURBATIONS)}")


def _seed_for(seed: int, name: str, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}:{index}".encode()).digest()[:4], "little")


def perturb_texts(texts: list[str], name: str, rate: float = DEFAULT_RATE, seed: int = 0) -> list[str]:
    """Perturbed copies of ``texts``, deterministic per (seed, perturbation, position), generated once per
    machine: every run of a board perturbs the same test set, so the texts are cached on disk
    (``<robench cache>/perturb``, ``$ROBENCH_CACHE`` or ``~/.cache/robench``; one JSON file per key)
    keyed by the perturbation, rate, seed, nlpaug's version and the texts themselves.
    ``ROBENCH_PERTURB_CACHE=0`` turns it off. A missing, unreadable or mismatched cache file is a miss
    (the texts are generated again and the file rewritten atomically)."""
    key = _cache_key(texts, name, rate, seed)
    path = _cache_path(key)
    cached = _read_cached(path, key, len(texts))
    if cached is not None:
        return cached
    out = _generate(texts, name, rate, seed)
    if path is not None:
        try:
            atomic_write_json(path, {"key": key, "perturbation": name, "rate": rate, "seed": seed, "texts": out})
        except OSError:  # a read-only or full cache folder costs speed, never the result
            pass
    return out


def perturb_items(items: list, name: str, rate: float = DEFAULT_RATE, seed: int = 0) -> list:
    """:func:`perturb_texts` of a set's examples: texts, or sentence pairs, whose two sides are perturbed
    alike (one call on the first texts followed by the second ones, so each side gets its own positions)."""
    if not items or not isinstance(items[0], tuple | list):
        return perturb_texts(items, name, rate, seed)
    n = len(items)
    noisy = perturb_texts([a for a, _ in items] + [b for _, b in items], name, rate, seed)
    return list(zip(noisy[:n], noisy[n:], strict=True))


def _cache_path(key: str) -> Path | None:
    if os.environ.get("ROBENCH_PERTURB_CACHE", "1").strip() == "0":
        return None
    from robench.split_asset import cache_root

    try:
        return cache_root() / "perturb" / f"{key}.json"
    except OSError:  # no writable cache folder: generate every time
        return None


def _cache_key(texts: list[str], name: str, rate: float, seed: int) -> str:
    from importlib.metadata import version

    payload = json.dumps({"perturbation": name, "rate": float(rate), "seed": int(seed),
                          "nlpaug": version("nlpaug"), "texts": list(texts)}, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _read_cached(path: Path | None, key: str, n: int) -> list[str] | None:
    if path is None or not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    texts = data.get("texts") if isinstance(data, dict) and data.get("key") == key else None
    if not isinstance(texts, list) or len(texts) != n or not all(isinstance(t, str) for t in texts):
        return None
    return texts


def _generate(texts: list[str], name: str, rate: float, seed: int) -> list[str]:
    from nlpaug.util import Randomness

    aug = make_augmenter(name, rate)
    out = []
    for i, text in enumerate(texts):
        s = _seed_for(seed, name, i)
        random.seed(s)
        np.random.seed(s)
        Randomness.seed(s)
        try:
            res = aug.augment(text)
        except (ValueError, IndexError, KeyError):  # nlpaug fails on some very short inputs
            res = text
        out.append((res[0] if res else text) if isinstance(res, list) else (res or text))
    return out


@register_evaluator("perturb", quick=False, aliases=("noise",))
class Perturb(Evaluator):
    description = "accuracy under nlpaug character / word noise (keyboard, OCR, random char, swap, delete, spelling)"
    aspect = "perturbation"
    version = 2  # 2: per-example correctness per perturbation (details.correct)
    metrics = (
        MetricSpec("mean_accuracy", "higher", aspect, headline=True, column="perturb", label="Perturb acc",
                   short="Pert", per_example="correct"),
        MetricSpec("mean_drop", "lower", aspect),
        MetricSpec("clean_accuracy", "higher", aspect),
        MetricSpec("perturbations.*", "higher", aspect),
        MetricSpec("n", "none", aspect),
    )

    @dataclass
    class Config:
        perturbations: list[str] = field(default_factory=lambda: list(PERTURBATIONS), metadata=option(
            "a list of perturbation names", lambda v: isinstance(v, list | tuple) and names(v),
            "perturbations: [keyboard, ocr]", _unknown_perturbation))
        rate: float = field(default=DEFAULT_RATE, metadata=option(
            "a number in (0, 1]", lambda v: number(v) and 0 < v <= 1, "rate: 0.1"))
        seed: int = field(default=0, metadata=option("an integer", whole(), "seed: 0"))
        split: str | None = field(default=None, metadata=option(
            "a set name", lambda v: v is None or isinstance(v, str), "split: test"))

        def __post_init__(self) -> None:
            self.perturbations = list(self.perturbations or PERTURBATIONS)
            problem = _unknown_perturbation(self.perturbations)
            if problem:
                raise ConfigError(f"perturb: {problem}")
            self.rate, self.seed = float(self.rate), int(self.seed)

    def __init__(self, config: Config | None = None, **options: Any) -> None:
        super().__init__(config, **options)
        c = self.config
        self.perturbations, self.rate, self.seed, self.split = c.perturbations, c.rate, c.seed, c.split

    def evaluate(self, ctx) -> EvalOutput:
        key = self.split or "test"
        texts, labels = ctx.texts(key), ctx.labels(key)
        clean = float(np.mean(ctx.correct(key, ctx.predict(key).logits)))
        per: dict[str, float] = {}
        correct: dict[str, str] = {}
        examples: dict[str, list[str]] = {}
        for name in self.perturbations:
            noisy = perturb_items(texts, name, self.rate, self.seed)
            logits = predict(ctx.model, ctx.tokenizer, noisy, batch_size=ctx.batch_size, max_length=ctx.max_length,
                             device=ctx.device, precision=ctx.precision, description=f"perturb {name}").logits
            hits = ctx.correct(key, logits)
            per[name] = float(np.mean(hits))
            # keyed by what made the noisy texts: runs pair on a perturbation only with the same rate and seed
            correct[f"{name}@rate{self.rate:g}:seed{self.seed}"] = correct_string(hits)
            examples[name] = noisy[:3]
        mean_acc = float(np.mean(list(per.values())))
        metrics = {"mean_accuracy": mean_acc, "mean_drop": clean - mean_acc, "clean_accuracy": clean,
                   "perturbations": per, "n": len(labels)}
        return EvalOutput(metrics=metrics, details={"correct": correct, "examples": {"original": texts[:3], **examples}},
                          data=ctx.data_info([key]),
                          settings={"rate": self.rate, "seed": self.seed, "library": "nlpaug 1.1.11"})
