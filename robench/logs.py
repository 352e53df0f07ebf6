"""Library chatter: TextAttack's and transformers' info messages are silenced unless ``--verbose``
(or ``ROBENCH_VERBOSE=1``).

TextAttack configures its own logger (``textattack.shared.utils.install``, level INFO, own
handler) when it is imported, so :func:`apply` runs again right after robench imports it.
"""

from __future__ import annotations

import logging
import os

_ENV = "ROBENCH_VERBOSE"
LIBRARY_LOGGERS = ("textattack", "textattack.shared.utils.install", "transformers", "datasets", "accelerate",
                   "flair", "nlpaug")


def verbose() -> bool:
    return os.environ.get(_ENV, "").lower() in {"1", "true", "on", "yes"}


def quiet_libraries(quiet: bool = True) -> None:
    """Silence (or, ``quiet=False``, restore) the libraries' info messages for this process."""
    os.environ[_ENV] = "0" if quiet else "1"
    apply()


def apply() -> None:
    level = logging.INFO if verbose() else logging.WARNING
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(level)  # warnings stay visible; info chatter only with --verbose
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
