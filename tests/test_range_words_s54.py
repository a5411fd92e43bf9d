"""Words about part of a movie name the movie's frames where they are made (s54, M2): a session or frame source over
frames A..B (read as 0..B-A) is told A (``first_frame=``) and its blank-frame warnings and frame errors name the movie's
frames as they are raised, during the run (they were held to the end of a ``frames=`` run and rewritten by pattern);
"no cells were detected on frames A-B" in ``track_cells``, ``track --auto --frames`` and ``batch --frames`` alike
(the last two said 0-(B-A)); ``batch(start_frame=None)`` is the default start and ``start_frame=5.5`` is refused in
words (were a bare TypeError and a run from frame 5); ``frames=(0, 10**30)`` names no internal limit.
Real demo model at 256 px, small synthetic movies."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_sam2
import sam2_model as sm
from napari_sam2.batch import batch
from napari_sam2.batch_worker import AxisOptions, ModelSpec, StackTask, process_stack
from napari_sam2.cli import main
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model.synthetic import make_timelapse

FIRST, LAST = 4, 7  # of 10 frames
MODEL = dict(model="demo", checkpoint="download", device="cpu", image_size=256)


@pytest.fixture(scope="module")
def net():
    return sm.build_model("demo", device="cpu", image_size=256)


@pytest.fixture(scope="module")
def flat(tmp_path_factory) -> Path:
    """A 10-frame movie with nothing in it (one grey value and a little noise): no cell is ever detected."""
    path = tmp_path_factory.mktemp("flat") / "flat.tif"
    noise = np.random.default_rng(54).integers(0, 3, (10, 64, 64))
    tifffile.imwrite(path, (100 + noise).astype(np.uint8), photometric="minisblack")
    return path


def _blank(said) -> list:
    return [str(w.message) for w in said if "blank" in str(w.message)]


def test_a_session_over_part_of_a_movie_names_the_movies_frames_as_it_warns(net) -> None:
    """Before: ``first_frame=`` was no argument of the sessions or FrameSource (TypeError), so their warnings named
    the index of the frames read (frame 2 for the movie's frame 12)."""
    cells = make_timelapse(num_frames=6, shape=(96, 96), num_cells=3, seed=5301)
    image = cells.image.copy()
    image[2] = 0
    obj = clickable_objects(cells.labels[1])[0]
    x, y = click_point(cells.labels[1] == obj)
    for make in (lambda: sm.VideoSession(net, image, first_frame=10),
                 lambda: sm.WindowedSession(net, image, window=32, first_frame=10),
                 lambda: sm.VideoSession(net, sm.FrameSource(image, image_size=256, first_frame=10))):
        session = make()
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            session.add_prompt(2, 1, points=[[x, y]], labels=[1])
            assert [text.split(":")[0] for text in _blank(said)] == ["frame 12 is blank (every pixel is 0)"]
            steps = session.propagate(1)
            for _ in steps:
                pass
        assert _blank(said)[1].startswith("1 of the 5 frames tracked is blank (frame 12; frame 12: every pixel is 0)")
        assert session.blank_summary(range(6)).startswith("1 of the 6 frames tracked is blank (frame 12;")
    source = sm.FrameSource(image, image_size=256, first_frame=10)
    with pytest.raises(ValueError, match=r"first_frame=3 was given with a FrameSource whose first_frame is 10: give "
                                         r"first_frame= to the FrameSource instead"):
        sm.VideoSession(net, source, first_frame=3)
    assert source.reopen().first_frame == 10
    with pytest.raises(ValueError, match="first_frame must be the movie's number of frame 0"):
        sm.FrameSource(image, image_size=256, first_frame=-1)
    broken = image.astype(np.float32)
    broken[3, 5, 5] = np.nan
    with pytest.raises(ValueError, match=r"frames: frame 13 "):  # the movie's number of the frame read
        sm.FrameSource(broken, image_size=256, contrast_limits=(0, 255), first_frame=10).raw(3)


def test_track_cells_over_a_range_warns_during_the_run_in_the_movies_numbers(net) -> None:
    """Before: the warnings of a ``frames=`` run were held until it ended (none had come when ``progress`` was told
    of the frames after the blank one)."""
    cells = make_timelapse(num_frames=8, shape=(96, 96), num_cells=4, seed=5301)
    image = cells.image.copy()
    image[4] = 0
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        seen = []
        result = napari_sam2.track_cells(image, model=net, frames=(2, 6),
                                         progress=lambda done, total: seen.append(len(_blank(said))))
    assert result.first_frame == 2
    assert seen[-1] > 0, seen  # said before the run's last frame was told
    words = _blank(said)
    assert words and all("blank (frame 4; frame 4: every pixel is 0)" in text for text in words), words


def test_no_cells_is_said_in_the_stacks_frames_by_track_cells_track_and_batch(flat, net, tmp_path, capsys) -> None:
    """Before: ``track --auto --frames 4-7`` and a batch task's note said "no cells were detected on frames 0-3"."""
    assert napari_sam2.track_cells(str(flat), model=net, frames=(FIRST, LAST)).note.startswith(
        f"no cells were detected on frames {FIRST}-{LAST}: ")
    code = main(["track", str(flat), "--auto", "--frames", f"{FIRST}-{LAST}", "--table", str(tmp_path / "t.csv"),
                 "--device", "cpu", "--image-size", "256"])
    err = capsys.readouterr().err
    assert code == 0 and f"no cells were detected on frames {FIRST}-{LAST}: " in err, err
    task = StackTask("flat", str(flat), str(tmp_path / "out"), ModelSpec(**MODEL), auto=True,
                     tracking_options={"start_frame": FIRST}, axes=AxisOptions(names="cli"), frames=(FIRST, LAST))
    row = process_stack(task)
    assert row["status"] == "ok", row["error"]
    assert f"no cells were detected on frames {FIRST}-{LAST}: " in row["note"], row["note"]


def test_batch_start_frame_none_is_the_default_and_a_fraction_is_refused(flat, tmp_path) -> None:
    """Before: start_frame=None with frames=(4, 7) was a bare TypeError (track_cells takes None as the range's first
    frame), and start_frame=5.5 ran from frame 5."""
    distributed = pytest.importorskip("distributed")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        table = batch(str(flat), tmp_path / "out", auto=True, frames=(FIRST, LAST), start_frame=None, client=client,
                      progress=False, **MODEL)
    row = table.iloc[0]
    assert row["status"] == "ok", row["error"]
    assert (row["frames"], row["frame_range"]) == (LAST - FIRST + 1, f"{FIRST}-{LAST}")
    assert f"frames {FIRST}-{LAST}" in row["note"]
    for start in (5.5, "5", -1, True):
        with pytest.raises(ValueError, match=r"start_frame must be a frame number, a whole number from 0 \(the "
                                             r"stack's number; left out or None: the first frame of the range, 4\); "
                                             rf"got {start!r}"):
            batch(str(flat), tmp_path / "refused", auto=True, frames=(FIRST, LAST), start_frame=start,
                  progress=False, **MODEL)
        assert not (tmp_path / "refused").exists()


def test_a_range_past_any_stack_names_no_internal_limit(flat, tmp_path) -> None:
    """Before: "frames=(0, 10**30) is outside the movie's frames 0-9223372036854775806"."""
    with pytest.raises(ValueError) as refused:
        batch(str(flat), tmp_path / "out", frames=(0, 10**30), progress=False, **MODEL)
    text = str(refused.value)
    assert str(sys.maxsize - 1) not in text and "past the last frame of any stack" in text
    assert "within the stacks' frames 0-N" in text and not (tmp_path / "out").exists()
