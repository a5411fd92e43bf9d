"""The widget's mends after review R2 of s55 (M3), driven as a person does (the demo model, prompts added to the
layers, buttons pressed, workers awaited): after a crop, the Add Tracks layer and the correction clicks are set aside
as "(old data)" beside the masks and lineage (they no longer follow the image's scale or name) and the crop's status
line names them; a crop during a Track all run sets the previous run's lineage aside and takes back what the stopped
run wrote into the old masks; an image turned out of its plane pops its notification once, however often it is
picked; an image renamed while the dock was closed gets its clicks, boxes and masklets back when the dock reopens."""

from __future__ import annotations

import numpy as np
import pytest

from _helpers import small_movie_fixture, track_all_then_tracks
from napari_sam2._image_state import ROLE_KEY


movie = small_movie_fixture(4, 11)


def _names(viewer) -> set:
    return {layer.name for layer in viewer.layers}


@pytest.mark.gui
def test_a_crop_sets_the_add_tracks_and_correction_layers_aside(cells_dock, qtbot, movie):
    pytest.importorskip("napari")
    viewer, w = cells_dock
    track_all_then_tracks(w, qtbot, correction=True)
    image = viewer.layers["cells"]
    image.data = movie.image[:, 10:80, 5:90].copy()  # a crop
    said = w.status.text()
    for name in ("SAM2 masklets [cells] (old data)", "SAM2 lineage [cells] (old data)",
                 "SAM2 tracks [cells] (old data)", "SAM2 cell fix [cells] (old data)"):
        assert f"'{name}'" in said, said  # before: the Add Tracks and correction layers were not named
        assert ROLE_KEY not in viewer.layers[name].metadata, name  # no longer the image's
    image.scale = (1.0, 2.0, 2.0)
    qtbot.wait(50)
    assert list(viewer.layers["SAM2 tracks [cells] (old data)"].scale) == [1.0, 1.0, 1.0]  # before: followed (2, 2)
    image.name = "nuclei"
    names = _names(viewer)
    assert {"SAM2 tracks [cells] (old data)", "SAM2 cell fix [cells] (old data)"} <= names, names
    assert not any("[nuclei]" in name and ("tracks" in name or "fix" in name) for name in names), names


@pytest.mark.gui
def test_a_crop_during_a_track_all_run_sets_the_previous_lineage_aside(make_napari_viewer, tmp_path, monkeypatch,
                                                                       qtbot, movie):
    pytest.importorskip("napari")
    from widget_helpers import open_widget, track_all_panel, wait_tracking

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(w)
    panel.track_button.click()
    wait_tracking(qtbot, w)
    lineage, masklets = viewer.layers["SAM2 lineage [cells]"], viewer.layers["SAM2 masklets [cells]"]
    tracks, masks = np.asarray(lineage.data).copy(), np.asarray(masklets.data).copy()
    image = viewer.layers["cells"]
    cropped = []

    def crop(step) -> None:  # the image cropped while the second run goes on (once it wrote a frame)
        if not cropped and step[0] == "frame":
            cropped.append(step)
            image.data = movie.image[:, 10:80, 5:90].copy()

    panel.track_button.click()
    qtbot.waitUntil(lambda: panel.worker is not None, timeout=60_000)
    panel.worker.yielded.connect(crop)
    wait_tracking(qtbot, w)
    qtbot.wait(300)  # (a Tracks layer derived after the run would land now)
    assert cropped
    names = _names(viewer)
    assert "SAM2 lineage [cells] (old data)" in names, (names, panel.status.text())  # before: the lineage was deleted
    assert "SAM2 lineage [cells]" not in names, names
    assert lineage.name == "SAM2 lineage [cells] (old data)" and ROLE_KEY not in lineage.metadata
    assert np.array_equal(np.asarray(lineage.data), tracks)  # the previous run's tracks
    assert np.array_equal(np.asarray(masklets.data), masks), panel.status.text()  # what the stopped run wrote: back
    said = panel.status.text()
    assert said.startswith("Stopped: the image's data was replaced.") and "was taken back" in said, said
    print(said)
    image.scale = (1.0, 2.0, 2.0)
    qtbot.wait(50)
    assert list(lineage.scale) == [1.0, 1.0, 1.0]  # it no longer follows the image


@pytest.mark.gui
def test_an_image_turned_out_of_its_plane_pops_up_once_however_often_it_is_picked(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    from napari.utils.notifications import notification_manager
    from widget_helpers import open_widget

    popped = []
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("a", movie.image), ("b", movie.image.copy()))
    w.image_combo.setCurrentText("a")
    viewer.layers["b"].rotate = (20, 15, 5)  # a 3-D turn of the image not segmented now
    qtbot.wait(20)

    def note(event) -> None:
        if "Not supported" in str(event.message):
            popped.append(event.message)

    notification_manager.notification_ready.connect(note)
    try:
        for _ in range(3):
            w.image_combo.setCurrentText("b")
            assert w.status.text().startswith("Not supported:") and "'b'" in w.status.text(), w.status.text()
            w.image_combo.setCurrentText("a")
            assert w.status.text().startswith("Segmenting 'a'"), w.status.text()
        qtbot.wait(20)
        assert len(popped) == 1, popped  # before: one pop-up per pick (3)
        viewer.layers["b"].rotate = (20, 15, 30)  # another turn: said again
        w.image_combo.setCurrentText("b")
        qtbot.wait(20)
        assert len(popped) == 2, popped
    finally:
        notification_manager.notification_ready.disconnect(note)


@pytest.mark.gui
def test_an_image_renamed_while_the_dock_was_closed_keeps_its_clicks(make_napari_viewer, tmp_path, monkeypatch, qtbot,
                                                                   movie):
    pytest.importorskip("napari")
    from widget_helpers import WIDGET, click_cell, open_widget, wait

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_cell(w.points_layer, movie, 1)
    wait(qtbot, w)
    clicks = viewer.layers["SAM2 clicks [cells]"]
    viewer.window.remove_dock_widget(w)
    qtbot.wait(50)
    viewer.layers["cells"].name = "nuclei"  # while the dock is closed
    _, w2 = viewer.window.add_plugin_dock_widget(*WIDGET)
    w2.image_combo.setCurrentText("nuclei")
    qtbot.wait(50)
    names = _names(viewer)
    assert not any("[cells]" in name for name in names), names  # before: left as they were, beside new empty ones
    assert {"SAM2 clicks [nuclei]", "SAM2 boxes [nuclei]", "SAM2 masklets [nuclei]"} <= names, names
    assert w2.points_layer is not None and w2.points_layer.unique_id == clicks.unique_id
    assert len(w2.points_layer.data) == 1
