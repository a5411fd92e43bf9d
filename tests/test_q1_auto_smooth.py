"""smooth="auto" (sam2_model.auto_smooth): on for grainy, dim frames (the real MSC time-lapse), off for the clean
frames of the quality guards (held-out synthetic nuclei, the real widefield nuclei), so their figures do not move."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from sam2_model.auto_smooth import AUTO_SIGMA, GRAIN_ON, grain, resolve_smooth, suggest_smooth
from sam2_model.evaluation import HELD_OUT_SEEDS, click_point, clickable_objects
from sam2_model.synthetic import make_timelapse

MSC = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "ctc-msc"


def _blobs(noise: float, contrast: float, seed: int = 0) -> tuple:
    """(256, 256) float frame of nine discs 30 px wide of ``contrast`` over a background of 100 with Gaussian pixel
    noise of ``noise``, and the (9, 2) (x, y) clicks at their centres."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:256, :256]
    frame = np.full((256, 256), 100.0)
    centres = [(48 + 80 * i, 48 + 80 * j) for i in range(3) for j in range(3)]
    for x, y in centres:
        frame[(xx - x) ** 2 + (yy - y) ** 2 <= 15 ** 2] += contrast
    return frame + rng.normal(0.0, noise, frame.shape), np.array(centres, np.float64)


def _clicks(labels: np.ndarray) -> np.ndarray:
    return np.array([click_point(labels == obj_id) for obj_id in clickable_objects(labels)], np.float64)


def test_grainy_dim_cells_are_smoothed_and_clean_ones_not():
    grainy, clicks = _blobs(noise=40.0, contrast=60.0)
    clean, _ = _blobs(noise=2.0, contrast=60.0)
    assert grain(grainy) >= GRAIN_ON > grain(clean)
    sigma = suggest_smooth(grainy, clicks)
    assert 0.0 < sigma <= AUTO_SIGMA
    assert sigma <= 0.25 * 30  # a fraction of the cells' width, not a blur that erases them
    assert suggest_smooth(clean, clicks) == 0.0
    assert suggest_smooth(np.full((64, 64), 7, np.uint16)) == 0.0  # a flat frame: nothing to smooth for


def test_the_guards_frames_are_left_alone():
    for seed in HELD_OUT_SEEDS:  # the synthetic quality bars' held-out sequences (tests/test_quality.py)
        movie = make_timelapse(num_frames=1, shape=(256, 256), seed=seed, dtype="uint16")
        assert grain(movie.image[0]) < GRAIN_ON / 10
        assert resolve_smooth("auto", movie.image[0], _clicks(movie.labels[0])) == 0.0


def test_real_nuclei_left_alone_and_msc_smoothed():
    tifffile = pytest.importorskip("tifffile")
    import importlib.util

    spec = importlib.util.find_spec("stardist")
    nuclei = None
    if spec is not None and spec.submodule_search_locations:
        nuclei = next((pathlib.Path(p) / "data" / "images" for p in spec.submodule_search_locations
                       if (pathlib.Path(p) / "data" / "images" / "img2d.tif").is_file()), None)
    if nuclei is None and not (MSC / "01" / "t000.tif").is_file():
        pytest.skip("neither the stardist example nuclei nor the MSC time-lapse is here")
    if nuclei is not None:
        image, labels = tifffile.imread(nuclei / "img2d.tif"), tifffile.imread(nuclei / "mask2d.tif")
        assert resolve_smooth("auto", image, _clicks(labels)) == 0.0
    if (MSC / "01" / "t000.tif").is_file():
        frame, marks = tifffile.imread(MSC / "01" / "t000.tif"), tifffile.imread(MSC / "01_GT" / "TRA" / "man_track000.tif")
        clicks = np.array([click_point(marks == i) for i in np.unique(marks)[1:]], np.float64)
        assert resolve_smooth("auto", frame, clicks) == 4.0


def test_options_as_given_and_bad_ones_refused():
    frame, _ = _blobs(noise=40.0, contrast=60.0)
    assert resolve_smooth("off", frame) == 0.0
    assert resolve_smooth(None, frame) == 0.0
    assert resolve_smooth(3, frame) == 3.0
    assert resolve_smooth(" Auto ", frame) == suggest_smooth(frame)
    for bad in ("soft", -1, float("nan"), True, [1]):
        with pytest.raises(ValueError, match='smooth must be "auto", "off" or a number of pixels >= 0'):
            resolve_smooth(bad, frame)
    with pytest.raises(ValueError, match="frame must be"):
        grain(np.zeros((4, 4, 4, 4)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        grain(np.full((32, 32), np.nan))


def test_grain_read_at_the_clicked_objects_not_the_frame_centre():
    grainy, clicks = _blobs(noise=40.0, contrast=60.0)
    frame = np.full((768, 768), 100.0)
    frame[:256, :256] = grainy  # the clicked grainy cells in a corner
    frame[320:448, 320:448] = np.random.default_rng(1).normal(100.0, 2.0, (128, 128))
    frame[370:400, 370:400] += 5000.0  # a bright bead at the centre, not clicked
    assert grain(frame) < GRAIN_ON  # the centre alone reads clean ...
    assert grain(frame, clicks) >= GRAIN_ON  # ... the clicked cells grainy
    assert suggest_smooth(frame, clicks) > 0.0


def test_one_hot_pixel_does_not_turn_the_blur_off():
    grainy, clicks = _blobs(noise=40.0, contrast=60.0)
    frame = np.clip(grainy, 0, None).astype(np.uint16)
    frame[128, 128] = 65535
    assert grain(frame) >= GRAIN_ON and grain(frame, clicks) >= GRAIN_ON
    assert suggest_smooth(frame) > 0.0 and suggest_smooth(frame, clicks) > 0.0


def test_numpy_bools_refused_like_python_ones():
    frame, _ = _blobs(noise=40.0, contrast=60.0)
    for bad in (np.True_, np.False_, np.array(True)):
        with pytest.raises(ValueError, match='smooth must be "auto", "off" or a number of pixels >= 0'):
            resolve_smooth(bad, frame)
