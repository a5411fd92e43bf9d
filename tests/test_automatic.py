"""AutomaticMaskGenerator: mask/box operations, parity with Meta's SAM2AutomaticMaskGenerator, inputs.

Parity: both generators run the embedded demo weights (copied into Meta's model) and see the same
model input for every crop (Meta's ``set_image`` is replaced by the one of
test_parity_image_predictor: our preprocessing, then the reference model's own feature steps, since
the reference's torchvision transforms are not importable here).
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from oracle import reference_model, require_oracle
from sam2_model import ImagePredictor, build_model
from sam2_model import amg_ops
from sam2_model.automatic import (DEMO_CELL_SETTINGS, REFERENCE_FILTERS, AutomaticMaskGenerator, MaskRecords,
                                  NoMasksWarning, default_filters, records_to_labels)
from sam2_model.config import get_config
from sam2_model.frames import to_model_input, to_unit_rgb
from sam2_model.synthetic import make_timelapse
from sam2_model.windows import window_groups


# ---------------------------------------------------------------------------------------- helpers
def _install_torchvision_ops_stand_in() -> None:
    """Meta's generator imports ``torchvision.ops.boxes.batched_nms`` and ``box_area`` (its only other
    torchvision import on this path is ``torchvision.transforms`` in the image predictor, handled by
    test_parity_image_predictor). PyPI's torchvision does not import beside our CPU torch, so when it
    is missing this TEST registers a plain greedy NMS written independently of sam2_model.amg_ops
    (pure Python loop; ties in score keep their input order)."""
    try:
        importlib.import_module("torchvision.ops.boxes")
        return
    except ImportError:
        pass

    def box_area(boxes: torch.Tensor) -> torch.Tensor:
        boxes = boxes.reshape(-1, 4)
        return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])

    def batched_nms(boxes, scores, idxs, iou_threshold):
        rows, score_list, groups = boxes.tolist(), scores.tolist(), idxs.tolist()
        order = sorted(range(len(rows)), key=lambda i: -score_list[i])
        kept: List[int] = []
        for i in order:
            suppressed = False
            for j in kept:
                if groups[i] != groups[j]:
                    continue
                a, b = rows[i], rows[j]
                inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
                union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
                if union > 0 and inter / union > iou_threshold:
                    suppressed = True
                    break
            if not suppressed:
                kept.append(i)
        return torch.tensor(kept, dtype=torch.int64)

    package = sys.modules.get("torchvision") or types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    boxes_module = types.ModuleType("torchvision.ops.boxes")
    boxes_module.batched_nms, boxes_module.box_area = batched_nms, box_area
    ops.boxes = boxes_module
    package.ops = ops
    sys.modules.setdefault("torchvision", package)
    sys.modules["torchvision.ops"] = ops
    sys.modules["torchvision.ops.boxes"] = boxes_module


def _reference_generator_class():
    from test_parity_image_predictor import _reference_predictor_class

    _reference_predictor_class()  # registers torchvision.transforms stand-ins if needed
    _install_torchvision_ops_stand_in()
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    return SAM2AutomaticMaskGenerator


def _feed_our_model_input(predictor, size: int):
    """Replace the reference predictor's set_image: our bilinear model input, its model's features."""
    from test_parity_image_predictor import _set_reference_features

    def set_image(image: np.ndarray) -> None:
        tensor = to_model_input(to_unit_rgb(image, None), size, mode="bilinear")
        _set_reference_features(predictor, tensor, image.shape[:2])

    return set_image


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _match(ours: List[Dict], theirs: List[Dict]):
    """Hungarian one-to-one matching on mask IoU -> (pairs, IoU of each pair)."""
    iou = np.array([[_mask_iou(a["segmentation"], b["segmentation"]) for b in theirs] for a in ours])
    rows, cols = linear_sum_assignment(-iou)
    return list(zip(rows, cols)), iou[rows, cols]


@pytest.fixture(scope="module")
def demo_model():
    return build_model("demo", device="cpu")


def _nuclei_frame(seed: int = 123) -> np.ndarray:
    return make_timelapse(num_frames=1, shape=(256, 256), seed=seed, dtype="uint8").image[0]


def _textured_image() -> np.ndarray:
    """(200, 240, 3) uint8 natural-ish texture: smoothed noise at three scales with edges."""
    rng = np.random.default_rng(7)
    image = np.zeros((200, 240, 3))
    for sigma, weight in ((12, 1.0), (4, 0.5), (1, 0.25)):
        image += weight * ndimage.gaussian_filter(rng.normal(size=(200, 240, 3)), (sigma, sigma, 0)) * sigma
    yy, xx = np.mgrid[:200, :240]
    image[(xx - 70) ** 2 + (yy - 60) ** 2 < 35**2] += (3, 0, -2)  # a disc and a box with colour
    image[120:180, 140:220] -= (0, 3, 1)
    image = (image - image.min()) / np.ptp(image)
    return (image * 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------- ops
def test_point_grid_is_cell_centres_row_by_row():
    grid = amg_ops.point_grid(4)
    assert grid.shape == (16, 2)
    np.testing.assert_allclose(grid[:4], [[0.125, 0.125], [0.375, 0.125], [0.625, 0.125], [0.875, 0.125]])
    np.testing.assert_allclose(grid[4], [0.125, 0.375])
    assert [len(g) for g in amg_ops.layer_point_grids(8, 2, 2)] == [64, 16, 4]


def test_crop_boxes_cover_the_image_with_overlap():
    boxes, layers = amg_ops.crop_boxes((200, 300), 2, 512 / 1500)
    assert layers == [0] + [1] * 4 + [2] * 16 and boxes[0] == [0, 0, 300, 200]
    for layer in (1, 2):
        covered = np.zeros((200, 300), int)
        for box, lay in zip(boxes, layers):
            if lay == layer:
                x0, y0, x1, y1 = box
                assert 0 <= x0 < x1 <= 300 and 0 <= y0 < y1 <= 200
                covered[y0:y1, x0:x1] += 1
        assert covered.min() >= 1 and covered.max() >= 2  # every pixel, and some twice (overlap)


def test_masks_to_boxes_inclusive_and_empty():
    masks = torch.zeros(3, 10, 12, dtype=torch.bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 7, 11] = True
    boxes = amg_ops.masks_to_boxes(masks)
    assert boxes.tolist() == [[3, 2, 8, 4], [11, 7, 11, 7], [0, 0, 0, 0]]


def test_batched_nms_matches_a_plain_greedy_loop():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 20, (60, 2))
    boxes = torch.tensor(np.concatenate([corners, corners + rng.uniform(5, 25, (60, 2))], 1), dtype=torch.float32)
    scores = torch.tensor(rng.uniform(size=60), dtype=torch.float32)
    groups = torch.tensor(rng.integers(0, 3, 60))
    _install_torchvision_ops_stand_in()
    from torchvision.ops.boxes import batched_nms as reference_nms

    kept = []
    for threshold in (0.2, 0.5, 0.7):
        ours = amg_ops.batched_nms(boxes, scores, groups, threshold)
        assert ours.tolist() == reference_nms(boxes, scores, groups, iou_threshold=threshold).tolist()
        kept.append(len(ours))
    assert kept[0] < kept[1] < kept[2], "a lower threshold suppresses more"
    single = amg_ops.batched_nms(boxes, scores, torch.zeros(60, dtype=torch.int64), 0.2)
    assert len(single) < kept[0], "one group suppresses across the former groups"


def test_stability_score_and_empty_masks():
    logits = torch.full((2, 4, 4), -5.0)
    logits[0, :2, :2] = 3.0  # 4 px above +1
    logits[0, 2, :2] = 0.5  # 2 px more above -1
    score = amg_ops.stability_score(logits, 0.0, 1.0)
    assert score[0].item() == pytest.approx(4 / 6) and torch.isnan(score[1])


def test_remove_small_regions_holes_and_islands():
    mask = np.zeros((30, 30), bool)
    mask[5:20, 5:20] = True
    mask[10:12, 10:12] = False  # hole of 4 px
    mask[25:27, 25:27] = True  # island of 4 px
    filled, changed = amg_ops.remove_small_regions(mask, 5, "holes")
    assert changed and filled[10:12, 10:12].all() and filled[25:27, 25:27].all()
    cleaned, changed = amg_ops.remove_small_regions(filled, 5, "islands")
    assert changed and not cleaned[25:27, 25:27].any() and cleaned.sum() == 15 * 15
    same, changed = amg_ops.remove_small_regions(cleaned, 5, "islands")
    assert not changed and (same == cleaned).all()
    only_small = np.zeros((10, 10), bool)
    only_small[1, 1] = True
    only_small[5:7, 5:7] = True
    kept, _ = amg_ops.remove_small_regions(only_small, 50, "islands")
    assert kept.sum() == 4  # all islands small: the largest stays


# ---------------------------------------------------------------------------------------- parity
PARITY_CASES = {
    # thresholds depend on the weights: 0.85 keeps 16 masks here since stop 34 (22 with AV, stop 33; 0.9 kept 9)
    "nuclei-grid12-single": ("nuclei", dict(points_per_side=12, multimask_output=False, pred_iou_thresh=0.85,
                                            stability_score_thresh=0.5)),
    "texture-grid10-multimask": ("texture", dict(points_per_side=10, multimask_output=True, pred_iou_thresh=0.5,
                                                 stability_score_thresh=0.0)),
    "nuclei-grid6-crops": ("nuclei", dict(points_per_side=6, crop_n_layers=1, multimask_output=True,
                                          pred_iou_thresh=0.6, stability_score_thresh=0.0)),
    # 0.5 keeps 19 masks with the weights shipped since stop 34 (0.6 keeps 3; with AV, stop 33, 0.6 kept 25 and
    # 0.75 3; with the weights before, 0.75 kept 18 and 0.8 9)
    "texture-grid8-m2m": ("texture", dict(points_per_side=8, multimask_output=True, use_m2m=True,
                                          pred_iou_thresh=0.5, stability_score_thresh=0.3)),
}


@pytest.fixture(scope="module")
def reference_net(demo_model):
    require_oracle()
    net = reference_model("demo")
    net.load_state_dict(demo_model.state_dict(), strict=True)
    return net


@pytest.mark.parametrize("case", list(PARITY_CASES))
def test_same_masks_as_reference_generator(case, demo_model, reference_net):
    image_name, settings = PARITY_CASES[case]
    frame = _nuclei_frame() if image_name == "nuclei" else _textured_image()
    rgb = np.repeat(frame[..., None], 3, axis=-1) if frame.ndim == 2 else frame
    reference = _reference_generator_class()(reference_net, **settings)
    reference.predictor.set_image = _feed_our_model_input(reference.predictor, demo_model.image_size)
    theirs = reference.generate(rgb)
    ours = AutomaticMaskGenerator(demo_model, **settings).generate(frame)  # grey frames go in as (H, W)

    assert len(theirs) >= 10, "the case must produce masks to compare"
    assert len(ours) == len(theirs)
    pairs, ious = _match(ours, theirs)
    assert ious.min() >= 0.99, f"worst matched IoU {ious.min():.4f}"
    for i, j in pairs:
        a, b = ours[i], theirs[j]
        assert a["segmentation"].shape == rgb.shape[:2] and a["segmentation"].dtype == bool
        assert a["area"] == int(b["area"]) and a["bbox"] == [int(v) for v in b["bbox"]]
        assert a["crop_box"] == [int(v) for v in b["crop_box"]]
        assert a["predicted_iou"] == pytest.approx(b["predicted_iou"], abs=1e-4)
        assert a["stability_score"] == pytest.approx(b["stability_score"], abs=1e-4, nan_ok=True)
        np.testing.assert_allclose(a["point_coords"], b["point_coords"], atol=1e-3)
    if settings.get("crop_n_layers"):
        assert len({tuple(r["crop_box"]) for r in ours}) > 1, "masks from more than one crop"


# ---------------------------------------------------------------------------------------- behaviour
def test_points_mode_reuses_predictor_and_paints_labels(demo_model):
    frame = _nuclei_frame(5)
    truth = make_timelapse(num_frames=1, shape=(256, 256), seed=5, dtype="uint8").labels[0]
    ids = [i for i in np.unique(truth) if i]
    points = np.array([ndimage.center_of_mass(truth == i)[::-1] for i in ids])
    generator = AutomaticMaskGenerator(demo_model, multimask_output=False, stability_score_thresh=0.9)
    records = generator.generate(frame, points=points)
    assert {tuple(r["crop_box"]) for r in records} == {(0, 0, 256, 256)}
    assert len(records) >= 0.8 * len(ids)
    for record in records:
        x, y = record["point_coords"][0]
        assert record["segmentation"][int(y), int(x)], "a click's mask covers the click"
        assert record["area"] == record["segmentation"].sum()

    predictor = ImagePredictor(demo_model)
    predictor.set_image(frame)
    reused = generator.generate(frame, points=points, predictor=predictor)
    assert len(reused) == len(records)
    assert all((a["segmentation"] == b["segmentation"]).all() for a, b in zip(records, reused))

    labels = records_to_labels(records)
    assert labels.shape == frame.shape and labels.max() == len(records)
    assert records_to_labels([], shape=(4, 5)).shape == (4, 5)


def _same_records(a: List[Dict], b: List[Dict]) -> bool:
    """Whether two record lists are equal field by field (masks bit for bit, scores exactly)."""
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) if k == "segmentation" else x[k] == y[k] for k in x)
        for x, y in zip(a, b))


def test_generate_steps_gives_generates_records_and_stops_between_two_model_calls(demo_model, monkeypatch):
    """Fault (E2 item 2): ``generate(frame, points=1029 blob points, window=...)`` was one step: a Cancel of Track all
    waited for the whole call (15-20 s on 2 cores). ``generate_steps`` yields (done, total) after every model call (a
    window's or crop's features, a batch of clicks) and gives the same records, bit for bit; closed after a step, it
    makes no further model call."""
    frame = _nuclei_frame()
    yy, xx = np.mgrid[10:256:21, 10:256:21]
    points = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float64)  # 144 clicks, as many blob points would be
    generator = AutomaticMaskGenerator(demo_model, points_per_batch=32, multimask_output=False, pred_iou_thresh=0.0,
                                       stability_score_thresh=0.05)  # (many masks kept: more to compare)
    calls: List[str] = []
    for name in ("predict", "set_model_input"):
        method = getattr(generator.predictor, name)
        monkeypatch.setattr(generator.predictor, name,
                            lambda *a, _method=method, _name=name, **k: (calls.append(_name), _method(*a, **k))[1])
    crops, groups = window_groups(points, 96, 256, 256)
    for kwargs, total in ((dict(points=points, window=96), len(crops) + sum(-(-len(g) // 32) for g in groups)),
                          (dict(points=points), 1 + -(-len(points) // 32))):
        whole = generator.generate(frame, **kwargs)
        calls.clear()
        steps = generator.generate_steps(frame, **kwargs)
        seen = []
        while True:
            try:
                seen.append(next(steps))
            except StopIteration as stop:
                records = stop.value
                break
        assert seen == [(done, total) for done in range(1, total + 1)] and len(calls) == total
        assert _same_records(records, whole) and len(whole) > 3 and records.image_shape == whole.image_shape
        assert records.filtered == whole.filtered
        calls.clear()
        steps = generator.generate_steps(frame, **kwargs)
        assert next(steps) == (1, total) and next(steps) == (2, total)
        steps.close()  # (a Cancel)
        assert len(calls) == 2
    grid = AutomaticMaskGenerator(demo_model, points_per_side=6, points_per_batch=16, crop_n_layers=1)
    steps = grid.generate_steps(frame)  # crops: 1 + 4, each its features and 3 batches of its 36 grid points
    seen = []
    while True:
        try:
            seen.append(next(steps))
        except StopIteration as stop:
            assert _same_records(stop.value, grid.generate(frame))
            break
    assert seen[-1] == (5 * 4, 5 * 4) and len(seen) == 20


def test_rgba_and_one_colour_images_give_the_masks_of_their_grey_image(demo_model):
    """The generator mapped images with its own copy of ImagePredictor's rule, which refused (H, W, 4) and read a
    one-colour RGB image (a green-only export) as colour, unlike ImagePredictor and FrameSource. Now it maps them as
    ImagePredictor.unit_rgb does: RGBA without its alpha, one colour as grey."""
    grey = _nuclei_frame()
    zero = np.zeros_like(grey)
    green = np.stack([zero, grey, zero], axis=-1)

    def rgba(image):
        return np.concatenate([image, np.full(image.shape[:2] + (1,), 255, image.dtype)], axis=-1)

    generator = AutomaticMaskGenerator(demo_model, points_per_side=8)
    expected = generator.generate(grey)
    assert len(expected) >= 3, "the case must produce masks to compare"
    for image in (green, rgba(np.repeat(grey[..., None], 3, axis=-1)), rgba(green)):
        records = generator.generate(image)
        assert len(records) == len(expected)
        for ours, theirs in zip(records, expected):
            np.testing.assert_array_equal(ours["segmentation"], theirs["segmentation"])
            assert ours["predicted_iou"] == theirs["predicted_iou"]


def test_min_mask_region_area_leaves_no_small_holes_or_islands(demo_model):
    frame = _nuclei_frame()
    settings = dict(points_per_side=8, multimask_output=False, stability_score_thresh=0.0, pred_iou_thresh=0.0)
    area = 60
    records = AutomaticMaskGenerator(demo_model, min_mask_region_area=area, **settings).generate(frame)
    assert records
    for record in records:
        mask = record["segmentation"]
        islands, count = ndimage.label(mask, structure=np.ones((3, 3)))
        assert count <= 1 or np.bincount(islands.ravel())[1:].min() >= area
        holes, count = ndimage.label(~mask, structure=np.ones((3, 3)))
        assert count == 0 or np.bincount(holes.ravel())[1:].min() >= area
        if not mask.any():
            continue  # thresholds at 0 keep empty masks too (box 0, 0, 0, 0), as the reference does
        x0, y0, w, h = record["bbox"]
        ys, xs = np.nonzero(mask)
        assert [xs.min(), ys.min(), xs.max() - xs.min(), ys.max() - ys.min()] == [x0, y0, w, h]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(points_per_side=None), "exactly one of points_per_side"),
        (dict(points_per_side=0), "points_per_side"),
        (dict(points_per_batch=0), "points_per_batch"),
        (dict(crop_n_layers=-1), "crop_n_layers"),
        (dict(pred_iou_thresh=float("nan")), "pred_iou_thresh"),
        (dict(crop_overlap_ratio=1.5), "crop_overlap_ratio"),
        (dict(points_per_side=None, point_grids=[np.zeros((3, 3))]), "point_grids"),
    ],
)
def test_bad_settings_raise_value_errors(demo_model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        AutomaticMaskGenerator(demo_model, **kwargs)


def test_filters_default_to_the_models_own(demo_model):
    """Left out, multimask_output and stability_score_thresh are the reference's for official weights and the demo's
    own for the demo model, whose reference-default masks were all filtered out (0 masks on 12 nuclei)."""
    assert default_filters(get_config("sam2.1_hiera_tiny")) == REFERENCE_FILTERS
    assert default_filters(get_config("sam2_hiera_large")) == REFERENCE_FILTERS
    assert default_filters(demo_model.config) == DEMO_CELL_SETTINGS
    records = AutomaticMaskGenerator(demo_model, points_per_side=12).generate(_nuclei_frame())
    assert len(records) >= 10  # 12 nuclei on the frame
    given = AutomaticMaskGenerator(demo_model, multimask_output=True, stability_score_thresh=0.95, pred_iou_thresh=0.8)
    assert given.multimask_output and given.stability_score_thresh == 0.95  # what the caller gives wins
    assert given.pred_iou_thresh == 0.8 and AutomaticMaskGenerator(demo_model).pred_iou_thresh == 0.5
    assert REFERENCE_FILTERS["pred_iou_thresh"] == 0.8  # official weights keep the reference's bar


MSC = Path(__file__).resolve().parents[2] / "shared" / "data" / "ctc-msc"


@pytest.mark.skipif(not (MSC / "01_GT" / "TRA").is_dir(), reason="the shared MSC time-lapse is not beside the repo")
def test_the_documented_recipe_finds_real_msc_cells_with_the_demo_model(demo_model):
    """The demo model rates its masks of MSC's spread cells 0.5-0.8 (honestly): at the reference's pred_iou_thresh 0.8
    the recipe returned no mask on frame 0 and records_to_labels then raised; the demo's 0.5 keeps 8 of its 9 cells."""
    import tifffile

    from sam2_model.seeding import blob_points

    frame = tifffile.imread(MSC / "01" / "t000.tif")
    markers = tifffile.imread(MSC / "01_GT" / "TRA" / "man_track000.tif")
    records = AutomaticMaskGenerator(demo_model).generate(frame, points=blob_points(frame, cell_diameter=(40, 160)))
    labels = records_to_labels(records)
    cells = [i for i in np.unique(markers) if i]
    found = [i for i in cells if np.count_nonzero(labels[markers == i]) > 0.5 * np.count_nonzero(markers == i)]
    assert labels.shape == frame.shape and len(found) >= 0.6 * len(cells), (len(found), len(cells), len(records))


def test_no_mask_kept_warns_naming_the_filter_and_still_paints_labels(demo_model):
    """Every candidate filtered out: a NoMasksWarning says how many each filter removed and which option to lower,
    and the empty records carry the image's shape, so the recipe's records_to_labels(records) gives an empty image."""
    frame = _nuclei_frame()[:200, :240]
    generator = AutomaticMaskGenerator(demo_model, points_per_side=4, pred_iou_thresh=0.999)
    with pytest.warns(NoMasksWarning, match=r"kept no mask of 16 candidates \(16 had a predicted IoU <= "
                                            r"pred_iou_thresh=0\.999 \(highest 0\.\d\d\);.*lower pred_iou_thresh"):
        records = generator.generate(frame)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generator.generate(frame)
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name]  # it points at the line calling generate
    assert records == [] and isinstance(records, list) and records.image_shape == (200, 240)
    assert records.filtered.candidates == records.filtered.pred_iou == 16
    np.testing.assert_array_equal(records_to_labels(records), np.zeros((200, 240), np.int32))
    strict = AutomaticMaskGenerator(demo_model, points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=1.01)
    with pytest.warns(NoMasksWarning, match=r"16 of the rest a stability score < stability_score_thresh=1\.01 "
                                            r"\(highest [01]\.\d\d\).*: lower stability_score_thresh"):
        strict.generate(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # masks kept, or nothing to filter: no warning
        assert AutomaticMaskGenerator(demo_model, points_per_side=4, pred_iou_thresh=0.0).generate(frame)
        assert generator.generate(frame, points=np.zeros((0, 2))) == []
        quiet = AutomaticMaskGenerator(demo_model, points_per_side=4, pred_iou_thresh=0.999, warn_if_empty=False)
        assert quiet.generate(frame).filtered.pred_iou == 16  # a tracker's empty frames: counted, not warned


def test_records_to_labels_shape_sources():
    mask = np.zeros((4, 5), bool)
    mask[1:3, 1:4] = True
    records = [{"segmentation": mask, "predicted_iou": 0.9}]
    assert records_to_labels(records).max() == 1 and records_to_labels(records, shape=(4, 5)).shape == (4, 5)
    assert records_to_labels(MaskRecords([], (6, 7))).shape == (6, 7)
    assert records_to_labels([], shape=(2, 3)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"records is empty and carries no image shape: pass shape=image\.shape\[:2\]"):
        records_to_labels([])
    with pytest.raises(ValueError, match=r"shape \(5, 4\) differs from the records' masks \(4, 5\)"):
        records_to_labels(records, shape=(5, 4))
    with pytest.raises(ValueError, match="shape must be the image's"):
        records_to_labels([], shape=(2, 3, 3))


def test_bad_inputs_raise_value_errors(demo_model):
    generator = AutomaticMaskGenerator(demo_model, points_per_side=4)
    with pytest.raises(ValueError, match=r"image has 5 channels: .* \(H, W, 3\) RGB or an \(H, W, 4\) RGBA array"):
        generator.generate(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(ValueError, match=r"image must be a non-empty \(H, W\) or \(H, W, C\) array"):
        generator.generate(np.zeros((2, 10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match=r"looks channel-first .* np\.moveaxis\(image, 0, -1\)"):
        generator.generate(np.zeros((3, 32, 40), np.uint8))
    with pytest.raises(ValueError, match="points must be an"):
        generator.generate(np.zeros((32, 32), np.uint8), points=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="points must lie inside"):
        generator.generate(np.zeros((32, 32), np.uint8), points=[[40.0, 3.0]])
    predictor = ImagePredictor(demo_model)
    predictor.set_image(np.zeros((20, 20), np.uint8))
    with pytest.raises(ValueError, match="predictor holds an image"):
        generator.generate(np.zeros((32, 32), np.uint8), predictor=predictor)
    assert generator.generate(np.zeros((32, 32), np.uint8), points=np.zeros((0, 2))) == []
