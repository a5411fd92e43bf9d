"""Which past frames a frame attends to: conditioning frames, recent frames, object pointers.

Pure bookkeeping on frame indices, kept apart from the tensors so it can be tested on its own.
The rules are those of SAM 2's memory bank (paper, section 4): all (or the closest
``max_cond_frames``) prompted frames, the ``num_maskmem - 1`` most recent unprompted frames in the
direction of travel, and object pointers from up to ``max_obj_ptrs`` frames in the past.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple, TypeVar

import torch

T = TypeVar("T")


def split_conditioning_frames(
    frame_idx: int, cond_frames: Mapping[int, T], max_cond_frames: int
) -> Tuple[Dict[int, T], Dict[int, T]]:
    """Split prompted frames into those attended to and the rest.

    With ``max_cond_frames == -1`` (or few enough frames) all are selected. Otherwise the closest
    prompted frame before ``frame_idx``, the closest at or after it, then the temporally closest
    others until ``max_cond_frames`` are chosen. Returns (selected, unselected), both keyed by frame.
    """
    if max_cond_frames == -1 or len(cond_frames) <= max_cond_frames:
        return dict(cond_frames), {}
    if max_cond_frames < 2:
        raise ValueError("max_cond_frames must be -1 or at least 2")
    chosen: List[int] = []
    before = [t for t in cond_frames if t < frame_idx]
    after = [t for t in cond_frames if t >= frame_idx]
    if before:
        chosen.append(max(before))
    if after:
        chosen.append(min(after))
    rest = sorted((t for t in cond_frames if t not in chosen), key=lambda t: abs(t - frame_idx))
    chosen.extend(rest[: max_cond_frames - len(chosen)])
    selected = {t: cond_frames[t] for t in chosen}
    unselected = {t: v for t, v in cond_frames.items() if t not in selected}
    return selected, unselected


def recent_memory_frames(frame_idx: int, num_maskmem: int, reverse: bool, stride: int = 1) -> List[Tuple[int, int]]:
    """(temporal slot, frame index) of the recent-memory slots for ``frame_idx``.

    Slot ``num_maskmem - 1`` is the previous frame in the direction of travel; earlier slots step
    back by ``stride`` frames from a stride-aligned anchor, as the reference does at evaluation.
    Slot 0 is reserved for conditioning frames and not listed here.
    """
    direction = -1 if reverse else 1
    slots = []
    for slot in range(1, num_maskmem):
        distance = num_maskmem - slot  # frames before the current one
        if distance == 1:
            frame = frame_idx - direction
        elif not reverse:
            anchor = ((frame_idx - 2) // stride) * stride
            frame = anchor - (distance - 2) * stride
        else:
            anchor = -(-(frame_idx + 2) // stride) * stride
            frame = anchor + (distance - 2) * stride
        slots.append((slot, frame))
    return slots


def sine_encoding_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """Transformer sine encoding of scalar positions: (N,) -> (N, dim), [sin | cos] halves."""
    half = dim // 2
    exponent = 2 * (torch.arange(half, dtype=torch.float32, device=positions.device) // 2) / half
    angles = positions.unsqueeze(-1) / (temperature**exponent)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


@dataclass(frozen=True)
class PointerSelection:
    """Object pointers a frame attends to: signed or absolute temporal offsets and source frames."""

    offsets: Tuple[int, ...]
    frames: Tuple[int, ...]
    max_offset: int  # normaliser of the temporal encoding (max pointers in encoder - 1)


def select_object_pointers(
    frame_idx: int,
    selected_cond: Mapping[int, object],
    has_pointer: Mapping[int, object],
    num_frames: Optional[int],
    max_obj_ptrs: int,
    reverse: bool,
    only_past: bool,
    signed: bool,
) -> PointerSelection:
    """Choose the frames whose object pointers are attended to, with their temporal offsets.

    ``selected_cond``: the conditioning frames chosen by :func:`split_conditioning_frames`;
    ``has_pointer``: unprompted (and unselected prompted) frames that hold a pointer.
    """
    limit = max_obj_ptrs if num_frames is None else min(num_frames, max_obj_ptrs)
    direction = -1 if reverse else 1
    offsets: List[int] = []
    frames: List[int] = []
    for t in selected_cond:
        if only_past and (t < frame_idx if reverse else t > frame_idx):
            continue
        offsets.append((frame_idx - t) * direction if signed else abs(frame_idx - t))
        frames.append(t)
    for step in range(1, limit):
        t = frame_idx - direction * step
        if t < 0 or (num_frames is not None and t >= num_frames):
            break
        if t in has_pointer:
            offsets.append(step)
            frames.append(t)
    return PointerSelection(tuple(offsets), tuple(frames), limit - 1)
