"""SMART (Jiang et al., ACL 2020): a smoothness-inducing virtual-adversarial regulariser plus
Bregman proximal point optimisation against an EMA teacher (reference: namisan/mt-dnn).

Regulariser (shared with ALUM, see ``alum.py``): ``delta ~ N(0, sigma^2)`` on the embedding
output; one ascent step on ``KL(q || p.detach())``: ``delta <- delta + eta * g / (max|g| + gamma)``
with the max per token over the hidden dimension, so the step's per-token L-inf norm is
``eta`` (up to gamma); then ``lambda_s * symKL(p, q)``. Bregman term: ``mu * symKL(f(x; theta),
f(x; theta_ema))`` with the teacher an EMA (beta 0.99) of the parameters, updated after every
optimiser step; ``--set bregman=false`` turns it off.

Deviation switch: ``mtdnn_norm=true`` reproduces mt-dnn's literal update, which normalises the
whole ``delta + eta * g`` per token (so the perturbation's L-inf norm becomes ~1, not ~eta).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

from robench.methods.base import Method, MethodConfig, register_method
from robench.methods.embeddings import (
    capture_embeddings,
    kl,
    linf_normalize,
    perturb_embeddings,
    sym_kl,
    unwrap,
)


def virtual_adversarial_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor], emb: torch.Tensor,
                               clean_logits: torch.Tensor, *, sigma: float, eta: float, gamma: float,
                               steps: int = 1, mtdnn_norm: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The perturbed logits after ``steps`` ascent steps on ``KL(q || p.detach())``, and the delta.

    The ascent passes differentiate only with respect to delta (``autograd.grad``); the final
    perturbed pass keeps the graph through the model (the embedding layer included).
    """
    delta = (torch.randn_like(emb, dtype=torch.float32) * sigma).requires_grad_()
    target = clean_logits.detach()
    for _ in range(steps):
        with perturb_embeddings(model, delta):
            adv_logits = model(**_inputs(batch)).logits
        (g,) = torch.autograd.grad(kl(adv_logits, target, reduction="sum"), delta)
        if mtdnn_norm:
            delta = linf_normalize(delta.detach() + eta * g, gamma)
        else:
            delta = delta.detach() + eta * linf_normalize(g, gamma)
        delta = delta.detach().requires_grad_()
    delta = delta.detach()
    with perturb_embeddings(model, delta):
        adv_logits = model(**_inputs(batch)).logits
    return adv_logits, delta


def _inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in batch.items() if k != "labels"}


@dataclass
class SMARTConfig(MethodConfig):
    sigma: float = 1e-5  # initial noise std
    eta: float = 1e-3  # ascent step size
    gamma: float = 1e-6  # L-inf normalisation epsilon
    steps: int = 1  # ascent steps T
    lambda_s: float = 1.0  # adversarial regulariser weight (paper searches {1, 3, 5})
    bregman: bool = True  # Bregman proximal point term against the EMA teacher
    mu: float = 1.0
    ema_beta: float = 0.99
    mtdnn_norm: bool = False


class VirtualAdversarial(Method, ABC):
    """CE + weight * symKL(p, q) with q from one virtual-adversarial ascent step (SMART, ALUM)."""

    @abstractmethod
    def reg_weight(self) -> float:
        """The weight of the symKL regulariser (SMART's lambda_s, ALUM's alpha)."""

    def adversarial_loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[Any, torch.Tensor]:
        cfg = self.config
        with capture_embeddings(model) as seen:
            out = model(**batch)
        adv_logits, self.last_delta = virtual_adversarial_logits(
            model, batch, seen[0], out.logits, sigma=cfg.sigma, eta=cfg.eta, gamma=cfg.gamma,
            steps=cfg.steps, mtdnn_norm=cfg.mtdnn_norm)
        reg = sym_kl(out.logits, adv_logits, detach_targets=True)
        self.last_reg = float(reg.detach())
        return out, out.loss + self.reg_weight() * reg

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.adversarial_loss(model, batch)[1]

    def state(self) -> dict[str, Any]:
        return {"last_adv_symkl": getattr(self, "last_reg", None)}


@register_method("smart")
class SMART(VirtualAdversarial):
    Config = SMARTConfig
    passes = "3F+2B+1F(teacher)"
    presets = {"no-bregman": {"bregman": False}, "mtdnn": {"mtdnn_norm": True, "bregman": False}}

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
                t_logits = teacher(**_inputs(batch)).logits
            breg = sym_kl(out.logits, t_logits)
            self.last_bregman = float(breg.detach())
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
        return {**super().state(), "last_bregman_symkl": getattr(self, "last_bregman", None)}
