"""Make TextAttack importable without the network.

TextAttack's first import runs ``nltk.download`` for half a dozen packages and then fails on
missing stop words. robench prepares, before textattack is imported:

* its own NLTK data folder (``<cache>/nltk_data``) holding an English stop-word list and a
  copy of the Debian WordNet files plus the ``lexnames`` table NLTK needs, and points
  ``NLTK_DATA`` / ``nltk.data.path`` at it;
* TextAttack's cache folder (``<cache>/textattack``) with the ``post_install_check_3`` marker,
  so that its post-install downloads never run.

The cache root is ``~/.cache/robench``, or ``$ROBENCH_CACHE``. Nothing here downloads anything.
Setting ``TA_CACHE_DIR`` makes textattack rewrite ``HF_HOME`` and other cache variables inside
the process; robench restores them after the import.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from robench.errors import AssetMissingError
from robench.split_asset import cache_root
from robench.storage import atomic_write, atomic_write_text

TA_MARKER = "post_install_check_3"
WORDNET_FIX = "apt-get install wordnet-base wordnet-sense-index"
WORDNET_FILES = [
    "adj.exc", "adv.exc", "cntlist", "cntlist.rev", "data.adj", "data.adv", "data.noun", "data.verb",
    "index.adj", "index.adv", "index.noun", "index.sense", "index.verb", "noun.exc", "verb.exc",
]
# The WordNet 3.0 lexicographer file table (lexnames(5WN)): number, name, syntactic category.
LEXNAMES = [
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1), ("noun.animal", 1),
    ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1), ("noun.cognition", 1),
    ("noun.communication", 1), ("noun.event", 1), ("noun.feeling", 1), ("noun.food", 1), ("noun.group", 1),
    ("noun.location", 1), ("noun.motive", 1), ("noun.object", 1), ("noun.person", 1), ("noun.phenomenon", 1),
    ("noun.plant", 1), ("noun.possession", 1), ("noun.process", 1), ("noun.quantity", 1), ("noun.relation", 1),
    ("noun.shape", 1), ("noun.state", 1), ("noun.substance", 1), ("noun.time", 1), ("verb.body", 2),
    ("verb.change", 2), ("verb.cognition", 2), ("verb.communication", 2), ("verb.competition", 2),
    ("verb.consumption", 2), ("verb.contact", 2), ("verb.creation", 2), ("verb.emotion", 2), ("verb.motion", 2),
    ("verb.perception", 2), ("verb.possession", 2), ("verb.social", 2), ("verb.stative", 2), ("verb.weather", 2),
    ("adj.ppl", 3),
]
_TA_ENV = ("TFHUB_CACHE_DIR", "PYTORCH_TRANSFORMERS_CACHE", "HF_HOME", "XDG_CACHE_HOME")


def nltk_data_dir() -> Path:
    return cache_root() / "nltk_data"


def _prepare_stopwords(root: Path) -> None:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    target = root / "corpora" / "stopwords" / "english"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, "\n".join(sorted(ENGLISH_STOP_WORDS)) + "\n")


def wordnet_source() -> Path:
    """The system WordNet folder; raises AssetMissingError with the one-line fix if incomplete."""
    from robench import assets

    try:
        src = assets.asset_dir("wordnet")
    except AssetMissingError:
        raise AssetMissingError(f"WordNet is not installed; {WORDNET_FIX}") from None
    missing = [f for f in WORDNET_FILES if not (src / f).is_file()]
    if missing:
        raise AssetMissingError(f"WordNet is incomplete ({src}/{missing[0]} missing); {WORDNET_FIX}")
    return src


def prepare_wordnet() -> Path:
    """Copy WordNet into robench's NLTK folder (NLTK refuses symlinks out of its root); write lexnames."""
    src = wordnet_source()
    target = nltk_data_dir() / "corpora" / "wordnet"
    done = target / ".robench-complete"
    if done.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in WORDNET_FILES:
        with open(src / name, "rb") as source:
            atomic_write(target / name, lambda fh, source=source: shutil.copyfileobj(source, fh))
    lexnames = "".join(f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(LEXNAMES))
    atomic_write_text(target / "lexnames", lexnames)
    atomic_write_text(done, "copied from " + str(src) + "\n")
    return target


def prepare_nltk(wordnet: bool = False) -> Path:
    """robench's NLTK data folder with stop words (and WordNet when asked); on NLTK's search path."""
    root = nltk_data_dir()
    _prepare_stopwords(root)
    if wordnet:
        prepare_wordnet()
    else:
        try:
            prepare_wordnet()
        except AssetMissingError:
            pass  # only PWWS needs it; it checks again and names the fix
    paths = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    if str(root) not in paths:
        os.environ["NLTK_DATA"] = os.pathsep.join([str(root), *paths])
    if "nltk" in sys.modules:
        import nltk

        if str(root) not in nltk.data.path:
            nltk.data.path.insert(0, str(root))
    return root


def prepare_textattack_cache() -> Path:
    """TextAttack's cache folder with the post-install marker (its downloads then never run)."""
    ta_dir = Path(os.environ.get("TA_CACHE_DIR") or cache_root() / "textattack")
    ta_dir.mkdir(parents=True, exist_ok=True)
    marker = ta_dir / TA_MARKER
    if not marker.exists():
        marker.touch()
    os.environ["TA_CACHE_DIR"] = str(ta_dir)
    return ta_dir


def import_textattack():
    """Import textattack offline (prepares the NLTK folder and cache marker first); returns the module."""
    if "textattack" in sys.modules:
        prepare_nltk()
        return sys.modules["textattack"]
    prepare_nltk()
    # Import the HF libraries first, so that their cache paths are read before textattack rewrites them.
    import datasets  # noqa: F401
    import transformers  # noqa: F401

    saved = {k: os.environ.get(k) for k in _TA_ENV}
    prepare_textattack_cache()
    tokenizers = os.environ.get("TOKENIZERS_PARALLELISM")
    try:
        import textattack
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if tokenizers is not None:
            os.environ["TOKENIZERS_PARALLELISM"] = tokenizers
    import logging

    import nltk

    logging.getLogger("textattack").setLevel(logging.WARNING)
    from robench.logs import apply

    apply()  # TextAttack sets its own logger to INFO on import; keep it quiet unless --verbose
    root = str(nltk_data_dir())
    if root not in nltk.data.path:
        nltk.data.path.insert(0, root)
    return textattack
