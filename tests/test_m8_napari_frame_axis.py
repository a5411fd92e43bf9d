"""napari's clicks CSV of a (T, Y, X) layer (axis-0 read as the frame) for a stack whose frames are not its axis 0.

``napari-sam2 track`` refused it (tests/test_m2_prompt_and_evaluate_mends.py); a batch run and ``segment(clicks=
table, frame_axis=2)`` took it silently before, reading the layer's y as the frame. Both now refuse it in the same
words, naming the columns to rename, before any model work.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2.batch_worker import AxisOptions, ModelSpec, StackTask, process_stack

NAPARI = "index,axis-0,axis-1,axis-2,positive,obj_id\n0,2,12,1,1,1\n"  # (y, x, t) = (2, 12, 1) of a (Y, X, T) layer
MODEL = ModelSpec("demo", "embedded", "cpu", 64)


def _yxt(path: Path, **kwargs) -> Path:
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8), **kwargs)  # (Y, X, T)
    return path


@pytest.mark.parametrize("names, why", [("cli", "--axis 2"), ("api", "frame_axis=2")])
def test_batch_refuses_napari_s_csv_when_the_frames_are_not_axis_0(tmp_path, names, why):
    stack = _yxt(tmp_path / "yxt.tif", photometric="minisblack")
    (tmp_path / "clicks.csv").write_text(NAPARI)
    out = tmp_path / "out"
    row = process_stack(StackTask("yxt", str(stack), str(out), MODEL, prompts=str(tmp_path / "clicks.csv"),
                                  axes=AxisOptions(frame_axis=2, names=names)))
    assert row["status"] == "failed", row  # before: "ok", the row tracked from frame 2
    assert f"reads axis-0 as the frame, but the stack's frames lie along its axis 2 ({why})" in row["error"], row
    assert "axis-2 -> frame, axis-0 -> y, axis-1 -> x" in row["error"], row
    assert not (out / "yxt").exists()


def test_batch_names_a_yxt_tiff_s_axes(tmp_path):
    stack = _yxt(tmp_path / "tagged.tif", metadata={"axes": "YXT"})  # frames last as the TIFF's axes say
    (tmp_path / "clicks.csv").write_text(NAPARI)
    row = process_stack(StackTask("tagged", str(stack), str(tmp_path / "out"), MODEL,
                                  prompts=str(tmp_path / "clicks.csv"), axes=AxisOptions(names="cli")))
    assert row["status"] == "failed", row
    assert "frames lie along its axis 2 (as the TIFF's axes say)" in row["error"], row


def test_batch_still_reads_napari_s_csv_with_the_frames_on_axis_0(tmp_path):
    stack = tmp_path / "tyx.tif"
    tifffile.imwrite(stack, np.random.default_rng(0).integers(0, 255, (3, 24, 32), np.uint8), photometric="minisblack")
    (tmp_path / "clicks.csv").write_text(NAPARI)
    row = process_stack(StackTask("tyx", str(stack), str(tmp_path / "out"), MODEL,
                                  prompts=str(tmp_path / "clicks.csv"), axes=AxisOptions(names="cli")))
    assert row["status"] == "ok", row["error"]


def test_segment_refuses_napari_s_table_when_the_frames_are_not_axis_0():
    pd = pytest.importorskip("pandas")
    from napari_sam2 import segment

    table = pd.DataFrame({"index": [0], "axis-0": [2.0], "axis-1": [12.0], "axis-2": [1.0], "positive": [1.0],
                          "obj_id": [1.0]})
    stack = np.random.default_rng(0).integers(0, 255, (24, 32, 3), np.uint8)  # (Y, X, T)
    with pytest.raises(ValueError, match=r"^clicks: napari's CSV of a Points layer reads axis-0 as the frame, but the "
                                         r"stack's frames lie along its axis 2 \(frame_axis=2\): rename .*axis-2 -> "
                                         r"frame, axis-0 -> y, axis-1 -> x"):
        segment(stack, clicks=table, frame_axis=2, model="demo", checkpoint="embedded", device="cpu", image_size=64)
    renamed = table.rename(columns={"axis-2": "frame", "axis-0": "y", "axis-1": "x"})  # as the words say
    labels = segment(stack, clicks=renamed, frame_axis=2, model="demo", checkpoint="embedded", device="cpu",
                     image_size=64)
    assert labels.shape == stack.shape


def test_the_table_check_leaves_other_tables_alone():
    pd = pytest.importorskip("pandas")
    from napari_sam2.prompts_csv import check_napari_table_frame_axis

    napari = pd.DataFrame({"axis-0": [1], "axis-1": [2], "axis-2": [3], "positive": [1], "obj_id": [1]})
    check_napari_table_frame_axis(napari, 0)  # frames on axis 0: napari's axis-0 is the frame
    check_napari_table_frame_axis(napari, None)  # a 2-D image
    check_napari_table_frame_axis(pd.DataFrame({"frame": [1], "obj_id": [1], "y": [2], "x": [3]}), 2)  # our columns
    check_napari_table_frame_axis(pd.DataFrame({"axis-0": [1], "axis-1": [2], "obj_id": [1]}), 2)  # a 2-D layer's
    with pytest.raises(ValueError, match=r"^boxes: napari's CSV of a Shapes layer .* \(--axis 2\)"):
        check_napari_table_frame_axis(napari.assign(**{"shape-type": "rectangle"}), 2, "--axis 2", "boxes")
