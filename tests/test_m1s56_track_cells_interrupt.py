"""``sam2_model.tracking.track_cells`` on Ctrl-C (M1, s56): the KeyboardInterrupt carries the frames finished as its
``result`` (one tracking loop; ``napari-sam2 track --auto`` writes them). Real demo model on a tiny synthetic movie;
Ctrl-C is a KeyboardInterrupt raised from the progress callback once 2 frames are done."""

from __future__ import annotations

import numpy as np
import pytest

import sam2_model as sm
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import TrackingResult, track_cells

FRAMES = 5


@pytest.fixture(scope="module")
def model():
    return sm.build_model("demo", checkpoint="download")


@pytest.fixture(scope="module")
def movie() -> np.ndarray:
    return make_timelapse(num_frames=FRAMES, shape=(64, 64), num_cells=3, seed=561).image


def ctrl_c_after(frames: int):
    def progress(done: int, total: int) -> None:
        if done >= frames:
            raise KeyboardInterrupt

    return progress


def test_interrupt_keeps_the_frames_finished_as_the_errors_result(model, movie) -> None:
    whole = track_cells(model, movie, divisions=False)
    assert len(whole.frames_tracked) == FRAMES and whole.labels[:2].any()
    with pytest.raises(KeyboardInterrupt) as stop:
        track_cells(model, movie, divisions=False, progress=ctrl_c_after(2))
    partial = stop.value.result
    assert isinstance(partial, TrackingResult)
    assert partial.frames_tracked == [0, 1]
    assert partial.note == f"interrupted after 2 of {FRAMES} frames"
    assert partial.labels.shape == whole.labels.shape and partial.labels.dtype == np.uint32
    np.testing.assert_array_equal(partial.labels[:2], whole.labels[:2])  # the frames done, as a whole run has them
    assert not partial.labels[2:].any()  # the frame in progress and those after it left out whole
    ids = set(np.unique(partial.labels[:2])) - {0}
    assert {t.track_id for t in partial.lineage.rows()} == ids  # the lineage after frame 1: the tracks seen so far
    assert all(t.end <= 1 for t in partial.lineage.rows())


def test_interrupt_after_the_last_frame_keeps_nothing(model, movie) -> None:
    """Ctrl-C once every frame is done (the end-of-run division steps not run): no result of the whole run."""
    with pytest.raises(KeyboardInterrupt) as stop:
        track_cells(model, movie[:3], progress=ctrl_c_after(3))
    assert getattr(stop.value, "result", None) is None
