"""Where napari's Tracks layers of an image go: the tracks' columns and the layer's scale and translate, taken from the
image's axes so that the tracks' time lies on the image's time axis and their points on the masks.

napari aligns a layer's axes with the viewer's trailing axes, so (id, t, y, x) tracks over a (T, C, Y, X) or
(T, Z, Y, X) image would put their time on C or Z: such an image's one other axis gets a column of its own (the fixed
slice, or channel 0; Tracks show their points across that axis). :func:`lazy_tracks_layer_data`: the Tracks data of a
tracking result read a frame at a time (the masklets layer in place: no copy of the stack); not
:func:`~.export.tracks_of`, the export's Tracks data of label planes read through a callback."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from sam2_model.tracking import tracks_layer_data

from ._image_state import ROLE_KEY, axes_metadata, image_transform, layer_name, layer_role, place_layer, spatial_ndim
from .layout import StackLayout

#: the base name of each Tracks layer made over an image, by its role (:func:`tracks_role`): Add Tracks layer's and
#: Track all's lineage, named "<base> [<image's name>]" (:func:`~._image_state.layer_name`)
TRACKS_NAMES = {"tracks": "SAM2 tracks", "lineage": "SAM2 lineage"}
#: what a layer set aside when its image got data of another shape (a crop) adds to its name (:func:`set_aside`)
OLD_DATA = " (old data)"


def _tracks_axes(image: Any, layout: StackLayout) -> Tuple[List[Optional[int]], Optional[int]]:
    """(the image axis of each Tracks coordinate column after the track id, the image's one other axis given a column
    of its own or None): [frame, rows, cols] or [frame, other, rows, cols]; frame is None for a single 2-D image."""
    ndim = spatial_ndim(image)
    frame = layout.frame_axis
    rows, cols = layout.spatial_axes
    others = [axis for axis in range(ndim) if axis not in (frame, rows, cols)]
    if frame is not None and len(others) == 1 and frame < others[0]:
        return [frame, others[0], rows, cols], others[0]
    return [frame, rows, cols], None


def tracks_placement(data: np.ndarray, image: Any, layout: StackLayout) -> Tuple[np.ndarray, tuple, tuple]:
    """(data, scale, translate) for a Tracks layer over ``image`` (a napari Image layer) segmented with ``layout``.

    data: (N, 4) float [track id, frame, row, col] in pixels of the frames. The result's data has a column more for an
    image with one axis besides its frames and planes that comes after the frame axis; otherwise it is ``data``.
    """
    axes, other = _tracks_axes(image, layout)

    def along(values: Sequence[float], unset: float) -> tuple:
        return tuple(float(values[axis]) if axis is not None else unset for axis in axes)

    data = np.asarray(data, float)
    if other is not None:
        data = np.insert(data, 2, float(dict(layout.fixed).get(other, 0)), axis=1)
    return data, along(image.scale, 1.0), along(image.translate, 0.0)


def tracks_metadata(image: Any, layout: Optional[StackLayout]) -> Dict[str, tuple]:
    """``units`` and ``axis_labels`` keyword arguments for ``viewer.add_tracks`` over ``image``, so the Tracks layer
    has the image's physical units (napari otherwise warns "Inconsistent units across layers" and drops every layer's
    units); {} for an image without units (older napari).

    layout: the columns are those :func:`tracks_placement` gives for it; None: (frame, row, col) are the image's first
    and last two axes (the columns of ``track_all.frame_and_plane``).
    """
    return axes_metadata(image, tracks_columns(image, layout))


def tracks_columns(image: Any, layout: Optional[StackLayout]) -> List[Optional[int]]:
    """The image axis of each coordinate column (after the track id) of a Tracks layer over ``image``: those of
    :func:`tracks_placement` for ``layout``; None: (frame, row, col) are the image's first and last two axes (the
    columns of ``track_all.frame_and_plane``; [None, 0, 1] for a single 2-D image)."""
    if layout is not None:
        return _tracks_axes(image, layout)[0]
    ndim = spatial_ndim(image)
    return [0, ndim - 2, ndim - 1] if ndim >= 3 else [None, 0, 1]


def tracks_role(role: str, image: Any, layout: Optional[StackLayout]) -> Dict[str, Any]:
    """``metadata`` keyword argument marking a new Tracks layer as ``image``'s ``role`` layer ("tracks": the Add
    Tracks layer button's, "lineage": Track all's), with the image axis of each of its columns
    (:func:`tracks_columns`), so that :func:`follow_image` can place it when the image's scale, translate, rotation,
    shear, affine transform or units change."""
    return {"metadata": {ROLE_KEY: {"role": role, "image": str(image.unique_id),
                                    "columns": tracks_columns(image, layout)}}}


def own_tracks(layer: Any) -> Any:
    """Add ``layer``'s own ``unique_id`` to its :func:`tracks_role` mark (after it was made or given the mark again),
    so that only this layer follows the image (:func:`follow_image`): napari's Duplicate Layer copies the metadata,
    mark included, into a person's copy, whose placement stays the person's. Returns ``layer``."""
    mark = layer.metadata.get(ROLE_KEY)
    if isinstance(mark, dict):
        layer.metadata = {**layer.metadata, ROLE_KEY: {**mark, "layer": str(layer.unique_id)}}
    return layer


def tracks_transform(image: Any, layout: Optional[StackLayout]) -> Dict[str, np.ndarray]:
    """The ``rotate``, ``shear`` and ``affine`` keyword arguments of a Tracks layer over ``image`` (its columns:
    :func:`tracks_columns`), from the image's own (:func:`~._image_state.image_transform`)."""
    return image_transform(image, tracks_columns(image, layout))


def _own_mark(layer: Any, image: Any) -> Dict[str, Any]:
    """The :func:`tracks_role` mark of the Tracks ``layer`` when it is one of ``image``'s own (:func:`own_tracks`: not a
    person's copy of one); {} for any other layer."""
    role, owner = layer_role(layer)
    mark = layer.metadata.get(ROLE_KEY, {}) if role in TRACKS_NAMES else {}
    own = owner == str(image.unique_id) and mark.get("layer") == str(layer.unique_id)
    return dict(mark) if own else {}


def own_tracks_role(layer: Any, image: Any) -> str:
    """The role ("tracks": Add Tracks layer's, "lineage": Track all's) of the Tracks ``layer`` marked as one of
    ``image``'s own (:func:`tracks_role`, :func:`own_tracks`; not a person's copy of one), else ""."""
    return str(_own_mark(layer, image).get("role", ""))


def set_aside(layer: Any) -> str:
    """Keep ``layer`` (one of an image's layers: its masklets, a Tracks layer, its correction clicks), made on the
    image's old pixels before it got data of another shape (a crop), under its name and :data:`OLD_DATA`, no longer
    the image's: its mark (:data:`~._image_state.ROLE_KEY`) goes, so it stops following the image's placement and
    name and is not adopted or used again. Returns its new name."""
    metadata = dict(layer.metadata)
    metadata.pop(ROLE_KEY, None)
    layer.metadata = metadata
    layer.name = f"{layer.name}{OLD_DATA}"
    return str(layer.name)


def rename_with_image(layer: Any, image: Any, old_name: str) -> bool:
    """Give the Tracks ``layer`` marked as one of ``image``'s own (:func:`_own_mark`) the name it would be given now,
    after the image was renamed from ``old_name``, as its clicks, boxes and masklets layers are (e.g. "SAM2 lineage
    [cells]" -> "SAM2 lineage [cells 2]"); a name the person gave it is kept. True when renamed."""
    base = TRACKS_NAMES.get(str(_own_mark(layer, image).get("role", "")))
    if base is None or layer.name != layer_name(base, image, old_name) or old_name == image.name:
        return False
    layer.name = layer_name(base, image)
    return True


def follow_image(layer: Any, image: Any) -> bool:
    """Place the Tracks ``layer`` marked as one of ``image``'s (:func:`tracks_role`, :func:`own_tracks`) on the image
    as it is now: the image's scale, translate, rotation, shear, affine transform and units of the axes its columns
    are. True when placed (False: not such a layer, a copy of one (its mark names another layer), or its columns do
    not fit it)."""
    columns = _own_mark(layer, image).get("columns")
    ndim = spatial_ndim(image)
    if not isinstance(columns, list) or len(columns) != len(layer.scale) or \
            not all(a is None or (isinstance(a, int) and 0 <= a < ndim) for a in columns):
        return False

    def along(values: Sequence[float], unset: float) -> List[float]:
        return [float(values[axis]) if axis is not None else unset for axis in columns]

    units = axes_metadata(image, columns).get("units")
    place_layer(layer, along(image.scale, 1.0), along(image.translate, 0.0), image_transform(image, columns), units)
    return True


class _FrameAtATime:
    """A (T, H, W) stack read a frame at a time, the frame read last kept (one plane): each frame is read once even
    where a reader indexes it twice in a row (``frame_centroids``: its ids, then their centres), so both come from
    one state of the frame."""

    def __init__(self, frames: Any) -> None:
        self.frames, self.shape, self.ndim = frames, tuple(frames.shape), 3
        self._last: Tuple[int, Optional[np.ndarray]] = (-1, None)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, frame: int) -> np.ndarray:
        t = int(frame)
        if self._last[0] != t:
            self._last = (t, np.array(self.frames[t]))  # a copy of this plane: the layer may be painted meanwhile
        return self._last[1]


def lazy_tracks_layer_data(result: Any) -> Tuple[np.ndarray, Dict[int, List[int]]]:
    """napari Tracks (data (N, 4) [track, t, y, x], graph {child: [parent]}) of a tracking ``result``
    (``tracks_layer_data``) whose labels are read a frame at a time, each frame once (a copy of that one plane), never
    the stack copied: e.g. :meth:`~.track_all.TrackAll.result` with ``lazy=True``, whose frames may be painted
    meanwhile (read again unwatched: a frame changed since the result's first read is read as it is now, not refused;
    what changed it has the Tracks follow again)."""
    labels = result.labels
    if getattr(labels, "watch", False):  # a FramesView: read without comparing with its first reads
        labels = dataclasses.replace(labels, watch=False, read={})
    return tracks_layer_data(dataclasses.replace(result, labels=_FrameAtATime(labels)))
