""""Track all cells" in the segmentation widget, driven as a person would (real napari under xvfb-run, demo model).

A synthetic 8-frame 128 x 128 time-lapse with one division (seed 900719: cell 2 divides into 7 and 8 at frame 3).
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import check_ctc, read_ctc, read_geff, write_ctc_ground_truth
from widget_helpers import open_widget, track_all_panel
SEED, FRAMES = 900_719, 8
FULL_RUN: dict = {}  # the first test's labels, to compare a cancelled run's frames with


@pytest.fixture(scope="module")
def movie():
    movie = make_timelapse(num_frames=FRAMES, shape=(128, 128), num_cells=6, seed=SEED)
    assert movie.parents == {7: 2, 8: 2}  # the division the test relies on
    return movie


@pytest.fixture
def opened(make_napari_viewer, qtbot, tmp_path, monkeypatch, movie):
    pytest.importorskip("napari")
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image), size=256)
    return viewer, widget, track_all_panel(widget, diameter=(8, 30), divisions=True, seeding="blobs")


def finish(qtbot, widget, panel, timeout=180_000):
    qtbot.waitUntil(lambda: panel.status.text().startswith(("Done", "Cancelled", "Failed"))
                    and panel.worker is None and not widget.busy(), timeout=timeout)
    assert not panel.status.text().startswith("Failed"), panel.status.text()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def best_iou(labels: np.ndarray, cell: np.ndarray) -> tuple:
    ids = [i for i in np.unique(labels[cell]) if i]
    scores = [(iou(labels == i, cell), int(i)) for i in ids]
    return max(scores) if scores else (0.0, 0)


@pytest.mark.gui
def test_track_all_cells_lineage_exports_correction_and_undo(opened, qtbot, movie, tmp_path):
    viewer, widget, panel = opened
    panel.track_button.click()
    finish(qtbot, widget, panel)
    labels = widget.labels_layer.data
    assert labels.shape == (FRAMES, 128, 128) and labels.dtype == np.uint32
    FULL_RUN["labels"] = labels.copy()

    # most true cells are matched by one track at IoU > 0.5 on every frame
    matched = total = 0
    for t in range(FRAMES):
        for cell_id in np.unique(movie.labels[t])[1:]:
            total += 1
            matched += best_iou(labels[t], movie.labels[t] == cell_id)[0] > 0.5
    assert matched / total >= 0.85, (matched, total)

    # the division: the Tracks layer draws the two daughters' parent link
    tracks = viewer.layers["SAM2 lineage [cells]"]
    assert tracks.__class__.__name__ == "Tracks"
    last = FRAMES - 1
    daughters = [best_iou(labels[last], movie.labels[last] == d) for d in (7, 8)]
    assert all(score > 0.5 for score, _ in daughters), daughters
    mother = best_iou(labels[0], movie.labels[0] == 2)[1]
    assert {d: tracks.graph.get(d) for _, d in daughters} == {d: [mother] for _, d in daughters}
    assert set(np.unique(tracks.data[:, 0]).astype(int)) == set(np.unique(labels).tolist()) - {0}

    # exports: labels TIFF, CSV with parent ids, CTC folder that passes the format checks, GEFF
    import tifffile

    written = panel.export("labels", str(tmp_path / "labels"))
    np.testing.assert_array_equal(tifffile.imread(written), labels)
    with open(panel.export("tracks", str(tmp_path / "tracks.csv"))) as handle:
        rows = {int(r["track_id"]): int(r["parent_id"]) for r in csv.DictReader(handle)}
    assert all(rows[d] == mother for _, d in daughters) and set(rows) == set(np.unique(labels).tolist()) - {0}
    ctc_labels, ctc_lineage = read_ctc(panel.export("ctc", str(tmp_path / "ctc")))
    assert check_ctc(ctc_labels, ctc_lineage) == [] and ctc_lineage.divisions()
    assert (tmp_path / "ctc" / "res_track.txt").exists() and (tmp_path / "ctc" / "mask007.tif").exists()
    assert panel.export("ctc", str(tmp_path / "ctc"), overwrite=True)  # an earlier result is replaced
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.txt").write_text("mine")  # a folder with other files is never emptied
    assert panel.export("ctc", str(tmp_path / "notes"), overwrite=True) is None
    assert "holds other files" in panel.status.text() and (tmp_path / "notes" / "thesis.txt").exists()
    geff_graph, _ = read_geff(panel.export("geff", str(tmp_path / "tracks.geff")))
    assert geff_graph.number_of_nodes() == len(tracks.data)

    # correction: the tracker "lost" a cell from frame 4 on (the person erases it there); pick its track,
    # click the true cell on frame 4 and re-propagate it alone
    cell = next(c for c in (1, 3, 4, 5, 6) if all((movie.labels[t] == c).any() for t in range(4, FRAMES)))
    track_id = best_iou(labels[4], movie.labels[4] == cell)[1]
    tracked = labels.copy()
    labels[4:][labels[4:] == track_id] = 0
    widget.labels_layer.refresh()
    before = labels.copy()
    viewer.dims.set_current_step(0, 4)
    widget.labels_layer.selected_label = track_id  # picking the label selects the track
    assert panel.track_spin.value() == track_id
    panel.fix_button.click()
    fix = viewer.layers["SAM2 cell fix [cells]"]
    assert viewer.layers.selection.active is fix or viewer.layers.selection.active.name == fix.name
    y, x = np.argwhere(movie.labels[4] == cell).mean(axis=0)
    fix.add(np.array([[4, y, x]]))
    panel.repropagate_button.click()
    finish(qtbot, widget, panel)
    after = widget.labels_layer.data
    others = (before != track_id) & (after != track_id)
    np.testing.assert_array_equal(after[others], before[others])  # no other cell moved a pixel
    np.testing.assert_array_equal(after[:4], before[:4])  # frames before the correction are untouched
    assert panel.current().tracking.history[-1].frames == list(range(4, FRAMES))
    for t in range(4, FRAMES):  # the cell is back, on the right pixels
        assert iou(after[t] == track_id, movie.labels[t] == cell) > 0.5
    assert not len(fix.data)  # the clicks were used
    assert panel.current().tracking.lineage[track_id].end == FRAMES - 1

    # Undo: the correction; the tracking run only once the person's own edit is gone; then labels are empty
    panel.undo_button.click()
    np.testing.assert_array_equal(widget.labels_layer.data, before)
    panel.undo_button.click()
    assert "edited after this tracking step" in panel.status.text()
    labels[:] = tracked  # the person paints the cell back
    panel.undo_button.click()
    assert not widget.labels_layer.data.any()
    assert "SAM2 lineage [cells]" not in viewer.layers
    assert panel.status.text().startswith("Undid the tracking run")


@pytest.mark.gui
def test_cancel_keeps_whole_frames_and_undo_reverts(opened, qtbot):
    viewer, widget, panel = opened
    from napari_sam2.settings import load_settings

    assert load_settings()["track_all"] == {"seeding": "blobs", "min_diameter": 8.0, "max_diameter": 30.0,
                                            "redetect_every": 2, "divisions": True}
    panel.track_button.click()
    qtbot.waitUntil(lambda: panel.progress.maximum() == FRAMES and panel.progress.value() >= 2, timeout=120_000)
    assert panel.cancel_button.isEnabled() and not widget.forward_button.isEnabled()  # the widget waits
    widget.cancel_button.click()  # the widget's Cancel stops this run too (the panel's does the same)
    finish(qtbot, widget, panel)
    assert panel.status.text().startswith("Cancelled"), panel.status.text()
    done = panel.current().tracking.history[-1].frames
    assert 2 <= len(done) < FRAMES and done == list(range(len(done)))
    labels = widget.labels_layer.data
    assert all(labels[t].any() for t in done) and not labels[len(done):].any()
    if "labels" in FULL_RUN:  # every kept frame is whole: exactly the frame of an uncancelled run
        np.testing.assert_array_equal(labels[done], FULL_RUN["labels"][done])
    panel.undo_button.click()
    assert not widget.labels_layer.data.any()


@pytest.mark.gui
def test_console_track_cells_with_a_viewer_and_an_array_agree(make_napari_viewer, monkeypatch, tmp_path, movie):
    import napari_sam2

    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    stack = movie.image[:3]
    with pytest.raises(ValueError, match="cell_diameter"):
        napari_sam2.track_cells(stack, cell_diameter=(30, 8))
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="short")
    widget = napari_sam2.get_widget(viewer)
    widget.size_spin.setValue(256)
    with pytest.raises(ValueError, match="model/checkpoint"):
        napari_sam2.track_cells(viewer, model="demo")
    seen = []
    options = dict(cell_diameter=(8, 30), redetect_every=2, divisions=False)
    in_viewer = napari_sam2.track_cells(viewer, "short", progress=lambda done, total: seen.append((done, total)),
                                        **options)
    assert seen == [(1, 3), (2, 3), (3, 3)]
    np.testing.assert_array_equal(viewer.layers["SAM2 masklets [short]"].data, in_viewer.labels)
    assert "SAM2 lineage [short]" in viewer.layers and len(in_viewer.lineage) >= 5
    from_array = napari_sam2.track_cells(stack, image_size=256, **options)
    np.testing.assert_array_equal(from_array.labels, in_viewer.labels)


def test_cli_track_auto_writes_ctc_and_geff_and_evaluate_scores_it(tmp_path, movie, capsys):
    import tifffile

    from napari_sam2.cli import main

    stack = tmp_path / "movie.tif"
    tifffile.imwrite(stack, movie.image[:6], photometric="minisblack")
    gt = write_ctc_ground_truth(tmp_path / "gt", movie.labels[:6], movie.parents)
    res, geff = tmp_path / "res", tmp_path / "tracks.geff"
    track = ["track", str(stack), "--auto", "--cell-diameter", "8", "30", "--redetect-every", "2"]
    # mistakes are reported before any model work
    assert main(track) == 2 and "at least one output" in capsys.readouterr().err
    assert main(track + ["--ctc", str(res), "--prompts", str(stack)]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert main(["track", str(stack), "-o", str(tmp_path / "x.tif")]) == 2 and "--prompts" in capsys.readouterr().err

    assert main(track + ["--ctc", str(res), "--geff", str(geff)]) == 0
    labels, lineage = read_ctc(res)
    assert labels.shape == (6, 128, 128) and check_ctc(labels, lineage) == []
    assert read_geff(geff)[0].number_of_nodes() > 0
    assert main(track + ["--ctc", str(res)]) == 2 and "not empty" in capsys.readouterr().err

    assert main(["evaluate", str(res), str(gt)]) == 0
    scores = dict(line.split() for line in capsys.readouterr().out.splitlines() if len(line.split()) == 2)
    assert float(scores["SEG"]) > 0.7 and float(scores["TRA"]) > 0.9, scores


def test_cli_track_auto_reads_the_chosen_axis_and_channel_and_start_frame(tmp_path, movie, capsys):
    """--auto on the frames of one z of a (Z, T, Y, X) stack (--axis 1 --fix 0=1), or on one channel of a
    (T, C, Y, X) stack, tracks exactly what the plain (T, Y, X) stack gives; --start-frame seeds on that frame; a start frame outside the stack is refused."""
    import tifffile

    from napari_sam2.cli import main

    frames = movie.image[:6]
    options = ["--auto", "--cell-diameter", "8", "30", "--redetect-every", "2"]
    plain, moved, channels = tmp_path / "tyx.tif", tmp_path / "ztyx.tif", tmp_path / "tcyx.tif"
    noise = np.random.default_rng(0).integers(0, 255, frames.shape).astype(frames.dtype)
    tifffile.imwrite(plain, frames, photometric="minisblack")
    tifffile.imwrite(moved, np.stack([noise, frames]), photometric="minisblack")
    tifffile.imwrite(channels, np.stack([noise, frames], axis=1), photometric="minisblack")
    assert main(["track", str(plain), *options, "--ctc", str(tmp_path / "a")]) == 0
    assert main(["track", str(moved), *options, "--axis", "1", "--fix", "0=1", "--ctc", str(tmp_path / "b")]) == 0
    assert main(["track", str(channels), *options, "--channel-axis", "1", "--channel", "1",
                 "--ctc", str(tmp_path / "c")]) == 0
    expected, lineage = read_ctc(tmp_path / "a")
    for name in ("b", "c"):
        labels, rows = read_ctc(tmp_path / name)
        np.testing.assert_array_equal(labels, expected)
        assert rows.rows() == lineage.rows()

    assert main(["track", str(plain), *options, "--start-frame", "3", "-o", str(tmp_path / "late.tif")]) == 0
    late = tifffile.imread(tmp_path / "late.tif")
    assert late.shape == frames.shape and not late[:3].any()  # nothing before the start frame
    assert all(late[t].any() for t in range(3, 6))
    capsys.readouterr()
    assert main(["track", str(plain), *options, "--start-frame", "6", "-o", str(tmp_path / "x.tif")]) == 2
    assert "--start-frame must be a frame of the stack, 0..5" in capsys.readouterr().err
    assert not (tmp_path / "x.tif").exists()
