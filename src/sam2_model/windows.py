"""Prompt a small object inside a window of the frame around it, not on the whole frame ("click windows").

A frame of (H, W) pixels is resized to the model's S x S input, so on a large frame small objects become a few input
pixels wide and a few stride-4 mask pixels (a nucleus 24 px wide in 512 x 512 at S = 256: 12 input px, 3 mask px).
A larger S keeps their pixels but not the demo model's judgement: on a larger canvas its masks spread over
neighbouring objects (docs/input_size.md; bench/real_nuclei.py: one click on real nuclei, IoU 0.58 at 256 px input,
0.39 at 512). Cutting a window around the prompt and giving the model only that, at its own input size, gives both:
the object is :data:`WINDOW_OBJECT_PX` (24) input px wide and the canvas is the one the model knows. On the real
nuclei, windows of 128 / 192 / 256 / 384 frame px (nuclei 48 / 32 / 24 / 16 px at the input) gave 0.73 / 0.74 /
0.73 / 0.68 against 0.58 for the whole frame (shipped weights, 256 px input). The same approach is micro-sam's tiled
embeddings (Archit et al. 2025, ``tile_shape`` / ``halo``), here placed around each prompt.

* :func:`window_side`: the window's side (frame px) for objects of a given width, or None where the whole frame is
  (nearly) as good: the window would be more than 2/3 of the frame's longer side;
* :func:`place_window`: where a window goes for a prompt: centred on the box, else on the positive clicks, grown to
  hold the box or the positive clicks with room around them (:data:`CONTEXT`), kept inside the frame;
* :class:`WindowedPredictor`: :class:`~sam2_model.image_predictor.ImagePredictor`'s prompts, each decoded in its
  window; masks come back at the frame's full size (empty outside the window). Window features are cached, so more
  clicks on one object cost one decoding each. Two checks against a width estimate far too small (e.g. cells whose
  thin membranes were measured): where the object's mask on the whole image (the model judges large objects well
  there) is over 2.5x wider than the window was made for, the window is sized for that width; and a window whose mask
  is cut by its inner edges, or empty where the whole image's is not, is tried again twice as large. A box says how
  wide its object is: the window is at least the one made for the box's width (:func:`box_side`).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Callable, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
import torch

from .frames import to_model_input
from .image_predictor import LOGIT_CLAMP, ImagePredictor
from .input_size import check_size_arguments, diameter_from_masks
from .modeling.sam2 import SAM2Model
from .prompt_validation import inside_frame, validate_box, validate_points

__all__ = ["WINDOW_OBJECT_PX", "MAX_WINDOW_UPSAMPLING", "MIN_FRAME_TO_WINDOW", "CONTEXT", "CUT_MARGIN", "GROWTH",
           "SIZE_CHECK",
           "window_side", "inside_window", "place_window", "whole_frame_side", "box_side", "first_window_side", "touches_inner_edge",
           "too_small", "grow_while_cut", "window_groups",
           "WindowedPredictor"]

WINDOW_OBJECT_PX = 24.0  # an object's width at the model input inside its window (measured: module docstring)
MAX_WINDOW_UPSAMPLING = 2.0  # a window is at least S / 2 frame px: enlarging further adds no detail
MIN_FRAME_TO_WINDOW = 1.5  # a window is used only where the frame's longer side is at least 1.5x the window's
CONTEXT = 1.5  # a window is at least 1.5x the extent of the prompts it holds (box, or the positive clicks)

CUT_MARGIN = 2  # px: a mask this close to an inner window edge is taken as cut by the window
GROWTH = 2  # a window whose first mask is cut is tried again this many times larger
SIZE_CHECK = 2.5  # an object this many times wider (on the whole frame) than its window was made for resizes it

Window = Tuple[int, int, int, int]  # (x0, y0, x1, y1) frame px, x1 / y1 exclusive
Result = TypeVar("Result")


def whole_frame_side(side: int, mask: np.ndarray, image_size: int) -> int:
    """``side``, or the side :func:`window_side`'s rule gives for the object's own width where ``mask`` ((H, W) bool:
    the object as the model segments it on the whole frame) is more than :data:`SIZE_CHECK` times wider than a
    ``side`` px window was made for. On the whole frame the model misjudges small objects (their masks spread over
    neighbours, ~1.5x wider) but not large ones, so this catches a width estimate that is far too small (e.g. thin
    membranes measured instead of the cells they outline). Width: twice the mask's largest distance to its outside.
    A side that :func:`window_side` would not open a window for (over 2/3 of the frame's longer side) becomes the
    whole frame: the longer side."""
    if not mask.any():
        return int(side)
    width = diameter_from_masks(np.asarray(mask, bool))  # the same width, measured in the object's box
    made_for = side * WINDOW_OBJECT_PX / image_size
    if width <= SIZE_CHECK * made_for:
        return int(side)
    resized = window_side(width, mask.shape, image_size)
    return max(mask.shape) if resized is None else max(int(side), resized)


def box_side(side: int, box: Optional[np.ndarray], frame_shape: Sequence[int], image_size: int) -> int:
    """``side``, or the larger side :func:`window_side`'s rule gives for the object a box prompt holds, so the object
    is at most :data:`WINDOW_OBJECT_PX` wide at the model input in its window (a box that almost fills a window gives
    the demo model nothing to segment: an empty mask). The object's width: the box's shorter side (the widest object
    it holds; :func:`whole_frame_side` measures masks alike). box: (x0, y0, x1, y1) checked frame px, or None (then
    ``side``); frame_shape: (H, W). A side :func:`window_side` opens no window for becomes the frame's longer side."""
    if box is None:
        return int(side)
    x0, y0, x1, y1 = (float(v) for v in box)
    width = max(min(x1 - x0, y1 - y0), 1.0)
    resized = window_side(width, frame_shape, image_size)
    return max(int(frame_shape[0]), int(frame_shape[1])) if resized is None else max(int(side), resized)


def first_window_side(side: int, whole: Optional[np.ndarray], box: Optional[np.ndarray], frame_shape: Sequence[int],
                      image_size: int) -> int:
    """A new object's first window side (frame px), the same for :class:`WindowedPredictor` and
    :class:`~sam2_model.windowed_session.WindowedSession`: ``side``, larger where the object's mask on the whole frame
    ``whole`` ((H, W) bool; None when there is none, e.g. for a mask prompt) is far wider than a ``side`` px window was
    made for (:func:`whole_frame_side`), or where its ``box`` ((x0, y0, x1, y1) checked frame px, or None) holds an
    object wider than that (:func:`box_side`). frame_shape: (H, W)."""
    by_mask = int(side) if whole is None else whole_frame_side(side, whole, image_size)
    return max(by_mask, box_side(side, box, frame_shape, image_size))


def too_small(mask: np.ndarray, window: Window, frame_shape: Sequence[int], whole: Optional[np.ndarray]) -> bool:
    """Whether a window is too small for its object: ``mask`` ((h, w) bool in the window's pixels) is cut by an inner
    edge (:func:`touches_inner_edge`), or it is empty where ``whole`` ((H, W) bool: the object's mask decoded on the
    whole frame, or None when there is none) is not, so the object would vanish (e.g. a prompt filling the window)."""
    if touches_inner_edge(mask, window, frame_shape):
        return True
    return whole is not None and not mask.any() and bool(whole.any())


def touches_inner_edge(mask: np.ndarray, window: Window, frame_shape: Sequence[int], margin: int = CUT_MARGIN) -> bool:
    """Whether ``mask`` ((h, w) bool in ``window``'s pixels) comes within ``margin`` px of an edge of the window that
    is not an edge of the frame (H, W): the object is larger than the window, or its mask spills beyond it."""
    x0, y0, x1, y1 = window
    height, width = int(frame_shape[0]), int(frame_shape[1])
    return bool((x0 > 0 and mask[:, :margin].any()) or (x1 < width and mask[:, -margin:].any())
                or (y0 > 0 and mask[:margin].any()) or (y1 < height and mask[-margin:].any()))


def grow_while_cut(side: int, frame_shape: Sequence[int],
                   attempt: Callable[[int], Tuple[Result, Window, bool]]) -> Result:
    """The result of ``attempt(side)``, which places a window of ``side`` px for one object and decodes it there,
    returning (result, the window it used, whether the window is too small for the object: :func:`too_small`), tried
    again :data:`GROWTH` times larger while it is too small and does not yet cover the frame (H, W)."""
    height, width = int(frame_shape[0]), int(frame_shape[1])
    while True:
        result, (x0, y0, x1, y1), cut = attempt(side)
        if not cut or (y1 - y0 >= height and x1 - x0 >= width):
            return result
        side *= GROWTH


def window_side(object_diameter_px: float, frame_shape: Sequence[int], image_size: int,
                target_px: float = WINDOW_OBJECT_PX) -> Optional[int]:
    """The side (frame px) of a window in which an object ``object_diameter_px`` wide is ``target_px`` px wide at an
    ``image_size`` px model input, at least ``image_size / 2``; None where the frame's longer side is less than
    1.5x that (the whole frame is then about as good). frame_shape: (H, W[, ...]).

    Examples at 256 px input: nuclei 18 px wide in 512 x 512 -> 192; in 2048 x 2048 -> 192; 40 px wide cells in
    512 x 512 -> None (a window of 427 px would hardly differ from the frame).
    """
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size <= 0:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    diameter, shape = check_size_arguments(object_diameter_px, frame_shape, target_px)
    side = max(image_size * diameter / target_px, image_size / MAX_WINDOW_UPSAMPLING)
    side = int(math.ceil(side / 8.0) * 8)  # whole multiples of 8 px: windows of nearby sizes share their features
    if MIN_FRAME_TO_WINDOW * side > max(int(shape[0]), int(shape[1])):
        return None
    return side


def _span(centre: float, length: int, size: int) -> Tuple[int, int]:
    """[start, start + length) centred on ``centre`` and moved inside [0, size) (all of it when length >= size)."""
    if length >= size:
        return 0, size
    start = int(round(centre - length / 2.0))
    start = min(max(start, 0), size - length)
    return start, start + length


def inside_window(points: np.ndarray, window: Window) -> np.ndarray:
    """(N,) bool: which clicks of ``points`` (N, 2) (x, y) frame pixels lie on a pixel of ``window`` (x0, y0, x1, y1),
    the pixels as napari draws them: x0 - 0.5 <= x < x1 - 0.5 and y0 - 0.5 <= y < y1 - 0.5 (the frame's rule,
    :func:`~sam2_model.prompt_validation.inside_frame`, in the window's pixels), so a window on the frame's edge takes
    every click the frame takes there (x = -0.5 on a window with x0 = 0) and none that its crop's session refuses."""
    x0, y0, x1, y1 = (int(v) for v in window)
    xy = np.asarray(points, np.float64).reshape(-1, 2)
    return inside_frame(xy[:, 0] - x0, xy[:, 1] - y0, y1 - y0, x1 - x0)


def place_window(side: int, frame_shape: Sequence[int], points: Optional[np.ndarray] = None,
                 labels: Optional[np.ndarray] = None, box: Optional[np.ndarray] = None) -> Window:
    """The window (x0, y0, x1, y1) for one object's prompts on a frame of ``frame_shape`` (H, W).

    points (N, 2) (x, y) with labels (N,), box (x0, y0, x1, y1): already checked frame pixels. The window is centred
    on the box, else on the positive clicks (all clicks when none is positive); it is ``side`` px square, or larger
    (still square) where the box or the positive clicks need it (:data:`CONTEXT` times their extent); it is moved
    inside the frame and cut to it where it is larger.
    """
    height, width = int(frame_shape[0]), int(frame_shape[1])
    if box is not None:
        x0, y0, x1, y1 = (float(v) for v in box)
    else:
        if points is None or len(points) == 0:
            raise ValueError("place_window needs clicks or a box")
        xy = np.asarray(points, np.float64)
        positive = xy[np.asarray(labels) == 1] if labels is not None else xy
        xy = positive if len(positive) else xy
        (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
    extent = CONTEXT * max(x1 - x0, y1 - y0)
    length = int(math.ceil(max(float(side), extent)))
    left, right = _span((x0 + x1) / 2.0, length, width)
    top, bottom = _span((y0 + y1) / 2.0, length, height)
    return left, top, right, bottom


class WindowedPredictor:
    """Prompt one image at a time like :class:`ImagePredictor`, each prompt decoded in a window around it.

    side: the window's side in frame px (see :func:`window_side`); contrast_limits / channel: as for
    :class:`ImagePredictor` (the whole image is mapped once, so every window sees the same grey values).
    max_cached: features of this many windows are kept (an encoding costs one model input).
    """

    def __init__(self, model: SAM2Model, side: int, contrast_limits: Optional[Sequence[float]] = None,
                 channel: Optional[int] = None, max_cached: int = 8) -> None:
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or side < 8:
            raise ValueError(f"side must be a window side of at least 8 frame pixels, got {side!r}")
        if isinstance(max_cached, bool) or not isinstance(max_cached, (int, np.integer)) or max_cached < 1:
            raise ValueError(f"max_cached must be a positive integer, got {max_cached!r}")
        self.model = model
        self.side = int(side)
        self.max_cached = int(max_cached)
        self._mapper = ImagePredictor(model, contrast_limits=contrast_limits, channel=channel)
        self._unit: Optional[np.ndarray] = None
        self._windows: "OrderedDict[Window, ImagePredictor]" = OrderedDict()
        self._whole: Optional[ImagePredictor] = None  # the whole image at the model's size (the size check)

    @property
    def is_image_set(self) -> bool:
        return self._unit is not None

    @property
    def image_shape(self) -> Optional[Tuple[int, int]]:
        """(H, W) of the current image, or None."""
        return None if self._unit is None else (int(self._unit.shape[0]), int(self._unit.shape[1]))

    def reset_image(self) -> None:
        """Forget the current image and every window's features."""
        self._unit = None
        self._windows.clear()
        self._whole = None

    def set_image(self, image: Any) -> None:
        """Take ``image``: (H, W) or (H, W, C), any numeric dtype (mapped as :meth:`ImagePredictor.set_image` maps
        it). Windows are encoded when a prompt needs them. On a ValueError the previous image stays set."""
        self.set_unit_image(self._mapper.unit_rgb(image))

    def set_unit_image(self, unit: np.ndarray) -> None:
        """Take an already mapped (H, W, 3) float image in [0, 1] (e.g. :meth:`FrameSource.mapped`)."""
        array = np.asarray(unit, dtype=np.float32)
        if array.ndim != 3 or array.shape[2] != 3 or 0 in array.shape:
            raise ValueError(f"a mapped image must be (H, W, 3) floats in [0, 1], got shape {array.shape}")
        self._unit = array
        self._windows.clear()
        self._whole = None

    def _checked(self, points: Any, labels: Any, box: Any) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        if self._unit is None:
            raise ValueError("no image is set: call set_image(image) before predict()")
        height, width = self.image_shape
        xy, lab = validate_points(points, labels, height, width)
        corners = validate_box(box, height, width)
        if corners is None and len(xy) == 0:
            raise ValueError("predict needs clicks (points with labels) or a box")
        return xy, lab, corners

    def _predictor(self, window: Window) -> ImagePredictor:
        """An ImagePredictor holding ``window``'s features (encoded now unless cached). The whole image's window
        (0, 0, W, H) is the whole image's predictor of the size check (the same input; encoded once)."""
        height, width = self.image_shape
        if self._whole is not None and tuple(window) == (0, 0, width, height):
            return self._whole
        predictor = self._windows.get(window)
        if predictor is not None:
            self._windows.move_to_end(window)
            return predictor
        x0, y0, x1, y1 = window
        crop = self._unit[y0:y1, x0:x1]
        predictor = ImagePredictor(self.model)
        predictor.set_model_input(to_model_input(crop, self.model.image_size, mode="bilinear"), crop.shape[:2])
        self._windows[window] = predictor
        while len(self._windows) > self.max_cached:
            self._windows.popitem(last=False)
        return predictor

    @torch.inference_mode()
    def predict(self, points: Optional[Any] = None, labels: Optional[Any] = None, box: Optional[Any] = None,
                multimask: Optional[bool] = None, return_logits: bool = False
                ) -> Tuple[np.ndarray, np.ndarray, Window]:
        """Masks for one object's prompts, decoded in the window around them.

        points (N, 2) (x, y) frame pixels with labels (N,) 1 / 0; box (x0, y0, x1, y1); multimask as for
        :meth:`ImagePredictor.predict`. Clicks outside the window (negative ones far from the object) are left out.
        The window is resized by :func:`whole_frame_side` where the object's mask on the whole image (one decoding on
        the whole image's features, computed once per image) is far wider than the window was made for, and by
        :func:`box_side` to hold a box's object at the width windows are made for; where the best mask comes within
        :data:`CUT_MARGIN` px of an inner edge of the window, or is empty while the whole image's is not, it is tried
        again :data:`GROWTH` times larger, up to the whole image.
        Returns masks (M, H, W) bool (float32 logits when ``return_logits``, -32 outside the window), scores (M,)
        predicted IoU, and the window (x0, y0, x1, y1).
        """
        xy, lab, corners = self._checked(points, labels, box)
        height, width = self.image_shape
        if self._whole is None:
            self._whole = ImagePredictor(self.model)
            self._whole.set_model_input(to_model_input(self._unit, self.model.image_size, mode="bilinear"),
                                        (height, width))
        whole, whole_scores, _ = self._whole.predict(points=xy if len(xy) else None, labels=lab if len(lab) else None,
                                                     box=corners, multimask=multimask)
        whole_best = whole[int(np.argmax(whole_scores))]
        side = first_window_side(self.side, whole_best, corners, (height, width), self.model.image_size)

        def attempt(side: int) -> Tuple[Tuple[np.ndarray, np.ndarray, Window], Window, bool]:
            window = place_window(side, (height, width), xy, lab, corners)
            x0, y0, x1, y1 = window
            inside = inside_window(xy, window)
            offset = np.array([x0, y0], np.float32)
            local_xy, local_lab = xy[inside] - offset, lab[inside]
            local_box = None if corners is None else corners - np.tile(offset, 2)
            masks, scores, _ = self._predictor(window).predict(
                points=local_xy if len(local_xy) else None, labels=local_lab if len(local_lab) else None,
                box=local_box, multimask=multimask, return_logits=return_logits)
            best = masks[int(np.argmax(scores))] > 0 if return_logits else masks[int(np.argmax(scores))]
            return (masks, scores, window), window, too_small(best, window, (height, width), whole_best)

        masks, scores, window = grow_while_cut(side, (height, width), attempt)
        x0, y0, x1, y1 = window
        full = np.full((masks.shape[0], height, width), -LOGIT_CLAMP if return_logits else False, masks.dtype)
        full[:, y0:y1, x0:x1] = masks
        return full, scores, window


def _window_starts(side: int, size: int) -> np.ndarray:
    """Starts of windows of ``side`` px every ``side // 2`` px along an axis of ``size`` px, the last one ending at
    the edge (one window, [0, size), when side >= size)."""
    if side >= size:
        return np.zeros(1, np.int64)
    step = max(1, side // 2)
    starts = list(range(0, size - side, step)) + [size - side]
    return np.unique(np.asarray(starts, np.int64))


def window_groups(points: np.ndarray, side: int, height: int, width: int) -> Tuple[List[List[int]], List[np.ndarray]]:
    """Points (N, 2) (x, y) of an image of (height, width) px -> the windows [x0, y0, x1, y1] that hold some of them
    and each window's points in window pixels. Windows of ``side`` px lie on a grid of half their side; each point
    goes to the window whose centre is nearest (so it is at least a quarter of a side from an inner window edge)."""
    xs, ys = _window_starts(side, width), _window_starts(side, height)
    wx, wy = min(side, width), min(side, height)
    col = np.abs(points[:, :1] - (xs[None] + wx / 2.0)).argmin(axis=1)
    row = np.abs(points[:, 1:] - (ys[None] + wy / 2.0)).argmin(axis=1)
    crops, groups = [], []
    for r, c in sorted(set(zip(row.tolist(), col.tolist()))):
        x0, y0 = int(xs[c]), int(ys[r])
        crops.append([x0, y0, x0 + wx, y0 + wy])
        groups.append(points[(row == r) & (col == c)] - np.array([x0, y0], np.float64))
    return crops, groups
