"""Frames kept out of fine-tuning, to see whether the tuned weights track cells on frames they never saw.

The check after every run on a user's stack (:mod:`.stack_check`) tracks on training frames: it catches a run that
went wrong, not one that learned the training frames by heart. A user who names a range of frames
(``TrainSettings.hold_out``, ``--hold-out 30-39``, the fine-tuning widget's *Hold out frames*) gets a held-out
figure too: training never sees those frames (their labels are blanked, and blank frames are left out), and after
the run the starting and the fine-tuned weights each click every annotated object of the range's first annotated
frame and track it through the range (at most :data:`MAX_FRAMES` frames), scored wherever the object is annotated.

Frame numbers are indices into the stack from 0, or for a Cell Tracking Challenge sequence its ``t%03d`` numbers;
there the held-out range is tracked over every frame of the sequence in it, not only the segmented ones.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Tuple

import numpy as np
import tifffile

from .ctc_training import CtcTrainingData, read_ctc_training, segmented_frames
from .stack_check import StackCheck, clicked_objects, tracked_iou
from .stack_labels import annotated_frames, frame_list, link_by_overlap

if TYPE_CHECKING:  # (torch: the widget parses and splits off held-out frames before a run, without torch)
    from ..modeling.sam2 import SAM2Model

MAX_FRAMES = 48  # frames tracked from the range's first annotated frame: the MSC example's unseen 24-47


@dataclass(frozen=True)
class FrameRange:
    """Frames ``first`` to ``last``, both included."""

    first: int
    last: int

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    def __contains__(self, frame: object) -> bool:
        return isinstance(frame, (int, np.integer)) and self.first <= int(frame) <= self.last


def parse_frame_range(text: str) -> FrameRange:
    """"30-39" (both included) or "30" -> :class:`FrameRange`; anything else is refused by name."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(text))
    if match is None:
        raise ValueError(f"hold_out must be a range of frames such as 30-39 (both included) or one frame such as 30, "
                         f"got {text!r}")
    first = int(match.group(1))
    last = first if match.group(2) is None else int(match.group(2))
    if last < first:
        raise ValueError(f"hold_out {text!r} ends before it starts: write the first frame first, e.g. {last}-{first}")
    return FrameRange(first, last)


@dataclass
class HeldOut:
    """The held-out frames: ``stack`` (T', H, W) consecutive frames ``frames.first``..``frames.last``, ``labels`` the
    same shape (ids following the cells, 0 where a frame or a cell is not annotated)."""

    stack: np.ndarray
    labels: np.ndarray
    frames: FrameRange


def split_off(stack: np.ndarray, labels: np.ndarray, frames: FrameRange,
              link_ids: bool = False) -> Tuple[np.ndarray, HeldOut]:
    """(T, H, W) ``stack`` and ``labels`` -> (the labels training gets: a copy with ``frames`` blanked, the held-out
    frames). ``link_ids``: link the held-out labels' ids by overlap first, as training links its own."""
    stack, labels = np.asarray(stack), np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"hold_out needs a stack of frames (T, Y, X); one image of shape {labels.shape} has no frames "
                         "to hold out: fine-tune on it without hold_out")
    if frames.last >= len(labels):
        raise ValueError(f"hold_out {frames} lies beyond the stack's {len(labels)} frames (0-{len(labels) - 1})")
    held_labels = labels[frames.first : frames.last + 1]
    if not held_labels.any():
        raise ValueError(f"hold_out {frames} holds no annotated frame: hold out frames with labels, so the check has "
                         "cells to track")
    training = labels.copy()
    training[frames.first : frames.last + 1] = 0
    if not training.any():
        raise ValueError(f"hold_out {frames} leaves no annotated frame to train on: annotated are "
                         f"{frame_list(annotated_frames(labels))}; hold out fewer frames")
    held = HeldOut(stack[frames.first : frames.last + 1], link_by_overlap(held_labels) if link_ids else held_labels,
                   frames)
    return training, held


def read_ctc_held_out(sequence: "os.PathLike | str", ground_truth: "os.PathLike | str", frames: FrameRange,
                      truth: Optional[CtcTrainingData] = None) -> HeldOut:
    """Every frame of CTC ``sequence`` in ``frames``, with the segmentation truth under tracking ids on the frames
    ``ground_truth`` segments and blank labels on the others (:mod:`.ctc_training`). ``truth``: the sequence's
    segmented frames as :func:`.ctc_training.read_ctc_training` read them already (those are not read again)."""
    sequence = Path(sequence)
    wanted = [sequence / f"t{t:03d}.tif" for t in range(frames.first, frames.last + 1)]
    missing = [path.name for path in wanted if not path.is_file()]
    if missing:
        raise ValueError(f"hold_out {frames}: {sequence} lacks {', '.join(missing[:5])}"
                         f"{' ...' if len(missing) > 5 else ''}")
    if not any(t in frames for t in segmented_frames(ground_truth)):
        raise ValueError(f"hold_out {frames}: the ground truth segments none of these frames; hold out a range with "
                         "segmented frames")
    if truth is None:
        truth = read_ctc_training(sequence, ground_truth, frames.first, frames.last)
    segmented = {t: i for i, t in enumerate(truth.frames) if t in frames}
    stack = np.stack([truth.stack[segmented[t]] if t in segmented else tifffile.imread(path)
                      for t, path in zip(range(frames.first, frames.last + 1), wanted)])
    labels = np.zeros(stack.shape, truth.labels.dtype)
    for t, index in segmented.items():
        labels[t - frames.first] = truth.labels[index]
    return HeldOut(stack, labels, frames)


def check_held_out(tuned: SAM2Model, start: Optional[SAM2Model], held: HeldOut,
                   limits: Optional[Tuple[float, float]] = None, invert: bool = False) -> Optional[StackCheck]:
    """:class:`.stack_check.StackCheck` on the held-out frames: one click on each annotated object of the first
    annotated frame (at most :data:`.stack_check.MAX_OBJECTS`, largest first), tracked through at most
    :data:`MAX_FRAMES` frames, for the fine-tuned weights and the starting ones (None: random start); the frames
    mapped with ``limits`` and ``invert`` as training mapped its own (:func:`.stack_check.tracked_iou`)."""
    first = int(annotated_frames(held.labels)[0])
    stack, labels = held.stack[first : first + MAX_FRAMES], held.labels[first : first + MAX_FRAMES]
    obj_ids = clicked_objects(labels[0])
    after = tracked_iou(tuned, stack, labels, obj_ids, max_frames=MAX_FRAMES, limits=limits, invert=invert)
    if after is None:
        return None
    before = None if start is None else tracked_iou(start, stack, labels, obj_ids, max_frames=MAX_FRAMES,
                                                    limits=limits, invert=invert)
    return StackCheck(None if before is None else round(before, 4), round(after, 4), len(obj_ids), len(stack),
                      held_out=str(held.frames))

