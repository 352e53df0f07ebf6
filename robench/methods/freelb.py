"""FreeLB (Zhu et al., ICLR 2020): K ascent steps on an L2-bounded embedding perturbation,
with the parameter gradients of all K passes accumulated ("free" adversarial training).

Per step: ``delta0 = U(-1, 1) * mask * init_mag / sqrt(len * dim)`` (the paper's
``1/sqrt(N) U(-eps, eps)`` and the reference code's scaling); then K times: forward on
``emb + delta``, backward of ``CE / K`` (parameter gradients accumulate), and, between passes,
``delta += adv_lr * g / ||g||_2`` per example followed by projection onto the L2 ball of
radius ``max_norm`` (0 = no projection). One optimiser step follows. Cost: K F + K B.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robench.methods.base import Method, MethodConfig, register_method
from robench.methods.embeddings import l2_per_example, perturb_embeddings, token_mask


@dataclass
class FreeLBConfig(MethodConfig):
    k: int = 2  # ascent steps (SST-2/MNLI launch scripts)
    adv_lr: float = 0.1
    init_mag: float = 1.0  # SST-2 (MNLI: 0.1)
    max_norm: float = 0.6  # SST-2 (MNLI: 0.3); 0 = no projection


def init_delta(emb: torch.Tensor, mask: torch.Tensor, init_mag: float) -> torch.Tensor:
    """``U(-1, 1)`` on real tokens, times ``init_mag / sqrt(len * dim)`` per example."""
    delta = torch.empty_like(emb, dtype=torch.float32).uniform_(-1, 1) * mask
    dims = mask.sum(dim=(1, 2)) * emb.shape[-1]
    return (delta * (init_mag / dims.sqrt()).view(-1, 1, 1)).detach()


def ascend(delta: torch.Tensor, grad: torch.Tensor, adv_lr: float, max_norm: float) -> torch.Tensor:
    """One L2 ascent step per example, then projection onto the ball of radius ``max_norm``."""
    denom = l2_per_example(grad).clamp_min(1e-8).view(-1, 1, 1)
    delta = delta + adv_lr * grad / denom
    if max_norm > 0:
        norm = l2_per_example(delta).view(-1, 1, 1)
        delta = delta * torch.where(norm > max_norm, max_norm / norm, torch.ones_like(norm))
    return delta.detach()


@register_method("freelb")
class FreeLB(Method):
    Config = FreeLBConfig
    passes = "2F+2B"  # K F + K B with K = 2
    presets = {"sentiment": {"init_mag": 1.0, "max_norm": 0.6}, "entailment": {"init_mag": 0.1, "max_norm": 0.3}}

    def __init__(self, config: FreeLBConfig | None = None) -> None:
        super().__init__(config)
        self.last_delta_norm: float = 0.0

    def training_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], accelerator: Any) -> float:
        cfg = self.config
        k = max(int(cfg.k), 1)
        holder: dict[str, torch.Tensor] = {}

        def first_delta(emb: torch.Tensor) -> torch.Tensor:
            holder["delta"] = init_delta(emb, token_mask(batch, emb), cfg.init_mag).requires_grad_()
            return holder["delta"]

        total = 0.0
        for step in range(k):
            delta: Any = first_delta if step == 0 else holder["delta"]
            with perturb_embeddings(model, delta):
                loss = model(**batch).loss / k
            accelerator.backward(loss)
            total += float(loss.detach())
            if step == k - 1:
                break
            d = holder["delta"]
            holder["delta"] = ascend(d.detach(), d.grad.detach(), cfg.adv_lr, cfg.max_norm).requires_grad_()
        self.last_delta_norm = float(l2_per_example(holder["delta"].detach()).max())
        return total

    def state(self) -> dict[str, Any]:
        return {"last_max_delta_l2": round(self.last_delta_norm, 6)}
