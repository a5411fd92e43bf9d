"""Training runs on lent machines: a wall-time limit that stops cleanly, the machine recorded per invocation,
data workers that never touch CUDA, split/join of weights for small-file transfers, and (on CUDA only) a
real training step on the GPU; the clip parts workers send, equal to the inference path's inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sam2_model.build import build_model, load_checkpoint
from sam2_model.frames import UINT8_LIMITS, percentile_limits, to_model_input, to_unit
from sam2_model.train.__main__ import main as train_main
from sam2_model.train.__main__ import parse_args
from sam2_model.train.data import (MixedClips, clip_from_parts, jittered_limits, masks_to_model_resolution,
                                   mixed_clip_arrays, mixed_clip_parts)
from sam2_model.train.loop import TrainSettings, saved_step, train
from sam2_model.train.machine import describe_machine
from sam2_model.train.package import load_run, main as package_main, stage_record


def _tiny(out, **changes) -> TrainSettings:
    base = dict(out=str(out), model="demo", image_size=64, clip_len=2, clips_per_step=1, max_objects=2,
                steps=4, warmup_steps=2, save_every=1000, seed=5)
    base.update(changes)
    return TrainSettings(**base)


def test_a_time_limit_stops_cleanly_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    train(_tiny(run, steps=100_000, time_limit=2.0), progress=lambda step, row: True)
    meta = json.loads((run / "weights.json").read_text())
    state = torch.load(run / "last.pt", weights_only=False)
    stopped_at = state["step"]
    assert meta["stopped_by"] == "time_limit" and meta["steps"] == stopped_at < 100_000
    assert meta["wall_seconds"] >= 2.0 and meta["sessions"][0]["stopped_by"] == "time_limit"
    assert not list(run.glob("*.tmp"))  # nothing half-written
    load_checkpoint(build_model("demo", checkpoint="random", image_size=64), run / "weights.pt")
    # the same run again, without the limit, goes on from the checkpoint to its (new) end
    train(_tiny(run, steps=stopped_at + 1), progress=lambda step, row: True)
    meta = json.loads((run / "weights.json").read_text())
    assert meta["steps"] == stopped_at + 1 and meta["stopped_by"] == "steps"
    assert [s["start_step"] for s in meta["sessions"]] == [0, stopped_at]
    assert [s["stopped_by"] for s in meta["sessions"]] == ["time_limit", "steps"]
    rows = (run / "history.csv").read_text().splitlines()
    assert len(rows) == 1 + stopped_at + 1
    assert rows[0].split(",")[-2:] == ["data_seconds", "image_size"]
    assert {row.split(",")[-1] for row in rows[1:]} == {"64"}  # every step ran at the model's input size


def test_time_limit_flag_and_bad_values(tmp_path, capsys):
    assert parse_args(["--out", "x", "--time-limit", "200"]).time_limit == 200.0
    assert parse_args(["--out", "x"]).time_limit is None
    with pytest.raises(ValueError, match="time_limit must be a positive"):
        TrainSettings(out="x", time_limit=0)
    with pytest.raises(SystemExit):
        parse_args(["--out", "x", "--time-limit", "-5"])
    assert "time_limit must be a positive" in capsys.readouterr().err


def test_weights_and_packaged_stages_record_machine_data_and_wall_time(tmp_path):
    run = tmp_path / "run"
    train(_tiny(run, steps=1), progress=lambda step, row: True)
    meta = json.loads((run / "weights.json").read_text())
    machine = meta["machine"]
    assert machine == describe_machine(torch.device("cpu")) and machine["cpu"] and machine["gpu"] is None
    assert meta["torch"] == torch.__version__ and meta["steps"] == 1 and meta["train_seconds"] > 0
    assert "make_timelapse" in meta["data"] and meta["sessions"][0]["end_step"] == 1
    # only weights.pt + weights.json came back from the machine that trained: the stage is still recorded
    (run / "last.pt").unlink()
    record = stage_record(run)
    assert record["steps"] == 1 and record["machine"] == machine and record["torch"] == [torch.__version__]
    assert record["wall_seconds"] > 0 and "make_timelapse" in record["data"]
    assert torch.equal(load_run(run)["model"]["no_mem_embed"], torch.load(run / "weights.pt")["model"]["no_mem_embed"])


def test_clip_parts_become_the_inference_inputs_bit_for_bit():
    """Workers send grey inputs and bool masks; normalised in the training process they equal what
    FrameSource's per-frame path (to_model_input) gives, and the masks the ground truth."""
    compared = 0
    for index in range(3):
        seed = 4 * 1_000_003 + index
        arrays = mixed_clip_arrays(seed, 3, (96, 96), 3, 12, 0.15)
        parts = mixed_clip_parts(seed, 3, (96, 96), 3, 12, 0.15, 64, True)
        if arrays is None:
            assert parts is None
            continue
        image, masks = arrays
        units, small_masks = parts
        assert units.shape == (3, 1, 64, 64) and units.dtype == np.float32 and small_masks.dtype == bool
        limits = jittered_limits(image, seed)
        limits = limits if limits is not None else (UINT8_LIMITS if image.dtype == np.uint8 else percentile_limits(list(image)))
        expected = torch.stack([to_model_input(to_unit(frame, limits), 64) for frame in image])
        clip = clip_from_parts(parts)
        assert torch.equal(clip.images, expected)
        assert torch.equal(clip.masks, masks_to_model_resolution(masks, 64))
        compared += 1
    assert compared >= 2  # clips without a usable object are rare


@pytest.mark.parametrize("jitter", [False, True])
def test_data_workers_make_the_same_clips_as_the_training_process(jitter):
    """Workers make whole clips (model inputs, contrast jitter included), equal to those made in-process."""
    inline = MixedClips(clip_len=2, image_size=64, max_objects=2, seed=4, contrast_jitter=jitter)
    pooled = MixedClips(clip_len=2, image_size=64, max_objects=2, seed=4, workers=1, contrast_jitter=jitter)
    stream = iter(pooled)
    for a, b in zip(inline, [next(stream) for _ in range(4)]):
        assert a.images.shape == b.images.shape and a.images.dtype == torch.float32
        assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    stream.close()  # ends the worker pool


def test_split_and_join_round_trip_and_refuse_bad_parts(tmp_path, capsys):
    payload = bytes(range(256)) * 41  # 10496 bytes
    original = tmp_path / "weights.pt"
    original.write_bytes(payload)
    assert package_main(["--split", str(original), "--part-mib", str(4000 / 2**20)]) == 0
    parts = sorted(tmp_path.glob("weights.pt.0*"))
    assert [p.name for p in parts] == ["weights.pt.001", "weights.pt.002", "weights.pt.003"]
    assert all(p.stat().st_size <= 4000 for p in parts)
    out = tmp_path / "back" / "weights.pt"  # a folder that does not exist yet is made
    assert package_main(["--join", *map(str, parts), "--out", str(out)]) == 0
    assert out.read_bytes() == payload and "checked" in capsys.readouterr().out
    assert package_main(["--join", str(parts[1]), str(parts[0]), str(parts[2]), "--out", str(tmp_path / "x.pt")]) == 2
    assert "out of order" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_package_makes_its_output_folder_before_measuring(tmp_path):
    # packaging measures the weights for minutes before it writes; a missing output folder used to fail only then
    out = tmp_path / "new" / "demo.pt"
    with pytest.raises(ValueError, match="holds neither"):
        package_main([str(tmp_path / "no_such_run"), "-o", str(out)])
    assert out.parent.is_dir() and not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_training_run_on_cuda_with_data_workers(tmp_path):
    run = tmp_path / "gpu"
    code = train_main(["--out", str(run), "--device", "cuda", "--data", "mix", "--data-workers", "2",
                       "--image-size", "128", "--clip-len", "3", "--clips-per-step", "2", "--steps", "3",
                       "--warmup-steps", "1", "--time-limit", "120"])
    assert code == 0
    meta = json.loads((run / "weights.json").read_text())
    assert meta["steps"] == 3 and meta["machine"]["gpu"] and meta["machine"]["device"].startswith("cuda")
    assert torch.backends.cuda.matmul.allow_tf32
    rows = (run / "history.csv").read_text().splitlines()[1:]
    assert len(rows) == 3 and all("nan" not in row for row in rows)
    load_checkpoint(build_model("demo", checkpoint="random", image_size=128), run / "weights.pt")


def test_ctrl_c_finishes_the_step_saves_the_run_and_it_resumes(tmp_path, ctrl_c_raises):
    """The first Ctrl-C (a real SIGINT) stops after the current step; last.pt and weights.pt are written; the
    same call again finishes the run. Outside training, Ctrl-C behaves as before."""
    import os
    import signal

    from sam2_model.train.interrupt import TrainingInterrupted

    settings = TrainSettings(out=str(tmp_path / "run"), model="demo", image_size=64, clip_len=2, clips_per_step=1,
                             max_objects=2, steps=4, warmup_steps=1, save_every=1000, seed=5)

    def press_ctrl_c_at_step_2(step, row):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return True

    with pytest.raises(TrainingInterrupted) as stopped:
        train(settings, progress=press_ctrl_c_at_step_2)
    assert stopped.value.step == 2
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["step"] == 2
    assert saved_step(tmp_path / "run" / "last.pt") == 2  # what the command's Ctrl-C line reports, read memory-mapped
    (tmp_path / "not_a_checkpoint.pt").write_bytes(b"half a file")
    assert saved_step(tmp_path / "not_a_checkpoint.pt") is None and saved_step(tmp_path / "missing.pt") is None
    assert json.loads((tmp_path / "run" / "weights.json").read_text())["stopped_by"] == "interrupt"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    train(settings, progress=lambda step, row: True)
    assert json.loads((tmp_path / "run" / "weights.json").read_text())["steps"] == 4


def test_the_command_fine_tunes_from_trained_weights_unless_told_otherwise(tmp_path, capsys):
    """--stack without --init: the demo model starts from its embedded weights and says so; --init random trains
    from random weights; an official model needs its checkpoint; a missing --init or an --out that is a file is
    refused before anything is written."""
    import tifffile

    from sam2_model.build import embedded_weights_path
    from sam2_model.synthetic import make_timelapse

    movie = make_timelapse(num_frames=3, shape=(64, 64), num_cells=3, seed=5, radius_fraction=0.12)
    tifffile.imwrite(tmp_path / "stack.tif", movie.image, photometric="minisblack")
    tifffile.imwrite(tmp_path / "labels.tif", movie.labels, photometric="minisblack")
    data = ["--stack", str(tmp_path / "stack.tif"), "--labels", str(tmp_path / "labels.tif")]
    assert parse_args(["--out", "x"] + data).init == str(embedded_weights_path())
    assert "starting from the embedded demo weights" in capsys.readouterr().err
    assert parse_args(["--out", "x", "--init", "random"] + data).init is None
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "last.pt").write_bytes(b"")  # a run to resume: said so, not "starting from"
    parse_args(["--out", str(tmp_path / "earlier")] + data)
    resumed = capsys.readouterr().err
    assert f"resuming the run in {tmp_path / 'earlier'} from its last.pt" in resumed
    assert "new run" not in resumed and "embedded demo weights" not in resumed  # it does not read as a restart
    assert parse_args(["--out", "x", "--init", "embedded"] + data).init == str(embedded_weights_path())  # any folder
    assert parse_args(["--out", "x"]).init is None  # synthetic data: random weights, as before
    for argv, message in (
            (["--model", "sam2.1_hiera_tiny"], "--init: fine-tuning sam2.1_hiera_tiny on your stack starts from its "
                                               "checkpoint file"),
            (["--init", str(tmp_path / "nope.pt")], "no such checkpoint file (--init takes a .pt file, embedded "
                                                    "for the demo model's shipped weights, or random)"),
            (["--model", "sam2.1_hiera_tiny", "--init", "embedded"], "--init embedded: only the demo model ships "
                                                                     "weights"),
            (["--out", str(tmp_path / "stack.tif")], "is a file: give a folder for the run")):
        with pytest.raises(SystemExit):
            parse_args((["--out", str(tmp_path / "run")] if argv[0] != "--out" else []) + argv + data)
        assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    code = train_main(["--out", str(tmp_path / "run"), "--init", "random", "--image-size", "64", "--steps", "1",
                       "--clip-len", "2", "--clips-per-step", "1"] + data)
    out = capsys.readouterr().out
    assert code == 0 and "(trained from random weights)" in out and "starting -> fine-tuned" not in out
    assert "trained on: user stack" in out
    recorded = json.loads((tmp_path / "run" / "weights.json").read_text())["settings"]
    assert recorded["warmup_steps"] == 1  # the fine-tuning rule for 1 step, not TrainSettings' 100


def test_the_command_warms_up_fine_tuning_as_the_widget_does(tmp_path):
    """Without --warmup-steps, fine-tuning on a stack warms up for a quarter of --steps, at most 50 (the widget's and
    bench/real_data_finetune.py's rule, one function); synthetic training keeps 100; a given value is kept; a run
    being resumed keeps the warm-up it started with, so a larger --steps extends it instead of being refused."""
    import tifffile

    from sam2_model.synthetic import make_timelapse
    from sam2_model.train import fine_tuning_warmup

    movie = make_timelapse(num_frames=2, shape=(32, 32), num_cells=2, seed=5, radius_fraction=0.15)
    tifffile.imwrite(tmp_path / "stack.tif", movie.image, photometric="minisblack")
    tifffile.imwrite(tmp_path / "labels.tif", movie.labels, photometric="minisblack")
    data = ["--stack", str(tmp_path / "stack.tif"), "--labels", str(tmp_path / "labels.tif")]
    fresh = ["--out", str(tmp_path / "fresh")]
    for steps, warmup in (("300", 50), ("200", 50), ("100", 25), ("8", 2), ("2", 1)):
        assert parse_args(fresh + data + ["--steps", steps]).warmup_steps == warmup == fine_tuning_warmup(int(steps))
    assert parse_args(fresh + data + ["--steps", "300", "--warmup-steps", "75"]).warmup_steps == 75
    assert parse_args(fresh + ["--steps", "300"]).warmup_steps == TrainSettings(out="").warmup_steps == 100
    run = tmp_path / "earlier"
    run.mkdir()
    (run / "last.pt").write_bytes(b"")
    (run / "weights.json").write_text(json.dumps({"settings": {"warmup_steps": 25, "steps": 100}}))
    assert parse_args(["--out", str(run)] + data + ["--steps", "300"]).warmup_steps == 25


def test_training_leaves_an_ignored_ctrl_c_ignored(tmp_path):
    """A run started where SIGINT is ignored (nohup, a background job) does not start answering Ctrl-C."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        seen = []
        settings = TrainSettings(out=str(tmp_path / "run"), model="demo", image_size=64, clip_len=1, clips_per_step=1,
                                 max_objects=1, steps=1, warmup_steps=1, seed=5)
        train(settings, progress=lambda step, row: seen.append(signal.getsignal(signal.SIGINT)) or True)
        assert seen == [signal.SIG_IGN] and signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_time_limit_stop_says_where_the_run_is_and_how_to_resume(tmp_path, capsys):
    """sam2-train --time-limit: the stop is told as Ctrl-C's is (the step of how many, the folder, what to type,
    the check on the user's frames left out); the same command without the limit finishes and checks."""
    import tifffile

    from sam2_model.synthetic import make_timelapse

    movie = make_timelapse(num_frames=3, shape=(64, 64), num_cells=3, seed=5, radius_fraction=0.12)
    tifffile.imwrite(tmp_path / "stack.tif", movie.image, photometric="minisblack")
    tifffile.imwrite(tmp_path / "labels.tif", movie.labels, photometric="minisblack")
    run = tmp_path / "run"
    command = ["--out", str(run), "--stack", str(tmp_path / "stack.tif"), "--labels", str(tmp_path / "labels.tif"),
               "--image-size", "64", "--clip-len", "2", "--clips-per-step", "1", "--warmup-steps", "1",
               "--steps", "1", "--threads", "1"]
    assert train_main(command + ["--time-limit", "0.000001"]) == 0  # spent before the first step
    err = capsys.readouterr().err
    assert (f"stopped by --time-limit 1e-06 after step 0 of 1: the run is saved in {run} (weights.pt holds the "
            "weights of step 0); run the same command again to resume; the check on your own frames was not run"
            in err), err
    assert train_main(command) == 0
    captured = capsys.readouterr()
    assert "stopped by" not in captured.err and "tracked IoU on the stack's first 3 frames" in captured.out


def test_own_data_options_are_checked_first_and_named(tmp_path, capsys):
    """--stack without --labels, a --stack that is not there and a colour --stack are refused naming the option
    (and how to make a grey stack) before any word on the starting weights; --init RUN_FOLDER names its weights."""
    import tifffile

    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((2, 32, 32, 3), np.uint8), photometric="rgb")
    tifffile.imwrite(tmp_path / "labels.tif", np.zeros((2, 32, 32), np.int32), photometric="minisblack")
    labels = ["--labels", str(tmp_path / "labels.tif")]
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "weights.pt").write_bytes(b"")
    for argv, message in (
            (["--stack", str(tmp_path / "rgb.tif")], "--stack needs --labels: give your stack (--stack) and its "
                                                     "instance labels (--labels)"),
            (["--stack", str(tmp_path / "nope.tif")] + labels, f"--stack {tmp_path / 'nope.tif'}: no such file or "
                                                               "folder"),
            (["--stack", str(tmp_path / "rgb.tif")] + labels, "sam2-train trains on grey (T, H, W) frames: pick the "
                                                              "channel to train on as you segment it, e.g. --channel 0"),
            (["--init", str(tmp_path / "done")], f"--init: {tmp_path / 'done'} is a training run's folder, not a "
                                                 f"checkpoint file: use {tmp_path / 'done' / 'weights.pt'}")):
        with pytest.raises(SystemExit):
            parse_args(["--out", str(tmp_path / "run")] + argv)
        err = capsys.readouterr().err
        assert message in err and "starting from" not in err, err
    assert not (tmp_path / "run").exists()
