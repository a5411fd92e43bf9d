"""The command line and the scripting API on a real stack with a real (random-weight) model."""

from __future__ import annotations

import numpy as np
import tifffile
import torch

from napari_sam2 import segment
from napari_sam2.cli import main

CLICKS = [(0, 20, 15, 1, 1), (0, 45, 40, 1, 2), (0, 5, 5, 0, 2)]
BOX = (2, 10, 5, 30, 25, 3)


def stack() -> np.ndarray:
    yy, xx = np.mgrid[:64, :64]
    frames = [600 + 9000 * np.exp(-((yy - 20) ** 2 + (xx - 15 - t) ** 2) / 40.0) for t in range(4)]
    return np.stack(frames).astype(np.uint16)


def test_cli_track_writes_the_same_labels_as_the_api(tmp_path, capsys):
    data = stack()
    tifffile.imwrite(tmp_path / "stack.tif", data, photometric="minisblack")
    rows = ["frame,obj_id,y,x,label,y1,x1"] + [f"{f},{o},{y},{x},{lab},," for f, y, x, lab, o in CLICKS]
    rows.append(f"{BOX[0]},{BOX[5]},{BOX[1]},{BOX[2]},,{BOX[3]},{BOX[4]}")
    (tmp_path / "prompts.csv").write_text("\n".join(rows) + "\n")
    torch.manual_seed(6)
    code = main(["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "prompts.csv"), "-o",
                 str(tmp_path / "labels.tif"), "--checkpoint", "none", "--image-size", "128", "--device", "cpu"])
    assert code == 0
    written = tifffile.imread(tmp_path / "labels.tif")
    torch.manual_seed(6)
    seen = []
    expected = segment(data, CLICKS, [BOX], checkpoint=None, image_size=128, device="cpu",
                       progress=lambda done, total: seen.append((done, total)))
    assert written.shape == data.shape
    np.testing.assert_array_equal(written, expected)
    assert seen[-1] == (4, 4)  # forward from frame 0 (nothing lies before it)
    # Seed 6 gives random weights under which all three objects get pixels somewhere.
    assert set(np.unique(expected)) == {0, 1, 2, 3}


def test_cli_reports_bad_prompt_files(tmp_path, capsys):
    tifffile.imwrite(tmp_path / "stack.tif", stack(), photometric="minisblack")
    (tmp_path / "prompts.csv").write_text("t,id\n1,2\n")
    code = main(["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "prompts.csv"), "-o",
                 str(tmp_path / "out.tif"), "--checkpoint", "none"])
    assert code == 2 and "header must name at least frame,obj_id,y,x" in capsys.readouterr().err
    assert not (tmp_path / "out.tif").exists()
