"""A click costs about the same with many objects as with a few, and Undo keeps what Propagate may leave out.

Before, every click in the widget's controller upsampled every object's low-res logits to a full-resolution
(n_obj, H, W) float32 array twice (the session's ``add_prompt`` return, then ``frame_logits`` for the labels) and took
the highest per pixel: at 100 objects on 512 px frames most of a click's wait. Now the controller draws the frame
from the session's ``frame_winners`` (the index of the highest object where it is > 0), which upsamples only the
objects that meet at one place apart (:func:`sam2_model.session_outputs.winners`). The labels written must be those
of the old path (``compose_frame`` of ``frame_logits``) bit for bit: checked at every frame a click, a seeded mask or
a propagation of a few objects writes, with and without non-overlap, in whole frames and object windows, with ties
(two objects with the same click), objects absent from a frame and corrections not propagated yet.

Undo used to forget which objects Propagate could leave out (every object tracked again); now it puts back what was
known before the undone step, since the session goes back to that very state.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam2_model import build_model
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model.modeling.sam2 import keep_highest_object
from sam2_model.session_outputs import to_logits, winners
from sam2_model.synthetic import make_timelapse

from napari_sam2.controller import SegmentationController
from napari_sam2.labels_writer import compose_frame, highest
from napari_sam2.layout import StackLayout
from napari_sam2.prompts import FramePrompt

from test_propagate_unchanged import NUM, add_click, both


@pytest.fixture(scope="module")
def model() -> Any:
    return build_model("demo", device="cpu", image_size=128)


def _blob(h: int, rng: np.random.Generator) -> np.ndarray:
    y, x = rng.integers(0, h, 2)
    ys, xs = np.mgrid[0:h, 0:h]
    return ((int(rng.integers(1, max(2, h // 3))) - np.hypot(ys - y, xs - x)) * rng.uniform(0.5, 8)).astype(np.float32)


def test_winners_are_the_highest_positive_upsampled_logit_bit_for_bit():
    """Random low-res objects (blobs, rounded to make ties, identical pairs, absent ones, none positive) upsampled to
    frames larger and smaller than the low-res grid, odd sizes: the same index as the (n, H, W) path everywhere."""
    rng = np.random.default_rng(0)
    for trial in range(60):
        n, h = int(rng.integers(1, 16)), int(rng.choice([8, 16, 64]))
        size = (int(rng.integers(5, 300)), int(rng.integers(5, 300)))
        low = torch.full((n, 1, h, h), -5.0)
        for i in range(n):
            kind = rng.integers(0, 4)
            if kind:
                low[i, 0] = torch.from_numpy(_blob(h, rng))
            if kind == 3:
                low[i, 0] = torch.round(low[i, 0])  # equal values between objects: ties
        if n > 1 and trial % 3 == 0:
            low[1] = low[0]  # a tie at every pixel: the first object wins
        if trial % 4 == 0:
            low[int(rng.integers(0, n))] = -1024.0  # absent
        for non_overlap in (False, True):
            best, top = highest(to_logits(low, size, non_overlap))
            np.testing.assert_array_equal(winners(low, size), np.where(top > 0, best, -1), err_msg=f"trial {trial}")
    assert (winners(torch.zeros((0, 1, 8, 8)), (5, 7)) == -1).all()


class Checked:
    """A controller on a 150 x 200 movie of 14 cells whose every frame written by a click, a seeded mask or a pass
    that redraws from every object's results is checked against the old path: ``compose_frame`` of the plane before
    and the session's ``frame_logits`` there."""

    def __init__(self, model: Any, window: Optional[int], non_overlap: bool) -> None:
        self.movie = make_timelapse(num_frames=6, shape=(150, 200), num_cells=14, seed=4, divisions=False,
                                    enter_leave=False, radius_fraction=0.07)
        self.labels = np.zeros(self.movie.image.shape, np.uint16)
        self.controller = SegmentationController(
            model, self.movie.image, StackLayout(3, 0), self.labels, object_window=window,
            session_options={"non_overlap_masks": non_overlap, "batch_objects": False})
        self.prompts: Dict[Tuple[int, int], FramePrompt] = {}
        self.checked = 0

    def click(self, frame: int, cell: int, obj: Optional[int] = None, positive: bool = True) -> None:
        add_click(self.prompts, self.movie.labels[frame] == cell, frame, cell if obj is None else obj, positive)
        self.run(self.controller.apply_prompts(list(self.prompts.values())), every=True)

    def run(self, steps: Any, every: bool) -> None:
        """Run ``steps``, checking each frame step (``every``; else those drawn from every object's results)."""
        before = self.labels.copy()
        for step in steps:
            if step[0] != "frame" or not (every or step[3] is None):
                before = self.labels.copy()
                continue
            frame, session = step[1], self.controller.session
            want = compose_frame(before[frame], session.obj_ids, session.frame_logits(frame),
                                 self.controller._known_ids()).astype(self.labels.dtype)
            np.testing.assert_array_equal(self.labels[frame], want, err_msg=f"frame {frame}")
            self.checked += 1
            before = self.labels.copy()


@pytest.mark.parametrize("non_overlap", [False, True], ids=["overlaps", "non-overlap"])
@pytest.mark.parametrize("window", [None, 64], ids=["whole frames", "object windows"])
def test_the_labels_a_click_writes_are_the_old_paths_bit_for_bit(model, window, non_overlap):
    run = Checked(model, window, non_overlap)
    cells = [int(c) for c in clickable_objects(run.movie.labels[0], min_area=20)]
    for cell in cells:
        run.click(0, cell)
    run.click(0, cells[0], obj=90)  # the same click as another object: equal logits, the first object wins
    seed = FramePrompt(2, 95, mask=run.movie.labels[2] == cells[1])  # a seeded mask, absent from the other frames
    run.run(run.controller.seed_masks([seed], list(run.prompts.values())), every=True)
    run.click(0, cells[2], positive=True)  # refines a mask, object 95 absent on frame 0
    run.run(run.controller.propagate(0, "forward"), every=False)
    run.click(3, cells[3], positive=False)  # a correction not propagated yet ...
    run.click(3, cells[4])  # ... shown next to another object's new click
    run.run(run.controller.propagate(3, "forward"), every=False)  # the corrected objects tracked, frames redrawn
    assert run.checked >= len(cells) + 5
    assert not (run.labels == 90).any()  # object 90 ties with the first cell everywhere: never drawn
    assert {cells[0], 95} <= set(np.unique(run.labels))
    session = run.controller.session
    if window is not None and non_overlap:  # frame_logits of windows: as the clamp over the composed stack made them
        for frame in range(run.movie.image.shape[0]):
            tracks = [session._objects[o] for o in session.obj_ids]
            has = [frame in t.offsets for t in tracks]
            stack = session._compose([t.window(frame) if h else None for t, h in zip(tracks, has)],
                                     [t.session.frame_logits(frame)[0] if h else None for t, h in zip(tracks, has)])
            old = keep_highest_object(torch.from_numpy(stack)[:, None])[:, 0].numpy()
            np.testing.assert_array_equal(session.frame_logits(frame), old)
            some = session.obj_ids[1::3]
            np.testing.assert_array_equal(session.frame_logits(frame, some), old[1::3])


def test_a_click_among_many_objects_upsamples_a_few_planes_not_every_object(model, monkeypatch):
    """40 cells clicked on a 256 x 240 frame; one more click: the planes upsampled to the frame's size. Before: 80
    (every object for add_prompt's return, every object again for the labels); now the objects that meet at one place
    (a few layers)."""
    movie = make_timelapse(num_frames=2, shape=(256, 240), num_cells=52, seed=5, divisions=False, enter_leave=False,
                           radius_fraction=0.035)
    cells = [int(c) for c in clickable_objects(movie.labels[0], min_area=20)][:40]
    assert len(cells) == 40
    labels = np.zeros(movie.image.shape, np.uint32)
    controller = SegmentationController(model, movie.image, StackLayout(3, 0), labels)
    prompts: List[FramePrompt] = []
    for cell in cells:
        prompts.append(FramePrompt(0, cell, np.array([click_point(movie.labels[0] == cell)], np.float32),
                                   np.ones(1, np.int32)))
        list(controller.apply_prompts(prompts))
    planes: List[int] = []
    real = F.interpolate

    def spy(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = real(x, *args, **kwargs)
        if tuple(out.shape[-2:]) == (256, 240):
            planes.append(int(out.shape[0] * out.shape[1]))
        return out

    monkeypatch.setattr(F, "interpolate", spy)
    ys, xs = np.nonzero(movie.labels[0] == cells[5])
    prompts[5] = FramePrompt(0, cells[5], np.vstack([prompts[5].points, [[xs.mean() + 1, ys.mean()]]]).astype(
        np.float32), np.ones(2, np.int32))
    list(controller.apply_prompts(prompts))
    assert 0 < sum(planes) <= 16, planes  # before: [40, 40]


@pytest.mark.parametrize("window", [None, 48], ids=["whole frames", "object windows"])
def test_after_undoing_a_correction_propagate_leaves_out_every_unchanged_object(model, window):
    """12 cells tracked forward, one corrected on frame 4, that correction undone: Propagate forward from frame 4
    tracks no object (before: all 12) and the labels are a full re-run's bit for bit."""
    movie = make_timelapse(num_frames=7, shape=(128, 128), num_cells=NUM, seed=4, divisions=False, enter_leave=False,
                           radius_fraction=0.045)
    skip, full = both(model, movie, window)
    for run in (skip, full):
        run.click(4, 3)
        run.controller.undo()  # the widget puts the prompt layers back from the step's tag
        del run.prompts[(4, 3)]
    skip.propagate(4)
    full.propagate(4)
    assert sorted(full.tracked()) == list(range(1, NUM + 1))
    assert skip.tracked() == []  # before: all 12
    np.testing.assert_array_equal(skip.labels, full.labels)
    # a correction undone after the correction options changed: not known to hold, every object is tracked again
    skip.click(4, 3)
    skip.controller.set_correction_options(True, False)
    skip.controller.undo()
    del skip.prompts[(4, 3)]
    skip.propagate(4)
    assert sorted(skip.tracked()) == list(range(1, NUM + 1))
