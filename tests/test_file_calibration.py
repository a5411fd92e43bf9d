"""The pixel size and frame interval a file records (ImageJ TIFF, OME-TIFF, OME-Zarr) calibrate the command line's
GEFF (it wrote frames and pixels only, though the microscope's file said 0.65 um and 300 s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2.file_calibration import read_calibration, unit_name

STACK = np.zeros((5, 64, 64), np.uint16)


def test_imagej_tiffs_give_pixel_size_and_frame_interval_or_slice_spacing(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "t.tif", STACK, imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"unit": "\\u00B5m", "finterval": 300, "axes": "TYX"})
    cal = read_calibration(tmp_path / "t.tif", 0, (1, 2))
    assert (cal.pixel_size, cal.length_unit, cal.frame_interval, cal.time_unit) == \
        ((pytest.approx(0.65), pytest.approx(0.65)), "micrometer", 300.0, "second")
    tifffile.imwrite(tmp_path / "z.tif", STACK, imagej=True, resolution=(2.0, 2.0),
                     metadata={"unit": "micron", "spacing": 1.5, "axes": "ZYX"})
    cal = read_calibration(tmp_path / "z.tif", 0, (1, 2), frames_through_z=True)
    assert (cal.pixel_size, cal.length_unit, cal.frame_interval, cal.frames_through_z) == \
        ((0.5, 0.5), "micrometer", 1.5, True)


def test_ome_tiff_and_ome_zarr_metadata_are_read(tmp_path: Path) -> None:
    zarr = pytest.importorskip("zarr")
    tifffile.imwrite(tmp_path / "a.ome.tif", STACK, ome=True,
                     metadata={"axes": "TYX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.4, "TimeIncrement": 60.0})
    cal = read_calibration(tmp_path / "a.ome.tif", 0, (1, 2))
    assert (cal.pixel_size, cal.length_unit, cal.frame_interval, cal.time_unit) == \
        ((0.4, 0.3), "micrometer", 60.0, "second")
    group = zarr.open_group(str(tmp_path / "a.ome.zarr"), mode="w")
    group.create_array("0", data=STACK)
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": "t", "type": "time", "unit": "second"}, {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [30.0, 0.2, 0.25]}]}]}]
    cal = read_calibration(tmp_path / "a.ome.zarr", 0, (1, 2))
    assert (cal.pixel_size, cal.length_unit, cal.frame_interval, cal.time_unit) == \
        ((0.2, 0.25), "micrometer", 30.0, "second")


def test_files_without_calibration_give_none(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "plain.tif", STACK)
    np.save(tmp_path / "a.npy", STACK)
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    for name in ("plain.tif", "a.npy", "bad.tif", "missing.tif"):
        assert read_calibration(tmp_path / name, 0, (1, 2)) is None, name
    assert [unit_name(u) for u in ("micron", "\\u00B5m", "sec", "pixel", None)] == \
        ["micrometer", "micrometer", "second", None, None]


def test_track_auto_writes_the_files_calibration_into_its_geff(tmp_path: Path) -> None:
    geff = pytest.importorskip("geff")
    from sam2_model.synthetic import make_timelapse
    from napari_sam2.cli import main

    movie = make_timelapse(num_frames=4, shape=(96, 96), num_cells=3, seed=11, divisions=False, enter_leave=False,
                           radius_fraction=0.12)
    tifffile.imwrite(tmp_path / "cal.tif", movie.image, imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"unit": "micron", "finterval": 300, "axes": "TYX"})
    assert main(["track", str(tmp_path / "cal.tif"), "--auto", "--cell-diameter", "8", "40", "--geff",
                 str(tmp_path / "t.geff"), "--device", "cpu"]) == 0
    _, meta = geff.read(tmp_path / "t.geff")
    assert [(a.name, a.scale, a.scaled_unit) for a in meta.axes] == [
        ("t", 300.0, "second"), ("y", pytest.approx(0.65), "micrometer"), ("x", pytest.approx(0.65), "micrometer")]


def test_a_batch_auto_stack_gets_its_files_calibration_in_geff_and_objects_table(tmp_path: Path) -> None:
    """batch --auto wrote its GEFF and objects.csv in pixels and frames only, though the stack's file recorded
    0.65 um pixels and 300 s between frames; both now carry them (one in-process task, as a worker runs it)."""
    geff = pytest.importorskip("geff")
    import csv

    from sam2_model.synthetic import make_timelapse
    from napari_sam2.batch_worker import AxisOptions, ModelSpec, StackTask, process_stack

    movie = make_timelapse(num_frames=4, shape=(96, 96), num_cells=3, seed=11, divisions=False, enter_leave=False,
                           radius_fraction=0.12)
    tifffile.imwrite(tmp_path / "cal.tif", movie.image, imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"unit": "micron", "finterval": 300, "axes": "TYX"})
    task = StackTask("cal", str(tmp_path / "cal.tif"), str(tmp_path / "out"),
                     ModelSpec(model="demo", checkpoint="download", device="cpu", image_size=256), auto=True,
                     tracking_options={"cell_diameter": (8, 40)}, axes=AxisOptions(names="cli"))
    (tmp_path / "out").mkdir()
    row = process_stack(task)
    assert row["status"] == "ok", row
    folder = tmp_path / "out" / "cal"
    _, meta = geff.read(folder / "tracks.geff")
    assert [(a.name, a.scale, a.scaled_unit) for a in meta.axes] == [
        ("t", 300.0, "second"), ("y", pytest.approx(0.65), "micrometer"), ("x", pytest.approx(0.65), "micrometer")]
    with open(folder / "objects.csv") as table:
        first = next(csv.DictReader(table))
    assert first["length_unit"] == "micrometer" and first["time_unit"] == "second"
    assert float(first["area_scaled"]) == pytest.approx(float(first["area"]) * 0.65 * 0.65, rel=1e-4)
    # the manifest records every tracking setting (it listed only those given), the device used and the calibration
    import json

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["tracking_options"]["cell_diameter"] == [8, 40]
    assert {"seeding", "redetect_every", "divisions", "max_lost_frames", "min_contrast", "start_frame"} <= \
        set(manifest["tracking_options"])
    assert manifest["model"]["device"] == "cpu" and manifest["device_used"] == "cpu"
    assert manifest["calibration"]["length_unit"] == "micrometer" and manifest["calibration"]["frame_interval"] == 300


def ngff_zarr(path: Path, data: np.ndarray, axes: list, scale: list) -> Path:
    """An OME-Zarr (NGFF 0.4, zarr v2) of one level holding ``data``, its axes ``axes`` ((name, type, unit)) and its
    ``scale``."""
    zarr = pytest.importorskip("zarr")
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", data=data)
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": name, "type": kind, **({"unit": unit} if unit else {})} for name, kind, unit in axes],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}]}]
    return path


ZYX_AXES = [("z", "space", "micrometer"), ("y", "space", "micrometer"), ("x", "space", "micrometer")]
TZYX_AXES = [("t", "time", "second")] + ZYX_AXES


def test_an_ome_zarr_z_stack_read_without_letters_is_slices_with_their_spacing(tmp_path: Path) -> None:
    """An OME-Zarr z-stack (axes z, y, x in micrometer, scale 2, .3, .3): its reader gives no axis letters, so its
    frames were taken as time, their 2 um step dropped from the labels TIFF (z declared as time). The zarr's own axis
    names now say z, whether the caller passes letters or not."""
    from napari_sam2.file_calibration import stack_calibration, stack_letters, zarr_axis_letters
    from napari_sam2.layout import StackLayout

    path = ngff_zarr(tmp_path / "zyx.ome.zarr", STACK, ZYX_AXES, [2.0, 0.3, 0.3])
    for cal in (stack_calibration(path, None, StackLayout(3, 0)), read_calibration(path, 0, (1, 2))):
        assert (cal.frames_through_z, cal.frame_interval, cal.time_unit, cal.pixel_size, cal.other_steps) == \
            (True, 2.0, "micrometer", (0.3, 0.3), ())
    assert zarr_axis_letters(path) == "ZYX"
    import zarr

    assert stack_letters(path, zarr.open(str(path / "0"), mode="r")) == "ZYX"
    assert stack_letters(path, np.zeros((2, 5, 64, 64))) is None  # letters that do not fit the stack: none
    assert stack_letters(tmp_path / "missing.tif", STACK) is None


def test_zarr_axis_letters_follow_types_then_names(tmp_path: Path) -> None:
    from napari_sam2.file_calibration import zarr_axis_letters

    five = ngff_zarr(tmp_path / "a.zarr", np.zeros((1, 1, 1, 4, 4), np.uint8),
                     [("time", "time", "second"), ("ch", "channel", None)] + ZYX_AXES, [1.0] * 5)
    assert zarr_axis_letters(five) == "TCZYX"
    odd = ngff_zarr(tmp_path / "b.zarr", np.zeros((2, 4, 4), np.uint8),
                    [("angle", "space", None), ("y", "space", None), ("x", "space", None)], [1.0] * 3)
    assert zarr_axis_letters(odd) == "QYX"
    twice = ngff_zarr(tmp_path / "c.zarr", np.zeros((2, 4, 4), np.uint8),
                      [("z", "space", None), ("z", "space", None), ("x", "space", None)], [1.0] * 3)
    assert zarr_axis_letters(twice) is None
    assert zarr_axis_letters(tmp_path) is None and zarr_axis_letters(tmp_path / "none") is None


TZYX = np.zeros((3, 4, 32, 32), np.uint16)


def test_a_tzyx_files_other_axis_step_is_kept_whichever_axis_is_propagated(tmp_path: Path) -> None:
    """TZYX stacks (ImageJ, OME-TIFF, OME-Zarr) record 60 s between time points and 2 um between slices: read along
    t the calibration held the 60 s only, along z the 2 um only; the other axis's step now rides along."""
    tifffile.imwrite(tmp_path / "ij.tif", TZYX, imagej=True, resolution=(1 / 0.3, 1 / 0.3),
                     metadata={"axes": "TZYX", "spacing": 2.0, "unit": "um", "finterval": 60.0})
    tifffile.imwrite(tmp_path / "a.ome.tif", TZYX, ome=True, metadata={
        "axes": "TZYX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3, "PhysicalSizeZ": 2.0, "TimeIncrement": 60.0})
    zarr_path = ngff_zarr(tmp_path / "a.ome.zarr", TZYX, TZYX_AXES, [60.0, 2.0, 0.3, 0.3])
    for path in (tmp_path / "ij.tif", tmp_path / "a.ome.tif", zarr_path):
        along_t = read_calibration(path, 0, (2, 3))
        assert (along_t.frames_through_z, along_t.frame_interval, along_t.time_unit, along_t.other_steps) == \
            (False, 60.0, "second", (("Z", 2.0, "micrometer"),)), path
        along_z = read_calibration(path, 1, (2, 3), frames_through_z=path.suffix != ".zarr")  # a zarr knows
        assert (along_z.frames_through_z, along_z.frame_interval, along_z.time_unit, along_z.other_steps) == \
            (True, 2.0, "micrometer", (("T", 60.0, "second"),)), path
        assert along_t.pixel_size == along_z.pixel_size == pytest.approx((0.3, 0.3))


def test_a_step_the_stack_has_no_axis_for_is_not_kept(tmp_path: Path) -> None:
    """An OME-TIFF time-lapse (TYX) whose microscope also wrote PhysicalSizeZ keeps no z step (its labels have no z)."""
    tifffile.imwrite(tmp_path / "t.ome.tif", STACK, ome=True, metadata={
        "axes": "TYX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3, "PhysicalSizeZ": 2.0, "TimeIncrement": 60.0})
    cal = read_calibration(tmp_path / "t.ome.tif", 0, (1, 2))
    assert (cal.frame_interval, cal.time_unit, cal.other_steps) == (60.0, "second", ())


def test_frames_of_an_ome_zarr_named_z_without_units_are_z_for_every_door(tmp_path: Path) -> None:
    """Review: an OME-Zarr whose axes are named z, y, x but carry no units gave no calibration saying z, and
    ``track --auto`` / ``track_cells(path)`` read no letters from it, so they looked for divisions along z (batch read
    the names). frames_are_z reads the zarr's axis names from its path, for all three."""
    import zarr

    from napari_sam2.api import frames_are_z
    from napari_sam2.layout import StackLayout

    path = ngff_zarr(tmp_path / "zyx.ome.zarr", STACK, [("z", "space", None), ("y", "space", None),
                                                        ("x", "space", None)], [1.0, 1.0, 1.0])
    stack = zarr.open(str(path / "0"), mode="r")
    assert frames_are_z(stack, StackLayout(3, 0)) is None  # without its path nothing says so
    assert frames_are_z(stack, StackLayout(3, 0), None, path) == "the stack's axes ZYX say so"
