"""Results of part of a movie written out and used as a notebook user does (s54, F1):
``export_tracking`` of ``track_cells(movie, frames=(A, B))`` writes what ``napari-sam2 track --frames A-B`` writes
(numbered from 0, each track ending for its own reason), ``write_ctc`` takes the result's ``first_frame``, the
blank-frame warnings of ``segment`` / ``track_cells`` name the movie's frames, and the Tracks data of such a result
the movie's frames. Real demo model, small synthetic movies."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_sam2
import sam2_model as sm
from napari_sam2.cli import main
from napari_sam2.export import Calibration
from napari_sam2.track_export import export_tracking
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import read_ctc, tracks_layer_data, write_ctc

FIRST, LAST = 1, 8  # of 10 frames


def _disc(plane: np.ndarray, cy: float, cx: float, radius: float, value: int) -> None:
    rows, cols = np.ogrid[:plane.shape[0], :plane.shape[1]]
    plane[(rows - cy) ** 2 + (cols - cx) ** 2 <= radius * radius] = value


@pytest.fixture(scope="module")
def movie() -> np.ndarray:
    """(10, 96, 96) uint8: a cell that stays, and one that moves right 8 px a frame and leaves the field on frame 7."""
    stack = np.full((10, 96, 96), 10, np.uint8)
    for t in range(len(stack)):
        _disc(stack[t], 30, 30, 9, 200)
        _disc(stack[t], 65, 40 + 8 * t, 9, 200)
    noise = np.random.default_rng(0).normal(0, 5, stack.shape)
    return np.clip(stack + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def net():
    return sm.build_model("demo", device="cpu")


@pytest.fixture(scope="module")
def part(movie, net):
    return napari_sam2.track_cells(movie, model=net, frames=(FIRST, LAST))


def _tree(folder: Path) -> dict:
    """{relative path: bytes} of every file under ``folder``."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _table(path: Path) -> list:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def test_export_of_a_range_result_writes_what_track_frames_writes(movie, part, tmp_path: Path, capsys) -> None:
    """Before: the tracks table, CTC folder and GEFF said "lost" where the tracker said "left the field" (the
    lineage's movie numbers were compared with the labels' index)."""
    assert part.first_frame == FIRST
    assert "left the field" in part.end_reasons.values(), part.lineage.rows()  # the moving cell, in the movie's words
    tifffile.imwrite(tmp_path / "movie.tif", movie)
    cli = tmp_path / "cli"
    code = main(["track", str(tmp_path / "movie.tif"), "--auto", "--device", "cpu", "--frames", f"{FIRST}-{LAST}",
                 "--ctc", str(cli / "res"), "--geff", str(cli / "tracks.geff"), "--table", str(cli / "tracks.csv"),
                 "-o", str(cli / "labels.tif")])
    assert code == 0, capsys.readouterr().err
    api = tmp_path / "api"
    for what, name in (("ctc", "res"), ("geff", "tracks.geff"), ("tracks", "tracks.csv"), ("labels", "labels.tif")):
        export_tracking(part, what, api / name)
    # the same ids, frames (from 0) and end reasons in every file
    assert _table(api / "tracks.csv") == _table(cli / "tracks.csv")
    rows = {int(r[0]): (int(r[1]), int(r[2]), r[4]) for r in _table(api / "tracks.csv")[1:]}
    moving = next(t for t in part.lineage.rows() if t.end_reason == "left the field")
    assert rows[moving.track_id] == (moving.begin - FIRST, moving.end - FIRST, "left the field")
    np.testing.assert_array_equal(tifffile.imread(api / "labels.tif"), tifffile.imread(cli / "labels.tif"))
    np.testing.assert_array_equal(tifffile.imread(api / "labels.tif"), part.labels)  # index 0: the movie's frame FIRST
    assert _tree(api / "res") == _tree(cli / "res") and (api / "res" / "mask000.tif").exists()
    _, back = read_ctc(api / "res")  # end reasons derived from the files, as the writer named them
    assert back[moving.track_id].end_reason == "left the field"
    assert _tree(api / "tracks.geff") == _tree(cli / "tracks.geff")


def test_write_ctc_of_a_range_result_takes_its_first_frame(part, tmp_path: Path) -> None:
    """Before: write_ctc(folder, result.labels, result.lineage) said "lost" for the cell that left the field, and had
    no way to be told the lineage's numbering."""
    _, written = write_ctc(tmp_path / "res", part.labels, part.lineage, first_frame=part.first_frame)
    assert {t.track_id: (t.begin, t.end, t.end_reason) for t in written.rows()} == \
        {t.track_id: (t.begin - FIRST, t.end - FIRST, t.end_reason) for t in part.lineage.rows()}
    with pytest.raises(ValueError, match=r"outside the labels' 8 frames numbered 0-7 \(no first_frame\): .* pass "
                                         r"first_frame=result.first_frame"):
        write_ctc(tmp_path / "other", part.labels, part.lineage)  # the movie's numbers, unsaid: refused
    assert not (tmp_path / "other").exists()


def test_a_calibrated_tracks_table_of_a_range_gives_the_movies_times(part, tmp_path: Path) -> None:
    """Before: the times were those of frames 0.. (the range's index times the interval), not the movie's."""
    path = export_tracking(part, "tracks", tmp_path / "tracks.csv",
                           calibration=Calibration(frame_interval=5.0, time_unit="minute"))
    header, *rows = _table(path)
    assert header == ["track_id", "begin", "end", "parent_id", "end_reason", "begin_time", "end_time", "time_unit"]
    for row in rows:
        assert float(row[5]) == 5.0 * (int(row[1]) + FIRST) and float(row[6]) == 5.0 * (int(row[2]) + FIRST)


def test_tracks_data_of_a_range_result_name_the_movies_frames(part) -> None:
    """Before: t was the labels' index (from 0) while the lineage, frames_tracked and measure() named the movie's."""
    data, graph = tracks_layer_data(part)
    assert len(data) and set(data[:, 1].astype(int)) == set(part.frames_tracked)
    for track in part.lineage.rows():
        frames = data[data[:, 0] == track.track_id, 1]
        assert (frames.min(), frames.max()) == (track.begin, track.end)
    rows = napari_sam2.measure(part)
    assert sorted((r["obj_id"], r["frame"]) for r in rows) == sorted((int(i), int(t)) for i, t in data[:, :2])


def _said(call) -> list:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [(str(w.message), w.filename) for w in caught if "blank" in str(w.message)]


def test_blank_frames_of_a_range_are_named_in_the_movies_numbers(net) -> None:
    """Before: "frame 2 is blank" for the movie's frame 4 of frames=(2, 6) (the index of the frames read)."""
    cells = make_timelapse(num_frames=8, shape=(96, 96), num_cells=4, seed=5301)
    image = cells.image.copy()
    image[4] = 0
    obj = clickable_objects(cells.labels[3])[0]
    clicks = [(3, *click_point(cells.labels[3] == obj)[::-1], 1, obj)]
    said = _said(lambda: napari_sam2.segment(image, clicks, model=net, frames=(2, 6)))
    assert [text.split(":")[0] for text, _ in said] == ["1 of the 4 frames tracked is blank (frame 4; frame 4"], said
    assert all(where.endswith("video_session.py") for _, where in said)  # raised by the session as it runs (s54 M2)
    image[3] = 0  # the prompted frame blank too
    said = _said(lambda: napari_sam2.segment(image, clicks, model=net, frames=(2, 6), object_window="off"))
    assert said[0][0].startswith("frame 3 is blank (every pixel is 0)"), said
    assert any(text.startswith("2 of the 4 frames tracked are blank (frames 3-4; frame 3:") for text, _ in said), said
    tracked = _said(lambda: napari_sam2.track_cells(image, model=net, frames=(2, 6)))
    assert tracked and all("blank (frame 3; frame 3:" in text or "blank (frame 4; frame 4:" in text
                           or "blank (frames 3-4; frame 3:" in text for text, _ in tracked), tracked
    whole = _said(lambda: napari_sam2.segment(image, clicks, model=net, object_window="off"))  # no range: as before
    assert whole[0][0].startswith("frame 3 is blank") and "video_session.py" in whole[0][1]
