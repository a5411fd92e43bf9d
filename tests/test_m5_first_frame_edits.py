"""Hand edits of a few tracks never make consistent_labels / write_ctc refuse the right first_frame (M5, review R3).

F2's rule refused a first_frame whenever another value put every track's pixels inside its row; one cell painted a
frame past its row narrows those values and made the right one refused, with advice naming a wrong one. A first frame
is now refused only where most of the tracks in the labels (more than half, two or more) are outside their rows with
it while fewer than half are with another (tests/test_f2_early_refusals.py: wrong numberings still refused).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sam2_model.tracking.lineage import Lineage, Track, best_numberings, consistent_labels, numbering_misfits

GT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ctc-msc" / "01_GT" / "TRA"


def spans(table: Lineage) -> dict:
    return {t.track_id: (t.begin, t.end, t.end_reason) for t in table.rows()}


def movie() -> tuple:
    """(labels (30, 32, 32), lineage numbered from 0): track 1 on every frame, track 2 from frame 8 on, track 3 on
    frames 0-20 (lost)."""
    labels = np.zeros((30, 32, 32), np.uint32)
    labels[:, 2:6, 2:6] = 1
    labels[8:, 10:14, 10:14] = 2
    labels[:21, 20:24, 20:24] = 3
    return labels, Lineage([Track(1, 0, 29, 0, "end of stack"), Track(2, 8, 29, 0, "end of stack"),
                            Track(3, 0, 20, 0, "lost")])


@pytest.mark.parametrize("a, b", [(0, 10), (5, 15)])
def test_a_track_painted_a_frame_before_its_row_in_a_time_slice_is_taken(a, b):
    """labels[a:b] with first_frame=a, track 2 painted on frame 7 too (the tracker found it a frame late). Before:
    "first_frame=a does not match the lineage ... implies a first_frame of 1-..." (a wrong first frame)."""
    labels, lineage = movie()
    labels[7, 10:14, 10:14] = 2
    _, table = consistent_labels(labels[a:b], lineage, first_frame=a)
    assert spans(table) == {1: (0, 9, "end of stack"), 2: (7 - a, 9, "end of stack"), 3: (0, 9, "end of stack")}


def test_the_edit_with_a_wrong_numbering_is_still_refused_and_the_advice_names_the_right_one():
    """The whole edited movie given first_frame=2: all 3 tracks are off; with 0 only track 2 is (the edit)."""
    labels, lineage = movie()
    labels[7, 10:14, 10:14] = 2
    _, table = consistent_labels(labels, lineage, first_frame=0)
    assert spans(table) == {1: (0, 29, "end of stack"), 2: (7, 29, "end of stack"), 3: (0, 20, "lost")}
    with pytest.raises(ValueError, match=r"first_frame=2 does not match the lineage: track 1 has pixels on the labels' "
                                         r"frames 0-29, which first_frame=2 numbers 2-31, outside its frames 0-29, as "
                                         r"do 2 more of the 3 tracks in the labels; the lineage implies "
                                         r"first_frame=0, with which all but 1 of them hold their pixels \(hand edits "
                                         r"past a row are taken\)"):
        consistent_labels(labels, lineage, first_frame=2)


def test_one_misfit_in_three_is_an_edit_and_all_three_a_numbering():
    _, lineage = movie()
    edited = {1: (0, 29), 2: (7, 29), 3: (0, 20)}  # the labels' frames with pixels: track 2 painted on frame 7
    assert [t.track_id for t in numbering_misfits(lineage.rows(), edited, 0)] == [2]
    assert [t.track_id for t in numbering_misfits(lineage.rows(), edited, 2)] == [1, 2, 3]
    assert best_numberings(lineage.rows(), edited) == (1, [(0, 0)])
    head = {1: (0, 9), 2: (8, 9), 3: (0, 9)}  # labels[:10], unedited: first frames 0-11 fit every track
    assert best_numberings(lineage.rows(), head) == (0, [(0, 11)])


@pytest.mark.skipif(not GT.is_dir(), reason="the shared CTC data is absent")
def test_real_ground_truth_with_a_cell_painted_one_frame_past_its_row_is_taken():
    """R3's case: frames 2-11 of the MSC ground truth, cell 15 (lost after movie frame 2) painted on frame 3 too.
    Before: refused, "implies a first_frame of 0-1"."""
    from sam2_model.tracking.ctc_io import read_ctc

    lab, lineage = read_ctc(GT)
    edited = lab[2:12].copy()
    edited[1][edited[0] == 15] = 15
    _, table = consistent_labels(edited, lineage, first_frame=2)
    assert spans(table)[15] == (0, 1, "lost")
    whole = lab.copy()  # the same edit in the whole movie: the right first frame taken, a wrong one refused
    whole[3][whole[2] == 15] = 15
    _, table = consistent_labels(whole, lineage, first_frame=0)
    assert spans(table)[15] == (0, 3, "lost")
    with pytest.raises(ValueError, match=r"first_frame=1 does not match the lineage: .* as do 14 more of the 15 tracks "
                                         r"in the labels; the lineage implies first_frame=0, with which all but 1 of "
                                         r"them hold their pixels"):
        consistent_labels(whole, lineage, first_frame=1)
