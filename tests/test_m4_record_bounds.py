"""Run records, plain and bounded (s55 review R4 of e1066b1): a run given NumPy numbers or paths as settings writes its
record instead of failing at its first save; a crafted weights.pt or last.pt (a record nested 60 levels through shared
lists, a looping record, a million class names) is judged at once to hold no record; a record holding anything but
plain JSON data (a class named by the file, an OrderedDict, a set) is no record."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, data: bytes) -> Path:
    """``data`` as the data.pkl of a torch-style zip at ``path``."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", data)
        archive.writestr("archive/version", "3\n")
    return path


def _read_in_subprocess(code: str) -> str:
    """stdout of ``code`` run in a fresh Python; a hang (the fault) fails the test after 60 s instead of stalling CI."""
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("reading the record did not return within 60 s (it must judge such a file at once)")
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def test_numpy_and_path_settings_are_recorded_as_plain_values(tmp_path):
    """Fault: ``TrainSettings(steps=np.int64(2), lr=np.float32(...), out=Path(...))`` failed the whole run at its first
    periodic save ("Object of type int64 is not JSON serializable": the record is made plain by a JSON round trip).
    Now NumPy numbers are recorded as their values and paths as text: the run finishes and its record reads back."""
    from sam2_model.run_record import resume_record, stored_record
    from sam2_model.train.loop import TrainSettings, train

    run = tmp_path / "run"
    settings = TrainSettings(out=run, model="demo", image_size=64, clip_len=2, clips_per_step=1, max_objects=2,
                             steps=np.int64(2), warmup_steps=1, save_every=1, seed=5, augment=False,
                             lr=np.float32(1e-4))
    train(settings, progress=lambda step, row: True)  # before: TypeError at step 1's save
    record = json.loads((run / "weights.json").read_text())
    assert record == stored_record(run / "weights.pt") == resume_record(run / "last.pt")
    assert record["steps"] == 2 and record["stopped_by"] == "steps", record
    assert record["settings"]["steps"] == 2 and type(record["settings"]["steps"]) is int
    assert record["settings"]["lr"] == pytest.approx(1e-4) and type(record["settings"]["lr"]) is float
    assert record["settings"]["out"] == str(run)


def test_a_deep_shared_or_looping_record_is_no_record_at_once(tmp_path):
    """Fault: a 1 KB weights.pt whose record nests a list 60 levels (``a = [a, a]``, shared through the pickle's memo:
    2**60 values when walked) made stored_record, resume_record, weights_run_record, trained_input_size and so the
    Weights menu never return; a looping record raised RecursionError. Now a record is read to a bounded depth and
    number of values: such a file holds no record, said at once."""
    shared = [1]
    for _ in range(60):
        shared = [shared, shared]
    looping: list = []
    looping.append(looping)
    settings: dict = {"model": "demo"}
    settings["self"] = settings
    files = {
        "deep": _write(tmp_path / "deep.pt", pickle.dumps({"model": {}, "step": 3, "record": {"steps": 1,
                                                                                             "x": shared}}, protocol=2)),
        "loop": _write(tmp_path / "loop.pt", pickle.dumps({"model": {}, "record": {"steps": 1, "x": looping}},
                                                          protocol=2)),
        "old_deep": _write(tmp_path / "old_deep.pt", pickle.dumps(  # a last.pt of before records: its settings
            {"model": {}, "step": 3, "settings": {"model": "demo", "x": shared}, "sessions": []}, protocol=2)),
        "old_loop": _write(tmp_path / "old_loop.pt", pickle.dumps(
            {"model": {}, "step": 3, "settings": settings, "sessions": []}, protocol=2)),
    }
    code = ("from sam2_model.run_record import stored_record, resume_record, weights_run_record\n"
            "from sam2_model.build import trained_input_size\n"
            f"files = {dict((k, str(v)) for k, v in files.items())!r}\n"
            "print([stored_record(files['deep']), resume_record(files['deep']), weights_run_record(files['deep']),\n"
            "       trained_input_size('demo', files['deep']), stored_record(files['loop']),\n"
            "       weights_run_record(files['loop']), resume_record(files['old_deep']),\n"
            "       resume_record(files['old_loop'])])\n")
    assert _read_in_subprocess(code) == "[None, None, {}, None, None, {}, None, None]"


def test_a_pickle_of_a_million_class_names_is_judged_at_once(tmp_path):
    """Fault: a 9 KB weights.pt whose data.pkl names a class a million times (GLOBAL, POP) took 38 s in the tolerant
    pass (a new stand-in class per name), on the GUI thread when the Weights menu lists runs. Now the stand-in classes
    are made once per name, a pickle may name at most 1,000 classes of other kinds and look up or call at most 200,000
    (a run's last.pt: about 7,000): past it the file holds no record (before: its empty record, after a minute)."""
    head = b"\x80\x02}q\x00(X\x05\x00\x00\x00modelq\x01}X\x06\x00\x00\x00recordq\x02}u"
    many = _write(tmp_path / "many.pt", head + b"cx\ny\n0" * 2_000_000 + b".")
    assert many.stat().st_size < 100_000
    names = _write(tmp_path / "names.pt", head + b"".join(b"cx\nn%d\n0" % i for i in range(300_000)) + b".")
    code = ("from sam2_model.run_record import stored_record\n"
            f"print(stored_record({str(many)!r}), stored_record({str(names)!r}))\n")
    assert _read_in_subprocess(code) == "None None"  # before: {} {}


def test_a_record_holding_anything_but_plain_data_is_no_record(tmp_path):
    """Fault: a record holding a class the file names without calling it (os.system: an inert stand-in class, not an
    instance), an OrderedDict, a set or a tuple was returned as a record, though the docs say such a record is none
    (and json.dumps of it failed in the callers). Now only dicts with text keys, lists, text, numbers, True/False and
    None make a record; a plain one still reads."""
    from sam2_model.run_record import stored_record

    uncalled = (b"\x80\x02}q\x00(X\x05\x00\x00\x00modelq\x01}X\x06\x00\x00\x00recordq\x02}q\x03("
                b"X\x05\x00\x00\x00stepsK\x01X\x01\x00\x00\x00xcos\nsystem\nuu.")
    odd = {
        "uncalled": uncalled,
        "ordered": pickle.dumps({"model": {}, "record": {"steps": 1, "x": OrderedDict(a=1)}}, protocol=2),
        "ordered_record": pickle.dumps({"model": {}, "record": OrderedDict(steps=1)}, protocol=2),
        "set": pickle.dumps({"model": {}, "record": {"steps": 1, "x": {1, 2}}}, protocol=2),
        "tuple": pickle.dumps({"model": {}, "record": {"steps": 1, "x": (1, 2)}}, protocol=2),
        "int_key": pickle.dumps({"model": {}, "record": {"steps": 1, "x": {1: 2}}}, protocol=2),
    }
    read = {name: stored_record(_write(tmp_path / f"{name}.pt", data)) for name, data in odd.items()}
    assert read == dict.fromkeys(odd), read  # before: all of them records
    plain = {"steps": 1, "stopped_by": None, "x": [1, 2.5, "a", True, None, {"y": []}]}
    assert stored_record(_write(tmp_path / "plain.pt", pickle.dumps({"model": {}, "record": plain}))) == plain
