"""Fine-tuning sees the frames as segmentation shows them (smooth, contrast limits, invert, a channel: sam2-train's
options and the widget's, taken from the segmentation widget), records them and resumes only with them; the checks'
warning says a fall is a fall; the record names no held-out frame as trained on and no synthetic kind for a user's
stack; the widget tells seconds a step and time left, and a Cancel is heard at once (explorer X7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import numpy as np
import pytest
import tifffile
import torch

from sam2_model.frames import FrameSource
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking.ctc_io import write_ctc_ground_truth
from sam2_model.train.__main__ import main as train_main
from sam2_model.train.loop import TrainSettings, data_description, make_clips
from sam2_model.train.stack_check import StackCheck
from train_helpers import small_movie


def _settings(out: Path, **changes: object) -> TrainSettings:
    base = dict(out=str(out), model="demo", image_size=64, clip_len=3, clips_per_step=1, max_objects=2, steps=1,
                warmup_steps=1, save_every=1000, seed=5, augment=False)
    base.update(changes)
    return TrainSettings(**base)


def test_training_clips_are_the_frames_as_frame_source_shows_them(tmp_path: Path) -> None:
    """Smoothing, contrast limits and inversion: every clip frame is FrameSource's model input with those options
    (before: training had none of them, and mapped raw frames with its own percentiles)."""
    movie = small_movie()
    assert movie.image.dtype == np.uint16
    options = dict(smooth=1.5, contrast_limits=[100.0, 3000.0], invert=True)
    source = make_clips(_settings(tmp_path / "run", **options), 64, movie.image, movie.labels)
    clip = next(iter(source))
    with FrameSource(movie.image, image_size=64, prefetch=0, **options) as frames:
        seen = torch.stack([frames.model_input(t) for t in range(3)])
    assert clip.images.shape == seen.shape
    assert (torch.allclose(clip.images, seen, atol=1e-5) or torch.allclose(clip.images, seen.flip(0), atol=1e-5))
    # without contrast limits the stack's own are taken after smoothing, as FrameSource takes them
    smoothed = make_clips(_settings(tmp_path / "run", smooth=1.5), 64, movie.image, movie.labels)
    with FrameSource(movie.image, image_size=64, prefetch=0, smooth=1.5) as frames:
        assert smoothed.limits == frames.contrast_limits


def test_sam2_train_records_the_frame_options_and_resumes_only_with_them(tmp_path: Path, stack_files: List[str],
                                                                         capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    small = ["--out", str(run), "--image-size", "64", "--clip-len", "2", "--clips-per-step", "1", "--threads", "1"]
    assert train_main(small + stack_files + ["--steps", "1", "--smooth", "2", "--invert"]) == 0
    out = capsys.readouterr().out
    assert "frames as segmentation with these options shows them: smoothed by 2 px, inverted" in out
    record = json.loads((run / "weights.json").read_text())
    assert {k: record["settings"][k] for k in ("smooth", "contrast_limits", "invert", "channel", "channel_axis")} == \
        dict(smooth=2.0, contrast_limits=None, invert=True, channel=None, channel_axis=None)
    assert record["settings"]["data"] is None  # a user's stack: not "nuclei"
    # a resume with other frame options is refused by name (before the data digest: the smoothing is named)
    assert train_main(small + stack_files + ["--steps", "2", "--smooth", "3", "--invert"]) == 2
    assert "is a run with smooth 2.0 (not 3.0): resume it with its own settings" in capsys.readouterr().err
    assert train_main(small + stack_files + ["--steps", "2"]) == 2
    assert "smooth 2.0 (not 0.0), invert True (not False)" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # no stack: nothing to invert
        train_main(["--out", str(tmp_path / "synthetic"), "--invert"])
    assert "--invert: how your frames reach the model; give them with --stack" in capsys.readouterr().err


def test_a_channel_of_a_multichannel_tiff_is_trained_on_as_track_picks_it(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    """A (T, C, Y, X) TIFF: --channel picks one (its axis from the TIFF, or --channel-axis); without it the refusal
    says how (before: "sam2-train ... has no channel option")."""
    movie = small_movie()
    two = np.stack([np.full_like(movie.image, 7), movie.image], axis=1)
    tifffile.imwrite(tmp_path / "two.tif", two, photometric="minisblack", metadata={"axes": "TCYX"})
    tifffile.imwrite(tmp_path / "labels.tif", movie.labels, photometric="minisblack")
    paths = dict(stack=str(tmp_path / "two.tif"), labels=str(tmp_path / "labels.tif"))
    source = make_clips(_settings(tmp_path / "run", channel=1, **paths), 64)
    np.testing.assert_array_equal(source.stack, movie.image)
    assert "frames as segmentation with these options shows them: channel 1" in data_description(
        _settings(tmp_path / "run", channel=1, **paths), source)
    given = make_clips(_settings(tmp_path / "run", channel="1", channel_axis=1, **paths), 64)
    np.testing.assert_array_equal(given.stack, movie.image)
    with pytest.raises(ValueError, match="channel must be a channel index"):
        _settings(tmp_path / "run", channel="green")
    with pytest.raises(SystemExit):
        train_main(["--out", str(tmp_path / "run"), "--stack", paths["stack"], "--labels", paths["labels"]])
    assert "pick the channel to train on as you segment it, e.g. --channel 0" in capsys.readouterr().err


def test_the_warning_says_a_fall_is_a_fall() -> None:
    """X7's widget run: held-out 0.37 -> 0.35 read "raised tracking ... by less than 0.05"."""
    fell = StackCheck(0.37, 0.35, 8, 28, held_out="20-47").warning()
    assert fell.startswith("fine-tuning made tracking slightly worse on the held-out frames 20-47 (tracked IoU "
                           "0.37 -> 0.35;"), fell
    assert "raised" not in fell
    assert StackCheck(0.37, 0.3702, 8, 8).warning().startswith("fine-tuning did not raise tracking on your own frames")
    assert "raised tracking on your own frames by less than 0.05" in StackCheck(0.16, 0.18, 8, 5).warning()


def test_the_record_lists_no_held_out_frame_as_trained_on(tmp_path: Path) -> None:
    """CTC ground truth segmenting frames 0, 2, 5, 7 with 5-7 held out: "the segmentation truth of frames 0, 2"; the
    recorded settings of a run on a user's stack say no synthetic kind ("data": null, not "nuclei")."""
    movie = make_timelapse(num_frames=8, shape=(64, 64), num_cells=4, seed=1, radius_fraction=0.12)
    (tmp_path / "01").mkdir()
    for t, frame in enumerate(movie.image):
        tifffile.imwrite(tmp_path / "01" / f"t{t:03d}.tif", frame)
    write_ctc_ground_truth(tmp_path / "01_GT", movie.labels, movie.parents, seg_frames=[0, 2, 5, 7])
    settings = _settings(tmp_path / "run", stack=str(tmp_path / "01"), labels=str(tmp_path / "01_GT"), hold_out="5-7",
                         clip_len=2)
    source = make_clips(settings, 64)
    described = data_description(settings, source)
    assert "the segmentation truth of frames 0, 2, each cell under its tracking id" in described, described
    assert "frames 5-7 held out" in described
    from sam2_model.train.loop import recorded_settings

    assert recorded_settings(settings, source)["data"] is None


pytest.importorskip("napari")


@pytest.mark.gui
def test_the_widget_takes_the_frame_options_tells_time_and_hears_cancel(make_napari_viewer, qtbot, tmp_path,
                                                                       monkeypatch) -> None:
    from napari_sam2 import _finetune
    from widget_helpers import WIDGET, open_finetune

    viewer, widget, _ = open_finetune(make_napari_viewer, tmp_path, monkeypatch, num_cells=3, clip=2)
    assert "20 steps first" in widget.steps_spin.toolTip()
    assert widget.settings().smooth == 0.0 and widget.settings().invert is False  # no segmentation widget yet
    _, segmentation = viewer.window.add_plugin_dock_widget(*WIDGET)
    segmentation.smooth_spin.setValue(2.0)
    segmentation.invert_check.setChecked(True)
    assert (widget.settings().smooth, widget.settings().invert) == (2.0, True)
    widget.steps_spin.setValue(1000)
    widget.train_button.click()
    assert "its frames smoothed by 2 px, inverted as the segmentation widget shows them" in widget.status.text()
    qtbot.waitUntil(lambda: widget.progress.value() >= 1, timeout=120_000)
    assert " s a step, about " in widget.status.text() and " left" in widget.status.text(), widget.status.text()
    widget.cancel_button.click()
    assert not widget.cancel_button.isEnabled() and widget.status.text().endswith(_finetune.STOPPING)  # at once
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert "(Train resumes)" in widget.status.text()
    record = json.loads((tmp_path / "run" / "weights.json").read_text())
    assert (record["settings"]["smooth"], record["settings"]["invert"]) == (2.0, True)
    assert _finetune.step_pace(1, 200, 12.0, (0, 0.0)) == "12.0 s a step, about 40 min left"
    assert _finetune.step_pace(9, 10, 150.0, (4, 100.0)) == "10.0 s a step, less than a minute left"  # resumed at 4
    assert _finetune.step_pace(4, 10, 100.0, (4, 100.0)) == ""  # no step of this call yet
