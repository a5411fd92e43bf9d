"""One colour per object id, shared by the clicks, the boxes, the masklets Labels layer and the objects panel.

The colours are a fixed palette of :data:`PALETTE_SIZE` colours, each as far (CIELAB distance) from the colours of
the ids before it as the candidates allow: ids 1-100 are at least ~17 apart (ΔE76; ~2.3 is the smallest difference
people see), so neighbouring cells clicked one after the other look different. Id k and k + PALETTE_SIZE share a
colour. The palette is computed from constants only (no randomness), so an id has the same colour in every run and
session.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from napari.utils.colormaps import CyclicLabelColormap

POSITIVE_SYMBOL, NEGATIVE_SYMBOL = "disc", "x"
PALETTE_SIZE = 255  # with the transparent background: 256 colours, so napari draws the labels through a uint8 texture
_GRID_STEP = 15  # candidate sRGB levels 0, 15, ..., 255 per channel
_LIGHTNESS = (40.0, 90.0)  # CIELAB L*: not so dark that it vanishes on a dark canvas, not white
_MIN_CHROMA = 30.0  # CIELAB chroma: no greys (they look like the image under them)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of sRGB colours ``rgb`` ((N, 3) floats in [0, 1]): (N, 3) L*, a*, b*."""
    rgb = np.asarray(rgb, np.float64).reshape(-1, 3)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                       [0.0193339, 0.1191920, 0.9503041]])
    xyz = linear @ to_xyz.T / np.array([0.95047, 1.0, 1.08883])
    delta = 6.0 / 29.0
    f = np.where(xyz > delta ** 3, np.cbrt(xyz), xyz / (3 * delta ** 2) + 4.0 / 29.0)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def _palette(size: int = PALETTE_SIZE) -> np.ndarray:
    """(size, 3) uint8 sRGB colours: from a grid of sRGB candidates of moderate lightness and clear chroma, pure red
    first, then each time the candidate farthest (CIELAB) from every colour chosen so far (ties: the first in grid
    order). Uses no randomness: the same colours on every run."""
    levels = np.arange(0, 256, _GRID_STEP)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = srgb_to_lab(grid / 255.0)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    keep = (lab[:, 0] >= _LIGHTNESS[0]) & (lab[:, 0] <= _LIGHTNESS[1]) & (chroma >= _MIN_CHROMA)
    grid, lab = grid[keep], lab[keep]
    chosen = [int(np.argmin(np.abs(grid - np.array([255, 0, 0])).sum(axis=1)))]
    nearest = np.linalg.norm(lab - lab[chosen[0]], axis=1)  # each candidate's distance to the chosen colours
    while len(chosen) < size:
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[pick], axis=1))
    return grid[chosen].astype(np.uint8)


# RGBA float32 in multiples of 1/255 (napari's own label colours are, so the canvas and .map() agree); row 0 is the
# transparent background, row k (1..PALETTE_SIZE) the colour of id k
_COLORS = np.concatenate([np.zeros((1, 4), np.float32),
                          np.concatenate([_palette().astype(np.float32) / 255.0,
                                          np.ones((PALETTE_SIZE, 1), np.float32)], axis=1)])


def palette_slot(obj_id: int) -> int:
    """The palette row of id ``obj_id`` (>= 1): ids ``PALETTE_SIZE`` apart share one."""
    return (int(obj_id) - 1) % PALETTE_SIZE + 1


def object_colormap(transparent: Sequence[int] = ()) -> CyclicLabelColormap:
    """The masklets layer's colormap: label k in :func:`object_colors`' colour, except the palette rows of the ids
    ``transparent`` (hidden objects), which are not drawn (nor any id sharing their row)."""
    colors = _COLORS.copy()
    colors[sorted({palette_slot(k) for k in transparent if int(k) > 0})] = 0
    return CyclicLabelColormap(name="napari-sam2 objects", colors=colors,
                               controls=np.linspace(0, 1, len(colors) + 1), interpolation="zero", background_value=0)


OBJECT_COLORMAP = object_colormap()  # the masklets layer uses this colormap, so label k has this colour


def object_colors(obj_ids: Sequence[int]) -> np.ndarray:
    """RGBA (N, 4) float32 colours of object ids: id k (>= 1) has palette colour (k - 1) % PALETTE_SIZE + 1, as the
    masklets layer shows label k; id 0 (background) is transparent."""
    ids = np.asarray(obj_ids, dtype=np.int64).reshape(-1)
    if ids.size == 0:
        return np.zeros((0, 4), np.float32)
    return _COLORS[np.where(ids > 0, (ids - 1) % PALETTE_SIZE + 1, 0)].copy()


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
