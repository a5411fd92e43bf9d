"""A model picker: which SAM 2 model, which weights, where it runs; loads it in its own worker.

Used by the segmentation and the fine-tuning widgets. It owns its worker slot, progress bar and
"Cancel download" button, so cancelling a download never touches another widget's run, and it
emits :attr:`ModelPicker.loaded` with the model once one is loaded. A checkpoint file chosen in its file dialog is
read and identified in that worker too (seconds for a large file or one of no known model), and so are the weights a
loaded session needs (:meth:`ModelPicker.fetch_weights`: downloaded or identified before the session changes anything).
The Weights menu also offers the fine-tuning runs that wrote weights (:func:`._run_folders.trained_runs`, listed again
each time the menu opens): picking one uses its weights.pt as the local file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

import sam2_model as sm

from ._model_choice import (
    CACHED, DEMO, EMBEDDED, LOCAL, WEIGHT_CHOICES, LoadCancelled, ModelChoice, default_model, fetch_weights,
    load_model, model_names, usable_file_preset,
)
from ._run_folders import TRAINED_RUN_PREFIX, trained_runs
from .image_size import AUTO, SizeChoice, auto_image_size
from .settings import load_settings, save_settings

DEVICES = ("auto", "cuda", "mps", "cpu")
PRESET_SIZE, CUSTOM_SIZE = "preset", "custom"
#: the "Input size" choices; "custom" shows a spin box (any multiple of 32)
SIZE_CHOICES = (PRESET_SIZE, AUTO, "256", "512", "1024", CUSTOM_SIZE)
#: shown under the choice while the embedded demo weights are chosen (figures: README, "Which model for which data")
DEMO_NOTE = ("The embedded demo model learned synthetic fluorescent nuclei: good on nuclei, weak on whole cells, "
             "phase contrast, brightfield, DIC, bacteria and natural images. For those, pick a sam2.1 model with "
             f"\"{CACHED}\" weights, or fine-tune on a few annotated frames.")


class _RunsComboBox(QComboBox):
    """The Weights menu: calls ``about_to_show()`` before its list opens (the runs are listed again then)."""

    def __init__(self, about_to_show: Callable[[], None]) -> None:
        super().__init__()
        self._about_to_show = about_to_show

    def showPopup(self) -> None:  # noqa: N802 (Qt's name)
        self._about_to_show()
        super().showPopup()


class ModelPicker(QWidget):
    """Model, weights, device and input size; :meth:`when_ready` loads the choice (with download progress).

    Input size: "preset" (the model's own), "auto" (picked from the objects' size in the frame that
    :meth:`set_frame_source` provides, the widget's: the slice shown, then the slice clicked first; see
    :func:`sam2_model.input_size.suggest_image_size`), 256 / 512 / 1024, or "custom" (the spin box).
    ``size_spin.setValue(n)`` also selects the matching entry.

    Signals: ``loaded(model)`` after every successful load; ``busy(bool)`` when a load starts and ends;
    ``changed()`` when the choice changes (the choice is saved as a setting).
    """

    loaded = Signal(object)
    busy = Signal(bool)
    changed = Signal()
    download_progress = Signal(int, int)  # (bytes done, total), emitted from the loading thread

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        settings = load_settings()
        self.worker: Any = None
        self._model: Optional[sm.SAM2Model] = None
        self._model_key: Optional[ModelChoice] = None
        self._cancelled = False
        self._pending: List[Callable[[], None]] = []
        self._failed = False  # the status shows a failed load or a refused file (cleared when the choice changes)
        self._identified: Optional[Tuple[str, Optional[str], str]] = None  # (path, preset or None, why not) read
        self._fetched: Optional[Tuple[Optional[str], Optional[BaseException]]] = None  # fetch_weights: (preset, error)
        self._downloading = ""  # the model whose file is downloading (the progress line names it)
        self.checkpoint_file: Optional[str] = settings.get("checkpoint_file")

        self.model_combo = QComboBox()
        self.model_combo.addItems(model_names())
        self.model_combo.setCurrentText(settings.get("model") or default_model())
        self.checkpoint_combo = _RunsComboBox(self.refresh_runs)
        self.checkpoint_combo.addItems(list(WEIGHT_CHOICES))
        default_weights = EMBEDDED if self.model_combo.currentText() == DEMO else CACHED
        self.checkpoint_combo.setCurrentText(settings.get("checkpoint") or default_weights)
        self._runs: Dict[str, str] = {}  # the Weights menu's fine-tuned run entries: label -> weights.pt
        self._weights_before = self.checkpoint_combo.currentText()  # what a vanished run's entry goes back to
        self.refresh_runs()
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.device_combo.setCurrentText(settings.get("device", "auto"))
        self.size_combo = QComboBox()
        self.size_combo.addItems(list(SIZE_CHOICES))
        self.size_spin = QSpinBox()
        self.size_spin.setRange(0, 2048)
        self.size_spin.setSingleStep(32)
        self.size_spin.setSpecialValueText("preset")
        self.size_note = QLabel("")
        self._frame_source: Optional[Callable[[], Any]] = None
        self._auto: Optional[SizeChoice] = None
        self._restore_size(settings)
        self.progress = QProgressBar()
        self.cancel_button = QPushButton("Cancel download")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.demo_note = QLabel(DEMO_NOTE)
        self.demo_note.setWordWrap(True)
        self.model_combo.setToolTip("Which SAM 2 model segments: larger ones are more accurate and slower; 'demo' is "
                                    "tiny and ships with the plugin (for trying the tool, not for results).")
        self.checkpoint_combo.setToolTip("Where the model's trained weights come from: downloaded once and cached, "
                                         "a file of your own, a run of the Fine-tune widget ('fine-tuned: FOLDER "
                                         "(date)', newest first), or the demo's embedded weights.")
        self.device_combo.setToolTip("Where the model runs: auto picks a GPU when there is one, otherwise the CPU.")
        self.size_combo.setToolTip("The size frames are scaled to for the model: the model's preset, a number of "
                                   "your own, or auto (larger for small cells: slower, more accurate).")
        self.size_spin.setToolTip("The model's input size in pixels (preset: the model's own); larger helps small "
                                  "cells and costs time and memory.")
        self.cancel_button.setToolTip("Stop downloading the model's weights (nothing is kept half-written).")

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Model", self.model_combo)
        form.addRow("Weights", self.checkpoint_combo)
        form.addRow("Device", self.device_combo)
        size_row = QHBoxLayout()
        size_row.addWidget(self.size_combo)
        size_row.addWidget(self.size_spin)
        size_row.addWidget(self.size_note, 1)
        form.addRow("Input size", size_row)
        row = QHBoxLayout()
        row.addWidget(self.progress)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(self.demo_note)
        layout.addLayout(row)
        layout.addWidget(self.status)
        self._show_loading(False)
        self._show_demo_note()

        self.download_progress.connect(self._on_download_progress)
        self.cancel_button.clicked.connect(self.cancel)
        self.model_combo.currentTextChanged.connect(self._on_model_changed)
        self.checkpoint_combo.textActivated.connect(self._on_weights_activated)
        for combo in (self.model_combo, self.checkpoint_combo, self.device_combo):
            combo.currentTextChanged.connect(self._on_choice_changed)
        self.size_combo.currentTextChanged.connect(self._on_size_combo)
        self.size_spin.valueChanged.connect(self._on_size_spin)

    # ------------------------------------------------------------------ the choice
    def choice(self) -> ModelChoice:
        weights = self.checkpoint_combo.currentText()
        if weights in self._runs:  # a run's entry, while its file is read: the run's weights.pt is the local file
            return ModelChoice(self.model_combo.currentText(), LOCAL, self.device_combo.currentText(),
                               self.image_size(), self._runs[weights])
        return ModelChoice(
            self.model_combo.currentText(), weights, self.device_combo.currentText(),
            self.image_size(), self.checkpoint_file,
        )

    # ------------------------------------------------------------------ fine-tuned runs
    def refresh_runs(self) -> None:
        """List the fine-tuning runs that wrote weights in the Weights menu, after its fixed entries (newest first; see
        :func:`._run_folders.trained_runs`: ~/napari-sam2-runs and beside the Fine-tune widget's remembered folder). A
        run whose folder vanished is dropped. The current entry is kept (a vanished run's: the entry before it)."""
        remembered = str(load_settings().get("finetune_folder") or "")
        runs = trained_runs([Path(remembered)] if remembered else [])
        combo = self.checkpoint_combo
        current = combo.currentText()
        self._runs = {run.label: str(run.weights) for run in runs}
        combo.blockSignals(True)  # the list changes, not the choice
        try:
            while combo.count() > len(WEIGHT_CHOICES):
                combo.removeItem(combo.count() - 1)
            combo.addItems(list(self._runs))
            combo.setCurrentText(current if combo.findText(current) >= 0 else self._weights_before)
        finally:
            combo.blockSignals(False)

    def run_entries(self) -> Dict[str, str]:
        """The Weights menu's fine-tuned runs: {entry: its weights.pt}."""
        return dict(self._runs)

    def _use_run(self, label: str) -> None:
        """The run ``label`` was picked in the Weights menu: its weights.pt is read and used as the local file
        (:meth:`choose_checkpoint_file`: the model follows the file's preset); a run that vanished since the menu was
        listed is dropped from it and said, the choice back to what it was."""
        path = self._runs.get(label)
        if self.worker is not None:
            self.checkpoint_combo.setCurrentText(self._weights_before)
            show_error("SAM 2: a model is loading: choose the run once it is loaded (or cancelled)")
            return
        if path is None or not Path(path).is_file():
            self.refresh_runs()
            self.checkpoint_combo.setCurrentText(self._weights_before)
            folder = Path(path).parent.name if path else label[len(TRAINED_RUN_PREFIX):]
            self._refuse_file(f"the fine-tuned run {folder} is gone ({path} no longer exists); it is no longer "
                              "listed")
            return
        self.choose_checkpoint_file(path)

    def image_size(self) -> Optional[int]:
        """The chosen input size: None for the model's own; "auto" resolved for the current frame source."""
        text = self.size_combo.currentText()
        if text == AUTO:
            return None if self._auto is None else self._auto.image_size
        if text == CUSTOM_SIZE:
            return self.size_spin.value() or None
        return None if text == PRESET_SIZE else int(text)

    def set_frame_source(self, source: Optional[Callable[[], Any]]) -> None:
        """Where "auto" measures the objects: ``source()`` returns a frame of the current image (H, W[, C]) or a
        :class:`~.image_size.FrameSample` of one (the widget's: the slice shown, not frame 0: in a z-stack often an
        empty slice above the sample), or None. Call :meth:`refresh_auto` when the image or the slice behind it
        changes."""
        self._frame_source = source
        self.refresh_auto()

    def refresh_auto(self) -> None:
        """Re-measure the objects for "auto"; a new size counts as a change of the choice (``changed``)."""
        if self.size_combo.currentText() != AUTO:
            self._auto = None
            self._show_size_note()
            return
        before = self.image_size()
        frame = None
        if self._frame_source is not None:
            try:
                frame = self._frame_source()
            except (ValueError, IndexError, TypeError, AttributeError):
                frame = None
        try:
            self._auto = None if frame is None else auto_image_size(frame, self.model_combo.currentText())
        except ValueError as error:
            self._auto = None
            self.status.setText(f"Input size auto: {error}; using the model's own size")
        self._show_size_note()
        if self.image_size() != before:
            self.changed.emit()

    def _show_size_note(self) -> None:
        text = self.size_combo.currentText()
        self.size_spin.setVisible(text == CUSTOM_SIZE)
        if text != AUTO:
            self.size_note.setText("")
        elif self._auto is None:
            self.size_note.setText("(the model's own until an image is picked)")
        else:
            self.size_note.setText(f"→ {self._auto.image_size} px")
            self.size_note.setToolTip(self._auto.describe())

    def _restore_size(self, settings: dict) -> None:
        saved = str(settings.get("image_size") or PRESET_SIZE)
        self.size_spin.setValue(int(settings.get("image_size_custom") or 0))
        self.size_combo.setCurrentText(saved if saved in SIZE_CHOICES else PRESET_SIZE)
        self._show_size_note()

    def _on_size_combo(self, text: str) -> None:
        if text == AUTO:
            self.refresh_auto()  # emits changed itself when the size moves
        self._show_size_note()
        self._on_choice_changed()

    def _on_size_spin(self, value: int) -> None:
        """The spin box set (by the user in "custom", or by a script): select the matching entry."""
        entry = PRESET_SIZE if value == 0 else str(value) if str(value) in SIZE_CHOICES else CUSTOM_SIZE
        if self.size_combo.currentText() != entry:
            self.size_combo.setCurrentText(entry)  # emits the change
        else:
            self._on_choice_changed()

    def is_ready(self) -> bool:
        """The chosen model is loaded."""
        return self._model is not None and self._model_key == self.choice()

    def model(self) -> sm.SAM2Model:
        """The chosen model, loaded on this thread if needed (scripts); widgets use :meth:`when_ready`."""
        if not self.is_ready():
            choice = self.choice()
            self._model, self._model_key = load_model(choice), choice
        return self._model

    def loaded_model(self) -> Optional[sm.SAM2Model]:
        """The model loaded for the current choice, or None."""
        return self._model if self.is_ready() else None

    # ------------------------------------------------------------------ loading
    def when_ready(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the chosen model is loaded: now, or after loading it in a worker.

        Actions asked for while a load runs wait for it; a failed or cancelled load drops them.
        """
        if self.is_ready() and self.worker is None:
            action()
            return
        self._pending.append(action)
        if self.worker is not None:
            return
        choice = self.choice()
        try:
            choice.check()
        except ValueError as error:
            self._pending.clear()
            show_error(f"SAM 2: {error}")
            return
        progress = self._download_relay(choice.name)

        @thread_worker(ignore_errors=True)  # errors go to our errored handler, not the event loop
        def load() -> sm.SAM2Model:
            return load_model(choice, progress)

        worker = load()
        worker.returned.connect(lambda model: self._on_loaded(choice, model))
        worker.errored.connect(self._on_load_error)
        worker.finished.connect(self._on_load_finished)
        from ._session_actions import let_go_when_finished

        let_go_when_finished(worker)  # napari keeps the worker: once it ends its slots (this picker's) go
        self.worker = worker
        self._show_loading(True)
        self.progress.setRange(0, 0)  # busy until the first byte count arrives
        self.status.setText(f"Loading {choice.name} ({choice.weights})…")
        self.busy.emit(True)
        worker.start()

    def _download_relay(self, name: str) -> Callable[[int, int], None]:
        """A download's progress callback for a worker: relays (done, total) to the progress bar (the status naming
        ``name``) and raises :class:`LoadCancelled` once Cancel download was pressed (the download stops, nothing
        saved). Clears an earlier cancel."""
        self._cancelled = False
        self._downloading = name
        relay = self.download_progress

        def progress(done: int, total: int) -> None:
            if self._cancelled:
                raise LoadCancelled("download cancelled")
            relay.emit(int(done), int(total))

        return progress

    def cancel(self) -> None:
        """Stop a download in progress (nothing is saved)."""
        if self.worker is not None:
            self._cancelled = True

    def _show_loading(self, loading: bool) -> None:
        self.progress.setVisible(loading)
        self.cancel_button.setVisible(loading)
        self.cancel_button.setEnabled(loading)

    def _on_download_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, max(total, 1)))
        self.status.setText(f"Downloading {self._downloading}: {done / 1e6:.0f} / {total / 1e6:.0f} MB")

    def _on_loaded(self, choice: ModelChoice, model: sm.SAM2Model) -> None:
        self._model, self._model_key = model, choice

    def _on_load_error(self, error: Exception) -> None:
        self._pending.clear()
        if isinstance(error, LoadCancelled) or self._cancelled:
            self.status.setText("Download cancelled; nothing was saved.")
            show_info("SAM 2: download cancelled; nothing was saved.")
        else:
            self.status.setText(f"Could not load the model: {error}")
            show_error(f"SAM 2 could not load the model: {error}")
        self._failed = True

    def _on_load_finished(self) -> None:
        self.worker = None
        self._show_loading(False)
        actions, self._pending = self._pending, []
        model = self.loaded_model()
        self.busy.emit(False)
        if model is None:
            return
        self.status.setText(f"{self.model_combo.currentText()} is ready.")
        self.loaded.emit(model)
        for action in actions:
            action()

    # ------------------------------------------------------------------ choices
    def _on_choice_changed(self, *_: Any) -> None:
        if self._failed and self.worker is None:  # a failed load's or refused file's words belong to the old choice
            self.status.setText("")
            self._failed = False
        weights = self.checkpoint_combo.currentText()
        if weights in self._runs:
            return  # a run's entry: its file is read next, and the choice becomes that local file
        self._weights_before = weights
        save_settings(
            model=self.model_combo.currentText(), checkpoint=weights,
            device=self.device_combo.currentText(), checkpoint_file=self.checkpoint_file,
            image_size=self.size_combo.currentText(), image_size_custom=self.size_spin.value(),
        )
        self._show_demo_note()
        self.changed.emit()

    def _show_demo_note(self) -> None:
        """What the embedded weights are good for, shown while they are the choice (not for the user's own)."""
        self.demo_note.setVisible(self.model_combo.currentText() == DEMO and
                                  self.checkpoint_combo.currentText() == EMBEDDED)

    def _on_model_changed(self, name: str) -> None:
        if self.size_combo.currentText() == AUTO:
            self._auto = None  # the rule depends on the model (official presets keep their size)
            self.refresh_auto()
        weights = self.checkpoint_combo.currentText()
        if name == DEMO and weights == CACHED:
            self.checkpoint_combo.setCurrentText(EMBEDDED)
        elif name != DEMO and weights == EMBEDDED:
            self.checkpoint_combo.setCurrentText(CACHED)

    def _on_weights_activated(self, text: str) -> None:
        if text in self._runs:
            self._use_run(text)
        elif text == LOCAL:
            path, _ = QFileDialog.getOpenFileName(self, "SAM 2 checkpoint", "", "PyTorch checkpoint (*.pt *.pth)")
            if path:
                self.choose_checkpoint_file(path)

    def set_checkpoint_file(self, path: str) -> None:
        """Use a local checkpoint file; the model selector follows the preset the file holds. Reads the file on this
        thread (scripts); the file dialog reads it in a worker (:meth:`choose_checkpoint_file`)."""
        try:
            preset = usable_file_preset(path)
        except ValueError as error:
            self._refuse_file(str(error))
            return
        self.use_checkpoint_file(path, preset)

    def choose_checkpoint_file(self, path: str) -> None:
        """Use the local checkpoint file ``path`` (the file dialog's): it is read and identified in the picker's worker
        (reading a large file, or the shapes of every model for a file of none, takes seconds), the picker busy
        meanwhile; then the model selector follows the preset the file holds, or the file is refused with why (the
        choice unchanged). The Model and Weights menus are disabled while it is read (a choice made meanwhile would be
        overwritten). Actions asked for meanwhile (:meth:`when_ready`) wait for it; a refused file drops them."""
        if self.worker is not None:
            show_error("SAM 2: a model is loading: choose the file once it is loaded (or cancelled)")
            return
        self._identified = None

        @thread_worker(ignore_errors=True)  # errors go to our errored handler, not the event loop
        def identify() -> Tuple[str, Optional[str], str]:
            try:
                return path, usable_file_preset(path), ""
            except ValueError as error:
                return path, None, str(error)

        worker = identify()
        worker.returned.connect(self._on_identified)
        worker.errored.connect(lambda error: self._on_identified((path, None, f"{path}: {error}")))
        worker.finished.connect(self._on_identify_finished)
        self.worker = worker
        self._hold_choice(True)  # a Model or Weights picked meanwhile would be overwritten when the file is read
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)  # busy: reading the file
        self.status.setText(f"Reading {path}…")
        self.busy.emit(True)
        worker.start()

    def _on_identified(self, result: Tuple[str, Optional[str], str]) -> None:
        self._identified = result  # applied once the worker slot is free (_on_identify_finished)

    def _on_identify_finished(self) -> None:
        """The file of :meth:`choose_checkpoint_file` is read: the choice follows it (or it is refused), then the
        actions that waited run (each loads the model first)."""
        self.worker = None
        self._show_loading(False)
        self._hold_choice(False)
        result, self._identified = self._identified, None
        actions, self._pending = self._pending, []
        path, preset, why = result if result is not None else ("", None, "the file could not be read")
        if preset is None:
            if self.checkpoint_combo.currentText() in self._runs:  # a run's entry whose file was refused
                self.checkpoint_combo.setCurrentText(self._weights_before)
            self._refuse_file(why)
            actions = []
        else:
            self.status.setText("")
            self.use_checkpoint_file(path, preset)
        self.busy.emit(False)
        for action in actions:
            self.when_ready(action)

    def fetch_weights(self, choice: ModelChoice, done: Callable[[Optional[str], str, bool], None]) -> None:
        """Make ``choice``'s weights usable in the picker's worker, without choosing it (a session's model, before the
        session load changes anything): an official model's file not in the cache is downloaded (the progress bar and
        Cancel download, as when the model is chosen), a local file is read and identified
        (:func:`~._model_choice.fetch_weights`). The picker is busy meanwhile, its Model and Weights menus held.

        Once the worker slot is free again, on the GUI thread: ``done(preset, error, cancelled)``: preset the local
        file's (None for other weights), error "" when the weights are usable, else why not (the download's words name
        the URL, the cache path and ``NAPARI_SAM2_CACHE``); cancelled when Cancel download was pressed (then nothing is
        used, even a file that arrived whole). Then the actions asked for meanwhile (:meth:`when_ready`) run, with the
        choice as it is then. ValueError (nothing started) while a load or a read runs."""
        if self.worker is not None:
            raise ValueError("a model is loading: wait for it (or cancel it) first")
        progress = self._download_relay(choice.name)
        self._fetched = None

        @thread_worker(ignore_errors=True)  # errors go to our errored handler, not the event loop
        def fetch() -> Optional[str]:
            return fetch_weights(choice, progress)

        worker = fetch()
        worker.returned.connect(lambda preset: setattr(self, "_fetched", (preset, None)))
        worker.errored.connect(lambda error: setattr(self, "_fetched", (None, error)))
        worker.finished.connect(lambda: self._on_fetch_finished(done))
        self.worker = worker
        self._hold_choice(True)  # the session sets them once its weights are here
        downloading = choice.weights == CACHED
        self._show_loading(downloading)  # Cancel download: for a download only (reading a file cannot be stopped)
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)  # busy until the first byte count arrives
        self.status.setText(f"Downloading {choice.name}…" if downloading else f"Reading {choice.path}…")
        self.busy.emit(True)
        worker.start()

    def _on_fetch_finished(self, done: Callable[[Optional[str], str, bool], None]) -> None:
        """The end of :meth:`fetch_weights`: the worker slot freed, ``done`` told how it went, then the actions that
        waited."""
        self.worker = None
        self._show_loading(False)
        self._hold_choice(False)
        fetched, self._fetched = self._fetched, None
        preset, error = fetched if fetched is not None else (None, RuntimeError("the weights could not be fetched"))
        cancelled = self._cancelled or isinstance(error, LoadCancelled)
        if cancelled:
            self.status.setText("Download cancelled; nothing was saved." if error is not None else
                                "Cancelled (the file had arrived whole: it is kept in the cache).")
        elif error is not None:
            self.status.setText(f"Could not get the weights: {error}")
        else:
            self.status.setText("")
        self._failed = cancelled or error is not None  # cleared with the next choice
        actions, self._pending = self._pending, []
        self.busy.emit(False)
        done(preset, "" if error is None else str(error) or type(error).__name__, cancelled)
        for action in actions:
            self.when_ready(action)

    def _hold_choice(self, held: bool) -> None:
        """Disable (``held``) or enable the Model and Weights menus: held while a chosen file is read, whose preset
        then sets them."""
        self.model_combo.setEnabled(not held)
        self.checkpoint_combo.setEnabled(not held)

    def _refuse_file(self, why: str) -> None:
        """A local checkpoint file that cannot be used: said (a notification and the status line); nothing changes."""
        show_error(f"SAM 2: {why}")
        self.status.setText(f"Not used: {why}")
        self._failed = True

    def use_checkpoint_file(self, path: str, preset: str) -> None:
        """Use the local checkpoint file ``path`` known to hold ``preset``'s weights (a file already read: a
        fine-tuning run's result, a session's checked file); the model selector follows ``preset``. Reads nothing."""
        self.checkpoint_file = str(path)
        if preset != self.model_combo.currentText():
            show_info(f"SAM 2: {path} holds {preset} weights; the model is now {preset}")
            self.model_combo.setCurrentText(preset)
        self.checkpoint_combo.setCurrentText(LOCAL)
        self._on_choice_changed()
