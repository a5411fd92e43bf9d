"""Set-ups that several test modules share (beside :mod:`widget_helpers`, which opens the widget): a module's small
movie fixture, the label napari draws under an image's pixel, an ImageJ (T, C, Y, X) file of a movie, a click then a
crop, Track all then Add Tracks layer pressed in the widget, and a small labels movie of one cell dividing with its
lineage."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence, Tuple

import numpy as np


def small_movie_fixture(num_frames: int, seed: int) -> Any:
    """A pytest fixture named ``movie``, made once per test module: :func:`widget_helpers.small_movie` of
    ``num_frames`` frames and ``seed`` (tests that change its pixels change a copy). In a test module:
    ``movie = small_movie_fixture(FRAMES, 11)``."""
    import pytest

    @pytest.fixture(scope="module", name="movie")
    def movie() -> Any:
        from widget_helpers import small_movie

        return small_movie(num_frames, seed)

    return movie


def label_under(labels: Any, image: Any, index: Sequence[float], half_up: bool = False) -> int:
    """The label napari draws at the world position of ``image``'s pixel ``index`` (one coordinate an axis of the
    image), -1 where that position is off the labels layer ``labels``. The labels' data coordinates are rounded to the
    nearest pixel, halves to even (numpy's round) or, with ``half_up``, halves up."""
    world = np.asarray(image.data_to_world(index), float)
    data = np.asarray(labels.world_to_data(world), float)
    data = (np.floor(data + 0.5) if half_up else np.round(data)).astype(int)
    if np.any(data < 0) or np.any(data >= labels.data.shape):
        return -1
    return int(np.asarray(labels.data)[tuple(data)])


def tcyx_file(folder: Path, movie: Any) -> Path:
    """``folder``/tcyx.tif: an ImageJ hyperstack (T, C, Y, X) float32 of ``movie`` (``.image`` (T, Y, X)), channel 0 the
    movie, channel 1 its mirror image (left-right), axes "TCYX" in the file."""
    import tifffile

    stack = np.stack([movie.image, movie.image[:, :, ::-1]], axis=1).astype(np.float32)
    path = folder / "tcyx.tif"
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "TCYX"})
    return path


def click_then_crop(viewer: Any, widget: Any, qtbot: Any, movie: Any) -> None:
    """Cell 1 of ``movie`` clicked on frame 0 in ``widget`` (segmented, awaited), then the image "cells" cropped to
    rows and columns 5-89 (its masks set aside as "(old data)")."""
    from widget_helpers import click_cells

    click_cells(widget, qtbot, movie, (1,))
    viewer.layers["cells"].data = movie.image[:, 5:90, 5:90].copy()


def track_all_then_tracks(widget: Any, qtbot: Any, correction: bool = False) -> Any:
    """The widget's Track all panel (:func:`widget_helpers.track_all_panel`'s defaults) after Track all was pressed,
    then Add Tracks layer, each run awaited; with ``correction`` the panel's cell correction started after. Returns
    the panel."""
    from widget_helpers import track_all_panel, wait_tracking

    panel = track_all_panel(widget)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    widget.tracks_button.click()
    wait_tracking(qtbot, widget)
    if correction:
        panel.start_correction()
    return panel


def dividing_cell() -> Tuple[np.ndarray, Any]:
    """(labels (3, 16, 40) uint32, lineage): cell 1 (rows 4-11, columns 10-29) on frames 0-1 divides into 2 (columns
    10-18) and 3 (columns 21-29) on frame 2; the lineage says so (1 spans frames 0-1, 2 and 3 its children from 2)."""
    from sam2_model.tracking.lineage import Lineage

    labels = np.zeros((3, 16, 40), np.uint32)
    labels[:2, 4:12, 10:30] = 1
    labels[2, 4:12, 10:19], labels[2, 4:12, 21:30] = 2, 3
    lineage = Lineage()
    lineage.add(1, 0)
    lineage.set_span(1, 0, 1)
    lineage.add(2, 2, parent=1)
    lineage.add(3, 2, parent=1)
    return labels, lineage


def tz_stack_tracked_on_z1(make_napari_viewer: Any, tmp_path: Any, monkeypatch: Any,
                           qtbot: Any) -> Tuple[Any, Any, Any]:
    """(viewer, widget, movie): a (T=4, Z=2, Y, X) stack "tz" of :func:`widget_helpers.small_movie` (4, 5) (z=1 the
    movie, z=0 its frames reversed) in the widget, cell 1 clicked on t=0 of z=1 and Propagate ▶ run, both awaited; the
    sliders left on z=1, t=0."""
    from sam2_model.evaluation import click_point
    from widget_helpers import open_widget, small_movie, wait

    movie = small_movie(4, 5)
    stack = np.stack([movie.image[::-1], movie.image], axis=1)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("tz", stack))
    viewer.dims.set_current_step(1, 1)
    viewer.dims.set_current_step(0, 0)
    x, y = click_point(movie.labels[0] == 1)
    widget.points_layer.add(np.array([[0, 1, y, x]], float))
    wait(qtbot, widget)
    widget.forward_button.click()
    wait(qtbot, widget)
    return viewer, widget, movie


def correct_and_propagate(viewer: Any, widget: Any, qtbot: Any, movie: Any, frame: int, obj: int, cell: int) -> None:
    """The slider moved to ``frame``, object ``obj`` chosen, a click deep inside ``movie``'s cell ``cell`` there, then
    Propagate ▶, each awaited; its status says "Done"."""
    from widget_helpers import centre, wait

    viewer.dims.set_current_step(0, frame)
    widget.object_spin.setValue(obj)
    widget.points_layer.add(np.array([[frame, *centre(movie.labels[frame], cell)]]))
    wait(qtbot, widget)
    widget.forward_button.click()
    wait(qtbot, widget)
    assert widget.status.text().startswith("Done"), widget.status.text()
