"""The "Track all cells" panel of the segmentation widget: options, run, cancel, undo, correct one cell (its ids
beside the widget's objects: :mod:`._track_all_ids_mixin`; its Tracks layer and exports: :mod:`._track_all_outputs`).

A collapsible part of :class:`~._widget.SegmentationWidget` (it uses only the widget's public parts: the
viewer, the model picker, the current image's state and controller). The compute lives in
:mod:`.track_all` (no Qt); runs go to a napari worker thread. While a run is in progress the widget's
``worker`` is this run's worker, so the widget counts as busy (clicks wait, its Cancel stops this run too).
"""

from __future__ import annotations

import zlib
from functools import partial
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea,
    QSpinBox, QVBoxLayout, QWidget,
)
from superqt import QCollapsible

from sam2_model.tracking import SEEDINGS, Lineage, TrackingResult, tracks_layer_data

from ._image_state import add_points_layer, layer_name, same_layer
from .labels_writer import EditedSince
from .layout import world_to_data
from .settings import load_settings, save_settings
from ._runs import qt_deleted
from ._session_actions import steps_worker
from ._track_all_ids_mixin import TrackIdsMixin
from ._track_all_outputs import TrackOutputsMixin
from ._track_ids import frame_ranges, frames_text
from .track_all import TrackAll, TrackAllOptions, TrackRun, clicks_of, frame_source, read_then_run, session_limits

FIX_NAME = "SAM2 cell fix"
SETTINGS_KEY = "track_all"
DEFAULTS: Dict[str, Any] = {"seeding": "blobs", "min_diameter": 8.0, "max_diameter": 40.0, "redetect_every": 5,
                            "divisions": True}
EXPORT_TIP = ("Exports hold what the masklets layer shows: the cells 'Track all cells' tracked (its tracks and "
              "lineage, corrections included) and cells painted by hand (tracks of their own, no parent); objects you "
              "clicked or seeded in the segmentation widget are left out: export them with the widget's own 'Export "
              "labels'.")
MAX_CHANNELS = 8  # an extra axis of at most this many slices may hold channels (the empty-result hint names it)
EXPORT_TIPS = {  # what each export button writes (then EXPORT_TIP)
    "labels": "Write one labels TIFF (a .tif file, frames x rows x cols) of track ids.",
    "tracks": "Write a CSV table (a .csv file), one row per track: track_id, begin, end (frames), parent_id, "
              "end_reason.",
    "ctc": "Write a Cell Tracking Challenge result folder (mask000.tif, … and res_track.txt); the folder must be new, "
           "empty or an earlier CTC result (a folder with other files is never emptied).",
    "geff": "Write a GEFF graph (a .geff zarr folder): a node per cell and frame at its centre, edges along tracks and "
            "divisions, the image's pixel size and frame interval as its axes.",
}
FOLLOW_DELAY_MS = 500  # after the last brush / fill / eraser stroke, the Tracks layer and the lineage follow the labels
RUN_BUTTONS = ("segment_button", "forward_button", "backward_button", "both_button", "undo_button",
               "seed_button")  # New object stays usable: it only moves the Object id


class ImageTracking:
    """One image's tracking result, its correction clicks layer and its lineage (Tracks) layer."""

    def __init__(self, image: Any, tracking: TrackAll) -> None:
        self.image = image
        self.tracking = tracking
        self.fix_points: Any = None
        self.tracks: Any = None
        self.painted = False  # a brush / fill / eraser stroke was seen on its masklets layer
        self.checksums: Dict[int, int] = {}  # frame -> crc32 of its plane when the lineage last followed the labels


class TrackAllPanel(TrackIdsMixin, TrackOutputsMixin, QCollapsible):
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
        self.images: Dict[Any, ImageTracking] = {}
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
        self.delete_button = QPushButton("Delete track")
        self.merge_button = QPushButton("Merge track into id")
        self.merge_spin = QSpinBox()
        self.merge_spin.setRange(1, 2**31 - 1)
        self.export_buttons = {what: QPushButton(text) for what, text in (
            ("labels", "Labels (TIFF)…"), ("tracks", "Tracks (CSV)…"), ("ctc", "CTC folder…"), ("geff", "GEFF…"))}
        self.progress = QProgressBar()
        self.status = QLabel("Options, then 'Track all cells': seeds on the current frame and tracks forwards.")
        self.status.setWordWrap(True)

        self.seeding_combo.setToolTip("blobs: clicks on detected blobs of the cell size (small or sparse cells); "
                                      "grid: SAM 2's point grid (large cells); grid+blobs: both, slowest")
        self.redetect_spin.setToolTip("frames between detections of new (entering) cells")
        for control, tip in (
                (self.min_diameter_spin, "The smallest cell diameter to detect, in pixels."),
                (self.max_diameter_spin, "The largest cell diameter to detect, in pixels."),
                (self.divisions_check, "Follow cell divisions: a dividing cell's track ends and its two daughters "
                                       "start new tracks linked to it."),
                (self.track_spin, "The track (cell) to correct; picking a label in the masklets layer sets it."),
                (self.track_button, "Find every cell on the frame shown and track them all to the end of the stack."),
                (self.cancel_button, "Stop tracking; the frames finished so far are kept whole."),
                (self.undo_button, "Undo the last tracking run or cell correction."),
                (self.fix_button, "Correct one cell: click it on the frame shown (its track id above), then "
                                  "'Re-segment & propagate this cell'."),
                (self.negative_check, "Correction clicks mark background (remove from the cell) instead of the cell."),
                (self.repropagate_button, "Segment the chosen cell from your correction clicks and track it again "
                                          "from this frame."),
                (self.delete_button, "Delete the track in 'Track id' on every frame, and its lineage row (its "
                                     "daughters become tracks without a parent). 'Undo tracking step' restores it."),
                (self.merge_button, "Relabel the track in 'Track id' as the id in the box beside on every frame: "
                                    "merges two pieces of one cell (refused where both are on one frame), or relabels "
                                    "the track when that id is unused. 'Undo tracking step' restores it."),
                (self.merge_spin, "The id the track in 'Track id' is merged into (a track) or relabelled as (an "
                                  "unused id).")):
            control.setToolTip(tip)
        self.toggleButton().setToolTip("Show or hide automatic tracking of every cell (no clicks needed).")
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
        column.addLayout(_hbox(self.delete_button, self.merge_button, self.merge_spin))
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
        self.delete_button.clicked.connect(self._on_delete_track)
        self.merge_button.clicked.connect(self._on_merge_track)
        self.follow_worker: Any = None  # the worker refreshing the lineage and Tracks from hand-edited labels
        self._follow_again: Optional[ImageTracking] = None  # a refresh asked for while one runs
        self._follow_timer = QTimer(self)
        self._follow_timer.setSingleShot(True)
        self._follow_timer.setInterval(FOLLOW_DELAY_MS)
        self._follow_timer.timeout.connect(self._follow_labels)
        self._follow_entry: Optional[ImageTracking] = None
        self._watched: list = []  # the masklets layers whose strokes are followed
        for what, button in self.export_buttons.items():
            button.clicked.connect(lambda _=False, w=what: self._on_export(w))
            button.setToolTip(f"{EXPORT_TIPS[what]} {EXPORT_TIP}")
        object_spin = getattr(widget, "object_spin", None)
        if object_spin is not None:  # a typed Object id never takes a tracked cell's id
            object_spin.valueChanged.connect(self._on_object_id_typed)
        objects = getattr(widget, "objects", None)
        if objects is not None:  # the objects panel shows what the labels hold after tracking replaced objects
            objects.replaced_frames = self.replaced_frames

    # ------------------------------------------------------------------ options
    def options(self) -> TrackAllOptions:
        """The panel's choices (ValueError naming the option when they are inconsistent)."""
        low, high = self.min_diameter_spin.value(), self.max_diameter_spin.value()
        if low > high:
            raise ValueError(f"Cell diameter: the largest cell ({high:g} px, the box after 'to') must be >= the "
                             f"smallest cell ({low:g} px, the first box); set them to the range of the cells' "
                             "diameters")
        return TrackAllOptions(self.seeding_combo.currentText(), (low, high),
                               self.redetect_spin.value(), self.divisions_check.isChecked())

    def _save_settings(self, *_: Any) -> None:
        save_settings(**{SETTINGS_KEY: {
            "seeding": self.seeding_combo.currentText(), "min_diameter": self.min_diameter_spin.value(),
            "max_diameter": self.max_diameter_spin.value(), "redetect_every": self.redetect_spin.value(),
            "divisions": self.divisions_check.isChecked()}})

    # ------------------------------------------------------------------ the current image
    def current(self) -> Optional[ImageTracking]:
        """The current image's tracking (made on first use; remade if its labels array changed)."""
        controller = self.widget.controller
        image = self.widget.image_layer
        if controller is None or image is None:
            return None
        entry = self.images.get(image.unique_id)
        if entry is None or entry.tracking.labels is not controller.labels:
            layout = controller.layout
            tracking = TrackAll(controller.labels, controller.num_frames, layout.frame_index_in_labels)  # no read
            entry = self.images[image.unique_id] = ImageTracking(image, tracking)
            labels_layer = self.widget.labels_layer
            if labels_layer is not None:
                labels_layer.events.selected_label.connect(self._on_label_picked)
        self._watch_masklets(self.widget.labels_layer)
        return entry

    def _watch_masklets(self, layer: Any) -> None:
        """Follow the brush / fill / eraser strokes on the masklets ``layer`` (and napari's undo / redo of them), once
        per layer (the layer may be made after its image's tracking)."""
        if layer is None or any(seen is layer for seen in self._watched):
            return
        self._watched.append(layer)
        layer.events.paint.connect(partial(self._on_masklets_painted, layer))  # (the events' source is not the layer)
        layer.events.set_data.connect(partial(self._on_masklets_redrawn, layer))

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
            start = self._start_frame(entry, self._current_frame(controller))
            if start is None:
                self.status.setText("Not tracked (cancelled): move the slider to the frame to start from, then "
                                    "'Track all cells'.")
                return
            reserved, limits = self.widget_ids(entry.image), session_limits(controller)
            steps = read_then_run(lambda: frame_source(controller.frames, model, controller.session_options, limits),
                                  lambda frames: entry.tracking.track(model, frames, start, options, reserved=reserved))
        except Exception as error:
            self._fail(error)
            return
        self._start(entry, steps, f"Tracking all cells from frame {start}")

    def _start_frame(self, entry: ImageTracking, shown: int) -> Optional[int]:
        """The frame to track from: the one ``shown``, or frame 0 if the person says so when the frames before it hold
        no labels (napari opens a stack on its middle frame; frames that hold some are continued, not asked about);
        None when the person cancels."""
        if shown == 0 or any(entry.tracking.plane(t).any() for t in range(shown - 1, -1, -1)):
            return shown
        from qtpy.QtWidgets import QMessageBox

        before = frames_text(range(shown))
        answer = QMessageBox.question(
            self, "Track all cells",
            f"The slider is on frame {shown} and {before} hold{'s' if shown == 1 else ''} no labels. Track the whole "
            f"movie from frame 0?\n\nYes: from frame 0. No: from frame {shown} ({before} stay empty). Cancel: "
            "nothing is tracked.",
            QMessageBox.Yes | QMessageBox.No | QMessageBox.Cancel, QMessageBox.Yes)
        if answer == QMessageBox.Cancel:
            return None
        return 0 if answer == QMessageBox.Yes else shown

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
        return entry.tracking.result(self.widget_ids(entry.image))  # what an export writes

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

    def _start(self, entry: ImageTracking, steps: Iterator, what: str) -> None:
        self._steps, self._run_image, self._outcome = steps, self.widget.image_layer, "running"
        self._run_base = len(entry.tracking.history)  # the run joins the stack when its generator starts
        self.status.setText(f"{what}…")
        self.progress.setRange(0, 0)
        self._show_progress()
        worker = steps_worker(steps, self.slot(self._on_step), self.slot(self._on_error),
                              self.slot(lambda _worker: self._on_finished(), ends_run=True))
        self.worker = self.widget.worker = worker  # the widget is busy while this runs
        self._set_busy(True)
        worker.start()

    def slot(self, callback: Callable[..., None], ends_run: bool = False) -> Callable[..., None]:
        """``callback`` for a worker's signal (``ends_run``: its finished signal, given the worker), as
        ``_runs._on_worker_finished`` guards the widget's: once the viewer's window (and this panel in it) was
        closed, the deleted widgets' RuntimeError (which aborted Python) is not raised; the run is stopped instead and,
        when it ends, let go of (the widget is no longer busy). Any other error is raised."""

        def guarded(*args: Any) -> None:
            try:
                callback(*args)
            except RuntimeError:
                if not qt_deleted(self):  # a fault of ours, not a closed window: not hidden
                    raise
                self._window_closed(args[0] if ends_run and args else None)

        return guarded

    def _window_closed(self, finished: Any = None) -> None:
        """The panel's Qt parts were deleted with the window: stop the run (nothing is left to show it); once its
        worker has ``finished``, close its steps and let go of it."""
        if finished is None:
            if self.worker is not None:
                self.worker.quit()
            return
        steps, self._steps = self._steps, None
        if steps is not None:
            steps.close()
        if self.worker is finished:
            self.worker = None
        if self.widget.worker is finished:
            self.widget.worker = None

    def _show_progress(self) -> None:
        """Scroll the dock (the QScrollArea napari puts a tall widget in) so that the status line, the progress bar
        and Cancel are in view while a run goes on (the panel sits at the bottom of the widget)."""
        area = self.parentWidget()
        while area is not None and not isinstance(area, QScrollArea):
            area = area.parentWidget()
        if area is not None:
            area.ensureWidgetVisible(self.status)
            area.ensureWidgetVisible(self.progress)

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
        if self._export is not None and self._export.owns(self.worker):
            self.worker.quit()
            show_info("SAM 2: export cancelled; nothing is written (an earlier file or folder is kept).")
        elif self.worker is not None:
            self._outcome = "cancelled"
            self.worker.quit()
            show_info("SAM 2: cancelled; the frames finished so far are kept whole ('Undo tracking step' in "
                      "'Track all cells' reverts the run).")

    def stop_run_on(self, image: Any, why: str) -> None:
        """Stop the tracking run (or correction) working on ``image`` (an Image layer whose image or masklets layer
        is going away; ``why`` says which): the frames finished are kept whole, and the status says why. An export
        goes on (it has read what it writes)."""
        worker = self.worker
        if worker is None or (self._export is not None and self._export.owns(worker)):
            return
        if same_layer(self._run_image, image):
            self._outcome = f"stopped: {why}"
            worker.quit()

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
        if outcome.startswith("stopped"):
            self.status.setText(f"Stopped: {outcome[9:]}. " + (f"{frames_text(done, 'tracked')} (whole frames)."
                                                               if done else "Nothing was written."))
        elif outcome == "cancelled":
            self.status.setText(f"Cancelled: {frames_text(done, 'tracked')} (whole frames), the others are as before; "
                                "'Undo tracking step' reverts the run." if done else
                                "Cancelled before any frame was written: the labels are as they were.")
        elif outcome == "failed":
            self.status.setText(f"{self.status.text()} ({frames_text(done, 'written')} whole; 'Undo tracking step' "
                                "reverts them.)" if done else f"{self.status.text()} (Nothing was written.)")
        elif run is not None and run.kind in ("delete", "merge"):
            self.status.setText(f"Done: {run.what} on {frames_text(done, 'changed')}; {self._counts(entry)}. "
                                "'Undo tracking step' restores it.")
        else:
            self._say_done(entry, run)
        if not self.widget.busy():  # the widget's status line tells the outcome too (not a stale hint)
            self.widget.status.setText(f"Track all cells: {self.status.text()}")
        self._refresh_labels(self._run_image)
        self._refresh_objects_panel()
        if entry is not None and entry.image in self.viewer.layers:  # not for a removed image
            self.update_tracks_layer(entry)
            self._ids_above_tracks(entry)

    def _say_done(self, entry: Optional[ImageTracking], run: Optional[TrackRun]) -> None:
        done = sorted(set(run.frames)) if run is not None else []
        span = f"frames {frame_ranges(done)}" if done else "no frame"
        lineage = entry.tracking.lineage if entry is not None else None
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        note = entry.tracking.note if entry is not None else ""
        if note and not lineage:  # nothing found: say what to check, not how to correct tracks
            self.status.setText(f"Done: {span}, no track: {note}.{self._channel_hint(entry)}")
            return
        joined = run.continued if run is not None and run.kind == "track" else {}
        went_on = (f" {len(joined)} cell(s) on frame {done[0]} continue their tracks of frame {done[0] - 1} (same "
                   "ids)." if joined else "")
        self.status.setText(f"Done: {span}, {len(lineage or ())} track(s), {len(lineage.divisions()) if lineage else 0} "
                            f"division(s).{went_on} Pick a track (or a label) and click it to correct it.")

    @staticmethod
    def _counts(entry: Optional[ImageTracking]) -> str:
        lineage = entry.tracking.lineage if entry is not None else Lineage()
        return f"{len(lineage)} track(s), {len(lineage.divisions())} division(s)"

    # ------------------------------------------------------------------ track-level edits
    def _on_delete_track(self) -> None:
        self._track_edit(lambda entry, track_id: entry.tracking.delete_track(track_id),
                         lambda track_id: f"Deleting track {track_id}")

    def _on_merge_track(self) -> None:
        into = self.merge_spin.value()
        self._track_edit(lambda entry, track_id: entry.tracking.merge_track(track_id, into),
                         lambda track_id: f"Merging track {track_id} into {into}", into)

    def _track_edit(self, make: Callable[[ImageTracking, int], Iterator], what: Callable[[int], str],
                    into: Optional[int] = None) -> None:
        """Run a track-level edit of the track in 'Track id' (``make(entry, id)``: its steps) in a worker, as a run
        (undoable, the Tracks layer follows at its end); refused, saying why, for the widget's own objects."""
        if self._refuse_if_busy():
            return
        try:
            if self.widget.controller is None:
                raise ValueError("Track the cells first ('Track all cells'), then pick a track (Track id)")
            entry = self.current()
            track_id = self.track_spin.value()
            objects = self.widget_ids(entry.image) - self.track_ids(entry.image)
            for value, role in ((track_id, "Track id"), (into, "the id to merge into")):
                if value is not None and value in objects:
                    raise ValueError(f"{role} {value} is an object of the segmentation widget (its own Delete / Merge "
                                     "act on it): choose a track's id, or an unused id")
            steps = make(entry, track_id)
        except Exception as error:
            self._fail(error)
            return
        self._follow_timer.stop()  # the edit's end remakes the Tracks layer from the labels
        self._start(entry, steps, what(track_id))

    # ------------------------------------------------------------------ following hand edits
    def _entry_of(self, layer: Any) -> Optional[ImageTracking]:
        """The tracking whose masklets layer is ``layer`` (None: none)."""
        for entry in self.images.values():
            state = self.widget.states.get(entry.image.unique_id)
            if state is not None and layer is not None and state.labels is layer:
                return entry
        return None

    def _on_masklets_painted(self, layer: Any, event: Any = None) -> None:
        """A brush / fill / eraser stroke on a tracked image's masklets layer: the lineage and Tracks follow soon."""
        entry = self._entry_of(layer)
        if entry is not None and len(entry.tracking.lineage):
            entry.painted = True
            self.schedule_follow(entry)

    def _on_masklets_redrawn(self, layer: Any, event: Any = None) -> None:
        """The masklets layer redrawn (every redraw; also napari's own Undo / Redo of a stroke, which sends no paint
        event): after strokes, the lineage follows when the plane shown changed since it last did (a checksum of one
        plane: cheap)."""
        entry = self._entry_of(layer)
        if entry is None or not entry.painted:
            return
        state = self.widget.states.get(entry.image.unique_id)
        if state is None or state.controller is None:
            return
        t = self._current_frame(state.controller)
        if 0 <= t < entry.tracking.num_frames and entry.checksums.get(t) != _checksum(entry.tracking.plane(t)):
            self.schedule_follow(entry)

    def schedule_follow(self, entry: ImageTracking) -> None:
        """Have the lineage and the Tracks layer of ``entry`` follow its labels ``FOLLOW_DELAY_MS`` after the last
        call (strokes come in bursts)."""
        self._follow_entry = entry
        self._follow_timer.start()

    def _follow_labels(self) -> None:
        """Re-derive the lineage and Tracks data from the labels in a worker thread (one at a time: a refresh asked
        for meanwhile runs once after it; a run or export in progress delays it)."""
        entry = self._follow_entry
        if entry is None:
            return
        if self.follow_worker is not None:
            self._follow_again = entry
            return
        if self.worker is not None or self.widget.busy():
            self._follow_timer.start()
            return
        from napari.qt.threading import create_worker

        before, runs, leave_out = entry.tracking.lineage, len(entry.tracking.history), self.widget_ids(entry.image)
        worker = self.follow_worker = create_worker(_followed, entry.tracking, leave_out, _start_thread=False,
                                                    _ignore_errors=True)
        worker.returned.connect(self.slot(lambda out: self._apply_follow(entry, before, runs, out)))
        worker.errored.connect(self.slot(self._fail))
        worker.finished.connect(self.slot(lambda: self._follow_done(worker)))
        worker.start()

    def _apply_follow(self, entry: ImageTracking, before: Lineage, runs: int, out: tuple) -> None:
        """Take the refreshed lineage and Tracks data, unless a run, undo or edit changed the tracking meanwhile."""
        lineage, result, tracks, checksums = out
        if entry.tracking.lineage is not before or len(entry.tracking.history) != runs:
            self.schedule_follow(entry)  # derived from a state that is gone: again, from the labels now
            return
        changed = lineage.rows() != before.rows()
        entry.tracking.follow(lineage)
        entry.checksums = checksums
        if entry.image in self.viewer.layers:
            self.follow_tracks_layer(entry, *tracks)
        painted = sorted({row.track_id for row in result.lineage.rows()} - {row.track_id for row in lineage.rows()})
        if changed or painted:
            extra = (f" ({len(painted)} of them painted by hand: {', '.join(map(str, painted[:10]))})" if painted
                     else "")
            self.status.setText(f"Labels edited by hand: {len(result.lineage)} track(s){extra}, "
                                f"{len(result.lineage.divisions())} division(s); the Tracks layer and the lineage "
                                "follow the labels.")

    def _follow_done(self, worker: Any) -> None:
        if self.follow_worker is worker:
            self.follow_worker = None
        again, self._follow_again = self._follow_again, None
        if again is not None:
            self.schedule_follow(again)

    def _channel_hint(self, entry: ImageTracking) -> str:
        """" Only slice i of axis a … was tracked: …" when ``entry``'s image has an axis of at most ``MAX_CHANNELS``
        slices that is neither its frames, its planes nor its channel axis (one slice of it was tracked: the slider's);
        else ""."""
        state = self.widget.states.get(entry.image.unique_id)
        layout = None if state is None or state.controller is None else state.controller.layout
        shape = getattr(entry.image.data, "shape", None)
        if layout is None or shape is None or layout.channel_axis is not None:
            return ""
        small = [(axis, index) for axis, index in layout.fixed if shape[axis] <= MAX_CHANNELS]
        if not small:
            return ""
        axis, index = small[0]
        return (f" Only slice {index} of axis {axis} ({shape[axis]} slices) was tracked: if that axis holds channels, "
                f"choose 'axis {axis} ({shape[axis]})' as the widget's 'Channel axis' and the channel that shows the "
                "cells, then track again.")

    def _refuse_if_busy(self) -> bool:
        if self.worker is not None or self.widget.busy():
            self.status.setText("Busy: wait for the run in progress (or cancel it).")
            return True
        return False

    def _set_busy(self, busy: bool) -> None:
        busy = busy or self.worker is not None
        for button in (self.track_button, self.undo_button, self.repropagate_button, self.delete_button,
                       self.merge_button, *self.export_buttons.values()):
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
            message = (f"Nothing was undone: {frames_text(error.frames, 'edited')} after this tracking step "
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
        what = {"track": "tracking run", "correct": "correction"}.get(run.kind, run.what or run.kind)
        self.status.setText(f"Undid the {what}: {len(set(run.frames))} frame(s) restored.")

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

    def _fix_prompt(self, entry: ImageTracking, controller: Any, track_id: int, frame: int) -> Any:
        points, image = entry.fix_points, self.widget.image_layer
        if points is None or points not in self.viewer.layers or not len(points.data):
            raise ValueError(f"click cell {track_id} first ('Correct cell: click it', then click on frame {frame})")
        coords = world_to_data(points.data, points.scale, points.translate, image.scale, image.translate)
        return clicks_of(coords, points.features["positive"].to_numpy(bool), points.features["obj_id"].to_numpy(int),
                         controller.layout, track_id, frame)

    def _remove_fix_clicks(self, entry: ImageTracking, track_id: int) -> None:
        points = entry.fix_points
        ids = points.features["obj_id"].to_numpy(int)
        if (ids == track_id).any():
            points.selected_data = set(np.flatnonzero(ids == track_id).tolist())
            points.remove_selected()



def _checksum(plane: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(plane).view(np.uint8))


def _followed(tracking: TrackAll, leave_out: Any) -> Tuple[Lineage, TrackingResult, tuple, Dict[int, int]]:
    """(the lineage as the labels hold it, the result with it, its Tracks (data, graph), {frame: checksum}): in the
    follow worker's thread."""
    lineage, result = tracking.followed(leave_out)
    checksums = {t: _checksum(tracking.plane(t)) for t in range(tracking.num_frames)}
    return lineage, result, tracks_layer_data(result), checksums


def _new_run(entry: Optional[ImageTracking], base: int) -> Optional[TrackRun]:
    """The run a worker added to ``entry``'s undo stack (of length ``base`` before it); None if it wrote nothing."""
    if entry is None or len(entry.tracking.history) <= base:
        return None
    return entry.tracking.history[-1]


def _hbox(*items: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for item in items:
        row.addWidget(item)
    return row
