"""Review R5 of the hand edits (217dfce): strokes on the masklets of an image with a channel axis, the Undo of a run
during which a stroke was made, and the pass's frame-order guard.

* On a (T, C, Y, X) image the masklets layer shows the controller's labels under a size-1 channel axis (a view, not
  the controller's array): its strokes reached no controller, so a stroke on a frame no run wrote was wiped.
* A stroke made during a Propagate on a frame the run had not written yet: Undo brought its pixels back, but the book
  of hand edits went back to what it knew when the run began (no such stroke), so the next Propagate wiped it.
* A pass whose session gives its frames in another order than its plan: each frame's hand edits were read for the
  plan's frame, and on a mismatch the rest of the pass's edits were dropped silently; now it is an error.

Demo model, CPU; the GUI test drives the widget as a person does (clicks, napari's brush, the buttons)."""

from __future__ import annotations

import numpy as np
import pytest

from sam2_model.evaluation import click_point
from test_propagate_unchanged import Run
from test_widget_channels import movie as channel_movie, open_widget as open_channel_widget, pick_channel
from widget_helpers import centre, small_movie, wait


@pytest.mark.gui
def test_a_stroke_on_the_masklets_of_an_image_with_channels_is_kept(make_napari_viewer, qtbot, tmp_path,
                                                                     monkeypatch):
    """(T, C, Y, X) image, channel 0 segmented: object 1 clicked on frame 0, object 2 on frame 2; the person brushes
    object 2 on frame 1 (no run wrote it yet) on the masklets layer (which has a size-1 channel axis). Propagate ▶
    from frame 0 draws frame 1 for object 1 only: the stroke stays and the status says it was kept (before: the stroke
    reached no controller, "37 of 37 px lost")."""
    m = channel_movie(num_frames=5)
    data = np.stack([m.image, m.image], axis=1)
    viewer, w = open_channel_widget(make_napari_viewer, tmp_path, monkeypatch, data)
    pick_channel(w, 1, 2, "channel 0")
    x, y = click_point(m.labels[0] == 1)
    w.points_layer.add([0, 0, y, x])
    wait(qtbot, w)
    w.new_object_button.click()
    viewer.dims.set_current_step(0, 2)
    x, y = click_point(m.labels[2] == 2)
    w.points_layer.add([2, 0, y, x])
    wait(qtbot, w)
    layer = w.labels_layer
    labels = w.controller.labels
    assert layer.data.ndim == labels.ndim + 1  # the channel axis the labels lack
    viewer.dims.set_current_step(0, 1)
    layer.brush_size = 7
    x, y = click_point(m.labels[1] == 2)
    layer.paint((1, 0, round(y), round(x)), 2)  # the brush, object 2, on the layer's axes (T, C, Y, X)
    painted = np.asarray(labels[1]) == 2
    assert painted.sum() >= 20
    viewer.dims.set_current_step(0, 0)
    w.forward_button.click()
    wait(qtbot, w)
    status = w.status.text()
    after = np.asarray(labels[1])
    assert status.startswith("Done"), status
    assert (after[painted] == 2).all(), f"{int((after[painted] != 2).sum())} of {int(painted.sum())} px lost: {status}"
    assert "Hand edits of object 2 on frame(s) 1 were kept" in status, status


@pytest.fixture(scope="module")
def demo_model():
    from sam2_model import build_model

    return build_model("demo", device="cpu", image_size=128)


def _stroke(run: Run, frame: int, obj: int) -> tuple:
    """A 5 x 5 brush stroke of ``obj`` at the centre of cell ``obj`` on ``frame``, told to the controller as napari's
    paint event tells it (its atoms: (indices, old, new)); returns the indices."""
    r, c = (int(v) for v in centre(run.movie.labels[frame], obj))
    rows, cols = np.mgrid[r - 2:r + 3, c - 2:c + 3]
    index = (np.full(rows.size, frame), rows.ravel(), cols.ravel())
    old = run.labels[index].copy()
    run.labels[index] = obj
    run.controller.painted([(index, old, obj)])
    return index


@pytest.mark.parametrize("during", [False, True], ids=["stroke before the run", "stroke during the run"])
def test_undo_of_a_run_keeps_a_stroke_made_before_it_reached_the_frame(demo_model, during):
    """Object 1 on frame 0, object 2 on frame 3; object 2 brushed on frame 2 (no run wrote it), before Propagate ▶ or
    while it runs (after its first frame). Propagate keeps the stroke (object 2 is not tracked from frame 0), Undo
    brings the frame back with it, and the next Propagate keeps it again: it still counts as a hand edit (before, for
    the stroke made during the run: 25/25 px after the run and after Undo, 0/25 after the next run)."""
    run = Run(demo_model, small_movie(6, 11), True)
    run.click(0, 1)
    run.click(3, 2)
    controller = run.controller
    list(controller.apply_prompts(list(run.prompts.values())))
    index = None if during else _stroke(run, 2, 2)
    for k, _ in enumerate(controller.propagate(0, "forward")):
        if k == 0 and during:
            assert int(run.labels[0].max()) and not run.labels[2].any()  # frame 0 written, frame 2 not yet
            index = _stroke(run, 2, 2)
    notes = controller.pop_notes()
    assert (run.labels[index] == 2).all(), notes
    assert "Hand edits of object 2 on frame(s) 2 were kept" in notes, notes
    assert controller.undo() is not None
    assert (run.labels[index] == 2).all()  # the plane as it was just before the run wrote it: with the stroke
    list(controller.propagate(0, "forward"))
    notes = controller.pop_notes()
    kept = int((run.labels[index] == 2).sum())
    assert kept == 25, f"{kept} of 25 px of the stroke stay after Undo and Propagate again; notes: {notes!r}"
    assert "Hand edits of object 2 on frame(s) 2 were kept" in notes, notes


def test_a_pass_whose_frames_come_in_another_order_than_planned_is_an_error(demo_model):
    """A session that gives a pass's frames in another order than the plan (it never does today) would put each
    frame's hand edits on another frame: the run stops with an error naming the frames (before: the pass went on and
    dropped the rest of its edits silently). The frames written before it stay undoable."""
    run = Run(demo_model, small_movie(5, 11), True)
    run.click(0, 1)
    controller = run.controller
    session = controller.session
    real = session.propagate

    def skipping(*args, **kwargs):  # the session's own frames, its second one left out
        for k, item in enumerate(real(*args, **kwargs)):
            if k != 1:
                yield item

    session.propagate = skipping
    with pytest.raises(RuntimeError, match=r"gave frame 2 as its frame number 2, but its plan has 1 there"):
        list(controller.propagate(0, "forward"))
    assert run.labels[0].any()
    assert controller.undo() is not None


def test_track_all_records_a_stroke_s_frame_under_a_channel_axis_before_the_frames():
    """A (C, T, Y, X) image's masklets layer shows a size-1 channel axis first; a stroke on frame 3 has layer indices
    (0, 3, y, x). Before (review R8): Track all's record of stroked frames compared them with keys lacking that axis
    and recorded frame 0 (its re-run then overwrote the edit without asking); on (T, C, Z, Y, X) with z > 0 none."""
    from napari_sam2.track_all import TrackAll

    tracking = TrackAll(np.zeros((5, 8, 8), np.uint32), 5)
    stroke = [((np.array([0, 0]), np.array([3, 3]), np.array([2, 2]), np.array([4, 5])), np.array([0, 0]),
               np.array([7, 7]))]
    assert tracking.stroke_frames(stroke, channel_axis=0) == {3}
    assert tracking.stroke_frames([((np.array([3]), np.array([2]), np.array([4])), 0, 7)]) == {3}  # no axis shown
    z_stack = TrackAll(np.zeros((4, 3, 8, 8), np.uint32), 4, index_of=lambda t: (t, slice(None)))
    on_z2 = [((np.array([2]), np.array([0]), np.array([2]), np.array([4]), np.array([5])), 0, 7)]  # (T, C, Z, Y, X)
    assert z_stack.stroke_frames(on_z2, channel_axis=1) == {2}
