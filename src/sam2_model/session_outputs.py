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
# to_labels upsamples every object up to this many full-resolution pixels in all, else only the objects that meet
# (winners): on 2 CPU cores (best of 5) winners took 18 ms for 5 objects on 256 x 256 frames where upsampling all took
# 1 ms, and 80 / 180 ms for 60 / 120 objects on 512 x 512 frames where upsampling all took 450 / 780 ms
_SMALL = 1 << 20


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
    """-> (H, W) uint32: the id of the object with the highest positive logit, 0 where none is positive (a tie goes
    to the first object). The same with or without non-overlap clamping, and bit for bit the labels of
    :func:`to_logits`' (n_obj, H, W) array, made by :func:`winners` without it: only objects that meet at one place
    are upsampled apart, so the cost grows little with the number of objects (up to ``_SMALL`` pixels in all, every
    object is upsampled, in chunks: cheaper there)."""
    if low_res.shape[0] == 0:
        return np.zeros(size, np.uint32)
    if low_res.shape[0] * size[0] * size[1] <= _SMALL:  # a few objects on a small frame: upsampling all is cheaper
        _, best, index = _winners(low_res, size)
        return labels_of_winners(torch.where(best > 0, index, -1).cpu().numpy(), obj_ids)
    return labels_of_winners(winners(low_res, size), obj_ids)


def labels_of_winners(index: np.ndarray, obj_ids: Sequence[int]) -> np.ndarray:
    """(H, W) object indices (:func:`winners`: -1 where none) -> (H, W) uint32 ids (0 where none)."""
    ids = np.asarray(list(obj_ids), dtype=np.int64)
    if not len(ids):
        return np.zeros(np.shape(index), np.uint32)
    return np.where(index >= 0, ids[np.maximum(index, 0)], 0).astype(np.uint32)


def winners(low_res: torch.Tensor, size: Tuple[int, int]) -> np.ndarray:
    """-> (H, W) int64 numpy: at each pixel the index of the object whose full-resolution logit (:func:`to_logits`,
    the same bilinear upsampling) is the highest there where that logit is > 0, -1 where no object's is; a tie goes
    to the first object (as ``argmax``). The same with or without non-overlap clamping (its winner keeps its logit,
    the others drop to <= -10), and objects absent from the frame (-1024 everywhere) never win.

    Without an (n_obj, H, W) array: bilinear upsampling (``align_corners=False``) gives each output pixel a weighted
    sum, with weights >= 0, of the 2 x 2 block of low-res pixels around it, so an object's logit can be > 0 only
    where that block holds one of its positive low-res pixels, and then the whole block lies within one low-res pixel
    of it. Objects whose positive pixels, each grown by one pixel, do not meet share one low-res plane (a layer; the
    rest of it -1024), and each layer is upsampled once: where an upsampled layer is > 0 its block holds one object's
    own values only, so the value is that object's :func:`to_logits` value bit for bit (the same interpolation of the
    same four values with the same weights); a second plane per layer, of object indices, upsampled the same way and
    rounded, says whose it is. Touching or overlapping objects go to different layers, so the work grows with how
    many objects meet at one place, not with how many there are.
    """
    num = int(low_res.shape[0])
    if num == 0:
        return np.full(size, -1, np.int64)
    device = low_res.device
    values = low_res[:, 0].float()
    positive = values > 0
    grown = (F.max_pool2d(positive[:, None].float(), 3, stride=1, padding=1)[:, 0] > 0).cpu().numpy()
    host = values.cpu().numpy()
    planes: List[np.ndarray] = []  # per layer: the low-res logits of its objects, -1024 elsewhere
    owners: List[np.ndarray] = []  # per layer: the index of the object of each pixel taken, -1 elsewhere
    taken: List[np.ndarray] = []  # per layer: the pixels taken (its objects' positive pixels grown by one)
    members: List[List[int]] = []
    for index in np.flatnonzero(positive.flatten(1).any(1).cpu().numpy()):
        rows, cols = np.flatnonzero(grown[index].any(1)), np.flatnonzero(grown[index].any(0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        mine = grown[index][box]
        layer = next((k for k, used in enumerate(taken) if not (used[box] & mine).any()), len(taken))
        if layer == len(taken):
            planes.append(np.full(host.shape[1:], NO_OBJECT_SCORE, np.float32))
            owners.append(np.full(host.shape[1:], -1.0, np.float32))
            taken.append(np.zeros(host.shape[1:], bool))
            members.append([])
        planes[layer][box][mine] = host[index][box][mine]
        owners[layer][box][mine] = index
        taken[layer][box] |= mine
        members[layer].append(int(index))
    best = torch.full(size, -torch.inf, device=device)
    out = torch.full(size, num, dtype=torch.int32, device=device)
    for part in _chunks(len(planes), size):
        logits = F.interpolate(torch.from_numpy(np.stack(planes[part])[:, None]).to(device), size=size,
                               mode="bilinear", align_corners=False)[:, 0]
        top = logits.max(dim=0).values
        level = logits == top  # the layers holding the highest value at each pixel (ties: the first object wins)
        alone = [k for k in range(part.start, part.stop) if len(members[k]) == 1]
        shared = [k for k in range(part.start, part.stop) if len(members[k]) > 1]
        first = torch.full(size, num, dtype=torch.int32, device=device)
        if alone:
            index = torch.tensor([members[k][0] for k in alone], dtype=torch.int32, device=device)[:, None, None]
            first = torch.where(level[[k - part.start for k in alone]], index, first).amin(dim=0)
        if shared:  # layers of several objects: whose pixel it is, upsampled the same way (four equal values)
            owner = torch.from_numpy(np.stack([owners[k] for k in shared])[:, None]).to(device)
            whose = (F.interpolate(owner, size=size, mode="bilinear", align_corners=False)[:, 0] + 0.5).int()
            whose = torch.where(level[[k - part.start for k in shared]], whose, first).amin(dim=0)
            first = torch.minimum(first, whose)
        better = (top > best) | ((top == best) & (first < out))
        best = torch.where(better, top, best)
        out = torch.where(better, first, out)
    return torch.where(best > 0, out, torch.full_like(out, -1)).cpu().numpy().astype(np.int64)


def convert(
    low_res: torch.Tensor, size: Tuple[int, int], output: str, non_overlap: bool, obj_ids: Sequence[int]
) -> np.ndarray:
    """Dispatch on ``output`` ("logits", "masks" or "labels")."""
    if output == "logits":
        return to_logits(low_res, size, non_overlap)
    if output == "masks":
        return to_masks(low_res, size, non_overlap)
    return to_labels(low_res, size, obj_ids)
