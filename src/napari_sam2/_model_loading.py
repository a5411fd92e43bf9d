"""The segmentation widget's model handling: the chosen model, loading it in a worker with download
progress and cancel, and local checkpoint files. A mixin of :class:`~napari_sam2._widget.SegmentationWidget`.

It uses the widget's combos (``model_combo``, ``checkpoint_combo``, ``device_combo``, ``size_spin``), its
``progress`` bar, ``status`` label, ``worker`` slot, ``controller`` and ``_set_busy``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QFileDialog

import sam2_model as sm

from ._model_choice import (
    CACHED, DEMO, EMBEDDED, LOCAL, LoadCancelled, ModelChoice, load_model, model_names, preset_of_file,
)


class Relay(QObject):
    """Carries download progress from the loading thread to the main thread."""

    progress = Signal(int, int)



class ModelLoading:
    """Model choice and loading for the segmentation widget."""

    _model: Optional[sm.SAM2Model]
    _model_key: Any
    checkpoint_file: Optional[str]

    def model_choice(self) -> ModelChoice:
        return ModelChoice(
            self.model_combo.currentText(), self.checkpoint_combo.currentText(), self.device_combo.currentText(),
            self.size_spin.value() or None, self.checkpoint_file,
        )

    def model_ready(self) -> bool:
        return self._model is not None and self._model_key == self.model_choice()

    def model(self) -> sm.SAM2Model:
        """The chosen model, loaded on this thread (scripts); the widget loads it in a worker."""
        if not self.model_ready():
            choice = self.model_choice()
            self._model, self._model_key = load_model(choice), choice
        return self._model

    def when_model_ready(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the chosen model is loaded; load it in a worker (with progress) first if needed."""
        if self.model_ready():
            action()
            return
        if self.worker is not None:
            return
        choice = self.model_choice()
        try:
            choice.check()
        except ValueError as error:
            show_error(f"SAM 2: {error}")
            return
        self._cancel_load = False
        self._after_load = action
        relay = self._relay

        def progress(done: int, total: int) -> None:
            if self._cancel_load:
                raise LoadCancelled("download cancelled")
            relay.progress.emit(int(done), int(total))

        @thread_worker(ignore_errors=True)  # errors go to our errored handler, not the event loop
        def load() -> sm.SAM2Model:
            return load_model(choice, progress)

        worker = load()
        worker.returned.connect(lambda model: self._on_model_loaded(choice, model))
        worker.errored.connect(self._on_load_error)
        worker.finished.connect(self._on_load_finished)
        self.worker = worker
        self._set_busy(True)
        self.progress.setRange(0, 0)  # busy until the first byte count arrives
        self.status.setText(f"Loading {choice.name} ({choice.weights})…")
        worker.start()

    def _on_download_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(min(done, max(total, 1)))
        self.status.setText(f"Downloading {self.model_combo.currentText()}: {done / 1e6:.0f} / {total / 1e6:.0f} MB")

    def _on_model_loaded(self, choice: ModelChoice, model: sm.SAM2Model) -> None:
        self._model, self._model_key = model, choice
        self.controller = None

    def _on_load_error(self, error: Exception) -> None:
        self._after_load = None
        if isinstance(error, LoadCancelled):
            show_info("SAM 2: download cancelled; nothing was saved.")
        else:
            show_error(f"SAM 2 could not load the model: {error}")

    def _on_load_finished(self) -> None:
        self.worker = None
        self._set_busy(False)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        action, self._after_load = self._after_load, None
        if action is not None and self.model_ready():
            self.status.setText(f"{self.model_combo.currentText()} is ready.")
            action()

    def _on_cancel_load(self) -> None:
        self._cancel_load = True

    def _on_model_changed(self, name: str) -> None:
        weights = self.checkpoint_combo.currentText()
        if name == DEMO and weights == CACHED:
            self.checkpoint_combo.setCurrentText(EMBEDDED)
        elif name != DEMO and weights == EMBEDDED:
            self.checkpoint_combo.setCurrentText(CACHED)

    def _on_weights_activated(self, text: str) -> None:
        if text == LOCAL:
            path, _ = QFileDialog.getOpenFileName(self, "SAM 2 checkpoint", "", "PyTorch checkpoint (*.pt *.pth)")
            if path:
                self.set_checkpoint_file(path)

    def set_checkpoint_file(self, path: str) -> None:
        """Use a local checkpoint file; the model selector follows the preset the file holds."""
        try:
            preset = preset_of_file(path)
        except (ValueError, FileNotFoundError) as error:
            show_error(f"SAM 2: {error}")
            return
        if preset is None:
            show_error(f"SAM 2: {path} holds no known SAM 2 model (its tensors match none of {model_names()})")
            return
        self.checkpoint_file = str(path)
        if preset != self.model_combo.currentText():
            show_info(f"SAM 2: {path} holds {preset} weights; the model is now {preset}")
            self.model_combo.setCurrentText(preset)
        self.checkpoint_combo.setCurrentText(LOCAL)
        self._on_settings_changed()

