"""Where a simulated user clicks an object: its most interior pixel.

The held-out evaluations click each object there once (:mod:`.evaluation`), automatic tracking's detection puts its
negative clicks on crowded neighbours there (:mod:`.tracking.detection`), and the fine-tuning stack check clicks
there too (:mod:`.train.stack_check`). A light module (NumPy and SciPy only), so that none of them has to import the
others for it.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy import ndimage


def click_point(mask: np.ndarray) -> Tuple[float, float]:
    """(x, y) of the pixel of ``mask`` (H, W) farthest from its boundary (the frame's edge counts as boundary); the
    first such pixel in row-major order where several are; (0.0, 0.0) for an empty mask.

    Measured in the object's bounding box grown by 1 px, which gives the whole frame's distances (the nearest
    background pixel of any pixel inside lies in that box), so it costs the object's size, not the frame's."""
    mask = np.asarray(mask, dtype=bool)
    box = ndimage.find_objects(mask.view(np.uint8))
    if not box:
        return 0.0, 0.0
    rows, cols = box[0]
    distance = ndimage.distance_transform_edt(np.pad(mask[rows, cols], 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return float(x + cols.start), float(y + rows.start)
