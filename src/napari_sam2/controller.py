"""The widget's logic without Qt: layers -> prompts -> VideoSession -> labels, as generators.

The dock widget runs these generators in napari worker threads; scripts and tests can run them
directly. Nothing here touches Qt.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import (
    TYPE_CHECKING, Any, Callable, Collection, ContextManager, Dict, Iterator, List, Optional, Sequence, Set, Tuple, Union,
)

import numpy as np

from ._track_ids import frame_ranges
from .hand_edits import EditsMet, HandEdit, HandEdits, Marks
from .labels_writer import EditedSince, RunJournal, compose_winners, hashable_index, plane_checksum, tell_written
from .layout import FrameView, StackLayout
from .prompts import FramePrompt, clip_to_frame, is_correction, split_corrections

if TYPE_CHECKING:  # export (scikit-image) is imported when a table is measured; the sessions (torch) when one opens
    from sam2_model import SAM2Model, VideoSession
    from sam2_model.windowed_session import WindowedSession

    from .export import FrameTable

# A propagation yields ("frame", frame_idx, obj_ids, None) per frame and a final ("done", ...): the last item held the
# frame's logits once; no caller read it, and propagation no longer makes every object's full-resolution logits.
Step = Tuple[str, int, List[int], Optional[np.ndarray]]
DIRECTIONS = ("forward", "backward", "both")
Session = Union["VideoSession", "WindowedSession"]
# An edit of the labels and the undo history (remove an object, undo, relabel) runs as steps too, so the widget can run
# it in a worker thread: it yields one ("done", result) step once it is whole (never one part way: a worker stopped
# between steps would leave it half done) and changes nothing when it fails.
EditStep = Tuple[str, Any]

# In the plugin (widget, console API, CLI) a correction on a tracked frame is a conditioning frame, so it
# sticks when propagating again (as Meta's web demo and micro-sam do). The library keeps Meta's default.
PLUGIN_SESSION_DEFAULTS: Dict[str, Any] = {"corrections_as_conditioning": True}


@dataclass(frozen=True)
class PropagationPass:
    """One call of ``VideoSession.propagate``: from ``start``, one way, for ``obj_ids`` (None: all objects), over
    ``num_frames`` frames. ``unchanged``: the objects left out of it because tracking them again would give exactly
    the results they have (:meth:`SegmentationController.plan`). ``obj_ids == ()``: no object is tracked (every one is
    unchanged): the pass only redraws its frames from every object's results, with no model work."""

    start: int
    reverse: bool
    obj_ids: Optional[Tuple[int, ...]]
    num_frames: int
    unchanged: Tuple[int, ...] = ()

    @property
    def frames(self) -> List[int]:
        """The frames the pass goes through, in its order."""
        step = -1 if self.reverse else 1
        return list(range(self.start, self.start + step * self.num_frames, step))


@dataclass(frozen=True)
class _Tracked:
    """The last propagation pass that wrote an object's results, whole: one way from ``start`` to the stack's edge
    (frame 0 backward, the last frame forward), with nothing of the object changed since (its prompts, its results)."""

    reverse: bool
    start: int


@dataclass
class Undone:
    """What :meth:`SegmentationController.undo` reverted: the frames restored and the caller's tag of that step."""

    frames: List[int]
    tag: Any = None


@dataclass(eq=False)
class _Record:
    """One undoable step: labels written, and the session and prompt bookkeeping before it."""

    journal: RunJournal
    snapshot: Any
    sent: Dict[Tuple[int, int], FramePrompt]
    mask_prompts: Dict[Tuple[int, int], FramePrompt]
    tag: Any = None
    changed: bool = False  # the session was changed (even where no label changed)
    baseline: bool = False  # the step the history starts after (not undoable: :meth:`start_history_after_next`)
    # the objects' last whole passes before the step (``_tracked``), true again once the session is restored to
    # ``snapshot``; None when no longer certain (the correction options changed since)
    tracked: Optional[Dict[int, _Tracked]] = None
    # the hand edits known before the step (``SegmentationController.hand_edits``: its marks of the planes it wrote
    # and the strokes since; of each plane the step wrote, as just before it first wrote it: ``Marks.taken``), true
    # again on the planes the step wrote once it is undone
    ours: Optional[Marks] = None
    edits: Optional[EditsMet] = None  # the hand edits the step met (said after it: :meth:`EditsMet.words`)


@dataclass
class SegmentationController:
    """One image layer's segmentation: its layout, session, labels array and undo history.

    session_options are passed to :class:`VideoSession` on top of :data:`PLUGIN_SESSION_DEFAULTS`.
    object_window: each object is segmented and tracked in a square window of this many frame px around its first
    prompt (:class:`sam2_model.windowed_session.WindowedSession`: objects small against the frame); None
    (default): on the whole frame (:class:`VideoSession`).

    Making a controller reads no pixels: its session is opened (:meth:`open`) on first use, which for a non-uint8
    stack reads and maps the contrast sample (up to 16 frames, smoothed when asked: seconds on large stacks). The
    generators (:meth:`apply_prompts`, :meth:`seed_masks`, :meth:`propagate`) open it inside, so the widget's worker
    thread does that work, never the GUI thread; errors of the frames (a bad channel, NaN pixels) are raised there.
    """

    model: SAM2Model
    image: Any  # the image layer's data (numpy, dask, zarr)
    layout: StackLayout
    labels: np.ndarray  # the output labels array (the Labels layer's data)
    session_options: Dict[str, Any] = field(default_factory=dict)
    history: List[_Record] = field(default_factory=list)
    object_window: Optional[int] = None
    skip_unchanged: bool = True  # Propagate leaves out objects it would give the results they have (:meth:`plan`)

    def __post_init__(self) -> None:
        self.session_options = {**PLUGIN_SESSION_DEFAULTS, **self.session_options}
        self.frames = FrameView(self.image, self.layout)
        if self.object_window is not None:
            self.object_window = check_object_window(self.object_window)
        self._session: Optional[Session] = None
        self._opening = threading.Lock()  # the worker and the GUI thread may ask for the session at once
        self._sent: Dict[Tuple[int, int], FramePrompt] = {}
        self.mask_prompts: Dict[Tuple[int, int], FramePrompt] = {}  # seeded masks, kept until replaced
        self._rejected: Dict[Tuple[int, int], FramePrompt] = {}
        # (frame, obj) whose first prompt came before the object had a mask there: its clicks made that frame's mask
        self._started_here: Set[Tuple[int, int]] = set()
        self.history_note = ""  # why the undo history starts where it does ("" when it holds every step)
        self._baseline_next = False
        self._notes: List[str] = []  # what the steps since :meth:`pop_notes` did that the user should know
        self._carried: List[str] = []  # what an edit did, said after the run that follows it (a new run keeps it)
        # set by Load session: the (frame, obj_id) its file says refined a tracked mask (:meth:`refined_keys`); the
        # next segmentation re-makes the session with :meth:`replay` (None: a plain segmentation)
        self.load_replay: Optional[Set[Tuple[int, int]]] = None
        self._withheld: Set[Tuple[int, int]] = set()  # seeded masks a replay has not sent yet (:meth:`replay`)
        # {obj_id: the last whole pass that tracked it, nothing of it changed since}: objects :meth:`plan` may leave out
        self._tracked: Dict[int, _Tracked] = {}
        # the planes this controller wrote and the strokes since (:class:`~.hand_edits.HandEdits`): a plane changed
        # since it wrote it, or stroked (also one it never wrote), holds hand edits (:meth:`_hand_edits`)
        self.hand_edits = HandEdits(self.labels)
        self._edits_met = EditsMet()  # what the steps since :meth:`pop_notes` did where they met hand edits

    def _own_writes(self) -> ContextManager[None]:
        """This controller writes planes meanwhile: its journal's word to the watchers is no other tool's write (it
        tells :attr:`hand_edits` itself)."""
        return self.hand_edits.own_writes()

    def painted(self, atoms: Any, inserted: Optional[int] = None) -> List[int]:
        """A brush, fill or eraser stroke on the labels (a napari Labels ``paint`` event's ``value``: its history
        atoms, indices into :attr:`labels`, or into a layer showing them with one more axis of size 1 at ``inserted``:
        the masklets layer of an image with a channel axis): the frames it touched hold hand edits from now on
        (:meth:`_hand_edits`), also those this controller never wrote and those another tool writes next (Track all
        keeps the strokes on this controller's objects). Returns those frames. Cheap (the atoms are read, no plane):
        the GUI thread calls it for each stroke."""
        planes = [self.layout.frame_index_in_labels(t) for t in range(self.num_frames)]
        return self.hand_edits.painted(atoms, planes, inserted)

    def forget_history(self, note: str) -> None:
        """Drop the undo history (its steps no longer map to the labels, e.g. after a relabel); ``note`` says why, for
        an Undo that finds nothing to undo."""
        self.history.clear()
        self.history_note = note

    def start_history_after_next(self, note: str) -> None:
        """The next step begun (a re-run of the prompts after Merge or Load session) is not undoable: the history
        starts after it, and ``note`` says why (:meth:`forget_history`)."""
        self.forget_history(note)
        self._baseline_next = True

    def carry_note(self, words: str) -> None:
        """Say ``words`` (a sentence) after the next run, whatever it does (:meth:`pop_notes`), e.g. what "auto"
        chose for this session."""
        self._carried.append(words)

    def pop_notes(self) -> str:
        """What the steps since the last call did that the user should be told (e.g. frames cleared; a merge, said
        after the run that follows it), in words; "" when nothing."""
        notes = self._carried + self._notes + self._edits_met.words()
        self._notes, self._carried, self._edits_met = [], [], EditsMet()
        return " ".join(notes)

    def check_propagation(self, prompts: List[FramePrompt]) -> None:
        """Raise ValueError, before anything changes, when propagating after :meth:`apply_prompts` (``prompts``: every
        prompt of the slice) would find no object: the objects whose clicks and boxes are all gone would be removed
        first, so such a run would change labels and then fail."""
        kept = {p.obj_id for p in prompts} | {obj for _, obj in self.mask_prompts}
        kept |= set(self.obj_ids) - {obj for _, obj in self._sent}  # objects not made by clicks or boxes
        if kept:
            return
        gone = sorted(set(self.obj_ids))
        if gone:
            raise ValueError(f"the clicks and boxes of object(s) {', '.join(map(str, gone))} are gone from the prompt "
                             "layers, so there is nothing to propagate: Undo (or click the objects again) first.")
        raise ValueError("there is nothing to propagate yet: click on an object (or draw a box) first.")

    @property
    def session(self) -> Session:
        """The session (:class:`VideoSession`, or :class:`WindowedSession` with an ``object_window``), opened on first
        use (:meth:`open`)."""
        return self.open()

    @property
    def is_open(self) -> bool:
        """Whether the session was opened (the stack's contrast sample was read)."""
        return self._session is not None

    def open(self) -> Session:
        """The session, opened now if it was not yet: the frame reader checks the stack (shape, dtype, channel) and,
        for non-uint8 data without ``contrast_limits``, reads the contrast sample. Slow on large stacks: call it in a
        worker thread. Raises ValueError (the frames' or the options' fault); a later call tries again."""
        with self._opening:
            if self._session is None:
                from sam2_model import VideoSession
                from sam2_model.windowed_session import WindowedSession

                if self.object_window is None:
                    self._session = VideoSession(self.model, self.frames, **self.session_options)
                else:
                    self._session = WindowedSession(self.model, self.frames, window=self.object_window,
                                                    **self.session_options)
            return self._session

    @property
    def num_frames(self) -> int:
        """T, the frames of the layout (known without opening the session)."""
        return int(self.frames.shape[0])

    @property
    def frame_shape(self) -> Tuple[int, int]:
        """(H, W) of a frame (known without opening the session)."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @property
    def obj_ids(self) -> List[int]:
        """The session's objects ([] before the session is opened: it has none yet)."""
        return [] if self._session is None else self._session.obj_ids

    def set_correction_options(self, conditioning: bool, forget: bool) -> None:
        """Change how later corrections act (the session reads these flags at each correction; one not opened yet
        is opened with them). No object is left out of the next propagation (:meth:`plan`): they track differently, also
        after an Undo of an earlier step."""
        self._tracked.clear()
        for record in self.history:
            record.tracked = None
        if self._session is not None:
            self._session.corrections_as_conditioning = bool(conditioning)
            self._session.clear_memory_around_corrections = bool(forget)
        self.session_options.update(corrections_as_conditioning=bool(conditioning),
                                    clear_memory_around_corrections=bool(forget))

    def has_prompts(self) -> bool:
        return bool(self._sent or self.mask_prompts)

    def seed_masks(self, masks: List[FramePrompt], prompts: List[FramePrompt], tag: Any = None) -> Iterator[Step]:
        """Use ``masks`` (from a Labels layer) as mask prompts on their frames, then apply them.

        prompts: the prompt layers' current clicks and boxes; where an object has both on one frame,
        the clicks and boxes win (they are the user's latest word).
        """
        height, width = self.session.frame_shape
        for prompt in masks:
            if prompt.mask is None or prompt.mask.shape != (height, width):
                shape = None if prompt.mask is None else prompt.mask.shape
                raise ValueError(f"a seed mask must have the frame's shape {(height, width)}, got {shape}")
        record = self._begin(tag)
        record.changed = True
        frames = {p.frame for p in masks}
        self.mask_prompts = {k: v for k, v in self.mask_prompts.items() if k[0] not in frames}
        self.mask_prompts.update({(p.frame, p.obj_id): p for p in masks})
        try:
            for frame in sorted(frames):
                yield from self._apply(prompts, frame, record)
        finally:
            self._end(record)
            self._say_edits(record)
        yield "done", -1, self.session.obj_ids, None

    def apply_prompts(self, prompts: List[FramePrompt], frame: Optional[int] = None, tag: Any = None) -> Iterator[Step]:
        """Send new or changed prompts to the session and write their masks (one undoable step).

        prompts: every prompt of the prompt layers; frame: only (re)send this frame's prompts; tag: kept with
        the step and handed back by :meth:`undo` (the widget keeps the prompt layers' content there).
        An object whose prompt was deleted from a frame is removed from the session and re-added
        from its remaining prompts (the session has no way to forget one frame's prompt).
        """
        self._notes, self._edits_met = [], EditsMet()  # a failed run's notes are not said after the next one
        record = self._begin(tag)
        written: List[int] = []
        try:
            yield from self._noting_frames(self._apply(prompts, frame, record), written)
        finally:  # a failed or cancelled step that changed something stays undoable
            self._end(record)
            self._say_edits(record)
            self._say_blank(written)
        yield "done", -1, self.session.obj_ids, None

    def _apply(self, prompts: List[FramePrompt], frame: Optional[int], record: _Record) -> Iterator[Step]:
        height, width = self.session.frame_shape
        everything = {k: v for k, v in self.mask_prompts.items() if k not in self._withheld}
        everything.update({(p.frame, p.obj_id): clip_to_frame(p, height, width) for p in prompts})
        in_scope = {k: v for k, v in everything.items() if frame is None or k[0] == frame}
        self._rejected = {k: v for k, v in self._rejected.items() if k in everything}  # a prompt removed is forgotten
        stale = sorted({obj for (f, obj) in self._sent if (frame is None or f == frame) and (f, obj) not in everything})
        cleared: Dict[int, List[int]] = {}
        for obj in stale:
            self._tracked.pop(obj, None)
            if obj in self.session.obj_ids:
                self.session.remove_object(obj)
            self._sent = {k: v for k, v in self._sent.items() if k[1] != obj}
            cleared[obj] = self._clear_object(record, obj)
            in_scope.update({k: v for k, v in everything.items() if k[1] == obj})
            record.changed = True
        remade = {k[1]: set() for k in in_scope}
        for f, obj in in_scope:
            remade[obj].add(f)
        self._note_cleared({obj: [f for f in frames if f not in remade.get(obj, set())]
                            for obj, frames in cleared.items() if obj in remade})
        for key in sorted(in_scope):
            prompt = in_scope[key]
            if _same(self._sent.get(key), prompt) or _same(self._rejected.get(key), prompt):
                continue  # unchanged, or a prompt the session refused (it is not sent again until it changes)
            edit = self._hand_edits(prompt.frame)  # before the prompt changes the frame's results
            try:
                self._send(prompt)
            except ValueError as error:
                self._rejected[key] = prompt
                raise ValueError(f"the prompt of object {prompt.obj_id} on frame {prompt.frame} was refused: "
                                 f"{error}") from error
            self._rejected.pop(key, None)
            self._sent[key] = prompt
            record.changed = True
            self._write_newest(record, prompt.frame, edit, (prompt.obj_id,))
            yield "frame", prompt.frame, self.session.obj_ids, None

    def _send(self, prompt: FramePrompt) -> None:
        """One object's prompts on one frame to the session (the frame's labels are drawn by the caller from every
        object's newest result there, :meth:`_write_newest`).

        Negative clicks alone (:func:`~napari_sam2.prompts.is_correction`) take pixels away from the object's mask on
        their frame, so they are refused (ValueError) where the object has none yet: sent, the model would make a
        mask of whatever it saw there."""
        if is_correction(prompt) and (prompt.obj_id not in self.session.obj_ids
                                      or prompt.frame not in self.session.tracked_frames(prompt.obj_id)):
            raise ValueError(f"object {prompt.obj_id} has no mask on frame {prompt.frame} yet for negative clicks to "
                             "take pixels from: add a positive click (or a box) there, or propagate to frame "
                             f"{prompt.frame} first and click there again (these clicks are not used)")
        key = (prompt.frame, prompt.obj_id)
        self._tracked.pop(prompt.obj_id, None)  # its prompts change: it is tracked again (:meth:`plan`)
        sent = self._sent.get(key)
        if sent is None:
            self._started_here.discard(key)
            if prompt.obj_id not in self.session.obj_ids or prompt.frame not in self.session.tracked_frames(prompt.obj_id):
                self._started_here.add(key)
        # clicks that replace the ones that made this frame's mask (moved, deleted, a box redrawn) are decoded afresh,
        # as a first click is; clicks added to them refine it
        refine = sent is None or key not in self._started_here or _adds_to(sent, prompt)
        # what add_prompt returns is not used (the reference's view, which shows another object's tracked mask where
        # its correction is not propagated yet): the session is told not to make it (every object upsampled)
        unused = {"return_logits": False}
        if prompt.box is None and not len(prompt.points):
            self.session.add_prompt(prompt.frame, prompt.obj_id, mask=prompt.mask, clear_old=True, **unused)
        else:
            self.session.add_prompt(
                prompt.frame, prompt.obj_id, points=prompt.points if len(prompt.points) else None,
                labels=prompt.labels if len(prompt.labels) else None, box=prompt.box, clear_old=True, refine=refine,
                **unused)

    def remove_object(self, obj_id: int, tag: Any = None) -> List[int]:
        """Forget an object (session, prompts, seeded masks) and clear it from the labels, as one undoable step
        (:meth:`remove_object_steps` on the calling thread).

        The caller removes its clicks and boxes from the prompt layers. Returns the remaining object ids.
        """
        return finish(self.remove_object_steps(obj_id, tag))

    def remove_object_steps(self, obj_id: int, tag: Any = None) -> Iterator[EditStep]:
        """:meth:`remove_object` as steps for a worker thread: ``obj_id`` is checked now (ValueError naming the objects,
        nothing changed); when the steps run, every frame's (H, W) labels plane is compared and each one holding the
        object is saved in the undo journal and written without it; then one ("done", remaining object ids) step. A
        failure part way puts the planes already written back (nothing changed)."""
        if obj_id not in self.obj_ids and not any(k[1] == obj_id for k in self._sent):
            raise ValueError(f"obj_id {obj_id!r} is not an object of this session; objects: {self.obj_ids}")
        return self._remove_object(obj_id, tag)

    def _remove_object(self, obj_id: int, tag: Any, clear_labels: bool = True) -> Iterator[EditStep]:
        """Forget ``obj_id`` as one step (``tag``), its pixels cleared from every frame first unless ``clear_labels`` is
        False (a relabel gave them another id already)."""
        record = self._begin(tag)
        record.changed = True
        self._tracked.pop(obj_id, None)
        try:
            if clear_labels:  # the labels first: the only part that scales with the stack
                self._clear_object(record, obj_id)
            if obj_id in self.session.obj_ids:
                self.session.remove_object(obj_id)
        except BaseException:
            with self._own_writes():
                self._restore_marks(record, record.journal.undo(self.labels))  # the planes already written, back whole
            self._baseline_next = record.baseline
            raise
        keep = lambda table: {k: v for k, v in table.items() if k[1] != obj_id}  # noqa: E731
        self._sent, self.mask_prompts, self._rejected = keep(self._sent), keep(self.mask_prompts), keep(self._rejected)
        self._end(record)
        yield "done", self.obj_ids

    def rename_steps(self, old: int, new: int, note: str) -> Iterator[EditStep]:
        """Relabel: object ``old`` is object ``new`` from now on, and nothing else changes. Its pixels take the id
        ``new`` on every frame of this session's slice; the session renames it (``rename_object``: its prompts, results
        and memories as they are, no model work) and so does this controller's bookkeeping (prompts sent, refused or
        withheld, seeded masks, the frames its clicks started it on, a Load session's corrections still to replay). No
        mask of any object changes, and a later step (a click, Propagate) gives what it would have given for ``old``.
        The undo history is dropped (its steps knew the old id: ``note`` says so, :meth:`forget_history`).

        ``new`` is checked now: ValueError, nothing changed, when an object of this controller has it. Steps for a
        worker thread: every frame's (H, W) plane read and compared once, then one ("done", object ids) step once
        whole; a failure part way puts every plane back."""
        old, new = int(old), int(new)
        if new in self._bookkept_ids():
            raise ValueError(f"new id {new} is taken by an object of this session (objects: "
                             f"{sorted(self._bookkept_ids())}): give a free id")
        return self._rename(old, new, note)

    def _rename(self, old: int, new: int, note: str) -> Iterator[EditStep]:
        planes = [self.layout.frame_index_in_labels(t) for t in range(self.num_frames)]
        sums: Dict[Any, Tuple[int, int]] = {}  # each plane written: its checksums before and after
        with self._own_writes():
            relabelled = relabel_planes(self.labels, planes, old, new, sums)  # the one pass over the frames
        for obj in (old, new):  # both are tracked again by the next propagation (:meth:`plan`)
            self._tracked.pop(obj, None)
        try:
            if self._session is not None and old in self._session.obj_ids:
                self._session.rename_object(old, new)
        except BaseException:
            with self._own_writes():
                put_back_ids(self.labels, relabelled, old)
            raise
        self._follow_relabel(sums)

        def key(k: Tuple[int, int]) -> Tuple[int, int]:
            return (k[0], new) if k[1] == old else k

        def moved(table: Dict[Tuple[int, int], FramePrompt]) -> Dict[Tuple[int, int], FramePrompt]:
            return {key(k): replace(p, obj_id=new) if k[1] == old else p for k, p in table.items()}

        self._sent, self.mask_prompts = moved(self._sent), moved(self.mask_prompts)
        self._rejected = moved(self._rejected)
        self._started_here, self._withheld = {key(k) for k in self._started_here}, {key(k) for k in self._withheld}
        if self.load_replay is not None:
            self.load_replay = {key(k) for k in self.load_replay}
        self.forget_history(note)
        yield "done", self.obj_ids

    def _bookkept_ids(self) -> Set[int]:
        """Every object id this controller knows: the session's and those of its prompts, seeded masks and refused
        prompts."""
        tables = (self._sent, self.mask_prompts, self._rejected)
        return set(self.obj_ids) | {obj for table in tables for _, obj in table}

    def reassign_steps(self, old: int, new: int, note: str) -> Iterator[EditStep]:
        """Merge: give object ``old``'s pixels the id ``new`` on every frame of this session's slice and forget ``old``
        (session, prompts; its seeded masks become ``new``'s on the frames where ``new`` has none); no other object
        changes. The caller then segments the prompts as they are (:meth:`apply_prompts`): ``old``'s clicks and boxes,
        now ``new``'s, are sent on their frames, so a correction of ``old`` on a frame where ``new`` has a mask refines
        that mask (nothing is replayed or tracked again). ``old``'s negative clicks alone on a frame where ``new`` has
        no mask (which :meth:`_send` would refuse, failing that run) are kept as refused prompts of ``new`` (not sent
        until they change). What was done is said after the next run (:meth:`pop_notes`). The undo history is dropped
        (its steps knew the old id: ``note`` says so, :meth:`forget_history`).

        Steps for a worker thread: every frame's (H, W) plane read and compared once, then one ("done", object ids)
        step once whole; a failure part way puts every plane back."""
        moved = {(f, new): FramePrompt(f, new, mask=p.mask) for (f, o), p in self.mask_prompts.items() if o == old}
        frames = sorted({f for table in (self._sent, self._rejected) for f, o in table if o == old}
                        | {f for f, _ in moved if (f, new) not in self.mask_prompts})  # the frames re-segmented
        refused = self._refused_as(old, new)
        planes = [self.layout.frame_index_in_labels(t) for t in range(self.num_frames)]
        sums: Dict[Any, Tuple[int, int]] = {}  # each plane written: its checksums before and after
        with self._own_writes():
            relabelled = relabel_planes(self.labels, planes, old, new, sums)  # the one pass over the frames
        for obj in (old, new):  # both are tracked again by the next propagation (:meth:`plan`)
            self._tracked.pop(obj, None)
        try:
            if old in self.obj_ids or any(o == old for _, o in self.mask_prompts):  # no pixel of old is left to clear
                finish(self._remove_object(old, None, clear_labels=False))
        except BaseException:
            with self._own_writes():
                put_back_ids(self.labels, relabelled, old)
            raise
        self._follow_relabel(sums)
        for key, prompt in moved.items():
            self.mask_prompts.setdefault(key, prompt)
        self._rejected.update(refused)
        if self.load_replay is not None:  # a loaded session still to be re-made: its corrections are new's now
            self.load_replay = {(f, new if o == old else o) for f, o in self.load_replay}
        again = [f for f in frames if (f, new) not in refused]
        self._carried = [f"object {old} is part of object {new} now (merge cannot be undone with Undo)" + (
            f"; object {new}'s prompts on frame(s) {frame_ranges(again)} were segmented again (its other frames keep "
            "their masks until you propagate)" if again else "") + "."]
        if refused:
            where = frame_ranges(sorted(f for f, _ in refused))
            self._carried.append(f"object {old}'s negative clicks on frame(s) {where} were not used: object {new} has "
                                 "no mask there for them to take pixels from (propagate there, then click again).")
        self.forget_history(note)
        yield "done", self.obj_ids

    def _refused_as(self, old: int, new: int) -> Dict[Tuple[int, int], FramePrompt]:
        """``old``'s prompts that would be refused as ``new``'s: negative clicks alone (:func:`is_correction`) on a
        frame where ``new`` has no mask ({(frame, new): the prompt as new's})."""
        session = self._session
        tracked = set(session.tracked_frames(new)) if session is not None and new in session.obj_ids else set()
        theirs = {f for table in (self._sent, self.mask_prompts, self._rejected) for f, o in table if o == new}
        mine = {**self._rejected, **self._sent}  # the newest word on a frame: sent after a refusal
        return {(f, new): replace(p, obj_id=new) for (f, o), p in mine.items()
                if o == old and is_correction(p) and f not in tracked and f not in theirs}

    def plan(self, start_frame: int, direction: str = "forward", max_frames: Optional[int] = None) -> List[PropagationPass]:
        """The propagation passes of :meth:`propagate`.

        Objects already tracked start at ``start_frame``. An object that was never tracked (it has results only
        on its prompted frames) starts at its own first prompted frame (forward) or last one (backward), so a
        click on frame 0 followed by "propagate from frame 9" still fills frames 1-8 of that object.

        With ``skip_unchanged`` (default) an object is left out of a pass (``PropagationPass.unchanged``) when tracking
        it again would give exactly the results it has: SAM 2 tracks each object from its own memory only (its
        prompted frames and the frames before in the direction of travel), so an object whose last pass went the same
        way to the stack's edge from a frame at or before this pass's start (in that direction), with nothing of it
        changed since, keeps its results. Anything else tracks it again: a prompt of it sent, changed or removed since;
        that pass cancelled, failed or cut short (``max_frames``); an earlier pass of this plan that tracks it; an Undo
        past a change of the correction options; a relabel or merge naming it; another correction option; the option
        that forgets memories around corrections (``clear_memory_around_corrections``) set. An Undo otherwise puts
        back what was known before the step it undoes (the session goes back to that state): after undoing a click,
        the objects tracked before it are left out again. A pass left with no object to track (``obj_ids == ()``) only
        redraws its frames from every object's results (the labels come out as a full re-run's), through no frame
        (``num_frames == 0``) where other passes of this plan the same way draw them all.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
        if not self.obj_ids:
            raise ValueError("there is nothing to propagate yet: click on an object (or draw a box) first")
        total = self.session.num_frames
        start_frame = int(start_frame)
        if not 0 <= start_frame < total:
            raise ValueError(f"start_frame must be a frame index in 0..{total - 1}, got {start_frame}")
        span = total if max_frames is None else int(max_frames)
        skipping = self.skip_unchanged and not self.session.clear_memory_around_corrections
        marks = dict(self._tracked) if skipping else {}  # as they will be when each pass of the plan begins
        passes: List[PropagationPass] = []
        for reverse in {"forward": [False], "backward": [True], "both": [False, True]}[direction]:
            starts: Dict[int, List[int]] = {}
            for obj in self.session.obj_ids:
                prompted = self.session.prompted_frames(obj)
                never_tracked = prompted and set(self.session.tracked_frames(obj)) <= set(prompted)
                start = (max(prompted) if reverse else min(prompted)) if never_tracked else start_frame
                starts.setdefault(start, []).append(obj)
            way: List[PropagationPass] = []
            for start in sorted(starts, reverse=reverse):
                objs = starts[start]
                if reverse:
                    count = start - max(start - span, 0) + 1 if start > 0 else 0
                else:
                    count = min(start + span, total - 1) - start + 1
                same = tuple(o for o in objs if _unchanged(marks.get(o), start, reverse))
                moving = tuple(o for o in objs if o not in same)
                if count:  # a pass through no frame (backward from frame 0) changes no result
                    whole = (start - count + 1 == 0) if reverse else (start + count == total)
                    for obj in moving:
                        marks.pop(obj, None)
                        if whole:
                            marks[obj] = _Tracked(reverse, start)
                everyone = len(starts) == 1 and not same
                way.append(PropagationPass(start, reverse, None if everyone else moving, count, same))
            drawn = {t for p in way if p.obj_ids != () for t in p.frames}  # a redraw these cover goes through none
            passes += [replace(p, num_frames=0) if p.obj_ids == () and set(p.frames) <= drawn else p for p in way]
        return passes

    def refined_keys(self) -> Set[Tuple[int, int]]:
        """(frame, obj_id) of the clicks and boxes sent that refined a mask the object already had on their frame (one
        that propagation made: a correction), as against those that made the object's first mask there. A session file
        keeps them, so that Load session applies them after tracking, as they were made (:meth:`replay`)."""
        return {key for key, prompt in self._sent.items() if key not in self._started_here and prompt.mask is None}

    def take_replay(self, previous: "SegmentationController") -> None:
        """This controller replaces ``previous`` on its slice (another model, input size or option): its first run
        re-makes the session from the prompts in the order they were made (:meth:`replay`, as a loaded session is),
        so that corrections meet the tracked masks they were made on: ``previous``'s load still due, else its
        corrections (:meth:`refined_keys`) when it had sent prompts; a history that was to start after ``previous``'s
        next step starts after this one's."""
        if previous.load_replay is not None:
            self.load_replay = set(previous.load_replay)
        elif previous._sent:
            self.load_replay = previous.refined_keys()
        if previous._baseline_next:
            self.start_history_after_next(previous.history_note)

    def replay(self, items: Sequence[FramePrompt], refined: Collection[Tuple[int, int]] = (),
               tag: Any = None) -> Iterator[Step]:
        """Re-make a session from its prompts in the order they were made (Load session; a controller remade for
        another model, input size or option, :meth:`take_replay`), so that each prompt meets the mask it met then and
        the masks come out as they were.

        items: the session's boxes and clicks one per FramePrompt (a click: one point and its label), in the order
        they were made (boxes first, then the clicks layer's rows). refined: the (frame, obj_id) whose prompts refined
        a mask tracking had made (:meth:`refined_keys`, saved with the session; empty for files saved before it was);
        an object's negative clicks alone on a frame (:func:`~napari_sam2.prompts.is_correction`) are always such
        corrections. The seeded masks (``mask_prompts``) are sent too.

        1. Object after object (by id: the order of New object), its seeded masks, its boxes, then its clicks that
           start it one at a time (each refines the mask of the clicks before it on its frame, as when it was clicked;
           an object's mask on its prompted frames does not depend on the other objects).
        2. Only when there are corrections: every object is propagated both ways over every frame, the corrections
           are sent one click at a time, and every object is propagated both ways again from the frame of the last
           one (a ("plan", frames, words, None) step first says so). The masks are then as if a person had clicked
           every object, propagated both ways from the first frame an object was started on, corrected, and
           propagated both ways from the last correction's frame: exactly the saved session's masks only when it was
           made that way. Other sessions are re-made this way too, so their tracked masks may differ: one-way
           propagations (replayed both ways), several rounds of corrections (one round, after one tracking), objects
           added after tracking (clicked before it here, so the first tracking pass tracks them).

        Corrections of an object with nothing else (no positive click, box or mask on any frame) are not sent: they
        are kept as refused prompts (not sent again until they change) and a note says so (:meth:`pop_notes`), as
        does a prompt the session refuses; the rest is restored. Each step is undoable unless the history was set
        to start after the next step (:meth:`start_history_after_next`): then none of them is.
        """
        self._tracked.clear()  # the session is re-made: its propagations say what a later one may leave out
        final: Dict[Tuple[int, int], FramePrompt] = {}
        for item in items:
            key = (int(item.frame), int(item.obj_id))
            final[key] = _with(final.get(key), item)
        corrections = {key for key, prompt in final.items() if is_correction(prompt)}
        refining = {(int(f), int(o)) for f, o in refined} & (set(final) - corrections)
        started = {obj for frame, obj in final if (frame, obj) not in corrections | refining}
        started |= {obj for _, obj in self.mask_prompts} | set(self.obj_ids)
        refining = {key for key in refining if key[1] in started}  # an object's only prompts make it
        unused = sorted(key for key in corrections if key[1] not in started)
        later = (corrections | refining) - set(unused)
        first_items = [i for i in items if (int(i.frame), int(i.obj_id)) not in later | set(unused)]
        later_items = [i for i in items if (int(i.frame), int(i.obj_id)) in later]
        baseline, refused = self._baseline_next, []
        sent: Dict[Tuple[int, int], FramePrompt] = {}

        def send(new: List[FramePrompt]) -> Iterator[Step]:
            """Add ``new`` (boxes or one click) to the prompts sent so far and send them, as one step."""
            for item in new:
                key = (int(item.frame), int(item.obj_id))
                sent[key] = _with(sent.get(key), item)
            self._baseline_next, before = baseline, dict(self._rejected)
            try:
                yield from self.apply_prompts(list(sent.values()), tag=tag)
            except ValueError as error:
                keys = {(int(i.frame), int(i.obj_id)) for i in new}
                if not any(self._rejected.get(key) is not before.get(key) for key in keys if key in self._rejected):
                    raise  # not a prompt the session refused: the run fails
                refused.append(str(error))

        self._withheld = set(self.mask_prompts)
        try:
            for obj in sorted({o for _, o in self.mask_prompts} | {int(i.obj_id) for i in first_items}):
                self._withheld -= {key for key in self._withheld if key[1] == obj}
                yield from send([i for i in first_items if i.obj_id == obj and i.box is not None])
                for item in first_items:
                    if item.obj_id == obj and item.box is None:
                        yield from send([item])
        finally:
            self._withheld = set()
        # corrections need the tracked masks (a single 2D image has nothing to propagate through: sent as they are)
        retrack = bool(later_items and self.obj_ids and self.layout.frame_axis is not None)
        if retrack:
            last = int(later_items[-1].frame)
            first = min([f for f, o in final if (f, o) not in later] + [f for f, _ in self.mask_prompts], default=last)
            total = sum(p.num_frames for p in self.plan(first, "both")) + len(later_items) + self.num_frames + 1
            where = "; ".join(f"object {obj} on frame(s) {frame_ranges(sorted(f for f, o in later if o == obj))}"
                              for obj in sorted({o for _, o in later}))
            yield ("plan", total, f"the corrections ({where}) were made on tracked masks, so every object was tracked "
                   f"both ways, then corrected in the order they were made, then tracked both ways again from frame "
                   f"{last}.", None)
            self._baseline_next = baseline
            yield from self.propagate(first, "both", tag=tag)
        boxes = [i for i in later_items if i.box is not None]
        for new in ([boxes] if boxes else []) + [[i] for i in later_items if i.box is None]:
            yield from send(new)
        if retrack:
            self._baseline_next = baseline
            yield from self.propagate(last, "both", tag=tag)
        for key in unused:  # not sent again until they change (as when the widget refused them)
            self._rejected[key] = final[key]
        self._notes = [f"object {obj}'s negative clicks on frame {frame} were not used: object {obj} has no positive "
                       "click, box or mask on any frame for them to take pixels from (add one, then propagate)."
                       for frame, obj in unused] + [f"not restored: {why}." for why in refused]
        self._baseline_next = False
        self.load_replay = None  # done: the next run sends the prompts as they are

    def segment_table(self, prompts: List[FramePrompt], direction: str = "both",
                      progress: Optional[Callable[[int, int], None]] = None) -> Iterator[Step]:
        """Segment from a whole table of prompts at once (``segment()``, the command line, batch runs), as a person
        does it in the widget: the prompts that start objects are applied and every object is propagated
        ``direction`` from the first of them. A correction (an object's negative clicks alone on a frame,
        :func:`~napari_sam2.prompts.is_correction`) needs the object's mask on its frame: it is applied once
        propagation has made it (on the tracked mask, as a click after *Propagate* is in the widget), and
        propagation runs again with it. Without corrections this is one pass; with them, two.

        progress: called with (frames propagated, frames to propagate) after each propagated frame.
        Raises ValueError (before any model work) for an object with corrections only, or a correction on a frame the
        propagation never reaches (:func:`~napari_sam2.prompts.split_corrections`).
        """
        starts, corrections = split_corrections(prompts, direction)
        yield from self.apply_prompts(starts)
        if self.layout.frame_axis is None:  # one image: every prompt is on it, so none is a correction
            return
        start = min(p.frame for p in starts)
        runs = 2 if corrections else 1
        done, total = 0, runs * sum(p.num_frames for p in self.plan(start, direction))
        for run in range(runs):
            if run:
                yield from self.apply_prompts(starts + corrections)
                total = done + sum(p.num_frames for p in self.plan(start, direction))
            for step in self.propagate(start, direction):
                if step[0] == "frame" and progress is not None:
                    done += 1
                    progress(done, total)
                yield step

    def propagate(self, start_frame: int, direction: str = "forward", max_frames: Optional[int] = None,
                  tag: Any = None) -> Iterator[Step]:
        """Propagate from ``start_frame`` forward, backward or both (see :meth:`plan`); write each frame as it comes.

        Each frame is written whole; a run stopped early keeps the frames it finished, and
        :meth:`undo` restores everything the run changed (labels and session).

        Hand edits (brush, fill and eraser strokes told by :meth:`painted`, also on frames this controller never wrote;
        a script's writes: a frame changed since this controller wrote it; :meth:`_hand_edits`, read for each frame
        just before the model tracks it, so a stroke made during the run on a frame not reached yet counts too) of an
        object the pass does not track again stay as they are: its
        pixels there as the person left them; an object tracked again gets its new mask over its own edits. What was
        kept and replaced, and where, is said after the run (:meth:`pop_notes`); :meth:`undo` brings it all back.
        """
        passes = self.plan(start_frame, direction, max_frames)
        record = self._begin(tag)
        record.changed = True
        self._end(record)  # recorded first: a cancelled run is undone like a finished one
        written: List[int] = []
        try:
            yield from self._noting_frames(self._passes(passes, max_frames, record), written)
        finally:  # also when cancelled or failed: the frames written so far are said
            self._say_edits(record)
            self._say_blank(written)

    @staticmethod
    def _noting_frames(steps: Iterator[Step], written: List[int]) -> Iterator[Step]:
        """``steps`` passed on, the frame of each "frame" step appended to ``written``."""
        for step in steps:
            if step[0] == "frame":
                written.append(step[1])
            yield step

    def _say_blank(self, frames: List[int]) -> None:
        """Add to what is said after the run (:meth:`pop_notes`) which of ``frames`` (those the step wrote) showed the
        model nothing (a constant frame, or every pixel past one contrast limit): its masks there are guesses. The
        sessions warn too, but a warning raised in a worker thread reaches no one in the widget."""
        if not frames or self._session is None:
            return
        words = self._session.blank_summary(sorted(set(frames)))
        if words:
            self._notes.append(words[0].upper() + words[1:] + ".")

    def _passes(self, passes: List[PropagationPass], max_frames: Optional[int], record: _Record) -> Iterator[Step]:
        """:meth:`propagate`'s passes, written into ``record``."""
        total = self.session.num_frames
        for step in passes:
            if step.obj_ids == ():  # every object unchanged: the frames redrawn from their results, no model work
                for frame in step.frames:
                    self._write_newest(record, frame, self._hand_edits(frame), ())
                    yield "frame", frame, self.session.obj_ids, None
                continue
            moving = self.session.obj_ids if step.obj_ids is None else list(step.obj_ids)
            if step.num_frames:  # until the pass ends whole, its objects are tracked again by the next one
                for obj in moving:
                    self._tracked.pop(obj, None)
            # labels, not every object's full-resolution logits (the session makes them without an (n_obj, H, W)
            # array); a subset's frames are drawn from every object's newest result (below), not from its output
            extra = {} if step.obj_ids is None else {"obj_ids": list(step.obj_ids)}
            # each frame's hand edits are read just before the model tracks it (its results change then): a stroke
            # made during the run on a frame the pass has not reached yet is seen (the session's generator tracks a
            # frame when asked for it)
            order = step.frames
            edit = self._hand_edits(order[0]) if order else None
            frames = self.session.propagate(start_frame=step.start, reverse=step.reverse, max_frames=max_frames,
                                            output="labels", **extra)
            reached = None
            for k, (frame, obj_ids, labels) in enumerate(frames):
                if k >= len(order) or frame != order[k]:  # (never today: plan's order is the sessions' order)
                    raise RuntimeError(f"the propagation from frame {step.start} gave frame {frame} as its frame "
                                       f"number {k + 1}, but its plan has "
                                       f"{order[k] if k < len(order) else f'only {len(order)} frames'} there: "
                                       "the hand edits read for its frames would be put on other frames")
                if step.obj_ids is not None:  # a subset: compose the frame from every object's newest result
                    obj_ids = self.session.obj_ids
                    self._write_newest(record, frame, edit, step.obj_ids)
                else:
                    self._write_labels(record, frame, obj_ids, labels, edit)
                reached = frame
                yield "frame", frame, obj_ids, None
                edit = self._hand_edits(order[k + 1]) if k + 1 < len(order) else None
            if reached == (0 if step.reverse else total - 1):  # whole, to the stack's edge (not cut by max_frames)
                for obj in moving:
                    if obj in self.session.obj_ids:
                        self._tracked[obj] = _Tracked(step.reverse, step.start)
        yield "done", -1, self.session.obj_ids, None

    def undo(self) -> Optional[Undone]:
        """Undo the last step (prompt update or propagation): labels, session and prompts; None if none is left
        (:meth:`undo_steps` on the calling thread).

        Raises :class:`~.labels_writer.EditedSince` (a ValueError naming the frames), and undoes nothing, when a
        frame the step wrote was changed since by something else ("Track all cells", a brush, a script): restoring
        it would throw that change away silently. Undo that change first, then this step.
        """
        return finish(self.undo_steps())

    def undo_steps(self) -> Iterator[EditStep]:
        """:meth:`undo` as steps for a worker thread (the checksums of the (H, W) planes the step wrote, then its saved
        planes decompressed and written back): one ("done", :class:`Undone`, or None when the history is empty) step;
        :class:`~.labels_writer.EditedSince` is raised there, before anything is undone."""
        if not self.history:
            yield "done", None
            return
        record = self.history[-1]
        edited = [self._frame_of(index) for index in record.journal.edited(self.labels)]
        if edited:
            raise EditedSince(f"frames {sorted(set(edited))} were changed after this step by another tool or by "
                              "hand; undo that change first, then Undo again (nothing was undone)", edited)
        with self._own_writes():
            restored = record.journal.undo(self.labels)
        self._restore_marks(record, restored)
        # the session goes back to the snapshot: the passes that had tracked its objects whole then hold again (the
        # next propagation leaves those objects out, :meth:`plan`); where that is not known, every object is tracked
        self._tracked = dict(record.tracked) if record.tracked is not None else {}
        self.session.restore(record.snapshot)
        self.history.pop()
        self._sent, self.mask_prompts = record.sent, record.mask_prompts
        yield "done", Undone([self._frame_of(index) for index in restored], record.tag)

    def _restore_marks(self, record: _Record, restored: List[Tuple[Any, ...]]) -> None:
        """The hand edits known (:attr:`hand_edits`) of the planes ``record``'s step wrote and its undo just
        ``restored`` (their indices), as before the step: hand edits made before it count as such again. The other
        planes keep theirs (a plane another tool wrote after the step, e.g. Track all or Load session, stays that
        tool's write)."""
        if record.ours is not None:
            self.hand_edits.restore(record.ours, restored)

    def _frame_of(self, index: Tuple[Any, ...]) -> int:
        """The frame of a plane index of the labels (0 for a single image)."""
        axis = self.layout.labels_axis(self.layout.frame_axis) if self.layout.frame_axis is not None else None
        return int(index[axis]) if axis is not None else 0

    def wrote_last(self, frame: int) -> bool:
        """Whether ``frame``'s labels are exactly what a step still on the undo history wrote there last."""
        index = self.layout.frame_index_in_labels(frame)
        return any(record.journal.holds(self.labels, index) for record in self.history)

    def measurements(self, calibration: Any = None) -> List[dict]:
        """Per-object, per-frame table of the labels (see :func:`napari_sam2.export.measure`).

        calibration: an :class:`napari_sam2.export.Calibration` for columns in physical units (or None).
        ``mean_intensity`` measures what the session segments, in the image's own values (not smoothed): the chosen
        channel (session option ``channel``), the mean or max of the channels (``composite``), the grey frame, or
        for RGB frames (no channel chosen) the mean of the three colours.
        """
        return self.frame_table().rows(calibration)

    def frame_table(self) -> FrameTable:
        """The session's measurement table, frame by frame (an :class:`napari_sam2.export.FrameTable`): the labels
        of frame t (the layout's fixed slices) and its intensities as :meth:`measurements` says, with the session's
        object scores and check frames. The widget's table and its CSV export both read it, one frame in memory at a
        time (a zarr stack and its labels stay on disk)."""
        from .export import FrameTable, intensity_plane

        channel, composite = self.session_options.get("channel"), self.session_options.get("composite")
        return FrameTable(self.num_frames, lambda t: self.labels[self.layout.frame_index_in_labels(t)],
                          lambda t: intensity_plane(self.frames[t], channel, composite), self.object_scores(),
                          self.check_frames())

    def object_scores(self) -> Dict[Tuple[int, int], float]:
        """{(frame, obj_id): presence logit} of every result the session holds."""
        scores = {}
        for obj_id in self.obj_ids:
            for t in self.session.tracked_frames(obj_id):
                score = self.session.object_score(t, obj_id)
                if score is not None:
                    scores[(t, obj_id)] = float(score)
        return scores

    def check_frames(self) -> Set[Tuple[int, int]]:
        """{(frame, obj_id)} where the object's mask jumped (``VideoSession.jumped_frames``)."""
        return {(t, obj_id) for obj_id in self.obj_ids for t in self.session.jumped_frames(obj_id)}

    def _begin(self, tag: Any) -> _Record:
        record = _Record(RunJournal(), self.session.snapshot(), dict(self._sent), dict(self.mask_prompts), tag,
                         baseline=self._baseline_next, tracked=dict(self._tracked), ours=self.hand_edits.snapshot(),
                         edits=EditsMet())
        self._baseline_next = False
        return record

    def _say_edits(self, record: _Record) -> None:
        """Add what ``record``'s step did where it met hand edits to what is said after the run (:meth:`pop_notes`:
        the steps of one run, a click's and a propagation's, in one account); once: the record's account is emptied."""
        if record.edits is not None:
            self._edits_met.take(record.edits)
            record.edits = EditsMet()

    def _end(self, record: _Record) -> None:
        if record.baseline:  # the history starts after this step
            return
        if (record.changed or len(record.journal)) and not any(r is record for r in self.history):
            self.history.append(record)

    def _write_labels(self, record: _Record, frame: int, obj_ids: List[int], labels: np.ndarray,
                      edit: Optional[HandEdit] = None) -> None:
        """Write ``frame``'s labels from a propagation's (H, W) label image of ``obj_ids`` (``output="labels"``): the
        plane :func:`~.labels_writer.compose_frame` gives for the same pass's logits, bit for bit (the winner of each
        pixel is the object labelled there), with no (n_obj, H, W) array. ``edit``: the frame's hand edits, seen before
        the pass (:meth:`_hand_edits`): every object gets its new mask over them (said after the run)."""
        index = self.layout.frame_index_in_labels(frame)
        plane = compose_winners(np.asarray(self.labels[index]), obj_ids, _indices(labels, obj_ids),
                                session_ids=self._known_ids())
        self._put(record, frame, index, plane, edit, None)

    def _write_newest(self, record: _Record, frame: int, edit: Optional[HandEdit] = None,
                      moving: Optional[Collection[int]] = None) -> None:
        """Write ``frame``'s labels from every object's newest result there (pending corrections included): the plane
        :func:`~.labels_writer.compose_frame` gives for ``session.frame_logits(frame)``, from the session's
        ``frame_winners`` (no (n_obj, H, W) logits: a click's wait barely grows with the number of objects).

        edit: the frame's hand edits, seen before the step changed any result (:meth:`_hand_edits`); moving: the
        objects whose results the step made anew there (None: every one). The pixels of the edit that belong to the
        other objects (labelled with one, or erased where one was drawn) stay as they are (:meth:`HandEdit.split`)."""
        index = self.layout.frame_index_in_labels(frame)
        obj_ids = self.session.obj_ids
        winners = self.session.frame_winners(frame) if obj_ids else None
        plane = compose_winners(np.asarray(self.labels[index]), obj_ids, winners, session_ids=self._known_ids())
        self._put(record, frame, index, plane, edit, moving)

    def _put(self, record: _Record, frame: int, index: Tuple[Any, ...], plane: np.ndarray,
             edit: Optional[HandEdit], moving: Optional[Collection[int]]) -> None:
        """Write the (H, W) ``plane`` drawn from the session's results at ``labels[index]`` in ``record``'s journal,
        with the pixels of ``edit`` that ``moving`` leave alone (:meth:`HandEdit.apply`) as the labels hold them now;
        the plane is marked as this controller's (:attr:`hand_edits`), or as still holding hand edits where some were
        kept."""
        kept = False
        if edit is not None:
            kept, kept_objects, replaced = edit.apply(plane, np.asarray(self.labels[index]), moving)
            record.edits.add(frame, kept_objects, replaced)
        with self._own_writes():
            record.journal.write(self.labels, index, plane.astype(self.labels.dtype))
        self.hand_edits.wrote(index, record.journal.written[hashable_index(index)], kept, record.ours)

    def _hand_edits(self, frame: int) -> Optional[HandEdit]:
        """``frame``'s hand edits (:meth:`~.hand_edits.HandEdits.edit`): where its labels plane was changed since this
        controller last wrote it (a brush, fill or eraser stroke, a script: its checksum no longer matches) or was
        stroked (also a plane it never wrote: the strokes' pixels), the pixels that differ from what the session's
        results draw there now (:func:`~.labels_writer.compose_winners`), and the objects among them; None where there
        is none. Call it before the frame's results change: a pass reads each frame's edits just before the model
        tracks that frame."""
        obj_ids, known = self.session.obj_ids, self._known_ids()

        def draw(now: np.ndarray) -> np.ndarray:
            return compose_winners(now, obj_ids, self.session.frame_winners(frame) if obj_ids else None,
                                   session_ids=known)

        return self.hand_edits.edit(self.layout.frame_index_in_labels(frame), draw, known)

    def _clear_object(self, record: _Record, obj: int) -> List[int]:
        """Clear ``obj`` from every frame's labels (in ``record``'s journal); returns the frames it was on. A plane
        changed by hand since this controller wrote it keeps counting as edited (:meth:`_hand_edits`)."""
        frames, journal = [], record.journal
        for frame in range(self.num_frames):
            index = self.layout.frame_index_in_labels(frame)
            plane = np.asarray(self.labels[index])
            if (plane == obj).any():
                changed = self.hand_edits.changed(index, plane)  # (``plane`` is a view: before the write)
                with self._own_writes():
                    journal.write(self.labels, index, np.where(plane == obj, 0, plane).astype(self.labels.dtype))
                self.hand_edits.cleared(index, journal.written[hashable_index(index)], changed, record.ours)
                frames.append(frame)
        return frames

    def _follow_relabel(self, sums: Dict[Any, Tuple[int, int]]) -> None:
        """The planes a relabel wrote (:func:`relabel_planes`'s ``sums``: plane key -> checksums before and after)
        stay this controller's where they were (the same labels with another id), and edited by hand where they were;
        no plane is read again."""
        self.hand_edits.relabelled(sums)

    def _note_cleared(self, cleared: Dict[int, List[int]]) -> None:
        """Say which frames lost an object re-made from its remaining prompts (the session cannot forget one frame's
        prompt, so the object's tracked masks elsewhere were cleared)."""
        for obj, frames in sorted(cleared.items()):
            if frames:
                self._notes.append(f"a prompt of object {obj} was removed, so it was re-made from its other prompts "
                                   f"and its masks on frame(s) {frame_ranges(sorted(set(frames)))} were cleared: "
                                   "propagate again to track it there (or Undo).")

    def _known_ids(self) -> set:
        return set(self.session.obj_ids) | {obj for _, obj in self._sent}


def finish(steps: Iterator[EditStep]) -> Any:
    """Run an edit's steps (:meth:`SegmentationController.remove_object_steps`, ``undo_steps``, ``reassign_steps``) on
    the calling thread; returns its result (its last step's)."""
    result = None
    for _, result in steps:
        pass
    return result


Relabelled = List[Tuple[Tuple[Any, ...], np.ndarray]]  # (plane index, flat indices of the pixels relabelled)


def relabel_planes(labels: Any, planes: Sequence[Tuple[Any, ...]], old: int, new: int,
                   sums: Optional[Dict[Any, Tuple[int, int]]] = None) -> Relabelled:
    """Give ``old``'s pixels the id ``new`` on the (H, W) planes ``labels[index]`` (``index`` in ``planes``) that hold
    it, telling the array's watchers (:func:`~.labels_writer.tell_written`); returns each plane written with the flat
    indices of its pixels relabelled (:func:`put_back_ids` undoes it). Each plane is read once; one without ``old`` is
    only compared, never copied or written. ``sums``: filled with each written plane's key
    (:func:`~.labels_writer.hashable_index`) -> its checksums (:func:`~.labels_writer.plane_checksum`) before and
    after. All or nothing: a failure part way gives the planes already written their old id back."""
    written: Relabelled = []
    try:
        for index in planes:
            plane = np.asarray(labels[index])
            here = plane == old
            if here.any():
                before = None if sums is None else plane_checksum(plane)
                plane = plane.copy()  # not the labels' own plane: they change by the write below (watchers told)
                plane[here] = new
                labels[index] = plane
                written.append((index, np.flatnonzero(here)))
                if sums is not None:
                    sums[hashable_index(index)] = (before, plane_checksum(plane))
                tell_written(labels, index, plane)  # the objects table's and Track all's knowledge of the planes
    except BaseException:
        put_back_ids(labels, written, old)
        raise
    return written


def put_back_ids(labels: Any, relabelled: Relabelled, old: int) -> None:
    """Undo :func:`relabel_planes`: the pixels it relabelled get ``old`` back, each plane written whole."""
    for index, pixels in reversed(relabelled):
        plane = np.array(labels[index])
        plane.flat[pixels] = old
        labels[index] = plane
        tell_written(labels, index, plane)


def _indices(labels: np.ndarray, obj_ids: Sequence[int]) -> np.ndarray:
    """(H, W) label image of ``obj_ids`` (0: none) -> (H, W) int64, the index of each pixel's id in ``obj_ids``, -1
    where it is 0 (the ``winners`` that :func:`~.labels_writer.compose_winners` takes)."""
    labels = np.asarray(labels)
    if not len(obj_ids):
        return np.full(labels.shape, -1, np.int64)
    ids = np.asarray(obj_ids, np.int64)
    order = np.argsort(ids, kind="stable")
    where = order[np.minimum(np.searchsorted(ids[order], labels), len(ids) - 1)]
    return np.where(labels > 0, where, -1)


def check_object_window(value: Any) -> int:
    """A click window's side: an integer of at least 8 frame px (ValueError naming what is accepted)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 8:
        return int(value)
    raise ValueError(f"object_window must be a window side of at least 8 frame pixels (or None: the whole frame), "
                     f"got {value!r}")


def _unchanged(mark: Optional[_Tracked], start: int, reverse: bool) -> bool:
    """Whether an object whose last whole pass was ``mark`` (None: none, or something of it changed since) gets the
    results it has when tracked from ``start`` the same way: that pass went this way from ``start`` or before it (in
    the direction of travel), so it tracked every frame from ``start`` to the stack's edge from the memories the object
    has now."""
    if mark is None or mark.reverse != reverse:
        return False
    return mark.start >= start if reverse else mark.start <= start


def _same(a: Optional[FramePrompt], b: FramePrompt) -> bool:
    if a is None:
        return False
    boxes_equal = (a.box is None and b.box is None) or (
        a.box is not None and b.box is not None and np.array_equal(a.box, b.box)
    )
    masks_equal = (a.mask is None and b.mask is None) or (
        a.mask is not None and b.mask is not None and np.array_equal(a.mask, b.mask)
    )
    return boxes_equal and masks_equal and np.array_equal(a.points, b.points) and np.array_equal(a.labels, b.labels)


def _with(prompt: Optional[FramePrompt], item: FramePrompt) -> FramePrompt:
    """``prompt`` (None: nothing yet) with the clicks of ``item`` added after its own and ``item``'s box, if any."""
    if prompt is None:
        return FramePrompt(int(item.frame), int(item.obj_id), np.asarray(item.points, np.float32).reshape(-1, 2),
                           np.asarray(item.labels, np.int32).reshape(-1), item.box, item.mask)
    return FramePrompt(prompt.frame, prompt.obj_id,
                       np.vstack([prompt.points, np.asarray(item.points, np.float32).reshape(-1, 2)]),
                       np.append(prompt.labels, np.asarray(item.labels, np.int32)).astype(np.int32),
                       item.box if item.box is not None else prompt.box,
                       item.mask if item.mask is not None else prompt.mask)


def _adds_to(old: FramePrompt, new: FramePrompt) -> bool:
    """True when ``new`` is ``old`` with clicks added (same box, same earlier clicks in the same order)."""
    same_box = (old.box is None and new.box is None) or (
        old.box is not None and new.box is not None and np.array_equal(old.box, new.box))
    count = len(old.points)
    return (same_box and old.mask is None and new.mask is None and len(new.points) >= count
            and np.array_equal(new.points[:count], old.points) and np.array_equal(new.labels[:count], old.labels))
