"""The segmentation widget's own objects and Undo beside "Track all cells" in one masklets layer, driven as a person
would (real viewer, the widget opened through the manifest, clicks added to the layers, buttons pressed, workers
awaited, the embedded demo model): ids never collide, a click or Propagate never takes a track's pixels, and neither
Undo throws away a later change silently."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from scipy import ndimage  # noqa: E402

from sam2_model.evaluation import click_point  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402

from widget_helpers import open_widget as open_segmentation_widget, track_all_panel  # noqa: E402
from widget_helpers import wait_tracking as wait  # noqa: E402
FRAMES = 5


@pytest.fixture(scope="module")
def movie():
    """Five nuclei in 5 frames of 96 x 96, and one more on frame 3 only (a copy of nucleus 1 of frame 0 pasted on
    background): "Track all cells" (detecting every 2nd frame) misses it, the person clicks it in the widget."""
    movie = make_timelapse(num_frames=FRAMES, shape=(96, 96), num_cells=5, seed=1, divisions=False)
    cell = movie.labels[0] == 1
    rows, cols = np.nonzero(cell)
    room = ndimage.distance_transform_edt(np.pad(movie.labels[3] == 0, 1))[1:-1, 1:-1]  # from cells and edges
    row, col = np.unravel_index(np.argmax(room), cell.shape)
    shift = (row - int(rows.mean()), col - int(cols.mean()))
    image = movie.image.copy()
    image[3][rows + shift[0], cols + shift[1]] = movie.image[0][rows, cols]
    return SimpleNamespace(image=image, labels=movie.labels, missed=(row, col))


@pytest.fixture
def notes():
    """Every napari notification's text."""
    from napari.utils.notifications import notification_manager

    seen = []

    def grab(event):
        seen.append(str(getattr(getattr(event, "value", event), "message", event)))

    notification_manager.notification_ready.connect(grab)
    yield seen
    notification_manager.notification_ready.disconnect(grab)


def open_widget(make_napari_viewer, tmp_path, monkeypatch, *images):
    viewer, w = open_segmentation_widget(make_napari_viewer, tmp_path, monkeypatch, *images)
    return viewer, w, track_all_panel(w)


def click(qtbot, w, frame, row, col):
    w.viewer.dims.set_current_step(0, frame)
    w.points_layer.add(np.array([[frame, row, col]], float))
    wait(qtbot, w)


def kept(before, after):
    """Every labelled pixel of ``before`` holds the same label in ``after``."""
    return np.array_equal(after[before > 0], before[before > 0])


def test_a_click_and_propagate_after_track_all_never_touch_a_track(make_napari_viewer, qtbot, tmp_path, monkeypatch,
                                                                    movie):
    viewer, w, panel = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    x, y = click_point(movie.labels[0] == 1)
    click(qtbot, w, 0, y, x)  # the widget's object 1
    assert (w.labels_layer.data[0] == 1).sum() > 20
    viewer.dims.set_current_step(0, 0)
    panel.track_button.click()
    wait(qtbot, w)
    assert panel.status.text().startswith("Done"), panel.status.text()
    labels = w.labels_layer.data
    tracks = set(np.unique(labels).tolist()) - {0}
    assert len(tracks) >= 4 and 1 not in tracks  # tracking's ids start above the widget's objects
    assert w.object_spin.value() > max(tracks)  # and the widget's next object above the tracks
    tracked = labels.copy()

    click(qtbot, w, 3, *movie.missed)  # a new object: the nucleus the tracking missed on frame 3
    new = int(w.points_layer.features["obj_id"].to_numpy()[-1])
    assert new not in tracks and new > 1 and (labels[3] == new).sum() > 20
    assert kept(tracked[3], labels[3]), "a click took pixels of a track"
    viewer.dims.set_current_step(0, 3)
    w.forward_button.click()  # object 1 (from frame 0, where tracking replaced it) and the new object
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()
    for t in range(FRAMES):
        assert kept(tracked[t], labels[t]), f"Propagate took pixels of a track on frame {t}"
    w.new_object_button.click()  # "New object" never picks a track's id
    assert w.object_spin.value() > max(tracks | {new})

    before = labels.copy()  # nor does the panel's "Correct cell" take one of the widget's objects as a track
    panel.track_spin.setValue(1)
    viewer.dims.set_current_step(0, 0)
    panel.fix_button.click()
    viewer.layers["SAM2 cell fix [cells]"].add(np.array([[0, y, x]], float))
    panel.repropagate_button.click()
    wait(qtbot, w)
    assert "is an object of the segmentation widget" in panel.status.text(), panel.status.text()
    np.testing.assert_array_equal(labels, before)


def test_tracking_that_ends_on_another_image_moves_that_images_next_object_above_its_tracks(
        make_napari_viewer, qtbot, tmp_path, monkeypatch, movie):
    other = make_timelapse(num_frames=3, shape=(64, 64), num_cells=2, seed=4).image
    viewer, w, panel = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("A", movie.image), ("B", other))
    w.image_combo.setCurrentText("A")
    panel.track_button.click()
    qtbot.waitUntil(lambda: panel.worker is not None, timeout=60_000)
    w.image_combo.setCurrentText("B")  # the person looks at another image while A is tracked
    wait(qtbot, w)
    assert w.object_spin.value() == 1  # B has no tracks
    w.image_combo.setCurrentText("A")
    labels = w.labels_layer.data
    tracks = set(np.unique(labels).tolist()) - {0}
    assert tracks and w.object_spin.value() > max(tracks)
    tracked = labels.copy()
    click(qtbot, w, 3, *movie.missed)
    new = int(w.points_layer.features["obj_id"].to_numpy()[-1])
    assert new > max(tracks) and (labels[3] == new).any()
    assert kept(tracked[3], labels[3])


def test_widget_undo_refuses_when_track_all_rewrote_its_frames_and_both_undos_then_agree(
        make_napari_viewer, qtbot, tmp_path, monkeypatch, movie, notes):
    viewer, w, panel = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    x, y = click_point(movie.labels[0] == 1)
    click(qtbot, w, 0, y, x)
    empty = np.zeros_like(w.labels_layer.data)
    viewer.dims.set_current_step(0, 0)
    w.forward_button.click()  # the widget's object 1 on frames 0-4
    wait(qtbot, w)
    labels = w.labels_layer.data
    propagated = labels.copy()
    viewer.dims.set_current_step(0, 2)
    panel.track_button.click()  # rewrites frames 2-4
    wait(qtbot, w)
    tracked = labels.copy()
    assert not np.array_equal(tracked[2:], propagated[2:])

    w.undo_button.click()  # would restore frames 0-4 to before the propagation, erasing tracks on 2-4
    wait(qtbot, w)
    np.testing.assert_array_equal(labels, tracked)
    message = w.status.text()
    assert "Nothing was undone" in message and "frames 2-4 were rewritten by 'Track all cells'" in message, message
    assert "'Undo tracking step'" in message and any("frames 2-4" in n for n in notes)
    assert "SAM2 lineage [cells]" in viewer.layers

    # a click after tracking: the panel names the widget's step as what changed its frame
    click(qtbot, w, 3, *movie.missed)
    after_click = labels.copy()
    assert not np.array_equal(after_click[3], tracked[3])
    panel.undo_button.click()
    np.testing.assert_array_equal(labels, after_click)
    assert "frame 3 was changed by the widget's clicks or propagation" in panel.status.text(), panel.status.text()

    w.undo_button.click()  # the click
    wait(qtbot, w)
    np.testing.assert_array_equal(labels, tracked)
    panel.undo_button.click()  # the tracking run
    np.testing.assert_array_equal(labels, propagated)
    assert "SAM2 lineage [cells]" not in viewer.layers
    w.undo_button.click()  # the propagation, now that nothing later is in the way
    wait(qtbot, w)
    assert w.status.text().startswith("Undid"), w.status.text()
    assert not labels[1:].any() and labels[0].any()
    w.undo_button.click()  # the first click
    wait(qtbot, w)
    np.testing.assert_array_equal(labels, empty)


def test_widget_undo_refuses_after_painting_until_the_paint_is_undone(make_napari_viewer, qtbot, tmp_path,
                                                                       monkeypatch, movie):
    viewer, w, panel = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    x, y = click_point(movie.labels[0] == 1)
    click(qtbot, w, 0, y, x)
    viewer.dims.set_current_step(0, 0)
    w.forward_button.click()
    wait(qtbot, w)
    layer = w.labels_layer
    layer.brush_size = 5
    layer.paint((3, *movie.missed), 5, refresh=True)  # the brush, label 5, on frame 3
    painted = layer.data.copy()
    assert (painted[3] == 5).sum() >= 5

    w.undo_button.click()
    wait(qtbot, w)
    np.testing.assert_array_equal(layer.data, painted)  # the painting is not lost silently
    assert "frame 3 was changed by hand or another tool" in w.status.text(), w.status.text()
    layer.undo()  # the layer's own undo (Ctrl+Z) takes the paint back
    assert not (layer.data == 5).any()
    w.undo_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Undid"), w.status.text()
    assert not layer.data[1:].any()


def test_cancel_from_the_widget_and_a_failed_run_name_the_right_undo(make_napari_viewer, qtbot, tmp_path,
                                                                     monkeypatch, movie, notes):
    viewer, w, panel = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel.track_button.click()
    qtbot.waitUntil(lambda: panel.worker is not None, timeout=60_000)
    w.cancel_button.click()  # the widget's Cancel stops the tracking run
    wait(qtbot, w)
    cancelled = [n for n in notes if "cancelled" in n]
    assert cancelled and all("Undo tracking step" in n for n in cancelled), notes
    assert panel.status.text().startswith("Cancelled"), panel.status.text()
    kept_frames = w.labels_layer.data.copy()

    panel.min_diameter_spin.setValue(60)  # no cell that large: the run goes through every frame and finds none
    panel.max_diameter_spin.setValue(80)
    panel.track_button.click()
    wait(qtbot, w)
    text = panel.status.text()
    assert text.startswith("Done") and "no track" in text and "no cells were detected" in text, text
    assert "check the cell diameter (60-80 px" in text and "Pick a track" not in text, text
    assert not w.labels_layer.data.any()  # its frames replaced whole, as every run's

    w.undo_button.click()
    assert w.status.text() == "Nothing to undo."
    panel.undo_button.click()  # the panel's Undo reverts the empty run: the cancelled run's frames come back
    np.testing.assert_array_equal(w.labels_layer.data, kept_frames)
    panel.undo_button.click()  # and then whatever the cancelled run wrote
    assert not w.labels_layer.data.any()
