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
import torch

from .build import build_model
from .checkpoints import OFFICIAL_CHECKPOINTS, find_cached

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


def to_model_input(frame: np.ndarray, image_size: int) -> torch.Tensor:
    """(H, W) any dtype -> (1, 3, S, S) ImageNet-normalised, contrast from the 0.5-99.8 percentiles."""
    low, high = (float(v) for v in np.percentile(frame, [0.5, 99.8]))
    scaled = np.clip((frame.astype(np.float32) - low) / max(high - low, 1e-6), 0, 1).astype(np.float32)
    tensor = torch.from_numpy(scaled)[None, None].repeat(1, 3, 1, 1)
    tensor = torch.nn.functional.interpolate(tensor, size=(image_size, image_size), mode="bilinear", antialias=True)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (tensor - mean) / std


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
    scale = model.image_size / frame.shape[0]
    with torch.inference_mode():
        start = time.perf_counter()
        features = model.encode_image(to_model_input(frame, model.image_size).to(model.device))
        embed = features.image_embed + model.no_mem_embed.view(1, -1, 1, 1)
        coords = torch.tensor([[[click[0] * scale, click[1] * scale]]], device=model.device)
        labels = torch.ones(1, 1, dtype=torch.int32, device=model.device)
        prediction = model.predict_masks(embed, features.high_res, coords, labels, multimask=True)
        logits = torch.nn.functional.interpolate(prediction.low_res_logits, size=frame.shape, mode="bilinear")
        elapsed = time.perf_counter() - start
    mask = (logits[0, 0] > 0).cpu().numpy()
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
