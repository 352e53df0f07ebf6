"""Post-hoc validity of an adversarial example: does it pass the ``valid`` preset?

``ValidityChecker.check(original, perturbed)`` aligns the two texts word by word as TextAttack does
(``AttackedText.all_words_diff``) and judges every changed word with the functions the ``valid`` preset of
``robench.attacks.recipes`` runs inside the search (``robench.attacks.constraints``):

* a changed word that is not a dictionary word must be a typo of the original word (``is_typo``: one
  character operation); typos meet no other check;
* any other changed word is a word swap: counter-fitted cosine >= VALID_WORD_COS (both words in the
  vocabulary), WordNet synonyms in a frequent sense of the original's part of speech in context, no antonym, valence kept (when label preservation is on), the same coarse part of speech in
  context (spaCy), and, once per example with any word swap, a MiniLM cosine of the whole texts >=
  VALID_SENTENCE_COS.

So an example made under ``valid`` passes (a test checks it), and examples of the looser presets can be
scored against the same standard.
"""

from __future__ import annotations

from typing import Any

from robench.attacks.constraints import (
    DEFAULT_VALENCE_MARGIN,
    MAX_TYPO_EDITS,
    VALID_SENTENCE_COS,
    VALID_WORD_COS,
    are_antonyms,
    context_pos_changed,
    counterfitted_cos,
    dictionary_words,
    is_typo,
    listed_synonyms,
    upos_tags,
    valence_changed,
    wordnet_pos_of_tag,
)

CHECKER_VERSION = 3  # 3: the valid preset (counter-fitted cosine, spaCy POS in context, typos judged as typos)


def _aligned(original: str, perturbed: str):
    from robench.attacks.offline import import_textattack

    import_textattack()
    from textattack.shared import AttackedText

    a, b = AttackedText(original), AttackedText(perturbed)
    return a.words, b.words, sorted(a.all_words_diff(b))


def word_swaps(original: str, perturbed: str) -> tuple[list[tuple[str, str]], int]:
    """(lower-cased (original word, replacement) pairs, number of words of the original), aligned by
    TextAttack's ``AttackedText.words`` / ``all_words_diff``."""
    wa, wb, diff = _aligned(original, perturbed)
    return [(wa[i].lower(), wb[i].lower()) for i in diff], len(wa)


class ValidityChecker:
    """Checks perturbed texts against the valid preset, post hoc (see ``check``)."""

    def __init__(self, label_preservation: str | None = None, device: str = "cpu", *,
                 margin: float = DEFAULT_VALENCE_MARGIN, vocab_size: int | None = None, encoder=None) -> None:
        from robench.attacks.recipes import check_constraint_options

        _, self.label_preservation = check_constraint_options("valid", label_preservation)
        self.device = device
        self.margin = float(margin)
        self.vocab_size = vocab_size
        self._encoder = encoder  # anything with .encode(list[str]) -> array; MiniLM when None

    def describe(self) -> dict[str, Any]:
        """The settings a record's validity fields depend on (goes into the attack log header)."""
        return {"version": CHECKER_VERSION, "preset": "valid", "word_cos": VALID_WORD_COS,
                "sentence_cos": VALID_SENTENCE_COS, "max_typo_edits": MAX_TYPO_EDITS,
                "label_preservation": self.label_preservation,
                "valence_margin": self.margin if self.label_preservation == "valence" else None,
                "vectors": "GloVe 6B 50d counter-fitted", "vocab_size": self.vocab_size,
                "pos_tagger": "spaCy en_core_web_sm 3.8.0 (Penn Treebank tags)", "synonyms": "WordNet, the most frequent sense of the part of speech in context", "encoder": "all-MiniLM-L6-v2 mean-pooled"}

    @property
    def encoder(self):
        if self._encoder is None:
            from robench.attacks.resources import minilm_encoder

            self._encoder = minilm_encoder(self.device)
        return self._encoder

    def word_cos(self, a: str, b: str) -> float | None:
        """Counter-fitted cosine of two words, None when either is outside the vocabulary."""
        return counterfitted_cos(a, b, self.vocab_size)

    def sentence_similarity(self, original: str, perturbed: str) -> float:
        import numpy as np

        emb = np.asarray(self.encoder.encode([original, perturbed]), dtype=np.float64)
        denom = max(float(np.linalg.norm(emb[0]) * np.linalg.norm(emb[1])), 1e-12)
        return float(emb[0] @ emb[1] / denom)

    def check(self, original: str, perturbed: str) -> dict[str, Any]:
        """Validity fields of one example.

        ``words_changed_fraction``: changed words / words; ``typos``: changed words judged as typos;
        ``min_word_cos``: smallest counter-fitted cosine over the word swaps with both words in the vocabulary
        (None if none); ``sentence_similarity``: MiniLM cosine of the whole texts (None when the example has
        only typos); ``pos_changes``, ``antonym_swaps``, ``unlisted_swaps`` (not listed synonyms),
        ``valence_flips`` (counted whatever
        ``label_preservation`` is), ``bad_edits`` (non-words that are not one-operation typos): counts over
        the swaps; ``valid``: every change passes (module docstring)."""
        wa, wb, diff = _aligned(original, perturbed)
        vocab = dictionary_words()
        typos, swaps, bad_edits = [], [], 0
        for i in diff:
            a, b = wa[i].lower(), wb[i].lower()
            if b in vocab:
                swaps.append((i, a, b))
            elif is_typo(a, b):
                typos.append(i)
            else:
                bad_edits += 1
        cosines = [self.word_cos(a, b) for _, a, b in swaps]
        known = [c for c in cosines if c is not None]
        antonyms = sum(are_antonyms(a, b) for _, a, b in swaps)
        tags = upos_tags([tuple(wa)])[0] if swaps else ()
        unlisted = sum(not listed_synonyms(a, b, wordnet_pos_of_tag(tags[i] if i < len(tags) else None))
                       for i, a, b in swaps)
        flips = sum(valence_changed(a, b, self.margin) for _, a, b in swaps)
        pos_changes = sum(context_pos_changed(tuple(wa), tuple(wb), [i]) for i, _, _ in swaps)
        sim = self.sentence_similarity(original, perturbed) if swaps else None
        words_ok = all(c is not None and c >= VALID_WORD_COS for c in cosines) and not antonyms and not pos_changes \
            and not unlisted \
            and not (self.label_preservation == "valence" and flips)
        return {
            "words_changed_fraction": len(diff) / len(wa) if wa else 0.0,
            "typos": len(typos),
            "min_word_cos": min(known) if known else None,
            "sentence_similarity": sim,
            "pos_changes": int(pos_changes),
            "antonym_swaps": int(antonyms),
            "unlisted_swaps": int(unlisted),
            "valence_flips": int(flips),
            "bad_edits": int(bad_edits),
            "valid": bool(diff) and bad_edits == 0 and words_ok and (sim is None or sim >= VALID_SENTENCE_COS),
        }
