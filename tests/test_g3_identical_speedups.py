"""G3 (s55): CPU savings that must give the same bits as the straightforward computation they replace.

Each test compares the fast path with a plain reference written here (or kept in the module as the fallback):
rotary encoding by complex multiplication vs the real arithmetic, blob strengths read from the LoG layers vs a
LoG filter per sigma, the cached dense prompt encoding vs a fresh one, the boundary F-measure on the boundary
maps' box vs the whole frame, and crop matching by a table of small ids vs np.unique over the frame.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.morphology import disk

from sam2_model.metrics import boundary_f_measure, seg2bmap
from sam2_model.modeling.attention import complex_rotation_exact, rotate_grids, rotate_pairs
from sam2_model.modeling.prompt_encoder import PromptEncoder
from sam2_model.tracking.divisions import Crop
from sam2_model.tracking.matching import match_crops, match_detections


# ------------------------------------------------------------------ 1. rotary encoding
@pytest.mark.parametrize("threads", [1, 3, 5])
def test_rotate_grids_equals_real_arithmetic_at_any_thread_count(threads):
    """The complex path rounds as the real one; PyTorch's threads may split a big multiply anywhere (its scalar
    remainder fuses multiply-add: other bits), so rotate_grids keeps each multiply on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        generator = torch.Generator().manual_seed(threads)
        for (grid, width), batch, heads, repeats, dtype in [((256, 128), 8, 1, 7, torch.float32),
                                                             ((64, 64), 3, 2, 2, torch.float32),
                                                             ((256, 128), 2, 1, 1, torch.bfloat16),
                                                             ((9, 6), 2, 1, 3, torch.float32)]:  # (6: real path)
            angles = torch.rand(grid, width // 2, generator=generator) * 100
            unit = torch.polar(torch.ones_like(angles), angles)
            cos, sin = unit.real.contiguous(), unit.imag.contiguous()
            x = torch.randn(batch, grid * repeats, heads, width, generator=generator).transpose(1, 2).to(dtype)
            expected = rotate_pairs(x, cos.repeat(repeats, 1), sin.repeat(repeats, 1))
            got = rotate_grids(x, cos, sin, torch.complex(cos, sin))
            assert got.dtype == expected.dtype and torch.equal(got, expected), (grid, width, batch, heads, repeats)
            without_unit = rotate_grids(x, cos, sin)
            assert torch.equal(without_unit, expected)
    finally:
        torch.set_num_threads(before)


def test_complex_path_only_where_exact():
    x = torch.zeros(2, 1, 16, 64)
    assert complex_rotation_exact(x, 32) == (torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"))
    assert not complex_rotation_exact(torch.zeros(2, 1, 16, 6), 3)  # rows not whole vector steps
    assert not complex_rotation_exact(torch.zeros(2, 1, 16, 64, requires_grad=True), 32)  # training: reference
    with torch.no_grad():
        learnable = torch.zeros(2, 1, 16, 64, requires_grad=True)
        assert complex_rotation_exact(learnable, 32) == complex_rotation_exact(x, 32)


# ------------------------------------------------------------------ 2. blob strengths
def test_blob_strengths_read_from_layers_equal_a_filter_per_sigma():
    from sam2_model import seeding
    from sam2_model.work_steps import drain

    if seeding._blob_log_parts() is None:
        pytest.skip("scikit-image without the pass-by-pass blob search")
    rng = np.random.default_rng(3)
    assert seeding.normalise_frame(rng.random((8, 8))).dtype == np.float64  # the layers' dtype for every frame
    for dtype in (np.float64, np.float32):
        frame = ndimage.gaussian_filter(rng.random((96, 120)), 3).astype(dtype)
        frame = (frame - frame.min()) / (frame.max() - frame.min())
        layers: list = []
        sigmas = (6 / (2 * math.sqrt(2)), 30 / (2 * math.sqrt(2)))
        blobs = drain(seeding._blob_log_steps(frame, sigmas, 6, 0.01, None, 8, layers))
        assert len(blobs) > 3 and len(np.unique(blobs[:, 2])) > 1
        rows, cols, sigma = blobs[:, 0], blobs[:, 1], blobs[:, 2]
        got = seeding._layer_response(layers, rows, cols, sigma)
        if dtype == np.float32:  # scipy rounds a float32 sigma's kernel unlike a float's: computed again
            assert got is None
            continue
        expected = np.array([-ndimage.gaussian_laplace(frame, float(s))[int(r), int(c)] * float(s) ** 2
                             for r, c, s in zip(rows, cols, sigma)], np.float64)
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(got, seeding._log_response(frame, rows, cols, sigma))


# ------------------------------------------------------------------ 3. dense prompt encoding
def test_dense_pe_cached_for_inference_and_remade_when_the_buffer_changes():
    torch.manual_seed(0)
    encoder = PromptEncoder(embed_dim=32, image_embedding_size=(8, 8), input_image_size=(32, 32), mask_in_chans=8)
    encoder.eval()
    fresh = encoder.pe_layer(encoder.image_embedding_size).unsqueeze(0)
    with torch.inference_mode():
        first = encoder.get_dense_pe()
        assert encoder.get_dense_pe() is first and torch.equal(first, fresh)
    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    state["pe_layer.positional_encoding_gaussian_matrix"] = torch.randn(2, 16)
    encoder.load_state_dict(state)
    with torch.inference_mode():
        after = encoder.get_dense_pe()
    assert torch.equal(after, encoder.pe_layer(encoder.image_embedding_size).unsqueeze(0))
    assert not torch.equal(after, first)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(encoder.get_dense_pe(), encoder.pe_layer(encoder.image_embedding_size).unsqueeze(0))
    encoder.train()
    assert encoder.get_dense_pe() is not encoder.get_dense_pe()  # training: made on every call


# ------------------------------------------------------------------ 4. boundary F-measure
def _whole_frame_f(pred: np.ndarray, gt: np.ndarray, radius: int) -> float:
    pb, gb = seg2bmap(pred), seg2bmap(gt)
    n_p, n_g = np.count_nonzero(pb), np.count_nonzero(gb)
    if n_p == 0 and n_g == 0:
        return 1.0
    if n_p == 0 or n_g == 0:
        return 0.0
    structure = disk(radius).astype(bool)
    dilate = (lambda b: ndimage.binary_dilation(b, structure=structure)) if radius > 0 else (lambda b: b)
    precision = np.count_nonzero(pb & dilate(gb)) / n_p
    recall = np.count_nonzero(gb & dilate(pb)) / n_g
    return 0.0 if precision + recall == 0 else float(2.0 * precision * recall / (precision + recall))


def test_boundary_f_measure_on_the_box_equals_the_whole_frame():
    rng = np.random.default_rng(7)
    shape = (40, 56)
    cases = [(np.zeros(shape, bool), np.zeros(shape, bool)), (np.ones(shape, bool), np.zeros(shape, bool))]
    for _ in range(60):
        masks = []
        for _ in range(2):
            mask = np.zeros(shape, bool)
            r0, c0 = rng.integers(-8, shape[0]), rng.integers(-8, shape[1])  # boxes across the frame's edges too
            mask[max(r0, 0):r0 + rng.integers(1, 30), max(c0, 0):c0 + rng.integers(1, 30)] = True
            if rng.random() < 0.3:
                mask ^= rng.random(shape) < 0.05
            masks.append(mask)
        cases.append(tuple(masks))
    for pred, gt in cases:
        for radius in (0, 1, 3, 9):
            assert boundary_f_measure(pred, gt, radius=radius) == _whole_frame_f(pred, gt, radius)


# ------------------------------------------------------------------ 5. crop matching
def test_match_crops_with_small_ids_equals_the_whole_frame_match():
    rng = np.random.default_rng(11)
    for dtype, top in ((np.uint16, 9), (np.int32, 40), (np.int64, 5_000_000), (np.int32, -1)):
        labels = np.zeros((48, 64), dtype)
        for k in range(8):
            r, c = rng.integers(0, 40), rng.integers(0, 56)
            labels[r:r + rng.integers(3, 12), c:c + rng.integers(3, 12)] = top if k == 0 else k + 1
        detections = []
        for _ in range(6):
            mask = np.zeros(labels.shape, bool)
            r, c = rng.integers(0, 40), rng.integers(0, 56)
            mask[r:r + rng.integers(3, 12), c:c + rng.integers(3, 12)] = True
            detections.append(mask)
        detections = [_only_in_box(m) for m in detections]
        crops = [Crop(m[8:40, 4:60], (slice(8, 40), slice(4, 60)), labels.shape) for m in detections]
        expected = match_detections(detections, labels)  # whole (H, W) masks, np.unique of the frame
        got = match_crops(crops, labels)
        assert got.matched == expected.matched and got.inside == expected.inside and got.new == expected.new
        np.testing.assert_array_equal(got.best_iou, expected.best_iou)


def _only_in_box(mask: np.ndarray) -> np.ndarray:
    out = np.zeros_like(mask)
    out[8:40, 4:60] = mask[8:40, 4:60]
    return out
