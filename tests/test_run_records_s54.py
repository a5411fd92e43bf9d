"""One run record everywhere a fine-tuning run is judged (s54 F8): a run's weights.pt holds its training record, which
the model builder reads first (``sam2_model.build.weights_record``); the Fine-tune widget's decisions (is the run
finished, does Train resume it, from which step, with which warm-up), the run-folder helpers and packaging read that
same record, so an outdated or foreign weights.json beside it no longer misleads them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sam2_model.train.loop import TrainSettings, train


def _tiny_run(out: Path, steps: int, stop_after_first: bool) -> Path:
    """A real run of the demo model at 64 px into ``out`` (``steps`` asked for, warm-up 1; cancelled after the first
    with ``stop_after_first``); its folder."""
    settings = TrainSettings(out=str(out), model="demo", image_size=64, clip_len=2, clips_per_step=1, max_objects=2,
                             steps=steps, warmup_steps=1, save_every=1000, seed=5, augment=False)
    train(settings, progress=lambda step, row: not stop_after_first)
    return out


def _rewrite_json(folder: Path, steps: int, planned: int, stopped_by: str, **settings: Any) -> None:
    """Make ``folder``/weights.json tell another story than the record inside weights.pt (as an outdated JSON of a
    run stopped between writing the two, or another run's copied beside it, does)."""
    record = json.loads((folder / "weights.json").read_text())
    record["steps"], record["settings"]["steps"], record["stopped_by"] = steps, planned, stopped_by
    record["settings"].update(settings)
    (folder / "weights.json").write_text(json.dumps(record))


def test_the_run_folder_helpers_read_the_record_inside_weights_pt(tmp_path):
    from napari_sam2._run_folders import holds_finished_run, run_record
    from sam2_model.train.loop import run_warmup
    from sam2_model.train.package import load_run

    done = _tiny_run(tmp_path / "done", steps=1, stop_after_first=False)
    stopped = _tiny_run(tmp_path / "stopped", steps=3, stop_after_first=True)
    _rewrite_json(done, 1, 3, "progress", warmup_steps=9)  # says: stopped at step 1 of 3
    _rewrite_json(stopped, 3, 3, "steps", warmup_steps=9)  # says: finished
    assert run_record(done)["stopped_by"] == "steps" and run_record(stopped)["stopped_by"] == "progress"
    assert holds_finished_run(done)  # before: False (the JSON's Cancel), so Train was offered to resume it
    assert not holds_finished_run(stopped)  # before: True (the JSON's finished run), so a new folder was offered
    assert run_warmup(stopped) == 1  # before: 9, a warm-up train() then refused as another setting
    (stopped / "last.pt").unlink()  # only the weights came back from the machine that trained
    assert load_run(stopped)["step"] == 1  # before: 3
    (stopped / "weights.json").unlink()  # weights.pt alone still tells its record
    assert load_run(stopped)["step"] == 1 and run_record(stopped)["steps"] == 1  # before: ValueError, {}


@pytest.mark.gui
def test_the_finetune_widget_judges_a_finished_run_by_its_weights_not_an_outdated_json(make_napari_viewer, tmp_path,
                                                                                         monkeypatch, qtbot):
    pytest.importorskip("napari")
    from napari_sam2._finetune import FineTuneWidget
    from widget_helpers import one_step_finetune, train_and_wait

    viewer, widget = one_step_finetune(make_napari_viewer, tmp_path, monkeypatch)
    run = tmp_path / "run"
    train_and_wait(widget, qtbot)
    assert widget.status.text().startswith("done"), widget.status.text()
    _rewrite_json(run, 1, 2, "progress")  # an outdated JSON: "stopped (Cancel) at step 1 of 2"
    again = FineTuneWidget(viewer)  # the person opens the Fine-tune widget again: the run folder it offers
    assert again.out_edit.text() == str(tmp_path / "run-2"), again.out_edit.text()  # before: the finished run's
    again.deleteLater()
    train_and_wait(widget, qtbot)  # Train again with the same Steps (1): nothing is left to train there
    text = widget.status.text()
    assert text.startswith(f"Nothing trained: {run} holds a finished run of 1 step."), text  # before: "failed: ..."
    assert widget.out_edit.text() == str(tmp_path / "run-2"), text


@pytest.mark.gui
def test_the_finetune_widget_resumes_a_cancelled_run_whose_json_says_finished(make_napari_viewer, tmp_path,
                                                                             monkeypatch, qtbot):
    pytest.importorskip("napari")
    from napari_sam2._finetune import FineTuneWidget
    from widget_helpers import one_step_finetune

    viewer, widget = one_step_finetune(make_napari_viewer, tmp_path, monkeypatch)
    run = tmp_path / "run"
    widget.steps_spin.setValue(2)
    widget.train_button.click()
    widget.cancel_button.click()  # at once: the run stops after its first step
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert widget.status.text().startswith("stopped after step 1 of 2"), widget.status.text()
    warmup = json.loads((run / "weights.json").read_text())["settings"]["warmup_steps"]
    _rewrite_json(run, 2, 2, "steps", warmup_steps=warmup + 5)  # a foreign JSON: "finished", another warm-up
    again = FineTuneWidget(viewer)  # opened again, it offers the unfinished run to continue
    assert again.out_edit.text() == str(run), again.out_edit.text()  # before: run-2 (the JSON's finished run)
    again.deleteLater()
    widget.train_button.click()  # Train resumes the run from its step 1
    text = widget.status.text()
    assert f" in {run}" in text and "from step 1 of the run there" in text, text  # before: "Nothing..."
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert widget.status.text().startswith("done"), widget.status.text()  # its own warm-up: no settings conflict
    assert json.loads((run / "weights.json").read_text())["steps"] == 2
