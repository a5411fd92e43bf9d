"""Propagate keeps a person's brush / eraser / fill edits of the objects it does not track again.

Before, a pass whose objects were all unchanged redrew every frame from the session's results, and a pass tracking
some objects composed each frame from every object's newest result: napari's eraser or fill on the masklets layer
was silently undone by Propagate ("0 objects tracked (2 unchanged ... keep their masks)"), and napari's Ctrl+Z could
no longer bring it back. Now the objects a pass does not track again keep their pixels as the person left them;
an object tracked again gets its new mask over its own edits; the status says which frames held edits of which
objects and what happened to them, and the widget's Undo brings the edits back. The widget is driven as a person
does: clicks on the clicks layer, napari's brush / fill on the masklets layer, the buttons (demo model, CPU)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sam2_model import build_model
from sam2_model.synthetic import make_timelapse
from test_propagate_unchanged import NUM, Run, both  # the controller driven as the widget drives it
from widget_helpers import centre, click_and_propagate, open_widget, small_movie, wait

from napari_sam2.hand_edits import HandEdit
from napari_sam2.labels_writer import RunJournal

N = 5


def tracked(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Objects 1 and 2 clicked on frame 0 and propagated over the 5 frames: (viewer, widget, movie)."""
    movie = small_movie(N, 11)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(widget, qtbot, movie, (1, 2))
    return viewer, widget, movie


@pytest.mark.gui
def test_propagate_again_keeps_eraser_and_fill_edits(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Erase the middle of object 1 on frame 3 (napari's eraser) and fill object 2 with object 1 on frame 2 (napari's
    fill), then Propagate ▶ again from frame 0: nothing changed for either object, so the layer stays exactly as the
    person left it, the status says the edits were kept and where, and napari's Ctrl+Z still undoes the fill."""
    viewer, widget, _ = tracked(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    layer = widget.labels_layer
    viewer.dims.set_current_step(0, 3)
    layer.brush_size = 7
    layer.paint((3, *centre(np.asarray(layer.data[3]), 1)), 0)  # the eraser
    viewer.dims.set_current_step(0, 2)
    before_fill = np.asarray(layer.data).copy()
    layer.fill((2, *centre(np.asarray(layer.data[2]), 2)), 1)  # object 2 filled with object 1
    edited = np.asarray(layer.data).copy()
    assert (edited[3] != before_fill[3]).sum() == 0 and (edited != before_fill).any()
    viewer.dims.set_current_step(0, 0)
    widget.forward_button.click()
    wait(qtbot, widget)
    status = widget.status.text()
    after = np.asarray(layer.data).copy()
    assert np.array_equal(after, edited), f"Propagate changed {int((after != edited).sum())} edited px: {status}"
    assert "forward: 0 objects tracked (2 unchanged" in status, status
    assert "Hand edits of objects 1, 2 on frame(s) 2-3 were kept (not tracked again there)." in status, status
    assert "Undo here reverts the run (napari's Ctrl+Z undoes brush, fill and eraser strokes only)." in status, status
    layer.undo()  # napari's Ctrl+Z: the fill is undone (before, Propagate had put object 2 back: it changed 0 px)
    assert np.array_equal(np.asarray(layer.data), before_fill)


@pytest.mark.gui
def test_correcting_one_object_keeps_the_others_edits(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Object 2 erased by hand on frame 4 (not a cell there), the middle of object 1 erased on frame 3; then a
    correction click on object 1 on frame 2 and Propagate ▶ from frame 2: only object 1 is tracked again, so object 2
    stays erased on frame 4 while object 1's new mask replaces its edit on frame 3; the status says both, and the
    widget's Undo (twice: the run, then the click) brings object 1's edit back."""
    viewer, widget, movie = tracked(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    layer = widget.labels_layer
    viewer.dims.set_current_step(0, 4)
    layer.fill((4, *centre(np.asarray(layer.data[4]), 2)), 0)  # object 2 gone from frame 4
    viewer.dims.set_current_step(0, 3)
    layer.brush_size = 7
    layer.paint((3, *centre(np.asarray(layer.data[3]), 1)), 0)
    edited = np.asarray(layer.data).copy()
    assert not (edited[4] == 2).any()
    viewer.dims.set_current_step(0, 2)
    widget.object_spin.setValue(1)
    widget.points_layer.add(np.array([[2, *centre(movie.labels[2], 1)]]))  # a correction click on object 1
    wait(qtbot, widget)
    widget.forward_button.click()
    wait(qtbot, widget)
    status = widget.status.text()
    after = np.asarray(layer.data).copy()
    assert status.startswith("Done"), status
    assert "forward: 1 object tracked (1 unchanged" in status, status
    assert not (after[4] == 2).any(), f"object 2 is back on frame 4 ({int((after[4] == 2).sum())} px): {status}"
    assert "Hand edits of object 2 on frame(s) 4 were kept (not tracked again there)." in status, status
    assert ("Hand edits of object 1 on frame(s) 3 were replaced by its new masks: it was tracked again (Undo brings "
            "the edits back).") in status, status
    hole = (edited[3] == 0) & (after[3] == 1)
    assert hole.sum() >= 20, "object 1's new mask on frame 3 fills the erased middle"
    for _ in range(2):  # the propagation, then the correction click
        widget.undo_button.click()
        wait(qtbot, widget)
    assert np.array_equal(np.asarray(layer.data), edited), widget.status.text()


@pytest.fixture(scope="module")
def demo() -> Any:
    return build_model("demo", device="cpu", image_size=128)


@pytest.fixture(scope="module")
def twelve() -> Any:
    """test_propagate_unchanged's movie: 7 frames of 128 x 128, 12 round cells."""
    return make_timelapse(num_frames=7, shape=(128, 128), num_cells=NUM, seed=4, divisions=False, enter_leave=False,
                          radius_fraction=0.045)


def test_a_square_erased_by_hand_stays_where_no_object_is_tracked_again(demo, twelve):
    """The controller, as the widget drives it (12 cells tracked forward): a 50 x 50 square erased on frame 5, then
    Propagate from frame 2. No object changed, so none is tracked again and the labels stay exactly as the person
    left them (before: frame 5 was redrawn from the results, the square filled again); a controller that tracks
    every object again (``skip_unchanged`` off) replaces the edit with the new masks, and its Undo brings it back.
    Outside the square both agree bit for bit. The notes said after the run name the frame, the objects and what
    happened."""
    skip, full = both(demo, twelve)
    square = np.zeros(skip.labels.shape, bool)
    square[5, 10:60, 10:60] = True
    for run in (skip, full):
        run.labels[square] = 0  # the eraser (no journal sees it)
    erased = skip.labels.copy()
    assert np.array_equal(full.labels, erased)
    skip.propagate(2)
    full.propagate(2)
    assert skip.tracked() == []
    np.testing.assert_array_equal(skip.labels, erased)
    np.testing.assert_array_equal(skip.labels[~square], full.labels[~square])
    assert full.labels[square].any()
    hit = sorted(int(o) for o in np.unique(full.labels[square]) if o)
    many = "s" * (len(hit) > 1)
    names = ", ".join(map(str, hit))
    assert skip.controller.pop_notes() == f"Hand edits of object{many} {names} on frame(s) 5 were kept (not tracked " \
                                          "again there)."
    assert f"Hand edits of object{many} {names} on frame(s) 5 were replaced by" in full.controller.pop_notes()
    full.controller.undo()
    np.testing.assert_array_equal(full.labels, erased)


def test_split_keeps_a_still_object_absent_where_a_moving_one_was_painted():
    """HandEdit.split with object 1 tracked again and object 2 not: pixel 0 painted 2 -> 1 (the 1|2 border moved
    into object 2) is no pixel to keep as it is but one where object 2 must stay absent (before: neither, and object 2
    not named as kept); 2 -> 0 and 1 -> 2 stay as they are; 0 -> 1 and 1 -> 0 are object 1's, replaced."""
    edit = HandEdit(np.array([10, 11, 12, 13, 14]), np.array([1, 0, 2, 1, 0]), np.array([2, 2, 1, 0, 1]), {1, 2})
    keep, absent, kept, replaced = edit.split([1])
    assert (keep.tolist(), absent.tolist(), kept, replaced) == ([11, 12], [10], {2}, {1})
    keep, absent, kept, replaced = edit.split(None)  # every object tracked again: every edit replaced
    assert (keep.tolist(), absent.tolist(), kept, replaced) == ([], [], set(), {1, 2})
    keep, absent, kept, replaced = edit.split([])  # none tracked again: every edit stays
    assert (keep.tolist(), absent.tolist(), kept, replaced) == ([10, 11, 12, 13, 14], [], {1, 2}, set())


@pytest.fixture(scope="module")
def four() -> Any:
    """5 frames of 128 x 128, 4 round cells (objects 1 and 2 touch nothing else)."""
    return make_timelapse(num_frames=5, shape=(128, 128), num_cells=4, seed=4, divisions=False, enter_leave=False,
                          radius_fraction=0.08)


def test_a_border_moved_into_an_object_not_tracked_again_stays(demo, four):
    """Objects 1 and 2 tracked over 5 frames; on frame 3 half of object 2 painted with object 1 (the 1|2 border moved
    into 2); a correction click of object 1 on frame 1 and Propagate from 1 track object 1 only: object 2 is not
    tracked again, so it stays out of those pixels (object 1's new mask or background there; before: all 191 px were
    object 2 again) and the notes name object 2's edit as kept. Undo of the run gives the edited frame back."""
    run = Run(demo, four, True)
    run.click(0, 1)
    run.click(0, 2)
    run.propagate(0)
    two = np.flatnonzero(run.labels[3] == 2)
    painted = two[: len(two) // 2]
    run.labels[3].flat[painted] = 1  # the brush (no journal sees it)
    edited = run.labels.copy()
    run.click(1, 1)
    run.propagate(1)
    assert run.tracked() == [1]
    back = int((run.labels[3].flat[painted] == 2).sum())
    assert back == 0, f"{back} of {painted.size} px painted over object 2 are object 2 again"
    assert set(np.unique(run.labels[3].flat[painted]).tolist()) <= {0, 1}
    notes = run.controller.pop_notes()
    assert "Hand edits of object 2 on frame(s) 3 were kept (not tracked again there)." in notes, notes
    assert "Hand edits of object 1 on frame(s) 3 were replaced by its new masks" in notes, notes
    run.controller.undo()
    np.testing.assert_array_equal(run.labels[3], edited[3])


def test_undo_leaves_the_marks_of_planes_another_tool_wrote_since(demo, four):
    """A click step writes frame 0; then another tool's run (as Track all writes: a journal, said to the watchers)
    writes frame 4 without object 2; Undo of the click puts back frame 0 only, so frame 4 stays that tool's write, no
    hand edit: the next Propagate says nothing of hand edits on it (before: Undo gave frame 4 its mark from before the
    click back, so that tool's write counted as a hand edit of object 2, kept and named)."""
    run = Run(demo, four, True)
    run.click(0, 1)
    run.click(0, 2)
    run.propagate(0)
    run.controller.pop_notes()
    run.click(0, 3)  # a step that writes frame 0 only
    plane = run.labels[4].copy()
    plane[plane == 2] = 0
    RunJournal().write(run.labels, run.controller.layout.frame_index_in_labels(4), plane)  # Track all writes frame 4
    undone = run.controller.undo()
    assert undone is not None and undone.frames == [0]
    del run.prompts[(0, 3)]
    run.propagate(0)
    notes = run.controller.pop_notes()
    assert "Hand edits" not in notes, notes
