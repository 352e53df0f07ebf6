"""The regulariser-alive diagnostic: is a method's perturbation doing anything dropout does not?

Every method records, per step, the value of each of its loss terms (``ce``, ``sym_kl``,
``bregman``, ``adv_ce``...); the trainer stores their per-epoch means in run.json
(``training.history[i].diagnostics``). Perturbation methods also compare, on a sample of steps
(every ``diag_every``-th, default 10), two symmetric KLs to the clean pass on the same batch:

- ``sampled_sym_kl``: to the perturbed pass the method trained on (its own dropout masks),
- ``dropout_sym_kl``: to one extra clean pass with fresh dropout, run under ``no_grad`` with
  the RNG state saved and restored (so the run is the same with or without the diagnostic).

``alive_ratio = mean(sampled_sym_kl) / mean(dropout_sym_kl)``: about 1 means the perturbation
adds nothing that dropout noise does not (the regulariser is numerically dead); well above 1
means it is doing its job. Cost: one forward pass every ``diag_every`` steps.

A ratio does not say whether the perturbation is adversarial: the methods with a gradient step also
record ``ascent_share`` every step (``embeddings.gradient_share``: per token, the gradient step's norm
over the perturbation's), near 0 when the perturbation is its initial noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from robench.methods.embeddings import sym_kl


@dataclass
class RngState:
    """The torch CPU RNG state and, on CUDA, the state of the device in use."""

    cpu: torch.Tensor
    cuda: torch.Tensor | None
    device: torch.device

    @classmethod
    def save(cls, device: torch.device) -> RngState:
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return cls(torch.get_rng_state(), cuda, device)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)


class TermMeans:
    """Per-epoch sums and counts of named loss terms; ``flush`` returns the means and resets."""

    def __init__(self, every: int = 0) -> None:
        self.every = int(every)
        self.steps = 0
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, **terms: float | torch.Tensor) -> None:
        for key, value in terms.items():
            # tensors stay on their device (float64 sums): no host synchronisation per step
            value = value.detach().to(torch.float64) if torch.is_tensor(value) else float(value)
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def sample_step(self) -> bool:
        """Call once per training step: whether this step runs the dropout-only reference pass."""
        self.steps += 1
        return self.every > 0 and (self.steps - 1) % self.every == 0

    @torch.no_grad()
    def reference(self, model: torch.nn.Module, inputs: dict[str, torch.Tensor], clean_logits: torch.Tensor,
                  perturbed_logits: torch.Tensor) -> None:
        """Record the perturbed pass's and a fresh dropout-only pass's symKL to the clean pass."""
        rng = RngState.save(clean_logits.device)
        try:
            dropout_logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
        finally:
            rng.restore()
        self.add(sampled_sym_kl=sym_kl(clean_logits.detach(), perturbed_logits.detach()),
                 dropout_sym_kl=sym_kl(clean_logits.detach(), dropout_logits))

    def state_dict(self) -> dict[str, Any]:
        """The step count (which steps sample) and the epoch's sums so far: a resumed run records
        the same means."""
        return {"steps": self.steps, "sums": {k: float(v) for k, v in self.sums.items()}, "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.sums, self.counts = state["steps"], dict(state["sums"]), dict(state["counts"])

    def flush(self) -> dict[str, Any]:
        out: dict[str, Any] = {key: float(self.sums[key]) / self.counts[key] for key in self.sums}
        if "dropout_sym_kl" in out:
            out["sampled_steps"] = self.counts["dropout_sym_kl"]
            ref = out["dropout_sym_kl"]
            out["alive_ratio"] = out["sampled_sym_kl"] / ref if ref > 0 else None
        self.sums, self.counts = {}, {}
        return out
