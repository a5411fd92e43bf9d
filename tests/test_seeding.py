"""Blob-point seeding on synthetic nuclei, and automatic masks from those points with the demo model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from sam2_model import ImagePredictor, build_model
from sam2_model.automatic import DEMO_CELL_SETTINGS, AutomaticMaskGenerator
from sam2_model.seeding import blob_points
from sam2_model.synthetic import make_timelapse

# Held out: the demo model trains on seeds >= 1_000_003 and the seeding settings were tuned on 900-907.
SEEDS = (950, 951, 952)


@pytest.fixture(scope="module")
def demo_model():
    return build_model("demo", device="cpu")


def _frame(seed: int, **kwargs):
    movie = make_timelapse(num_frames=1, seed=seed, **kwargs)
    return movie.image[0], movie.labels[0]


def _hits(points: np.ndarray, labels: np.ndarray):
    """-> (ids with at least one point inside, number of points on background)."""
    rows = np.clip(np.round(points[:, 1]).astype(int), 0, labels.shape[0] - 1)
    cols = np.clip(np.round(points[:, 0]).astype(int), 0, labels.shape[1] - 1)
    values = labels[rows, cols]
    return set(values[values > 0].tolist()), int((values == 0).sum())


@pytest.mark.parametrize(
    "kwargs, diameter",
    [
        (dict(shape=(256, 256), num_cells=12, radius_fraction=0.06), (8, 40)),  # ~30 px nuclei, default range
        (dict(shape=(256, 256), num_cells=40, radius_fraction=0.03), (6, 24)),  # ~15 px nuclei, crowded
        (dict(shape=(384, 320), num_cells=60, radius_fraction=0.02, dtype="uint8"), (6, 24)),
    ],
)
def test_blob_points_hit_nearly_every_nucleus(kwargs, diameter):
    cells = found = false = points_total = 0
    for seed in SEEDS:
        image, labels = _frame(seed, **kwargs)
        points = blob_points(image, cell_diameter=diameter)
        assert points.ndim == 2 and points.shape[1] == 2 and points.dtype == np.float64
        assert (points[:, 0] <= image.shape[1]).all() and (points[:, 1] <= image.shape[0]).all()
        hit, off = _hits(points, labels)
        ids = set(np.unique(labels).tolist()) - {0}
        cells, found = cells + len(ids), found + len(hit & ids)
        false, points_total = false + off, points_total + len(points)
    assert found >= 0.95 * cells, f"{found}/{cells} nuclei hit"
    assert false <= 0.05 * cells, f"{false} points on background for {cells} nuclei"
    assert points_total <= 1.1 * cells, f"{points_total} points for {cells} nuclei (duplicates)"


def test_blob_points_options_and_errors():
    image, labels = _frame(SEEDS[0])
    default = blob_points(image)
    strict = blob_points(image, threshold=0.2)
    relative = blob_points(image, relative_threshold=0.5)
    assert len(strict) < len(default) and len(relative) < len(default)
    dark = blob_points(image.max() - image, dark_cells=True)
    assert len(_hits(dark, labels)[0]) >= 0.9 * len(_hits(default, labels)[0])
    rgb = np.repeat(image[..., None], 3, axis=-1)
    np.testing.assert_allclose(blob_points(rgb), default)
    assert blob_points(np.zeros((64, 64), np.uint16)).shape == (0, 2)
    merged = blob_points(image, min_distance=1000)
    assert len(merged) == 1
    for bad, match in [
        (dict(cell_diameter=(40, 8)), "cell_diameter"),
        (dict(cell_diameter=(1, 8)), "cell_diameter"),
        (dict(cell_diameter="big"), "cell_diameter"),
        (dict(threshold=-1), "threshold"),
        (dict(threshold=0.1, relative_threshold=0.5), "not both"),
        (dict(relative_threshold=2.0), "relative_threshold"),
        (dict(min_distance=-1.0), "min_distance"),
    ]:
        with pytest.raises(ValueError, match=match):
            blob_points(image, **bad)
    with pytest.raises(ValueError, match="image"):
        blob_points(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="NaN"):
        blob_points(np.full((16, 16), np.nan))


def test_blob_points_refuse_stacks_and_channel_first_images():
    """Any 3-D array was averaged over its last axis: a (T, H, W) stack or a (C, H, W) image became an (H, X-less)
    strip and gave points along one column, without an error. Only (H, W) and (H, W, C) with C in 1..4 are frames."""
    image, _ = _frame(SEEDS[0])  # (256, 256)
    for bad, hint in [
        (np.stack([image, image]),
         r"channel-first \(C, H, W\) with 2 channels.* np\.moveaxis\(image, 0, -1\).*image\[0\]"),
        (image[None], "channel-first"),
        (np.stack([image] * 8), r"last axis \(256\) is too long for channels.*image\[0\] of a \(T, H, W\) stack"),
        (np.repeat(image[..., None], 5, axis=-1), r"1-4 channels last, got shape \(256, 256, 5\)"),
    ]:
        with pytest.raises(ValueError, match=hint):
            blob_points(bad)
    rgba = np.concatenate([np.repeat(image[..., None], 3, axis=-1), np.full(image.shape + (1,), 255, image.dtype)], -1)
    np.testing.assert_allclose(blob_points(rgba), blob_points(image))  # a constant alpha changes nothing


def test_blob_points_diagnose_layouts_as_the_image_predictor_does(demo_model):
    """blob_points had its own copy of the channel-first / stack diagnosis with other messages; both now use
    prompt_validation.channels_last_problem, so one array gets one diagnosis wherever it is passed."""
    predictor = ImagePredictor(demo_model)
    for bad in (np.zeros((2, 64, 64), np.uint8), np.zeros((1, 64, 80), np.uint8), np.zeros((8, 64, 64), np.uint8),
                np.zeros((3, 4, 64), np.uint8)):
        with pytest.raises(ValueError) as seeding_error:
            blob_points(bad)
        with pytest.raises(ValueError) as predictor_error:
            predictor.set_image(bad)
        assert str(seeding_error.value) == str(predictor_error.value), bad.shape


def _detection_f1(records, labels) -> float:
    """F1 of one-to-one (Hungarian) matches with mask IoU >= 0.5."""
    ids = [i for i in np.unique(labels) if i]
    if not records:
        return 0.0
    pred = np.stack([r["segmentation"] for r in records]).reshape(len(records), -1).astype(np.float32)
    truth = np.stack([labels == i for i in ids]).reshape(len(ids), -1).astype(np.float32)
    inter = pred @ truth.T
    iou = inter / np.maximum(pred.sum(1)[:, None] + truth.sum(1)[None] - inter, 1)
    rows, cols = linear_sum_assignment(-iou)
    matched = int((iou[rows, cols] >= 0.5).sum())
    return 2 * matched / (len(records) + len(ids))


def test_demo_model_detects_nuclei_from_blob_points(demo_model):
    model = demo_model
    scores = []
    for seed in SEEDS[:2]:
        image, labels = _frame(seed, shape=(256, 256))
        generator = AutomaticMaskGenerator(model, **DEMO_CELL_SETTINGS)
        records = generator.generate(image, points=blob_points(image))
        scores.append(_detection_f1(records, labels))
    print(f"demo model, blob points: detection F1 {scores}")
    assert min(scores) >= 0.9, f"detection F1 {scores}"
