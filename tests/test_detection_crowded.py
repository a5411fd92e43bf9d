"""The crowded-frame warning of blob seeding follows what predicts its cost and implausibility: the seeds' discs at
the smallest cell diameter against the frame's area (and, whatever the frame, more than MANY_SEEDS seeds). Before, a
flat 1000 seeds: MSC's frames of 912-929 seeds (8-9 cells; minutes a frame) and a small frame of noise did not warn.
"""

from __future__ import annotations

import warnings
from typing import List

import numpy as np
import pytest
from scipy import ndimage

import sam2_model as sm
from sam2_model.seeding import blob_points
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import detection
from sam2_model.tracking.detection import MANY_SEEDS, make_detector


def noise(shape, seed: int = 0) -> np.ndarray:
    """A frame of smoothed camera noise (no cell at all), uint16."""
    image = np.random.default_rng(seed).normal(1000.0, 50.0, shape)
    return ndimage.gaussian_filter(image, 1.0).astype(np.uint16)


def seeding_warnings(frame: np.ndarray, cell_diameter=(8, 40)) -> List[str]:
    """The warnings blob seeding gives on ``frame`` (stopped once its seeds are found: no seed is clicked)."""
    detector = make_detector(sm.build_model("demo", device="cpu"), cell_diameter=cell_diameter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        steps = detector.steps(frame)
        for kind, done, total in steps:
            if kind == "seeding" and done >= 2 * total // 3:
                break
        steps.close()
    assert len(detector.points), "blob seeding found no seed"
    return [str(w.message) for w in caught if "candidate cells" in str(w.message)]


def test_noise_at_a_small_diameter_warns_below_many_seeds():
    """Noise of 240 x 240 at 8-40 px: ~450 seeds (under MANY_SEEDS: no warning before) covering ~40 % of the frame."""
    frame = noise((240, 240))
    count = len(blob_points(frame, cell_diameter=(8, 40)))
    assert 300 < count < MANY_SEEDS, count
    said = seeding_warnings(frame)
    assert len(said) == 1 and said[0].startswith(f"{count} candidate cells (blobs 8-40 px wide) on one 240 x 240 "
                                                 "frame"), said
    assert "larger minimum diameter" in said[0] and "--cell-diameter MIN MAX" in said[0]


def test_a_few_cells_do_not_warn():
    movie = make_timelapse(num_frames=1, shape=(128, 128), num_cells=6, seed=900_719, divisions=False)
    assert seeding_warnings(movie.image[0], cell_diameter=(8, 30)) == []


@pytest.mark.parametrize("count, shape, crowded", [
    (912, (416, 496), True),  # MSC halved at 8-40 px: 22 % of the frame (before F3: no warning)
    (234, (256, 256), True),  # E1's 256 x 256 MSC crop of 4 cells at 8-40 px: 18 %, 35x slower than at 20-80 px
    # (its frames: 228-260 blobs; under the old floor of 300 it gave no advice)
    (279, (256, 256), True),  # 255+ real nuclei near the smallest diameter: 21 %; by count and cover no different
    # from MSC's texture, and 279 clicks a frame are slow too (the advice: change the range only if cells are fewer)
    (450, (240, 240), True),  # noise
    (199, (256, 256), False),  # 15.3 %, but under CROWDED_SEEDS: quick enough not to say
    (150, (128, 128), False),  # a small frame (a 128 x 128 crop of MSC: 141-157 blobs, 46 %): few clicks
    (43, (256, 256), False),  # a synthetic test movie's most: 3.3 %
    (900, (2048, 2048), False),  # many real cells on a large frame: 1 %
    (1001, (4096, 4096), True),  # more than MANY_SEEDS clicks: slow whatever the frame
    (5, (64, 64), False),  # a few cells on a small frame
])
def test_crowded_frame_weighs_seeds_against_the_frames_area(count, shape, crowded):
    assert detection.crowded_frame(count, (8, 40), shape) is crowded
