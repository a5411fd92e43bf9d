"""Learning curves as a dependency-free SVG: ``python -m sam2_model.train.curve RUN [RUN ...] -o curve.svg``.

Each run's history.csv is drawn one after the other (a single-frame run, then the video run that
started from it): total loss (left axis) and the trained mask's IoU with the truth (right axis,
0..1), both smoothed over a window of steps.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window or window < 2:
        return values
    kernel = np.ones(window) / window
    head = np.array([values[: i + 1].mean() for i in range(window - 1)])
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def read_history(run: Path) -> Tuple[np.ndarray, np.ndarray]:
    """(loss, mask IoU) per step of a run folder's history.csv."""
    with (run / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return (np.array([float(r["total"]) for r in rows]), np.array([float(r["mask_iou"]) for r in rows]))


def learning_curve_svg(runs: Sequence[Path], labels: Optional[Sequence[str]] = None, window: int = 25) -> str:
    losses, ious, bounds = [], [], []
    for run in runs:
        loss, iou = read_history(run)
        bounds.append(sum(len(x) for x in losses))
        losses.append(loss)
        ious.append(iou)
    loss = _smooth(np.concatenate(losses), window)
    iou = _smooth(np.concatenate(ious), window)
    width, height, left, right, top, bottom = 720, 360, 60, 60, 20, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    steps = len(loss)
    top_loss = float(np.ceil(loss.max() * 2) / 2) if steps else 1.0

    def x(i: float) -> float:
        return left + plot_w * i / max(steps - 1, 1)

    def polyline(values: np.ndarray, scale: float, colour: str) -> str:
        points = " ".join(f"{x(i):.1f},{top + plot_h * (1 - v / scale):.1f}" for i, v in enumerate(values))
        return f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>',
        polyline(loss, top_loss, "#d62728"),
        polyline(iou, 1.0, "#1f77b4"),
        f'<text x="{left - 8}" y="{top + 4}" text-anchor="end" fill="#d62728">{top_loss:g}</text>',
        f'<text x="{left - 8}" y="{top + plot_h}" text-anchor="end" fill="#d62728">0</text>',
        f'<text x="{left + plot_w + 8}" y="{top + 4}" fill="#1f77b4">1</text>',
        f'<text x="{left + plot_w + 8}" y="{top + plot_h}" fill="#1f77b4">0</text>',
        f'<text x="{left}" y="{height - 10}">training loss (red) and mask IoU on the training batch (blue); '
        f'{steps} steps, smoothed over {window}</text>',
    ]
    names = list(labels) if labels else [run.name for run in runs]
    for start, name in zip(bounds, names):
        parts.append(f'<line x1="{x(start):.1f}" y1="{top}" x2="{x(start):.1f}" y2="{top + plot_h}" stroke="#aaa" stroke-dasharray="4"/>')
        parts.append(f'<text x="{x(start) + 4:.1f}" y="{top + 14}" fill="#555">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam2_model.train.curve", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--labels", nargs="+", default=None, help="a name per run (default: the folder names)")
    args = parser.parse_args(argv)
    if args.labels is not None and len(args.labels) != len(args.runs):
        parser.error(f"--labels needs one name per run ({len(args.runs)}), got {len(args.labels)}")
    args.output.write_text(learning_curve_svg(args.runs, labels=args.labels, window=args.window))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
