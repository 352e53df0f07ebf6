"""User-facing errors: the CLI prints them as one line and exits non-zero, without a traceback."""


class RobenchError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


class ConfigError(RobenchError):
    """A task file, option or setting is invalid."""


class AssetMissingError(RobenchError):
    """A packaged asset (model, data, vectors, WordNet) is not installed."""


class OfflineError(RobenchError):
    """Something needs the network and the network is unreachable."""


class AssetCorruptError(AssetMissingError):
    """A packaged asset is installed but fails its integrity check (reinstalling it fixes it)."""


# Limits every command checks at the edge (one line, not a traceback from deep inside a library).
SEED_MAX = 2**32 - 1  # numpy's seed range (accelerate's set_seed seeds numpy too)
