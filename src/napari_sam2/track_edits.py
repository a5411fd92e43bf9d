"""Track-level edits of a :class:`~.track_all.TrackAll` tracking and its lineage from the pixels; no Qt.

* :func:`delete_track` / :func:`merge_track`: the panel's Delete track and Merge track into id, each one undoable step
  of the tracking (:meth:`~.track_all.TrackAll.relabel_step`).
* :func:`followed` / :func:`follow`: the lineage as the labels hold it after the person's hand edits (brush, fill,
  eraser, napari's own undo of them), from :func:`id_spans` and :func:`lineage_of_pixels`.
* :func:`seam_ids` / :func:`seam_lineage`: where a Track all run that stopped part-way (Cancel, a failure) meets the
  frames it did not reach, which hold the labels of before the run: which of the run's ids go on as a track of those
  frames or move out of their way, and the lineage of the whole stack then (the run's rows on its frames, the rows of
  before on the others).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Collection, Dict, Iterable, Iterator, List, Mapping, Sequence, Set, Tuple

import numpy as np

from sam2_model.tracking import Lineage, Track, TrackingResult
from sam2_model.tracking.lineage import daughter_starts, end_reason_at

from ._track_ids import frame_ranges
from .labels_writer import ids_in_plane
from .track_continuation import continuations

if TYPE_CHECKING:
    from .track_all import Step, TrackAll


def delete_track(tracking: TrackAll, track_id: int) -> Iterator[Step]:
    """Delete ``track_id`` of ``tracking``: its pixels on every frame and its lineage row (its daughters become roots),
    as one undoable step (kind "delete"). Reads every plane (run it in a worker); ValueError when no frame holds it."""
    track_id = _check_id(track_id, "track id")
    frames = [t for t in range(tracking.num_frames) if (tracking.plane(t) == track_id).any()]
    if not frames:
        raise ValueError(f"track {track_id} has no pixels on any frame: pick an id the masklets layer shows "
                         "(Track id box, or pick a label)")
    yield from tracking.relabel_step("delete", f"deleted track {track_id}", frames, track_id, 0)
    rows = {row.track_id: row for row in tracking.lineage.rows() if row.track_id != track_id}
    tracking.lineage = Lineage(dataclasses.replace(row, parent=0) if row.parent == track_id else row
                               for row in rows.values())
    yield "done", -1, 0, len(frames)


def merge_track(tracking: TrackAll, track_id: int, into: int) -> Iterator[Step]:
    """Relabel ``track_id`` as ``into`` on every frame of ``tracking`` (one undoable step, kind "merge"): merge two
    pieces of one cell (an id switch, a broken track), or relabel a track when ``into`` holds no pixels. The joined
    track begins with the first piece (its parent) and ends with the last (its end reason and daughters). Refused
    (ValueError naming the frames, nothing written) when both hold pixels on the same frame. Reads every plane (a
    worker)."""
    track_id, into = _check_id(track_id, "track id"), _check_id(into, "the id to merge into")
    if track_id == into:
        raise ValueError(f"cannot merge track {track_id} into itself: choose another id to merge into")
    source: List[int] = []
    target: List[int] = []
    for t in range(tracking.num_frames):
        ids = np.unique(tracking.plane(t))
        if track_id in ids:
            source.append(t)
        if into in ids:
            target.append(t)
    if not source:
        raise ValueError(f"track {track_id} has no pixels on any frame: pick an id the masklets layer shows")
    both = sorted(set(source) & set(target))
    if both:
        raise ValueError(f"tracks {track_id} and {into} are both on {frames_in_words(both)}: a track holds one cell "
                         f"per frame; erase one of them there first, or merge into an id not on those frames")
    kind = "merged" if target else "relabelled"
    what = f"{kind} track {track_id} into {into}" if target else f"relabelled {track_id} as {into}"
    yield from tracking.relabel_step("merge", what, source, track_id, into)
    tracking.lineage = _merged(tracking.lineage, track_id, into, source, target, tracking.num_frames)
    yield "done", -1, 0, len(source)


def followed(tracking: TrackAll, leave_out: Iterable[int] = (), lazy: bool = False) -> Tuple[Lineage, TrackingResult]:
    """The lineage of ``tracking`` as its labels now hold it (after hand edits: brush, fill, eraser), and its
    :meth:`~.track_all.TrackAll.result` with it (``lazy``: as there; True: its labels a view of the masklets read in
    place, each frame read once here, no copy of the stack).

    Reads every plane (call it in a worker thread). Tracks with no pixels left lose their row (their daughters
    become roots); the others begin and end where their pixels do, their end reason following
    (:func:`~sam2_model.tracking.lineage.end_reason_at`). A dropped row whose pixels came back (napari's undo of the
    stroke) is back with its daughters' links. The result's lineage also has the hand-painted ids."""
    result, spans = tracking.result_and_spans(leave_out, lazy)
    back = [row for i, row in dict(tracking.dropped).items()
            if i in spans and i not in tracking.lineage]  # napari's undo
    lineage = lineage_of_pixels(Lineage(_relinked(tracking.lineage.rows() + back, tracking.unlinked)), spans,
                                tracking.num_frames)
    rows = {row.track_id: row for row in result.lineage.rows() if row.track_id not in lineage
            and row.track_id in spans}  # the hand-painted ids
    rows.update((row.track_id, row) for row in lineage.rows())
    return lineage, dataclasses.replace(result, lineage=Lineage(rows.values()))


def follow(tracking: TrackAll, lineage: Lineage) -> None:
    """Give ``tracking`` ``lineage`` from :func:`followed` (on the thread that owns the tracking); the rows it dropped
    are kept aside (``tracking.dropped``), and so are the links of their daughters that lost their mother with them
    (``tracking.unlinked``), so that a track whose pixels come back (napari's own undo of the stroke) gets its row and
    its daughters back."""
    gone = {row.track_id for row in tracking.lineage.rows() if row.track_id not in lineage}
    tracking.dropped.update((row.track_id, row) for row in tracking.lineage.rows() if row.track_id in gone)
    tracking.unlinked.update((row.track_id, row.parent) for row in tracking.lineage.rows()
                             if row.parent in gone and row.track_id in lineage and not lineage[row.track_id].parent)
    for row in lineage.rows():
        tracking.dropped.pop(row.track_id, None)
        if row.parent:
            tracking.unlinked.pop(row.track_id, None)
    tracking.lineage = lineage


def _relinked(rows: List[Track], unlinked: Dict[int, int]) -> List[Track]:
    """``rows``, each daughter that :func:`follow` cut from its mother's dropped row (``unlinked``: {daughter:
    mother}) and that has no parent since linked to that mother again where ``rows`` hold her (her pixels came
    back)."""
    ids = {row.track_id for row in rows}
    return [dataclasses.replace(row, parent=unlinked[row.track_id])
            if not row.parent and unlinked.get(row.track_id) in ids else row for row in rows]


def id_spans(labels: Any) -> Dict[int, Tuple[int, int]]:
    """{id: (first frame, last frame)} of every id > 0 of (T, H, W) ``labels`` (an array, or any stack indexable by
    frame: e.g. a :class:`~.track_all.FramesView` of the masklets layer), in the order of their first frame, then of
    the ids. Each plane is read once and counted where it lies (:func:`.labels_writer.ids_in_plane`: its values other
    than 0 picked out and counted), never sorted nor copied whole (``np.unique`` sorted a copy of every plane)."""
    spans: Dict[int, Tuple[int, int]] = {}
    for t in range(len(labels)):
        for i in sorted(ids_in_plane(np.asarray(labels[t]))):
            spans[i] = (spans.get(i, (t, t))[0], t)
    return spans


def lineage_of_pixels(lineage: Lineage, spans: Dict[int, Tuple[int, int]], num_frames: int) -> Lineage:
    """``lineage``'s rows as the pixels hold them (``spans``: :func:`id_spans`): rows without pixels are dropped (their
    daughters become roots), the others begin and end where their pixels do, with the end reason that follows."""
    rows = {row.track_id: Track(row.track_id, *spans[row.track_id], row.parent, row.end_reason)
            for row in lineage.rows() if row.track_id in spans}
    rows = {i: row if row.parent in rows else dataclasses.replace(row, parent=0) for i, row in rows.items()}
    out = []
    starts = daughter_starts(rows.values())
    for i, row in rows.items():
        divides = (i, row.end + 1) in starts
        out.append(dataclasses.replace(row, end_reason=end_reason_at(lineage[i], row.end, num_frames - 1, divides)))
    return Lineage(out)


def _merged(lineage: Lineage, track_id: int, into: int, source: List[int], target: List[int],
            num_frames: int) -> Lineage:
    """``lineage`` after ``track_id`` (on frames ``source``) was relabelled ``into`` (on ``target``): one row for
    ``into``, from the first frame to the last, parent of the piece that begins first, end reason of the one that
    ends last; ``track_id``'s daughters become ``into``'s."""
    rows = {row.track_id: row for row in lineage.rows()}
    old, new = rows.pop(track_id, None), rows.get(into)
    frames = sorted(source + target)
    first = old if not target or min(source) < min(target) else new
    last = old if not target or max(source) > max(target) else new
    parent = first.parent if first is not None else 0
    reason = (last.end_reason if last is not None
              else end_reason_at(Track(into, frames[0], frames[-1], 0, "lost"), frames[-1], num_frames - 1, False))
    rows[into] = Track(into, frames[0], frames[-1], 0 if parent in (track_id, into) else parent, reason)
    joined = rows[into]

    def relinked(row: Track) -> Track:  # daughters of either go on from the joined track, if they begin after it ends
        parent = into if row.parent == track_id else row.parent
        if parent == into and row.begin <= joined.end:
            parent = 0
        return dataclasses.replace(row, parent=parent)

    return Lineage(relinked(row) if row.track_id != into else row for row in rows.values())


def _check_id(value: Any, what: str) -> int:
    """``value`` as a label id (1 .. 2**32 - 1), else ValueError naming ``what``."""
    if isinstance(value, bool) or int(value) != value or not 1 <= int(value) <= int(np.iinfo(np.uint32).max):
        raise ValueError(f"{what} must be a positive label id (1 to {np.iinfo(np.uint32).max}), got {value!r}")
    return int(value)


def frames_in_words(frames: Sequence[int], runs: int = 8) -> str:
    """"frame 3", "frames 0-11", "frames 0-2, 5, 7-8": consecutive frames as ranges; past ``runs`` ranges the first
    ones, then "… (N in all)" (N frames)."""
    frames = sorted(set(int(t) for t in frames))
    parts = frame_ranges(frames).split(", ")
    text = ", ".join(parts[:runs]) + (f", … ({len(frames)} in all)" if len(parts) > runs else "")
    return f"frame{'s' if len(frames) > 1 else ''} {text}"


def seam_ids(run_plane: np.ndarray, old_plane: np.ndarray, movable: Collection[int], linkable: Collection[int],
             taken: Collection[int], top: int) -> Dict[int, int]:
    """{run id: id it takes} on the frames of a run that stopped part-way, so that one id is one cell across the seam
    between the run's last frame (``run_plane``, (H, W): the run's ids) and the next frame, which holds the labels of
    before the run (``old_plane``, (H, W)).

    A run id of ``movable`` (the run's ids but those it continues from the frames before it) that is one cell with a
    track of ``linkable`` there (:func:`~.track_continuation.continuations`: IoU >= ``CONTINUE_IOU``, one to one)
    takes that track's id: the track goes on through the seam. One that is not and that is in ``taken`` (the ids the
    frames the run did not reach hold: a same number for another cell) takes a new id above ``top``, in the order of
    the ids. The others keep theirs (not in the result)."""
    movable = set(int(i) for i in movable)
    mine = np.where(np.isin(run_plane, np.fromiter(movable, dtype=np.int64)), run_plane, 0)
    links = continuations(old_plane, mine, linkable)
    taken = set(int(i) for i in taken)
    moved: Dict[int, int] = {}
    for run_id in sorted(movable):
        if run_id in links:
            target = links[run_id]
        elif run_id in taken:
            top += 1
            target = top
        else:
            continue
        if target != run_id:
            moved[run_id] = target
    return moved


def seam_lineage(ran: Lineage, before: Lineage, spans: Mapping[int, Tuple[int, int]],
                 spans_before: Mapping[int, Tuple[int, int]], unreached: Set[int], run_frames: Set[int],
                 num_frames: int) -> Lineage:
    """The lineage of a stack after a forward Track all run stopped part-way: every id with pixels and a row gets one.

    ran: the run's lineage on the frames before it and its own (its ids as :func:`seam_ids` left them); before: the
    lineage before the run; spans / spans_before: {id: (first, last) frame} of the labels now / before the run;
    unreached: the ids the frames the run did not reach hold (as before the run); run_frames: the frames it wrote.

    An id the run wrote that goes on in the frames not reached is one track: its begin and parent the run's, its end
    reason the one of before. A track of before on the frames not reached keeps its parent where the division is
    still in the labels (the daughter begins and the mother ends where they did, on frames the run did not write), so
    the divisions past the seam stay. Every row begins and ends where its pixels do, and ends for the reason that
    follows (:func:`~sam2_model.tracking.lineage.end_reason_at`). Ids without a row before or from the run (painted by
    hand) get none here (:meth:`~.track_all.TrackAll.result` adds them)."""
    pieces: Dict[int, Tuple[Track, Track]] = {}  # id -> (the piece that begins first, the piece that ends last)
    for track_id in spans:
        mine = ran[track_id] if track_id in ran else None
        old = before[track_id] if track_id in unreached and track_id in before else None
        if mine is not None or old is not None:
            pieces[track_id] = (mine or old, old or mine)

    def division_kept(track_id: int, parent: int) -> bool:
        end = spans_before.get(parent, (0, -1))[1]
        return (parent in spans and spans[parent][1] == end and end not in run_frames
                and spans[track_id][0] == spans_before.get(track_id, (None,))[0])

    rows = {}
    for track_id, (first, last) in pieces.items():
        parent = first.parent
        if first is last and track_id not in ran and parent and not division_kept(track_id, parent):
            parent = 0
        rows[track_id] = Track(track_id, *spans[track_id], parent, last.end_reason)
    rows = {i: row if row.parent in rows else dataclasses.replace(row, parent=0) for i, row in rows.items()}
    starts = daughter_starts(rows.values())
    return Lineage(dataclasses.replace(row, end_reason=end_reason_at(
        pieces[i][1], row.end, num_frames - 1, (i, row.end + 1) in starts)) for i, row in rows.items())
