"""Labels TIFFs that Fiji's plain File > Open reads as a calibrated hyperstack, and time-only calibrations.

Before, every calibrated labels TIFF (``track -o``, batch ``labels.tif``, the widget's Export labels) was a uint32
OME-TIFF: ImageJ 1's own TIFF reader takes hyperstack dimensions and the frame interval only from an ``ImageJ=``
description, so Fiji showed the frames as 32-bit Z slices without the interval. Now labels whose ids fit 16 bits are a
uint16 ImageJ hyperstack (axes, ``unit``, ``spacing``, ``finterval``, origin) that tifffile, napari and the project's own
readers read back the same; bigger ids keep the uint32 OME-TIFF. A file that records a frame interval without a pixel
size (ImageJ ``finterval`` alone, OME ``TimeIncrement`` alone) gave no calibration at all; its times are now kept.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable, Dict

import numpy as np
import pytest
import tifffile

from napari_sam2.export import Calibration, save_labels_tiff
from napari_sam2.file_calibration import read_calibration


def labels_stack(big: bool = False) -> np.ndarray:
    """(4, 24, 32) uint32 labels with ids 1, 7 and 65535 (70000 too where ``big``)."""
    labels = np.zeros((4, 24, 32), np.uint32)
    labels[:, 2:6, 3:9] = 1
    labels[1:, 10:14, 10:20] = 7
    labels[2, 18:22, 25:30] = 65535
    if big:
        labels[3, 18:22, 2:6] = 70000
    return labels


def read_tiff(path: Path) -> Dict[str, Any]:
    """What Fiji's plain opener (the ImageJ description and resolution tags) and tifffile see of ``path``."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        return {"imagej": tif.is_imagej, "ome": tif.is_ome, "axes": series.axes, "dtype": series.dtype,
                "meta": tif.imagej_metadata or {}, "size": tuple(1.0 / v for v in tif.pages[0].get_resolution()),
                "data": series.asarray()}


CALIBRATED = Calibration((0.65, 0.5), "micrometer", 300.0, "second", origin=(0.0, 6.5, -1.0))


def write_direct(labels: np.ndarray, path: Path, calibration: Any) -> None:
    save_labels_tiff(labels, path, "TYX", calibration)


def write_batch(labels: np.ndarray, path: Path, calibration: Any) -> None:
    from napari_sam2.batch_outputs import write_labels_tiff

    write_labels_tiff(labels, path, "t", calibration)


def write_auto(labels: np.ndarray, path: Path, calibration: Any) -> None:
    from sam2_model.tracking import Lineage, Track

    from napari_sam2.track_export import AutoOutputs, write_auto_outputs

    lineage = Lineage([Track(1, 0, 3, 0, "end of stack"), Track(7, 1, 3, 0, "end of stack"),
                       Track(65535, 2, 2, 0, "lost")])
    write_auto_outputs(labels, lineage, AutoOutputs(labels=path), calibration=calibration)


@pytest.mark.parametrize("write", [write_direct, write_batch, write_auto], ids=["track-o", "batch", "auto"])
def test_calibrated_labels_are_an_imagej_hyperstack_that_every_reader_reads_back(
        tmp_path: Path, write: Callable[..., None]) -> None:
    """Before: is_imagej False, uint32, no frames / finterval in an ImageJ description (Fiji: 32-bit Z slices)."""
    labels = labels_stack()
    path = tmp_path / "labels.tif"
    write(labels, path, CALIBRATED)
    found = read_tiff(path)
    assert (found["imagej"], found["ome"], found["axes"], found["dtype"]) == (True, False, "TYX", np.uint16)
    meta = found["meta"]
    assert {key: meta.get(key) for key in ("frames", "hyperstack", "unit", "finterval", "tunit", "xorigin",
                                           "yorigin")} == \
        {"frames": 4, "hyperstack": True, "unit": "micron", "finterval": 300.0, "tunit": "sec", "xorigin": 2.0,
         "yorigin": -10.0}  # ImageJ's origin in pixels: pixel 0 lies at -origin * size = (6.5, -1.0) um
    assert found["size"] == pytest.approx((0.5, 0.65))
    np.testing.assert_array_equal(found["data"], labels)
    back = read_calibration(path, 0, (1, 2))
    assert (back.pixel_size, back.length_unit, back.frame_interval, back.time_unit) == \
        (pytest.approx((0.65, 0.5)), "micrometer", 300.0, "second")
    from napari_builtins.io import magic_imread  # napari's own File > Open of a TIFF

    np.testing.assert_array_equal(np.asarray(magic_imread(str(path))), labels)


def test_a_volume_and_a_time_lapse_of_volumes_keep_every_step_in_imagejs_units(tmp_path: Path) -> None:
    """ZYX frames through z: ImageJ slices with ``spacing`` and ``zorigin``; TZYX: frames and slices, the z step
    (given in nm) in the pixel unit and the interval (given in minutes) in seconds, as Bio-Formats reads
    ``finterval`` whatever ``tunit`` says. Before: OME-TIFFs (Fiji: 24 flat slices, no spacing)."""
    volume = Calibration((0.2, 0.2), "micrometer", 1.5, "micrometer", frames_through_z=True, origin=(3.0, 0.0, 0.0))
    save_labels_tiff(labels_stack(), tmp_path / "zyx.tif", None, volume)
    found = read_tiff(tmp_path / "zyx.tif")
    assert (found["imagej"], found["axes"]) == (True, "ZYX")
    assert {key: found["meta"].get(key) for key in ("slices", "frames", "spacing", "zorigin", "finterval")} == \
        {"slices": 4, "frames": None, "spacing": 1.5, "zorigin": -2.0, "finterval": None}
    back = read_calibration(tmp_path / "zyx.tif", 0, (1, 2), frames_through_z=True)
    assert (back.frame_interval, back.time_unit, back.frames_through_z) == (1.5, "micrometer", True)
    in_nm = Calibration((0.5, 0.5), "micrometer", 200.0, "nanometer", frames_through_z=True, origin=(1000.0, 0, 0))
    save_labels_tiff(labels_stack(), tmp_path / "zyx_nm.tif", None, in_nm)  # a z step in another unit than x, y
    found = read_tiff(tmp_path / "zyx_nm.tif")
    assert (found["meta"]["spacing"], found["meta"]["zorigin"]) == (0.2, -5)  # 1000 nm / 200 nm a slice (was -5000)

    both = Calibration((0.3, 0.3), "micrometer", 5.0, "minute", other_steps=(("Z", 2000.0, "nm"),))
    tzyx = np.stack([labels_stack()] * 3, axis=1)
    save_labels_tiff(tzyx, tmp_path / "tzyx.tif", "TZYX", both)
    found = read_tiff(tmp_path / "tzyx.tif")
    assert (found["imagej"], found["axes"], found["dtype"]) == (True, "TZYX", np.uint16)
    assert {key: found["meta"].get(key) for key in ("frames", "slices", "unit", "spacing", "finterval", "tunit")} == \
        {"frames": 4, "slices": 3, "unit": "micron", "spacing": 2.0, "finterval": 300.0, "tunit": "sec"}
    back = read_calibration(tmp_path / "tzyx.tif", 0, (2, 3))
    assert (back.frame_interval, back.time_unit, back.other_steps) == (300.0, "second", (("Z", 2.0, "micrometer"),))
    np.testing.assert_array_equal(found["data"], tzyx)


def test_ids_over_16_bits_keep_the_uint32_ome_tiff_and_uncalibrated_labels_record_their_axes(tmp_path: Path) -> None:
    """An id of 70000 does not fit ImageJ's 16 bits: the calibrated file stays the uint32 OME-TIFF (every id kept,
    its calibration read back); uncalibrated, a plain uint32 TIFF that records its axes (before: 'QYX')."""
    labels = labels_stack(big=True)
    save_labels_tiff(labels, tmp_path / "big.tif", None, CALIBRATED)
    found = read_tiff(tmp_path / "big.tif")
    assert (found["imagej"], found["ome"], found["axes"], found["dtype"]) == (False, True, "TYX", np.uint32)
    np.testing.assert_array_equal(found["data"], labels)
    back = read_calibration(tmp_path / "big.tif", 0, (1, 2))
    assert (back.pixel_size, back.frame_interval, back.time_unit) == ((0.65, 0.5), 300.0, "second")

    save_labels_tiff(labels, tmp_path / "big_plain.tif")
    found = read_tiff(tmp_path / "big_plain.tif")
    assert (found["imagej"], found["ome"], found["axes"], found["dtype"]) == (False, False, "TYX", np.uint32)
    np.testing.assert_array_equal(found["data"], labels)

    save_labels_tiff(labels_stack(), tmp_path / "plain.tif")  # fits: the uncalibrated hyperstack, axes only
    found = read_tiff(tmp_path / "plain.tif")
    assert (found["imagej"], found["axes"], found["dtype"]) == (True, "TYX", np.uint16)
    assert "unit" not in found["meta"] and "finterval" not in found["meta"]
    assert read_calibration(tmp_path / "plain.tif", 0, (1, 2)) is None


def test_a_frame_interval_without_a_pixel_size_is_read(tmp_path: Path) -> None:
    """ImageJ ``finterval`` alone (ImageJ's default time unit is seconds), with ``tunit``, and OME ``TimeIncrement``
    alone: before, read_calibration gave None (the frame step was dropped with the missing pixel size)."""
    stack = np.zeros((3, 16, 16), np.uint16)
    tifffile.imwrite(tmp_path / "ij.tif", stack, imagej=True, metadata={"axes": "TYX", "finterval": 5.0})
    tifffile.imwrite(tmp_path / "ij_min.tif", stack, imagej=True,
                     metadata={"axes": "TYX", "finterval": 2.0, "tunit": "min"})
    tifffile.imwrite(tmp_path / "ome.ome.tif", stack, ome=True,
                     metadata={"axes": "TYX", "TimeIncrement": 300.0, "TimeIncrementUnit": "s"})
    for name, step in (("ij.tif", (5.0, "second")), ("ij_min.tif", (2.0, "minute")),
                       ("ome.ome.tif", (300.0, "second"))):
        found = read_calibration(tmp_path / name, 0, (1, 2))
        assert found is not None, name
        assert (found.pixel_size, found.length_unit, (found.frame_interval, found.time_unit)) == \
            ((1.0, 1.0), "pixel", step), name
    # its labels keep the interval (no pixel size: no unit, no resolution)
    save_labels_tiff(labels_stack(), tmp_path / "labels.tif", None, read_calibration(tmp_path / "ij.tif", 0, (1, 2)))
    meta = read_tiff(tmp_path / "labels.tif")["meta"]
    assert (meta.get("finterval"), meta.get("tunit"), meta.get("unit")) == (5.0, "sec", None)


def test_track_auto_of_a_time_only_stack_gives_times_in_the_table_and_geff(tmp_path: Path) -> None:
    """`napari-sam2 track finterval_only.tif --auto -o --table --geff`: before, no begin_time / end_time columns, a
    GEFF t axis in frames without a scale and labels without a frame interval. The positions stay in pixels."""
    geff = pytest.importorskip("geff")
    from sam2_model.synthetic import make_timelapse

    from napari_sam2.cli import main

    movie = make_timelapse(num_frames=4, shape=(96, 96), num_cells=3, seed=11, divisions=False, enter_leave=False,
                           radius_fraction=0.12)
    tifffile.imwrite(tmp_path / "t.tif", movie.image, imagej=True, metadata={"axes": "TYX", "finterval": 5.0})
    assert main(["track", str(tmp_path / "t.tif"), "--auto", "--cell-diameter", "8", "40", "-o",
                 str(tmp_path / "labels.tif"), "--table", str(tmp_path / "tracks.csv"), "--geff",
                 str(tmp_path / "t.geff"), "--ctc", str(tmp_path / "ctc"), "--device", "cpu"]) == 0
    with open(tmp_path / "tracks.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(float(r["end_time"]) == 5.0 * int(r["end"]) and r["time_unit"] == "second" for r in rows)
    _, meta = geff.read(tmp_path / "t.geff")
    assert [(a.name, a.scale, a.scaled_unit) for a in meta.axes][0] == ("t", 5.0, "second")
    assert all(a.scaled_unit is None for a in meta.axes[1:])
    found = read_tiff(tmp_path / "labels.tif")
    assert (found["imagej"], found["axes"], found["meta"].get("finterval")) == (True, "TYX", 5.0)
    # the CTC masks are the same ids, as uint16 maskNNN.tif files of their own
    masks = sorted((tmp_path / "ctc").glob("mask*.tif"))
    assert [tifffile.imread(p).dtype for p in masks] == [np.uint16] * 4
    np.testing.assert_array_equal(np.stack([tifffile.imread(p) for p in masks]), found["data"])


@pytest.mark.parametrize("how", [{}, {"photometric": "minisblack"}])
def test_track_of_a_plain_tifffile_stack_writes_an_imagej_hyperstack(tmp_path: Path, how: Dict[str, Any]) -> None:
    """`tifffile.imwrite("stack.tif", movie)` (the commonest way a Python user saves a stack) records its frames as
    axis "S" (or "Q"): the labels of `napari-sam2 track stack.tif --prompts ... -o labels.tif` were then a plain
    uint32 TIFF with axes "SYX" (Fiji: 32-bit slices), the same pixels from a .npy a uint16 ImageJ TYX file."""
    from sam2_model.synthetic import make_timelapse

    from napari_sam2.cli import main

    movie = make_timelapse(num_frames=3, shape=(64, 64), num_cells=2, seed=3, divisions=False, enter_leave=False,
                           radius_fraction=0.12)
    tifffile.imwrite(tmp_path / "stack.tif", movie.image, **how)
    ys, xs = np.nonzero(movie.labels[0] == movie.labels[0].max())
    (tmp_path / "p.csv").write_text(f"frame,obj_id,y,x,label\n0,1,{int(ys.mean())},{int(xs.mean())},1\n")
    assert main(["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "p.csv"), "-o",
                 str(tmp_path / "labels.tif"), "--device", "cpu"]) == 0
    found = read_tiff(tmp_path / "labels.tif")
    assert (found["imagej"], found["axes"], found["dtype"]) == (True, "TYX", np.uint16)
