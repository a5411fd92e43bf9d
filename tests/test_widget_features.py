"""More of the dock widget, driven as a user would in a real viewer: object colours, seeding from a Labels
layer, model and weights choice (local file, failed download with progress), multichannel images."""

from __future__ import annotations

import csv
import http.server
import threading

import numpy as np
import pytest
import torch

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from sam2_model import build_model  # noqa: E402
from sam2_model.evaluation import click_point, clickable_objects  # noqa: E402
from sam2_model.metrics import region_similarity  # noqa: E402

WIDGET = ("napari-sam2", "SAM 2 segmentation")


def wait(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: not widget.busy(), timeout=timeout)


@pytest.fixture
def sample(make_napari_viewer, tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path / "cache"))
    viewer = make_napari_viewer()
    viewer.open_sample("napari-sam2", "synthetic_nuclei")
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    return viewer, widget


def test_defaults_to_the_embedded_demo_model(sample):
    _, w = sample
    assert w.model_combo.currentText() == "demo"
    assert w.checkpoint_combo.currentText() == "embedded (demo)"


def test_the_embedded_model_says_what_it_is_good_for(sample):
    """A new user on the embedded weights reads what they were trained on and where to turn for other cells; the
    note goes when an official model or other demo weights are chosen and comes back with the embedded ones."""
    _, w = sample
    note = w.picker.demo_note
    assert note.isVisibleTo(w) and "fluorescent nuclei" in note.text() and "phase contrast" in note.text()
    w.model_combo.setCurrentText("sam2.1_hiera_tiny")
    assert not note.isVisibleTo(w)
    w.model_combo.setCurrentText("demo")
    assert w.checkpoint_combo.currentText() == "embedded (demo)" and note.isVisibleTo(w)
    w.checkpoint_combo.setCurrentText("random weights (testing)")
    assert not note.isVisibleTo(w)


def test_each_object_keeps_its_colour_and_negative_clicks_their_symbol(sample, qtbot):
    viewer, w = sample
    truth = viewer.layers["ground truth"].data
    first, second = clickable_objects(truth[0])[:2]
    points = w.points_layer
    x, y = click_point(truth[0] == first)
    points.add([0, y, x])
    wait(qtbot, w)
    w.new_object_button.click()
    x, y = click_point(truth[0] == second)
    points.add([0, y, x])
    wait(qtbot, w)
    w._on_toggle_positive()
    points.add([0, 3, 3])  # a negative click for object 2 on the background
    wait(qtbot, w)
    labels = w.labels_layer
    colours = points.face_color
    assert not np.allclose(colours[0], colours[1])
    np.testing.assert_allclose(colours[0], labels.get_color(1), atol=1e-6)
    np.testing.assert_allclose(colours[1], labels.get_color(2), atol=1e-6)
    np.testing.assert_allclose(colours[2], colours[1])
    assert [str(s) for s in points.symbol] == ["disc", "disc", "x"]
    boxes = w.boxes_layer
    boxes.add_rectangles(np.array([[0, 10, 10], [0, 10, 40], [0, 40, 40], [0, 40, 10]]))
    np.testing.assert_allclose(boxes.edge_color[0], labels.get_color(2), atol=1e-6)
    # the demo model segments the clicked cells
    assert region_similarity(labels.data[0] == 1, truth[0] == first) > 0.7


def test_seeding_from_a_labels_layer_then_propagating(sample, qtbot):
    viewer, w = sample
    truth = viewer.layers["ground truth"].data
    seed = np.zeros_like(truth)
    keep = clickable_objects(truth[0])[:3]
    for obj_id in keep:
        seed[0][truth[0] == obj_id] = obj_id
    viewer.add_labels(seed, name="my annotations")
    w.seed_combo.setCurrentText("my annotations")
    viewer.dims.set_current_step(0, 0)
    w.seed_button.click()
    wait(qtbot, w)
    out = w.labels_layer.data
    assert set(np.unique(out[0])) == {0, *keep}
    for obj_id in keep:  # mask prompts are output as they are (through the model's 4x-smaller mask grid)
        assert region_similarity(out[0] == obj_id, truth[0] == obj_id) > 0.9
    assert w.object_spin.value() == max(keep) + 1
    w.forward_button.click()
    wait(qtbot, w)
    assert set(np.unique(out[5])) <= {0, *keep} and len(set(np.unique(out[5])) - {0}) >= 2


def test_local_checkpoint_file_is_identified(sample, tmp_path, monkeypatch):
    _, w = sample
    errors = []
    monkeypatch.setattr("napari_sam2._model_picker.show_error", errors.append)
    path = tmp_path / "tuned.pt"
    torch.save({"model": build_model("demo").state_dict()}, path)
    w.set_checkpoint_file(str(path))
    assert w.checkpoint_combo.currentText() == "local file…" and w.model_combo.currentText() == "demo"
    assert w.picker.choice().path == str(path) and not errors
    from napari_sam2.settings import load_settings

    assert load_settings()["checkpoint_file"] == str(path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    w.set_checkpoint_file(str(tmp_path / "junk.pt"))
    assert errors and "not a readable PyTorch checkpoint" in errors[0]
    assert w.checkpoint_file == str(path)  # the good choice stays


class _Server:
    """Serves a wrong 3 MB file under the name of the official tiny checkpoint."""

    def __init__(self, root):
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **k)  # noqa: E731
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_a_failed_download_shows_progress_then_an_error_and_the_widget_stays_usable(sample, qtbot, tmp_path,
                                                                                   monkeypatch):
    viewer, w = sample
    served = tmp_path / "served"
    served.mkdir()
    (served / "sam2.1_hiera_tiny.pt").write_bytes(b"\0" * (3 << 20))
    server = _Server(served)
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", server.url)
    errors, seen = [], []
    monkeypatch.setattr("napari_sam2._model_picker.show_error", errors.append)
    w.picker.download_progress.connect(lambda done, total: seen.append((done, total)))
    w.model_combo.setCurrentText("sam2.1_hiera_tiny")
    assert w.checkpoint_combo.currentText() == "cached or download"
    w.segment_button.click()
    assert w.picker.worker is not None and w.worker is None  # loading runs in the picker's worker
    wait(qtbot, w)
    server.httpd.shutdown()
    assert seen and seen[-1][0] == seen[-1][1] == 3 << 20
    assert errors and "not the official sam2.1_hiera_tiny.pt" in errors[0]
    assert w.segment_button.isEnabled() and w.controller is None
    w.model_combo.setCurrentText("demo")  # back to the embedded model: segmenting works
    truth = viewer.layers["ground truth"].data
    x, y = click_point(truth[0] == clickable_objects(truth[0])[0])
    w.points_layer.add([0, y, x])
    wait(qtbot, w)
    assert w.labels_layer.data[0].any()


def test_multichannel_image_pick_a_channel(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from sam2_model.synthetic import make_timelapse

    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    movie = make_timelapse(num_frames=4, shape=(256, 256), seed=900_205)
    noise = np.random.default_rng(0).integers(0, 60000, movie.image.shape).astype(np.uint16)
    stack = np.stack([movie.image, noise], axis=1)  # (T, C, Y, X)
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="two channels")
    _, w = viewer.window.add_plugin_dock_widget(*WIDGET)
    w.channel_axis_combo.setCurrentText("axis 1 (2)")
    assert [w.channel_combo.itemText(i) for i in range(w.channel_combo.count())][:2] == ["channel 0", "channel 1"]
    w.channel_combo.setCurrentText("channel 0")
    obj_id = clickable_objects(movie.labels[0])[0]
    x, y = click_point(movie.labels[0] == obj_id)
    w.points_layer.add([0, 0, y, x])
    wait(qtbot, w)
    out = w.controller.labels  # the layer shows it with a size-1 channel axis (on every channel)
    assert out.shape == (4, 256, 256) and w.labels_layer.data.shape == (4, 1, 256, 256)
    assert region_similarity(out[0] == 1, movie.labels[0] == obj_id) > 0.7
    assert w.controller.session_options["channel"] == 0


def test_objects_panel_points_to_the_frame_where_the_mask_left_the_cell(make_napari_viewer, tmp_path, monkeypatch,
                                                                         qtbot):
    """A cell leaps ~3.5 diameters between frames 2 and 3; the embedded model does not follow it, and the
    objects panel's *Check frames* column says where to look."""
    from sam2_model.synthetic import make_timelapse

    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    m = make_timelapse(num_frames=6, shape=(160, 160), num_cells=1, seed=4, divisions=False, enter_leave=False)
    image, truth = m.image.copy(), m.labels.copy()
    image[3:] = np.roll(m.image[3:], (70, 70), axis=(1, 2))
    truth[3:] = np.roll(m.labels[3:], (70, 70), axis=(1, 2))
    viewer = make_napari_viewer()
    viewer.add_image(image, name="leap")
    _, w = viewer.window.add_plugin_dock_widget(*WIDGET)
    w.model_combo.setCurrentText("demo")
    w.checkpoint_combo.setCurrentText("embedded (demo)")
    w.size_spin.setValue(256)
    x, y = click_point(truth[0] == 1)
    w.points_layer.add([0, y, x])
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    panel = w.objects
    headers = [panel.table.horizontalHeaderItem(i).text() for i in range(panel.table.columnCount())]
    check = headers.index("Check frames")
    assert "re-anchors" in panel.table.horizontalHeaderItem(check).toolTip()
    # the mask did not follow the leap: on frame 3 it is a speck (a few pixels of the cell at most)
    assert np.count_nonzero((w.labels_layer.data[3] == 1) & (truth[3] == 1)) < 0.2 * np.count_nonzero(truth[3] == 1)
    assert panel.table.item(0, check).text().startswith("3")
    assert panel.rows[0].check == tuple(w.controller.session.jumped_frames(1))
    with open(w.export("table", str(tmp_path / "table.csv"))) as handle:  # the table marks the same frames
        flags = {int(r["frame"]): r["check"] for r in csv.DictReader(handle) if r["obj_id"] == "1"}
    assert {t for t, flag in flags.items() if flag == "1"} == set(panel.rows[0].check)
    assert flags[0] == flags[1] == flags[2] == "0"
    # *Next check frame* shows frame 3 with object 1 chosen; a click on the cell where it landed re-anchors the
    # object there, and frame 3 is no longer listed.
    viewer.dims.set_current_step(0, 0)
    w.new_object_button.click()  # as if the user had moved on to another object
    panel.select_object(1)
    panel.check_button.click()
    assert viewer.dims.current_step[0] == 3 and w.object_spin.value() == 1
    x, y = click_point(truth[3] == 1)
    w.points_layer.add([3, y, x])
    wait(qtbot, w)
    assert (w.labels_layer.data[3] == 1)[truth[3] == 1].mean() > 0.5
    assert not panel.table.item(0, check).text().startswith("3")
    assert w.controller.session.prompted_frames(1) == [0, 3]


def test_small_nuclei_are_clicked_and_tracked_in_object_windows(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Nuclei ~25 px wide in 768 x 768 frames: "auto" object windows segment each in a window around it (the
    masks are better than on the whole frame), tracked on; "off" goes back to whole frames and keeps the objects."""
    from sam2_model.synthetic import make_timelapse
    from sam2_model.windowed_session import WindowedSession

    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    movie = make_timelapse(num_frames=3, shape=(768, 768), seed=900_002, radius_fraction=0.02)
    viewer = make_napari_viewer()
    viewer.add_image(movie.image, name="small nuclei")
    _, w = viewer.window.add_plugin_dock_widget(*WIDGET)
    assert w.window_combo.currentText() == "auto"
    w.size_spin.setValue(256)
    ids = clickable_objects(movie.labels[0])[:2]
    for n, obj_id in enumerate(ids):
        if n:
            w.new_object_button.click()
        x, y = click_point(movie.labels[0] == obj_id)
        w.points_layer.add([0, y, x])
        wait(qtbot, w)
    assert isinstance(w.controller.session, WindowedSession)
    assert 192 <= w.controller.object_window <= 320
    assert w.window_note.text() == f"→ {w.controller.object_window} px"
    out = w.labels_layer.data
    windowed = [region_similarity(out[0] == n + 1, movie.labels[0] == i) for n, i in enumerate(ids)]
    assert min(windowed) > 0.85, windowed
    w.forward_button.click()
    wait(qtbot, w)
    assert all((out[t] == 1).any() and (out[t] == 2).any() for t in range(3))
    w.window_combo.setCurrentText("off")
    assert "on whole frames" in w.status.text()
    w.segment_button.click()
    wait(qtbot, w)
    assert w.controller.object_window is None and not isinstance(w.controller.session, WindowedSession)
    assert sorted(w.controller.obj_ids) == [1, 2]


def test_a_model_change_during_a_run_takes_over_when_the_run_ends(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """Changing the input size while propagating was dropped silently (the run ended on the old model and nothing
    said so); now it is said, and the prompts are re-run with the new model when the run ends."""
    from widget_helpers import propagating

    _, w, _ = propagating(make_napari_viewer, tmp_path, monkeypatch, qtbot, num_frames=24, seed=11)
    w.size_spin.setValue(256)
    qtbot.waitUntil(lambda: "re-run with it when this run ends" in w.status.text() or not w.busy(), timeout=60_000)
    qtbot.waitUntil(lambda: not w.busy() and w.controller.model.image_size == 256, timeout=120_000)
    qtbot.waitUntil(lambda: not w.busy(), timeout=120_000)
    assert w.controller.session.obj_ids == [1]
