"""Official SAM 2 / 2.1 checkpoints: names, URLs, and a verified download into a cache (pooch).

The cache is ``$NAPARI_SAM2_CACHE`` or the platform's user cache (``pooch.os_cache("napari-sam2")``).
``$NAPARI_SAM2_CHECKPOINT_URL`` replaces Meta's base URL (a lab mirror). Offline, a download
fails at once and says where to put the file by hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Union

import pooch

CACHE_ENV = "NAPARI_SAM2_CACHE"
MIRROR_ENV = "NAPARI_SAM2_CHECKPOINT_URL"
CONNECT_TIMEOUT_S = 10.0

_SAM2_BASE = "https://dl.fbaipublicfiles.com/segment_anything_2/072824"
_SAM21_BASE = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One of Meta's released files."""

    name: str  # our preset name
    filename: str
    base_url: str
    sha256: Optional[str] = None  # None: not published; the strict state-dict load verifies the file

    @property
    def url(self) -> str:
        return f"{self.base_url}/{self.filename}"


OFFICIAL_CHECKPOINTS: Dict[str, OfficialCheckpoint] = {}
for _size in ("tiny", "small", "base_plus", "large"):
    for _prefix, _base in (("sam2", _SAM2_BASE), ("sam2.1", _SAM21_BASE)):
        _name = f"{_prefix}_hiera_{_size}"
        OFFICIAL_CHECKPOINTS[_name] = OfficialCheckpoint(_name, f"{_name}.pt", _base)
del _size, _prefix, _base, _name


class CheckpointDownloadError(RuntimeError):
    """A checkpoint could not be downloaded (offline, server error, or a corrupted transfer)."""


ProgressCallback = Callable[[int, int], None]


class _CallbackProgress:
    """The progress-bar protocol pooch's HTTPDownloader drives, forwarded to ``callback(done, total)``."""

    def __init__(self, callback: ProgressCallback) -> None:
        self.callback = callback
        self.total = 0
        self.done = 0

    def update(self, count: int) -> None:
        # pooch counts whole chunks (the last may overshoot), then resets and reports the total.
        done = self.done + count
        self.done = min(done, self.total) if self.total else done
        self.callback(self.done, self.total)

    def reset(self) -> None:
        pass  # keep the count monotonic for the caller's progress bar

    def close(self) -> None:
        pass


def official(name: str) -> OfficialCheckpoint:
    """The registry entry for preset ``name``; ValueError listing the known names otherwise."""
    try:
        return OFFICIAL_CHECKPOINTS[name]
    except KeyError:
        known = ", ".join(sorted(OFFICIAL_CHECKPOINTS))
        raise ValueError(f"no official checkpoint is called {name!r}; known: {known}") from None


def cache_dir() -> Path:
    """Where checkpoints are kept (created on first download)."""
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else Path(pooch.os_cache("napari-sam2"))


def checkpoint_path(name: str) -> Path:
    """Where the file for ``name`` lives in the cache (whether or not it is there yet)."""
    return cache_dir() / official(name).filename


def find_cached(name: str) -> Optional[Path]:
    """The cached file for ``name`` if present (downloaded, or put there by hand)."""
    path = checkpoint_path(name)
    return path if path.is_file() and path.stat().st_size > 0 else None


def download(
    name: str,
    progressbar: Union[bool, ProgressCallback] = False,
    base_url: Optional[str] = None,
) -> Path:
    """Return the cached checkpoint for ``name``, downloading and verifying it first if needed.

    progressbar: True for a terminal bar (tqdm), or ``callback(done_bytes, total_bytes)``.
    base_url: replaces Meta's URL directory (default: ``$NAPARI_SAM2_CHECKPOINT_URL`` if set).
    """
    entry = official(name)
    target = checkpoint_path(name)
    cached = find_cached(name)
    if cached is not None and entry.sha256 is None:
        return cached
    base = (base_url or os.environ.get(MIRROR_ENV) or entry.base_url).rstrip("/")
    url = f"{base}/{entry.filename}"
    bar: Union[bool, _CallbackProgress] = _CallbackProgress(progressbar) if callable(progressbar) else progressbar
    downloader = pooch.HTTPDownloader(progressbar=bar, chunk_size=1 << 20, timeout=CONNECT_TIMEOUT_S)
    known_hash = f"sha256:{entry.sha256}" if entry.sha256 else None
    try:
        path = pooch.retrieve(
            url, known_hash=known_hash, fname=entry.filename, path=target.parent, downloader=downloader
        )
    except ValueError as error:  # pooch's hash mismatch; the bad file was not kept
        raise CheckpointDownloadError(
            f"the download of {url} is corrupted ({error}); nothing was saved. Try again, or download the "
            f"file by hand and put it at {target}"
        ) from error
    except Exception as error:  # connection refused, DNS failure, timeout, HTTP error
        raise CheckpointDownloadError(
            f"could not download {url} ({type(error).__name__}: {error}). If this machine is offline, download "
            f"the file elsewhere and put it at {target} (or set {CACHE_ENV} to the folder that holds it)."
        ) from error
    return Path(path)
