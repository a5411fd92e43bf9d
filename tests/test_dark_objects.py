"""Dark objects on a bright background: the ``invert`` option (the model sees 1 - x of each frame's [0, 1] values) in
every route that takes the frame options (FrameSource, the sessions, segment(), track_cells(), the CLI, batch,
session files, Track all's reader, the widget), the detector finding the dark cells, and the masks it gives.

Figures (demo model, 192 x 192 px images of 6 discs, one click each; /tmp/f1 scripts of the F1 report): dark grey
discs IoU 0.61 -> 0.96 inverted, dark purple discs on pink (RGB) 0.47 -> 0.97; a dark 12-frame movie tracked from one
click per cell J&F 0.24 -> 0.97; track_cells on it found 0 -> 6 of 6 cells. The thresholds below keep a wide margin.
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage

from napari_sam2.api import segment
from sam2_model.evaluation import click_point
from sam2_model.frames import FrameSource, to_model_input, to_unit, uint8_to_model_input
from sam2_model.synthetic import make_timelapse

DEMO = dict(model="demo", checkpoint="embedded", device="cpu")


def dark_discs(seed: int, rgb: bool = False, shape=(160, 160), count: int = 4):
    """(image, labels): ``count`` discs 20-30 px wide, dark on a bright background with noise: grey uint8 (70 on
    200) or, ``rgb``, histology-like purple (95, 45, 135) on pink (235, 190, 215)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint16)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    for _ in range(500):
        radius = rng.uniform(10, 15)
        cy, cx = (rng.uniform(radius + 4, n - radius - 4) for n in shape)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
        if not (ndimage.binary_dilation(disc, iterations=4) & (labels > 0)).any():
            labels[disc] = labels.max() + 1
        if labels.max() == count:
            break
    inside = ndimage.gaussian_filter((labels > 0).astype(np.float32), 1.2)
    if rgb:
        background, objects = np.array([235.0, 190, 215]), np.array([95.0, 45, 135])
        image = background * (1 - inside[..., None]) + objects * inside[..., None]
    else:
        image = 200 * (1 - inside) + 70 * inside
    image = image + rng.normal(0, 10, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), labels


def one_click_iou(image, labels, **options) -> float:
    """Mean IoU of segment() with one click deep inside each object."""
    ids = [int(i) for i in np.unique(labels) if i]
    clicks = [(0, *click_point(labels == i)[::-1], 1, i) for i in ids]
    out = segment(image, clicks, **DEMO, **options)
    return float(np.mean([((out == i) & (labels == i)).sum() / ((out == i) | (labels == i)).sum() for i in ids]))


def dark_movie(num_frames: int = 4, seed: int = 900_042):
    """(images, truth, bright images): a synthetic time-lapse of 6 nuclei in 128 x 128 (no divisions, none entering)
    reflected within its range (dark cells, uint16), its labels, and the bright original."""
    movie = make_timelapse(num_frames=num_frames, shape=(128, 128), num_cells=6, seed=seed, divisions=False,
                           enter_leave=False)
    low, high = int(movie.image.min()), int(movie.image.max())
    return (low + high - movie.image.astype(np.int64)).astype(np.uint16), movie.labels, movie.image


def seg_score(pred: np.ndarray, truth: np.ndarray) -> float:
    """CTC SEG: mean over the true cells of every frame of the best predicted label's IoU (0 below 0.5)."""
    scores = []
    for t in range(truth.shape[0]):
        for i in (i for i in np.unique(truth[t]) if i):
            cell = truth[t] == i
            best = max([((pred[t] == p) & cell).sum() / ((pred[t] == p) | cell).sum()
                        for p in np.unique(pred[t][cell]) if p] or [0.0])
            scores.append(best if best > 0.5 else 0.0)
    return float(np.mean(scores))


# ---------------------------------------------------------------- what the model sees
def test_frame_source_inverts_what_the_model_sees_and_nothing_else():
    image, _ = dark_discs(1)
    grey = FrameSource(image[None], image_size=64, invert=True)
    assert grey.invert and "invert=True" in repr(grey)
    # uint8 keeps the reference's exact path, on 255 - x
    assert torch.equal(grey.model_input(0), uint8_to_model_input(255 - image, 64))
    np.testing.assert_array_equal(grey.raw(0), image)  # what masks are measured on keeps the image's values
    np.testing.assert_array_equal(grey.filtered(0), image)
    np.testing.assert_allclose(grey.mapped(0), 1 - np.repeat(image[..., None], 3, -1) / 255.0, atol=1e-6)
    reopened = grey.reopen()
    assert reopened.invert and torch.equal(reopened.model_input(0), grey.model_input(0))
    # other dtypes: 1 - x after the contrast limits (and the smoothing), every colour channel alike
    deep = (image.astype(np.uint16) * 40 + 300)[None]
    plain, flipped = FrameSource(deep, image_size=64, smooth=1.0), FrameSource(deep, image_size=64, smooth=1.0,
                                                                                invert=True)
    assert flipped.contrast_limits == plain.contrast_limits
    unit = to_unit(plain.filtered(0), plain.contrast_limits)
    torch.testing.assert_close(flipped.model_input(0), to_model_input(1 - unit, 64))
    colour, _ = dark_discs(2, rgb=True)
    rgb = FrameSource(colour[None], image_size=64, invert=True)
    assert torch.equal(rgb.model_input(0), uint8_to_model_input(255 - colour, 64))


@pytest.mark.parametrize("value", ["yes", 2, None, 0.5])
def test_bad_invert_values_are_refused_naming_the_option(value, tmp_path):
    image, labels = dark_discs(1)
    with pytest.raises(ValueError, match=r"invert must be True or False"):
        FrameSource(image[None], image_size=64, invert=value)
    with pytest.raises(ValueError, match=r"invert must be True or False .*got"):
        segment(image, [(0, 80, 80, 1, 1)], **DEMO, invert=value)
    from napari_sam2 import track_cells

    with pytest.raises(ValueError, match=r"invert must be True or False"):
        track_cells(image[None], **DEMO, invert=value)
    from napari_sam2.batch import batch

    with pytest.raises(ValueError, match=r"invert must be True or False"):
        batch(str(tmp_path / "none*.tif"), tmp_path / "out", invert=value, progress=False)
    assert not (tmp_path / "out").exists()


def test_a_session_given_a_frame_source_that_does_not_invert_refuses_invert():
    import sam2_model as sm
    from sam2_model.windowed_session import WindowedSession

    image, _ = dark_discs(1)
    model = sm.build_model("demo", checkpoint="embedded", device="cpu")
    source = FrameSource(image[None], image_size=model.image_size)
    for make in (lambda: sm.VideoSession(model, source, invert=True),
                 lambda: WindowedSession(model, source, window=64, invert=True)):
        with pytest.raises(ValueError, match="give invert=True to the FrameSource"):
            make()
    assert sm.VideoSession(model, FrameSource(image[None], image_size=model.image_size, invert=True)).frames.invert


# ---------------------------------------------------------------- the masks it gives
def test_one_click_on_dark_discs_is_far_better_inverted_grey_and_rgb():
    """Measured here: grey 0.57 -> 0.95, RGB 0.44 -> 0.97 (the model input of RGB is each channel inverted)."""
    image, labels = dark_discs(3)
    before, after = one_click_iou(image, labels, object_window="off"), one_click_iou(image, labels, invert=True,
                                                                                      object_window="off")
    assert after > 0.88 and after > before + 0.2, (before, after)
    colour, labels = dark_discs(4, rgb=True)
    before = one_click_iou(colour, labels, rgb=True, object_window="off")
    after = one_click_iou(colour, labels, rgb=True, invert=True, object_window="off")
    assert after > 0.88 and after > before + 0.2, (before, after)
    # object windows (WindowedSession) see the frames inverted as the whole frame does
    assert one_click_iou(image, labels=dark_discs(3)[1], invert=True, object_window=64) > 0.85


def test_track_cells_detects_and_tracks_the_dark_cells():
    """The detector finds the dark cells the model then tracks (reflected as blob_points' dark_cells=True reads)."""
    from napari_sam2 import track_cells

    images, truth, bright = dark_movie()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = track_cells(images, **DEMO, cell_diameter=(8, 40), divisions=False)
        flipped = track_cells(images, **DEMO, cell_diameter=(8, 40), divisions=False, invert=True)
        original = track_cells(bright, **DEMO, cell_diameter=(8, 40), divisions=False)
    assert seg_score(plain.labels, truth) < 0.5  # measured 0 (no cell found): the bright gaps are no cells
    # measured 6 tracks, SEG 0.934: as the bright movie itself (6, 0.938)
    assert len(flipped.lineage) >= 5 and seg_score(flipped.labels, truth) > 0.85
    assert abs(seg_score(flipped.labels, truth) - seg_score(original.labels, truth)) < 0.05


def test_the_detector_reflects_frames_as_dark_cells_does():
    import sam2_model as sm
    from sam2_model.seeding import blob_points
    from sam2_model.tracking.detection import make_detector

    images = dark_movie(1)[0]
    model = sm.build_model("demo", checkpoint="embedded", device="cpu")
    detector = make_detector(model, cell_diameter=(8, 40), invert=True)
    assert detector.invert and not make_detector(model, cell_diameter=(8, 40)).invert
    reflected = detector.reflected(images[0])
    ours, theirs = blob_points(reflected, (8, 40)), blob_points(images[0], (8, 40), dark_cells=True)
    assert len(ours) == len(theirs) == 6
    np.testing.assert_allclose(np.sort(ours, axis=0), np.sort(theirs, axis=0), atol=1.5)
    with pytest.raises(ValueError, match="invert must be True or False"):
        make_detector(model, invert="on")


# ---------------------------------------------------------------- the routes
def test_cli_track_and_auto_take_invert(tmp_path):
    from napari_sam2.cli import main

    image, labels = dark_discs(3)
    stack = np.stack([image, image])
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    ids = [int(i) for i in np.unique(labels) if i]
    rows = [f"0,{i},{click_point(labels == i)[1]},{click_point(labels == i)[0]}" for i in ids]
    (tmp_path / "prompts.csv").write_text("frame,obj_id,y,x\n" + "\n".join(rows) + "\n")
    args = ["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "prompts.csv"), "--device", "cpu",
            "--checkpoint", "embedded", "--object-window", "off"]
    assert main(args + ["-o", str(tmp_path / "inverted.tif"), "--invert"]) == 0
    clicks = [(0, click_point(labels == i)[1], click_point(labels == i)[0], 1, i) for i in ids]
    expected = segment(stack, clicks, **DEMO, object_window="off", invert=True)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "inverted.tif"), expected)
    movie, truth, _ = dark_movie()
    tifffile.imwrite(tmp_path / "movie.tif", movie, photometric="minisblack")
    assert main(["track", str(tmp_path / "movie.tif"), "--auto", "--invert", "--cell-diameter", "8", "40",
                 "--no-divisions", "--device", "cpu", "--checkpoint", "embedded",
                 "-o", str(tmp_path / "auto.tif")]) == 0
    assert seg_score(tifffile.imread(tmp_path / "auto.tif"), truth) > 0.85


def test_batch_takes_invert_and_records_it(tmp_path):
    from napari_sam2._cli_batch import add_batch_parser
    from napari_sam2.batch import _settings
    from napari_sam2.batch_worker import ModelSpec, StackTask, process_stack

    image, labels = dark_discs(3)
    stack = np.stack([image, image])
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    ids = [int(i) for i in np.unique(labels) if i]
    clicks = [(0, click_point(labels == i)[1], click_point(labels == i)[0], 1, i) for i in ids]
    (tmp_path / "s.csv").write_text("frame,obj_id,y,x\n" + "".join(f"0,{o},{y},{x}\n" for _, y, x, _, o in clicks))
    model = ModelSpec(model="demo", checkpoint="embedded", device="cpu")
    task = StackTask("s", str(tmp_path / "s.tif"), str(tmp_path / "out"), model, prompts=str(tmp_path / "s.csv"),
                     object_window=None, invert=True)
    row = process_stack(task)
    assert row["status"] == "ok", row["error"]
    expected = segment(stack, clicks, **DEMO, object_window="off", invert=True)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "s" / "labels.tif"), expected)
    assert json.loads((tmp_path / "out" / "s" / "manifest.json").read_text())["invert"] is True
    # a rerun compares it (recorded only when on: results of runs before the option stay reusable)
    assert _settings(task, None)["invert"] is True and "invert" not in _settings(StackTask("s", "", "", model), None)
    parser = argparse.ArgumentParser(prog="napari-sam2")
    add_batch_parser(parser.add_subparsers(dest="command", required=True))
    assert parser.parse_args(["batch", "x.tif", "--out", "o", "--invert"]).invert is True
    assert parser.parse_args(["batch", "x.tif", "--out", "o"]).invert is False


def test_session_files_keep_invert_and_refuse_bad_values(tmp_path):
    from napari_sam2.session_file import SessionRecord, read_session, write_session

    def record(options):
        return SessionRecord((4, 32, 32), [[0, 5.0, 6.0]], [True], [1], np.zeros((0, 4, 3)), [], {}, options,
                             {"name": "demo", "weights": "embedded (demo)", "image_size": 128, "path": None},
                             {"frame_axis": 0, "channel_axis": "", "channel": ""})

    assert read_session(write_session(tmp_path / "on", record({"invert": True}))).options["invert"] is True
    path = write_session(tmp_path / "bad", record({"invert": "yes"}))
    with pytest.raises(ValueError, match="options.invert must be True or False"):
        read_session(path)


def test_track_all_reader_keeps_invert():
    import sam2_model as sm
    from napari_sam2.track_all import frame_source

    images = dark_movie(2)[0]
    model = sm.build_model("demo", checkpoint="embedded", device="cpu")
    assert frame_source(images, model, {"invert": True, "smooth": 1.0}).invert
    assert not frame_source(images, model, {"smooth": 1.0}).invert


# ---------------------------------------------------------------- the widget
@pytest.mark.gui
def test_widget_invert_box_starts_a_new_session_on_inverted_frames(make_napari_viewer, qtbot, tmp_path,
                                                                    monkeypatch):
    """Tick "Invert (dark objects)" as a person does after a click on a dark disc: the choice is saved, the next
    segmentation runs in a new session on inverted frames (the object kept) and its mask is far better; a saved
    session records the choice; unticking it is saved and leaves the session options."""
    pytest.importorskip("napari")
    from widget_helpers import open_widget, wait

    from napari_sam2.settings import load_settings

    image, labels = dark_discs(3)
    stack = np.stack([image, image])
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("dark", stack), size=256)
    w.window_combo.setCurrentText("off")
    assert not w.invert_check.isChecked() and "invert" not in w.session_options()
    x, y = click_point(labels == 1)
    w.points_layer.add(np.array([[0, y, x]], float))
    wait(qtbot, w)
    first = w.controller
    assert not first.session.frames.invert

    def iou() -> float:
        mask = w.labels_layer.data[0] == 1
        return float((mask & (labels == 1)).sum() / (mask | (labels == 1)).sum())

    before = iou()
    w.invert_check.setChecked(True)
    assert load_settings()["invert"] is True
    assert "inverted for the model" in w.status.text()
    w.segment_button.click()
    wait(qtbot, w)
    assert w.controller is not first and w.controller.session.frames.invert and w.controller.obj_ids == [1]
    assert iou() > 0.85 and iou() > before + 0.15, (before, iou())
    assert w.session_record().options["invert"] is True
    w.invert_check.setChecked(False)
    assert load_settings()["invert"] is False and "invert" not in w.session_options()
    assert w.session_record().options["invert"] is False


def test_widget_track_all_finds_the_dark_cells_with_invert_ticked(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """Track all with "Invert (dark objects)" ticked: its detector looks for the dark cells the model is shown bright
    (it looked for bright blobs on inverted frames before: the gaps between the cells)."""
    pytest.importorskip("napari")
    from widget_helpers import open_widget, track_all_panel, wait_tracking

    images, truth, _ = dark_movie()
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("dark", images), size=256)
    w.window_combo.setCurrentText("off")
    w.invert_check.setChecked(True)
    panel = track_all_panel(w, diameter=(8, 40), divisions=False)
    panel.track_button.click()
    wait_tracking(qtbot, w)
    labels = np.asarray(w.labels_layer.data).reshape(truth.shape)
    assert seg_score(labels, truth) > 0.85, seg_score(labels, truth)  # measured: 0.0 without the fix


def test_sam2_model_track_cells_follows_an_inverting_frame_source():
    """sam2_model.track_cells given FrameSource(..., invert=True): the detector looks for the dark cells the model is
    shown bright (it found none: review); invert=False with such a source is refused; a refused argument with
    invert=True on an array leaves no prefetch thread behind (the tracker makes the source after its checks)."""
    import threading

    import sam2_model as sm

    images, truth, _ = dark_movie()
    model = sm.build_model("demo")
    source = FrameSource(images, image_size=model.image_size, invert=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sm.track_cells(model, source, cell_diameter=(8, 40), divisions=False)
    assert len(result.lineage) >= 5 and seg_score(result.labels, truth) > 0.85
    with pytest.raises(ValueError, match="invert=False was given with a FrameSource that inverts"):
        sm.track_cells(model, FrameSource(images, image_size=model.image_size, invert=True), invert=False)
    threads = threading.active_count()
    with pytest.raises(ValueError):
        sm.track_cells(model, images, seeding="bad", invert=True)
    assert threading.active_count() == threads
