"""The lineage table every output reads: one row per track (id, begin, end, parent, why it ended).

:class:`Lineage` is filled by the tracker and read by the CTC writer (:mod:`.ctc_io`), the GEFF writer
(:mod:`.geff_io`), the CSV table (:func:`write_track_table`) and napari's Tracks layer
(:func:`tracks_layer_data`). Frames are indices into the stack that was tracked (a result of part of a movie,
``napari_sam2.track_cells(..., frames=(first, last))``, names the movie's: index + its ``first_frame``; the writers
number their files from 0, :func:`consistent_labels`); ``parent`` 0 means none.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from ..atomic_files import atomic_file

#: why a track ended (:attr:`Track.end_reason`)
END_REASONS = ("left the field", "lost", "end of stack", "divided", "active", "run stopped")


@dataclass(frozen=True)
class Track:
    """One track of a lineage (a row of :meth:`Lineage.rows`; ``dataclasses.asdict(row)`` for a DataFrame).

    track_id: int > 0, the track's value in the labels (``result.labels == track_id`` is its masks).
    begin, end: int, its first and last frame (indices into the stack tracked; ``end >= begin``).
    parent: int, the track it divided from (its mother), 0 for none.
    end_reason: str, one of :data:`END_REASONS`: "left the field" (lost within a cell radius of the frame's border),
    "lost" (its mask was empty for ``max_lost_frames`` frames elsewhere), "end of stack" (it reached the last frame
    tracked; going backwards: frame 0), "divided" (it split into two daughters, whose ``parent`` is this track), or
    "active" (still followed; the default of a new row), or "run stopped" (still followed when a run was stopped
    part-way, e.g. by Ctrl-C: its last frame done is no end of the stack; kept by :func:`consistent_labels` where
    the track still ends there, in either direction). CTC files store no end reason: :func:`~.ctc_io.read_ctc`
    derives each from the files (:func:`~.ctc_io.with_end_reasons`: "end of stack" on the last frame, "divided" where
    a child begins on the next frame or it has two or more, "left the field" where its last mask lies near the
    border, else "lost"), never "active" or "run stopped".
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


@dataclass(frozen=True)
class ConsistentLabels:
    """(T, H, W) labels made CTC-consistent a plane at a time (:func:`consistent_labels`), never copied whole.

    ``source[t]`` is frame t as tracked (a numpy, zarr or dask stack, or anything indexable by frame);
    ``relabel[t]`` {id: new id} the ids that change on frame t (0: erased, a piece smaller than ``min_area``; a new
    id: a later piece of a track with gaps); ``ids[t]`` the sorted ids > 0 frame t holds once changed.
    Indexing gives one new uint32 (H, W) plane; ``np.asarray`` the whole (T, H, W) uint32 stack (one copy, filled a
    plane at a time: what :func:`ctc_consistent` returns)."""

    source: Any
    shape: Tuple[int, ...]
    relabel: Tuple[Dict[int, int], ...]
    ids: Tuple[np.ndarray, ...]
    dtype = np.dtype(np.uint32)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, frame: int) -> np.ndarray:
        return self._fill(int(frame), np.empty(self.shape[1:], np.uint32))

    def _fill(self, frame: int, out: np.ndarray) -> np.ndarray:
        """Frame ``frame`` made consistent, written into the uint32 (H, W) ``out``; returns ``out``."""
        out[...] = np.asarray(self.source[frame])
        changes = self.relabel[frame]
        if changes:
            masks = [(out == old, new) for old, new in changes.items()]  # all read before any is written
            for mask, new in masks:
                out[mask] = new
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[t] for t in range(len(self)))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        stack = np.empty(self.shape, np.uint32)
        for t in range(len(self)):
            self._fill(t, stack[t])
        return stack if dtype is None else stack.astype(dtype, copy=False)


def frames_shifted(lineage: Lineage, by: int) -> Lineage:
    """``lineage`` with every track's ``begin`` and ``end`` moved by ``by`` frames (ids, parents and end reasons as
    they are): ``by`` = first turns a lineage numbered from 0 into the movie's numbers of a range starting on frame
    ``first``, ``-first`` back."""
    if not by:
        return lineage
    return Lineage(replace(t, begin=t.begin + int(by), end=t.end + int(by)) for t in lineage.rows())


def consistent_labels(labels: Any, lineage: Lineage, min_area: int = 1,
                      first_frame: Optional[int] = None) -> Tuple[ConsistentLabels, Lineage]:
    """(labels, lineage) that satisfy :func:`check_ctc`, the labels read a frame at a time: a
    :class:`ConsistentLabels` (each plane made when it is read), not a copy of the stack.

    first_frame: the frame number ``lineage`` gives ``labels[0]``: 0, or for a result of part of a movie whose lineage
    names the movie's frames (``napari_sam2.track_cells(..., frames=(first, last))``) its ``result.first_frame``. What
    comes back is numbered from 0 either way, as the labels' index (the rule of ``napari-sam2 track --frames A-B``'s
    outputs and of CTC, which numbers a sequence from 0). A lineage row outside frames first_frame ..
    first_frame + T - 1 is kept (the labels may be a time slice of a whole-movie result: ``labels[3:]`` with
    ``first_frame=3``; its begin and end come from the pixels), except that without ``first_frame`` (None: 0) a row
    ending past the labels' last frame is a ValueError naming ``first_frame`` (a movie-numbered lineage given without
    it would otherwise lose its end reasons: "left the field" read as "lost"; pass ``first_frame=0`` for labels that
    are the first frames of the lineage's), and with it a lineage of which no row has a frame in the labels. A
    ``first_frame`` (or none) that the pixels contradict is a ValueError too, naming the first frame they imply: with it
    most of the ids in the labels (more than half, two or more) have pixels outside their rows' frames while with
    another fewer than half do (a lineage numbered from 0 given ``first_frame=5``, a movie-numbered one given a first
    frame a few frames off: every track that begins or ends inside the labels is off); where several fit (a time slice
    inside long rows), or where a few ids do not fit (hand edits: a cell painted a frame past its row), the one given
    is taken (:func:`_check_numbering`).

    The one rule every output follows: begin and end come from the frames where each id has pixels (segments smaller
    than ``min_area`` erased); a track with gaps is cut into contiguous pieces, each later piece a new id (above every
    id there) whose parent is the piece before (the CTC convention); tracks without pixels are dropped and their
    children re-attached to the dropped track's parent; each track's last piece ends for the reason that follows
    (:func:`end_reason_at`). labels: (T, H, W) integer track ids (any stack indexable by frame, read once here, once
    more per plane read later: it must not change meanwhile). :func:`ctc_consistent` is this, copied whole.
    """
    labels = labels if hasattr(labels, "shape") else np.asarray(labels)
    shape = tuple(int(n) for n in labels.shape)
    if len(shape) != 3:
        raise ValueError(f"labels must be (T, H, W), got shape {shape}")
    present: Dict[int, List[int]] = {}
    spans: Dict[int, List[int]] = {}  # id -> [first, last] frame with pixels (any area: the rows' evidence)
    relabel: List[Dict[int, int]] = []
    kept: List[np.ndarray] = []
    for frame in range(shape[0]):
        plane = np.asarray(labels[frame])
        ids, counts = np.unique(plane[plane != 0], return_counts=True)  # the pixels of cells only
        small = counts < min_area
        relabel.append({int(i): 0 for i in ids[small].tolist()})
        kept.append(ids[~small].astype(np.int64))
        for i in ids.tolist():
            spans.setdefault(int(i), [frame, frame])[1] = frame
        for i in kept[-1].tolist():
            present.setdefault(i, []).append(frame)
    lineage = _numbered_from_zero(lineage, first_frame, shape[0], {i: (b, e) for i, (b, e) in spans.items()})
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
                for f in run.tolist():
                    relabel[f][i] = piece
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
    starts = daughter_starts(rows.values())
    for i, piece in last_piece.items():  # each track's last piece: why it ends where its pixels now end
        t = rows[piece]
        rows[piece] = replace(t, end_reason=end_reason_at(known[i], t.end, shape[0] - 1, (piece, t.end + 1) in starts))
    ids = tuple(np.unique([relabel[f].get(i, i) for i in kept[f].tolist()]).astype(np.int64) if len(kept[f])
                else kept[f] for f in range(shape[0]))
    return ConsistentLabels(labels, shape, tuple(relabel), ids), Lineage(rows.values())


def _numbered_from_zero(lineage: Lineage, first_frame: Optional[int], num_frames: int,
                        spans: Optional[Dict[int, Tuple[int, int]]] = None) -> Lineage:
    """``lineage`` (frames numbered from ``first_frame``; None: not given, 0) numbered from 0 as the labels' index.

    Rows reaching past the labels' ``num_frames`` frames are kept (the labels may be a time slice of the frames the
    lineage names: begin and end come from the pixels), with three ValueErrors: ``first_frame`` not given and a row
    ending past the labels' last frame (a lineage naming a movie's frames, a result of part of a movie given without
    its first frame: its end reasons would be read wrong); ``first_frame`` given but no row with a frame in the
    labels (a numbering that does not match them); and a numbering the pixels contradict (:func:`_check_numbering`:
    ``spans`` {id: (first, last) labels' frame with pixels})."""
    given = first_frame is not None
    if given and (isinstance(first_frame, (bool, np.bool_)) or not isinstance(first_frame, (int, np.integer))
                  or first_frame < 0):
        raise ValueError(f"first_frame must be the frame number (an integer >= 0) the lineage gives the labels' "
                         f"frame 0, got {first_frame!r}")
    first = int(first_frame) if given else 0
    last = first + num_frames - 1
    rows = lineage.rows()
    if not given:
        past = [t for t in rows if t.end > last]
        if past:
            t = past[0]
            raise ValueError(
                f"lineage track {t.track_id} spans frames {t.begin}-{t.end}, outside the labels' {num_frames} frames "
                f"numbered 0-{last} (no first_frame): a result of part of a movie names the movie's frames: pass "
                "first_frame=result.first_frame (napari_sam2.track_export.export_tracking(result, ...) does); for "
                "labels that are a time slice of the frames the lineage names, pass the slice's first frame "
                "(first_frame=0 for the first frames)")
    elif rows and not any(t.begin <= last and t.end >= first for t in rows):
        raise ValueError(f"no lineage track has a frame among the labels' {num_frames} frames numbered {first}-{last} "
                         f"(first_frame={first}; the tracks span frames {min(t.begin for t in rows)}-"
                         f"{max(t.end for t in rows)}): give the frame number the lineage gives the labels' frame 0")
    _check_numbering(rows, first, given, spans or {})
    return frames_shifted(lineage, -first)


def numbering_misfits(rows: Sequence[Track], spans: Dict[int, Tuple[int, int]], first: int) -> List[Track]:
    """The rows of ``rows`` whose id has pixels outside the row when the labels' frame 0 is the lineage's frame
    ``first`` (``spans``: {id: (first, last) frame of the labels with pixels}; row ``t`` holds them where
    ``t.begin <= first + low`` and ``high + first <= t.end``). Rows without pixels are none of them."""
    return [t for t in rows if t.track_id in spans
            and not t.begin <= spans[t.track_id][0] + first <= spans[t.track_id][1] + first <= t.end]


def best_numberings(rows: Sequence[Track], spans: Dict[int, Tuple[int, int]]) -> Tuple[int, List[Tuple[int, int]]]:
    """(fewest misfits, [(lowest, highest), ...]): the first frames from 0 on with which the fewest rows of ``rows``
    have pixels outside their frames (:func:`numbering_misfits`), as ranges (of a time slice inside long rows several
    values fit alike: the pixels cannot tell them apart). No range where no first frame fits any row."""
    shared = [t for t in rows if t.track_id in spans]
    fits = [(max(0, t.begin - spans[t.track_id][0]), t.end - spans[t.track_id][1]) for t in shared]
    fits = [(low, high) for low, high in fits if low <= high]  # a row shorter than its pixels never fits
    if not fits:
        return len(shared), []
    changes: Dict[int, int] = {}  # first frame -> change in the rows it fits, sweeping up from 0
    for low, high in fits:
        changes[low] = changes.get(low, 0) + 1
        changes[high + 1] = changes.get(high + 1, 0) - 1
    points = sorted(changes)
    held, segments = 0, []  # (rows fitted, lowest, highest) between two changes
    for here, after in zip(points, points[1:]):
        held += changes[here]
        segments.append((held, here, after - 1))
    most = max(count for count, _, _ in segments)
    ranges: List[Tuple[int, int]] = []
    for count, low, high in segments:
        if count == most:
            if ranges and ranges[-1][1] == low - 1:
                ranges[-1] = (ranges[-1][0], high)
            else:
                ranges.append((low, high))
    return len(shared) - most, ranges


def _check_numbering(rows: Sequence[Track], first: int, given: bool, spans: Dict[int, Tuple[int, int]]) -> None:
    """ValueError naming ``first_frame`` where the pixels show it is not the lineage's number of the labels' frame 0:
    with it most of the tracks in the labels (more than half, two or more) have pixels on frames outside their rows,
    while with another (:func:`best_numberings`) fewer than half do (a lineage numbered from 0 given first_frame=5, a
    movie-numbered one given a first frame a few frames off: every track that begins or ends inside the labels is
    off). A first frame that fits is taken (of a time slice inside long rows several do: the pixels cannot tell them
    apart), and so is one that a few tracks contradict, hand edits (a cell painted a frame past its row), or where
    no first frame fits most tracks."""
    misfits = numbering_misfits(rows, spans, first)
    shared = sum(1 for t in rows if t.track_id in spans)
    if len(misfits) < 2 or 2 * len(misfits) <= shared:
        return
    fewest, ranges = best_numberings(rows, spans)
    if not ranges or 2 * fewest >= shared:
        return
    t = misfits[0]
    low, high = spans[t.track_id]
    said = f"first_frame={first}" if given else "no first_frame (0)"
    values = " or ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)
    implied = (f"first_frame={values}" if len(ranges) == 1 and ranges[0][0] == ranges[0][1] else
               f"a first_frame of {values} (labels that are a time slice of the frames it names: the slice's first "
               "frame)")
    holding = ("every track holds its pixels" if fewest == 0 else
               f"all but {fewest} of them hold their pixels (hand edits past a row are taken)")
    raise ValueError(f"{said} does not match the lineage: track {t.track_id} has pixels on the labels' frames "
                     f"{low}-{high}, which {said} numbers {low + first}-{high + first}, outside its frames "
                     f"{t.begin}-{t.end}, as {'does' if len(misfits) == 2 else 'do'} {len(misfits) - 1} more of the {shared} "
                     f"tracks in the labels; the "
                     f"lineage implies {implied}, with which {holding}: give the frame number the lineage gives the "
                     "labels' frame 0 (result.first_frame for a result of part of a movie)")


def ctc_consistent(labels: np.ndarray, lineage: Lineage, min_area: int = 1,
                   first_frame: Optional[int] = None) -> Tuple[np.ndarray, Lineage]:
    """A copy of (labels, lineage) that satisfies :func:`check_ctc`: :func:`consistent_labels` (the rule, and its
    ``first_frame``: ``result.first_frame`` for a result of part of a movie), its labels made whole. labels:
    (T, H, W) -> a uint32 (T, H, W) copy (the writers take :func:`consistent_labels`'s view instead: no copy of the
    stack); the lineage comes back numbered from 0, as the labels' index."""
    view, table = consistent_labels(labels, lineage, min_area, first_frame)
    return np.asarray(view), table


def daughter_starts(rows: Iterable[Track]) -> Set[Tuple[int, int]]:
    """{(parent id, first frame)} of the tracks ``rows`` that have a parent: a track ``i`` ending on frame ``e``
    divides there when ``(i, e + 1)`` is in it (one set for every track: no pass over all rows per track)."""
    return {(row.parent, row.begin) for row in rows if row.parent}


def end_reason_at(track: Track, end: int, last_frame: int, divides: bool) -> str:
    """Why ``track`` ends on frame ``end`` once its pixels end there (hand edits, a later run, an export's cut at a
    gap): "run stopped" when it was still followed as a run stopped (its reason) and still ends where it ended; "end
    of stack" on ``last_frame``; "divided" when ``divides`` (daughters begin on ``end + 1``); its own reason when it
    still ends where it ended ("lost", "left the field"); otherwise "lost"."""
    if end == track.end and track.end_reason == "run stopped":
        return "run stopped"
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


Detection = Tuple[int, int, Tuple[float, ...], int]  # (track_id, frame, centroid ((z,) y, x), area)


def frame_detections(frame: int, plane: np.ndarray) -> List[Detection]:
    """(track_id, frame, centroid, area) of each id > 0 of one frame ``plane`` ((H, W) or (Z, H, W)), by id: the
    centroid is the mean of its pixels' coordinates, the same floats as :func:`scipy.ndimage.center_of_mass` gives
    (exact integer sums, one division)."""
    flat = np.flatnonzero(plane)
    if not len(flat):
        return []
    ids, inverse, counts = np.unique(plane.reshape(-1)[flat], return_inverse=True, return_counts=True)
    coordinates = np.unravel_index(flat, plane.shape)
    sums = [np.bincount(inverse, weights=axis, minlength=len(ids)) for axis in coordinates]
    centres = np.stack(sums, axis=1) / counts[:, None]
    return [(int(i), int(frame), tuple(float(c) for c in centre), int(n))
            for i, n, centre in zip(ids.tolist(), counts.tolist(), centres)]


def frame_centroids(labels: np.ndarray) -> List[Detection]:
    """(track_id, frame, centre, area) for every id in every frame of a label stack (T, *spatial): centre (y, x) of
    (T, H, W) labels, (z, y, x) of (T, Z, H, W); an (H, W) image is one frame, 0. Sorted by frame then id
    (:func:`frame_detections` of each frame)."""
    labels = labels[None] if labels.ndim == 2 else labels
    return [row for frame in range(labels.shape[0]) for row in frame_detections(frame, np.asarray(labels[frame]))]


def tracks_layer_data(result) -> Tuple[np.ndarray, Dict[int, List[int]]]:
    """napari Tracks layer input from a tracking result (anything with ``labels`` and ``lineage``).

    Returns data (N, 4) float [track_id, t, y, x] (sorted by track then frame, centroids of each id) and
    graph {child: [parent]} for napari to draw the lineage. Pure numpy: napari is not imported. t is the frame number
    the result's lineage gives: the labels' index plus ``result.first_frame`` (0, or ``first`` for a result of part of
    a movie, ``napari_sam2.track_cells(..., frames=(first, last))``: the movie's frames, where its labels overlay the
    movie as a Labels layer with ``translate=(first, 0, 0)``).
    """
    labels: np.ndarray = result.labels
    lineage: Lineage = result.lineage
    first = int(getattr(result, "first_frame", 0) or 0)
    rows = sorted((i, t + first, *centre) for i, t, centre, _ in frame_centroids(labels))
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
