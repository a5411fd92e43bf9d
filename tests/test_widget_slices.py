"""Sessions that belong to a slice or an image, driven as a person does: a (T, Z, Y, X) stack whose z slider moves
between clicks and Propagate, clicks made while a run goes on (on this image or another one), Undo after them, and
errors before a run starts. The real demo model with its embedded weights, small synthetic time-lapses."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from sam2_model.evaluation import click_point  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402

from widget_helpers import open_widget, wait  # noqa: E402


def movie(num_frames=4, seed=3):
    return make_timelapse(num_frames=num_frames, shape=(96, 96), num_cells=4, seed=seed, divisions=False,
                          enter_leave=False, radius_fraction=0.1)




def click_at(w, where, plane, obj_id):
    """A positive click deep inside ``obj_id`` of the labels ``plane``; ``where``: the leading (frame[, z]) indices."""
    x, y = click_point(plane == obj_id)
    w.points_layer.add(np.array([[*where, y, x]], float))


def rows(w):
    return {row.obj_id: row.present for row in w.objects.rows}


def table_objects(path):
    with open(path) as handle:
        return sorted({int(row["obj_id"]) for row in csv.DictReader(handle)})


def test_each_z_slice_keeps_its_own_session_whatever_slice_is_shown(make_napari_viewer, tmp_path, monkeypatch,
                                                                     qtbot):
    m = movie()
    stack = np.stack([m.image] * 3, axis=1)  # (T, Z=3, Y, X)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("tz", stack))
    viewer.dims.set_current_step(1, 1)
    click_at(w, (0, 1), m.labels[0], 1)
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    labels = w.labels_layer.data
    assert all((labels[t, 1] == 1).any() for t in range(4)) and not labels[:, [0, 2]].any()

    # z moved to look around, then Propagate: the session of z=1 propagates, and the status says so
    viewer.dims.set_current_step(1, 2)
    w.forward_button.click()
    wait(qtbot, w)
    assert "failed" not in w.status.text().lower() and "axis 1 = 1" in w.status.text(), w.status.text()
    assert rows(w) == {1: (0, 1, 2, 3)}
    assert not labels[:, [0, 2]].any()

    # the table written at z=0 holds the session's objects (not a header alone)
    viewer.dims.set_current_step(1, 0)
    w.export("table", str(tmp_path / "objects.csv"))
    assert table_objects(tmp_path / "objects.csv") == [1]
    assert "axis 1 = 1" in w.status.text()

    # a click on z=2 starts a session of its own; the one of z=1 (objects, masks, history) is kept and said so
    viewer.dims.set_current_step(1, 2)
    w.object_spin.setValue(2)
    click_at(w, (0, 2), m.labels[0], 2)
    wait(qtbot, w)
    assert rows(w) == {2: (0,)}
    assert "session of its own" in w.status.text() and "axis 1 = 1: object(s) 1" in w.status.text()
    assert (labels[0, 2] == 2).any() and all((labels[t, 1] == 1).any() for t in range(4))
    assert len(w.points_layer.data) == 2

    # back on z=1: its objects and its Undo history are there; Undo leaves z=2's click alone
    viewer.dims.set_current_step(1, 1)
    assert rows(w) == {1: (0, 1, 2, 3)}
    w.undo_button.click()  # the second propagation
    wait(qtbot, w)
    w.undo_button.click()  # the first one
    wait(qtbot, w)
    assert "Undid" in w.status.text(), w.status.text()
    assert [t for t in range(4) if labels[t, 1].any()] == [0]
    assert (labels[0, 2] == 2).any()
    w.undo_button.click()  # the click
    wait(qtbot, w)
    assert not labels[:, 1].any() and (labels[0, 2] == 2).any()
    assert w.points_layer.data[:, 1].tolist() == [2.0]  # z=2's click stays
    assert "Nothing to undo" in (w.undo_button.click() or w.status.text())
    viewer.dims.set_current_step(1, 2)
    assert rows(w) == {2: (0,)}


def test_a_run_that_changed_nothing_does_not_offer_undo(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    m = movie()
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", m.image))
    w.positive_button.click()  # a negative click alone where the object has no mask yet: refused
    click_at(w, (0,), m.labels[0], 1)
    wait(qtbot, w)
    status = w.status.text()
    assert "refused" in status and "Nothing was changed" in status and "Undo reverts" not in status, status


def test_a_click_made_on_another_image_during_a_run_is_segmented_there(make_napari_viewer, tmp_path, monkeypatch,
                                                                       qtbot):
    a, b = movie(30), movie(4, seed=5)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("A", a.image), ("B", b.image))
    w.image_combo.setCurrentText("A")
    click_at(w, (0,), a.labels[0], 1)
    wait(qtbot, w)
    state_a = w.state
    w.forward_button.click()
    qtbot.waitUntil(lambda: w.progress.value() >= 1, timeout=60_000)
    w.image_combo.setCurrentText("B")
    click_at(w, (0,), b.labels[0], 1)
    state_b = w.state
    w.image_combo.setCurrentText("A")
    assert w.busy()  # the click was made during the run
    wait(qtbot, w)
    qtbot.wait(100)
    wait(qtbot, w)
    assert state_a.controller.obj_ids == [1] and len(state_a.points.data) == 1
    assert state_b.controller is None and "'B'" in w.status.text(), w.status.text()
    w.image_combo.setCurrentText("B")  # back on B: its click is segmented
    wait(qtbot, w)
    assert state_b.controller is not None and state_b.controller.obj_ids == [1]
    assert (state_b.labels.data[0] == 1).sum() > 20
    assert rows(w) == {1: (0,)}


def test_undo_after_a_click_made_during_a_propagation_keeps_the_layers_and_the_session_together(
        make_napari_viewer, tmp_path, monkeypatch, qtbot):
    m = movie(24)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", m.image))
    click_at(w, (0,), m.labels[0], 1)
    wait(qtbot, w)
    w.forward_button.click()
    qtbot.waitUntil(lambda: w.progress.value() >= 1, timeout=60_000)
    assert not w.objects.delete_button.isEnabled()  # nothing to delete with while the run goes on
    w.object_spin.setValue(2)
    click_at(w, (0,), m.labels[0], 2)
    assert w.busy()
    wait(qtbot, w)
    qtbot.wait(100)
    wait(qtbot, w)
    assert w.objects.delete_button.isEnabled()
    assert w.controller.obj_ids == [1, 2] and (w.labels_layer.data[0] == 2).any()

    w.undo_button.click()  # the click made during the run
    wait(qtbot, w)
    assert w.points_layer.features["obj_id"].tolist() == [1]
    assert w.controller.obj_ids == [1] and not (w.labels_layer.data == 2).any()
    w.undo_button.click()  # the propagation
    wait(qtbot, w)
    assert w.points_layer.features["obj_id"].tolist() == [1]
    assert [t for t in range(24) if w.labels_layer.data[t].any()] == [0]
    w.undo_button.click()  # the first click
    wait(qtbot, w)
    assert len(w.points_layer.data) == 0 and not w.labels_layer.data.any() and w.controller.obj_ids == []


def test_errors_before_a_run_show_in_the_status_line(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    m = movie()
    image = m.image.astype(np.float32)
    image[2, 40, 40] = np.nan
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("nan", image), ("cells", m.image))
    w.image_combo.setCurrentText("nan")
    click_at(w, (0,), m.labels[0], 1)
    wait(qtbot, w)
    assert "NaN" in w.status.text(), w.status.text()

    w.image_combo.setCurrentText("cells")
    viewer.add_labels(np.zeros((5, 5), np.uint32), name="wrong shape")
    w.seed_combo.setCurrentText("wrong shape")
    w.seed_button.click()
    wait(qtbot, w)
    assert "has shape (5, 5)" in w.status.text(), w.status.text()

    w.picker.size_combo.setCurrentText("custom")
    w.size_spin.setValue(100)  # not a multiple of 32: the model cannot be built
    w.segment_button.click()
    wait(qtbot, w)
    assert "multiple of 32" in w.status.text(), w.status.text()


def test_changing_the_propagated_axis_shows_that_axis_sessions_objects_at_once(make_napari_viewer, tmp_path,
                                                                                monkeypatch, qtbot):
    """E3 finding 8a: after 'Propagate along axis' changed, the objects table kept the other axis' session until the
    slider moved."""
    m = movie(3)
    stack = np.stack([m.image] * 3, axis=1)  # (T, Z=3, Y, X)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("tz", stack))
    viewer.dims.set_current_step(0, 0)
    viewer.dims.set_current_step(1, 1)
    click_at(w, (0, 1), m.labels[0], 1)  # through time, at z=1
    wait(qtbot, w)
    assert rows(w) == {1: (0,)}
    viewer.dims.set_current_step(0, 2)
    w.axis_spin.setValue(1)  # through z, at t=2
    w.object_spin.setValue(2)
    click_at(w, (2, 1), m.labels[2], 2)
    wait(qtbot, w)
    assert rows(w) == {2: (1,)}
    w.axis_spin.setValue(0)  # back through time: z=1 is shown, and its session has object 1
    assert rows(w) == {1: (0,)}
    assert w.controller.layout.frame_axis == 0
    w.axis_spin.setValue(1)  # and through z again, t=2 shown: object 2
    assert rows(w) == {2: (1,)}


def test_choosing_a_channel_axis_drops_the_per_plane_session_and_says_so(make_napari_viewer, tmp_path, monkeypatch,
                                                                         qtbot):
    """E3 finding 8b: a click made before the channel axis was chosen made a session of the plane c=0; after the
    choice the next click's note read "Note:  has a session of its own ... (c=0: object(s) 1)": a blank name, and a
    session said kept that the new choice could not use (its masks, per plane, were replaced)."""
    m = movie(4)
    noise = np.random.default_rng(0).integers(0, 60, m.image.shape).astype(m.image.dtype)
    zc = np.stack([m.image, noise], axis=1)  # (Z=4, C=2, Y, X): nuclei, then a channel of noise
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    viewer.add_image(zc, name="zc", axis_labels=("z", "c", "y", "x"))
    viewer.dims.set_current_step(0, 1)
    viewer.dims.set_current_step(1, 0)
    click_at(w, (1, 0), m.labels[1], 1)  # before the channel choice: a session of the plane c=0
    wait(qtbot, w)
    assert rows(w) == {1: (1,)} and list(w.state.sessions) == [(0, ((1, 0),))]

    w.channel_axis_combo.setCurrentText("axis 1 (2)")
    w.channel_combo.setCurrentText("channel 0")
    assert rows(w) == {} and w.state.sessions == {} and w.controller is None  # the table follows at once
    status = w.status.text()
    assert "were dropped" in status and "c=0: object(s) 1" in status, status

    w.object_spin.setValue(2)
    click_at(w, (1, 0), m.labels[1], 2)
    wait(qtbot, w)
    status = w.status.text()
    assert "Note:  has" not in status and "c=0" not in status, status
    assert list(w.state.sessions) == [(0, ())] and set(rows(w)) == {1, 2}  # both clicks, on the chosen channel
    assert w.slice_name(w.controller.layout) == "the whole stack"
