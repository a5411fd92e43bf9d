"""The widget on one 2-D image, (Y, X) or a (1, Y, X) stack, speaks of one image: the controls that act across
frames are off and say why, the statuses name cells rather than frames, tracks and divisions, no lineage Tracks layer
is added, and picking a stack turns everything back on."""

from __future__ import annotations

from typing import Any, List

import numpy as np
import pytest

from napari_sam2._runs import ONE_IMAGE_TIP
from widget_helpers import centre, open_widget, small_movie, track_all_panel, wait, wait_tracking

pytestmark = pytest.mark.filterwarnings("ignore")


def frame_controls(widget: Any) -> List[Any]:
    """The controls that only mean something across frames (the widget's and the Track all panel's)."""
    panel = widget.track_all
    return [widget.forward_button, widget.backward_button, widget.both_button, widget.frames_spin,
            widget.corrections_check, widget.forget_check, widget.tracks_button, widget.objects.check_button,
            panel.redetect_spin, panel.divisions_check, panel.export_buttons["tracks"]]


def assert_one_image(widget: Any) -> None:
    """Every frame-only control off, its tooltip saying why; Re-segment without 'propagate'."""
    for control in frame_controls(widget):
        assert not control.isEnabled(), control
        tip = control.toolTip()
        assert "nothing to propagate" in tip, (control, tip)
    for control in frame_controls(widget)[4:]:
        assert control.toolTip().endswith(ONE_IMAGE_TIP), control.toolTip()
    assert "propagate" not in widget.track_all.repropagate_button.text().lower()
    assert widget.track_all.track_button.isEnabled()  # Track all itself segments every cell of the image


def pick_stack_and_check(viewer: Any, widget: Any, qtbot: Any) -> None:
    """Pick a (T, Y, X) stack: every frame-only control is on again, tooltips without the one-image reason."""
    viewer.add_image(small_movie(3, 5).image, name="stack")
    widget.image_combo.setCurrentText("stack")
    qtbot.wait(50)  # (the panel's Divisions refresh runs on the next event loop turn)
    for control in frame_controls(widget):
        assert control.isEnabled(), control
        assert ONE_IMAGE_TIP not in control.toolTip(), control
    assert "propagate" in widget.track_all.repropagate_button.text().lower()


def test_yx_image_speaks_of_one_image(make_napari_viewer: Any, tmp_path: Any, monkeypatch: Any, qtbot: Any) -> None:
    movie = small_movie(1, 11)
    plane = movie.image[0]
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("one", plane))
    widget.image_combo.setCurrentText("one")
    panel = track_all_panel(widget)
    qtbot.wait(50)
    assert_one_image(widget)

    widget.points_layer.add(np.array([centre(movie.labels[0], 1)]))  # a click on cell 1
    wait(qtbot, widget)
    assert widget.status.text().startswith("Done"), widget.status.text()
    assert "propagate" not in widget.status.text().lower()
    widget.segment_button.click()  # nothing new: no "or propagate" hint
    wait(qtbot, widget)
    assert widget.status.text().startswith("Nothing new to segment"), widget.status.text()
    assert "propagate" not in widget.status.text().lower(), widget.status.text()
    assert_one_image(widget)  # still off after a run

    panel.track_button.click()  # Track all: every cell of the image
    wait_tracking(qtbot, widget)
    words = panel.status.text()
    assert words.startswith("Done: 3 cell(s)."), words
    for frame_word in ("frame", "track(s)", "division"):
        assert frame_word not in words, words
    assert not any(layer._type_string == "tracks" for layer in viewer.layers)  # no lineage layer for one image
    assert_one_image(widget)

    pick_stack_and_check(viewer, widget, qtbot)


def test_one_frame_stack_is_one_image(make_napari_viewer: Any, tmp_path: Any, monkeypatch: Any, qtbot: Any) -> None:
    movie = small_movie(1, 11)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("one", movie.image))  # (1, Y, X)
    widget.image_combo.setCurrentText("one")
    track_all_panel(widget)
    qtbot.wait(50)
    assert_one_image(widget)

    widget.points_layer.add(np.array([[0, *centre(movie.labels[0], 1)]]))
    wait(qtbot, widget)
    assert widget.status.text().startswith("Done"), widget.status.text()
    assert "propagate" not in widget.status.text().lower(), widget.status.text()
    assert_one_image(widget)

    pick_stack_and_check(viewer, widget, qtbot)
