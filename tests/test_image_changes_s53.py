"""The widget follows changes a person makes to the image layer and to the widget's own layers with napari's tools
(driven as a person does: the demo model, prompts added to the layers, buttons pressed, workers awaited): a pixel
size set after clicking, new data of another shape (a crop), a renamed masklets layer picked up by a reopened dock, a
duplicated clicks layer, an image removed and added again, and a refusal on a transposed view; and, for an image that
is not the current one (or was removed and added back), that only its own live state acts, under its own axes."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from _helpers import small_movie_fixture  # noqa: E402
from widget_helpers import WIDGET, centre, click_and_propagate, open_widget, wait  # noqa: E402

FRAMES = 5
movie = small_movie_fixture(FRAMES, 11)


def covered(data: np.ndarray, truth: np.ndarray, obj: int, cell: int) -> int:
    """Pixels of object ``obj`` in ``data`` that lie on true cell ``cell`` of ``truth``."""
    return int(((data == obj) & (truth == cell)).sum())


def test_pixel_size_set_after_clicking_keeps_every_click_on_its_cell(make_napari_viewer, tmp_path, monkeypatch,
                                                                       qtbot, movie):
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(w, qtbot, movie, (1, 2))
    clicks = np.asarray(w.points_layer.data).copy()
    image = viewer.layers["cells"]
    image.scale = (300.0, 0.65, 0.65)  # the person calibrates the image for exports in microns
    image.translate = (0.0, 10.0, 5.0)
    qtbot.wait(100)
    for layer in (w.points_layer, w.boxes_layer, w.labels_layer):  # drawn on the image
        assert np.allclose(layer.scale, image.scale) and np.allclose(layer.translate, image.translate), layer.name
    assert np.array_equal(np.asarray(w.points_layer.data), clicks)  # each click stays on its image pixel
    w.new_object_button.click()
    world = image.data_to_world((0, *centre(movie.labels[0], 3)))  # where cell 3 is on screen
    w.points_layer.add(np.array([w.points_layer.world_to_data(world)]))  # the person clicks there
    wait(qtbot, w)
    assert len(w.points_layer.data) == 3, w.status.text()
    w.forward_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()
    data = np.asarray(w.labels_layer.data)
    for frame in (0, 2):
        for obj in (1, 2, 3):
            assert covered(data[frame], movie.labels[frame], obj, obj) > 20, (frame, obj)
            assert (data[frame] == obj).sum() < 1.5 * (movie.labels[frame] == obj).sum(), (frame, obj)


def test_crop_of_another_shape_keeps_the_old_masks_and_says_what_the_clicks_are(make_napari_viewer, tmp_path,
                                                                                monkeypatch, qtbot, movie):
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(w, qtbot, movie, (1, 2))
    before = np.asarray(w.labels_layer.data).copy()
    old_masks = w.labels_layer
    second = np.asarray(w.points_layer.data)[1]
    rows, cols = 96 - 15, 96 - 20
    assert second[2] >= cols or second[1] >= rows  # object 2's click lies outside the crop below
    viewer.layers["cells"].data = movie.image[:, 15:, 20:].copy()
    qtbot.wait(100)
    status = w.status.text()
    assert "the masks stay" not in status and "another shape" in status, status
    assert "outside the image were removed" in status and "keep their pixel positions" in status, status
    assert old_masks in viewer.layers and old_masks.name.endswith("(old data)"), old_masks.name
    assert np.array_equal(np.asarray(old_masks.data), before)  # nothing lost
    assert len(w.points_layer.data) == 1  # object 1's click, inside the new data
    w.forward_button.click()
    wait(qtbot, w)
    assert "ERROR" not in w.status.text(), w.status.text()
    assert w.labels_layer.unique_id != old_masks.unique_id and w.labels_layer.data.shape == (FRAMES, rows, cols)
    assert np.array_equal(np.asarray(old_masks.data), before)


def test_renamed_masklets_are_picked_up_by_a_reopened_dock(make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(w, qtbot, movie, (1, 2))
    w.labels_layer.name = "cells masks"
    tracked = np.asarray(w.labels_layer.data).copy()
    viewer.window.remove_dock_widget(w)
    qtbot.wait(100)
    _, w2 = viewer.window.add_plugin_dock_widget(*WIDGET)
    w2.model_combo.setCurrentText("demo")
    w2.checkpoint_combo.setCurrentText("embedded (demo)")
    w2.size_spin.setValue(128)
    assert "their masks in 'cells masks'" in w2.status.text(), w2.status.text()
    w2.new_object_button.click()
    obj = w2.object_spin.value()
    w2.points_layer.add(np.array([[0, *centre(movie.labels[0], 3)]]))
    wait(qtbot, w2)
    assert w2.labels_layer.name == "cells masks"
    assert not any(layer.name.startswith("SAM2 masklets") for layer in viewer.layers)
    data = np.asarray(w2.labels_layer.data)
    assert covered(data[0], movie.labels[0], obj, 3) > 20
    assert np.array_equal(data[3], tracked[3])  # the tracked frames are the widget's still


def test_duplicated_clicks_layer_leaves_the_widgets_clicks_layer_active(make_napari_viewer, tmp_path, monkeypatch,
                                                                         qtbot, movie):
    from napari.layers._layer_actions import _duplicate_layer

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(w, qtbot, movie, (1,))
    viewer.layers.selection.active = w.points_layer
    _duplicate_layer(viewer.layers)  # Layers > Duplicate Layer, as a backup
    qtbot.wait(100)
    copy = viewer.layers[f"{w.points_layer.name} copy"]
    assert viewer.layers.selection.active.unique_id == w.points_layer.unique_id and w.points_layer.mode == "add"
    assert f"'{copy.name}' is a copy" in w.status.text(), w.status.text()
    w.new_object_button.click()
    obj = w.object_spin.value()
    viewer.layers.selection.active.add(np.array([[0, *centre(movie.labels[0], 3)]]))  # the next click
    wait(qtbot, w)
    assert covered(np.asarray(w.labels_layer.data)[0], movie.labels[0], obj, 3) > 20


def test_image_removed_and_added_again_says_what_happened(make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(w, qtbot, movie, (1, 2))
    viewer.layers.remove("cells")
    qtbot.wait(100)
    assert not w.status.text().startswith("Done") and "was removed" in w.status.text(), w.status.text()
    viewer.add_image(movie.image, name="cells")
    qtbot.wait(100)
    assert "was removed" not in w.status.text() and "'cells'" in w.status.text(), w.status.text()
    w.new_object_button.click()
    obj = w.object_spin.value()
    w.points_layer.add(np.array([[0, *centre(movie.labels[0], 3)]]))
    wait(qtbot, w)
    assert covered(np.asarray(w.labels_layer.data)[0], movie.labels[0], obj, 3) > 20
    assert w.status.text().startswith("Done"), w.status.text()


def test_refusal_on_a_transposed_view_gives_way_when_transposed_back(make_napari_viewer, tmp_path, monkeypatch,
                                                                      qtbot, movie):
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    viewer.dims.order = (1, 0, 2)  # rows on a slider, frames on screen
    w.points_layer.add(np.array([[2, viewer.dims.current_step[1], 40]], float))
    wait(qtbot, w)
    assert w.status.text().startswith("the prompt was removed"), w.status.text()
    viewer.dims.order = (0, 1, 2)
    assert not w.status.text().startswith("the prompt was removed"), w.status.text()
    assert "frames again" in w.status.text()


def test_track_all_lineage_follows_a_pixel_size_set_afterwards(make_napari_viewer, tmp_path, monkeypatch, qtbot,
                                                                movie):
    from widget_helpers import track_all_panel, wait_tracking

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    track_all_panel(w).track_button.click()
    wait_tracking(qtbot, w)
    tracks = [layer for layer in viewer.layers if layer.name.startswith("SAM2 lineage")]
    assert len(tracks) == 1
    viewer.layers["cells"].scale = (1.0, 2.0, 2.0)
    qtbot.wait(100)
    assert np.allclose(tracks[0].scale, (1, 2, 2)) and np.allclose(w.labels_layer.scale, (1, 2, 2))


def test_same_image_layer_added_back_then_cropped_is_handled_once(make_napari_viewer, tmp_path, monkeypatch, qtbot,
                                                                    movie):
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(w, qtbot, movie, (1, 2))
    image = viewer.layers["cells"]
    viewer.layers.remove(image)
    qtbot.wait(100)
    viewer.layers.append(image)  # the same layer object back (a script, or a plugin's undo)
    qtbot.wait(100)
    said = []
    monkeypatch.setattr("napari_sam2._image_layers_mixin.show_info", said.append)
    monkeypatch.setattr("napari_sam2._prompt_events.show_info", said.append)
    image.data = image.data[:, 15:, 20:]  # a crop: only the live state sets the masks aside, once
    qtbot.wait(200)
    names = [layer.name for layer in viewer.layers]
    assert "SAM2 masklets [cells] (old data)" in names and not any("(old data) (old data)" in n for n in names), names
    assert len(said) == 1, said
    image.scale = (1.0, 2.0, 2.0)
    qtbot.wait(100)
    assert np.allclose(w.points_layer.scale, (1, 2, 2))


def test_crop_of_an_image_not_current_judges_its_clicks_under_its_own_axes(make_napari_viewer, tmp_path, monkeypatch,
                                                                             qtbot, movie):
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(w, qtbot, movie, (1, 2))
    points = w.points_layer
    rows = np.asarray(points.data)[:, 1]
    assert len(rows) == 2 and (rows >= 20).all(), rows  # both clicks lie below the rows kept by the crop
    viewer.add_image(np.stack([movie.image, movie.image], axis=1), name="multi")  # (T, C, Y, X)
    w.image_combo.setCurrentText("multi")
    qtbot.wait(100)
    w.axes.channel_axis_combo.setCurrentText("axis 1 (2)")  # the current image's channels: not the rows of 'cells'
    qtbot.wait(100)
    assert w.axes.channel_axis() == 1
    cells = viewer.layers["cells"]
    cells.data = cells.data[:, :20, :]
    qtbot.wait(200)
    assert len(points.data) == 0, np.asarray(points.data)
    assert "outside" in w.status.text(), w.status.text()


def test_track_all_lineage_of_an_image_not_current_follows_a_pixel_size(make_napari_viewer, tmp_path, monkeypatch,
                                                                         qtbot, movie):
    from widget_helpers import track_all_panel, wait_tracking

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    track_all_panel(w).track_button.click()
    wait_tracking(qtbot, w)
    tracks = [layer for layer in viewer.layers if layer.name.startswith("SAM2 lineage")]
    assert len(tracks) == 1
    masks = w.labels_layer
    viewer.layers["cells"].data = movie.image + 1  # new pixels of the same shape: the sessions reset, masks stay
    qtbot.wait(100)
    assert w._state.controller is None and tracks[0] in viewer.layers
    viewer.add_image(movie.image.copy(), name="other")
    w.image_combo.setCurrentText("other")
    qtbot.wait(100)
    viewer.layers["cells"].scale = (1.0, 2.0, 2.0)  # from the console, 'other' being segmented
    qtbot.wait(100)
    assert np.allclose(masks.scale, (1, 2, 2)) and np.allclose(tracks[0].scale, (1, 2, 2)), (masks.scale,
                                                                                           tracks[0].scale)
