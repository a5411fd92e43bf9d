"""Track all panel status lines found by a new user's hands-on use (E2), driven as a person does: real napari under
xvfb-run, the demo model, small synthetic time-lapses (96 x 96). Track all pressed while the model loads; the Done line
of a run on an image no longer shown; the Undo tracking step refusal."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from _helpers import small_movie_fixture
from napari_sam2.track_all import TrackAll
from widget_helpers import open_widget, track_all_panel, wait_tracking

FRAMES = 4
LOADING = "Loading the model… Track all starts when it is ready."
movie = small_movie_fixture(FRAMES, 11)


@pytest.mark.gui
def test_track_all_pressed_before_the_model_is_loaded_says_so_and_checks_the_options_at_once(track_all_dock, qtbot):
    """Fault (E2): pressed with the model not loaded yet, the panel said nothing for the load's seconds, and the
    options were read only once it was: a smallest cell above the largest, fixed meanwhile, tracked silently. Now the
    options are checked at the press (refused then, nothing loads) and the status says the run waits for the model;
    pressed again meanwhile, it still starts once."""
    viewer, widget, panel = track_all_dock
    panel.min_diameter_spin.setValue(50)
    panel.max_diameter_spin.setValue(20)
    panel.track_button.click()
    text = panel.status.text()
    assert text.startswith("Failed: Cell diameter: the largest cell (20 px"), text
    assert widget.picker.worker is None and panel.worker is None  # nothing loads, nothing runs
    panel.min_diameter_spin.setValue(6)  # fixed after the refusal: nothing starts by itself
    panel.max_diameter_spin.setValue(24)
    qtbot.wait(500)
    assert panel.worker is None and widget.labels_layer is None

    assert not widget.picker.is_ready()
    panel.track_button.click()
    assert panel.status.text() == LOADING, panel.status.text()
    panel.track_button.click()  # again while it loads: one run
    assert panel.status.text() == LOADING, panel.status.text()
    qtbot.waitUntil(lambda: widget.picker.is_ready() and panel.worker is None and not widget.busy(), timeout=120_000)
    assert panel.status.text().startswith("Done: frames 0-3"), panel.status.text()
    assert len(panel.current().tracking.history) == 1


@pytest.mark.gui
def test_a_model_that_does_not_load_says_track_all_did_not_start(track_all_dock, qtbot, monkeypatch):
    """A Track all waiting for a model whose load fails says so (it does not keep "Loading the model…"), and a press
    after that loads and tracks."""
    from napari_sam2 import _model_picker

    viewer, widget, panel = track_all_dock
    real, failing = _model_picker.load_model, [True]

    def load(*args, **kwargs):  # the first load fails as an unreadable weights file does
        if failing:
            raise OSError("the weights file is unreadable")
        return real(*args, **kwargs)

    monkeypatch.setattr(_model_picker, "load_model", load)
    monkeypatch.setattr(_model_picker, "show_error", lambda message: None)
    panel.track_button.click()
    assert panel.status.text() == LOADING
    qtbot.waitUntil(lambda: panel.status.text() != LOADING, timeout=60_000)
    assert panel.status.text() == ("Not tracked: the model is not loaded (Could not load the model: the weights file "
                                   "is unreadable)."), panel.status.text()
    failing.clear()
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert panel.status.text().startswith("Done: frames 0-3"), panel.status.text()


@pytest.mark.gui
def test_the_done_line_names_the_image_tracked_when_another_one_is_shown(make_napari_viewer, tmp_path, monkeypatch,
                                                                         movie, qtbot):
    """Fault (E2): the person picks another image while Track all runs; its "Done: frames 0-3, …" did not say which
    image it tracked. Now "Done on 'cells': …" (and the widget's status line too). The run is held inside frame 0
    until the other image is picked, so nothing depends on timing."""
    real = TrackAll.track
    picked = threading.Event()

    def held(self, *args, **kwargs):
        for step in real(self, *args, **kwargs):
            yield step
            if step[0] == "work":
                assert picked.wait(60), "the other image was not picked"

    monkeypatch.setattr(TrackAll, "track", held)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image),
                                 ("other", movie.image[:, ::-1].copy()))
    widget.image_combo.setCurrentText("cells")
    panel = track_all_panel(widget)
    panel.track_button.click()
    qtbot.waitUntil(lambda: panel.status.text().startswith("Tracking frame 0:"), timeout=120_000)
    widget.image_combo.setCurrentText("other")
    picked.set()
    wait_tracking(qtbot, widget)
    text = panel.status.text()
    assert text.startswith("Done on 'cells': frames 0-3, "), text
    assert widget.status.text() == f"Track all cells: {text}", widget.status.text()

    widget.image_combo.setCurrentText("cells")  # the image shown is the one tracked: not named
    panel.undo_button.click()
    panel.track_button.click()
    picked.set()
    wait_tracking(qtbot, widget)
    assert panel.status.text().startswith("Done: frames 0-3, "), panel.status.text()


@pytest.mark.gui
def test_the_undo_refusal_names_each_edited_frame_once(track_all_dock, qtbot, monkeypatch):
    """Fault (E2): "frame 3 was edited after this tracking step (frame 3 was changed by hand or another tool (…))": the
    frame and the edit twice, brackets in brackets. Now one sentence names the frame once, who changed it and what
    reverts that (as the widget's own Undo refusal does)."""
    viewer, widget, panel = track_all_dock
    monkeypatch.setattr("napari_sam2._track_all_panel.show_warning", lambda message: None)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    layer = widget.labels_layer
    before = layer.data.copy()
    viewer.dims.set_current_step(0, 3)
    layer.selected_label = 80
    layer.brush_size = 5
    layer.mode = "paint"
    layer.paint((3, 5, 5), 80)  # the person paints on frame 3
    panel.undo_button.click()
    assert panel.status.text() == (
        "Nothing was undone, as frames were edited after this tracking step: frame 3 was changed by hand or another "
        "tool (the masklets layer's own undo, Ctrl+Z, reverts painting); revert that first, then press 'Undo tracking "
        "step' again (an undo never throws a later change away silently)."), panel.status.text()
    assert (layer.data == 80).any()
    layer.undo()  # Ctrl+Z: then the tracking step undoes
    np.testing.assert_array_equal(layer.data, before)
    panel.undo_button.click()
    assert panel.status.text().startswith("Undid the tracking run"), panel.status.text()
    assert not layer.data.any()
