"""Division evidence: a masklet that splits in two, two detections inside one masklet, or a new
detection next to a masklet whose area roughly halved.

The thresholds (module constants, used as defaults) follow issue 10: each daughter >= ~25% of the
mother's previous area and both together 0.7-1.3x of it (a mitosis conserves most of the mass; a
fragment or a merge with a neighbour does not); a split must last >= 2 frames (one noisy frame is not
a division); an area "halved" means 0.3-0.7x of the recent maximum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

MIN_PIECE_FRACTION = 0.25  # each daughter >= this fraction of the mother's previous area
TOTAL_RANGE = (0.7, 1.3)  # daughters together / mother's previous area
MIN_SPLIT_FRAMES = 2  # a split must be seen on this many consecutive frames
HALVED_RANGE = (0.3, 0.7)  # area / recent maximum area that counts as "halved"

Pieces = Tuple[np.ndarray, np.ndarray]


def two_pieces(mask: np.ndarray, previous_area: float, min_fraction: float = MIN_PIECE_FRACTION,
               total_range: Tuple[float, float] = TOTAL_RANGE) -> Optional[Pieces]:
    """The two largest connected pieces of ``mask`` (H, W) if they look like daughters of a cell of
    ``previous_area`` pixels, else None."""
    if previous_area <= 0:
        return None
    found = ndimage.find_objects(mask.astype(np.uint8))
    if not found or found[0] is None:
        return None
    box = found[0]
    pieces, count = ndimage.label(mask[box])
    if count < 2:
        return None
    sizes = np.bincount(pieces.ravel())[1:]
    order = np.argsort(sizes)[::-1][:2]
    a, b = (int(sizes[i]) for i in order)
    if min(a, b) < min_fraction * previous_area:
        return None
    if not total_range[0] <= (a + b) / previous_area <= total_range[1]:
        return None
    out = []
    for i in order:
        full = np.zeros(mask.shape, dtype=bool)
        full[box] = pieces == i + 1
        out.append(full)
    return out[0], out[1]


def two_inside(track_area: float, detections: Sequence[np.ndarray], previous_area: float) -> Optional[Tuple[int, int]]:
    """Indices of two detections (each mostly inside one masklet) that split the cell, or None.

    Each must be >= MIN_PIECE_FRACTION of the cell's previous area and together TOTAL_RANGE of the larger
    of the masklet's current and previous area (the masklet may have grown to cover both daughters)."""
    if len(detections) < 2:
        return None
    areas = np.array([int(np.count_nonzero(d)) for d in detections])
    i, j = (int(k) for k in np.argsort(areas)[::-1][:2])
    reference = max(track_area, previous_area)
    if min(areas[i], areas[j]) < MIN_PIECE_FRACTION * reference:
        return None
    if not TOTAL_RANGE[0] <= (areas[i] + areas[j]) / reference <= TOTAL_RANGE[1]:
        return None
    return i, j


def halved(area: float, recent_max: float, ratio_range: Tuple[float, float] = HALVED_RANGE) -> bool:
    return recent_max > 0 and ratio_range[0] <= area / recent_max <= ratio_range[1]


def touching(a: np.ndarray, b: np.ndarray, gap: int) -> bool:
    """Whether masks ``a`` and ``b`` (H, W) come within ``gap`` pixels of each other."""
    found = ndimage.find_objects(a.astype(np.uint8))
    if not found or found[0] is None:
        return False
    ys, xs = found[0]
    box = (slice(max(ys.start - gap, 0), ys.stop + gap), slice(max(xs.start - gap, 0), xs.stop + gap))
    if not b[box].any():
        return False
    grown = ndimage.binary_dilation(a[box], iterations=max(gap, 1))
    return bool((grown & b[box]).any())


@dataclass
class SplitWatch:
    """Counts consecutive frames on which a masklet is in two daughter-like pieces."""

    min_frames: int = MIN_SPLIT_FRAMES

    def __post_init__(self) -> None:
        self._runs: Dict[int, int] = {}

    def update(self, track_id: int, mask: np.ndarray, previous_area: float) -> Optional[Pieces]:
        """Feed this frame's mask; returns the two pieces once the split has lasted ``min_frames``."""
        pieces = two_pieces(mask, previous_area)
        if pieces is None:
            self._runs.pop(track_id, None)
            return None
        self._runs[track_id] = self._runs.get(track_id, 0) + 1
        if self._runs[track_id] >= self.min_frames:
            self._runs.pop(track_id, None)
            return pieces
        return None

    def forget(self, track_id: int) -> None:
        self._runs.pop(track_id, None)


def backdate_divisions(labels: np.ndarray, lineage, read_frame: Callable[[int], np.ndarray],
                       cell_diameter: Tuple[float, float], max_frames: int) -> int:
    """Move divisions found late (on a detection frame) back to the frame they happened; in place.

    A division found at frame t (mother ends t-1, daughters begin t) moves back one frame at a time while
    the mother's mask there splits into the parts nearest each daughter's next-frame mask, each part is at
    least MIN_PIECE_FRACTION of the mask and holds a blob of its own (``sam2_model.seeding.blob_points`` on
    ``read_frame(f)``): two nuclei inside one masklet. At most ``max_frames`` frames per division.
    labels: (T, H, W) track ids; lineage: :class:`.lineage.Lineage`. Returns the number of frames moved.
    """
    from ..seeding import blob_points

    moved_total = 0
    for mother, daughters in lineage.divisions().items():
        if len(daughters) != 2:
            continue
        first, second = daughters
        start = lineage[first].begin
        if lineage[second].begin != start or lineage[mother].end != start - 1:
            continue
        f = start - 1
        while f > lineage[mother].begin and start - 1 - f < max_frames:
            mask = labels[f] == mother
            near_a, near_b = labels[f + 1] == first, labels[f + 1] == second
            if not (mask.any() and near_a.any() and near_b.any()):
                break
            to_a = ndimage.distance_transform_edt(~near_a) <= ndimage.distance_transform_edt(~near_b)
            part_a, part_b = mask & to_a, mask & ~to_a
            if min(part_a.sum(), part_b.sum()) < MIN_PIECE_FRACTION * mask.sum():
                break
            points = blob_points(read_frame(f), cell_diameter=cell_diameter).astype(int)
            if len(points) == 0:
                break
            hits_a = part_a[points[:, 1], points[:, 0]].any()
            hits_b = part_b[points[:, 1], points[:, 0]].any()
            if not (hits_a and hits_b):
                break
            labels[f][part_a] = first
            labels[f][part_b] = second
            f -= 1
        moved = start - 1 - f
        if moved:
            lineage.set_span(mother, lineage[mother].begin, f)
            for d in daughters:
                lineage.set_span(d, f + 1, lineage[d].end)
            moved_total += moved
    return moved_total
