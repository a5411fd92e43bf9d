"""The widget's loose ends of review s55 (F5), driven as a person does (the demo model, prompts added to the layers,
buttons pressed, workers awaited): an image turned out of its plane while another image was the current one is said
as soon as it is picked; the Tracks layers made over an image (Add Tracks layer's, Track all's lineage) follow its
new name as its clicks, boxes and masklets layers do; after a crop, Track all's lineage of the old pixels is set aside
beside the old masks and no Undo touches them; a warning of a Track all run pops up naming the panel's Cell diameter
boxes, not the command line's option; a (C, T, Y, X) image turned within its plane gets its clicks, masks and tracks
on the right pixels."""

from __future__ import annotations

import numpy as np
import pytest

from _helpers import label_under, small_movie_fixture, track_all_then_tracks

FRAMES = 4
movie = small_movie_fixture(FRAMES, 11)


@pytest.mark.gui
def test_an_image_turned_out_of_its_plane_while_another_was_current_is_said_when_picked(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    from widget_helpers import centre, open_widget, wait

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("a", movie.image), ("b", movie.image.copy()))
    w.image_combo.setCurrentText("a")
    w.points_layer.add(np.array([[0, *centre(movie.labels[0], 1)]]))
    wait(qtbot, w)
    viewer.layers["b"].rotate = (20, 15, 5)  # a 3-D turn of the image not segmented now
    qtbot.wait(50)
    w.image_combo.setCurrentText("b")
    said = w.status.text()  # before: "Done. Correct on any frame, ..." (a's) until Propagate was pressed
    assert said.startswith("Not supported:") and "'b'" in said and "within the image plane" in said, said
    w.image_combo.setCurrentText("a")  # a is in its plane: the line about b goes
    assert w.status.text().startswith("Segmenting 'a'"), w.status.text()


@pytest.mark.gui
def test_tracks_layers_follow_the_image_s_new_name(cells_dock, qtbot):
    pytest.importorskip("napari")
    viewer, w = cells_dock
    track_all_then_tracks(w, qtbot, correction=True)
    names = {layer.name for layer in viewer.layers}
    assert {"SAM2 lineage [cells]", "SAM2 tracks [cells]", "SAM2 cell fix [cells]"} <= names, names
    viewer.layers["cells"].name = "nuclei"
    names = {layer.name for layer in viewer.layers}
    for base in ("SAM2 clicks", "SAM2 masklets", "SAM2 lineage", "SAM2 tracks", "SAM2 cell fix"):
        assert f"{base} [nuclei]" in names, names  # before: "SAM2 lineage [cells]", "SAM2 tracks [cells]", ...
    viewer.layers["SAM2 tracks [nuclei]"].name = "my tracks"  # a name the person gives is kept
    viewer.layers["nuclei"].name = "cells 2"
    names = {layer.name for layer in viewer.layers}
    assert "my tracks" in names and "SAM2 lineage [cells 2]" in names, names


@pytest.mark.gui
def test_after_a_crop_track_all_s_old_tracks_are_set_aside_and_undo_leaves_the_old_masks(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    from widget_helpers import open_widget, track_all_panel, wait, wait_tracking

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(w)
    panel.track_button.click()
    wait_tracking(qtbot, w)
    image = viewer.layers["cells"]
    image.data = movie.image[:, 10:80, 5:90].copy()  # a crop
    said = w.status.text()
    assert "'SAM2 masklets [cells] (old data)'" in said and "'SAM2 lineage [cells] (old data)'" in said, said
    old_masks, old_tracks = viewer.layers["SAM2 masklets [cells] (old data)"], viewer.layers[
        "SAM2 lineage [cells] (old data)"]  # before: the lineage kept its name, still the image's, over the crop
    masks, tracks = np.asarray(old_masks.data).copy(), np.asarray(old_tracks.data).copy()
    w.undo_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Nothing to undo"), w.status.text()
    panel.undo_button.click()
    wait_tracking(qtbot, w)
    said = panel.status.text()
    assert said.startswith("No tracking step to undo: ") and "'SAM2 lineage [cells] (old data)'" in said, said
    assert np.array_equal(np.asarray(old_masks.data), masks) and np.array_equal(np.asarray(old_tracks.data), tracks)
    image.scale = (1.0, 2.0, 2.0)  # the set-aside tracks no longer follow the image
    qtbot.wait(50)
    assert np.allclose(old_tracks.scale, 1.0), old_tracks.scale
    panel.track_button.click()  # tracking the cropped image makes its own lineage layer, under the usual name
    wait_tracking(qtbot, w)
    assert panel.status.text().startswith("Done"), panel.status.text()
    assert "SAM2 lineage [cells]" in viewer.layers and w.labels_layer.data.shape == image.data.shape


@pytest.mark.gui
def test_a_track_all_warning_names_the_panel_s_cell_diameter_boxes(make_napari_viewer, tmp_path, monkeypatch, qtbot,
                                                                  movie):
    pytest.importorskip("napari")
    from napari.utils.notifications import notification_manager

    from widget_helpers import open_widget, track_all_panel, wait_tracking

    popped = []
    monkeypatch.setattr(notification_manager, "receive_warning", lambda message, *rest: popped.append(str(message)))
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(w, diameter=(6, 200))  # wider than the 96 px frames: the detector says it cuts the range
    panel.track_button.click()
    wait_tracking(qtbot, w)
    qtbot.waitUntil(lambda: bool(popped), timeout=5_000)  # before: dropped, or popped in the command line's words
    assert any("cell diameter 6-200 px" in text and "(the Cell diameter boxes)" in text for text in popped), popped
    assert not any("--cell-diameter" in text or "cell_diameter" in text for text in popped), popped


@pytest.mark.gui
def test_a_channel_first_stack_turned_in_its_plane_gets_clicks_masks_and_tracks_on_its_pixels(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    from napari_sam2._image_state import out_of_plane_turn
    from widget_helpers import centre, open_widget, wait

    stack = np.stack([movie.image, movie.image[:, ::-1]])  # (C, T, Y, X): channel 0 holds the movie
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    image = viewer.add_image(stack, name="ctyx", scale=(1.0, 2.0, 0.5, 0.5), translate=(0, 0, 5, -3), rotate=30)
    w.channel_axis_combo.setCurrentText("axis 0 (2)")
    w.axis_spin.setValue(1)
    w.channel_combo.setCurrentText("channel 0")
    assert out_of_plane_turn(image) == ""
    c1 = centre(movie.labels[0], 1)
    points = w.points_layer
    points.add(np.array([points.world_to_data(image.data_to_world((0, 0, *c1)))]))  # a click where cell 1 is drawn
    wait(qtbot, w)
    viewer.dims.set_current_step(1, 0)
    w.forward_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()
    last = FRAMES - 1
    for channel in (0, 1):  # the masks lie on cell 1 at every channel shown
        assert label_under(w.labels_layer, image, (channel, last, *centre(movie.labels[last], 1))) == 1
        assert label_under(w.labels_layer, image, (channel, last, *centre(movie.labels[last], 2))) == 0
    tracks = w.add_tracks_layer()
    wait(qtbot, w)
    tracks = viewer.layers["SAM2 tracks [ctyx]"]
    for row in np.asarray(tracks.data):  # each point of the track on its image pixel (a mask's centre)
        t, y, x = row[-3:]
        assert np.allclose(tracks.data_to_world(row[1:])[-3:], image.data_to_world((0, t, y, x))[-3:])
        assert label_under(w.labels_layer, image, (0, int(t), int(round(y)), int(round(x)))) == 1
