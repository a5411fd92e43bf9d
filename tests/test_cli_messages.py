"""What ``napari-sam2 track`` says when the stack's axes, --checkpoint or --device are wrong: one short
message in the command line's words (flags, not Python argument names), before any model is built where
that is cheap."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

import sam2_model as sm
from napari_sam2.cli import main


@pytest.fixture
def prompts(tmp_path) -> Path:
    path = tmp_path / "prompts.csv"
    path.write_text("frame,obj_id,y,x,label\n0,1,20,20,1\n")
    return path


def _frames(t: int = 3, size: int = 48) -> np.ndarray:
    frames = np.zeros((t, size, size), np.uint16)
    frames[:, 12:28, 12:28] = 1000
    return frames


def track(tmp_path, prompts, stack, *flags, capsys):
    code = main(["track", str(stack), "--prompts", str(prompts), "-o", str(tmp_path / "out" / "labels.tif"),
                 "--device", "cpu", *flags])
    captured = capsys.readouterr()
    return code, captured.err, captured.out


def test_small_last_axis_is_named_as_the_channels(tmp_path, prompts, capsys):
    stack = tmp_path / "tyxc.tif"
    frames = _frames()
    tifffile.imwrite(stack, np.stack([frames, frames // 2], -1))  # (T, Y, X, 2)
    code, err, _ = track(tmp_path, prompts, stack, capsys=capsys)
    assert code == 2
    assert "axis 3 (size 2)" in err and "--channel-axis 3 with --channel N (0..1)" in err
    assert "--channel mean or --channel max" in err and "axis 1 (size 48)" not in err
    code, err, _ = track(tmp_path, prompts, stack, "--fix", "3=1", capsys=capsys)  # fixing it is --channel
    assert code == 2 and "pass --channel-axis 3 --channel 1" in err
    code, err, _ = track(tmp_path, prompts, stack, "--channel", "1", capsys=capsys)
    assert code == 2 and "pass --channel-axis 3 with --channel 1" in err


def test_rgb_stack_with_rgb_no_names_the_colour_axis(tmp_path, prompts, capsys):
    stack = tmp_path / "rgb.tif"
    tifffile.imwrite(stack, np.repeat(_frames()[..., None], 3, -1).astype(np.uint8), photometric="rgb")
    code, err, _ = track(tmp_path, prompts, stack, "--rgb", "no", capsys=capsys)
    assert code == 2
    assert "axis 3 (size 3)" in err and "--channel-axis 3" in err and "--rgb yes" in err
    grey = tmp_path / "grey.tif"
    tifffile.imwrite(grey, _frames(), photometric="minisblack")
    code, err, _ = track(tmp_path, prompts, grey, "--rgb", "yes", capsys=capsys)
    assert code == 2 and "--rgb yes needs a last axis of 3 (RGB) or 4 (RGBA) entries" in err and "=True" not in err


def test_a_real_z_axis_is_still_named(tmp_path, prompts, capsys):
    stack = tmp_path / "tzyx.npy"
    np.save(stack, np.stack([_frames()] * 4, 1))  # (T, Z, Y, X): z is unassigned, not channels
    code, err, _ = track(tmp_path, prompts, stack, capsys=capsys)
    assert code == 2 and "axis 1 (size 4)" in err and "--fix AXIS=INDEX" in err and "--channel-axis 3" not in err


def test_imagej_channels_ask_for_the_channel_flag_before_any_work(tmp_path, prompts, capsys):
    stack = tmp_path / "tc.tif"
    frames = _frames()
    tifffile.imwrite(stack, np.stack([frames, frames // 2], 1), imagej=True, metadata={"axes": "TCYX"})
    code, err, out = track(tmp_path, prompts, stack, capsys=capsys)
    assert code == 2
    assert "axis 1 of the image (3, 2, 48, 48) holds 2 channels (the TIFF's axes TCYX say so)" in err
    assert "--channel N (0..1)" in err and "--channel mean or --channel max" in err
    assert "channel=<index>" not in err and "composite" not in err  # Python names stay in the Python API
    assert "--object-window" not in out + err  # said before the object window is picked
    code, err, _ = track(tmp_path, prompts, stack, "--channel", "max", "--direction", "forward", capsys=capsys)
    assert code == 0, err
    # three fluorescence channels (DAPI, GFP, RFP) are not colour: they were silently taken for RGB
    three = tmp_path / "tc3.tif"
    tifffile.imwrite(three, np.stack([frames, frames // 2, frames // 3], 1), imagej=True, metadata={"axes": "TCYX"})
    code, err, _ = track(tmp_path, prompts, three, capsys=capsys)
    assert code == 2 and "axis 1 of the image (3, 3, 48, 48) holds 3 channels (the TIFF's axes TCYX say so)" in err


def test_wrong_checkpoint_files_are_told_apart(tmp_path, prompts, capsys):
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, _frames(), photometric="minisblack")
    run = tmp_path / "run"
    run.mkdir()
    state = sm.build_model("demo", device="cpu").state_dict()
    torch.save({"model": state}, run / "weights.pt")
    # last.pt as sam2_model.train.loop writes it; torch.__version__ (a TorchVersion) fails weights_only loading
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "step": 1, "clip_position": 2,
                "settings": {"steps": 1}, "sessions": [{"torch": torch.__version__}]}, run / "last.pt")
    code, err, _ = track(tmp_path, prompts, stack, "--checkpoint", str(run / "last.pt"), capsys=capsys)
    assert code == 2
    assert "training run's resume file" in err and f"load {run / 'weights.pt'} from the same folder" in err
    assert "weights_only" not in err and "download" not in err and len(err.strip().splitlines()) == 1
    code, err, _ = track(tmp_path, prompts, stack, "--checkpoint", str(stack), capsys=capsys)
    assert code == 2
    assert f"{stack} is not a readable PyTorch checkpoint: it is a TIFF image" in err
    assert "weights_only" not in err and "download" not in err and len(err.strip().splitlines()) == 1


def test_unknown_device_says_what_is_accepted(tmp_path, prompts, capsys):
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, _frames(), photometric="minisblack")
    code = main(["track", str(stack), "--prompts", str(prompts), "-o", str(tmp_path / "labels.tif"),
                 "--device", "gpu"])
    err = capsys.readouterr().err
    assert code == 2 and "device must be auto, cpu, cuda[:N] or mps, got 'gpu'" in err
    assert "Expected one of" not in err


def test_auto_both_ways_from_a_later_frame_is_refused_not_tracked_one_way(tmp_path, capsys):
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, _frames(), photometric="minisblack")
    code = main(["track", str(stack), "--auto", "--start-frame", "1", "--direction", "both",
                 "--table", str(tmp_path / "t.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "--auto tracks one way from --start-frame (1): pass --direction forward or backward" in err
    assert not (tmp_path / "t.csv").exists()


def test_auto_min_contrast_is_checked_in_the_commands_words_before_any_work(tmp_path, capsys):
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, _frames(), photometric="minisblack")
    code = main(["track", str(stack), "--auto", "--min-contrast", "-1", "--table", str(tmp_path / "t.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "--min-contrast: how much a detection must stand out from the pixels around it, a number " \
        ">= 0 (0: off); got -1" in err and "min_contrast must be" not in err


def test_options_the_mode_would_ignore_are_refused(tmp_path, prompts, capsys):
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, _frames(), photometric="minisblack")
    code, err, _ = track(tmp_path, prompts, stack, "--start-frame", "2", "--cell-diameter", "3", "4", capsys=capsys)
    assert code == 2 and "--cell-diameter, --start-frame: options of --auto only" in err
    code = main(["track", str(stack), "--auto", "--object-window", "64", "--table", str(tmp_path / "t.csv")])
    assert code == 2 and "--object-window applies to --prompts" in capsys.readouterr().err
