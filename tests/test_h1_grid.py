"""Grid seeding on frames with a side shorter than the grid (H1, session 55).

A grid of ``points_per_side`` cell centres scaled to a side of S px puts its last point at S - S / (2 n): past the
frame's last pixel edge (S - 0.5) once S <= n, e.g. y = 23.625 on a 24 px tall frame with the default 32 x 32 grid.
Our predictor refuses such clicks (``point (x=1, y=23.625) lies outside the 64x24 frame``); the generator now places
them on the frame's last pixel edge. And a grid-seeded run whose diameter range starts under 2 px (which the blob
search refuses) no longer fails when its divisions are moved back at the end.
"""

from __future__ import annotations

import numpy as np
import pytest

from _helpers import dividing_cell
from sam2_model import amg_ops, build_model
from sam2_model.automatic import AutomaticMaskGenerator
from sam2_model.prompt_validation import inside_frame
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking.detection import make_detector
from sam2_model.tracking.divisions import backdate_divisions


@pytest.fixture(scope="module")
def demo_model():
    return build_model("demo", device="cpu")


def _nuclei(shape):
    """A (H, W) uint8 crop of a synthetic nuclei frame, through its nuclei (a wide crop at row 20, a tall one at column
    20)."""
    frame = make_timelapse(num_frames=1, shape=(64, 64), seed=123, dtype="uint8").image[0]
    y0, x0 = (20, 0) if shape[0] < shape[1] else (10, 20)
    return frame[y0:y0 + shape[0], x0:x0 + shape[1]]


def test_grid_points_are_scaled_as_the_reference_scales_them():
    """The generator clicks its grid where the reference does, past the last pixel's edge too (session 56, A6: the
    records then equal Meta's bit for bit, tests/test_a6_grid_parity.py)."""
    grid = amg_ops.point_grid(32)
    for shape in ((24, 64), (64, 24), (100, 37)):
        assert np.array_equal(amg_ops.grid_in_pixels(grid, shape), grid * [shape[1], shape[0]])
    assert amg_ops.grid_in_pixels(grid, (24, 64))[:, 1].max() == 23.625  # past the last row's edge (23.5)


@pytest.mark.parametrize("shape", [(12, 40), (40, 12)])
def test_generator_and_grid_detector_run_on_frames_thinner_than_the_grid(demo_model, shape):
    """Before: "point (x=1.25, y=11.625) lies outside the 40x12 frame" from the generator's own grid (12 px < 16
    points a side); the grid detector of track --auto --seeding grid failed the same way on a 24 x 64 stack."""
    frame = _nuclei(shape)
    records = AutomaticMaskGenerator(demo_model, points_per_side=16, pred_iou_thresh=0.0,
                                     stability_score_thresh=0.0, multimask_output=False).generate(frame)
    assert records and all(r["segmentation"].shape == shape for r in records)
    xy = np.array([r["point_coords"][0] for r in records])
    assert (xy >= 0).all() and (xy <= shape[::-1]).all()  # on the image's span, as the reference's grid
    masks = make_detector(demo_model, seeding="grid", cell_diameter=(4, 10), points_per_side=16)(frame)
    assert all(m.shape == shape for m in masks)


def test_divisions_of_a_range_under_two_pixels_are_judged_by_their_necks():
    """Before: blob_points refused the range (1, 6) ("2 <= min") after every frame was tracked."""
    labels, lineage = dividing_cell()  # the mother on frames 0-1, the daughters from frame 2
    frames = labels.astype(np.float32)
    reads = []

    def read_frame(f: int) -> np.ndarray:
        reads.append(f)
        return frames[f]

    moved = backdate_divisions(labels, lineage, read_frame, (1.0, 6.0), max_frames=2)
    assert moved == 0 and reads == []  # a bar of a mother: no neck, no blob looked for, nothing moved
    assert (lineage[1].begin, lineage[1].end) == (0, 1)


@pytest.mark.parametrize("shape", [(12, 40), (40, 12)])
def test_thin_frames_keep_the_reference_generators_masks_of_clicks_on_the_frame(demo_model, shape):
    """Meta's SAM2AutomaticMaskGenerator clicks its last grid row (or column) 1/8 px past the frame (11.625 on 12 px):
    ours clicks just inside the edge (before: it refused its own grid), and every mask the reference made from a click
    on the frame's pixels is among ours, pixel for pixel (those of the moved clicks may differ a little)."""
    from oracle import reference_model, require_oracle

    require_oracle()
    from test_automatic import _feed_our_model_input, _reference_generator_class

    net = reference_model("demo")
    net.load_state_dict(demo_model.state_dict(), strict=True)
    settings = dict(points_per_side=16, multimask_output=False, pred_iou_thresh=0.5, stability_score_thresh=0.3)
    frame = _nuclei(shape)
    reference = _reference_generator_class()(net, **settings)
    reference.predictor.set_image = _feed_our_model_input(reference.predictor, demo_model.image_size)
    theirs = reference.generate(np.repeat(frame[..., None], 3, axis=-1))
    ours = AutomaticMaskGenerator(demo_model, **settings).generate(frame)
    on_frame = [r for r in theirs if inside_frame(*np.asarray(r["point_coords"][0]), *shape)]
    assert len(on_frame) >= 5 and abs(len(ours) - len(theirs)) <= len(theirs) - len(on_frame)
    for record in on_frame:
        assert any(np.array_equal(record["segmentation"], r["segmentation"]) for r in ours), record["point_coords"]
