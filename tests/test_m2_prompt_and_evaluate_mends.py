"""Mends of reviewer R1's findings on napari's CSV of the widget's clicks and on evaluate (M2, session s55).

- napari's CSV whose axis columns were renamed to frame, y, x (as the 4-D refusal advises) kept its ``positive``
  column, which our own columns ignored: negative clicks were read as positive, silently.
- napari's CSV of a (T, Y, X) layer given to ``track`` with the stack's frames on another axis (``--axis 2``) read
  axis-0 as the frame anyway.
- evaluate refused masks written as (1, Y, X) TIFFs (``tifffile.imwrite(p, a[None])``) as a crop; they scored
  DET 1.0 before the frame-size check.
- an RGB ``overlay000.tif`` beside the masks was blamed as a crop (and py-ctcmetrics reads every .tif as a mask).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2.prompts_csv import prompts_from_table, read_prompts


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_renamed_napari_csv_reads_positive_as_the_label(tmp_path):
    pd = pytest.importorskip("pandas")
    text = "index,frame,axis-1,y,x,positive,obj_id\n0,0.0,5.0,40.5,30.0,1.0,1.0\n1,0.0,5.0,42.0,33.0,0.0,1.0\n"
    path = _write(tmp_path / "renamed.csv", text)
    want = [(0, 40.5, 30.0, 1, 1), (0, 42.0, 33.0, 0, 1)]  # before: both read as label 1
    assert read_prompts(path) == (want, [])
    assert prompts_from_table(pd.read_csv(path)) == (want, [])
    assert prompts_from_table(pd.read_csv(path).astype({"positive": bool})) == (want, [])
    # a label column wins over positive
    both = _write(tmp_path / "both.csv", "frame,y,x,label,positive,obj_id\n0,4,5,1,0,2\n")
    assert read_prompts(both) == ([(0, 4.0, 5.0, 1, 2)], [])
    bad = _write(tmp_path / "bad.csv", "frame,y,x,positive,obj_id\n0,4,5,maybe,2\n")
    with pytest.raises(ValueError, match=r"line 2: positive must be 1 / True .* got 'maybe' \(positive read as the "
                                         r"label\)"):
        read_prompts(bad)


def test_the_4d_refusal_says_positive_is_read_as_the_label(tmp_path):
    four = _write(tmp_path / "four.csv", "index,axis-0,axis-1,axis-2,axis-3,positive,obj_id\n0,0,5,40,30,1,1\n")
    with pytest.raises(ValueError, match=r"axis-3 -> x.*positive is read as the label .* where there is no label "
                                         r"column, other columns are ignored"):
        read_prompts(four)


def test_track_refuses_napari_s_csv_when_the_frames_are_not_axis_0(tmp_path, capsys):
    from napari_sam2.cli import main

    stack = tmp_path / "yxt.tif"
    tifffile.imwrite(stack, np.zeros((24, 32, 3), np.uint8), photometric="minisblack")  # (Y, X, T)
    clicks = _write(tmp_path / "clicks.csv", "index,axis-0,axis-1,axis-2,positive,obj_id\n0,2,12,1,1,1\n")
    # (y, x, t) = (2, 12, 1): before, read as frame 2, y 12, x 1 and tracked without a word
    out = tmp_path / "labels.tif"
    code = main(["track", str(stack), "--axis", "2", "--prompts", str(clicks), "-o", str(out), "--model", "demo",
                 "--checkpoint", "embedded", "--image-size", "64"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "reads axis-0 as the frame, but the stack's frames lie along its axis 2 (--axis 2)" in err, err
    assert "axis-2 -> frame, axis-0 -> y, axis-1 -> x" in err, err
    assert not out.exists()
    tagged = tmp_path / "tagged.tif"  # frames last as the TIFF's axes say, without --axis
    tifffile.imwrite(tagged, np.zeros((24, 32, 3), np.uint8), metadata={"axes": "YXT"})
    assert main(["track", str(tagged), "--prompts", str(clicks), "-o", str(out), "--model", "demo", "--checkpoint",
                 "embedded", "--image-size", "64"]) == 2
    assert "frames lie along its axis 2 (as the TIFF's axes say)" in capsys.readouterr().err
    assert not out.exists()


def _ctc(base: Path, write_mask) -> Path:
    """A 3-frame CTC ground truth of two cells under base/GT and a result under base/RES written by
    ``write_mask(path, frame)``; returns RES."""
    gt, res = base / "GT" / "TRA", base / "RES"
    gt.mkdir(parents=True)
    res.mkdir()
    for t in range(3):
        frame = np.zeros((40, 50), np.uint16)
        frame[5 + t:15 + t, 5:15] = 1
        frame[20:30, 20:30] = 2
        tifffile.imwrite(gt / f"man_track{t:03d}.tif", frame)
        write_mask(res / f"mask{t:03d}.tif", frame)
    (gt / "man_track.txt").write_text("1 0 2 0\n2 0 2 0\n")
    (res / "res_track.txt").write_text("1 0 2 0\n2 0 2 0\n")
    return res


def test_evaluate_scores_masks_written_with_a_leading_axis_of_one(tmp_path):
    from sam2_model.tracking import evaluate_ctc

    res = _ctc(tmp_path, lambda path, frame: tifffile.imwrite(path, frame[None]))  # (1, 40, 50) pages
    scores = evaluate_ctc(res, tmp_path / "GT", metrics=["DET", "TRA"])  # before: "result frames are 1 x 40 x 50"
    assert scores["DET"] == 1.0 and scores["TRA"] == 1.0


def test_evaluate_names_a_tif_in_the_result_folder_that_is_not_a_mask(tmp_path):
    from sam2_model.tracking import evaluate_ctc

    res = _ctc(tmp_path, lambda path, frame: tifffile.imwrite(path, frame))
    tifffile.imwrite(res / "overlay000.tif", np.zeros((40, 50, 3), np.uint8))
    with pytest.raises(ValueError, match=r"holds overlay000.tif, not named as a mask \(mask%03d.tif\): py-ctcmetrics "
                                         r"reads every .tif file there"):
        evaluate_ctc(res, tmp_path / "GT", metrics=["DET"])  # before: "result frames are 40 x 50 x 3, ..." (a crop)
    (res / "overlay000.tif").unlink()
    assert evaluate_ctc(res, tmp_path / "GT", metrics=["DET"])["DET"] == 1.0
