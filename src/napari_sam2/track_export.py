"""Write an automatic-tracking result: labels TIFF, lineage CSV, Cell Tracking Challenge folder, GEFF.

Every export goes to a temporary name and is renamed when complete, so a failed export leaves the
earlier file (or nothing). Replacing an earlier CTC or GEFF result is allowed only where the folder holds
nothing but such a result.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sam2_model.tracking import Lineage, TrackingResult, write_ctc, write_geff, write_track_table
from sam2_model.tracking.lineage import lineage_from_labels

from .export import save_labels_tiff

EXPORTS = ("labels", "tracks", "ctc", "geff")
SUFFIXES = {"labels": (".tif", ".tiff"), "tracks": (".csv",), "geff": (".geff",)}


def export_tracking(result: TrackingResult, what: str, path: Any, overwrite: bool = False) -> Path:
    """Write "labels" (TIFF (T, H, W)), "tracks" (CSV: track_id, begin, end, parent_id, end_reason),
    "ctc" (a Cell Tracking Challenge folder) or "geff" (a GEFF zarr folder); returns the path written.

    overwrite=True replaces an earlier CTC or GEFF result only: a folder holding anything else is refused
    (ValueError), never emptied.
    """
    if what not in EXPORTS:
        raise ValueError(f"what must be one of {EXPORTS}, got {what!r}")
    path = Path(path)
    if overwrite:
        check_replaceable(what, path)
    if not result.labels.any():
        raise ValueError("nothing is tracked yet: press 'Track all cells' first")
    if what == "labels":
        save_labels_tiff(result.labels, path)
    elif what == "tracks":
        write_track_table(path, lineage_with_every_label(result))
    elif what == "ctc":
        path, _ = write_ctc(path, result.labels, result.lineage, overwrite=overwrite)
    else:
        path = write_geff(path, result.labels, result.lineage, overwrite=overwrite)
    return Path(path)


def export_path(what: str, path: Any) -> str:
    """``path`` with the export's suffix (.tif, .csv, .geff) added when the name typed has none."""
    suffix = SUFFIXES.get(what)
    return str(path) if not suffix or str(path).lower().endswith(suffix) else str(path) + suffix[0]


def check_replaceable(what: str, path: Path) -> None:
    """Refuse (ValueError) to replace a folder that is not an earlier result of the same export."""
    if not path.exists():
        return
    if what == "ctc" and path.is_dir():
        others = [p.name for p in path.iterdir() if not re.fullmatch(r"mask\d+\.tif|res_track\.txt", p.name)]
        if others:
            raise ValueError(f"{path} holds other files ({', '.join(sorted(others)[:3])}...): choose an empty or "
                             "new folder for the CTC result")
    elif what == "geff" and not any((path / name).exists() for name in ("zarr.json", ".zgroup", ".zattrs")):
        raise ValueError(f"{path} exists and is not a GEFF (zarr) folder: choose a new name")


def lineage_with_every_label(result: TrackingResult) -> Lineage:
    """The lineage with a row for every id in the labels (ids painted by other tools get one, no parent)."""
    rows = {t.track_id: t for t in result.lineage.rows()}
    for t in lineage_from_labels(result.labels).rows():
        rows.setdefault(t.track_id, t)
    return Lineage(rows.values())
