"""Faults of the Track all panel found by hands-on use (h17), each driven as a person does: real napari under
xvfb-run, the demo model, small synthetic time-lapses (96 x 96)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from _helpers import small_movie_fixture
from widget_helpers import open_widget, track_all_panel, wait_tracking

FRAMES = 6
movie = small_movie_fixture(FRAMES, 11)


def track(qtbot, widget, panel, frame: int = 0) -> None:
    widget.viewer.dims.set_current_step(0, frame)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert panel.status.text().startswith("Done"), panel.status.text()


@pytest.mark.gui
def test_closing_the_viewer_while_track_all_runs_stops_it_quietly(track_all_dock, qtbot):
    """Fault: the finished callback touched deleted buttons: 'wrapped C/C++ object … has been deleted', Python
    aborted (SIGABRT). Now the run stops and lets go of the widget (pytest-qt fails a test on an error in a slot)."""
    viewer, widget, panel = track_all_dock
    panel.track_button.click()
    qtbot.waitUntil(lambda: panel.progress.value() >= 1, timeout=120_000)
    worker = panel.worker
    viewer.close()
    qtbot.waitUntil(lambda: panel.worker is None and not widget.busy(), timeout=60_000)
    qtbot.waitUntil(lambda: not worker.is_running, timeout=10_000)


@pytest.mark.gui
def test_closing_the_viewer_inside_a_frame_shows_no_error(make_napari_viewer, tmp_path, monkeypatch, movie, qtbot):
    """Fault (E2): a step that reached the panel after its window closed touched the deleted progress bar; the
    panel's step handler caught that and notified "ERROR: SAM 2: wrapped C/C++ object of type QProgressBar has been
    deleted". Now the run stops without a word. The run is held inside frame 0 until the window is closed, so the
    next step always arrives after it."""
    from napari_sam2.track_all import TrackAll

    real = TrackAll.track
    closed = threading.Event()

    def held(self, *args, **kwargs):  # the real run, held after its first "work" step until the window is closed
        for step in real(self, *args, **kwargs):
            yield step
            if step[0] == "work":
                assert closed.wait(60), "the viewer was not closed"

    monkeypatch.setattr(TrackAll, "track", held)
    errors = []
    monkeypatch.setattr("napari_sam2._track_all_panel.show_error", errors.append)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(widget)
    panel.track_button.click()
    qtbot.waitUntil(lambda: panel.status.text().startswith("Tracking frame 0:"), timeout=120_000)
    worker = panel.worker
    viewer.close()
    closed.set()
    qtbot.waitUntil(lambda: not worker.is_running and panel.worker is None and not widget.busy(), timeout=60_000)
    assert errors == []


def background_spot(labels: np.ndarray, frames, radius: int = 6) -> tuple:
    """(row, col) whose disk of ``radius`` is background on every one of ``frames``."""
    from scipy import ndimage

    free = ~np.any(labels[list(frames)] > 0, axis=0)
    free = ndimage.binary_erosion(free, iterations=radius + 1, border_value=0)
    return tuple(int(v) for v in np.argwhere(free)[0])


@pytest.mark.gui
def test_a_cell_painted_by_hand_is_in_every_export(track_all_dock, qtbot, tmp_path, monkeypatch):
    """Fault: ``TrackAll.result`` kept only the lineage's ids, so a missed cell painted with a new label was dropped
    from the CTC, GEFF, CSV and TIFF exports without a word."""
    import tifffile

    from sam2_model.tracking import check_ctc, read_ctc

    viewer, widget, panel = track_all_dock
    track(qtbot, widget, panel)
    layer = widget.labels_layer
    y, x = background_spot(layer.data, range(3))
    layer.selected_label = 70  # the person paints a missed cell on frames 0-2
    layer.brush_size = 7
    layer.mode = "paint"
    for t in range(3):
        layer.paint((t, y, x), 70)
    assert (layer.data[:3] == 70).any(axis=(1, 2)).all()

    monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "ctc"), ""))
    panel.export_buttons["ctc"].click()
    qtbot.waitUntil(lambda: panel.worker is None and not widget.busy(), timeout=60_000)
    labels, lineage = read_ctc(tmp_path / "ctc")
    np.testing.assert_array_equal(labels == 70, layer.data == 70)  # the painted cell, as painted
    assert (lineage[70].begin, lineage[70].end, lineage[70].parent) == (0, 2, 0)
    assert check_ctc(labels, lineage) == []
    assert "1 hand-painted id(s) (70) were added as tracks" in panel.status.text(), panel.status.text()
    written = tifffile.imread(panel.export("labels", str(tmp_path / "labels.tif")))  # the console's export too
    np.testing.assert_array_equal(written, layer.data)
    assert "(70) were added as tracks" in panel.status.text()


@pytest.mark.gui
@pytest.mark.parametrize("removed", ["image", "masklets"])
def test_removing_the_image_or_its_masklets_mid_run_stops_track_all(track_all_dock, qtbot, removed):
    """Fault: the run went on to the end, said "Done … Pick a track" and added a lineage layer for a removed image;
    the widget's own runs stop ("stopped: the image … was removed"). Then (E2) the frames kept read "frames 0-1 were
    tracked" after a full stop, and for a deleted masklets layer did not say that they are kept (they are: the next
    run shows them in a new masklets layer)."""
    viewer, widget, panel = track_all_dock
    viewer_image_id = viewer.layers["cells"].unique_id
    panel.track_button.click()
    qtbot.waitUntil(lambda: panel.progress.value() >= 1, timeout=120_000)
    name = "cells" if removed == "image" else "SAM2 masklets [cells]"
    viewer.layers.remove(name)
    qtbot.waitUntil(lambda: panel.worker is None and not widget.busy(), timeout=60_000)
    why = "the image 'cells' was removed" if removed == "image" else f"the masklets layer '{name}' was deleted"
    done = sorted(set(panel.images[viewer_image_id].tracking.history[-1].frames))
    kept = f"Frames 0-{done[-1]} were" if len(done) > 1 else "Frame 0 was"
    text = panel.status.text()
    assert text.startswith(f"Stopped: {why}. {kept} tracked (whole frames)"), text
    assert "SAM2 lineage [cells]" not in viewer.layers
    if removed == "image":
        assert text.endswith("(whole frames)."), text
        return
    # (E2: "… was deleted. frames 0-1 were tracked": lower case, and the frames are not lost) they are kept and the
    # next run shows them in a new masklets layer
    assert text.endswith("and are kept: 'Track all cells', a click or Propagate shows them again in a new masklets "
                         "layer." if len(done) > 1 else "and is kept: 'Track all cells', a click or Propagate shows it "
                         "again in a new masklets layer."), text
    planes = panel.images[viewer_image_id].tracking.labels[done].copy()
    assert all(plane.any() for plane in planes)
    viewer.dims.set_current_step(0, done[-1] + 1)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert panel.status.text().startswith(f"Done: frames {done[-1] + 1}-"), panel.status.text()
    np.testing.assert_array_equal(widget.labels_layer.data[done], planes)


@pytest.mark.gui
def test_a_second_run_from_a_later_frame_continues_the_tracks(track_all_dock, qtbot, monkeypatch):
    """Fault: a run from frame s relabelled every cell from s on with new, unlinked ids, kept the old rows running to
    the end of the stack and the Done line counted every cell twice. Now a cell on frame s continues the track it
    overlaps on frame s - 1, and a track that does not go on ends before s, "lost"."""
    viewer, widget, panel = track_all_dock
    monkeypatch.setattr("qtpy.QtWidgets.QMessageBox.question", pytest.fail)  # a continuation is not asked about
    track(qtbot, widget, panel)
    labels = widget.labels_layer.data
    first = labels.copy()
    ids = sorted(set(np.unique(first).tolist()) - {0})
    assert len(ids) == 3 and all(set(np.unique(first[t]).tolist()) - {0} == set(ids) for t in range(FRAMES))
    gone = ids[0]  # the person erases one cell on frame 2 (the tracker's next run cannot continue it)
    y, x = np.argwhere(first[2] == gone)[0]
    widget.labels_layer.fill((2, int(y), int(x)), 0)
    assert not (labels[2] == gone).any()

    track(qtbot, widget, panel, frame=3)
    after = widget.labels_layer.data
    np.testing.assert_array_equal(after[:3], labels[:3])  # the frames before are kept
    lineage = panel.current().tracking.lineage
    for cell in ids[1:]:  # same ids on frames 3-5, one row each from frame 0 to the end
        assert all((after[t] == cell).any() for t in range(3, FRAMES)), cell
        assert (lineage[cell].begin, lineage[cell].end, lineage[cell].end_reason) == (0, FRAMES - 1, "end of stack")
    assert (lineage[gone].end, lineage[gone].end_reason) == (1, "lost")  # ends where its pixels end
    new = sorted(set(np.unique(after[3:]).tolist()) - {0} - set(ids))
    assert len(new) == 1 and lineage[new[0]].begin == 3 and lineage[new[0]].parent == 0
    assert len(lineage) == 4
    text = panel.status.text()
    assert text.startswith("Done: frames 3-5, 4 track(s)"), text
    assert "2 cell(s) on frame 3 continue their tracks of frame 2 (same ids)" in text


@pytest.mark.gui
@pytest.mark.parametrize("answer, frames", [("Yes", range(FRAMES)), ("No", range(3, FRAMES)), ("Cancel", ())])
def test_track_all_on_the_middle_frame_of_an_untracked_stack_asks_where_to_start(track_all_dock, qtbot, monkeypatch,
                                                                               answer, frames):
    """Fault: pressing 'Track all cells' right after opening a stack (napari shows its middle frame) tracked only its
    second half, without a word. Now it asks: from frame 0 (Yes), from the frame shown (No), or not at all."""
    from qtpy.QtWidgets import QMessageBox

    viewer, widget, panel = track_all_dock
    asked = []

    def question(parent, title, text, *args):
        asked.append(text)
        return getattr(QMessageBox, answer)

    monkeypatch.setattr("qtpy.QtWidgets.QMessageBox.question", question)
    viewer.dims.set_current_step(0, 3)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert len(asked) == 1 and "frames 0-2 hold no labels" in asked[0], asked
    labels = widget.labels_layer.data if widget.labels_layer is not None else np.zeros((FRAMES, 1, 1))
    assert [t for t in range(FRAMES) if labels[t].any()] == list(frames)
    if answer == "Cancel":
        assert panel.status.text().startswith("Not tracked (cancelled)"), panel.status.text()
        return
    assert panel.status.text().startswith(f"Done: frames {frames[0]}-{FRAMES - 1}"), panel.status.text()
    viewer.dims.set_current_step(0, 4)  # frames before hold labels now: a continuation, not asked about
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert len(asked) == 1


@pytest.mark.gui
def test_after_a_run_the_brush_paints_a_free_id_not_track_1(track_all_dock, qtbot):
    """Fault: after a run the masklets layer's paint label stayed 1, a track: a missed cell painted right away
    joined track 1. Now it is a free id above every track and the widget's next object id."""
    viewer, widget, panel = track_all_dock
    track(qtbot, widget, panel)
    layer = widget.labels_layer
    tracks = set(np.unique(layer.data).tolist()) - {0}
    assert layer.selected_label > max(tracks) and layer.selected_label > widget.object_spin.value()
    assert panel.track_spin.value() == 1  # a free paint label is not a track picked for correction
    layer.selected_label = 2  # picking a track's label still picks the track
    assert panel.track_spin.value() == 2


@pytest.mark.gui
def test_no_cell_found_on_one_channel_of_a_tcyx_stack_points_to_the_channel_axis(make_napari_viewer, tmp_path,
                                                                                  monkeypatch, qtbot, movie):
    """Fault: with the Channel axis left at "none", the slider's channel (an empty one) was tracked and the note
    only said to check the cell diameter and the seeding."""
    stack = np.stack([movie.image[:4], np.zeros_like(movie.image[:4])], axis=1)  # (T, C, Y, X): nuclei, empty
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", stack))
    panel = track_all_panel(widget)
    viewer.dims.set_current_step(1, 1)  # the slider on the empty channel
    track(qtbot, widget, panel)
    text = panel.status.text()
    assert "no track: no cells were detected" in text, text
    assert "Only slice 1 of axis 1 (2 slices) was tracked" in text
    assert "'axis 1 (2)' as the widget's 'Channel axis'" in text


@pytest.mark.gui
def test_panel_wording_tooltips_and_its_progress_in_view(track_all_dock, qtbot):
    """Fault: a smallest cell above the largest failed with "cell_diameter must satisfy 0 < min <= max" (the code's
    argument, not the controls); the four export buttons shared one tooltip; the panel's status and progress were
    scrolled out of view below the tall widget while a run went on."""
    from qtpy.QtWidgets import QScrollArea

    viewer, widget, panel = track_all_dock
    panel.min_diameter_spin.setValue(50)
    panel.max_diameter_spin.setValue(10)
    panel.track_button.click()
    qtbot.waitUntil(lambda: panel.status.text().startswith("Failed") and not widget.busy(), timeout=60_000)
    text = panel.status.text()
    assert "the largest cell (10 px, the box after 'to') must be >= the smallest cell (50 px" in text, text
    assert panel.worker is None and widget.labels_layer is None or not widget.labels_layer.data.any()

    tips = {what: button.toolTip() for what, button in panel.export_buttons.items()}
    assert len(set(tips.values())) == 4
    assert ".tif" in tips["labels"] and "CSV" in tips["tracks"] and "new, empty or an earlier CTC result" in tips["ctc"]
    assert ".geff" in tips["geff"] and all("widget's own 'Export labels'" in tip for tip in tips.values())

    area = panel.parentWidget()
    while not isinstance(area, QScrollArea):
        area = area.parentWidget()
    viewer.window._qt_window.resize(1000, 500)  # a short window: the panel is below the dock's bottom edge
    viewer.window._qt_window.show()
    area.verticalScrollBar().setValue(0)
    qtbot.waitUntil(lambda: panel.progress.visibleRegion().isEmpty(), timeout=5_000)
    panel.min_diameter_spin.setValue(6)
    panel.max_diameter_spin.setValue(24)
    panel.track_button.click()
    assert not panel.progress.visibleRegion().isEmpty() and not panel.status.visibleRegion().isEmpty()
    wait_tracking(qtbot, widget)


def test_a_kept_track_whose_daughters_a_later_run_replaced_ends_lost_before_it_unless_continued():
    """The lineage rule of a run from frame 3 (no model): kept rows end before the run unless a cell continues them;
    a kept mother whose daughters the run replaced is no longer 'divided'; the run's rows join the tracks they
    continue (their daughters' parent too)."""
    from sam2_model.tracking import Track

    from napari_sam2.track_continuation import joined_lineage

    kept = [Track(1, 0, 5, 0, "end of stack"), Track(2, 0, 5, 0, "end of stack"), Track(3, 0, 1, 0, "lost"),
            Track(4, 0, 2, 0, "divided")]
    new = [Track(11, 3, 4, 0, "divided"), Track(12, 5, 5, 11, "end of stack"), Track(13, 3, 5, 0, "end of stack")]
    rows = {row.track_id: row for row in joined_lineage(kept, new, {11: 1}, 3, {1: 2, 2: 1, 3: 1, 4: 2}).rows()}
    assert rows == {1: Track(1, 0, 4, 0, "divided"), 2: Track(2, 0, 1, 0, "lost"), 3: Track(3, 0, 1, 0, "lost"),
                    4: Track(4, 0, 2, 0, "lost"), 12: Track(12, 5, 5, 1, "end of stack"),
                    13: Track(13, 3, 5, 0, "end of stack")}


def settled(panel) -> bool:
    return panel.follow_worker is None and not panel._follow_timer.isActive()


@pytest.mark.gui
def test_after_a_delete_the_brush_avoids_a_hand_painted_cell_and_no_false_hand_edit_status(track_all_dock, qtbot,
                                                                                          monkeypatch):
    """Faults: (B1) the brush's free id came from the lineage and the widget only, so after Delete it was the id of a
    cell painted by hand (no lineage row) again: a second painted cell joined it; (B4) the Tracks layer was remade
    by reading the whole stack on the GUI thread; (B3) once a stroke was seen, every
    later run / undo / edit started a whole-stack follow that replaced the status with "Labels edited by hand"."""
    viewer, widget, panel = track_all_dock
    track(qtbot, widget, panel)
    layer = widget.labels_layer
    tracking = panel.current().tracking
    painted = int(layer.selected_label)
    y, x = background_spot(layer.data, [0])
    layer.mode = "paint"
    layer.brush_size = 7
    layer.paint((0, y, x), painted)  # a missed cell, painted with the free id the panel gave the brush
    qtbot.waitUntil(lambda: settled(panel) and panel.status.text().startswith("Labels edited by hand"),
                    timeout=30_000)
    first = tracking.lineage.rows()[0].track_id
    panel.track_spin.setValue(first)
    gui_reads = []  # (B4) the Tracks layer after Delete is derived in its worker, not by reading the stack here
    result = tracking.result_and_spans
    monkeypatch.setattr(tracking, "result_and_spans", lambda *a: (
        gui_reads.append(1) if threading.current_thread() is threading.main_thread() else None, result(*a))[1])
    panel.delete_button.click()
    wait_tracking(qtbot, widget)
    assert panel.status.text().startswith(f"Done: deleted track {first}"), panel.status.text()
    assert not gui_reads and first not in panel.current().tracks.data[:, 0]
    assert layer.selected_label != painted  # a cell painted next is a cell of its own
    qtbot.wait(3 * 500)  # longer than the follow's delay: nothing was edited by hand, so the status stays
    assert panel.status.text().startswith(f"Done: deleted track {first}"), panel.status.text()
    panel.undo_button.click()
    qtbot.wait(3 * 500)
    assert panel.status.text().startswith("Undid the deleted track"), panel.status.text()
    assert layer.selected_label != painted


@pytest.mark.gui
def test_a_cancelled_delete_changes_nothing_and_says_so(track_all_dock, qtbot):
    """Fault (B2): Cancel part-way through Delete / Merge kept the frames relabelled but not the lineage (it was
    updated only after the last frame) and the status said "frames … were tracked". Now a cancelled edit is undone
    whole; the status says nothing changed, or (cancelled after its last frame) names what changed."""
    viewer, widget, panel = track_all_dock
    track(qtbot, widget, panel)
    layer = widget.labels_layer
    tracking = panel.current().tracking
    before, rows, runs = layer.data.copy(), tracking.lineage.rows(), len(tracking.history)
    first = rows[0].track_id

    steps = tracking.delete_track(first)  # part-way: two of its frames written, then closed (what Cancel does)
    assert [next(steps)[0], next(steps)[0]] == ["plan", "frame"] and (layer.data != before).any()
    steps.close()
    np.testing.assert_array_equal(layer.data, before)
    assert tracking.lineage.rows() == rows and len(tracking.history) == runs
    steps = tracking.merge_track(first, 90)  # failed part-way: the same
    next(steps), next(steps)
    with pytest.raises(OSError):
        steps.throw(OSError("disk gone"))
    np.testing.assert_array_equal(layer.data, before)
    assert tracking.lineage.rows() == rows and len(tracking.history) == runs

    panel.track_spin.setValue(first)  # from the panel: Cancel right after Delete
    panel.delete_button.click()
    panel.cancel_button.click()
    wait_tracking(qtbot, widget)
    text = panel.status.text()
    assert "tracked" not in text, text
    if len(tracking.history) == runs:
        assert text.startswith("Cancelled: nothing changed"), text
        np.testing.assert_array_equal(layer.data, before)
    else:  # cancelled after its last frame: the delete is whole, lineage included
        assert first not in tracking.lineage and not (layer.data == first).any(), text
