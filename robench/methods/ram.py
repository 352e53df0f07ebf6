"""RAM / RoAST (Kim et al.): adversarial perturbation of the input embeddings plus selective
training (the importance-ranked gradient mask, ``selective.py``).

Follows bbuing9/RoAST: the perturbation in its patched
``transformers/models/roberta/modeling_roberta.py`` (``RobertaForSequenceClassification.forward``,
the ``adv_eps > 0`` branch, with ``generate_noise`` and ``norm_grad``), the mask in
``training/base.py`` ``train_roast`` and ``roast_optim.py``. The noise goes on the
EMBEDDING-LAYER OUTPUT: ``embedding_output = self.roberta.embeddings(...)``, then
``embedding_output.detach().clone() + noise`` is fed to ``self.roberta.encoder``; robench does
the same through a forward hook on ``base_model.embeddings``.

Per step: clean pass (``p``, CE, embedding output ``emb``); ``delta0 = U(0, 1) * init_eps`` on
the detached ``emb``; ONE ascent step on CE with the true labels; the gradient normalised per
token in L-inf (``g / (max|g| + 1e-8)`` over the hidden dimension: RoAST's ``norm_grad``); ``adv = emb.detach() + delta0 +
adv_eps * g_hat`` (no projection); perturbed pass (``q``). Loss ``CE + kl_weight * symKL(p, q)``
with batch-mean KL; kl_weight 0.16 is the reference's ``0.01 * (sum KL + sum KL) / 2`` at batch
16 rescaled with its ``0.5 * CE``. ``adv_ce=true`` adds the adversarial CE term the reference
intends but never runs (its ``if loss is None`` guard): ``CE + CE(adv) + kl_weight * symKL``
(the reference's intended ``0.5, 0.5, 0.08`` weights, doubled like the default). Unlike the
reference the model always gets the attention mask. Cost 3F + 2B (+ one Fisher pass).

Selective training is on by default (``ram`` = adversarial + mask); ``--set selective=false`` is
RAM without the mask. The mask is a separate hook that RAM hands the trainer (``extra_hooks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robench.methods.base import (
    Method,
    RegularisedConfig,
    TrainingHook,
    _as_float,
    make_config,
    register_method,
)
from robench.methods.embeddings import (
    capture_embeddings,
    gradient_share,
    linf_normalize,
    perturb_embeddings,
    sym_kl,
    token_mask,
    without_labels,
)
from robench.methods.selective import SelectiveTraining


@dataclass
class RAMConfig(RegularisedConfig):
    adv_eps: float = 0.1
    init_eps: float = 1e-5
    kl_weight: float = 0.16
    adv_ce: bool = False
    selective: bool = True
    selective_alpha: float = 0.9  # sentiment preset (entailment: 0.6)
    selective_beta: float = 10.0  # sentiment preset (entailment: 1)
    selective_seed: int = -1  # -1 = the run's seed


def ram_adversarial_embeddings(model: torch.nn.Module, batch: dict[str, torch.Tensor], emb: torch.Tensor,
                               init_eps: float, adv_eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(emb.detach() + delta0 + adv_eps * g_hat, adv_eps * g_hat, share)`` after one CE ascent step,
    ``share`` the step's :func:`gradient_share` of the perturbation ``delta0 + adv_eps * g_hat``."""
    base = emb.detach()
    delta0 = (torch.rand_like(base, dtype=torch.float32) * init_eps).requires_grad_()
    with perturb_embeddings(model, delta0, base=base):
        loss = model(**batch).loss
    (g,) = torch.autograd.grad(loss, delta0)
    # RoAST's norm_grad: g / (max|g| + 1e-8) per token, so a token whose gradient is far below 1e-8 (a confidently
    # classified example late in training) gets a proportionally smaller step, not the full adv_eps
    step = adv_eps * linf_normalize(g, eps=ROAST_GRAD_EPS)
    share = gradient_share(step, delta0.detach() + step, token_mask(batch, step))
    return (base + delta0.detach() + step).detach(), step, share


ROAST_GRAD_EPS = 1e-8  # bbuing9/RoAST, transformers/models/roberta/modeling_roberta.py, norm_grad(epsilon=1e-8)


@register_method("ram", aliases=("roast",))
class RAM(Method):
    Config = RAMConfig
    passes = "3F+2B"
    # robench tune: lr x RAM's mask over RoAST's two presets, the rank threshold `selective_alpha` x the
    # sampling sharpness `selective_beta` (sentiment 0.9 / 10, entailment 0.6 / 1): both presets and their
    # two crosses, 2 x 2 x 2 = 8 trials per seed (searched by successive halving: the best 3 go on)
    tune_grid = {"lr": [1e-4, 2e-4], "selective_alpha": [0.6, 0.9], "selective_beta": [1.0, 10.0]}
    presets = {"sentiment": {"selective_alpha": 0.9, "selective_beta": 10.0},
               "entailment": {"selective_alpha": 0.6, "selective_beta": 1.0}}

    def __init__(self, config: RAMConfig | None = None) -> None:
        super().__init__(config)
        cfg = self.config
        self.selective: SelectiveTraining | None = None
        if cfg.selective:
            self.selective = SelectiveTraining(make_config(
                SelectiveTraining, {"alpha": cfg.selective_alpha, "beta": cfg.selective_beta, "seed": cfg.selective_seed}))

    def extra_hooks(self) -> list[TrainingHook]:
        return [self.selective] if self.selective is not None else []

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        cfg = self.config
        sample = self.terms.sample_step()
        with capture_embeddings(model) as seen:
            out = model(**batch)
        adv, self.last_step, share = ram_adversarial_embeddings(model, batch, seen[0], cfg.init_eps, cfg.adv_eps)
        with perturb_embeddings(model, torch.zeros((), dtype=adv.dtype, device=adv.device), base=adv):
            adv_out = model(**batch) if cfg.adv_ce else model(**without_labels(batch))
        reg = sym_kl(out.logits, adv_out.logits)
        self.last_reg = reg.detach()  # a device scalar: no host sync per step
        total = out.loss + cfg.kl_weight * reg
        self.terms.add(ce=out.loss.detach(), sym_kl=reg.detach(), ascent_share=share)
        if cfg.adv_ce:
            total = total + adv_out.loss
            self.terms.add(adv_ce=adv_out.loss.detach())
        if sample:
            self.terms.reference(model, batch, out.logits, adv_out.logits)
        return total

    def state(self) -> dict[str, Any]:
        return {"last_adv_symkl": _as_float(getattr(self, "last_reg", None))}
