"""Held-out tracking of leaping cells (sam2_model.leap_evaluation) through the real embedded model."""

import pytest

from sam2_model import build_model
from sam2_model.leap_evaluation import LEAP_HELD_OUT_SEED, leap_quality


@pytest.fixture(scope="module")
def demo_model():
    return build_model("demo", device="cpu")


def test_leap_quality_scores_the_same_cells_with_and_without_leaps(demo_model):
    report = leap_quality(demo_model, num_clips=2, num_frames=4, max_objects=3)
    assert len(report.calm_per_cell) == len(report.leaping_per_cell) >= 3  # the same clicked cells both ways
    assert all(0.0 <= v <= 1.0 for v in report.calm_per_cell + report.leaping_per_cell)
    assert report.calm_j_and_f == pytest.approx(sum(report.calm_per_cell) / len(report.calm_per_cell))
    summary = report.summary()
    assert summary["clips"] == 2 and summary["jump_rate"] == 0.2 and str(LEAP_HELD_OUT_SEED) in summary["seeds"]
    again = leap_quality(demo_model, num_clips=2, num_frames=4, max_objects=3)
    assert again.leaping_per_cell == report.leaping_per_cell  # seeded: the same clips and clicks every time
    certain = leap_quality(demo_model, num_clips=2, num_frames=4, max_objects=3, jump_rate=1.0)
    assert certain.calm_per_cell == report.calm_per_cell  # the calm clips do not depend on the leap chance
    assert certain.leaping_per_cell != certain.calm_per_cell  # cells leaping on every frame are other clips


@pytest.mark.parametrize("kwargs,message", [({"jump_rate": 0.0}, "jump_rate must be in"),
                                            ({"num_clips": 0}, "num_clips must be"),
                                            ({"num_frames": 1}, "num_frames must be")])
def test_leap_quality_rejects_bad_settings(demo_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        leap_quality(demo_model, **kwargs)
