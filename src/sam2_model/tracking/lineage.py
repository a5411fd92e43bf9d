"""The lineage table every output reads: one row per track (id, begin, end, parent, why it ended).

:class:`Lineage` is filled by the tracker and read by the CTC writer (:mod:`.ctc_io`), the GEFF writer
(:mod:`.geff_io`), the CSV table (:func:`write_track_table`) and napari's Tracks layer
(:func:`tracks_layer_data`). Frames are indices into the stack that was tracked; ``parent`` 0 means none.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np
from scipy import ndimage

from ..atomic_files import atomic_file

#: why a track ended (:attr:`Track.end_reason`)
END_REASONS = ("left the field", "lost", "end of stack", "divided", "active")


@dataclass(frozen=True)
class Track:
    """One track of a lineage (a row of :meth:`Lineage.rows`; ``dataclasses.asdict(row)`` for a DataFrame).

    track_id: int > 0, the track's value in the labels (``result.labels == track_id`` is its masks).
    begin, end: int, its first and last frame (indices into the stack tracked; ``end >= begin``).
    parent: int, the track it divided from (its mother), 0 for none.
    end_reason: str, one of :data:`END_REASONS`: "left the field" (lost within a cell radius of the frame's border),
    "lost" (its mask was empty for ``max_lost_frames`` frames elsewhere), "end of stack" (it reached the last frame
    tracked; going backwards: frame 0), "divided" (it split into two daughters, whose ``parent`` is this track), or
    "active" (still followed: a run stopped part-way, or read from CTC files, which store no end reason:
    :func:`~.ctc_io.read_ctc` gives every track "active").
    """

    track_id: int
    begin: int
    end: int
    parent: int = 0
    end_reason: str = "active"


class Lineage:
    """Tracks by id. ``add`` opens a track, ``close`` ends it; rows come back sorted by id."""

    def __init__(self, tracks: Iterable[Track] = ()) -> None:
        self._tracks: Dict[int, Track] = {}
        for track in tracks:
            self._put(track)

    def _put(self, track: Track) -> None:
        if int(track.track_id) <= 0:
            raise ValueError(f"track_id must be a positive integer, got {track.track_id!r}")
        if track.end_reason not in END_REASONS:
            raise ValueError(f"end_reason must be one of {END_REASONS}, got {track.end_reason!r}")
        self._tracks[int(track.track_id)] = track

    def add(self, track_id: int, begin: int, parent: int = 0) -> Track:
        if track_id in self._tracks:
            raise ValueError(f"track_id {track_id} already exists in the lineage")
        if parent and parent not in self._tracks:
            raise ValueError(f"parent {parent} of track {track_id} is not in the lineage")
        track = Track(int(track_id), int(begin), int(begin), int(parent))
        self._put(track)
        return track

    def extend(self, track_id: int, frame: int) -> None:
        """Record that the track is present on ``frame`` (widens begin/end)."""
        track = self[track_id]
        self._tracks[track_id] = replace(track, begin=min(track.begin, int(frame)), end=max(track.end, int(frame)))

    def set_span(self, track_id: int, begin: int, end: int) -> None:
        if end < begin:
            raise ValueError(f"end ({end}) must not be before begin ({begin}) for track {track_id}")
        self._tracks[track_id] = replace(self[track_id], begin=int(begin), end=int(end))

    def close(self, track_id: int, end: int, reason: str) -> None:
        """End ``track_id`` on ``end``, its last frame in time (a tracker going backwards ends its tracks where they
        begin: it passes the end :meth:`extend` kept, not the frame it saw last), for ``reason`` (``END_REASONS``)."""
        track = self[track_id]
        self._put(replace(track, end=int(end), end_reason=reason))

    def reparent(self, track_id: int, parent: int) -> None:
        """Set the parent of ``track_id`` (0: none); the parent must exist."""
        if parent and parent not in self._tracks:
            raise ValueError(f"parent {parent} of track {track_id} is not in the lineage")
        self._tracks[track_id] = replace(self[track_id], parent=int(parent))

    def remove(self, track_id: int) -> None:
        """Delete a track that has no children (their parent link would dangle)."""
        if self.children(track_id):
            raise ValueError(f"track {track_id} has children {self.children(track_id)}: reparent them first")
        del self._tracks[self[track_id].track_id]

    def __getitem__(self, track_id: int) -> Track:
        if track_id not in self._tracks:
            raise ValueError(f"unknown track id {track_id!r}")
        return self._tracks[track_id]

    def __contains__(self, track_id: object) -> bool:
        return track_id in self._tracks

    def __len__(self) -> int:
        return len(self._tracks)

    def __iter__(self):
        return iter(self.rows())

    def rows(self) -> List[Track]:
        return [self._tracks[k] for k in sorted(self._tracks)]

    def children(self, track_id: int) -> List[int]:
        return [t.track_id for t in self.rows() if t.parent == track_id]

    def divisions(self) -> Dict[int, List[int]]:
        """parent id -> daughter ids, for parents with two or more daughters."""
        out: Dict[int, List[int]] = {}
        for t in self.rows():
            if t.parent:
                out.setdefault(t.parent, []).append(t.track_id)
        return {p: c for p, c in out.items() if len(c) >= 2}

    def to_array(self) -> np.ndarray:
        """(N, 4) int64 rows ``L B E P`` as in CTC's res_track.txt."""
        rows = [(t.track_id, t.begin, t.end, t.parent) for t in self.rows()]
        return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


# ---------------------------------------------------------------------------------------------- checks
def frame_ids(labels: np.ndarray) -> List[np.ndarray]:
    """Sorted non-zero ids of every frame of a (T, H, W) label stack."""
    return [np.unique(frame)[np.unique(frame) != 0] for frame in labels]


def check_ctc(labels: np.ndarray, lineage: Lineage) -> List[str]:
    """Problems that break the CTC format rules (empty list: valid).

    labels: (T, H, W) integer track ids. Rules: ids unique and positive (and < 65536 for uint16 files);
    each parent exists and ends before its child begins; the ids in each frame's mask equal the tracks
    whose [begin, end] holds that frame (so every track is contiguous in time).
    """
    problems: List[str] = []
    rows = lineage.rows()
    ids = [t.track_id for t in rows]
    if len(set(ids)) != len(ids):
        problems.append("track ids are not unique")
    for t in rows:
        if t.track_id <= 0 or t.track_id > 65535:
            problems.append(f"track {t.track_id}: id must be in 1..65535")
        if t.end < t.begin:
            problems.append(f"track {t.track_id}: ends ({t.end}) before it begins ({t.begin})")
        if t.parent:
            if t.parent not in lineage:
                problems.append(f"track {t.track_id}: parent {t.parent} does not exist")
            elif lineage[t.parent].end >= t.begin:
                problems.append(f"track {t.track_id}: parent {t.parent} ends at {lineage[t.parent].end}, "
                                f"not before the child begins at {t.begin}")
    for frame, present in enumerate(frame_ids(labels)):
        expected = {t.track_id for t in rows if t.begin <= frame <= t.end}
        found = set(int(i) for i in present)
        if found != expected:
            extra, missing = sorted(found - expected), sorted(expected - found)
            problems.append(f"frame {frame}: ids in the mask but not active {extra}, active but absent {missing}")
    return problems


def ctc_consistent(labels: np.ndarray, lineage: Lineage, min_area: int = 1) -> Tuple[np.ndarray, Lineage]:
    """A copy of (labels, lineage) that satisfies :func:`check_ctc`.

    Begin and end come from the frames where each id has pixels (segments smaller than ``min_area``
    are erased); a track with gaps is cut into contiguous pieces, each later piece a new id whose
    parent is the piece before (the CTC convention); tracks without pixels are dropped and their
    children re-attached to the dropped track's parent. labels: (T, H, W) -> uint32 copy.
    """
    out = np.asarray(labels).astype(np.uint32, copy=True)
    if out.ndim != 3:
        raise ValueError(f"labels must be (T, H, W), got shape {out.shape}")
    present: Dict[int, List[int]] = {}
    for frame in range(out.shape[0]):
        ids, counts = np.unique(out[frame], return_counts=True)
        for i, c in zip(ids.tolist(), counts.tolist()):
            if i == 0:
                continue
            if c < min_area:
                out[frame][out[frame] == i] = 0
            else:
                present.setdefault(i, []).append(frame)
    known = {t.track_id: t for t in lineage.rows()}
    for i in present:
        if i not in known:
            known[i] = Track(i, present[i][0], present[i][-1])
    next_id = max(list(known) + [0]) + 1
    last_piece: Dict[int, int] = {}  # original id -> id of its last piece
    pieces: Dict[int, Track] = {}
    for i in sorted(known):
        frames = present.get(i, [])
        if not frames:
            continue
        runs = np.split(np.asarray(frames), np.where(np.diff(frames) > 1)[0] + 1)
        previous = 0
        for k, run in enumerate(runs):
            piece = i if k == 0 else next_id
            if k > 0:
                next_id += 1
                for f in run:
                    out[f][out[f] == i] = piece
            pieces[piece] = Track(piece, int(run[0]), int(run[-1]), previous, "lost")  # the last piece's: below
            previous = piece
        last_piece[i] = previous

    def resolve_parent(parent: int) -> int:
        while parent and parent not in last_piece:
            parent = known[parent].parent if parent in known else 0
        return last_piece.get(parent, 0)

    rows: Dict[int, Track] = {}
    for piece, t in pieces.items():
        if t.parent == 0 and piece in known:  # first piece: inherit the original parent
            parent = resolve_parent(known[piece].parent)
            if parent and pieces[parent].end >= t.begin:
                parent = 0
            t = replace(t, parent=parent)
        rows[piece] = t
    last_frame = out.shape[0] - 1
    starts = daughter_starts(rows.values())
    for i, piece in last_piece.items():  # each track's last piece: why it ends where its pixels now end
        t = rows[piece]
        rows[piece] = replace(t, end_reason=end_reason_at(known[i], t.end, last_frame, (piece, t.end + 1) in starts))
    return out, Lineage(rows.values())


def daughter_starts(rows: Iterable[Track]) -> Set[Tuple[int, int]]:
    """{(parent id, first frame)} of the tracks ``rows`` that have a parent: a track ``i`` ending on frame ``e``
    divides there when ``(i, e + 1)`` is in it (one set for every track: no pass over all rows per track)."""
    return {(row.parent, row.begin) for row in rows if row.parent}


def end_reason_at(track: Track, end: int, last_frame: int, divides: bool) -> str:
    """Why ``track`` ends on frame ``end`` once its pixels end there (hand edits, a later run, an export's cut at a
    gap): "end of stack" on ``last_frame``; "divided" when ``divides`` (daughters begin on ``end + 1``); its own reason
    when it still ends where it ended ("lost", "left the field"); otherwise "lost"."""
    if end >= last_frame:
        return "end of stack"
    if divides:
        return "divided"
    if end == track.end and track.end_reason in ("lost", "left the field"):
        return track.end_reason
    return "lost"


# ---------------------------------------------------------------------------------------------- tables
def write_track_table(path: os.PathLike, lineage: Lineage,
                      extra: Optional[Tuple[Sequence[str], Callable[[Track], Sequence[Any]]]] = None) -> Path:
    """CSV with one row per track: track_id, begin, end, parent_id, end_reason (written atomically).

    ``extra``: (names, values) adds columns after those five: ``names`` their headers, ``values(track)`` one row's
    cells (as many as ``names``); None: the five columns only.
    """
    path = Path(path)
    names, values = extra if extra is not None else ((), lambda _track: ())
    with atomic_file(path, suffix=".csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["track_id", "begin", "end", "parent_id", "end_reason", *names])
        for t in lineage.rows():
            cells = list(values(t))
            if len(cells) != len(names):
                raise ValueError(f"extra columns {list(names)} got {len(cells)} values for track {t.track_id}: "
                                 f"give one value per column")
            writer.writerow([t.track_id, t.begin, t.end, t.parent, t.end_reason, *cells])
    return path


def frame_centroids(labels: np.ndarray) -> List[Tuple[int, int, Tuple[float, ...], int]]:
    """(track_id, frame, centre, area) for every id in every frame of a label stack (T, *spatial): centre (y, x) of
    (T, H, W) labels, (z, y, x) of (T, Z, H, W); an (H, W) image is one frame, 0. Sorted by frame then id."""
    labels = labels[None] if labels.ndim == 2 else labels
    rows = []
    for frame in range(labels.shape[0]):
        ids, counts = np.unique(labels[frame], return_counts=True)
        keep = ids != 0
        ids, counts = ids[keep], counts[keep]
        if not len(ids):
            continue
        centres = ndimage.center_of_mass(np.ones(labels.shape[1:]), labels[frame], ids)
        rows += [(int(i), frame, tuple(float(c) for c in centre), int(n))
                 for i, n, centre in zip(ids.tolist(), counts.tolist(), centres)]
    return rows


def tracks_layer_data(result) -> Tuple[np.ndarray, Dict[int, List[int]]]:
    """napari Tracks layer input from a tracking result (anything with ``labels`` and ``lineage``).

    Returns data (N, 4) float [track_id, t, y, x] (sorted by track then frame, centroids of each id) and
    graph {child: [parent]} for napari to draw the lineage. Pure numpy: napari is not imported.
    """
    labels: np.ndarray = result.labels
    lineage: Lineage = result.lineage
    rows = sorted((i, t, *centre) for i, t, centre, _ in frame_centroids(labels))
    data = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    present = set(int(i) for i in data[:, 0]) if len(data) else set()
    graph = {t.track_id: [t.parent] for t in lineage.rows()
             if t.parent and t.track_id in present and t.parent in present}
    return data, graph


def lineage_from_labels(labels: np.ndarray, parents: Optional[Dict[int, int]] = None) -> Lineage:
    """Lineage of a label stack whose ids are stable in time (begin/end from pixels; parents given)."""
    parents = parents or {}
    spans: Dict[int, List[int]] = {}
    for frame, ids in enumerate(frame_ids(np.asarray(labels))):
        for i in ids.tolist():
            spans.setdefault(int(i), [frame, frame])[1] = frame
    rows = [Track(i, b, e, int(parents.get(i, 0)) if parents.get(i, 0) in spans else 0) for i, (b, e) in spans.items()]
    return Lineage(rows)
