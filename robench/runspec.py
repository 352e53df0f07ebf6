"""What a run is: the trainer's settings (:class:`TrainConfig`) and the one rule that says whether a
finished run is the one a command asks for.

A run's weights are decided by the task's data (its ``data_hash``, profile and limit), the model, the
method with its resolved hyper-parameters (dataclass defaults -> preset -> tuned setting -> ``--set``),
selective training and its mask, the seed and the trainer's numbers (epochs, batch size, lr, weight
decay, warm-up, Adam betas and eps, clipping, max length, precision, length-grouped batching).
:class:`RunSpec` holds exactly those in a frozen :class:`RunSpec`; ``train`` (its checkpoint), ``tune``
(its trials) and ``run`` (its finished runs) all compare them (:meth:`RunSpec.key`,
:meth:`RunSpec.differences`), so a finished run trained with other settings is never reused for a
command that asks for different ones. run.json records the spec under ``spec``.

This module imports no torch: the CLI takes its option defaults from :class:`TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from robench.configs import name_list
from robench.errors import SEED_MAX, ConfigError
from robench.records import RunRecord

SPEC_VERSION = 1
# Evaluation's default precision: fp32, the precision every committed result was scored in (training's is
# TrainConfig.precision, "auto"); both resolve through robench.hardware.resolve_precision.
EVAL_PRECISION = "fp32"
# `robench run`'s seeds: the board's hierarchical test resamples seeds (at least 3 per method; 5 give it room)
DEFAULT_SEEDS = (0, 1, 2, 3, 4)


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
    # length-grouped batches (robench.sampling, as the HF Trainer's group_by_length): less padding, faster
    # steps, but other examples share a batch, so other weights: part of the key, off by default
    group_by_length: bool = False
    # a budget, not a setting: stop at the end of this epoch of the `epochs`-long schedule, keeping the
    # epoch-end checkpoint and writing no run folder; the same config without it resumes from there and
    # ends as a run never stopped (robench tune's successive halving)
    stop_after_epoch: int | None = None
    tuned: dict[str, Any] | None = None  # --tuned: {file, sha256, method, setting, overridden} (robench.tune)


# Settings that do not change the weights: where the run goes, --force, checkpointing, a stop budget
# (stop_after_epoch: the run it stops is resumed to the same end), the device, the evaluation batch,
# where a tuned setting came from; and the inputs of the resolved method config (the
# resolved values are in the key instead, so a preset equal to the defaults is the defaults) and the
# task's path (its data_hash is in the key instead, so two paths to one task file are one task).
NOT_IN_KEY = frozenset({"out", "force", "checkpoint_steps", "stop_after_epoch", "device", "eval_batch_size", "tuned", "method_overrides",
                        "preset", "selective_overrides", "task"})
TRAINER_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in NOT_IN_KEY)
# Trainer settings added after runs were first recorded, with the value those runs trained at: in the key
# only when set to something else, so every run trained before the setting existed keeps its key and
# still stands for a command at the default (a run.json without the field means the default).
KEY_WHEN_SET: dict[str, Any] = {"group_by_length": False}


def _trainer(values: dict[str, Any]) -> dict[str, Any]:
    """The trainer part of the key: every field of :data:`TRAINER_FIELDS`, those of :data:`KEY_WHEN_SET`
    only when away from their default."""
    out = {name: values[name] for name in TRAINER_FIELDS
           if not (name in KEY_WHEN_SET and values[name] == KEY_WHEN_SET[name])}
    return _no_default_profile(out)


def _no_default_profile(trainer: dict[str, Any]) -> dict[str, Any]:
    """``--profile default`` is no profile: the same sets, the same run folder, so the same key."""
    return {**trainer, "profile": None} if trainer.get("profile") == "default" else trainer


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


@dataclass(frozen=True)
class RunSpec:
    """A run, resolved: every value that decides its weights, and where each came from.

    ``trainer`` holds the trainer's numbers (:data:`TRAINER_FIELDS`), ``method_config`` and
    ``selective_config`` the method's and the mask's resolved hyper-parameters, ``data_hash`` the
    task's data. :meth:`key` hashes exactly those; ``sources`` (``default``, ``preset NAME (task|user)``,
    ``tuned``, ``cli``) is recorded beside them and left out of the key and of equality: the values
    decide the weights, not their origin. Built by ``robench.train.resolve_run_spec``.
    """

    trainer: dict[str, Any]
    method_config: dict[str, Any]
    selective_config: dict[str, Any] | None
    data_hash: str | None
    sources: dict[str, dict[str, str]] = field(default_factory=dict, compare=False)
    version: int = SPEC_VERSION

    @classmethod
    def of(cls, cfg: TrainConfig, method_config: dict[str, Any], selective_config: dict[str, Any] | None,
           data_hash: str, sources: dict[str, dict[str, str]] | None = None) -> RunSpec:
        trainer = _trainer({name: getattr(cfg, name) for name in TRAINER_FIELDS})
        return cls(trainer=_jsonable(trainer), method_config=_jsonable(method_config),
                   selective_config=_jsonable(selective_config), data_hash=data_hash, sources=sources or {})

    @classmethod
    def from_record(cls, record: RunRecord) -> RunSpec:
        """The spec of a finished run: as recorded, or rebuilt from an older run.json's config and method
        blocks (a trainer setting it lacks is taken to be that setting's default; an unknown data hash is
        not compared)."""
        spec = record.spec or {}
        fields = spec.get("fields")
        if isinstance(fields, dict):
            return cls(trainer=fields.get("trainer") or {}, method_config=fields.get("method_config") or {},
                       selective_config=fields.get("selective_config"), data_hash=fields.get("data_hash"),
                       sources=spec.get("sources") or {}, version=fields.get("version", SPEC_VERSION))
        defaults = TrainConfig()
        trainer = _trainer({name: record.config.get(name, getattr(defaults, name)) for name in TRAINER_FIELDS})
        return cls(trainer=_jsonable(trainer), method_config=_jsonable(record.method.config or {}),
                   selective_config=_jsonable(record.method.selective_config), data_hash=record.task.data_hash)

    def fields(self) -> dict[str, Any]:
        """What the key hashes, as run.json records it under ``spec.fields``."""
        return {"version": self.version, "trainer": self.trainer, "method_config": self.method_config,
                "selective_config": self.selective_config, "data_hash": self.data_hash}

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.fields(), sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key(), "fields": self.fields(), "sources": self.sources}

    def differences(self, new: RunSpec) -> list[str]:
        """``"epochs 1, now 3"``-style lines for every field of the key that differs (empty: the same run)."""
        out: list[str] = []
        for group, prefix in (("trainer", ""), ("method_config", "method "), ("selective_config", "selective ")):
            a, b = getattr(self, group) or {}, getattr(new, group) or {}
            if group == "trainer":  # a setting of KEY_WHEN_SET absent from one side is at its default there
                a, b = _no_default_profile({**KEY_WHEN_SET, **a}), _no_default_profile({**KEY_WHEN_SET, **b})
            for name in sorted(set(a) | set(b)):
                if a.get(name) != b.get(name):
                    out.append(f"{prefix}{name} {a.get(name)!r}, now {b.get(name)!r}")
        if self.data_hash and self.data_hash != new.data_hash:
            out.append(f"task data hash {self.data_hash}, now {new.data_hash}")
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
            parts = [int(s) for s in name_list(seeds)]
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
