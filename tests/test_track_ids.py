"""The object-id rules where "Track all cells" meets the segmentation widget's objects (napari_sam2._track_ids),
without a viewer: plain ids, a real lineage, real napari layers (no window) and real controllers on the embedded
demo model."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from napari_sam2 import _track_ids as ids
from sam2_model.tracking.lineage import Lineage, Track


def test_the_module_needs_no_qt():
    code = ("import sys, napari_sam2._track_ids; "
            "print(sorted(m for m in ('qtpy', 'PyQt5', 'PySide2') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_frame_ranges_and_free_ids_in_words():
    assert ids.frame_ranges([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"
    assert ids.frame_ranges([]) == "none"
    assert ids.free_ids_text(set()) == "1 and above"
    assert ids.free_ids_text({1, 2, 3}) == "4 and above"
    assert ids.free_ids_text({1, 2, 5}) == "3-4 or 6 and above"
    assert ids.free_ids_text({100}) == "1-20 or 101 and above"  # at most 20 gaps spelled out


def test_next_free_id_moved_seeds_and_the_id_above_the_tracks():
    assert ids.next_free_id() == 1 and ids.next_free_id(set(), {3}, {1, 7}) == 8
    # seeded labels 2 and 3 are tracks: they move above every id in use (tracks, widget, seeds), in order
    assert ids.moved_seed_ids([3, 2, 7], {1, 2, 3}, {9}) == {2: 10, 3: 11}
    assert ids.moved_seed_ids([5, 7], {1, 2, 3}, {9}) == {}  # none is a track: all keep their ids
    assert ids.id_above_tracks(1, set()) is None  # nothing tracked: the id stays
    assert ids.id_above_tracks(1, {2, 4}) == 5 and ids.id_above_tracks(9, {2, 4}) == 9


def test_messages_name_the_ids():
    assert ids.seed_ids_message({2: 10, 3: 11}, "4-8 or 12 and above") == (
        "Seeded label(s) 2, 3 are ids of cells 'Track all cells' tracked; they became object(s) 10, 11 (the other "
        "seeded labels keep their ids). Free ids: 4-8 or 12 and above.")
    assert ids.typed_id_message(3, 6, "6 and above").startswith(
        "Object id 3 is taken by a cell 'Track all cells' tracked (the tracks share the masklets layer); the Object "
        "id moved to 6. Free ids: 6 and above.")


def test_lineage_ids():
    assert ids.lineage_ids(None) == set() and ids.lineage_ids(Lineage()) == set()
    assert ids.lineage_ids(Lineage([Track(4, 0, 2), Track(7, 3, 5, parent=4)])) == {4, 7}


def test_widget_ids_gather_every_slice_session_the_clicks_and_the_boxes():
    napari = pytest.importorskip("napari")
    from sam2_model import build_model
    from sam2_model.evaluation import click_point
    from sam2_model.synthetic import make_timelapse

    from napari_sam2._image_state import ImageState, slice_key
    from napari_sam2.controller import SegmentationController
    from napari_sam2.layout import StackLayout
    from napari_sam2.prompts import FramePrompt

    movie = make_timelapse(num_frames=2, shape=(64, 64), num_cells=2, seed=3, divisions=False, enter_leave=False,
                           radius_fraction=0.15)
    stack = np.stack([movie.image] * 2, axis=1)  # (T, Z, Y, X): a session per z
    model = build_model("demo", device="cpu", image_size=128)
    labels = np.zeros(stack.shape, np.uint32)
    z0, z1 = (StackLayout(4, 0, None, ((1, z),)) for z in (0, 1))
    clicked = SegmentationController(model, stack, z0, labels)
    x, y = click_point(movie.labels[0] == 1)
    for _ in clicked.apply_prompts([FramePrompt(0, 4, points=np.array([[x, y]], float), labels=np.array([1]))]):
        pass
    seeded = SegmentationController(model, stack, z1, labels)  # never opened: its objects are its seeded masks
    seeded.mask_prompts = {(0, 6): FramePrompt(0, 6, mask=movie.labels[0] == 2)}
    points = napari.layers.Points(np.array([[0, 0, 10, 10], [0, 1, 20, 20]]),
                                  features={"positive": [True, True], "obj_id": [2, 4]})
    boxes = napari.layers.Shapes([np.array([[0, 0, 1, 1], [0, 0, 1, 9], [0, 0, 9, 9], [0, 0, 9, 1]])],
                                 shape_type="rectangle", features={"obj_id": [11]})
    state = ImageState(image=None, points=points, boxes=boxes, controller=seeded,
                       sessions={slice_key(z0): clicked, slice_key(z1): seeded})
    assert ids.state_controllers(state) == [seeded, clicked]  # the one acted on first, each once
    assert clicked.obj_ids == [4]
    assert ids.widget_ids(state) == {2, 4, 6, 11}
    assert ids.widget_ids(None) == set()
    empty = ImageState(image=None, points=napari.layers.Points(np.zeros((0, 4)), features={"obj_id": np.zeros(0, int)}))
    assert ids.widget_ids(empty) == set() and ids.layer_ids(None) == set()
