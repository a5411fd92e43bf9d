"""Object windows (:class:`WindowedSession`, :class:`WindowedPredictor`) with what users prompt besides one click on
a grey stack: RGB stacks (colour read as the whole stack is read), boxes (a box says how big its object is), and an
object whose first mask in a small window is empty (it grows instead of vanishing). The embedded model at 256 px
input; synthetic nuclei, and a 256 x 256 crop of the real MSC time-lapse where synthetic data does not show it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

import sam2_model as sm
from napari_sam2 import segment
from sam2_model.evaluation import click_point, clickable_objects, region_similarity
from sam2_model.synthetic import make_timelapse
from sam2_model.windowed_session import WindowedSession
from sam2_model.windows import WindowedPredictor, box_side, first_window_side, too_small, whole_frame_side

MSC = Path(__file__).resolve().parents[2] / "shared" / "data" / "ctc-msc" / "01"
needs_msc = pytest.mark.skipif(not MSC.is_dir(), reason="the real MSC time-lapse is not here")


@pytest.fixture(scope="module")
def model():
    return sm.build_model("demo", device="cpu", image_size=256)


@pytest.fixture(scope="module")
def nuclei():
    """3 uint8 frames of 384 x 384 with nuclei ~23 px wide."""
    return make_timelapse(num_frames=3, shape=(384, 384), seed=900_002, radius_fraction=0.03, dtype="uint8",
                          divisions=False, enter_leave=False)


@pytest.fixture(scope="module")
def big_nuclei():
    """1 frame of 768 x 768 with nuclei ~23-30 px wide (windows of 192 px are made for 18 px)."""
    return make_timelapse(num_frames=1, shape=(768, 768), seed=900_002, radius_fraction=0.02)


def msc_crop(frames: int = 2) -> np.ndarray:
    """(frames, 256, 256) uint16: MSC frames 2.. cut at rows 0-256, columns 266-522 (a cell at x 88-168, y 32-112)."""
    return np.stack([tifffile.imread(MSC / f"t{t:03d}.tif")[:256, 266:522] for t in range(2, 2 + frames)])


def first_object(movie) -> tuple:
    obj = clickable_objects(movie.labels[0])[0]
    return obj, click_point(movie.labels[0] == obj)


def labels_of(session, obj: int, frames: int) -> np.ndarray:
    return np.stack([masks[0] for _, _, masks in session.propagate(0, output="masks")])[:frames]


# ---------------------------------------------------------------------------------------------------- RGB stacks
def test_a_one_colour_rgb_stack_is_read_as_grey_in_windows(model, nuclei):
    """Only red varies: the whole stack is read as grey, so its windows give exactly the grey stack's masks."""
    obj, point = first_object(nuclei)
    rgb = np.zeros(nuclei.image.shape + (3,), np.uint8)
    rgb[..., 0] = nuclei.image
    results = []
    for frames in (rgb, nuclei.image):
        session = WindowedSession(model, frames, window=128)
        session.add_prompt(0, obj, points=[point], labels=[1])
        results.append(labels_of(session, obj, 3))
    np.testing.assert_array_equal(results[0], results[1])
    assert region_similarity(results[0][0], nuclei.labels[0] == obj) > 0.8


def test_a_true_colour_stack_keeps_its_colour_in_windows_where_a_window_holds_one_colour(model, nuclei):
    """Green and blue vary only in a far corner: the stack is true colour, so the window (red only inside) must see
    red as red, not the red channel read as grey (a window judging colour by its own crop would)."""
    obj, point = first_object(nuclei)
    rgb = np.zeros(nuclei.image.shape + (3,), np.uint8)
    rgb[..., 0] = nuclei.image
    corner = (slice(0, 8) if point[1] > 192 else slice(-8, None), slice(0, 8) if point[0] > 192 else slice(-8, None))
    rgb[(slice(None),) + corner + (slice(1, 3),)] = 200
    session = WindowedSession(model, rgb, window=128)
    assert session.frames.colour_channel is None  # the whole stack: true colour
    logits = session.add_prompt(0, obj, points=[point], labels=[1])
    x0, y0, x1, y1 = session.window_of(obj)
    assert not rgb[0, y0:y1, x0:x1, 1:].any()  # the window itself holds red only
    grey = WindowedSession(model, nuclei.image, window=128)
    assert not np.array_equal(logits, grey.add_prompt(0, obj, points=[point], labels=[1]))
    tracked = labels_of(session, obj, 3)
    assert tracked.shape == (3, 384, 384) and all(m.any() for m in tracked)


def test_segment_tracks_rgb_and_rgba_stacks_in_object_windows(nuclei):
    """The user's call: segment(rgb, clicks, object_window=...) on true-colour RGB and RGBA stacks (IoU 0.85 in
    windows, 0.93 on whole frames; 0.95 for the grey stack)."""
    obj, (x, y) = first_object(nuclei)
    rgb = np.stack([nuclei.image, (nuclei.image * 0.8).astype(np.uint8), nuclei.image // 2], axis=-1)  # orange
    rgba = np.concatenate([rgb, np.full(rgb.shape[:-1] + (1,), 255, np.uint8)], axis=-1)
    for frames in (rgb, rgba):
        labels = segment(frames[:2], clicks=[(0, y, x, 1, obj)], device="cpu", direction="forward",
                         object_window=128)
        assert labels.shape == (2, 384, 384) and region_similarity(labels[0] == obj, nuclei.labels[0] == obj) > 0.7


# ---------------------------------------------------------------------------------------------------- boxes
def padded_box(mask: np.ndarray, pad: float = 0.25) -> np.ndarray:
    """The mask's bounding box (x0, y0, x1, y1) with ``pad`` of its longer side added on each side."""
    rows, cols = np.nonzero(mask)
    x0, y0, x1, y1 = cols.min(), rows.min(), cols.max() + 1.0, rows.max() + 1.0
    p = pad * max(x1 - x0, y1 - y0)
    height, width = mask.shape
    return np.array([max(x0 - p, 0), max(y0 - p, 0), min(x1 + p, width - 1), min(y1 + p, height - 1)], np.float32)


def test_box_side_sizes_a_window_for_the_boxs_object():
    assert box_side(192, None, (768, 768), 256) == 192
    assert box_side(192, np.array([0, 0, 12, 12]), (768, 768), 256) == 192  # small: the session's window
    assert box_side(192, np.array([100, 100, 140, 140]), (768, 768), 256) == 432  # 40 px: 24 px at the input
    assert box_side(192, np.array([100, 100, 300, 140]), (768, 768), 256) == 432  # a long box: its shorter side
    assert box_side(128, np.array([354, 32, 434, 112]), (832, 992), 256) == 992  # no window: the whole frame


def test_first_window_side_is_the_larger_of_the_box_and_whole_frame_mask_rules():
    """One rule for a new object's first window, used by WindowedPredictor.predict and WindowedSession.add_prompt."""
    small, wide = np.zeros((768, 768), bool), np.zeros((768, 768), bool)
    small[100:110, 100:110] = True
    wide[100:300, 100:300] = True  # 200 px: far wider than the 18 px a 192 px window is made for
    box = np.array([100, 100, 140, 140])
    assert first_window_side(192, None, None, (768, 768), 256) == 192  # a mask prompt: the session's window
    assert first_window_side(192, small, None, (768, 768), 256) == 192
    assert first_window_side(192, None, box, (768, 768), 256) == box_side(192, box, (768, 768), 256) == 432
    assert first_window_side(192, wide, None, (768, 768), 256) == whole_frame_side(192, wide, 256) == 768
    assert first_window_side(192, small, box, (768, 768), 256) == 432


def test_a_box_or_click_gets_the_same_first_window_in_the_session_and_the_predictor(model, big_nuclei):
    truth = big_nuclei.labels[0]
    predictor = WindowedPredictor(model, 192)
    predictor.set_image(big_nuclei.image[0])
    for obj in clickable_objects(truth)[:2]:
        for prompt in (dict(box=padded_box(truth == obj)), dict(points=[click_point(truth == obj)], labels=[1])):
            session = WindowedSession(model, big_nuclei.image, window=192)
            session.add_prompt(0, obj, **prompt)
            assert session.window_of(obj) == tuple(predictor.predict(**prompt)[2]), (obj, list(prompt))


def test_too_small_is_cut_or_empty_where_the_whole_frame_is_not():
    empty, whole = np.zeros((8, 8), bool), np.zeros((32, 32), bool)
    window = (8, 8, 16, 16)
    assert not too_small(empty, window, (32, 32), whole) and not too_small(empty, window, (32, 32), None)
    whole[10, 10] = True
    assert too_small(empty, window, (32, 32), whole)
    inside = empty.copy()
    inside[4, 4] = True
    assert not too_small(inside, window, (32, 32), whole)
    inside[0, 4] = True  # at the window's inner edge: cut
    assert too_small(inside, window, (32, 32), None)


def test_a_box_sizes_its_objects_window_and_clicks_with_it_too(model, big_nuclei):
    """A box drawn with room around a nucleus: the window is made so the box's object is 24 px at the input (on
    these nuclei, mean IoU of 8 padded boxes: 0.88 in the session's 192 px windows, 0.94 in windows sized so)."""
    truth = big_nuclei.labels[0]
    for obj in clickable_objects(truth)[:2]:
        box = padded_box(truth == obj)
        for extra in ({}, dict(points=[click_point(truth == obj)], labels=[1])):
            session = WindowedSession(model, big_nuclei.image, window=192)
            logits = session.add_prompt(0, obj, box=box, **extra)
            x0, y0, x1, y1 = session.window_of(obj)
            assert x1 - x0 >= box_side(192, box, (768, 768), 256) > 192, (obj, extra)
            assert region_similarity(logits[0] > 0, truth == obj) > 0.8, (obj, extra)


def test_a_box_sizes_the_windowed_predictors_window_too(model, big_nuclei):
    truth = big_nuclei.labels[0]
    obj = clickable_objects(truth)[0]
    box = padded_box(truth == obj)
    predictor = WindowedPredictor(model, 192)
    predictor.set_image(big_nuclei.image[0])
    masks, scores, (x0, y0, x1, y1) = predictor.predict(box=box, multimask=False)
    assert x1 - x0 >= box_side(192, box, (768, 768), 256) > 192
    assert region_similarity(masks[0], truth == obj) > 0.8


@needs_msc
def test_a_box_on_a_real_cell_is_not_lost_in_a_small_window(model):
    """The user's case on a crop: an 80 px box on an MSC cell filled a 128 px window, the mask came back empty and
    the object vanished; now the window is made for the box (here: the whole crop, as on whole frames)."""
    frames = msc_crop()
    box = [88, 32, 168, 112]
    session = WindowedSession(model, frames, window=128)
    mask = session.add_prompt(1, 2, box=box)[0] > 0
    whole = sm.VideoSession(model, frames).add_prompt(1, 2, box=box)[0] > 0
    assert whole.sum() > 300 and region_similarity(mask, whole) > 0.9
    assert session.window_of(2) == (0, 0, 256, 256)


@needs_msc
def test_a_click_whose_first_window_mask_is_empty_grows_its_window(model):
    """A click on an MSC cell that the whole frame segments but a 128 px window around it gives nothing: the window
    grows (here to the whole crop) instead of keeping an empty object."""
    frames = np.stack([tifffile.imread(MSC / f"t{t:03d}.tif")[212:468, 736:992] for t in range(2)])
    session = WindowedSession(model, frames, window=128)
    mask = session.add_prompt(0, 1, points=[[204, 128]], labels=[1])[0] > 0
    whole = sm.VideoSession(model, frames).add_prompt(0, 1, points=[[204, 128]], labels=[1])[0] > 0
    assert whole.any() and mask.any() and region_similarity(mask, whole) > 0.9
    x0, y0, x1, y1 = session.window_of(1)
    assert x1 - x0 > 128
