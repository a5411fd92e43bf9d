"""Checks of the synthetic nuclei time-lapse generator (sam2_model.synthetic)."""

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from sam2_model.synthetic import SyntheticTimelapse, make_timelapse


@pytest.fixture(scope="module")
def movie16():
    return make_timelapse(num_frames=30, shape=(256, 256), seed=0)


@pytest.fixture(scope="module")
def movie8():
    return make_timelapse(num_frames=12, shape=(128, 160), num_cells=8, seed=1, dtype="uint8")


def test_reproducible_and_seed_dependent():
    a = make_timelapse(num_frames=6, shape=(96, 96), num_cells=5, seed=3)
    b = make_timelapse(num_frames=6, shape=(96, 96), num_cells=5, seed=3)
    c = make_timelapse(num_frames=6, shape=(96, 96), num_cells=5, seed=4)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.parents == b.parents
    assert not np.array_equal(a.image, c.image)


def test_dtypes_and_shapes(movie16, movie8):
    assert isinstance(movie16, SyntheticTimelapse)
    with pytest.raises(dataclasses.FrozenInstanceError):
        movie16.image = None
    assert movie16.image.shape == movie16.labels.shape == (30, 256, 256)
    assert movie16.image.dtype == np.uint16
    assert movie16.labels.dtype == np.int32
    assert movie8.image.shape == movie8.labels.shape == (12, 128, 160)
    assert movie8.image.dtype == np.uint8
    assert movie8.labels.dtype == np.int32
    assert movie8.image.max() > 150  # uses the uint8 range
    for m in (movie16, movie8):
        assert m.labels.min() == 0
        assert all(len(np.unique(m.labels[t])) > 1 for t in range(len(m.labels)))
    with pytest.raises(ValueError):
        make_timelapse(num_frames=2, dtype="float32")


def test_ids_consistent_through_time(movie16):
    lab = movie16.labels
    h, w = lab.shape[1:]
    checked = 0
    for t in range(len(lab) - 1):
        ids = (set(np.unique(lab[t])) & set(np.unique(lab[t + 1]))) - {0}
        for i in ids:
            m0, m1 = lab[t] == i, lab[t + 1] == i
            a0, a1 = m0.sum(), m1.sum()
            touches = any(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any() for m in (m0, m1))
            if touches or not 0.75 < a1 / a0 < 1.33:
                continue  # partially outside the field of view or largely occluded
            step = np.hypot(*np.subtract(ndimage.center_of_mass(m1), ndimage.center_of_mass(m0)))
            assert step < 6.0, (t, i, step)
            checked += 1
    assert checked > 100


def test_no_division_no_enter_leave_keeps_the_same_cells():
    m = make_timelapse(num_frames=15, shape=(128, 128), num_cells=6, seed=2, divisions=False, enter_leave=False)
    assert m.parents == {}
    for t in range(15):
        assert set(np.unique(m.labels[t])) - {0} == set(range(1, 7))


def test_divisions_recorded():
    m = make_timelapse(num_frames=45, shape=(192, 192), num_cells=12, seed=0)
    assert len(m.parents) >= 2
    lab = m.labels
    present = [set(np.unique(lab[t])) - {0} for t in range(len(lab))]
    children: dict[int, list[int]] = {}
    for child, parent in m.parents.items():
        children.setdefault(parent, []).append(child)
        assert child > parent
        first = next(t for t in range(len(lab)) if child in present[t])
        assert first > 0
        assert parent in present[first - 1]  # mother visible just before the split
        assert all(parent not in present[t] for t in range(first, len(lab)))  # and never after
        # daughters appear next to where the mother was
        cm = np.array(ndimage.center_of_mass(lab[first - 1] == parent))
        cd = np.array(ndimage.center_of_mass(lab[first] == child))
        assert np.hypot(*(cd - cm)) < 20
    assert all(len(c) == 2 for c in children.values())


def test_cells_brighter_than_background(movie16, movie8):
    for m in (movie16, movie8):
        img = m.image.astype(np.float64)
        for t in range(len(img)):
            fg, bg = img[t][m.labels[t] > 0], img[t][m.labels[t] == 0]
            assert fg.mean() > 2.5 * bg.mean()
    # every reasonably large cell (including dim ones) stands out from the background
    img, lab = movie16.image[5].astype(np.float64), movie16.labels[5]
    bg_hi = np.percentile(img[ndimage.binary_dilation(lab > 0, iterations=4) == 0], 95)
    for i in set(np.unique(lab)) - {0}:
        mask = ndimage.binary_erosion(lab == i, iterations=2)
        if mask.sum() >= 20:
            assert np.median(img[mask]) > 1.3 * bg_hi, i


def test_uint16_realistic_range_no_saturation(movie16):
    img, lab = movie16.image, movie16.labels
    assert img.max() < 50000  # never saturates the 16-bit range
    assert img.max() > 10000  # bright nuclei reach >10k counts
    bg = img[lab == 0]
    lo, med = np.percentile(bg, [1, 50])
    assert 300 < lo and 500 < med < 2200
    assert 0 < img.min()
