"""Automatic tracking quality and speed: synthetic held-out time-lapses and (optionally) the real CTC data.

    python bench/bench_tracking.py                       # seeds 900001..900005, 24 frames, 256 x 256
    python bench/bench_tracking.py --seeds 900001 --frames 12
    python bench/bench_tracking.py --real ../shared/data/ctc-msc --real-frames 48

Synthetic: frame-0 detection F1 (IoU >= 0.5, one-to-one), CTC SEG / DET / TRA and division measures
(py-ctcmetrics; division recall and precision at a 3-frame tolerance), entering-cell recall (sam2_model.tracking.entering_recall), seconds per frame and the
number of cells. Real: the same CTC measures against the sequence's 01_GT (sparse SEG frames).
Seeds >= 900001 are never used for training. Timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

import sam2_model as sm
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import (MIN_CONTRAST, detection_f1, entering_recall, evaluate_ctc, make_detector, track_cells,
                                 write_ctc, write_ctc_ground_truth)

KEYS = ("SEG", "DET", "TRA", "division_recall", "division_precision", "BC(3)", "tp_div(3)", "fp_div(3)", "fn_div(3)")


def with_precision(measures: Dict[str, float], tolerance: int = 3) -> Dict[str, float]:
    """Adds ``division_precision`` = tp_div / (tp_div + fp_div) at ``tolerance`` frames (NaN without divisions)."""
    tp, fp = measures.get(f"tp_div({tolerance})", 0.0), measures.get(f"fp_div({tolerance})", 0.0)
    return {**measures, "division_precision": tp / (tp + fp) if tp + fp else float("nan")}


def run_synthetic(model, seed: int, frames: int, size: int, cells: int, options: Dict,
                  radius_fraction: float = 0.06) -> Dict[str, float]:
    tl = make_timelapse(num_frames=frames, shape=(size, size), num_cells=cells, seed=seed,
                        radius_fraction=radius_fraction)
    detector = make_detector(model, options["seeding"], options["cell_diameter"],
                             min_contrast=options.get("min_contrast", MIN_CONTRAST),
                             window=options.get("window", "auto"))
    f1 = detection_f1(detector(tl.image[0]), tl.labels[0])
    start = time.perf_counter()
    result = track_cells(model, tl.image, **options)
    seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        gt = write_ctc_ground_truth(Path(tmp) / "gt", tl.labels, tl.parents)
        write_ctc(Path(tmp) / "res", result.labels, result.lineage)
        measures = with_precision(evaluate_ctc(Path(tmp) / "res", gt))
    entering = entering_recall(result.labels, tl.labels, tl.parents, delay=options["redetect_every"])
    n_cells = float(np.mean([len(np.unique(f)) - 1 for f in tl.labels]))
    return {"seed": seed, "det_f1": f1["f1"], **{k: measures.get(k, float("nan")) for k in KEYS},
            "gt_divisions": measures.get("gt_divisions", 0.0), "entering_recall": entering["recall"],
            "entered": entering["entered"], "cells_per_frame": n_cells, "s_per_frame": seconds / frames,
            "tracks": len(result.lineage)}


def run_real(model, root: Path, frames: int, options: Dict, smooth: float = 0.0) -> Dict[str, float]:
    import tifffile

    from sam2_model.frames import FrameSource

    images = sorted((root / "01").glob("t*.tif"))[:frames]
    stack = np.stack([tifffile.imread(p) for p in images])
    start = time.perf_counter()
    frames_in = FrameSource(stack, image_size=model.image_size, smooth=smooth) if smooth else stack
    result = track_cells(model, frames_in, **options)
    seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        gt_src = root / "01_GT"
        if frames < len(sorted((root / "01").glob("t*.tif"))):
            raise ValueError("--real-frames must cover the whole sequence (py-ctcmetrics compares every frame)")
        write_ctc(Path(tmp) / "res", result.labels, result.lineage)
        measures = with_precision(evaluate_ctc(Path(tmp) / "res", gt_src))
    return {**{k: measures.get(k, float("nan")) for k in KEYS}, "gt_divisions": measures.get("gt_divisions", 0.0),
            "s_per_frame": seconds / len(stack), "tracks": len(result.lineage), "shape": list(stack.shape)}


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=[900_001, 900_002, 900_003, 900_004, 900_005])
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--cells", type=int, default=12)
    parser.add_argument("--radius-fraction", type=float, default=0.06,
                        help="mean nucleus radius as a fraction of the frame side (0.06: 15 px at 256; 0.02 at 768: "
                             "nuclei ~30 px wide, small against the frame)")
    parser.add_argument("--window", default="auto",
                        help="object windows for detection and tracking: auto (default), off, or a side in px")
    parser.add_argument("--seeding", default="blobs")
    parser.add_argument("--cell-diameter", type=float, nargs=2, default=(8, 40))
    parser.add_argument("--redetect-every", type=int, default=5)
    parser.add_argument("--min-contrast", type=float, default=None,
                        help="drop detections that stand out less than this from their surroundings "
                             "(sam2_model.tracking.detection.mask_contrast; default: the detector's)")
    parser.add_argument("--real", type=Path, default=None, help="a CTC dataset folder with 01/ and 01_GT/")
    parser.add_argument("--real-frames", type=int, default=48)
    parser.add_argument("--real-cell-diameter", type=float, nargs=2, default=(40, 160))
    parser.add_argument("--real-stability", type=float, default=0.3,
                        help="stability_score_thresh on the real data (the demo model's masks there are soft)")
    parser.add_argument("--real-smooth", type=float, default=0.0, metavar="SIGMA",
                        help="blur the real frames by a Gaussian of SIGMA px first (the session's smooth option)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--weights", default="download",
                        help="the demo model's weights: a {'model': state_dict} file (default: the shipped ones)")
    args = parser.parse_args(argv)
    model = sm.build_model("demo", checkpoint=args.weights)
    window = None if args.window == "off" else args.window if args.window == "auto" else int(args.window)
    options = dict(seeding=args.seeding, cell_diameter=tuple(args.cell_diameter), redetect_every=args.redetect_every,
                   window=window)
    if args.min_contrast is not None:
        options["min_contrast"] = args.min_contrast
    rows = []
    for seed in args.seeds:
        row = run_synthetic(model, seed, args.frames, args.size, args.cells, options, args.radius_fraction)
        rows.append(row)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    if rows:
        mean = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0] if k != "seed"}
        print("mean", json.dumps({k: round(v, 3) for k, v in mean.items()}))
    if args.real is not None:
        real = run_real(model, args.real, args.real_frames, {**options, "cell_diameter": tuple(args.real_cell_diameter),
                                                              "stability_score_thresh": args.real_stability},
                        smooth=args.real_smooth)
        rows.append({"real": str(args.real), "smooth": args.real_smooth, **real})
        print("real", json.dumps(real))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
