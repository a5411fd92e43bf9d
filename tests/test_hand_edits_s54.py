"""Propagate keeps a person's brush / fill / eraser edits of the objects it does not track again, in every case.

Last stop's marks (the checksum of each plane the controller wrote) missed three cases: a stroke on a frame the
controller never wrote (before the first propagation reaches it), a stroke made during a Propagate run on a frame the
pass had not reached, and a stroke on the widget's objects made during a Track all run (Track all's write of the
frame then counted as the frame's content). Now the widget's masklets strokes reach the controllers (napari's paint
event: the frames and pixels they changed), and a pass reads each frame's edits just before the model tracks it.
The widget is driven as a person does: clicks on the clicks layer, napari's brush / fill on the masklets layer, the
buttons (demo model, CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from widget_helpers import (
    centre, click_and_propagate, open_widget, small_movie, track_all_panel, wait, wait_tracking,
)


@pytest.mark.gui
def test_a_stroke_on_a_frame_no_run_wrote_yet_is_kept(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Object 1 clicked on frame 0, object 2 on frame 2; before any propagation the person brushes object 2 on frame
    1 (the cell is there). Propagate ▶ from frame 0 tracks object 1 from frame 0 and object 2 from frame 2 (its first
    prompt): frame 1 is drawn for object 1 only, so object 2's stroke there stays as painted (before: frame 1 was never
    written by the widget, so nothing knew it was edited and the stroke was wiped), and the status says so."""
    viewer, widget, movie = _two_starts(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    layer = widget.labels_layer
    viewer.dims.set_current_step(0, 1)
    layer.brush_size = 7
    layer.paint((1, *centre(movie.labels[1], 2)), 2)  # the brush, object 2
    painted = np.asarray(layer.data[1]) == 2
    assert painted.sum() >= 20
    viewer.dims.set_current_step(0, 0)
    widget.forward_button.click()
    wait(qtbot, widget)
    status = widget.status.text()
    after = np.asarray(layer.data[1])
    assert status.startswith("Done"), status
    assert (after[painted] == 2).all(), f"{int((after[painted] != 2).sum())} of {int(painted.sum())} px lost: {status}"
    assert "Hand edits of object 2 on frame(s) 1 were kept (not tracked again there)." in status, status
    assert (after == 1).any() and (np.asarray(layer.data[4]) == 2).any()  # both tracked where they were



def _two_starts(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """(viewer, widget, movie): object 1 clicked on frame 0 and object 2 on frame 2 of a 5-frame movie."""
    movie = small_movie(5, 11)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    widget.points_layer.add(np.array([[0, *centre(movie.labels[0], 1)]]))
    wait(qtbot, widget)
    widget.new_object_button.click()
    viewer.dims.set_current_step(0, 2)
    widget.points_layer.add(np.array([[2, *centre(movie.labels[2], 2)]]))
    wait(qtbot, widget)
    return viewer, widget, movie


@pytest.mark.gui
def test_a_stroke_after_load_session_on_a_frame_its_rerun_did_not_write_is_kept(make_napari_viewer, tmp_path,
                                                                                  monkeypatch, qtbot):
    """Objects 1 (frame 0) and 2 (frame 2) propagated ▶, the session saved and loaded again: its re-run segments the
    clicked frames and puts the saved masklets back. The person brushes object 2 on frame 1 (before its first
    frame), then Propagate ▶ from frame 0: object 2's stroke stays (before: frame 1 was no frame the widget had
    written since the load, the stroke was wiped); object 1's loaded mask there is no hand edit (not named)."""
    viewer, widget, movie = _two_starts(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    viewer.dims.set_current_step(0, 0)
    widget.forward_button.click()
    wait(qtbot, widget)
    path = widget.save_session(str(tmp_path / "two"))  # the file it wrote (*.sam2.npz)
    assert widget.load_session(str(path), confirm=lambda question: True) is True
    qtbot.waitUntil(lambda: not widget.busy() and not widget._deferred, timeout=120_000)
    layer = widget.labels_layer
    assert (np.asarray(layer.data[1]) == 1).any() and not (np.asarray(layer.data[1]) == 2).any()
    viewer.dims.set_current_step(0, 1)
    layer.brush_size = 7
    layer.paint((1, *centre(movie.labels[1], 2)), 2)  # the brush, object 2
    painted = np.asarray(layer.data[1]) == 2
    assert painted.sum() >= 20
    viewer.dims.set_current_step(0, 0)
    widget.forward_button.click()
    wait(qtbot, widget)
    status = widget.status.text()
    after = np.asarray(layer.data[1])
    assert status.startswith("Done"), status
    assert (after[painted] == 2).all(), f"{int((after[painted] != 2).sum())} of {int(painted.sum())} px lost: {status}"
    assert "Hand edits of object 2 on frame(s) 1 were kept (not tracked again there)." in status, status
    assert "Hand edits of object 1" not in status, status


@pytest.mark.gui
def test_a_stroke_during_propagate_on_a_frame_not_reached_yet_is_kept(make_napari_viewer, tmp_path, monkeypatch,
                                                                       qtbot):
    """Objects 1 and 2 tracked over 12 frames; a second click on object 1 on frame 0 and Propagate ▶: only object 1 is
    tracked again. While it runs (2 frames done), the person erases object 2 on the last frame (napari's fill with
    0): the pass reaches that frame later and keeps object 2 out of it (before: the pass had read its frames' edits
    when it began, so it drew object 2 back there), and the status names the kept edit."""
    movie = small_movie(12, 3)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(widget, qtbot, movie, (1, 2))
    layer = widget.labels_layer
    assert (np.asarray(layer.data[11]) == 2).any()
    viewer.dims.set_current_step(0, 0)
    widget.object_spin.setValue(1)
    ys, xs = np.nonzero(movie.labels[0] == 1)
    widget.points_layer.add(np.array([[0, float(ys.min() + 2), float(round(xs.mean()))]]))  # object 1, refined
    wait(qtbot, widget)
    widget.forward_button.click()
    qtbot.waitUntil(lambda: widget.progress.value() >= 2, timeout=60_000)
    assert widget.busy() and widget.progress.value() < 11, "the run is to be caught before its last frame"
    layer.fill((11, *centre(np.asarray(layer.data[11]), 2)), 0)  # object 2 erased on frame 11 during the run
    assert not (np.asarray(layer.data[11]) == 2).any()
    wait(qtbot, widget)
    status = widget.status.text()
    assert status.startswith("Done"), status
    assert "1 object tracked (1 unchanged" in status, status
    back = int((np.asarray(layer.data[11]) == 2).sum())
    assert back == 0, f"object 2 is back on frame 11 ({back} px): {status}"
    assert "Hand edits of object 2 on frame(s) 11 were kept (not tracked again there)." in status, status


@pytest.mark.gui
def test_a_stroke_on_the_widgets_object_during_track_all_is_kept(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Objects 1 and 2 tracked by the widget; Track all tracks the other cell. While it runs, the person brushes
    object 2 onto a background corner of the last frame (Track all keeps the widget's objects' pixels and the strokes
    made during its run). Then Propagate ▶ again (nothing changed: no object tracked): the stroke stays (before: Track
    all's write of that frame counted as its content, the stroke was no hand edit and Propagate redrew it away), and
    the status says it was kept."""
    movie = small_movie(6, 11)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(widget, qtbot, movie, (1, 2))
    layer = widget.labels_layer
    panel = track_all_panel(widget)
    last = movie.labels.shape[0] - 1
    panel.track_button.click()
    qtbot.waitUntil(lambda: panel.status.text().startswith("Tracking frame"), timeout=120_000)
    layer.brush_size = 5
    layer.paint((last, 4, 4), 2)  # object 2 painted in the corner while Track all runs
    corner = np.zeros(layer.data.shape[1:], bool)
    corner[:9, :9] = np.asarray(layer.data[last])[:9, :9] == 2
    assert corner.sum() >= 8
    wait_tracking(qtbot, widget)
    assert panel.status.text().startswith("Done"), panel.status.text()
    assert (np.asarray(layer.data[last])[corner] == 2).all(), "Track all kept the stroke"
    viewer.dims.set_current_step(0, 0)
    widget.forward_button.click()
    wait(qtbot, widget)
    status = widget.status.text()
    assert "0 objects tracked (2 unchanged" in status, status
    kept = int((np.asarray(layer.data[last])[corner] == 2).sum())
    assert kept == corner.sum(), f"{kept} of {int(corner.sum())} px of the stroke stay: {status}"
    assert f"Hand edits of object 2 on frame(s) {last} were kept (not tracked again there)." in status, status


def test_the_book_keeps_strokes_through_another_tools_write_and_an_undo():
    """:class:`HandEdits` on a (3, 8, 8) labels array, object 5 the session's: a stroke (napari's ``(indices, old,
    new)`` atom) on plane 1, which the controller never wrote, is an edit of its 4 pixels only (not of the labels
    another tool left there); another tool's write of a plane the controller wrote after a stroke keeps it edited
    (before: counted as that tool's content), and without a stroke it is that tool's; :meth:`restore` puts the
    strokes known before a step back on the planes its undo restored."""
    from napari_sam2.hand_edits import HOLDS_EDITS, HandEdits
    from napari_sam2.labels_writer import RunJournal, plane_checksum

    labels = np.zeros((3, 8, 8), np.uint32)
    labels[1, 6:, 6:] = 9  # another tool's labels, there before
    book = HandEdits(labels)
    planes = [(t, slice(None), slice(None)) for t in range(3)]
    rows, cols = np.meshgrid(np.arange(2, 4), np.arange(2, 4), indexing="ij")
    atom = ((np.full(4, 1), rows.ravel(), cols.ravel()), np.zeros(4, np.uint32), 5)
    labels[atom[0]] = 5
    assert book.painted([atom], planes) == [1]

    def draw(now: np.ndarray) -> np.ndarray:  # the session draws nothing: its object 5 is cleared
        return np.where(now == 5, 0, now)

    edit = book.edit(planes[1], draw, {5})
    assert edit is not None and sorted(edit.pixels.tolist()) == [18, 19, 26, 27] and edit.objects == {5}
    before = book.snapshot()
    for t in (0, 2):  # the controller draws planes 0 and 2 (nothing of object 5 there)
        book.wrote(planes[t], plane_checksum(labels[t]), kept=False)
    atom0 = ((np.array([0]), np.array([1]), np.array([1])), np.zeros(1, np.uint32), 5)
    labels[atom0[0]] = 5
    book.painted([atom0], planes)  # a stroke on plane 0, then Track all writes planes 0 and 2
    for t in (0, 2):
        plane = labels[t].copy()
        plane[7, 7] = 9
        RunJournal().write(labels, planes[t], plane)
    marks = book.snapshot().marks
    assert marks[(0, *[(None, None, None)] * 2)] == HOLDS_EDITS
    assert marks[(2, *[(None, None, None)] * 2)] == plane_checksum(labels[2])
    assert not book.changed(planes[2], labels[2]) and book.changed(planes[0], labels[0])
    assert book.edit(planes[2], draw, {5}) is None
    assert book.edit(planes[0], draw, {5}).objects == {5}
    book.wrote(planes[1], plane_checksum(labels[1]), kept=False)  # a step draws plane 1 over the stroke
    book.restore(before, [planes[1]])  # its undo: the stroke is one again
    assert sorted(book.edit(planes[1], draw, {5}).pixels.tolist()) == [18, 19, 26, 27]
