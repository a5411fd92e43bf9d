"""Batching objects for one propagation step: group objects by memory layout, stack their memory banks.

Objects whose memory banks give the same *layout* on a frame (the same attended conditioning frames
in the same order, the same recent-memory frames present, the same object-pointer frames) run memory
attention, the mask decoder and the memory encoder as one batch on the frame's shared features. The
model stays object-agnostic: it receives ordinary ``frame -> entry`` mappings whose entries hold B
objects, and it rediscovers the same layout from their keys.

Kept values (eval mode, :data:`KV_CACHE_BYTES`): a stored memory is read by memory attention on up
to ``num_maskmem - 1`` later frames (a conditioning memory on all of them), and each read projected
it to values in every layer again. Here a group projects each memory's values once and keeps them on
the result (``FrameResult.projection``; dropped when the memory is released, and when the memory
leaves the group's attention window). Keys are projected on every frame as the model does (the
temporal encoding on keys changes as a memory ages). The first layer's self-attention and
cross-attention queries run once per group (their input, the frame, is shared). Results equal the
batched reference computation up to float rounding; the per-object path never takes this route.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from .config import SAM2Config
from .modeling.sam2 import FrameFeatures, SAM2Model, upsample_as_decoded
from .modeling.memory_bank import (
    recent_memory_frames, select_object_pointers, sine_encoding_1d, split_conditioning_frames,
)
from .session_state import FrameResult, LazyMemoryEntry, MemoryProjection, ObjectState

MAX_BATCH = 64  # objects per batch; larger groups are split (bounds the expanded features' memory)
# Kept values a group may hold (every layer, for the memories it attends to); a group whose values would
# exceed this runs memory attention as the model does, keeping nothing. 0 turns keeping off.
KV_CACHE_BYTES = 1 << 30
# On CUDA memory attention runs as the model does unless this is set: there the per-frame calls may be
# replayed from CUDA graphs (``build_model(cuda_graphs=True)`` graphs ``memory_attention.forward``), and the
# gain of kept values is unmeasured on a GPU; kept values are bfloat16 there (autocast), as memories are.
KV_CACHE_ON_CUDA = False


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
        self.results, self._restore = results, restore
        self.pos_enc = pos_enc.expand(len(results), -1, -1, -1)
        self.obj_ptr = torch.cat([r.obj_ptr for r in results], dim=0)
        self._features: Optional[torch.Tensor] = None

    @property
    def features(self) -> torch.Tensor:
        if self._features is None:
            missing = [r for r in self.results if r.memory is None]
            if missing:
                self._restore(missing)
            self._features = torch.cat([r.memory for r in self.results], dim=0).float()  # type: ignore[misc]
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
    high = torch.cat([upsample_as_decoded(r.low_res_logits, model.image_size, r.decoded_masks) for r in results])
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
    kv_cache_bytes: Optional[int] = None,
) -> List[FrameResult]:
    """One propagation step (no prompts) for a group of objects sharing ``layout``: one result per object.

    features: the frame's (batch of 1); with ``kv_cache_bytes > 0`` (None: :data:`KV_CACHE_BYTES`) memory
    attention reuses kept values (see the module's docstring) when the group's fit in that many bytes.
    """
    budget = KV_CACHE_BYTES if kv_cache_bytes is None else kv_cache_bytes
    cond, recent = stacked_banks(layout, group, pos_enc, restore)
    batch = features.expand(len(group))
    if _can_project(model, features, layout, len(group), budget):
        fused = _condition_projected(model, frame_idx, features, layout, group, pos_enc, restore, cond, recent,
                                     num_frames, reverse)
        prediction = model.predict_masks(fused, batch.high_res, multimask=model.use_multimask(False, 0))
    else:
        prediction = model.track_step(frame_idx, batch, False, cond, recent, num_frames, reverse=reverse)
    memories = encode_memories(model, features, prediction.high_res_logits, prediction.object_score_logits)
    rows = zip(
        split_rows(prediction.low_res_logits), split_rows(prediction.obj_ptr),
        split_rows(prediction.object_score_logits), memories,
    )
    decoded = prediction.multimask_logits.shape[1]
    return [
        FrameResult(low, ptr, score, memory, releasable=True, decoded_masks=decoded)
        for low, ptr, score, memory in rows
    ]


# ---------------------------------------------------------------------- projected memories
def projection_bytes(model: SAM2Model, num_objects: int, num_memories: int, element_size: int = 4) -> int:
    """Bytes of the values kept for ``num_memories`` memories of ``num_objects`` objects, all layers."""
    c = model.config
    tokens = c.feature_size * c.feature_size
    inner = sum(layer.cross_attn_image.internal_dim for layer in model.memory_attention.layers)
    return num_objects * num_memories * tokens * inner * element_size


def _can_project(model: SAM2Model, features: FrameFeatures, layout: MemoryLayout, num_objects: int,
                 budget: int) -> bool:
    if budget <= 0 or model.training or model.config.num_maskmem == 0 or features.batch_size != 1:
        return False
    if not layout.cond_frames:
        return False
    device = features.image_embed.device
    if device.type == "cuda" and not KV_CACHE_ON_CUDA:
        return False
    element = 2 if torch.is_autocast_enabled(device.type) else 4
    num_memories = len(layout.cond_frames) + len(layout.recent_frames)
    return projection_bytes(model, num_objects, num_memories, element) <= budget


def _memories(
    frame: int, results: List[FrameResult], restore: Callable[[int, List[FrameResult]], None]
) -> torch.Tensor:
    """B results' memories on ``frame`` as float32 tokens (B, h*w, mem_dim); released ones restored first."""
    released = [r for r in results if r.memory is None]
    if released:
        restore(frame, released)
    return torch.cat([r.memory for r in results], dim=0).float().flatten(2).transpose(1, 2)  # type: ignore[misc]


def _values(
    model: SAM2Model, frame: int, results: List[FrameResult], memory: torch.Tensor
) -> List[torch.Tensor]:
    """Per layer the values (B, heads, h*w, head_dim) of B results' memories (``memory``: their tokens).

    Results without a projection are projected together and keep it; when all rows come from one
    batch in order, that batch is used as it is (no copy).
    """
    missing = [i for i, r in enumerate(results) if r.projection is None]
    if missing:
        values = tuple(model.memory_attention.project_values(memory[missing] if len(missing) < len(results) else memory))
        for row, index in enumerate(missing):
            results[index].projection = MemoryProjection(values, row)
    projections = [r.projection for r in results]
    first = projections[0]
    assert first is not None
    if first.values[0].shape[0] == len(results) and all(
        p is not None and p.values is first.values and p.row == i for i, p in enumerate(projections)
    ):
        return list(first.values)
    rows = [p.rows() for p in projections]  # type: ignore[union-attr]
    return [torch.cat([r[layer] for r in rows]) for layer in range(len(first.values))]


def _pointer_tokens(
    model: SAM2Model, frame_idx: int, cond: Dict[int, StackedEntry], recent: Dict[int, StackedEntry],
    num_frames: int, reverse: bool,
) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """The object-pointer memory tokens and their encodings, each (B, N * C/mem_dim, mem_dim), or None."""
    c = model.config
    if not c.use_obj_ptrs_in_encoder:
        return None
    selection = select_object_pointers(
        frame_idx, cond, recent, num_frames, c.max_obj_ptrs_in_encoder, reverse,
        only_past=c.only_obj_ptrs_in_the_past_for_eval, signed=c.use_signed_tpos_enc_to_obj_ptrs,
    )
    if not selection.frames:
        return None
    pointers = torch.stack([(cond[t] if t in cond else recent[t]).obj_ptr for t in selection.frames])  # (N, B, C)
    count, batch, hidden = pointers.shape
    mem_dim = c.mem_dim
    if c.add_tpos_enc_to_obj_ptrs:
        positions = torch.tensor(selection.offsets, device=pointers.device, dtype=torch.float32) / selection.max_offset
        pos = model.obj_ptr_tpos_proj(sine_encoding_1d(positions, hidden if c.proj_tpos_enc_in_obj_ptrs else mem_dim))
    else:
        pos = pointers.new_zeros(count, mem_dim)
    split = hidden // mem_dim if mem_dim < hidden else 1
    tokens = pointers.reshape(count, batch, split, hidden // split).permute(1, 0, 2, 3).flatten(1, 2)
    pos = pos.repeat_interleave(split, dim=0)[None].expand(batch, -1, -1)
    return tokens, pos


def _condition_projected(
    model: SAM2Model, frame_idx: int, features: FrameFeatures, layout: MemoryLayout, group: Sequence[ObjectState],
    pos_enc: torch.Tensor, restore: Callable[[int, List[FrameResult]], None], cond: Dict[int, StackedEntry],
    recent: Dict[int, StackedEntry], num_frames: int, reverse: bool,
) -> torch.Tensor:
    """Memory attention for a group with kept values: -> fused features (B, C, h, w).

    Computes what ``SAM2Model.condition_on_memory`` computes (same memories, encodings and order):
    keys are projected on every frame (a memory's temporal encoding changes as it ages), values of
    each memory only once.
    """
    c = model.config
    attention = model.memory_attention
    slots: List[Tuple[int, int, List[FrameResult]]] = [
        (0, frame, cond[frame].results) for frame in layout.cond_frames
    ]
    for slot, frame in recent_memory_frames(frame_idx, c.num_maskmem, reverse, c.memory_temporal_stride_for_eval):
        if frame in layout.recent_frames and frame in recent:
            slots.append((slot, frame, recent[frame].results))
    memories = [_memories(frame, results, restore) for _, frame, results in slots]  # each (B, L, mem_dim)
    values = [_values(model, frame, results, memory) for (_, frame, results), memory in zip(slots, memories)]
    for state in group:  # values of memories no longer attended to are dropped
        state.keep_projections({frame for _, frame, _ in slots})

    batch = len(group)
    _, channels, height, width = features.image_embed.shape
    tokens = height * width
    spatial_pos = pos_enc.to(features.image_embed.device).flatten(2).transpose(1, 2)  # (1, L, mem_dim)
    memory_pos = torch.cat([spatial_pos + model.maskmem_tpos_enc[c.num_maskmem - slot - 1].view(1, 1, -1)
                            for slot, _, _ in slots], dim=1)
    pointer = _pointer_tokens(model, frame_idx, cond, recent, num_frames, reverse)
    num_ptr = 0 if pointer is None else pointer[0].shape[1]
    if pointer is not None:
        memories.append(pointer[0])
        memory_pos = torch.cat([memory_pos.expand(batch, -1, -1), pointer[1]], dim=1)
    keys = attention.project_keys(torch.cat(memories, dim=1), memory_pos, tokens, num_ptr)  # (B, heads, M, d)
    pointer_values = attention.project_values(pointer[0]) if pointer is not None else None
    layer_values = []
    for layer, key in enumerate(keys):
        value = torch.empty(key.shape, dtype=values[0][layer].dtype, device=key.device)
        for index, part in enumerate(values):
            value[:, :, index * tokens : (index + 1) * tokens].copy_(part[layer])
        if pointer_values is not None:
            value[:, :, len(slots) * tokens :].copy_(pointer_values[layer])
        layer_values.append(value)

    # (1, L, C), shared by the group; token-major so that every later op keeps a contiguous layout
    curr = features.image_embed.flatten(2).transpose(1, 2).contiguous()
    curr_pos = features.image_pos.flatten(2).transpose(1, 2).contiguous()
    fused = attention.forward_projected(curr, curr_pos, keys, layer_values)  # (B, L, C)
    return fused.transpose(1, 2).reshape(batch, channels, height, width)
