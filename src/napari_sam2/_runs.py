"""The segmentation widget's runs: segment, seed, propagate in a napari worker; cancel, undo, export.

A mixin of :class:`~._widget.SegmentationWidget` (split out to keep each file to one idea). It uses the
widget's buttons, ``progress``, ``status``, ``picker``, ``worker`` and the current :class:`ImageState`.
Every run belongs to one image; its results land in that image's masklets layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, List, Optional

import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info

from ._image_state import ImageState, PromptContent, capture, restore
from .controller import PropagationPass
from .prompts import masks_from_labels

SUFFIXES = {"labels": (".tif", (".tif", ".tiff")), "table": (".csv", (".csv",))}


def describe_plan(passes: List[PropagationPass], start_frame: int) -> str:
    """Plain words for objects that start somewhere other than the viewed frame."""
    notes = [f"object(s) {', '.join(map(str, p.obj_ids))} had never been tracked, so they start from their "
             f"clicked frame {p.start}" for p in passes if p.obj_ids is not None and p.start != start_frame]
    return ("; ".join(dict.fromkeys(notes)) + ".") if notes else ""


def with_suffix(path: str, what: str) -> str:
    """``path`` with the export's suffix added when the name typed has none of the accepted ones."""
    default, accepted = SUFFIXES[what]
    return path if Path(path).suffix.lower() in accepted else path + default


class RunMixin:
    """Segment, seed and propagate runs of the segmentation widget, with cancel, undo and exports."""

    _run_state: Optional[ImageState] = None
    _run_outcome: str = ""
    _run_note: str = ""

    # ------------------------------------------------------------------ starting runs
    def _on_segment_clicked(self) -> None:
        if self._require_state() is not None:
            self.picker.when_ready(self._segment)

    def _on_seed_clicked(self) -> None:
        if self._require_state() is not None:
            self.picker.when_ready(self._seed)

    def _on_propagate(self, direction: str) -> None:
        if self._require_state() is not None:
            self.picker.when_ready(lambda: self._propagate(direction))

    def _segment(self) -> None:
        state = self._state
        try:
            prompts = self.prompts()
            if not prompts and (state.controller is None or not state.controller.has_prompts()):
                self.status.setText("Click on an object (the clicks layer is active), or draw a box.")
                return
            controller = self.ensure_controller()
        except Exception as error:  # bad layout, model failure, ...
            show_error(f"SAM 2: {error}")
            return
        self.progress.setRange(0, 0)  # busy until the first mask: a frame's features are computed once
        self._run(state, controller.apply_prompts(prompts, tag=self._before(state)),
                  "Segmenting (computing this frame's features once)")

    def _seed(self) -> None:
        """Each label of the chosen Labels layer on the current frame becomes a mask prompt."""
        state = self._state
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
            steps = controller.seed_masks(masks, self.prompts(), tag=self._before(state))
        except Exception as error:
            show_error(f"SAM 2: {error}")
            return
        self.object_spin.setValue(max(m.obj_id for m in masks) + 1)
        self._run(state, steps, f"Seeding {len(masks)} object(s) from '{name}'")

    def _propagate(self, direction: str) -> None:
        state = self._state
        try:
            prompts = self.prompts()
            if not prompts and (state.controller is None or not state.controller.obj_ids):
                self.status.setText("Nothing to propagate yet: click on an object first (the clicks layer is "
                                    "active), then press Propagate.")
                return
            controller = self.ensure_controller()
        except Exception as error:
            show_error(f"SAM 2: {error}")
            return
        if controller.layout.frame_axis is None:
            self.status.setText("This image is a single 2D frame: there is nothing to propagate through.")
            return
        start = int(self.viewer.dims.current_step[controller.layout.frame_axis])
        max_frames = self.frames_spin.value() or None
        before, now = self._before(state), capture(state)

        def steps() -> Iterator[tuple]:
            yield from controller.apply_prompts(prompts, tag=before)  # Undo of new clicks puts the layers back
            passes = controller.plan(start, direction, max_frames)
            yield "plan", sum(p.num_frames for p in passes), describe_plan(passes, start), None
            yield from controller.propagate(start, direction, max_frames, tag=now)  # the clicks stay

        self.progress.setRange(0, 0)
        self._run(state, steps(), f"Propagating {direction} from frame {start}")

    def _before(self, state: ImageState) -> PromptContent:
        """The prompt layers as they were after the last run (what Undo of the next run puts back)."""
        if state.last_prompts is None:
            state.last_prompts = capture(state)
        return state.last_prompts

    # ------------------------------------------------------------------ the worker
    def _run(self, state: ImageState, steps: Any, what: str) -> None:
        """Run a controller generator in a worker thread; results arrive on the main thread."""
        self.status.setText(f"{what}…")
        self.progress.setValue(0)

        @thread_worker(ignore_errors=True)  # errors go to our errored handler, not the event loop
        def work():
            yield from steps

        self._run_outcome, self._run_note, self._run_state = "running", "", state
        worker = work()
        worker.yielded.connect(self._on_step)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._set_busy(True)
        worker.start()

    def _on_step(self, step: tuple) -> None:
        try:
            kind, value, detail, _ = step
            if kind == "plan":
                self.progress.setRange(0, max(int(value), 1))
                self.progress.setValue(0)
                self._run_note = str(detail)
                return
            if self.progress.maximum() == 0:  # the busy bar of a click: the mask is here
                self.progress.setRange(0, 1)
            if kind == "frame":
                self.progress.setValue(min(self.progress.value() + 1, self.progress.maximum()))
                self.status.setText(f"frame {value}: objects {detail}")
            self._refresh_labels(self._run_state)
        except Exception as error:  # never let an exception escape a Qt slot (it aborts the process)
            self._on_error(error)

    def _refresh_labels(self, state: Optional[ImageState]) -> None:
        if state is not None and state.labels is not None and state.labels in self.viewer.layers:
            state.labels.refresh()

    def _on_error(self, error: Exception) -> None:
        self._run_outcome = "failed"
        show_error(f"SAM 2 failed: {error}")
        self.status.setText(f"Failed: {error}")

    def _stop_run_of(self, state: ImageState, why: str) -> None:
        """Stop the run working on ``state`` (its layers are going away)."""
        if self.worker is not None and self._run_state is state:
            self._run_outcome = f"stopped: {why}"
            self.worker.quit()

    def _on_finished(self) -> None:
        state, outcome = self._run_state, self._run_outcome
        self.worker, self._run_state = None, None
        self._set_busy(False)
        self._refresh_labels(state)
        if outcome == "failed":
            self.status.setText(f"{self.status.text()} Frames written are complete; Undo reverts the run.")
        elif outcome == "cancelled":
            self.status.setText("Cancelled. The frames finished so far are kept; Undo reverts the run.")
        elif outcome.startswith("stopped"):
            self.status.setText(f"Stopped: {outcome[9:]}. The frames finished so far are kept.")
        else:
            self.progress.setRange(0, 1)
            self.progress.setValue(1)
            note = f" Note: {self._run_note}" if self._run_note else ""
            self.status.setText(f"Done. Correct on any frame, then propagate again.{note}")
        if state is not None and state.points is not None and state.boxes is not None:
            state.last_prompts = capture(state)
        self._refresh_objects()
        self.activate_clicks()
        if self._edited_while_busy:
            self._edited_while_busy = False
            self._on_segment_clicked()

    def _on_cancel(self) -> None:
        if self.worker is not None:
            self._run_outcome = "cancelled"
            self.worker.quit()
            show_info("SAM 2: cancelled; the frames finished so far are kept (Undo reverts the run).")

    def _set_busy(self, busy: bool) -> None:
        busy = busy or self.busy()
        for button in (self.segment_button, self.forward_button, self.backward_button, self.both_button,
                       self.undo_button, self.new_object_button, self.seed_button):
            button.setEnabled(not busy)
        self.cancel_button.setEnabled(self.worker is not None)

    # ------------------------------------------------------------------ undo
    def _on_undo(self) -> None:
        state = self._state
        undone = None if state is None or state.controller is None or self.busy() else state.controller.undo()
        if undone is None:
            self.status.setText("Nothing to undo.")
            return
        if isinstance(undone.tag, PromptContent) and state.points is not None and state.boxes is not None:
            self._quiet += 1
            try:
                restore(state, undone.tag)
            finally:
                self._quiet -= 1
            state.last_prompts = undone.tag
        self._refresh_labels(state)
        self._refresh_objects()
        self.activate_clicks()
        self.status.setText(f"Undid the last step: {len(undone.frames)} frame(s), the prompts and the session "
                            "are as they were before it.")

    # ------------------------------------------------------------------ exports
    def _segmented(self) -> bool:
        controller = self.controller
        if controller is None or not np.asarray(controller.labels).any():
            show_info("SAM 2: nothing is segmented yet: click on an object first")
            self.status.setText("Nothing is segmented yet: click on an object first.")
            return False
        return True

    def _on_export(self, what: str) -> None:
        from qtpy.QtWidgets import QFileDialog

        if not self._segmented():
            return
        suffix = "TIFF (*.tif)" if what == "labels" else "CSV (*.csv)"
        path, _ = QFileDialog.getSaveFileName(self, f"Export {what}", "", suffix)
        if path:
            self.export(what, path)

    def export(self, what: str, path: str) -> Optional[str]:
        """Write the labels ("labels", TIFF) or the measurement table ("table", CSV); returns the path written.

        A name typed without the suffix gets it (".tif" or ".csv").
        """
        from .export import save_labels_tiff, save_table_csv

        if what not in SUFFIXES:
            raise ValueError(f"what must be 'labels' or 'table', not {what!r}")
        if not self._segmented():
            return None
        path = with_suffix(str(path), what)
        if what == "labels":
            save_labels_tiff(self.controller.labels, Path(path))
        else:
            save_table_csv(self.controller.measurements(self.calibration()), Path(path))
        self.status.setText(f"Wrote {path}")
        return path

    def calibration(self) -> Any:
        """Pixel size, frame interval and their units from the image layer's scale and units."""
        from .export import Calibration

        image, layout = self.image_layer, self.controller.layout
        rows, cols = layout.spatial_axes
        units = getattr(image, "units", None)

        def unit(axis: Optional[int], default: str) -> str:
            name = "pixel" if units is None or axis is None else str(units[axis])
            return default if name == "pixel" else name  # napari's unit of an uncalibrated axis

        frame = layout.frame_axis
        return Calibration((float(image.scale[rows]), float(image.scale[cols])), unit(cols, "pixel"),
                           float(image.scale[frame]) if frame is not None else 1.0, unit(frame, "frame"))

    def add_tracks_layer(self) -> Any:
        """A napari Tracks layer following each object (the centroid of its largest piece) through the frames."""
        from .export import tracks_from_labels

        if not self._segmented():
            return None
        data = tracks_from_labels(self.controller.label_planes())
        image = self.image_layer
        rows, cols = self.controller.layout.spatial_axes
        scale = (1.0, image.scale[rows], image.scale[cols])
        return self.viewer.add_tracks(data, name=f"SAM2 tracks [{image.name}]", scale=scale)
