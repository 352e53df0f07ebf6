"""robench's TextAttack model wrapper: batched, padded per batch, bf16-aware, memoised.

TextAttack's stock ``HuggingFaceModelWrapper`` pads every query to the tokenizer's maximum
length (512 for BERT-style models) and recomputes texts it has already scored. This wrapper
sorts each query list by length, pads every batch only to its own longest sequence, truncates
at the run's ``max_length``, runs under ``torch.inference_mode`` (bf16 autocast when the
precision is bf16) and keeps the logits of texts already scored.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from robench.attacks.offline import import_textattack

import_textattack()
from textattack.models.wrappers import ModelWrapper  # noqa: E402


class RobenchModelWrapper(ModelWrapper):
    def __init__(self, model, tokenizer, *, max_length: int = 128, device: str | torch.device = "cpu",
                 precision: str = "fp32", batch_size: int = 64, cache_size: int = 200_000) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.device = torch.device(device)
        self.precision = precision
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.forward_texts = 0  # texts actually run through the model
        self.forward_batches = 0
        self.last_padded_lengths: list[int] = []  # padded length of each batch of the last call

    def _key(self, item) -> str:
        if isinstance(item, str):
            return item
        if isinstance(item, (tuple, list)):  # several input columns (e.g. premise, hypothesis)
            return "\x1f".join(item)
        return str(item)

    def _encode(self, items: list):
        if items and isinstance(items[0], (tuple, list)):
            cols = list(zip(*items, strict=True))
            return self.tokenizer(list(cols[0]), list(cols[1]), padding=True, truncation=True,
                                  max_length=self.max_length, return_tensors="pt")
        return self.tokenizer(list(items), padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    @torch.inference_mode()
    def _forward(self, items: list) -> np.ndarray:
        self.model.eval()
        order = sorted(range(len(items)), key=lambda i: len(self._key(items[i])), reverse=True)
        out: list[np.ndarray | None] = [None] * len(items)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        self.last_padded_lengths = []
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self._encode([items[i] for i in idx]).to(self.device)
            self.last_padded_lengths.append(int(enc["input_ids"].shape[1]))
            with autocast:
                logits = self.model(**enc).logits
            logits = logits.float().cpu().numpy()
            for j, i in enumerate(idx):
                out[i] = logits[j]
            self.forward_batches += 1
        self.forward_texts += len(items)
        return np.stack(out) if out else np.zeros((0, 0), np.float32)

    def __call__(self, text_input_list, **kwargs) -> np.ndarray:
        keys = [self._key(t) for t in text_input_list]
        missing: dict[str, object] = {}
        for key, item in zip(keys, text_input_list, strict=True):
            if key not in self._cache and key not in missing:
                missing[key] = item
        if missing:
            logits = self._forward(list(missing.values()))
            for key, row in zip(missing, logits, strict=True):
                self._cache[key] = row
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        rows = []
        for key in keys:
            row = self._cache.get(key)
            if row is None:  # evicted within this call (cache smaller than the call)
                row = self._forward([text_input_list[keys.index(key)]])[0]
            else:
                self._cache.move_to_end(key)
            rows.append(row)
        return np.stack(rows).astype(np.float32)

    def clear_cache(self) -> None:
        self._cache.clear()

    def _tokenize(self, inputs):
        return [self.tokenizer.convert_ids_to_tokens(self.tokenizer([x], truncation=True)["input_ids"][0])
                for x in inputs]
