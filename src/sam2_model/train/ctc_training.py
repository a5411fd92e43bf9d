"""Fine-tuning data from Cell Tracking Challenge ground truth: the frames with segmentation truth, each cell under
its tracking id, and the lineage.

CTC layout: a sequence folder (``01``) of ``t%03d.tif`` frames and its ground truth (``01_GT``) with
``SEG/man_seg%03d.tif`` (full masks of some frames, often of some cells only, each frame numbered on its own) and
``TRA/man_track%03d.tif`` + ``TRA/man_track.txt`` (every cell on every frame under one id through time, as markers
or masks, and who divided into whom). Segmentation truth alone would teach tracking wrong (its ids change from frame
to frame), tracking truth alone would teach markers as shapes; so each segmented cell takes the id of the tracking
cell it overlaps most. Cells a frame does not segment are not annotated there
(:mod:`.stack_labels`), and daughters keep their mother's lineage (``parents``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import tifffile

from ..tracking.ctc_io import read_tracks_file
from ..tracking.matching import overlaps_with_labels


@dataclass
class CtcTrainingData:
    """stack: (T, H, W) the frames with segmentation truth; labels: (T, H, W) that truth under tracking ids;
    parents: daughter id -> mother id (``man_track.txt``); frames: the T frame numbers."""

    stack: np.ndarray
    labels: np.ndarray
    parents: Dict[int, int]
    frames: List[int]


def _numbered(folder: Path, pattern: str) -> Dict[int, Path]:
    """Files of ``folder`` whose name matches ``pattern`` (one group: the frame number), by frame number."""
    return {int(m.group(1)): path for path in folder.iterdir() if (m := re.fullmatch(pattern, path.name))}


def is_ctc_ground_truth(path: "os.PathLike | str") -> bool:
    """Whether ``path`` is a CTC ground-truth folder (``SEG/man_seg*.tif`` and ``TRA/man_track.txt``)."""
    path = Path(path)
    return (path / "TRA" / "man_track.txt").is_file() and (path / "SEG").is_dir()


def segmented_frames(ground_truth: "os.PathLike | str") -> List[int]:
    """The frame numbers that CTC ``ground_truth`` segments (``SEG/man_seg%03d.tif``), ascending."""
    return sorted(_numbered(Path(ground_truth) / "SEG", r"man_seg(\d+)\.tif"))


def tracking_ids(segmentation: np.ndarray, tracking: np.ndarray) -> np.ndarray:
    """(H, W) segmentation truth with each cell under the id of the (H, W) tracking cell it overlaps most; a cell
    that overlaps none is dropped."""
    out = np.zeros(segmentation.shape, np.int32)
    cells = [segmentation == seg_id for seg_id in np.unique(segmentation[segmentation > 0])]
    track_ids, inter, _ = overlaps_with_labels(cells, tracking)  # inter: (cells, track ids)
    for cell, row in zip(cells, inter):
        if row.size and row.max() > 0:
            out[cell] = int(track_ids[int(np.argmax(row))])  # ties: the smallest id, as ids come sorted
    return out


def read_ctc_training(sequence: "os.PathLike | str", ground_truth: "os.PathLike | str",
                      first: Optional[int] = None, last: Optional[int] = None) -> CtcTrainingData:
    """The frames of CTC ``sequence`` (a folder of ``t%03d.tif``) that ``ground_truth`` segments, within
    [``first``, ``last``] when given, with that segmentation under tracking ids (:func:`tracking_ids`)."""
    sequence, ground_truth = Path(sequence), Path(ground_truth)
    if not is_ctc_ground_truth(ground_truth):
        raise ValueError(f"{ground_truth} is not Cell Tracking Challenge ground truth: it needs SEG/man_seg%03d.tif "
                         "and TRA/man_track.txt with TRA/man_track%03d.tif")
    if not sequence.is_dir():
        raise ValueError(f"{sequence} is not a folder of t%03d.tif frames (the CTC sequence of {ground_truth})")
    segmented = _numbered(ground_truth / "SEG", r"man_seg(\d+)\.tif")
    tracked = _numbered(ground_truth / "TRA", r"man_track(\d+)\.tif")
    images = _numbered(sequence, r"t(\d+)\.tif")
    frames = sorted(t for t in segmented if (first is None or t >= first) and (last is None or t <= last))
    if not frames:
        raise ValueError(f"{ground_truth / 'SEG'} segments no frame" + ("" if first is None and last is None
                                                                       else f" in [{first}, {last}]"))
    missing = [t for t in frames if t not in images or t not in tracked]
    if missing:
        raise ValueError(f"frames {missing} have segmentation truth but no t%03d.tif in {sequence} or no "
                         f"man_track%03d.tif in {ground_truth / 'TRA'}")
    stack = np.stack([tifffile.imread(images[t]) for t in frames])
    labels = np.stack([tracking_ids(tifffile.imread(segmented[t]), tifffile.imread(tracked[t])) for t in frames])
    parents = {track.track_id: track.parent for track in read_tracks_file(ground_truth / "TRA" / "man_track.txt")
               if track.parent}
    return CtcTrainingData(stack, labels, parents, frames)
