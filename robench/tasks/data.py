"""A task's sets as ``datasets.Dataset`` objects (:class:`TaskData`): each with a ``text`` column and
(except OOD sets) an integer ``label`` column, in a seeded order, capped by its limit, fingerprinted
(:func:`fingerprint`) so a run's data identity can be checked later.

Sentence pairs: a source with two text columns (``text_column: [premise, hypothesis]``, no ``join``)
gives sets with a second column, ``text_pair``. Training and evaluation read both (the tokenizer's
pair encoding: ``[CLS] premise [SEP] hypothesis [SEP]`` for BERT), but a caller that reads only
``text`` would silently score the premises alone, so a set of pairs is built only for a caller that
says it reads pairs (``TaskData(spec, pairs=True)``); anyone else gets one :class:`ConfigError` line
(:data:`PAIRS_UNSUPPORTED`)."""


import hashlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from robench.errors import ConfigError, OfflineError
from robench.tasks.sources import load_raw, resolve_file, to_examples
from robench.tasks.spec import TaskSpec

PAIRS_UNSUPPORTED = ("this caller reads one text per example and would drop the second text; build the sets with "
                     "TaskData(spec, pairs=True) and tokenise text with text_pair (as robench train and eval do), "
                     "or join the columns into one text with join: \" \"")


def fingerprint(texts: list[Any], labels: list[int]) -> str:
    """Hash of the examples actually used (order included): a run's data identity. A sentence pair hashes
    as its two texts (a JSON list), so it never collides with a single text."""
    h = hashlib.sha256()
    for t, y in zip(texts, labels, strict=True):
        h.update(json.dumps([t, int(y)], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


class TaskData:
    """Builds (and memoises) the sets of one task as ``datasets.Dataset`` objects."""

    def __init__(self, spec: TaskSpec, expected: dict[str, str] | None = None, allow_changed: bool = False,
                 pairs: bool = False) -> None:
        """``expected``: set key -> the fingerprint a run recorded for it (robench eval passes run.json's); a
        set built with another fingerprint is an error, or with ``allow_changed`` is listed in ``changed``.
        ``pairs``: the caller reads a set's ``text_pair`` column, so sets of sentence pairs may be built."""
        self.spec = spec
        self.pairs = pairs
        self._source_cache: dict[tuple[str, bool], tuple[list[Any], list[int]]] = {}
        self._set_cache: dict[str, Any] = {}
        self._fingerprints: dict[str, str] = {}
        self.files: dict[str, str] = {}  # source name -> the file it was read from (absolute)
        self.dropped: dict[str, dict[str, int]] = {}  # source name -> {reason: rows left out} (see to_examples)
        self.expected = dict(expected or {})
        self.allow_changed = allow_changed
        self.changed: dict[str, dict[str, str]] = {}  # set key -> {"trained": fp, "now": fp}

    def _source_examples(self, name: str, with_labels: bool) -> tuple[list[Any], list[int]]:
        key = (name, with_labels)
        if key not in self._source_cache:
            src = self.spec.sources[name]
            path = None if src.hub is not None else resolve_file(src, self.spec.path)
            if path is not None:
                self.files[name] = str(path.absolute())
            ds = load_raw(src, self.spec.path, path)
            origin = str(path) if path is not None else f"hub {src.hub['path']}"
            dropped: dict[str, int] = {}
            texts, ys = to_examples(src, ds, self.spec.labels, with_labels, origin, dropped)
            if with_labels or name not in self.dropped:
                self.dropped[name] = dropped
            order = np.random.RandomState(src.seed).permutation(len(texts))
            self._source_cache[key] = ([texts[i] for i in order], [ys[i] for i in order])
        return self._source_cache[key]

    def get(self, key: str):
        """A set by key: ``train``, ``validation``, ``test``, ``shift:<name>``, ``ood:<name>``..."""
        import datasets

        if key in self._set_cache:
            return self._set_cache[key]
        if key not in self.spec.sets:
            known = ", ".join(self.spec.sets)
            raise ConfigError(f"task {self.spec.name!r} has no set {key!r}; sets: {known}")
        s = self.spec.sets[key]
        src = self.spec.sources[s.source]
        if src.is_pair and not self.pairs:
            raise ConfigError(f"task {self.spec.name!r}: set {key!r} holds sentence pairs (source {src.name!r}, "
                              f"text_column: [{', '.join(src.text_columns)}]); {PAIRS_UNSUPPORTED}")
        with_labels = not key.startswith("ood:") or src.label_column is not None
        texts, ys = self._source_examples(s.source, with_labels)
        if s.part is not None:
            fractions = src.partition["fractions"]
            n = len(texts)
            start = 0.0
            for part_name, frac in fractions.items():
                if part_name == s.part:
                    lo, hi = round(start * n), round((start + frac) * n)
                    texts, ys = texts[lo:hi], ys[lo:hi]
                    break
                start += frac
        if s.limit is not None:
            texts, ys = texts[: s.limit], ys[: s.limit]
        if not texts:
            raise ConfigError(f"task {self.spec.name!r}: set {key!r} is empty after filtering; check its source and limit")
        if src.is_pair:
            ds = datasets.Dataset.from_dict({"text": [t[0] for t in texts], "text_pair": [t[1] for t in texts],
                                             "label": ys})
        else:
            ds = datasets.Dataset.from_dict({"text": texts, "label": ys})
        now = fingerprint(texts, ys)
        was = self.expected.get(key)
        if was is not None and was != now:
            if not self.allow_changed:
                raise ConfigError(f"task {self.spec.name!r}: set {key!r} is not the data the run recorded "
                                  f"(fingerprint {now}, run.json has {was}): its task file or data file changed "
                                  "since training; restore them, retrain, or pass --allow-changed-data to "
                                  "evaluate anyway (the result and its board row are marked)")
            self.changed[key] = {"trained": was, "now": now}
        self._fingerprints[key] = now
        self._set_cache[key] = ds
        return ds

    def fingerprint(self, key: str) -> str:
        self.get(key)
        return self._fingerprints[key]

    def sizes(self) -> dict[str, int]:
        return {k: len(self.get(k)) for k in self.spec.sets}

    def train_checks(self, warn: Callable[[str], Any] | None = None) -> dict[str, Any]:
        """Checks before training, and what a run records of them.

        The train set must hold at least two classes. Every other set is compared with train by exact
        text (after strip): a set entirely contained in train is an error, a partial overlap a warning
        (one line per set, through ``warn``). Returns ``{"overlap_with_train": {set: count}, "files":
        {source: path}, "set_fingerprints": {set: fingerprint}, "dropped_rows": {source: {reason: count}}}``
        (rows left out for missing text or label are also reported through ``warn``). A hub set that
        cannot be downloaded now is left unchecked (count null, no fingerprint).
        """
        train = self.get("train")
        classes = sorted(set(train["label"]))
        if len(classes) < 2:
            names = ", ".join(repr(self.spec.labels[c]) for c in classes if 0 <= c < len(self.spec.labels))
            source = self.spec.sets["train"].source
            raise ConfigError(f"task {self.spec.name!r}: set 'train' has only one class ({names}) in its {len(train)} "
                              f"examples after filtering and binarising; a classifier needs at least two: check source "
                              f"{source!r} (its label_map / binarize threshold, its part and limit, the file itself)")
        train_texts = _text_keys(train)
        overlap: dict[str, int | None] = {}
        fingerprints = {"train": self.fingerprint("train")}
        for key in self.spec.sets:
            if key == "train":
                continue
            try:
                texts = _text_keys(self.get(key), unique=False)
            except OfflineError as exc:
                overlap[key] = None
                if warn:
                    warn(f"warning: set {key!r} not checked for overlap with train ({exc})")
                continue
            fingerprints[key] = self.fingerprint(key)
            count = sum(t in train_texts for t in texts)
            overlap[key] = count
            if count and count == len(texts):
                raise ConfigError(f"task {self.spec.name!r}: set {key!r} is entirely contained in train ({count} of "
                                  f"{len(texts)} examples, exact text); it would measure memorisation: give it "
                                  "another source or part, or deduplicate the files")
            if count and warn:
                warn(f"warning: set {key!r}: {count} of {len(texts)} examples also appear in train (exact text); "
                     "its scores are inflated: deduplicate the sources")
        held_out = [k for k in ("validation", "calibration", "test") if k in fingerprints]
        for i, a in enumerate(held_out):  # held-out sets are each other's too: a choice scored on its own data
            for b in held_out[i + 1:]:
                if fingerprints[a] == fingerprints[b] and warn:
                    warn(f"warning: sets {a!r} and {b!r} are the same examples; what is chosen or fitted on {a!r} is "
                         f"then scored on it: give them different parts of the source")
        dropped = {src: counts for src, counts in self.dropped.items() if counts}
        for src, counts in dropped.items():
            unintended = {k: v for k, v in counts.items() if k in ("no_text", "no_label")}
            if unintended and warn:
                what = ", ".join(f"{n} with {'no text' if k == 'no_text' else 'no label'}" for k, n in unintended.items())
                warn(f"note: source {src!r}: left out {what} (blank or missing cells); recorded in run.json")
        return {"overlap_with_train": overlap, "files": dict(self.files), "set_fingerprints": fingerprints,
                "dropped_rows": dropped}


def example_key(item: Any) -> Any:
    """What the overlap checks compare of one example: its text stripped, or a pair's two texts stripped."""
    return tuple(t.strip() for t in item) if isinstance(item, tuple | list) else item.strip()


def set_items(ds) -> list[Any]:
    """A built set's examples as the model reads them: its texts, or (text, text_pair) tuples for pairs."""
    if "text_pair" in ds.column_names:
        return list(zip(ds["text"], ds["text_pair"], strict=True))
    return list(ds["text"])


def _text_keys(ds, unique: bool = True):
    """What the overlap checks compare (:func:`example_key` of each example); a set of them, or with
    ``unique=False`` a list in set order."""
    keys = [example_key(item) for item in set_items(ds)]
    return set(keys) if unique else keys
