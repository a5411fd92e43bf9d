"""ImagePredictor on its own: shapes, dtypes and layouts, batched boxes, and errors on bad input."""

from __future__ import annotations

import numpy as np
import pytest

from sam2_model import ImagePredictor, build_model
from sam2_model.automatic import AutomaticMaskGenerator


@pytest.fixture(scope="module")
def model():
    return build_model("sam2.1_hiera_tiny", device="cpu", image_size=256)


@pytest.fixture(scope="module")
def rgb():
    return np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def predictor(model, rgb):
    pred = ImagePredictor(model)
    pred.set_image(rgb)
    return pred


def test_output_shapes_and_types(predictor):
    masks, scores, logits = predictor.predict(points=[[40, 50]], labels=[1])
    assert masks.shape == (3, 120, 160) and masks.dtype == bool
    assert scores.shape == (3,) and scores.dtype == np.float32
    assert logits.shape == (3, 64, 64) and logits.dtype == np.float32
    assert np.abs(logits).max() <= 32.0
    single, one_score, one_logit = predictor.predict(box=[10, 20, 90, 100], multimask=False, return_logits=True)
    assert single.shape == (1, 120, 160) and single.dtype == np.float32
    assert one_score.shape == (1,) and one_logit.shape == (1, 64, 64)
    assert predictor.image_shape == (120, 160) and predictor.is_image_set


def test_default_mask_count_follows_the_model(rgb):
    """The demo model was trained with one output mask: by default it gives that one (the official presets, as
    Meta's predictor, give three); ``multimask=True`` still asks for three."""
    demo = ImagePredictor(build_model("demo", device="cpu"))
    demo.set_image(rgb)
    default, scores, _ = demo.predict(points=[[40, 50]], labels=[1])
    single, _, _ = demo.predict(points=[[40, 50]], labels=[1], multimask=False)
    assert default.shape == (1, 120, 160) and scores.shape == (1,)
    np.testing.assert_array_equal(default, single)
    assert demo.predict(points=[[40, 50]], labels=[1], multimask=True)[0].shape == (3, 120, 160)


def test_logits_threshold_to_masks_and_feed_back(predictor):
    masks, _, logits = predictor.predict(points=[[40, 50], [100, 30]], labels=[1, 0])
    raw, _, _ = predictor.predict(points=[[40, 50], [100, 30]], labels=[1, 0], return_logits=True)
    np.testing.assert_array_equal(masks, raw > 0)
    again, _, _ = predictor.predict(points=[[40, 50]], labels=[1], mask_input=logits[:1], multimask=False)
    assert again.shape == (1, 120, 160)
    # (4h, 4w) without the leading 1 is accepted too.
    same, _, _ = predictor.predict(points=[[40, 50]], labels=[1], mask_input=logits[0], multimask=False)
    np.testing.assert_array_equal(again, same)


def test_batched_boxes_equal_one_at_a_time(predictor):
    boxes = np.array([[10, 20, 90, 100], [50, 10, 150, 110], [0, 0, 160, 120]], np.float32)
    masks, scores, logits = predictor.predict(box=boxes)
    assert masks.shape == (3, 3, 120, 160) and scores.shape == (3, 3) and logits.shape == (3, 3, 64, 64)
    click = dict(points=[[60, 60]], labels=[1])
    shared, shared_scores, _ = predictor.predict(box=boxes, multimask=False, **click)
    assert shared.shape == (3, 1, 120, 160)
    for i, b in enumerate(boxes):
        m, s, lg = predictor.predict(box=b)
        np.testing.assert_allclose(s, scores[i], atol=1e-5)
        np.testing.assert_allclose(lg, logits[i], atol=1e-4)
        assert (m == masks[i]).mean() > 0.999
        m1, s1, _ = predictor.predict(box=b, multimask=False, **click)
        np.testing.assert_allclose(s1, shared_scores[i], atol=1e-5)
        assert (m1 == shared[i]).mean() > 0.999
    # A (1, 4) box keeps the batch axis; per-box clicks as (B, N, 2) with labels (B, N).
    assert predictor.predict(box=boxes[:1])[0].shape == (1, 3, 120, 160)
    per_box = predictor.predict(box=boxes[:2], points=[[[60, 60]], [[70, 40]]], labels=[[1], [1]])
    assert per_box[0].shape == (2, 3, 120, 160)
    fed_back = predictor.predict(box=boxes, mask_input=logits[:, :1], multimask=False)
    assert fed_back[0].shape == (3, 1, 120, 160)


def _clicked_logits(model, image, **kwargs) -> np.ndarray:
    """The low-res logits of one click at (40, 50) on ``image`` read by an ImagePredictor made with ``kwargs``."""
    pred = ImagePredictor(model, **kwargs)
    pred.set_image(image)
    return pred.predict(points=[[40, 50]], labels=[1])[2]


def test_layouts_and_dtypes_map_as_documented(model, rgb):
    grey = rgb[..., 0]

    def run(image, **kwargs):
        return _clicked_logits(model, image, **kwargs)

    reference = run(np.repeat(grey[..., None], 3, axis=-1))
    np.testing.assert_allclose(run(grey), reference, atol=1e-5)  # grey is repeated to RGB
    np.testing.assert_allclose(run(grey[..., None]), reference, atol=1e-5)  # (H, W, 1)
    # float data with limits (0, 255) maps exactly like uint8's x / 255.
    np.testing.assert_allclose(run(grey.astype(np.float32), contrast_limits=(0, 255)), reference, atol=1e-5)
    # uint16 scaled by 100 with matching limits gives the same input.
    np.testing.assert_allclose(run(grey.astype(np.uint16) * 100, contrast_limits=(0, 25500)), reference, atol=1e-4)
    four = np.stack([grey, rgb[..., 1], rgb[..., 2], grey], axis=-1)
    np.testing.assert_allclose(run(four, channel=3), reference, atol=1e-5)
    np.testing.assert_allclose(run(rgb, channel=0), reference, atol=1e-5)  # explicit channel wins for RGB
    # RGB with one colour only (a green-only export, zeros elsewhere) is read as that channel in grey
    green = np.stack([np.zeros_like(grey), grey, np.zeros_like(grey)], axis=-1)
    np.testing.assert_allclose(run(green), reference, atol=1e-5)
    assert not np.allclose(run(np.stack([grey, grey // 2, np.zeros_like(grey)], axis=-1)), reference, atol=1e-3)
    # default percentile limits: any float image runs and is finite.
    assert np.isfinite(run(np.random.default_rng(2).normal(size=(60, 70)))).all()
    assert np.isfinite(run(np.full((60, 70), 7, np.int16))).all()  # constant image


def test_rgba_is_read_as_rgb_without_its_alpha(model, rgb):
    """A PNG screenshot is (H, W, 4) RGBA: it was refused ("4 channels: pass channel="), while napari_sam2's segment()
    drops the alpha. Now the alpha is dropped here too, and a one-colour RGBA image is that colour in grey as for RGB;
    an explicit channel still picks any of the four."""
    grey = rgb[..., 0]

    def run(image, **kwargs):
        return _clicked_logits(model, image, **kwargs)

    def with_alpha(image, alpha):
        return np.concatenate([image, np.full(image.shape[:2] + (1,), alpha, image.dtype)], axis=-1)

    np.testing.assert_array_equal(run(with_alpha(rgb, 255)), run(rgb))
    np.testing.assert_array_equal(run(with_alpha(rgb, 0)), run(rgb))  # the alpha's value does not matter
    green = np.stack([np.zeros_like(grey), grey, np.zeros_like(grey)], axis=-1)
    np.testing.assert_allclose(run(with_alpha(green, 255)), run(grey), atol=1e-5)
    np.testing.assert_allclose(run(with_alpha(rgb, 255), channel=3), run(np.full_like(grey, 255)), atol=1e-5)


def test_mixed_precision_path_returns_float32(model, rgb, predictor, monkeypatch):
    """The CUDA path runs under bfloat16 autocast; exercise it on the CPU (outputs stay float32 numpy)."""
    import torch

    from sam2_model import build

    exact = predictor.predict(points=[[40, 50]], labels=[1])
    monkeypatch.setattr(build, "autocast_dtype", lambda device: torch.bfloat16)  # read by inference_autocast
    pred = ImagePredictor(model)
    pred.set_image(rgb)
    masks, scores, logits = pred.predict(points=[[40, 50]], labels=[1])
    assert masks.dtype == bool and scores.dtype == np.float32 and logits.dtype == np.float32
    assert np.abs(scores - exact[1]).max() < 0.05 and (masks == exact[0]).mean() > 0.9


BAD_IMAGES = [
    (np.zeros(5), r"image must be a non-empty \(H, W\) or \(H, W, C\)"),
    (np.float32(1.0), r"image must be a non-empty"),
    (np.zeros((0, 4)), r"image must be a non-empty"),
    (np.zeros((2, 3, 4, 5)), r"image must be a non-empty"),
    (np.zeros((8, 8, 5), np.uint8), r"5 channels: pass channel=.* \(H, W, 4\) RGBA"),
    # channel-first: a leading axis of 1-4 before two longer ones is channels, named with the fix
    (np.zeros((1, 40, 50), np.uint8), r"\(1, 40, 50\) looks channel-first .* np\.moveaxis\(image, 0, -1\)"),
    (np.zeros((3, 40, 50), np.uint8), r"\(3, 40, 50\) looks channel-first \(C, H, W\) with 3 channels"),
    # a last axis over 16 is image columns: a (T, H, W) stack is not an image
    (np.zeros((20, 40, 50), np.uint8), r"\(20, 40, 50\): its last axis \(50\) is too long for channels .* image\[0\]"),
    (np.pad([[np.nan]], ((0, 7), (0, 7))), "NaN or infinite"),
    (np.pad([[np.inf]], ((0, 7), (0, 7))), "NaN or infinite"),
    # the video doors' words (FrameSource, segment, track_cells): a bool image names its fix
    (np.zeros((8, 8), bool), r"image: unsupported dtype bool \(a mask, e\.g\. a thresholded image\): SAM 2 segments "
                             r"grey values; pass image\.astype\(np\.uint8\)"),
    (np.array([["a", "b"]]), r"image: unsupported dtype <U1; use integer or floating-point data"),
    # thinner than 8 px on a side: the model gives empty masks; refused as the video doors refuse such frames
    (np.zeros((4, 4000), np.uint8), r"frames of 4 x 4000 px \(rows x columns\) are too small: SAM 2 needs frames at "
                                    r"least 8 px on each side"),
    (np.zeros((96, 7, 3), np.uint8), r"frames of 96 x 7 px \(rows x columns\) are too small"),
    (np.zeros((1, 1)), r"frames of 1 x 1 px"),
]


@pytest.mark.parametrize("image, match", BAD_IMAGES)
def test_bad_images_raise_and_keep_the_previous_image(model, rgb, image, match):
    pred = ImagePredictor(model)
    pred.set_image(rgb)
    before = pred.predict(points=[[40, 50]], labels=[1])[2]
    with pytest.raises(ValueError, match=match):
        pred.set_image(image)
    np.testing.assert_array_equal(pred.predict(points=[[40, 50]], labels=[1])[2], before)


def test_bad_constructor_arguments(model):
    with pytest.raises(ValueError, match=r"contrast_limits must be \(low, high\) finite numbers with low < high, "
                                         r"got \(5, 5\)"):
        ImagePredictor(model, contrast_limits=(5, 5))
    with pytest.raises(ValueError, match="contrast_limits"):
        ImagePredictor(model, contrast_limits=(0, 1, 2))
    with pytest.raises(ValueError, match="channel must be an integer"):
        ImagePredictor(model, channel="red")
    with pytest.raises(ValueError, match="channel=5 is out of range for an image with 3 channels"):
        ImagePredictor(model, channel=5).set_image(np.zeros((8, 8, 3), np.uint8))


@pytest.mark.parametrize("image", [np.zeros((3, 40, 50), np.uint8), np.zeros((10, 40, 50), np.uint8),
                                   np.zeros((5, 60, 8), np.uint8)])
def test_channel_never_cuts_a_channel_first_array_into_a_thin_image(model, rgb, image):
    """channel=<index> picks from the last axis; on a (C, H, W) array that gave a (C, H) "image" (3 x 40 here,
    832 x 3 on MSC) and segmented it. Refused where the last axis is columns (a leading 1-4 or a last axis over 16)
    or the image left would be under 8 px on a side; the previous image stays set."""
    pred = ImagePredictor(model, channel=0)
    pred.set_image(rgb)
    with pytest.raises(ValueError, match=r"channel-first|too long for channels|under 8 px on a side"):
        pred.set_image(image)
    assert pred.image_shape == (120, 160)


def test_a_channel_first_image_moved_as_the_message_says_is_the_rgb_image(model, rgb):
    first = np.moveaxis(rgb, -1, 0)  # (3, 120, 160)
    pred = ImagePredictor(model)
    with pytest.raises(ValueError, match=r"np\.moveaxis\(image, 0, -1\)"):
        pred.set_image(first)
    pred.set_image(np.moveaxis(first, 0, -1))
    assert pred.image_shape == (120, 160)


BAD_PROMPTS = [
    (dict(points=[[170, 10]], labels=[1]), r"outside the 160x120 frame"),
    (dict(points=[[-1, 10]], labels=[1]), r"outside the 160x120 frame"),
    (dict(points=[[10, 10]], labels=[2]), "labels must be 1 .positive. or 0 .negative."),
    (dict(points=[[10, 10], [20, 20]], labels=[1]), "differ in length"),
    (dict(points=[[10, 10]]), "points and labels must be given together"),
    (dict(points=[[10, 10, 3]], labels=[1]), r"points must be an \(N, 2\)"),
    (dict(points=[[10, np.nan]], labels=[1]), "NaN"),
    (dict(points=[[1, 2], [3]], labels=[1, 1]), "points must be an .N, 2. array"),
    (dict(box=[50, 10, 20, 40]), "x0 <= x1"),
    (dict(box=[10, 10, 20]), r"box must be 4 finite numbers"),
    (dict(box=[10, 10, 20, 200]), "extends outside"),
    (dict(box=[[10, 10, 20, 20], [30, 30, 20, 40]]), "x0 <= x1"),
    (dict(box=np.zeros((0, 4))), r"\(B, 4\) array of boxes"),
    (dict(box=np.zeros((2, 4)), points=np.ones((3, 1, 2)), labels=np.ones((3, 1))), "batches must agree"),
    (dict(points=np.ones((2, 1, 2)), labels=[1, 1]), r"batched points must be \(B, N, 2\) with labels \(B, N\)"),
    (dict(points=[[10, 10]], labels=[1], mask_input=np.zeros((1, 32, 32))), r"mask_input must be .* \(1, 64, 64\)"),
    (dict(box=[[1, 1, 9, 9]] * 2, mask_input=np.zeros((1, 64, 64))), r"mask_input must be .* \(2, 1, 64, 64\)"),
    (dict(mask_input=np.full((1, 64, 64), np.nan)), "mask_input contains NaN"),
]


@pytest.mark.parametrize("kwargs, match", BAD_PROMPTS)
def test_bad_prompts_raise_and_leave_the_predictor_usable(predictor, kwargs, match):
    with pytest.raises(ValueError, match=match):
        predictor.predict(**kwargs)
    masks, _, _ = predictor.predict(points=[[40, 50]], labels=[1])
    assert masks.shape == (3, 120, 160)


def test_predict_needs_an_image(model, rgb):
    pred = ImagePredictor(model)
    with pytest.raises(ValueError, match=r"call set_image\(image\) before predict"):
        pred.predict(points=[[1, 1]], labels=[1])
    pred.set_image(rgb)
    pred.predict(points=[[1, 1]], labels=[1])
    pred.reset_image()
    assert not pred.is_image_set and pred.image_shape is None
    with pytest.raises(ValueError, match="call set_image"):
        pred.predict(points=[[1, 1]], labels=[1])
    pred.set_image(rgb[:50, :60])
    assert pred.predict(points=[[1, 1]], labels=[1])[0].shape == (3, 50, 60)


def test_an_image_8_px_on_a_side_is_still_segmented(model):
    """The size check refuses under 8 px only: an 8 x 300 strip (and an 8 x 8 RGB image) still give masks of their
    shape, on every door that maps images as set_image does (the automatic mask generator too)."""
    pred = ImagePredictor(model)
    for image in (np.full((8, 300), 200, np.uint8), np.full((8, 8, 3), 200, np.uint8)):
        pred.set_image(image)
        assert pred.predict(points=[[4, 4]], labels=[1])[0].shape[1:] == image.shape[:2]
    with pytest.raises(ValueError, match=r"frames of 5 x 300 px \(rows x columns\) are too small"):
        AutomaticMaskGenerator(model, points_per_side=2).generate(np.zeros((5, 300), np.uint8))
