"""The dock widget in a real napari viewer (run under xvfb-run), driven as a user would."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

WIDGET = ("napari-sam2", "SAM 2 segmentation")


def moving_cells(num_frames: int = 5, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    frames = []
    for t in range(num_frames):
        image = 600 + 10 * xx
        for cy, cx in ((20, 15 + 2 * t), (45, 40 - t)):
            image = image + 8000 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 40.0)
        frames.append(image)
    return np.stack(frames).astype(np.uint16)


@pytest.fixture
def widget(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    viewer = make_napari_viewer()
    viewer.add_image(moving_cells(), name="cells", scale=(1.0, 0.5, 0.5), translate=(0, 10, 5))
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    widget.model_combo.setCurrentText("demo")
    widget.checkpoint_combo.setCurrentText("embedded (demo)")  # the trained demo model segments the blobs
    widget.size_spin.setValue(128)
    return viewer, widget


def wait(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: not widget.busy(), timeout=timeout)


def expected_plane(widget, frame):
    session = widget.controller.session
    logits = session.frame_logits(frame)
    ids = np.asarray(session.obj_ids)
    best = logits.argmax(axis=0)
    return np.where(logits.max(axis=0) > 0, ids[best], 0)


def test_click_segments_the_frame_and_propagation_fills_the_stack(widget, qtbot, tmp_path):
    viewer, w = widget
    assert "SAM2 clicks [cells]" in viewer.layers and "SAM2 boxes [cells]" in viewer.layers
    viewer.dims.set_current_step(0, 1)
    points = w.points_layer
    # A click in world coordinates on the cell at row 20, col 17 of frame 1.
    points.add(np.array([[1, 10 + 20 * 0.5, 5 + 17 * 0.5]]))
    wait(qtbot, w)
    labels = w.labels_layer.data
    assert labels.shape == (5, 64, 64)
    session = w.controller.session
    assert session.obj_ids == [1] and session.prompted_frames(1) == [1]
    np.testing.assert_array_equal(labels[1], expected_plane(w, 1))
    assert not labels[0].any()

    w.forward_button.click()
    wait(qtbot, w)
    for frame in range(1, 5):
        np.testing.assert_array_equal(labels[frame], expected_plane(w, frame))
    assert not labels[0].any()  # forward only

    w.export("labels", str(tmp_path / "labels.tif"))
    w.export("table", str(tmp_path / "table.csv"))
    import tifffile

    np.testing.assert_array_equal(tifffile.imread(tmp_path / "labels.tif"), labels)
    rows = (tmp_path / "table.csv").read_text().splitlines()
    assert rows[0].startswith("frame,obj_id,area") and len(rows) - 1 == sum(labels[f].any() for f in range(5))
    tracks = w.add_tracks_layer()
    if len(rows) > 1:
        assert tracks.data.shape[1] == 4 and len(tracks.data) == len(rows) - 1
        # on the masks: the image's scale and translate (the first point was 10 px above and 5 left of its mask)
        np.testing.assert_allclose(tracks.translate, (0, 10, 5))
        np.testing.assert_allclose(tracks.scale, (1, .5, .5))
        first = tracks.data[0]
        world = tracks.data_to_world(first[1:])
        mask = labels[int(first[1])] == first[0]
        centre = np.array([first[1], *np.argwhere(mask).mean(axis=0)]) * (1, .5, .5) + (0, 10, 5)
        np.testing.assert_allclose(world, centre, atol=1.0)
        w.add_tracks_layer()  # pressed again: the same layer, updated, not a second one
        assert [layer.name for layer in viewer.layers].count(tracks.name) == 1 and len(viewer.layers) == 5
    else:  # random weights may segment nothing
        assert tracks is None

    w.undo_button.click()
    wait(qtbot, w)
    assert not labels[2:].any()  # the propagation run was undone; the click's frame stays
    np.testing.assert_array_equal(labels[1], expected_plane(w, 1))


def test_second_object_and_negative_click(widget, qtbot):
    viewer, w = widget
    points = w.points_layer
    points.add(np.array([[0, 10 + 20 * 0.5, 5 + 15 * 0.5]]))
    wait(qtbot, w)
    w.new_object_button.click()
    assert w.object_spin.value() == 2
    points.add(np.array([[0, 10 + 45 * 0.5, 5 + 40 * 0.5]]))
    wait(qtbot, w)
    w.positive_button.click()  # as a person does: the +/- toggle
    points.add(np.array([[0, 10 + 5 * 0.5, 5 + 5 * 0.5]]))
    wait(qtbot, w)
    features = points.features
    assert features["obj_id"].tolist() == [1, 2, 2] and features["positive"].tolist() == [True, True, False]
    assert w.controller.session.obj_ids == [1, 2]
    np.testing.assert_array_equal(w.labels_layer.data[0], expected_plane(w, 0))


def test_a_negative_click_where_the_object_has_no_mask_yet_is_refused_and_works_once_tracked(widget, qtbot):
    """Negative clicks alone take pixels from a mask: on a frame the object was not tracked to they are refused (sent,
    the model made a mask of whatever it saw there); after propagating, the same click corrects the tracked mask."""
    viewer, w = widget
    points = w.points_layer
    points.add(np.array([[0, 10 + 20 * 0.5, 5 + 15 * 0.5]]))  # object 1 on frame 0
    wait(qtbot, w)
    w.positive_button.click()
    viewer.dims.set_current_step(0, 3)
    points.add(np.array([[3, 10 + 5 * 0.5, 5 + 60 * 0.5]]))  # a negative click on frame 3, not tracked yet
    wait(qtbot, w)
    assert "Failed: the prompt of object 1 on frame 3 was refused: object 1 has no mask on frame 3 yet" in w.status.text()
    assert "propagate to frame 3 first and click there again" in w.status.text()
    assert not w.labels_layer.data[3].any() and w.controller.session.prompted_frames(1) == [0]
    w.forward_button.click()  # the refused click is left out: propagation runs
    wait(qtbot, w)
    assert w.labels_layer.data[3].any() and w.controller.session.prompted_frames(1) == [0]
    points.selected_data = {1}
    points.remove_selected()
    points.add(np.array([[3, 10 + 5 * 0.5, 5 + 60 * 0.5]]))  # clicked again, now on the tracked mask
    wait(qtbot, w)
    assert w.controller.session.prompted_frames(1) == [0, 3] and not w.status.text().startswith("Failed")
    np.testing.assert_array_equal(w.labels_layer.data[3], expected_plane(w, 3))
    assert w.labels_layer.data[3].any()


def test_a_click_moved_to_another_cell_after_propagating_segments_that_cell_alone(make_napari_viewer, qtbot,
                                                                                   tmp_path, monkeypatch):
    """Moving the click that started an object re-segments its frame as a new click would: the mask that click made
    is not fed back to the decoder with the moved one (it was, once the frame had been propagated from, and the mask
    covered both cells)."""
    from sam2_model.evaluation import click_point
    from sam2_model.synthetic import make_timelapse

    from widget_helpers import open_widget

    movie = make_timelapse(num_frames=6, shape=(96, 96), num_cells=4, seed=3, divisions=False, enter_leave=False,
                           radius_fraction=0.1)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    first, second = movie.labels[0] == 1, movie.labels[0] == 2
    (x, y), (x2, y2) = click_point(first), click_point(second)
    w.points_layer.add(np.array([[0, y, x]]))
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    w.points_layer.data = np.array([[0, y2, x2]])  # dragged onto the other cell
    wait(qtbot, w)
    mask = w.labels_layer.data[0] == 1
    assert (mask & second).sum() > 0.6 * second.sum() and (mask & first).sum() < 0.1 * first.sum()
    np.testing.assert_array_equal(w.labels_layer.data[0], expected_plane(w, 0))


def test_cancel_leaves_whole_frames_and_undo_restores(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    viewer = make_napari_viewer()
    viewer.add_image(moving_cells(num_frames=30), name="cells")
    _, w = viewer.window.add_plugin_dock_widget(*WIDGET)
    w.checkpoint_combo.setCurrentText("random weights (testing)")
    w.size_spin.setValue(128)
    w.points_layer.add(np.array([[0, 20, 15]]))
    wait(qtbot, w)
    labels = w.labels_layer.data
    before = labels.copy()
    w.forward_button.click()
    qtbot.waitUntil(lambda: w.progress.value() >= 3, timeout=120_000)
    w.cancel_button.click()
    wait(qtbot, w)
    tracked = w.controller.session.tracked_frames(1)
    done = [f for f in range(30) if not np.array_equal(labels[f], before[f]) or f in tracked]
    assert 0 < len(done) < 30  # stopped early
    for frame in range(30):
        if frame in tracked:
            np.testing.assert_array_equal(labels[frame], expected_plane(w, frame))
        else:
            np.testing.assert_array_equal(labels[frame], before[frame])
    w.undo_button.click()
    wait(qtbot, w)
    np.testing.assert_array_equal(labels, before)


def test_settings_persist(widget, tmp_path):
    from napari_sam2.settings import load_settings

    _, w = widget
    w.device_combo.setCurrentText("cpu")
    assert load_settings()["device"] == "cpu"
    assert load_settings()["checkpoint"] == "embedded (demo)"


def test_smoothing_reaches_the_model_and_is_remembered(widget, qtbot, tmp_path):
    """Set "Smooth frames" as a person does, click: the model sees the blurred frames (the inputs of the same stack
    blurred beforehand) and the layer shows its masks; the choice is saved, and "off" goes back to the frames as
    stored."""
    import torch
    from scipy import ndimage

    from napari_sam2.settings import load_settings
    from sam2_model import FrameSource

    viewer, w = widget
    assert w.smooth_spin.text() == "auto" and "smooth" not in w.session_options()
    w.smooth_spin.setValue(2.0)
    assert load_settings()["smooth"] == 2.0
    w.points_layer.add(np.array([[0, 10 + 20 * 0.5, 5 + 15 * 0.5]]))
    wait(qtbot, w)
    session = w.controller.session
    assert session.frames.smooth == 2.0
    blurred = np.stack([ndimage.gaussian_filter(frame.astype(np.float32), 2.0) for frame in moving_cells()])
    assert torch.equal(session.frames.model_input(0), FrameSource(blurred, image_size=128).model_input(0))
    labels = w.labels_layer.data
    np.testing.assert_array_equal(labels[0], expected_plane(w, 0))
    assert labels[0].any()
    w.smooth_spin.setValue(0.0)  # "off": the next run is on the frames as stored, with the object kept
    w.segment_button.click()
    wait(qtbot, w)
    assert w.controller.session.frames.smooth == 0.0 and w.controller.obj_ids == [1]
    np.testing.assert_array_equal(labels[0], expected_plane(w, 0))
    assert load_settings()["smooth"] == 0.0
