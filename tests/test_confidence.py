"""Checks of sam2_model.confidence: bootstrap intervals over whole groups (cells), alone and paired."""

import numpy as np
import pytest

from sam2_model.confidence import group_bootstrap_interval


def test_interval_holds_the_mean_and_narrows_with_more_groups():
    rng = np.random.default_rng(1)
    few = [list(rng.normal(0.5, 0.2, 12)) for _ in range(6)]
    many = [list(rng.normal(0.5, 0.2, 12)) for _ in range(200)]
    for groups in (few, many):
        low, high = group_bootstrap_interval(groups)
        mean = np.mean(np.concatenate(groups))
        assert low < mean < high
    assert np.ptp(group_bootstrap_interval(many)) < 0.5 * np.ptp(group_bootstrap_interval(few))


def test_whole_groups_are_resampled_not_single_values():
    """Cells lost for good (all frames 0) and cells kept (all frames 1): the frames are not independent, and the
    interval must be as wide as 8 cells allow, not as narrow as 80 independent frames would make it."""
    groups = [[1.0] * 10] * 4 + [[0.0] * 10] * 4
    low, high = group_bootstrap_interval(groups)
    assert low < 0.2 + 1e-9 and high > 0.8 - 1e-9  # 8 coin flips: 95 % of means within about 0.15-0.85
    assert group_bootstrap_interval(groups) == (low, high)  # deterministic


def test_paired_difference_sees_a_consistent_small_gain_that_unpaired_intervals_hide():
    rng = np.random.default_rng(2)
    base = [list(np.clip(rng.normal(level, 0.05, 10), 0, 1)) for level in rng.uniform(0.0, 0.9, 9)]
    better = [list(np.asarray(g) + 0.03) for g in base]
    low_b, high_b = group_bootstrap_interval(base)
    low_n, high_n = group_bootstrap_interval(better)
    assert low_n < high_b  # alone, the two intervals overlap
    low, high = group_bootstrap_interval(better, baseline=base)
    assert 0.029 < low <= high < 0.031  # paired, the gain is certain
    assert group_bootstrap_interval(base, baseline=base) == (0.0, 0.0)


@pytest.mark.parametrize("kwargs,message", [
    (dict(groups=[[0.5]]), "at least 2 groups"),
    (dict(groups=[[0.5], []]), "empty"),
    (dict(groups=[[0.5], [float("nan")]]), "finite"),
    (dict(groups=[[0.5], [0.4]], level=1.0), "level"),
    (dict(groups=[[0.5], [0.4]], resamples=10), "resamples"),
    (dict(groups=[[0.5], [0.4]], baseline=[[0.5], [0.4, 0.3]]), "same groups"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        group_bootstrap_interval(**kwargs)


def test_eval_embedded_pairs_each_candidate_with_the_baseline_cell_by_cell(monkeypatch):
    """bench/eval_embedded.py's paired MSC difference: a candidate better by 0.1 on every cell gets +0.1 with an
    interval of exactly +0.1 (every resample shifts by the same); one scored on other cells gets none."""
    import importlib
    import pathlib

    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).resolve().parents[1] / "bench"))
    eval_embedded = importlib.import_module("eval_embedded")
    baseline = {"label": "baseline", "msc_iou": 0.4, "msc_per_cell": {"1": [0.5, 0.5], "2": [0.3, 0.2, 0.4]}}
    better = {"weights": "better.pt", "msc_iou": 0.5, "msc_per_cell": {"1": [0.6, 0.6], "2": [0.4, 0.3, 0.5]}}
    other_cells = {"weights": "other.pt", "msc_iou": 0.5, "msc_per_cell": {"1": [0.6, 0.6], "3": [0.4]}}
    results = [baseline, better, other_cells]
    eval_embedded.add_msc_differences(results)
    assert better["msc_difference"]["value"] == pytest.approx(0.1)
    assert better["msc_difference"]["interval"] == pytest.approx([0.1, 0.1])
    assert "msc_difference" not in other_cells and "msc_difference" not in baseline
    assert "+0.100 (+0.100, +0.100)" in eval_embedded.table(results)
