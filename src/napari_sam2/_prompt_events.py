"""The segmentation widget's reactions to prompts and options: clicks and boxes added, moved or deleted
segment by themselves; clicks outside the image are removed where they enter; objects and click polarity;
correction options; new weights re-run the prompts. A mixin of :class:`~._widget.SegmentationWidget`
(split out to keep each file to one idea); it uses the widget's ``state``, buttons, ``picker`` and ``status``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
from napari.layers import Points
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer

from ._colors import style_boxes, style_points
from ._image_state import ImageState, capture, choice_layout, on_slice
from ._objects_panel import labels_colormap, object_rows
from .image_size import OFF
from .layout import StackLayout, world_to_data
from .prompts import outside_image
from .settings import save_settings

#: how the status line starts when a prompt made while the canvas showed no frame was removed
OFF_VIEW_REFUSAL = "the prompt was removed (nothing segmented)"
NO_IMAGE = "Add an image layer first (File > Open, or File > Open Sample > napari-sam2)."


def outside_words(coords: np.ndarray, layout: StackLayout, image_shape: Sequence[int]) -> str:
    """Why the clicks at ``coords`` ((N, ndim) image-data coordinates, all outside the image: :func:`outside_image`)
    were removed: the frames they name that the image lacks, with its frames, and the count off its rows and columns.
    """
    rows, cols = (int(image_shape[axis]) for axis in layout.spatial_axes)
    frames = layout.num_frames(image_shape)
    on_frames = [layout.point_to_prompt(point)[0] for point in coords]
    off_frames = [frame for frame in on_frames if not 0 <= frame < frames]
    missing = sorted(set(off_frames))
    pixels = f"the image has {rows} rows and {cols} columns"
    if not missing:
        return f"{len(coords)} click(s) outside the image were removed ({pixels}); click inside it."
    shown = ", ".join(str(frame) for frame in missing[:5]) + (", ..." if len(missing) > 5 else "")
    have = f"frames 0-{frames - 1}" if frames > 1 else "only frame 0"
    words = (f"{len(coords)} click(s) outside the image were removed: frame{'s' if len(missing) > 1 else ''} {shown} "
             f"{'do' if len(missing) > 1 else 'does'} not exist (the image has {have})")
    off = len(coords) - len(off_frames)  # on one of its frames, off its rows or columns
    if off:
        return f"{words}, and {off} lie(s) off its rows and columns ({pixels}); click inside it, on one of its frames."
    return f"{words}; click on one of its frames."


def same_colormap(held: Any, new: Any) -> bool:
    """Whether the Labels colormap ``new`` draws every label as ``held`` (the layer's) does: setting it again would
    only make napari recast the whole plane shown (0.2-1 s on a 3000 x 4000 image)."""
    direct = hasattr(new, "color_dict")  # (the layer's is seen through napari's proxy: its type is the proxy's)
    if direct != hasattr(held, "color_dict") or getattr(held, "background_value", None) != getattr(
            new, "background_value", None):
        return False
    if direct:  # a DirectLabelColormap: the same colour per label
        mine, theirs = held.color_dict, new.color_dict
        return mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in mine)
    return bool(np.array_equal(np.asarray(held.colors), np.asarray(new.colors)))


class PromptEventsMixin:
    """Prompt-layer events, object and polarity controls, option and model changes."""

    def _state_layout(self, state: ImageState) -> StackLayout:
        """The :class:`StackLayout` of ``state``'s image: under the axes panel's choices for the current image, under
        the image's own kept choices (``state.axes``: the panel shows the current image's) for another one.
        ValueError for an axis choice the image cannot take."""
        if state is self._state:
            return self._layout(state.image)
        return choice_layout(state.image, state.axes, self.viewer.dims.current_step)

    def _reject_outside(self, state: ImageState, lead: str = "") -> bool:
        """Remove clicks outside the image from the clicks layer, saying why (after ``lead``, words said first);
        True if any were removed."""
        points, image = state.points, state.image
        if not len(points.data):
            return False
        coords = world_to_data(points.data, points.scale, points.translate, image.scale, image.translate)
        try:
            layout = self._state_layout(state)
        except ValueError:  # an impossible axis choice: the run that follows says so
            return False
        bad = outside_image(coords, layout, image.data.shape)
        if not bad.any():
            return False
        self._remove_prompts(points, np.flatnonzero(bad).tolist(),
                             lead + outside_words(coords[bad], layout, image.data.shape))
        return True

    def _remove_prompts(self, layer: Any, indices: Sequence[int], message: str) -> None:
        """Remove the clicks or boxes at ``indices`` of the prompt ``layer`` (the widget's own edit: nothing is
        segmented for it), restyle it, and say ``message`` (a notification and the status line)."""
        self._quiet += 1
        try:
            layer.selected_data = set(int(i) for i in indices)
            layer.remove_selected()
            (style_points if isinstance(layer, Points) else style_boxes)(layer)
        finally:
            self._quiet -= 1
        show_info(f"SAM 2: {message}")
        self.status.setText(message)

    def _displayed_off_frame(self, state: ImageState) -> str:
        """The axes of ``state``'s image displayed on the canvas that are not a frame's rows and columns (the frame
        axis, a channel or a fixed slice axis, e.g. after viewer.dims.order put time on screen), in words; "" when
        the canvas shows a frame."""
        try:
            layout = self._layout(state.image)
        except ValueError:  # an impossible axis choice: the run that follows says so
            return ""
        offset = self.viewer.dims.ndim - state.points.ndim  # the viewer lines layers up with its last axes
        labels = list(self.viewer.dims.axis_labels)
        roles = {layout.frame_axis: "frame", layout.channel_axis: "channel", **{a: "slice" for a, _ in layout.fixed}}
        off = [axis - offset for axis in self.viewer.dims.displayed
               if axis - offset not in layout.spatial_axes and axis - offset >= 0]
        return ", ".join(f"the {roles.get(axis, 'other')} axis {axis} ('{labels[axis + offset]}')" for axis in off)

    def _reject_off_view(self, layer: Any, state: ImageState, event: Any) -> bool:
        """Remove the prompts just added to ``layer`` (``state``'s clicks or boxes) while the canvas does not show a
        frame (:meth:`_displayed_off_frame`): they would land on frames the user never saw. True if removed."""
        off = self._displayed_off_frame(state)
        if not off or not len(layer.data):
            return False
        count = len(layer.data)
        added = getattr(event, "data_indices", None) or (-1,)  # napari says -1 for the one appended last
        added = [int(i) % count for i in added if -count <= int(i) < count]
        self._remove_prompts(layer, added, f"{OFF_VIEW_REFUSAL}: the canvas displays {off}, "
                             "so it would land on frames you do not see. Transpose back (the viewer's transpose / roll "
                             "buttons) until the image's rows and columns are displayed, with 2D view, then click.")
        return True

    def _on_view_changed(self, event: Any = None) -> None:
        """The viewer's axis order or 2D/3D display changed: a refusal of a prompt made while the canvas did not show
        a frame (:meth:`_reject_off_view`) left on the status line gives way to a note once a frame is shown again."""
        state = self._state
        if state is None or state.points is None or not self.status.text().startswith(OFF_VIEW_REFUSAL):
            return
        if not self._displayed_off_frame(state) and self.viewer.dims.ndisplay == 2:
            self.status.setText("The canvas shows the image's frames again: click on a cell to segment it.")

    # ------------------------------------------------------------------ objects and clicks
    def _require_state(self) -> Optional[ImageState]:
        if self._state is None or self._state.points is None:
            show_info(f"SAM 2: {NO_IMAGE}")
            self.status.setText(NO_IMAGE)
            return None
        return self._state

    def _on_new_object(self) -> None:
        """*New object* (or its key, N on the clicks and boxes layers): the next click or box starts a new id."""
        state = self._require_state()
        if state is None:
            return
        self.object_spin.setValue(self._fresh_object_id(state))
        self.activate_clicks()

    def _fresh_object_id(self, state: ImageState, taken: Sequence[int] = ()) -> int:
        """One above every id ``state``'s image uses (its clicks, boxes, session objects and Track all's tracks) and
        ``taken`` (e.g. an object just deleted, kept free for its Undo)."""
        used = set(state.points.features["obj_id"].tolist()) | set(state.boxes.features["obj_id"].tolist())
        if state.controller is not None:
            used |= set(state.controller.obj_ids)
        used |= self.track_all.track_ids(state.image)  # never a track's id: the tracks share the masklets layer
        return max(used | set(int(t) for t in taken) | {0}) + 1

    def _on_object_changed(self, obj_id: int) -> None:
        """The Object id changed (typed, *New object*, a row selected, ...): new clicks and boxes take it, and the
        objects panel selects and shows its row (none for a new object)."""
        self.objects.follow(obj_id)
        if self._state is not None:
            self._take_object_id(self._state, obj_id)

    def set_object_id(self, state: ImageState, obj_id: int) -> None:
        """The Object id of ``state``'s image becomes ``obj_id``: the spin box where that image is shown (its slot
        follows: the prompt layers' defaults, the objects panel), else the image's own (shown when it is picked
        again)."""
        if self._state is state:
            self.object_spin.setValue(obj_id)
        else:
            self._take_object_id(state, obj_id)

    @staticmethod
    def _take_object_id(state: ImageState, obj_id: int) -> None:
        """New clicks and boxes on ``state``'s image belong to ``obj_id`` (and are drawn in its colour)."""
        state.obj_id = obj_id
        if state.points is None or state.boxes is None:
            return
        state.points.feature_defaults = {"positive": state.positive, "obj_id": obj_id}
        state.boxes.feature_defaults = {"obj_id": obj_id}
        style_points(state.points)
        style_boxes(state.boxes)

    def _on_toggle_positive(self) -> None:
        state = self._require_state()
        if state is None:
            return
        state.positive = not state.positive
        state.points.feature_defaults = {"positive": state.positive, "obj_id": state.obj_id}
        style_points(state.points)
        self._show_positive(state.positive)

    def _show_positive(self, positive: bool) -> None:
        self.positive_button.setText(f"Clicks: {'positive' if positive else 'negative'} (T toggles)")

    def _on_points_changed(self, state: ImageState, event: Any) -> None:
        if self._quiet or str(getattr(event, "action", "added")) not in ("added", "removed", "changed"):
            return
        if not any(known is state for known in self.states.values()):
            return  # its image was removed: the layer's new image (added again) has a state and a handler of its own
        if state is not self._state:
            self.image_combo.setCurrentText(state.image.name)
        if str(event.action) == "added" and self._reject_off_view(state.points, state, event):
            return
        if self._reject_outside(state) and str(event.action) == "added":
            return  # the click was outside the image: nothing else changed
        style_points(state.points)
        self._follow_added(state, event)
        self._prompts_edited()

    def _on_boxes_changed(self, state: ImageState, event: Any) -> None:
        if self._quiet or str(getattr(event, "action", "added")) not in ("added", "removed", "changed"):
            return
        if not any(known is state for known in self.states.values()):
            return  # its image was removed: the layer's new image (added again) has a state and a handler of its own
        if state is not self._state:
            self.image_combo.setCurrentText(state.image.name)
        if str(event.action) == "added" and self._reject_off_view(state.boxes, state, event):
            return
        style_boxes(state.boxes)
        self._follow_added(state, event)
        self._prompts_edited()

    def _follow_added(self, state: ImageState, event: Any) -> None:
        """A click or box was added to the current image: the objects panel selects and scrolls back to the object it
        belongs to (the Object id), in case the person scrolled the table away; a new object's row follows when its
        segmentation ends (:meth:`_refresh_objects`)."""
        if str(event.action) == "added" and state is self._state:
            self.objects.follow(state.obj_id)

    def _prompts_edited(self) -> None:
        """A prompt was added, moved or deleted: segment its frame (after the run in progress, if any)."""
        if self.busy():
            self._defer_edit()  # segmented after the run, on the image and slice it was made on
            return
        self._on_segment_clicked()

    # ------------------------------------------------------------------ options and model changes
    def _on_correction_options(self, *_: Any) -> None:
        save_settings(corrections_as_conditioning=self.corrections_check.isChecked(),
                      clear_memory_around_corrections=self.forget_check.isChecked())
        controller = self.controller
        if controller is not None:  # the session reads these flags at each correction: no new session needed
            controller.set_correction_options(self.corrections_check.isChecked(), self.forget_check.isChecked())

    def _on_smoothing_changed(self, value: float) -> None:
        """Remember the choice; the next segmentation or propagation runs in a new session on the smoothed frames
        (the objects are kept, as for a new channel)."""
        save_settings(smooth="auto" if value < 0 else float(value))
        self.smooth_note.setText("")
        if self.controller is not None:
            what = ("smoothed as auto chooses (from the first clicked frame's grain)" if value < 0 else
                    f"smoothed by {value:g} px" if value > 0 else "as stored (no smoothing)")
            self.status.setText(f"Frames {what}: the next segmentation or propagation uses them (objects kept; "
                                "segment the current frame or propagate again to update the masks).")

    def _on_invert_changed(self, checked: bool) -> None:
        """Remember the choice; the next segmentation or propagation runs in a new session on the frames inverted (or
        not) for the model (the objects are kept, as for a smoothing change)."""
        save_settings(invert=bool(checked))
        if self.controller is not None:
            what = "inverted for the model (dark objects)" if checked else "as stored (not inverted)"
            self.status.setText(f"Frames {what}: the next segmentation or propagation uses them (objects kept; "
                                "segment the current frame or propagate again to update the masks).")

    def _on_window_changed(self, text: str) -> None:
        """Remember the choice; the next segmentation or propagation runs in a new session (objects kept)."""
        save_settings(object_window=text)
        self.window_note.setText("")
        if self.controller is not None:
            what = "on whole frames" if text == OFF else f"in object windows ({text})"
            self.status.setText(f"Objects are segmented {what} from the next segmentation or propagation (objects "
                                "kept; segment the current frame or propagate again to update the masks).")

    def _on_model_choice_changed(self) -> None:
        """New weights or model: re-run the current image's prompts with it (keeping the objects)."""
        controller = self.controller
        if controller is None or not controller.has_prompts() or self._model_rerun_due:
            return
        self._model_rerun_due = True
        QTimer.singleShot(0, self._rerun_with_new_model)  # once, after every combo of the change has moved

    def _rerun_with_new_model(self) -> None:
        if not self._model_rerun_due:  # dropped meanwhile (a session load re-runs its own prompts once)
            return
        if self.busy():  # the run going on uses the model it started with; the new one takes over when it ends
            self.status.setText(f"{self.picker.choice().name} is chosen: the prompts are re-run with it when this run "
                                "ends.")
            return
        self._model_rerun_due = False
        show_info(f"SAM 2: re-running the prompts with {self.picker.choice().name} "
                  f"({self.picker.choice().weights}), keeping the objects, in the order they were made (corrections "
                  "after tracking, so that they apply); propagate again to update the other frames. Undo starts a new "
                  "history (earlier steps belonged to the previous model).")
        self._on_segment_clicked()

    # ------------------------------------------------------------------ the objects panel
    def _refresh_objects(self) -> None:
        """Show the current image's objects; hidden objects stay transparent in its masklets layer."""
        state = self._state
        controller = None if state is None else state.controller
        opened = controller is not None and controller.is_open  # never open a session here: the worker does
        self.objects.current = None if state is None else state.obj_id  # its row is selected and shown
        self.objects.show_rows(object_rows(controller.session, state.hidden) if opened else [])
        if state is None or state.labels is None or state.labels not in self.viewer.layers:
            return
        ids = [] if controller is None else controller.obj_ids
        state.hidden &= set(ids)
        if state.hidden or state.recoloured:  # new objects get their colour; no hidden object: the usual colormap
            colormap = labels_colormap(ids, state.hidden)
            if not same_colormap(state.labels.colormap, colormap):  # a new colormap: napari redraws the layer whole
                state.labels.colormap = colormap
            state.recoloured = bool(state.hidden)

    def _on_hide_toggled(self, obj_id: int) -> None:
        state = self._state
        if state is not None:
            state.hidden ^= {obj_id}
            self._refresh_objects()

    def _on_check_requested(self, obj_id: int) -> None:
        """Show the object's next check frame after the current one (wrapping round), and make it the object
        that clicks add to, so a click there re-anchors it."""
        state = self._state
        if state is None or state.controller is None:
            return
        frames = self.objects.check_frames(obj_id)
        if not frames:
            self.status.setText(f"Object {obj_id} has no frames to check.")
            return
        axis = state.controller.layout.frame_axis
        current = int(self.viewer.dims.current_step[axis]) if axis is not None else 0
        frame = next((t for t in frames if t > current), frames[0])
        if axis is not None:
            self.viewer.dims.set_current_step(axis, frame)
        self.object_spin.setValue(obj_id)
        self.activate_clicks()
        self.status.setText(f"Object {obj_id}, frame {frame}: check frame {frames.index(frame) + 1} of {len(frames)}. "
                            "Click the object here to re-anchor it, then propagate.")

    def _on_delete_object(self, obj_id: int) -> None:
        """Delete an object: its clicks and boxes, its session state and its masks (Undo brings it back).

        The clicks and boxes go here; the masks (every frame compared, those holding it saved for Undo) in a worker
        thread, the widget busy meanwhile (:meth:`run_edit`); the table and the status follow when it is done. A failure
        puts the clicks and boxes back: nothing changed."""
        state = self._state
        if state is None or state.controller is None or self.busy():
            return
        controller = state.controller
        try:
            steps = controller.remove_object_steps(obj_id, tag=self._before(state))  # checked before anything changes
        except ValueError as error:
            show_error(f"SAM 2: {error}")
            self.status.setText(f"Not deleted: {error}")
            return
        now = capture(state)
        here = on_slice(state, controller.layout, now)  # other slices' objects are their own
        self._quiet += 1
        try:
            for layer, on in zip((state.points, state.boxes), here):
                ids = layer.features["obj_id"].to_numpy(int)
                mine = np.flatnonzero((ids == obj_id) & on) if len(layer.data) else []
                if len(mine):
                    layer.selected_data = set(mine.tolist())
                    layer.remove_selected()
            style_points(state.points)
            style_boxes(state.boxes)
        finally:
            self._quiet -= 1
        after = capture(state)

        def deleted(_: Any) -> None:
            state.hidden.discard(obj_id)
            state.last_prompts = after
            self._refresh_labels(state)
            moved = ""
            if state.obj_id == obj_id:  # the next click would make the deleted object again: start a new one
                fresh = self._fresh_object_id(state, taken=(obj_id,))
                self.set_object_id(state, fresh)
                moved = f"; the next click starts object {fresh}"
            self._refresh_objects()
            if self._state is state:  # another image picked meanwhile: its layers stay as the user left them
                self.activate_clicks()
            self.status.setText(f"Deleted object {obj_id} (Undo brings it back){moved}.")

        def failed(error: BaseException) -> None:
            self._put_back_prompts(state, now)
            show_error(f"SAM 2: {error}")
            self.status.setText(f"Not deleted: {error} (nothing was changed).")

        self.run_edit(steps, f"Deleting object {obj_id}", deleted, failed)
