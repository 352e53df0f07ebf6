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
def _run_batches(model: torch.nn.Module, tokenizer, items: list, order: np.ndarray, batch_ids, *, batch_size: int,
                 max_length: int, device: torch.device | str, precision: str,
                 on_batch: Callable[[int, int], None] | None) -> dict[int, np.ndarray]:
    """Logits of the listed batches of the length-sorted order ``order``: {batch id: (n, K) float32}."""
    model.eval()
    device = torch.device(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    out: dict[int, np.ndarray] = {}
    for b in batch_ids:
        idx = order[b * batch_size : (b + 1) * batch_size]
        enc = encode(tokenizer, [items[i] for i in idx], max_length).to(device)
        with autocast:
            logits = model(**enc).logits
        out[b] = logits.float().cpu().numpy()
        if on_batch is not None:
            on_batch(len(idx), int(enc["input_ids"].shape[1]))
    return out


def batched_logits(model: torch.nn.Module, tokenizer, items: list, *, batch_size: int = 128, max_length: int = 128,
                   device: torch.device | str = "cpu", precision: str = "fp32",
                   on_batch: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The one batched inference of robench (prediction pass and attack wrapper): longest texts first,
    each batch padded to its own longest sequence, bf16 autocast when asked; logits (N, K) float32 in
    the input order. ``on_batch(n, padded_length)`` is called after each batch. Always in this process
    alone (the attack wrapper calls it on one rank's examples); ``predict`` shares work across ranks."""
    if not items:
        return np.zeros((0, 0), np.float32)
    order = length_order(items)
    n_batches = -(-len(items) // batch_size)
    parts = _run_batches(model, tokenizer, items, order, range(n_batches), batch_size=batch_size,
                         max_length=max_length, device=device, precision=precision, on_batch=on_batch)
    stacked = np.concatenate([parts[b] for b in range(n_batches)])
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
    """Logits (and, with ``features``, the classifier's input) of ``texts``, with a progress bar.

    Under several processes (``robench.distributed``) the length-sorted batches are dealt round-robin
    to the ranks and gathered, so each example is predicted exactly once, in the same batch (same
    padding, same companions) as in one process, and every rank gets the whole result."""
    from robench import distributed

    if not texts:
        return Predictions(np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32) if features else None)
    order = length_order(texts)
    n_batches = -(-len(texts) // batch_size)
    mine = list(range(distributed.rank(), n_batches, distributed.world_size()))
    pending = list(mine)  # batch ids in the order they run, to file each batch's captured features
    feats: dict[int, np.ndarray] = {}
    captured: list[torch.Tensor] = []
    handle = _penultimate_hook(model, captured) if features else None
    total = sum(len(order[b * batch_size:(b + 1) * batch_size]) for b in mine)
    try:
        with progress_bar(description or "predicting", total=total, unit="ex") as bar:
            def on_batch(n: int, _length: int) -> None:
                if features:
                    feats[pending.pop(0)] = torch.cat(captured).numpy()
                    captured.clear()
                bar.advance(n)

            logits = _run_batches(model, tokenizer, texts, order, mine, batch_size=batch_size, max_length=max_length,
                                  device=device, precision=precision, on_batch=on_batch)
    finally:
        if handle is not None:
            handle.remove()
    if distributed.is_distributed():  # every rank's batches, on every rank
        for part_logits, part_feats in distributed.gather_objects((logits, feats)):
            logits.update(part_logits)
            feats.update(part_feats)

    def assemble(parts: dict[int, np.ndarray]) -> np.ndarray:
        stacked = np.concatenate([parts[b] for b in range(n_batches)])
        result = np.empty_like(stacked)
        result[order] = stacked
        return result

    return Predictions(logits=assemble(logits), features=assemble(feats) if features else None)
