"""The segmentation widget's life in a viewer: closing the viewer lets go of the sessions (and their prefetch threads),
one widget per viewer, Cancel said once, buttons that refuse before a dialog, status words that fit what happened."""

from __future__ import annotations

import gc
import threading
import weakref

from typing import Any, List

import pytest

from widget_helpers import (
    WIDGET, click_and_propagate, open_widget, propagating, small_movie, track_all_panel, wait, wait_tracking,
)

pytest.importorskip("napari")


def _prefetch_threads() -> set:
    """The frame-prefetch threads alive now (by object: an earlier test's may end during this one)."""
    return {t for t in threading.enumerate() if t.name.startswith("sam2-frame-prefetch")}


def test_closing_the_viewer_frees_the_sessions(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """After a click and a Propagate, closing the viewer closes the image's session: no controller or session stays
    alive once collected, and its frame-prefetch thread ends (napari keeps the window's workers, and they kept the
    widget, its sessions and their threads: +1 thread and ~60 MiB per viewer closed)."""
    threads = _prefetch_threads()
    movie = small_movie(6, 3)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(widget, qtbot, movie, (1,))
    controller = weakref.ref(widget.controller)
    session = weakref.ref(widget.controller.session)
    ours = _prefetch_threads() - threads
    assert len(ours) == 1
    viewer.close()
    qtbot.wait(200)  # the window is deleted at the next turn of the event loop
    del widget
    gc.collect()
    assert controller() is None and session() is None
    qtbot.waitUntil(lambda: not any(t.is_alive() for t in ours), timeout=10_000)


def test_closing_the_viewer_mid_run_frees_the_sessions(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Closed while Propagate runs: the run stops, then the session is closed and let go of."""
    threads = _prefetch_threads()
    viewer, widget, _ = propagating(make_napari_viewer, tmp_path, monkeypatch, qtbot, 30, 4)
    controller = weakref.ref(widget.controller)
    worker = weakref.ref(widget.worker)  # (napari keeps it)
    ours = _prefetch_threads() - threads
    assert len(ours) == 1
    viewer.close()
    qtbot.waitUntil(lambda: worker() is None or not worker().is_running, timeout=60_000)
    qtbot.wait(200)
    del widget
    gc.collect()
    assert controller() is None
    qtbot.waitUntil(lambda: not any(t.is_alive() for t in ours), timeout=10_000)


def test_dock_closed_and_reopened_keeps_working(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Closing the dock (not the viewer) releases nothing the next widget needs: reopened, it picks up the layers and
    propagates again."""
    movie = small_movie(4, 5)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(widget, qtbot, movie, (1,))
    viewer.window.remove_dock_widget(widget)
    qtbot.wait(100)
    assert widget.controller is not None  # a script's widget keeps its sessions readable
    _, again = viewer.window.add_plugin_dock_widget(*WIDGET)
    again.forward_button.click()
    wait(qtbot, again)
    assert again.status.text().startswith("Done"), again.status.text()


def test_second_widget_on_a_viewer_is_refused(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """A second SegmentationWidget on a viewer that has one open is refused (it took the first's layers, and both
    segmented each click); get_widget returns the open one; once the first's dock is closed, a new one opens."""
    from napari_sam2 import get_widget
    from napari_sam2._widget import SegmentationWidget

    movie = small_movie(3, 5)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    with pytest.raises(ValueError, match="has a SAM 2 segmentation widget open already"):
        SegmentationWidget(viewer)
    assert widget.points_layer in viewer.layers  # the first keeps its layers
    assert get_widget(viewer) is widget
    viewer.window.remove_dock_widget(widget)
    qtbot.wait(50)
    second = SegmentationWidget(viewer)
    viewer.window.add_dock_widget(second)
    assert get_widget(viewer) is second


def _notifications(monkeypatch: Any) -> List[str]:
    said: List[str] = []
    monkeypatch.setattr("napari_sam2._runs.show_info", said.append)
    return said


def test_cancel_is_said_once(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Cancel pressed during Propagate goes off at once (a second press gave a second identical notification), also
    when the buttons are refreshed meanwhile (an axis or option edited), and the run ends Cancelled."""
    viewer, widget, _ = propagating(make_napari_viewer, tmp_path, monkeypatch, qtbot, 30, 4)
    said = _notifications(monkeypatch)
    widget.cancel_button.click()
    widget.refresh_run_buttons()
    assert not widget.cancel_button.isEnabled()
    widget.cancel_button.click()
    wait(qtbot, widget)
    assert len([s for s in said if "cancelled" in s]) == 1, said
    assert widget.status.text().startswith("Cancelled"), widget.status.text()


def test_other_runs_refuse_before_their_dialogs(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """During Propagate, Track all's buttons are off (pressed, they left a "Busy" line that stayed after the run);
    Load session… and Export labels… say "wait" before any file dialog opens (they opened it, then refused)."""
    from qtpy.QtWidgets import QFileDialog

    asked: List[str] = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (asked.append("open"), ("", ""))[1])
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (asked.append("save"), ("", ""))[1])
    viewer, widget, _ = propagating(make_napari_viewer, tmp_path, monkeypatch, qtbot, 30, 4)
    panel = track_all_panel(widget)
    assert not panel.track_button.isEnabled() and not panel.undo_button.isEnabled()
    assert not any(b.isEnabled() for b in panel.export_buttons.values())
    panel.undo()  # what a script can still do: refused
    assert panel.status.text().startswith("Busy")
    widget.load_session_button.click()
    assert widget.status.text().startswith("Not loaded: wait for the run in progress"), widget.status.text()
    widget.export_labels_button.click()
    assert widget.status.text().startswith("Busy: wait for the run in progress"), widget.status.text()
    assert asked == []
    wait(qtbot, widget)
    assert panel.track_button.isEnabled() and panel.undo_button.isEnabled()
    assert not panel.status.text().startswith("Busy"), panel.status.text()


def test_undo_tracking_step_updates_the_widget_status(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """After 'Undo tracking step' the widget's status no longer reads the undone run's "Done"."""
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", small_movie(4, 11).image))
    panel = track_all_panel(widget)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert widget.status.text().startswith("Track all cells: Done"), widget.status.text()
    panel.undo_button.click()
    assert panel.status.text().startswith("Undid the tracking run")
    assert widget.status.text() == f"Track all cells: {panel.status.text()}"


def test_load_stopped_by_removing_its_image_says_nothing_to_segment(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """A Load session whose image is removed during its re-run stops, and its note says the saved masklets were not put
    back: it told to press 'Segment current frame' on an image that is gone."""
    from widget_helpers import centre

    movie = small_movie(8, 5)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    widget.points_layer.add([[t, *centre(movie.labels[t], 1)] for t in range(0, 8, 2)])
    wait(qtbot, widget)
    widget.forward_button.click()
    wait(qtbot, widget)
    saved = widget.save_session(str(tmp_path / "s"))
    removed = []

    def remove_once(step: Any) -> None:  # the replay's first step is in: the image goes
        if not removed and "cells" in viewer.layers:
            removed.append(step)
            viewer.layers.remove("cells")

    assert widget.load_session(str(saved), confirm=lambda question: True) is True
    qtbot.waitUntil(lambda: widget.worker is not None, timeout=60_000)
    widget.worker.yielded.connect(remove_once)
    wait(qtbot, widget)
    status = widget.status.text()
    assert removed and status.startswith("Stopped: the image 'cells' was removed"), status
    assert "were not put back (the image was removed)" in status and "Segment current frame" not in status, status
