"""The first-day faults of issue 12, each driven as a person would: a real viewer, the widget opened through the
manifest, prompts added to the layers (or a real mouse click on the canvas), buttons pressed, workers awaited."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from sam2_model.evaluation import click_point  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402

WIDGET = ("napari-sam2", "SAM 2 segmentation")
RANDOM = "random weights (testing)"


def wait(qtbot, w, timeout=120_000):
    qtbot.waitUntil(lambda: not w.busy(), timeout=timeout)


def movie(num_frames=6, size=128, seed=3):
    return make_timelapse(num_frames=num_frames, shape=(size, size), num_cells=4, seed=seed, divisions=False,
                          enter_leave=False, radius_fraction=0.1)


def open_widget(make_napari_viewer, tmp_path, monkeypatch, *images):
    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    viewer = make_napari_viewer()
    for name, data, kwargs in images:
        viewer.add_image(data, name=name, **kwargs)
    _, w = viewer.window.add_plugin_dock_widget(*WIDGET)
    w.model_combo.setCurrentText("demo")
    w.checkpoint_combo.setCurrentText("embedded (demo)")
    w.size_spin.setValue(128)
    return viewer, w


@pytest.fixture
def cells(make_napari_viewer, tmp_path, monkeypatch):
    m = movie()
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", m.image, {}))
    return viewer, w, m


def click(w, frame, yx, positive=None):
    """Add a click as the add mode does (world coordinates; these layers have unit scale)."""
    if positive is not None and positive != w.state.positive:
        w.positive_button.click()
    w.points_layer.add(np.array([[frame, *yx]], float))


def centre(labels_plane, obj_id):
    """(row, col) of a pixel deep inside the object."""
    x, y = click_point(labels_plane == obj_id)
    return int(round(y)), int(round(x))


def column(panel, header):
    """Index of the objects panel's column with this header, as a person reads the table."""
    headers = [panel.table.horizontalHeaderItem(i).text() for i in range(panel.table.columnCount())]
    return headers.index(header)


def click_two_objects(w, m, qtbot):
    """Click cells 1 and 2 of frame 0 as two objects, each segmented before the next click."""
    click(w, 0, centre(m.labels[0], 1))
    wait(qtbot, w)
    w.new_object_button.click()
    click(w, 0, centre(m.labels[0], 2))
    wait(qtbot, w)


# ---------------------------------------------------------------- fault 1
def test_a_correction_sticks_when_propagating_again(cells, qtbot):
    viewer, w, m = cells
    assert w.corrections_check.isChecked()
    click(w, 0, centre(m.labels[0], 1))
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    labels = w.labels_layer.data
    y, x = centre(labels[3], 1)
    assert labels[3, y, x] == 1
    tracked = labels[3].copy()
    viewer.dims.set_current_step(0, 3)
    click(w, 3, (y, x), positive=False)  # "this is not the cell": a negative click in the middle of its mask
    wait(qtbot, w)
    corrected = labels[3].copy()
    assert (corrected != tracked).sum() > 10  # the correction changed the mask
    w.forward_button.click()  # propagate again from the corrected frame
    wait(qtbot, w)
    np.testing.assert_array_equal(labels[3], corrected)  # the correction was not thrown away
    assert w.controller.session.prompted_frames(1) == [0, 3]
    assert "Done" in w.status.text()


def test_correction_options_are_exposed_and_persist(cells):
    from napari_sam2.settings import load_settings

    _, w, _ = cells
    w.forget_check.setChecked(True)
    w.corrections_check.setChecked(False)
    assert load_settings()["corrections_as_conditioning"] is False
    assert load_settings()["clear_memory_around_corrections"] is True
    assert w.session_options()["corrections_as_conditioning"] is False


def test_objects_never_tracked_start_from_their_clicked_frame(cells, qtbot):
    viewer, w, m = cells
    click(w, 0, centre(m.labels[0], 1))
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    w.new_object_button.click()
    click(w, 0, centre(m.labels[0], 2))  # a second object, clicked on frame 0 ...
    wait(qtbot, w)
    viewer.dims.set_current_step(0, 3)
    w.forward_button.click()  # ... and "propagate" pressed while frame 3 is shown
    wait(qtbot, w)
    labels = w.labels_layer.data
    for frame in (1, 2):  # object 2 was tracked from frame 0, not left empty before frame 3
        assert (labels[frame] == 2).sum() > 0.5 * (m.labels[frame] == 2).sum()
    assert w.controller.session.tracked_frames(2) == list(range(6))
    assert "clicked frame 0" in w.status.text()


# ---------------------------------------------------------------- fault 2
def test_the_clicks_layer_is_active_in_add_mode_and_a_real_mouse_click_adds_a_prompt(cells, qtbot):
    from qtpy.QtCore import QPoint, Qt

    viewer, w, m = cells
    assert viewer.layers.selection.active == w.points_layer and w.points_layer.mode == "add"
    viewer.window._qt_window.show()
    viewer.reset_view()
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.waitExposed(canvas)
    middle = QPoint(canvas.width() // 2, canvas.height() // 2)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=middle)
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=middle)
    qtbot.waitUntil(lambda: len(w.points_layer.data) == 1, timeout=10_000)
    np.testing.assert_allclose(w.points_layer.data[0, 1:], [63.5, 63.5], atol=3)  # the centre of the image
    wait(qtbot, w)
    assert w.labels_layer is not None  # the first mask made the masklets layer ...
    assert viewer.layers.selection.active == w.points_layer and w.points_layer.mode == "add"  # ... not active


# ---------------------------------------------------------------- fault 3
def test_each_image_has_its_own_layers_and_session(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    a, b = movie(seed=3), movie(num_frames=4, size=96, seed=5)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("a", a.image, {}), ("b", b.image, {}))
    w.image_combo.setCurrentText("a")
    click(w, 0, centre(a.labels[0], 1))
    wait(qtbot, w)
    labels_a, session_a = w.labels_layer, w.controller.session
    before = labels_a.data.copy()
    w.image_combo.setCurrentText("b")  # another shape
    assert w.controller is None and w.points_layer.name == "SAM2 clicks [b]"
    assert viewer.layers.selection.active == w.points_layer and not viewer.layers["SAM2 clicks [a]"].visible
    click(w, 0, centre(b.labels[0], 1))
    wait(qtbot, w)
    assert w.labels_layer.data.shape == (4, 96, 96) and w.labels_layer.data[0].any()
    assert w.controller.session is not session_a and w.controller.session.obj_ids == [1]
    np.testing.assert_array_equal(labels_a.data, before)  # b's run left a's masks alone
    w.image_combo.setCurrentText("a")
    assert w.controller.session is session_a and len(w.points_layer.data) == 1
    viewer.layers["a"].name = "a renamed"  # its layers and the selector follow; the session stays
    assert w.image_combo.currentText() == "a renamed" and w.controller.session is session_a
    assert w.points_layer.name == "SAM2 clicks [a renamed]" and w.labels_layer.name == "SAM2 masklets [a renamed]"


# ---------------------------------------------------------------- fault 4
def test_an_rgb_time_lapse_segments_and_propagates(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    m = movie(num_frames=4)
    grey = (m.image / m.image.max() * 255).astype(np.uint8)
    rgb = np.stack([grey, grey // 2, grey], axis=-1)  # (T, Y, X, 3)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("rgb", rgb, {"rgb": True}))
    click(w, 0, centre(m.labels[0], 1))
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    out = w.labels_layer.data
    assert out.shape == (4, 128, 128)
    for frame in range(4):
        assert ((out[frame] == 1) & (m.labels[frame] == 1)).sum() > 0.5 * (m.labels[frame] == 1).sum()
    assert "Done" in w.status.text()


# ---------------------------------------------------------------- fault 5
def test_a_click_outside_the_image_is_removed_and_never_sent(cells, qtbot):
    viewer, w, m = cells
    click(w, 0, (40, 500))
    assert len(w.points_layer.data) == 0 and "outside the image" in w.status.text()
    assert not w.busy() and w.controller is None
    click(w, 0, centre(m.labels[0], 1))  # the next click works
    wait(qtbot, w)
    assert w.controller.session.obj_ids == [1] and w.labels_layer.data[0].any()
    w.points_layer.data = np.array([[0, 40, 500]], float)  # a click moved off the image
    assert len(w.points_layer.data) == 0
    wait(qtbot, w)
    assert w.controller.session.obj_ids == []


# ---------------------------------------------------------------- fault 6
def test_deleting_the_masklets_layer_stops_the_run_and_it_comes_back(make_napari_viewer, tmp_path, monkeypatch,
                                                                     qtbot):
    m = movie(num_frames=24, size=96)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", m.image, {}))
    click(w, 0, centre(m.labels[0], 1))
    wait(qtbot, w)
    w.forward_button.click()
    steps = []

    def delete_on_the_third_frame(step):
        steps.append(step)
        if len(steps) == 3:
            viewer.layers.remove("SAM2 masklets [cells]")

    w.worker.yielded.connect(delete_on_the_third_frame)
    wait(qtbot, w)
    assert "Stopped" in w.status.text() and "deleted" in w.status.text() and "Done" not in w.status.text()
    assert w.labels_layer is None
    kept = w.controller.labels.copy()
    assert kept[0].any()
    click(w, 0, centre(m.labels[0], 2))  # the next click recreates the layer with the labels so far
    wait(qtbot, w)
    assert w.labels_layer is not None and w.labels_layer.name in viewer.layers
    np.testing.assert_array_equal(w.labels_layer.data[1:], kept[1:])
    assert "Done" in w.status.text()


# ---------------------------------------------------------------- fault 7
def test_undo_puts_back_the_prompts_and_the_session(cells, qtbot):
    viewer, w, m = cells
    click(w, 0, centre(m.labels[0], 1))
    wait(qtbot, w)
    session = w.controller.session
    logits, labels = session.frame_logits(0), w.labels_layer.data.copy()
    click(w, 0, centre(m.labels[0], 3))  # a second (wrong) positive click for object 1
    wait(qtbot, w)
    assert not np.array_equal(session.frame_logits(0), logits)
    w.undo_button.click()
    wait(qtbot, w)
    assert len(w.points_layer.data) == 1 and w.points_layer.features["obj_id"].tolist() == [1]
    np.testing.assert_array_equal(session.frame_logits(0), logits)
    np.testing.assert_array_equal(w.labels_layer.data, labels)
    w.undo_button.click()  # and the first click too
    wait(qtbot, w)
    assert len(w.points_layer.data) == 0 and session.obj_ids == [] and not w.labels_layer.data.any()
    assert not w.busy()  # restoring the layers did not start a run


# ---------------------------------------------------------------- fault 8
def test_boxes_and_moved_or_deleted_points_segment_by_themselves(cells, qtbot):
    viewer, w, m = cells
    ys, xs = np.nonzero(m.labels[0] == 2)
    y0, x0, y1, x1 = ys.min() - 2, xs.min() - 2, ys.max() + 2, xs.max() + 2
    w.boxes_layer.add_rectangles(np.array([[0, y0, x0], [0, y0, x1], [0, y1, x1], [0, y1, x0]], float))
    wait(qtbot, w)
    assert w.controller.session.obj_ids == [1] and (w.labels_layer.data[0] == 1).any()
    w.new_object_button.click()
    click(w, 0, centre(m.labels[0], 1))
    wait(qtbot, w)
    first = (w.labels_layer.data[0] == 2).copy()
    moved = w.points_layer.data.copy()
    moved[0, 1:] = centre(m.labels[0], 3)
    w.points_layer.data = moved  # the point dragged onto another cell
    wait(qtbot, w)
    assert not np.array_equal(w.labels_layer.data[0] == 2, first)
    w.points_layer.selected_data = {0}
    w.points_layer.remove_selected()  # deleted: object 2 is gone
    wait(qtbot, w)
    assert w.controller.session.obj_ids == [1] and not (w.labels_layer.data == 2).any()


# ---------------------------------------------------------------- fault 11
def test_messages_without_an_image_and_before_anything_is_segmented(make_napari_viewer, tmp_path, monkeypatch,
                                                                   qtbot):
    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    viewer = make_napari_viewer()
    _, w = viewer.window.add_plugin_dock_widget(*WIDGET)
    for button in (w.new_object_button, w.positive_button, w.forward_button, w.segment_button, w.undo_button):
        button.click()  # no AttributeError
    assert "image layer" in w.status.text() or "Nothing to undo" in w.status.text()
    dialogs = []
    monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getSaveFileName", lambda *a, **k: dialogs.append(a) or ("", ""))
    m = movie(num_frames=3)
    viewer.add_image(m.image, name="cells")
    w.checkpoint_combo.setCurrentText(RANDOM)
    w.size_spin.setValue(64)
    w.forward_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Nothing to propagate yet: click on an object first")
    w.export_labels_button.click()
    assert not dialogs and "Nothing is segmented yet" in w.status.text()


def test_export_adds_the_suffix_and_tracks_follow_the_largest_piece(cells, qtbot, tmp_path):
    import tifffile

    from napari_sam2.export import tracks_from_labels

    viewer, w, m = cells
    click(w, 0, centre(m.labels[0], 1))
    wait(qtbot, w)
    written = w.export("labels", str(tmp_path / "typed name"))
    assert written == str(tmp_path / "typed name.tif")
    np.testing.assert_array_equal(tifffile.imread(written), w.labels_layer.data)
    assert w.export("table", str(tmp_path / "t")).endswith("t.csv")
    assert w.add_tracks_layer().data.shape == (1, 4)
    fragments = np.zeros((3, 40, 40), np.uint32)
    for t in range(3):
        fragments[t, 10:20, 10 + t:20 + t] = 5  # the cell moves right by one pixel a frame
    fragments[1, 35:38, 35:38] = 5  # a small stray piece on frame 1 only
    track = tracks_from_labels(fragments)
    np.testing.assert_allclose(track[:, 3], [14.5, 15.5, 16.5])  # no jump towards the stray piece


# ---------------------------------------------------------------- fault 12 and the model picker
def test_switching_weights_reruns_the_prompts_and_keeps_the_objects(cells, qtbot):
    viewer, w, m = cells
    click_two_objects(w, m, qtbot)
    old = w.controller
    w.checkpoint_combo.setCurrentText(RANDOM)  # new weights
    qtbot.waitUntil(lambda: w.controller is not old, timeout=60_000)
    wait(qtbot, w)
    new = w.controller
    assert new.model is not old.model and new.session.obj_ids == [1, 2]
    assert new.session.prompted_frames(1) == [0] and new.session.prompted_frames(2) == [0]
    logits = new.session.frame_logits(0)
    ids = np.array([1, 2])
    expected = np.where(logits.max(0) > 0, ids[logits.argmax(0)], 0)
    np.testing.assert_array_equal(w.labels_layer.data[0], expected)


def test_a_cancelled_download_says_so(cells, qtbot, tmp_path, monkeypatch):
    import http.server
    import threading

    viewer, w, _ = cells
    served = tmp_path / "served"
    served.mkdir()
    (served / "sam2.1_hiera_tiny.pt").write_bytes(b"\0" * (8 << 20))
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(served), **k)  # noqa: E731
    monkeypatch.setattr(http.server.SimpleHTTPRequestHandler, "log_message", lambda *a: None)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path / "cache"))
    w.picker.download_progress.connect(lambda done, total: w.picker.cancel_button.click())
    w.model_combo.setCurrentText("sam2.1_hiera_tiny")
    w.segment_button.click()
    assert not w.picker.cancel_button.isHidden() and not w.cancel_button.isEnabled()  # its own Cancel
    wait(qtbot, w)
    httpd.shutdown()
    assert w.picker.status.text() == "Download cancelled; nothing was saved."
    assert "frames" not in w.status.text() and w.worker is None and w.controller is None
    assert not list((tmp_path / "cache").glob("**/*.pt"))


# ---------------------------------------------------------------- expected at first use
def test_propagate_a_given_number_of_frames(cells, qtbot):
    viewer, w, m = cells
    click(w, 0, centre(m.labels[0], 1))
    wait(qtbot, w)
    w.frames_spin.setValue(2)
    w.forward_button.click()
    wait(qtbot, w)
    labels = w.labels_layer.data
    assert labels[1].any() and labels[2].any() and not labels[3:].any()
    assert w.controller.session.tracked_frames(1) == [0, 1, 2]


def test_the_table_has_physical_units_from_the_layer_scale(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    import csv

    m = movie(num_frames=3)
    calibrated = {"scale": (2.0, 0.5, 0.5), "units": ("s", "um", "um")}
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", m.image, calibrated))
    click(w, 1, centre(m.labels[1], 1))  # data coordinates of the clicks layer (it shares the image's scale)
    wait(qtbot, w)
    with open(w.export("table", str(tmp_path / "table"))) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and rows[0]["frame"] == "1"
    row = rows[0]
    assert float(row["time"]) == 2.0 and row["time_unit"] == "second" and row["length_unit"] == "micrometer"
    assert float(row["area_scaled"]) == pytest.approx(int(row["area"]) * 0.25)
    assert float(row["centroid_x_scaled"]) == pytest.approx(float(row["centroid_x"]) * 0.5)


def test_objects_panel_lists_hides_and_deletes_objects(cells, qtbot):
    viewer, w, m = cells
    click_two_objects(w, m, qtbot)
    w.forward_button.click()
    wait(qtbot, w)
    panel = w.objects
    assert [r.obj_id for r in panel.rows] == [1, 2] and panel.table.rowCount() == 2
    session = w.controller.session
    for row in panel.rows:
        assert sorted(row.present + row.lost) == session.tracked_frames(row.obj_id)
    assert panel.table.item(1, 1).text() == "0-5" or panel.rows[1].lost
    assert [row.check for row in panel.rows] == [(), ()]  # calm cells: nothing to check
    panel.select_object(2)
    panel.check_button.click()
    assert "no frames to check" in w.status.text()
    panel.select_object(2)
    panel.hide_button.click()
    assert w.labels_layer.get_color(2)[3] == 0 and w.labels_layer.get_color(1)[3] == 1
    assert panel.table.item(1, column(panel, "Shown")).text() == "no"
    before = w.labels_layer.data.copy()
    panel.select_object(2)
    panel.delete_button.click()
    wait(qtbot, w)
    assert session.obj_ids == [1] and not (w.labels_layer.data == 2).any()
    assert w.points_layer.features["obj_id"].tolist() == [1] and [r.obj_id for r in panel.rows] == [1]
    w.undo_button.click()  # the deleted object comes back: its click, its session state, its masks
    wait(qtbot, w)
    assert session.obj_ids == [1, 2] and w.points_layer.features["obj_id"].tolist() == [1, 2]
    np.testing.assert_array_equal(w.labels_layer.data, before)


def test_new_data_in_the_image_layer_is_segmented_not_the_old_pixels(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """A registered or denoised stack written back into the layer (layer.data = ...): the widget kept segmenting the
    old pixels (a click on a cell of the new data gave a 28 px mask on background); a crop went to an old array."""
    from sam2_model.evaluation import click_point
    from sam2_model.metrics import region_similarity
    from sam2_model.synthetic import make_timelapse

    from widget_helpers import open_widget

    movie = make_timelapse(num_frames=3, shape=(128, 128), num_cells=3, seed=9, divisions=False, enter_leave=False,
                           radius_fraction=0.12)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    layer = viewer.layers["cells"]
    x, y = click_point(movie.labels[0] == 1)
    w.points_layer.add(np.array([[0, y, x]]))
    qtbot.waitUntil(lambda: not w.busy(), timeout=120_000)
    shifted_image, shifted_labels = (np.roll(a, 40, axis=2) for a in (movie.image, movie.labels))
    layer.data = shifted_image
    assert "'cells' has new data: its segmentation sessions were reset" in w.status.text()
    w.new_object_button.click()
    x2, y2 = click_point(shifted_labels[0] == 2)
    w.points_layer.add(np.array([[0, y2, x2]]))
    qtbot.waitUntil(lambda: not w.busy(), timeout=120_000)
    assert region_similarity(w.labels_layer.data[0] == 2, shifted_labels[0] == 2) > 0.6
    w.points_layer.selected_data = set(range(len(w.points_layer.data)))  # the clicks go, as they would off a crop
    w.points_layer.remove_selected()
    qtbot.waitUntil(lambda: not w.busy(), timeout=120_000)
    layer.data = shifted_image[:, :96, :96]  # a crop: the masklets follow the new shape
    w.new_object_button.click()
    w.points_layer.add(np.array([[0, 20, 20]]))
    qtbot.waitUntil(lambda: not w.busy(), timeout=120_000)
    assert w.labels_layer.data.shape == (3, 96, 96) and w.controller.labels.shape == (3, 96, 96), w.status.text()


def test_closing_the_dock_stops_its_run_with_whole_frames(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """The dock's x (napari's remove_dock_widget) during a propagation: the run went on to the last frame with no
    widget left to cancel it; now it stops, and the frames it finished are whole."""
    from widget_helpers import propagating

    viewer, w, _ = propagating(make_napari_viewer, tmp_path, monkeypatch, qtbot, num_frames=40, seed=12)
    viewer.window.remove_dock_widget(w)
    qtbot.waitUntil(lambda: not w.busy(), timeout=60_000)
    written = [t for t in range(40) if w.controller.labels[t].any()]
    assert len(written) < 40 and written == list(range(len(written)))  # stopped early, no gap
    for t in written:  # each frame written whole: what the session holds for it
        session = w.controller.session
        logits = session.frame_logits(t)
        expected = np.where(logits.max(axis=0) > 0, np.asarray(session.obj_ids)[logits.argmax(axis=0)], 0)
        np.testing.assert_array_equal(w.controller.labels[t], expected)


def test_the_table_of_a_volume_gives_z_not_time(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Frames that are the slices of a volume (a length unit on the frame axis) are named z in the table, with their
    unit (it said time=24.0, time_unit=micrometer)."""
    import csv

    m = movie(num_frames=3)
    calibrated = {"scale": (3.0, 0.5, 0.5), "units": ("um", "um", "um")}
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("volume", m.image, calibrated))
    click(w, 1, centre(m.labels[1], 1))
    wait(qtbot, w)
    with open(w.export("table", str(tmp_path / "table"))) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and "time" not in rows[0] and "time_unit" not in rows[0]
    assert float(rows[0]["z"]) == 3.0 and rows[0]["z_unit"] == "micrometer"


def test_an_object_the_model_finds_nothing_for_is_named_in_the_status(make_napari_viewer, tmp_path, monkeypatch,
                                                                      qtbot):
    m = movie(num_frames=3)
    tiny = np.ascontiguousarray(m.image[:, 40:56, 40:56])  # 16 x 16 frames: the demo model finds no cell there
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("tiny", tiny, {}))
    w.smooth_spin.setValue(0)  # unsmoothed (auto reads a 16 px patch of background noise as grainy and blurs it)
    click(w, 0, (8, 8))
    wait(qtbot, w)
    assert not w.labels_layer.data.any()
    assert "found nothing for object 1" in w.status.text() and "Object windows" in w.status.text()
    w.forward_button.click()
    wait(qtbot, w)
    assert not w.labels_layer.data.any() and "found nothing for object 1" in w.status.text()


def test_a_found_object_gets_no_nothing_found_words(cells, qtbot):
    viewer, w, m = cells
    click(w, 0, centre(m.labels[0], 1))
    wait(qtbot, w)
    w.new_object_button.click()
    click(w, 0, centre(m.labels[0], 2))
    wait(qtbot, w)
    assert w.status.text().startswith("Done") and "found nothing" not in w.status.text()
