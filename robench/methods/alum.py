"""ALUM (Liu et al., 2020) as used for fine-tuning: virtual adversarial training in embedding
space, no Bregman term.

Reference: namisan/mt-dnn, whose fine-tuning path (``--adv_train``) runs the same
``mt_dnn/perturbation.py`` ``SmartPerturbation.forward`` as SMART; the pre-training version
(``alum/adv_masked_lm.py``, ``AdvMaskedLmLoss.forward`` and ``adv_project``, last at commit
efe63ad) normalises ``noise + step_size * grad`` per token in the same way. ``delta ~ N(0, 1e-5^2)`` on the
embedding-layer output; one ascent step of size 1e-3 on ``KL(q || p.detach())`` normalised the
released way (``step_norm=released``: the per-token L-inf normalisation of ``delta + eta * g``,
gamma 1e-6; ``paper``: of ``g`` alone, see ``smart.py``); loss ``CE + alpha * symKL(p, q)``,
alpha 1 for fine-tuning (10 in pre-training). The update is SMART's regulariser
(``smart.VirtualAdversarial``). Cost 3F+2B.
"""

from __future__ import annotations

from dataclasses import dataclass

from robench.errors import ConfigError
from robench.methods.base import RegularisedConfig, register_method
from robench.methods.smart import STEP_NORMS, VirtualAdversarial


@dataclass
class ALUMConfig(RegularisedConfig):
    sigma: float = 1e-5
    eta: float = 1e-3
    gamma: float = 1e-6
    steps: int = 1
    alpha: float = 1.0  # 10 in pre-training
    step_norm: str = "released"  # "released" (mt-dnn) or "paper"

    def __post_init__(self) -> None:
        if self.step_norm not in STEP_NORMS:
            raise ConfigError(f"step_norm must be one of {', '.join(STEP_NORMS)}, got {self.step_norm!r}")


@register_method("alum")
class ALUM(VirtualAdversarial):
    Config = ALUMConfig
    passes = "3F+2B"
    # robench tune: lr x the adversarial weight `alpha` (1 for fine-tuning, 10 in pre-training), 2 x 2 = 4
    # trials per seed
    tune_grid = {"lr": [1e-4, 2e-4], "alpha": [1.0, 10.0]}
    presets = {"pretraining": {"alpha": 10.0}, "paper-step": {"step_norm": "paper"}}

    def reg_weight(self) -> float:
        return self.config.alpha
