"""Track each object in a window of the frames that follows it: small objects on large frames (see :mod:`.windows`).

:class:`WindowedSession` has :class:`VideoSession`'s methods and results (full-frame logits, the same prompts), but
each object lives in its own :class:`VideoSession` over a window of the stack, ``window`` frame px square (larger
where the object is: sized for its width where its mask decoded on the whole frame is over 2.5x wider than the window
was made for or where its box holds a wider object, and doubled while its first mask is cut by the window's inner
edges or empty where the whole frame's is not, up to the whole frame; RGB frames are read as the whole stack is, true
colour or one colour as grey): on its first prompted frame the window is placed around the prompts
(:func:`~sam2_model.windows.place_window`); on every
other frame it is centred on the object's mask of the neighbouring frame it is tracked from (where that mask is
empty, the window stays where it was). The model sees the object :data:`~sam2_model.windows.WINDOW_OBJECT_PX` wide
on the canvas it was trained on, near the window's centre on every frame, instead of a few pixels wide on the whole
frame. Measured with the embedded weights at 256 px input (one click per object on frame 0, then tracking; J&F over
the tracked frames; docs/input_size.md): real nuclei ~24 px wide in 512 x 512 drifting 2-3 px a frame, J&F 0.49 on
whole frames -> 0.61 in windows; synthetic nuclei ~25-30 px wide in 768 x 768, 0.93 / 0.83 -> 0.975 / 0.975.

What it costs and where it stops:

* each object's window is encoded on every frame it is tracked on: N objects cost N model inputs a frame, not one
  (at 256 px input on 2 CPU cores ~0.05-0.1 s each);
* a frame's window is fixed the first time the object needs it (image features are cached by frame), so tracking
  again after an undo or a correction reuses it; prompts on a frame must lie in the object's window there, where it
  has one (elsewhere a window is placed around them);
* each object is tracked alone, so ``batch_objects`` / ``max_batch_objects`` do not apply; ``non_overlap_masks``
  is applied to the composed frame (losers of an overlap are clamped to at most -10, as the session does).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .frames import FrameSource, blank_words, check_invert
from .modeling.sam2 import NO_OBJECT_SCORE, SAM2Model
from .prompt_validation import (box_on_frame, validate_box, validate_mask, validate_obj_id, validate_obj_ids,
                                validate_points)
from .session_outputs import check_output, labels_of_winners
from .session_state import MemoryBankView
from .video_session import JUMP_MAX_IOU, PropagationStep, VideoSession, blank_sentence, check_first_frame
from .image_predictor import ImagePredictor
from .windows import Window, first_window_side, grow_while_cut, inside_window, place_window, too_small

__all__ = ["WindowedSession", "WINDOW_FEATURE_CACHE_MB"]

WINDOW_FEATURE_CACHE_MB = 16.0  # image features kept per object (its window's frames; ~1 MB a frame at 256 px)
_OBJ = 1  # each object's id inside its own window session


class _LastFrames:
    """The stack's frames as the model sees them before mapping (:meth:`FrameSource.filtered`), the last few kept,
    so the windows of many objects on one frame, and the whole-frame masks that size new objects' windows, read and
    smooth it once."""

    def __init__(self, source: FrameSource, keep: int = 2) -> None:
        self.source = source
        self.keep = keep
        self._frames: "OrderedDict[int, np.ndarray]" = OrderedDict()
        self._layout: Optional[Tuple[np.dtype, Tuple[int, ...]]] = None

    def layout(self, t: int = 0) -> Tuple[np.dtype, Tuple[int, ...]]:
        """The frames' dtype and colour axis ((), or (3,) for RGB), taken once from a frame read already, else from
        frame ``t`` (read now and kept, so the frame about to be used is not read twice)."""
        if self._layout is None:
            first = next(reversed(self._frames.values())) if self._frames else self(t)
            self._layout = (first.dtype, tuple(first.shape[2:]))
        return self._layout

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
    """A lazy (T, h, w[, 3]) view of a moving window of a stack: ``view[t]`` is frame t (filtered, unmapped) cut at
    ``offset_of(t)`` = (x0, y0), the window's top-left corner on that frame.

    Colour is the whole stack's: its frames come channel-picked (a one-colour RGB stack as grey), so the view has a
    colour axis only for a true-colour stack, read as colour (see :class:`_Track`). A window that is placed nowhere yet
    cannot be read (``offset_of`` raises ValueError)."""

    def __init__(self, frames: _LastFrames, size: Tuple[int, int], offset_of: Callable[[int], Tuple[int, int]]) -> None:
        self._frames = frames
        self._offset_of = offset_of
        self.size = size  # (h, w)
        self.dtype, colour = frames.layout()
        self.shape = (frames.source.num_frames,) + tuple(size) + colour
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple) or isinstance(key, slice):
            raise TypeError("a WindowFrames view is read one frame at a time: view[t]")
        t = int(key)
        x0, y0 = self._offset_of(t)
        h, w = self.size
        return self._frames(t)[y0:y0 + h, x0:x0 + w]


class _Track:
    """One object: its session over a moving window of ``size`` (h, w) and the window's corner on each frame.

    The window's FrameSource takes colour as given (``colour_as_given``): it decides no colour of its own from a crop
    (a crop of a true-colour frame may well hold one colour); windows see colour as the whole stack is read."""

    def __init__(self, owner: "WindowedSession", size: Tuple[int, int]) -> None:
        self.size = size
        self.offsets: Dict[int, Tuple[int, int]] = {}  # frame -> (x0, y0); set once, never moved (features cached)
        self._frame_shape = owner.frame_shape
        view = WindowFrames(owner._last, size, self.offset)
        source = FrameSource(view, image_size=owner.model.image_size, contrast_limits=owner.frames.contrast_limits,
                             prefetch=0, cache_frames=2, colour_as_given=True, invert=owner.frames.invert,
                             blank_of=owner._blank_of,  # the whole frame, judged once for every window
                             first_frame=owner.frames.first_frame)  # its warnings name the movie's frames
        self.session = VideoSession(owner.model, source, **owner._options)

    def window(self, t: int) -> Window:
        x0, y0 = self.offsets[t]
        return x0, y0, x0 + self.size[1], y0 + self.size[0]

    def centred(self, x: float, y: float) -> Tuple[int, int]:
        """The corner of the window centred on (x, y), kept inside the frame."""
        height, width = self._frame_shape
        h, w = self.size
        return (min(max(int(round(x - w / 2.0)), 0), width - w), min(max(int(round(y - h / 2.0)), 0), height - h))

    def window_too_small(self, t: int, whole: np.ndarray) -> bool:
        """Whether the window on frame t is too small for the object (:func:`~sam2_model.windows.too_small`): its mask
        there reaches within :data:`~sam2_model.windows.CUT_MARGIN` px of an edge of the window that is not the
        frame's edge, or it is empty while ``whole`` ((H, W) bool: its mask decoded on the whole frame) is not."""
        return too_small(self.session.frame_masks(t, [_OBJ])[0], self.window(t), self._frame_shape, whole)

    def offset(self, t: int) -> Tuple[int, int]:
        """The window's corner on frame t: set before, or centred on the object's mask on the neighbouring frame it
        is tracked from (t - 1, else t + 1), or where the window was there when that mask is empty."""
        if t in self.offsets:
            return self.offsets[t]
        if not self.offsets:
            raise ValueError(f"the object's window is placed on no frame yet, so frame {t} of it cannot be read")
        known = bool(self.session.obj_ids)
        neighbours = [n for n in (t - 1, t + 1)
                      if n in self.offsets and known and self.session.object_score(n, _OBJ) is not None]
        if neighbours:
            n = neighbours[0]
            mask = self.session.frame_masks(n, [_OBJ])[0]
            rows, cols = np.nonzero(mask)
            if len(rows):
                x0, y0 = self.offsets[n]
                self.offsets[t] = self.centred(x0 + float(cols.mean()), y0 + float(rows.mean()))
            else:
                self.offsets[t] = self.offsets[n]
        else:  # not tracked next to a known frame (a start before the prompts): the nearest known window
            nearest = min(self.offsets, key=lambda f: (abs(f - t), f))
            self.offsets[t] = self.offsets[nearest]
        return self.offsets[t]


class WindowedSession:
    """Segment and track objects through a stack, each in a ``window`` px square of the frames that follows it.

    frames, fill_hole_area, contrast_limits, channel, composite, smooth, invert and the correction options: as for
    :class:`VideoSession` (contrast limits, smoothing and inversion are those of the whole stack, so every window sees
    the same grey values). feature_cache_mb is per object here (default :data:`WINDOW_FEATURE_CACHE_MB`).
    first_frame: as for :class:`VideoSession` (the movie's number of frame 0 where the frames are part of a movie; the
    words name the movie's frames).
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
        invert: bool = False,
        first_frame: int = 0,
    ) -> None:
        invert = check_invert(invert)
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 8:
            raise ValueError(f"window must be a window side of at least 8 frame pixels, got {window!r}")
        if fill_hole_area < 0:
            raise ValueError(f"fill_hole_area must be >= 0, got {fill_hole_area}")
        if isinstance(frames, FrameSource):
            check_first_frame(first_frame, frames)
            if invert and not frames.invert:
                raise ValueError("invert=True was given with a FrameSource that does not invert: give invert=True to "
                                 "the FrameSource instead")
            self.frames = frames
        else:
            self.frames = FrameSource(frames, image_size=model.image_size, contrast_limits=contrast_limits,
                                      channel=channel, composite=composite, smooth=smooth, invert=invert,
                                      first_frame=first_frame)
        self.model = model
        self.window = int(window)
        self.non_overlap_masks = bool(non_overlap_masks)
        self._options = dict(fill_hole_area=int(fill_hole_area), feature_cache_mb=float(feature_cache_mb),
                             corrections_as_conditioning=bool(corrections_as_conditioning),
                             clear_memory_around_corrections=bool(clear_memory_around_corrections),
                             release_memory=bool(release_memory), batch_objects=False)
        self._last = _LastFrames(self.frames)
        self._blank: Dict[int, Optional[str]] = {}  # frame -> why it is blank (blank_words) or None: judged once
        self._objects: Dict[int, _Track] = {}
        self._whole: Optional[Tuple[int, ImagePredictor]] = None  # a frame's whole-frame features (window sizes)

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
        for track in self._objects.values():
            track.session.corrections_as_conditioning = bool(value)

    @property
    def clear_memory_around_corrections(self) -> bool:
        return self._options["clear_memory_around_corrections"]

    @clear_memory_around_corrections.setter
    def clear_memory_around_corrections(self, value: bool) -> None:
        self._options["clear_memory_around_corrections"] = bool(value)
        for track in self._objects.values():
            track.session.clear_memory_around_corrections = bool(value)

    def _blank_of(self, t: int) -> Optional[str]:
        """Why frame ``t`` shows the model nothing (:func:`~sam2_model.frames.blank_words` of the whole frame, kept
        read for the windows), or None: judged once per frame, however many objects' windows ask."""
        if t not in self._blank:
            self._blank[t] = blank_words(self._last(t), self.frames.contrast_limits)
        return self._blank[t]

    def blank_summary(self, frames: Sequence[int]) -> str:
        """:meth:`VideoSession.blank_summary` of the objects' windows, which judge their whole frame (an empty window
        of a busy frame is no blank frame): the frames of ``frames`` the model saw nothing in, in one sentence, or ""."""
        return blank_sentence(frames, self._blank.get, self.frames.first_frame)

    def window_of(self, obj_id: int, frame_idx: Optional[int] = None) -> Optional[Window]:
        """The object's window (x0, y0, x1, y1) in frame px (x1, y1 exclusive) on ``frame_idx`` (default: its first
        prompted frame); None on a frame it has no window on yet."""
        track = self._track(obj_id)
        if frame_idx is None:
            frame_idx = min(track.session.prompted_frames(_OBJ))
        frame_idx = self.frames.check_index(frame_idx)
        return track.window(frame_idx) if frame_idx in track.offsets else None

    def prompted_frames(self, obj_id: int) -> List[int]:
        return self._track(obj_id).session.prompted_frames(_OBJ)

    # ------------------------------------------------------------------ prompts
    def add_prompt(self, frame_idx: int, obj_id: int, points: Optional[Any] = None, labels: Optional[Any] = None,
                   box: Optional[Any] = None, mask: Optional[Any] = None, clear_old: bool = True,
                   refine: bool = True, return_logits: bool = True) -> Optional[np.ndarray]:
        """As :meth:`VideoSession.add_prompt` (frame pixels). A new object's window is placed around these prompts,
        as is an object's window on a frame where it has none yet. A new object's window is at least the one made for
        its box's object (:func:`~sam2_model.windows.box_side`), and grows while its first mask is cut by the window
        or empty where the object's mask decoded on the whole frame is not (clicks and boxes; a mask prompt keeps the
        session's window, grown to hold the mask).

        Negative clicks outside the object's window are left out (they cannot touch it). Returns logits
        (n_obj, H, W) float32 of every object on this frame; with ``return_logits=False`` None (nothing pasted into
        frames: a cost that grows with the number of objects). A bad call leaves the session as it was.
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
        track = self._objects.get(obj_id)
        if track is not None:
            placed = None if frame_idx in track.offsets else self._place(xy, lab, corners, full_mask, track)
            self._prompt(track, frame_idx, obj_id, xy, lab, corners, full_mask, placed, clear_old, refine)
        else:  # a new object: sized for its box and its whole-frame mask; grown while its first mask is too small
            self._last.layout(frame_idx)  # the frames' layout from this frame (read once for its windows too)
            whole = None if full_mask is not None else self._whole_frame_mask(frame_idx, xy, lab, corners)
            side = first_window_side(self.window, whole, corners, self.frame_shape, self.model.image_size)

            def attempt(side: int) -> Tuple[_Track, Window, bool]:
                placed = self._place(xy, lab, corners, full_mask, None, side)
                new_track = _Track(self, (placed[3] - placed[1], placed[2] - placed[0]))
                self._prompt(new_track, frame_idx, obj_id, xy, lab, corners, full_mask, placed, clear_old)
                return new_track, placed, whole is not None and new_track.window_too_small(frame_idx, whole)

            track = grow_while_cut(side, (height, width), attempt)
        self._objects[obj_id] = track
        return self.frame_logits(frame_idx) if return_logits else None

    def _whole_frame_mask(self, frame_idx: int, xy: np.ndarray, lab: np.ndarray,
                          corners: Optional[np.ndarray]) -> np.ndarray:
        """(H, W) bool: the best mask for these prompts decoded on the whole frame (its features kept for the frame's
        other new objects). The frame is the one the windows read (:class:`_LastFrames`): no second read, and no
        whole-frame model inputs of the next frames prepared ahead (windows never use them)."""
        if self._whole is None or self._whole[0] != frame_idx:
            predictor = ImagePredictor(self.model)
            predictor.set_model_input(self.frames.input_of(self._last(frame_idx)), self.frame_shape)
            self._whole = (frame_idx, predictor)
        masks, scores, _ = self._whole[1].predict(points=xy if len(xy) else None, labels=lab if len(lab) else None,
                                                  box=corners)
        return masks[int(np.argmax(scores))]

    def _prompt(self, track: _Track, frame_idx: int, obj_id: int, xy: np.ndarray, lab: np.ndarray,
                corners: Optional[np.ndarray], full_mask: Optional[np.ndarray], placed: Optional[Window],
                clear_old: bool, refine: bool = True) -> None:
        """Checked prompts (frame px) to the track's session, in its window on the frame (``placed`` where it has
        none there yet)."""
        x0, y0 = track.offsets.get(frame_idx, placed[:2] if placed is not None else None)
        x1, y1 = x0 + track.size[1], y0 + track.size[0]
        window = (x0, y0, x1, y1)
        if full_mask is not None:
            outside = full_mask.copy()
            outside[y0:y1, x0:x1] = False
            if outside.any():
                raise ValueError(f"the mask of object {obj_id} reaches outside its window {window} (x0, y0, x1, y1) "
                                 f"on frame {frame_idx}: remove the object and give the mask again to place a new one")
            local: Dict[str, Any] = dict(mask=full_mask[y0:y1, x0:x1])
        else:
            inside = inside_window(xy, window)  # the window's pixels; a box may reach its outer edges, as a frame's
            corner = np.array([x0, y0], np.float32)
            if (~inside & (lab == 1)).any() or (corners is not None and not box_on_frame(
                    corners - np.tile(corner, 2), y1 - y0, x1 - x0)):
                raise ValueError(f"a click or box of object {obj_id} lies outside its window {window} (x0, y0, x1, y1) "
                                 f"on frame {frame_idx}: remove the object and prompt it again to place a new window")
            if not inside.any() and corners is None:
                raise ValueError(f"every click of object {obj_id} lies outside its window {window} on frame "
                                 f"{frame_idx}")
            local = dict(points=xy[inside] - corner if inside.any() else None,
                         labels=lab[inside] if inside.any() else None,
                         box=None if corners is None else corners - np.tile(corner, 2))
        track.offsets.setdefault(frame_idx, (x0, y0))  # set once: the frame's features are cached with it
        if full_mask is None:
            local["refine"] = refine
        track.session.add_prompt(frame_idx, _OBJ, clear_old=clear_old, return_logits=False, **local)  # read later

    def _place(self, xy: np.ndarray, lab: np.ndarray, corners: Optional[np.ndarray], mask: Optional[np.ndarray],
               track: Optional[_Track], side: Optional[int] = None) -> Window:
        """The window around these prompts: a new one of ``side`` (default: the session's) px (``track`` None), or
        the track's size centred on them."""
        if mask is not None:
            rows, cols = np.nonzero(mask)
            if not len(rows):
                raise ValueError("a mask prompt must cover at least one pixel where the object has no window yet "
                                 "(its window goes around it)")
            corners = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)
        x0, y0, x1, y1 = place_window(side or self.window, self.frame_shape, xy, lab, corners)
        if track is None:
            return x0, y0, x1, y1
        cx, cy = track.centred((x0 + x1) / 2.0, (y0 + y1) / 2.0)
        return cx, cy, cx + track.size[1], cy + track.size[0]

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
            start_frame = min(min(self._objects[o].session.prompted_frames(_OBJ)) for o in ids)
        start_frame = self.frames.check_index(start_frame)
        runs = {o: self._objects[o].session.propagate(start_frame, reverse, max_frames) for o in ids}
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
            if output == "labels":  # no (n_obj, H, W) array: each window's logits compared where they lie
                yield frame_idx, ids, self._frame_labels(frame_idx, ids, crops)
                continue
            if self.non_overlap_masks:  # overlaps are decided among every object with a result on the frame
                logits = self.frame_logits(frame_idx, ids)
            else:
                logits = self._compose([self._objects[o].window(frame_idx) for o in ids], crops)
            yield frame_idx, ids, (logits > 0) if output == "masks" else logits

    def _frame_labels(self, frame_idx: int, ids: List[int], crops: Sequence[np.ndarray]) -> np.ndarray:
        """(H, W) uint32: the labels of the frame's composed logits of ``ids`` (those :meth:`_lockstep` would yield) by
        :func:`~.session_outputs.to_labels`' rule, bit for bit, without composing them. Without ``non_overlap_masks``:
        the object of ``ids`` whose window logits (``crops``, in the order of ``ids``) are the highest where they are
        > 0 (a tie: the first), one running maximum over the windows (:meth:`_winners`). With it, the losers of an
        overlap among every object are clamped to <= -10, so a pixel is labelled only where its winner among every
        object (:meth:`frame_winners`) is one of ``ids``."""
        if self.non_overlap_masks:
            every = np.asarray(self.obj_ids, np.int64)
            return labels_of_winners(self.frame_winners(frame_idx), np.where(np.isin(every, ids), every, 0))
        windows = [self._objects[obj_id].window(frame_idx) for obj_id in ids]
        return labels_of_winners(self._winners(zip(windows, crops), 0.0), ids)  # only logits > 0 win

    def _winners(self, placed: Iterable[Tuple[Optional[Window], Optional[np.ndarray]]], above: float) -> np.ndarray:
        """(H, W) int64: at each pixel the row (the position in ``placed``) of the object whose window logits are the
        highest there and > ``above`` (a tie: the earlier row), -1 where none is. ``placed``: (window, its logits
        (h, w)) per object, (None, None) for one without a result on the frame; read one at a time (a generator may
        fetch each crop as it is needed), one running maximum: no (n_obj, H, W) array."""
        top = np.full(self.frame_shape, above, np.float32)
        best = np.full(self.frame_shape, -1, np.int64)
        for row, (window, crop) in enumerate(placed):
            if window is None:
                continue
            x0, y0, x1, y1 = window
            higher = crop > top[y0:y1, x0:x1]  # strictly: a tie stays with the earlier object
            np.copyto(top[y0:y1, x0:x1], crop, where=higher)
            np.copyto(best[y0:y1, x0:x1], row, where=higher)
        return best

    def _compose(self, windows: Sequence[Optional[Window]], crops: Sequence[Optional[np.ndarray]]) -> np.ndarray:
        """Each object's window logits (h, w) pasted into (n_obj, H, W) float32, -1024 outside its window."""
        out = np.full((len(windows),) + self.frame_shape, NO_OBJECT_SCORE, np.float32)
        for row, (window, crop) in enumerate(zip(windows, crops)):
            if window is not None:
                x0, y0, x1, y1 = window
                out[row, y0:y1, x0:x1] = crop
        return out

    # ------------------------------------------------------------------ results
    def frame_logits(self, frame_idx: int, obj_ids: Optional[Sequence[int]] = None) -> np.ndarray:
        """As :meth:`VideoSession.frame_logits`: (n_obj, H, W) float32, -1024 where an object has no result (and
        everywhere outside its window)."""
        frame_idx = self.frames.check_index(frame_idx)
        ids = self._check_obj_ids(obj_ids)
        every = self.obj_ids if self.non_overlap_masks else ids
        tracks = [self._objects[o] for o in every]
        has = [frame_idx in t.offsets for t in tracks]
        windows = [t.window(frame_idx) if h else None for t, h in zip(tracks, has)]
        crops = [t.session.frame_logits(frame_idx)[0] if h else None for t, h in zip(tracks, has)]
        logits = self._compose(windows, crops)
        if self.non_overlap_masks:
            # keep_highest_object over the composed (n_obj, H, W), where it can change anything: outside its window an
            # object is -1024 whoever wins; inside, it keeps its logits where it is the first of the highest of the
            # objects there (an object outside at -1024 never beats one inside as far as the clamp can tell), else
            # they are clamped to at most -10
            best = self._winners(zip(windows, crops), -np.inf)
            for row, (window, crop) in enumerate(zip(windows, crops)):
                if window is not None:
                    x0, y0, x1, y1 = window
                    np.copyto(logits[row, y0:y1, x0:x1], np.minimum(crop, np.float32(-10.0)),
                              where=best[y0:y1, x0:x1] != row)
            logits = logits[[every.index(o) for o in ids]]
        return logits

    def frame_winners(self, frame_idx: int) -> np.ndarray:
        """As :meth:`VideoSession.frame_winners`: (H, W) int64, the index (in :attr:`obj_ids`) of the object whose
        :meth:`frame_logits` is the highest where that is > 0, -1 where none is (ties: the first object). Each object's
        window logits are compared where they lie, one running maximum: no (n_obj, H, W) array."""
        frame_idx = self.frames.check_index(frame_idx)
        tracks = [self._objects[obj_id] for obj_id in self.obj_ids]
        placed = ((t.window(frame_idx), t.session.frame_logits(frame_idx)[0]) if frame_idx in t.offsets
                  else (None, None) for t in tracks)  # each crop fetched as it is compared
        return self._winners(placed, 0.0)  # only logits > 0 win

    def frame_masks(self, frame_idx: int, obj_ids: Optional[Sequence[int]] = None) -> np.ndarray:
        return self.frame_logits(frame_idx, obj_ids) > 0

    def object_score(self, frame_idx: int, obj_id: int) -> Optional[float]:
        return self._track(obj_id).session.object_score(frame_idx, _OBJ)

    def tracked_frames(self, obj_id: int) -> List[int]:
        return self._track(obj_id).session.tracked_frames(_OBJ)

    def memory_bank(self, obj_id: int) -> MemoryBankView:
        return self._track(obj_id).session.memory_bank(_OBJ)

    def lost_frames(self, obj_id: int) -> List[int]:
        return self._track(obj_id).session.lost_frames(_OBJ)

    def jumped_frames(self, obj_id: int, max_iou: float = JUMP_MAX_IOU) -> List[int]:
        """As :meth:`VideoSession.jumped_frames`, in the object's windows (each frame's mask against the one it
        was tracked from, both in window pixels: a window that follows the object hides slow motion, not jumps)."""
        return self._track(obj_id).session.jumped_frames(_OBJ, max_iou)

    # ------------------------------------------------------------------ state
    def snapshot(self) -> "WindowedSnapshot":
        """A cheap, opaque copy of every object's prompts and results (windows already placed stay placed)."""
        return WindowedSnapshot(tuple((o, t, t.session.snapshot()) for o, t in self._objects.items()))

    def restore(self, snapshot: "WindowedSnapshot") -> None:
        """Put objects, prompts and results back as they were at :meth:`snapshot` (objects added since are dropped)."""
        if not isinstance(snapshot, WindowedSnapshot):
            raise ValueError("snapshot must be a WindowedSnapshot from WindowedSession.snapshot(), got "
                             f"{type(snapshot).__name__}")
        for _, track, state in snapshot.objects:
            track.session.restore(state)
            track.session.corrections_as_conditioning = self.corrections_as_conditioning
            track.session.clear_memory_around_corrections = self.clear_memory_around_corrections
        self._objects = {obj_id: track for obj_id, track, _ in snapshot.objects}

    def remove_object(self, obj_id: int) -> List[int]:
        """Forget an object entirely (its windows' image features too); returns the remaining object ids."""
        self._track(obj_id).session.features.clear()
        del self._objects[obj_id]
        return self.obj_ids

    def rename_object(self, obj_id: int, new_id: int) -> List[int]:
        """As :meth:`VideoSession.rename_object`: object ``obj_id`` is ``new_id`` from now on, its window, prompts,
        results and place in :attr:`obj_ids` as they were (no model work); returns the object ids. ValueError, nothing
        changed, for an unknown ``obj_id`` or a ``new_id`` that is not a positive integer or is another object's."""
        self._track(obj_id)
        new_id = validate_obj_id(new_id)
        if new_id == obj_id:
            return self.obj_ids
        if new_id in self._objects:
            raise ValueError(f"new_id {new_id} is another object of this session (objects: {self.obj_ids}): give a "
                             "free id")
        self._objects = {(new_id if o == obj_id else o): t for o, t in self._objects.items()}
        return self.obj_ids

    def reset(self) -> None:
        """Forget all objects and prompts."""
        self._objects.clear()

    def close(self) -> None:
        for track in self._objects.values():
            track.session.close()
        self._objects.clear()
        self.frames.close()

    def _track(self, obj_id: int) -> _Track:
        if obj_id not in self._objects:
            raise ValueError(f"unknown object id {obj_id!r}; this session has objects {self.obj_ids}")
        return self._objects[obj_id]

    def _check_obj_ids(self, obj_ids: Optional[Sequence[int]]) -> List[int]:
        return validate_obj_ids(obj_ids, self.obj_ids)


class WindowedSnapshot:
    """What :meth:`WindowedSession.snapshot` returns: (obj_id, its track, its session's snapshot) per object."""

    def __init__(self, objects: Tuple[Tuple[int, _Track, Any], ...]) -> None:
        self.objects = objects
