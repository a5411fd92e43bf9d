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


def test_a_brush_stroke_makes_only_the_planes_it_touched_read_again():
    """napari's paint event names the stroke's history atoms: a paint (a box of slices) or a data_setitem (a
    multi-index) makes the planes they touch read again, the others stay known; an event that says nothing: all."""
    from napari.layers import Labels

    labels = np.zeros((3, 16, 16), np.uint32)
    labels[0, 0, 0], labels[2, 0, 0] = 4, 6
    layer = Labels(labels)
    planes = PlaneIds(labels)
    layer.events.paint.connect(planes.forget)
    assert [planes.ids((t,)) for t in range(3)] == [{4}, set(), {6}]
    labels[0, 1, 1] = 5  # behind everyone's back: only a full forget finds it
    layer.paint((1, 8, 8), 9)  # a brush stroke on plane 1
    assert [planes.ids((t,)) for t in range(3)] == [{4}, {9}, {6}]
    layer.data_setitem((np.array([2]), np.array([3]), np.array([3])), 7)
    assert [planes.ids((t,)) for t in range(3)] == [{4}, {9}, {6, 7}]
    planes.forget()
    assert planes.ids((0,)) == {4, 5}


def test_napari_undo_and_redo_of_a_brush_stroke_are_seen():
    """Fault: napari's Labels Undo / Redo puts a stroke's pixels back with no paint event, so the planes it touched
    kept the ids from before (the objects table said a cell was there after its stroke was undone). Strokes are
    remembered; a redraw (set_data, which undo sends) has their planes read again, the others stay known."""
    from napari.layers import Labels

    labels = np.zeros((3, 16, 16), np.uint32)
    labels[0, 0, 0] = 4
    layer = Labels(labels)
    planes = PlaneIds(labels)
    layer.events.paint.connect(planes.forget)
    layer.events.set_data.connect(planes.may_have_replayed)
    layer.paint((1, 8, 8), 9)
    assert [planes.ids((t,)) for t in range(3)] == [{4}, {9}, set()]
    labels[0, 1, 1] = 5  # behind everyone's back: plane 0 is not one a stroke touched, so it stays as known
    layer.undo()
    assert [planes.ids((t,)) for t in range(3)] == [{4}, set(), set()]
    layer.redo()
    assert planes.ids((1,)) == {9}
    layer.refresh()  # a redraw with no stroke replayed: the stroke's plane is read again, and is right
    assert planes.ids((1,)) == {9} and planes.ids((0,)) == {4}
