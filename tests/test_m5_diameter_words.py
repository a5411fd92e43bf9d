"""The blob search's minimum cell diameter in each caller's words (M5, review R3).

``napari-sam2 batch DIR --auto --cell-diameter 1 1.5`` said "cell_diameter must satisfy 2 <= min <= max (pixels), got
(1.0, 1.5)" (the Python keyword, a tuple, no hint) where ``track`` says "--cell-diameter MIN MAX: ..."; both commands
now say it in the command's words from one place (``_cli_auto.check_blob_minimum``); ``batch(auto=True)`` keeps the
keyword's, with the grid hint. ``_cli_auto.MIN_BLOB_DIAMETER`` repeats the blob search's own minimum (parsing needs
no torch): the two are checked to agree by calling the blob search.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2 import cli
from napari_sam2._cli_auto import MIN_BLOB_DIAMETER
from napari_sam2.batch import batch
from sam2_model.seeding import blob_points

CLI_WORDS = ("--cell-diameter MIN MAX: --seeding blobs looks for blobs of at least 2 px across, 2 <= MIN <= MAX; got "
             "1 1.5 (--seeding grid takes smaller cells)")


def stacks(folder: Path) -> Path:
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", np.zeros((3, 32, 32), np.float32), photometric="minisblack")
    return folder


def test_batch_command_says_the_minimum_in_the_command_s_words(tmp_path, capsys):
    """Before: "napari-sam2 batch: cell_diameter must satisfy 2 <= min <= max (pixels), got (1.0, 1.5)"."""
    code = cli.main(["batch", str(stacks(tmp_path / "in")), "--out", str(tmp_path / "out"), "--auto",
                     "--cell-diameter", "1", "1.5"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"napari-sam2 batch: {CLI_WORDS}" in err and "cell_diameter" not in err
    assert not (tmp_path / "out").exists()


def test_track_and_batch_commands_say_it_alike(tmp_path, capsys):
    folder = stacks(tmp_path / "in")
    cli.main(["track", str(folder / "a.tif"), "--auto", "--cell-diameter", "1", "1.5", "--table",
              str(tmp_path / "t.csv")])
    assert CLI_WORDS in capsys.readouterr().err


def test_batch_api_keeps_the_keyword_s_words_with_the_grid_hint(tmp_path):
    with pytest.raises(ValueError, match=r"^cell_diameter must satisfy 2 <= min <= max \(pixels\), got \(1, 1\.5\) "
                                         r"\(seeding='grid' takes smaller cells\)$"):
        batch(stacks(tmp_path / "in"), tmp_path / "out", auto=True, client=object(), progress=False,
              cell_diameter=(1, 1.5))
    assert not (tmp_path / "out").exists()


def test_the_command_s_minimum_is_the_blob_search_s():
    """_cli_auto.MIN_BLOB_DIAMETER against sam2_model.seeding's own check (read by calling it): the minimum itself is
    taken, the next smaller number refused."""
    frame = np.zeros((16, 16), np.float32)
    blob_points(frame, cell_diameter=(MIN_BLOB_DIAMETER, MIN_BLOB_DIAMETER))
    with pytest.raises(ValueError, match="min <= max"):
        blob_points(frame, cell_diameter=(float(np.nextafter(MIN_BLOB_DIAMETER, 0)), MIN_BLOB_DIAMETER))
