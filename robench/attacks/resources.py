"""Offline resources of the attacks: GloVe vectors with a cached nearest-neighbour table, stop words,
WordNet and a MiniLM sentence encoder.

The 50-nearest-neighbour table (cosine, over the ``vocab_size`` most frequent GloVe words) is
computed once and cached as plain ``.npy`` files under ``<cache>/glove``, keyed by a hash of the
vectors used; later loads take well under a second.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from robench.attacks.offline import WORDNET_FIX, cache_root, prepare_wordnet
from robench.errors import AssetMissingError
from robench.hardware import native_bf16  # encoder_precision looks it up here (tests patch it)

# Counter-fitted vectors (TextFooler's) hold 65,713 words; GloVe is ordered by frequency, so its
# 65,713 most frequent alphabetic words give a vocabulary of the same size.
DEFAULT_VOCAB = 65713
NEIGHBOURS = 50


@dataclass
class GloveTable:
    matrix: np.ndarray  # (V, 50) float32
    words: list[str]
    nn: np.ndarray  # (V, NEIGHBOURS + 1) int32; column 0 is the word itself
    key: str

    @property
    def word2index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}


def _glove_files() -> tuple[Path, Path]:
    from robench.assets import asset_dir

    d = asset_dir("glove")
    return d / "glove_6B_50d_emb.npy", d / "glove_6B_index.parquet"


def vectors_hash(matrix: np.ndarray, words: list[str]) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(matrix, dtype=np.float32).tobytes())
    h.update("\n".join(words).encode())
    return h.hexdigest()[:16]


def nearest_neighbours(matrix: np.ndarray, k: int = NEIGHBOURS, chunk: int = 2048) -> np.ndarray:
    """(V, k+1) indices of each row's most cosine-similar rows, the row itself first (ties by index)."""
    import torch

    emb = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))
    emb = emb / emb.norm(dim=1, keepdim=True).clamp_min(1e-12)
    out = np.empty((len(emb), k + 1), dtype=np.int32)
    with torch.inference_mode():
        for start in range(0, len(emb), chunk):
            sims = emb[start : start + chunk] @ emb.T
            rows = torch.arange(sims.shape[0])
            sims[rows, rows + start] = float("inf")  # self first, even with duplicate vectors
            out[start : start + chunk] = sims.topk(k + 1, dim=1).indices.numpy()
    return out


VECTOR_SPACES = ("counterfitted", "glove")
DEFAULT_SPACE = "counterfitted"
SPACE_NAMES = {
    "counterfitted": "GloVe 6B 50d counter-fitted offline (Mrksic et al. 2016: PPDB 2.0 synonyms, PPDB and WordNet "
                     "antonyms; k1=k2=k3=0.1, delta=1.0, gamma=0.0, rho=0.2, 20 steps)",
    "glove": "GloVe 6B 50d (not counter-fitted)",
}


@lru_cache(maxsize=4)
def glove_vocabulary(vocab_size: int = DEFAULT_VOCAB) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """(rows in the GloVe file, words) of the ``vocab_size`` most frequent plain alphabetic GloVe words: the
    vocabulary of the attacks' word vectors and the dictionary a typo must not hit."""
    import pyarrow.parquet as pq

    all_words = [str(w) for w in pq.read_table(_glove_files()[1]).column(0).to_pylist()]
    # Keep plain alphabetic words (as in counter-fitted vectors): swapping in punctuation or
    # clitics ("n't", "'s", ",") changes the word segmentation, which TextAttack cannot track.
    keep = tuple(i for i, w in enumerate(all_words) if w.isascii() and w.isalpha())[:vocab_size]
    return keep, tuple(all_words[i] for i in keep)


def _glove_vocab(vocab_size: int) -> tuple[np.ndarray, list[str]]:
    """GloVe 6B 50d rows of the ``vocab_size`` most frequent plain alphabetic words, and the words."""
    keep, words = glove_vocabulary(vocab_size)
    return np.array(np.load(_glove_files()[0], mmap_mode="r")[list(keep)], dtype=np.float32), list(words)


def _cached_array(path: Path, shape: tuple[int, ...], build) -> np.ndarray:
    """``np.load(path)`` when it holds an array of ``shape``, else ``build()`` written there atomically."""
    if path.exists():
        try:
            arr = np.load(path, allow_pickle=False)
            if arr.shape == shape:
                return arr
        except (OSError, ValueError):
            pass
    arr = build()
    from robench.storage import atomic_write

    atomic_write(path, lambda fh: np.save(fh, arr, allow_pickle=False))
    return arr


def counterfitted_vectors(matrix: np.ndarray, words: list[str]) -> np.ndarray:
    """The counter-fitted copy of ``matrix`` (``robench.attacks.counterfit``), built once (about a minute on
    2 cores) and cached under ``<cache>/glove`` keyed by the input vectors, the constraints and the settings."""
    from robench.attacks.counterfit import (
        ANTONYM_FILES,
        SYNONYM_FILES,
        CounterfitConfig,
        constraints_hash,
        counter_fit,
        read_pairs,
    )

    config = CounterfitConfig()
    key = f"{vectors_hash(matrix, words)}-{constraints_hash(config)}"

    def build() -> np.ndarray:
        index = {w: i for i, w in enumerate(words)}
        return counter_fit(matrix, read_pairs(SYNONYM_FILES, index), read_pairs(ANTONYM_FILES, index), config)

    return _cached_array(cache_root() / "glove" / f"cf-{key}.npy", matrix.shape, build).astype(np.float32)


@lru_cache(maxsize=4)
def load_glove(vocab_size: int = DEFAULT_VOCAB, k: int = NEIGHBOURS, space: str = DEFAULT_SPACE) -> GloveTable:
    """Word vectors over the ``vocab_size`` most frequent GloVe words, with their k-NN table (cached):
    ``space="counterfitted"`` (the default: TextFooler's kind of space) or ``"glove"`` (raw GloVe)."""
    if space not in VECTOR_SPACES:
        from robench.errors import ConfigError

        raise ConfigError(f"unknown word-vector space {space!r}; choices: {', '.join(VECTOR_SPACES)}")
    matrix, words = _glove_vocab(vocab_size)
    if space == "counterfitted":
        matrix = counterfitted_vectors(matrix, words)
    key = vectors_hash(matrix, words)
    nn = _cached_array(cache_root() / "glove" / f"nn-{key}-k{k}.npy", (len(words), k + 1),
                       lambda: nearest_neighbours(matrix, k))
    return GloveTable(matrix=matrix, words=words, nn=nn, key=key)


def textattack_embedding(vocab_size: int = DEFAULT_VOCAB, space: str = DEFAULT_SPACE):
    """A ``textattack.shared.WordEmbedding`` over the word vectors of ``space`` with the cached neighbour table."""
    from robench.attacks.offline import import_textattack

    import_textattack()
    from textattack.shared import WordEmbedding

    table = load_glove(vocab_size, space=space)
    return WordEmbedding(table.matrix, table.word2index, dict(enumerate(table.words)), nn_matrix=table.nn)


def stop_words() -> set[str]:
    """English stop words (scikit-learn's list), left untouched by word-substitution attacks."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return set(ENGLISH_STOP_WORDS)


def require_wordnet() -> Path:
    """WordNet ready for NLTK; raises AssetMissingError with one clear line if it is not installed."""
    try:
        return prepare_wordnet()
    except AssetMissingError as exc:
        msg = str(exc)
        raise AssetMissingError(msg if WORDNET_FIX in msg else f"WordNet is not installed; {WORDNET_FIX}") from None


def encoder_precision(device: str = "cpu", precision: str | None = None) -> str:
    """The sentence encoder's precision: ``precision`` if given, else bf16 where the hardware has it natively
    (about 1.8x faster on 2 AVX512-BF16 cores; cosine similarities move by at most ~0.002), else fp32.
    The attack's threat-model card records it, so results of the two never share a leaderboard column."""
    if precision is not None:
        if precision not in ("fp32", "bf16"):
            from robench.errors import ConfigError

            raise ConfigError(f"sentence-encoder precision must be fp32 or bf16, got {precision!r}")
        return precision
    return "bf16" if native_bf16(device) else "fp32"


class MiniLMEncoder:
    """Mean-pooled all-MiniLM-L6-v2 sentence embeddings (the offline stand-in for USE), memoised.

    Batches are length-sorted and padded per batch; under ``precision="bf16"`` the encoder runs in bf16
    autocast (pooling and the returned vectors stay float32)."""

    def __init__(self, device: str = "cpu", batch_size: int = 64, cache_size: int = 100_000,
                 precision: str = "fp32") -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from robench.assets import asset_dir

        path = asset_dir("minilm")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(device).eval()
        self.device = torch.device(device)
        self.precision = precision
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, sentences: list[str]) -> np.ndarray:
        """Embeddings of ``sentences`` (memoised). Sentences are batched only with others of the same token
        length, so no batch is padded and a sentence's vector does not depend on which sentences happened
        to be encoded with it (under bf16, padding would move cosines by ~1e-3: enough to make a resumed
        attack differ from an uninterrupted one near a threshold)."""
        import torch

        todo = list(dict.fromkeys(s for s in sentences if s not in self._cache))
        groups: dict[int, list[str]] = {}
        if todo:
            lengths = self.tokenizer(todo, truncation=True, max_length=128)["input_ids"]
            for s, ids in zip(todo, lengths, strict=True):
                groups.setdefault(len(ids), []).append(s)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with torch.inference_mode():
            for length in sorted(groups):
                members = groups[length]
                for start in range(0, len(members), self.batch_size):
                    chunk = members[start : start + self.batch_size]
                    enc = self.tokenizer(chunk, padding=True, truncation=True, max_length=128,
                                         return_tensors="pt").to(self.device)
                    with autocast:
                        hidden = self.model(**enc).last_hidden_state
                    hidden = hidden.float()
                    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
                    for s, v in zip(chunk, pooled.cpu().numpy(), strict=True):
                        if len(self._cache) >= self.cache_size:
                            self._cache.pop(next(iter(self._cache)))
                        self._cache[s] = v
        return np.stack([self._cache[s] for s in sentences]) if sentences else np.zeros((0, 384), np.float32)


def minilm_encoder(device: str = "cpu", precision: str | None = None) -> MiniLMEncoder:
    """The shared sentence encoder of a device (one per precision); ``precision=None``: :func:`encoder_precision`."""
    return _minilm_encoder(str(device), encoder_precision(device, precision))


@lru_cache(maxsize=4)
def _minilm_encoder(device: str, precision: str) -> MiniLMEncoder:
    return MiniLMEncoder(device, precision=precision)
