"""The "SAM 2 segmentation" dock widget."""

from __future__ import annotations

from itertools import chain
from typing import Any, Callable, List, Optional

import napari
import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QComboBox,
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

from ._colors import OBJECT_COLORMAP, style_boxes, style_points
from ._model_choice import CACHED, DEMO, EMBEDDED, WEIGHT_CHOICES, default_model, model_names
from ._model_loading import ModelLoading, Relay
from .controller import SegmentationController
from .layout import StackLayout, world_to_data
from .prompts import FramePrompt, collect_prompts, masks_from_labels
from .settings import load_settings, save_settings

POINTS_NAME, BOXES_NAME, LABELS_NAME = "SAM2 clicks", "SAM2 boxes", "SAM2 masklets"
DEVICES = ("auto", "cuda", "mps", "cpu")
NO_CHANNEL_AXIS = "none (grey or RGB)"
CHANNEL_MODES = ("mean of channels", "max of channels")


class SegmentationWidget(ModelLoading, QWidget):
    """Pick an image and a model, click objects, propagate, correct, undo."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = viewer
        self.controller: Optional[SegmentationController] = None
        self.worker: Any = None
        self._model_key: Optional[tuple] = None
        self._model: Optional[sm.SAM2Model] = None
        settings = load_settings()

        self.image_combo = QComboBox()
        self.axis_spin = QSpinBox()
        self._relay = Relay()
        self._relay.progress.connect(self._on_download_progress)
        self._cancel_load = False
        self._run_outcome = ""
        self._after_load: Optional[Callable[[], None]] = None
        self.checkpoint_file: Optional[str] = settings.get("checkpoint_file")
        self.channel_axis_combo = QComboBox()
        self.channel_combo = QComboBox()
        self.seed_combo = QComboBox()
        self.seed_button = QPushButton("Use labels as masks (current frame)")
        self.model_combo = QComboBox()
        self.model_combo.addItems(model_names())
        self.model_combo.setCurrentText(settings.get("model") or default_model())
        self.checkpoint_combo = QComboBox()
        self.checkpoint_combo.addItems(list(WEIGHT_CHOICES))
        default_weights = EMBEDDED if self.model_combo.currentText() == DEMO else CACHED
        self.checkpoint_combo.setCurrentText(settings.get("checkpoint") or default_weights)
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        self.device_combo.setCurrentText(settings.get("device", "auto"))
        self.size_spin = QSpinBox()
        self.size_spin.setRange(0, 2048)
        self.size_spin.setSingleStep(32)
        self.size_spin.setSpecialValueText("preset")
        self.object_spin = QSpinBox()
        self.object_spin.setRange(1, 65535)
        self.new_object_button = QPushButton("New object")
        self.positive_button = QPushButton("Clicks: positive (T toggles)")
        self.segment_button = QPushButton("Segment current frame")
        self.forward_button = QPushButton("Propagate ▶")
        self.backward_button = QPushButton("◀ Propagate")
        self.both_button = QPushButton("◀ Both ▶")
        self.cancel_button = QPushButton("Cancel")
        self.undo_button = QPushButton("Undo last run")
        self.export_labels_button = QPushButton("Export labels (TIFF)…")
        self.export_table_button = QPushButton("Export table (CSV)…")
        self.tracks_button = QPushButton("Add Tracks layer")
        self.progress = QProgressBar()
        self.status = QLabel("Pick an image layer, then click on an object.")
        self.status.setWordWrap(True)

        form = QFormLayout()
        form.addRow("Image", self.image_combo)
        form.addRow("Propagate along axis", self.axis_spin)
        form.addRow("Channel axis", self.channel_axis_combo)
        form.addRow("Channel", self.channel_combo)
        form.addRow("Model", self.model_combo)
        form.addRow("Weights", self.checkpoint_combo)
        form.addRow("Device", self.device_combo)
        form.addRow("Input size", self.size_spin)
        form.addRow("Object id", self.object_spin)
        row = QHBoxLayout()
        for button in (self.backward_button, self.both_button, self.forward_button):
            row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for widget in (self.new_object_button, self.positive_button, self.segment_button):
            layout.addWidget(widget)
        seed_row = QHBoxLayout()
        seed_row.addWidget(QLabel("Seed from"))
        seed_row.addWidget(self.seed_combo)
        layout.addLayout(seed_row)
        layout.addWidget(self.seed_button)
        layout.addLayout(row)
        for widget in (self.progress, self.cancel_button, self.undo_button, self.export_labels_button,
                       self.export_table_button, self.tracks_button, self.status):
            layout.addWidget(widget)
        layout.addStretch()
        self.cancel_button.setEnabled(False)

        self.image_combo.currentTextChanged.connect(self._on_image_changed)
        self.channel_axis_combo.currentTextChanged.connect(self._on_channel_axis_changed)
        self.seed_button.clicked.connect(self._on_seed_clicked)
        self.model_combo.currentTextChanged.connect(self._on_model_changed)
        self.checkpoint_combo.textActivated.connect(self._on_weights_activated)
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
        self.tracks_button.clicked.connect(self.add_tracks_layer)
        for combo in (self.model_combo, self.checkpoint_combo, self.device_combo):
            combo.currentTextChanged.connect(self._on_settings_changed)
        self.cancel_button.clicked.connect(self._on_cancel_load)
        self.viewer.layers.events.inserted.connect(self._refresh_images)
        self.viewer.layers.events.removed.connect(self._refresh_images)
        self._refresh_images()

    # ------------------------------------------------------------------ layers
    def _refresh_images(self, event: Any = None) -> None:
        seed = self.seed_combo.currentText()
        seeds = [layer.name for layer in self.viewer.layers
                 if layer.__class__.__name__ == "Labels" and layer.name != LABELS_NAME]
        self.seed_combo.clear()
        self.seed_combo.addItems(seeds)
        if seed in seeds:
            self.seed_combo.setCurrentText(seed)
        current = self.image_combo.currentText()
        names = [layer.name for layer in self.viewer.layers if layer.__class__.__name__ == "Image"]
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        self.image_combo.addItems(names)
        if current in names:
            self.image_combo.setCurrentText(current)
        self.image_combo.blockSignals(False)
        if names and current not in names:
            self._on_image_changed(self.image_combo.currentText())

    @property
    def image_layer(self) -> Any:
        name = self.image_combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def _on_image_changed(self, name: str) -> None:
        layer = self.image_layer
        if layer is None:
            return
        ndim = layer.data.ndim - (1 if layer.rgb else 0)
        self.axis_spin.setRange(0, max(ndim - 3, 0))
        self.axis_spin.setValue(0)
        self.channel_axis_combo.blockSignals(True)
        self.channel_axis_combo.clear()
        self.channel_axis_combo.addItem(NO_CHANNEL_AXIS)
        if not layer.rgb:
            for axis in range(max(ndim - 2, 0)):
                self.channel_axis_combo.addItem(f"axis {axis} ({layer.data.shape[axis]})")
        self.channel_axis_combo.blockSignals(False)
        self._on_channel_axis_changed()
        self.controller = None
        self.points_layer, self.boxes_layer = self._prompt_layers(layer)

    def channel_axis(self) -> Optional[int]:
        """The image axis holding channels (None: grey, or RGB layers whose colour axis napari knows)."""
        text = self.channel_axis_combo.currentText()
        return int(text.split()[1]) if text.startswith("axis ") else None

    def _on_channel_axis_changed(self, _: str = "") -> None:
        layer, axis = self.image_layer, self.channel_axis()
        self.channel_combo.clear()
        if layer is None or axis is None:
            self.channel_combo.addItem("all (grey or RGB)")
            return
        self.channel_combo.addItems([f"channel {c}" for c in range(layer.data.shape[axis])] + list(CHANNEL_MODES))

    def session_options(self) -> dict:
        """How the chosen channel reaches the model: one channel, or a mean/max composite."""
        text = self.channel_combo.currentText()
        if self.channel_axis() is None:
            return {}
        if text.startswith("channel "):
            return {"channel": int(text.split()[1])}
        return {"composite": "mean" if text.startswith("mean") else "max"}

    def _prompt_layers(self, image: Any) -> tuple:
        """The widget's Points and Shapes layers, in the image's world coordinates."""
        ndim = image.data.ndim - (1 if image.rgb else 0)
        if POINTS_NAME not in self.viewer.layers:
            points = self.viewer.add_points(
                np.zeros((0, ndim)), name=POINTS_NAME, ndim=ndim, scale=image.scale, translate=image.translate,
                features={"positive": np.zeros(0, bool), "obj_id": np.zeros(0, int)},
                size=max(4.0, min(image.data.shape[-2:]) / 60), face_color="lime", border_color="white",
            )
            points.feature_defaults = {"positive": True, "obj_id": self.object_spin.value()}
            points.mode = "add"
            points.bind_key("t", lambda layer: self._on_toggle_positive(), overwrite=True)
            points.events.data.connect(self._on_points_changed)
            style_points(points)
        if BOXES_NAME not in self.viewer.layers:
            boxes = self.viewer.add_shapes(
                None, ndim=ndim, name=BOXES_NAME, scale=image.scale, translate=image.translate,
                shape_type="rectangle", edge_color="yellow", face_color="transparent",
                features={"obj_id": np.zeros(0, int)},
            )
            boxes.feature_defaults = {"obj_id": self.object_spin.value()}
            boxes.events.data.connect(lambda event: style_boxes(boxes))
            style_boxes(boxes)
        return self.viewer.layers[POINTS_NAME], self.viewer.layers[BOXES_NAME]

    def _layout(self, image: Any) -> StackLayout:
        ndim = image.data.ndim
        channel_axis = ndim - 1 if image.rgb else self.channel_axis()
        spatial_ndim = ndim - (1 if channel_axis is not None else 0)
        if spatial_ndim == 2:
            return StackLayout(ndim, None, channel_axis)
        frame_axis = self.axis_spin.value()
        if frame_axis == channel_axis:
            raise ValueError(f"axis {frame_axis} cannot be both the propagated axis and the channel axis")
        step = self.viewer.dims.current_step
        fixed = tuple(
            (axis, int(step[axis])) for axis in range(ndim - 2)
            if axis not in (frame_axis, channel_axis) and not (image.rgb and axis == ndim - 1)
        )
        return StackLayout(ndim, frame_axis, channel_axis, fixed)

    def _labels_layer(self, image: Any, layout: StackLayout) -> Any:
        if LABELS_NAME not in self.viewer.layers:
            shape = layout.labels_shape(image.data.shape)
            keep = [axis for axis in range(image.data.ndim) if axis != layout.channel_axis]
            self.viewer.add_labels(
                np.zeros(shape, np.uint32), name=LABELS_NAME, scale=[image.scale[a] for a in keep],
                translate=[image.translate[a] for a in keep], colormap=OBJECT_COLORMAP,
            )
        return self.viewer.layers[LABELS_NAME]

    # ------------------------------------------------------------------ model and controller
    def ensure_controller(self) -> SegmentationController:
        image = self.image_layer
        if image is None:
            raise ValueError("add an image layer first")
        layout = self._layout(image)
        options = self.session_options()
        current = self.controller
        if (current is None or current.layout != layout or current.model is not self.model()
                or current.session_options != options):
            labels = self._labels_layer(image, layout)
            self.controller = SegmentationController(self.model(), image.data, layout, labels.data, options)
        return self.controller

    def prompts(self) -> List[FramePrompt]:
        image, layout = self.image_layer, self.ensure_controller().layout
        to_image = dict(to_scale=image.scale, to_translate=image.translate)
        points = self.points_layer
        coords = world_to_data(points.data, points.scale, points.translate, **to_image) if len(points.data) else points.data
        features = points.features
        rectangles = [
            world_to_data(shape, self.boxes_layer.scale, self.boxes_layer.translate, **to_image)
            for shape in self.boxes_layer.data
        ]
        return collect_prompts(
            coords, features["positive"].to_numpy(bool), features["obj_id"].to_numpy(int),
            rectangles, self.boxes_layer.features["obj_id"].to_numpy(int) if len(rectangles) else [], layout,
        )

    # ------------------------------------------------------------------ handlers
    def _on_settings_changed(self, _: str = "") -> None:
        save_settings(
            model=self.model_combo.currentText(), checkpoint=self.checkpoint_combo.currentText(),
            device=self.device_combo.currentText(), checkpoint_file=self.checkpoint_file,
        )

    def _on_new_object(self) -> None:
        used = set(self.points_layer.features["obj_id"].tolist()) | set(self.boxes_layer.features["obj_id"].tolist())
        if self.controller is not None:
            used |= set(self.controller.obj_ids)
        self.object_spin.setValue(max(used | {0}) + 1)

    def _on_object_changed(self, obj_id: int) -> None:
        self.points_layer.feature_defaults = {**self._point_defaults(), "obj_id": obj_id}
        self.boxes_layer.feature_defaults = {"obj_id": obj_id}
        style_points(self.points_layer)
        style_boxes(self.boxes_layer)

    def _point_defaults(self) -> dict:
        defaults = self.points_layer.feature_defaults
        return {"positive": bool(defaults["positive"].iloc[0]), "obj_id": int(defaults["obj_id"].iloc[0])}

    def _on_toggle_positive(self) -> None:
        defaults = self._point_defaults()
        defaults["positive"] = not defaults["positive"]
        self.points_layer.feature_defaults = defaults
        style_points(self.points_layer)
        self.positive_button.setText(f"Clicks: {'positive' if defaults['positive'] else 'negative'} (T toggles)")

    def _on_points_changed(self, event: Any = None) -> None:
        action = getattr(event, "action", "added")
        if action in ("added", "removed"):
            style_points(self.points_layer)
            if self.worker is None:
                self._on_segment_clicked()

    def _on_segment_clicked(self) -> None:
        self.when_model_ready(self._segment)

    def _on_seed_clicked(self) -> None:
        self.when_model_ready(self._seed)

    def _seed(self) -> None:
        """Each label of the chosen Labels layer on the current frame becomes a mask prompt."""
        try:
            name = self.seed_combo.currentText()
            if name not in self.viewer.layers:
                raise ValueError("choose a Labels layer to seed from")
            controller = self.ensure_controller()
            layout = controller.layout
            frame = int(self.viewer.dims.current_step[layout.frame_axis]) if layout.frame_axis is not None else 0
            seed = np.asarray(self.viewer.layers[name].data)
            if seed.shape == controller.labels.shape:
                plane = seed[layout.frame_index_in_labels(frame)]
            elif seed.shape == controller.session.frame_shape:
                plane = seed
            else:
                raise ValueError(f"'{name}' has shape {seed.shape}; seeding needs the masklets' shape "
                                 f"{controller.labels.shape} or one frame {controller.session.frame_shape}")
            masks = masks_from_labels(plane, frame)
            if not masks:
                raise ValueError(f"'{name}' has no labels on frame {frame}")
            steps = controller.seed_masks(masks, self.prompts())
        except Exception as error:
            show_error(f"SAM 2: {error}")
            return
        self.object_spin.setValue(max(m.obj_id for m in masks) + 1)
        self._run(steps, f"Seeding {len(masks)} object(s) from '{name}'")

    def _segment(self) -> None:
        try:
            controller = self.ensure_controller()
            prompts = self.prompts()
        except Exception as error:  # bad layout, model download failure, ...
            show_error(f"SAM 2: {error}")
            return
        # A busy bar until the first mask arrives: the first click on a frame computes its image features.
        self.progress.setRange(0, 0)
        self._run(controller.apply_prompts(prompts), "Segmenting (computing this frame's features once)")

    def _on_propagate(self, direction: str) -> None:
        self.when_model_ready(lambda: self._propagate(direction))

    def _propagate(self, direction: str) -> None:
        try:
            controller = self.ensure_controller()
            prompts = self.prompts()
            start = int(self.viewer.dims.current_step[controller.layout.frame_axis or 0])
        except Exception as error:
            show_error(f"SAM 2: {error}")
            return
        self.progress.setRange(0, controller.session.num_frames * (2 if direction == "both" else 1))
        steps = chain(controller.apply_prompts(prompts), controller.propagate(start, direction))
        self._run(steps, f"Propagating {direction}")

    def _run(self, steps: Any, what: str) -> None:
        """Run a controller generator in a worker thread; results arrive on the main thread."""
        self.status.setText(f"{what}…")
        self.progress.setValue(0)

        @thread_worker(ignore_errors=True)  # errors go to our errored handler, not the event loop
        def work():
            yield from steps

        self._run_outcome = "running"
        worker = work()
        worker.yielded.connect(self._on_step)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._set_busy(True)
        worker.start()

    def _on_step(self, step: tuple) -> None:
        kind, frame, obj_ids, _ = step
        if self.progress.maximum() == 0:  # the busy bar of a click: the mask is here
            self.progress.setRange(0, 1)
        if kind == "frame":
            self.progress.setValue(self.progress.value() + 1)
            self.status.setText(f"frame {frame}: objects {obj_ids}")
        self.viewer.layers[LABELS_NAME].refresh()

    def _on_error(self, error: Exception) -> None:
        self._run_outcome = "failed"
        show_error(f"SAM 2 failed: {error}. Frames already written are complete; Undo reverts the run.")

    def _on_finished(self) -> None:
        self.worker = None
        self._set_busy(False)
        if LABELS_NAME in self.viewer.layers:
            self.viewer.layers[LABELS_NAME].refresh()
        if self._run_outcome == "failed":
            self.status.setText("Failed (see the notification). Frames written are complete; Undo reverts the run.")
        elif self._run_outcome == "cancelled":
            self.status.setText("Cancelled. The frames finished so far are kept; Undo reverts the run.")
        else:
            self.progress.setValue(self.progress.maximum())
            self.status.setText("Done. Correct on any frame, then propagate again.")

    def _on_cancel(self) -> None:
        if self.worker is not None:
            self._run_outcome = "cancelled"
            self.worker.quit()
            show_info("SAM 2: cancelled; the frames finished so far are kept (Undo reverts the run).")

    def _on_undo(self) -> None:
        if self.controller is None:
            return
        frames = self.controller.undo()
        self.viewer.layers[LABELS_NAME].refresh()
        self.status.setText(f"Undid the last run ({len(frames)} frame(s) restored).")

    def _on_export(self, what: str) -> None:
        from qtpy.QtWidgets import QFileDialog

        suffix = "TIFF (*.tif)" if what == "labels" else "CSV (*.csv)"
        path, _ = QFileDialog.getSaveFileName(self, f"Export {what}", "", suffix)
        if path:
            self.export(what, path)

    def export(self, what: str, path: str) -> None:
        """Write the labels ("labels", TIFF) or the measurement table ("table", CSV) to ``path``."""
        from pathlib import Path

        from .export import save_labels_tiff, save_table_csv

        if self.controller is None:
            show_error("SAM 2: nothing segmented yet")
            return
        if what == "labels":
            save_labels_tiff(self.controller.labels, Path(path))
        else:
            save_table_csv(self.controller.measurements(), Path(path))
        self.status.setText(f"Wrote {path}")

    def add_tracks_layer(self) -> Any:
        """A napari Tracks layer following each object's centroid through the frames."""
        from .export import tracks_data

        if self.controller is None:
            show_error("SAM 2: nothing segmented yet")
            return None
        data = tracks_data(self.controller.measurements())
        if not len(data):
            show_info("SAM 2: the labels hold no objects yet, so there is nothing to track")
            return None
        image = self.image_layer
        scale = (1.0, *image.scale[-2:]) if image is not None else None
        return self.viewer.add_tracks(data, name="SAM2 tracks", scale=scale)

    def _set_busy(self, busy: bool) -> None:
        for button in (self.segment_button, self.forward_button, self.backward_button, self.both_button,
                       self.undo_button, self.new_object_button, self.seed_button):
            button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
