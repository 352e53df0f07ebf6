"""What a run is: the trainer's settings (:class:`TrainConfig`) and the one rule that says whether a
finished run is the one a command asks for.

A run's weights are decided by the task's data (its ``data_hash``, profile and limit), the model, the
method with its resolved hyper-parameters (dataclass defaults -> preset -> tuned setting -> ``--set``),
selective training and its mask, the seed and the trainer's numbers (epochs, batch size, lr, weight
decay, warm-up, Adam betas and eps, clipping, max length, precision). :func:`spec_fields` collects
exactly those; ``train`` (its checkpoint), ``tune`` (its trials) and ``run`` (its finished runs) all
compare them with :func:`differences`, so a finished run trained with other settings is never reused
for a command that asks for different ones. run.json records them under ``spec``.

This module imports no torch: the CLI takes its option defaults from :class:`TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from robench.errors import SEED_MAX, ConfigError

SPEC_VERSION = 1


@dataclass
class TrainConfig:
    task: str = "sentiment"
    model: str = "minilm"
    method: str = "vanilla"
    method_overrides: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None  # method preset: "paper" (RoBERTa-large defaults) or a method's own
    selective: bool = False  # selective training (RAM's gradient mask) on top of any method
    selective_overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    # where vanilla's validation accuracy plateaus on the default task (benchmarks/epochs_curve.py, README)
    epochs: int = 4
    batch_size: int = 16
    lr: float = 1e-4  # the small packaged MiniLM wants a higher rate than the paper's 1e-5 for RoBERTa-large
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    adam_betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-6
    max_grad_norm: float = 1.0
    max_length: int = 128
    eval_batch_size: int = 128
    # auto: bf16 autocast where the hardware has native bf16, else fp32 (README: no result changed)
    precision: str = "auto"
    device: str = "auto"
    profile: str | None = None
    limit: int | None = None
    out: str | None = None
    force: bool = False  # overwrite a finished run and discard a checkpoint
    checkpoint_steps: int = 0  # also checkpoint every N optimiser steps (0: at epoch ends only)
    tuned: dict[str, Any] | None = None  # --tuned: {file, sha256, method, setting, overridden} (robench.tune)


# Settings that do not change the weights: where the run goes, --force, checkpointing, the device, the
# evaluation batch, where a tuned setting came from; and the inputs of the resolved method config (the
# resolved values are in the key instead, so a preset equal to the defaults is the defaults) and the
# task's path (its data_hash is in the key instead, so two paths to one task file are one task).
NOT_IN_KEY = frozenset({"out", "force", "checkpoint_steps", "device", "eval_batch_size", "tuned", "method_overrides",
                        "preset", "selective_overrides", "task"})
TRAINER_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_IN_KEY)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def spec_fields(cfg: TrainConfig, method_config: dict[str, Any], selective_config: dict[str, Any] | None,
                data_hash: str) -> dict[str, Any]:
    """Everything that decides a run's weights, as JSON values."""
    trainer = {name: getattr(cfg, name) for name in TRAINER_FIELDS}
    return _jsonable({"version": SPEC_VERSION, "trainer": trainer, "method_config": method_config,
                      "selective_config": selective_config, "data_hash": data_hash})


def spec_key(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def recorded_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The spec fields of a finished run: as recorded, or rebuilt from an older run.json's config and
    method blocks (a trainer setting it lacks is taken to be that setting's default; an unknown data
    hash is not compared)."""
    spec = record.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("fields"), dict):
        return spec["fields"]
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    method = record.get("method") if isinstance(record.get("method"), dict) else {}
    defaults = TrainConfig()
    trainer = {name: config.get(name, getattr(defaults, name)) for name in TRAINER_FIELDS}
    return _jsonable({"version": SPEC_VERSION, "trainer": trainer, "method_config": method.get("config") or {},
                      "selective_config": method.get("selective_config"),
                      "data_hash": (record.get("task") or {}).get("data_hash")})


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """``"epochs 1, now 3"``-style lines for every field of the key that differs (empty: the same run)."""
    out: list[str] = []
    for group, prefix in (("trainer", ""), ("method_config", "method "), ("selective_config", "selective ")):
        a, b = old.get(group) or {}, new.get(group) or {}
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                out.append(f"{prefix}{name} {a.get(name)!r}, now {b.get(name)!r}")
    if old.get("data_hash") and old.get("data_hash") != new.get("data_hash"):
        out.append(f"task data hash {old['data_hash']}, now {new.get('data_hash')}")
    return out


# ---- tuned settings and seeds as the CLI and the board show them (no torch, no registry)


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def setting_label(setting: dict[str, Any]) -> str:
    """``lr=0.0001, selective_alpha=0.6``."""
    return ", ".join(f"{k}={_show(v)}" for k, v in setting.items())


def tuned_signature(tuned: dict[str, Any] | None) -> Any:
    """What makes two runs' tuned settings the same (not which file they came from)."""
    if not tuned:
        return None
    return _jsonable_str({"setting": tuned.get("setting"), "overridden": tuned.get("overridden") or {}})


def tuned_label(tuned: dict[str, Any] | None) -> str | None:
    """A run's tuned setting for the board: ``lr=0.0001, selective_alpha=0.6``; a value given by hand
    on top reads ``lr=0.0003 (explicit; tuned 0.0001)``."""
    if not tuned or not isinstance(tuned.get("setting"), dict):
        return None
    overridden = tuned.get("overridden") or {}
    return ", ".join(f"{k}={_show(overridden[k])} (explicit; tuned {_show(v)})" if k in overridden else
                     f"{k}={_show(v)}" for k, v in tuned["setting"].items())


def parse_seeds(seeds: str | int | Sequence[int]) -> list[int]:
    if isinstance(seeds, int):
        return [seeds]
    if isinstance(seeds, str):
        try:
            parts = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"bad --seeds {seeds!r}; give integers separated by commas, e.g. 0,1,2") from None
    else:
        parts = [int(s) for s in seeds]
    if not parts:
        raise ConfigError("empty --seeds; give integers separated by commas, e.g. 0,1,2")
    bad = [s for s in parts if not 0 <= s <= SEED_MAX]
    if bad:
        raise ConfigError(f"bad --seeds value {bad[0]}; a seed is a whole number from 0 to {SEED_MAX} (numpy's range)")
    return list(dict.fromkeys(parts))


def _jsonable_str(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
