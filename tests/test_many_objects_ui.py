"""Clicking many objects in the segmentation widget (explorer X1, findings 2, 7 and 8): every object id gets its own,
clearly different colour (the same in the masklets layer, the clicks, the boxes and the objects panel); the objects
panel selects and scrolls to the object being clicked; N on the clicks or boxes layer presses *New object*; Delete
moves the Object id off the deleted object."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")

from skimage.color import rgb2lab  # noqa: E402

from napari_sam2._colors import OBJECT_COLORMAP, object_colors  # noqa: E402

PINNED = 278632851240  # a checksum of the 255 colours (their order included): they never change by accident
PALETTE_SIZE = 255  # distinct colours before they repeat (id k and k + 255 share one)

# CIELAB ΔE76 of 2.3 is the smallest colour difference people notice; 10 or more is "another colour" at a glance.
# 100 colours of moderate lightness and clear chroma cannot all be much further apart than ~20 (the greedy palette
# reaches 17.1), so 15 is the floor: no two of the first 100 objects look alike. The old map (label_colormap(49))
# gave 0 (ids 6 and 40 identical, and every k and k + 49).
MIN_DELTA_E_100 = 15.0
MIN_RGB_100 = 0.08  # the same in sRGB (unit cube) distance: the old map's 0.0


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB of (N, 3) sRGB colours in [0, 1] (scikit-image's, not the plugin's own conversion)."""
    return rgb2lab(np.asarray(rgb, np.float64).reshape(-1, 1, 3)).reshape(-1, 3)


def _min_distance(points: np.ndarray) -> float:
    gaps = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(gaps, np.inf)
    return float(gaps.min())


def test_the_first_100_object_ids_have_clearly_different_colours() -> None:
    """Fault (X1 finding 2): ids k and k + 49 shared a colour and ids 6/40, 9/43, 10/44, 13/47 were identical, so
    neighbouring cells could not be told apart. Now ids 1-100 are at least 15 ΔE apart, and 1-255 all differ."""
    rgb = object_colors(range(1, 101))[:, :3]
    assert _min_distance(srgb_to_lab(rgb)) >= MIN_DELTA_E_100
    assert _min_distance(rgb) >= MIN_RGB_100
    many = object_colors(range(1, PALETTE_SIZE + 1))[:, :3]
    assert len(np.unique(np.round(many * 255).astype(int), axis=0)) == PALETTE_SIZE
    consecutive = np.linalg.norm(np.diff(srgb_to_lab(rgb), axis=0), axis=1)
    assert consecutive.min() >= MIN_DELTA_E_100  # objects clicked one after the other: clearly different


def test_an_objects_colour_is_a_fixed_function_of_its_id() -> None:
    """The masklets colormap and object_colors agree for every id (0 transparent, ids past the palette cycle), and
    the colours are pinned: a session saved today shows its objects in the same colours tomorrow."""
    ids = np.arange(0, 3 * PALETTE_SIZE + 7)
    assert np.array_equal(np.asarray(OBJECT_COLORMAP.map(ids), np.float32), object_colors(ids))
    assert not object_colors([0])[0].any()
    assert np.array_equal(object_colors([7]), object_colors([7 + PALETTE_SIZE]))
    assert (np.round(object_colors([1, 2, 3])[:, :3] * 255).astype(int).tolist()
            == [[255, 0, 0], [0, 255, 0], [60, 60, 255]])
    assert np.all(object_colors(range(1, 300))[:, 3] == 1.0)
    palette = np.round(object_colors(range(1, PALETTE_SIZE + 1))[:, :3] * 255).astype(np.int64)
    assert int((palette * np.array([1, 256, 65536]) * np.arange(1, PALETTE_SIZE + 1)[:, None]).sum()) == PINNED


# ---------------------------------------------------------------------------------------------- in the widget

from qtpy.QtCore import Qt  # noqa: E402

from widget_helpers import centre, open_widget, wait  # noqa: E402

NUM_CELLS = 28  # past ~25 rows the dock's table shows a scroll bar after it is refilled: the last row moved out


@pytest.fixture(scope="module")
def crowd():
    """Two 256 x 256 frames with NUM_CELLS small nuclei (no divisions, none entering or leaving)."""
    from sam2_model.synthetic import make_timelapse

    movie = make_timelapse(num_frames=2, shape=(256, 256), num_cells=NUM_CELLS, seed=1, divisions=False,
                           enter_leave=False, radius_fraction=0.035)
    cells = [int(c) for c in np.unique(movie.labels[0]) if c]
    assert len(cells) >= 26, cells
    return movie, cells


@pytest.fixture
def opened(make_napari_viewer, tmp_path, monkeypatch, crowd):
    movie, _ = crowd
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    w.window_combo.setCurrentText("off")
    viewer.dims.set_current_step(0, 0)
    viewer.window._qt_window.show()  # laid out, so "in view" means what a person sees
    return viewer, w


def press_n(viewer, qtbot) -> None:
    """N pressed on the canvas, as a person does (the viewer's key handling reaches the active layer's keymap)."""
    qtbot.keyClick(viewer.window._qt_viewer.canvas.native, Qt.Key.Key_N)


def row_in_view(table, obj_id: int) -> bool:
    index = [table.item(i, 0).text() for i in range(table.rowCount())].index(str(obj_id))
    return table.viewport().rect().intersects(table.visualItemRect(table.item(index, 0)))


@pytest.mark.gui
def test_n_on_the_clicks_or_boxes_layer_presses_new_object(opened, qtbot, crowd):
    """Fault (X1 finding 8): *New object* had no key, so clicking 80 cells took 80 trips to the dock. N on the
    clicks layer or the boxes layer (whichever is active) starts a new object; the button and its tooltip say so.
    napari binds no N on any layer type (Labels take M for a new label), so nothing of napari's is shadowed."""
    viewer, w = opened
    movie, cells = crowd
    w.points_layer.add(np.array([[0, *centre(movie.labels[0], cells[0])]]))
    wait(qtbot, w)
    assert viewer.layers.selection.active.name == w.points_layer.name  # (the widget holds napari proxies)
    press_n(viewer, qtbot)
    assert w.object_spin.value() == 2
    viewer.layers.selection.active = w.boxes_layer
    mode = w.boxes_layer.mode
    press_n(viewer, qtbot)
    assert w.object_spin.value() == 2  # nothing clicked for object 2 yet: still the new object
    w.points_layer.add(np.array([[0, *centre(movie.labels[0], cells[1])]]))
    wait(qtbot, w)
    viewer.layers.selection.active = w.boxes_layer
    press_n(viewer, qtbot)
    assert w.object_spin.value() == 3 and w.boxes_layer.mode == mode
    assert "(N)" in w.new_object_button.text() and "Key: N" in w.new_object_button.toolTip()
    viewer.window.remove_dock_widget(w)  # the dock's x: its keys leave the layers with it
    for layer in (w.points_layer, w.boxes_layer):
        viewer.layers.selection.active = layer
        press_n(viewer, qtbot)
    assert w.object_spin.value() == 3


@pytest.mark.gui
def test_n_starts_a_new_object_and_the_panel_follows_each_click(opened, qtbot, crowd):
    """Faults (X1 findings 7, 8): New object had no key (80 cells, 80 trips to the dock), and after each click no
    row of the objects panel was selected and it did not scroll to the object clicked. Now N on the clicks layer
    (and on the boxes layer) starts a new object, and the panel selects the clicked object's row and keeps it in
    view; selecting it does not move the Object id."""
    viewer, w = opened
    movie, cells = crowd
    table = w.objects.table
    for k, cell in enumerate(cells):
        if k:
            viewer.layers.selection.active = w.points_layer if k % 2 else w.boxes_layer
            press_n(viewer, qtbot)
            assert w.object_spin.value() == k + 1
            assert w.objects.selected_object() is None  # the new object has no row yet: nothing else is selected
            viewer.layers.selection.active = w.points_layer
        w.points_layer.add(np.array([[0, *centre(movie.labels[0], cell)]]))
        wait(qtbot, w)
        assert w.objects.selected_object() == k + 1 == w.object_spin.value(), w.status.text()
        assert row_in_view(table, k + 1)
    assert sorted(w.controller.obj_ids) == list(range(1, len(cells) + 1))
    assert not row_in_view(table, 1)  # the short table scrolled to follow

    w.object_spin.setValue(1)  # typed: the panel goes back to object 1
    assert w.objects.selected_object() == 1 and row_in_view(table, 1)
    w.objects.select_object(3)  # a person's selection still picks the object
    assert w.object_spin.value() == 3 and w.objects.selected_object() == 3
    w.points_layer.add(np.array([[0, *centre(movie.labels[0], cells[2])]]))  # a correction to object 3
    wait(qtbot, w)
    assert w.objects.selected_object() == 3 and w.object_spin.value() == 3


@pytest.mark.gui
def test_colours_agree_in_the_masklets_clicks_boxes_and_panel(opened, qtbot, crowd):
    """The masklets layer, the clicks, the boxes and the panel's swatches show each object in the same colour, and
    the objects clicked differ (the old map's ids 6 and 40 had one colour)."""
    viewer, w = opened
    movie, cells = crowd
    ids = [1, 2, 6, 40]
    for k, obj in enumerate(ids):
        w.object_spin.setValue(obj)
        w.points_layer.add(np.array([[0, *centre(movie.labels[0], cells[k])]]))
        wait(qtbot, w)
    w.boxes_layer.add_rectangles(np.array([[0, 2, 2], [0, 2, 12], [0, 12, 12], [0, 12, 2]], float))
    wait(qtbot, w)
    table = w.objects.table
    swatches = {int(table.item(i, 0).text()): table.item(i, 0).background().color().getRgbF()
                for i in range(table.rowCount())}
    layer = w.labels_layer.colormap.map(np.array(ids))
    clicks = {int(obj): color for obj, color in zip(w.points_layer.features["obj_id"], w.points_layer.face_color)}
    box_id = int(w.boxes_layer.features["obj_id"].iloc[0])
    for obj, in_layer in zip(ids, layer):
        expected = object_colors([obj])[0]
        assert np.allclose(in_layer, expected)
        assert np.allclose(swatches[obj], expected, atol=1 / 255)
        assert np.allclose(clicks[obj], expected)
    assert box_id == 40 and np.allclose(w.boxes_layer.edge_color[0], object_colors([40])[0])
    assert _min_distance(np.asarray(layer)[:, :3]) > 0.3


@pytest.mark.gui
def test_delete_moves_the_object_id_to_a_new_object(opened, qtbot, crowd):
    """Fault (X1 finding 8): after *Delete object* the Object id stayed on the deleted id, so the next click made
    the deleted object again. Now the Object id moves above every id (the deleted one included, free for Undo) and
    the status says so; the next click is a new object, and Undo still brings the deleted one back."""
    viewer, w = opened
    movie, cells = crowd
    for k in range(3):
        if k:
            w.new_object_button.click()
        w.points_layer.add(np.array([[0, *centre(movie.labels[0], cells[k])]]))
        wait(qtbot, w)
    w.objects.select_object(3)  # the last one: a fresh id must not reuse it
    w.objects.delete_button.click()
    wait(qtbot, w)
    assert sorted(w.controller.obj_ids) == [1, 2]
    assert w.object_spin.value() == 4, w.status.text()
    assert "the next click starts object 4" in w.status.text()
    assert w.objects.selected_object() is None
    w.points_layer.add(np.array([[0, *centre(movie.labels[0], cells[3])]]))
    wait(qtbot, w)
    assert sorted(w.controller.obj_ids) == [1, 2, 4]
    assert (np.asarray(w.labels_layer.data[0])[movie.labels[0] == cells[2]] != 3).all()
    for _ in range(2):  # the click on object 4, then the deletion
        w.undo_button.click()
        wait(qtbot, w)
    assert sorted(w.controller.obj_ids) == [1, 2, 3], w.status.text()


@pytest.mark.gui
def test_hiding_an_object_leaves_the_other_labels_of_the_layer_drawn(opened, qtbot, crowd):
    """Fault: *Hide / show* swapped the masklets colormap for a list of the widget's objects, so every other label of
    the layer (Track all's tracks share it; a brush stroke with a new id) turned transparent while any object was
    hidden. Now only the hidden object goes; the others keep their colours, and Show brings the object back."""
    viewer, w = opened
    movie, cells = crowd
    for k in range(2):
        if k:
            w.new_object_button.click()
        w.points_layer.add(np.array([[0, *centre(movie.labels[0], cells[k])]]))
        wait(qtbot, w)
    w.labels_layer.paint((1, 3, 3), 9, refresh=True)  # a label that is not a widget object (as a track's)
    w.objects.select_object(2)
    w.objects.hide_button.click()
    assert w.labels_layer.get_color(2)[3] == 0
    assert np.allclose(w.labels_layer.get_color(1), object_colors([1])[0])
    assert np.allclose(w.labels_layer.get_color(9), object_colors([9])[0])
    w.objects.select_object(2)
    w.objects.hide_button.click()
    assert np.allclose(w.labels_layer.get_color(2), object_colors([2])[0])
