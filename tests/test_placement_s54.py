"""The widget's layers on a moved or turned image, finished (review R2), driven as a person does (the demo model,
prompts added to the layers, buttons pressed, workers awaited): a dock reopened after the image was turned and moved
places the clicks, boxes and masklets layers it picks up on the image; a person's duplicate of the Add Tracks layer
keeps the person's placement; a 3-D rotation or a shear / affine that mixes the frame axis with the rows is refused
(clicks, boxes, Propagate, Add Tracks), saying what is supported, until the image is turned within its plane again."""

from __future__ import annotations

import numpy as np
import pytest

from _helpers import label_under, small_movie_fixture

FRAMES = 4
movie = small_movie_fixture(FRAMES, 11)


def _click_on_screen(widget, image, index) -> None:
    """A click where ``image``'s pixel ``index`` is drawn (napari's add mode maps a canvas click into the clicks
    layer's data coordinates so)."""
    points = widget.points_layer
    points.add(np.array([points.world_to_data(image.data_to_world(index))]))


@pytest.mark.gui
def test_a_dock_reopened_after_the_image_was_turned_and_moved_places_the_layers_it_picks_up(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    from widget_helpers import WIDGET, centre, open_widget, wait

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    image = viewer.layers["cells"]
    c1, c2 = centre(movie.labels[0], 1), centre(movie.labels[0], 2)
    w.points_layer.add(np.array([[0, *c1]]))
    wait(qtbot, w)
    viewer.window.remove_dock_widget(w)
    qtbot.wait(100)
    image.rotate = 30  # turned and moved while the dock is closed
    image.translate = (0.0, 40.0, 10.0)
    _, w2 = viewer.window.add_plugin_dock_widget(*WIDGET)
    w2.model_combo.setCurrentText("demo")
    w2.checkpoint_combo.setCurrentText("embedded (demo)")
    w2.size_spin.setValue(128)
    for layer in (w2.points_layer, w2.boxes_layer, w2.labels_layer):  # before: the old (identity) placement
        assert np.allclose(layer.rotate, image.rotate) and np.allclose(layer.translate, image.translate), layer.name
    w2.new_object_button.click()
    _click_on_screen(w2, image, (0, *c2))  # the person clicks cell 2 where it is drawn
    wait(qtbot, w2)
    status = w2.status.text()
    assert "outside the image were removed" not in status, status  # before: "... click(s) outside the image ..."
    assert np.allclose(np.asarray(w2.points_layer.data), [(0, *c1), (0, *c2)]), status
    under = [label_under(w2.labels_layer, image, (0, *c)) for c in (c1, c2)]
    assert under == [1, 2], status


@pytest.mark.gui
def test_a_person_s_duplicate_of_the_add_tracks_layer_keeps_its_own_placement(make_napari_viewer, tmp_path,
                                                                              monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    from napari.layers._layer_actions import _duplicate_layer

    from widget_helpers import click_and_propagate, open_widget, wait

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(w, qtbot, movie, (1,))
    w.tracks_button.click()
    wait(qtbot, w)
    tracks = viewer.layers["SAM2 tracks [cells]"]
    viewer.layers.selection.active = tracks
    _duplicate_layer(viewer.layers)  # napari's Duplicate Layer (it copies the metadata)
    copy = viewer.layers[-1]
    assert copy is not tracks and copy.__class__.__name__ == "Tracks"
    copy.translate = (0.0, 0.0, 200.0)  # the person moves the copy aside, and turns it
    copy.rotate = 10
    image = viewer.layers["cells"]
    image.scale = (3.0, 0.5, 0.5)
    image.rotate = 20
    qtbot.wait(100)
    assert np.allclose(copy.translate, (0, 0, 200)) and np.allclose(copy.scale, 1), (copy.translate, copy.scale)
    angle = np.degrees(np.arctan2(np.asarray(copy.rotate)[-1, -2], np.asarray(copy.rotate)[-1, -1]))
    assert np.isclose(abs(angle), 10), copy.rotate  # before: moved and turned onto the image (0, 0, 0), 20 degrees
    assert np.allclose(tracks.scale, image.scale) and np.allclose(tracks.rotate, image.rotate)  # ours follows
    point = np.asarray(tracks.data)[0, 1:]
    assert np.allclose(tracks.data_to_world(point), image.data_to_world(point))


def _rotation(axis_pair, degrees: float) -> np.ndarray:
    """A 3 x 3 rotation of ``degrees`` in the plane of two of the (T, Y, X) axes."""
    a, b = axis_pair
    turn = np.eye(3)
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    turn[a, a], turn[a, b], turn[b, a], turn[b, b] = c, -s, s, c
    return turn


@pytest.mark.gui
@pytest.mark.parametrize("transform", [
    {"rotate": (20, 15, 5)},  # a 3-D rotation of the stack
    {"rotate": _rotation((0, 1), 10)},  # turns the frame axis into the rows
    {"affine": np.array([[1, 0, 0, 0], [0.3, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float)},  # rows sheared by frame
], ids=["rotate_3d", "rotate_frame_rows", "affine_frame_rows"])
def test_a_turn_out_of_the_image_plane_is_refused_until_it_is_undone(make_napari_viewer, tmp_path, monkeypatch,
                                                                     qtbot, movie, transform):
    pytest.importorskip("napari")
    from widget_helpers import centre, open_widget, wait

    monkeypatch.setattr("napari_sam2._runs.show_error", lambda message: None)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    image = viewer.add_image(movie.image, name="stack", scale=(2.0, 0.5, 0.5))
    c1, c2 = centre(movie.labels[0], 1), centre(movie.labels[0], 2)
    w.points_layer.add(np.array([[0, *c1]]))
    wait(qtbot, w)
    assert w.labels_layer is not None and (np.asarray(w.labels_layer.data)[0] == 1).any(), w.status.text()
    for name, value in transform.items():
        setattr(image, name, value)
    qtbot.wait(100)
    said = w.status.text()
    assert said.startswith("Not supported:") and "within the image plane" in said, said  # said when turned
    w.forward_button.click()  # before: "Failed: start_frame must be ..." or a run from a frame nobody picked
    wait(qtbot, w)
    status = w.status.text()
    assert status.startswith("Not done: Not supported:") and "rows and columns" in status, status
    assert not (np.asarray(w.labels_layer.data)[1:] > 0).any()  # nothing propagated
    w.new_object_button.click()
    _click_on_screen(w, image, (0, *c2))
    wait(qtbot, w)
    status = w.status.text()
    assert "1 click(s) just added were removed" in status, status
    assert len(w.points_layer.data) == 1 and not (np.asarray(w.labels_layer.data) == 2).any(), status
    w.boxes_layer.add_rectangles(np.array([[0, 10, 10], [0, 10, 30], [0, 30, 30], [0, 30, 10]], float))
    wait(qtbot, w)
    assert len(w.boxes_layer.data) == 0 and "1 box(es) just added were removed" in w.status.text(), w.status.text()
    tracks = w.add_tracks_layer()
    assert tracks is None and "No Tracks layer was added" in w.status.text(), w.status.text()
    monkeypatch.setattr("napari_sam2._track_all_panel.show_error", lambda message: None)
    before = np.asarray(w.labels_layer.data).copy()
    w.track_all.track_button.click()  # Track all is refused the same way (before: it ran on misread frames)
    qtbot.wait(100)
    said = w.track_all.status.text()
    assert said.startswith("Failed: Not supported:") and "rows and columns" in said, said
    assert w.track_all.worker is None and np.array_equal(np.asarray(w.labels_layer.data), before)
    w.track_all.repropagate_button.click()  # and so is its Re-propagate (review R8)
    qtbot.wait(100)
    said = w.track_all.status.text()
    assert said.startswith("Failed: Not supported:"), said
    assert w.track_all.worker is None and np.array_equal(np.asarray(w.labels_layer.data), before)
    image.affine = np.eye(4)  # the person undoes it, and turns the image within its plane instead
    image.rotate = 30
    qtbot.wait(100)
    assert w.status.text().startswith("'stack' is turned only within its plane now"), w.status.text()
    _click_on_screen(w, image, (0, *c2))
    wait(qtbot, w)
    assert np.allclose(np.asarray(w.points_layer.data)[-1], (0, *c2)), w.status.text()
    viewer.dims.set_current_step(0, 0)  # propagate from frame 0 (the slider may have moved with the 3-D turn)
    w.forward_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()
    for obj in (1, 2):
        assert label_under(w.labels_layer, image, (FRAMES - 1, *centre(movie.labels[FRAMES - 1], obj))) == obj, obj


def test_only_turns_and_shears_within_the_image_plane_are_accepted():
    pytest.importorskip("napari")
    from napari.layers import Image

    from napari_sam2._image_state import out_of_plane_turn

    stack = np.zeros((2, 3, 8, 8))  # (T, C, Y, X)
    inside = [{"rotate": 30}, {"shear": [0, 0, 0, 0, 0, 0.4]}, {"scale": (5, 1, 0.5, 0.5), "translate": (1, 2, 3, 4)}]
    for keywords in inside:
        assert out_of_plane_turn(Image(stack, **keywords)) == "", keywords
    assert out_of_plane_turn(Image(np.zeros((8, 8)), rotate=30, shear=[0.3])) == ""  # a 2-D image turns in its plane
    assert out_of_plane_turn(Image(np.zeros((2, 8, 8, 3)), rgb=True, rotate=30)) == ""  # RGB: the colours are no axis
    channel_rows = Image(stack, shear=[0, 0, 0, 0.3, 0, 0])  # the channel axis (1) sheared into the rows (2)
    words = out_of_plane_turn(channel_rows)
    assert words.startswith("Not supported: ") and "axis 1 out of line" in words and "rows and columns" in words, words
    assert "flips its axis 0" in out_of_plane_turn(Image(stack, scale=(-1, 1, 1, 1)))
