"""Counter-fitted word vectors, rebuilt offline from the packaged GloVe and the published constraints.

Mrkšić et al. 2016, "Counter-fitting Word Vectors to Linguistic Constraints" (NAACL-HLT); released
code: github.com/nmrksic/counter-fitting, ``counterfitting.py``, functions ``counter_fit``,
``one_step_SGD``, ``compute_vsp_pairs`` and ``simlex_analysis``; hyper-parameters from its
``experiment_parameters.cfg``. TextFooler's word vectors are counter-fitted; the thresholds of the
recipe (neighbour cosine >= 0.5) and of Morris et al. 2020 (>= 0.9) were set in such a space, where
synonyms sit near 1 and antonyms far apart, not in raw GloVe (where good/bad is 0.80).

The procedure (our own vectorised code, same update as the released one):

* vectors are unit-normalised (``v / sqrt(|v|^2 + 1e-6)``);
* constraint pairs are read in both directions, kept when both words are in the vocabulary;
  synonym pairs that are also antonym pairs are dropped, and antonym pairs are removed from the
  vector-space-preservation (VSP) pairs;
* VSP pairs: every ordered pair of distinct words whose original cosine distance is <= rho;
* 20 full-batch steps. With ``g(u, v) = u (u.v) - v`` (the gradient of the cosine distance of unit
  vectors with respect to u), for each ordered pair (i, j):
  antonym repel, when ``dist(i, j) < delta``: ``i += k1 g(x_i, x_j)``;
  synonym attract, when ``dist(i, j) > gamma``: ``j -= k2 g(x_j, x_i)``;
  VSP, when the original distance is <= the current one: ``i -= k3 g(x_i, x_j)``;
  each word's summed update is divided by the number of terms that touched it, then every vector is
  normalised again.

``simlex_spearman`` is the paper's evaluation: Spearman's rho between the SimLex-999 ratings and the
cosine similarities of the pairs whose two words are in the vocabulary.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np

DATA_PACKAGE = "robench.attacks"
DATA_DIR = "data/counterfit"
SYNONYM_FILES = ("ppdb_synonyms.txt",)
ANTONYM_FILES = ("ppdb_antonyms.txt", "wordnet_antonyms.txt")
SIMLEX_FILE = "SimLex-999.txt"


@dataclass(frozen=True)
class CounterfitConfig:
    """The released ``experiment_parameters.cfg`` values and ``counter_fit``'s ``max_iter``."""

    k1: float = 0.1  # antonym repel
    k2: float = 0.1  # synonym attract
    k3: float = 0.1  # vector space preservation
    delta: float = 1.0  # antonyms are pushed until their cosine distance reaches delta
    gamma: float = 0.0  # synonyms are pulled until their cosine distance is gamma
    rho: float = 0.2  # VSP neighbourhood: original cosine distance <= rho
    iterations: int = 20


def data_file(name: str) -> Path:
    """A packaged counter-fitting data file (constraints or SimLex-999)."""
    return Path(str(resources.files(DATA_PACKAGE).joinpath(f"{DATA_DIR}/{name}")))


def normalise(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as the released code does (``/ sqrt(|v|^2 + 1e-6)``)."""
    return matrix / np.sqrt((matrix.astype(np.float64) ** 2).sum(1, keepdims=True) + 1e-6).astype(matrix.dtype)


def read_word_pairs(files) -> set[tuple[str, str]]:
    """The word pairs in ``files`` (one pair per line; packaged names or paths), both orders, no word paired
    with itself."""
    pairs: set[tuple[str, str]] = set()
    for name in files:
        path = name if isinstance(name, Path) else data_file(name)
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] != parts[1]:
                    pairs.update({(parts[0], parts[1]), (parts[1], parts[0])})
    return pairs


def read_pairs(files, index: dict[str, int]) -> np.ndarray:
    """(P, 2) int64 ordered index pairs of the word pairs in ``files``, both directions, deduplicated, both
    words in ``index``."""
    pairs = sorted((index[a], index[b]) for a, b in read_word_pairs(files) if a in index and b in index)
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def vsp_pairs(unit: np.ndarray, rho: float, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Ordered pairs (i != j) whose cosine distance is <= rho, and those distances."""
    import torch

    emb = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32))
    rows, cols, dists = [], [], []
    with torch.inference_mode():
        for start in range(0, len(emb), chunk):
            sims = emb[start : start + chunk] @ emb.T
            i, j = torch.nonzero(sims >= 1.0 - rho, as_tuple=True)
            keep = (i + start) != j
            i, j = i[keep], j[keep]
            rows.append((i + start).numpy())
            cols.append(j.numpy())
            dists.append((1.0 - sims[i, j]).numpy())
    pairs = np.stack([np.concatenate(rows), np.concatenate(cols)], axis=1).astype(np.int64)
    return pairs, np.concatenate(dists).astype(np.float32)


def _drop(pairs: np.ndarray, remove: np.ndarray, n: int) -> np.ndarray:
    """Rows of ``pairs`` that are not rows of ``remove`` (pairs of indices < n)."""
    if len(pairs) == 0 or len(remove) == 0:
        return np.ones(len(pairs), dtype=bool)
    return ~np.isin(pairs[:, 0] * n + pairs[:, 1], remove[:, 0] * n + remove[:, 1])


def _grad(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Row-wise gradient of the cosine distance of unit vectors u, v with respect to u: u (u.v) - v."""
    return u * (u * v).sum(1, keepdims=True) - v


def counter_fit(vectors: np.ndarray, synonyms: np.ndarray, antonyms: np.ndarray,
                config: CounterfitConfig = CounterfitConfig(), vsp: tuple[np.ndarray, np.ndarray] | None = None,
                ) -> np.ndarray:
    """Counter-fitted copy of ``vectors`` (V, d) under ordered index pairs (see the module docstring).

    ``vsp``: precomputed (pairs, original distances); computed from the vectors when None (and k3 > 0)."""
    x = normalise(np.array(vectors, dtype=np.float32))
    n = len(x)
    antonyms = np.asarray(antonyms, dtype=np.int64).reshape(-1, 2)
    synonyms = np.asarray(synonyms, dtype=np.int64).reshape(-1, 2)
    synonyms = synonyms[_drop(synonyms, antonyms, n)]
    if config.k3 > 0:
        pairs, original = vsp if vsp is not None else vsp_pairs(x, config.rho)
        keep = _drop(pairs, antonyms, n)
        pairs, original = pairs[keep], original[keep]
    else:
        pairs, original = np.zeros((0, 2), np.int64), np.zeros(0, np.float32)
    for _ in range(config.iterations):
        update = np.zeros_like(x)
        count = np.zeros(n, dtype=np.int64)
        if len(antonyms):  # antonym repel: push i away from j while they are closer than delta
            i, j = antonyms[:, 0], antonyms[:, 1]
            on = (1.0 - (x[i] * x[j]).sum(1)) < config.delta
            np.add.at(update, i[on], config.k1 * _grad(x[i[on]], x[j[on]]))
            np.add.at(count, i[on], 1)
        if len(synonyms):  # synonym attract: pull j towards i while they are further than gamma
            i, j = synonyms[:, 0], synonyms[:, 1]
            on = (1.0 - (x[i] * x[j]).sum(1)) > config.gamma
            np.add.at(update, j[on], -config.k2 * _grad(x[j[on]], x[i[on]]))
            np.add.at(count, j[on], 1)
        if len(pairs):  # vector space preservation: pull i back towards j once they drift apart
            i, j = pairs[:, 0], pairs[:, 1]
            on = original <= (1.0 - (x[i] * x[j]).sum(1))
            np.add.at(update, i[on], -config.k3 * _grad(x[i[on]], x[j[on]]))
            np.add.at(count, i[on], 1)
        touched = count > 0
        x[touched] += update[touched] / count[touched, None]
        x = normalise(x)
    return x


def read_simlex(path: Path | None = None) -> list[tuple[str, str, str, float]]:
    """SimLex-999 rows as (word1, word2, POS, rating 0-10)."""
    rows = []
    with open(path or data_file(SIMLEX_FILE), encoding="utf-8") as f:
        next(f)
        for line in f:
            parts = line.split("\t")
            if len(parts) >= 4:
                rows.append((parts[0].lower(), parts[1].lower(), parts[2], float(parts[3])))
    return rows


def simlex_spearman(vectors: np.ndarray, index: dict[str, int]) -> tuple[float, int]:
    """(Spearman's rho of cosine similarity against SimLex-999 ratings, pairs covered by the vocabulary)."""
    from scipy.stats import spearmanr

    unit = normalise(np.asarray(vectors, dtype=np.float32))
    gold, sims = [], []
    for a, b, _, rating in read_simlex():
        if a in index and b in index:
            gold.append(rating)
            sims.append(float(unit[index[a]] @ unit[index[b]]))
    return float(spearmanr(gold, sims).correlation), len(gold)


def constraints_hash(config: CounterfitConfig) -> str:
    """Names the constraint files and hyper-parameters (part of the cache key)."""
    h = hashlib.sha256(repr(sorted(asdict(config).items())).encode())
    for name in (*SYNONYM_FILES, *ANTONYM_FILES):
        h.update(name.encode())
        h.update(data_file(name).read_bytes())
    return h.hexdigest()[:16]
