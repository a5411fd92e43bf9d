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
    wait(qtbot, w)
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


# ---------------------------------------------------------------- Add Tracks layer and propagation redraws (s47)
TRACKS = "SAM2 tracks [cells]"


def reference_tracks(labels: np.ndarray) -> np.ndarray:
    """The Tracks rule as written before the one-pass measurement (per object: scipy's label of its mask on the whole
    plane, its largest piece, scipy's centre of mass of it): the result must stay the same, float for float."""
    from scipy import ndimage

    rows = []
    for frame in range(labels.shape[0]):
        plane = np.asarray(labels[frame])
        for obj in np.unique(plane):
            if obj == 0:
                continue
            pieces, count = ndimage.label(plane == obj)
            sizes = np.bincount(pieces.ravel())[1:]
            largest = int(np.argmax(sizes)) + 1
            y, x = ndimage.center_of_mass(pieces == largest)
            rows.append([int(obj), frame, float(y), float(x)])
    if not rows:
        return np.zeros((0, 4))
    data = np.array(rows, float)
    return data[np.lexsort((data[:, 1], data[:, 0]))]


def random_stacks(count: int = 120):
    """Label stacks of every integer dtype: speckle (many one-pixel pieces), squares (pieces of equal size: the first
    in row-major order wins), negative ids and ids far beyond the range boxed by value."""
    rng = np.random.default_rng(7)
    for trial in range(count):
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 33)), int(rng.integers(1, 33)))
        dtype = [np.uint8, np.uint16, np.int32, np.uint32, np.int64, np.uint64][trial % 6]
        ids = int(rng.integers(1, 7))
        if trial % 2:
            stack = np.where(rng.random(shape) < rng.uniform(0.1, 0.9), rng.integers(1, ids + 1, shape), 0)
        else:
            stack = np.zeros(shape, int)
            for _ in range(int(rng.integers(1, 12))):
                t, y, x = (int(rng.integers(0, n)) for n in shape)
                side = int(rng.integers(1, 4))
                stack[t, y:y + side, x:x + side] = rng.integers(1, ids + 1)
        stack = stack.astype(dtype)
        if trial % 5 == 0 and np.dtype(dtype).kind == "i":
            stack[stack == 2] = -3
        if trial % 7 == 0:
            stack[stack == 1] = np.iinfo(dtype).max
        yield stack


def test_tracks_from_labels_keeps_its_rule_float_for_float():
    """One pass per plane (each object measured in its box) gives the rows and floats of the per-object rule."""
    from napari_sam2.export import tracks_from_labels

    for stack in random_stacks():
        expected = reference_tracks(stack)
        got = tracks_from_labels(stack)
        assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes(), stack.dtype
    tie = np.zeros((2, 10, 10), np.uint16)
    tie[:, 1:3, 1:3] = tie[:, 6:8, 6:8] = 4  # two equal pieces: the first one
    tie[1, 0, 9] = 4
    np.testing.assert_array_equal(tracks_from_labels(tie), [[4, 0, 1.5, 1.5], [4, 1, 1.5, 1.5]])
    odd = np.zeros((2, 8, 8))
    odd[0, 1:3, 1:4], odd[1, 4:6, 4:6], odd[1, 0, 0] = 2.7, 0.5, -1.5  # floats and bools, as np.unique read them
    for stack in (odd, odd != 0, np.zeros((3, 5, 5), np.uint16)):
        assert tracks_from_labels(stack).tobytes() == reference_tracks(stack).tobytes()


def test_tracks_steps_report_each_frame_then_the_tracks():
    from napari_sam2.export import tracks_steps

    stack = np.zeros((3, 6, 6), np.uint16)
    stack[0, 1:3, 1:3], stack[2, 3:5, 2:4] = 1, 2
    steps = list(tracks_steps(3, lambda t: stack[t]))
    assert [s[:3] for s in steps[:4]] == [("plan", 3, ""), ("frame", 0, 1), ("frame", 1, 1), ("frame", 2, 2)]
    assert steps[-1][:2] == ("tracks", 2) and steps[-1][2].tobytes() == reference_tracks(stack).tobytes()


@pytest.fixture
def two_cells(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """(viewer, widget): a 6-frame movie (scale 0.5 px, shifted) with cells 1 and 2 clicked on frame 0."""
    m = movie(num_frames=6)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    viewer.add_image(m.image, name="cells", scale=(1.0, 0.5, 0.5), translate=(0, 10, 5))
    w.window_combo.setCurrentText("off")
    for obj in (1, 2):
        if obj > 1:
            w.new_object_button.click()
        x, y = click_point(m.labels[0] == obj)
        world = np.array([0, 10 + 0.5 * y, 5 + 0.5 * x])  # where a click on the cell lands in the viewer
        w.points_layer.add(w.points_layer.world_to_data(world)[None])
        wait(qtbot, w)
    return viewer, w


def propagate(qtbot, w) -> None:
    w.forward_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()


def observe_threads(monkeypatch, gate: threading.Event = None) -> list:
    """The thread of each call of the Tracks measurement of one frame (the real function runs); with ``gate``, its
    first call waits until the test opens the gate (so a Cancel lands mid-run)."""
    from napari_sam2 import export

    calls = []
    measure = export.plane_track_points

    def recorded(plane):
        calls.append(threading.get_ident())
        if gate is not None and len(calls) == 1:
            gate.wait(60)
        return measure(plane)

    monkeypatch.setattr(export, "plane_track_points", recorded)
    return calls


def test_add_tracks_button_measures_in_a_worker_and_adds_the_same_tracks(two_cells, qtbot, monkeypatch):
    """The button measured every object on every frame on napari's GUI thread (6.2 s frozen on an 832 x 992 x 48
    stack of 32 objects); now a worker does, with progress and Cancel, and the layer is the one of before."""
    viewer, w = two_cells
    propagate(qtbot, w)
    labels = np.asarray(w.labels_layer.data).copy()
    assert all(labels[t].any() for t in range(6)) and (labels == 2).any()
    calls = observe_threads(monkeypatch)
    w.tracks_button.click()
    assert w.busy() and TRACKS not in viewer.layers  # the click returned at once: the frames are read in a worker
    assert w.cancel_button.isEnabled() and not w.tracks_button.isEnabled() and not w.forward_button.isEnabled()
    wait(qtbot, w)
    assert len(calls) == 6 and threading.main_thread().ident not in calls  # each frame measured off the GUI thread
    layer = viewer.layers[TRACKS]
    assert layer.data.tobytes() == reference_tracks(labels).tobytes()  # float for float the rule of before
    np.testing.assert_allclose(layer.scale, (1, 0.5, 0.5))
    np.testing.assert_allclose(layer.translate, (0, 10, 5))
    assert w.status.text().startswith(f"Added the Tracks layer '{TRACKS}'") and w.progress.value() == 1
    assert w.tracks_button.isEnabled() and w.forward_button.isEnabled()
    assert w.add_tracks_layer().unique_id == layer.unique_id  # the console's call (its own thread): the same layer
    assert layer.data.tobytes() == reference_tracks(labels).tobytes()


def test_cancelled_tracks_add_no_layer_and_leave_one_there_as_it_was(two_cells, qtbot, monkeypatch):
    viewer, w = two_cells
    gate = threading.Event()
    calls = observe_threads(monkeypatch, gate)
    w.tracks_button.click()
    assert w.busy()
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=20_000)  # the worker measures frame 0
    w.cancel_button.click()
    gate.set()
    wait(qtbot, w)
    assert TRACKS not in viewer.layers
    assert w.status.text().startswith("Cancelled: no Tracks layer was added or changed"), w.status.text()

    observe_threads(monkeypatch)  # not held: this run adds the layer (frame 0 only: nothing propagated yet)
    w.tracks_button.click()
    wait(qtbot, w)
    layer = viewer.layers[TRACKS]
    kept = layer.data.copy()
    propagate(qtbot, w)  # the objects are on every frame now
    gate = threading.Event()
    calls = observe_threads(monkeypatch, gate)
    w.tracks_button.click()
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=20_000)
    w.cancel_button.click()
    gate.set()
    wait(qtbot, w)
    assert viewer.layers[TRACKS].unique_id == layer.unique_id and layer.data.tobytes() == kept.tobytes()  # as it was
    assert len(reference_tracks(np.asarray(w.labels_layer.data))) > len(kept)  # a finished run would change it


def test_propagation_redraws_the_frame_shown_not_every_frame(two_cells, qtbot, monkeypatch):
    """Each propagated frame redrew the whole masklets layer (0.2-0.3 s of napari's GUI thread a frame on 832 x 992
    frames); now only a frame napari shows is redrawn when written, and the whole layer once at the end."""
    viewer, w = two_cells
    layer = w.labels_layer
    refreshes = []
    refresh = layer.refresh

    def counted(*args, **kwargs):
        refreshes.append(int(viewer.dims.current_step[0]))
        return refresh(*args, **kwargs)

    monkeypatch.setattr(layer, "refresh", counted)
    w.forward_button.click()  # from frame 0 (the frame shown when pressed)
    viewer.dims.set_current_step(0, 4)  # the person watches frame 4 while it runs
    assert not np.asarray(layer.data[4]).any()
    wait(qtbot, w)
    assert w.status.text().startswith("Done") and np.asarray(layer.data[4]).any()
    assert 1 <= len(refreshes) <= 2, refreshes  # frame 4 when written and the end (was: 6 frames and 2 ends)
    shown = layer.thumbnail.copy()  # what napari draws of the frame shown
    assert shown[..., 3].any()  # frame 4's masks
    refresh()
    np.testing.assert_array_equal(layer.thumbnail, shown)  # nothing stale: a fresh redraw draws the same

    w.undo_button.click()  # the frame axis on the canvas: every frame drawn, each one written is redrawn
    wait(qtbot, w)
    viewer.dims.set_current_step(0, 0)
    viewer.dims.order = (1, 0, 2)  # rows on the slider; frames and columns on the canvas
    refreshes.clear()
    w.forward_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done") and len(refreshes) >= 6, refreshes
