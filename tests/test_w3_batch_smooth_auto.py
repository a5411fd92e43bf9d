"""Batch runs smooth as segment() does: ``smooth="auto"`` (``--smooth auto``, the default) picks each stack's blur
from its first prompted frame's grain at the clicks (demo weights as shipped only), says it in the stack's note,
records the px in its manifest (``smooth`` and ``settings``), and a rerun compares that px; clean frames get none;
bad values are refused before anything is created."""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import re

import numpy as np
import pytest

from napari_sam2 import segment
from napari_sam2._cli_batch import add_batch_parser
from napari_sam2.batch import batch
from napari_sam2.batch_worker import ModelSpec, StackTask, process_stack
from sam2_model.auto_smooth import smooth_choice
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model.synthetic import make_timelapse

tifffile = pytest.importorskip("tifffile")
distributed = pytest.importorskip("distributed")

MSC = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "ctc-msc"
MODEL = dict(model="demo", checkpoint="download", device="cpu")


def _write(folder: pathlib.Path, name: str, stack: np.ndarray, clicks: list) -> None:
    """``stack`` as ``name.tif`` and its clicks (frame, y, x, label, obj_id) as ``name.csv`` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / f"{name}.tif", stack, photometric="minisblack")
    rows = "".join(f"{int(f)},{int(o)},{y},{x},{int(lab)}\n" for f, y, x, lab, o in clicks)
    (folder / f"{name}.csv").write_text("frame,obj_id,y,x,label\n" + rows)


@pytest.fixture(scope="module")
def msc_crop() -> tuple:
    """Two frames of the real MSC time-lapse cut to (260, 320) around two cells (grainy, dim: grain ~0.3) and their
    clicks (frame, y, x, label, obj_id) at the most interior pixel of frame 0's tracking markers."""
    if not (MSC / "01" / "t001.tif").is_file() or not (MSC / "01_GT" / "TRA" / "man_track000.tif").is_file():
        pytest.skip("the MSC time-lapse is not in ../shared/data/ctc-msc")
    rows, cols = slice(360, 620), slice(0, 320)
    stack = np.stack([tifffile.imread(MSC / "01" / f"t{t:03d}.tif")[rows, cols] for t in range(2)])
    markers = tifffile.imread(MSC / "01_GT" / "TRA" / "man_track000.tif")[rows, cols]
    ids = [int(i) for i in np.unique(markers) if i]
    clicks = [(0, float(y), float(x), 1, k + 1) for k, (x, y) in enumerate(click_point(markers == i) for i in ids)]
    return stack, clicks


@pytest.fixture(scope="module")
def client():
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as active:
        yield active


def _summary(out: pathlib.Path) -> list:
    with open(out / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_grainy_stack_is_blurred_as_segment_blurs_it_and_reruns_compare_the_px(msc_crop, client, tmp_path, capsys):
    stack, clicks = msc_crop
    _write(tmp_path / "in", "msc", stack, clicks)
    points = np.array([[x, y] for _, y, x, _, _ in clicks])
    chosen = smooth_choice("auto", stack[0], points, model="demo", checkpoint="download")
    assert chosen.sigma > 0  # grainy, dim cells: "auto" blurs them
    out = tmp_path / "out"
    table = batch(tmp_path / "in", out, client=client, **MODEL)  # the default: smooth="auto"
    assert list(table["status"]) == ["ok"], table["error"].tolist()
    said = f"smoothing {chosen.sigma:g} px: grainy frames (grain {chosen.grain:.2f})"
    assert said in table["note"][0] and said in capsys.readouterr().err  # the note, shown on the console
    manifest = json.loads((out / "msc" / "manifest.json").read_text())
    assert manifest["smooth"] == chosen.sigma and manifest["settings"]["smooth"] == chosen.sigma  # px, not "auto"
    assert manifest["smooth_picked"] == f"{chosen.sigma:g} px: {chosen.why}"
    with pytest.warns(UserWarning, match=re.escape(said)):  # segment() says the same blur
        expected = segment(stack, clicks, **MODEL)
    np.testing.assert_array_equal(tifffile.imread(out / "msc" / "labels.tif"), expected)
    # a rerun compares the px "auto" comes to: reused asked as "auto" or as the number, redone without blur
    assert list(batch(tmp_path / "in", out, client=client, progress=False, **MODEL)["status"]) == ["skipped"]
    assert list(batch(tmp_path / "in", out, client=client, progress=False, smooth=chosen.sigma,
                      **MODEL)["status"]) == ["skipped"]
    capsys.readouterr()
    assert list(batch(tmp_path / "in", out, client=client, smooth="off", **MODEL)["status"]) == ["ok"]
    assert "their result was made with other settings (smooth)" in capsys.readouterr().err
    assert json.loads((out / "msc" / "manifest.json").read_text())["settings"]["smooth"] == 0.0
    assert _summary(out)[0]["note"] == ""


def test_clean_stack_with_auto_is_the_stack_without_blur(tmp_path):
    movie = make_timelapse(num_frames=2, shape=(96, 96), num_cells=3, seed=41, dtype="uint8", divisions=False,
                           enter_leave=False)
    ids = clickable_objects(movie.labels[0])[:3]
    clicks = [(0, float(y), float(x), 1, k + 1) for k, (x, y) in enumerate(click_point(movie.labels[0] == i)
                                                                         for i in ids)]
    _write(tmp_path, "clean", movie.image, clicks)
    spec = ModelSpec("demo", "embedded", "cpu", 256)
    rows = {}
    for smooth in ("auto", 0.0):
        out = tmp_path / f"out-{smooth}"
        rows[smooth] = process_stack(StackTask("clean", str(tmp_path / "clean.tif"), str(out), spec,
                                               prompts=str(tmp_path / "clean.csv"), smooth=smooth,
                                               settings={"smooth": smooth}))
        assert rows[smooth]["status"] == "ok", rows[smooth]["error"]
    auto = json.loads((tmp_path / "out-auto" / "clean" / "manifest.json").read_text())
    assert auto["smooth"] == 0.0 and auto["settings"]["smooth"] == 0.0  # "auto" recorded as the px it came to
    assert auto["smooth_picked"].startswith("0 px: clean frames (grain ")
    assert "smoothing" not in rows["auto"]["note"]
    labels = tifffile.imread(tmp_path / "out-auto" / "clean" / "labels.tif")
    np.testing.assert_array_equal(labels, tifffile.imread(tmp_path / "out-0.0" / "clean" / "labels.tif"))
    np.testing.assert_array_equal(labels, segment(movie.image, clicks, image_size=256, **MODEL))


def test_bad_smooth_values_are_refused_before_anything_starts(tmp_path, capsys):
    stack = np.zeros((2, 32, 32), np.uint8)
    stack[:, 8:20, 8:20] = 200
    _write(tmp_path / "in", "s", stack, [(0, 14.0, 14.0, 1, 1)])
    accepted = '"auto", "off" or a number of pixels >= 0, got'
    for bad in ("blur", -1, float("nan"), True):
        with pytest.raises(ValueError, match=f"smooth must be {accepted}"):
            batch(tmp_path / "in", tmp_path / "out", smooth=bad, **MODEL)
    parser = argparse.ArgumentParser(prog="napari-sam2")
    add_batch_parser(parser.add_subparsers(dest="command", required=True))
    for bad in ("blur", "-1"):
        args = parser.parse_args(["batch", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--smooth", bad])
        assert args.run(args) == 2
        assert f"--smooth must be {accepted}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing created, no cluster started
