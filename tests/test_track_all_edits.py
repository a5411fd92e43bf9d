"""Track all after the person's edits, driven as a person does (real napari under xvfb-run, the demo model, a small
synthetic time-lapse): the lineage, the Tracks layer and the panel's count follow brush / fill / eraser strokes on the
masklets layer (and napari's own undo of one); the panel's Delete track and Merge track into id act on whole tracks,
undoably."""

from __future__ import annotations

import numpy as np
import pytest

from _helpers import small_movie_fixture
from widget_helpers import open_widget, track_all_panel, wait_tracking

FRAMES = 5
movie = small_movie_fixture(FRAMES, 11)


@pytest.fixture
def tracked(make_napari_viewer, tmp_path, monkeypatch, movie, qtbot):
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(widget)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert panel.status.text().startswith("Done"), panel.status.text()
    whole = [row.track_id for row in panel.current().tracking.lineage.rows() if row.begin == 0
             and row.end == FRAMES - 1]
    assert len(whole) >= 2, panel.current().tracking.lineage.rows()
    return viewer, widget, panel, whole


def inside(plane: np.ndarray, track_id: int) -> tuple:
    """A pixel (row, col) of ``track_id`` on ``plane``."""
    return tuple(int(v) for v in np.argwhere(plane == track_id)[0])


def erase(viewer, layer, track_id: int, frame: int) -> None:
    """The person shows ``frame`` and fills the cell ``track_id`` with background (the fill tool, label 0)."""
    viewer.dims.set_current_step(0, frame)
    layer.fill((frame, *inside(layer.data[frame], track_id)), 0)


def tracks_ids(panel, frame: int = None) -> set:
    """The track ids the Tracks layer draws (on ``frame``, or on any)."""
    data = panel.current().tracks.data
    if frame is not None:
        data = data[data[:, 1] == frame]
    return set(int(i) for i in data[:, 0])


def settled(panel) -> bool:
    return panel.follow_worker is None and not panel._follow_timer.isActive()


def test_track_edits_keep_the_lineage_consistent_with_the_labels() -> None:
    """Delete: daughters become roots; merging a daughter into its mother: the joined track ends with the daughter
    and the other daughter (now beginning before that end) loses its parent; a hand-erased end reads "lost"; each is
    one undo step."""
    from sam2_model.tracking import Lineage, Track
    from napari_sam2.track_all import TrackAll

    labels = np.zeros((6, 8, 8), np.uint32)
    labels[0:3, 0:2, 0:2] = 1  # divides at 2 into 2 and 3
    labels[3:6, 0:2, 0:1] = 2
    labels[3:6, 0:2, 1:2] = 3
    labels[0:6, 5:7, 5:7] = 4
    tracking = TrackAll(labels, 6)
    tracking.lineage = Lineage([Track(1, 0, 2, 0, "divided"), Track(2, 3, 5, 1, "end of stack"),
                                Track(3, 3, 5, 1, "end of stack"), Track(4, 0, 5, 0, "end of stack")])
    list(tracking.merge_track(2, 1))
    assert {row.track_id: (row.begin, row.end, row.parent, row.end_reason) for row in tracking.lineage.rows()} == {
        1: (0, 5, 0, "end of stack"), 3: (3, 5, 0, "end of stack"), 4: (0, 5, 0, "end of stack")}
    tracking.undo()
    list(tracking.delete_track(1))
    assert not (labels == 1).any() and [row.parent for row in tracking.lineage.rows()] == [0, 0, 0]
    tracking.undo()
    assert tracking.lineage[2].parent == 1 and (labels[:3] == 1).any(axis=(1, 2)).all()
    with pytest.raises(ValueError, match="must be a positive label id"):
        list(tracking.delete_track(0))
    labels[4:, 5:7, 5:7] = 0  # erased by hand on the last two frames
    lineage, result = tracking.followed()
    assert lineage[4] == Track(4, 0, 3, 0, "lost") and result.lineage[4] == lineage[4]


@pytest.mark.gui
def test_the_lineage_tracks_and_count_follow_strokes_on_the_masklets(tracked, qtbot):
    """Fault: after hand edits the Tracks layer drew erased tracks, the lineage kept rows of tracks with no pixels
    (and old ends) and the count stayed stale: they were made only at the end of a run or an undo."""
    viewer, widget, panel, (first, second, *_) = tracked
    layer = widget.labels_layer
    tracking = panel.current().tracking
    count = len(tracking.lineage)

    erase(viewer, layer, first, FRAMES - 1)  # the cell is gone on the last frame
    qtbot.waitUntil(lambda: tracking.lineage[first].end == FRAMES - 2 and settled(panel), timeout=30_000)
    assert tracking.lineage[first].end_reason == "lost"
    assert first not in tracks_ids(panel, FRAMES - 1) and first in tracks_ids(panel, 0)

    for t in range(FRAMES):  # a false track, erased on every frame
        erase(viewer, layer, second, t)
    qtbot.waitUntil(lambda: second not in tracking.lineage and settled(panel), timeout=30_000)
    assert second not in tracks_ids(panel)
    assert f"{count - 1} track(s)" in panel.status.text(), panel.status.text()

    layer.undo()  # napari's own undo (Ctrl+Z) of the last stroke, on the frame shown: the cell is back there
    qtbot.waitUntil(lambda: second in tracking.lineage and settled(panel), timeout=30_000)
    assert (tracking.lineage[second].begin, tracking.lineage[second].end) == (FRAMES - 1, FRAMES - 1)
    assert second in tracks_ids(panel, FRAMES - 1)
    assert f"{count} track(s)" in panel.status.text(), panel.status.text()


@pytest.mark.gui
def test_delete_and_merge_a_track_from_the_panel_then_undo(tracked, qtbot):
    """Fault: nothing acted on a whole track (the widget's Delete / Merge know only its own objects): deleting a false
    track or joining two pieces of one cell took the brush on every frame."""
    viewer, widget, panel, (first, second, *_) = tracked
    layer = widget.labels_layer
    tracking = panel.current().tracking
    before = layer.data.copy()

    panel.track_spin.setValue(first)
    panel.delete_button.click()
    wait_tracking(qtbot, widget)
    assert not (layer.data == first).any() and first not in tracking.lineage
    assert first not in tracks_ids(panel)
    assert panel.status.text().startswith(f"Done: deleted track {first}"), panel.status.text()
    panel.undo_button.click()
    np.testing.assert_array_equal(layer.data, before)
    assert tracking.lineage[first].end == FRAMES - 1
    qtbot.waitUntil(lambda: settled(panel) and first in tracks_ids(panel), timeout=30_000)  # derived in a worker

    panel.track_spin.setValue(second)
    panel.merge_spin.setValue(first)  # both are on every frame: refused, naming the frames, nothing written
    panel.merge_button.click()
    wait_tracking(qtbot, widget)
    assert f"tracks {second} and {first} are both on frames 0-{FRAMES - 1}" in panel.status.text(), \
        panel.status.text()
    np.testing.assert_array_equal(layer.data, before)

    viewer.dims.set_current_step(0, 3)  # an id switch made by hand: the cell is 60 from frame 3 on
    for t in range(3, FRAMES):
        layer.fill((t, *inside(layer.data[t], first)), 60)
    qtbot.waitUntil(lambda: tracking.lineage[first].end == 2 and settled(panel), timeout=30_000)
    panel.track_spin.setValue(60)
    panel.merge_spin.setValue(first)
    panel.merge_button.click()
    wait_tracking(qtbot, widget)
    np.testing.assert_array_equal(layer.data, before)  # one track again, under its first id
    assert (tracking.lineage[first].begin, tracking.lineage[first].end) == (0, FRAMES - 1)
    assert 60 not in tracking.lineage and 60 not in tracks_ids(panel)
    panel.undo_button.click()
    assert (layer.data == 60).any(axis=(1, 2)).tolist() == [False] * 3 + [True] * (FRAMES - 3)

    panel.track_spin.setValue(99)
    panel.delete_button.click()
    wait_tracking(qtbot, widget)
    assert "track 99 has no pixels" in panel.status.text(), panel.status.text()



@pytest.mark.gui
def test_track_all_asks_before_replacing_frames_edited_by_hand(tracked, qtbot, monkeypatch):
    """Fault (E2): pressing Track all again replaced frames the person had corrected by hand without a word. Now a
    run that would replace frames holding hand edits made after the run that wrote them asks first: No starts
    nothing, Yes replaces them (Undo tracking step brings them back). Frames that hold what a run wrote (napari's own
    undo took the strokes back, or a run came after them) and scripts (``napari_sam2.track_cells``) ask nothing."""
    import napari_sam2
    from qtpy.QtWidgets import QMessageBox

    viewer, widget, panel, (first, *_) = tracked
    layer = widget.labels_layer
    tracking = panel.current().tracking
    asked, answers = [], []

    def question(parent, title, text, *args):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr("qtpy.QtWidgets.QMessageBox.question", question)
    for t in (3, 4):  # the person erases a false cell on frames 3-4
        erase(viewer, layer, first, t)
    qtbot.waitUntil(lambda: settled(panel), timeout=30_000)
    edited, runs = layer.data.copy(), len(tracking.history)
    viewer.dims.set_current_step(0, 0)

    answers.append(QMessageBox.No)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert asked == ["Frames 3-4 hold hand edits made after the last run: Track all replaces them (Undo tracking step "
                     "brings them back). Go on?"], asked
    assert panel.status.text() == "Not tracked: frames 3-4 keep the hand edits.", panel.status.text()
    np.testing.assert_array_equal(layer.data, edited)
    assert len(tracking.history) == runs

    answers.append(QMessageBox.Yes)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert len(asked) == 2 and panel.status.text().startswith("Done: frames 0-4"), panel.status.text()
    assert (layer.data[3:] == first).any(axis=(1, 2)).all()  # the run tracked the cell there again
    panel.undo_button.click()
    np.testing.assert_array_equal(layer.data, edited)  # the hand edits are back

    viewer.dims.set_current_step(0, 4)
    layer.undo()  # napari's own undo (Ctrl+Z) of both strokes: frames 3-4 hold what the first run wrote again
    layer.undo()
    assert (layer.data[3:] == first).any(axis=(1, 2)).all()
    qtbot.waitUntil(lambda: settled(panel), timeout=30_000)
    viewer.dims.set_current_step(0, 0)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert len(asked) == 2 and panel.status.text().startswith("Done: frames 0-4"), panel.status.text()

    cell = layer.data[2] == first
    erase(viewer, layer, first, 2)  # a script replaces a frame edited by hand without asking (as a run from the
    qtbot.waitUntil(lambda: settled(panel), timeout=30_000)  # console always did; Undo tracking step restores it)
    napari_sam2.track_cells(viewer, "cells")
    assert len(asked) == 2 and layer.data[2][cell].any()
