"""One colour per object id, shared by the clicks, the boxes and the masklets Labels layer."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from napari.utils.colormaps import label_colormap

OBJECT_COLORMAP = label_colormap(49)  # the masklets layer uses this colormap, so label k has this colour
POSITIVE_SYMBOL, NEGATIVE_SYMBOL = "disc", "x"


def object_colors(obj_ids: Sequence[int]) -> np.ndarray:
    """RGBA (N, 4) float colours of object ids (the masklets layer shows label k in this colour)."""
    ids = np.asarray(obj_ids, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        return np.zeros((0, 4), np.float32)
    return np.asarray(OBJECT_COLORMAP.map(ids), dtype=np.float32)


def style_points(points) -> None:
    """Colour each click by its object and give positive and negative clicks their own symbols."""
    features = points.features
    if len(points.data):
        positive = features["positive"].to_numpy(bool)
        points.face_color = object_colors(features["obj_id"].to_numpy(int))
        points.symbol = np.where(positive, POSITIVE_SYMBOL, NEGATIVE_SYMBOL)
    points.selected_data = set()  # napari applies current_* to selected points; keep those as they are
    defaults = points.feature_defaults
    obj_id, positive = int(defaults["obj_id"].iloc[0]), bool(defaults["positive"].iloc[0])
    points.current_face_color = object_colors([obj_id])[0]
    points.current_symbol = POSITIVE_SYMBOL if positive else NEGATIVE_SYMBOL


def style_boxes(boxes) -> None:
    """Edge colour of each box = its object's colour."""
    if len(boxes.data):
        boxes.edge_color = object_colors(boxes.features["obj_id"].to_numpy(int))
    boxes.selected_data = set()
    boxes.current_edge_color = object_colors([int(boxes.feature_defaults["obj_id"].iloc[0])])[0]
