"""Held-out tracking of cells that leap far between frames, beside the same clips without the leaps.

Real time-lapses are often sampled sparsely: on CTC Fluo-C2DL-MSC 4 % of the cell steps cover more than a
cell diameter, and the cells that make them are the ones every embedded weights lost. :func:`leap_quality`
makes sparse fluorescence whole-cell clips (``sam2_model.synth``) twice from the same seeds, once without
leaps and once with a leap chance per cell and frame, clicks the frame-0 cells once each and tracks them
through the real inference path (:func:`sam2_model.evaluation.track_clicked_cells`). Both clips share frame 0
and the random walk, so the difference of the two J&F is what the leaps cost.

Seeds: clip ``n`` uses ``LEAP_HELD_OUT_SEED + n``; training clips take 63-bit seeds from the run's own
generator, so they do not meet these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import numpy as np

from .evaluation import clickable_objects, track_clicked_cells
from .modeling.sam2 import SAM2Model
from .synth import make_microscopy_timelapse

LEAP_HELD_OUT_SEED = 940_000


@dataclass
class LeapReport:
    """Mean tracked J&F (frames 1..T-1) of the clicked cells without and with leaps; per-cell values."""

    calm_j_and_f: float
    leaping_j_and_f: float
    calm_per_cell: List[float]
    leaping_per_cell: List[float]
    jump_rate: float
    num_clips: int

    def summary(self) -> dict:
        """JSON-ready figures (4 decimals)."""
        return {"calm_j_and_f": round(self.calm_j_and_f, 4), "leaping_j_and_f": round(self.leaping_j_and_f, 4),
                "cells": len(self.calm_per_cell), "clips": self.num_clips, "jump_rate": self.jump_rate,
                "seeds": f"{LEAP_HELD_OUT_SEED} + clip (0..{self.num_clips - 1})"}


def _tracked(model: SAM2Model, seed: int, jump_rate: float, frame_shape: Tuple[int, int], num_frames: int,
             max_objects: int) -> List[float]:
    movie = make_microscopy_timelapse(seed, shape=frame_shape, num_frames=num_frames, modality="fluorescence",
                                      cell_type="cells", stain="cytoplasm", density=0.06, cell_size=30.0,
                                      speed=0.1, divisions=False, jump_rate=jump_rate,
                                      rim=1.0, processes=0.0)  # as before rims and tails existed: a measure of leaps
    obj_ids = clickable_objects(movie.labels[0], 16)[:max_objects]
    if not obj_ids:
        return []
    return [float(score["JF"]) for score in track_clicked_cells(model, movie, obj_ids).scores()]


def leap_quality(model: SAM2Model, num_clips: int = 6, jump_rate: float = 0.2,
                 frame_shape: Tuple[int, int] = (256, 256), num_frames: int = 10, max_objects: int = 6) -> LeapReport:
    """Tracked J&F of up to ``max_objects`` clicked cells per clip on ``num_clips`` held-out clips of
    ``num_frames`` frames of ``frame_shape`` (H, W), without leaps and with ``jump_rate`` (0 < rate <= 1, the
    chance per cell and frame of a leap of 1 to 2.5 diameters). Cells ~30 px across, 6 % of the field."""
    if not isinstance(num_clips, int) or num_clips < 1:
        raise ValueError(f"num_clips must be an integer >= 1, got {num_clips!r}")
    if not 0.0 < jump_rate <= 1.0:
        raise ValueError(f"jump_rate must be in (0, 1] (a chance per cell and frame), got {jump_rate}")
    if not isinstance(num_frames, int) or num_frames < 2:
        raise ValueError(f"num_frames must be an integer >= 2 (frame 0 is clicked, the rest tracked), got {num_frames!r}")
    calm: List[float] = []
    leaping: List[float] = []
    for n in range(num_clips):
        calm += _tracked(model, LEAP_HELD_OUT_SEED + n, 0.0, frame_shape, num_frames, max_objects)
        leaping += _tracked(model, LEAP_HELD_OUT_SEED + n, jump_rate, frame_shape, num_frames, max_objects)
    if not calm:
        raise ValueError("no clickable cells in the held-out clips; use a larger frame_shape")
    return LeapReport(float(np.mean(calm)), float(np.mean(leaping)), calm, leaping, float(jump_rate), num_clips)
