"""Where napari's Tracks layers of an image go: the tracks' columns and the layer's scale and translate, taken from the
image's axes so that the tracks' time lies on the image's time axis and their points on the masks.

napari aligns a layer's axes with the viewer's trailing axes, so (id, t, y, x) tracks over a (T, C, Y, X) or
(T, Z, Y, X) image would put their time on C or Z: such an image's one other axis gets a column of its own (the fixed
slice, or channel 0; Tracks show their points across that axis)."""

from __future__ import annotations

from typing import Any, Sequence, Tuple

import numpy as np

from .layout import StackLayout


def tracks_placement(data: np.ndarray, image: Any, layout: StackLayout) -> Tuple[np.ndarray, tuple, tuple]:
    """(data, scale, translate) for a Tracks layer over ``image`` (a napari Image layer) segmented with ``layout``.

    data: (N, 4) float [track id, frame, row, col] in pixels of the frames. The result's data has a column more for an
    image with one axis besides its frames and planes that comes after the frame axis; otherwise it is ``data``.
    """
    ndim = image.data.ndim - (1 if image.rgb else 0)
    frame = layout.frame_axis
    rows, cols = layout.spatial_axes
    others = [axis for axis in range(ndim) if axis not in (frame, rows, cols)]

    def along(values: Sequence[float], axes: Sequence[Any], unset: float) -> tuple:
        return tuple(float(values[axis]) if axis is not None else unset for axis in axes)

    if frame is not None and len(others) == 1 and frame < others[0]:
        other = others[0]
        data = np.insert(np.asarray(data, float), 2, float(dict(layout.fixed).get(other, 0)), axis=1)
        axes = [frame, other, rows, cols]
        return data, along(image.scale, axes, 1.0), along(image.translate, axes, 0.0)
    axes = [frame, rows, cols]
    return np.asarray(data, float), along(image.scale, axes, 1.0), along(image.translate, axes, 0.0)
