"""The widget never loses a user's work (issue h15, faults 1, 2, 6, 7, 9, 10): a deleted clicks layer comes back with
its clicks, Load session… asks before replacing objects, deleting a later prompt says which frames were cleared, Undo
after Merge says it cannot, clicks in a transposed view are refused and a stray .npy is no session. Each is driven as a
person would: a real viewer, the widget on the demo model, prompts added to its layers, buttons pressed, the worker
awaited."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from sam2_model.synthetic import make_timelapse  # noqa: E402

from _helpers import small_movie_fixture  # noqa: E402
from widget_helpers import centre, click_and_propagate, click_cells, open_widget, wait  # noqa: E402

FRAMES = 5
movie = small_movie_fixture(FRAMES, 5)


@pytest.fixture
def cells(cells_dock):
    viewer, w = cells_dock
    viewer.dims.set_current_step(0, 0)
    return viewer, w


def per_frame(w, obj_id):
    """Pixels of ``obj_id`` on each frame of the masklets."""
    return [int((w.labels_layer.data[t] == obj_id).sum()) for t in range(FRAMES)]


# ---------------------------------------------------------------- fault 1: a deleted clicks layer
def test_a_deleted_clicks_layer_comes_back_with_its_clicks_and_propagate_keeps_the_objects(cells, qtbot, movie):
    viewer, w = cells
    click_and_propagate(w, qtbot, movie)
    clicks, ids = np.array(w.points_layer.data), w.points_layer.features["obj_id"].to_numpy(int)
    before = {obj: per_frame(w, obj) for obj in (1, 2)}
    assert all(all(before[obj]) for obj in (1, 2))
    viewer.layers.remove(w.points_layer)  # the layer list's bin: the clicks layer is the active one
    qtbot.waitUntil(lambda: w.points_layer is not None and w.points_layer in viewer.layers, timeout=5_000)
    np.testing.assert_array_equal(w.points_layer.data, clicks)
    np.testing.assert_array_equal(w.points_layer.features["obj_id"].to_numpy(int), ids)
    assert "is back with its 2 click(s)" in w.status.text(), w.status.text()
    w.forward_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()
    assert sorted(w.controller.obj_ids) == [1, 2]
    assert all(all(per_frame(w, obj)) for obj in (1, 2))


def test_a_deleted_boxes_layer_comes_back_with_its_boxes(cells, qtbot, movie):
    viewer, w = cells
    (y0, x0), (y1, x1) = np.argwhere(movie.labels[0] == 1).min(0), np.argwhere(movie.labels[0] == 1).max(0)
    w.boxes_layer.add_rectangles(np.array([[0, y0, x0], [0, y0, x1], [0, y1, x1], [0, y1, x0]], float))
    wait(qtbot, w)
    box = np.array(w.boxes_layer.data[0])
    viewer.layers.remove(w.boxes_layer)
    qtbot.waitUntil(lambda: w.boxes_layer is not None and w.boxes_layer in viewer.layers, timeout=5_000)
    assert len(w.boxes_layer.data) == 1 and np.allclose(w.boxes_layer.data[0], box)
    assert w.boxes_layer.features["obj_id"].tolist() == [1]
    assert "is back with its 1 box(es)" in w.status.text(), w.status.text()


def test_a_propagation_that_would_lose_every_object_changes_nothing(cells, qtbot, movie):
    _, w = cells
    click_and_propagate(w, qtbot, movie, cells=(1,))
    controller, labels = w.controller, np.array(w.labels_layer.data)
    with pytest.raises(ValueError, match="clicks and boxes of object\\(s\\) 1 are gone"):
        controller.check_propagation([])  # what Propagate checks before it removes objects whose prompts vanished
    assert controller.obj_ids == [1]
    np.testing.assert_array_equal(w.labels_layer.data, labels)


# ---------------------------------------------------------------- fault 2: Load session… over unsaved work
def test_load_session_over_objects_asks_first_and_undo_after_it_says_the_history_starts_there(
        cells, qtbot, movie, monkeypatch, tmp_path):
    _, w = cells
    w.points_layer.add(np.array([[0, *centre(movie.labels[0], 3)]]))  # a session of another cell, saved
    wait(qtbot, w)
    saved = w.save_session(str(tmp_path / "other"))
    w.controller.remove_object(1)
    w.points_layer.data = np.zeros((0, 3))
    wait(qtbot, w)
    click_and_propagate(w, qtbot, movie, cells=(1,))
    work = per_frame(w, 1)
    questions, answers = [], []
    monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getOpenFileName", lambda *a, **k: (str(saved), ""))

    def question(parent, title, text, *args, **kwargs):
        from qtpy.QtWidgets import QMessageBox

        questions.append(text)
        return QMessageBox.Yes if answers.pop(0) else QMessageBox.Cancel

    monkeypatch.setattr("qtpy.QtWidgets.QMessageBox.question", question)
    answers.append(False)
    w.load_session_button.click()
    wait(qtbot, w)
    assert questions == ["Replace the 1 object(s) on 'cells' with the session's? Their masks are discarded "
                         "(Save session… keeps them)."]
    assert "Not loaded" in w.status.text(), w.status.text()
    assert per_frame(w, 1) == work and w.controller.obj_ids == [1]
    answers.append(True)
    w.load_session_button.click()
    wait(qtbot, w)
    assert len(questions) == 2
    assert per_frame(w, 1)[1:] == [0] * (FRAMES - 1)  # replaced by the session's cell, segmented on frame 0 only
    w.undo_button.click()
    assert w.status.text().startswith("Nothing to undo: the history starts at the session loaded"), w.status.text()


# ---------------------------------------------------------------- fault 6: a later prompt deleted
def test_deleting_a_later_click_names_the_frames_it_cleared(cells, qtbot, movie):
    viewer, w = cells
    click_and_propagate(w, qtbot, movie, cells=(1,))
    viewer.dims.set_current_step(0, 3)
    w.object_spin.setValue(1)
    w.points_layer.add(np.array([[3, *centre(w.labels_layer.data[3], 1)]]))  # a correction of object 1 on frame 3
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    assert all(per_frame(w, 1))
    w.points_layer.selected_data = {1}
    w.points_layer.remove_selected()  # what the Delete key does
    wait(qtbot, w)
    cleared = [t for t, n in enumerate(per_frame(w, 1)) if n == 0]
    assert cleared == [1, 2, 3, 4]  # the object is re-made from its frame-0 click
    assert "its masks on frame(s) 1-4 were cleared: propagate again" in w.status.text(), w.status.text()


# ---------------------------------------------------------------- fault 9: Undo after Merge
def test_undo_after_merge_says_merge_cannot_be_undone(cells, qtbot, movie, monkeypatch):
    _, w = cells
    click_and_propagate(w, qtbot, movie)
    monkeypatch.setattr("qtpy.QtWidgets.QInputDialog.getInt", lambda *a, **k: (2, True))
    w.objects.select_object(1)
    w.objects.merge_button.click()
    wait(qtbot, w)
    assert w.controller.obj_ids == [2]
    merged = np.array(w.labels_layer.data)
    w.undo_button.click()
    assert w.status.text() == ("Nothing to undo: Relabel and Merge can't be undone (the history starts after "
                               "them)."), w.status.text()
    np.testing.assert_array_equal(w.labels_layer.data, merged)


def test_a_step_after_a_merge_whose_re_run_never_started_is_undoable(cells, qtbot, movie, tmp_path):
    """Fault: Merge marked the next step as the start of the history before its re-run waited for the model; a model
    that could not load dropped the re-run, so the user's next step (here: Delete object) could not be undone."""
    import torch

    _, w = cells
    click_cells(w, qtbot, movie, (1, 2, 3))
    weights = tmp_path / "tuned.pt"
    torch.save({"model": w.picker.loaded_model().state_dict()}, weights)
    w.set_checkpoint_file(str(weights))
    weights.unlink()  # moved away: the model cannot load
    qtbot.wait(50)  # the re-run the model change asks for is refused
    w.merge_objects(1, 2)
    wait(qtbot, w)
    assert sorted(w.controller.obj_ids) == [2, 3]  # merged; its re-run was dropped with the load
    w.objects.select_object(3)
    w.objects.delete_button.click()
    wait(qtbot, w)
    assert w.controller.obj_ids == [2]
    w.undo_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Undid the last step"), w.status.text()
    assert sorted(w.controller.obj_ids) == [2, 3]


def test_cancelling_the_re_run_of_a_loaded_session_names_the_frames_it_wrote(
        make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Fault: the re-run after Load session is not an undoable step, so a Cancel after it wrote frames said
    "Cancelled before anything was changed." (and a failure "Nothing was changed.")."""
    long = make_timelapse(num_frames=16, shape=(96, 96), num_cells=3, seed=5, divisions=False, enter_leave=False,
                          radius_fraction=0.12)
    _, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", long.image))
    w.points_layer.add(np.array([[t, *centre(long.labels[t], 1)] for t in range(16)]))  # one click on each frame
    wait(qtbot, w)
    saved = w.save_session(str(tmp_path / "clicks"))
    assert w.load_session(str(saved))
    qtbot.waitUntil(lambda: w.progress.value() >= 1, timeout=60_000)  # its first frame is written
    w.cancel_button.click()
    wait(qtbot, w)
    status = w.status.text()
    assert status.startswith("Cancelled. Kept frames 0"), status
    assert "Undo reverts" not in status and "Undo cannot revert it: the history starts at the session" in status


# ---------------------------------------------------------------- fault 7: clicks in a transposed view
def test_a_click_in_a_transposed_view_is_refused(cells, qtbot, movie):
    viewer, w = cells
    viewer.dims.order = (2, 0, 1)  # the canvas shows frames x rows; the slider moves through columns
    w.points_layer.add(np.array([[2, *centre(movie.labels[2], 1)]]))
    wait(qtbot, w)
    assert len(w.points_layer.data) == 0
    assert "the frame axis 0" in w.status.text() and "Transpose back" in w.status.text(), w.status.text()
    assert w.controller is None or not w.controller.obj_ids
    assert w.labels_layer is None or not np.any(w.labels_layer.data)


# ---------------------------------------------------------------- fault 10: a stray .npy
def test_a_npy_file_is_not_a_session(cells, qtbot, monkeypatch, tmp_path):
    _, w = cells
    stray = tmp_path / "stray.npy"
    np.save(stray, np.zeros((4, 4)))
    monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getOpenFileName", lambda *a, **k: (str(stray), ""))
    w.load_session_button.click()
    assert "is not a napari-sam2 session file" in w.status.text(), w.status.text()
    assert "context manager" not in w.status.text()
