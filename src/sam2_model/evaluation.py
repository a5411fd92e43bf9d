"""Quality measurements of a model on held-out synthetic time-lapses, through the real inference path.

* :func:`one_click_iou`: one positive click per object (at the object's most interior pixel, where a
  person clicks) on one frame, :class:`ImagePredictor` with one output mask; IoU on that frame.
* :func:`propagation_j_and_f`: one such click per object on frame 0 of a time-lapse, then
  :class:`VideoSession` propagates; the masks are composed into one label image per frame (where
  objects overlap the highest logit wins, as DAVIS scores label maps) and J&F is computed per object
  with :mod:`sam2_model.metrics` over the frames after the prompted one. A cell that divides is followed
  as the union of its descendants (:func:`lineage_masks`).

:func:`track_clicked_cells` is the one place that clicks cells of frame 0 of a synthetic time-lapse, tracks
them and keeps their ground truth; :func:`track_synthetic` makes a held-out time-lapse and clicks all its cells.
The demo (``python -m sam2_model.demo``), the training preview and
:func:`propagation_j_and_f` all score its :class:`TrackedTimelapse`.

Evaluation seeds must never be used for training: training clips use seeds >= 1_000_003
(``SyntheticClips``), evaluation uses the seeds given here (``HELD_OUT_SEEDS`` by default).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .click_points import click_point  # its home before: callers import it from here too
from .image_predictor import ImagePredictor
from .metrics import j_and_f, region_similarity
from .modeling.sam2 import SAM2Model
from .synthetic import SyntheticTimelapse, make_timelapse
from .video_session import VideoSession
from .windowed_session import WindowedSession

HELD_OUT_SEEDS: Tuple[int, ...] = (900_001, 900_002, 900_003, 900_004, 900_005)


def family_of(obj_id: int, parents: Dict[int, int]) -> List[int]:
    """``obj_id`` and all its descendants (``parents``: child id -> parent id), sorted."""
    family = {int(obj_id)}
    grew = True
    while grew:  # close the set under "child of a member"
        before = len(family)
        family |= {child for child, parent in parents.items() if parent in family}
        grew = len(family) > before
    return sorted(family)


def lineage_masks(labels: np.ndarray, obj_ids: Sequence[int], parents: Dict[int, int]) -> np.ndarray:
    """(T, H, W) instance labels -> (T, N, H, W) bool: object ``obj_ids[n]`` together with its descendants."""
    out = np.zeros((labels.shape[0], len(obj_ids)) + labels.shape[1:], dtype=bool)
    for n, obj_id in enumerate(obj_ids):
        out[:, n] = np.isin(labels, family_of(obj_id, parents))
    return out


def clickable_objects(labels: np.ndarray, min_area: int = 100) -> List[int]:
    """Ids in a (H, W) label image with at least ``min_area`` pixels that do not touch the border."""
    border = set(np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])).tolist())
    ids, counts = np.unique(labels, return_counts=True)
    return [int(i) for i, c in zip(ids, counts) if i != 0 and c >= min_area and int(i) not in border]


@dataclass
class QualityReport:
    value: float  # mean over objects
    per_sequence: List[float] = field(default_factory=list)
    num_objects: int = 0


def click_ious(predictor: ImagePredictor, image: np.ndarray, labels: np.ndarray, obj_ids: Sequence[int]) -> List[float]:
    """Set ``image`` (H, W[, C]) on ``predictor``, click each of ``obj_ids`` once at the most interior pixel of its
    mask in ``labels`` (H, W) and return each one-output mask's IoU with that mask."""
    predictor.set_image(image)
    ious = []
    for obj_id in obj_ids:
        truth = labels == obj_id
        masks, _, _ = predictor.predict(points=[click_point(truth)], labels=[1], multimask=False)
        ious.append(region_similarity(masks[0], truth))
    return ious


def one_click_iou(model: SAM2Model, seeds: Sequence[int] = HELD_OUT_SEEDS, shape: Tuple[int, int] = (256, 256),
                  dtype: str = "uint16") -> QualityReport:
    """Mean IoU over objects of one click each on frame 0 of ``make_timelapse(seed=s)``."""
    predictor = ImagePredictor(model)
    values: List[float] = []
    per_sequence: List[float] = []
    for seed in seeds:
        movie = make_timelapse(num_frames=1, shape=shape, seed=seed, dtype=dtype)
        ious = click_ious(predictor, movie.image[0], movie.labels[0], clickable_objects(movie.labels[0]))
        values.extend(ious)
        per_sequence.append(float(np.mean(ious)) if ious else float("nan"))
    return QualityReport(float(np.mean(values)), per_sequence, len(values))


def track_with_clicks(model: SAM2Model, image: np.ndarray, clicks: Dict[int, Tuple[float, float]],
                      smooth: float = 0.0, window: Optional[int] = None) -> np.ndarray:
    """One click per object on frame 0, propagate forward: (T, H, W) int32 label stack (ids of ``clicks``);
    ``smooth``: the session's Gaussian blur of the frames in px (see :class:`VideoSession`); ``window``: each object
    in a window of that many px that follows it (:class:`~sam2_model.windowed_session.WindowedSession`)."""
    if window is None:
        session: Any = VideoSession(model, image, smooth=smooth)
    else:
        session = WindowedSession(model, image, window=window, smooth=smooth)
    for obj_id, point in clicks.items():
        session.add_prompt(0, obj_id, points=[point], labels=[1])
    out = np.zeros(image.shape[:3], dtype=np.int32)
    for frame_idx, obj_ids, logits in session.propagate(0):
        best = np.argmax(logits, axis=0)
        winner = np.take_along_axis(logits, best[None], axis=0)[0]
        out[frame_idx] = np.where(winner > 0, np.asarray(obj_ids)[best], 0)
    session.close()
    return out


@dataclass
class TrackedTimelapse:
    """A synthetic time-lapse with one click on each cell of frame 0, tracked through all frames.

    movie: the time-lapse ((T, H, W) image, labels, parents); obj_ids: the clicked cells (N);
    predicted: (T, H, W) int32 labels (ids of ``obj_ids``); truth: (T, N, H, W) bool, each clicked cell
    with its descendants; seconds: the wall time of tracking (clicks and propagation); clicks: the (x, y)
    click of each object on frame 0.
    """

    movie: SyntheticTimelapse
    obj_ids: List[int]
    predicted: np.ndarray
    truth: np.ndarray
    seconds: float
    clicks: Dict[int, Tuple[float, float]] = field(default_factory=dict)

    def first_frame_iou(self) -> float:
        """Mean IoU over objects on the clicked frame 0."""
        ious = [region_similarity(self.predicted[0] == o, self.truth[0, n]) for n, o in enumerate(self.obj_ids)]
        return float(np.mean(ious)) if ious else float("nan")

    def scores(self) -> List[Dict[str, float]]:
        """Per object, J, F and J&F over the propagated frames 1..T-1."""
        return [j_and_f(self.predicted[1:] == o, self.truth[1:, n]) for n, o in enumerate(self.obj_ids)]

    def truth_labels(self) -> np.ndarray:
        """(T, H, W) int32 ground truth of the clicked cells only, under their ids."""
        labels = np.zeros(self.predicted.shape, np.int32)
        for n, obj_id in enumerate(self.obj_ids):
            labels[self.truth[:, n]] = obj_id
        return labels


def track_synthetic(model: SAM2Model, seed: int, num_frames: int, shape: Tuple[int, int] = (256, 256),
                    dtype: str = "uint16") -> TrackedTimelapse:
    """Make ``make_timelapse(seed=seed)``, click each clickable cell of frame 0 once, track forward."""
    movie = make_timelapse(num_frames=num_frames, shape=shape, seed=seed, dtype=dtype)
    return track_clicked_cells(model, movie, clickable_objects(movie.labels[0]))


def track_clicked_cells(model: SAM2Model, movie: SyntheticTimelapse, obj_ids: Sequence[int]) -> TrackedTimelapse:
    """Click each of ``obj_ids`` once on frame 0 of ``movie`` (at its most interior pixel), track them forward
    with :func:`track_with_clicks` and keep each one's ground truth with its descendants (:func:`lineage_masks`)."""
    obj_ids = [int(o) for o in obj_ids]
    clicks = {obj_id: click_point(movie.labels[0] == obj_id) for obj_id in obj_ids}
    start = time.perf_counter()
    predicted = track_with_clicks(model, movie.image, clicks)
    seconds = time.perf_counter() - start
    return TrackedTimelapse(movie, obj_ids, predicted, lineage_masks(movie.labels, obj_ids, movie.parents), seconds,
                            clicks)


def propagation_j_and_f(model: SAM2Model, seeds: Sequence[int] = HELD_OUT_SEEDS, num_frames: int = 30,
                        shape: Tuple[int, int] = (256, 256), dtype: str = "uint16") -> QualityReport:
    """Mean J&F over objects: one click per object on frame 0, ``num_frames`` frames propagated."""
    values: List[float] = []
    per_sequence: List[float] = []
    for seed in seeds:
        scores = [s["JF"] for s in track_synthetic(model, seed, num_frames, shape, dtype).scores()]
        values.extend(scores)
        per_sequence.append(float(np.mean(scores)) if scores else float("nan"))
    return QualityReport(float(np.mean(values)), per_sequence, len(values))


def propagation_frames_per_second(model: SAM2Model, num_frames: int = 40, size: int = 512, seed: int = 900_100,
                                  dtype: str = "uint16") -> float:
    """Tracking speed as a user sees it: frames per second propagating one clicked object through a
    ``num_frames`` x ``size`` x ``size`` synthetic time-lapse with :class:`VideoSession` (reading, contrast
    mapping, resizing and frame-size logits included; the click on frame 0 is not timed). The protocol of
    ``bench/bench_demo.py``: seed 900_100, the first clickable cell."""
    movie = make_timelapse(num_frames=num_frames, shape=(size, size), seed=seed, dtype=dtype)
    obj_id = clickable_objects(movie.labels[0])[0]
    session = VideoSession(model, movie.image)
    try:
        session.add_prompt(0, 1, points=[click_point(movie.labels[0] == obj_id)], labels=[1])
        start = time.perf_counter()
        count = sum(1 for _ in session.propagate(0))
        return count / (time.perf_counter() - start)
    finally:
        session.close()
