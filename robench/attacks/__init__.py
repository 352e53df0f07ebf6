"""Adversarial attacks (TextAttack, offline-ready): recipes, model wrapper and a resumable runner.

Import ``robench.attacks.offline`` (or anything here) before ``textattack``: it prepares the NLTK
data and TextAttack cache marker that make textattack import without downloads.
"""

from robench.attacks.offline import cache_root, import_textattack

__all__ = ["cache_root", "import_textattack"]
