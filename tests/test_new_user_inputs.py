"""A new user's inputs (stop 48): each mistake is refused before any work, in words that name it and its fix, in every
door (segment(), track_cells(), napari-sam2 track, the sessions); a stack whose frames lie after its rows and columns
is read as its TIFF axes or frame_axis say. Real demo model (embedded weights) on CPU, small synthetic stacks."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import tifffile

import sam2_model as sm
from napari_sam2 import segment, track_cells
from napari_sam2._cli_outputs import check_writable
from napari_sam2.api import resolve_axes
from napari_sam2.cli import main
from napari_sam2.prompts_csv import read_prompts
from sam2_model.evaluation import click_point
from sam2_model.frames import FrameSource
from sam2_model.frames_io import open_stack
from sam2_model.input_size import estimate_object_diameter
from sam2_model.synthetic import make_timelapse

MOVIE = make_timelapse(num_frames=5, shape=(96, 96), num_cells=3, seed=7, divisions=False, enter_leave=False,
                       radius_fraction=0.12)
RUN = dict(checkpoint="embedded", device="cpu")


def clicks() -> List[Tuple[int, float, float, int, int]]:
    """One positive click on cell 1 of frame 0: (frame, y, x, label, obj_id)."""
    x, y = click_point(MOVIE.labels[0] == 1)
    return [(0, y, x, 1, 1)]


@pytest.fixture(scope="module")
def model():
    return sm.build_model("demo", checkpoint="embedded", device="cpu")


@pytest.fixture(scope="module")
def tyx_labels() -> np.ndarray:
    """segment() of the (T, Y, X) movie: what a (Y, X, T) copy of it must give, axes moved back."""
    return segment(MOVIE.image, clicks(), **RUN)


def prompts_csv(folder: Path, rows: str = "") -> Path:
    path = folder / "prompts.csv"
    (y, x) = clicks()[0][1:3]
    path.write_text(rows or f"frame,obj_id,y,x,label,y1,x1\n0,1,{y},{x},1,,\n")
    return path


def track(stack: Path, prompts: Path, output: Path, capsys, *flags: str) -> Tuple[int, str, str]:
    code = main(["track", str(stack), "--prompts", str(prompts), "-o", str(output), "--device", "cpu", *flags])
    captured = capsys.readouterr()
    return code, captured.err, captured.out


# ------------------------------------------------------------------ (Y, X, T) stacks


def test_a_tiff_whose_axes_say_yxt_is_segmented_through_t(tmp_path, tyx_labels, capsys):
    """It was read with Y as time: the click was "outside the 96 x 5 image", and --axis 2 was called 5 channels."""
    path = tmp_path / "yxt.tif"
    tifffile.imwrite(path, np.moveaxis(MOVIE.image, 0, -1).copy(), metadata={"axes": "YXT"})
    np.testing.assert_array_equal(segment(str(path), clicks(), **RUN), np.moveaxis(tyx_labels, 0, -1))
    output = tmp_path / "out" / "labels.tif"
    code, err, out = track(path, prompts_csv(tmp_path), output, capsys)
    assert code == 0, err
    assert "the TIFF's axes YXT put the frames (T, axis 2) after the rows and columns: read as (5, 96, 96) (TYX)" in out
    with tifffile.TiffFile(output) as written:  # written frames first, and says so
        assert written.series[0].axes == "TYX"
        np.testing.assert_array_equal(written.asarray(), tyx_labels)
    tracked = track_cells(str(path), cell_diameter=(8, 40), **RUN)
    np.testing.assert_array_equal(tracked.labels, track_cells(MOVIE.image, cell_diameter=(8, 40), **RUN).labels)


def test_frame_axis_naming_the_last_axis_reads_it_as_the_frames(tmp_path, tyx_labels, capsys):
    """A plain (Y, X, T) array: frame_axis=2 was "looks like 5 channels"; without it the message now says both
    readings of the short last axis, each with its option."""
    yxt = np.moveaxis(MOVIE.image, 0, -1)
    with pytest.raises(ValueError, match=r"frames of 96 x 5 px \(rows x columns\) are too small: SAM 2 needs frames at "
                                         r"least 8 px on each side.* If axis 2 \(size 5\) holds the frames, pass "
                                         r"frame_axis=2; if it holds channels, pass channel_axis=2"):
        segment(yxt, clicks(), **RUN)
    with pytest.warns(UserWarning, match=r"frame_axis=2 names the stack's last axis.* read as \(5, 96, 96\)"):
        moved = segment(yxt, clicks(), frame_axis=2, **RUN)
    np.testing.assert_array_equal(moved, np.moveaxis(tyx_labels, 0, -1))
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, yxt.copy())  # no axes: tifffile guesses QYX
    code, err, out = track(plain, prompts_csv(tmp_path), tmp_path / "p.tif", capsys)
    assert code == 2 and "If axis 2 (size 5) holds the frames, pass --axis 2" in err
    code, err, out = track(plain, prompts_csv(tmp_path), tmp_path / "p.tif", capsys, "--axis", "2")
    assert code == 0, err
    assert "--axis 2 names the stack's last axis, after its rows and columns (axes 0 and 1)" in out
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "p.tif"), tyx_labels)


def test_frame_axis_naming_the_columns_of_a_tyx_stack_is_refused_not_read_as_scrambled_frames():
    """A (T, Y, X) stack given frame_axis=2 by mistake: axis 2 is as long as the rows, so it is not moved (frames of
    T x Y would be nonsense); the refusal names the fix."""
    with pytest.raises(ValueError, match=r"frame_axis=2 is a spatial \(row/column\) axis"):
        segment(MOVIE.image, clicks(), frame_axis=2, **RUN)
    with pytest.raises(ValueError, match=r"frame_axis=-1 is a spatial \(row/column\) axis"):
        track_cells(MOVIE.image, frame_axis=-1, cell_diameter=(8, 40), **RUN)


def test_errors_after_an_axis_move_say_how_the_axes_were_read(tmp_path):
    """A YXZT TIFF is read as (Z, T, Y, X): resolve_axes' words number that reading, so the error says how its axes
    map to the stack's, whose numbers the options take."""
    path = tmp_path / "yxzt.tif"
    volume = np.stack([MOVIE.image, MOVIE.image], axis=0)  # (Z, T, Y, X)
    tifffile.imwrite(path, np.moveaxis(volume, (0, 1), (2, 3)).copy(), metadata={"axes": "YXZT"})
    with pytest.raises(ValueError, match=r"axis numbers of the stack as read: .*there axis 0 is its axis 2, 1 is its "
                                         r"axis 3, 2 is its axis 0, 3 is its axis 1; give the options in the stack's "
                                         r"own numbers"):
        segment(str(path), clicks(), **RUN)
    with pytest.warns(UserWarning, match="YXZT"):
        labels = segment(str(path), clicks(), fixed={2: 1}, **RUN)  # z = 1, in the file's own numbers
    assert labels.shape == (96, 96, 2, 5) and labels[..., 1, :].any() and not labels[..., 0, :].any()


def test_readers_that_keep_the_axes_say_how_to_move_them():
    """resolve_axes (batch runs read stacks with it, without moving axes) names the fix instead of reading Y as
    time (a YXT TIFF) or calling the frames channels."""
    with pytest.raises(ValueError, match=r"the TIFF's axes YXT put other axes after its rows and columns .* save the "
                                         r"stack as TYX"):
        resolve_axes((96, 96, 6), axes="YXT")
    with pytest.raises(ValueError, match=r"frame_axis=2 is a spatial \(row/column\) axis .* rows and columns must be "
                                         r"its last two axes .* pass np\.moveaxis\(stack, 2, 0\)"):
        resolve_axes((96, 96, 6), frame_axis=2)
    with pytest.raises(ValueError, match=r"np\.moveaxis\(stack, 1, 0\)"):
        resolve_axes((96, 6, 96), frame_axis=1)


# ------------------------------------------------------------------ frames thinner than 8 px


@pytest.mark.parametrize("height", [1, 4])
def test_frames_thinner_than_8_px_are_refused_in_every_door(tmp_path, model, height, capsys):
    """With object_window="off" a 1 x 4000 strip gave empty labels and no error; only the object-size measurement
    refused it (naming a central crop)."""
    strip = np.zeros((2, height, 4000), np.uint16)
    strip[:, :, 1000:1100] = 1000
    words = rf"frames of {height} x 4000 px \(rows x columns\) are too small: SAM 2 needs frames at least 8 px"
    for window in ("off", "auto"):
        with pytest.raises(ValueError, match=words):
            segment(strip, [(0, 0, 1050, 1, 1)], object_window=window, **RUN)
    with pytest.raises(ValueError, match=words):
        track_cells(strip, **RUN)
    with pytest.raises(ValueError, match=words):
        sm.VideoSession(model, strip)
    tifffile.imwrite(tmp_path / "strip.tif", strip)
    rows = "frame,obj_id,y,x,label\n0,1,0,1050,1\n"
    code, err, _ = track(tmp_path / "strip.tif", prompts_csv(tmp_path, rows), tmp_path / "s.tif", capsys,
                         "--object-window", "off")
    assert code == 2 and re.search(words, err)


# ------------------------------------------------------------------ zero-area boxes


def test_a_box_of_zero_width_or_height_is_refused_in_every_door(tmp_path, model, capsys):
    """A box with both corners at one point became a mask of whatever lay there (5 -> 79 px over 4 frames, E1)."""
    with pytest.raises(ValueError, match=r"boxes row 0: the box from \(y=40, x=40\) to \(y=40, x=40\) has zero width "
                                         r"and height: give two opposite corners"):
        segment(MOVIE.image, boxes=[(0, 40, 40, 40, 40, 1)], **RUN)
    with pytest.raises(ValueError, match=r"has zero height"):
        segment(MOVIE.image, boxes=[(0, 40, 30, 40, 70, 1)], **RUN)
    with pytest.raises(ValueError, match=r"lies wholly outside"):  # cut at the image's edge (-0.5) no height is left
        segment(MOVIE.image, boxes=[(0, -10, 30, -0.5, 70, 1)], **RUN)
    with pytest.raises(ValueError, match=r"box \(x0, y0, x1, y1\) = \(40, 40, 40, 40\) has zero width and height: "
                                         r"drag a box around the object, or give a click"):
        sm.VideoSession(model, MOVIE.image).add_prompt(0, 1, box=[40, 40, 40, 40])
    predictor = sm.ImagePredictor(model)
    predictor.set_image(MOVIE.image[0])
    with pytest.raises(ValueError, match=r"has zero width:"):
        predictor.predict(box=[40, 30, 40, 70])
    tifffile.imwrite(tmp_path / "stack.tif", MOVIE.image)
    rows = "frame,obj_id,y,x,label,y1,x1\n0,1,40,40,,40,40\n"
    code, err, _ = track(tmp_path / "stack.tif", prompts_csv(tmp_path, rows), tmp_path / "z.tif", capsys)
    assert code == 2 and "prompts.csv, line 2: the box from (y=40, x=40) to (y=40, x=40) has zero width and height" in err
    assert not (tmp_path / "z.tif").exists()


# ------------------------------------------------------------------ files


def test_a_prompts_file_that_is_not_text_names_the_file_and_the_format(tmp_path, capsys):
    """It was "'utf-8' codec can't decode byte 0xb6 in position 78", naming neither."""
    tifffile.imwrite(tmp_path / "stack.tif", MOVIE.image)
    with pytest.raises(ValueError, match=r"stack\.tif is not a text CSV file \(byte \d+ is not UTF-8 text\): prompts "
                                         r"are a CSV table with the header frame,obj_id,y,x,label\[,y1,x1\]"):
        read_prompts(tmp_path / "stack.tif")
    code, err, _ = track(tmp_path / "stack.tif", tmp_path / "stack.tif", tmp_path / "b.tif", capsys)
    assert code == 2 and "stack.tif is not a text CSV file" in err


def test_a_truncated_or_damaged_tiff_is_named_as_such_without_a_stray_log_line(tmp_path, capsys, caplog):
    """A cut copy printed tifffile's "invalid page offset" log line, then "corrupted strip cannot be reshaped"."""
    full = tmp_path / "stack.tif"
    tifffile.imwrite(full, MOVIE.image)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[:3000])
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ValueError, match=re.escape(f"frames: {cut} looks damaged or truncated") + r".* the file ends "
                                         r"after 3000 bytes; copy or export it again"):
        open_stack(cut)
    assert not [r for r in caplog.records if r.name.startswith("tifffile")]
    code, err, _ = track(cut, prompts_csv(tmp_path), tmp_path / "t.tif", capsys)
    assert code == 2 and err.count("\n") == 1 and "cut.tif looks damaged or truncated" in err
    packed = tmp_path / "packed.tif"  # compressed pages: a cut copy held its first pages only
    tifffile.imwrite(packed, MOVIE.image, compression="zlib")
    half = tmp_path / "half.tif"
    half.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"half\.tif looks damaged or truncated .*: only \d of its pages can be read"):
        open_stack(half)
    spoilt = bytearray(packed.read_bytes())  # a page whose compressed data is garbage: said when it is read
    with tifffile.TiffFile(packed) as tif:
        start = tif.pages[2].dataoffsets[0]
    spoilt[start:start + 40] = bytes(40)
    (tmp_path / "spoilt.tif").write_bytes(bytes(spoilt))
    stack = open_stack(tmp_path / "spoilt.tif")
    stack[1]
    with pytest.raises(ValueError, match=r"spoilt\.tif looks damaged or truncated .*: its image data cannot be read"):
        stack[2]


def test_a_missing_folder_that_cannot_be_made_is_refused_before_any_work(tmp_path):
    """os.access says yes to root everywhere: -o /sys/sub/a.tif propagated every frame, then failed with a raw
    errno and lost the labels. A trial folder, removed at once, tells."""
    if os.geteuid() == 0:
        parent = Path("/sys")
        if not parent.is_dir():
            pytest.skip("no /sys to try as root")
    else:
        parent = tmp_path / "read-only"
        parent.mkdir()
        parent.chmod(0o555)
    target = parent / "napari_sam2_missing" / "labels.tif"
    with pytest.raises(ValueError, match=re.escape(f"-o/--output {target} cannot be written: its folders cannot be "
                                                   f"created in {parent}")):
        check_writable("-o/--output", target)
    assert not target.parent.exists()
    fine = tmp_path / "new" / "deeper" / "labels.tif"
    check_writable("-o/--output", fine)  # a folder that can be made passes, and nothing is left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["read-only"] if os.geteuid() else [])


# ------------------------------------------------------------------ values


def test_a_nan_in_the_first_frame_is_named_with_its_frame_and_fix():
    """With object_window="auto" it said "frame contains NaN or infinite values": no frame, no fix."""
    frames = MOVIE.image.astype(np.float32)
    frames[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match=r"frames: frame 0 contains NaN or infinite values; replace them \(e\.g\. "
                                         r"np\.nan_to_num\) first"):
        segment(frames, clicks(), **RUN)
    with pytest.raises(ValueError, match=r"frame contains NaN or infinite values; replace them"):
        estimate_object_diameter(frames[0])


def test_bool_images_name_their_fix_in_every_door(tmp_path, capsys):
    """They were "unsupported dtype bool; use integer or floating-point data"."""
    mask = MOVIE.labels > 0
    fix = r"unsupported dtype bool \(a mask, e\.g\. a thresholded image\): SAM 2 segments grey values; pass " \
          r"image\.astype\(np\.uint8\)"
    with pytest.raises(ValueError, match=fix):
        segment(mask, clicks(), **RUN)
    with pytest.raises(ValueError, match=fix):
        track_cells(mask, **RUN)
    with pytest.raises(ValueError, match=fix):
        FrameSource(mask)
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    code, err, _ = track(tmp_path / "mask.tif", prompts_csv(tmp_path), tmp_path / "m.tif", capsys)
    assert code == 2 and "mask.tif holds booleans" in err and "save the mask as 8-bit" in err


def test_track_cells_names_start_frame():
    """It said "frame index 9 is out of range: valid frames are 0..4", not which argument."""
    with pytest.raises(ValueError, match=r"start_frame must be a frame of the stack, an integer 0\.\.4, got 9"):
        track_cells(MOVIE.image, start_frame=9, **RUN)
