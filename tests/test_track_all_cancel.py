"""Track all runs that stop part-way (Cancel, a failure) and the note of a crowded frame, on the real demo model
(no Qt): the lineage then agrees with the labels on every frame, the divisions past the frame the run stopped at are
kept, a track of the run goes on under the id of the track it meets there, Undo restores exactly; a frame with more
candidate cells than MANY_SEEDS gives a note step before its clicks."""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
import pytest
from scipy import ndimage

import sam2_model as sm
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import Lineage, Track
from sam2_model.tracking.detection import MANY_SEEDS
from sam2_model.tracking.tracker import STAGE_ENDS

from napari_sam2.track_all import WORK_TOTAL, TrackAll, TrackAllOptions, frame_source
from napari_sam2.track_edits import id_spans

FRAMES = 8
OPTIONS = TrackAllOptions(cell_diameter=(8, 30), redetect_every=2)


@pytest.fixture(scope="module")
def model():
    return sm.build_model("demo", device="cpu")


@pytest.fixture(scope="module")
def movie():
    """8 frames of 128 x 128, 6 cells, one of which divides at frame 4 (its daughters begin there)."""
    return make_timelapse(num_frames=FRAMES, shape=(128, 128), num_cells=6, seed=900_719)


@pytest.fixture(scope="module")
def full_run(model, movie) -> Tuple[np.ndarray, List[Track]]:
    """A whole run's labels and lineage rows (run ids 1-8; track 4 divides into 7 and 8 on frame 4)."""
    labels = np.zeros(movie.labels.shape, np.uint32)
    tracking = TrackAll(labels, FRAMES)
    for _ in tracking.track(model, frame_source(movie.image, model, {}), 0, OPTIONS):
        pass
    assert tracking.lineage.divisions() == {4: [7, 8]} and len(tracking.lineage) == 8, tracking.lineage.rows()
    return labels.copy(), tracking.lineage.rows()


def agrees(tracking: TrackAll) -> None:
    """Every id on the labels has a row (none was painted by hand here) that begins and ends where its pixels do, every
    row has pixels, and every parent ends the frame before its daughter begins."""
    spans = id_spans(tracking.label_planes())
    rows = {row.track_id: row for row in tracking.lineage.rows()}
    assert set(rows) == set(spans), (sorted(rows), sorted(spans))
    assert {i: (row.begin, row.end) for i, row in rows.items()} == spans
    for row in rows.values():
        assert not row.parent or rows[row.parent].end == row.begin - 1, row


def renumbered(labels: np.ndarray, rows: List[Track], new: Dict[int, int]) -> Tuple[np.ndarray, List[Track]]:
    """``labels`` and ``rows`` with each id ``i`` as ``new[i]`` (parents too)."""
    lookup = np.zeros(int(labels.max()) + 1, np.uint32)
    for old, to in new.items():
        lookup[old] = to
    return lookup[labels], [Track(new[r.track_id], r.begin, r.end, new.get(r.parent, 0), r.end_reason) for r in rows]


def run_until(tracking: TrackAll, model, movie, last_frame: int, inside: bool = False) -> None:
    """Track all from frame 0, closed (Cancel) once ``last_frame`` is written, or (``inside``) within the frame after
    it, at its first step of work."""
    steps = tracking.track(model, frame_source(movie.image, model, {}), 0, OPTIONS)
    for kind, frame, _, _ in steps:
        if (kind == "frame" and frame == last_frame and not inside) or (kind == "work" and frame == last_frame + 1):
            break
    steps.close()
    assert sorted(set(tracking.history[-1].frames)) == list(range(last_frame + 1))


def test_a_cancelled_rerun_keeps_the_lineage_of_the_frames_it_did_not_reach(model, movie, full_run):
    """Fault (E2 item 1): a second Track all cancelled after 2 frames left the later frames' labels as before but
    replaced the whole lineage with the partial run's: old tracks ended at the cancel frame ("active"), ids living on
    later frames only had no row, the division vanished (Tracks layer, exports). Now the lineage agrees with the labels
    on every frame and the division past the seam is kept; a track of the run takes the id of the track it meets on the
    next frame (here the old tracking numbered the cells the other way round: every run id meets another number), a
    run id that meets no track but is held by another cell there takes a new id; Undo restores exactly."""
    full, rows = full_run
    reverse = {i: 9 - i for i in range(1, 9)}  # the tracking before: the same cells, numbered 8..1
    old_labels, old_rows = renumbered(full, rows, reverse)
    lost = 9 - 1  # run id 1's cell, erased by hand from frame 2 on (id 1 is daughter 8's there)
    old_labels[2:][old_labels[2:] == lost] = 0
    old_rows = [Track(lost, 0, 1, 0, "lost") if r.track_id == lost else r for r in old_rows]
    labels = old_labels.copy()
    tracking = TrackAll(labels, FRAMES)
    tracking.lineage = Lineage(old_rows)
    run_until(tracking, model, movie, 1)

    np.testing.assert_array_equal(labels[2:], old_labels[2:])  # the frames not reached, as before
    fresh = int(old_labels.max()) + 1  # run id 1 met nothing on frame 2, and 1 is another cell's there: a new id
    expected = old_labels.copy()
    expected[:2][full[:2] == 1] = fresh
    np.testing.assert_array_equal(labels, expected)  # run ids 2-6 go on as 7-3 (their tracks of frames 2-7)
    agrees(tracking)
    want = {r.track_id: r for r in old_rows if r.track_id != lost}
    want[fresh] = Track(fresh, 0, 1, 0, "lost")
    assert {r.track_id: r for r in tracking.lineage.rows()} == want
    assert tracking.lineage.divisions() == Lineage(old_rows).divisions() == {5: [1, 2]}  # (run ids 4 -> 7, 8)
    tracking.undo()
    np.testing.assert_array_equal(labels, old_labels)
    assert tracking.lineage.rows() == Lineage(old_rows).rows()


def test_a_run_stopped_inside_a_frame_or_rerun_alike_joins_its_tracks_to_the_frames_after(model, movie, full_run):
    """The same rerun (same ids) cancelled inside frame 2 (after frames 0-1) leaves the whole run's labels and lineage
    (before: rows 1-6 ended on frame 1 "active", 7 and 8 had none, no division). Cancelled after frame 5, the run's
    own division (seen on frame 5: a finished run moves it back to frame 4, a stopped one does not) links to the
    daughters' tracks of frames 6-7."""
    full, rows = full_run
    for last, inside in ((1, True), (5, False)):
        labels = full.copy()
        tracking = TrackAll(labels, FRAMES)
        tracking.lineage = Lineage(rows)
        run_until(tracking, model, movie, last, inside)
        np.testing.assert_array_equal(labels[last + 1:], full[last + 1:])
        agrees(tracking)
        if inside:
            np.testing.assert_array_equal(labels, full)
            assert tracking.lineage.rows() == rows, tracking.lineage.rows()
        else:
            assert tracking.lineage.divisions() == {4: [7, 8]} and len(tracking.lineage) == 8
            assert tracking.lineage[4].end_reason == "divided" and tracking.lineage[7].end_reason == "end of stack"
        tracking.undo()
        np.testing.assert_array_equal(labels, full)
        assert tracking.lineage.rows() == rows


class UnreadableFrom:
    """A stack whose frames from ``bad`` on cannot be read (a broken file): reading one raises OSError."""

    def __init__(self, frames: np.ndarray, bad: int) -> None:
        self.frames, self.bad = frames, bad
        self.shape, self.dtype, self.ndim = frames.shape, frames.dtype, frames.ndim

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index):
        first = index[0] if isinstance(index, tuple) else index
        if isinstance(first, (int, np.integer)) and first >= self.bad:
            raise OSError(f"frame {first} cannot be read")
        return self.frames[index]


def test_a_run_that_fails_part_way_keeps_the_lineage_of_the_frames_it_did_not_reach(model, movie, full_run):
    """A rerun that fails on frame 3 (its file cannot be read) leaves frames 0-2 written whole and the lineage of the
    whole stack (before: the rows of the run's three frames alone, "active", no division)."""
    full, rows = full_run
    labels = full.copy()
    tracking = TrackAll(labels, FRAMES)
    tracking.lineage = Lineage(rows)
    limits = frame_source(movie.image, model, {}).contrast_limits  # (the whole run's: the sample is not read again)
    with pytest.raises(OSError, match="frame 3 cannot be read"):
        for _ in tracking.track(model, frame_source(UnreadableFrom(movie.image, 3), model, {}, limits), 0, OPTIONS):
            pass
    assert tracking.history[-1].frames == [0, 1, 2]
    np.testing.assert_array_equal(labels, full)
    agrees(tracking)
    assert tracking.lineage.rows() == rows
    tracking.undo()
    np.testing.assert_array_equal(labels, full)


def crowded_stack(frames: int = 2) -> np.ndarray:
    """(frames, 480, 480) uint16: a lattice of ~1200 small bright spots 14 px apart (blob seeding at 8-40 px finds more
    than MANY_SEEDS candidate cells on each frame)."""
    image = np.zeros((480, 480), np.float32)
    image[7::14, 7::14] = 1.0
    image = ndimage.gaussian_filter(image, 2.0)
    image = (image / image.max() * 3000 + 200).astype(np.uint16)
    return np.stack([image] * frames)


def test_a_crowded_frame_gives_a_note_with_the_advice_before_its_clicks(model):
    """Fault (E2 item 2): the detector's warning of too many candidate cells (MANY_SEEDS) went to stderr from the worker
    thread; the panel showed "Tracking frame 0: 23%…" for minutes. Now Track all yields a "note" step as soon as the
    blob points are found (before their clicks), and ``advice`` holds the line for the status (the frame, the count,
    what to set)."""
    stack = crowded_stack()
    labels = np.zeros(stack.shape, np.uint32)
    tracking = TrackAll(labels, len(stack))
    steps = tracking.track(model, frame_source(stack, model, {}), 0, TrackAllOptions())
    seen = []
    with pytest.warns(UserWarning, match="candidate cells"):  # scripts still get the warning
        for step in steps:
            seen.append(step)
            if step[0] == "note" or (step[0] == "work" and step[2] >= STAGE_ENDS["seeding"] * WORK_TOTAL):
                break  # (the note, or the seeding done without one)
    steps.close()
    assert seen[-1] == ("note", 0, 0, 0), seen[-3:]
    work = [done for kind, _, done, _ in seen if kind == "work"]
    assert work and max(work) < STAGE_ENDS["seeding"] * WORK_TOTAL  # still seeding: no blob point clicked yet
    count = int(tracking.advice.split(": ")[1].split()[0])
    assert count > MANY_SEEDS
    assert tracking.advice.startswith(f"frame 0: {count} candidate cells (blobs 8-40 px wide) on one 480 x 480 frame")
    assert "larger minimum diameter" in tracking.advice and "grid seeding" in tracking.advice
    assert not tracking.history and not labels.any()  # closed before frame 0 was written: nothing changed


@pytest.mark.gui
def test_cancelling_a_rerun_in_the_panel_keeps_the_division_in_the_tracks_layer(make_napari_viewer, tmp_path,
                                                                                monkeypatch, qtbot):
    """E2 item 1 as a person meets it: Track all, then Track all again cancelled after 2 frames. The Tracks layer lost
    its division (graph {}) and an export called the tracks of the later frames "hand-painted". Now the lineage, the
    Tracks layer and the ids the panel counts as painted by hand are those of the first run; Undo tracking step
    restores it."""
    from widget_helpers import open_widget, track_all_panel, wait_tracking

    dividing = make_timelapse(num_frames=FRAMES, shape=(128, 128), num_cells=6, seed=900_719)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", dividing.image), size=256)
    panel = track_all_panel(widget, diameter=(8, 30), divisions=True, seeding="blobs")
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    entry = panel.current()
    rows, labels = entry.tracking.lineage.rows(), np.array(widget.labels_layer.data)
    qtbot.waitUntil(lambda: panel.follow_worker is None and len(entry.tracks.graph) == 2, timeout=30_000)
    graph = dict(entry.tracks.graph)

    cancel = panel.cancel_button.click
    panel.progress.valueChanged.connect(lambda value: value >= 2 and panel.worker is not None and cancel())
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert panel.status.text().startswith("Cancelled: frames 0-1"), panel.status.text()
    np.testing.assert_array_equal(widget.labels_layer.data, labels)
    assert entry.tracking.lineage.rows() == rows
    qtbot.waitUntil(lambda: panel.follow_worker is None and dict(panel.current().tracks.graph) == graph,
                    timeout=30_000)
    assert not entry.untracked
    panel.undo_button.click()
    np.testing.assert_array_equal(widget.labels_layer.data, labels)
    assert entry.tracking.lineage.rows() == rows


def test_the_panel_shows_the_crowded_frame_advice_at_once_and_keeps_it_after_cancel(make_napari_viewer, tmp_path,
                                                                                   monkeypatch, qtbot):
    """E2 item 2 as a person meets it: Track all with the default 8-40 px on a frame of ~1200 spots said only
    "Tracking frame 0: 23%…" for minutes. Now the panel's status gives the advice (the frame, the count, a larger
    smallest diameter or grid seeding) as soon as the seeds are found, Cancel stops within seconds, and the Cancelled
    line keeps the advice."""
    from widget_helpers import open_widget, track_all_panel, wait_tracking

    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("spots", crowded_stack()), size=256)
    panel = track_all_panel(widget, diameter=(8, 40), seeding="blobs")
    panel.track_button.click()
    qtbot.waitUntil(lambda: "Note: frame 0:" in panel.status.text(), timeout=60_000)
    assert "candidate cells" in panel.status.text(), panel.status.text()
    panel.cancel_button.click()
    wait_tracking(qtbot, widget, timeout=30_000)
    status = panel.status.text()
    assert status.startswith("Cancelled") and "Note: frame 0:" in status, status
