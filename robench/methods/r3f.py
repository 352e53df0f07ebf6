"""R3F (Aghajanyan et al., ICLR 2021; reference: fairseq examples/rxf).

No ascent step: ``delta ~ U(-eps, eps)`` (or ``N(0, eps^2)``), eps 1e-5, added to the detached
clean embedding output (the same tensor the clean pass used); loss ``CE + lambda * symKL(p, q)``
with lambda 1, backpropagated through both passes (fairseq's symmetric KL, no detach).
Cost: 2F + 1B.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robench.errors import ConfigError
from robench.methods.base import Method, MethodConfig, register_method
from robench.methods.embeddings import capture_embeddings, perturb_embeddings, sym_kl


@dataclass
class R3FConfig(MethodConfig):
    eps: float = 1e-5
    r3f_lambda: float = 1.0  # fairseq --r3f-lambda
    noise: str = "uniform"  # or "normal"


def r3f_noise(emb: torch.Tensor, eps: float, kind: str) -> torch.Tensor:
    if kind == "uniform":
        return torch.empty_like(emb, dtype=torch.float32).uniform_(-eps, eps)
    if kind == "normal":
        return torch.randn_like(emb, dtype=torch.float32) * eps
    raise ConfigError(f"r3f: noise must be 'uniform' or 'normal', got {kind!r}")


@register_method("r3f")
class R3F(Method):
    Config = R3FConfig
    passes = "2F+1B"

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg = self.config
        with capture_embeddings(model) as seen:
            out = model(**batch)
        emb = seen[0]
        noise = r3f_noise(emb, cfg.eps, cfg.noise)
        with perturb_embeddings(model, noise, base=emb, detach=True):
            noised = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        reg = sym_kl(out.logits, noised)
        self.last_reg = float(reg.detach())
        return out.loss + cfg.r3f_lambda * reg

    def state(self) -> dict[str, Any]:
        return {"last_symkl": getattr(self, "last_reg", None)}
