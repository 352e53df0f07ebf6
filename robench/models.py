"""Model and tokenizer loading: the packaged MiniLM default, the optional packaged MPNet-base, any
HF id, a local dir or a run dir; and two tiny random-init models for fast tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from robench.errors import ConfigError, OfflineError, RobenchError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
PACKAGED = ("minilm", "mpnet")  # model names that are packaged assets (robench.assets)
TINY = "tiny-bert"  # random-init 2-layer BERT with MiniLM's vocabulary: fast tests and CI benchmarks
TINY_MPNET = "tiny-mpnet"  # random-init 2-layer MPNet with MPNet's tokenizer (rebuilt from MiniLM's vocabulary)
TINY_MODELS = (TINY, TINY_MPNET)
# all-mpnet-base-v2's vocab.txt is these four, then MiniLM's 30,522 BERT-uncased word pieces line for
# line (so each id is MiniLM's + 4), then <mask> (30,527 entries; the unknown token is [UNK]).
MPNET_VOCAB_HEAD = ("<s>", "<pad>", "</s>", "<unk>")
MPNET_VOCAB_TAIL = ("<mask>",)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but no CUDA GPU is visible; use --device cpu or auto")
    if device not in {"cpu", "cuda"} and not device.startswith("cuda:"):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


def model_source(name: str) -> str:
    """Where a model name points: the packaged MiniLM folder, a local folder, or a hub id."""
    if name in PACKAGED:
        from robench.assets import asset_dir

        return str(asset_dir(name))
    if name in TINY_MODELS:
        return name
    path = Path(name)
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"model path {name} is a file; pass the folder holding config.json")
        if not (path / "config.json").exists():
            raise ConfigError(f"model folder {name} has no config.json; pass a folder written by save_pretrained")
        return str(path)
    if name.startswith((".", "/")) or name.count("/") > 1:
        raise ConfigError(f"model folder {name} does not exist; check the path")
    return name  # a hub id


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    source = model_source(name)
    if source == TINY_MPNET:
        return prepare_tokenizer(mpnet_tokenizer_from_minilm())
    if source == TINY:
        source = model_source("minilm")
    return prepare_tokenizer(_hub_guard(name, lambda: AutoTokenizer.from_pretrained(source)))


def prepare_tokenizer(tokenizer):
    """A backbone's tokenizer as robench batches with it, whatever the hub copy says: padding and truncation
    on the right (each batch is padded to its longest sequence, and the embedding-perturbation methods assume
    the real tokens come first, at the positions they have unpadded; some decoder tokenizers ship with
    ``padding_side="left"``), and a padding token where the tokenizer has none (GPT-2-style vocabularies:
    its end-of-sequence token, else its separator or unknown token, as the Hugging Face examples do). The
    run directory saves the tokenizer as prepared, so evaluation reads it the same way."""
    tokenizer.padding_side = "right"
    tokenizer.truncation_side = "right"
    if tokenizer.pad_token is None:
        stand_in = next((t for t in (tokenizer.eos_token, tokenizer.sep_token, tokenizer.unk_token) if t), None)
        if stand_in is None:
            raise ConfigError("the tokenizer has no padding token and no end-of-sequence, separator or unknown token "
                              "to pad with; add a pad token to it (tokenizer.add_special_tokens) and save it again")
        tokenizer.pad_token = stand_in
    return tokenizer


def align_padding(model, tokenizer) -> None:
    """The model's ``pad_token_id`` set from the tokenizer where the config has none (a decoder's
    sequence-classification head finds each example's last real token by it)."""
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id


def mpnet_tokenizer_from_minilm():
    """all-mpnet-base-v2's tokenizer without the MPNet package: its vocabulary rebuilt from the packaged
    MiniLM one (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, word pieces 4.., ``<mask>`` 30526), built by transformers'
    own MPNet converter: ``<s> A </s>`` (pairs ``<s> A </s></s> B </s>``), no token_type_ids."""
    from transformers import MPNetTokenizerFast

    from robench.assets import asset_dir

    words = (asset_dir("minilm") / "vocab.txt").read_bytes()  # bytes: some word pieces are odd Unicode
    head = "".join(f"{t}\n" for t in MPNET_VOCAB_HEAD).encode()
    tail = "".join(f"{t}\n" for t in MPNET_VOCAB_TAIL).encode()
    with tempfile.TemporaryDirectory() as tmp:
        vocab = Path(tmp) / "vocab.txt"
        vocab.write_bytes(head + words + (b"" if words.endswith(b"\n") else b"\n") + tail)
        tokenizer = MPNetTokenizerFast(vocab_file=str(vocab), model_max_length=512)
    tokenizer.vocab_file = None  # the temporary file is gone; save_pretrained writes tokenizer.json
    return tokenizer


def tiny_config(num_labels: int, vocab_size: int = 30522):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=128, num_labels=num_labels,
    )


def tiny_mpnet_config(num_labels: int):
    """all-mpnet-base-v2's shape (vocabulary, special ids, 514 positions, 32 relative-position buckets),
    shrunk to hidden 64 and 2 layers."""
    from transformers import MPNetConfig

    return MPNetConfig(
        vocab_size=30527, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        max_position_embeddings=514, pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5,
        relative_attention_num_buckets=32, num_labels=num_labels,
    )


def load_model(name: str, num_labels: int, seed: int = 0):
    """A sequence classifier with a fresh head of ``num_labels`` (seeded) on a pre-trained encoder."""
    from transformers import (
        AutoModelForSequenceClassification,
        BertForSequenceClassification,
        MPNetForSequenceClassification,
    )
    from transformers.utils import logging as hf_logging

    source = model_source(name)
    torch.manual_seed(seed)
    if source == TINY:
        return BertForSequenceClassification(tiny_config(num_labels))
    if source == TINY_MPNET:
        return MPNetForSequenceClassification(tiny_mpnet_config(num_labels))
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a fresh classification head is expected, not worth a warning
    try:
        return _hub_guard(name, lambda: AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=num_labels, use_safetensors=True, ignore_mismatched_sizes=True,
        ))
    finally:
        hf_logging.set_verbosity(verbosity)


def load_trained(run_dir: Path):
    """Model and tokenizer of a finished run; weights are read with safetensors only."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist; pass a folder written by 'robench train'")
    if not (run_dir / "model.safetensors").exists():
        raise ConfigError(f"run directory {run_dir} has no model.safetensors; train it first with 'robench train' "
                          "(an interrupted run leaves no weights)")
    for name, what in (("config.json", "the model config"), ("tokenizer.json", "the tokenizer")):
        if not (run_dir / name).exists() and not (name == "tokenizer.json" and (run_dir / "vocab.txt").exists()):
            raise ConfigError(f"run directory {run_dir} has no {name} ({what}); the run is incomplete: "
                              "re-train it with 'robench train --force'")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(run_dir, use_safetensors=True)
    except Exception as exc:  # truncated weights, a config that is not JSON, ...
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(f"run directory {run_dir}: the model could not be loaded ({type(exc).__name__}: {first}); "
                          "its files are damaged: re-train it with 'robench train --force'") from None
    try:
        tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(run_dir))
    except RobenchError:
        raise
    except Exception as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(f"run directory {run_dir}: the tokenizer could not be loaded ({type(exc).__name__}: "
                          f"{first}); its files are damaged: re-train it with 'robench train --force'") from None
    align_padding(model, tokenizer)
    return model, tokenizer


def _hub_guard(name: str, load):
    from robench.hub import use_cache_only_if_offline

    offline = use_cache_only_if_offline() if not Path(name).exists() and name not in (*PACKAGED, *TINY_MODELS) else False
    try:
        return load()
    except RobenchError:
        raise
    except OSError as exc:
        text = str(exc)
        if offline or any(m in text for m in ("offline", "connect", "resolve", "Max retries", "couldn't")):
            raise OfflineError(
                f"model {name!r} is not cached locally and the Hugging Face hub is unreachable; use --model minilm "
                "(packaged), a local folder, or run once with internet"
            ) from None
        raise ConfigError(f"model {name!r} could not be loaded: {text.splitlines()[0]}") from None


def usable_positions(config) -> int | None:
    """How many tokens the model can read: ``max_position_embeddings``, less the offset of the models whose
    position ids start after the padding index (RoBERTa, MPNet and their kin: 514 -> 512). None if unknown."""
    n = getattr(config, "max_position_embeddings", None)
    if not isinstance(n, int) or n <= 0:
        return None
    if getattr(config, "model_type", "") in {"roberta", "xlm-roberta", "mpnet", "camembert", "longformer",
                                              "data2vec-text", "xmod", "roberta-prelayernorm"}:
        n -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return n
