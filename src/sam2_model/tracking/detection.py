"""Cell detection on one frame: point prompts (blobs, a grid or both) -> SAM 2 masks -> clean instances.

The automatic mask generator and the blob seeding live in :mod:`sam2_model.automatic` and
:mod:`sam2_model.seeding` (imported when a detector is made). Here their masks are reduced to cells:
sizes outside the ``cell_diameter`` range are dropped, overlaps are resolved so that each pixel
belongs to at most one detection (best predicted IoU x stability first), and masks that do not stand out
from their surroundings (:func:`mask_contrast` below ``min_contrast``) are dropped: a model that has learned
to find objects on grey, noisy backgrounds also gives confident masks for patches of that background.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, Generator, List, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import ndimage

from ..click_points import click_point
from ..frames import UINT8_LIMITS, check_invert, inverted, percentile_limits
from ..seeding import DEFAULT_CELL_DIAMETER, NAMES, diameter_cut_words, fit_diameters
from ..work_steps import drain, relay
from .divisions import Crop

if TYPE_CHECKING:  # the model's code and the windows (torch) are imported where a detector uses them: SEEDINGS and
    from ..modeling.sam2 import SAM2Model  # the checks load without torch (the plugin's dock)

SEEDINGS = ("blobs", "grid", "grid+blobs")
Detector = Callable[[np.ndarray], List[np.ndarray]]
# (stage, done, total): how far one detection is, yielded by CellDetector.steps between pieces of model work. stage:
# "finding" (the filter passes over the frame that find its blob points: seeding.blob_points_steps), "seeding" (seeds placed: the grid and blob points whose masks are made, of the frame's seeds), "clicking" (blob points
# clicked again: crowded cells) or "contrast" (masks checked against their surroundings); done of total units of that
# stage (one unit per stage: a count that only goes up within a frame)
DetectionWork = Tuple[str, int, int]
WindowArg = Union[None, int, str]  # None (the whole frame), "auto" or a window side in frame px
# the folders of this package and of the plugin beside it: a warning of advice names the first frame outside them
_OWN_CODE = tuple(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), name)
                  + os.sep for name in ("sam2_model", "napari_sam2"))
# masks below this mask_contrast are dropped (0: off). 0.7 since the demo weights of 2026-12-04 (candidate D in
# docs/training_data.md): on MSC it took their automatic tracking from DET 0.35 / 227 tracks to 0.49 / 113 tracks;
# at 1.0 (DET 0.53) it dropped a fresh daughter that touches its sister (a division test of test_tracking.py)
MIN_CONTRAST = 0.7
# the detector's stability_score_thresh: the demo model's masks are soft at the edge (at the reference's 0.95 it lost
# a third of the nuclei); its 2026-12-04 weights give cells entering at the image border stability 0.36-0.39 (at
# 0.5 they were missed), so 0.3, the bar already used on the real MSC data, with the contrast check against background
STABILITY_THRESH = 0.3
# When blob seeding warns that a frame is crowded. Each seed is a click (MSC's 912-929 a frame took minutes), and more
# seeds than cells could be there means the texture inside cells or noise, found at a diameter range below the cells'.
# It warns beyond MANY_SEEDS seeds whatever the frame (slow), and beyond CROWDED_SEEDS where the seeds' discs at the
# smallest diameter would cover more than CROWDED_COVER of the frame (implausible, and slow enough to say). Measured
# at 8-40 px: the MSC time-lapse halved to 416 x 496 gave 912-1086 blobs a frame for its 8-9 cells, discs covering
# 22-26 % of it; 256 x 256 crops of MSC's full frames 234-586 blobs (18-45 %; the crop of 4 cells with 228-260
# blobs, 18-20 %, ran 35x slower than at 20-80 px, which found 15-19); noise gives 31-48 %, a lattice of bright spots
# 14 px apart 25 %; the synthetic test movies at most 3.3 %. Real nuclei can be that dense too (touching at twice the
# smallest diameter: 91 % / 4 = 23 %; a synthetic frame of 255+ nuclei of 12 px at 9-26 px gave 279 blobs, 26 %):
# those are warned about as well (by count and cover they look like MSC's texture, and 279 clicks a frame are slow
# too; the advice says to change the range only if the cells are fewer). Under CROWDED_SEEDS a frame is quick enough
# not to warn, whatever it covers (a small frame: a 128 x 128 crop of MSC gives 141-157 blobs).
MANY_SEEDS = 1000
CROWDED_SEEDS = 200
CROWDED_COVER = 0.15
# a click with negative points scores lower than a lone click: the bar of a re-click (as in CellDetector.split)
RECLICK_MIN_SCORE = 0.7
# the predicted-IoU bar of a click on a blob. A blob is already evidence of a cell, so this bar only drops masks the
# model itself calls wrong; the automatic mask generator's 0.8 (the reference's default) suits grid points, most of
# which land on background. Weights trained on spread cells (IR, docs/training_data.md) predict IoU honestly on
# the real MSC cells: their masks of true IoU 0.4-0.7 score 0.6-0.83 and those scoring under 0.5 have true IoU
# <= 0.2, while the shipped weights of 2026-12-04 score every MSC mask 0.72-0.95 whatever its true IoU (0.08-0.64).
# At 0.8 the IR weights found no cell on MSC's first frame; at 0.5 their automatic tracking of MSC reached DET 0.63
# (shipped weights at 0.8: 0.53), and the shipped weights' synthetic tracking is unchanged.
BLOB_IOU_THRESH = 0.5
GRID_IOU_THRESH = 0.8  # the automatic mask generator's default, for grid points


def check_cell_diameter(cell_diameter: Sequence[float]) -> Tuple[float, float]:
    try:
        low, high = (float(v) for v in cell_diameter)
    except (TypeError, ValueError):
        raise ValueError(f"cell_diameter must be two numbers (min, max) in pixels, got {cell_diameter!r}") from None
    if not 0 < low <= high:
        raise ValueError(f"cell_diameter must satisfy 0 < min <= max, got {cell_diameter!r}")
    return low, high


def default_min_area(cell_diameter: Sequence[float]) -> int:
    """A quarter of the smallest cell's disc: smaller masks are fragments (cells entering show more)."""
    low, _ = check_cell_diameter(cell_diameter)
    return max(4, int(0.25 * math.pi * (low / 2) ** 2))


def clean_crops(records: Sequence[Dict[str, Any]], shape: Tuple[int, int], min_area: int, max_area: float,
                min_kept: float = 0.5) -> List[Crop]:
    """Non-overlapping masks from generator records (dicts with ``segmentation``, ``predicted_iou``,
    ``stability_score``), each a :class:`~.divisions.Crop` of an image of ``shape`` (H, W): best first (predicted_iou
    times stability_score); a mask keeps the pixels not yet taken and is dropped if fewer than ``min_kept`` of its
    pixels (or fewer than ``min_area``) remain or its area is outside [min_area, max_area]. A record's
    ``segmentation`` is cut to its ``segmentation_box`` (rows, cols) slices
    (:meth:`~sam2_model.automatic.AutomaticMaskGenerator.generate_steps` with ``cropped=True``); a record without that
    key holds a whole (H, W) mask. One (H, W) array of the pixels taken is kept, not one per mask."""
    def score(r: Dict[str, Any]) -> float:
        return float(r.get("predicted_iou", 1.0)) * float(r.get("stability_score", 1.0))

    shape = (int(shape[0]), int(shape[1]))
    taken = np.zeros(shape, dtype=bool)
    out: List[Crop] = []
    for record in sorted(records, key=score, reverse=True):
        mask = np.asarray(record["segmentation"], dtype=bool)
        box = record.get("segmentation_box", (slice(0, shape[0]), slice(0, shape[1])))
        area = int(np.count_nonzero(mask))
        if not min_area <= area <= max_area:
            continue
        free = mask & ~taken[box]
        if np.count_nonzero(free) < max(min_kept * area, min_area):
            continue
        taken[box] |= free
        out.append(Crop(free, box, shape))
    return out


def tight(crop: Crop) -> Crop:
    """``crop`` cut to the box of its pixels (an empty crop stays as it is)."""
    found = ndimage.find_objects(crop.mask.view(np.uint8))
    if not found or found[0] is None:
        return crop
    return Crop(crop.mask[found[0]], crop.inner(found[0]), crop.shape)


def crop_of(mask: np.ndarray) -> Crop:
    """A frame's mask (H, W) bool as a :class:`~.divisions.Crop` of its pixels' box (of the frame when empty)."""
    return tight(Crop.whole(np.asarray(mask, dtype=bool)))


def crop_contrast(frame: np.ndarray, crop: Crop) -> float:
    """:func:`mask_contrast` of the frame's mask that ``crop`` (a :class:`~.divisions.Crop`) holds: the same value,
    reading only the mask's box grown by the ring (not the whole frame)."""
    crop = tight(crop)
    area = int(np.count_nonzero(crop.mask))
    if area == 0:
        raise ValueError("mask_contrast needs a mask with at least one pixel")
    width = max(3, int(round(0.25 * math.sqrt(area / math.pi))))
    (rows, cols), (height, frame_width) = crop.box, crop.shape
    y0, y1 = max(0, rows.start - width), min(height, rows.stop - 1 + width + 1)
    x0, x1 = max(0, cols.start - width), min(frame_width, cols.stop - 1 + width + 1)
    inside = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    inside[rows.start - y0:rows.stop - y0, cols.start - x0:cols.stop - x0] = crop.mask
    image = np.asarray(frame)[y0:y1, x0:x1].astype(np.float64)
    if image.ndim == 3:
        image = image.mean(axis=-1)
    ring = (ndimage.distance_transform_edt(~inside) <= width) & ~inside
    if not ring.any():  # the mask fills the frame: nothing to compare with
        return float("inf")
    ring_std = float(image[ring].std()) + 1e-9
    inside_std = float(image[inside].std()) + 1e-9
    step = abs(float(image[inside].mean()) - float(image[ring].mean())) / ring_std
    return max(step, abs(math.log(inside_std / ring_std)))


def mask_contrast(frame: np.ndarray, mask: np.ndarray) -> float:
    """How far a mask stands out from a ring of pixels around it, in units of the ring's spread.

    frame: (H, W) grey or (H, W, C) (channels averaged); mask: (H, W) bool, not empty. The ring is as wide as a
    quarter of the mask's equivalent radius (at least 3 px). Returns the larger of |mean inside - mean of
    the ring| / std of the ring (bright or dark cells) and |log(std inside / std of the ring)| (cells told
    apart by texture or relief, as in DIC). A patch of background scores near 0; the cells of the real
    MSC time-lapse mostly score 0.6-4. (:func:`crop_contrast` computes it.)
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("mask_contrast needs a mask with at least one pixel")
    return crop_contrast(frame, crop_of(mask))


def check_min_contrast(min_contrast: Any) -> float:
    """``min_contrast`` as a float: a finite number >= 0 (ValueError naming it and what it accepts otherwise)."""
    if not (isinstance(min_contrast, numbers.Real) and not isinstance(min_contrast, bool)
            and math.isfinite(min_contrast) and min_contrast >= 0):
        raise ValueError(f"min_contrast must be a finite number >= 0 (0 keeps every mask), got {min_contrast!r}")
    return float(min_contrast)


def make_detector(model: SAM2Model, seeding: str = "blobs", cell_diameter: Sequence[float] = (8, 40),
                  min_area: Optional[int] = None, min_contrast: float = MIN_CONTRAST,
                  window: WindowArg = "auto", invert: bool = False, **amg_options: Any) -> "CellDetector":
    """A function frame (H, W[, C]) -> list of (H, W) bool cell masks.

    seeding: "blobs" (prompts on LoG blobs of the cell-size range: best for small or sparse cells),
    "grid" (SAM 2's regular point grid, ``points_per_side``), "grid+blobs" (both, merged).
    amg_options go to :class:`sam2_model.automatic.AutomaticMaskGenerator` (its defaults, except
    ``multimask_output=False``: a click on a nucleus is not ambiguous and the demo model has one output;
    ``stability_score_thresh=STABILITY_THRESH`` (0.3): the demo model's masks are soft at the edge). Without a
    ``pred_iou_thresh`` there, masks of blob clicks need a predicted IoU above ``BLOB_IOU_THRESH`` (0.5) and masks of
    grid points above ``GRID_IOU_THRESH`` (0.8, the generator's default); with one, it is the bar for both.
    min_contrast: masks whose :func:`mask_contrast` is lower are background, not cells (0: keep all).
    window: blob clicks (and the re-clicks of crowded and dividing cells) are decoded in windows of this many frame
    px around them instead of on the whole frame (:mod:`sam2_model.windows`); "auto": the side
    :func:`~sam2_model.windows.window_side` gives for the cell-diameter range's geometric mean on each frame (default;
    see :meth:`CellDetector.window_side`; the whole frame where it is not much larger than a window); None: the whole
    frame. On real nuclei ~24 px wide in 512 x 512 (bench/real_nuclei.py) windows of 192 px took detection F1 from
    0.61 to 0.79.
    invert: dark cells on a bright background (as :class:`~sam2_model.frames.FrameSource`'s ``invert``): each frame is
    reflected within its contrast limits (:func:`~sam2_model.frames.inverted`) before anything looks at it, so the
    model sees 1 - x of its [0, 1] values, as the tracking session does, and the blobs seeded are the dark ones
    (as :func:`~sam2_model.seeding.blob_points` finds them with ``dark_cells=True``).
    """
    min_contrast = check_min_contrast(min_contrast)
    invert = check_invert(invert)
    if seeding not in SEEDINGS:
        raise ValueError(f"seeding must be one of {SEEDINGS}, got {seeding!r}")
    low, high = check_cell_diameter(cell_diameter)
    window = check_window(window)
    min_area = default_min_area((low, high)) if min_area is None else int(min_area)
    if min_area < 1:
        raise ValueError(f"min_area must be >= 1 pixel, got {min_area}")
    max_area = 2.0 * math.pi * (high / 2) ** 2  # twice the largest cell's disc: larger masks are background
    from ..automatic import AutomaticMaskGenerator  # lazily: detection is optional for the rest
    from ..seeding import blob_points

    # one click in the middle of a nucleus is not ambiguous, and the demo model is trained for one output
    amg_options.setdefault("multimask_output", False)
    amg_options.setdefault("warn_if_empty", False)  # a frame without cells is normal in a time-lapse
    # the demo model's masks are soft at the edge: at 0.95 a third of the nuclei were dropped, at 0.8 most
    # daughters of a fresh division (the masks that start their tracks), at 0.5 cells entering at the border
    amg_options.setdefault("stability_score_thresh", STABILITY_THRESH)
    grid_iou_thresh = None  # a second bar for grid masks, only where blob masks share the generator's lower one
    if "pred_iou_thresh" not in amg_options:
        amg_options["pred_iou_thresh"] = GRID_IOU_THRESH if seeding == "grid" else BLOB_IOU_THRESH
        if seeding == "grid+blobs":
            grid_iou_thresh = GRID_IOU_THRESH
    return CellDetector(AutomaticMaskGenerator(model, **amg_options), blob_points, seeding, (low, high),
                        min_area, max_area, float(min_contrast), grid_iou_thresh, window, invert)


def cell_window_side(window: "WindowArg", cell_diameter: Tuple[float, float], frame_shape: Sequence[int],
                     image_size: int) -> Optional[int]:
    """The window side (frame px) for cells of ``cell_diameter`` (min, max) px on frames of ``frame_shape``, or None.

    ``window`` None or a side: returned as it is. "auto": :func:`~sam2_model.windows.window_side` for the range's
    geometric mean at an ``image_size`` px input, but at least twice the largest diameter plus twice the automatic
    mask generator's edge margin (a blob point lies at least a quarter side from an inner window edge, and a mask
    that comes within ``EDGE_TOLERANCE`` of one is dropped as cut); None where the frame is not 1.5x that."""
    if window is None or isinstance(window, int):
        return window
    from ..windows import MIN_FRAME_TO_WINDOW, window_side

    side = window_side(math.sqrt(cell_diameter[0] * cell_diameter[1]), frame_shape, image_size)
    if side is None:
        return None
    from ..automatic import EDGE_TOLERANCE  # lazily, as in make_detector

    side = max(side, int(math.ceil((2 * cell_diameter[1] + 4 * EDGE_TOLERANCE) / 8.0) * 8))
    return side if MIN_FRAME_TO_WINDOW * side <= max(int(frame_shape[0]), int(frame_shape[1])) else None


def check_window(window: Any) -> "WindowArg":
    """``window`` as given, checked: None or "off" (the whole frame; returned as None), "auto" or a window side of at
    least 8 frame px."""
    if isinstance(window, str) and window.strip().lower() == "off":
        return None
    if window is None or (isinstance(window, str) and window == "auto"):
        return window
    if isinstance(window, (int, np.integer)) and not isinstance(window, bool) and window >= 8:
        return int(window)
    raise ValueError(f'window must be None or "off" (the whole frame), "auto" (from the cell diameter) or a window '
                     f"side of at least 8 frame pixels, got {window!r}")


class CellDetector:
    """Callable frame -> cell masks (see :func:`make_detector`); remembers the last frame's blob points."""

    def __init__(self, generator: Any, blob_points: Callable[..., np.ndarray], seeding: str,
                 cell_diameter: Tuple[float, float], min_area: int, max_area: float,
                 min_contrast: float = MIN_CONTRAST, grid_iou_thresh: Optional[float] = None,
                 window: WindowArg = None, invert: bool = False) -> None:
        self.generator, self.blob_points, self.seeding = generator, blob_points, seeding
        self.invert = bool(invert)  # dark cells: frames reflected within their limits first (see make_detector)
        self.cell_diameter, self.min_area, self.max_area = cell_diameter, min_area, max_area
        self.min_contrast = min_contrast
        self.grid_iou_thresh = grid_iou_thresh  # stricter bar for grid points' masks; None: the generator's alone
        self.window = window  # None, "auto" or a side in frame px (see make_detector)
        self.points = np.zeros((0, 2))  # (N, 2) (x, y) blob points of the last frame detected
        # the last frame's advice, else "": its blob points were too many (many_seeds_advice), and on the first frame of
        # a size narrower than a range the person gave (diameter_given), the range cut to it (diameter_cut_words)
        self.advice = ""
        self.advice_with_options = ""  # the same naming the options that set the range (the warning's words)
        self.warn_advice = True  # False: the advice is only kept (a caller that reads it, e.g. track_cells' on_advice)
        # whether the person gave the range: one wider than a frame is then said once (advice, and a warning where
        # warn_advice), the default (8, 40) cut without a word (a caller that knows better may set it)
        self.diameter_given = tuple(float(v) for v in cell_diameter) != DEFAULT_CELL_DIAMETER
        self._cut_said: set = set()  # the frame shapes (H, W) whose cut of the range was said
        self._clicker: Any = None  # what re-clicks the last frame: the generator's predictor or a WindowedPredictor
        self.found = 0  # cells found so far on the frame being detected (for progress; see crop_steps)

    def window_side(self, frame_shape: Sequence[int]) -> Optional[int]:
        """The side (frame px) of the windows blob clicks are decoded in on frames of ``frame_shape``, or None
        (see :func:`cell_window_side`)."""
        return cell_window_side(self.window, self.cell_diameter, frame_shape, self.generator.model.image_size)

    def __call__(self, frame: np.ndarray) -> List[np.ndarray]:
        return drain(self.steps(frame))

    def steps(self, frame: np.ndarray) -> Generator[DetectionWork, None, List[np.ndarray]]:
        """:meth:`crop_steps` with each cell's mask placed in the frame: (H, W) bool masks (the same pixels)."""
        crops = yield from self.crop_steps(frame)
        return [crop.full(crop.mask) for crop in crops]

    def crop_steps(self, frame: np.ndarray) -> Generator[DetectionWork, None, List[Crop]]:
        """The cell masks of ``frame`` (H, W[, C]) as :meth:`__call__` finds them (its return value), found piece by
        piece: a :data:`DetectionWork` (stage, done, total) is yielded after each model call of the seeding (an image's
        or window's features, a batch of clicks: :meth:`~sam2_model.automatic.AutomaticMaskGenerator.generate_steps`)
        and once the seeds are known (blob points found: ("seeding", 0, seeds)), the seeding counted in seeds placed
        (grid points first, then blob points: :func:`grid_seed_count` + blob points in all), before each blob point
        clicked again and between its two clicks (:meth:`crowded_cells`) and after each mask's contrast check, so that
        a caller can show progress and stop (close the generator) within a frame, one model call later whatever the
        number of blob points. The masks are the same as without stopping. Stopped part-way, it returns nothing;
        ``points``, ``advice`` and the re-click predictor may then be this frame's. ``advice`` is set (and a UserWarning
        given) as soon as the blob points are found, when they are too many for the frame (:func:`crowded_frame`) or,
        once per detector and frame size, when a range the person gave (:attr:`diameter_given`) is wider than the
        frame's short side and cut to it (:func:`~sam2_model.seeding.fit_diameters`; the default range is cut without
        a word); a range of which no cell fits is a ValueError before any blob is looked for.

        Each mask is returned as a :class:`~.divisions.Crop` of its box (mask (h, w) bool, its box and the frame's
        shape): no (H, W) array per cell (600 nuclei of a 2048 x 2048 frame held 2.4 GiB of them). ``found`` counts the
        cells found so far while it runs (the masks the seeding kept, then those cleaned, re-clicked and checked)."""
        records: List[Dict[str, Any]] = []
        self.found = 0
        if self.invert:
            frame = self.reflected(frame)
        self.points = np.zeros((0, 2))
        self.advice = self.advice_with_options = ""
        shape = tuple(int(n) for n in np.shape(frame)[:2])
        side = self.window_side(shape)
        self._clicker = self.generator.predictor
        # the blob points are found first (no model call), so that the seeding is one count from its start: of the
        # frame's seeds (grid points, then blob points) whose masks are made
        if self.seeding in ("blobs", "grid+blobs"):
            diameter = fit_diameters(*self.cell_diameter, shape)  # refused where no cell of the range fits
            finding = getattr(self.blob_points, "steps", None)  # blob finding piece by piece (seeding.blob_points)
            if callable(finding):
                self.points = yield from _finding_work(finding(frame, cell_diameter=diameter))
            else:
                self.points = self.blob_points(frame, cell_diameter=diameter)
            advice, with_options = [], []
            if diameter[1] < float(self.cell_diameter[1]) and self.diameter_given and shape not in self._cut_said:
                self._cut_said.add(shape)  # said once (the first frame of this size), not on every frame
                advice.append(diameter_cut_words(*self.cell_diameter, shape))
                with_options.append(diameter_cut_words(*self.cell_diameter, shape, NAMES))
            if crowded_frame(len(self.points), diameter, shape):
                advice.append(many_seeds_advice(len(self.points), diameter, shape))
                with_options.append(many_seeds_advice(len(self.points), diameter, shape, ADVICE_OPTION_NAMES))
            self.advice, self.advice_with_options = "; ".join(advice), "; ".join(with_options)
            if self.warn_advice and self.advice:
                warnings.warn(self.advice_with_options, UserWarning, stacklevel=user_stacklevel())
        grid_seeds = grid_seed_count(self.generator) if self.seeding in ("grid", "grid+blobs") else 0
        seeds = grid_seeds + len(self.points)
        yield "seeding", 0, seeds  # the seeds are known (and the advice given): none placed yet
        if grid_seeds:
            grid = yield from _seeding_work(self.generator, 0, grid_seeds, seeds, frame, cropped=True)
            records += [r for r in grid if self.grid_iou_thresh is None or r["predicted_iou"] > self.grid_iou_thresh]
            self.found = len(records)
        if len(self.points):  # last, so the predictor keeps this frame's features
            records += yield from _seeding_work(self.generator, grid_seeds, len(self.points), seeds, frame,
                                                points=self.points, window=side, cropped=True, found=self)
        if self.seeding in ("blobs", "grid+blobs") and side is not None:
            from ..windows import WindowedPredictor

            self._clicker = WindowedPredictor(self.generator.model, side,
                                              contrast_limits=self.generator.predictor.contrast_limits)
            self._clicker.set_image(frame)
        masks = clean_crops(records, np.shape(frame)[:2], self.min_area, self.max_area)
        del records
        self.found = len(masks)
        if len(self.points):
            masks += yield from self.crowded_cells(masks)
            self.found = len(masks)
        if self.min_contrast > 0:
            kept = []
            for done, mask in enumerate(masks, start=1):
                if crop_contrast(frame, mask) >= self.min_contrast:
                    kept.append(mask)
                self.found = len(kept) + len(masks) - done  # (those kept, and those not checked yet)
                yield "contrast", done, len(masks)
            masks = kept
        self.found = len(masks)
        return masks

    def reflected(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` (H, W[, C]) with dark and bright swapped within the limits the generator's predictor maps it with
        (its ``contrast_limits``; else 0-255 for uint8, the frame's percentiles otherwise), clipped to them: the model
        then sees (about) 1 - x of what it would have seen."""
        frame = np.asarray(frame)
        limits = getattr(self.generator.predictor, "contrast_limits", None)
        if limits is None:
            limits = UINT8_LIMITS if frame.dtype == np.uint8 else percentile_limits([frame])
        flipped = inverted(frame, limits)
        return flipped if flipped.dtype == np.uint8 else np.clip(flipped, limits[0], limits[1], out=flipped)

    def crowded_cells(self, masks: Sequence[Union[np.ndarray, Crop]]) -> Generator[DetectionWork, None, List[Crop]]:
        """Cells whose blob point no kept mask covers because one click on them gave a mask mostly over a
        neighbour (the neighbour's own mask claimed those pixels first; e.g. a cell entering beside another).
        Each is clicked again with a negative point inside every kept mask its first mask overlapped (at least
        half of that mask); the result, less the pixels already taken, is kept if its predicted IoU is at least
        ``RECLICK_MIN_SCORE``, its area fits and it lies mostly where the first mask went beyond the neighbours.
        masks: the masks kept so far (of the last frame detected), :class:`~.divisions.Crop` s (or (H, W) bool masks).
        A generator (part of :meth:`crop_steps`): ("clicking", points done, points) is yielded before each blob point it
        clicks and between its two clicks (one or two model calls each); it returns the new masks as Crops of their
        boxes (:func:`drain` runs it in one call)."""
        if not masks:
            return []
        masks = [m if isinstance(m, Crop) else crop_of(m) for m in masks]
        predictor = self._clicker
        taken = np.zeros(masks[0].shape, dtype=bool)
        for m in masks:
            taken[m.box] |= m.mask
        xy = np.round(self.points).astype(int)
        found: List[Crop] = []
        for done, (point, (x, y)) in enumerate(zip(self.points, xy)):
            if taken[y, x]:
                continue
            yield "clicking", done, len(self.points)
            first, _, _ = predictor.predict(points=point[None], labels=[1], multimask=False)
            neighbours = [m for m in masks
                          if np.count_nonzero(m.mask & first[0][m.box]) * 2 >= np.count_nonzero(m.mask)]
            if not neighbours:  # not crowded: its mask was dropped for its own reasons
                continue
            yield "clicking", done, len(self.points)  # (between its two model calls: a stop waits for one only)
            negatives = [_crop_click_point(m) for m in neighbours]  # each neighbour's most interior pixel
            again, scores, _ = predictor.predict(points=np.vstack([point[None], negatives]),
                                                 labels=[1] + [0] * len(negatives), multimask=False)
            free = again[0] & ~taken
            area = int(np.count_nonzero(free))
            beside = np.count_nonzero(free & first[0])  # where the first mask went beyond the neighbours
            if float(scores[0]) < RECLICK_MIN_SCORE or not self.min_area <= area <= self.max_area or beside * 2 < area:
                continue
            found.append(crop_of(free))
            taken |= free
        return found

    def split(self, mask: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """Two nuclei inside one mask (H, W) of the last frame detected, or None.

        Needs two blob points in the mask at least the smallest cell diameter apart; each is clicked
        positive with the other negative, so SAM 2 separates touching cells it would merge from one click.
        """
        if len(self.points) < 2:
            return None
        xy = self.points.astype(int)
        inside = self.points[mask[xy[:, 1], xy[:, 0]]]
        if len(inside) < 2:
            return None
        d = np.hypot(*(inside[:, None, :] - inside[None, :, :]).transpose(2, 0, 1))
        i, j = np.unravel_index(int(np.argmax(d)), d.shape)
        if d[i, j] < self.cell_diameter[0]:
            return None
        predictor = self._clicker
        pieces = []
        for keep, drop in ((inside[i], inside[j]), (inside[j], inside[i])):
            masks, scores, _ = predictor.predict(points=np.stack([keep, drop]), labels=[1, 0], multimask=False)
            if float(scores[0]) < RECLICK_MIN_SCORE:
                return None
            pieces.append(masks[0] & mask)
        a, b = pieces
        a &= ~b  # disjoint daughters
        return a, b


def _crop_click_point(crop: Crop) -> Tuple[float, float]:
    """:func:`~sam2_model.click_points.click_point` of the frame's mask that ``crop`` holds, in frame pixels (x, y)
    (it measures in the mask's box grown by 1 px, which the crop's own pixels give)."""
    x, y = click_point(crop.mask)
    return x + crop.box[1].start, y + crop.box[0].start


def crowded_frame(count: int, cell_diameter: Sequence[float], frame_shape: Sequence[int]) -> bool:
    """Whether ``count`` blob seeds on one frame of ``frame_shape`` (H, W) with cells of ``cell_diameter`` (min, max)
    px are too many: more than :data:`MANY_SEEDS` (each is a click: slow, whatever the frame), or more than
    :data:`CROWDED_SEEDS` whose discs at the smallest diameter would cover more than :data:`CROWDED_COVER` of the frame
    (more candidate cells than plausible: the texture inside cells or noise, found at a diameter below the cells')."""
    low, _ = check_cell_diameter(cell_diameter)
    area = float(frame_shape[0]) * float(frame_shape[1])
    cover = count * math.pi * (low / 2) ** 2 / max(area, 1.0)
    return count > MANY_SEEDS or (count > CROWDED_SEEDS and cover > CROWDED_COVER)


#: the option names the detector's warning gives for the diameter range (the command line's and the API's)
ADVICE_OPTION_NAMES = " (--cell-diameter MIN MAX; cell_diameter=(min, max))"


def many_seeds_advice(count: int, cell_diameter: Sequence[float], frame_shape: Sequence[int], names: str = "") -> str:
    """What to do when blob seeding found ``count`` (too many: :func:`crowded_frame`) candidate cells of
    ``cell_diameter`` (min, max) px on one frame of ``frame_shape`` (H, W), in words for the user; ``names``: the option's names where
    it is set, put after "diameter range in pixels" (the detector's warning names the command line's and the API's;
    :attr:`CellDetector.advice`, which Track all shows, none)."""
    low, high = (float(v) for v in cell_diameter)
    return (f"{count} candidate cells (blobs {low:g}-{high:g} px wide) on one {int(frame_shape[0])} x "
            f"{int(frame_shape[1])} frame: each is clicked, so detection will take long. If your cells are fewer, set "
            f"their diameter range in pixels{names}: a range below the cells' size finds texture and noise inside them "
            "(a larger minimum diameter); measure a few cells' width and length, e.g. 40 160 for cells 40-160 px "
            "across (CTC's MSC stem cells); grid seeding suits cells larger than the range")


def user_stacklevel() -> int:
    """The ``stacklevel`` for ``warnings.warn`` called in the function that calls this one: the first frame of the call
    stack outside ``sam2_model`` and ``napari_sam2`` (the user's script, the console's line, the command's entry point),
    as Python 3.12's ``skip_file_prefixes`` would give. Python's warning display quotes that frame's source line: with
    a fixed stacklevel, a warning given in a generator quoted whichever line of ours drove it (``stage, done, total =
    next(steps)``), which read like a piece of a traceback. All frames ours (a thread of our own): the outermost."""
    frame, level = sys._getframe(2), 2  # the caller's caller: stacklevel 2 of a warning given by the caller
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_OWN_CODE):
        frame, level = frame.f_back, level + 1
    return level


def grid_seed_count(generator: Any) -> int:
    """How many grid points ``generator`` (an :class:`~sam2_model.automatic.AutomaticMaskGenerator`) clicks on a
    frame: each crop layer's grid once per crop of that layer (layer k: (2**k)**2 crops)."""
    return sum(len(grid) * 4 ** layer for layer, grid in enumerate(generator.point_grids))


def _finding_work(steps: Generator[Tuple[int, int], None, Any]) -> Generator[DetectionWork, None, Any]:
    """Blob finding's ``(done, total)`` filter passes (:func:`~sam2_model.seeding.blob_points_steps`) as "finding" work
    of :meth:`CellDetector.crop_steps`; returns the points (closed, they are closed)."""
    return relay(steps, lambda step: ("finding", step[0], step[1]))


def _seeding_work(generator: Any, before: int, seeds: int, total: int, *args: Any, found: Any = None,
                  **kwargs: Any) -> Generator[DetectionWork, None, Any]:
    """``generator.generate_steps(*args, **kwargs)`` (:meth:`~sam2_model.automatic.AutomaticMaskGenerator.generate_steps`:
    (done, total) model calls) as "seeding" work of :meth:`CellDetector.steps`, counted in seeds: its ``seeds`` points
    (the grid's or the blobs') are the seeds ``before`` .. ``before + seeds`` of the frame's ``total``, placed in
    proportion to the model calls done (a window's features, a batch of clicks); so the count goes up from ``before``
    to ``before + seeds`` and never down. Returns their records, as ``generate`` would (its warning when none was kept
    included); closed, they are closed. ``found``: an object whose ``found`` is set to its count before these seeds
    plus the masks the generator kept so far (its ``kept_so_far``) after each call (progress)."""
    found_before = 0 if found is None else int(found.found)

    def seeded(step: Tuple[int, int]) -> DetectionWork:
        done, calls = step
        if found is not None:
            found.found = found_before + int(getattr(generator, "kept_so_far", 0))
        return "seeding", before + seeds * done // max(calls, 1), total

    records = yield from relay(generator.generate_steps(*args, **kwargs), seeded)
    generator.warn_if_none_kept(records, stacklevel=4)  # (off unless the caller asked for it)
    return records


def detect_cells(model: SAM2Model, frame: np.ndarray, seeding: str = "blobs",
                 cell_diameter: Sequence[float] = (8, 40), min_area: Optional[int] = None,
                 min_contrast: float = MIN_CONTRAST, **amg_options: Any) -> List[np.ndarray]:
    """Cell masks (list of (H, W) bool, non-overlapping) on one frame (H, W[, C]); see :func:`make_detector`."""
    return make_detector(model, seeding, cell_diameter, min_area, min_contrast, **amg_options)(frame)
