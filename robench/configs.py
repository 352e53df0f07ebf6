"""The one way robench builds anything configurable from defaults, a preset and given values.

A method, a training hook or an evaluator declares a ``Config`` dataclass: its fields are the
options, with their defaults; a field's metadata (:func:`option`) may say what a good value is, with
a test, an example and a further check; ``__post_init__`` checks what involves several fields.
:func:`make_config` builds it (``--set`` strings are typed on the way), and :func:`option_problem`
names what is wrong with one value, so a task file's ``evaluators:`` options, the CLI and the Python
API are checked by the same code. Imports nothing from robench but the errors and the number check.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from robench.errors import ConfigError
from robench.records import is_number


def whole(minimum: int | None = None, *, none: bool = False) -> Callable[[Any], bool]:
    """A whole number (bools are not), at least ``minimum``; with ``none``, None too."""
    return lambda v: (none and v is None) or (isinstance(v, int) and not isinstance(v, bool)
                                               and (minimum is None or v >= minimum))


def number(v: Any) -> bool:
    """A finite real number (bools are not)."""
    return is_number(v, finite=True)


def names(v: Any) -> bool:
    """A name or a non-empty list of names."""
    return isinstance(v, str) or (isinstance(v, list | tuple) and bool(v) and all(isinstance(x, str) for x in v))


def name_list(v: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"a, b"`` or ``["a", "b"]`` -> ``["a", "b"]``."""
    return [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else list(v)


def option(what: str, test: Callable[[Any], bool], example: str,
           further: Callable[[Any], str | None] | None = None) -> dict[str, Any]:
    """Field metadata for an option: ``test(value)`` must hold (else "must be {what}", with ``example``);
    ``further(value)`` may then name a problem (an unknown recipe name...)."""
    return {"what": what, "test": test, "example": example, "further": further}


def option_problem(config_cls: type, name: str, value: Any) -> tuple[str, str] | None:
    """(problem, fix) for one option value of ``config_cls``, or None when the option takes it."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    if name not in fields:
        known = ", ".join(sorted(fields)) or "none"
        return "unknown option", f"it accepts: {known}"
    meta = fields[name].metadata
    if "test" in meta:
        if not meta["test"](value):
            return f"must be {meta['what']}, got {value!r}", f"e.g. {meta['example']}"
        problem = meta["further"](value) if meta["further"] else None
        if problem:
            return problem, "fix the value"
    return None


def _coerce(field: dataclasses.Field, value: Any, owner: str) -> Any:
    if not isinstance(value, str):
        return value
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
    try:
        if kind in ("bool",):
            if value.lower() in {"1", "true", "yes", "on"}:
                return True
            if value.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if kind in ("int",):
            return int(value)
        if kind in ("float",):
            return float(value)
    except ValueError:
        raise ConfigError(f"{owner}: {field.name}={value!r} is not a valid {kind}") from None
    return value


def make_config(owner: Any, overrides: dict[str, Any] | None = None, preset: str | None = None) -> Any:
    """``owner.Config`` from its defaults, then the named preset, then explicit overrides.

    The one preset/override path for everything configurable: a method class, a training hook class
    or an evaluator class with ``name``, ``Config`` (a dataclass, which may validate in
    ``__post_init__``) and ``presets``. ``"paper"`` is always a valid preset (the dataclass defaults).
    """
    label = f"{getattr(owner, 'kind', 'method')} {owner.name!r}"
    fields = {f.name: f for f in dataclasses.fields(owner.Config)}
    presets: dict[str, dict[str, Any]] = getattr(owner, "presets", {})
    values: dict[str, Any] = {}
    if preset and preset in presets:
        values.update(presets[preset])
    elif preset and preset != "paper":
        known = ", ".join(dict.fromkeys(["paper", *presets]))
        raise ConfigError(f"{label} has no preset {preset!r}; choose one of: {known}")
    for key, value in (overrides or {}).items():
        if key not in fields:
            known = ", ".join(fields) or "(none)"
            raise ConfigError(f"{label} has no option {key!r}; its options: {known}"
                              if getattr(owner, "kind", "method") == "evaluator" else
                              f"{label} has no hyper-parameter {key!r}; its hyper-parameters: {known}")
        value = _coerce(fields[key], value, label)
        problem = option_problem(owner.Config, key, value)
        if problem:
            raise ConfigError(f"{label}: {key} {problem[0]} ({problem[1]})")
        values[key] = value
    return owner.Config(**values)
