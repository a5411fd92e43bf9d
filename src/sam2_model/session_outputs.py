"""Low-res logits of a frame -> what callers receive: full-resolution logits, boolean masks or a label image.

All take ``low_res`` (n_obj, 1, h', w') logits on any device (the SAM heads' 4x-stride output after
hole filling) and the frame's (H, W). Upsampling is bilinear as the reference does it.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .modeling.sam2 import NO_OBJECT_SCORE, keep_highest_object

OUTPUTS = ("logits", "masks", "labels")
_CHUNK_BYTES = 64 * 1024 * 1024  # float32 full-resolution logits upsampled at once for masks/labels


def check_output(output: object) -> str:
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {', '.join(repr(o) for o in OUTPUTS)}; got {output!r}")
    return str(output)


def to_logits(
    low_res: torch.Tensor, size: Tuple[int, int], non_overlap: bool, present: Optional[torch.Tensor] = None
) -> np.ndarray:
    """-> (n_obj, H, W) float32 numpy; with ``non_overlap`` losers of an overlap are clamped to <= -10.

    present: (n_obj,) bool; objects not present are -1024 (``NO_OBJECT_SCORE``) everywhere.
    """
    if present is None or bool(present.all()):
        logits = F.interpolate(low_res.float(), size=size, mode="bilinear", align_corners=False)
    else:
        logits = torch.full((low_res.shape[0], 1, *size), NO_OBJECT_SCORE, device=low_res.device)
        if bool(present.any()):
            logits[present] = F.interpolate(low_res[present].float(), size=size, mode="bilinear", align_corners=False)
    if non_overlap:
        logits = keep_highest_object(logits)
    return logits[:, 0].cpu().numpy()


def _chunks(num: int, size: Tuple[int, int]) -> List[slice]:
    step = max(1, _CHUNK_BYTES // (4 * size[0] * size[1]))
    return [slice(i, min(i + step, num)) for i in range(0, num, step)]


def _winners(low_res: torch.Tensor, size: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Upsample in chunks: (masks (n, H, W) bool, best logit (H, W), index of the best object (H, W)).

    Ties go to the first object, as ``torch.argmax`` breaks them.
    """
    num = low_res.shape[0]
    device = low_res.device
    masks = torch.empty((num, *size), dtype=torch.bool, device=device)
    best = torch.full(size, -torch.inf, device=device)
    index = torch.zeros(size, dtype=torch.long, device=device)
    for part in _chunks(num, size):
        logits = F.interpolate(low_res[part].float(), size=size, mode="bilinear", align_corners=False)[:, 0]
        masks[part] = logits > 0
        value, arg = logits.max(dim=0)
        better = value > best
        best = torch.where(better, value, best)
        index = torch.where(better, arg + part.start, index)
    return masks, best, index


def to_masks(low_res: torch.Tensor, size: Tuple[int, int], non_overlap: bool) -> np.ndarray:
    """-> (n_obj, H, W) bool numpy (logit > 0) without a float32 full-resolution copy of every object."""
    if not non_overlap or low_res.shape[0] == 1:
        masks = torch.cat(
            [F.interpolate(low_res[p].float(), size=size, mode="bilinear", align_corners=False)[:, 0] > 0
             for p in _chunks(low_res.shape[0], size)]
        )
        return masks.cpu().numpy()
    masks, _, index = _winners(low_res, size)
    rows = torch.arange(low_res.shape[0], device=low_res.device)[:, None, None]
    return (masks & (index[None] == rows)).cpu().numpy()


def to_labels(low_res: torch.Tensor, size: Tuple[int, int], obj_ids: Sequence[int]) -> np.ndarray:
    """-> (H, W) uint32: the id of the object with the highest positive logit, 0 where none is positive."""
    if low_res.shape[0] == 0:
        return np.zeros(size, np.uint32)
    _, best, index = _winners(low_res, size)
    ids = torch.as_tensor(list(obj_ids), dtype=torch.long, device=low_res.device)
    labels = torch.where(best > 0, ids[index], torch.zeros_like(index))
    return labels.cpu().numpy().astype(np.uint32)


def labels_from_logits(logits: np.ndarray, obj_ids: Sequence[int]) -> np.ndarray:
    """(n_obj, H, W) full-resolution logits -> (H, W) uint32 by :func:`to_labels`' rule (the highest positive
    logit's id, 0 where none is positive; ties to the first object), for logits already upsampled."""
    if len(logits) == 0:
        return np.zeros(np.shape(logits)[1:], np.uint32)
    best = logits.argmax(axis=0)
    top = np.take_along_axis(logits, best[None], axis=0)[0]
    return np.where(top > 0, np.asarray(list(obj_ids), np.uint32)[best], 0).astype(np.uint32)


def convert(
    low_res: torch.Tensor, size: Tuple[int, int], output: str, non_overlap: bool, obj_ids: Sequence[int]
) -> np.ndarray:
    """Dispatch on ``output`` ("logits", "masks" or "labels")."""
    if output == "logits":
        return to_logits(low_res, size, non_overlap)
    if output == "masks":
        return to_masks(low_res, size, non_overlap)
    return to_labels(low_res, size, obj_ids)
