"""The widget's leftovers beside napari's own tools (explorer X11) and the Weights menu, driven as a person does (the
demo model, prompts added to the layers, buttons pressed, workers awaited): boxes outside a cropped image are removed
or cut at its edges as clicks outside it are; the Add Tracks layer button's layer follows a later scale, translate or
rotation of the image; a rotated image's clicks land on the pixel under them (the widget's layers turn with it); the
Weights menu says a run stopped early as the model builder reads its record (the one inside weights.pt wins over a
weights.json that disagrees)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _helpers import small_movie_fixture

FRAMES = 4
movie = small_movie_fixture(FRAMES, 11)


def _box(frame: int, rows: tuple, cols: tuple) -> np.ndarray:
    """A rectangle's 4 corners (frame, row, col) as napari's rectangle tool makes them."""
    (r0, r1), (c0, c1) = rows, cols
    return np.array([[frame, r0, c0], [frame, r0, c1], [frame, r1, c1], [frame, r1, c0]], float)


@pytest.mark.gui
def test_a_crop_removes_the_boxes_outside_it_and_cuts_those_across_its_edge(make_napari_viewer, tmp_path,
                                                                             monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    from widget_helpers import click_cells, open_widget, wait

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_cells(w, qtbot, movie, (1,))
    rows, cols = 96 - 15, 96 - 20  # the crop below keeps 81 rows and 76 columns; prompts keep their pixel positions
    w.new_object_button.click()
    w.boxes_layer.add_rectangles(_box(0, (84, 94), (30, 50)))  # wholly below the rows kept
    wait(qtbot, w)
    w.new_object_button.click()
    w.boxes_layer.add_rectangles(_box(0, (60, 90), (50, 70)))  # reaching past the last row kept
    wait(qtbot, w)
    assert len(w.boxes_layer.data) == 2, w.status.text()
    viewer.layers["cells"].data = movie.image[:, 15:, 20:].copy()
    qtbot.wait(100)
    status = w.status.text()
    assert "1 box(es) outside the new data were removed" in status, status
    assert "1 box(es) reaching past its edges were cut" in status and f"{rows} rows and {cols} columns" in status, status
    assert len(w.boxes_layer.data) == 1 and w.boxes_layer.features["obj_id"].tolist() == [3]
    kept = np.asarray(w.boxes_layer.data[0])
    assert np.isclose(kept[:, 1].max(), rows - 0.5) and np.isclose(kept[:, 1].min(), 60), kept  # cut at the edge
    assert np.allclose(sorted(set(kept[:, 2])), [50, 70])
    w.forward_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()  # before: "ERROR: SAM 2 failed: ... outside the frame"
    assert w.labels_layer.data.shape == (FRAMES, rows, cols)


@pytest.mark.gui
def test_the_add_tracks_layer_follows_the_image_s_scale_translate_and_rotation(make_napari_viewer, tmp_path,
                                                                              monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    from widget_helpers import click_and_propagate, open_widget, wait

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(w, qtbot, movie, (1, 2))
    w.tracks_button.click()
    wait(qtbot, w)
    tracks = viewer.layers["SAM2 tracks [cells]"]
    image = viewer.layers["cells"]
    image.scale = (300.0, 0.65, 0.65)  # a pixel size given after adding the Tracks layer
    image.translate = (0.0, 10.0, 5.0)
    qtbot.wait(100)
    assert np.allclose(tracks.scale, image.scale) and np.allclose(tracks.translate, image.translate), (
        tracks.scale, tracks.translate)
    image.rotate = 30
    qtbot.wait(100)
    assert np.allclose(tracks.rotate, image.rotate)
    point = np.asarray(tracks.data)[0, 1:]  # (t, y, x): on the image where its pixel is
    assert np.allclose(tracks.data_to_world(point), image.data_to_world(point))


@pytest.mark.gui
def test_a_click_on_a_rotated_image_reaches_the_pixel_under_it(make_napari_viewer, tmp_path, monkeypatch, qtbot,
                                                                movie):
    pytest.importorskip("napari")
    from widget_helpers import centre, click_cells, open_widget, wait

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_cells(w, qtbot, movie, (1,))  # on the image as it came
    image = viewer.layers["cells"]
    image.rotate = 30  # the person turns the image (napari's layer transform), then clicks on cell 2 on screen
    image.translate = (0.0, 40.0, 0.0)
    qtbot.wait(100)
    for layer in (w.points_layer, w.boxes_layer, w.labels_layer):  # drawn on the turned image
        assert np.allclose(layer.rotate, image.rotate) and np.allclose(layer.translate, image.translate), layer.name
    world = image.data_to_world((0, *centre(movie.labels[0], 2)))  # where cell 2 is on screen
    w.new_object_button.click()
    w.points_layer.add(np.array([w.points_layer.world_to_data(world)]))  # napari's add mode maps the click so
    wait(qtbot, w)
    assert np.allclose(np.asarray(w.points_layer.data)[-1], (0, *centre(movie.labels[0], 2))), w.status.text()
    w.forward_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()
    data = np.asarray(w.labels_layer.data)
    for frame in range(FRAMES):
        for obj in (1, 2):
            truth = movie.labels[frame] == obj
            assert ((data[frame] == obj) & truth).sum() > 0.5 * truth.sum(), (frame, obj)


def _train(out: Path, steps: int, stop_after_first: bool) -> Path:
    """A real run of the demo model at 64 px into ``out`` (``steps`` asked for; cancelled after the first with
    ``stop_after_first``); its folder."""
    from sam2_model.train.loop import TrainSettings, train

    settings = TrainSettings(out=str(out), model="demo", image_size=64, clip_len=2, clips_per_step=1, max_objects=2,
                             steps=steps, warmup_steps=1, save_every=1000, seed=5, augment=False)
    train(settings, progress=lambda step, row: not stop_after_first)
    return out


def test_the_weights_menu_reads_the_record_inside_weights_pt_over_a_disagreeing_json(tmp_path, monkeypatch):
    from napari_sam2._run_folders import trained_runs

    monkeypatch.setenv("HOME", str(tmp_path))
    root = tmp_path / "napari-sam2-runs"
    stopped = _train(root / "stopped", steps=3, stop_after_first=True)
    done = _train(root / "done", steps=1, stop_after_first=False)
    for folder, steps, planned in ((stopped, 3, 3), (done, 1, 3)):  # each JSON says the other story
        record = json.loads((folder / "weights.json").read_text())
        record["steps"], record["settings"]["steps"] = steps, planned
        record["stopped_by"] = "steps" if steps == planned else "progress"
        (folder / "weights.json").write_text(json.dumps(record))
    labels = {run.weights.parent.name: run.label for run in trained_runs()}
    assert "stopped at step 1 of 3" in labels["stopped"], labels  # before: the JSON's finished run (no note)
    assert "stopped" not in labels["done"], labels  # before: ", stopped at step 1 of 3"


@pytest.mark.gui
def test_an_image_turned_before_the_first_click_gets_turned_layers(make_napari_viewer, tmp_path, monkeypatch, qtbot,
                                                                     movie):
    pytest.importorskip("napari")
    from widget_helpers import centre, open_widget, wait

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    image = viewer.add_image(movie.image, name="cells", rotate=-20, shear=[0.0, 0.0, 0.2])
    qtbot.wait(100)
    world = image.data_to_world((0, *centre(movie.labels[0], 3)))  # where cell 3 is on screen
    w.points_layer.add(np.array([w.points_layer.world_to_data(world)]))
    wait(qtbot, w)
    assert np.allclose(np.asarray(w.points_layer.data)[-1], (0, *centre(movie.labels[0], 3))), w.status.text()
    for layer in (w.points_layer, w.boxes_layer, w.labels_layer):
        assert np.allclose(layer.rotate, image.rotate) and np.allclose(layer.shear, image.shear), layer.name
    mask, truth = np.asarray(w.labels_layer.data)[0] == 1, movie.labels[0] == 3  # object 1 on cell 3
    assert (mask & truth).sum() > 20 and (mask & truth).sum() > 0.8 * mask.sum(), w.status.text()
