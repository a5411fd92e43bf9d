"""Small training data shared by the fine-tuning tests (a helper module, not a test module: importing it collects
no test; the ``stack_files`` fixture of conftest.py writes :func:`small_movie` with :func:`write_stack_files`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List

import tifffile

from sam2_model.synthetic import make_timelapse


def small_movie() -> Any:
    """A small synthetic time-lapse: image (3, 64, 64) uint16 and labels (3, 64, 64) of 3 cells (seed 5)."""
    return make_timelapse(num_frames=3, shape=(64, 64), num_cells=3, seed=5, radius_fraction=0.12)


def write_stack_files(folder: Path, movie: Any = None) -> List[str]:
    """Write ``movie`` (default :func:`small_movie`) as ``folder``/stack.tif and ``folder``/labels.tif; returns
    sam2-train's ["--stack", stack.tif, "--labels", labels.tif]."""
    movie = small_movie() if movie is None else movie
    tifffile.imwrite(folder / "stack.tif", movie.image, photometric="minisblack")
    tifffile.imwrite(folder / "labels.tif", movie.labels, photometric="minisblack")
    return ["--stack", str(folder / "stack.tif"), "--labels", str(folder / "labels.tif")]
