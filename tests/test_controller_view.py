"""What the widget's labels show after a prompt: every object's newest result (the session's ``frame_logits``), not
the reference predictor's view that ``VideoSession.add_prompt`` returns (tests/test_parity_video.py)."""

from __future__ import annotations

import numpy as np

from napari_sam2.controller import SegmentationController
from napari_sam2.layout import StackLayout
from napari_sam2.prompts import FramePrompt
from sam2_model import build_model
from test_parity_video import moving_blobs


def _click(frame: int, obj: int, xy, labels=(1,)) -> FramePrompt:
    return FramePrompt(frame, obj, points=np.array(xy, float), labels=np.array(labels))


def test_a_correction_stays_shown_when_another_object_is_clicked_on_its_frame():
    frames = moving_blobs(6)[..., 0]  # (T, H, W) grey
    labels = np.zeros(frames.shape, np.uint32)
    # "Corrections stick" off: a correction is kept out of the conditioning frames (Meta's default), so it is pending
    # under the other kind than the new object's first prompt
    controller = SegmentationController(build_model("demo", device="cpu"), frames, StackLayout(3, 0), labels,
                                        session_options={"corrections_as_conditioning": False}, object_window=None)
    first = _click(0, 2, [[70.0, 80.0]])
    list(controller.apply_prompts([first]))
    list(controller.propagate(0, "forward"))
    tracked = labels[4] == 2
    correction = _click(4, 2, [[60.0, 80.0]], (0,))  # a correction of a tracked frame: its left part is not the cell
    list(controller.apply_prompts([first, correction]))
    corrected = labels[4] == 2
    assert (tracked & ~corrected).sum() > 100, "the correction must change the mask for the test to mean anything"
    list(controller.apply_prompts([first, correction, _click(4, 1, [[162.0, 150.0]])]))  # a new object there
    assert (labels[4] == 1).any()
    np.testing.assert_array_equal((labels[4] == 2) | (corrected & (labels[4] == 1)), corrected)
    np.testing.assert_array_equal(labels[4] == 2, controller.session.frame_masks(4)[0] & (labels[4] != 1))
