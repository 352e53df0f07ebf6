"""ALUM (Liu et al., 2020) as used for fine-tuning: virtual adversarial training in embedding
space, no Bregman term (reference: namisan/mt-dnn alum/).

``delta ~ N(0, 1e-5^2)``; one ascent step of size 1e-3 on ``KL(q || p.detach())`` with per-token
L-inf normalisation (gamma 1e-6); loss ``CE + alpha * symKL(p, q)``, alpha 1 for fine-tuning
(10 in pre-training). The update is SMART's regulariser (``smart.VirtualAdversarial``).
"""

from __future__ import annotations

from dataclasses import dataclass

from robench.methods.base import MethodConfig, register_method
from robench.methods.smart import VirtualAdversarial


@dataclass
class ALUMConfig(MethodConfig):
    sigma: float = 1e-5
    eta: float = 1e-3
    gamma: float = 1e-6
    steps: int = 1
    alpha: float = 1.0  # 10 in pre-training
    mtdnn_norm: bool = False


@register_method("alum")
class ALUM(VirtualAdversarial):
    Config = ALUMConfig
    passes = "3F+2B"
    presets = {"pretraining": {"alpha": 10.0}, "mtdnn": {"mtdnn_norm": True}}

    def reg_weight(self) -> float:
        return self.config.alpha
