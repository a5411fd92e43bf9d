"""A closed viewer is freed: after a click, a Propagate and a Track all run, closing the viewer lets go of the Viewer,
its masklets layer and the layer's data, and of the widget (napari keeps every worker it made in its window's task
list for good, and the worker's slots kept the widget, which holds the viewer: ~+400 MiB per viewer closed); runs
still work in a viewer opened after one was closed."""

from __future__ import annotations

import gc
import weakref
from typing import Any, Dict

import pytest

from widget_helpers import click_and_propagate, open_widget, small_movie, track_all_panel, wait_tracking

pytest.importorskip("napari")


def _all_freed(refs: Dict[str, "weakref.ref[Any]"]) -> bool:
    """After the Qt objects deleted later are deleted and a collection: whether every one of ``refs`` died."""
    from qtpy.QtCore import QCoreApplication, QEvent

    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()
    return all(ref() is None for ref in refs.values())


def _run_and_close(make_napari_viewer: Any, tmp_path: Any, monkeypatch: Any, qtbot: Any,
                   seed: int) -> Dict[str, "weakref.ref[Any]"]:
    """Open a viewer with a small movie, click one cell and propagate, run Track all, close the viewer; weak
    references to the Viewer, the widget, its masklets layer and that layer's data."""
    movie = small_movie(6, seed)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(widget, qtbot, movie, (1,))
    panel = track_all_panel(widget)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert panel.status.text().startswith("Done"), panel.status.text()
    refs = {"viewer": weakref.ref(viewer), "widget": weakref.ref(widget), "masklets": weakref.ref(widget.labels_layer),
            "masklets data": weakref.ref(widget.labels_layer.data)}
    viewer.close()
    del viewer, widget, panel
    return refs


@pytest.mark.gui
def test_a_closed_viewer_its_layers_and_the_widget_are_freed(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """After Propagate and Track all, closing the viewer frees the Viewer, the widget and the masklets layer with its
    data (they stayed alive for good: the finished workers' slots, held by napari, kept the widget)."""
    refs = _run_and_close(make_napari_viewer, tmp_path, monkeypatch, qtbot, 3)
    try:
        qtbot.waitUntil(lambda: _all_freed(refs), timeout=10_000)
    except Exception:
        pytest.fail(f"still alive after the viewer was closed: {[k for k, r in refs.items() if r() is not None]}")


@pytest.mark.gui
def test_runs_work_in_a_viewer_opened_after_one_was_closed(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """A second viewer, opened once the first was closed and freed, propagates and tracks as the first did."""
    refs = _run_and_close(make_napari_viewer, tmp_path, monkeypatch, qtbot, 3)
    qtbot.waitUntil(lambda: _all_freed(refs), timeout=10_000)
    again = _run_and_close(make_napari_viewer, tmp_path, monkeypatch, qtbot, 5)  # asserts "Done" on both runs
    qtbot.waitUntil(lambda: _all_freed(again), timeout=10_000)
