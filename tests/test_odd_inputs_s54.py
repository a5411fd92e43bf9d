"""Odd-input leftovers of review s53 (X9), fixed in s54 (F6).

* blob seeding (automatic tracking's) on a frame narrower than the cell diameter range: a range whose smallest cell
  is wider than the frame is refused in words naming the frame, the range and what fits; one that only reaches past
  it is cut to the frame's short side with a warning saying so (a 100000 x 8 strip at 8-40 px ran for minutes with
  nothing said about the range);
* Ctrl-C in the instant after ``napari-sam2 track`` committed its outputs: the command still ends with its "wrote"
  line and status 0 (it died of the signal with a traceback from Python's shutdown, or said "nothing was written");
* boxes follow napari's pixel edges, as clicks do: a box from corner to corner of the image (-0.5..W - 0.5) is taken
  by the sessions; a prompts-table box that keeps nothing once cut to the image is refused before the model loads;
* ``sam2-train`` refuses bad labels before it says anything about a run (and leaves no folder).

Behaviour runs the embedded demo model on small synthetic images.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

import sam2_model as sm
from napari_sam2 import segment
from sam2_model.seeding import blob_points
from sam2_model.train.__main__ import main as train_main
from test_cli_interrupt import as_console_script

ROOT = Path(__file__).resolve().parents[1]


def blob_movie(frames: int = 3, size: int = 64) -> np.ndarray:
    """(frames, size, size) float32: one bright blob moving down a row a frame."""
    yy, xx = np.mgrid[:size, :size]
    return np.stack([np.exp(-((yy - 30 - t) ** 2 + (xx - 30) ** 2) / 50.0) * 1000 + 50
                     for t in range(frames)]).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    return sm.build_model("demo", device="cpu")


# ------------------------------------------------------------------ cell diameters wider than the frame

def test_a_diameter_range_wider_than_the_frame_is_refused_or_cut_in_words():
    """Before: blob_points on a 200 x 8 strip looked for blobs of 10-40 px (no cell of which fits) and of 8-40 px
    without a word about the frame."""
    strip = np.random.default_rng(0).random((200, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=r"cell_diameter 10-40 px is wider than the 200 x 8 px frame, 8 px across at "
                                         r"its short side: no cell of that range fits in it; give a range of at most "
                                         r"8 px \(e\.g\. 4 8\) \(--cell-diameter MIN MAX; cell_diameter=\(min, max\)\)"):
        blob_points(strip, cell_diameter=(10, 40))
    with pytest.warns(UserWarning, match=r"cell_diameter 8-40 px is wider than the 200 x 8 px frame, 8 px across at "
                                         r"its short side: cells of 8-8 px are looked for"):
        cut = blob_points(strip, cell_diameter=(8, 40))
    np.testing.assert_array_equal(cut, blob_points(strip, cell_diameter=(8, 8)))  # what it says it does
    frame = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a range that fits the frame: as before, nothing said
        blob_points(frame, cell_diameter=(8, 40))


def test_tracking_a_strip_with_a_range_wider_than_it_is_refused_in_words(model):
    """The automatic tracker's door: the refusal comes from the first frame's blob search, before any click."""
    from napari_sam2 import track_cells

    strip = np.random.default_rng(0).random((2, 120, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=r"10-40 px is wider than the 120 x 8 px frame"):
        track_cells(strip, model=model, device="cpu", cell_diameter=(10, 40))


# ------------------------------------------------------------------ Ctrl-C once the outputs are written

def test_ctrl_c_after_track_wrote_its_outputs_still_ends_with_the_wrote_line(tmp_path):
    """SIGINT sent again and again from the moment the labels file appears (it is renamed into place whole) until the
    process ends. Before: the process died of the signal (status -2) with a KeyboardInterrupt traceback from Python's
    shutdown (a torch finaliser, a thread's lock), or, in the lines after the commit, said "interrupted; nothing was
    written" with the file there."""
    np.save(tmp_path / "s.npy", blob_movie())
    (tmp_path / "p.csv").write_text("frame,obj_id,y,x,label\n0,1,30,30,1\n")
    out = tmp_path / "out.tif"
    command = [sys.executable, "-c", "import sys\n" + as_console_script(), "track", str(tmp_path / "s.npy"),
               "--device", "cpu", "--prompts", str(tmp_path / "p.csv"), "-o", str(out)]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    sent = 0
    try:
        deadline = time.monotonic() + 300
        while run.poll() is None and not out.exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        while run.poll() is None:
            run.send_signal(signal.SIGINT)
            sent += 1
            time.sleep(0.01)
        stdout, stderr = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert sent > 0, "the command ended before its output appeared: nothing was tested"
    assert run.returncode == 0, stderr
    assert f"wrote {out}" in stdout and "Traceback" not in stderr and "interrupted" not in stderr, stderr
    assert tifffile.imread(out).shape == (3, 64, 64)
    assert sorted(os.listdir(tmp_path)) == ["out.tif", "p.csv", "s.npy"]  # no staging file left


def test_the_command_called_from_python_gives_ctrl_c_back(tmp_path):
    """In a Python process (a script, a notebook, a test) the command ignores Ctrl-C only while it finishes: after
    main() returns, Ctrl-C is handled as before."""
    from napari_sam2.cli import main

    np.save(tmp_path / "s.npy", blob_movie())
    (tmp_path / "p.csv").write_text("frame,obj_id,y,x,label\n0,1,30,30,1\n")
    before = signal.getsignal(signal.SIGINT)
    assert main(["track", str(tmp_path / "s.npy"), "--device", "cpu", "--prompts", str(tmp_path / "p.csv"), "-o",
                 str(tmp_path / "out.tif")]) == 0
    assert signal.getsignal(signal.SIGINT) is before


# ------------------------------------------------------------------ boxes on napari's pixel edges

def test_a_box_from_corner_to_corner_of_the_image_is_taken_by_the_sessions(model):
    """napari draws pixel i over i - 0.5..i + 0.5: a rectangle around the whole 64 x 64 image is (-0.5, -0.5, 63.5,
    63.5). Before: every session refused it ("extends outside the 64x64 frame"). (0, 0, 64, 64) is still taken."""
    movie = blob_movie()
    whole = (-0.5, -0.5, 63.5, 63.5)
    predictor = sm.ImagePredictor(model)
    predictor.set_image(movie[0])
    masks, _, _ = predictor.predict(box=whole, multimask=False)
    assert masks.shape == (1, 64, 64)
    predictor.predict(box=(0, 0, 64, 64), multimask=False)
    sm.VideoSession(model, movie).add_prompt(0, 1, box=whole)
    with pytest.raises(ValueError, match=r"box \(-0\.6, 0\.0, 10\.0, 10\.0\) extends outside the 64x64 frame; box "
                                         r"corners \(x0, y0, x1, y1\) take -0\.5 <= x <= 63\.5 and -0\.5 <= y <= 63\.5"):
        predictor.predict(box=(-0.6, 0, 10, 10))


def test_a_table_box_that_keeps_nothing_once_cut_to_the_image_is_refused_before_the_model(model):
    """A box wholly past the image's outer pixel edges (y 63.5..70 on 64 rows: boxes are cut to -0.5..63.5, where
    napari draws the edges) keeps no height once cut. Before: the table check took it and the session refused it once
    the model was loaded, naming a box the user never gave. A box drawn from corner to corner is the whole image."""
    movie = blob_movie()
    for box in [(0, 63.5, 20, 70, 40, 1), (0, 20, 63.5, 40, 66, 1)]:
        with pytest.raises(ValueError, match=r"boxes row 0: the box from .* lies wholly outside the 64 x 64 \(rows x "
                                             r"columns\) image, whose outer pixel edges are y -0\.5\.\.63\.5 and x "
                                             r"-0\.5\.\.63\.5 .*to which boxes are cut"):
            segment(movie, boxes=[box], model=model, device="cpu")
    labels = segment(movie, boxes=[(0, -0.5, -0.5, 63.5, 63.5, 1)], model=model, device="cpu")
    assert labels.shape == movie.shape


# ------------------------------------------------------------------ sam2-train: data checked before the run is said

@pytest.mark.parametrize("labels, words", [
    (lambda shape: np.full(shape, 0.5, np.float32), "labels must be whole-number instance ids"),
    (lambda shape: -np.ones(shape, np.int16), "labels must be instance ids >= 0"),
], ids=["float", "negative"])
def test_sam2_train_refuses_bad_labels_before_it_says_anything_about_a_run(tmp_path, capsys, labels, words):
    """Before: "starting from the embedded demo weights ..." and "a new run in ...: 1 step ..." came first, then the
    refusal."""
    stack = blob_movie(frames=4)
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    tifffile.imwrite(tmp_path / "labels.tif", labels(stack.shape), photometric="minisblack")
    run = tmp_path / "run"
    code = train_main(["--out", str(run), "--stack", str(tmp_path / "stack.tif"), "--labels",
                       str(tmp_path / "labels.tif"), "--steps", "1", "--device", "cpu"])
    said = capsys.readouterr()
    assert code == 2
    assert said.err.strip().splitlines() == [said.err.strip()] and said.err.startswith(f"error: {words}"), said.err
    assert "a new run" not in said.err + said.out and "starting from" not in said.err + said.out
    assert not run.exists()
