"""``napari-sam2 batch --frames A-B`` / ``batch(frames=(A, B))`` (s54, B1): every stack is tracked over its frames A-B
only, with the rules of ``napari-sam2 track --frames A-B`` (its parser and words): only those frames are read, the
outputs number them from 0, summary.csv and each manifest say which frames were tracked, a stack with fewer frames
fails naming them while the others run, and a rerun does not reuse a result made over other frames (or all of them).
Real demo model at 256 px, small synthetic movies, Dask's in-process cluster (one worker thread)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2.batch import batch
from napari_sam2.batch_outputs import settings_changes
from napari_sam2.batch_worker import AxisOptions, ModelSpec, StackTask, process_stack
from napari_sam2.cli import main
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model.synthetic import make_timelapse
from test_batch import MODEL, _cli, _read_summary

distributed = pytest.importorskip("distributed")

FIRST, LAST = 3, 7  # of 10 frames
RANGE = f"{FIRST}-{LAST}"
SIZE = ["--device", "cpu", "--image-size", "256"]


def _movie(seed: int, frames: int = 10):
    return make_timelapse(num_frames=frames, shape=(96, 96), num_cells=4, seed=seed, dtype="uint8",
                          divisions=False, enter_leave=False)


def _prompts(path: Path, labels: np.ndarray, frame: int) -> Path:
    """Clicks on two cells of ``labels[frame]``, in the stack's frame numbers."""
    rows = ["frame,obj_id,y,x,label"]
    for obj in clickable_objects(labels[frame], min_area=20)[:2]:
        x, y = click_point(labels[frame] == obj)
        rows.append(f"{frame},{obj},{y},{x},1")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def plate(tmp_path_factory) -> Path:
    """Two 10-frame movies with prompts on frame 5 (inside 3-7) beside them, and a 6-frame one (shorter than 7)."""
    folder = tmp_path_factory.mktemp("plate")
    for name, seed, frames in (("a", 5401, 10), ("b", 5402, 10), ("short", 5403, 6)):
        movie = _movie(seed, frames)
        tifffile.imwrite(folder / f"{name}.tif", movie.image, photometric="minisblack")
        _prompts(folder / f"{name}.csv", movie.labels, 5)
    return folder


@pytest.fixture(scope="module")
def client():
    """A real in-process cluster: one worker, one thread (tasks run in this process, on the worker's thread)."""
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as active:
        yield active


def _track(capsys, *args: str) -> None:
    code = main(["track", *args, *SIZE])
    assert code == 0, capsys.readouterr().err


def test_batch_frames_gives_track_frames_outputs_per_movie_and_fails_a_shorter_movie(plate, client, tmp_path,
                                                                                      capsys):
    """Two movies and one of 6 frames with --frames 3-7: each movie's labels are those of track --frames 3-7 on it
    (5 frames, numbered from 0); the summary and manifests say 3-7; the short movie fails naming its frames, and the
    batch goes on (exit code 1)."""
    out = tmp_path / "out"
    code = _cli(["batch", str(plate / "a.tif"), str(plate / "b.tif"), str(plate / "short.tif"), "--out", str(out),
                 "--scheduler", client.scheduler.address, "--frames", RANGE, *SIZE])
    assert code == 1, capsys.readouterr().err
    rows = {row["name"]: row for row in _read_summary(out)}
    assert rows["short"]["status"] == "failed"
    assert (f"{plate / 'short.tif'}: --frames {RANGE} is outside the stack's frames 0-5 (numbered from 0 along the "
            "propagated axis): give A-B within 0-5") in rows["short"]["error"]
    assert not (out / "short").exists()
    for name in ("a", "b"):
        assert rows[name]["status"] == "ok", rows[name]["error"]
        assert (rows[name]["frames"], rows[name]["frame_range"]) == ("5", RANGE)
        manifest = json.loads((out / name / "manifest.json").read_text())
        assert (manifest["frame_range"], manifest["stack_frames"], manifest["settings"]["frames"]) == \
            ([FIRST, LAST], 10, [FIRST, LAST])
        _track(capsys, str(plate / f"{name}.tif"), "--prompts", str(plate / f"{name}.csv"), "-o",
               str(tmp_path / f"{name}.tif"), "--frames", RANGE)
        expected = tifffile.imread(tmp_path / f"{name}.tif")
        got = tifffile.imread(out / name / "labels.tif")
        assert got.shape == (LAST - FIRST + 1, 96, 96) and len(np.unique(got)) == 3
        np.testing.assert_array_equal(got, expected)


def test_batch_auto_frames_gives_track_auto_frames_outputs(plate, client, tmp_path, capsys):
    """--auto --frames 3-7 (starting on 3, the range's first): labels and the CTC result as track --auto --frames 3-7
    writes them, numbered from 0; the manifest records start_frame 3 (the stack's number)."""
    out = tmp_path / "out"
    code = _cli(["batch", str(plate / "a.tif"), "--out", str(out), "--scheduler", client.scheduler.address, "--auto",
                 "--cell-diameter", "6", "30", "--frames", RANGE, *SIZE])
    assert code == 0, capsys.readouterr().err
    _track(capsys, str(plate / "a.tif"), "--auto", "--cell-diameter", "6", "30", "--frames", RANGE, "-o",
           str(tmp_path / "a.tif"), "--ctc", str(tmp_path / "ctc"))
    expected = tifffile.imread(tmp_path / "a.tif")
    assert expected.shape[0] == LAST - FIRST + 1 and expected.max() > 0
    np.testing.assert_array_equal(tifffile.imread(out / "a" / "labels.tif"), expected)
    assert (out / "a" / "ctc" / "res_track.txt").read_text() == (tmp_path / "ctc" / "res_track.txt").read_text()
    manifest = json.loads((out / "a" / "manifest.json").read_text())
    assert manifest["tracking_options"]["start_frame"] == FIRST and manifest["frame_range"] == [FIRST, LAST]


@pytest.mark.parametrize("auto", [False, True], ids=["prompts", "auto"])
def test_frames_outside_the_range_are_never_read(plate, tmp_path, auto):
    """A zarr movie whose chunks of frames 0-2 and 8-9 are garbage (reading one fails): --frames 3-7 tracks it, with
    prompts or --auto (whose contrast and input size sample the frames), the labels equal those of the intact TIFF
    (in-process task)."""
    import zarr

    image = tifffile.imread(plate / "a.tif")
    store = tmp_path / "a.zarr"
    array = zarr.create_array(str(store), shape=image.shape, chunks=(1, *image.shape[1:]), dtype=image.dtype)
    array[:] = image
    for t in (*range(FIRST), *range(LAST + 1, len(image))):
        chunk = store / "c" / str(t) / "0" / "0"
        assert chunk.is_file()
        chunk.write_bytes(b"not a chunk" * 8)
    with pytest.raises(Exception):  # the broken frames do fail when read
        np.asarray(zarr.open_array(str(store))[0])
    results = {}
    for name, path in (("zarr", store), ("tif", plate / "a.tif")):
        how = (dict(auto=True, tracking_options={"cell_diameter": (6, 30), "start_frame": FIRST}) if auto else
               dict(prompts=str(plate / "a.csv")))
        task = StackTask(name, str(path), str(tmp_path / "out"), ModelSpec(**MODEL), axes=AxisOptions(names="cli"),
                         frames=(FIRST, LAST), **how)
        row = process_stack(task)
        assert row["status"] == "ok", row["error"]
        results[name] = tifffile.imread(tmp_path / "out" / name / "labels.tif")
    assert results["tif"].shape[0] == LAST - FIRST + 1 and results["tif"].max() > 0
    np.testing.assert_array_equal(results["zarr"], results["tif"])


def test_a_prompt_outside_the_range_fails_that_movie_in_tracks_words(plate, tmp_path):
    prompts = tmp_path / "early.csv"
    prompts.write_text("frame,obj_id,y,x,label\n5,1,40,40,1\n1,2,20,20,1\n")
    task = StackTask("a", str(plate / "a.tif"), str(tmp_path), ModelSpec(**MODEL), prompts=str(prompts),
                     axes=AxisOptions(names="cli"), frames=(FIRST, LAST))
    row = process_stack(task)
    assert row["status"] == "failed"
    assert (f"{prompts}, line 3: frame 1 is outside --frames {RANGE} (frames are the stack's numbers): prompt a frame "
            "of the range, or widen it") in row["error"]
    api = process_stack(StackTask("a", str(plate / "a.tif"), str(tmp_path), ModelSpec(**MODEL), prompts=str(prompts),
                                  frames=(FIRST, LAST)))
    assert f"frame 1 is outside frames=({FIRST}, {LAST})" in api["error"]


@pytest.mark.parametrize("option, message", [
    (["--start-frame", "1"], f"--start-frame 1 is outside --frames {RANGE}: start on a frame of the range"),
    (["--direction", "backward"], f"--direction backward from --start-frame ({FIRST}): it is the first of --frames "
                                  f"{RANGE}"),
    (["--start-frame", str(LAST)], f"--direction forward from --start-frame ({LAST}): it is the last of --frames "
                                   f"{RANGE}"),
])
def test_auto_frames_mistakes_are_refused_before_anything_is_created(plate, tmp_path, capsys, option, message):
    """The same for every movie, so refused as track refuses it, before --out is created (exit code 2)."""
    out = tmp_path / "out"
    code = _cli(["batch", str(plate / "a.tif"), "--out", str(out), "--auto", "--frames", RANGE, *option, *SIZE])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_frames_are_parsed_and_checked_as_track_parses_them(plate, tmp_path, capsys):
    with pytest.raises(SystemExit):
        _cli(["batch", str(plate / "a.tif"), "--out", str(tmp_path / "out"), "--frames", "5-2"])
    assert "--frames: takes A-B with 0 <= A <= B (e.g. 0-5), got '5-2'" in capsys.readouterr().err
    for frames, message in (((5, 2), "the first frame (5) is after the last (2)"),
                            ((-1, 3), "frames are numbered from 0"), ("3-7", "frames must be (first, last)")):
        with pytest.raises(ValueError, match=re.escape(message)):
            batch(plate / "a.tif", tmp_path / "out", frames=frames, progress=False, **MODEL)
    assert not (tmp_path / "out").exists()


def test_a_rerun_with_other_frames_or_none_runs_again(plate, client, tmp_path, capsys):
    """A result made over 3-7 is skipped by the same run, run again for 2-7 and again without frames (whole movie);
    the earlier row keeps its frame range."""
    out = tmp_path / "out"

    def run(frames):
        table = batch(plate / "b.tif", out, client=client, frames=frames, **MODEL)
        return table.loc[0, "status"], table.loc[0, "frame_range"], capsys.readouterr().err

    assert run((FIRST, LAST))[:2] == ("ok", RANGE)
    assert run((FIRST, LAST))[:2] == ("skipped", RANGE)
    status, frame_range, said = run((2, LAST))
    assert (status, frame_range) == ("ok", f"2-{LAST}") and "other settings (frames)" in said
    status, frame_range, said = run(None)
    assert (status, frame_range) == ("ok", "") and "other settings (frames)" in said, said
    assert tifffile.imread(out / "b" / "labels.tif").shape[0] == 10


def test_a_setting_recorded_only_when_on_counts_when_a_rerun_leaves_it_out():
    """invert and frames are recorded only when given (older results stay reusable); a result made with them is not
    the one a run without them makes."""
    base = {"mode": "prompts", "smooth": 0.0}
    assert settings_changes(base, base) == []
    assert settings_changes({**base, "invert": True}, base) == ["invert"]
    assert settings_changes({**base, "frames": [3, 7]}, base) == ["frames"]
    assert settings_changes({**base, "frames": [3, 7]}, {**base, "frames": [2, 7]}) == ["frames"]
