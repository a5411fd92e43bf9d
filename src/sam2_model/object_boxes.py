"""Each object of a label image, cut to its bounding box: the one pass that lets per-object measures (a width, a
centroid, a click point) cost the object's size rather than the frame's (NumPy and SciPy only)."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
from scipy import ndimage

DENSE_IDS = 1 << 20  # ids up to this are boxed by value (scipy's find_objects keeps a list as long as the largest id)


def object_boxes(plane: np.ndarray) -> List[Tuple[int, np.ndarray, Tuple[slice, slice]]]:
    """(id, mask, box) for each non-zero value of the (Y, X) ``plane``, by increasing value: box the (rows, cols)
    slices of its bounding box, mask (box-shaped, bool) where the plane holds the value; id ``int(value)``."""
    if plane.dtype == bool:
        plane = plane.view(np.uint8)
    small_ids = plane.dtype.kind in "iu" and plane.size and (plane.dtype.kind == "u" or plane.min() >= 0)
    if small_ids and plane.max() <= DENSE_IDS:
        boxes = ndimage.find_objects(plane)  # one pass
        return [(value, plane[box] == value, box) for value, box in enumerate(boxes, start=1) if box is not None]
    values, inverse = np.unique(plane, return_inverse=True)  # negative, huge or non-integer values: numbered 0..k
    inverse = inverse.reshape(plane.shape)
    boxes = ndimage.find_objects(inverse + 1)
    return [(int(value), inverse[box] == k, box) for k, (value, box) in enumerate(zip(values, boxes))
            if value != 0 and box is not None]
