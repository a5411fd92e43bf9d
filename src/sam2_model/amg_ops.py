"""Mask and box operations of the automatic mask generator, in plain torch / numpy / scipy.

Conventions (those of SAM's automatic mask generator, so results compare one to one):

* boxes are XYXY with *inclusive* pixel maxima (a one-pixel mask at (x, y) has box (x, y, x, y));
  an empty mask has box (0, 0, 0, 0);
* box IoU treats boxes as continuous rectangles, area = (x1 - x0) * (y1 - y0);
* crop boxes are XYXY with exclusive maxima (slices ``image[y0:y1, x0:x1]``).

No torchvision: :func:`batched_nms` is a greedy NMS on a dense IoU matrix.
"""

from __future__ import annotations

import math
from itertools import product
from typing import List, Sequence, Tuple

import numpy as np
import torch
from scipy import ndimage

CropBox = List[int]  # [x0, y0, x1, y1], exclusive maxima

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def point_grid(n_per_side: int) -> np.ndarray:
    """(n * n, 2) (x, y) in [0, 1]: cell centres of an n x n grid, row by row (x varies fastest)."""
    if n_per_side < 1:
        raise ValueError(f"points_per_side must be a positive integer, got {n_per_side}")
    half_step = 1.0 / (2 * n_per_side)
    centres = np.linspace(half_step, 1.0 - half_step, n_per_side)
    xs, ys = np.meshgrid(centres, centres, indexing="xy")
    return np.stack([xs.reshape(-1), ys.reshape(-1)], axis=1)


def layer_point_grids(n_per_side: int, n_layers: int, downscale: int) -> List[np.ndarray]:
    """One normalised grid per crop layer 0..n_layers; layer i has int(n / downscale**i) points a side."""
    return [point_grid(int(n_per_side / (downscale**layer))) for layer in range(n_layers + 1)]


def grid_in_pixels(grid: np.ndarray, crop_hw: Tuple[int, int]) -> np.ndarray:
    """A normalised grid (K, 2) (x, y) in [0, 1] -> (K, 2) (x, y) clicks on a crop of ``crop_hw`` (h, w) px, scaled by
    (w, h) as the reference scales it. The last point of n a side lies at S - S / (2 n) on a side of S px: past the
    last pixel's edge (S - 0.5) once S <= n (y = 23.625 on a 24 px side with 32 points), where the reference clicks
    it too (:meth:`~sam2_model.image_predictor.ImagePredictor.predict_grid` takes such clicks)."""
    scale = np.array([crop_hw[1], crop_hw[0]], dtype=np.float64)
    return np.asarray(grid, dtype=np.float64) * scale[None]


def crop_boxes(image_hw: Tuple[int, int], n_layers: int, overlap_ratio: float) -> Tuple[List[CropBox], List[int]]:
    """Crop boxes (XYXY, exclusive maxima) and their layer indices.

    Layer 0 is the whole image; layer i >= 1 tiles the image with (2**i)**2 overlapping crops whose
    overlap is ``overlap_ratio * short_side * 2 / 2**i`` pixels (rounded down). Crops of one layer
    are listed column by column (x0 outer, y0 inner).
    """
    height, width = image_hw
    boxes: List[CropBox] = [[0, 0, width, height]]
    layers = [0]
    short_side = min(height, width)
    for layer in range(1, n_layers + 1):
        per_side = 2**layer
        overlap = int(overlap_ratio * short_side * (2 / per_side))
        crop_w = int(math.ceil((overlap * (per_side - 1) + width) / per_side))
        crop_h = int(math.ceil((overlap * (per_side - 1) + height) / per_side))
        starts_x = [int((crop_w - overlap) * i) for i in range(per_side)]
        starts_y = [int((crop_h - overlap) * i) for i in range(per_side)]
        for x0, y0 in product(starts_x, starts_y):
            boxes.append([x0, y0, min(x0 + crop_w, width), min(y0 + crop_h, height)])
            layers.append(layer)
    return boxes, layers


def stability_score(logits: torch.Tensor, threshold: float, offset: float) -> torch.Tensor:
    """(..., H, W) logits -> (...) IoU of the masks ``logits > threshold + offset`` and ``> threshold - offset``.

    A mask empty at the low cutoff gives NaN (0 / 0), which fails every ``>=`` filter.
    """
    inner = (logits > threshold + offset).flatten(-2).sum(-1, dtype=torch.int64)
    outer = (logits > threshold - offset).flatten(-2).sum(-1, dtype=torch.int64)
    return inner.to(torch.float32) / outer.to(torch.float32)


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """(..., H, W) bool -> (..., 4) int64 XYXY with inclusive maxima; (0, 0, 0, 0) for an empty mask."""
    if masks.numel() == 0:
        return torch.zeros(masks.shape[:-2] + (4,), dtype=torch.int64, device=masks.device)
    height, width = masks.shape[-2:]
    rows = masks.any(dim=-1)  # (..., H)
    cols = masks.any(dim=-2)  # (..., W)

    def extent(present: torch.Tensor, size: int) -> Tuple[torch.Tensor, torch.Tensor]:
        index = torch.arange(size, device=masks.device)
        last = torch.where(present, index, -1).amax(dim=-1)
        first = torch.where(present, index, size).amin(dim=-1)
        return first, last

    top, bottom = extent(rows, height)
    left, right = extent(cols, width)
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    empty = (right < left) | (bottom < top)
    return torch.where(empty[..., None], torch.zeros_like(boxes), boxes)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) XYXY -> (N,) (x1 - x0) * (y1 - y0)."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 4) XYXY float -> (N, N) pairwise IoU (NaN where both boxes have zero area)."""
    area = box_area(boxes)
    top_left = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    bottom_right = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area[:, None] + area[None, :] - inter)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression within each group.

    boxes (N, 4) XYXY, scores (N,), groups (N,) integer labels. Boxes are visited by decreasing
    score (ties keep their input order); a box is dropped when its IoU with a kept box of the same
    group is > ``iou_threshold``. Returns the kept indices (K,) int64, by decreasing score.
    """
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    sorted_boxes = boxes[order].to(torch.float32)
    overlaps = box_iou(sorted_boxes) > iou_threshold
    overlaps &= groups[order][:, None] == groups[order][None, :]
    overlaps = overlaps.cpu().numpy()
    count = overlaps.shape[0]
    keep = np.ones(count, dtype=bool)
    for i in range(count):
        if keep[i]:
            keep[i + 1 :] &= ~overlaps[i, i + 1 :]
    return order[torch.from_numpy(keep).to(order.device)]


def near_crop_edge(
    boxes: torch.Tensor, crop_box: Sequence[int], image_box: Sequence[int], atol: float = 20.0
) -> torch.Tensor:
    """(N, 4) boxes in crop coordinates -> (N,) bool: some side lies within ``atol`` of a crop edge
    that is not also an image edge (such masks are likely cut by the crop)."""
    offset = torch.tensor([crop_box[0], crop_box[1], crop_box[0], crop_box[1]], device=boxes.device)
    placed = (boxes + offset).to(torch.float32)
    crop = torch.tensor(crop_box, dtype=torch.float32, device=boxes.device)[None]
    image = torch.tensor(image_box, dtype=torch.float32, device=boxes.device)[None]
    at_crop = (placed - crop).abs() <= atol
    at_image = (placed - image).abs() <= atol
    return (at_crop & ~at_image).any(dim=1)


def uncrop_masks(masks: torch.Tensor, crop_box: Sequence[int], height: int, width: int) -> torch.Tensor:
    """(N, h, w) masks of a crop -> (N, H, W), zero outside the crop."""
    x0, y0, x1, y1 = crop_box
    if (x0, y0, x1, y1) == (0, 0, width, height):
        return masks
    full = torch.zeros(masks.shape[:-2] + (height, width), dtype=masks.dtype, device=masks.device)
    full[..., y0:y1, x0:x1] = masks
    return full


def remove_small_regions(mask: np.ndarray, min_area: float, mode: str) -> Tuple[np.ndarray, bool]:
    """Fill holes (``mode="holes"``) or drop islands (``"islands"``) smaller than ``min_area`` pixels.

    mask (H, W) bool; components are 8-connected. Holes are connected components of the background
    (including any touching the border). Islands mode keeps the largest island if all are small.
    Returns the new mask and whether it changed.
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    holes = mode == "holes"
    regions, count = ndimage.label(~mask if holes else mask, structure=_EIGHT_CONNECTED)
    if count == 0:
        return mask, False
    sizes = np.bincount(regions.reshape(-1), minlength=count + 1)[1:]
    small = sizes < min_area
    if not small.any():
        return mask, False
    if holes:
        return mask | small[regions - 1] & (regions > 0), True
    keep = ~small
    if not keep.any():
        keep[int(np.argmax(sizes))] = True
    return (regions > 0) & keep[regions - 1], True
