"""An image opened with napari's own File > Open (its built-in reader: scale 1, units "pixel") of an ImageJ TIFF or
OME-TIFF that records its pixel size and frame interval: the widget's exports carry the file's calibration, said once
in a notification; the layer's scale on screen stays 1. Before, they were in pixels and frames although the file said
0.3 um and 5 min. A layer with a scale of its own keeps it; a file whose axes are not the layer's gives nothing.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, List

import numpy as np
import pytest
import tifffile

from napari_sam2.file_calibration import read_calibration
from napari_sam2.layout import StackLayout
from widget_helpers import click_and_propagate, open_widget, small_movie, wait


def imagej_movie(path: Path, image: np.ndarray, axes: str = "TYX") -> Path:
    """``image`` as an ImageJ TIFF of pixel size 0.3 um and frame interval 5 min (slice spacing 2 um for ZYX)."""
    metadata = {"axes": axes, "unit": "um", "finterval": 5.0, "tunit": "min", "spacing": 2.0}
    tifffile.imwrite(path, image, imagej=True, resolution=(1 / 0.3, 1 / 0.3), metadata=metadata)
    return path


def notifications(monkeypatch: Any) -> List[str]:
    """The texts of the notifications the widget's runs show from now on."""
    said: List[str] = []
    monkeypatch.setattr("napari_sam2._runs.show_info", said.append)
    return said


def export_and_wait(widget: Any, qtbot: Any, what: str, path: Path) -> Path:
    """What the Export labels / Export table buttons do once the file is chosen, waited on."""
    assert widget.export_in_worker(what, str(path)) is not None, widget.status.text()
    wait(qtbot, widget)
    assert path.exists(), widget.status.text()
    return path


def test_file_open_of_a_calibrated_imagej_tiff_exports_calibrated(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    movie = small_movie(3, 5)
    path = imagej_movie(tmp_path / "cells.tif", movie.image)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    said = notifications(monkeypatch)
    (layer,) = viewer.open(str(path), plugin="napari")  # File > Open, napari's built-in reader
    assert tuple(layer.scale) == (1.0, 1.0, 1.0) and {str(u) for u in layer.units} == {"pixel"}
    widget.image_combo.setCurrentText(layer.name)
    click_and_propagate(widget, qtbot, movie, cells=(1,))

    labels = export_and_wait(widget, qtbot, "labels", tmp_path / "labels.tif")
    back = read_calibration(labels, 0, (1, 2))
    assert back is not None, "the labels TIFF was written uncalibrated"
    assert (back.pixel_size, back.length_unit, back.frame_interval, back.time_unit) == \
        (pytest.approx((0.3, 0.3)), "micrometer", 300.0, "second")  # an ImageJ labels TIFF's interval is in seconds
    with open(export_and_wait(widget, qtbot, "table", tmp_path / "table.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {(r["time_unit"], r["length_unit"]) for r in rows} == {("minute", "micrometer")}
    row = next(r for r in rows if r["frame"] == "2")
    assert float(row["time"]) == pytest.approx(10.0)
    assert float(row["area_scaled"]) == pytest.approx(float(row["area"]) * 0.09)
    # said once, with the sizes and the file; the layer on screen is as napari made it
    assert len(said) == 1 and "pixel size 0.3 µm and frame interval 5 min" in said[0] and str(path) in said[0], said
    assert tuple(layer.scale) == (1.0, 1.0, 1.0)


def test_a_layer_with_its_own_scale_keeps_it(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """The layer wins: its scale and units, not the file's, calibrate the exports (and nothing is said)."""
    movie = small_movie(3, 5)
    path = imagej_movie(tmp_path / "cells.tif", movie.image)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    said = notifications(monkeypatch)
    (layer,) = viewer.open(str(path), plugin="napari", scale=(60.0, 0.5, 0.5), units=("s", "um", "um"))
    widget.image_combo.setCurrentText(layer.name)
    click_and_propagate(widget, qtbot, movie, cells=(1,))
    calibration = widget.calibration()
    assert (calibration.pixel_size, calibration.frame_interval) == ((0.5, 0.5), 60.0)
    assert not said


def test_the_files_axes_are_matched_to_the_layers(tmp_path):
    """A z-stack's frames get the slice spacing; an OME-TIFF's TimeIncrement is read; frames along an axis that is
    neither T nor Z stay frames (the pixel size kept); a layer not of the file's shape or axes gets nothing."""
    from napari_sam2.file_calibration import source_calibration

    image = np.zeros((3, 2, 16, 20), np.uint8)
    stack = imagej_movie(tmp_path / "z.tif", image[:, 0], axes="ZYX")
    through_z = source_calibration(stack, (3, 16, 20), StackLayout(3, 0))
    assert through_z.frames_through_z and (through_z.frame_interval, through_z.time_unit) == (2.0, "micrometer")
    ome = tmp_path / "t.ome.tif"
    tifffile.imwrite(ome, image[:, 0], ome=True, metadata={"axes": "TYX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3,
                                                           "TimeIncrement": 5, "TimeIncrementUnit": "min"})
    found = source_calibration(ome, (3, 16, 20), StackLayout(3, 0))
    assert (found.pixel_size, found.frame_interval, found.time_unit) == ((0.3, 0.3), 5.0, "minute")
    tc = imagej_movie(tmp_path / "tc.tif", image, axes="TCYX")
    along_c = source_calibration(tc, (3, 2, 16, 20), StackLayout(4, 1, fixed=((0, 0),)))
    assert (along_c.pixel_size, along_c.frame_interval, along_c.time_unit) == ((0.3, 0.3), 1.0, "frame")
    along_t = source_calibration(tc, (3, 2, 16, 20), StackLayout(4, 0, fixed=((1, 0),)))
    assert (along_t.frame_interval, along_t.time_unit) == (5.0, "minute")
    assert source_calibration(tc, (2, 3, 16, 20), StackLayout(4, 0, fixed=((1, 0),))) is None  # moved axes
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((3, 16, 20, 3), np.uint8), imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TYXS", "unit": "um"})
    assert source_calibration(rgb, (3, 16, 20, 3), StackLayout(4, 0, channel_axis=3)).pixel_size == (0.5, 0.5)
    assert source_calibration(tmp_path / "missing.tif", (3, 16, 20), StackLayout(3, 0)) is None


def test_a_files_calibration_is_read_once_until_the_file_changes(tmp_path, monkeypatch):
    """The widget asks on napari's GUI thread at every change of image or axes: the file's header is parsed once (it
    was parsed at every question, from the review), and again once the file is rewritten."""
    import napari_sam2.file_calibration as file_calibration

    opened: List[str] = []
    tiff_file = tifffile.TiffFile

    def counting(path, *args, **kwargs):
        opened.append(str(path))
        return tiff_file(path, *args, **kwargs)

    monkeypatch.setattr(tifffile, "TiffFile", counting)
    stack = imagej_movie(tmp_path / "cache.tif", np.zeros((3, 16, 20), np.uint8))
    layout = StackLayout(3, 0)
    first = file_calibration.source_calibration(stack, (3, 16, 20), layout)
    reads = len(opened)
    assert first.pixel_size == pytest.approx((0.3, 0.3)) and reads
    assert file_calibration.source_calibration(stack, (3, 16, 20), layout) == first and len(opened) == reads
    tifffile.imwrite(stack, np.zeros((4, 16, 20), np.uint8), imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "TYX", "unit": "um"})  # rewritten: another size
    assert file_calibration.source_calibration(stack, (4, 16, 20), layout).pixel_size == pytest.approx((0.5, 0.5))
    assert len(opened) > reads


def test_track_all_exports_of_a_file_opened_layer_are_calibrated(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """Track all's exports (tracks CSV, GEFF) read the widget's calibration: the file's, for a File > Open layer."""
    from widget_helpers import track_all_panel, wait_tracking

    movie = small_movie(3, 11)
    path = imagej_movie(tmp_path / "cells.tif", movie.image)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    notifications(monkeypatch)
    (layer,) = viewer.open(str(path), plugin="napari")
    widget.image_combo.setCurrentText(layer.name)
    panel = track_all_panel(widget)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert panel.status.text().startswith("Done"), panel.status.text()
    written = panel.export("tracks", str(tmp_path / "tracks.csv"))
    assert written is not None, panel.status.text()
    with open(written, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {r["time_unit"] for r in rows} == {"minute"}, rows[:1]
    assert float(rows[0]["end_time"]) == pytest.approx(5.0 * int(rows[0]["end"]))
