"""The physical size of a stack's pixels and frames, read from its file: ImageJ and OME-TIFF metadata, OME-Zarr
(and an OME-Zarr's translation: where the image lies, as napari places it).

The command line and batch runs read no napari layer, so the pixel size and frame interval a microscope wrote into
the file are what calibrates their GEFF axes. Only headers are read. A file that says nothing (a plain TIFF, a .npy
file, a folder of frames) gives None: outputs stay in pixels and frames, as before.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from .export import Calibration
from .units import file_unit_name as unit_name  # a unit as a file spells it -> its OME-NGFF name


def read_calibration(path: Any, frame_axis: Optional[int], spatial_axes: Sequence[int],
                     frames_through_z: bool = False) -> Optional[Calibration]:
    """The calibration of the stack at ``path`` for frames along ``frame_axis`` and rows, columns on
    ``spatial_axes`` (the stack's axis indices), or None where the file records no pixel size.

    frames_through_z: the frames are a volume's slices (the frame step is then the slice spacing). An OME-Zarr
    whose first dataset has a ``translation`` gives it as the calibration's origin
    (t, y, x) (napari's layer ``translate``), written as the GEFF axes' offset."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff") and path.is_file():
            found = _tiff_sizes(path, frames_through_z)
        elif path.is_dir():
            found = _zarr_sizes(path, frame_axis, spatial_axes)
        else:
            return None
    except Exception:  # unreadable metadata is not a reason to fail a run: stay uncalibrated
        return None
    if found is None:
        return None
    (row, col), length_unit, step, step_unit, origin = found
    if not all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in (row, col)) or length_unit is None:
        return None
    good_step = step is not None and math.isfinite(step) and step > 0 and step_unit is not None
    calibration = Calibration((row, col), length_unit, step if good_step else 1.0,
                              step_unit if good_step else "frame", frames_through_z=frames_through_z,
                              origin=(0.0, 0.0, 0.0) if origin is None else origin)
    return calibration


#: ((row, col) size, length unit, frame step, its unit, origin (t, y, x) or None where the file places nothing)
Sizes = Tuple[Tuple[float, float], Optional[str], Optional[float], Optional[str], Optional[Tuple[float, float, float]]]


def _tiff_sizes(path: Path, frames_through_z: bool) -> Optional[Sizes]:
    """((row, col) size, length unit, frame step, its unit, None) from an OME-TIFF's or an ImageJ TIFF's metadata (no
    origin: napari's TIFF reader places every TIFF at 0)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if tif.is_ome and tif.ome_metadata:
            return _ome_xml_sizes(tif.ome_metadata, frames_through_z)
        if not tif.is_imagej:
            return None
        meta: Dict[str, Any] = tif.imagej_metadata or {}
        tags = tif.pages[0].tags
        if "XResolution" not in tags or "YResolution" not in tags:
            return None
        per_unit = [tags[name].value for name in ("YResolution", "XResolution")]
        sizes = tuple(float(den) / float(num) if num else float("nan") for num, den in per_unit)
        length_unit = unit_name(meta.get("unit"))
        if frames_through_z:
            step, step_unit = meta.get("spacing"), length_unit
        else:
            step, step_unit = meta.get("finterval"), unit_name(meta.get("tunit", "sec"))
        return sizes, length_unit, None if step is None else float(step), step_unit, None  # type: ignore[return-value]


def _ome_xml_sizes(xml: str, frames_through_z: bool) -> Optional[Sizes]:
    """The first image's PhysicalSizeY/X (default unit µm), TimeIncrement (default s) or PhysicalSizeZ."""
    pixels = re.search(r"<(?:\w+:)?Pixels\b([^>]*)>", xml)
    if pixels is None:
        return None
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', pixels.group(1)))
    if "PhysicalSizeX" not in attrs or "PhysicalSizeY" not in attrs:
        return None
    length_unit = unit_name(attrs.get("PhysicalSizeXUnit", "\u00b5m"))
    if frames_through_z:
        step, step_unit = attrs.get("PhysicalSizeZ"), unit_name(attrs.get("PhysicalSizeZUnit", "\u00b5m"))
    else:
        step, step_unit = attrs.get("TimeIncrement"), unit_name(attrs.get("TimeIncrementUnit", "s"))
    return ((float(attrs["PhysicalSizeY"]), float(attrs["PhysicalSizeX"])), length_unit,
            None if step is None else float(step), step_unit, None)


def _zarr_sizes(path: Path, frame_axis: Optional[int], spatial_axes: Sequence[int]) -> Optional[Sizes]:
    """From OME-Zarr ``multiscales``: the axes' units and the first dataset's scale and translation
    transformations (the origin: None without a translation)."""
    import zarr

    group = zarr.open(str(path), mode="r")
    attrs = dict(group.attrs)
    multiscales = attrs.get("multiscales") or (attrs.get("ome") or {}).get("multiscales")
    if not multiscales:
        return None
    first = multiscales[0]
    axes = first.get("axes") or []
    transforms = first["datasets"][0].get("coordinateTransformations", [])
    scale = next((t.get("scale") for t in transforms if t.get("type") == "scale"), None)
    translation = next((t.get("translation") for t in transforms if t.get("type") == "translation"), None)
    if scale is None or len(axes) != len(scale):
        return None
    row, col = spatial_axes
    units = [unit_name(a.get("unit")) if isinstance(a, dict) else None for a in axes]
    step = None if frame_axis is None else float(scale[frame_axis])
    step_unit = None if frame_axis is None else units[frame_axis]
    origin = _zarr_origin(translation, len(scale), (frame_axis, row, col))
    return (float(scale[row]), float(scale[col])), units[col], step, step_unit, origin


def _zarr_origin(translation: Any, ndim: int, axes: Tuple[Optional[int], int, int]) -> Optional[Tuple[float, ...]]:
    """(t, y, x) of an OME-Zarr ``translation`` (one number per axis) along ``axes`` (frame, row, col; frame None: t
    0); None where there is none or it is not ``ndim`` finite numbers (a broken origin places nothing)."""
    if not isinstance(translation, (list, tuple)) or len(translation) != ndim:
        return None
    try:
        origin = tuple(0.0 if axis is None else float(translation[axis]) for axis in axes)
    except (TypeError, ValueError):
        return None
    return origin if all(math.isfinite(v) for v in origin) else None


def frames_through_z(axes: Optional[str], frame_axis: Optional[int]) -> bool:
    """Whether a stack's axis letters ``axes`` (a TIFF's or OME-Zarr's, e.g. "ZYX") name its ``frame_axis`` Z: the
    frames are a volume's slices (a stack without letters is taken as time)."""
    return isinstance(axes, str) and frame_axis is not None and 0 <= frame_axis < len(axes) and \
        axes[frame_axis].upper() == "Z"


def stack_calibration(path: Any, axes: Optional[str], layout: Any) -> Optional[Calibration]:
    """:func:`read_calibration` of the stack at ``path`` read under ``layout`` (a :class:`~.layout.StackLayout`),
    its frames a volume's slices where the stack's axis letters ``axes`` name the frame axis Z."""
    frame = layout.frame_axis
    return read_calibration(path, frame, layout.spatial_axes, frames_through_z=frames_through_z(axes, frame))
