"""One run record, whoever started the run (s55 F4): the Fine-tune widget (train() with arrays and a progress
callback) and sam2-train write the same record to weights.pt, weights.json and last.pt; what stopped a run reaches
last.pt only once its weights are written; the Fine-tune form judges a run folder by the run train() resumes (its
last.pt); and the record is read without torch whatever else a file pickles."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sam2_model.train.loop import TrainSettings, train

ROOT = Path(__file__).resolve().parents[1]
#: the record's fields, the same for a run of the widget and of sam2-train
FIELDS = {"preset", "steps", "train_seconds", "wall_seconds", "stopped_by", "data", "machine", "torch", "sessions",
          "date", "settings", "stack_check", "held_out_check"}


class _Boom:
    """Pickles as a call of os.system (what a malicious file would hold)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_record_beside_other_objects_is_read_without_torch_and_nothing_runs(tmp_path):
    """Fault (review R5): a file whose pickle names a class outside the restricted reader's list (torch.device, a
    dtype, torch's version string, a NumPy array: a user's own checkpoint, or last.pt, whose sessions pickled torch's
    TorchVersion) was read by importing torch, on napari's GUI thread when the Weights menu or the Fine-tune form read
    it (1.5-8 s), and torch's weights_only loader then refused NumPy and os.system alike (no record). Now every other
    object is an inert stand-in: the record is read, torch is not imported and nothing of the file runs."""
    record = {"steps": 3, "stopped_by": "steps", "settings": {"model": "demo", "image_size": 64, "steps": 3}}
    marker = tmp_path / "ran"
    odd = tmp_path / "odd.pt"
    torch.save({"model": {"w": torch.zeros(2, 3)}, "record": record, "device": torch.device("cpu"),
                "dtype": torch.float16, "version": torch.__version__, "shape": torch.Size([2]),
                "array": np.arange(3), "evil": _Boom(marker)}, odd)
    bad = tmp_path / "bad.pt"  # the object inside the record itself: no record (it is not one sam2_model wrote)
    torch.save({"model": {"w": torch.zeros(2)}, "record": {"steps": 1, "x": _Boom(marker)}}, bad)
    code = ("import sys, json\n"
            "from sam2_model.run_record import stored_record\n"
            f"print(json.dumps(stored_record({str(odd)!r})), stored_record({str(bad)!r}), 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    read, bad_record, torch_loaded = done.stdout.strip().rsplit(" ", 2)
    assert json.loads(read) == record, done.stdout  # before: null (torch's loader refused the NumPy array)
    assert bad_record == "None" and torch_loaded == "False", done.stdout  # before: torch was imported
    assert not marker.exists()


def _settings(out: Path, **changes) -> TrainSettings:
    """A tiny run at 64 px as the Fine-tune widget makes one (its own defaults but 1-2 step runs on 2-frame clips)."""
    base = dict(out=str(out), model="demo", image_size=64, clip_len=2, clips_per_step=1, max_objects=2, steps=1,
                warmup_steps=1, save_every=25, seed=5, augment=False, lr=1e-4)
    base.update(changes)
    return TrainSettings(**base)


def test_a_run_killed_during_its_final_check_resumes_to_finish_from_sam2_train(tmp_path, monkeypatch):
    """Fault: last.pt recorded the run as finished ("steps") before its final check and weights.pt were written, so a
    run killed during the check (a closed napari, Ctrl-C twice, a crash) left a "finished" run with no weights.pt (or
    an older call's): Train and sam2-train then refused it as finished ("weights in RUN/weights.pt", which did not
    exist). Now last.pt says what stopped the run only once the weights are written: the run started like the widget
    starts it resumes from sam2-train with no step trained again, and then last.pt, weights.pt and weights.json hold one
    record (the same fields as any run's)."""
    from napari_sam2._run_folders import holds_finished_run, run_record
    from sam2_model.train import loop
    from sam2_model.train.__main__ import main
    from train_helpers import small_movie, write_stack_files

    run = tmp_path / "run"
    movie = small_movie()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed during the final check")

    with monkeypatch.context() as patch:
        patch.setattr(loop, "check_stack", killed)
        with pytest.raises(KeyboardInterrupt):  # the widget's way: arrays and a progress callback
            train(_settings(run), stack=movie.image, labels=movie.labels, progress=lambda step, row: True)
    assert not (run / "weights.pt").exists()
    said = run_record(run)
    assert said["steps"] == 1 and said["stopped_by"] is None, said  # before: {} (weights.pt only; last.pt said finished)
    assert not holds_finished_run(run)  # before: True, a finished run (the form moved to a fresh folder)
    files = write_stack_files(tmp_path)
    code = main(["--out", str(run), *files, "--init", "random", "--steps", "1", "--clip-len", "2", "--image-size", "64",
                 "--clips-per-step", "1", "--max-objects", "2", "--seed", "5", "--augment", "off"])
    assert code == 0  # before: "nothing to do: ... holds a finished run of 1 steps (weights in .../weights.pt)"
    rows = (run / "history.csv").read_text().splitlines()
    assert len(rows) == 2, rows  # the header and step 1: nothing trained again
    from sam2_model.run_record import resume_record, stored_record

    inside = stored_record(run / "weights.pt")
    assert inside == json.loads((run / "weights.json").read_text()) == resume_record(run / "last.pt") == run_record(run)
    assert set(inside) == FIELDS and inside["stopped_by"] == "steps" and inside["stack_check"] is not None, inside
    assert [s["stopped_by"] for s in inside["sessions"]] == [None, "steps"], inside["sessions"]
    assert isinstance(inside["sessions"][0]["machine"]["torch"], str)


def test_the_form_judges_a_run_by_the_step_train_resumes_from(tmp_path):
    """Fault: the Fine-tune form read a run folder's weights.pt record only, so a run killed after a periodic save
    (last.pt at step 2) beside an earlier call's weights (step 1, Cancel) was said to resume "from step 1", with that
    call's seconds (its pace then wrong), while train() resumed from step 2. Now the form reads last.pt's record (what
    train() resumes), without torch; the Weights menu still labels the weights by their own record (step 1 of 3)."""
    from napari_sam2._run_folders import run_record, trained_runs
    from sam2_model.run_record import stored_record

    run = tmp_path / "run"
    train(_settings(run, steps=3, save_every=1), progress=lambda step, row: False)  # Cancel after step 1
    assert run_record(run) == stored_record(run / "weights.pt")  # one record after a call's end

    def dies_at_3(step: int, row: dict) -> bool:
        if step == 3:
            raise RuntimeError("the process died")
        return True

    with pytest.raises(RuntimeError):
        train(_settings(run, steps=3, save_every=1), progress=dies_at_3)
    said = run_record(run)
    assert said["steps"] == 2 and said["stopped_by"] is None, said  # before: 1, "progress" (weights.pt's)
    assert stored_record(run / "weights.pt")["steps"] == 1
    labels = [entry.label for entry in trained_runs([run])]
    assert any(label.endswith(", stopped at step 1 of 3)") for label in labels), labels


def test_last_pt_of_an_older_run_is_read_in_the_records_words(tmp_path):
    """A last.pt saved before last.pt held a record (its sessions pickling torch's TorchVersion) is read without
    torch, in the weights' record's words: steps, train_seconds, stopped_by, settings, sessions."""
    from sam2_model.run_record import resume_record

    last = tmp_path / "last.pt"
    session = {"machine": {"torch": torch.__version__}, "end_step": 4, "stopped_by": "time_limit"}
    torch.save({"model": {"w": torch.zeros(2)}, "optimizer": {}, "step": 4, "seconds": 12.34,
                "settings": {"steps": 9, "model": "demo"}, "sessions": [session]}, last)
    record = resume_record(last)
    assert record == {"steps": 4, "train_seconds": 12.3, "stopped_by": "time_limit",
                      "settings": {"steps": 9, "model": "demo"},
                      "sessions": [{"machine": {"torch": str(torch.__version__)}, "end_step": 4,
                                    "stopped_by": "time_limit"}]}, record
    assert resume_record(tmp_path / "missing.pt") is None
    with zipfile.ZipFile(tmp_path / "other.pt", "w") as archive:  # a weights file: no step, so no resume file
        archive.writestr("a/data.pkl", pickle.dumps({"model": {}, "record": {"steps": 1}}, protocol=2))
    assert resume_record(tmp_path / "other.pt") is None


def test_the_form_names_a_setting_it_has_no_field_for_by_its_sam2_train_option():
    """Fault: a run started by sam2-train with a setting the Fine-tune form does not show (clips per step, objects per
    clip, seed) was refused in the form as "clips_per_step 1 (here 2)", a name the person finds nowhere. Now it is
    named by the sam2-train option that set it; the form's own fields keep their labels."""
    from napari_sam2._run_folders import setting_in_form_words

    assert setting_in_form_words("clips_per_step", 1) == "sam2-train's --clips-per-step 1"  # before: "clips_per_step 1"
    assert setting_in_form_words("max_objects", 2) == "sam2-train's --max-objects 2"
    assert setting_in_form_words("lr", 1e-4) == "learning rate 0.0001"
