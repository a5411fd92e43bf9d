"""napari_sam2.measure on labels the other routes accept or refuse (explorer X9): ids up to 2**32 - 1 measured in a
blink (regionprops' find_objects made a list as long as the largest id: 2**31 was a bare MemoryError), and labels
or images that are not instance labels / grey values refused with words, as sam2-train refuses them (negative ids
were dropped, fractional ids cut, a complex image's imaginary part ignored, all silently)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_sam2 import measure


def small_labels() -> np.ndarray:
    labels = np.zeros((2, 32, 32), np.uint32)
    labels[0, 2:6, 3:9] = 1
    labels[1, 10:20, 10:14] = 2
    labels[1, 20:25, 20:25] = 3
    return labels


@pytest.mark.parametrize("top", [10**8, 2**31, 2**32 - 1])
def test_huge_ids_are_measured_as_small_ones(top):
    labels = small_labels()
    image = np.arange(labels.size, dtype=np.float32).reshape(labels.shape)
    expected = measure(labels, image)
    big = labels.copy()
    big[big == 3] = top
    started = time.perf_counter()
    rows = measure(big, image)
    assert time.perf_counter() - started < 5  # was 27 s at 10**8, a MemoryError at 2**31
    assert [r["obj_id"] for r in rows] == [1, 2, top]
    for row, want in zip(rows, expected):
        np.testing.assert_equal({k: v for k, v in row.items() if k != "obj_id"},  # (NaN scores equal)
                                {k: v for k, v in want.items() if k != "obj_id"})


def test_labels_without_background_keep_their_ids():
    labels = np.full((1, 8, 8), 70_000, np.uint32)
    labels[0, :4] = 70_001
    assert [(r["obj_id"], r["area"]) for r in measure(labels)] == [(70_000, 32), (70_001, 32)]


@pytest.mark.parametrize("labels, words", [
    (-small_labels().astype(np.int32), "instance ids >= 0"),
    (small_labels().astype(np.float32) + 0.5, "fractional"),
    (small_labels().astype(np.complex64), "whole-number instance ids"),
])
def test_what_is_not_instance_labels_is_refused_with_words(labels, words):
    with pytest.raises(ValueError, match=words):
        measure(labels)


def test_whole_float_labels_are_measured():
    assert [r["obj_id"] for r in measure(small_labels().astype(np.float32))] == [1, 2, 3]


def test_a_complex_image_is_refused():
    labels = small_labels()
    with pytest.raises(ValueError, match="grey values"):
        measure(labels, labels.astype(np.complex64))
