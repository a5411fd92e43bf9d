"""The training command on a run folder it has used: a finished run is left as it is, a run never resumes under other
settings (weights.json records the settings the weights trained with), more steps extend it."""

from __future__ import annotations

import json

from sam2_model.train.__main__ import main as train_main


def test_the_command_again_on_a_finished_run_changes_nothing_and_other_settings_are_refused(tmp_path, capsys):
    run = tmp_path / "run"
    command = ["--out", str(run), "--image-size", "64", "--clip-len", "2", "--clips-per-step", "1",
               "--max-objects", "2", "--warmup-steps", "1", "--lr", "1e-4"]
    assert train_main(command + ["--steps", "1"]) == 0
    recorded = (run / "weights.json").read_text()
    capsys.readouterr()
    assert train_main(command + ["--steps", "1"]) == 0  # the same command again: nothing to do
    assert f"nothing to do: {run} holds a finished run of 1 steps" in capsys.readouterr().err
    assert (run / "weights.json").read_text() == recorded
    changed = list(command)
    changed[changed.index("--lr") + 1] = "5e-4"
    changed[changed.index("--clip-len") + 1] = "3"
    assert train_main(changed + ["--steps", "2"]) == 2  # other settings: refused before anything is written
    assert "is a run with clip_len 2 (not 3), lr 0.0001 (not 0.0005)" in capsys.readouterr().err
    assert (run / "weights.json").read_text() == recorded
    assert train_main(command + ["--steps", "2"]) == 0  # more steps, the same settings: the run goes on
    metadata = json.loads((run / "weights.json").read_text())
    assert metadata["steps"] == 2 and metadata["settings"]["lr"] == 1e-4 and metadata["settings"]["clip_len"] == 2
    assert [row.split(",")[2] for row in (run / "history.csv").read_text().splitlines()[1:]] == ["0.0001"] * 2


def test_a_run_stopped_after_more_steps_than_asked_is_not_called_finished(tmp_path, capsys):
    """A run stopped (Cancel, Ctrl-C) after 2 of its 4 steps, asked again for 1 step: nothing to do, in words that
    say how it stopped and what to give, not "a finished run" (it never made its final check)."""
    from sam2_model.train.__main__ import parse_args
    from sam2_model.train.loop import train

    run = tmp_path / "run"
    command = ["--out", str(run), "--image-size", "64", "--clip-len", "2", "--clips-per-step", "1",
               "--max-objects", "2", "--warmup-steps", "1", "--lr", "1e-4"]
    train(parse_args(command + ["--steps", "4"]), progress=lambda step, row: step < 2)
    capsys.readouterr()
    assert train_main(command + ["--steps", "1"]) == 0
    err = capsys.readouterr().err
    assert "finished" not in err, err
    assert f"{run} holds a run stopped (Cancel) after step 2" in err and "give more than 2 steps" in err, err


def _stopped_after_one_step(step: int, row: dict) -> bool:
    return step < 1


def test_a_run_never_changes_between_synthetic_clips_and_a_stack(tmp_path):
    """A run started on synthetic clips (no data fingerprint) is not resumed on a user's stack, nor the other way
    round: refused by name before any step, the run left as it was; the same data resumes."""
    import pytest
    import torch

    from sam2_model.synthetic import make_timelapse
    from sam2_model.train.loop import RunConflict, TrainSettings, train

    movie = make_timelapse(num_frames=4, shape=(64, 64), num_cells=3, seed=5, radius_fraction=0.12)
    common = dict(image_size=64, clip_len=2, clips_per_step=1, max_objects=2, steps=2, warmup_steps=1)
    synthetic = TrainSettings(out=str(tmp_path / "synthetic"), **common)
    train(synthetic, progress=_stopped_after_one_step)
    with pytest.raises(RunConflict, match=r"is a run with training data synthetic clips \(data 'nuclei'\) \(not a "
                                          r"stack and its labels\)"):
        train(synthetic, movie.image, movie.labels)
    assert torch.load(tmp_path / "synthetic" / "last.pt", weights_only=False)["step"] == 1
    on_stack = TrainSettings(out=str(tmp_path / "stack"), **common)
    train(on_stack, movie.image, movie.labels, progress=_stopped_after_one_step)
    with pytest.raises(RunConflict, match=r"training data a stack and its labels \(not synthetic clips"):
        train(on_stack)
    train(synthetic, progress=lambda step, row: True)  # the same data: it goes on
    assert json.loads((tmp_path / "synthetic" / "weights.json").read_text())["steps"] == 2


def test_image_size_is_compared_as_the_size_it_resolves_to(tmp_path, capsys):
    """The same input size spelled otherwise (64 and "64"; None and the preset's own 256) resumes; another is refused
    by name, in resolved sizes."""
    import pytest

    from sam2_model.train.__main__ import parse_args
    from sam2_model.train.loop import TrainSettings, run_differences, train

    run = tmp_path / "run"
    command = ["--out", str(run), "--image-size", "64", "--clip-len", "2", "--clips-per-step", "1",
               "--max-objects", "2", "--warmup-steps", "1"]
    train(parse_args(command + ["--steps", "2"]), progress=_stopped_after_one_step)  # the command's 64, an int
    train(TrainSettings(out=str(run), image_size="64", clip_len=2, clips_per_step=1, max_objects=2, warmup_steps=1,
                        steps=2), progress=lambda step, row: True)  # "64" is 64: resumed, not refused
    assert json.loads((run / "weights.json").read_text())["steps"] == 2
    assert train_main(command[:3] + ["128"] + command[4:] + ["--steps", "3"]) == 2
    assert "is a run with image_size 64 (not 128)" in capsys.readouterr().err
    saved = {"model": "demo", "image_size": None}  # the demo preset's own input size is 256
    assert run_differences(saved, TrainSettings(out="x", image_size=256)) == []
    assert run_differences(saved, TrainSettings(out="x", image_size=512)) == [("image_size", 256, 512)]
    for bad in ("auto", 100, 0, True):
        with pytest.raises(ValueError, match=rf"image_size must be a positive multiple of 32 pixels .*got {bad!r}"):
            TrainSettings(out="x", image_size=bad)
