"""DAVIS 2017 video-object-segmentation metrics: region similarity J and boundary F.

Definitions follow the DAVIS 2017 evaluation (``davis2017-evaluation``):

* J (region similarity) is the intersection over union of two binary masks,
  with J = 1 when both masks are empty.
* F (contour accuracy) is the boundary F-measure.  The boundary map of a binary
  mask is computed at the mask's own resolution like DAVIS ``seg2bmap``: a pixel
  is a boundary pixel when its value differs from its right, bottom or
  bottom-right neighbour (last row / column handled as in DAVIS, the
  bottom-right corner pixel is never a boundary).  A predicted boundary pixel is
  matched when a ground-truth boundary pixel lies within ``radius`` pixels
  (binary dilation with ``skimage.morphology.disk(radius)``) and vice versa;
  ``radius = ceil(bound_th * sqrt(H**2 + W**2))`` for ``bound_th < 1``, or
  ``bound_th`` itself when ``bound_th >= 1``.
  precision = matched predicted / predicted boundary pixels, recall likewise,
  F = 2PR / (P + R) (0 when P + R == 0).  Both boundaries empty -> F = 1;
  exactly one empty -> F = 0.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage
from skimage.morphology import disk

__all__ = [
    "region_similarity",
    "boundary_radius",
    "seg2bmap",
    "boundary_f_measure",
    "j_and_f",
    "evaluate_labels",
]


def _as_bool_2d(mask, name: str) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (H, W), got shape {arr.shape}")
    return arr.astype(bool, copy=False)


def _check_same_shape(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: pred {a.shape} vs gt {b.shape}")


def region_similarity(pred, gt) -> float:
    """Jaccard index (IoU) of two binary masks; 1.0 when both are empty."""
    p = _as_bool_2d(pred, "pred")
    g = _as_bool_2d(gt, "gt")
    _check_same_shape(p, g)
    union = np.count_nonzero(p | g)
    if union == 0:
        return 1.0
    return float(np.count_nonzero(p & g) / union)


def boundary_radius(shape, bound_th: float = 0.008) -> int:
    """Matching tolerance in pixels for an image of ``shape`` (DAVIS convention)."""
    if bound_th >= 1:
        return int(math.ceil(bound_th))
    h, w = int(shape[0]), int(shape[1])
    return int(math.ceil(bound_th * math.sqrt(h * h + w * w)))


def seg2bmap(mask) -> np.ndarray:
    """Boundary map of a binary mask at the same resolution (DAVIS ``seg2bmap``)."""
    seg = _as_bool_2d(mask, "mask")
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def _dilate(bmap: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0 or not bmap.any():
        return bmap
    return ndimage.binary_dilation(bmap, structure=disk(radius).astype(bool))


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    """Rows and columns (slices) of the smallest box holding every True pixel of a (H, W) mask with any."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def boundary_f_measure(pred, gt, bound_th: float = 0.008, radius: int | None = None) -> float:
    """DAVIS boundary F-measure of two binary masks.

    ``radius`` (pixels) overrides the tolerance derived from ``bound_th``.
    """
    p = _as_bool_2d(pred, "pred")
    g = _as_bool_2d(gt, "gt")
    _check_same_shape(p, g)
    if radius is None:
        radius = boundary_radius(p.shape, bound_th)
    radius = int(radius)
    if radius < 0:
        raise ValueError("radius must be >= 0")
    pb = seg2bmap(p)
    gb = seg2bmap(g)
    n_p = int(np.count_nonzero(pb))
    n_g = int(np.count_nonzero(gb))
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    # Only the bounding box of the two boundary maps: every boundary pixel lies in it, and the dilation at a pixel
    # of the box depends only on boundary pixels within the radius, all in the box (outside it there are none,
    # as outside the frame), so the counts equal those of the whole frame.
    box = _bounding_box(pb | gb)
    pb, gb = pb[box], gb[box]
    precision = np.count_nonzero(pb & _dilate(gb, radius)) / n_p
    recall = np.count_nonzero(gb & _dilate(pb, radius)) / n_g
    if precision + recall == 0:
        return 0.0
    return float(2.0 * precision * recall / (precision + recall))


def _frames(pred_seq, gt_seq) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred_seq)
    g = np.asarray(gt_seq)
    if p.ndim != 3 or g.ndim != 3:
        raise ValueError(f"sequences must be (T, H, W); got {p.shape} and {g.shape}")
    _check_same_shape(p, g)
    return p, g


def j_and_f(pred_seq, gt_seq, bound_th: float = 0.008) -> dict:
    """Mean J, mean F and their average JF over the frames of two (T, H, W) mask stacks."""
    p, g = _frames(pred_seq, gt_seq)
    if p.shape[0] == 0:
        raise ValueError("empty sequence")
    js = [region_similarity(p[t], g[t]) for t in range(p.shape[0])]
    fs = [boundary_f_measure(p[t], g[t], bound_th) for t in range(p.shape[0])]
    j = float(np.mean(js))
    f = float(np.mean(fs))
    return {"J": j, "F": f, "JF": (j + f) / 2.0}


def evaluate_labels(
    pred_labels,
    gt_labels,
    object_map: dict[int, int] | None = None,
    bound_th: float = 0.008,
    exclude_first_last: bool = False,
) -> dict:
    """Per-object DAVIS metrics for two (T, H, W) integer label stacks.

    Objects are the non-zero ids of ``gt_labels``.  ``object_map`` maps predicted
    ids to ground-truth ids (several predicted ids may map to one gt id: their
    masks are merged); by default a predicted id is compared with the same gt id.
    Predicted ids that map to no gt object are ignored; a gt object with no
    prediction scores J = 0 / F = 0 on the frames where it is present.
    ``exclude_first_last`` drops the first and last frames from scoring like the
    DAVIS 2017 semi-supervised benchmark (objects are still those of the whole
    sequence).

    Returns ``{"objects": {gt_id: {"J", "F", "JF"}}, "J", "F", "JF", "num_objects"}``
    where the top-level values are means over objects (NaN when there are none).
    """
    p, g = _frames(pred_labels, gt_labels)
    gt_ids = [int(i) for i in np.unique(g) if i != 0]  # objects of the whole sequence
    if exclude_first_last:
        if p.shape[0] < 3:
            raise ValueError("exclude_first_last needs at least 3 frames")
        p, g = p[1:-1], g[1:-1]
    if object_map is None:
        object_map = {i: i for i in (int(v) for v in np.unique(p)) if i != 0}
    sources: dict[int, list[int]] = {i: [] for i in gt_ids}
    for pid, gid in object_map.items():
        if int(gid) in sources and int(pid) != 0:
            sources[int(gid)].append(int(pid))

    objects: dict[int, dict[str, float]] = {}
    for gid in gt_ids:
        gt_mask = g == gid
        pids = sources[gid]
        pred_mask = np.isin(p, pids) if pids else np.zeros_like(gt_mask)
        objects[gid] = j_and_f(pred_mask, gt_mask, bound_th)

    if objects:
        j = float(np.mean([o["J"] for o in objects.values()]))
        f = float(np.mean([o["F"] for o in objects.values()]))
        jf = (j + f) / 2.0
    else:
        j = f = jf = float("nan")
    return {"objects": objects, "J": j, "F": f, "JF": jf, "num_objects": len(objects)}
