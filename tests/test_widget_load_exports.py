"""Load session, "Track all cells" and the exports never make napari's GUI thread wait on the stack, and never leave
the widget on a slice with nothing to propagate: driven as a person would (a real viewer, the widget from the
manifest with the demo model's embedded weights, prompts added to the layers, buttons pressed, file dialogs answered,
workers awaited)."""

from __future__ import annotations

import csv
import threading

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

import sam2_model.frames as frames_module  # noqa: E402
import tifffile  # noqa: E402
from sam2_model.evaluation import click_point  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402
from widget_helpers import open_widget, wait  # noqa: E402

import napari_sam2.export as export_module  # noqa: E402
from napari_sam2._image_state import slice_key  # noqa: E402

FRAMES = 4


@pytest.fixture(scope="module")
def movie():
    return make_timelapse(num_frames=FRAMES, shape=(64, 64), num_cells=3, seed=3, divisions=False, enter_leave=False,
                          radius_fraction=0.15)


def on_gui_thread(monkeypatch, module, name: str) -> list:
    """Record, for every call of ``module.name``, whether it ran on the GUI (main) thread."""
    calls, real = [], getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


def test_propagate_right_after_load_session_acts_on_the_loaded_slice_while_another_z_is_shown(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    """(T, Z, Y, X), propagated along T: a click on z=1 saved, then loaded while z=0 is shown. The load re-ran the
    click on z=1 but left an empty session on z=0 as the one acted on, so Propagate said "Nothing to propagate yet".
    Now the loaded slice's session is the one last worked on: Propagate runs there (the slider stays on z=0)."""
    stack = np.stack([movie.image, movie.image], axis=1)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("tz", stack))
    viewer.dims.set_current_step(0, 0)
    viewer.dims.set_current_step(1, 1)
    x, y = click_point(movie.labels[0] == 1)
    w.points_layer.add(np.array([[0, 1, y, x]], float))
    wait(qtbot, w)
    path = w.save_session(str(tmp_path / "tz"))

    viewer.dims.set_current_step(1, 0)
    w.load_session(str(path))
    qtbot.waitUntil(lambda: not w.busy() and (w.labels_layer.data[0, 1] == 1).any(), timeout=120_000)
    wait(qtbot, w)
    state = w.states[w.image_layer.unique_id]
    assert [key[1] for key in state.sessions] == [((1, 1),)]  # no empty session on the slice shown

    w.both_button.click()
    wait(qtbot, w)
    status = w.status.text()
    assert "Nothing to propagate" not in status and status.startswith("Done on"), status
    labels = w.labels_layer.data
    assert all((labels[t, 1] == 1).any() for t in range(FRAMES)), "propagated through every frame of z=1"
    assert not labels[:, 0].any()
    assert viewer.dims.current_step[1] == 0  # the slider stays where the user put it
    assert slice_key(w.controller.layout) == slice_key(next(iter(state.sessions.values())).layout)


def test_export_buttons_read_and_write_in_a_worker_with_progress_whole_files(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    """Export table measured every frame (image and labels) and Export labels wrote the TIFF on the GUI thread; now
    both run in a worker: the widget is busy meanwhile (run and export buttons disabled), the progress bar ends full
    and the files are what the console's export writes."""
    stack = movie.image.astype(np.float32) * 3.5 + 100.0
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", stack))
    x, y = click_point(movie.labels[0] == 1)
    w.points_layer.add(np.array([[0, y, x]], float))
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    expected_table = w.export("table", str(tmp_path / "console.csv"))  # the console's export, on this thread
    measured = on_gui_thread(monkeypatch, export_module, "regionprops_table")
    written = on_gui_thread(monkeypatch, tifffile, "imwrite")
    out = tmp_path / "out"
    out.mkdir()
    answers = iter([str(out / "table"), str(out / "labels")])
    monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getSaveFileName", lambda *a, **k: (next(answers), ""))

    for button, name in ((w.export_table_button, "table.csv"), (w.export_labels_button, "labels.tif")):
        button.click()
        assert w.busy() and not w.export_table_button.isEnabled() and not w.export_labels_button.isEnabled()
        assert not w.forward_button.isEnabled() and w.cancel_button.isEnabled()
        assert w.exporting()  # what Cancel says it stops: an export (nothing written), not a run (frames kept)
        wait(qtbot, w)
        assert not w.exporting()
        assert w.status.text() == f"Wrote {out / name}", w.status.text()
        assert w.progress.value() == w.progress.maximum() > 0
        assert w.export_table_button.isEnabled() and w.forward_button.isEnabled()
    assert measured and not any(measured), "the table was measured on the GUI thread"
    assert written and not any(written), "the labels TIFF was written on the GUI thread"
    with open(out / "table.csv") as mine, open(expected_table) as theirs:
        assert list(csv.DictReader(mine)) == list(csv.DictReader(theirs))
    np.testing.assert_array_equal(tifffile.imread(out / "labels.tif"), w.labels_layer.data)
    assert sorted(p.name for p in out.iterdir()) == ["labels.tif", "table.csv"]  # no temporary file left


def test_track_all_reads_the_contrast_sample_in_its_worker(make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    """Track all on a float stack the widget never segmented: its reader's contrast sample (up to 16 frames) and the
    widget's controller's session were read on the GUI thread when the button was pressed; now in the run's worker."""
    stack = movie.image.astype(np.float32) * 3.5 + 100.0
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", stack))
    panel = w.track_all
    panel.expand(animate=False)
    panel.min_diameter_spin.setValue(6)
    panel.max_diameter_spin.setValue(30)
    panel.divisions_check.setChecked(False)
    sampled = on_gui_thread(monkeypatch, frames_module, "percentile_limits")
    viewer.dims.set_current_step(0, 0)  # from frame 0 (on napari's middle frame 'Track all' asks where to start)
    panel.track_button.click()
    qtbot.waitUntil(lambda: panel.worker is None and not w.busy(), timeout=120_000)
    assert panel.status.text().startswith("Done"), panel.status.text()
    assert sampled and not any(sampled), "the contrast sample was read on the GUI thread"
    assert not w.controller.is_open  # Track all does not open the widget's own session
    assert w.labels_layer.data.any()


def test_load_session_reads_its_weights_file_in_the_pickers_worker(make_napari_viewer, tmp_path, monkeypatch, qtbot,
                                                                   movie):
    """A session saved with a fine-tuned weights file: Load session read and identified the whole file on the GUI
    thread (1.5-3 s for an official-sized one, napari frozen). Now the model picker's worker reads it: load_session
    returns at once, nothing changed yet and the widget busy; then the load completes as before (the file's weights,
    the prompts run once)."""
    import shutil

    import napari_sam2._model_choice as choice_module
    from sam2_model.build import embedded_weights_path

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    x, y = click_point(movie.labels[0] == 1)
    w.points_layer.add(np.array([[0, y, x]], float))
    wait(qtbot, w)
    mine = tmp_path / "mine.pt"
    shutil.copy(embedded_weights_path(), mine)
    w.set_checkpoint_file(str(mine))
    qtbot.wait(50)  # the re-run the weights change asks for starts
    wait(qtbot, w)
    path = w.save_session(str(tmp_path / "tuned"))
    w.checkpoint_combo.setCurrentText("embedded (demo)")
    qtbot.wait(50)
    wait(qtbot, w)
    w.points_layer.data = np.zeros((0, 3))  # nothing on the image: no question
    wait(qtbot, w)
    read = on_gui_thread(monkeypatch, choice_module, "preset_of_file")
    runs, run = [], w._run
    monkeypatch.setattr(w, "_run", lambda *a, **k: (runs.append(a), run(*a, **k))[1])

    assert w.load_session(str(path)) is True
    assert w.busy() and w.picker.choice().weights == "embedded (demo)" and len(w.points_layer.data) == 0
    assert w.status.text().startswith(f"Loading tuned.sam2.npz: reading its weights file {mine} first")
    wait(qtbot, w)
    qtbot.wait(200)
    wait(qtbot, w)
    assert read == [False], "the session's weights file was read on the GUI thread"
    assert w.picker.choice().weights == "local file…" and w.picker.choice().path == str(mine)
    assert w.controller.obj_ids == [1] and (w.labels_layer.data[0] == 1).any() and len(runs) == 1
