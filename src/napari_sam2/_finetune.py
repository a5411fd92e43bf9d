"""The "SAM 2 fine-tuning" dock widget: train a model on an annotated stack open in napari.

Pick an image layer (T, Y, X), or one (Y, X) image, and a Labels layer of the same shape whose ids are consistent
through time (for example masklets made with the segmentation widget and corrected by hand; frames with no label are
left out, and labels painted frame by frame under new ids are refused: ``sam2_model.train.stack_labels``), a starting
model (the same :class:`~._model_picker.ModelPicker` as the segmentation widget's) and a number of steps, and press
*Train*. Training (``sam2_model.train``) runs in a worker thread with a progress bar and Cancel; a cancelled run is
saved and *Train* resumes it (more Steps extend a finished one). A run folder whose run *Train* cannot continue
(finished, or trained with other settings) is left as it is: the widget moves to a fresh folder beside it and says so.
The result is a weights file in the official layout that the segmentation widget
(Weights: local file) and ``build_model`` load; *Use in the segmentation widget* sets it there with the input size the
run trained at. Checked before a run starts, nothing written otherwise: frames with NaN or infinity, labels that do not
lie on the image in the viewer (another scale, translate, rotate, shear or affine: training pairs them pixel by pixel),
a run folder that is a file or cannot be written (``sam2_model.train.run_folder.check_run_folder``, the check train()
makes; a relative one is made absolute: it is under napari's working folder). A Cancel during the last step stops
nothing: the run finishes with its check on the user's frames. Docking the widget and those checks load no torch
(napari would freeze seconds while it loads); the training loop and torch are imported in the run's worker thread.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import napari
import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QEvent, QObject, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

# (none of these imports torch: docking the widget and the checks before a run stay off torch on napari's GUI thread;
# the training loop, and torch with it, is imported in the run's worker thread: _train's work)
from sam2_model.checkpoints import find_cached
from sam2_model.config import get_config
from sam2_model.train.frame_options import FrameOptions, check_finite_frames
from sam2_model.train.hold_out import parse_frame_range, split_off
from sam2_model.train.run_folder import RunConflict, check_run_folder, run_differences, run_is_finished, run_warmup
from sam2_model.train.settings import FINE_TUNING_LR, TrainSettings, embedded_weights_file, fine_tuning_warmup
from sam2_model.train.stack_check import StackCheck
from sam2_model.train.stack_labels import annotated_frames, frame_list

from ._model_choice import DEMO, LOCAL, RANDOM
from ._model_picker import ModelPicker
from ._run_folders import default_run_folder, holds_finished_run, next_free_folder, run_record, setting_in_form_words
from ._session_actions import let_go_when_finished
from .settings import load_settings, save_settings


#: the status line's words after Use in the segmentation widget
USED = "The segmentation widget now runs"
#: the learning rate field's label (the widget's errors name it, not sam2-train's --lr)
LR_FIELD = "Learning rate"
#: the status line's second line after the last step, while the run checks the tuned weights on the user's frames
CHECKING = "all steps done: checking the tuned weights on your frames (a short tracking run)…"
#: the Steps field's tooltip: the README's advice to time a short run first
STEPS_TIP = ("How many training steps (more: longer, fits your cells better). A step takes about a second on a GPU "
             "and seconds to minutes on a laptop's CPU (1-2 min under load; Frames per clip 4 about halves it): train "
             "20 steps first, read the seconds per step and the time left in the status line, then raise Steps and "
             "press Train again (the run goes on from where it stopped).")
#: the status line's words while a Cancel waits for the step in progress to end
STOPPING = "stopping after this step (the run is saved)…"
#: the status line before a run
FIRST_WORDS = ("Pick an image and its labels (each cell with one id on every frame; frames with no label are left out), "
               "then Train.")


class _Relay(QObject):
    """Carries progress from the training thread to the main thread (queued signal)."""

    step = Signal(int, dict)


class FineTuneWidget(QWidget):
    """Fine-tune SAM 2 on the current image and labels layers."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.worker: Any = None
        self.weights_path: Optional[Path] = None
        self._weights_run: Tuple[str, int] = ("", 0)  # the model and input size the last run trained at
        self._hint_shown = False  # the status shows the float-labels hint (_show_labels_hint)
        self._run_out = ""  # the run folder of the run started last
        self._cancel = False
        self._started_at: Tuple[int, float] = (0, 0.0)  # (step, training seconds) the run in progress started from
        self._relay = _Relay()
        self._relay.step.connect(self._on_step)
        saved = load_settings()

        self.image_combo = QComboBox()
        self.labels_combo = QComboBox()
        self.picker = ModelPicker()  # the starting model: name, weights, device, input size
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(1, 1_000_000)
        self.steps_spin.setValue(200)
        self.lr_spin = QDoubleSpinBox()
        self.lr_spin.setDecimals(6)
        self.lr_spin.setRange(1e-6, 1e-2)
        self.lr_spin.setSingleStep(1e-5)
        self.lr_spin.setValue(FINE_TUNING_LR)  # the fine-tuning rate sam2-train uses too
        self.clip_spin = QSpinBox()
        self.clip_spin.setRange(1, 16)
        self.clip_spin.setValue(8)
        self.augment_check = QCheckBox("Turn and mirror clips")
        self.augment_check.setChecked(True)
        self.augment_check.setToolTip(
            "Show the model each training clip turned by 0, 90, 180 or 270 degrees and mirrored at random: eight views "
            "of every annotated frame (on the CTC MSC example: IoU on unseen frames 1.25x on whole frames, about the "
            "same in object windows). Untick for images with a direction that turning would falsify, such as DIC "
            "relief or a flow.")
        self.link_check = QCheckBox("Link ids by overlap")
        self.link_check.setChecked(False)
        self.link_check.setToolTip(
            "For labels painted frame by frame, where a cell has another id on each frame: before training, each cell "
            "takes the id of a cell it overlaps on the previous annotated frame, one to one, paired for the largest "
            "total overlap (a cell that overlaps none starts a new track). Leave it off for tracked labels, such as "
            "the segmentation widget's.")
        self.hold_out_edit = QLineEdit()
        self.hold_out_edit.setPlaceholderText("none, or e.g. 30-39")
        self.hold_out_edit.setToolTip(
            "Frames to keep out of training (first-last, both included, numbered from 0 as napari's time slider): "
            "after the run the starting and the fine-tuned weights each click every annotated cell of the first "
            "annotated frame among them and track it through them, so you see how the tuned weights do on frames "
            "they never saw. Leave empty to train on every annotated frame.")
        remembered = str(saved.get("finetune_folder", ""))
        if remembered and holds_finished_run(Path(remembered)):  # a new run goes beside the finished one, not onto it
            remembered = str(next_free_folder(Path(remembered)))
        self.out_edit = QLineEdit(remembered or str(default_run_folder()))
        self.train_button = QPushButton("Train")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.use_button = QPushButton("Use in the segmentation widget")
        self.use_button.setEnabled(False)
        for control, tip in ((self.image_combo, "The image to learn from (a time-lapse or one frame)."),
                             (self.labels_combo, "Its labels: each cell with one id on every frame it is in."),
                             (self.steps_spin, STEPS_TIP),
                             (self.lr_spin, "How fast the model changes at each step (keep the default unless "
                                            "training is unstable)."),
                             (self.clip_spin, "How many consecutive frames each training example holds."),
                             (self.train_button, "Start fine-tuning the model on this image and its labels."),
                             (self.cancel_button, "Stop training (the last saved weights are kept)."),
                             (self.use_button, "Use the fine-tuned weights in the segmentation widget.")):
            control.setToolTip(tip)
        self.progress = QProgressBar()
        self.status = QLabel(FIRST_WORDS)
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Image (T, Y, X) or (Y, X)", self.image_combo)
        form.addRow("Labels", self.labels_combo)
        form.addRow(self.picker)
        form.addRow("Steps", self.steps_spin)
        form.addRow(LR_FIELD, self.lr_spin)
        form.addRow("Frames per clip", self.clip_spin)
        form.addRow(self.augment_check)
        form.addRow(self.link_check)
        form.addRow("Hold out frames", self.hold_out_edit)
        form.addRow("Run folder", self.out_edit)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for widget in (self.train_button, self.cancel_button, self.progress, self.use_button, self.status):
            layout.addWidget(widget)
        layout.addStretch()

        self.picker.busy.connect(lambda busy: self.train_button.setEnabled(not busy and self.worker is None))
        self.train_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.use_button.clicked.connect(self.use_in_segmentation)
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)
        self._refresh()

    def _refresh(self, event: Any = None) -> None:
        for combo, kind in ((self.image_combo, "Image"), (self.labels_combo, "Labels")):
            current = combo.currentText()
            names = [layer.name for layer in self.viewer.layers if layer.__class__.__name__ == kind]
            combo.clear()
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)
        self._show_labels_hint()

    def _labels_hint(self) -> str:
        """How to make labels of an Image layer when there is no Labels layer but an Image layer with the shape of
        another image holds labels as floats (a float label TIFF, as Fiji saves them, opens as an image: napari makes
        no Labels layer of floats): :func:`looks_like_float_labels`, which reads at most 3 frames of each such layer;
        "" otherwise. Runs on the GUI thread at every layer list change: milliseconds (docstring there)."""
        if self.labels_combo.count():
            return ""
        images = [layer for layer in self.viewer.layers if layer.__class__.__name__ == "Image"]
        for layer in images:
            shape = np.shape(layer.data)
            if (not layer.multiscale and np.issubdtype(layer.data.dtype, np.floating) and len(shape) in (2, 3)
                    and any(other is not layer and np.shape(other.data) == shape for other in images)
                    and looks_like_float_labels(layer.data)):
                return (f"'{layer.name}' looks like labels saved as floats (napari opens those as an image): "
                        "right-click it in the layer list > Convert to Labels, then pick it as Labels here.")
        return ""

    def _show_labels_hint(self) -> None:
        """The status shows :meth:`_labels_hint` while there is one (not during a run); the first words once it goes."""
        if self.worker is not None:
            return
        hint = self._labels_hint()
        if hint:
            self.status.setText(hint)
        elif self._hint_shown:
            self.status.setText(FIRST_WORDS)
        self._hint_shown = bool(hint)

    @property
    def size_spin(self) -> QSpinBox:
        """The input size (the model picker's)."""
        return self.picker.size_spin

    def settings(self) -> TrainSettings:
        """The run the form describes (checked when training starts)."""
        choice = self.picker.choice()
        return TrainSettings(
            out=_absolute_folder(self.out_edit.text().strip() or str(default_run_folder())),
            model=choice.name, init=self._start_weights(),
            steps=self.steps_spin.value(), lr=self.lr_spin.value(), clip_len=self.clip_spin.value(),
            warmup_steps=fine_tuning_warmup(self.steps_spin.value()), clips_per_step=2,
            image_size=choice.image_size, save_every=25, device=choice.device, augment=self.augment_check.isChecked(),
            link_ids=self.link_check.isChecked(), hold_out=self.hold_out_edit.text().strip() or None,
            **self.frame_options(),
        )

    def frame_options(self) -> Dict[str, Any]:
        """How the segmentation widget shows frames to the model now, for training to see them the same way: its
        *Smooth frames* ({"smooth": px}) and *Invert* ({"invert": True}) from its ``session_options()``; {} without a
        segmentation widget or with both off. (Its channel choice is for a stack with channels, which this form does
        not take: pick a (T, Y, X) channel layer here.)"""
        from ._widget import attached_widget

        segmentation = attached_widget(self.viewer)
        options = {} if segmentation is None else segmentation.session_options()
        return {name: options[name] for name in ("smooth", "invert") if name in options}

    def _start_weights(self) -> Optional[str]:
        """The checkpoint file training starts from (None: random weights)."""
        choice = self.picker.choice()
        if choice.weights == RANDOM:
            return None
        if choice.weights == LOCAL:
            return choice.path
        if choice.name == DEMO:
            return str(embedded_weights_file())  # (sam2_model.build's file, found without torch)
        cached = find_cached(choice.name)
        return str(cached) if cached else None

    def _data(self) -> tuple:
        names = self.image_combo.currentText(), self.labels_combo.currentText()
        if not names[0] or not names[1]:
            raise ValueError(" ".join(["pick an image layer and a labels layer first.", self._labels_hint()]).strip())
        image = self.viewer.layers[names[0]]
        labels = self.viewer.layers[names[1]]
        if image.rgb or np.ndim(image.data) not in (2, 3):
            raise ValueError(f"the image layer must be (T, Y, X) grey frames or one (Y, X) grey image; '{image.name}' "
                             f"has shape {tuple(image.data.shape)}{' (RGB)' if image.rgb else ''}: pick one channel")
        if np.shape(labels.data) != np.shape(image.data):
            raise ValueError(f"the labels layer '{labels.name}' has shape {tuple(np.shape(labels.data))}, the image "
                             f"layer '{image.name}' {tuple(np.shape(image.data))}: they must be the same")
        check_same_placement(image, labels)
        return np.asarray(image.data), np.asarray(labels.data)

    def start(self) -> None:
        """Start (or resume) training in a worker thread (after downloading the starting weights if needed)."""
        if self.worker is not None or self.picker.worker is not None:
            return
        try:
            stack, labels = self._data()
            check_finite_frames(stack)  # a NaN pixel would train every step to NaN weights
            settings = self._run_settings()
            if settings.hold_out is not None:  # the frames exist and leave some to train on: said before any run
                split_off(stack, labels, parse_frame_range(settings.hold_out))
            self.picker.choice().check()
            check_run_folder(Path(settings.out))
        except (ValueError, OSError) as error:  # OSError: a path that cannot be looked at (a folder not to enter)
            self._not_started(error)
            return
        self.out_edit.setText(settings.out)  # a relative folder shown as the absolute one it is
        if self._folder_taken(settings):
            return
        choice = self.picker.choice()
        if choice.weights not in (RANDOM, LOCAL) and choice.name != DEMO and find_cached(choice.name) is None:
            self.picker.when_ready(self._train)  # downloads the official checkpoint first (with progress)
        else:
            self._train()

    def _run_settings(self) -> TrainSettings:
        """The form's run; continuing the run in its folder, with that run's warm-up (the form derives the warm-up
        from Steps, and a run keeps its settings: more steps extend it)."""
        settings = self.settings()
        warmup = run_warmup(Path(settings.out))
        return settings if warmup is None else dataclasses.replace(settings, warmup_steps=warmup)

    def _folder_taken(self, settings: TrainSettings) -> bool:
        """Whether the run folder holds a run the form cannot continue (finished with no more Steps, or trained with
        other settings, or weights with no run): then nothing starts, the run folder becomes a fresh one beside it and
        the status says so and how to continue the old run instead (a run never takes settings it was not trained
        with)."""
        folder = Path(settings.out)
        record = run_record(folder)
        resumable = (folder / "last.pt").exists()
        if record is None or (resumable and not record):
            return False  # no run there, or one with no record yet: train() checks it
        done = int(record.get("steps", 0))
        differences = run_differences(record.get("settings") or {}, settings)
        finished = run_is_finished(done, record.get("stopped_by"), settings)
        if resumable and not differences and not finished:
            return False  # Train resumes it, or extends it to more steps
        if not resumable:
            held, further = "weights (weights.pt) but no run to continue (last.pt)", ""
        else:
            state = "finished " if record.get("stopped_by") == "steps" else ""
            held = f"a {state}run of {done} step{'s' * (done != 1)}"
            if differences:
                held += " with other settings: " + ", ".join(
                    f"{setting_in_form_words(name, before)} (here {setting_in_form_words(name, now, named=False)})"
                    for name, before, now in differences)
            needs = ([f"Steps above {done}"] if finished else []) + (["its settings"] if differences else [])
            further = f" To train that run further instead, set the run folder back to it with {' and '.join(needs)}."
        fresh = next_free_folder(folder)
        self.out_edit.setText(str(fresh))
        self.progress.reset()
        self.status.setText(f"Nothing trained: {folder} holds {held}. The run folder is now {fresh}: press Train to "
                            f"start a new run there with these settings.{further}")
        return True

    def _not_started(self, error: BaseException) -> None:
        self.progress.reset()
        self.status.setText(f"failed, nothing trained: {error}")
        show_error(f"SAM 2 fine-tuning: {error}")

    def _on_error(self, error: BaseException) -> None:
        """The run failed: the status says why (the bar rewinds); a run folder whose run this one cannot resume gives
        way to a fresh one."""
        self.progress.reset()
        text = f"failed: {error}"
        if isinstance(error, OSError) and self._run_out not in text:  # a save that failed mid-run (atomic_save names
            text += f" (run folder {self._run_out})"  # the file and its folder); any other OSError: the folder too
        if isinstance(error, RunConflict) and self.out_edit.text().strip() == self._run_out:
            fresh = next_free_folder(Path(self._run_out))
            self.out_edit.setText(str(fresh))
            text += f"\nThe run folder is now {fresh}: press Train to start a new run there."
        self.status.setText(text)
        show_error(f"SAM 2 fine-tuning {text}")

    def _train(self) -> None:
        try:
            stack, labels = self._data()
            settings = self._run_settings()
        except (ValueError, OSError) as error:
            self._not_started(error)
            return
        self._run_out = settings.out
        record = run_record(Path(settings.out)) if (Path(settings.out) / "last.pt").exists() else None
        save_settings(finetune_folder=settings.out)
        self._cancel = False
        # (the step and the training seconds the run resumes from: this call's pace is measured from there)
        self._started_at = (int(record.get("steps", 0)), float(record.get("train_seconds", 0.0))) if record else (0, 0.0)
        self.progress.setRange(0, settings.steps)
        self.progress.setValue(0)
        relay = self._relay

        def report(step: int, row: Dict[str, float]) -> bool:
            relay.step.emit(step, dict(row))
            return not self._cancel

        trained_at = (settings.model, get_config(settings.model, settings.image_size).image_size)

        @thread_worker(ignore_errors=True)  # errors go to our errored handler, not the event loop
        def work() -> Tuple[Path, List[Dict[str, Any]], int, Tuple[str, int], str]:
            from sam2_model.train.loop import train  # torch and the training code: here, in the worker thread

            train(settings, stack=stack, labels=labels, progress=report)
            weights = Path(settings.out) / "weights.pt"
            metadata = run_record(Path(settings.out)) or {}  # the record the builder reads (inside weights.pt first)
            checks = [metadata[key] for key in ("stack_check", "held_out_check") if metadata.get(key)]
            return weights, checks, int(metadata["steps"]), trained_at, str(metadata.get("stopped_by"))

        worker = work()
        worker.returned.connect(self._on_done)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        let_go_when_finished(worker)  # napari keeps its workers: a finished one keeps none of our slots
        self.worker = worker
        self.train_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        part = ""
        if labels.ndim == 3:  # a stack (one (Y, X) image has no frames to leave out)
            held = None if settings.hold_out is None else parse_frame_range(settings.hold_out)
            annotated = np.array([t for t in annotated_frames(labels) if held is None or t not in held], int)
            if 0 < len(annotated) < len(labels):
                part = (f" on its {len(annotated)} annotated frames of {len(labels)} ({frame_list(annotated)}; frames "
                        "with no label are left out)")
            if held is not None:
                part += f", frames {held} held out to check it on"
        seen = FrameOptions.of(settings).words()
        if seen:
            part += f", its frames {seen} as the segmentation widget shows them"
        if record and record.get("steps"):
            part += f", from step {record['steps']} of the run there"
        self.status.setText(f"training {settings.model} in {settings.out}{part}…")
        worker.start()

    def cancel(self) -> None:
        """Stop after the current step; the run is saved and Train resumes it. At once: Cancel is disabled and the
        status says the run stops after the step in progress (a step takes minutes on a CPU)."""
        self._cancel = True
        if self.worker is not None and self.cancel_button.isEnabled():  # (not during the final check: it finishes)
            self.cancel_button.setEnabled(False)
            self.status.setText(f"{self.status.text()}\n{STOPPING}")

    def event(self, event: QEvent) -> bool:
        """Closing the dock (its x) takes the widget out of the window: its training stops after the step in progress
        and is saved (Train in a new fine-tuning widget resumes it), instead of running on with no Cancel."""
        if event.type() == QEvent.ParentChange and self.parent() is None and self.worker is not None:
            self.cancel()
        return super().event(event)

    def _on_step(self, step: int, row: dict) -> None:
        """A step ended: the bar and the status show it; after the last one the run checks the tuned weights on the
        user's frames, which the status says (a Cancel then stops nothing: the run is finished, so it is off)."""
        self.progress.setValue(step)
        total = self.progress.maximum()
        text = (f"step {step} of {total}: loss {row.get('total', float('nan')):.3f}, "
                f"mask IoU {row.get('mask_iou', float('nan')):.2f}")
        pace = step_pace(step, total, row.get("seconds"), self._started_at)
        if pace:
            text += f"; {pace}"
        if step >= total:
            self.cancel_button.setEnabled(False)
            text += f"\n{CHECKING}"
        elif self._cancel:
            text += f"\n{STOPPING}"
        self.status.setText(text)

    def use_in_segmentation(self) -> None:
        """Open the segmentation widget with the fine-tuned weights as its local checkpoint file, the run's model and
        the input size the run trained at (its Input size)."""
        if self.weights_path is None:
            return
        from .api import get_widget

        model, size = self._weights_run
        segmentation = get_widget(self.viewer)
        segmentation.picker.use_checkpoint_file(str(self.weights_path), model)  # the run's own model: nothing to read
        segmentation.size_spin.setValue(size)
        said = self.status.text().split(f"\n{USED}")[0]  # the run's words, once
        self.status.setText(f"{said}\n{USED} {model} with these weights at {size} px, the input size they were "
                            "trained at (its Input size changes it).")

    def _on_done(self, result: Tuple[Path, List[Dict[str, Any]], int, Tuple[str, int], str]) -> None:
        """The run ended: ``result`` is (weights.pt, its checks' records, the step the run stopped after, (the model,
        the input size in pixels) it trained, what stopped it: its record's ``stopped_by``). "done" only for a run
        that did all its steps and its final check ("steps"; a Cancel during the last step or the check stopped
        nothing: ``train`` finishes such a run); a cancelled one says where it stopped."""
        path, recorded, step, self._weights_run, stopped_by = result
        self.weights_path = path
        self.use_button.setEnabled(True)
        total = self.progress.maximum()  # the run's --steps (set when Train was pressed)
        state = "done" if stopped_by == "steps" else f"stopped after step {step} of {total} (Train resumes)"
        checks = [StackCheck(**check) for check in recorded]  # the training frames', then the held-out frames'
        self.status.setText("\n".join([f"{state}: weights in {path}; load them in the segmentation widget "
                                       "(Weights: local file)"] + [check.summary() for check in checks]))
        show_info(f"SAM 2 fine-tuning {state}: {path}")
        for check in checks:
            warning = check.warning()
            if warning:
                show_warning(f"SAM 2 {warning}")

    def _on_finished(self) -> None:
        self.worker = None
        self.train_button.setEnabled(True)
        self.cancel_button.setEnabled(False)


def step_pace(step: int, total: int, seconds: Any, started_at: Tuple[int, float]) -> str:
    """The status line's pace after ``step`` of ``total``: "12.3 s a step, about 40 min left" (as sam2-train's bar
    shows it), from the run's training seconds so far (history's cumulative ``seconds``) less those of
    ``started_at`` = (the step, the seconds) this call resumed from, over the steps since; "" before a step of this
    call ended or without a time."""
    done = step - started_at[0]
    if done < 1 or not isinstance(seconds, (int, float)) or not np.isfinite(seconds):
        return ""
    each = max(0.0, float(seconds) - started_at[1]) / done
    words = f"{each:.1f} s a step" if each < 100 else f"{each / 60:.1f} min a step"
    left = each * max(0, total - step)
    return f"{words}, {duration_words(left)} left" if step < total else words


def duration_words(seconds: float) -> str:
    """``seconds`` in a user's words: "less than a minute", "about 12 min", "about 3 h 05 min"."""
    minutes = int(round(seconds / 60))
    if minutes < 1:
        return "less than a minute"
    if minutes < 60:
        return f"about {minutes} min"
    return f"about {minutes // 60} h {minutes % 60:02d} min"


def _absolute_folder(text: str) -> str:
    """The run folder typed as ``text`` as an absolute path ("~" expanded; a relative one is under napari's working
    folder, so it is shown and recorded whole)."""
    return os.path.abspath(os.path.expanduser(text))


#: the parts of a layer's placement in the viewer (data to world) that must agree for pixel-by-pixel training
PLACEMENT = ("scale", "translate", "rotate", "shear", "affine")


def _placement(layer: Any, part: str) -> np.ndarray:
    """The layer's ``part`` of :data:`PLACEMENT` as an array (``affine``: its matrix)."""
    value = getattr(layer, part)
    return np.asarray(value.affine_matrix if part == "affine" else value, dtype=float)


def _numbers(values: np.ndarray) -> str:
    """A 1-D placement (scale, translate) as "(1, 0.5, 0.5)"."""
    return "(" + ", ".join(f"{v:g}" for v in np.ravel(values)) + ")"


def check_same_placement(image: Any, labels: Any) -> None:
    """ValueError unless the image and labels layers (same shape) lie on each other in the viewer: the same scale,
    translate, rotate, shear and affine. Training pairs them voxel by voxel (pixel (t, y, x) of the labels with pixel
    (t, y, x) of the image), so labels shown at another scale or shifted would train on pairs that do not overlap on
    screen. The error names both layers, the parts that differ with their values, what is accepted and how to set
    them equal in napari's console."""
    differing = [part for part in PLACEMENT
                 if not np.allclose(_placement(image, part), _placement(labels, part), rtol=1e-6, atol=1e-9)]
    if not differing:
        return

    def values(layer: Any) -> str:
        return ", ".join(f"{part} {_numbers(_placement(layer, part))}" for part in ("scale", "translate"))

    others = [part for part in differing if part not in ("scale", "translate")]  # rotate, shear, affine
    same = "the same scale and translate" + (f" (and {', '.join(others)})" if others else "")
    fixes = "; ".join(f"viewer.layers['{labels.name}'].{part} = viewer.layers['{image.name}'].{part}"
                      for part in differing)
    raise ValueError(
        f"the labels layer '{labels.name}' ({values(labels)}) does not lie on the image layer '{image.name}' "
        f"({values(image)}) in the viewer: training pairs them pixel by pixel, so they must have the same shape and "
        f"{same}. If the labels were drawn on this image, set them equal in napari's console (Window > Console): "
        f"{fixes}; if they belong to another grid, resample them onto the image's pixels first")


#: frames :func:`looks_like_float_labels` reads at most (evenly spaced: first, middle, last)
HINT_FRAMES = 3
#: labels: at least this share of the non-zero pixels equal their right neighbour (object interiors); camera counts
#: with noise: few do (Poisson noise around 100 counts: about 3 %; around 2 counts: about 22 %)
PIECEWISE_CONSTANT = 0.5


def looks_like_float_labels(data: Any) -> bool:
    """Whether a float (Y, X) image or (T, Y, X) stack ``data`` (a NumPy or lazy array: dask, zarr) holds labels: the
    first non-blank frame among at most :data:`HINT_FRAMES` evenly spaced ones (first, middle, last: a stack whose
    first frames are unannotated still counts) holds finite, whole, non-negative numbers, and is piecewise constant
    (:data:`PIECEWISE_CONSTANT` of its non-zero pixels equal their right neighbour), which tells labels from
    whole-number camera counts saved as floats. Only those frames are read (``np.asarray`` of one frame at a time);
    on a 40 x 1024 x 1024 float32 stack a few milliseconds."""
    shape = np.shape(data)
    frames = [None] if len(shape) == 2 else np.unique(np.linspace(0, shape[0] - 1, min(HINT_FRAMES, shape[0])).round())
    for t in frames:
        plane = np.asarray(data if t is None else data[int(t)])
        if not plane.any():
            continue  # blank (an unannotated frame): the next one decides
        return _piecewise_constant(plane) and _whole_numbers(plane)
    return False


def _piecewise_constant(plane: np.ndarray) -> bool:
    """Whether at least :data:`PIECEWISE_CONSTANT` of the non-zero pixels of the (Y, X) ``plane`` equal their right
    neighbour (False with no non-zero pixel left of another)."""
    left, right = plane[:, :-1], plane[:, 1:]
    inside = left != 0
    counted = np.count_nonzero(inside)
    return bool(counted) and np.count_nonzero(inside & (left == right)) >= PIECEWISE_CONSTANT * counted


def _whole_numbers(plane: np.ndarray) -> bool:
    """Whether ``plane`` holds finite, whole, non-negative numbers, not all 0 (labels saved as floats)."""
    return bool(plane.size and np.isfinite(plane).all() and (plane >= 0).all() and plane.any()
                and (plane == np.round(plane)).all())
