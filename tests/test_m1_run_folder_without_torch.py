"""A run folder is judged without torch even when its run wrote no weights yet (s55 M1): the checks that the
Fine-tune widget makes on napari's GUI thread when Train is pressed, and that ``sam2-train`` makes before it trains
(the run's warm-up and learning rate, the step it resumes from, whether it is finished), read a run's ``last.pt`` with
:func:`sam2_model.run_record.resume_record` (the pickle alone), with the answers torch's loader gives; and the demo
weights' file has one torch-free home that the model builder, ``sam2-train`` and the form share.

Each probe runs in a fresh interpreter (what the test process imported does not count).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from sam2_model.train import loop
from sam2_model.train.loop import TrainSettings, train

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, sys
from pathlib import Path
from napari_sam2._run_folders import holds_finished_run, run_record
from sam2_model.train.__main__ import parse_args
from sam2_model.train.run_folder import finished_run_words, run_lr, run_warmup, saved_step
from sam2_model.train.settings import TrainSettings
answers = {}
for folder in map(Path, sys.argv[1:]):
    record = run_record(folder)
    parsed = parse_args(["--out", str(folder), "--steps", "3", "--init", "random", "--image-size", "64"], notes=[])
    answers[folder.name] = {
        "warmup": run_warmup(folder), "lr": run_lr(folder), "step": saved_step(folder / "last.pt"),
        "finished_at_1": finished_run_words(TrainSettings(out=str(folder), steps=1)) is not None,
        "finished_at_2": finished_run_words(TrainSettings(out=str(folder), steps=2)) is not None,
        "held_finished": holds_finished_run(folder), "record": [record["steps"], record["settings"]["lr"]],
        "parsed": [parsed.warmup_steps, parsed.lr]}
print(json.dumps(answers))
print("torch" in sys.modules)
"""


def _probe(code: str, *args: str) -> list:
    """``code`` run in a fresh interpreter with ``args``; its stdout lines."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real tiny runs (1 step of 1-frame clips at 64 px, warm-up 1, lr 3e-4) in a folder: ``killed``, killed while it
    wrote its weights (last.pt holds the run at step 1, not yet finished; no weights.pt or weights.json); ``finished``,
    that run resumed to its end; ``older``, the killed run's last.pt as runs saved it before it held a record."""
    root = tmp_path_factory.mktemp("runs")
    settings = TrainSettings(out=str(root / "killed"), model="demo", image_size=64, clip_len=1, clips_per_step=1,
                             max_objects=1, steps=1, warmup_steps=1, seed=5, lr=3e-4)

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt("killed while it wrote its weights")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "export_weights", killed)
        with pytest.raises(KeyboardInterrupt):
            train(settings, progress=lambda step, row: True)
    shutil.copytree(root / "killed", root / "finished")
    train(dataclasses.replace(settings, out=str(root / "finished")), progress=lambda step, row: True)
    _as_saved_before_records(root / "killed" / "last.pt", root / "older")
    return root


def _as_saved_before_records(last: Path, older: Path) -> None:
    """``last`` saved again in ``older`` as a run saved its last.pt before it held a record (2026-12-08): no
    "record", and its sessions pickling torch's version object."""
    state = torch.load(last, map_location="cpu", weights_only=False)
    state.pop("record")
    for session in state["sessions"]:
        session["machine"]["torch"] = torch.__version__  # (a TorchVersion, not a str)
    older.mkdir()
    torch.save(state, older / "last.pt")


def test_a_run_that_wrote_no_weights_yet_is_judged_without_torch(runs):
    """Fault: with no weights record in the folder (a run killed before it wrote weights.pt), Train's warm-up check
    (run_warmup), and sam2-train's defaults, its "nothing to do" check and its Ctrl-C line (run_lr, finished_run_words,
    saved_step), read last.pt with torch.load: torch was imported on napari's GUI thread (7-8 s on a loaded machine)
    and by sam2-train's argument parsing. Now last.pt is read with run_record.resume_record, torch-free, with the same
    answers as torch's loader, for a last.pt with a record and one saved before last.pt held one."""
    killed, older = runs / "killed", runs / "older"
    assert sorted(p.name for p in killed.iterdir()) == ["history.csv", "last.pt"]
    lines = _probe(PROBE, str(killed), str(older))
    assert lines[-1] == "False", lines  # before: True (torch loaded to read last.pt)
    answers = json.loads(lines[0])
    for folder in (killed, older):
        state = torch.load(folder / "last.pt", map_location="cpu", weights_only=False)  # what torch's loader reads
        saved = state["settings"]
        assert saved["warmup_steps"] == 1 and saved["lr"] == 3e-4 and state["step"] == 1
        assert answers[folder.name] == {
            "warmup": saved["warmup_steps"], "lr": saved["lr"], "step": state["step"],
            "finished_at_1": False,  # its weights were not written: Train resumes it to finish
            "finished_at_2": False, "held_finished": False, "record": [1, saved["lr"]],
            "parsed": [saved["warmup_steps"], saved["lr"]]}, answers  # the run keeps its warm-up and learning rate


def test_a_finished_run_and_unreadable_files_are_said_as_torch_said_them(runs, tmp_path):
    """The same answers as torch.load's where the run finished (its stop recorded) or last.pt cannot be read (cut
    short, not a zip, a weights file with no step): finished at its steps, None / no warm-up otherwise."""
    run = runs / "finished"
    cut, text, weights = (tmp_path / name for name in ("cut", "text", "weights"))
    for folder in (cut, text, weights):
        folder.mkdir()
    (cut / "last.pt").write_bytes((run / "last.pt").read_bytes()[:5000])
    (text / "last.pt").write_text("not a checkpoint")
    (weights / "last.pt").write_bytes((run / "weights.pt").read_bytes())
    code = ("import json, sys\n"
            "from pathlib import Path\n"
            "from sam2_model.train.run_folder import finished_run_words, run_lr, run_warmup, saved_step\n"
            "from sam2_model.train.settings import TrainSettings\n"
            "print(json.dumps([[run_warmup(Path(f)), run_lr(Path(f)), saved_step(Path(f) / 'last.pt'),\n"
            "                   finished_run_words(TrainSettings(out=f, steps=1))] for f in sys.argv[1:]]))\n"
            "print('torch' in sys.modules)\n")
    lines = _probe(code, *map(str, (run, cut, text, weights)))
    assert lines[-1] == "False", lines  # before: True
    finished, *unreadable = json.loads(lines[0])
    assert finished[:3] == [1, 3e-4, 1] and finished[3].startswith(f"{run} holds a finished run of 1 steps"), finished
    assert unreadable == [[None, None, None, None]] * 3, unreadable


def test_the_demo_weights_have_one_home_found_without_torch(tmp_path, monkeypatch):
    """Fault: the demo weights' path was written twice (build.embedded_weights_path and the form's
    train.settings.embedded_weights_file), and sam2-train's --init embedded imported the model builder (torch) to
    find it. Now sam2_model.demo_weights is its one home, torch-free, that the builder, sam2-train and the form use;
    a missing file is the same FileNotFoundError for all three."""
    code = ("import sys\n"
            "from sam2_model import demo_weights\n"
            "from sam2_model.train import __main__ as cli, settings\n"
            "print(settings.embedded_weights_file() == demo_weights.embedded_weights_path(),\n"
            "      cli.parse_args(['--out', 'x', '--init', 'embedded'], notes=[]).init\n"
            "      == str(demo_weights.embedded_weights_path()), 'torch' in sys.modules)\n")
    assert _probe(code) == ["True True False"]  # before: ModuleNotFoundError (no demo_weights)
    from sam2_model import build, demo_weights
    from sam2_model.train import __main__ as cli, settings

    shipped = Path(demo_weights.__file__).parent / "weights" / "demo.pt"
    assert build.embedded_weights_path() == demo_weights.embedded_weights_path() == shipped
    monkeypatch.setattr(demo_weights, "WEIGHTS_DIR", tmp_path)
    missing = (f"the embedded demo weights are missing ({tmp_path / 'demo.pt'}); reinstall napari-sam2, or train them "
               "with `python -m sam2_model.train`")
    for find in (build.embedded_weights_path, settings.embedded_weights_file, cli.embedded_weights_path):
        with pytest.raises(FileNotFoundError) as error:
            find()
        assert str(error.value) == missing
