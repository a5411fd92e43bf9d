"""Output files of the CLI and the writers: the mode a plain open()/mkdir() gives, never an input overwritten,
every output checked before the model is built, and several outputs written all or nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_sam2.cli as cli
from napari_sam2._cli_auto import write_outputs
from napari_sam2.cli import main
from napari_sam2.export import save_labels_tiff
from napari_sam2.session_file import SessionRecord, write_session
from sam2_model.atomic_files import publish_together
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import Lineage, Track, write_ctc, write_geff, write_track_table


@pytest.fixture
def umask():
    """Set the process umask for a test (restored afterwards)."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.fixture
def no_model(monkeypatch):
    """Fail loudly if the CLI reaches model building (its checks must come first)."""

    def tripwire(*args, **kwargs):
        raise AssertionError("build_model was called before the outputs were checked")

    monkeypatch.setattr(cli, "build_model", tripwire)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def labels_and_lineage():
    labels = np.zeros((3, 16, 16), np.uint32)
    labels[:, 2:6, 2:6] = 1
    labels[1:, 9:13, 9:13] = 2
    return labels, Lineage([Track(1, 0, 2, 0, "end of stack"), Track(2, 1, 2, 0, "end of stack")])


@pytest.mark.parametrize("mask, file, folder", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_written_outputs_get_the_mode_of_a_plain_open(tmp_path, umask, mask, file, folder):
    umask(mask)
    labels, lineage = labels_and_lineage()
    save_labels_tiff(labels, tmp_path / "labels.tif")
    write_track_table(tmp_path / "tracks.csv", lineage)
    write_ctc(tmp_path / "ctc", labels, lineage)
    write_geff(tmp_path / "tracks.geff", labels, lineage)
    session = write_session(tmp_path / "s", SessionRecord((3, 16, 16), np.zeros((0, 3)), [], [], np.zeros((0, 4, 3)), []))
    for path in (tmp_path / "labels.tif", tmp_path / "tracks.csv", session, *(tmp_path / "ctc").iterdir()):
        assert mode(path) == file, path
    for path in (tmp_path / "ctc", tmp_path / "tracks.geff"):
        assert mode(path) == folder, path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctc", "labels.tif", "s.sam2.npz", "tracks.csv",
                                                          "tracks.geff"]  # no temporary leftovers


def write_case(tmp_path: Path) -> list:
    stack = make_timelapse(num_frames=3, shape=(96, 96), seed=900_302).image
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    (tmp_path / "prompts.csv").write_text("frame,obj_id,y,x\n0,1,40,40\n")
    return ["track", str(tmp_path / "stack.tif"), "--device", "cpu"]


def test_an_output_that_is_the_input_is_refused_before_any_work(tmp_path, capsys, no_model):
    args = write_case(tmp_path)
    before = (tmp_path / "stack.tif").read_bytes()
    for extra in (["--prompts", str(tmp_path / "prompts.csv"), "-o", str(tmp_path / "stack.tif")],
                  ["--prompts", str(tmp_path / "prompts.csv"), "-o", str(tmp_path / "sub" / ".." / "stack.tif")],
                  ["--auto", "--table", str(tmp_path / "stack.tif")],
                  ["--auto", "--ctc", str(tmp_path / "res"), "-o", str(tmp_path / "stack.tif")]):
        assert main(args + extra) == 2
        err = capsys.readouterr().err
        assert "is the same file as the stack" in err and "stack.tif" in err, err
    assert (tmp_path / "stack.tif").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.csv", "stack.tif"]


def test_an_output_inside_a_folder_of_frames_is_refused(tmp_path, capsys, no_model):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, plane in enumerate(make_timelapse(num_frames=3, shape=(96, 96), seed=900_302).image):
        tifffile.imwrite(frames / f"t{i:03d}.tif", plane)
    (tmp_path / "p.csv").write_text("frame,obj_id,y,x\n0,1,40,40\n")
    assert main(["track", str(frames), "--prompts", str(tmp_path / "p.csv"), "-o", str(frames / "labels.tif")]) == 2
    assert "lies inside the stack" in capsys.readouterr().err
    assert sorted(p.name for p in frames.iterdir()) == ["t000.tif", "t001.tif", "t002.tif"]


@pytest.mark.parametrize("extra, message", [
    (["--table", "{tmp}/folder"], "--table {tmp}/folder is a folder; name the tracks table inside it"),
    (["--ctc", "{tmp}/a_file"], "--ctc {tmp}/a_file is a file; it expects a folder"),
    (["--geff", "{tmp}/a_file"], "--geff {tmp}/a_file exists: choose a new name"),
    (["--ctc", "{tmp}/res", "--table", "{tmp}/a_file/t.csv"], "{tmp}/a_file is a file, not a folder"),
    (["--table", "{tmp}/t.csv", "-o", "{tmp}/t.csv"], "--table and -o/--output both name"),
    (["--ctc", "{tmp}/folder"], "--ctc {tmp}/folder exists and is not empty"),
    # the CTC folder is written whole: an output inside it was lost with the whole run, after tracking
    (["--ctc", "{tmp}/res", "--table", "{tmp}/res/tracks.csv"], "--table {tmp}/res/tracks.csv lies inside --ctc "
                                                                "{tmp}/res, which is written whole"),
    (["--ctc", "{tmp}/res", "-o", "{tmp}/res/labels.tif"], "-o/--output {tmp}/res/labels.tif lies inside --ctc"),
])
def test_auto_checks_every_output_before_the_model(tmp_path, capsys, no_model, extra, message):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "x.txt").write_text("keep")
    (tmp_path / "a_file").write_text("keep")
    args = write_case(tmp_path) + ["--auto"] + [a.format(tmp=tmp_path) for a in extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err and "Errno" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "folder", "prompts.csv", "stack.tif"]


def test_option_errors_name_the_option_not_an_errno(tmp_path, capsys, no_model):
    args = write_case(tmp_path)
    assert main(args + ["--prompts", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "l.tif")]) == 2
    err = capsys.readouterr().err
    assert "--prompts" in err and "no such file" in err and "frame,obj_id,y,x" in err and "Errno" not in err, err
    (tmp_path / "a_file").write_text("keep")
    assert main(["batch", str(tmp_path / "stack.tif"), "--out", str(tmp_path / "a_file")]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "is a file; it expects a folder" in err and "Errno" not in err, err


def test_auto_creates_the_folders_of_every_output_and_writes_them_readable(tmp_path, capsys, umask):
    umask(0o022)
    out = tmp_path / "w"
    code = main(write_case(tmp_path) + ["--auto", "--cell-diameter", "10", "40", "--ctc", str(out / "res"),
                                        "--table", str(out / "no" / "such" / "t.csv"), "--geff", str(out / "t.geff"),
                                        "-o", str(out / "l.tif")])
    assert code == 0, capsys.readouterr().err
    assert (out / "no" / "such" / "t.csv").read_text().startswith("track_id,begin")
    assert mode(out / "res") == 0o755 and mode(out / "t.geff") == 0o755
    assert mode(out / "l.tif") == 0o644 and mode(out / "no" / "such" / "t.csv") == 0o644
    assert sorted(p.name for p in out.iterdir()) == ["l.tif", "no", "res", "t.geff"]


def test_several_outputs_are_written_all_or_nothing(tmp_path):
    labels, lineage = labels_and_lineage()
    (tmp_path / "t.csv").write_text("the previous table")

    def interrupted(to: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_outputs([(tmp_path / "res", lambda to: write_ctc(to, labels, lineage)),
                       (tmp_path / "t.csv", lambda to: write_track_table(to, lineage)),
                       (tmp_path / "l.tif", interrupted)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
    assert (tmp_path / "t.csv").read_text() == "the previous table"

    # a rename that fails half-way puts back what was there
    (tmp_path / "new.csv").write_text("new table")
    (tmp_path / "new.tif").write_text("new labels")
    with pytest.raises(FileNotFoundError):
        publish_together([(tmp_path / "new.csv", tmp_path / "t.csv"),
                          (tmp_path / "new.tif", tmp_path / "missing" / "l.tif")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
    assert (tmp_path / "t.csv").read_text() == "the previous table"


def test_track_creates_no_folder_when_a_later_check_fails(tmp_path, capsys):
    """-o new/x.tif (and --auto's outputs) make no folder when the run stops before writing (here: the model)."""
    args = write_case(tmp_path) + ["--model", "nope"]
    assert main(args + ["--prompts", str(tmp_path / "prompts.csv"), "-o", str(tmp_path / "new" / "x.tif")]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(args + ["--auto", "--ctc", str(tmp_path / "new2" / "res"), "--table", str(tmp_path / "new3" / "t.csv"),
                        "-o", str(tmp_path / "new4" / "l.tif")]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.csv", "stack.tif"]


def test_write_outputs_removes_the_folders_it_made_when_it_fails(tmp_path):
    _, lineage = labels_and_lineage()

    def failing(to: Path) -> None:
        raise OSError("disk full")

    (tmp_path / "kept").mkdir()
    with pytest.raises(OSError):
        write_outputs([(tmp_path / "a" / "b" / "t.csv", lambda to: write_track_table(to, lineage)),
                       (tmp_path / "kept" / "c" / "l.tif", failing)])
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept"]


@pytest.mark.parametrize("option", ["-o", "--table"])
def test_an_existing_output_is_refused_naming_it_and_overwrite(tmp_path, capsys, no_model, option):
    existing = tmp_path / ("l.tif" if option == "-o" else "t.csv")
    existing.write_text("an earlier result")
    prompted = ["--prompts", str(tmp_path / "prompts.csv")] if option == "-o" else ["--auto"]
    assert main(write_case(tmp_path) + prompted + [option, str(existing)]) == 2
    err = capsys.readouterr().err
    assert f"{existing} exists: choose a new name, or pass --overwrite to replace it" in err, err
    assert existing.read_text() == "an earlier result"


def test_track_overwrite_replaces_labels(tmp_path, capsys):
    out = tmp_path / "l.tif"
    out.write_text("an earlier result")
    args = write_case(tmp_path) + ["--prompts", str(tmp_path / "prompts.csv"), "-o", str(out), "--overwrite"]
    assert main(args) == 0, capsys.readouterr().err
    assert tifffile.imread(out).shape == (3, 96, 96)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.tif", "prompts.csv", "stack.tif"]


def test_auto_overwrite_replaces_an_earlier_run_but_no_other_folder(tmp_path, capsys):
    from sam2_model.tracking import read_ctc

    out = tmp_path / "w"
    outputs = ["--ctc", str(out / "res"), "--geff", str(out / "t.geff"), "--table", str(out / "t.csv"),
               "-o", str(out / "l.tif")]
    args = write_case(tmp_path) + ["--auto", "--cell-diameter", "10", "40"] + outputs
    assert main(args) == 0, capsys.readouterr().err
    first = {p: p.stat().st_mtime_ns for p in (out / "l.tif", out / "t.csv")}
    assert main(args) == 2
    assert "--ctc " + str(out / "res") + " exists and is not empty: choose a new folder, or pass --overwrite to " \
        "replace an earlier CTC result" in capsys.readouterr().err
    assert main(args + ["--overwrite"]) == 0, capsys.readouterr().err
    assert all(p.stat().st_mtime_ns != t for p, t in first.items())
    labels, _ = read_ctc(out / "res")
    np.testing.assert_array_equal(tifffile.imread(out / "l.tif"), labels)
    assert sorted(p.name for p in out.iterdir()) == ["l.tif", "res", "t.csv", "t.geff"]  # nothing set aside is left
    (out / "res" / "notes.txt").write_text("mine")  # not only a CTC result any more: --overwrite leaves it be
    assert main(args + ["--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "--ctc: " in err and "holds other files (notes.txt" in err and "--overwrite replaces an earlier CTC" in err
    assert (out / "res" / "notes.txt").read_text() == "mine"


def gapped_labels_and_lineage():
    """Track 1 is missing on frame 1 (as a tracker gives when a cell is missed for a frame); track 2 is whole."""
    labels = np.zeros((4, 16, 16), np.uint32)
    labels[[0, 2, 3], 2:6, 2:6] = 1
    labels[:, 9:13, 9:13] = 2
    return labels, Lineage([Track(1, 0, 3, 0, "end of stack"), Track(2, 0, 3, 0, "end of stack")])


def test_auto_outputs_of_one_run_agree_and_are_made_consistent_once(tmp_path, monkeypatch):
    """One writer for track --auto and batch --auto: labels, table, GEFF and CTC folder hold the same tracks (the
    gap splits track 1 into two pieces in every output), from one consistent_labels pass (the one copy of the rule:
    ctc_consistent is it too)."""
    import csv

    import sam2_model.tracking.ctc_io as ctc_io
    import sam2_model.tracking.lineage as lineage_module
    import napari_sam2.track_export as track_export
    from sam2_model.tracking import read_ctc, read_geff
    from sam2_model.tracking.lineage import consistent_labels
    from napari_sam2.track_export import AutoOutputs, write_auto_outputs

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return consistent_labels(*args, **kwargs)

    for module in (lineage_module, ctc_io, track_export):
        monkeypatch.setattr(module, "consistent_labels", counted)
    labels, lineage = gapped_labels_and_lineage()
    outputs = AutoOutputs(labels=tmp_path / "l.tif", tracks=tmp_path / "t.csv", ctc=tmp_path / "res",
                          geff=tmp_path / "t.geff")
    written, table = write_auto_outputs(labels, lineage, outputs, write_all=write_outputs)
    assert len(calls) == 1
    ctc_labels, ctc_lineage = read_ctc(tmp_path / "res")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "l.tif"), ctc_labels)
    np.testing.assert_array_equal(written, ctc_labels)
    assert sorted(np.unique(ctc_labels).tolist()) == [0, 1, 2, 3]  # the piece after the gap is track 3
    with open(tmp_path / "t.csv") as handle:
        rows = sorted((int(r["track_id"]), int(r["begin"]), int(r["end"]), int(r["parent_id"]))
                      for r in csv.DictReader(handle))
    assert rows == sorted(tuple(int(v) for v in row) for row in ctc_lineage.to_array()) == \
        [(1, 0, 0, 0), (2, 0, 3, 0), (3, 2, 3, 1)]
    assert sorted(t.track_id for t in table.rows()) == [1, 2, 3]
    graph, _ = read_geff(tmp_path / "t.geff")
    assert graph.number_of_nodes() == 1 + 4 + 2  # one node per track and frame: 1 on 0, 2 on 0..3, 3 on 2..3


def test_track_auto_makes_its_outputs_consistent_once(tmp_path, capsys, monkeypatch):
    """track --auto --ctc ran the CTC rule on the result, then write_ctc ran it again on consistent data."""
    import sam2_model.tracking.ctc_io as ctc_io
    import sam2_model.tracking.lineage as lineage_module
    import napari_sam2._cli_auto as cli_auto
    import napari_sam2.track_export as track_export
    from sam2_model.tracking.lineage import consistent_labels

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return consistent_labels(*args, **kwargs)

    for module in (lineage_module, ctc_io, cli_auto, track_export):
        monkeypatch.setattr(module, "consistent_labels", counted, raising=False)
    out = tmp_path / "w"
    assert main(write_case(tmp_path) + ["--auto", "--cell-diameter", "10", "40", "--ctc", str(out / "res"),
                                        "--table", str(out / "t.csv"), "-o", str(out / "l.tif")]) == 0
    assert len(calls) == 1
