"""Mask post-processing that the reference does only with its CUDA extension; here on any device."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

HOLE_FILL_LOGIT = 0.1  # value written into filled holes (just above the 0 threshold), as the reference
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def fill_holes(logits: torch.Tensor, max_area: int) -> torch.Tensor:
    """Fill background regions of at most ``max_area`` pixels inside masks.

    logits: (N, 1, H, W). A "hole" is an 8-connected component of pixels with logit <= 0 whose area
    is <= max_area (as SAM 2's ``fill_holes_in_mask_scores`` defines it, border components included);
    its pixels are set to 0.1. Other pixels are returned unchanged.
    """
    if max_area <= 0:
        return logits
    background = (logits <= 0).cpu().numpy()
    holes = np.zeros_like(background)
    for index in range(background.shape[0]):
        labelled, count = ndimage.label(background[index, 0], structure=_EIGHT_CONNECTED)
        if count == 0:
            continue
        areas = np.bincount(labelled.ravel())
        small = areas <= max_area
        small[0] = False  # label 0 is the foreground
        holes[index, 0] = small[labelled]
    if not holes.any():
        return logits
    mask = torch.from_numpy(holes).to(logits.device)
    return torch.where(mask, torch.tensor(HOLE_FILL_LOGIT, dtype=logits.dtype, device=logits.device), logits)
