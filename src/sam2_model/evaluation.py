"""Quality measurements of a model on held-out synthetic time-lapses, through the real inference path.

* :func:`one_click_iou`: one positive click per object (at the object's most interior pixel, where a
  person clicks) on one frame, :class:`ImagePredictor` with one output mask; IoU on that frame.
* :func:`propagation_j_and_f`: one such click per object on frame 0 of a time-lapse, then
  :class:`VideoSession` propagates; the masks are composed into one label image per frame (where
  objects overlap the highest logit wins, as DAVIS scores label maps) and J&F is computed per object
  with :mod:`sam2_model.metrics` over the frames after the prompted one. A cell that divides is followed
  as the union of its descendants (``sam2_model.train.data.lineage_masks``).

Evaluation seeds must never be used for training: training clips use seeds >= 1_000_003
(``SyntheticClips``), evaluation uses the seeds given here (``HELD_OUT_SEEDS`` by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np
from scipy import ndimage

from .image_predictor import ImagePredictor
from .metrics import j_and_f, region_similarity
from .modeling.sam2 import SAM2Model
from .synthetic import make_timelapse
from .train.data import lineage_masks
from .video_session import VideoSession

HELD_OUT_SEEDS: Tuple[int, ...] = (900_001, 900_002, 900_003, 900_004, 900_005)


def click_point(mask: np.ndarray) -> Tuple[float, float]:
    """(x, y) of the pixel of ``mask`` (H, W) farthest from its boundary."""
    distance = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), mask.shape)
    return float(x), float(y)


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


def one_click_iou(model: SAM2Model, seeds: Sequence[int] = HELD_OUT_SEEDS, shape: Tuple[int, int] = (256, 256),
                  dtype: str = "uint16") -> QualityReport:
    """Mean IoU over objects of one click each on frame 0 of ``make_timelapse(seed=s)``."""
    predictor = ImagePredictor(model)
    values: List[float] = []
    per_sequence: List[float] = []
    for seed in seeds:
        movie = make_timelapse(num_frames=1, shape=shape, seed=seed, dtype=dtype)
        predictor.set_image(movie.image[0])
        ious = []
        for obj_id in clickable_objects(movie.labels[0]):
            gt = movie.labels[0] == obj_id
            masks, _, _ = predictor.predict(points=[click_point(gt)], labels=[1], multimask=False)
            ious.append(region_similarity(masks[0], gt))
        values.extend(ious)
        per_sequence.append(float(np.mean(ious)) if ious else float("nan"))
    return QualityReport(float(np.mean(values)), per_sequence, len(values))


def track_with_clicks(model: SAM2Model, image: np.ndarray, clicks: Dict[int, Tuple[float, float]]) -> np.ndarray:
    """One click per object on frame 0, propagate forward: (T, H, W) int32 label stack (ids of ``clicks``)."""
    session = VideoSession(model, image)
    for obj_id, point in clicks.items():
        session.add_prompt(0, obj_id, points=[point], labels=[1])
    out = np.zeros(image.shape[:3], dtype=np.int32)
    for frame_idx, obj_ids, logits in session.propagate(0):
        best = np.argmax(logits, axis=0)
        winner = np.take_along_axis(logits, best[None], axis=0)[0]
        out[frame_idx] = np.where(winner > 0, np.asarray(obj_ids)[best], 0)
    session.close()
    return out


def propagation_j_and_f(model: SAM2Model, seeds: Sequence[int] = HELD_OUT_SEEDS, num_frames: int = 30,
                        shape: Tuple[int, int] = (256, 256), dtype: str = "uint16") -> QualityReport:
    """Mean J&F over objects: one click per object on frame 0, ``num_frames`` frames propagated."""
    values: List[float] = []
    per_sequence: List[float] = []
    for seed in seeds:
        movie = make_timelapse(num_frames=num_frames, shape=shape, seed=seed, dtype=dtype)
        obj_ids = clickable_objects(movie.labels[0])
        clicks = {obj_id: click_point(movie.labels[0] == obj_id) for obj_id in obj_ids}
        predicted = track_with_clicks(model, movie.image, clicks)
        truth = lineage_masks(movie.labels, obj_ids, movie.parents)
        scores = [j_and_f(predicted[1:] == obj_id, truth[1:, n])["JF"] for n, obj_id in enumerate(obj_ids)]
        values.extend(scores)
        per_sequence.append(float(np.mean(scores)) if scores else float("nan"))
    return QualityReport(float(np.mean(values)), per_sequence, len(values))
