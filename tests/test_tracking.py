"""Automatic cell tracking with the demo model on small synthetic clips (real model, real detection)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

import sam2_model as sm
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import (CellTracker, check_ctc, ctc_consistent, detection_f1, entering_recall, evaluate_ctc,
                                 match_detections, read_ctc, track_cells, write_ctc, write_ctc_ground_truth,
                                 write_track_table)
from sam2_model.tracking import divisions as div

from napari_sam2._cli_auto import add_auto_arguments, add_evaluate_parser, run_auto, run_evaluate


@pytest.fixture(scope="module")
def model():
    return sm.build_model("demo", checkpoint="download")


def _disc(shape, centre, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def _render(masks_per_frame, shape=(96, 96), seed=0):
    """uint16 nuclei-like frames (blurred bright discs on a noisy background)."""
    rng = np.random.default_rng(seed)
    frames = []
    for masks in masks_per_frame:
        signal = np.zeros(shape, np.float32)
        for m in masks:
            signal[m] = 9000.0
        image = ndimage.gaussian_filter(signal, 1.3) + 800.0
        frames.append(rng.poisson(image).astype(np.uint16))
    return np.stack(frames)


def _pixel_spans(labels: np.ndarray) -> dict:
    """{id: (first frame, last frame)} of every id with pixels in (T, H, W) ``labels``."""
    spans: dict = {}
    for t, frame in enumerate(labels):
        for i in np.unique(frame[frame > 0]).tolist():
            spans[int(i)] = (spans.get(int(i), (t, t))[0], t)
    return spans


def _row_spans(lineage) -> dict:
    return {t.track_id: (t.begin, t.end) for t in lineage.rows()}


@pytest.fixture(scope="module")
def enter_leave_clip():
    """12 frames, 96 x 96: cells A, B stay; C appears on frame 3; D disappears from frame 5 on."""
    shape = (96, 96)
    frames, truth = [], np.zeros((12,) + shape, np.int32)
    for t in range(12):
        cells = {1: (25 + t, 25), 2: (70, 30 + t), 4: (30, 72)}
        if t >= 3:
            cells[3] = (72, 72 - t)
        masks = []
        for cid, c in cells.items():
            if cid == 4 and t >= 5:
                continue
            m = _disc(shape, c, 9)
            truth[t][m] = cid
            masks.append(m)
        frames.append(masks)
    return _render(frames, shape), truth


def test_tracks_identity_entries_and_losses(model, enter_leave_clip, tmp_path: Path) -> None:
    images, truth = enter_leave_clip
    result = track_cells(model, images, cell_diameter=(10, 30), redetect_every=2, max_lost_frames=2)
    labels, lineage = result.labels, result.lineage
    assert labels.shape == images.shape and labels.dtype == np.uint32
    owners = {}
    for cid in (1, 2, 3, 4):
        frames = [t for t in range(12) if (truth[t] == cid).any() and (cid != 3 or t >= 4)]  # detected on frame 4
        ids = set()
        for t in frames:
            found, counts = np.unique(labels[t][truth[t] == cid], return_counts=True)
            assert found[np.argmax(counts)] != 0 and counts.max() > 0.5 * (truth[t] == cid).sum(), (cid, t)
            ids.add(int(found[np.argmax(counts)]))
        assert len(ids) == 1, f"cell {cid} changed identity: {ids}"  # one track per cell, start to end
        owners[cid] = ids.pop()
    appeared = lineage[owners[3]]
    assert appeared.begin == 4 and appeared.parent == 0  # picked up at the next detection frame
    gone = lineage[owners[4]]
    assert gone.end == 4 and gone.end_reason == "lost"
    assert lineage[owners[1]].end_reason == "end of stack" and len(lineage) == 4
    assert _row_spans(lineage) == _pixel_spans(labels)
    out, table = write_ctc(tmp_path / "res", labels, lineage)
    gt = write_ctc_ground_truth(tmp_path / "gt", truth)
    measures = evaluate_ctc(out, gt)
    assert measures["DET"] > 0.9 and measures["TRA"] > 0.9 and measures["SEG"] > 0.75


def test_division_starts_two_daughters(model) -> None:
    """One nucleus (frames 0-3) becomes two that move apart (frames 4-11)."""
    shape = (96, 96)
    frames, centre = [], (48, 48)
    for t in range(12):
        if t < 4:
            frames.append([_disc(shape, centre, 11)])
        else:
            gap = 9 + 2 * (t - 4)
            frames.append([_disc(shape, (48, 48 - gap), 8.5), _disc(shape, (48, 48 + gap), 8.5)])
    result = track_cells(model, _render(frames, shape, seed=1), cell_diameter=(10, 30), redetect_every=2)
    divided = result.lineage.divisions()
    assert len(divided) == 1, result.lineage.rows()
    (mother, daughters), = divided.items()
    assert result.lineage[mother].end_reason == "divided" and len(daughters) == 2
    assert all(4 <= result.lineage[d].begin <= 8 for d in daughters)
    last = result.labels[-1]
    assert set(np.unique(last[:, :48]).tolist()) - {0} != set(np.unique(last[:, 48:]).tolist()) - {0}
    assert _row_spans(result.lineage) == _pixel_spans(result.labels)  # the mother ends the frame before them
    fixed, table = ctc_consistent(result.labels, result.lineage)
    assert check_ctc(fixed, table) == [] and table.divisions()


def test_touching_daughters_that_never_part_are_split(model) -> None:
    """One nucleus (frames 0-3) becomes two that stay pressed together (a waist, never a gap) -- the
    masklet keeps covering both; with no detection after frame 0 only its shape (the neck rule) tells."""
    shape = (96, 96)
    frames = []
    for t in range(10):
        if t < 4:
            frames.append([_disc(shape, (48, 48), 10)])
        else:
            frames.append([_disc(shape, (48, 40), 9), _disc(shape, (48, 56), 9)])  # overlapping: a waist
    result = track_cells(model, _render(frames, shape, seed=2), cell_diameter=(10, 30), redetect_every=20)
    divided = result.lineage.divisions()
    assert len(divided) == 1, result.lineage.rows()
    (mother, daughters), = divided.items()
    assert all(4 <= result.lineage[d].begin <= 6 for d in daughters), result.lineage.rows()  # within 2 frames
    last = result.labels[-1]
    left, right = int(np.bincount(last[48, 32:40]).argmax()), int(np.bincount(last[48, 57:65]).argmax())
    assert {left, right} == set(daughters)  # one daughter on each side of the waist


def test_a_division_on_the_last_frame_needs_one_frame_of_evidence(model) -> None:
    """The pair of test_touching_daughters_that_never_part_are_split on the clip's last two frames: the
    masklet follows a frame late, so it is pinched on the last frame only; no later frame can confirm
    the pinch, so that frame alone is a division (fails when 2 frames are needed there too)."""
    shape = (96, 96)
    frames = [[_disc(shape, (48, 48), 10)] if t < 4 else [_disc(shape, (48, 40), 9), _disc(shape, (48, 56), 9)]
              for t in range(6)]
    result = track_cells(model, _render(frames, shape, seed=2), cell_diameter=(10, 30), redetect_every=20)
    divided = result.lineage.divisions()
    assert len(divided) == 1, result.lineage.rows()
    (mother, daughters), = divided.items()
    assert all(result.lineage[d].begin in (4, 5) for d in daughters), result.lineage.rows()


def test_late_divisions_are_moved_back_also_when_frames_come_as_a_frame_source(model) -> None:
    """Held-out seed 900004 (12 frames): a nucleus divides between frames 7 and 8; the shipped weights' masklet
    is pinched into two cores on frames 8 and 9, so the division is confirmed on frame 9 and the end of the run
    moves it back to frame 8 (with the weights shipped until stop 34 the case was seed 900001, found on detection
    frame 5 and moved back to 1; today's weights see that one on frame 3, where frame 2 shows no pinch). The
    plugin, the console and the CLI hand the tracker a FrameSource (which the session closes): the same move must
    happen there (it was skipped)."""
    from sam2_model.frames import FrameSource
    from sam2_model.synthetic import make_timelapse

    movie = make_timelapse(num_frames=12, shape=(256, 256), num_cells=12, seed=900004)
    options = dict(cell_diameter=(8, 40), redetect_every=5)
    from_array = track_cells(model, movie.image, **options)
    from_source = track_cells(model, FrameSource(movie.image, image_size=model.image_size), **options)
    (mother, daughters), = from_array.lineage.divisions().items()
    assert sorted(movie.parents) == [13, 14] and (movie.labels[7] != 13).all() and (movie.labels[8] == 13).any()
    assert [from_array.lineage[d].begin for d in daughters] == [8, 8]  # moved back from frame 9
    np.testing.assert_array_equal(from_source.labels, from_array.labels)
    assert from_source.lineage.rows() == from_array.lineage.rows()


def test_smoothed_frames_reach_the_detector_the_session_and_the_division_steps(model) -> None:
    """Tracking a FrameSource that smooths is tracking the frames blurred beforehand: seeds, re-detections,
    propagation and the moved-back division all see the blurred frames."""
    from scipy import ndimage

    from sam2_model.frames import FrameSource
    from sam2_model.synthetic import make_timelapse

    movie = make_timelapse(num_frames=7, shape=(256, 256), num_cells=12, seed=900001)
    options = dict(cell_diameter=(8, 40), redetect_every=5)
    blurred = np.stack([ndimage.gaussian_filter(frame.astype(np.float32), 1.5) for frame in movie.image])
    from_blurred = track_cells(model, blurred, **options)
    from_source = track_cells(model, FrameSource(movie.image, image_size=model.image_size, smooth=1.5), **options)
    np.testing.assert_array_equal(from_source.labels, from_blurred.labels)
    assert from_source.lineage.rows() == from_blurred.lineage.rows()
    assert not np.array_equal(from_source.labels, track_cells(model, movie.image, **options).labels)


def test_generator_reverse_and_cancel(model, enter_leave_clip) -> None:
    images, truth = enter_leave_clip
    backwards = track_cells(model, images, start_frame=3, reverse=True, cell_diameter=(10, 30), redetect_every=3)
    assert backwards.frames_tracked == [3, 2, 1, 0] and not backwards.labels[4:].any()
    assert len(backwards.lineage) == 4 and not backwards.lineage.divisions()  # divisions are off backwards
    newcomer = backwards.lineage[int(np.bincount(backwards.labels[3][truth[3] == 3]).argmax())]
    assert (newcomer.begin, newcomer.end, newcomer.end_reason) == (3, 3, "lost")  # gone before frame 3
    for cid in (1, 2, 4):  # each cell keeps one id down to frame 0
        ids = {int(np.bincount(backwards.labels[t][truth[t] == cid]).argmax()) for t in range(4)}
        assert len(ids) == 1 and 0 not in ids
    tracker = CellTracker(model, images, cell_diameter=(10, 30))
    steps = tracker.run()
    seen = []
    for t, frame_labels, n_active in steps:
        seen.append(t)
        assert frame_labels.shape == images.shape[1:] and n_active == 3
        if len(seen) == 2:
            steps.close()  # cancel: the session is closed, the lineage covers frames 0..1
    assert seen == [0, 1] and all(t.end <= 1 for t in tracker.lineage.rows())


def test_tracks_tracked_backwards_span_the_frames_they_are_on(model, enter_leave_clip, tmp_path: Path) -> None:
    """Going backwards a track begins on the frame where it was seen last and ends where it was first found: each
    row (and the CSV table) was (b, b) -- the tracker closed a track on the frame it processed last. Tracks that
    reach frame 0, one lost on the way (cell C, which enters on frame 3), one found late (D leaves after frame 4)."""
    images, truth = enter_leave_clip
    result = track_cells(model, images, start_frame=7, reverse=True, cell_diameter=(10, 30), redetect_every=3,
                         max_lost_frames=2)
    assert result.frames_tracked == list(range(7, -1, -1)) and not result.lineage.divisions()
    assert _row_spans(result.lineage) == _pixel_spans(result.labels)
    found_on = {1: 7, 2: 7, 3: 7, 4: 4}  # D, gone after frame 4, is found on the detection frame 4
    owner = {cid: int(np.bincount(result.labels[t][truth[t] == cid]).argmax()) for cid, t in found_on.items()}
    rows = [result.lineage[owner[cid]] for cid in found_on]
    assert [(r.begin, r.end, r.end_reason) for r in rows] == [
        (0, 7, "end of stack"), (0, 7, "end of stack"), (3, 7, "lost"), (0, 4, "end of stack")]
    table = write_track_table(tmp_path / "tracks.csv", result.lineage).read_text().splitlines()[1:]
    assert sorted(tuple(int(v) for v in line.split(",")[:3]) for line in table) == sorted(
        (i, b, e) for i, (b, e) in _pixel_spans(result.labels).items())


def test_bad_arguments_name_themselves(model, enter_leave_clip) -> None:
    images, _ = enter_leave_clip
    for kwargs, name in ((dict(cell_diameter=(30, 10)), "cell_diameter"), (dict(redetect_every=0), "redetect_every"),
                         (dict(max_lost_frames=1.5), "max_lost_frames"), (dict(seeding="dense"), "seeding"),
                         (dict(start_frame=40), "40")):
        with pytest.raises(ValueError, match=name):
            CellTracker(model, images, **kwargs)
    empty = track_cells(model, np.full((3, 64, 64), 700, np.uint16))  # no cell anywhere: an empty result, a note
    assert not empty.labels.any() and len(empty.lineage) == 0 and empty.frames_tracked == [0, 1, 2]
    assert empty.note.startswith("no cells were detected on frames 0-2: check the cell diameter (8-40 px")


def test_cells_that_appear_after_empty_start_frames_are_tracked_from_their_first_frame(model, tmp_path: Path) -> None:
    """A z-stack that starts above the sample (or cells that come in later): the start frame has no cell. Tracking
    goes on with no object, detects on every frame while nothing is tracked (frame 2 is not a detection frame of
    redetect_every=5), and the cells begin on frame 2 like cells that enter (parent 0), ids and table rows alike."""
    shape, first = (80, 80), 2
    centres = [(24, 24), (56, 50)]
    images = _render([[] if t < first else [_disc(shape, c, 9) for c in centres] for t in range(5)], shape)
    result = track_cells(model, images, cell_diameter=(10, 30))
    assert not result.labels[:first].any() and result.frames_tracked == list(range(5)) and result.note == ""
    rows = result.lineage.rows()
    assert len(rows) == 2 and all(row.begin == first and row.parent == 0 and row.end == 4 for row in rows)
    for t in range(first, 5):
        assert {int(result.labels[t][c]) for c in centres} == {row.track_id for row in rows}, t
    table = write_track_table(tmp_path / "tracks.csv", result.lineage).read_text().splitlines()
    assert table[0] == "track_id,begin,end,parent_id,end_reason"
    assert [line.split(",")[1:4] for line in table[1:]] == [[str(first), "4", "0"]] * 2


def test_daughters_share_no_pixel() -> None:
    """A halved masklet and the detection of its lost sister may overlap: the detection (named last) keeps the
    shared pixels, the masklet loses them, and no pixel of either is dropped."""
    shrunken = _disc((40, 40), (20, 14), 8)
    sister = _disc((40, 40), (20, 26), 8)
    assert (shrunken & sister).any()
    first, second = div.disjoint([shrunken, sister])
    assert not (first & second).any()
    assert np.array_equal(second, sister) and np.array_equal(first, shrunken & ~sister)
    assert np.array_equal(first | second, shrunken | sister)
    apart = _disc((40, 40), (8, 8), 4)
    assert all(np.array_equal(a, b) for a, b in zip(div.disjoint([apart, sister]), [apart, sister]))


def test_matching_is_one_to_one_and_divisions_rules() -> None:
    labels = np.zeros((40, 40), np.uint32)
    labels[5:25, 5:15] = 1  # one masklet covering two cells
    top, bottom = np.zeros((40, 40), bool), np.zeros((40, 40), bool)
    top[5:15, 5:15] = True
    bottom[15:25, 5:15] = True
    newcomer = _disc((40, 40), (32, 32), 5)
    match = match_detections([top, bottom, newcomer], labels)
    assert len(match.matched) == 1 and match.new == [2]  # Hungarian: only one detection takes track 1
    assert sorted(match.inside[1]) == [0, 1] and sorted(div.two_inside(200, [top, bottom], 200)) == [0, 1]
    assert div.two_inside(200, [top, top[:, ::-1] & False], 200) is None
    split = top | bottom
    split[14:16] = False
    watch = div.SplitWatch()
    assert watch.update(1, split, 200) is None and watch.update(1, split, 200) is not None  # 2 frames
    assert watch.update(2, split, 200, final=True) is not None  # the run's last frame: one frame is enough
    at_edge = np.zeros((40, 40), bool)  # the same split shifted onto the frame's edge: a cell coming in
    at_edge[:20] = split[5:25]
    assert div.two_pieces(at_edge, 200) is not None
    assert all(watch.update(3, at_edge, 200, final=k == 2) is None for k in range(3))
    assert div.two_pieces(split, 600) is None  # pieces too small for a cell of 600 px
    assert div.halved(100, 200) and not div.halved(190, 200)
    assert div.balanced([top, bottom])  # 100 / 100 px: a mitosis halves the cell
    smaller = np.zeros_like(bottom)
    smaller[15:20, 5:15] = True  # 50 px beside 100: a third of the two, a swallowed neighbour or a bump
    assert not div.balanced([top, smaller]) and div.balanced([top, smaller], min_share=0.3)
    assert detection_f1([top, newcomer], labels)["tp"] == 1  # IoU 0.5 counts at min_iou 0.5
    assert detection_f1([top, newcomer], labels, min_iou=0.6)["f1"] == 0


def test_neck_rule_splits_touching_pairs_not_elongated_cells() -> None:
    shape = (80, 80)
    pair = _disc(shape, (40, 29), 11) | _disc(shape, (40, 49), 11)  # two touching daughters, a waist between
    yy, xx = np.mgrid[:80, :80]
    ellipse = ((yy - 40) / 11.0) ** 2 + ((xx - 40) / 22.0) ** 2 <= 1  # one elongated nucleus, same length
    bump = _disc(shape, (40, 36), 14) | _disc(shape, (40, 55), 5)  # a nucleus with a small protrusion
    pieces = div.neck_split(pair, min_diameter=8)
    assert pieces is not None
    a, b = pieces
    assert not (a & b).any() and ((a | b) == pair).all() and abs(int(a.sum()) - int(b.sum())) < 0.1 * pair.sum()
    assert {bool(a[40, 29]), bool(b[40, 29])} == {True, False}  # one core in each piece
    assert div.neck_split(ellipse, min_diameter=8) is None and div.neck_split(bump, min_diameter=8) is None
    assert div.neck_split(np.zeros(shape, bool), min_diameter=8) is None
    watch = div.NeckWatch(min_diameter=8)
    area = int(pair.sum())
    assert watch.update(1, pair, area, smallest_recent=area) is None  # has not grown: not tried
    assert watch.update(1, pair, area, smallest_recent=0.8 * area) is None  # first frame of the pinch
    assert watch.update(1, pair, area, smallest_recent=0.8 * area) is not None  # second frame: a division
    assert watch.update(4, pair, area, smallest_recent=0.8 * area, final=True) is not None  # last frame: one
    assert watch.update(2, ellipse, int(ellipse.sum()), smallest_recent=0.5 * ellipse.sum()) is None
    at_edge = np.zeros(shape, bool)  # the same pair shifted onto the frame's top edge (cells coming in)
    at_edge[:-30] = pair[30:]
    assert div.neck_split(at_edge, min_diameter=8) is not None
    for _ in range(3):
        assert watch.update(3, at_edge, area, smallest_recent=0.5 * area) is None


def test_a_division_whose_daughter_is_lost_at_once_is_undone() -> None:
    from sam2_model.tracking import Lineage, Track

    labels = np.zeros((8, 10, 10), np.uint32)
    labels[:3, 2:6, 2:6] = 1  # mother, frames 0-2
    labels[3:, 2:6, 2:6] = 2  # daughter that stays
    labels[3, 7:9, 7:9] = 3  # "daughter" lost after one frame: a fragment
    labels[5:, 0, 0] = 4  # child of the daughter that stays (keeps a parent after the undo)
    labels[5:, 2:6, 2:6] = 0
    labels[5:, 2:6, 2:4] = 4
    labels[5:, 2:6, 4:6] = 5
    lineage = Lineage([Track(1, 0, 2, 0, "divided"), Track(2, 3, 4, 1, "divided"), Track(3, 3, 3, 1, "lost"),
                       Track(4, 5, 7, 2, "end of stack"), Track(5, 5, 7, 2, "end of stack")])
    assert div.undo_short_divisions(labels, lineage) == 1
    assert [(t.track_id, t.begin, t.end, t.parent, t.end_reason) for t in lineage.rows()] == [
        (1, 0, 4, 0, "divided"), (4, 5, 7, 1, "end of stack"), (5, 5, 7, 1, "end of stack")]
    assert labels[3, 7, 7] == 1 and labels[4, 3, 3] == 1 and check_ctc(labels, lineage) == []
    assert div.undo_short_divisions(labels, lineage) == 0  # 1 -> 4, 5 is a real division


def test_divisions_undone_one_after_another_in_a_chain() -> None:
    """A daughter that is kept has its own division with a fragment: both are undone, the second on the mother
    that the first undo handed the daughter's children to (found on the real MSC time-lapse, where it raised)."""
    from sam2_model.tracking import Lineage, Track

    labels = np.zeros((8, 10, 10), np.uint32)
    labels[:3, 2:6, 2:6] = 1  # mother, frames 0-2
    labels[3:5, 2:6, 2:6] = 2  # daughter that stays, frames 3-4, and divides again
    labels[3, 7:9, 7:9] = 3  # fragment, lost after one frame
    labels[5:, 2:6, 2:6] = 4  # the stayer's own stayer, frames 5-7
    labels[5, 0:2, 0:2] = 5  # and its fragment
    lineage = Lineage([Track(1, 0, 2, 0, "divided"), Track(2, 3, 4, 1, "divided"), Track(3, 3, 3, 1, "lost"),
                       Track(4, 5, 7, 2, "end of stack"), Track(5, 5, 5, 2, "lost")])
    assert div.undo_short_divisions(labels, lineage) == 2
    assert [(t.track_id, t.begin, t.end, t.parent, t.end_reason) for t in lineage.rows()] == [
        (1, 0, 7, 0, "end of stack")]
    assert set(np.unique(labels).tolist()) == {0, 1} and check_ctc(labels, lineage) == []


def test_a_division_whose_daughters_vanish_at_the_border_or_both_is_undone() -> None:
    """A daughter that "left the field" within a few frames was a fragment too (found on MSC, where spindle
    cells near the border were cut into pieces that then left); when both daughters vanish soon, the mother
    continues as the one that lasted longer; a daughter cut short by the end of the stack is not judged."""
    from sam2_model.tracking import Lineage, Track

    labels = np.zeros((8, 12, 12), np.uint32)
    labels[:3, 2:6, 2:6] = 1  # mother, frames 0-2
    labels[3:, 2:6, 2:6] = 2  # daughter that stays to the end of the stack
    labels[3:5, 0:2, 8:12] = 3  # "daughter" at the border, gone after two frames
    lineage = Lineage([Track(1, 0, 2, 0, "divided"), Track(2, 3, 7, 1, "end of stack"),
                       Track(3, 3, 4, 1, "left the field")])
    assert div.undo_short_divisions(labels, lineage) == 1
    assert [(t.track_id, t.begin, t.end, t.parent, t.end_reason) for t in lineage.rows()] == [
        (1, 0, 7, 0, "end of stack")]
    assert labels[4, 0, 9] == 1 and check_ctc(labels, lineage) == []

    labels = np.zeros((8, 12, 12), np.uint32)
    labels[:3, 2:6, 2:6] = 1
    labels[3:5, 2:6, 2:4] = 2  # both halves vanish: 2 lasts two frames, 3 one
    labels[3, 2:6, 4:6] = 3
    lineage = Lineage([Track(1, 0, 2, 0, "divided"), Track(2, 3, 4, 1, "lost"), Track(3, 3, 3, 1, "lost")])
    assert div.undo_short_divisions(labels, lineage) == 1
    assert [(t.track_id, t.begin, t.end, t.parent, t.end_reason) for t in lineage.rows()] == [(1, 0, 4, 0, "lost")]
    assert set(np.unique(labels[3]).tolist()) == {0, 1} and check_ctc(labels, lineage) == []

    labels = np.zeros((8, 12, 12), np.uint32)
    labels[:6, 2:6, 2:6] = 1
    labels[6:, 2:6, 2:4] = 2  # a division on the stack's second-to-last frame: daughters end with the stack
    labels[6:, 2:6, 4:6] = 3
    lineage = Lineage([Track(1, 0, 5, 0, "divided"), Track(2, 6, 7, 1, "end of stack"),
                       Track(3, 6, 7, 1, "end of stack")])
    assert div.undo_short_divisions(labels, lineage) == 0 and len(lineage.divisions()) == 1


def test_cli_auto_and_evaluate(model, enter_leave_clip, tmp_path: Path, capsys) -> None:
    images, truth = enter_leave_clip
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command")
    track = commands.add_parser("track")
    add_auto_arguments(track)
    add_evaluate_parser(commands)
    args = parser.parse_args(["track", "--auto", "--cell-diameter", "10", "30", "--redetect-every", "3",
                              "--min-contrast", "1.0", "--ctc", str(tmp_path / "res"), "--geff", str(tmp_path / "t.geff"),
                              "--table", str(tmp_path / "t.csv")])
    assert run_auto(args, images[:6], model) == 0
    labels, table = read_ctc(tmp_path / "res")
    assert labels.shape == (6, 96, 96) and len(table) >= 3
    assert (tmp_path / "t.geff").is_dir() and (tmp_path / "t.csv").read_text().startswith("track_id,begin")
    gt = write_ctc_ground_truth(tmp_path / "gt", truth[:6])
    assert run_evaluate(parser.parse_args(["evaluate", str(tmp_path / "res"), str(gt)])) == 0
    printed = capsys.readouterr().out
    assert "TRA" in printed and "SEG" in printed
    no_output = parser.parse_args(["track", "--auto"])
    assert run_auto(no_output, images[:3], model) == 2
    negative = parser.parse_args(["track", "--auto", "--min-contrast", "-1", "--table", str(tmp_path / "n.csv")])
    assert run_auto(negative, images[:3], model) == 2 and not (tmp_path / "n.csv").exists()
    assert "min_contrast must be a finite number >= 0" in capsys.readouterr().err
    assert run_evaluate(parser.parse_args(["evaluate", str(tmp_path), str(gt)])) == 2


def test_cli_auto_outputs_agree_when_a_track_is_split_for_ctc(tmp_path: Path, monkeypatch, capsys) -> None:
    """With --ctc, a track with a gap is cut in two (CTC rule): the labels file, the table and the CTC folder all hold
    the cut result, not the labels of one track and the table of two. The bar counts the frames from the start.

    The tracker's result is given (a cell lost on frame 2 and found again on frame 3): what is checked is how the
    outputs are written, not tracking."""
    import tifffile

    import sam2_model.tracking as tracking
    from sam2_model.tracking import Lineage, Track, TrackingResult

    labels = np.zeros((5, 16, 16), np.uint32)
    labels[:2, 2:6, 2:6] = 1
    labels[3:, 3:7, 3:7] = 1  # the same id after a frame without it
    labels[:, 10:14, 10:14] = 2
    given = TrackingResult(labels, Lineage([Track(1, 0, 4, 0, "end of stack"), Track(2, 0, 4, 0, "end of stack")]),
                           list(range(5)))
    monkeypatch.setattr(tracking, "track_cells", lambda *args, **kwargs: given)  # run_auto imports it when it runs
    parser = argparse.ArgumentParser()
    add_auto_arguments(parser)
    parser.add_argument("-o", dest="output")
    args = parser.parse_args(["--ctc", str(tmp_path / "res"), "--table", str(tmp_path / "t.csv"),
                              "-o", str(tmp_path / "labels.tif")])
    assert run_auto(args, np.zeros((5, 16, 16), np.uint8), model=None) == 0
    assert "0/5" in capsys.readouterr().err  # the bar's length is known before the first frame
    ctc_labels, ctc_table = read_ctc(tmp_path / "res")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "labels.tif"), ctc_labels)
    assert set(np.unique(ctc_labels[3:]).tolist()) == {0, 2, 3}  # the second piece of track 1 is track 3
    rows = (tmp_path / "t.csv").read_text().splitlines()[1:]
    assert [tuple(row.split(",")[:4]) for row in rows] == [
        (str(t.track_id), str(t.begin), str(t.end), str(t.parent)) for t in ctc_table.rows()]
    assert rows[-1].startswith("3,3,4,1,")


def test_cli_auto_smooths_the_frames(model, enter_leave_clip, tmp_path: Path) -> None:
    """napari-sam2 track --auto --smooth: the tracks of a smoothing FrameSource, written as labels."""
    import tifffile

    from napari_sam2.cli import main
    from sam2_model.frames import FrameSource

    images, _ = enter_leave_clip
    tifffile.imwrite(tmp_path / "movie.tif", images[:6])
    assert main(["track", str(tmp_path / "movie.tif"), "--auto", "--smooth", "1.5", "--cell-diameter", "10", "30",
                 "--redetect-every", "3", "--checkpoint", "download", "-o", str(tmp_path / "labels.tif")]) == 0
    expected = track_cells(model, FrameSource(images[:6], image_size=model.image_size, smooth=1.5),
                           cell_diameter=(10, 30), redetect_every=3)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "labels.tif"), expected.labels)


def test_quality_on_a_held_out_synthetic_timelapse(model, tmp_path: Path) -> None:
    """Issue 10's bars on one held-out clip (seed 900003: 24 frames, ~14 nuclei, one entry, one division).

    Over five held-out seeds (bench/bench_tracking.py) all the bars are met on average (division recall
    0.8 with the neck rule; 0.63 without); this clip guards against regressions of all of them.
    """
    tl = make_timelapse(num_frames=24, seed=900_003)
    result = track_cells(model, tl.image)
    gt = write_ctc_ground_truth(tmp_path / "gt", tl.labels, tl.parents)
    out, _ = write_ctc(tmp_path / "res", result.labels, result.lineage)
    measures = evaluate_ctc(out, gt)
    first = result.labels[0]
    f1 = detection_f1([first == i for i in np.unique(first) if i], tl.labels[0])["f1"]
    entering = entering_recall(result.labels, tl.labels, tl.parents)
    assert f1 >= 0.9 and measures["SEG"] >= 0.75 and measures["TRA"] >= 0.9, (f1, measures)
    assert entering["entered"] >= 1 and entering["recall"] >= 0.8
    assert measures["gt_divisions"] >= 1 and measures["division_recall"] >= 0.8


def test_small_nuclei_on_large_frames_are_tracked_in_object_windows(model, tmp_path: Path) -> None:
    """Nuclei ~30 px wide in 768 x 768 (seed 900001, 8 frames): with the default window="auto" each cell is detected
    and tracked in its own window (sam2_model.windowed_session); on whole frames the demo model segments them
    coarsely. Two held-out seeds, 12 frames (bench/bench_tracking.py --size 768 --radius-fraction 0.02): SEG / DET /
    TRA 0.722 / 0.861 / 0.855 on whole frames, 0.937 / 0.984 / 0.984 in windows."""
    from sam2_model.windowed_session import WindowedSession

    tl = make_timelapse(num_frames=8, shape=(768, 768), seed=900_001, radius_fraction=0.02)
    gt = write_ctc_ground_truth(tmp_path / "gt", tl.labels, tl.parents)
    scores = {}
    for window in ("auto", None):
        tracker = CellTracker(model, tl.image, window=window)
        assert isinstance(tracker.session, WindowedSession) == (window == "auto")
        result = track_cells(model, tl.image, window=window)
        out, _ = write_ctc(tmp_path / f"res_{window}", result.labels, result.lineage)
        scores[window] = evaluate_ctc(out, gt)
    assert scores["auto"]["SEG"] >= 0.85 and scores["auto"]["DET"] >= 0.95, scores
    assert scores["auto"]["SEG"] >= scores[None]["SEG"] + 0.05, scores  # this clip: 0.854 -> 0.950
    assert CellTracker(model, tl.image[:, :256, :256]).window is None  # small frames: whole frames


def test_the_plugin_run_ends_with_the_same_division_steps_as_track_cells(model):
    """TrackAll (widget, console, CLI-free path) and sm.tracking.track_cells give the same labels and lineage."""
    from napari_sam2.track_all import TrackAll, TrackAllOptions
    from sam2_model.tracking import track_cells

    shape = (96, 96)
    frames = [[_disc(shape, (48, 48), 10)] if t < 4 else [_disc(shape, (48, 40), 9), _disc(shape, (48, 56), 9)]
              for t in range(10)]  # the clip of test_touching_daughters_that_never_part_are_split
    images = _render(frames, shape, seed=2)
    options = TrackAllOptions("blobs", (10.0, 30.0), 20, True)
    library = track_cells(model, images, **options.tracker_kwargs())
    panel = TrackAll(np.zeros(images.shape[:3], np.uint32), len(images))
    steps = list(panel.track(model, images, 0, options))
    assert steps[-1][0] == "done"
    np.testing.assert_array_equal(panel.label_planes(), library.labels)
    by_id = lambda lineage: sorted((t.track_id, t.begin, t.end, t.parent) for t in lineage.rows())  # noqa: E731
    assert by_id(panel.lineage) == by_id(library.lineage)
    assert library.lineage.divisions(), "the clip should hold a division"


def test_mask_contrast_tells_cells_from_patches_of_background() -> None:
    rng = np.random.default_rng(3)
    frame = rng.normal(1000.0, 40.0, (128, 128))
    bright, dark, textured, patch = (_disc((128, 128), c, 12) for c in ((30, 30), (30, 95), (95, 30), (95, 95)))
    frame[bright] += 400.0  # fluorescence
    frame[dark] -= 300.0  # phase contrast body
    frame[textured] += rng.normal(0.0, 160.0, int(textured.sum()))  # relief, same mean
    from sam2_model.tracking.detection import mask_contrast

    scores = {name: mask_contrast(frame, m) for name, m in
              (("bright", bright), ("dark", dark), ("textured", textured), ("patch", patch))}
    assert scores["bright"] > 5 and scores["dark"] > 5 and scores["textured"] > 1, scores
    assert scores["patch"] < 0.2, scores
    assert mask_contrast(np.dstack([frame] * 3), bright) == pytest.approx(scores["bright"])
    with pytest.raises(ValueError, match="at least one pixel"):
        mask_contrast(frame, np.zeros(frame.shape, bool))


def test_detector_finds_a_cell_whose_click_spills_onto_a_neighbour(model) -> None:
    """Held-out seed 900002, frame 20: a cell beside another. A click on it gives a mask over most of the neighbour,
    whose own mask claims those pixels; the detector clicks it again with the neighbour as a negative point and
    keeps it. (With the weights shipped until 2026-12-05 the case was seed 900004, frame 15.)"""
    from sam2_model.tracking.detection import make_detector

    movie = make_timelapse(num_frames=24, shape=(256, 256), num_cells=12, seed=900002)  # as bench_tracking
    entering, frame = movie.labels[20] == 15, movie.image[20]
    detector = make_detector(model, "blobs", (8, 40))
    masks = detector(frame)
    ious = [np.count_nonzero(m & entering) / np.count_nonzero(m | entering) for m in masks]
    assert max(ious) >= 0.6, ious
    assert not np.any(np.sum(masks, axis=0) > 1)  # still one cell per pixel
    inside = [p for p in detector.points if entering[int(round(p[1])), int(round(p[0]))]]
    assert inside

    neighbours = [m for m, iou in zip(masks, ious) if iou < 0.5]

    def spills(point: np.ndarray) -> bool:  # its mask covers at least half of a neighbour's mask
        first, _, _ = detector.generator.predictor.predict(points=point[None], labels=[1], multimask=False)
        return any(np.count_nonzero(first[0] & m) * 2 >= np.count_nonzero(m) for m in neighbours)

    assert any(spills(p) for p in inside)


def test_detector_drops_masks_that_do_not_stand_out(model) -> None:
    from sam2_model.tracking.detection import make_detector, mask_contrast

    shape = (128, 128)
    frame = _render([[_disc(shape, (40, 40), 10), _disc(shape, (90, 85), 11)]], shape=shape, seed=4)[0]
    frame[80:100, 10:30] += 900  # a faint square: it stands out less than the nuclei
    every = make_detector(model, "grid", (10, 40), min_contrast=0.0, points_per_side=8)(frame)
    scores = sorted(mask_contrast(frame, m) for m in every)
    assert len(scores) >= 2, scores
    threshold = (scores[0] + scores[1]) / 2  # between the two least contrasted masks: drops exactly one
    kept = make_detector(model, "grid", (10, 40), min_contrast=threshold, points_per_side=8)(frame)
    assert len(kept) == len(every) - 1
    assert all(mask_contrast(frame, m) >= threshold for m in kept)
    for bad in (-0.5, float("nan"), "high"):
        with pytest.raises(ValueError, match="min_contrast"):
            make_detector(model, "grid", (10, 40), min_contrast=bad)


def test_a_given_pred_iou_thresh_is_the_bar_for_blob_and_grid_masks(model) -> None:
    from sam2_model.tracking.detection import BLOB_IOU_THRESH, GRID_IOU_THRESH, make_detector

    default = make_detector(model, "grid+blobs", (8, 40))
    assert (default.generator.pred_iou_thresh, default.grid_iou_thresh) == (BLOB_IOU_THRESH, GRID_IOU_THRESH)
    strict = make_detector(model, "grid+blobs", (8, 40), pred_iou_thresh=0.9)
    assert (strict.generator.pred_iou_thresh, strict.grid_iou_thresh) == (0.9, None)
    grid = make_detector(model, "grid", (8, 40), points_per_side=16)  # grid masks alone: the generator's own bar
    assert (grid.generator.pred_iou_thresh, grid.grid_iou_thresh) == (GRID_IOU_THRESH, None)
    blobs = make_detector(model, "blobs", (8, 40))
    assert (blobs.generator.pred_iou_thresh, blobs.grid_iou_thresh) == (BLOB_IOU_THRESH, None)


MSC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ctc-msc"


@pytest.mark.skipif(not (MSC / "01_GT" / "TRA").is_dir(), reason="the shared MSC time-lapse is not beside the repo")
def test_the_detector_finds_the_real_msc_cells_of_the_first_frame(model) -> None:
    """The shipped weights predict IoU honestly on MSC's dim, spread cells (their masks score 0.5-0.85, not > 0.9),
    so at the generator's 0.8 they found no cell on frame 0; a blob's mask needs only BLOB_IOU_THRESH."""
    import tifffile

    from sam2_model.tracking.detection import make_detector

    frame = tifffile.imread(MSC / "01" / "t000.tif")
    markers = tifffile.imread(MSC / "01_GT" / "TRA" / "man_track000.tif")
    masks = make_detector(model, "blobs", (40, 160))(frame)
    cells = [i for i in np.unique(markers) if i]
    found = {i for i in cells if any(np.count_nonzero(m & (markers == i)) for m in masks)}
    assert len(found) >= len(cells) // 2, (len(found), len(cells), len(masks))


def test_detection_warns_when_the_cell_size_range_finds_thousands_of_seeds():
    """The default range (8-40 px) on MSC's large, dim, grainy cells finds ~4000 blobs in one frame, each a click:
    minutes per frame. The detector says so, naming the option, before it starts clicking."""
    import warnings

    import tifffile

    from sam2_model.tracking.detection import make_detector

    frame_path = MSC / "01" / "t000.tif"
    if not frame_path.is_file():
        pytest.skip("the shared MSC time-lapse is not beside the repo")
    detector = make_detector(sm.build_model("demo"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning stops the call before the clicks
        with pytest.raises(UserWarning, match=r"\d{4} candidate cells \(blobs 8-40 px wide\) on one 832 x 992 frame: "
                                              r"each is clicked.*--cell-diameter MIN MAX"):
            detector(tifffile.imread(frame_path))


def test_console_track_cells_names_a_wrong_cell_diameter(enter_leave_clip) -> None:
    from napari_sam2 import track_cells as console_track_cells

    images, _ = enter_leave_clip
    with pytest.raises(ValueError, match=r"cell_diameter must be two numbers \(min, max\) in pixels, got 40"):
        console_track_cells(images[:2], cell_diameter=40)  # was TypeError: 'int' object is not iterable


def test_work_steps_inside_frames_leave_the_frames_and_lineage_as_they_were(model, enter_leave_clip) -> None:
    """Fault: the tracker yielded once per frame, and a detection frame of the MSC time-lapse takes 20-30 s on 2 cores
    (re-clicks of crowded blobs, each a model call): progress stood still and a cancel waited up to a whole frame.
    ``run(work=True)`` also yields a WorkStep between the pieces of model work inside each frame; the frames, labels
    and lineage are those of ``run()``, and a close after one stops inside that frame with the lineage of the frames
    yielded before it."""
    from sam2_model.tracking.tracker import STAGE_ENDS, WorkStep

    images, _ = enter_leave_clip
    options = dict(cell_diameter=(10, 30), redetect_every=2, max_lost_frames=2)
    plain = CellTracker(model, images[:6], **options)
    expected = list(plain.run())
    tracker = CellTracker(model, images[:6], **options)
    steps = list(tracker.run(work=True))
    frames = [step for step in steps if not isinstance(step, WorkStep)]
    assert [t for t, _, _ in frames] == [t for t, _, _ in expected] == list(range(6))
    for (_, got, active), (_, want, want_active) in zip(frames, expected):
        np.testing.assert_array_equal(got, want)
        assert active == want_active
    assert tracker.lineage.rows() == plain.lineage.rows() and len(tracker.lineage) >= 3
    work: dict = {}
    current = 0
    for step in steps:
        if isinstance(step, WorkStep):
            assert step.frame == current and step.stage in STAGE_ENDS, step  # inside the frame that comes next
            work.setdefault(step.frame, []).append(step)
        else:
            current = step[0] + 1
    assert sorted(work) == list(range(6)), sorted(work)  # every frame reports its work
    for t, found in work.items():
        shares = [step.fraction for step in found]
        assert shares == sorted(shares) and 0 <= shares[0] and shares[-1] <= 1, (t, found)
    assert {"seeding", "adding"} <= {step.stage for step in work[0]}  # frame 0: detection, then its cells prompted
    assert "propagating" in {step.stage for step in work[1]} and "seeding" in {step.stage for step in work[2]}

    stopped = CellTracker(model, images[:6], **options)
    run = stopped.run(work=True)
    done = []
    for step in run:
        if isinstance(step, WorkStep) and step.frame == 2 and step.stage == "seeding":  # past frame 2's book-keeping
            run.close()  # (the cancel of a caller)
            break
        if not isinstance(step, WorkStep):
            done.append(step[0])
    assert done == [0, 1]
    at_frame_1 = CellTracker(model, images[:6], **options)
    for t, _, _ in at_frame_1.run():
        if t == 1:
            break  # closed after frame 1 (the generator is closed when dropped; the lineage is read here)
    assert stopped.lineage.rows() == at_frame_1.lineage.rows()
    assert all(row.end <= 1 for row in stopped.lineage.rows()), stopped.lineage.rows()


def test_detection_stops_within_its_seeding_and_finds_the_masks_of_one_whole_call(model, monkeypatch) -> None:
    """Fault (E2 item 2): the blob points' masks were one ``generate`` call (1029 points on MSC: 15-20 s on 2 cores) with
    no step inside, so Cancel waited for all of it. The detector now reports a "seeding" step after each model call of
    the mask generator and a close there stops it; run to its end it finds the masks of the whole call, bit for bit."""
    from sam2_model.tracking.detection import drain, make_detector

    image = np.zeros((320, 320), np.float32)
    image[16::32, 16::32] = 1.0  # 100 nuclei-like spots, blob points in windows of the frame
    frame = (ndimage.gaussian_filter(image, 3.0) * 4e4 + 300).astype(np.uint16)
    chunked = make_detector(model, "blobs", (8, 24))
    assert chunked.window_side(frame.shape) is not None
    steps = chunked.steps(frame)
    work = []
    while True:
        try:
            work.append(next(steps))
        except StopIteration as stop:
            masks = stop.value
            break
    seeding = [step for step in work if step[0] == "seeding"]
    assert len(seeding) > 10 and [d / t for _, d, t in seeding] == sorted(d / t for _, d, t in seeding), seeding

    whole = make_detector(model, "blobs", (8, 24))  # its generator's work in one step, as before
    in_pieces = whole.generator.generate_steps

    def one_step(*args, **kwargs):
        return drain(in_pieces(*args, **kwargs))
        yield  # (a generator)

    monkeypatch.setattr(whole.generator, "generate_steps", one_step)
    expected = whole(frame)
    assert len(masks) == len(expected) >= 50 and all(np.array_equal(a, b) for a, b in zip(masks, expected))

    calls = []
    predict = chunked.generator.predictor.predict
    monkeypatch.setattr(chunked.generator.predictor, "predict", lambda *a, **k: (calls.append(1), predict(*a, **k))[1])
    steps = chunked.steps(frame)
    for stage, done, total in steps:
        if stage == "seeding" and 0 < done / total < 1 and len(calls) >= 1:
            break  # inside the blob points' masks, after one batch of clicks
    steps.close()
    assert len(calls) == 1
