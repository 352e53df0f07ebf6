"""The evaluator interface, the registry and suites.

An evaluator takes an :class:`EvalContext` (the run's model, its task data and a shared,
cached prediction pass) and returns an :class:`EvalOutput` of named metrics plus details.
It never trains and never writes result files itself: ``robench.evaluation`` does that.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from robench.configs import make_config, name_list
from robench.errors import ConfigError
from robench.registry import Registry
from robench.results import MetricSpec


@dataclass
class EvalOutput:
    metrics: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # set key -> {"size": n, "fingerprint": ...}
    settings: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)  # paths relative to the run directory


@dataclass
class NoOptions:
    """The options of an evaluator that takes none."""


class Evaluator(ABC):
    """An aspect of robustness. Subclasses DECLARE every numeric metric they write (``metrics``):
    direction, aspect, headline column, per-example outcomes. Result files carry these
    declarations, and the board, the tables and ``robench check`` read nothing else; a test
    fails when an evaluator writes a metric it has not declared. Bump ``version`` when the
    meaning of a metric changes. Options are the fields of its ``Config`` dataclass, checked there for
    task files, the CLI and the API alike (:func:`robench.configs.make_config`)."""

    name: ClassVar[str] = "base"
    description: ClassVar[str] = ""
    aspect: ClassVar[str] = ""  # in-distribution / shift / adversarial / perturbation / calibration / anomaly
    version: ClassVar[int] = 1
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    kind: ClassVar[str] = "evaluator"
    Config: ClassVar[type] = NoOptions

    def __init__(self, config: Any = None, **options: Any) -> None:
        if config is not None and options:
            raise TypeError("pass a Config or options, not both")
        self.config = config if config is not None else make_config(type(self), options)

    @abstractmethod
    def evaluate(self, ctx: Any) -> EvalOutput:  # ctx: robench.evaluation.EvalContext
        """Metrics of one run; ``ctx`` is a ``robench.evaluation.EvalContext``."""

    def settings_key(self) -> dict[str, Any]:
        """Options that change the result (a re-run with other options is not a cache hit)."""
        return dataclasses.asdict(self.config)


EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator")
# Suites: named lists of evaluators. "all" is every registered evaluator, in registration order.
QUICK: list[str] = []


def register_evaluator(name: str, *, quick: bool = True, aliases: tuple[str, ...] = ()):
    def decorator(cls: type[Evaluator]) -> type[Evaluator]:
        cls.name = name
        if quick:
            QUICK.append(name)
        return EVALUATORS.register(name, aliases=aliases)(cls)

    return decorator


def suites() -> dict[str, list[str]]:
    order = list(EVALUATORS._items)
    return {"all": order, "quick": [n for n in order if n in QUICK]}


def resolve_suite(spec: str) -> list[str]:
    """``all``, ``quick`` or a comma list of evaluator names -> evaluator names (deduplicated)."""
    named = suites()
    out: list[str] = []
    for part in name_list(spec):
        if part in named:
            names = named[part]
        elif part in EVALUATORS:
            names = [EVALUATORS.canonical(part)]
        else:
            known = ", ".join([*named, *EVALUATORS.names()])
            raise ConfigError(f"unknown suite or evaluator {part!r}; choose from: {known}")
        out.extend(n for n in names if n not in out)
    if not out:
        raise ConfigError("empty --suite; give a suite name (all, quick) or evaluator names separated by commas")
    return out


def artifact_dir(run_dir: Path) -> Path:
    path = Path(run_dir) / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return path
