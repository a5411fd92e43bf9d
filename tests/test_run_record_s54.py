"""A fine-tuning run's record read without torch (s54 M3): the model picker lists the runs of ~/napari-sam2-runs on
napari's GUI thread when the segmentation widget docks, and reading each run's record (inside weights.pt, a torch zip)
imported torch there (1.5 s warm, 6-8 s cold). ``sam2_model.run_record`` reads the record from the zip's pickle with
a restricted unpickler: the same record torch reads, no torch, nothing else in the file loaded or run."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from sam2_model.train.loop import TrainSettings, train

ROOT = Path(__file__).resolve().parents[1]


def _tiny_run(out: Path, steps: int, stop_after_first: bool) -> Path:
    """A real run of the demo model at 64 px into ``out`` (cancelled after its first step with ``stop_after_first``)."""
    settings = TrainSettings(out=str(out), model="demo", image_size=64, clip_len=2, clips_per_step=1, max_objects=2,
                             steps=steps, warmup_steps=1, save_every=1000, seed=5, augment=False)
    train(settings, progress=lambda step, row: not stop_after_first)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Two real runs under a home folder's napari-sam2-runs: "stopped" (step 1 of 3) and "done" (1 of 1)."""
    home = tmp_path_factory.mktemp("home")
    root = home / "napari-sam2-runs"
    return {"home": home, "stopped": _tiny_run(root / "stopped", 3, True), "done": _tiny_run(root / "done", 1, False)}


def _probe(code: str, home: Path) -> list:
    """``code`` in a fresh interpreter with HOME=``home``; its stdout lines."""
    env = {**os.environ, "HOME": str(home), "NAPARI_CONFIG": str(home / "napari_settings.yaml"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()


def test_listing_and_judging_runs_loads_no_torch(runs):
    """Fault: ``_run_folders`` read each run's record with sam2_model.build / train.loop (torch at the top), so the
    Weights menu's list (and the Fine-tune form's run checks) imported torch. Now they read it without torch."""
    code = ("import sys\n"
            "from pathlib import Path\n"
            "from napari_sam2._run_folders import holds_finished_run, run_record, trained_runs\n"
            "print(sorted(run.label.split(' (')[0] + (' early' if 'stopped at step 1 of 3' in run.label else '')"
            " for run in trained_runs()))\n"
            f"stopped, done = Path({str(runs['stopped'])!r}), Path({str(runs['done'])!r})\n"
            "print(run_record(stopped)['stopped_by'], run_record(done)['stopped_by'], holds_finished_run(stopped), "
            "holds_finished_run(done))\n"
            "print('torch' in sys.modules)\n")
    lines = _probe(code, runs["home"])
    assert lines == ["['fine-tuned: done', 'fine-tuned: stopped early']", "progress steps False True", "False"], lines


@pytest.mark.gui
def test_docking_with_a_run_folder_loads_no_torch(runs):
    """Fault (review R2, item 3): with a run in ~/napari-sam2-runs, docking the segmentation widget imported torch on
    the GUI thread (its Weights menu lists the runs). Now the dock, its menu listing the runs, loads none."""
    pytest.importorskip("napari")
    code = ("import sys\n"
            "import napari\n"
            "viewer = napari.Viewer(show=False)\n"
            "viewer.open_sample('napari-sam2', 'synthetic_nuclei')\n"
            "_, widget = viewer.window.add_plugin_dock_widget('napari-sam2', 'SAM 2 segmentation')\n"
            "combo = widget.checkpoint_combo\n"
            "print(sorted(combo.itemText(i) for i in range(combo.count()) if 'stopped at step 1 of 3' in "
            "combo.itemText(i)))\n"
            "print('torch' in sys.modules)\n"
            "viewer.close()\n")
    lines = _probe(code, runs["home"])
    assert len(lines) == 2 and lines[0].startswith("['fine-tuned: stopped (") and lines[1] == "False", lines


def test_the_record_is_torchs_and_the_builders(runs, tmp_path):
    """The record read without torch equals torch.load's and the model builder's (read_checkpoint), for a finished
    run, a stopped one and a weights.pt copied away from its JSON; weights_run_record and the builder's choice agree."""
    from sam2_model import build
    from sam2_model.run_record import stored_record, weights_record, weights_run_record
    from sam2_model.train import loop

    alone = tmp_path / "alone.pt"
    shutil.copy(runs["stopped"] / "weights.pt", alone)
    for weights in (runs["stopped"] / "weights.pt", runs["done"] / "weights.pt", alone):
        expected = torch.load(weights, map_location="cpu", weights_only=True)["record"]
        assert stored_record(weights) == expected == build.read_checkpoint(weights)[1]
        assert loop.weights_run_record(weights) == weights_run_record(weights) == expected
        assert weights_record(weights, stored_record(weights)) == build.weights_record(weights, expected)
    assert build.stored_record is stored_record and loop.weights_run_record is weights_run_record
    assert stored_record(alone)["steps"] == 1 and stored_record(runs["done"] / "weights.pt")["stopped_by"] == "steps"
    plain = tmp_path / "plain.pt"  # an official-style file: no record inside
    torch.save({"model": {"w": torch.zeros(2, 3)}}, plain)
    bare = tmp_path / "bare.pt"  # a bare state dict
    torch.save({"w": torch.zeros(2), "record": {"steps": 1}}, bare)
    assert stored_record(plain) is None and stored_record(bare) is None


def _torch_record(weights: Path):
    """The record as torch's memory-mapped loader read it before (None when it cannot read the file)."""
    try:
        payload = torch.load(weights, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None
    return payload.get("record") if isinstance(payload, dict) and "model" in payload else None


def test_damaged_and_foreign_files_give_the_json_or_nothing(runs, tmp_path):
    """A cut-short, foreign or damaged weights.pt holds no readable record: the JSON beside it is used, else {}; no
    exception (the menu is listed on napari's GUI thread), and the same answer torch's memory-mapped load gave."""
    from sam2_model.run_record import stored_record, weights_run_record

    source = runs["stopped"] / "weights.pt"
    whole = source.read_bytes()
    with zipfile.ZipFile(source) as archive:
        prefix = archive.namelist()[0].split("/")[0]
    pickled = zipfile.ZipFile(source).read(f"{prefix}/data.pkl")

    def zip_of(name: str, data: bytes) -> bytes:
        path = tmp_path / "made.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(name, data)
        return path.read_bytes()

    legacy = tmp_path / "legacy.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "record": {"steps": 1}}, legacy, _use_new_zipfile_serialization=False)
    cases = {"cut": whole[: len(whole) // 2], "head": whole[:100], "empty": b"", "tiff": b"II*\x00" + bytes(64),
             "text": b'{"steps": 1}', "legacy": legacy.read_bytes(), "other zip": zip_of("a/readme.txt", b"hi"),
             "cut pickle": zip_of("a/data.pkl", pickled[: len(pickled) // 2]),
             "garbage pickle": zip_of("a/data.pkl", b"\x80\x02garbage"), "random": os.urandom(4096)}
    json_text = (runs["stopped"] / "weights.json").read_text()
    for name, data in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        weights = folder / "weights.pt"
        weights.write_bytes(data)
        assert stored_record(weights) is None and _torch_record(weights) is None, name
        assert weights_run_record(weights) == {}, name
        (folder / "weights.json").write_text(json_text)
        assert weights_run_record(weights) == json.loads(json_text), name
    assert stored_record(tmp_path) is None and stored_record(tmp_path / "missing.pt") is None


class _Boom:
    """Pickles as a call of os.system (what a malicious weights.pt would hold)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_naming_another_class_is_refused_unrun(runs, tmp_path):
    """A weights.pt whose pickle names a class outside the reader's list (os.system here) is refused before the class
    is looked up: nothing runs, the record is None (torch's weights_only loader, asked next, refuses it too) and the
    JSON beside it is used. A file the reader does not understand but torch does (torch.Size) is read by torch."""
    from sam2_model.run_record import _NotUnderstood, _RecordUnpickler, stored_record, weights_run_record

    marker = tmp_path / "ran"
    payload = pickle.dumps({"model": {}, "record": {"steps": 1, "x": _Boom(marker)}}, protocol=2)
    with pytest.raises(_NotUnderstood, match="posix.system|os.system"):
        import io

        _RecordUnpickler(io.BytesIO(payload)).load()
    folder = tmp_path / "evil"
    folder.mkdir()
    with zipfile.ZipFile(folder / "weights.pt", "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")
    assert stored_record(folder / "weights.pt") is None and not marker.exists()
    shutil.copy(runs["stopped"] / "weights.json", folder / "weights.json")
    assert weights_run_record(folder / "weights.pt")["steps"] == 1 and not marker.exists()

    odd = tmp_path / "odd.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "record": {"steps": 2}, "shape": torch.Size([2])}, odd)
    assert stored_record(odd) == {"steps": 2}


def test_a_path_naming_an_unknown_home_gives_no_record_rather_than_an_error():
    """Review R7: "~nosuchuser/..." raised RuntimeError from expanduser; the reader never raises."""
    from sam2_model.run_record import stored_record

    assert stored_record("~nosuchuser-s54/run/weights.pt") is None
