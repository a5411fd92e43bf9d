"""Batching objects for one propagation step: group objects by memory layout, stack their memory banks.

Objects whose memory banks give the same *layout* on a frame (the same attended conditioning frames
in the same order, the same recent-memory frames present, the same object-pointer frames) run memory
attention, the mask decoder and the memory encoder as one batch on the frame's shared features. The
model stays object-agnostic: it receives ordinary ``frame -> entry`` mappings whose entries hold B
objects, and it rediscovers the same layout from their keys.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .config import SAM2Config
from .modeling.sam2 import FrameFeatures, SAM2Model
from .modeling.memory_bank import recent_memory_frames, select_object_pointers, split_conditioning_frames
from .session_state import FrameResult, LazyMemoryEntry, ObjectState

MAX_BATCH = 64  # objects per batch; larger groups are split (bounds the expanded features' memory)


class MemoryView(Mapping):
    """frame -> memory entry of ONE object over a table of results, built lazily (only frames the model reads).

    pos_enc: (1, mem_dim, h, w), the same for every frame (None before any memory was encoded);
    restore(frame, result) recomputes a released memory.
    """

    def __init__(
        self, table: Dict[int, FrameResult], pos_enc: Optional[torch.Tensor],
        restore: Callable[[int, FrameResult], torch.Tensor],
    ) -> None:
        self.table, self.pos_enc, self.restore = table, pos_enc, restore

    def __getitem__(self, frame: int) -> LazyMemoryEntry:
        result = self.table[frame]
        if not result.has_memory or self.pos_enc is None:
            raise KeyError(frame)
        return LazyMemoryEntry(result, self.pos_enc, lambda r: self.restore(frame, r))

    def __contains__(self, frame: object) -> bool:
        result = self.table.get(frame)  # type: ignore[call-overload]
        return result is not None and result.has_memory

    def __iter__(self) -> Iterator[int]:
        return (frame for frame, result in self.table.items() if result.has_memory)

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True)
class MemoryLayout:
    """Which stored frames one tracking step reads, in the order the model reads them.

    cond_frames: attended conditioning (prompted) frames; recent_frames: recent-memory frames that
    hold a memory (tracked frames, or unselected prompted frames); pointer_frames: frames whose object
    pointers are attended to.
    """

    cond_frames: Tuple[int, ...]
    recent_frames: Tuple[int, ...]
    pointer_frames: Tuple[int, ...]


def _with_memory(table: Dict[int, FrameResult]) -> Dict[int, FrameResult]:
    return {t: r for t, r in table.items() if r.has_memory}


def memory_layout(
    frame_idx: int, state: ObjectState, config: SAM2Config, num_frames: int, reverse: bool
) -> MemoryLayout:
    """The layout the model would read for ``state`` on ``frame_idx`` (same rules as ``condition_on_memory``)."""
    cond = _with_memory(state.cond)
    recent = _with_memory(state.non_cond)
    selected, unselected = split_conditioning_frames(frame_idx, cond, config.max_cond_frames_in_attn)
    stride = config.memory_temporal_stride_for_eval
    recent_present = tuple(
        frame for _, frame in recent_memory_frames(frame_idx, config.num_maskmem, reverse, stride)
        if frame in recent or frame in unselected
    )
    pointers: Tuple[int, ...] = ()
    if config.use_obj_ptrs_in_encoder:
        selection = select_object_pointers(
            frame_idx, selected, ChainMap(recent, unselected), num_frames, config.max_obj_ptrs_in_encoder, reverse,
            only_past=config.only_obj_ptrs_in_the_past_for_eval, signed=config.use_signed_tpos_enc_to_obj_ptrs,
        )
        pointers = selection.frames
    return MemoryLayout(tuple(selected), recent_present, pointers)


def group_by_layout(
    frame_idx: int, states: Sequence[ObjectState], config: SAM2Config, num_frames: int, reverse: bool
) -> List[Tuple[MemoryLayout, List[ObjectState]]]:
    """Objects with identical layouts, in first-seen order; groups hold at most :data:`MAX_BATCH` objects."""
    groups: Dict[MemoryLayout, List[ObjectState]] = {}
    for state in states:
        groups.setdefault(memory_layout(frame_idx, state, config, num_frames, reverse), []).append(state)
    out = []
    for layout, members in groups.items():
        out.extend((layout, members[i : i + MAX_BATCH]) for i in range(0, len(members), MAX_BATCH))
    return out


class StackedEntry:
    """A memory-bank entry holding B objects' results on one frame.

    features (B, mem_dim, h, w) float32, computed on first read (released memories are restored
    first, in one batch, by ``restore``); pos_enc (B, mem_dim, h, w); obj_ptr (B, C).
    """

    def __init__(
        self, results: List[FrameResult], pos_enc: torch.Tensor, restore: Callable[[List[FrameResult]], None]
    ) -> None:
        self._results, self._restore = results, restore
        self.pos_enc = pos_enc.expand(len(results), -1, -1, -1)
        self.obj_ptr = torch.cat([r.obj_ptr for r in results], dim=0)
        self._features: Optional[torch.Tensor] = None

    @property
    def features(self) -> torch.Tensor:
        if self._features is None:
            missing = [r for r in self._results if r.memory is None]
            if missing:
                self._restore(missing)
            self._features = torch.cat([r.memory for r in self._results], dim=0).float()  # type: ignore[misc]
        return self._features


def stacked_banks(
    layout: MemoryLayout,
    states: Sequence[ObjectState],
    pos_enc: torch.Tensor,
    restore: Callable[[int, List[FrameResult]], None],
) -> Tuple[Dict[int, StackedEntry], Dict[int, StackedEntry]]:
    """(conditioning, recent) mappings for a group: exactly the layout's frames, each entry stacking the group.

    Given these, the model selects the same frames for every object as :func:`memory_layout` found.
    """

    def entry(frame: int, tables: Callable[[ObjectState], FrameResult]) -> StackedEntry:
        return StackedEntry([tables(s) for s in states], pos_enc, lambda missing: restore(frame, missing))

    def newest(frame: int) -> Callable[[ObjectState], FrameResult]:
        # Recent memories come from tracked frames first, then from unselected prompted frames.
        return lambda s: s.non_cond[frame] if frame in s.non_cond and s.non_cond[frame].has_memory else s.cond[frame]

    cond = {frame: entry(frame, lambda s, f=frame: s.cond[f]) for frame in layout.cond_frames}
    recent: Dict[int, StackedEntry] = {}
    for frame in (*layout.recent_frames, *layout.pointer_frames):
        if frame not in cond and frame not in recent:
            recent[frame] = entry(frame, newest(frame))
    return cond, recent


def split_rows(tensor: torch.Tensor) -> List[torch.Tensor]:
    """(B, ...) -> B tensors (1, ...), views of the batch."""
    return [tensor[i : i + 1] for i in range(tensor.shape[0])]


def encode_memories(
    model: SAM2Model, features: FrameFeatures, high_res_logits: torch.Tensor, object_scores: torch.Tensor
) -> List[torch.Tensor]:
    """Memory encoder for B objects on one frame (unprompted results): -> B memories (1, mem_dim, h, w) bf16.

    high_res_logits: (B, 1, S, S); object_scores: (B, 1). Runs as one batch unless the model makes
    objects' memories depend on each other (``non_overlap_masks_for_mem_enc``): then one by one.
    """
    if model.config.non_overlap_masks_for_mem_enc and high_res_logits.shape[0] > 1:
        return [
            model.encode_memory(features, high, score, from_points=False)[0].to(torch.bfloat16)
            for high, score in zip(split_rows(high_res_logits), split_rows(object_scores))
        ]
    batch = features.expand(high_res_logits.shape[0])
    memory, _ = model.encode_memory(batch, high_res_logits, object_scores, from_points=False)
    return split_rows(memory.to(torch.bfloat16))


def restore_memories(model: SAM2Model, features: FrameFeatures, results: List[FrameResult]) -> None:
    """Recompute released memories of several objects' results on one frame (features: that frame's, B=1)."""
    size = model.image_size
    low_res = torch.cat([r.low_res_logits for r in results])
    high = F.interpolate(low_res, size=(size, size), mode="bilinear", align_corners=False)
    memories = encode_memories(model, features, high, torch.cat([r.object_score for r in results]))
    for result, memory in zip(results, memories):
        result.memory = memory


def track_group(
    model: SAM2Model,
    frame_idx: int,
    features: FrameFeatures,
    layout: MemoryLayout,
    group: Sequence[ObjectState],
    pos_enc: torch.Tensor,
    restore: Callable[[int, List[FrameResult]], None],
    num_frames: int,
    reverse: bool,
) -> List[FrameResult]:
    """One propagation step (no prompts) for a group of objects sharing ``layout``: one result per object."""
    cond, recent = stacked_banks(layout, group, pos_enc, restore)
    batch = features.expand(len(group))
    prediction = model.track_step(frame_idx, batch, False, cond, recent, num_frames, reverse=reverse)
    memories = encode_memories(model, features, prediction.high_res_logits, prediction.object_score_logits)
    rows = zip(
        split_rows(prediction.low_res_logits), split_rows(prediction.obj_ptr),
        split_rows(prediction.object_score_logits), memories,
    )
    return [FrameResult(low, ptr, score, memory, releasable=True) for low, ptr, score, memory in rows]
