"""After fine-tuning on a user's annotated stack: does the model track the user's own cells?

One click per annotated object of the stack's first frame (its most interior pixel), propagation through the
first frames, and the mean IoU of each tracked mask with the object's label on every frame: for the weights
fine-tuning started from and for the fine-tuned ones. The frames are the training frames, so this is no
held-out score; it catches a run that went wrong. On the MSC example (docs/training_data.md) the run whose memory
path collapsed scored 0.16 -> 0.18 here, the mended one 0.16 -> 0.58.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional

import numpy as np

from ..evaluation import click_point, track_with_clicks
from ..metrics import region_similarity
from ..modeling.sam2 import SAM2Model

MAX_FRAMES = 8  # frames tracked: enough to see a collapse, cheap on large stacks
MAX_OBJECTS = 16  # objects clicked


@dataclass
class StackCheck:
    """Mean tracked IoU on the training stack: ``before`` (starting weights; None from random weights) and
    ``after`` (fine-tuned), over ``objects`` objects clicked on frame 0 and ``frames`` frames."""

    before: Optional[float]
    after: float
    objects: int
    frames: int

    def worse(self, margin: float = 0.05) -> bool:
        """Whether fine-tuning lowered the tracked IoU by more than ``margin``."""
        return self.before is not None and self.after < self.before - margin

    def warning(self, margin: float = 0.05, good: float = 0.8) -> Optional[str]:
        """A message for the user when the run made tracking on their frames worse, or did not raise it by
        ``margin`` from a start below ``good``; None otherwise (and from random weights)."""
        if self.before is None:
            return None
        advice = ("try a longer warm-up, another seed, more annotated objects or frames, or keep the starting "
                  "weights")
        figures = f"tracked IoU {self.before:.2f} -> {self.after:.2f}"
        if self.worse(margin):
            return f"fine-tuning made tracking worse on your own frames ({figures}): {advice}"
        if self.after < self.before + margin and self.before < good:
            return f"fine-tuning did not improve tracking on your own frames ({figures}): {advice}"
        return None

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)


def tracked_iou(model: SAM2Model, stack: np.ndarray, labels: np.ndarray, max_frames: int = MAX_FRAMES,
                max_objects: int = MAX_OBJECTS) -> Optional[float]:
    """Mean IoU of click-and-track on (T, H, W) ``stack`` against its (T, H, W) instance ``labels`` (ids
    consistent through time), over the objects of frame 0 (at most ``max_objects``, largest first) and the
    first ``max_frames`` frames where each is annotated. None when frame 0 has no object."""
    stack, labels = np.asarray(stack)[:max_frames], np.asarray(labels)[:max_frames]
    ids, areas = np.unique(labels[0][labels[0] > 0], return_counts=True)
    if len(ids) == 0:
        return None
    chosen = [int(i) for i in ids[np.argsort(-areas, kind="stable")][:max_objects]]
    tracked = track_with_clicks(model, stack, {i: click_point(labels[0] == i) for i in chosen})
    scores: List[float] = [region_similarity(tracked[t] == i, labels[t] == i)
                           for t in range(len(stack)) for i in chosen if (labels[t] == i).any()]
    return float(np.mean(scores))


def check_stack(tuned: SAM2Model, start: Optional[SAM2Model], stack: np.ndarray, labels: np.ndarray) -> Optional[StackCheck]:
    """:class:`StackCheck` of the fine-tuned model against the starting one (None: random start) on the
    training stack; None when the stack's first frame has no object."""
    after = tracked_iou(tuned, stack, labels)
    if after is None:
        return None
    before = tracked_iou(start, stack, labels) if start is not None else None
    frames = min(MAX_FRAMES, len(stack))
    objects = min(MAX_OBJECTS, len(np.unique(np.asarray(labels[0])[np.asarray(labels[0]) > 0])))
    return StackCheck(None if before is None else round(before, 4), round(after, 4), objects, frames)
