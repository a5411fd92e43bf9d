"""Save / load a segmentation session (issue 12, "expected at first use") and relabel / merge objects, driven as a
person would: a real viewer, the widget opened through the manifest, clicks added to the layers, workers awaited."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.session_file import SessionRecord, read_session, write_session


# ---------------------------------------------------------------- the file, without Qt
def record(shape=(4, 32, 32)) -> SessionRecord:
    return SessionRecord(shape, [[0, 5.0, 6.0], [2, 7.5, 8.0]], [True, False], [1, 2],
                         [[[1, 2, 3], [1, 2, 9], [1, 9, 9], [1, 9, 3]]], [3],
                         {(1, 4): np.eye(32, dtype=bool)}, {"corrections_as_conditioning": False},
                         {"name": "demo", "weights": "embedded (demo)", "image_size": 128, "path": None},
                         {"frame_axis": 0, "channel_axis": "", "channel": ""})


def test_round_trip_and_suffix(tmp_path):
    path = write_session(tmp_path / "cells", record())
    assert path.name == "cells.sam2.npz"
    assert [p.name for p in tmp_path.iterdir()] == ["cells.sam2.npz"]  # no temporary file left behind
    back = read_session(path)
    original = record()
    for name in ("points", "positive", "point_ids", "boxes", "box_ids"):
        np.testing.assert_array_equal(getattr(back, name), getattr(original, name))
    assert back.image_shape == (4, 32, 32) and list(back.masks) == [(1, 4)]
    np.testing.assert_array_equal(back.masks[(1, 4)], np.eye(32, dtype=bool))
    assert back.options == original.options and back.model == original.model and back.axes == original.axes
    with pytest.raises(ValueError, match=r"shape \(4, 32, 32\).*\(5, 32, 32\)"):
        back.check_image((5, 32, 32))


def test_corrupt_foreign_and_newer_files_are_clear_errors(tmp_path):
    garbage = tmp_path / "x.sam2.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a napari-sam2 session file"):
        read_session(garbage)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a napari-sam2 session file"):
        read_session(foreign)
    with pytest.raises(ValueError, match="is not a file"):
        read_session(tmp_path / "missing.sam2.npz")
    with pytest.raises(ValueError, match="folder .* does not exist"):
        write_session(tmp_path / "no" / "such.sam2.npz", record())
    with pytest.raises(ValueError, match="one row per click"):
        SessionRecord((4, 32, 32), [[0, 1, 1]], [True, False], [1], np.zeros((0, 4, 3)), [])


@pytest.mark.parametrize("change, field", [
    (dict(options={"smooth": "lots"}), "options.smooth"),
    (dict(options={"object_window": "wide"}), "options.object_window"),
    (dict(model={"name": "demo", "weights": "embedded (demo)", "image_size": 100}), "model.image_size"),
    (dict(points=[[0, 5000.0, 5000.0], [2, 7.5, 8.0]]), "points: click 0"),
    (dict(points=[[9, 5.0, 6.0], [2, 7.5, 8.0]]), "points: click 0"),  # frame 9 of 4
    (dict(points=[[0, np.nan, 6.0], [2, 7.5, 8.0]]), "points: a click"),
    (dict(point_ids=[-3, 2]), "point_ids"),
    (dict(masks={(7, 4): np.eye(32, dtype=bool)}), "masks: a seeded mask is on frame 7"),
    (dict(axes={"frame_axis": 7}), "axes.frame_axis"),
])
def test_values_the_widget_could_not_have_saved_are_refused_naming_the_field(tmp_path, change, field):
    """A file with one bad value is refused when read, naming the file and the field: loading it used to clear the
    masklets first and fail halfway (the tracked labels, which session files do not keep, were lost)."""
    good = record()
    fields = dict(image_shape=good.image_shape, points=good.points, positive=good.positive,
                  point_ids=good.point_ids, boxes=good.boxes, box_ids=good.box_ids, masks=good.masks,
                  options=good.options, model=good.model, axes=good.axes)
    path = write_session(tmp_path / "bad", SessionRecord(**{**fields, **change}))
    with pytest.raises(ValueError, match="damaged napari-sam2 session file") as caught:
        read_session(path)
    assert field in str(caught.value) and str(path) in str(caught.value)


# ---------------------------------------------------------------- the widget
pytest.importorskip("napari")
from sam2_model.evaluation import click_point  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402

WIDGET = ("napari-sam2", "SAM 2 segmentation")


def wait(qtbot, w, timeout=120_000):
    qtbot.waitUntil(lambda: not w.busy(), timeout=timeout)


def centre(plane, obj_id):
    x, y = click_point(plane == obj_id)
    return int(round(y)), int(round(x))


@pytest.fixture
def two_objects(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """A widget with two clicked objects on frame 0 of a small synthetic stack (demo model, 128 px input)."""
    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    movie = make_timelapse(num_frames=4, shape=(96, 96), num_cells=3, seed=5, divisions=False, enter_leave=False,
                           radius_fraction=0.12)
    viewer = make_napari_viewer()
    viewer.add_image(movie.image, name="cells")
    _, w = viewer.window.add_plugin_dock_widget(*WIDGET)
    w.model_combo.setCurrentText("demo")
    w.checkpoint_combo.setCurrentText("embedded (demo)")
    w.size_spin.setValue(128)
    for obj in (1, 2):
        w.object_spin.setValue(obj)
        w.points_layer.add(np.array([[0, *centre(movie.labels[0], obj)]], float))
        wait(qtbot, w)
    assert set(np.unique(w.labels_layer.data[0])) == {0, 1, 2}
    return viewer, w, movie


@pytest.mark.gui
def test_save_then_load_on_a_reopened_image(two_objects, tmp_path, qtbot, monkeypatch):
    from qtpy.QtWidgets import QFileDialog

    viewer, w, movie = two_objects
    w.corrections_check.setChecked(False)
    w.object_spin.setValue(3)
    y, x = centre(movie.labels[1], 3)
    w.boxes_layer.add_rectangles(np.array([[1, y - 8, x - 8], [1, y - 8, x + 8], [1, y + 8, x + 8], [1, y + 8, x - 8]], float))  # a box on frame 1
    wait(qtbot, w)
    assert 3 in w.controller.obj_ids
    boxes = [np.array(b) for b in w.boxes_layer.data]
    seed = np.zeros(movie.labels.shape, np.uint32)
    seed[2][movie.labels[2] == 1] = 5  # a seeded mask (object 5, frame 2)
    viewer.add_labels(seed, name="my annotations")
    w.seed_combo.setCurrentText("my annotations")
    viewer.dims.set_current_step(0, 2)
    w.seed_button.click()
    wait(qtbot, w)
    assert 5 in w.controller.obj_ids
    mask1, mask2 = w.labels_layer.data[1].copy(), w.labels_layer.data[2].copy()
    clicks = np.array(w.points_layer.data)
    ids = w.points_layer.features["obj_id"].to_numpy(int)
    mask = w.labels_layer.data[0].copy()
    # the Save and Load buttons, with the file dialogs answered as a person would
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "s"), ""))
    w.save_session_button.click()
    wait(qtbot, w)  # it saves in a worker
    path = tmp_path / "s.sam2.npz"
    assert path.is_file() and "Saved the session" in w.status.text()

    viewer.layers.clear()  # close everything, then open the image again
    viewer.add_image(movie.image, name="cells again")
    assert w.corrections_check.isChecked() is False
    w.corrections_check.setChecked(True)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    w.load_session_button.click()
    wait(qtbot, w)
    np.testing.assert_array_equal(w.points_layer.data, clicks)
    np.testing.assert_array_equal(w.points_layer.features["obj_id"].to_numpy(int), ids)
    assert w.corrections_check.isChecked() is False  # the session's options came back
    assert w.controller.obj_ids == [1, 2, 3, 5]
    assert len(w.boxes_layer.data) == 1 and w.boxes_layer.features["obj_id"].tolist() == [3]
    np.testing.assert_allclose(w.boxes_layer.data[0], boxes[0])
    np.testing.assert_array_equal(w.labels_layer.data[0], mask)  # the same masks on the prompted frames
    np.testing.assert_array_equal(w.labels_layer.data[1], mask1)
    np.testing.assert_array_equal(w.labels_layer.data[2], mask2)  # the seeded mask came back too
    viewer.dims.set_current_step(0, 0)
    w.forward_button.click()  # the loaded session propagates
    wait(qtbot, w)
    assert {1, 2, 3, 5} <= set(np.unique(w.labels_layer.data[3]))


@pytest.mark.gui
def test_wrong_shape_and_corrupt_files_change_nothing(two_objects, tmp_path, monkeypatch):
    from qtpy.QtWidgets import QFileDialog

    viewer, w, movie = two_objects
    path = w.save_session(str(tmp_path / "s.sam2.npz"))
    viewer.add_image(movie.image[:, :80], name="smaller")
    w.image_combo.setCurrentText("smaller")
    assert w.image_layer.name == "smaller"
    with pytest.raises(ValueError, match="shape"):
        w.load_session(str(path))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    w.load_session_button.click()  # the button says why in the status line
    assert w.status.text().startswith("Not loaded (nothing changed):") and "shape" in w.status.text()
    assert len(w.points_layer.data) == 0 and w.controller is None  # nothing changed on the smaller image
    w.image_combo.setCurrentText("cells")
    before = (np.array(w.points_layer.data), w.labels_layer.data.copy(), list(w.controller.obj_ids))
    broken = tmp_path / "broken.sam2.npz"
    broken.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a napari-sam2 session file"):
        w.load_session(str(broken))
    np.testing.assert_array_equal(w.points_layer.data, before[0])
    np.testing.assert_array_equal(w.labels_layer.data, before[1])
    assert w.controller.obj_ids == before[2]
    record = read_session(path)  # one click moved off the image: refused before the masklets are touched
    record.points[0, 1] = 5000
    off = write_session(tmp_path / "off.sam2.npz", record)
    with pytest.raises(ValueError, match="outside the image"):
        w.load_session(str(off))
    np.testing.assert_array_equal(w.labels_layer.data, before[1])
    assert w.controller.obj_ids == before[2]


@pytest.mark.gui
def test_relabel_and_merge_keep_labels_and_prompts_consistent(two_objects, qtbot, monkeypatch):
    from qtpy.QtWidgets import QInputDialog

    viewer, w, movie = two_objects
    labels = w.labels_layer.data
    one, two = labels[0] == 1, labels[0] == 2
    with pytest.raises(ValueError, match="free object id"):
        w.relabel_object(1, 2)
    monkeypatch.setattr(QInputDialog, "getInt", staticmethod(lambda *args: (7, True)))  # the person types 7
    w.objects.select_object(2)
    w.objects.relabel_button.click()
    wait(qtbot, w)
    assert sorted(w.controller.obj_ids) == [1, 7]
    assert sorted(w.points_layer.features["obj_id"].tolist()) == [1, 7]
    assert (labels[0] == 2).sum() == 0
    assert ((labels[0] == 7) & two).sum() > 0.9 * two.sum()  # object 2's pixels now carry id 7
    with pytest.raises(ValueError, match="another existing object"):
        w.merge_objects(7, 9)
    w.merge_objects(7, 1)
    wait(qtbot, w)
    assert w.controller.obj_ids == [1]
    assert w.points_layer.features["obj_id"].tolist() == [1, 1]
    assert set(np.unique(labels[0])) == {0, 1}
    assert (labels[0] == 1).sum() >= 0.9 * one.sum()
    assert [row.obj_id for row in w.objects.rows] == [1]


@pytest.mark.gui
def test_a_saved_session_brings_its_smoothing_back(two_objects, tmp_path, qtbot):
    viewer, w, movie = two_objects
    w.smooth_spin.setValue(1.5)
    w.segment_button.click()  # the prompts again, on smoothed frames
    wait(qtbot, w)
    path = w.save_session(str(tmp_path / "smoothed.sam2.npz"))
    w.smooth_spin.setValue(0.0)
    w.load_session(str(path))
    wait(qtbot, w)
    assert w.smooth_spin.value() == 1.5 and w.controller.session.frames.smooth == 1.5
    assert w.controller.obj_ids == [1, 2]


@pytest.mark.gui
def test_a_saved_session_brings_its_object_windows_back(two_objects, tmp_path, qtbot):
    """The object-window choice travels with the session (here 48 px windows on 96 px frames); sessions saved
    before object windows existed load with whole frames."""
    from sam2_model.windowed_session import WindowedSession

    viewer, w, movie = two_objects
    w.window_combo.addItem("48")  # a side the widget does not list, chosen by a script
    w.window_combo.setCurrentText("48")
    w.segment_button.click()
    wait(qtbot, w)
    assert isinstance(w.controller.session, WindowedSession)
    path = w.save_session(str(tmp_path / "windows.sam2.npz"))
    w.window_combo.setCurrentText("off")
    w.load_session(str(path))
    wait(qtbot, w)
    assert w.window_combo.currentText() == "48" and w.controller.object_window == 48
    assert w.controller.obj_ids == [1, 2]


@pytest.mark.gui
def test_a_session_whose_weights_file_is_gone_loads_with_the_model_chosen_now(two_objects, tmp_path, qtbot,
                                                                              monkeypatch):
    """Saved with fine-tuned weights that were then moved: the prompts load and are re-run with the model chosen now,
    and a warning says so (the load was refused, with advice that could not be followed: the prompts were lost)."""
    import shutil

    from napari.utils import notifications

    from sam2_model.build import embedded_weights_path

    viewer, w, movie = two_objects
    mine = tmp_path / "mine.pt"
    shutil.copy(embedded_weights_path(), mine)
    w.set_checkpoint_file(str(mine))
    path = w.save_session(str(tmp_path / "s.sam2.npz"))
    assert read_session(path).model["path"] == str(mine)
    mine.unlink()
    w.checkpoint_combo.setCurrentText("embedded (demo)")
    clicks, mask = np.array(w.points_layer.data), w.labels_layer.data[0].copy()
    warnings = []
    monkeypatch.setattr(notifications, "show_warning", warnings.append)
    monkeypatch.setattr("napari_sam2._session_files.show_warning", warnings.append)
    w.load_session(str(path))
    wait(qtbot, w)
    assert warnings and "mine.pt is not there" in warnings[0] and "model chosen now" in warnings[0]
    assert w.checkpoint_combo.currentText() == "embedded (demo)"
    np.testing.assert_array_equal(w.points_layer.data, clicks)
    np.testing.assert_array_equal(w.labels_layer.data[0], mask)  # the same weights, so the same masks
