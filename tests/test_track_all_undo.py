"""Track all's Undo, napari's own undo of strokes and runs that do not finish, driven as a person does (real napari
under xvfb-run, the demo model, small synthetic time-lapses): the Tracks layer is derived in a worker, a mother cell
deleted and brought back gets her daughters back, a stroke undone on a frame not shown is followed at once."""

from __future__ import annotations

import csv
import threading

import numpy as np
import pytest

from _helpers import small_movie_fixture
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import Lineage, Track, read_geff
from widget_helpers import open_widget, track_all_panel, wait_tracking

FRAMES = 6
movie = small_movie_fixture(FRAMES, 11)


@pytest.fixture(scope="module")
def dividing():
    """8 frames of 128 x 128, cell 2 divides into 7 and 8 at frame 3 (as in test_track_all_widget)."""
    movie = make_timelapse(num_frames=8, shape=(128, 128), num_cells=6, seed=900_719)
    assert movie.parents == {7: 2, 8: 2}
    return movie


def settled(panel) -> bool:
    """The follow worker (which also derives the Tracks layer after Undo / a cancelled run) is idle, none pending."""
    return panel.follow_worker is None and not panel._follow_timer.isActive()


def track(qtbot, widget, panel) -> None:
    panel.track_button.click()
    wait_tracking(qtbot, widget, 180_000)
    assert panel.status.text().startswith("Done"), panel.status.text()


def drawn(panel) -> tuple:
    """What the Tracks layer draws: ({(track, frame)}, {child: [parent]})."""
    layer = panel.current().tracks
    return {(int(i), int(t)) for i, t in layer.data[:, :2]}, dict(layer.graph)


def held(labels: np.ndarray) -> set:
    """{(id, frame)} of every id > 0 of (T, H, W) labels."""
    return {(int(i), t) for t, plane in enumerate(labels) for i in np.unique(plane) if i}


def gui_reads(monkeypatch, tracking) -> list:
    """A list that gets an entry each time the whole stack is read for a result on the GUI thread."""
    reads: list = []
    result = tracking.result_and_spans
    monkeypatch.setattr(tracking, "result_and_spans", lambda *a: (
        reads.append(1) if threading.current_thread() is threading.main_thread() else None, result(*a))[1])
    return reads


@pytest.mark.gui
def test_undo_and_a_cancelled_run_derive_the_tracks_layer_in_a_worker(make_napari_viewer, tmp_path, monkeypatch,
                                                                       movie, qtbot):
    """Fault: Undo and a run cancelled part-way remade the Tracks layer by reading the whole stack on the GUI thread
    (0.8-1.4 s frozen on 40 frames of 512 x 512, 50 cells); runs, corrections, Delete and Merge derived it in their
    worker. Now Undo and the cancel path do the same; the layer still ends up drawing what the labels hold."""
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(widget)
    track(qtbot, widget, panel)
    layer = widget.labels_layer
    tracking = panel.current().tracking
    first = tracking.lineage.rows()[0].track_id
    reads = gui_reads(monkeypatch, tracking)

    panel.track_spin.setValue(first)
    panel.delete_button.click()
    wait_tracking(qtbot, widget)
    assert first not in {i for i, _ in drawn(panel)[0]}
    panel.undo_button.click()
    assert panel.status.text().startswith(f"Undid the deleted track {first}"), panel.status.text()
    qtbot.waitUntil(lambda: settled(panel) and first in {i for i, _ in drawn(panel)[0]}, timeout=30_000)
    assert drawn(panel)[0] == held(layer.data) and not reads

    cancel = panel.cancel_button.click
    panel.progress.valueChanged.connect(lambda value: value >= 1 and panel.worker is not None and cancel())
    panel.track_button.click()  # again from frame 0, cancelled once its first frame is written
    wait_tracking(qtbot, widget)
    assert panel.status.text().startswith("Cancelled: frame"), panel.status.text()
    assert 1 <= len(tracking.history[-1].frames) < FRAMES
    qtbot.waitUntil(lambda: settled(panel) and drawn(panel)[0] == held(layer.data), timeout=30_000)
    assert not reads
    panel.undo_button.click()  # back to the first run's labels; its tracks are drawn again
    qtbot.waitUntil(lambda: settled(panel) and drawn(panel)[0] == held(layer.data), timeout=30_000)
    assert not reads


@pytest.mark.gui
def test_a_stroke_undone_on_a_frame_not_shown_is_followed_at_once(make_napari_viewer, tmp_path, monkeypatch, movie,
                                                                  qtbot):
    """Fault: napari's undo (Ctrl+Z) of a stroke made on a frame that is not the one shown reached the lineage only
    once that frame was shown again (the follow compared the plane shown only)."""
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(widget)
    track(qtbot, widget, panel)
    layer = widget.labels_layer
    tracking = panel.current().tracking
    cell = next(row.track_id for row in tracking.lineage.rows() if row.end == FRAMES - 1)
    last = FRAMES - 1
    viewer.dims.set_current_step(0, last)
    plane = layer.data[last]
    layer.fill((last, *(int(v) for v in np.argwhere(plane == cell)[0])), 0)  # the cell erased on the last frame
    qtbot.waitUntil(lambda: settled(panel) and tracking.lineage[cell].end == last - 1, timeout=30_000)
    assert tracking.lineage[cell].end_reason == "lost"

    viewer.dims.set_current_step(0, 0)  # the person looks at frame 0, then Ctrl+Z: the cell is back on the last
    layer.undo()
    assert (layer.data[last] == cell).any()
    qtbot.waitUntil(lambda: settled(panel) and tracking.lineage[cell].end == last, timeout=10_000)
    assert tracking.lineage[cell].end_reason == "end of stack"
    assert (cell, last) in drawn(panel)[0]
    assert viewer.dims.current_step[0] == 0


def exports(panel, folder) -> tuple:
    """(CTC res_track.txt, the tracks CSV rows, the GEFF's edges as (track, frame) pairs) of the current tracking."""
    ctc = panel.export("ctc", str(folder / "ctc"), overwrite=True)
    with open(panel.export("tracks", str(folder / "tracks.csv"), overwrite=True)) as handle:
        table = list(csv.DictReader(handle))
    graph, _ = read_geff(panel.export("geff", str(folder / "tracks.geff"), overwrite=True))
    node = {n: (int(a["track_id"]), int(a["t"])) for n, a in graph.nodes(data=True)}
    return (folder / "ctc" / "res_track.txt").read_text() if ctc else None, table, sorted(
        (node[a], node[b]) for a, b in graph.edges())


@pytest.mark.gui
def test_a_mother_deleted_then_brought_back_gets_her_daughters_back(make_napari_viewer, tmp_path, monkeypatch,
                                                                    dividing, qtbot):
    """Fault: a mother's row brought back by an undo (her track erased by hand on every frame, then napari's Ctrl+Z)
    came back without her daughters' parent links (they had become roots), so the lineage, the Tracks layer and the
    CTC / GEFF / CSV exports lost the division. Now they equal what they were before the delete; the panel's Delete
    track then Undo tracking step does the same."""
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", dividing.image), size=256)
    panel = track_all_panel(widget, diameter=(8, 30), divisions=True, seeding="blobs")
    track(qtbot, widget, panel)
    layer = widget.labels_layer
    tracking = panel.current().tracking
    (mother, daughters), = tracking.lineage.divisions().items()
    rows, graph = tracking.lineage.rows(), drawn(panel)[1]
    (tmp_path / "before").mkdir()
    before = exports(panel, tmp_path / "before")
    assert {d: graph[d] for d in daughters} == {d: [mother] for d in daughters}

    panel.track_spin.setValue(mother)  # the panel's Delete track, then Undo tracking step
    panel.delete_button.click()
    wait_tracking(qtbot, widget)
    assert all(tracking.lineage[d].parent == 0 for d in daughters)
    panel.undo_button.click()
    qtbot.waitUntil(lambda: settled(panel) and mother in {i for i, _ in drawn(panel)[0]}, timeout=30_000)
    assert tracking.lineage.rows() == rows and drawn(panel)[1] == graph
    (tmp_path / "undone").mkdir()
    assert exports(panel, tmp_path / "undone") == before

    frames = [t for t in range(len(layer.data)) if (layer.data[t] == mother).any()]
    for t in frames:  # the mother erased by hand on each of her frames (the fill tool, label 0)
        viewer.dims.set_current_step(0, t)
        layer.fill((t, *(int(v) for v in np.argwhere(layer.data[t] == mother)[0])), 0)
    qtbot.waitUntil(lambda: settled(panel) and mother not in tracking.lineage, timeout=30_000)
    assert all(tracking.lineage[d].parent == 0 for d in daughters)
    for _ in frames:  # Ctrl+Z on each stroke: she is back on every frame
        layer.undo()
    qtbot.waitUntil(lambda: settled(panel) and tracking.lineage.rows() == rows, timeout=30_000)
    assert drawn(panel)[1] == graph
    (tmp_path / "back").mkdir()
    assert exports(panel, tmp_path / "back") == before


def test_a_correction_ends_a_track_as_the_lineage_that_follows_hand_edits_does(tmp_path):
    """Fault: a correction gave the track it re-segmented an end reason of its own rule ("lost" wherever the track
    did not reach the last frame, or its old reason whenever it had daughters), where the lineage that follows hand
    edits (``end_reason_at``) gives another for the same pixels: a correction cancelled on frame 0 turned "left the
    field" into "lost" though the track's end did not move. Now both use ``end_reason_at``."""
    from sam2_model import build_model
    from napari_sam2.track_all import TrackAll, frame_source

    image = np.zeros((6, 64, 64), np.float32)
    labels = np.zeros((6, 64, 64), np.uint32)
    labels[0:4, 10:20, 10:20] = 1  # left the field after frame 3
    labels[0:2, 40:50, 10:20] = 2  # its last frame (2) erased by hand before the correction: ends on 1 now
    labels[3:6, 40:50, 5:12] = 3  # 2's daughters from frame 3
    labels[3:6, 40:50, 14:20] = 4
    image[labels > 0] = 1.0
    tracking = TrackAll(labels, 6)
    tracking.lineage = Lineage([Track(1, 0, 3, 0, "left the field"), Track(2, 0, 2, 0, "divided"),
                                Track(3, 3, 5, 2, "end of stack"), Track(4, 3, 5, 2, "end of stack")])
    model = build_model("demo", device="cpu")
    for track_id, y in ((1, 15), (2, 45)):
        steps = tracking.correct(model, frame_source(image, model, {}), track_id, 0, np.array([[15.0, y]]),
                                 np.array([1]))
        assert [next(steps)[0], next(steps)[0]] == ["plan", "frame"]
        steps.close()  # cancelled after frame 0
    lineage = tracking.lineage
    assert (lineage[1].end, lineage[1].end_reason) == (3, "left the field")
    assert (lineage[2].end, lineage[2].end_reason) == (1, "lost")
    assert [lineage[d].parent for d in (3, 4)] == [2, 2]  # the links are kept
    assert tracking.followed()[0].rows() == lineage.rows()  # what a follow of the same pixels gives


def test_a_merge_refusal_names_the_frames_as_ranges():
    """Fault (E2 item 6): the refusal to merge two tracks that share frames printed a Python list cut at 10 frames
    without saying so ("frame(s) [0, 1, ..., 9]" for frames 0-11). Now it names them as the status lines do, and says
    how many when it shortens them. Nothing is written."""
    from napari_sam2.track_all import TrackAll

    labels = np.zeros((30, 16, 16), np.uint32)
    labels[:12, 2:5, 2:5] = 2
    labels[:12, 8:11, 8:11] = 3
    tracking = TrackAll(labels, 30)
    with pytest.raises(ValueError, match=r"^tracks 2 and 3 are both on frames 0-11: a track holds one cell per frame"):
        list(tracking.merge_track(2, 3))
    labels[:12] = 0
    labels[12:30:2, 8:11, 8:11] = 2  # 2 on every other frame from 12, 3 on every frame from 12
    labels[12:, 2:5, 2:5] = 3
    with pytest.raises(ValueError, match=r"both on frames 12, 14, 16, 18, 20, 22, 24, 26, … \(9 in all\): "):
        list(tracking.merge_track(2, 3))
    labels[13:, 8:11, 8:11] = 0
    with pytest.raises(ValueError, match=r"both on frame 12: "):
        list(tracking.merge_track(2, 3))
    assert not tracking.history
