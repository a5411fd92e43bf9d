"""Cell Tracking Challenge files: ``mask%03d.tif`` (uint16) per frame + ``res_track.txt`` (``L B E P`` rows).

:func:`write_ctc` makes the result CTC-consistent (:func:`.lineage.consistent_labels`, the one rule every output
follows, a plane at a time; importable from here too), checks it (:func:`.lineage.check_ctc`) and writes everything,
one frame in memory at a time, to a temporary folder next to the target that is renamed when complete, so a failed or
cancelled export leaves nothing half-written.
:func:`write_ctc_ground_truth` writes ground truth in the layout py-ctcmetrics reads
(``TRA/man_track.txt``, ``TRA/man_track%03d.tif``, ``SEG/man_seg%03d.tif``).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from dataclasses import replace
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tifffile
from scipy import ndimage

from ..atomic_files import publish_together, temporary_folder
from .lineage import ConsistentLabels, Lineage, Track, check_ctc, consistent_labels, lineage_from_labels


def _problems(labels: Any, lineage: Lineage) -> List[str]:
    """:func:`check_ctc` of ``labels``; of a :class:`ConsistentLabels`, from the ids it knows each frame holds (no
    plane is read: check_ctc reads only which ids each frame holds, and frame t of ``ids`` holds those ids)."""
    return check_ctc(labels.ids if isinstance(labels, ConsistentLabels) else labels, lineage)


def _write_files(folder: Path, labels: Any, lineage: Lineage, mask_name: str, track_name: str) -> None:
    """Write each frame of ``labels`` (T, H, W) as a uint16 mask (one plane in memory at a time), then the tracks."""
    digits = max(3, len(str(labels.shape[0] - 1)))
    for frame in range(labels.shape[0]):
        name = mask_name.replace("%03d", f"%0{digits}d") % frame
        tifffile.imwrite(folder / name, np.asarray(labels[frame]).astype(np.uint16), compression="zlib")
    with open(folder / track_name, "w") as handle:
        for row in lineage.to_array():
            handle.write(" ".join(str(int(v)) for v in row) + "\n")


def _atomic_folder(out_dir: os.PathLike, overwrite: bool) -> Tuple[Path, Path]:
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out_dir {out_dir} is a file; the CTC result is a folder: choose a new or empty folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(f"out_dir {out_dir} exists and is not empty; pass overwrite=True or choose a new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return out_dir, temporary_folder(out_dir)  # the mode of a plain mkdir() (umask), not mkdtemp's 0o700


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move the written folder ``tmp`` to ``out_dir``; an earlier folder there is moved aside, and back if that fails."""
    publish_together([(tmp, out_dir)])


def write_ctc(out_dir: os.PathLike, labels: Any, lineage: Lineage, overwrite: bool = False,
              min_area: int = 1, consistent: bool = False, first_frame: Optional[int] = None) -> Tuple[Path, Lineage]:
    """Write a tracking result in CTC format; returns (folder, the lineage as written).

    labels: (T, H, W) track ids (a numpy array, or any stack indexable by frame: read a frame at a time, never
    copied whole). Tracks with gaps are split (see :func:`consistent_labels`), so the written lineage can have more
    rows than the input; ``consistent=True``: (labels, lineage) come from :func:`consistent_labels` or
    :func:`.lineage.ctc_consistent` already and are written as they are. Raises ValueError if the result breaks a rule.
    The files are numbered from 0 (``mask000.tif`` is ``labels[0]``), as CTC numbers a sequence; ``first_frame``:
    the frame number ``lineage`` gives ``labels[0]``, for a result of part of a movie whose lineage names the movie's
    frames (``napari_sam2.track_cells(..., frames=(first, last))``: pass ``first_frame=result.first_frame``, or use
    ``napari_sam2.track_export.export_tracking``): its rows are written numbered from 0 too, as ``napari-sam2 track
    --frames A-B`` writes them and ``napari-sam2 evaluate --frames A-B`` reads them (not with ``consistent=True``,
    whose lineage is numbered from 0 already); also for labels that are a time slice of the frames the lineage names
    (``labels[a:b]`` with ``first_frame=a``). None (not given): the lineage names the labels' frames from 0, and a row
    ending past them is refused (:func:`consistent_labels`).
    """
    labels = labels if hasattr(labels, "shape") else np.asarray(labels)  # (a list of planes)
    if len(labels.shape) != 3:
        raise ValueError(f"labels must be a (T, H, W) stack, got shape {tuple(labels.shape)}")
    if consistent and first_frame:
        raise ValueError(f"first_frame={first_frame!r} with consistent=True: a consistent lineage is numbered from 0 "
                         "already (consistent_labels(labels, lineage, first_frame=...) made it); leave first_frame out")
    fixed, table = (labels, lineage) if consistent else consistent_labels(labels, lineage, min_area=min_area,
                                                                           first_frame=first_frame)
    problems = _problems(fixed, table)
    if problems:
        raise ValueError("the result breaks the CTC format rules: " + "; ".join(problems[:5]))
    out_dir, tmp = _atomic_folder(out_dir, overwrite)
    try:
        _write_files(tmp, fixed, table, "mask%03d.tif", "res_track.txt")
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir, table


def read_tracks_file(path: os.PathLike) -> Lineage:
    rows = []
    with open(path) as handle:
        for line_no, line in enumerate(handle, start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise ValueError(f"{path}, line {line_no}: expected 'L B E P', got {line.strip()!r}")
            label, begin, end, parent = (int(p) for p in parts)
            rows.append(Track(label, begin, end, parent))
    return Lineage(rows)


def read_ctc(folder: os.PathLike) -> Tuple[np.ndarray, Lineage]:
    """Read a CTC result folder (``mask*.tif`` + ``res_track.txt``) or a GT ``TRA`` folder
    (``man_track*.tif`` + ``man_track.txt``). Returns (labels (T, H, W) uint32, lineage); the files store no end
    reasons, so each track's is derived as the tracker names it (:func:`with_end_reasons`: "end of stack", "divided",
    "left the field", "lost")."""
    folder = Path(folder)
    for pattern, track_file in ((r"mask(\d+)\.tif$", "res_track.txt"), (r"man_track(\d+)\.tif$", "man_track.txt")):
        files = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := re.match(pattern, p.name)))
        if files:
            break
    else:
        raise ValueError(f"folder {folder} holds no mask%03d.tif or man_track%03d.tif files")
    if [f for f, _ in files] != list(range(len(files))):
        raise ValueError(f"folder {folder}: frame numbers are not 0..{len(files) - 1}")
    labels = np.stack([tifffile.imread(p) for _, p in files]).astype(np.uint32)
    return labels, with_end_reasons(labels, read_tracks_file(folder / track_file))


#: how near the frame's border (px) a track's last mask lies when it "left the field": the tracker's margin with its
#: default cell diameter (8, 40), half the smallest cell (``CellTracker``'s ``_border_gap``)
BORDER_GAP = 4


def with_end_reasons(labels: np.ndarray, lineage: Lineage, border_gap: int = BORDER_GAP) -> Lineage:
    """``lineage`` with each track's ``end_reason`` derived from ``labels`` (T, H, W) and the parent links, as the
    tracker and the writers (:func:`.lineage.end_reason_at`) name them, since CTC files store none: "end of stack"
    where it reaches the last frame; "divided" where a child begins on the frame after its end, or it has two or more
    children; else "left the field" where its last mask lies within ``border_gap`` px of the frame's border, "lost"
    otherwise (also a track cut at a gap, whose one child is its piece after the gap)."""
    rows = lineage.rows()
    last = int(labels.shape[0]) - 1
    children: Dict[int, List[Track]] = {}
    for row in rows:
        if row.parent:
            children.setdefault(row.parent, []).append(row)
    reasons: Dict[int, str] = {}
    ended: Dict[int, List[Track]] = {}  # frame -> the tracks that stop there without dividing
    for row in rows:
        kids = children.get(row.track_id, [])
        if row.end >= last:
            reasons[row.track_id] = "end of stack"
        elif len(kids) >= 2 or any(kid.begin == row.end + 1 for kid in kids):
            reasons[row.track_id] = "divided"
        elif 0 <= row.end <= last:
            ended.setdefault(row.end, []).append(row)
        else:  # a table frame outside the masks
            reasons[row.track_id] = "lost"
    for frame, stopped in ended.items():
        plane = labels[frame]
        height, width = plane.shape[-2:]
        boxes = ndimage.find_objects(plane, max_label=max(t.track_id for t in stopped))
        for row in stopped:
            box = boxes[row.track_id - 1] if row.track_id <= len(boxes) else None
            near = box is not None and (box[-2].start < border_gap or box[-1].start < border_gap
                                        or box[-2].stop > height - border_gap or box[-1].stop > width - border_gap)
            reasons[row.track_id] = "left the field" if near else "lost"
    return Lineage(replace(row, end_reason=reasons[row.track_id]) for row in rows)


def write_ctc_ground_truth(gt_dir: os.PathLike, labels: np.ndarray, parents: Optional[Dict[int, int]] = None,
                           seg_frames: Optional[list] = None, overwrite: bool = False) -> Path:
    """Ground truth in CTC layout from a label stack with stable ids (e.g. ``make_timelapse``'s).

    labels: (T, H, W); parents: child id -> parent id. Writes ``TRA`` (man_track.txt + man_track%03d.tif,
    the full masks as markers) and ``SEG`` (man_seg%03d.tif for ``seg_frames``, default every frame).
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a (T, H, W) stack, got shape {labels.shape}")
    fixed, table = consistent_labels(labels, lineage_from_labels(labels, parents))  # each plane made when written
    problems = _problems(fixed, table)
    if problems:
        raise ValueError("ground truth breaks the CTC format rules: " + "; ".join(problems[:5]))
    gt_dir, tmp = _atomic_folder(gt_dir, overwrite)
    try:
        (tmp / "TRA").mkdir()
        (tmp / "SEG").mkdir()
        _write_files(tmp / "TRA", fixed, table, "man_track%03d.tif", "man_track.txt")
        frames = range(labels.shape[0]) if seg_frames is None else seg_frames
        digits = max(3, len(str(labels.shape[0] - 1)))
        for frame in frames:
            tifffile.imwrite(tmp / "SEG" / (f"man_seg%0{digits}d.tif" % frame), fixed[frame].astype(np.uint16),
                             compression="zlib")
        _publish(tmp, gt_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return gt_dir
