"""Counter-fitting (Mrkšić et al. 2016) of the packaged GloVe: each term of the objective does its job and
fails its check when removed; SimLex-999 rises; the result is cached and rebuilt when its inputs change."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

VOCAB = 3000


@pytest.fixture(scope="module")
def glove():
    from robench.attacks.counterfit import ANTONYM_FILES, SYNONYM_FILES, read_pairs
    from robench.attacks.resources import _glove_vocab

    matrix, words = _glove_vocab(VOCAB)
    index = {w: i for i, w in enumerate(words)}
    return matrix, words, index, read_pairs(SYNONYM_FILES, index), read_pairs(ANTONYM_FILES, index)


def _mean_cos(x, pairs):
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    return float((u[pairs[:, 0]] * u[pairs[:, 1]]).sum(1).mean())


def test_read_pairs_is_symmetric_and_in_vocabulary(glove):
    _, _, index, syn, ant = glove
    assert len(syn) > 100 and len(ant) > 100
    both = {tuple(p) for p in syn}
    assert all((b, a) in both for a, b in both)
    assert (syn[:, 0] != syn[:, 1]).all() and syn.max() < len(index)
    good, bad = index["good"], index["bad"]
    assert {(good, bad), (bad, good)} <= {tuple(p) for p in ant}


def test_each_term_moves_its_pairs_and_fails_when_removed(glove):
    from robench.attacks.counterfit import CounterfitConfig, counter_fit

    matrix, _, _, syn, ant = glove
    config = CounterfitConfig()
    base_syn, base_ant = _mean_cos(matrix, syn), _mean_cos(matrix, ant)
    fitted = counter_fit(matrix, syn, ant, config)
    assert _mean_cos(fitted, syn) > base_syn + 0.1  # synonyms pulled together
    assert _mean_cos(fitted, ant) < base_ant - 0.1  # antonyms pushed apart
    no_attract = counter_fit(matrix, syn, ant, replace(config, k2=0.0))
    assert _mean_cos(no_attract, syn) < _mean_cos(fitted, syn) - 0.05
    no_repel = counter_fit(matrix, syn, ant, replace(config, k1=0.0))
    assert _mean_cos(no_repel, ant) > _mean_cos(fitted, ant) + 0.05
    # vector space preservation keeps the rest of the space where it was: without it, pairs that were close
    # and are no constraint drift further apart
    from robench.attacks.counterfit import normalise, vsp_pairs

    pairs, original = vsp_pairs(normalise(matrix), config.rho)
    constrained = {tuple(p) for p in syn} | {tuple(p) for p in ant}
    free = np.array([p for p in pairs if tuple(p) not in constrained])
    no_vsp = counter_fit(matrix, syn, ant, replace(config, k3=0.0))
    assert _mean_cos(fitted, free) > _mean_cos(no_vsp, free) + 0.005
    # the strength of a term matters: ten times the attraction pulls synonyms closer still
    strong = counter_fit(matrix, syn, ant, replace(config, k2=1.0))
    assert _mean_cos(strong, syn) > _mean_cos(fitted, syn)


def test_synonym_pairs_that_are_also_antonyms_are_only_antonyms(glove):
    from robench.attacks.counterfit import CounterfitConfig, counter_fit

    matrix, _, index, _, _ = glove
    a, b = index["good"], index["bad"]
    pair = np.array([[a, b], [b, a]])
    both = counter_fit(matrix, pair, pair, CounterfitConfig(k3=0.0))
    only_ant = counter_fit(matrix, np.zeros((0, 2), np.int64), pair, CounterfitConfig(k3=0.0))
    assert np.allclose(both, only_ant)


def test_counter_fitting_raises_simlex(glove):
    from robench.attacks.counterfit import simlex_spearman
    from robench.attacks.resources import load_glove

    raw = load_glove(VOCAB, space="glove")
    fitted = load_glove(VOCAB, space="counterfitted")
    before, n = simlex_spearman(raw.matrix, raw.word2index)
    after, m = simlex_spearman(fitted.matrix, fitted.word2index)
    assert n == m > 200
    assert after > before + 0.05


def test_simlex_file_is_complete():
    from robench.attacks.counterfit import read_simlex

    rows = read_simlex()
    assert len(rows) == 999 and rows[0] == ("old", "new", "A", 1.58) and rows[1][3] == 9.2


def test_counterfitted_table_is_cached_and_keyed_by_its_inputs(tmp_path, monkeypatch):
    import robench.attacks.counterfit as cf
    import robench.attacks.resources as resources

    monkeypatch.setenv("ROBENCH_CACHE", str(tmp_path))
    resources.load_glove.cache_clear()
    calls = []
    real = cf.counter_fit
    monkeypatch.setattr(cf, "counter_fit", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = resources.load_glove(500, space="counterfitted")
    files = sorted(p.name for p in (tmp_path / "glove").iterdir())
    assert len(calls) == 1 and any(f.startswith("cf-") for f in files)
    resources.load_glove.cache_clear()
    again = resources.load_glove(500, space="counterfitted")
    assert len(calls) == 1 and np.array_equal(first.matrix, again.matrix)  # a hit: not rebuilt
    resources.load_glove.cache_clear()
    resources.load_glove(400, space="counterfitted")  # other vectors: a miss
    assert len(calls) == 2
    config = cf.CounterfitConfig
    monkeypatch.setattr(cf, "CounterfitConfig", lambda: config(k1=0.2))  # other settings: a miss
    resources.load_glove.cache_clear()
    resources.load_glove(500, space="counterfitted")
    assert len(calls) == 3
    resources.load_glove.cache_clear()
