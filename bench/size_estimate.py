"""How close the object width behind ``image_size="auto"`` comes to the true width: shipped and a candidate.

    python bench/size_estimate.py [--frames] [--seeds 201 202 ...]      (~25 s on 2 CPU cores)

For every frame: the true width (:func:`sam2_model.input_size.diameter_from_masks` of its labels: the median of twice
each object's largest distance to the background), the width that :func:`estimate_object_diameter` reads from the
pixels, and whether the input size *auto* picks from it (:func:`suggest_image_size`, demo model) is the one the
true width gives. Two estimators side by side: ``shipped`` (:func:`estimate_object_diameter`) and ``candidate``
(:func:`candidate_estimate`: a noise floor where Otsu separates poorly, the median over area where the crop holds
fewer than 10 pieces; tried and left on 2026-12-06, docs/input_size.md: it reads the real MSC cells right, but object
windows sized from it tracked MSC less well).

Frames:

* the seeded synthetic rows of docs/input_size.md's table (:data:`SYNTHETIC_ROWS`, seeds :data:`SEEDS`, one frame
  each of ``sam2_model.synth.microscopy.make_microscopy_timelapse``; the table's first figures came from an earlier
  generator and unrecorded seeds, so these are re-measured on today's generator, clutter and specks included);
* frames 0-9 of the Cell Tracking Challenge time-lapse Fluo-C2DL-MSC/01 (``../shared/data/ctc-msc``, skipped when
  absent). True width from the segmentation ground truth (01_GT/SEG): the frame's own where it labels every cell of
  the frame's tracking ground truth (frames 5 and 7), else that of the nearest such frame (the mean of the two at a
  tie). The TRA markers are printed beside it: they are eroded markers, ~half a cell's area, and read ~10-30 % narrow;
* the real widefield nuclei of ``bench/real_nuclei.py`` (the stardist wheel's example, skipped when not installed).
"""

from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu

from sam2_model.input_size import (
    ESTIMATE_CROP, MIN_WIDTH_PX, _grey_unit, diameter_from_masks, estimate_object_diameter, suggest_image_size,
)
from sam2_model.synth.microscopy import make_microscopy_timelapse

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
MSC = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "ctc-msc"
MSC_FRAMES = tuple(range(10))
SEEDS = (101, 102, 103, 104, 105, 106)

# (row of docs/input_size.md's table, modality, cell type, cell_size (the generator's object length), frame shape);
# several tuples under one row label are measured together (phase-contrast rods: two lengths, 3-6 px wide).
SYNTHETIC_ROWS: Tuple[Tuple[str, str, str, float, Tuple[int, int]], ...] = (
    ("fluorescence nuclei, 12 px, 512 x 512", "fluorescence", "nuclei", 12, (512, 512)),
    ("fluorescence nuclei, 40 px, 512 x 512", "fluorescence", "nuclei", 40, (512, 512)),
    ("fluorescence cells, 30 px, 512 x 512", "fluorescence", "cells", 30, (512, 512)),
    ("fluorescence rods (~4 px wide), 256 x 256", "fluorescence", "rods", 10, (256, 256)),
    ("phase-contrast rods (~3-6 px wide), 256 x 256", "phase", "rods", 10, (256, 256)),
    ("phase-contrast rods (~3-6 px wide), 256 x 256", "phase", "rods", 16, (256, 256)),
    ("phase-contrast cells, brightfield cells, DIC nuclei", "phase", "cells", 30, (256, 256)),
    ("phase-contrast cells, brightfield cells, DIC nuclei", "brightfield", "cells", 30, (256, 256)),
    ("phase-contrast cells, brightfield cells, DIC nuclei", "dic", "nuclei", 20, (256, 256)),
)

Estimator = Callable[[Any], float]


@dataclass
class Case:
    """One frame to measure: ``row`` groups frames in the summary; ``truth`` the true width (px), ``note`` its
    source; ``frame`` (H, W)."""

    row: str
    name: str
    frame: np.ndarray
    truth: float
    note: str = ""


#: the candidate's guards (docs/input_size.md, "A noise-proof estimate, tried and left")
MIN_SEPARABILITY = 0.5  # a poorer Otsu split may be of the background's noise (real MSC frame 0: 0.42; others 0.65)
NOISE_FLOOR = 5.0  # then objects stand this many x the smoothed pixel noise beyond the frame's median
FEW_PIECES = 10  # with fewer pieces the median is over area: two cells are not outvoted by three specks
CLUMP_AREA = 6.0  # a piece of more than this x width^2 (a colony, a background region) weighs as one piece


def candidate_estimate(frame: Any) -> float:
    """The shipped :func:`estimate_object_diameter` with two guards (not shipped: object windows size themselves from
    the same estimate and lost on MSC with it; docs/input_size.md). Where Otsu barely separates the two classes
    (separability under :data:`MIN_SEPARABILITY`: it may be splitting the background's noise) the threshold is moved
    to at least :data:`NOISE_FLOOR` x the smoothed background's pixel noise from the frame's median; with fewer than
    :data:`FEW_PIECES` pieces (a few large cells in the crop beside specks) the median is over area (a piece weighs
    width^2; a clump, a piece of more than :data:`CLUMP_AREA` x width^2 or 1/8 of the crop, weighs 1)."""
    unit = _grey_unit(frame, ESTIMATE_CROP)
    smooth = ndimage.gaussian_filter(unit, 1.0)
    if float(smooth.max() - smooth.min()) < 1e-6:
        return float("nan")
    foreground = _object_pixels(unit, smooth)
    labels, count = ndimage.label(foreground)
    if count == 0:
        return float("nan")
    index = np.arange(1, count + 1)
    distance = ndimage.distance_transform_edt(foreground)
    widths = 2.0 * np.asarray(ndimage.maximum(distance, labels, index=index), np.float64)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:].astype(np.float64)
    kept = widths >= MIN_WIDTH_PX
    return _typical_width(widths[kept], areas[kept], smooth.size)


def _object_pixels(unit: np.ndarray, smooth: np.ndarray) -> np.ndarray:
    """(H, W) bool: the objects of ``smooth`` (the (H, W) ``unit`` frame smoothed): the minority class of its Otsu
    split, the threshold moved beyond the background's noise where the split is poor (see
    :func:`candidate_estimate`)."""
    threshold = float(threshold_otsu(smooth))
    above = smooth > threshold
    bright = above.mean() <= 0.5  # the objects are the minority class
    objects = above if bright else ~above
    if _separability(smooth, above) >= MIN_SEPARABILITY:
        return objects
    noise = _pixel_noise(unit, ~objects) / (2.0 * math.sqrt(math.pi))  # white noise after the sigma-1 Gaussian
    level = float(np.median(smooth))
    if bright:
        return smooth > max(threshold, level + NOISE_FLOOR * noise)
    return smooth < min(threshold, level - NOISE_FLOOR * noise)


def _separability(values: np.ndarray, split: np.ndarray) -> float:
    """Otsu's separability of ``values`` split by the bool ``split`` (same shape): between-class variance over
    total variance, 0 (no separation) to 1 (two levels)."""
    share = float(split.mean())
    total = float(values.var())
    if share in (0.0, 1.0) or total <= 0.0:
        return 0.0
    gap = float(values[split].mean() - values[~split].mean())
    return share * (1.0 - share) * gap * gap / total


def _pixel_noise(unit: np.ndarray, background: np.ndarray) -> float:
    """The standard deviation of white pixel noise in ``unit`` (H, W) from its ``background`` pixels ((H, W) bool):
    the median absolute step between neighbouring background pixels (rows and columns) as a Gaussian sigma, over
    sqrt(2). 0 where fewer than 100 such steps exist."""
    steps = np.concatenate([np.diff(unit, axis=0)[background[1:] & background[:-1]],
                            np.diff(unit, axis=1)[background[:, 1:] & background[:, :-1]]])
    if steps.size < 100:
        return 0.0
    return 1.4826 * float(np.median(np.abs(steps))) / math.sqrt(2.0)


def _typical_width(widths: np.ndarray, areas: np.ndarray, crop_pixels: int) -> float:
    """The typical of pieces ``widths`` (N,) px with ``areas`` (N,) px in a crop of ``crop_pixels``: their median,
    or with fewer than :data:`FEW_PIECES` pieces the median over area (see :func:`candidate_estimate`).
    NaN for no piece."""
    if not len(widths):
        return float("nan")
    if len(widths) >= FEW_PIECES:
        return float(np.median(widths))
    single = (areas <= CLUMP_AREA * widths ** 2) & (areas <= crop_pixels / 8.0)
    weights = np.where(single, widths ** 2, 1.0)
    order = np.argsort(widths, kind="stable")
    cumulated = np.cumsum(weights[order])
    return float(widths[order][np.searchsorted(cumulated, 0.5 * cumulated[-1])])


def synthetic_cases(seeds: Sequence[int] = SEEDS) -> Iterator[Case]:
    """One frame per seed and entry of :data:`SYNTHETIC_ROWS`; truth: the width of its labels."""
    for row, modality, cell_type, cell_size, shape in SYNTHETIC_ROWS:
        for seed in seeds:
            movie = make_microscopy_timelapse(seed, shape=shape, num_frames=1, modality=modality,
                                              cell_type=cell_type, cell_size=cell_size)
            yield Case(row, f"{modality} {cell_type} {cell_size:g} seed {seed}", movie.image[0],
                       diameter_from_masks(movie.labels[0]))


def msc_truth(data: pathlib.Path, frame: int, seg: Dict[int, np.ndarray], track: np.ndarray) -> Tuple[float, str]:
    """The true width on MSC ``frame``: the segmentation ground truth of the nearest frame whose SEG labels every
    cell of its TRA markers (the mean of the two nearest at a tie), and where it came from."""
    import tifffile

    def complete(t: int) -> bool:
        markers = tifffile.imread(data / "01_GT" / "TRA" / f"man_track{t:03d}.tif")
        return len(np.unique(seg[t])) >= len(np.unique(markers))

    full = sorted(t for t in seg if complete(t))
    gap = min(abs(t - frame) for t in full)
    nearest = [t for t in full if abs(t - frame) == gap]
    width = float(np.mean([diameter_from_masks(seg[t]) for t in nearest]))
    return width, "SEG " + "+".join(f"{t:03d}" for t in nearest) + f", TRA {diameter_from_masks(track):.1f}"


def msc_cases(data: pathlib.Path = MSC, frames: Sequence[int] = MSC_FRAMES) -> Iterator[Case]:
    """MSC frames ``frames`` with :func:`msc_truth`; nothing when the data is absent."""
    import tifffile

    if not (data / "01_GT" / "SEG").is_dir():
        print(f"(no MSC time-lapse at {data}: its rows are left out)")
        return
    seg = {int(p.stem[-3:]): tifffile.imread(p) for p in sorted((data / "01_GT" / "SEG").glob("man_seg*.tif"))}
    for t in frames:
        track = tifffile.imread(data / "01_GT" / "TRA" / f"man_track{t:03d}.tif")
        truth, note = msc_truth(data, t, seg, track)
        yield Case("MSC frames 0-9 (832 x 992)", f"MSC t{t:03d}", tifffile.imread(data / "01" / f"t{t:03d}.tif"),
                   truth, note)


def real_nuclei_cases() -> Iterator[Case]:
    """The real widefield nuclei of bench/real_nuclei.py; nothing when not installed."""
    from real_nuclei import load_real_nuclei, real_nuclei_folder

    if real_nuclei_folder() is None:
        print("(no real nuclei image: pip install --no-deps stardist==0.9.2; its row is left out)")
        return
    nuclei = load_real_nuclei()
    yield Case("real nuclei (stardist example, 512 x 512)", "real nuclei", nuclei.image,
               diameter_from_masks(nuclei.labels))


@dataclass
class Measure:
    """One estimator on one case: its estimate (px), the size auto picks from it and the seconds it took."""

    estimate: float
    size: Optional[int]
    seconds: float


def measure(estimator: Estimator, case: Case) -> Measure:
    start = time.perf_counter()
    estimate = estimator(case.frame)
    seconds = time.perf_counter() - start
    size = suggest_image_size(estimate, case.frame.shape) if np.isfinite(estimate) else None
    return Measure(estimate, size, seconds)


def summary(cases: List[Case], results: Dict[str, List[Measure]]) -> None:
    """Per row and estimator: the range of estimate / truth, how many within 0.5-2x, auto == size from truth."""
    rows = list(dict.fromkeys(c.row for c in cases))
    print(f"\n{'row':52s} {'estimator':9s} {'estimate / true':>16s} {'0.5-2x':>7s} {'auto = true':>11s}")
    for row in rows:
        picked = [i for i, c in enumerate(cases) if c.row == row]
        true_sizes = [suggest_image_size(cases[i].truth, cases[i].frame.shape) for i in picked]
        for name, measures in results.items():
            ratios = np.array([measures[i].estimate / cases[i].truth for i in picked])
            within = int(np.sum((ratios >= 0.5) & (ratios <= 2.0)))
            same = sum(measures[i].size == s for i, s in zip(picked, true_sizes))
            spread = f"{np.nanmin(ratios):.2f}-{np.nanmax(ratios):.2f}"
            print(f"{row:52s} {name:9s} {spread:>16s} {within:>3d} / {len(picked):<2d} {same:>4d} / {len(picked):<2d}")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", action="store_true", help="print every synthetic frame (MSC and real always)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS),
                        help=f"seeds of the synthetic frames (default {' '.join(map(str, SEEDS))}; others: held out)")
    args = parser.parse_args(argv)
    estimators: Dict[str, Estimator] = {"shipped": estimate_object_diameter, "candidate": candidate_estimate}
    cases = list(synthetic_cases(args.seeds)) + list(msc_cases()) + list(real_nuclei_cases())
    results = {name: [measure(fn, case) for case in cases] for name, fn in estimators.items()}
    print(f"{'frame':34s} {'true':>6s}  " + "  ".join(f"{n + ' (size)':>14s}" for n in estimators) + "  source")
    for i, case in enumerate(cases):
        if args.frames or not case.row.startswith(("fluo", "phase")):
            true_size = suggest_image_size(case.truth, case.frame.shape)
            cells = "  ".join(f"{results[n][i].estimate:6.1f} ({results[n][i].size})".rjust(14) for n in estimators)
            print(f"{case.name:34s} {case.truth:6.1f}  {cells}  true size {true_size}; {case.note}")
    summary(cases, results)
    for name, measures in results.items():
        print(f"{name}: {np.mean([m.seconds for m in measures]):.3f} s a frame on average, "
              f"at most {max(m.seconds for m in measures):.3f} s")


if __name__ == "__main__":
    main()
