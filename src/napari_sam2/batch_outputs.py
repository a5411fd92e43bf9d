"""A stack's outputs in a batch run: written in a private folder, published by one rename.

Layout of an output folder ``OUT``::

    OUT/summary.csv            one row per stack (see napari_sam2.batch)
    OUT/<name>/manifest.json   written last: the stack, the settings and the files below
    OUT/<name>/labels.tif      (T, Y, X) uint32 labels, or labels.ome.zarr/ for large stacks
    OUT/<name>/objects.csv     one row per object and frame (area, centroid, bbox, intensity, score)
    OUT/.partial/              stacks being written (never a finished-looking name)

A task writes everything into ``OUT/.partial/<name>-<token>/``, writes the manifest last and then
renames the folder to ``OUT/<name>``. A worker killed at any point therefore leaves either nothing
under ``OUT/<name>`` or the previous complete result; the rename is atomic on one file system.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

MANIFEST = "manifest.json"
PARTIAL = ".partial"
MANIFEST_VERSION = 1
# Labels larger than this (bytes of uint32) go to OME-Zarr, written plane by plane, instead of one
# in-memory TIFF. 2 GiB keeps a worker's peak memory well below common per-worker limits (4-16 GiB).
ZARR_ABOVE_BYTES = 2 * 1024**3


def labels_nbytes(shape: Sequence[int]) -> int:
    """Bytes of a uint32 labels array of ``shape``."""
    return int(np.prod([int(n) for n in shape], dtype=np.int64)) * 4


def new_partial_dir(out: Path, name: str) -> Path:
    """A fresh private folder for one attempt at stack ``name`` (unique per attempt)."""
    folder = Path(out) / PARTIAL / f"{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return folder


def create_zarr_labels(folder: Path, shape: Tuple[int, int, int], frame_axis: str = "t") -> Any:
    """An OME-Zarr (NGFF 0.4, zarr format 2) group ``folder`` with a uint32 (T, Y, X) array "0" (frame_axis "t"), or
    (Z, Y, X) for frames through z ("z": the first axis is then space, as OME-Zarr viewers should show it).

    Returns the array; chunks are one frame (at most 1024 x 1024), so each written plane is whole.
    """
    import zarr

    group = zarr.open_group(str(folder), mode="w", zarr_format=2)
    chunks = (1, min(int(shape[1]), 1024), min(int(shape[2]), 1024))
    array = group.create_array("0", shape=tuple(int(n) for n in shape), chunks=chunks, dtype="uint32", fill_value=0)
    group.attrs["multiscales"] = [{
        "version": "0.4",
        "name": "labels",
        "axes": [{"name": "z", "type": "space"} if frame_axis == "z" else {"name": "t", "type": "time"},
                 {"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]}],
    }]
    return array


def write_labels_tiff(labels: np.ndarray, path: Path, frame_axis: str = "t") -> None:
    """(T, Y, X) labels as a zlib-compressed TIFF (BigTIFF when over 2 GiB): :func:`.export.save_labels_tiff`, its axes
    recorded as TYX, or ZYX for frames through z (``frame_axis`` "z"), as the OME-Zarr labels name them."""
    from .export import save_labels_tiff

    save_labels_tiff(labels, path, f"{frame_axis.upper()}YX")


def write_manifest(folder: Path, record: Dict[str, Any]) -> None:
    """Write ``folder/manifest.json`` (last step before publishing); ``record["outputs"]`` must exist."""
    missing = [name for name in record.get("outputs", []) if not (folder / name).exists()]
    if missing:
        raise RuntimeError(f"refusing to write the manifest: outputs {missing} are missing in {folder}")
    payload = dict(record, version=MANIFEST_VERSION)
    scratch = folder / (MANIFEST + ".tmp")
    scratch.write_text(json.dumps(payload, indent=1, default=str))
    scratch.replace(folder / MANIFEST)


def read_manifest(folder: Path) -> Optional[Dict[str, Any]]:
    """The manifest of a published stack folder if it is complete (manifest and every output present)."""
    path = Path(folder) / MANIFEST
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    outputs = record.get("outputs")
    if not isinstance(outputs, list) or not outputs or record.get("version") != MANIFEST_VERSION:
        return None
    if not all((Path(folder) / name).exists() for name in outputs):
        return None
    return record


def publish(partial: Path, final: Path) -> None:
    """Move a finished private folder to its final name, replacing an earlier result.

    The old folder is first moved aside (so ``final`` never holds a mix) and deleted afterwards.
    """
    final = Path(final)
    aside: Optional[Path] = None
    if final.exists():
        aside = partial.parent / f"{partial.name}-replaced"
        final.rename(aside)
    partial.rename(final)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def discard(folder: Optional[Path]) -> None:
    """Delete a private folder of a failed attempt (missing is fine)."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def clean_partials(out: Path, names: Sequence[str]) -> List[Path]:
    """Delete leftovers of earlier killed attempts at ``names``; returns what was deleted.

    Only call this before submitting those stacks: one batch run per output folder at a time.
    """
    root = Path(out) / PARTIAL
    if not root.is_dir():
        return []
    wanted = set(names)
    removed = []
    for entry in root.iterdir():
        owner = entry.name.rsplit("-", 2)[0]  # "<name>-<pid>-<token>"
        if owner in wanted or entry.name.endswith("-replaced"):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def remove_partial_root(out: Path) -> None:
    """Remove ``OUT/.partial`` when it is empty (nothing in flight)."""
    try:
        (Path(out) / PARTIAL).rmdir()
    except OSError:
        pass
