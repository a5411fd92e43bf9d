"""The Track all panel's Divisions on a volume's z slices: off by default where the image's frame axis is z (its unit a
length, or a file that says ZYX), said on the checkbox; a tick the person gives it holds for that image; the saved
setting for time-lapses is neither overwritten by the automatic choice nor by that tick, and comes back on a
time-lapse. Before, the checkbox applied the time-lapse setting to z-stacks (the command line, the console and batch
runs already turned divisions off through z).
"""

from __future__ import annotations

from typing import Any, List

import pytest
import tifffile

from napari_sam2 import track_all as track_all_module
from napari_sam2.settings import load_settings
from widget_helpers import open_widget, small_movie, track_all_panel, wait_tracking

TIMELAPSE = "Divisions (split a track when its cell divides)"


def saved_divisions() -> Any:
    return load_settings().get("track_all", {}).get("divisions")


def show(widget: Any, qtbot: Any, name: str, divisions: bool) -> None:
    """Pick image ``name`` in the widget, as a person does, until the panel's Divisions box says ``divisions`` and
    whether the frames are z slices (a volume's names say "volume")."""
    check = widget.track_all.divisions_check
    widget.image_combo.setCurrentText(name)
    qtbot.waitUntil(lambda: check.isChecked() == divisions and (check.text() != TIMELAPSE) == ("volume" in name),
                    timeout=5_000)


@pytest.fixture
def runs(monkeypatch) -> List[Any]:
    """The options of every Track all run from now on (the real tracking runs; only its options are noted)."""
    seen: List[Any] = []
    track = track_all_module.TrackAll.track

    def noting(self, model, frames, start_frame=0, options=None, reserved=()):
        seen.append(options)
        return track(self, model, frames, start_frame, options, reserved)

    monkeypatch.setattr(track_all_module.TrackAll, "track", noting)
    return seen


def test_divisions_are_off_through_z_unless_ticked(make_napari_viewer, qtbot, tmp_path, monkeypatch, runs):
    movie = small_movie(4, 11)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    viewer.add_image(small_movie(4, 3).image, name="volume", scale=(2.0, 0.5, 0.5), units=("um", "um", "um"))
    show(widget, qtbot, "cells", True)
    panel = track_all_panel(widget, diameter=(6, 24), divisions=True)  # the person's setting for time-lapses
    assert saved_divisions() is True and panel.divisions_check.text() == TIMELAPSE

    show(widget, qtbot, "volume", False)  # the frames are z: off, and the box says why
    check = panel.divisions_check
    assert "z slices" in check.text() and "micrometer" in check.toolTip(), (check.text(), check.toolTip())
    panel.redetect_spin.setValue(3)  # another option saved meanwhile keeps the time-lapse Divisions
    assert saved_divisions() is True
    viewer.dims.set_current_step(0, 0)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert runs and runs[-1].divisions is False, runs
    assert panel.status.text().startswith("Done"), panel.status.text()

    show(widget, qtbot, "cells", True)  # a time-lapse again: its setting back
    assert check.text() == TIMELAPSE
    check.setChecked(False)  # the person turns them off for time-lapses ...
    show(widget, qtbot, "volume", False)
    check.setChecked(True)  # ... and on for this volume: its tick holds, the time-lapse setting stays off
    assert panel.options().divisions is True and saved_divisions() is False
    show(widget, qtbot, "cells", False)
    assert saved_divisions() is False


def test_a_zyx_tiff_opened_with_file_open_gets_divisions_off(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """napari's File > Open gives the layer no units: the file's ZYX axes say the frames are z."""
    volume = tmp_path / "volume.tif"
    tifffile.imwrite(volume, small_movie(4, 3).image, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "ZYX", "unit": "um", "spacing": 2.0})
    timelapse = tmp_path / "timelapse.tif"
    tifffile.imwrite(timelapse, small_movie(4, 11).image, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TYX", "unit": "um", "finterval": 60.0})
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    viewer.open(str(timelapse), plugin="napari")
    viewer.open(str(volume), plugin="napari")
    widget.track_all.divisions_check.setChecked(True)
    show(widget, qtbot, "timelapse", True)
    show(widget, qtbot, "volume", False)
    assert "volume.tif say so" in widget.track_all.divisions_check.toolTip()
    assert widget.track_all.options().divisions is False


def test_track_cells_with_a_viewer_turns_divisions_off_through_z(make_napari_viewer, qtbot, tmp_path, monkeypatch,
                                                                  runs):
    """``track_cells(viewer)`` with divisions left unsaid: off on a volume shown in the widget, said in a warning, as
    without a viewer (before, the viewer path always looked for divisions); a time-lapse keeps them; True is kept."""
    import napari_sam2

    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", small_movie(3, 11).image))
    viewer.add_image(small_movie(3, 3).image, name="volume", scale=(2.0, 0.5, 0.5), units=("um", "um", "um"))
    with pytest.warns(UserWarning, match="divisions off: the frames are z slices .its frame axis is in micrometer"):
        napari_sam2.track_cells(viewer, image="volume", cell_diameter=(6, 24))
    assert runs[-1].divisions is False
    napari_sam2.track_cells(viewer, image="volume", cell_diameter=(6, 24), divisions=True)
    assert runs[-1].divisions is True
    napari_sam2.track_cells(viewer, image="cells", cell_diameter=(6, 24))
    assert runs[-1].divisions is True
