"""Small hand-made tracking results shared by the lineage and GEFF tests (no model)."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from sam2_model.tracking import Lineage, Track


def division_stack() -> Tuple[np.ndarray, Lineage]:
    """Labels (4, 20, 20) and lineage: track 1 (frames 0-1) divides into 2 and 3 (frames 2-3); track 4 is absent on
    frame 2 (a gap)."""
    labels = np.zeros((4, 20, 20), np.uint32)
    labels[0:2, 2:8, 2:8] = 1
    labels[2:4, 2:5, 2:8] = 2
    labels[2:4, 5:8, 2:8] = 3
    labels[[0, 1, 3], 12:16, 12:16] = 4
    lineage = Lineage([Track(1, 0, 1, 0, "divided"), Track(2, 2, 3, 1, "end of stack"),
                       Track(3, 2, 3, 1, "end of stack"), Track(4, 0, 3, 0, "end of stack")])
    return labels, lineage
