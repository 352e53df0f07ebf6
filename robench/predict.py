"""Batched inference: sort by length so each batch pads only to its own longest text."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from robench.progress import progress_bar


@dataclass
class Predictions:
    logits: np.ndarray  # (N, K) float32, in the input order
    features: np.ndarray | None = None  # (N, H) penultimate features (the classifier's input), if asked


def _penultimate_hook(model: torch.nn.Module, store: list[torch.Tensor]):
    """Capture the input of the final linear layer of the classification head."""
    head = getattr(model, "classifier", None) or getattr(model, "score", None)
    if head is None:
        raise ValueError("model has no `classifier` head; cannot extract penultimate features")
    last = head
    if not isinstance(head, torch.nn.Linear):
        linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
        last = linears[-1]
    return last.register_forward_hook(lambda _m, inputs, _out: store.append(inputs[0].detach().float().cpu()))


def length_order(items: list) -> np.ndarray:
    """Longest first (texts, or pairs by their joined length); ties keep a fixed order."""
    lengths = [len(t) if isinstance(t, str) else sum(len(x) for x in t) + len(t) - 1 for t in items]
    return np.argsort(lengths, kind="stable")[::-1]


def encode(tokenizer, items: list, max_length: int):
    """Tokenise texts, or (text, text) pairs, padded to the batch's longest and truncated."""
    if items and isinstance(items[0], tuple | list):
        first, second = (list(col) for col in zip(*items, strict=True))
        return tokenizer(first, second, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return tokenizer(list(items), padding=True, truncation=True, max_length=max_length, return_tensors="pt")


@torch.inference_mode()
def batched_logits(model: torch.nn.Module, tokenizer, items: list, *, batch_size: int = 128, max_length: int = 128,
                   device: torch.device | str = "cpu", precision: str = "fp32",
                   on_batch: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The one batched inference of robench (prediction pass and attack wrapper): longest texts first,
    each batch padded to its own longest sequence, bf16 autocast when asked; logits (N, K) float32 in
    the input order. ``on_batch(n, padded_length)`` is called after each batch."""
    model.eval()
    device = torch.device(device)
    order = length_order(items)
    out: list[np.ndarray] = []
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    for start in range(0, len(items), batch_size):
        idx = order[start : start + batch_size]
        enc = encode(tokenizer, [items[i] for i in idx], max_length).to(device)
        with autocast:
            logits = model(**enc).logits
        out.append(logits.float().cpu().numpy())
        if on_batch is not None:
            on_batch(len(idx), int(enc["input_ids"].shape[1]))
    if not out:
        return np.zeros((0, 0), np.float32)
    stacked = np.concatenate(out)
    result = np.empty_like(stacked)
    result[order] = stacked
    return result


def predict(
    model: torch.nn.Module,
    tokenizer,
    texts: list[str],
    *,
    batch_size: int = 128,
    max_length: int = 128,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    features: bool = False,
    description: str | None = None,
) -> Predictions:
    """Logits (and, with ``features``, the classifier's input) of ``texts``, with a progress bar."""
    lengths_order = length_order(texts)  # the order batched_logits runs in, so features can be put back
    feats: list[torch.Tensor] = []
    handle = _penultimate_hook(model, feats) if features else None
    try:
        with progress_bar(description or "predicting", total=len(texts), unit="ex") as bar:
            logits = batched_logits(model, tokenizer, texts, batch_size=batch_size, max_length=max_length,
                                    device=device, precision=precision, on_batch=lambda n, _len: bar.advance(n))
    finally:
        if handle is not None:
            handle.remove()
    feat_arr = None
    if features:
        stacked = torch.cat(feats).numpy()  # captured in the sorted order of batched_logits
        feat_arr = np.empty_like(stacked)
        feat_arr[lengths_order] = stacked
    return Predictions(logits=logits, features=feat_arr)
