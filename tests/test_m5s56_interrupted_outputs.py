"""A Ctrl-C'd ``napari-sam2 track --auto`` writes honest outputs (M5, s56, review R3): the tracks still followed
when the run stopped end "run stopped" in the tracks table, in both directions (before: "end of stack", which going
backwards means "reached frame 0"); the two stderr lines agree on what was written and name frames in the stack's
numbers (before: "frame 3 of 0-5" for a ``--frames 2-7`` cut, and "as a shorter movie" for a backward run that wrote
every frame), saying which written frames are empty; a stopped forward run gets the end-of-run division steps
(backdating a division, undoing short ones) of a whole run of its frames (before: skipped, a division a frame late).

Real demo model on a small synthetic movie; Ctrl-C is a KeyboardInterrupt raised from the command's progress bar
(test_a1_auto_interrupt's)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import tifffile
import tqdm

from napari_sam2.cli import main
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking.lineage import Lineage, Track, consistent_labels
from test_a1_auto_interrupt import ctrl_c_after

FRAMES = 8


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Path:
    movie = make_timelapse(num_frames=FRAMES, shape=(64, 64), num_cells=3, seed=561)
    path = tmp_path_factory.mktemp("m5") / "movie.tif"
    tifffile.imwrite(path, movie.image)
    return path


def run_stopped(stack: Path, tmp_path: Path, monkeypatch, frames_done: int, *extra: str):
    monkeypatch.setattr(tqdm, "tqdm", ctrl_c_after(frames_done))
    table = tmp_path / "t.csv"
    code = main(["track", str(stack), "--auto", "--device", "cpu", "--table", str(table), *extra])
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    return code, rows


@pytest.mark.parametrize("backward", [False, True], ids=["forward", "backward"])
def test_tracks_still_followed_end_run_stopped_not_end_of_stack(stack: Path, tmp_path: Path, capsys, monkeypatch,
                                                               backward: bool) -> None:
    way = ["--start-frame", "7", "--direction", "backward"] if backward else []
    code, rows = run_stopped(stack, tmp_path, monkeypatch, 3, *way)  # frames 7-5 (forward: 0-2) done
    err = capsys.readouterr().err
    assert code == 130 and rows
    assert {row["end_reason"] for row in rows} == {"run stopped"}  # none reached frame 0 (forward: the last frame)
    assert "shorter movie" not in err
    if backward:
        assert "interrupted (Ctrl-C) during frame 4 of 0-7: writing the frames finished, 5-7" in err
        assert "stopped at frame 4 of 0-7: wrote frames 0-7, frames 0-4 empty (not tracked)" in err
    else:
        assert "stopped at frame 3 of 0-7: wrote frames 0-2;" in err


def test_a_cut_names_the_stacks_frames_and_the_empty_ones(stack: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    code, rows = run_stopped(stack, tmp_path, monkeypatch, 3, "--frames", "2-7", "--start-frame", "3")
    err = capsys.readouterr().err
    assert code == 130 and {row["end_reason"] for row in rows} == {"run stopped"}
    assert "during frame 6 of 2-7: writing the frames finished, 3-5" in err  # the stack's 3, 4, 5 done
    assert "stopped at frame 6 of 2-7: wrote frames 0-3 (the stack's 2-5), frame 0 (the stack's 2) empty" in err
    assert "of 0-5" not in err


def test_consistent_labels_keeps_run_stopped_where_the_track_still_ends() -> None:
    import numpy as np

    labels = np.zeros((4, 6, 6), dtype=np.uint32)
    labels[:, 1:3, 1:3] = 1  # to the last frame: stopped there, not the stack's end
    labels[:2, 4:6, 4:6] = 2  # stopped on frame 1 once, but its pixels now end there... as recorded
    labels[:3, 0, 5] = 3  # recorded as stopped on frame 3; its pixels end on 2 (an edit): no longer "run stopped"
    lineage = Lineage([Track(1, 0, 3, 0, "run stopped"), Track(2, 0, 1, 0, "run stopped"),
                       Track(3, 0, 3, 0, "run stopped")])
    _, table = consistent_labels(labels, lineage)
    assert {t.track_id: t.end_reason for t in table.rows()} == {1: "run stopped", 2: "run stopped", 3: "lost"}
    _, table = consistent_labels(labels, Lineage([Track(1, 0, 3), Track(2, 0, 1), Track(3, 0, 2)]))  # "active"
    assert {t.track_id: t.end_reason for t in table.rows()} == {1: "end of stack", 2: "lost", 3: "lost"}


def test_a_stopped_forward_run_gets_the_division_steps_of_a_whole_run_of_its_frames() -> None:
    """Frames 0-6 of a run stopped during frame 7 are what a whole run of frames 0-6 gives (before: the division
    steps were skipped, so cell 4's division, seen on detection frame 5, stayed there: one frame late)."""
    import numpy as np

    import sam2_model as sm
    from sam2_model.tracking import track_cells

    def ctrl_c_after_7(done: int, total: int) -> None:
        if done >= 7:
            raise KeyboardInterrupt

    model = sm.build_model("demo", checkpoint="download")
    movie = make_timelapse(num_frames=8, shape=(128, 128), num_cells=6, seed=900719).image
    whole = track_cells(model, movie[:7])
    assert [(t.begin, t.end) for t in whole.lineage.rows() if t.end_reason == "divided"] == [(0, 3)]
    with pytest.raises(KeyboardInterrupt) as stop:
        track_cells(model, movie, progress=ctrl_c_after_7)
    partial = stop.value.result
    np.testing.assert_array_equal(partial.labels[:7], whole.labels)
    assert [(t.track_id, t.begin, t.end, t.parent) for t in partial.lineage.rows()] == [
        (t.track_id, t.begin, t.end, t.parent) for t in whole.lineage.rows()]
