"""SMART (Jiang et al., ACL 2020): a smoothness-inducing virtual-adversarial regulariser plus
Bregman proximal point optimisation against an EMA teacher.

Follows namisan/mt-dnn ``mt_dnn/perturbation.py``, ``SmartPerturbation.forward`` and
``SmartPerturbation._norm_grad`` (file last changed in commit 676b48b). Regulariser (shared with
ALUM, ``alum.py``): noise ``delta ~ N(0, sigma^2)`` added to the EMBEDDING-LAYER OUTPUT (mt-dnn
``SANBertNetwork.embed_encode`` returns ``bert.embeddings(input_ids, token_type_ids)``); ``steps``
ascent steps on ``KL(q || p.detach())``, then ``lambda_s * symKL(p, q)`` (mt-dnn's
``SymKlCriterion``: each KL's target detached). The ascent step, ``step_norm``:

- ``released`` (default): mt-dnn's update, ``delta <- (delta + eta * g) / (max|delta + eta * g| +
  gamma)`` with the max per token over the hidden dimension (perturbation.py lines 131-132 and the
  L-inf branch of ``_norm_grad``; smart-pytorch's ``SMARTLoss`` does the same). The perturbation's
  per-token L-inf norm is ~1.
- ``paper``: the paper's wording, ``delta <- delta + eta * g / (max|g| + gamma)``: a step of
  L-inf norm ~eta (1e-3) whose symKL is numerically zero on a small encoder (~2e-14 on MiniLM).

Not copied from mt-dnn: its ascent loss is ``stable_kl`` (a logit-odds form of the KL), here the
plain KL; and it passes ``embed + noise`` back through ``bert(inputs_embeds=...)``, which adds
position/type embeddings and LayerNorm a second time, where robench feeds the perturbed
embedding output straight to the encoder as the paper describes.

Bregman term (not in mt-dnn's release): ``mu * symKL(f(x; theta), f(x; theta_ema))`` with the
teacher an EMA (beta 0.99) of the parameters, in eval mode, updated after every optimiser step;
``--set bregman=false`` turns it off. Cost 3F+2B (+1F teacher).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

from robench.errors import ConfigError
from robench.methods.base import Method, RegularisedConfig, _as_float, register_method
from robench.methods.embeddings import (
    capture_embeddings,
    gradient_share,
    kl,
    linf_normalize,
    perturb_embeddings,
    sym_kl,
    token_mask,
    unwrap,
    without_labels,
)

STEP_NORMS = ("released", "paper")


def ascent_increment(grad: torch.Tensor, eta: float, gamma: float, step_norm: str) -> torch.Tensor:
    """What one ascent step adds to delta before the released form's per-token normalisation."""
    return eta * grad if step_norm == "released" else eta * linf_normalize(grad, gamma)


def ascent_step(delta: torch.Tensor, grad: torch.Tensor, eta: float, gamma: float, step_norm: str) -> torch.Tensor:
    """One virtual-adversarial ascent step on delta (see the module docstring for the two forms)."""
    moved = delta + ascent_increment(grad, eta, gamma, step_norm)
    return linf_normalize(moved, gamma) if step_norm == "released" else moved


def virtual_adversarial_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor], emb: torch.Tensor,
                               clean_logits: torch.Tensor, *, sigma: float, eta: float, gamma: float,
                               steps: int = 1, step_norm: str = "released"
                               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The perturbed logits after ``steps`` ascent steps on ``KL(q || p.detach())``, the delta, and
    the last step's :func:`gradient_share` (``||eta g|| / ||delta + eta g||`` per token for the
    released form; None without ascent steps).

    The ascent passes differentiate only with respect to delta (``autograd.grad``); the final
    perturbed pass keeps the graph through the model (the embedding layer included).
    """
    delta = (torch.randn_like(emb, dtype=torch.float32) * sigma).requires_grad_()
    target = clean_logits.detach()
    share = None
    for _ in range(steps):
        with perturb_embeddings(model, delta):
            adv_logits = model(**without_labels(batch)).logits
        (g,) = torch.autograd.grad(kl(adv_logits, target, reduction="sum"), delta)
        delta = delta.detach()
        increment = ascent_increment(g, eta, gamma, step_norm)
        share = gradient_share(increment, delta + increment, token_mask(batch, delta))
        delta = ascent_step(delta, g, eta, gamma, step_norm).requires_grad_()
    delta = delta.detach()
    with perturb_embeddings(model, delta):
        adv_logits = model(**without_labels(batch)).logits
    return adv_logits, delta, share


@dataclass
class SMARTConfig(RegularisedConfig):
    sigma: float = 1e-5  # initial noise std
    eta: float = 1e-3  # ascent step size
    gamma: float = 1e-6  # L-inf normalisation epsilon
    steps: int = 1  # ascent steps T
    lambda_s: float = 1.0  # adversarial regulariser weight (paper searches {1, 3, 5})
    bregman: bool = True  # Bregman proximal point term against the EMA teacher
    mu: float = 1.0
    ema_beta: float = 0.99
    step_norm: str = "released"  # "released" (mt-dnn) or "paper"

    def __post_init__(self) -> None:
        if self.step_norm not in STEP_NORMS:
            raise ConfigError(f"step_norm must be one of {', '.join(STEP_NORMS)}, got {self.step_norm!r}")


class VirtualAdversarial(Method, ABC):
    """CE + weight * symKL(p, q) with q from virtual-adversarial ascent steps (SMART, ALUM)."""

    @abstractmethod
    def reg_weight(self) -> float:
        """The weight of the symKL regulariser (SMART's lambda_s, ALUM's alpha)."""

    def adversarial_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[Any, torch.Tensor]:
        cfg = self.config
        sample = self.terms.sample_step()
        with capture_embeddings(model) as seen:
            out = model(**batch)
        adv_logits, self.last_delta, share = virtual_adversarial_logits(
            model, batch, seen[0], out.logits, sigma=cfg.sigma, eta=cfg.eta, gamma=cfg.gamma,
            steps=cfg.steps, step_norm=cfg.step_norm)
        reg = sym_kl(out.logits, adv_logits, detach_targets=True)
        self.last_reg = reg.detach()  # a device scalar: no host sync per step
        self.terms.add(ce=out.loss.detach(), sym_kl=reg.detach())
        if share is not None:
            self.terms.add(ascent_share=share)
        if sample:
            self.terms.reference(model, batch, out.logits, adv_logits)
        return out, out.loss + self.reg_weight() * reg

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.adversarial_loss(model, batch)[1]

    def state(self) -> dict[str, Any]:
        return {"last_adv_symkl": _as_float(getattr(self, "last_reg", None))}


@register_method("smart")
class SMART(VirtualAdversarial):
    Config = SMARTConfig
    passes = "3F+2B+1F(teacher)"
    # robench tune: lr x the regulariser weight `lambda_s` (the paper searches {1, 3, 5}), 2 x 2 = 4 trials
    # per seed
    tune_grid = {"lr": [1e-4, 2e-4], "lambda_s": [1.0, 3.0]}
    presets = {"no-bregman": {"bregman": False}, "paper-step": {"step_norm": "paper"}}

    def __init__(self, config: SMARTConfig | None = None) -> None:
        super().__init__(config)
        self.teacher: torch.nn.Module | None = None

    def reg_weight(self) -> float:
        return self.config.lambda_s

    def setup(self, model: torch.nn.Module, train_loader: Any, accelerator: Any) -> None:
        if self.config.bregman:
            self._make_teacher(model)

    def _make_teacher(self, model: torch.nn.Module) -> torch.nn.Module:
        teacher = copy.deepcopy(unwrap(model))
        teacher.eval()  # deterministic target: no dropout in the teacher
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.teacher = teacher
        return teacher

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out, total = self.adversarial_loss(model, batch)
        if self.config.bregman:
            teacher = self.teacher if self.teacher is not None else self._make_teacher(model)
            with torch.no_grad():
                t_logits = teacher(**without_labels(batch)).logits
            breg = sym_kl(out.logits, t_logits)
            self.last_bregman = breg.detach()
            self.terms.add(bregman=breg.detach())
            total = total + self.config.mu * breg
        return total

    @torch.no_grad()
    def after_optimizer_step(self, model: torch.nn.Module) -> None:
        if self.teacher is None:
            return
        beta = self.config.ema_beta
        t_params = list(self.teacher.parameters())
        s_params = [p.detach() for p in unwrap(model).parameters()]
        torch._foreach_mul_(t_params, beta)
        torch._foreach_add_(t_params, s_params, alpha=1.0 - beta)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "last_bregman_symkl": _as_float(getattr(self, "last_bregman", None))}

    def state_dict(self) -> dict[str, Any]:
        """Adds the EMA teacher's weights: it trails the model, so it cannot be rebuilt from it."""
        teacher = self.teacher.state_dict() if self.teacher is not None else None
        return {**super().state_dict(), "teacher": teacher}

    def load_state_dict(self, state: dict[str, Any], model: torch.nn.Module) -> None:
        super().load_state_dict(state, model)
        if state["teacher"] is not None:
            self._make_teacher(model).load_state_dict(state["teacher"])
