"""Relabel, Merge and a new model or input size keep an object's corrections (a negative click on a frame where
propagation had made its mask). A new model or input size replays the prompts in the order they were made, as Load
session does (the first clicks, tracking both ways, the corrections, tracking again), where it re-sent them all at once
to a session with no mask for the correction to take pixels from ("Failed: the prompt of object 1 on frame 4 was
refused"). Relabel renames the object in the session (nothing is segmented again); Merge segments the merged object's
prompts again, its correction on that object's mask.

Driven as a person would (real viewer, the widget opened through the manifest, clicks added to the layers, the
buttons pressed, workers awaited) on a small synthetic movie with the embedded demo model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
from widget_helpers import click_cell, open_widget, small_movie, wait  # noqa: E402


def _corrected(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Object 1 clicked on frame 2, object 2 on frame 2, ◀ Propagate ▶, a negative click on object 1's mask on frame 4
    (near its right edge), ◀ Propagate ▶ from there: (viewer, widget, the negative click's (row, col), labels)."""
    movie = small_movie(6, 5)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    viewer.dims.set_current_step(0, 2)
    click_cell(w.points_layer, movie, 1, frame=2)
    wait(qtbot, w)
    w.new_object_button.click()
    click_cell(w.points_layer, movie, 2, frame=2)
    wait(qtbot, w)
    w.both_button.click()
    wait(qtbot, w)
    viewer.dims.set_current_step(0, 4)
    w.object_spin.setValue(1)
    ys, xs = np.nonzero(w.labels_layer.data[4] == 1)
    row = int(np.median(ys))
    col = int(xs[ys == row].max()) - 1
    uncorrected = w.labels_layer.data[4].copy()
    w.positive_button.click()  # negative clicks (the +/- toggle)
    w.points_layer.add(np.array([[4, row, col]], float))
    wait(qtbot, w)
    w.both_button.click()
    wait(qtbot, w)
    labels = w.labels_layer.data.copy()
    assert w.status.text().startswith("Done"), w.status.text()
    assert labels[4, row, col] != 1 and uncorrected[row, col] == 1  # the correction took the clicked pixel away
    return viewer, w, (row, col), labels


@pytest.mark.gui
@pytest.mark.parametrize("edit", ["relabel", "merge"])
def test_relabel_and_merge_of_a_corrected_object_keep_the_correction(make_napari_viewer, tmp_path, monkeypatch,
                                                                     qtbot, edit):
    """Relabel 1 -> 7 (the Relabel… button's path, in a worker): every frame's labels are the user's with 1 now 7,
    the correction still applied, nothing segmented again; Merge 1 -> 2: no failure, the correction still applied on
    frame 4, the frames not segmented again as they were. Before, the re-run failed ("the prompt of object 7 on
    frame 4 was refused")."""
    viewer, w, (row, col), labels = _corrected(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    if edit == "relabel":
        w.relabel_object(1, 7, in_worker=True)
        kept = 7
    else:
        w.merge_objects(1, 2, in_worker=True)  # the corrected object joins the other
        kept = 2
    qtbot.waitUntil(lambda: not w.busy() and not w._deferred and w.controller.load_replay is None, timeout=120_000)
    wait(qtbot, w)
    status = w.status.text()
    assert "refused" not in status and "Failed" not in status, status
    after = w.labels_layer.data
    assert after[4, row, col] != kept  # the correction still applied
    assert (after[4] == kept).any()
    if edit == "relabel":  # renamed in the session: nothing segmented again, every mask as it was, 1 now 7
        assert status == "Object 1 is now object 7 (relabel cannot be undone with Undo).", status
        np.testing.assert_array_equal(after, np.where(labels == 1, 7, labels))
    else:  # object 2's prompts on frames 2 (both clicks) and 4 (the correction, on object 2's mask) segmented again
        assert status.startswith("Done") and "object 1 is part of object 2 now" in status, status
        for t in (0, 1, 3, 5):  # frames not segmented again: as they were, object 1 now object 2
            np.testing.assert_array_equal(after[t], np.where(labels[t] == 1, 2, labels[t]))
    assert w.controller.refined_keys() == {(4, kept)}  # the correction is still known as one (saved, it replays)


def _redone(controller, points, steps):
    """The labels of a fresh session of ``controller``'s model, image and options given the clicks of ``points`` (the
    clicks layer, unit scale, rows (frame, y, x)) as a person gives them: ``steps`` are lists of the rows clicked one
    after the other, or "both from F" (Propagate both ways from frame F)."""
    from napari_sam2.controller import SegmentationController, _with
    from napari_sam2.prompts import FramePrompt

    labels = np.zeros(controller.labels.shape, controller.labels.dtype)
    redo = SegmentationController(controller.model, controller.image, controller.layout, labels,
                                  dict(controller.session_options), object_window=controller.object_window)
    rows, positive = np.asarray(points.data), points.features["positive"].to_numpy(bool)
    objs = points.features["obj_id"].to_numpy(int)
    made = {}
    for step in steps:
        if isinstance(step, str):
            list(redo.propagate(int(step.split()[-1]), "both"))
            continue
        for i in step:
            frame, y, x = rows[i]
            click = FramePrompt(int(frame), int(objs[i]), np.array([[x, y]], np.float32),
                                np.array([int(positive[i])], np.int32))
            made[(click.frame, click.obj_id)] = _with(made.get((click.frame, click.obj_id)), click)
            list(redo.apply_prompts(list(made.values())))
    return labels


@pytest.mark.gui
def test_a_new_input_size_keeps_the_correction(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """A new input size (128 -> 96) after a correction re-runs the prompts with the new model: no failure, frame 4's
    mask still leaves out the negative click's pixel and the correction is still known as one. Before: "Failed: the
    prompt of object 1 on frame 4 was refused"."""
    viewer, w, (row, col), _ = _corrected(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    w.size_spin.setValue(96)
    qtbot.waitUntil(lambda: not w._model_rerun_due and w.controller.model.image_size == 96, timeout=120_000)
    wait(qtbot, w)
    status = w.status.text()
    assert status.startswith("Done") and "refused" not in status and "Failed" not in status, status
    after = w.labels_layer.data
    assert after[4, row, col] != 1 and (after[4] == 1).any() and (after[4] == 2).any()
    assert (after[0] == 1).any() and (after[5] == 1).any()  # tracked both ways again
    # what a person who re-did the work with the new size gets: the same masks on every frame
    np.testing.assert_array_equal(after, _redone(w.controller, w.points_layer, [[0], [1], "both from 2", [2],
                                                                                "both from 4"]))
    assert w.controller.refined_keys() == {(4, 1)}


@pytest.mark.gui
def test_propagate_after_an_option_remade_the_session_keeps_the_correction(make_napari_viewer, tmp_path, monkeypatch,
                                                                           qtbot):
    """Smooth frames changed after a correction (the session is remade, nothing re-run), then ◀ Propagate ▶: the
    prompts are replayed in the order they were made before tracking, so the correction applies. Before: "Failed: the
    prompt of object 1 on frame 4 was refused"."""
    viewer, w, (row, col), _ = _corrected(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    w.smooth_spin.setValue(1.0)
    w.both_button.click()
    wait(qtbot, w)
    status = w.status.text()
    assert status.startswith("Done") and "refused" not in status and "Failed" not in status, status
    after = w.labels_layer.data
    assert after[4, row, col] != 1 and (after[4] == 1).any()
    assert w.controller.session_options.get("smooth") == 1.0
    np.testing.assert_array_equal(after, _redone(w.controller, w.points_layer, [[0], [1], "both from 2", [2],
                                                                                "both from 4", "both from 4"]))
