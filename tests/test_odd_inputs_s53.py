"""Odd inputs found by explorer X9 (session 53): blank frames are said, not segmented silently (finding 4), and clicks
are accepted on exactly the pixels napari shows, pixel i over [i - 0.5, i + 0.5) (finding 7)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import napari_sam2
import sam2_model as sm
from napari_sam2.layout import StackLayout
from napari_sam2.prompts import outside_image
from napari_sam2.prompts_csv import click_problem
from sam2_model.frames import FrameSource
from sam2_model.prompt_validation import validate_points

CLICKS = [(0, 20, 20, 1, 1), (0, 40, 44, 1, 2)]


@pytest.fixture(scope="module")
def net() -> sm.SAM2Model:
    return sm.build_model("demo", device="cpu")


def blobs(frames: int = 3, size: int = 64) -> np.ndarray:
    """(frames, size, size) float32: two bright Gaussian blobs on a dim background."""
    yy, xx = np.mgrid[:size, :size]
    frame = sum(np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 72.0) for cy, cx in ((20, 20), (40, 44)))
    return np.repeat((frame * 1000 + 50)[None], frames, axis=0).astype(np.float32)


def blank_warnings(caught) -> list:
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning) and "blank" in str(w.message)]


def segment_warned(image: np.ndarray, net: sm.SAM2Model, clicks=CLICKS) -> tuple:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = napari_sam2.segment(image, clicks=clicks, model=net, device="cpu")
    return labels, blank_warnings(caught)


@pytest.mark.parametrize("value, dtype", [(0, np.float32), (7, np.uint16)])
def test_segment_on_a_blank_stack_warns_for_the_prompted_frame_and_once_for_the_propagation(net, value, dtype):
    """X9 finding 4: a constant (3, 64, 64) stack with two clicks gave ~520 px per object per frame without a word.
    The masks stay the model's; the user is told once for the prompted frame (two objects there: one warning) and once
    for the frames the propagation passed."""
    labels, said = segment_warned(np.full((3, 64, 64), value, dtype), net)
    assert labels.shape == (3, 64, 64) and labels.max() == 2  # the model's guesses, unchanged
    assert said == [
        f"frame 0 is blank (every pixel is {value}): the model has nothing to see there; its masks on it are guesses",
        f"3 of the 3 frames tracked are blank (frames 0-2; frame 0: every pixel is {value}): the model has nothing to "
        "see there; its masks on them are guesses"]


def test_one_blank_frame_among_pictures_is_named_and_pictures_alone_say_nothing(net):
    stack = blobs()
    labels, said = segment_warned(stack, net)
    assert said == [] and set(np.unique(labels)) == {0, 1, 2}
    stack[2] = 50.0  # the background's value: the frame is one grey
    _, said = segment_warned(stack, net)
    assert said == ["1 of the 3 frames tracked is blank (frame 2; frame 2: every pixel is 50): the model has nothing "
                    "to see there; its masks on it are guesses"]


def test_blank_is_judged_as_the_model_sees_the_frame_after_its_contrast_limits():
    """A frame that varies below the low contrast limit is black to the model; one that varies is not blank; a
    solid colour is blank."""
    from sam2_model.frames import blank_words

    stack = np.zeros((3, 32, 32), np.uint16)
    stack[0] = np.arange(32 * 32).reshape(32, 32) % 50  # 0..49, all under the low limit 100
    stack[1, 10:20, 10:20] = 500
    stack[2] = 2000
    with FrameSource(stack, image_size=64, contrast_limits=(100, 1000), prefetch=0) as source:
        assert [source.blank_note(t) for t in range(3)] == [None] * 3  # nothing prepared for the model yet
        for t in range(3):
            source.model_input(t)
        assert source.blank_note(0) == "every pixel is at or below the low contrast limit 100, so the model sees black"
        assert source.blank_note(1) is None
        assert source.blank_note(2) == "every pixel is 2000"
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    assert blank_words(red, (0.0, 255.0)) == "every pixel is (255, 0, 0)"
    assert blank_words(red[..., 0], (0.0, 255.0)) == "every pixel is 255"
    one_spot = np.zeros((2048, 2048), np.float32)
    one_spot[1000, 1000] = 1.0  # not in the 32 x 32 sample: the whole frame is read, and it is not blank
    assert blank_words(one_spot, (0.0, 1.0)) is None


def test_image_predictor_warns_on_a_blank_image(net):
    predictor = sm.ImagePredictor(net)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor.set_image(np.full((64, 64), 3, np.uint8))
        predictor.set_image(blobs()[0])
    assert blank_warnings(caught) == [
        "the image is blank (every pixel is 3): the model has nothing to see there; its masks on it are guesses"]


# ----------------------------------------------------------------- finding 7: the pixel edge of clicks
# pixel i spans [i - 0.5, i + 0.5) as napari draws it; a click's coordinate is its pixel's centre (SAM's prompt encoder
# adds 0.5 to reach the centre of the pixel it names)
ON = [(-0.5, 10.0), (-0.4, 10.0), (63.49, 10.0), (10.0, -0.5), (10.0, 63.49)]
OFF = [(-0.51, 10.0), (63.5, 10.0), (64.0, 10.0), (10.0, 63.5), (10.0, 64.0), (10.0, -0.6)]


@pytest.mark.parametrize("y, x", ON)
def test_clicks_on_the_edge_pixels_as_napari_draws_them_are_accepted(y, x):
    assert click_problem(0, y, x, 3, 64, 64) is None
    assert not outside_image(np.array([[0.0, y, x]]), StackLayout(3, 0, None), (3, 64, 64)).any()
    validate_points([[x, y]], [1], 64, 64)


@pytest.mark.parametrize("y, x", OFF)
def test_clicks_past_the_edge_pixels_are_refused_with_the_range(y, x):
    assert click_problem(0, y, x, 3, 64, 64) == (
        f"(y={y:g}, x={x:g}) lies outside the 64 x 64 (rows x columns) image, which takes -0.5 <= y < 63.5 and "
        "-0.5 <= x < 63.5 (pixel i's centre is i)")
    assert outside_image(np.array([[0.0, y, x]]), StackLayout(3, 0, None), (3, 64, 64)).all()
    with pytest.raises(ValueError, match=r"outside the 64x64 frame.*-0.5 <= y < 63.5"):
        validate_points([[x, y]], [1], 64, 64)


def test_segment_takes_a_click_visibly_on_row_0_and_refuses_one_past_the_last_row(net):
    stack = blobs()
    stack[:, :6, 18:24] = 1050.0  # a bright patch touching the top edge
    labels = napari_sam2.segment(stack, clicks=[(0, -0.4, 20, 1, 1)], model=net, device="cpu")
    assert labels[0, 0, 20] == 1
    with pytest.raises(ValueError, match=r"clicks row 0: \(y=64, x=20\) lies outside the 64 x 64"):
        napari_sam2.segment(stack, clicks=[(0, 64, 20, 1, 1)], model=net, device="cpu")


def test_a_click_on_the_first_pixels_outer_half_matches_metas_predictor(tmp_path):
    """Clicks in [-0.5, 0) were refused; they now go to the model as given, as Meta's predictor takes them (it checks
    no bounds): the logits are bit-identical, on the prompted frame and tracked."""
    from oracle import reference_model, require_oracle, share_weights
    from test_parity_video import SIZE, _compare, _reference_state, moving_blobs
    import torch

    from sam2_model.video_session import VideoSession

    require_oracle()
    predictor = reference_model("demo", image_size=SIZE, video=True)
    predictor.fill_hole_area = 0
    model = share_weights("demo", predictor, SIZE)
    source = FrameSource(moving_blobs(3), image_size=SIZE)
    state = _reference_state(predictor, tmp_path, torch.stack([source.model_input(t) for t in range(3)]))
    session = VideoSession(model, source, fill_hole_area=0, batch_objects=False)
    worst = {"abs": 0.0, "pixels": 0.0}
    points, labels = np.array([[-0.4, 80.0], [70.0, -0.5]], np.float32), np.array([1, 1], np.int32)
    with torch.inference_mode():
        _, _, theirs = predictor.add_new_points_or_box(state, 0, 1, points=points, labels=labels)
        _compare(session.add_prompt(0, 1, points=points, labels=labels), theirs, "edge clicks", worst)
        for (_, _, ours), (_, _, ref) in zip(session.propagate(), predictor.propagate_in_video(state)):
            _compare(ours, ref, "tracked from edge clicks", worst)


def test_a_session_says_its_blank_frames_in_words_for_a_status_line(net):
    from sam2_model.video_session import VideoSession, frame_spans

    stack = blobs(6)
    stack[[2, 3, 5]] = 0.0
    session = VideoSession(net, stack)
    session.add_prompt(0, 1, points=[[20.0, 20.0]], labels=[1])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(session.propagate())
    words = session.blank_summary(range(6))
    assert words == ("3 of the 6 frames tracked are blank (frames 2-3, 5; frame 2: every pixel is 0): the model has "
                     "nothing to see there; its masks on them are guesses")
    assert blank_warnings(caught) == [words]
    assert session.blank_summary([0, 1]) == ""
    assert frame_spans([7, 0, 1, 2, 4]) == "0-2, 4, 7"


def test_object_windows_judge_the_whole_frame_not_their_crop(net):
    """A windowed session's objects see crops: a click on the empty background of a frame with cells has an all-zero
    window, which is no blank frame (it warned "frame 0 is blank"); a blank stack still warns through its windows."""
    from sam2_model.windowed_session import WindowedSession

    stack = np.zeros((3, 256, 256), np.uint8)
    yy, xx = np.mgrid[:256, :256]
    for cy, cx in [(40, 40), (200, 200)]:
        stack[:, (yy - cy) ** 2 + (xx - cx) ** 2 < 100] = 200
    for image, expected in ((stack, 0), (np.full((3, 128, 128), 7, np.uint16), 2)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            session = WindowedSession(net, image, window=64)
            session.add_prompt(0, 1, points=[[40, 40]], labels=[1])
            session.add_prompt(0, 2, points=[[120, 120]], labels=[1])  # empty background: an all-zero window
            for _ in session.propagate():
                pass
        assert len(set(blank_warnings(caught))) == expected, blank_warnings(caught)
