"""smooth="auto" as the default of segment() and `napari-sam2 track` (prompted): chosen from the first prompted frame's
grain at the clicks for the demo model's shipped weights only (a blur on the grainy MSC cells, none on clean synthetic
nuclei), 0 for other weights; said once; bad values refused with words."""

from __future__ import annotations

import pathlib
import warnings

import numpy as np
import pytest

import sam2_model as sm
from napari_sam2 import segment
from napari_sam2.cli import main
from sam2_model.auto_smooth import demo_weights_as_shipped, smooth_choice
from sam2_model.demo_weights import embedded_weights_path
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model.synthetic import make_timelapse

MSC = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "ctc-msc"


@pytest.fixture(scope="module")
def demo() -> "sm.SAM2Model":
    return sm.build_model("demo", device="cpu")


@pytest.fixture(scope="module")
def msc_crop() -> tuple:
    """Two frames of the real MSC time-lapse cut to (260, 320) around two cells, and their clicks (frame, y, x,
    label, obj_id) at the most interior pixel of frame 0's tracking markers (grain >= 0.15 at the clicks: grainy,
    dim cells)."""
    tifffile = pytest.importorskip("tifffile")
    if not (MSC / "01" / "t001.tif").is_file() or not (MSC / "01_GT" / "TRA" / "man_track000.tif").is_file():
        pytest.skip("the MSC time-lapse is not in ../shared/data/ctc-msc")
    rows, cols = slice(360, 620), slice(0, 320)
    stack = np.stack([tifffile.imread(MSC / "01" / f"t{t:03d}.tif")[rows, cols] for t in range(2)])
    markers = tifffile.imread(MSC / "01_GT" / "TRA" / "man_track000.tif")[rows, cols]
    ids = [int(i) for i in np.unique(markers) if i]
    clicks = [(0, y, x, 1, k + 1) for k, (x, y) in enumerate(click_point(markers == i) for i in ids)]
    return stack, np.array(clicks, np.float64)


@pytest.fixture(scope="module")
def grainy_synth() -> tuple:
    """A synthetic nuclei time-lapse (2, 128, 128) with Gaussian pixel noise of 0.2 x its objects' contrast added
    (grain >= 0.15: "auto" blurs it for the shipped demo weights) and its clicks (frame, y, x, label, obj_id) on
    three nuclei: the guard below runs without the MSC data."""
    movie = make_timelapse(num_frames=2, shape=(128, 128), seed=3, dtype="uint16")
    image = movie.image.astype(np.float64)
    span = float(np.percentile(image, 99) - np.percentile(image, 1))
    noisy = image + np.random.default_rng(0).normal(0.0, 0.2 * span, image.shape)
    stack = np.clip(noisy, 0, 65535).astype(np.uint16)
    ids = clickable_objects(movie.labels[0])[:3]
    clicks = [(0, y, x, 1, k + 1) for k, (x, y) in enumerate(click_point(movie.labels[0] == i) for i in ids)]
    return stack, np.array(clicks, np.float64)


def _segment_said(*args, **kwargs) -> tuple:
    """segment()'s labels and the lines it warned about smoothing."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = segment(*args, **kwargs)
    return labels, [str(w.message) for w in caught if "smoothing" in str(w.message)]


def test_msc_auto_blurs_as_the_px_it_says(demo, msc_crop):
    stack, clicks = msc_crop
    points = clicks[:, [2, 1]]
    chosen = smooth_choice("auto", stack[0], points, model="demo")
    assert chosen.sigma > 0 and chosen.grain >= 0.15
    labels, said = _segment_said(stack, clicks, model=demo)  # the default: "auto"
    assert said == [f"smoothing {chosen.sigma:g} px: grainy frames (grain {chosen.grain:.2f})"]
    same, quiet = _segment_said(stack, clicks, model=demo, smooth=chosen.sigma)
    np.testing.assert_array_equal(labels, same)
    assert quiet == []
    unsmoothed = segment(stack, clicks, model=demo, smooth="off")
    assert not np.array_equal(labels, unsmoothed)  # the blur was used


def test_clean_synthetic_auto_is_bit_identical_to_off(demo):
    movie = make_timelapse(num_frames=2, shape=(128, 128), seed=3, dtype="uint16")
    ids = clickable_objects(movie.labels[0])[:3]
    clicks = [(0, y, x, 1, k + 1) for k, (x, y) in enumerate(click_point(movie.labels[0] == i) for i in ids)]
    auto, said = _segment_said(movie.image, clicks, model=demo, smooth="auto")
    assert said == []
    np.testing.assert_array_equal(auto, segment(movie.image, clicks, model=demo, smooth=0))


def test_auto_is_zero_for_other_weights(demo, grainy_synth, tmp_path):
    stack, clicks = grainy_synth
    points = clicks[:, [2, 1]]
    assert smooth_choice("auto", stack[0], points, model=demo).sigma > 0  # the shipped weights blur these frames
    assert demo_weights_as_shipped("demo") and demo_weights_as_shipped("demo", "download")
    assert demo_weights_as_shipped("demo", str(embedded_weights_path())) and demo_weights_as_shipped(demo)
    for name, checkpoint in (("demo", "random"), ("sam2.1_hiera_tiny", "download"), ("sam2_hiera_small", None)):
        assert not demo_weights_as_shipped(name, checkpoint)
        assert smooth_choice("auto", stack[0], points, model=name, checkpoint=checkpoint).sigma == 0.0
    tuned = sm.build_model("demo", device="cpu")  # a fine-tuned copy: one tensor moved
    next(iter(tuned.parameters())).data.add_(1e-3)
    assert not demo_weights_as_shipped(tuned)
    assert smooth_choice("auto", stack[0], points, model=tuned).sigma == 0.0
    assert smooth_choice(3, stack[0], points, model=tuned).sigma == 3.0  # a number given is used as given
    random = sm.build_model("demo", checkpoint="random", device="cpu")
    labels, said = _segment_said(stack[:1], clicks, model=random)
    assert said == []
    np.testing.assert_array_equal(labels, segment(stack[:1], clicks, model=random, smooth=0))


def test_bad_values_refused_with_words(demo, tmp_path):
    frame = np.zeros((2, 64, 64), np.uint16)
    frame[:, 20:40, 20:40] = 500
    for bad in ("blur", -2, float("inf"), True, [4]):
        with pytest.raises(ValueError, match='smooth must be "auto", "off" or a number of pixels >= 0, got'):
            segment(frame, [(0, 30, 30, 1, 1)], model=demo, smooth=bad)
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "s.tif", frame)
    (tmp_path / "p.csv").write_text("frame,obj_id,y,x,label\n0,1,30,30,1\n")
    args = ["track", str(tmp_path / "s.tif"), "--prompts", str(tmp_path / "p.csv"), "-o", str(tmp_path / "o.tif")]
    assert main(args + ["--smooth", "blur"]) == 2
    assert not (tmp_path / "o.tif").exists()


def test_cli_says_what_auto_chose_and_writes_those_labels(demo, msc_crop, tmp_path, capsys):
    tifffile = pytest.importorskip("tifffile")
    stack, clicks = msc_crop
    tifffile.imwrite(tmp_path / "msc.tif", stack)
    rows = "".join(f"{int(f)},{int(o)},{y},{x},{int(lab)}\n" for f, y, x, lab, o in clicks)
    (tmp_path / "p.csv").write_text("frame,obj_id,y,x,label\n" + rows)
    out = tmp_path / "labels.tif"
    assert main(["track", str(tmp_path / "msc.tif"), "--prompts", str(tmp_path / "p.csv"), "-o", str(out),
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr()
    chosen = smooth_choice("auto", stack[0], clicks[:, [2, 1]], model="demo")
    assert printed.out.count("--smooth auto:") == 1
    assert f"--smooth auto: smoothing {chosen.sigma:g} px: grainy frames (grain {chosen.grain:.2f})" in printed.out
    np.testing.assert_array_equal(tifffile.imread(out), segment(stack, clicks, model=demo, smooth=chosen.sigma))
