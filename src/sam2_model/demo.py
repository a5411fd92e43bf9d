"""Headless demo (the README's main job): track every cell of a synthetic fluorescence time-lapse.

    python -m sam2_model.demo [--model demo|NAME] [--checkpoint PATH|download] [--frames 30] [--out DIR]

By default the embedded demo model runs (no download): a held-out synthetic time-lapse (a seed never
used in training) is generated, every cell of frame 0 gets one positive click at its most interior
pixel, the session propagates through all frames, and the labels are written as a TIFF beside the
stack. The run prints the one-click IoU on frame 0 and J&F over the tracked frames against the
ground truth. An official preset runs with its cached checkpoint (or ``--checkpoint download``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional

import numpy as np
import tifffile

from .build import Weights, build_model
from .checkpoints import OFFICIAL_CHECKPOINTS, find_cached
from .evaluation import track_synthetic

DEMO_SEED = 900_042  # held out: training clips use seeds >= 1_000_003


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--checkpoint", default=None,
                        help="embedded (demo), download (official presets: cached or downloaded), random, or a .pt file")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--out", default="out", help="folder for the stack, labels and ground-truth TIFFs")
    args = parser.parse_args(argv)

    checkpoint = args.checkpoint
    if checkpoint is None and args.model in OFFICIAL_CHECKPOINTS:
        checkpoint = find_cached(args.model)
        if checkpoint is None:
            parser.error(f"no cached checkpoint for {args.model}: pass --checkpoint download (or a file), "
                         "or run the embedded model with --model demo")
    start = time.perf_counter()
    try:
        model = build_model(args.model, checkpoint=checkpoint, device=args.device, image_size=args.image_size)
    except ValueError as error:
        parser.error(str(error))
    embedded = args.model == "demo" and (checkpoint is None or str(checkpoint).lower() in
                                         (Weights.EMBEDDED.value, Weights.DOWNLOAD.value))
    source = "embedded weights" if embedded else f"weights from {checkpoint}"
    print(f"built {args.model} ({model.image_size}px input) on {model.device} with {source} "
          f"in {time.perf_counter() - start:.1f} s")

    run = track_synthetic(model, seed=args.seed, num_frames=args.frames)
    print(f"synthetic time-lapse: {args.frames} frames of 256x256 uint16 (seed {args.seed}); "
          f"one click on each of {len(run.obj_ids)} cells in frame 0")
    scores = run.scores()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(out / "stack.tif", run.movie.image, photometric="minisblack")
    tifffile.imwrite(out / "labels.tif", run.predicted.astype(np.uint16), photometric="minisblack")
    tifffile.imwrite(out / "ground_truth.tif", run.movie.labels.astype(np.uint16), photometric="minisblack")
    print(f"segmented and tracked in {run.seconds:.1f} s ({args.frames / run.seconds:.1f} frames/s for all objects)")
    print(f"frame 0, one click per cell: mean IoU {run.first_frame_iou():.3f}")
    print(f"frames 1-{args.frames - 1}: J {np.mean([s['J'] for s in scores]):.3f}, "
          f"F {np.mean([s['F'] for s in scores]):.3f}, J&F {np.mean([s['JF'] for s in scores]):.3f}")
    print(f"wrote {out / 'stack.tif'}, {out / 'labels.tif'} and {out / 'ground_truth.tif'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
