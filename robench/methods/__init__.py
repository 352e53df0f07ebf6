"""Fine-tuning methods: one file each, registered by name (``@register_method``)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence

from robench.configs import name_list
from robench.errors import ConfigError
from robench.methods.base import METHODS, Method, MethodConfig, TrainingHook, build_method, register_method

# Import every sibling module so that its @register_method runs: adding a method = adding a file.
for _info in pkgutil.iter_modules(__path__):
    if _info.name not in {"base"}:
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["METHODS", "Method", "MethodConfig", "TrainingHook", "build_method", "register_method", "resolve_methods"]


def resolve_methods(methods: str | Sequence[str]) -> list[tuple[str, bool]]:
    """``"all"`` or a comma list (``vanilla,ram,r3f+selective``) -> [(method, selective)]."""
    from robench.identity import parse_method_label

    items = [m.strip() for m in name_list(methods) if m.strip()]
    if not items:
        raise ConfigError("empty --methods; give 'all' or method names separated by commas")
    out: list[tuple[str, bool]] = []
    for item in items:
        if item.lower() == "all":
            out.extend((name, False) for name in METHODS.names())
            continue
        name, selective = parse_method_label(item)
        out.append((METHODS.canonical(name), selective))
    return list(dict.fromkeys(out))
