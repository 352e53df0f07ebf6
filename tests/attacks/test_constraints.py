"""Validity constraints of the attacks: presets, WordNet POS / antonym / valence filters, ValidityChecker."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest

VOCAB = 3000  # a small GloVe table: its neighbour table is computed in a second


class FakeEncoder:
    """Stands in for MiniLM: every text maps to one vector, unless it contains a word of ``far``."""

    def __init__(self, far: tuple[str, ...] = ()) -> None:
        self.far = far

    def encode(self, sentences):
        out = np.zeros((len(sentences), 4), dtype=np.float32)
        for i, s in enumerate(sentences):
            out[i] = [0.0, 1.0, 0.0, 0.0] if any(w in s.split() for w in self.far) else [1.0, 0.0, 0.0, 0.0]
        return out


@pytest.fixture
def fake_minilm(monkeypatch):
    import robench.attacks.resources as resources

    monkeypatch.setattr(resources, "minilm_encoder", lambda device="cpu": FakeEncoder())


@pytest.fixture
def wrapper(tiny_model, tokenizer):
    from robench.attacks.wrapper import RobenchModelWrapper

    return RobenchModelWrapper(tiny_model.eval(), tokenizer, max_length=32)


def _build(name, wrapper, constraints, label_preservation=None):
    from robench.attacks.recipes import build_attack

    return build_attack(name, wrapper, constraints=constraints, label_preservation=label_preservation,
                        vocab_size=VOCAB)


def _passes(attack, text: str, index: int, word: str) -> bool:
    """Whether the attack's constraints keep the candidate that puts ``word`` at word ``index`` of ``text``."""
    from textattack.shared import AttackedText

    original = AttackedText(text)
    candidate = original.replace_word_at_index(index, word)
    candidate.attack_attrs["last_transformation"] = attack.transformation
    attack.clear_cache()
    return bool(attack.filter_transformations([candidate], original, original_text=original))


def _kinds(attack) -> list[str]:
    return [type(c).__name__ for c in attack.constraints]


# ------------------------------------------------------------------ helpers of robench.attacks.constraints


def test_wordnet_helpers():
    from robench.attacks.constraints import are_antonyms, pos_incompatible, valence, wordnet_pos

    assert are_antonyms("good", "bad") and are_antonyms("bad", "good")
    assert are_antonyms("increase", "decrease")
    assert are_antonyms("increased", "decreasing")  # through morphy base forms
    assert not are_antonyms("film", "movie") and not are_antonyms("good", "good")
    assert wordnet_pos("beautifully") == frozenset({"r"}) and wordnet_pos("beautiful") == frozenset({"a"})
    assert pos_incompatible("beautifully", "beautiful")
    assert not pos_incompatible("film", "movie")
    assert wordnet_pos("fiml") == frozenset() and not pos_incompatible("film", "fiml")  # unknown: accepted
    assert valence("good") == pytest.approx(1.9 / 4)  # VADER mean / 4
    assert valence("aardvark") == pytest.approx((6.26 - 5) / 4)  # not in VADER: Warriner
    assert valence("fiml") is None


def test_valence_constraint_follows_its_margin():
    from textattack.shared import AttackedText

    from robench.attacks.constraints import DEFAULT_VALENCE_MARGIN, ValencePreserving, valence

    a, b = valence("party"), valence("opposition")
    assert a > 0 > b and min(abs(a), abs(b)) > DEFAULT_VALENCE_MARGIN
    original = AttackedText("the party won the vote")
    flipped = original.replace_word_at_index(1, "opposition")
    same_sign = original.replace_word_at_index(1, "parade")
    assert valence("parade") > 0
    assert not ValencePreserving(margin=0.0)._check_constraint(flipped, original)
    assert not ValencePreserving()._check_constraint(flipped, original)
    assert ValencePreserving(margin=10.0)._check_constraint(flipped, original)  # nothing is that polar
    assert ValencePreserving(margin=(abs(b) + abs(a)) / 2)._check_constraint(flipped, original)
    assert ValencePreserving(margin=0.0)._check_constraint(same_sign, original)
    assert "margin" in repr(ValencePreserving(margin=0.3)) and "0.3" in repr(ValencePreserving(margin=0.3))


# ------------------------------------------------------------------ presets on the built attacks


def test_antonym_candidate_rejected_by_filtered_not_by_recipe(wrapper, fake_minilm):
    text = "the film was good and the plot clever"
    recipe = _build("textfooler", wrapper, "recipe")
    filtered = _build("textfooler", wrapper, "filtered")
    assert _passes(recipe, text, 3, "bad")  # GloVe neighbour (cos 0.80): today's textfooler takes it
    assert not _passes(filtered, text, 3, "bad")
    assert _passes(filtered, text, 1, "movie")
    pwws_recipe, pwws_filtered = _build("pwws", wrapper, "recipe"), _build("pwws", wrapper, "filtered")
    assert _kinds(pwws_filtered) == ["NoAntonymSwap"]
    assert _passes(pwws_recipe, "prices increase every year", 1, "decrease")
    assert not _passes(pwws_filtered, "prices increase every year", 1, "decrease")
    assert _passes(pwws_filtered, "prices increase every year", 1, "growth")


def test_pos_disjoint_swap_rejected_same_pos_synonym_accepted(wrapper, fake_minilm):
    text = "sales fell sharply this year after the war"
    recipe = _build("textfooler", wrapper, "recipe")
    filtered = _build("textfooler", wrapper, "filtered")
    assert _passes(recipe, text, 4, "previous")  # cos 0.86, noun -> adjective
    assert not _passes(filtered, text, 4, "previous")
    assert _passes(filtered, text, 4, "month")
    kinds = _kinds(filtered)
    # the cheap filters come before the sentence encoder
    assert kinds.index("PartOfSpeechCompatible") < kinds.index("MiniLMSentenceEncoder")
    assert kinds.index("NoAntonymSwap") < kinds.index("MiniLMSentenceEncoder")
    assert _kinds(recipe) == ["WordEmbeddingDistance", "MiniLMSentenceEncoder"]


def test_valence_filter_only_with_valence_label_preservation(wrapper, fake_minilm):
    text = "the party won the vote easily"
    plain = _build("textfooler", wrapper, "filtered")
    valence = _build("textfooler", wrapper, "filtered", label_preservation="valence")
    assert _passes(plain, text, 1, "opposition")
    assert not _passes(valence, text, 1, "opposition")
    assert "ValencePreserving" in _kinds(valence) and "ValencePreserving" not in _kinds(plain)
    assert "ValencePreserving" in _kinds(_build("pwws", wrapper, "filtered", label_preservation="valence"))


def test_valid_rejects_a_neighbour_that_filtered_accepts(wrapper, fake_minilm):
    from robench.attacks.constraints import VALID_WORD_COS, counterfitted_cos

    cos = counterfitted_cos("film", "book", VOCAB)
    assert 0.5 < cos < VALID_WORD_COS
    text = "we loved the film after the war"
    assert _passes(_build("textfooler", wrapper, "filtered"), text, 3, "book")
    valid = _build("textfooler", wrapper, "valid")
    assert not _passes(valid, text, 3, "book")
    assert _passes(valid, text, 3, "movie")
    sentence = valid.constraints[-1]
    assert (sentence.metric, sentence.threshold) == ("cosine", 0.82) and sentence.compare_against_original
    kinds = {name: _kinds(_build(name, wrapper, "valid", "valence")) for name in ("textfooler", "pwws", "deepwordbug")}
    assert {"ListedSynonym", "NoAntonymSwap", "ValenceKept", "ContextualPartOfSpeech",
            "MiniLMSentenceEncoder"} <= set(kinds["textfooler"])
    assert {"WordEmbeddingDistance", "ListedSynonym", "ContextualPartOfSpeech", "MiniLMSentenceEncoder"} <= set(kinds["pwws"])
    # typos are judged as typos: no sentence encoder, no word cosine
    assert "CharacterEdit" in kinds["deepwordbug"] and "MiniLMSentenceEncoder" not in kinds["deepwordbug"]
    assert _kinds(_build("deepwordbug", wrapper, "filtered")) == _kinds(_build("deepwordbug", wrapper, "recipe"))


def test_valid_keeps_stop_words_whatever_their_case(wrapper, fake_minilm):
    from textattack.shared import AttackedText

    for name in ("textfooler", "pwws", "deepwordbug"):
        valid = _build(name, wrapper, "valid")
        modifiable = valid.pre_transformation_constraints[1]._get_modifiable_indices(AttackedText("Nothing works here"))
        assert 0 not in modifiable, name  # "Nothing" is a stop word at the start of a sentence too
        loose = _build(name, wrapper, "recipe")
        assert 0 in loose.pre_transformation_constraints[1]._get_modifiable_indices(AttackedText("Nothing works here"))


def test_character_edits_are_judged_as_typos(wrapper, fake_minilm):
    from robench.attacks.constraints import is_typo, osa_distance

    assert is_typo("charming", "chrming") and is_typo("funny", "fnuny")  # a deletion, a swap of neighbours
    assert not is_typo("charming", "harming") and not is_typo("funny", "sunny")  # other dictionary words
    assert not is_typo("charming", "chxrmxng")  # two operations
    assert osa_distance("abcd", "abdc") == 1 and osa_distance("abcd", "bacd") == 1 and osa_distance("abc", "axc") == 1
    assert osa_distance("kitten", "sitting") == 3
    attack = _build("deepwordbug", wrapper, "valid")
    assert _passes(attack, "a truly charming film", 2, "chrming")
    assert not _passes(attack, "a truly charming film", 2, "harming")
    assert _passes(_build("deepwordbug", wrapper, "recipe"), "a truly charming film", 2, "harming")
    # a change of case alone is no typo, though the lower-cased words are equal (DeepWordBug swaps in capitals)
    assert not _passes(attack, "a truly bad film", 2, "bAd") and not _passes(attack, "a truly bad film", 2, "Bad")
    assert _passes(attack, "a truly bad film", 2, "bAdd")  # a typo that also changes case is a typo


def test_tagger_rechecks_earlier_swaps_in_the_new_context(monkeypatch):
    """A new swap can change the tag of an earlier one: every word that differs from the original is checked
    again, not only the newly modified one."""
    from textattack.shared import AttackedText

    import robench.attacks.constraints as C

    def tags(texts):  # a stand-in tagger: word 1 is read as a verb when word 2 is "flick"
        return [["DT", "VB" if len(t) > 2 and t[2] == "flick" else "JJ", "NN"] for t in texts]

    monkeypatch.setattr(C, "upos_tags", tags)
    monkeypatch.setattr(C, "spacy_tagger", lambda: None)
    constraint = C.ContextualPartOfSpeech()
    original = AttackedText("a fine film")
    earlier = original.replace_word_at_index(1, "good")  # an earlier step's swap, kept
    both = earlier.replace_word_at_index(2, "flick")
    both.attack_attrs["newly_modified_indices"] = {2}
    assert constraint._check_constraint_many([both], original) == []  # "good" is now tagged VB
    movie = earlier.replace_word_at_index(2, "movie")
    movie.attack_attrs["newly_modified_indices"] = {2}
    assert constraint._check_constraint_many([movie], original) == [movie]


def test_valid_sentence_check_reads_the_whole_text(wrapper, monkeypatch):
    """Under `valid` the sentence check compares whole texts, punctuation and quotes included, as the post-hoc
    validity check does; TextAttack's unbounded window would read the words between the first and the last."""
    import robench.attacks.resources as resources

    seen: list[str] = []

    class Recording(FakeEncoder):
        def encode(self, sentences):
            seen.extend(sentences)
            return super().encode(sentences)

    monkeypatch.setattr(resources, "minilm_encoder", lambda device="cpu": Recording())
    attack = _build("textfooler", wrapper, "valid")
    encoder = next(c for c in attack.constraints if type(c).__name__ == "MiniLMSentenceEncoder")
    from textattack.shared import AttackedText

    original = AttackedText('" a charming , funny film ! "')
    candidate = original.replace_word_at_index(1, "delightful")
    assert len(encoder._check_constraint_many([candidate], original)) == 1
    assert seen == ['" a charming , funny film ! "', '" a delightful , funny film ! "']
    seen.clear()
    assert encoder._check_constraint(candidate, original)
    assert seen == ['" a charming , funny film ! "', '" a delightful , funny film ! "']


def test_valence_changing_swap_is_never_proposed(wrapper, fake_minilm):
    from robench.attacks.constraints import valence_changed

    assert valence_changed("hilarious", "unfunny")  # unknown replacement of a strongly valenced word
    assert valence_changed("tedious", "suspenseful") and valence_changed("good", "bad")
    assert valence_changed("film", "awful")  # a neutral word may not become a strongly valenced one
    assert not valence_changed("film", "movie") and not valence_changed("bad", "awful")
    assert valence_changed("good", "okay")  # same sign, less than half as strong
    attack = _build("textfooler", wrapper, "valid", "valence")
    valence_kept = next(c for c in attack.constraints if type(c).__name__ == "ValenceKept")
    from textattack.shared import AttackedText

    original = AttackedText("often hilarious and sharp")
    for word, ok in (("unfunny", False), ("comical", True)):
        cand = original.replace_word_at_index(1, word)
        assert valence_kept._check_constraint(cand, original) is ok, word


def test_tagger_in_context_rejects_what_wordnet_sets_accept(wrapper, fake_minilm):
    from robench.attacks.constraints import context_pos_changed, pos_incompatible

    # WordNet lists "fine" as an adjective, a noun and a verb, so the context-free check accepts "fine" ->
    # "penalty"; in "a fine film" the tagger reads an adjective replaced by a noun
    assert not pos_incompatible("fine", "penalty")
    assert context_pos_changed(("a", "fine", "film"), ("a", "penalty", "film"), [1])
    assert not pos_incompatible("long", "yearn")  # "long" is also a verb in WordNet; here it is an adjective
    assert context_pos_changed(("the", "film", "was", "long"), ("the", "film", "was", "yearn"), [3])
    assert not context_pos_changed(("we", "loved", "the", "film"), ("we", "loved", "the", "movie"), [3])
    # inflection counts: "beautifully" -> "beautiful" and "feels" -> "feel" are new grammatical errors
    assert context_pos_changed(("she", "sings", "beautifully"), ("she", "sings", "beautiful"), [2])
    assert context_pos_changed(("the", "ending", "feels", "rushed"), ("the", "ending", "feel", "rushed"), [2])
    attack = _build("pwws", wrapper, "valid")
    tagger = next(c for c in attack.constraints if type(c).__name__ == "ContextualPartOfSpeech")
    from textattack.shared import AttackedText

    original = AttackedText("the plot is thin and the film is long")
    assert tagger._check_constraint(original.replace_word_at_index(3, "slim"), original)
    assert not tagger._check_constraint(original.replace_word_at_index(8, "yearn"), original)


def test_recipe_settings_record_preset_and_thresholds():
    from robench.attacks.recipes import CONSTRAINT_PRESETS, TEXTFOOLER_SETTINGS, recipe_settings

    settings = {p: recipe_settings("textfooler", p) for p in CONSTRAINT_PRESETS}
    assert [settings[p]["constraints"] for p in CONSTRAINT_PRESETS] == list(CONSTRAINT_PRESETS)
    assert recipe_settings("textfooler")["constraints"] == "valid"
    old = {k: v for k, v in settings["recipe"].items() if k in TEXTFOOLER_SETTINGS}
    assert old == TEXTFOOLER_SETTINGS
    kinds = {p: [c["constraint"] for c in s["constraint_list"]] for p, s in settings.items()}
    assert "part_of_speech_compatible" not in kinds["recipe"] and "no_antonym_swap" not in kinds["recipe"]
    assert kinds["filtered"].index("no_antonym_swap") < kinds["filtered"].index("sentence_encoder")
    assert kinds["valid"][-1] == "sentence_encoder"  # the costliest check last
    valid = {c["constraint"]: c for c in settings["valid"]["constraint_list"]}
    assert valid["word_embedding_distance"]["min_cos_sim"] == 0.89
    assert valid["word_embedding_distance"]["unknown_words"] == "rejected"
    assert valid["sentence_encoder"]["threshold"] == 0.82 and valid["sentence_encoder"]["metric"] == "cosine"
    assert "SimLex-999" in settings["valid"]["thresholds_from"]
    assert "counter-fitted" in settings["valid"]["substitutes"]["counter-fitted word vectors"]
    assert "spaCy" in settings["valid"]["substitutes"]["part-of-speech tagger"]
    val = recipe_settings("pwws", "filtered", "valence")
    assert val["label_preservation"] == "valence" and set(val["lexicons"]) == {"vader", "warriner"}
    assert [c["constraint"] for c in val["constraint_list"]][-1] == "valence_preserving"
    assert val != recipe_settings("pwws", "filtered")
    json.dumps(settings)  # stored in results


def test_unknown_preset_or_label_preservation_is_one_config_line(wrapper):
    from robench.attacks.recipes import build_attack, recipe_settings
    from robench.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        build_attack("pwws", wrapper, constraints="loose")
    assert "\n" not in str(err.value) and "valid, filtered, recipe" in str(err.value)
    with pytest.raises(ConfigError, match="unknown label_preservation 'nli'; choices: none, valence"):
        recipe_settings("textfooler", "filtered", "nli")


# ------------------------------------------------------------------ ValidityChecker and the runner


def test_validity_checker_on_hand_made_pairs():
    from robench.attacks.validity import ValidityChecker

    checker = ValidityChecker(encoder=FakeEncoder(far=("dreadful",)))
    r = checker.check("the film was good and the plot clever", "the movie was bad and the plot clever")
    assert r["words_changed_fraction"] == pytest.approx(2 / 8)
    assert r["min_word_cos"] == pytest.approx(checker.word_cos("good", "bad"))
    assert r["sentence_similarity"] == pytest.approx(1.0)
    assert (r["antonym_swaps"], r["valence_flips"], r["unlisted_swaps"]) == (1, 1, 1)
    assert r["valid"] is False
    ok = checker.check("we loved the film", "we loved the movie")
    assert ok["valid"] is True and ok["min_word_cos"] >= 0.89 and ok["typos"] == 0
    far = ValidityChecker(encoder=FakeEncoder(far=("movie",))).check("we loved the film", "we loved the movie")
    assert far["valid"] is False and far["sentence_similarity"] == pytest.approx(0.0)  # the sentence check decides
    mid = checker.check("we loved the film", "we loved the book")
    assert mid["valid"] is False and mid["min_word_cos"] < 0.89 and mid["unlisted_swaps"] == 1
    # a typo is judged as a typo: no sentence check, valid; a typo that is a word is a word swap
    typo = ValidityChecker(encoder=FakeEncoder(far=("chrming",))).check("a charming film", "a chrming film")
    assert typo["typos"] == 1 and typo["sentence_similarity"] is None and typo["valid"] is True
    word = checker.check("a charming film", "a harming film")
    assert word["typos"] == 0 and word["valid"] is False
    garbled = checker.check("a charming film", "a chxrmxng film")
    assert garbled["bad_edits"] == 1 and garbled["valid"] is False


def test_valence_decides_validity_only_under_valence():
    from robench.attacks.validity import ValidityChecker

    pair = ("we loved the film", "we loved the movie")
    plain = ValidityChecker(encoder=FakeEncoder())
    sentiment = ValidityChecker("valence", encoder=FakeEncoder())
    assert plain.check(*pair)["valid"] and sentiment.check(*pair)["valid"]
    flip = ("an often funny film", "an often unfunny film")
    plain.word_cos = sentiment.word_cos = lambda a, b: 0.95  # the cosine passes, so valence alone decides
    import robench.attacks.validity as validity

    real = validity.listed_synonyms
    validity.listed_synonyms = lambda a, b, pos=None: True
    try:
        assert plain.check(*flip)["valence_flips"] == 1 and sentiment.check(*flip)["valence_flips"] == 1
        assert sentiment.check(*flip)["valid"] is False
    finally:
        validity.listed_synonyms = real


def test_summarize_valid_success_rate():
    from robench.attacks.runner import summarize

    base = {"words_changed": 1, "num_words": 4, "queries": 10, "seconds": 1.0}
    recs = [
        {**base, "outcome": "successful", "valid": True},
        {**base, "outcome": "successful", "valid": False},
        {**base, "outcome": "failed", "valid": None},
        {**base, "outcome": "skipped", "valid": None},
        {**base, "outcome": "successful", "valid": True},
    ]
    m = summarize(recs)
    assert m["num_valid"] == 2
    assert m["valid_success_rate"] == pytest.approx(2 / 4)
    assert m["attack_success_rate"] == pytest.approx(3 / 4)
    assert math.isnan(summarize([{**base, "outcome": "skipped", "valid": None}])["valid_success_rate"])
    no_checker = [{**r, "valid": None} for r in recs]
    assert math.isnan(summarize(no_checker)["valid_success_rate"]) and summarize(no_checker)["num_valid"] == 0


class StubChecker:
    def __init__(self) -> None:
        self.calls = []

    def describe(self):
        return {"stub": True}

    def check(self, original, perturbed):
        self.calls.append((original, perturbed))
        return {"words_changed_fraction": 0.5, "min_word_cos": 0.12345678, "sentence_similarity": 0.9,
                "pos_changes": 0, "antonym_swaps": 0, "valence_flips": 0, "valid": False}


def test_runner_records_validity_and_header(wrapper, tmp_path):
    from robench.attacks.runner import LOG_VERSION, read_log, run_attack

    attack = _build("deepwordbug", wrapper, "recipe")
    texts = ["a wonderful moving film with superb acting", "dull and lifeless waste of time"]
    labels = [int(x) for x in wrapper(texts).argmax(-1)]  # every example is attacked, none skipped
    checker = StubChecker()
    log = tmp_path / "log.jsonl"
    recs = run_attack(attack, texts, labels, indices=[0, 1], log_path=log, header={"recipe": "deepwordbug"},
                      seed=0, checker=checker)
    header, _ = read_log(log)
    assert LOG_VERSION == 3 and header["version"] == 3
    assert header["checker"] == {"stub": True}
    assert header["attack_constraints"] == {"constraints": "recipe", "label_preservation": None}
    for rec in recs:
        assert {"words_changed_fraction", "min_word_cos", "sentence_similarity", "valid"} <= set(rec)
        if rec["outcome"] == "successful":
            assert rec["valid"] is False and rec["min_word_cos"] == pytest.approx(0.123457)
            assert rec["words_changed_fraction"] == pytest.approx(0.5)
        else:
            assert rec["valid"] is None and rec["sentence_similarity"] is None
    assert len(checker.calls) == sum(r["outcome"] == "successful" for r in recs)


def test_attack_validity_script_reads_version_1_logs(tmp_path):
    import importlib.util
    from pathlib import Path

    from robench.attacks.validity import ValidityChecker

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "attack_validity.py"
    spec = importlib.util.spec_from_file_location("attack_validity", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    log = tmp_path / "v1.jsonl"
    rows = [{"type": "header", "version": 1, "recipe": "textfooler", "seed": 0},
            {"type": "example", "i": 0, "index": 0, "outcome": "successful", "original": "the film was good",
             "perturbed": "the movie was bad"},
            {"type": "example", "i": 1, "index": 1, "outcome": "successful", "original": "we loved the film",
             "perturbed": "we loved the movie"},
            {"type": "example", "i": 2, "index": 2, "outcome": "failed", "original": "x", "perturbed": "x"},
            {"type": "example", "i": 3, "index": 3, "outcome": "skipped", "original": "y", "perturbed": "y"}]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = module.analyse(log, checker=ValidityChecker(encoder=FakeEncoder()))
    assert (out["recipe"], out["n"], out["swaps"], out["antonyms"]) == ("textfooler", 4, 3, 1)
    assert out["success_rate"] == pytest.approx(2 / 3) and out["valid_success_rate"] == pytest.approx(1 / 3)
    assert out["pos_incompatible_share"] == 0.0
    assert out["in_lexicons_share"] == pytest.approx(1.0)  # film/movie and good/bad are all rated
    assert out["polarity_flip_share"] == pytest.approx(1 / 3)  # good/bad of three rated swaps


class KeywordModel:
    """A transparent classifier for attack tests: positive while the text holds a word of ``POSITIVE``; the
    logit margin grows with their count, so removing or editing such words is what flips it."""

    POSITIVE = {"wonderful", "superb", "clever", "lovely", "charming", "hilarious", "film"}

    def __init__(self) -> None:
        self.model = None

    def __call__(self, texts):
        import re

        out = []
        for text in texts:
            hits = sum(w in self.POSITIVE for w in re.findall(r"[a-z]+", text.lower()))
            out.append([0.5, float(hits)])
        return np.array(out, dtype=np.float32)


def test_what_the_valid_attack_finds_passes_the_post_hoc_check():
    """The search and the post-hoc checker apply the same checks: every success of a `valid` attack is valid,
    and the attacks do find some (the model is flipped by removing its keywords)."""
    from textattack.models.wrappers import ModelWrapper

    from robench.attacks.runner import attack_one
    from robench.attacks.validity import ValidityChecker

    class Wrapped(KeywordModel, ModelWrapper):
        pass

    model = Wrapped()
    checker = ValidityChecker("valence", vocab_size=VOCAB)  # the attack's vocabulary (VOCAB words)
    texts = ["we loved the film", "the acting is superb", "a clever little story", "the cast is charming"]
    found, outcomes = Counter(), []
    for name in ("deepwordbug", "textfooler", "pwws"):
        attack = _build(name, model, "valid", "valence")
        for i, text in enumerate(texts):
            rec = attack_one(attack, text, 1, seed=0, index=i, checker=checker)
            outcomes.append((name, rec["outcome"], rec["perturbed"]))
            if rec["outcome"] == "successful":
                found[name] += 1
                assert rec["valid"] is True, (name, rec["original"], rec["perturbed"])
    assert found["deepwordbug"] >= 2 and found["textfooler"] + found["pwws"] >= 1, outcomes
