"""robench: robustness benchmark suite and leaderboard CLI for fine-tuned language models.

The Python API (``robench.api``; imported on first use, so ``import robench`` stays light):
``robench.evaluate(model_or_path, task=..., suite=...)``, ``robench.load_results(paths)`` and
``robench.leaderboard(results, ...)``. The Hugging Face Trainer callback is
``robench.integrations.RobustnessCallback``.
"""

from __future__ import annotations

from typing import Any

from robench._version import __version__

__all__ = ["__version__", "evaluate", "leaderboard", "load_results"]


def __getattr__(name: str) -> Any:
    if name in ("evaluate", "leaderboard", "load_results", "Results"):
        from robench import api

        return getattr(api, name)
    raise AttributeError(f"module 'robench' has no attribute {name!r}")
