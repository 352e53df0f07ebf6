"""What the hardware does well, decided once and recorded: bf16, fused AdamW, CPU threads.

- ``native_bf16``: CUDA with bf16 (not emulated), or a CPU with AVX512-BF16 or AMX. Elsewhere bf16
  autocast still runs but is emulated and slower than fp32, so ``auto`` precision means fp32 there.
- ``make_adamw``: ``torch.optim.AdamW(fused=True)`` where the torch build has the fused kernel for
  the parameters' device (CPU since torch 2.4, CUDA), else torch's default (foreach) implementation.
  Same update rule; the fused kernel does the whole step in one pass over the parameters.
- ``usable_cores``: the cores this process may run on (CPU affinity, a cgroup quota, an explicit
  ``OMP_NUM_THREADS``), so that torch never starts more compute threads than it has cores: on a
  shared machine an oversubscribed thread pool costs far more than the cores it loses.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from robench.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether the device computes bf16 natively (CUDA with bf16, or a CPU with AVX512-BF16 or AMX)."""
    if str(device).startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(bool(check()) for check in checks if callable(check))


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """The one precision resolver, for training and evaluation alike: ``auto`` -> bf16 autocast where the
    device has native bf16, fp32 elsewhere; fp32 / bf16 as asked. (Training defaults to ``auto``;
    evaluation defaults to ``fp32``, the precision every committed result was scored in, so a board
    never mixes precisions unless asked: ``robench eval --precision auto``.)"""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; use auto, fp32 or bf16")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "bf16" and str(device).startswith("cuda") and not native_bf16(device):
        raise ConfigError("--precision bf16: this GPU has no native bf16; use --precision fp32 (or auto)")
    return precision


def fused_adamw_supported(device: str | torch.device = "cpu") -> bool:
    """Whether this torch build has a fused AdamW kernel for tensors on ``device``."""
    try:
        probe = torch.zeros(1, device=device, requires_grad=True)
        torch.optim.AdamW([probe], fused=True)
    except (RuntimeError, ValueError, TypeError):
        return False
    return True


def make_adamw(groups, *, lr: float, betas: tuple[float, float], eps: float, device: str | torch.device,
               fused: bool | None = None) -> tuple[torch.optim.AdamW, str]:
    """AdamW over ``groups`` and the implementation used: ``fused`` where supported (``fused=None``: auto),
    else ``foreach`` (torch's default)."""
    use_fused = fused_adamw_supported(device) if fused is None else fused
    if use_fused and not fused_adamw_supported(device):
        raise ConfigError(f"fused AdamW is not available for {device} in torch {torch.__version__}")
    if use_fused:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=True), "fused"
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps), "foreach"


def _cgroup_cpus() -> float | None:
    """The CPU quota of this process's cgroup (v2 ``cpu.max``, v1 ``cfs_quota/period``), in cores."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def usable_cores() -> int:
    """Cores this process may use: affinity, capped by a cgroup quota and by ``OMP_NUM_THREADS`` if set."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    omp = os.environ.get("OMP_NUM_THREADS")
    if omp and omp.isdigit() and int(omp) > 0:
        cores = min(cores, int(omp))
    return max(cores, 1)


def size_threads() -> int:
    """Set torch's intra-op threads to the usable cores (never more) and return the number."""
    n = usable_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
