"""Mends of reviews R3 and F6 (s54, M4).

* a lazy labels stack whose ids are not known (a zarr array, a FramesView) with an id over 16 bits in its last frame
  (a tracking's ids grow with time) is written as the 32-bit TIFF at once: its last frame is read first, and every
  frame once (the 16-bit hyperstack was compressed up to the first such frame, thrown away and written again);
* a stack that changes between two reads is never written with wrapped ids (the writer of 8bd8a86^ read it once for
  its highest id and again to write it: 70005 became 4469 in a 16-bit file);
* a box on a windowed session may reach the frame's outer pixel edge (-0.5, napari's) in a window at the frame's edge
  (it said "lies outside its window");
* the tracker's step relays (``timed``, ``_as_work``) are :func:`sam2_model.work_steps.relay`: closed, they close the
  steps they relay.
"""

from __future__ import annotations

from typing import Any, Iterator, List

import numpy as np
import pytest
import tifffile

import sam2_model as sm
from napari_sam2.export import Calibration, FrameStack, imagej_labels, save_labels_tiff
from sam2_model.tracking.tracker import WorkStep, _as_work, timed
from test_mends_s54 import ReadCounter  # (frames read, counted)

FRAMES = 8


def growing_ids(top: int = 70_000, from_frame: int = 5, until: int = FRAMES) -> np.ndarray:
    """(FRAMES, 64, 96) uint32 labels: ids 1 and 3 throughout, id ``top`` on frames ``from_frame`` to ``until`` - 1
    (id 2 in its place on the others)."""
    labels = np.zeros((FRAMES, 64, 96), np.uint32)
    for t in range(FRAMES):
        labels[t, 5 + t:25 + t, 10:30] = 1
        labels[t, 40:55, 40 + 2 * t:60 + 2 * t] = top if from_frame <= t < until else 2
        labels[t, 2:8, 80:90] = 3
    return labels


@pytest.mark.parametrize("calibration", [None, "um"])
def test_a_late_id_over_16_bits_is_found_in_the_last_frame_and_each_frame_read_once(tmp_path, calibration):
    """Ids over 65535 from frame 5 on, as a tracking's ids grow: the last frame is read first and the 32-bit TIFF
    written at once, each frame read once. Before: the 16-bit hyperstack was read and compressed up to frame 5, thrown
    away, and the TIFF written again (frames 0-5 read twice). Same bytes as the whole array gives; progress 1..T."""
    cal = None if calibration is None else Calibration((0.5, 0.5), "micrometer", 2.0, "second")
    labels = growing_ids()
    stack = ReadCounter(labels)
    seen: List[int] = []
    save_labels_tiff(stack, tmp_path / "lazy.tif", "TYX", cal, lambda done, total: seen.append(done))
    assert stack.reads == {t: 1 for t in range(FRAMES)}, dict(stack.reads)
    assert seen == list(range(1, FRAMES + 1))
    save_labels_tiff(labels, tmp_path / "whole.tif", "TYX", cal)
    assert (tmp_path / "lazy.tif").read_bytes() == (tmp_path / "whole.tif").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lazy.tif", "whole.tif"]  # no temporary file left
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "lazy.tif"), labels)


def test_an_id_over_16_bits_in_a_middle_frame_only_still_gives_the_32_bit_tiff(tmp_path):
    """Id 70000 on frames 2-3 only (the last frame fits): the hyperstack stops at frame 2 and the 32-bit TIFF is
    written; the last frame, read first, is read once; the file is the whole array's, byte for byte."""
    labels = growing_ids(from_frame=2, until=4)
    stack = ReadCounter(labels)
    save_labels_tiff(stack, tmp_path / "lazy.tif", "TYX")
    assert stack.reads == {t: 2 if t <= 2 else 1 for t in range(FRAMES)}, dict(stack.reads)
    save_labels_tiff(labels, tmp_path / "whole.tif", "TYX")
    assert (tmp_path / "lazy.tif").read_bytes() == (tmp_path / "whole.tif").read_bytes()
    with tifffile.TiffFile(tmp_path / "lazy.tif") as tif:
        assert not tif.is_imagej and tif.pages[0].dtype == np.uint32


@pytest.mark.parametrize("failing", [FRAMES - 1, 3])
def test_a_frame_that_cannot_be_read_leaves_the_old_file(tmp_path, failing):
    """The last frame, read first, or another that cannot be read fails the export whole: the old file stays and no
    temporary file is left (guard)."""
    class Failing(ReadCounter):
        def __getitem__(self, t: Any) -> np.ndarray:
            if int(t) == failing:
                raise OSError("disk gone")
            return super().__getitem__(t)

    path = tmp_path / "l.tif"
    path.write_bytes(b"old")
    with pytest.raises(OSError, match="disk gone"):
        save_labels_tiff(Failing(growing_ids()), path, "TYX")
    assert [p.name for p in tmp_path.iterdir()] == ["l.tif"] and path.read_bytes() == b"old"


class Changing(ReadCounter):
    """Each further read of a frame adds 70000 to its ids (a stack that changes while it is read)."""

    def __getitem__(self, t: Any) -> np.ndarray:
        frame = super().__getitem__(t).copy()
        frame[frame > 0] += 70_000 * (self.reads[int(t)] - 1)
        return frame


def test_a_stack_that_changes_between_reads_is_not_written_with_wrapped_ids(tmp_path):
    """R3 (8bd8a86 fixed it untested): the writer before read the stack for its highest id (5 and 300: 16 bits),
    then again to write it, when it held 70005 and 70300, written as uint16 4469 and 4764. Now each frame is read
    once and its ids checked as written: the file holds ids the stack held."""
    labels = np.zeros((4, 32, 32), np.uint32)
    labels[:, 2:6, 3:9], labels[:, 10:14, 1:4] = 5, 300
    save_labels_tiff(Changing(labels), tmp_path / "l.tif")
    written = set(np.unique(tifffile.imread(tmp_path / "l.tif")).tolist())
    assert written <= {0, 5, 300, 70_005, 70_300}, written  # (4469 = 70005 mod 65536: a wrapped id)


def test_the_ids_of_a_stack_are_read_only_by_the_write():
    """FrameStack.max() / min() read every frame where its ids were not known, a pass nothing reached any more (the
    write checks such a stack's planes): gone. Asked whether its ids fit 16 bits, a stack that does not know them says
    so (ValueError) instead of reading them; an array is read."""
    from napari_sam2.export import ids_fit_16_bits

    stack = ReadCounter(growing_ids())
    frames = FrameStack.of(stack)
    assert not hasattr(frames, "max") and not hasattr(frames, "min")
    with pytest.raises(ValueError, match="checked plane by plane as they are written"):
        ids_fit_16_bits(frames)
    with pytest.raises(ValueError, match="checked plane by plane"):
        imagej_labels(frames, "TYX", None)
    assert imagej_labels(frames, "TYX", None, check_ids=False) is not None and not stack.reads
    assert not ids_fit_16_bits(growing_ids()) and ids_fit_16_bits(growing_ids(top=65_535))
    assert not ids_fit_16_bits(-np.ones((2, 3), np.int32)) and ids_fit_16_bits(np.zeros((0, 3), np.int64))


# ---------------------------------------------------------------- a box at the frame's edge in a window

@pytest.fixture(scope="module")
def model():
    return sm.build_model("demo", device="cpu", image_size=256)


def test_a_box_on_the_frames_outer_pixel_edge_is_taken_by_a_windowed_session(model):
    """napari draws pixel 0 over -0.5..0.5: a box dragged from the image's corner starts at (-0.5, -0.5). The windowed
    session placed the object's window at (0, 0) and refused the box: "a click or box of object 1 lies outside its
    window (0, 0, 128, 128)". The window's outer edges take it as a frame's do; a box past them is still refused."""
    image = np.full((256, 256), 0.1, np.float32)
    image[:12, :12] = 0.9  # a bright square in the top-left corner
    session = sm.WindowedSession(model, image[None], window=64)
    logits = session.add_prompt(0, 1, box=(-0.5, -0.5, 11.5, 11.5))
    assert logits.shape == (1, 256, 256)
    x0, y0, _, _ = session.window_of(1)
    assert (x0, y0) == (0, 0)
    session.add_prompt(0, 1, box=(-0.5, -0.5, 11.5, 11.5))  # again, in the object's window on this frame
    with pytest.raises(ValueError, match="lies outside its window"):
        session.add_prompt(0, 1, box=(-0.5, -0.5, 200.0, 200.0))  # wider than the window: refused, as before


# ---------------------------------------------------------------- the tracker's relays

def _work(log: List[str]) -> Iterator[WorkStep]:
    try:
        for done in range(3):
            yield WorkStep(0, "propagating", done, 3)
        return "labels"
    finally:
        log.append("closed")


def test_timed_relays_the_steps_with_an_eta_and_closes_them():
    """timed: each step with eta_s from the pace so far; returns what the work returns; closed part-way (a Cancel),
    the work it relays is closed (GeneratorExit reaches it)."""
    ticks = iter([0.0, 2.0, 4.0])
    log: List[str] = []
    steps = timed(_work(log), clock=lambda: next(ticks))
    got = []
    try:
        while True:
            got.append(next(steps).eta_s)
    except StopIteration as stop:
        assert stop.value == "labels"
    assert got == [None, 4.0, 2.0] and log == ["closed"]
    log.clear()
    steps = timed(_work(log))
    next(steps)
    steps.close()
    assert log == ["closed"]


def test_detection_steps_are_relayed_as_work_steps_with_the_count_found():
    """_as_work: (stage, done, total) as WorkSteps of frame t, with the detector's ``found`` as each step comes;
    returns what the steps return; closed part-way, it closes them."""
    class Detector:
        found = None

    detector, log = Detector(), []

    def steps() -> Iterator[tuple]:
        try:
            detector.found = 2
            yield "seed", 1, 4
            detector.found = 5
            yield "seed", 2, 4
            return "masks"
        finally:
            log.append("closed")

    work = _as_work(7, steps(), detector)
    assert next(work) == WorkStep(7, "seed", 1, 4, found=2)
    assert next(work) == WorkStep(7, "seed", 2, 4, found=5)
    with pytest.raises(StopIteration) as stop:
        next(work)
    assert stop.value.value == "masks" and log == ["closed"]
    work = _as_work(7, steps(), detector)
    next(work)
    work.close()
    assert log == ["closed", "closed"]
