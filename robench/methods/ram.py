"""RAM / RoAST (Kim et al.; reference: bbuing9/RoAST): adversarial perturbation of the input
embeddings plus selective training (the importance-ranked gradient mask, ``selective.py``).

Per step: clean pass (``p``, CE, embedding output ``emb``); ``delta0 = U(0, 1) * init_eps`` on
the detached ``emb``; ONE ascent step on CE with the true labels; the gradient normalised per
token in L-inf (``g / max|g|`` over the hidden dimension); ``adv = emb.detach() + delta0 +
adv_eps * g_hat`` (no projection); perturbed pass (``q``). Loss ``CE + kl_weight * symKL(p, q)``
with batch-mean KL; kl_weight 0.16 is the reference's ``0.01 * (sum KL + sum KL) / 2`` at batch
16 rescaled with its ``0.5 * CE``. ``adv_ce=true`` adds the adversarial CE term the reference
intends but never runs (its ``if loss is None`` guard): ``CE + CE(adv) + kl_weight * symKL``
(the reference's intended ``0.5, 0.5, 0.08`` weights, doubled like the default). Unlike the
reference the model always gets the attention mask. Cost 3F + 2B (+ one Fisher pass).

Selective training is on by default (``ram`` = adversarial + mask); ``--set selective=false`` is
RAM without the mask. The mask hook lives inside the method, which forwards the hook calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robench.methods.base import Method, MethodConfig, register_method
from robench.methods.embeddings import capture_embeddings, linf_normalize, perturb_embeddings, sym_kl
from robench.methods.selective import SelectiveTraining


@dataclass
class RAMConfig(MethodConfig):
    adv_eps: float = 0.1
    init_eps: float = 1e-5
    kl_weight: float = 0.16
    adv_ce: bool = False
    selective: bool = True
    selective_alpha: float = 0.9  # sentiment preset (entailment: 0.6)
    selective_beta: float = 10.0  # sentiment preset (entailment: 1)
    selective_seed: int = -1  # -1 = the run's seed


def ram_adversarial_embeddings(model: torch.nn.Module, batch: dict[str, torch.Tensor], emb: torch.Tensor,
                               init_eps: float, adv_eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(emb.detach() + delta0 + adv_eps * g_hat, adv_eps * g_hat)`` after one CE ascent step."""
    base = emb.detach()
    delta0 = (torch.rand_like(base, dtype=torch.float32) * init_eps).requires_grad_()
    with perturb_embeddings(model, delta0, base=base):
        loss = model(**batch).loss
    (g,) = torch.autograd.grad(loss, delta0)
    step = adv_eps * linf_normalize(g)
    return (base + delta0.detach() + step).detach(), step


@register_method("ram", aliases=("roast",))
class RAM(Method):
    Config = RAMConfig
    passes = "3F+2B"
    presets = {"sentiment": {"selective_alpha": 0.9, "selective_beta": 10.0},
               "entailment": {"selective_alpha": 0.6, "selective_beta": 1.0}}

    def __init__(self, config: RAMConfig | None = None) -> None:
        super().__init__(config)
        cfg = self.config
        self.selective: SelectiveTraining | None = None
        if cfg.selective:
            self.selective = SelectiveTraining.from_overrides(
                {"alpha": cfg.selective_alpha, "beta": cfg.selective_beta, "seed": cfg.selective_seed})

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg = self.config
        with capture_embeddings(model) as seen:
            out = model(**batch)
        adv, self.last_step = ram_adversarial_embeddings(model, batch, seen[0], cfg.init_eps, cfg.adv_eps)
        with perturb_embeddings(model, torch.zeros((), dtype=adv.dtype, device=adv.device), base=adv):
            adv_out = model(**batch) if cfg.adv_ce else model(**{k: v for k, v in batch.items() if k != "labels"})
        reg = sym_kl(out.logits, adv_out.logits)
        self.last_reg = float(reg.detach())
        total = out.loss + cfg.kl_weight * reg
        if cfg.adv_ce:
            total = total + adv_out.loss
        return total

    # the mask hook's calls, forwarded
    def setup(self, model: torch.nn.Module, train_loader: Any, accelerator: Any) -> None:
        if self.selective is not None:
            self.selective.setup(model, train_loader, accelerator)

    def after_backward(self, model: torch.nn.Module) -> None:
        if self.selective is not None:
            self.selective.after_backward(model)

    def before_optimizer_step(self, model: torch.nn.Module) -> None:
        if self.selective is not None:
            self.selective.before_optimizer_step(model)

    def after_optimizer_step(self, model: torch.nn.Module) -> None:
        if self.selective is not None:
            self.selective.after_optimizer_step(model)

    def on_epoch_end(self, model: torch.nn.Module, epoch: int) -> None:
        if self.selective is not None:
            self.selective.on_epoch_end(model, epoch)

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"last_adv_symkl": getattr(self, "last_reg", None)}
        if self.selective is not None:
            out["selective"] = self.selective.state()
        return out
