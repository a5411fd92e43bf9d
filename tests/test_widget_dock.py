"""The segmentation dock driven as a person does (a real viewer, the widget from the manifest with the demo model's
embedded weights, prompts added to the layers, buttons pressed, workers awaited): New object during a run, the
objects table read from the labels, a dock that fits a laptop screen, tooltips on every control, status lines that
say what happened, a selected row that picks the object, and a viewer closed during a run."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from qtpy.QtWidgets import QAbstractSpinBox, QComboBox, QDockWidget, QPushButton  # noqa: E402

from _helpers import small_movie_fixture  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402
from widget_helpers import (  # noqa: E402
    WIDGET, click_cell, open_widget, propagating, track_all_panel, wait, wait_tracking,
)

FRAMES = 5
movie = small_movie_fixture(FRAMES, 3)


@pytest.fixture
def opened(cells_dock):
    viewer, w = cells_dock
    w.window_combo.setCurrentText("off")
    viewer.dims.set_current_step(0, 0)
    return viewer, w


def tracked(qtbot, w, movie, obj: int = 1):
    """Cell ``obj`` clicked on frame 0 and propagated forward over the whole movie."""
    click_cell(w.points_layer, movie, obj)
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()


def test_new_object_during_a_run_gives_the_waiting_click_a_new_id(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Fault: New object was disabled during a run, so the next click on another cell joined the previous object
    (two cells under one id, silently). Now it moves the Object id; the click waits for the run and becomes the new
    object."""
    viewer, w, movie = propagating(make_napari_viewer, tmp_path, monkeypatch, qtbot, num_frames=10, seed=4)
    assert w.new_object_button.isEnabled()
    w.new_object_button.click()
    assert w.object_spin.value() == 2
    click_cell(w.points_layer, movie, 2)  # during the run: deferred
    wait(qtbot, w)
    assert sorted(w.controller.obj_ids) == [1, 2], w.status.text()
    frame0 = np.asarray(w.labels_layer.data[0])
    cell2 = movie.labels[0] == 2
    assert (frame0[cell2] == 2).mean() > 0.5 and not (frame0[cell2] == 1).any()


def rows(w):
    return {row.obj_id: (row.present, row.lost) for row in w.objects.rows}


def test_objects_table_reads_present_frames_from_the_labels(opened, qtbot, movie):
    """Fault: the table said "present on 0-4, lost on none" for an object whose labels were empty on some frames (it
    read the model's score). Now present = frames whose labels hold the object, the others are lost; and Segment
    current frame with nothing new says so instead of "Done."."""
    viewer, w = opened
    tracked(qtbot, w, movie)
    assert rows(w)[1] == (tuple(range(FRAMES)), ())
    labels = w.labels_layer.data
    erased = np.nonzero(labels == 1)
    keep = erased[0] >= 3
    w.labels_layer.data_setitem(tuple(axis[keep] for axis in erased), 0)  # the eraser on frames 3-4 (score positive)
    w.segment_button.click()  # frame 0: its click is segmented already
    wait(qtbot, w)
    assert rows(w)[1] == ((0, 1, 2), (3, 4))
    assert w.objects.table.item(0, 2).text() == "3-4"
    assert w.status.text().startswith("Nothing new to segment"), w.status.text()
    assert "none of its own" not in w.status.text()  # frame 0 has its own click (it was said before)


def erase(layer, frame: int, obj: int) -> None:
    """The eraser over every pixel of ``obj`` on ``frame`` of the masklets ``layer`` (napari's paint event follows)."""
    rr, cc = np.nonzero(np.asarray(layer.data[frame]) == obj)
    layer.data_setitem((np.full(len(rr), frame), rr, cc), 0)


def test_objects_table_after_a_merge_knows_the_frames_only_the_relabel_changed(opened, qtbot, movie, monkeypatch):
    """Fault: Merge relabelled the frames behind the runs' journals, so the table's per-frame ids stayed as before:
    object 2, erased from frame 3 where object 1 now lies merged into it, was still listed as lost there."""
    viewer, w = opened
    tracked(qtbot, w, movie, 1)
    w.new_object_button.click()
    click_cell(w.points_layer, movie, 2)
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    erase(w.labels_layer, 3, 2)
    w.objects.refresh()
    assert rows(w)[2] == ((0, 1, 2, 4), (3,))
    monkeypatch.setattr("qtpy.QtWidgets.QInputDialog.getInt", lambda *a, **k: (2, True))
    w.objects.select_object(1)
    w.objects.merge_button.click()  # the re-run after it writes frame 0 only
    wait(qtbot, w)
    assert (np.asarray(w.labels_layer.data[3]) == 2).any()
    assert rows(w)[2] == (tuple(range(FRAMES)), ())


def test_a_brush_stroke_on_a_rebuilt_masklets_layer_reaches_the_objects_table(opened, qtbot, movie):
    """Fault: the table followed brush strokes only on the masklets layer it first saw: after that layer was deleted
    and made again (same labels), an eraser stroke left the table saying the object was still there."""
    viewer, w = opened
    tracked(qtbot, w, movie)
    viewer.layers.remove(w.labels_layer)
    w.segment_button.click()  # the next run makes the layer again, with the labels so far
    wait(qtbot, w)
    assert w.labels_layer in viewer.layers and rows(w)[1] == (tuple(range(FRAMES)), ())
    erase(w.labels_layer, 4, 1)
    w.objects.refresh()
    assert rows(w)[1] == ((0, 1, 2, 3), (4,))


def test_the_objects_table_sees_napari_undo_and_redo_of_a_brush_stroke(opened, qtbot, movie):
    """Fault: napari's own Undo (Ctrl+Z) of an eraser stroke on the masklets layer sends no paint event, so the table
    still said the object was lost on the frame whose pixels the undo had put back."""
    viewer, w = opened
    tracked(qtbot, w, movie)
    erase(w.labels_layer, 4, 1)
    w.objects.refresh()
    assert rows(w)[1] == ((0, 1, 2, 3), (4,))
    w.labels_layer.undo()
    w.objects.refresh()
    assert rows(w)[1] == (tuple(range(FRAMES)), ())
    w.labels_layer.redo()
    w.objects.refresh()
    assert rows(w)[1] == ((0, 1, 2, 3), (4,))


def test_a_cancelled_propagation_still_gives_its_note(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Fault: the run's notes (here: the object starts from its clicked frame, not the one shown) were said only when
    a run was done, not when it was cancelled, failed or tracked nothing."""
    movie = make_timelapse(num_frames=12, shape=(96, 96), num_cells=3, seed=4, divisions=False, enter_leave=False,
                           radius_fraction=0.12)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_cell(w.points_layer, movie, 1)
    wait(qtbot, w)
    w.frames_spin.setValue(1)
    w.forward_button.click()  # object 1 tracked on frames 0-1
    wait(qtbot, w)
    w.new_object_button.click()
    click_cell(w.points_layer, movie, 2)  # object 2: only clicked
    wait(qtbot, w)
    w.frames_spin.setValue(0)
    viewer.dims.set_current_step(0, 1)
    w.forward_button.click()
    qtbot.waitUntil(lambda: w.progress.value() >= 2, timeout=60_000)
    w.cancel_button.click()
    wait(qtbot, w)
    status = w.status.text()
    assert status.startswith("Cancelled. Kept frames") and "Undo reverts the run" in status, status
    assert "Note: object(s) 2 had never been tracked, so they start from their clicked frame 0" in status, status


def test_dock_fits_a_laptop_screen_with_rows_at_their_height(opened, qtbot):
    """Fault: the dock needed 1037 px and squeezed the Model/Weights/Device rows to 12 px. Now its content scrolls."""
    viewer, w = opened
    dock = w.parentWidget()
    while not isinstance(dock, QDockWidget):
        dock = dock.parentWidget()
    assert dock.minimumSizeHint().height() <= 600
    window = dock.window()
    window.resize(1366, 700)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(50)
    for combo in (w.model_combo, w.checkpoint_combo, w.device_combo, w.image_combo):
        assert combo.height() >= combo.sizeHint().height(), combo.currentText()
    assert w.forward_button in w.findChildren(QPushButton)  # child widgets are still found under the widget


def controls_without_tip(w):
    kinds = (QPushButton, QComboBox, QAbstractSpinBox)
    return [c.text() if isinstance(c, QPushButton) else type(c).__name__ for c in w.findChildren(kinds)
            if not c.toolTip().strip()]


def test_every_button_combo_and_spin_box_has_a_tooltip_before_and_after_a_run(opened, qtbot, movie):
    """Fault: about 40 controls had no tooltip, and every busy/idle refresh blanked the propagate buttons'."""
    viewer, w = opened
    w.track_all.expand(animate=False)
    assert controls_without_tip(w) == []
    before = w.forward_button.toolTip()
    tracked(qtbot, w, movie)
    assert controls_without_tip(w) == [] and w.forward_button.toolTip() == before


def test_status_says_when_nothing_was_propagated_and_where_a_cancel_stopped(opened, qtbot, movie,
                                                                          make_napari_viewer, tmp_path, monkeypatch):
    """Fault: Propagate ▶ on the last frame and ◀ on frame 0 said "Done." though nothing was tracked; a refused click
    ran its message into "Nothing was changed." without a full stop; Cancel did not name the frames kept."""
    viewer, w = opened
    tracked(qtbot, w, movie)
    viewer.dims.set_current_step(0, FRAMES - 1)
    w.forward_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith(f"Nothing to propagate forward from frame {FRAMES - 1} (the last"), \
        w.status.text()
    viewer.dims.set_current_step(0, 0)
    w.backward_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Nothing to propagate backward from frame 0"), w.status.text()

    w.new_object_button.click()
    w.positive_button.click()  # negative: a negative click alone on a new object is refused
    click_cell(w.points_layer, movie, 2, frame=2)
    wait(qtbot, w)
    status = w.status.text()
    assert "refused" in status and "used). Nothing was changed." in status, status


def test_cancel_names_the_frames_kept(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    viewer, w, movie = propagating(make_napari_viewer, tmp_path, monkeypatch, qtbot, num_frames=12, seed=4)
    w.cancel_button.click()
    wait(qtbot, w)
    status = w.status.text()
    assert status.startswith("Cancelled. Kept frames 0-") and "Propagate again from frame" in status, status


def test_status_after_track_all_and_after_reopening_the_dock(opened, qtbot, movie):
    """Fault: after Track all ended, and after the dock was opened again over clicks and masks, the status still said
    "Pick an image layer, then click on an object."."""
    viewer, w = opened
    panel = track_all_panel(w)
    tracked(qtbot, w, movie)
    panel.track_button.click()
    wait_tracking(qtbot, w)
    assert w.status.text().startswith("Track all cells: Done"), w.status.text()

    viewer.window.remove_dock_widget(w)
    _, again = viewer.window.add_plugin_dock_widget(*WIDGET)
    assert again.status.text().startswith("Picked up the clicks"), again.status.text()


def test_selecting_a_row_makes_clicks_go_to_that_object(opened, qtbot, movie):
    """Fault: selecting object 1's row left Object id on another object, so the next click went to that one."""
    viewer, w = opened
    tracked(qtbot, w, movie, 1)
    w.new_object_button.click()
    click_cell(w.points_layer, movie, 2)
    wait(qtbot, w)
    w.new_object_button.click()
    assert w.object_spin.value() == 3
    w.objects.table.selectRow([row.obj_id for row in w.objects.rows].index(1))
    assert w.object_spin.value() == 1
    w.forward_button.click()  # the table is refilled after the run: that is not a person's selection
    w.object_spin.setValue(3)
    wait(qtbot, w)
    assert w.object_spin.value() == 3


def test_closing_the_viewer_during_a_run_leaves_the_widget_idle(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Fault: the viewer closed mid-run left ``widget.busy()`` True for ever (a script holding the widget waited)."""
    viewer, w, movie = propagating(make_napari_viewer, tmp_path, monkeypatch, qtbot, num_frames=12, seed=4)
    viewer.close()
    qtbot.waitUntil(lambda: not w.busy(), timeout=30_000)
