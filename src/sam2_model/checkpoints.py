"""Meta's official SAM 2 / 2.1 checkpoints: names, URLs, hashes, and a verified download (pooch).

Files are kept in ``$NAPARI_SAM2_CACHE`` if set, else in the platform's user cache
(``pooch.os_cache("napari-sam2")``). ``$NAPARI_SAM2_CHECKPOINT_URL`` (or ``download(base_url=...)``)
replaces Meta's URL directory, e.g. with a lab mirror; the file must still hash to the official
value. Every official file is a ``torch.save``-d ``{"model": state_dict}``.

Downloads go to a temporary file in the cache folder that is moved into place only after its
SHA-256 matched, so an interrupted or corrupted transfer never leaves a file under the
checkpoint's name. Offline, a download fails within seconds with a message naming the URL and
the exact path where the file can be put by hand.

Hashes: Meta publishes no checksums (``checkpoints/download_ckpts.sh`` only has URLs). The
SHA-256 values below are those that other projects pin *and verify on download* for these exact
URLs: all eight in computational-cell-analytics/micro-sam ``micro_sam/v2/util.py`` (``HASHES``,
checked by ``pooch.retrieve``; commit 275b20eb), the four SAM 2.0 ones also in
mazurowski-lab/SlicerSegmentWithSAM ``SegmentWithSAM/SegmentWithSAM.py`` (checked by Slicer's
``downloadFileIntoCache``); other projects pin the same values, some citing the Hugging Face LFS
pointers of ``facebook/sam2.1-hiera-tiny`` / ``-small``. IOPaint (``iopaint/plugins/interactive_seg.py``)
independently pins MD5s for the same eight URLs. Sizes are the byte counts several projects check
(e.g. segment-anything-models-java/SAMJ ``Sam2EnvManager.java``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Union

import pooch

CACHE_ENV = "NAPARI_SAM2_CACHE"
MIRROR_ENV = "NAPARI_SAM2_CHECKPOINT_URL"
#: requests timeouts in seconds: (connecting, waiting for the next bytes). Offline fails fast.
TIMEOUT_S = (5.0, 60.0)

_SAM2_BASE = "https://dl.fbaipublicfiles.com/segment_anything_2/072824"
_SAM21_BASE = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class OfficialCheckpoint:
    """One of Meta's released checkpoint files."""

    name: str  # our preset name (as in sam2_model.list_models())
    filename: str
    base_url: str
    sha256: Optional[str]  # None: no known hash; then the size and the strict state-dict load check the file
    size: Optional[int] = None  # bytes

    @property
    def url(self) -> str:
        return f"{self.base_url}/{self.filename}"


#: (preset name, base URL, SHA-256, bytes); the file name is ``<preset name>.pt``.
_RELEASED = (
    ("sam2_hiera_tiny", _SAM2_BASE, "65b50056e05bcb13694174f51bb6da89c894b57b75ccdf0ba6352c597c5d1125", 155906050),
    ("sam2_hiera_small", _SAM2_BASE, "95949964d4e548409021d47b22712d5f1abf2564cc0c3c765ba599a24ac7dce3", 184309650),
    ("sam2_hiera_base_plus", _SAM2_BASE, "d0bb7f236400a49669ffdd1be617959a8b1d1065081789d7bbff88eded3a8071", 323493298),
    ("sam2_hiera_large", _SAM2_BASE, "7442e4e9b732a508f80e141e7c2913437a3610ee0c77381a66658c3a445df87b", 897952466),
    ("sam2.1_hiera_tiny", _SAM21_BASE, "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69", 156008466),
    ("sam2.1_hiera_small", _SAM21_BASE, "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38", 184416285),
    ("sam2.1_hiera_base_plus", _SAM21_BASE, "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5", 323606802),
    ("sam2.1_hiera_large", _SAM21_BASE, "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318", 898083611),
)
OFFICIAL_CHECKPOINTS: Dict[str, OfficialCheckpoint] = {
    name: OfficialCheckpoint(name, f"{name}.pt", base, sha256, size) for name, base, sha256, size in _RELEASED
}


class CheckpointDownloadError(RuntimeError):
    """A checkpoint could not be downloaded: offline, server error, or a corrupted transfer."""


class _CallbackProgress:
    """The progress-bar object pooch's HTTPDownloader drives, forwarded to ``callback(done, total)``.

    pooch sets ``total`` (the Content-Length, 0 if unknown), calls ``update(chunk_size)`` per chunk
    (the last chunk overshoots), then ``reset()``, ``update(total)`` and ``close()``. The callback
    sees non-decreasing byte counts, clamped to the total, ending at ``(total, total)``.
    """

    def __init__(self, callback: ProgressCallback, expected_total: Optional[int] = None) -> None:
        self.callback = callback
        self._expected = expected_total or 0
        self._total = self._expected
        self.done = 0

    @property
    def total(self) -> int:
        return self._total

    @total.setter
    def total(self, value: int) -> None:
        self._total = int(value) or self._expected

    def update(self, count: int) -> None:
        done = self.done + int(count)
        self.done = min(done, self._total) if self._total else done
        self.callback(self.done, self._total)

    def reset(self) -> None:
        pass  # pooch resets before reporting the total; keep the count monotonic

    def close(self) -> None:
        if self._total and self.done < self._total:
            self.update(self._total - self.done)


def official(name: str) -> OfficialCheckpoint:
    """The registry entry for preset ``name``; ValueError listing the known names otherwise."""
    try:
        return OFFICIAL_CHECKPOINTS[name]
    except KeyError:
        known = ", ".join(sorted(OFFICIAL_CHECKPOINTS))
        raise ValueError(f"no official checkpoint is called {name!r}; known: {known}") from None


def cache_dir() -> Path:
    """Where checkpoints are kept (created by the first download)."""
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else Path(pooch.os_cache("napari-sam2"))


def checkpoint_path(name: str) -> Path:
    """Where the file for ``name`` lives in the cache, whether or not it is there yet."""
    return cache_dir() / official(name).filename


def find_cached(name: str) -> Optional[Path]:
    """The cached file for ``name`` if present (downloaded, or put there by hand), else None."""
    path = checkpoint_path(name)
    return path if path.is_file() and path.stat().st_size > 0 else None


def in_cache(path: Union[str, Path]) -> bool:
    """Whether ``path`` lies in the download cache (:func:`cache_dir`), where :func:`download` puts files."""
    try:
        return Path(path).expanduser().resolve().parent == cache_dir().expanduser().resolve()
    except OSError:
        return False


def file_matches(name: str, path: Union[str, Path, None] = None) -> bool:
    """Whether ``path`` (default: the cached file) is byte-identical to the official file.

    Reads the whole file (about 1 s per 300 MB). With no known hash, compares the size only.
    """
    entry = official(name)
    path = Path(path) if path is not None else checkpoint_path(name)
    if not path.is_file():
        return False
    if entry.sha256 is None:
        return entry.size is None or path.stat().st_size == entry.size
    return pooch.file_hash(str(path), alg="sha256") == entry.sha256


def download(
    name: str,
    progressbar: Union[bool, ProgressCallback] = False,
    base_url: Optional[str] = None,
) -> Path:
    """Return the cached checkpoint for ``name``, downloading and verifying it first if it is missing.

    A file already in the cache is returned as is (not re-hashed; see :func:`file_matches`).
    progressbar: True for a terminal bar (tqdm), or a callable ``progress(done_bytes, total_bytes)``;
        it may raise to cancel the download (the exception propagates, nothing is left behind).
    base_url: replaces Meta's URL directory (default: ``$NAPARI_SAM2_CHECKPOINT_URL`` if set).

    Raises CheckpointDownloadError when the server cannot be reached or answers with an error,
    or when the downloaded bytes are not the official file.
    """
    entry = official(name)
    target = checkpoint_path(name)
    cached = find_cached(name)
    if cached is not None:
        return cached

    base = (base_url or os.environ.get(MIRROR_ENV) or entry.base_url).rstrip("/")
    url = f"{base}/{entry.filename}"
    by_hand = f"download {url}" + (f" (or {entry.url})" if url != entry.url else "")
    by_hand += f" on a machine with internet access and put it at {target}"

    bar: Union[bool, _CallbackProgress]
    bar = _CallbackProgress(progressbar, entry.size) if callable(progressbar) else bool(progressbar)
    downloader = pooch.HTTPDownloader(progressbar=bar, chunk_size=1 << 20, timeout=TIMEOUT_S)
    known_hash = f"sha256:{entry.sha256}" if entry.sha256 else None

    import requests  # pooch's HTTP client

    try:
        path = Path(pooch.retrieve(url, known_hash, fname=entry.filename, path=target.parent, downloader=downloader))
    except ValueError as error:  # pooch's hash mismatch; its temporary file is already deleted
        raise CheckpointDownloadError(
            f"the file downloaded from {url} is not the official {entry.filename} ({error}). Nothing was saved. "
            f"Try again (a proxy or a broken connection can corrupt a transfer), or {by_hand}."
        ) from error
    except requests.RequestException as error:  # refused, DNS failure, timeout, HTTP error status
        raise CheckpointDownloadError(
            f"could not download {url} ({type(error).__name__}: {error}). If this computer is offline, "
            f"{by_hand} (or set {CACHE_ENV} to the folder that holds it)."
        ) from error
    except OSError as error:  # the cache folder cannot be created or written
        raise CheckpointDownloadError(
            f"could not write {target} ({error}); set {CACHE_ENV} to a writable folder"
        ) from error

    if entry.sha256 is None and entry.size is not None and path.stat().st_size != entry.size:
        got = path.stat().st_size
        path.unlink()
        raise CheckpointDownloadError(
            f"the file downloaded from {url} has {got} bytes, the official {entry.filename} has "
            f"{entry.size}. Nothing was saved. Try again, or {by_hand}."
        )
    return path
