"""The widget says when frames the model ran on were blank (one value everywhere): the sessions warn, but a warning
raised in the worker thread reached no one, and the status said "Done" over masks of nothing."""

from __future__ import annotations

import pytest

from widget_helpers import click_cells, open_widget, small_movie, wait

pytest.importorskip("napari")


@pytest.mark.gui
def test_propagate_over_blank_frames_says_which_in_the_status(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    movie = small_movie(5, 11)
    image = movie.image.copy()
    image[3:] = 0  # the lamp went off: frames 3-4 are black
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", image))
    click_cells(widget, qtbot, movie, (1,))
    assert "blank" not in widget.status.text(), widget.status.text()  # frame 0 is a picture
    widget.forward_button.click()
    wait(qtbot, widget)
    status = widget.status.text()
    assert status.startswith("Done"), status
    assert "2 of the 5 frames tracked are blank (frames 3-4; frame 3: every pixel is 0)" in status, status
