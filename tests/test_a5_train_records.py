"""sam2-train's end of a call (s56 A5), on tiny real runs of the demo model at 64 px: a Ctrl-C that lands in the last
step is recorded and said as what it stopped (the final check, or nothing), a run folder's kept settings are read from
the run train() resumes (last.pt), and a call writes last.pt once at its end where no check follows."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any, List

import pytest

from sam2_model.train import loop
from sam2_model.train.loop import TrainSettings, train


def _tiny(out: Path, **changes: Any) -> TrainSettings:
    """A run of 1-frame clips on synthetic data, one clip of one object a step (seconds on a loaded CPU)."""
    base = dict(out=str(out), model="demo", image_size=64, clip_len=1, clips_per_step=1, max_objects=1, steps=1,
                warmup_steps=1, lr=3e-4, seed=5)
    base.update(changes)
    return TrainSettings(**base)


def _ctrl_c_during_step(monkeypatch: pytest.MonkeyPatch, at: int) -> None:
    """Ctrl-C arrives while the ``at``-th step of the call runs (its episode: the real one, run after the signal)."""
    episode, calls = loop.run_episode, [0]
    # Python's own Ctrl-C handler, as in a fresh sam2-train process (in CI's shared test workers an earlier test
    # left another handler in place and the signal went unseen: suspected, not yet traced)
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def with_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == at:
            signal.raise_signal(signal.SIGINT)
        return episode(*args, **kwargs)

    monkeypatch.setattr(loop, "run_episode", with_ctrl_c)


def _last_pt_saves(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    """The steps of the last.pt saves made from now on (the real saves, counted)."""
    save, saved = loop.atomic_save, []

    def counted(state: Any, path: Path) -> None:
        if Path(path).name == "last.pt":
            saved.append(int(state["step"]))
        save(state, path)

    monkeypatch.setattr(loop, "atomic_save", counted)
    return saved


def test_ctrl_c_in_the_last_step_of_a_stack_run_is_said_and_recorded_as_unfinished(tmp_path, stack_files,
                                                                                    monkeypatch, capsys):
    """Fault: a Ctrl-C in the last step of a run on a stack skipped its final check and recorded "interrupt" at step 1
    of 1, but sam2-train said only "stopped by Ctrl-C after step 1: ... run the same command again to resume", as if
    steps were left. Now it says which step's weights were saved, that the run is not finished and that the same
    command trains no more steps, makes the check and writes the finished weights (it then does just that)."""
    from sam2_model.train.__main__ import main

    run = tmp_path / "run"
    command = ["--out", str(run), *stack_files, "--init", "random", "--steps", "1", "--clip-len", "1",
               "--image-size", "64", "--clips-per-step", "1", "--max-objects", "1", "--seed", "5", "--augment", "off"]
    with monkeypatch.context() as patch:
        _ctrl_c_during_step(patch, at=1)
        assert main(command) == 130
    err = capsys.readouterr().err
    assert (f"stopped by Ctrl-C after step 1: the run is saved in {run} (weights.pt holds the weights of step 1 of "
            "1), before its final check on your frames: it is not finished; the same command again finishes it (it "
            "trains no more steps, makes the check") in err, err[-1500:]
    record = json.loads((run / "weights.json").read_text())
    assert (record["steps"], record["settings"]["steps"], record["stopped_by"]) == (1, 1, "interrupt")
    assert record["stack_check"] is None
    assert main(command) == 0
    assert len((run / "history.csv").read_text().splitlines()) == 2  # the header and step 1: no step trained again
    record = json.loads((run / "weights.json").read_text())
    assert record["stopped_by"] == "steps" and record["stack_check"] is not None, record


def test_ctrl_c_in_the_last_step_of_a_run_with_no_check_stops_nothing(tmp_path, monkeypatch):
    """Fault: on synthetic clips (no final check follows the last step) a Ctrl-C in the last step recorded the run as
    stopped by Ctrl-C at step 2 of 2 and raised TrainingInterrupted (exit 130), though nothing was left to skip: the
    run had to be run again only to be called finished. Now the run is finished: "steps", with one last.pt save."""
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        _ctrl_c_during_step(patch, at=2)
        saves = _last_pt_saves(patch)
        try:
            train(_tiny(run, steps=2), progress=lambda step, row: True)
        except KeyboardInterrupt as stopped:  # TrainingInterrupted (before): caught, else it ends the whole session
            pytest.fail(f"a Ctrl-C in the last step with no check to skip stopped the run: {stopped}")
    record = json.loads((run / "weights.json").read_text())
    assert (record["steps"], record["stopped_by"]) == (2, "steps"), record
    assert saves == [2]


def test_a_call_writes_last_pt_once_at_its_end_with_the_record_of_its_weights(tmp_path, monkeypatch):
    """Fault: every call wrote last.pt twice at its end (before and after weights.pt: ~1 GB more writing for
    base_plus). Now a call with no check to make writes it once, the final step's state with its weights' record
    (finished, or stopped by a Cancel); the run resumes from it as before."""
    from sam2_model.run_record import resume_record, stored_record

    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        saves = _last_pt_saves(patch)
        train(_tiny(run, steps=3, save_every=1), progress=lambda step, row: step < 2)  # a Cancel after step 2
        assert saves == [1, 2]  # before: [1, 2, 2]
        assert resume_record(run / "last.pt") == stored_record(run / "weights.pt")
        assert stored_record(run / "weights.pt")["stopped_by"] == "progress"
        saves.clear()
        train(_tiny(run, steps=3, save_every=1), progress=lambda step, row: True)
        assert saves == [3]  # before: [3, 3]
    finished = stored_record(run / "weights.pt")
    assert resume_record(run / "last.pt") == finished and (finished["steps"], finished["stopped_by"]) == (3, "steps")
    assert [s["stopped_by"] for s in finished["sessions"]] == ["progress", "steps"]


def test_kept_warmup_and_lr_are_the_resumed_runs_not_older_weights(tmp_path, monkeypatch):
    """Fault: run_warmup and run_lr (sam2-train's defaults, the Fine-tune form's warm-up) read weights.pt's record
    before last.pt's. In a finished run's folder where a new run is under way (its last.pt deleted, a new run killed
    after a save, before its weights were written) weights.pt still holds the earlier run: sam2-train then took its
    warm-up and learning rate and refused to resume the new run ("a run with lr 0.0002 (not 0.0003), warmup_steps 2
    (not 1)"). Now last.pt, the run train() resumes, is read first, as the Fine-tune form reads the folder."""
    from napari_sam2._run_folders import run_record
    from sam2_model.train.__main__ import main
    from sam2_model.train.run_folder import run_lr, run_warmup

    run = tmp_path / "run"
    train(_tiny(run), progress=lambda step, row: True)  # a finished run: warm-up 1, lr 3e-4
    (run / "last.pt").unlink()

    def killed_at_2(step: int, row: dict) -> bool:
        if step == 2:
            raise RuntimeError("the process died")
        return True

    with pytest.raises(RuntimeError):
        train(_tiny(run, steps=3, warmup_steps=2, lr=2e-4, save_every=1), progress=killed_at_2)
    assert json.loads((run / "weights.json").read_text())["settings"]["warmup_steps"] == 1  # the earlier run's
    assert (run_warmup(run), run_lr(run)) == (2, 2e-4)  # before: (1, 3e-4)
    assert run_record(run)["settings"]["warmup_steps"] == 2  # the form agrees
    code = main(["--out", str(run), "--steps", "3", "--image-size", "64", "--clip-len", "1", "--clips-per-step", "1",
                 "--max-objects", "1", "--seed", "5"])
    assert code == 0  # before: 2, refused
    record = json.loads((run / "weights.json").read_text())
    assert (record["steps"], record["settings"]["warmup_steps"], record["settings"]["lr"]) == (3, 2, 2e-4)


def test_ctrl_c_in_the_last_step_counts_as_stopped_early_in_the_weights_menu_and_builder(tmp_path, stack_files,
                                                                                        monkeypatch):
    """Fault: a run stopped by Ctrl-C in its last step, before its final check ("interrupt" at step 1 of 1), was not
    counted as stopped early (steps < planned only): build_model gave no warning, the Weights menu nothing. Now it
    is (its record says the check was skipped), and the menu says "final check not made" (not "stopped at step 1 of
    1": all its steps were done; review R1)."""
    from napari_sam2._run_folders import trained_runs
    from sam2_model.run_record import stored_record, weights_record
    from sam2_model.train.__main__ import main

    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        _ctrl_c_during_step(patch, at=1)
        assert main(["--out", str(run), *stack_files, "--init", "random", "--steps", "1", "--clip-len", "1",
                     "--image-size", "64", "--clips-per-step", "1", "--max-objects", "1", "--seed", "5",
                     "--augment", "off"]) == 130
    weights = run / "weights.pt"
    record = weights_record(weights, stored_record(weights), quiet=True)
    assert record is not None and record.stopped_early  # before: False
    assert record.final_check_missing
    assert "stopped by Ctrl-C (or a stop signal) after its last step, before its final quality check" in \
        record.stopped_early_words(weights)
    assert [entry.label for entry in trained_runs([run])][0].endswith(", final check not made)")
