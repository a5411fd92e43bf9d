"""Frames held out of fine-tuning: never trained on, tracked after the run with the starting and the tuned weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from sam2_model import build_model
from sam2_model.synthetic import make_timelapse
from sam2_model.train.__main__ import main as train_main
from sam2_model.train.hold_out import FrameRange, parse_frame_range, read_ctc_held_out, split_off
from sam2_model.train.loop import TrainSettings, make_clips
from sam2_model.train.stack_check import StackCheck

MSC = Path(__file__).resolve().parents[2] / "shared" / "data" / "ctc-msc"


def test_frame_ranges_are_read_or_refused_by_name():
    assert parse_frame_range("30-39") == FrameRange(30, 39) and str(parse_frame_range(" 7 ")) == "7"
    assert 39 in parse_frame_range("30-39") and 40 not in parse_frame_range("30-39")
    for bad in ("30:39", "-3", "a-b", "", "3-"):
        with pytest.raises(ValueError, match="hold_out must be a range of frames such as 30-39"):
            parse_frame_range(bad)
    with pytest.raises(ValueError, match="ends before it starts"):
        parse_frame_range("39-30")
    with pytest.raises(ValueError, match="hold_out must be a range"):
        TrainSettings(out="x", hold_out="thirty")


def test_held_out_frames_are_left_out_of_training_and_kept_whole():
    movie = make_timelapse(num_frames=10, shape=(64, 64), num_cells=4, seed=5, radius_fraction=0.12)
    labels = movie.labels.copy()
    labels[7] = 0  # a frame of the range nobody annotated stays in the held-out stack, blank
    settings = TrainSettings(out="x", clip_len=3, hold_out="6-8")
    clips = make_clips(settings, 64, movie.image, labels)
    assert clips.frames.tolist() == [0, 1, 2, 3, 4, 5, 9] and clips.total_frames == 10
    held = clips.held_out
    assert held.frames == FrameRange(6, 8) and held.stack.shape == (3, 64, 64)
    np.testing.assert_array_equal(held.stack, movie.image[6:9])
    np.testing.assert_array_equal(held.labels, labels[6:9])
    assert not held.labels[1].any()
    assert labels[6].any()  # the caller's labels are not blanked in place


def test_a_hold_out_that_leaves_nothing_is_refused_by_name():
    movie = make_timelapse(num_frames=4, shape=(64, 64), num_cells=3, seed=5, radius_fraction=0.12)
    with pytest.raises(ValueError, match=r"hold_out 0-3 leaves no annotated frame to train on"):
        split_off(movie.image, movie.labels, FrameRange(0, 3))
    with pytest.raises(ValueError, match=r"hold_out 2-9 lies beyond the stack's 4 frames \(0-3\)"):
        split_off(movie.image, movie.labels, FrameRange(2, 9))
    blank = movie.labels.copy()
    blank[3] = 0
    with pytest.raises(ValueError, match="hold_out 3 holds no annotated frame"):
        split_off(movie.image, blank, FrameRange(3, 3))
    with pytest.raises(ValueError, match="one image of shape .* has no frames to hold out"):
        split_off(movie.image[0], movie.labels[0], FrameRange(0, 0))
    with pytest.raises(ValueError, match="hold_out keeps frames of your own stack out of training"):
        make_clips(TrainSettings(out="x", hold_out="3"), 64)


def test_a_run_with_held_out_frames_records_and_prints_their_check(tmp_path, capsys):
    movie = make_timelapse(num_frames=8, shape=(64, 64), num_cells=4, seed=5, radius_fraction=0.12)
    tifffile.imwrite(tmp_path / "stack.tif", movie.image, photometric="minisblack")
    tifffile.imwrite(tmp_path / "labels.tif", movie.labels, photometric="minisblack")
    start = build_model("demo", checkpoint="random", image_size=64)
    torch.save({"model": start.state_dict()}, tmp_path / "start.pt")
    code = train_main(["--out", str(tmp_path / "run"), "--image-size", "64", "--init", str(tmp_path / "start.pt"),
                       "--stack", str(tmp_path / "stack.tif"), "--labels", str(tmp_path / "labels.tif"),
                       "--hold-out", "5-7", "--steps", "2", "--clip-len", "3", "--clips-per-step", "1"])
    assert code == 0
    metadata = json.loads((tmp_path / "run" / "weights.json").read_text())
    held = StackCheck(**metadata["held_out_check"])
    assert held.held_out == "5-7" and held.frames == 3 and held.objects == len(np.unique(movie.labels[5])) - 1
    assert 0.0 <= held.before <= 1.0 and 0.0 <= held.after <= 1.0
    assert "frames 5-7 held out" in metadata["data"] and metadata["settings"]["hold_out"] == "5-7"
    out = capsys.readouterr().out
    assert "tracked IoU on the stack's first 5 frames" in out  # the training frames 0-4
    assert f"tracked IoU on held-out frames 5-7 (3 tracked), {held.objects} objects clicked: " in out


@pytest.mark.skipif(not MSC.is_dir(), reason="needs ../shared/data/ctc-msc")
def test_a_ctc_hold_out_tracks_every_frame_of_the_range_and_scores_the_segmented_ones():
    held = read_ctc_held_out(MSC / "01", MSC / "01_GT", FrameRange(26, 31))
    assert held.stack.shape == (6, 832, 992)
    np.testing.assert_array_equal(held.stack[0], tifffile.imread(MSC / "01" / "t026.tif"))
    annotated = [t for t in range(26, 32) if held.labels[t - 26].any()]
    assert annotated == [28, 29, 30, 31]  # SEG segments 28-31 of this range; 26 and 27 are blank
    clips = make_clips(TrainSettings(out="x", clip_len=2, stack=str(MSC / "01"), labels=str(MSC / "01_GT"),
                                     hold_out="24-47"), 256)
    assert len(clips.frames) == 5  # frames 5, 7, 9, 11 and 19 are trained on
    assert clips.held_out.stack.shape[0] == 24
    with pytest.raises(ValueError, match="the ground truth segments none of these frames"):
        read_ctc_held_out(MSC / "01", MSC / "01_GT", FrameRange(12, 18))


def test_a_run_resumes_only_with_the_frames_it_held_out(tmp_path):
    from sam2_model.train.loop import train

    movie = make_timelapse(num_frames=6, shape=(64, 64), num_cells=3, seed=5, radius_fraction=0.12)
    settings = TrainSettings(out=str(tmp_path / "run"), image_size=64, clip_len=2, clips_per_step=1, max_objects=2,
                             steps=2, warmup_steps=1, hold_out="4-5")
    train(settings, movie.image, movie.labels, progress=lambda step, row: step < 1)  # stopped after one step
    with pytest.raises(ValueError, match=r"run.last\.pt is a run that held out 4-5; resume it with the same hold_out"):
        train(TrainSettings(**{**settings.__dict__, "hold_out": None}), movie.image, movie.labels)
    train(settings, movie.image, movie.labels, progress=lambda step, row: True)
    assert json.loads((tmp_path / "run" / "weights.json").read_text())["steps"] == 2


def test_a_run_resumes_only_on_the_data_it_started_on(tmp_path):
    """Resuming on other labels (another movie, or labels edited since) is refused before any step; the same data
    resumes."""
    from sam2_model.train.loop import train

    movie = make_timelapse(num_frames=4, shape=(64, 64), num_cells=3, seed=5, radius_fraction=0.12)
    settings = TrainSettings(out=str(tmp_path / "run"), image_size=64, clip_len=2, clips_per_step=1, max_objects=2,
                             steps=2, warmup_steps=1)
    train(settings, movie.image, movie.labels, progress=lambda step, row: step < 1)
    edited = movie.labels.copy()
    edited[2][edited[2] == edited[2].max()] = 0  # one cell erased on one frame
    with pytest.raises(ValueError, match="is a run on other frames or labels than these"):
        train(settings, movie.image, edited)
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["step"] == 1
    train(settings, movie.image, movie.labels, progress=lambda step, row: True)
