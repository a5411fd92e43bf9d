"""The automatic-tracking exports carry the image's calibration like the GEFF does: the labels TIFF as an ImageJ
hyperstack (its axes, X/YResolution in pixels per ``unit``, ``finterval`` or ``spacing``: what Fiji's plain opener
reads; tests/test_labels_tiff_fiji.py checks the format itself), the tracks CSV with each track's first and last time.
Before, the panel's and ``track --auto``'s labels TIFF had XResolution (1, 1) and no units, and the CSV frames only.
Uncalibrated exports are the same hyperstack with their axes only, and the CSV as it was.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import tifffile

from napari_sam2.export import Calibration
from napari_sam2.file_calibration import read_calibration
from napari_sam2.track_export import AutoOutputs, export_tracking, write_auto_outputs
from sam2_model.tracking import Lineage, Track, TrackingResult, write_track_table

CALIBRATED = Calibration((0.65, 0.5), "micrometer", 300.0, "second")


def gap_result() -> TrackingResult:
    """(4, 24, 24) labels: track 1 on frames 0, 1 and 3 (cut into 1 and 3 when exported), track 2 on every frame."""
    labels = np.zeros((4, 24, 24), np.uint32)
    labels[[0, 1, 3], 2:8, 2:8] = 1
    labels[:, 12:20, 12:20] = 2
    return TrackingResult(labels=labels, lineage=Lineage([Track(1, 0, 3, 0, "end of stack"),
                                                          Track(2, 0, 3, 0, "end of stack")]))


def csv_rows(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def tiff_sizes(path: Path) -> dict:
    """Axes, dtype, ImageJ metadata ({} for another TIFF), OME-XML ("" without) and the (x, y) pixel size ImageJ's TIFF
    reader takes from the resolution tags (in the description's ``unit``)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        return {"axes": tif.series[0].axes, "dtype": tif.series[0].dtype, "imagej": tif.imagej_metadata or {},
                "ome": tif.ome_metadata or "", "size": tuple(1.0 / v for v in page.get_resolution())}


def plain_hyperstack(labels: np.ndarray, path: Path, axes: str = "TYX") -> Path:
    """The uncalibrated labels TIFF: a zlib ImageJ hyperstack of uint16 ``labels`` that records ``axes`` only."""
    tifffile.imwrite(path, labels.astype(np.uint16), imagej=True, compression="zlib", photometric="minisblack",
                     metadata={"axes": axes})
    return path


def test_a_calibrated_labels_tiff_records_pixel_size_and_frame_interval(tmp_path: Path) -> None:
    """Before: XResolution (1, 1), no unit, axes 'QYX'; read back, the file said pixels and frames."""
    result = gap_result()
    path = export_tracking(result, "labels", tmp_path / "l.tif", calibration=CALIBRATED)
    sizes = tiff_sizes(path)
    assert (sizes["axes"], sizes["dtype"]) == ("TYX", np.uint16)
    assert {key: sizes["imagej"].get(key) for key in ("frames", "unit", "finterval", "tunit")} == \
        {"frames": 4, "unit": "micron", "finterval": 300.0, "tunit": "sec"}
    assert sizes["size"] == pytest.approx((0.5, 0.65))
    # the project's own reader (the CLI's and batch's) gives the calibration back
    back = read_calibration(path, 0, (1, 2))
    assert (back.pixel_size, back.length_unit, back.frame_interval, back.time_unit) == \
        (pytest.approx((0.65, 0.5)), "micrometer", 300.0, "second")
    # the same pixels as the uncalibrated export, and a rerun writes the same bytes
    plain = export_tracking(result, "labels", tmp_path / "plain.tif")
    np.testing.assert_array_equal(tifffile.imread(path), tifffile.imread(plain))
    again = export_tracking(result, "labels", tmp_path / "again.tif", calibration=CALIBRATED)
    assert hashlib.sha1(again.read_bytes()).digest() == hashlib.sha1(path.read_bytes()).digest()


def test_a_calibrated_tracks_csv_gives_each_tracks_times(tmp_path: Path) -> None:
    """Before: frames only. The columns of before come first, unchanged; begin_time / end_time follow."""
    calibration = Calibration((0.65, 0.65), "micrometer", 300.0, "second", origin=(600.0, 0.0, 0.0))
    rows = csv_rows(export_tracking(gap_result(), "tracks", tmp_path / "t.csv", calibration=calibration))
    assert list(rows[0]) == ["track_id", "begin", "end", "parent_id", "end_reason", "begin_time", "end_time",
                             "time_unit"]
    assert [(r["track_id"], r["begin"], r["end"], r["parent_id"]) for r in rows] == \
        [("1", "0", "1", "0"), ("2", "0", "3", "0"), ("3", "3", "3", "1")]
    assert [(float(r["begin_time"]), float(r["end_time"]), r["time_unit"]) for r in rows] == \
        [(600.0, 900.0, "second"), (600.0, 1500.0, "second"), (1500.0, 1500.0, "second")]


def test_a_volumes_slices_are_written_as_z(tmp_path: Path) -> None:
    """Frames that are a volume's slices: the TIFF's frame axis is Z (ImageJ's slices) with its spacing, the CSV
    gives z."""
    volume = Calibration((0.2, 0.2), "micrometer", 1.5, "micrometer", frames_through_z=True)
    path = export_tracking(gap_result(), "labels", tmp_path / "v.tif", calibration=volume)
    sizes = tiff_sizes(path)
    assert sizes["axes"] == "ZYX" and sizes["imagej"]["slices"] == 4 and sizes["imagej"]["spacing"] == 1.5
    assert "finterval" not in sizes["imagej"] and "frames" not in sizes["imagej"]
    back = read_calibration(path, 0, (1, 2), frames_through_z=True)
    assert (back.frame_interval, back.time_unit) == (1.5, "micrometer")
    rows = csv_rows(export_tracking(gap_result(), "tracks", tmp_path / "v.csv", calibration=volume))
    assert [(r["begin_z"], r["end_z"], r["z_unit"]) for r in rows][1] == ("0.0", "4.5", "micrometer")
    assert "begin_time" not in rows[0]


def test_pixels_only_calibration_leaves_the_frames_alone(tmp_path: Path) -> None:
    """A pixel size without a frame interval (napari's unit "frame", scale 1): the TIFF gets the pixel size only and
    the CSV stays as it was."""
    pixels_only = Calibration((0.65, 0.65), "um", 1.0, "frame")
    sizes = tiff_sizes(export_tracking(gap_result(), "labels", tmp_path / "p.tif", calibration=pixels_only))
    assert sizes["imagej"]["unit"] == "micron" and sizes["size"] == pytest.approx((0.65, 0.65))
    assert "finterval" not in sizes["imagej"]
    table = export_tracking(gap_result(), "tracks", tmp_path / "p.csv", calibration=pixels_only)
    assert table.read_text().splitlines()[0] == "track_id,begin,end,parent_id,end_reason"


@pytest.mark.parametrize("calibration", [None, Calibration()], ids=["none", "napari-uncalibrated"])
def test_uncalibrated_exports_are_the_files_of_before(tmp_path: Path, calibration) -> None:
    """No calibration, or napari's uncalibrated image (scale 1, units pixel / frame, as the panel passes it): the
    labels TIFF is the hyperstack with its axes only (before: a plain uint32 TIFF, axes 'QYX'), the CSV is
    write_track_table's."""
    from sam2_model.tracking import ctc_consistent

    result = gap_result()
    labels, lineage = ctc_consistent(result.labels, result.lineage)
    plain_hyperstack(labels, tmp_path / "before.tif")
    write_track_table(tmp_path / "before.csv", lineage)
    tiff = export_tracking(result, "labels", tmp_path / "l.tif", calibration=calibration)
    table = export_tracking(result, "tracks", tmp_path / "t.csv", calibration=calibration)
    assert tiff.read_bytes() == (tmp_path / "before.tif").read_bytes()
    assert table.read_text() == (tmp_path / "before.csv").read_text()


def test_write_auto_outputs_default_labels_and_tracks_are_calibrated(tmp_path: Path) -> None:
    """The writer ``track --auto`` and ``batch --auto`` share: its default labels TIFF and its CSV carry the
    calibration it is given (before: only its GEFF did)."""
    result = gap_result()
    write_auto_outputs(result.labels, result.lineage, AutoOutputs(labels=tmp_path / "l.tif",
                                                                  tracks=tmp_path / "t.csv"), calibration=CALIBRATED)
    assert read_calibration(tmp_path / "l.tif", 0, (1, 2)).pixel_size == pytest.approx((0.65, 0.5))
    assert csv_rows(tmp_path / "t.csv")[1]["end_time"] == "900.0"


def test_track_auto_writes_the_files_calibration_into_labels_and_table(tmp_path: Path) -> None:
    """``napari-sam2 track STACK.tif --auto -o labels.tif --table tracks.csv`` of an ImageJ TIFF with 0.65 um pixels
    and 300 s frames: before, the labels were in pixels (XResolution 1/1) and the table in frames."""
    from napari_sam2.cli import main
    from widget_helpers import small_movie

    movie = small_movie(4, 11)
    tifffile.imwrite(tmp_path / "cal.tif", movie.image, imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"unit": "micron", "finterval": 300, "axes": "TYX"})
    assert main(["track", str(tmp_path / "cal.tif"), "--auto", "--cell-diameter", "8", "40", "-o",
                 str(tmp_path / "labels.tif"), "--table", str(tmp_path / "tracks.csv"), "--device", "cpu"]) == 0
    back = read_calibration(tmp_path / "labels.tif", 0, (1, 2))
    assert (back.pixel_size, back.frame_interval, back.time_unit) == (pytest.approx((0.65, 0.65)), 300.0, "second")
    assert tiff_sizes(tmp_path / "labels.tif")["axes"] == "TYX"
    assert tiff_sizes(tmp_path / "labels.tif")["imagej"]["finterval"] == 300.0
    rows = csv_rows(tmp_path / "tracks.csv")
    assert rows and all(float(r["end_time"]) == 300.0 * int(r["end"]) and r["time_unit"] == "second" for r in rows)


@pytest.mark.gui
def test_the_panels_labels_and_tracks_exports_carry_the_image_calibration(make_napari_viewer, qtbot, tmp_path,
                                                                          monkeypatch) -> None:
    """The finding: an image of scale (300 s, 0.65 um, 0.65 um); the panel's GEFF was calibrated, its Labels TIFF
    (XResolution 1/1, no units) and tracks CSV (frames only) were not. Both now say um and s; napari opens the TIFF
    as the same labels."""
    from widget_helpers import tracked_calibrated

    viewer, widget, panel = tracked_calibrated(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    for what, name in (("labels", "cal.tif"), ("tracks", "cal.csv")):
        answer = str(tmp_path / name)
        monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getSaveFileName", lambda *a, to=answer, **k: (to, ""))
        panel.export_buttons[what].click()
        qtbot.waitUntil(lambda: panel.worker is None and not widget.busy(), timeout=60_000)
        assert (tmp_path / name).exists(), panel.status.text()
    sizes = tiff_sizes(tmp_path / "cal.tif")
    assert sizes["axes"] == "TYX" and sizes["size"] == pytest.approx((0.65, 0.65))
    assert (sizes["imagej"]["unit"], sizes["imagej"]["finterval"]) == ("micron", 300.0)
    back = read_calibration(tmp_path / "cal.tif", 0, (1, 2))
    assert (back.pixel_size, back.length_unit, back.frame_interval, back.time_unit) == \
        (pytest.approx((0.65, 0.65)), "micrometer", 300.0, "second")
    opened = viewer.open(str(tmp_path / "cal.tif"), plugin="napari")[0]
    np.testing.assert_array_equal(np.asarray(opened.data), tifffile.imread(tmp_path / "cal.tif"))
    rows = csv_rows(tmp_path / "cal.csv")
    assert rows and all(float(r["begin_time"]) == 300.0 * int(r["begin"]) and r["time_unit"] == "second"
                        for r in rows)


def prompted_stack(tmp_path: Path, name: str, **imagej) -> tuple:
    """small_movie(4, 11) as ``name`` (an ImageJ TIFF with ``imagej``'s resolution and metadata, or a plain TIFF
    without) and a prompts CSV of one click on cell 1 of frame 0; returns (stack path, prompts path)."""
    from sam2_model.click_points import click_point
    from widget_helpers import small_movie

    movie = small_movie(4, 11)
    data = movie.image
    if imagej.get("metadata", {}).get("axes") == "TZYX":  # two z planes, tracked along T at z = 0
        data = np.stack([movie.image, movie.image[:, ::-1]], axis=1)
    tifffile.imwrite(tmp_path / name, data, **({"imagej": True, **imagej} if imagej else {"photometric": "minisblack"}))
    x, y = click_point(movie.labels[0] == 1)
    prompts = tmp_path / f"{name}.csv"
    prompts.write_text(f"frame,obj_id,y,x,label\n0,1,{y},{x},1\n")
    return tmp_path / name, prompts


def test_track_prompts_writes_the_files_calibration_into_its_labels(tmp_path: Path) -> None:
    """``napari-sam2 track STACK.tif --prompts clicks.csv -o labels.tif`` of an ImageJ (T, Z, Y, X) TIFF with 0.65 um
    pixels and 300 s frames: before, the labels TIFF said pixels (XResolution 1/1, no OME sizes) where ``--auto``'s
    said um and s. A plain TIFF gives the uncalibrated hyperstack (axes recorded, nothing else)."""
    from napari_sam2.cli import main

    stack, prompts = prompted_stack(tmp_path, "cal.tif", resolution=(1 / 0.65, 1 / 0.65),
                                    metadata={"unit": "micron", "finterval": 300, "axes": "TZYX"})
    out = tmp_path / "labels.tif"
    assert main(["track", str(stack), "--prompts", str(prompts), "--axis", "0", "--fix", "1=0", "-o", str(out),
                 "--device", "cpu"]) == 0
    sizes = tiff_sizes(out)
    assert sizes["axes"] == "TZYX" and sizes["size"] == pytest.approx((0.65, 0.65))
    assert {key: sizes["imagej"].get(key) for key in ("frames", "slices", "unit", "finterval")} == \
        {"frames": 4, "slices": 2, "unit": "micron", "finterval": 300.0}
    back = read_calibration(out, 0, (2, 3))
    assert (back.pixel_size, back.length_unit, back.frame_interval, back.time_unit) == \
        (pytest.approx((0.65, 0.65)), "micrometer", 300.0, "second")
    assert tifffile.imread(out)[:, 0].any() and not tifffile.imread(out)[:, 1].any()

    plain, plain_prompts = prompted_stack(tmp_path, "plain.tif")
    assert main(["track", str(plain), "--prompts", str(plain_prompts), "-o", str(tmp_path / "plain_labels.tif"),
                 "--device", "cpu"]) == 0
    labels = tifffile.imread(tmp_path / "plain_labels.tif")
    before = plain_hyperstack(labels, tmp_path / "before.tif")
    assert (tmp_path / "plain_labels.tif").read_bytes() == before.read_bytes()


def test_the_widgets_labels_letters_name_every_axis_of_its_labels() -> None:
    """Export labels of a (T, Z, Y, X) image: its 4-D labels get letters (before: none, so no calibration could be
    recorded beyond (T, Y, X)); the frame axis is T, or Z where the frames are a volume's slices."""
    from napari_sam2._runs import labels_letters
    from napari_sam2.layout import StackLayout

    assert labels_letters(StackLayout(2, None)) == "YX"
    assert labels_letters(StackLayout(3, 0)) == "TYX" and labels_letters(StackLayout(3, 0), True) == "ZYX"
    assert labels_letters(StackLayout(4, 0, fixed=((1, 2),))) == "TZYX"
    assert labels_letters(StackLayout(4, 1, fixed=((0, 0),))) == "ZTYX"
    assert labels_letters(StackLayout(4, 1, fixed=((0, 0),)), True) == "TZYX"
    assert labels_letters(StackLayout(4, 0, channel_axis=3)) == "TYX"  # RGB: no letter for the colours
    assert labels_letters(StackLayout(5, 0, fixed=((1, 0), (2, 0)))) is None  # two other axes: no letters to give


@pytest.mark.gui
def test_the_widgets_export_labels_carries_the_image_calibration(make_napari_viewer, qtbot, tmp_path,
                                                                 monkeypatch) -> None:
    """The widget's own Export labels (button, in a worker, and the console's ``export``) of an image of scale
    (300 s, 0.65 um, 0.65 um): before, the TIFF had XResolution 1/1 and no units while its table export was
    calibrated. Now Fiji reads um and s; the pixels are the labels layer's. With the calibration taken off the image
    the file is the uncalibrated hyperstack, its axes recorded (before: none, tifffile read 'QYX')."""
    from widget_helpers import click_cell, open_widget, small_movie, wait

    movie = small_movie(4, 11)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    image = viewer.add_image(movie.image, name="cells", scale=(300.0, 0.65, 0.65), units=("s", "um", "um"))
    click_cell(widget.points_layer, movie, 1)
    wait(qtbot, widget)
    assert widget.labels_layer.data.any(), widget.status.text()
    answer = str(tmp_path / "button.tif")
    monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getSaveFileName", lambda *a, **k: (answer, ""))
    widget.export_labels_button.click()
    wait(qtbot, widget)
    assert widget.status.text() == f"Wrote {answer}", widget.status.text()
    console = widget.export("labels", str(tmp_path / "console.tif"))
    for path in (Path(answer), Path(console)):
        sizes = tiff_sizes(path)
        assert sizes["axes"] == "TYX" and sizes["size"] == pytest.approx((0.65, 0.65))
        assert (sizes["imagej"]["unit"], sizes["imagej"]["finterval"], sizes["imagej"]["tunit"]) == \
            ("micron", 300.0, "sec")
        back = read_calibration(path, 0, (1, 2))
        assert (back.pixel_size, back.length_unit, back.frame_interval, back.time_unit) == \
            (pytest.approx((0.65, 0.65)), "micrometer", 300.0, "second")
        np.testing.assert_array_equal(tifffile.imread(path), widget.labels_layer.data)

    image.scale, image.units = (1.0, 1.0, 1.0), ("pixel", "pixel", "pixel")
    plain = widget.export("labels", str(tmp_path / "plain.tif"))
    assert tiff_sizes(Path(plain))["axes"] == "TYX"
    before = plain_hyperstack(np.asarray(widget.labels_layer.data), tmp_path / "before.tif")
    assert Path(plain).read_bytes() == before.read_bytes()
