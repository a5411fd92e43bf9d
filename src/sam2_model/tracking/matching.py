"""Matching detections (boolean masks) to tracked objects (a label image) and to ground truth.

Hungarian assignment (``scipy.optimize.linear_sum_assignment``) on IoU, so each detection is paired
with at most one track and vice versa (not first-hit, which lets one big masklet swallow two cells).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.optimize import linear_sum_assignment

from .divisions import Crop


def _stack(masks: Sequence[np.ndarray], shape: Tuple[int, int]) -> np.ndarray:
    if len(masks) == 0:
        return np.zeros((0,) + tuple(shape), dtype=bool)
    out = np.stack([np.asarray(m, dtype=bool) for m in masks])
    if out.shape[1:] != tuple(shape):
        raise ValueError(f"masks must be (H, W) = {tuple(shape)}, got {out.shape[1:]}")
    return out


def overlaps_with_labels(masks: Sequence[np.ndarray], labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersections of N masks (H, W) with the ids of a label image (H, W).

    Returns (ids (M,), intersection (N, M) int64, id areas (M,) int64); ids exclude 0.
    """
    labels = np.asarray(labels)
    stack = _stack(masks, labels.shape)
    ids, inverse = np.unique(labels, return_inverse=True)
    inverse = inverse.reshape(labels.shape)
    areas = np.bincount(inverse.ravel(), minlength=len(ids))
    inter = np.zeros((len(stack), len(ids)), dtype=np.int64)
    for n, mask in enumerate(stack):
        inter[n] = np.bincount(inverse[mask], minlength=len(ids))
    keep = ids != 0
    return ids[keep], inter[:, keep], areas[keep]


def iou_with_labels(masks: Sequence[np.ndarray], labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(ids (M,), IoU (N, M)) between N masks and the ids of a label image."""
    ids, inter, areas = overlaps_with_labels(masks, labels)
    mask_areas = np.array([int(np.count_nonzero(m)) for m in masks], dtype=np.int64).reshape(-1, 1)
    union = mask_areas + areas[None, :] - inter
    return ids, np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def hungarian(iou: np.ndarray, min_iou: float) -> List[Tuple[int, int]]:
    """Pairs (row, col) maximising total IoU, keeping only pairs with IoU >= ``min_iou``."""
    if iou.size == 0:
        return []
    rows, cols = linear_sum_assignment(-iou)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if iou[r, c] >= min_iou]


@dataclass
class DetectionMatch:
    """How re-detections relate to the tracked objects on one frame."""

    matched: Dict[int, int] = field(default_factory=dict)  # detection index -> track id
    new: List[int] = field(default_factory=list)  # detections no masklet covers
    inside: Dict[int, List[int]] = field(default_factory=dict)  # track id -> detections mostly inside it
    best_iou: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (N,) best IoU of each detection


def match_detections(detections: Sequence[np.ndarray], labels: np.ndarray, max_coverage: float = 0.5,
                     max_iou: float = 0.3) -> DetectionMatch:
    """Sort detections (N masks (H, W)) against the tracked label image (H, W).

    A detection is *matched* when the Hungarian assignment pairs it with a track at IoU >= ``max_iou``;
    it is *new* when it is not matched, less than ``max_coverage`` of it lies on tracked pixels and its
    best IoU with any track is below ``max_iou``. Every detection (matched or not) with more than half of
    its pixels on one track is listed under that track in ``inside`` (two there: the track holds two cells).
    """
    ids, inter, _ = overlaps_with_labels(detections, labels)
    _, iou = iou_with_labels(detections, labels)
    areas = np.array([int(np.count_nonzero(m)) for m in detections], dtype=np.int64)
    return _decide(ids, inter, iou, areas, max_coverage, max_iou)


def match_crops(detections: Sequence[Crop], labels: np.ndarray, max_coverage: float = 0.5,
                max_iou: float = 0.3) -> DetectionMatch:
    """:func:`match_detections` of detections given as :class:`~.divisions.Crop` s of the frame ``labels`` (H, W): the
    same match, each detection read in its box (no (N, H, W) stack of the detections)."""
    labels = np.asarray(labels)
    counted = _small_id_areas(labels)
    if counted is None:  # (negative, huge or non-integer ids: ranks of the sorted ids over the whole frame)
        ids, inverse = np.unique(labels, return_inverse=True)
        inverse = inverse.reshape(labels.shape)
        id_areas = np.bincount(inverse.ravel(), minlength=len(ids))
    else:  # ids ranked by a table, read only in each detection's box
        ids, id_areas, rank = counted
    inter = np.zeros((len(detections), len(ids)), dtype=np.int64)
    for n, crop in enumerate(detections):
        inside = inverse[crop.box][crop.mask] if counted is None else rank[labels[crop.box][crop.mask]]
        inter[n] = np.bincount(inside, minlength=len(ids))
    keep = ids != 0
    ids, inter, id_areas = ids[keep], inter[:, keep], id_areas[keep]
    areas = np.array([int(np.count_nonzero(c.mask)) for c in detections], dtype=np.int64)
    union = areas.reshape(-1, 1) + id_areas[None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    return _decide(ids, inter, iou, areas, max_coverage, max_iou)


def _small_id_areas(labels: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For a label image (H, W) of integer ids in [0, max(H * W, 65536)]: its ids (M,) ascending (``np.unique``'s),
    their pixel counts (M,) int64 and a table (max id + 1,) of each id's rank; None for any other labels."""
    if labels.dtype.kind not in "iu" or labels.size == 0:
        return None
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high > max(labels.size, 1 << 16):
        return None
    counts = np.bincount(labels.ravel().astype(np.intp, copy=False), minlength=high + 1)
    ids = np.flatnonzero(counts)
    rank = np.zeros(high + 1, dtype=np.intp)
    rank[ids] = np.arange(len(ids))
    return ids.astype(labels.dtype), counts[ids].astype(np.int64), rank


def _decide(ids: np.ndarray, inter: np.ndarray, iou: np.ndarray, areas: np.ndarray, max_coverage: float,
            max_iou: float) -> DetectionMatch:
    """The rules of :func:`match_detections` on N detections and M tracks: ``ids`` (M,) track ids, ``inter`` (N, M)
    pixels each detection shares with each track, ``iou`` (N, M), ``areas`` (N,) each detection's pixel count."""
    n_detections = len(areas)
    areas = np.maximum(np.asarray(areas), 1).astype(np.float64)
    out = DetectionMatch(best_iou=iou.max(axis=1) if iou.size else np.zeros(n_detections))
    for r, c in hungarian(iou, max_iou):
        out.matched[r] = int(ids[c])
    covered = inter.sum(axis=1) / areas if len(ids) else np.zeros(n_detections)
    for n in range(n_detections):
        if len(ids):
            c = int(np.argmax(inter[n]))
            if inter[n, c] / areas[n] > 0.5:
                out.inside.setdefault(int(ids[c]), []).append(n)
        if n not in out.matched and covered[n] < max_coverage and out.best_iou[n] < max_iou:
            out.new.append(n)
    return out


def detection_f1(pred: Sequence[np.ndarray], gt_labels: np.ndarray, min_iou: float = 0.5) -> Dict[str, float]:
    """Precision, recall and F1 of predicted masks against a GT label image (one-to-one, IoU >= min_iou), and
    the mean IoU of the matched pairs (``matched_iou``, 0 when none match)."""
    ids, iou = iou_with_labels(pred, gt_labels)
    pairs = hungarian(iou, min_iou)
    tp = len(pairs)
    n_pred, n_gt = len(pred), len(ids)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gt if n_gt else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    matched_iou = float(np.mean([iou[i, j] for i, j in pairs])) if pairs else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "n_pred": n_pred, "n_gt": n_gt,
            "matched_iou": matched_iou}


def entering_recall(result: np.ndarray, gt: np.ndarray, parents: Dict[int, int], delay: int = 5,
                    min_frames: int = 3) -> Dict[str, float]:
    """Recall of cells that enter the field after the first frame (not measured by the CTC tools).

    result, gt: (T, H, W) label stacks (GT ids stable in time); parents: GT child -> parent (daughters
    are not entries). An entering cell counts when, on the frames from ``delay`` frames after it is first
    at least half in view (half the median of the cells' largest areas; cells that never are are skipped)
    (the tracker looks for new cells every few frames), one result id covers more than half of its pixels
    (the CTC matching rule) on most of those frames; cells present fewer than ``delay + min_frames``
    frames are not scored. Returns {"recall", "entered", "found"}.
    """
    result, gt = np.asarray(result), np.asarray(gt)
    first: Dict[int, int] = {}
    frames: Dict[int, List[int]] = {}
    for t in range(gt.shape[0]):
        for i in np.unique(gt[t]).tolist():
            if i:
                first.setdefault(i, t)
                frames.setdefault(i, []).append(t)
    entered = [i for i, t0 in first.items() if t0 > 0 and i not in parents]
    largest = {i: max(int(np.count_nonzero(gt[t] == i)) for t in frames[i]) for i in frames}
    typical = float(np.median(list(largest.values()))) if largest else 0.0
    scored, found = 0, 0
    for i in entered:
        areas = np.array([int(np.count_nonzero(gt[t] == i)) for t in frames[i]])
        if areas.max() * 2 < typical:  # never half in view: a cell grazing the border
            continue
        visible = frames[i][int(np.argmax(areas * 2 >= typical))]  # first frame half in view
        later = [t for t in frames[i] if t >= visible + delay]
        if len(later) < min_frames:
            continue
        scored += 1
        hits = 0
        for t in later:
            cell = gt[t] == i
            ids, counts = np.unique(result[t][cell], return_counts=True)
            counts = np.where(ids == 0, 0, counts)
            hits += int(counts.max() * 2 > cell.sum())
        found += int(hits * 2 > len(later))
    return {"recall": found / scored if scored else float("nan"), "entered": scored, "found": found}
