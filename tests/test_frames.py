"""FrameSource: layouts, dtypes, intensity mapping, readers, laziness, prefetch, memory, bad input."""

from __future__ import annotations

import pathlib
import threading

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from sam2_model.frames import (IMAGENET_MEAN, IMAGENET_STD, FrameIndexError, FrameSource, percentile_limits,
                               resize_unit, to_model_input, to_unit)

RNG = np.random.default_rng(0)


class CountingStack:
    """An array-like that records every key it is indexed with."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.ndim, self.read = data, data.shape, data.dtype, data.ndim, []

    def __getitem__(self, key):
        self.read.append(key)
        return self.data[key]

    def frames_read(self) -> list:
        """The frame indices of the reads that asked for one frame (not dask's empty meta probes)."""
        firsts = [k[0] if isinstance(k, tuple) else k for k in self.read]
        return [int(k) for k in firsts if isinstance(k, (int, np.integer))]


def unnormalise(tensor: torch.Tensor) -> np.ndarray:
    return (tensor * IMAGENET_STD + IMAGENET_MEAN).permute(1, 2, 0).numpy()


def reference_steps(frame: np.ndarray, size: int) -> torch.Tensor:
    """sam2.utils.misc._load_img_as_tensor + the video loader's normalisation, on an in-memory frame."""
    img = np.array(Image.fromarray(frame).convert("RGB").resize((size, size))) / 255.0
    img = torch.zeros(3, size, size).copy_(torch.from_numpy(img).permute(2, 0, 1))  # float64 -> float32
    img -= IMAGENET_MEAN
    img /= IMAGENET_STD
    return img


# ----------------------------------------------------------------------------- intensity mapping
@pytest.mark.parametrize("shape", [(3, 40, 50), (3, 40, 50, 3)], ids=["grey", "rgb"])
@pytest.mark.parametrize("size", [32, 64, 40])
def test_uint8_is_x_over_255_and_bit_identical_to_the_reference(shape, size):
    frames = RNG.integers(0, 256, shape, dtype=np.uint8)
    source = FrameSource(frames, image_size=size)
    assert source.contrast_limits == (0.0, 255.0)
    mapped = source.mapped(1)
    expected = frames[1].astype(np.float32) / np.float32(255)
    np.testing.assert_array_equal(mapped, expected if len(shape) == 4 else np.repeat(expected[..., None], 3, -1))
    assert torch.equal(source.model_input(1), reference_steps(frames[1], size))


def test_jpeg_folder_matches_the_reference_loader(tmp_path):
    misc = pytest.importorskip("sam2.utils.misc")
    for t in range(3):
        Image.fromarray(RNG.integers(0, 256, (45, 70, 3), dtype=np.uint8)).save(tmp_path / f"{t}.jpg")
    reference, height, width = misc.load_video_frames_from_jpg_images(
        str(tmp_path), 64, offload_video_to_cpu=True, compute_device=torch.device("cpu"))
    with FrameSource(tmp_path, image_size=64) as source:
        assert (source.height, source.width) == (height, width)
        assert torch.equal(torch.stack([source.model_input(t) for t in range(3)]), reference)


def test_uint16_contrast_limits_are_constant_across_frames():
    frames = RNG.integers(500, 2000, (6, 20, 20)).astype(np.uint16)
    frames[3] += 20000  # a much brighter frame must not change how the others map
    frames[5] = frames[0]
    source = FrameSource(frames, image_size=32)
    low, high = np.percentile(frames.astype(np.float64), (0.5, 99.8))
    assert source.contrast_limits == pytest.approx((low, high))
    np.testing.assert_array_equal(source.mapped(0), source.mapped(5))
    assert torch.equal(source.model_input(0), source.model_input(5))
    explicit = FrameSource(frames, image_size=32, contrast_limits=(1000, 2000))
    assert explicit.contrast_limits == (1000.0, 2000.0)
    expected = np.clip((frames[2].astype(np.float32) - 1000) / 1000, 0, 1)
    np.testing.assert_allclose(explicit.mapped(2)[..., 1], expected, rtol=0, atol=1e-7)
    assert explicit.mapped(3).min() == 1.0  # clipped


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_smoothing_blurs_frames_before_limits_and_mapping(dtype):
    from scipy import ndimage

    rng = np.random.default_rng(3)
    stack = rng.integers(0, 200, (4, 40, 48)).astype(dtype)
    plain, smooth = FrameSource(stack, image_size=64), FrameSource(stack, image_size=64, smooth=1.5)
    blurred = [ndimage.gaussian_filter(frame.astype(np.float32), 1.5) for frame in stack]
    np.testing.assert_array_equal(smooth.filtered(2), blurred[2])
    np.testing.assert_array_equal(smooth.raw(2), stack[2])  # raw stays as stored
    limits = (0.0, 255.0) if dtype == np.uint8 else percentile_limits(blurred)  # the blurred frames' percentiles
    assert smooth.contrast_limits == pytest.approx(limits)
    torch.testing.assert_close(smooth.model_input(2), to_model_input(to_unit(blurred[2], limits), 64))
    assert not torch.equal(smooth.model_input(2), plain.model_input(2))
    torch.testing.assert_close(FrameSource(stack, image_size=64, smooth=0).model_input(1), plain.model_input(1))
    again = smooth.reopen()
    assert again.smooth == 1.5 and torch.equal(again.model_input(0), smooth.model_input(0))
    assert "smooth=1.5" in repr(smooth) and "smooth" not in repr(plain)
    rgb = FrameSource(rng.integers(0, 255, (2, 20, 24, 3)).astype(np.uint8), image_size=32, smooth=2.0)
    frame = rgb.raw(0)
    np.testing.assert_array_equal(rgb.filtered(0), ndimage.gaussian_filter(frame.astype(np.float32), (2, 2, 0)))


@pytest.mark.parametrize("value", [-1, float("nan"), float("inf"), "x", None, True])
def test_bad_smoothing_is_named(value):
    with pytest.raises(ValueError, match="smooth must be a number of pixels >= 0"):
        FrameSource(np.zeros((2, 16, 16), np.uint8), image_size=32, smooth=value)


def test_explicit_limits_win_for_uint8_too():
    frames = RNG.integers(0, 100, (2, 8, 8), dtype=np.uint8)
    mapped = FrameSource(frames, image_size=16, contrast_limits=(0, 100)).mapped(0)
    np.testing.assert_allclose(mapped[..., 0], frames[0] / 100.0, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint32, np.float32, np.float64, np.int8])
def test_other_dtypes_map_into_the_unit_range(dtype):
    frames = RNG.normal(60, 20, (3, 16, 16)).astype(dtype)
    source = FrameSource(frames, image_size=24)
    mapped = source.mapped(1)
    assert mapped.dtype == np.float32 and mapped.shape == (16, 16, 3)
    assert 0.0 <= mapped.min() and mapped.max() <= 1.0 and mapped.max() > mapped.min()
    tensor = source.model_input(2)
    assert tensor.dtype == torch.float32 and tensor.shape == (3, 24, 24)
    explicit = FrameSource(frames, image_size=24, contrast_limits=(20, 100)).mapped(0)[..., 2]
    np.testing.assert_allclose(explicit, np.clip((frames[0].astype(np.float64) - 20) / 80, 0, 1), atol=1e-6)


def test_float64_keeps_precision_on_a_large_offset():
    frames = 1e9 + RNG.random((2, 8, 8))  # a float32 cast first would flatten this to one value
    mapped = FrameSource(frames, image_size=8, contrast_limits=(1e9, 1e9 + 1)).mapped(0)[..., 0]
    np.testing.assert_allclose(mapped, frames[0] - 1e9, atol=1e-6)


def test_model_input_resizes_bicubic_antialiased_in_float():
    frames = RNG.integers(0, 4096, (2, 30, 50)).astype(np.uint16)
    source = FrameSource(frames, image_size=20, contrast_limits=(0, 4095))
    unit = torch.from_numpy(frames[1] / np.float32(4095))[None, None].float()
    resized = torch.nn.functional.interpolate(unit, size=(20, 20), mode="bicubic", antialias=True).clamp(0, 1)
    torch.testing.assert_close(source.model_input(1), to_model_input(source.mapped(1), 20))
    torch.testing.assert_close(unnormalise(source.model_input(1))[..., 0], resized[0, 0].numpy(), rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- channels and layouts
def test_rgb_channel_pick_composite_and_channel_axis():
    multi = RNG.integers(0, 4000, (2, 8, 9, 5)).astype(np.uint16)
    picked = FrameSource(multi, image_size=16, channel=2, contrast_limits=(0, 4000))
    np.testing.assert_allclose(picked.mapped(1)[..., 0], multi[1, ..., 2] / 4000.0, rtol=1e-6)
    assert picked.num_channels == 5 and picked.shape == (2, 8, 9)
    np.testing.assert_array_equal(FrameSource(multi, composite="max").raw(0), multi[0].max(-1))
    np.testing.assert_allclose(FrameSource(multi, composite="mean").raw(1), multi[1].mean(-1), rtol=1e-6)
    tchw = CountingStack(np.ascontiguousarray(np.moveaxis(multi, -1, 1)))  # (T, C, H, W)
    moved = FrameSource(tchw, image_size=16, channel_axis=1, channel=2, contrast_limits=(0, 4000))
    assert (moved.height, moved.width, moved.num_channels) == (8, 9, 5)
    np.testing.assert_array_equal(moved.raw(1), multi[1, ..., 2])
    assert tchw.read[-1] == (1, 2)  # only the picked channel is read
    for composite in ("max", "mean"):
        np.testing.assert_array_equal(FrameSource(tchw, channel_axis=1, composite=composite).raw(0),
                                      FrameSource(multi, composite=composite).raw(0))
    thwc1 = multi[..., :1]
    np.testing.assert_array_equal(FrameSource(thwc1).raw(0), multi[0, ..., 0])


def test_three_channel_uint8_passes_through_as_rgb_and_composites_stay_x_over_255():
    rgb = RNG.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(FrameSource(rgb).mapped(0), rgb[0] / np.float32(255))
    mean = FrameSource(rgb, composite="mean", image_size=8)
    assert mean.contrast_limits == (0.0, 255.0)
    np.testing.assert_allclose(mean.mapped(1)[..., 0], rgb[1].mean(-1) / 255, rtol=1e-6)


# ----------------------------------------------------------------------------- readers
def test_dask_zarr_memmap_npy_and_torch_inputs(tmp_path):
    da = pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr")
    data = RNG.integers(0, 256, (5, 16, 12), dtype=np.uint8)
    expected = FrameSource(data, image_size=16).model_input(4)
    z = zarr.create_array(store=str(tmp_path / "s.zarr"), shape=data.shape, dtype=data.dtype, chunks=(1, 16, 12))
    z[:] = data
    tifffile.imwrite(tmp_path / "m.tif", data, photometric="minisblack")
    np.save(tmp_path / "s.npy", data)
    inputs = [da.from_array(data, chunks=(1, 16, 12)), z, tifffile.memmap(tmp_path / "m.tif"),
              tmp_path / "s.npy", str(tmp_path / "s.zarr"), torch.from_numpy(data)]
    for frames in inputs:
        with FrameSource(frames, image_size=16) as source:
            assert source.shape == (5, 16, 12) and source.dtype == np.uint8
            np.testing.assert_array_equal(source.raw(4), data[4])
            assert torch.equal(source.model_input(4), expected), type(frames)


def test_tif_paths_read_lazily(tmp_path):
    data = RNG.integers(0, 60000, (4, 12, 10)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "shaped.tif", data, compression="zlib", photometric="minisblack")
    with tifffile.TiffWriter(tmp_path / "pages.tiff") as writer:  # plain pages, no shape metadata
        for frame in data:
            writer.write(frame, metadata=None, contiguous=False)
    for name in ("shaped.tif", "pages.tiff"):
        source = FrameSource(tmp_path / name, image_size=16, contrast_limits=(0, 60000))
        np.testing.assert_array_equal(source.raw(2), data[2])
        source.close()
        with pytest.raises(ValueError, match="closed"):
            source.raw(2)
    tczyx = RNG.integers(0, 100, (3, 2, 12, 10)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "ij.tif", tczyx, imagej=True, metadata={"axes": "TCYX"})
    with FrameSource(tmp_path / "ij.tif", channel=1) as source:  # the channel axis comes from the axes
        np.testing.assert_array_equal(source.raw(2), tczyx[2, 1])


def test_tif_stacks_read_without_zarr(tmp_path, monkeypatch):
    """TIFF stacks need only tifffile: with zarr unimportable, frames are read page by page."""
    import sys

    from sam2_model.frames_io import open_stack

    monkeypatch.setitem(sys.modules, "zarr", None)  # `import zarr` now raises ImportError
    data = RNG.integers(0, 60000, (4, 12, 10)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "t.tif", data, compression="zlib", photometric="minisblack")
    tczyx = RNG.integers(0, 100, (3, 2, 12, 10)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "ij.tif", tczyx, imagej=True, metadata={"axes": "TCYX"})
    rgb = RNG.integers(0, 255, (3, 12, 10, 3)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    for name, expected in (("t.tif", data), ("ij.tif", tczyx), ("rgb.tif", rgb)):
        stack = open_stack(tmp_path / name)
        assert stack.shape == expected.shape and stack.dtype == expected.dtype
        np.testing.assert_array_equal(stack[2], expected[2])
        np.testing.assert_array_equal(stack[1, 3:5], expected[1, 3:5])
        np.testing.assert_array_equal(stack[0:2], expected[0:2])
        stack.close()
    with FrameSource(tmp_path / "ij.tif", channel=1) as source:
        np.testing.assert_array_equal(source.raw(2), tczyx[2, 1])


def test_folders_of_png_and_tif_frames_in_natural_order(tmp_path):
    grey = RNG.integers(0, 256, (3, 10, 14), dtype=np.uint8)
    deep = RNG.integers(0, 65535, (3, 10, 14)).astype(np.uint16)
    rgb = RNG.integers(0, 256, (3, 10, 14, 3), dtype=np.uint8)
    for name, data, suffix in (("grey", grey, "png"), ("deep", deep, "png"), ("rgb", rgb, "png"), ("tif", deep, "tif")):
        folder = tmp_path / name
        folder.mkdir()
        for t, frame in enumerate(data):
            path = folder / f"frame_{t * 5}.{suffix}"  # frame_0, frame_5, frame_10: natural order
            tifffile.imwrite(path, frame) if suffix == "tif" else Image.fromarray(frame).save(path)
        (folder / "notes.txt").write_text("not a frame")
        source = FrameSource(folder, image_size=16)
        assert source.shape == (3, 10, 14) and source.dtype == data.dtype
        for t in range(3):
            np.testing.assert_array_equal(source.raw(t), data[t])
    rgba = tmp_path / "rgba"
    rgba.mkdir()
    for t in range(2):
        Image.fromarray(rgb[t]).convert("RGBA").save(rgba / f"{t}.png")
    np.testing.assert_array_equal(FrameSource(rgba).raw(1), rgb[1])  # alpha dropped, as the reference does


@pytest.mark.parametrize("colour, dtype, others", [(1, np.uint8, 0), (0, np.uint16, 0), (2, np.uint8, 40)],
                         ids=["green-uint8", "red-uint16", "blue-on-constant"])
def test_rgb_frames_with_one_colour_reach_the_model_as_that_channel_in_grey(colour, dtype, others):
    """A green- or red-only fluorescence export (the other channels constant on every frame) is read as its one
    channel in grey: the model input equals that of the same data given as grey (what the demo weights were trained
    on: grey replicated to RGB), for uint8 and other dtypes (contrast limits from that channel), and the repr says
    so. Channels first ((T, 3, H, W), channel_axis=1) too."""
    grey = RNG.integers(0, 250 if dtype == np.uint8 else 4000, (4, 20, 24)).astype(dtype)
    rgb = np.full(grey.shape + (3,), others, dtype)
    rgb[..., colour] = grey
    as_grey = FrameSource(grey, image_size=16)
    for frames, axis in ((rgb, None), (np.moveaxis(rgb, -1, 1), 1)):
        source = FrameSource(frames, image_size=16, channel_axis=axis)
        assert source.colour_channel == colour and source.contrast_limits == as_grey.contrast_limits
        np.testing.assert_array_equal(source.raw(2), grey[2])
        assert torch.equal(source.model_input(3), as_grey.model_input(3))
        name = ("red", "green", "blue")[colour]
        assert f"RGB frames with {name} only" in repr(source) and f"{name} channel {colour} read as grey" in str(source)
        assert source.reopen().colour_channel == colour


def test_true_colour_and_picked_channels_are_left_as_they_are():
    """RGB with two or more varying channels stays colour, bit-identical to the reference, after one frame read;
    a channel the caller picked (or a composite) is not second-guessed; an all-constant RGB stack stays RGB."""
    rgb = RNG.integers(0, 256, (30, 12, 14, 3), dtype=np.uint8)
    rgb[..., 2] = 0  # red and green vary: colour
    stack = CountingStack(rgb)
    source = FrameSource(stack, image_size=16)
    assert source.colour_channel is None and source.colour_note == "" and "grey" not in repr(source)
    assert stack.frames_read() == [0]
    assert torch.equal(source.model_input(5), reference_steps(rgb[5], 16))
    one = np.zeros_like(rgb)
    one[..., 1] = rgb[..., 0]
    np.testing.assert_array_equal(FrameSource(one, channel=0).raw(3), one[3, ..., 0])
    np.testing.assert_array_equal(FrameSource(one, composite="max").raw(3), one[3, ..., 1])
    assert FrameSource(np.zeros((2, 8, 8, 3), np.uint8)).colour_channel is None


# ----------------------------------------------------------------------------- laziness and prefetch
def test_construction_reads_at_most_the_contrast_sample():
    data = RNG.integers(0, 4000, (100, 16, 16)).astype(np.uint16)
    stack = CountingStack(data)
    FrameSource(stack, image_size=16)
    assert 0 < len(set(stack.frames_read())) <= 16
    for frames, limits in ((data, (0, 4000)), (data.astype(np.uint8), None)):
        stack = CountingStack(frames)
        FrameSource(stack, image_size=16, contrast_limits=limits)
        assert stack.read == []
    da = pytest.importorskip("dask.array")
    chunks = CountingStack(data)
    lazy = da.from_array(chunks, chunks=(1, 16, 16))
    source = FrameSource(lazy, image_size=16)
    assert 0 < len(chunks.frames_read()) <= 16
    chunks.read.clear()
    source.raw(50)
    assert chunks.frames_read() == [50]


def _settle(source: FrameSource) -> None:
    """Wait until the background thread has nothing in flight."""
    for future in list(source._pending.values()):
        try:
            future.result(timeout=10)
        except Exception:
            pass


def test_prefetch_in_both_directions_matches_plain_reads():
    data = RNG.integers(0, 4000, (40, 20, 24)).astype(np.uint16)
    plain = FrameSource(data, image_size=16, prefetch=0)
    with FrameSource(data, image_size=16, prefetch=2, cache_frames=4, contrast_limits=plain.contrast_limits) as source:
        for t in range(10, 20):
            assert torch.equal(source.model_input(t), plain.model_input(t))
            _settle(source)
            assert {t + 1, t + 2} <= set(source.cached_frames) and len(source.cached_frames) <= 4
        for t in range(30, 20, -1):  # the direction is known from the second frame on
            assert torch.equal(source.model_input(t), plain.model_input(t))
            _settle(source)
            assert {t - 1, t - 2} <= set(source.cached_frames) or t == 30
            assert len(source.cached_frames) <= 4
        source.prefetch([0, 39])
        _settle(source)
        assert {0, 39} <= set(source.cached_frames)
        assert torch.equal(source.model_input(39), plain.model_input(39))
    assert plain.cached_frames and plain._executor is None  # prefetch=0 starts no thread


def test_concurrent_readers_get_identical_results():
    data = RNG.integers(0, 4000, (24, 16, 16)).astype(np.uint16)
    expected = [FrameSource(data, image_size=16, prefetch=0).model_input(t) for t in range(24)]
    source = FrameSource(data, image_size=16, contrast_limits=None)
    errors = []

    def walk(order):
        try:
            for t in order:
                assert torch.equal(source.model_input(t), expected[t])
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    orders = (range(24), range(23, -1, -1), range(0, 24, 3))
    threads = [threading.Thread(target=walk, args=(order,)) for order in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    source.close()
    assert not errors


def test_a_bad_frame_met_by_prefetch_raises_where_it_is_read():
    frames = np.ones((6, 8, 8), np.float32)
    frames[3, 2, 2] = np.nan
    source = FrameSource(frames, image_size=8, contrast_limits=(0, 2), prefetch=2)
    source.model_input(1)  # prefetches 2 and 3
    _settle(source)
    with pytest.raises(ValueError, match="frame 3 contains NaN"):
        source.model_input(3)
    assert source.model_input(4).shape == (3, 8, 8)  # still usable


def _rss_anon_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


@pytest.mark.parametrize("kind", ["memmap", "tif_path"])
def test_iterating_a_large_stack_keeps_memory_bounded(tmp_path, kind):
    import tracemalloc

    pytest.importorskip("zarr")  # imported before tracing: its modules are not frames
    num, size = 200, 256
    path = tmp_path / "big.tif"
    ramp = (np.arange(512 * 512, dtype=np.uint32).reshape(512, 512) % 4000).astype(np.uint16)
    stack = tifffile.memmap(path, shape=(num, 512, 512), dtype=np.uint16)
    for t in range(num):
        stack[t] = ramp + t
    stack.flush()
    del stack
    frames = tifffile.memmap(path, mode="r") if kind == "memmap" else path
    all_inputs_mb = num * 3 * size * size * 4 / 2**20  # 150 MiB if the stack were held at model resolution
    start_rss = _rss_anon_kb()
    tracemalloc.start()
    with FrameSource(frames, image_size=size, prefetch=2, cache_frames=4) as source:
        for t in range(num):
            assert source.model_input(t).shape == (3, size, size)
            assert len(source.cached_frames) <= 4
            if t == 20:  # one-off costs (thread, zarr's loop, kernels) are paid by now
                warm_rss = peak_rss = _rss_anon_kb()
            elif t > 20 and t % 5 == 0:
                peak_rss = max(peak_rss, _rss_anon_kb())
    _, peak_traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak_traced / 2**20 < all_inputs_mb / 15, peak_traced  # numpy / python allocations
    assert (peak_rss - warm_rss) / 1024 < all_inputs_mb / 8, (peak_rss - warm_rss)  # no growth with T
    assert (peak_rss - start_rss) / 1024 < all_inputs_mb / 3, (peak_rss - start_rss)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "frames, kwargs, error, match",
    [
        (np.zeros((0, 8, 8), np.uint8), {}, ValueError, "empty"),
        (np.float32(3.0), {}, ValueError, r"frames must be \(T,H,W\) or \(T,H,W,C\).*ImagePredictor"),
        (np.zeros(8, np.uint8), {}, ValueError, r"frames must be \(T,H,W\) or \(T,H,W,C\).*add a time axis"),
        (np.zeros((8, 8), np.uint8), {}, ValueError, r"frames must be \(T,H,W\).*ImagePredictor"),
        (np.zeros((2, 2, 2, 8, 8), np.uint8), {}, ValueError, r"frames must be \(T,H,W\)"),
        ("/no/such/stack.tif", {}, FileNotFoundError, "/no/such/stack.tif"),
        (np.zeros((2, 8, 8), bool), {}, ValueError, "unsupported dtype bool"),
        (np.zeros((2, 8, 8), np.complex64), {}, ValueError, "unsupported dtype complex64"),
        (np.zeros((2, 8, 8, 5), np.uint16), {}, ValueError, "5 channels: pick one with channel="),
        (np.zeros((2, 8, 8, 4), np.uint8), {}, ValueError, r"RGBA data pass frames\[..., :3\]"),
        (np.zeros((2, 3, 64, 64), np.uint8), {}, ValueError, "pass channel_axis=1"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"channel": 3}, ValueError, r"channel=3 is out of range.*0..2"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"composite": "sum"}, ValueError, "composite must be"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"composite": "max", "channel": 1}, ValueError, "not both"),
        (np.zeros((2, 8, 8), np.uint8), {"channel_axis": 1}, ValueError, "no channel axis"),
        (np.zeros((2, 3, 8, 8), np.uint8), {"channel_axis": 0}, ValueError, "channel_axis must be 1, 2 or 3"),
        (np.zeros((2, 8, 8), np.uint16), {"contrast_limits": (5, 5)}, ValueError, "contrast_limits.*low < high"),
        (np.zeros((2, 8, 8), np.uint16), {"contrast_limits": (9, 2)}, ValueError, "contrast_limits.*low < high"),
        (np.zeros((2, 8, 8), np.uint16), {"contrast_limits": (0, np.nan)}, ValueError, "contrast_limits"),
        (np.zeros((2, 8, 8), np.uint16), {"contrast_limits": (1,)}, ValueError, "contrast_limits"),
        (np.zeros((2, 8, 8), np.uint8), {"image_size": 0}, ValueError, "image_size"),
    ],
)
def test_bad_input_is_named(frames, kwargs, error, match):
    with pytest.raises(error, match=match):
        FrameSource(frames, **kwargs)


def test_bad_paths_and_folders(tmp_path):
    with pytest.raises(ValueError, match="holds no .tif/.tiff/.png/.jpg/.jpeg files"):
        FrameSource(tmp_path)
    (tmp_path / "movie.mp4").write_bytes(b"\0" * 16)
    with pytest.raises(ValueError, match="movie.mp4 is not a stack"):
        FrameSource(tmp_path / "movie.mp4")
    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    with pytest.raises(ValueError, match="broken.tif"):
        FrameSource(tmp_path / "broken.tif")
    tifffile.imwrite(tmp_path / "single.tif", np.zeros((8, 9, 3), np.uint8), photometric="rgb")
    with pytest.raises(ValueError, match="single image.*ImagePredictor"):
        FrameSource(tmp_path / "single.tif")
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(3):
        Image.fromarray(np.zeros((8, 9), np.uint8)).save(folder / f"{t}.png")
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(folder / "3.png")
    with pytest.raises(ValueError, match=r"3.png is \(8, 10\) uint8, but the first frame 0.png is \(8, 9\)"):
        FrameSource(folder)


def test_nan_frames_and_indices_are_named():
    frames = np.ones((20, 8, 8), np.float32)
    frames[0, 1, 1] = np.inf  # in the contrast sample: reported at construction
    with pytest.raises(ValueError, match="frame 0 contains NaN or infinite"):
        FrameSource(frames, image_size=8)
    frames[0, 1, 1] = 1
    frames[2, 1, 1] = np.nan  # not in the sample: reported when read
    source = FrameSource(frames, image_size=8)
    with pytest.raises(ValueError, match="frame 2 contains NaN"):
        source.model_input(2)
    with pytest.raises(ValueError, match="frame 2 contains NaN"):
        source.mapped(2)
    assert source.model_input(1).shape == (3, 8, 8)  # still usable
    for bad in (20, -1, 2.5, "3", True, None):
        with pytest.raises(FrameIndexError, match=r"valid frames are 0..19"):
            source.model_input(bad)
    with pytest.raises(IndexError):
        source.raw(20)
    assert source.check_index(np.int64(4)) == 4 and source.check_index(5.0) == 5


SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ctc-msc" / "01"


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the shared Cell Tracking Challenge data is not beside the repo")
def test_real_time_lapse_folder():
    """Fluo-C2DL-MSC (uint16 LZW TIFFs, 832 x 992, 48 frames) read lazily from its folder of tNNN.tif files."""
    source = FrameSource(SHARED_DATA, image_size=256)
    assert (source.num_frames, source.height, source.width) == (48, 832, 992)
    assert source.dtype == np.uint16
    first = tifffile.imread(SHARED_DATA / "t000.tif")
    np.testing.assert_array_equal(source.raw(0), first)
    low, high = source.contrast_limits
    assert int(first.min()) <= low < high <= 2 * int(first.max())
    tensor = source.model_input(47)
    assert tensor.shape == (3, 256, 256) and torch.isfinite(tensor).all()


@pytest.mark.parametrize("shape", [(333, 700), (1000, 1000), (900, 1200, 3)])
def test_bilinear_input_is_not_clamped_so_the_rounding_above_one_stays(shape):
    """SAM2ImagePredictor resizes the /255 tensor with torchvision's Resize, which on a tensor is this antialiased
    bilinear interpolate with no clamp (torchvision is not installed here, so the test states that call; an explorer
    compared Meta's own set_image with a torchvision wheel). Over saturated pixels the filter's weights sum a rounding
    above 1 (1.0000002); clamping it changed the model input by one last bit in thousands of values at these sizes."""
    rng = np.random.default_rng(3)
    frame = rng.integers(0, 256, size=shape, dtype=np.uint8)
    frame[: shape[0] // 2] = 255
    unit = frame.astype(np.float32) / 255.0
    chw = torch.from_numpy(unit[None] if unit.ndim == 2 else unit.transpose(2, 0, 1).copy())
    reference = torch.nn.functional.interpolate(chw[None], size=(256, 256), mode="bilinear", align_corners=False,
                                                antialias=True)[0]
    assert reference.max() > 1.0  # the case this test is about
    ours = resize_unit(unit, 256, mode="bilinear")
    assert torch.equal(ours, reference)
