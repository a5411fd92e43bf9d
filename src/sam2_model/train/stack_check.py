"""After fine-tuning on a user's annotated stack: does the model track the user's own cells?

One click per annotated object of the stack's first frame (its most interior pixel), propagation through the
first frames, and the mean IoU of each tracked mask with the object's label on every frame: for the weights
fine-tuning started from and for the fine-tuned ones. The frames are the training frames, so this is no
held-out score; it catches a run that went wrong. On the MSC example (docs/training_data.md) the run whose memory
path collapsed scored 0.16 -> 0.18 here, the mended one 0.16 -> 0.58.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import numpy as np

from ..click_points import click_point
from ..frames import FrameSource
from ..metrics import region_similarity

if TYPE_CHECKING:  # (torch: :class:`StackCheck` is read by the fine-tuning widget, which docks without torch)
    from ..modeling.sam2 import SAM2Model

MAX_FRAMES = 8  # frames tracked: enough to see a collapse, cheap on large stacks
MAX_OBJECTS = 16  # objects clicked


@dataclass
class StackCheck:
    """Mean tracked IoU on the training stack: ``before`` (starting weights; None from random weights) and
    ``after`` (fine-tuned), over ``objects`` objects clicked on frame 0 and ``frames`` frames. ``held_out``: the
    frames training never saw (e.g. "30-39", :mod:`.hold_out`); None: the training stack's first frames."""

    before: Optional[float]
    after: float
    objects: int
    frames: int
    held_out: Optional[str] = None

    def worse(self, margin: float = 0.05) -> bool:
        """Whether fine-tuning lowered the tracked IoU by more than ``margin``."""
        return self.before is not None and self.after < self.before - margin

    def warning(self, margin: float = 0.05, good: float = 0.8) -> Optional[str]:
        """A message for the user when the run made tracking on their frames (segmentation of one image) worse, or did not raise it by
        ``margin`` from a start below ``good`` (worded as the figures read: raised by less than the margin, did not
        raise it, or made it slightly worse); None otherwise (and from random weights)."""
        if self.before is None:
            return None
        advice = ("try a longer warm-up, another seed, more annotated objects or frames, or keep the starting "
                  "weights")
        one = self.frames == 1  # one image (or frame): clicked and segmented, nothing tracked
        task, score = ("segmentation", "one-click IoU") if one else ("tracking", "tracked IoU")
        figures = f"{score} {self.before:.2f} -> {self.after:.2f}"
        if self.held_out is None:
            where = "your image" if one else "your own frames"
        else:
            where = f"the held-out frame {self.held_out}" if one else f"the held-out frames {self.held_out}"
        if self.worse(margin):
            return f"fine-tuning made {task} worse on {where} ({figures}): {advice}"
        if self.after < self.before + margin and self.before < good:
            shown = round(self.after, 2) - round(self.before, 2)  # worded as the figures read
            moved = (f"raised {task} on {where} by less than {margin:.2f}" if shown > 0 else
                     f"did not raise {task} on {where}" if shown == 0 else
                     f"made {task} slightly worse on {where}")
            return f"fine-tuning {moved} ({figures}; below {good:.2f} to start with): {advice}"
        return None

    def summary(self) -> str:
        """One line for the user: frames, objects and the tracked IoU (starting -> fine-tuned)."""
        before = "" if self.before is None else f"{self.before:.2f} -> "
        if self.held_out is not None:
            where = (f"one-click IoU on held-out frame {self.held_out}" if self.frames == 1
                     else f"tracked IoU on held-out frames {self.held_out} ({self.frames} tracked)")
        else:
            where = ("one-click IoU on the image" if self.frames == 1
                     else f"tracked IoU on the stack's first {self.frames} frames")
        objects = f"{self.objects} object{'s' * (self.objects != 1)} clicked"
        return f"{where}, {objects}: {before}{self.after:.2f}"

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def clicked_objects(first_labels: np.ndarray, max_objects: int = MAX_OBJECTS) -> List[int]:
    """The ids of a (H, W) label image that the check clicks: at most ``max_objects``, largest first."""
    ids, areas = np.unique(first_labels[first_labels > 0], return_counts=True)
    return [int(i) for i in ids[np.argsort(-areas, kind="stable")][:max_objects]]


def tracked_iou(model: SAM2Model, stack: np.ndarray, labels: np.ndarray,
                obj_ids: Optional[List[int]] = None, max_frames: int = MAX_FRAMES,
                limits: Optional[Tuple[float, float]] = None, invert: bool = False) -> Optional[float]:
    """Mean IoU of click-and-track on the first ``max_frames`` frames of (T, H, W) ``stack`` against its
    (T, H, W) instance ``labels`` (ids consistent through time): one click on each of ``obj_ids`` in frame 0
    (default :func:`clicked_objects`), scored on every frame where the object is annotated. None when there
    is no object to click. ``limits``, ``invert``: the contrast limits and inversion the frames are mapped with (as
    training mapped them: :class:`.data.FrameOptions`; None and False: the tracked frames' own percentiles)."""
    from ..evaluation import track_with_clicks  # torch: imported with the model that runs here

    stack, labels = np.asarray(stack)[:max_frames], np.asarray(labels)[:max_frames]
    obj_ids = clicked_objects(labels[0]) if obj_ids is None else obj_ids
    if not obj_ids:
        return None
    clicks = {i: click_point(labels[0] == i) for i in obj_ids}
    if limits is None and not invert:
        tracked = track_with_clicks(model, stack, clicks)
    else:
        with FrameSource(stack, image_size=model.image_size, contrast_limits=limits, invert=invert,
                         prefetch=0) as frames:
            tracked = track_with_clicks(model, frames, clicks)
    scores: List[float] = [region_similarity(tracked[t] == i, labels[t] == i)
                           for t in range(len(stack)) for i in obj_ids if (labels[t] == i).any()]
    return float(np.mean(scores))


def check_stack(tuned: SAM2Model, start: Optional[SAM2Model], stack: np.ndarray, labels: np.ndarray,
                limits: Optional[Tuple[float, float]] = None, invert: bool = False) -> Optional[StackCheck]:
    """:class:`StackCheck` of the fine-tuned model against the starting one (None: random start) on the first
    :data:`MAX_FRAMES` frames of the training stack (mapped with ``limits`` and ``invert``: :func:`tracked_iou`);
    None when the stack's first frame has no object."""
    labels = np.asarray(labels)
    obj_ids = clicked_objects(labels[0])
    after = tracked_iou(tuned, stack, labels, obj_ids, limits=limits, invert=invert)
    if after is None:
        return None
    before = None if start is None else tracked_iou(start, stack, labels, obj_ids, limits=limits, invert=invert)
    return StackCheck(None if before is None else round(before, 4), round(after, 4), len(obj_ids),
                      min(MAX_FRAMES, len(labels)))
