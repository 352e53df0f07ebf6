"""Fast, quiet offline detection for Hugging Face hub access.

Without it, a hub lookup on a machine with no network retries for up to a minute and prints
several tracebacks before failing. We probe the hub once (a short TCP connect); when it is
unreachable we switch the HF libraries to their offline mode so only the local cache is used
and the failure comes at once, as one clear line from the caller.
"""

from __future__ import annotations

import os
import socket
import sys
from functools import lru_cache

HUB_HOST = "huggingface.co"


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 2.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return False
    try:
        socket.create_connection((HUB_HOST, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def use_cache_only_if_offline() -> bool:
    """Put datasets / transformers / huggingface_hub into offline mode if the hub is unreachable.

    Returns True when offline mode is on.
    """
    if hub_reachable():
        return False
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ[var] = "1"
    # The libraries read these variables at import; patch the already-imported copies too.
    if "huggingface_hub.constants" in sys.modules:
        sys.modules["huggingface_hub.constants"].HF_HUB_OFFLINE = True
    if "datasets.config" in sys.modules:
        sys.modules["datasets.config"].HF_HUB_OFFLINE = True
    if "transformers.utils.hub" in sys.modules:
        sys.modules["transformers.utils.hub"]._is_offline_mode = True
    return True
