"""Continue the tracks of the frame before a run from a later frame (same ids, by overlap); no Qt.

A forward run of :class:`~.track_all.TrackAll` from a frame s > 0 matches the cells it finds on frame s to the tracks
of frame s - 1 (:func:`continuations`), writes them under the kept ids (:func:`relabel_ids`) and joins the two
lineages (:func:`joined_lineage`).
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional

import numpy as np

from sam2_model.tracking import Lineage, Track

CONTINUE_IOU = 0.2  # a cell on a run's first frame continues the track it overlaps at least this much the frame before


def continuations(before: np.ndarray, after: np.ndarray, old_ids: Iterable[int]) -> Dict[int, int]:
    """{id on ``after``: id of ``old_ids`` on ``before``} for the cells of two consecutive (H, W) planes that are one
    cell: one to one, the pairs of highest IoU first, each at least ``CONTINUE_IOU``."""
    old = np.fromiter((int(i) for i in old_ids), dtype=np.int64)
    before = np.where(np.isin(before, old), before, 0).astype(np.int64)
    after = np.asarray(after, dtype=np.int64)
    both = (before > 0) & (after > 0)
    if not both.any():
        return {}
    pairs, overlaps = np.unique(np.stack([before[both], after[both]]), axis=1, return_counts=True)
    area_before = dict(zip(*(v.tolist() for v in np.unique(before, return_counts=True))))
    area_after = dict(zip(*(v.tolist() for v in np.unique(after, return_counts=True))))
    scored = sorted(((c / (area_before[o] + area_after[n] - c), o, n)
                     for (o, n), c in zip(pairs.T.tolist(), overlaps.tolist())), reverse=True)
    links: Dict[int, int] = {}
    for iou, o, n in scored:
        if iou >= CONTINUE_IOU and n not in links and o not in links.values():
            links[n] = o
    return links


def relabel_ids(plane: np.ndarray, links: Dict[int, int]) -> np.ndarray:
    """``plane`` with each id of ``links`` replaced by its value."""
    if not links:
        return plane
    keys = np.fromiter(links, dtype=np.int64)
    values = np.fromiter(links.values(), dtype=np.int64)
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    at = np.searchsorted(keys, plane).clip(0, len(keys) - 1)
    return np.where(keys[at] == plane, values[at], plane)


def joined_lineage(kept: List[Track], new: List[Track], continued: Dict[int, int], start: Optional[int],
            last_seen: Dict[int, int]) -> Lineage:
    """The lineage of a forward run from ``start``: the ``kept`` rows (tracks on the frames before) and the run's
    ``new`` rows, each new track that ``continued`` a kept one ({new: kept}) joined to it under the kept id. A kept
    track that ran into the run's frames, or divided there, and is not continued ends on its last frame before
    ``start`` (``last_seen``) as "lost". ``start`` None (a backward run): the kept rows are kept as they are."""
    rows: Dict[int, Track] = {}
    for row in kept:
        daughters_gone = row.end_reason == "divided" and not any(r.parent == row.track_id for r in kept)
        if start is None or (row.end < start and not daughters_gone):
            rows[row.track_id] = row
            continue
        end = min(row.end, last_seen.get(row.track_id, row.end), start - 1)
        rows[row.track_id] = Track(row.track_id, row.begin, end, row.parent, "lost")
    for row in new:
        parent = continued.get(row.parent, row.parent)
        if row.track_id in continued:
            old = rows[continued[row.track_id]]
            rows[old.track_id] = Track(old.track_id, old.begin, row.end, old.parent, row.end_reason)
        else:
            rows[row.track_id] = Track(row.track_id, row.begin, row.end, parent, row.end_reason)
    return Lineage(rows.values())
