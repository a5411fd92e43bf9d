"""Headless demo: build a model, click on a cell of a synthetic fluorescence frame, segment it.

    python -m sam2_model.demo [--model NAME] [--checkpoint PATH|download] [--out DIR]

With no checkpoint the official file is taken from the cache if it is there; otherwise the model
runs with random weights (the mechanics work, the mask is meaningless) and says so.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import tifffile
from .build import build_model
from .checkpoints import OFFICIAL_CHECKPOINTS, find_cached
from .image_predictor import ImagePredictor

def synthetic_cell_frame(size: int = 256, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """A uint16 frame of a few Gaussian-blurred elliptical cells with noise, and its labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    labels = np.zeros((size, size), np.int32)
    image = np.full((size, size), 800.0, np.float32) + 200.0 * xx / size
    for index in range(1, 6):
        cy, cx = rng.uniform(0.2, 0.8, 2) * size
        ry, rx = rng.uniform(0.06, 0.12, 2) * size
        angle = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
        v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
        inside = u**2 + v**2 <= 1.0
        labels[inside & (labels == 0)] = index
        image[inside] += rng.uniform(4000, 12000)
    image = rng.poisson(image).astype(np.float32) + rng.normal(0, 30, image.shape)
    return np.clip(image, 0, 65535).astype(np.uint16), labels


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sam2.1_hiera_tiny")
    parser.add_argument("--checkpoint", default=None, help="a .pt file, or 'download'")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="out", help="folder for the frame and mask TIFFs")
    args = parser.parse_args(argv)

    checkpoint = args.checkpoint
    if checkpoint is None and args.model in OFFICIAL_CHECKPOINTS:
        checkpoint = find_cached(args.model)
    start = time.perf_counter()
    model = build_model(args.model, checkpoint=checkpoint, device=args.device, image_size=args.image_size)
    weights = f"weights from {checkpoint}" if checkpoint else "RANDOM weights (no checkpoint found: the mask is meaningless)"
    print(f"built {args.model} at {model.image_size}px on {model.device} with {weights} "
          f"in {time.perf_counter() - start:.1f} s")

    frame, truth = synthetic_cell_frame()
    ys, xs = np.nonzero(truth == 1)
    click = (float(xs.mean()), float(ys.mean()))
    predictor = ImagePredictor(model)
    start = time.perf_counter()
    predictor.set_image(frame)
    masks, scores, _ = predictor.predict(points=[click], labels=[1], multimask=True)
    elapsed = time.perf_counter() - start
    mask = masks[int(np.argmax(scores))]
    target = truth == 1
    iou = (mask & target).sum() / max((mask | target).sum(), 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(out / "frame.tif", frame)
    tifffile.imwrite(out / "mask.tif", mask.astype(np.uint8))
    print(f"clicked at x={click[0]:.0f}, y={click[1]:.0f}; mask of {int(mask.sum())} px in {elapsed:.2f} s; "
          f"IoU with the clicked cell {iou:.3f}; wrote {out / 'frame.tif'} and {out / 'mask.tif'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
