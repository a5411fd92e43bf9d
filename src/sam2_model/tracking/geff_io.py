"""GEFF (graph exchange format for tracking, zarr-based) through the ``geff`` package.

Nodes are (track, frame) detections with properties t, (z,) y, x (centroid), area (pixels), track_id (the id of
the CTC folder and the tracks table), tracklet_id and lineage_id; edges join a track's consecutive detections and
a mother's last detection to each daughter's first.

Metadata: axis t is type "time" with unit "frame", axes (z,) y, x are type "space" with unit "pixel": node
positions stay frame indices and pixel coordinates of the labels (GEFF's convention: a time unit "frame" means
the image index). A calibration (``scale``, ``units`` of :func:`write_geff`) is written as each axis's GEFF
``scale`` and ``scaled_unit`` (the physical size of one frame or pixel), which readers apply.
``track_node_props`` declares ``tracklet_id`` (GEFF tracklets: maximal unbranched paths; the track_id of the
path's first track, so it equals track_id except where a track goes on as a single later piece, e.g. a piece cut
after a gap by ``ctc_consistent`` or a mother with one daughter) and ``lineage_id`` (the track_id of the
lineage's root: one id per weakly connected component). Properties, edges and metadata are written in a fixed
order, so one result gives byte-identical folders in any process. The folder is written next to the target and
renamed when complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..atomic_files import publish_together, temporary_folder
from .lineage import Detection, Lineage, frame_detections  # frame_detections: public here too

# Units are written as OME-NGFF names (GEFF's recommendation; napari's pint units give these names). Other common
# spellings (ImageJ's "micron", "um", "s", "min", ...) are read as the names they stand for.
_EXAMPLE_UNITS = {"space": "micrometer, nanometer, millimeter (or um, micron, nm, mm)",
                  "time": "second, minute, hour, millisecond (or s, min, h, ms)"}
_ALIASES = {
    "um": "micrometer", "\u00b5m": "micrometer", "\u03bcm": "micrometer", "micron": "micrometer",
    "microns": "micrometer", "micrometre": "micrometer", "nm": "nanometer", "nanometre": "nanometer",
    "mm": "millimeter", "millimetre": "millimeter", "cm": "centimeter", "centimetre": "centimeter", "m": "meter",
    "metre": "meter", "\u00e5": "angstrom", "px": "pixel", "pixels": "pixel",
    "ms": "millisecond", "msec": "millisecond", "s": "second", "sec": "second", "secs": "second",
    "min": "minute", "mins": "minute", "h": "hour", "hr": "hour", "hrs": "hour", "d": "day", "frames": "frame",
}
NODE_PROPS = {  # name: (description, unit) in the order written
    "t": ("frame index in the stack", "frame"),
    "z": ("centroid plane", "pixel"),
    "y": ("centroid row", "pixel"),
    "x": ("centroid column", "pixel"),
    "area": ("number of pixels (voxels in a volume)", None),
    "track_id": ("track id of the CTC folder (res_track.txt, masks) and the tracks table", None),
    "tracklet_id": ("GEFF tracklet: maximal unbranched path; the track_id of its first track", None),
    "lineage_id": ("track_id of the lineage's root (one per weakly connected component)", None),
}


def geff_axis_names(ndim: int) -> Tuple[str, ...]:
    """GEFF axis names of labels with ``ndim`` axes: (H, W) (one frame) or (T, H, W): t, y, x; (T, Z, H, W):
    t, z, y, x."""
    if ndim not in (2, 3, 4):
        raise ValueError(f"labels must be (T, H, W) or (T, Z, H, W) track ids, got {ndim} axes")
    return ("t", "z", "y", "x") if ndim == 4 else ("t", "y", "x")


def unit_name(unit: Any, kind: str) -> Optional[str]:
    """The OME-NGFF name of ``unit`` (a str or a pint unit) for a "space" or "time" axis; None for None, "pixel"
    and "frame" (not calibrated). ValueError for a unit of the other kind or one that is not known."""
    if unit is None:
        return None
    text = str(unit).strip()
    name = _ALIASES.get(text.lower(), text.lower())
    if name in ("pixel", "frame"):
        return None
    from geff_spec import validate_space_unit, validate_time_unit  # (here: an uncalibrated axis needs no import)

    if (validate_space_unit if kind == "space" else validate_time_unit)(name):
        return name
    length = "length" if kind == "space" else "time"
    raise ValueError(f"{text!r} is not a {length} unit; use one of {_EXAMPLE_UNITS[kind]} "
                     f"(OME-NGFF names), or None / {'pixel' if kind == 'space' else 'frame'} for no calibration")


def geff_axes(names: Sequence[str], scale: Optional[Sequence[Any]] = None,
              units: Optional[Sequence[Any]] = None, offset: Optional[Sequence[Any]] = None) -> List[Any]:
    """GEFF ``Axis`` objects for axes ``names`` (t first, then space): unit "frame" / "pixel" (the node positions),
    with ``scale`` and ``scaled_unit`` where a calibration is given and ``offset`` where the axis does not start at 0
    (see :func:`write_geff`). ValueError naming the axis for a bad scale, unit or offset."""
    from geff_spec import Axis

    for what, values in (("scale", scale), ("units", units), ("offset", offset)):
        if values is not None and len(values) != len(names):
            raise ValueError(f"{what} must give one entry per axis ({', '.join(names)}): {len(names)} entries, "
                             f"got {len(values)}")
    axes = []
    for i, name in enumerate(names):
        kind = "time" if name == "t" else "space"
        try:
            scaled_unit = unit_name(None if units is None else units[i], kind)
        except ValueError as error:
            raise ValueError(f"units: axis {name}: {error}") from None
        step = _scale_value(name, None if scale is None else scale[i])
        if scaled_unit is not None and step is None:
            step = 1.0  # a unit without a scale: one frame / pixel is one of that unit (napari's default scale)
        if scaled_unit is None and step == 1.0:
            step = None  # a scale of 1 in frames / pixels says nothing
        shift = _offset_value(name, None if offset is None else offset[i])
        axes.append(Axis(name=name, type=kind, unit="frame" if kind == "time" else "pixel", scale=step,
                         scaled_unit=scaled_unit, offset=shift))
    return axes


def _offset_value(axis: str, value: Any) -> Optional[float]:
    """An axis's offset as a float; None for None or 0 (an axis that starts at 0 says nothing)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise ValueError(f"offset: axis {axis} must be a finite number or None, got {value!r}")
    return float(value) or None


def _scale_value(axis: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"scale: axis {axis} must be a positive finite number or None, got {value!r}")
    return float(value)


def detections(labels: Any) -> List[Detection]:
    """(track_id, frame, centroid, area) of every id on every frame of labels (T, H, W) (centroid (y, x)) or
    (T, Z, H, W) (centroid (z, y, x)) ((H, W): one frame), sorted by track then frame.

    Read a frame at a time (``labels[t]``: a numpy, zarr or dask stack, or a :class:`.ctc_io.ConsistentLabels`), and
    each frame measured in a few numpy passes over its cells' pixels only (:func:`frame_detections`): no copy of the
    stack, and no long call that holds the GIL (a GUI's export worker leaves napari responsive)."""
    labels = labels if hasattr(labels, "shape") else np.asarray(labels)
    shape = tuple(int(n) for n in labels.shape)
    if len(shape) == 2:
        return sorted(frame_detections(0, np.asarray(labels)), key=lambda row: (row[0], row[1]))
    rows: List[Detection] = []
    for frame in range(shape[0]):
        rows += frame_detections(frame, np.asarray(labels[frame]))
    return sorted(rows, key=lambda row: (row[0], row[1]))


def graph_arrays(labels: Any, lineage: Lineage) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """(node properties, edges) of a tracking result: labels (T, H, W) or (T, Z, H, W), lineage.

    Node i (0..N-1) is the i-th detection by (track, frame); properties (N,) in the order written: t, (z,) y, x,
    area, track_id, tracklet_id, lineage_id. Edges (E, 2) uint64 (source, target), sorted: a track's consecutive
    detections, and a mother's last detection to each daughter's first (tracks present in the labels only).
    ValueError where the parents of the lineage form a cycle.
    """
    rows = detections(labels)
    names = geff_axis_names(np.ndim(labels))[1:]
    first: Dict[int, int] = {}
    last: Dict[int, int] = {}
    edges: List[Tuple[int, int]] = []
    for node, (track_id, _, _, _) in enumerate(rows):
        if track_id in last:
            edges.append((last[track_id], node))
        first.setdefault(track_id, node)
        last[track_id] = node
    for track in lineage.rows():
        if track.parent and track.parent in last and track.track_id in first:
            edges.append((last[track.parent], first[track.track_id]))
    edges.sort()
    track_ids = np.asarray([row[0] for row in rows], dtype=np.int64)
    tracklets, lineages = _tracklets_and_lineages(track_ids, edges)
    props = {"t": np.asarray([row[1] for row in rows], dtype=np.int64)}
    for axis, name in enumerate(names):
        props[name] = np.asarray([row[2][axis] for row in rows], dtype=np.float64)
    props.update(area=np.asarray([row[3] for row in rows], dtype=np.int64), track_id=track_ids,
                 tracklet_id=tracklets, lineage_id=lineages)
    return props, np.asarray(edges, dtype=np.uint64).reshape(-1, 2)


def _tracklets_and_lineages(track_ids: np.ndarray, edges: Sequence[Tuple[int, int]]) -> Tuple[np.ndarray, np.ndarray]:
    """GEFF tracklet and lineage id of each node (every node has at most one incoming edge): a node continues its
    predecessor's tracklet when that predecessor has no other successor; lineage ids come from the root."""
    count = len(track_ids)
    parent = np.full(count, -1, dtype=np.int64)
    children: List[List[int]] = [[] for _ in range(count)]
    for source, target in edges:
        parent[target] = source
        children[source].append(target)
    tracklets = track_ids.copy()
    lineages = track_ids.copy()
    order = [node for node in range(count) if parent[node] < 0]
    for node in order:  # grows as it goes: every node after its predecessor
        source = int(parent[node])
        if source >= 0:
            lineages[node] = lineages[source]
            if len(children[source]) == 1:
                tracklets[node] = tracklets[source]
        order.extend(children[node])
    if len(order) != count:
        cycle = sorted(set(track_ids.tolist()) - set(track_ids[order].tolist()))
        raise ValueError(f"the lineage's parents form a cycle (tracks {cycle}); a track's parent must end before it")
    return tracklets, lineages


def write_geff(path: os.PathLike, labels: Any, lineage: Lineage, overwrite: bool = False, *,
               scale: Optional[Sequence[Optional[float]]] = None,
               units: Optional[Sequence[Any]] = None, offset: Optional[Sequence[Optional[float]]] = None) -> Path:
    """Write the result as a GEFF zarr folder at ``path`` (e.g. ``tracks.geff``); returns ``path``.

    labels: (T, H, W) or (T, Z, H, W) track ids ((H, W): one frame), read a frame at a time (:func:`detections`);
    lineage: their tracks (parents).
    scale: the physical size of one step along each labels axis, in their order (t, (z,) y, x), e.g.
        (300.0, 0.65, 0.65) for 5-minute frames of 0.65 um pixels (napari's ``layer.scale``); None, or None for
        one axis: not calibrated.
    units: the unit of each of those steps, same order, e.g. ("second", "micrometer", "micrometer") (napari's
        ``layer.units``, as names or pint units): OME-NGFF names (``um``, ``micron``, ``nm``, ``s``, ``min``, ``h``,
        ... are read as these); None, "pixel" or "frame": not calibrated. A unit without a scale means a scale of 1.
    offset: where index 0 of each axis lies, same order, in the scaled unit (napari's ``layer.translate``): a node at
        index i is at ``offset + scale * i``, where napari draws it; None, or None / 0 for one axis: at 0.
    Node positions stay frame indices and pixels (axis units "frame" and "pixel": t is the labels' index, from 0, also
    for a result of part of a movie, ``napari_sam2.track_cells(..., frames=(first, last))``, whose frame ``first`` is
    t 0 as in ``napari-sam2 track --frames A-B``'s GEFF: there a time ``offset`` is the movie's frame ``first``'s,
    which ``napari_sam2.track_export.export_tracking`` places); a calibration is each axis's
    GEFF ``scale``, ``scaled_unit`` and ``offset``. A bad scale or unit, labels of another shape, or an existing ``path``
    without ``overwrite`` raise ValueError before anything is written.
    """
    from geff.core_io import write_arrays
    from geff_spec import GeffMetadata, PropMetadata

    path = Path(path)
    if path.exists() and not overwrite:
        raise ValueError(f"path {path} exists; pass overwrite=True or choose a new name")
    axes = geff_axes(geff_axis_names(np.ndim(labels)), scale, units, offset)
    props, edges = graph_arrays(labels, lineage)
    metadata = GeffMetadata(
        directed=True, axes=axes, edge_props_metadata={},
        node_props_metadata={name: PropMetadata(identifier=name, dtype=values.dtype, unit=NODE_PROPS[name][1],
                                                description=NODE_PROPS[name][0]) for name, values in props.items()},
        track_node_props={"tracklet": "tracklet_id", "lineage": "lineage_id"})
    node_ids = np.arange(len(props["t"]), dtype=np.uint64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_folder(path) / path.name  # geff makes it with the mode of a plain mkdir() (umask)
    try:
        write_arrays(tmp, node_ids, {name: {"values": values, "missing": None} for name, values in props.items()},
                     edges, {}, metadata)
        publish_together([(tmp, path)])  # an earlier GEFF is moved aside, and back if the rename fails
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)
    return path


def read_geff(path: os.PathLike) -> Tuple[object, object]:
    """(networkx DiGraph, GeffMetadata) of a GEFF folder."""
    import geff

    return geff.read(Path(path))
