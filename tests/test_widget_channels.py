"""Images with channels in the dock widget, driven as a person does (real viewer, widget from the manifest, prompts
added to the layers, buttons pressed, workers awaited): the masklets sit on their frame at every channel of
(T, C, Y, X) and (T, C, Z, Y, X) images, RGBA images segment their RGB, and the table measures the chosen channel."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from sam2_model.evaluation import click_point  # noqa: E402
from sam2_model.metrics import region_similarity  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402

WIDGET = ("napari-sam2", "SAM 2 segmentation")


def wait(qtbot, w, timeout=120_000):
    qtbot.waitUntil(lambda: not w.busy(), timeout=timeout)


def movie(seed=3, num_frames=4):
    return make_timelapse(num_frames=num_frames, shape=(96, 96), num_cells=4, seed=seed, divisions=False,
                          enter_leave=False, radius_fraction=0.1)


def open_widget(make_napari_viewer, tmp_path, monkeypatch, data, **kwargs):
    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path / "cache"))
    viewer = make_napari_viewer()
    viewer.add_image(data, name="cells", **kwargs)
    _, w = viewer.window.add_plugin_dock_widget(*WIDGET)
    w.model_combo.setCurrentText("demo")
    w.checkpoint_combo.setCurrentText("embedded (demo)")
    w.size_spin.setValue(128)
    w.window_combo.setCurrentText("off")
    return viewer, w


def pick_channel(w, axis, size, channel):
    w.channel_axis_combo.setCurrentText(f"axis {axis} ({size})")
    w.channel_combo.setCurrentText(channel)


def shown(viewer, layer, steps):
    """The 2D labels napari displays for ``layer`` with the dims sliders at ``steps`` ({axis: index})."""
    for axis, index in steps.items():
        viewer.dims.set_current_step(axis, index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # napari's private slice: what the canvas draws
        return np.asarray(layer._slice.image.raw)


def test_tcyx_masklets_follow_the_time_slider_at_every_channel(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """(T, C, Y, X) with channel 0 chosen: after Propagate, napari shows frame t's masks at (t, c) for every c (before,
    the 3-D labels lined up with (C, Y, X): the channel slider picked the frame). Undo and painting go through."""
    m = movie()
    noise = np.random.default_rng(0).integers(0, 60000, m.image.shape).astype(np.uint16)
    stack = np.stack([m.image, noise], axis=1)  # (T, C, Y, X)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, stack, scale=(1, 0.5, 1, 1),
                            translate=(0, 2, 0, 0))
    ranges = tuple(viewer.dims.range)
    pick_channel(w, 1, 2, "channel 0")
    x, y = click_point(m.labels[0] == 1)
    w.points_layer.add([0, 0, y, x])
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    labels, layer = w.controller.labels, w.labels_layer
    assert labels.shape == (4, 96, 96) and all((labels[t] == 1).any() for t in range(4))
    assert not any(np.array_equal(labels[t], labels[u]) for t in range(4) for u in range(t))  # the cell moves
    assert tuple(viewer.dims.range) == ranges  # the masklets layer adds no steps to any slider
    for t in range(4):
        for c in range(2):
            np.testing.assert_array_equal(shown(viewer, layer, {0: t, 1: c}), labels[t], err_msg=f"t={t} c={c}")
    tracks = w.add_tracks_layer()  # its time on the time axis too (3-D tracks had lined up with (C, Y, X))
    assert tracks.ndim == 4 and tuple(viewer.dims.range) == ranges
    for point in tracks.data:
        t = int(point[1])
        centre = np.argwhere(labels[t] == point[0]).mean(axis=0)
        world = np.asarray(tracks.data_to_world(point[1:]))
        np.testing.assert_allclose(world[[0, 2, 3]], [t, *centre], atol=1.0)

    w.undo_button.click()  # the propagation goes; frame 0's mask stays
    wait(qtbot, w)
    for c in range(2):
        assert not shown(viewer, layer, {0: 2, 1: c}).any()
        np.testing.assert_array_equal(shown(viewer, layer, {0: 0, 1: c}), labels[0])

    viewer.dims.set_current_step(0, 3)
    layer.paint((3, 0, 10, 10), 7, refresh=True)  # the user paints on frame 3: the controller's labels get it
    assert labels[3, 10, 10] == 7
    np.testing.assert_array_equal(shown(viewer, layer, {0: 3, 1: 1}), labels[3])


def test_tczyx_masklets_sit_on_their_frame_and_slice(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """(T, C, Z, Y, X), channel axis 1, propagating along axis 0, a click on z = 1: the mask shows at (t=0, z=1) for
    both channels and nowhere else (before, the 4-D labels lined up with (C, Z, Y, X))."""
    m = movie(num_frames=3)
    noise = np.random.default_rng(0).integers(0, 60000, m.image.shape).astype(np.uint16)
    tc = np.stack([m.image, noise], axis=1)
    data = np.stack([np.zeros_like(tc), tc], axis=2)  # (T, C, Z, Y, X): the cells are on z = 1
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, data)
    pick_channel(w, 1, 2, "channel 0")
    viewer.dims.set_current_step(2, 1)
    x, y = click_point(m.labels[0] == 1)
    w.points_layer.add([0, 0, 1, y, x])
    wait(qtbot, w)
    labels, layer = w.controller.labels, w.labels_layer
    assert labels.shape == (3, 2, 96, 96) and (labels[0, 1] == 1).any() and labels.sum() == labels[0, 1].sum()
    for c in range(2):
        np.testing.assert_array_equal(shown(viewer, layer, {0: 0, 1: c, 2: 1}), labels[0, 1])
        assert not shown(viewer, layer, {0: 0, 1: c, 2: 0}).any()
        assert not shown(viewer, layer, {0: 1, 1: c, 2: 1}).any()


def test_rgba_click_segments_the_cell(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """An RGBA stack (napari opens it as RGB): a click segments the cell from the RGB (the alpha is dropped, as
    napari_sam2.segment does) instead of failing with advice for Python callers."""
    from napari.utils.notifications import notification_manager

    m = movie()
    grey = (m.image.astype(float) / m.image.max() * 255).astype(np.uint8)
    rgba = np.stack([grey, grey, grey, np.full_like(grey, 255)], axis=-1)  # (T, Y, X, 4)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, rgba)
    assert viewer.layers["cells"].rgb
    errors = []
    notification_manager.notification_ready.connect(lambda n: errors.append(str(getattr(n, "message", n))))
    x, y = click_point(m.labels[0] == 1)
    w.points_layer.add([0, y, x])
    wait(qtbot, w)
    assert not [e for e in errors if "channel" in e], errors
    assert w.status.text().startswith("Done")
    assert region_similarity(w.labels_layer.data[0] == 1, m.labels[0] == 1) > 0.6


def test_table_measures_the_chosen_channel(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """mean_intensity of the exported table is the chosen channel's mean under the mask, then, with "max of
    channels", the max of the channels' (before, the mean of every channel)."""
    m = movie(num_frames=2)
    dim = np.random.default_rng(1).integers(0, 3000, m.image.shape).astype(np.uint16)
    stack = np.stack([m.image, dim], axis=1)  # (T, C, Y, X)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, stack)
    pick_channel(w, 1, 2, "channel 0")
    x, y = click_point(m.labels[0] == 1)
    w.points_layer.add([0, 0, y, x])
    wait(qtbot, w)

    def table_mean(name):
        with open(w.export("table", str(tmp_path / name))) as handle:
            row = next(csv.DictReader(handle))
        assert (row["frame"], row["obj_id"]) == ("0", "1")
        return float(row["mean_intensity"]), w.controller.labels[0] == 1

    value, mask = table_mean("channel.csv")
    assert mask.any()
    np.testing.assert_allclose(value, m.image[0][mask].mean(), rtol=1e-5)

    w.channel_combo.setCurrentText("max of channels")
    w.segment_button.click()
    wait(qtbot, w)
    value, mask = table_mean("max.csv")
    assert w.controller.session_options["composite"] == "max" and mask.any()
    np.testing.assert_allclose(value, np.maximum(m.image[0], dim[0])[mask].mean(), rtol=1e-5)
