"""Per-image state of the segmentation widget: each image layer has its own prompt layers, masklets layer,
controller (session and undo history) and axis choices, switched with the widget's image selector.

Layer helpers here take the viewer and the image layer; nothing here knows about the widget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Set, Tuple

import numpy as np

from ._colors import OBJECT_COLORMAP, style_boxes, style_points
from .controller import SegmentationController
from .layout import StackLayout

POINTS_NAME, BOXES_NAME, LABELS_NAME = "SAM2 clicks", "SAM2 boxes", "SAM2 masklets"


def layer_name(base: str, image: Any) -> str:
    """The name of one of an image's layers, e.g. ``"SAM2 clicks [cells]"``."""
    return f"{base} [{image.name}]"


def same_layer(a: Any, b: Any) -> bool:
    """Whether two layer references are one layer (napari hands plugins proxies, so ``is`` is not enough)."""
    return a is not None and b is not None and a.unique_id == b.unique_id


def spatial_ndim(image: Any) -> int:
    """Dimensions of an image layer's world (the RGB axis is not one)."""
    return image.data.ndim - (1 if image.rgb else 0)


@dataclass
class AxisChoice:
    """The widget's axis and channel choices for one image (restored when the image is picked again)."""

    frame_axis: int = 0
    channel_axis: str = ""
    channel: str = ""


@dataclass(eq=False)
class ImageState:
    """One image layer's prompt layers, masklets layer, controller, current object and axis choices."""

    image: Any
    points: Any = None
    boxes: Any = None
    labels: Any = None
    controller: Optional[SegmentationController] = None
    obj_id: int = 1
    positive: bool = True
    axes: AxisChoice = field(default_factory=AxisChoice)
    last_prompts: Optional["PromptContent"] = None  # the prompt layers after the last run (for Undo)
    hidden: Set[int] = field(default_factory=set)  # objects hidden in the masklets layer
    recoloured: bool = False  # the masklets layer has the colormap that hides objects



def add_points_layer(viewer: Any, image: Any, obj_id: int, positive: bool) -> Any:
    """An empty clicks layer over ``image`` (same scale and translate), in add mode."""
    ndim = spatial_ndim(image)
    points = viewer.add_points(
        np.zeros((0, ndim)), name=layer_name(POINTS_NAME, image), ndim=ndim, scale=image.scale,
        translate=image.translate, features={"positive": np.zeros(0, bool), "obj_id": np.zeros(0, int)},
        size=max(4.0, min(image.data.shape[-3 if image.rgb else -2:][:2]) / 60), face_color="lime",
        border_color="white",
    )
    points.feature_defaults = {"positive": positive, "obj_id": obj_id}
    points.mode = "add"
    style_points(points)
    return points


def add_boxes_layer(viewer: Any, image: Any, obj_id: int) -> Any:
    """An empty rectangles layer over ``image``."""
    boxes = viewer.add_shapes(
        None, ndim=spatial_ndim(image), name=layer_name(BOXES_NAME, image), scale=image.scale,
        translate=image.translate, shape_type="rectangle", edge_color="yellow", face_color="transparent",
        features={"obj_id": np.zeros(0, int)},
    )
    boxes.feature_defaults = {"obj_id": obj_id}
    style_boxes(boxes)
    return boxes


def add_labels_layer(viewer: Any, image: Any, layout: StackLayout, data: Optional[np.ndarray] = None) -> Any:
    """The masklets layer of ``image``: uint32 labels shaped like the image less its channel axis.

    data: reuse this array (for example the labels of a layer the user deleted); zeros otherwise.
    """
    shape = layout.labels_shape(image.data.shape)
    if data is None or data.shape != shape:
        data = np.zeros(shape, np.uint32)
    if image.rgb:
        scale, translate = image.scale, image.translate
    else:
        keep = [axis for axis in range(image.data.ndim) if axis != layout.channel_axis]
        scale, translate = [image.scale[a] for a in keep], [image.translate[a] for a in keep]
    return viewer.add_labels(data, name=layer_name(LABELS_NAME, image), scale=scale, translate=translate,
                             colormap=OBJECT_COLORMAP)


@dataclass
class PromptContent:
    """A copy of the clicks and boxes layers' content (for Undo)."""

    points: np.ndarray
    positive: np.ndarray
    point_ids: np.ndarray
    boxes: Tuple[np.ndarray, ...]
    box_ids: np.ndarray


def capture(state: ImageState) -> PromptContent:
    points, boxes = state.points, state.boxes
    return PromptContent(
        np.array(points.data, copy=True), points.features["positive"].to_numpy(bool).copy(),
        points.features["obj_id"].to_numpy(int).copy(), tuple(np.array(b, copy=True) for b in boxes.data),
        boxes.features["obj_id"].to_numpy(int).copy() if len(boxes.data) else np.zeros(0, int),
    )


def restore(state: ImageState, content: PromptContent) -> None:
    """Put the clicks and boxes layers back to ``content`` (the caller mutes its own data handlers)."""
    points, boxes = state.points, state.boxes
    defaults = points.feature_defaults
    points.data = content.points
    points.features = {"positive": content.positive, "obj_id": content.point_ids}
    points.feature_defaults = defaults
    style_points(points)
    box_defaults = boxes.feature_defaults
    if len(boxes.data):
        boxes.selected_data = set(range(len(boxes.data)))
        boxes.remove_selected()
    if content.boxes:
        boxes.add_rectangles(list(content.boxes))
        boxes.features = {"obj_id": content.box_ids}
    boxes.feature_defaults = box_defaults
    style_boxes(boxes)
