"""Loading a session whose model cannot be loaded here (explorer E3, stop 48): refused before anything changes, as
docs/session_file.md promises, driven as a person would (the Load session… button, the file dialog answered)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from napari_sam2.session_file import read_session, write_session  # noqa: E402
from sam2_model.build import embedded_weights_path  # noqa: E402
from widget_helpers import click_cells, open_widget, small_movie, wait  # noqa: E402


@pytest.fixture
def two_objects(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """(viewer, widget): two cells clicked on frame 0 of a small movie (demo model, embedded weights, 128 px)."""
    movie = small_movie(4, 5)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_cells(widget, qtbot, movie)
    monkeypatch.setattr("napari_sam2._session_files.show_error", lambda message: None)
    return viewer, widget


def load_with_the_button(widget, monkeypatch, path) -> None:
    from qtpy.QtWidgets import QFileDialog, QMessageBox

    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.Yes)  # replace the objects: yes
    widget.load_session_button.click()


def what_is_shown(widget):
    """The clicks, the masks and the model choice, to compare before and after."""
    return np.array(widget.points_layer.data), widget.labels_layer.data.copy(), widget.picker.choice()


def test_a_session_of_an_official_model_that_cannot_be_downloaded_is_refused_and_nothing_changes(
        two_objects, qtbot, tmp_path, monkeypatch):
    """Offline (here: the mirror down), the session's sam2.1_hiera_tiny is not in the cache and its download fails:
    the load is refused after the download was tried in the picker's worker, nothing changed (clicks, masks, model),
    and the status names the URL, where the file goes and NAPARI_SAM2_CACHE (the offline route)."""
    import socket

    from sam2_model.checkpoints import official

    viewer, widget = two_objects
    cache = tmp_path / "cache"
    monkeypatch.setenv("NAPARI_SAM2_CACHE", str(cache))
    with socket.socket() as sock:  # a port nothing listens on: the mirror is down
        sock.bind(("127.0.0.1", 0))
        mirror = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("NAPARI_SAM2_CHECKPOINT_URL", mirror)
    record = read_session(widget.save_session(str(tmp_path / "s")))
    record.model.update(name="sam2.1_hiera_tiny", weights="cached or download")
    path = write_session(tmp_path / "tiny.sam2.npz", record)
    before = what_is_shown(widget)
    assert before[1][0].any()
    load_with_the_button(widget, monkeypatch, path)
    wait(qtbot, widget)
    status = widget.status.text()
    assert status.startswith("Not loaded (nothing changed): tiny.sam2.npz was saved with sam2.1_hiera_tiny (cached or "
                             f"download), which cannot be loaded here: could not download {mirror}/sam2.1_hiera_tiny.pt"
                             ), status
    assert official("sam2.1_hiera_tiny").url in status  # the file to fetch on a machine with internet access
    assert str(cache / "sam2.1_hiera_tiny.pt") in status and "NAPARI_SAM2_CACHE" in status
    after = what_is_shown(widget)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2] == before[2] and widget.controller.obj_ids == [1, 2] and widget.picker.worker is None
    assert widget.model_combo.isEnabled() and (not cache.exists() or not any(cache.iterdir()))


def test_a_session_whose_weights_file_is_damaged_is_refused_and_loads_once_it_is_whole(two_objects, qtbot, tmp_path,
                                                                                      monkeypatch):
    """The session's fine-tuned weights file is there but cut short: an error popup, then the prompts were re-run
    with the weights chosen before and the status said "Done.". Now nothing changes and the status says why; with
    the file whole again the session loads with it."""
    viewer, widget = two_objects
    mine = tmp_path / "mine.pt"
    shutil.copy(embedded_weights_path(), mine)
    widget.set_checkpoint_file(str(mine))
    path = widget.save_session(str(tmp_path / "s"))
    whole = mine.read_bytes()
    mine.write_bytes(whole[: len(whole) // 2])
    widget.checkpoint_combo.setCurrentText("embedded (demo)")
    qtbot.wait(50)  # the re-run the weights change asks for starts (its "Done." came after the load's words)
    wait(qtbot, widget)
    before = what_is_shown(widget)
    load_with_the_button(widget, monkeypatch, path)
    wait(qtbot, widget)
    status = widget.status.text()
    assert status.startswith("Not loaded (nothing changed): s.sam2.npz was saved with demo (local file…), which "
                             f"cannot be loaded here: {mine} is not a readable PyTorch checkpoint"), status
    after = what_is_shown(widget)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2] == before[2] and after[2].weights == "embedded (demo)"
    mine.write_bytes(whole)
    load_with_the_button(widget, monkeypatch, path)
    wait(qtbot, widget)
    assert widget.picker.choice().weights == "local file…" and widget.picker.choice().path == str(mine)
    assert widget.controller.obj_ids == [1, 2] and widget.labels_layer.data[0].any()
