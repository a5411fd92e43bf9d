"""Load session… with an official model that is not downloaded yet: the weights are downloaded in the model picker's
worker (its progress bar and Cancel download) before the load changes anything, then the session loads and its
prompts run once. The download is real but local: an official-shaped sam2.1_hiera_tiny checkpoint (random weights
whose object-score head always finds an object, so the masks are not empty) served by Python's http.server on
127.0.0.1 through NAPARI_SAM2_CHECKPOINT_URL, the registry expecting its hash, into an empty NAPARI_SAM2_CACHE."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

import local_mirror  # noqa: E402
from local_mirror import Mirror, expect_official  # noqa: E402
from napari_sam2.session_file import read_session, write_session  # noqa: E402
from sam2_model import checkpoints  # noqa: E402
from widget_helpers import click_cells, open_widget, small_movie, wait  # noqa: E402

TINY = "sam2.1_hiera_tiny"
loopback_only = local_mirror.loopback_only  # autouse: no test here can reach the internet


@pytest.fixture(scope="module")
def official_file(tmp_path_factory) -> Path:
    """A sam2.1_hiera_tiny checkpoint in the official file format ({"model": state_dict}, 156 MB; about a second to
    build and save on 2 cores): random weights, the object-score head biased to "an object is there"."""
    import torch

    import sam2_model as sm

    torch.manual_seed(0)
    state = sm.build_model(TINY, device="cpu").state_dict()
    state["sam_mask_decoder.pred_obj_score_head.layers.2.weight"].zero_()
    state["sam_mask_decoder.pred_obj_score_head.layers.2.bias"].fill_(10.0)
    path = tmp_path_factory.mktemp("served") / f"{TINY}.pt"
    torch.save({"model": state}, path)
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch, official_file) -> Path:
    """An empty download cache, the registry expecting ``official_file`` as the official tiny checkpoint."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(checkpoints.CACHE_ENV, str(folder))
    expect_official(monkeypatch, TINY, official_file.read_bytes())
    return folder


def serve(monkeypatch, official_file: Path, delay: float = 0.0) -> Mirror:
    """Serve ``official_file`` as NAPARI_SAM2_CHECKPOINT_URL (close the mirror when done)."""
    mirror = Mirror(official_file.parent, delay)
    monkeypatch.setenv(checkpoints.MIRROR_ENV, mirror.url)
    return mirror


@pytest.fixture
def saved(make_napari_viewer, tmp_path, monkeypatch, qtbot, cache):
    """(viewer, widget, session path): two cells clicked on frame 0 of a small movie with the demo model, and that
    session saved as if made with sam2.1_hiera_tiny ("cached or download"), whose file is not in the cache."""
    movie = small_movie(4, 5)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_cells(widget, qtbot, movie)
    monkeypatch.setattr("napari_sam2._session_files.show_error", lambda message: None)
    record = read_session(widget.save_session(str(tmp_path / "s")))
    record.model.update(name=TINY, weights="cached or download")
    return viewer, widget, write_session(tmp_path / "tiny.sam2.npz", record)


def press_load(widget, monkeypatch, path, answers=None) -> list:
    """Press Load session… with the file dialog answered ``path`` and each replace question answered from
    ``answers`` (True: Yes; default: Yes to all); returns the questions asked."""
    from qtpy.QtWidgets import QFileDialog, QMessageBox

    questions = []

    def question(parent, title, text, *args, **kwargs):
        questions.append(text)
        return QMessageBox.Yes if (answers.pop(0) if answers is not None else True) else QMessageBox.Cancel

    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    monkeypatch.setattr(QMessageBox, "question", question)
    widget.load_session_button.click()
    return questions


def on_first_progress(widget, action) -> None:
    """Do ``action()`` once, on the GUI thread, when the picker reports the first bytes of a download."""
    done = []

    def once(*_):
        if not done:
            done.append(True)
            action()

    widget.picker.download_progress.connect(once)


def count_runs(widget, monkeypatch) -> list:
    """Record every segmentation run the widget starts (its ``_run``)."""
    runs, real = [], widget._run

    def counted(*args, **kwargs):
        runs.append(args[2] if len(args) > 2 else "")
        return real(*args, **kwargs)

    monkeypatch.setattr(widget, "_run", counted)
    return runs


def shown(widget):
    """The clicks, the masks and the model choice, to compare before and after."""
    return np.array(widget.points_layer.data), widget.labels_layer.data.copy(), widget.picker.choice()


def test_a_session_of_a_model_not_downloaded_downloads_it_then_loads_and_runs_its_prompts_once(
        saved, qtbot, monkeypatch, official_file, cache):
    """The session was refused with a command to run first. Now Load session… downloads the weights with the picker's
    progress bar (nothing changes meanwhile, the Model and Weights menus held), then loads the session: the model is
    tiny, the prompts are run once (a device chosen during the download does not make a second re-run), masks appear."""
    viewer, widget, path = saved
    before = shown(widget)
    mirror = serve(monkeypatch, official_file, delay=0.01)
    runs = count_runs(widget, monkeypatch)
    seen = []
    widget.picker.download_progress.connect(lambda done, total: seen.append((done, total)))
    during = []
    on_first_progress(widget, lambda: (during.append((shown(widget), widget.busy(), widget.model_combo.isEnabled(),
                                                      not widget.picker.cancel_button.isHidden(),
                                                      widget.forward_button.isEnabled())),
                                       widget.picker.device_combo.setCurrentText("cpu")))
    try:
        assert press_load(widget, monkeypatch, path) == [
            "Replace the 2 object(s) on 'cells' with the session's? Their masks are discarded (Save session… keeps "
            "them)."]
        assert widget.status.text().startswith("Loading tiny.sam2.npz: downloading the weights of sam2.1_hiera_tiny")
        wait(qtbot, widget)
    finally:
        mirror.close()
    (points, labels, choice), busy, model_menu, cancel_shown, forward = during[0]
    np.testing.assert_array_equal(points, before[0])
    np.testing.assert_array_equal(labels, before[1])
    assert choice == before[2] and busy and not model_menu and cancel_shown and not forward
    assert seen[-1] == (official_file.stat().st_size,) * 2
    assert (cache / f"{TINY}.pt").read_bytes() == official_file.read_bytes()
    assert widget.picker.choice().name == TINY and widget.picker.choice().weights == "cached or download"
    assert widget.model_combo.isEnabled()
    assert widget.controller.obj_ids == [1, 2]
    assert {1, 2} <= set(np.unique(widget.labels_layer.data[0]))  # the session's prompts, segmented with tiny
    np.testing.assert_array_equal(widget.points_layer.data, before[0])
    qtbot.wait(300)  # a second re-run would start now
    wait(qtbot, widget)
    assert len(runs) == 1, runs
    assert widget.status.text().startswith("Done"), widget.status.text()


def test_cancel_download_during_a_session_load_changes_nothing(saved, qtbot, monkeypatch, official_file, cache):
    viewer, widget, path = saved
    before = shown(widget)
    mirror = serve(monkeypatch, official_file, delay=0.02)
    runs = count_runs(widget, monkeypatch)
    on_first_progress(widget, widget.picker.cancel_button.click)
    try:
        press_load(widget, monkeypatch, path)
        wait(qtbot, widget)
    finally:
        mirror.close()
    assert widget.status.text() == ("Not loaded (nothing changed): the download of sam2.1_hiera_tiny's weights for "
                                    "tiny.sam2.npz was cancelled."), widget.status.text()
    assert widget.picker.status.text() == "Download cancelled; nothing was saved."
    after = shown(widget)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2] == before[2] and widget.controller.obj_ids == [1, 2] and not runs
    assert not [p for p in cache.rglob("*") if p.is_file()]  # nothing half-written
    assert widget.model_combo.isEnabled() and widget.picker.cancel_button.isHidden()


def test_clicks_added_during_the_download_are_asked_about_again(saved, qtbot, monkeypatch, official_file, cache):
    """A click added while the weights download was not what the replace question was about: the question is asked
    again, about the 3 objects now. No: nothing is loaded ("Not loaded: …", then the status of the run that follows)
    and the new click is segmented (it waited for the download). Loading again (the file is in the cache now) asks once, loads at once and runs the prompts once."""
    from sam2_model.evaluation import click_point

    viewer, widget, path = saved
    cell = small_movie(4, 5).labels[0] == 3
    x, y = click_point(cell)

    def click_a_third_cell():
        widget.new_object_button.click()
        widget.points_layer.add(np.array([[0, y, x]]))

    mirror = serve(monkeypatch, official_file, delay=0.01)
    runs = count_runs(widget, monkeypatch)
    on_first_progress(widget, click_a_third_cell)
    try:
        questions = press_load(widget, monkeypatch, path, answers=[True, False])
        wait(qtbot, widget)
    finally:
        mirror.close()
    assert len(questions) == 2 and questions[1].startswith("Replace the 3 object(s) on 'cells'"), questions
    assert widget.picker.choice().name == "demo" and widget.controller.obj_ids == [1, 2, 3]  # the click, segmented
    assert len(runs) == 1 and (widget.labels_layer.data[0] == 3).any()
    assert press_load(widget, monkeypatch, path) == [questions[1]]
    wait(qtbot, widget)
    qtbot.wait(300)
    wait(qtbot, widget)
    assert widget.picker.choice().name == TINY and widget.controller.obj_ids == [1, 2]
    assert len(runs) == 2 and not (widget.labels_layer.data[0] == 3).any()


@pytest.mark.parametrize("meanwhile", ["removed", "another image picked"])
def test_a_load_whose_image_went_away_during_the_download_is_abandoned(saved, qtbot, monkeypatch, official_file,
                                                                        cache, meanwhile):
    viewer, widget, path = saved
    viewer.add_image(np.zeros((4, 96, 96), np.float32), name="other")
    widget.image_combo.setCurrentText("cells")
    if meanwhile == "removed":
        act = lambda: viewer.layers.remove("cells")  # noqa: E731
    else:
        act = lambda: widget.image_combo.setCurrentText("other")  # noqa: E731
    mirror = serve(monkeypatch, official_file, delay=0.01)
    runs = count_runs(widget, monkeypatch)
    on_first_progress(widget, act)
    try:
        press_load(widget, monkeypatch, path)
        wait(qtbot, widget)
    finally:
        mirror.close()
    status = widget.status.text()
    what = "removed" if meanwhile == "removed" else "no longer the image picked ('other' is)"
    assert status.startswith(f"Not loaded: tiny.sam2.npz was for the image 'cells', which was {what}"), status
    assert widget.picker.choice().name == "demo" and not runs
    assert widget.image_layer.name == "other" and len(widget.points_layer.data) == 0
