"""Delete object, Undo, Relabel and Merge keep napari's GUI thread free: their bookkeeping (every frame compared,
compressed into the undo journal, checksummed, decompressed, relabelled) runs in a worker thread, the widget busy
meanwhile, and ends exactly where the same action on the GUI thread ended (labels, objects, table, prompts, undo
history, status words). A failure changes nothing. Driven as a person does: a real viewer, the widget from the manifest
on the demo model, clicks on its layers, its buttons pressed, the worker awaited. Where each function ran is observed
by wrapping the real function (it still does the work) and by the labels' own write watchers."""

from __future__ import annotations

import threading
from typing import Any, Dict, List

import numpy as np
import pytest

pytest.importorskip("napari")

import napari_sam2.controller as controller_module  # noqa: E402
from _helpers import small_movie_fixture  # noqa: E402
from napari_sam2.controller import SegmentationController  # noqa: E402
from napari_sam2.labels_writer import RunJournal, watch_writes  # noqa: E402
from napari_sam2.layout import StackLayout  # noqa: E402
from napari_sam2.prompts import FramePrompt  # noqa: E402
from sam2_model import build_model  # noqa: E402
from widget_helpers import centre, click_and_propagate, click_cells, open_widget, wait  # noqa: E402

FRAMES = 5
MAIN = threading.main_thread().ident
movie = small_movie_fixture(FRAMES, 5)


class Threads:
    """The threads that wrapped functions ran on (``where[name]``: one thread id a call) and that wrote planes into a
    labels array (its write watchers are called on the writer's thread); the real functions still do the work."""

    def __init__(self) -> None:
        self.where: Dict[str, List[int]] = {}

    def wrap(self, monkeypatch: Any, owner: Any, name: str) -> None:
        real = getattr(owner, name, None)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.where.setdefault(name, []).append(threading.get_ident())
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper, raising=False)

    def written(self, index: Any, plane: np.ndarray) -> None:
        self.where.setdefault("plane written", []).append(threading.get_ident())

    def off_main(self, name: str) -> bool:
        """``name`` ran, and never on the main (GUI) thread."""
        return bool(self.where.get(name)) and MAIN not in self.where[name]

    def clear(self) -> None:
        self.where.clear()


def three_cells(make_napari_viewer: Any, tmp_path: Any, monkeypatch: Any, qtbot: Any, movie: Any) -> Any:
    """(viewer, widget): cells 1-3 of the movie clicked on frame 0 as objects 1-3 and propagated over every frame."""
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    viewer.dims.set_current_step(0, 0)
    click_and_propagate(w, qtbot, movie, (1, 2, 3))
    assert all((w.labels_layer.data[t] == obj).any() for t in range(FRAMES) for obj in (1, 2, 3))
    return viewer, w


def said(monkeypatch: Any, w: Any) -> List[str]:
    """Every text the widget's status line is given from now on (the real setText still shows it)."""
    texts: List[str] = []
    real = w.status.setText

    def set_text(text: str) -> None:
        texts.append(text)
        real(text)

    monkeypatch.setattr(w.status, "setText", set_text)
    return texts


@pytest.mark.gui
def test_delete_object_and_its_undo_run_the_journal_in_a_worker_and_end_as_before(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    viewer, w = three_cells(make_napari_viewer, tmp_path, monkeypatch, qtbot, movie)
    labels, controller = w.labels_layer.data, w.controller
    before = labels.copy()
    clicks, ids = np.array(w.points_layer.data), w.points_layer.features["obj_id"].to_numpy(int)
    history = len(controller.history)
    threads = Threads()
    for name in ("write", "edited", "undo"):
        threads.wrap(monkeypatch, RunJournal, name)
    watch_writes(labels, threads.written)

    w.objects.select_object(2)
    w.objects.delete_button.click()
    assert w.busy() and not w.undo_button.isEnabled() and not w.objects.delete_button.isEnabled()
    assert not w.cancel_button.isEnabled()  # an edit is whole or not done: nothing to cancel part way
    w.refresh_run_buttons()  # what a model load or an image change does meanwhile
    assert not w.cancel_button.isEnabled()
    assert w.status.text() == "Deleting object 2…", w.status.text()
    wait(qtbot, w)
    assert threads.off_main("write") and threads.off_main("plane written"), threads.where
    # what the same deletion on the GUI thread gave
    np.testing.assert_array_equal(labels, np.where(before == 2, 0, before))
    assert controller.obj_ids == [1, 3] and [row.obj_id for row in w.objects.rows] == [1, 3]
    assert w.points_layer.features["obj_id"].tolist() == [1, 3]
    assert len(controller.history) == history + 1
    assert w.status.text().startswith("Deleted object 2 (Undo brings it back)"), w.status.text()

    threads.clear()
    w.undo_button.click()
    assert w.busy() and not w.objects.delete_button.isEnabled()
    wait(qtbot, w)
    assert threads.off_main("edited") and threads.off_main("undo") and threads.off_main("plane written"), threads.where
    np.testing.assert_array_equal(labels, before)
    assert controller.obj_ids == [1, 2, 3] and [row.obj_id for row in w.objects.rows] == [1, 2, 3]
    np.testing.assert_array_equal(w.points_layer.data, clicks)
    np.testing.assert_array_equal(w.points_layer.features["obj_id"].to_numpy(int), ids)
    assert len(controller.history) == history
    assert w.status.text() == (f"Undid the last step: {FRAMES} frame(s), the prompts and the session are as they "
                               "were before it."), w.status.text()
    w.undo_button.click()  # the propagation, then the clicks: each one a worker
    wait(qtbot, w)
    assert not labels[1:].any() and labels[0].any()


@pytest.mark.gui
def test_relabel_and_merge_buttons_rewrite_the_labels_in_a_worker_and_console_calls_stay_synchronous(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    from qtpy.QtWidgets import QInputDialog

    viewer, w = three_cells(make_napari_viewer, tmp_path, monkeypatch, qtbot, movie)
    labels, controller = w.labels_layer.data, w.controller
    threads = Threads()
    threads.wrap(monkeypatch, controller_module, "relabel_planes")
    watch_writes(labels, threads.written)
    texts = said(monkeypatch, w)
    before = labels.copy()

    monkeypatch.setattr(QInputDialog, "getInt", staticmethod(lambda *args: (7, True)))  # the person types 7
    w.objects.select_object(2)
    w.objects.relabel_button.click()
    assert w.busy() and texts[-1] == "Relabelling object 2 as 7…", texts
    wait(qtbot, w)  # the relabel, then the re-run of object 7's prompts
    assert threads.off_main("relabel_planes"), threads.where
    assert "Object 2 is now object 7 (relabel cannot be undone with Undo)." in texts, texts
    assert sorted(controller.obj_ids) == [1, 3, 7] and sorted(r.obj_id for r in w.objects.rows) == [1, 3, 7]
    assert sorted(w.points_layer.features["obj_id"].tolist()) == [1, 3, 7]
    # frames 1-4 as the relabel left them (the re-run segments frame 0's prompts only)
    np.testing.assert_array_equal(labels[1:], np.where(before[1:] == 2, 7, before[1:]))
    assert not (labels == 2).any()

    threads.clear()
    monkeypatch.setattr(QInputDialog, "getInt", staticmethod(lambda *args: (1, True)))  # merge into object 1
    w.objects.select_object(7)
    w.objects.merge_button.click()
    assert w.busy() and texts[-1] == "Merging object 7 into object 1…", texts
    wait(qtbot, w)
    assert threads.off_main("relabel_planes") and threads.off_main("plane written"), threads.where
    assert "Merged object 7 into object 1 (merge cannot be undone with Undo)." in texts, texts
    assert sorted(controller.obj_ids) == [1, 3] and not (labels == 7).any()
    assert sorted(w.points_layer.features["obj_id"].tolist()) == [1, 1, 3]
    w.undo_button.click()
    assert w.status.text() == ("Nothing to undo: Relabel and Merge can't be undone (the history starts after "
                               "them)."), w.status.text()

    threads.clear()
    w.merge_objects(3, 1)  # a script's call: done when it returns, on the calling thread
    assert controller.obj_ids == [1] and not (labels == 3).any()
    assert threads.where.get("relabel_planes") == [MAIN], threads.where
    assert w.status.text() == "Merged object 3 into object 1 (merge cannot be undone with Undo).", w.status.text()
    wait(qtbot, w)  # its re-run


@pytest.mark.gui
def test_a_delete_that_fails_in_its_worker_changes_nothing(make_napari_viewer, tmp_path, monkeypatch, qtbot,
                                                             movie):
    viewer, w = three_cells(make_napari_viewer, tmp_path, monkeypatch, qtbot, movie)
    labels, controller = w.labels_layer.data, w.controller
    before = labels.copy()
    clicks, ids = np.array(w.points_layer.data), w.points_layer.features["obj_id"].to_numpy(int)
    history = list(controller.history)
    labels.flags.writeable = False  # the labels cannot be written (as a read-only memory map)
    try:
        w.objects.select_object(2)
        w.objects.delete_button.click()
        wait(qtbot, w)
    finally:
        labels.flags.writeable = True
    assert w.status.text().startswith("Not deleted: ") and "read-only" in w.status.text(), w.status.text()
    assert w.status.text().endswith("(nothing was changed)."), w.status.text()
    np.testing.assert_array_equal(labels, before)
    np.testing.assert_array_equal(w.points_layer.data, clicks)  # the clicks are back
    np.testing.assert_array_equal(w.points_layer.features["obj_id"].to_numpy(int), ids)
    assert controller.obj_ids == [1, 2, 3] and [row.obj_id for row in w.objects.rows] == [1, 2, 3]
    assert controller.history == history
    w.objects.select_object(2)
    w.objects.delete_button.click()  # writable again: it works
    wait(qtbot, w)
    assert controller.obj_ids == [1, 3] and not (labels == 2).any()


def tracked(movie: Any) -> Any:
    """(controller, labels): cells 1 and 2 of the movie clicked on frame 0 as objects 1 and 2 and propagated over
    every frame, in a controller of the demo model (no widget)."""
    frames = movie.image
    array = np.zeros(frames.shape, np.uint32)
    controller = SegmentationController(build_model("demo", device="cpu", image_size=128), frames,
                                        StackLayout(3, 0), array, object_window=None)
    clicks = [FramePrompt(0, obj, points=np.array([centre(movie.labels[0], obj)[::-1]]), labels=np.array([1]))
              for obj in (1, 2)]  # points are (x, y)
    list(controller.apply_prompts(clicks))
    list(controller.propagate(0, "forward"))
    assert all((array[t] == obj).any() for t in range(FRAMES) for obj in (1, 2))
    return controller, array


class OneFailedWrite:
    """A (T, H, W) labels store whose ``fail_at``-th plane write fails once (a network drive's hiccup); reads and the
    other writes go to ``array``."""

    def __init__(self, array: np.ndarray, fail_at: int) -> None:
        self.array, self.fail_at, self.writes = array, fail_at, 0
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.array[index]

    def __setitem__(self, index: Any, value: np.ndarray) -> None:
        self.writes += 1
        if self.writes == self.fail_at:
            raise OSError("the store refused the write")
        self.array[index] = value


def test_remove_object_and_reassign_put_every_plane_back_when_a_write_fails(movie):
    """The controller's edit steps are whole or nothing: a write that fails part way (the third plane) leaves the
    labels, the objects and the undo history as they were, and the edit works once the store writes again."""
    controller, array = tracked(movie)
    before, history = array.copy(), list(controller.history)
    controller.labels = store = OneFailedWrite(array, fail_at=3)

    with pytest.raises(OSError, match="refused"):
        controller.remove_object(2)
    np.testing.assert_array_equal(array, before)
    assert controller.obj_ids == [1, 2] and controller.history == history

    store.writes, store.fail_at = 0, 3
    with pytest.raises(OSError, match="refused"):
        controller_module.finish(controller.reassign_steps(2, 1, "merged"))
    np.testing.assert_array_equal(array, before)
    assert controller.obj_ids == [1, 2] and controller.history == history

    store.fail_at = 0  # writes again
    assert controller.remove_object(2) == [1]
    np.testing.assert_array_equal(array, np.where(before == 2, 0, before))
    assert controller.undo().frames == list(range(FRAMES))
    np.testing.assert_array_equal(array, before)


class Gate:
    """Holds a wrapped function's calls in the worker until :meth:`open` (the real function then does the work), so a
    test acts while the worker is surely still running, as a person acting during a long edit does."""

    def __init__(self) -> None:
        self.event, self.entered = threading.Event(), threading.Event()

    def hold(self, monkeypatch: Any, owner: Any, name: str) -> None:
        real = getattr(owner, name)

        def held(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != MAIN:
                self.entered.set()
                self.event.wait(60)
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, held)

    def open(self) -> None:
        self.event.set()


@pytest.mark.gui
def test_relabel_then_another_image_picked_reruns_the_relabelled_image_not_the_one_shown(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    """The re-run after a Relabel acted on whatever image was current when the worker ended: the other image's Undo
    history was wiped and its prompts re-run; the relabelled image was never re-run."""
    from qtpy.QtWidgets import QInputDialog

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("A", movie.image), ("B", movie.image.copy()))
    for name in ("A", "B"):
        w.image_combo.setCurrentText(name)
        click_cells(w, qtbot, movie, (1, 2))
    b_controller = w.controller
    b_history = list(b_controller.history)
    assert b_history
    w.image_combo.setCurrentText("A")
    a_controller = w.controller
    gate = Gate()
    gate.hold(monkeypatch, controller_module, "relabel_planes")
    monkeypatch.setattr(QInputDialog, "getInt", staticmethod(lambda *args: (7, True)))
    try:
        w.objects.select_object(2)
        w.objects.relabel_button.click()
        assert gate.entered.wait(30) and w.busy()
        w.image_combo.setCurrentText("B")  # the person moves on while it says "Relabelling…"
    finally:
        gate.open()
    wait(qtbot, w)
    assert w.controller is b_controller and b_controller.history == b_history  # B untouched: its Undo still works
    assert b_controller.history_note == ""
    w.image_combo.setCurrentText("A")  # A's re-run waited for it
    wait(qtbot, w)
    assert w.controller is a_controller and sorted(a_controller.obj_ids) == [1, 7]
    assert (w.labels_layer.data[0] == 7).any() and not (w.labels_layer.data == 2).any()
    w.undo_button.click()
    assert "Relabel and Merge can't be undone" in w.status.text(), w.status.text()


@pytest.mark.gui
def test_a_model_chosen_during_add_tracks_layer_reruns_the_prompts_when_it_ends(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    """The status promised a re-run with the new model when the Add Tracks layer run ended; none came, and later model
    changes were ignored."""
    import napari_sam2._runs as runs

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    w.points_layer.add(np.array([[0, *centre(movie.labels[0], 1)]]))
    wait(qtbot, w)
    gate = Gate()
    real_plane_of = runs.label_plane_of
    monkeypatch.setattr(runs, "label_plane_of", lambda controller: gated(real_plane_of(controller)))

    def gated(plane: Any) -> Any:
        def read(t: int) -> Any:
            if threading.get_ident() != MAIN:
                gate.entered.set()
                gate.event.wait(60)
            return plane(t)
        return read

    try:
        w.tracks_button.click()
        assert gate.entered.wait(30) and w.busy()
        w.size_spin.setValue(64)  # a new model while the Tracks are measured
        qtbot.waitUntil(lambda: "re-run with it when this run ends" in w.status.text(), timeout=60_000)
    finally:
        gate.open()
    qtbot.waitUntil(lambda: not w.busy() and w.controller.model.image_size == 64, timeout=60_000)
    wait(qtbot, w)
    assert "SAM2 tracks [cells]" in viewer.layers and not w._model_rerun_due


@pytest.mark.gui
def test_a_runtime_error_in_a_worker_ends_the_run_with_its_words(make_napari_viewer, tmp_path, monkeypatch, qtbot,
                                                                 movie):
    """superqt's worker drops a RuntimeError raised in its generator (no errored, no finished): the widget stayed
    busy for good. Add Tracks layer (steps_worker) and a propagation (the widget's own worker) now end and say why."""
    import napari_sam2._runs as runs

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    w.points_layer.add(np.array([[0, *centre(movie.labels[0], 1)]]))
    wait(qtbot, w)
    real_plane_of = runs.label_plane_of

    def broken(controller: Any) -> Any:
        plane = real_plane_of(controller)

        def read(t: int) -> Any:
            if t == 2 and threading.get_ident() != MAIN:
                raise RuntimeError("blosc decompression failed")
            return plane(t)
        return read

    monkeypatch.setattr(runs, "label_plane_of", broken)
    w.tracks_button.click()
    qtbot.waitUntil(lambda: not w.busy(), timeout=15_000)
    assert w.status.text() == ("Add Tracks layer failed: blosc decompression failed. No Tracks layer was added or "
                               "changed."), w.status.text()
    assert "SAM2 tracks [cells]" not in viewer.layers and w.tracks_button.isEnabled()

    real_propagate = SegmentationController.propagate

    def out_of_memory(self: Any, *args: Any, **kwargs: Any) -> Any:
        for number, step in enumerate(real_propagate(self, *args, **kwargs)):
            if number == 2:
                raise RuntimeError("CUDA out of memory")
            yield step

    monkeypatch.setattr(SegmentationController, "propagate", out_of_memory)
    w.forward_button.click()
    qtbot.waitUntil(lambda: not w.busy(), timeout=30_000)
    assert "CUDA out of memory" in w.status.text() and w.forward_button.isEnabled(), w.status.text()


@pytest.mark.gui
def test_during_an_edit_the_layers_cannot_be_edited_and_save_session_waits(make_napari_viewer, tmp_path, monkeypatch,
                                                                          qtbot, movie):
    """A click or brush stroke during Delete object was lost (a failed edit put the layers back; the worker wrote
    whole planes over a stroke) and Save session wrote a mixed session. Now the image's clicks, boxes and masklets
    layers are read-only while the edit runs, as they were after it, and Save session says to wait."""
    from qtpy.QtWidgets import QFileDialog

    viewer, w = three_cells(make_napari_viewer, tmp_path, monkeypatch, qtbot, movie)
    layers = (w.points_layer, w.boxes_layer, w.labels_layer)
    w.activate_clicks()
    w.labels_layer.mode = "paint"
    modes = [str(layer.mode) for layer in layers]
    assert all(layer.editable for layer in layers)
    path = tmp_path / "during.sam2.npz"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *args, **kwargs: (str(path), "")))
    gate = Gate()
    gate.hold(monkeypatch, RunJournal, "write")
    try:
        w.objects.select_object(2)
        w.objects.delete_button.click()
        assert gate.entered.wait(30) and w.busy()
        assert not w.points_layer.editable and not w.boxes_layer.editable
        w.points_layer.mode = "add"  # the person tries to click a new point
        w.labels_layer.mode = "paint"  # and to pick the brush (the labels keep their own paint history)
        assert str(w.points_layer.mode) == "pan_zoom" and str(w.labels_layer.mode) == "pan_zoom"
        w.save_session_button.click()
        assert w.status.text() == ("Not saved: an edit (Delete object, Undo, Relabel or Merge) is in progress: save "
                                   "when it is done."), w.status.text()
        assert not path.exists()
        w.tracks_button.click()
        assert w.status.text() == ("Busy: wait for the edit in progress (it cannot be cancelled), then add the Tracks "
                                   "layer."), w.status.text()
    finally:
        gate.open()
    wait(qtbot, w)
    assert w.controller.obj_ids == [1, 3]
    assert all(layer.editable for layer in layers)
    assert [str(layer.mode) for layer in layers] == modes
    w.save_session_button.click()
    wait(qtbot, w)  # it saves in a worker
    assert path.exists(), w.status.text()


def test_an_undo_whose_write_fails_part_way_puts_every_plane_back(movie):
    """A failed Undo left the planes written before the failure restored and the step on the history: the next Undo
    blamed 'another tool or by hand'. Now it changes nothing, and the next Undo works."""
    controller, array = tracked(movie)
    before = array.copy()
    controller.remove_object(2)
    deleted, history = array.copy(), list(controller.history)
    controller.labels = store = OneFailedWrite(array, fail_at=3)
    with pytest.raises(OSError, match="refused"):
        controller.undo()
    np.testing.assert_array_equal(array, deleted)
    assert controller.history == history and controller.obj_ids == [1]
    store.fail_at = 0
    assert controller.undo().frames == list(range(FRAMES))
    np.testing.assert_array_equal(array, before)
    assert controller.obj_ids == [1, 2]


class CountedReads(OneFailedWrite):
    """A (T, H, W) labels store that counts the reads of each plane (``reads[t]``); every write goes through."""

    def __init__(self, array: np.ndarray) -> None:
        super().__init__(array, fail_at=0)
        self.reads: Dict[int, int] = {}

    def __getitem__(self, index: Any) -> np.ndarray:
        frame = int(index[0] if isinstance(index, tuple) else index)
        self.reads[frame] = self.reads.get(frame, 0) + 1
        return self.array[index]


def test_merge_reads_each_frame_once_and_gives_the_result_of_a_relabel_then_delete(movie):
    """Relabel and Merge compared every frame twice (the relabel, then the old id's removal, which found nothing left).
    Now each (H, W) plane is read once, and the result is the same: the old id's pixels are the new id's on every
    frame, the old object has left the session and its seeded masks are the new id's where the new id has none, the
    history is dropped (Undo says why), and a later step is undone back to the merged labels."""
    controller, array = tracked(movie)
    seeded = {(3, 2): array[3] == 2, (4, 2): array[4] == 2, (4, 1): array[4] == 1}
    controller.mask_prompts.update({k: FramePrompt(k[0], k[1], mask=m) for k, m in seeded.items()})
    before = array.copy()
    controller.labels = store = CountedReads(array)

    assert controller_module.finish(controller.reassign_steps(2, 1, "merged")) == [1]
    assert store.reads == {t: 1 for t in range(FRAMES)}, store.reads
    merged = np.where(before == 2, 1, before)
    np.testing.assert_array_equal(array, merged)
    assert sorted(controller.mask_prompts) == [(3, 1), (4, 1)]
    np.testing.assert_array_equal(controller.mask_prompts[(3, 1)].mask, seeded[(3, 2)])  # moved to object 1
    np.testing.assert_array_equal(controller.mask_prompts[(4, 1)].mask, seeded[(4, 1)])  # object 1's own kept
    assert controller.history == [] and controller.history_note == "merged" and controller.undo() is None

    controller.remove_object(1)  # a later step: undoable, back to the merged labels
    assert not array.any()
    assert controller.undo().frames == list(range(FRAMES))
    np.testing.assert_array_equal(array, merged)
    assert controller.obj_ids == [1]


@pytest.mark.gui
def test_closing_the_viewer_during_an_export_ends_it_quietly(make_napari_viewer, tmp_path, monkeypatch, qtbot, movie):
    """An export, Add Tracks layer and an edit end the same way (one end for every worker run of the widget): the
    export's end raised 'wrapped C/C++ object has been deleted' once the viewer's window had closed during it (the
    others let go of their worker quietly)."""
    import napari_sam2._session_actions as actions

    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_cells(w, qtbot, movie, (1,))
    gate = Gate()
    real_steps = actions.export_labels_steps

    def held_steps(*args: Any) -> Any:
        gate.entered.set()
        gate.event.wait(60)
        yield from real_steps(*args)

    monkeypatch.setattr(actions, "export_labels_steps", held_steps)
    path = tmp_path / "labels.tif"
    try:
        assert w.export_in_worker("labels", str(path)) is not None
        assert gate.entered.wait(30) and w.busy()
        viewer.close()
    finally:
        gate.open()
    qtbot.waitUntil(lambda: not w.busy(), timeout=30_000)
    qtbot.wait(100)  # the worker's end has run (an exception there fails the test)
    assert not [p.name for p in tmp_path.iterdir() if "labels" in p.name]  # stopped with the viewer: nothing written
