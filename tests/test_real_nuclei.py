"""A real image the embedded model never saw: widefield fluorescence nuclei, every nucleus labelled (the example
that ships in the stardist wheel, read in place; see bench/real_nuclei.py). The whole model runs: one click per
nucleus, the input size *auto* picks, and automatic detection. Skipped when the wheel's data is not installed
(``scripts/setup.sh --test`` installs it)."""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest

import sam2_model as sm
from sam2_model.input_size import estimate_object_diameter, suggest_image_size

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
from real_nuclei import (ENV_FOLDER, detection_scores, drift_scores, load_real_nuclei, one_click_ious,  # noqa: E402
                         real_nuclei_folder, still_scores)
from sam2_model.windows import window_side  # noqa: E402

pytestmark = pytest.mark.skipif(real_nuclei_folder() is None,
                                reason="no real nuclei image: pip install --no-deps stardist==0.9.2 "
                                       f"(its wheel carries it) or set ${ENV_FOLDER}")

# Measured with the shipped weights (CPU, deterministic; stop 35): one click 0.583 at 256 px (the weights of stop 34
# 0.551), detection F1 0.611 at the size auto picks, 256 px (stop 34: 0.531; precision 0.79, recall 0.50).
ONE_CLICK_256 = 0.57
DETECTION_F1 = 0.58
# In object windows (2026-12-05, stop 36; sam2_model.windows), the same weights: one click 0.740 in 192 px windows,
# detection F1 0.787 (precision 0.91, recall 0.70, matched IoU 0.79); the drifting time-lapse (bench/real_nuclei.py,
# 40 nuclei, 12 frames) J&F 0.485 on whole frames -> 0.610 in windows.
ONE_CLICK_WINDOWS = 0.72
DETECTION_F1_WINDOWS = 0.75
DRIFT_GAIN = 0.08
# The image held still for 4 frames, every clickable nucleus clicked on the first, tracked in object windows
# (2026-12-05, stop 37): IoU 0.784 on the clicked frame, 0.682 on the last (the memory path's masks grow over the
# neighbours; docs/training_data.md, "Crowded nuclei held still").
STILL_LAST_FRAME = 0.65


@pytest.fixture(scope="module")
def nuclei():
    return load_real_nuclei()


def test_the_image_is_the_labelled_widefield_nuclei_the_bench_scores(nuclei):
    assert nuclei.image.shape == nuclei.labels.shape == (512, 512)
    assert nuclei.image.dtype == np.uint16
    assert len(np.unique(nuclei.labels)) - 1 == 125
    ids, counts = np.unique(nuclei.labels[nuclei.labels > 0], return_counts=True)
    assert np.median(2 * np.sqrt(counts / np.pi)) == pytest.approx(23.7, abs=0.5)  # nuclei ~24 px wide


def test_one_click_per_real_nucleus_with_the_shipped_weights(nuclei):
    ious = one_click_ious(sm.build_model("demo", device="cpu"), nuclei)
    assert len(ious) == 110
    assert float(np.mean(ious)) >= ONE_CLICK_256


def test_auto_input_size_is_no_worse_than_the_training_size_on_real_nuclei(nuclei):
    """*auto* must not pick a size at which the shipped weights do worse than at the 256 px they were trained
    at: before the size rule was measured on this image it picked 512 px, where one click fell from 0.55 to
    0.35 (the masks spread over neighbouring nuclei)."""
    size = suggest_image_size(estimate_object_diameter(nuclei.image), nuclei.image.shape)
    at_auto = np.mean(one_click_ious(sm.build_model("demo", device="cpu", image_size=size), nuclei))
    at_256 = np.mean(one_click_ious(sm.build_model("demo", device="cpu", image_size=256), nuclei))
    assert at_auto >= at_256 - 0.02, (size, at_auto, at_256)


def test_automatic_detection_finds_real_nuclei(nuclei):
    diameter = estimate_object_diameter(nuclei.image)
    model = sm.build_model("demo", device="cpu", image_size=suggest_image_size(diameter, nuclei.image.shape))
    scores = detection_scores(model, nuclei, diameter, window=None)
    assert scores["f1"] >= DETECTION_F1
    assert scores["matched_iou"] >= 0.7  # measured 0.750
    windowed = detection_scores(model, nuclei, diameter)  # the detector's default: windows where they help
    assert windowed["f1"] >= DETECTION_F1_WINDOWS and windowed["f1"] > scores["f1"], (scores, windowed)


def test_one_click_in_object_windows_beats_the_whole_frame_on_real_nuclei(nuclei):
    diameter = estimate_object_diameter(nuclei.image)
    size = suggest_image_size(diameter, nuclei.image.shape)
    side = window_side(diameter, nuclei.image.shape, size)
    assert side == 192  # nuclei ~24 px (estimated 17.5) in 512 x 512 at 256 px input
    windowed = np.mean(one_click_ious(sm.build_model("demo", device="cpu", image_size=size), nuclei, side))
    assert windowed >= ONE_CLICK_WINDOWS


def test_real_nuclei_are_followed_better_in_object_windows(nuclei):
    """The drifting time-lapse of bench/real_nuclei.py through napari_sam2.segment, object windows off and auto."""
    off = drift_scores(None, nuclei, 256, "off")
    auto = drift_scores(None, nuclei, 256, "auto")
    assert auto["first_frame_iou"] >= ONE_CLICK_WINDOWS and auto["j_and_f"] >= off["j_and_f"] + DRIFT_GAIN, (off, auto)


def test_real_nuclei_held_still_keep_most_of_their_clicked_masks(nuclei):
    """Nothing moves, so what the last frame loses against the clicked one is the memory path's own drift: a guard on
    the tracking of crowded real nuclei (weights whose memory path lets masks spread lose here first)."""
    scores = still_scores(None, nuclei, 256, frames=4)
    assert scores["objects"] == 110
    assert scores["first_frame_iou"] >= ONE_CLICK_WINDOWS and scores["last_frame_iou"] >= STILL_LAST_FRAME, scores
