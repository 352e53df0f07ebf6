"""The method interface: a fine-tuning method is a training hook that owns the loss.

The trainer (``robench.train``) calls, per step, ``training_step`` (forward and backward
passes; multi-pass methods such as FreeLB do their own), then every hook's
``before_optimizer_step`` (RAM's gradient mask lives there), the optimiser step, then
``after_optimizer_step`` (SMART's EMA teacher). ``setup`` runs once before training (RAM's
Fisher pass), ``on_epoch_end`` after each epoch, then ``epoch_diagnostics`` (recorded in the
run's training history). Checkpoints save every hook's ``state_dict``; a resumed run calls
``load_state_dict`` in place of ``setup``. A method may bring extra hooks (``extra_hooks``:
RAM's selective mask); the trainer runs them beside it. Methods never read files.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from robench.configs import make_config
from robench.errors import SEED_MAX, ConfigError
from robench.methods.diagnostics import TermMeans
from robench.registry import Registry


class TrainingHook:
    """Something that takes part in training without owning the loss (e.g. selective training)."""

    def setup(self, model: torch.nn.Module, train_loader: Any, accelerator: Any) -> None:
        """Once, before the first step."""

    def after_backward(self, model: torch.nn.Module) -> None:
        """After the step's backward passes, before clipping and the optimiser step."""

    def before_optimizer_step(self, model: torch.nn.Module) -> None:
        """Right before ``optimizer.step()``; gradients are final (clipped) here."""

    def after_optimizer_step(self, model: torch.nn.Module) -> None:
        """Right after ``optimizer.step()``."""

    def on_epoch_end(self, model: torch.nn.Module, epoch: int) -> None:
        """After each epoch's last step."""

    def epoch_diagnostics(self) -> dict[str, Any]:
        """Numbers about the epoch just finished (e.g. mean loss terms); reset on every call."""
        return {}

    def state(self) -> dict[str, Any]:
        """Numbers worth recording in run.json (e.g. the kept fraction of a mask)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint saves: everything that changes during training and matters to it or to
        run.json (tensors, and JSON values in dicts, lists and tuples)."""
        return {}

    def load_state_dict(self, state: dict[str, Any], model: torch.nn.Module) -> None:
        """Restore ``state_dict()`` on resume. Called instead of ``setup``, with the checkpoint's
        weights already in ``model``: redoing setup (RAM's Fisher pass) would cost time and could
        move the RNG, so a hook rebuilds here only what needs no data (e.g. its parameter list)."""


@dataclass
class MethodConfig:
    """Hyper-parameters of a method; subclasses add fields whose defaults are the paper presets."""


@dataclass
class RegularisedConfig(MethodConfig):
    """Config of a method with a perturbation or regulariser: adds the diagnostic's sampling rate.

    ``diag_every``: every N-th step the regulariser-alive diagnostic runs one extra dropout-only
    forward pass under ``no_grad`` (RNG state saved and restored, so training is unchanged);
    0 turns it off. The per-epoch means of the loss terms are always recorded.
    """

    diag_every: int = 10


class Method(TrainingHook):
    name: ClassVar[str] = "base"
    kind: ClassVar[str] = "method"
    Config: ClassVar[type[MethodConfig]] = MethodConfig
    # Forward/backward passes per step relative to vanilla's 1F+1B (each method's docstring derives its count from the released code's loop).
    passes: ClassVar[str] = "1F+1B"
    # Named presets: {"paper": {...}, "small": {...}}; the dataclass defaults are the paper preset.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, config: MethodConfig | None = None) -> None:
        self.config = config if config is not None else self.Config()
        self.terms = TermMeans(getattr(self.config, "diag_every", 0))

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of one batch (single-backward methods override this)."""
        raise TypeError(f"method {self.name!r} must override loss() or training_step()")

    def training_step(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], accelerator: Any) -> float:
        """Forward and backward passes of one step; returns the loss for logging."""
        loss = self.loss(model, batch)
        accelerator.backward(loss)
        return loss.detach()  # stays on the device: the trainer reads it only at log points

    def extra_hooks(self) -> list[TrainingHook]:
        """Hooks the trainer runs beside this method (RAM: its selective-training mask)."""
        return []

    def epoch_diagnostics(self) -> dict[str, Any]:
        """Per-epoch means of the loss terms and the regulariser-alive ratio (see ``diagnostics``)."""
        return self.terms.flush()

    def state_dict(self) -> dict[str, Any]:
        """The loss-term sums of the epoch in progress and the ``last_*`` numbers ``state()`` reports."""
        last = {k: float(v) if torch.is_tensor(v) else v for k, v in vars(self).items()
                if k.startswith("last_") and (isinstance(v, int | float) or (torch.is_tensor(v) and v.dim() == 0))}
        return {"terms": self.terms.state_dict(), "last": last}

    def load_state_dict(self, state: dict[str, Any], model: torch.nn.Module) -> None:
        self.terms.load_state_dict(state["terms"])
        for key, value in state["last"].items():
            setattr(self, key, value)


def _as_float(value: Any) -> float | None:
    """A recorded scalar as a Python float (methods keep per-step scalars on the device)."""
    return None if value is None else float(value)


METHODS: Registry[type[Method]] = Registry("method")


def register_method(name: str, *, aliases: tuple[str, ...] = ()):
    def decorator(cls: type[Method]) -> type[Method]:
        cls.name = name
        return METHODS.register(name, aliases=aliases)(cls)

    return decorator


def build_method(name: str, overrides: dict[str, Any] | None = None, preset: str | None = None) -> Method:
    cls = METHODS.get(name)
    return cls(make_config(cls, overrides, preset))


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """``["adv_eps=0.05", "k=3"]`` -> ``{"adv_eps": "0.05", "k": "3"}``."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


# ---- tuning grids: a method's tune_grid and a task's tuning: section, checked as --set values are


def _field_types(cls) -> dict[str, str]:
    return {f.name: (f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type)))
            for f in dataclasses.fields(cls.Config)}


def coerce_value(cls, key: str, value: Any, where: str) -> Any:
    """One grid value, typed as the trainer (``lr``) or the method's Config field wants it."""
    if isinstance(value, dict | list | tuple | set) or value is None:
        raise ConfigError(f"{where}: {key} value {value!r} is not a single number, true/false or name")
    if key == "lr":
        try:
            lr = float(value) if not isinstance(value, bool) else float("nan")
        except ValueError:
            lr = float("nan")
        if not (math.isfinite(lr) and lr > 0):
            raise ConfigError(f"{where}: lr value {value!r} is not a positive number")
        return lr

    try:
        config = make_config(cls, {key: value})  # unknown names and bad values fail here, as with --set
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    typed = getattr(config, key)
    kind = _field_types(cls).get(key)
    bad = ConfigError(f"{where}: {key} value {value!r} is not a valid {kind}")
    if kind == "float":
        if isinstance(typed, bool) or not isinstance(typed, int | float):
            raise bad
        return float(typed)
    if kind == "int":
        typed = int(typed) if isinstance(typed, float) and typed.is_integer() else typed
        if isinstance(typed, bool) or not isinstance(typed, int):
            raise bad
    if kind == "bool" and not isinstance(typed, bool):
        raise bad
    return typed


def check_grid(cls, grid: Any, where: str) -> dict[str, list[Any]]:
    """A grid ``{name: [values]}`` checked against ``lr`` and the method's Config fields, values typed,
    repeats dropped (order kept)."""
    if not isinstance(grid, dict):
        raise ConfigError(f"{where}: must map hyper-parameters to lists of values, e.g. {{lr: [1.0e-4, 2.0e-4]}}")
    fields = ["lr", *_field_types(cls)]
    out: dict[str, list[Any]] = {}
    for key, values in grid.items():
        if key not in fields:
            raise ConfigError(f"{where}: method {cls.name!r} has no hyper-parameter {key!r}; tune one of: "
                              f"{', '.join(fields)}")
        if not isinstance(values, list | tuple) or not values:
            raise ConfigError(f"{where}: {key} must be a non-empty list of values, e.g. {key}: [a, b]; got {values!r}")
        out[key] = list(dict.fromkeys(coerce_value(cls, key, v, where) for v in values))
    return out


def parse_task_tuning(raw: Any, path: Path | str) -> dict[str, Any]:
    """A task file's ``tuning:`` -> ``{"seeds": [..] | None, "grids": {method: grid}}`` (checked)."""
    if raw is None:
        return {"seeds": None, "grids": {}}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: key 'tuning': must be a mapping; e.g. tuning: {{ram: {{lr: [1.0e-4, 2.0e-4]}}, "
                          "seeds: [0]}")
    seeds = None
    grids: dict[str, dict[str, list[Any]]] = {}
    for key, value in raw.items():
        where = f"{path}: key 'tuning.{key}'"
        if key == "seeds":
            if not isinstance(value, list) or not value or not all(
                    isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= SEED_MAX for s in value):
                raise ConfigError(f"{where}: must be a non-empty list of seeds from 0 to {SEED_MAX}, e.g. seeds: [0]; "
                                  f"got {value!r}")
            seeds = list(dict.fromkeys(value))
            continue
        if not isinstance(key, str) or key not in METHODS:
            raise ConfigError(f"{where}: unknown method {key!r}; use seeds or one of: {', '.join(METHODS.names())}")
        cls = METHODS.get(key)
        grids[cls.name] = check_grid(cls, value, where)
    return {"seeds": seeds, "grids": grids}
