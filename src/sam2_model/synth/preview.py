"""Contact sheets of the generator, one PNG per modality: ``python -m sam2_model.synth.preview docs/``.

Each sheet is one row of tiles (crops at the native pixel scale of 256 x 256 frames) over the cell
types of that modality; the second tile of every pair shows the ground-truth outlines in white.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from .microscopy import make_microscopy_timelapse

SHEETS: Tuple[Tuple[str, Sequence[Tuple[str, Optional[str]]]], ...] = (
    ("fluorescence", (("nuclei", "nuclear"), ("cells", "cytoplasm"), ("cells", "membrane"), ("rods", "cytoplasm"))),
    ("phase", (("cells", None), ("rods", None), ("nuclei", None))),
    ("brightfield", (("cells", None), ("rods", None), ("nuclei", None))),
    ("dic", (("cells", None), ("nuclei", None), ("rods", None))),
    ("natural", (("", None), ("", None), ("", None))),
)


def _grey(frame: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(frame, [0.5, 99.5])
    return np.clip((frame.astype(np.float32) - lo) / max(float(hi - lo), 1e-6) * 255, 0, 255).astype(np.uint8)


def _outlined(grey: np.ndarray, labels: np.ndarray) -> np.ndarray:
    edges = labels != ndimage.grey_erosion(labels, size=3)
    out = (grey * 0.6).astype(np.uint8)
    out[edges & (labels > 0)] = 255
    return out


def sheet(modality: str, kinds: Sequence[Tuple[str, Optional[str]]], seed: int = 20, tile: int = 120) -> np.ndarray:
    """(tile, tile * 2 * len(kinds)) uint8: for each kind, the last of 4 frames and its outlines."""
    tiles: List[np.ndarray] = []
    for n, (cell_type, stain) in enumerate(kinds):
        movie = make_microscopy_timelapse(seed + n, (256, 256), 4, modality=modality,
                                          cell_type=cell_type or "nuclei", stain=stain)
        y0 = x0 = (256 - tile) // 2
        grey = _grey(movie.image[-1])[y0:y0 + tile, x0:x0 + tile]
        tiles += [grey, _outlined(grey, movie.labels[-1][y0:y0 + tile, x0:x0 + tile])]
    gap = np.full((tile, 2), 128, np.uint8)
    return np.concatenate([part for t in tiles for part in (t, gap)][:-1], axis=1)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam2_model.synth.preview", description=__doc__)
    parser.add_argument("out", type=Path, help="folder for synthetic_<modality>.png")
    args = parser.parse_args(argv)
    from PIL import Image

    args.out.mkdir(parents=True, exist_ok=True)
    for modality, kinds in SHEETS:
        path = args.out / f"synthetic_{modality}.png"
        grey = (sheet(modality, kinds) // 4) * 4  # 64 grey levels: small files for the docs
        Image.fromarray(grey).save(path, optimize=True)
        print(f"{path}: {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
