"""Prompts sampled from ground truth, as a simulated user would give them.

Coordinates are model-input pixels (x, y), labels follow SAM: 1 positive, 0 negative, 2/3 box corners.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy import ndimage


def _interior_weights(mask: np.ndarray) -> np.ndarray:
    """Sampling weights inside ``mask`` (H, W) that favour pixels away from the boundary, as people click."""
    distance = ndimage.distance_transform_edt(mask)
    return distance.astype(np.float64) ** 2


def sample_click(mask: np.ndarray, rng: np.random.Generator) -> Tuple[float, float]:
    """One positive click (x, y) inside ``mask`` (H, W) bool, weighted towards its interior."""
    weights = _interior_weights(mask).ravel()
    if weights.sum() <= 0:
        raise ValueError("cannot click on an empty mask")
    index = int(rng.choice(weights.size, p=weights / weights.sum()))
    y, x = divmod(index, mask.shape[1])
    return float(x) + 0.5, float(y) + 0.5


def sample_box(mask: np.ndarray, rng: np.random.Generator, jitter: float = 0.1) -> np.ndarray:
    """The bounding box of ``mask`` as ((x0, y0), (x1, y1)) with each side moved by up to ``jitter`` x its size."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    w, h = x1 - x0, y1 - y0
    noise = rng.normal(0.0, jitter / 2, 4).clip(-jitter, jitter) * np.array([w, h, w, h])
    box = np.array([x0, y0, x1, y1], dtype=np.float64) + noise
    size = mask.shape[1], mask.shape[0]
    box[[0, 2]] = box[[0, 2]].clip(0, size[0])
    box[[1, 3]] = box[[1, 3]].clip(0, size[1])
    return box.reshape(2, 2)


def corrective_click(pred: np.ndarray, gt: np.ndarray, rng: np.random.Generator) -> Tuple[float, float, int]:
    """A click on the error of ``pred`` vs ``gt`` (both (H, W) bool): (x, y, label).

    The click goes into the larger error region (missed object -> positive, false positive ->
    negative), towards that region's interior. With no error, a positive click inside ``gt``.
    """
    missed, extra = gt & ~pred, pred & ~gt
    region, label = (missed, 1) if missed.sum() >= extra.sum() else (extra, 0)
    if region.sum() == 0:
        if gt.sum() == 0:
            raise ValueError("cannot correct an empty prediction of an empty object")
        x, y = sample_click(gt, rng)
        return x, y, 1
    labelled, count = ndimage.label(region)
    sizes = ndimage.sum(region, labelled, index=range(1, count + 1))
    largest = labelled == (int(np.argmax(sizes)) + 1)
    x, y = sample_click(largest, rng)
    return x, y, label

