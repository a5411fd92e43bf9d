"""Picking a big OME-TIFF reads it once: the widget's axes (A4) and the Track all panel's calibration (C1) share one
read of the file's header (:func:`napari_sam2.file_calibration.tiff_header`), where each read the whole series
before. And a Track all pressed while the model loads and the image's file is read for its calibration runs with the
Divisions tick the calibration gives once read, not the tick shown when pressed."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from _helpers import small_movie_fixture

SLICES = 3
movie = small_movie_fixture(SLICES, 37)


def _ome(path, stack, axes):
    """An OME-TIFF of ``stack`` (float32) at ``path`` whose axes are ``axes`` (2 um steps along the first)."""
    import tifffile

    tifffile.imwrite(path, np.asarray(stack, np.float32), ome=True, metadata={
        "axes": axes, "PhysicalSizeZ": 2.0, "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "TimeIncrement": 2.0})
    return path


class _Reads:
    """tifffile.TiffFile, counting the files opened and those whose series were read (a scan of every page)."""

    def __init__(self, monkeypatch):
        import tifffile

        self.opens, self.scans, real, reads = 0, 0, tifffile.TiffFile, self
        self.lock = threading.Lock()

        class Counted(real):
            def __init__(self, *args, **kwargs):
                with reads.lock:
                    reads.opens += 1
                self._m2_scanned = False
                super().__init__(*args, **kwargs)

            @property
            def series(self):
                if not self._m2_scanned:
                    self._m2_scanned = True
                    with reads.lock:
                        reads.scans += 1
                return real.series.__get__(self)

        monkeypatch.setattr(tifffile, "TiffFile", Counted)


@pytest.mark.gui
def test_picking_an_ome_tiff_reads_its_series_once(make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    from widget_helpers import open_widget

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("other", movie.image))
    path = _ome(tmp_path / "tcyx.ome.tif", np.stack([movie.image, movie.image[:, :, ::-1]], axis=1), "TCYX")
    viewer.open(str(path))
    name = viewer.layers[-1].name
    w.image_combo.setCurrentText("other")
    reads = _Reads(monkeypatch)
    w.image_combo.setCurrentText(name)  # the pick: the axes read in a worker, the calibration too
    assert w.busy()
    qtbot.waitUntil(lambda: not w.busy() and w.track_all.calibration_reading() is None, timeout=60_000)
    assert w.channel_axis_combo.currentText() == "axis 1 (2)"  # the file's channel axis, as before
    assert reads.scans == 1, reads.scans  # before: 2 (the axes' read, then the calibration's)
    assert reads.opens <= 3, reads.opens  # before: 4 (two first-page looks, two whole reads)
    w.image_combo.setCurrentText("other")
    w.image_combo.setCurrentText(name)
    assert not w.busy() and reads.scans == 1  # kept


@pytest.mark.gui
def test_track_all_waiting_for_the_model_takes_divisions_after_the_calibration_read(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    pytest.importorskip("napari")
    import napari_sam2._model_picker as picker_module
    import napari_sam2.track_all as track_all_module
    from napari_sam2._track_all_run_mixin import DIVISIONS_Z_TEXT
    from widget_helpers import open_widget, track_all_panel, wait_tracking

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("other", movie.image))
    path = _ome(tmp_path / "stack.ome.tif", movie.image, "TYX")  # a time-lapse first
    viewer.open(str(path))
    name = viewer.layers[-1].name
    w.image_combo.setCurrentText("other")
    w.image_combo.setCurrentText(name)
    panel = w.track_all
    qtbot.waitUntil(lambda: not w.busy() and panel.calibration_reading() is None, timeout=60_000)
    panel = track_all_panel(w, divisions=True)  # the time-lapse setting: divisions on
    assert panel.divisions_check.isChecked()

    _ome(path, movie.image, "ZYX")  # saved again as a z-stack: its calibration is read anew
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))
    loading, real_load = threading.Event(), picker_module.load_model
    monkeypatch.setattr(picker_module, "load_model", lambda *a, **k: (loading.wait(60), real_load(*a, **k))[1])
    used, real_track = [], track_all_module.TrackAll.track
    monkeypatch.setattr(track_all_module.TrackAll, "track",
                        lambda self, model, frames, start=0, options=None, **k:
                        (used.append(options), real_track(self, model, frames, start, options, **k))[1])
    panel.track_button.click()  # the model not loaded: the run waits for it, the file read for its calibration
    assert panel.calibration_reading() == "stack.ome.tif" and panel.divisions_check.isChecked()
    qtbot.waitUntil(lambda: panel.calibration_reading() is None, timeout=60_000)
    assert panel.divisions_check.text() == DIVISIONS_Z_TEXT and not panel.divisions_check.isChecked()
    loading.set()  # the model loads now: the run starts
    qtbot.waitUntil(lambda: panel.worker is not None or bool(used), timeout=60_000)
    wait_tracking(qtbot, w)
    assert used and used[0].divisions is False, used  # before: True, the tick shown when pressed
