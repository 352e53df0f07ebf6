"""R3F (Aghajanyan et al., ICLR 2021): a noise-smoothness regulariser without an ascent step.

Follows pytorch/fairseq ``examples/rxf/rxf_src/sentence_prediction_r3f.py``,
``SentencePredictionR3F.forward``: ``token_embeddings = model.encoder.sentence_encoder.embed_tokens
(src_tokens)``, i.e. the noise goes on the WORD (token) embeddings, before positions, LayerNorm
and dropout. The clean pass runs on ``token_embeddings`` (graph to the embedding table), the
noised pass on ``token_embeddings.detach() + noise`` with ``noise ~ U(-eps, eps)`` (or
``N(0, eps^2)``), eps 1e-5; each pass draws its own dropout. Loss ``CE + lambda * symKL(p, q)``
with lambda 1 (``--r3f-lambda``), batch-mean symKL (``_get_symm_kl``), no detach: the gradient
flows through both passes. Here the model is called with ``inputs_embeds``.
Cost: 2F and one backward through both graphs (about 2F+2B).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robench.errors import ConfigError
from robench.methods.base import Method, RegularisedConfig, _as_float, register_method
from robench.methods.embeddings import sym_kl, with_embeds, word_embeddings


@dataclass
class R3FConfig(RegularisedConfig):
    eps: float = 1e-5
    r3f_lambda: float = 1.0  # fairseq --r3f-lambda
    noise: str = "uniform"  # or "normal"

    def __post_init__(self) -> None:
        if self.noise not in ("uniform", "normal"):
            raise ConfigError(f"r3f: noise must be 'uniform' or 'normal', got {self.noise!r}")


def r3f_noise(emb: torch.Tensor, eps: float, kind: str) -> torch.Tensor:
    if kind == "uniform":
        return torch.empty_like(emb, dtype=torch.float32).uniform_(-eps, eps)
    if kind == "normal":
        return torch.randn_like(emb, dtype=torch.float32) * eps
    raise ConfigError(f"r3f: noise must be 'uniform' or 'normal', got {kind!r}")


@register_method("r3f")
class R3F(Method):
    Config = R3FConfig
    passes = "2F+2B"
    # robench tune: lr x the symKL weight `r3f_lambda` (fairseq --r3f-lambda, the paper's lambda; its
    # search includes 1 and 5), 2 x 2 = 4 trials per seed
    tune_grid = {"lr": [1e-4, 2e-4], "r3f_lambda": [1.0, 5.0]}

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg = self.config
        sample = self.terms.sample_step()
        word = word_embeddings(model, batch)
        out = model(**with_embeds(batch, word))
        noise = r3f_noise(word, cfg.eps, cfg.noise)
        noised = model(**with_embeds(batch, word.detach() + noise.to(word.dtype), labels=False)).logits
        reg = sym_kl(out.logits, noised)
        self.last_reg = reg.detach()  # a device scalar: no host sync per step
        self.terms.add(ce=out.loss.detach(), sym_kl=reg.detach())
        if sample:
            self.terms.reference(model, batch, out.logits, noised)
        return out.loss + cfg.r3f_lambda * reg

    def state(self) -> dict[str, Any]:
        return {"last_symkl": _as_float(getattr(self, "last_reg", None))}
