"""Post-hoc validity of an adversarial example: does it pass the ``strict`` preset?

``ValidityChecker.check(original, perturbed)`` aligns the two texts word by word as TextAttack does
(``AttackedText.all_words_diff``) and measures the swaps against the thresholds of Morris et al. 2020
that the ``strict`` preset of ``robench.attacks.recipes`` uses (constants of ``robench.attacks.constraints``).
The sentence similarity is measured on the whole texts (the attack measures a 15-word window).
"""

from __future__ import annotations

from typing import Any

from robench.attacks.constraints import (
    DEFAULT_VALENCE_MARGIN,
    STRICT_SENTENCE_COS,
    STRICT_WORD_COS,
    are_antonyms,
    pos_incompatible,
    valence_flip,
)


def word_swaps(original: str, perturbed: str) -> tuple[list[tuple[str, str]], int]:
    """(lower-cased (original word, replacement) pairs, number of words of the original), aligned by
    TextAttack's ``AttackedText.words`` / ``all_words_diff``."""
    from robench.attacks.offline import import_textattack

    import_textattack()
    from textattack.shared import AttackedText

    a, b = AttackedText(original), AttackedText(perturbed)
    wa, wb = a.words, b.words
    return [(wa[i].lower(), wb[i].lower()) for i in sorted(a.all_words_diff(b))], len(wa)


class ValidityChecker:
    """Checks perturbed texts against the strict preset, post hoc (see ``check``)."""

    def __init__(self, label_preservation: str | None = None, device: str = "cpu", *,
                 margin: float = DEFAULT_VALENCE_MARGIN, vocab_size: int | None = None, encoder=None) -> None:
        from robench.attacks.recipes import check_constraint_options

        _, self.label_preservation = check_constraint_options("strict", label_preservation)
        self.device = device
        self.margin = float(margin)
        self.vocab_size = vocab_size
        self._encoder = encoder  # anything with .encode(list[str]) -> array; MiniLM when None
        self._glove = None

    def describe(self) -> dict[str, Any]:
        """The settings a record's validity fields depend on (goes into the attack log header)."""
        return {"version": 2, "word_cos": STRICT_WORD_COS, "sentence_cos": STRICT_SENTENCE_COS,
                "label_preservation": self.label_preservation,
                "valence_margin": self.margin if self.label_preservation == "valence" else None,
                "vectors": "GloVe 6B 50d", "vocab_size": self.vocab_size, "encoder": "all-MiniLM-L6-v2 mean-pooled"}

    @property
    def encoder(self):
        if self._encoder is None:
            from robench.attacks.resources import minilm_encoder

            self._encoder = minilm_encoder(self.device)
        return self._encoder

    def _table(self):
        if self._glove is None:
            import numpy as np

            from robench.attacks.resources import DEFAULT_VOCAB, load_glove

            table = load_glove(self.vocab_size or DEFAULT_VOCAB)
            norm = table.matrix / np.maximum(np.linalg.norm(table.matrix, axis=1, keepdims=True), 1e-12)
            self._glove = (norm, table.word2index)
        return self._glove

    def word_cos(self, a: str, b: str) -> float | None:
        """GloVe cosine of two words, None when either is not in the table."""
        norm, index = self._table()
        ia, ib = index.get(a.lower()), index.get(b.lower())
        if ia is None or ib is None:
            return None
        return float(norm[ia] @ norm[ib])

    def sentence_similarity(self, original: str, perturbed: str) -> float:
        import numpy as np

        emb = np.asarray(self.encoder.encode([original, perturbed]), dtype=np.float64)
        denom = max(float(np.linalg.norm(emb[0]) * np.linalg.norm(emb[1])), 1e-12)
        return float(emb[0] @ emb[1] / denom)

    def check(self, original: str, perturbed: str) -> dict[str, Any]:
        """Validity fields of one example.

        ``words_changed_fraction``: changed words / words; ``min_word_cos``: smallest GloVe cosine over the
        swaps with both words in the table (None if none); ``sentence_similarity``: MiniLM cosine of the
        whole texts; ``pos_incompatible``, ``antonym_swaps``, ``valence_flips``: counts over the swaps
        (valence counted whatever ``label_preservation`` is); ``valid``: every swap is POS compatible
        and no antonym, keeps valence when label_preservation is "valence", has GloVe cosine >= 0.9
        when both words are in the table (a word unknown to GloVe / WordNet / the lexicons passes that
        check, as in the strict attack), and the whole-text sentence similarity is >= 0.98. The
        strict attack compares 15-word windows step by step; this post-hoc check compares the whole
        original and perturbed texts (the same for texts of up to 15 words).
        """
        swaps, n_words = word_swaps(original, perturbed)
        cosines = [self.word_cos(a, b) for a, b in swaps]
        known = [c for c in cosines if c is not None]
        pos_bad = sum(pos_incompatible(a, b) for a, b in swaps)
        antonyms = sum(are_antonyms(a, b) for a, b in swaps)
        flips = sum(valence_flip(a, b, self.margin) for a, b in swaps)
        sim = self.sentence_similarity(original, perturbed)
        words_ok = all(
            (c is None or c >= STRICT_WORD_COS) and not pos_incompatible(a, b) and not are_antonyms(a, b)
            and not (self.label_preservation == "valence" and valence_flip(a, b, self.margin))
            for (a, b), c in zip(swaps, cosines, strict=True)
        )
        return {
            "words_changed_fraction": len(swaps) / n_words if n_words else 0.0,
            "min_word_cos": min(known) if known else None,
            "sentence_similarity": sim,
            "pos_incompatible": int(pos_bad),
            "antonym_swaps": int(antonyms),
            "valence_flips": int(flips),
            "valid": bool(words_ok and sim >= STRICT_SENTENCE_COS),
        }
