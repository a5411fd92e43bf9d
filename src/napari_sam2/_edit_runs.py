"""The segmentation widget's edits of the labels and the undo history (Delete object, Undo, Relabel, Merge) in a
worker: the layers held still while one runs, then its result or error handed on, on the GUI thread.

A mixin of :class:`~._widget.SegmentationWidget` (through :class:`~._session_actions.SessionActionsMixin`). It uses
the widget's ``progress``, ``status``, ``worker``, the current :class:`~._image_state.ImageState` and the worker-run
helpers of :class:`~._runs.RunMixin`. The edits themselves are the controller's Qt-free steps
(:meth:`~.controller.SegmentationController.remove_object_steps`, ``undo_steps``, ``reassign_steps``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple

from ._runs import WorkerRun
from .controller import finish


@dataclass
class HeldLayers:
    """Layers held still while a worker reads or writes them (an edit, Save session, a Track all export), and put back
    as they were after: a base of those runs (its fields keyword-only, so a run's own come first)."""

    frozen: list = field(default_factory=list, kw_only=True)  # (layer, its editable, its mode) of layers made read-only
    held: Any = field(default=None, kw_only=True)  # the Labels layer held in pan/zoom mode, and its mode before

    def freeze(self, layers: Sequence[Any], labels: Any = None) -> None:
        """Make ``layers`` (clicks, boxes; None skipped) not editable while it runs, and hold the Labels layer
        ``labels`` in pan/zoom mode (no brush, eraser or fill: napari would drop its own paint history if it were made
        not editable), remembering how they were."""
        for layer in layers:
            if layer is not None:
                self.frozen.append((layer, layer.editable, layer.mode))
                layer.editable = False
        if labels is not None:
            self.held = (labels, labels.mode)
            labels.mode = "pan_zoom"
            labels.events.mode.connect(self._keep_still)

    def _keep_still(self, event: Any = None) -> None:
        if self.held is not None and str(self.held[0].mode) != "pan_zoom":
            self.held[0].mode = "pan_zoom"  # a paint tool picked during the run: not yet

    def thaw(self) -> None:
        """The layers editable and in their mode as they were before the run."""
        frozen, self.frozen = self.frozen, []
        for layer, editable, mode in frozen:
            layer.editable = editable
            if editable and layer.mode != mode:
                layer.mode = mode
        if self.held is not None:
            labels, mode = self.held
            self.held = None
            labels.events.mode.disconnect(self._keep_still)
            if labels.editable:
                labels.mode = mode


@dataclass
class EditRun(WorkerRun, HeldLayers):
    """One edit running in a worker (:meth:`EditRunMixin.run_edit`): its words, what to do at the end on the GUI
    thread, and its result or error once it arrives (its error is said by ``failed``, not notified here)."""

    what: str
    done: Callable[[Any], None]
    failed: Callable[[BaseException], None]
    progress: Tuple[int, int, int]  # the progress bar's (minimum, maximum, value) before, put back after
    result: Any = None
    ended: bool = False  # the edit yielded its result: it is whole

    def take(self, step: tuple) -> None:
        self.result, self.ended = step[1], True

    def settle(self) -> None:
        """``done(result)`` when the edit is whole, else ``failed(error)`` (nothing was changed)."""
        if self.error is None and self.ended:
            self.done(self.result)
        else:
            self.failed(self.error or RuntimeError(f"{self.what} was stopped before it began"))


class EditRunMixin:
    """Runs the widget's edits of the labels and the undo history, in a worker (the buttons) or on the calling thread
    (a script's call)."""

    _edit_run: Optional[EditRun] = None  # the edit running in a worker (Delete object, Undo, Relabel, Merge)

    def run_edit(self, steps: Iterator[tuple], what: str, done: Callable[[Any], None],
                 failed: Callable[[BaseException], None], in_worker: bool = True) -> Any:
        """Run an edit of the labels and the undo history (a controller's ``remove_object_steps``, ``undo_steps``,
        ``reassign_steps``: one ("done", result) step once whole, nothing changed when it fails), then ``done(result)``
        on the GUI thread, or ``failed(error)``.

        in_worker (the buttons): in a worker thread, so nothing that scales with the stack (comparing, compressing,
        checksumming every frame) runs on napari's GUI thread; returns the worker. The widget is busy meanwhile (the run
        and edit buttons refuse, Save session too), with no Cancel (an edit is whole or not done) and the status saying
        ``what``; the current image's clicks and boxes layers cannot be edited and its masklets layer stays in pan/zoom
        mode until it ends (a click or brush stroke then would be undone by a failed edit or overwritten by the
        worker), all put back as they were after it. False (a script's call): on the calling thread, done when this
        returns; the error is raised after ``failed``. Returns None then."""
        if not in_worker:
            try:
                result = finish(steps)
            except Exception as error:
                failed(error)
                raise
            done(result)
            return None
        edit = EditRun(what, done, failed, (self.progress.minimum(), self.progress.maximum(), self.progress.value()))
        state = self._state
        if state is not None:
            edit.freeze((state.points, state.boxes), state.labels)
        self._edit_run = edit  # before the widget is made busy: Cancel stays off (an edit is whole or not done)
        return self._start_worker_run(edit, steps, edit.take, self._on_edit_finished, f"{what}…")

    def _on_edit_finished(self, worker: Any) -> None:
        """The edit's worker ended: its layers as they were, the progress bar as it was, ``done`` or ``failed`` on this
        (the GUI) thread, then the prompts edited meanwhile are segmented (:meth:`~._runs.RunMixin._end_worker_run`);
        once the widget's window is gone, only the layers and the worker are let go."""
        edit = self._edit_run
        if edit is None or not edit.owns(worker):
            if self.worker is worker:
                self.worker = None
            return
        self._edit_run = None
        edit.thaw()  # first: the layers outlive the widget's window
        self._end_worker_run(worker, lambda: self._end_edit(edit))

    def _end_edit(self, edit: EditRun) -> None:
        low, high, value = edit.progress
        self.progress.setRange(low, high)
        self.progress.setValue(value)
        edit.settle()
