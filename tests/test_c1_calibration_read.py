"""An OME-TIFF's calibration is read once per file (its series and metadata shared by the axis letters and the
sizes, thread-safe), and the Track all panel reads it in a worker: picking a big OME-TIFF no longer freezes napari
while tifffile finds its pages. Meanwhile the Divisions checkbox says the file is read and Track all is refused
(it would start without knowing whether the frames are z slices); once read, a z-stack's Divisions are off and Track
all runs. Busy words name what they wait for (the file's axes, its calibration)."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from _helpers import small_movie_fixture

SLICES = 3
movie = small_movie_fixture(SLICES, 31)


def _ome_zyx(path, stack):
    """An OME-TIFF (Z, Y, X) of ``stack`` at ``path``: 2 um slices of 0.5 um pixels."""
    import tifffile

    tifffile.imwrite(path, np.asarray(stack, np.float32), ome=True,
                     metadata={"axes": "ZYX", "PhysicalSizeZ": 2.0, "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    return path


class _Opens:
    """tifffile.TiffFile, counting the files opened."""

    def __init__(self, monkeypatch):
        import tifffile

        self.count, real, opens = 0, tifffile.TiffFile, self

        class Counted(real):
            def __init__(self, *args, **kwargs):
                opens.count += 1
                super().__init__(*args, **kwargs)

        monkeypatch.setattr(tifffile, "TiffFile", Counted)


def test_a_file_s_letters_and_sizes_are_read_once(tmp_path, monkeypatch, movie):
    from napari_sam2.file_calibration import read_calibration, source_calibration

    path = _ome_zyx(tmp_path / "zyx.ome.tif", movie.image)
    opens = _Opens(monkeypatch)
    found = source_calibration(path, movie.image.shape, SimpleNamespace(frame_axis=0, spatial_axes=(1, 2)))
    assert found is not None and found.frames_through_z and found.frame_interval == 2.0
    assert found.pixel_size == (0.5, 0.5)
    assert opens.count == 1  # before: twice (the axis letters, then the sizes)
    assert read_calibration(path, 0, (1, 2), frames_through_z=False).frame_interval == 1.0  # (no time step)
    assert opens.count == 1  # kept: the same file, size and modification time

    again = _ome_zyx(tmp_path / "other.ome.tif", movie.image)  # read from 4 threads at once: one read, waited for
    found, threads = [], [threading.Thread(target=lambda: found.append(read_calibration(again, 0, (1, 2), True)))
                          for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert opens.count == 2 and len(found) == 4 and all(f == found[0] for f in found)
    os.utime(again, ns=(os.stat(again).st_atime_ns, os.stat(again).st_mtime_ns + 10 ** 9))  # saved again: read anew
    read_calibration(again, 0, (1, 2), True)
    assert opens.count == 3


@pytest.mark.gui
def test_track_all_waits_for_the_file_s_calibration_read_in_a_worker(make_napari_viewer, tmp_path, monkeypatch,
                                                                     qtbot, movie):
    pytest.importorskip("napari")
    from napari_sam2._track_all_run_mixin import DIVISIONS_Z_TEXT
    from widget_helpers import open_widget, track_all_panel, wait_tracking

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("other", movie.image))
    w.picker.model()  # the demo model loaded: Track all starts at once when pressed
    path = _ome_zyx(tmp_path / "zyx.ome.tif", movie.image)
    viewer.open(str(path))  # napari's own reader: a (Z, Y, X) layer at scale 1, in pixels
    name = viewer.layers[-1].name
    w.image_combo.setCurrentText("other")
    w.image_combo.setCurrentText(name)
    assert w.busy()  # its axes read in a worker (A4): the busy words say so (before: "the run in progress")
    assert w.busy_words() == f"Busy: wait for reading the file's axes of '{name}' (its OME-TIFF; a few seconds)"
    panel = w.track_all
    qtbot.waitUntil(lambda: not w.busy() and panel.calibration_reading() is None
                    and panel.divisions_check.text() == DIVISIONS_Z_TEXT, timeout=60_000)
    assert not panel.divisions_check.isChecked()  # the file's axes say z: divisions off

    stat = os.stat(path)  # the file saved again: its calibration is to be read anew
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))
    panel = track_all_panel(w)
    panel.track_button.click()
    # before: the file was read here, on the GUI thread, and the run started
    assert panel.worker is None and w.worker is None
    assert panel.status.text() == "Busy: wait for reading the file's calibration (zyx.ome.tif; a few seconds).", \
        panel.status.text()
    assert panel.divisions_check.text() == "Divisions (reading the file's calibration…)"
    qtbot.waitUntil(lambda: panel.calibration_reading() is None, timeout=60_000)
    assert panel.divisions_check.text() == DIVISIONS_Z_TEXT and not panel.divisions_check.isChecked()
    assert not panel.status.text().startswith("Busy"), panel.status.text()
    panel.track_button.click()  # known now: the run starts, divisions off
    assert panel.worker is not None, panel.status.text()
    wait_tracking(qtbot, w)
    assert np.asarray(w.labels_layer.data).any(), panel.status.text()
