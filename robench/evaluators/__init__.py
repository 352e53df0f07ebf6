"""Evaluators: one file per aspect, registered by name (``@register_evaluator``)."""

import importlib
import pkgutil

from robench.evaluators.base import (
    EVALUATORS,
    EvalOutput,
    Evaluator,
    register_evaluator,
    resolve_suite,
    suites,
)

# Import each evaluator module so that its @register_evaluator runs; this order is the suite order.
_ORDER = ["indist", "shift", "calibration", "anomaly", "adversarial", "perturb"]
_present = {i.name for i in pkgutil.iter_modules(__path__)} - {"base"}
for _name in [n for n in _ORDER if n in _present] + sorted(_present - set(_ORDER)):
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["EVALUATORS", "EvalOutput", "Evaluator", "register_evaluator", "resolve_suite", "suites"]
