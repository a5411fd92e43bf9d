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
    code, err, _ = track(tmp_path, prompts, three, "--overwrite", capsys=capsys)  # out/labels.tif exists now
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
    assert code == 2 and "--direction both: automatic tracking (--auto) runs one way from its start frame" in err
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


def _stack(tmp_path, frames: np.ndarray = None) -> Path:
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, _frames(4) if frames is None else frames, photometric="minisblack")
    return stack


def test_auto_direction_is_one_rule_with_one_message_in_track_and_batch(tmp_path, capsys):
    """--direction both with --auto is refused by track and batch alike, from frame 0 too (track ran it forward),
    in the same words; nothing is created."""
    stack = _stack(tmp_path)
    assert main(["track", str(stack), "--auto", "--direction", "both", "--table", str(tmp_path / "t" / "t.csv")]) == 2
    track_message = capsys.readouterr().err.split("napari-sam2: ", 1)[1]
    assert main(["batch", str(stack), "--out", str(tmp_path / "out"), "--auto", "--direction", "both"]) == 2
    batch_message = capsys.readouterr().err.split("napari-sam2 batch: ", 1)[1]
    assert track_message == batch_message
    assert track_message.startswith("--direction both: automatic tracking (--auto) runs one way from its start frame")
    assert "give forward (the default, towards the last frame) or backward" in track_message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.tif"]


@pytest.fixture
def no_model(monkeypatch):
    """Fail loudly if track reaches model building (its checks must come first)."""
    import napari_sam2.cli as cli

    def tripwire(*args, **kwargs):
        raise AssertionError("a model was built before the direction was checked")

    monkeypatch.setattr(cli, "build_model", tripwire)
    monkeypatch.setattr(cli, "segment", tripwire)


@pytest.mark.parametrize("flags, message", [
    (["--auto", "--direction", "backward"], "--direction backward from --start-frame 0: there is nothing before"),
    (["--auto", "--start-frame", "3"], "--direction forward from --start-frame 3: frame 3 is the stack's last (0..3)"),
    (["--auto", "--start-frame", "3", "--direction", "forward"], "--direction forward from --start-frame 3"),
    (["--prompts", "{tmp}/p0.csv", "--direction", "backward"],
     "--direction backward from the first prompted frame (0): there is nothing before frame 0 to track"),
    (["--prompts", "{tmp}/p3.csv", "--direction", "forward"],
     "--direction forward from the first prompted frame (3): frame 3 is the stack's last (0..3)"),
])
def test_one_way_with_nothing_to_track_is_refused_before_any_work(tmp_path, capsys, no_model, flags, message):
    stack = _stack(tmp_path)
    (tmp_path / "p0.csv").write_text("frame,obj_id,y,x,label\n0,1,20,20,1\n")
    (tmp_path / "p3.csv").write_text("frame,obj_id,y,x,label\n3,1,20,20,1\n")
    out = tmp_path / "out" / "labels.tif"
    code = main(["track", str(stack), "-o", str(out), *[f.format(tmp=tmp_path) for f in flags]])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert not (tmp_path / "out").exists()


def test_one_way_runs_where_there_is_something_to_track(tmp_path, capsys):
    """Backward from a later frame still runs (the check refuses only an empty run)."""
    stack = _stack(tmp_path)
    (tmp_path / "p3.csv").write_text("frame,obj_id,y,x,label\n3,1,20,20,1\n")
    out = tmp_path / "labels.tif"
    assert main(["track", str(stack), "--prompts", str(tmp_path / "p3.csv"), "-o", str(out), "--direction",
                 "backward", "--device", "cpu"]) == 0, capsys.readouterr().err
    assert tifffile.imread(out)[0].max() == 1


@pytest.mark.parametrize("limits, shade", [(("5000", "6000"), "black"), (("-20", "-10"), "white")])
def test_contrast_limits_outside_the_data_warn_once_before_tracking(tmp_path, prompts, capsys, limits, shade):
    stack = _stack(tmp_path)  # grey values 0..1000
    code, err, _ = track(tmp_path, prompts, stack, "--contrast-limits", *limits, capsys=capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1, err
    assert f"--contrast-limits {limits[0]} {limits[1]} lie outside the data's range 0..1000 (a sample of 4 frames)" \
        in warnings[0] and f"every pixel as {shade}" in warnings[0]
    assert err.index("warning") < err.index("propagating")  # said before tracking starts


def test_contrast_limits_inside_the_data_say_nothing(tmp_path, prompts, capsys):
    code, err, _ = track(tmp_path, prompts, _stack(tmp_path), "--contrast-limits", "0", "500", capsys=capsys)
    assert code == 0 and "warning" not in err, err


def test_the_data_range_reads_a_sample_of_frames_not_the_whole_stack():
    from napari_sam2.cli import data_range
    from napari_sam2.layout import FrameView, StackLayout

    class Counted:
        """A (200, 32, 32) stack that records which frames are read."""

        def __init__(self) -> None:
            self.shape, self.dtype, self.read = (200, 32, 32), np.dtype(np.uint16), set()

        def __getitem__(self, key):
            self.read.add(int(key[0]))
            plane = np.full((32, 32), int(key[0]), np.uint16)
            return plane[key[1:]]

    stack = Counted()
    low, high, count = data_range(FrameView(stack, StackLayout(3, 0, None)))
    assert count == len(stack.read) <= 16 and {0, 199} <= stack.read
    assert (low, high) == (0.0, 199.0)
