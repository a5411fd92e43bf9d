"""Single images through the command line, batch and track_cells (review s51, after G5's segment() fixes).

* a (Y, X, 3) image of 16-bit data read as RGB colour without a word: ``napari-sam2 track`` (prompts and --auto)
  says so once, as ``napari-sam2: warning: ...`` with its own option names (not Python's UserWarning in segment()'s
  keyword words); batch says it in the stack's note (and its console's line, ``read_as``), in the words its caller
  used; ``track_cells`` warns in the API's words. uint8 colour stays silent everywhere;
* a prompts file row on frame 1 of a 2-D image is refused naming the file and line, as rows beyond a stack's frames;
* one image shows no "propagating" bar (nothing is propagated).

Behaviour runs the embedded demo model on small synthetic images.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2 import track_cells
from napari_sam2.batch_worker import AxisOptions, ModelSpec, StackTask, process_stack
from napari_sam2.cli import main

COLOUR = "is read as RGB colour"  # the start of api.colour_guess's reading, in either words
MODEL_ARGS = ["--checkpoint", "embedded", "--device", "cpu"]


def nuclei(shape=(96, 96), centres=((30, 30), (64, 66)), radius=10.0) -> np.ndarray:
    """A uint16 image of bright discs on a dim background."""
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    inside = np.zeros(shape, bool)
    for cy, cx in centres:
        inside |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
    noise = np.random.default_rng(3).normal(0, 40, shape)
    return np.clip(np.where(inside, 3000.0, 200.0) + noise, 0, 65535).astype(np.uint16)


def three(image: np.ndarray, dtype: type) -> np.ndarray:
    """(Y, X, 3) of ``dtype``: the nuclei in channel 0, noise-free dim planes in the others."""
    if dtype == np.uint8:
        image = (image // 16).astype(np.uint8)
    return np.stack([image, image // 4, image // 8], axis=-1).astype(dtype)


def prompts(path: Path, rows) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["frame", "obj_id", "y", "x", "label", "y1", "x1"])
        writer.writerows(rows)
    return path


def api_colour_warnings(caught) -> list:
    return [w for w in caught if COLOUR in str(w.message)]


# ---------------------------------------------------------------- the colour reading, said once in each route's words

@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
def test_track_says_a_16_bit_colour_reading_once_in_its_own_words(tmp_path, capsys, dtype):
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, three(nuclei(), dtype), photometric="rgb")
    csv_path = prompts(tmp_path / "p.csv", [[0, 1, 30, 30, 1, "", ""]])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["track", str(path), "--prompts", str(csv_path), "-o", str(tmp_path / "l.tif"), *MODEL_ARGS])
    err = capsys.readouterr().err
    assert code == 0, err
    assert not api_colour_warnings(caught)  # never segment()'s words (channel_axis=-1, rgb=True)
    if dtype == np.uint8:
        assert COLOUR not in err
        return
    assert err.count(COLOUR) == 1 and err.count("napari-sam2: warning: the last axis (size 3)") == 1
    said = err[err.index("napari-sam2: warning: the last axis"):]
    assert "(96, 96, 3)" in said and "(1, 96, 96, 3)" not in said  # the file's shape, not the one-frame stack's
    assert "--channel-axis -1" in said and "--channel 0" not in said and "--rgb yes" in said
    assert "rgb=True" not in said and "channel_axis=" not in said


@pytest.mark.parametrize("choice", [["--rgb", "yes"], ["--channel-axis", "-1", "--channel", "0"]])
def test_either_choice_the_warning_names_silences_it(tmp_path, capsys, choice):
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, three(nuclei(), np.uint16), photometric="rgb")
    csv_path = prompts(tmp_path / "p.csv", [[0, 1, 30, 30, 1, "", ""]])
    code = main(["track", str(path), "--prompts", str(csv_path), "-o", str(tmp_path / "l.tif"), *choice, *MODEL_ARGS])
    err = capsys.readouterr().err
    assert code == 0 and COLOUR not in err, err


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
def test_track_auto_says_a_16_bit_colour_reading_once(tmp_path, capsys, dtype):
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, three(nuclei(), dtype), photometric="rgb")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["track", str(path), "--auto", "--table", str(tmp_path / "t.csv"), "--cell-diameter", "12", "30",
                     *MODEL_ARGS])
    err = capsys.readouterr().err
    assert code == 0, err
    assert not api_colour_warnings(caught)
    if dtype == np.uint8:
        assert COLOUR not in err
    else:
        assert err.count(COLOUR) == 1 and "napari-sam2: warning: the last axis (size 3)" in err
        assert "--rgb yes" in err and "(96, 96, 3)" in err


@pytest.mark.parametrize("names, option", [("cli", "--rgb yes"), ("api", "rgb=True")])
def test_batch_notes_a_16_bit_colour_reading_in_its_callers_words(tmp_path, names, option):
    frames = np.stack([three(nuclei(), np.uint16)] * 2)  # (T, Y, X, 3): batch runs stacks
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, frames, photometric="rgb")
    csv_path = prompts(tmp_path / "cells_prompts.csv", [[0, 1, 30, 30, 1, "", ""]])
    out = tmp_path / "out"
    model = ModelSpec("demo", "embedded", "cpu", 256)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        row = process_stack(StackTask("cells", str(path), str(out), model, prompts=str(csv_path),
                                      axes=AxisOptions(names=names)))
    assert row["status"] == "ok", row["error"]
    assert not api_colour_warnings(caught)
    manifest = json.loads((out / "cells" / "manifest.json").read_text())
    for said in (row["note"], row["read_as"], manifest.get("note", ""), manifest.get("read_as", "")):
        assert said.count(COLOUR) == 1 and option in said and "(2, 96, 96, 3)" in said
    other = "rgb=True" if names == "cli" else "--rgb yes"
    assert other not in row["note"]
    tifffile.imwrite(path, np.stack([three(nuclei(), np.uint8)] * 2), photometric="rgb")
    row = process_stack(StackTask("grey", str(path), str(out), model, prompts=str(csv_path),
                                  axes=AxisOptions(names=names)))
    assert row["status"] == "ok", row["error"]
    assert COLOUR not in row["note"] and COLOUR not in row["read_as"]


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
def test_track_cells_warns_a_16_bit_colour_reading_in_the_apis_words(dtype):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = track_cells(three(nuclei(), dtype), model="demo", checkpoint="embedded", device="cpu",
                             cell_diameter=(12, 30))
    assert result.labels.shape == (96, 96)
    said = api_colour_warnings(caught)
    if dtype == np.uint8:
        assert not said
        return
    assert len(said) == 1 and said[0].filename == __file__  # the caller's line
    message = str(said[0].message)
    assert "channel_axis=-1" in message and "rgb=True" in message and "--rgb" not in message


# ---------------------------------------------------------------- prompts beyond a 2-D image's one frame

@pytest.mark.parametrize("row, line", [([1, 1, 30, 30, 1, "", ""], 3), ([2, 2, 20, 20, "", 40, 40], 3)])
def test_a_prompt_row_on_another_frame_of_a_2d_image_is_refused_naming_the_line(tmp_path, capsys, row, line):
    """A 2-D .npy is read as (Y, X) (frame_axis None): its prompts were all taken as frame 0 without a word."""
    path = tmp_path / "cells.npy"
    np.save(path, nuclei())
    csv_path = prompts(tmp_path / "p.csv", [[0, 1, 30, 30, 1, "", ""], row])
    out = tmp_path / "l.tif"
    code = main(["track", str(path), "--prompts", str(csv_path), "-o", str(out), *MODEL_ARGS])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert f"{csv_path}, line {line}: frame {row[0]}: the image has one frame, frame 0" in err


# ---------------------------------------------------------------- no propagation bar for one image

def test_one_image_shows_no_propagation_bar_and_a_stack_does(tmp_path, capsys):
    csv_path = prompts(tmp_path / "p.csv", [[0, 1, 30, 30, 1, "", ""]])
    for name, data in (("one.tif", nuclei()), ("one.npy", nuclei()), ("two.tif", np.stack([nuclei()] * 2))):
        path = tmp_path / name
        np.save(path, data) if name.endswith(".npy") else tifffile.imwrite(path, data)
        code = main(["track", str(path), "--prompts", str(csv_path), "-o", str(tmp_path / f"{name}.l.tif"),
                     *MODEL_ARGS])
        err = capsys.readouterr().err
        assert code == 0, err
        assert ("propagating" in err) == (name == "two.tif"), (name, err)
