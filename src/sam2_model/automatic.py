"""Automatic masks: prompt SAM 2 with a grid of points (or given points) and keep the good, distinct masks.

Same parameters, defaults and order of operations as the reference ``SAM2AutomaticMaskGenerator``
(``sam2==1.1.0``), with binary masks as the only output form (the embedded demo model's own filter defaults
apart: :func:`default_filters`):

1. crops: layer 0 is the whole image; ``crop_n_layers`` more layers tile it with overlapping crops;
2. per crop: features of the crop; per batch of ``points_per_batch`` grid points, one positive click
   each (3 masks per click when ``multimask_output``); optionally one refinement pass feeding each
   mask's low-res logits back (``use_m2m``); keep masks with predicted IoU > ``pred_iou_thresh`` and
   stability score >= ``stability_score_thresh``; binarise at ``mask_threshold``; drop masks whose box
   touches (within 20 px) a crop edge that is not an image edge; box NMS (``box_nms_thresh``, scored
   by predicted IoU); grid points are clicked where the reference clicks them, also past a crop's last pixel edge
   (a side of at most ``points_per_side`` px: y = 23.625 on 24 px with 32 points), through
   :meth:`~sam2_model.image_predictor.ImagePredictor.predict_grid` (user clicks keep napari's pixels);
3. across crops: box NMS (``crop_nms_thresh``) preferring masks from smaller crops;
4. ``min_mask_region_area > 0``: holes and islands smaller than that are removed from each mask
   (8-connected, scipy), then box NMS preferring unchanged masks. This is the reference's documented
   behaviour (SAM 1 applied it; sam2 1.1.0 defines it but instead fills holes on the low-res logits
   with an optional CUDA kernel, skipped on CPU).

Microscopy: pass ``points`` (e.g. :func:`sam2_model.seeding.blob_points`) to prompt each detected
cell once instead of a grid; or use a denser grid (``points_per_side=64``) for small objects.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Generator, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from . import amg_ops
from .frames import to_model_input
from .image_predictor import ImagePredictor
from .modeling.sam2 import SAM2Model
from .prompt_validation import check_count, frame_span_words, inside_frame
from .windows import window_groups
from .work_steps import drain

__all__ = ["AutomaticMaskGenerator", "DEMO_CELL_SETTINGS", "FilterCounts", "MaskRecords", "NoMasksWarning",
           "REFERENCE_FILTERS", "default_filters", "records_to_labels", "window_groups"]

# Filters for the embedded "demo" model on nuclei (``AutomaticMaskGenerator(model, **DEMO_CELL_SETTINGS)``).
# The demo model was trained with single-mask output, so its three multimask outputs are untrained, and
# its logits are softer than the official models': good nuclei masks have stability scores of 0.75-0.97
# at offset 1, so the reference's 0.95 drops most cells (held-out synthetic frames: detection F1 0.77 at
# 0.95, 0.99 at 0.7). Its predicted IoU is honest, i.e. low, on real cells unlike its training nuclei: 0.51-0.81
# for the masks that pass stability on MSC frames 0, 5 and 9 (blob points or grids), so the reference's 0.8 kept
# no mask there (blob points: 0 of 8 cells on frame 0) and 0.5 keeps them all (8 of 9 marked cells), as the tracker's
# bar for blob clicks (tracking.detection.BLOB_IOU_THRESH); on synthetic nuclei (seeds 123, 5, 950, 951) 0.5 instead
# of 0.8 adds 0-6 masks to the 38-49 of a 32 x 32 grid (at most 5 false) and one true nucleus to blob points (no
# false mask). Official weights: keep the defaults.
DEMO_CELL_SETTINGS = {"multimask_output": False, "stability_score_thresh": 0.7, "pred_iou_thresh": 0.5}
REFERENCE_FILTERS = {"multimask_output": True, "stability_score_thresh": 0.95, "pred_iou_thresh": 0.8}  # sam2 1.1.0


def default_filters(config: Any) -> Dict[str, Any]:
    """The filters :class:`AutomaticMaskGenerator` uses where the caller gives none, for a model of ``config``
    (a :class:`~sam2_model.config.SAM2Config`): :data:`DEMO_CELL_SETTINGS` for the embedded ``demo`` architecture
    (its shipped or fine-tuned weights: one trained mask output, softer logits), the reference's defaults
    (:data:`REFERENCE_FILTERS`) for every official preset."""
    return dict(DEMO_CELL_SETTINGS if getattr(config, "name", None) == "demo" else REFERENCE_FILTERS)

EDGE_TOLERANCE = 20.0  # px: a mask box this close to an inner crop edge is taken as cut by the crop


def _check_fraction(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


class NoMasksWarning(UserWarning):
    """:meth:`AutomaticMaskGenerator.generate` kept no mask although the model proposed some (a filter removed all)."""


@dataclass
class FilterCounts:
    """How many candidate masks (one per click, or three with multimask) each filter removed in one
    :meth:`AutomaticMaskGenerator.generate` call; the filters run in this order, each on what the one before kept."""

    candidates: int = 0
    pred_iou: int = 0  # predicted IoU <= pred_iou_thresh
    stability: int = 0  # stability score < stability_score_thresh (empty masks have none and are removed)
    crop_edge: int = 0  # box within EDGE_TOLERANCE px of a crop edge that is not an image edge
    best_iou: float = -math.inf  # the highest predicted IoU of all candidates
    best_stability: float = -math.inf  # the highest stability score of the candidates over pred_iou_thresh

    def removed_by(self) -> List[str]:
        """The field names of the filters that removed some candidates, the one that removed most first."""
        names = [name for name in ("pred_iou", "stability", "crop_edge") if getattr(self, name)]
        return sorted(names, key=lambda name: -getattr(self, name))


class MaskRecords(list):
    """What :meth:`AutomaticMaskGenerator.generate` returns: a plain list of the reference's record dicts (it is a
    ``list``: index it, slice it, ``json`` it) that also carries ``image_shape`` (H, W) of the image, so that
    :func:`records_to_labels` needs no shape when no mask was kept, and ``filtered``, the :class:`FilterCounts`."""

    def __init__(self, records: Iterable[Dict[str, Any]] = (), image_shape: Optional[Tuple[int, int]] = None,
                 filtered: Optional[FilterCounts] = None) -> None:
        super().__init__(records)
        self.image_shape = None if image_shape is None else (int(image_shape[0]), int(image_shape[1]))
        self.filtered = FilterCounts() if filtered is None else filtered


class _Found:
    """Masks kept so far. masks (N, h, w) bool of their crop; boxes (N, 4) XYXY in image pixels; what was filtered."""

    def __init__(self) -> None:
        self.parts: List[Dict[str, Any]] = []
        self.counts = FilterCounts()

    def add(self, **fields: Any) -> None:
        self.parts.append(fields)


class AutomaticMaskGenerator:
    """Masks of everything in an image, from a grid of point prompts (or given points).

    See the module docstring for the steps. Parameters and defaults are the reference's:
    points_per_side (or explicit normalised ``point_grids``, one (K, 2) array per crop layer),
    points_per_batch, pred_iou_thresh, stability_score_thresh, stability_score_offset,
    mask_threshold, box_nms_thresh, crop_n_layers, crop_nms_thresh, crop_overlap_ratio,
    crop_n_points_downscale_factor, min_mask_region_area, multimask_output, use_m2m.
    multimask_output, stability_score_thresh and pred_iou_thresh left as None take the model's
    (:func:`default_filters`): the reference's True, 0.95 and 0.8 for official weights, :data:`DEMO_CELL_SETTINGS`
    (False, 0.7, 0.5) for the demo model, whose reference-default masks are almost all filtered out (0 masks on a
    frame of 12 nuclei; none on real MSC cells, whose predicted IoUs are 0.5-0.8). When every candidate mask was
    filtered out, :meth:`generate` warns (:class:`NoMasksWarning`) naming the filter that removed most, unless
    ``warn_if_empty=False`` (callers for whom an image without objects is normal, e.g. a tracker's empty frames).
    contrast_limits: (low, high) mapped to 0 and 1 for non-uint8 images (default: the image's
    0.5 / 99.8 percentiles; uint8 is always x / 255), computed once for all crops.
    """

    def __init__(
        self,
        model: SAM2Model,
        points_per_side: Optional[int] = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: Optional[float] = None,
        stability_score_thresh: Optional[float] = None,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: Optional[Sequence[np.ndarray]] = None,
        min_mask_region_area: int = 0,
        multimask_output: Optional[bool] = None,
        use_m2m: bool = False,
        contrast_limits: Optional[Sequence[float]] = None,
        warn_if_empty: bool = True,
    ) -> None:
        if (points_per_side is None) == (point_grids is None):
            raise ValueError("give exactly one of points_per_side (an integer) and point_grids (normalised grids)")
        self.crop_n_layers = check_count(crop_n_layers, "crop_n_layers", 0)
        if points_per_side is not None:
            check_count(points_per_side, "points_per_side", 1)
            factor = check_count(crop_n_points_downscale_factor, "crop_n_points_downscale_factor", 1)
            self.point_grids = amg_ops.layer_point_grids(int(points_per_side), self.crop_n_layers, factor)
        else:
            grids = [np.asarray(g, dtype=np.float64) for g in point_grids]
            if len(grids) != self.crop_n_layers + 1 or any(
                g.ndim != 2 or g.shape[1] != 2 or not np.isfinite(g).all() or (g < 0).any() or (g > 1).any()
                for g in grids
            ):
                raise ValueError(
                    f"point_grids must hold crop_n_layers + 1 = {self.crop_n_layers + 1} arrays of shape (K, 2) "
                    "with (x, y) in [0, 1]"
                )
            self.point_grids = grids
        self.points_per_side = points_per_side
        self.points_per_batch = check_count(points_per_batch, "points_per_batch", 1)
        filters = default_filters(model.config)
        if pred_iou_thresh is None:
            pred_iou_thresh = filters["pred_iou_thresh"]
        self.pred_iou_thresh = _check_fraction(pred_iou_thresh, "pred_iou_thresh")
        if stability_score_thresh is None:
            stability_score_thresh = filters["stability_score_thresh"]
        if multimask_output is None:
            multimask_output = filters["multimask_output"]
        self.stability_score_thresh = _check_fraction(stability_score_thresh, "stability_score_thresh")
        self.stability_score_offset = _check_fraction(stability_score_offset, "stability_score_offset")
        self.mask_threshold = _check_fraction(mask_threshold, "mask_threshold")
        self.box_nms_thresh = _check_fraction(box_nms_thresh, "box_nms_thresh")
        self.crop_nms_thresh = _check_fraction(crop_nms_thresh, "crop_nms_thresh")
        self.crop_overlap_ratio = _check_fraction(crop_overlap_ratio, "crop_overlap_ratio")
        if not 0 <= self.crop_overlap_ratio < 1:
            raise ValueError(f"crop_overlap_ratio must be in [0, 1), got {crop_overlap_ratio!r}")
        self.min_mask_region_area = check_count(min_mask_region_area, "min_mask_region_area", 0)
        self.multimask_output = bool(multimask_output)
        self.use_m2m = bool(use_m2m)
        self.warn_if_empty = bool(warn_if_empty)
        self.predictor = ImagePredictor(model, contrast_limits=contrast_limits)
        self.kept_so_far = 0  # masks kept so far by the running generate_steps call (for progress)
        self.model = model

    # ------------------------------------------------------------------ public
    def generate(
        self, image: Any, points: Optional[Any] = None, predictor: Optional[ImagePredictor] = None,
        window: Optional[int] = None,
    ) -> MaskRecords:
        """Masks of ``image``: (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (RGBA, read without its alpha), any numeric
        dtype, mapped as :meth:`ImagePredictor.unit_rgb` maps it (an RGB image whose picture is in one channel, the
        other two constant, is read as that channel in grey).

        points: optional (N, 2) (x, y) pixel prompts used instead of the grid (whole image, no crops).
        window: with ``points``, decode them in square windows of this many image px instead of on the whole image
        (small objects on a large image: see :mod:`sam2_model.windows`); the windows lie on a grid of half their
        side, each point goes to the window whose centre is nearest, and windows without points are not encoded.
        predictor: optional :class:`ImagePredictor` whose image is already set to ``image`` (its
        features are reused; only for a single layer: ``crop_n_layers=0`` or ``points`` given, no ``window``).
        After the call ``self.predictor`` holds the features of the last crop processed (the whole
        image when there is one layer).

        Returns one dict per mask, best first within the final NMS order: segmentation (H, W) bool,
        area int, bbox [x, y, w, h] (w = x1 - x0 of the inclusive pixel extent), predicted_iou float,
        point_coords [[x, y]], stability_score float, crop_box [x, y, w, h]; in a :class:`MaskRecords` list that
        also holds ``image_shape`` (H, W) (so ``records_to_labels(records)`` works when it is empty) and
        ``filtered`` (:class:`FilterCounts`). When the model proposed masks but the filters kept none, a
        :class:`NoMasksWarning` names the filter that removed most and the option to lower.

        The work is :meth:`generate_steps`' (the same records, found piece by piece), done in one call.
        """
        records = drain(self.generate_steps(image, points, predictor, window))
        self.warn_if_none_kept(records, stacklevel=2)  # generate's caller
        return records

    def warn_if_none_kept(self, records: MaskRecords, stacklevel: int = 2) -> None:
        """:meth:`generate`'s :class:`NoMasksWarning` for ``records`` (from :meth:`generate_steps`) when the model
        proposed masks but the filters kept none, unless ``warn_if_empty`` is off."""
        if not records and records.filtered.candidates and self.warn_if_empty:
            warnings.warn(self._no_mask_message(records.filtered), NoMasksWarning, stacklevel=stacklevel + 1)

    @torch.inference_mode()
    def generate_steps(
        self, image: Any, points: Optional[Any] = None, predictor: Optional[ImagePredictor] = None,
        window: Optional[int] = None, cropped: bool = False,
    ) -> Generator[Tuple[int, int], None, MaskRecords]:
        """:meth:`generate`'s records (its return value), found piece by piece: ``(done, total)`` is yielded after
        each model call (a crop's or window's image features, a batch of ``points_per_batch`` clicks), ``total`` the
        calls of the whole image, so that a caller can show progress and stop (close the generator) between two
        calls; a window of 50 blob points on 2 CPU cores takes ~0.5 s, where the whole call on a frame of 1000 blob
        points took 15 s. Run to its end it gives exactly :meth:`generate`'s records (same calls, same order); it
        does not warn when no mask was kept (:meth:`warn_if_none_kept` does, as :meth:`generate`). Bad arguments
        raise at the first ``next``.

        cropped: each record's ``segmentation`` is its mask cut to the mask's box (h, w) bool, placed in the image by
        the record's ``segmentation_box`` (rows, cols) slices, instead of an (H, W) mask: the same pixels, without an
        image-sized array per mask (hundreds of cells on a 2048 x 2048 frame held 4 MiB each). While the calls run,
        ``self.kept_so_far`` counts the masks kept so far (after each crop's or window's NMS), for progress."""
        unit = self.predictor.unit_rgb(image)  # mapped once for all crops, as ImagePredictor.set_image maps it
        height, width = unit.shape[:2]
        prompts = None if points is None else self._check_points(points, height, width)
        if window is not None:
            if prompts is None:
                raise ValueError("window needs points: windows are placed around given points, not a grid")
            if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 8:
                raise ValueError(f"window must be a window side of at least 8 image pixels, or None; got {window!r}")
            if predictor is not None:
                raise ValueError("predictor cannot be reused with window: each window is encoded on its own")
        if prompts is not None:
            crops, layers = [[0, 0, width, height]], [0]
            groups = [prompts]
            if window is not None:
                crops, groups = window_groups(prompts, int(window), height, width)
                layers = [0] * len(crops)
        else:
            crops, layers = amg_ops.crop_boxes((height, width), self.crop_n_layers, self.crop_overlap_ratio)
            groups = [None] * len(crops)
        if predictor is not None:
            if len(crops) > 1:
                raise ValueError("predictor can only be reused with one layer (crop_n_layers=0 or points given)")
            if predictor.image_shape != (height, width):
                raise ValueError(
                    f"predictor holds an image of shape {predictor.image_shape}, but image is {(height, width)}: "
                    "call predictor.set_image(image) first"
                )
        found = _Found()
        self.kept_so_far = 0
        work = [(crop, layer, group) for crop, layer, group in zip(crops, layers, groups)
                if group is None or group.shape[0]]  # (only a given, empty set of points has an empty group)
        batches = [len(self.point_grids[layer]) if group is None else len(group) for _, layer, group in work]
        total = sum(int(predictor is None) + -(-count // self.points_per_batch) for count in batches)
        done = 0
        for crop, layer, group in work:
            for _ in self._process_crop(unit, crop, layer, group, predictor, found):
                done += 1
                self.kept_so_far = sum(len(part["masks"]) for part in found.parts)
                yield done, total
        small_regions = self.min_mask_region_area > 0
        masks, fields = self._merge(found, len(crops), height, width, cropped=cropped and not small_regions)
        if small_regions and len(masks):  # (on whole-image masks: holes are measured in the image)
            masks, fields = self._remove_small_regions(masks, fields)
        if cropped:
            return MaskRecords(self._cropped_records(masks, fields, in_image=small_regions), (height, width),
                               found.counts)
        return MaskRecords(self._records(masks, fields), (height, width), found.counts)

    def _no_mask_message(self, counts: FilterCounts) -> str:
        """Why no mask was kept: each filter's count, and what to lower for the one that removed most."""
        def best(value: float) -> str:
            return f" (highest {value:.2f})" if math.isfinite(value) else ""

        steps = (f"{counts.pred_iou} had a predicted IoU <= pred_iou_thresh={self.pred_iou_thresh:g}"
                 f"{best(counts.best_iou)}; {counts.stability} of the rest a stability score < "
                 f"stability_score_thresh={self.stability_score_thresh:g}{best(counts.best_stability)}; "
                 f"{counts.crop_edge} touched an inner crop edge")
        advice = {
            "pred_iou": f"lower pred_iou_thresh (now {self.pred_iou_thresh:g}) to keep masks the model rates lower",
            "stability": f"lower stability_score_thresh (now {self.stability_score_thresh:g}) to keep softer masks",
            "crop_edge": "raise crop_overlap_ratio or lower crop_n_layers so that objects fit inside a crop",
        }
        fixes = ", or ".join(advice[name] for name in counts.removed_by())
        return f"AutomaticMaskGenerator kept no mask of {counts.candidates} candidates ({steps}): {fixes}"

    # ------------------------------------------------------------------ steps
    @staticmethod
    def _check_points(points: Any, height: int, width: int) -> np.ndarray:
        """points (N, 2) (x, y) on the image's pixels (:func:`~sam2_model.prompt_validation.inside_frame`:
        -0.5 <= x < W - 0.5, -0.5 <= y < H - 0.5) -> float64 (N, 2); ValueError naming what was wrong otherwise."""
        try:
            xy = np.asarray(points, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise ValueError(f"points must be an (N, 2) array of (x, y) pixels, got {points!r}") from error
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise ValueError(f"points must be an (N, 2) array of (x, y) pixels, got shape {xy.shape}")
        if not np.isfinite(xy).all():
            raise ValueError("points contain NaN or infinite coordinates")
        outside = ~inside_frame(xy[:, 0], xy[:, 1], height, width)  # the one click rule: pixels as napari draws them
        if outside.any():
            first = xy[outside][0].tolist()
            raise ValueError(f"points must lie inside the {width}x{height} image, got (x, y) = {first}; it takes "
                             f"{frame_span_words(height, width)}")
        return xy

    def _process_crop(
        self,
        unit: np.ndarray,
        crop: List[int],
        layer: int,
        prompts: Optional[np.ndarray],
        predictor: Optional[ImagePredictor],
        found: _Found,
    ) -> Iterator[None]:
        """One crop (or window): its features, then its clicks in batches; yields after each of these model calls and
        adds the crop's kept masks to ``found`` once its last batch is done."""
        x0, y0, x1, y1 = crop
        crop_hw = (y1 - y0, x1 - x0)
        if predictor is None:
            predictor = self.predictor
            tensor = to_model_input(unit[y0:y1, x0:x1], self.model.image_size, mode="bilinear")
            predictor.set_model_input(tensor, crop_hw)
            yield
        grid = prompts is None  # the grid's clicks may lie past the last pixel's edge, as the reference's do
        if grid:
            prompts = amg_ops.grid_in_pixels(self.point_grids[layer], crop_hw)
        kept = []
        for i in range(0, prompts.shape[0], self.points_per_batch):
            kept.append(self._process_batch(predictor, prompts[i : i + self.points_per_batch], crop, unit.shape[:2],
                                            found.counts, grid))
            yield
        masks = torch.cat([k[0] for k in kept])
        boxes = torch.cat([k[1] for k in kept])
        ious = torch.cat([k[2] for k in kept])
        stability = torch.cat([k[3] for k in kept])
        points = torch.cat([k[4] for k in kept])
        keep = amg_ops.batched_nms(boxes.float(), ious, torch.zeros(len(boxes), dtype=torch.int64), self.box_nms_thresh)
        offset = torch.tensor([x0, y0, x0, y0])
        found.add(crop_box=crop, masks=masks[keep], boxes=boxes[keep] + offset, ious=ious[keep],
                  stability=stability[keep],
                  points=points[keep] + torch.tensor([x0, y0], dtype=points.dtype),
                  crop=torch.tensor([crop] * len(keep), dtype=torch.int64).reshape(-1, 4))

    def _predict(self, predictor: ImagePredictor, xy: np.ndarray, mask_input: Optional[torch.Tensor],
                 multimask: bool, grid: bool) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 2) clicks -> logits (B * M, h, w), predicted IoU (B * M,), low-res logits (B * M, 4h', 4w').
        grid: the generator's grid points (:meth:`ImagePredictor.predict_grid`: 0 <= x <= W, as the reference clicks
        them); else the caller's points, checked on napari's pixels (:meth:`ImagePredictor.predict`)."""
        masks = None if mask_input is None else mask_input[:, None].numpy()
        if grid:
            logits, ious, low = predictor.predict_grid(xy, multimask=multimask, mask_input=masks)
        else:
            logits, ious, low = predictor.predict(points=xy[:, None, :], labels=np.ones((len(xy), 1), np.int32),
                                                  mask_input=masks, multimask=multimask, return_logits=True)
        return (torch.from_numpy(logits).flatten(0, 1), torch.from_numpy(ious).flatten(0, 1),
                torch.from_numpy(low).flatten(0, 1))

    def _process_batch(self, predictor: ImagePredictor, xy: np.ndarray, crop: List[int],
                       image_hw: Tuple[int, int], counts: FilterCounts, grid: bool) -> Tuple[torch.Tensor, ...]:
        """(B, 2) crop-pixel clicks (``grid``: the generator's grid points) -> kept masks (K, h, w) bool, boxes (K, 4),
        IoU, stability, points (K, 2); adds what each filter removed to ``counts``."""
        logits, ious, low = self._predict(predictor, xy, None, self.multimask_output, grid)
        per_point = logits.shape[0] // len(xy)
        points = torch.from_numpy(np.repeat(xy.astype(np.float32), per_point, axis=0))
        if self.use_m2m:
            refined = [self._predict(predictor, points[i : i + self.points_per_batch].numpy(),
                                     low[i : i + self.points_per_batch], False, grid)
                       for i in range(0, len(points), self.points_per_batch)]
            logits = torch.cat([r[0] for r in refined])
            ious = torch.cat([r[1] for r in refined])
        counts.candidates += len(ious)
        counts.best_iou = max([counts.best_iou] + ious.tolist())
        if self.pred_iou_thresh > 0.0:
            keep = ious > self.pred_iou_thresh
            counts.pred_iou += int((~keep).sum())
            logits, ious, points = logits[keep], ious[keep], points[keep]
        stability = amg_ops.stability_score(logits, self.mask_threshold, self.stability_score_offset)
        counts.best_stability = max([counts.best_stability] + [v for v in stability.tolist() if math.isfinite(v)])
        if self.stability_score_thresh > 0.0:
            keep = stability >= self.stability_score_thresh
            counts.stability += int((~keep).sum())
            logits, ious, points, stability = logits[keep], ious[keep], points[keep], stability[keep]
        masks = logits > self.mask_threshold
        boxes = amg_ops.masks_to_boxes(masks)
        height, width = image_hw
        keep = ~amg_ops.near_crop_edge(boxes, crop, [0, 0, width, height], EDGE_TOLERANCE)
        counts.crop_edge += int((~keep).sum())
        return masks[keep], boxes[keep], ious[keep], stability[keep], points[keep]

    def _merge(self, found: _Found, n_crops: int, height: int, width: int,
               cropped: bool = False) -> Tuple[Any, Dict[str, Any]]:
        """All crops' masks as (N, H, W) bool plus their fields, after the NMS across crops. ``cropped``: the masks
        as a list of (h, w) bool masks of their crops instead (the crop's box is the field ``crop``), not placed in
        an image-sized array."""
        if not found.parts:
            return (torch.zeros((0, height, width), dtype=torch.bool) if not cropped else []), {}
        fields = {key: torch.cat([p[key] for p in found.parts]) for key in ("boxes", "ious", "stability", "points",
                                                                             "crop")}
        if cropped:
            parts = [mask for p in found.parts for mask in p["masks"]]
            if n_crops > 1 and parts:
                scores = 1.0 / amg_ops.box_area(fields["crop"]).to(torch.float32)
                keep = amg_ops.batched_nms(fields["boxes"].float(), scores, torch.zeros(len(parts), dtype=torch.int64),
                                           self.crop_nms_thresh)
                parts = [parts[int(k)] for k in keep]
                fields = {key: value[keep] for key, value in fields.items()}
            return parts, fields
        masks = [amg_ops.uncrop_masks(p["masks"], p["crop_box"], height, width) for p in found.parts]
        masks = torch.cat(masks) if masks else torch.zeros((0, height, width), dtype=torch.bool)
        if n_crops > 1 and len(masks):
            scores = 1.0 / amg_ops.box_area(fields["crop"]).to(torch.float32)
            keep = amg_ops.batched_nms(fields["boxes"].float(), scores, torch.zeros(len(masks), dtype=torch.int64),
                                       self.crop_nms_thresh)
            masks = masks[keep]
            fields = {key: value[keep] for key, value in fields.items()}
        return masks, fields

    def _remove_small_regions(self, masks: torch.Tensor, fields: Dict[str, Any]) -> Tuple[torch.Tensor, Dict[str, Any]]:
        """Fill small holes, drop small islands; then NMS preferring unchanged masks."""
        cleaned, unchanged = [], []
        for mask in masks.numpy():
            filled, changed_holes = amg_ops.remove_small_regions(mask, self.min_mask_region_area, "holes")
            clean, changed_islands = amg_ops.remove_small_regions(filled, self.min_mask_region_area, "islands")
            cleaned.append(clean)
            unchanged.append(not (changed_holes or changed_islands))
        new_masks = torch.from_numpy(np.stack(cleaned))
        boxes = amg_ops.masks_to_boxes(new_masks)
        scores = torch.tensor(unchanged, dtype=torch.float32)
        keep = amg_ops.batched_nms(boxes.float(), scores, torch.zeros(len(boxes), dtype=torch.int64),
                                   max(self.box_nms_thresh, self.crop_nms_thresh))
        fields = {key: value[keep] for key, value in fields.items()}
        fields["boxes"] = boxes[keep]
        return new_masks[keep], fields

    @classmethod
    def _cropped_records(cls, masks: Any, fields: Dict[str, Any], in_image: bool) -> List[Dict[str, Any]]:
        """:meth:`_records` of masks given as a list of (h, w) masks of their crops (the field ``crop``; ``in_image``
        False) or as (N, H, W) image masks (``in_image``): each ``segmentation`` cut to its mask's box,
        ``segmentation_box`` its (rows, cols) slices of the image."""
        records = []
        for index in range(len(masks)):
            mask = masks[index].numpy()
            origin = (0, 0) if in_image else tuple(int(v) for v in fields["crop"][index].tolist()[:2])
            cut, box = _cut_to_box(mask, fields["boxes"][index].tolist(), origin)
            record = cls._records(torch.from_numpy(cut[None]), {key: value[index:index + 1]
                                                                 for key, value in fields.items()})[0]
            record["segmentation_box"] = box
            records.append(record)
        return records

    @staticmethod
    def _records(masks: torch.Tensor, fields: Dict[str, Any]) -> List[Dict[str, Any]]:
        records = []
        for index in range(len(masks)):
            x0, y0, x1, y1 = (int(v) for v in fields["boxes"][index].tolist())
            cx0, cy0, cx1, cy1 = (int(v) for v in fields["crop"][index].tolist())
            mask = masks[index].numpy()
            records.append({
                "segmentation": mask,
                "area": int(mask.sum()),
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "predicted_iou": float(fields["ious"][index]),
                "point_coords": [[float(v) for v in fields["points"][index].tolist()]],
                "stability_score": float(fields["stability"][index]),
                "crop_box": [cx0, cy0, cx1 - cx0, cy1 - cy0],
            })
        return records


def _cut_to_box(mask: np.ndarray, box: Sequence[int], origin: Tuple[int, int]) -> Tuple[np.ndarray, Tuple[slice, slice]]:
    """``mask`` (h, w) of a crop whose top-left pixel is ``origin`` (x, y) of the image, cut to ``box`` (XYXY image
    pixels, inclusive maxima: :func:`~sam2_model.amg_ops.masks_to_boxes` moved into the image) -> (the cut mask,
    its (rows, cols) slices of the image)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    ox, oy = origin
    return (np.ascontiguousarray(mask[y0 - oy:y1 - oy + 1, x0 - ox:x1 - ox + 1]),
            (slice(y0, y1 + 1), slice(x0, x1 + 1)))


def records_to_labels(records: Sequence[Dict[str, Any]], shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Records of :meth:`AutomaticMaskGenerator.generate` -> (H, W) int32 label image.

    Record i gets label i + 1; where masks overlap the pixel goes to the record with the higher
    predicted IoU. The shape is the masks'; for no records it is ``shape``, else the ``image_shape`` that
    :meth:`AutomaticMaskGenerator.generate`'s :class:`MaskRecords` carry (a plain empty list, e.g. a filtered copy,
    needs ``shape=image.shape[:2]``). A ``shape`` that differs from the masks' is a ValueError.
    """
    if shape is not None:
        given = shape
        try:
            shape = tuple(int(n) for n in given)
        except (TypeError, ValueError):
            shape = ()
        if len(shape) != 2 or min(shape) < 0:
            raise ValueError(f"shape must be the image's (H, W), got {given!r}")
    if not records:
        shape = shape if shape is not None else getattr(records, "image_shape", None)
        if shape is None:
            raise ValueError("records is empty and carries no image shape: pass shape=image.shape[:2] (the records "
                             "AutomaticMaskGenerator.generate returns carry it; a list made from them does not)")
        return np.zeros(tuple(shape), dtype=np.int32)
    mask_shape = tuple(np.shape(records[0]["segmentation"]))
    if shape is not None and shape != mask_shape:
        raise ValueError(f"shape {shape} differs from the records' masks {mask_shape}")
    labels = np.zeros(mask_shape, dtype=np.int32)
    best = np.full(labels.shape, -np.inf)
    for index, record in enumerate(records):
        wins = record["segmentation"] & (record["predicted_iou"] > best)
        labels[wins] = index + 1
        best[wins] = record["predicted_iou"]
    return labels
