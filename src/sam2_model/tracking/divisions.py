"""Division evidence: a masklet that splits in two, a masklet that grew and is pinched in the middle
(two cores joined by a neck), two detections inside one masklet, or a new detection next to a masklet
whose area roughly halved.

The thresholds (module constants, used as defaults) follow issue 10: each daughter >= ~25% of the
mother's previous area and both together 0.7-1.3x of it (a mitosis conserves most of the mass; a
fragment or a merge with a neighbour does not); a split must last >= 2 frames (one noisy frame is not
a division), except on the run's last frame, where no later frame can confirm it and one frame is
enough; a split with a piece on the frame's edge is a cell coming into view that the masklet spilled
onto, not a division; an area "halved" means 0.3-0.7x of the recent maximum.

The neck rule (:func:`neck_split`, :class:`NeckWatch`) is for daughters that still touch: SAM 2's
masklet then keeps covering both for several frames, so it never splits into two pieces and one click
on the pair gives one mask. The masklet's shape shows the division: two round cores (maxima of the
distance to the mask's edge) joined by a waist. Its thresholds, and why:

* ``NECK_RATIO = 0.9``: the narrowest half-width on the straight line between the two cores is at most
  0.9x the thinner core's half-width. Measured on the demo model's masklets (held-out synthetic clips):
  dividing pairs 0.53-0.88, single elongated nuclei 0.93-1.0 (an ellipse's distance ridge is flat).
* ``CORE_BALANCE = 0.7``: the thinner core's half-width is >= 0.7x the thicker's (two daughters of about
  the same size; a nucleus with a small bump or a fragment gives one thick and one thin core).
* ``NECK_PIECE_FRACTION = 0.3``: the watershed of the distance map from the two cores gives pieces of
  >= 30% of the masklet each (true pairs gave 39-49%, bumps 1-7%).
* ``MIN_GROWTH = 1.1``: the masklet's area is >= 1.1x its smallest area over the last frames (up to 8):
  two daughters covered by one masklet occupy more than the mother (measured 1.12-1.33x), and an
  elongated cell that merely turns or a masklet that spills onto a neighbour of the same size does not
  grow like that (1.0-1.07x). Also skips the shape test on most masklets, so it costs little.
* a masklet touching the frame's edge is not tested: a cell entering the field grows as it comes into
  view, and its cut-off shape says nothing about a waist (on a held-out clip an entering cell that
  touched another newcomer was cut in two).
* it must be seen on ``MIN_SPLIT_FRAMES`` (2) consecutive frames, as the two-piece rule.

``MIN_DAUGHTER_FRAMES = 3`` (:func:`undo_short_divisions`): a division one of whose daughters vanishes
(its track ends "lost" or "left the field", without children of its own) within 3 frames of its birth is
undone: a real daughter stays, so the cut piece was a fragment of the mother's mask. On the held-out clips
the false divisions removed this way all had a daughter that lasted one frame. On the real MSC time-lapse
(large spindle cells, many near the border) fragments also left the field within a frame or two, or both
halves vanished: those are undone too (the mother continues as the half that lasted longer). A daughter
cut short by the end of the stack is not judged: no later frame can say.

``DAUGHTER_BALANCE = 0.35`` (:func:`balanced`): whatever the cue, the smaller daughter must hold >= 35% of the
two daughters' pixels together. A mitosis halves a cell: on 15 synthetic clips (40 divisions) the smaller
daughter held 38-49% on its first frame but once (25%). The false divisions of weights trained on spread cells
were a masklet that had swallowed a smaller neighbour, cut along the two detections or a waist: 31-34%.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import ndimage

MIN_PIECE_FRACTION = 0.25  # each daughter >= this fraction of the mother's previous area
TOTAL_RANGE = (0.7, 1.3)  # daughters together / mother's previous area
MIN_SPLIT_FRAMES = 2  # a split must be seen on this many consecutive frames
HALVED_RANGE = (0.3, 0.7)  # area / recent maximum area that counts as "halved"
NECK_RATIO = 0.9  # narrowest half-width between two cores / thinner core's half-width (module docstring)
CORE_BALANCE = 0.7  # thinner core's half-width / thicker core's half-width
NECK_PIECE_FRACTION = 0.3  # each watershed piece of the masklet >= this fraction of it
MIN_GROWTH = 1.1  # masklet area / its smallest recent area before the neck rule is tried
MIN_DAUGHTER_FRAMES = 3  # a daughter that vanishes sooner than this after its birth undoes the division
VANISHED = ("lost", "left the field")  # track ends that count as vanishing (not "end of stack")
DAUGHTER_BALANCE = 0.35  # the smaller daughter >= this share of the two together (module docstring)

Pieces = Tuple[np.ndarray, np.ndarray]
Box = Tuple[slice, slice]


@dataclass(frozen=True)
class Crop:
    """A mask of a frame cut to a box: the tracker's per-frame book-keeping works on each track's box
    (``ndimage.find_objects`` of the frame's labels), not on the whole frame, so n tracks cost n small crops a frame
    instead of n whole-frame passes.

    mask: (h, w) bool, the frame mask's pixels inside ``box``; the frame mask is False outside it. box: (rows, cols)
    slices of the frame with explicit start and stop. shape: the frame's (H, W). The division rules that depend on the
    frame (a piece on the frame's edge, :func:`touches_edge`) keep their meaning through ``box`` and ``shape``."""

    mask: np.ndarray
    box: Box
    shape: Tuple[int, int]

    @classmethod
    def whole(cls, mask: np.ndarray) -> "Crop":
        """The whole frame's mask (H, W) as a crop whose box is the frame."""
        h, w = mask.shape
        return cls(np.asarray(mask, dtype=bool), (slice(0, h), slice(0, w)), (h, w))

    def full(self, part: np.ndarray) -> np.ndarray:
        """``part`` (h, w) bool, placed in a frame: (H, W) bool, False outside the box."""
        out = np.zeros(self.shape, dtype=bool)
        out[self.box] = part
        return out

    def inner(self, box: Box) -> Box:
        """A box of the crop (slices of ``mask``) as a box of the frame."""
        (r, c), (ys, xs) = self.box, box
        return slice(r.start + ys.start, r.start + ys.stop), slice(c.start + xs.start, c.start + xs.stop)


MaskLike = Union[np.ndarray, Crop]  # a frame's mask (H, W) bool, or a Crop of it


def _crop(mask: MaskLike) -> Crop:
    return mask if isinstance(mask, Crop) else Crop.whole(mask)


def two_pieces(mask: MaskLike, previous_area: float, min_fraction: float = MIN_PIECE_FRACTION,
               total_range: Tuple[float, float] = TOTAL_RANGE) -> Optional[Pieces]:
    """The two largest connected pieces of ``mask`` (H, W), or of a :class:`Crop` of it, if they look like daughters
    of a cell of ``previous_area`` pixels, else None. The pieces are (H, W) bool masks of the whole frame."""
    if previous_area <= 0:
        return None
    crop = _crop(mask)
    found = ndimage.find_objects(crop.mask.astype(np.uint8))
    if not found or found[0] is None:
        return None
    box = found[0]
    pieces, count = ndimage.label(crop.mask[box])
    if count < 2:
        return None
    sizes = np.bincount(pieces.ravel())[1:]
    order = np.argsort(sizes)[::-1][:2]
    a, b = (int(sizes[i]) for i in order)
    if min(a, b) < min_fraction * previous_area:
        return None
    if not total_range[0] <= (a + b) / previous_area <= total_range[1]:
        return None
    frame_box = crop.inner(box)
    out = []
    for i in order:
        full = np.zeros(crop.shape, dtype=bool)
        full[frame_box] = pieces == i + 1
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


def balanced(daughters: Sequence[np.ndarray], min_share: float = DAUGHTER_BALANCE) -> bool:
    """Whether two daughter masks (H, W) bool are about the same size: the smaller holds >= ``min_share`` of
    their pixels together."""
    sizes = [int(np.count_nonzero(d)) for d in daughters]
    return sum(sizes) > 0 and min(sizes) >= min_share * sum(sizes)


def disjoint(daughters: Sequence[np.ndarray]) -> List[np.ndarray]:
    """The daughter masks (H, W) bool made disjoint: a pixel two of them claim goes to the later one. A division's
    daughters start as mask prompts of their own objects, so a shared pixel would be each daughter's on that frame
    and in its memory. Callers name the fresher evidence last (the "halved neighbour" cue: the mother's shrunken
    masklet, then the detection of the sister it lost, which may overlap it)."""
    claimed = np.zeros_like(np.asarray(daughters[-1], dtype=bool))
    kept: List[np.ndarray] = []
    for mask in reversed(daughters):
        mask = np.asarray(mask, dtype=bool)
        kept.append(mask & ~claimed)
        claimed |= mask
    return kept[::-1]


def halved(area: float, recent_max: float, ratio_range: Tuple[float, float] = HALVED_RANGE) -> bool:
    return recent_max > 0 and ratio_range[0] <= area / recent_max <= ratio_range[1]


def grown(area: float, smallest_recent: float, min_growth: float = MIN_GROWTH) -> bool:
    """Whether a masklet of ``area`` has grown to ``min_growth`` x its smallest recent area: two daughters
    under one masklet cover more than their mother did (the guard of the neck and clicked-apart cues)."""
    return smallest_recent > 0 and area >= min_growth * smallest_recent


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


class Streaks:
    """Consecutive-frame counts per track: a finding is confirmed once seen on ``min_frames`` frames in a row."""

    def __init__(self, min_frames: int) -> None:
        self.min_frames = min_frames
        self._runs: Dict[int, int] = {}

    def confirm(self, track_id: int, pieces: Optional[Pieces], final: bool = False) -> Optional[Pieces]:
        """This frame's finding (None: none); returns it on the frame its streak reaches ``min_frames``,
        or at once on the run's ``final`` frame (no later frame can confirm it; see the module docstring)."""
        if pieces is None:
            self._runs.pop(track_id, None)
            return None
        self._runs[track_id] = self._runs.get(track_id, 0) + 1
        if self._runs[track_id] >= self.min_frames or final:
            self._runs.pop(track_id, None)
            return pieces
        return None

    def forget(self, track_id: int) -> None:
        self._runs.pop(track_id, None)


@dataclass
class SplitWatch:
    """Counts consecutive frames on which a masklet is in two daughter-like pieces."""

    min_frames: int = MIN_SPLIT_FRAMES

    def __post_init__(self) -> None:
        self._streaks = Streaks(self.min_frames)

    def update(self, track_id: int, mask: MaskLike, previous_area: float, final: bool = False) -> Optional[Pieces]:
        """Feed this frame's mask (H, W) bool, or a :class:`Crop` of it; returns the two pieces ((H, W) bool) once the
        split has lasted ``min_frames`` (``final``: the run's last frame, where one frame is enough). A piece on the
        frame's edge is a cell coming into view that the masklet spilled onto, not a daughter (see the module
        docstring)."""
        pieces = two_pieces(mask, previous_area)
        if pieces is not None and (touches_edge(pieces[0]) or touches_edge(pieces[1])):
            pieces = None
        return self._streaks.confirm(track_id, pieces, final)

    def forget(self, track_id: int) -> None:
        self._streaks.forget(track_id)


def neck_split(mask: MaskLike, min_diameter: float, neck_ratio: float = NECK_RATIO,
               core_balance: float = CORE_BALANCE, min_fraction: float = NECK_PIECE_FRACTION) -> Optional[Pieces]:
    """Two touching cells in one connected mask (H, W) bool, or a :class:`Crop` of it: its two pieces (H, W) bool,
    else None.

    Cores are maxima of the distance to the mask's edge at least ``min_diameter / 2`` apart and at least
    ``min_diameter / 4`` deep (the smallest cell's half radius). Of the pairs of the 4 deepest cores with
    ``core_balance``, the one with the narrowest waist on the line between them must have a waist <=
    ``neck_ratio`` x the thinner core; the mask is then cut by a watershed of the distance map from the
    two cores, and each piece must hold >= ``min_fraction`` of the mask.
    """
    from skimage.feature import peak_local_max  # lazily: skimage is only needed for divisions
    from skimage.segmentation import watershed

    given = _crop(mask)
    found = ndimage.find_objects(given.mask.astype(np.uint8))
    if not found or found[0] is None:
        return None
    ys, xs = given.inner(found[0])  # the mask's own box, in the frame
    height, width = given.shape
    # the box one pixel wider where the frame allows, then padded by one: the frame's edge counts as the mask's edge
    # (outside its own box the mask is False, so the crop's pixels padded with zeros are the frame's)
    box = (slice(max(ys.start - 1, 0), min(ys.stop + 1, height)), slice(max(xs.start - 1, 0), min(xs.stop + 1, width)))
    crop = np.pad(given.mask[found[0]], ((1 + (ys.start > 0), 1 + (ys.stop < height)),
                                         (1 + (xs.start > 0), 1 + (xs.stop < width))))
    dist = ndimage.distance_transform_edt(crop)
    cores = peak_local_max(dist, min_distance=max(2, int(min_diameter / 2)), threshold_abs=min_diameter / 4,
                           labels=crop.astype(np.int32), num_peaks=4, exclude_border=False)
    best: Optional[Tuple[float, np.ndarray, np.ndarray]] = None
    for i in range(len(cores)):
        for j in range(i + 1, len(cores)):
            p, q = cores[i], cores[j]
            thin, thick = sorted((float(dist[tuple(p)]), float(dist[tuple(q)])))
            if thin < core_balance * thick:
                continue
            n = int(np.ceil(np.hypot(*(p - q)))) + 2
            line = np.linspace(p, q, n).round().astype(int)
            ratio = float(dist[line[:, 0], line[:, 1]].min()) / thin
            if best is None or ratio < best[0]:
                best = (ratio, p, q)
    if best is None or not 0 < best[0] <= neck_ratio:
        return None
    markers = np.zeros(crop.shape, dtype=np.int32)
    markers[tuple(best[1])], markers[tuple(best[2])] = 1, 2
    basins = watershed(-dist, markers, mask=crop)[1:-1, 1:-1]
    area = int(np.count_nonzero(given.mask))
    out = []
    for k in (1, 2):
        piece = np.zeros(given.shape, dtype=bool)
        piece[box] = basins == k
        if np.count_nonzero(piece) < min_fraction * area:
            return None
        out.append(piece)
    return out[0], out[1]


def touches_edge(mask: MaskLike) -> bool:
    """Whether a mask (H, W), or a :class:`Crop` of it, reaches the frame's edge (a cell partly out of view)."""
    if not isinstance(mask, Crop):
        return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
    (ys, xs), (height, width), part = mask.box, mask.shape, mask.mask
    if part.size == 0:
        return False
    return bool((ys.start == 0 and part[0].any()) or (ys.stop == height and part[-1].any())
                or (xs.start == 0 and part[:, 0].any()) or (xs.stop == width and part[:, -1].any()))


@dataclass
class NeckWatch:
    """Counts consecutive frames on which a grown masklet is pinched into two cores (:func:`neck_split`)."""

    min_diameter: float
    min_frames: int = MIN_SPLIT_FRAMES
    min_growth: float = MIN_GROWTH

    def __post_init__(self) -> None:
        self._streaks = Streaks(self.min_frames)

    def update(self, track_id: int, mask: MaskLike, area: int, smallest_recent: float,
               final: bool = False) -> Optional[Pieces]:
        """Feed this frame's mask (H, W) bool or a :class:`Crop` of it, its area and the track's smallest recent
        area; returns the two pieces ((H, W) bool) once the pinch has lasted ``min_frames`` frames (``final``: the
        run's last frame, where one frame is enough)."""
        pieces = None
        if grown(area, smallest_recent, self.min_growth) and not touches_edge(mask):
            pieces = neck_split(mask, self.min_diameter)
        return self._streaks.confirm(track_id, pieces, final)

    def forget(self, track_id: int) -> None:
        self._streaks.forget(track_id)


def backdate_divisions(labels: np.ndarray, lineage, read_frame: Callable[[int], np.ndarray],
                       cell_diameter: Tuple[float, float], max_frames: int) -> int:
    """Move divisions found late (on a detection frame) back to the frame they happened; in place.

    A division found at frame t (mother ends t-1, daughters begin t) moves back one frame at a time while
    the mother's mask there splits into the parts nearest each daughter's next-frame mask, each part is at
    least MIN_PIECE_FRACTION of the mask and either holds a blob of its own (``sam2_model.seeding.blob_points``
    on ``read_frame(f)``) or the mask is pinched into two cores (:func:`neck_split`): two nuclei inside one
    masklet. At most ``max_frames`` frames per division.
    labels: (T, H, W) track ids; lineage: :class:`.lineage.Lineage`. Returns the number of frames moved.
    Each frame's blob points are found once per call (two divisions on one frame, or one stepping back over frames
    another already read, reuse them).
    """
    from ..seeding import MIN_BLOB_DIAMETER, blob_points, diameter_fit_problem

    frame_points: Dict[int, np.ndarray] = {}

    def points_of(f: int) -> np.ndarray:
        """(N, 2) int (x, y) blob points of frame ``f``, computed on first use; none where the blob search cannot look
        for the range: no cell of it fits in the frame, or its minimum is under
        :data:`~sam2_model.seeding.MIN_BLOB_DIAMETER` (grid
        seeding runs with any range: its divisions are then judged by their necks alone)."""
        if f not in frame_points:
            frame = None if float(cell_diameter[0]) < MIN_BLOB_DIAMETER else read_frame(f)
            if frame is None or diameter_fit_problem(*cell_diameter, np.shape(frame)[:2]) is not None:
                frame_points[f] = np.zeros((0, 2), int)
            else:
                frame_points[f] = blob_points(frame, cell_diameter=cell_diameter,
                                              warn_cut=False).astype(int)  # said once by the detector
        return frame_points[f]

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
            points = points_of(f)
            hits_a = len(points) > 0 and part_a[points[:, 1], points[:, 0]].any()
            hits_b = len(points) > 0 and part_b[points[:, 1], points[:, 0]].any()
            if not (hits_a and hits_b) and neck_split(mask, cell_diameter[0]) is None:
                break  # neither a blob in each part nor a pinched mask: one nucleus on frame f
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


def undo_short_divisions(labels: np.ndarray, lineage, min_frames: int = MIN_DAUGHTER_FRAMES) -> int:
    """Undo divisions one of whose two daughters (or both) vanished within ``min_frames`` frames; in place.

    A daughter vanished when its track ended "lost" or "left the field" and it has no children of its own:
    a daughter that reaches the end of the stack is not judged. The mother then continues as the daughter
    that stayed (of two short ones, the one that lasted longer): its pixels, span, end reason and children,
    and it takes the other daughter's few masks too. labels: (T, H, W) track ids; lineage:
    :class:`.lineage.Lineage`. Returns the number of divisions undone.
    """
    undone = 0
    while True:  # the lineage changes with each undo (a daughter's own division passes to its mother): look again
        found = _short_division(lineage, min_frames)
        if found is None:
            return undone
        mother, kept, lost = found
        keep = lineage[kept]
        labels[labels == kept] = mother
        labels[labels == lost] = mother
        for child in lineage.children(kept):
            lineage.reparent(child, mother)
        lineage.remove(kept)
        lineage.remove(lost)
        lineage.set_span(mother, lineage[mother].begin, keep.end)
        lineage.close(mother, keep.end, keep.end_reason)
        undone += 1


def _vanished_soon(lineage, track_id: int, min_frames: int) -> bool:
    """Whether the track ended lost or at the border, without children, fewer than ``min_frames`` frames
    after it began (a fragment: a real daughter stays for its cell cycle)."""
    track = lineage[track_id]
    return (track.end_reason in VANISHED and track.end - track.begin + 1 < min_frames
            and not lineage.children(track_id))


def _short_division(lineage, min_frames: int) -> Optional[Tuple[int, int, int]]:
    """(mother, kept daughter, vanished daughter) of the first division to undo, or None."""
    for mother, daughters in lineage.divisions().items():
        if len(daughters) != 2:
            continue
        short = [d for d in daughters if _vanished_soon(lineage, d, min_frames)]
        if not short:
            continue
        if len(short) == 2:  # both vanished: keep the one that lasted longer (the lower id on a tie)
            kept = min(short, key=lambda d: (-lineage[d].end, d))
        else:
            kept = daughters[0] if daughters[1] == short[0] else daughters[1]
        return mother, kept, (daughters[0] if daughters[1] == kept else daughters[1])
    return None
