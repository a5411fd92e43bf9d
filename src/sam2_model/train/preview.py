"""Look at a run's predictions as pictures: ``python -m sam2_model.train.preview RUN_FOLDER [--frames 8]``.

Writes RUN_FOLDER/preview.png: for a held-out synthetic sequence, each row is one frame; columns are
the image, the ground truth of the clicked objects, and the prediction (one click per object on
frame 0, then propagation). Also prints the one-click IoU and the propagation J&F on that sequence.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from ..build import Weights, build_model, load_checkpoint
from ..evaluation import one_click_iou, track_synthetic
from ..modeling.sam2 import SAM2Model

_PALETTE = np.array([[0, 0, 0]] + [[(37 * i) % 255, (91 * i) % 255, (151 * i) % 255] for i in range(1, 256)], np.uint8)


def _grey(frame: np.ndarray) -> np.ndarray:
    low, high = np.percentile(frame, (0.5, 99.8))
    unit = np.clip((frame.astype(np.float32) - low) / max(high - low, 1e-6), 0, 1)
    return np.repeat((unit * 255).astype(np.uint8)[..., None], 3, axis=2)


def _overlay(grey: np.ndarray, labels: np.ndarray) -> np.ndarray:
    colour = _PALETTE[labels % 256]
    return np.where(labels[..., None] > 0, (0.5 * grey + 0.5 * colour).astype(np.uint8), grey)


def preview(model: SAM2Model, path: Path, seed: int = 900_001, num_frames: int = 8) -> str:
    """Write the picture of one tracked held-out sequence to ``path`` (PNG); returns its J&F line."""
    from PIL import Image

    run = track_synthetic(model, seed=seed, num_frames=num_frames)
    truth = run.truth_labels()
    rows = []
    for t in range(num_frames):
        grey = _grey(run.movie.image[t])
        rows.append(np.concatenate([grey, _overlay(grey, truth[t]), _overlay(grey, run.predicted[t])], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    scores = [score["JF"] for score in run.scores()]
    return f"J&F over {num_frames - 1} tracked frames: {np.mean(scores):.3f} ({len(run.obj_ids)} objects)"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam2_model.train.preview", description=__doc__)
    parser.add_argument("run", type=Path, help="run folder (reads last.pt) or a weights file")
    parser.add_argument("--model", default="demo")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--seed", type=int, default=900_001)
    args = parser.parse_args(argv)
    model = build_model(args.model, checkpoint=Weights.RANDOM, device="cpu")
    source = args.run / "last.pt" if args.run.is_dir() else args.run
    payload = torch.load(source, map_location="cpu", weights_only=False)
    load_checkpoint(model, payload["model"])
    out = (args.run if args.run.is_dir() else args.run.parent) / "preview.png"
    print(f"step {payload.get('step', '?')}: one-click IoU {one_click_iou(model, seeds=(args.seed,)).value:.3f}")
    print(preview(model, out, args.seed, args.frames), "->", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
