"""robench's TextAttack model wrapper: memoised, over robench's one batched inference.

TextAttack's stock ``HuggingFaceModelWrapper`` pads every query to the tokenizer's maximum
length (512 for BERT-style models) and recomputes texts it has already scored. This wrapper
scores only texts it has not seen, through ``robench.predict.batched_logits`` (the same
length-sorted, per-batch-padded, bf16-aware inference as the prediction pass).
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np
import torch

from robench.attacks.offline import import_textattack
from robench.predict import batched_logits

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
        self.forward_seconds = 0.0  # wall time spent in the model's forward passes (tokenising included)
        self.forward_shapes: list[tuple[int, int]] = []  # (texts, padded length) of every batch run
        self.last_padded_lengths: list[int] = []  # padded length of each batch of the last call

    def _key(self, item) -> str:
        if isinstance(item, str):
            return item
        if isinstance(item, (tuple, list)):  # several input columns (e.g. premise, hypothesis)
            return "\x1f".join(item)
        return str(item)

    def _forward(self, items: list) -> np.ndarray:
        self.last_padded_lengths = []

        def count(n: int, padded: int) -> None:
            self.last_padded_lengths.append(padded)
            self.forward_shapes.append((n, padded))
            self.forward_batches += 1

        start = time.perf_counter()
        logits = batched_logits(self.model, self.tokenizer, [tuple(i) if isinstance(i, list) else i for i in items],
                                batch_size=self.batch_size, max_length=self.max_length, device=self.device,
                                precision=self.precision, on_batch=count)
        self.forward_seconds += time.perf_counter() - start
        self.forward_texts += len(items)
        return logits

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
