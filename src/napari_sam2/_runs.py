"""The widget's runs in napari workers: segment, seed, propagate, Add Tracks layer; cancel, undo; how a worker run
starts and ends.

A mixin of :class:`~._widget.SegmentationWidget` (split out to keep each file to one idea). It uses the
widget's buttons, ``progress``, ``status``, ``picker``, ``worker`` and the current :class:`ImageState`.
Every run belongs to one image; its results land in that image's masklets layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer

from ._image_state import (
    ImageState, PromptContent, capture, is_depth_axis, layer_name, out_of_plane_turn, place_layer, restore, slice_key,
)
from ._labels_redraw import redraw
from ._track_ids import frame_ranges
from ._tracks_layer import TRACKS_NAMES, own_tracks, tracks_metadata, tracks_placement, tracks_role, tracks_transform
from .controller import PropagationPass
from .labels_writer import EditedSince
from .layout import StackLayout
from .prompts import masks_from_labels

SUFFIXES = {"labels": (".tif", (".tif", ".tiff")), "table": (".csv", (".csv",))}
SINGLE_IMAGE_TIP = ("This image is a single 2D frame (no time or z axis under the axis choices above): there is "
                    "nothing to propagate through. Correct the mask with more clicks or a box.")
PROPAGATE_TIPS = {  # the widget's tooltips of these controls (a single 2D image adds SINGLE_IMAGE_TIP below)
    "forward_button": "Track the objects from the frame shown to the later frames (or as many as 'Frames to "
                      "propagate' says).",
    "backward_button": "Track the objects from the frame shown to the earlier frames.",
    "both_button": "Track the objects from the frame shown to the earlier and the later frames.",
    "frames_spin": "How many frames Propagate tracks from the frame shown (all: to the end of the stack).",
}
# said after a propagation: runs are not in napari's own undo history (Ctrl+Z after one changes nothing)
UNDO_HINT = " Undo here reverts the run (napari's Ctrl+Z undoes brush, fill and eraser strokes only)."
ONE_IMAGE_TIP = "Off: one image: nothing to propagate/track through."  # added to frame-only controls' tooltips
FRAME_ONLY = ("corrections_check", "forget_check", "tracks_button")  # the widget's controls that act across frames


def single_frame(layout: Any, shape: Optional[Sequence[int]]) -> bool:
    """Whether an image of ``shape`` read with ``layout`` (a :class:`StackLayout`) is one 2D image: no frame axis,
    or a frame axis of length 1 (a (1, Y, X) stack has nothing to propagate to either)."""
    axis = layout.frame_axis
    return axis is None or (shape is not None and len(shape) > axis and int(shape[axis]) == 1)


def one_frame(controller: Any) -> bool:
    """Whether ``controller`` (a :class:`SegmentationController`) works on one 2D image (:func:`single_frame`)."""
    return controller.layout.frame_axis is None or controller.num_frames == 1


def with_tip(control: Any, single: bool, on: bool = True, why: str = ONE_IMAGE_TIP) -> None:
    """Enable ``control`` where ``on`` and not ``single``; on one image (``single``) its tooltip ends with ``why``
    (its own tip kept before it, and given back whole when the control is enabled again)."""
    suffix = f"\n\n{why}"
    tip = control.toolTip()
    base = tip[:-len(suffix)] if tip.endswith(suffix) else "" if tip == why else tip
    control.setEnabled(on and not single)
    control.setToolTip((f"{base}{suffix}" if base else why) if single else base)


def describe_plan(passes: List[PropagationPass], start_frame: int) -> str:
    """Plain words for objects that start somewhere other than the viewed frame, and for each way, how many objects
    are tracked and how many are left out because nothing changed for them (``PropagationPass.unchanged``)."""
    notes = [f"object(s) {', '.join(map(str, p.obj_ids))} had never been tracked, so they start from their "
             f"clicked frame {p.start}" for p in passes if p.obj_ids and p.start != start_frame]
    for reverse, way in ((False, "forward"), (True, "backward")):
        kept = {o for p in passes if p.reverse == reverse for o in p.unchanged}
        if kept:
            moving = {o for p in passes if p.reverse == reverse for o in (p.obj_ids or ())}
            notes.append(f"{way}: {len(moving)} object{'s' * (len(moving) != 1)} tracked ({len(kept)} unchanged since "
                         "they were tracked this way keep their masks)")
    return ("; ".join(dict.fromkeys(notes)) + ".") if notes else ""


def done_hint(controller: Any) -> str:
    """What to do after a run of ``controller`` (a :class:`SegmentationController`, or None): correct and propagate
    again on a stack; on a single 2D image (no frame axis, or one frame) only correct: nothing to propagate."""
    if controller is not None and one_frame(controller):
        return "Correct the mask with more clicks (negative ones remove parts) or a box."
    return "Correct on any frame, then propagate again."


def calibration_words(calibration: Any, frames: bool) -> str:
    """``calibration``'s sizes in words: "pixel size 0.3 µm and frame interval 300 s" ("slice spacing" where the
    frames are z slices; the frame step left out where it is in frames or there are no frames)."""
    words = f"pixel size {_size_words(calibration.pixel_size[1], calibration.length_unit)}"
    if calibration.pixel_size[0] != calibration.pixel_size[1]:
        words += f" x {_size_words(calibration.pixel_size[0], calibration.length_unit)} (rows)"
    if frames and calibration.time_unit != "frame":
        step = "slice spacing" if calibration.frames_through_z else "frame interval"
        words += f" and {step} {_size_words(calibration.frame_interval, calibration.time_unit)}"
    return words


def _size_words(value: float, unit: str) -> str:
    """``value`` with ``unit``'s symbol ("0.3 µm", "300 s"); the unit's name where pint knows no symbol for it."""
    try:
        import pint

        symbol = f"{pint.Unit(unit):~P}"
    except Exception:  # not a pint unit: its name
        symbol = unit
    return f"{value:g} {symbol}"


def sentence(text: str) -> str:
    """``text`` ending with a full stop (or ?, !, …) so another sentence can follow it."""
    text = text.rstrip()
    return text if not text or text[-1] in ".!?…" else text + "."


def empty_objects(rows: List[Any]) -> List[int]:
    """The objects of the objects panel's ``rows`` (:class:`~._objects_panel.ObjectRow`) whose labels hold no pixel on
    any frame the session has a result for (every such frame is listed as lost)."""
    return [row.obj_id for row in rows if not row.present and row.lost]


def nothing_found(obj_ids: List[int]) -> str:
    """The status words for objects whose mask came out empty on every frame (:func:`empty_objects`)."""
    which = f"object {obj_ids[0]}" if len(obj_ids) == 1 else f"objects {', '.join(map(str, obj_ids))}"
    return (f"The model found nothing for {which}: the mask is empty on every frame. For a small or faint object, "
            "draw a box around it, or set 'Object windows' to a size a few times the object's.")


def nothing_tracked(direction: str, start: int, num_frames: int) -> str:
    """Why a propagation from ``start`` tracked no frame beyond it, in words."""
    if direction == "forward" and start >= num_frames - 1:
        return f"Nothing to propagate forward from frame {start} (the last frame): go back to an earlier frame, or " \
               "use ◀ Propagate."
    if direction == "backward" and start <= 0:
        return "Nothing to propagate backward from frame 0 (the first frame): use Propagate ▶."
    return f"Nothing was propagated {direction} from frame {start}: no frame beyond it to track."


def labels_letters(layout: StackLayout, frames_through_z: bool = False) -> Optional[str]:
    """The axis letters of the widget's labels of an image of ``layout`` (the image's axes less its channel axis):
    Y and X on its spatial axes, T on the frame axis (Z where the frames are a volume's slices) and, on one other axis
    (fixed at a slice), the other of T and Z: e.g. "YX", "TYX", "ZYX", "TZYX", "ZTYX". None where more than one other
    axis has no letter left (the labels are then written without letters, so without a calibration)."""
    frame, other = ("Z", "T") if frames_through_z else ("T", "Z")
    rows, cols = layout.spatial_axes
    named = {rows: "Y", cols: "X", layout.frame_axis: frame}
    letters = "".join(named.get(axis, other) for axis in range(layout.ndim) if axis != layout.channel_axis)
    return letters if len(set(letters)) == len(letters) else None


def qt_deleted(widget: Any) -> bool:
    """Whether the C++ object of the Qt ``widget`` was deleted (e.g. with the viewer's window), with whichever Qt
    binding qtpy found: sip's ``isdeleted`` (PyQt) or shiboken's ``isValid`` (PySide)."""
    try:
        from qtpy import sip
    except Exception:  # PySide: no sip
        from qtpy import shiboken

        return not shiboken.isValid(widget)
    return bool(sip.isdeleted(widget))


def with_suffix(path: str, what: str) -> str:
    """``path`` with the export's suffix added when the name typed has none of the accepted ones."""
    default, accepted = SUFFIXES[what]
    return path if Path(path).suffix.lower() in accepted else path + default


class RunMixin:
    """Segment, seed and propagate runs of the segmentation widget, with cancel, undo and exports."""

    _run_state: Optional[ImageState] = None
    _run_outcome: str = ""
    _run_note: str = ""
    _run_prompts: Optional[PromptContent] = None  # the prompt layers as the run read them
    _run_history: tuple = (None, 0, None)  # the run's controller, its history length and last step at the start
    _run_where: str = ""  # the run's slice when it is not the one shown (" on z=1 (z=2 is shown)")
    _run_frames: Optional[List[int]] = None  # the frames the run wrote, in order
    _run_propagation: Optional[tuple] = None  # (direction, start frame, frames in the stack) of a propagate run
    _run_planned: Optional[int] = None  # where the propagation's frames start in _run_frames (None before its plan)
    _calibrations_told: frozenset = frozenset()  # the files whose calibration a notification named (once each)
    _tracks_run: Optional["TracksRun"] = None  # the last Add Tracks layer run in a worker

    # ------------------------------------------------------------------ starting runs
    def _on_segment_clicked(self) -> None:
        if self._require_state() is not None:
            self._when_ready(self._segment)

    def _on_seed_clicked(self) -> None:
        if self._require_state() is not None:
            self._when_ready(self._seed)

    def _on_propagate(self, direction: str) -> None:
        if self._require_state() is not None:
            self._when_ready(lambda: self._propagate(direction))

    def _when_ready(self, action: Any) -> None:
        """Run ``action`` once the chosen model is loaded; a model choice that cannot work is reported here (a load
        that fails is reported by :meth:`_on_picker_busy`). An image turned out of its plane is refused here
        (:func:`~._image_state.out_of_plane_turn`: its frames would be read from the slider's world steps)."""
        refused = self._out_of_plane()
        if refused:
            self._report(refused)
            return
        try:
            self.picker.choice().check()
        except ValueError as error:
            self._report(error)
            return
        self.picker.when_ready(action)

    def _out_of_plane(self) -> str:
        """Why the current image cannot be segmented under its transform (:func:`~._image_state.out_of_plane_turn`,
        words starting "Not supported: "); "" when it can (or there is none)."""
        state = self._state
        return "" if state is None else out_of_plane_turn(state.image)

    def _report(self, error: Any) -> None:
        """An error before a run started (nothing was changed): a notification and the status line."""
        show_error(f"SAM 2: {error}")
        self.status.setText(f"Not done: {error}")

    def _on_picker_busy(self, busy: bool) -> None:
        """A model load started or ended; one that ended without a model says why in the status line."""
        self._set_busy(busy)
        if not busy and self.picker.loaded_model() is None and self.picker.status.text():
            self.status.setText(self.picker.status.text())

    def _segment(self, layout: Any = None, baseline: str = "") -> None:
        """Segment the prompts of the slice of ``layout`` in that slice's session (default: the slice shown, or the
        slice of the session last worked on when the slice shown has neither session nor prompts).

        baseline: the run is not undoable, the undo history starts after it, and Undo says this (a re-run after
        Relabel / Merge: :meth:`SegmentationController.start_history_after_next`, set only when the run starts)."""
        state = self._state
        try:
            layout = self._session_layout() if layout is None else layout
            prompts = self.prompts(layout)
            known = state.sessions.get(slice_key(layout))
            if not prompts and (known is None or not known.has_prompts()):
                self.status.setText("Click on an object (the clicks layer is active), or draw a box.")
                return
            controller = self.ensure_controller(layout)  # first: it drops sessions of another channel axis
            others = {key: c for key, c in state.sessions.items() if key != slice_key(layout) and c.obj_ids}
            steps = self._loaded_replay(state, controller)  # a loaded session: its prompts as they were made
        except Exception as error:  # bad layout, model failure, ...
            self._report(error)
            return
        note = ""
        if known is None and others:  # a new session beside others: say they are kept
            kept = "; ".join(f"{self.slice_name(c.layout)}: object(s) {', '.join(map(str, c.obj_ids))}"
                             for c in others.values())
            note = (f"{self.slice_name(layout)} has a session of its own; the sessions of other slices are kept "
                    f"({kept}): move the slider back there to work on them.")
        self.progress.setRange(0, 0)  # busy until the first mask: a frame's features are computed once
        single = controller.layout.frame_axis is None  # one 2D image: no frames to speak of
        if controller.is_open:
            what = f"Segmenting (computing {'the image' if single else 'this frame'}'s features once)"
        else:
            what = ("Segmenting (reading the image's contrast, then its features)" if single else
                    "Segmenting (reading a sample of the stack for its contrast, then this frame's features)")
        if baseline and self._attached:  # a closed widget runs nothing (:meth:`_run`)
            controller.start_history_after_next(baseline)
        if steps is None:
            steps = controller.apply_prompts(prompts, tag=self._before(state))
        self._run(state, steps, what)
        self._run_note = note  # said again when the run is done

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
            seed = self.viewer.layers[name].data  # only the plane seeded is read (a dask or zarr stack stays lazy)
            shape = tuple(int(n) for n in seed.shape)
            if shape == controller.labels.shape:
                plane = np.asarray(seed[layout.frame_index_in_labels(frame)])
            elif shape == controller.frame_shape:
                plane = np.asarray(seed)
            else:
                raise ValueError(f"'{name}' has shape {shape}; seeding needs the masklets' shape "
                                 f"{controller.labels.shape} or one frame {controller.frame_shape}")
            masks = masks_from_labels(plane, frame)
            if not masks:
                raise ValueError(f"'{name}' has no labels on frame {frame}")
            masks = self.track_all.free_seed_ids(state.image, masks)  # never a tracked cell's id
            steps = controller.seed_masks(masks, self.prompts(layout), tag=self._before(state))
        except Exception as error:
            self._report(error)
            return
        self.object_spin.setValue(max(m.obj_id for m in masks) + 1)
        self._run(state, steps, f"Seeding {len(masks)} object(s) from '{name}'")

    def _propagate(self, direction: str) -> None:
        """Propagate the session of the slice shown (or, when the slice shown has neither session nor prompts, the
        session last worked on, wherever the slider is: the status says which slice)."""
        state = self._state
        try:
            layout = self._session_layout()
            prompts = self.prompts(layout)
            known = state.sessions.get(slice_key(layout))
            if not prompts and (known is None or not known.obj_ids):
                self.status.setText("Nothing to propagate yet: click on an object first (the clicks layer is "
                                    "active), then press Propagate.")
                return
            controller = self.ensure_controller(layout)
        except Exception as error:
            self._report(error)
            return
        if one_frame(controller):
            self.status.setText("This image is a single 2D frame: there is nothing to propagate through.")
            return
        start = int(self.viewer.dims.current_step[controller.layout.frame_axis])
        max_frames = self.frames_spin.value() or None
        before, now = self._before(state), capture(state)
        try:  # a session remade (another option) or loaded: its prompts first, in the order they were made
            replay = self._loaded_replay(state, controller)
        except Exception as error:
            self._report(error)
            return

        def steps() -> Iterator[tuple]:
            controller.check_propagation(prompts)  # a run that would fail after removing objects changes nothing
            # Undo of new clicks puts the layers back
            yield from controller.apply_prompts(prompts, tag=before) if replay is None else replay
            passes = controller.plan(start, direction, max_frames)
            yield "plan", sum(p.num_frames for p in passes), describe_plan(passes, start), None
            yield from controller.propagate(start, direction, max_frames, tag=now)  # the clicks stay

        self.progress.setRange(0, 0)
        self._run(state, steps(), f"Propagating {direction} from frame {start}{self._elsewhere(layout)}")
        self._run_propagation = (direction, start, controller.num_frames)

    def _before(self, state: ImageState) -> PromptContent:
        """The prompt layers as they were after the last run (what Undo of the next run puts back)."""
        if state.last_prompts is None:
            state.last_prompts = capture(state)
        return state.last_prompts

    # ------------------------------------------------------------------ the worker
    def _run(self, state: ImageState, steps: Any, what: str) -> None:
        """Run a controller generator in a worker thread; results arrive on the main thread. A closed widget
        (out of the window: a model load it waited for ended after) runs nothing."""
        if not self._attached:
            return
        self.status.setText(f"{what}…")
        self.progress.setValue(0)

        from ._session_actions import let_go_when_finished, reported

        work = thread_worker(reported(steps), ignore_errors=True)  # errors (a RuntimeError too) to _on_error
        self._run_outcome, self._run_note, self._run_state = "running", "", state
        self._run_steps = steps  # closed when the worker ends (:meth:`_on_worker_finished`)
        self._run_frames, self._run_propagation, self._run_planned = [], None, None
        self._run_prompts = capture(state) if state.points is not None and state.boxes is not None else None
        controller = state.controller  # the run's (ensure_controller made it the image's controller)
        history = [] if controller is None else controller.history
        self._run_history = (controller, len(history), history[-1] if history else None)
        self._run_where = "" if controller is None else self._elsewhere(controller.layout)
        worker = work()
        worker.yielded.connect(self._on_step)
        worker.errored.connect(self._on_error)
        # a plain function, not a bound method: Qt drops a widget's slots when the viewer's window deletes it, and the
        # widget (kept by a script) would stay busy forever after the viewer was closed during a run
        worker.finished.connect(lambda: self._on_worker_finished(worker))
        let_go_when_finished(worker)  # then its slots go: napari keeps the worker, they kept this widget and its viewer
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
                self._run_planned = len(self._run_frames or ())  # the frames after this are the propagation's
                return
            if self.progress.maximum() == 0:  # the busy bar of a click: the mask is here
                self.progress.setRange(0, 1)
            run = self._run_history[0]  # its masklets given other data meanwhile: the run stops (its end says so)
            if run is not None:
                self.stop_if_masklets_replaced(self._run_state, run.layout, run.labels)
            if kind == "frame":
                if self._run_frames is not None:
                    self._run_frames.append(int(value))
                self.progress.setValue(min(self.progress.value() + 1, self.progress.maximum()))
                self.status.setText(f"frame {value}: objects {detail}")
                self._refresh_labels(self._run_state, self._run_history[0], int(value))
            elif kind != "done":  # "done" ends a pass: the end of the run redraws (:meth:`_on_finished`)
                self._refresh_labels(self._run_state)
        except Exception as error:  # never let an exception escape a Qt slot (it aborts the process)
            self._on_error(error)

    def _refresh_labels(self, state: Optional[ImageState], controller: Any = None,
                        frame: Optional[int] = None) -> None:
        """Redraw ``state``'s masklets layer; with ``controller`` and ``frame``: only when napari shows that frame of
        the controller's slice (:meth:`_shows`), as a run writes frame after frame (a redraw of the whole layer per
        frame froze napari for 0.2-0.3 s a frame on 832 x 992 frames; the end of the run redraws once). Only the box of
        the plane shown that the runs' writes changed is recast and uploaded, nothing when none was written
        (:func:`~._labels_redraw.redraw`: a full redraw took 0.2-1 s per click on a 3000 x 4000 image)."""
        if state is None or state.labels is None or state.labels not in self.viewer.layers:
            return
        if frame is None or controller is None or self._shows(state.labels,
                                                              controller.layout.frame_index_in_labels(frame)):
            redraw(state.labels, None if state.controller is None else state.controller.labels)

    def _shows(self, layer: Any, index: Tuple[Any, ...]) -> bool:
        """Whether napari draws the plane ``index`` of the Labels ``layer`` now (``index``: ints on the axes a plane
        fixes, e.g. :meth:`StackLayout.frame_index_in_labels`): each fixed axis is displayed on the canvas (3-D display,
        or the frame axis put on screen) or its value is where the slider is; always with a projection (a thick slice
        of several frames)."""
        if str(getattr(layer, "projection_mode", "none")) != "none":
            return True
        offset = self.viewer.dims.ndim - layer.ndim  # the viewer lines layers up with its last axes
        displayed = set(self.viewer.dims.displayed)
        point = layer.world_to_data(self.viewer.dims.point)  # the slider's position in the layer's pixels
        return all(isinstance(value, slice) or axis + offset in displayed or int(np.round(point[axis])) == int(value)
                   for axis, value in enumerate(index))

    def _on_error(self, error: Exception) -> None:
        self._run_outcome = "failed"
        show_error(f"SAM 2 failed: {error}")
        self.status.setText(f"Failed: {error}")

    def _stop_run_of(self, state: ImageState, why: str) -> None:
        """Stop the run working on ``state`` (its layers are going away)."""
        if self.worker is not None and self._run_state is state:
            self._run_outcome = f"stopped: {why}"
            self.worker.quit()
        if getattr(self, "track_all", None) is not None:  # a Track all run on that image stops too
            self.track_all.stop_run_on(state.image, why)

    def _on_worker_finished(self, worker: Any) -> None:
        """The run's worker ended: :meth:`_on_finished`; once the viewer's window (and the widget in it) is gone,
        only let go of the worker, so the widget is no longer busy."""
        if self.worker is not worker:
            return
        steps, self._run_steps = self._run_steps, None
        if hasattr(steps, "close"):  # a cancelled run's steps stop here, on this thread: their clean-up (the undo
            steps.close()  # step's record, a replay's withheld masks) runs now, not when the generator is collected
        try:
            self._on_finished()
        except RuntimeError:
            if not qt_deleted(self):  # a fault of ours, not a closed window: not hidden
                raise
            # the widget's Qt parts were deleted with the window: nothing left to show
            self.worker, self._run_state, self._run_history = None, None, (None, 0, None)

    def _on_finished(self) -> None:
        state, outcome = self._run_state, self._run_outcome
        controller, length, last = self._run_history
        self.worker, self._run_state, self._run_history = None, None, (None, 0, None)
        undoable = controller is not None and bool(controller.history) and (
            len(controller.history) != length or controller.history[-1] is not last)  # the run left an undoable step
        self._set_busy(False)
        frames = sorted(set(self._run_frames or ()))
        back = "" if controller is None else self.masklets_back(state, controller.layout, controller.labels, frames)
        self._refresh_labels(state)
        self._settle_session(state, controller)
        notes = " ".join(n for n in (self._run_note, controller.pop_notes() if controller else "", back) if n)
        note = f" Note: {notes}" if notes else ""  # said whatever the outcome
        done = False  # the run ended whole with something written ("Done")
        if outcome == "failed":
            self.status.setText(f"{sentence(self.status.text())} " + (
                f"{self._kept(frames)}{self._undo_words(undoable, controller)}" if frames else
                "Undo reverts the run." if undoable else "Nothing was changed.") + note)
        elif outcome == "cancelled":
            self.status.setText(f"Cancelled. {self._kept(frames)}{self._undo_words(undoable, controller)}"
                                f"{self._go_on()}{note}" if frames or undoable else
                                f"Cancelled before anything was changed.{note}")
        elif outcome.startswith("stopped"):  # (data replaced: the run's frames are in the layer; Undo can revert them)
            undo = self._undo_words(undoable, controller) if back and frames else "."
            self.status.setText(f"Stopped: {outcome[9:]}. {self._kept(frames)}{undo}{note}")
        elif self._run_propagation is not None and self._run_planned is not None and set(
                (self._run_frames or [])[self._run_planned:]) <= {self._run_propagation[1]}:  # none beyond the start
            self.progress.setRange(0, 1)
            self.progress.setValue(1)
            self.status.setText(f"{nothing_tracked(*self._run_propagation)}{note}")
        elif not undoable and not frames and self._run_propagation is None:
            self.progress.setRange(0, 1)
            self.progress.setValue(1)
            single = controller is not None and one_frame(controller)
            self.status.setText("Nothing new to segment: the clicks and boxes are segmented already. Click an object "
                                f"here{'' if single else ', or propagate'}.{note}")
        else:
            self.progress.setRange(0, 1)
            self.progress.setValue(1)
            undo = UNDO_HINT if self._run_propagation is not None else ""  # napari's Ctrl+Z leaves runs alone
            self.status.setText(f"Done{self._run_where}. {done_hint(controller)}{undo}{note}")
            done = True
        if state is not None and self._run_prompts is not None:
            state.last_prompts = self._run_prompts  # what the run read: prompts edited during it are not segmented yet
        self._run_prompts = None
        self._on_slice_shown()
        self._refresh_objects()
        if done and frames and state is self._state and (empty := empty_objects(self.objects.rows)):
            self.status.setText(f"{sentence(self.status.text())} {nothing_found(empty)}")
        if state is not None and state is self._state:
            self._say_turn(state)  # a turn out of the plane made during the run is not hidden by its last line
        self.activate_clicks()
        self._after_run()

    def _after_run(self) -> None:
        """What every run of the widget (segmentation, edit, export, Add Tracks layer) and another tool's run do as they
        end: segment the prompts edited meanwhile (:meth:`_run_deferred`), then re-run the prompts with a model chosen
        meanwhile (it waited for the run; :meth:`_rerun_with_new_model` waits again while anything is busy)."""
        self._run_deferred(announce=True)
        if self._model_rerun_due:
            QTimer.singleShot(0, self._rerun_with_new_model)

    def _start_worker_run(self, run: "WorkerRun", steps: Iterator[tuple], on_step: Callable[[tuple], None],
                          on_finished: Callable[[Any], None], words: str, buttons: Sequence[Any] = ()) -> Any:
        """Start ``run`` (an export, Add Tracks layer, an edit) in a worker of the generator ``steps``
        (:func:`~._session_actions.steps_worker`: each step to ``on_step``, an error to ``run.fail``, the end to
        ``on_finished(worker)``, which ends with :meth:`_end_worker_run`). The widget is busy meanwhile (runs wait,
        clicks are segmented after it; ``buttons`` off too), the progress bar busy and the status saying ``words``.
        Returns the worker."""
        from ._session_actions import steps_worker

        worker = run.worker = steps_worker(steps, on_step, run.fail, on_finished)
        self.worker = worker
        self._set_busy(True)
        for button in buttons:
            button.setEnabled(False)
        self.progress.setRange(0, 0)
        self.status.setText(words)
        worker.start()
        return worker

    def _end_worker_run(self, worker: Any, ending: Callable[[], None], buttons: Sequence[Any] = ()) -> None:
        """The end of a run started by :meth:`_start_worker_run`, on the GUI thread: the worker let go, the widget no
        longer busy and ``buttons`` on again, ``ending()`` (the run's own progress bar and status line), then what
        every run does as it ends (:meth:`_after_run`). Once the widget's window is gone (its Qt parts deleted with the
        viewer's), only the worker is let go."""
        if self.worker is worker:
            self.worker = None
        try:
            self._set_busy(False)
            for button in buttons:
                button.setEnabled(True)
            ending()
            self._after_run()
        except RuntimeError:
            if not qt_deleted(self):  # a fault of ours, not a closed window: not hidden
                raise

    def busy_words(self) -> str:
        """"Busy: wait for …" for a refused action: the run in progress (or cancel it), the edit (no Cancel), or the
        read of a file's axes or calibration (an OME-TIFF of many pages: nothing to cancel, it ends by itself)."""
        if self._edit_run is not None:
            return "Busy: wait for the edit in progress (it cannot be cancelled)"
        if self.worker is None and self.picker.worker is None:
            names = [self.states[key].image.name for key in self._axes_reads if key in self.states]
            if self._axes_reads:
                of = f" of '{names[0]}'" if len(names) == 1 else ""
                return f"Busy: wait for reading the file's axes{of} (its OME-TIFF; a few seconds)"
            panel = getattr(self, "track_all", None)
            reading = None if panel is None else panel.calibration_reading()
            if reading:
                return f"Busy: wait for reading the file's calibration ({reading}; a few seconds)"
        return "Busy: wait for the run in progress (or cancel it)"

    def _kept(self, frames: List[int]) -> str:
        """"Kept frames 0-3 (whole)" for the frames a stopped run wrote."""
        return f"Kept frames {frame_ranges(frames)} (whole)" if frames else "No frame was written"

    @staticmethod
    def _undo_words(undoable: bool, controller: Any) -> str:
        """"; Undo reverts the run." when the run left an undoable step; otherwise why Undo cannot (a re-run after
        Load session, Relabel or Merge starts the history: ``controller.history_note``)."""
        if undoable:
            return "; Undo reverts the run."
        why = "" if controller is None else controller.history_note
        return f" (Undo cannot revert it: {why})." if why else "."

    def _go_on(self) -> str:
        """Where to resume a cancelled propagation: its last frame written."""
        if self._run_propagation is None or not self._run_frames:
            return ""
        return f" Propagate again from frame {self._run_frames[-1]} to go on."

    def _settle_session(self, state: Optional[ImageState], controller: Any) -> None:
        """After a run: a controller whose session could not be opened (the frames' fault, said by the run's error)
        leaves its slice, and the session it replaced there comes back (nothing was changed)."""
        if state is None or controller is None:
            return
        key = slice_key(controller.layout)
        if controller.is_open:
            state.replaced.pop(key, None)
            return
        if state.sessions.get(key) is not controller:
            return
        previous = state.replaced.pop(key, None)
        if previous is None:
            del state.sessions[key]
        else:
            state.sessions[key] = previous
        if state.controller is controller:
            state.controller = previous

    def _defer_edit(self) -> None:
        """A prompt was edited during a run: remember the image and slice it was made on, to segment it there after
        the run (:meth:`_run_deferred`)."""
        state = self._state
        if state is None:
            return
        step = tuple(int(i) for i in self.viewer.dims.current_step)
        try:
            key = slice_key(self._layout(state.image))
        except ValueError:  # an impossible axis choice: the segmentation after the run says so
            key = None
        self._deferred = [e for e in self._deferred if not (e[0] is state and e[2] == key)] + [(state, step, key)]

    def after_other_run(self) -> None:
        """Another tool's run in this viewer ended ('Track all cells', its exports): the run buttons come back as the
        widget's state says, and the prompts edited meanwhile are segmented (they waited for it)."""
        self.refresh_run_buttons()
        self._after_run()

    def _run_deferred(self, announce: bool = False) -> None:
        """Segment the prompts edited during a run where they were made: the current image's now (one slice per run,
        the next after it), another image's when that image is picked again (announce: say so in the status)."""
        alive = list(self.states.values())
        self._deferred = [e for e in self._deferred if any(e[0] is s for s in alive)]
        if self.busy() or not self._deferred:
            return
        state = self._state
        mine = [e for e in self._deferred if e[0] is state]
        if not mine and announce:
            names = ", ".join(dict.fromkeys(f"'{e[0].image.name}'" for e in self._deferred))
            self.status.setText(f"{self.status.text()} The prompts edited on {names} during the run are segmented "
                                "when you pick that image again.")
        if not mine:
            return
        self._deferred.remove(mine[0])
        try:
            layout = self.axes.layout(state.image, mine[0][1])
        except ValueError as error:
            self._report(error)
            return
        self._when_ready(lambda: self._segment(layout) if self._state is state else None)

    def _on_cancel(self) -> None:
        """Stop the run in progress, once: Cancel goes off until the run ends (the run stops after its current step;
        a second press said the same again)."""
        if self.worker is not None and self.worker is self.track_all.worker:
            self.track_all.cancel()  # a "Track all cells" run: its own Undo button reverts it
            return
        if self.worker is None or _stopping(self.worker):
            return
        self.cancel_button.setEnabled(False)
        if self._tracks_run is not None and self._tracks_run.owns(self.worker):
            self._tracks_run.cancelled = True  # no layer changes, even if the last frame is measured already
            self.worker.quit()
            show_info("SAM 2: Add Tracks layer cancelled; no layer was changed.")
            return
        if self.worker is not None:
            exporting = self.exporting()
            self._run_outcome = "cancelled"
            self.worker.quit()
            show_info("SAM 2: export cancelled; nothing is written (an earlier file is kept)." if exporting else
                      "SAM 2: cancelled; the frames finished so far are kept (Undo reverts the run).")

    def _set_busy(self, busy: bool) -> None:
        busy = busy or self.busy()
        for button in (self.segment_button, self.undo_button, self.seed_button,  # New object works during a run
                       self.objects.delete_button, self.objects.relabel_button, self.objects.merge_button):
            button.setEnabled(not busy)
        single = self.single_image()
        for name, tip in PROPAGATE_TIPS.items():
            widget = getattr(self, name)
            widget.setEnabled(not busy and not single)  # a single 2D image has nothing to propagate through
            widget.setToolTip(f"{tip}\n\n{SINGLE_IMAGE_TIP}" if single else tip)  # the reason added, never instead
        for control in (*(getattr(self, name) for name in FRAME_ONLY), self.objects.check_button):
            with_tip(control, single)  # frame-only options and tools: off on one image, saying why
        self.cancel_button.setEnabled(self.worker is not None and self._edit_run is None  # an edit is whole or not done
                                      and not _stopping(self.worker))  # pressed once is enough
        track_all = getattr(self, "track_all", None)
        if track_all is not None:  # its runs wait for the widget's (not for a model load: Track all waits for it)
            track_all.follow_widget_run(self.worker is not None)

    def refresh_run_buttons(self) -> None:
        """Enable the run buttons as the widget's state says: none during a run (the widget's, a model load or
        "Track all cells"), and never the propagate buttons on a single 2D image (they say why in a tooltip)."""
        self._set_busy(self.busy())

    def single_image(self) -> bool:
        """The current image is one 2D frame under its axis choices (no axis to propagate, or one of length 1:
        :func:`single_frame`); False without an image or with an axis choice that cannot work (a run says why)."""
        state = self._state
        if state is None:
            return False
        try:
            return single_frame(self._layout(state.image), getattr(state.image.data, "shape", None))
        except ValueError:
            return False

    # ------------------------------------------------------------------ undo
    def _on_undo(self) -> None:
        """Undo the last step of the session acted on: its checks and labels (every frame the step wrote checksummed,
        then its saved planes written back) in a worker thread, the widget busy meanwhile (:meth:`run_edit`); the prompt
        layers, the table and the status here once it is done. "Nothing to undo" is said at once."""
        state = self._state
        controller = None if state is None else state.controller
        where = "" if controller is None else self._elsewhere(controller.layout)
        if controller is None or self.busy() or not controller.history:
            note = "" if controller is None else controller.history_note
            old = "" if state is None or note else self.old_data_layers(state.image)  # those still in the viewer
            if old:  # a crop set the steps' masks aside with the old data (no session of the new data has a step)
                note = (f"the steps before the image got data of another shape were on the old data, kept in {old} "
                        "(no Undo changes them)")
            elif state is not None and not note and self.had_old_data(state.image):  # the set-aside layers deleted
                note = "the steps before the image got data of another shape were on the old data, deleted since"
            self.status.setText(f"Nothing to undo{where}" + (f": {note}." if note else "."))
            return

        def undone(result: Any) -> None:  # (the history was not empty: nothing else changes it while the edit runs)
            if isinstance(result.tag, PromptContent) and state.points is not None and state.boxes is not None:
                self._quiet += 1
                try:  # only this session's slice: the prompts of other slices belong to their own sessions
                    restore(state, result.tag, controller.layout)
                finally:
                    self._quiet -= 1
                state.last_prompts = capture(state)
            self._refresh_labels(state)
            self._refresh_objects()
            if self._state is state:  # another image picked meanwhile: its layers stay as the user left them
                self.activate_clicks()
            what = ("the mask" if one_frame(controller)  # a single 2D image: no frames
                    else f"{len(result.frames)} frame(s)")
            self.status.setText(f"Undid the last step{where}: {what}, the prompts and the session are as they were "
                                "before it.")

        def refused(error: BaseException) -> None:
            if isinstance(error, EditedSince):  # frames the step wrote were changed since: nothing thrown away
                message = self.track_all.widget_undo_refused(state.image, error)
                show_warning(f"SAM 2: {message}")
            else:
                message = f"Undo failed: {error}"
                show_error(f"SAM 2: {message}")
            self.status.setText(message)

        self.run_edit(controller.undo_steps(), f"Undoing the last step{where}", undone, refused)

    # ------------------------------------------------------------------ exports
    def _segmented(self, whole: bool = False) -> bool:
        """Something is segmented on the slice of the session acted on (whole: anywhere in the masklets). The slice's
        frames are read one at a time, up to the first with a label."""
        controller = self.controller
        if controller is None or not (np.asarray(controller.labels).any() if whole else has_labels(controller)):
            show_info("SAM 2: nothing is segmented yet: click on an object first")
            self.status.setText("Nothing is segmented yet: click on an object first.")
            return False
        return True

    def _on_export(self, what: str) -> None:
        from qtpy.QtWidgets import QFileDialog

        if self.busy():  # said before the file dialog, not after the name was chosen
            self.status.setText(f"{self.busy_words()}, then export.")
            return
        if not self._segmented(whole=what == "labels"):
            return
        suffix = "TIFF (*.tif)" if what == "labels" else "CSV (*.csv)"
        path, _ = QFileDialog.getSaveFileName(self, f"Export {what}", "", suffix)
        if path:
            self.export_in_worker(what, path)  # off the GUI thread, written whole (_session_actions.py)

    def export(self, what: str, path: str) -> Optional[str]:
        """Write the labels ("labels", TIFF) or the measurement table ("table", CSV); returns the path written.

        A name typed without the suffix gets it (".tif" or ".csv").
        """
        from .export import save_labels_tiff, save_table_csv

        if what not in SUFFIXES:
            raise ValueError(f"what must be 'labels' or 'table', not {what!r}")
        if not self._segmented(whole=what == "labels"):
            return None
        path = with_suffix(str(path), what)
        if what == "labels":
            save_labels_tiff(self.controller.labels, Path(path), *self.labels_calibration())
            where = ""  # every slice's labels
        else:  # the objects of the session acted on, whatever slice is shown
            save_table_csv(self.controller.measurements(self.calibration()), Path(path))
            where = self._elsewhere(self.controller.layout)
        self.status.setText(f"Wrote {path}{where}")
        return path

    def labels_calibration(self) -> Tuple[Optional[str], Any]:
        """(axis letters, calibration) of the labels TIFF that Export labels writes: the labels' axes
        (:func:`labels_letters`), recorded in every labels TIFF (calibrated or not: Fiji and tifffile then know the
        frames from slices), and the image's pixel size and frame step (:meth:`calibration`), so that Fiji reads
        microns and seconds where the image layer has them (:func:`.export.save_labels_tiff`)."""
        calibration = self.calibration()
        return labels_letters(self.controller.layout, calibration.frames_through_z), calibration

    def calibration(self) -> Any:
        """Pixel size, frame interval and their units from the image layer's scale and units; the origin (t, y, x)
        from its translate (where napari draws frame 0's pixel (0, 0)); the step of its other non-spatial axis (z of a
        TZYX layer propagated through t, or t through z) for the labels TIFF (:func:`.export.layer_other_steps`).

        A layer of scale 1 in pixels (napari's File > Open of an ImageJ TIFF or OME-TIFF gives one) whose source
        file records a pixel size gives the file's calibration instead (:func:`.file_calibration.source_calibration`:
        the file's axes matched to the layer's), said once per file in a notification; the layer's own scale on
        screen is left as it is. A layer with a scale or units of its own keeps them (the layer wins)."""
        from .export import Calibration, layer_other_steps

        image, layout = self.image_layer, self.controller.layout
        rows, cols = layout.spatial_axes
        units = getattr(image, "units", None)

        def unit(axis: Optional[int], default: str) -> str:
            name = "pixel" if units is None or axis is None else str(units[axis])
            return default if name == "pixel" else name  # napari's unit of an uncalibrated axis

        frame = layout.frame_axis
        translate = image.translate
        origin = (0.0 if frame is None else float(translate[frame]), float(translate[rows]), float(translate[cols]))
        from_file = self.source_file_calibration(image, layout)
        if from_file is not None:  # the layer's translate is in its pixels: in the file's units there
            steps = (from_file.frame_interval if frame is not None else 1.0, *from_file.pixel_size)
            placed = tuple(o + t * s for o, t, s in zip(from_file.origin, origin, steps))
            return Calibration(from_file.pixel_size, from_file.length_unit, from_file.frame_interval,
                               from_file.time_unit, frames_through_z=from_file.frames_through_z, origin=placed,
                               other_steps=from_file.other_steps)
        through_z = frame is not None and is_depth_axis(image, frame)
        return Calibration((float(image.scale[rows]), float(image.scale[cols])), unit(cols, "pixel"),
                           float(image.scale[frame]) if frame is not None else 1.0, unit(frame, "frame"),
                           frames_through_z=through_z, origin=origin,
                           other_steps=layer_other_steps(image.scale, units, layout, through_z))

    def source_file_calibration(self, image: Any, layout: StackLayout, tell: bool = True, wait: bool = True) -> Any:
        """The calibration ``image``'s source file records (:func:`.file_calibration.source_calibration`) for the
        image read under ``layout`` where the layer itself is uncalibrated (every scale 1, every unit napari's "pixel"
        or none); None otherwise. tell: the first time a file's calibration is found, a notification says what was
        read from where (the exports' :meth:`calibration`; False: nothing is said, as when the Track all panel asks
        whether the frames are z slices). wait False: an OME-TIFF not read yet (seconds for many thousands of pages:
        :func:`.file_calibration.header_takes_long`) is not read here; :data:`.file_calibration.READING` is returned
        (the Track all panel reads it in a worker)."""
        from .file_calibration import READING, header_takes_long, source_calibration

        path = getattr(getattr(image, "source", None), "path", None)
        units = getattr(image, "units", None)
        if path is None or not np.allclose(np.asarray(image.scale, float), 1.0) or \
                (units is not None and any(str(u) != "pixel" for u in units)):
            return None
        if not wait and header_takes_long(path):
            return READING
        data = image.data[0] if getattr(image, "multiscale", False) else image.data
        found = source_calibration(path, tuple(np.shape(data)), layout)
        if tell and found is not None and str(path) not in self._calibrations_told:
            self._calibrations_told = self._calibrations_told | {str(path)}
            show_info(f"SAM 2: {calibration_words(found, layout.frame_axis is not None)} read from {path} (the "
                      "layer's scale is 1 pixel: the exports use the file's calibration)")
        return found

    def add_tracks_layer(self) -> Any:
        """A napari Tracks layer following each object (the centroid of its largest piece) through the frames,
        computed on the calling thread (scripts, the console); returns the layer (None when nothing is segmented).
        The Add Tracks layer button computes it in a worker instead (:meth:`add_tracks_in_worker`)."""
        from .export import tracks_of

        if not self._segmented() or self._refuse_tracks():
            return None
        controller = self.controller
        data = tracks_of(controller.num_frames, label_plane_of(controller))
        return self._place_tracks(self.image_layer, controller.layout, data)

    def add_tracks_in_worker(self) -> Any:
        """What the Add Tracks layer button does: the Tracks data of :meth:`add_tracks_layer`, measured frame by frame
        in a worker thread (the progress bar follows the frames; Cancel stops it), then the layer added or updated on
        the GUI thread. The widget is busy meanwhile (runs wait; clicks are segmented after it). A cancelled or failed
        run changes no layer. Returns the worker (None when refused: the status line says why)."""
        from .export import tracks_steps

        if self.busy():
            self.status.setText(f"{self.busy_words()}, then add the Tracks layer.")
            return None
        if not self._segmented() or self._refuse_tracks():
            return None
        controller = self.controller
        run = self._tracks_run = TracksRun(self.image_layer, controller.layout, self._elsewhere(controller.layout))
        return self._start_worker_run(run, tracks_steps(controller.num_frames, label_plane_of(controller)),
                                      self._on_tracks_step, self._on_tracks_finished,
                                      f"Adding the Tracks layer{run.where}: measuring the objects frame by frame…",
                                      (self.tracks_button,))

    def _refuse_tracks(self) -> bool:
        """Whether the current image is turned out of its plane (:meth:`_out_of_plane`): its Tracks layer could not be
        placed on it, so none is added (the status line says why). True when refused."""
        refused = self._out_of_plane()
        if refused:
            self.status.setText(f"{refused} No Tracks layer was added or changed.")
        return bool(refused)

    def _on_tracks_step(self, step: tuple) -> None:
        try:
            kind, value, detail, _ = step
            if kind == "plan":
                self.progress.setRange(0, max(int(value), 1))
                self.progress.setValue(0)
            elif kind == "frame":
                self.progress.setValue(min(int(value) + 1, self.progress.maximum()))
                self.status.setText(f"Adding the Tracks layer: frame {value} measured ({detail} point(s) so far)…")
            elif kind == "tracks":
                self._tracks_run.data = detail
        except Exception as error:  # never let an exception escape a Qt slot
            self._tracks_run.fail(error)

    def _on_tracks_finished(self, worker: Any) -> None:
        """The Tracks worker ended: the layer is added or updated only when it finished whole (not cancelled, not
        failed) and its image is still in the viewer."""
        run = self._tracks_run
        self._end_worker_run(worker, lambda: self._end_tracks(run), (self.tracks_button,))

    def _end_tracks(self, run: "TracksRun") -> None:
        """The Tracks layer of a whole run placed (:meth:`_place_tracks`), the progress bar and the status saying how
        it ended."""
        text, added = run.outcome(self.viewer.layers), False
        if text is None:
            try:
                layer = self._place_tracks(run.image, run.layout, run.data)
                text, added = f"Added the Tracks layer '{layer.name}'{run.where}: {len(run.data)} point(s).", True
            except Exception as error:
                run.fail(error)
                text = run.outcome(self.viewer.layers)
        if added or self.progress.maximum() == 0:  # full when added; a busy bar stopped otherwise
            self.progress.setRange(0, 1)
            self.progress.setValue(int(added))
        self.status.setText(text)

    def _place_tracks(self, image: Any, layout: StackLayout, tracks: np.ndarray) -> Any:
        """Add the Tracks layer of ``tracks`` ((N, 4): object id, frame, y, x in the frames' pixels) over ``image``
        segmented with ``layout``, or update it when it is there (pressed again: it follows the labels as they are
        now); returns the layer. The layer is marked as the image's (:func:`~._tracks_layer.tracks_role`), so it follows
        a later change of the image's scale, translate, rotation, shear or affine transform as the masklets do."""
        data, scale, translate = tracks_placement(tracks, image, layout)
        axes = tracks_metadata(image, layout)  # the image's units: napari drops mixed ones
        transform = tracks_transform(image, layout)  # a turned image's tracks turn with it
        role = tracks_role("tracks", image, layout)
        name = layer_name(TRACKS_NAMES["tracks"], image)  # the one table of their names: a rename keeps matching
        if name in self.viewer.layers:
            layer = self.viewer.layers[name]
            layer.data = data
            place_layer(layer, scale, translate, transform)
            for key, value in axes.items():
                setattr(layer, key, value)
            layer.metadata = {**layer.metadata, **role["metadata"]}
            return own_tracks(layer)
        return own_tracks(self.viewer.add_tracks(data, name=name, scale=scale, translate=translate, **transform,
                                                 **axes, **role))


def _stopping(worker: Any) -> bool:
    """Whether ``worker`` (a napari worker) was asked to stop (Cancel pressed, the widget closed)."""
    return bool(getattr(worker, "abort_requested", False))


def label_plane_of(controller: Any) -> Callable[[int], Any]:
    """frame t -> the (Y, X) labels of ``controller``'s session on frame t (its slice of the masklets), read when
    called: one plane in memory at a time, never the stack."""
    labels, layout = controller.labels, controller.layout
    return lambda t: labels[layout.frame_index_in_labels(int(t))]


def has_labels(controller: Any) -> bool:
    """Whether a frame of ``controller``'s session has a label (read one plane at a time, up to the first with one)."""
    plane = label_plane_of(controller)
    return any(np.asarray(plane(t)).any() for t in range(controller.num_frames))


@dataclass
class WorkerRun:
    """What every run in a worker of the widget or the Track all panel keeps (:class:`TracksRun`,
    :class:`~._session_actions.ExportRun`, :class:`~._edit_runs.EditRun`): its worker and the error that ended it.
    ``failure`` names the run in the notification of its error ("": its owner says it)."""

    worker: Any = field(default=None, kw_only=True)
    error: Optional[BaseException] = field(default=None, kw_only=True)
    failure = ""  # a class attribute, not a field: each kind of run sets its own

    def owns(self, worker: Any) -> bool:
        """Whether ``worker`` (a widget's or panel's current worker, or None) is this run's."""
        return worker is not None and worker is self.worker

    def fail(self, error: BaseException) -> None:
        """Keep the error that ended the run, and notify it where ``failure`` names the run."""
        self.error = error
        if self.failure:
            show_error(f"SAM 2: {self.failure}: {error}")


@dataclass
class TracksRun(WorkerRun):
    """One Add Tracks layer run in a worker: the image and layout it measures, where (the slice, in words, when it is
    not the one shown), and how it ended."""

    image: Any
    layout: StackLayout
    where: str = ""
    data: Optional[np.ndarray] = None  # (N, 4) once the last frame is measured
    cancelled: bool = False
    failure = "Add Tracks layer failed"

    def outcome(self, layers: Any) -> Optional[str]:
        """The status line of a run that adds no layer (cancelled, failed, or its image removed from ``layers``);
        None when the layer is to be added."""
        if self.cancelled:
            return "Cancelled: no Tracks layer was added or changed."
        if self.error is not None:
            return f"Add Tracks layer failed: {self.error}. No Tracks layer was added or changed."
        if self.data is None:
            return "Stopped: no Tracks layer was added or changed."
        if self.image not in layers:
            return f"Not added: the image '{self.image.name}' was removed from the viewer meanwhile."
        return None
