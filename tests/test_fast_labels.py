"""Propagation makes its labels without upsampling every object, and they are the old path's labels bit for bit.

Before, the long paths made every object's full-resolution logits on every frame, an (n_obj, H, W) float32 array, and
took the highest per pixel: the widget's Propagate (``SegmentationController.propagate`` asked the session for
logits), the automatic tracking (``CellTracker`` behind ``track_cells``, ``--auto``, batch and Track all) and a
windowed session's labels (each object's window pasted into an (n_obj, H, W) array). Now each asks for labels, which
``session_outputs.to_labels`` makes from ``winners`` (only objects that meet at one place are upsampled apart) and a
windowed session from one running maximum over the windows. The labels must not change: checked against the old
path (the argmax of the logits, the old tracker's code) with and without non-overlap, in whole frames and windows,
with ties, objects absent from frames, seeded masks, subsets, pending corrections and min_area pieces.
"""

from __future__ import annotations

import tracemalloc
from typing import Any, Dict, List

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sam2_model import VideoSession, build_model
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model import session_outputs
from sam2_model.session_outputs import to_labels, to_logits
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import CellTracker
from sam2_model.windowed_session import WindowedSession

from napari_sam2.controller import SegmentationController
from napari_sam2.layout import StackLayout
from napari_sam2.prompts import FramePrompt

from test_click_many_objects import Checked, _blob


@pytest.fixture(scope="module")
def model() -> Any:
    return build_model("demo", device="cpu", image_size=128)


def _movie(cells: int = 14, frames: int = 5, **options: Any) -> Any:
    """A 150 x 200 synthetic nuclei movie (no divisions, entries or exits unless ``options`` say)."""
    settings = dict(divisions=False, enter_leave=False, radius_fraction=0.07)
    settings.update(options)
    return make_timelapse(num_frames=frames, shape=(150, 200), num_cells=cells, seed=4, **settings)


def labels_from_logits(logits: np.ndarray, obj_ids: List[int]) -> np.ndarray:
    """The old path, the oracle: (n_obj, H, W) full-resolution logits -> (H, W) uint32, the id of the highest logit
    where it is > 0, else 0 (ties: the first object), by numpy's argmax over every object."""
    if len(logits) == 0:
        return np.zeros(np.shape(logits)[1:], np.uint32)
    best = logits.argmax(axis=0)
    top = np.take_along_axis(logits, best[None], axis=0)[0]
    return np.where(top > 0, np.asarray(list(obj_ids), np.uint32)[best], 0).astype(np.uint32)


def test_the_oracle_labels_full_resolution_logits_by_the_sessions_rule():
    """Windowed sessions paste full-resolution logits, whole-frame sessions label low-res ones: one rule, which the
    oracle above follows (a tie: the first object wins; no object: an empty frame of the right shape)."""
    low_res = torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(2)) * 3
    low_res[2] = low_res[1]  # a tie: the first object wins
    ids = [7, 3, 12, 5]
    expected = to_labels(low_res, (40, 50), ids)
    assert set(np.unique(expected)) <= {0, 7, 3, 5} and (expected == 3).any()
    np.testing.assert_array_equal(labels_from_logits(to_logits(low_res, (40, 50), False), ids), expected)
    assert labels_from_logits(np.zeros((0, 40, 50), np.float32), []).shape == (40, 50)


def test_to_labels_is_the_argmax_of_the_upsampled_logits_bit_for_bit():
    """Random low-res objects (blobs, rounded for ties, identical pairs, absent ones) on frames larger and smaller than
    the low-res grid: the ids of ``labels_from_logits(to_logits(...))``, with and without non-overlap clamping."""
    rng = np.random.default_rng(1)
    for trial in range(40):
        n, h = int(rng.integers(1, 20)), int(rng.choice([8, 16, 64]))
        size = (int(rng.integers(5, 600)), int(rng.integers(5, 600)))  # below and above session_outputs._SMALL
        low = torch.full((n, 1, h, h), -5.0)
        for i in range(n):
            kind = rng.integers(0, 4)
            if kind:
                low[i, 0] = torch.from_numpy(_blob(h, rng))
            if kind == 3:
                low[i, 0] = torch.round(low[i, 0])
        if n > 1 and trial % 3 == 0:
            low[1] = low[0]
        if trial % 4 == 0:
            low[int(rng.integers(0, n))] = -1024.0
        ids = [int(i) for i in rng.choice(np.arange(1, 10 * n + 1), n, replace=False)]
        for non_overlap in (False, True):
            want = labels_from_logits(to_logits(low, size, non_overlap), ids)
            np.testing.assert_array_equal(to_labels(low, size, ids), want, err_msg=f"trial {trial}")
    assert to_labels(torch.zeros((0, 1, 8, 8)), (5, 7), []).shape == (5, 7)


def _expected(session: Any, frame: int, ids: List[int]) -> np.ndarray:
    """The old labels of a propagation of ``ids``: a VideoSession's ``to_labels`` over the tracked objects' logits (no
    clamp among the others), a WindowedSession's ``labels_from_logits`` of its composed logits (clamped among every
    object with non-overlap)."""
    if isinstance(session, VideoSession):
        keep, session.non_overlap_masks = session.non_overlap_masks, False
        try:
            logits = session.frame_logits(frame, ids)
        finally:
            session.non_overlap_masks = keep
    else:
        logits = session.frame_logits(frame, ids)
    return labels_from_logits(logits, ids)


def _check(session: Any, steps: Any) -> int:
    count = 0
    for frame, ids, labels in steps:
        assert labels.dtype == np.uint32 and labels.shape == session.frame_shape
        np.testing.assert_array_equal(labels, _expected(session, frame, list(ids)), err_msg=f"frame {frame}")
        count += 1
    return count


@pytest.mark.parametrize("non_overlap", [False, True], ids=["overlaps", "non-overlap"])
@pytest.mark.parametrize("windowed", [False, True], ids=["whole frames", "windows"])
def test_propagated_labels_are_the_old_paths(model, windowed, non_overlap):
    movie = _movie()
    if windowed:
        session: Any = WindowedSession(model, movie.image, window=64, non_overlap_masks=non_overlap)
    else:
        session = VideoSession(model, movie.image, non_overlap_masks=non_overlap, batch_objects=False)
    cells = [int(c) for c in clickable_objects(movie.labels[0], min_area=20)]
    for cell in cells:
        session.add_prompt(0, cell, points=[click_point(movie.labels[0] == cell)], labels=[1], return_logits=False)
    session.add_prompt(0, 90, points=[click_point(movie.labels[0] == cells[0])], labels=[1], return_logits=False)  # tie
    session.add_prompt(2, 95, mask=movie.labels[2] == cells[1], return_logits=False)  # seeded, absent elsewhere
    assert _check(session, session.propagate(0, output="labels")) == 5
    ys, xs = np.nonzero(movie.labels[3] == cells[3])
    session.add_prompt(3, cells[3], points=[[xs.max(), ys[xs.argmax()]]], labels=[0], clear_old=False,
                       return_logits=False)  # a correction left pending while others are tracked
    session.add_prompt(3, cells[4], points=[click_point(movie.labels[3] == cells[4])], labels=[1],
                       return_logits=False)
    assert _check(session, session.propagate(3, obj_ids=[cells[4], 95, 90], output="labels")) == 2
    assert _check(session, session.propagate(3, reverse=True, obj_ids=[cells[2], cells[4]], output="labels")) == 4
    session.close()


@pytest.mark.parametrize("non_overlap", [False, True], ids=["overlaps", "non-overlap"])
@pytest.mark.parametrize("window", [None, 64], ids=["whole frames", "object windows"])
def test_the_labels_a_propagation_writes_are_the_old_paths(model, window, non_overlap):
    """Every frame a Propagate writes is ``compose_frame`` of the plane before and the session's logits there."""
    run = Checked(model, window, non_overlap)
    cells = [int(c) for c in clickable_objects(run.movie.labels[0], min_area=20)]
    for cell in cells:
        run.click(0, cell)
    run.click(0, cells[0], obj=90)
    run.run(run.controller.propagate(0, "forward"), every=False)
    run.click(3, cells[3], positive=False)  # a correction: the pass from frame 3 tracks every object
    run.run(run.controller.propagate(3, "both"), every=False)
    assert run.checked >= len(cells) + 1 + 6 + 6


class _Planes:
    """Full-resolution planes of ``shape`` upsampled by ``F.interpolate`` (a spy: it calls the real function)."""

    def __init__(self, monkeypatch: Any, shape: tuple) -> None:
        self.count, self.shape, real = 0, tuple(shape), F.interpolate

        def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
            out = real(*args, **kwargs)
            if tuple(out.shape[-2:]) == self.shape:
                self.count += int(out.shape[0] * out.shape[1])
            return out

        monkeypatch.setattr(torch.nn.functional, "interpolate", spy)


def test_propagate_and_tracking_upsample_few_planes_per_frame(model, monkeypatch):
    """20+ cells: Propagate and the automatic tracking each upsampled every object's full-resolution plane on every
    frame (and the tracker every object's again for each cell it started: n (n + 1) / 2 planes on the first frame);
    the labels now need a few planes a frame (the layers of objects that meet: most cells touch none)."""
    movie = make_timelapse(num_frames=4, shape=(240, 320), num_cells=26, seed=4, divisions=False, enter_leave=False,
                           radius_fraction=0.05)
    cells = [int(c) for c in clickable_objects(movie.labels[0], min_area=20)]
    assert len(cells) >= 20 and len(cells) * 240 * 320 > session_outputs._SMALL  # not the path for a few objects
    labels = np.zeros(movie.image.shape, np.uint16)
    controller = SegmentationController(model, movie.image, StackLayout(3, 0), labels, object_window=None,
                                        session_options={"non_overlap_masks": True})
    prompts = [FramePrompt(0, c, np.array([click_point(movie.labels[0] == c)], np.float32), np.ones(1, np.int32))
               for c in cells]
    list(controller.apply_prompts(prompts))
    planes = _Planes(monkeypatch, movie.image.shape[1:])
    assert sum(step[0] == "frame" for step in controller.propagate(0, "forward")) == 4
    assert planes.count <= 4 * 8, f"{planes.count} planes upsampled for 4 frames of {len(cells)} objects"

    masks = [movie.labels[0] == c for c in cells]
    calls: List[int] = []
    tracker = CellTracker(model, movie.image, detector=lambda frame: [] if calls.append(1) or len(calls) > 1 else masks,
                          redetect_every=100, divisions=False, window=None)
    planes.count = 0
    steps = tracker.run()
    next(steps)
    assert planes.count <= 8, f"{planes.count} planes upsampled while starting {len(cells)} cells"
    planes.count = 0
    assert len(list(steps)) == 3 and len(tracker.lineage) == len(cells)
    assert planes.count <= 3 * 8, f"{planes.count} planes upsampled for 3 tracked frames of {len(cells)} objects"


def test_windowed_labels_make_no_array_of_every_object(model):
    """A windowed session's labels of 20 objects: no (n_obj, H, W) float32 array (4.6 MB here) is made."""
    movie = make_timelapse(num_frames=2, shape=(192, 300), num_cells=26, seed=4, divisions=False, enter_leave=False,
                           radius_fraction=0.05)
    session = WindowedSession(model, movie.image, window=48)
    cells = [int(c) for c in clickable_objects(movie.labels[0], min_area=20)][:20]
    assert len(cells) == 20
    for cell in cells:
        session.add_prompt(0, cell, mask=movie.labels[0] == cell, return_logits=False)
    tracemalloc.start()
    try:
        steps = list(session.propagate(0, output="labels"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(steps) == 2
    composed = len(cells) * 192 * 300 * 4
    assert peak < composed / 2, f"peak {peak / 1e6:.1f} MB while propagating, (n_obj, H, W) is {composed / 1e6:.1f} MB"
    session.close()


class _OldTracker(CellTracker):
    """CellTracker with the frame's labels made as before: every object's logits, then argmax or size order."""

    def _track(self, t: int, step: int, final: bool = False) -> Any:
        if not self.session.obj_ids:
            labels = np.zeros(self.session.frame_shape, dtype=np.uint32)
            yield from self._redetect(t, labels)
            return labels
        steps = list(self.session.propagate(start_frame=t, reverse=self.reverse, max_frames=0))
        if not steps:
            steps = list(self.session.propagate(start_frame=t + 1, reverse=True, max_frames=1))
        _, ids, logits = steps[-1]
        labels = self._old_compose(ids, logits)
        triggered = self._update(t, ids, labels, final)
        if step % self.redetect_every == 0 or triggered:
            yield from self._redetect(t, labels)
        return labels

    def _old_compose(self, ids: List[int], logits: np.ndarray) -> np.ndarray:
        from scipy import ndimage

        labels = np.zeros(logits.shape[1:], dtype=np.uint32)
        if self.non_overlap:
            best = np.argmax(logits, axis=0)
            fg = np.take_along_axis(logits, best[None], 0)[0] > 0
            labels[fg] = np.asarray(ids, dtype=np.uint32)[best[fg]]
        else:
            masks = logits > 0
            for k in np.argsort([-int(m.sum()) for m in masks]):
                labels[masks[k]] = ids[k]
        for track_id, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is None:
                continue
            pieces, count = ndimage.label(labels[box] == track_id)
            if count:
                sizes = np.bincount(pieces.ravel())
                small = sizes < self.min_area
                small[0] = False
                labels[box][small[pieces]] = 0
        return labels


def _run(kind: type, model: Any, movie: Any, **options: Any) -> Dict[str, Any]:
    def detector(frame: np.ndarray) -> List[np.ndarray]:  # the true cells of the frame shown (entering ones too)
        t = next(i for i in range(len(movie.image)) if np.array_equal(frame, movie.image[i]))
        return [movie.labels[t] == c for c in np.unique(movie.labels[t]) if c]

    tracker = kind(model, movie.image, detector=detector, redetect_every=2, **options)
    frames = {t: labels.copy() for t, labels, _ in tracker.run()}
    return {"frames": frames, "lineage": tracker.lineage.rows()}


@pytest.mark.parametrize("non_overlap", [True, False], ids=["non-overlap", "size order"])
@pytest.mark.parametrize("window", [None, 64], ids=["whole frames", "windows"])
def test_tracking_gives_the_old_labels_and_lineage(model, window, non_overlap):
    """Cells that divide, enter and leave, a min_area that drops pieces: every frame and the lineage as before."""
    movie = make_timelapse(num_frames=6, shape=(150, 200), num_cells=10, seed=11, radius_fraction=0.07)
    options = dict(non_overlap=non_overlap, window=window, min_area=60, cell_diameter=(10, 40))
    new, old = _run(CellTracker, model, movie, **options), _run(_OldTracker, model, movie, **options)
    assert sorted(new["frames"]) == sorted(old["frames"]) == list(range(6))
    for t in range(6):
        np.testing.assert_array_equal(new["frames"][t], old["frames"][t], err_msg=f"frame {t}")
    assert new["lineage"] == old["lineage"]
    assert len(new["lineage"]) >= 8
