"""The check a fine-tuning run makes on the user's own stack (sam2_model.train.stack_check), with the real demo model."""

from __future__ import annotations

import numpy as np
import torch

import sam2_model as sm
from sam2_model.synthetic import make_timelapse
from sam2_model.train.stack_check import StackCheck, check_stack, tracked_iou


def test_the_check_tells_a_tracking_model_from_one_that_lost_its_memory_path() -> None:
    movie = make_timelapse(num_frames=5, shape=(128, 128), num_cells=6, seed=900_011)
    good = sm.build_model("demo", checkpoint="download")
    broken = sm.build_model("demo", checkpoint="download")
    with torch.no_grad():  # the memory is no longer read: what a collapsed fine-tuning run looked like
        for name, parameter in broken.named_parameters():
            if "cross_attn_image.out_proj" in name:
                parameter.zero_()
    check = check_stack(broken, good, movie.image, movie.labels)
    assert check is not None and check.frames == 5 and check.objects == len(np.unique(movie.labels[0])) - 1
    assert check.before > 0.8 and check.after < check.before - 0.2, check
    assert check.worse() and "made tracking worse" in check.warning()
    assert not StackCheck(check.before, check.before, 1, 1).worse()
    assert "raised tracking on your own frames by less than 0.05 (tracked IoU 0.16 -> 0.18; below 0.80 to start " \
        "with)" in StackCheck(0.16, 0.18, 8, 5).warning()  # the collapsed MSC run
    # the margin is applied to unrounded figures: the message must not say "did not improve" of 0.32 -> 0.37
    assert "did not improve" not in StackCheck(0.3249, 0.3712, 8, 5).warning()
    assert StackCheck(0.16, 0.58, 8, 5).warning() is None and StackCheck(0.92, 0.92, 6, 5).warning() is None
    assert StackCheck(None, 0.5, 6, 5).warning() is None
    assert check_stack(good, None, movie.image, movie.labels).before is None
    empty = np.zeros_like(movie.labels)
    assert tracked_iou(good, movie.image, empty) is None and check_stack(good, good, movie.image, empty) is None


def test_one_image_is_worded_as_one_click_segmentation_and_one_object_is_singular() -> None:
    """A 2D image (frames == 1) is clicked, not tracked: summary and warning say the same thing."""
    single = StackCheck(0.55, 0.57, 1, 1)
    assert single.summary() == "one-click IoU on the image, 1 object clicked: 0.55 -> 0.57"
    warning = single.warning()
    assert warning.startswith("fine-tuning raised segmentation on your image by less than 0.05 (one-click IoU "
                              "0.55 -> 0.57;"), warning
    assert "track" not in warning
    assert "made segmentation worse on the held-out frame 7 (one-click IoU 0.50 -> 0.30)" in \
        StackCheck(0.5, 0.3, 2, 1, held_out="7").warning()
    assert StackCheck(0.16, 0.18, 2, 5).summary().endswith(", 2 objects clicked: 0.16 -> 0.18")
