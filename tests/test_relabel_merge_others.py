"""Relabel and Merge change only the objects they name, even when the session has corrections (a click on a tracked
frame); and they do no model work beyond the merged object's own prompts.

Before, once a session had any correction, both re-made the whole session from its prompts (every object tracked both
ways, corrected, tracked both ways again: ``SegmentationController.replay``): other objects' masks changed (20 cells,
one correction: frames 1-5 changed, worst other-object IoU 0.937) and it took minutes with many objects (80 cells,
512 px: Relabel 155 s, Merge 151 s). Now Relabel renames the object in the model's session (``rename_object``: no
model work) and Merge segments only the merged object's prompts on their frames.

The session tests run the demo model directly; the widget tests drive it as a person does (real viewer, clicks added
to the layers, buttons pressed, workers awaited) on a synthetic movie of 20 cells with the embedded demo weights."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

from sam2_model import VideoSession, build_model
from sam2_model.evaluation import click_point
from sam2_model.synthetic import make_timelapse
from sam2_model.windowed_session import WindowedSession

from napari_sam2.controller import SegmentationController, finish
from napari_sam2.layout import StackLayout
from napari_sam2.prompts import FramePrompt


@pytest.fixture(scope="module")
def model() -> Any:
    return build_model("demo", device="cpu", image_size=128)


@pytest.fixture(scope="module")
def cells() -> Any:
    """A 6-frame 128 x 128 movie of 5 round cells (no divisions, none entering or leaving)."""
    return make_timelapse(num_frames=6, shape=(128, 128), num_cells=5, seed=3, divisions=False, enter_leave=False,
                          radius_fraction=0.08)


def _xy(movie: Any, obj: int, frame: int) -> np.ndarray:
    """(1, 2) (x, y): a point deep inside cell ``obj`` of ``movie`` on ``frame``."""
    x, y = click_point(movie.labels[frame] == obj)
    return np.array([[x, y]], np.float32)


def _worked(session: Any, movie: Any, ids: Dict[int, int]) -> None:
    """Cells 1-4 clicked on frame 0 as objects ``ids[cell]``, propagated forward, cell 2 corrected on frame 3 (an
    extra positive click) and cell 4 on frame 4 (a negative click at its edge), propagated forward from frame 3."""
    for cell in (1, 2, 3, 4):
        session.add_prompt(0, ids[cell], points=_xy(movie, cell, 0), labels=[1])
    list(session.propagate(0))
    session.add_prompt(3, ids[2], points=_xy(movie, 2, 3), labels=[1])
    ys, xs = np.nonzero(movie.labels[4] == 4)
    session.add_prompt(4, ids[4], points=[[float(xs.max()), float(ys[xs.argmax()])]], labels=[0])
    list(session.propagate(3))


def _then(session: Any, movie: Any, ids: Dict[int, int]) -> List[Tuple[int, List[int], np.ndarray]]:
    """What comes after the rename: a correction of cell 3 on frame 2, a new object (cell 5), propagation both ways
    from frame 2 (every object), then cell 2 alone forward: each step's (frame, ids, logits)."""
    out = [(2, session.obj_ids, session.add_prompt(2, ids[3], points=_xy(movie, 3, 2), labels=[1]))]
    out.append((1, session.obj_ids, session.add_prompt(1, ids[5], points=_xy(movie, 5, 1), labels=[1])))
    out += [(t, list(o), logits) for t, o, logits in session.propagate(2)]
    out += [(t, list(o), logits) for t, o, logits in session.propagate(2, reverse=True)]
    out += [(t, list(o), logits) for t, o, logits in session.propagate(0, obj_ids=[ids[2]])]
    out += [(t, session.obj_ids, session.frame_logits(t)) for t in range(session.num_frames)]
    return out


@pytest.mark.parametrize("kind", ["whole frames, batched", "whole frames, one by one", "object windows"])
def test_a_renamed_object_gives_bit_identical_results_to_the_session_never_renamed(model, cells, kind):
    """Two sessions given the same work, one with cell 2 as object 2 throughout, one with it as object 2 until
    ``rename_object(2, 9)`` (after tracking and corrections): every later step (a correction, a new object, tracking
    both ways, tracking one object) gives bit-identical logits, ids mapped 2 -> 9, and the object keeps its place in
    ``obj_ids`` (the order objects are batched and composed in)."""
    def session() -> Any:
        if kind == "object windows":
            return WindowedSession(model, cells.image, window=48)
        return VideoSession(model, cells.image, batch_objects=kind.endswith("batched"), max_batch_objects=2)

    plain, renamed = session(), session()
    ids = {cell: cell for cell in range(1, 6)}
    _worked(plain, cells, ids)
    _worked(renamed, cells, ids)
    assert renamed.rename_object(2, 9) == [1, 9, 3, 4]
    assert renamed.tracked_frames(9) == plain.tracked_frames(2)
    assert renamed.prompted_frames(9) == plain.prompted_frames(2)
    expected = _then(plain, cells, ids)
    got = _then(renamed, cells, {**ids, 2: 9})
    assert len(got) == len(expected)
    for (t, o, logits), (t2, o2, logits2) in zip(expected, got):
        assert t2 == t and o2 == [9 if i == 2 else i for i in o]
        np.testing.assert_array_equal(logits2, logits)


@pytest.mark.parametrize("kind", [VideoSession, WindowedSession])
def test_rename_object_refuses_an_unknown_or_taken_id_and_changes_nothing(model, cells, kind):
    session = kind(model, cells.image, window=48) if kind is WindowedSession else kind(model, cells.image)
    for cell in (1, 2):
        session.add_prompt(0, cell, points=_xy(cells, cell, 0), labels=[1])
    before = session.frame_logits(0)
    with pytest.raises(ValueError, match="unknown object id 7"):
        session.rename_object(7, 8)
    with pytest.raises(ValueError, match="new_id 1 is another object"):
        session.rename_object(2, 1)
    with pytest.raises(ValueError, match="positive integer"):
        session.rename_object(2, 0)
    assert session.obj_ids == [1, 2]
    np.testing.assert_array_equal(session.frame_logits(0), before)
    assert session.rename_object(2, 2) == [1, 2]


def _controller(model: Any, movie: Any) -> Tuple[SegmentationController, np.ndarray]:
    labels = np.zeros(movie.image.shape, np.uint32)
    return SegmentationController(model, movie.image, StackLayout(3, 0), labels), labels


def _click(movie: Any, cell: int, frame: int, obj: int, positive: bool = True) -> FramePrompt:
    return FramePrompt(frame, obj, _xy(movie, cell, frame), np.array([int(positive)], np.int32))


def test_merging_a_correction_where_the_other_object_has_no_mask_keeps_it_as_a_refused_prompt(model, cells):
    """Object 1 clicked on frame 0 and tracked forward, then a negative click of it on frame 2 (a correction);
    object 2 clicked on frame 4 only (no mask on frame 2). Merge 1 into 2, then the prompts segmented as they are (the
    re-run after Merge): no failure (before: "the prompt of object 2 on frame 2 was refused"), the negative click
    kept as a refused prompt of object 2 and the notes saying so; object 2's mask on frame 0 is made by object 1's
    click, and nothing was propagated."""
    controller, labels = _controller(model, cells)
    one = _click(cells, 1, 0, 1)
    list(controller.apply_prompts([one]))
    list(controller.propagate(0, "forward"))
    ys, xs = np.nonzero(labels[2] == 1)
    correction = FramePrompt(2, 1, np.array([[xs.max(), ys[xs.argmax()]]], np.float32), np.array([0], np.int32))
    two = _click(cells, 2, 4, 2)
    list(controller.apply_prompts([one, correction, two]))
    assert 2 not in controller.session.tracked_frames(2)
    finish(controller.reassign_steps(1, 2, "merged"))
    assert controller.obj_ids == [2] and not (labels == 1).any()
    merged = [FramePrompt(p.frame, 2, p.points, p.labels) for p in (one, correction)] + [two]
    steps = list(controller.apply_prompts(merged))
    assert sorted(step[1] for step in steps if step[0] == "frame") == [0]  # frame 0 only: 2's first mask there
    assert (labels[0] == 2).sum() > 0.5 * (cells.labels[0] == 1).sum()
    notes = controller.pop_notes()
    assert notes.startswith("object 1 is part of object 2 now (merge cannot be undone with Undo); object 2's prompts "
                            "on frame(s) 0 were segmented"), notes
    assert "object 1's negative clicks on frame(s) 2 were not used: object 2 has no mask there" in notes, notes
    assert controller.pop_notes() == ""
    assert list(controller.apply_prompts(merged))[:-1] == []  # refused: not sent again until it changes


def test_relabel_in_the_controller_renames_its_bookkeeping_and_changes_no_mask(model, cells):
    """After Relabel 2 -> 9 (with a correction of object 2 in the session) every later step works on object 9 as it
    would have on object 2: its correction is still one (refined_keys), its prompts are not sent again, a new
    object 2 is a new object, and a new id that any object of the controller has is refused before anything
    changes."""
    controller, labels = _controller(model, cells)
    prompts = [_click(cells, cell, 0, cell) for cell in (1, 2, 3)]
    list(controller.apply_prompts(prompts))
    list(controller.propagate(0, "forward"))
    prompts.append(_click(cells, 2, 3, 2))
    list(controller.apply_prompts(prompts))
    before = labels.copy()
    with pytest.raises(ValueError, match="new id 3 is taken"):
        controller.rename_steps(2, 3, "relabelled")
    np.testing.assert_array_equal(labels, before)
    assert finish(controller.rename_steps(2, 9, "relabelled")) == [1, 9, 3]
    np.testing.assert_array_equal(labels, np.where(before == 2, 9, before))
    assert controller.refined_keys() == {(3, 9)} and controller.history == []
    renamed = [FramePrompt(p.frame, 9 if p.obj_id == 2 else p.obj_id, p.points, p.labels) for p in prompts]
    assert list(controller.apply_prompts(renamed))[:-1] == []  # nothing new to send


# ---------------------------------------------------------------- the widget: 20 cells, one correction
class Calls:
    """Counts the calls of the controller's propagation and the sessions' prompts while letting them run (a spy, not a
    stand-in: the real model does the work)."""

    def __init__(self, monkeypatch: Any) -> None:
        self.count: Dict[str, int] = {}
        for owner, name in ((SegmentationController, "propagate"), (SegmentationController, "replay"),
                            (VideoSession, "add_prompt"), (WindowedSession, "add_prompt")):
            self._wrap(monkeypatch, owner, name)

    def _wrap(self, monkeypatch: Any, owner: Any, name: str) -> None:
        real, key = getattr(owner, name), f"{owner.__name__}.{name}"

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count[key] = self.count.get(key, 0) + 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)


def _twenty_corrected(make_napari_viewer: Any, tmp_path: Any, monkeypatch: Any, qtbot: Any) -> Tuple[Any, Any, Any]:
    """(viewer, widget, movie): 20 cells of a 6-frame 160 x 160 movie clicked on frame 0 as objects 1-20 (New object
    between), Propagate ▶, an extra click on object 3 on frame 3 (a correction of its tracked mask), Propagate ▶ from
    there."""
    from _helpers import correct_and_propagate
    from widget_helpers import click_and_propagate, open_widget

    from napari_sam2._widget import OFF

    movie = make_timelapse(num_frames=6, shape=(160, 160), num_cells=24, seed=5, divisions=False, enter_leave=False,
                           radius_fraction=0.05)
    cells = tuple(int(c) for c in np.unique(movie.labels[0]) if c and (movie.labels[0] == c).sum() > 30)[:20]
    assert len(cells) == 20
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    w.window_combo.setCurrentText(OFF)
    click_and_propagate(w, qtbot, movie, cells)
    correct_and_propagate(viewer, w, qtbot, movie, frame=3, obj=3, cell=cells[2])
    assert w.controller.refined_keys() == {(3, 3)}  # a correction of a tracked mask
    assert sorted(w.controller.obj_ids) == list(range(1, 21))
    return viewer, w, movie


def _others_identical(before: np.ndarray, after: np.ndarray, named: Tuple[int, ...]) -> None:
    """Every object not in ``named`` has exactly its pixels of before, on every frame."""
    for obj in set(np.unique(before).tolist()) - {0, *named}:
        np.testing.assert_array_equal(after == obj, before == obj, err_msg=f"object {obj} changed")


@pytest.mark.gui
def test_relabel_after_a_correction_changes_no_mask_and_runs_no_model(make_napari_viewer, tmp_path, monkeypatch,
                                                                       qtbot):
    """Relabel 10 -> 99 (the Relabel… button) in a session with a correction: object 99 has exactly object 10's
    pixels, every other object exactly its own, on every frame; nothing was propagated, replayed or prompted, and the
    status keeps the relabel's words. Before: the session was replayed (every object tracked both ways again) and
    other objects' masks changed on the frames before the correction."""
    from qtpy.QtWidgets import QInputDialog
    from widget_helpers import wait

    viewer, w, movie = _twenty_corrected(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    before = np.array(w.labels_layer.data)
    calls = Calls(monkeypatch)
    monkeypatch.setattr(QInputDialog, "getInt", staticmethod(lambda *args: (99, True)))  # the person types 99
    w.objects.select_object(10)
    w.objects.relabel_button.click()
    wait(qtbot, w)
    qtbot.wait(200)  # a re-run would have started by now
    wait(qtbot, w)
    after = np.array(w.labels_layer.data)
    np.testing.assert_array_equal(after == 99, before == 10)
    assert not (after == 10).any()
    _others_identical(before, after, (10, 99))
    assert calls.count == {}, calls.count
    assert w.status.text() == "Object 10 is now object 99 (relabel cannot be undone with Undo).", w.status.text()
    assert sorted(w.controller.obj_ids) == sorted(set(range(1, 21)) - {10} | {99})
    assert w.controller.refined_keys() == {(3, 3)}
    w.undo_button.click()
    assert "Relabel and Merge can't be undone" in w.status.text(), w.status.text()


@pytest.mark.gui
def test_merge_after_a_correction_changes_no_other_object_and_tracks_nothing(make_napari_viewer, tmp_path,
                                                                             monkeypatch, qtbot):
    """Merge object 3 (the corrected one) into object 10 through the Merge into… dialog: its prompt asks for an
    existing id in one short line (it listed all 20 ids); every other object keeps exactly its pixels on the frames not
    segmented again, and on frames 0 and 3 everywhere but where object 3 or 10 was or is; nothing is propagated or
    replayed (only object 10's prompts on frames 0 and 3 are segmented) and the status says what was done. Before: the
    session was replayed and other objects' masks changed (1194 px away from the merged objects)."""
    from qtpy.QtWidgets import QInputDialog
    from widget_helpers import wait

    viewer, w, movie = _twenty_corrected(make_napari_viewer, tmp_path, monkeypatch, qtbot)
    before = np.array(w.labels_layer.data)
    calls = Calls(monkeypatch)
    asked = []

    def get_int(parent: Any, title: str, label: str, *args: Any) -> Tuple[int, bool]:
        asked.append(label)
        return 10, True  # the person types 10

    monkeypatch.setattr(QInputDialog, "getInt", staticmethod(get_int))
    w.objects.select_object(3)
    w.objects.merge_button.click()
    qtbot.waitUntil(lambda: not w.busy() and not w._deferred and "Merged" not in w.status.text(), timeout=120_000)
    wait(qtbot, w)
    assert asked == ["Merge object 3 into object (an existing id, e.g. 1):"], asked
    after = np.array(w.labels_layer.data)
    # other objects change only where the merged object was or is (on the frames segmented again, a neighbour's mask
    # that object 3 had covered shows where the merged mask leaves the pixel: the session's masks, as after a click)
    merged = np.isin(before, (3, 10)) | np.isin(after, (3, 10))
    np.testing.assert_array_equal(np.where(merged, 0, after), np.where(merged, 0, before))
    others = (before != after) & ~np.isin(after, (0, 3, 10)) & ~np.isin(before, (0, 3, 10))
    assert not others.any()
    for t in (1, 2, 4, 5):  # frames not segmented again: every other object exactly as it was
        _others_identical(before[t], after[t], (3, 10))
    assert not (after == 3).any() and all((after[t] == 10).any() for t in range(len(after)))
    for t in (1, 2, 4, 5):  # frames without prompts of object 3 keep its pixels, as object 10's
        np.testing.assert_array_equal(after[t] == 10, (before[t] == 10) | (before[t] == 3))
    assert calls.count.get("SegmentationController.propagate", 0) == 0, calls.count
    assert calls.count.get("SegmentationController.replay", 0) == 0, calls.count
    assert calls.count.get("VideoSession.add_prompt") == 2, calls.count  # object 10 on frames 0 and 3
    status = w.status.text()
    assert status.startswith("Done.") and ("Note: object 3 is part of object 10 now (merge cannot be undone with "
                                           "Undo); object 10's prompts on frame(s) 0, 3 were segmented again") in status, \
        status
    assert sorted(w.controller.obj_ids) == sorted(set(range(1, 21)) - {3})
    assert w.controller.refined_keys() == {(3, 10)}


@pytest.mark.gui
@pytest.mark.parametrize("edit", ["relabel", "merge"])
def test_the_object_id_follows_a_relabel_or_merge_of_the_current_object(make_napari_viewer, tmp_path, monkeypatch,
                                                                         qtbot, edit):
    """Row 2 picked (Object id 2), then Relabel to 7 or Merge into 1: the Object id becomes the object that holds 2's
    clicks and pixels now, so the next click adds to it. Before, it stayed 2 and the next click made object 2 again
    (found by the review)."""
    from qtpy.QtWidgets import QInputDialog

    from widget_helpers import click_cell, open_widget, small_movie, wait

    movie = small_movie(4, 5)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_cell(w.points_layer, movie, 1, frame=0)
    wait(qtbot, w)
    w.new_object_button.click()
    click_cell(w.points_layer, movie, 2, frame=0)
    wait(qtbot, w)
    target = 7 if edit == "relabel" else 1
    monkeypatch.setattr(QInputDialog, "getInt", staticmethod(lambda *a, **k: (target, True)))
    w.objects.select_object(2)
    assert w.object_spin.value() == 2
    (w.objects.relabel_button if edit == "relabel" else w.objects.merge_button).click()
    qtbot.waitUntil(lambda: not w.busy() and not w._deferred, timeout=120_000)
    wait(qtbot, w)
    assert w.object_spin.value() == target and w.objects.selected_object() == target
    click_cell(w.points_layer, movie, 3, frame=0)  # the next cell clicked adds to that object
    wait(qtbot, w)
    assert 2 not in w.controller.obj_ids and sorted(w.controller.obj_ids) == sorted({1, target})
