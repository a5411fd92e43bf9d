"""A saved session whose prompts include corrections (clicks made on a mask that propagation had made) reloads whole:
Load session re-makes the session in the order the prompts were made (the first clicks one at a time, tracking, the
corrections, tracking again), so every frame gets back the mask the user had and the clicks layer holds every click.

Driven as a person would (real viewer, the widget opened through the manifest, clicks added to the layers, the
buttons pressed, workers awaited) on a small synthetic movie with the embedded demo model; the file and the
controller's replay without Qt first."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_sam2.session_file import SessionRecord, read_session, write_session


# ---------------------------------------------------------------- the file, without Qt
def test_the_corrections_keep_their_slice_and_files_without_them_still_load(tmp_path):
    record = SessionRecord((3, 2, 32, 32), np.zeros((0, 4)), [], [], np.zeros((0, 4, 4)), [],
                           refined={((1, 0),): {(2, 1)}, ((1, 1),): {(0, 4), (1, 4)}})
    path = write_session(tmp_path / "s", record)
    assert read_session(path).refined == {((1, 0),): {(2, 1)}, ((1, 1),): {(0, 4), (1, 4)}}
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(str(arrays["meta"][()]))
    assert meta["version"] == 2 and meta["refined_keys"] == [[2, 1, [[1, 0]]], [0, 4, [[1, 1]]], [1, 4, [[1, 1]]]]

    del meta["refined_keys"]  # a file saved before the corrections were kept
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(tmp_path / "old.sam2.npz", **arrays)
    assert read_session(tmp_path / "old.sam2.npz").refined == {}

    for bad, message in (([[2, 1]], r"refined_keys: each must be \[frame, obj_id, slice\]"),
                         ([[7, 1, [[1, 0]]]], "refined_keys: a correction is on frame 7"),
                         ([[2, 0, [[1, 0]]]], "refined_keys object ids: object ids must be 1..")):
        meta["refined_keys"] = bad
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez_compressed(tmp_path / "bad.sam2.npz", **arrays)
        with pytest.raises(ValueError, match=f"damaged napari-sam2 session file .*{message}"):
            read_session(tmp_path / "bad.sam2.npz")


def _click(frame, obj, xy, positive=True):
    from napari_sam2.prompts import FramePrompt

    return FramePrompt(frame, obj, np.array([xy], np.float32), np.array([int(positive)], np.int32))


def test_a_replay_gives_the_masks_of_the_clicks_and_propagations_as_they_were_made():
    """The user's steps (two clicks on one frame one after the other, a second object, Propagate both ways, a positive
    click that extends a tracked mask, Propagate both ways from there) and the replay of the same clicks give the same
    labels on every frame: the replay sends clicks one at a time and the correction after tracking."""
    from sam2_model import build_model
    from sam2_model.evaluation import click_point
    from sam2_model.synthetic import make_timelapse

    from napari_sam2.controller import SegmentationController, _with
    from napari_sam2.layout import StackLayout

    movie = make_timelapse(num_frames=5, shape=(96, 96), num_cells=3, seed=5, divisions=False, enter_leave=False,
                           radius_fraction=0.12)
    ys, xs = np.nonzero(movie.labels[0] == 1)
    clicks = [_click(0, 1, click_point(movie.labels[0] == 1)), _click(0, 1, (xs.min() + 1.0, ys[np.argmin(xs)])),
              _click(0, 2, click_point(movie.labels[0] == 2)), _click(3, 1, click_point(movie.labels[3] == 1))]
    model = build_model("demo", device="cpu", image_size=128)

    def controller():
        labels = np.zeros(movie.image.shape, np.uint32)
        return labels, SegmentationController(model, movie.image, StackLayout(3, 0, None), labels)

    by_hand, user = controller()
    for step in [1, 2, 3, "both from 0", 4, "both from 3"]:  # the clicks layer's first n clicks, or Propagate
        if isinstance(step, int):
            made = {}
            for click in clicks[:step]:
                made[(click.frame, click.obj_id)] = _with(made.get((click.frame, click.obj_id)), click)
            list(user.apply_prompts(list(made.values())))
        else:
            list(user.propagate(int(step[-1]), "both"))
    assert user.refined_keys() == {(3, 1)}  # the click on frame 3 refined the tracked mask

    replayed, again = controller()
    steps = list(again.replay(clicks, user.refined_keys()))
    np.testing.assert_array_equal(replayed, by_hand)
    plans = [step for step in steps if step[0] == "plan"]
    assert len(plans) == 1 and "object 1 on frame(s) 3" in plans[0][2] and "again from frame 3" in plans[0][2]
    assert again.refined_keys() == {(3, 1)}  # saved again, it replays the same way

    # the clicks sent at once (what a load did before): another mask on frame 0, and frames 1-4 left untracked
    at_once, plain = controller()
    list(plain.apply_prompts([_with(_with(None, clicks[0]), clicks[1]), clicks[2], clicks[3]]))
    assert (at_once[0] != by_hand[0]).sum() > 10 and not at_once[1].any()


# ---------------------------------------------------------------- the widget
pytest.importorskip("napari")
from _helpers import tz_stack_tracked_on_z1  # noqa: E402
from widget_helpers import click_cell, open_widget, small_movie, wait  # noqa: E402


def _loaded(qtbot, w, path, **load):
    """Load the session file ``path`` (the replace question answered Yes) and wait for every slice's run."""
    assert w.load_session(str(path), confirm=lambda question: True, **load) is True
    qtbot.waitUntil(lambda: not w.busy() and not w._deferred, timeout=120_000)


def _corrected(qtbot, viewer, w, movie):
    """A person's work: click object 1 on frame 2, Propagate both ways, a negative click on its mask on frame 4,
    Propagate both ways from there. Returns the labels before and after the correction."""
    viewer.dims.set_current_step(0, 2)
    click_cell(w.points_layer, movie, 1, frame=2)
    wait(qtbot, w)
    w.both_button.click()
    wait(qtbot, w)
    uncorrected = w.labels_layer.data.copy()
    viewer.dims.set_current_step(0, 4)
    _negative_click_on_the_mask(w, 4)
    wait(qtbot, w)
    w.both_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()
    return uncorrected, w.labels_layer.data.copy()


def _negative_click_on_the_mask(w, frame):
    """A negative click on object 1's mask on ``frame``, near its right edge (it trims the mask there)."""
    ys, xs = np.nonzero(w.labels_layer.data[frame] == 1)
    row = int(np.median(ys))
    col = int(xs[ys == row].max()) - 1
    w.positive_button.click()  # negative clicks (the +/- toggle)
    w.points_layer.add(np.array([[frame, row, col]], float))


@pytest.mark.gui
def test_a_session_with_a_correction_reloads_with_the_correction_applied(make_napari_viewer, tmp_path, monkeypatch,
                                                                        qtbot):
    """E3 item 1: click a cell on frame 2, Propagate both ways, a negative click on frame 4, Propagate both ways from
    there, Save session; Load session failed ("the prompt of object 1 on frame 4 was refused: object 1 has no mask on
    frame 4 yet ...") and lost the correction. Now every frame's labels come back as they were, for a file saved
    before the corrections were kept too."""
    movie = small_movie(6, 5)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    uncorrected, corrected = _corrected(qtbot, viewer, w, movie)
    changed = [t for t in range(6) if (corrected[t] != uncorrected[t]).any()]
    assert 4 in changed and len(changed) >= 2, changed  # the correction trimmed frame 4 and was propagated
    clicks, positive = np.array(w.points_layer.data), w.points_layer.features["positive"].to_numpy(bool).copy()
    path = w.save_session(str(tmp_path / "corrected"))

    # a file saved before the corrections were kept: its negative clicks alone on frame 4 are a correction all the same
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(str(arrays["meta"][()]))
    meta.pop("refined_keys", None)
    arrays["meta"] = np.array(json.dumps(meta))
    old = tmp_path / "old.sam2.npz"
    np.savez_compressed(old, **arrays)

    for session in (path, old):
        viewer.layers.remove(w.labels_layer)  # the masks are gone; only the session file has the work
        viewer.dims.set_current_step(0, 0)
        _loaded(qtbot, w, session)
        status = w.status.text()
        assert status.startswith("Done") and "tracked both ways again from frame 4" in status, status
        np.testing.assert_array_equal(w.labels_layer.data, corrected)  # every frame, the correction applied
        np.testing.assert_array_equal(w.points_layer.data, clicks)  # the clicks layer holds every click
        np.testing.assert_array_equal(w.points_layer.features["positive"].to_numpy(bool), positive)
        w.undo_button.click()  # the load's re-run is where the history starts
        assert "the history starts at the session loaded from" in w.status.text(), w.status.text()
    assert read_session(path).refined == {(): {(4, 1)}}  # the file names the correction


@pytest.mark.gui
def test_a_click_that_extended_a_tracked_mask_reloads_as_it_was_made(make_napari_viewer, tmp_path, monkeypatch,
                                                                     qtbot):
    """Two clicks on one cell (one after the other), a second cell, Propagate ▶, a positive click that extends the
    tracked mask on frame 3, ◀ Propagate ▶ from there: the file names that click as a correction, and the load gives
    every frame the labels the user had (sent at once, the two clicks made another mask; the click on frame 3 alone,
    another mask there, and frames 1, 2, 4 stayed empty until Propagate)."""
    movie = small_movie(5, 11)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    viewer.dims.set_current_step(0, 0)
    ys, xs = np.nonzero(movie.labels[0] == 1)
    click_cell(w.points_layer, movie, 1, frame=0)
    wait(qtbot, w)
    w.points_layer.add(np.array([[0, ys[np.argmin(xs)], xs.min() + 1]], float))  # a second click near its edge
    wait(qtbot, w)
    w.new_object_button.click()
    click_cell(w.points_layer, movie, 2, frame=0)
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    viewer.dims.set_current_step(0, 3)
    w.object_spin.setValue(1)
    click_cell(w.points_layer, movie, 1, frame=3)
    wait(qtbot, w)
    w.both_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()
    made = w.labels_layer.data.copy()
    path = w.save_session(str(tmp_path / "extended"))

    viewer.layers.remove(w.labels_layer)
    _loaded(qtbot, w, path)
    np.testing.assert_array_equal(w.labels_layer.data, made)
    assert read_session(path).refined == {(): {(3, 1)}}  # the file names the click on frame 3 a correction


@pytest.mark.gui
def test_negative_clicks_of_an_object_with_nothing_to_correct_are_named_and_the_rest_loads(make_napari_viewer, tmp_path,
                                                                                           monkeypatch, qtbot):
    """Object 2 has only a negative click (refused when it was clicked): the load restores object 1 and says that
    object 2's click is not used (it failed with "Failed: the prompt of object 2 ... was refused"); Propagate after it
    tracks object 1 and leaves the refused click alone, as before the save."""
    movie = small_movie(4, 5)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    viewer.dims.set_current_step(0, 0)
    click_cell(w.points_layer, movie, 1, frame=0)
    wait(qtbot, w)
    mask = w.labels_layer.data[0].copy()
    w.new_object_button.click()
    w.positive_button.click()
    viewer.dims.set_current_step(0, 2)
    click_cell(w.points_layer, movie, 2, frame=2)
    wait(qtbot, w)
    assert "refused" in w.status.text()
    path = w.save_session(str(tmp_path / "refused"))

    viewer.layers.remove(w.labels_layer)
    _loaded(qtbot, w, path)
    status = w.status.text()
    assert not status.startswith("Failed") and "object 2's negative clicks on frame 2 were not used" in status, status
    np.testing.assert_array_equal(w.labels_layer.data[0], mask)
    assert len(w.points_layer.data) == 2
    viewer.dims.set_current_step(0, 0)
    w.forward_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done") and all((w.labels_layer.data[t] == 1).any() for t in range(4))


@pytest.mark.gui
def test_a_correction_on_another_z_slice_comes_back_in_that_slices_session(make_napari_viewer, tmp_path, monkeypatch,
                                                                            qtbot):
    """A (T, Z, Y, X) stack: on z=1, a click on t=0, Propagate ▶, a negative click on t=2, ◀ Propagate ▶; saved,
    and loaded while z=0 is shown: z=1's session (a run after the slice shown) is re-made with its correction, and its
    labels on every t are as they were."""
    viewer, w, movie = tz_stack_tracked_on_z1(make_napari_viewer, tmp_path, monkeypatch, qtbot)  # z=1 is the movie
    viewer.dims.set_current_step(0, 2)
    ys, xs = np.nonzero(w.labels_layer.data[2, 1] == 1)
    row = int(np.median(ys))
    w.positive_button.click()
    w.points_layer.add(np.array([[2, 1, row, int(xs[ys == row].max()) - 1]], float))
    wait(qtbot, w)
    w.both_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()
    made = w.labels_layer.data.copy()
    path = w.save_session(str(tmp_path / "tz"))

    viewer.layers.remove(w.labels_layer)
    viewer.dims.set_current_step(1, 0)  # z=0 shown: nothing there, z=1's run follows
    _loaded(qtbot, w, path)
    np.testing.assert_array_equal(w.labels_layer.data, made)
    assert read_session(path).refined == {((1, 1),): {(2, 1)}}  # the correction, with its slice


@pytest.mark.gui
def test_a_load_cancelled_during_its_replay_replays_at_the_next_run(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Review: Cancel during a loaded session's re-run dropped the replay (its flag was cleared before the first step)
    and left the replay's withheld seeded masks on the controller until the generator was collected: the next run sent
    every prompt at once and the correction was refused again. Now the cancelled run's steps are closed when its
    worker ends and the replay stays due: Segment after the Cancel gives the corrected masks."""
    movie = small_movie(6, 5)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    _, corrected = _corrected(qtbot, viewer, w, movie)
    path = w.save_session(str(tmp_path / "corrected"))

    viewer.layers.remove(w.labels_layer)
    viewer.dims.set_current_step(0, 0)
    cancelled = []

    def cancel_once(step):  # the replay's first step (the first click's mask) is in: Cancel
        if not cancelled and w.worker is not None:
            cancelled.append(step)
            w.cancel_button.click()

    assert w.load_session(str(path), confirm=lambda question: True) is True
    qtbot.waitUntil(lambda: w.worker is not None, timeout=60_000)
    w.worker.yielded.connect(cancel_once)
    qtbot.waitUntil(lambda: not w.busy() and not w._deferred, timeout=120_000)
    assert cancelled and w.status.text().startswith("Cancelled"), w.status.text()
    assert not w.controller._withheld  # the replay's clean-up ran when its worker ended
    w.segment_button.click()
    wait(qtbot, w)
    status = w.status.text()
    assert status.startswith("Done") and "refused" not in status, status
    np.testing.assert_array_equal(w.labels_layer.data, corrected)
