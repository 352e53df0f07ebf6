"""FreeLB (Zhu et al., ICLR 2020): ascent steps on an L2-bounded perturbation of the WORD
embeddings, with the parameter gradients of every pass accumulated ("free" adversarial training).

Follows zhuchen03/FreeLB, the fairseq version behind the RoBERTa results:
``fairseq-RoBERTa/fairseq/tasks/sentence_prediction.py``, ``SentencePredictionTask.freelb_train_step``
(launch scripts ``launch/FreeLB/sst-fp32-clip.sh``: adv-lr 0.1, adv-steps 2, init-mag 1, max-norm
0.6; ``mnli-fp32-clip.sh``: 0.1, 2, 0.1, 0.3). Per step:

1. ``word = model.get_input_embeddings()(input_ids)``; ``delta0 = U(-1, 1) * mask * init_mag /
   sqrt(len * dim)`` per example; a first pass on ``word + delta0`` (model called with
   ``inputs_embeds``, so positions, token types, LayerNorm and dropout come after delta).
2. ``adv_steps`` more passes, each after ``delta += adv_lr * g / ||g||_2`` per example and
   projection onto the L2 ball of radius ``max_norm`` (0 = none); ``word`` is recomputed each
   pass so the embedding table gets every pass's gradient.

The pass count: ``adv_steps`` does NOT count the first pass. The fairseq release runs the
``delta0`` pass, then ``for t_adv in range(adv_steps)``, dividing each loss by ``1 + adv_steps``
(so adv-steps 2 = 3 passes); the huggingface version (``examples/run_glue_freelb.py``) loops
``for astep in range(adv_steps)`` and divides by ``adv_steps``. robench matches fairseq: each pass
backpropagates ``CE / (1 + adv_steps)``. Dropout: fairseq draws masks on the first pass
(``init_dp=True``) and reuses them in later ones (``init_dp=no_sync_dp``, false by default);
robench saves torch's RNG state right before the first pass's forward (after drawing delta0)
and restores it before every later forward, so every pass of a step sees the same masks.
Cost: (1 + adv_steps) F + (1 + adv_steps) B.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robench.methods.base import Method, RegularisedConfig, register_method
from robench.methods.diagnostics import RngState
from robench.methods.embeddings import (
    gradient_share,
    l2_per_example,
    token_mask,
    with_embeds,
    without_labels,
    word_embeddings,
)


@dataclass
class FreeLBConfig(RegularisedConfig):
    adv_steps: int = 2  # ascent steps after the delta0 pass (fairseq --adv-steps; SST-2/MNLI scripts)
    adv_lr: float = 0.1
    init_mag: float = 1.0  # SST-2 (MNLI: 0.1)
    max_norm: float = 0.6  # SST-2 (MNLI: 0.3); 0 = no projection


def init_delta(emb: torch.Tensor, mask: torch.Tensor, init_mag: float) -> torch.Tensor:
    """``U(-1, 1)`` on real tokens, times ``init_mag / sqrt(len * dim)`` per example."""
    delta = torch.empty_like(emb, dtype=torch.float32).uniform_(-1, 1) * mask
    dims = mask.sum(dim=(1, 2)) * emb.shape[-1]
    return (delta * (init_mag / dims.sqrt()).view(-1, 1, 1)).detach()


def ascend_projected(delta: torch.Tensor, grad: torch.Tensor, adv_lr: float,
                     max_norm: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One L2 ascent step per example, then projection onto the ball of radius ``max_norm`` (0 = none).
    Returns the new delta and the projection's per-example factor ``(batch, 1, 1)`` (1 inside the ball)."""
    denom = l2_per_example(grad).clamp_min(1e-10).view(-1, 1, 1)
    delta = delta + adv_lr * grad / denom
    norm = l2_per_example(delta).view(-1, 1, 1)
    factor = torch.where(norm > max_norm, max_norm / norm, torch.ones_like(norm)) if max_norm > 0 \
        else torch.ones_like(norm)
    return (delta * factor).detach(), factor


def ascend(delta: torch.Tensor, grad: torch.Tensor, adv_lr: float, max_norm: float) -> torch.Tensor:
    """:func:`ascend_projected`'s new delta."""
    return ascend_projected(delta, grad, adv_lr, max_norm)[0]


@register_method("freelb")
class FreeLB(Method):
    Config = FreeLBConfig
    passes = "3F+3B"  # (1 + adv_steps) F + (1 + adv_steps) B with adv_steps = 2
    # robench tune: lr x the ascent step size `adv_lr` (fairseq --adv-lr; 0.1 in the SST-2/MNLI scripts),
    # 2 x 2 = 4 trials per seed
    tune_grid = {"lr": [1e-4, 2e-4], "adv_lr": [0.1, 0.3]}
    presets = {"sentiment": {"init_mag": 1.0, "max_norm": 0.6}, "entailment": {"init_mag": 0.1, "max_norm": 0.3}}

    def __init__(self, config: FreeLBConfig | None = None) -> None:
        super().__init__(config)
        self.last_delta_norm: float = 0.0

    def training_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], accelerator: Any) -> float:
        cfg = self.config
        n_passes = 1 + max(int(cfg.adv_steps), 0)
        sample = self.terms.sample_step()
        word = word_embeddings(model, batch)
        delta = init_delta(word, token_mask(batch, word), cfg.init_mag)
        noise = delta.detach()  # delta0, scaled by every projection since: delta - noise is what the ascent supplied
        rng = RngState.save(word.device)  # the dropout masks of every pass of this step
        total = 0.0
        for step in range(n_passes):
            if step > 0:
                delta, factor = ascend_projected(delta.detach(), delta.grad, cfg.adv_lr, cfg.max_norm)
                noise = noise * factor
                word = word_embeddings(model, batch)
                rng.restore()
            delta.requires_grad_()
            out = model(**with_embeds(batch, word + delta.to(word.dtype)))
            accelerator.backward(out.loss / n_passes)
            total = total + out.loss.detach() / n_passes
            if step == 0:
                self.terms.add(ce_first=out.loss.detach())
        self.terms.add(adv_ce=total, ce_last=out.loss.detach())
        if n_passes > 1:
            final = delta.detach()
            self.terms.add(ascent_share=gradient_share(final - noise, final, token_mask(batch, final)))
        if sample:  # FreeLB has no clean pass: make one (fresh dropout, RNG restored after)
            rng = RngState.save(word.device)
            with torch.no_grad():
                clean = model(**without_labels(batch)).logits
            self.terms.reference(model, batch, clean, out.logits)
            rng.restore()
        self.last_delta_norm = l2_per_example(delta.detach()).max()  # a device scalar: no host sync per step
        return total

    def state(self) -> dict[str, Any]:
        return {"last_max_delta_l2": round(float(self.last_delta_norm), 6)}
