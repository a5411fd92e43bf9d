"""The held-out measure on the synthetic microscopy mix (sam2_model.mix_evaluation), with the shipped weights."""

from __future__ import annotations

import json

import pytest
import torch

from sam2_model import build_model
from sam2_model.mix_evaluation import KindScore, MixReport, kind_name, mix_quality, size_bin
from sam2_model.synth import MIX

NUCLEI = "fluorescence nuclei (nuclear)"
PHASE_RODS = "phase rods"


@pytest.fixture(scope="module")
def demo_model():
    return build_model("demo", device="cpu")


def test_every_kind_of_the_mix_has_its_own_name():
    names = [kind_name(m, c, s) for _, m, c, s in MIX]
    assert len(set(names)) == len(MIX)
    assert NUCLEI in names and PHASE_RODS in names and "natural" in names


def test_size_bins_cover_every_diameter_once():
    assert [size_bin(d) for d in (3.0, 11.99, 12.0, 30.0, 48.0, 300.0)] == ["<12", "<12", "12-24", "24-48", ">=48",
                                                                           ">=48"]


def test_the_measure_is_repeatable_and_weighs_kinds_by_their_share(demo_model):
    report = mix_quality(demo_model, seeds_per_kind=1, kinds=[NUCLEI, PHASE_RODS])
    again = mix_quality(demo_model, seeds_per_kind=1, kinds=[NUCLEI, PHASE_RODS])
    assert isinstance(report, MixReport) and report.image_size == 256 and report.frame_shape == (256, 256)
    assert report.seeds_per_kind == 1
    assert [k.kind for k in report.kinds] == [NUCLEI, PHASE_RODS]
    assert [(k.one_click_iou, k.j_and_f) for k in report.kinds] == [(k.one_click_iou, k.j_and_f) for k in again.kinds]
    for kind in report.kinds:
        assert isinstance(kind, KindScore) and 1 <= kind.num_objects <= 8
        assert 0.0 <= kind.one_click_iou <= 1.0 and 0.0 <= kind.j_and_f <= 1.0
        # The baseline copies frame 0's true mask onto frames 1..T-1: cells move, so it loses overlap, but they
        # move less than their size in 8 frames, so it keeps some.
        assert 0.2 < kind.copy_truth_j_and_f < 0.99
        # The one-click mask is not the true mask: kept on every frame it scores below the true mask kept.
        assert 0.0 <= kind.copy_click_j_and_f < kind.copy_truth_j_and_f
    total = sum(k.weight for k in report.kinds)
    assert report.one_click_iou == pytest.approx(sum(k.weight * k.one_click_iou for k in report.kinds) / total)
    assert report.j_and_f == pytest.approx(sum(k.weight * k.j_and_f for k in report.kinds) / total)
    assert report.copy_truth_j_and_f == pytest.approx(
        sum(k.weight * k.copy_truth_j_and_f for k in report.kinds) / total)
    assert report.copy_click_j_and_f == pytest.approx(
        sum(k.weight * k.copy_click_j_and_f for k in report.kinds) / total)
    assert sum(n for _, _, n in report.by_size.values()) == sum(k.num_objects for k in report.kinds)
    assert "mix (weighted)" in report.table() and PHASE_RODS in report.table()
    summary = json.loads(json.dumps(report.summary()))  # what weights' metadata and eval_embedded.py record
    assert list(summary["per_kind"]) == [NUCLEI, PHASE_RODS]
    assert summary["per_kind"][NUCLEI]["copy_truth_j_and_f"] == round(report.kinds[0].copy_truth_j_and_f, 4)
    assert summary["one_click_iou"] == round(report.one_click_iou, 4) and summary["frame_shape"] == [256, 256]


def test_it_tells_a_trained_model_from_a_broken_one(demo_model):
    """The shipped weights segment the mix's fluorescence nuclei; with the mask decoder's output tokens zeroed
    the same model finds nothing, and the measure says so."""
    trained = mix_quality(demo_model, seeds_per_kind=2, kinds=[NUCLEI])
    broken = build_model("demo", device="cpu")
    with torch.no_grad():
        broken.sam_mask_decoder.output_hypernetworks_mlps.apply(
            lambda m: m.weight.zero_() if isinstance(m, torch.nn.Linear) else None)
    damaged = mix_quality(broken, seeds_per_kind=2, kinds=[NUCLEI])
    print(f"nuclei one-click {trained.one_click_iou:.3f} J&F {trained.j_and_f:.3f}; "
          f"broken {damaged.one_click_iou:.3f} {damaged.j_and_f:.3f}")
    assert trained.one_click_iou >= 0.5 and trained.j_and_f >= 0.4
    assert damaged.one_click_iou < 0.2


@pytest.mark.parametrize("kwargs, message", [
    ({"kinds": ["phase nuclei", "confocal cells"]}, "unknown kinds"),
    ({"seeds_per_kind": 0}, "seeds_per_kind"),
    ({"num_frames": 1}, "num_frames"),
    ({"max_objects": 2.5}, "max_objects"),
])
def test_bad_arguments_are_named(demo_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        mix_quality(demo_model, **kwargs)
