"""The "Track all cells" panel of the segmentation widget: options, run, cancel, undo, correct one cell (its ids
beside the widget's objects: :mod:`._track_all_ids_mixin`; its Tracks layer and exports: :mod:`._track_all_outputs`;
Delete / Merge track and following hand edits: :mod:`._track_all_edits_mixin`; a run's start frame and its guards:
:mod:`._track_all_run_mixin`).

A collapsible part of :class:`~._widget.SegmentationWidget` (it uses only the widget's public parts: the
viewer, the model picker, the current image's state and controller). The compute lives in
:mod:`.track_all` (no Qt); runs go to a napari worker thread. While a run is in progress the widget's
``worker`` is this run's worker, so the widget counts as busy (clicks wait, its Cancel stops this run too).
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Set

import numpy as np
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton,
    QSpinBox, QVBoxLayout, QWidget,
)
from superqt import QCollapsible

from sam2_model.seeding import NAMES, diameter_cut_words, diameter_fit_problem
from sam2_model.tracking import SEEDINGS, Lineage, TrackingResult, tracks_layer_data
from sam2_model.tracking.detection import ADVICE_OPTION_NAMES

from ._image_layers_mixin import MASKLETS_REPLACED
from ._image_state import ROLE_KEY, add_points_layer, layer_name, out_of_plane_turn, same_layer
from ._tracks_layer import set_aside
from .labels_writer import STROKES_KEPT, EditedSince
from .layout import world_to_data
from .settings import load_settings, save_settings
from ._runs import qt_deleted, single_frame, with_tip
from ._session_actions import steps_worker
from ._track_all_edits_mixin import TrackEditsMixin, with_tracks
from ._track_all_ids_mixin import TrackIdsMixin
from ._track_all_outputs import TrackOutputsMixin
from ._track_all_run_mixin import BUSY, DIVISIONS_TEXT, DIVISIONS_TIP, TrackRunMixin
from ._track_ids import frame_ranges, frames_text
from .track_all import (
    TrackAll, TrackAllOptions, TrackRun, clicks_of, frame_source, painted_pixels, read_then_run, session_limits,
    thin_work,
)

FIX_NAME = "SAM2 cell fix"
DIAMETER_BOXES = "the Cell diameter boxes"  # the panel's control for the cell diameter range, in its advice
#: the words of a warning of a Track all run (the detector's advice, shared with the console: in the command line's
#: and the Python API's words) -> the panel's own, as napari pops it up (longest first: the first holds the second)
PANEL_WORDS = {ADVICE_OPTION_NAMES: f" ({DIAMETER_BOXES})", NAMES: DIAMETER_BOXES, "cell_diameter ": "cell diameter "}
SETTINGS_KEY = "track_all"
DEFAULTS: Dict[str, Any] = {"seeding": "blobs", "min_diameter": 8.0, "max_diameter": 40.0, "redetect_every": 5,
                            "divisions": True}
EXPORT_TIP = ("Exports hold what the masklets layer shows: the cells 'Track all cells' tracked (its tracks and "
              "lineage, corrections included) and cells painted by hand (tracks of their own, no parent); objects you "
              "clicked or seeded in the segmentation widget are left out: export them with the widget's own 'Export "
              "labels'.")
REPROPAGATE_TEXT = "Re-segment && propagate this cell"
RESEGMENT_TEXT = "Re-segment this cell"  # on one image: nothing to propagate to
LOADING = "Loading the model… Track all starts when it is ready."
BAR_FORMAT = "%p%"  # the progress bar's text (QProgressBar's own); inside a frame the frame's share is added
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


class ImageTracking:
    """One image's tracking result, its correction clicks layer and its lineage (Tracks) layer."""

    def __init__(self, image: Any, tracking: TrackAll) -> None:
        self.image = image
        self.tracking = tracking
        self.fix_points: Any = None
        self.tracks: Any = None
        self.painted = False  # a brush / fill / eraser stroke was seen on its masklets layer
        self.checksums: Dict[int, int] = {}  # frame -> crc32 of its plane when the lineage last followed the labels
        self.untracked: Set[int] = set()  # the hand-painted ids (no lineage row) the last follow found
        self.last_shown: Optional[int] = None  # the frame the last redraw of its masklets layer showed (after strokes)
        self.stroked: Set[int] = set()  # every frame a brush / fill / eraser stroke on its masklets layer touched
        # the frames each of the latest strokes on its masklets layer touched (napari's undo / redo replays one)
        self.strokes: Deque[Set[int]] = deque(maxlen=STROKES_KEPT)


class TrackAllPanel(TrackIdsMixin, TrackOutputsMixin, TrackEditsMixin, TrackRunMixin, QCollapsible):
    """Seeding mode, cell-size range, re-detection interval, divisions; Track all cells; correct; export."""

    def __init__(self, widget: Any) -> None:
        super().__init__("Track all cells (automatic)")
        self.widget = widget
        self.viewer = widget.viewer
        self.worker: Any = None
        self._steps: Optional[Iterator] = None
        self._derived: Dict[str, Any] = {}  # what the run's worker derived at its end (:func:`with_tracks`)
        self._run_image: Any = None
        self._aside_run: Optional[ImageTracking] = None  # the run's tracking, let go when its image got new data
        self._run_base = 0  # the length of the run's image's undo stack before the run
        self._run_layout: Any = None  # the layout of the run's labels (its image's controller's when it started)
        self._run_masklets: Any = None  # the masklets layer whose strokes the run follows (:meth:`_on_run_painted`)
        self._run_strokes: Dict[int, int] = {}  # frame stroked during the run -> the run's writes of it by then
        self._outcome = ""
        self._waiting_for_model = False  # Track all was pressed and waits for the model to load
        self._range_note = ""  # the run's Cell diameter range cut to its image's frames, in words (else "")
        self._model_run = True  # the run in progress calls the model (a track or a correction; not Delete / Merge)
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
        self.divisions_check = QCheckBox(DIVISIONS_TEXT)
        self.divisions_check.setChecked(bool(saved["divisions"]))
        self._timelapse_divisions = bool(saved["divisions"])  # the saved setting (time-lapses)
        self._z_image: Any = None  # the z-stack whose Divisions were turned off (:meth:`refresh_divisions`)
        self.track_button = QPushButton("Track all cells (from this frame)")
        self.cancel_button = QPushButton("Cancel")
        self.undo_button = QPushButton("Undo tracking step")
        self.track_spin = QSpinBox()
        self.track_spin.setRange(1, 2**31 - 1)
        self.fix_button = QPushButton("Correct cell: click it")
        self.negative_check = QCheckBox("Negative clicks")
        self.repropagate_button = QPushButton(REPROPAGATE_TEXT)
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
                (self.divisions_check, DIVISIONS_TIP),
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
        for signal in (widget.image_combo.currentTextChanged, widget.axes.edited):  # after the widget's own slots
            signal.connect(lambda *_: QTimer.singleShot(0, self.slot(self.refresh_divisions)))
        self.track_button.clicked.connect(self._on_track)
        self.cancel_button.clicked.connect(self.cancel)
        self.undo_button.clicked.connect(self.undo)
        self.fix_button.clicked.connect(self.start_correction)
        self.negative_check.toggled.connect(self._on_click_kind)
        self.track_spin.valueChanged.connect(self._on_click_kind)
        self.repropagate_button.clicked.connect(self._on_repropagate)
        self.delete_button.clicked.connect(self._on_delete_track)
        self.merge_button.clicked.connect(self._on_merge_track)
        self._init_follow()
        for what, button in self.export_buttons.items():
            button.clicked.connect(lambda _=False, w=what: self._on_export(w))
            button.setToolTip(f"{EXPORT_TIPS[what]} {EXPORT_TIP}")
        object_spin = getattr(widget, "object_spin", None)
        if object_spin is not None:  # a typed Object id never takes a tracked cell's id
            object_spin.valueChanged.connect(self._on_object_id_typed)
        objects = getattr(widget, "objects", None)
        if objects is not None:  # the objects panel shows what the labels hold after tracking replaced objects
            objects.replaced_frames = self.replaced_frames
        picker = getattr(widget, "picker", None)
        if picker is not None:  # a load that ends without a model drops a waiting Track all: said
            picker.busy.connect(self.slot(self._on_picker_busy))

    # ------------------------------------------------------------------ options
    def options(self) -> TrackAllOptions:
        """The panel's choices (ValueError naming the option when they are inconsistent); Divisions as
        :meth:`refresh_divisions` leaves them for the current image (off on a z-stack unless ticked)."""
        self.refresh_divisions()
        low, high = self.min_diameter_spin.value(), self.max_diameter_spin.value()
        if low > high:
            raise ValueError(f"Cell diameter: the largest cell ({high:g} px, the box after 'to') must be >= the "
                             f"smallest cell ({low:g} px, the first box); set them to the range of the cells' "
                             "diameters")
        return TrackAllOptions(self.seeding_combo.currentText(), (low, high),
                               self.redetect_spin.value(), self.divisions_check.isChecked())

    def _save_settings(self, *_: Any) -> None:
        """Keep the options for the next session; Divisions as set for time-lapses (a z-stack's are not saved)."""
        if self._z_image is None:
            self._timelapse_divisions = self.divisions_check.isChecked()
        save_settings(**{SETTINGS_KEY: {
            "seeding": self.seeding_combo.currentText(), "min_diameter": self.min_diameter_spin.value(),
            "max_diameter": self.max_diameter_spin.value(), "redetect_every": self.redetect_spin.value(),
            "divisions": self._timelapse_divisions}})

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

    def _current_frame(self, controller: Any) -> int:
        axis = controller.layout.frame_axis
        return 0 if axis is None else int(self.viewer.dims.current_step[axis])

    def _on_label_picked(self, event: Any = None) -> None:
        layer = self.widget.labels_layer
        if layer is not None and int(layer.selected_label) > 0:
            self.track_spin.setValue(int(layer.selected_label))

    # ------------------------------------------------------------------ runs
    def follow_widget_run(self, running: bool) -> None:
        """The widget's run (Propagate, a click, Load session, an export, an edit; this panel's own runs too) started
        (``running``) or ended: the panel's run, undo, edit and export buttons are off meanwhile (they would only say
        "Busy"), and on again after it unless a run of the panel goes on; a "Busy" line a press left is cleared."""
        busy = running or self.worker is not None
        for button in (self.track_button, self.undo_button, self.repropagate_button, self.delete_button,
                       self.merge_button, *self.export_buttons.values()):
            button.setEnabled(not busy)
        self.refresh_frame_controls(busy)
        if not busy and self.status.text().startswith(BUSY):
            self.status.setText("")

    def single_image(self, image: Any = None) -> bool:
        """Whether ``image`` (default: the current image, under the widget's axis choices now) is one 2D image (no
        frame axis, or one of length 1): nothing to track through; another image is read with the axes of its last
        run. False without an image (or run) or for axes that cannot work."""
        current = self.widget.image_layer
        if image is None or image is current:
            return current is not None and self.widget.single_image()
        state = self.widget.states.get(image.unique_id)
        if state is None or state.controller is None:
            return False
        return single_frame(state.controller.layout, getattr(image.data, "shape", None))

    def refresh_frame_controls(self, busy: bool = False) -> None:
        """The frame-only options and tools off on one image, their tooltips saying why (Detect new cells every,
        Divisions, the Tracks CSV); the correction button then only re-segments (there is nothing to propagate to)."""
        single = self.single_image()
        with_tip(self.redetect_spin, single)
        with_tip(self.divisions_check, single)
        with_tip(self.export_buttons["tracks"], single, on=not busy)
        self.repropagate_button.setText(RESEGMENT_TEXT if single else REPROPAGATE_TEXT)

    def _on_track(self) -> None:
        """Track all pressed: the options are checked now (a refusal says why at once); with the model not loaded
        yet the status says so and the run starts, with the options as pressed, once it is (the Divisions tick read
        again then where the image's file was still read for its calibration when pressed: it may have changed)."""
        picker = self.widget.picker
        if self._waiting_for_model:  # pressed again while the model loads: it starts once
            self.status.setText(LOADING)
            self._show_progress()
            return
        if (self.worker is not None or self.widget.worker is not None) and self._refuse_if_busy():
            return
        try:
            options = self.options()
            reading = self.calibration_reading() is not None  # the Divisions tick not settled yet (a z-stack's?)
            picker.choice().check()
            image = self.widget.image_layer
            turned = "" if image is None else out_of_plane_turn(image)  # as Propagate refuses it: frames misread
            if turned:
                raise ValueError(turned)
        except ValueError as error:
            self._fail(error)
            return
        controller = self.widget.controller  # the image's frames known already: a range that fits none refused now
        if controller is not None and self._diameters_refused(options, controller.frame_shape):
            return
        if not picker.is_ready() or picker.worker is not None:
            self._waiting_for_model = True
            self.status.setText(LOADING)
            self._show_progress()  # (the status line in view)
        picker.when_ready(lambda: self._track(options, divisions_unsettled=reading))

    def _on_picker_busy(self, busy: bool) -> None:
        """A model load ended: a Track all that waited for it and was dropped (the load failed or was cancelled)
        says so (checked once the picker ran the actions that waited: a load that went well ran it)."""
        if not busy and self._waiting_for_model:
            from qtpy.QtCore import QTimer

            QTimer.singleShot(0, self.slot(self._model_wait_ended))

    def _model_wait_ended(self) -> None:
        picker = self.widget.picker
        if self._waiting_for_model and picker.worker is None:  # (a worker: the picker loads the model next)
            self._waiting_for_model = False
            why = picker.status.text()
            self.status.setText(f"Not tracked: the model is not loaded{f' ({why})' if why else ''}.")

    def _track(self, options: Optional[TrackAllOptions] = None, divisions_unsettled: bool = False) -> None:
        """Start a run from the frame shown (or frame 0, :meth:`_start_frame`) with ``options`` (default: the
        panel's), after asking when it would replace frames edited by hand since a tracking step wrote them.
        divisions_unsettled: ``options`` were taken while the image's file was read for its calibration (whether its
        frames are z slices), so their Divisions tick is the panel's now, read once that read is over (a read still
        going on refuses the run, :meth:`_refuse_if_busy`)."""
        self._waiting_for_model = False
        if self._refuse_if_busy():
            return
        try:
            options = self.options() if options is None else options
            if divisions_unsettled:
                self.refresh_divisions()
                options = replace(options, divisions=self.divisions_check.isChecked())
            controller = self.widget.ensure_controller()
            entry = self.current()
            model = controller.model
            start = self._start_frame(entry, self._current_frame(controller))
            if start is None:
                self.status.setText("Not tracked (cancelled): move the slider to the frame to start from, then "
                                    "'Track all cells'.")
                return
            if self._diameters_refused(options, controller.frame_shape):
                return
            edited = self.hand_edited(entry, range(start, entry.tracking.num_frames))
            if edited and not self._replace_hand_edits(edited):
                self.status.setText(f"Not tracked: {frames_text(edited)} keep{'s' if len(edited) == 1 else ''} "
                                    "the hand edits.")
                return
            reserved, limits = self.widget_ids(entry.image), session_limits(controller)
            steps = read_then_run(lambda: frame_source(controller.frames, model, controller.session_options, limits),
                                  lambda frames: entry.tracking.track(model, frames, start, options, reserved=reserved))
        except Exception as error:
            self._fail(error)
            return
        self._start(entry, steps, f"Tracking all cells from frame {start}", reserved)
        if "blobs" in options.seeding:  # the boxes cut to the image's frames: said from the start of the run
            self._range_note = diameter_cut_words(*options.cell_diameter, controller.frame_shape)
        if self._range_note:
            self.status.setText(f"Tracking all cells from frame {start}…{self._advice()}")

    def _diameters_refused(self, options: TrackAllOptions, frame_shape: Sequence[int]) -> bool:
        """Whether the Cell diameter boxes of ``options`` fit no cell in frames of ``frame_shape`` (H, W) (their
        smallest wider than the frames' short side: blob seeding would refuse the run on its first frame, in the
        command line's words); the status line then says so, naming the boxes and what fits, and nothing runs."""
        low, high = options.cell_diameter
        if "blobs" not in options.seeding or diameter_fit_problem(low, high, frame_shape) is None:
            return False
        rows, cols = (int(n) for n in frame_shape[:2])
        short = min(rows, cols)
        self.status.setText(f"Not tracked: the Cell diameter boxes ({low:g} to {high:g} px) are wider than this "
                            f"image's {rows} x {cols} px frames, {short} px across: no cell of that range fits in them. "
                            f"Set both boxes to at most {short} px.")
        return True

    def _replace_hand_edits(self, frames: Sequence[int]) -> bool:
        """Whether the person lets a run replace ``frames`` (they hold hand edits made after the tracking step that
        wrote them): a Yes / No question (scripts, :meth:`track_now`, are not asked)."""
        from qtpy.QtWidgets import QMessageBox

        text = frames_text(frames)
        answer = QMessageBox.question(
            self, "Track all cells",
            f"{text[0].upper()}{text[1:]} hold{'s' if len(frames) == 1 else ''} hand edits made after the last run: "
            "Track all replaces them (Undo tracking step brings them back). Go on?",
            QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
        return answer == QMessageBox.Yes

    def track_now(self, image: Any = None, start_frame: int = 0, options: Optional[TrackAllOptions] = None,
                  progress: Optional[Callable[[int, int], None]] = None) -> TrackingResult:
        """Track ``image`` (an Image layer or its name; default the current one) on this thread (the console). It asks
        nothing (the start frame is the caller's; frames edited by hand are replaced, as a run does: Undo tracking
        step brings them back)."""
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
        run = _new_run(entry, base)
        self.forget_checksums(entry, run.frames if run is not None else ())
        self._refresh_labels(entry.image)
        self._refresh_objects_panel()
        result = entry.tracking.result(self.widget_ids(entry.image))  # what an export writes
        entry.untracked = set(entry.tracking.untracked_ids(result))
        self.update_tracks_layer(entry, tracks_layer_data(result))
        self._say_done(entry, run)
        self._ids_above_tracks(entry)
        return result

    def _on_repropagate(self) -> None:
        if self._refuse_if_busy():
            return
        self.widget.picker.when_ready(self._repropagate)

    def _repropagate(self) -> None:
        try:
            turned = "" if self.widget.image_layer is None else out_of_plane_turn(self.widget.image_layer)
            if turned:  # the frame shown is no frame of the stack under such a turn
                raise ValueError(turned)
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
        self._start(entry, steps, f"Correcting cell {track_id} from frame {frame}", self.widget_ids(entry.image))

    def _start(self, entry: ImageTracking, steps: Iterator, what: str, leave_out: Optional[Set[int]] = None,
               model_run: bool = True) -> None:
        """Run ``steps`` in a worker; with ``leave_out`` (the widget's ids) the worker also derives the Tracks layer's
        data at their end (:func:`with_tracks`: the GUI thread reads no stack). ``model_run``: its steps are model
        calls (a track or a correction; Cancel says it stops after the current one)."""
        self._derived = {}
        self._aside_run = None
        self._range_note = ""  # (a Track all run says its own once started: _track)
        self._model_run = model_run
        if leave_out is not None:
            steps = with_tracks(steps, entry.tracking, leave_out, self._derived)
        # a frame's progress crosses to this thread once per percent; a step after Cancel at once (the worker stops)
        steps = thin_work(steps, lambda: bool(getattr(self.worker, "abort_requested", False)))
        self._steps, self._run_image, self._outcome = steps, self.widget.image_layer, "running"
        self._run_base = len(entry.tracking.history)  # the run joins the stack when its generator starts
        controller, state = self.widget.controller, self.widget.states.get(entry.image.unique_id)
        self._run_layout = None if controller is None else controller.layout
        self._strokes_replaced(None)  # (a run whose end never came, its window closed: no longer followed)
        self._run_masklets = None if state is None else state.labels
        if self._run_masklets is not None:
            self._run_masklets.events.paint.connect(self._on_run_painted)
        self.status.setText(f"{what}…")
        self.progress.setRange(0, 0)
        self._show_progress()
        worker = steps_worker(steps, self.slot(self._on_step), self.slot(self._on_error),
                              self.slot(lambda _worker: self._on_finished(), ends_run=True), words=PANEL_WORDS)
        self.worker = self.widget.worker = worker  # the widget is busy while this runs
        self._set_busy(True)
        worker.start()

    def _on_step(self, step: tuple) -> None:
        """One step of the run: the bar and the status line follow (the status line keeps "Cancelling…" or the
        reason a run is stopping once those are said)."""
        try:
            kind, frame, active, total = step
            say = self.status.setText if self._outcome == "running" else (lambda text: None)
            if kind == "plan":
                self.progress.setRange(0, max(int(total), 1))
                self.progress.setValue(0)
                self.progress.setFormat(BAR_FORMAT)
            elif kind == "work":  # inside a frame (the bar counts whole frames): its text and the status line move
                share = int(100 * int(active) / max(int(total), 1))
                self.progress.setFormat(f"{BAR_FORMAT} (frame {frame}: {share}%)")
                say(f"Tracking frame {frame}: {share}% of its work done{self._work(step)}…{self._advice()}")
            elif kind == "note":  # the run found something to advise on (too many candidate cells on a frame)
                say(f"Tracking frame {frame}…{self._advice()}")
            elif kind == "frame":
                entry = self.images.get(getattr(self._run_image, "unique_id", None))
                if entry is not None:  # its masklets given other data meanwhile: the run stops (its end says so)
                    self.widget.stop_if_masklets_replaced(self.widget.states.get(entry.image.unique_id),
                                                          self._run_layout, entry.tracking.labels)
                self.progress.setFormat(BAR_FORMAT)
                self.progress.setValue(min(self.progress.value() + 1, self.progress.maximum()))
                say(f"frame {frame}: {active} cell(s) tracked")
                self.forget_checksums(self.images.get(getattr(self._run_image, "unique_id", None)), [frame])
                self._refresh_labels(self._run_image)
        except Exception as error:  # never let an exception escape a Qt slot
            if isinstance(error, RuntimeError) and qt_deleted(self):
                raise  # the window was closed: :meth:`slot` stops the run quietly
            self._on_error(error)

    def _on_run_painted(self, event: Any = None) -> None:
        """A brush / fill / eraser stroke on the run's masklets layer while it runs: the pixels it changed, frame by
        frame, are kept as painted by the run's writes of those frames (:attr:`TrackAll.painted`; a run writes frames
        whole, so a stroke on a frame it had not reached was lost). A stroke whose pixels cannot be told: its frames
        are remembered with how often the run had written each by then, and the run's end names those it wrote after
        the stroke (:meth:`_strokes_replaced`)."""
        entry = self.images.get(getattr(self._run_image, "unique_id", None))
        layer = self._run_masklets
        if entry is None or layer is None or self.worker is None:
            return
        tracking, atoms = entry.tracking, getattr(event, "value", None)
        run = _new_run(entry, self._run_base)
        written = [] if run is None else list(run.frames)
        channel = getattr(self._run_layout, "channel_axis", None)
        shown = channel if channel is not None and np.ndim(layer.data) == np.ndim(tracking.labels) + 1 else None
        for t in sorted(tracking.stroke_frames(atoms, shown)):
            index = tracking.index_of(t)
            if layer.data.ndim == len(index) + 1 and channel is not None:  # the masklets shown on the image's axes
                index = (*index[:channel], 0, *index[channel:])
            pixels = painted_pixels(atoms, index, tracking.plane(t).shape) if layer.data.ndim == len(index) else None
            if pixels is None:
                self._run_strokes.setdefault(int(t), written.count(int(t)))
            elif pixels.any():
                tracking.painted[int(t)] = pixels | tracking.painted.get(int(t), False)

    def _strokes_replaced(self, run: Optional[TrackRun]) -> str:
        """" Note: the strokes painted during the run on frame 18 were replaced …" for the frames stroked during the
        run, whose pixels could not be told, that it wrote after the stroke (:meth:`_on_run_painted`), else ""; stops
        following the strokes (the run's tracking keeps no painted pixels)."""
        if self._run_masklets is not None:
            self._run_masklets.events.paint.disconnect(self._on_run_painted)
        strokes, self._run_strokes, self._run_masklets = self._run_strokes, {}, None
        for entry in self.images.values():
            entry.tracking.painted = {}
        written = [] if run is None else list(run.frames)
        replaced = sorted(t for t, before in strokes.items() if written.count(t) > before)
        if not replaced:
            return ""
        return (f" Note: the strokes painted during the run on {frames_text(replaced)} were replaced: the run "
                f"tracked {'that frame' if len(replaced) == 1 else 'those frames'} after them (it writes frames "
                "whole). Paint them again where needed ('Undo tracking step' reverts the run).")

    def _refresh_labels(self, image: Any) -> None:
        state = None if image is None else self.widget.states.get(image.unique_id)
        if state is not None and state.labels is not None and state.labels in self.viewer.layers:
            state.labels.refresh()

    def _on_error(self, error: Exception) -> None:
        self._outcome = "failed"
        self._fail(error)

    def _fail(self, error: Exception) -> None:
        if qt_deleted(self):  # the window was closed: nothing is left to show it in
            return
        show_error(f"SAM 2: {error}")
        self.status.setText(f"Failed: {error}")

    def _on_finished(self) -> None:
        steps, outcome, mine = self._steps, self._outcome, self.worker
        if outcome == "running" and mine is not None and mine.abort_requested:
            outcome = "cancelled"  # stopped by the widget's own Cancel button
        self._steps, self.worker = None, None
        self.progress.setFormat(BAR_FORMAT)
        if steps is not None:
            steps.close()  # ends the tracker's session now (a cancelled generator is left suspended)
        if self.widget.worker is mine:
            self.widget.worker = None
        self._set_busy(False)
        aside, self._aside_run = self._aside_run, None  # its image got data of another shape during the run
        taken_back = self._take_back_aside(aside, self._run_masklets)
        entry = self.images.get(getattr(self._run_image, "unique_id", None))
        run = _new_run(entry, self._run_base)  # None: the run wrote nothing (it is not on the undo stack)
        done = sorted(set(run.frames)) if run is not None else []
        image = self._run_image  # named when another image is shown now
        where = "" if image is None or same_layer(image, self.widget.image_layer) else f" on '{image.name}'"
        strokes = self._strokes_replaced(run)
        back = "" if entry is None else self.widget.masklets_back(  # its masklets given other data meanwhile
            self.widget.states.get(entry.image.unique_id), self._run_layout, entry.tracking.labels, done)
        if outcome.startswith("stopped"):
            self.status.setText(f"Stopped: {outcome[9:]}. " + (_stopped_kept(done, run, outcome) if done else
                                                               taken_back.strip() or "Nothing was written."))
            taken_back = ""  # (said)
        elif outcome == "cancelled":
            self.status.setText(f"Cancelled{where}: {frames_text(done, _done_word(run))} (whole frames), the others "
                                "are as before; 'Undo tracking step' reverts the run." if done else
                                f"Cancelled{where}: nothing changed (the labels are as they were).")
        elif outcome == "failed":
            self.status.setText(f"{self.status.text()} ({frames_text(done, 'written')} whole; 'Undo tracking step' "
                                "reverts them.)" if done else f"{self.status.text()} (Nothing was written.)")
        elif run is not None and run.kind in ("delete", "merge"):
            self.status.setText(_edit_done(run, self._counts(entry), where))
        else:
            self._say_done(entry, run, where)
        if back:
            self.status.setText(f"{self.status.text()} Note: {back}")
        if taken_back:
            self.status.setText(self.status.text() + taken_back)
        self.status.setText(self.status.text() + strokes + self._advice())  # Done, Cancelled or Failed: advice stays
        if not self.widget.busy():  # the widget's status line tells the outcome too (not a stale hint)
            self.widget.status.setText(f"Track all cells: {self.status.text()}")
        self.forget_checksums(entry, done)  # (a step cancelled whole wrote its frames back: _on_step forgot them)
        self._refresh_labels(self._run_image)
        self._refresh_objects_panel()
        derived, self._derived = self._derived, {}
        if entry is not None and "untracked" in derived:
            entry.untracked = derived["untracked"]
        if entry is not None and entry.image in self.viewer.layers:  # not for a removed image
            if "tracks" in derived:
                self._derive_pending.pop(entry, None)  # (the run derived it after any Undo before it)
                self.update_tracks_layer(entry, derived["tracks"])
            else:  # it did not finish (cancelled, failed, stopped): derived in a worker all the same
                self.derive_tracks(entry)
            self._ids_above_tracks(entry)
        self._derive_next()  # Tracks layers of other images asked for while it ran

    @staticmethod
    def _work(step: tuple) -> str:
        """" (<the work of ``step`` in words>)" for a "work" step that says its work (a
        :class:`~.track_all.WorkSays`: the stage with its counts and time left, e.g. "seeding: 362/1086 seeds placed,
        140 cells found, about 3 min left"), else "". The words come with the step, not from the running tracking,
        which may be on another frame by the time the step is shown."""
        words = getattr(step, "words", "")
        return f" ({words})" if words else ""

    def _advice(self) -> str:
        """" Note: <advice>." for the run's Cell diameter range cut to its image's frames (said before the run starts,
        whether the boxes hold the default or not) and for the run's image while its tracking has advice
        (:attr:`TrackAll.advice`: too many candidate cells on a frame; the detector's own words of the cut range are
        the same and said once), else ""."""
        entry = self.images.get(getattr(self._run_image, "unique_id", None))
        advice = entry.tracking.advice if entry is not None else ""
        notes = [self._range_note] if self._range_note and self._range_note not in advice else []
        return "".join(f" Note: {note}." for note in notes + ([advice] if advice else []))

    def _say_done(self, entry: Optional[ImageTracking], run: Optional[TrackRun], where: str = "") -> None:
        """The status line of a run that ended whole ("Done: frames …"; ``where``: " on 'image'" when another image is
        shown now)."""
        done = sorted(set(run.frames)) if run is not None else []
        span = f"frames {frame_ranges(done)}" if done else "no frame"
        lineage = entry.tracking.lineage if entry is not None else None
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        note = entry.tracking.note if entry is not None else ""
        if entry is not None and self.single_image(entry.image):  # one image: cells, not frames, tracks, divisions
            found = f"{len(lineage)} cell(s)" if lineage else f"no cell: {note}" if note else "no cell"
            hint = (" Pick a cell (or a label) and click it to correct it." if lineage else
                    self._channel_hint(entry))
            self.status.setText(f"Done{where}: {found}.{hint}")
            return
        if note and not lineage:  # nothing found: say what to check, not how to correct tracks
            self.status.setText(f"Done{where}: {span}, no track: {note}.{self._channel_hint(entry)}")
            return
        joined = run.continued if run is not None and run.kind == "track" else {}
        went_on = (f" {len(joined)} cell(s) on frame {done[0]} continue their tracks of frame {done[0] - 1} (same "
                   "ids)." if joined else "")
        self.status.setText(f"Done{where}: {span}, {len(lineage or ())} track(s), {len(lineage.divisions()) if lineage else 0} "
                            f"division(s).{went_on} Pick a track (or a label) and click it to correct it.")

    @staticmethod
    def _counts(entry: Optional[ImageTracking]) -> str:
        lineage = entry.tracking.lineage if entry is not None else Lineage()
        return f"{len(lineage)} track(s), {len(lineage.divisions())} division(s)"

    def update_tracks_layer(self, entry: ImageTracking, tracks: tuple) -> Any:
        """As :meth:`TrackOutputsMixin.update_tracks_layer`, but one image gets no lineage Tracks layer (one point
        per cell at t=0 shows nothing the labels do not; a layer left from a stack is removed): None then."""
        if self.single_image(entry.image):
            tracks = (np.zeros((0, 4)), {})
        return super().update_tracks_layer(entry, tracks)

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

    # ------------------------------------------------------------------ undo
    def undo(self) -> None:
        """Undo the last tracking run or correction of the current image (labels, lineage; the Tracks layer follows
        from a worker thread: :meth:`derive_tracks`)."""
        entry = self.current()
        if self._refuse_if_busy():
            return
        try:
            run = None if entry is None else entry.tracking.undo()
        except EditedSince as error:  # nothing is thrown away silently
            message = self.tracking_undo_refused(entry.image, error.frames)
            show_warning(f"SAM 2: {message}")
            self.status.setText(message)
            return
        except ValueError as error:
            self._fail(error)
            return
        if run is None:
            old = self.widget.old_data_layers(self.widget.image_layer)  # a crop set the earlier steps aside
            self.status.setText(f"No tracking step to undo: the tracking before the image got data of another shape "
                                f"was on the old data, kept in {old} (no Undo changes them)." if old else
                                "No tracking step to undo.")
            return
        self.forget_checksums(entry, run.frames)
        self._refresh_labels(entry.image)
        self._refresh_objects_panel()
        self.derive_tracks(entry)
        what = {"track": "tracking run", "correct": "correction"}.get(run.kind, run.what or run.kind)
        self.status.setText(f"Undid the {what}: {len(set(run.frames))} frame(s) restored.")
        self.widget.status.setText(f"Track all cells: {self.status.text()}")  # not the run's "Done" any more

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
            entry.fix_points.metadata = {**entry.fix_points.metadata,  # the image's, not its clicks layer
                                         ROLE_KEY: {"role": "fix", "image": str(image.unique_id)}}
        self._on_click_kind()
        self.viewer.layers.selection.active = entry.fix_points
        entry.fix_points.mode = "add"
        self.status.setText(f"Click cell {self.track_spin.value()} on this frame (tick 'Negative clicks' for "
                            "background), then 'Re-segment & propagate this cell'.")

    def set_aside(self, image: Any) -> Dict[str, str]:
        """``image`` was given data of another shape (a crop) and its masklets layer set aside: its tracking, made on
        the old pixels, is let go (its undo steps, lineage and exports: nothing of it applies to the new data), and its
        lineage Tracks layer and correction clicks layer are kept under new names, "... (old data)", no longer the
        image's (:func:`~._tracks_layer.set_aside`: they stop following the image's placement and name; the next Track
        all makes new ones). Returns their new names, {"lineage": ..., "fix": ...} ("" where there was none).

        During a run of the panel on ``image`` (the new data stops it) the lineage set aside is the one before the
        run: the run's end writes no lineage and takes back the frames it wrote into the old masks
        (:meth:`_take_back_aside`), so the layers set aside show the masks and tracks from before the run."""
        entry = self.images.pop(image.unique_id, None)
        names = {"lineage": "", "fix": ""}
        if entry is None:
            return names
        worker = self.worker
        if worker is not None and same_layer(image, self._run_image) and not (
                self._export is not None and self._export.owns(worker)):  # (an export goes on: it wrote nothing)
            self._aside_run = entry
        for key, layer in (("lineage", entry.tracks), ("fix", entry.fix_points)):
            if layer is not None and layer in self.viewer.layers:
                names[key] = set_aside(layer)
        entry.tracks = entry.fix_points = None
        return names

    def _take_back_aside(self, entry: Optional[ImageTracking], masklets: Any) -> str:
        """At the end of a run whose image got data of another shape meanwhile (:meth:`set_aside` let its tracking go):
        the frames the run wrote into the old masks (``masklets``, the layer set aside) are taken back (its undo step),
        so they and the lineage set aside are those from before the run. Returns the words for the status line ("": the
        run wrote nothing)."""
        run = _new_run(entry, self._run_base)
        if entry is None or run is None:
            return ""
        old = f"'{masklets.name}'" if masklets is not None and masklets in self.viewer.layers else "the old masks"
        what = f"{_done_word(run)} on the old data before it stopped, {frames_text(run.frames)}"
        try:
            entry.tracking.undo()
        except ValueError as error:  # (EditedSince: painted meanwhile; nothing is thrown away silently)
            return f" What it {what}, stays in {old} ({error})."
        if masklets is not None and masklets in self.viewer.layers:
            masklets.refresh()
        return (f" What it {what}, was taken back: {old} and the tracks set aside with it show the masks and tracks "
                "from before the run.")

    def follow_image_name(self, image: Any, old_name: str) -> None:
        """``image`` was renamed from ``old_name``: its correction clicks layer follows the new name (as the widget's
        layers of the image do) unless the person gave it another name."""
        entry = self.images.get(image.unique_id)
        points = None if entry is None else entry.fix_points
        if points is not None and points in self.viewer.layers and points.name == layer_name(FIX_NAME, image, old_name):
            points.name = layer_name(FIX_NAME, image)

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



def _new_run(entry: Optional[ImageTracking], base: int) -> Optional[TrackRun]:
    """The run a worker added to ``entry``'s undo stack (of length ``base`` before it); None if it wrote nothing."""
    if entry is None or len(entry.tracking.history) <= base:
        return None
    return entry.tracking.history[-1]


def _edit_done(run: TrackRun, counts: str, where: str = "") -> str:
    """The status line after a Delete / Merge track step ``run`` (its ``what`` and frames), ``counts`` the tracks and
    divisions left, e.g. "Done: deleted track 1 on frames 0-2; now 24 track(s), 3 division(s). 'Undo tracking step'
    restores it." (``where``: " on 'image'" after "Done" when another image is shown now)."""
    return f"Done{where}: {run.what} on {frames_text(run.frames)}; now {counts}. 'Undo tracking step' restores it."


def _stopped_kept(done: List[int], run: Optional[TrackRun], outcome: str) -> str:
    """What a stopped run that wrote ``done`` left: "Frames 0-1 were tracked (whole frames)."; when its masklets
    layer was deleted, where they are (the labels keep them: the next run or click shows them in a new layer)."""
    text = frames_text(done, _done_word(run))
    text = f"{text[0].upper()}{text[1:]} (whole frames)"
    if "masklets layer" in outcome and MASKLETS_REPLACED not in outcome:
        kept, them = ("are", "them") if len(set(done)) > 1 else ("is", "it")
        return (f"{text} and {kept} kept: 'Track all cells', a click or Propagate shows {them} again in a new "
                "masklets layer.")
    if MASKLETS_REPLACED in outcome:
        return f"{text}; 'Undo tracking step' reverts the run."
    return f"{text}."


def _done_word(run: Optional[TrackRun]) -> str:
    """What ``run`` did to the frames it wrote, in one word: "tracked", "corrected" or "changed" (a delete / merge)."""
    return {"track": "tracked", "correct": "corrected"}.get(getattr(run, "kind", ""), "changed")


def _hbox(*items: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for item in items:
        row.addWidget(item)
    return row
