"""Automatic masks equal Meta's ``SAM2AutomaticMaskGenerator`` bit for bit, small frames included (A6, session 56).

A grid of n points a side scaled to a side of S px puts its last point at S - S / (2 n): past the last pixel's edge
(S - 0.5) once S <= n (y = 23.625 on 24 px with 32 points). The reference clicks it there; we used to move such
points just inside the edge (napari's rule for user clicks), which changed their masks, scores and the masks kept.
The generator's grid now goes through ``ImagePredictor.predict_grid`` (0 <= x <= W, 0 <= y <= H), while user clicks
keep napari's rule. Both generators run the embedded demo weights and see the same model input for every crop (as in
test_automatic's parity test); here every record is compared exactly, in order.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from oracle import reference_model, require_oracle
from sam2_model import ImagePredictor, amg_ops, build_model
from sam2_model.automatic import AutomaticMaskGenerator
from sam2_model.synthetic import make_timelapse
from test_automatic import _feed_our_model_input, _reference_generator_class

THRESHOLDS = dict(pred_iou_thresh=0.0, stability_score_thresh=0.0)  # keep every mask: the most to compare
CASES = {
    # (H, W), settings: the first four have grid points past the last pixel's edge (of the image or of a crop)
    "16px-grid16-single": ((16, 16), dict(points_per_side=16, multimask_output=False)),
    "12x20-grid12-multimask": ((12, 20), dict(points_per_side=12, multimask_output=True)),
    "32x12-grid12-single": ((32, 12), dict(points_per_side=12, multimask_output=False)),
    "12px-grid8-crops": ((12, 12), dict(points_per_side=8, multimask_output=False, crop_n_layers=1)),
    "12x16-grid12-m2m": ((12, 16), dict(points_per_side=12, multimask_output=False, use_m2m=True)),
    # sides over the grid: nothing was moved there before either
    "33px-grid8-multimask": ((33, 33), dict(points_per_side=8, multimask_output=True)),
    "64px-grid6-crops": ((64, 64), dict(points_per_side=6, multimask_output=True, crop_n_layers=1)),
}


@pytest.fixture(scope="module")
def demo_model():
    return build_model("demo", device="cpu")


@pytest.fixture(scope="module")
def reference_net(demo_model):
    require_oracle()
    net = reference_model("demo")
    net.load_state_dict(demo_model.state_dict(), strict=True)
    return net


def _frame(shape) -> np.ndarray:
    """(H, W) uint8 crop of a synthetic nuclei frame, through several nuclei."""
    frame = make_timelapse(num_frames=1, shape=(64, 64), seed=123, dtype="uint8").image[0]
    return np.ascontiguousarray(frame[:shape[0], :shape[1]])


@pytest.mark.parametrize("case", list(CASES))
def test_records_equal_the_reference_generators_exactly(case, demo_model, reference_net):
    shape, settings = CASES[case]
    settings = {**THRESHOLDS, **settings}
    frame = _frame(shape)
    reference = _reference_generator_class()(reference_net, **settings)
    reference.predictor.set_image = _feed_our_model_input(reference.predictor, demo_model.image_size)
    theirs = reference.generate(np.repeat(frame[..., None], 3, axis=-1))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either
        ours = AutomaticMaskGenerator(demo_model, **settings).generate(frame)

    assert len(theirs) >= 20, "the case must produce masks to compare"
    assert len(ours) == len(theirs)
    for index, (a, b) in enumerate(zip(ours, theirs)):
        where = f"record {index} of {len(ours)}"
        assert np.array_equal(a["segmentation"], b["segmentation"]), where
        assert a["predicted_iou"] == b["predicted_iou"], where
        assert a["stability_score"] == b["stability_score"], where
        assert a["bbox"] == [int(v) for v in b["bbox"]] and a["area"] == int(b["area"]), where
        assert a["point_coords"] == b["point_coords"] and a["crop_box"] == b["crop_box"], where
    if settings.get("crop_n_layers"):
        assert len({tuple(r["crop_box"]) for r in ours}) > 1, "masks from more than one crop"
    crops, layers = amg_ops.crop_boxes(shape, settings.get("crop_n_layers", 0), 512 / 1500)
    past_edge = [(amg_ops.grid_in_pixels(amg_ops.point_grid(settings["points_per_side"]), (y1 - y0, x1 - x0))
                  >= [x1 - x0 - 0.5, y1 - y0 - 0.5]).any() for x0, y0, x1, y1 in crops]
    assert any(past_edge) == (min(shape) < 20), "the small cases click past a last pixel's edge, the others do not"


def test_grid_clicks_take_the_image_span_and_user_clicks_keep_naparis_pixels(demo_model):
    predictor = ImagePredictor(demo_model)
    predictor.set_image(_frame((24, 64)))
    on_edge = np.array([[1.0, 23.625], [64.0, 24.0], [0.0, 0.0]])  # the grid's last row on 24 px; the far corner
    logits, scores, low = predictor.predict_grid(on_edge, multimask=False)
    assert logits.shape == (3, 1, 24, 64) and logits.dtype == np.float32 and scores.shape == (3, 1)
    assert low.shape == (3, 1, 4 * demo_model.config.feature_size, 4 * demo_model.config.feature_size)
    with pytest.raises(ValueError, match="lies outside the 64x24 frame"):  # predict(): napari's pixels, as before
        predictor.predict(points=[[1.0, 23.625]], labels=[1])

    inside = np.array([[10.0, 5.0], [40.5, 20.25]])  # on the pixels: both doors give the same arrays
    grid = predictor.predict_grid(inside, multimask=True)
    clicks = predictor.predict(points=inside[:, None], labels=np.ones((2, 1), np.int32), multimask=True,
                               return_logits=True)
    for mine, theirs in zip(grid, clicks):
        assert np.array_equal(mine, theirs)
    refined = predictor.predict_grid(inside, multimask=False, mask_input=grid[2][:, :1])
    again = predictor.predict(points=inside[:, None], labels=np.ones((2, 1), np.int32), mask_input=grid[2][:, :1],
                              multimask=False, return_logits=True)
    assert all(np.array_equal(mine, theirs) for mine, theirs in zip(refined, again))

    for bad, words in (([[64.01, 3.0]], "0 <= x <= 64 and 0 <= y <= 24"), ([[3.0, -0.25]], "x=3, y=-0.25"),
                       ([[np.nan, 1.0]], "NaN"), (np.zeros((0, 2)), r"\(B, 2\)"), ([1.0, 2.0], r"\(B, 2\)")):
        with pytest.raises(ValueError, match=words):
            predictor.predict_grid(bad)
    with pytest.raises(ValueError, match=r"mask_input must be low-res logits of shape \(1, 1, "):
        predictor.predict_grid([[3.0, 3.0]], mask_input=np.zeros((1, 1, 8, 8)))
    with pytest.raises(ValueError, match="no image is set"):
        ImagePredictor(demo_model).predict_grid([[3.0, 3.0]])
