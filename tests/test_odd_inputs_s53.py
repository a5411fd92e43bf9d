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


# ----------------------------------------------------------------- review R3 findings 1 and 5: one click rule everywhere
# object windows, WindowedPredictor, the automatic generator's points and session files took clicks by the old rule
# (0 <= x <= W): a first click on the frame's outer half-pixel was refused or dropped, one past a window's last pixel
# crashed in the window's own session
def cell_movie() -> np.ndarray:
    from sam2_model.synthetic import make_timelapse

    return make_timelapse(num_frames=2, shape=(100, 101), num_cells=4, seed=4, divisions=False,
                          enter_leave=False).image


@pytest.fixture(scope="module")
def net128() -> sm.SAM2Model:
    return sm.build_model("demo", device="cpu", image_size=128)


@pytest.mark.parametrize("y, x", [(-0.5, 50.0), (50.0, -0.5), (-0.4, -0.4), (99.49, 100.49)])
def test_an_object_windows_first_click_on_the_frames_edge_pixels_is_taken(net128, y, x):
    """Before: a first click at x = -0.5 gave a window with x0 = 0 and was refused ("lies outside its window ...
    remove the object and prompt it again"), though the frame, the widget and VideoSession take it."""
    from sam2_model.windowed_session import WindowedSession

    session = WindowedSession(net128, FrameSource(cell_movie(), image_size=128), window=48)
    session.add_prompt(0, 1, points=[[x, y]], labels=[1])
    x0, y0, x1, y1 = session.window_of(1)
    assert (x0 == 0 or x > 0) and (y0 == 0 or y > 0) and (x1 == 101 or x < 100) and (y1 == 100 or y < 99)
    past = [100.5 if x > 99 else -0.51 if x < 0 else x, 99.5 if y > 99 else -0.51 if y < 0 else y]  # off the frame
    with pytest.raises(ValueError, match=r"outside the 101x100 frame.*-0.5 <= y < 99.5"):
        session.add_prompt(0, 2, points=[past], labels=[1])


def test_a_negative_click_just_past_an_objects_window_is_left_out_not_a_crash(net128):
    """A click on the first pixel right of the window (x1 - 0.3, drawn on pixel x1) is outside it; before, it was taken
    in and the window's session refused it in window pixels ("point (x=47.7, y=24) lies outside the 48x48 frame")."""
    from sam2_model.windowed_session import WindowedSession

    session = WindowedSession(net128, FrameSource(cell_movie(), image_size=128), window=48)
    session.add_prompt(0, 1, points=[[30.0, 30.0]], labels=[1])
    x0, y0, x1, y1 = session.window_of(1)
    assert x1 < 101  # an inner edge
    alone = session.add_prompt(0, 1, points=[[30.0, 30.0]], labels=[1], refine=False)
    for x in (x1 - 0.3, x0 - 0.6):  # past the last and first pixel: left out (they cannot touch the object)
        both = session.add_prompt(0, 1, points=[[30.0, 30.0], [x, 30.0]], labels=[1, 0], refine=False)
        np.testing.assert_array_equal(both, alone)
    with pytest.raises(ValueError, match=r"lies outside its window \(6, 6, 54, 54\)"):
        session.add_prompt(0, 1, points=[[30.0, 30.0], [x1 - 0.3, 30.0]], labels=[1, 1])


def test_windowed_predictor_gives_a_click_on_the_first_pixels_outer_half_to_its_window(net128):
    """Before: a click at x = -0.4 was silently dropped from its window (decoded with no prompt at all)."""
    from sam2_model.windows import WindowedPredictor

    predictor = WindowedPredictor(net128, side=48)
    predictor.set_image(cell_movie()[0])
    logits, _, window = predictor.predict(points=[[-0.4, 50.0]], labels=[1], return_logits=True)
    x0, y0, x1, y1 = window
    assert x0 == 0
    # the window's own decoder given the click in window pixels: the same logits
    alone, _, _ = predictor._predictor(window).predict(points=[[-0.4, 50.0 - y0]], labels=[1], return_logits=True)
    np.testing.assert_array_equal(logits[:, y0:y1, x0:x1], alone)
    from sam2_model.windows import inside_window  # the rule: inside_frame in the window's pixels

    edge = np.array([[-0.5, 20.0], [-0.51, 20.0], [x1 - 0.51, 20.0], [x1 - 0.5, 20.0]])
    assert inside_window(edge, (0, 0, x1, 90)).tolist() == [True, False, True, False]
    assert inside_window(edge + 10, (10, 10, x1 + 10, 90)).tolist() == [True, False, True, False]


def test_automatic_points_follow_the_frames_click_rule(net):
    """Before: 0 <= x <= W: x = -0.4 (on pixel 0) refused, x = W (past the last pixel) taken."""
    from sam2_model.automatic import AutomaticMaskGenerator

    generator = AutomaticMaskGenerator(net, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    image = blobs(1)[0]
    assert generator._check_points([[-0.5, -0.4], [63.49, 10.0]], 64, 64).shape == (2, 2)
    records = generator.generate(image, points=[[-0.4, 20.0]])
    assert len(records) == 1 and np.allclose(records[0]["point_coords"], [[-0.4, 20.0]])
    for bad in ([64.0, 10.0], [63.5, 10.0], [10.0, -0.51]):
        with pytest.raises(ValueError, match=r"points must lie inside the 64x64 image.*-0.5 <= y < 63.5 and "
                                             r"-0.5 <= x < 63.5"):
            generator.generate(image, points=[bad])


@pytest.mark.parametrize("point, ok", [([0, 5.0, 10.5], False), ([0, 10.5, 5.0], False), ([0, -0.5, -0.5], True),
                                       ([0, 10.49, 10.49], True), ([0, -0.51, 5.0], False), ([3.4, 5.0, 5.0], True),
                                       ([3.5, 5.0, 5.0], False)])
def test_a_session_files_clicks_are_checked_by_the_sessions_rule(tmp_path, point, ok):
    """x = W - 0.5 on an odd W (10.5 on W = 11) passed the file's check (np.rint rounds it to 10) and then the
    session refused it halfway through the load; the frame axis still rounds to its nearest frame."""
    from napari_sam2.session_file import SessionRecord, read_session, write_session

    record = SessionRecord((4, 11, 11), [point], [True], [1], np.zeros((0, 4, 3)), [],
                           model={"name": "demo", "weights": "embedded (demo)", "image_size": 128, "path": None},
                           axes={"frame_axis": 0, "channel_axis": "", "channel": ""})
    path = write_session(tmp_path / "edge", record)
    if ok:
        assert read_session(path).points.tolist() == [point]
        return
    with pytest.raises(ValueError, match=r"points: click 0 at .* lies outside the image of shape \(4, 11, 11\)") as e:
        read_session(path)
    if point[0] == 0:
        assert "whose frames take -0.5 <= y < 10.5 and -0.5 <= x < 10.5" in str(e.value)
