"""Typed state of a video session: per object, per frame."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Set, Tuple

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class MemoryProjection:
    """Memory attention's values of one object's memory on one frame, in every layer: row ``row`` of a batch.

    values: per memory-attention layer (B, heads, h*w, head_dim) for the B objects projected together;
    rows of one batch are used as they are when the same objects are stacked again in the same order.
    """

    values: Tuple[torch.Tensor, ...]
    row: int

    def rows(self) -> List[torch.Tensor]:
        """Per layer the values of this object alone: (1, heads, h*w, head_dim) views."""
        return [v[self.row : self.row + 1] for v in self.values]


@dataclass(frozen=True)
class MemoryBankView:
    """Which frames of one object the memory bank holds, for inspection (all sorted frame indices).

    prompted: frames with committed prompts (conditioning memories); tracked: frames tracked without a
    prompt, or corrected and kept as tracked frames; released: the tracked frames whose memory the session
    dropped (``release_memory``) and recomputes exactly if a later step reads it.
    """

    prompted: Tuple[int, ...]
    tracked: Tuple[int, ...]
    released: Tuple[int, ...]


@dataclass
class FrameResult:
    """One object's result on one frame.

    low_res_logits: (1, 1, 4h, 4w) float32 as the SAM heads gave them (before hole filling, which
    is applied when they are read); obj_ptr: (1, C); object_score: (1, 1); memory:
    (1, mem_dim, h, w) in bfloat16 as the reference stores it, or None before the memory encoder
    ran or after the session released it. ``releasable``: the memory can be recomputed exactly from
    the stored logits (frames tracked without prompts), so it may be dropped to bound memory.
    ``projection``: memory attention's values of ``memory`` (batched path only); setting
    ``memory`` (releasing or restoring it) drops it. ``decoded_masks``: how many masks the SAM heads
    decoded and upsampled together before choosing this one (3 with multimask output, else 1), so that a
    released memory is recomputed from exactly the same high-res logits
    (:func:`~sam2_model.modeling.sam2.upsample_as_decoded`).
    """

    low_res_logits: torch.Tensor
    obj_ptr: torch.Tensor
    object_score: torch.Tensor
    memory: Optional[torch.Tensor] = None
    releasable: bool = False
    decoded_masks: int = 1
    projection: Optional[MemoryProjection] = field(default=None, repr=False, compare=False)

    def __setattr__(self, name: str, value: object) -> None:
        if name == "memory" and self.__dict__.get("projection") is not None:
            object.__setattr__(self, "projection", None)
        object.__setattr__(self, name, value)

    @property
    def has_memory(self) -> bool:
        return self.memory is not None or self.releasable

    @property
    def present(self) -> bool:
        """The model scores the object as visible here (presence logit > 0)."""
        return float(self.object_score.reshape(-1)[0]) > 0


class LazyMemoryEntry:
    """A memory-bank entry whose features are (re)computed only if the model reads them.

    Attributes as :class:`~sam2_model.modeling.sam2.MemoryEntry`: features (1, mem_dim, h, w)
    float32, pos_enc (1, mem_dim, h, w), obj_ptr (1, C).
    """

    def __init__(self, result: FrameResult, pos_enc: torch.Tensor, restore: Callable[[FrameResult], torch.Tensor]):
        self._result, self._restore = result, restore
        self.pos_enc = pos_enc
        self.obj_ptr = result.obj_ptr

    @property
    def features(self) -> torch.Tensor:
        if self._result.memory is None:
            self._result.memory = self._restore(self._result)
        return self._result.memory.float()


@dataclass
class PointPrompt:
    """Clicks (and box corners) of one object on one frame, in model-input pixels.

    coords: (1, N, 2) float32 (x, y); labels: (1, N) int32 (1, 0, or 2/3 for box corners).
    """

    coords: torch.Tensor
    labels: torch.Tensor

    @classmethod
    def from_pixels(
        cls, xy: np.ndarray, labels: np.ndarray, box: Optional[np.ndarray], frame_shape: Tuple[int, int],
        image_size: int, device: torch.device,
    ) -> "PointPrompt":
        """Checked (N, 2) (x, y) pixels, (N,) labels and an optional (x0, y0, x1, y1) box of an (H, W) frame,
        scaled to model-input pixels as the reference does (x / W * S); box corners come first (labels 2, 3)."""
        coords = torch.as_tensor(xy, dtype=torch.float32).reshape(1, -1, 2)
        lab = torch.as_tensor(labels, dtype=torch.int32).reshape(1, -1)
        if box is not None:
            coords = torch.cat([torch.as_tensor(box, dtype=torch.float32).reshape(1, 2, 2), coords], dim=1)
            lab = torch.cat([torch.tensor([[2, 3]], dtype=torch.int32), lab], dim=1)
        height, width = frame_shape
        coords = coords / torch.tensor([width, height]) * image_size
        return cls(coords.to(device), lab.to(device))


def mask_prompt(mask: np.ndarray, image_size: int, device: torch.device) -> torch.Tensor:
    """A checked (H, W) bool mask -> (1, 1, S, S) binary float at the model's resolution."""
    tensor = torch.as_tensor(mask, dtype=torch.float32)[None, None].to(device)
    if tensor.shape[-2:] != (image_size, image_size):
        tensor = F.interpolate(tensor, size=(image_size, image_size), mode="bilinear", align_corners=False,
                               antialias=True)
        tensor = (tensor >= 0.5).float()
    return tensor


@dataclass
class ObjectState:
    """Prompts, results and memory bank of one tracked object."""

    obj_id: int
    points: Dict[int, PointPrompt] = field(default_factory=dict)
    masks: Dict[int, torch.Tensor] = field(default_factory=dict)  # frame -> (1, 1, S, S) binary
    cond: Dict[int, FrameResult] = field(default_factory=dict)  # prompted frames (conditioning)
    non_cond: Dict[int, FrameResult] = field(default_factory=dict)  # tracked frames
    pending_cond: Dict[int, FrameResult] = field(default_factory=dict)  # prompted since last propagation
    pending_non_cond: Dict[int, FrameResult] = field(default_factory=dict)  # corrections on tracked frames
    tracked: Dict[int, bool] = field(default_factory=dict)  # frame -> tracked in reverse?
    projected_frames: Set[int] = field(default_factory=set)  # frames whose results may hold a projection
    # frame -> (its result, its source's result, IoU) for source_overlaps; weak, so replaced results are freed
    _overlap_cache: Dict[int, Tuple[weakref.ref, weakref.ref, float]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def result(self, frame: int, is_cond: Optional[bool] = None) -> Optional[FrameResult]:
        """The newest result on ``frame``: pending first, then conditioning, then tracked.

        With ``is_cond``, the result Meta's predictor shows on ``frame`` next to a prompt of that kind (of any object;
        True: a conditioning prompt, False: a correction kept out of the conditioning frames): the pending result of
        that kind only, then conditioning, then tracked (a pending result of the other kind is not shown until
        propagation commits it)."""
        if is_cond is None:
            pending: Tuple[Dict[int, FrameResult], ...] = (self.pending_cond, self.pending_non_cond)
        else:
            pending = (self.pending_cond if is_cond else self.pending_non_cond,)
        for table in (*pending, self.cond, self.non_cond):
            if frame in table:
                return table[frame]
        return None

    def memory_bank(self) -> MemoryBankView:
        """The frames of this object's committed memory bank (see :class:`MemoryBankView`)."""
        released = tuple(t for t, r in sorted(self.non_cond.items()) if r.memory is None and r.releasable)
        return MemoryBankView(tuple(sorted(self.cond)), tuple(sorted(self.non_cond)), released)

    def keep_projections(self, frames: Set[int]) -> None:
        """Drop memory projections held on any frame outside ``frames`` (which may hold them from now on)."""
        for frame in self.projected_frames - frames:
            for table in (self.cond, self.non_cond):
                result = table.get(frame)
                if result is not None:
                    result.projection = None
        self.projected_frames = set(frames)

    def prompted_frames(self) -> set:
        return set(self.points) | set(self.masks)

    def jumped_frames(self, max_iou: float) -> List[int]:
        """Tracked, unprompted frames whose mask overlaps the mask of the frame it was tracked from (the one
        before, or after when tracked in reverse) by an IoU below ``max_iou``, the object present on both
        (presence logit > 0). Masks are the low-resolution logits > 0, before hole filling. Sorted."""
        return [frame for frame, iou in sorted(self.source_overlaps().items()) if iou < max_iou]

    def source_overlaps(self) -> Dict[int, float]:
        """frame -> IoU of the mask with the mask of the frame it was tracked from, for the tracked,
        unprompted frames where both are scored present (see :meth:`jumped_frames`).

        An IoU is computed once per pair of results and kept while both results stand (results are
        replaced, never edited, when a frame is tracked again), so asking again after a click on one
        frame only compares the frames whose results changed.
        """
        overlaps: Dict[int, float] = {}
        pending = []  # (frame, its result, the result of the frame it was tracked from) not yet compared
        prompted = self.prompted_frames()
        for frame, reverse in self.tracked.items():
            if frame in prompted:
                continue
            here, there = self.result(frame), self.result(frame + 1 if reverse else frame - 1)
            if here is None or there is None or not (here.present and there.present):
                continue
            cached = self._overlap_cache.get(frame)
            if cached is not None and cached[0]() is here and cached[1]() is there:
                overlaps[frame] = cached[2]
            else:
                pending.append((frame, here, there))
        if pending:  # one comparison for all frames that changed
            masks = torch.cat([p[1].low_res_logits for p in pending]).flatten(1) > 0  # (n, S*S)
            sources = torch.cat([p[2].low_res_logits for p in pending]).flatten(1) > 0
            union = (masks | sources).sum(1)
            ious = ((masks & sources).sum(1) / union.clamp(min=1)).where(union > 0, torch.ones(())).tolist()
            for (frame, here, there), iou in zip(pending, ious):
                self._overlap_cache[frame] = (weakref.ref(here), weakref.ref(there), iou)
                overlaps[frame] = iou
        return overlaps

    def result_frames(self) -> set:
        """Frames on which the object has a result (any table)."""
        return set(self.pending_cond) | set(self.pending_non_cond) | set(self.cond) | set(self.non_cond)

    def copy(self) -> "ObjectState":
        """An independent copy of the tables (tensors are shared: the session never edits them in place).

        Results are copied as shells, so a memory released or restored later in one copy leaves the
        other as it was; the copies hold no memory projections (they are recomputed when needed).
        """

        def results(table: Dict[int, FrameResult]) -> Dict[int, FrameResult]:
            return {frame: replace(result, projection=None) for frame, result in table.items()}

        return ObjectState(
            self.obj_id, dict(self.points), dict(self.masks), results(self.cond), results(self.non_cond),
            results(self.pending_cond), results(self.pending_non_cond), dict(self.tracked),
        )


@dataclass(frozen=True)
class SessionSnapshot:
    """Opaque copy of every object's prompts and results (in object order), for undo.

    Made by ``VideoSession.snapshot()`` and given back to ``VideoSession.restore()``; restoring
    leaves the snapshot intact, so it can be restored more than once.
    """

    objects: Tuple[ObjectState, ...]
