"""The "Track all cells" panel of the segmentation widget: options, run, cancel, undo, correct one cell, export.

A collapsible part of :class:`~._widget.SegmentationWidget` (it uses only the widget's public parts: the
viewer, the model picker, the current image's state and controller). The compute lives in
:mod:`.track_all` (no Qt); runs go to a napari worker thread. While a run is in progress the widget's
``worker`` is this run's worker, so the widget counts as busy (clicks wait, its Cancel stops this run too).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set

import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QSpinBox,
    QVBoxLayout, QWidget,
)
from superqt import QCollapsible

from sam2_model.tracking import SEEDINGS, TrackingResult

from ._colors import style_boxes, style_points
from ._image_state import add_points_layer, layer_name
from .labels_writer import EditedSince
from .layout import world_to_data
from .settings import load_settings, save_settings
from ._tracks_layer import tracks_metadata, tracks_placement
from . import _track_ids as id_rules
from ._track_ids import frame_ranges, id_above_tracks
from .track_all import (
    TrackAll, TrackAllOptions, TrackRun, clicks_of, frame_and_plane, frame_source, read_then_run, session_limits,
)
from ._session_actions import ExportRun, steps_worker
from .track_export import export_path, export_tracking_steps

FIX_NAME, LINEAGE_NAME = "SAM2 cell fix", "SAM2 lineage"
SETTINGS_KEY = "track_all"
DEFAULTS: Dict[str, Any] = {"seeding": "blobs", "min_diameter": 8.0, "max_diameter": 40.0, "redetect_every": 5,
                            "divisions": True}
EXPORT_TIP = ("Exports describe the cells 'Track all cells' tracked (its tracks and lineage, corrections included); "
              "objects you clicked or seeded in the segmentation widget are left out: export them with the "
              "widget's own 'Export labels'.")
RUN_BUTTONS = ("segment_button", "forward_button", "backward_button", "both_button", "undo_button",
               "new_object_button", "seed_button")


class _ImageTracking:
    """One image's tracking result, its correction clicks layer and its lineage (Tracks) layer."""

    def __init__(self, image: Any, tracking: TrackAll) -> None:
        self.image = image
        self.tracking = tracking
        self.fix_points: Any = None
        self.tracks: Any = None


class TrackAllPanel(QCollapsible):
    """Seeding mode, cell-size range, re-detection interval, divisions; Track all cells; correct; export."""

    def __init__(self, widget: Any) -> None:
        super().__init__("Track all cells (automatic)")
        self.widget = widget
        self.viewer = widget.viewer
        self.worker: Any = None
        self._steps: Optional[Iterator] = None
        self._run_image: Any = None
        self._run_base = 0  # the length of the run's image's undo stack before the run
        self._outcome = ""
        self._export: Optional[ExportRun] = None  # the last export run in a worker
        self.images: Dict[Any, _ImageTracking] = {}
        saved = {**DEFAULTS, **dict(load_settings().get(SETTINGS_KEY, {}))}

        self.seeding_combo = QComboBox()
        self.seeding_combo.addItems(list(SEEDINGS))
        self.seeding_combo.setCurrentText(str(saved["seeding"]) if saved["seeding"] in SEEDINGS else "blobs")
        self.min_diameter_spin, self.max_diameter_spin = QDoubleSpinBox(), QDoubleSpinBox()
        for spin, value in ((self.min_diameter_spin, saved["min_diameter"]),
                            (self.max_diameter_spin, saved["max_diameter"])):
            spin.setRange(1.0, 2000.0)
            spin.setDecimals(1)
            spin.setSuffix(" px")
            spin.setValue(float(value))
        self.redetect_spin = QSpinBox()
        self.redetect_spin.setRange(1, 1000)
        self.redetect_spin.setValue(int(saved["redetect_every"]))
        self.divisions_check = QCheckBox("Divisions (split a track when its cell divides)")
        self.divisions_check.setChecked(bool(saved["divisions"]))
        self.track_button = QPushButton("Track all cells (from this frame)")
        self.cancel_button = QPushButton("Cancel")
        self.undo_button = QPushButton("Undo tracking step")
        self.track_spin = QSpinBox()
        self.track_spin.setRange(1, 2**31 - 1)
        self.fix_button = QPushButton("Correct cell: click it")
        self.negative_check = QCheckBox("Negative clicks")
        self.repropagate_button = QPushButton("Re-segment && propagate this cell")
        self.export_buttons = {what: QPushButton(text) for what, text in (
            ("labels", "Labels (TIFF)…"), ("tracks", "Tracks (CSV)…"), ("ctc", "CTC folder…"), ("geff", "GEFF…"))}
        self.progress = QProgressBar()
        self.status = QLabel("Options, then 'Track all cells': seeds on the current frame and tracks forwards.")
        self.status.setWordWrap(True)

        self.seeding_combo.setToolTip("blobs: clicks on detected blobs of the cell size (small or sparse cells); "
                                      "grid: SAM 2's point grid (large cells); grid+blobs: both, slowest")
        self.redetect_spin.setToolTip("frames between detections of new (entering) cells")
        body = QWidget()
        form = QFormLayout()
        form.addRow("Seeding", self.seeding_combo)
        form.addRow("Cell diameter", _hbox(self.min_diameter_spin, QLabel("to"), self.max_diameter_spin))
        form.addRow("Detect new cells every", self.redetect_spin)
        form.addRow(self.divisions_check)
        form.addRow("Track id", self.track_spin)
        column = QVBoxLayout(body)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(form)
        column.addLayout(_hbox(self.track_button, self.cancel_button, self.undo_button))
        column.addLayout(_hbox(self.fix_button, self.negative_check, self.repropagate_button))
        column.addWidget(self.progress)
        column.addLayout(_hbox(QLabel("Export"), *self.export_buttons.values()))
        column.addWidget(self.status)
        self.addWidget(body)
        self.cancel_button.setEnabled(False)

        for signal in (self.seeding_combo.currentTextChanged, self.min_diameter_spin.valueChanged,
                       self.max_diameter_spin.valueChanged, self.redetect_spin.valueChanged,
                       self.divisions_check.toggled):
            signal.connect(self._save_settings)
        self.track_button.clicked.connect(self._on_track)
        self.cancel_button.clicked.connect(self.cancel)
        self.undo_button.clicked.connect(self.undo)
        self.fix_button.clicked.connect(self.start_correction)
        self.negative_check.toggled.connect(self._on_click_kind)
        self.track_spin.valueChanged.connect(self._on_click_kind)
        self.repropagate_button.clicked.connect(self._on_repropagate)
        for what, button in self.export_buttons.items():
            button.clicked.connect(lambda _=False, w=what: self._on_export(w))
        for what, button in self.export_buttons.items():
            button.setToolTip(EXPORT_TIP)
        object_spin = getattr(widget, "object_spin", None)
        if object_spin is not None:  # a typed Object id never takes a tracked cell's id
            object_spin.valueChanged.connect(self._on_object_id_typed)
        objects = getattr(widget, "objects", None)
        if objects is not None:  # the objects panel shows what the labels hold after tracking replaced objects
            objects.replaced_frames = self.replaced_frames

    # ------------------------------------------------------------------ options
    def options(self) -> TrackAllOptions:
        """The panel's choices (ValueError naming the option when they are inconsistent)."""
        return TrackAllOptions(self.seeding_combo.currentText(),
                               (self.min_diameter_spin.value(), self.max_diameter_spin.value()),
                               self.redetect_spin.value(), self.divisions_check.isChecked())

    def _save_settings(self, *_: Any) -> None:
        save_settings(**{SETTINGS_KEY: {
            "seeding": self.seeding_combo.currentText(), "min_diameter": self.min_diameter_spin.value(),
            "max_diameter": self.max_diameter_spin.value(), "redetect_every": self.redetect_spin.value(),
            "divisions": self.divisions_check.isChecked()}})

    # ------------------------------------------------------------------ the current image
    def current(self) -> Optional[_ImageTracking]:
        """The current image's tracking (made on first use; remade if its labels array changed)."""
        controller = self.widget.controller
        image = self.widget.image_layer
        if controller is None or image is None:
            return None
        entry = self.images.get(image.unique_id)
        if entry is None or entry.tracking.labels is not controller.labels:
            layout = controller.layout
            tracking = TrackAll(controller.labels, controller.num_frames, layout.frame_index_in_labels)  # no read
            entry = self.images[image.unique_id] = _ImageTracking(image, tracking)
            labels_layer = self.widget.labels_layer
            if labels_layer is not None:
                labels_layer.events.selected_label.connect(self._on_label_picked)
        return entry

    def _current_frame(self, controller: Any) -> int:
        axis = controller.layout.frame_axis
        return 0 if axis is None else int(self.viewer.dims.current_step[axis])

    def _on_label_picked(self, event: Any = None) -> None:
        layer = self.widget.labels_layer
        if layer is not None and int(layer.selected_label) > 0:
            self.track_spin.setValue(int(layer.selected_label))

    # ------------------------------------------------------------------ runs
    def _on_track(self) -> None:
        if self._refuse_if_busy():
            return
        self.widget.picker.when_ready(self._track)

    def _track(self) -> None:
        try:
            options = self.options()
            controller = self.widget.ensure_controller()
            entry = self.current()
            model = controller.model
            start = self._current_frame(controller)
            reserved, limits = self.widget_ids(entry.image), session_limits(controller)
            steps = read_then_run(lambda: frame_source(controller.frames, model, controller.session_options, limits),
                                  lambda frames: entry.tracking.track(model, frames, start, options, reserved=reserved))
        except Exception as error:
            self._fail(error)
            return
        self._start(entry, steps, f"Tracking all cells from frame {start}")

    def track_now(self, image: Any = None, start_frame: int = 0, options: Optional[TrackAllOptions] = None,
                  progress: Optional[Callable[[int, int], None]] = None) -> TrackingResult:
        """Track ``image`` (an Image layer or its name; default the current one) on this thread (the console)."""
        if self._refuse_if_busy():
            raise ValueError("the SAM 2 widget is busy: wait for its run to finish (or cancel it)")
        if image is not None:
            name = getattr(image, "name", image)
            if name not in self.viewer.layers or self.viewer.layers[name].__class__.__name__ != "Image":
                raise ValueError(f"image must be an Image layer of the viewer or its name, got {image!r}")
            self.widget.image_combo.setCurrentText(name)
        controller = self.widget.ensure_controller()
        entry = self.current()
        frames = frame_source(controller.frames, controller.model, controller.session_options,
                              session_limits(controller))
        base = len(entry.tracking.history)
        steps = entry.tracking.track(controller.model, frames, start_frame, options,
                                     reserved=self.widget_ids(entry.image))
        for kind, _, _, total in steps:
            if kind == "frame" and progress is not None:
                progress(len(entry.tracking.history[-1].frames), total)
        self._refresh_labels(entry.image)
        self._refresh_objects_panel()
        self.update_tracks_layer(entry)
        self._say_done(entry, _new_run(entry, base))
        self._ids_above_tracks(entry)
        return entry.tracking.result()

    def _on_repropagate(self) -> None:
        if self._refuse_if_busy():
            return
        self.widget.picker.when_ready(self._repropagate)

    def _repropagate(self) -> None:
        try:
            controller = self.widget.ensure_controller()
            entry = self.current()
            track_id = self.track_spin.value()
            frame = self._current_frame(controller)
            if track_id in self.widget_ids(entry.image) and track_id not in self.track_ids(entry.image):
                raise ValueError(f"{track_id} is an object of the segmentation widget (its clicks and Propagate "
                                 "segment it): pick a track's id, or a free id to add a cell")
            prompt = self._fix_prompt(entry, controller, track_id, frame)
            model, limits = controller.model, session_limits(controller)
            steps = read_then_run(lambda: frame_source(controller.frames, model, controller.session_options, limits),
                                  lambda frames: entry.tracking.correct(model, frames, track_id, frame, prompt.points,
                                                                        prompt.labels))
        except Exception as error:
            self._fail(error)
            return
        self._remove_fix_clicks(entry, track_id)
        self._start(entry, steps, f"Correcting cell {track_id} from frame {frame}")

    def _start(self, entry: _ImageTracking, steps: Iterator, what: str) -> None:
        @thread_worker(ignore_errors=True)
        def work():
            yield from steps

        self._steps, self._run_image, self._outcome = steps, self.widget.image_layer, "running"
        self._run_base = len(entry.tracking.history)  # the run joins the stack when its generator starts
        self.status.setText(f"{what}…")
        self.progress.setRange(0, 0)
        worker = work()
        worker.yielded.connect(self._on_step)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = self.widget.worker = worker  # the widget is busy while this runs
        self._set_busy(True)
        worker.start()

    def _on_step(self, step: tuple) -> None:
        try:
            kind, frame, active, total = step
            if kind == "plan":
                self.progress.setRange(0, max(int(total), 1))
                self.progress.setValue(0)
            elif kind == "frame":
                self.progress.setValue(min(self.progress.value() + 1, self.progress.maximum()))
                self.status.setText(f"frame {frame}: {active} cell(s) tracked")
                self._refresh_labels(self._run_image)
        except Exception as error:  # never let an exception escape a Qt slot
            self._on_error(error)

    def _refresh_labels(self, image: Any) -> None:
        state = None if image is None else self.widget.states.get(image.unique_id)
        if state is not None and state.labels is not None and state.labels in self.viewer.layers:
            state.labels.refresh()

    def _on_error(self, error: Exception) -> None:
        self._outcome = "failed"
        self._fail(error)

    def _fail(self, error: Exception) -> None:
        show_error(f"SAM 2: {error}")
        self.status.setText(f"Failed: {error}")

    def cancel(self) -> None:
        """Stop the run: the frames finished so far are kept whole (Undo tracking step reverts the run).

        The widget's Cancel button calls this too while a tracking run is in progress."""
        if self.worker is not None and self._export is not None and self.worker is self._export.worker:
            self.worker.quit()
            show_info("SAM 2: export cancelled; nothing is written (an earlier file or folder is kept).")
        elif self.worker is not None:
            self._outcome = "cancelled"
            self.worker.quit()
            show_info("SAM 2: cancelled; the frames finished so far are kept whole ('Undo tracking step' in "
                      "'Track all cells' reverts the run).")

    def _on_finished(self) -> None:
        steps, outcome, mine = self._steps, self._outcome, self.worker
        if outcome == "running" and mine is not None and mine.abort_requested:
            outcome = "cancelled"  # stopped by the widget's own Cancel button
        self._steps, self.worker = None, None
        if steps is not None:
            steps.close()  # ends the tracker's session now (a cancelled generator is left suspended)
        if self.widget.worker is mine:
            self.widget.worker = None
        self._set_busy(False)
        entry = self.images.get(getattr(self._run_image, "unique_id", None))
        run = _new_run(entry, self._run_base)  # None: the run wrote nothing (it is not on the undo stack)
        done = sorted(set(run.frames)) if run is not None else []
        if outcome == "cancelled":
            self.status.setText(f"Cancelled: {_frames(done, 'tracked')} (whole frames), the others are as before; "
                                "'Undo tracking step' reverts the run." if done else
                                "Cancelled before any frame was written: the labels are as they were.")
        elif outcome == "failed":
            self.status.setText(f"{self.status.text()} ({_frames(done, 'written')} whole; 'Undo tracking step' "
                                "reverts them.)" if done else f"{self.status.text()} (Nothing was written.)")
        else:
            self._say_done(entry, run)
        self._refresh_labels(self._run_image)
        self._refresh_objects_panel()
        if entry is not None:
            self.update_tracks_layer(entry)
            self._ids_above_tracks(entry)

    def _say_done(self, entry: Optional[_ImageTracking], run: Optional[TrackRun]) -> None:
        done = sorted(set(run.frames)) if run is not None else []
        span = f"frames {frame_ranges(done)}" if done else "no frame"
        lineage = entry.tracking.lineage if entry is not None else None
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        note = entry.tracking.note if entry is not None else ""
        if note and not lineage:  # nothing found: say what to check, not how to correct tracks
            self.status.setText(f"Done: {span}, no track: {note}.")
            return
        self.status.setText(f"Done: {span}, {len(lineage or ())} track(s), {len(lineage.divisions()) if lineage else 0} "
                            "division(s). Pick a track (or a label) and click it to correct it.")

    # ------------------------------------------------------------------ the widget's objects beside the tracks
    def track_ids(self, image: Any) -> Set[int]:
        """The track ids of ``image``'s tracking (lineage rows; empty when it was never tracked)."""
        entry = self.images.get(getattr(image, "unique_id", None))
        return id_rules.lineage_ids(None if entry is None else entry.tracking.lineage)

    def widget_ids(self, image: Any) -> Set[int]:
        """The ids the widget holds for ``image``: its sessions' objects, seeded masks and clicks and boxes (tracking
        gives its tracks ids above these)."""
        return id_rules.widget_ids(self.widget.states.get(getattr(image, "unique_id", None)))

    def replaced_frames(self, obj_ids: Sequence[int]) -> Dict[int, List[int]]:
        """{object: frames} for the current image's widget objects ``obj_ids`` that 'Track all cells' replaced (its
        runs write frames whole) and nothing wrote back since (the objects panel leaves those frames out)."""
        entry = self.images.get(getattr(self.widget.image_layer, "unique_id", None))
        return {} if entry is None else entry.tracking.erased(obj_ids)

    def _refresh_objects_panel(self) -> None:
        objects = getattr(self.widget, "objects", None)
        if objects is not None:
            objects.refresh()

    def free_ids_text(self, image: Any, taken: Set[int] = frozenset()) -> str:
        """The ids free for the widget's objects on ``image`` in words: gaps below the highest track id (at most a
        few) and "N and above"; ``taken``: ids also not free (e.g. other seeded objects)."""
        return id_rules.free_ids_text(self.track_ids(image) | self.widget_ids(image) | set(taken))

    def _on_object_id_typed(self, obj_id: int) -> None:
        """A typed Object id that a tracked cell of the current image holds moves to the next free id, saying so."""
        image = self.widget.image_layer
        tracks = self.track_ids(image)
        if int(obj_id) not in tracks:
            return
        new = id_rules.next_free_id(tracks, self.widget_ids(image))
        message = id_rules.typed_id_message(int(obj_id), new, self.free_ids_text(image))
        show_warning(f"SAM 2: {message}")
        self.status.setText(message)
        self.widget.object_spin.setValue(new)

    def free_seed_ids(self, image: Any, masks: List[Any]) -> List[Any]:
        """Seeded mask prompts (``FramePrompt`` with ``obj_id`` and ``mask``) whose ids a tracked cell of ``image``
        holds get free ids (above the tracks and the widget's objects), saying which moved; the others keep the
        seed layer's ids."""
        from .prompts import FramePrompt

        seeded = {int(m.obj_id) for m in masks}
        moved = id_rules.moved_seed_ids(seeded, self.track_ids(image), self.widget_ids(image))
        if not moved:
            return list(masks)
        message = id_rules.seed_ids_message(moved, self.free_ids_text(image, seeded))
        show_warning(f"SAM 2: {message}")
        self.status.setText(message)
        return [FramePrompt(m.frame, moved.get(int(m.obj_id), int(m.obj_id)), mask=m.mask) for m in masks]

    def _ids_above_tracks(self, entry: _ImageTracking) -> None:
        """The widget's next object id on the tracked image goes above its tracks (whichever image is shown), so a
        click never writes into a track."""
        tracks = self.track_ids(entry.image)
        state = self.widget.states.get(entry.image.unique_id)
        if state is None or id_above_tracks(0, tracks) is None:
            return
        if state is self.widget.state:
            self.widget.object_spin.setValue(id_above_tracks(self.widget.object_spin.value(), tracks))
        elif id_above_tracks(state.obj_id, tracks) != state.obj_id:  # shown again later with this id (the widget
            state.obj_id = id_above_tracks(state.obj_id, tracks)  # sets its spin box from it)
            if state.points is not None:
                state.points.feature_defaults = {"positive": state.positive, "obj_id": state.obj_id}
                style_points(state.points)
            if state.boxes is not None:
                state.boxes.feature_defaults = {"obj_id": state.obj_id}
                style_boxes(state.boxes)

    def describe_edits(self, image: Any, frames: Sequence[int]) -> str:
        """Who changed ``frames`` of ``image``'s masklets (an undo found them changed since its step wrote them), and
        what reverts each: "Track all cells", the widget's clicks and propagations, or something else (a brush)."""
        entry = self.images.get(getattr(image, "unique_id", None))
        state = self.widget.states.get(getattr(image, "unique_id", None))
        controllers = [] if state is None else id_rules.state_controllers(state)
        tracked: List[int] = []
        widget: List[int] = []
        other: List[int] = []
        for t in sorted(set(frames)):
            if entry is not None and entry.tracking.wrote_last(t):
                tracked.append(t)
            elif any(c.wrote_last(t) for c in controllers):
                widget.append(t)
            else:
                other.append(t)
        parts = []
        if tracked:
            parts.append(f"{_frames(tracked, 'rewritten')} by 'Track all cells' (its 'Undo tracking step' reverts "
                         "that)")
        if widget:
            parts.append(f"{_frames(widget, 'changed')} by the widget's clicks or propagation (its 'Undo' reverts "
                         "that)")
        if other:
            parts.append(f"{_frames(other, 'changed')} by hand or another tool (the masklets layer's own undo, "
                         "Ctrl+Z, reverts painting)")
        return "; ".join(parts)

    def widget_undo_refused(self, image: Any, error: EditedSince) -> str:
        """The widget's message when its Undo was refused because ``error.frames`` were changed after its step."""
        return (f"Nothing was undone: since the step that Undo would revert, {self.describe_edits(image, error.frames)}"
                ". Revert that first, then press Undo again (an undo never throws a later change away silently).")

    def _refuse_if_busy(self) -> bool:
        if self.worker is not None or self.widget.busy():
            self.status.setText("Busy: wait for the run in progress (or cancel it).")
            return True
        return False

    def _set_busy(self, busy: bool) -> None:
        busy = busy or self.worker is not None
        for button in (self.track_button, self.undo_button, self.repropagate_button, *self.export_buttons.values()):
            button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        for name in RUN_BUTTONS:  # the widget's own runs wait for this one
            button = getattr(self.widget, name, None)
            if button is not None:
                button.setEnabled(not busy)
        cancel = getattr(self.widget, "cancel_button", None)
        if cancel is not None:  # the widget's Cancel stops this run too
            cancel.setEnabled(busy)
        if not busy:  # its buttons as its state says (none on a single 2-D image); clicks made meanwhile segmented
            self.widget.after_other_run()

    # ------------------------------------------------------------------ undo
    def undo(self) -> None:
        """Undo the last tracking run or correction of the current image (labels, lineage, Tracks layer)."""
        entry = self.current()
        if self._refuse_if_busy():
            return
        try:
            run = None if entry is None else entry.tracking.undo()
        except EditedSince as error:  # nothing is thrown away silently
            message = (f"Nothing was undone: {_frames(error.frames, 'edited')} after this tracking step "
                       f"({self.describe_edits(entry.image, error.frames)}). Revert that first, then 'Undo tracking "
                       "step' again.")
            show_warning(f"SAM 2: {message}")
            self.status.setText(message)
            return
        except ValueError as error:
            self._fail(error)
            return
        if run is None:
            self.status.setText("No tracking step to undo.")
            return
        self._refresh_labels(entry.image)
        self._refresh_objects_panel()
        self.update_tracks_layer(entry)
        self.status.setText(f"Undid the {'tracking run' if run.kind == 'track' else 'correction'}: "
                            f"{len(set(run.frames))} frame(s) restored.")

    # ------------------------------------------------------------------ correction clicks
    def start_correction(self) -> None:
        """Show the current image's correction clicks layer, active in add mode, for the chosen track."""
        if self.widget.controller is None:
            self.status.setText("Track the cells first ('Track all cells').")
            return
        entry = self.current()
        image = self.widget.image_layer
        if entry.fix_points is None or entry.fix_points not in self.viewer.layers:
            entry.fix_points = add_points_layer(self.viewer, image, self.track_spin.value(),
                                                not self.negative_check.isChecked())
            entry.fix_points.name = layer_name(FIX_NAME, image)
        self._on_click_kind()
        self.viewer.layers.selection.active = entry.fix_points
        entry.fix_points.mode = "add"
        self.status.setText(f"Click cell {self.track_spin.value()} on this frame (tick 'Negative clicks' for "
                            "background), then 'Re-segment & propagate this cell'.")

    def _on_click_kind(self, *_: Any) -> None:
        entry = self.images.get(getattr(self.widget.image_layer, "unique_id", None))
        if entry is not None and entry.fix_points is not None:
            entry.fix_points.feature_defaults = {"positive": not self.negative_check.isChecked(),
                                                 "obj_id": self.track_spin.value()}

    def _fix_prompt(self, entry: _ImageTracking, controller: Any, track_id: int, frame: int) -> Any:
        points, image = entry.fix_points, self.widget.image_layer
        if points is None or points not in self.viewer.layers or not len(points.data):
            raise ValueError(f"click cell {track_id} first ('Correct cell: click it', then click on frame {frame})")
        coords = world_to_data(points.data, points.scale, points.translate, image.scale, image.translate)
        return clicks_of(coords, points.features["positive"].to_numpy(bool), points.features["obj_id"].to_numpy(int),
                         controller.layout, track_id, frame)

    def _remove_fix_clicks(self, entry: _ImageTracking, track_id: int) -> None:
        points = entry.fix_points
        ids = points.features["obj_id"].to_numpy(int)
        if (ids == track_id).any():
            points.selected_data = set(np.flatnonzero(ids == track_id).tolist())
            points.remove_selected()

    # ------------------------------------------------------------------ outputs
    def update_tracks_layer(self, entry: _ImageTracking) -> Any:
        """(Re)make the image's lineage Tracks layer from the labels and lineage (None when nothing is tracked)."""
        if entry.tracks is not None and entry.tracks in self.viewer.layers:
            self.viewer.layers.remove(entry.tracks)
        entry.tracks = None
        data, graph = entry.tracking.tracks_data()
        state = self.widget.states.get(entry.image.unique_id)
        labels = None if state is None else state.labels
        if not len(data) or labels is None or not len(entry.tracking.lineage):  # nothing tracked (any more)
            return None
        if state.controller is not None:  # on the image's axes (its time on the time axis of a 4-D image)
            data, scale, translate = tracks_placement(data, entry.image, state.controller.layout)
        else:
            scale, translate = frame_and_plane(labels.scale), frame_and_plane(labels.translate)
        entry.tracks = self.viewer.add_tracks(data, graph=graph, name=layer_name(LINEAGE_NAME, entry.image),
                                              scale=scale, translate=translate,
                                              **tracks_metadata(entry.image, None if state.controller is None
                                                                else state.controller.layout))
        return entry.tracks

    def _on_export(self, what: str) -> None:
        from qtpy.QtWidgets import QFileDialog

        title = {"labels": "Export labels (TIFF)", "tracks": "Export tracks (CSV)", "ctc": "Export a CTC folder",
                 "geff": "Export GEFF (a .geff folder)"}[what]
        filters = {"labels": "TIFF (*.tif)", "tracks": "CSV (*.csv)", "geff": "GEFF (*.geff)",
                   "ctc": "a new or empty folder (*)"}[what]
        path, _ = QFileDialog.getSaveFileName(self, title, "", filters)
        if path:  # the dialog asked about replacing; only an earlier result of the same kind is replaced
            self.export_in_worker(what, path, overwrite=True)

    def export_in_worker(self, what: str, path: str, overwrite: bool = False) -> Any:
        """:meth:`export` in a worker thread, as the export buttons do; returns the worker (None when refused: the
        status line says why).

        Nothing that scales with the stack runs on napari's GUI thread: the labels are read and the file or folder
        written in the worker, the progress bar follows, the panel and the widget are busy meanwhile (Cancel, the
        panel's or the widget's, stops it) and the result appears whole or not at all (an earlier one is kept on
        failure or cancel).
        """
        if self._refuse_if_busy():
            return None
        entry = self.current()
        try:
            if entry is None:
                raise ValueError("nothing is tracked yet: press 'Track all cells' first")
            target = export_path(what, path)
            steps = export_tracking_steps(entry.tracking.result, what, target, overwrite)
        except Exception as error:
            self._fail(error)
            return None
        self._export = ExportRun(what, target)
        worker = self._export.worker = steps_worker(steps, self._on_export_step, self._export.fail,
                                                    self._on_export_finished)
        self.worker = self.widget.worker = worker  # the widget is busy while this runs
        self._set_busy(True)
        self.progress.setRange(0, 0)
        self.status.setText(f"Exporting the tracked cells ({what}) to {target}…")
        worker.start()
        return worker

    def _on_export_step(self, step: tuple) -> None:
        try:
            kind, _, _ = self._export.follow(step, self.progress)
            if kind == "frame":
                self.progress.setValue(1)
                self.status.setText(f"Exporting the tracked cells ({self._export.what}): labels read, writing…")
        except Exception as error:  # never let an exception escape a Qt slot
            self._export.fail(error)

    def _on_export_finished(self, worker: Any) -> None:
        run = self._export
        if self.worker is worker:
            self.worker = None
        if self.widget.worker is worker:
            self.widget.worker = None
        self._set_busy(False)
        if run.written:
            show_info(f"SAM 2: wrote {run.written}")
        self.status.setText(run.outcome() + (" (the tracked cells; the widget's own objects are in its 'Export "
                                             "labels')" if run.written else ""))

    def export(self, what: str, path: str, overwrite: bool = False) -> Optional[str]:
        """Write the current image's "labels" (.tif), "tracks" (.csv with parent ids), "ctc" folder or "geff" on this
        thread (the console; the buttons use :meth:`export_in_worker`); returns the path written (None on failure:
        the status line says why)."""
        entry = self.current()
        try:
            if entry is None:
                raise ValueError("nothing is tracked yet: press 'Track all cells' first")
            written = str(entry.tracking.export(what, export_path(what, path), overwrite=overwrite))
        except Exception as error:
            self._fail(error)
            return None
        show_info(f"SAM 2: wrote {written}")
        self.status.setText(f"Wrote {written} (the tracked cells; the widget's own objects are in its 'Export "
                            "labels')")
        return written


def _new_run(entry: Optional[_ImageTracking], base: int) -> Optional[TrackRun]:
    """The run a worker added to ``entry``'s undo stack (of length ``base`` before it); None if it wrote nothing."""
    if entry is None or len(entry.tracking.history) <= base:
        return None
    return entry.tracking.history[-1]


def _frames(frames: Sequence[int], done: str = "") -> str:
    """ "frame 3" / "frames 2-7", with ``done`` "frame 3 was <done>" / "frames 2-7 were <done>" """
    frames = sorted(set(frames))
    text = f"frame{'s' if len(frames) > 1 else ''} {frame_ranges(frames)}"
    return f"{text} {'were' if len(frames) > 1 else 'was'} {done}" if done else text


def _hbox(*items: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for item in items:
        row.addWidget(item)
    return row
