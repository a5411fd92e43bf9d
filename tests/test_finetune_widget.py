"""The fine-tuning dock widget in a real napari viewer: train on layers, cancel and resume, load the result."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from sam2_model import build_model  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402
from widget_helpers import open_finetune  # noqa: E402


@pytest.fixture
def finetune(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    viewer, widget, _ = open_finetune(make_napari_viewer, tmp_path, monkeypatch, num_cells=4, clip=3)
    return viewer, widget


def test_training_on_layers_writes_weights_that_load(finetune, qtbot, tmp_path):
    viewer, widget = finetune
    widget.steps_spin.setValue(2)
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    assert widget.progress.value() == 2
    assert widget.weights_path == tmp_path / "run" / "weights.pt"
    tuned = build_model("demo", checkpoint=widget.weights_path, image_size=64)  # strict load
    start = build_model("demo", image_size=64)
    assert any(not torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), start.state_dict().values()))
    # the run ends with a check on the user's own frames: starting against fine-tuned weights, shown in the status
    metadata = json.loads((tmp_path / "run" / "weights.json").read_text())
    assert metadata["data"].startswith("user stack of 4 x 64 x 64 frames given as arrays")  # not synthetic nuclei
    assert metadata["data"].endswith("turned by a multiple of 90 degrees and mirrored at random")
    check = metadata["stack_check"]
    assert check["frames"] == 4 and check["objects"] == len(np.unique(viewer.layers["annotations"].data[0])) - 1
    assert 0.0 <= check["before"] <= 1.0 and 0.0 <= check["after"] <= 1.0
    assert f"{check['before']:.2f} -> {check['after']:.2f}" in widget.status.text()
    widget.use_button.click()  # hand the result to the segmentation widget
    segmentation = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 segmentation")[1]
    assert segmentation.checkpoint_file == str(widget.weights_path)
    assert segmentation.checkpoint_combo.currentText() == "local file…"


def test_cancel_saves_the_run_and_train_resumes_it(finetune, qtbot, tmp_path):
    viewer, widget = finetune
    widget.steps_spin.setValue(1000)
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.progress.value() >= 1, timeout=300_000)
    widget.cancel_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    stopped = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["step"]
    assert 1 <= stopped < 1000
    assert widget.status.text().startswith(f"stopped after step {stopped} of 1000 (Train resumes): weights in ")
    widget.steps_spin.setValue(stopped + 1)
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=False)["step"] == stopped + 1


def test_closing_the_dock_stops_training_and_saves_the_run(finetune, qtbot, tmp_path):
    """The dock's x during training: it trained on to the last step with no Cancel left; now it stops after the
    step in progress and saves the run."""
    viewer, widget = finetune
    widget.steps_spin.setValue(1000)
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.progress.value() >= 1, timeout=300_000)
    viewer.window.remove_dock_widget(widget)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    assert 1 <= torch.load(tmp_path / "run" / "last.pt", weights_only=False)["step"] < 1000


def test_wrong_layers_give_a_clear_error_and_no_run(finetune, qtbot, tmp_path, monkeypatch):
    viewer, widget = finetune
    messages = []
    monkeypatch.setattr("napari_sam2._finetune.show_error", messages.append)
    viewer.add_image(np.zeros((4, 64, 64, 3), np.uint8), name="rgb", rgb=True)
    widget.image_combo.setCurrentText("rgb")
    widget.train_button.click()
    assert widget.worker is None and messages and "pick one channel" in messages[0]
    assert not (tmp_path / "run").exists()


def test_turning_and_mirroring_is_on_by_default_and_a_person_can_turn_it_off(finetune, qtbot, tmp_path):
    viewer, widget = finetune
    assert widget.augment_check.isChecked() and widget.settings().augment
    widget.augment_check.click()  # e.g. DIC, whose relief has a direction
    widget.steps_spin.setValue(2)
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    metadata = json.loads((tmp_path / "run" / "weights.json").read_text())
    assert metadata["settings"]["augment"] is False and metadata["settings"]["steps"] == 2
    assert metadata["data"] == "user stack of 4 x 64 x 64 frames given as arrays, with its labels"


def test_objects_too_small_for_the_input_give_a_clear_error_and_no_run(finetune, qtbot, tmp_path, monkeypatch):
    viewer, widget = finetune
    messages = []
    monkeypatch.setattr("napari_sam2._finetune.show_error", messages.append)
    labels = np.zeros((4, 512, 512), np.int32)
    labels[:, 1:5, 1:5] = 1  # 16 px, between the samples of a 64 px input
    viewer.add_image((labels * 200 + 10).astype(np.uint8), name="large frames")
    viewer.add_labels(labels, name="specks")
    widget.image_combo.setCurrentText("large frames")
    widget.labels_combo.setCurrentText("specks")
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    assert messages and "no annotated object is left once the 512 x 512 frames are resized" in messages[0]
    assert not (tmp_path / "run").exists() and widget.weights_path is None


def test_a_stack_annotated_on_some_frames_trains_on_those(finetune, qtbot, tmp_path):
    """A person annotates 3 frames of 8 and leaves the others blank: the run says so and trains on those 3."""
    viewer, widget = finetune
    movie = make_timelapse(num_frames=8, shape=(64, 64), num_cells=4, seed=8, radius_fraction=0.12)
    labels = movie.labels.copy()
    labels[[1, 2, 3, 5, 6]] = 0
    viewer.add_image(movie.image, name="long movie")
    viewer.add_labels(labels, name="three frames")
    widget.image_combo.setCurrentText("long movie")
    widget.labels_combo.setCurrentText("three frames")
    widget.steps_spin.setValue(1)
    widget.train_button.click()
    assert "on its 3 annotated frames of 8 (0, 4, 7; frames with no label are left out)" in widget.status.text()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    metadata = json.loads((tmp_path / "run" / "weights.json").read_text())
    assert "its 3 annotated frames (0, 4, 7), those with no label left out" in metadata["data"]
    assert metadata["stack_check"]["frames"] == 3



def test_held_out_frames_are_checked_after_the_run_and_shown(finetune, qtbot, tmp_path, monkeypatch):
    """A person keeps frames 6-7 of 8 out of training: the run trains on 0-5 and shows how the tuned weights track
    the cells of 6-7; a range beyond the movie is refused before any run."""
    viewer, widget = finetune
    messages = []
    monkeypatch.setattr("napari_sam2._finetune.show_error", messages.append)
    movie = make_timelapse(num_frames=8, shape=(64, 64), num_cells=4, seed=8, radius_fraction=0.12)
    viewer.add_image(movie.image, name="long movie")
    viewer.add_labels(movie.labels, name="all frames")
    widget.image_combo.setCurrentText("long movie")
    widget.labels_combo.setCurrentText("all frames")
    widget.steps_spin.setValue(1)
    widget.hold_out_edit.setText("6-9")
    widget.train_button.click()
    assert widget.worker is None and messages and "hold_out 6-9 lies beyond the stack's 8 frames (0-7)" in messages[0]
    assert not (tmp_path / "run").exists()
    widget.hold_out_edit.setText("6-7")
    widget.train_button.click()
    assert "on its 6 annotated frames of 8 (0-5; frames with no label are left out), frames 6-7 held out" in \
        widget.status.text()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    metadata = json.loads((tmp_path / "run" / "weights.json").read_text())
    held = metadata["held_out_check"]
    assert held["held_out"] == "6-7" and held["frames"] == 2 and metadata["stack_check"]["frames"] == 6
    assert (f"tracked IoU on held-out frames 6-7 (2 tracked), {held['objects']} objects clicked: "
            f"{held['before']:.2f} -> {held['after']:.2f}") in widget.status.text()

def test_one_annotated_image_is_enough_to_fine_tune(finetune, qtbot, tmp_path):
    viewer, widget = finetune
    movie = make_timelapse(num_frames=1, shape=(64, 64), num_cells=4, seed=9, radius_fraction=0.12)
    viewer.add_image(movie.image[0], name="one image")
    viewer.add_labels(movie.labels[0], name="its cells")
    widget.image_combo.setCurrentText("one image")
    widget.labels_combo.setCurrentText("its cells")
    widget.steps_spin.setValue(1)
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    assert widget.weights_path == tmp_path / "run" / "weights.pt"
    metadata = json.loads((tmp_path / "run" / "weights.json").read_text())
    assert metadata["data"].startswith("user image of 64 x 64 given as an array, with its labels")
    assert metadata["stack_check"]["frames"] == 1 and "one-click IoU on the image, 4 objects clicked" in \
        widget.status.text()


def test_labels_of_another_shape_give_a_clear_error_before_any_run(finetune, qtbot, tmp_path, monkeypatch):
    viewer, widget = finetune
    messages = []
    monkeypatch.setattr("napari_sam2._finetune.show_error", messages.append)
    viewer.add_labels(np.zeros((4, 32, 32), np.int32), name="smaller")
    widget.labels_combo.setCurrentText("smaller")
    widget.train_button.click()
    assert widget.worker is None and messages
    assert "the labels layer 'smaller' has shape (4, 32, 32), the image layer 'nuclei' (4, 64, 64)" in messages[0]
    assert not (tmp_path / "run").exists()


def test_labels_painted_frame_by_frame_give_a_clear_error_and_no_run(finetune, qtbot, tmp_path, monkeypatch):
    viewer, widget = finetune
    messages = []
    monkeypatch.setattr("napari_sam2._finetune.show_error", messages.append)
    tracked = viewer.layers["annotations"].data
    painted = np.where(tracked > 0, tracked + 100 * np.arange(len(tracked))[:, None, None], 0)  # new ids each frame
    viewer.add_labels(painted, name="painted")
    widget.labels_combo.setCurrentText("painted")
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    assert messages and "object ids do not follow the cells through time: between frames 0 and 1" in messages[0]
    assert not (tmp_path / "run").exists() and widget.weights_path is None
    widget.link_check.setChecked(True)  # as the message offers: ids linked by overlap, then clips of 3 frames
    widget.steps_spin.setValue(1)
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    assert widget.weights_path == tmp_path / "run" / "weights.pt"
    assert "ids linked from frame to frame by overlap" in json.loads((tmp_path / "run" / "weights.json").read_text())[
        "data"]


def test_the_starting_model_comes_from_the_shared_model_picker(finetune, tmp_path):
    from napari_sam2._model_picker import ModelPicker
    from sam2_model.build import embedded_weights_path

    viewer, widget = finetune
    segmentation = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 segmentation")[1]
    assert isinstance(widget.picker, ModelPicker) and isinstance(segmentation.picker, ModelPicker)
    assert widget.picker is not segmentation.picker  # each has its own worker slot
    widget.picker.model_combo.setCurrentText("demo")
    widget.picker.checkpoint_combo.setCurrentText("embedded (demo)")
    assert widget.settings().init == str(embedded_weights_path()) and widget.settings().image_size == 64
    widget.picker.checkpoint_combo.setCurrentText("random weights (testing)")
    assert widget.settings().init is None
    path = tmp_path / "tuned.pt"
    torch.save({"model": build_model("demo").state_dict()}, path)
    widget.picker.set_checkpoint_file(str(path))
    assert widget.settings().init == str(path) and widget.settings().model == "demo"
    widget.steps_spin.setValue(200)  # a long warm-up keeps a few frames' fine-tuning from collapsing (train.loop)
    assert widget.settings().warmup_steps == 50


def test_train_again_on_a_finished_run_with_other_settings_trains_nothing_and_offers_a_new_folder(finetune, qtbot,
                                                                                                  tmp_path):
    """A person trains 1 step, changes the learning rate and frames per clip and presses Train on the same folder:
    nothing is re-finished under settings it did not use; the widget says what the folder holds and moves to run-2.
    A newly opened widget proposes run-2 too; other frames pressed into the old run are refused in the status."""
    from napari_sam2._finetune import FineTuneWidget

    viewer, widget = finetune
    run = tmp_path / "run"
    widget.steps_spin.setValue(1)
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    recorded = (run / "weights.json").read_text()
    widget.lr_spin.setValue(5e-4)
    widget.clip_spin.setValue(2)
    widget.train_button.click()
    assert widget.worker is None  # nothing started
    assert (run / "weights.json").read_text() == recorded  # lr 0.0001, clip_len 3: what the step used
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 1
    status = widget.status.text()
    assert f"Nothing trained: {run} holds a finished run of 1 step with other settings: frames per clip 3 (here 2), " \
           "learning rate 0.0001 (here 0.0005)" in status
    assert widget.out_edit.text() == str(tmp_path / "run-2") and "press Train to start a new run there" in status
    assert FineTuneWidget(viewer).out_edit.text() == str(tmp_path / "run-2")  # the remembered folder is finished
    # the old run's own settings and more steps, but other frames: the run refuses them, and the status says so
    widget.out_edit.setText(str(run))
    widget.lr_spin.setValue(1e-4)
    widget.clip_spin.setValue(3)
    widget.steps_spin.setValue(2)
    movie = make_timelapse(num_frames=4, shape=(64, 64), num_cells=3, seed=8, radius_fraction=0.12)
    viewer.add_image(movie.image, name="other")
    viewer.add_labels(movie.labels, name="other labels")
    widget.image_combo.setCurrentText("other")
    widget.labels_combo.setCurrentText("other labels")
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    assert widget.status.text().startswith(f"failed: {run / 'last.pt'} is a run on other frames or labels")
    assert widget.out_edit.text() == str(tmp_path / "run-2") and widget.progress.value() == -1  # the bar rewound
    assert (run / "weights.json").read_text() == recorded


def test_a_run_that_fails_says_so_in_the_status_line(finetune, qtbot, tmp_path, monkeypatch):
    """Refused hold-outs (before any run) and a run refused in the worker: the status line says it failed and why,
    and the bar rewinds; not only a notification."""
    viewer, widget = finetune
    monkeypatch.setattr("napari_sam2._finetune.show_error", lambda message: None)
    widget.steps_spin.setValue(1)
    for text, why in (("abc", "hold_out"), ("3-9", "hold_out 3-9 lies beyond the stack's 4 frames")):
        widget.hold_out_edit.setText(text)
        widget.train_button.click()
        assert widget.worker is None and widget.status.text().startswith("failed, nothing trained: ")
        assert why in widget.status.text() and widget.progress.value() == -1
    widget.hold_out_edit.setText("")
    tracked = viewer.layers["annotations"].data
    viewer.add_labels(np.where(tracked > 0, tracked + 100 * np.arange(len(tracked))[:, None, None], 0), name="painted")
    widget.labels_combo.setCurrentText("painted")
    widget.train_button.click()
    assert widget.status.text().startswith("training ")
    qtbot.waitUntil(lambda: widget.worker is None, timeout=300_000)
    assert widget.status.text().startswith("failed: ") and "object ids do not follow the cells" in widget.status.text()
    assert widget.progress.value() == -1 and widget.out_edit.text() == str(tmp_path / "run")
