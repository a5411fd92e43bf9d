"""The Track all panel's exports run in a worker (napari stays responsive): progress, the panel and the widget busy,
Cancel, nothing half-written; the steps behind them run headless too. Real napari under xvfb-run, the demo model,
a synthetic 5-frame 96 x 96 time-lapse."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import read_ctc
from widget_helpers import open_widget, small_movie, track_all_panel, tracked_calibrated, wait_tracking

FRAMES = 5


@pytest.fixture
def tracked(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    movie = small_movie(FRAMES, 11)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(widget)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert panel.current().tracking.lineage, panel.status.text()
    return viewer, widget, panel


def answer_dialog(monkeypatch, path) -> None:
    monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getSaveFileName", lambda *a, **k: (str(path), ""))


def finished(qtbot, widget, panel) -> None:
    qtbot.waitUntil(lambda: panel.worker is None and not widget.busy(), timeout=60_000)


@pytest.mark.gui
def test_export_buttons_write_in_a_worker_whole(tracked, qtbot, tmp_path, monkeypatch):
    viewer, widget, panel = tracked
    expected = panel.current().tracking.result().labels

    answer_dialog(monkeypatch, tmp_path / "tracked")  # typed without the suffix
    panel.export_buttons["labels"].click()
    # the click returns at once: the export runs in a worker, the panel and the widget are busy meanwhile
    assert panel.worker is not None and widget.worker is panel.worker and widget.busy()
    assert not panel.export_buttons["ctc"].isEnabled() and not panel.track_button.isEnabled()
    assert panel.cancel_button.isEnabled() and widget.cancel_button.isEnabled()
    finished(qtbot, widget, panel)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "tracked.tif"), expected)
    assert panel.status.text().startswith(f"Wrote {tmp_path / 'tracked.tif'}"), panel.status.text()
    assert panel.progress.value() == panel.progress.maximum()
    assert panel.export_buttons["ctc"].isEnabled() and not panel.cancel_button.isEnabled()

    answer_dialog(monkeypatch, tmp_path / "ctc")
    panel.export_buttons["ctc"].click()
    assert panel.worker is not None
    finished(qtbot, widget, panel)
    ctc_labels, lineage = read_ctc(tmp_path / "ctc")
    assert ctc_labels.shape == expected.shape and len(lineage)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


@pytest.mark.gui
def test_export_refused_or_failing_writes_nothing(tracked, qtbot, tmp_path, monkeypatch):
    viewer, widget, panel = tracked
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.txt").write_text("mine")
    answer_dialog(monkeypatch, tmp_path / "notes")  # a folder with other files is never emptied: refused at once
    panel.export_buttons["ctc"].click()
    assert panel.worker is None and not widget.busy()
    assert "holds other files" in panel.status.text()
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["thesis.txt"]

    (tmp_path / "a file").write_text("not a folder")
    answer_dialog(monkeypatch, tmp_path / "a file" / "tracks.csv")  # fails in the worker
    panel.export_buttons["tracks"].click()
    finished(qtbot, widget, panel)
    assert panel.status.text().startswith("Export failed:") and "Nothing was written" in panel.status.text()
    assert (tmp_path / "a file").read_text() == "not a folder"
    assert panel.track_button.isEnabled() and widget.segment_button.isEnabled()


@pytest.mark.gui
def test_cancel_stops_an_export_with_nothing_half_written(tracked, qtbot, tmp_path, monkeypatch):
    viewer, widget, panel = tracked
    answer_dialog(monkeypatch, tmp_path / "tracks.geff")
    panel.export_buttons["geff"].click()
    assert panel.worker is not None and widget.cancel_button.isEnabled()
    widget.cancel_button.click()  # the widget's Cancel stops the panel's export too
    finished(qtbot, widget, panel)
    text = panel.status.text()
    if text.startswith("Export cancelled"):  # stopped before the folder was published: nothing is there
        assert "nothing was written" in text and not (tmp_path / "tracks.geff").exists()
    else:  # the worker had already published it whole
        assert text.startswith("Wrote") and any((tmp_path / "tracks.geff" / name).exists()
                                                for name in ("zarr.json", ".zattrs")), text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert panel.track_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_export_steps_read_in_the_worker_and_stop_without_writing(tmp_path):
    from sam2_model.tracking import Lineage, Track, TrackingResult
    from napari_sam2.track_export import export_tracking_steps

    labels = np.zeros((3, 16, 16), np.uint32)
    labels[:, 4:8, 4:8] = 1
    reads = []

    def result() -> TrackingResult:
        reads.append(1)
        return TrackingResult(labels=labels, lineage=Lineage([Track(1, 0, 2, 0)]), frames_tracked=[0, 1, 2])

    with pytest.raises(ValueError, match="what must be one of"):
        export_tracking_steps(result, "png", tmp_path / "x")
    steps = export_tracking_steps(result, "ctc", tmp_path / "ctc")
    assert reads == []  # nothing is read until the worker asks for the steps
    assert next(steps)[0] == "plan" and next(steps)[:3] == ("frame", 0, "read") and reads == [1]
    steps.close()  # cancelled before the write: nothing there
    assert list(tmp_path.iterdir()) == []
    done = list(export_tracking_steps(result, "ctc", tmp_path / "ctc"))
    assert done[-1][:2] == ("written", 1) and (tmp_path / "ctc" / "res_track.txt").exists()


class Writes:
    """The planes journals write into a labels array (:func:`napari_sam2.labels_writer.watch_writes`)."""

    def __init__(self) -> None:
        self.planes: list = []

    def seen(self, index, plane) -> None:
        self.planes.append((tuple(index), np.array(plane)))


@pytest.mark.gui
def test_relabel_moves_every_pixel_once_and_leaves_nothing_to_undo(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    from qtpy.QtWidgets import QInputDialog

    from napari_sam2.labels_writer import watch_writes
    from sam2_model.evaluation import click_point

    movie = make_timelapse(num_frames=FRAMES, shape=(96, 96), num_cells=2, seed=5, divisions=False,
                           enter_leave=False, radius_fraction=0.12)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    x, y = click_point(movie.labels[0] == 1)
    w.points_layer.add(np.array([[0, y, x]]))
    qtbot.waitUntil(lambda: not w.busy(), timeout=120_000)
    w.forward_button.click()
    qtbot.waitUntil(lambda: not w.busy(), timeout=120_000)
    labels = w.labels_layer.data
    labels[FRAMES - 1, :2, :2] = 1  # painted by hand with the object's id
    before = labels.copy()
    assert all((before[t] == 1).any() for t in range(FRAMES))
    writes = Writes()
    watch_writes(labels, writes.seen)

    monkeypatch.setattr(QInputDialog, "getInt", staticmethod(lambda *args: (9, True)))  # the person types 9
    w.objects.select_object(1)
    w.objects.relabel_button.click()
    qtbot.waitUntil(lambda: not w.busy(), timeout=120_000)
    assert w.controller.obj_ids == [9] and (labels[FRAMES - 1, :2, :2] == 9).all()
    assert not (labels == 1).any() and all((labels[t] == 9).any() for t in range(FRAMES))
    # no plane was cleared of the object and written again (one pass: each frame's pixels go straight to 9)
    cleared = [index for index, plane in writes.planes if ((before[index] == 1) & (plane == 0)).any()]
    assert cleared == [], cleared
    # Undo keeps its behaviour: a relabel is not undoable (earlier steps knew the old id): old id 1 never comes back
    for _ in range(3):
        w.undo_button.click()
        qtbot.waitUntil(lambda: not w.busy(), timeout=60_000)
    assert not (labels == 1).any() and w.status.text().startswith("Nothing to undo")


def test_the_four_exports_of_one_result_name_the_same_tracks(tmp_path):
    """A track whose cell was missed for a frame (track 1: frames 0-1 and 3) went on whole in the labels TIFF, the
    tracks table and the GEFF but was cut in two in the CTC folder (ids 1 and 3 there), so joining the files by id
    went wrong; every export is now made CTC-consistent once, as the command line's."""
    import geff

    from sam2_model.tracking import Lineage, Track, TrackingResult
    from napari_sam2.track_export import export_tracking

    labels = np.zeros((4, 24, 24), np.uint32)
    labels[[0, 1, 3], 2:8, 2:8] = 1
    labels[:, 12:20, 12:20] = 2
    result = TrackingResult(labels=labels, lineage=Lineage([Track(1, 0, 3, 0, "end of stack"),
                                                            Track(2, 0, 3, 0, "end of stack")]))
    written = {what: export_tracking(result, what, tmp_path / name)
               for what, name in (("labels", "l.tif"), ("tracks", "t.csv"), ("ctc", "ctc"), ("geff", "g.geff"))}
    ctc_labels, ctc_lineage = read_ctc(written["ctc"])
    np.testing.assert_array_equal(tifffile.imread(written["labels"]), ctc_labels)
    rows = [line.split(",")[:4] for line in written["tracks"].read_text().splitlines()[1:]]
    assert sorted((int(a), int(b), int(c), int(d)) for a, b, c, d in rows) == \
        sorted((t.track_id, t.begin, t.end, t.parent) for t in ctc_lineage.rows()) == [(1, 0, 1, 0), (2, 0, 3, 0),
                                                                                         (3, 3, 3, 1)]
    graph, _ = geff.read(written["geff"])
    assert {(d["track_id"], d["t"]) for _, d in graph.nodes(data=True)} == \
        {(int(i), t) for t in range(4) for i in np.unique(ctc_labels[t]) if i}


@pytest.mark.gui
def test_the_geff_export_carries_the_image_calibration(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """The panel's GEFF says the image's frame interval and pixel size (its layer's scale and units); it wrote frames
    and pixels only, so tools reading it showed uncalibrated coordinates without saying so."""
    import geff

    viewer, widget, panel = tracked_calibrated(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    answer_dialog(monkeypatch, tmp_path / "cal.geff")
    panel.export_buttons["geff"].click()
    finished(qtbot, widget, panel)
    _, meta = geff.read(tmp_path / "cal.geff")
    assert [(a.name, a.unit, a.scale, a.scaled_unit) for a in meta.axes] == [
        ("t", "frame", 300.0, "second"), ("y", "pixel", 0.65, "micrometer"), ("x", "pixel", 0.65, "micrometer")]


@pytest.mark.gui
def test_clicked_objects_export_as_tracks_before_track_all(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """Cells clicked and propagated by hand (no 'Track all cells' run) export through the panel's CTC, GEFF and tracks
    buttons, one track each from its first to its last frame; before, every export failed with "nothing is tracked
    yet", so hand-tracked cells had no route to a CTC folder or a GEFF."""
    from sam2_model.tracking import read_geff
    from widget_helpers import click_and_propagate

    movie = small_movie(FRAMES, 11)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(widget, qtbot, movie, cells=(1, 2))
    masklets = np.asarray(widget.labels_layer.data)
    assert set(np.unique(masklets)) == {0, 1, 2}
    panel = track_all_panel(widget)
    answer_dialog(monkeypatch, tmp_path / "ctc")
    panel.export_buttons["ctc"].click()
    finished(qtbot, widget, panel)
    assert panel.status.text().startswith("Wrote") and "the widget's objects (one track each" in panel.status.text(), \
        panel.status.text()
    ctc_labels, lineage = read_ctc(tmp_path / "ctc")
    np.testing.assert_array_equal(ctc_labels, masklets)
    assert sorted((t.track_id, t.begin, t.end, t.parent) for t in lineage.rows()) == [(1, 0, FRAMES - 1, 0),
                                                                                      (2, 0, FRAMES - 1, 0)]
    answer_dialog(monkeypatch, tmp_path / "objects.geff")
    panel.export_buttons["geff"].click()
    finished(qtbot, widget, panel)
    graph, _ = read_geff(tmp_path / "objects.geff")
    assert graph.number_of_nodes() == 2 * FRAMES

    panel.track_button.click()  # once Track all has tracks, its exports leave the widget's objects out again
    wait_tracking(qtbot, widget)
    assert panel.current().tracking.lineage, panel.status.text()
    answer_dialog(monkeypatch, tmp_path / "tracks.csv")
    panel.export_buttons["tracks"].click()
    finished(qtbot, widget, panel)
    assert "the tracked cells" in panel.status.text(), panel.status.text()
