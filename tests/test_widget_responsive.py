"""The segmentation widget never makes napari wait on the stack, and a closed widget opened again goes on with its
layers: driven as a person does (a real viewer, the widget from the manifest with the demo model's embedded weights,
prompts added to the layers, buttons pressed, workers awaited)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

import sam2_model.frames as frames_module  # noqa: E402
from sam2_model.evaluation import click_point  # noqa: E402
from sam2_model.frames import FrameSource  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402
from widget_helpers import WIDGET, open_widget, wait  # noqa: E402

from napari_sam2.controller import SegmentationController  # noqa: E402


def movie(num_frames: int = 5, seed: int = 3):
    return make_timelapse(num_frames=num_frames, shape=(96, 96), num_cells=3, seed=seed, divisions=False,
                          enter_leave=False, radius_fraction=0.12)


def click_cell(points, m, obj: int, frame: int = 0) -> None:
    """A click on the clicks layer ``points`` deep inside cell ``obj`` on ``frame`` (the layers have unit scale)."""
    x, y = click_point(m.labels[frame] == obj)
    points.add(np.array([[frame, y, x]], float))


def test_the_first_click_reads_the_contrast_sample_in_the_worker_with_the_same_limits(
        make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """A float stack smoothed before the model: the contrast sample (percentiles of up to 16 smoothed frames, seconds
    on a large stack) was read on napari's GUI thread inside the click handler; now the run's worker reads it, and the
    click is segmented with the limits and the masks a session made at once gives."""
    m = movie()
    stack = m.image.astype(np.float32) * 3.5 + 100.0
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", stack))
    w.window_combo.setCurrentText("off")
    w.smooth_spin.setValue(1.5)
    threads = []
    measure = frames_module.percentile_limits

    def spy(*args, **kwargs):
        threads.append(threading.current_thread() is threading.main_thread())
        return measure(*args, **kwargs)

    monkeypatch.setattr(frames_module, "percentile_limits", spy)
    click_cell(w.points_layer, m, 1)
    wait(qtbot, w)
    monkeypatch.setattr(frames_module, "percentile_limits", measure)
    assert threads and not any(threads), "the contrast sample was read on the GUI thread"
    assert w.status.text().startswith("Done"), w.status.text()
    controller = w.controller
    assert controller.session.frames.contrast_limits == FrameSource(stack, image_size=128, smooth=1.5).contrast_limits
    at_once = SegmentationController(controller.model, stack, controller.layout, np.zeros(stack.shape, np.uint32),
                                     dict(w.session_options()))
    at_once.open()
    for _ in at_once.apply_prompts(w.prompts()):
        pass
    np.testing.assert_array_equal(controller.labels, at_once.labels)
    assert (controller.labels[0] == 1).any()


def test_seeding_from_a_lazy_labels_stack_reads_only_the_frame_seeded(make_napari_viewer, tmp_path, monkeypatch,
                                                                       qtbot):
    """Seeding from a dask Labels layer read the whole stack (np.asarray) on the GUI thread to use one plane."""
    da = pytest.importorskip("dask.array")
    m = movie(num_frames=6)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", m.image))
    w.window_combo.setCurrentText("off")
    read = []

    def plane(block, block_info=None):
        read.append(block_info[0]["chunk-location"][0])
        return block

    lazy = da.from_array(m.labels.astype(np.uint32), chunks=(1, 96, 96)).map_blocks(plane, dtype=np.uint32)
    viewer.add_labels(lazy, name="nuclei")
    viewer.dims.set_current_step(0, 2)
    w.seed_combo.setCurrentText("nuclei")
    read.clear()
    w.seed_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()
    assert read == [2]  # the seeded frame's plane, once
    assert sorted(w.controller.obj_ids) == sorted(int(v) for v in np.unique(m.labels[2]) if v)


def test_a_session_that_cannot_open_says_why_and_the_one_it_replaced_stays(make_napari_viewer, tmp_path, monkeypatch,
                                                                           qtbot):
    """The session is opened by the run's worker now: a channel whose frames hold NaN fails there with the reason,
    nothing is changed, and the session of the channel segmented before stays the image's (its objects, its Undo)."""
    m = movie(num_frames=4)
    broken = np.full(m.image.shape, np.nan, np.float32)
    stack = np.stack([m.image.astype(np.float32), broken], axis=1)  # (T, C, Y, X)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", stack))
    w.window_combo.setCurrentText("off")
    w.channel_axis_combo.setCurrentText("axis 1 (2)")
    w.channel_combo.setCurrentText("channel 0")
    x, y = click_point(m.labels[0] == 1)
    w.points_layer.add(np.array([[0, 0, y, x]], float))
    wait(qtbot, w)
    first = w.controller
    assert first.obj_ids == [1] and len(first.history) == 1
    before = w.labels_layer.data.copy()
    w.channel_combo.setCurrentText("channel 1")
    w.segment_button.click()
    wait(qtbot, w)
    assert "NaN" in w.status.text() and "Nothing was changed" in w.status.text(), w.status.text()
    assert w.controller is first and list(w.state.sessions.values()) == [first]
    np.testing.assert_array_equal(w.labels_layer.data, before)
    w.undo_button.click()
    assert not (w.labels_layer.data == 1).any()  # the first session's Undo still works


def test_closing_and_reopening_the_widget_goes_on_with_its_layers_and_clicks(make_napari_viewer, tmp_path,
                                                                             monkeypatch, qtbot):
    """Closing the dock and opening the widget again (Plugins menu) added a second set of layers ("... [1]") beside
    the first, and the closed widget still segmented every click on the old ones. Now the reopened widget takes the
    clicks, boxes and masklets layers of the image, with their clicks and its current object; the closed one is
    silent."""
    m = movie()
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", m.image))
    w.window_combo.setCurrentText("off")
    click_cell(w.points_layer, m, 1)
    wait(qtbot, w)
    w.new_object_button.click()
    points, boxes, labels = w.points_layer, w.boxes_layer, w.labels_layer
    closed, steps = w.controller, len(w.controller.history)
    names = [layer.name for layer in viewer.layers]
    viewer.window.remove_dock_widget(w)
    click_cell(points, m, 2)  # on the clicks layer, with no widget open: kept for the next one
    assert not w.busy() and len(points.data) == 2

    _, again = viewer.window.add_plugin_dock_widget(*WIDGET)
    again.model_combo.setCurrentText("demo")
    again.checkpoint_combo.setCurrentText("embedded (demo)")
    again.size_spin.setValue(128)
    again.window_combo.setCurrentText("off")
    assert [layer.name for layer in viewer.layers] == names  # nothing "... [1]"
    for mine, before in ((again.points_layer, points), (again.boxes_layer, boxes), (again.labels_layer, labels)):
        assert mine.unique_id == before.unique_id, before.name
    assert again.object_spin.value() == 2 and viewer.layers.selection.active.unique_id == points.unique_id
    again.segment_button.click()
    wait(qtbot, again)
    assert again.status.text().startswith("Done"), again.status.text()
    assert again.controller.obj_ids == [1, 2] and np.shares_memory(again.controller.labels, labels.data)
    assert (labels.data[0] == 1).any() and (labels.data[0] == 2).any()
    assert not w.busy() and closed.obj_ids == [1] and len(closed.history) == steps  # the closed widget: nothing
    again.new_object_button.click()
    click_cell(points, m, 3)  # new clicks go on as before, by the reopened widget only
    wait(qtbot, again)
    assert again.controller.obj_ids == [1, 2, 3] and (labels.data[0] == 3).any() and not w.busy()
    assert [layer.name for layer in viewer.layers] == names
