"""Stack readers (sam2_model.frames_io) on what biologists give them: single PNG/JPEG/BMP images, opened zarr groups."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from sam2_model.frames import FrameSource
from sam2_model.frames_io import SingleImageError, open_stack, open_stack_or_image

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("name, mode", [("grey.png", "L"), ("colour.png", "RGB"), ("colour.jpg", "RGB"),
                                        ("grey.bmp", "L"), ("palette.png", "P")])
def test_a_single_image_file_is_one_frame_like_a_single_tiff(tmp_path: Path, name: str, mode: str) -> None:
    """A PNG/JPEG/BMP of one image is accepted where a single 2-D TIFF is: a stack of one frame, (1, Y, X) for grey,
    (1, Y, X, 3) for colour (kept as colour, as an RGB TIFF is; a palette image becomes RGB, as in a folder)."""
    grey = RNG.integers(0, 256, (24, 32), dtype=np.uint8)
    image = Image.fromarray(grey if mode == "L" else np.stack([grey, grey // 2, 255 - grey], -1)).convert(mode)
    path = tmp_path / name
    image.save(path)
    stack, one_image = open_stack_or_image(str(path))
    expected = np.asarray(Image.open(path).convert("L" if mode == "L" else "RGB"))
    assert one_image and stack.shape == (1,) + expected.shape and stack.dtype == np.uint8
    np.testing.assert_array_equal(stack[0], expected)
    with pytest.raises(SingleImageError, match=re.escape(f"{name} holds a single image of shape {expected.shape}")):
        open_stack(path)  # where only stacks are taken (a session), the single-image hint, as for a TIFF


def test_single_images_as_tiff_and_png_agree_and_a_broken_png_is_named(tmp_path: Path) -> None:
    rgb = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "one.tif", rgb, photometric="rgb")
    Image.fromarray(rgb).save(tmp_path / "one.png")
    from_tiff, _ = open_stack_or_image(tmp_path / "one.tif")
    from_png, _ = open_stack_or_image(tmp_path / "one.png")
    np.testing.assert_array_equal(from_tiff, from_png)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"cannot read .*broken.png as a .png image"):
        open_stack_or_image(tmp_path / "broken.png")


def test_an_opened_ome_zarr_group_reads_its_full_resolution_array_as_its_path_does(tmp_path: Path) -> None:
    zarr = pytest.importorskip("zarr")
    data = RNG.integers(0, 4000, (3, 16, 16)).astype(np.uint16)
    root = zarr.open_group(str(tmp_path / "ome.zarr"), mode="w")
    root.create_array("0", shape=data.shape, dtype=data.dtype)[...] = data
    root.create_array("1", shape=(3, 8, 8), dtype=data.dtype)[...] = data[:, ::2, ::2]
    root.attrs["multiscales"] = [{"version": "0.4", "datasets": [{"path": "0"}, {"path": "1"}]}]
    group = zarr.open_group(str(tmp_path / "ome.zarr"), mode="r")
    for given in (group, str(tmp_path / "ome.zarr")):
        stack = open_stack(given)
        assert stack.shape == data.shape and stack.dtype == data.dtype
        np.testing.assert_array_equal(np.asarray(stack[1]), data[1])
    with FrameSource(group, image_size=16) as source:
        assert source.shape == data.shape and np.array_equal(source.raw(2), data[2])


def test_a_zarr_group_follows_its_multiscales_metadata_or_names_what_to_pass(tmp_path: Path) -> None:
    zarr = pytest.importorskip("zarr")
    data = RNG.integers(0, 255, (2, 8, 8)).astype(np.uint8)
    named = zarr.open_group(str(tmp_path / "named.zarr"), mode="w")
    named.create_array("s0", shape=data.shape, dtype=data.dtype)[...] = data
    named.attrs["ome"] = {"version": "0.5", "multiscales": [{"datasets": [{"path": "s0"}]}]}
    np.testing.assert_array_equal(np.asarray(open_stack(named)[:]), data)
    plain = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    plain.create_array("raw", shape=data.shape, dtype=data.dtype)
    with pytest.raises(ValueError, match=r"zarr group given has no array '0' \(it holds \['raw'\]\); pass the array "
                                         r"you mean \(group\['name'\]\)"):
        open_stack(plain)
    with pytest.raises(ValueError, match=r"zarr group .*plain.zarr has no array '0'"):
        open_stack(tmp_path / "plain.zarr")


def test_a_list_of_frame_files_or_a_pattern_is_a_stack(tmp_path: Path) -> None:
    """segment(["t0.tif", "t1.tif", ...]) and segment("frames/t*.tif") read those files as the frames of one stack (a
    list was "image must hold numbers, got dtype <U..."; a pattern "no such file or folder"), a list in its order and
    a pattern in natural order (t2 before t10); a missing file is named."""
    frames = [RNG.integers(0, 4000, (12, 16), dtype=np.uint16) for _ in range(11)]
    for t, frame in enumerate(frames):
        tifffile.imwrite(tmp_path / f"t{t}.tif", frame)
    listed = open_stack([tmp_path / "t3.tif", str(tmp_path / "t1.tif")])
    assert listed.shape == (2, 12, 16)
    np.testing.assert_array_equal(listed[0], frames[3])
    np.testing.assert_array_equal(listed[1], frames[1])
    pattern = open_stack(str(tmp_path / "t*.tif"))
    assert pattern.shape == (11, 12, 16)
    np.testing.assert_array_equal(np.stack([pattern[t] for t in range(11)]), np.stack(frames))
    np.testing.assert_array_equal(FrameSource(pattern, image_size=64).raw(10), frames[10])
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "t99.tif"))):
        open_stack([tmp_path / "t0.tif", tmp_path / "t99.tif"])
    with pytest.raises(FileNotFoundError, match="no file matches"):
        open_stack(str(tmp_path / "x*.tif"))
    (tmp_path / "notes.txt").write_text("not a frame")
    with pytest.raises(ValueError, match="not a frame file"):
        open_stack([tmp_path / "t0.tif", tmp_path / "notes.txt"])


def test_a_damaged_tiff_is_named_as_damaged(tmp_path: Path) -> None:
    """A TIFF header followed by garbage (a truncated copy) was "cannot read ... as a TIFF stack: list index out of
    range"; it now says the file holds no readable image."""
    path = tmp_path / "broken.tif"
    path.write_bytes(b"II*\x00" + b"\x00garbage" * 100)
    with pytest.raises(ValueError, match="holds no image tifffile can read .a truncated or damaged TIFF"):
        open_stack(path)
