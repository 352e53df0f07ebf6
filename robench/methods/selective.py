"""Selective training: RAM/RoAST's importance-ranked, stochastic gradient mask.

- Importance of each parameter entry: Fisher-style ``sum(grad^2) / N``. Before epoch 1 it is
  computed over the whole training loader from CE gradients (N = number of batches; the
  optimiser is not stepped, gradients are zeroed afterwards, and the global torch RNG state is
  restored so dropout in training is what it would have been without the pass). At each
  epoch end it is recomputed from the squared gradients of the method's full loss accumulated
  during that epoch (in ``after_backward``, i.e. before clipping and masking).
- Only encoder-layer parameters are masked: names with a ``layer.<i>.`` / ``layers.<i>.``
  component (``bert.encoder.layer.3.attention...``, ``mpnet.encoder.layer.3.attention.attn.q...``);
  embeddings and the classifier head always update, and so does MPNet's
  ``mpnet.encoder.relative_attention_bias`` (one table shared by all layers, outside any
  ``layer.<i>``; the RoAST code's own filter, ``'layer' in name``, leaves it out too).
- Exact global ranks over all masked entries, in torch on the model's device (argsort):
  ``r = rank / (n - 1)`` in [0, 1], most important = 1. Keep probability
  ``p = sigmoid(2 * beta * (r - alpha))``; ``m ~ Bernoulli(p)`` is drawn once per epoch with a
  seeded generator and held; in ``before_optimizer_step`` the gradient is multiplied by
  ``m / (p + 1e-12)`` as RoAST (``unbiased=false``: by ``m``). Expected keep fraction
  ``(log(1 + e^{2b(1-a)}) - log(1 + e^{-2ba})) / 2b``: ~10.6% at (0.9, 10), ~45.4% at (0.6, 1).
- With AdamW a masked entry can still move through its momentum and weight decay, as in the
  reference; with plain SGD it stays put.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import torch

from robench import distributed
from robench.errors import ConfigError
from robench.methods.base import TrainingHook
from robench.methods.embeddings import unwrap

MASKED = re.compile(r"(^|\.)layers?\.\d+\.")
KEEP_EPS = 1e-12  # bbuing9/RoAST, roast_optim.py, calculate_fisher: gradient_mask = 1 / (soft_mask + 1e-12) * bernoulli


def is_masked(name: str) -> bool:
    """Encoder-layer parameters only; never embeddings or the classifier head."""
    return bool(MASKED.search(name)) and "embeddings" not in name and not name.startswith("classifier")


def expected_keep(alpha: float, beta: float) -> float:
    """Mean of ``sigmoid(2 beta (r - alpha))`` over ``r ~ U(0, 1)``."""
    b = 2.0 * beta

    def softplus(x: float) -> float:
        return max(x, 0.0) + math.log1p(math.exp(-abs(x)))

    return (softplus(b * (1 - alpha)) - softplus(-b * alpha)) / b


@dataclass
class SelectiveConfig:
    alpha: float = 0.9  # rank threshold (sentiment preset; entailment: 0.6)
    beta: float = 10.0  # sharpness (sentiment preset; entailment: 1)
    seed: int = -1  # mask sampling seed; -1 = the run's seed (torch.initial_seed() at setup)
    unbiased: bool = True  # scale kept gradients by 1/p

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0 or self.beta <= 0:
            raise ConfigError(f"selective training wants alpha in [0, 1] and beta > 0, got alpha={self.alpha}, "
                              f"beta={self.beta}")


class SelectiveTraining(TrainingHook):
    """Built like a method: ``SelectiveTraining(make_config(SelectiveTraining, overrides, preset))``."""

    name = "selective"
    kind = "training hook"
    Config = SelectiveConfig
    presets: dict[str, dict[str, Any]] = {"sentiment": {"alpha": 0.9, "beta": 10.0},
                                          "entailment": {"alpha": 0.6, "beta": 1.0}}

    def __init__(self, config: SelectiveConfig | None = None) -> None:
        self.config = config if config is not None else SelectiveConfig()
        self.params: list[torch.nn.Parameter] = []
        self.names: list[str] = []
        self.scales: list[torch.Tensor] = []
        self.acc: list[torch.Tensor] = []
        self.acc_steps = 0
        self.generator: torch.Generator | None = None
        self.refreshes = 0
        self.kept_fraction: float | None = None
        self.expected_fraction: float | None = None
        self.masked_entries = 0
        self.fisher_batches = 0
        self.seconds = {"fisher": 0.0, "resample": 0.0, "accumulate": 0.0, "apply": 0.0}
        self.steps = 0

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    # -- hooks ---------------------------------------------------------------------------------

    def setup(self, model: torch.nn.Module, train_loader: Any, accelerator: Any) -> None:
        t0 = time.perf_counter()
        named = [(n, p) for n, p in unwrap(model).named_parameters() if p.requires_grad and is_masked(n)]
        if not named:
            raise ConfigError("selective training found no encoder-layer parameters (names with 'layer.<i>.') to mask")
        self.names, self.params = [n for n, _ in named], [p for _, p in named]
        self.masked_entries = sum(p.numel() for p in self.params)
        device = self.params[0].device
        seed = self.config.seed if self.config.seed >= 0 else torch.initial_seed()
        seed = distributed.broadcast_object(int(seed))  # one mask for all ranks: rank 0's seed
        self.generator = torch.Generator(device=device).manual_seed(int(seed) % (2**63))
        self.acc = [torch.zeros_like(p, dtype=torch.float32) for p in self.params]

        cpu_rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        was_training = model.training
        model.train()
        model.zero_grad(set_to_none=True)
        batches = 0
        for batch in train_loader:
            accelerator.backward(model(**batch).loss)
            self._accumulate()
            model.zero_grad(set_to_none=True)
            batches += 1
        model.train(was_training)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        self.fisher_batches = batches
        self.acc_steps = 0
        self._refresh(batches)
        self.seconds["fisher"] = time.perf_counter() - t0

    def after_backward(self, model: torch.nn.Module) -> None:
        if not self.params:
            return
        t0 = time.perf_counter()
        self._accumulate()
        self.acc_steps += 1
        self.seconds["accumulate"] += time.perf_counter() - t0

    def before_optimizer_step(self, model: torch.nn.Module) -> None:
        if not self.scales:
            return
        t0 = time.perf_counter()
        pairs = [(p.grad, s) for p, s in zip(self.params, self.scales, strict=True) if p.grad is not None]
        if pairs:
            grads, scales = zip(*pairs, strict=True)
            torch._foreach_mul_(list(grads), list(scales))
        self.steps += 1
        self.seconds["apply"] += time.perf_counter() - t0

    def on_epoch_end(self, model: torch.nn.Module, epoch: int) -> None:
        if self.params and self.acc_steps > 0:
            self._refresh(self.acc_steps)
            self.acc_steps = 0

    def state(self) -> dict[str, Any]:
        if not self.params:
            return {}
        per_step = (self.seconds["accumulate"] + self.seconds["apply"]) / max(self.steps, 1)
        return {"alpha": self.config.alpha, "beta": self.config.beta, "masked_entries": self.masked_entries,
                "kept_fraction": self.kept_fraction, "expected_keep_fraction": self.expected_fraction,
                "closed_form_keep_fraction": round(expected_keep(self.config.alpha, self.config.beta), 6),
                "refreshes": self.refreshes, "fisher_batches": self.fisher_batches,
                "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
                "mask_seconds_per_step": per_step}

    def state_dict(self) -> dict[str, Any]:
        """The epoch's accumulated importance, the held mask (as its gradient scales), the sampling
        generator and the counters ``state()`` reports."""
        if not self.params:
            return {}
        return {"acc": dict(zip(self.names, self.acc, strict=True)),
                "scales": dict(zip(self.names, self.scales, strict=True)) if self.scales else {},
                "acc_steps": self.acc_steps, "generator": self.generator.get_state(), "refreshes": self.refreshes,
                "kept_fraction": self.kept_fraction, "expected_fraction": self.expected_fraction,
                "fisher_batches": self.fisher_batches, "seconds": dict(self.seconds), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any], model: torch.nn.Module) -> None:
        """``setup`` without the Fisher pass: the mask and the accumulator come from the checkpoint."""
        if not state:
            return
        named = [(n, p) for n, p in unwrap(model).named_parameters() if p.requires_grad and is_masked(n)]
        self.names, self.params = [n for n, _ in named], [p for _, p in named]
        self.masked_entries = sum(p.numel() for p in self.params)
        self.acc = [state["acc"][n].to(p.device, torch.float32) for n, p in named]
        self.scales = [state["scales"][n].to(p.device, p.dtype) for n, p in named] if state["scales"] else []
        self.generator = torch.Generator(device=self.params[0].device)
        self.generator.set_state(state["generator"])
        self.acc_steps, self.refreshes, self.steps = state["acc_steps"], state["refreshes"], state["steps"]
        self.kept_fraction, self.expected_fraction = state["kept_fraction"], state["expected_fraction"]
        self.fisher_batches, self.seconds = state["fisher_batches"], dict(state["seconds"])

    # -- internals -----------------------------------------------------------------------------

    @torch.no_grad()
    def _accumulate(self) -> None:
        pairs = [(a, p.grad) for a, p in zip(self.acc, self.params, strict=True) if p.grad is not None]
        if pairs:
            acc, grads = zip(*pairs, strict=True)
            grads = [g.float() for g in grads]
            torch._foreach_addcmul_(list(acc), grads, grads)

    @torch.no_grad()
    def _refresh(self, n: int) -> None:
        """New mask from the accumulated importance (divided by ``n``), then reset the accumulator."""
        t0 = time.perf_counter()
        importance = torch.cat([a.reshape(-1) for a in self.acc]) / max(n, 1)
        ranks = rank01(importance)
        del importance
        keep = torch.sigmoid(2.0 * self.config.beta * (ranks - self.config.alpha))
        del ranks
        mask = torch.bernoulli(keep, generator=self.generator)
        # RoAST (roast_optim.py, calculate_fisher): m / (p + 1e-12); the 1e-12 also keeps an entry whose keep
        # probability underflows to 0 (a large beta) at 0 instead of 0/0
        scale = mask / (keep + KEEP_EPS) if self.config.unbiased else mask
        self.kept_fraction = float(mask.mean())
        self.expected_fraction = float(keep.mean())
        del keep, mask
        self.scales = [s.view_as(p).to(p.dtype) for s, p in
                       zip(torch.split(scale, [p.numel() for p in self.params]), self.params, strict=True)]
        for a in self.acc:
            a.zero_()
        self.refreshes += 1
        self.seconds["resample"] += time.perf_counter() - t0

    def mask_of(self, name: str) -> torch.Tensor | None:
        """The held 0/1 mask of one parameter (for tests and inspection)."""
        for n, s in zip(self.names, self.scales, strict=True):
            if n == name:
                return (s != 0).to(torch.float32)
        return None


def rank01(values: torch.Tensor) -> torch.Tensor:
    """Exact ranks scaled to [0, 1] (smallest 0, largest 1); ties broken by argsort order."""
    n = values.numel()
    order = torch.argsort(values)
    ranks = torch.empty(n, dtype=torch.float32, device=values.device)
    ranks[order] = torch.arange(n, dtype=torch.float32, device=values.device) / max(n - 1, 1)
    return ranks
