"""Review R1 of s56 A5, on tiny real runs of the demo model at 64 px: a run counts as finished only beside weights
written by that run (its run id, in last.pt and weights.pt's records), and an older record of a Ctrl-C after the last
step with no check to skip is not called stopped early."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from sam2_model.train import loop
from sam2_model.train.loop import TrainSettings, train


def _tiny(out: Path, **changes: Any) -> TrainSettings:
    """A run of 1-frame clips on synthetic data, one clip of one object a step (seconds on a loaded CPU)."""
    base = dict(out=str(out), model="demo", image_size=64, clip_len=1, clips_per_step=1, max_objects=1, steps=1,
                warmup_steps=1, lr=3e-4, seed=5)
    base.update(changes)
    return TrainSettings(**base)


def test_a_new_run_killed_while_its_weights_are_written_resumes_beside_an_earlier_runs_weights(tmp_path,
                                                                                                 monkeypatch):
    """Fault (review R1): in a finished run's folder (last.pt deleted), a new run at another learning rate killed
    while its weights were written (a second Ctrl-C between last.pt, final, and weights.pt) was called finished:
    weights.pt was the earlier run's, of as many steps, finished. finished_run_words, train() and the Fine-tune form
    said "nothing to do" beside the earlier run's weights (lr 3e-4). Now weights count only when written by the run
    in last.pt: the run resumes and writes its own weights (lr 1e-3)."""
    from napari_sam2._run_folders import holds_finished_run
    from sam2_model.train.run_folder import finished_run_words, weights_written

    run = tmp_path / "run"
    train(_tiny(run), progress=lambda step, row: True)
    assert holds_finished_run(run) and weights_written(run, 1)
    (run / "last.pt").unlink()  # a new run in the finished run's folder

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(loop, "export_weights", killed)
        with pytest.raises(KeyboardInterrupt):
            train(_tiny(run, lr=1e-3), progress=lambda step, row: True)
    assert json.loads((run / "weights.json").read_text())["settings"]["lr"] == 3e-4  # the earlier run's
    assert finished_run_words(_tiny(run, lr=1e-3)) is None  # before: "... holds a finished run of 1 steps ..."
    assert not weights_written(run, 1) and not holds_finished_run(run)
    train(_tiny(run, lr=1e-3), progress=lambda step, row: True)  # before: RunFinished
    record = json.loads((run / "weights.json").read_text())
    assert (record["steps"], record["stopped_by"], record["settings"]["lr"]) == (1, "steps", 1e-3)
    assert weights_written(run, 1) and holds_finished_run(run) and finished_run_words(_tiny(run, lr=1e-3))


def test_records_without_run_ids_are_told_apart_by_their_first_sessions_start():
    """Records saved before run ids (A5's, 2026-12-08) are the same run when their first sessions started at the
    same time; records that say neither are judged by steps alone, as before."""
    from sam2_model.train.run_folder import same_run

    first = {"sessions": [{"started_utc": "2026-12-08T03:00:00+00:00"}]}
    later = {"sessions": [{"started_utc": "2026-12-08T03:05:00+00:00"}]}
    assert same_run(first, first) and not same_run(first, later) and same_run({}, first)
    with_id = {"sessions": [{"started_utc": "2026-12-08T03:00:00+00:00", "run_id": "a"}]}
    assert same_run(with_id, with_id) and not same_run(with_id, first)  # a new run's last.pt beside older weights


def _as_recorded_before_a5(run: Path) -> None:
    """Rewrite ``run``'s finished weights' records (inside weights.pt and weights.json) as code before A5 recorded a
    Ctrl-C in the last step of a synthetic run: "interrupt" at step 1 of 1, no check to skip, no final_check said."""
    weights = run / "weights.pt"
    saved = torch.load(weights, map_location="cpu", weights_only=False)
    record = saved["record"]
    record["stopped_by"] = "interrupt"
    for session in record["sessions"]:
        session.pop("final_check", None)
        session.pop("run_id", None)
    record["sessions"][-1]["stopped_by"] = "interrupt"
    torch.save(saved, weights)
    (run / "weights.json").write_text(json.dumps(record))


def test_an_older_records_ctrl_c_after_the_last_step_is_not_stopped_early(tmp_path):
    """Fault (review R1): A5 counted any "interrupt" at step N of N as stopped early, so an older synthetic run's
    record (code before A5 recorded exactly that after a last-step Ctrl-C, with no check to skip) was relabelled
    "stopped at step 1 of 1" in the Weights menu, and build_model warned. Now only a record that says its final
    check was skipped counts (the menu then says "final check not made")."""
    from napari_sam2._run_folders import trained_runs
    from sam2_model.run_record import stored_record, weights_record

    run = tmp_path / "run"
    train(_tiny(run), progress=lambda step, row: True)
    _as_recorded_before_a5(run)
    weights = run / "weights.pt"
    record = weights_record(weights, stored_record(weights), quiet=True)
    assert record is not None and (record.steps, record.planned_steps, record.stopped_by) == (1, 1, "interrupt")
    assert not record.stopped_early and not record.final_check_missing  # before: stopped early
    label = [entry.label for entry in trained_runs([run])][0]
    assert "stopped at" not in label and "final check" not in label, label
