"""Crowded frames in automatic tracking (s53 F2): detection keeps each cell as a crop of its box (no (H, W) array per
cell: 600 nuclei of a 2048 x 2048 frame held 2.4 GiB of them), with the same masks; the seeding reports its counts
(seeds placed, cells found) and the time its stage still needs; Track all says them in words and passes a step at
least every second on a slow frame (a crowded frame's seeding moved less than a percent a minute)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

import sam2_model as sm
from sam2_model.automatic import AutomaticMaskGenerator
from sam2_model.seeding import blob_points
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import detection
from sam2_model.tracking.detection import drain, make_detector
from sam2_model.tracking.divisions import Crop
from sam2_model.tracking.matching import match_detections
from sam2_model.tracking.tracker import WorkStep, track_cells

DIAMETER = (8, 20)


@pytest.fixture(scope="module")
def model():
    return sm.build_model("demo", device="cpu", image_size=128)


@pytest.fixture(scope="module")
def crowded():
    """One crowded frame of 192 x 192: ~24 nuclei ~13 px wide, many touching."""
    return make_timelapse(num_frames=1, shape=(192, 192), num_cells=24, seed=5, divisions=False,
                          radius_fraction=0.035).image


def test_cropped_records_are_the_whole_records_cut_to_their_boxes(model, crowded):
    """Fault: every record of the mask generator held an (H, W) mask, made by pasting each window's masks into the
    image. With ``cropped=True`` each record holds its mask cut to its box: the same records, placed."""
    frame = crowded[0]
    points = blob_points(frame, cell_diameter=DIAMETER)
    generator = AutomaticMaskGenerator(model, multimask_output=False, pred_iou_thresh=0.5,
                                       stability_score_thresh=0.3, warn_if_empty=False)
    whole = generator.generate(frame, points=points, window=64)
    cut = drain(generator.generate_steps(frame, points=points, window=64, cropped=True))
    assert len(whole) == len(cut) >= 5 and cut.image_shape == whole.image_shape
    for a, b in zip(whole, cut):
        placed = np.zeros(frame.shape, dtype=bool)
        placed[b["segmentation_box"]] = b["segmentation"]
        np.testing.assert_array_equal(placed, a["segmentation"])
        assert b["segmentation"].size < frame.size / 4
        assert {k: v for k, v in b.items() if k not in ("segmentation", "segmentation_box")} == \
            {k: v for k, v in a.items() if k != "segmentation"}


def test_the_detector_gives_crops_of_the_same_masks(model, crowded):
    """Fault: detection made an (H, W) mask per cell at every step (records, cleaning, re-clicks, contrast). Now
    ``crop_steps`` gives each cell as a Crop of its box, the very masks ``steps`` (and a call) give placed."""
    frame = crowded[0]
    detector = make_detector(model, cell_diameter=DIAMETER, window=64)
    crops = drain(detector.crop_steps(frame))
    masks = detector(frame)
    assert len(crops) == len(masks) >= 5
    for crop, mask in zip(crops, masks):
        assert isinstance(crop, Crop) and crop.shape == frame.shape and crop.mask.size < frame.size / 4
        np.testing.assert_array_equal(crop.full(crop.mask), mask)
    assert detector.found == len(crops)


def _old_contrast(frame: np.ndarray, mask: np.ndarray) -> float:
    """mask_contrast as it was (on the whole frame), for reference."""
    image = np.asarray(frame, dtype=np.float64)
    area = int(np.count_nonzero(mask))
    width = max(3, int(round(0.25 * math.sqrt(area / math.pi))))
    rows, cols = np.nonzero(mask)
    y0, y1 = max(0, rows.min() - width), min(mask.shape[0], rows.max() + width + 1)
    x0, x1 = max(0, cols.min() - width), min(mask.shape[1], cols.max() + width + 1)
    inside, crop = mask[y0:y1, x0:x1], image[y0:y1, x0:x1]
    ring = (ndimage.distance_transform_edt(~inside) <= width) & ~inside
    ring_std = float(crop[ring].std()) + 1e-9
    inside_std = float(crop[inside].std()) + 1e-9
    step = abs(float(crop[inside].mean()) - float(crop[ring].mean())) / ring_std
    return max(step, abs(math.log(inside_std / ring_std)))


def test_contrast_and_matching_of_crops_equal_those_of_whole_masks(crowded):
    """The contrast check and the matching against tracked labels read each detection's box only, with the same
    results as on whole-frame masks (cells at the frame's edge included)."""
    truth = make_timelapse(num_frames=1, shape=(192, 192), num_cells=24, seed=5, divisions=False,
                           radius_fraction=0.035).labels[0]
    ids = [i for i in np.unique(truth) if i]
    masks = [truth == i for i in ids]
    crops = [detection.crop_of(m) for m in masks]
    for mask, crop in zip(masks, crops):
        assert detection.crop_contrast(crowded[0], crop) == _old_contrast(crowded[0], mask)
    tracked = np.roll(truth, 3, axis=1).astype(np.uint32)  # tracked labels a bit off the detections
    tracked[tracked == ids[0]] = 0
    tracked[np.isin(tracked, ids[1:3])] = 99  # one masklet over two cells
    from sam2_model.tracking.matching import match_crops

    old, new = match_detections(masks, tracked, 0.5, 0.3), match_crops(crops, tracked, 0.5, 0.3)
    assert (new.matched, new.new, new.inside) == (old.matched, old.new, old.inside) and old.new and old.inside
    np.testing.assert_array_equal(new.best_iou, old.best_iou)


def test_seeding_reports_cells_found_and_time_left(model, crowded):
    """Fault: a crowded first frame said nothing but a fraction for minutes. Now each step inside the frame carries
    the cells found so far and, once a unit of its stage is done, the time that stage still needs; in words: seeds
    placed, cells found, time left."""
    steps = []
    result = track_cells(model, crowded, cell_diameter=DIAMETER, window=64, on_work=steps.append)
    seeding = [s for s in steps if s.stage == "seeding"]
    assert len(seeding) >= 3 and all(isinstance(s.found, int) for s in seeding)
    found = [s.found for s in seeding]
    assert found == sorted(found) and found[-1] > 0, found
    assert any(s.eta_s is not None and s.eta_s >= 0 for s in seeding)
    words = seeding[-2].describe()
    assert f"seeds placed, {seeding[-2].found} cells found" in words or "1 cell found" in words, words
    timed = next(s for s in seeding if s.eta_s is not None).describe()
    assert timed.startswith("seeding: ") and timed.endswith(" left") and "about " in timed, timed
    adding = [s for s in steps if s.stage == "adding"]
    assert adding and adding[-1].describe().startswith(f"adding cells: {adding[-1].done}/{adding[-1].total}")
    assert len(result.lineage) == adding[-1].total


def test_work_step_words():
    step = WorkStep(0, "seeding", 362, 1086, found=140, eta_s=185.0)
    assert step.describe() == "seeding: 362/1086 seeds placed, 140 cells found, about 3 min left"
    assert WorkStep(2, "contrast", 3, 9, found=1).describe() == \
        "checking cells against their surroundings: 3/9, 1 cell found"
    assert WorkStep(2, "propagating", 1, 1).describe() == "propagating the cells"


def test_thin_work_passes_a_step_every_second_on_a_slow_frame():
    """Fault: thin_work passed one "work" step per percent of a frame; a crowded frame's seeding moves less than a
    percent a minute, so the panel's counts sat still. Now a step passes at least every WORK_SECONDS as well."""
    from napari_sam2.track_all import WORK_SECONDS, thin_work

    now = [0.0]
    steps = [("plan", 0, 0, 1)] + [("work", 0, 5, 1000)] * 6 + [("frame", 0, 3, 1)]

    def slow():
        for step in steps:
            yield step
            now[0] += WORK_SECONDS * 0.6

    passed = list(thin_work(slow(), lambda: False, clock=lambda: now[0]))
    assert [s[0] for s in passed] == ["plan", "work", "work", "work", "frame"], passed


def test_track_all_says_its_work_in_words(model, crowded):
    """TrackAll.work says the run's last step inside a frame with its counts while the frame is worked on, and is
    empty once the frame is written."""
    from napari_sam2.track_all import TrackAll, TrackAllOptions

    tracking = TrackAll(np.zeros(crowded.shape, np.uint32), 1)
    said = []
    for kind, frame, _, _ in tracking.track(model, crowded, 0, TrackAllOptions("blobs", DIAMETER, 2, False)):
        said.append((kind, tracking.work))
    seeding = [work for kind, work in said if kind == "work" and work.startswith("seeding: ")]
    assert seeding and all("seeds placed" in w and "found" in w for w in seeding), said
    assert [work for kind, work in said if kind == "frame"] == [""] and tracking.work == ""


def test_each_work_step_carries_the_words_of_its_frame(model, crowded):
    """Fault (s53 R2-3): the panel said a relayed step's share with the words TrackAll.work had when the GUI thread got
    to it (the worker by then on another frame, or "" at a frame's end). Now each "work" step carries its own words:
    read after the run (TrackAll.work is "" then), the steps still say their seeding counts."""
    from napari_sam2.track_all import TrackAll, TrackAllOptions

    tracking = TrackAll(np.zeros(crowded.shape, np.uint32), 1)
    steps = list(tracking.track(model, crowded, 0, TrackAllOptions("blobs", DIAMETER, 2, False)))
    assert tracking.work == ""
    work = [step for step in steps if step[0] == "work"]
    seeding = [step.words for step in work if step.words.startswith("seeding: ")]
    assert seeding and all("seeds placed" in words for words in seeding), work
    assert all(len(step) == 4 and step == ("work", step[1], step[2], step[3]) for step in work)
