"""Hand-computed checks of the DAVIS 2017 J / F metrics in sam2_model.metrics."""

import math

import numpy as np
import pytest

from sam2_model.metrics import (
    boundary_f_measure,
    boundary_radius,
    evaluate_labels,
    j_and_f,
    region_similarity,
    seg2bmap,
)


def square(shape, y0, x0, size):
    m = np.zeros(shape, dtype=bool)
    m[y0:y0 + size, x0:x0 + size] = True
    return m


def test_identical_masks_score_one():
    m = square((20, 20), 3, 4, 6)
    assert region_similarity(m, m) == 1.0
    assert boundary_f_measure(m, m) == 1.0


def test_disjoint_masks():
    a = square((20, 20), 0, 0, 4)
    b = square((20, 20), 12, 12, 4)
    assert region_similarity(a, b) == 0.0
    assert boundary_f_measure(a, b, radius=0) == 0.0


def test_overlapping_squares_iou():
    # A = [0:4, 0:4] (16 px), B = [2:6, 2:6] (16 px), A & B = [2:4, 2:4] (4 px)
    a = square((8, 8), 0, 0, 4)
    b = square((8, 8), 2, 2, 4)
    assert region_similarity(a, b) == pytest.approx(4 / 28)
    # one-pixel shift of a 4x4 square: 12 shared pixels, union 20
    c = square((8, 8), 0, 1, 4)
    assert region_similarity(a, c) == pytest.approx(12 / 20)


def test_seg2bmap_square_is_ring():
    # DAVIS seg2bmap marks pixels differing from the right / bottom / bottom-right
    # neighbour: for the square [2:6, 2:6] that is the 16-pixel ring of box [1:6, 1:6].
    m = square((10, 10), 2, 2, 4)
    b = seg2bmap(m)
    ring = np.zeros_like(m)
    ring[1:6, 1:6] = True
    ring[2:5, 2:5] = False
    np.testing.assert_array_equal(b, ring)
    assert b.sum() == 16


def test_seg2bmap_image_border():
    m = np.ones((4, 5), dtype=bool)
    assert not seg2bmap(m).any()  # full mask: no neighbour differs, corner excluded
    m = np.zeros((4, 5), dtype=bool)
    m[:, 3:] = True  # right stripe touching the border
    b = seg2bmap(m)
    assert b[:, 2].all() and not b[:, 3:].any() and not b[:, :2].any()


def test_boundary_f_shifted_square_radius():
    gt = square((10, 10), 2, 2, 4)
    pred = square((10, 10), 2, 3, 4)  # shifted right by one pixel
    # rings of boxes [1:6,1:6] and [1:6,2:7] share the 4 + 4 pixels of the top and
    # bottom rows at columns 2..5: P = R = 8 / 16, F = 0.5
    assert boundary_f_measure(pred, gt, radius=0) == pytest.approx(0.5)
    assert boundary_f_measure(pred, gt, radius=1) == pytest.approx(1.0)
    assert boundary_f_measure(pred, gt, radius=3) == pytest.approx(1.0)
    # default radius for 10x10 is ceil(0.008 * 14.14) = 1
    assert boundary_f_measure(pred, gt) == pytest.approx(1.0)
    # bound_th >= 1 is a radius in pixels (DAVIS convention)
    assert boundary_f_measure(pred, gt, bound_th=1) == pytest.approx(1.0)


def test_boundary_f_asymmetric_precision_recall():
    gt = square((12, 12), 2, 2, 6)  # boundary ring of box [1:8,1:8]: 24 px
    pred = square((12, 12), 3, 3, 4)  # ring of box [2:7,2:7]: 16 px, none on gt ring
    assert seg2bmap(gt).sum() == 24 and seg2bmap(pred).sum() == 16
    assert boundary_f_measure(pred, gt, radius=0) == 0.0
    # radius 1 (cross): every pred ring pixel touches the gt ring (P = 1); gt ring
    # pixels matched: all but the 4 corners (diagonal only) -> R = 20 / 24
    p, r = 1.0, 20 / 24
    assert boundary_f_measure(pred, gt, radius=1) == pytest.approx(2 * p * r / (p + r))


def test_empty_conventions():
    empty = np.zeros((16, 16), dtype=bool)
    full = square((16, 16), 4, 4, 5)
    assert region_similarity(empty, empty) == 1.0
    assert boundary_f_measure(empty, empty) == 1.0
    assert region_similarity(empty, full) == 0.0
    assert region_similarity(full, empty) == 0.0
    assert boundary_f_measure(empty, full) == 0.0
    assert boundary_f_measure(full, empty) == 0.0


def test_radius_formula():
    assert boundary_radius((480, 854)) == math.ceil(0.008 * math.hypot(480, 854)) == 8
    assert boundary_radius((256, 256)) == 3
    assert boundary_radius((10, 10)) == 1
    assert boundary_radius((1080, 1920), bound_th=0.004) == math.ceil(0.004 * math.hypot(1080, 1920))
    assert boundary_radius((10, 10), bound_th=2) == 2


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        region_similarity(np.zeros((4, 4)), np.zeros((4, 5)))
    with pytest.raises(ValueError):
        boundary_f_measure(np.zeros((4, 4)), np.zeros((5, 4)))


def test_j_and_f_means_over_frames():
    a = square((20, 20), 2, 2, 5)
    b = square((20, 20), 12, 12, 5)
    pred = np.stack([a, a])
    gt = np.stack([a, b])
    res = j_and_f(pred, gt)
    assert res["J"] == pytest.approx(0.5)
    assert res["F"] == pytest.approx(0.5)
    assert res["JF"] == pytest.approx(0.5)


def _two_object_labels():
    shape = (2, 10, 20)
    gt = np.zeros(shape, dtype=np.int32)
    gt[:, 2:6, 2:6] = 1
    gt[:, 2:6, 12:16] = 2
    pred = np.zeros(shape, dtype=np.int32)
    pred[:, 2:6, 2:6] = 1  # perfect
    pred[:, 2:6, 13:17] = 2  # shifted by one pixel: J = 12 / 20, F = 1 (radius 1)
    return pred, gt


def test_evaluate_labels_two_objects():
    pred, gt = _two_object_labels()
    assert boundary_radius(gt.shape[1:]) == 1
    res = evaluate_labels(pred, gt)
    assert res["num_objects"] == 2
    assert res["objects"][1] == pytest.approx({"J": 1.0, "F": 1.0, "JF": 1.0})
    assert res["objects"][2]["J"] == pytest.approx(0.6)
    assert res["objects"][2]["F"] == pytest.approx(1.0)
    assert res["objects"][2]["JF"] == pytest.approx(0.8)
    assert res["J"] == pytest.approx(0.8)
    assert res["F"] == pytest.approx(1.0)
    assert res["JF"] == pytest.approx(0.9)


def test_evaluate_labels_object_map_and_missing():
    pred, gt = _two_object_labels()
    renamed = np.zeros_like(pred)
    renamed[pred == 1] = 7
    renamed[pred == 2] = 5
    res = evaluate_labels(renamed, gt, object_map={7: 1, 5: 2})
    assert res["objects"][1]["J"] == pytest.approx(1.0)
    assert res["objects"][2]["J"] == pytest.approx(0.6)
    # without the map the renamed ids match nothing: both objects missed
    res = evaluate_labels(renamed, gt)
    assert res["J"] == 0.0 and res["F"] == 0.0
    # a map that only covers object 1: object 2 is missed, extra pred ids ignored
    res = evaluate_labels(renamed, gt, object_map={7: 1})
    assert res["objects"][1]["JF"] == pytest.approx(1.0)
    assert res["objects"][2]["JF"] == 0.0
    assert res["JF"] == pytest.approx(0.5)


def test_evaluate_labels_object_absent_in_some_frames():
    gt = np.zeros((3, 8, 8), dtype=np.int32)
    gt[0, 1:4, 1:4] = 1  # object only present in frame 0
    pred = np.zeros_like(gt)
    pred[0, 1:4, 1:4] = 1
    res = evaluate_labels(pred, gt)
    assert res["objects"][1]["J"] == 1.0 and res["objects"][1]["F"] == 1.0  # empty/empty frames -> 1
    pred[2, 5:7, 5:7] = 1  # false positive in a frame where gt is empty
    res = evaluate_labels(pred, gt)
    assert res["objects"][1]["J"] == pytest.approx(2 / 3)
    # exclude_first_last scores only frame 1 (both empty -> 1) but keeps object 1
    res = evaluate_labels(pred, gt, exclude_first_last=True)
    assert res["num_objects"] == 1 and res["JF"] == 1.0
