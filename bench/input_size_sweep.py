"""One click per nucleus at each model input size: what ``image_size`` (and *auto*) buys with given weights.

    python bench/input_size_sweep.py src/sam2_model/weights/demo.pt [OTHER.pt ...] [--sizes 256 384 512 768]

Frames: 512 x 512 synthetic fluorescence (``sam2_model.synthetic.make_timelapse``, 25 nuclei, seeds 4000-4002,
frame 0), once with large nuclei (``radius_fraction`` 0.035: ~32 px wide) and once with small ones (0.009: ~8 px
wide). Every nucleus that does not touch the border and covers at least half its nominal disc is clicked once at
its most interior pixel (:func:`sam2_model.evaluation.click_ious`); the table gives the mean IoU of the one-output
masks per weights file, nucleus size and input size, and which size *auto* picks for those frames
(:func:`sam2_model.input_size.suggest_image_size` from the true width). All on the CPU; no timing.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

import sam2_model as sm
from sam2_model.evaluation import click_ious, clickable_objects
from sam2_model.input_size import diameter_from_masks, suggest_image_size
from sam2_model.synthetic import make_timelapse

FRAME_SIDE = 512
SEEDS = (4000, 4001, 4002)
NUCLEI = {"large (~32 px)": 0.035, "small (~8 px)": 0.009}  # radius as a fraction of the frame's side


def frames_of(radius_fraction: float, seeds: Sequence[int]) -> List[tuple]:
    """[(image (H, W), labels (H, W), clicked ids)] of frame 0 of each seed."""
    nominal_area = math.pi * (radius_fraction * FRAME_SIDE) ** 2
    out = []
    for seed in seeds:
        movie = make_timelapse(num_frames=1, shape=(FRAME_SIDE, FRAME_SIDE), num_cells=25, seed=seed,
                               radius_fraction=radius_fraction)
        ids = clickable_objects(movie.labels[0], min_area=max(4, int(0.5 * nominal_area)))
        out.append((movie.image[0], movie.labels[0], ids))
    return out


def sweep(weights: Path, sizes: Sequence[int], frames: Dict[str, List[tuple]]) -> Dict[str, Dict[int, float]]:
    """{nuclei kind: {input size: mean one-click IoU}} for one weights file."""
    table: Dict[str, Dict[int, float]] = {kind: {} for kind in frames}
    for size in sizes:
        predictor = sm.ImagePredictor(sm.build_model("demo", checkpoint=str(weights), image_size=size))
        for kind, items in frames.items():
            ious = [iou for image, labels, ids in items for iou in click_ious(predictor, image, labels, ids)]
            table[kind][size] = float(np.mean(ious))
    return table


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", type=Path)
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 384, 512, 768])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    frames = {kind: frames_of(fraction, SEEDS) for kind, fraction in NUCLEI.items()}
    for kind, items in frames.items():
        width = float(np.median([diameter_from_masks(labels) for _, labels, _ in items]))
        count = sum(len(ids) for _, _, ids in items)
        print(f"{kind}: {count} nuclei clicked, true width {width:.1f} px, auto picks "
              f"{suggest_image_size(width, (FRAME_SIDE, FRAME_SIDE))} px")
    results = {str(w): sweep(w, args.sizes, frames) for w in args.weights}
    print("weights".ljust(40) + "nuclei".ljust(18) + "".join(f"{s} px".rjust(9) for s in args.sizes))
    for name, table in results.items():
        for kind, row in table.items():
            print(name[-40:].ljust(40) + kind.ljust(18) + "".join(f"{row[s]:9.3f}" for s in args.sizes))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
