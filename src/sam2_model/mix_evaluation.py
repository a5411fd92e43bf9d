"""Held-out quality on the synthetic microscopy mix, kind by kind and by object size.

:func:`mix_quality` makes held-out clips of every kind of :data:`sam2_model.synth.MIX` (fluorescence nuclei,
phase-contrast rods, DIC cells, natural-image-like clips, ...), clicks objects of frame 0 once each and
measures, through the real inference path (:class:`ImagePredictor` with one output mask, then
:class:`VideoSession`):

* one-click IoU on frame 0;
* J&F over the tracked frames 1..T-1 (a cell that divides is followed as the union of its descendants,
  :func:`sam2_model.evaluation.lineage_masks`);
* beside it, two baselines without tracking: the J&F of copying the object's true frame-0 mask to every
  frame (what the natural-video goal is set against), and of copying the one-click mask of frame 0 (what the
  click gave before any tracking): tracking below the second loses more than the cells' motion costs;

per kind, as the mix's weighted mean, and by the object's size at the model's input (equivalent diameter
in input pixels), which says whether small objects need a larger input size.

Seeds: clip ``n`` of kind ``k`` (its index in MIX) uses seed ``MIX_HELD_OUT_SEED + 100 * k + n``. Training
clips take 63-bit seeds drawn from the training run's own generator, so they do not meet these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .evaluation import clickable_objects, track_clicked_cells
from .image_predictor import ImagePredictor
from .metrics import j_and_f, region_similarity
from .modeling.sam2 import SAM2Model
from .synth import MIX, make_microscopy_timelapse

MIX_HELD_OUT_SEED = 930_000
# Upper edges (input px, equivalent diameter) of the size bins; the last bin is open.
SIZE_BIN_EDGES: Tuple[float, ...] = (12.0, 24.0, 48.0)


def kind_name(modality: str, cell_type: str, stain: Optional[str]) -> str:
    """'fluorescence nuclei (nuclear)', 'phase rods', 'natural', ... for a MIX entry."""
    if modality == "natural":
        return "natural"
    return f"{modality} {cell_type}" + (f" ({stain})" if stain else "")


def size_bin(diameter: float) -> str:
    """The label of the size bin holding an equivalent diameter in input px: '<12', '12-24', ..., '>=48'."""
    lower = 0.0
    for edge in SIZE_BIN_EDGES:
        if diameter < edge:
            return f"<{edge:g}" if lower == 0.0 else f"{lower:g}-{edge:g}"
        lower = edge
    return f">={lower:g}"


@dataclass
class KindScore:
    """One kind of the mix: mean one-click IoU and tracked J&F over its clicked objects."""

    kind: str
    weight: float  # its share of the training mix
    one_click_iou: float
    j_and_f: float
    num_objects: int
    copy_truth_j_and_f: float = float("nan")  # the true frame-0 mask copied to frames 1..T-1
    copy_click_j_and_f: float = float("nan")  # the one-click mask of frame 0 copied to frames 1..T-1


@dataclass
class MixReport:
    """Held-out quality on the mix. ``by_size``: size bin -> (mean one-click IoU, mean J&F, objects)."""

    kinds: List[KindScore]
    one_click_iou: float  # weighted by the kinds' shares of the mix
    j_and_f: float
    copy_truth_j_and_f: float = float("nan")
    copy_click_j_and_f: float = float("nan")
    by_size: Dict[str, Tuple[float, float, int]] = field(default_factory=dict)
    image_size: int = 0
    frame_shape: Tuple[int, int] = (0, 0)
    seeds_per_kind: int = 0

    def summary(self) -> Dict[str, Any]:
        """The figures as JSON-ready numbers (4 decimals): weighted means, per kind and per size bin."""
        return {
            "one_click_iou": round(self.one_click_iou, 4), "j_and_f": round(self.j_and_f, 4),
            "copy_truth_j_and_f": round(self.copy_truth_j_and_f, 4),
            "copy_click_j_and_f": round(self.copy_click_j_and_f, 4),
            "image_size": self.image_size, "frame_shape": list(self.frame_shape),
            "seeds": f"{MIX_HELD_OUT_SEED} + 100 x kind index + clip (0..{self.seeds_per_kind - 1})",
            "per_kind": {k.kind: {"one_click_iou": round(k.one_click_iou, 4), "j_and_f": round(k.j_and_f, 4),
                                  "copy_truth_j_and_f": round(k.copy_truth_j_and_f, 4),
                                  "copy_click_j_and_f": round(k.copy_click_j_and_f, 4), "objects": k.num_objects}
                         for k in self.kinds},
            "by_size": {b: {"one_click_iou": round(c, 4), "j_and_f": round(j, 4), "objects": n}
                        for b, (c, j, n) in self.by_size.items()},
        }

    def table(self) -> str:
        """A text table: one row per kind (J&F of the baselines: copy truth = the true frame-0 mask, copy click =
        the one-click mask of frame 0, copied to every frame), then the weighted means and the size bins."""
        lines = [f"{'kind':34}{'share':>7}{'one-click':>11}{'J&F':>8}{'copy truth':>12}{'copy click':>12}"
                 f"{'objects':>9}"]
        for k in self.kinds:
            lines.append(f"{k.kind:34}{k.weight:7.2f}{k.one_click_iou:11.3f}{k.j_and_f:8.3f}"
                         f"{k.copy_truth_j_and_f:12.3f}{k.copy_click_j_and_f:12.3f}{k.num_objects:9d}")
        lines.append(f"{'mix (weighted)':34}{'':7}{self.one_click_iou:11.3f}{self.j_and_f:8.3f}"
                     f"{self.copy_truth_j_and_f:12.3f}{self.copy_click_j_and_f:12.3f}")
        lines.append(f"by equivalent diameter at the {self.image_size} px input:")
        for name, (click, jf, count) in self.by_size.items():
            lines.append(f"  {name + ' px':32}{'':7}{click:11.3f}{jf:8.3f}{count:9d}")
        return "\n".join(lines)


def _chosen(ids: List[int], max_objects: int) -> List[int]:
    """At most ``max_objects`` of ``ids``, spread evenly over the list."""
    if len(ids) <= max_objects:
        return ids
    step = len(ids) / max_objects
    return [ids[int(i * step)] for i in range(max_objects)]


def mix_quality(
    model: SAM2Model,
    seeds_per_kind: int = 4,
    frame_shape: Tuple[int, int] = (256, 256),
    num_frames: int = 8,
    max_objects: int = 8,
    min_area: int = 16,
    kinds: Optional[Sequence[str]] = None,
) -> MixReport:
    """Held-out one-click IoU and tracked J&F on each kind of the mix (see the module docstring).

    frame_shape: (H, W) of the clips (the model resizes them to its input size); clip ``n`` is uint16 for
    even ``n`` and uint8 for odd ``n``. max_objects: clicked objects per clip (frame-0 objects of at least
    ``min_area`` px that do not touch the border, spread over their ids). kinds: names from
    :func:`kind_name` to measure (default: all of MIX).
    """
    names = [kind_name(m, c, s) for _, m, c, s in MIX]
    if kinds is not None:
        unknown = [k for k in kinds if k not in names]
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; the mix has: {', '.join(names)}")
    for label, value in (("seeds_per_kind", seeds_per_kind), ("num_frames", num_frames), ("max_objects", max_objects)):
        if not isinstance(value, int) or value < (2 if label == "num_frames" else 1):
            raise ValueError(f"{label} must be an integer >= {2 if label == 'num_frames' else 1}, got {value!r}")
    predictor = ImagePredictor(model)
    scale = model.image_size / math.sqrt(frame_shape[0] * frame_shape[1])  # frame px -> input px (geometric mean)
    scores: List[KindScore] = []
    sized: Dict[str, List[Tuple[float, float]]] = {}
    for index, ((weight, modality, cell_type, stain), name) in enumerate(zip(MIX, names)):
        if kinds is not None and name not in kinds:
            continue
        clicks_iou: List[float] = []
        tracked: List[float] = []
        copied: List[float] = []
        copied_click: List[float] = []
        for n in range(seeds_per_kind):
            movie = make_microscopy_timelapse(
                MIX_HELD_OUT_SEED + 100 * index + n, shape=frame_shape, num_frames=num_frames, modality=modality,
                cell_type=cell_type or "nuclei", stain=stain, dtype="uint16" if n % 2 == 0 else "uint8",
            )
            obj_ids = _chosen(clickable_objects(movie.labels[0], min_area), max_objects)
            if not obj_ids:
                continue
            run = track_clicked_cells(model, movie, obj_ids)
            predictor.set_image(movie.image[0])
            for k, (obj_id, score) in enumerate(zip(run.obj_ids, run.scores())):
                masks, _, _ = predictor.predict(points=[run.clicks[obj_id]], labels=[1], multimask=False)
                click = region_similarity(masks[0], run.truth[0, k])
                jf = score["JF"]
                clicks_iou.append(click)
                tracked.append(jf)
                truth = run.truth[1:, k]
                copied.append(j_and_f(np.broadcast_to(run.truth[0, k], truth.shape), truth)["JF"])
                copied_click.append(j_and_f(np.broadcast_to(masks[0], truth.shape), truth)["JF"])
                diameter = 2.0 * math.sqrt(float(run.truth[0, k].sum()) / math.pi) * scale
                sized.setdefault(size_bin(diameter), []).append((click, jf))
        if clicks_iou:
            scores.append(KindScore(
                name, weight, float(np.mean(clicks_iou)), float(np.mean(tracked)), len(clicks_iou),
                copy_truth_j_and_f=float(np.mean(copied)), copy_click_j_and_f=float(np.mean(copied_click)),
            ))
    if not scores:
        raise ValueError("no clickable objects in the held-out clips; use a larger frame_shape or a smaller min_area")
    total = sum(s.weight for s in scores)

    def weighted(measure: str) -> float:
        return sum(s.weight * getattr(s, measure) for s in scores) / total

    order = [size_bin(e - 1e-3) for e in SIZE_BIN_EDGES] + [size_bin(SIZE_BIN_EDGES[-1])]
    by_size = {b: (float(np.mean([c for c, _ in sized[b]])), float(np.mean([j for _, j in sized[b]])), len(sized[b]))
               for b in order if b in sized}
    return MixReport(
        kinds=scores,
        one_click_iou=weighted("one_click_iou"), j_and_f=weighted("j_and_f"),
        copy_truth_j_and_f=weighted("copy_truth_j_and_f"), copy_click_j_and_f=weighted("copy_click_j_and_f"),
        by_size=by_size, image_size=model.image_size, frame_shape=(int(frame_shape[0]), int(frame_shape[1])),
        seeds_per_kind=seeds_per_kind,
    )
