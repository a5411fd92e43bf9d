"""Layer <-> prompt conversion and mask writing, without a viewer."""

from __future__ import annotations

import numpy as np
import pytest

from napari_sam2.labels_writer import RunJournal, compose_frame
from napari_sam2.layout import FrameView, StackLayout, world_to_data
from napari_sam2.prompts import clip_to_frame, collect_prompts


def test_napari_row_col_becomes_sam_x_y():
    layout = StackLayout(ndim=3, frame_axis=0)
    prompts = collect_prompts(
        np.array([[2, 10.0, 30.0], [2, 12.0, 31.0], [0, 5.0, 6.0]]), [True, False, True], [1, 1, 7], [], [], layout
    )
    assert [(p.frame, p.obj_id) for p in prompts] == [(0, 7), (2, 1)]
    np.testing.assert_array_equal(prompts[1].points, [[30.0, 10.0], [31.0, 12.0]])
    np.testing.assert_array_equal(prompts[1].labels, [1, 0])


def test_scale_and_translate_are_respected():
    # A points layer in world units (um) and an image with 0.5 um pixels translated by 10 um.
    world_points = np.array([[3.0, 20.0, 15.0]])
    data = world_to_data(world_points, [1, 1, 1], [0, 0, 0], [1, 0.5, 0.5], [0, 10.0, 5.0])
    np.testing.assert_allclose(data, [[3.0, 20.0, 20.0]])
    prompt = collect_prompts(data, [True], [4], [], [], StackLayout(3, 0))[0]
    np.testing.assert_allclose(prompt.points, [[20.0, 20.0]])


def test_boxes_from_rectangles_any_corner_order():
    layout = StackLayout(ndim=3, frame_axis=0)
    rect = np.array([[1, 40, 10], [1, 40, 60], [1, 5, 60], [1, 5, 10]], float)  # (frame, row, col)
    prompts = collect_prompts(np.zeros((0, 3)), [], [], [rect], [3], layout)
    assert prompts[0].frame == 1 and prompts[0].obj_id == 3
    np.testing.assert_array_equal(prompts[0].box, [10, 5, 60, 40])
    clipped = clip_to_frame(prompts[0], height=32, width=50)
    np.testing.assert_array_equal(clipped.box, [10, 5, 49.5, 31.5])  # the image's outer pixel edges
    with pytest.raises(ValueError, match="single frame"):
        bad = rect.copy()
        bad[0, 0] = 2
        collect_prompts(np.zeros((0, 3)), [], [], [bad], [3], layout)


def test_4d_propagating_time_at_fixed_z_and_through_z():
    through_time = StackLayout(ndim=4, frame_axis=0, fixed=((1, 5),))  # TZYX at z=5
    points = np.array([[3, 5, 10, 20], [3, 6, 10, 20]], float)  # the second is on another z slice
    prompts = collect_prompts(points, [True, True], [1, 1], [], [], through_time)
    assert len(prompts) == 1 and prompts[0].frame == 3
    through_z = StackLayout(ndim=4, frame_axis=1, fixed=((0, 3),))  # propagate z at t=3
    prompts = collect_prompts(points, [True, True], [1, 1], [], [], through_z)
    assert [p.frame for p in prompts] == [5, 6]
    assert through_z.frame_index_in_labels(6) == (3, 6, slice(None), slice(None))


def test_layout_rejects_unassigned_axes():
    with pytest.raises(ValueError, match="neither propagated"):
        StackLayout(ndim=4, frame_axis=0)
    with pytest.raises(ValueError, match="spatial"):
        StackLayout(ndim=3, frame_axis=2)


def test_frame_view_reads_planes_and_moves_channels_last():
    data = np.arange(2 * 3 * 4 * 5 * 6).reshape(2, 3, 4, 5, 6)  # T, C, Z, Y, X
    layout = StackLayout(ndim=5, frame_axis=0, channel_axis=1, fixed=((2, 1),))
    view = FrameView(data, layout)
    assert view.shape == (2, 5, 6, 3) and len(view) == 2
    np.testing.assert_array_equal(view[1], np.moveaxis(data[1, :, 1], 0, -1))
    assert layout.labels_shape(data.shape) == (2, 4, 5, 6)
    assert layout.frame_index_in_labels(1) == (1, 1, slice(None), slice(None))
    with pytest.raises(IndexError):
        view[2]


class _ReadLog:
    """An array-like that records the index of every read (as a lazy zarr or dask level would be read)."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.ndim, self.reads = data, data.shape, data.dtype, data.ndim, []

    def __getitem__(self, key):
        self.reads.append(key)
        return self.data[key]


def test_frame_view_central_reads_only_the_centre_of_one_plane():
    """What "auto" measures of a big image on napari's GUI thread is the central part of one frame, read alone (the
    whole frame was read before: 400 MB for a 20000 x 20000 uint8 slide)."""
    data = np.arange(3 * 2 * 40 * 50).reshape(3, 2, 40, 50)  # T, C, Y, X
    log = _ReadLog(data)
    view = FrameView(log, StackLayout(ndim=4, frame_axis=0, channel_axis=1))
    centre = view.central(2, 16)
    np.testing.assert_array_equal(centre, np.moveaxis(data[2, :, 12:28, 17:33], 0, -1))
    assert log.reads == [(2, slice(None), slice(12, 28), slice(17, 33))]
    np.testing.assert_array_equal(view.central(0, 64), view[0])  # a side past the frame: all of it
    with pytest.raises(IndexError):
        view.central(3, 16)


def test_compose_frame_argmax_and_keeps_foreign_labels():
    current = np.zeros((4, 4), np.uint16)
    current[0, 0] = 9  # painted by hand, not a session object
    current[3, 3] = 2  # an old mask of object 2
    logits = np.full((2, 4, 4), -5.0, np.float32)
    logits[0, 1:3, 1:3] = 1.0  # object 1
    logits[1, 2:4, 2:4] = 2.0  # object 2 wins where they overlap
    plane = compose_frame(current, [1, 2], logits, session_ids={1, 2})
    assert plane[0, 0] == 9
    assert plane[1, 1] == 1 and plane[2, 2] == 2 and plane[3, 3] == 2
    assert plane[3, 0] == 0 and current[3, 3] == 2  # the input is not modified


def test_highest_logit_is_numpys_argmax_and_max_ties_to_the_first():
    """compose_frame's running maximum gives np.argmax / np.max over the objects, ties to the first object, on random
    logits with many ties (rounded) and on one object."""
    from napari_sam2.labels_writer import highest

    rng = np.random.default_rng(3)
    for shape in ((7, 33, 21), (1, 8, 8), (80, 16, 16)):
        logits = np.round(rng.normal(size=shape), 1).astype(np.float32)  # ties at almost every pixel of 80 objects
        best, top = highest(logits)
        np.testing.assert_array_equal(best, np.argmax(logits, axis=0))
        np.testing.assert_array_equal(top, logits.max(axis=0))
        assert not np.shares_memory(top, logits)


def test_journal_undo_restores_exactly():
    labels = np.zeros((3, 4, 4), np.uint16)
    labels[1, 0, 0] = 5
    before = labels.copy()
    journal = RunJournal()
    journal.write(labels, (1, slice(None), slice(None)), np.full((4, 4), 2, np.uint16))
    journal.write(labels, (1, slice(None), slice(None)), np.full((4, 4), 3, np.uint16))
    journal.write(labels, (2, slice(None), slice(None)), np.full((4, 4), 3, np.uint16))
    assert len(journal) == 2 and labels[1, 0, 0] == 3
    journal.undo(labels)
    np.testing.assert_array_equal(labels, before)
