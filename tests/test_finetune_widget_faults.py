"""Faults a new user met in the fine-tuning widget and its model picker (explorer E3, stop 48), driven as a person
would: a real viewer, layers, the widget's buttons, the file dialog answered, workers awaited."""

from __future__ import annotations


import numpy as np
import pytest
import torch

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from sam2_model import build_model  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402
from unwritable import unwritable  # noqa: E402
from widget_helpers import one_step_finetune, train_and_wait  # noqa: E402

LOCAL = "local file…"


@pytest.fixture
def finetune(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    return one_step_finetune(make_napari_viewer, tmp_path, monkeypatch)


def test_nan_frames_are_refused_before_any_run(finetune, qtbot, tmp_path):
    """A NaN border (after registration) trained every step to NaN weights and failed only at the end; now nothing
    starts and nothing is written."""
    viewer, widget = finetune
    frames = viewer.layers["nuclei"].data.astype(np.float32)
    frames[2, :3, :3] = np.nan
    viewer.add_image(frames, name="registered")
    widget.image_combo.setCurrentText("registered")
    train_and_wait(widget, qtbot)
    assert widget.status.text().startswith("failed, nothing trained: frames: frame 2 contains NaN")
    assert not (tmp_path / "run").exists() and widget.weights_path is None


def test_cancel_after_the_last_step_says_the_run_finished(finetune, qtbot):
    """Cancel pressed as the last step shows (the run then checks the user's frames): the run is finished, and the
    status says so instead of "stopped after step 2 of 2 (Train resumes)"."""
    viewer, widget = finetune
    widget.steps_spin.setValue(2)
    widget.progress.valueChanged.connect(lambda value: value == 2 and widget.cancel_button.click())
    train_and_wait(widget, qtbot)
    assert widget.status.text().startswith("done: weights in "), widget.status.text()
    assert "stopped" not in widget.status.text()


def test_a_relative_run_folder_is_shown_as_the_absolute_folder_it_is(finetune, qtbot, tmp_path, monkeypatch):
    viewer, widget = finetune
    monkeypatch.chdir(tmp_path)  # napari's working folder
    widget.out_edit.setText("myrun")
    train_and_wait(widget, qtbot)
    weights = tmp_path / "myrun" / "weights.pt"
    assert weights.is_file() and widget.out_edit.text() == str(tmp_path / "myrun")
    assert widget.status.text().startswith(f"done: weights in {weights};")


def test_a_run_folder_that_is_a_file_is_refused_in_words(finetune, qtbot, tmp_path):
    viewer, widget = finetune
    (tmp_path / "run").write_text("my notes")
    train_and_wait(widget, qtbot)
    assert widget.status.text() == f"failed, nothing trained: the run folder {tmp_path / 'run'} is a file: give a " \
                                   "folder for the run (checkpoints, history, weights)"
    assert (tmp_path / "run").read_text() == "my notes"


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody running the tests can write in (chmod for a user, the immutable flag for root); skipped
    where neither works."""
    folder = tmp_path / "locked"
    folder.mkdir()
    with unwritable(folder):
        yield folder


def test_a_run_folder_that_cannot_be_written_is_named_before_any_run(finetune, qtbot, read_only_folder):
    viewer, widget = finetune
    widget.out_edit.setText(str(read_only_folder / "run"))
    train_and_wait(widget, qtbot)
    status = widget.status.text()
    assert status.startswith(f"failed, nothing trained: cannot make the run folder {read_only_folder / 'run'} "
                             f"(cannot write in {read_only_folder}: ") and \
        status.endswith("): choose a folder you can write to"), status
    assert list(read_only_folder.iterdir()) == []


def test_use_carries_the_input_size_the_run_trained_at(finetune, qtbot, tmp_path):
    """Trained at 64 px, the segmentation widget at 128: Use gives it the weights and the run's input size, and says
    so."""
    viewer, widget = finetune
    segmentation = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 segmentation")[1]
    segmentation.size_spin.setValue(128)
    train_and_wait(widget, qtbot)
    widget.use_button.click()
    choice = segmentation.picker.choice()
    assert (choice.weights, choice.path, choice.name) == (LOCAL, str(tmp_path / "run" / "weights.pt"), "demo")
    assert choice.image_size == 64
    assert widget.status.text().endswith("The segmentation widget now runs demo with these weights at 64 px, the "
                                         "input size they were trained at (its Input size changes it).")
    widget.use_button.click()  # said once
    assert widget.status.text().count("The segmentation widget now runs") == 1


def test_labels_saved_as_floats_get_a_hint_to_convert_them(make_napari_viewer, tmp_path, monkeypatch):
    """A float label TIFF (as Fiji saves it) opens as an Image layer, so the Labels list is empty: the status says how
    to convert it; once converted, the first words come back."""
    from napari_sam2._finetune import FineTuneWidget

    first_words = "Pick an image and its labels"

    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    monkeypatch.setattr("napari_sam2._finetune.show_error", lambda message: None)
    viewer = make_napari_viewer()
    movie = make_timelapse(num_frames=3, shape=(64, 64), num_cells=3, seed=7, radius_fraction=0.12)
    viewer.add_image(movie.image, name="nuclei")
    widget = FineTuneWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.status.text().startswith(first_words)
    viewer.add_image(movie.labels.astype(np.float32), name="labels from Fiji")
    hint = "'labels from Fiji' looks like labels saved as floats (napari opens those as an image): right-click it " \
           "in the layer list > Convert to Labels, then pick it as Labels here."
    assert widget.status.text() == hint
    widget.train_button.click()
    assert widget.status.text() == f"failed, nothing trained: pick an image layer and a labels layer first. {hint}"
    viewer.add_labels(movie.labels.astype(np.int32), name="labels")  # what Convert to Labels makes
    assert widget.labels_combo.currentText() == "labels" and widget.status.text().startswith(first_words)
    viewer.layers.remove("labels")
    viewer.add_image(movie.image.astype(np.float32) + 0.5, name="a float image")  # not whole numbers: no hint
    viewer.layers.remove("labels from Fiji")
    assert widget.status.text().startswith(first_words)


# ---------------------------------------------------------------- the model picker (the fine-tuning widget's)
def choose_in_dialog(picker, monkeypatch, path) -> None:
    """Weights: "local file…" chosen in the combo, the file dialog answered with ``path``."""
    monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getOpenFileName", lambda *a, **k: (str(path), ""))
    picker.checkpoint_combo.setCurrentText(LOCAL)
    picker.checkpoint_combo.textActivated.emit(LOCAL)


def test_a_file_chosen_in_the_dialog_is_read_in_the_pickers_worker(finetune, qtbot, tmp_path, monkeypatch):
    """Reading and identifying the file (seconds for a file of no known model) no longer holds the GUI: the picker is
    busy meanwhile (Train waits), then follows the file; a file of no known model is refused, the choice kept."""
    viewer, widget = finetune
    errors = []
    monkeypatch.setattr("napari_sam2._model_picker.show_error", errors.append)
    tuned = tmp_path / "tuned.pt"
    torch.save({"model": build_model("demo").state_dict()}, tuned)
    choose_in_dialog(widget.picker, monkeypatch, tuned)
    assert widget.picker.worker is not None and not widget.train_button.isEnabled()
    qtbot.waitUntil(lambda: widget.picker.worker is None, timeout=60_000)
    assert widget.train_button.isEnabled() and not errors
    assert widget.settings().init == str(tuned) and widget.settings().model == "demo"
    foreign = tmp_path / "foreign.pt"
    torch.save({"a": torch.zeros(3)}, foreign)
    choose_in_dialog(widget.picker, monkeypatch, foreign)
    assert widget.picker.worker is not None
    qtbot.waitUntil(lambda: widget.picker.worker is None, timeout=60_000)
    assert errors and f"{foreign} holds no known SAM 2 model" in errors[0]
    assert widget.picker.status.text().startswith("Not used: ") and widget.settings().init == str(tuned)


def test_the_pickers_status_forgets_a_failed_download_when_the_choice_changes(finetune, qtbot, tmp_path,
                                                                             monkeypatch):
    viewer, widget = finetune
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path / "empty cache"))
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", "http://127.0.0.1:9")  # nothing listens: offline
    monkeypatch.setattr("napari_sam2._model_picker.show_error", lambda message: None)
    picker = widget.picker
    picker.model_combo.setCurrentText("sam2.1_hiera_tiny")
    assert picker.checkpoint_combo.currentText() == "cached or download"
    picker.when_ready(lambda: None)  # what Segment (or Train) asks of it
    qtbot.waitUntil(lambda: picker.worker is None, timeout=60_000)
    assert picker.status.text().startswith("Could not load the model: could not download")
    picker.model_combo.setCurrentText("demo")
    assert picker.status.text() == ""
