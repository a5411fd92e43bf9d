"""Small leftovers of review s52 (F4).

* a TIFF whose own tags say it is colour (photometric RGB, 3 or 4 samples per pixel) is colour by the file's word:
  segment() no longer warns that its 16-bit or float "colour" may be channels; a 16-bit array, or a TIFF of 3
  "min-is-black" samples, still warns (that warning caught IoU 0.01 silently);
* the command line's labels TIFF of a one-frame (1, Y, X) stack: an ImageJ hyperstack, which records no axis of
  length 1 (read back as (Y, X); the same pixels), against (T, Y, X) for a longer stack;
* sam2-train on a finished run says "nothing to do" alone, without the warm-up warning of a run it does not train.

Behaviour runs the embedded demo model on small synthetic images.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_sam2.api as api
from napari_sam2 import segment
from napari_sam2.file_calibration import tiff_says_colour
import test_image_routes_s51 as routes

stop_before_model = routes.stop_before_model  # the fixture: input checks only, the run stops before the model
COLOUR = "is read as RGB"  # the start of api.colour_guess's reading ("RGB colour", "RGBA colour")


def _colour_warnings(caught) -> list:
    return [w for w in caught if COLOUR in str(w.message)]


# ---------------------------------------------------------------- a TIFF's own word on colour

@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("shape", [(64, 64, 3), (2, 64, 64, 3), (64, 64, 4)])
def test_a_tiff_whose_tags_say_rgb_is_colour_without_a_warning(tmp_path, stop_before_model, dtype, shape):
    """A 16-bit or float RGB(A) TIFF of a camera or scanner (photometric RGB: tifffile's axes end in "S") warned that
    its colour might be channels, as a bare array does; the file says what it is, so it is read as colour silently."""
    path = tmp_path / "photo.tif"
    tifffile.imwrite(path, np.zeros(shape, dtype), photometric="rgb", software="a slide scanner 2.1")
    assert tiff_says_colour(path) and tiff_says_colour(str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(stop_before_model):
            segment(path, clicks=[(0, 30, 30, 1, 1)])
    assert not _colour_warnings(caught), [str(w.message) for w in caught]


def test_tifffiles_rgb_guess_from_the_shape_still_warns(tmp_path, stop_before_model):
    """tifffile tags any (Y, X, 3) array RGB unless told otherwise (its Software tag says it wrote the file): three
    fluorescence channels saved with a plain ``tifffile.imwrite`` are not colour by anyone's word, so they warn."""
    path = tmp_path / "three_channels.tif"
    tifffile.imwrite(path, np.zeros((64, 64, 3), np.uint16))
    with tifffile.TiffFile(path) as tif:
        assert int(tif.pages[0].photometric) == 2  # RGB, from the shape alone
    assert not tiff_says_colour(path)
    bare = tmp_path / "no_software_tag.tif"  # a writer that names no software (review): no one's word either
    tifffile.imwrite(bare, np.zeros((64, 64, 3), np.uint16), software=False)
    assert not tiff_says_colour(bare)
    camera = tmp_path / "camera.tif"
    tifffile.imwrite(camera, np.zeros((64, 64, 3), np.uint16), software=False, extratags=[(271, "s", 0, "Leica", True)])
    assert tiff_says_colour(camera)
    with pytest.warns(UserWarning, match="read as RGB colour"):
        with pytest.raises(stop_before_model):
            segment(path, clicks=[(0, 30, 30, 1, 1)])


def test_channels_that_the_file_does_not_call_rgb_still_warn(tmp_path, stop_before_model):
    """Three "min-is-black" samples (channels, tifffile's axes "YXS" too) and a bare 16-bit array: the warning stays
    (read as colour, nuclei in channel 0 gave IoU 0.01 without a word)."""
    path = tmp_path / "channels.tif"
    tifffile.imwrite(path, np.zeros((64, 64, 3), np.uint16), photometric="minisblack", planarconfig="contig")
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "YXS"  # the same letters as an RGB file's: only the photometric tag differs
    assert not tiff_says_colour(path)
    for image in (path, np.zeros((64, 64, 3), np.uint16)):
        with pytest.warns(UserWarning, match="read as RGB colour"):
            with pytest.raises(stop_before_model):
                segment(image, clicks=[(0, 30, 30, 1, 1)])


def test_tiff_says_colour_is_false_for_anything_but_an_rgb_tiff(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((8, 8, 3), np.uint16))
    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    tifffile.imwrite(tmp_path / "grey.tif", np.zeros((3, 16, 16), np.uint16), photometric="minisblack")
    for source in (None, np.zeros((8, 8, 3)), tmp_path / "a.npy", tmp_path / "broken.tif", tmp_path / "missing.tif",
                   tmp_path / "grey.tif", tmp_path):
        assert not tiff_says_colour(source), source
    decided = api.resolve_axes((64, 64, 3), names=api.CLI_NAMES)
    assert api.colour_guess((64, 64, 3), np.uint16, None, decided, api.CLI_NAMES, source=tmp_path / "grey.tif")
    assert api.colour_guess((64, 64, 3), np.uint16, None, decided, api.CLI_NAMES) is not None


def test_a_float_photograph_in_0_1_still_warns(stop_before_model):
    """skimage.img_as_float of a uint8 photograph: its values in [0, 1] cannot tell colour from channels scaled to
    [0, 1], so it warns as other float data (decided in s52: rgb=True silences it; see colour_guess)."""
    photo = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8) / 255.0
    with pytest.warns(UserWarning, match="read as RGB colour"):
        with pytest.raises(stop_before_model):
            segment(photo, clicks=[(0, 30, 30, 1, 1)])


# ---------------------------------------------------------------- the CLI's labels of a one-frame stack

def test_the_labels_tiff_of_a_one_frame_stack_is_a_one_image_hyperstack(tmp_path, capsys):
    """(1, Y, X) in: the labels TIFF is an ImageJ hyperstack of one image, which records no axis of length 1, so
    tifffile (and Fiji) read it back as (Y, X), the same pixels (squeeze=False: ImageJ's 6-D (1, 1, 1, Y, X, 1));
    (T, Y, X) in: (T, Y, X) back. Documented as the reason the file cannot keep (1, Y, X)."""
    from napari_sam2.cli import main
    from test_cli_single_image import MODEL_ARGS, nuclei, prompts

    csv_path = prompts(tmp_path / "p.csv", [[0, 1, 30, 30, 1, "", ""]])
    shapes = {}
    for name, stack in (("one", nuclei()[None]), ("three", np.stack([nuclei()] * 3))):
        path, out = tmp_path / f"{name}.tif", tmp_path / f"{name}.labels.tif"
        tifffile.imwrite(path, stack, photometric="minisblack")
        assert tifffile.imread(path).shape == stack.shape
        assert main(["track", str(path), "--prompts", str(csv_path), "-o", str(out), *MODEL_ARGS]) == 0, \
            capsys.readouterr().err
        with tifffile.TiffFile(out) as tif:
            assert tif.is_imagej
            shapes[name] = (tif.series[0].shape, tifffile.imread(out, squeeze=False).shape)
        assert np.count_nonzero(tifffile.imread(out)) > 0
    assert shapes == {"one": ((96, 96), (1, 1, 1, 96, 96, 1)), "three": ((3, 96, 96), (3, 1, 1, 96, 96, 1))}


# ---------------------------------------------------------------- sam2-train: "nothing to do" alone

def test_nothing_to_do_comes_without_the_warm_up_warning(tmp_path, capsys):
    """A finished run of 2 steps with a warm-up of 3 (its learning rate never reached lr: warned when it ran). The
    same command again trains nothing: it said the warm-up warning first, then "nothing to do"; now only the
    latter. A run that will train still gets the warning (more steps, still under the warm-up)."""
    from sam2_model.train.__main__ import main as train_main

    run = tmp_path / "run"
    command = ["--out", str(run), "--image-size", "64", "--clip-len", "2", "--clips-per-step", "1",
               "--max-objects", "2", "--warmup-steps", "3", "--lr", "1e-4"]
    assert train_main(command + ["--steps", "2"]) == 0
    assert "warning: the learning rate rises over 3 steps" in capsys.readouterr().err
    assert train_main(command + ["--steps", "2"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"nothing to do: {run} holds a finished run of 2 steps") and "warning" not in err, err
    assert train_main(command + ["--steps", "1"]) == 0  # fewer steps than done: nothing to do either
    err = capsys.readouterr().err
    assert err.startswith("nothing to do: ") and "warning" not in err, err
    assert train_main(command + ["--steps", "3"]) == 0  # more steps: the run goes on (3 reach the warm-up's end)
    err = capsys.readouterr().err
    assert "nothing to do" not in err and "warning" not in err, err


def test_finished_run_words_reads_the_run_without_training(tmp_path):
    from sam2_model.train.__main__ import parse_args
    from sam2_model.train.loop import finished_run_words

    settings = parse_args(["--out", str(tmp_path / "none"), "--steps", "2"])
    assert finished_run_words(settings) is None  # no run there
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "last.pt").write_bytes(b"not a checkpoint")
    assert finished_run_words(parse_args(["--out", str(tmp_path / "broken"), "--steps", "2"])) is None
    assert Path(tmp_path / "broken" / "last.pt").read_bytes() == b"not a checkpoint"
