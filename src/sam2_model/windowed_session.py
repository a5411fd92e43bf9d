"""Track each object in a window of the frames around it: small objects on large frames (see :mod:`.windows`).

:class:`WindowedSession` has :class:`VideoSession`'s methods and results (full-frame logits, the same prompts), but
each object lives in its own :class:`VideoSession` over a fixed window of the stack, placed around the object's
first prompt (:func:`~sam2_model.windows.place_window`, ``window`` frame px square). The model sees the object
:data:`~sam2_model.windows.WINDOW_OBJECT_PX` wide on the canvas it was trained on, instead of a few pixels wide on
the whole frame. Measured with the embedded weights at 256 px input (one click per object on frame 0, then
tracking; J&F over the tracked frames): synthetic nuclei ~25-30 px wide in 768 x 768 frames 0.93 / 0.83 on the whole
frame -> 0.975 / 0.975 in windows (two sequences); real nuclei ~24 px wide in 512 x 512, drifting 2-3 px a frame:
first frame 0.60 -> 0.75, J&F 0.49 -> 0.61 (docs/input_size.md).

What it costs and where it stops:

* each object's window is encoded on every frame it is tracked on: N objects cost N model inputs a frame, not one
  (at 256 px input on 2 CPU cores ~0.08 s each);
* an object is followed inside its window only: one that moves out of it is lost at the window's edge (cells move
  a few px a frame; a window is ~10 cells wide). Prompts for an object on later frames must lie in its window;
  to start it elsewhere, remove it and prompt again;
* each object is tracked alone, so ``batch_objects`` / ``max_batch_objects`` do not apply; ``non_overlap_masks``
  is applied to the composed frame (losers of an overlap are clamped to at most -10, as the session does).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .frames import FrameSource
from .modeling.sam2 import NO_OBJECT_SCORE, SAM2Model
from .prompt_validation import validate_box, validate_mask, validate_obj_id, validate_points
from .session_outputs import check_output
from .session_state import MemoryBankView
from .video_session import JUMP_MAX_IOU, PropagationStep, VideoSession
from .windows import Window, place_window

__all__ = ["WindowedSession", "WINDOW_FEATURE_CACHE_MB"]

WINDOW_FEATURE_CACHE_MB = 16.0  # image features kept per object (its window's frames; ~1 MB a frame at 256 px)
LOSER_CLAMP = -10.0  # non_overlap_masks: the losing objects' logits are clamped to at most this (as the session)
_OBJ = 1  # each object's id inside its own window session


class _LastFrames:
    """The stack's frames as the model sees them before mapping (:meth:`FrameSource.filtered`), the last few kept,
    so the windows of many objects on one frame read and smooth it once."""

    def __init__(self, source: FrameSource, keep: int = 2) -> None:
        self.source = source
        self.keep = keep
        self._frames: "OrderedDict[int, np.ndarray]" = OrderedDict()

    def __call__(self, t: int) -> np.ndarray:
        frame = self._frames.get(t)
        if frame is None:
            frame = self.source.filtered(t)
            self._frames[t] = frame
            while len(self._frames) > self.keep:
                self._frames.popitem(last=False)
        else:
            self._frames.move_to_end(t)
        return frame


class WindowFrames:
    """A lazy (T, h, w[, 3]) view of one window of a stack: ``view[t]`` is frame t's window (filtered, unmapped)."""

    def __init__(self, frames: _LastFrames, window: Window) -> None:
        self._frames = frames
        self.window = window
        x0, y0, x1, y1 = window
        first = frames(0)
        self.dtype = first.dtype
        self.shape = (frames.source.num_frames, y1 - y0, x1 - x0) + tuple(first.shape[2:])
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple) or isinstance(key, slice):
            raise TypeError("a WindowFrames view is read one frame at a time: view[t]")
        x0, y0, x1, y1 = self.window
        return self._frames(int(key))[y0:y1, x0:x1]


class WindowedSession:
    """Segment and track objects through a stack, each in a ``window`` px square of the frames around it.

    frames, fill_hole_area, contrast_limits, channel, composite, smooth and the correction options: as for
    :class:`VideoSession` (contrast limits and smoothing are those of the whole stack, so every window sees the same
    grey values). feature_cache_mb is per object here (default :data:`WINDOW_FEATURE_CACHE_MB`).
    """

    def __init__(
        self,
        model: SAM2Model,
        frames: Any,
        window: int,
        fill_hole_area: int = 8,
        contrast_limits: Optional[Tuple[float, float]] = None,
        feature_cache_mb: float = WINDOW_FEATURE_CACHE_MB,
        channel: Optional[int] = None,
        composite: Optional[str] = None,
        corrections_as_conditioning: bool = False,
        clear_memory_around_corrections: bool = False,
        non_overlap_masks: bool = False,
        release_memory: bool = True,
        batch_objects: bool = True,
        max_batch_objects: int = 8,
        smooth: float = 0.0,
    ) -> None:
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 8:
            raise ValueError(f"window must be a window side of at least 8 frame pixels, got {window!r}")
        if fill_hole_area < 0:
            raise ValueError(f"fill_hole_area must be >= 0, got {fill_hole_area}")
        if isinstance(frames, FrameSource):
            self.frames = frames
        else:
            self.frames = FrameSource(frames, image_size=model.image_size, contrast_limits=contrast_limits,
                                      channel=channel, composite=composite, smooth=smooth)
        self.model = model
        self.window = int(window)
        self.non_overlap_masks = bool(non_overlap_masks)
        self._options = dict(fill_hole_area=int(fill_hole_area), feature_cache_mb=float(feature_cache_mb),
                             corrections_as_conditioning=bool(corrections_as_conditioning),
                             clear_memory_around_corrections=bool(clear_memory_around_corrections),
                             release_memory=bool(release_memory), batch_objects=False)
        self._last = _LastFrames(self.frames)
        self._objects: Dict[int, Tuple[Window, VideoSession]] = {}

    # ------------------------------------------------------------------ properties
    @property
    def num_frames(self) -> int:
        return self.frames.num_frames

    @property
    def frame_shape(self) -> Tuple[int, int]:
        return self.frames.height, self.frames.width

    @property
    def obj_ids(self) -> List[int]:
        return list(self._objects)

    @property
    def corrections_as_conditioning(self) -> bool:
        return self._options["corrections_as_conditioning"]

    @corrections_as_conditioning.setter
    def corrections_as_conditioning(self, value: bool) -> None:
        self._options["corrections_as_conditioning"] = bool(value)
        for _, session in self._objects.values():
            session.corrections_as_conditioning = bool(value)

    @property
    def clear_memory_around_corrections(self) -> bool:
        return self._options["clear_memory_around_corrections"]

    @clear_memory_around_corrections.setter
    def clear_memory_around_corrections(self, value: bool) -> None:
        self._options["clear_memory_around_corrections"] = bool(value)
        for _, session in self._objects.values():
            session.clear_memory_around_corrections = bool(value)

    def window_of(self, obj_id: int) -> Window:
        """The object's window (x0, y0, x1, y1) in frame px (x1, y1 exclusive)."""
        return self._entry(obj_id)[0]

    def prompted_frames(self, obj_id: int) -> List[int]:
        return self._entry(obj_id)[1].prompted_frames(_OBJ)

    # ------------------------------------------------------------------ prompts
    def add_prompt(self, frame_idx: int, obj_id: int, points: Optional[Any] = None, labels: Optional[Any] = None,
                   box: Optional[Any] = None, mask: Optional[Any] = None, clear_old: bool = True) -> np.ndarray:
        """As :meth:`VideoSession.add_prompt` (frame pixels); a new object's window is placed around these prompts.

        Negative clicks outside the object's window are left out (they cannot touch it). Returns logits
        (n_obj, H, W) float32 of every object on this frame. A bad call leaves the session as it was.
        """
        frame_idx = self.frames.check_index(frame_idx)
        obj_id = validate_obj_id(obj_id)
        height, width = self.frame_shape
        full_mask = None
        if mask is not None:
            if points is not None or labels is not None or box is not None:
                raise ValueError("give either a mask or points/box for one call of add_prompt, not both")
            full_mask = validate_mask(mask, height, width)
            xy, lab, corners = np.zeros((0, 2), np.float32), np.zeros(0, np.int32), None
        else:
            if points is None and labels is None and box is None:
                raise ValueError("add_prompt needs points with labels, a box, or a mask")
            xy, lab = validate_points(points, labels, height, width)
            corners = validate_box(box, height, width)
        entry = self._objects.get(obj_id)
        window = entry[0] if entry is not None else self._place(xy, lab, corners, full_mask)
        x0, y0, x1, y1 = window
        offset = np.array([x0, y0], np.float32)
        session = entry[1] if entry is not None else self._new_session(window)
        if full_mask is not None:
            outside = full_mask.copy()
            outside[y0:y1, x0:x1] = False
            if outside.any():
                raise ValueError(f"the mask of object {obj_id} reaches outside its window {window} (x0, y0, x1, y1): "
                                 "remove the object and give the mask again to place a new window")
            session.add_prompt(frame_idx, _OBJ, mask=full_mask[y0:y1, x0:x1], clear_old=clear_old)
        else:
            inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
            if (~inside & (lab == 1)).any() or (corners is not None and not (
                    corners[0] >= x0 and corners[1] >= y0 and corners[2] <= x1 and corners[3] <= y1)):
                raise ValueError(f"a click or box of object {obj_id} lies outside its window {window} "
                                 "(x0, y0, x1, y1): remove the object and prompt it again to place a new window")
            if not inside.any() and corners is None:
                raise ValueError(f"every click of object {obj_id} lies outside its window {window}")
            session.add_prompt(frame_idx, _OBJ, points=xy[inside] - offset if inside.any() else None,
                               labels=lab[inside] if inside.any() else None,
                               box=None if corners is None else corners - np.tile(offset, 2), clear_old=clear_old)
        self._objects[obj_id] = (window, session)
        return self.frame_logits(frame_idx)

    def _place(self, xy: np.ndarray, lab: np.ndarray, corners: Optional[np.ndarray],
               mask: Optional[np.ndarray]) -> Window:
        if mask is not None:
            rows, cols = np.nonzero(mask)
            if not len(rows):
                raise ValueError("a new object's mask prompt must cover at least one pixel (its window goes around it)")
            corners = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)
        return place_window(self.window, self.frame_shape, xy, lab, corners)

    def _new_session(self, window: Window) -> VideoSession:
        view = WindowFrames(self._last, window)
        source = FrameSource(view, image_size=self.model.image_size, contrast_limits=self.frames.contrast_limits,
                             prefetch=0, cache_frames=2)
        return VideoSession(self.model, source, **self._options)

    # ------------------------------------------------------------------ propagation
    def propagate(self, start_frame: Optional[int] = None, reverse: bool = False, max_frames: Optional[int] = None,
                  obj_ids: Optional[Sequence[int]] = None, output: str = "logits") -> Iterator[PropagationStep]:
        """As :meth:`VideoSession.propagate`: yields (frame_idx, obj_ids, logits (n_obj, H, W) float32 / masks
        (n_obj, H, W) bool / labels (H, W) uint32). Arguments are checked when this is called."""
        if not self._objects:
            raise ValueError("propagate needs at least one prompt: call add_prompt first")
        ids = self._check_obj_ids(obj_ids)
        if not ids:
            raise ValueError("obj_ids must name at least one object, got an empty sequence")
        output = check_output(output)
        if start_frame is None:
            start_frame = min(min(self._objects[o][1].prompted_frames(_OBJ)) for o in ids)
        start_frame = self.frames.check_index(start_frame)
        runs = {o: self._objects[o][1].propagate(start_frame, reverse, max_frames) for o in ids}
        return self._lockstep(runs, output)

    def _lockstep(self, runs: Dict[int, Iterator[PropagationStep]], output: str) -> Iterator[PropagationStep]:
        """Advance every object's own propagation one frame at a time and compose the frames."""
        while True:
            ids = [o for o in runs if o in self._objects]  # objects removed between two frames stop
            if not ids:
                return
            crops, frame_idx = [], None
            for obj_id in ids:
                step = next(runs[obj_id], None)
                if step is None:
                    return
                frame_idx = step[0]
                crops.append(step[2][0])
            logits = self._compose([self._objects[o][0] for o in ids], crops)
            if self.non_overlap_masks:
                logits = _clamp_losers(self.frame_logits(frame_idx))[[self.obj_ids.index(o) for o in ids]]
            if output == "masks":
                yield frame_idx, ids, logits > 0
            elif output == "labels":
                yield frame_idx, ids, _labels(logits, ids)
            else:
                yield frame_idx, ids, logits

    def _compose(self, windows: Sequence[Window], crops: Sequence[np.ndarray]) -> np.ndarray:
        """Each object's window logits (h, w) pasted into (n_obj, H, W) float32, -1024 outside its window."""
        out = np.full((len(windows),) + self.frame_shape, NO_OBJECT_SCORE, np.float32)
        for row, ((x0, y0, x1, y1), crop) in enumerate(zip(windows, crops)):
            out[row, y0:y1, x0:x1] = crop
        return out

    # ------------------------------------------------------------------ results
    def frame_logits(self, frame_idx: int, obj_ids: Optional[Sequence[int]] = None) -> np.ndarray:
        """As :meth:`VideoSession.frame_logits`: (n_obj, H, W) float32, -1024 where an object has no result (and
        everywhere outside its window)."""
        frame_idx = self.frames.check_index(frame_idx)
        ids = self._check_obj_ids(obj_ids)
        every = self.obj_ids if self.non_overlap_masks else ids
        logits = self._compose([self._objects[o][0] for o in every],
                               [self._objects[o][1].frame_logits(frame_idx)[0] for o in every])
        if self.non_overlap_masks:
            logits = _clamp_losers(logits)[[every.index(o) for o in ids]]
        return logits

    def frame_masks(self, frame_idx: int, obj_ids: Optional[Sequence[int]] = None) -> np.ndarray:
        return self.frame_logits(frame_idx, obj_ids) > 0

    def object_score(self, frame_idx: int, obj_id: int) -> Optional[float]:
        return self._entry(obj_id)[1].object_score(frame_idx, _OBJ)

    def tracked_frames(self, obj_id: int) -> List[int]:
        return self._entry(obj_id)[1].tracked_frames(_OBJ)

    def memory_bank(self, obj_id: int) -> MemoryBankView:
        return self._entry(obj_id)[1].memory_bank(_OBJ)

    def lost_frames(self, obj_id: int) -> List[int]:
        return self._entry(obj_id)[1].lost_frames(_OBJ)

    def jumped_frames(self, obj_id: int, max_iou: float = JUMP_MAX_IOU) -> List[int]:
        return self._entry(obj_id)[1].jumped_frames(_OBJ, max_iou)

    # ------------------------------------------------------------------ state
    def snapshot(self) -> "WindowedSnapshot":
        """A cheap, opaque copy of every object's window, session and prompts and results."""
        return WindowedSnapshot(tuple((o, w, s, s.snapshot()) for o, (w, s) in self._objects.items()))

    def restore(self, snapshot: "WindowedSnapshot") -> None:
        """Put objects, prompts and results back as they were at :meth:`snapshot` (objects added since are dropped)."""
        if not isinstance(snapshot, WindowedSnapshot):
            raise ValueError("snapshot must be a WindowedSnapshot from WindowedSession.snapshot(), got "
                             f"{type(snapshot).__name__}")
        for obj_id, window, session, state in snapshot.objects:
            session.restore(state)
            session.corrections_as_conditioning = self.corrections_as_conditioning
            session.clear_memory_around_corrections = self.clear_memory_around_corrections
        self._objects = {obj_id: (window, session) for obj_id, window, session, _ in snapshot.objects}

    def remove_object(self, obj_id: int) -> List[int]:
        """Forget an object entirely (its window's image features too); returns the remaining object ids."""
        _, session = self._entry(obj_id)
        session.features.clear()
        del self._objects[obj_id]
        return self.obj_ids

    def reset(self) -> None:
        """Forget all objects and prompts."""
        self._objects.clear()

    def close(self) -> None:
        for _, session in self._objects.values():
            session.close()
        self._objects.clear()
        self.frames.close()

    def _entry(self, obj_id: int) -> Tuple[Window, VideoSession]:
        if obj_id not in self._objects:
            raise ValueError(f"unknown object id {obj_id!r}; this session has objects {self.obj_ids}")
        return self._objects[obj_id]

    def _check_obj_ids(self, obj_ids: Optional[Sequence[int]]) -> List[int]:
        if obj_ids is None:
            return self.obj_ids
        if isinstance(obj_ids, (int, np.integer)):
            raise ValueError(f"obj_ids must be a sequence of object ids or None, got the single id {obj_ids!r}")
        ids = [int(o) for o in obj_ids]
        unknown = [o for o in ids if o not in self._objects]
        if unknown:
            raise ValueError(f"obj_ids holds unknown object ids {unknown}; this session has objects {self.obj_ids}")
        return ids


class WindowedSnapshot:
    """What :meth:`WindowedSession.snapshot` returns: (obj_id, window, session, session snapshot) per object."""

    def __init__(self, objects: Tuple[Tuple[int, Window, VideoSession, Any], ...]) -> None:
        self.objects = objects


def _clamp_losers(logits: np.ndarray) -> np.ndarray:
    """(n_obj, H, W): where objects overlap, all but the highest are clamped to at most -10."""
    if logits.shape[0] < 2:
        return logits
    best = logits.argmax(axis=0)
    losers = np.arange(logits.shape[0])[:, None, None] != best[None]
    return np.where(losers, np.minimum(logits, LOSER_CLAMP), logits)


def _labels(logits: np.ndarray, ids: Sequence[int]) -> np.ndarray:
    """(n_obj, H, W) logits -> (H, W) uint32: the id of the object with the highest positive logit, 0 elsewhere."""
    best = logits.argmax(axis=0)
    top = np.take_along_axis(logits, best[None], axis=0)[0]
    return np.where(top > 0, np.asarray(ids, np.uint32)[best], 0).astype(np.uint32)
