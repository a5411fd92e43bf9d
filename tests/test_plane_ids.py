"""PlaneIds: the objects table learns which ids each labels plane holds from the writes, not by re-reading planes."""

from __future__ import annotations

import numpy as np

from napari_sam2.labels_writer import PlaneIds, RunJournal, ids_in_plane


def test_ids_come_from_journal_writes_and_a_brush_needs_forget():
    labels = np.zeros((3, 16, 16), np.uint32)
    labels[1, 2:5, 2:5] = 7
    planes = PlaneIds(labels)
    assert planes.ids((1,)) == {7} and planes.ids((0,)) == set()
    labels[1, 8:10, 8:10] = 9  # a brush stroke: not a journal write
    assert planes.ids((1,)) == {7}  # known, not read again
    planes.forget()
    assert planes.ids((1,)) == {7, 9}
    journal = RunJournal()
    plane = np.zeros((16, 16), np.uint32)
    plane[0, 0] = 3
    journal.write(labels, (0,), plane)  # a run's write: known at once
    assert planes.ids((0,)) == {3}
    journal.undo(labels)  # and an undo
    assert planes.ids((0,)) == set()


def test_ids_in_plane_small_large_and_signed_values():
    assert ids_in_plane(np.array([[0, 5], [5, 2]], np.uint16)) == {2, 5}
    assert ids_in_plane(np.array([[0, 2**31]], np.uint32)) == {2**31}
    assert ids_in_plane(np.array([[-1, 0, 4]], np.int32)) == {-1, 4}
    assert ids_in_plane(np.zeros((0, 3), np.uint8)) == set()
