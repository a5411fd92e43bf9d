"""Scripting API (napari's console, notebooks, the CLI): segment a stack from a table of prompts.

    import napari_sam2
    labels = napari_sam2.segment(stack, clicks=[(0, 120, 85, 1, 1)], boxes=[(3, 40, 30, 90, 70, 2)])
    session = napari_sam2.get_session(viewer)      # the open widget's VideoSession
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

import sam2_model as sm

from .controller import SegmentationController
from .layout import StackLayout
from .prompts import collect_prompts

WIDGET = ("napari-sam2", "SAM 2 segmentation")


def layout_for(ndim: int, frame_axis: Optional[int] = 0, rgb: bool = False) -> StackLayout:
    """Layout of a (T, Y, X), (Z, Y, X), (Y, X) or RGB stack with the given propagated axis."""
    spatial = ndim - (1 if rgb else 0)
    channel_axis = ndim - 1 if rgb else None
    if spatial == 2:
        return StackLayout(ndim, None, channel_axis)
    if spatial != 3:
        raise ValueError(f"segment() takes 2D or 3D (+RGB) data, got {ndim} dimensions; slice 4D data first")
    return StackLayout(ndim, frame_axis, channel_axis)


def segment(
    image: Any,
    clicks: Sequence[Sequence[float]] = (),
    boxes: Sequence[Sequence[float]] = (),
    model: str = "demo",
    checkpoint: Optional[str] = "download",
    device: str = "auto",
    image_size: Optional[int] = None,
    frame_axis: int = 0,
    direction: str = "both",
    progress: Optional[Callable[[int, int], None]] = None,
) -> np.ndarray:
    """Segment and track objects through ``image``; returns uint32 labels of its spatial shape.

    image: array-like (T, Y, X) / (Y, X) (or RGB), or a napari Image layer.
    clicks: rows (frame, y, x, label, obj_id), label 1 positive / 0 negative, in pixel coordinates.
    boxes: rows (frame, y0, x0, y1, x1, obj_id). For 2D images the frame is ignored.
    progress: called with (frames done, frames to do).
    model / checkpoint: the embedded demo model by default; an official preset takes its cached checkpoint
    or downloads it ("download"), or a file path; "random" gives random weights (testing only).
    """
    is_layer = hasattr(image, "rgb") and hasattr(image, "data")  # a napari Image layer
    data = image.data if is_layer else image
    rgb = bool(image.rgb) if is_layer else False
    layout = layout_for(np.ndim(data) if not hasattr(data, "ndim") else data.ndim, frame_axis, rgb)
    net = sm.build_model(model, checkpoint=checkpoint, device=device, image_size=image_size)
    labels = np.zeros(layout.labels_shape(data.shape), np.uint32)
    controller = SegmentationController(net, data, layout, labels)
    clicks = np.asarray(clicks, dtype=float).reshape(-1, 5)
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 6)

    def coords(frame: float, y: float, x: float) -> list:
        point = [0.0] * data.ndim
        if layout.frame_axis is not None:
            point[layout.frame_axis] = frame
        rows, cols = layout.spatial_axes
        point[rows], point[cols] = y, x
        return point

    point_coords = np.array([coords(f, y, x) for f, y, x, _, _ in clicks]).reshape(-1, data.ndim)
    rectangles = [np.array([coords(f, y0, x0), coords(f, y1, x1)]) for f, y0, x0, y1, x1, _ in boxes]
    prompts = collect_prompts(point_coords, clicks[:, 3] > 0, clicks[:, 4].astype(int), rectangles,
                              boxes[:, 5].astype(int), layout)
    if not prompts:
        raise ValueError("segment() needs at least one click or box")
    list(controller.apply_prompts(prompts))
    if layout.frame_axis is None:
        return labels
    start = min(p.frame for p in prompts)
    forward, backward = controller.session.num_frames - start, start + 1 if start > 0 else 0
    total = {"forward": forward, "backward": backward, "both": forward + backward}[direction]
    done = 0
    for kind, *_ in controller.propagate(start, direction):
        if kind == "frame" and progress is not None:
            done += 1
            progress(done, total)
    return labels


def get_widget(viewer: Any) -> Any:
    """The viewer's SAM 2 dock widget (opened if it is not yet)."""
    return viewer.window.add_plugin_dock_widget(*WIDGET)[1]


def get_session(viewer: Any) -> Optional[sm.VideoSession]:
    """The VideoSession behind the open widget (None until something was segmented)."""
    controller = get_widget(viewer).controller
    return None if controller is None else controller.session
