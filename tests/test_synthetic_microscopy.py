"""Checks of the microscopy-like generator (sam2_model.synth) and its training hook (MixedClips)."""

import hashlib
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from sam2_model.synth import (CELL_SIZE_RANGES, CROWDED_DENSITY_RANGE, CROWDED_NUCLEI_SHARE, CROWDED_SIZE_RANGE,
                              DIM_RIM_RANGE, JUMP_RATE_RANGE, MIX, PROCESS_CHANCE_RANGE,
                              SPREAD_CELLS_SHARE, draw_jump_rate, draw_microscopy_settings, draw_processes, draw_rim,
                              make_microscopy_timelapse, random_microscopy_timelapse)
from sam2_model.synthetic import SyntheticTimelapse
from sam2_model.train.data import MixedClips, SyntheticClips, describe_training_data
from sam2_model.train.loop import TrainSettings, make_clips

KINDS = [("fluorescence", "nuclei", "nuclear"), ("fluorescence", "cells", "cytoplasm"),
         ("fluorescence", "cells", "membrane"), ("fluorescence", "rods", "cytoplasm"), ("phase", "cells", None),
         ("phase", "rods", None), ("brightfield", "cells", None), ("dic", "nuclei", None), ("dic", "rods", None)]


def _movie(modality, cell_type, stain=None, seed=3, shape=(128, 128), frames=6, **kw):
    return make_microscopy_timelapse(seed, shape, frames, modality=modality, cell_type=cell_type, stain=stain, **kw)


@pytest.mark.parametrize("modality,cell_type,stain", KINDS + [("natural", "nuclei", None)])
def test_deterministic_valid_and_consistent(modality, cell_type, stain):
    still = {} if modality == "natural" else {"jump_rate": 0.0}  # leaps are checked in test_far_leaps
    a = _movie(modality, cell_type, stain, **still)
    b = _movie(modality, cell_type, stain, **still)
    c = _movie(modality, cell_type, stain, seed=4, **still)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.parents == b.parents
    assert not np.array_equal(a.image, c.image)
    assert isinstance(a, SyntheticTimelapse)
    assert a.image.shape == a.labels.shape == (6, 128, 128)
    assert a.image.dtype in (np.uint8, np.uint16) and a.labels.dtype == np.int32
    assert a.labels.min() == 0 and (a.labels[0] > 0).any()
    assert len(np.unique(a.image)) > 50  # a real range of grey levels, not a flat picture
    present = [set(np.unique(a.labels[t]).tolist()) - {0} for t in range(len(a.labels))]
    for t, ids in enumerate(present):
        lab = a.labels[t]
        boxes = ndimage.find_objects(lab)
        areas = np.bincount(lab.ravel())
        for i in ids:
            mask = lab[boxes[i - 1]] == i
            if mask.sum() >= 30:  # occlusion may cut a cell, but one piece holds most of it
                comp, n = ndimage.label(mask)
                assert n == 1 or np.bincount(comp.ravel())[1:].max() >= 0.6 * mask.sum(), (t, i)
        if t + 1 < len(present):  # ids stable: no jumps between frames
            both = sorted(ids & present[t + 1])
            if both:
                c0 = np.array(ndimage.center_of_mass(np.ones_like(lab), lab, both))
                c1 = np.array(ndimage.center_of_mass(np.ones_like(lab), a.labels[t + 1], both))
                a1 = np.bincount(a.labels[t + 1].ravel(), minlength=len(areas))
                step = np.hypot(*(c1 - c0).T)
                limit = 0.5 * np.sqrt(np.maximum(areas[both], a1[both])) + 4.0
                assert (step < limit).all(), (t, np.array(both)[step >= limit])
    for child, parent in a.parents.items():
        first = min(t for t, ids in enumerate(present) if child in ids)
        last = max(t for t, ids in enumerate(present) if parent in ids)
        assert child > parent and first == last + 1, (child, parent, first, last)


def _centre_steps(labels: np.ndarray) -> np.ndarray:
    """Frame-to-frame centre displacement of every cell present on both frames, in its diameters."""
    steps = []
    for t in range(len(labels) - 1):
        both = sorted((set(np.unique(labels[t]).tolist()) & set(np.unique(labels[t + 1]).tolist())) - {0})
        if not both:
            continue
        c0 = np.array(ndimage.center_of_mass(np.ones_like(labels[t]), labels[t], both))
        c1 = np.array(ndimage.center_of_mass(np.ones_like(labels[t]), labels[t + 1], both))
        diameter = 2 * np.sqrt(np.bincount(labels[t].ravel())[both] / np.pi)
        steps.extend(np.hypot(*(c1 - c0).T) / diameter)
    return np.array(steps)


def test_far_leaps():
    kw = dict(modality="fluorescence", cell_type="cells", stain="cytoplasm", shape=(192, 192), frames=10,
              cell_size=20.0, density=0.05, speed=0.05, divisions=False, enter_leave=False)
    calm, leaping = _movie(seed=5, jump_rate=0.0, **kw), _movie(seed=5, jump_rate=0.3, **kw)
    assert _centre_steps(calm.labels).max() < 0.5
    far = _centre_steps(leaping.labels)
    assert (far > 0.9).sum() >= 3 and far.max() < 3.0  # leaps of 1 to 2.5 diameters (cells near a border clip)
    # leaps draw from their own stream: the first frame, and a clip drawn without leaps, are unchanged
    np.testing.assert_array_equal(calm.labels[0], leaping.labels[0])
    drawn = [seed for seed in range(40) if draw_jump_rate(seed, "cells") == 0.0]
    assert 0.5 < len(drawn) / 40 < 0.9  # JUMP_SHARE of the clips leap
    seed = drawn[0]
    np.testing.assert_array_equal(_movie(seed=seed, jump_rate=None, **kw).image,
                                  _movie(seed=seed, jump_rate=0.0, **kw).image)
    assert all(draw_jump_rate(s, "rods") == 0.0 for s in range(20))
    with pytest.raises(ValueError, match="rods"):
        _movie("phase", "rods", jump_rate=0.1)
    with pytest.raises(ValueError, match="jump_rate must be in"):
        _movie("phase", "cells", jump_rate=1.5)


def _dim_share(image: np.ndarray, labels: np.ndarray) -> float:
    """Median over cells of the share of a cell's area below a quarter of its bright middle's brightness (95th
    percentile), both over the background (median away from every cell)."""
    image = image.astype(np.float64)
    background = np.median(image[~ndimage.binary_dilation(labels > 0, iterations=8)])
    shares = []
    for i in np.unique(labels)[1:]:
        values = image[labels == i] - background
        if values.size >= 80:
            shares.append(np.mean(values < 0.25 * np.percentile(values, 95)))
    return float(np.median(shares))


def test_dim_rims_fade_spread_cells_towards_their_boundary():
    kw = dict(modality="fluorescence", cell_type="cells", stain="cytoplasm", shape=(192, 192), frames=2,
              cell_size=40.0, density=0.15, clutter=False, processes=0.0)
    even, dim = _movie(seed=4, rim=1.0, **kw), _movie(seed=4, rim=0.1, **kw)
    np.testing.assert_array_equal(even.labels, dim.labels)  # the same cells, only their stain differs
    assert _dim_share(even.image[0], even.labels[0]) < 0.2  # an even body: a steep edge
    assert _dim_share(dim.image[0], dim.labels[0]) > 0.35  # a bright middle, a dim lamella (Fluo-C2DL-MSC: 0.49)
    # rims draw from their own stream: a clip drawn with an even rim is exactly the clip of before rims existed
    even_seeds = [seed for seed in range(40) if draw_rim(seed) == 1.0]
    assert 0.3 < len(even_seeds) / 40 < 0.7  # DIM_RIM_SHARE of the clips get dim rims
    assert all(DIM_RIM_RANGE[0] <= draw_rim(s) <= DIM_RIM_RANGE[1] for s in range(40) if s not in even_seeds)
    seed = even_seeds[0]
    np.testing.assert_array_equal(_movie(seed=seed, rim=None, **kw).image, _movie(seed=seed, rim=1.0, **kw).image)
    nuclei = dict(modality="fluorescence", cell_type="nuclei", stain="nuclear", frames=1)
    np.testing.assert_array_equal(_movie(seed=4, rim=0.1, **nuclei).image, _movie(seed=4, rim=1.0, **nuclei).image)
    with pytest.raises(ValueError, match="rim must be in"):
        _movie(seed=4, rim=0.0, **kw)


def test_thin_processes_trail_from_whole_cells():
    kw = dict(modality="fluorescence", cell_type="cells", stain="cytoplasm", shape=(192, 192), frames=4,
              cell_size=40.0, density=0.08, overlap=0.0, rim=1.0, divisions=False, enter_leave=False)
    plain, tailed = _movie(seed=6, processes=0.0, **kw), _movie(seed=6, processes=1.0, **kw)
    ids = np.unique(plain.labels[0])[1:]
    np.testing.assert_array_equal(ids, np.unique(tailed.labels[0])[1:])  # the same cells, from the same draws
    longer = 0
    for i in ids:
        body, whole = plain.labels[0] == i, tailed.labels[0] == i
        assert (body & ~whole).sum() <= 0.05 * body.sum()  # tails add to a cell (a neighbour's tail may cross it)
        added = whole & ~body
        if added.sum() > 20:  # a tail in view: thin, so an opening of 2 px removes nearly all of it
            opened = ndimage.binary_opening(whole, iterations=2)
            assert (added & opened).sum() < 0.3 * added.sum()
            longer += 1
    assert longer >= 0.5 * len(ids)
    assert (tailed.labels[3] > 0).sum() > (plain.labels[3] > 0).sum()  # tails move with their cells
    # processes draw from their own streams: a clip drawn without them is exactly the clip of before
    plain_seeds = [seed for seed in range(40) if draw_processes(seed, "cells") == 0.0]
    assert 0.3 < len(plain_seeds) / 40 < 0.7
    assert all(PROCESS_CHANCE_RANGE[0] <= draw_processes(s, "cells") <= PROCESS_CHANCE_RANGE[1]
               for s in range(40) if s not in plain_seeds)
    assert all(draw_processes(s, kind) == 0.0 for s in range(20) for kind in ("nuclei", "rods"))
    np.testing.assert_array_equal(_movie(seed=plain_seeds[0], processes=None, **kw).image,
                                  _movie(seed=plain_seeds[0], processes=0.0, **kw).image)
    with pytest.raises(ValueError, match="whole cells"):
        _movie("phase", "rods", processes=0.5)
    with pytest.raises(ValueError, match="processes must be in"):
        _movie("phase", "cells", processes=1.5)


def test_divisions_and_rod_growth():
    m = _movie("phase", "rods", seed=0, shape=(160, 160), frames=10, cell_size=14.0, density=0.4)
    assert len(m.parents) >= 4
    daughters = {}
    for child, parent in m.parents.items():
        daughters.setdefault(parent, []).append(child)
    assert all(len(c) == 2 for c in daughters.values())
    areas = [np.bincount(m.labels[t].ravel()) for t in (0, 4)]
    kept = [i for i in range(1, len(areas[0])) if areas[0][i] > 0 and i < len(areas[1]) and areas[1][i] > 0]
    growth = np.median([areas[1][i] / areas[0][i] for i in kept])
    assert growth > 1.05  # rods grow along their axis between divisions


def _frame_to_frame(labels):
    """Per cell and pair of consecutive frames: centroid shift / equivalent diameter, and mask IoU."""
    shifts, ious = [], []
    for a, b in zip(labels[:-1], labels[1:]):
        for i in np.unique(a)[1:]:
            ma, mb = a == i, b == i
            if ma.sum() < 20 or mb.sum() < 20:
                continue
            step = np.argwhere(ma).mean(0) - np.argwhere(mb).mean(0)
            shifts.append(float(np.hypot(*step)) / math.sqrt(4 * ma.sum() / math.pi))
            ious.append((ma & mb).sum() / (ma | mb).sum())
    return np.median(shifts), np.median(ious)


def test_speed_and_shape_change_set_how_far_cells_move_and_deform():
    kw = dict(seed=5, shape=(192, 192), frames=8, cell_size=30.0, density=0.15, divisions=False)
    slow_shift, slow_iou = _frame_to_frame(_movie("fluorescence", "cells", speed=0.02, shape_change=1.0, **kw).labels)
    fast_shift, fast_iou = _frame_to_frame(_movie("fluorescence", "cells", speed=0.5, shape_change=1.0, **kw).labels)
    assert fast_shift > 4 * slow_shift and 0.15 < fast_shift < 0.6, (slow_shift, fast_shift)
    assert fast_iou < slow_iou
    _, still_iou = _frame_to_frame(_movie("fluorescence", "cells", speed=0.0, shape_change=0.0, **kw).labels)
    _, morphing_iou = _frame_to_frame(_movie("fluorescence", "cells", speed=0.0, shape_change=4.0, **kw).labels)
    assert morphing_iou < still_iou - 0.05, (still_iou, morphing_iou)


def test_the_mix_moves_from_slow_to_crawling_cells():
    """Real time-lapses range from barely moving cells to cells that crawl a large part of their size between
    frames (CTC Fluo-C2DL-MSC: median 0.15 of the diameter); the mix covers both ends."""
    rng = np.random.default_rng(11)
    shifts = [_frame_to_frame(make_microscopy_timelapse(seed=int(rng.integers(1 << 30)), shape=(128, 128),
                                                       num_frames=4, modality="fluorescence", cell_type="cells",
                                                       cell_size=24.0).labels)[0] for _ in range(12)]
    assert min(shifts) < 0.05 and max(shifts) > 0.15, shifts


def test_frames_with_only_debris_in_view_have_empty_labels():
    """Fast cells in a small field all leave it for some frames while debris stays (a training run crashed
    on such a clip of the mix): those frames are drawn, with no label."""
    empty_frames = 0
    for seed in range(4):
        movie = make_microscopy_timelapse(seed, shape=(64, 64), num_frames=12, modality="fluorescence",
                                          cell_type="nuclei", cell_size=10.0, density=0.04, speed=2.0, debris=5,
                                          divisions=False)
        assert movie.labels[0].any() and movie.image.shape == (12, 64, 64)
        empty = [t for t, frame in enumerate(movie.labels) if not frame.any()]
        empty_frames += len(empty)
        assert all(movie.image[t].std() > 0 for t in empty)  # still a picture: noise, debris, background
    assert empty_frames >= 4


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_dtype_ranges(dtype):
    images = [_movie(mod, ct, st, seed=s, dtype=dtype, frames=2).image for s, (mod, ct, st) in enumerate(KINDS[:6])]
    for image in images:
        assert image.dtype == np.dtype(dtype)
        if dtype == "uint8":
            assert int(image.max()) - int(image.min()) > 120
    if dtype == "uint16":
        assert max(int(i.max()) for i in images) > 255  # uses more than 8 bits


@pytest.mark.parametrize("cell_type,size", [("rods", 6.0), ("nuclei", 12.0), ("nuclei", 60.0), ("cells", 110.0)])
def test_sizes_follow_the_magnification(cell_type, size):
    m = _movie("fluorescence", cell_type, seed=1, shape=(256, 256), frames=1, cell_size=size, density=0.2,
               divisions=False, enter_leave=False)
    areas = np.bincount(m.labels[0].ravel())[1:]
    areas = areas[areas > 0]
    if cell_type == "rods":
        lengths = [max(np.ptp(np.nonzero(m.labels[0] == i)[k]) for k in (0, 1)) + 1
                   for i in np.unique(m.labels[0])[1:]]
        assert 3 <= np.median(lengths) <= 9  # a few px long, ~2-3 px wide
        assert np.median(areas) < 40
    else:
        diameter = 2 * np.sqrt(np.median(areas) / np.pi)
        assert 0.5 * size < diameter < 1.4 * size, diameter
    assert CELL_SIZE_RANGES["rods"][0] <= 6 and CELL_SIZE_RANGES["cells"][1] >= 120


def _background_structure(image: np.ndarray, labels: np.ndarray) -> float:
    """Std of the 5 x 5 local mean over the background (> 3 px from any cell) divided by its pixel std: near
    1/5 for pixel noise alone, near 1 for structure wider than a few px (0.77 on CTC Fluo-C2DL-MSC at 256 px)."""
    image = image.astype(float)
    background = ~ndimage.binary_dilation(labels > 0, iterations=3)
    return float(ndimage.uniform_filter(image, 5)[background].std() / image[background].std())


def test_sparse_fluorescence_fields_have_a_structured_background():
    """Real widefield fluorescence has out-of-focus objects and specks beside the cells (most of the background's
    variation on CTC Fluo-C2DL-MSC at the model's input); pixel noise alone gave 0.34 on these settings."""
    ratios = []
    for seed in range(8):
        m = make_microscopy_timelapse(5000 + seed, shape=(256, 256), num_frames=1, modality="fluorescence",
                                      cell_type="cells", stain="cytoplasm", density=0.05, cell_size=15.0)
        ratios.append(_background_structure(m.image[0], m.labels[0]))
    assert np.median(ratios) > 0.6 and min(ratios) < 0.5, ratios  # most fields structured, some clean
    settings = dict(shape=(256, 256), num_frames=1, modality="fluorescence", cell_type="cells", stain="cytoplasm",
                    density=0.05, cell_size=15.0)
    clean, cluttered = [], []
    for seed in range(5000, 5008):  # clutter=False / True switch it off / on (the noise that follows differs)
        a = make_microscopy_timelapse(seed, clutter=False, **settings)
        b = make_microscopy_timelapse(seed, clutter=True, **settings)
        np.testing.assert_array_equal(a.labels, b.labels)  # clutter is never labelled
        clean.append(_background_structure(a.image[0], a.labels[0]))
        cluttered.append(_background_structure(b.image[0], b.labels[0]))
    assert np.median(cluttered) > np.median(clean) + 0.2, (clean, cluttered)


def test_out_of_focus_clutter_is_static_unlabelled_and_in_range():
    from sam2_model.synth.modalities import out_of_focus_clutter
    a = out_of_focus_clutter(np.random.default_rng(3), (128, 160), 20.0)
    b = out_of_focus_clutter(np.random.default_rng(3), (128, 160), 20.0)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (128, 160) and a.dtype == np.float32 and a.min() >= 0.0
    fields = [out_of_focus_clutter(np.random.default_rng(s), (128, 160), 20.0) for s in range(12)]
    assert any(f.max() == 0.0 for f in fields) or min(f.max() for f in fields) < 0.1  # some fields are clean
    assert 0.3 < max(f.max() for f in fields) < 3.5  # specks up to a bit brighter than a cell (~1)


def test_cells_range_from_sparse_to_confluent_and_include_spindles():
    """Plated cells from a few per field (CTC Fluo-C2DL-MSC covers 5 %) to confluent, and whole cells from round
    to spindle-shaped (fibroblasts, mesenchymal stem cells: several times longer than wide)."""
    rng = np.random.default_rng(12)
    cover, aspects = [], []
    for _ in range(16):
        m = make_microscopy_timelapse(int(rng.integers(1 << 30)), shape=(192, 192), num_frames=1,
                                      modality="fluorescence", cell_type="cells", cell_size=30.0, overlap=0.0)
        lab = m.labels[0]
        cover.append(float((lab > 0).mean()))
        for i, box in enumerate(ndimage.find_objects(lab), start=1):
            if box is None or (lab[box] == i).sum() < 60 or any(s.start == 0 or s.stop == 192 for s in box):
                continue
            ys, xs = np.nonzero(lab[box] == i)
            eig = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(float)))
            aspects.append(math.sqrt(eig[1] / max(eig[0], 1e-6)))
    assert min(cover) < 0.06 and max(cover) > 0.3, cover
    assert max(aspects) > 5.0 and np.median(aspects) < 3.0, (max(aspects), np.median(aspects))


def _ring(mask, inner, outer):
    """Pixels more than ``inner`` and at most ``outer`` px outside ``mask``."""
    near = ndimage.binary_dilation(mask, iterations=inner) if inner > 0 else mask
    return ndimage.binary_dilation(mask, iterations=outer) & ~near


def test_fluorescence_cells_bright_and_membranes_are_rings():
    m = _movie("fluorescence", "nuclei", "nuclear", seed=2, shape=(192, 192), frames=2, cell_size=30.0, density=0.15)
    img, lab = m.image[0].astype(float), m.labels[0]
    fg = ndimage.binary_erosion(lab > 0, iterations=2)
    bg = ~ndimage.binary_dilation(lab > 0, iterations=6)
    assert np.median(img[fg]) > np.median(img[bg]) + 3 * img[bg].std() / 3
    m = _movie("fluorescence", "cells", "membrane", seed=2, shape=(192, 192), frames=2, cell_size=60.0,
               density=0.2, overlap=0.0)
    img, lab = m.image[0].astype(float), m.labels[0]
    wins = 0
    ids = [i for i in np.unique(lab)[1:] if (lab == i).sum() > 400]
    for i in ids:
        cell = lab == i
        rim = cell & ~ndimage.binary_erosion(cell, iterations=2)
        core = ndimage.binary_erosion(cell, iterations=8)
        if core.sum() > 20:
            wins += np.mean(img[rim]) > np.mean(img[core])
    assert ids and wins >= 0.8 * len(ids)


def test_phase_contrast_dark_cells_bright_halos():
    for seed in range(3):
        m = _movie("phase", "cells", seed=seed, shape=(160, 160), frames=1, cell_size=30.0, density=0.12)
        img, lab = m.image[0].astype(float), m.labels[0] > 0
        inside = np.median(img[ndimage.binary_erosion(lab, iterations=2)])
        halo = np.median(img[_ring(lab, 0, 3)])
        far = np.median(img[~ndimage.binary_dilation(lab, iterations=25)]) if (~ndimage.binary_dilation(
            lab, iterations=25)).any() else None
        assert inside < halo, seed
        if far is not None:
            assert halo > far, seed


def test_dic_relief_has_one_shear_direction():
    m = _movie("dic", "nuclei", seed=5, shape=(192, 192), frames=1, cell_size=24.0, density=0.1)
    img, lab = m.image[0].astype(float), m.labels[0]
    bg = np.median(img[lab == 0])
    dipoles = []
    for i in np.unique(lab)[1:]:
        cell = lab == i
        if cell.sum() < 100 or not ndimage.binary_erosion(cell, iterations=1).any():
            continue
        ys, xs = np.nonzero(cell)
        cy, cx = ys.mean(), xs.mean()
        weight = img[ys, xs] - bg
        d = np.array([(weight * (ys - cy)).sum(), (weight * (xs - cx)).sum()])
        dipoles.append(d / (np.abs(weight).sum() * math.sqrt(cell.sum() / np.pi) + 1e-9))
    dipoles = np.array(dipoles)
    assert len(dipoles) >= 5
    assert np.median(np.linalg.norm(dipoles, axis=1)) > 0.15  # one side bright, the other dark
    mean_dir = dipoles.mean(0) / np.linalg.norm(dipoles.mean(0))
    assert np.mean(dipoles @ mean_dir > 0) > 0.8  # the same side for every cell: a common shear


def test_brightfield_edges_stand_out():
    # bodies only: thin processes hardly bend light, and brightfield shows them faintly if at all
    m = _movie("brightfield", "cells", seed=1, shape=(160, 160), frames=1, cell_size=30.0, density=0.15, processes=0.0)
    img, lab = m.image[0].astype(float), m.labels[0] > 0
    edge = _ring(lab, 0, 2) | (lab & ~ndimage.binary_erosion(lab, iterations=2))
    far = ~ndimage.binary_dilation(lab, iterations=10)
    smooth = ndimage.gaussian_filter(img, 1.0)
    slope = np.hypot(ndimage.sobel(smooth, 0), ndimage.sobel(smooth, 1))
    assert np.median(slope[edge]) > 2.0 * np.median(slope[far])  # a visible rim where the background is flat


def test_random_mix_draws_the_documented_weights_and_valid_clips():
    assert abs(sum(w for w, *_ in MIX) - 1.0) < 1e-9
    rng = np.random.default_rng(0)
    draws = [draw_microscopy_settings(rng) for _ in range(3000)]
    natural = np.mean([d["modality"] == "natural" for d in draws])
    phase = np.mean([d["modality"] == "phase" for d in draws])
    assert abs(natural - sum(w for w, m, *_ in MIX if m == "natural")) < 0.03
    assert abs(phase - sum(w for w, m, *_ in MIX if m == "phase")) < 0.03
    rng = np.random.default_rng(1)
    for _ in range(4):
        m = random_microscopy_timelapse(rng, (96, 96), 3)
        assert m.image.shape == m.labels.shape == (3, 96, 96)


def test_spread_cells_curriculum_raises_the_fluorescent_whole_cells():
    rng = np.random.default_rng(8)
    draws = [draw_microscopy_settings(rng, curriculum="spread-cells") for _ in range(2000)]
    flat = [d for d in draws if d["modality"] == "fluorescence" and d.get("cell_type") == "cells"
            and d.get("stain") == "cytoplasm"]
    assert abs(len(flat) / len(draws) - SPREAD_CELLS_SHARE) < 0.04  # 8 % in the plain mix
    assert {d["modality"] for d in draws} == {"fluorescence", "phase", "brightfield", "dic", "natural"}
    assert all("jump_rate" not in d for d in draws)
    dims = [draw_rim(d["seed"]) < 1.0 for d in flat]
    tails = [draw_processes(d["seed"], "cells") > 0 for d in flat]
    assert 0.4 < np.mean(dims) < 0.6 and 0.4 < np.mean(tails) < 0.6  # each in half of them, independently
    with pytest.raises(ValueError, match="curriculum must be one of"):
        draw_microscopy_settings(rng, curriculum="spread")


def test_crowded_nuclei_curriculum_draws_touching_fluorescent_nuclei():
    rng = np.random.default_rng(9)
    draws = [draw_microscopy_settings(rng, curriculum="crowded-nuclei") for _ in range(2000)]
    crowded = [d for d in draws if "density" in d]
    assert abs(len(crowded) / len(draws) - CROWDED_NUCLEI_SHARE) < 0.04
    assert all(d["modality"] == "fluorescence" and d["cell_type"] == "nuclei" and d["stain"] == "nuclear"
               for d in crowded)
    assert all(CROWDED_SIZE_RANGE[0] <= d["cell_size"] <= CROWDED_SIZE_RANGE[1] for d in crowded)
    assert all(CROWDED_DENSITY_RANGE[0] <= d["density"] <= CROWDED_DENSITY_RANGE[1] for d in crowded)
    rest = [d for d in draws if "density" not in d]  # drawn as for spread cells: whole cells lead
    flat = [d for d in rest if d["modality"] == "fluorescence" and d.get("cell_type") == "cells"
            and d.get("stain") == "cytoplasm"]
    assert abs(len(flat) / len(rest) - SPREAD_CELLS_SHARE) < 0.05
    # a crowded clip: many nuclei, a good part of the field covered, neighbours touching
    movie = make_microscopy_timelapse(shape=(256, 256), num_frames=1, **crowded[0])
    labels = movie.labels[0]
    assert len(np.unique(labels)) - 1 >= 10 and (labels > 0).mean() >= 0.5 * crowded[0]["density"]


def test_leaping_curriculum_draws_nuclei_and_cells_that_all_leap():
    rng = np.random.default_rng(3)
    draws = [draw_microscopy_settings(rng, curriculum="leaps") for _ in range(300)]
    assert {d["cell_type"] for d in draws} == {"nuclei", "cells"}
    assert {d["modality"] for d in draws} == {"fluorescence", "phase", "brightfield", "dic"}
    assert all(JUMP_RATE_RANGE[0] <= d["jump_rate"] <= JUMP_RATE_RANGE[1] for d in draws)
    clip = next(iter(MixedClips(clip_len=4, image_size=96, max_objects=3, seed=2, nuclei_fraction=0.0, curriculum="leaps")))
    assert clip.images.shape[:2] == (4, 3) and clip.present[0].all()


@pytest.mark.parametrize("kwargs,word", [
    (dict(modality="confocal"), "modality"), (dict(clutter="yes"), "clutter"), (dict(cell_type="yeast"), "cell_type"),
    (dict(cell_type="rods", stain="nuclear"), "stain"), (dict(dtype="float32"), "dtype"),
    (dict(shape=(16, 128)), "shape"), (dict(cell_size=200.0), "cell_size"), (dict(density=0.0), "density"),
    (dict(num_frames=0), "num_frames"), (dict(overlap=0.9), "overlap"), (dict(speed=-0.1), "speed"),
    (dict(speed=3.0), "speed"), (dict(shape_change=-1.0), "shape_change"), (dict(rim=1.5), "rim"),
])
def test_bad_arguments_are_named(kwargs, word):
    base = dict(seed=0, shape=(128, 128), num_frames=2)
    base.update(kwargs)
    with pytest.raises(ValueError, match=word):
        make_microscopy_timelapse(**base)


def test_mixed_clips_are_valid_and_resume_by_index():
    source = MixedClips(clip_len=3, image_size=96, max_objects=3, seed=2)
    clips = [c for c, _ in zip(source, range(5))]
    for clip in clips:
        assert clip.images.shape[:2] == (3, 3) and clip.images.shape[2:] == (96, 96)
        assert clip.masks.shape[0] == 3 and clip.masks.shape[2:] == (96, 96)
        assert torch.isfinite(clip.images).all()
        assert set(torch.unique(clip.masks).tolist()) <= {0.0, 1.0}
        assert clip.present[0].all()  # every object is chosen visible in frame 0
    position = source.position()
    nxt = next(iter(source))
    again = MixedClips(clip_len=3, image_size=96, max_objects=3, seed=2)
    again.restore(position)
    assert torch.equal(next(iter(again)).images, nxt.images)
    with pytest.raises(ValueError, match="seed"):
        MixedClips(3, 96, 3, seed=0)
    with pytest.raises(ValueError, match="workers"):
        MixedClips(3, 96, 3, workers=-1)


def test_training_data_choice_and_unchanged_default_stream():
    assert TrainSettings(out="x").data == "nuclei"
    assert isinstance(make_clips(TrainSettings(out="x"), 64), SyntheticClips)
    mixed = make_clips(TrainSettings(out="x", data="mix", data_workers=3), 512)
    assert isinstance(mixed, MixedClips) and mixed.shape == (512, 512) and mixed.workers == 3
    leaping = make_clips(TrainSettings(out="x", data="leaps"), 96)
    assert isinstance(leaping, MixedClips) and leaping.curriculum == "leaps" and leaping.nuclei_fraction == 0.15
    assert mixed.curriculum == "mix" and mixed.nuclei_fraction == 0.15
    assert "leaps" in describe_training_data({"data": "leaps"})
    spread = make_clips(TrainSettings(out="x", data="spread-cells"), 96)
    assert isinstance(spread, MixedClips) and spread.curriculum == "spread-cells"
    assert "40%" in describe_training_data({"data": "spread-cells"})
    crowded = make_clips(TrainSettings(out="x", data="crowded-nuclei"), 96)
    assert isinstance(crowded, MixedClips) and crowded.curriculum == "crowded-nuclei"
    assert "8-48 px" in describe_training_data({"data": "crowded-nuclei"})
    with pytest.raises(ValueError, match="curriculum must be one of"):
        MixedClips(3, 96, 3, curriculum="leaps+spread-cells")
    with pytest.raises(ValueError, match="data"):
        make_clips(TrainSettings(out="x", data="cells"), 64)
    # the default stream is the one the shipped demo model was trained on: first clip of seed 1, as recorded
    clip = next(iter(SyntheticClips(2, 64, 2, seed=1)))
    assert hashlib.sha256(clip.masks.numpy().tobytes()).hexdigest()[:16] == "1c1c8a6ba2480606"
    assert float(clip.images.sum()) == pytest.approx(-39405.99, rel=1e-4)


@pytest.mark.parametrize("cell_type,processes", [("nuclei", 0.0), ("cells", 0.0), ("cells", 0.8), ("rods", 0.0)])
def test_vectorised_drawing_equals_drawing_cell_by_cell(cell_type, processes):
    from sam2_model.synth.batch import draw_many
    from sam2_model.synth.population import PopulationSettings, _World
    from sam2_model.synth.shapes import draw, texture_field

    rng = np.random.default_rng(0)
    fine, coarse = texture_field(rng, 128, 0.8), texture_field(rng, 128, 6.0)
    world = _World(rng, (96, 96), PopulationSettings(cell_type=cell_type, cell_size=20, density=0.3, debris=2,
                                                     processes=processes))
    cells = world.populate() + world.debris
    assert (processes > 0) == any(len(getattr(c, "process_length", ())) for c in cells)
    many = draw_many(cells, (96, 96), fine, coarse)
    for n, cell in enumerate(cells):
        one, sel = draw(cell, (96, 96), fine, coarse), many.owner == n
        if one is None:
            assert not sel.any()
            continue
        y0, y1, x0, x1 = one.box
        ys, xs = np.nonzero(one.inside)
        flat = (ys + y0) * 96 + xs + x0
        a, b = np.argsort(flat), np.argsort(many.flat[sel])
        np.testing.assert_array_equal(flat[a], many.flat[sel][b])
        np.testing.assert_allclose(one.edge[one.inside][a], many.edge[sel][b], atol=1e-3)
        np.testing.assert_allclose(one.texture[one.inside][a], many.texture[sel][b], atol=1e-4)
        np.testing.assert_allclose(one.rho[one.inside][a], many.rho[sel][b], atol=1e-4)
        if one.nucleus is not None:
            np.testing.assert_allclose(one.nucleus[one.inside][a], many.nucleus[sel][b], atol=1e-3)
