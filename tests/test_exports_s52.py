"""Track all's exports read the masklets layer in place, a frame at a time, the layer held still meanwhile; the
automatic runs' outputs (track --auto, batch --auto) are made CTC-consistent by the one streaming rule; batch refuses
a tracking option's typo before anything starts.

Memory is traced with tracemalloc (numpy reports its buffers to it) over labels of 30 frames of 512 x 512 uint32: a
copy of the stack is 30 planes, the streaming writers hold a few.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from sam2_model.tracking import Lineage, Track
from napari_sam2.track_all import TrackAll
from napari_sam2.track_export import AutoOutputs, export_tracking, export_tracking_steps, write_auto_outputs

FRAMES, SIZE = 30, 512
WIDGET_OBJECT = 9  # an id of the segmentation widget's own: left out of Track all's exports


def masklets() -> np.ndarray:
    """(FRAMES, SIZE, SIZE) uint32: tracks 1 (a gap on frames 10-11) and 2, a cell painted by hand (5, frames 3-6)
    and a widget object (9)."""
    labels = np.zeros((FRAMES, SIZE, SIZE), np.uint32)
    for t in range(FRAMES):
        if t not in (10, 11):
            labels[t, 40 + t:90 + t, 50:100] = 1
        labels[t, 300:360, 200 + t:260 + t] = 2
        labels[t, 450:470, 450:470] = WIDGET_OBJECT
    labels[3:7, 150:170, 400:420] = 5
    return labels


def tracking_of(labels: np.ndarray) -> TrackAll:
    tracking = TrackAll(labels, FRAMES)
    tracking.lineage = Lineage([Track(1, 0, FRAMES - 1, 0, "end of stack"), Track(2, 0, FRAMES - 1, 0, "end of stack")])
    return tracking


def export_closure(tracking: TrackAll):
    """The closure the Track all panel's export worker calls (:meth:`TrackIdsMixin.export_result`), on a stand-in of
    the panel that holds the widget's ids and remembers the hand-painted ones."""
    from napari_sam2._track_all_ids_mixin import TrackIdsMixin

    panel = SimpleNamespace(widget_ids=lambda image: {WIDGET_OBJECT})
    entry = SimpleNamespace(tracking=tracking, image=SimpleNamespace(unique_id=1))
    return TrackIdsMixin.export_result(panel, entry), panel


def warm_up(what: str, folder: Path) -> None:
    """One export of ``what`` of a tiny result first: the writers' imports (zarr, geff) are not traced as the
    export's memory."""
    from sam2_model.tracking import TrackingResult
    from napari_sam2.track_export import export_path

    tiny = np.zeros((2, 8, 8), np.uint32)
    tiny[:, 2:4, 2:4] = 1
    folder.mkdir()
    export_tracking(TrackingResult(labels=tiny, lineage=Lineage([Track(1, 0, 1)]), frames_tracked=[0, 1]), what,
                    export_path(what, folder / "tiny"))
    write_auto_outputs(tiny, Lineage([Track(1, 0, 1)]), AutoOutputs(tracks=folder / "t.csv", ctc=folder / "ctc",
                                                                   geff=folder / "t.geff"))


def traced_peak(run) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def files_of(path: Path) -> dict:
    if path.is_file():
        return {"": path.read_bytes()}
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("what, planes", [("ctc", 6), ("geff", 6), ("tracks", 6), ("labels", FRAMES + 4)])
def test_track_all_exports_read_the_masklets_a_frame_at_a_time(tmp_path, what, planes):
    """The panel's exports stacked the masklets into a copy (TrackAll.result) before writing: CTC, GEFF and the
    tracks CSV now hold a few planes, the labels TIFF one uint32 copy (was three); the files are those the copied
    result gives, byte for byte."""
    from napari_sam2.track_export import export_path

    labels = masklets()
    tracking = tracking_of(labels)
    closure, panel = export_closure(tracking)
    target = Path(export_path(what, tmp_path / "lazy" / "out"))
    target.parent.mkdir()
    plane = labels[0].nbytes
    warm_up(what, tmp_path / "warm")
    peak = traced_peak(lambda: list(export_tracking_steps(closure, what, target)))
    print(f"{what}: peak {peak / plane:.1f} planes of {FRAMES}")
    assert peak < planes * plane, f"{what}: {peak / plane:.1f} planes traced (limit {planes})"
    assert panel._painted == [5]  # the hand-painted cell became a track, as before
    copied = Path(export_path(what, tmp_path / "copied" / "out"))
    copied.parent.mkdir()
    export_tracking(tracking.result({WIDGET_OBJECT}), what, copied)  # the result as a copy: the same files
    assert files_of(target) == files_of(copied)
    np.testing.assert_array_equal(labels, masklets())  # the masklets themselves untouched


def test_a_frame_painted_during_the_export_fails_it_with_nothing_written(tmp_path):
    """The masklets are read in place: a frame that changes between two reads (a brush stroke, a console write)
    fails the export, and nothing is written (never a folder mixing two states of the labels)."""
    labels = masklets()
    tracking = tracking_of(labels)
    closure, _ = export_closure(tracking)
    steps = export_tracking_steps(closure, "ctc", tmp_path / "ctc")
    assert next(steps)[0] == "plan" and next(steps)[:3] == ("frame", 0, "read")  # every frame read once
    labels[4, 200:230, 200:230] = 2  # painted now, before the writer reads frame 4 again
    with pytest.raises(RuntimeError, match="frame 4 of the labels changed while they were being read"):
        next(steps)
    assert list(tmp_path.iterdir()) == []
    result = tracking.result(lazy=True)
    with pytest.raises(ValueError, match="read-only"):
        result.labels[0][0, 0] = 7  # a view of the layer's own pixels is never written through


@pytest.mark.parametrize("left_out", [{9}, {3, 9, 12}, set(range(2, 14))])
def test_the_lazy_result_holds_what_the_copied_one_holds(left_out):
    """TrackAll.result(lazy=True) reads the masklets in place: each frame equals the copied result's (the ids left
    out cleared, whether few or many), in the labels' dtype, and the lineage and spans are the same."""
    labels = masklets().astype(np.uint16)
    labels[::3, 0:5, 0:5] = 12
    tracking = tracking_of(labels)
    lazy, spans = tracking.result_and_spans(left_out, lazy=True)
    copied, copied_spans = tracking.result_and_spans(left_out)
    assert lazy.labels.shape == copied.labels.shape and lazy.labels.dtype == copied.labels.dtype == np.uint16
    for t in range(FRAMES):
        np.testing.assert_array_equal(lazy.labels[t], copied.labels[t])
    np.testing.assert_array_equal(np.asarray(lazy.labels), copied.labels)
    assert lazy.lineage.rows() == copied.lineage.rows() and spans == copied_spans
    assert {1, 2} <= set(spans) and not (set(spans) & (left_out - {1, 2}))


def test_auto_outputs_stream_the_consistent_labels(tmp_path):
    """write_auto_outputs (track --auto, batch --auto) made a CTC-consistent uint32 copy of the stack
    (ctc_consistent) before writing: the CTC folder, GEFF and tracks CSV now hold a few planes, and the labels it
    returns are read a frame at a time (batch measures and writes them so)."""
    labels = masklets()
    lineage = Lineage([Track(1, 0, FRAMES - 1, 0, "end of stack"), Track(2, 0, FRAMES - 1, 0, "end of stack")])
    outputs = AutoOutputs(tracks=tmp_path / "t.csv", ctc=tmp_path / "ctc", geff=tmp_path / "t.geff")
    returned = {}
    warm_up("geff", tmp_path / "warm")
    peak = traced_peak(lambda: returned.update(out=write_auto_outputs(labels, lineage, outputs)))
    plane = labels[0].nbytes
    assert peak < 8 * plane, f"{peak / plane:.1f} planes traced (limit 8)"
    written, table = returned["out"]
    assert written.shape == labels.shape and written[12].dtype == np.uint32
    assert sorted(np.unique(written[12]).tolist()) == [0, 2, 9, 10]  # track 1 after its gap: a new id, 10
    assert table[10].parent == 1 and table[1].end == 9


def test_ctc_consistent_is_the_streaming_rule_made_whole(monkeypatch):
    """One copy of the CTC rule: ctc_consistent is consistent_labels read whole (not a second implementation)."""
    import sam2_model.tracking.lineage as lineage_module
    from sam2_model.tracking import ctc_consistent

    calls = []
    real = lineage_module.consistent_labels

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(lineage_module, "consistent_labels", counted)
    labels = masklets()[:14]
    whole, table = ctc_consistent(labels, Lineage([Track(1, 0, 13, 0, "end of stack")]))
    assert calls == [1]
    view, expected = real(labels, Lineage([Track(1, 0, 13, 0, "end of stack")]))
    np.testing.assert_array_equal(whole, np.stack([view[t] for t in range(len(view))]))
    assert whole.dtype == np.uint32 and whole.flags.writeable and table.rows() == expected.rows()


def test_batch_refuses_a_tracking_option_typo_before_anything_starts(tmp_path):
    """batch(auto=True, min_contrst=...) used to start the cluster and fail every stack in its worker; now it is
    refused at once, naming the close match and the valid options, and nothing is created."""
    from napari_sam2.batch import batch

    out = tmp_path / "out"
    with pytest.raises(TypeError, match=r"unknown option min_contrst \(did you mean min_contrast\?\)") as error:
        batch(str(tmp_path / "plate" / "*.tif"), out, auto=True, min_contrst=0.1)
    assert "pred_iou_thresh" in str(error.value) and "cell_diameter" in str(error.value)
    with pytest.raises(ValueError, match="tracking option reverse is set by batch itself: use its own argument "
                                         "direction"):
        batch(str(tmp_path / "plate" / "*.tif"), out, auto=True, reverse=True)
    assert not out.exists()


@pytest.mark.gui
def test_the_panel_holds_the_masklets_still_while_its_export_reads_them(make_napari_viewer, qtbot, tmp_path,
                                                                         monkeypatch):
    """The export reads the masklets layer in place as it writes: the layer is held in pan/zoom mode (no brush,
    eraser or fill) until the export ends, then given back in its mode; the file holds what the layer shows."""
    import tifffile
    from widget_helpers import open_widget, small_movie, track_all_panel, wait_tracking

    movie = small_movie(5, 11)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(widget)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    assert panel.current().tracking.lineage, panel.status.text()
    layer = widget.labels_layer
    layer.mode = "paint"
    monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "tracked.tif"), ""))
    panel.export_buttons["labels"].click()
    held = str(layer.mode)
    layer.mode = "erase"  # a paint tool picked meanwhile: not yet
    still = str(layer.mode)
    qtbot.waitUntil(lambda: panel.worker is None and not widget.busy(), timeout=60_000)
    assert held == still == "pan_zoom" and str(layer.mode) == "paint", (held, still, str(layer.mode))
    assert panel.status.text().startswith("Wrote"), panel.status.text()
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "tracked.tif"), panel.current().tracking.result().labels)


@pytest.mark.parametrize("zarr_above", [1, 2**40])
def test_batch_auto_writes_the_consistent_labels_a_plane_at_a_time(tmp_path, zarr_above):
    """batch --auto takes write_auto_outputs' labels as a view read a frame at a time: its OME-Zarr labels (written
    plane by plane), its TIFF labels and objects.csv hold the CTC folder's ids (in-process task, demo model)."""
    import csv

    import tifffile
    from sam2_model.frames_io import open_stack
    from sam2_model.synthetic import make_timelapse
    from sam2_model.tracking import read_ctc
    from napari_sam2.batch_worker import AxisOptions, ModelSpec, StackTask, process_stack

    movie = make_timelapse(num_frames=5, shape=(96, 96), num_cells=3, seed=41, dtype="uint8", divisions=False,
                           enter_leave=False)
    tifffile.imwrite(tmp_path / "s0.tif", movie.image, photometric="minisblack")
    task = StackTask("s0", str(tmp_path / "s0.tif"), str(tmp_path / "out"),
                     ModelSpec(model="demo", checkpoint="download", device="cpu", image_size=256), auto=True,
                     tracking_options={"cell_diameter": (6, 30)}, axes=AxisOptions(names="cli"), zarr_above=zarr_above)
    row = process_stack(task)
    assert row["status"] == "ok", row["error"]
    folder = tmp_path / "out" / "s0"
    ctc_labels, _ = read_ctc(folder / "ctc")
    written = (np.asarray(open_stack(folder / "labels.ome.zarr")[:]) if zarr_above == 1
               else tifffile.imread(folder / "labels.tif"))
    assert written.any()
    np.testing.assert_array_equal(written, ctc_labels)
    with open(folder / "objects.csv") as handle:
        measured = {(int(r["frame"]), int(r["obj_id"])) for r in csv.DictReader(handle)}
    assert measured == {(t, int(i)) for t in range(len(ctc_labels)) for i in np.unique(ctc_labels[t]) if i}
