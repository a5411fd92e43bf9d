"""Promptable video segmentation (the paper's PVS task) over a stack: prompts on any frame, propagation.

Defaults reproduce Meta's ``SAM2VideoPredictor`` (sam2==1.1.0, as ``build_sam2_video_predictor``
builds it): objects are tracked independently, each with its own memory bank; prompts on a frame
that has not been tracked yet make it a conditioning frame; clicks on a tracked frame correct it
in place; memories are stored in bfloat16; small holes are filled. Unlike the reference, hole
filling runs on every device, and frames are read lazily (see :class:`FrameSource`).
"""

from __future__ import annotations

import contextlib
import numbers
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .build import inference_autocast
from .config import JUMP_MAX_IOU
from .feature_cache import FeatureCache
from .frames import FrameSource, check_invert
from .modeling.sam2 import NO_OBJECT_SCORE, FrameFeatures, SAM2Model, upsample_as_decoded
from . import session_outputs
from .batching import MemoryView, group_by_layout, restore_memories, track_group
from .postprocess import fill_holes
from .prompt_validation import validate_box, validate_mask, validate_obj_id, validate_obj_ids, validate_points
from .session_state import FrameResult, MemoryBankView, ObjectState, PointPrompt, SessionSnapshot, mask_prompt

PropagationStep = Tuple[int, List[int], np.ndarray]



def frame_spans(frames: Sequence[int], most: int = 8) -> str:
    """Sorted frame numbers in words, runs as spans: [0, 1, 2, 5] -> "0-2, 5"; past ``most`` spans, "..." ends it."""
    spans: List[List[int]] = []
    for t in sorted(frames):
        if spans and t == spans[-1][1] + 1:
            spans[-1][1] = t
        else:
            spans.append([t, t])
    words = [str(a) if a == b else f"{a}-{b}" for a, b in spans[:most]]
    return ", ".join(words) + (", ..." if len(spans) > most else "")


def blank_sentence(frames: Sequence[int], note_of: Callable[[int], Optional[str]], first_frame: int = 0) -> str:
    """Which of ``frames`` showed the model nothing (``note_of(t)``: why, or None), in one sentence for users ("2 of
    the 5 frames tracked are blank (frames 3-4; frame 3: every pixel is 0): ..."), or "" where none did. The sentence
    names frame ``t`` as ``t + first_frame`` (the movie's number where ``frames`` index part of it from its frame
    ``first_frame`` on: :attr:`FrameSource.first_frame`)."""
    notes = {t: note for t in frames if (note := note_of(t)) is not None}
    if not notes:
        return ""
    blank = sorted(notes)
    many = len(blank) > 1
    named = [t + first_frame for t in blank]
    return (f"{len(blank)} of the {len(frames)} frames tracked {'are' if many else 'is'} blank (frame"
            f"{'s' if many else ''} {frame_spans(named)}; frame {named[0]}: {notes[blank[0]]}): the model has nothing "
            f"to see there; its masks on {'them' if many else 'it'} are guesses")


def check_first_frame(first_frame: Any, frames: FrameSource) -> None:
    """``first_frame=`` given to a session with a :class:`FrameSource`: 0 (not given) or the source's own; ValueError
    saying where it goes otherwise."""
    if first_frame and first_frame != frames.first_frame:
        raise ValueError(f"first_frame={first_frame!r:.40} was given with a FrameSource whose first_frame is "
                         f"{frames.first_frame}: give first_frame= to the FrameSource instead")


class VideoSession:
    """Segment and track objects through a stack with SAM 2.

    frames: (T, H, W) or (T, H, W, C) array-like, a path, or a :class:`FrameSource`.
    fill_hole_area: holes up to this many low-res pixels are filled (0: off).
    feature_cache_mb: image features of recent frames kept for re-propagation.
    Options that differ from the reference (all off by default):
    corrections_as_conditioning: a correction on a tracked frame makes it a conditioning frame, so it
    stays in every later frame's memory; clear_memory_around_corrections: forget tracked memories
    within ``num_maskmem`` frames of a correction, so stale appearance does not override it;
    non_overlap_masks: where objects overlap, only the highest-scoring one keeps the pixel.
    release_memory (on by default; results are unchanged): memories of tracked frames beyond the
    recent-memory window are dropped during propagation and recomputed exactly (from the stored
    logits and the frame's features) if a later correction needs them, so memory grows with the
    number of frames only by the low-res masks (256 KB per object and frame at 1024 px).
    batch_objects (on by default): objects whose memory banks have the same layout on a frame are
    tracked as one batch (memory attention, mask decoder, memory encoder) on the frame's shared
    features; results equal the per-object ones up to float rounding. ``batch_objects=False``
    tracks objects one by one, bit-identical to the reference. max_batch_objects: at most this many
    objects go through the model as one batch; larger groups run in chunks. Memory attention's working
    memory grows with the batch (~190 MB per object for sam2.1 tiny at 1024 px on a GPU), while the
    speed gain of batching levels off after a few objects, so chunks keep the peak memory of 100+
    objects close to that of a few.
    smooth: a Gaussian of this many frame pixels blurs every frame before the model sees it (grainy, dim
    cells; see :class:`FrameSource`); 0 (default): frames as stored.
    invert: the model sees 1 - x of every frame's [0, 1] values (dark objects on a bright background; see
    :class:`FrameSource`); False (default): as mapped. Masks and measures are unchanged in kind.
    first_frame: the movie's number of ``frames``' frame 0 where they are part of a movie (frames A..B given as
    0..B-A): warnings and errors name frame ``t`` as ``t + first_frame`` (:attr:`FrameSource.first_frame`; a
    FrameSource given carries its own); frame indices of every method stay 0..T-1.
    """

    def __init__(
        self,
        model: SAM2Model,
        frames: Any,
        fill_hole_area: int = 8,
        contrast_limits: Optional[Tuple[float, float]] = None,
        feature_cache_mb: float = 512.0,
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
        if isinstance(frames, FrameSource):
            check_first_frame(first_frame, frames)
            if frames.image_size != model.image_size:
                raise ValueError(f"the FrameSource prepares {frames.image_size}px inputs; the model needs "
                                 f"{model.image_size}px: make it with FrameSource(..., image_size=model.image_size)")
            if smooth and smooth != frames.smooth:
                raise ValueError(f"smooth={smooth!r} was given with a FrameSource that smooths by {frames.smooth:g} px: "
                                 "give smooth= to the FrameSource instead")
            if invert and not frames.invert:
                raise ValueError("invert=True was given with a FrameSource that does not invert: give invert=True to "
                                 "the FrameSource instead")
            self.frames = frames
        else:
            self.frames = FrameSource(
                frames, image_size=model.image_size, contrast_limits=contrast_limits, channel=channel,
                composite=composite, smooth=smooth, invert=invert, first_frame=first_frame,
            )
        if fill_hole_area < 0:
            raise ValueError(f"fill_hole_area must be >= 0, got {fill_hole_area}")
        if not isinstance(max_batch_objects, (int, np.integer)) or isinstance(max_batch_objects, bool) \
                or max_batch_objects < 1:
            raise ValueError(f"max_batch_objects must be a positive integer, got {max_batch_objects!r}")
        self.model = model
        self.fill_hole_area = int(fill_hole_area)
        self.corrections_as_conditioning = corrections_as_conditioning
        self.clear_memory_around_corrections = clear_memory_around_corrections
        self.non_overlap_masks = non_overlap_masks
        self.release_memory = release_memory
        self.batch_objects = batch_objects
        self.max_batch_objects = int(max_batch_objects)
        self.features = FeatureCache(feature_cache_mb)
        self._objects: Dict[int, ObjectState] = {}
        self._memory_pos: Optional[torch.Tensor] = None  # the same for every frame and object
        self._blank_said: set = set()  # blank frames whose prompts were warned about (_warn_blank_prompt)

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

    def prompted_frames(self, obj_id: int) -> List[int]:
        return sorted(self._state(obj_id).prompted_frames())

    # ------------------------------------------------------------------ prompts
    @torch.inference_mode()
    def add_prompt(
        self,
        frame_idx: int,
        obj_id: int,
        points: Optional[Any] = None,
        labels: Optional[Any] = None,
        box: Optional[Any] = None,
        mask: Optional[Any] = None,
        clear_old: bool = True,
        refine: bool = True,
        return_logits: bool = True,
    ) -> Optional[np.ndarray]:
        """Add clicks, a box (with optional clicks) or a mask for ``obj_id`` on ``frame_idx``.

        points: (N, 2) (x, y) pixels of the original frame; labels: (N,) 1 positive / 0 negative;
        box: (x0, y0, x1, y1); mask: (H, W) boolean. clear_old=False adds clicks to the frame's
        earlier ones. refine: clicks refine the mask the frame holds (it is given to the mask decoder with them,
        as Meta's predictor always does); False decodes them afresh, for clicks that replace the ones that made
        that mask (a click moved to another cell). Returns logits (n_obj, H, W) float32 of every object on this frame as
        Meta's predictor returns them: another object's pending prompt shows only when it is of this prompt's kind (a
        first prompt on a frame, or a correction of a tracked one), else its committed result (-1024 without one);
        :meth:`frame_logits` gives every object's newest result, pending corrections included.
        return_logits=False returns None and upsamples nothing (every object's (H, W) logits: a cost that grows with
        the objects), for a caller that reads the frame another way next (:meth:`frame_winners`).
        Everything is checked before any state changes, so a bad call leaves the session as it was.
        A prompt on a blank frame (one value everywhere, or every pixel past one contrast limit:
        :meth:`FrameSource.blank_note`) is segmented as any other, with a UserWarning (once per frame) that the model
        has nothing to see there.
        """
        frame_idx = self.frames.check_index(frame_idx)
        obj_id = validate_obj_id(obj_id)
        height, width = self.frame_shape
        if mask is not None:
            if points is not None or labels is not None or box is not None:
                raise ValueError("give either a mask or points/box for one call of add_prompt, not both")
            mask_input = mask_prompt(validate_mask(mask, height, width), self.model.image_size, self.model.device)
            prompt = None
        else:
            if points is None and labels is None and box is None:
                raise ValueError("add_prompt needs points with labels, a box, or a mask")
            xy, lab = validate_points(points, labels, height, width)
            corners = validate_box(box, height, width)
            if not len(xy) and corners is None:  # e.g. np.zeros((0, 2)): no prompt at all (it made an empty object)
                raise ValueError("points are empty and there is no box: give at least one click (points (N, 2) as "
                                 "(x, y) with labels (N,)), a box or a mask")
            if corners is not None and not clear_old:
                raise ValueError("a box replaces the frame's prompts: use clear_old=True (clicks may accompany it)")
            prompt = PointPrompt.from_pixels(xy, lab, corners, self.frame_shape, self.model.image_size, self.model.device)
            mask_input = None

        with self._autocast():
            state = self._objects.setdefault(obj_id, ObjectState(obj_id))
            is_init = frame_idx not in state.tracked
            reverse = False if is_init else state.tracked[frame_idx]
            is_cond = is_init or self.corrections_as_conditioning
            pending = state.pending_cond if is_cond else state.pending_non_cond
            if prompt is not None:
                old = state.points.get(frame_idx)
                if not clear_old and old is not None:
                    prompt = PointPrompt(torch.cat([old.coords, prompt.coords], 1), torch.cat([old.labels, prompt.labels], 1))
                state.points[frame_idx] = prompt
                state.masks.pop(frame_idx, None)
                previous = state.result(frame_idx) if refine else None
                prev_logits = None if previous is None else self._filled(previous).clamp(-32.0, 32.0)
                result = self._infer(state, frame_idx, is_init, prompt, None, reverse, False, prev_logits)
            else:
                state.masks[frame_idx] = mask_input
                state.points.pop(frame_idx, None)
                result = self._infer(state, frame_idx, is_init, None, mask_input, reverse, False, None)
            pending[frame_idx] = result
            self._warn_blank_prompt(frame_idx)
            if not return_logits:
                return None
            low_res, present = self._low_res(frame_idx, self.obj_ids, lambda o: o.result(frame_idx, is_cond))
        return session_outputs.to_logits(low_res, self.frame_shape, self.non_overlap_masks, present)

    # ------------------------------------------------------------------ propagation
    def propagate(
        self,
        start_frame: Optional[int] = None,
        reverse: bool = False,
        max_frames: Optional[int] = None,
        obj_ids: Optional[Sequence[int]] = None,
        output: str = "logits",
    ) -> Iterator[PropagationStep]:
        """Track objects from ``start_frame`` (default: the earliest prompted frame of those objects).

        obj_ids: track only these objects (default: all); the others' results are left as they are.
        output: "logits" yields (frame_idx, obj_ids, logits (n_obj, H, W) float32); "masks" yields
        (frame_idx, obj_ids, masks (n_obj, H, W) bool) without a float32 full-resolution copy of each
        object; "labels" yields (frame_idx, obj_ids, labels (H, W) uint32): the id of the object with
        the highest positive logit, 0 for background (ties: the first object), bit for bit the labels of the
        logits, made without them: only objects that meet at one place are upsampled apart
        (:func:`~sam2_model.session_outputs.to_labels`), so with many objects it is the cheap output for a
        caller that needs only labels. ``max_frames`` limits how many frames past the
        start are tracked. Arguments are checked (and pending prompts of the tracked objects committed
        to memory) when this is called, before the first frame is yielded. A propagation that ran to its end over
        blank frames (:meth:`FrameSource.blank_note`) says so in one UserWarning naming them; masks are as the model
        makes them.
        """
        if not self._objects:
            raise ValueError("propagate needs at least one prompt: call add_prompt first")
        ids = self._check_obj_ids(obj_ids)
        if not ids:
            raise ValueError("obj_ids must name at least one object, got an empty sequence")
        output = session_outputs.check_output(output)
        if start_frame is not None:
            start_frame = self.frames.check_index(start_frame)
        if max_frames is not None and (not isinstance(max_frames, (int, np.integer)) or max_frames < 0):
            raise ValueError(f"max_frames must be a non-negative integer or None, got {max_frames!r}")
        states = [self._objects[o] for o in ids]
        with torch.inference_mode(), self._autocast():
            self._commit_pending(states)
        if start_frame is None:
            start_frame = min(t for state in states for t in state.cond)
        span = self.num_frames if max_frames is None else int(max_frames)
        if reverse:
            end = max(start_frame - span, 0)
            order: Sequence[int] = range(start_frame, end - 1, -1) if start_frame > 0 else []
        else:
            end = min(start_frame + span, self.num_frames - 1)
            order = range(start_frame, end + 1)
        return self._propagate(list(order), reverse, ids, output)

    def _propagate(self, order: List[int], reverse: bool, ids: List[int], output: str) -> Iterator[PropagationStep]:
        for frame_idx in order:
            with torch.inference_mode(), self._autocast():
                ids = [o for o in ids if o in self._objects]  # objects removed between two frames stop
                if not ids:
                    return
                states = [self._objects[o] for o in ids]
                to_track = []
                for state in states:
                    if frame_idx in state.cond:
                        if self.clear_memory_around_corrections:
                            self._forget_around(state, frame_idx)
                    else:
                        to_track.append(state)
                if self.batch_objects:
                    self._track_batched(frame_idx, to_track, reverse)
                else:
                    for state in to_track:
                        state.non_cond[frame_idx] = self._infer(state, frame_idx, False, None, None, reverse, True, None)
                for state in states:
                    state.tracked[frame_idx] = reverse
                    if self.release_memory:
                        self._release_memories(state, frame_idx)
                result = self._frame_output(frame_idx, states, ids, output)
            yield frame_idx, ids, result
        self._warn_blank_passed(order)

    def _warn_blank_prompt(self, frame_idx: int) -> None:
        """A UserWarning when the frame just prompted shows the model nothing (:meth:`FrameSource.blank_note`), once
        per frame and session (every object's prompts there and each click of a widget re-run would say it again)."""
        note = self.frames.blank_note(frame_idx)
        if note is not None and frame_idx not in self._blank_said:
            self._blank_said.add(frame_idx)
            warnings.warn(f"frame {self.frames.movie_frame(frame_idx)} is blank ({note}): the model has nothing to see "
                          "there; its masks on it are guesses", UserWarning, stacklevel=2)

    def _warn_blank_passed(self, order: Sequence[int]) -> None:
        """One UserWarning naming the frames of a finished propagation over ``order`` that showed the model nothing."""
        words = self.blank_summary(order)
        if words:
            warnings.warn(words, UserWarning, stacklevel=2)

    def blank_summary(self, frames: Sequence[int]) -> str:
        """Which of ``frames`` (tracked or prompted already) showed the model nothing (:meth:`FrameSource.blank_note`),
        in one sentence for users ("2 of the 5 frames tracked are blank (frames 3-4; frame 3: every pixel is 0): ..."),
        or "" where none did. What :meth:`propagate` warns at its end; a caller that reports in its own words (a status
        line) can ask it after any run."""
        return blank_sentence(frames, self.frames.blank_note, self.frames.first_frame)

    def _frame_output(self, frame_idx: int, states: List[ObjectState], ids: List[int], output: str) -> np.ndarray:
        """The propagated objects' results on a frame as ``output`` asks."""
        if self.non_overlap_masks and output != "labels" and len(ids) < len(self._objects):
            # Overlaps are decided among every object with a result on this frame, not only those tracked now.
            low_res, present = self._low_res(frame_idx, self.obj_ids, lambda o: o.result(frame_idx))
            rows = [self.obj_ids.index(o) for o in ids]
            if output == "logits":
                return session_outputs.to_logits(low_res, self.frame_shape, True, present)[rows]
            return session_outputs.to_masks(low_res, self.frame_shape, True)[rows]
        low_res = torch.cat([(state.cond.get(frame_idx) or state.non_cond[frame_idx]).low_res_logits for state in states])
        if self.fill_hole_area > 0:  # all objects at once: one copy to the host per frame
            low_res = fill_holes(low_res, self.fill_hole_area)
        return session_outputs.convert(low_res, self.frame_shape, output, self.non_overlap_masks, ids)

    def _track_batched(self, frame_idx: int, states: List[ObjectState], reverse: bool) -> None:
        """Track objects on one frame, each group of objects with the same memory layout as one batch."""
        if not states:
            return
        assert self._memory_pos is not None, "prompted frames are encoded before propagation"
        features = self._frame_features(frame_idx)
        size = self.max_batch_objects
        for layout, group in group_by_layout(frame_idx, states, self.model.config, self.num_frames, reverse):
            for chunk in (group[i : i + size] for i in range(0, len(group), size)):
                results = track_group(
                    self.model, frame_idx, features, layout, chunk, self._memory_pos, self._restore_batch,
                    self.num_frames, reverse,
                )
                for state, result in zip(chunk, results):
                    state.non_cond[frame_idx] = result

    def _restore_batch(self, frame_idx: int, results: List[FrameResult]) -> None:
        """Recompute released memories of several objects on one frame in one batch."""
        restore_memories(self.model, self._frame_features(frame_idx), results)

    def _commit_pending(self, states: Sequence[ObjectState]) -> None:
        """Encode memories of frames prompted since the last propagation and file them."""
        size = self.model.image_size
        for state in states:
            for pending, table in ((state.pending_non_cond, state.non_cond), (state.pending_cond, state.cond)):
                for frame_idx, result in pending.items():
                    if result.memory is None:
                        high = F.interpolate(self._filled(result), size=(size, size), mode="bilinear", align_corners=False)
                        result.memory = self._encode_memory(frame_idx, high, result.object_score, from_points=True)
                    table[frame_idx] = result
                    if self.clear_memory_around_corrections:
                        self._forget_around(state, frame_idx)
                pending.clear()
            for frame_idx in state.cond:
                state.non_cond.pop(frame_idx, None)

    def _forget_around(self, state: ObjectState, frame_idx: int) -> None:
        reach = self.model.config.memory_temporal_stride_for_eval * self.model.config.num_maskmem
        for t in range(frame_idx - reach, frame_idx + reach + 1):
            state.non_cond.pop(t, None)

    # ------------------------------------------------------------------ model calls
    def _frame_features(self, frame_idx: int) -> FrameFeatures:
        def compute(t: int) -> FrameFeatures:
            image = self.frames.model_input(t)[None]
            device = self.model.device
            if device.type == "cuda":  # from page-locked memory, without waiting for the copy
                image = image.pin_memory().to(device, non_blocking=True)
            else:
                image = image.to(device)
            return self.model.encode_image(image)

        return self.features.get(frame_idx, compute)

    def _encode_memory(
        self, frame_idx: int, high_res_logits: torch.Tensor, object_score: torch.Tensor, from_points: bool
    ) -> torch.Tensor:
        memory, pos = self.model.encode_memory(self._frame_features(frame_idx), high_res_logits, object_score, from_points)
        if self._memory_pos is None:
            self._memory_pos = pos[:1].clone()
        return memory.to(torch.bfloat16)

    def _infer(
        self,
        state: ObjectState,
        frame_idx: int,
        is_init: bool,
        prompt: Optional[PointPrompt],
        mask_input: Optional[torch.Tensor],
        reverse: bool,
        run_memory: bool,
        prev_logits: Optional[torch.Tensor],
    ) -> FrameResult:
        features = self._frame_features(frame_idx)
        prediction = self.model.track_step(
            frame_idx, features, is_init,
            MemoryView(state.cond, self._memory_pos, self._restore_memory),
            MemoryView(state.non_cond, self._memory_pos, self._restore_memory),
            self.num_frames,
            point_coords=None if prompt is None else prompt.coords,
            point_labels=None if prompt is None else prompt.labels,
            mask_input=mask_input, reverse=reverse, prev_mask_logits=prev_logits,
        )
        memory = None
        if run_memory:
            memory = self._encode_memory(
                frame_idx, prediction.high_res_logits, prediction.object_score_logits, prompt is not None
            )
        releasable = run_memory and prompt is None and mask_input is None
        return FrameResult(
            prediction.low_res_logits, prediction.obj_ptr, prediction.object_score_logits, memory, releasable,
            decoded_masks=prediction.multimask_logits.shape[1],
        )

    def _filled(self, result: FrameResult) -> torch.Tensor:
        """The result's low-res logits after hole filling (what users see and what prompts refine)."""
        if self.fill_hole_area > 0:
            return fill_holes(result.low_res_logits, self.fill_hole_area)
        return result.low_res_logits

    def _restore_memory(self, frame_idx: int, result: FrameResult) -> torch.Tensor:
        """Recompute a released memory exactly as it was made: from the frame's unfilled logits."""
        high = upsample_as_decoded(result.low_res_logits, self.model.image_size, result.decoded_masks)
        return self._encode_memory(frame_idx, high, result.object_score, from_points=False)

    def _release_memories(self, state: ObjectState, frame_idx: int) -> None:
        """Drop recomputable memories out of reach of the next frames' recent-memory window."""
        reach = self.model.config.memory_temporal_stride_for_eval * self.model.config.num_maskmem
        for t, result in state.non_cond.items():
            if result.releasable and result.memory is not None and abs(t - frame_idx) > reach:
                result.memory = None

    # ------------------------------------------------------------------ outputs
    def _low_res(self, frame_idx: int, obj_ids: Sequence[int],
                 pick: Callable[[ObjectState], Optional[FrameResult]]) -> Tuple[torch.Tensor, torch.Tensor]:
        """(n, 1, 4h, 4w) filled low-res logits of the result ``pick`` takes of each object (None: absent, -1024),
        present (n,) bool."""
        size = 4 * self.model.config.feature_size
        out = torch.full((len(obj_ids), 1, size, size), NO_OBJECT_SCORE, device=self.model.device)
        present = torch.zeros(len(obj_ids), dtype=torch.bool, device=self.model.device)
        found = [(index, result) for index, result in enumerate(pick(self._objects[o]) for o in obj_ids)
                 if result is not None]
        if len({result.low_res_logits.dtype for _, result in found}) == 1:  # one hole filling for all (per object)
            rows = torch.tensor([index for index, _ in found], device=self.model.device)
            raw = torch.cat([result.low_res_logits for _, result in found])
            out[rows] = (fill_holes(raw, self.fill_hole_area) if self.fill_hole_area > 0 else raw).float()
            present[rows] = True
        else:
            for index, result in found:
                out[index : index + 1] = self._filled(result).float()
                present[index] = True
        return out, present

    # ------------------------------------------------------------------ read API
    def _check_obj_ids(self, obj_ids: Optional[Sequence[int]]) -> List[int]:
        return validate_obj_ids(obj_ids, self.obj_ids)

    @torch.inference_mode()
    def frame_logits(self, frame_idx: int, obj_ids: Optional[Sequence[int]] = None) -> np.ndarray:
        """Each object's newest result on a frame (pending prompt, then prompted, then tracked).

        Returns (n_obj, H, W) float32 logits in the order of ``obj_ids`` (default: every object);
        objects with no result on the frame are -1024 everywhere. With ``non_overlap_masks`` the
        losers of an overlap are clamped to at most -10, as in :meth:`propagate`.
        """
        frame_idx = self.frames.check_index(frame_idx)
        ids = self._check_obj_ids(obj_ids)
        if not self.non_overlap_masks or obj_ids is None:
            low_res, present = self._low_res(frame_idx, ids, lambda o: o.result(frame_idx))
            return session_outputs.to_logits(low_res, self.frame_shape, self.non_overlap_masks, present)
        every = self.frame_logits(frame_idx)  # the overlap is decided among all objects
        return every[[self.obj_ids.index(o) for o in ids]]

    @torch.inference_mode()
    def frame_winners(self, frame_idx: int) -> np.ndarray:
        """(H, W) int64: at each pixel the index (in :attr:`obj_ids`) of the object whose :meth:`frame_logits` is the
        highest there where that is > 0, -1 where no object's is (a tie goes to the first object); with or without
        ``non_overlap_masks`` alike. What a label image of the frame needs (``ids[winners]`` where >= 0), without
        every object's (H, W) logits: only the objects that meet at a place are upsampled apart
        (:func:`~sam2_model.session_outputs.winners`), so the cost barely grows with the number of objects."""
        frame_idx = self.frames.check_index(frame_idx)
        low_res, _ = self._low_res(frame_idx, self.obj_ids, lambda o: o.result(frame_idx))
        return session_outputs.winners(low_res, self.frame_shape)

    def frame_masks(self, frame_idx: int, obj_ids: Optional[Sequence[int]] = None) -> np.ndarray:
        """(n_obj, H, W) bool: :meth:`frame_logits` > 0."""
        return self.frame_logits(frame_idx, obj_ids) > 0

    def object_score(self, frame_idx: int, obj_id: int) -> Optional[float]:
        """Presence logit of the object's newest result on the frame (> 0: visible); None without a result."""
        frame_idx = self.frames.check_index(frame_idx)
        result = self._state(obj_id).result(frame_idx)
        return None if result is None else float(result.object_score.reshape(-1)[0])

    def tracked_frames(self, obj_id: int) -> List[int]:
        """Frames on which the object has a result (prompted or tracked), sorted."""
        return sorted(self._state(obj_id).result_frames())

    def memory_bank(self, obj_id: int) -> MemoryBankView:
        """The frames the object's memory bank holds: prompted, tracked, and tracked but released."""
        return self._state(obj_id).memory_bank()

    def lost_frames(self, obj_id: int) -> List[int]:
        """Frames with a result whose presence logit is <= 0 (the model says the object is absent), sorted."""
        state = self._state(obj_id)
        return [t for t in sorted(state.result_frames()) if not state.result(t).present]

    def jumped_frames(self, obj_id: int, max_iou: float = JUMP_MAX_IOU) -> List[int]:
        """Tracked frames worth a look: the object's mask overlaps its mask on the frame it was tracked from
        (the previous frame, or the next when tracked in reverse) by an IoU below ``max_iou`` while the model
        scores it present on both. The object jumped further than its size, collapsed, or the model followed
        something else there; a click on that frame re-anchors it. Prompted frames are never listed. Sorted."""
        if isinstance(max_iou, bool) or not isinstance(max_iou, numbers.Real) or not 0 < max_iou <= 1:
            raise ValueError(f"max_iou must be a number in (0, 1], got {max_iou!r}")
        return self._state(obj_id).jumped_frames(float(max_iou))

    def snapshot(self) -> SessionSnapshot:
        """A cheap, opaque copy of every object's prompts and results (tensors are shared, not copied)."""
        return SessionSnapshot(tuple(state.copy() for state in self._objects.values()))

    def restore(self, snapshot: SessionSnapshot) -> None:
        """Put prompts and results back as they were at :meth:`snapshot` (objects added since are dropped).

        Memories released since are recomputed when a later step needs them; image features stay cached.
        """
        if not isinstance(snapshot, SessionSnapshot):
            raise ValueError(f"snapshot must be a SessionSnapshot from VideoSession.snapshot(), got {type(snapshot).__name__}")
        self._objects = {state.obj_id: state.copy() for state in snapshot.objects}

    # ------------------------------------------------------------------ objects
    def _state(self, obj_id: int) -> ObjectState:
        if obj_id not in self._objects:
            raise ValueError(f"unknown object id {obj_id!r}; this session has objects {self.obj_ids}")
        return self._objects[obj_id]

    def remove_object(self, obj_id: int) -> List[int]:
        """Forget an object entirely; returns the remaining object ids."""
        self._state(obj_id)
        del self._objects[obj_id]
        return self.obj_ids

    def rename_object(self, obj_id: int, new_id: int) -> List[int]:
        """Give object ``obj_id`` the id ``new_id``; returns the object ids.

        Nothing else changes and no model work is done: its prompts, results and memory bank stay as they are, and it
        keeps its place in :attr:`obj_ids` (the order objects are batched, composed and returned in), so every later
        call (propagation, corrections, :meth:`frame_logits`) gives exactly what it gives for ``obj_id`` without the
        rename, ``new_id`` in its place. Raises ValueError, changing nothing, for an unknown ``obj_id`` or a
        ``new_id`` that is not a positive integer or is another object's."""
        state = self._state(obj_id)
        new_id = validate_obj_id(new_id)
        if new_id == state.obj_id:
            return self.obj_ids
        if new_id in self._objects:
            raise ValueError(f"new_id {new_id} is another object of this session (objects: {self.obj_ids}): give a "
                             "free id")
        state.obj_id = new_id  # snapshots hold copies of the state: they keep the old id
        self._objects = {(new_id if o == obj_id else o): s for o, s in self._objects.items()}
        return self.obj_ids

    def reset(self) -> None:
        """Forget all objects and prompts (cached image features are kept)."""
        self._objects.clear()

    def close(self) -> None:
        self.features.clear()
        self.frames.close()

    def _autocast(self) -> contextlib.AbstractContextManager:
        return inference_autocast(self.model.device)
