"""The automatic tracker's per-frame book-keeping reads each track's box, not the whole frame, with the same results.

Before, ``CellTracker._update`` made ``labels == track_id`` over the whole frame for every track on every frame, then
counted it, found its pieces (``divisions.SplitWatch``: ``find_objects`` of the whole mask), tested the neck rule
(``divisions.NeckWatch``) and recorded it (``_observe``: ``np.nonzero`` of the whole mask): n whole-frame passes a
frame for n cells. Now the frame's boxes are found once (``ndimage.find_objects``) and each track is a
``divisions.Crop`` of its box; the rules that depend on the frame (a piece or masklet on the frame's edge, a cell near
the border) keep their meaning through the crop's place in the frame.

The results must not change: labels bit for bit, lineage rows (begin, end, parent, end reason) against the tracker of
commit ``OLD_COMMIT`` (the code before this change, read from git), on crowded frames with divisions (split and neck),
cells entering and leaving, min_area pieces, overlaps allowed, object windows and reverse tracking.
"""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
from scipy import ndimage

from sam2_model import build_model
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import CellTracker
from sam2_model.tracking import divisions as div
from sam2_model.tracking.tracker import _TrackState

OLD_COMMIT = "41a8e88"  # the tracker whose book-keeping made whole-frame masks per track
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model() -> Any:
    return build_model("demo", device="cpu", image_size=128)


@pytest.fixture(scope="module")
def old_tracker(tmp_path_factory: pytest.TempPathFactory) -> type:
    """``CellTracker`` of ``OLD_COMMIT`` with that commit's division rules, loaded beside today's modules."""
    folder = tmp_path_factory.mktemp("old_tracker")
    sources = {}
    for name in ("tracker", "divisions"):
        try:
            sources[name] = subprocess.run(
                ["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:src/sam2_model/tracking/{name}.py"],
                check=True, capture_output=True, text=True).stdout
        except (OSError, subprocess.CalledProcessError) as error:
            pytest.skip(f"the old tracker is read from git ({OLD_COMMIT}): {error}")
    sources["tracker"] = sources["tracker"].replace("from . import divisions as div",
                                                    "from . import _old_divisions as div")
    modules = {}
    for name, module_name in (("divisions", "_old_divisions"), ("tracker", "_old_tracker")):
        path = folder / f"{module_name}.py"
        path.write_text(sources[name])
        full = f"sam2_model.tracking.{module_name}"
        spec = importlib.util.spec_from_file_location(full, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[full] = module
        spec.loader.exec_module(module)
        modules[name] = module
    yield modules["tracker"].CellTracker
    for module_name in ("_old_divisions", "_old_tracker"):
        sys.modules.pop(f"sam2_model.tracking.{module_name}", None)


def _disc(shape: tuple, centre: tuple, radius: float) -> np.ndarray:
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def _frames_of_shapes(seed: int, shape: tuple = (70, 90)) -> List[np.ndarray]:
    """Label frames (H, W) uint32 of cells the division rules look at: touching pairs with a waist (neck), pairs cut
    apart (two pieces), ellipses, cells cut by the frame's edges, specks."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(6):
        labels = np.zeros(shape, np.uint32)
        for cell in range(1, 9):
            y, x = rng.integers(-6, shape[0] + 6), rng.integers(-6, shape[1] + 6)
            r = float(rng.uniform(4, 11))
            kind = rng.integers(0, 4)
            if kind == 0:  # two touching daughters: a waist between two cores
                mask = _disc(shape, (y, x - r * 0.9), r) | _disc(shape, (y, x + r * 0.9), r)
            elif kind == 1:  # a cell cut in two pieces
                mask = _disc(shape, (y, x), r)
                mask[:, max(x - 1, 0):max(x + 1, 0)] = False
            elif kind == 2:
                yy, xx = np.ogrid[:shape[0], :shape[1]]
                mask = ((yy - y) / r) ** 2 + ((xx - x) / (2 * r)) ** 2 <= 1
            else:  # a cell and a speck
                mask = _disc(shape, (y, x), r) | _disc(shape, (y + r + 3, x), 1.5)
            labels[mask & (labels == 0)] = cell
        frames.append(labels)
    return frames


@pytest.mark.parametrize("seed", range(4))
def test_crops_give_the_division_rules_whole_frame_answers(seed: int) -> None:
    """two_pieces, neck_split, touches_edge and the two watches on each cell's Crop (its find_objects box) give what
    they give on the cell's whole-frame mask, at the frame's edges too."""
    seen = {"two pieces": 0, "neck": 0, "edge": 0}
    whole_split, crop_split = div.SplitWatch(), div.SplitWatch()
    whole_neck, crop_neck = div.NeckWatch(8), div.NeckWatch(8)
    for labels in _frames_of_shapes(seed):
        for cell, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is None:
                continue
            mask = labels == cell
            crop = div.Crop(labels[box] == cell, box, labels.shape)
            area = int(mask.sum())
            assert div.touches_edge(crop) == div.touches_edge(mask)
            seen["edge"] += div.touches_edge(mask)
            for previous in (area, 1.5 * area):
                expected, got = div.two_pieces(mask, previous), div.two_pieces(crop, previous)
                assert (expected is None) == (got is None)
                if expected is not None:
                    seen["two pieces"] += 1
                    assert all(np.array_equal(a, b) for a, b in zip(expected, got))
            expected, got = div.neck_split(mask, 8), div.neck_split(crop, 8)
            assert (expected is None) == (got is None)
            if expected is not None:
                seen["neck"] += 1
                assert all(np.array_equal(a, b) for a, b in zip(expected, got))
            for final in (False, True):
                a = whole_split.update(cell, mask, area * 1.2, final)
                b = crop_split.update(cell, crop, area * 1.2, final)
                assert (a is None) == (b is None) and (a is None or all(map(np.array_equal, a, b)))
                a = whole_neck.update(cell, mask, area, area / 1.3, final)
                b = crop_neck.update(cell, crop, area, area / 1.3, final)
                assert (a is None) == (b is None) and (a is None or all(map(np.array_equal, a, b)))
    assert all(seen.values()), seen  # the shapes reach every rule


class _Cues(logging.Handler):
    """The division cues and end reasons the tracker logs (its debug lines), to show what a case exercised."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.cues: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if " divides (" in message:
            self.cues.append(message.split(" divides (")[1].split(")")[0])


def _run(kind: type, model: Any, movie: Any, **options: Any) -> Dict[str, Any]:
    """Every frame's labels and the lineage rows of ``kind`` tracking ``movie`` with its true cells as detections."""
    def detector(frame: np.ndarray) -> List[np.ndarray]:
        t = next(i for i in range(len(movie.image)) if np.array_equal(frame, movie.image[i]))
        return [movie.labels[t] == c for c in np.unique(movie.labels[t]) if c]

    options.setdefault("detector", detector)  # None: the tracker's own (make_detector)
    handler = _Cues()
    logger = logging.getLogger(kind.__module__)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        tracker = kind(model, movie.image, **options)
        frames = {t: labels.copy() for t, labels, _ in tracker.run()}
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return {"frames": frames, "lineage": tracker.lineage.rows(), "cues": handler.cues}


class _Movie:
    """A movie as make_timelapse gives one: image (T, H, W) uint8, labels (T, H, W) uint32."""

    def __init__(self, image: np.ndarray, labels: np.ndarray) -> None:
        self.image, self.labels = image, labels


def _necks(frames: int = 8, shape: tuple = (128, 128)) -> _Movie:
    """Round cells that become two touching daughters with a waist (the neck rule's division: the masklet keeps
    covering both), one of them on the frame's edge (not tested there)."""
    image = np.zeros((frames,) + shape, np.uint8)
    labels = np.zeros((frames,) + shape, np.uint32)
    for t in range(frames):
        for k, (y, x) in enumerate([(32, 32), (32, 92), (92, 40), (94, 96), (6, 60)], start=1):
            if t < 3:
                mask = _disc(shape, (y, x), 10)
            else:
                gap = 8 + (t - 3)
                mask = _disc(shape, (y, x - gap), 9.5) | _disc(shape, (y, x + gap), 9.5)
            image[t][mask] = 200
            labels[t][mask & (labels[t] == 0)] = k
    return _Movie(image, labels)


def _timelapse(**options: Any) -> Any:
    return lambda: make_timelapse(**options)


# each case: the movie, the tracker's options, and what it must reach (division cues, end reasons) to be worth
# comparing; the detector gives the true cells of each frame (entering ones too) on detection frames
CASES = {
    # crowded frames: cells that divide, enter and leave, touch the border; min_area drops pieces
    "crowded": dict(movie=_timelapse(num_frames=9, shape=(120, 150), num_cells=16, seed=3, radius_fraction=0.08),
                    options=dict(min_area=40, cell_diameter=(10, 40), redetect_every=3),
                    cues={"split", "two detections", "halved neighbour"}, ends={"divided", "lost"}),
    "size order": dict(movie=_timelapse(num_frames=8, shape=(120, 150), num_cells=14, seed=11, radius_fraction=0.08),
                       options=dict(non_overlap=False, min_area=60, cell_diameter=(10, 40), redetect_every=2),
                       ends={"lost"}),
    "windows": dict(movie=_timelapse(num_frames=7, shape=(150, 200), num_cells=10, seed=11, radius_fraction=0.07),
                    options=dict(window=64, min_area=60, cell_diameter=(10, 40), redetect_every=2),
                    cues={"two detections"}, ends={"divided", "left the field"}),
    "reverse": dict(movie=_timelapse(num_frames=8, shape=(120, 150), num_cells=14, seed=5, radius_fraction=0.08),
                    options=dict(reverse=True, start_frame=7, min_area=40, cell_diameter=(10, 40),
                                 redetect_every=3),
                    ends={"lost", "left the field"}),
    "rare detection": dict(movie=_timelapse(num_frames=10, shape=(110, 110), num_cells=9, seed=2,
                                            radius_fraction=0.09),
                           options=dict(min_area=30, cell_diameter=(8, 40), redetect_every=100, max_lost_frames=1),
                           ends={"lost"}),
    "necks": dict(movie=_necks, options=dict(min_area=30, cell_diameter=(10, 40), redetect_every=100),
                  cues={"neck"}, ends={"divided"}),
    # the default detector (blobs, then SAM 2's masks): the clicked-apart cue's candidates are read too
    "detector": dict(movie=_timelapse(num_frames=8, shape=(96, 96), num_cells=7, seed=3, radius_fraction=0.1),
                     options=dict(detector=None, cell_diameter=(10, 40), redetect_every=2),
                     cues={"two detections"}, ends={"divided", "lost"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tracking_gives_the_old_labels_lineage_and_divisions(model: Any, old_tracker: type, case: str) -> None:
    """Every frame's labels bit for bit, the lineage rows (divisions and end reasons) and the division cues taken
    are those of the tracker before this change; each case reaches the cues and end reasons it is there for."""
    movie = CASES[case]["movie"]()
    options = {"window": None, **CASES[case]["options"]}
    new, old = _run(CellTracker, model, movie, **options), _run(old_tracker, model, movie, **options)
    assert sorted(new["frames"]) == sorted(old["frames"])
    for t in new["frames"]:
        np.testing.assert_array_equal(new["frames"][t], old["frames"][t], err_msg=f"{case}: frame {t}")
    assert new["lineage"] == old["lineage"]
    assert new["cues"] == old["cues"]
    assert CASES[case].get("cues", set()) <= set(new["cues"]), new["cues"]
    assert CASES[case].get("ends", set()) | {"end of stack"} <= {row.end_reason for row in new["lineage"]}
    print(case, sorted(set(new["cues"])), len(new["lineage"]), "tracks")


def test_book_keeping_reads_boxes_not_whole_frames(model: Any) -> None:
    """``_update`` of 400 small cells on a 2048 x 2048 frame costs far less than a whole-frame mask per cell (it
    made one, counted it, found its pieces and its pixels: 400 whole-frame passes, now one find_objects)."""
    side, count = 2048, 400
    labels = np.zeros((side, side), np.uint32)
    step = side // 20
    for k in range(count):
        y, x = (k // 20) * step + step // 2, (k % 20) * step + step // 2
        labels[y - 6:y + 6, x - 6:x + 6] = k + 1
    tracker = CellTracker(model, np.zeros((2, 64, 64), np.uint8), detector=lambda frame: [], min_area=10)
    for k in range(1, count + 1):
        tracker.lineage.add(k, 0, 0)
        tracker._states[k] = _TrackState(areas=deque([144], maxlen=8), last_seen=0)
    ids = list(range(1, count + 1))

    start = time.perf_counter()  # one whole-frame pass as the old code made per cell (mask, count, pixels)
    for _ in range(5):
        mask = labels == 7
        np.count_nonzero(mask)
        np.nonzero(mask)
    whole = (time.perf_counter() - start) / 5

    start = time.perf_counter()
    assert tracker._update(1, ids, labels) is False
    spent = time.perf_counter() - start
    assert all(tracker.lineage[k].end == 1 and tracker._states[k].areas[-1] == 144 for k in ids)
    assert not any(tracker._states[k].near_border for k in ids)
    assert spent < 40 * whole, f"_update of {count} cells took {spent:.3f} s; one whole-frame pass {whole:.4f} s"
    tracker.session.close()
