"""A session file keeps the masklets (labels) and Load session puts exactly those back once its re-run of the prompts
(which makes the model's memory) is done: tracked one way, corrected, painted by hand, on every z slice with a
session; files saved before the masklets were kept load as before; a cancelled load puts nothing back half-way."""

from __future__ import annotations

import json
from typing import List

import numpy as np
import pytest

from napari_sam2.session_file import SessionRecord, read_session, write_session


# ---------------------------------------------------------------- the file, without Qt
def record(**extra) -> SessionRecord:
    return SessionRecord((3, 2, 32, 32), [[0, 1, 5.0, 6.0]], [True], [1], np.zeros((0, 4, 4)), [], **extra)


def test_the_masklets_round_trip_with_their_slice_and_older_files_keep_none(tmp_path):
    plane = np.zeros((32, 32), np.uint32)
    plane[3:9, 4:12] = 7
    plane[20, 20] = 2**32 - 1  # the masklets' largest id
    path = write_session(tmp_path / "s", record(labels={((1, 1),): {2: plane}, ((1, 0),): {}}))
    back = read_session(path)
    assert set(back.labels) == {((1, 0),), ((1, 1),)} and back.labels[((1, 0),)] == {}  # z=0 kept, all empty
    assert list(back.labels[((1, 1),)]) == [2] and back.labels[((1, 1),)][2].dtype == np.uint32
    np.testing.assert_array_equal(back.labels[((1, 1),)][2], plane)
    with np.load(path) as data:
        meta = json.loads(str(data["meta"][()]))
        arrays = {name: data[name] for name in data.files}
    assert meta["version"] == 2 and meta["labels_keys"] == [[2, [[1, 1]]]] and arrays["labels"].shape == (1, 32, 32)

    # a file saved before the masklets were kept: none (the load re-runs the prompts only)
    for key in ("labels_slices", "labels_keys"):
        meta.pop(key)
    old = tmp_path / "old.sam2.npz"
    np.savez_compressed(old, **{**{k: v for k, v in arrays.items() if k != "labels"},
                                "meta": np.array(json.dumps(meta))})
    assert read_session(old).labels is None
    assert read_session(write_session(tmp_path / "none", record())).labels is None


@pytest.mark.parametrize("change, words", [
    (lambda meta, arrays: meta.update(labels_keys=[[5, [[1, 1]]]]), "labels_keys: masklets are kept for frame 5"),
    (lambda meta, arrays: meta.update(labels_keys=[[2, [[1, 0]]]]), "on a slice that labels_slices does not name"),
    (lambda meta, arrays: meta.update(labels_keys=[]), "0 labels keys for 1 masklet planes"),
    (lambda meta, arrays: arrays.pop("labels"), "lacks 'labels'"),
    (lambda meta, arrays: arrays.update(labels=np.full((1, 32, 32), -1, np.int64)), "object ids 0..4294967295"),
])
def test_damaged_masklets_are_refused_naming_what_is_wrong(tmp_path, change, words):
    path = write_session(tmp_path / "s", record(labels={((1, 1),): {2: np.ones((32, 32), np.uint32)}}))
    with np.load(path) as data:
        meta = json.loads(str(data["meta"][()]))
        arrays = {name: data[name] for name in data.files}
    change(meta, arrays)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(path, **arrays)
    with pytest.raises(ValueError, match="damaged napari-sam2 session file .*" + words.replace("(", r"\(")):
        read_session(path)


def test_masklets_of_another_frame_size_do_not_fit():
    kept = record(labels={((1, 1),): {0: np.ones((16, 16), np.uint32)}})
    kept.check_labels_fit((16, 16))
    with pytest.raises(ValueError, match=r"planes of \(16, 16\) pixels, but the image's frames are \(32, 32\)"):
        kept.check_labels_fit((32, 32))


# ---------------------------------------------------------------- putting them back, all or nothing
pytest.importorskip("napari")
from napari_sam2._session_files import put_back_labels  # noqa: E402
from napari_sam2.layout import StackLayout  # noqa: E402
from sam2_model.evaluation import click_point  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402
from _helpers import correct_and_propagate, tz_stack_tracked_on_z1  # noqa: E402
from widget_helpers import centre, click_cells, open_widget, small_movie, wait  # noqa: E402


class FailingLabels(np.ndarray):
    """A labels array whose ``fail_at``-th plane write raises (a disk full under a zarr store, say)."""

    fail_at = -1  # never

    def __setitem__(self, index, value):
        type(self).fail_at -= 1
        if type(self).fail_at == 0:
            raise OSError("no space left on device")
        super().__setitem__(index, value)


def test_the_masklets_go_back_whole_or_not_at_all():
    labels = np.zeros((4, 8, 8), np.uint32)
    labels[3] = 5  # a frame the file keeps empty: cleared
    layout = StackLayout(3, 0)
    planes = {0: np.full((8, 8), 1, np.uint32), 1: np.full((8, 8), 2, np.uint32)}
    assert put_back_labels(labels, layout, 4, planes) == [0, 1, 3]
    np.testing.assert_array_equal(labels, np.stack([planes[0], planes[1], 0 * planes[0], 0 * planes[0]]))

    failing = np.zeros((4, 8, 8), np.uint32).view(FailingLabels)
    failing[3] = 5
    before = np.asarray(failing).copy()
    FailingLabels.fail_at = 2  # the second plane's write fails
    try:
        with pytest.raises(OSError, match="no space"):
            put_back_labels(failing, layout, 4, planes)
    finally:
        FailingLabels.fail_at = -1
    np.testing.assert_array_equal(np.asarray(failing), before)  # the first plane got back what it held


# ---------------------------------------------------------------- the widget
def _loaded(qtbot, w, path):
    """Load ``path`` (the replace question answered Yes) and wait for every slice's run."""
    assert w.load_session(str(path), confirm=lambda question: True) is True
    qtbot.waitUntil(lambda: not w.busy() and not w._deferred, timeout=300_000)


def _paint(layer, where, label, size=3):
    """Paint ``label`` with napari's brush (``size`` px) at ``where`` (data coordinates), as a person does."""
    layer.brush_size = size
    layer.paint(where, label)


def _twenty_cells_one_way_corrected(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """(viewer, widget, movie): 20 synthetic cells clicked on frame 0 (New object between), Propagate ▶ only, one
    extra click on object 3 on frame 3, Propagate ▶ again, then a few pixels painted by hand (object 5 grown, a new
    id 99 on background, a bite taken out of object 1)."""
    movie = make_timelapse(num_frames=6, shape=(160, 160), num_cells=24, seed=5, divisions=False, enter_leave=False,
                           radius_fraction=0.05)
    cells = [int(c) for c in np.unique(movie.labels[0]) if c and (movie.labels[0] == c).sum() > 15][:20]
    assert len(cells) == 20
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_cells(w, qtbot, movie, tuple(cells))
    w.forward_button.click()
    wait(qtbot, w)
    correct_and_propagate(viewer, w, qtbot, movie, frame=3, obj=3, cell=cells[2])
    labels = w.labels_layer
    ys, xs = np.nonzero(labels.data[4] == 5)
    _paint(labels, (4, int(ys.max()) + 1, int(xs.mean())), 5)
    background = np.argwhere(labels.data[2] == 0)
    _paint(labels, (2, *background[len(background) // 2]), 99)
    ys, xs = np.nonzero(labels.data[1] == 1)
    _paint(labels, (1, int(ys.mean()), int(xs.mean())), 0, size=2)
    return viewer, w, movie


@pytest.mark.gui
def test_a_loaded_session_gives_back_the_masklets_that_were_saved_bit_for_bit(make_napari_viewer, tmp_path,
                                                                              monkeypatch, qtbot):
    """X1 item 1: 20 cells tracked one way (▶), one correction, ▶ again, a few pixels painted by hand; Save session,
    then Load session into a fresh viewer: the load re-made the masks by tracking both ways around the correction
    (frames 1-5 differed, worst IoU 0.937) and lost the painting. Now the masklets are the saved ones, every pixel."""
    viewer, w, movie = _twenty_cells_one_way_corrected(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    saved = np.asarray(w.labels_layer.data).copy()
    assert (saved == 99).any() and (saved[4] == 5).sum() > 0
    path = w.save_session(str(tmp_path / "twenty"))
    assert "masklets" in w.status.text()
    viewer.close()

    fresh, w2 = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    _loaded(qtbot, w2, path)
    status = w2.status.text()
    assert status.startswith("Done"), status
    assert w2.labels_layer.data.dtype == np.uint32
    np.testing.assert_array_equal(w2.labels_layer.data, saved)
    assert len(w2.points_layer.data) == 21  # the prompts came back too (the model's memory is their re-run's)
    w2.undo_button.click()  # the load is where the history starts
    assert "the history starts at the session loaded from" in w2.status.text(), w2.status.text()
    np.testing.assert_array_equal(w2.labels_layer.data, saved)


@pytest.mark.gui
def test_a_file_without_masklets_loads_as_before_and_masklets_of_another_size_are_refused(make_napari_viewer, tmp_path,
                                                                                          monkeypatch, qtbot):
    """A file saved before the masklets were kept re-runs its prompts only (the clicked frame gets its mask, the
    tracked and painted frames stay empty until Propagate), as it did; a file whose masklets are not the image's
    frames is refused before anything changes."""
    movie = small_movie(4, 5)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    w.points_layer.add(np.array([[0, *centre(movie.labels[0], 1)]]))
    wait(qtbot, w)
    first = np.asarray(w.labels_layer.data[0]).copy()
    w.forward_button.click()
    wait(qtbot, w)
    _paint(w.labels_layer, (2, 5, 5), 42)
    saved = np.asarray(w.labels_layer.data).copy()
    path = w.save_session(str(tmp_path / "one"))
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files if name != "labels"}
    meta = json.loads(str(arrays["meta"][()]))
    del meta["labels_slices"], meta["labels_keys"]
    arrays["meta"] = np.array(json.dumps(meta))
    old = tmp_path / "old.sam2.npz"
    np.savez_compressed(old, **arrays)

    _loaded(qtbot, w, old)
    assert w.status.text().startswith("Done"), w.status.text()
    np.testing.assert_array_equal(w.labels_layer.data[0], first)
    assert not w.labels_layer.data[1:].any()  # tracked and painted frames: not kept in that file

    record = read_session(path)
    record.labels = {(): {0: np.ones((48, 48), np.uint32)}}
    small = write_session(tmp_path / "small", record)
    with pytest.raises(ValueError, match=r"small.sam2.npz: the masklets kept .* \(48, 48\) pixels, but the image's "
                                         r"frames are \(96, 96\)"):
        w.load_session(str(small), confirm=lambda question: True)
    np.testing.assert_array_equal(w.labels_layer.data[0], first)  # nothing changed
    _loaded(qtbot, w, path)
    np.testing.assert_array_equal(w.labels_layer.data, saved)


def _cancelled_load(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """(viewer, widget, movie, the masklets saved): a session with a correction and a painted pixel, saved, then
    loaded into the same viewer and its re-run cancelled at its first step."""
    movie = small_movie(6, 5)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    w.points_layer.add(np.array([[0, *centre(movie.labels[0], 1)]]))
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    viewer.dims.set_current_step(0, 3)
    x, y = click_point(movie.labels[3] == 1)
    w.points_layer.add(np.array([[3, y + 2, x]]))  # a second click: a correction of the tracked mask
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    _paint(w.labels_layer, (5, 4, 4), 77)
    saved = np.asarray(w.labels_layer.data).copy()
    path = w.save_session(str(tmp_path / "corrected"))

    viewer.layers.remove(w.labels_layer)
    viewer.dims.set_current_step(0, 0)
    cancelled = []

    def cancel_once(step):  # the replay's first step is in: Cancel
        if not cancelled and w.worker is not None:
            cancelled.append(step)
            w.cancel_button.click()

    assert w.load_session(str(path), confirm=lambda question: True) is True
    qtbot.waitUntil(lambda: w.worker is not None, timeout=60_000)
    w.worker.yielded.connect(cancel_once)
    qtbot.waitUntil(lambda: not w.busy() and not w._deferred, timeout=120_000)
    assert cancelled
    return viewer, w, movie, saved


@pytest.mark.gui
def test_a_cancelled_load_puts_nothing_back_half_way_and_its_next_run_does(make_napari_viewer, tmp_path, monkeypatch,
                                                                          qtbot):
    """Cancel during a loaded session's re-run: the masklets are as that run left them (the frames it finished), none
    of the saved planes, and the status says the saved masklets come back once the prompts are re-run whole; Segment
    re-runs them and then the masklets are the saved ones."""
    viewer, w, _, saved = _cancelled_load(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    status = w.status.text()
    assert status.startswith("Cancelled"), status
    assert "the masklets saved in corrected.sam2.npz are put back once its prompts are re-run whole" in status, status
    assert not (w.labels_layer.data == 77).any()  # no saved plane was written
    assert not np.array_equal(w.labels_layer.data, saved)
    w.segment_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()
    np.testing.assert_array_equal(w.labels_layer.data, saved)


@pytest.mark.gui
def test_clicks_changed_after_a_cancelled_load_say_the_masklets_are_not_put_back(make_napari_viewer, tmp_path,
                                                                                 monkeypatch, qtbot):
    """After the Cancel, a new click: the next run does not put the saved masklets back (they were those of the
    loaded clicks) and says so; before, they were dropped without a word although the Cancel had promised them (found
    by the review)."""
    said: List[str] = []
    monkeypatch.setattr("napari_sam2._session_files.show_info", said.append)
    viewer, w, movie, saved = _cancelled_load(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    w.new_object_button.click()
    w.points_layer.add(np.array([[0, *centre(movie.labels[0], 2)]]))
    wait(qtbot, w)
    assert any("the masklets saved in corrected.sam2.npz are not put back: the clicks or boxes changed" in text
               for text in said), said
    assert not (w.labels_layer.data == 77).any()


@pytest.mark.gui
def test_every_z_slice_with_a_session_gets_its_masklets_back(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """A (T, Z, Y, X) stack: z=1 clicked and tracked ▶, z=0 clicked on t=0 only and painted by hand on t=2; loaded
    into a fresh viewer while z=0 is shown: both slices' masklets are the saved ones (z=1's after its own run)."""
    viewer, w, movie = tz_stack_tracked_on_z1(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    stack = np.asarray(viewer.layers["tz"].data)  # (T, Z=2, Y, X)
    viewer.dims.set_current_step(1, 0)
    w.new_object_button.click()
    x, y = click_point(movie.labels[-1] == 2)
    w.points_layer.add(np.array([[0, 0, y, x]], float))
    wait(qtbot, w)
    _paint(w.labels_layer, (2, 0, 10, 10), 9)
    saved = np.asarray(w.labels_layer.data).copy()
    assert saved[:, 1].any() and (saved[2, 0] == 9).any() and (saved[0, 0] == 2).any()
    path = w.save_session(str(tmp_path / "tz"))
    assert set(read_session(path).labels) == {((1, 0),), ((1, 1),)}
    viewer.close()

    fresh, w2 = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("tz", stack))
    fresh.dims.set_current_step(1, 0)
    _loaded(qtbot, w2, path)
    assert w2.status.text().startswith("Done"), w2.status.text()
    np.testing.assert_array_equal(w2.labels_layer.data, saved)


@pytest.mark.gui
def test_a_slice_whose_session_has_no_prompts_left_gets_its_painted_masklets_back(make_napari_viewer, tmp_path,
                                                                                   monkeypatch, qtbot):
    """A (T, Z, Y, X) stack: z=1 clicked; on z=0 a click deleted again (its session stays, with no prompts) and a
    mask painted by hand there. No run of the load re-makes z=0, so its masklets are put back at once (they were
    lost: the load cleared them)."""
    movie = small_movie(3, 5)
    stack = np.stack([movie.image[::-1], movie.image], axis=1)  # (T, Z=2, Y, X)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("tz", stack))
    viewer.dims.set_current_step(0, 0)
    viewer.dims.set_current_step(1, 0)
    x, y = click_point(movie.labels[-1] == 2)
    w.points_layer.add(np.array([[0, 0, y, x]], float))
    wait(qtbot, w)
    w.points_layer.selected_data = {0}
    w.points_layer.remove_selected()
    wait(qtbot, w)
    _paint(w.labels_layer, (1, 0, 30, 30), 4, size=5)
    viewer.dims.set_current_step(1, 1)
    w.new_object_button.click()
    x, y = click_point(movie.labels[0] == 1)
    w.points_layer.add(np.array([[0, 1, y, x]], float))
    wait(qtbot, w)
    saved = np.asarray(w.labels_layer.data).copy()
    assert (saved[1, 0] == 4).any() and saved[0, 1].any() and len(w.points_layer.data) == 1
    path = w.save_session(str(tmp_path / "painted"))
    assert ((1, 0),) in read_session(path).labels
    viewer.close()

    fresh, w2 = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("tz", stack))
    fresh.dims.set_current_step(1, 1)
    _loaded(qtbot, w2, path)
    assert w2.status.text().startswith("Done"), w2.status.text()
    np.testing.assert_array_equal(w2.labels_layer.data, saved)
