"""Per-image state of the segmentation widget: each image layer has its own prompt layers, masklets layer,
controller (session and undo history) and axis choices, switched with the widget's image selector.

Layer helpers here take the viewer and the image layer; nothing here knows about the widget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
from napari.utils.transforms.transform_utils import shear_to_matrix

from ._colors import OBJECT_COLORMAP, style_boxes, style_points
from .api import WithoutAlpha
from .controller import SegmentationController
from .layout import StackLayout, world_to_data

POINTS_NAME, BOXES_NAME, LABELS_NAME = "SAM2 clicks", "SAM2 boxes", "SAM2 masklets"

#: the key of a layer's ``metadata`` that marks it as one of an image's layers made by the widget:
#: {"role": "points" | "boxes" | "masklets", "image": str(image.unique_id)} (a renamed layer is still found by it)
ROLE_KEY = "napari_sam2"


def role_metadata(role: str, image: Any) -> Dict[str, Dict[str, Dict[str, str]]]:
    """``metadata`` keyword argument marking a new layer as ``image``'s ``role`` layer ("points", "boxes" or
    "masklets"); napari copies it into a duplicated layer (:func:`is_copy_of`) and keeps it when the layer is renamed."""
    return {"metadata": {ROLE_KEY: {"role": role, "image": str(image.unique_id)}}}


def layer_role(layer: Any) -> Tuple[str, str]:
    """(role, image id) a layer made by the widget carries in its metadata (:func:`role_metadata`); ("", "") for
    any other layer."""
    metadata = getattr(layer, "metadata", None)
    mark = metadata.get(ROLE_KEY) if isinstance(metadata, dict) else None
    if not isinstance(mark, dict):
        return "", ""
    return str(mark.get("role", "")), str(mark.get("image", ""))


def layer_name(base: str, image: Any, name: Optional[str] = None) -> str:
    """The name of one of an image's layers, e.g. ``"SAM2 clicks [cells]"`` (``name``: the image's name it was given
    for, e.g. the image's old name after a rename; default the image's name now)."""
    return f"{base} [{image.name if name is None else name}]"


def same_layer(a: Any, b: Any) -> bool:
    """Whether two layer references are one layer (napari hands plugins proxies, so ``is`` is not enough)."""
    return a is not None and b is not None and a.unique_id == b.unique_id


def spatial_ndim(image: Any) -> int:
    """Dimensions of an image layer's world (the RGB axis is not one)."""
    return image.data.ndim - (1 if image.rgb else 0)


def model_data(image: Any) -> Any:
    """An image layer's data as the model reads it: RGBA layers without their alpha channel (as
    :func:`napari_sam2.segment` does), other layers as they are.

    A multiscale (pyramid) layer gives its full-resolution level 0, as it is (a dask or zarr level stays lazy: a frame
    is read when the model needs it). Level 0 has the layer's shape and its data coordinates are the layer's, so
    masks computed on it line up with the image at the layer's scale and translate.
    """
    data = image.data[0] if getattr(image, "multiscale", False) else image.data
    return WithoutAlpha(data) if image.rgb and data.shape[-1] == 4 else data


def is_depth_axis(image: Any, axis: int) -> bool:
    """Whether ``image``'s ``axis`` runs through space, as a volume's z does: its unit is a length (um, nm) or its axis
    label is "z" (a napari image without either, as most are, gives False: frames are time points)."""
    units = getattr(image, "units", None)
    try:
        if units is not None and str(units[axis].dimensionality) == "[length]":
            return True
    except (AttributeError, IndexError, TypeError):  # no pint units (older napari)
        pass
    labels = getattr(image, "axis_labels", None)
    return labels is not None and str(labels[axis]).lower() == "z"


def axes_metadata(image: Any, axes: Optional[Sequence[Optional[int]]] = None) -> Dict[str, tuple]:
    """``units`` and ``axis_labels`` keyword arguments that give a new layer the physical units and names of
    ``image``'s axes (napari drops the units of every layer and warns "Inconsistent units across layers" when one layer
    differs); {} for an image without them (a napari that predates layer units).

    axes: which of the image's (world) axes the new layer's axes are, in order (None: all of them, for a layer with
    the image's dimensions); an entry None is an axis the image lacks (unit "pixel", and napari's name of an unnamed
    axis: its negative index, e.g. "-3").
    """
    units, labels = getattr(image, "units", None), getattr(image, "axis_labels", None)
    if units is None or labels is None:
        return {}
    units, labels = tuple(units), tuple(str(label) for label in labels)
    if axes is None:
        return {"units": units, "axis_labels": labels}
    return {"units": tuple(units[a] if a is not None else "pixel" for a in axes),
            "axis_labels": tuple(labels[a] if a is not None else str(i - len(axes)) for i, a in enumerate(axes))}


def image_transform(image: Any, axes: Optional[Sequence[Optional[int]]] = None) -> Dict[str, np.ndarray]:
    """``rotate``, ``shear`` and ``affine`` keyword arguments (matrices) that give a layer over ``image`` the image's
    own rotation, shear and affine transform, beside its scale and translate: a layer of the image's dimensions drawn
    with them shows each of its data points on the image pixel of the same data coordinates, however the image is
    turned (so a click lands on the pixel under it, and the masks on the image).

    axes: which of the image's (spatial) axes the new layer's axes are, in order (None: all of them); an entry None is
    an axis the image lacks (left unturned). The rows and columns of the image's matrices for those axes are taken
    (exact when the image turns them among themselves, e.g. a rotation of its rows and columns).
    """
    ndim = spatial_ndim(image)
    rotate = np.asarray(image.rotate, float).reshape(ndim, ndim)
    shear = np.asarray(image.shear, float)
    shear = shear.reshape(ndim, ndim) if shear.size == ndim * ndim else shear_to_matrix(shear, ndim=ndim)
    affine = np.asarray(image.affine.affine_matrix, float)
    if axes is None:
        return {"rotate": rotate, "shear": shear, "affine": affine}

    def pick(matrix: np.ndarray, index: Sequence[Optional[int]]) -> np.ndarray:
        out = np.eye(len(index))
        for i, a in enumerate(index):
            for j, b in enumerate(index):
                if a is not None and b is not None:
                    out[i, j] = matrix[a, b]
        return out

    axes = list(axes)
    return {"rotate": pick(rotate, axes), "shear": pick(shear, axes), "affine": pick(affine, axes + [ndim])}


#: how the words of :func:`out_of_plane_turn` (and the status lines built on them) start
OUT_OF_PLANE = "Not supported: "


def out_of_plane_turn(image: Any) -> str:
    """Why ``image``'s rotation, shear or affine transform is one the widget cannot segment under, in words starting
    with :data:`OUT_OF_PLANE`; "" when it turns (or shears) only its last two (spatial) axes, the rows and columns,
    among themselves (with any positive scale and any translate), as a 2-D image always does.

    Refused: a transform whose matrix (affine @ rotate @ shear @ scale, as napari composes them) mixes another axis
    (frames, z, channels) with the rows or columns or with each other, or flips one: napari then slices the image
    along a turned axis, so the slider's frame is not the frame under a click (a run would start from a frame the
    person did not pick, or from none of the image's)."""
    ndim = spatial_ndim(image)
    if ndim <= 2:
        return ""
    turn = image_transform(image)
    matrix = turn["affine"][:-1, :-1] @ turn["rotate"] @ turn["shear"] @ np.diag(np.asarray(image.scale, float))
    tol = 1e-9 * max(float(np.abs(matrix).max()), 1e-12)
    plane = {ndim - 2, ndim - 1}
    mixed = sorted({int(a) for i, j in zip(*np.nonzero(np.abs(matrix) > tol)) if i != j
                    and not (i in plane and j in plane) for a in (i, j) if a not in plane})
    flipped = [axis for axis in range(ndim - 2) if matrix[axis, axis] <= tol]
    if not mixed and not flipped:
        return ""
    what = []
    if mixed:
        what.append(f"turns or shears its axis {', '.join(map(str, mixed))} out of line (a 3-D rotation, or a shear or "
                    "affine mixing it with other axes)")
    if flipped:
        what.append(f"flips its axis {', '.join(map(str, flipped))}")
    return (f"{OUT_OF_PLANE}the transform of '{image.name}' (rotate, shear, affine, scale) {' and '.join(what)}. The "
            "widget segments images turned or sheared only within the image plane (its last two axes, the rows and "
            f"columns), with any positive scale and translate: clicks, boxes and runs on '{image.name}' are refused "
            "until its transform is in-plane again (e.g. image.rotate = 0, or an angle in the plane).")


def place_layer(layer: Any, scale: Sequence[float], translate: Sequence[float],
                transform: Optional[Dict[str, np.ndarray]] = None, units: Optional[Sequence[str]] = None) -> None:
    """Set ``layer``'s scale, translate, ``transform`` (:func:`image_transform`'s rotate, shear, affine) and ``units``
    where they differ (a value already held is not set again: napari redraws the layer for each one set)."""
    for name, value in (("scale", scale), ("translate", translate), *(transform or {}).items()):
        held = getattr(layer, name)
        held = held.affine_matrix if name == "affine" else held
        held = np.asarray(held, float)
        if name == "shear" and held.size != np.size(value):
            held = shear_to_matrix(held, ndim=len(layer.scale))
        if held.shape != np.shape(value) or not np.allclose(held, value):
            setattr(layer, name, value)
    if units is not None and tuple(getattr(layer, "units", units)) != tuple(units):
        layer.units = units


@dataclass
class AxisChoice:
    """The widget's axis and channel choices for one image (restored when the image is picked again)."""

    frame_axis: int = 0
    channel_axis: str = ""
    channel: str = ""


def channel_axis_of(text: str) -> Optional[int]:
    """The image axis an :attr:`AxisChoice.channel_axis` text names ("axis k (n)": k), None for any other text (grey,
    or RGB layers whose colour axis napari knows)."""
    words = str(text).split()
    return int(words[1]) if len(words) > 1 and words[0] == "axis" and words[1].isdigit() else None


def choice_layout(image: Any, choice: AxisChoice, current_step: Sequence[int]) -> StackLayout:
    """The :class:`StackLayout` of ``image`` (a napari Image layer) under its own kept axis ``choice`` (not the axes
    panel's, which shows the current image's): RGB layers have their colour axis last; a channel axis is one before
    the rows and columns (T, C, Y, X) or the last axis, after them ((T, Y, X, C): the rows and columns are then the
    two axes before it); the other axes besides the channel axis and the last two others (rows, columns) are the propagated axis (``choice.frame_axis``) and fixed slices at
    ``current_step`` (the viewer's slider, whose trailing axes are the image's; 0 where it has none). ValueError for a
    choice the image cannot take (the channel axis or propagated axis not among its axes, or both the same axis)."""
    ndim = image.data.ndim
    channel_axis = ndim - 1 if image.rgb else channel_axis_of(choice.channel_axis)
    if not image.rgb and channel_axis is not None and not (0 <= channel_axis < ndim - 2 or
                                                           (channel_axis == ndim - 1 and ndim >= 3)):
        raise ValueError(f"channel axis {channel_axis} is not one of the image's {ndim} axes before its rows and "
                         "columns, nor its last axis after them; choose another 'Channel axis'")
    axes = [axis for axis in range(ndim) if axis != channel_axis]
    others = axes[:-2]  # neither channel nor spatial
    if not others:
        return StackLayout(ndim, None, channel_axis)
    frame_axis = int(choice.frame_axis)
    if frame_axis == channel_axis or frame_axis not in others:
        raise ValueError(f"axis {frame_axis} cannot be the propagated axis of an image of shape "
                         f"{tuple(image.data.shape)} with channel axis {channel_axis}; choose another 'Propagate "
                         "along axis' or 'Channel axis'")
    step = [int(v) for v in current_step]
    offset = len(step) - ndim  # napari lines the layer's axes up with the viewer's last ones
    fixed = tuple((axis, step[offset + axis] if 0 <= offset + axis < len(step) else 0)
                  for axis in others if axis != frame_axis)
    return StackLayout(ndim, frame_axis, channel_axis, fixed)


SliceKey = Tuple[Optional[int], Tuple[Tuple[int, int], ...]]  # (propagated axis, fixed axes and their indices)


CHANNEL_LABELS = ("c", "ch", "channel", "channels")  # axis labels that name a channel axis (any case)
FEW_PLANES = 4  # a slice axis this short is more likely channels than z planes


def channel_like_axes(image: Any, layout: StackLayout) -> List[int]:
    """The axes of ``image`` that ``layout`` fixes as slices (segmented one plane at a time, as z) but that look like
    channels: the layer's axis label names a channel (:data:`CHANNEL_LABELS`), or the axis holds at most
    :data:`FEW_PLANES` planes and is not a depth axis (:func:`is_depth_axis`). [] for RGB layers and layouts with a
    channel axis (the channels are chosen already)."""
    if image.rgb or layout.channel_axis is not None:
        return []
    labels = getattr(image, "axis_labels", None)
    found = []
    for axis, _ in layout.fixed:
        named = labels is not None and str(labels[axis]).lower() in CHANNEL_LABELS
        if named or (int(image.data.shape[axis]) <= FEW_PLANES and not is_depth_axis(image, axis)):
            found.append(axis)
    return found


def trailing_channels(image: Any) -> int:
    """How many channels the last axis of ``image`` (a napari Image layer not shown as RGB) holds where that axis
    looks like channels after the rows and columns, as in a (T, Y, X, C) or (Y, X, C) stack of 2-channel (or 16-bit
    3-channel) fluorescence: its axis label names a channel (:data:`CHANNEL_LABELS`), or it holds at most
    :data:`FEW_PLANES` planes while the two axes before it are longer and it is no depth axis (:func:`is_depth_axis`).
    0 otherwise (RGB layers, whose colours napari knows, 2-D images, a last axis that looks like columns)."""
    if image.rgb:
        return 0
    shape = tuple(int(n) for n in (image.data[0] if getattr(image, "multiscale", False) else image.data).shape)
    if len(shape) < 3:
        return 0
    labels = getattr(image, "axis_labels", None)
    named = labels is not None and str(labels[-1]).lower() in CHANNEL_LABELS
    short = shape[-1] <= FEW_PLANES < min(shape[-3:-1]) and not is_depth_axis(image, len(shape) - 1)
    return shape[-1] if named or short else 0


def slice_key(layout: StackLayout) -> SliceKey:
    """Which slice of an image a session segments: its propagated axis and the index of every other axis fixed
    (for example z=1 when propagating through time in TZYX); sessions of one image are kept per slice."""
    return layout.frame_axis, tuple(layout.fixed)


def step_on_slice(step: Sequence[int], fixed: Sequence[Tuple[int, int]]) -> Tuple[int, ...]:
    """The viewer's dims step ``step`` (one index per axis) moved onto the slice ``fixed`` ((axis, index) pairs, a
    layout's fixed axes): each fixed axis set to its index, the other axes as in ``step``."""
    moved = [int(i) for i in step]
    for axis, index in fixed:
        moved[axis] = int(index)
    return tuple(moved)


@dataclass(eq=False)
class ImageState:
    """One image layer's prompt layers, masklets layer, controller, current object and axis choices.

    sessions: a controller per slice (:func:`slice_key`) that was segmented; ``controller`` is the one the widget acts
    on (the slice shown, or the slice last worked on when the slice shown has none).
    """

    image: Any
    points: Any = None
    boxes: Any = None
    labels: Any = None
    controller: Optional[SegmentationController] = None
    obj_id: int = 1
    positive: bool = True
    axes: AxisChoice = field(default_factory=AxisChoice)
    last_prompts: Optional["PromptContent"] = None  # the prompt layers as the last run read them (for Undo)
    hidden: Set[int] = field(default_factory=set)  # objects hidden in the masklets layer
    recoloured: bool = False  # the masklets layer has the colormap that hides objects
    sessions: Dict[SliceKey, SegmentationController] = field(default_factory=dict)  # one per slice segmented
    # the opened session that a new one (its session not opened yet: that happens in the run's worker) replaced on a
    # slice, put back if the new one fails to open
    replaced: Dict[SliceKey, SegmentationController] = field(default_factory=dict)
    # the content of a prompt layer the user deleted ("points": :func:`points_content`, "boxes": :func:`boxes_content`),
    # put back in the layer that replaces it (:func:`put_back_removed`)
    removed: Dict[str, Tuple[Any, ...]] = field(default_factory=dict)
    # the masklets layer the widget added for a run whose session has not opened yet (removed again, still empty, if
    # it never opens: a failed first click leaves no layer behind)
    new_labels: Any = None
    channel_hint_said: bool = False  # the status said once how to segment a channel-like slice axis per channel
    data_shape: Tuple[int, ...] = ()  # the image's data shape when last seen (new data of another shape: a crop)
    name: str = ""  # the image's name when last seen (its layers named for it follow a rename)
    # (napari event emitter, the widget's callback) connected for this state (its image's and its prompt layers'
    # events): disconnected when the image is removed, so a removed image's state no longer acts on them
    links: List[Tuple[Any, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.data_shape = () if self.image is None else tuple(int(n) for n in self.image.data.shape)
        self.name = "" if self.image is None else str(self.image.name)


def find_layer(viewer: Any, base: str, image: Any, kind: str) -> Any:
    """The viewer's layer named as ``image``'s layer ``base`` is (:func:`layer_name`) if it is a ``kind`` layer
    ("Points", "Shapes", "Labels"); None otherwise."""
    name = layer_name(base, image)
    if name not in viewer.layers:
        return None
    layer = viewer.layers[name]
    return layer if layer.__class__.__name__ == kind else None


def find_masklets(viewer: Any, image: Any, layout: StackLayout) -> Any:
    """The masklets layer of ``image`` already in the viewer whose labels fit ``layout`` (:func:`masklets`), or
    None: the one named as the image's masklets layer, else the one Labels layer marked as ``image``'s masklets in its
    metadata (:func:`role_metadata`: a masklets layer the user renamed; with two such layers, e.g. a renamed layer
    and its duplicate, neither is taken)."""
    layer = find_layer(viewer, LABELS_NAME, image, "Labels")
    if layer is not None and masklets(layer, image, layout) is not None:
        return layer
    marked = [other for other in viewer.layers if other.__class__.__name__ == "Labels"
              and layer_role(other) == ("masklets", str(image.unique_id))
              and masklets(other, image, layout) is not None]
    return marked[0] if len(marked) == 1 else None


def adopt_layers(viewer: Any, state: ImageState, layout: Optional[StackLayout]) -> None:
    """Give ``state`` the clicks, boxes and masklets layers the viewer already holds for its image, by name, as a
    closed widget left them (a widget opened again goes on with them instead of adding "... [1]" beside them).

    A clicks layer is taken when it has the image's dimensions and the ``positive`` and ``obj_id`` features (its
    current object and polarity become ``state``'s); a boxes layer, with the dimensions and ``obj_id``; the masklets,
    when their labels fit ``layout`` (None: not looked for). Layers that do not fit are left alone.
    """
    image, ndim = state.image, spatial_ndim(state.image)
    points = find_layer(viewer, POINTS_NAME, image, "Points")
    if points is not None and points.ndim == ndim and {"positive", "obj_id"} <= set(points.features.columns):
        state.points = points
        defaults = points.feature_defaults
        if len(defaults):
            state.obj_id = max(1, int(defaults["obj_id"].iloc[0]))
            state.positive = bool(defaults["positive"].iloc[0])
    boxes = find_layer(viewer, BOXES_NAME, image, "Shapes")
    if boxes is not None and boxes.ndim == ndim and "obj_id" in boxes.features.columns:
        state.boxes = boxes
    if layout is not None:
        state.labels = find_masklets(viewer, image, layout)


def add_points_layer(viewer: Any, image: Any, obj_id: int, positive: bool) -> Any:
    """An empty clicks layer over ``image`` (same scale, translate, units and axis labels), in add mode."""
    ndim = spatial_ndim(image)
    points = viewer.add_points(
        np.zeros((0, ndim)), name=layer_name(POINTS_NAME, image), ndim=ndim, scale=image.scale,
        translate=image.translate, **image_transform(image), **axes_metadata(image), **role_metadata("points", image),
        features={"positive": np.zeros(0, bool), "obj_id": np.zeros(0, int)},
        size=max(4.0, min(image.data.shape[-3 if image.rgb or trailing_channels(image) else -2:][:2]) / 60),
        face_color="lime",
        border_color="white",
    )
    points.feature_defaults = {"positive": positive, "obj_id": obj_id}
    points.mode = "add"
    style_points(points)
    return points


def add_boxes_layer(viewer: Any, image: Any, obj_id: int) -> Any:
    """An empty rectangles layer over ``image`` (same scale, translate, units and axis labels)."""
    boxes = viewer.add_shapes(
        None, ndim=spatial_ndim(image), name=layer_name(BOXES_NAME, image), scale=image.scale,
        translate=image.translate, **image_transform(image), **axes_metadata(image), **role_metadata("boxes", image),
        shape_type="rectangle",
        edge_color="yellow",
        face_color="transparent",
        features={"obj_id": np.zeros(0, int)},
    )
    boxes.feature_defaults = {"obj_id": obj_id}
    style_boxes(boxes)
    return boxes


def add_labels_layer(viewer: Any, image: Any, layout: StackLayout, data: Optional[np.ndarray] = None) -> Any:
    """The masklets layer of ``image``: uint32 labels shaped like the image less its channel axis (the controller's
    array), shown as :func:`show_masklets` says.

    data: reuse this array (for example the labels of a layer the user deleted); zeros otherwise.
    """
    shape = layout.labels_shape(image.data.shape)
    if data is None or data.shape != shape:
        data = np.zeros(shape, np.uint32)
    shown, scale, translate = _masklets_display(image, layout, data)
    return viewer.add_labels(shown, name=layer_name(LABELS_NAME, image), scale=scale, translate=translate,
                             **image_transform(image), colormap=OBJECT_COLORMAP, **axes_metadata(image),
                             **role_metadata("masklets", image))


def _masklets_display(image: Any, layout: StackLayout, data: np.ndarray) -> Tuple[np.ndarray, list, list]:
    """What the masklets layer holds for labels ``data`` (layout.labels_shape): (array, scale, translate).

    napari lines a layer up with the last axes of the viewer, so labels without the image's channel axis would slide
    onto the wrong axes (their frame axis on the channels of (T, C, Y, X)). A channel axis of napari's world (not the
    RGB colours) is therefore kept as a size-1 axis of a view of ``data`` (same memory: what the controller writes
    shows, what the user paints reaches the controller), C times the image's step wide and centred on the channels,
    so the one plane shows at every channel and the viewer's ranges stay those of the image.
    """
    scale, translate = [float(s) for s in image.scale], [float(t) for t in image.translate]
    axis = None if image.rgb else layout.channel_axis
    if axis is None:
        return data, scale, translate
    channels = int(image.data.shape[axis])
    translate[axis] += (channels - 1) * scale[axis] / 2
    scale[axis] *= channels
    return np.expand_dims(data, axis), scale, translate


def show_masklets(layer: Any, image: Any, layout: StackLayout, data: np.ndarray) -> None:
    """Put labels ``data`` (shaped layout.labels_shape) in the masklets ``layer`` of ``image``, shown on its axes
    (with its rotation, shear and affine transform; only what differs is set: a layer that already shows ``data``
    there is left alone)."""
    shown, scale, translate = _masklets_display(image, layout, data)
    if masklets(layer, image, layout) is not data or layer.data.shape != shown.shape:
        layer.data = shown
    place_layer(layer, scale, translate, image_transform(image))


def follow_image_placement(state: ImageState, layout: Optional[StackLayout]) -> None:
    """Give ``state``'s clicks, boxes and masklets layers the scale, translate, rotation, shear, affine transform
    (:func:`image_transform`) and units of its image as they are now (the user set the image's pixel size, origin or a
    rotation after clicking, e.g. ``image.scale = (300, 0.65, 0.65)``). Their data (pixels of the image) is left as it
    is, so each click stays on its image pixel and the masks on the image.

    layout: the masklets' layout (their channel axis drawn as :func:`_masklets_display` says); None leaves the masklets
    layer as it is (an impossible axis choice: the next run places it). Layers with another number of axes are left.
    """
    image = state.image
    ndim = spatial_ndim(image)
    units = axes_metadata(image).get("units")
    targets = [(layer, [float(v) for v in image.scale], [float(v) for v in image.translate])
               for layer in (state.points, state.boxes) if layer is not None and layer.ndim == ndim]
    if state.labels is not None and layout is not None:
        data = masklets(state.labels, image, layout)
        if data is not None and state.labels.ndim == ndim:
            _, scale, translate = _masklets_display(image, layout, data)
            targets.append((state.labels, scale, translate))
    transform = image_transform(image)
    for layer, scale, translate in targets:
        place_layer(layer, scale, translate, transform, units)


def masklets(layer: Any, image: Any, layout: StackLayout) -> Optional[np.ndarray]:
    """The labels array behind the masklets ``layer`` (shaped layout.labels_shape: the array the controller writes
    into, the same object each call), or None when the layer holds labels of another shape."""
    shape = layout.labels_shape(image.data.shape)
    data = layer.data
    if tuple(data.shape) == shape:
        return data
    base = getattr(data, "base", None)  # the array under the size-1 channel axis of _masklets_display
    if (isinstance(data, np.ndarray) and isinstance(base, np.ndarray) and base.shape == shape
            and base.size == data.size and base.ctypes.data == data.ctypes.data):
        return base
    return None


def clear_masklets(layer: Any) -> None:
    """Fresh zero labels in the masklets ``layer``, shown on the same axes (the old array is left to whoever holds
    it, for example an earlier controller's undo history)."""
    data = layer.data
    base = getattr(data, "base", None)
    under = (isinstance(base, np.ndarray) and base.ndim == data.ndim - 1 and base.size == data.size
             and base.ctypes.data == data.ctypes.data)
    fresh = np.zeros((base if under else data).shape, data.dtype)
    layer.data = fresh.reshape(data.shape) if under else fresh  # a view of ``fresh`` with the size-1 channel axis


@dataclass
class PromptContent:
    """A copy of the clicks and boxes layers' content (for Undo)."""

    points: np.ndarray
    positive: np.ndarray
    point_ids: np.ndarray
    boxes: Tuple[np.ndarray, ...]
    box_ids: np.ndarray


def capture(state: ImageState) -> PromptContent:
    """A copy of the clicks and boxes of ``state``'s prompt layers."""
    return PromptContent(*points_content(state.points), *boxes_content(state.boxes))


def points_content(layer: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A copy of a clicks ``layer``'s content: (coordinates (N, ndim), positive (N,) bool, obj_id (N,) int)."""
    return (np.array(layer.data, copy=True), layer.features["positive"].to_numpy(bool).copy(),
            layer.features["obj_id"].to_numpy(int).copy())


def prompts_in_data(state: ImageState) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[np.ndarray], np.ndarray]:
    """``state``'s clicks and boxes in the image's data coordinates (the layers' scale and translate undone onto the
    image's), each in its layer's order (the order they were made): (click coordinates (N, ndim), positive (N,) bool,
    obj_id (N,) int, each box's (4, ndim) corners, the boxes' obj_id (M,) int); ndim: the image's spatial axes."""
    image, points, boxes = state.image, state.points, state.boxes
    to_image = dict(to_scale=image.scale, to_translate=image.translate)
    coords = (world_to_data(points.data, points.scale, points.translate, **to_image) if len(points.data)
              else np.zeros((0, spatial_ndim(image))))
    rectangles = [world_to_data(shape, boxes.scale, boxes.translate, **to_image) for shape in boxes.data]
    return (coords, points.features["positive"].to_numpy(bool), points.features["obj_id"].to_numpy(int), rectangles,
            boxes.features["obj_id"].to_numpy(int) if rectangles else np.zeros(0, int))


def boxes_on_image(state: ImageState, layout: StackLayout) -> Tuple[Tuple[np.ndarray, ...], np.ndarray, int, int]:
    """``state``'s boxes judged against its image's data as it is now (e.g. after a crop): (the boxes kept, in the
    boxes layer's coordinates, each clipped to the image's rows and columns (the outer edges of its pixels, -0.5 to
    size - 0.5, as napari draws them), their obj_id (M,) int, how many were removed, how many were clipped).

    A box is removed when it lies wholly off the image's rows or columns, or on a frame the image lacks; a box off
    the fixed slices of ``layout`` is kept as it is (it is no prompt of this layout), as :func:`~.prompts.outside_image`
    judges clicks."""
    image, layer = state.image, state.boxes
    boxes, ids = boxes_content(layer)
    if not boxes:
        return boxes, ids, 0, 0
    shape = image.data.shape
    rows, cols = layout.spatial_axes
    frames = layout.num_frames(shape)
    limits = {rows: float(shape[rows]) - 0.5, cols: float(shape[cols]) - 0.5}
    kept: List[np.ndarray] = []
    kept_ids: List[int] = []
    clipped = 0
    for box, obj_id in zip(boxes, ids):
        data = world_to_data(box, layer.scale, layer.translate, image.scale, image.translate)
        where = [layout.point_to_prompt(corner) for corner in data]
        if any(w is None for w in where):
            kept.append(box)
            kept_ids.append(int(obj_id))
            continue
        if any(not 0 <= w[0] < frames for w in where) or any(
                data[:, axis].max() <= -0.5 or data[:, axis].min() >= high for axis, high in limits.items()):
            continue
        inside = data.copy()
        for axis, high in limits.items():
            inside[:, axis] = np.clip(inside[:, axis], -0.5, high)
        if not np.allclose(inside, data):
            clipped += 1
            box = world_to_data(inside, image.scale, image.translate, layer.scale, layer.translate)
        kept.append(box)
        kept_ids.append(int(obj_id))
    return tuple(kept), np.array(kept_ids, int), len(boxes) - len(kept), clipped


def boxes_content(layer: Any) -> Tuple[Tuple[np.ndarray, ...], np.ndarray]:
    """A copy of a boxes ``layer``'s content: (each box's (4, ndim) corners, obj_id (M,) int)."""
    return (tuple(np.array(b, copy=True) for b in layer.data),
            layer.features["obj_id"].to_numpy(int).copy() if len(layer.data) else np.zeros(0, int))


def on_slice(state: ImageState, layout: StackLayout, content: PromptContent) -> Tuple[np.ndarray, np.ndarray]:
    """Which clicks and which boxes of ``content`` lie on the fixed slice of ``layout`` (two bool arrays)."""
    image = state.image
    to_image = dict(to_scale=image.scale, to_translate=image.translate)

    def inside(coords: np.ndarray, layer: Any) -> np.ndarray:
        coords = world_to_data(coords, layer.scale, layer.translate, **to_image)
        keep = np.ones(len(coords), bool)
        for axis, value in layout.fixed:
            keep &= np.round(coords[:, axis]).astype(int) == value
        return keep

    points = inside(content.points, state.points) if len(content.points) else np.zeros(0, bool)
    corners = np.array([box[0] for box in content.boxes]) if content.boxes else None
    boxes = inside(corners, state.boxes) if corners is not None else np.zeros(0, bool)
    return points, boxes


def restore(state: ImageState, content: PromptContent, layout: Optional[StackLayout] = None) -> None:
    """Put the clicks and boxes layers back to ``content`` (the caller mutes its own data handlers).

    layout: only the clicks and boxes on this layout's fixed slice are put back (those of other slices, which
    belong to other sessions, stay as they are); None: all of them.
    """
    if layout is not None and layout.fixed:
        now = capture(state)
        old_points, old_boxes = on_slice(state, layout, now)
        new_points, new_boxes = on_slice(state, layout, content)
        content = PromptContent(
            np.concatenate([now.points[~old_points], content.points[new_points]]).reshape(-1, now.points.shape[1]),
            np.concatenate([now.positive[~old_points], content.positive[new_points]]),
            np.concatenate([now.point_ids[~old_points], content.point_ids[new_points]]),
            tuple(b for b, on in zip(now.boxes, old_boxes) if not on) +
            tuple(b for b, on in zip(content.boxes, new_boxes) if on),
            np.concatenate([now.box_ids[~old_boxes], content.box_ids[new_boxes]]),
        )
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


def keep_removed(state: ImageState, layer: Any) -> None:
    """Remember the prompts of ``state``'s clicks or boxes ``layer`` that the user deleted (it is being removed from
    the viewer), for :func:`put_back_removed`."""
    if same_layer(layer, state.points):
        kind, content = "points", points_content(layer)
    else:
        kind, content = "boxes", boxes_content(layer)
    if len(content[0]):
        state.removed[kind] = content


def put_back_removed(state: ImageState) -> Dict[str, int]:
    """Put the prompts of deleted prompt layers (:func:`keep_removed`) into ``state``'s new ones (the caller mutes its
    own data handlers); returns {"points" or "boxes": count put back}."""
    if not state.removed or state.points is None or state.boxes is None:
        return {}
    now = capture(state)
    points = state.removed.pop("points", None)
    boxes = state.removed.pop("boxes", None)
    content = PromptContent(*((now.points, now.positive, now.point_ids) if points is None else points),
                            *((now.boxes, now.box_ids) if boxes is None else boxes))
    restore(state, content)
    return {kind: len(item[0]) for kind, item in (("points", points), ("boxes", boxes)) if item is not None}
