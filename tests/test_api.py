"""The scripting API ``napari_sam2.segment``: inputs people actually pass, and the errors for the wrong ones.

Errors are checked before any model work (``build_model`` is replaced by a tripwire there); behaviour
runs the embedded demo model on a short synthetic time-lapse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage

import napari_sam2
import napari_sam2.api as api
from napari_sam2 import segment, track_cells
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model.metrics import region_similarity
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import tracks_layer_data

# IoU of a found cell: the two clicked cells are small (~15 px); the weights shipped since 2026-12-05 (stop 33) give
# 0.68 and 0.90 on frame 0, those before 0.87 and 0.96
FOUND = 0.6


@pytest.fixture(scope="module")
def movie():
    return make_timelapse(num_frames=3, shape=(128, 128), seed=900_301)


@pytest.fixture(scope="module")
def clicks(movie):
    ids = clickable_objects(movie.labels[0])[:2]
    rows = []
    for obj_id in ids:
        x, y = click_point(movie.labels[0] == obj_id)
        rows.append((0, y, x, 1, obj_id))
    return rows


@pytest.fixture(scope="module")
def grey_labels(movie, clicks):
    labels = segment(movie.image, clicks, device="cpu")
    for _, _, _, _, obj_id in clicks:  # the demo model really finds the clicked cells
        assert region_similarity(labels[0] == obj_id, movie.labels[0] == obj_id) > FOUND
    return labels


@pytest.fixture
def no_model(monkeypatch):
    """Fail loudly if a test reaches model building (bad input must be rejected before it)."""

    def tripwire(*args, **kwargs):
        raise AssertionError("build_model was called before the input was checked")

    monkeypatch.setattr(api.sm, "build_model", tripwire)


BAD_INPUTS = [
    (dict(clicks=[(0, 60, 60, 1)]), r"clicks must be rows \(frame, y, x, label, obj_id\) \(5 values each\); got rows of 4"),
    (dict(clicks=[(0, 60, 60, 2, 1)]), r"clicks row 0: label must be 1 \(positive\) or 0 \(negative\), got 2"),
    (dict(clicks=[(0, 60, 60, 1, 0)]), r"clicks row 0: obj_id must be a positive integer"),
    (dict(clicks=[(0, 60, 60, 1, 2**32)]), r"clicks row 0: obj_id must be a positive integer up to 4294967295 \(labels "
                                           r"are uint32\), got 4294967296"),
    (dict(clicks=[], boxes=[(0, 300, 300, 400, 400, 1)]), r"boxes row 0: the box from \(y=300, x=300\) to \(y=400, "
                                                          r"x=400\) lies wholly outside the 128 x 128"),
    (dict(clicks=[(5, 60, 60, 1, 1)]), r"clicks row 0: frame 5 is not one of the stack's frames 0..2"),
    (dict(clicks=[(0, 300, 60, 1, 1)]), r"clicks row 0: \(y=300, x=60\) lies outside the 128 x 128"),
    (dict(clicks=[(0, 60, "a", 1, 1)]), r"clicks must be rows \(frame, y, x, label, obj_id\) of numbers"),
    (dict(clicks=[], boxes=[(0, 1, 2, 3, 4)]), r"boxes must be rows \(frame, y0, x0, y1, x1, obj_id\)"),
    (dict(clicks=[]), r"needs at least one click or box"),
    (dict(direction="fwd"), r"direction must be one of 'forward', 'backward', 'both', got 'fwd'"),
    (dict(image=np.zeros(5)), r"image must be a 2D \(Y, X\) image, a \(T, Y, X\) stack.*got 1D data of shape \(5,\)"),
    (dict(image=[[1, 2], [3]]), r"image: .*inhomogeneous"),
    (dict(image=np.array([["a", "b"], ["c", "d"]])), r"image must hold numbers"),
    (dict(image=np.zeros((3, 2, 128, 128))), r"axis 1 \(size 2\).*neither propagated, channel nor fixed: pass "
                                              r"fixed=\{axis: index\}.*channel_axis=1.*frame_axis=1"),
    (dict(image=np.zeros((3, 2, 128, 128)), fixed={1: 2}), r"fixed=\{axis: index\}: index 2 is outside axis 1"),
    # a small last axis is named as channels, in the API's words (not the command line's)
    (dict(image=np.zeros((3, 128, 128, 2))), r"axis 3 \(size 2\), the last axis .* looks like 2 channels, not image "
                                              r"columns: pass channel_axis=3 with channel=N \(0..1\).*channel='mean' "
                                              r"or channel='max' to combine them$"),
    (dict(image=np.zeros((3, 128, 128, 2)), fixed={3: 1}), r"only axes before the rows can be fixed: pass "
                                                            r"channel_axis=3, channel=1$"),
    (dict(image=np.zeros((3, 128, 128, 3)), rgb=False), r"pass channel_axis=3 .*\(or rgb=True to use them as colour\)"),
    (dict(image=np.zeros((3, 2, 128, 128)), channel_axis=1), r"axis 1 of the image \(3, 2, 128, 128\) holds 2 channels: "
                                                             r"pick one with channel=N \(0..1\) or combine them with "
                                                             r"channel='mean' or channel='max'$"),
    (dict(image=np.zeros((3, 2, 128, 128)), channel_axis=1, channel=5), r"channel must be a channel index 0..1"),
    (dict(channel=1), r"channel=1 needs a channel axis: pass channel_axis"),
    (dict(frame_axis=1), r"frame_axis=1 is a spatial \(row/column\) axis"),
    (dict(image=np.zeros((3, 128, 128, 5)), rgb=True), r"rgb=True needs a last axis of 3 \(RGB\) or 4 \(RGBA\)"),
    (dict(contrast_limits=(5, 5)), r"contrast_limits must be \(low, high\) finite numbers with low < high, got \(5, 5\)"),
    (dict(contrast_limits=(1,)), r"contrast_limits must be \(low, high\): two numbers, got \(1,\)"),
    (dict(smooth=-1), r"smooth must be \"auto\", \"off\" or a number of pixels >= 0, got -1"),
    (dict(smooth="a lot"), r"smooth must be \"auto\", \"off\" or a number of pixels >= 0, got 'a lot'"),
]


@pytest.mark.parametrize("change, message", BAD_INPUTS)
def test_bad_input_is_a_value_error_naming_the_argument_before_any_model_work(movie, clicks, no_model, change, message):
    arguments = dict(image=movie.image, clicks=clicks, device="cpu")
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        segment(**arguments)


def test_contrast_limits_reach_the_model(movie, clicks, grey_labels):
    """The stack's own default limits given explicitly change nothing; limits that wash the frames out do."""
    from sam2_model import FrameSource

    default = FrameSource(movie.image, image_size=256).contrast_limits
    np.testing.assert_array_equal(segment(movie.image, clicks, device="cpu", contrast_limits=default), grey_labels)
    low = float(np.percentile(movie.image, 5))
    washed = segment(movie.image, clicks, device="cpu", contrast_limits=(low - 1, low))  # nearly all white
    assert not np.array_equal(washed, grey_labels)


def test_smoothing_is_segmenting_the_smoothed_frames(movie, clicks, grey_labels):
    """smooth=sigma tracks exactly what the same stack blurred beforehand gives; 0 changes nothing."""
    from scipy import ndimage

    np.testing.assert_array_equal(segment(movie.image, clicks, device="cpu", smooth=0), grey_labels)
    smoothed = segment(movie.image, clicks, device="cpu", smooth=2.5)
    blurred = np.stack([ndimage.gaussian_filter(frame.astype(np.float32), 2.5) for frame in movie.image])
    np.testing.assert_array_equal(segment(blurred, clicks, device="cpu"), smoothed)
    assert not np.array_equal(smoothed, grey_labels)


def test_nested_lists_segment_like_the_array(movie, clicks, grey_labels):
    labels = segment(movie.image.tolist(), [list(row) for row in clicks], device="cpu")
    np.testing.assert_array_equal(labels, grey_labels)


def test_rgb_and_rgba_time_lapses_are_detected_and_segmented(movie, clicks, grey_labels):
    rgb = np.repeat(movie.image[..., None], 3, axis=-1)
    with pytest.warns(UserWarning, match="read as RGB colour"):  # not uint8: colour, said with both readings
        colour = segment(rgb, clicks, device="cpu")  # (T, Y, X, 3): the last axis is colour
    assert colour.shape == movie.image.shape
    for _, _, _, _, obj_id in clicks:
        assert region_similarity(colour[0] == obj_id, movie.labels[0] == obj_id) > FOUND
    rgba = np.concatenate([rgb, np.full(rgb.shape[:-1] + (1,), 9, rgb.dtype)], axis=-1)
    np.testing.assert_array_equal(segment(rgba, clicks, device="cpu", rgb=True), colour)  # alpha not shown to the model
    single = segment(rgb[0], clicks[:1], device="cpu", rgb=True)  # (Y, X, 3): one RGB image
    assert single.shape == movie.image.shape[1:]
    assert region_similarity(single == clicks[0][4], movie.labels[0] == clicks[0][4]) > FOUND


def _background_click(labels: np.ndarray) -> tuple:
    """(y, x) of the background pixel farthest from every cell of a (Y, X) label image."""
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(labels == 0)
    y, x = np.unravel_index(int(np.argmax(distance)), labels.shape)
    return float(y), float(x)


def test_a_negative_click_alone_on_a_later_frame_corrects_the_tracked_mask(movie, clicks):
    """A negative click on frame 2 is a correction of the mask tracking makes there (as in the widget: propagate,
    then click), not a prompt of its own: sent alone it made a mask of whatever the model saw there (IoU 0.28 against 0.89).
    segment() gives what the widget's steps give: prompts, propagate, the correction, propagate again."""
    from napari_sam2.controller import SegmentationController
    from napari_sam2.layout import StackLayout
    from napari_sam2.prompts import FramePrompt

    frame, y, x, _, obj_id = clicks[1]  # the cell the demo model tracks at IoU 0.88-0.90 on frames 0-2
    by, bx = _background_click(movie.labels[2])
    table = [clicks[1], (2, by, bx, 0, obj_id)]
    seen = []
    labels = segment(movie.image, table, device="cpu", direction="forward", object_window=None,
                     progress=lambda done, total: seen.append((done, total)))
    assert seen == [(n, 6) for n in range(1, 7)]  # frames 0-2 propagated twice: before and after the correction
    for t in range(3):
        assert region_similarity(labels[t] == obj_id, movie.labels[t] == obj_id) > FOUND
    by_hand = np.zeros(movie.image.shape, np.uint32)
    net = api.sm.build_model("demo", checkpoint="download", device="cpu")
    controller = SegmentationController(net, movie.image, StackLayout(3, 0, None), by_hand,
                                        session_options={"corrections_as_conditioning": True}, object_window=None)
    start = FramePrompt(0, obj_id, np.array([[x, y]], np.float32), np.array([1], np.int32))
    correction = FramePrompt(2, obj_id, np.array([[bx, by]], np.float32), np.array([0], np.int32))
    for steps in (controller.apply_prompts([start]), controller.propagate(0, "forward"),
                  controller.apply_prompts([start, correction]), controller.propagate(0, "forward")):
        list(steps)
    np.testing.assert_array_equal(labels, by_hand)


@pytest.mark.parametrize("table, direction, message", [
    ([(1, 60, 60, 0, 3)], "both", r"object 3 has negative clicks only \(label 0, on frame 1\): .* each object needs a "
                                  r"positive click \(label 1\) or a box on some frame"),
    ([(1, 60, 60, 1, 3), (0, 60, 60, 0, 3)], "forward", r"object 3's negative clicks on frame 0 correct a mask that is "
                                                        r"never made: tracking goes forward from frame 1"),
    ([(1, 60, 60, 1, 3), (2, 60, 60, 0, 3)], "backward", r"tracking goes backward from frame 1 .* never reaches frame 2"),
    ([(0, 60, 60, 1, 3), (2, 60, 60, 0, 3)], "backward", r"direction backward from the first prompted frame \(0\): "
                                                         r"there is nothing before frame 0"),
    ([(2, 60, 60, 1, 3)], "forward", r"direction forward from the first prompted frame \(2\): frame 2 is the stack's "
                                     r"last"),
])
def test_prompts_that_track_or_correct_nothing_are_refused_before_any_model_work(movie, no_model, table, direction,
                                                                                   message):
    with pytest.raises(ValueError, match=message):
        segment(movie.image, table, device="cpu", direction=direction)


def test_4d_stacks_take_a_channel_or_a_fixed_slice(movie, clicks, grey_labels):
    stack = np.stack([np.zeros_like(movie.image), movie.image], axis=1)  # (T, 2, Y, X)
    as_channels = segment(stack, clicks, device="cpu", channel_axis=1, channel=1)
    np.testing.assert_array_equal(as_channels, grey_labels)
    as_z = segment(stack, clicks, device="cpu", fixed={1: 1})
    assert as_z.shape == stack.shape  # labels keep the fixed axis, filled at the slice
    np.testing.assert_array_equal(as_z[:, 1], grey_labels)
    assert not as_z[:, 0].any()


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_a_file_of_one_image_is_read_as_that_image(movie, clicks, tmp_path, suffix):
    """segment() and track_cells() take a file of one 2-D image as they take the array (it was refused: "holds a single
    image ... add a time axis"), and give (Y, X) labels."""
    from PIL import Image

    image = movie.image[0]
    path = tmp_path / f"one{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, image)
    else:
        Image.fromarray(image).save(path)
    np.testing.assert_array_equal(segment(path, clicks, device="cpu"), segment(image, clicks, device="cpu"))
    result = track_cells(str(path), device="cpu", image_size=256)
    assert result.labels.shape == image.shape and result.labels.any()


def test_a_pyramid_layer_is_segmented_on_its_full_resolution_level(movie, clicks, grey_labels):
    """A multiscale (pyramid) Image layer, as napari opens large OME-Zarr and pyramidal TIFFs: segment() reads its
    level 0, as the stack itself (it raised "list indices must be integers or slices, not tuple")."""
    from napari.layers import Image as ImageLayer

    stack = movie.image
    pyramid = ImageLayer([stack, stack[:, ::2, ::2], stack[:, ::4, ::4]], multiscale=True)
    np.testing.assert_array_equal(segment(pyramid, clicks, device="cpu"), grey_labels)


@pytest.mark.parametrize("colour", [False, True], ids=["grey", "rgb"])
def test_a_single_2d_image_gives_2d_labels_from_segment_and_track_cells(movie, clicks, colour):
    image = movie.image[0]
    if colour:
        image = np.stack([image] * 3, axis=-1)  # (Y, X, 3): colour, detected as segment() does
    labels = segment(image, clicks, device="cpu", **({"rgb": True} if colour else {}))
    result = track_cells(image, device="cpu", image_size=256)
    assert labels.shape == result.labels.shape == movie.image.shape[1:]
    assert result.labels.dtype == np.uint32 and result.labels.any()
    ids = set(np.unique(result.labels).tolist()) - {0}
    assert {(t.track_id, t.begin, t.end) for t in result.lineage.rows()} == {(i, 0, 0) for i in ids}
    assert result.frames_tracked == [0]
    data, _ = tracks_layer_data(result)  # the Tracks table: one row per cell, at t = 0, on its pixels
    assert sorted(data[:, 0].astype(int).tolist()) == sorted(ids) and not data[:, 1].any()
    centres = ndimage.center_of_mass(np.ones(result.labels.shape), result.labels, data[:, 0])
    np.testing.assert_allclose(data[:, 2:], np.asarray(centres))


def test_a_stack_keeps_its_frame_axis_in_both(movie, grey_labels):
    result = track_cells(movie.image[:2], device="cpu", image_size=256)  # two frames: still a (T, Y, X) stack
    assert result.labels.shape == (2,) + movie.image.shape[1:] and result.frames_tracked == [0, 1]


MSC = Path(__file__).resolve().parents[2] / "shared" / "data" / "ctc-msc" / "01"


@pytest.mark.skipif(not MSC.is_dir(), reason="the real MSC time-lapse is not here")
def test_auto_input_size_and_windows_are_measured_on_the_picked_channel():
    """A stack given as channel 0 of two segments like the stack alone: "auto" sizes look at the channel segmented
    (the second channel, the frames mirrored, once made them pick 512 px and 128 px windows instead of 256 and none)."""
    stack = np.stack([tifffile.imread(MSC / f"t{t:03d}.tif")[:256, 30:286] for t in range(2)])
    two_colour = np.stack([stack, stack[:, ::-1]], axis=1)  # (T, C, Y, X)
    clicks = [(0, 120, 85, 1, 1)]
    alone = segment(stack, clicks, device="cpu", image_size="auto")
    np.testing.assert_array_equal(segment(two_colour, clicks, device="cpu", image_size="auto", channel_axis=1,
                                          channel=0), alone)


@pytest.mark.gui
def test_a_single_2d_image_in_a_viewer_gives_2d_labels_like_its_masklets_layer(make_napari_viewer, monkeypatch,
                                                                               tmp_path, movie):
    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    viewer = make_napari_viewer()
    viewer.add_image(movie.image[0], name="one")
    napari_sam2.get_widget(viewer).size_spin.setValue(256)
    result = track_cells(viewer, "one")
    assert result.labels.shape == movie.image.shape[1:] and result.frames_tracked == [0] and result.labels.any()
    np.testing.assert_array_equal(viewer.layers["SAM2 masklets [one]"].data, result.labels)
    assert {(t.begin, t.end) for t in result.lineage.rows()} == {(0, 0)}


# ------------------------------------------------------------------ track_cells: the options of track --auto
TRACK_BAD_OPTIONS = [
    (dict(smooth=-1), r"smooth must be a number of pixels >= 0 \(0: off\), got -1"),
    (dict(contrast_limits=(5, 5)), r"contrast_limits must be \(low, high\) finite numbers with low < high"),
    (dict(min_contrast=-0.5), r"min_contrast must be a finite number >= 0 \(0 keeps every mask\), got -0.5"),
    (dict(max_lost_frames=0), r"max_lost_frames must be an integer >= 1, got 0"),
    (dict(direction="both"), r"direction both: automatic tracking .*runs one way from its start frame"),
    (dict(direction="backward"), r"direction backward from start_frame 0: there is nothing before frame 0 to track"),
]


@pytest.mark.parametrize("change, message", TRACK_BAD_OPTIONS)
def test_track_cells_refuses_a_bad_option_naming_it_before_any_model_work(movie, monkeypatch, change, message):
    import sam2_model

    def tripwire(*args, **kwargs):
        raise AssertionError("build_model was called before the options were checked")

    monkeypatch.setattr(sam2_model, "build_model", tripwire)  # as track_cells imports it
    with pytest.raises(ValueError, match=message):
        track_cells(movie.image, device="cpu", **change)


@pytest.fixture(scope="module")
def demo_model():
    import sam2_model as sm

    return sm.build_model("demo", checkpoint="download", device="cpu", image_size=256)


def _library_run(model, stack, source_options=None, **tracker_options):
    """sam2_model.tracking.track_cells on a FrameSource that reads ``stack`` with ``source_options``."""
    from sam2_model import FrameSource
    from sam2_model.tracking import track_cells as library_track_cells

    return library_track_cells(model, FrameSource(stack, image_size=256, **(source_options or {})), **tracker_options)


@pytest.fixture(scope="module")
def plain_run(movie, demo_model):
    """sam2_model.tracking.track_cells of the first two frames, every option at its default."""
    return _library_run(demo_model, movie.image[:2])


def _spans(labels):
    found = {}
    for t, frame in enumerate(labels):
        for i in np.unique(frame[frame > 0]).tolist():
            found[i] = (found.get(i, (t, t))[0], t)
    return found


@pytest.mark.parametrize("option, source_options, tracker_options", [
    (dict(smooth=2.5), dict(smooth=2.5), {}),
    (dict(contrast_limits=(0, 65535)), dict(contrast_limits=(0, 65535)), {}),
    (dict(min_contrast=50.0), {}, dict(min_contrast=50.0)),
    (dict(direction="backward", start_frame=1), {}, dict(reverse=True, start_frame=1)),
], ids=["smooth", "contrast_limits", "min_contrast", "backward"])
def test_track_cells_options_reach_the_tracker(movie, demo_model, plain_run, option, source_options, tracker_options):
    """Each option of ``napari-sam2 track --auto`` that the console takes tracks what sam2_model.track_cells tracks
    given it (on a FrameSource that reads the frames so), and changes the result (they were a TypeError)."""
    stack = movie.image[:2]
    result = track_cells(stack, device="cpu", image_size=256, **option)
    library = _library_run(demo_model, stack, source_options, **tracker_options)
    np.testing.assert_array_equal(result.labels, library.labels)
    assert result.lineage.rows() == library.lineage.rows()
    assert {t.track_id: (t.begin, t.end) for t in result.lineage.rows()} == _spans(result.labels)
    assert plain_run.labels.any() and (not np.array_equal(result.labels, plain_run.labels)
                                       or result.lineage.rows() != plain_run.lineage.rows())


def test_track_cells_max_lost_frames_ends_cells_sooner(movie, demo_model):
    """A blank frame between two frames of cells: max_lost_frames=1 ends the cells it empties there ("lost" on the
    frame before); with the default (3) none ends there."""
    image = movie.image
    blink = np.stack([image[0], np.full_like(image[1], np.median(image[1])), image[1]])
    result = track_cells(blink, device="cpu", image_size=256, max_lost_frames=1)
    assert {t.track_id: (t.begin, t.end) for t in result.lineage.rows()} == _spans(result.labels)
    ended = [t for t in result.lineage.rows() if (t.end, t.end_reason) == (0, "lost")]
    assert ended and not any(t.end == 0 for t in _library_run(demo_model, blink).lineage.rows())


@pytest.mark.gui
def test_track_cells_in_a_viewer_goes_backwards_and_refuses_smoothing(make_napari_viewer, monkeypatch, tmp_path, movie):
    """With a viewer the widget reads the frames (its own smoothing control): smooth/contrast_limits are refused;
    direction and the tracker's options reach the run the panel makes."""
    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    viewer = make_napari_viewer()
    viewer.add_image(movie.image[:2], name="two")
    with pytest.raises(ValueError, match=r"smooth: with a viewer the frames are tracked as the widget reads them"):
        track_cells(viewer, "two", smooth=8)
    napari_sam2.get_widget(viewer).size_spin.setValue(256)
    result = track_cells(viewer, "two", direction="backward", start_frame=1, max_lost_frames=1)
    assert result.frames_tracked == [0, 1] and result.labels.any()
    np.testing.assert_array_equal(viewer.layers["SAM2 masklets [two]"].data, result.labels)
    assert {t.track_id: (t.begin, t.end) for t in result.lineage.rows()} == _spans(result.labels)
