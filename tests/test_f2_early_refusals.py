"""Wrong numbers refused early (F2 of s55).

* ``consistent_labels(labels, lineage, first_frame=...)``: a first frame the pixels contradict (a lineage numbered
  from 0 given first_frame=5, a movie-numbered one given a first frame a few frames off, or none) was taken without a
  word and gave wrong begin / end / end reasons; now a ValueError names first_frame, the value given and the first
  frame the lineage implies. Time slices (``labels[3:]``, first_frame=3), results of part of a movie and hand edits
  (a track painted past its row) are taken as before.
* The cell diameter range is refused while the arguments are checked, before the model is built: ``track --auto``
  (a range of which no cell fits the frames: read from the stack's shape; MIN < 2 with blob seeding), ``batch(auto=
  True)`` (the range's values before any worker starts; a range that fits no stack's frames from their shapes), and a
  batch stack whose frames are too small fails before its model is built.

No model is mocked: the order of the refusals is shown with a checkpoint file that cannot be read (the model's build
fails on it), and the worker's model builds are counted by the worker itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2 import cli
from napari_sam2.batch import batch
from napari_sam2.batch_worker import ModelSpec, StackTask, model_builds, process_stack
from sam2_model.seeding import blob_points
from sam2_model.tracking.lineage import Lineage, Track, consistent_labels


# ------------------------------------------------------------------ first_frame

def whole_movie():
    """(labels (8, 32, 32), lineage numbered from 0): track 1 on frames 0-7; track 2 on 0-4 (left the field);
    track 3 on 0-1 (lost)."""
    labels = np.zeros((8, 32, 32), np.uint32)
    labels[:, 10:16, 10:16] = 1
    labels[:5, 1:5, 20:24] = 2
    labels[:2, 20:26, 20:26] = 3
    return labels, Lineage([Track(1, 0, 7, 0, "end of stack"), Track(2, 0, 4, 0, "left the field"),
                            Track(3, 0, 1, 0, "lost")])


def spans(table: Lineage) -> dict:
    return {t.track_id: (t.begin, t.end, t.end_reason) for t in table.rows()}


@pytest.mark.parametrize("first", [5, 1])
def test_a_lineage_numbered_from_0_given_another_first_frame_is_refused(first):
    """Before: first_frame=5 gave track 2 "lost" on frame 0 (its row shifted to -5..-1) and track 3 dropped to
    "lost" without a word; first_frame=1 turned "left the field" into "lost"."""
    labels, lineage = whole_movie()
    with pytest.raises(ValueError, match=rf"first_frame={first} does not match the lineage: track 1 has pixels on "
                                         rf"the labels' frames 0-7, which first_frame={first} numbers {first}-"
                                         rf"{7 + first}, outside its frames 0-7, as do 2 more of the 3 tracks in the labels; "
                                         r"the lineage implies first_frame=0, with which every track holds"):
        consistent_labels(labels, lineage, first_frame=first)
    _, table = consistent_labels(labels, lineage, first_frame=0)
    assert spans(table) == {1: (0, 7, "end of stack"), 2: (0, 4, "left the field"), 3: (0, 1, "lost")}


@pytest.mark.parametrize("first", [3, 7])
def test_a_movie_numbered_lineage_given_a_first_frame_off_by_some_frames_is_refused(first):
    """A result of frames 5-12 (its lineage names the movie's frames). Before: first_frame=3 or 7 was taken, and
    track 2 ended "lost" instead of "left the field"."""
    labels = np.zeros((8, 32, 32), np.uint32)
    labels[:, 10:16, 10:16] = 1
    labels[:3, 1:5, 20:24] = 2
    lineage = Lineage([Track(1, 5, 12, 0, "end of stack"), Track(2, 5, 7, 0, "left the field")])
    with pytest.raises(ValueError, match=rf"first_frame={first} does not match the lineage: .* outside its frames "
                                         r"5-12, as does 1 more of the 2 tracks in the labels; the lineage implies "
                                         r"first_frame=5, with which every track holds"):
        consistent_labels(labels, lineage, first_frame=first)
    _, table = consistent_labels(labels, lineage, first_frame=5)
    assert spans(table) == {1: (0, 7, "end of stack"), 2: (0, 2, "left the field")}


def test_a_movie_numbered_lineage_given_without_first_frame_is_refused_where_its_rows_end_inside_the_labels():
    """Frames 2-9 of a movie, every track ending before frame 9: no row ends past the labels' last frame, so the
    earlier check let it through (no first_frame: 0) and track 1's "left the field" became "lost"."""
    labels = np.zeros((8, 32, 32), np.uint32)
    labels[:4, 1:5, 10:16] = 1
    labels[:6, 20:26, 20:26] = 2
    lineage = Lineage([Track(1, 2, 5, 0, "left the field"), Track(2, 2, 7, 0, "lost")])
    with pytest.raises(ValueError, match=r"no first_frame \(0\) does not match the lineage: track 1 has pixels on the "
                                         r"labels' frames 0-3, .* outside its frames 2-5, as does 1 more of the 2 "
                                         r"tracks in the labels; the lineage implies "
                                         r"first_frame=2"):
        consistent_labels(labels, lineage)
    _, table = consistent_labels(labels, lineage, first_frame=2)
    assert spans(table) == {1: (0, 3, "left the field"), 2: (0, 5, "lost")}


def test_a_time_slice_takes_the_first_frames_its_pixels_allow_and_refuses_others():
    """labels[3:] of the whole movie: first frames 0-3 put every track's pixels inside its row (the pixels cannot
    tell them apart); 4 puts track 1's past its last frame, 7."""
    labels, lineage = whole_movie()
    _, table = consistent_labels(labels[3:], lineage, first_frame=3)
    assert spans(table) == {1: (0, 4, "end of stack"), 2: (0, 1, "left the field")}
    with pytest.raises(ValueError, match=r"first_frame=4 does not match the lineage: track 1 has pixels on the "
                                         r"labels' frames 0-4, which first_frame=4 numbers 4-8, outside its frames "
                                         r"0-7, as does 1 more of the 2 tracks in the labels; the lineage implies a "
                                         r"first_frame of 0-3 \(labels that are a time "
                                         r"slice of the frames it names: the slice's first frame\)"):
        consistent_labels(labels[3:], lineage, first_frame=4)


def test_hand_edits_past_a_row_are_taken():
    """A track painted on frames past its row (a cell the tracker lost, painted on by hand): one of the three tracks
    is outside its row, a hand edit, so the first frame given is taken (its begin and end come from the pixels);
    tests/test_m5_first_frame_edits.py has edits with which another first frame fits every row."""
    labels, lineage = whole_movie()
    labels[2:4, 20:26, 20:26] = 3  # track 3 (row 0-1) painted on frames 2-3
    _, table = consistent_labels(labels, lineage, first_frame=0)
    assert spans(table)[3] == (0, 3, "lost")


# ------------------------------------------------------------------ the cell diameter range, before the model

def strip_stack(path: Path, frames: int = 4) -> Path:
    """A (frames, 24, 64) float32 TIFF: one bright blob moving right (frames 24 px across at their short side)."""
    yy, xx = np.mgrid[:24, :64]
    tifffile.imwrite(path, np.stack([np.exp(-((yy - 12) ** 2 + (xx - 20 - 2 * t) ** 2) / 20.0) * 1000 + 50
                                     for t in range(frames)]).astype(np.float32), photometric="minisblack")
    return path


@pytest.mark.parametrize("diameter, words", [
    (("30", "60"), "cell_diameter 30-60 px is wider than the 24 x 64 px frame, 24 px across at its short side: no "
                   "cell of that range fits in it; give a range of at most 24 px (e.g. 12 24) (--cell-diameter MIN "
                   "MAX; cell_diameter=(min, max)), or a larger frame"),
    (("1", "10"), "--cell-diameter MIN MAX: --seeding blobs looks for blobs of at least 2 px across, 2 <= MIN <= MAX; "
                  "got 1 10"),
])
def test_track_auto_refuses_the_range_before_the_model_is_built(tmp_path, capsys, diameter, words):
    """The checkpoint cannot be read: building the model would fail on it. Before: that was the error (the range was
    refused by the detector on the first frame, after the model load); now the range's is, and nothing is written."""
    stack = strip_stack(tmp_path / "strip.tif")
    (tmp_path / "bad.pt").write_text("not a checkpoint")
    code = cli.main(["track", str(stack), "--auto", "--cell-diameter", *diameter, "--table",
                     str(tmp_path / "tracks.csv"), "--checkpoint", str(tmp_path / "bad.pt")])
    assert code == 2
    err = capsys.readouterr().err
    assert words in err and "checkpoint" not in err.replace("(--cell-diameter", "")
    assert not (tmp_path / "tracks.csv").exists()


def test_the_early_words_are_the_blob_search_s_own():
    """The frame-size refusal is the detector's (seeding's) words; batch's MIN < 2 refusal is the blob search's."""
    frame = np.zeros((24, 64), np.float32)
    with pytest.raises(ValueError) as late:
        blob_points(frame, cell_diameter=(30, 60))
    assert "cell_diameter 30-60 px is wider than the 24 x 64 px frame" in str(late.value)
    with pytest.raises(ValueError, match=r"cell_diameter must satisfy 2 <= min <= max \(pixels\), got \(1, 10\)"):
        blob_points(frame, cell_diameter=(1, 10))


@pytest.mark.parametrize("diameter, words", [
    ((10, 5), r"cell_diameter must satisfy 0 < min <= max, got \(10, 5\)"),
    ((-3, 5), r"cell_diameter must satisfy 0 < min <= max, got \(-3, 5\)"),
    (("a", 3), r"cell_diameter must be two numbers \(min, max\) in pixels, got \('a', 3\)"),
    ((1, 10), r"cell_diameter must satisfy 2 <= min <= max \(pixels\), got \(1, 10\)"),
    ((30, 60), r"strip.tif: cell_diameter 30-60 px is wider than the 24 x 64 px frame, 24 px across at its short "
               r"side: no cell of that range fits in it"),
])
def test_batch_refuses_the_range_before_any_worker_starts(tmp_path, diameter, words):
    """``client`` is no cluster: a run that got as far as its workers would fail on it. Before: the range was refused
    by every stack's task after its model was built (or the run failed on the client); now batch refuses it while
    checking its arguments, and creates no output folder."""
    stack = strip_stack(tmp_path / "strip.tif")
    with pytest.raises(ValueError, match=words):
        batch(stack, tmp_path / "out", auto=True, client=object(), progress=False, cell_diameter=diameter)
    assert not (tmp_path / "out").exists()


def test_batch_grid_seeding_takes_a_small_minimum():
    """The blob search's MIN >= 2 is not asked of grid seeding (checked without a run: the arguments only)."""
    from napari_sam2.batch_inputs import check_cell_diameter_option

    check_cell_diameter_option({"cell_diameter": (1, 10), "seeding": "grid"})
    with pytest.raises(ValueError, match="2 <= min <= max"):
        check_cell_diameter_option({"cell_diameter": (1, 10), "seeding": "grid+blobs"})


def test_a_batch_stack_too_small_for_the_range_fails_before_its_model_is_built(tmp_path):
    """One stack of a batch whose other stacks fit the range: its task fails with the detector's words and builds no
    model (before: it built the model, then the detector refused the range on its first frame)."""
    stack = strip_stack(tmp_path / "strip.tif")
    spec = ModelSpec(model="demo", checkpoint="embedded", device="cpu", image_size=None, torch_threads=1)
    task = StackTask("strip", str(stack), str(tmp_path / "out"), spec, auto=True,
                     tracking_options={"cell_diameter": (30, 60)})
    (tmp_path / "out").mkdir()
    before = model_builds().get("demo", 0)
    row = process_stack(task)
    assert row["status"] == "failed"
    assert "cell_diameter 30-60 px is wider than the 24 x 64 px frame" in row["error"]
    assert model_builds().get("demo", 0) == before
