"""Automatic tracking does no model work it throws away (real demo model; calls counted, never mocked): the
clicked-apart cue clicks only masklets that grew, the backdating of divisions finds each frame's blobs once, a
click window that grows to the whole frame reuses the whole frame's encoding."""

from __future__ import annotations

import collections

import numpy as np
import pytest

import sam2_model as sm
from sam2_model.image_predictor import ImagePredictor
from sam2_model.tracking import Lineage, Track, track_cells
from sam2_model.tracking import divisions as div
from sam2_model.tracking.detection import make_detector
from sam2_model.windows import WindowedPredictor
from test_tracking import _disc, _render  # the nuclei-like test frames of the tracking tests


@pytest.fixture(scope="module")
def model():
    return sm.build_model("demo", checkpoint="download")


def test_masklets_that_did_not_grow_are_not_clicked_apart(model) -> None:
    """Three nuclei that keep their size: no masklet grows to divisions.MIN_GROWTH x its smallest recent area, so
    the clicked-apart cue (two SAM clicks per masklet) has nothing to divide and must not click (it clicked every
    masklet on every detection frame and threw the result away: 12 of 14 calls on h16's 12-frame clip)."""
    shape = (96, 96)
    cells = [_disc(shape, (28, 28), 9), _disc(shape, (70, 34), 9), _disc(shape, (36, 72), 9)]
    frames = _render([cells] * 6, shape, seed=3)
    detector = make_detector(model, "blobs", (10, 30))
    clicked = []
    split = detector.split

    def counting_split(mask):
        clicked.append(int(np.count_nonzero(mask)))
        return split(mask)

    detector.split = counting_split
    result = track_cells(model, frames, cell_diameter=(10, 30), redetect_every=2, detector=detector)
    assert len(result.lineage) == 3 and not result.lineage.divisions(), result.lineage.rows()
    areas = [np.count_nonzero(result.labels == t.track_id, axis=(1, 2)) for t in result.lineage.rows()]
    assert all(a.max() < div.MIN_GROWTH * a.min() for a in areas), areas  # no masklet grew
    assert clicked == []


def _two_divisions_on_one_frame():
    """Labels (4, 64, 96) and lineage of two mothers (1, 2; frames 0-1) dividing on frame 2 into (3, 4) and (5, 6),
    and frames where frame 1 already shows each mother's two nuclei (so both divisions move back to frame 1)."""
    shape = (64, 96)
    pairs = {(3, 4): ((20, 22), (20, 42)), (5, 6): ((44, 54), (44, 74))}
    labels = np.zeros((4,) + shape, np.uint32)
    nuclei = []
    for mother, ((a, b), (ca, cb)) in zip((1, 2), pairs.items()):
        left, right = _disc(shape, ca, 8), _disc(shape, cb, 8)
        bridge = np.zeros(shape, bool)
        bridge[ca[0] - 3: ca[0] + 4, ca[1]: cb[1]] = True
        labels[:2][:, left | right | bridge] = mother
        labels[2:][:, left] = a
        labels[2:][:, right] = b
        nuclei += [left, right]
    lineage = Lineage([Track(1, 0, 1, 0, "divided"), Track(2, 0, 1, 0, "divided")]
                      + [Track(d, 2, 3, m, "end of stack") for m, ds in ((1, (3, 4)), (2, (5, 6))) for d in ds])
    return labels, lineage, _render([nuclei] * 4, shape, seed=5)


def test_backdating_finds_each_frames_blobs_once() -> None:
    """Two divisions found on one frame both step back over frame 1: its blobs are found once, not per division."""
    labels, lineage, frames = _two_divisions_on_one_frame()
    reads = collections.Counter()

    def read_frame(f: int) -> np.ndarray:
        reads[f] += 1
        return frames[f]

    assert div.backdate_divisions(labels, lineage, read_frame, (10, 30), 3) == 2
    assert reads == {1: 1}
    assert [(t.track_id, t.begin, t.end) for t in lineage.rows()] == [
        (1, 0, 0), (2, 0, 0), (3, 1, 3), (4, 1, 3), (5, 1, 3), (6, 1, 3)]
    assert set(np.unique(labels[1])) == {0, 3, 4, 5, 6}


def test_a_window_grown_to_the_whole_frame_reuses_the_whole_frames_encoding(model, monkeypatch) -> None:
    """A click whose window grows until it is the whole frame: the whole frame was already encoded (the size check),
    so it is encoded once, and the mask is the whole frame's own."""
    shape = (160, 200)
    image = _render([[_disc(shape, (80, 100), 55)]], shape, seed=6)[0]
    encoded = []
    set_model_input = ImagePredictor.set_model_input

    def counting(self, tensor, size, *args, **kwargs):
        encoded.append(tuple(size))
        return set_model_input(self, tensor, size, *args, **kwargs)

    predictor = WindowedPredictor(model, 40)
    predictor.set_image(image)
    monkeypatch.setattr(ImagePredictor, "set_model_input", counting)
    masks, scores, window = predictor.predict(points=[(100.0, 80.0)], labels=[1])
    monkeypatch.undo()
    assert window == (0, 0, 200, 160)
    assert encoded.count((160, 200)) == 1, encoded
    whole = ImagePredictor(model)
    whole.set_image(image)
    expected, expected_scores, _ = whole.predict(points=[(100.0, 80.0)], labels=[1])
    np.testing.assert_array_equal(masks, expected)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)
