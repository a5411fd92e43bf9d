"""Checks of user input shared across the package: prompts (VideoSession, ImagePredictor), counts (the automatic mask
generator's and the tracker's integer options) and image layouts (ImagePredictor, blob_points); errors name the
argument, what was wrong and what is accepted. numpy only."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

MAX_CHANNELS = 16  # a last axis longer than this is image columns, not channels (as FrameSource reads stacks)
MAX_LEADING_CHANNELS = 4  # (A, B, C) with A <= 4 < B, C is read as channel-first (C, H, W)
#: frames thinner than this (rows or columns) hold nothing SAM 2 can segment: a 4 x 4000 strip gives empty masks
MIN_FRAME_SIDE = 8
BOOL_FIX = "image.astype(np.uint8)"  # how a thresholded (bool) image becomes numbers SAM 2 reads
#: a click's (x, y) names pixel centres: pixel i's centre is i (SAM's prompt encoder adds 0.5 to reach it, and napari
#: draws pixel i over [i - 0.5, i + 0.5)), so a frame of W columns spans x in [-0.5, W - 0.5)
PIXEL_HALF = 0.5


def inside_frame(x: Any, y: Any, height: int, width: int) -> np.ndarray:
    """Which clicks at ``x``, ``y`` (scalars or (N,) arrays of pixel coordinates, pixel i's centre at i) lie on a
    pixel of a ``height`` x ``width`` frame: -0.5 <= x < width - 0.5 and -0.5 <= y < height - 0.5, the pixels as napari
    shows them (a click at y = -0.4 is on row 0; one at y = height - 0.5 is past the last row). Bool, the inputs' shape.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return (x >= -PIXEL_HALF) & (x < width - PIXEL_HALF) & (y >= -PIXEL_HALF) & (y < height - PIXEL_HALF)


def frame_span_words(height: int, width: int) -> str:
    """The click coordinates a ``height`` x ``width`` frame accepts, in words (for messages)."""
    return (f"-0.5 <= y < {int(height) - PIXEL_HALF:g} and -0.5 <= x < {int(width) - PIXEL_HALF:g} (pixel i's centre "
            "is i)")


def frame_size_problem(height: int, width: int) -> Optional[str]:
    """Why frames of ``height`` x ``width`` px cannot be segmented (a side under :data:`MIN_FRAME_SIDE`), or None."""
    if min(int(height), int(width)) >= MIN_FRAME_SIDE:
        return None
    return (f"frames of {int(height)} x {int(width)} px (rows x columns) are too small: SAM 2 needs frames at least "
            f"{MIN_FRAME_SIDE} px on each side")


def check_frame_size(height: int, width: int) -> None:
    """ValueError (:func:`frame_size_problem`'s words) when a side is under :data:`MIN_FRAME_SIDE`: one early refusal
    instead of empty masks from the model."""
    problem = frame_size_problem(height, width)
    if problem is not None:
        raise ValueError(problem)


def dtype_problem(dtype: Any) -> Optional[str]:
    """Why an image of ``dtype`` cannot be read as grey values (booleans, complex numbers, text, objects), or None.
    Booleans (a thresholded mask) name the fix: ``image.astype(np.uint8)``."""
    kind = np.dtype(dtype).kind
    if kind in "uif":
        return None
    if kind == "b":
        return (f"unsupported dtype bool (a mask, e.g. a thresholded image): SAM 2 segments grey values; pass "
                f"{BOOL_FIX} (or the image it was made from)")
    return f"unsupported dtype {np.dtype(dtype)}; use integer or floating-point data"


def check_count(value: Any, name: str, low: int) -> int:
    """``value`` as an int, an integer >= ``low`` (``max_lost_frames``: 1); ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def channels_last_problem(shape: Sequence[int]) -> Optional[str]:
    """Why a 3-D array of ``shape`` (A, B, C) cannot be an (H, W, C) image with channels last, or None.

    The rule: A <= 4 with B and C both > 4 is channel-first (C, H, W) (a 1-4 px tall image with 5 or more channels
    is not a microscope picture) or a short (T, H, W) stack; C > 16 (:data:`MAX_CHANNELS`) is image columns, not
    channels (a (T, H, W) stack or a (C, H, W) image). Both messages say what is accepted and how to get there.
    Callers that take fewer channels (e.g. :func:`~sam2_model.seeding.blob_points`: 1-4) check that themselves."""
    a, b, c = (int(n) for n in shape)
    if a <= MAX_LEADING_CHANNELS and b > MAX_LEADING_CHANNELS and c > MAX_LEADING_CHANNELS:
        plural = "" if a == 1 else "s"
        return (f"image of shape {tuple(shape)} looks channel-first (C, H, W) with {a} channel{plural}: images are "
                "(H, W) or (H, W, C) with the channels last; pass np.moveaxis(image, 0, -1) (or one frame, e.g. "
                "image[0], if it is a (T, H, W) stack)")
    if c > MAX_CHANNELS:
        fix = " or, if its first axis holds channels, np.moveaxis(image, 0, -1)" if a <= MAX_CHANNELS else ""
        return (f"image of shape {tuple(shape)}: its last axis ({c}) is too long for channels (at most "
                f"{MAX_CHANNELS}), so this is not an (H, W) or (H, W, C) image; pass one 2-D frame (e.g. image[0] "
                f"of a (T, H, W) stack){fix}")
    return None


def validate_obj_id(obj_id: Any) -> int:
    if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)) or obj_id <= 0:
        raise ValueError(f"obj_id must be a positive integer, got {obj_id!r}")
    return int(obj_id)


def validate_points(points: Any, labels: Any, height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """points (N, 2) (x, y) on the frame's pixels (:func:`inside_frame`: -0.5 <= x < W - 0.5, -0.5 <= y < H - 0.5)
    and labels (N,) of 0/1 -> float32 and int32 arrays, the coordinates unchanged (the model takes them as given)."""
    if points is None and labels is None:
        return np.zeros((0, 2), np.float32), np.zeros((0,), np.int32)
    if (points is None) != (labels is None):
        raise ValueError("points and labels must be given together: points (N, 2) as (x, y) and labels (N,) of 1/0")
    xy = np.asarray(points, dtype=np.float64)
    if xy.ndim == 1 and xy.shape == (2,):
        xy = xy[None]
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"points must be an (N, 2) array of (x, y) pixel coordinates, got shape {xy.shape}")
    lab = np.asarray(labels).reshape(-1)
    if lab.shape[0] != xy.shape[0]:
        raise ValueError(f"points and labels differ in length: {xy.shape[0]} points but {lab.shape[0]} labels")
    if not np.isfinite(xy).all():
        raise ValueError("points contain NaN or infinite coordinates")
    if lab.size and not np.isin(lab, (0, 1)).all():
        raise ValueError(f"labels must be 1 (positive) or 0 (negative), got {sorted(set(lab.tolist()))}")
    outside = ~inside_frame(xy[:, 0], xy[:, 1], height, width)
    if outside.any():
        bad = xy[outside][0]
        raise ValueError(f"point (x={bad[0]:g}, y={bad[1]:g}) lies outside the {width}x{height} frame; points are "
                         f"(x, y) pixels and the frame takes {frame_span_words(height, width)}")
    return xy.astype(np.float32), lab.astype(np.int32)


def box_span_words(height: int, width: int) -> str:
    """The box corners a ``height`` x ``width`` frame accepts (:func:`validate_box`), in words (for messages)."""
    return (f"-0.5 <= x <= {int(width) - PIXEL_HALF:g} and -0.5 <= y <= {int(height) - PIXEL_HALF:g}, the frame's "
            f"outer pixel edges as napari draws them (a box around the whole frame is (-0.5, -0.5, "
            f"{int(width) - PIXEL_HALF:g}, {int(height) - PIXEL_HALF:g}); up to x = {int(width)}, y = {int(height)} "
            "is taken too)")


def box_on_frame(corners: Any, height: int, width: int) -> bool:
    """Whether a box ``corners`` (x0, y0, x1, y1), x0 <= x1 and y0 <= y1, lies on a ``height`` x ``width`` frame by
    :func:`validate_box`'s rule: -0.5 <= x0, x1 <= W (the frame's outer pixel edge, W - 0.5, and half a pixel more) and
    the same for y. For a window of a frame: the corners less the window's (x0, y0, x0, y0), the window's size."""
    x0, y0, x1, y1 = (float(v) for v in np.asarray(corners, np.float64).reshape(4))
    return x0 >= -PIXEL_HALF and y0 >= -PIXEL_HALF and x1 <= width and y1 <= height


def validate_box(box: Any, height: int, width: int) -> Optional[np.ndarray]:
    """box (x0, y0, x1, y1) with x0 <= x1, y0 <= y1 on the frame -> float32 (4,), the corners unchanged.

    The corners may lie on the frame's outer pixel edges, where napari draws them (pixel i spans i - 0.5..i + 0.5, as
    for clicks: :func:`inside_frame`): -0.5 <= x <= W - 0.5 and -0.5 <= y <= H - 0.5, so that a box dragged from
    corner to corner of the image is accepted; x up to W and y up to H (the (0, 0, W, H) of a frame counted in
    pixels, accepted before napari's edges were) are taken too. Anything further out is a ValueError naming both."""
    if box is None:
        return None
    corners = np.asarray(box, dtype=np.float64).reshape(-1)
    if corners.shape != (4,) or not np.isfinite(corners).all():
        raise ValueError(f"box must be 4 finite numbers (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = corners
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box must have x0 <= x1 and y0 <= y1 (x0, y0, x1, y1), got {tuple(corners.tolist())}")
    flat = zero_extent(x1 - x0, y1 - y0)
    if flat:
        raise ValueError(f"box (x0, y0, x1, y1) = ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has zero {flat}: drag a box "
                         "around the object, or give a click (points) instead")
    if not box_on_frame(corners, height, width):
        raise ValueError(f"box {tuple(corners.tolist())} extends outside the {width}x{height} frame; box corners "
                         f"(x0, y0, x1, y1) take {box_span_words(height, width)}")
    return corners.astype(np.float32)


def zero_extent(width: float, height: float) -> str:
    """"width", "height" or "width and height" for the sides of a box that are zero; "" for a box with an area."""
    return " and ".join(name for name, size in (("width", width), ("height", height)) if size == 0)


def validate_mask(mask: Any, height: int, width: int) -> np.ndarray:
    """mask (H, W) of booleans or 0/1 -> bool array."""
    array = np.asarray(mask)
    if array.shape != (height, width):
        raise ValueError(f"mask must have the frame's shape (H, W) = ({height}, {width}), got {array.shape}")
    if array.dtype != np.bool_:
        if not np.isin(array, (0, 1)).all():
            raise ValueError("mask must be boolean (or 0/1 values)")
        array = array.astype(bool)
    return array


def validate_obj_ids(obj_ids: Any, known: List[int]) -> List[int]:
    """A session's ``obj_ids`` argument: None -> every known object; else a sequence of known ids (ValueError naming
    a single id given bare, or the unknown ones and the session's objects)."""
    if obj_ids is None:
        return list(known)
    if isinstance(obj_ids, (int, np.integer)):
        raise ValueError(f"obj_ids must be a sequence of object ids or None, got the single id {obj_ids!r}")
    ids = [int(o) for o in obj_ids]
    unknown = [o for o in ids if o not in known]
    if unknown:
        raise ValueError(f"obj_ids holds unknown object ids {unknown}; this session has objects {list(known)}")
    return ids
