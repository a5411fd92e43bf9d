"""Track every cell of an image's stack into its labels array, correct one cell, undo; no Qt.

:class:`TrackAll` holds one image's automatic-tracking result: the labels array it writes into (the
masklets Labels layer's data, any layout: each frame is one plane ``labels[index_of(t)]``), the lineage
of the tracks, and an undo stack. Its runs are generators that the dock widget runs in a worker
thread (scripts run them directly):

* :meth:`TrackAll.track` runs :class:`sam2_model.tracking.CellTracker` from a start frame and writes
  each frame whole, in one assignment, through a :class:`~.labels_writer.RunJournal`; a run that is
  cancelled or fails therefore leaves whole frames (tracked or as before) and a lineage of both (the run's on its
  frames, the one of before on the others: :meth:`TrackAll.track` says how they meet), and :meth:`TrackAll.undo`
  restores every plane it wrote, and the lineage. A run from a later frame continues the tracks of the frame
  before it (same ids, by overlap).
* :meth:`TrackAll.correct` re-segments one track from the person's clicks on one frame and propagates
  that object alone (a new :class:`sam2_model.VideoSession` holding only it) forwards until the track
  ends (its division, or the end of the stack / when it is lost); on every frame it writes, only that
  track's pixels change: its old pixels are cleared and the new mask is painted on background only.

Steps yielded: ``(kind, frame, n_active, total)`` with kind "plan" (total frames to do), "frame"
(a frame was written), "done"; :meth:`TrackAll.track` also yields ``("work", frame, done, WORK_TOTAL)`` between the
pieces of model work inside a frame (``done`` of ``WORK_TOTAL``: how much of that frame's work is done, never going
down within it), so that progress moves and Cancel acts within a frame (one model call later); a frame is still
written whole, once done; and ``("note", frame, 0, 0)`` once, when :attr:`TrackAll.advice` gets a line for the user
(too many candidate cells on that frame: the cell diameter range to set). While a run goes on,
:attr:`TrackAll.work` says its last "work" step in words, with counts and the time left (e.g. "seeding: 362/1086 seeds
placed, 140 cells found, about 3 min left": :meth:`sam2_model.tracking.tracker.WorkStep.describe`), and each "work"
step carries its own words (a :class:`WorkSays`: ``step.words``), so that a step relayed to another thread is said with
the words of its frame, not of the one the run is on by then.
:func:`thin_work` passes on one "work" step per percent of a frame, and one at least every ``WORK_SECONDS`` while
steps come (a crowded frame's seeding moves less than a percent a minute; the panel's worker relays its steps to the GUI
thread).

Delete / merge a track and the lineage that follows hand edits live in :mod:`.track_edits` (TrackAll's methods of
the same names call them), how a run continues the tracks of the frame before it in :mod:`.track_continuation`, the
console's ``track_cells`` in :mod:`.console_tracking`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from sam2_model.frames import FrameSource
from sam2_model.tracking import (
    SEEDINGS, CellTracker, Lineage, Track, TrackingResult, finish_divisions, tracks_layer_data,
)
from sam2_model.tracking.tracker import WorkStep
from sam2_model.tracking.detection import check_cell_diameter
from sam2_model.tracking.lineage import daughter_starts, end_reason_at

from . import track_edits
from .labels_writer import EditedSince, RunJournal, hashable_index, plane_checksum, planes_touched, watch_writes
from .layout import StackLayout
from .prompts import FramePrompt, collect_prompts
from .track_continuation import continuations, joined_lineage, relabel_ids

if TYPE_CHECKING:  # the model and its session (torch) are imported when a run needs them
    from sam2_model import SAM2Model

Step = Tuple[str, int, int, int]


class WorkSays(tuple):
    """A ``("work", frame, done, total)`` step of :meth:`TrackAll.track` (it unpacks and compares as that tuple) that
    also carries ``words``: that step's work in words (:meth:`sam2_model.tracking.tracker.WorkStep.describe`, e.g.
    "seeding: 362/1086 seeds placed, 140 cells found, about 3 min left"; "" when it has none)."""

    words: str

    def __new__(cls, frame: int, done: int, total: int, words: str = "") -> "WorkSays":
        step = super().__new__(cls, ("work", int(frame), int(done), int(total)))
        step.words = str(words)
        return step
WORK_TOTAL = 1000  # a "work" step's total: its done is the share of the frame's work done, in thousandths
WORK_STEP = WORK_TOTAL // 100  # thin_work passes on one "work" step of a frame per this much of its work (1 %)
WORK_SECONDS = 1.0  # ... and one at least this often (its counts and time left move on a slow frame)
IndexOf = Callable[[int], Tuple[Any, ...]]


@dataclass(frozen=True)
class TrackAllOptions:
    """The panel's choices (see :class:`sam2_model.tracking.CellTracker` for what each does).

    seeding: one of ``SEEDINGS``; cell_diameter: (min, max) pixels; redetect_every: frames between
    detections (>= 1); divisions: split a track when its cell divides.
    """

    seeding: str = "blobs"
    cell_diameter: Tuple[float, float] = (8.0, 40.0)
    redetect_every: int = 5
    divisions: bool = True

    def __post_init__(self) -> None:
        if self.seeding not in SEEDINGS:
            raise ValueError(f"seeding must be one of {SEEDINGS}, got {self.seeding!r}")
        check_cell_diameter(self.cell_diameter)  # the tracker's own rule and words
        if isinstance(self.redetect_every, bool) or int(self.redetect_every) != self.redetect_every \
                or self.redetect_every < 1:
            raise ValueError(f"redetect_every must be an integer >= 1 (frames), got {self.redetect_every!r}")

    def tracker_kwargs(self) -> Dict[str, Any]:
        return {"seeding": self.seeding, "cell_diameter": tuple(float(v) for v in self.cell_diameter),
                "redetect_every": int(self.redetect_every), "divisions": bool(self.divisions)}


@dataclass(eq=False)
class TrackRun:
    """One undoable run ("track") or correction ("correct"): the planes it wrote (and their checksums as written,
    in its journal) and the lineage before."""

    kind: str
    journal: RunJournal
    lineage_before: Lineage
    frames: List[int] = field(default_factory=list)  # frames written, in order
    continued: Dict[int, int] = field(default_factory=dict)  # a "track" run's {new id: kept track it continues}
    what: str = ""  # a "delete" / "merge" step in words


class LabelsChanged(RuntimeError):
    """A frame of the labels changed while a :class:`FramesView` that watches them was being read (an export read
    them in place): what was read does not describe one state of the labels, so nothing may be written from it."""


@dataclass(frozen=True)
class FramesView:
    """A (T, H, W) stack that reads a tracking's labels array in place, one frame when it is indexed (the writers of
    :mod:`.track_export` read a frame at a time): ``view[t]`` is frame t's (H, W) plane ``labels[index_of(t)]``, the
    ids ``cleared`` read as 0 (then a new plane; otherwise a read-only view of the labels' own plane where they are a
    numpy array); ``np.asarray(view)`` is a copy of the stack, filled a plane at a time. Nothing is copied until a
    frame is read, so the labels must not change while a view is in use; one made with ``watch=True`` checks it:
    a frame read again that differs from its first read (a crc32 of its plane) raises :class:`LabelsChanged`. Make one
    with :meth:`of`."""

    labels: Any
    index_of: IndexOf
    shape: Tuple[int, int, int]
    dtype: np.dtype
    cleared: np.ndarray  # int64 ids read as 0
    watch: bool = False
    read: Dict[int, int] = field(default_factory=dict, compare=False)  # watched: frame -> crc32 of its first read

    @classmethod
    def of(cls, labels: Any, num_frames: int, index_of: IndexOf, cleared: Iterable[int] = (),
           watch: bool = False) -> "FramesView":
        """The view of ``num_frames`` frames of ``labels`` (any layout whose frames are its last two axes, e.g. a
        Labels layer's data; ``index_of(t)``: frame t's plane index)."""
        shape = tuple(int(n) for n in np.shape(labels)[-2:])
        dtype = getattr(labels, "dtype", None)
        dtype = np.dtype(np.asarray(labels[index_of(0)]).dtype if dtype is None else dtype)
        return cls(labels, index_of, (int(num_frames), *shape), dtype,
                   np.fromiter(sorted(set(int(i) for i in cleared)), dtype=np.int64), watch)

    @property
    def ndim(self) -> int:
        return 3

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, frame: int) -> np.ndarray:
        t = int(frame)
        if not -len(self) <= t < len(self):
            raise IndexError(f"frame {t} is out of range for a stack of {len(self)} frames")
        t %= len(self)
        plane = np.asarray(self.labels[self.index_of(t)])
        if self.watch:
            now = plane_checksum(plane)
            if self.read.setdefault(t, now) != now:
                raise LabelsChanged(f"frame {t} of the labels changed while they were being read (painted or written "
                                    "meanwhile); try again once the change is done")
        if len(self.cleared):
            plane = plane.copy()
            plane[self._cleared_in(plane)] = 0
            return plane
        plane = plane.view()
        plane.flags.writeable = False  # the labels' own pixels: read, never written through this
        return plane

    def _cleared_in(self, plane: np.ndarray) -> np.ndarray:
        """(H, W) bool: the pixels of ``plane`` that hold a cleared id (a few ids: compared one by one, 20 times faster
        than ``np.isin`` on a 1024 x 1024 plane)."""
        if len(self.cleared) > 8:
            return np.isin(plane, self.cleared)
        ids = self.cleared.tolist()  # Python ints: compared in the plane's own dtype
        mask = plane == ids[0]
        for i in ids[1:]:
            mask |= plane == i
        return mask

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[t] for t in range(len(self)))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        stack = np.empty(self.shape, self.dtype)
        for t in range(len(self)):
            stack[t] = self[t]
        return stack if dtype is None else stack.astype(dtype, copy=False)


def _copy(lineage: Lineage) -> Lineage:
    return Lineage(lineage.rows())


class TrackAll:
    """One image's automatic tracking: labels (written in place), lineage, undo stack.

    labels: the array to write (e.g. the Labels layer's data); num_frames: frames of the stack;
    index_of(t): the index of frame t's (H, W) plane in ``labels`` (default ``(t,)``).
    """

    def __init__(self, labels: Any, num_frames: int, index_of: Optional[IndexOf] = None) -> None:
        self.labels = labels
        self.num_frames = int(num_frames)
        self.index_of: IndexOf = index_of or (lambda t: (t,))
        self.lineage = Lineage()
        self.history: List[TrackRun] = []
        self.dropped: Dict[int, Track] = {}  # rows :meth:`follow` dropped (their pixels were erased by hand)
        self.unlinked: Dict[int, int] = {}  # {daughter: mother} links :meth:`follow` cut with a dropped mother's row
        self.note = ""  # the last run's note for the user (no cell found on any frame it tracked), else ""
        # the last step's advice for the user on its options, from the frame it concerns on (a "note" step says when it
        # comes): too many candidate cells on a frame of a run ("frame 0: 1029 candidate cells ..."); else "" (a
        # correction, Delete or Merge track resets it)
        self.advice = ""
        # the running track's last "work" step in words (WorkStep.describe: its stage, counts, time left); "" between
        # runs and on a frame's start
        self.work = ""
        # frame -> ids this tracking's writes removed from that frame and that no journal write has put back since
        self._erased: Dict[int, frozenset] = {}
        self._frame_at = {hashable_index(self.index_of(t)): t for t in range(self.num_frames)}  # plane index -> frame
        # frame -> (H, W) bool: the pixels painted by hand (brush, fill, eraser) while a run goes on, which its writes
        # of that frame keep as painted (the dock's panel fills it on the GUI thread from the strokes' paint events
        # and empties it when the run ends: :func:`painted_pixels`); a run writes its other pixels whole
        self.painted: Dict[int, np.ndarray] = {}
        watch_writes(labels, self._on_written)

    # ------------------------------------------------------------------ reading
    def plane(self, t: int) -> np.ndarray:
        return np.asarray(self.labels[self.index_of(t)])

    def label_planes(self) -> np.ndarray:
        """(T, H, W) the labels of every frame (a copy)."""
        return np.asarray(self.frames_view())

    def frames_view(self, cleared: Iterable[int] = (), watch: bool = False) -> "FramesView":
        """The labels of every frame as a (T, H, W) :class:`FramesView`: read in place when a frame is indexed, ids
        ``cleared`` read as 0 (``watch``: a frame that changes between two reads raises :class:`LabelsChanged`);
        nothing is copied here."""
        return FramesView.of(self.labels, self.num_frames, self.index_of, cleared, watch)

    def stroke_frames(self, atoms: Any, channel_axis: Optional[int] = None) -> set:
        """The frames whose planes a napari Labels history item ``atoms`` (a paint event's ``value``: a brush / fill /
        eraser stroke on the labels) changed; every frame when it does not say
        (:func:`.labels_writer.planes_touched`). ``channel_axis``: where the layer painted shows a size-1 channel axis
        that these labels lack (the masklets of a (T, C, Y, X) or (C, T, Y, X) image): the stroke's index there is 0."""
        planes = self._frame_at
        if channel_axis is not None:
            planes = {(*key[:channel_axis], 0, *key[channel_axis:]): t for key, t in planes.items()}
        return planes_touched(atoms, planes)

    def result(self, leave_out: Iterable[int] = (), lazy: bool = False) -> TrackingResult:
        """The labels (T, H, W) and lineage as a :class:`TrackingResult` (for the writers and Tracks data): every id
        > 0 of the labels but ``leave_out`` (ids another tool exports, e.g. the segmentation widget's objects; a
        track's id is never left out), so exports and the Tracks layer hold what the masklets layer shows. An id
        without a lineage row (a cell painted by hand) gets one: begin and end from its pixels, no parent, ended
        "end of stack" on the last frame, else "lost" (:meth:`untracked_ids` names them).

        lazy=False: the labels are a copy (the labels' dtype). lazy=True: they are a :class:`FramesView` of the labels
        themselves, each frame read (and ``leave_out`` cleared from it) when it is indexed: no copy of the stack, for
        writers that read a frame at a time (the exports: :func:`.track_export.export_tracking`); the labels must not
        change until the result is used up (the panel's export holds the masklets layer still meanwhile), and a frame
        that changes between two of its reads raises :class:`LabelsChanged` (a writer then writes nothing)."""
        return self.result_and_spans(leave_out, lazy)[0]

    def result_and_spans(self, leave_out: Iterable[int] = (), lazy: bool = False
                         ) -> Tuple[TrackingResult, Dict[int, Tuple[int, int]]]:
        """:meth:`result` and {id: (first frame, last frame)} of every id its labels hold
        (:func:`.track_edits.id_spans`), from one pass over the stack."""
        rows = {row.track_id: row for row in self.lineage.rows()}
        view = self.frames_view(set(int(i) for i in leave_out) - set(rows), watch=lazy)
        planes = view if lazy else np.asarray(view)  # a copy is filled plane by plane (no stack-sized temporaries)
        spans = track_edits.id_spans(planes)
        last = self.num_frames - 1
        added = [Track(i, b, e, 0, end_reason_at(Track(i, b, e, 0, "lost"), e, last, False))
                 for i, (b, e) in sorted(spans.items()) if i not in rows]
        result = TrackingResult(labels=planes, lineage=Lineage(list(rows.values()) + added),
                                frames_tracked=sorted({t for run in self.history for t in run.frames}), note=self.note)
        return result, spans

    def untracked_ids(self, result: TrackingResult) -> List[int]:
        """The ids of ``result`` (from :meth:`result`) that no run or correction of this tracking made: cells painted
        by hand, which :meth:`result` added as tracks."""
        return sorted({row.track_id for row in result.lineage.rows()} - {row.track_id for row in self.lineage.rows()})

    def tracks_data(self, leave_out: Iterable[int] = ()) -> Tuple[np.ndarray, Dict[int, List[int]]]:
        """napari Tracks data (N, 4) [track, t, y, x] and graph {child: [parent]} of :meth:`result`."""
        return tracks_layer_data(self.result(leave_out))

    def followed(self, leave_out: Iterable[int] = ()) -> Tuple[Lineage, TrackingResult]:
        """The lineage as the labels now hold it (after hand edits), and :meth:`result` with it
        (:func:`.track_edits.followed`; reads every plane: call it in a worker thread)."""
        return track_edits.followed(self, leave_out)

    def follow(self, lineage: Lineage) -> None:
        """Take ``lineage`` from :meth:`followed` (:func:`.track_edits.follow`; on the thread that owns this
        tracking)."""
        track_edits.follow(self, lineage)

    # ------------------------------------------------------------------ track-level edits
    def delete_track(self, track_id: int) -> Iterator[Step]:
        """Delete ``track_id`` as one undoable step (kind "delete"): :func:`.track_edits.delete_track`."""
        return track_edits.delete_track(self, track_id)

    def merge_track(self, track_id: int, into: int) -> Iterator[Step]:
        """Relabel ``track_id`` as ``into`` as one undoable step (kind "merge"): :func:`.track_edits.merge_track`."""
        return track_edits.merge_track(self, track_id, into)

    def relabel_step(self, kind: str, what: str, frames: List[int], old: int, new: int) -> Iterator[Step]:
        """Write ``old`` -> ``new`` on ``frames`` as one undoable step (a :class:`TrackRun` of ``kind``, ``what`` in
        words, on the undo stack from its first frame); the caller updates the lineage after it. Cancelled (closed)
        or failed part-way, the step is undone whole (its journal; it leaves the undo stack): nothing changes."""
        run = TrackRun(kind, RunJournal(), _copy(self.lineage), what=what)
        self.advice = ""
        finished = False
        try:
            yield from self._relabel_frames(run, frames, old, new)
            finished = True
        finally:
            if not finished:
                self._revert(run)

    def _revert(self, run: TrackRun) -> None:
        """Undo ``run``'s writes (its journal) and take it off the undo stack; the lineage is as before it."""
        if self.history and self.history[-1] is run:
            self.history.pop()
        run.journal.undo(self.labels)
        run.frames.clear()
        self.lineage = run.lineage_before

    def _relabel_frames(self, run: TrackRun, frames: List[int], old: int, new: int) -> Iterator[Step]:
        """Write ``old`` -> ``new`` on ``frames`` through ``run``'s journal (on the undo stack from its first frame)."""
        self.history.append(run)
        try:
            yield "plan", frames[0], 0, len(frames)
            for t in frames:
                plane = self.plane(t).copy()
                plane[plane == old] = new
                self._write(run, t, plane)
                yield "frame", t, 1, len(frames)
        finally:
            self._drop_if_empty(run)

    # ------------------------------------------------------------------ writing
    def _write(self, run: TrackRun, t: int, plane: np.ndarray) -> frozenset:
        """Write ``plane`` as frame ``t`` through ``run``'s journal; returns the ids > 0 it holds."""
        old = np.asarray(self.labels[self.index_of(t)])
        plane = plane.astype(old.dtype, copy=False)
        kept = self.painted.get(t) if run.kind == "track" else None
        if kept is not None:  # strokes painted during the run stay (as the widget's Propagate keeps them)
            plane = np.where(kept, old, plane)
        held = frozenset(np.unique(plane).tolist())
        gone = frozenset(np.unique(old).tolist()) - held
        run.journal.write(self.labels, self.index_of(t), plane)  # (its own watcher drops ids the plane holds)
        if gone:
            self._erased[t] = self._erased.get(t, frozenset()) | gone
        run.frames.append(t)
        return held - {0}

    def _on_written(self, index: Tuple[Any, ...], plane: np.ndarray) -> None:
        """A journal wrote ``plane`` at ``labels[index]`` (this tracking, an undo, the segmentation widget): ids it
        holds are no longer erased there."""
        t = self._frame_at.get(hashable_index(index))
        ids = self._erased.get(t)
        if ids:
            back = frozenset(np.unique(plane[np.isin(plane, list(ids))]).tolist())
            if ids - back:
                self._erased[t] = ids - back
            else:
                self._erased.pop(t, None)

    def erased(self, ids: Iterable[int]) -> Dict[int, List[int]]:
        """{id: frames} for each of ``ids`` (e.g. the segmentation widget's objects) that a run or correction of this
        tracking removed from those frames (it replaces frames whole) and that no later write put back: what the
        labels hold, from what the writers wrote (no frame is read)."""
        wanted = set(int(i) for i in ids)
        found: Dict[int, List[int]] = {}
        for t, gone in sorted(dict(self._erased).items()):
            for obj in wanted & gone:
                found.setdefault(obj, []).append(t)
        return found

    def _ids_by_frame(self) -> Dict[int, frozenset]:
        """{frame: the ids > 0 it holds} of every frame that holds some (reads every plane)."""
        held: Dict[int, frozenset] = {}
        for t in range(self.num_frames):
            plane = self.plane(t)
            if plane.any():
                held[t] = frozenset(np.unique(plane).tolist()) - {0}
        return held

    def track(self, model: SAM2Model, frames: Any, start_frame: int = 0,
              options: Optional[TrackAllOptions] = None, reserved: Iterable[int] = ()) -> Iterator[Step]:
        """Track every cell from ``start_frame`` to the end of ``frames`` ((T, H, W[, C]) or a FrameSource).

        Frames from the start on are replaced whole; ids continue above the labels kept on the other
        frames and above ``reserved`` (ids another tool holds, e.g. the segmentation widget's objects,
        so that its writes and this run's never share an id). A forward run from a frame s > 0 continues the
        tracks of frame s - 1: a cell found on frame s takes the id of the track it overlaps most there (one to
        one, IoU >= :data:`.track_continuation.CONTINUE_IOU`; ``TrackRun.continued``); a kept track that does not go
        on ends at its last frame before s ("lost"). The run is on the undo stack from its first frame (a cancelled run
        is undone like a finished one); the lineage is updated after every frame. Inside a frame "work" steps come
        between the pieces of model work: closed after one (Cancel), the run stops there and that frame is as before.

        Stopped part-way (closed: Cancel; or failed), the frames it did not reach hold the labels of before, and the
        run meets them at a seam, its last frame d and the next: a track of the run that is one cell with a track of
        those frames there (IoU >= ``CONTINUE_IOU``, one to one; :func:`.track_edits.seam_ids`; a track no frame before
        s holds) takes that track's id on the run's frames and goes on as one track (the run's begin and parent, the old end and end reason, and
        the daughters of a division past the seam); a track of the run that is not, whose id those frames hold for
        another cell (a rerun numbers its tracks from the same start), takes a new id above every id on the stack; the
        tracks it continues from the frames before s keep theirs. The run's frames are rewritten for this (journal
        writes of the run: Undo restores them too). The lineage then holds the run's rows for its frames and the rows
        of before for the frames not reached, each beginning and ending where its pixels do
        (:func:`.track_edits.seam_lineage`): it agrees with the labels on every frame.
        """
        options = options or TrackAllOptions()
        kwargs = options.tracker_kwargs()
        # the detector looks for the cells the model is shown: dark ones where the frames are inverted for it
        kwargs["invert"] = bool(kwargs.get("invert", False) or getattr(frames, "invert", False))
        tracker = CellTracker(model, frames, start_frame=start_frame, **kwargs)
        if tracker.num_frames != self.num_frames:
            tracker.session.close()
            raise ValueError(f"frames has {tracker.num_frames} frames but the labels have {self.num_frames}")
        order = tracker.order
        self.advice = ""
        held = self._ids_by_frame()  # the ids of every frame before the run (the frames it does not reach keep them)
        outside = [t for t in range(self.num_frames) if t not in set(order)]
        last_seen = {i: t for t in outside for i in held.get(t, ())}  # {id on a frame outside the run: its last there}
        offset = max([0, *last_seen, *(int(i) for i in reserved)])
        kept = [t for t in self.lineage.rows() if t.track_id in last_seen]
        before = order[0] - 1 if not tracker.reverse and order[0] > 0 else None  # the frame the run continues
        run = TrackRun("track", RunJournal(), _copy(self.lineage))
        self.history.append(run)
        steps = tracker.run(work=True)
        planes: Dict[int, np.ndarray] = {}
        wrote: Dict[int, frozenset] = {}  # frame -> the ids the run wrote there

        def place(plane: np.ndarray) -> np.ndarray:  # the tracker's ids -> this labels array's
            return relabel_ids(np.where(plane > 0, plane.astype(np.int64) + offset, 0), run.continued)

        def lineage() -> Lineage:
            return joined_lineage(kept, [_shift(row, offset) for row in tracker.lineage.rows()], run.continued,
                           None if tracker.reverse else order[0], last_seen)

        try:
            yield "plan", int(start_frame), 0, len(order)
            for step in steps:
                if isinstance(step, WorkStep):  # inside a frame: nothing is written until it is done
                    self.work = step.describe()
                    yield WorkSays(step.frame, int(step.fraction * WORK_TOTAL), WORK_TOTAL, self.work)
                    advice = getattr(tracker.detector, "advice", "")
                    if advice and not self.advice:  # as soon as the detector has it (before the clicks it warns of)
                        self.advice = f"frame {step.frame}: {advice}"
                        yield "note", int(step.frame), 0, 0
                    continue
                t, plane, active = step
                planes[t] = plane
                if t == order[0] and before is not None:
                    run.continued = continuations(self.plane(before), place(plane), {row.track_id for row in kept})
                wrote[t] = self._write(run, t, place(plane))
                self.lineage = lineage()
                self.work = ""
                yield "frame", int(t), int(active), len(order)
            if len(planes) == len(order):  # finished: the same end-of-run division steps as track_cells
                self._finish(run, tracker, planes, frames, place)
                self.lineage = lineage()
            self.note = tracker.note
        finally:
            self.work = ""
            steps.close()  # (closed inside a frame, the tracker's lineage is the one of the frames written)
            if wrote and len(wrote) < len(order) and not tracker.reverse:  # stopped part-way
                self._seam(run, order, held, wrote, offset, lineage())
            self._drop_if_empty(run)
        yield "done", -1, 0, len(order)

    def _seam(self, run: TrackRun, order: Sequence[int], held: Dict[int, frozenset], wrote: Dict[int, frozenset],
              floor: int, ran: Lineage) -> None:
        """Join a forward run that stopped part-way to the frames it did not reach (see :meth:`track`): move the run's
        ids that go on there, or clash with theirs, on its frames (:func:`.track_edits.seam_ids`), then the lineage of
        both (:func:`.track_edits.seam_lineage`). held: {frame: ids} before the run; wrote: {frame: ids} the run wrote;
        floor: the lowest id the run may take; ran: the run's lineage (its rows and those of the frames before it)."""
        unreached = [t for t in order if t not in wrote]
        outside = set(range(self.num_frames)) - set(order)
        kept_ids = frozenset().union(*(held.get(t, ()) for t in outside))
        old_ids = frozenset().union(*(held.get(t, ()) for t in unreached))
        run_ids = frozenset().union(*wrote.values())
        moved = track_edits.seam_ids(
            self.plane(max(wrote)), self.plane(unreached[0]), run_ids - kept_ids, old_ids - kept_ids, old_ids,
            max([floor, *run_ids, *frozenset().union(*held.values())]))
        if moved:
            for t in sorted(wrote):
                if wrote[t] & moved.keys():
                    wrote[t] = self._write(run, t, relabel_ids(self.plane(t), moved))
        now = {t: wrote.get(t, held.get(t, frozenset())) for t in range(self.num_frames)}
        spans, spans_before = _spans(now), _spans(held)
        rows = [Track(moved.get(row.track_id, row.track_id), row.begin, row.end, moved.get(row.parent, row.parent),
                      row.end_reason) for row in ran.rows()]
        self.lineage = track_edits.seam_lineage(Lineage(rows), run.lineage_before, spans, spans_before, set(old_ids),
                                                set(wrote), self.num_frames)

    def _finish(self, run: TrackRun, tracker: CellTracker, planes: Dict[int, np.ndarray], frames: Any,
                place: Callable[[np.ndarray], np.ndarray]) -> None:
        """Undo fragment divisions and back-date late ones (``finish_divisions``); rewrite changed frames (the
        tracker's ids through ``place``)."""
        order = sorted(planes)
        stack = np.zeros((self.num_frames, *planes[order[0]].shape), dtype=np.uint32)
        for t in order:
            stack[t] = planes[t]
        before = stack.copy()
        finish_divisions(tracker, stack, frames)
        for t in order:
            if not np.array_equal(stack[t], before[t]):
                self._write(run, t, place(stack[t]))

    def correct(self, model: SAM2Model, frames: Any, track_id: int, frame: int, points: Any, point_labels: Any,
                max_lost_frames: int = 3) -> Iterator[Step]:
        """Re-segment ``track_id`` on ``frame`` from clicks and re-propagate it alone, forwards.

        points: (N, 2) (x, y) pixels of the frame; point_labels: (N,) 1 positive, 0 negative. Propagation
        stops at the track's last frame when it divided (its daughters are left as they are), otherwise at
        the end of the stack or after ``max_lost_frames`` empty frames (later pixels of the track are
        cleared: it ended). Only this track's pixels change; the new mask is painted on background only.
        """
        track_id = int(track_id)
        if not 1 <= track_id <= int(np.iinfo(np.uint32).max):
            raise ValueError(f"track_id must be a positive label id, got {track_id}")
        if not 0 <= int(frame) < self.num_frames:
            raise ValueError(f"frame must be in 0..{self.num_frames - 1}, got {frame}")
        frame = int(frame)
        children = self.lineage.children(track_id) if track_id in self.lineage else []
        last = self.num_frames - 1
        if children:
            last = self.lineage[track_id].end
            if frame > last:
                raise ValueError(f"track {track_id} divided into {children} after frame {last}; correct one of "
                                 f"its daughters on frame {frame}, or, if it did not divide, delete the false daughter "
                                 f"and merge the other into {track_id} (docs/plugin.md, 'A false division')")
        from sam2_model import VideoSession

        session = VideoSession(model, frames, non_overlap_masks=False)
        self.advice = ""
        run = TrackRun("correct", RunJournal(), _copy(self.lineage))
        self.history.append(run)
        total = last - frame + 1
        try:
            logits = session.add_prompt(frame, track_id, points=points, labels=point_labels)
            yield "plan", frame, 1, total
            self._paint(run, frame, track_id, logits[0] > 0)
            yield "frame", frame, 1, total
            lost = 0
            if frame < last:
                for t, _, out in session.propagate(start_frame=frame, max_frames=last - frame, output="masks"):
                    if t == frame:
                        continue
                    mask = out[0]
                    lost = 0 if mask.any() else lost + 1
                    self._paint(run, t, track_id, mask)
                    yield "frame", int(t), int(lost == 0), total
                    if lost >= max_lost_frames:
                        break
            if lost >= max_lost_frames:  # the cell ended: its older pixels after this are gone too
                for t in range(run.frames[-1] + 1, last + 1):
                    if (self.plane(t) == track_id).any():
                        self._paint(run, t, track_id, None)
        finally:  # also when cancelled: the lineage follows the frames written
            session.close()
            if run.frames:
                self._relineage(track_id)
            self._drop_if_empty(run)
        yield "done", -1, 0, total

    def _drop_if_empty(self, run: TrackRun) -> None:
        """A run that wrote nothing (it failed or was cancelled before its first frame) is not undoable."""
        if not run.frames and self.history and self.history[-1] is run:
            self.history.pop()

    def _paint(self, run: TrackRun, t: int, track_id: int, mask: Optional[np.ndarray]) -> None:
        plane = self.plane(t).copy()
        plane[plane == track_id] = 0
        if mask is not None:
            plane[mask & (plane == 0)] = track_id
        self._write(run, t, plane)

    def _relineage(self, track_id: int) -> None:
        """Begin/end of ``track_id`` from its pixels (its parent and children links are kept), its end reason as the
        lineage that follows hand edits gives it (:func:`~sam2_model.tracking.lineage.end_reason_at`)."""
        present = [t for t in range(self.num_frames) if (self.plane(t) == track_id).any()]
        rows = {row.track_id: row for row in self.lineage.rows()}
        old = rows.get(track_id)
        if not present:
            rows.pop(track_id, None)
            for child, row in list(rows.items()):
                if row.parent == track_id:
                    rows[child] = Track(row.track_id, row.begin, row.end, 0, row.end_reason)
        else:
            begin, end = present[0], present[-1]
            divides = (track_id, end + 1) in daughter_starts(rows.values())
            known = old if old is not None else Track(track_id, begin, end, 0, "lost")
            reason = end_reason_at(known, end, self.num_frames - 1, divides)
            rows[track_id] = Track(track_id, begin, end, old.parent if old is not None else 0, reason)
        self.lineage = Lineage(rows.values())

    # ------------------------------------------------------------------ undo
    def edited_since(self, run: TrackRun) -> List[int]:
        """Frames that ``run`` wrote and that changed since (by other tools)."""
        return [t for t in dict.fromkeys(run.frames) if not run.journal.holds(self.labels, self.index_of(t))]

    def wrote_last(self, t: int) -> bool:
        """Whether frame ``t`` holds exactly what a run or correction still on the undo stack wrote there."""
        return any(run.journal.holds(self.labels, self.index_of(t)) for run in self.history)

    def undo(self) -> Optional[TrackRun]:
        """Undo the last run or correction (labels and lineage); None if there is none.

        Raises :class:`~.labels_writer.EditedSince` (a ValueError naming the frames; nothing is undone) if a
        frame it wrote was changed since by other tools: undo those first (the segmentation widget's Undo),
        so that nothing is lost silently.
        """
        if not self.history:
            return None
        run = self.history[-1]
        changed = self.edited_since(run)
        if changed:
            raise EditedSince(f"{track_edits.frames_in_words(changed)} {'were' if len(changed) > 1 else 'was'} "
                              "edited after this tracking step; undo those edits first (the widget's Undo button), "
                              "then undo the tracking step", changed)
        self.history.pop()
        run.journal.undo(self.labels)
        self.lineage = run.lineage_before
        return run


def painted_pixels(atoms: Any, index: Tuple[Any, ...], shape: Tuple[int, int]) -> Optional[np.ndarray]:
    """The (H, W) ``shape`` pixels of the plane at ``index`` (in the Labels layer's data axes: ints on the axes it
    fixes, slices on its two spatial axes) that a napari Labels history item ``atoms`` (a paint event's ``value``: one
    brush, fill or eraser stroke; its atoms a mask in a ``slice_key`` box, or ``(indices, old, new)``) changed, as a
    bool array; None when the atoms are of a kind not known here."""
    if not isinstance(atoms, (list, tuple)):
        return None
    spatial = [axis for axis, item in enumerate(index) if isinstance(item, slice)]
    fixed = {axis: int(item) for axis, item in enumerate(index) if not isinstance(item, slice)}
    if len(spatial) != 2:
        return None
    out = np.zeros(shape, bool)
    try:
        for atom in atoms:
            box = getattr(atom, "slice_key", None)
            if box is not None:
                starts = [part.start or 0 for part in box]
                if any(not starts[axis] <= value < box[axis].stop for axis, value in fixed.items()):
                    continue
                rows, cols = (box[axis] for axis in spatial)
                mask = getattr(atom, "mask", None)
                hit = (np.ones((rows.stop - starts[spatial[0]], cols.stop - starts[spatial[1]]), bool) if mask is None
                       else np.asarray(mask)[tuple(fixed[a] - starts[a] if a in fixed else slice(None)
                                                   for a in range(len(box)))])
                out[starts[spatial[0]]:rows.stop, starts[spatial[1]]:cols.stop] |= hit
                continue
            indices = atom[0]
            if not isinstance(indices, tuple) or len(indices) != len(index):
                return None
            hit = np.ones(np.broadcast(*indices).shape, bool)
            for axis, value in fixed.items():
                hit &= np.asarray(indices[axis]) == value
            out[np.broadcast_to(indices[spatial[0]], hit.shape)[hit],
                np.broadcast_to(indices[spatial[1]], hit.shape)[hit]] = True
    except (TypeError, ValueError, IndexError, AttributeError):
        return None
    return out


def frame_source(frames: Any, model: SAM2Model, session_options: Dict[str, Any],
                 contrast_limits: Optional[Tuple[float, float]] = None) -> FrameSource:
    """A fresh reader of ``frames`` (T, H, W[, C]) with the session's channel choice, contrast limits, smoothing and
    inversion (each run closes its own).

    Without limits (``contrast_limits`` here or in ``session_options``) a non-uint8 stack's contrast sample (up to 16
    frames) is read now: call it in a worker thread, or pass the limits an open session already took
    (``session.frames.contrast_limits``), which are the same for the same frames and options.
    """
    keep = {k: v for k, v in session_options.items() if k in ("channel", "composite", "contrast_limits", "smooth",
                                                                     "invert")}
    if contrast_limits is not None:
        keep["contrast_limits"] = contrast_limits
    return FrameSource(frames, image_size=model.image_size, **keep)


def session_limits(controller: Any) -> Optional[Tuple[float, float]]:
    """The contrast limits ``controller``'s session took when it opened (None when it is not open: reading them is
    the worker's job, never the GUI thread's)."""
    if not controller.is_open:
        return None
    limits = getattr(controller.session.frames, "contrast_limits", None)
    return None if limits is None else (float(limits[0]), float(limits[1]))


def thin_work(steps: Iterator[Step], stop: Callable[[], bool],
              clock: Callable[[], float] = time.monotonic) -> Iterator[Step]:
    """``steps`` with one "work" step per percent of a frame's work (``WORK_STEP``), the first of each percent, and
    one at least every ``WORK_SECONDS`` (``clock``) so that counts and time left move on a slow frame: the
    tracker reports every blob clicked, mask checked and cell added (40-50 a detection frame of MSC, hundreds on a
    crowded frame), each 1-3 ms of napari's GUI thread once relayed. Every other step passes, and every step once
    ``stop()`` is true (a worker that checks its Cancel between steps then stops at the next piece of work, as without
    thinning). Closing it closes ``steps``."""
    passed: Optional[Tuple[int, int]] = None  # (frame, percent) of the last "work" step passed on
    passed_at = -math.inf
    try:
        for step in steps:
            if step[0] == "work":
                percent = (int(step[1]), int(step[2]) // WORK_STEP)
                now = clock()
                if percent == passed and now - passed_at < WORK_SECONDS and not stop():
                    continue
                passed, passed_at = percent, now
            yield step
    finally:
        close = getattr(steps, "close", None)
        if close is not None:
            close()


def read_then_run(make_frames: Callable[[], Any], run: Callable[[Any], Iterator]) -> Iterator:
    """The steps of ``run(make_frames())``, the frame reader made when the first step is asked for: in the run's
    worker thread, which so reads the contrast sample of a stack no open session knows the limits of."""
    yield from run(make_frames())


def clicks_of(coords: np.ndarray, positive: Sequence[bool], obj_ids: Sequence[int], layout: StackLayout,
              track_id: int, frame: int) -> FramePrompt:
    """The clicks of ``track_id`` on ``frame`` as one prompt (points (N, 2) x, y; labels 1/0).

    coords: (N, ndim) image-data coordinates of every click; positive, obj_ids: (N,) per click.
    """
    for prompt in collect_prompts(coords, positive, obj_ids, [], [], layout):
        if prompt.obj_id == track_id and prompt.frame == frame:
            return prompt
    raise ValueError(f"there is no click for track {track_id} on frame {frame}: click the cell on this frame")


def frame_and_plane(values: Sequence[float]) -> List[float]:
    """(frame, row, col) entries of a labels layer's scale or translate (its first and last two axes)."""
    values = [float(v) for v in values]
    return [values[0], values[-2], values[-1]] if len(values) >= 3 else [1.0] + values[-2:]


def _spans(ids_by_frame: Dict[int, frozenset]) -> Dict[int, Tuple[int, int]]:
    """{id: (first frame, last frame)} from {frame: ids}."""
    spans: Dict[int, Tuple[int, int]] = {}
    for t in sorted(ids_by_frame):
        for i in ids_by_frame[t]:
            spans[i] = (spans.get(i, (t, t))[0], t)
    return spans


def _shift(row: Track, offset: int) -> Track:
    return Track(row.track_id + offset, row.begin, row.end, row.parent + offset if row.parent else 0, row.end_reason)
