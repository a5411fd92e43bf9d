"""Prompts from napari layers: clicks (Points) and boxes (Shapes rectangles) -> per-frame SAM 2 prompts.

Everything here works on plain arrays already in the image layer's data coordinates (see
``layout.world_to_data``), so it is tested without a viewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from sam2_model.prompt_validation import PIXEL_HALF, inside_frame

from .layout import StackLayout


@dataclass
class FramePrompt:
    """All prompts of one object on one frame, in SAM 2's terms.

    points: (N, 2) float (x, y) pixels; labels: (N,) int 1 positive / 0 negative; box: (x0, y0, x1, y1);
    mask: (H, W) bool, a mask prompt (for example seeded from a Labels layer).
    """

    frame: int
    obj_id: int
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    box: Optional[np.ndarray] = None
    mask: Optional[np.ndarray] = None


def masks_from_labels(plane: np.ndarray, frame: int) -> List[FramePrompt]:
    """One mask prompt per non-zero label value of a (H, W) labels plane (object id = label value)."""
    plane = np.asarray(plane)
    if plane.ndim != 2:
        raise ValueError(f"a labels plane must be 2D (rows, cols), got shape {plane.shape}")
    return [FramePrompt(frame, int(value), mask=plane == value) for value in np.unique(plane) if value != 0]


def collect_prompts(
    point_coords: np.ndarray,
    point_positive: Sequence[bool],
    point_obj_ids: Sequence[int],
    rectangles: Sequence[np.ndarray],
    rectangle_obj_ids: Sequence[int],
    layout: StackLayout,
) -> List[FramePrompt]:
    """Group clicks and boxes by (frame, object), in frame order.

    point_coords: (N, ndim) image-data coordinates; rectangles: each (4, ndim) corner vertices.
    Clicks and boxes that lie off the fixed slices of ``layout`` are ignored. A rectangle whose
    corners lie on different frames is rejected.
    """
    grouped: Dict[Tuple[int, int], FramePrompt] = {}

    def entry(frame: int, obj_id: int) -> FramePrompt:
        return grouped.setdefault((frame, obj_id), FramePrompt(frame, obj_id))

    for coords, positive, obj_id in zip(np.asarray(point_coords, float), point_positive, point_obj_ids):
        where = layout.point_to_prompt(coords)
        if where is None:
            continue
        frame, x, y = where
        prompt = entry(frame, int(obj_id))
        prompt.points = np.vstack([prompt.points, [[x, y]]]).astype(np.float32)
        prompt.labels = np.append(prompt.labels, 1 if positive else 0).astype(np.int32)

    for corners, obj_id in zip(rectangles, rectangle_obj_ids):
        mapped = [layout.point_to_prompt(c) for c in np.asarray(corners, float)]
        if any(m is None for m in mapped):
            continue
        frames = {m[0] for m in mapped}
        if len(frames) != 1:
            raise ValueError("a box must be drawn on a single frame; its corners lie on frames " f"{sorted(frames)}")
        xs = [m[1] for m in mapped]
        ys = [m[2] for m in mapped]
        entry(frames.pop(), int(obj_id)).box = np.array([min(xs), min(ys), max(xs), max(ys)], np.float32)

    return [grouped[key] for key in sorted(grouped)]


def is_correction(prompt: FramePrompt) -> bool:
    """True for negative clicks only (no positive click, box or mask): they take pixels away from a mask that
    tracking made, and mean nothing on a frame where the object has none yet."""
    return bool(len(prompt.labels)) and not np.any(prompt.labels > 0) and prompt.box is None and prompt.mask is None


def split_corrections(prompts: Sequence[FramePrompt],
                      direction: str = "both") -> Tuple[List[FramePrompt], List[FramePrompt]]:
    """A whole table of prompts -> (prompts that start objects, corrections (:func:`is_correction`)), each in order.

    Raises ValueError for an object that has corrections only (nothing says what it is), and for a correction on a
    frame that propagating ``direction`` ("forward", "backward", "both") from the first starting prompt never tracks.
    """
    starts = [p for p in prompts if not is_correction(p)]
    corrections = [p for p in prompts if is_correction(p)]
    started = {p.obj_id for p in starts}
    for prompt in corrections:
        if prompt.obj_id not in started:
            frames = sorted({p.frame for p in corrections if p.obj_id == prompt.obj_id})
            raise ValueError(
                f"object {prompt.obj_id} has negative clicks only (label 0, on frame{'s' if len(frames) > 1 else ''} "
                f"{', '.join(map(str, frames))}): a negative click takes pixels away from an object's mask, so each "
                "object needs a positive click (label 1) or a box on some frame")
    if starts and direction != "both":
        first = min(p.frame for p in starts)
        for prompt in corrections:
            if (prompt.frame < first) if direction == "forward" else (prompt.frame > first):
                raise ValueError(
                    f"object {prompt.obj_id}'s negative clicks on frame {prompt.frame} correct a mask that is never "
                    f"made: tracking goes {direction} from frame {first} (the first positive click or box), so it "
                    f"never reaches frame {prompt.frame}. Propagate both ways, or start the object on frame "
                    f"{prompt.frame} with a positive click or a box")
    return starts, corrections


def clip_to_frame(prompt: FramePrompt, height: int, width: int) -> FramePrompt:
    """Clamp a box (x0, y0, x1, y1) to the frame's outer pixel edges, -0.5..width - 0.5 and -0.5..height - 0.5, where
    napari draws them (pixel i spans i - 0.5..i + 0.5; napari lets users draw past them): a box drawn from corner to
    corner of the image reaches the model as drawn, as :class:`sam2_model.ImagePredictor` and Meta's SAM 2 take it
    (clamped to the pixel centres 0..width - 1 it gave masks 39-150 px different). A box inside the frame is left as
    it is, and so are clicks (their rule: :func:`outside_image`)."""
    if prompt.box is None:
        return prompt
    x0, y0, x1, y1 = prompt.box
    right, bottom = width - PIXEL_HALF, height - PIXEL_HALF
    box = np.array([np.clip(x0, -PIXEL_HALF, right), np.clip(y0, -PIXEL_HALF, bottom), np.clip(x1, -PIXEL_HALF, right),
                    np.clip(y1, -PIXEL_HALF, bottom)], np.float32)
    return FramePrompt(prompt.frame, prompt.obj_id, prompt.points, prompt.labels, box, prompt.mask)


def outside_image(coords: np.ndarray, layout: StackLayout, image_shape: Sequence[int]) -> np.ndarray:
    """(N,) bool: which clicks lie outside the image (off its rows, columns or frames).

    coords: (N, ndim) image-data coordinates. The session takes clicks on the frame's pixels as napari draws them,
    -0.5 <= x < width - 0.5 and -0.5 <= y < height - 0.5 (:func:`sam2_model.prompt_validation.inside_frame`); clicks
    off the fixed slices of ``layout`` are not "outside" (they are not prompts of this layout at all).
    """
    coords = np.asarray(coords, dtype=float).reshape(len(coords), -1)
    bad = np.zeros(len(coords), bool)
    rows_axis, cols_axis = layout.spatial_axes
    height, width = int(image_shape[rows_axis]), int(image_shape[cols_axis])
    frames = layout.num_frames(image_shape)
    for i, point in enumerate(coords):
        where = layout.point_to_prompt(point)
        if where is None:
            continue
        frame, x, y = where
        bad[i] = not (0 <= frame < frames and inside_frame(x, y, height, width))
    return bad
