"""Nothing long on napari's GUI thread (Save session in a worker, the widget docked without a model build) and the
seeding counter's words: one count, of seeds placed (real demo model, never mocked)."""

from __future__ import annotations

import io
import time
import zipfile

import numpy as np
import pytest

import sam2_model as sm
from napari_sam2.session_file import read_session
from sam2_model.tracking.detection import grid_seed_count, make_detector
from test_tracking import _disc, _render  # the nuclei-like test frames of the tracking tests
from widget_helpers import open_widget, wait


@pytest.fixture(scope="module")
def model():
    return sm.build_model("demo", checkpoint="download")


def _frame() -> np.ndarray:
    shape = (160, 160)
    cells = [_disc(shape, (30 + 33 * (k % 4), 30 + 33 * (k // 4)), 9) for k in range(16)]
    return _render([cells], shape, seed=5)[0]


@pytest.mark.parametrize("seeding", ["blobs", "grid+blobs"])
def test_the_seeding_count_is_one_count_of_seeds_placed(model, seeding: str) -> None:
    """The "seeding" work of a detection counts seeds placed, one total for the frame from the first step: it was
    "2/3" (thirds of the stage) then "725/1086" (model calls times three) on a crowded frame (X6 item 4). Windowed
    blobs (several calls) so that the count moves in steps."""
    detector = make_detector(model, seeding, (10, 30), window=48, points_per_side=8)
    steps = detector.steps(_frame())
    work = []
    try:
        while True:
            work.append(next(steps))
    except StopIteration:
        pass
    counts = [(done, total) for stage, done, total in work if stage == "seeding"]
    seeds = len(detector.points) + (grid_seed_count(detector.generator) if "grid" in seeding else 0)
    assert len(detector.points) >= 8, len(detector.points)
    assert {total for _, total in counts} == {seeds}, counts  # one total: the frame's seeds
    assert counts[0] == (0, seeds) and counts[-1] == (seeds, seeds), counts
    done = [d for d, _ in counts]
    assert done == sorted(done) and len(set(done)) > 3, counts  # it only goes up, in several steps


# ---------------------------------------------------------------------------- Save session in a worker
class Lateness:
    """The longest wait of a 50 ms QTimer on napari's event loop (what a person feels as a frozen window)."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.worst, self.last = 0.0, None
        self.timer = QTimer()
        self.timer.setInterval(50)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        if self.last is not None:
            self.worst = max(self.worst, now - self.last - 0.05)
        self.last = now

    def start(self) -> None:
        self.worst, self.last = 0.0, time.monotonic()
        self.timer.start()

    def stop(self) -> float:
        self.timer.stop()
        return self.worst


def _big_session(make_napari_viewer, tmp_path, monkeypatch, qtbot, frames: int = 80, side: int = 1024):
    """A viewer with a (frames, side, side) uint8 movie of one bright disc, clicked once on frame 0 (the demo model at
    input size 128), and masklets on every other frame painted by hand: five discs per frame (uint32: ~4 MiB a
    frame). Returns (viewer, widget, the frames with labels)."""
    yy, xx = np.mgrid[:side, :side]
    disc = (yy - side // 2) ** 2 + (xx - side // 2) ** 2 < 40 ** 2
    movie = np.zeros((frames, side, side), np.uint8)
    movie[:, disc] = 200
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("movie", movie))
    w.points_layer.add(np.array([[0, side // 2, side // 2]], float))
    wait(qtbot, w)
    labels = w.labels_layer.data
    painted = list(range(0, frames, 2))
    for t in painted:
        for k in range(5):
            labels[t][(yy - 100 - 180 * k) ** 2 + (xx - 200 - 3 * t) ** 2 < 15 ** 2] = k + 2
    w.labels_layer.refresh()
    return viewer, w, sorted(set(painted) | {0})


def test_save_session_runs_in_a_worker_and_writes_the_same_file(make_napari_viewer, tmp_path, monkeypatch,
                                                                qtbot) -> None:
    """Save session… built the record from the masklets on napari's GUI thread: 8.7 s frozen for 1.2 GB of them
    (X6 item 3). Now the masklets are read and the file written in a worker: the event loop never waits more than
    0.5 s, the masklets layer stays in pan/zoom meanwhile, and the file holds what the script's save_session
    writes, entry by entry (the labels entry the bytes np.save gives the stack of labelled frames)."""
    from qtpy.QtWidgets import QFileDialog

    viewer, w, labelled = _big_session(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    w.labels_layer.mode = "paint"
    path = tmp_path / "big.sam2.npz"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *args, **kwargs: (str(path), "")))
    late = Lateness()
    late.start()
    started = time.monotonic()
    w.save_session_button.click()
    held = str(w.labels_layer.mode)
    wait(qtbot, w)
    took = time.monotonic() - started
    qtbot.wait(200)  # the timer's next ticks: a wait that ended before them is measured too
    worst = late.stop()
    print(f"save: {took:.2f} s, longest event-loop wait {worst:.2f} s")
    assert path.is_file() and w.status.text() == f"Saved the session to {path} (prompts, options and masklets).", \
        w.status.text()
    assert worst < 0.5, f"the event loop waited {worst:.2f} s (the save took {took:.1f} s)"
    assert held == "pan_zoom" and str(w.labels_layer.mode) == "paint"  # held during the save, given back after
    script = w.save_session(str(tmp_path / "script"))
    with zipfile.ZipFile(path) as saved, zipfile.ZipFile(script) as reference:
        assert [(i.filename, i.CRC, i.file_size) for i in saved.infolist()] == \
            [(i.filename, i.CRC, i.file_size) for i in reference.infolist()]
        expected = io.BytesIO()
        np.save(expected, np.stack([w.labels_layer.data[t] for t in labelled]).astype(np.uint32))
        assert saved.read("labels.npy") == expected.getvalue()
    record = read_session(path)
    assert sorted(record.labels[()]) == labelled


def test_a_cancelled_save_writes_nothing_and_keeps_the_earlier_file(make_napari_viewer, tmp_path, monkeypatch,
                                                                    qtbot) -> None:
    """Cancel during Save session… (now in a worker): nothing is written, the earlier file of that name is kept
    whole, no temporary file is left, and the status says so; the masklets layer gets its mode back."""
    from qtpy.QtWidgets import QFileDialog

    viewer, w, _ = _big_session(make_napari_viewer, tmp_path, monkeypatch, qtbot, frames=40)
    path = tmp_path / "kept.sam2.npz"
    path.write_bytes(b"an earlier file")
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *args, **kwargs: (str(path), "")))
    w.save_session_button.click()
    assert w.busy() and w.cancel_button.isEnabled() and not w.save_session_button.isEnabled()
    w.cancel_button.click()
    wait(qtbot, w)
    assert w.status.text() == f"Save cancelled: nothing was written to {path} (an earlier file is kept).", \
        w.status.text()
    assert path.read_bytes() == b"an earlier file"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".kept", "kept"))) == ["kept.sam2.npz"]
    assert w.save_session_button.isEnabled()


def test_a_failed_save_says_so_and_leaves_no_file(make_napari_viewer, tmp_path, monkeypatch, qtbot) -> None:
    """A save whose file cannot be put in place (a folder holds the name) fails in the worker: the status says why
    and that nothing was written, no temporary file is left, the widget is free again."""
    from qtpy.QtWidgets import QFileDialog

    viewer, w, _ = _big_session(make_napari_viewer, tmp_path, monkeypatch, qtbot, frames=6, side=256)
    path = tmp_path / "taken.sam2.npz"
    path.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *args, **kwargs: (str(path), "")))
    w.save_session_button.click()
    wait(qtbot, w)
    text = w.status.text()
    assert text.startswith("Not saved: ") and text.endswith("Nothing was written (an earlier file is kept)."), text
    assert str(path) in text, text
    assert sorted(p.name for p in tmp_path.iterdir() if "taken" in p.name) == ["taken.sam2.npz"] and path.is_dir()
    assert w.save_session_button.isEnabled() and not w.busy()
