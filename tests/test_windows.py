"""Object windows for single frames (sam2_model.windows, the generator's and the detector's windows): the side rule,
where a window goes, and that the embedded model really sees small nuclei better in one than on the whole frame."""

from __future__ import annotations

import numpy as np
import pytest

import sam2_model as sm
from sam2_model.automatic import AutomaticMaskGenerator, window_groups
from sam2_model.evaluation import click_ious, click_point, clickable_objects
from sam2_model.metrics import region_similarity
from sam2_model.image_predictor import ImagePredictor
from sam2_model.input_size import estimate_object_diameter
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import make_detector
from sam2_model.tracking.detection import check_window
from sam2_model.windows import CONTEXT, WindowedPredictor, grow_while_cut, place_window, window_side


@pytest.fixture(scope="module")
def model():
    return sm.build_model("demo", device="cpu", image_size=256)


@pytest.fixture(scope="module")
def small_nuclei():
    """One 768 x 768 frame of synthetic nuclei ~23-30 px wide: ~8 px at 256 px input on the whole frame."""
    return make_timelapse(num_frames=1, shape=(768, 768), seed=900_002, radius_fraction=0.02)


@pytest.mark.parametrize("diameter, shape, size, side", [
    (18.0, (512, 512), 256, 192),  # 256 * 18 / 24 = 192: real nuclei ~24 px estimated 17.5 px
    (18.0, (2048, 2048), 256, 192),  # the side depends on the objects, not the frame
    (4.0, (1024, 1024), 256, 128),  # never upsampled more than 2x: at least S / 2
    (18.0, (1024, 1024), 512, 384),  # a larger input asks for a larger window
    (40.0, (512, 512), 256, None),  # 432 px would be most of the frame
    (18.0, (256, 256), 256, None),  # 192 px is 3/4 of this frame: the whole frame is about as good
    (30.0, (400, 600), 256, 320),  # the longer side counts
])
def test_window_side_examples(diameter, shape, size, side):
    assert window_side(diameter, shape, size) == side


@pytest.mark.parametrize("arguments, message", [
    ((0.0, (512, 512), 256), "object_diameter_px must be a positive number"),
    ((float("nan"), (512, 512), 256), "object_diameter_px must be a positive number"),
    (("wide", (512, 512), 256), "object_diameter_px must be a positive number"),
    ((18.0, (512,), 256), r"frame_shape must be \(H, W\)"),
    ((18.0, (512, 512), 0), "image_size must be a positive integer"),
    ((18.0, (512, 512), True), "image_size must be a positive integer"),
])
def test_window_side_rejects_bad_input(arguments, message):
    with pytest.raises(ValueError, match=message):
        window_side(*arguments)


def test_place_window_centres_on_the_object_stays_inside_and_grows_for_a_box():
    click = np.array([[300.0, 200.0]], np.float32)
    assert place_window(192, (512, 512), click, np.array([1])) == (204, 104, 396, 296)
    corner = np.array([[5.0, 500.0]], np.float32)
    assert place_window(192, (512, 512), corner, np.array([1])) == (0, 320, 192, 512)  # moved inside the frame
    # a negative click far away does not move the window off the positive one
    both = np.array([[300.0, 200.0], [20.0, 20.0]], np.float32)
    assert place_window(192, (512, 512), both, np.array([1, 0])) == (204, 104, 396, 296)
    box = np.array([100.0, 100.0, 260.0, 180.0], np.float32)  # 160 px wide: the window grows to 1.5 x 160
    x0, y0, x1, y1 = place_window(192, (512, 512), box=box)
    assert x1 - x0 == y1 - y0 == int(CONTEXT * 160)
    assert x0 <= 100 and x1 >= 260 and y0 <= 100 and y1 >= 180
    assert place_window(192, (100, 700), click[:, ::-1] * [1, 0.2], np.array([1]))[1::2] == (0, 100)  # cut to the frame


def test_small_nuclei_one_click_is_better_in_windows_than_on_the_whole_frame(model, small_nuclei):
    """Measured (shipped weights): whole frame 0.78, windows of 248 px (the rule's side) 0.96."""
    image, labels = small_nuclei.image[0], small_nuclei.labels[0]
    ids = clickable_objects(labels)
    side = window_side(estimate_object_diameter(image), image.shape, model.image_size)
    assert side is not None and side < 768 / 1.5
    whole = np.mean(click_ious(ImagePredictor(model), image, labels, ids))
    windowed = np.mean(click_ious(WindowedPredictor(model, side), image, labels, ids))
    assert windowed >= 0.9, (whole, windowed)
    assert windowed >= whole + 0.1, (whole, windowed)


def test_windowed_masks_and_logits_stay_inside_their_window(model, small_nuclei):
    image, labels = small_nuclei.image[0], small_nuclei.labels[0]
    obj = clickable_objects(labels)[0]
    point = click_point(labels == obj)
    predictor = WindowedPredictor(model, 192)
    predictor.set_image(image)
    masks, scores, (x0, y0, x1, y1) = predictor.predict(points=[point], labels=[1])
    assert masks.shape == (1, 768, 768) and scores.shape == (1,)
    assert x0 <= point[0] <= x1 and y0 <= point[1] <= y1 and x1 - x0 == y1 - y0 == 192
    outside = np.ones((768, 768), bool)
    outside[y0:y1, x0:x1] = False
    assert masks[0].any() and not masks[0][outside].any()
    logits, _, _ = predictor.predict(points=[point], labels=[1], return_logits=True)
    assert logits.dtype == np.float32 and (logits[0][outside] == -32.0).all()
    np.testing.assert_array_equal(logits[0] > 0, masks[0])  # the same window's features, from the cache
    # a negative click outside the window is left out, not an error, and changes nothing
    again, _, window = predictor.predict(points=[point, (5.0, 5.0)], labels=[1, 0])
    assert window == (x0, y0, x1, y1)
    np.testing.assert_array_equal(again, masks)


@pytest.mark.parametrize("call, message", [
    (dict(), "predict needs clicks"),
    (dict(points=[(900.0, 10.0)], labels=[1]), "outside"),
    (dict(points=[(10.0, 10.0)]), "points and labels must be given together"),
    (dict(box=(10, 10, 5, 20)), "x0 <= x1"),
])
def test_windowed_predictor_names_bad_prompts(model, small_nuclei, call, message):
    predictor = WindowedPredictor(model, 192)
    with pytest.raises(ValueError, match="no image is set"):
        predictor.predict(points=[(10.0, 10.0)], labels=[1])
    predictor.set_image(small_nuclei.image[0])
    with pytest.raises(ValueError, match=message):
        predictor.predict(**call)


@pytest.mark.parametrize("side, max_cached", [(4, 8), (True, 8), (192, 0)])
def test_windowed_predictor_rejects_bad_settings(model, side, max_cached):
    with pytest.raises(ValueError, match="side must be|max_cached must be"):
        WindowedPredictor(model, side, max_cached=max_cached)


def test_window_groups_give_each_point_one_window_with_room_around_it():
    rng = np.random.default_rng(0)
    points = rng.uniform([0, 0], [700, 500], size=(200, 2))
    crops, groups = window_groups(points, 192, 500, 700)
    assert sum(len(g) for g in groups) == 200
    found = np.concatenate([g + np.array(c[:2]) for c, g in zip(crops, groups)])
    np.testing.assert_allclose(np.sort(found, axis=0), np.sort(points, axis=0))
    for (x0, y0, x1, y1), group in zip(crops, groups):
        assert x1 - x0 == y1 - y0 == 192 and 0 <= x0 and x1 <= 700 and 0 <= y0 and y1 <= 500
        for x, y in group:  # a quarter side (48 px) from every window edge that is not the image's
            assert (x >= 48 - 1e-9 or x0 == 0) and (x <= 144 + 1e-9 or x1 == 700)
            assert (y >= 48 - 1e-9 or y0 == 0) and (y <= 144 + 1e-9 or y1 == 500)


def test_generate_with_windows_needs_points_and_no_predictor(model, small_nuclei):
    generator = AutomaticMaskGenerator(model, multimask_output=False)
    image = small_nuclei.image[0]
    with pytest.raises(ValueError, match="window needs points"):
        generator.generate(image, window=192)
    with pytest.raises(ValueError, match="window must be a window side of at least 8"):
        generator.generate(image, points=[(100.0, 100.0)], window=3)
    with pytest.raises(ValueError, match="predictor cannot be reused with window"):
        generator.generate(image, points=[(100.0, 100.0)], window=192, predictor=ImagePredictor(model))
    with pytest.raises(ValueError, match=r'window must be None or "off" \(the whole frame\), "auto"'):
        make_detector(model, window="big")
    assert check_window("off") is None and check_window(" OFF ") is None  # the word every other option takes


def test_detection_in_windows_finds_more_small_nuclei(model, small_nuclei):
    image, labels = small_nuclei.image[0], small_nuclei.labels[0]
    whole = make_detector(model, "blobs", cell_diameter=(12, 48), window=None)
    windowed = make_detector(model, "blobs", cell_diameter=(12, 48))  # "auto" by default
    side = windowed.window_side(image.shape)
    assert side is not None and side >= 2 * 48 + 80  # room for the largest cell away from inner edges
    from sam2_model.tracking import detection_f1
    f_whole = detection_f1(whole(image), labels)
    f_windows = detection_f1(windowed(image), labels)
    assert f_windows["f1"] >= 0.9 and f_windows["f1"] >= f_whole["f1"], (f_whole, f_windows)
    assert make_detector(model, window="auto").window_side((256, 256)) is None  # small frames: the whole frame


def _big_disc(shape=(768, 768), centre=(400, 300), radius=60):
    """A bright disc (radius ``radius`` px) with a soft rim on a dark, slightly noisy background, and its mask."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    distance = np.hypot(rows - centre[1], cols - centre[0])
    image = 1000 + 3000 / (1 + np.exp(distance - radius)) + np.random.default_rng(0).normal(0, 40, shape)
    return image.astype(np.uint16), distance <= radius


def test_grow_while_cut_doubles_the_window_until_the_mask_is_whole_or_the_window_is_the_frame():
    tried = []

    def attempt(side, cut_below):
        tried.append(side)
        window = place_window(side, (300, 500), np.array([[250.0, 150.0]], np.float32), np.array([1]))
        return f"side {side}", window, side < cut_below

    assert grow_while_cut(40, (300, 500), lambda side: attempt(side, 100)) == "side 160"
    assert tried == [40, 80, 160]
    tried.clear()  # always cut: it stops once the window covers the whole 300 x 500 frame
    assert grow_while_cut(40, (300, 500), lambda side: attempt(side, 10_000)) == "side 640"
    assert tried == [40, 80, 160, 320, 640]


def test_a_window_too_small_for_its_object_grows(model):
    """The width estimate can be far too small (thin membranes measured instead of cells): a window whose mask is cut
    by its inner edges is tried again twice as large, until the object fits."""
    image, truth = _big_disc()
    predictor = WindowedPredictor(model, 64)
    predictor.set_image(image)
    masks, _, (x0, y0, x1, y1) = predictor.predict(points=[(400.0, 300.0)], labels=[1])
    assert x1 - x0 >= 128 and x0 <= 340 and x1 >= 460 and y0 <= 240 and y1 >= 360
    assert region_similarity(masks[0], truth) > 0.85
    session = sm.WindowedSession(model, image[None], window=64)
    logits = session.add_prompt(0, 1, points=[(400.0, 300.0)], labels=[1])
    x0, y0, x1, y1 = session.window_of(1)
    assert x1 - x0 >= 128 and region_similarity(logits[0] > 0, truth) > 0.85
