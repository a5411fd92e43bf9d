"""Write an automatic-tracking result: labels TIFF, lineage CSV, Cell Tracking Challenge folder, GEFF.

Every export goes to a temporary name and is renamed when complete, so a failed export leaves the
earlier file (or nothing). Replacing an earlier CTC or GEFF result is allowed only where the folder holds
nothing but such a result.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from sam2_model.tracking import Lineage, TrackingResult, write_ctc, write_geff, write_track_table
from sam2_model.tracking.lineage import ConsistentLabels, consistent_labels

from .export import Calibration, Step, save_labels_tiff

#: (final path, write(to)): one output of a run, written to ``to`` (a staging name, or the final path itself)
Write = Tuple[Path, Callable[[Path], Any]]

EXPORTS = ("labels", "tracks", "ctc", "geff")
SUFFIXES = {"labels": (".tif", ".tiff"), "tracks": (".csv",), "geff": (".geff",)}


def export_tracking(result: TrackingResult, what: str, path: Any, overwrite: bool = False,
                    calibration: Optional[Calibration] = None) -> Path:
    """Write "labels" (TIFF (T, H, W)), "tracks" (CSV: track_id, begin, end, parent_id, end_reason, with a
    calibration also the frames' times: :func:`write_tracks_csv`), "ctc" (a Cell Tracking Challenge folder) or "geff"
    (a GEFF zarr folder); returns the path written.

    Every kind is written from the result made CTC-consistent (:func:`~sam2_model.tracking.lineage.consistent_labels`,
    as :func:`write_auto_outputs` does for the command line): a track whose cell was missed for a frame or two goes on
    under a new id whose parent is the piece before, in all four, so files exported from one result name the same
    tracks with the same ids (ids painted by other tools get rows too). ``result.labels`` is read a frame at a time
    (any stack indexable by frame: an array, or the masklets layer read in place,
    :meth:`.track_all.TrackAll.result` with ``lazy=True``): every kind takes memory of a few planes beyond it,
    whatever the number of frames (the labels TIFF too: :func:`.export.save_labels_tiff` writes the consistent labels
    a plane at a time, no copy of the stack). The labels must not change until this returns.
    ``calibration``: the image's pixel size, frame interval and origin, written into the GEFF's axes, the labels TIFF
    (an ImageJ hyperstack's calibration: :func:`.export.save_labels_tiff`) and the tracks CSV. overwrite=True replaces
    an earlier CTC or GEFF result only: a folder holding anything else is refused (ValueError), never emptied.

    A result of part of a movie (``napari_sam2.track_cells(..., frames=(first, last))``, ``result.first_frame`` =
    first) is written as ``napari-sam2 track --frames first-last`` writes it, so that ``napari-sam2 evaluate --frames
    first-last`` scores it: every file holds the range's frames numbered from 0 (the labels' index: frame 0 of the
    labels TIFF, ``mask000.tif``, the tracks table's begin / end and the GEFF's t are the movie's frame ``first``, as
    the Cell Tracking Challenge numbers a sequence), each track ending for the reason the lineage gives; a
    ``calibration`` is the movie's (its frame origin is moved to frame ``first``'s, :func:`calibration_from_frame`, so
    the tables' times and the GEFF's offset stay the movie's).
    """
    path = _checked(what, path, overwrite)
    first = int(getattr(result, "first_frame", 0) or 0)
    labels, lineage = consistent_labels(result.labels, result.lineage, first_frame=first)  # a plane at a time
    calibration = calibration_from_frame(calibration, first)
    if not any(len(ids) for ids in labels.ids):
        raise ValueError("nothing to export yet: press 'Track all cells' (or click objects and propagate) first")
    if what == "labels":
        save_labels_tiff(labels, path, calibration=calibration)  # a plane made and written at a time
    elif what == "tracks":
        write_tracks_csv(path, lineage, calibration)
    elif what == "ctc":
        path, _ = write_ctc(path, labels, lineage, overwrite=overwrite, consistent=True)
    else:
        path = write_geff(path, labels, lineage, overwrite=overwrite, **geff_calibration(calibration))
    return Path(path)


def calibration_from_frame(calibration: Optional[Calibration], first: int) -> Optional[Calibration]:
    """``calibration`` (of a whole movie) for outputs that hold its frames from ``first`` on numbered from 0: the frame
    origin moved to frame ``first``'s (origin + first * frame interval), so that their frame 0 lies where the movie's
    frame ``first`` does (a time, or a z where the frames are slices); as given for ``first`` 0 or None (the rule of
    ``napari-sam2 track --frames A-B``)."""
    if calibration is None or not first:
        return calibration
    t0, y0, x0 = calibration.origin
    return dataclasses.replace(calibration, origin=(t0 + first * calibration.frame_interval, y0, x0))


def geff_calibration(calibration: Optional[Calibration]) -> Dict[str, Any]:
    """:func:`write_geff`'s ``scale``, ``units`` and ``offset`` (t, y, x) from an image's calibration; {} without one.
    The offset is the calibration's origin. The frame step and origin are left out where the frames are a volume's
    slices (GEFF's t axis is time)."""
    if calibration is None:
        return {}
    origin = calibration.origin
    step, step_unit, start = ((None, None, None) if calibration.frames_through_z
                              else (calibration.frame_interval, calibration.time_unit, origin[0]))
    return {"scale": (step, *calibration.pixel_size),
            "units": (step_unit, calibration.length_unit, calibration.length_unit),
            "offset": (start, *origin[1:])}


def write_tracks_csv(path: Any, lineage: Lineage, calibration: Optional[Calibration] = None) -> Path:
    """The tracks CSV, one row per track: track_id, begin, end, parent_id, end_reason (begin and end: first and last
    frame, inclusive), written whole under a temporary name and renamed.

    Where ``calibration`` places the frames (:func:`frames_calibrated`), three columns follow for plotting: the first
    and last frame's time and its unit, ``begin_time, end_time, time_unit`` (origin + frame * interval), or
    ``begin_z, end_z, z_unit`` where the frames are a volume's slices. Without one: exactly
    :func:`sam2_model.tracking.write_track_table`'s file.
    """
    if calibration is None or not frames_calibrated(calibration):
        return write_track_table(path, lineage)
    step = "z" if calibration.frames_through_z else "time"
    start, interval, unit = calibration.origin[0], calibration.frame_interval, calibration.time_unit
    return write_track_table(path, lineage, ((f"begin_{step}", f"end_{step}", f"{step}_unit"),
                                             lambda t: (start + t.begin * interval, start + t.end * interval, unit)))


def frames_calibrated(calibration: Optional[Calibration]) -> bool:
    """Whether ``calibration`` gives the frames a time (or z) other than their index: a frame interval other than 1,
    a unit other than napari's "frame" / "pixel", or a start other than 0 (napari's uncalibrated image: no)."""
    return calibration is not None and (calibration.frame_interval != 1.0 or calibration.origin[0] != 0.0
                                        or calibration.time_unit not in ("frame", "pixel"))


def export_tracking_steps(result: Callable[[], TrackingResult], what: str, path: Any,
                          overwrite: bool = False, calibration: Optional[Calibration] = None) -> Iterator[Step]:
    """:func:`export_tracking` of ``result()`` as a generator for a worker thread (the Track all panel's exports).

    ``what`` and a folder that may not be replaced are checked now (ValueError, nothing started); ``result()`` (it
    reads every labels plane) and the writing run when the steps are asked for. Yields ("plan", 2, what, None),
    ("frame", 0, "read", None) once the result is read and ("written", 1, path, None) once the file or folder is in
    place whole. Stopped before that (cancelled) or failing, it writes nothing (an earlier result is kept).
    """
    return _tracking_steps(result, what, _checked(what, path, overwrite), overwrite, calibration)


def _checked(what: str, path: Any, overwrite: bool) -> Path:
    """``path`` as a Path once ``what`` is an export kind and, with ``overwrite``, what is there may be replaced
    (ValueError otherwise)."""
    if what not in EXPORTS:
        raise ValueError(f"what must be one of {EXPORTS}, got {what!r}")
    path = Path(path)
    if overwrite:
        check_replaceable(what, path)
    return path


def _tracking_steps(result: Callable[[], TrackingResult], what: str, path: Path, overwrite: bool,
                    calibration: Optional[Calibration]) -> Iterator[Step]:
    yield "plan", 2, what, None
    tracked = result()
    yield "frame", 0, "read", None
    written = export_tracking(tracked, what, path, overwrite, calibration)
    yield "written", 1, str(written), None


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


@dataclass(frozen=True)
class AutoOutputs:
    """Where the outputs of one automatic-tracking run go (``track --auto``, ``batch --auto``); None: not written."""

    labels: Optional[Path] = None  # (T, H, W) uint32 labels TIFF, one id per track
    tracks: Optional[Path] = None  # CSV, one row per track: track_id, begin, end, parent_id, end_reason (+ times)
    ctc: Optional[Path] = None  # Cell Tracking Challenge folder: mask%03d.tif + res_track.txt
    geff: Optional[Path] = None  # GEFF (zarr) lineage graph


def write_each(writes: Sequence[Write]) -> None:
    """Write every output straight to its final path (a caller whose folder is private until published)."""
    for final, write in writes:
        write(final)


def write_auto_outputs(labels: np.ndarray, lineage: Lineage, outputs: AutoOutputs,
                       write_labels: Optional[Callable[[ConsistentLabels, Path], Any]] = None,
                       write_all: Callable[[Sequence[Write]], None] = write_each,
                       calibration: Optional[Calibration] = None,
                       labels_axes: Optional[str] = None) -> Tuple[ConsistentLabels, Lineage]:
    """Write the outputs of an automatic-tracking run, all from one form of the result; returns that form.

    The rule: every output holds the result made CTC-consistent once
    (:func:`~sam2_model.tracking.lineage.consistent_labels`: a track with gaps is cut into pieces, each later piece a
    new id whose parent is the piece before), whether or not a CTC folder is asked for, so the labels, the tracks
    table, the GEFF graph and the CTC folder of one run name the same tracks with the same ids. labels: (T, H, W) track
    ids as tracked (read a frame at a time: no copy of the stack is made here; it must not change until the outputs
    are written); lineage: their tracks. ``write_labels(labels, path)`` writes the labels, given as a
    :class:`~sam2_model.tracking.lineage.ConsistentLabels` (``labels[t]``: one uint32 plane; ``np.asarray``: the whole
    stack) (default: a TIFF with ``calibration`` and axis letters ``labels_axes``, e.g. "TYX", "ZYX"; None:
    the TIFF's default axes; :func:`.export.save_labels_tiff`, a plane at a time: no copy of the stack); ``write_all`` writes the list of (final path, write) pairs (default: each in turn; the
    command line passes its all-or-nothing writer); ``calibration``: the stack's
    pixel size and frame interval and origin for the GEFF's axes, the tracks CSV's times (:func:`write_tracks_csv`)
    and the default labels TIFF (None: frames and pixels). Returns (labels, lineage) as written: the labels a
    :class:`~sam2_model.tracking.lineage.ConsistentLabels` over ``labels`` (e.g. for a per-object table of the same
    labels, read a frame at a time).
    """
    labels, lineage = consistent_labels(labels, lineage)  # the one pass; the writers below take it as it is
    labels_writer = write_labels or (lambda stack, to: save_labels_tiff(stack, to, labels_axes, calibration))
    writes: List[Write] = []
    if outputs.labels is not None:
        writes.append((Path(outputs.labels), lambda to: labels_writer(labels, to)))
    if outputs.tracks is not None:
        writes.append((Path(outputs.tracks), lambda to: write_tracks_csv(to, lineage, calibration)))
    if outputs.ctc is not None:
        writes.append((Path(outputs.ctc), lambda to: write_ctc(to, labels, lineage, consistent=True)))
    if outputs.geff is not None:
        writes.append((Path(outputs.geff), lambda to: write_geff(to, labels, lineage, **geff_calibration(calibration))))
    write_all(writes)
    return labels, lineage
