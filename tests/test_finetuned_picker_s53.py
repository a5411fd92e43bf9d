"""The model picker offers the fine-tuning runs that wrote weights (explorer X7, finding 9): a user picks "the model I
just trained" in the Weights menu, labelled by run folder and date, without the file dialog; it loads at the input size
it was trained at; a run that vanished is dropped from the menu and said, not a crash."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

import pytest

from napari_sam2._model_choice import LOCAL
from sam2_model.train.loop import TrainSettings, train
from widget_helpers import open_widget


def _train(out: Path, steps: int = 1, stop_after_first: bool = False) -> Path:
    """A real 1-step run of the demo model at 64 px (the preset's own is 256) into ``out``; its weights.pt."""
    settings = TrainSettings(out=str(out), model="demo", image_size=64, clip_len=2, clips_per_step=1, max_objects=2,
                             steps=steps, warmup_steps=1, save_every=1000, seed=5, augment=False)
    train(settings, progress=lambda step, row: not stop_after_first)
    return out / "weights.pt"


def _menu(picker) -> list:
    """The Weights menu's entries as a person sees them when opening it."""
    combo = picker.checkpoint_combo
    combo.showPopup()
    entries = [combo.itemText(i) for i in range(combo.count())]
    combo.hidePopup()
    return entries


def _pick(picker, entry: str) -> None:
    picker.checkpoint_combo.setCurrentText(entry)
    picker.checkpoint_combo.textActivated.emit(entry)


def test_the_weights_menu_offers_fine_tuned_runs_and_loads_one_at_its_trained_size(make_napari_viewer, tmp_path,
                                                                                  monkeypatch, qtbot):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the Fine-tune widget's runs go to ~/napari-sam2-runs
    errors = []
    monkeypatch.setattr("napari_sam2._model_picker.show_error", errors.append)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    picker = widget.picker
    widget.size_spin.setValue(0)  # Input size: the preset's (for a fine-tuned file: the size it was trained at)
    before = _menu(picker)
    assert not [e for e in before if e.startswith("fine-tuned")]
    weights = _train(tmp_path / "home" / "napari-sam2-runs" / "finetune-20261207-120000")
    stopped = _train(tmp_path / "elsewhere" / "cells-run", steps=3, stop_after_first=True)
    from napari_sam2.settings import save_settings

    save_settings(finetune_folder=str(stopped.parent))  # the Fine-tune widget's remembered folder, not in ~
    entries = _menu(picker)  # opening the menu lists the runs written since
    day = datetime.date.today().isoformat()
    runs = [e for e in entries if e.startswith("fine-tuned: ")]
    assert len(runs) == 2, entries
    done = next(e for e in runs if e.startswith("fine-tuned: finetune-20261207-120000 (" + day))
    cancelled = next(e for e in runs if e.startswith("fine-tuned: cells-run (" + day))
    assert "stopped at step 1 of 3" in cancelled and "stopped" not in done
    _pick(picker, done)
    qtbot.waitUntil(lambda: picker.worker is None, timeout=60_000)
    assert not errors and picker.checkpoint_combo.currentText() == LOCAL
    assert picker.checkpoint_file == str(weights) and picker.choice().path == str(weights)
    picker.when_ready(lambda: None)  # what Segment asks of it
    qtbot.waitUntil(lambda: picker.worker is None, timeout=60_000)
    assert picker.loaded_model() is not None and picker.loaded_model().image_size == 64

    shutil.rmtree(stopped.parent)  # a run deleted while the menu was open
    _pick(picker, cancelled)
    assert errors and "cells-run is gone" in errors[-1] and picker.status.text().startswith("Not used: ")
    assert picker.checkpoint_combo.currentText() == LOCAL and picker.checkpoint_file == str(weights)
    assert cancelled not in _menu(picker) and done in _menu(picker)


@pytest.mark.parametrize("gone", ["folder", "weights"])
def test_runs_that_vanish_are_left_out_of_the_list(tmp_path, monkeypatch, gone):
    from napari_sam2._run_folders import trained_runs

    monkeypatch.setenv("HOME", str(tmp_path))
    root = tmp_path / "napari-sam2-runs"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        (root / name / "weights.pt").write_bytes(b"x")
    (root / "no-weights-yet").mkdir()
    assert sorted(run.weights.parent.name for run in trained_runs()) == ["a", "b"]
    shutil.rmtree(root / "a") if gone == "folder" else (root / "a" / "weights.pt").unlink()
    assert [run.weights.parent.name for run in trained_runs([tmp_path / "missing" / "run"])] == ["b"]
