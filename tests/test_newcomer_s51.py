"""A newcomer on real data (s51, X5): the too-many-candidates advice names numbers to try and prints without a stray
source line of ours; ``napari-sam2 evaluate`` says which measures matter and what they are; the refusal to correct a
divided track points to the false-division recipe."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

import sam2_model as sm
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import detection

ROOT = Path(__file__).resolve().parents[1]


def _movie(num_frames: int = 2) -> np.ndarray:
    """A small synthetic (T, 64, 64) uint16 nuclei movie."""
    return make_timelapse(num_frames=num_frames, shape=(64, 64), num_cells=3, seed=900_719, divisions=False).image


# --- the detector's advice --------------------------------------------------------------------------------------

def test_the_advice_suggests_a_range_to_try():
    """X5: "1301 candidate cells (blobs 8-30 px wide) ... set their diameter range" named no numbers; the range that
    works on MSC (40 160) was only in docs/tracking.md. Now the advice gives an example range to try."""
    advice = detection.many_seeds_advice(1301, (8, 30), (512, 512), " (--cell-diameter MIN MAX)")
    assert advice.startswith("1301 candidate cells (blobs 8-30 px wide) on one 512 x 512 frame: each is clicked")
    assert "--cell-diameter MIN MAX" in advice and "e.g. 40 160 for cells 40-160 px across" in advice, advice


def test_the_advice_warning_names_the_users_line_not_ours(monkeypatch):
    """The warning was given with stacklevel 2 from a generator, so Python named (and quoted) the tracker's line that
    drove it, ``stage, done, total = next(steps)``: it read like a piece of a traceback. Now it names the first frame
    outside sam2_model / napari_sam2: here this test's call of track_cells."""
    monkeypatch.setattr(detection, "MANY_SEEDS", 0)  # every frame's blobs are "too many"
    model = sm.build_model("demo", device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sm.track_cells(model, _movie(1), cell_diameter=(8, 30))
    said = [w for w in caught if "candidate cells" in str(w.message)]
    assert said, [str(w.message) for w in caught]
    assert all(Path(w.filename).resolve() == Path(__file__).resolve() for w in said), [w.filename for w in said]
    shown = warnings.formatwarning(said[0].message, said[0].category, said[0].filename, said[0].lineno)
    assert "sm.track_cells(model, _movie(1)" in shown and "next(steps)" not in shown, shown


def test_the_commands_advice_quotes_no_line_of_ours(tmp_path):
    """The command's stderr (the entry point as pip writes it: ``sys.exit(cli_main())``): the warning's second line
    was ``  stage, done, total = next(steps)``; now it is the entry point's own line, never one of our packages'."""
    tifffile.imwrite(tmp_path / "movie.tif", _movie(2))
    entry = tmp_path / "napari-sam2"
    entry.write_text("import sys\n"
                     "from sam2_model.tracking import detection\n"
                     "detection.MANY_SEEDS = 0  # every frame's blobs are too many\n"
                     "from napari_sam2 import cli_main\n"
                     "if __name__ == '__main__':\n"
                     "    sys.exit(cli_main())\n")
    done = subprocess.run([sys.executable, str(entry), "track", str(tmp_path / "movie.tif"), "--auto",
                           "--cell-diameter", "8", "30", "--table", str(tmp_path / "t.csv")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    where = [i for i, line in enumerate(lines) if "UserWarning: " in line and "candidate cells" in line]
    assert where, done.stderr
    for i in where:
        assert f"{entry}:6: UserWarning: " in lines[i], lines[i]  # (after the progress bar's unfinished line)
        assert lines[i + 1] == "  sys.exit(cli_main())", lines[i + 1]
    assert "next(steps)" not in done.stderr, done.stderr


# --- napari-sam2 evaluate -----------------------------------------------------------------------------------------

def test_evaluate_prints_the_main_measures_first_each_with_what_it_is(tmp_path, capsys):
    """X5: ``evaluate`` printed ~40 rows (AOGM_*, BIO(i), OP_*, tp/fp/fn_div(i)) with no heading and no word on which
    matter. Now SEG, DET, TRA and the division counts come first, each with a line of what it is, then the others
    under a heading; every measure line still starts NAME VALUE (headings start with #)."""
    import argparse
    import shutil

    from napari_sam2._cli_auto import add_evaluate_parser, run_evaluate
    from sam2_model.tracking import write_ctc_ground_truth

    truth = make_timelapse(num_frames=4, shape=(64, 64), num_cells=3, seed=900_719, divisions=False).labels
    gt = write_ctc_ground_truth(tmp_path / "gt", truth)
    res = tmp_path / "res"
    res.mkdir()
    for mask in sorted((gt / "TRA").glob("man_track*.tif")):
        shutil.copy(mask, res / mask.name.replace("man_track", "mask"))
    shutil.copy(gt / "TRA" / "man_track.txt", res / "res_track.txt")
    parser = argparse.ArgumentParser()
    add_evaluate_parser(parser.add_subparsers(dest="command"))
    assert run_evaluate(parser.parse_args(["evaluate", str(res), str(gt)])) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# the main measures"), lines
    said = "\n".join(line for line in lines if line.startswith("#   "))
    assert "SEG: segmentation: mean IoU" in said and "DET: detection" in said and "TRA: tracking" in said, said
    assert "fp_div(3): false divisions" in said, said
    values = [line.split() for line in lines if not line.startswith("#")]
    assert all(len(row) == 2 for row in values), values  # NAME VALUE, as scripts read it
    assert [row[0] for row in values[:3]] == ["SEG", "DET", "TRA"] and values[0][1] == "1", values
    other = next(i for i, line in enumerate(lines) if line.startswith("# the others"))
    assert {"LNK", "CT", "AOGM", "OP_CTB"} <= {line.split()[0] for line in lines[other + 1:]}, lines
    for name, value in values:
        float(value)


# --- the refusal to correct a divided track points to the false-division recipe -----------------------------------

def test_correcting_a_divided_track_after_its_division_names_the_false_division_recipe():
    """X5: the refusal "track 3 divided into [5, 6] after frame 3; correct one of its daughters on frame 4" was
    clear, but what a person wants after a false division is to undo it, and nothing said how. Now the message
    names the recipe (delete the false daughter, merge the other into the mother) and where it is written."""
    from napari_sam2.track_all import TrackAll
    from sam2_model.tracking.lineage import Lineage, Track

    labels = np.zeros((6, 32, 32), np.uint32)
    labels[0:4, 5:15, 5:15] = 3
    labels[4:6, 5:15, 5:10] = 5
    labels[4:6, 5:15, 11:15] = 6
    tracking = TrackAll(labels, 6)
    tracking.lineage = Lineage([Track(3, 0, 3, 0, "divided"), Track(5, 4, 5, 3, "end of stack"),
                                Track(6, 4, 5, 3, "end of stack")])
    steps = tracking.correct(None, None, 3, 4, np.array([[10.0, 10.0]]), np.array([1]))  # refused before the model
    with pytest.raises(ValueError) as refused:
        next(steps)
    message = str(refused.value)
    assert message.startswith("track 3 divided into [5, 6] after frame 3; correct one of its daughters on frame 4"), \
        message
    assert "if it did not divide, delete the false daughter and merge the other into 3" in message, message
    assert "docs/plugin.md, 'A false division'" in message and "**A false division**" in (
        ROOT / "docs" / "plugin.md").read_text()


# --- progress inside a frame ----------------------------------------------------------------------------------------

def test_track_auto_says_where_it_is_inside_a_frame(tmp_path, capsys):
    """A frame with thousands of candidate cells took 36 min with the bar at 0/1 and nothing else: the bar now names
    the frame and the stage of its work (seeding, clicking, ...), and track_cells hands each step to on_work."""
    from napari_sam2.cli import main
    from sam2_model.tracking import track_cells
    from sam2_model.tracking.tracker import WorkStep

    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, _movie(2), photometric="minisblack")
    code = main(["track", str(path), "--auto", "--table", str(tmp_path / "t.csv"), "--model", "demo",
                 "--checkpoint", "embedded", "--device", "cpu", "--image-size", "256"])
    assert code == 0
    assert "frame 0: seeding" in capsys.readouterr().err
    steps = []
    model = sm.build_model("demo", checkpoint="embedded", device="cpu", image_size=256)
    plain = track_cells(model, _movie(2))
    seen = track_cells(model, _movie(2), on_work=steps.append)
    assert steps and all(isinstance(step, WorkStep) for step in steps)
    assert {step.frame for step in steps} == {0, 1} and "seeding" in {step.stage for step in steps}
    np.testing.assert_array_equal(seen.labels, plain.labels)  # stopping between pieces changes nothing


def test_a_caller_that_takes_the_advice_is_not_warned_as_well(monkeypatch):
    """batch takes the crowded-frame advice through track_cells(on_advice=); the detector warned as well, so a user's
    "turn warnings into errors" filter failed a batch task over advice it was already given (review). Without
    on_advice the warning is given as before."""
    from sam2_model.tracking import track_cells

    monkeypatch.setattr(detection, "MANY_SEEDS", 0)  # every frame's blobs are "too many"
    model = sm.build_model("demo", checkpoint="embedded", device="cpu", image_size=256)
    told = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        track_cells(model, _movie(1), on_advice=told.append)
        assert told and "candidate cells" in told[0] and "--cell-diameter MIN MAX" in told[0], told
        with pytest.raises(UserWarning, match="candidate cells"):
            track_cells(model, _movie(1))
