"""The "SAM 2 segmentation" dock widget: pick an image and a model, click objects, propagate, correct, undo.

Each image layer has its own prompt layers, masklets layer and session (see :mod:`._image_state`); the model
comes from a :class:`~._model_picker.ModelPicker`; compute runs in napari worker threads (see :mod:`._runs`). The
image picked and its layers: :mod:`._image_layers_mixin`; clicks and boxes: :mod:`._prompt_events`; session files:
:mod:`._session_files`; relabel, merge and exports: :mod:`._session_actions`.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Union

import napari
import numpy as np
from qtpy.QtCore import QEvent, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from sam2_model.auto_smooth import SmoothChoice, smooth_choice
from sam2_model.frames import check_smooth
from sam2_model.prompt_validation import check_frame_size

from ._axes_panel import AxesPanel, file_channel_words
from ._image_layers_mixin import ImageLayersMixin
from ._image_state import (
    ImageState, add_labels_layer, channel_like_axes, find_masklets, masklets, model_data, prompts_in_data, same_layer,
    show_masklets, slice_key,
)
from ._model_picker import ModelPicker
from ._objects_panel import ObjectsPanel
from ._prompt_events import NO_IMAGE, PromptEventsMixin
from ._runs import PROPAGATE_TIPS, RunMixin
from ._session_actions import SessionActionsMixin
from ._session_files import SessionFilesMixin
from ._track_all_panel import TrackAllPanel
from .controller import PLUGIN_SESSION_DEFAULTS, SegmentationController
from ._model_choice import DEMO, LOCAL, RANDOM, ModelChoice
from .image_size import AUTO, OFF, read_as_seen
from .labels_writer import PlaneIds
from .layout import StackLayout
from .prompts import FramePrompt, collect_prompts
from .settings import load_settings

WINDOW_CHOICES = (AUTO, OFF, "128", "192", "256", "384")  # the widget's object-window choices
NEW_OBJECT_KEY = "n"  # New object, on the clicks and boxes layers (no napari binding of its own there, nor on
# Labels or Image layers: napari 0.9's Labels take M for a new label; T toggles the clicks' polarity)


#: the widgets following a viewer now (attached): one per viewer (:func:`attached_widget`)
_ATTACHED: "weakref.WeakSet[SegmentationWidget]" = weakref.WeakSet()
ONE_WIDGET = ("this viewer has a SAM 2 segmentation widget open already: use that one (napari_sam2.get_widget(viewer) "
              "returns it), or close its dock first")


def attached_widget(viewer: Any) -> Optional["SegmentationWidget"]:
    """The segmentation widget that follows ``viewer`` (a napari Viewer, or the proxy napari gives plugins) now; None
    when none does (none opened, its dock closed, or the viewer closed)."""
    target = getattr(viewer, "__wrapped__", viewer)
    for widget in list(_ATTACHED):
        if getattr(widget.viewer, "__wrapped__", widget.viewer) is target:
            return widget
    return None


def _window_deleted(widget: "weakref.ref[SegmentationWidget]", *_: Any) -> None:
    """The widget's Qt object was deleted (the viewer's window closed) or a run it waited for then ended: let go of
    its sessions (:meth:`SegmentationWidget._release`). Nothing when the widget itself is gone."""
    alive = widget()
    if alive is not None:
        alive._release()


def _weakly(method: Callable[[], Any]) -> Callable[[], Any]:
    """``method`` (a bound method, no arguments) called through a weak reference to its object: None once the object
    is gone. For callbacks kept by what outlives the widget."""
    held = weakref.WeakMethod(method)

    def call() -> Any:
        alive = held()
        return None if alive is None else alive()

    return call


AUTO_SMOOTH = -1.0  # the *Smooth frames* box's minimum, shown as "auto": chosen from the frames (the default)


class SmoothSpin(QDoubleSpinBox):
    """*Smooth frames*: "auto" (its minimum, :data:`AUTO_SMOOTH`, shown as the word; any value under 0 means it),
    0 (off) or a Gaussian sigma up to 50 frame px, in steps of 0.5."""

    def __init__(self) -> None:
        super().__init__()
        self.setRange(AUTO_SMOOTH, 50.0)
        self.setSingleStep(0.5)
        self.setDecimals(1)
        self.setSpecialValueText("auto")

    def is_auto(self) -> bool:
        return self.value() < 0

    def choice(self) -> Union[str, float]:
        """"auto" or the px typed (0.0: off), as ``segment(smooth=...)`` takes it."""
        return "auto" if self.is_auto() else float(self.value())

    def set_choice(self, value: Union[str, float]) -> None:
        self.setValue(AUTO_SMOOTH if value == "auto" else float(value))

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt's name)
        """Arrow steps go auto <-> 0 <-> 0.5 ... (never to -0.5)."""
        if self.is_auto():
            if steps > 0:
                self.setValue(0.0)
            return
        super().stepBy(steps)
        if self.value() < 0:
            self.setValue(AUTO_SMOOTH)


def _saved_smooth(settings: dict) -> Union[str, float]:
    """The saved smoothing: "auto" (also when none is saved, or one the control does not take), or px in 0..50."""
    saved = settings.get("smooth", "auto")
    if saved == "auto":
        return "auto"
    try:
        value = check_smooth(saved)
    except ValueError:
        return "auto"
    return value if value <= 50.0 else "auto"


def _weights_given(choice: ModelChoice) -> Any:
    """The ``checkpoint`` that :func:`~._model_choice.load_model` gives ``build_model`` for ``choice``, as far as
    "auto" smoothing asks (is it the demo's shipped file?): an official preset's download is not looked up (None)."""
    from sam2_model.build import Weights  # torch: imported when a session is made, not when the dock opens

    if choice.weights == RANDOM:
        return Weights.RANDOM
    if choice.weights == LOCAL:
        return choice.path
    return Weights.EMBEDDED if choice.name == DEMO else None


class SegmentationWidget(ImageLayersMixin, PromptEventsMixin, RunMixin, SessionActionsMixin, SessionFilesMixin,
                         QWidget):
    """Pick an image and a model, click objects, propagate, correct, undo."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        """A widget on ``viewer``; ValueError (:data:`ONE_WIDGET`) when the viewer has one open already."""
        if attached_widget(viewer) is not None:  # before any Qt part or layer is made
            raise ValueError(ONE_WIDGET)
        super().__init__()
        self.viewer = viewer
        self.worker: Any = None
        self._ended_waited: set = set()  # ids of ended workers _release waited for once (the window closed)
        self.states: Dict[Any, ImageState] = {}  # by the image layer's unique_id
        self._file_channels: Dict[Any, str] = {}  # the file's axis letters of images whose channel axis they chose
        self._channel_said: Dict[Any, str] = {}  # by image: the status line's last words on its file-named channels
        self._channels_last: Set[Any] = set()  # images whose last axis was taken as their channels (T, Y, X, C)
        self._axes_reads: Dict[Any, Any] = {}  # by image: the worker reading the axes of its OME-TIFF (busy meanwhile)
        self._old_data: Dict[Any, List[Any]] = {}  # by image: the unique_id of each layer a crop set aside
        self._turns_said: set = set()  # (image id, transform) whose out-of-plane turn popped up (once each)
        self._state: Optional[ImageState] = None
        self._plane_ids: Optional[PlaneIds] = None  # the objects table's per-frame label values (:meth:`object_frames`)
        self._quiet = 0  # > 0 while the widget edits prompt layers itself
        self._deferred: List[tuple] = []  # (image state, dims step, slice) of prompts edited during a run
        self._model_rerun_due = False
        self._links: List[Tuple[Any, Callable]] = []  # (napari event emitter, our callback) while in the window
        self._attached = False
        settings = load_settings()

        self.picker = ModelPicker()
        self.image_combo = QComboBox()
        self.axes = AxesPanel()
        self.corrections_check = QCheckBox("Corrections stick (clicked frames condition later frames)")
        self.corrections_check.setChecked(bool(settings.get("corrections_as_conditioning", True)))
        self.forget_check = QCheckBox("Forget tracked memories next to a correction")
        self.forget_check.setChecked(bool(settings.get("clear_memory_around_corrections", False)))
        self.smooth_spin = SmoothSpin()  # Gaussian sigma in frame pixels before the model (0: off; "auto")
        self.smooth_spin.setToolTip("Blur every frame by a Gaussian of this many pixels before the model sees it, for "
                                    "grainy, dim whole cells; 0: off. auto (the default, as segment() and "
                                    "napari-sam2 track): chosen from the first clicked frame's grain at the clicked "
                                    "objects, demo model's shipped weights only (CTC MSC: 4 px, tracked IoU 0.277 -> "
                                    "0.342; clean nuclei: none). Track all without clicks is not smoothed. The "
                                    "display is not changed.")
        self.smooth_spin.set_choice(_saved_smooth(settings))
        self._smooths: Dict[Tuple[Any, ...], SmoothChoice] = {}  # (image, data, weights, frame, spots) -> choice
        self._smooth_said: Dict[Any, str] = {}  # image id -> the last "auto" choice said in the status line
        self.smooth_note = QLabel("")  # what "auto" gave for the current image's session
        self.invert_check = QCheckBox("Invert (dark objects)")  # the model sees 1 - x of each frame's [0, 1] values
        self.invert_check.setToolTip(
            "Show the model each frame's grey values inverted (dark becomes bright), for dark objects on a bright "
            "background: brightfield, phase contrast, stained histology. The demo model knows bright objects on a "
            "dark background (dark discs on a bright background, one click each: IoU 0.61 -> 0.96 inverted). Leave it "
            "off for fluorescence. The display, the masks' pixels and the measured intensities are not changed.")
        self.invert_check.setChecked(settings.get("invert", False) is True)
        self.window_combo = QComboBox()  # each object in a window of the frames that follows it (small objects)
        self.window_combo.addItems(list(WINDOW_CHOICES))
        saved_window = str(settings.get("object_window", AUTO))
        self.window_combo.setCurrentText(saved_window if saved_window in WINDOW_CHOICES else AUTO)
        self.window_combo.setToolTip(
            "Segment and track each object in a square window of this many pixels that follows it, so small objects "
            "are seen large on the canvas the model knows (auto: only where the objects clicked on the first "
            "clicked frame (without clicks: of the slice shown) are small against it, demo model; real nuclei 24 px wide in 512 x 512: one click IoU "
            "0.58 -> 0.74, tracked J&F 0.49 -> 0.68). Each object then costs one model input per frame. "
            "Membrane-stained cells do worse in windows: choose off for them.")
        self._windows: Dict[Tuple[Any, ...], Optional[int]] = {}  # (image id, choice, input size, frame, spots) -> side
        self.window_note = QLabel("")  # what "auto" gave for the current image
        self.seed_combo = QComboBox()
        self.seed_button = QPushButton("Use labels as masks (current frame)")
        self.object_spin = QSpinBox()
        self.object_spin.setRange(1, 65535)
        self.new_object_button = QPushButton(f"New object ({NEW_OBJECT_KEY.upper()})")
        self.positive_button = QPushButton("Clicks: positive (T toggles)")
        self.segment_button = QPushButton("Segment current frame")
        self.forward_button = QPushButton("Propagate ▶")
        self.backward_button = QPushButton("◀ Propagate")
        self.both_button = QPushButton("◀ Both ▶")
        self.frames_spin = QSpinBox()
        self.frames_spin.setRange(0, 1_000_000)
        self.frames_spin.setSpecialValueText("all")
        self.cancel_button = QPushButton("Cancel")
        self.undo_button = QPushButton("Undo")
        self.export_labels_button = QPushButton("Export labels (TIFF)…")
        self.export_table_button = QPushButton("Export table (CSV)…")
        self.tracks_button = QPushButton("Add Tracks layer")
        self.save_session_button = QPushButton("Save session…")
        self.load_session_button = QPushButton("Load session…")
        self.objects = ObjectsPanel()
        self.progress = QProgressBar()
        self.status = QLabel("Pick an image layer, then click on an object.")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow(self.axes)
        form.addRow(self.picker)
        form.addRow(self.corrections_check)
        form.addRow(self.forget_check)
        smooth_row = QHBoxLayout()
        smooth_row.addWidget(self.smooth_spin)
        smooth_row.addWidget(self.smooth_note, 1)
        form.addRow("Smooth frames (px)", smooth_row)
        form.addRow(self.invert_check)
        window_row = QHBoxLayout()
        window_row.addWidget(self.window_combo)
        window_row.addWidget(self.window_note, 1)
        form.addRow("Object windows (px)", window_row)
        form.addRow("Object id", self.object_spin)
        form.addRow("Frames to propagate", self.frames_spin)
        row = QHBoxLayout()
        for button in (self.backward_button, self.both_button, self.forward_button):
            row.addWidget(button)
        seed_row = QHBoxLayout()
        seed_row.addWidget(QLabel("Seed from"))
        seed_row.addWidget(self.seed_combo)
        content = QWidget()  # in a scroll area: on a laptop screen the dock scrolls, its rows keep their height
        layout = QVBoxLayout(content)
        layout.addLayout(form)
        for widget in (self.new_object_button, self.positive_button, self.segment_button):
            layout.addWidget(widget)
        layout.addLayout(seed_row)
        layout.addWidget(self.seed_button)
        layout.addLayout(row)
        for widget in (self.progress, self.cancel_button, self.undo_button, self.objects, self.export_labels_button,
                       self.export_table_button, self.tracks_button):
            layout.addWidget(widget)
        session_row = QHBoxLayout()
        session_row.addWidget(self.save_session_button)
        session_row.addWidget(self.load_session_button)
        layout.addLayout(session_row)
        layout.addWidget(self.status)
        self.track_all = TrackAllPanel(self)  # "Track all cells (automatic)", collapsed at first
        layout.addWidget(self.track_all)
        layout.addStretch()
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setWidget(content)
        self.scroll.setMinimumWidth(content.minimumSizeHint().width()
                                    + self.scroll.verticalScrollBar().sizeHint().width())
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroll)
        self._set_tooltips()
        self.cancel_button.setEnabled(False)

        self.image_combo.currentTextChanged.connect(self._on_image_changed)
        self.axes.edited.connect(self._on_axes_edited)
        self.corrections_check.toggled.connect(self._on_correction_options)
        self.forget_check.toggled.connect(self._on_correction_options)
        self.smooth_spin.valueChanged.connect(self._on_smoothing_changed)
        self.invert_check.toggled.connect(self._on_invert_changed)
        self.window_combo.currentTextChanged.connect(self._on_window_changed)
        self.picker.busy.connect(self._on_picker_busy)
        self.picker.changed.connect(self._on_model_choice_changed)
        self.seed_button.clicked.connect(self._on_seed_clicked)
        self.new_object_button.clicked.connect(self._on_new_object)
        self.object_spin.valueChanged.connect(self._on_object_changed)
        self.positive_button.clicked.connect(self._on_toggle_positive)
        self.segment_button.clicked.connect(self._on_segment_clicked)
        self.forward_button.clicked.connect(lambda: self._on_propagate("forward"))
        self.backward_button.clicked.connect(lambda: self._on_propagate("backward"))
        self.both_button.clicked.connect(lambda: self._on_propagate("both"))
        self.cancel_button.clicked.connect(self._on_cancel)
        self.undo_button.clicked.connect(self._on_undo)
        self.export_labels_button.clicked.connect(lambda: self._on_export("labels"))
        self.export_table_button.clicked.connect(lambda: self._on_export("table"))
        self.tracks_button.clicked.connect(self.add_tracks_in_worker)  # in a worker (_runs.py)
        self.objects.hide_toggled.connect(self._on_hide_toggled)
        self.objects.delete_requested.connect(self._on_delete_object)
        self.objects.relabel_requested.connect(self._on_relabel_requested)
        self.objects.merge_requested.connect(self._on_merge_requested)
        self.objects.check_requested.connect(self._on_check_requested)
        self.objects.object_selected.connect(self.object_spin.setValue)  # the next click goes to that object
        self.objects.pixel_frames = self.object_frames
        self.save_session_button.clicked.connect(self._on_save_session)
        self.load_session_button.clicked.connect(self._on_load_session)
        # what the "auto" input size measures; held weakly: napari keeps the picker's model-load workers, whose slots
        # keep the picker, and through a bound method it kept this widget and the closed viewer
        self.picker.set_frame_source(_weakly(self._frame_sample))
        self._attach()
        # the viewer's window closed deletes the widget's Qt parts: its sessions are closed then (:meth:`_release`);
        # held weakly, so that this connection keeps nothing alive
        self.destroyed.connect(functools.partial(_window_deleted, weakref.ref(self)))

    def _set_tooltips(self) -> None:
        """What each control does, in a biologist's words (the propagate buttons' tips: :data:`._runs.PROPAGATE_TIPS`,
        kept by the busy/idle refreshes)."""
        tips = {
            self.image_combo: "The image layer to segment; each image keeps its own clicks, masks and objects.",
            self.corrections_check: "On: a frame you corrected with clicks guides the tracking of the frames after "
                                    "it (recommended). Off: corrections fix only their own frame.",
            self.forget_check: "After a correction, forget what was tracked on the frames next to it, so a wrong "
                               "track does not pull the object back (useful when the model followed another cell).",
            self.seed_combo: "A Labels layer (e.g. from another segmentation tool) whose labels on the current frame "
                             "can become objects ('Use labels as masks').",
            self.seed_button: "Make every label of the chosen Labels layer on the current frame an object, then "
                              "propagate them as usual.",
            self.object_spin: "The object the next click or box belongs to (the objects table selects its row). "
                              "Select a row of the objects table to pick an existing object.",
            self.new_object_button: "Start a new object: the next click or box belongs to a new id (works during a "
                                    "run too; the click is segmented when the run ends). Key: N on the clicks or "
                                    "boxes layer.",
            self.positive_button: "Whether clicks add to the object (positive) or remove from it (negative). Key: T "
                                  "on the clicks layer.",
            self.segment_button: "Segment the clicks and boxes of the frame shown now (clicks are segmented by "
                                 "themselves; use this after changing an option).",
            self.cancel_button: "Stop the run in progress; the frames finished so far are kept (Undo reverts them).",
            self.undo_button: "Undo the last step (click, propagation, deletion): masks, clicks and objects go back "
                              "to how they were before it.",
            self.export_labels_button: "Save the masks of every frame as a TIFF stack (one value per object).",
            self.export_table_button: "Save a table of each object's area, position and intensity on each frame "
                                      "(CSV, in the image's units where it has them).",
            self.tracks_button: "Add a napari Tracks layer following each object's centre through the frames.",
            self.save_session_button: "Save the clicks, boxes and options of this image to a file, to continue later "
                                      "or on another computer.",
            self.load_session_button: "Load a saved session onto this image: its clicks and boxes are segmented "
                                      "again.",
        }
        tips.update({getattr(self, name): tip for name, tip in PROPAGATE_TIPS.items()})
        for control, tip in tips.items():
            control.setToolTip(tip)

    def object_frames(self, candidates: Dict[int, List[int]]) -> Dict[int, List[int]]:
        """{object: frames whose labels hold at least one of its pixels} among ``candidates`` ({object: frames}) in
        the labels of the session acted on: each frame's (H, W) plane read once and then known from the writes into it
        (:class:`~napari_sam2.labels_writer.PlaneIds`; a run's worker pays for the frames it writes, not the panel)."""
        controller = self.controller
        held: Dict[int, List[int]] = {obj: [] for obj in candidates}
        if controller is None:
            return held
        if self._plane_ids is None or self._plane_ids.labels is not controller.labels:
            self._plane_ids = PlaneIds(controller.labels)  # kept up to date by the runs' writes, read once otherwise
        self._follow_paint(self._state.labels if self._state is not None else None)
        wanted: Dict[int, List[int]] = {}
        for obj, frames in candidates.items():
            for t in frames:
                if 0 <= int(t) < controller.num_frames:
                    wanted.setdefault(int(t), []).append(obj)
        for t in sorted(wanted):
            ids = self._plane_ids.ids(controller.layout.frame_index_in_labels(t))
            for obj in wanted[t]:
                if obj in ids:
                    held[obj].append(t)
        return held

    # ------------------------------------------------------------------ the model picker's parts (scripts, tests)
    @property
    def model_combo(self) -> QComboBox:
        return self.picker.model_combo

    @property
    def checkpoint_combo(self) -> QComboBox:
        return self.picker.checkpoint_combo

    @property
    def device_combo(self) -> QComboBox:
        return self.picker.device_combo

    @property
    def size_spin(self) -> QSpinBox:
        return self.picker.size_spin

    @property
    def checkpoint_file(self) -> Optional[str]:
        return self.picker.checkpoint_file

    def set_checkpoint_file(self, path: str) -> None:
        self.picker.set_checkpoint_file(path)

    def busy(self) -> bool:
        """A model load or a run is in progress, or the axes of an image's OME-TIFF are read (its axis choice follows
        them: :meth:`_read_axes_later`)."""
        return self.worker is not None or self.picker.worker is not None or bool(self._axes_reads)

    def event(self, event: QEvent) -> bool:
        """Closing the dock (its x) takes the widget out of the window (:meth:`_on_closed`); put in one again, it
        picks the viewer's images and their layers up as a widget opened anew does."""
        if event.type() == QEvent.ParentChange:
            if self.parent() is None:
                self._on_closed()
            else:
                try:
                    self._attach()
                except ValueError as error:  # another widget follows this viewer now: this one stays closed
                    self.status.setText(f"Not following the viewer: {error}.")
        return super().event(event)

    def _follow_paint(self, layer: Any) -> None:
        """Have the brush strokes on the masklets ``layer`` (napari's paint event: they bypass the runs' journals)
        and their undo / redo make the objects table read the planes they touched again (:meth:`_on_painted`,
        :meth:`_on_set_data`); once per layer while the widget is in the window (:meth:`_detach` lets go)."""
        events = getattr(layer, "events", None)
        for name, callback in (("paint", self._on_painted), ("set_data", self._on_set_data)):
            emitter = getattr(events, name, None)
            if emitter is not None and not any(e is emitter and c == callback for e, c in self._links):
                self._listen(emitter, callback)

    def _on_painted(self, event: Any = None) -> None:
        """A brush stroke on a masklets layer: the planes it touched are read again when the table next asks."""
        if self._plane_ids is not None:
            self._plane_ids.forget(event)

    def _on_set_data(self, event: Any = None) -> None:
        """The masklets layer redrawn, maybe by its own Undo / Redo of a brush stroke (no paint event then): the
        planes strokes touched are read again when the table next asks."""
        if self._plane_ids is not None:
            self._plane_ids.may_have_replayed(event)

    def _on_closed(self) -> None:
        """The widget left the window: its run stops there, keeping the frames finished (a run that went on with no
        widget to cancel it kept writing into the layers), and it lets go of the viewer (:meth:`_detach`)."""
        if self.worker is not None:
            if self.worker is self.track_all.worker:
                self.track_all.cancel()
            else:
                self._run_outcome = "stopped: the widget was closed"
                self.worker.quit()
        self._detach()

    def _release(self) -> None:
        """The widget's Qt parts were deleted with the viewer's window (closed): nothing can show or drive it again.
        Its runs stop (one still in its worker is waited for: its session is closed once the worker ended), then every
        image's sessions are closed (their frame-prefetch threads end) and the widget and its Track all panel let go
        of the images, sessions, masks and undo histories. napari keeps the window's workers, and their callbacks keep
        this widget: without this, each viewer closed after a click kept its session (and its thread) for good."""
        self._detach()
        runs = {id(w): w for w in (self.worker, self.track_all.worker) if w is not None}  # let go of as they end
        # a worker that has ended is waited for once (its end is queued to this thread); still held after that (its
        # end's slot failed), it is not waited for again: no timer re-armed forever
        runs = {key: w for key, w in runs.items() if w.is_running or key not in self._ended_waited}
        self._ended_waited.update(key for key, w in runs.items() if not w.is_running)
        loading = self.picker.worker  # (the picker's own slot may not run now: only a running one is waited for)
        waited = [*runs.values(), *([loading] if loading is not None and loading.is_running else [])]
        if waited:  # released again once each has finished
            if self.worker is not None and self._run_outcome == "running":
                self._run_outcome = "stopped: the viewer was closed"
            again = functools.partial(_window_deleted, weakref.ref(self))
            for worker in waited:
                if worker is not loading:
                    worker.quit()
                worker.finished.connect(again)
                if not worker.is_running:  # it ended already: its end is on its way to this thread, then this
                    QTimer.singleShot(0, again)
            return
        for state in self.states.values():
            controllers = (state.controller, *state.sessions.values(), *state.replaced.values())
            for controller in {id(c): c for c in controllers if c is not None}.values():
                if controller.is_open:
                    controller.session.close()  # its frame reader's prefetch thread ends
        self.states.clear()
        self._file_channels.clear()
        self._channel_said.clear()
        self._channels_last.clear()
        self._axes_reads.clear()
        self._old_data.clear()
        self._turns_said.clear()
        self._state = self._run_state = self._run_steps = self._run_prompts = None
        self._run_history = (None, 0, None)
        self._plane_ids = self._loaded_labels = self._tracks_run = self._export_run = self._edit_run = None
        self._deferred.clear()
        self.axes.forget_image()
        self.track_all.release()

    # ------------------------------------------------------------------ the viewer's events
    def _listen(self, emitter: Any, callback: Callable) -> None:
        """Connect ``callback`` to a napari event ``emitter`` for as long as the widget is in the window."""
        emitter.connect(callback)
        self._links.append((emitter, callback))

    def _attach(self) -> None:
        """Follow the viewer's layers and slider, and pick up its images (with the prompt layers a closed widget
        left on them: :func:`~._image_state.adopt_layers`), as a widget opened anew does: one put back in a window
        after it was closed starts from the layers, not from the sessions it had. Nothing happens when attached."""
        if self._attached:
            return
        if attached_widget(self.viewer) is not None:  # two would both segment each click and share the layers
            raise ValueError(ONE_WIDGET)
        self._attached = True
        _ATTACHED.add(self)
        self.states.clear()
        self._file_channels.clear()
        self._channel_said.clear()
        self._channels_last.clear()
        self._axes_reads.clear()
        self._old_data.clear()
        self._turns_said.clear()
        self._state = None
        self._listen(self.viewer.layers.events.inserted, self._refresh_images)
        self._listen(self.viewer.layers.events.removed, self._on_layer_removed)
        self._listen(self.viewer.dims.events.current_step, self._on_slice_shown)
        self._listen(self.viewer.dims.events.order, self._on_view_changed)
        self._listen(self.viewer.dims.events.ndisplay, self._on_view_changed)
        self._refresh_images()
        state = self._state
        if state is not None and state.points is not None and (
                len(state.points.data) or (state.boxes is not None and len(state.boxes.data))):
            masks = (f"and their masks in '{state.labels.name}'" if state.labels is not None else
                     "no masklets layer of theirs was found: the next run makes one")
            self.status.setText(f"Picked up the clicks and boxes on '{state.image.name}' ({masks}): press "
                                "'Segment current frame' or Propagate to go on with them; the objects table fills "
                                "after that run.")

    def _detach(self) -> None:
        """Let go of the viewer: no handler of this widget stays on a layer or the viewer (a click on the clicks layer
        is no longer segmented by a widget nobody sees, nor twice once the widget is opened again), its T key leaves
        the clicks layers, and nothing waiting to be segmented after the run is started. The layers stay, with their
        clicks and masks, for the next widget to pick up; the closed widget's sessions stay readable (scripts)."""
        if not self._attached:
            return
        self._attached = False
        _ATTACHED.discard(self)
        for emitter, callback in self._links:
            emitter.disconnect(callback)
        self._links.clear()
        for state in self.states.values():
            if state.points is not None:
                state.points.bind_key("t", None)  # unbinds
            for layer in (state.points, state.boxes):
                if layer is not None:
                    layer.bind_key(NEW_OBJECT_KEY, None)
        self._deferred.clear()
        self._model_rerun_due = False

    def _watch_points(self, state: ImageState) -> None:
        """ImageLayersMixin's (clicks segment; T toggles their polarity), and N starts a new object."""
        super()._watch_points(state)
        self._bind_new_object_key(state.points)

    def _watch_boxes(self, state: ImageState) -> None:
        """ImageLayersMixin's (boxes segment), and N starts a new object."""
        super()._watch_boxes(state)
        self._bind_new_object_key(state.boxes)

    def _bind_new_object_key(self, layer: Any) -> None:
        """:data:`NEW_OBJECT_KEY` on the prompt ``layer`` (while it is the active layer) presses *New object*: many
        cells are clicked without a trip to the dock between them (unbound by :meth:`_detach`)."""
        layer.bind_key(NEW_OBJECT_KEY, lambda _layer: self._on_new_object(), overwrite=True)

    # ------------------------------------------------------------------ images and their layers
    @property
    def state(self) -> Optional[ImageState]:
        return self._state

    @property
    def image_layer(self) -> Any:
        return None if self._state is None else self._state.image

    @property
    def controller(self) -> Optional[SegmentationController]:
        """The current image's controller (None until something was segmented on it)."""
        return None if self._state is None else self._state.controller

    @property
    def points_layer(self) -> Any:
        return None if self._state is None else self._state.points

    @property
    def boxes_layer(self) -> Any:
        return None if self._state is None else self._state.boxes

    @property
    def labels_layer(self) -> Any:
        return None if self._state is None else self._state.labels

    # ------------------------------------------------------------------ axes and channels
    @property
    def axis_spin(self) -> QSpinBox:
        return self.axes.axis_spin

    @property
    def channel_axis_combo(self) -> QComboBox:
        return self.axes.channel_axis_combo

    @property
    def channel_combo(self) -> QComboBox:
        return self.axes.channel_combo

    def _on_axes_edited(self) -> None:
        """An axis or channel choice changed: the widget acts on the session of the slice shown under the new choice
        when it has one, and the objects table shows it at once, as when the slider moves (:meth:`_on_slice_shown`);
        sessions made under another channel axis are dropped, said in the status line
        (:meth:`_drop_other_channel_sessions`). On an image whose file's axes name its channels the choice is kept
        for the image, and a status line still naming the former channel choice names the new one
        (:meth:`_channel_choice_edited`)."""
        state = self._state
        if state is None:
            return
        state.axes = self.axes.choice()
        self.refresh_run_buttons()  # a channel axis can leave a single 2D image
        self.picker.refresh_auto()
        self._drop_other_channel_sessions(state)
        self._on_slice_shown()
        self._channel_choice_edited(state)  # kept for the image; the status line's channel words follow it

    def _drop_other_channel_sessions(self, state: ImageState) -> None:
        """Drop ``state``'s sessions whose labels have another shape than the new axis choice's (made before a channel
        axis was chosen or cleared: per plane of the channel axis, or per channel); the next run would replace their
        masks anyway (:meth:`ensure_controller`). The status line names them; their clicks and boxes stay, and the
        next click or 'Segment current frame' segments them under the new choice. Nothing is dropped during a run
        (the next run's :meth:`ensure_controller` does it) or for a choice that cannot work (the next run says why)."""
        if self.busy():
            return
        try:
            layout = self._layout(state.image)
        except ValueError:
            return
        shape = layout.labels_shape(state.image.data.shape)
        stale = {key: c for key, c in state.sessions.items() if tuple(c.labels.shape) != shape}
        if not stale:
            return
        for key in stale:
            del state.sessions[key]
            state.replaced.pop(key, None)
        if state.controller is not None and all(c is not state.controller for c in state.sessions.values()):
            state.controller = None
        self._refresh_objects()
        named = "; ".join(f"{self.slice_name(c.layout)}: object(s) {', '.join(map(str, c.obj_ids))}" if c.obj_ids
                          else self.slice_name(c.layout) for c in stale.values())
        axis = self.axes.channel_axis()
        lead = (f"With channel axis {axis} every channel shares one mask per object" if axis is not None else
                "With no channel axis each plane is segmented on its own")
        self.status.setText(f"{lead}: the session(s) made under the previous channel choice ({named}) were dropped "
                            "(their masks are cleared at the next segmentation). The clicks and boxes stay: click or "
                            "press 'Segment current frame' to segment them with this choice.")

    def session_options(self) -> dict:
        """Session options: how the chosen channel reaches the model (how much it is smoothed first, whether it is
        inverted), and how corrections act. *Smooth frames* "auto" gives no "smooth" here: it is measured for each
        session on its prompts (:meth:`smoothing`, in :meth:`ensure_controller`), so fine-tuning (which reads these)
        trains on unsmoothed frames unless a number is typed."""
        options = {"corrections_as_conditioning": self.corrections_check.isChecked(),
                   "clear_memory_around_corrections": self.forget_check.isChecked(), **self.axes.channel_options()}
        if not self.smooth_spin.is_auto() and self.smooth_spin.value() > 0:  # "auto": :meth:`smoothing`, per session
            options["smooth"] = float(self.smooth_spin.value())
        if self.invert_check.isChecked():
            options["invert"] = True
        return options

    def _layout(self, image: Any) -> StackLayout:
        return self.axes.layout(image, self.viewer.dims.current_step)

    # ------------------------------------------------------------------ controller and prompts
    def ensure_controller(self, layout: Optional[StackLayout] = None) -> SegmentationController:
        """The current image's controller for the slice of ``layout`` (default: the slice shown) with the chosen
        model and options (made or remade as needed); it becomes the image's ``controller``.

        Each slice (the fixed axes, for example z in TZYX) keeps its own controller, session and undo history in
        ``state.sessions``: starting one on another slice never drops the first. A remade controller (new model,
        channel or options) keeps the masklets; the prompts of the layers are sent to its new session by the next run,
        in the order they were made (:meth:`SegmentationController.take_replay`: corrections after tracking).
        Frames thinner than SAM 2 takes are refused here, by their own size (ValueError), before any layer is added.
        Nothing here reads the stack: a new controller's session (the contrast sample of up to 16 frames) is opened by
        the run's worker (:meth:`SegmentationController.open`); the one it replaced comes back if that fails.
        """
        state = self._state
        if state is None:
            raise ValueError(NO_IMAGE)
        layout = self._layout(state.image) if layout is None else layout
        check_frame_size(*(state.image.data.shape[axis] for axis in layout.spatial_axes))  # the frames' own size
        options = self.session_options()
        model = self.picker.model()
        window = self.object_window(model)  # before the masklets layer: a frame it refuses adds no layer
        smoothing = self.smoothing()
        if smoothing.auto and smoothing.sigma > 0:
            options["smooth"] = smoothing.sigma
        auto_note = f"→ {smoothing.sigma:g} px" if smoothing.sigma > 0 else "→ off"
        self.smooth_note.setText(auto_note if smoothing.auto else "")
        labels = self._labels_layer(state, layout)  # (re)made when missing: a deleted layer comes back
        array = masklets(labels, state.image, layout)
        for key, session in list(state.sessions.items()):  # sessions writing into labels no longer shown
            if session.labels is not array:
                del state.sessions[key]
                state.replaced.pop(key, None)
        current = state.sessions.get(slice_key(layout))
        if (current is not None and current.layout == layout and current.model is model
                and current.session_options == {**PLUGIN_SESSION_DEFAULTS, **options}
                and current.object_window == window):
            state.controller = current
            return current
        controller = SegmentationController(model, model_data(state.image), layout, array, options,
                                            object_window=window)
        said = smoothing.describe()
        if said and self._smooth_said.get(state.image.unique_id) != said:  # said once per image and choice
            controller.carry_note(f"Smooth frames auto: {said}.")
        self._smooth_said[state.image.unique_id] = said
        if current is not None and current.layout == layout:  # its prompts are replayed in the order they were made
            controller.mask_prompts = dict(current.mask_prompts)
            controller.take_replay(current)
        if current is not None and current.is_open:  # put back if the new session fails to open (the run says why)
            state.replaced[slice_key(layout)] = current
        state.controller = state.sessions[slice_key(layout)] = controller
        return controller

    def smoothing(self) -> SmoothChoice:
        """What *Smooth frames* comes to for the current image: the number typed, or "auto"'s choice, measured as
        ``segment(smooth="auto")`` measures it (:func:`~sam2_model.auto_smooth.smooth_choice`): on the first prompted
        frame read as the model is shown it before smoothing (the channel segmented) at the objects prompted there
        (the spots the object window measures: :meth:`_prompted_spots`), for the chosen model and weights (a blur
        for the demo model's shipped weights only). Kept per image, weights and spots: measured again only when
        those change (a new object's first click, another model). Without clicks or boxes (Track all on a fresh
        image), and on frames too large to read whole on the GUI thread: 0 (unsmoothed, as ``napari-sam2 track
        --auto``). ValueError for frames holding NaN or infinite values."""
        if not self.smooth_spin.is_auto():
            return SmoothChoice(float(self.smooth_spin.value()))
        state = self._state
        prompted = None if state is None else self._prompted_spots()
        if state is None or prompted is None:
            return SmoothChoice(0.0, auto=True, why="no prompted objects to measure")
        view, index, spots = prompted
        choice = self.picker.choice()
        image = state.image.unique_id
        key = (image, id(state.image.data), choice.name, choice.weights, choice.path, index,
               np.round(spots.points, 3).tobytes())
        if key not in self._smooths:
            frame = read_as_seen(view, index, self.axes.channel_options())  # the channel segmented, unsmoothed
            measured = smooth_choice("auto", frame, spots.points, model=choice.name,
                                     checkpoint=_weights_given(choice))
            self._smooths = {k: v for k, v in self._smooths.items() if k[0] != image}  # the last kept
            self._smooths[key] = measured
        return self._smooths[key]

    def _labels_layer(self, state: ImageState, layout: StackLayout) -> Any:
        """The image's masklets layer for ``layout``: made when missing (with the labels so far), given zero labels
        when the layout's labels have another shape (another channel axis), and kept on the image's axes."""
        if state.labels is None or state.labels not in self.viewer.layers:
            state.labels = find_masklets(self.viewer, state.image, layout)  # one a closed widget left, if any
        if state.labels is None:
            keep = state.controller.labels if state.controller is not None else None
            state.labels = state.new_labels = add_labels_layer(self.viewer, state.image, layout, keep)
            self._follow_paint(state.labels)
            self._refresh_images()
            self.activate_clicks()
            return state.labels
        labels = masklets(state.labels, state.image, layout)
        if labels is None:
            labels = np.zeros(layout.labels_shape(state.image.data.shape), np.uint32)
        show_masklets(state.labels, state.image, layout, labels)
        self._follow_paint(state.labels)
        return state.labels

    def _settle_session(self, state: Optional[ImageState], controller: Any) -> None:
        """After a segmentation run (RunMixin's: a controller whose session never opened leaves its slice), what the
        widget adds to the run's note: the empty masklets layer added for a session that never opened is removed
        again (:meth:`_drop_unopened_labels`), and the first run on an image says once how to segment a slice axis
        that looks like channels (:meth:`_channel_hint`)."""
        super()._settle_session(state, controller)
        if state is None or controller is None:
            return
        dropped = ""
        if self._drop_unopened_labels(state):
            again = ("after fixing what stopped the run, press 'Segment current frame' to try them again"
                     if self._run_outcome == "failed" else "press 'Segment current frame' to segment them")
            dropped = (f"The empty masklets layer added for this run was removed; the clicks and boxes are kept: "
                       f"{again} (or delete them).")
        notes = (self._run_note, dropped, self._channel_hint(state, controller.layout))
        self._run_note = " ".join(note for note in notes if note)

    def _report(self, error: Any) -> None:
        """RunMixin's (a run refused before it started: nothing was changed), and a masklets layer added for it goes
        again (:meth:`_drop_unopened_labels`; e.g. a seed layer with no labels on the frame)."""
        super()._report(error)
        if self._state is not None:
            self._drop_unopened_labels(self._state)

    def _drop_unopened_labels(self, state: ImageState) -> bool:
        """Remove the masklets layer :meth:`_labels_layer` added for ``state`` (``state.new_labels``) while it is
        unused: no session of the image has opened (a NaN frame failed the first run, a Cancel came while the stack
        was read, the run was refused), Track all has not worked on the image, and it holds no label. True if removed;
        once used the layer stays. The clicks and boxes are not touched."""
        layer = state.new_labels
        if layer is None:
            return False
        tracked = state.image.unique_id in self.track_all.images  # Track all follows the layer (it opens no session)
        if tracked or any(c.is_open for c in (state.controller, *state.sessions.values()) if c is not None):
            state.new_labels = None  # the layer is a session's or Track all's now
            return False
        if not same_layer(layer, state.labels) or layer not in self.viewer.layers or np.any(layer.data):
            return False
        state.labels = state.new_labels = None  # first: _on_layer_removed then takes it for no layer of ours
        self.viewer.layers.remove(layer)
        return True

    def _channel_hint(self, state: ImageState, layout: StackLayout) -> str:
        """Once per image, on its first run: how to segment per channel when ``layout`` treats axes that look like
        channels (:func:`~._image_state.channel_like_axes`) as slices, as z, or that the channel axis was taken from the
        image's file (:meth:`_axes_from_file`; its first status line may have been replaced by the model's); ""
        otherwise. A hint: nothing changes."""
        if state.channel_hint_said:
            return ""
        state.channel_hint_said = True
        letters = self._file_channels.get(state.image.unique_id)
        if letters and layout.channel_axis == letters.index("C"):  # chosen from the file: said again with the masks
            words = self._channel_said[state.image.unique_id] = file_channel_words(state.image, state.axes, letters)
            return words
        axes = channel_like_axes(state.image, layout)
        if not axes:
            return ""
        axis = axes[0]
        labels = getattr(state.image, "axis_labels", None)
        label = str(labels[axis]) if labels is not None else ""
        count = int(state.image.data.shape[axis])
        named = f"'{label}', " if label and not label.lstrip("-").isdigit() else ""  # napari's own names: "-3"
        return (f"axis {axis} ({named}{count} planes) is segmented as slices, like z: each plane on its own, so the "
                f"masks are only on the plane clicked ({self.slice_name(layout)}). If its planes are channels, choose "
                f"'Channel axis: axis {axis} ({count})' and a 'Channel' above (the masks then show on every channel), "
                f"or give each channel its own image layer (right-click the layer > Split Stack, or open it with "
                f"channel_axis={axis}).")

    def prompts(self, layout: Optional[StackLayout] = None) -> List[FramePrompt]:
        """Every click and box of the current image on the slice of ``layout`` (default: the slice shown), as
        per-frame prompts of that layout."""
        state = self._state
        if state is None:
            raise ValueError(NO_IMAGE)
        layout = self._layout(state.image) if layout is None else layout
        coords, positive, ids, rectangles, box_ids = prompts_in_data(state)
        return collect_prompts(coords, positive, ids, rectangles, box_ids, layout)

    # ------------------------------------------------------------------ slices (one session per slice)
    def _on_slice_shown(self, event: Any = None) -> None:
        """The slider moved: the slice shown becomes the one the widget acts on if it has a session; otherwise the
        session last worked on stays the one Propagate, Undo and the exports act on (they say which slice)."""
        state = self._state
        if state is None or not state.sessions:
            return
        try:
            shown = state.sessions.get(slice_key(self._layout(state.image)))
        except ValueError:  # an impossible axis choice: the next run says so
            return
        if shown is not None and shown is not state.controller:
            state.controller = shown
            self._refresh_objects()

    def _session_layout(self) -> Optional[StackLayout]:
        """The layout of the slice Propagate acts on: the slice shown when it has a session or prompts, otherwise the
        slice of the session last worked on (None without an image)."""
        state = self._state
        if state is None:
            return None
        shown = self._layout(state.image)
        controller = state.controller
        if controller is None or slice_key(shown) in state.sessions or self.prompts(shown):
            return shown
        step = list(self.viewer.dims.current_step)
        for axis, value in controller.layout.fixed:
            step[axis] = value
        return self.axes.layout(state.image, step)

    def slice_name(self, layout: StackLayout) -> str:
        """The fixed axes of ``layout`` in words, as the viewer names its axes, e.g. "z=1" or "axis 1 = 1"; "the whole
        stack" (or "the whole image", one 2D image) where none is fixed."""
        if not layout.fixed:
            return "the whole image" if layout.frame_axis is None else "the whole stack"
        labels = list(self.viewer.dims.axis_labels)
        names = []
        for axis, value in layout.fixed:
            label = str(labels[axis]) if axis < len(labels) else str(axis)
            numbered = label.lstrip("-").isdigit()  # napari's own name of an axis the user did not name
            names.append(f"axis {axis} = {value}" if numbered else f"{label}={value}")
        return ", ".join(names)

    def _elsewhere(self, layout: StackLayout) -> str:
        """" on z=1 (z=2 is shown)" when ``layout``'s slice is not the one shown; "" otherwise."""
        state = self._state
        try:
            shown = None if state is None else self._layout(state.image)
        except ValueError:
            shown = None
        if not layout.fixed or shown is None or slice_key(shown) == slice_key(layout):
            return ""
        return f" on {self.slice_name(layout)} ({self.slice_name(shown)} is shown)"
