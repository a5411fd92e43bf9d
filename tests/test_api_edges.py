"""Edge cases of the console API and of linking label ids: track_cells' arguments checked before any model work
(with a viewer too), and link_by_overlap on uint64 ids near 2**64 - 1."""

from __future__ import annotations

import re

import numpy as np
import pytest

import napari_sam2
from napari_sam2 import track_cells
from napari_sam2.image_size import auto_image_size
from sam2_model.train.stack_labels import link_by_overlap
from widget_helpers import open_widget, small_movie

RUN = dict(checkpoint="embedded", device="cpu")


@pytest.fixture
def no_model(monkeypatch):
    """Fail loudly if track_cells reaches model building (it imports sam2_model.build_model when called)."""
    import sam2_model

    def tripwire(*args, **kwargs):
        raise AssertionError("build_model was called before the arguments were checked")

    monkeypatch.setattr(sam2_model, "build_model", tripwire)


# ------------------------------------------------------------------ track_cells: arguments checked first
@pytest.mark.gui
def test_track_cells_in_a_viewer_refuses_a_start_frame_the_stack_lacks_before_any_work(make_napari_viewer, tmp_path,
                                                                                       monkeypatch):
    """With a viewer a start_frame of -1, 2, 1.5, True or "1" on a 2-frame stack reached the panel's run: the widget
    built its model and added the masklets layer, then a FrameIndexError ("frame index -1 is out of range") that
    did not name start_frame. Now a ValueError naming it and the stack's frames comes first, for the image named
    (here not the current one), and nothing is built or added."""
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch,
                                 ("two", small_movie(2, 3).image), ("four", small_movie(4, 4).image))
    widget.image_combo.setCurrentText("four")
    layers = [layer.name for layer in viewer.layers]
    with pytest.raises(ValueError, match=r"start_frame must be a frame of the stack, an integer 0\.\.3, got 4"):
        track_cells(viewer, start_frame=4)  # the current image's frames
    for start in (-1, 2, 1.5, True, "1"):
        with pytest.raises(ValueError, match=rf"start_frame must be a frame of the stack, an integer 0\.\.1, got "
                                             rf"{re.escape(repr(start))}"):
            track_cells(viewer, "two", start_frame=start)
    assert widget.image_combo.currentText() == "four"  # a refused call leaves the image the widget showed (review)
    with pytest.raises(ValueError, match=r"model/checkpoint/image_size: with a viewer"):
        track_cells(viewer, image_size=256)  # was ignored silently: the widget's input size is used
    assert [layer.name for layer in viewer.layers] == layers and widget.controller is None
    assert widget.picker.worker is None and napari_sam2.get_widget(viewer) is widget


@pytest.mark.parametrize("change, message", [
    (dict(progress=3), r"progress must be a function called with \(frames done, frames to do\), or None; got 3"),
    (dict(image_size=100), r"image_size must be a positive multiple of 32 .* got 100"),
    (dict(image_size="large"), r"image_size must be a positive multiple of 32 .* got 'large'"),
])
def test_track_cells_refuses_bad_progress_and_image_size_before_the_model(no_model, change, message):
    """progress=3 was a TypeError after the model was built and a frame tracked; image_size=100 reached
    build_model."""
    with pytest.raises(ValueError, match=message):
        track_cells(small_movie(2, 3).image, **change, **RUN)


def test_track_cells_picks_image_size_auto_from_the_first_frame_as_segment_does(monkeypatch):
    """image_size="auto" (segment()'s and track's word) was a TypeError from build_model; it is the size
    auto_image_size picks for the first frame."""
    import sam2_model

    built = []
    real = sam2_model.build_model

    def recording(*args, **kwargs):  # the real model, its input size noted
        built.append(kwargs.get("image_size"))
        return real(*args, **kwargs)

    monkeypatch.setattr(sam2_model, "build_model", recording)
    image = small_movie(1, 3).image[0]
    result = track_cells(image, image_size="auto", **RUN)
    assert built == [auto_image_size(image, "demo").image_size] and result.labels.shape == image.shape


# ------------------------------------------------------------------ link_by_overlap: uint64 ids
def test_linking_keeps_uint64_ids_near_2_to_the_64_whole():
    """uint64 ids of 2**63 and above were written into int64 (wrapped to negative numbers, so the next frame's
    cells never met them), and a new id above 2**64 - 2 was an OverflowError. The linked labels are uint64: ids
    are kept whole, a cell that moves keeps its id, and new cells get ids that fit (the smallest unused once
    none is left above)."""
    top = np.iinfo(np.uint64).max
    labels = np.zeros((3, 20, 40), np.uint64)
    labels[0, 2:10, 2:10] = top - 1
    labels[1, 2:10, 3:11] = top - 7  # the same cell, moved a pixel, numbered afresh
    labels[1, 12:18, 30:36] = 5  # a cell from nowhere: id top (the one above top - 1)
    labels[2, 2:10, 4:12] = 3
    labels[2, 12:18, 31:37] = top  # cell 5 again
    labels[2, 0:2, 20:30] = 9  # another new cell: no id is left above top, so the smallest unused, 1
    linked = link_by_overlap(labels)
    assert linked.dtype == np.uint64
    assert set(np.unique(linked[1][labels[1] == top - 7]).tolist()) == {top - 1}
    assert set(np.unique(linked[2][labels[2] == 3]).tolist()) == {top - 1}
    assert set(np.unique(linked[1][labels[1] == 5]).tolist()) == {top}
    assert set(np.unique(linked[2][labels[2] == top]).tolist()) == {top}
    assert set(np.unique(linked[2][labels[2] == 9]).tolist()) == {1}


def test_linking_int_labels_still_gives_int64():
    labels = np.zeros((2, 10, 10), np.uint16)
    labels[0, 1:5, 1:5], labels[1, 1:5, 2:6], labels[1, 6:9, 6:9] = 7, 2, 3
    linked = link_by_overlap(labels)
    assert linked.dtype == np.int64 and set(np.unique(linked[1]).tolist()) == {0, 7, 8}
