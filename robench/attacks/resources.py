"""Offline resources of the attacks: GloVe vectors with a cached nearest-neighbour table, stop words,
WordNet and a MiniLM sentence encoder.

The 50-nearest-neighbour table (cosine, over the ``vocab_size`` most frequent GloVe words) is
computed once and cached as plain ``.npy`` files under ``<cache>/glove``, keyed by a hash of the
vectors used; later loads take well under a second.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from robench.attacks.cache import register_memory
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


@lru_cache(maxsize=4)
def textattack_embedding(vocab_size: int = DEFAULT_VOCAB, space: str = DEFAULT_SPACE):
    """A ``textattack.shared.WordEmbedding`` over the word vectors of ``space`` with the cached neighbour table,
    one per process and vocabulary: the word-pair cosines it memoises (``WordEmbeddingDistance``) serve every
    attack built on it, not only the first (the memo is a pure function of the table). A word's candidate list
    (``WordSwapEmbedding``) is a row of the neighbour table, itself cached on disk (module docstring)."""
    from robench.attacks.offline import import_textattack

    import_textattack()
    from textattack.shared import WordEmbedding

    table = load_glove(vocab_size, space=space)
    return WordEmbedding(table.matrix, table.word2index, dict(enumerate(table.words)), nn_matrix=table.nn)


register_memory(textattack_embedding.cache_clear)  # clear_memory: the next attack starts with empty memos


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


ENCODER_NAMESPACE = "minilm_embeddings"
ENCODER_MAX_LENGTH = 128
_ENCODERS: weakref.WeakSet = weakref.WeakSet()  # the process's MiniLMEncoders (clear_memory empties their memos)


@lru_cache(maxsize=16)
def minilm_identity(precision: str, device_type: str, threads: int = 1) -> dict:
    """What a MiniLM vector of a text depends on besides the text (the key of the on-disk vector cache,
    ``robench.attacks.cache``): a fingerprint of the model's files, the precision, the device kind (and the
    CPU's vector instructions or the GPU's name: kernels differ), torch's thread count (a kernel may split its
    sums across threads), the torch and transformers versions, the truncation, the pooling and the
    one-text-per-pass batching. Computed once per process and setting."""
    import platform

    import torch

    from robench.assets import asset_dir
    from robench.attacks.cache import files_fingerprint, package_version

    if device_type == "cuda":
        hardware = torch.cuda.get_device_name() if torch.cuda.is_available() else "cuda"
    elif device_type == "cpu":
        hardware = f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"
    else:
        hardware = device_type
    return {"encoder": "all-MiniLM-L6-v2", "files": files_fingerprint(str(asset_dir("minilm"))),
            "precision": precision, "device": device_type, "hardware": hardware, "threads": int(threads),
            "torch": torch.__version__,
            "transformers": package_version("transformers"), "max_length": ENCODER_MAX_LENGTH,
            "pooling": "mean over the attention mask, float32", "batching": "one text per forward pass"}


@register_memory
def _clear_encoder_memos() -> None:
    for encoder in list(_ENCODERS):
        encoder._cache.clear()


class MiniLMEncoder:
    """Mean-pooled all-MiniLM-L6-v2 sentence embeddings (the offline stand-in for USE), memoised in memory and
    on disk (``robench.attacks.cache``, namespace ``minilm_embeddings``, keyed by the exact text and
    :func:`minilm_identity`).

    Each text is encoded alone (a batch of one, so no padding), under ``precision="bf16"`` in bf16 autocast
    (pooling and the returned vectors stay float32)."""

    def __init__(self, device: str = "cpu", batch_size: int = 64, cache_size: int = 100_000,
                 precision: str = "fp32") -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from robench.assets import asset_dir
        from robench.attacks.cache import Float32Codec, TextCache

        path = asset_dir("minilm")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, use_safetensors=True).to(device).eval()
        self.device = torch.device(device)
        self.precision = precision
        self.batch_size = batch_size  # kept for callers; texts are encoded one at a time (see encode)
        self.cache_size = cache_size
        self.dim = int(self.model.config.hidden_size)
        self._cache: dict[str, np.ndarray] = {}
        self.forward_texts = 0  # texts actually run through the encoder
        self.store = TextCache(ENCODER_NAMESPACE, lambda: self.identity(), Float32Codec(self.dim))
        _ENCODERS.add(self)

    def identity(self) -> dict:
        """The key of this encoder's vectors besides the text (:func:`minilm_identity`)."""
        import torch

        return minilm_identity(self.precision, self.device.type, torch.get_num_threads())

    def _embed_one(self, sentence: str) -> np.ndarray:
        """The float32 vector of one text, encoded alone."""
        import torch

        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with torch.inference_mode():
            enc = self.tokenizer([sentence], truncation=True, max_length=ENCODER_MAX_LENGTH,
                                 return_tensors="pt").to(self.device)
            with autocast:
                hidden = self.model(**enc).last_hidden_state
            hidden = hidden.float()
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        self.forward_texts += 1
        return np.ascontiguousarray(pooled[0].cpu().numpy(), dtype=np.float32)

    def encode(self, sentences: list[str]) -> np.ndarray:
        """Embeddings of ``sentences``: from memory, else from the on-disk cache, else encoded.

        Every text is encoded alone. Encoded in a batch, a text's fp32 vector moves with the other texts of the
        batch (by up to ~6e-7 for texts of the same token length: the matrix kernels depend on the batch's
        shape), so a vector read from the cache, computed in another run, could differ in its last bits from
        the one this run would compute; alone, a text's vector is a function of the text (and of
        ``minilm_identity``), the same whether it is read back or computed, and a resumed attack gives the
        same outcomes as an uninterrupted one."""
        from robench.attacks.cache import count_computed

        sentences = list(sentences)
        found = {s: self._cache[s] for s in sentences if s in self._cache}
        todo = [s for s in dict.fromkeys(sentences) if s not in found]
        if todo:
            found.update(self.store.get_many(todo))
            missing = [s for s in todo if s not in found]
            if missing:
                fresh = {s: self._embed_one(s) for s in missing}
                count_computed(ENCODER_NAMESPACE, len(fresh))
                self.store.put_many(fresh)
                found.update(fresh)
            for s in todo:
                if len(self._cache) >= self.cache_size:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[s] = found[s]
        return np.stack([found[s] for s in sentences]) if sentences else np.zeros((0, self.dim), np.float32)


def minilm_encoder(device: str = "cpu", precision: str | None = None) -> MiniLMEncoder:
    """The shared sentence encoder of a device (one per precision); ``precision=None``: :func:`encoder_precision`."""
    return _minilm_encoder(str(device), encoder_precision(device, precision))


@lru_cache(maxsize=4)
def _minilm_encoder(device: str, precision: str) -> MiniLMEncoder:
    return MiniLMEncoder(device, precision=precision)
