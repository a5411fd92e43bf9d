"""Sample data: a synthetic fluorescence nuclei time-lapse, generated on the fly, with its ground truth."""

from __future__ import annotations

from typing import Any, List, Tuple

import numpy as np

SAMPLE_SEED = 900_007  # a held-out seed: the demo model never trained on it


def synthetic_timelapse() -> List[Tuple[Any, dict, str]]:
    """(30, 256, 256) uint16 nuclei that drift, deform, touch, divide, enter and leave; and their labels."""
    from sam2_model.synthetic import make_timelapse

    movie = make_timelapse(num_frames=30, shape=(256, 256), seed=SAMPLE_SEED)
    low, high = (float(v) for v in np.percentile(movie.image, (0.5, 99.8)))
    return [
        (movie.image, {"name": "synthetic nuclei", "colormap": "gray", "contrast_limits": (low, high)}, "image"),
        (movie.labels, {"name": "ground truth", "opacity": 0.4, "visible": False,
                        "metadata": {"parents": movie.parents}}, "labels"),
    ]
