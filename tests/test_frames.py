"""FrameSource: layouts, dtypes, intensity mapping, lazy reading, bad input."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import tifffile
import torch

from sam2_model.frames import IMAGENET_MEAN, IMAGENET_STD, FrameSource


class CountingStack:
    """An array-like that records which frames were read."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.read = data, data.shape, data.dtype, []

    def __getitem__(self, index):
        self.read.append(index)
        return self.data[index]


def unnormalise(tensor: torch.Tensor) -> np.ndarray:
    return (tensor * IMAGENET_STD + IMAGENET_MEAN).permute(1, 2, 0).numpy()


def test_uint8_maps_exactly_as_x_over_255():
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    source = FrameSource(frames, image_size=32)
    np.testing.assert_array_equal(source.mapped(1)[..., 0], frames[1].astype(np.float32) / 255.0)
    expected = (torch.from_numpy(frames[1].astype(np.float32) / 255.0)[None].repeat(3, 1, 1) - IMAGENET_MEAN) / IMAGENET_STD
    torch.testing.assert_close(source.model_input(1), expected, rtol=0, atol=0)


def test_uint16_contrast_limits_are_constant_across_frames():
    rng = np.random.default_rng(1)
    frames = rng.integers(500, 2000, (6, 20, 20)).astype(np.uint16)
    frames[3] += 20000  # a much brighter frame must not change the mapping of the others
    frames[0, 0, 0] = frames[5, 0, 0] = 1500
    source = FrameSource(frames, image_size=32)
    assert source.mapped(0)[0, 0, 0] == source.mapped(5)[0, 0, 0]
    explicit = FrameSource(frames, image_size=32, contrast_limits=(1000, 2000))
    assert explicit.mapped(0)[0, 0, 0] == pytest.approx(0.5)
    assert explicit.contrast_limits == (1000.0, 2000.0)


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64, np.uint32])
def test_other_dtypes_map_into_unit_range(dtype):
    frames = (np.random.default_rng(2).normal(100, 30, (2, 16, 16))).astype(dtype)
    mapped = FrameSource(frames, image_size=32).mapped(1)
    assert mapped.dtype == np.float32 and mapped.shape == (16, 16, 3)
    assert 0.0 <= mapped.min() and mapped.max() <= 1.0


def test_channels_rgb_pick_composite_and_axis():
    rgb = np.random.default_rng(3).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(FrameSource(rgb, image_size=32).mapped(0), rgb[0] / np.float32(255))
    multi = np.random.default_rng(4).integers(0, 4000, (2, 8, 8, 5)).astype(np.uint16)
    with pytest.raises(ValueError, match="5 channels: pick one"):
        FrameSource(multi, image_size=32)
    picked = FrameSource(multi, image_size=32, channel=2, contrast_limits=(0, 4000))
    np.testing.assert_allclose(picked.mapped(1)[..., 0], multi[1, ..., 2] / 4000.0, rtol=1e-6)
    assert FrameSource(multi, image_size=32, composite="max").raw(0).shape == (8, 8)
    tchw = np.moveaxis(multi, -1, 1)  # (T, C, H, W)
    moved = FrameSource(tchw, image_size=32, channel_axis=1, channel=2, contrast_limits=(0, 4000))
    np.testing.assert_array_equal(moved.raw(1), multi[1, ..., 2])


def test_lazy_reading_and_prefetch_in_both_directions():
    data = np.random.default_rng(5).integers(0, 256, (40, 16, 16), dtype=np.uint8)
    stack = CountingStack(data)
    source = FrameSource(stack, image_size=32, prefetch=2)
    assert len(set(stack.read)) <= 16  # only the contrast sample, never the whole stack
    plain = FrameSource(data, image_size=32, prefetch=0)
    for t in list(range(10, 20)) + list(range(30, 20, -1)):
        torch.testing.assert_close(source.model_input(t), plain.model_input(t), rtol=0, atol=0)
    source.close()


def test_paths_tif_stack_and_folder(tmp_path):
    data = np.random.default_rng(6).integers(0, 60000, (4, 12, 10)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", data, photometric="minisblack")
    from_tif = FrameSource(tmp_path / "stack.tif", image_size=32)
    np.testing.assert_array_equal(from_tif.raw(2), data[2])
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(4):
        tifffile.imwrite(folder / f"t{t + 8}.tif", data[t])  # t8..t11: natural order, not t10 < t8
    from_folder = FrameSource(folder, image_size=32)
    np.testing.assert_array_equal(from_folder.raw(3), data[3])
    tifffile.imwrite(folder / "t99.tif", data[0, :5])
    bad = FrameSource(folder, image_size=32, contrast_limits=(0, 1))
    with pytest.raises(ValueError, match="t99.tif is"):
        bad.raw(4)


def test_dask_and_zarr_inputs():
    dask_array = pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr")
    data = np.random.default_rng(7).integers(0, 256, (5, 16, 16), dtype=np.uint8)
    lazy = dask_array.from_array(data, chunks=(1, 16, 16))
    np.testing.assert_array_equal(FrameSource(lazy, image_size=32).raw(4), data[4])
    z = zarr.create_array(store=zarr.storage.MemoryStore(), shape=data.shape, dtype=data.dtype, chunks=(1, 16, 16))
    z[:] = data
    np.testing.assert_array_equal(FrameSource(z, image_size=32).raw(2), data[2])


@pytest.mark.parametrize(
    "frames, error, match",
    [
        (np.zeros((0, 8, 8), np.uint8), ValueError, "empty"),
        (np.float32(3.0), ValueError, "must be .T,H,W. or .T,H,W,C."),
        (np.zeros(8, np.uint8), ValueError, "must be .T,H,W. or .T,H,W,C."),
        (np.zeros((8, 8), np.uint8), ValueError, "ImagePredictor"),
        ("/no/such/stack.tif", FileNotFoundError, "no such file"),
    ],
)
def test_bad_stacks(frames, error, match):
    with pytest.raises(error, match=match):
        FrameSource(frames, image_size=32)


def test_nan_frame_and_index_and_limits_errors():
    frames = np.ones((3, 8, 8), np.float32)
    frames[2, 1, 1] = np.nan
    source = FrameSource(frames, image_size=32, contrast_limits=(0, 2))
    with pytest.raises(ValueError, match="frame 2 contains NaN"):
        source.model_input(2)
    source.model_input(1)  # still usable
    with pytest.raises(ValueError, match="valid frames are 0..2"):
        source.model_input(3)
    with pytest.raises(ValueError, match="low < high"):
        FrameSource(frames[:2], image_size=32, contrast_limits=(5, 5))


SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ctc-msc" / "01"


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the shared Cell Tracking Challenge data is not beside the repo")
def test_real_time_lapse_folder():
    """Fluo-C2DL-MSC (uint16, 832 x 992, 48 frames) read lazily from its folder of tNNN.tif files."""
    source = FrameSource(SHARED_DATA, image_size=256)
    assert (source.num_frames, source.height, source.width) == (48, 832, 992)
    assert source.dtype == np.uint16
    first = tifffile.imread(SHARED_DATA / "t000.tif")
    np.testing.assert_array_equal(source.raw(0), first)
    low, high = source.contrast_limits
    assert first.min() <= low < high <= first.max() * 2
    tensor = source.model_input(47)
    assert tensor.shape == (3, 256, 256) and torch.isfinite(tensor).all()
