"""Batched inference: sort by length so each batch pads only to its own longest text."""

from __future__ import annotations

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


@torch.no_grad()
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
    model.eval()
    device = torch.device(device)
    lengths = [len(t) for t in texts]
    order = np.argsort(lengths, kind="stable")[::-1]
    logits_sorted: list[torch.Tensor] = []
    feats: list[torch.Tensor] = []
    handle = _penultimate_hook(model, feats) if features else None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    try:
        with progress_bar(description or "predicting", total=len(texts), unit="ex") as bar:
            for start in range(0, len(texts), batch_size):
                idx = order[start : start + batch_size]
                enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                                return_tensors="pt").to(device)
                with autocast:
                    out = model(**enc)
                logits_sorted.append(out.logits.float().cpu())
                bar.advance(len(idx))
    finally:
        if handle is not None:
            handle.remove()
    logits = torch.cat(logits_sorted).numpy() if logits_sorted else np.zeros((0, 0), np.float32)
    result = np.empty_like(logits)
    result[order] = logits
    feat_arr = None
    if features:
        stacked = torch.cat(feats).numpy()
        feat_arr = np.empty_like(stacked)
        feat_arr[order] = stacked
    return Predictions(logits=result, features=feat_arr)
