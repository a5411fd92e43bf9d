"""The widget's logic without Qt: layers -> prompts -> VideoSession -> labels, as generators.

The dock widget runs these generators in napari worker threads; scripts and tests can run them
directly. Nothing here touches Qt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from sam2_model import SAM2Model, VideoSession

from .labels_writer import RunJournal, compose_frame
from .layout import FrameView, StackLayout
from .prompts import FramePrompt, clip_to_frame

# A propagation yields ("frame", frame_idx, obj_ids, logits) per frame and a final ("done", ...).
Step = Tuple[str, int, List[int], Optional[np.ndarray]]


@dataclass
class SegmentationController:
    """One image layer's segmentation: its layout, session, labels array and undo history."""

    model: SAM2Model
    image: Any  # the image layer's data (numpy, dask, zarr)
    layout: StackLayout
    labels: np.ndarray  # the output labels array (the Labels layer's data)
    session_options: Dict[str, Any] = field(default_factory=dict)
    history: List[RunJournal] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.frames = FrameView(self.image, self.layout)
        self.session = VideoSession(self.model, self.frames, **self.session_options)
        self._sent: Dict[Tuple[int, int], FramePrompt] = {}
        self.mask_prompts: Dict[Tuple[int, int], FramePrompt] = {}  # seeded masks, kept until replaced

    def seed_masks(self, masks: List[FramePrompt], prompts: List[FramePrompt]) -> Iterator[Step]:
        """Use ``masks`` (from a Labels layer) as mask prompts on their frames, then apply them.

        prompts: the prompt layers' current clicks and boxes; where an object has both on one frame,
        the clicks and boxes win (they are the user's latest word).
        """
        height, width = self.session.frame_shape
        for prompt in masks:
            if prompt.mask is None or prompt.mask.shape != (height, width):
                shape = None if prompt.mask is None else prompt.mask.shape
                raise ValueError(f"a seed mask must have the frame's shape {(height, width)}, got {shape}")
        frames = {p.frame for p in masks}
        self.mask_prompts = {k: v for k, v in self.mask_prompts.items() if k[0] not in frames}
        self.mask_prompts.update({(p.frame, p.obj_id): p for p in masks})
        for frame in sorted(frames):
            yield from self.apply_prompts(prompts, frame)

    @property
    def obj_ids(self) -> List[int]:
        return self.session.obj_ids

    def apply_prompts(self, prompts: List[FramePrompt], frame: Optional[int] = None) -> Iterator[Step]:
        """Send new or changed prompts to the session and write their masks.

        prompts: every prompt of the prompt layers; frame: only (re)send this frame's prompts.
        An object whose prompt was deleted from a frame is removed from the session and re-added
        from its remaining prompts (the session has no way to forget one frame's prompt).
        """
        height, width = self.session.frame_shape
        everything = dict(self.mask_prompts)
        everything.update({(p.frame, p.obj_id): clip_to_frame(p, height, width) for p in prompts})
        in_scope = {k: v for k, v in everything.items() if frame is None or k[0] == frame}
        stale = sorted({obj for (f, obj) in self._sent if (frame is None or f == frame) and (f, obj) not in everything})
        journal = RunJournal()
        for obj in stale:
            if obj in self.session.obj_ids:
                self.session.remove_object(obj)
            self._sent = {k: v for k, v in self._sent.items() if k[1] != obj}
            self._clear_object(journal, obj)
            in_scope.update({k: v for k, v in everything.items() if k[1] == obj})
        for key in sorted(in_scope):
            prompt = in_scope[key]
            if _same(self._sent.get(key), prompt):
                continue
            logits = self.session.add_prompt(
                prompt.frame, prompt.obj_id,
                points=prompt.points if len(prompt.points) else None,
                labels=prompt.labels if len(prompt.labels) else None,
                box=prompt.box, mask=prompt.mask if prompt.box is None and not len(prompt.points) else None,
                clear_old=True,
            )
            self._sent[key] = prompt
            self._write(journal, prompt.frame, self.session.obj_ids, logits)
            yield "frame", prompt.frame, self.session.obj_ids, logits
        if len(journal):
            self.history.append(journal)
        yield "done", -1, self.session.obj_ids, None

    def propagate(self, start_frame: int, direction: str = "forward") -> Iterator[Step]:
        """Propagate from ``start_frame`` forward, backward or both; write each frame as it comes.

        Each frame is written whole; a run stopped early keeps the frames it finished, and
        :meth:`undo` restores everything the run changed.
        """
        if direction not in ("forward", "backward", "both"):
            raise ValueError(f"direction must be 'forward', 'backward' or 'both', not {direction!r}")
        journal = RunJournal()
        self.history.append(journal)
        passes = {"forward": [False], "backward": [True], "both": [False, True]}[direction]
        for reverse in passes:
            for frame, obj_ids, logits in self.session.propagate(start_frame=start_frame, reverse=reverse):
                self._write(journal, frame, obj_ids, logits)
                yield "frame", frame, obj_ids, logits
        yield "done", -1, self.session.obj_ids, None

    def undo(self) -> List[int]:
        """Undo the last run (prompt update or propagation); returns the frames restored."""
        if not self.history:
            return []
        restored = self.history.pop().undo(self.labels)
        axis = self.layout.labels_axis(self.layout.frame_axis) if self.layout.frame_axis is not None else None
        return [index[axis] if axis is not None else 0 for index in restored]

    def measurements(self) -> List[dict]:
        """Per-object, per-frame table of the labels (see :func:`napari_sam2.export.measure`)."""
        from .export import measure

        frames = range(self.session.num_frames)
        planes = np.stack([np.asarray(self.labels[self.layout.frame_index_in_labels(t)]) for t in frames])
        image = np.stack([self.frames[t] for t in frames]).astype(np.float32)
        if image.ndim == 4:
            image = image.mean(axis=-1)
        scores = {}
        for obj_id in self.session.obj_ids:
            state = self.session._objects[obj_id]
            for t in frames:
                result = state.result(t)
                if result is not None:
                    scores[(t, obj_id)] = float(result.object_score.reshape(-1)[0])
        return measure(planes, image, scores)

    def _write(self, journal: RunJournal, frame: int, obj_ids: List[int], logits: np.ndarray) -> None:
        index = self.layout.frame_index_in_labels(frame)
        plane = compose_frame(np.asarray(self.labels[index]), obj_ids, logits, session_ids=self._known_ids())
        journal.write(self.labels, index, plane.astype(self.labels.dtype))

    def _clear_object(self, journal: RunJournal, obj: int) -> None:
        for frame in range(self.session.num_frames):
            index = self.layout.frame_index_in_labels(frame)
            plane = np.asarray(self.labels[index])
            if (plane == obj).any():
                journal.write(self.labels, index, np.where(plane == obj, 0, plane).astype(self.labels.dtype))

    def _known_ids(self) -> set:
        return set(self.session.obj_ids) | {obj for _, obj in self._sent}


def _same(a: Optional[FramePrompt], b: FramePrompt) -> bool:
    if a is None:
        return False
    boxes_equal = (a.box is None and b.box is None) or (
        a.box is not None and b.box is not None and np.array_equal(a.box, b.box)
    )
    masks_equal = (a.mask is None and b.mask is None) or (
        a.mask is not None and b.mask is not None and np.array_equal(a.mask, b.mask)
    )
    return boxes_equal and masks_equal and np.array_equal(a.points, b.points) and np.array_equal(a.labels, b.labels)
