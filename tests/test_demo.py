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
