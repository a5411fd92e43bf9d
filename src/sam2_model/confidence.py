"""How sure a mean over a few objects is: percentile bootstrap intervals that resample whole objects.

A tracked cell's IoUs on successive frames are not independent draws (a cell lost on frame 5 stays lost), so
a figure such as the MSC zero-shot IoU (8 scored cells, 84 cell-frames) is only as certain as its cells are many.
:func:`group_bootstrap_interval` resamples the groups (cells) with replacement and recomputes the mean over
all their values, so it says how far the figure could move with other cells of the same kind; given the same
groups scored for a baseline, it gives the interval of the paired difference, which is what decides whether
one set of weights is better than another on the same cells.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = ["group_bootstrap_interval"]


def _sums_and_counts(groups: Sequence[Sequence[float]], name: str) -> Tuple[np.ndarray, np.ndarray]:
    if len(groups) < 2:
        raise ValueError(f"{name}: need at least 2 groups (e.g. cells) to resample, got {len(groups)}")
    counts = np.array([len(g) for g in groups], dtype=np.float64)
    if (counts == 0).any():
        raise ValueError(f"{name}: every group needs at least one value; groups {np.nonzero(counts == 0)[0].tolist()} "
                         "are empty")
    sums = np.array([float(np.sum(g, dtype=np.float64)) for g in groups])
    if not np.isfinite(sums).all():
        raise ValueError(f"{name}: values must be finite numbers")
    return sums, counts


def group_bootstrap_interval(groups: Sequence[Sequence[float]], baseline: Optional[Sequence[Sequence[float]]] = None,
                             level: float = 0.95, resamples: int = 4000, seed: int = 0) -> Tuple[float, float]:
    """(low, high) percentile bootstrap interval at ``level`` of the mean over all values of ``groups`` (a list
    of per-group value lists, e.g. each cell's IoU on every scored frame), resampling whole groups with
    replacement ``resamples`` times. With ``baseline`` (the same groups in the same order, scored for other
    weights, with the same number of values each), the interval of mean(groups) - mean(baseline), the same
    groups drawn for both. Deterministic for a given ``seed``."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if resamples < 100:
        raise ValueError(f"resamples must be at least 100, got {resamples}")
    sums, counts = _sums_and_counts(groups, "groups")
    if baseline is not None:
        base_sums, base_counts = _sums_and_counts(baseline, "baseline")
        if base_counts.shape != counts.shape or not np.array_equal(base_counts, counts):
            raise ValueError("baseline: must hold the same groups as groups, with as many values each "
                             f"(group sizes {counts.astype(int).tolist()} vs {base_counts.astype(int).tolist()})")
    draws = np.random.default_rng(seed).integers(0, len(sums), size=(resamples, len(sums)))
    total = counts[draws].sum(axis=1)
    means = sums[draws].sum(axis=1) / total
    if baseline is not None:
        means = means - base_sums[draws].sum(axis=1) / total
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)
