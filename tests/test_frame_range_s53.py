"""Part of a movie from the console API (s53, F5): ``segment(..., frames=(first, last))`` and
``track_cells(..., frames=(first, last))`` read only those frames and keep the movie's frame numbers; and
``read_ctc`` derives each track's end reason as the tracker names it. Real demo model, small synthetic movies."""

from __future__ import annotations

import collections
import types
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_sam2
import sam2_model as sm
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import Lineage, Track, read_ctc, write_ctc

FIRST, LAST = 2, 5


@pytest.fixture(scope="module")
def movie():
    return make_timelapse(num_frames=8, shape=(96, 96), num_cells=4, seed=5301)


@pytest.fixture(scope="module")
def net():
    return sm.build_model("demo", device="cpu")


@pytest.fixture(scope="module")
def clicks(movie):
    """Positive clicks on two cells of frame 3, in the movie's frame numbers."""
    return [(3, *click_point(movie.labels[3] == obj)[::-1], 1, obj) for obj in clickable_objects(movie.labels[3])[:2]]


class Recorder:
    """An array-like stack that records which frames (axis 0) are read."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.read: set = set()

    def __getitem__(self, key):
        first = key[0] if isinstance(key, tuple) else key
        self.read.update(np.arange(self.shape[0])[first].ravel().tolist())
        return self.data[key]


def shifted(rows, by):
    return [(row[0] - by, *row[1:]) for row in rows]


# ------------------------------------------------------------------------------------------------ segment
def test_segment_of_a_range_is_the_sliced_stack_in_the_movies_numbers(movie, clicks, net, tmp_path: Path) -> None:
    sliced = napari_sam2.segment(movie.image[FIRST:LAST + 1], shifted(clicks, FIRST), model=net)
    assert sliced.shape == (LAST - FIRST + 1, 96, 96) and len(np.unique(sliced)) == 3
    stack = Recorder(movie.image)
    part = napari_sam2.segment(stack, clicks, model=net, frames=(FIRST, LAST))
    np.testing.assert_array_equal(part, sliced)  # index i is the movie's frame FIRST + i
    assert stack.read and stack.read <= set(range(FIRST, LAST + 1))  # no frame outside the range is read
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie.image)
    by_path = napari_sam2.segment(path, clicks, model=net, frames=(np.int64(FIRST), np.int32(LAST)))  # numpy ints
    np.testing.assert_array_equal(by_path, sliced)
    np.testing.assert_array_equal(napari_sam2.segment(movie.image, clicks, model=net, frames=range(FIRST, LAST + 1)),
                                  sliced)


@pytest.mark.parametrize("frames, words", [
    ((5, 2), r"first frame \(5\) is after the last \(2\); give frames=\(2, 5\)"),
    ((2, 8), r"outside the movie's frames 0-7"),
    ((-1, 3), r"outside the movie's frames 0-7"),
    ((2.0, 5.0), r"frames must be \(first, last\), two integer frame numbers"),
    (("2", "5"), r"frames must be \(first, last\), two integer frame numbers"),
    ((True, 5), r"frames must be \(first, last\), two integer frame numbers"),
    ((2, 3, 4), r"frames must be \(first, last\), two integer frame numbers"),
    (3, r"frames must be \(first, last\), two integer frame numbers"),
    (range(2, 6, 2), r"consecutive frames \(step 1"),
])
def test_bad_ranges_are_refused_before_any_model_work(movie, clicks, frames, words) -> None:
    for call in (lambda: napari_sam2.segment(movie.image, clicks, model="no such model", frames=frames),
                 lambda: napari_sam2.track_cells(movie.image, model=None, checkpoint="no such file", frames=frames)):
        with pytest.raises(ValueError, match=words):
            call()


def test_prompts_and_ways_are_checked_in_the_movies_numbers(movie, clicks) -> None:
    with pytest.raises(ValueError, match=r"clicks row 0: frame 3 is outside frames=\(4, 6\)"):
        napari_sam2.segment(movie.image, clicks, frames=(4, 6))
    boxes = [(7, 10, 10, 30, 30, 1)]
    with pytest.raises(ValueError, match=r"boxes row 0: frame 7 is outside frames=\(2, 5\)"):
        napari_sam2.segment(movie.image, boxes=boxes, frames=(FIRST, LAST))
    with pytest.raises(ValueError, match=r"direction backward from the first prompted frame \(3\): it is the first of "
                                         r"frames=\(3, 6\)"):
        napari_sam2.segment(movie.image, clicks, direction="backward", frames=(3, 6))
    with pytest.raises(ValueError, match=r"direction forward from the first prompted frame \(3\): it is the last of "
                                         r"frames=\(1, 3\)"):
        napari_sam2.segment(movie.image, clicks, direction="forward", frames=(1, 3))
    with pytest.raises(ValueError, match=r"single 2-D image \(frame 0 only\): leave frames out"):
        napari_sam2.segment(movie.image[0], shifted(clicks, 3), frames=(0, 0))


# ------------------------------------------------------------------------------------------------ track_cells
def test_track_cells_of_a_range_reads_it_alone_and_numbers_it_as_the_movie(movie, net) -> None:
    sliced = napari_sam2.track_cells(movie.image[FIRST:LAST + 1], model=net)
    stack = Recorder(movie.image)
    part = napari_sam2.track_cells(stack, model=net, frames=(FIRST, LAST))  # start_frame: the range's first
    assert stack.read and stack.read <= set(range(FIRST, LAST + 1))
    np.testing.assert_array_equal(part.labels, sliced.labels)  # (4, H, W): index i is frame FIRST + i
    assert part.frames_tracked == list(range(FIRST, LAST + 1))
    assert [(t.track_id, t.begin - FIRST, t.end - FIRST, t.parent, t.end_reason) for t in part.lineage.rows()] == \
        [(t.track_id, t.begin, t.end, t.parent, t.end_reason) for t in sliced.lineage.rows()]
    assert len(part.lineage) and all(FIRST <= t.begin <= t.end <= LAST for t in part.lineage.rows())


def test_measure_of_a_range_result_numbers_its_frames_as_the_movie(movie, net) -> None:
    part = napari_sam2.track_cells(movie.image, model=net, frames=(FIRST, LAST))
    assert part.first_frame == FIRST and napari_sam2.track_cells(movie.image[:2], model=net).first_frame == 0
    by_index = napari_sam2.measure(part.labels, movie.image[FIRST:LAST + 1])  # the labels alone: their index
    rows = napari_sam2.measure(part, movie.image)  # the whole movie: its frames FIRST..LAST are read
    assert rows and [r["frame"] for r in rows] == [r["frame"] + FIRST for r in by_index]
    same = ("obj_id", "area", "centroid_y", "centroid_x", "bbox_y0", "bbox_x1", "mean_intensity")
    assert [[r[k] for k in same] for r in rows] == [[r[k] for k in same] for r in by_index]
    spans = {t.track_id: (t.begin, t.end) for t in part.lineage.rows()}  # the lineage's numbers: the same frames
    assert all(spans[r["obj_id"]][0] <= r["frame"] <= spans[r["obj_id"]][1] for r in rows)
    assert {r["frame"] for r in rows} == set(part.frames_tracked)
    own = napari_sam2.measure(part, movie.image[FIRST:LAST + 1])  # the range's own frames work too
    assert [[r["frame"], r["mean_intensity"]] for r in own] == [[r["frame"], r["mean_intensity"]] for r in rows]
    timed = napari_sam2.measure(part, scale=(5.0, 1.0, 1.0), time_unit="minute")
    assert [r["time"] for r in timed] == [5.0 * r["frame"] for r in rows] and timed[0]["frame"] >= FIRST
    with pytest.raises(ValueError, match=r"or the movie's \(at least 6 frames\); got shape \(3, 96, 96\)"):
        napari_sam2.measure(part, movie.image[:3])


def test_track_cells_start_frame_is_a_frame_of_the_range(movie, net) -> None:
    later = napari_sam2.track_cells(movie.image, model=net, frames=(FIRST, LAST), start_frame=4)
    assert later.frames_tracked == [4, 5] and not later.labels[:2].any() and later.labels[2:].any(axis=(1, 2)).all()
    back = napari_sam2.track_cells(movie.image, model=net, frames=(FIRST, LAST), start_frame=3, direction="backward")
    assert sorted(back.frames_tracked) == [2, 3] and not back.labels[2:].any()
    with pytest.raises(ValueError, match=r"start_frame 1 is outside frames=\(2, 5\)"):
        napari_sam2.track_cells(movie.image, frames=(FIRST, LAST), start_frame=1)
    with pytest.raises(ValueError, match=r"direction backward from start_frame \(2\): it is the first of frames=\(2, 5\)"):
        napari_sam2.track_cells(movie.image, frames=(FIRST, LAST), direction="backward")
    with pytest.raises(ValueError, match=r"frames: with a viewer the Track all panel tracks the whole stack"):
        napari_sam2.track_cells(types.SimpleNamespace(window=None, layers=[]), frames=(FIRST, LAST))


def test_a_stopped_range_says_where_in_the_movies_numbers(movie, net) -> None:
    done = []
    result = napari_sam2.track_cells(movie.image, model=net, frames=(FIRST, LAST), progress=lambda n, total: done.append(n),
                                     stop=lambda: len(done) >= 2)
    assert result.frames_tracked == [2, 3] and "after frame 3:" in result.note
    assert result.lineage.rows() and all(2 <= t.begin <= t.end <= 3 for t in result.lineage.rows())


# ------------------------------------------------------------------------------------------------ read_ctc
def test_read_ctc_names_each_end_as_the_writer_did(tmp_path: Path) -> None:
    """Hand-made: a cell to the last frame, one that divides, its daughters, one lost mid-frame, one that leaves at
    the border, one cut at a gap (its first piece ends "lost", its second reaches the end)."""
    labels = np.zeros((6, 64, 64), np.uint16)
    labels[:, 5:15, 5:15] = 1  # to the last frame
    labels[:3, 30:40, 30:40] = 2  # divides after frame 2
    labels[3:, 28:34, 30:40] = 3
    labels[3:, 36:42, 30:40] = 4
    labels[:4, 20:28, 50:58] = 5  # lost in the middle of the frame
    labels[:2, 50:62, 2:10] = 6  # left the field: 2 px from the border
    labels[:2, 45:55, 45:55] = 7  # cut at a gap: frames 0-1, then 4-5
    labels[4:, 45:55, 45:55] = 7
    lineage = Lineage([Track(1, 0, 5, 0, "end of stack"), Track(2, 0, 2, 0, "divided"), Track(3, 3, 5, 2, "end of stack"),
                       Track(4, 3, 5, 2, "end of stack"), Track(5, 0, 3, 0, "lost"), Track(6, 0, 1, 0, "left the field"),
                       Track(7, 0, 5, 0, "end of stack")])
    folder, written = write_ctc(tmp_path / "res", labels, lineage)
    _, back = read_ctc(folder)
    assert len(written) == 8  # track 7's piece after the gap is track 8
    assert {t.track_id: t.end_reason for t in back.rows()} == {t.track_id: t.end_reason for t in written.rows()} == {
        1: "end of stack", 2: "divided", 3: "end of stack", 4: "end of stack", 5: "lost", 6: "left the field",
        7: "lost", 8: "end of stack"}


def test_read_ctc_of_a_real_tracking_result_gives_its_end_reasons_back(net, tmp_path: Path) -> None:
    movie = make_timelapse(num_frames=16, shape=(96, 96), num_cells=8, seed=5307)
    result = napari_sam2.track_cells(movie.image, model=net, max_lost_frames=1)
    folder, written = write_ctc(tmp_path / "res", result.labels, result.lineage)
    _, back = read_ctc(folder)
    reasons = {t.track_id: t.end_reason for t in written.rows()}
    assert {t.track_id: t.end_reason for t in back.rows()} == reasons
    assert {"divided", "lost", "end of stack"} <= set(collections.Counter(reasons.values()))


def test_the_note_of_an_empty_range_names_the_movies_frames():
    """Review: frames_tracked said [2..5] and the note "no cells were detected on frames 0-3"."""
    result = napari_sam2.track_cells(np.zeros((8, 64, 64), np.uint8), frames=(2, 5), model="demo",
                                     cell_diameter=(6, 20), device="cpu")
    assert result.frames_tracked == [2, 3, 4, 5]
    assert result.note.startswith("no cells were detected on frames 2-5:"), result.note
