"""The README's main job (``python -m sam2_model.demo``) on the embedded model, shortened."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tifffile

from sam2_model.demo import main


def test_demo_tracks_the_cells_and_writes_its_files(tmp_path, capsys):
    assert main(["--frames", "6", "--out", str(tmp_path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "embedded weights" in out
    iou = float(re.search(r"mean IoU ([0-9.]+)", out).group(1))
    jf = float(re.search(r"J&F ([0-9.]+)", out).group(1))
    assert iou > 0.8 and jf > 0.7
    labels, truth = tifffile.imread(tmp_path / "labels.tif"), tifffile.imread(tmp_path / "ground_truth.tif")
    assert labels.shape == truth.shape == tifffile.imread(tmp_path / "stack.tif").shape == (6, 256, 256)
    assert len(np.unique(labels[5])) > 5


def test_demo_without_a_cached_official_checkpoint_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(tmp_path / "empty"))
    with pytest.raises(SystemExit) as exit_:
        main(["--model", "sam2.1_hiera_tiny", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert "--checkpoint download" in capsys.readouterr().err


def test_demo_and_evaluation_do_not_import_the_training_code():
    import subprocess
    import sys

    code = ("import sys, sam2_model.demo, sam2_model.evaluation; "
            "print(sorted(m for m in sys.modules if m.startswith('sam2_model.train')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_training_preview_draws_the_tracked_sequence(tmp_path):
    from PIL import Image

    from sam2_model import build_model
    from sam2_model.train.preview import preview

    line = preview(build_model("demo", checkpoint="embedded", device="cpu"), tmp_path / "p.png", num_frames=3)
    jf = float(re.search(r"J&F over 2 tracked frames: ([0-9.]+)", line).group(1))
    assert jf > 0.7
    picture = np.asarray(Image.open(tmp_path / "p.png"))
    assert picture.shape == (3 * 256, 3 * 256, 3)  # a row per frame: image, truth, prediction
    assert not np.array_equal(picture[:, :256], picture[:, 512:])  # the prediction is drawn over the image
