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


def _drained(steps):
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def _blob_frame(dark: bool) -> np.ndarray:
    """A [0, 1] frame of blobs of several sizes (bright, or dark on a bright background), as blob_points sees it."""
    image, _ = _frame(950, shape=(128, 128), num_cells=14, radius_fraction=0.05)
    from sam2_model.seeding import normalise_frame

    frame = normalise_frame(image)
    return 1.0 - frame if dark else frame


@pytest.mark.parametrize("dark", [False, True])
@pytest.mark.parametrize("num_sigma", [1, 10])
@pytest.mark.parametrize("threshold, threshold_rel", [(0.02, None), (None, 0.3), (0.05, 0.1)])
def test_blob_log_steps_equal_skimage_blob_log(dark, num_sigma, threshold, threshold_rel):
    """The pass-by-pass blob search (scikit-image's private pieces of blob_log, run one by one so that Cancel acts
    between them) finds exactly skimage.feature.blob_log's blobs, on the scikit-image installed (s53 M3). A
    scikit-image whose pieces are not checked falls back to blob_log itself (the next test)."""
    from skimage.feature import blob_log

    from sam2_model.seeding import BLOB_OVERLAP, _blob_log_parts, _blob_log_steps

    if _blob_log_parts() is None:
        pytest.skip("this scikit-image is not one the steps follow: blob_log runs in one go")
    frame = _blob_frame(dark)
    sigmas = (6 / (2 * np.sqrt(2)), 24 / (2 * np.sqrt(2)))
    stepwise = _drained(_blob_log_steps(frame, sigmas, num_sigma, threshold, threshold_rel, 2 * num_sigma + 1))
    whole = blob_log(frame, min_sigma=sigmas[0], max_sigma=sigmas[1], num_sigma=num_sigma, threshold=threshold,
                     threshold_rel=threshold_rel, overlap=BLOB_OVERLAP, exclude_border=False)
    assert len(whole) > 3
    np.testing.assert_array_equal(stepwise, whole)


def test_blob_points_fall_back_to_blob_log_on_other_scikit_images(monkeypatch):
    """Fault (s53 R1-7): the pass-by-pass search ran scikit-image's private pieces of blob_log on any version
    (pyproject allows >= 0.21; the steps follow 0.26) and a changed signature of one raised TypeError. Now an
    unchecked version, or a piece that no longer takes the arguments given, runs blob_log in one go: the same points."""
    import skimage
    from skimage.feature import blob as skimage_blob

    from sam2_model.seeding import _blob_log_parts, blob_points_steps

    image, _ = _frame(951, shape=(128, 128), num_cells=14, radius_fraction=0.05)
    expected = blob_points(image, (6, 24))
    assert len(expected) > 3

    with monkeypatch.context() as patch:
        patch.setattr(skimage, "__version__", "0.21.0")
        assert _blob_log_parts() is None
        steps = list(blob_points_steps(image, (6, 24)))
        assert len(steps) < 2 * 6 + 1  # the blob search was one step
        np.testing.assert_array_equal(blob_points(image, (6, 24)), expected)

    import skimage.feature

    def renamed(image, min_distance=1, threshold_absolute=None, threshold_relative=None, exclude_border=True,
                footprint=None):  # a peak_local_max whose keywords changed (blob_log's own still works)
        return skimage_blob.peak_local_max(image, min_distance, threshold_absolute, threshold_relative,
                                           exclude_border, footprint=footprint)

    with monkeypatch.context() as patch:
        patch.setattr(skimage.feature, "peak_local_max", renamed)
        assert _blob_log_parts() is None
        np.testing.assert_array_equal(blob_points(image, (6, 24)), expected)
