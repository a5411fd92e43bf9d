"""The segmentation widget's object relabel / merge, and its exports in a worker (and the worker helpers the widget's
runs and the Track all panel share: :func:`steps_worker`, :func:`let_go_when_finished`, :class:`ExportRun`).

A mixin of :class:`~._widget.SegmentationWidget` (split out to keep each file to one idea; the session file, Save /
Load session…, is :mod:`._session_files`). It uses the widget's ``state``, ``picker``, ``status`` and the run helpers
of :class:`~._runs.RunMixin`; relabel / merge run as edits (:mod:`._edit_runs`).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Tuple

import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import notification_manager, show_error
from qtpy.QtCore import QTimer

from ._colors import style_boxes, style_points
from ._edit_runs import EditRunMixin
from ._image_state import ImageState, PromptContent, capture, on_slice, restore, slice_key, step_on_slice
from ._runs import SUFFIXES, WorkerRun, with_suffix
from .export import Calibration, frame_table_steps, labels_tiff_steps


REASSIGNED = "Relabel and Merge can't be undone (the history starts after them)"  # Undo's words after them


class SessionActionsMixin(EditRunMixin):
    """Relabel / Merge objects (edits: :class:`~._edit_runs.EditRunMixin`) and the exports' worker runs of the
    segmentation widget (Save / Load session: :class:`~._session_files.SessionFilesMixin`)."""

    _export_run: Optional["ExportRun"] = None  # the last export run in a worker

    # ------------------------------------------------------------------ exports in a worker
    def export_in_worker(self, what: str, path: str) -> Any:
        """Write the labels ("labels", TIFF, every slice) or the measurement table ("table", CSV, the session acted
        on) to ``path`` in a worker thread, as the export buttons do; returns the worker (None when refused: the
        status line says why).

        Nothing that scales with the stack runs on napari's GUI thread: the frames are read and measured in the
        worker, the progress bar follows them, the widget is busy meanwhile (run and export buttons disabled; Cancel
        stops it) and the file appears whole or not at all (an earlier file is kept on failure or cancel). A name
        typed without the suffix gets it (".tif" or ".csv"). :meth:`export` does the same on the calling thread.
        """
        if what not in SUFFIXES:
            raise ValueError(f"what must be 'labels' or 'table', not {what!r}")
        if self.busy():
            self.status.setText(f"{self.busy_words()}, then export.")
            return None
        controller = self.controller
        if controller is None:
            self.status.setText("Nothing is segmented yet: click on an object first.")
            return None
        path = Path(with_suffix(str(path), what))
        where = "" if what == "labels" else self._elsewhere(controller.layout)
        steps = (export_labels_steps(controller, path, *self.labels_calibration()) if what == "labels" else
                 export_table_steps(controller, self.calibration(), path))  # the image's units, read here

        self._export_run = ExportRun(what, path, where)
        return self._start_worker_run(self._export_run, steps, self._on_export_step, self._on_export_finished,
                                      f"Exporting the {what} to {path.name}{where}…", self._export_buttons())

    def _export_buttons(self) -> Tuple[Any, ...]:
        """The buttons off while an export runs."""
        return self.export_labels_button, self.export_table_button

    def exporting(self) -> bool:
        """Whether the widget's worker is an export (:meth:`export_in_worker`), not a segmentation run."""
        return self._export_run is not None and self._export_run.owns(self.worker)

    def _on_export_step(self, step: tuple) -> None:
        try:
            kind, value, detail = self._export_run.follow(step, self.progress)
            if kind == "frame":
                self.progress.setValue(min(int(value) + 1, self.progress.maximum()))
                self.status.setText(f"Exporting the table: frame {value} measured ({detail} row(s) so far)…")
        except Exception as error:  # never let an exception escape a Qt slot
            self._export_run.fail(error)

    def _on_export_finished(self, worker: Any) -> None:
        run = self._export_run
        self._end_worker_run(worker, lambda: self._end_export(run), self._export_buttons())

    def _end_export(self, run: "ExportRun") -> None:
        """The progress bar full when ``run`` wrote its file, and the status saying how it ended."""
        if run.written:
            self.progress.setRange(0, 1)
            self.progress.setValue(1)
        self.status.setText(run.outcome())

    # ------------------------------------------------------------------ relabel and merge
    def _prompt_ids(self, state: ImageState) -> set:
        ids = set(state.points.features["obj_id"].tolist()) | set(state.boxes.features["obj_id"].tolist())
        return ids | (set(state.controller.obj_ids) if state.controller is not None else set())

    def relabel_object(self, obj_id: int, new_id: int, in_worker: bool = False) -> None:
        """Give object ``obj_id`` the free id ``new_id``: its clicks, boxes, seeded masks, labels and its object in the
        model's session (:meth:`SegmentationController.rename_steps`; not undoable). Nothing is segmented again: every
        mask stays as it was, the object's under its new id. in_worker: the labels are rewritten in a worker, the
        widget busy meanwhile (the Relabel… button); False: done when this returns (a script)."""
        state = self._reassign_checks(obj_id)
        if not 1 <= int(new_id) <= 65535 or int(new_id) in self._prompt_ids(state):
            raise ValueError(f"new_id must be a free object id in 1..65535; {new_id} is taken or out of range "
                             f"(objects: {sorted(self._prompt_ids(state))})")
        if int(new_id) in self.track_all.track_ids(state.image):  # the tracks share the masklets layer
            raise ValueError(f"new_id {new_id} is taken by a cell 'Track all cells' tracked; free ids: "
                             f"{self.track_all.free_ids_text(state.image)}")
        self._reassign(state, int(obj_id), int(new_id), f"Relabelling object {obj_id} as {new_id}",
                       f"Object {obj_id} is now object {new_id} (relabel cannot be undone with Undo).", in_worker,
                       merge=False)

    def merge_objects(self, obj_id: int, into: int, in_worker: bool = False) -> None:
        """Merge object ``obj_id`` into object ``into``: prompts, seeded masks and labels join it (not undoable); then
        the prompts of ``into`` on the frames where ``obj_id`` had some are segmented again (in a worker; nothing is
        tracked again and no other object changes: :meth:`SegmentationController.reassign_steps`). in_worker: the
        labels are rewritten in a worker too, the widget busy meanwhile (the Merge into… button); False: the labels
        are done when this returns (a script)."""
        state = self._reassign_checks(obj_id)
        if int(into) == int(obj_id) or int(into) not in self._prompt_ids(state):
            raise ValueError(f"into must be another existing object; {into} is not (objects: "
                             f"{sorted(self._prompt_ids(state))})")
        self._reassign(state, int(obj_id), int(into), f"Merging object {obj_id} into object {into}",
                       f"Merged object {obj_id} into object {into} (merge cannot be undone with Undo).", in_worker,
                       merge=True)

    def _reassign_checks(self, obj_id: int) -> ImageState:
        state = self._state
        if state is None or state.points is None or state.boxes is None:
            raise ValueError("add an image and segment objects first")
        if self.busy():
            raise ValueError("a run is in progress: wait for it (or Cancel) first")
        if int(obj_id) not in self._prompt_ids(state):
            raise ValueError(f"obj_id {obj_id} is not an object of this image (objects: "
                             f"{sorted(self._prompt_ids(state))})")
        return state

    def _reassign(self, state: ImageState, old: int, new: int, what: str, words: str, in_worker: bool = False,
                  merge: bool = True) -> None:
        """Prompts, session and labels of ``old`` go to ``new`` on the slice of the image's session (other slices'
        objects belong to their own sessions) and the status says ``words``; a merge (``merge``) then segments the
        prompts of ``new`` that changed, a relabel segments nothing (the session renamed the object). The prompts
        change here; the labels (every frame compared) in a worker when ``in_worker`` (:meth:`run_edit`, the status
        saying ``what`` meanwhile). A failure puts the prompts back: nothing changed."""
        controller = state.controller
        # checked before anything changes; earlier steps knew the old id: the history is dropped (Undo says why)
        steps = None if controller is None else (controller.reassign_steps if merge else controller.rename_steps)(
            old, new, REASSIGNED)
        before = capture(state)
        here = ((np.ones(len(state.points.data), bool), np.ones(len(state.boxes.data), bool)) if controller is None
                else on_slice(state, controller.layout, before))
        self._quiet += 1
        try:
            for layer, style, on in zip((state.points, state.boxes), (style_points, style_boxes), here):
                if not len(layer.data):
                    continue
                defaults = layer.feature_defaults
                features = layer.features.copy()
                features["obj_id"] = np.where((features["obj_id"].to_numpy(int) == old) & on, new,
                                              features["obj_id"].to_numpy(int))
                layer.features = features
                layer.feature_defaults = defaults
                style(layer)
        finally:
            self._quiet -= 1
        after = capture(state)
        if controller is None:
            self._reassigned(state, old, new, after, None, words)
            return

        def failed(error: BaseException) -> None:
            self._put_back_prompts(state, before)
            show_error(f"SAM 2: {error}")
            self.status.setText(f"Not done: {error} (nothing was changed).")

        self.run_edit(steps, what, lambda _: self._reassigned(state, old, new, after, controller, words, merge),
                      failed, in_worker)

    def _reassigned(self, state: ImageState, old: int, new: int, prompts: PromptContent, controller: Any, words: str,
                    rerun: bool = True) -> None:
        """The end of a relabel or merge of ``old`` on the GUI thread: the table and the masklets shown, the status
        saying ``words`` and, for a merge (``rerun``), the prompts (the layers' ``prompts`` after it) of
        ``controller``'s slice segmented as they are (the merged object's that changed: no replay, no tracking; a
        loaded session not re-made yet is re-made as Load session does).

        The re-run is of that image and slice whatever is shown when the edit ends: now when they are still the
        current image and its session, else when that image is picked again (as prompts edited during a run)."""
        state.hidden.discard(old)
        state.last_prompts = prompts
        if state.obj_id == old:  # the next click adds to the object that holds old's clicks and pixels now (it made
            self.set_object_id(state, new)  # old again)
        self._refresh_labels(state)
        self._refresh_objects()
        if controller is not None and rerun:  # the re-run is not undoable either: marked so as it starts (a failed
            if self._state is state and state.controller is controller:  # model load runs nothing)
                self.picker.when_ready(lambda: self._rerun_reassigned(state, controller))
            else:
                self._defer_reassigned(state, controller)
        self.status.setText(words)

    def _rerun_reassigned(self, state: ImageState, controller: Any) -> None:
        """Re-run the prompts of ``controller``'s slice of ``state`` after a merge (not undoable) when that image is
        still the current one once the model is ready; else when it is picked again."""
        if self._state is state:
            self._segment(controller.layout, baseline=REASSIGNED)
        else:
            self._defer_reassigned(state, controller)

    def _defer_reassigned(self, state: ImageState, controller: Any) -> None:
        """The re-run after a merge waits, as prompts edited during a run do (:meth:`_run_deferred`): on
        ``controller``'s slice of ``state``, its next step not undoable (its history is gone already)."""
        controller.start_history_after_next(REASSIGNED)
        layout = controller.layout
        step, key = step_on_slice(self.viewer.dims.current_step, layout.fixed), slice_key(layout)
        self._deferred = [e for e in self._deferred if not (e[0] is state and e[2] == key)] + [(state, step, key)]

    def _put_back_prompts(self, state: ImageState, content: PromptContent) -> None:
        """The clicks and boxes layers back to ``content`` (an edit that failed), not segmented again."""
        if state.points is None or state.boxes is None:
            return
        self._quiet += 1
        try:
            restore(state, content)
        finally:
            self._quiet -= 1

    def _on_relabel_requested(self, obj_id: int) -> None:
        self._ask_target(obj_id, merge=False)

    def _on_merge_requested(self, obj_id: int) -> None:
        self._ask_target(obj_id, merge=True)

    def _ask_target(self, obj_id: int, merge: bool) -> None:
        from qtpy.QtWidgets import QInputDialog

        state = self._state
        if state is None or state.points is None:
            return
        ids = sorted(self._prompt_ids(state) - {obj_id})
        if merge and not ids:
            self.status.setText(f"There is no other object to merge object {obj_id} into.")
            return
        # one line whatever the number of objects (listing every id made it wider than the screen at 80 objects)
        title, label = (("Merge object", f"Merge object {obj_id} into object (an existing id, e.g. {ids[0]}):")
                        if merge else ("Relabel object", f"New id for object {obj_id} (a free id):"))
        default = ids[0] if merge and ids else max(self._prompt_ids(state) | {0}) + 1
        value, ok = QInputDialog.getInt(self, title, label, default, 1, 65535)
        if not ok:
            return
        try:
            (self.merge_objects if merge else self.relabel_object)(obj_id, value, in_worker=True)
        except ValueError as error:
            show_error(f"SAM 2: {error}")
            self.status.setText(str(error))


class StepFailed(Exception):
    """A RuntimeError raised in a worker's steps (:func:`reported`), with its words; the RuntimeError is its cause."""


def reported(steps: Iterator[tuple]) -> Callable[[], Iterator[tuple]]:
    """A generator function yielding ``steps``, a RuntimeError raised in them raised again as :class:`StepFailed`:
    superqt's ``GeneratorWorker`` returns a RuntimeError from its work (it takes it for the generator's end), so
    neither ``errored`` nor ``finished`` would be emitted and the worker's owner would stay busy for good."""

    def work() -> Iterator[tuple]:
        try:
            yield from steps
        except RuntimeError as error:
            raise StepFailed(str(error) or type(error).__name__) from error

    return work


def steps_worker(steps: Iterator[tuple], on_step: Callable[[tuple], None], on_error: Callable[[Exception], None],
                 on_finished: Callable[[Any], None], words: Optional[Mapping[str, str]] = None) -> Any:
    """A napari worker (not started) running the generator ``steps`` in a thread: each step goes to ``on_step``, an
    error to ``on_error`` (not napari's event loop) and, at the end (done, failed or cancelled), ``on_finished(worker)``
    is called on the GUI thread. The widget's exports, edits and Add Tracks layer
    (:meth:`~._runs.RunMixin._start_worker_run`) and the Track all panel's runs and exports run this way.

    words: {words of the console's: the widget's} for the warnings of ``steps`` (e.g. the command line's option names
    -> the panel's control that sets them): each warning pops up with them put in its message (:func:`say_warning`);
    None: the warnings are left to napari's worker (some napari versions pop them up as they are, others drop them).

    A RuntimeError of ``steps`` (a blosc/zarr decode error, CUDA out of memory) reaches ``on_error`` as a
    :class:`StepFailed` with its words: superqt's worker would drop it without ``errored`` or ``finished``."""
    worker = thread_worker(reported(steps), ignore_errors=True)()  # errors go to on_error, not the event loop

    worker.yielded.connect(on_step)
    worker.errored.connect(on_error)
    if words:
        try:  # napari's relay of a warning as it is, where its worker has one connected: ours says it instead
            worker.warned.disconnect()
        except (TypeError, RuntimeError):  # none (napari's worker mixin is not initialised in every napari)
            pass
        worker.warned.connect(lambda args: say_warning(args, words))
    worker.finished.connect(lambda: on_finished(worker))
    let_go_when_finished(worker)
    return worker


def say_warning(args: tuple, words: Mapping[str, str]) -> None:
    """Pop up the warning a worker caught (``args``: :func:`warnings.showwarning`'s (message, category, filename,
    lineno, ...)) as napari's worker does, each key of ``words`` in its message replaced by its value, in order."""
    message, category, *rest = args
    text = str(message)
    for console, widget in words.items():
        text = text.replace(console, widget)
    if text != str(message):
        try:
            message = category(text)
        except TypeError:  # a warning class that takes other arguments: its words alone
            message = text
    notification_manager.receive_warning(message, category, *rest)


#: a napari worker's public signals (superqt's ``_finished``, which drops the worker from its running set, is not ours)
WORKER_SIGNALS = ("started", "yielded", "returned", "errored", "warned", "aborted", "paused", "resumed", "finished")


def let_go(worker: Any) -> None:
    """Disconnect every slot of ``worker``'s public signals (:data:`WORKER_SIGNALS`), ours and napari's task-status
    ones alike: the worker then keeps none of its callbacks, and so nothing they hold (a widget, its viewer, the worker
    itself). napari keeps every worker it made in its window's task list for good (its cancel button calls the
    worker's ``quit``), and a slot Qt holds (a lambda or a partial) is no Python reference: a slot that held the worker
    made a cycle through Qt that the garbage collector never frees; either kept the closed viewer, its layers and
    their data alive. Nothing when the worker's signals were deleted already."""
    signals = getattr(worker, "signals", None)
    for name in WORKER_SIGNALS:
        signal = getattr(signals, name, None)
        if signal is None:
            continue
        try:
            signal.disconnect()
        except (TypeError, RuntimeError):  # nothing connected to it; its Qt object deleted
            pass


def let_go_when_finished(worker: Any) -> None:
    """:func:`let_go` of ``worker`` once it has finished and every slot of its ``finished`` signal connected until
    then has run (a turn of the event loop later; connect this after them). Holds the worker weakly."""
    held = weakref.ref(worker)

    def after_the_end() -> None:
        alive = held()
        if alive is not None:
            let_go(alive)

    worker.finished.connect(lambda: QTimer.singleShot(0, after_the_end))


@dataclass
class ExportRun(WorkerRun):
    """One export running in a worker (the widget's or the Track all panel's): what, to where, and how it ended.

    The worker's steps are ("plan", count, "", None), then the writer's own, then ("written", count, path, None) once
    the file or folder is in place (:func:`~.export.frame_table_steps`,
    :func:`~.track_export.export_tracking_steps`)."""

    what: str
    path: Any
    where: str = ""  # which slice the export acted on, for the status line ("" when it says nothing)
    written: Optional[str] = None  # the path written, once it is in place
    failure = "export failed"

    def follow(self, step: tuple, progress: Any) -> Tuple[str, Any, Any]:
        """Follow one step on the ``progress`` bar (its range from the plan, full once written) and record a written
        result; returns (kind, value, detail) for the caller's own words on the other steps."""
        kind, value, detail, _ = step
        if kind == "plan":
            progress.setRange(0, max(int(value), 1))
            progress.setValue(0)
        elif kind == "written":
            self.written = str(detail)
            progress.setValue(progress.maximum())
        return kind, value, detail

    def outcome(self) -> str:
        """The status line at the end: written, failed, or cancelled; a file or folder that was not written whole is
        not there (an earlier one is kept)."""
        if self.written:
            return f"Wrote {self.written}{self.where}"
        if self.error is not None:
            return f"Export failed: {self.error}. Nothing was written (an earlier file is kept)."
        return f"Export cancelled: nothing was written to {self.path} (an earlier file is kept)."


def export_labels_steps(controller: Any, path: Path, axes: Optional[str] = None,
                        calibration: Optional[Calibration] = None) -> Iterator[tuple]:
    """Write ``controller``'s labels array (every slice, the masklets' shape) to ``path`` (TIFF), in a worker: its
    axis letters ``axes`` (e.g. "TYX", "TZYX"; None: none recorded) and the image's ``calibration``
    (:meth:`~._runs.RunMixin.labels_calibration`), as :func:`~.export.save_labels_tiff` writes them."""
    yield from labels_tiff_steps(controller.labels, path, axes, calibration)


def export_table_steps(controller: Any, calibration: Any, path: Path) -> Iterator[tuple]:
    """The measurement table of ``controller``'s session (its slice's frames, read one at a time) to ``path`` (CSV),
    in a worker: the rows of :meth:`SegmentationController.measurements`, with per-frame progress."""
    yield from frame_table_steps(controller.frame_table(), path, calibration)  # the rows measurements() gives
