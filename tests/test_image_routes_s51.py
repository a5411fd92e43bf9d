"""Single 2-D images through segment(), the CLI and ImagePredictor: no silent misreading (review s51, X3's findings).

* a (Y, X, 3) image of 16-bit or float data, read as RGB colour without a word (IoU 0.01 against 0.89 with its
  channel), now warns and names both readings; uint8 colour stays silent;
* a prompt on a frame other than 0 of a 2-D image is refused by segment(), as by the CLI (it was ignored);
* a plain TIFF's baseline resolution (ResolutionUnit centimetre or inch) calibrates the CLI's labels;
* a one-pixel-high line TIFF is refused naming its own shape, (1, 500), not (1, 1, 500);
* ImagePredictor on an image much larger than its input, with a tiny mask, points to WindowedPredictor / segment().

Behaviour runs the embedded demo model on small synthetic images.
"""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_sam2.api as api
import sam2_model as sm
from napari_sam2 import segment
from napari_sam2.cli import main
from sam2_model.evaluation import click_point
from sam2_model.metrics import region_similarity


def nuclei(shape=(128, 128), centres=((40, 40), (80, 90)), radius=12.0) -> tuple:
    """(uint16 image of bright discs on a dim background, their labels 1..n)."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    labels = np.zeros(shape, np.uint32)
    for n, (cy, cx) in enumerate(centres, start=1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = n
    rng = np.random.default_rng(5)
    image = np.where(labels > 0, 3000, 200).astype(np.float64) + rng.normal(0, 40, shape)
    return np.clip(image, 0, 65535).astype(np.uint16), labels


@pytest.fixture
def stop_before_model(monkeypatch):
    """Input checks only: the run stops where the model would be built (warnings are raised before that)."""

    class Stopped(Exception):
        pass

    def tripwire(*args, **kwargs):
        raise Stopped

    monkeypatch.setattr(api.sm, "build_model", tripwire)
    return Stopped


# ---------------------------------------------------------------- 16-bit / float "colour"

def test_a_16_bit_image_with_three_channels_is_not_read_as_colour_without_a_word():
    """X3 #2: nuclei in channel 0, noise in 1 and 2, uint16. Read as RGB the click's mask was wrong (IoU 0.01) and
    nothing was said; the warning names both readings and the option for each, and the channel reading works."""
    image, labels = nuclei()
    noise = np.random.default_rng(1).integers(100, 30000, image.shape).astype(np.uint16)
    stacked = np.stack([image, noise, noise], axis=-1)
    x, y = click_point(labels == 1)
    with pytest.warns(UserWarning, match=r"read as RGB colour.*channel_axis=-1 with channel=N \(0\.\.2\).*rgb=True"):
        segment(stacked, clicks=[(0, y, x, 1, 1)], checkpoint="embedded", device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the reading the warning offers is silent, and right
        picked = segment(stacked, clicks=[(0, y, x, 1, 1)], checkpoint="embedded", device="cpu", channel_axis=-1,
                         channel=0)
    assert region_similarity(picked == 1, labels == 1) > 0.8


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_non_uint8_colour_axis_warns_and_each_choice_silences_it(dtype, stop_before_model):
    image = np.zeros((64, 64, 3), dtype)
    with pytest.warns(UserWarning, match="both|channels") as caught:
        with pytest.raises(stop_before_model):
            segment(image, clicks=[(0, 30, 30, 1, 1)])
    assert any(np.dtype(dtype).name in str(w.message) for w in caught)
    rgba = np.zeros((64, 64, 4), dtype)  # (Y, X, 4): read as RGBA, its 4th channel dropped: said too
    with pytest.warns(UserWarning, match="RGBA colour"):
        with pytest.raises(stop_before_model):
            segment(rgba, clicks=[(0, 30, 30, 1, 1)])
    for options in ({"rgb": True}, {"channel_axis": -1, "channel": 1}, {"channel_axis": -1, "channel": "mean"}):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(stop_before_model):
                segment(image, clicks=[(0, 30, 30, 1, 1)], **options)


def test_uint8_colour_stays_silent(stop_before_model):
    for image in (np.zeros((64, 64, 3), np.uint8), np.zeros((2, 64, 64, 4), np.uint8)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(stop_before_model):
                segment(image, clicks=[(0, 30, 30, 1, 1)])


def test_colour_guess_speaks_the_command_lines_words():
    decided = api.resolve_axes((1, 64, 64, 3), names=api.CLI_NAMES)
    message = api.colour_guess((1, 64, 64, 3), np.uint16, None, decided, api.CLI_NAMES)
    assert "--channel-axis -1 with --channel N (0..2)" in message and "--rgb yes" in message
    assert api.colour_guess((1, 64, 64, 3), np.uint16, True, decided, api.CLI_NAMES) is None


# ---------------------------------------------------------------- frames of a 2-D image

@pytest.mark.parametrize("image", [np.zeros((64, 64), np.uint16), np.zeros((64, 64, 3), np.uint8)],
                         ids=["grey", "rgb"])
@pytest.mark.parametrize("prompts", [
    {"clicks": [(1, 30, 30, 1, 1)]},
    {"clicks": [(0, 30, 30, 1, 1), (5, 30, 30, 1, 2)]},
    {"boxes": [(3, 10, 10, 40, 40, 1)]},
], ids=["click-frame-1", "second-click-frame-5", "box-frame-3"])
def test_a_prompt_on_another_frame_of_a_2d_image_is_refused_as_the_cli_refuses_it(image, prompts, stop_before_model):
    """X3 #4: these were segmented on frame 0 without a word (a swapped column went unnoticed)."""
    with pytest.raises(ValueError, match=r"row \d: frame \d: the image has one frame, frame 0"):
        segment(image, **prompts)


def test_frame_0_of_a_2d_image_still_works(stop_before_model):
    with pytest.raises(stop_before_model):
        segment(np.zeros((64, 64), np.uint16), clicks=[(0, 30, 30, 1, 1)], boxes=[(0, 10, 10, 40, 40, 2)])


# ---------------------------------------------------------------- files through the CLI

def _prompts(path: Path, rows) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "obj_id", "y", "x", "label"])
        writer.writerows(rows)
    return path


def _resolution(path: Path) -> tuple:
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        x_res = tags["XResolution"].value
        return x_res[0] / x_res[1], (tif.imagej_metadata or {}).get("unit")


@pytest.mark.parametrize("unit, per_unit, pixel_um", [("CENTIMETER", 40000.0, 0.25), ("INCH", 25400 / 0.5, 0.5)])
def test_a_plain_tiffs_resolution_calibrates_the_cli_labels(tmp_path, unit, per_unit, pixel_um):
    """X3 #7: slide scanners, PIL and skimage write X/YResolution per centimetre or inch, no ImageJ metadata; the
    labels were written with (1, 1) px per unit and no unit."""
    image, labels = nuclei()
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, image, resolution=(per_unit, per_unit), resolutionunit=unit)
    x, y = click_point(labels == 1)
    out = tmp_path / "labels.tif"
    assert main(["track", str(path), "--prompts", str(_prompts(tmp_path / "p.csv", [[0, 1, y, x, 1]])), "-o",
                 str(out), "--checkpoint", "embedded", "--device", "cpu"]) == 0
    per_px, written_unit = _resolution(out)
    assert per_px == pytest.approx(1 / pixel_um, rel=1e-4) and written_unit in ("micron", "\u00b5m", "um")


def test_a_screen_resolution_is_not_a_calibration(tmp_path):
    """72 dpi (what image editors write by default) would be 353 um pixels: not read as a microscope's."""
    from napari_sam2.file_calibration import read_calibration

    path = tmp_path / "screen.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.uint16), resolution=(72, 72), resolutionunit="INCH")
    assert read_calibration(path, None, (0, 1)) is None
    tifffile.imwrite(path, np.zeros((64, 64), np.uint16))  # tifffile's default: (1, 1), ResolutionUnit NONE
    assert read_calibration(path, None, (0, 1)) is None


def test_a_line_tiff_is_refused_naming_its_own_shape(tmp_path, capsys):
    """X3 #10: the CLI named "the image (1, 1, 500)", a shape the (1, 500) file does not have."""
    path = tmp_path / "line.tif"
    tifffile.imwrite(path, np.ones((1, 500), np.uint16))
    prompts = _prompts(tmp_path / "p.csv", [[0, 1, 0, 100, 1]])
    code = main(["track", str(path), "--prompts", str(prompts), "-o", str(tmp_path / "l.tif"), "--checkpoint",
                 "embedded", "--device", "cpu"])
    error = capsys.readouterr().err
    assert code != 0 and "(1, 500)" in error and "(1, 1, 500)" not in error
    with pytest.raises(ValueError, match=r"frames of 1 x 500 px.*\(1, 500\)"):
        segment(path, clicks=[(0, 0, 100, 1, 1)])


def test_a_one_dimensional_tiff_is_refused_naming_its_shape(tmp_path, capsys):
    """A (500,) array in a TIFF ended in "IndexError: tuple index out of range" (review of the line-image fix)."""
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, np.ones(500, np.uint16))
    prompts = _prompts(tmp_path / "p.csv", [[0, 1, 0, 100, 1]])
    code = main(["track", str(path), "--prompts", str(prompts), "-o", str(tmp_path / "l.tif"), "--checkpoint",
                 "embedded", "--device", "cpu"])
    error = capsys.readouterr().err
    assert code == 2 and "1-D array (500,)" in error and "Traceback" not in error, error
    with pytest.raises(ValueError, match=r"1-D array \(500,\), not an image"):
        segment(path, clicks=[(0, 0, 100, 1, 1)])


# ---------------------------------------------------------------- ImagePredictor on a large image

@pytest.fixture(scope="module")
def demo_model():
    return sm.build_model("demo", checkpoint="embedded", device="cpu")


def test_image_predictor_points_to_windows_for_a_tiny_mask_on_a_large_image(demo_model):
    """X3 #5: 3000 x 4000 px with 40 px discs gave IoU 0.2 on the whole image and no hint. Here 16 px wide discs
    in 1024 x 1024 px at the demo's 256 px input: 4 input px."""
    size = demo_model.image_size
    side = 4 * size
    image, labels = nuclei((side, side), centres=((300, 300), (700, 640)), radius=8.0)
    predictor = sm.ImagePredictor(demo_model)
    predictor.set_image(image)
    x, y = click_point(labels == 1)
    hint = re.escape(f"WindowedPredictor(model, side=sam2_model.window_side(d, ({side}, {side}), {size}))")
    with pytest.warns(UserWarning, match=hint) as caught:
        predictor.predict(points=[[x, y]], labels=[1])
    assert caught[0].filename == __file__  # points at the caller's predict() line
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per image
        predictor.predict(points=[[x, y]], labels=[1])


def test_image_predictor_is_silent_where_the_image_fits_its_input(demo_model):
    image, labels = nuclei((demo_model.image_size, demo_model.image_size), radius=8.0)
    predictor = sm.ImagePredictor(demo_model)
    predictor.set_image(image)
    x, y = click_point(labels == 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predictor.predict(points=[[x, y]], labels=[1])
