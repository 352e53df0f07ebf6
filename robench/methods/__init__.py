"""Fine-tuning methods: one file each, registered by name (``@register_method``)."""

import importlib
import pkgutil

from robench.methods.base import METHODS, Method, MethodConfig, TrainingHook, build_method, register_method

# Import every sibling module so that its @register_method runs: adding a method = adding a file.
for _info in pkgutil.iter_modules(__path__):
    if _info.name not in {"base"}:
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["METHODS", "Method", "MethodConfig", "TrainingHook", "build_method", "register_method"]
