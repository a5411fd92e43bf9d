"""Files the API and the command line open by path are closed when the call ends (returned, failed or stopped).

Before: ``napari_sam2.segment(path)``, ``track_cells(path)`` and ``napari-sam2 track`` left the TIFF open, and it was
closed only by garbage collection with "ResourceWarning: unclosed file" (an error under ``-W error``); a failed or
stopped call kept the file open while its traceback lived.
"""

from __future__ import annotations

import gc
import os
import warnings
from pathlib import Path
from typing import Iterator, List

import numpy as np
import pytest
import tifffile

import napari_sam2
from napari_sam2.cli import main
from sam2_model.frames_io import TiffStack, open_stack
from widget_helpers import small_movie

RUN = dict(checkpoint="embedded", device="cpu")


def open_descriptors(path: Path) -> List[str]:
    """This process's file descriptors open on ``path`` (Linux: /proc/self/fd)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if os.path.realpath(fd) == str(path.resolve()):
                found.append(fd.name)
        except OSError:  # the descriptor of the listing itself, closed by now
            pass
    return found


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="lists open files through /proc")


@pytest.fixture
def movie_tif(tmp_path: Path) -> Path:
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, small_movie(3, 1).image, photometric="minisblack", metadata={"axes": "TYX"})
    return path


@pytest.fixture
def resource_warnings() -> Iterator[List[warnings.WarningMessage]]:
    """The ResourceWarnings raised while the test runs, garbage collected at its end (pytest -W error makes each one
    an error)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        yield caught
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]


def first_cell_click(path: Path) -> list:
    movie = small_movie(3, 1)
    ys, xs = np.nonzero(movie.labels[0] == 1)
    return [(0, float(np.median(ys)), float(np.median(xs)), 1, 1)]


def test_segment_of_a_path_closes_the_file(movie_tif: Path, resource_warnings: list) -> None:
    labels = napari_sam2.segment(str(movie_tif), clicks=first_cell_click(movie_tif), **RUN)
    assert labels.shape == (3, 96, 96) and labels.max() == 1
    gc.collect()


@needs_proc
def test_segment_stopped_or_failed_closes_the_file_at_once(movie_tif: Path, resource_warnings: list) -> None:
    """Ctrl-C (here from the progress callback) and a refused input close the file while the exception lives: the
    file was open while frames were read."""
    seen: List[List[str]] = []

    def stop(done: int, total: int) -> None:
        seen.append(open_descriptors(movie_tif))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as stopped:
        napari_sam2.segment(movie_tif, clicks=first_cell_click(movie_tif), progress=stop, **RUN)
    assert seen and seen[0], "the file is open while frames are read"
    assert open_descriptors(movie_tif) == [] and stopped.traceback  # the traceback (with its frames) still lives
    with pytest.raises(ValueError, match="clicks row 0") as refused:
        napari_sam2.segment(movie_tif, clicks=[(9, 5, 5, 1, 1)], **RUN)
    assert open_descriptors(movie_tif) == [] and refused.traceback


@needs_proc
def test_track_cells_of_a_path_closes_the_file(movie_tif: Path, resource_warnings: list) -> None:
    """Closed when the call returns, and when it refuses: at once, while the traceback (which holds the call's frames)
    lives, not later by garbage collection."""
    result = napari_sam2.track_cells(str(movie_tif), cell_diameter=(8, 30), **RUN)
    assert result.labels.shape == (3, 96, 96)
    assert open_descriptors(movie_tif) == []
    with pytest.raises(ValueError, match="start_frame") as refused:
        napari_sam2.track_cells(movie_tif, start_frame=7, **RUN)
    assert open_descriptors(movie_tif) == [] and refused.traceback
    gc.collect()


def test_track_of_a_tiff_closes_it(movie_tif: Path, tmp_path: Path, resource_warnings: list) -> None:
    prompts = tmp_path / "clicks.csv"
    frame, y, x, label, obj = first_cell_click(movie_tif)[0]
    prompts.write_text(f"frame,obj_id,y,x,label\n{frame},{obj},{y:.0f},{x:.0f},{label}\n")
    assert main(["track", str(movie_tif), "--prompts", str(prompts), "-o", str(tmp_path / "labels.tif"),
                 "--checkpoint", "embedded", "--device", "cpu"]) == 0
    assert main(["track", str(movie_tif), "--auto", "--table", str(tmp_path / "tracks.csv"), "--checkpoint",
                 "embedded", "--device", "cpu"]) == 0
    gc.collect()


@needs_proc
def test_a_tiff_stack_closes_as_a_context_manager_and_once_closed_stays_closed(movie_tif: Path,
                                                                               resource_warnings: list) -> None:
    from sam2_model.frames_io import close_stack

    with open_stack(movie_tif) as stack:
        assert isinstance(stack, TiffStack) and stack[1].shape == (96, 96)
        assert open_descriptors(movie_tif)
    assert open_descriptors(movie_tif) == []
    stack.close()  # again: nothing happens
    close_stack(stack)
    close_stack(np.zeros((2, 8, 8)))  # nothing to close


def test_a_tiff_stack_never_closed_is_closed_without_a_warning(movie_tif: Path, resource_warnings: list) -> None:
    """A stack dropped without close() (a caller that forgot) is closed when collected, quietly."""
    stack = open_stack(movie_tif)
    assert stack[0].shape == (96, 96)
    del stack
    gc.collect()
