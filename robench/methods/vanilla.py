"""Vanilla fine-tuning: cross-entropy on the clean batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robench.methods.base import Method, MethodConfig, register_method


@dataclass
class VanillaConfig(MethodConfig):
    pass


@register_method("vanilla")
class Vanilla(Method):
    Config = VanillaConfig
    passes = "1F+1B"
    # robench tune: the learning rate only (2 trials per seed); the same rates as every other method
    tune_grid = {"lr": [1e-4, 2e-4]}

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(**batch).loss
