"""Lineage table, CTC writer/reader/checks, GEFF, CSV and Tracks-layer data (no model involved)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from lineage_examples import division_stack
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import (Lineage, Track, TrackingResult, check_ctc, ctc_consistent, read_ctc, read_geff,
                                 tracks_layer_data, write_ctc, write_ctc_ground_truth, write_geff, write_track_table)


def test_lineage_rejects_bad_rows() -> None:
    lineage = Lineage()
    lineage.add(1, 0)
    with pytest.raises(ValueError, match="already exists"):
        lineage.add(1, 3)
    with pytest.raises(ValueError, match="parent 7"):
        lineage.add(2, 3, parent=7)
    with pytest.raises(ValueError, match="track_id must be a positive"):
        Lineage([Track(0, 0, 1)])
    with pytest.raises(ValueError, match="end_reason"):
        lineage.close(1, 2, "vanished")


def test_checker_finds_each_broken_rule() -> None:
    labels, lineage = division_stack()
    problems = check_ctc(labels, lineage)
    assert len(problems) == 1 and "frame 2" in problems[0] and "[4]" in problems[0]  # the gap of track 4
    late_parent = Lineage([Track(1, 0, 2), Track(2, 2, 3, 1), Track(3, 2, 3, 1), Track(4, 0, 3)])
    assert any("parent 1 ends at 2" in p for p in check_ctc(labels, late_parent))
    orphan = Lineage([Track(1, 0, 1), Track(2, 2, 3, 9), Track(3, 2, 3, 1), Track(4, 0, 3)])
    assert any("parent 9 does not exist" in p for p in check_ctc(labels, orphan))


def test_consistent_splits_gaps_and_keeps_divisions() -> None:
    labels, lineage = division_stack()
    fixed, table = ctc_consistent(labels, lineage)
    assert check_ctc(fixed, table) == []
    rows = {t.track_id: (t.begin, t.end, t.parent) for t in table.rows()}
    assert rows[1] == (0, 1, 0) and rows[2] == (2, 3, 1) and rows[3] == (2, 3, 1)
    assert rows[4] == (0, 1, 0) and rows[5] == (3, 3, 4)  # the piece after the gap continues track 4
    assert (fixed[3] == 5).sum() == 16 and not (fixed[3] == 4).any()
    assert table.divisions() == {1: [2, 3]}


def test_consistent_end_reason_follows_where_the_pixels_end() -> None:
    """A track clipped (hand edits) before the last frame is "lost", not its old "end of stack"; one that still
    divides stays "divided"; one that ends on the last frame is "end of stack"; one with no pixels has no row."""
    labels = np.zeros((8, 8, 8), np.uint32)
    labels[0:5, 0:2, 0:2] = 1  # was 0-7, "end of stack": erased on frames 5-7
    labels[0:3, 4:6, 0:2] = 2  # divided at 2 into 3 and 4
    labels[3:8, 4:5, 4:6] = 3
    labels[3:6, 6:7, 4:6] = 4  # was "lost" at 7; now ends at 5 with a longer life erased
    labels[2:8, 0:2, 6:8] = 6  # painted by hand, no row: on to the last frame
    lineage = Lineage([Track(1, 0, 7, 0, "end of stack"), Track(2, 0, 2, 0, "divided"), Track(3, 3, 7, 2, "active"),
                       Track(4, 3, 7, 2, "lost"), Track(5, 0, 7, 0, "end of stack")])  # 5: erased everywhere
    fixed, table = ctc_consistent(labels, lineage)
    rows = {t.track_id: (t.begin, t.end, t.parent, t.end_reason) for t in table.rows()}
    assert rows == {1: (0, 4, 0, "lost"), 2: (0, 2, 0, "divided"), 3: (3, 7, 2, "end of stack"),
                    4: (3, 5, 2, "lost"), 6: (2, 7, 0, "end of stack")}
    assert check_ctc(fixed, table) == []


def test_write_read_ctc_roundtrip_and_atomic(tmp_path: Path) -> None:
    labels, lineage = division_stack()
    out, written = write_ctc(tmp_path / "res", labels, lineage)
    assert sorted(p.name for p in out.iterdir()) == [f"mask{t:03d}.tif" for t in range(4)] + ["res_track.txt"]
    back, table = read_ctc(out)
    assert back.dtype == np.uint32 and back.shape == labels.shape
    assert (table.to_array() == written.to_array()).all()
    assert (out / "res_track.txt").read_text().splitlines()[1] == "2 2 3 1"
    with pytest.raises(ValueError, match="not empty"):
        write_ctc(out, labels, lineage)
    bad = Lineage([Track(1, 0, 1), Track(2, 2, 3, 1), Track(3, 2, 3, 1)])  # track 4 is missing from the table
    labels_big = labels.copy()
    labels_big[0, 0, 0] = 70000  # does not fit a uint16 CTC file
    with pytest.raises(ValueError, match="65535"):
        write_ctc(tmp_path / "bad", labels_big, bad)
    assert not (tmp_path / "bad").exists() and [p.name for p in tmp_path.iterdir()] == ["res"]


def test_ground_truth_layout_from_synthetic(tmp_path: Path) -> None:
    tl = make_timelapse(num_frames=12, shape=(96, 96), num_cells=5, seed=900_011)
    gt = write_ctc_ground_truth(tmp_path / "01_GT", tl.labels, tl.parents, seg_frames=[0, 5])
    assert (gt / "TRA" / "man_track.txt").is_file() and (gt / "TRA" / "man_track011.tif").is_file()
    assert sorted(p.name for p in (gt / "SEG").iterdir()) == ["man_seg000.tif", "man_seg005.tif"]
    labels, table = read_ctc(gt / "TRA")
    assert check_ctc(labels, table) == []
    for child, parent in tl.parents.items():
        if child in table and parent in table:
            assert table[child].parent == parent


def test_table_geff_and_tracks_layer(tmp_path: Path) -> None:
    labels, lineage = division_stack()
    fixed, table = ctc_consistent(labels, lineage)
    result = TrackingResult(labels=fixed, lineage=table)
    path = write_track_table(tmp_path / "tracks.csv", table)
    rows = list(csv.DictReader(path.open()))
    assert [r["parent_id"] for r in rows] == ["0", "1", "1", "0", "4"] and rows[0]["end_reason"] == "divided"
    data, graph = tracks_layer_data(result)
    assert data.shape == (2 + 2 + 2 + 2 + 1, 4)
    assert graph == {2: [1], 3: [1], 5: [4]}
    first = data[(data[:, 0] == 1) & (data[:, 1] == 0)][0]
    assert np.allclose(first[2:], [4.5, 4.5])
    geff_path = write_geff(tmp_path / "tracks.geff", fixed, table)
    graph_nx, meta = read_geff(geff_path)
    assert graph_nx.number_of_nodes() == len(data)
    # edges: one per consecutive pair inside a track (1+1+1+1 = 4) plus parent -> first daughter node (3)
    assert graph_nx.number_of_edges() == 7
    assert [a.name for a in meta.axes] == ["t", "y", "x"]
    with pytest.raises(ValueError, match="exists"):
        write_geff(geff_path, fixed, table)


def test_a_geff_replaced_keeps_the_old_one_when_the_new_cannot_be_put_in_place(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """write_geff(overwrite=True) deleted the earlier GEFF before renaming the new one in: a failure in between left
    none. Now the old one is moved aside and comes back (the rename is made to fail here)."""
    import os

    labels, lineage = division_stack()
    fixed, table = ctc_consistent(labels, lineage)
    path = write_geff(tmp_path / "tracks.geff", fixed, table)
    before = sorted(p.relative_to(path) for p in path.rglob("*"))
    real_replace = os.replace

    def failing(src, dst):
        if Path(dst) == path and not Path(src).name.startswith("."):  # the new GEFF's rename; the old one's goes back
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk full"):
        write_geff(path, fixed, table, overwrite=True)
    monkeypatch.setattr(os, "replace", real_replace)
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == before
    assert read_geff(path)[0].number_of_nodes() > 0
    assert [p.name for p in tmp_path.iterdir()] == ["tracks.geff"]  # nothing left beside it
