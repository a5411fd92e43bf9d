"""A stack whose channels lie after its rows and columns, (T, Y, X, C), not shown as RGB by napari (2-channel
fluorescence), segmented through the widget as a person does: the widget takes its last axis as the channel axis, as
it would a (T, C, Y, X) file's, the person rolls the viewer's axes so that rows and columns show, clicks a cell and
propagates; the masks lie on the cell in every frame and on every channel."""

from __future__ import annotations

import numpy as np
import pytest

from _helpers import small_movie_fixture

FRAMES = 3
movie = small_movie_fixture(FRAMES, 23)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.gui
def test_a_channels_last_stack_is_segmented_on_the_channel_chosen(make_napari_viewer, tmp_path, monkeypatch, qtbot,
                                                                   movie):
    pytest.importorskip("napari")
    from widget_helpers import centre, open_widget, wait

    # channel 0: the movie; channel 1: its mirror image (left-right), so the channel the model sees shows in the masks
    stack = np.stack([movie.image, movie.image[:, :, ::-1]], axis=-1).astype(np.float32)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("tyxc", stack))
    assert not viewer.layers["tyxc"].rgb
    w.image_combo.setCurrentText("tyxc")
    # before: the choices held only axes 0 and 1, and the widget segmented (X, C) planes as rows and columns
    assert w.channel_axis_combo.currentText() == "axis 3 (2)", w.channel_axis_combo.currentText()
    said = w.status.text()
    assert "Channel axis: axis 3 (2 channels after the rows and columns)" in said and "Roll dimensions" in said, said

    row, col = centre(movie.labels[0], 1)
    w.points_layer.add(np.array([[0, row, col, 0]], float))  # while the canvas shows columns and channels: refused
    assert not len(w.points_layer.data) and "the channel axis 3" in w.status.text(), w.status.text()
    viewer.dims.roll()  # the person presses Roll dimensions once: rows and columns on the canvas
    assert tuple(viewer.dims.displayed) == (1, 2)
    w.points_layer.add(np.array([[0, row, col, 0]], float))
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()
    shown = np.asarray(w.labels_layer.data)
    assert shown.shape == (FRAMES, 96, 96, 1), shown.shape
    for t in range(FRAMES):
        assert _iou(shown[t, ..., 0] == 1, movie.labels[t] == 1) > 0.5, t

    w.channel_combo.setCurrentText("channel 1")  # the mirror image: the same click now lies on the mirrored cell
    mirrored = movie.labels[:, :, ::-1]
    row, col = centre(mirrored[0], 2)
    w.new_object_button.click()
    w.points_layer.add(np.array([[0, row, col, 1]], float))
    wait(qtbot, w)
    plane = np.asarray(w.labels_layer.data)[0, ..., 0]
    assert _iou(plane == w.object_spin.value(), mirrored[0] == 2) > 0.5


@pytest.mark.gui
def test_a_channels_last_choice_made_by_the_person_is_kept(make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    from widget_helpers import WIDGET, open_widget

    stack = np.stack([movie.image, movie.image], axis=-1).astype(np.float32)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("tyxc", stack))
    w.image_combo.setCurrentText("tyxc")
    assert w.channel_axis_combo.currentText() == "axis 3 (2)"  # before: none, and the widget segmented X, C planes
    w.channel_axis_combo.setCurrentText("none (grey or RGB)")
    viewer.window.remove_dock_widget(w)
    qtbot.wait(50)
    _, again = viewer.window.add_plugin_dock_widget(*WIDGET)
    again.image_combo.setCurrentText("tyxc")
    assert again.channel_axis_combo.currentText() == "none (grey or RGB)"
