"""The Track all panel names the seeding's counts while a frame is detected (s53 F2): "seeds placed" and "cells
found", not only the share of the frame's work (real demo model; real napari under xvfb-run)."""

from __future__ import annotations

import pytest

from widget_helpers import open_widget, small_movie, track_all_panel, wait_tracking


@pytest.mark.gui
def test_the_status_names_seeds_placed_and_cells_found(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Fault: the status line read "Tracking frame 0: 23% of its work done…" for minutes on a crowded frame. Now it
    also says the stage's counts, e.g. "(seeding: 2/3 seeds placed, 1 cell found)", and the time left once known."""
    movie = small_movie(2, 11)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(widget)
    seen = []  # every text the panel's status line is given
    set_text = panel.status.setText
    panel.status.setText = lambda text: (seen.append(text), set_text(text))[1]  # (the panel's own calls pass here)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    seeding = [text for text in seen if text.startswith("Tracking frame 0: ") and "(seeding: " in text]
    assert seeding and all(" seeds placed, " in text and (" found)" in text or " left)" in text)
                           for text in seeding), seen
    assert any(" left)" in text for text in seen if text.startswith("Tracking frame ")), seen
    assert panel.status.text().startswith("Done"), panel.status.text()


@pytest.mark.gui
def test_the_status_says_the_words_of_the_step_shown(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Fault (s53 R2-3): a relayed step's share was said with the words of whatever the worker was on when the GUI
    thread got to it: another frame's, or none once the frame was written. Here the GUI thread is held busy until the
    run has ended, as a slow redraw would hold it: each "Tracking frame 0: ...%" line shown then still names that
    step's seeding counts."""
    import inspect
    import time

    movie = small_movie(2, 11)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(widget)
    seen = []
    set_text = panel.status.setText
    panel.status.setText = lambda text: (seen.append(text), set_text(text))[1]
    panel.track_button.click()
    qtbot.waitUntil(lambda: panel._steps is not None and inspect.getgeneratorstate(panel._steps) != inspect.GEN_CREATED,
                    timeout=120_000)  # the model loaded and the run's worker on its first step
    steps, deadline = panel._steps, time.monotonic() + 300
    while inspect.getgeneratorstate(steps) != inspect.GEN_CLOSED:  # the GUI thread busy until the run's steps ended
        assert time.monotonic() < deadline, "the run did not end in 5 min"
        time.sleep(0.05)
    wait_tracking(qtbot, widget)
    seeding = [text for text in seen if text.startswith("Tracking frame 0: ") and "(seeding: " in text]
    assert seeding and all(" seeds placed" in text for text in seeding), seen
    assert panel.status.text().startswith("Done"), panel.status.text()
