"""Pick the model's input size from the size of the objects: small cells need more input pixels.

A frame of (H, W) pixels is resized to the model's square S x S input, so an object ``d`` px across
becomes about ``d * S / max(H, W)`` px across along the frame's longer axis. SAM 2 looks at the input
through a stride-16 image embedding (prompt tokens and memory attention work there) and predicts masks
at stride 4. :func:`suggest_image_size` asks for the smallest supported S at which a typical object is at
least :data:`TARGET_OBJECT_PX` (8) input px wide, within the model's range and never upsampling the frame
by more than :data:`MAX_UPSAMPLING` (2x): beyond that, enlarging adds no detail, only compute.

Why 8 and not the 16 px of one embedding cell (the rule until 2026-12-05): a larger input is not free for the
demo model: on a larger canvas its clicked masks spread over neighbouring objects (one cause measured: its
decoder places objects by a positional encoding of *normalised* image coordinates, so at 512 px an object's
neighbours sit at half the positional distance they would at 256 px). On a real widefield image of touching
nuclei ~24 px wide in 512 x 512 (bench/real_nuclei.py) one click gives IoU 0.58 at 256 px input, 0.50 at 384
and 0.39 at 512, where 16 px asked for 512. Measured with
the shipped weights, the best size was picked by 8 px in every case: those real nuclei (estimated 17.5 px ->
256), synthetic nuclei ~32 px wide in 512 x 512 (-> 256; IoU 0.86 against 0.82 at 512) and ~8 px wide ones
(-> 512; 0.55 against 0.40 at 256 and 0.46 at 768). Figures: docs/input_size.md.

"Object diameter" here is an object's *width* (its shortest extent: a rod's thickness, a round
nucleus' diameter), since that is what disappears first when a frame is shrunk.
:func:`estimate_object_diameter` measures it from an image (Otsu threshold and distance transform),
:func:`prompted_object_widths` / :func:`estimate_prompted_diameter` only of the objects under given clicks (the same
measure, each clicked object's own piece: on frames where a few large cells lie among many noise specks, the
frame's median is the specks'), :func:`diameter_from_masks` from masks (e.g. the first masks of clicked objects).

Supported sizes: the demo model's windowed attention (windows of 8, 4, 8, 4 tokens at strides 4, 8,
16, 32) tiles its feature maps exactly, as at its 256 px training size, when S is a multiple of 128;
other multiples of 32 also run (windows are padded). Suggestions are 256, 384, ..., 1024. Official
presets keep their 1024 px: they were trained at it, and a user who wants another size passes it.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from .config import get_config
from .frames import check_finite
from .object_boxes import object_boxes
from .prompt_validation import MIN_FRAME_SIDE

__all__ = [
    "TARGET_OBJECT_PX", "MAX_UPSAMPLING", "DEMO_SIZE_RANGE", "SIZE_STEP",
    "suggest_image_size", "supported_image_sizes", "estimate_object_diameter", "diameter_from_masks",
    "check_size_arguments", "prompted_object_widths", "estimate_prompted_diameter", "measured_spread",
    "median_of_most", "PROMPT_LOOK", "MAX_PROMPTS_MEASURED",
]

TARGET_OBJECT_PX = 8.0  # an object's width at the model input: 2 stride-4 mask px (measured; module docstring)
MAX_UPSAMPLING = 2.0  # S <= 2 x the frame's longer side
DEMO_SIZE_RANGE = (256, 1024)  # the embedded demo model: its training size up to the official presets' size
SIZE_STEP = 128  # demo: every attention window tiles its feature map exactly (see the module docstring)
ESTIMATE_CROP = 512  # estimate_object_diameter looks at the central crop of at most this side
MIN_WIDTH_PX = 3.0  # narrower connected pieces of the Otsu foreground are noise, not objects
PROMPT_LOOK = 64  # px: the square first looked at around a click; doubled while its object reaches an inner edge
MAX_PROMPTS_MEASURED = 32  # at most this many clicked objects are measured (spread over the list given)


def supported_image_sizes(model_name: str) -> Tuple[int, ...]:
    """The input sizes :func:`suggest_image_size` picks from for ``model_name`` (ascending).

    The demo model: 256, 384, ..., 1024. Official presets: their own size only (1024).
    """
    config = get_config(model_name)
    if model_name != "demo":
        return (config.image_size,)
    low, high = DEMO_SIZE_RANGE
    return tuple(range(low, high + 1, SIZE_STEP))


def check_size_arguments(object_diameter_px: Any, frame_shape: Any, target_px: Any) -> Tuple[float, Tuple[int, int]]:
    """An object width and a frame shape as the size rules take them: (diameter, (H, W)); a ValueError naming the
    argument otherwise (also for a ``target_px`` that is not a positive number)."""
    try:
        diameter = float(object_diameter_px)
    except (TypeError, ValueError):
        diameter = float("nan")
    if not math.isfinite(diameter) or diameter <= 0:
        raise ValueError(f"object_diameter_px must be a positive number of pixels, got {object_diameter_px!r}")
    if not (isinstance(target_px, (int, float)) and math.isfinite(target_px) and target_px > 0):
        raise ValueError(f"target_px must be a positive number of pixels, got {target_px!r}")
    shape = tuple(frame_shape) if isinstance(frame_shape, (tuple, list)) else None
    if shape is None or len(shape) < 2 or not all(isinstance(n, (int, np.integer)) and n > 0 for n in shape[:2]):
        raise ValueError(f"frame_shape must be (H, W) with two positive integers, got {frame_shape!r}")
    return diameter, (int(shape[0]), int(shape[1]))


def suggest_image_size(object_diameter_px: float, frame_shape: Sequence[int], model_name: str = "demo",
                       target_px: float = TARGET_OBJECT_PX) -> int:
    """The smallest supported input size at which an object ``object_diameter_px`` wide (frame px) is at
    least ``target_px`` input px wide, for frames of ``frame_shape`` = (H, W[, ...]).

    Capped to the model's range (demo: 256..1024) and to 2x the frame's longer side (the smallest
    supported size always stays allowed). Official presets return their own size (1024).
    Examples (demo): 40 px nuclei in 512 x 512 frames -> 256; 8 px wide bacteria in 512 x 512 -> 512.
    """
    diameter, shape = check_size_arguments(object_diameter_px, frame_shape, target_px)
    sizes = supported_image_sizes(model_name)  # ValueError for an unknown model
    if len(sizes) == 1:
        return sizes[0]
    longest = max(int(shape[0]), int(shape[1]))
    needed = target_px * longest / diameter
    allowed = [s for s in sizes if s <= MAX_UPSAMPLING * longest] or [sizes[0]]
    return next((s for s in allowed if s >= needed), allowed[-1])


def _checked_frame(frame: Any) -> Tuple[np.ndarray, bool]:
    """(``frame`` as an array, whether its last axis holds channels); ValueError naming what is wrong with it: not
    numbers, not (H, W) or (H, W, C), or a side under MIN_FRAME_SIDE px."""
    array = np.asarray(frame)
    if array.dtype.kind not in "uifb":
        raise ValueError(f"frame must hold numbers, got dtype {array.dtype}")
    channels = array.ndim == 3 and array.shape[-1] in (1, 2, 3, 4)
    if not (array.ndim == 2 or channels) or min(array.shape[:2]) < MIN_FRAME_SIDE:
        raise ValueError(f"frame must be a 2D (H, W) or (H, W, C) image at least {MIN_FRAME_SIDE} px on each side, "
                         f"got shape {np.shape(frame)}")
    return array, channels


def _grey_unit(frame: Any, side: Optional[int] = None) -> np.ndarray:
    """(H, W) or (H, W, C) numbers -> (H, W) float32 in [0, 1] by the 1 / 99.8 percentiles (channel mean); with
    ``side``, of the frame's central ``side`` x ``side`` px at most (cropped first: only those are read and scaled,
    so a frame and a central crop of it of at least that side give the same result)."""
    array, channels = _checked_frame(frame)
    if side is not None:
        array = _central_crop(array, side)
    if channels:
        array = array.mean(axis=-1)
    array = array.astype(np.float32)
    check_finite(array, "frame")  # the words every frame read uses (sessions add the frame's index)
    low, high = np.percentile(array, (1.0, 99.8))
    if high <= low:
        return np.zeros(array.shape, np.float32)
    return np.clip((array - low) / (high - low), 0.0, 1.0)


def _central_crop(frame: np.ndarray, side: int) -> np.ndarray:
    top = max(0, (frame.shape[0] - side) // 2)
    left = max(0, (frame.shape[1] - side) // 2)
    return frame[top:top + side, left:left + side]


def estimate_object_diameter(frame: Any) -> float:
    """A typical object's width in px in ``frame`` ((H, W) or (H, W, C), any numeric dtype).

    Simple and fast (~0.1 s): the frame's central 512 x 512 at most (:data:`ESTIMATE_CROP`; a central crop of at
    least that side measures the same as the frame), normalised to [0, 1] and smoothed
    (Gaussian, sigma 1 px), is split at its Otsu threshold; the objects are the smaller of the two
    classes (bright objects on a dark background in fluorescence, dark ones on a bright background in
    phase contrast or brightfield). Each connected object's width is twice its largest distance to the
    background, which stays a cell's width when cells touch or are rods; the median over pieces at least
    3 px wide is returned. It errs small rather than large (debris, texture fragments and transmitted-light
    relief add narrow pieces; an area-weighted median instead overestimates dense colonies many times,
    which would shrink bacteria away): a larger input size is slower, not blind.
    Returns NaN when the frame is flat or holds no object.
    """
    from skimage.filters import threshold_otsu  # imported here: `import sam2_model` stays light

    unit = _grey_unit(frame, ESTIMATE_CROP)
    smooth = ndimage.gaussian_filter(unit, 1.0)
    if float(smooth.max() - smooth.min()) < 1e-6:
        return float("nan")
    foreground = smooth > threshold_otsu(smooth)
    if foreground.mean() > 0.5:  # the objects are the minority class
        foreground = ~foreground
    labels, count = ndimage.label(foreground)
    if count == 0:
        return float("nan")
    distance = ndimage.distance_transform_edt(foreground)
    widths = 2.0 * np.asarray(ndimage.maximum(distance, labels, index=np.arange(1, count + 1)), np.float64)
    widths = widths[widths >= MIN_WIDTH_PX]
    return float(np.median(widths)) if len(widths) else float("nan")


def diameter_from_masks(masks: Any) -> float:
    """The median width (twice the largest distance to the background) of the objects in ``masks``:
    (N, H, W) or (H, W) bool masks, or an (H, W) integer label image (0 = background). NaN if empty.
    Each object is measured in its bounding box grown by 1 px, which gives the same widths as the whole frame (the
    nearest background pixel of any pixel inside lies in that box), so hundreds of objects take milliseconds."""
    array = np.asarray(masks)
    if array.ndim == 2 and array.dtype.kind in "iu":
        objects = [mask for _, mask, _ in object_boxes(array)]
    elif array.ndim in (2, 3):
        masks3 = array.astype(bool, copy=False).reshape((-1,) + array.shape[-2:])
        objects = [mask[box[0]] for mask in masks3 for box in [ndimage.find_objects(mask.view(np.uint8))] if box]
    else:
        raise ValueError(f"masks must be (N, H, W) or (H, W) masks, or an (H, W) label image; got shape {array.shape}")
    widths = [_box_width(mask) for mask in objects]
    return float(np.median(widths)) if widths else float("nan")


def _box_width(mask: np.ndarray) -> float:
    """Twice the largest distance to the background of an (h, w) bool ``mask`` cropped to its object's box."""
    return 2.0 * float(ndimage.distance_transform_edt(np.pad(mask, 1)).max())


def prompted_object_widths(frame: Any, points: Any, measure: Optional[Sequence[int]] = None) -> np.ndarray:
    """The width (frame px) of the object under each click: ``points`` (N, 2) (x, y) frame pixels, one click per
    object (a positive click, or a box's centre), on ``frame`` ((H, W) or (H, W, C), any numeric dtype). Returns (N,)
    floats, NaN where no object could be read there; with ``measure`` (indices into ``points``) those clicks' only,
    in that order (every click still marks its object for the clump check below).

    Each click is looked at in a square of :data:`PROMPT_LOOK` px around it, normalised and smoothed as
    :func:`estimate_object_diameter` does and split at its own Otsu threshold; the object is the connected piece of
    the click's side of the split (bright or dark) that holds the click, and its width twice its largest distance to
    the background, as for every width here. While the piece reaches an inner edge of the square or covers over
    half of it, the square is doubled (up to the frame). No reading (NaN) where the piece still does then (the click
    is on the background), where it holds another object's click (touching objects merged into a clump: a colony of
    rods reads as one wide piece), where it is narrower than :data:`MIN_WIDTH_PX`, or for a click outside the frame.
    """
    array, pixels, inside = _checked_clicks(frame, points)
    indices = range(len(pixels)) if measure is None else [int(k) for k in measure]
    return np.array([_width_at(array, pixels, k) if inside[k] else float("nan") for k in indices], np.float64)


def measured_spread(count: int) -> np.ndarray:
    """Which of ``count`` clicks :func:`estimate_prompted_diameter` measures: all, or :data:`MAX_PROMPTS_MEASURED`
    spread evenly over them (indices, ascending)."""
    if count <= 0:
        return np.zeros(0, np.int64)
    return np.unique(np.linspace(0, count - 1, min(count, MAX_PROMPTS_MEASURED)).round().astype(np.int64))


def median_of_most(widths: Any) -> float:
    """The median of the finite ``widths`` where at least half of them are finite, else NaN (too few objects read to
    speak for the rest)."""
    values = np.asarray(widths, np.float64).reshape(-1)
    read = values[np.isfinite(values)]
    if len(read) == 0 or 2 * len(read) < len(values):
        return float("nan")
    return float(np.median(read))


def estimate_prompted_diameter(frame: Any, points: Any) -> float:
    """The median width (frame px) of the clicked objects (:func:`prompted_object_widths`; ``points`` (N, 2) (x, y),
    one click per object; at most :data:`MAX_PROMPTS_MEASURED` of them measured, spread over the list:
    :func:`measured_spread`), or NaN where fewer than half of those measured could be read (the clicks lie on clumps
    or on the background: measure the frame instead, :func:`estimate_object_diameter`) or there are no clicks."""
    count = len(_checked_clicks(frame, points)[1])
    return median_of_most(prompted_object_widths(frame, points, measured_spread(count)))


def _checked_clicks(frame: Any, points: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frame as an array, (N, 2) int (x, y) pixel of each click, (N,) bool: inside the frame); ValueError naming
    what is wrong with ``frame`` or ``points``."""
    array, channels = _checked_frame(frame)
    try:
        xy = np.asarray(points, np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"points must be (N, 2) (x, y) pixels, got {points!r}") from None
    if xy.size == 0:
        xy = xy.reshape(0, 2)
    if xy.ndim != 2 or xy.shape[1] != 2 or not np.isfinite(xy).all():
        raise ValueError(f"points must be (N, 2) finite (x, y) pixels, got shape {np.shape(points)}")
    height, width = array.shape[:2]
    pixels = np.rint(xy).astype(np.int64)  # (x, y) of the pixel each click is on
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
    return array, pixels, inside


def _width_at(array: np.ndarray, pixels: np.ndarray, index: int) -> float:
    """The width of the object under click ``index`` of ``pixels`` ((N, 2) int (x, y), inside the frame) in
    ``array`` ((H, W[, C])): :func:`prompted_object_widths`' rule."""
    from skimage.filters import threshold_otsu  # imported here: `import sam2_model` stays light

    height, width = array.shape[:2]
    x, y = (int(v) for v in pixels[index])
    side = PROMPT_LOOK
    while True:
        side = min(side, max(height, width))
        top = min(max(y - side // 2, 0), max(height - side, 0))
        left = min(max(x - side // 2, 0), max(width - side, 0))
        smooth = ndimage.gaussian_filter(_grey_unit(array[top:top + side, left:left + side]), 1.0)
        if float(smooth.max() - smooth.min()) < 1e-6:
            return float("nan")
        threshold = threshold_otsu(smooth)
        row, col = y - top, x - left
        side_of_click = smooth > threshold if smooth[row, col] > threshold else smooth <= threshold
        labels, _ = ndimage.label(side_of_click)
        piece = labels == labels[row, col]
        bottom, right = top + piece.shape[0], left + piece.shape[1]
        cut = bool((top > 0 and piece[0].any()) or (left > 0 and piece[:, 0].any())
                   or (bottom < height and piece[-1].any()) or (right < width and piece[:, -1].any()))
        too_much = float(piece.mean()) > 0.5
        if not (cut or too_much):
            break
        if side >= max(height, width):
            return float("nan")  # the background (or a piece as large as the frame)
        side *= 2
    others = np.delete(pixels, index, axis=0)
    within = ((others[:, 0] >= left) & (others[:, 0] < right) & (others[:, 1] >= top) & (others[:, 1] < bottom))
    if piece[others[within, 1] - top, others[within, 0] - left].any():
        return float("nan")  # a clump of several clicked objects
    object_width = _box_width(piece[ndimage.find_objects(piece.view(np.uint8))[0]])
    return object_width if object_width >= MIN_WIDTH_PX else float("nan")
