"""An OME-TIFF's axes are read in a worker when its image is picked in the widget (tifffile finds every page of the
file: seconds for many thousands, the viewer frozen were they read on the GUI thread). Driven as a person does: the
file opened with ``viewer.open``, the image picked, a cell clicked at once, before the axes are known; the widget is
busy meanwhile, so the click is segmented once the file's channel axis is chosen, on the channel the model sees, not
on a wrong axis choice; a choice the person makes meanwhile wins over the file's."""

from __future__ import annotations

import numpy as np
import pytest

from _helpers import small_movie_fixture

FRAMES = 3
movie = small_movie_fixture(FRAMES, 29)


def _ome_tcyx(folder, movie):
    """``folder``/tcyx.ome.tif: an OME-TIFF (T, C, Y, X) float32, channel 0 the movie, channel 1 its mirror image."""
    import tifffile

    stack = np.stack([movie.image, movie.image[:, :, ::-1]], axis=1).astype(np.float32)
    path = folder / "tcyx.ome.tif"
    tifffile.imwrite(path, stack, ome=True, metadata={"axes": "TCYX"})
    return path


@pytest.mark.gui
def test_a_click_made_while_the_axes_are_read_is_segmented_on_the_file_s_channel(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    from widget_helpers import centre, open_widget, wait

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("other", movie.image))
    viewer.open(str(_ome_tcyx(tmp_path, movie)))  # napari's own reader: one (T, C, Y, X) layer
    name = viewer.layers[-1].name
    w.image_combo.setCurrentText("other")
    w.image_combo.setCurrentText(name)
    # before: the axes were read here, on the GUI thread, and the choice made at once
    assert w.status.text().startswith("Reading the axes"), w.status.text()
    assert w.busy() and not w.segment_button.isEnabled()
    row, col = centre(movie.labels[0], 1)
    w.points_layer.add(np.array([[0, 0, row, col]], float))  # clicked before the axes are known
    wait(qtbot, w)
    assert w.channel_axis_combo.currentText() == "axis 1 (2)", w.channel_axis_combo.currentText()
    assert "Channel axis: axis 1 (from the TIFF's axes TCYX)" in w.status.text() or "Segmented" in w.status.text()
    shown = np.asarray(w.labels_layer.data)
    assert shown.shape == (FRAMES, 1, 96, 96), shown.shape  # one mask plane over both channels, not one per channel
    mask, truth = shown[0, 0] == 1, movie.labels[0] == 1
    assert (mask & truth).sum() / max((mask | truth).sum(), 1) > 0.5


@pytest.mark.gui
def test_a_choice_made_while_the_axes_are_read_wins(make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    from widget_helpers import open_widget, wait

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("other", movie.image))
    viewer.open(str(_ome_tcyx(tmp_path, movie)))
    w.image_combo.setCurrentText("other")
    w.image_combo.setCurrentText(viewer.layers[-1].name)
    assert w.busy()  # before: the file's choice was made at once
    w.channel_axis_combo.setCurrentText("axis 0 (3)")  # the person's, before the file's axes are known
    wait(qtbot, w)
    assert w.channel_axis_combo.currentText() == "axis 0 (3)"
    assert not w.status.text().startswith("Reading the axes"), w.status.text()
