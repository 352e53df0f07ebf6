"""The attacks' on-disk caches (robench.attacks.cache): the store (keys, folder, off switch, damaged and
truncated files, two processes), each cache wired into the attacks (spaCy tags, MiniLM vectors, WordNet
candidate lists: a miss computes and stores, a hit does not compute, another text or resource identity
misses), and an attack whose records are identical with the caches cold, warm and off."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

VOCAB = 3000  # the small GloVe table of the other attack tests


@pytest.fixture
def attack_cache(monkeypatch, tmp_path):
    """The attack caches in a private folder, on, with empty in-memory layers and statistics."""
    from robench.attacks import cache

    folder = tmp_path / "attack-cache"
    monkeypatch.setenv(cache.DIR_ENV, str(folder))
    monkeypatch.delenv(cache.SWITCH_ENV, raising=False)
    cache.close_all()
    cache.clear_memory()
    cache.reset_stats()
    yield folder
    cache.close_all()
    cache.clear_memory()
    cache.reset_stats()


def _fresh_process() -> None:
    """What a new process starts with: no in-memory layer, no open file."""
    from robench.attacks import cache

    cache.close_all()
    cache.clear_memory()
    cache.reset_stats()


class Counting:
    """A compute function that records the texts it was asked for."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.calls: list = []

    def __call__(self, items):
        self.calls.append(list(items))
        return [self.fn(t) for t in items]

    @property
    def texts(self) -> list:
        return [t for call in self.calls for t in call]


def _store(identity: dict, namespace: str = "test_ns"):
    from robench.attacks.cache import JsonCodec, TextCache, is_str_list

    return TextCache(namespace, lambda: dict(identity), JsonCodec(is_str_list))


# ------------------------------------------------------------------ the store


def test_cache_folder_and_off_switch_follow_the_environment(monkeypatch, tmp_path):
    from robench.attacks import cache

    for name in (cache.DIR_ENV, cache.ROOT_ENV, cache.SWITCH_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "robench" / "attacks"
    monkeypatch.setenv(cache.ROOT_ENV, str(tmp_path / "root"))
    assert cache.cache_dir() == tmp_path / "root" / "attacks"
    monkeypatch.setenv(cache.DIR_ENV, str(tmp_path / "explicit"))
    assert cache.cache_dir() == tmp_path / "explicit"
    assert cache.enabled()
    for off in ("0", "false", "No", "off"):
        monkeypatch.setenv(cache.SWITCH_ENV, off)
        assert not cache.enabled()
    monkeypatch.setenv(cache.SWITCH_ENV, "1")
    assert cache.enabled()


def test_miss_stores_hit_reads_other_text_or_identity_misses(attack_cache):
    from robench.attacks.cache import cached_values, stats

    identity = {"model": "m", "version": "1"}
    store = _store(identity)
    compute = Counting(lambda t: [t.upper(), str(len(t))])
    assert cached_values(store, ["a b", "c", "a b"], compute) == [["A B", "3"], ["C", "1"], ["A B", "3"]]
    assert compute.calls == [["a b", "c"]]  # a miss computes (each text once) and stores
    assert (attack_cache / "test_ns.v1.sqlite").is_file()
    _fresh_process()
    assert cached_values(store, ["c", "a b"], compute) == [["C", "1"], ["A B", "3"]]
    assert compute.calls == [["a b", "c"]]  # a hit: read back, not computed
    assert stats()["test_ns"]["disk_hits"] == 2
    assert cached_values(store, ["c", "a  b"], compute) == [["C", "1"], ["A  B", "4"]]
    assert compute.calls[-1] == ["a  b"]  # another text (one more space) misses
    identity["version"] = "2"  # another resource (model version, weights fingerprint...) misses
    assert cached_values(store, ["c"], compute) == [["C", "1"]] and compute.calls[-1] == ["c"]
    identity["version"] = "1"
    n = len(compute.calls)
    assert cached_values(store, ["c"], compute) == [["C", "1"]] and len(compute.calls) == n  # the old entry stays
    # another namespace of the same identity is another file and misses
    other = _store({"model": "m", "version": "1"}, namespace="other_ns")
    assert other.get_many(["c"]) == {}
    # a memory layer in front: hits there do not reach the disk
    memory: dict = {}
    cached_values(store, ["c"], compute, memory=memory)
    assert memory == {"c": ["C", "1"]}


def test_vectors_round_trip_bit_for_bit(attack_cache):
    from robench.attacks.cache import Float32Codec, TextCache

    rng = np.random.default_rng(0)
    vector = rng.standard_normal(384).astype(np.float32)
    vector[:3] = [np.float32(1e-45), np.float32(-0.0), np.float32(3.4e38)]  # a subnormal, a signed zero, a large one
    store = TextCache("vectors", lambda: {"encoder": "x"}, Float32Codec(384))
    store.put_many({"some text": vector})
    _fresh_process()
    back = store.get_many(["some text"])["some text"]
    assert back.dtype == np.float32 and back.tobytes() == vector.tobytes()
    back[0] = 1.0  # a writable copy
    store.put_many({"short": np.zeros(3, np.float32), "f64": np.zeros(384)})  # wrong shapes and types are skipped
    assert store.get_many(["short", "f64"]) == {}


def test_damaged_truncated_or_foreign_files_are_misses_and_rebuilt(attack_cache):
    from robench.attacks.cache import cached_values, stats

    store = _store({"model": "m"})
    compute = Counting(lambda t: [t, "tag"])
    texts = [f"text number {i}" for i in range(1500)]
    cached_values(store, texts, compute)
    _fresh_process()
    path = attack_cache / "test_ns.v1.sqlite"
    assert not Path(str(path) + "-wal").exists()  # folded back on close
    # a torn file (a crash of the machine, a full disk while copying): never raises, never a wrong value; the
    # rows on lost pages cannot be read, so the file is deleted and rebuilt
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    assert cached_values(store, texts, compute) == [[t, "tag"] for t in texts]
    assert compute.calls[-1] == texts and stats()["test_ns"]["rebuilt"] == 1
    _fresh_process()
    assert store.get_many(texts) == {t: [t, "tag"] for t in texts}  # rebuilt, and read back
    # not a database at all
    _fresh_process()
    path.write_bytes(b"not a database, just bytes " * 200)
    assert store.get_many(texts[:5]) == {}
    assert cached_values(store, texts[:2], compute) == [[t, "tag"] for t in texts[:2]]
    _fresh_process()
    assert store.get_many(texts[:2]) == {t: [t, "tag"] for t in texts[:2]}
    # a row whose value no longer matches its checksum is a miss, then written again
    _fresh_process()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE entries SET value = CAST('[\"forged\",\"tag\"]' AS BLOB) WHERE text = ?", (texts[0],))
    assert store.get_many([texts[0], texts[1]]) == {texts[1]: [texts[1], "tag"]}
    assert stats()["test_ns"]["damaged"] == 1
    assert cached_values(store, [texts[0]], compute) == [[texts[0], "tag"]]
    assert store.get_many([texts[0]]) == {texts[0]: [texts[0], "tag"]}
    # a value of the wrong shape (a list of numbers where tags are strings) is a miss too
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DELETE FROM entries")
    store.put_many({"x": [1, 2]})  # the codec stores it (it only checks on reading)
    assert store.get_many(["x"]) == {}


def test_unusable_folder_is_a_miss_not_an_error(monkeypatch, tmp_path, attack_cache):
    from robench.attacks import cache

    blocker = tmp_path / "a-file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(cache.DIR_ENV, str(blocker / "attacks"))
    store = _store({"model": "m"})
    compute = Counting(lambda t: [t])
    assert cache.cached_values(store, ["a", "b"], compute) == [["a"], ["b"]]
    assert cache.cached_values(store, ["a"], compute) == [["a"]] and compute.calls == [["a", "b"], ["a"]]


def test_off_switch_computes_and_stores_nothing(monkeypatch, attack_cache):
    from robench.attacks import cache

    monkeypatch.setenv(cache.SWITCH_ENV, "0")
    store = _store({"model": "m"})
    compute = Counting(lambda t: [t])
    cache.cached_values(store, ["a"], compute)
    cache.cached_values(store, ["a"], compute)
    assert compute.calls == [["a"], ["a"]]
    assert not (attack_cache / "test_ns.v1.sqlite").exists()
    monkeypatch.setenv(cache.SWITCH_ENV, "1")  # on again: nothing was stored while off
    assert store.get_many(["a"]) == {}


WRITER = textwrap.dedent(
    """
    import sys
    from robench.attacks.cache import JsonCodec, TextCache, is_str_list
    store = TextCache("test_ns", lambda: {"model": "m"}, JsonCodec(is_str_list))
    me = sys.argv[1]
    for i in range(150):
        store.put_many({f"{me} {i}": [me, str(i)], "shared": ["same"]})
        assert store.get_many(["shared"]) == {"shared": ["same"]}
    print("done")
    """
)


def test_two_processes_write_one_cache(attack_cache):
    env = {**os.environ}
    root = Path(__file__).resolve().parents[2]
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, name], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=root) for name in ("a", "b")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    store = _store({"model": "m"})
    found = store.load_all()
    assert len(found) == 301 and found["a 149"] == ["a", "149"] and found["b 0"] == ["b", "0"]


def test_files_fingerprint_names_the_bytes(tmp_path):
    from robench.attacks.cache import files_fingerprint

    for name, text in (("one", "weights"), ("two", "weights"), ("three", "weightz")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.bin").write_text(text)
        (tmp_path / name / "config.json").write_text("{}")
    fp = {name: files_fingerprint(str(tmp_path / name)) for name in ("one", "two", "three")}
    assert fp["one"] == fp["two"] != fp["three"]
    assert files_fingerprint(str(tmp_path / "one"), ("model.bin",)) != fp["one"]


# ------------------------------------------------------------------ spaCy tags


def test_tag_cache(monkeypatch, attack_cache):
    from robench.attacks import cache, constraints

    real = constraints._tag_texts
    compute = Counting(lambda words: real([words])[0])
    monkeypatch.setattr(constraints, "_tag_texts", compute)
    a = ("the", "film", "was", "good")
    b = ("we", "loved", "the", "movie")
    expected = real([a, b])
    assert constraints.upos_tags([a, b, a]) == [expected[0], expected[1], expected[0]]
    assert compute.texts == [a, b]  # a miss tags and stores
    assert constraints.upos_tags([b]) == [expected[1]] and len(compute.texts) == 2  # memory
    _fresh_process()
    assert constraints.upos_tags([a, b]) == expected and len(compute.texts) == 2  # disk: spaCy not called
    assert cache.stats()["spacy_tags"]["disk_hits"] == 2
    c = ("the", "film", "was", "Good")  # another text (case counts)
    constraints.upos_tags([c])
    assert compute.texts[-1] == c
    # another tagger (model version, files, spaCy version...) misses
    identity = constraints.tagger_identity()
    assert {"model", "version", "files", "spacy", "thinc"} <= set(identity) and len(identity["files"]) == 16
    monkeypatch.setattr(constraints, "tagger_identity", lambda: {**identity, "version": "9.9.9"})
    _fresh_process()
    assert constraints.upos_tags([a]) == [expected[0]] and compute.texts[-1] == a
    # off: tagged again, nothing stored
    monkeypatch.setattr(constraints, "tagger_identity", lambda: {**identity, "files": "another"})
    monkeypatch.setenv(cache.SWITCH_ENV, "0")
    _fresh_process()
    n = len(compute.texts)
    assert constraints.upos_tags([a]) == [expected[0]] and len(compute.texts) == n + 1
    monkeypatch.setenv(cache.SWITCH_ENV, "1")
    _fresh_process()
    constraints.upos_tags([a])
    assert len(compute.texts) == n + 2  # nothing was stored under that identity while off


def test_tags_of_a_text_do_not_depend_on_its_batch(attack_cache):
    from robench.attacks.constraints import _tag_texts

    texts = [("she", "sings", "beautifully"), ("the", "ending", "feels", "rushed"), ("a", "fine", "film")]
    assert _tag_texts(texts) == [_tag_texts([t])[0] for t in texts]


# ------------------------------------------------------------------ MiniLM vectors


def test_sentence_vector_cache(monkeypatch, attack_cache):
    from robench.attacks import cache, resources

    encoder = resources.minilm_encoder("cpu")
    real = encoder._embed_one
    calls: list[str] = []

    def counting(text):
        calls.append(text)
        return real(text)

    monkeypatch.setattr(encoder, "_embed_one", counting)
    a, b = "the film was good and the plot clever", "the movie was bad and the plot clever"
    first = encoder.encode([a, b, a])
    assert calls == [a, b] and first.dtype == np.float32 and first.shape == (3, 384)
    _fresh_process()
    again = encoder.encode([b, a])
    assert calls == [a, b]  # read back, not encoded
    assert again[0].tobytes() == first[1].tobytes() and again[1].tobytes() == first[0].tobytes()  # bit for bit
    assert cache.stats()["minilm_embeddings"]["disk_hits"] == 2
    encoder.encode([a + " "])  # a window or text that differs by one character misses
    assert calls[-1] == a + " "
    # a vector does not depend on the texts encoded with it: computed alone, it is the stored one
    monkeypatch.setenv(cache.SWITCH_ENV, "0")
    _fresh_process()
    alone = encoder.encode([a])
    assert calls[-1] == a and alone[0].tobytes() == first[0].tobytes()
    monkeypatch.setenv(cache.SWITCH_ENV, "1")
    # another encoder (weights fingerprint, precision, device...) misses
    identity = encoder.identity()
    assert {"files", "precision", "device", "torch", "threads"} <= set(identity)
    assert resources.minilm_identity("bf16", "cpu", 1) != resources.minilm_identity("fp32", "cpu", 1)
    assert resources.minilm_identity("fp32", "cpu", 1) != resources.minilm_identity("fp32", "cpu", 2)
    monkeypatch.setattr(encoder, "identity", lambda: {**identity, "files": "other weights"})
    _fresh_process()
    n = len(calls)
    encoder.encode([a])
    assert len(calls) == n + 1
    _fresh_process()
    encoder.encode([a])
    assert len(calls) == n + 1  # stored under the other identity, read back
    monkeypatch.setattr(encoder, "identity", lambda: identity)
    _fresh_process()
    encoder.encode([a, b])
    assert len(calls) == n + 1  # the first identity's entries are still there


# ------------------------------------------------------------------ WordNet candidate lists (PWWS)


def test_wordnet_candidate_cache(monkeypatch, attack_cache):
    from robench.attacks import cache, recipes
    from robench.attacks.offline import import_textattack

    import_textattack()
    from textattack.transformations import WordSwapWordNet

    real = WordSwapWordNet._get_replacement_words
    calls: list[str] = []

    def counting(self, word, random=False):
        calls.append(word)
        return real(self, word)

    swap = recipes._wordnet_swap()
    monkeypatch.setattr(WordSwapWordNet, "_get_replacement_words", counting)
    good = swap._get_replacement_words("good")
    assert calls == ["good"] and good and good == sorted(set(real(swap, "good")))
    assert swap._get_replacement_words("good") == good and calls == ["good"]  # memory
    _fresh_process()
    assert swap._get_replacement_words("good") == good and calls == ["good"]  # disk: WordNet not asked
    assert cache.stats()["wordnet_candidates"]["disk_hits"] >= 1
    swap._get_replacement_words("Good")  # another word (TextAttack's list depends on the case)
    assert calls[-1] == "Good"
    identity = recipes.wordnet_identity()
    assert {"wordnet", "nltk", "textattack"} <= set(identity)
    monkeypatch.setattr(recipes, "wordnet_identity", lambda: {**identity, "wordnet": "another WordNet"})
    _fresh_process()
    assert swap._get_replacement_words("good") == good and calls[-1] == "good" and len(calls) == 3
    monkeypatch.setenv(cache.SWITCH_ENV, "0")
    monkeypatch.setattr(recipes, "wordnet_identity", lambda: {**identity, "wordnet": "a third"})
    _fresh_process()
    swap._get_replacement_words("good")
    assert len(calls) == 4
    monkeypatch.setenv(cache.SWITCH_ENV, "1")
    _fresh_process()
    swap._get_replacement_words("good")
    assert len(calls) == 5  # nothing stored while off


# ------------------------------------------------------------------ whole attacks: cold, warm, off


class KeywordWrapper:
    """A transparent victim: positive while the text holds a word of POSITIVE (more of them, a larger margin)."""

    POSITIVE = {"wonderful", "superb", "clever", "lovely", "charming", "hilarious", "film", "good", "great"}

    def __init__(self) -> None:
        self.model = None

    def __call__(self, texts):
        import re

        return np.array([[0.5, float(sum(w in self.POSITIVE for w in re.findall(r"[a-z]+", t.lower())))]
                         for t in texts], dtype=np.float32)


def _attack_records(texts: list[str]) -> list[dict]:
    from textattack.models.wrappers import ModelWrapper

    from robench.attacks.recipes import build_attack
    from robench.attacks.runner import attack_one

    class Wrapped(KeywordWrapper, ModelWrapper):
        pass

    records = []
    for name in ("deepwordbug", "textfooler", "pwws"):
        attack = build_attack(name, Wrapped(), constraints="valid", label_preservation="valence", vocab_size=VOCAB)
        for i, text in enumerate(texts):
            rec = attack_one(attack, text, 1, seed=0, index=i)
            records.append({"recipe": name, **{k: v for k, v in rec.items() if k != "seconds"}})
    return records


def test_attack_records_identical_with_caches_cold_warm_and_off(monkeypatch, attack_cache):
    from robench.attacks import cache
    from robench.attacks.offline import import_textattack

    import_textattack()
    texts = ["we loved the film , it is a good story", "the acting is superb and the plot clever",
             "a charming little film with great music"]
    cold = _attack_records(texts)
    cold_stats = cache.stats()
    assert cold_stats["spacy_tags"]["computed"] > 0 and cold_stats["wordnet_candidates"]["computed"] > 0
    assert any(r["outcome"] == "successful" for r in cold)
    _fresh_process()
    warm = _attack_records(texts)
    warm_stats = cache.stats()
    for namespace in ("spacy_tags", "minilm_embeddings", "wordnet_candidates"):
        assert warm_stats.get(namespace, {}).get("computed", 0) == 0, (namespace, warm_stats)  # all read back
    assert warm_stats["spacy_tags"]["disk_hits"] > 0 and warm_stats["wordnet_candidates"]["disk_hits"] > 0
    monkeypatch.setenv(cache.SWITCH_ENV, "0")
    _fresh_process()
    off = _attack_records(texts)
    assert cold == warm == off
