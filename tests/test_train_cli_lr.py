"""sam2-train's learning rate when --lr is not given: the fine-tuning widget's 1e-4 for a run from trained weights,
5e-4 from random weights, and a resumed run's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import pytest
import tifffile

from sam2_model.build import embedded_weights_path
from sam2_model.synthetic import make_timelapse
from sam2_model.train import TrainSettings
from sam2_model.train.__main__ import main as train_main
from sam2_model.train.__main__ import parse_args
from sam2_model.train.loop import FINE_TUNING_LR


@pytest.fixture
def stack_args(tmp_path: Path) -> List[str]:
    """--stack and --labels of a small synthetic (3, 64, 64) time-lapse with 3 cells."""
    movie = make_timelapse(num_frames=3, shape=(64, 64), num_cells=3, seed=5, radius_fraction=0.12)
    tifffile.imwrite(tmp_path / "stack.tif", movie.image, photometric="minisblack")
    tifffile.imwrite(tmp_path / "labels.tif", movie.labels, photometric="minisblack")
    return ["--stack", str(tmp_path / "stack.tif"), "--labels", str(tmp_path / "labels.tif")]


def test_a_run_from_trained_weights_learns_at_the_widgets_rate_and_one_from_random_weights_at_5e4(
        tmp_path: Path, stack_args: List[str]) -> None:
    fresh = ["--out", str(tmp_path / "fresh")]
    assert FINE_TUNING_LR == 1e-4 and TrainSettings(out="").lr == 5e-4
    assert parse_args(fresh + stack_args).lr == 1e-4  # --stack without --init: the embedded weights
    assert parse_args(fresh + stack_args + ["--init", "embedded"]).lr == 1e-4
    assert parse_args(fresh + ["--init", str(embedded_weights_path())]).lr == 1e-4  # a checkpoint, synthetic data
    assert parse_args(fresh + stack_args + ["--init", "random"]).lr == 5e-4
    assert parse_args(fresh).lr == 5e-4  # synthetic data from random weights, as before
    assert parse_args(fresh + stack_args + ["--lr", "3e-5"]).lr == 3e-5  # a given value is kept


def test_the_command_fine_tunes_at_1e4_and_a_resumed_run_keeps_its_own_rate(
        tmp_path: Path, stack_args: List[str]) -> None:
    """A run started at another rate (e.g. 5e-4, the default before) is resumed at it, not refused as another
    setting: the rate is the run's own, as its warm-up is."""
    small = ["--image-size", "64", "--clip-len", "2", "--clips-per-step", "1", "--steps", "1"]
    assert train_main(["--out", str(tmp_path / "mine")] + stack_args + small) == 0
    assert json.loads((tmp_path / "mine" / "weights.json").read_text())["settings"]["lr"] == 1e-4
    earlier = ["--out", str(tmp_path / "earlier")] + stack_args + small[:-1]
    assert train_main(earlier + ["1", "--lr", "3e-5"]) == 0
    assert parse_args(earlier + ["2"]).lr == 3e-5
    assert train_main(earlier + ["2"]) == 0  # more steps, no --lr: the run goes on at its own rate
    metadata = json.loads((tmp_path / "earlier" / "weights.json").read_text())
    assert metadata["steps"] == 2 and metadata["settings"]["lr"] == 3e-5
