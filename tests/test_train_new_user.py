"""Fine-tuning faults a new user hit (sam2-train and the training core): NaN frames refused before any folder is
made, a loss that turns NaN stops the run with its last good save kept, run folders that cannot be written, label ids
above 3e9, argument gaps of sam2-train, SIGTERM saving the run as Ctrl-C does, a second Ctrl-C's temporary file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, List

import numpy as np
import pytest
import tifffile
import torch

from sam2_model.atomic_files import atomic_file, temporary_file
from sam2_model.train.__main__ import main as train_main
from sam2_model.train.__main__ import parse_args, plan_message
from sam2_model.train.data import StackClips, check_finite_frames
from sam2_model.train.loop import NonFiniteLoss, TrainSettings, atomic_save, short_run_warning, train
from sam2_model.train.stack_labels import _pair_ious, link_by_overlap
from train_helpers import small_movie
from unwritable import unwritable

NAN_MESSAGE = "frames: frame 2 contains NaN or infinite values; replace them (e.g. np.nan_to_num) first"


def _tiny(out: Path, **changes: object) -> TrainSettings:
    base = dict(out=str(out), model="demo", image_size=64, clip_len=2, clips_per_step=1, max_objects=2, steps=1,
                warmup_steps=1, save_every=1000, seed=5)
    base.update(changes)
    return TrainSettings(**base)


@pytest.fixture
def locked_folder(tmp_path: Path) -> Iterator[Path]:
    """An existing folder nobody may write in (skipped where this machine cannot make one)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    with unwritable(folder):
        yield folder


def test_nan_frames_are_refused_before_any_run_folder_is_made(tmp_path: Path, stack_files: List[str],
                                                             capsys: pytest.CaptureFixture) -> None:
    """A stack with a few NaN pixels (a drift-corrected border) is refused by train() and sam2-train in the words
    every frame read uses, before a folder or file is made: no run that trains every step to NaN weights."""
    movie = small_movie()
    frames = movie.image.astype(np.float32)
    frames[2, 10, 10:15] = np.nan
    with pytest.raises(ValueError) as refused:
        train(_tiny(tmp_path / "run"), frames, movie.labels, progress=lambda step, row: True)
    assert str(refused.value) == NAN_MESSAGE
    assert not (tmp_path / "run").exists()
    frames[2] = np.nan_to_num(frames[2])
    frames[1, 0, 0] = -np.inf
    with pytest.raises(ValueError, match="frames: frame 1 contains NaN or infinite values"):
        check_finite_frames(frames)  # the one check the fine-tuning widget calls before its worker starts
    check_finite_frames(movie.image)  # whole-number frames hold neither
    check_finite_frames(np.nan_to_num(frames[1]))  # one (H, W) image
    frames = np.nan_to_num(frames, posinf=0.0, neginf=0.0)
    frames[2, 40:] = np.nan  # a NaN border, as drift correction leaves
    tifffile.imwrite(tmp_path / "nan.tif", frames, photometric="minisblack")
    code = train_main(["--out", str(tmp_path / "cli"), "--stack", str(tmp_path / "nan.tif"), stack_files[2],
                       stack_files[3], "--image-size", "64", "--clip-len", "2", "--steps", "1"])
    assert code == 2 and f"error: {NAN_MESSAGE}" in capsys.readouterr().err
    assert not (tmp_path / "cli").exists()


def test_a_loss_that_turns_nan_stops_the_run_and_keeps_its_last_good_save(tmp_path: Path) -> None:
    """A learning rate far too large makes the second step's loss NaN: the run stops there with an error that says
    so, the step is not taken (last.pt stays the last save, every weight finite), no weights.pt is written."""
    run = tmp_path / "run"
    rows = []
    with pytest.raises(NonFiniteLoss) as stopped:
        train(_tiny(run, clip_len=1, max_objects=1, steps=3, save_every=1, lr=1e30),
              progress=lambda step, row: rows.append(row) is None)
    assert "training stopped at step 2 of 3: its loss is nan" in str(stopped.value)
    assert f"{run / 'last.pt'} still holds the run at step 1" in str(stopped.value) and "lower learning rate" in str(stopped.value)
    state = torch.load(run / "last.pt", weights_only=False)
    assert state["step"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert [row["step"] for row in rows] == [1] and not (run / "weights.pt").exists()
    assert not list(run.glob("*.tmp"))


def test_a_run_folder_that_cannot_be_written_is_one_line_naming_it(locked_folder: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """sam2-train --out in (or at) a folder the user may not write in: "error: cannot ... FOLDER ...: choose a folder
    you can write to", exit code 2, no traceback; the same from train() (the widget's door) as a ValueError."""
    small = ["--image-size", "64", "--clip-len", "1", "--clips-per-step", "1", "--steps", "1"]
    assert train_main(["--out", str(locked_folder / "run")] + small) == 2
    err = capsys.readouterr().err
    assert f"error: cannot make the run folder {locked_folder / 'run'} (" in err
    assert err.rstrip().endswith("choose a folder you can write to") and "Traceback" not in err
    assert train_main(["--out", str(locked_folder)] + small) == 2
    assert f"error: cannot write in the run folder {locked_folder} (" in capsys.readouterr().err
    with pytest.raises(ValueError, match="cannot write in the run folder"):
        train(_tiny(locked_folder, clip_len=1), progress=lambda step, row: True)
    assert list(locked_folder.iterdir()) == []


def test_a_temporary_file_that_cannot_be_made_or_written_names_the_file_asked_for(locked_folder: Path,
                                                                                tmp_path: Path) -> None:
    """A session saved into a folder the user may not write in: the error names the file asked for and its folder,
    not the hidden temporary name beside it (creating it, or writing it)."""
    target = locked_folder / "s.sam2.npz"
    with pytest.raises(OSError) as refused:
        temporary_file(target)
    assert refused.value.filename == str(target) and f"cannot write in {locked_folder}" in str(refused.value)
    assert ".tmp" not in str(refused.value) and isinstance(refused.value, PermissionError)
    with pytest.raises(FileNotFoundError) as missing:
        with atomic_file(tmp_path / "nope" / "s.sam2.npz"):
            pass
    assert missing.value.filename == str(tmp_path / "nope" / "s.sam2.npz")
    target = tmp_path / "out.csv"
    with pytest.raises(OSError) as failed:
        with atomic_file(target) as temporary, unwritable(temporary):
            open(temporary, "w").close()
    assert failed.value.filename == str(target) and f"cannot write in {tmp_path}" in str(failed.value)
    assert list(tmp_path.glob(".out.csv*")) == [] and not target.exists()


def test_label_ids_above_3e9_pair_and_train() -> None:
    """uint32 ids up to 2**32 - 1 (the widget's largest) and uint64 ids of 2**40 overflowed first * base + second
    in int64 ("failed: 1"): they pair, link and make clips as small ids do."""
    a = np.zeros((8, 8), np.uint32)
    a[2:5, 2:5] = 2**32 - 1
    b = a.copy()
    b[2:4, 2:5] = 2**32 - 2
    assert _pair_ious(a, b) == {(2**32 - 1, 2**32 - 2): 6 / 9, (2**32 - 1, 2**32 - 1): 3 / 9}
    assert _pair_ious(a.astype(np.uint64) * 2**31, a.astype(np.uint64) * 2**31) == {((2**32 - 1) * 2**31,) * 2: 1.0}
    movie = small_movie()
    small = link_by_overlap(movie.labels)
    for big in (np.where(movie.labels > 0, movie.labels.astype(np.uint32) + (2**32 - 10), 0).astype(np.uint32),
                np.where(movie.labels > 0, movie.labels.astype(np.uint64) + 2**40, 0)):
        linked = link_by_overlap(big)
        assert np.array_equal(linked > 0, small > 0)
        assert len(np.unique(linked)) == len(np.unique(small))
        clips = StackClips(movie.image, big, clip_len=2, image_size=64, max_objects=2, seed=3)
        assert next(iter(clips)).masks.shape[0] == 2  # a clip of two frames


def test_sam2_train_argument_gaps(tmp_path: Path, stack_files: List[str], capsys: pytest.CaptureFixture) -> None:
    """--steps 0, an unknown --model, a --stack that is not a TIFF: refused naming the option (and the models, the
    file); a failed --init leaves no --out folder; a new run says what it will do before it starts."""
    (tmp_path / "notes.tif").write_text("hello")
    for argv, message in ((["--steps", "0"], "--steps must be a whole number >= 1 (the run's total optimiser steps)"),
                          (["--model", "tiny"] + stack_files, "--model tiny: no such model; the models are demo, "
                                                              "sam2.1_hiera_base_plus, sam2.1_hiera_large, "),
                          (["--stack", str(tmp_path / "notes.tif"), stack_files[2], stack_files[3]],
                           f"--stack {tmp_path / 'notes.tif'}: cannot be read as a TIFF (")):
        with pytest.raises(SystemExit):
            parse_args(["--out", str(tmp_path / "run")] + argv)
        assert message in capsys.readouterr().err
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    assert train_main(["--out", str(tmp_path / "run"), "--init", str(tmp_path / "notes.pt"), "--steps", "1",
                       "--image-size", "64"]) == 2
    err = capsys.readouterr().err
    assert "not a readable PyTorch checkpoint" in err and not (tmp_path / "run").exists()
    assert f"a new run in {tmp_path / 'run'}: 1 step of the demo model at 64 px from {tmp_path / 'notes.pt'}" in err
    said = plan_message(parse_args(["--out", str(tmp_path / "bare")]))
    assert said is not None and said.startswith(f"a new run in {tmp_path / 'bare'}: 1000 steps of the demo model at "
                                                "256 px from random weights, on synthetic clips (--data nuclei)")


def test_a_resumed_run_given_fewer_steps_than_its_warmup_says_so(tmp_path: Path, stack_files: List[str],
                                                                 capsys: pytest.CaptureFixture) -> None:
    """A 200-step run (warm-up 50) resumed with --steps 6 keeps its warm-up, so its rate never peaks: said before
    it starts (nothing else changes); a run whose steps cover its warm-up hears nothing."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"")  # a run to resume (unreadable: train() names that after the warning)
    (run / "weights.json").write_text(json.dumps({"settings": {"warmup_steps": 50, "steps": 200}}))
    assert train_main(["--out", str(run), "--steps", "6", "--image-size", "64"] + stack_files) == 2
    err = capsys.readouterr().err
    assert f"error: {run / 'last.pt'} cannot be read as a run's resume file (EOFError" in err  # no traceback
    assert ("warning: the learning rate rises over 50 steps (this run's warm-up, kept when it resumes), more than "
            "the run's 6 steps: it reaches only 12% of lr 0.0001; give at least 50 steps") in err
    assert short_run_warning(_tiny(run, steps=50, warmup_steps=50)) is None


def test_a_second_ctrl_c_during_a_save_leaves_no_temporary_file(tmp_path: Path) -> None:
    """The second Ctrl-C aborts; if it lands while last.pt is written, the half-written last.pt.tmp goes too and
    last.pt stays as it was."""

    class CtrlCWhilePickled:
        def __reduce__(self):
            raise KeyboardInterrupt

    last = tmp_path / "last.pt"
    atomic_save({"step": 5}, last)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"weights": torch.zeros(100_000), "later": CtrlCWhilePickled()}, last)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert torch.load(last, weights_only=False) == {"step": 5}


def test_sigterm_stops_sam2_train_after_the_step_and_saves_the_run(tmp_path: Path) -> None:
    """SIGTERM (a cluster scheduler's time limit), twice: the command stops after the current step as for the first
    Ctrl-C, saves last.pt and weights.pt, says so and exits 143 (128 + 15); before, it died with nothing saved."""
    run = tmp_path / "run"
    command = [sys.executable, "-m", "sam2_model.train", "--out", str(run), "--steps", "1000", "--image-size", "64",
               "--clip-len", "1", "--clips-per-step", "1", "--threads", "1"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    history = run / "history.csv"
    deadline = time.monotonic() + 120
    while not (history.exists() and len(history.read_text().splitlines()) >= 2) and process.poll() is None:
        assert time.monotonic() < deadline, "no step in 120 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)  # a second one does not abort
    err = process.communicate(timeout=120)[1]
    assert process.returncode == 143, err[-2000:]
    step = torch.load(run / "last.pt", weights_only=False)["step"]
    assert step >= 1 and f"stopped by SIGTERM after step {step}: the run is saved in {run}" in err
    assert json.loads((run / "weights.json").read_text())["steps"] == step
    assert not list(run.glob("*.tmp"))
