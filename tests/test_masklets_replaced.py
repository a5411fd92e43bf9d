"""A run whose masklets layer is given other data (``layer.data = ...``) or painted while it runs keeps its work:
Propagate and Track all stop, their frames go into the new data (Undo and the next click agree with what is shown),
and Track all keeps the strokes painted during the run (it replaced them on the frames it had not reached)."""

from __future__ import annotations

import numpy as np

from widget_helpers import centre, open_widget, propagating, small_movie, track_all_panel, wait, wait_tracking

REPLACED = "Stopped: the masklets layer's data was replaced during the run."


def per_frame(data, obj: int) -> list:
    """Pixels of ``obj`` on each frame of the (T, H, W) labels ``data``."""
    data = np.asarray(data)
    return [int((data[t] == obj).sum()) for t in range(data.shape[0])]


def test_propagate_keeps_its_frames_in_replaced_data_and_undo_and_click_agree(make_napari_viewer, tmp_path,
                                                                              monkeypatch, qtbot):
    viewer, widget, movie = propagating(make_napari_viewer, tmp_path, monkeypatch, qtbot, num_frames=12, seed=3)
    layer, controller = widget.labels_layer, widget.controller
    layer.data = np.zeros_like(layer.data)  # a script clears the masklets mid-run
    wait(qtbot, widget)
    text = widget.status.text()
    assert text.startswith(REPLACED), text
    assert "Undo reverts the run" in text and "written into it" in text, text
    shown = per_frame(layer.data, 1)
    kept = [t for t, n in enumerate(shown) if n]
    assert len(kept) >= 2 and kept == list(range(len(kept))), shown  # the run's frames, from frame 0 on
    assert f"Kept frames 0-{kept[-1]} (whole)" in text, text
    assert kept[-1] < 11 and not np.asarray(layer.data)[kept[-1] + 1:].any()  # the rest: the new data (zeros)
    assert np.asarray(layer.data) is controller.labels or np.shares_memory(np.asarray(layer.data), controller.labels)

    widget.new_object_button.click()  # the next click keeps the run's frames (it used to drop them)
    widget.points_layer.add(np.array([[0, *centre(movie.labels[0], 2)]]))
    wait(qtbot, widget)
    assert widget.status.text().startswith("Done"), widget.status.text()
    assert [t for t, n in enumerate(per_frame(widget.labels_layer.data, 1)) if n] == kept
    assert per_frame(widget.labels_layer.data, 2)[0] > 0

    widget.undo_button.click()  # the click's step, then the run's: each changes what is shown
    wait(qtbot, widget)
    assert per_frame(widget.labels_layer.data, 2)[0] == 0
    widget.undo_button.click()
    wait(qtbot, widget)
    assert widget.status.text().startswith("Undid the last step"), widget.status.text()
    assert [t for t, n in enumerate(per_frame(widget.labels_layer.data, 1)) if n] == [0]  # as before the run


def _tracking(make_napari_viewer, tmp_path, monkeypatch, qtbot, frames_done: int):
    """(viewer, widget, panel, masklets layer): Track all pressed on a 12-frame movie, ``frames_done`` frames done."""
    movie = small_movie(12, 5)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(widget)
    panel.track_button.click()
    qtbot.waitUntil(lambda: panel.worker is not None and panel.progress.value() >= frames_done, timeout=120_000)
    return viewer, widget, panel, widget.labels_layer


def test_track_all_stops_and_keeps_its_frames_in_replaced_data(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    viewer, widget, panel, layer = _tracking(make_napari_viewer, tmp_path, monkeypatch, qtbot, 2)
    layer.data = np.zeros_like(layer.data)
    wait_tracking(qtbot, widget)
    text = panel.status.text()
    assert text.startswith(REPLACED), text  # it said "Done" with an empty layer
    assert "'Undo tracking step' reverts the run" in text and "written into it" in text, text
    data = np.asarray(layer.data)
    tracked = [t for t in range(data.shape[0]) if data[t].any()]
    assert tracked and tracked == list(range(len(tracked))) and len(tracked) < 12, tracked
    assert np.shares_memory(data, widget.track_all.current().tracking.labels)  # Undo and edits see what is shown
    panel.undo_button.click()
    wait_tracking(qtbot, widget)
    assert not np.asarray(layer.data).any(), panel.status.text()  # the run undone: nothing was there before it


def test_track_all_keeps_strokes_painted_during_the_run(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    viewer, widget, panel, layer = _tracking(make_napari_viewer, tmp_path, monkeypatch, qtbot, 3)
    layer.brush_size = 9
    layer.paint((1, 10, 10), 77, refresh=True)  # a missed cell on a frame the run wrote already
    layer.paint((10, 10, 10), 78, refresh=True)  # ... and on one it has not reached yet (it was replaced there)
    painted = {t: np.asarray(layer.data)[t] == v for t, v in ((1, 77), (10, 78))}
    assert panel.worker is not None and all(p.sum() > 0 for p in painted.values())
    assert panel.progress.value() < 10, "the run reached frame 10 before the stroke: the test shows nothing"
    wait_tracking(qtbot, widget)
    text = panel.status.text()
    assert text.startswith("Done") and "replaced" not in text, text
    data = np.asarray(layer.data)
    assert (data[1][painted[1]] == 77).all() and (data[10][painted[10]] == 78).all()  # every painted pixel
    assert data[10][~painted[10]].any()  # the run wrote frame 10 (its other pixels)


def test_painted_pixels_of_a_stroke():
    from napari_sam2.track_all import painted_pixels

    class Atom:  # napari's masked paint atom: a box over the data's axes and the changed pixels in it
        def __init__(self, slice_key, mask):
            self.slice_key, self.mask = slice_key, mask

    mask = np.zeros((2, 3, 4), bool)
    mask[1, 0, 1] = mask[1, 2, 3] = mask[0, 1, 1] = True
    atoms = [Atom((slice(4, 6), slice(2, 5), slice(3, 7)), mask)]
    plane = painted_pixels(atoms, (5, slice(None), slice(None)), (8, 8))
    assert sorted(zip(*np.nonzero(plane))) == [(2, 4), (4, 6)]
    assert not painted_pixels(atoms, (3, slice(None), slice(None)), (8, 8)).any()
    whole = painted_pixels([Atom((slice(4, 5), slice(0, 2), slice(0, 2)), None)], (4, slice(None), slice(None)), (4, 4))
    assert whole.sum() == 4 and whole[:2, :2].all()
    fancy = painted_pixels([((np.array([2, 2, 3]), np.array([0, 1, 1]), np.array([1, 1, 2])), None, 5)],
                           (2, slice(None), slice(None)), (4, 4))
    assert sorted(zip(*np.nonzero(fancy))) == [(0, 1), (1, 1)]
    assert painted_pixels("not atoms", (0, slice(None), slice(None)), (4, 4)) is None


def test_on_an_image_with_a_channel_axis_the_replaced_data_gets_the_runs_frames(make_napari_viewer, qtbot):
    """(T, C, Y, X): the masklets layer shows (T, 1, Y, X); new data of that shape (what a script sees) was taken for
    "labels of another shape", the run's frames were not put in it, and the next click lost them (review)."""
    from sam2_model.evaluation import click_point
    from sam2_model.synthetic import make_timelapse
    from widget_helpers import WIDGET, wait

    movie = make_timelapse(num_frames=16, shape=(96, 96), num_cells=3, seed=3, divisions=False, enter_leave=False,
                           radius_fraction=0.12)
    noise = np.random.default_rng(0).integers(0, 60000, movie.image.shape).astype(np.uint16)
    viewer = make_napari_viewer()
    viewer.add_image(np.stack([movie.image, noise], axis=1), name="cells")
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    widget.model_combo.setCurrentText("demo")
    widget.checkpoint_combo.setCurrentText("embedded (demo)")
    widget.size_spin.setValue(128)
    widget.window_combo.setCurrentText("off")
    widget.channel_axis_combo.setCurrentText("axis 1 (2)")
    widget.channel_combo.setCurrentText("channel 0")
    x, y = click_point(movie.labels[0] == 1)
    widget.points_layer.add([0, 0, y, x])
    wait(qtbot, widget)
    widget.forward_button.click()
    qtbot.waitUntil(lambda: widget.progress.value() >= 2, timeout=60_000)
    layer, controller = widget.labels_layer, widget.controller
    layer.data = np.zeros_like(layer.data)  # a script clears the masklets mid-run (the shape it sees)
    wait(qtbot, widget)
    kept = [t for t in range(16) if (controller.labels[t] == 1).any()]
    shown = [t for t in range(16) if (np.asarray(layer.data)[t] == 1).any()]
    assert len(kept) >= 2 and shown == kept, (kept, shown, widget.status.text())
    assert "another shape" not in widget.status.text(), widget.status.text()
    widget.new_object_button.click()
    x, y = click_point(movie.labels[0] == 2)
    widget.points_layer.add([0, 0, y, x])
    wait(qtbot, widget)
    assert [t for t in range(16) if (np.asarray(layer.data)[t] == 1).any()] == kept  # the next click loses none
