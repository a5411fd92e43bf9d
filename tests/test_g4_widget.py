"""The widget's follow-ups of review s55 (G4), driven as a person does (the demo model, a file opened with
``viewer.open``, prompts added to the layers, buttons pressed, workers awaited): a (T, C, Y, X) ImageJ TIFF opened in
napari gets its channel axis from the file's axes (as ``napari-sam2 track`` does), the person's own choice winning
afterwards; after a crop the widget's Undo says the steps were on the old data; the Tracks layers' names come from one
table; an image turned out of its plane during a propagation is said after the run's "Done" line."""

from __future__ import annotations

import numpy as np
import pytest

from _helpers import click_then_crop, label_under, small_movie_fixture, tcyx_file, track_all_then_tracks

FRAMES = 4
movie = small_movie_fixture(FRAMES, 17)


@pytest.mark.gui
def test_a_tcyx_tiff_opened_in_napari_is_segmented_per_channel_from_its_axes(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    from widget_helpers import centre, open_widget, wait

    path = tcyx_file(tmp_path, movie)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    viewer.open(str(path))  # napari's own reader: one (T, C, Y, X) layer
    image = viewer.layers["tcyx"]
    assert image.data.shape == (FRAMES, 2, 96, 96)
    w.image_combo.setCurrentText("tcyx")
    # before: "none (grey or RGB)", so each channel plane was segmented as a z slice
    assert w.channel_axis_combo.currentText() == "axis 1 (2)", w.channel_axis_combo.currentText()
    assert w.channel_combo.currentText() == "channel 0"
    assert "Channel axis: axis 1 (from the TIFF's axes TCYX)" in w.status.text(), w.status.text()
    viewer.dims.set_current_step(1, 0)
    w.points_layer.add(np.array([[0, 0, *centre(movie.labels[0], 1)]]))
    wait(qtbot, w)
    labels = np.asarray(w.labels_layer.data)
    assert labels.shape == (FRAMES, 1, 96, 96), labels.shape  # one mask per frame, drawn on every channel
    assert labels[0, 0][tuple(int(v) for v in centre(movie.labels[0], 1))] == 1
    said = w.status.text()  # the first run says it again (the model's "ready" line may have replaced the first)
    assert "Channel axis: axis 1 (from the TIFF's axes TCYX)" in said, said
    assert "If its planes are channels" not in w.status.text(), w.status.text()
    for channel in (0, 1):  # the mask is drawn where the cell is on each channel (before: on channel 0 only)
        assert label_under(w.labels_layer, image, (0, channel, *centre(movie.labels[0], 1)), half_up=True) == 1

    w.channel_axis_combo.setCurrentText("none (grey or RGB)")  # the person's choice wins afterwards
    viewer.add_image(movie.image, name="other")
    w.image_combo.setCurrentText("other")
    w.image_combo.setCurrentText("tcyx")
    assert w.channel_axis_combo.currentText() == "none (grey or RGB)"


@pytest.mark.gui
def test_after_a_crop_the_widget_s_undo_says_the_steps_were_on_the_old_data(cells_dock, qtbot, movie):
    pytest.importorskip("napari")
    from widget_helpers import wait

    viewer, w = cells_dock
    click_then_crop(viewer, w, qtbot, movie)
    w.undo_button.click()
    wait(qtbot, w)
    said = w.status.text()  # before: "Nothing to undo." alone
    assert said.startswith("Nothing to undo") and "old data" in said and \
        "'SAM2 masklets [cells] (old data)'" in said, said


@pytest.mark.gui
def test_the_tracks_layers_are_named_from_one_table(make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    from napari_sam2 import _tracks_layer
    from widget_helpers import open_widget

    monkeypatch.setitem(_tracks_layer.TRACKS_NAMES, "tracks", "Cell tracks")
    monkeypatch.setitem(_tracks_layer.TRACKS_NAMES, "lineage", "Cell lineage")
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    track_all_then_tracks(w, qtbot)
    names = {layer.name for layer in viewer.layers}
    assert {"Cell lineage [cells]", "Cell tracks [cells]"} <= names, names  # before: "SAM2 lineage [cells]", ...
    viewer.layers["cells"].name = "nuclei"  # and so they follow a rename
    names = {layer.name for layer in viewer.layers}
    assert {"Cell lineage [nuclei]", "Cell tracks [nuclei]"} <= names, names


@pytest.mark.gui
def test_a_turn_out_of_the_plane_during_a_propagation_is_said_after_the_run(
        make_napari_viewer, tmp_path, monkeypatch, qtbot):
    pytest.importorskip("napari")
    from widget_helpers import propagating, wait

    viewer, w, _ = propagating(make_napari_viewer, tmp_path, monkeypatch, qtbot, 8, 5)
    viewer.layers["cells"].rotate = (20, 15, 5)  # a 3-D turn while the run goes on
    wait(qtbot, w)
    said = w.status.text()  # before: the run's "Done. ..." line until the next press
    assert said.startswith("Not supported:") and "'cells'" in said, said
