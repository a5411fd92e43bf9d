"""One writer per file kind: the tracks table with extra columns, the automatic-tracking labels with axis letters, and
one reader of a run folder's warm-up for the command line and the fine-tuning widget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from napari_sam2.track_export import AutoOutputs, write_auto_outputs
from sam2_model.tracking import Lineage, Track, write_track_table
from sam2_model.train.__main__ import parse_args
from sam2_model.train.loop import run_warmup


def two_tracks() -> Lineage:
    return Lineage([Track(1, 0, 2, 0, "divided"), Track(2, 3, 5, 1, "end of stack")])


def test_the_tracks_table_takes_extra_columns_after_its_own(tmp_path: Path) -> None:
    length = (("length", "note"), lambda t: (t.end - t.begin + 1, "x"))
    path = write_track_table(tmp_path / "t.csv", two_tracks(), length)
    assert path.read_text().splitlines() == ["track_id,begin,end,parent_id,end_reason,length,note",
                                             "1,0,2,0,divided,3,x", "2,3,5,1,end of stack,3,x"]


def test_extra_columns_with_the_wrong_number_of_values_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"extra columns \['length'\] got 2 values for track 1"):
        write_track_table(tmp_path / "t.csv", two_tracks(), (("length",), lambda t: (1, 2)))
    assert list(tmp_path.iterdir()) == []


def test_the_automatic_outputs_labels_record_the_axes_given(tmp_path: Path) -> None:
    """``track --auto -o`` of a volume's slices: the default labels writer records "ZYX", not the default "TYX"."""
    labels = np.zeros((3, 16, 16), np.uint32)
    labels[:, 4:9, 4:9] = 1
    write_auto_outputs(labels, Lineage([Track(1, 0, 2)]), AutoOutputs(labels=tmp_path / "l.tif"), labels_axes="ZYX")
    with tifffile.TiffFile(tmp_path / "l.tif") as tif:
        assert tif.series[0].axes == "ZYX"


def test_a_run_folders_warmup_comes_from_weights_json_else_last_pt(tmp_path: Path) -> None:
    """last.pt's settings first (read without torch, as a run's resume file: its step, model and settings: the run
    train() resumes); weights.json's where last.pt records none; no last.pt, or no warm-up recorded: None."""
    run = tmp_path / "run"
    run.mkdir()
    assert run_warmup(run) is None
    (run / "weights.json").write_text(json.dumps({"settings": {"warmup_steps": 25}}))
    assert run_warmup(run) is None  # weights but no run to resume
    torch.save({"step": 1, "model": {"w": torch.zeros(4)}, "settings": {"warmup_steps": 7}}, run / "last.pt")
    assert run_warmup(run) == 7  # the run train() resumes, not older weights' (before: 25)
    torch.save({"step": 1, "model": {"w": torch.zeros(4)}, "settings": {}}, run / "last.pt")
    assert run_warmup(run) == 25  # last.pt records none: weights.json's
    torch.save({"step": 1, "model": {"w": torch.zeros(4)}, "settings": {"warmup_steps": 7}}, run / "last.pt")
    (run / "weights.json").unlink()
    assert run_warmup(run) == 7
    (run / "weights.json").write_text("{not json")
    assert run_warmup(run) == 7
    torch.save({"step": 1, "model": {}, "settings": {}}, run / "last.pt")
    assert run_warmup(run) is None
    (run / "last.pt").write_bytes(b"")  # not a checkpoint: train() says so; the warm-up is the default's
    assert run_warmup(run) is None


def test_the_command_resumes_a_run_without_weights_json_with_its_own_warmup(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"step": 1, "model": {"w": torch.zeros(4)}, "settings": {"warmup_steps": 3}}, run / "last.pt")
    assert parse_args(["--out", str(run), "--steps", "300"]).warmup_steps == 3
