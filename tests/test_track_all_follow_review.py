"""Track all follows hand edits after runs and undos, driven as a person does (real napari under xvfb-run, the demo
model, a small synthetic time-lapse): napari's Ctrl+Z of an earlier stroke on a frame a run or Undo did not write is
followed; moving the slider after strokes queues no check; a Tracks layer asked for on two images is derived for
both; a frame's progress reaches the GUI thread at most once per percent of its work."""

from __future__ import annotations

import numpy as np
import pytest

from _helpers import small_movie_fixture
from napari_sam2.track_all import WORK_STEP, WORK_TOTAL, thin_work
from widget_helpers import open_widget, small_movie, track_all_panel, wait_tracking

FRAMES = 5
movie = small_movie_fixture(FRAMES, 11)


def settled(panel) -> bool:
    """The follow worker is idle and nothing is pending (no follow, no Tracks layer to derive)."""
    return (panel.follow_worker is None and not panel._follow_timer.isActive() and not panel._follow_pending
            and not panel._derive_pending)


def track(qtbot, widget, panel) -> None:
    panel.track_button.click()
    wait_tracking(qtbot, widget, 180_000)
    assert panel.status.text().startswith("Done"), panel.status.text()


def drawn(entry) -> set:
    """{(track, frame)} the image's Tracks layer draws."""
    return {(int(i), int(t)) for i, t in entry.tracks.data[:, :2]}


def held(labels: np.ndarray) -> set:
    """{(id, frame)} of every id > 0 of (T, H, W) labels."""
    return {(int(i), t) for t, plane in enumerate(labels) for i in np.unique(plane) if i}


def erase(viewer, layer, cell: int, frame: int) -> None:
    """The person shows ``frame`` and fills ``cell`` there with background (the fill tool, label 0)."""
    viewer.dims.set_current_step(0, frame)
    layer.fill((frame, *(int(v) for v in np.argwhere(layer.data[frame] == cell)[0])), 0)


def whole_cell(tracking) -> int:
    """A track on every frame."""
    return next(row.track_id for row in tracking.lineage.rows() if row.begin == 0 and row.end == FRAMES - 1)


def tracked_movie(make_napari_viewer, tmp_path, monkeypatch, movie, qtbot):
    """(viewer, widget, panel, masklets layer, the image's tracking entry, a cell tracked on every frame) after Track
    all on ``movie``."""
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(widget)
    track(qtbot, widget, panel)
    entry = panel.current()
    return viewer, widget, panel, widget.labels_layer, entry, whole_cell(entry.tracking)


@pytest.mark.gui
def test_ctrl_z_of_a_stroke_on_a_frame_a_run_or_undo_did_not_write_is_followed(make_napari_viewer, tmp_path,
                                                                              monkeypatch, movie, qtbot):
    """Fault: the end of a run and Undo forgot the checksums of every frame, not only of those they wrote; napari's
    Ctrl+Z of an earlier stroke on another frame (during a run from a later frame, or just after Undo) then read as
    "what the frame holds is what the lineage follows" and the lineage and Tracks layer kept the erased cell out."""
    viewer, widget, panel, layer, entry, cell = tracked_movie(make_napari_viewer, tmp_path, monkeypatch, movie, qtbot)
    tracking = entry.tracking
    erase(viewer, layer, cell, 0)
    qtbot.waitUntil(lambda: settled(panel) and tracking.lineage[cell].begin == 1, timeout=30_000)

    viewer.dims.set_current_step(0, 3)
    panel.track_button.click()  # Track all from frame 3: it writes frames 3 and 4 only
    layer.undo()  # meanwhile the person's Ctrl+Z: the cell is back on frame 0
    assert (layer.data[0] == cell).any()
    wait_tracking(qtbot, widget, 180_000)
    assert sorted(set(tracking.history[-1].frames)) == [3, 4], tracking.history[-1].frames
    qtbot.waitUntil(lambda: settled(panel) and drawn(entry) == held(layer.data), timeout=30_000)
    assert tracking.lineage[cell].begin == 0 and (cell, 0) in drawn(entry)

    erase(viewer, layer, cell, 0)  # again; then 'Undo tracking step' (frames 3 and 4) and at once Ctrl+Z
    qtbot.waitUntil(lambda: settled(panel) and tracking.lineage[cell].begin == 1, timeout=30_000)
    viewer.dims.set_current_step(0, 3)
    panel.undo_button.click()
    assert panel.status.text().startswith("Undid the tracking run: 2 frame(s)"), panel.status.text()
    layer.undo()
    qtbot.waitUntil(lambda: settled(panel) and drawn(entry) == held(layer.data), timeout=30_000)
    assert tracking.lineage[cell].begin == 0 and (cell, 0) in drawn(entry)


@pytest.mark.gui
def test_moving_the_slider_after_strokes_queues_no_check_and_ctrl_z_is_still_followed(make_napari_viewer, tmp_path,
                                                                                     monkeypatch, movie, qtbot):
    """Fault: after any stroke every redraw, each slider move included, queued a check of every stroked frame in the
    follow worker. Now only a redraw that shows the frame the last one showed (napari's Ctrl+Z / Ctrl+Shift+Z redraws
    in place) does; a stroke undone on a frame not shown is still followed at once."""
    viewer, widget, panel, layer, entry, cell = tracked_movie(make_napari_viewer, tmp_path, monkeypatch, movie, qtbot)
    tracking = entry.tracking
    last = FRAMES - 1
    erase(viewer, layer, cell, last)
    qtbot.waitUntil(lambda: settled(panel) and tracking.lineage[cell].end == last - 1, timeout=30_000)

    for t in (3, 2, 1, 0, 1, 0):  # the person scrubs the slider
        viewer.dims.set_current_step(0, t)
        assert settled(panel), (t, panel._follow_pending)
    layer.undo()  # Ctrl+Z of the stroke on the last frame while frame 0 is shown
    qtbot.waitUntil(lambda: settled(panel) and tracking.lineage[cell].end == last, timeout=10_000)
    assert (cell, last) in drawn(entry)
    layer.redo()
    qtbot.waitUntil(lambda: settled(panel) and tracking.lineage[cell].end == last - 1, timeout=10_000)
    assert (cell, last) not in drawn(entry)


@pytest.mark.gui
def test_tracks_layers_asked_for_on_two_images_while_the_follow_worker_is_busy_are_both_derived(
        make_napari_viewer, tmp_path, monkeypatch, movie, qtbot):
    """Fault: one pending slot for a Tracks layer to derive: Undo on image A (derived in the follow worker), Undo on
    image B, Undo on A again, all before the worker ended: B's request was overwritten by A's, so B's Tracks layer
    kept the track its Undo brought back out. Now each image's latest request is derived, in turn."""
    other = small_movie(FRAMES, 12)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("a", movie.image), ("b", other.image))
    panel = track_all_panel(widget)
    entries = {}
    for name, deletes in (("a", 2), ("b", 1)):
        widget.image_combo.setCurrentText(name)
        viewer.dims.set_current_step(0, 0)
        track(qtbot, widget, panel)
        entries[name] = panel.current()
        for row in entries[name].tracking.lineage.rows()[:deletes]:
            panel.track_spin.setValue(row.track_id)
            panel.delete_button.click()
            wait_tracking(qtbot, widget)
    qtbot.waitUntil(lambda: settled(panel), timeout=30_000)

    for name in ("a", "b", "a"):  # no event is handled in between: the follow worker is busy with a's first Undo
        widget.image_combo.setCurrentText(name)
        panel.undo_button.click()
        assert panel.status.text().startswith("Undid the deleted track"), panel.status.text()
    assert panel.follow_worker is not None
    qtbot.waitUntil(lambda: settled(panel), timeout=30_000)
    for name, entry in entries.items():
        assert drawn(entry) == held(widget.states[entry.image.unique_id].labels.data), name


@pytest.mark.gui
def test_a_frames_progress_reaches_the_gui_thread_once_per_percent(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Fault: every WorkStep of the tracker (each blob clicked, each mask checked, each cell added: hundreds a frame
    on MSC) crossed to napari's GUI thread and rewrote the progress text and status line. Now a frame's "work" steps
    are relayed once per percent of its work (the tracker's labels and lineage are untouched: test_tracking*.py)."""
    from sam2_model.synthetic import make_timelapse

    movie = make_timelapse(num_frames=2, shape=(128, 128), num_cells=20, seed=5, divisions=False, enter_leave=False,
                           radius_fraction=0.05)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(widget, redetect=1)
    relayed = []
    on_step = panel._on_step
    monkeypatch.setattr(panel, "_on_step", lambda step: (relayed.append(tuple(step)), on_step(step)))
    track(qtbot, widget, panel)
    work = [(frame, done) for kind, frame, done, _ in relayed if kind == "work"]
    assert work and [kind for kind, *_ in relayed].count("frame") == 2, relayed
    percents = [(frame, done // WORK_STEP) for frame, done in work]
    assert len(percents) == len(set(percents)), work  # never twice in one percent of a frame
    assert len(panel.current().tracking.lineage) >= 12, panel.status.text()  # (a crowded frame: many steps)


def test_thin_work_passes_every_other_step_and_any_step_once_stop_is_asked() -> None:
    """thin_work keeps the plan, frame and done steps, one "work" step per percent of a frame, and every step once
    ``stop()`` is true (so the worker sees Cancel at the next piece of work); closing it closes the steps."""
    closed = []

    def steps():
        try:
            yield "plan", 0, 0, 2
            for frame in (0, 1):
                for done in range(0, WORK_TOTAL + 1, 2):
                    yield "work", frame, done, WORK_TOTAL
                yield "frame", frame, 3, 2
            yield "done", -1, 0, 2
        finally:
            closed.append(True)

    out = list(thin_work(steps(), lambda: False))
    assert [s[0] for s in out].count("frame") == 2 and out[0][0] == "plan" and out[-1][0] == "done"
    work = [s for s in out if s[0] == "work"]
    assert len(work) == 2 * (WORK_TOTAL // WORK_STEP + 1), len(work)
    assert closed == [True]
    stop = []
    thinned = thin_work(steps(), lambda: bool(stop))
    assert [next(thinned)[0], next(thinned)[:3]] == ["plan", ("work", 0, 0)]
    stop.append(True)
    assert next(thinned)[:3] == ("work", 0, 2)  # the very next step, not the next percent
    thinned.close()
    assert closed == [True, True]
