"""``napari-sam2 track --frames A-B`` (s53, H2): --prompts and --auto track frames A-B of a stack only, prompts and
--start-frame in the stack's numbers, messages in the command's words, and outputs numbered as
``napari-sam2 evaluate --frames A-B`` scores them. Real demo model, small synthetic movies."""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2 import cli
from napari_sam2.cli import main
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import Lineage, read_ctc, write_ctc, write_ctc_ground_truth

FIRST, LAST = 3, 7  # of 10 frames
RANGE = f"{FIRST}-{LAST}"


@pytest.fixture(scope="module")
def movie():
    return make_timelapse(num_frames=10, shape=(96, 96), num_cells=4, seed=5311)


@pytest.fixture(scope="module")
def files(tmp_path_factory, movie):
    """The movie as a TIFF, its frames FIRST..LAST as another, and the movie's CTC ground truth."""
    folder = tmp_path_factory.mktemp("movie")
    tifffile.imwrite(folder / "movie.tif", movie.image)
    tifffile.imwrite(folder / "part.tif", movie.image[FIRST:LAST + 1])
    write_ctc_ground_truth(folder / "01_GT", movie.labels, movie.parents)
    return folder


def _prompts(path: Path, movie, frame: int, shift: int = 0) -> Path:
    """Clicks on two cells of the movie's ``frame``, written with frame numbers ``frame - shift``."""
    rows = ["frame,obj_id,y,x,label"]
    for obj in clickable_objects(movie.labels[frame], min_area=20)[:2]:
        x, y = click_point(movie.labels[frame] == obj)
        rows.append(f"{frame - shift},{obj},{y},{x},1")
    path.write_text("\n".join(rows) + "\n")
    return path


def _evaluate(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["evaluate", *args]) == 0, capsys.readouterr().err
    return {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()
            if line.strip() and not line.startswith("#")}


def _ctc(folder: Path):
    labels, lineage = read_ctc(folder)
    return labels, sorted(tuple(vars(t).values()) for t in lineage.rows())


@pytest.mark.parametrize("start", [[], ["--start-frame", str(LAST), "--direction", "backward"]],
                         ids=["from-A", "backward-from-B"])
def test_auto_frames_is_the_part_tracked_alone_and_evaluate_frames_scores_it_in_the_movies_numbers(
        files: Path, movie, tmp_path: Path, capsys, start) -> None:
    part_start = [] if not start else ["--start-frame", str(LAST - FIRST), "--direction", "backward"]
    for name, stack, extra in (("range", "movie.tif", ["--frames", RANGE] + start), ("part", "part.tif", part_start)):
        code = main(["track", str(files / stack), "--auto", "--device", "cpu", "--ctc", str(tmp_path / name),
                     "-o", str(tmp_path / f"{name}.tif"), "--table", str(tmp_path / f"{name}.csv"), *extra])
        assert code == 0, capsys.readouterr().err
        if name == "range":  # the stack's numbers said
            assert f"over 5 frames ({FIRST}-{LAST}, written numbered from 0)" in capsys.readouterr().out
    # only frames FIRST..LAST were tracked, numbered from 0 (CTC's rule): as the part saved alone
    assert tifffile.imread(tmp_path / "range.tif").shape == (LAST - FIRST + 1, 96, 96)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "range.tif"), tifffile.imread(tmp_path / "part.tif"))
    labels, rows = _ctc(tmp_path / "range")
    part_labels, part_rows = _ctc(tmp_path / "part")
    np.testing.assert_array_equal(labels, part_labels)
    assert rows == part_rows and labels.max() > 0
    # evaluate --frames A-B of it == the same result placed at frames A..B of a whole-movie result, scored over A-B
    whole = np.zeros_like(movie.labels, dtype=np.uint32)
    whole[FIRST:LAST + 1] = labels
    _, lineage = read_ctc(tmp_path / "range")
    moved = Lineage(dataclasses.replace(t, begin=t.begin + FIRST, end=t.end + FIRST) for t in lineage.rows())
    write_ctc(tmp_path / "whole", whole, moved)
    part = _evaluate(capsys, str(tmp_path / "range"), str(files / "01_GT"), "--frames", RANGE)
    assert part == _evaluate(capsys, str(tmp_path / "whole"), str(files / "01_GT"), "--frames", RANGE)
    assert float(part["SEG"]) > 0.5 and float(part["DET"]) > 0.5  # the truth's own frames: cells overlap


def test_prompts_frames_segments_the_part_from_clicks_in_the_stacks_numbers(files: Path, movie, tmp_path: Path,
                                                                             capsys) -> None:
    frame = 5
    range_csv = _prompts(tmp_path / "range.csv", movie, frame)
    part_csv = _prompts(tmp_path / "part.csv", movie, frame, shift=FIRST)
    assert main(["track", str(files / "movie.tif"), "--prompts", str(range_csv), "-o", str(tmp_path / "range.tif"),
                 "--device", "cpu", "--frames", RANGE]) == 0, capsys.readouterr().err
    assert f"of frames {FIRST}-{LAST}, numbered from 0" in capsys.readouterr().out
    assert main(["track", str(files / "part.tif"), "--prompts", str(part_csv), "-o", str(tmp_path / "part.tif"),
                 "--device", "cpu"]) == 0
    got = tifffile.imread(tmp_path / "range.tif")
    assert got.shape == (LAST - FIRST + 1, 96, 96) and len(np.unique(got)) == 3
    np.testing.assert_array_equal(got, tifffile.imread(tmp_path / "part.tif"))


@pytest.fixture
def no_model(monkeypatch):
    """Fail loudly if a command reaches the model (its checks must come first)."""

    def tripwire(*args, **kwargs):
        raise AssertionError("the model was reached before the inputs were checked")

    monkeypatch.setattr(cli, "build_model", tripwire, raising=False)
    monkeypatch.setattr(cli, "segment", tripwire, raising=False)


@pytest.mark.parametrize("option, message", [
    (["--frames", "2-12"], "--frames 2-12 is outside the stack's frames 0-9"),
    (["--frames", "5-2"], "--frames: takes A-B with 0 <= A <= B"),
    (["--frames", "3-7", "--start-frame", "1"], "--start-frame 1 is outside --frames 3-7"),
    (["--frames", "3-7", "--direction", "backward"], "--direction backward from --start-frame (3): it is the first "
                                                       "of --frames 3-7"),
    (["--frames", "3-7", "--start-frame", "7"], "--direction forward from --start-frame (7): it is the last of "
                                                 "--frames 3-7"),
])
def test_auto_frames_mistakes_are_refused_in_the_commands_words_first(files: Path, tmp_path: Path, capsys, no_model,
                                                                     option, message) -> None:
    with pytest.raises(SystemExit) if "5-2" in option else contextlib.nullcontext():
        code = main(["track", str(files / "movie.tif"), "--auto", "--ctc", str(tmp_path / "res"), *option])
        assert code == 2
    err = capsys.readouterr().err
    assert message in err and "frames=(" not in err
    assert not (tmp_path / "res").exists()


def test_prompts_outside_the_range_are_named_by_their_line(files: Path, movie, tmp_path: Path, capsys,
                                                          no_model) -> None:
    csv = tmp_path / "p.csv"
    csv.write_text("frame,obj_id,y,x,label\n4,1,10,10,1\n2,1,12,12,1\n")
    output = tmp_path / "out.tif"
    base = ["track", str(files / "movie.tif"), "--prompts", str(csv), "-o", str(output)]
    assert main(base + ["--frames", RANGE]) == 2
    assert f"{csv}, line 3: frame 2 is outside --frames {RANGE}" in capsys.readouterr().err
    csv.write_text("frame,obj_id,y,x,label\n3,1,10,10,1\n")
    assert main(base + ["--frames", RANGE, "--direction", "backward"]) == 2
    err = capsys.readouterr().err
    assert (f"--direction backward from the first prompted frame (3): it is the first of --frames {RANGE}" in err
            and "frames=(" not in err)
    image = tmp_path / "one.tif"
    tifffile.imwrite(image, movie.image[0])
    assert main(["track", str(image), "--prompts", str(csv), "-o", str(output), "--frames", "0-1"]) == 2
    assert "--frames 0-1 is outside the stack's only frame, 0" in capsys.readouterr().err
    assert not output.exists()


def test_help_says_what_frames_does(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["track", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--frames A-B" in text and "evaluate --frames A-B scores them" in text
    assert "--frames 100-150 --ctc res/" in text
