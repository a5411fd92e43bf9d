"""Voxel sizes kept on every road out of a volume: an OME-Zarr z-stack's labels say z (not time) with its slice
spacing, and the labels of a (T, Z, Y, X) stack keep both the time interval and the slice spacing, whichever axis was
propagated (before: only the propagated one), from the command line and from the widget's Export labels."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import tifffile

from napari_sam2.export import Calibration, layer_other_steps, save_labels_tiff, tiff_calibration
from napari_sam2.layout import StackLayout

Z_SPACING, PIXEL, INTERVAL = 2.0, 0.3, 60.0


def pixels(path: Path) -> Dict[str, str]:
    """The OME ``Pixels`` attributes of a TIFF, with its axes under "axes"; for an ImageJ hyperstack (the labels TIFF
    whose ids fit 16 bits) the same names from its description: frames, slices, spacing, finterval (in seconds) and
    the X/YResolution tags (in pixels per ``unit``)."""
    with tifffile.TiffFile(path) as tif:
        axes = tif.series[0].axes
        if tif.is_imagej:
            meta, page = tif.imagej_metadata, tif.pages[0]
            symbol = {"micron": "\u00b5m"}.get(meta.get("unit"), meta.get("unit"))
            found = {"SizeT": str(meta.get("frames", 1)), "SizeZ": str(meta.get("slices", 1))}
            if "spacing" in meta:
                found.update(PhysicalSizeZ=str(meta["spacing"]), PhysicalSizeZUnit=symbol)
            if "finterval" in meta:
                found.update(TimeIncrement=str(meta["finterval"]), TimeIncrementUnit="s")
            if "unit" in meta:
                x, y = (1.0 / v for v in page.get_resolution())
                found.update(PhysicalSizeX=str(x), PhysicalSizeY=str(y), PhysicalSizeXUnit=symbol)
            return {**found, "axes": axes}
        found = re.search(r"<(?:\w+:)?Pixels\b([^>]*)>", tif.ome_metadata or "")
        attrs = dict(re.findall(r'(\w+)="([^"]*)"', found.group(1))) if found else {}
        return {**attrs, "axes": axes}


def spheres(num_slices: int = 6, size: int = 64) -> np.ndarray:
    """(Z, Y, X) uint16: two bright balls on a dim background, on every slice."""
    zz, yy, xx = np.mgrid[:num_slices, :size, :size]
    image = np.full((num_slices, size, size), 100, np.uint16)
    for cy, cx in ((20, 20), (40, 44)):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = 700
    return image


def write_prompts(path: Path, frame: int) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "obj_id", "y", "x", "label"])
        writer.writerows([[frame, 1, 20, 20, 1], [frame, 2, 40, 44, 1]])
    return path


def track(*arguments: str) -> None:
    from napari_sam2.cli import main

    assert main(["track", *arguments, "--device", "cpu", "--image-size", "128"]) == 0


def test_an_ome_zarr_z_stack_tracked_from_the_command_line_keeps_z_and_its_spacing(tmp_path: Path) -> None:
    """`napari-sam2 track zyx.ome.zarr --prompts ... -o out.tif` (NGFF 0.4 axes z/y/x, micrometer, scale [2, .3, .3]):
    before, the TIFF said SizeZ 1, SizeT 6 and had no PhysicalSizeZ (z taken as time, its step dropped)."""
    zarr = pytest.importorskip("zarr")
    group = zarr.open_group(str(tmp_path / "zyx.ome.zarr"), mode="w", zarr_format=2)
    group.create_array("0", data=spheres(), chunks=(1, 64, 64))
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": name, "type": "space", "unit": "micrometer"} for name in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [Z_SPACING, PIXEL, PIXEL]}]}]}]
    track(str(tmp_path / "zyx.ome.zarr"), "--prompts", str(write_prompts(tmp_path / "p.csv", 3)),
          "-o", str(tmp_path / "out.tif"))
    found = pixels(tmp_path / "out.tif")
    assert (found["axes"], found["SizeZ"], found["SizeT"]) == ("ZYX", "6", "1")
    assert (float(found["PhysicalSizeZ"]), found["PhysicalSizeZUnit"]) == (Z_SPACING, "\u00b5m")
    assert float(found["PhysicalSizeX"]) == PIXEL and "TimeIncrement" not in found


@pytest.fixture
def tzyx_tif(tmp_path: Path) -> Path:
    """An ImageJ hyperstack (T=3, Z=6, 64, 64): 60 s between time points, 2 um between slices, 0.3 um pixels."""
    path = tmp_path / "tzyx.tif"
    tifffile.imwrite(path, np.stack([spheres()] * 3), imagej=True, resolution=(1 / PIXEL, 1 / PIXEL),
                     metadata={"axes": "TZYX", "spacing": Z_SPACING, "unit": "um", "finterval": INTERVAL})
    return path


@pytest.mark.parametrize("axis, fix, frame", [("0", "1=3", 0), ("1", "0=1", 3)], ids=["through-t", "through-z"])
def test_tzyx_labels_from_the_command_line_keep_both_steps(tzyx_tif: Path, tmp_path: Path, axis: str, fix: str,
                                                          frame: int) -> None:
    """`--axis 0 --fix 1=3` wrote TimeIncrement and no PhysicalSizeZ; `--axis 1 --fix 0=1` PhysicalSizeZ and no
    TimeIncrement. Both labels (T, Z, Y, X) now record both."""
    out = tmp_path / f"labels_{axis}.tif"
    track(str(tzyx_tif), "--prompts", str(write_prompts(tmp_path / "p.csv", frame)), "--axis", axis, "--fix", fix,
          "-o", str(out))
    found = pixels(out)
    assert (found["axes"], found["SizeT"], found["SizeZ"]) == ("TZYX", "3", "6")
    assert (float(found["TimeIncrement"]), found["TimeIncrementUnit"]) == (INTERVAL, "s")
    assert (float(found["PhysicalSizeZ"]), found["PhysicalSizeZUnit"]) == (Z_SPACING, "\u00b5m")
    assert float(found["PhysicalSizeY"]) == pytest.approx(PIXEL)
    assert tifffile.imread(out).shape == (3, 6, 64, 64)


def test_a_tzyx_ome_zarr_tracked_from_the_command_line_gets_letters_and_both_steps(tmp_path: Path) -> None:
    """A (T, Z, Y, X) OME-Zarr (axes t/z/y/x, scale [60, 2, .3, .3]) tracked through t at z=3: before, its labels
    had no letters ("QQYX") and no calibration at all. Needs ``cli.labels_metadata`` to take the zarr's letters
    (``file_calibration.stack_letters``)."""
    zarr = pytest.importorskip("zarr")
    group = zarr.open_group(str(tmp_path / "tzyx.ome.zarr"), mode="w", zarr_format=2)
    group.create_array("0", data=np.stack([spheres()] * 3), chunks=(1, 1, 64, 64))
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": "t", "type": "time", "unit": "second"}] + [
        {"name": name, "type": "space", "unit": "micrometer"} for name in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [INTERVAL, Z_SPACING, PIXEL, PIXEL]}]}]}]
    track(str(tmp_path / "tzyx.ome.zarr"), "--prompts", str(write_prompts(tmp_path / "p.csv", 0)), "--axis", "0",
          "--fix", "1=3", "-o", str(tmp_path / "out.tif"))
    found = pixels(tmp_path / "out.tif")
    assert (found["axes"], found["SizeT"], found["SizeZ"]) == ("TZYX", "3", "6")
    assert (float(found["TimeIncrement"]), float(found["PhysicalSizeZ"])) == (INTERVAL, Z_SPACING)


def test_the_labels_tiff_writes_each_axis_step_it_has_a_letter_for(tmp_path: Path) -> None:
    """tiff_calibration: TimeIncrement where T is and PhysicalSizeZ where Z is, from the frame step or other_steps;
    a step of an axis the labels lack, or in a unit of the wrong kind, is left out; 3-D labels as before."""
    through_t = Calibration((PIXEL, PIXEL), "micrometer", INTERVAL, "second",
                            other_steps=(("Z", Z_SPACING, "micrometer"),))
    through_z = Calibration((PIXEL, PIXEL), "micrometer", Z_SPACING, "micrometer", frames_through_z=True,
                            other_steps=(("t", INTERVAL, "s"),))
    for calibration in (through_t, through_z):
        for axes in ("TZYX", "ZTYX"):
            metadata = tiff_calibration(calibration, axes)["metadata"]
            assert (metadata["TimeIncrement"], metadata["TimeIncrementUnit"]) == (INTERVAL, "s")
            assert (metadata["PhysicalSizeZ"], metadata["PhysicalSizeZUnit"]) == (Z_SPACING, "\u00b5m")
    assert "PhysicalSizeZ" not in tiff_calibration(through_t, "TYX")["metadata"]  # no z in these labels
    assert "TimeIncrement" not in tiff_calibration(through_z, "ZYX")["metadata"]
    wrong = Calibration((PIXEL, PIXEL), "micrometer", INTERVAL, "second", other_steps=(("Z", 5.0, "second"),))
    assert "PhysicalSizeZ" not in tiff_calibration(wrong, "TZYX")["metadata"]
    # ZTYX written and read back: tifffile places each step on its own axis
    save_labels_tiff(np.zeros((6, 3, 16, 16), np.uint32), tmp_path / "ztyx.tif", "ZTYX", through_z)
    found = pixels(tmp_path / "ztyx.tif")
    assert (found["SizeZ"], found["SizeT"], found["PhysicalSizeZ"], found["TimeIncrement"]) == \
        ("6", "3", "2.0", "60.0")


def test_calibration_refuses_other_steps_it_cannot_write() -> None:
    for bad, words in [((("Z", 2.0),), "triples"), ((("T", 2.0, "s"),), "other than Y, X and the frame"),
                       ((("Z", 2.0, "um"), ("z", 3.0, "um")), "given once"), ((("Y", 2.0, "um"),), "other than Y"),
                       ((("Z", -1.0, "um"),), "positive"), ((("Z", True, "um"),), "positive"),
                       ((("Z", 2.0, None),), "unit")]:
        with pytest.raises(ValueError, match=words):
            Calibration((1.0, 1.0), "micrometer", 1.0, "second", other_steps=bad)
    assert Calibration(other_steps=[["z", 2, "um"]]).other_steps == (("Z", 2.0, "um"),)
    assert Calibration().step("T") == (1.0, "frame") and Calibration().step("Z") is None


def test_a_layers_other_axis_gives_its_step() -> None:
    """layer_other_steps: the one non-spatial axis besides frames and channels, lettered as the widget's labels."""
    scale, units = (INTERVAL, Z_SPACING, PIXEL, PIXEL), ("second", "micrometer", "micrometer", "micrometer")
    assert layer_other_steps(scale, units, StackLayout(4, 0, fixed=((1, 3),)), False) == \
        (("Z", Z_SPACING, "micrometer"),)
    assert layer_other_steps(scale, units, StackLayout(4, 1, fixed=((0, 1),)), True) == (("T", INTERVAL, "second"),)
    assert layer_other_steps(scale, None, StackLayout(4, 0, fixed=((1, 3),)), False) == ()
    assert layer_other_steps(scale, ("pixel",) * 4, StackLayout(4, 0, fixed=((1, 3),)), False) == ()
    assert layer_other_steps(scale[1:], units[1:], StackLayout(3, 0), False) == ()
    assert layer_other_steps((1.0,) * 5, ("second",) * 5, StackLayout(5, 0, fixed=((1, 0), (2, 0))), False) == ()


@pytest.mark.gui
def test_the_widgets_export_of_tzyx_labels_keeps_both_steps(make_napari_viewer, qtbot, tmp_path, monkeypatch) -> None:
    """Export labels of a TZYX layer of scale (60 s, 2 um, .3 um, .3 um), propagated through t on z=3: before, the
    TIFF had TimeIncrement and no PhysicalSizeZ. Needs the widget's ``calibration()`` to pass the layer's other axis
    (``layer_other_steps``)."""
    from widget_helpers import open_widget, wait

    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    viewer.add_image(np.stack([spheres()] * 3), name="tzyx", scale=(INTERVAL, Z_SPACING, PIXEL, PIXEL),
                     units=("s", "um", "um", "um"))
    viewer.dims.set_current_step(1, 3)
    widget.points_layer.add(np.array([[0, 3, 20, 20]]))  # data coordinates (the clicks layer has the image's scale)
    wait(qtbot, widget)
    widget.forward_button.click()
    wait(qtbot, widget)
    assert widget.labels_layer.data[:, 3].any(), widget.status.text()
    found = pixels(Path(widget.export("labels", str(tmp_path / "tzyx_labels.tif"))))
    assert (found["axes"], found["SizeT"], found["SizeZ"]) == ("TZYX", "3", "6")
    assert (float(found["TimeIncrement"]), found["TimeIncrementUnit"]) == (INTERVAL, "s")
    assert (float(found["PhysicalSizeZ"]), found["PhysicalSizeZUnit"]) == (Z_SPACING, "\u00b5m")
