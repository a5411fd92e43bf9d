"""A click on a large 2-D image redraws only the box of the masklets layer it changed (G4, s51).

napari redraws a uint32 Labels layer by casting the whole plane shown to its texture dtype: 0.2-1 s per redraw on a
3000 x 4000 image, several times per click, all on the GUI thread. These tests count those whole-plane casts per click
(a spy that calls through) in a shown viewer, and check that what napari draws matches the labels after clicks,
hiding an object and Undo."""

from __future__ import annotations

from typing import Any, List

import numpy as np
import pytest

from widget_helpers import open_widget, wait

SIDE = 768
CENTRES = [(150, 160), (600, 620), (200, 580)]


def _discs() -> np.ndarray:
    """(SIDE, SIDE) uint16: bright discs (radius 22 px) on a dim, noisy background."""
    rng = np.random.default_rng(4)
    rows, cols = np.mgrid[:SIDE, :SIDE]
    image = rng.normal(300, 20, (SIDE, SIDE))
    for r, c in CENTRES:
        image[(rows - r) ** 2 + (cols - c) ** 2 <= 22 ** 2] += 2500
    return image.clip(0, 65535).astype(np.uint16)


def _drawn_matches(labels: Any) -> bool:
    """Whether the texture napari holds for the Labels layer is the cast of its data (what it would draw whole)."""
    labels = getattr(labels, "__wrapped__", labels)  # napari's public-only proxy, as the widget's layers are
    return bool(np.array_equal(labels._slice.image.view, labels.colormap._data_to_texture(np.asarray(labels.data))))


@pytest.fixture
def whole_casts(monkeypatch: Any) -> List[int]:
    """[n]: the number of casts of a whole (SIDE, SIDE) labels plane to its texture since the last reset."""
    import napari.utils.colormaps.colormap as colormap

    count = [0]
    original = colormap._cast_labels_data_to_texture_dtype_auto

    def spy(data: Any, cmap: Any) -> Any:
        if np.size(data) >= SIDE * SIDE:
            count[0] += 1
        return original(data, cmap)

    monkeypatch.setattr(colormap, "_cast_labels_data_to_texture_dtype_auto", spy)
    return count


def test_later_clicks_redraw_only_the_box_they_changed(make_napari_viewer: Any, tmp_path: Any, monkeypatch: Any,
                                                        qtbot: Any, whole_casts: List[int]) -> None:
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("discs", _discs()), size=128)
    widget.window_combo.setCurrentText("off")  # whole frames: the test is about drawing, not object windows
    viewer.window.show()  # napari uploads textures when it draws: a hidden canvas never does
    widget.image_combo.setCurrentText("discs")
    qtbot.wait(300)
    casts = []
    for k, (r, c) in enumerate(CENTRES):
        if k:
            widget.new_object_button.click()
        qtbot.wait(100)
        whole_casts[0] = 0
        widget.points_layer.add(np.array([[r, c]], float))
        wait(qtbot, widget)
        qtbot.wait(100)
        casts.append(whole_casts[0])
        labels = widget._state.labels
        assert labels.data[r, c] == k + 1, f"click {k} on object {k + 1} gave no mask there"
        assert _drawn_matches(labels), f"after click {k}, napari draws other labels than the layer holds"
    # the first click adds the layer (napari casts it whole as it sets it up); later clicks recast only their box
    # (before: 2 whole casts each, the step's redraw and the run's end)
    assert casts[1:] == [0, 0], f"whole-plane casts per click: {casts}"  # (the checks above cast after counting)

    widget._on_hide_toggled(2)  # hidden: its colour is transparent (napari redraws whole for the new colormap)
    qtbot.wait(100)
    assert _drawn_matches(labels) and labels.get_color(2)[3] == 0

    whole_casts[0] = 0
    widget.undo_button.click()  # the third object goes: only its box is redrawn (object 2 stays hidden: the colormap
    wait(qtbot, widget)  # is not set again, which would redraw the whole plane)
    qtbot.wait(100)
    assert whole_casts[0] == 0, f"Undo recast the whole plane {whole_casts[0]} time(s)"
    assert not (labels.data == 3).any() and labels.get_color(2)[3] == 0
    assert _drawn_matches(labels), "after Undo, napari draws the undone object still"
    widget._on_hide_toggled(2)  # shown again
    assert labels.get_color(2)[3] > 0 and _drawn_matches(labels)

    labels.paint((400, 100), 9)  # a brush stroke (napari draws it; the runs' journals do not see it)
    labels.undo()  # napari's own Undo of the stroke: no paint event
    assert _drawn_matches(labels)
    r, c = CENTRES[2]
    widget.points_layer.add(np.array([[r, c]], float))  # the third object again
    wait(qtbot, widget)
    qtbot.wait(100)
    assert labels.data[r, c] > 0 and not (labels.data == 9).any()
    assert _drawn_matches(labels), "after a brush stroke, its Undo and a click, napari draws other labels"


def test_a_write_landing_while_napari_draws_a_plane_whole_stays_to_be_drawn():
    """The plane's signature was taken after napari's full redraw: a worker write landing between napari's read and
    the signature was seen as "the same plane again" and never drawn (review). It is taken before the draw now."""
    import numpy as np

    from napari_sam2._labels_redraw import FULL, PlaneChanges
    from napari_sam2.labels_writer import tell_written

    labels = np.zeros((2, 64, 64), np.uint32)
    changes = PlaneChanges(labels)
    index = (0, slice(None), slice(None))
    assert changes.take(index) is FULL  # never drawn: napari draws it whole
    assert changes.before_whole_draw(index, labels)
    labels[0, 10:20, 10:20] = 5  # the worker writes while napari reads the plane
    changes.drawn_whole(index)
    tell_written(labels, index, labels[0])  # then its watcher runs
    assert changes.take(index) == (10, 20, 10, 20)
