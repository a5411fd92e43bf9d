"""Run folders saved before last.pt held a record (code before 2026-12-08, e1066b1) by a run killed during its final
check or while its weights were written (s55 review R4, M6). That code saved last.pt saying the run was finished
("steps") before the check and weights.pt, so such a folder holds a "finished" last.pt beside no weights.pt, or beside
an earlier call's. It was still refused as finished ("holds a finished run of 1 steps (weights in RUN/weights.pt)",
no such file; the Fine-tune form moved to a fresh folder). Now a run counts as finished only with its weights written
(weights.pt's record: that step, stopped by "steps"): the folder resumes with no step to train, makes the check and
writes the weights, as a folder saved by today's code does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sam2_model.train.loop import TrainSettings, train
from sam2_model.train.run_folder import finished_run_words, run_is_finished, weights_written


def _settings(out: Path, **changes) -> TrainSettings:
    """A tiny run at 64 px as the Fine-tune widget makes one (1-2 steps on 2-frame clips)."""
    base = dict(out=str(out), model="demo", image_size=64, clip_len=2, clips_per_step=1, max_objects=2, steps=1,
                warmup_steps=1, save_every=25, seed=5, augment=False, lr=1e-4)
    base.update(changes)
    return TrainSettings(**base)


def _as_saved_before_records(last: Path) -> None:
    """Rewrite ``last`` (a last.pt of today's code) as the code before e1066b1 saved it just before its final check:
    no "record", its last call marked finished ("steps"), torch's version object pickled in each session."""
    state = torch.load(last, map_location="cpu", weights_only=False)
    state.pop("record")
    for session in state["sessions"]:
        session["machine"]["torch"] = torch.__version__
    state["sessions"][-1]["stopped_by"] = "steps"
    torch.save(state, last)


def test_an_old_run_killed_during_its_check_is_not_finished_without_its_weights(tmp_path):
    """The checks that sam2-train, train() and the Fine-tune form make (finished_run_words, run_is_finished), read
    without training: an old last.pt that says "finished at step 1" is finished only beside weights.pt of step 1."""
    run = tmp_path / "run"
    run.mkdir()
    session = {"machine": {"torch": torch.__version__}, "start_step": 0, "end_step": 1, "stopped_by": "steps"}
    torch.save({"model": {"w": torch.zeros(2)}, "optimizer": {}, "step": 1, "seconds": 1.5,
                "settings": {"model": "demo", "steps": 1}, "sessions": [session]}, run / "last.pt")
    settings = _settings(run)
    assert finished_run_words(settings) is None  # before: "... holds a finished run of 1 steps (weights in ...)"
    assert not run_is_finished(1, "steps", settings) and not weights_written(run, 1)
    record = {"steps": 1, "stopped_by": "progress", "settings": {"model": "demo"}}  # an earlier call's: Cancel at 1
    torch.save({"model": {"w": torch.zeros(2)}, "record": record}, run / "weights.pt")
    assert finished_run_words(settings) is None and not weights_written(run, 1)
    torch.save({"model": {"w": torch.zeros(2)}, "record": dict(record, stopped_by="steps")}, run / "weights.pt")
    assert "holds a finished run of 1 steps" in finished_run_words(settings)  # its weights written: finished
    assert weights_written(run, 1) and not weights_written(run, 2)
    assert run_is_finished(1, "steps", _settings(run, steps=0))  # more steps than asked: nothing to do, as before
    assert not run_is_finished(1, "steps", _settings(run, steps=2))  # more steps: trains further, as before


def test_an_old_run_killed_during_its_check_resumes_to_write_its_weights(tmp_path, monkeypatch):
    """A real old-format folder: a run on a stack killed during its final check after its one step, its last.pt as
    the old code left it (finished at step 1) and no weights.pt. train() with the same settings trained nothing
    again, made the check and wrote weights.pt with the one record of today's runs (before: RunFinished, "holds a
    finished run of 1 steps (weights in RUN/weights.pt)", no such file)."""
    from sam2_model.run_record import resume_record, stored_record
    from sam2_model.train import loop
    from train_helpers import small_movie

    run = tmp_path / "run"
    movie = small_movie()

    def progress(step: int, row: dict) -> bool:
        return True

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed during the final check")

    with monkeypatch.context() as patch:
        patch.setattr(loop, "check_stack", killed)
        with pytest.raises(KeyboardInterrupt):
            train(_settings(run), stack=movie.image, labels=movie.labels, progress=progress)
    _as_saved_before_records(run / "last.pt")
    assert resume_record(run / "last.pt")["stopped_by"] == "steps"  # as the old code left it
    assert not (run / "weights.pt").exists()
    assert finished_run_words(_settings(run)) is None  # before: "holds a finished run of 1 steps ..."
    from napari_sam2._run_folders import holds_finished_run

    assert not holds_finished_run(run)  # the Fine-tune form opened on it stays on it (before: moved to a fresh folder)
    train(_settings(run), stack=movie.image, labels=movie.labels, progress=progress)  # before: RunFinished
    rows = (run / "history.csv").read_text().splitlines()
    assert len(rows) == 2, rows  # the header and step 1: nothing trained again
    inside = stored_record(run / "weights.pt")
    assert inside == json.loads((run / "weights.json").read_text()) == resume_record(run / "last.pt")
    assert inside["steps"] == 1 and inside["stopped_by"] == "steps" and inside["stack_check"] is not None, inside
    assert [(s["start_step"], s["end_step"]) for s in inside["sessions"]] == [(0, 1), (1, 1)]
    assert "holds a finished run of 1 steps" in finished_run_words(_settings(run))  # now finished, weights written
    assert holds_finished_run(run)
