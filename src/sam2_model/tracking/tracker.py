"""Automatic cell tracking with SAM 2's memory: seed, propagate, re-detect, end lost cells, divisions.

:class:`CellTracker` is a generator (``run()`` yields every frame as it is done, so a caller can show
progress and cancel by closing it); :func:`track_cells` runs it to the end and returns a
:class:`TrackingResult`. No Qt here; only public methods of :class:`VideoSession` are used.

Parameters (defaults and why):

* ``start_frame=0``, ``reverse=False``: where to seed and which way to go. Frames are the (T, H, W[, C])
  stack along the axis the caller chose (time or z). Going backwards, divisions are off whatever ``divisions``
  says (a division seen backwards is two cells merging, which the tracker does not model). A start frame without
  cells is fine (a z-stack that starts above the sample, cells that come in later): while nothing is tracked every
  frame is a detection frame, so the first cells begin on the frame they appear.
* ``seeding="blobs"``: point prompts on LoG blobs of the cell-size range. SAM 2's 32 x 32 grid spaces
  points 8 px apart at 256 px but 32 px at 1024 px, so small nuclei fall between them; "grid" suits
  large cells on busy backgrounds, "grid+blobs" is the most complete and the slowest.
* ``cell_diameter=(8, 40)``: pixels of the original frame; sets the blob scales, the smallest mask kept
  (``min_area``, default a quarter of the smallest disc) and the largest (twice the largest disc).
* ``redetect_every=5``: detection on every 5th frame picks up cells that enter within ~5 frames at a
  fifth of the cost of detecting every frame (a detection costs several frames of propagation).
  A masklet whose area drops to 0.3-0.7x of its recent maximum triggers a detection at once, so a
  division is seen on the frame it happens.
* ``divisions=True``: a masklet that splits into two daughter-sized pieces for >= 2 frames, a masklet
  that grew >= 1.1x and is pinched into two cores for >= 2 frames (checked every frame; the demo
  model's masklet keeps covering touching daughters, see :func:`.divisions.neck_split`), two
  detections inside one masklet, two blobs in one masklet that SAM 2 separates when each is clicked
  against the other, or a new detection touching a masklet whose area halved -> the mother ends
  ("divided") and two daughters begin with the parent link (thresholds in :mod:`.divisions`).
  :func:`track_cells` then moves each division back to the first frame whose masklet already holds two
  nuclei (at most ``redetect_every - 1`` frames; the generator's frames are already shown by then), and
  undoes a division whose daughter (or both) vanishes -- is lost or leaves the field -- within
  ``divisions.MIN_DAUGHTER_FRAMES`` (3) frames (a fragment cut from the mother, not a cell).
* ``max_lost_frames=3``: an object with an empty mask (object score <= 0, or fewer than ``min_area``
  pixels) on 3 consecutive frames ends: "left the field" when its last mask came within a cell radius
  of the border, "lost" otherwise. It is removed from the session, so it costs nothing afterwards.
  Fewer frames end cells during short occlusions; more keep dead objects computing.
* ``non_overlap=True``: each pixel goes to the object with the highest logit (SAM 2's own rule); with
  False, larger masks are painted first so smaller cells stay visible on top.
* ``max_coverage=0.5``, ``max_iou=0.3``: a detection is a new cell when less than half of it lies on
  tracked pixels and its best IoU with a tracked mask is below 0.3 (Hungarian matching, not first-hit).
* ``window="auto"``: where cells are small against the frame (:func:`detection.cell_window_side`: a window of
  ~10 cell widths, at least twice the largest diameter plus margins, is at most 2/3 of the frame's longer side), each
  cell is detected and tracked in its own window that follows it (:class:`~sam2_model.windowed_session.WindowedSession`;
  nuclei ~30 px wide in 768 x 768: SEG / DET / TRA 0.72 / 0.86 / 0.86 on whole frames, 0.94 / 0.98 / 0.98 in windows,
  two held-out seeds of 12 frames); each cell then costs one model input a frame. None: whole frames; a number: that
  side in px. The synthetic bars (256 x 256) and the MSC time-lapse with its cell diameter (40-160 px) are on whole
  frames either way.
* ``amg_options``: passed to :func:`detection.make_detector`: ``min_contrast`` (default ``MIN_CONTRAST``, 0.7;
  0: off; detections that stand out less from the pixels around them are background,
  :func:`detection.mask_contrast`) and the automatic
  mask generator's options (e.g. ``pred_iou_thresh``).
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Generator, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import ndimage

from ..frames import FrameSource
from ..prompt_validation import check_count
from ..work_steps import drain, relay
from . import divisions as div
from .detection import (Detector, DetectionWork, WindowArg, cell_window_side, check_cell_diameter,
                        check_window, crop_of, default_min_area, make_detector)
from .lineage import Lineage
from .matching import match_crops

if TYPE_CHECKING:  # the sessions (torch) are imported when a tracker is made: TrackingResult loads without torch
    from ..modeling.sam2 import SAM2Model

log = logging.getLogger(__name__)
FrameStep = Tuple[int, np.ndarray, int]
Progress = Callable[[int, int], None]
# the stages of one frame's work in the order they run, each with the share of the frame it ends at (a rough
# measure of their cost on the MSC time-lapse: detection's re-clicks of crowded cells take most of a detection frame)
STAGE_ENDS = {"propagating": 0.1, "finding": 0.15, "seeding": 0.3, "clicking": 0.75, "contrast": 0.8, "splitting": 0.9, "adding": 1.0}


@dataclass(frozen=True)
class WorkStep:
    """Work done inside frame ``frame`` (``CellTracker.run(work=True)`` yields one between pieces of model work, so a
    caller can show progress and stop within a frame): ``done`` of ``total`` units of ``stage`` (``STAGE_ENDS``:
    "propagating" every tracked cell, "finding" (the detector's filter passes that find blob points), "seeding" (the detector's grid / blob points and their masks), "clicking" (blob
    points clicked again), "contrast" (detections checked), "splitting" (masklets clicked apart), "adding" (new
    cells prompted))."""

    frame: int
    stage: str
    done: int
    total: int
    found: Optional[int] = None  # cells found so far on the frame by its detection (seeding .. contrast), or None
    eta_s: Optional[float] = None  # seconds the stage still needs at its pace so far on this frame, or None (unknown)

    def describe(self) -> str:
        """The step in words for a status line, with counts and the time left, e.g. "seeding: 362/1086 seeds placed,
        140 cells found, about 3 min left"."""
        words = {"propagating": "propagating the cells",
                 "finding": f"finding candidate cells: {self.done}/{self.total} filter passes", "seeding": f"seeding: {self.done}/{self.total} seeds placed",
                 "clicking": f"re-clicking crowded cells: {self.done}/{self.total} seeds",
                 "contrast": f"checking cells against their surroundings: {self.done}/{self.total}",
                 "splitting": f"looking for divisions: {self.done}/{self.total} cells",
                 "adding": f"adding cells: {self.done}/{self.total}"}.get(self.stage, f"{self.stage}: {self.done}/"
                                                                         f"{self.total}")
        if self.found is not None and self.stage in ("seeding", "clicking", "contrast"):
            words += f", {self.found} cell{'s' * (self.found != 1)} found"
        if self.eta_s is not None:
            words += f", about {_duration(self.eta_s)} left"
        return words

    @property
    def fraction(self) -> float:
        """How much of the frame's work is done, in [0, 1]: the stage's share (``STAGE_ENDS``) times done / total;
        it never goes down within a frame (the stages come in that order; a frame may skip some)."""
        stages = list(STAGE_ENDS)
        start = STAGE_ENDS[stages[stages.index(self.stage) - 1]] if stages.index(self.stage) else 0.0
        part = min(max(self.done / self.total, 0.0), 1.0) if self.total > 0 else 1.0
        return start + (STAGE_ENDS[self.stage] - start) * part


FrameWork = Generator[WorkStep, None, np.ndarray]  # a frame's work: WorkSteps, then its labels (H, W) uint32


def _duration(seconds: float) -> str:
    """``seconds`` in words, rounded: "40 s", "3 min", "1 h 5 min"."""
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{max(1, int(round(seconds)))} s"
    minutes = int(round(seconds / 60))
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def timed(work: Generator[WorkStep, None, Any], clock: Callable[[], float] = time.monotonic
          ) -> Generator[WorkStep, None, Any]:
    """``work``'s steps with ``eta_s`` set: the time the stage still needs at the pace of its steps so far (time since
    the stage's first step / units done since then x units left; None before a unit is done). Returns what ``work``
    returns; closed, or failed, it closes ``work`` (:func:`~sam2_model.work_steps.relay`)."""
    stage, start, first = None, 0.0, 0

    def with_eta(step: WorkStep) -> WorkStep:
        nonlocal stage, start, first
        now = clock()
        if step.stage != stage or step.done < first:
            stage, start, first = step.stage, now, step.done
        eta = None
        if step.done > first and step.total > 0:
            eta = (now - start) / (step.done - first) * max(step.total - step.done, 0)
        return dataclasses.replace(step, eta_s=eta)

    return relay(work, with_eta)


@dataclass(repr=False)
class TrackingResult:
    """What automatic tracking returns (:func:`track_cells`, ``napari_sam2.track_cells``).

    labels: (T, H, W) uint32 array, each pixel the id of the track that holds it (0: background); frames not tracked
        stay 0 (``napari_sam2.track_cells`` of one 2-D image gives (H, W)). ``napari_sam2.measure(result, stack)``
        gives one row per track and frame (area, centroid, intensity).
    lineage: :class:`~.lineage.Lineage`, one :class:`~.lineage.Track` per id (track_id, begin, end, parent,
        end_reason); ``[dataclasses.asdict(t) for t in result.lineage.rows()]`` for a DataFrame.
    frames_tracked: the frames done, in the order tracked (backwards: descending).
    note: "" for a run that found cells and finished; else one line for the user: no cell was found on any frame
        tracked (and what to check), or where a stopped run stopped (``napari_sam2.track_cells``'s ``stop``).
    first_frame: the movie's number of the labels' frame index 0: 0, except for a result of part of a movie
        (``napari_sam2.track_cells(..., frames=(first, last))``: ``first``), whose ``frames_tracked``, lineage and note
        already give the movie's numbers (``napari_sam2.measure(result)``'s ``frame`` column too): frame index ``i`` of
        ``labels`` is the movie's frame ``first_frame + i``.
    """

    labels: np.ndarray  # (T, H, W) uint32 track ids, 0 background; frames not tracked stay 0
    lineage: Lineage  # track id, begin, end, parent, end reason
    frames_tracked: List[int] = field(default_factory=list)  # in processing order
    note: str = ""  # one line for the user when no cell was found on any frame tracked (CellTracker.note), else ""
    first_frame: int = 0  # the movie's number of labels[0] (a result of frames=(first, last): first)

    @property
    def end_reasons(self) -> Dict[int, str]:
        """{track id: why it ended} (:data:`~.lineage.END_REASONS`)."""
        return {t.track_id: t.end_reason for t in self.lineage.rows()}

    def __repr__(self) -> str:
        """A summary, not the labels array: their shape and dtype, the number of tracks and divisions, the frames."""
        shape = "x".join(str(n) for n in np.shape(self.labels))
        frames = self.frames_tracked
        done = f"{len(frames)} frames ({frames[0]}..{frames[-1]})" if frames else "no frames"
        note = f", note={self.note!r}" if self.note else ""
        return (f"TrackingResult(labels={shape} {getattr(self.labels, 'dtype', '?')}, {len(self.lineage)} tracks, "
                f"{len(self.lineage.divisions())} divisions, frames_tracked: {done}{note})")


@dataclass
class _TrackState:
    areas: Deque[int] = field(default_factory=lambda: deque(maxlen=8))
    lost: int = 0
    last_seen: int = -1
    near_border: bool = False


class CellTracker:
    """Tracks every cell of ``frames``; see the module docstring for the parameters.

    ``detector`` (optional): a function frame (H, W[, C]) -> list of (H, W) bool masks replacing the
    SAM 2 automatic detection (e.g. another segmenter's output); by default :func:`make_detector`.
    """

    def __init__(self, model: SAM2Model, frames: Any, *, start_frame: int = 0, reverse: bool = False,
                 seeding: str = "blobs", cell_diameter: Sequence[float] = (8, 40), redetect_every: int = 5,
                 divisions: bool = True, max_lost_frames: int = 3, non_overlap: bool = True,
                 min_area: Optional[int] = None, max_coverage: float = 0.5, max_iou: float = 0.3,
                 detector: Optional[Detector] = None, window: WindowArg = "auto", **amg_options: Any) -> None:
        self.cell_diameter = check_cell_diameter(cell_diameter)
        window = check_window(window)
        self.redetect_every = check_count(redetect_every, "redetect_every", 1)
        self.max_lost_frames = check_count(max_lost_frames, "max_lost_frames", 1)
        self.min_area = (default_min_area(self.cell_diameter) if min_area is None
                         else check_count(min_area, "min_area", 1))
        for name, value in (("max_coverage", max_coverage), ("max_iou", max_iou)):
            if not 0.0 < float(value) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {value!r}")
        self.max_coverage, self.max_iou = float(max_coverage), float(max_iou)
        self.reverse, self.divisions, self.non_overlap = bool(reverse), bool(divisions) and not reverse, bool(non_overlap)
        from ..video_session import VideoSession
        from ..windowed_session import WindowedSession

        options: Dict[str, Any] = {"non_overlap_masks": False}
        if "batch_objects" in inspect.signature(VideoSession.__init__).parameters:
            options["batch_objects"] = True
        self._detects = f"the seeding ({seeding})" if detector is None else "the detector"
        if isinstance(frames, FrameSource) and frames.invert:  # the detector looks for the cells the model is shown
            if amg_options.get("invert", True) is False:
                raise ValueError("invert=False was given with a FrameSource that inverts the frames: the detector "
                                 "would look for bright cells the model is shown dark; leave invert out")
            if detector is None:
                amg_options = {**amg_options, "invert": True}
        self.detector = detector or make_detector(model, seeding, self.cell_diameter, self.min_area, window=window,
                                                  **amg_options)
        source = frames if isinstance(frames, FrameSource) else FrameSource(
            frames, image_size=model.image_size, invert=bool(amg_options.get("invert", False)))  # dark cells shown bright
        try:
            self.start_frame = source.check_index(start_frame)
        except ValueError:
            source.close()
            raise
        self.window = cell_window_side(window, self.cell_diameter, (source.height, source.width), model.image_size)
        if self.window is None:
            self.session: Any = VideoSession(model, source, **options)
        else:  # small cells on large frames: each tracked in its own window (sam2_model.windowed_session)
            self.session = WindowedSession(model, source, window=self.window, **options)
        self.lineage = Lineage()
        self._states: Dict[int, _TrackState] = {}
        self._split = div.SplitWatch()
        self._neck = div.NeckWatch(self.cell_diameter[0])
        self._next_id = 1
        self._border_gap = max(1, int(round(self.cell_diameter[0] / 2)))
        self._done: List[int] = []  # frames yielded so far, in order

    # ------------------------------------------------------------------ public
    @property
    def num_frames(self) -> int:
        return self.session.num_frames

    @property
    def order(self) -> List[int]:
        if self.reverse:
            return list(range(self.start_frame, -1, -1))
        return list(range(self.start_frame, self.num_frames))

    @property
    def note(self) -> str:
        """"" while cells were found (or no frame is done yet); otherwise one line for the user: no cell was
        detected on the frames done so far, and what to check. A stack without cells is no error: the result is
        empty (labels all 0, no track) and callers show this line."""
        if not self._done or len(self.lineage):
            return ""
        first, last = min(self._done), max(self._done)
        frames = f"frame {first}" if first == last else f"frames {first}-{last}"
        low, high = (f"{d:g}" for d in self.cell_diameter)
        return (f"no cells were detected on {frames}: check the cell diameter ({low}-{high} px of the image) and "
                f"{self._detects}")

    def run(self, work: bool = False) -> Iterator[Union[FrameStep, WorkStep]]:
        """Yields (frame_idx, labels (H, W) uint32, number of active objects) for every frame in order; with ``work``
        also a :class:`WorkStep` between the pieces of model work inside each frame (a propagation, the detector's
        seeding, each blob point it clicks again, each masklet clicked apart, each new cell prompted), so that a
        caller can show progress and stop within a frame (a detection frame of the MSC time-lapse takes 20-30 s on
        2 cores). The frames and lineage are the same either way.

        A start frame without cells is no error: every frame is then searched until cells appear (they begin
        there, like cells that enter), and a stack without any ends with empty labels and :attr:`note` set.
        Closing the generator stops tracking; ``self.lineage`` then describes the frames yielded so far (closed
        inside a frame, after a WorkStep, that frame is left out whole).
        """
        order = self.order
        last_frame = order[-1]
        try:
            for step, t in enumerate(order):
                frame_work = self._seed(t) if step == 0 else self._track(t, step, final=t == last_frame)
                if work:
                    frame_work = timed(frame_work)
                    before = Lineage(self.lineage.rows())
                    try:
                        labels = yield from frame_work
                    except GeneratorExit:  # stopped inside frame t: the lineage of the frames yielded
                        self.lineage = before
                        raise
                else:
                    labels = drain(frame_work)
                self._done.append(t)
                yield t, labels, len(self.session.obj_ids)
            self._finish(last_frame)
            if self.note:
                log.info("%s", self.note)
        finally:
            self.session.close()

    # ------------------------------------------------------------------ steps
    def _new_id(self) -> int:
        track_id = self._next_id
        self._next_id += 1
        return track_id

    def _start(self, t: int, mask: div.MaskLike, labels: np.ndarray, parent: int = 0) -> int:
        """A new track from ``mask`` on frame ``t``: a frame's mask (H, W) bool or a :class:`~.divisions.Crop` of one
        (its (H, W) mask is made only for the session's prompt, one cell at a time); its pixels free in ``labels``
        take its id."""
        crop = mask if isinstance(mask, div.Crop) else div.Crop.whole(mask)
        track_id = self._new_id()
        whole = crop.full(crop.mask) if isinstance(mask, div.Crop) else mask
        self.session.add_prompt(t, track_id, mask=whole, return_logits=False)  # not every object's logits per cell
        del whole
        self.lineage.add(track_id, t, parent)
        self._states[track_id] = _TrackState()
        self._observe(track_id, t, crop)
        part = labels[crop.box]
        part[crop.mask & (part == 0)] = track_id
        return track_id

    def _detect(self, t: int) -> Generator[WorkStep, None, List[div.Crop]]:
        """The detector's cell masks on frame ``t``, each a :class:`~.divisions.Crop` of its box: found piece by piece
        by a detector with a ``crop_steps(frame)`` or ``steps(frame)`` generator (a
        :class:`~.detection.CellDetector`: its pieces reported as WorkSteps, with the cells it has found so far), by
        another (a plain function) in one call."""
        frame = self.session.frames.filtered(t)
        steps = getattr(self.detector, "crop_steps", None)
        if not callable(steps):
            steps = getattr(self.detector, "steps", None)
        if not callable(steps):  # a plain function, or a detector with a "steps" setting: called whole
            masks = self.detector(frame)
        else:
            masks = yield from _as_work(t, steps(frame), self.detector)
        return [m if isinstance(m, div.Crop) else crop_of(m) for m in masks]

    def _seed(self, t: int) -> FrameWork:
        """The start frame's cells; none found is no error (a z-stack that starts above the sample, cells that come
        in later): ``_track`` then detects on every frame until the first cells appear."""
        labels = np.zeros(self.session.frame_shape, dtype=np.uint32)
        detections = yield from self._detect(t)
        for done, mask in enumerate(detections, start=1):
            self._start(t, mask, labels)
            yield WorkStep(t, "adding", done, len(detections), found=len(detections))
        return labels

    def _track(self, t: int, step: int, final: bool = False) -> FrameWork:
        if not self.session.obj_ids:  # nothing tracked (none yet, or all ended): detecting is the only work left,
            labels = np.zeros(self.session.frame_shape, dtype=np.uint32)  # so every frame is a detection frame
            yield from self._redetect(t, labels)
            return labels
        # labels straight from the session where each pixel goes to the highest logit (no (n, H, W) logits); masks
        # where larger ones are painted first (their areas need every object's whole mask)
        output = "labels" if self.non_overlap else "masks"
        steps = list(self.session.propagate(start_frame=t, reverse=self.reverse, max_frames=0, output=output))
        if not steps:  # the session tracks nothing backwards from frame 0: step 1 -> 0 (frame 1 is recomputed as it was)
            steps = list(self.session.propagate(start_frame=t + 1, reverse=True, max_frames=1, output=output))
        _, ids, out = steps[-1]
        labels = self._compose(ids, out)
        yield WorkStep(t, "propagating", 1, 1)
        triggered = self._update(t, ids, labels, final)
        if step % self.redetect_every == 0 or triggered:
            yield from self._redetect(t, labels)
        return labels

    def _compose(self, ids: List[int], out: np.ndarray) -> np.ndarray:
        """The session's frame -> (H, W) uint32 ids; pieces smaller than min_area are dropped. ``out``: with
        ``non_overlap`` its labels (H, W) (each pixel the id of the highest positive logit, ties to the first object,
        as ``np.argmax`` over the objects' logits), else its masks (n, H, W) bool, painted largest first."""
        if self.non_overlap:
            labels = np.array(out, dtype=np.uint32)
        else:
            labels = np.zeros(out.shape[1:], dtype=np.uint32)
            for k in np.argsort([-int(m.sum()) for m in out]):
                labels[out[k]] = ids[k]
        for track_id, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is None:
                continue
            pieces, count = ndimage.label(labels[box] == track_id)
            if count:
                sizes = np.bincount(pieces.ravel())
                small = sizes < self.min_area
                small[0] = False
                labels[box][small[pieces]] = 0
        return labels

    def _observe(self, track_id: int, t: int, crop: div.Crop, area: Optional[int] = None) -> None:
        """Record the track's mask on frame ``t`` (a :class:`~.divisions.Crop` of the frame: its box, not the
        frame, is read): its area (``area`` when the caller counted it), seen now, and whether it comes within
        ``_border_gap`` pixels of the frame's edge."""
        state = self._states[track_id]
        state.areas.append(int(np.count_nonzero(crop.mask)) if area is None else area)
        state.lost, state.last_seen = 0, t
        ys, xs = np.nonzero(crop.mask)
        (rows, cols), (h, w) = crop.box, crop.shape
        top, bottom = rows.start + ys.min(), rows.start + ys.max()
        left, right = cols.start + xs.min(), cols.start + xs.max()
        gap = self._border_gap
        state.near_border = bool(top < gap or left < gap or bottom >= h - gap or right >= w - gap)
        self.lineage.extend(track_id, t)

    def _end(self, track_id: int, reason: str) -> None:
        self._states.pop(track_id)
        self._split.forget(track_id)
        self._neck.forget(track_id)
        # begin/end are the first and last frames in time where the track has pixels (``_observe`` widened them on
        # every frame): going backwards the frame seen last (``state.last_seen``) is its begin, not its end
        self.lineage.close(track_id, self.lineage[track_id].end, reason)
        if track_id in self.session.obj_ids:
            self.session.remove_object(track_id)

    def _update(self, t: int, ids: List[int], labels: np.ndarray, final: bool = False) -> bool:
        """Book-keeping after a frame: lost objects, split masklets. True if a detection should run now.

        ``final``: ``t`` is the run's last frame, where a split or a pinch seen on this frame alone is
        enough (``divisions.Streaks.confirm``): later frames, which would confirm it, do not exist.

        Each track is read in its box of the frame (``ndimage.find_objects`` once per frame), not the whole frame.
        A division here only removes its mother's pixels and paints its daughters (new ids) on pixels of no track,
        so the boxes of the tracks after it in ``ids`` still hold all their pixels."""
        triggered = False
        boxes = self._boxes(labels)
        for track_id in ids:
            state = self._states[track_id]
            crop = self._crop(labels, boxes, track_id)
            area = int(np.count_nonzero(crop.mask))
            if area < self.min_area:
                state.lost += 1
                if state.lost >= self.max_lost_frames:
                    self._end(track_id, "left the field" if state.near_border else "lost")
                continue
            previous = state.areas[-1] if state.areas else area
            recent_max = max(state.areas) if state.areas else area
            if self.divisions:
                pieces, cue = self._split.update(track_id, crop, previous, final), "split"
                if pieces is None and len(state.areas) >= div.MIN_SPLIT_FRAMES:
                    pieces, cue = self._neck.update(track_id, crop, area, min(state.areas), final), "neck"
                if pieces is not None and self._divide(t, track_id, pieces, labels, cue):
                    continue
                triggered |= div.halved(area, recent_max)
            self._observe(track_id, t, crop, area)
        return triggered

    @staticmethod
    def _boxes(labels: np.ndarray) -> List[Optional[Tuple[slice, slice]]]:
        """Each id's box in ``labels`` (H, W): entry ``id - 1``, None for an id without pixels."""
        return ndimage.find_objects(labels)

    @staticmethod
    def _crop(labels: np.ndarray, boxes: Sequence[Optional[Tuple[slice, slice]]], track_id: int) -> div.Crop:
        """Track ``track_id``'s mask in ``labels`` (H, W) as a :class:`~.divisions.Crop` of its box (``boxes``:
        :meth:`_boxes` of these labels, or of labels where the track has lost pixels since); an empty (0, 0) crop
        for a track without pixels."""
        box = boxes[track_id - 1] if 0 < track_id <= len(boxes) else None
        if box is None:
            return div.Crop(np.zeros((0, 0), dtype=bool), (slice(0, 0), slice(0, 0)), labels.shape)
        return div.Crop(labels[box] == track_id, box, labels.shape)

    def _divide(self, t: int, parent: int, daughters: Sequence[np.ndarray], labels: np.ndarray, cue: str) -> bool:
        """End ``parent`` on the frame before ``t`` and start its daughters (mask prompts) on ``t``; False (and
        nothing done) when the daughters are not about the same size (:func:`.divisions.balanced`). Pixels two
        daughters claim go to the later one (:func:`.divisions.disjoint`)."""
        daughters = div.disjoint(daughters)
        sizes = [int(np.count_nonzero(d)) for d in daughters]
        if not div.balanced(daughters):
            log.debug("frame %d: track %d not divided (%s): pieces of %s px are unequal", t, parent, cue, sizes)
            return False
        log.debug("frame %d: track %d divides (%s) into pieces of %s px", t, parent, cue, sizes)
        self._end(parent, "divided")
        self.lineage.close(parent, min(self.lineage[parent].end, t - 1), "divided")
        labels[labels == parent] = 0
        for mask in daughters:
            self._start(t, mask, labels, parent=parent)
        return True

    def _redetect(self, t: int, labels: np.ndarray) -> Generator[WorkStep, None, None]:
        detections = yield from self._detect(t)
        if not detections:
            return
        match = match_crops(detections, labels, self.max_coverage, self.max_iou)
        new = list(match.new)
        log.debug("frame %d: %d detections, %d matched, new %s, inside %s, best IoU %s", t, len(detections),
                  len(match.matched), new, match.inside, np.round(match.best_iou, 2).tolist())
        if self.divisions:
            for track_id, inside in match.inside.items():
                state = self._states.get(track_id)
                if state is None or self.lineage[track_id].begin == t:
                    continue
                area = int(np.count_nonzero(labels == track_id))
                pair = div.two_inside(area, [detections[i].mask for i in inside], max(state.areas))
                log.debug("frame %d: track %d holds detections %s (areas %s, track %d, recent max %d) -> %s", t,
                          track_id, inside, [int(detections[i].mask.sum()) for i in inside], area, max(state.areas),
                          pair)
                if pair is not None:
                    self._divide(t, track_id, [detections[inside[k]].full(detections[inside[k]].mask) for k in pair],
                                 labels, "two detections")
            yield from self._split_by_clicks(t, labels)
            for n in list(new):
                mother = self._halved_neighbour(t, detections[n], labels)
                if mother is not None and self._divide(t, mother, [labels == mother, detections[n].full(
                        detections[n].mask)], labels, "halved neighbour"):
                    new.remove(n)
        for done, n in enumerate(new, start=1):
            crop = detections[n]
            mask = crop.mask & (labels[crop.box] == 0)
            if np.count_nonzero(mask) >= self.min_area:
                self._start(t, div.Crop(mask, crop.box, crop.shape), labels)
                yield WorkStep(t, "adding", done, len(new), found=len(detections))

    def _split_by_clicks(self, t: int, labels: np.ndarray) -> Generator[WorkStep, None, None]:
        """Divide masklets that hold two nuclei which SAM 2 separates when clicked one against the other
        (the detector's ``split``; touching daughters often come out of detection as one mask).

        As for the neck rule, the masklet must have grown to ``divisions.MIN_GROWTH`` x its smallest recent
        area (two daughters under one masklet cover more than their mother did): on the held-out clips
        every division this cue made without that guard was a large single nucleus with two LoG blobs,
        clicked into two pieces while its masklet was shrinking (0.8-0.9x its recent maximum). The guard is tested
        before ``split``, which costs two clicks: a masklet that has not grown is never divided by this cue."""
        split = getattr(self.detector, "split", None)
        if split is None:
            return
        candidates = [i for i in self._states if i in self.lineage and self.lineage[i].begin < t]
        boxes = self._boxes(labels)  # a division below adds new ids on pixels of no track: the boxes stay whole
        for done, track_id in enumerate(candidates):
            crop = self._crop(labels, boxes, track_id)
            area = int(np.count_nonzero(crop.mask))
            areas = self._states[track_id].areas
            if area < self.min_area or not areas or not div.grown(area, min(areas)):
                continue
            yield WorkStep(t, "splitting", done, len(candidates))
            pieces = split(crop.full(crop.mask))
            if pieces is None:
                continue
            reference = max(area, max(areas))
            sizes = [int(np.count_nonzero(p)) for p in pieces]
            log.debug("frame %d: track %d (%d px, smallest recent %d) clicked apart into %s (reference %d)", t,
                      track_id, area, min(areas), sizes, reference)
            if min(sizes) >= div.MIN_PIECE_FRACTION * reference and \
                    div.TOTAL_RANGE[0] <= sum(sizes) / reference <= div.TOTAL_RANGE[1]:
                self._divide(t, track_id, pieces, labels, "clicked apart")

    def _halved_neighbour(self, t: int, detection: div.Crop, labels: np.ndarray) -> Optional[int]:
        """A track touching ``detection`` (a :class:`~.divisions.Crop` of the frame) whose area is 0.3-0.7x of its
        recent maximum and about the detection's size (the sister the masklet lost), else None. Not for a detection on
        the frame's edge: that is a cell coming into view (on a held-out clip one was taken for a daughter of the
        newcomer next to it). The touching tracks are read in the detection's box grown by the dilation's reach."""
        if div.touches_edge(detection):
            return None
        det_area = int(np.count_nonzero(detection.mask))
        gap = self._border_gap
        (rows, cols), (height, width) = detection.box, detection.shape
        grown = (slice(max(0, rows.start - gap), min(height, rows.stop + gap)),
                 slice(max(0, cols.start - gap), min(width, cols.stop + gap)))
        part = np.zeros((grown[0].stop - grown[0].start, grown[1].stop - grown[1].start), dtype=bool)
        part[rows.start - grown[0].start:rows.stop - grown[0].start,
             cols.start - grown[1].start:cols.stop - grown[1].start] = detection.mask
        for track_id in np.unique(labels[grown][ndimage.binary_dilation(part, iterations=gap)]):
            state = self._states.get(int(track_id))
            if not track_id or state is None or self.lineage[int(track_id)].begin >= t:
                continue
            area = int(np.count_nonzero(labels == track_id))
            if div.halved(area, max(state.areas)) and 0.4 <= det_area / max(area, 1) <= 2.5:
                return int(track_id)
        return None

    def _finish(self, last_frame: int) -> None:
        for track_id in list(self._states):
            state = self._states[track_id]
            if state.lost == 0 and state.last_seen == last_frame:
                self._end(track_id, "end of stack")
            else:
                self._end(track_id, "left the field" if state.near_border else "lost")


def _as_work(t: int, steps: Generator[DetectionWork, None, Any], detector: Any = None
             ) -> Generator[WorkStep, None, Any]:
    """The detector's ``steps`` on frame ``t`` as WorkSteps (with the ``found`` count of ``detector`` where it keeps
    one, read as each step comes); returns what they return (closed, or failed, they are closed:
    :func:`~sam2_model.work_steps.relay`)."""

    def as_step(work: DetectionWork) -> WorkStep:
        stage, done, total = work
        found = getattr(detector, "found", None)
        return WorkStep(t, stage, done, total, found=found if isinstance(found, int) else None)

    return relay(steps, as_step)


def finish_divisions(tracker: CellTracker, labels: np.ndarray, frames: Any, lineage: Optional[Lineage] = None
                     ) -> None:
    """The end-of-run division steps of a finished run, in place on ``labels`` (T, H, W) and ``lineage`` (default:
    the tracker's; a run stopped part-way passes its copy of the rows after the last frame done).

    A daughter lost at once was a fragment, not a cell: its division is undone. A division seen on a
    detection frame may have happened up to ``redetect_every - 1`` frames earlier: it is moved back
    to where the frames show the pinch (``frames`` as given to the tracker; a FrameSource, which the
    session closed, is read through :meth:`FrameSource.reopen`, with the same channel choice).
    """
    lineage = tracker.lineage if lineage is None else lineage
    if not tracker.divisions:
        return
    div.undo_short_divisions(labels, lineage)
    if lineage.divisions() and tracker.redetect_every > 1:
        if isinstance(frames, FrameSource):
            source = frames.reopen()
        else:
            source = FrameSource(frames, image_size=tracker.session.model.image_size, prefetch=0)
        try:
            div.backdate_divisions(labels, lineage, source.filtered, tracker.cell_diameter,
                                   tracker.redetect_every - 1)
        finally:
            source.close()


#: options of ``napari_sam2.track_cells`` that prepare the frames (:class:`~sam2_model.frames.FrameSource`'s), not
#: the tracker's: :func:`track_cells` refuses them with where they go
FRAME_OPTIONS = ("smooth", "contrast_limits", "channel", "composite", "prefetch")


def detector_option_names() -> List[str]:
    """The names :func:`track_cells` (and :class:`CellTracker`) take in ``**amg_options``: the detector's own
    (:func:`detection.make_detector`: ``min_contrast``, ``invert``) and the automatic mask generator's
    (:class:`~sam2_model.automatic.AutomaticMaskGenerator`, e.g. ``pred_iou_thresh``, ``points_per_side``)."""
    from ..automatic import AutomaticMaskGenerator

    own = [n for n in inspect.signature(make_detector).parameters if n not in ("model", "amg_options")]
    amg = [n for n in inspect.signature(AutomaticMaskGenerator.__init__).parameters if n not in ("self", "model")]
    taken = {"seeding", "cell_diameter", "min_area", "window"}  # named arguments of the tracker, given by it
    # a frame option the generator takes for images it maps itself (contrast_limits) is refused: here the frames
    # are mapped once, by the FrameSource, for the detector and the tracking session alike
    return [n for n in own if n not in taken] + [n for n in amg if n not in own and n not in FRAME_OPTIONS]


def check_tracking_options(model: SAM2Model, frames: Any, amg_options: Dict[str, Any]) -> None:
    """TypeError for a name in ``amg_options`` that neither the detector nor the mask generator takes (checked before
    any frame is read), naming the valid ones, a close match, and where frame options (:data:`FRAME_OPTIONS`: smooth,
    contrast_limits, ...) go instead; ValueError for ``invert=True`` with a FrameSource that does not invert the
    frames (the detector would look for dark cells the model is not shown dark), and for a FrameSource made for
    another input size than the model's (FrameSource's default is 1024 px, the official models'), naming the fix."""
    import difflib

    named = [n for n in inspect.signature(track_cells).parameters if n not in ("model", "frames", "amg_options")]
    tracker = [n for n in inspect.signature(CellTracker.__init__).parameters
               if n not in ("self", "model", "frames", "amg_options", *named)]  # e.g. window, max_iou
    valid = detector_option_names()
    unknown = [name for name in amg_options if name not in valid and name not in tracker]
    if unknown:
        framing = [name for name in unknown if name in FRAME_OPTIONS]
        where = (f"; {', '.join(framing)} prepare{'s' * (len(framing) == 1)} the frames: pass "
                 f"sam2_model.FrameSource(frames, image_size=model.image_size, {framing[0]}=...) as the frames, or "
                 f"call napari_sam2.track_cells(stack, model=model, {framing[0]}=...)") if framing else ""
        close = [m for name in unknown if name not in framing
                 for m in difflib.get_close_matches(name, named + tracker + valid, 1)]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise TypeError(f"track_cells() got unknown option{'s' * (len(unknown) > 1)} {', '.join(unknown)}{hint}{where}. "
                        f"It takes {', '.join(named + tracker)}, and the detector's {', '.join(valid)}")
    if isinstance(frames, FrameSource) and frames.image_size != model.image_size:
        raise ValueError(f"the FrameSource prepares {frames.image_size}px inputs; the model needs {model.image_size}px: "
                         "make it with FrameSource(..., image_size=model.image_size)")
    if amg_options.get("invert") and isinstance(frames, FrameSource) and not frames.invert:
        raise ValueError("invert=True makes the detector look for dark cells, but the FrameSource given does not invert "
                         "the frames the model sees: make it with FrameSource(..., invert=True)")


def track_cells(model: SAM2Model, frames: Any, *, start_frame: int = 0, reverse: bool = False,
                seeding: str = "blobs", cell_diameter: Sequence[float] = (8, 40), redetect_every: int = 5,
                divisions: bool = True, max_lost_frames: int = 3, non_overlap: bool = True,
                min_area: Optional[int] = None, progress: Optional[Progress] = None,
                detector: Optional[Detector] = None, on_advice: Optional[Callable[[str], None]] = None,
                on_work: Optional[Callable[["WorkStep"], None]] = None, **amg_options: Any) -> TrackingResult:
    """Detect and track every cell of ``frames`` (anything :class:`VideoSession` takes: (T, H, W[, C])).

    Parameters as :class:`CellTracker` (module docstring). ``progress(done, total)`` is called after each
    frame. ``on_advice(words)`` is called as soon as the detector has advice for the user on a frame (too many
    candidate cells, or a cell diameter range given that was cut to the frames: its ``advice_with_options``), before the slow clicks it warns of; the detector then gives no
    warning of it (the caller has it: a ``-W error`` filter does not fail the run over it).
    ``on_work(step)`` gets each :class:`WorkStep` inside a frame (its stage and how much of it is done), for progress
    within a frame that takes long (thousands of candidate cells).
    Returns a :class:`TrackingResult` with labels (T, H, W) uint32 and the lineage; with no cell on any frame
    tracked the labels are all 0, the lineage is empty and ``note`` says so (no exception).

    Ctrl-C (KeyboardInterrupt, from the model's work or from ``progress`` / ``on_work`` / ``on_advice``) is raised
    again with the frames finished as the error's ``result`` (``except KeyboardInterrupt as error: error.result``), a
    :class:`TrackingResult`: labels (T, H, W) uint32 of the frames done, the frame in progress left out whole (0);
    the lineage as it was after the last frame done (its tracks still followed end "run stopped", which the writers
    keep: not "end of stack"); ``frames_tracked`` in the order tracked; ``note`` "interrupted after k of N frames".
    The end-of-run division steps (:func:`finish_divisions`: undoing short divisions, backdating them) are run on
    it, as on a whole run of the frames done (a Ctrl-C during them leaves no ``result``). No ``result`` where the interrupt comes once every
    frame is done (during the end-of-run division steps, or from the last frame's ``progress``): those steps did not
    run, so no result of the whole run exists.

    ``reverse=True`` tracks from ``start_frame`` down to frame 0 with divisions off, whatever ``divisions`` says (a
    division seen backwards is two cells merging, which the tracker does not model; ``divisions``, default True, asks
    for them where the direction allows, so it is no error). In both directions a track's begin and end are its first
    and last frames with pixels in ``labels``; going backwards ``end_reason`` tells how its backward run ended, on its
    first frame: "end of stack" (it reached frame 0), "lost" or "left the field" (it appeared there).

    ``amg_options``: the detector's options (:func:`detector_option_names`: ``min_contrast``, ``invert``, and the
    automatic mask generator's, e.g. ``pred_iou_thresh``), checked before any frame is read
    (:func:`check_tracking_options`: an unknown name is a TypeError naming the valid ones). Options that prepare the
    frames (smooth, contrast_limits, a channel) are :class:`~sam2_model.frames.FrameSource`'s: pass
    ``FrameSource(stack, image_size=model.image_size, smooth=8)`` as ``frames`` (or use ``napari_sam2.track_cells``,
    which takes them all). ``invert=True`` (dark cells) shows the model inverted frames too: frames that are not a
    FrameSource are read through ``FrameSource(frames, image_size=model.image_size, invert=True)`` (by the
    :class:`CellTracker`, after its other arguments are checked); a FrameSource must have been made with
    ``invert=True``, and one made so makes the detector look for dark cells without being told.
    """
    check_tracking_options(model, frames, amg_options)
    tracker = CellTracker(model, frames, start_frame=start_frame, reverse=reverse, seeding=seeding,
                          cell_diameter=cell_diameter, redetect_every=redetect_every, divisions=divisions,
                          max_lost_frames=max_lost_frames, non_overlap=non_overlap, min_area=min_area,
                          detector=detector, **amg_options)
    height, width = tracker.session.frame_shape
    labels = np.zeros((tracker.num_frames, height, width), dtype=np.uint32)
    order = tracker.order
    done: List[int] = []
    told = ""  # the advice already handed to on_advice (once per frame that has some)
    quiet = on_advice is not None and getattr(tracker.detector, "warn_advice", None) is True
    if quiet:  # the caller takes the advice: no warning of it (restored after: the detector may be the caller's)
        tracker.detector.warn_advice = False
    kept = tracker.lineage.rows()  # the lineage's rows after the last frame done (frozen: the list is a snapshot)
    steps = tracker.run(work=on_advice is not None or on_work is not None)
    try:
        for step in steps:
            if isinstance(step, WorkStep):  # only with on_advice or on_work: between pieces of a frame's work
                advice = getattr(tracker.detector, "advice_with_options", "")
                if on_advice is not None and advice and advice != told:
                    on_advice(advice)
                told = advice
                if on_work is not None:
                    on_work(step)
                continue
            t, frame_labels, _ = step
            labels[t] = frame_labels
            done.append(t)
            kept = tracker.lineage.rows()
            if progress is not None:
                progress(len(done), len(order))
    except KeyboardInterrupt as stop:
        steps.close()  # the tracker's session is closed; the frame in progress stays 0
        if len(done) < len(order):
            note = f"interrupted after {len(done)} of {len(order)} frames"
            stopped = Lineage(dataclasses.replace(row, end_reason="run stopped") if row.end_reason == "active" else row
                              for row in kept)  # still followed: the stop, not the stack, ends them
            finish_divisions(tracker, labels, frames, stopped)  # as a whole run of the frames done would
            kept_result = TrackingResult(labels=labels, lineage=stopped, frames_tracked=done, note=note)
            stop.result = kept_result  # type: ignore[attr-defined]
        raise
    finally:
        if quiet:
            tracker.detector.warn_advice = True
    if len(done) == len(order):
        finish_divisions(tracker, labels, frames)
    return TrackingResult(labels=labels, lineage=tracker.lineage, frames_tracked=done, note=tracker.note)
