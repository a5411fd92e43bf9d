"""The segmentation widget's session file: Save session… and Load session… (its weights made ready in the model
picker's worker first).

A mixin of :class:`~._widget.SegmentationWidget` (split out of :mod:`._session_actions` to keep each file to one idea).
It uses the widget's ``state``, ``picker``, ``axes``, option check boxes, ``status``, the run helpers of
:class:`~._runs.RunMixin` and the edit in progress of :class:`~._edit_runs.EditRunMixin`. The file format lives in
:mod:`.session_file` (Qt-free).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Generator, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from sam2_model.checkpoints import CACHE_ENV, official

from ._image_state import (
    AxisChoice, ImageState, PromptContent, boxes_content, capture, channel_axis_of, clear_masklets, masklets,
    points_content, restore, slice_key, prompts_in_data, spatial_ndim, step_on_slice,
)
from ._edit_runs import HeldLayers
from ._model_choice import CACHED, LOCAL, WEIGHT_CHOICES, ModelChoice
from ._session_actions import ExportRun
from ._track_ids import state_controllers
from .labels_writer import RunJournal
from .prompts import FramePrompt, collect_prompts
from .session_file import SUFFIX, Fixed, SessionRecord, drain, read_session, session_path, write_session_steps

EDIT_IN_PROGRESS = "an edit (Delete object, Undo, Relabel or Merge) is in progress: save when it is done"


class SessionFilesMixin:
    """Save session… and Load session… of the segmentation widget (the session file: :mod:`.session_file`)."""

    _loaded_labels: Optional["LoadedLabels"] = None  # the masklets of the last load, put back slice by slice

    # ------------------------------------------------------------------ save
    def session_record(self) -> SessionRecord:
        """The current image's prompts (in the order they were made), options, model and axis choices as a
        :class:`SessionRecord`, with the seeded masks of every slice's session (each z of a TZYX image keeps its own),
        the prompts each session took as corrections of a tracked mask (:meth:`SegmentationController.
        refined_keys`) and the masklets of every slice with a session, as they are now (tracked, corrected, painted by
        hand: :func:`kept_labels`, copies)."""
        record, sources = self._record_to_save()
        if sources is not None:
            record.labels = drain(labels_steps(sources, copy=True))
        return record

    def _record_to_save(self) -> Tuple[SessionRecord, Optional[List["LabelsSource"]]]:
        """What :meth:`session_record` reads on the GUI thread (the layers, the sessions, the options): the record
        without its masklets, and where they are (:func:`labels_sources`; None when the image has no masklets layer),
        to be read by :func:`labels_steps` (in a worker: it reads every frame). ValueError when there is nothing to
        save or an edit is in progress."""
        state = self._state
        if state is None or state.points is None or state.boxes is None:
            raise ValueError("there is no image with prompts to save: add an image and click on an object first")
        if self._edit_run is not None:
            raise ValueError(EDIT_IN_PROGRESS)
        image, ndim = state.image, spatial_ndim(state.image)
        coords, positive, obj_ids, rectangles, box_ids = prompts_in_data(state)
        masks, slice_masks = seeded_masks(state)
        if not len(coords) and not rectangles and not masks and not slice_masks:
            raise ValueError("there is nothing to save yet: click on an object (or draw a box) first")
        choice = self.picker.choice()
        record = SessionRecord(
            tuple(image.data.shape), coords, positive, obj_ids,
            np.asarray(rectangles).reshape(len(rectangles), 4, ndim), box_ids, masks,
            {"corrections_as_conditioning": self.corrections_check.isChecked(),
             "clear_memory_around_corrections": self.forget_check.isChecked(),
             "smooth": self.smoothing().sigma, "invert": self.invert_check.isChecked(),
             "object_window": self.window_combo.currentText()},
            {"name": choice.name, "weights": choice.weights, "image_size": choice.image_size, "path": choice.path},
            asdict(self.axes.choice()), slice_masks, refined_keys(state), None,
        )
        has_labels = state.labels is not None and state.labels in self.viewer.layers
        return record, (labels_sources(state) if has_labels else None)

    def save_session(self, path: str) -> Path:
        """Write the current image's session to ``path`` (``.sam2.npz`` added when missing) on the calling thread (a
        script's call; the button saves in a worker: :meth:`save_session_in_worker`); returns the path written."""
        record, sources = self._record_to_save()
        written = drain(save_steps(path, record, sources))
        self.status.setText(f"Saved the session to {written} (prompts, options and masklets).")
        return written

    def save_session_in_worker(self, path: str) -> Any:
        """Save session… as the button does: the prompts, options and model choice are read here (the GUI thread: they
        are small), the masklets read and the file written in a worker thread (:func:`save_steps`: every frame is read,
        the planes holding a label compressed one at a time), so napari stays responsive on a large stack. Returns the
        worker; None when refused (a run or an edit in progress: the status line says so).

        Meanwhile the widget is busy (the run buttons wait, clicks made are segmented after; Save / Load session… and
        the exports are off; *Cancel* stops the save), the progress bar follows the frames read then the planes
        written, and the image's masklets layer is held in pan/zoom mode (no brush, eraser or fill until the save ends,
        as during an edit): the file holds the masklets as they were when Save was pressed. The file appears whole or
        not at all: a failed or cancelled save writes nothing (an earlier file of that name is kept). Nothing to save,
        or a folder that does not exist: ValueError, before anything starts."""
        if self.busy():
            self.status.setText(f"Not saved: {self.busy_words()[6:]}, then save.")
            return None
        record, sources = self._record_to_save()
        target = session_path(path)  # a folder that does not exist: refused now, not in the worker
        run = SaveRun("session", target)
        run.steps = save_steps(target, record, sources)
        state = self._state
        run.freeze((), state.labels if sources is not None else None)
        self._export_run = run  # an export's run: Cancel says nothing is written
        return self._start_worker_run(run, run.steps, self._on_save_step, self._on_save_finished,
                                      f"Saving the session to {target.name}…", self._save_buttons())

    def _save_buttons(self) -> Tuple[Any, ...]:
        """The buttons off while a save runs (the exports' too: one file at a time)."""
        return (self.save_session_button, self.load_session_button, self.export_labels_button,
                self.export_table_button)

    def _on_save_step(self, step: tuple) -> None:
        run = self._export_run
        try:
            kind, value, detail = run.follow(step, self.progress)
            if kind in ("read", "wrote"):
                self.progress.setValue(min(int(value), self.progress.maximum()))
            if kind == "read":
                self.status.setText(f"Saving the session to {run.path.name}: masklets of frame {value} of {detail} "
                                    "read…")
            elif kind == "wrote":
                self.status.setText(f"Saving the session to {run.path.name}: {value} of {detail} masklet plane(s) "
                                    "written…")
        except Exception as error:  # never let an exception escape a Qt slot
            run.fail(error)

    def _on_save_finished(self, worker: Any) -> None:
        """The save's worker ended (written, failed or cancelled): its steps closed here (a cancelled save's temporary
        file removed now, not when the generator is collected), the masklets layer's mode as it was, the status saying
        how it ended."""
        run = self._export_run
        if not isinstance(run, SaveRun) or not run.owns(worker):
            if self.worker is worker:
                self.worker = None
            return
        if run.steps is not None:
            run.steps.close()
        run.thaw()  # first: the layers outlive the widget's window
        self._end_worker_run(worker, lambda: self._end_export(run), self._save_buttons())

    def _on_save_session(self) -> None:
        if self._edit_run is not None:  # the prompt layers show the edit, the session not yet: a save would mix them
            self.status.setText(f"Not saved: {EDIT_IN_PROGRESS}.")
            return
        if self.busy():  # said before the file dialog, not after the file was chosen
            self.status.setText(f"Not saved: {self.busy_words()[6:]}, then save.")
            return
        self._session_file_dialog("save", "Save SAM 2 session", f"SAM 2 session (*{SUFFIX})",
                                  self.save_session_in_worker, "Not saved")

    def _session_file_dialog(self, mode: str, title: str, name_filter: str, action: Callable[[str], object],
                             failed: str) -> None:
        """Ask for a file ("save" or "open" dialog) and run ``action(path)``; an error is shown and put in the
        status line after ``failed``."""
        from qtpy.QtWidgets import QFileDialog

        ask = QFileDialog.getSaveFileName if mode == "save" else QFileDialog.getOpenFileName
        path, _ = ask(self, title, "", name_filter)
        if path:
            try:
                action(path)
            except Exception as error:
                show_error(f"SAM 2: {error}")
                self.status.setText(f"{failed}: {error}")

    # ------------------------------------------------------------------ load
    def load_session(self, path: str, confirm: Optional[Callable[[str], bool]] = None) -> bool:
        """Restore a saved session on the current image: prompt layers, options, model and axis choices; then
        re-run the prompts in a fresh session, in the order they were made (features are recomputed; the image's
        masklets are cleared): clicks one at a time, and a session with corrections (clicks that corrected a mask
        tracking had made) tracked both ways, corrected, and tracked both ways again from the last correction
        (:meth:`SegmentationController.replay`). That re-run makes the model's memory; once a slice's re-run is done,
        the masklets the file keeps for that slice are put back exactly, every frame of it at once (a re-run
        cancelled or failed puts nothing back: they wait for the re-run to complete at the next run, as long as the
        clicks and boxes are still the loaded ones; :meth:`_loaded_replay`). The undo history starts after that
        re-run (Undo cannot bring back what the load replaced, and says so).

        confirm: asked (with the question, in words) before work on the image is replaced: objects in its sessions or
        prompt layers, or masks in its masklets (the Load session… button asks the user, :meth:`_confirm_replace`); a
        False answer loads nothing and changes nothing. None: not asked (scripts).

        Everything that can be checked at once is checked before anything changes: a missing, corrupt or foreign file,
        a value the widget could not have saved (a click off the image, a bad id, input size or option:
        :meth:`SessionRecord.check_values`), an image of another shape, masklets whose planes are not the image's
        frames, an unknown model or weights choice is a ValueError naming the file and the field, and the widget
        stays as it was.

        Weights that take time are made ready after the question, in the model picker's worker, before anything
        changes (:meth:`~._model_picker.ModelPicker.fetch_weights`): an official model not in this computer's cache is
        downloaded (the picker's progress bar and its Cancel download), a fine-tuned weights file is read and
        identified (a file cut short, not a checkpoint or of no known model is refused). The widget is busy meanwhile
        (runs wait; the picker's Model and Weights menus are held). Then the load happens as with weights at hand, or,
        if the download failed (offline: the status names the URL, the cache path and ``NAPARI_SAM2_CACHE``), was
        cancelled or the file is refused, nothing has changed and the status line says why. The load is abandoned (the
        status says so) when the image was removed or another image picked meanwhile; when the image's clicks or boxes
        changed meanwhile, ``confirm`` is asked again with the question as it is then (the answer given was about the
        work there was). Embedded, random and cached official weights need no worker: the load happens before this
        returns. A session whose fine-tuned weights file is gone loads with the model chosen now, and says so.

        Returns False when ``confirm`` said No (nothing changed); True when the session is loaded or its load started
        (weights fetched in a worker). Scripts wait for ``widget.busy()`` to turn False (napari's event loop running):
        then the prompts are re-run and the saved masklets (or, from a file that keeps none, the re-run's masks) are in
        the masklets layer, or the load was refused or abandoned and
        ``widget.status`` says why ("Not loaded…"); prompts that could not be restored (negative clicks of an object
        with nothing else to correct) are named in the status after "Note:".
        """
        record = read_session(path)
        state = self._state
        if state is None:
            raise ValueError("add and pick the image the session was made on first")
        if self.busy():
            raise ValueError("a run or a model load is in progress: wait for it (or Cancel), then load")
        record.check_image(state.image.data.shape)
        try:
            record.check_labels_fit(frame_shape(state.image, record.axes))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        model = record.model
        names = [self.model_combo.itemText(i) for i in range(self.model_combo.count())]
        if model.get("name") not in names or model.get("weights") not in WEIGHT_CHOICES:
            raise ValueError(f"the session's model {model.get('name')!r} with weights {model.get('weights')!r} is "
                             f"not one of this napari-sam2's models {names} / weights {list(WEIGHT_CHOICES)}")
        name = Path(path).name
        # fine-tuned weights moved or deleted: the prompts still load, with the model chosen now (said below)
        weights_gone = model["weights"] == LOCAL and not (model.get("path") and Path(model["path"]).is_file())
        choice = None if weights_gone else _session_choice(model, name)  # reads no file
        question = self._replace_question(state)
        if confirm is not None and question and not confirm(question):
            self.status.setText(f"Not loaded: {name} (the objects on '{state.image.name}' are kept).")
            return False
        load = SessionLoad(state, record, name, confirm, _prompts_now(state), weights_gone)
        if choice is None or (choice.weights != LOCAL and not choice.needs_download()):
            self._apply_session(load, None)  # nothing to fetch: loaded now
            return True
        # after the question (a No reads and downloads nothing), before anything changes
        self.picker.fetch_weights(choice, lambda preset, error, cancelled: self._on_session_weights(
            load, choice, preset, error, cancelled))
        what = (f"reading its weights file {choice.path}" if choice.weights == LOCAL else
                f"downloading the weights of {choice.name} (Cancel download stops it)")
        self.status.setText(f"Loading {name}: {what} first; nothing changes until they are ready…")
        return True

    def _on_session_weights(self, load: "SessionLoad", choice: ModelChoice, preset: Optional[str], error: str,
                            cancelled: bool) -> None:
        """The session's weights were fetched in the picker's worker (:meth:`load_session`), on the GUI thread: load
        the session now, or say why not (refused, cancelled, abandoned: nothing changed; the prompts edited meanwhile
        are segmented then)."""
        if not self._attached:  # the widget left the window meanwhile: nothing to load onto
            return
        state, name = load.state, load.name
        why = ""
        if cancelled:
            why = (f"Not loaded (nothing changed): the download of {choice.name}'s weights for {name} was cancelled"
                   + ("." if error else " (the file had arrived whole and is kept in the cache: load the session again "
                                        "to use it)."))
        elif error:
            why = f"Not loaded (nothing changed): {_cannot_load(name, choice, error)}"
            show_error(f"SAM 2: {why}")
        elif state is not self._state:
            what = ("removed" if not any(s is state for s in self.states.values()) else
                    f"no longer the image picked ('{self.image_combo.currentText()}' is)")
            why = (f"Not loaded: {name} was for the image '{state.image.name}', which was {what} while the session's "
                   "weights were made ready; pick that image and load the session again.")
            show_info(f"SAM 2: {why}")  # a run of clicks made meanwhile may take the status line
        elif self.busy():  # another tool's run started meanwhile (Track all cells)
            why = (f"Not loaded (nothing changed): a run started while the weights of {name} were made ready; load "
                   "the session again once it is done.")
        else:
            try:
                load.record.check_image(state.image.data.shape)  # its data may have been replaced meanwhile
            except ValueError as problem:
                why = f"Not loaded (nothing changed): {problem}"
        if not why and load.confirm is not None and _prompts_now(state) != load.prompts:
            question = self._replace_question(state)  # the clicks changed since the answer: ask about them
            if question and not load.confirm(question):
                why = f"Not loaded: {name} (the objects on '{state.image.name}' are kept)."
        if why:
            self.status.setText(why)
            self._after_run()  # the prompts edited meanwhile are segmented now (they waited)
            return
        self._apply_session(load, preset)

    def _apply_session(self, load: "SessionLoad", preset: Optional[str]) -> None:
        """Put the checked session ``load`` on its image (the current one): a fresh session, its options, model (the
        local weights file known to hold ``preset``), axes and prompt layers, then its prompts re-run once the model is
        ready (:meth:`_rerun_loaded`)."""
        state, record, name = load.state, load.record, load.name
        model, weights_gone = record.model, load.weights_gone
        axes = AxisChoice(**{k: record.axes[k] for k in ("frame_axis", "channel_axis", "channel") if k in record.axes})
        # the load replaces the prompts edited meanwhile and re-runs the session's once, with its own model
        self._deferred = [e for e in self._deferred if e[0] is not state]
        self._model_rerun_due = False
        state.controller, state.hidden, state.last_prompts = None, set(), None  # a fresh session
        state.sessions.clear()  # every slice's
        if state.labels is not None and state.labels in self.viewer.layers:
            clear_masklets(state.labels)
        self._refresh_objects()
        options = record.options
        self.corrections_check.setChecked(bool(options.get("corrections_as_conditioning", True)))
        self.forget_check.setChecked(bool(options.get("clear_memory_around_corrections", False)))
        self.smooth_spin.set_choice(float(options.get("smooth", 0.0)))  # the px run ("auto"'s too); before: 0
        self.invert_check.setChecked(bool(options.get("invert", False)))  # sessions saved before inversion: off
        window = str(options.get("object_window", "off"))  # sessions saved before object windows: whole frames
        self.window_combo.setCurrentText(window if self.window_combo.findText(window) >= 0 else "off")
        if not weights_gone:
            self.model_combo.setCurrentText(model["name"])
            if model["weights"] == LOCAL:
                self.picker.use_checkpoint_file(model["path"], str(preset))  # identified in the picker's worker
            else:
                self.checkpoint_combo.setCurrentText(model["weights"])
            self.size_spin.setValue(int(model.get("image_size") or 0))
        state.axes = axes
        self.axes.show_for(state.image, axes)
        self._ensure_prompt_layers()
        self._quiet += 1
        try:
            restore(state, PromptContent(record.points, record.positive, record.point_ids,
                                         tuple(record.boxes), record.box_ids))
        finally:
            self._quiet -= 1
        state.last_prompts = capture(state)
        self._loaded_labels = (None if record.labels is None else
                               LoadedLabels(state, _prompts_now(state), name,
                                            {fixed: dict(planes) for fixed, planes in record.labels.items()}))
        ids = (set(record.point_ids.tolist()) | set(record.box_ids.tolist()) | {o for _, o in record.masks}
               | {o for sliced in record.slice_masks.values() for _, o in sliced})
        self.object_spin.setValue(max(ids | {0}) + 1)
        if weights_gone:
            show_warning(f"SAM 2: the session's weights file {model.get('path')} is not there: its prompts are re-run "
                         f"with the model chosen now ({self.model_combo.currentText()}, "
                         f"{self.checkpoint_combo.currentText()}); put the file back and load the session again to "
                         "use those weights.")
        corrections = any(record.refined.values()) or not record.positive.all()  # negative clicks: perhaps
        self.status.setText(f"Loaded {name}: {len(ids)} object(s); re-running their prompts"
                            + (" (with corrections: tracking first)…" if corrections else "…")
                            + (" (with the model chosen now: the session's weights file is missing)"
                               if weights_gone else ""))
        self.picker.when_ready(lambda: self._rerun_loaded(state, record, name))

    def _replace_question(self, state: ImageState) -> str:
        """The question to ask before Load session… replaces the work on ``state``'s image; "" when there is none
        (no objects in its sessions or prompt layers, no masks in its masklets)."""
        ids = set(state.points.features["obj_id"].tolist()) if state.points is not None else set()
        ids |= set(state.boxes.features["obj_id"].tolist()) if state.boxes is not None else set()
        for controller in state_controllers(state):
            ids |= set(controller.obj_ids)
        masks = bool(ids) or (state.labels is not None and state.labels in self.viewer.layers
                              and bool(np.any(state.labels.data)))  # scanned only without objects
        if not masks:
            return ""
        what = f"the {len(ids)} object(s)" if ids else "the masks"
        return (f"Replace {what} on '{state.image.name}' with the session's? Their masks are discarded "
                "(Save session… keeps them).")

    def _confirm_replace(self, question: str) -> bool:
        """Ask the user ``question`` (Yes / Cancel); True for Yes."""
        from qtpy.QtWidgets import QMessageBox

        answer = QMessageBox.question(self, "Load SAM 2 session", question,
                                      QMessageBox.Yes | QMessageBox.Cancel, QMessageBox.Cancel)
        return answer == QMessageBox.Yes

    def _rerun_loaded(self, state: ImageState, record: SessionRecord, name: str = "the file") -> None:
        """Give every slice of the record its session back with its seeded masks, segment the slice shown now and
        the other slices with masks or clicks after it (one run each, as prompts edited during a run), each run
        re-making its session from the prompts in the order they were made (:meth:`_loaded_replay`: each run puts the
        slice's saved masklets back when its re-run is done). A slice whose masklets the file keeps but that no run
        re-makes (its session had no prompts left: masks painted by hand) gets them back here, at once.

        Only slices the record holds something on get a session: the slice shown gets none when the record has
        nothing there, so the session re-run last (a saved slice) is the one "last worked on" that Propagate, Undo
        and the exports act on (they name its slice), wherever the slider is; the slider is left where the user put
        it."""
        if state is not self._state:
            return
        try:
            shown = self._layout(state.image)
            here = {**record.masks, **record.slice_masks.get(tuple(shown.fixed), {})}
            slices = {fixed: masks for fixed, masks in record.slice_masks.items() if fixed != tuple(shown.fixed)}
            others = sorted((set(slices) | _clicked_slices(record, shown.fixed)) - {tuple(shown.fixed)})
            fresh = (f"the history starts at the session loaded from {name} (what it replaced cannot be brought "
                     "back)")
            for fixed in others:  # each gets its session now (its run waits): the replay is set on it
                layout = self.axes.layout(state.image, step_on_slice(self.viewer.dims.current_step, fixed))
                controller = self.ensure_controller(layout)
                controller.mask_prompts = _mask_prompts(slices.get(fixed, {}))
                controller.start_history_after_next(fresh)
                controller.load_replay = set(record.refined.get(fixed, ()))
            segment_shown = bool(here) or bool(self.prompts(shown))
            if segment_shown:  # last: a slice with prompts shown stays the session acted on
                controller = self.ensure_controller(shown)
                controller.mask_prompts = _mask_prompts(here)
                controller.start_history_after_next(fresh)
                controller.load_replay = set(record.refined.get(tuple(shown.fixed), ()))
        except Exception as error:
            show_error(f"SAM 2: {error}")
            return
        try:  # the slices no run re-makes get their masklets now (the runs still start if that fails)
            self._put_back_now(state, set(others) | ({tuple(shown.fixed)} if segment_shown else set()))
        except Exception as error:
            show_error(f"SAM 2: the saved masklets could not be put back: {error}")
        for fixed in others:  # segmented after the slice shown, one run each
            step = step_on_slice(self.viewer.dims.current_step, fixed)
            self._deferred.append((state, step, slice_key(self.axes.layout(state.image, step))))
        if segment_shown:
            self._segment(shown)
        if not self.busy():  # nothing to segment on the slice shown: the other slices' runs start now
            self._run_deferred()

    def _loaded_replay(self, state: ImageState, controller: Any) -> Optional[Iterator[tuple]]:
        """The steps that re-make ``controller``'s session of a loaded session file (its prompts on that slice, in
        the order they were made: :meth:`SegmentationController.replay`), once; None when no load is due there (a
        plain segmentation; a replay cancelled or failed part-way stays due, for the next run). The masklets the load
        keeps for that slice are put back once the replay is done (:meth:`_replay_then_labels`), while the image's
        clicks and boxes are still those the load put there (changed since: they are dropped, not put back). Called by
        :meth:`~._runs.RunMixin._segment` and ``_propagate`` on the GUI thread (it reads the layers)."""
        refined = controller.load_replay
        if refined is None:
            return None
        items = self._prompts_in_order(state, controller.layout)  # a box across frames: ValueError, the replay kept
        replay = controller.replay(items, refined, tag=self._before(state))  # it clears load_replay once it is done
        load, fixed = self._loaded_labels, tuple(sorted(controller.layout.fixed))
        if load is None or load.state is not state or fixed not in load.slices:
            return replay
        if _prompts_now(state) != load.prompts:  # the clicks changed since the load: its masklets are not theirs
            self._loaded_labels = None
            show_info(f"SAM 2: the masklets saved in {load.name} are not put back: the clicks or boxes changed since "
                      "the load was cancelled (the masks are those of the prompts as they are now).")
            return replay
        return self._replay_then_labels(replay, controller, load, fixed)

    def _replay_then_labels(self, replay: Iterator[tuple], controller: Any, load: "LoadedLabels",
                            fixed: Fixed) -> Iterator[tuple]:
        """The steps of ``replay``, then the masklets ``load`` keeps for the slice ``fixed`` put back on every frame of
        ``controller``'s slice at once (:func:`put_back_labels`, on the worker's thread; all or nothing) and a
        ("labels", frames written, object ids, None) step that redraws them. Cancelled or failed during the replay,
        nothing is put back and they stay due (the replay stays due too); a Cancel adds a note saying so. A failure of
        the put-back itself (all or nothing) leaves the replay's masks and fails the run (the replay is done by then:
        load the session again to have them). Stopped because the image was removed, the note says they were not put
        back (there is nothing left to segment)."""
        written = False
        try:
            yield from replay
            frames = put_back_labels(controller.labels, controller.layout, controller.num_frames, load.slices[fixed])
            written = True
            load.slices.pop(fixed, None)
            yield "labels", len(frames), controller.obj_ids, None
        except GeneratorExit:  # closed on the GUI thread once the cancelled run's worker ended
            if not written:
                note = (f"the masklets saved in {load.name} were not put back (the image was removed)."
                        if load.state.image not in self.viewer.layers else
                        f"the masklets saved in {load.name} are put back once its prompts are re-run whole: press "
                        "'Segment current frame' (or load the session again).")
                self._run_note = f"{self._run_note} {note}".strip()
            raise

    def _put_back_now(self, state: ImageState, rerun: Set[Fixed]) -> None:
        """Put back, on the GUI thread, the loaded masklets of the slices no run of the load re-makes (``rerun``: those
        it does): a slice that had a session but whose prompts are gone (masks painted by hand, say)."""
        load = self._loaded_labels
        if load is None or load.state is not state or state.labels is None:
            return
        written = []
        try:
            for fixed in sorted(set(load.slices) - rerun):
                layout = self.axes.layout(state.image, step_on_slice(self.viewer.dims.current_step, fixed))
                array = masklets(state.labels, state.image, layout)
                if array is not None and tuple(layout.fixed) == fixed:  # a slice of these axes
                    written += put_back_labels(array, layout, layout.num_frames(state.image.data.shape),
                                               load.slices[fixed])
                    load.slices.pop(fixed)  # once written whole (a failed write keeps them due)
        finally:
            if written:  # the slices written before a failure are shown too
                state.labels.refresh()

    def _prompts_in_order(self, state: ImageState, layout: Any) -> List[FramePrompt]:
        """The boxes, then the clicks of ``state``'s prompt layers on the slice of ``layout``, one per
        :class:`FramePrompt` (a click: its point and label), in the layers' order (the order they were made)."""
        coords, positive, obj_ids, rectangles, box_ids = prompts_in_data(state)
        nothing = np.zeros((0, coords.shape[1]))
        items: List[FramePrompt] = []
        for corners, obj in zip(rectangles, box_ids):  # each on its own: one FramePrompt a box, off-slice ones dropped
            items += collect_prompts(nothing, [], [], [corners], [obj], layout)
        for row, up, obj in zip(coords, positive, obj_ids):  # each click its own FramePrompt, in the layer's order
            items += collect_prompts(row[None], [up], [obj], [], [], layout)
        return items

    def _on_load_session(self) -> None:
        if self.busy():  # said before the file dialog, not after the file was chosen
            self.status.setText(f"Not loaded: {self.busy_words()[6:]}, then load.")
            return
        self._session_file_dialog("open", "Load SAM 2 session", f"SAM 2 session (*{SUFFIX} *.npz)",
                                  lambda path: self.load_session(path, confirm=self._confirm_replace),
                                  "Not loaded (nothing changed)")


def seeded_masks(state: ImageState) -> Tuple[Dict[Tuple[int, int], np.ndarray],
                                            Dict[Fixed, Dict[Tuple[int, int], np.ndarray]]]:
    """The seeded masks of every session of ``state``'s image: ({(frame, obj_id): (H, W) bool} of a session with no
    fixed axes, {fixed: {...}} of each slice's session (fixed: ((axis, index), ...), e.g. z of TZYX))."""
    unsliced: Dict[Tuple[int, int], np.ndarray] = {}
    sliced: Dict[Fixed, Dict[Tuple[int, int], np.ndarray]] = {}
    for controller in state_controllers(state):
        masks = {k: p.mask for k, p in controller.mask_prompts.items() if p.mask is not None}
        fixed = tuple(sorted((int(a), int(i)) for a, i in controller.layout.fixed))
        if masks and fixed:
            sliced.setdefault(fixed, {}).update(masks)
        elif masks:
            unsliced.update(masks)
    return unsliced, sliced


def kept_labels(state: ImageState) -> Dict[Fixed, Dict[int, np.ndarray]]:
    """The masklets of every slice of ``state``'s image that has a session: {fixed: {frame: (H, W) uint32 copy}}, the
    frames that hold any label (fixed: ((axis, index), ...), ``()`` for an image without fixed axes)."""
    return drain(labels_steps(labels_sources(state), copy=True))


@dataclass
class LabelsSource:
    """Where the masklets of one session of an image are: its slice ``fixed``, the masklets array (its slice's frames
    indexed by ``layout``) and its frame count."""

    fixed: Fixed
    array: Any
    layout: Any
    num_frames: int


def labels_sources(state: ImageState) -> List[LabelsSource]:
    """The masklets of every session of ``state``'s image (read on the GUI thread: the layers and sessions; no frame
    is read), for :func:`labels_steps`; a session of another channel axis than the masklets' is left out."""
    sources = []
    for controller in state_controllers(state):
        layout = controller.layout
        array = masklets(state.labels, state.image, layout)
        if array is not None:  # labels of another channel axis: not this session's
            sources.append(LabelsSource(tuple(sorted((int(a), int(i)) for a, i in layout.fixed)), array, layout,
                                        int(controller.num_frames)))
    return sources


def labels_steps(sources: Sequence[LabelsSource], copy: bool = False) -> Generator[tuple, None,
                                                                                  Dict[Fixed, Dict[int, np.ndarray]]]:
    """Read the masklets of ``sources`` frame by frame: yields ("read", frames read, frames in all, None) after each;
    returns {fixed: {frame: (H, W) plane}}, the frames that hold any label (uint32; ``copy``: copies, else the
    masklets' own planes where they are uint32 arrays in memory: views kept until the file is written, so the caller
    keeps the layer unchanged meanwhile (the widget's save holds it in pan/zoom and counts as busy))."""
    kept: Dict[Fixed, Dict[int, np.ndarray]] = {}
    frames, done = sum(source.num_frames for source in sources), 0
    for source in sources:
        planes = kept.setdefault(source.fixed, {})
        for frame in range(source.num_frames):
            plane = np.asarray(source.array[source.layout.frame_index_in_labels(frame)])
            if plane.any():
                planes[frame] = plane.astype(np.uint32, copy=copy)
            done += 1
            yield "read", done, frames, None
    return kept


def save_steps(path: Any, record: SessionRecord,
               sources: Optional[Sequence[LabelsSource]]) -> Generator[tuple, None, Path]:
    """Save ``record`` to ``path`` with the masklets of ``sources`` (None: the record's own ``labels``):
    ("plan", frames, "", None), ("read", k, frames, None) after each frame read (:func:`labels_steps`),
    ("plan", planes, "", None), ("wrote", k, planes, None) after each masklet plane written
    (:func:`write_session_steps`), then ("written", 1, the path, None) once the file is in place; returns the path.
    Closed or failed part-way, nothing is written (an earlier file is kept)."""
    if sources is not None:
        yield "plan", sum(source.num_frames for source in sources), "", None
        record.labels = yield from labels_steps(sources)
    planes = sum(len(kept) for kept in (record.labels or {}).values())
    yield "plan", planes, "", None
    writing = write_session_steps(path, record)
    try:
        while True:
            try:
                done = next(writing)
            except StopIteration as stop:
                written = stop.value
                break
            yield "wrote", done, planes, None
    finally:
        writing.close()
    yield "written", 1, str(written), None
    return written


@dataclass
class SaveRun(ExportRun, HeldLayers):
    """Save session… running in a worker (:meth:`SessionFilesMixin.save_session_in_worker`): an export's progress
    and end (:class:`~._session_actions.ExportRun`) in a save's words, its steps (closed when the worker ends) and the
    masklets layer held in pan/zoom mode meanwhile, as an edit holds it (:meth:`~._edit_runs.HeldLayers.freeze`)."""

    steps: Any = None
    failure = "Save session failed"

    def outcome(self) -> str:
        """The status line at the end: saved, failed or cancelled (nothing written then; an earlier file is kept)."""
        if self.written:
            return f"Saved the session to {self.written} (prompts, options and masklets)."
        if self.error is not None:
            return f"Not saved: {self.error}. Nothing was written (an earlier file is kept)."
        return f"Save cancelled: nothing was written to {self.path} (an earlier file is kept)."


def put_back_labels(labels: Any, layout: Any, num_frames: int, planes: Dict[int, np.ndarray]) -> List[int]:
    """Give the ``num_frames`` frames of ``layout``'s slice of the masklets array ``labels`` exactly the kept
    ``planes`` ({frame: (H, W)}; a frame not among them: no label), telling the array's watchers; returns the frames
    written (those that differed). All or nothing: a write that fails gives the frames written before it back what
    they held, then raises."""
    journal, written = RunJournal(), []
    try:
        for frame in range(num_frames):
            index = layout.frame_index_in_labels(frame)
            now = np.asarray(labels[index])
            plane = planes.get(frame)
            plane = np.zeros_like(now) if plane is None else np.asarray(plane).astype(now.dtype)
            if not np.array_equal(now, plane):
                journal.write(labels, index, plane)
                written.append(frame)
    except BaseException:
        journal.undo(labels)
        raise
    return written


def frame_shape(image: Any, axes: Dict[str, Any]) -> Tuple[int, ...]:
    """(H, W) of the frames of the napari Image layer ``image`` with the axis choices ``axes`` (a session file's:
    the channel axis, "axis k (n)" or none; the colours of an RGB layer), as the masklets hold them."""
    shape = tuple(int(n) for n in image.data.shape)
    channel = len(shape) - 1 if image.rgb else channel_axis_of(axes.get("channel_axis", ""))
    return tuple(n for axis, n in enumerate(shape) if axis != channel)[-2:]


@dataclass
class LoadedLabels:
    """The masklets of a loaded session file waiting to be put back: each slice's, once its re-run is done."""

    state: ImageState  # the image it was loaded onto
    prompts: Tuple[bytes, ...]  # its clicks and boxes as the load put them (:func:`_prompts_now`): unchanged, or none
    name: str  # the session file's name, for the status line
    slices: Dict[Fixed, Dict[int, np.ndarray]]  # {fixed: {frame: (H, W) plane}}, a slice gone once put back


@dataclass
class SessionLoad:
    """A session load whose file is checked and whose replace question was answered (:meth:`load_session`), waiting
    for its weights or applied now."""

    state: ImageState  # the image it loads onto
    record: SessionRecord
    name: str  # the session file's name, for the status line
    confirm: Optional[Callable[[str], bool]]  # asked again if the clicks change while the weights are fetched
    prompts: Tuple[bytes, ...]  # the image's clicks and boxes when the question was answered (:func:`_prompts_now`)
    weights_gone: bool  # its fine-tuned weights file is gone: loaded with the model chosen now


def _session_choice(model: Dict[str, Any], name: str) -> ModelChoice:
    """The session's model (``model``: name, weights, path) as a choice the picker accepts (checked without reading a
    file); ValueError naming the session file ``name`` and what to do otherwise."""
    choice = ModelChoice(str(model["name"]), str(model["weights"]), path=model.get("path"))
    try:
        choice.check()
    except ValueError as error:
        raise ValueError(_cannot_load(name, choice, str(error))) from None
    return choice


def _cannot_load(name: str, choice: ModelChoice, why: str) -> str:
    """Why the session file ``name`` cannot be loaded with its ``choice`` of model (``why``: the check's, the file's or
    the download's words; a failed download's always end with the offline route: the URL, the cache path and
    ``NAPARI_SAM2_CACHE``)."""
    why = why.rstrip(". ")
    if choice.weights == CACHED and CACHE_ENV not in why:  # a download that failed on its way
        why += f" (or set {CACHE_ENV} to a folder that holds {official(choice.name).filename})"
    return (f"{name} was saved with {choice.name} ({choice.weights}), which cannot be loaded here: {why}. Nothing "
            "was loaded; load the session again once that is fixed.")


def _prompts_now(state: ImageState) -> Tuple[bytes, ...]:
    """The clicks (coordinates, positive, object ids) and boxes (corners, object ids) of ``state``'s prompt layers as
    bytes: equal when no prompt was added, moved, deleted or given another id."""
    parts: list = []
    if state.points is not None:
        coords, positive, ids = points_content(state.points)
        parts += [np.asarray(coords, float).tobytes(), positive.tobytes(), ids.tobytes()]
    if state.boxes is not None:
        corners, box_ids = boxes_content(state.boxes)
        parts += [b"".join(np.asarray(c, float).tobytes() for c in corners), box_ids.tobytes()]
    return tuple(parts)


def refined_keys(state: ImageState) -> Dict[Fixed, Set[Tuple[int, int]]]:
    """{fixed: {(frame, obj_id)}}: the prompts each session of ``state``'s image took as corrections of a mask
    tracking had made (:meth:`SegmentationController.refined_keys`; fixed ``()``: a session with no fixed axes)."""
    found: Dict[Fixed, Set[Tuple[int, int]]] = {}
    for controller in state_controllers(state):
        keys = controller.refined_keys()
        if keys:
            found.setdefault(tuple(sorted((int(a), int(i)) for a, i in controller.layout.fixed)), set()).update(keys)
    return found


def _mask_prompts(masks: Dict[Tuple[int, int], np.ndarray]) -> Dict[Tuple[int, int], FramePrompt]:
    return {k: FramePrompt(k[0], k[1], mask=m) for k, m in masks.items()}


def _clicked_slices(record: SessionRecord, fixed: Sequence[Tuple[int, int]]) -> Set[Fixed]:
    """The slices (indices on the axes fixed in ``fixed``) that the record's clicks and boxes lie on."""
    axes = [int(axis) for axis, _ in fixed]
    if not axes:
        return set()
    coords = np.concatenate([record.points, record.boxes.reshape(-1, len(record.image_shape))])
    return {tuple((axis, int(round(row[axis]))) for axis in sorted(axes)) for row in coords}
