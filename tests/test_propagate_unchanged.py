"""Propagate after correcting a few of many objects tracks only the objects that can change.

SAM 2 tracks each object from its own memory (its prompted frames, the frames before in the direction of travel and
their object pointers), so an object none of whose prompts changed since its last pass, tracked again from a frame
that pass went through, the same way, gets exactly the results it has. Before, Propagate re-tracked every object
(80 cells at 512 px, 3 corrected on a middle frame: 30.9 s for 4 frames). Now ``SegmentationController.plan`` leaves
such objects out (``PropagationPass.unchanged``) and the frames are composed from every object's newest result.

Each test runs the same work on two controllers, one as the widget makes it and one with ``skip_unchanged=False``
(every object tracked, as before), and compares the labels bit for bit. The sessions track objects one by one
(``batch_objects=False``, bit-identical to Meta's predictor): batched, an object's results depend on the batch it
rides in up to float rounding, whichever objects are re-tracked. The demo model runs for real; a spy that calls
through counts the objects each ``propagate`` call of the session is given."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pytest

from sam2_model import build_model
from sam2_model.evaluation import click_point
from sam2_model.synthetic import make_timelapse

from napari_sam2._runs import describe_plan
from napari_sam2.controller import SegmentationController
from napari_sam2.layout import StackLayout
from napari_sam2.prompts import FramePrompt

NUM = 12
FIXED = (3, 7)  # the cells corrected on frame 4


@pytest.fixture(scope="module")
def model() -> Any:
    return build_model("demo", device="cpu", image_size=128)


@pytest.fixture(scope="module")
def movie() -> Any:
    """A 7-frame 128 x 128 movie of 12 round cells (no divisions, none entering or leaving)."""
    return make_timelapse(num_frames=7, shape=(128, 128), num_cells=NUM, seed=4, divisions=False, enter_leave=False,
                          radius_fraction=0.045)



def add_click(prompts: Dict[Tuple[int, int], FramePrompt], plane: np.ndarray, frame: int, obj: int,
              positive: bool = True) -> None:
    """Add a click on the cell ``plane`` ((H, W) bool) of ``frame`` to object ``obj``'s prompt in ``prompts``
    (keyed (frame, obj); created at the first click): inside the cell (``click_point``), or, negative, on its right
    edge. Shared by this file's and test_click_many_objects' controller drivers."""
    if positive:
        xy = np.array(click_point(plane), np.float32)
    else:
        ys, xs = np.nonzero(plane)
        xy = np.array([xs.max(), ys[xs.argmax()]], np.float32)
    old = prompts.get((frame, obj))
    points = xy[None] if old is None else np.vstack([old.points, xy[None]])
    labels = np.array([int(positive)], np.int32) if old is None else np.append(old.labels, int(positive))
    prompts[(frame, obj)] = FramePrompt(frame, obj, points.astype(np.float32), labels.astype(np.int32))

class Run:
    """One controller driven as the widget drives it: every prompt so far sent before each propagation; the objects
    each of the session's ``propagate`` calls was given, recorded by a spy that calls through."""

    def __init__(self, model: Any, movie: Any, skip: bool, window: Optional[int] = None, **options: Any) -> None:
        self.movie = movie
        self.labels = np.zeros(movie.image.shape, np.uint32)
        self.controller = SegmentationController(model, movie.image, StackLayout(3, 0), self.labels,
                                                 session_options={"batch_objects": False, **options},
                                                 object_window=window)
        if not skip:
            self.controller.skip_unchanged = False  # every object tracked by every pass, as before
        self.prompts: Dict[Tuple[int, int], FramePrompt] = {}
        self.sent: List[List[int]] = []  # per call of session.propagate: the objects tracked

    def click(self, frame: int, cell: int, positive: bool = True) -> None:
        """A click inside cell ``cell`` (object ``cell``) on ``frame``; a negative one on the cell's right edge."""
        add_click(self.prompts, self.movie.labels[frame] == cell, frame, cell, positive)
        list(self.controller.apply_prompts(list(self.prompts.values())))
        self._spy()

    def _spy(self) -> None:
        session = self.controller.session
        if "propagate" in vars(session):
            return
        real = session.propagate

        def spy(*args: Any, obj_ids: Optional[Sequence[int]] = None, **kwargs: Any) -> Any:
            self.sent.append(list(session.obj_ids if obj_ids is None else obj_ids))
            return real(*args, obj_ids=obj_ids, **kwargs)

        session.propagate = spy

    def propagate(self, start: int, direction: str = "forward", max_frames: Optional[int] = None,
                  stop_after: Optional[int] = None) -> str:
        """Propagate (stopped, as Cancel does, after ``stop_after`` frames); returns the plan's words."""
        list(self.controller.apply_prompts(list(self.prompts.values())))
        words = describe_plan(self.controller.plan(start, direction, max_frames), start)
        self.sent.clear()
        steps = self.controller.propagate(start, direction, max_frames)
        if stop_after is None:
            list(steps)
        else:
            for done, _ in enumerate(steps, 1):
                if done == stop_after:
                    break
            steps.close()
        return words

    def tracked(self) -> List[int]:
        """The objects the model tracked in the last propagation (each once, in the order first sent)."""
        return list(dict.fromkeys(o for call in self.sent for o in call))


def both(model: Any, movie: Any, window: Optional[int] = None, **options: Any) -> Tuple[Run, Run]:
    """(skipping, full): every cell clicked on frame 0 and tracked forward over every frame (in ``window`` px object
    windows: ``WindowedSession``)."""
    runs = Run(model, movie, True, window, **options), Run(model, movie, False, window, **options)
    for run in runs:
        for cell in range(1, NUM + 1):
            run.click(0, cell)
        run.propagate(0)
    np.testing.assert_array_equal(runs[0].labels, runs[1].labels)
    return runs


def correct(runs: Sequence[Run], frame: int = 4, cells: Sequence[int] = FIXED) -> None:
    """An extra positive click on the first cell, a negative one on the others' edges, on ``frame``."""
    for run in runs:
        for k, cell in enumerate(cells):
            run.click(frame, cell, positive=k == 0)


@pytest.mark.parametrize("window", [None, 48], ids=["whole frames", "object windows"])
def test_correcting_two_of_twelve_objects_tracks_those_two_and_gives_the_full_runs_labels(model, movie, window):
    skip, full = both(model, movie, window)
    correct((skip, full))
    before = skip.labels.copy()
    words = skip.propagate(4)
    full.propagate(4)
    assert sorted(full.tracked()) == list(range(1, NUM + 1))
    assert sorted(skip.tracked()) == sorted(FIXED)  # before: all 12
    np.testing.assert_array_equal(skip.labels, full.labels)
    if window is None:
        assert not np.array_equal(before[5:], skip.labels[5:])  # the corrections did change the later frames
    np.testing.assert_array_equal(before[:4], skip.labels[:4])
    assert "forward: 2 objects tracked (10 unchanged since they were tracked this way keep their masks)" in words
    # nothing changed since: Propagate again tracks nothing and redraws the same labels
    skip.propagate(4)
    assert skip.tracked() == []
    np.testing.assert_array_equal(skip.labels, full.labels)


def _deleted(runs: Sequence[Run]) -> None:
    for run in runs:
        run.controller.remove_object(5)
        del run.prompts[(0, 5)]


def _cancelled_backward(runs: Sequence[Run]) -> None:
    for run in runs:
        run.propagate(6, "backward", stop_after=2)  # every object re-tracked backward on frames 6, 5, then Cancel


def _cut(runs: Sequence[Run]) -> None:
    for run in runs:
        run.propagate(1, "backward")
        run.propagate(0, max_frames=3)  # forward again, frames 0-3 only


def _undone(runs: Sequence[Run]) -> None:
    for run in runs:
        labels = run.labels.copy()
        run.propagate(2)
        run.controller.undo()
        np.testing.assert_array_equal(run.labels, labels)


def _corrected_earlier(runs: Sequence[Run]) -> None:
    correct(runs)
    for run in runs:
        run.propagate(4)  # the corrected two now start at frame 4: from frame 2 they are tracked again
    correct(runs, 2, (10,))


def _option(runs: Sequence[Run]) -> None:
    for run in runs:
        run.controller.set_correction_options(False, False)


def _relabelled(runs: Sequence[Run]) -> None:
    from napari_sam2.controller import finish

    for run in runs:
        finish(run.controller.rename_steps(6, 60, "relabel"))
        run.prompts = {(f, 60 if o == 6 else o): (FramePrompt(f, 60, p.points, p.labels) if o == 6 else p)
                       for (f, o), p in run.prompts.items()}


# (name, what happens after tracking forward from frame 0, (start, direction), the objects the model must track)
CASES = [
    ("backward after forward", correct, (4, "backward"), "all"),
    ("both ways", correct, (4, "both"), "all"),
    ("an earlier start than a corrected object's", _corrected_earlier, (2, "forward"), [3, 7, 10]),
    ("a later start", correct, (5, "forward"), [3, 7]),
    ("after a cancelled backward pass", _cancelled_backward, (4, "forward"), "all"),
    ("after a pass cut by max_frames", _cut, (2, "forward"), "all"),
    ("after Undo", _undone, (2, "forward"), []),
    ("after another correction option", _option, (2, "forward"), "all"),
    ("after a delete", _deleted, (2, "forward"), []),
    ("after a relabel", _relabelled, (2, "forward"), [60]),
]


@pytest.mark.parametrize("name, before, where, expected", CASES, ids=[c[0] for c in CASES])
def test_nothing_is_wrongly_left_out(model, movie, name, before, where, expected):
    skip, full = both(model, movie)
    before((skip, full))
    np.testing.assert_array_equal(skip.labels, full.labels)
    skip.propagate(*where)
    full.propagate(*where)
    np.testing.assert_array_equal(skip.labels, full.labels)
    everyone = sorted(skip.controller.obj_ids)
    assert sorted(skip.tracked()) == (everyone if expected == "all" else sorted(expected))


def test_backward_twice_leaves_out_the_unchanged_objects(model, movie):
    skip, full = both(model, movie)
    for run in (skip, full):
        run.propagate(6, "backward")
    correct((skip, full), 3)
    skip.propagate(3, "backward")
    full.propagate(3, "backward")
    assert sorted(skip.tracked()) == sorted(FIXED)
    np.testing.assert_array_equal(skip.labels, full.labels)


def test_the_option_that_forgets_memories_around_corrections_leaves_nothing_out(model, movie):
    skip, full = both(model, movie, clear_memory_around_corrections=True)
    correct((skip, full))
    skip.propagate(4)
    full.propagate(4)
    assert sorted(skip.tracked()) == list(range(1, NUM + 1))
    np.testing.assert_array_equal(skip.labels, full.labels)


def test_in_the_widget_propagate_after_a_correction_tracks_the_corrected_object_and_undo_restores_exactly(
        make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Three cells clicked and tracked, an extra click on cell 2 on frame 3, Propagate ▶ from frame 3: only object 2 is
    tracked (the status says the other two were unchanged), the labels are those every object tracked again gives,
    and Undo puts back every frame as it was before that Propagate."""
    from widget_helpers import click_and_propagate, click_cell, open_widget, small_movie, wait

    movie = small_movie(6, 5)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    click_and_propagate(w, qtbot, movie, (1, 2, 3))
    viewer.dims.set_current_step(0, 3)
    w.objects.select_object(2)
    qtbot.waitUntil(lambda: w.object_spin.value() == 2)
    click_cell(w.points_layer, movie, 2, frame=3)
    wait(qtbot, w)
    before = np.array(w.labels_layer.data)
    controller = w._state.controller
    session, sent = controller.session, []
    real = session.propagate

    def spy(*args: Any, obj_ids: Optional[Sequence[int]] = None, **kwargs: Any) -> Any:
        sent.append(list(session.obj_ids if obj_ids is None else obj_ids))
        return real(*args, obj_ids=obj_ids, **kwargs)

    monkeypatch.setattr(session, "propagate", spy)
    w.forward_button.click()
    wait(qtbot, w)
    status = w.status.text()
    assert status.startswith("Done"), status
    assert "forward: 1 object tracked (2 unchanged since they were tracked this way keep their masks)" in status
    assert sent == [[2]]  # before: [[1, 2, 3]]
    after = np.array(w.labels_layer.data)
    controller.skip_unchanged = False  # the same Propagate with every object tracked again gives the same labels
    list(controller.propagate(3))
    np.testing.assert_array_equal(np.asarray(w.labels_layer.data), after)
    controller.undo()  # that check's own step
    w.undo_button.click()
    wait(qtbot, w)
    np.testing.assert_array_equal(np.asarray(w.labels_layer.data), before)
