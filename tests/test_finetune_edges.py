"""Edges of the fine-tuning widget (helper F1), driven as a person would: labels that do not lie on the image in the
viewer, a Cancel during the last step, the run folder checks, and the float-labels hint on camera counts and on
stacks whose first frame is blank."""

from __future__ import annotations

import json
from typing import Any, List

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from sam2_model.train.loop import TrainSettings, train  # noqa: E402
from unwritable import unwritable  # noqa: E402
from widget_helpers import one_step_finetune, train_and_wait  # noqa: E402


@pytest.fixture
def finetune(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    return one_step_finetune(make_napari_viewer, tmp_path, monkeypatch)


# ---------------------------------------------------------------- 1. labels placed elsewhere in the viewer
def test_labels_at_another_scale_or_shifted_are_refused_before_any_run(finetune, qtbot, tmp_path):
    """Labels shown at half the image's pixel size, or shifted, trained silently on voxel pairs that do not overlap
    on screen; now nothing starts, no run folder is made, and the status names both layers, their scale and
    translate, what is accepted and the console line that sets them equal."""
    viewer, widget = finetune
    labels = viewer.layers["annotations"]
    labels.scale = (1, 0.5, 0.5)
    train_and_wait(widget, qtbot)
    status = widget.status.text()
    assert status.startswith(
        "failed, nothing trained: the labels layer 'annotations' (scale (1, 0.5, 0.5), translate (0, 0, 0)) does not "
        "lie on the image layer 'nuclei' (scale (1, 1, 1), translate (0, 0, 0)) in the viewer: training pairs them "
        "pixel by pixel, so they must have the same shape and the same scale and translate."), status
    assert "viewer.layers['annotations'].scale = viewer.layers['nuclei'].scale" in status
    assert ".translate =" not in status  # only what differs is to be set
    assert not (tmp_path / "run").exists() and widget.weights_path is None

    labels.scale = (1, 1, 1)
    labels.translate = (0, 3, 0)  # three pixels down
    train_and_wait(widget, qtbot)
    status = widget.status.text()
    assert "the labels layer 'annotations' (scale (1, 1, 1), translate (0, 3, 0)) does not lie on the image" in status
    assert status.endswith("viewer.layers['annotations'].translate = viewer.layers['nuclei'].translate; if they "
                           "belong to another grid, resample them onto the image's pixels first"), status
    assert not (tmp_path / "run").exists()


def test_layers_with_the_same_scale_and_translate_train_as_before(finetune, qtbot, tmp_path):
    """A calibrated image and its labels (300 s, 0.65 um, shifted alike) lie on each other: they train."""
    viewer, widget = finetune
    for name in ("nuclei", "annotations"):
        viewer.layers[name].scale = (300, 0.65, 0.65)
        viewer.layers[name].translate = (0, 10.4, -3.25)
    train_and_wait(widget, qtbot)
    assert widget.status.text().startswith(f"done: weights in {tmp_path / 'run' / 'weights.pt'}")


# ---------------------------------------------------------------- 2. Cancel during the last step
def test_a_cancel_during_the_last_step_finishes_the_run_with_its_check(finetune, qtbot, tmp_path):
    """Cancel pressed while the run's last (here: only) step trains: the step was the last, so nothing is left to
    stop. The run used to end as "done" with no check on the user's frames (stopped_by "progress"); now it is
    finished as any run is: its check in the status and weights.json, and the status said the check was running
    (Cancel off meanwhile: it would stop nothing)."""
    viewer, widget = finetune
    seen: List[Any] = []
    widget._relay.step.connect(lambda step, row: seen.append((widget.status.text(), widget.cancel_button.isEnabled())))
    widget.train_button.click()
    widget.cancel_button.click()  # lands before the only step ends
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    metadata = json.loads((tmp_path / "run" / "weights.json").read_text())
    assert metadata["stopped_by"] == "steps" and metadata["steps"] == 1 and metadata["stack_check"]
    status = widget.status.text()
    assert status.startswith("done: weights in ") and "\ntracked IoU on the stack's first 4 frames" in status, status
    from napari_sam2._finetune import CHECKING

    assert seen == [(seen[0][0], False)] and seen[0][0].endswith(f"\n{CHECKING}")


def test_a_stop_asked_after_the_last_step_stops_nothing_in_train(tmp_path):
    """train(): progress returning False after the last step finishes the run (final check made, "steps"); before
    it, the run stops there as always (saved, no check, resumable)."""
    from sam2_model.synthetic import make_timelapse

    movie = make_timelapse(num_frames=4, shape=(64, 64), num_cells=3, seed=5, radius_fraction=0.12)
    common = dict(model="demo", image_size=64, clip_len=2, clips_per_step=1, max_objects=2, warmup_steps=1)
    train(TrainSettings(out=str(tmp_path / "last"), steps=2, **common), movie.image, movie.labels,
          progress=lambda step, row: step < 2)
    finished = json.loads((tmp_path / "last" / "weights.json").read_text())
    assert finished["stopped_by"] == "steps" and finished["steps"] == 2 and finished["stack_check"] is not None
    train(TrainSettings(out=str(tmp_path / "early"), steps=3, **common), movie.image, movie.labels,
          progress=lambda step, row: step < 2)
    stopped = json.loads((tmp_path / "early" / "weights.json").read_text())
    assert stopped["stopped_by"] == "progress" and stopped["steps"] == 2 and stopped["stack_check"] is None


# ---------------------------------------------------------------- 3. one run folder check, one wording
@pytest.fixture
def locked(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    with unwritable(folder):
        yield folder


def refusals(finetune, qtbot, folder) -> tuple:
    """(the widget's status after Train on ``folder``, train()'s ValueError on it as text)."""
    viewer, widget = finetune
    widget.out_edit.setText(str(folder))
    train_and_wait(widget, qtbot)
    with pytest.raises(ValueError) as refused:
        train(TrainSettings(out=str(folder), model="demo", image_size=64, clip_len=1, clips_per_step=1, steps=1))
    return widget.status.text(), str(refused.value)


def test_the_widget_and_train_refuse_a_run_folder_in_the_same_words(finetune, qtbot, tmp_path, locked):
    """The widget checked the run folder with its own function and words ("choose a folder"), train() with others;
    one function now, the widget's making nothing (a folder to be made: the nearest existing one above is tried)."""
    (tmp_path / "notes.txt").write_text("my notes")
    cases = {
        tmp_path / "notes.txt": f"the run folder {tmp_path / 'notes.txt'} is a file: give a folder for the run "
                                "(checkpoints, history, weights)",
        tmp_path / "notes.txt" / "run": f"{tmp_path / 'notes.txt'} (where the run folder "
                                        f"{tmp_path / 'notes.txt' / 'run'} would be made) is a file: give a folder "
                                        "for the run (checkpoints, history, weights)",
        locked: f"cannot write in the run folder {locked} (",
        locked / "a" / "run": f"cannot make the run folder {locked / 'a' / 'run'} (cannot write in {locked}: ",
    }
    for folder, words in cases.items():
        status, error = refusals(finetune, qtbot, folder)
        assert status == f"failed, nothing trained: {error}", folder
        assert error.startswith(words) and error.endswith(("weights)", "): choose a folder you can write to")), error
    assert (tmp_path / "notes.txt").read_text() == "my notes" and list(locked.iterdir()) == []


# ---------------------------------------------------------------- 4. the float-labels hint
def hint_viewer(make_napari_viewer, tmp_path, monkeypatch, *layers):
    """(viewer, widget): image layers ``layers`` ((name, data) pairs), no Labels layer, the fine-tuning widget."""
    from napari_sam2._finetune import FineTuneWidget

    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    viewer = make_napari_viewer()
    for name, data in layers:
        viewer.add_image(data, name=name)
    widget = FineTuneWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget


def camera_counts(shape, seed=0):
    """Whole-number photon counts saved as float32, as a camera's frames often are."""
    return np.random.default_rng(seed).poisson(100, size=shape).astype(np.float32)


def float_labels(num_frames=6, blank=0):
    """(T, 64, 64) float32 labels of three nuclei, the first ``blank`` frames unannotated (all 0)."""
    from sam2_model.synthetic import make_timelapse

    labels = make_timelapse(num_frames=num_frames, shape=(64, 64), num_cells=3, seed=7,
                            radius_fraction=0.12).labels.astype(np.float32)
    labels[:blank] = 0
    return labels


def test_camera_counts_saved_as_floats_get_no_labels_hint(make_napari_viewer, tmp_path, monkeypatch):
    """A float32 image of whole-number counts beside its uint16 original is no label image (it got the hint)."""
    counts = camera_counts((6, 64, 64))
    viewer, widget = hint_viewer(make_napari_viewer, tmp_path, monkeypatch, ("raw", counts.astype(np.uint16)),
                                 ("counts", counts))
    assert widget.status.text().startswith("Pick an image and its labels"), widget.status.text()


def test_float_labels_are_told_from_counts_and_found_past_a_blank_first_frame(make_napari_viewer, tmp_path,
                                                                              monkeypatch):
    """Float labels whose first frames are unannotated got no hint (frame 0 only was read); beside float camera
    counts the hint named the counts. Now it names the labels."""
    viewer, widget = hint_viewer(make_napari_viewer, tmp_path, monkeypatch, ("counts", camera_counts((6, 64, 64))),
                                 ("labels from Fiji", float_labels(blank=2)))
    assert widget.status.text().startswith("'labels from Fiji' looks like labels saved as floats"), \
        widget.status.text()


class Frames:
    """A lazy (T, Y, X) stack, as dask or zarr give: frames read one by one through indexing, each read counted; the
    whole stack is never to be read at once."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.read = data, []
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, index: Any) -> np.ndarray:
        assert isinstance(index, int), index
        self.read.append(index)
        return self.data[index]

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise AssertionError("the whole stack was read")


def test_the_hint_reads_at_most_three_frames_one_at_a_time():
    """First, middle and last frame at most; the first non-blank one decides; one (Y, X) image is read whole."""
    from napari_sam2._finetune import looks_like_float_labels

    blank_start = Frames(float_labels(num_frames=40, blank=30))
    assert looks_like_float_labels(blank_start) and blank_start.read == [0, 20, 39]
    counts = Frames(camera_counts((40, 64, 64)))
    assert not looks_like_float_labels(counts) and counts.read == [0]
    all_blank = Frames(np.zeros((40, 64, 64), np.float32))
    assert not looks_like_float_labels(all_blank) and all_blank.read == [0, 20, 39]
    assert looks_like_float_labels(float_labels()[3]) and not looks_like_float_labels(camera_counts((64, 64)))
    assert not looks_like_float_labels(float_labels()[3] + 0.5)  # not whole numbers
