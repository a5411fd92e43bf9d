"""What a user's label stack says before fine-tuning on it: which frames are annotated, and whether ids follow cells.

Fine-tuning learns tracking from the ids of a (T, H, W) label stack: an object with the same id on two frames is
the same object, and an object missing from a frame has left it. Three ways of annotating break that:

- annotating a few frames of a long stack and leaving the others blank. A blank frame would teach that every
  cell vanished, so such frames are left out (:func:`annotated_frames`) and clips run over the annotated ones.
- annotating only some of the cells on some frames (as the Cell Tracking Challenge's segmentation ground truth
  does): a cell annotated before and after a frame but not on it is not annotated there, not gone
  (:func:`annotated_spans`, :func:`not_annotated`), and training neither tells the model it left nor clicks to
  remove it there.
- painting each frame on its own, so that a cell carries one id on one frame and another id on the next (napari's
  Labels layer gives every new label the next free id), or numbering each frame afresh (stacking the Cell Tracking
  Challenge's per-frame segmentation truth). :func:`relabelled_cells` finds cells that stay in place under a new id;
  :func:`check_ids_follow_cells` refuses a stack where most do, or where one hands its id to another cell;
  :func:`link_by_overlap` gives such labels ids that follow the cells, when asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ..tracking.matching import hungarian

SAME_CELL_IOU = 0.5  # two masks on consecutive annotated frames overlapping this much are one cell (a unique match)


def annotated_frames(labels: np.ndarray) -> np.ndarray:
    """Indices (int64, ascending) of the frames of (T, H, W) instance ``labels`` that hold at least one object."""
    labels = np.asarray(labels)
    return np.flatnonzero(labels.reshape(len(labels), -1).any(axis=1))


def frame_list(frames: np.ndarray) -> str:
    """Frame indices written compactly, runs as ranges: [0, 1, 2, 5, 9, 10] -> "0-2, 5, 9-10"."""
    runs: List[List[int]] = []
    for frame in (int(f) for f in frames):
        if runs and frame == runs[-1][1] + 1:
            runs[-1][1] = frame
        else:
            runs.append([frame, frame])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def annotated_spans(labels: np.ndarray) -> Dict[int, tuple]:
    """For each id of (T, H, W) ``labels``: (first, last) frame index on which it is annotated."""
    spans: Dict[int, tuple] = {}
    for t, frame in enumerate(labels):
        for obj_id in np.unique(np.asarray(frame)).tolist():
            if obj_id:
                spans[obj_id] = (spans[obj_id][0], t) if obj_id in spans else (t, t)
    return spans


def not_annotated(present: np.ndarray, order: np.ndarray, family: Sequence[int], spans: Dict[int, tuple]) -> np.ndarray:
    """(T,) bool, for one object of a clip: True on the clip's frames where it is missing (``present``: (T,) bool)
    but lies strictly inside the span of frames where it or a descendant (``family``) is annotated, so it was not
    annotated there rather than gone. ``order``: the clip's (T,) frame indices into the stack ``spans`` describe."""
    known = [spans[i] for i in family if i in spans]
    if not known:
        return np.zeros(len(order), bool)
    first, last = min(s[0] for s in known), max(s[1] for s in known)
    return ~np.asarray(present, bool) & (order > first) & (order < last)


@dataclass(frozen=True)
class FramePairIds:
    """Cells matched between two consecutive annotated frames ``first`` and ``second`` (indices into the stack):
    ``matched`` pairs of masks overlapping by IoU >= :data:`SAME_CELL_IOU`, of which ``relabelled`` carry another
    id on ``second`` (a division's daughter under its mother's id is not counted); ``example``: one such
    (id on first, id on second). ``moved``: of the relabelled, those whose id on ``first`` is on another cell on
    ``second`` (its two masks do not touch): ids handed from cell to cell, which tracking never does;
    ``moved_example``: one such (id on first, id on second)."""

    first: int
    second: int
    matched: int
    relabelled: int
    example: Optional[tuple]
    moved: int = 0
    moved_example: Optional[tuple] = None


def _pair_ious(a: np.ndarray, b: np.ndarray) -> Dict[tuple, float]:
    """IoU of each (id in a, id in b) pair of objects that overlap, for (H, W) label images a and b (any whole ids
    >= 0 of their dtype, uint64 included)."""
    both = (a > 0) & (b > 0)
    first, second = a[both], b[both]
    ids_first = ids_second = None
    if (int(first.max(initial=0)) + 1) * (int(second.max(initial=0)) + 1) <= np.iinfo(np.int64).max:
        first, second = first.astype(np.int64), second.astype(np.int64)
    else:  # ids too large for first * base + second in int64 (both above ~3.04e9): pair their ranks instead
        ids_first, first = np.unique(first, return_inverse=True)
        ids_second, second = np.unique(second, return_inverse=True)
    base = int(second.max(initial=0)) + 1
    keys, counts = np.unique(first * base + second, return_counts=True)  # one sort of a 1-D array: fast
    area_a = dict(zip(*(v.tolist() for v in np.unique(a[a > 0], return_counts=True))))
    area_b = dict(zip(*(v.tolist() for v in np.unique(b[b > 0], return_counts=True))))
    ious = {}
    for key, inter in zip(keys.tolist(), counts.tolist()):
        i, j = key // base, key % base
        if ids_first is not None and ids_second is not None:
            i, j = int(ids_first[i]), int(ids_second[j])
        ious[(i, j)] = inter / (area_a[i] + area_b[j] - inter)
    return ious


def relabelled_cells(labels: np.ndarray, frames: np.ndarray,
                     parents: Optional[Dict[int, int]] = None) -> List[FramePairIds]:
    """For each pair of consecutive ``frames`` of (T, H, W) ``labels``: how many cells are matched by overlap
    and how many of them changed id. ``parents``: daughter id -> mother id (a daughter is no relabelling)."""
    parents = parents or {}
    result = []
    for first, second in zip(frames[:-1], frames[1:]):
        matched, relabelled, example, moved, moved_example = 0, 0, None, 0, None
        ious = _pair_ious(np.asarray(labels[first]), np.asarray(labels[second]))
        on_second = {j for _, j in ious} | set(np.unique(np.asarray(labels[second])).tolist())
        for (i, j), iou in ious.items():
            if iou < SAME_CELL_IOU:
                continue
            matched += 1
            if i != j and parents.get(j) != i:
                relabelled += 1
                example = example or (i, j)
                if i in on_second and (i, i) not in ious:  # id i went to a cell that does not touch its own
                    moved += 1
                    moved_example = moved_example or (i, j)
        result.append(FramePairIds(int(first), int(second), matched, relabelled, example, moved, moved_example))
    return result


LINK_MIN_IOU = 0.2  # a cell on the next annotated frame takes the id of the cell it overlaps at least this much


def link_by_overlap(labels: np.ndarray, min_iou: float = LINK_MIN_IOU) -> np.ndarray:
    """(T, H, W) labels painted frame by frame -> the same masks with ids that follow the cells: walking the annotated
    frames in order, each cell takes the id of a cell of the previous annotated frame it overlaps (IoU >= ``min_iou``;
    one to one, the pairing of largest total IoU: :func:`~sam2_model.tracking.matching.hungarian`); a cell that
    overlaps none gets a new id (one above the largest given so far; the smallest unused id once that would not fit
    the output's dtype). Blank frames stay blank; the first annotated frame keeps its ids. Returns int64 labels, or
    uint64 for uint64 ``labels`` (ids of 2**63 and above kept whole, not wrapped to negative numbers)."""
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, np.uint64 if labels.dtype == np.uint64 else np.int64)
    frames = annotated_frames(labels)
    if not len(frames):
        return out
    out[frames[0]] = labels[frames[0]]
    new_id = _NewIds(np.unique(labels[frames[0]]).tolist(), int(np.iinfo(out.dtype).max))
    for previous, current in zip(frames[:-1], frames[1:]):
        b = np.asarray(labels[current])
        ids_b = np.unique(b[b > 0])
        ious = _pair_ious(out[previous], b)
        rows = {i: r for r, i in enumerate(sorted({i for i, _ in ious}))}
        cols = {j: c for c, j in enumerate(sorted({j for _, j in ious}))}
        table = np.zeros((len(rows), len(cols)))
        for (i, j), iou in ious.items():
            table[rows[i], cols[j]] = iou if iou >= min_iou else 0.0  # a weak overlap claims no pair
        ids_a, ids_j = list(rows), list(cols)
        taken: Dict[int, int] = {ids_j[c]: ids_a[r] for r, c in hungarian(table, min_iou)}  # current id -> linked id
        for j in ids_b.tolist():
            if j not in taken:
                taken[j] = new_id()
        out[current] = _relabelled(b, ids_b, taken, out.dtype)
    return out


class _NewIds:
    """The ids :func:`link_by_overlap` gives cells that continue no track: one above the largest id given so far
    (``given``: the first frame's ids, 0 among them), and once that would pass ``top`` (the output dtype's largest
    id) the smallest id not given yet."""

    def __init__(self, given: Sequence[int], top: int) -> None:
        self.given = set(int(i) for i in given) | {0}
        self.next, self.top, self.free = max(self.given) + 1, top, 1

    def __call__(self) -> int:
        if self.next <= self.top:
            chosen, self.next = self.next, self.next + 1
        else:
            while self.free in self.given:
                self.free += 1
            chosen = self.free
        self.given.add(chosen)
        return chosen


def _relabelled(frame: np.ndarray, ids: np.ndarray, new_ids: Dict[int, int], dtype: Any = np.int64) -> np.ndarray:
    """(H, W) ``frame`` with each of its ``ids`` (ascending, its nonzero ids) replaced by ``new_ids[id]``, 0 kept, as
    ``dtype``: through a table indexed by id where the largest id is at most the frame's size (fast), else by sorted
    search (ids up to 2**32 and beyond would make that table gigabytes)."""
    linked = np.array([0] + [new_ids[j] for j in ids.tolist()], dtype)
    if int(ids.max(initial=0)) <= frame.size:
        table = np.zeros(int(ids.max(initial=0)) + 1, dtype)
        table[ids.astype(np.int64)] = linked[1:]
        return table[frame]
    return linked[np.searchsorted(np.concatenate([np.zeros(1, ids.dtype), ids]), frame)]


def check_ids_follow_cells(labels: np.ndarray, frames: np.ndarray,
                           parents: Optional[Dict[int, int]] = None) -> None:
    """Raise ValueError when, between some two consecutive annotated ``frames`` of (T, H, W) ``labels``, most
    cells that stay in place carry another id (the frames were labelled one by one, not tracked), or a cell that
    stays in place hands its id to another cell (ids numbered afresh on some frames: the Cell Tracking Challenge's
    segmentation truth, frames stacked from separate files). Messages name ``frames``' own numbers."""
    remedy = ("Fine-tuning learns tracking from these ids: give each cell the same id on every frame (the segmentation "
              "widget's tracking makes such labels), let training link them by overlap (--link-ids yes; the widget's "
              "'Link ids by overlap'), or train on single frames (1 frame per clip)")
    for pair in relabelled_cells(labels, frames, parents):
        if pair.relabelled * 2 > pair.matched:
            old, new = pair.example
            raise ValueError(
                f"object ids do not follow the cells through time: between frames {pair.first} and {pair.second}, "
                f"{pair.relabelled} of the {pair.matched} cells that stay in place carry another id (for example id "
                f"{old} became {new}). {remedy}")
        if pair.moved:
            old, new = pair.moved_example
            cells = "a cell that stays in place handed its id" if pair.moved == 1 else (
                f"{pair.moved} cells that stay in place handed their id")
            raise ValueError(
                f"object ids do not follow the cells through time: between frames {pair.first} and {pair.second}, "
                f"{cells} to another cell (for example the cell with id {old} on "
                f"frame {pair.first} has id {new} on frame {pair.second}, and id {old} is on a cell elsewhere). "
                f"{remedy}")
