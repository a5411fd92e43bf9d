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

from .build import build_model
from .checkpoints import OFFICIAL_CHECKPOINTS, find_cached
from .evaluation import click_point, clickable_objects, track_with_clicks
from .metrics import j_and_f, region_similarity
from .synthetic import make_timelapse
from .train.data import lineage_masks

DEMO_SEED = 900_042  # held out: training clips use seeds >= 1_000_003


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--checkpoint", default=None, help="a .pt file, or 'download' (official presets)")
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
    model = build_model(args.model, checkpoint=checkpoint, device=args.device, image_size=args.image_size)
    source = "embedded weights" if args.model == "demo" and checkpoint is None else f"weights from {checkpoint}"
    print(f"built {args.model} ({model.image_size}px input) on {model.device} with {source} "
          f"in {time.perf_counter() - start:.1f} s")

    movie = make_timelapse(num_frames=args.frames, shape=(256, 256), seed=args.seed)
    obj_ids = clickable_objects(movie.labels[0])
    clicks = {obj_id: click_point(movie.labels[0] == obj_id) for obj_id in obj_ids}
    print(f"synthetic time-lapse: {args.frames} frames of 256x256 uint16 (seed {args.seed}); "
          f"one click on each of {len(obj_ids)} cells in frame 0")
    start = time.perf_counter()
    labels = track_with_clicks(model, movie.image, clicks)
    elapsed = time.perf_counter() - start
    truth = lineage_masks(movie.labels, obj_ids, movie.parents)
    first = np.mean([region_similarity(labels[0] == o, truth[0, n]) for n, o in enumerate(obj_ids)])
    scores = [j_and_f(labels[1:] == o, truth[1:, n]) for n, o in enumerate(obj_ids)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(out / "stack.tif", movie.image)
    tifffile.imwrite(out / "labels.tif", labels.astype(np.uint16))
    tifffile.imwrite(out / "ground_truth.tif", movie.labels.astype(np.uint16))
    print(f"segmented and tracked in {elapsed:.1f} s ({args.frames / elapsed:.1f} frames/s for all objects)")
    print(f"frame 0, one click per cell: mean IoU {first:.3f}")
    print(f"frames 1-{args.frames - 1}: J {np.mean([s['J'] for s in scores]):.3f}, "
          f"F {np.mean([s['F'] for s in scores]):.3f}, J&F {np.mean([s['JF'] for s in scores]):.3f}")
    print(f"wrote {out / 'stack.tif'}, {out / 'labels.tif'} and {out / 'ground_truth.tif'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
