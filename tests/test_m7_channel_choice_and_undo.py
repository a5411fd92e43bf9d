"""The widget's mends after review R3 (M7), driven as a person does (a file opened with ``viewer.open``, the panel's
combo boxes chosen, the dock closed and opened again, layers renamed and deleted, Undo pressed): on an ImageJ TIFF
whose axes name its channels (TCYX) the status line follows the person's channel choice, and that choice is kept for
the image when the dock is closed and opened again; after a crop the widget's Undo names only the '(old data)' layers
still in the viewer, under their names now."""

from __future__ import annotations

import pytest

from _helpers import click_then_crop, small_movie_fixture, tcyx_file

FRAMES = 3
FILE_WORDS = "Channel axis: axis 1 (from the TIFF's axes TCYX)"
movie = small_movie_fixture(FRAMES, 17)


@pytest.mark.gui
def test_the_status_follows_the_channel_choice_and_a_reopened_dock_keeps_it(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    from widget_helpers import WIDGET, open_widget

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    viewer.open(str(tcyx_file(tmp_path, movie)))
    w.image_combo.setCurrentText("tcyx")
    assert w.channel_axis_combo.currentText() == "axis 1 (2)"
    assert FILE_WORDS in w.status.text(), w.status.text()

    w.channel_combo.setCurrentText("channel 1")  # the line names the channel the model sees now
    said = w.status.text()
    assert FILE_WORDS in said and "the model sees channel 1" in said and "channel 0" not in said, said

    w.channel_axis_combo.setCurrentText("none (grey or RGB)")
    said = w.status.text()  # before: still "Channel axis: axis 1 (from the TIFF's axes TCYX): the model sees ..."
    assert FILE_WORDS not in said and "the model sees" not in said, said
    assert "Channel axis: none, as you chose (the TIFF's axes TCYX name axis 1 as channels)" in said, said

    viewer.window.remove_dock_widget(w)  # closed before any run, and opened again
    qtbot.wait(50)
    _, again = viewer.window.add_plugin_dock_widget(*WIDGET)
    again.image_combo.setCurrentText("tcyx")
    # before: the file's "axis 1 (2)" again, the person's "none" dropped
    assert again.channel_axis_combo.currentText() == "none (grey or RGB)", again.channel_axis_combo.currentText()
    said = again.status.text()
    assert "Channel axis: none, as you chose" in said and FILE_WORDS not in said, said

    again.channel_axis_combo.setCurrentText("axis 1 (2)")  # back to the file's: said as the file's again
    assert FILE_WORDS in again.status.text() and "channel 0" in again.status.text(), again.status.text()


@pytest.mark.gui
def test_undo_after_a_crop_names_only_the_old_data_layers_still_there(cells_dock, qtbot, movie):
    pytest.importorskip("napari")
    from widget_helpers import wait

    viewer, w = cells_dock
    click_then_crop(viewer, w, qtbot, movie)
    old = viewer.layers["SAM2 masklets [cells] (old data)"]
    old.name = "masks before the crop"  # renamed by the person: named as it is now
    w.undo_button.click()
    wait(qtbot, w)
    said = w.status.text()
    assert "kept in 'masks before the crop'" in said and "(old data)'" not in said, said

    viewer.layers.remove(old)
    w.undo_button.click()
    wait(qtbot, w)
    said = w.status.text()  # before: "... kept in 'SAM2 masklets [cells] (old data)'", a layer no longer there
    assert said.startswith("Nothing to undo") and "kept in" not in said and "masks before the crop" not in said, said
    assert "deleted since" in said, said
