"""Mends of stop 48's second review: a save that fails during a run names the file and its folder (sam2-train: one
line, exit 2; the fine-tuning widget: its status), a run folder path that cannot even be looked at is a one-line
refusal, the model picker's menus are held while a chosen file is read."""

from __future__ import annotations

import contextlib
import resource
import signal
from pathlib import Path
from typing import Iterator

import pytest
import torch

from sam2_model.atomic_files import write_failed
from sam2_model.train.__main__ import main as train_main
from sam2_model.train.loop import TrainSettings, atomic_save, train
from unwritable import unwritable
from widget_helpers import one_step_finetune, train_and_wait  # Qt-free: napari is imported by the fixture

SMALL = ["--image-size", "64", "--clip-len", "1", "--clips-per-step", "1", "--steps", "1"]
#: a folder name longer than any file system takes: Path.exists() raises OSError (ENAMETOOLONG), as it raises
#: PermissionError under a folder the user may not enter (Python 3.11), even for root
TOO_LONG = "a" * 300


@contextlib.contextmanager
def drive_full_above(limit: int) -> Iterator[None]:
    """Writes past ``limit`` bytes of a file fail as on a full drive (RLIMIT_FSIZE: EFBIG; SIGXFSZ ignored)."""
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old)
        signal.signal(signal.SIGXFSZ, handler)


def _tiny(out: Path, **changes: object) -> TrainSettings:
    base = dict(out=str(out), model="demo", image_size=64, clip_len=1, clips_per_step=1, max_objects=1, steps=1,
                warmup_steps=1, save_every=1000, seed=5)
    base.update(changes)
    return TrainSettings(**base)


# ---------------------------------------------------------------- a save that fails during a run
def test_a_save_on_a_full_drive_is_an_oserror_naming_the_file_and_its_folder(tmp_path: Path) -> None:
    """torch.save's C++ writer fails with "[enforce fail at inline_container.cc...] unexpected pos ..." and no file
    name; atomic_save says which file, which folder and what to do, keeps torch's error as the cause, leaves no
    temporary file and the old file as it was."""
    last = tmp_path / "last.pt"
    atomic_save({"step": 5}, last)
    with drive_full_above(64 * 1024), pytest.raises(OSError) as failed:
        atomic_save({"weights": torch.zeros(100_000)}, last)
    said = str(failed.value)
    assert said.startswith(f"cannot write {last} (") and "is the drive full" in said and str(tmp_path) in said
    assert isinstance(failed.value.__cause__, RuntimeError) and "enforce fail" not in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    assert torch.load(last, weights_only=False) == {"step": 5}


def test_torchs_open_failure_is_the_permission_error_it_names() -> None:
    """The reviewer's text of torch's failed open: a PermissionError naming the file and its folder."""
    error = write_failed("/data/run/last.pt", "[enforce fail at inline_container.cc:747] . open file failed with "
                         "strerror: Operation not permitted")
    assert isinstance(error, PermissionError) and error.filename == "/data/run/last.pt"
    assert "Operation not permitted (cannot write in /data/run: choose a folder you can write to)" in str(error)


def test_a_run_folder_locked_after_step_one_names_last_pt_and_the_folder(tmp_path: Path) -> None:
    """The reviewer's probe: the run folder made unwritable after step 1 (save_every 1): step 2's save is a
    PermissionError naming last.pt and its folder (was torch's RuntimeError with C++ text); last.pt stays step 1."""
    run = tmp_path / "run"
    stack = contextlib.ExitStack()

    def lock_after_first(step: int, row: dict) -> bool:  # told after each step, before its save
        if step == 2:
            stack.enter_context(unwritable(run))
        return True

    with stack, pytest.raises(PermissionError) as failed:
        train(_tiny(run, steps=2, save_every=1), progress=lock_after_first)
    assert failed.value.filename == str(run / "last.pt") and f"cannot write in {run}" in str(failed.value)
    assert torch.load(run / "last.pt", weights_only=False)["step"] == 1
    assert not [p for p in run.iterdir() if p.name.startswith(".")]


def test_sam2_train_says_a_failed_save_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """sam2-train whose save fails (a full drive): "error: cannot write RUN/last.pt (...)", exit 2, no traceback."""
    run = tmp_path / "run"
    with drive_full_above(64 * 1024):
        code = train_main(["--out", str(run)] + SMALL)
    err = capsys.readouterr().err
    assert code == 2 and f"error: cannot write {run / 'last.pt'} (" in err and "Traceback" not in err


def test_sam2_train_refuses_a_run_folder_it_cannot_look_at_in_one_line(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    """--out under a path that cannot be looked at (Path.exists() raises): one line, exit 2 (was a traceback)."""
    out = tmp_path / TOO_LONG / "run"
    assert train_main(["--out", str(out)] + SMALL) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: [Errno 36] File name too long") and str(tmp_path / TOO_LONG) in err


# ---------------------------------------------------------------- the fine-tuning widget and its model picker
LOCAL = "local file…"


@pytest.fixture
def finetune(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    pytest.importorskip("napari")
    return one_step_finetune(make_napari_viewer, tmp_path, monkeypatch)


@pytest.mark.gui
def test_the_widget_names_the_file_and_folder_of_a_save_that_failed(finetune, qtbot, tmp_path):
    """A run whose save fails (a full drive): the status names last.pt and the run folder (was torch's C++ text)."""
    viewer, widget = finetune
    run = tmp_path / "run"
    with drive_full_above(64 * 1024):
        train_and_wait(widget, qtbot)
    status = widget.status.text()
    assert status.startswith(f"failed: cannot write {run / 'last.pt'} (") and "enforce fail" not in status, status


@pytest.mark.gui
def test_the_widget_refuses_a_run_folder_it_cannot_look_at_in_one_line(finetune, qtbot, tmp_path):
    """A run folder under a path whose exists() raises: the one-line refusal, nothing started (was an exception out
    of the Qt slot)."""
    viewer, widget = finetune
    widget.out_edit.setText(str(tmp_path / TOO_LONG / "run"))
    widget.train_button.click()
    assert widget.worker is None
    assert widget.status.text().startswith("failed, nothing trained: [Errno 36] File name too long"), \
        widget.status.text()


@pytest.mark.gui
def test_the_model_and_weights_menus_are_held_while_a_chosen_file_is_read(finetune, qtbot, tmp_path, monkeypatch):
    """A file chosen in the dialog is read in the picker's worker: meanwhile the Model and Weights menus take no
    choice (one made there was overwritten when the read ended); after it, the file's choice, the menus enabled,
    and enabled again after a file that is refused."""
    from qtpy.QtCore import Qt

    from sam2_model import build_model

    viewer, widget = finetune
    picker = widget.picker
    monkeypatch.setattr("napari_sam2._model_picker.show_error", lambda message: None)
    tuned = tmp_path / "tuned.pt"
    torch.save({"model": build_model("demo").state_dict()}, tuned)
    monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getOpenFileName", lambda *a, **k: (str(tuned), ""))
    picker.checkpoint_combo.setCurrentText(LOCAL)
    picker.checkpoint_combo.textActivated.emit(LOCAL)
    assert picker.worker is not None
    assert not picker.checkpoint_combo.isEnabled() and not picker.model_combo.isEnabled()
    qtbot.keyClick(picker.checkpoint_combo, Qt.Key_Up)  # the user picks other weights meanwhile: not taken
    qtbot.waitUntil(lambda: picker.worker is None, timeout=60_000)
    assert picker.choice().weights == LOCAL and picker.choice().path == str(tuned)
    assert picker.checkpoint_combo.isEnabled() and picker.model_combo.isEnabled()
    foreign = tmp_path / "foreign.pt"
    torch.save({"a": torch.zeros(3)}, foreign)
    monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getOpenFileName", lambda *a, **k: (str(foreign), ""))
    picker.checkpoint_combo.textActivated.emit(LOCAL)
    assert not picker.model_combo.isEnabled()
    qtbot.waitUntil(lambda: picker.worker is None, timeout=60_000)
    assert picker.status.text().startswith("Not used: ")
    assert picker.checkpoint_combo.isEnabled() and picker.model_combo.isEnabled()
