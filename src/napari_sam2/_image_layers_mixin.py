"""The segmentation widget's images and their layers (a mixin of :class:`~._widget.SegmentationWidget`).

The image picked, each image's :class:`~._image_state.ImageState` made on first use (its clicks, boxes and
masklets layers adopted when the dock is reopened), layers removed or renamed, an image given new data, and what
"auto" sizes measure (the slice shown, then the one the first click or box on the image was made on; "auto" object
windows: the objects prompted on the first prompted frame, as every route measures them); a new image's
channel axis taken from its file's axes (TCYX; an OME-TIFF's read in a worker) or from a last axis of a few
channels (TYXC), the person's own choice kept for the image also when the dock is closed and opened again. Uses the
widget's ``viewer``, ``states``, ``_state``, ``_file_channels``, ``_channel_said``, ``_channels_last``,
``_axes_reads``, ``_old_data``, ``_turns_said``, its controls (``image_combo``, ``seed_combo``, ``object_spin``,
``window_combo``, ``window_note``, ``picker``, ``axes``, ``status``) and its
runs' ``_stop_run_of``.
"""

from __future__ import annotations

import weakref
from itertools import product
from typing import Any, Iterable, List, Optional, Tuple

import numpy as np
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer

from ._axes_panel import (
    channel_axis_text, channel_choice_words, file_axes_choice, letters_reader, letters_take_long,
)
from ._image_state import (
    AxisChoice, ImageState, PromptContent, add_boxes_layer, add_points_layer, adopt_layers, boxes_on_image, capture,
    choice_layout, find_masklets, follow_image_placement, image_transform, keep_removed, layer_name, layer_role,
    masklets, model_data, out_of_plane_turn, place_layer, put_back_removed, restore, same_layer, show_masklets,
    spatial_ndim, trailing_channels, BOXES_NAME, LABELS_NAME, OUT_OF_PLANE, POINTS_NAME,
)
from ._tracks_layer import TRACKS_NAMES, follow_image, own_tracks_role, rename_with_image, set_aside
from ._track_ids import frame_ranges
from .labels_writer import tell_written
from .image_size import AUTO, OFF, FrameSample, PromptSpots, read_as_seen, resolve_object_window
from .layout import FrameView, StackLayout

#: frames of at most this many px are read whole for "auto" object windows measured on the prompted objects (larger:
#: the central part shown measures, as without prompts)
WHOLE_FRAME_PX = 4096 * 4096

#: the axis choice a person made on an image whose file's axes name a channel axis, with the image's data shape then:
#: kept here, not in the widget, so that a dock closed and opened again starts the image with it (not the file's);
#: keyed by the layer itself (napari hands plugins proxies of it, which a closed dock lets go)
_CHOSEN_AXES: "weakref.WeakKeyDictionary[Any, Tuple[Tuple[int, ...], AxisChoice]]" = weakref.WeakKeyDictionary()

#: how the status line starts while an OME-TIFF's axes are read (:meth:`ImageLayersMixin._read_axes_later`)
READING_AXES = "Reading the axes"

#: how the status line starts after the image segmented was removed (until another image is picked)
IMAGE_REMOVED = "The image"

#: why a run stops when its masklets layer was given other data (``layer.data = ...``) while it ran
MASKLETS_REPLACED = "the masklets layer's data was replaced during the run"


class ImageLayersMixin:
    """Which image is segmented, and its prompt and masklets layers."""

    def _refresh_images(self, event: Any = None) -> None:
        if event is not None and getattr(event, "type", "") == "inserted" and getattr(event, "value", None) is not None:
            self._check_prompt_copy(event.value)
        seed = self.seed_combo.currentText()
        own = [layer for state in self.states.values() for layer in (state.labels,) if layer is not None]
        seeds = [layer.name for layer in self.viewer.layers
                 if layer.__class__.__name__ == "Labels" and not any(same_layer(layer, o) for o in own)]
        self.seed_combo.clear()
        self.seed_combo.addItems(seeds)
        if seed in seeds:
            self.seed_combo.setCurrentText(seed)
        current = self.image_combo.currentText()
        if self._state is not None and self._state.image in self.viewer.layers:
            current = self._state.image.name  # follows a renamed image
        names = [layer.name for layer in self.viewer.layers if layer.__class__.__name__ == "Image"]
        self.image_combo.blockSignals(True)
        self.image_combo.clear()
        self.image_combo.addItems(names)
        if current in names:
            self.image_combo.setCurrentText(current)
        self.image_combo.blockSignals(False)
        if names and (current not in names or self._state is None):
            self._on_image_changed(self.image_combo.currentText())

    def _check_prompt_copy(self, layer: Any) -> None:
        """A layer was added to the viewer: when it is a duplicate of an image's clicks or boxes layer (napari's
        Duplicate Layer makes the copy the active layer), the widget's own layer is made active again after napari's
        insertion ends, and the status line says that prompts on the copy are not segmented."""
        parent = getattr(getattr(layer, "source", None), "parent", None)
        if isinstance(parent, weakref.ref):  # (napari keeps the layer a copy was made from as a weak reference)
            parent = parent()
        if parent is None:
            return
        for state in self.states.values():
            for original in (state.points, state.boxes):
                if same_layer(parent, original) and not same_layer(layer, original):
                    QTimer.singleShot(0, lambda s=state, o=original, c=layer: self._after_prompt_copy(s, o, c))
                    return

    def _after_prompt_copy(self, state: ImageState, original: Any, copy: Any) -> None:
        """:meth:`_check_prompt_copy`'s second half: ``original`` (``state``'s clicks or boxes layer) active again."""
        if not self._attached or original not in self.viewer.layers or copy not in self.viewer.layers:
            return
        if state is self._state:
            if same_layer(original, state.points):
                self.activate_clicks()
            else:
                self.viewer.layers.selection.active = original
        message = (f"'{copy.name}' is a copy of '{original.name}': clicks and boxes on the copy are not segmented (it "
                   f"keeps what it holds now, e.g. as a backup). '{original.name}' is the layer to click on"
                   f"{' and is active again' if state is self._state else ''}.")
        self.status.setText(message)
        show_info(f"SAM 2: {message}")

    def _on_layer_removed(self, event: Any) -> None:
        layer = event.value
        for key, state in list(self.states.items()):
            if same_layer(layer, state.image):
                del self.states[key]
                self._disconnect_state(state)  # the same layer added back gets a new state: only that one acts
                if state is self._state:
                    self.status.setText(f"{IMAGE_REMOVED} '{layer.name}' was removed (its clicks and masklets "
                                        "layers stay): pick or add an image to segment.")
                    self._stop_run_of(state, f"the image '{layer.name}' was removed")
                    self._state = None
            elif same_layer(layer, state.labels):
                state.labels = None
                self._stop_run_of(state, f"the masklets layer '{layer.name}' was deleted")
                if state.controller is not None:
                    self.status.setText(f"'{layer.name}' was deleted; the next click or Propagate recreates it "
                                        "with the labels so far (nothing is lost).")
            elif same_layer(layer, state.points) or same_layer(layer, state.boxes):
                keep_removed(state, layer)  # the new layer gets them back: the session was made from them
                if same_layer(layer, state.points):
                    state.points = None
                else:
                    state.boxes = None
                if state is self._state:
                    QTimer.singleShot(0, self._ensure_prompt_layers)  # not while napari is removing layers
        self._refresh_images()

    def _listen_for(self, state: ImageState, emitter: Any, callback: Any) -> None:
        """Connect ``callback`` (a handler of ``state``) to ``emitter`` while the widget is in the window
        (``_listen``), kept in ``state.links`` too, so that it is disconnected when ``state``'s image is removed."""
        self._listen(emitter, callback)
        state.links.append((emitter, callback))

    def _disconnect_state(self, state: ImageState) -> None:
        """Disconnect ``state``'s handlers (its image's name, data, scale, translate and units events, its clicks and
        boxes layers' data events): its image was removed, so if the same layer object is added back (a script, a
        plugin's undo) only the new state made for it acts on its events, not the removed one as well."""
        for emitter, callback in state.links:
            emitter.disconnect(callback)
        gone = state.links
        self._links[:] = [(e, c) for e, c in self._links if not any(e is ge and c is gc for ge, gc in gone)]
        state.links = []

    def _is_live(self, state: ImageState) -> bool:
        """Whether ``state`` is still the state of its image (not one left by a removed image)."""
        return self.states.get(state.image.unique_id) is state

    def _on_image_changed(self, name: str) -> None:
        layer = self.viewer.layers[name] if name in self.viewer.layers else None
        if layer is None or layer.__class__.__name__ != "Image":
            return
        if self._state is not None:
            self._state.obj_id = self.object_spin.value()
        state = self.states.get(layer.unique_id)
        new, from_file = state is None, ""
        if state is None:
            state = self.states[layer.unique_id] = ImageState(layer)
            if letters_take_long(layer):  # an OME-TIFF's axes: read in a worker, the widget busy meanwhile
                self._read_axes_later(state)
            else:
                from_file = self._axes_from_file(state)
            self._listen_for(state, layer.events.name, lambda event, s=state: self._on_image_renamed(s))
            self._listen_for(state, layer.events.data, lambda event, s=state: self._on_image_data_replaced(s))
            for name in ("scale", "translate", "rotate", "shear", "affine", "units"):  # set after clicking: ours follow
                emitter = getattr(layer.events, name, None)
                if emitter is not None:
                    self._listen_for(state, emitter, lambda event, s=state: self._on_image_placed(s))
        self._state = state
        self.axes.show_for(layer, state.axes)
        if new:
            self._adopt_layers(state)
        if self.status.text().startswith(f"{IMAGE_REMOVED} '") and " was removed (" in self.status.text():
            picked = (" with the clicks and boxes on its layers" if state.points is not None and len(state.points.data)
                      else "")
            self.status.setText(f"Segmenting '{layer.name}'{picked}: click on a cell to segment it.")
        self._ensure_prompt_layers()
        for other in self.states.values():  # only the current image's prompts are visible (and clickable)
            for prompts in (other.points, other.boxes):
                if prompts is not None:
                    prompts.visible = other is state
        self.object_spin.blockSignals(True)
        self.object_spin.setValue(state.obj_id)
        self.object_spin.blockSignals(False)
        self._show_positive(state.positive)
        self._on_slice_shown()
        self._refresh_objects()
        self.refresh_run_buttons()  # a single 2D image has nothing to propagate through
        self.activate_clicks()
        self.picker.refresh_auto()
        if from_file:
            self.status.setText(f"Segmenting '{layer.name}'. {from_file}")
        elif layer.unique_id in self._axes_reads:
            self.status.setText(f"{READING_AXES} of '{layer.name}' from its OME-TIFF… (clicks made meanwhile are "
                                "segmented once they are known)")
        self._say_turn(state, picked=True)
        self._run_deferred()  # clicks made on this image during a run on another one

    def _read_axes_later(self, state: ImageState) -> None:
        """Read the axes of the OME-TIFF ``state``'s image came from in a worker (tifffile finds every page of the
        file: seconds for many thousands, the viewer frozen were it read here), then choose its channel axis from them
        (:meth:`_on_axes_read`). Meanwhile the widget is busy (:meth:`busy`): no run starts under an axis choice that
        is about to change, and clicks made meanwhile are segmented once the axes are known."""
        worker = thread_worker(letters_reader(state.image), ignore_errors=True)()  # it catches its own errors
        self._axes_reads[state.image.unique_id] = worker
        before = AxisChoice(**vars(state.axes))
        worker.finished.connect(lambda s=state, w=worker, b=before: self._on_axes_read(s, w, b))
        self.refresh_run_buttons()
        worker.start()

    def _on_axes_read(self, state: ImageState, worker: Any, before: AxisChoice) -> None:
        """The axes of ``state``'s file are read (:meth:`_read_axes_later`): its channel axis chosen from them as
        :meth:`_axes_from_file` says, unless the person chose axes meanwhile (``state.axes`` no longer ``before``),
        shown if it is the current image; then the widget is no longer busy and the clicks made meanwhile are
        segmented. A read the widget no longer waits for (closed, the image removed) changes nothing."""
        if self._axes_reads.get(state.image.unique_id) is not worker:
            return
        del self._axes_reads[state.image.unique_id]
        words = self._axes_from_file(state) if self._is_live(state) and state.axes == before else ""
        if self._is_live(state) and self._state is state:
            self.axes.show_for(state.image, state.axes)
            self.picker.refresh_auto()
            self._on_slice_shown()
            if words:
                self.status.setText(f"Segmenting '{state.image.name}'. {words}")
            elif self.status.text().startswith(READING_AXES):
                self.status.setText(f"Segmenting '{state.image.name}': click on a cell to segment it.")
        self.refresh_run_buttons()
        self._run_deferred()

    def _axes_from_file(self, state: ImageState) -> str:
        """A new image's axis choice from the file napari read it from where the file's axes name a channel axis
        (:func:`~._axes_panel.file_axes_choice`, e.g. TCYX: "Channel axis: axis 1"), so that the widget segments it as
        ``napari-sam2 track`` does; the person's own choice, made afterwards, is kept as any choice is (``state.axes``),
        and wins also in a dock closed and opened again (:meth:`_channel_choice_edited`). Not where the viewer holds a
        masklets layer of the image that only another choice fits (a closed dock's, segmented otherwise). Returns the
        status words saying so ("" when nothing was chosen)."""
        found = file_axes_choice(state.image)
        if found is None:
            return self._axes_channels_last(state)
        choice, letters = found
        image = state.image
        shape, chosen = _CHOSEN_AXES.get(getattr(image, "__wrapped__", image), ((), None))
        same_data = shape == tuple(int(n) for n in image.data.shape)  # (a choice made on data of another shape: not)
        if chosen is not None and same_data and self._fits_masklets(image, chosen):
            choice = chosen
        elif not self._fits_masklets(image, choice):
            return ""
        state.axes = choice
        self._file_channels[image.unique_id] = letters
        self._channel_said[image.unique_id] = channel_choice_words(image, choice, letters)
        return self._channel_said[image.unique_id]

    def _axes_channels_last(self, state: ImageState) -> str:
        """A new image whose last axis holds channels after its rows and columns, not shown as RGB (a (T, Y, X, C)
        stack of 2-channel fluorescence: :func:`~._image_state.trailing_channels`) starts with that axis as its
        channel axis, as a (T, C, Y, X) file's does: the model sees channel 0 and the masks lie on every channel (else
        the widget would segment its columns and channels as rows and columns). The person's own choice, made
        afterwards, wins also in a dock closed and opened again; not where the viewer holds a masklets layer of the
        image that only another choice fits. Returns the status words ("" when nothing was chosen)."""
        image = state.image
        count = trailing_channels(image)
        if not count:
            return ""
        ndim = spatial_ndim(image)
        choice = AxisChoice(0, channel_axis_text(ndim - 1, count), "")
        shape, chosen = _CHOSEN_AXES.get(getattr(image, "__wrapped__", image), ((), None))
        if chosen is not None and shape == tuple(int(n) for n in image.data.shape) and self._fits_masklets(image,
                                                                                                           chosen):
            choice = chosen
        elif not self._fits_masklets(image, choice):
            return ""
        state.axes = choice
        self._channels_last.add(image.unique_id)
        if choice.channel_axis != channel_axis_text(ndim - 1, count):
            return ""
        offset = self.viewer.dims.ndim - ndim  # the viewer lines layers up with its last axes
        shown = ndim - 1 + offset in self.viewer.dims.displayed
        roll = (" napari displays an image's last two axes, its columns and channels here: press the viewer's 'Roll "
                "dimensions' button (or set viewer.dims.order) until its rows and columns show, then click."
                if shown else "")
        return (f"Channel axis: axis {ndim - 1} ({count} channels after the rows and columns): the model sees "
                f"{choice.channel or 'channel 0'} and the masks lie on every channel (choose another 'Channel', or the "
                f"mean or max of them).{roll}")

    def _fits_masklets(self, image: Any, choice: AxisChoice) -> bool:
        """Whether ``choice`` fits the masklets layer of ``image`` the viewer holds (True when it holds none)."""
        theirs = [layer for layer in self.viewer.layers if layer.__class__.__name__ == "Labels" and (
            layer.name == layer_name(LABELS_NAME, image) or layer_role(layer) == ("masklets", str(image.unique_id)))]
        if not theirs:
            return True
        try:
            return find_masklets(self.viewer, image, choice_layout(image, choice, self.viewer.dims.current_step)) \
                is not None
        except ValueError:
            return False

    def _channel_choice_edited(self, state: ImageState) -> None:
        """The person changed the axis choice of ``state``'s image, whose file's axes name a channel axis: the choice is
        kept for the image (a dock closed and opened again starts with it: :meth:`_axes_from_file`), and where the
        status line still says what the channel choice was, it says what it is now
        (:func:`~._axes_panel.channel_choice_words`: "Channel axis: none, as you chose ...")."""
        image = state.image
        letters = self._file_channels.get(image.unique_id)
        if letters is None:
            if image.unique_id in self._channels_last:  # kept as a file's choice is (:meth:`_axes_channels_last`)
                _CHOSEN_AXES[getattr(image, "__wrapped__", image)] = (tuple(int(n) for n in image.data.shape),
                                                                      state.axes)
            return
        _CHOSEN_AXES[getattr(image, "__wrapped__", image)] = (tuple(int(n) for n in image.data.shape), state.axes)
        said, text = self._channel_said.get(image.unique_id, ""), self.status.text()
        if said and said in text:
            words = self._channel_said[image.unique_id] = channel_choice_words(image, state.axes, letters)
            self.status.setText(text.replace(said, words))

    def object_window(self, model: Any) -> Optional[int]:
        """The chosen object window's side for the current image and ``model`` (None: whole frames), kept per image,
        choice and input size. "auto" measures, as ``segment()``, ``napari-sam2 track`` and batch runs do, the objects
        prompted on the image's first prompted frame (:meth:`_prompted_spots`), that frame read whole as the model is
        shown it, so the same clicks give the same window in every route; it is measured again only when those
        objects' spots change (a new object's first click or box there; not a correction, nor a click on another
        frame). Without prompts it measures the slice shown (:meth:`_frame_sample`). A window that changes remakes
        the slice's controller, which re-runs its prompts."""
        state = self._state
        choice = self.window_combo.currentText()
        if state is None or choice == OFF:
            return None
        image, size = state.image.unique_id, int(model.image_size)
        prompted = self._prompted_spots() if choice == AUTO else None
        spots_key = () if prompted is None else (prompted[1], np.round(prompted[2].points, 3).tobytes(),
                                                 np.round(prompted[2].boxes, 3).tobytes())
        key = (image, choice, size) + spots_key
        if key not in self._windows:
            name = self.picker.model_combo.currentText()
            if prompted is not None:
                view, index, spots = prompted
                frame = read_as_seen(view, index, self.axes.channel_options())  # the channel segmented
                side = resolve_object_window(choice, frame, name, size, prompts=spots)
            else:
                sample = self._frame_sample()
                side = None if sample is None else resolve_object_window(choice, sample, name, size)
            self._windows = {k: v for k, v in self._windows.items() if k[:3] != (image, choice, size)}  # the last kept
            self._windows[key] = side
        side = self._windows[key]
        if choice == AUTO:
            self.window_note.setText(f"→ {side} px" if side else "→ whole frames (objects not small)")
        return side

    def _prompted_spots(self) -> Optional[Tuple[FrameView, int, PromptSpots]]:
        """Where "auto" object windows measure the current image's prompted objects: (its frames on the slice shown,
        the first prompted frame (the first with a positive click or a box, the rule of ``segment()``'s
        :func:`~.api.prompted_frame`), the spots of the objects prompted there (:class:`PromptSpots`, (x, y) frame
        px)). None without clicks or boxes on the slice shown, and for frames over :data:`WHOLE_FRAME_PX` (read whole
        on napari's GUI thread: too slow; the central part shown is measured as without prompts)."""
        state = self._state
        if state is None or not (len(state.points.data) or len(state.boxes.data)):
            return None
        layout = self._layout(state.image)
        try:
            prompts = self.prompts(layout)
        except ValueError:  # a box across frames: the run says so
            return None
        view = FrameView(model_data(state.image), layout)
        if not prompts or int(np.prod(view.shape[1:3])) > WHOLE_FRAME_PX:
            return None
        starts = [p.frame for p in prompts if p.box is not None or (np.asarray(p.labels) > 0).any()]
        index = int(min(starts or [p.frame for p in prompts])) if layout.frame_axis is not None else 0
        return view, min(max(index, 0), len(view) - 1), PromptSpots.of(prompts, index)

    def _frame_sample(self) -> Optional[FrameSample]:
        """What "auto" (input size, object window) measures of the current image: the central part of the frame
        shown (the slider's frame along the propagated axis, at the slider's other slices; read alone, so a big,
        lazy or pyramid image costs napari's GUI thread little) and the frame's (H, W); None without an image. Not
        frame 0: in a z-stack that is often an empty slice above the sample, whose noise measures as tiny objects."""
        state = self._state
        if state is None:
            return None
        layout = self._layout(state.image)
        view = FrameView(model_data(state.image), layout)
        shown = 0
        if layout.frame_axis is not None:
            step = self.viewer.dims.current_step
            shown = min(max(int(step[layout.frame_axis]), 0), len(view) - 1) if layout.frame_axis < len(step) else 0
        return FrameSample(view.central(shown, FrameSample.side()), view.shape[1:3],
                           shown if layout.frame_axis is not None else None)

    def _measure_at_first_prompt(self, state: ImageState, event: Any) -> None:
        """A click or box added on an image nothing was segmented on yet: "auto" input size and object windows are
        measured again, on the slice it was made on (the slice shown), before it is segmented; the image's later
        prompts use what was measured then (a new size would rebuild the model and re-run every prompt)."""
        if self._quiet or str(getattr(event, "action", "")) != "added" or state is not self._state:
            return
        if state.controller is not None or state.sessions:
            return
        image = state.image.unique_id
        self._windows = {key: side for key, side in self._windows.items() if key[0] != image}
        self.picker.refresh_auto()

    def _on_image_renamed(self, state: ImageState) -> None:
        """An image's own layers follow its new name: its clicks, boxes and masklets layers, and the Tracks layers made
        over it (Add Tracks layer's, Track all's lineage: :func:`~._tracks_layer.rename_with_image`) and its Track all
        correction clicks where they still have the name given for the image's old name (a name the person gave one
        is kept)."""
        if not self._is_live(state):
            return
        old, state.name = state.name, str(state.image.name)
        for base, layer in ((POINTS_NAME, state.points), (BOXES_NAME, state.boxes), (LABELS_NAME, state.labels)):
            if layer is not None:
                layer.name = layer_name(base, state.image)
        for layer in list(self.viewer.layers):
            rename_with_image(layer, state.image, old)
        track_all = getattr(self, "track_all", None)
        if track_all is not None:
            track_all.follow_image_name(state.image, old)
        self._refresh_images()

    def _on_image_placed(self, state: ImageState) -> None:
        """The image's scale, translate, rotation, shear, affine transform or units were set (a pixel size given after
        clicking, for calibrated exports; a registered or turned image): its clicks, boxes and masklets layers, its
        Track all correction layer, and the Tracks layers made over it (Add Tracks layer's, Track all's lineage: marked
        as the image's, :func:`~._tracks_layer.follow_image`) take them too (:func:`~._image_state.follow_image_placement`),
        so every click stays on its image pixel (none is moved or removed; a click made on the turned image lands on
        the pixel under it) and the masks and tracks are drawn on the image. An image that is not the current one is
        placed under its own axis choices (``state.axes``).

        A transform that turns the image out of its plane (:func:`~._image_state.out_of_plane_turn`: a 3-D rotation, a
        shear mixing the frame or channel axis with the rows) is followed too, but the status line of the current image
        says that clicks and runs on it are refused until it is in-plane again, and says so when it is."""
        if not self._is_live(state):
            return
        layout: Optional[StackLayout] = state.controller.layout if state.controller is not None else None
        if layout is None:
            try:
                layout = self._state_layout(state)
            except ValueError:  # an impossible axis choice: the next run places the masklets
                layout = None
        self._place_on_image(state, layout)
        if state is self._state:
            self._say_turn(state)

    def _say_turn(self, state: ImageState, picked: bool = False) -> None:
        """The status line of the current image ``state`` says at once when its transform turns it out of its plane
        (:func:`~._image_state.out_of_plane_turn`: clicks, boxes and runs on it are refused), not first when a run is
        pressed, and says so when it is turned within its plane again. ``picked``: the image was just picked (it may
        have been turned while another image was the current one; a line about another image's turn goes)."""
        refused = out_of_plane_turn(state.image)
        turn = _turn_key(state.image)
        if not refused:  # turned in its plane: a later turn out of it pops up again
            self._turns_said = {said for said in self._turns_said if said[0] != turn[0]}
        if refused and self.status.text() != refused:
            self.status.setText(refused)
            if turn not in self._turns_said:  # once per image and transform (picked again: the status line says it)
                self._turns_said.add(turn)
                show_info(f"SAM 2: {refused}")
        elif not refused and self.status.text().startswith(OUT_OF_PLANE):
            self.status.setText(f"Segmenting '{state.image.name}': click on a cell to segment it." if picked else
                                f"'{state.image.name}' is turned only within its plane now: click on a cell to "
                                "segment it.")

    def _place_on_image(self, state: ImageState, layout: Optional[StackLayout]) -> None:
        """Give ``state``'s clicks, boxes and masklets layers (the masklets drawn under ``layout``; None: left), its
        Track all correction layer and the Tracks layers made over its image (marked as its own:
        :func:`~._tracks_layer.follow_image`) the image's placement as it is now (scale, translate, rotation, shear,
        affine transform, units)."""
        follow_image_placement(state, layout)
        image = state.image
        for layer in list(self.viewer.layers):
            follow_image(layer, image)
        track_all = getattr(self, "track_all", None)
        entry = None if track_all is None else getattr(track_all, "images", {}).get(image.unique_id)
        if entry is not None and entry.fix_points is not None and entry.fix_points.ndim == spatial_ndim(image):
            place_layer(entry.fix_points, image.scale, image.translate, image_transform(image))

    def _on_image_data_replaced(self, state: ImageState) -> None:
        """The image layer was given new data (a registered or denoised stack written back, a crop): its sessions
        computed on the old pixels are dropped (a run on it stops), so the next click or propagation segments the new
        ones. New data of the same shape keeps the masks. New data of another shape (a crop, frames cut): the
        masklets layer (made on the old pixels) is kept under a new name and no longer used (the next run makes an
        empty one), the clicks and boxes that lie outside the new data are removed, boxes reaching past its edges are
        cut at them (:meth:`_fit_boxes`), and the message says so and that the others keep their pixel positions (after
        a crop that shifted the image they may lie on other cells); an image that is not the current one judges its
        clicks and boxes under its own axis choices (``state.axes``), not the axes panel's."""
        if not self._is_live(state):
            return
        if state is self._state:
            self.refresh_run_buttons()  # new data may have lost (or gained) the axis to propagate through
        old_shape, new_shape = state.data_shape, tuple(int(n) for n in state.image.data.shape)
        state.data_shape = new_shape
        reshaped = bool(old_shape) and old_shape != new_shape
        segmented = bool(state.sessions) or state.controller is not None
        if not segmented and not reshaped:
            return
        if segmented:
            self._stop_run_of(state, "the image's data was replaced")
            state.sessions.clear()
            state.replaced.clear()
            state.controller = None
        name = state.image.name
        if not reshaped:
            message = (f"'{name}' has new data: its segmentation sessions were reset (the masks stay); "
                       "segment or propagate again to use the new pixels.")
            self.status.setText(message)
            show_info(f"SAM 2: {message}")
            return
        shapes = f"{' x '.join(map(str, old_shape))} -> {' x '.join(map(str, new_shape))}"
        words = [f"'{name}' has new data of another shape ({shapes})" +
                 (": its segmentation sessions were reset." if segmented else ".")]
        kept = self._set_aside_masklets(state)
        track_all = getattr(self, "track_all", None)
        aside = {"lineage": "", "fix": ""} if track_all is None else track_all.set_aside(state.image)
        tracks = [aside["lineage"]] + [set_aside(layer) for layer in list(self.viewer.layers)  # Add Tracks layer's
                                       if own_tracks_role(layer, state.image) == "tracks"]
        tracks = [name for name in tracks if name]
        if kept or tracks or aside["fix"]:
            names = [name for name in (kept, *tracks, aside["fix"]) if name]
            earlier = self._old_data_kept(state.image)  # an earlier crop's, still in the viewer: named too
            self._old_data[state.image.unique_id] = [layer.unique_id for layer in earlier] + [
                self.viewer.layers[name].unique_id for name in names if name in self.viewer.layers]
            parts = ([f"its masks, made on the old pixels, are kept in '{kept}'"] if kept else []) + \
                ([f"their tracks in {_quoted(tracks)}"] if tracks else []) + \
                ([f"the correction clicks in '{aside['fix']}'"] if aside["fix"] else [])
            text = _joined(parts)
            words.append(f"{text[0].upper()}{text[1:]} (no longer used or exported by the widget, and no step on them "
                         "is undone); the next run makes a new masklets layer.")
        prompts = [layer for layer in (state.points, state.boxes) if layer is not None and len(layer.data)]
        if prompts:
            words.append("The clicks and boxes keep their pixel positions (frame, row, column): after a crop or shift "
                         "they may lie on other cells, so check them (move or delete) before segmenting.")
        fitted = self._fit_boxes(state)
        if fitted:
            words.append(fitted)
        message = " ".join(words)
        same_axes = state.points is not None and state.points.ndim == spatial_ndim(state.image)
        if not (same_axes and self._reject_outside(state, lead=message + " ")):
            self.status.setText(message)
            show_info(f"SAM 2: {message}")

    def old_data_layers(self, image: Any) -> str:
        """The names, quoted, of the layers that new data of another shape (a crop) of ``image`` set aside with the
        masks of the old pixels ("'SAM2 masklets [cells] (old data)' and 'SAM2 lineage [cells] (old data)'"), where the
        steps made before it lie (no Undo reverts them): those still in the viewer, under their names now (a layer
        deleted since is not named, one renamed is named as it is now); "" when none was or none is left."""
        return _quoted(layer.name for layer in self._old_data_kept(image))

    def had_old_data(self, image: Any) -> bool:
        """Whether new data of another shape (a crop) of ``image`` set aside layers of the old data (kept or deleted
        since)."""
        return getattr(image, "unique_id", None) in self._old_data

    def _old_data_kept(self, image: Any) -> List[Any]:
        """The layers new data of another shape set aside for ``image`` (:meth:`old_data_layers`), those still in the
        viewer."""
        ids = self._old_data.get(getattr(image, "unique_id", None), [])
        return [layer for layer in self.viewer.layers if layer.unique_id in ids]  # (napari hands plugins proxies)

    def _fit_boxes(self, state: ImageState) -> str:
        """After new data of another shape (a crop): ``state``'s boxes that lie wholly outside the new data (or on a
        frame it lacks) are removed and those across its edges clipped to it (:func:`~._image_state.boxes_on_image`;
        the widget's own edit: nothing is segmented for it), as clicks outside it are removed; returns the words saying
        so ("" when every box lies inside, or the image's axes cannot be judged: the run that follows says why)."""
        boxes, image = state.boxes, state.image
        if boxes is None or state.points is None or not len(boxes.data) or boxes.ndim != spatial_ndim(image):
            return ""
        try:
            layout = self._state_layout(state)
        except ValueError:  # an impossible axis choice: the run that follows says so
            return ""
        kept, ids, removed, clipped = boxes_on_image(state, layout)
        if not removed and not clipped:
            return ""
        now = capture(state)
        self._quiet += 1
        try:
            restore(state, PromptContent(now.points, now.positive, now.point_ids, kept, ids))
        finally:
            self._quiet -= 1
        shape = image.data.shape
        rows, cols = (int(shape[axis]) for axis in layout.spatial_axes)
        frames = layout.num_frames(shape)
        size = f"{rows} rows and {cols} columns" + (f", frames 0-{frames - 1}" if layout.frame_axis is not None else "")
        done = ([f"{removed} box(es) outside the new data were removed"] if removed else []) + \
            ([f"{clipped} box(es) reaching past its edges were cut at them"] if clipped else [])
        return f"{' and '.join(done)} (the image has {size})."

    def _set_aside_masklets(self, state: ImageState) -> str:
        """The image's masklets layer (labels of the old data's shape) renamed "... (old data)" and let go (no longer
        the image's: not adopted again, the next run makes a new one); returns its new name ("" when there was none)."""
        layer = state.labels
        state.labels = state.new_labels = None
        if layer is None or layer not in self.viewer.layers:
            return ""
        return set_aside(layer)

    def stop_if_masklets_replaced(self, state: Optional[ImageState], layout: Optional[StackLayout],
                                  array: Any) -> bool:
        """During a run writing into ``array`` (the labels of ``layout``'s shape its masklets layer showed when it
        started): when ``state``'s masklets layer shows other data now (``layer.data = ...`` by a script or another
        plugin), the run stops (the widget's and a Track all run on the image: :meth:`_stop_run_of`), as when the
        layer is deleted; its end puts its frames into the new data (:meth:`masklets_back`). True when replaced."""
        if not self._shows_other_data(state, layout, array):
            return False
        self._stop_run_of(state, MASKLETS_REPLACED)
        return True

    def _shows_other_data(self, state: Optional[ImageState], layout: Optional[StackLayout], array: Any) -> bool:
        """Whether ``state``'s masklets layer (in the viewer) no longer shows ``array`` under ``layout``."""
        if state is None or layout is None or array is None or state.labels is None:
            return False
        return state.labels in self.viewer.layers and masklets(state.labels, state.image, layout) is not array

    def masklets_back(self, state: Optional[ImageState], layout: Optional[StackLayout], array: Any,
                      frames: Iterable[int]) -> str:
        """At the end of a run that wrote ``frames`` (of ``layout``) into ``array``, on the GUI thread (the worker has
        ended): when ``state``'s masklets layer was given other data meanwhile, that data is copied into ``array``
        except on the run's frames, which keep what the run wrote (whole), and the layer shows ``array`` again. So the
        layer shows the new data with the run's frames in it, and the image's sessions, their Undo (which then reverts
        the run's frames; earlier steps see their frames changed) and Track all keep the array they know: the next
        click or Propagate loses no frame. New data of another shape cannot take the run's frames: the layer keeps it
        as given (the next click starts from it). Returns the words for the run's status ("" when not replaced)."""
        if not self._shows_other_data(state, layout, array):
            return ""
        layer, frames = state.labels, sorted(set(int(t) for t in frames))
        new = masklets(layer, state.image, layout)
        if new is None and isinstance(layer.data, np.ndarray) and layer.data.size == array.size and \
                tuple(n for n in layer.data.shape if n != 1) == tuple(n for n in array.shape if n != 1):
            new = layer.data.reshape(array.shape)  # the layer's shape (the size-1 channel axis shown): the same labels
        if new is None or not isinstance(array, np.ndarray):  # (an array written in place: it could not take them)
            shape = "labels of another shape" if new is None else "other labels"
            return (f"'{layer.name}' was given {shape} during the run: the run's frames are not in them; the next "
                    "click or Propagate starts from the layer as it is now.")
        kept = [(index, np.array(array[index])) for index in map(layout.frame_index_in_labels, frames)]
        np.copyto(array, np.asarray(new), casting="unsafe")
        for index, plane in kept:
            array[index] = plane
        planes = [range(n) if isinstance(item, int) else [item]
                  for n, item in zip(array.shape, layout.frame_index_in_labels(0))]
        for index in product(*planes):  # every plane changed: the caches of what each holds read it again
            tell_written(array, index, array[index])
        show_masklets(layer, state.image, layout, array)
        layer.refresh()
        where = f"frame(s) {frame_ranges(frames)} of the run" if frames else "nothing of the run"
        return f"'{layer.name}' shows the data given to it during the run, with {where} written into it."

    def _ensure_prompt_layers(self) -> None:
        state = self._state
        if state is None:
            return
        made = state.points is None or state.boxes is None
        if state.points is None:
            state.points = add_points_layer(self.viewer, state.image, state.obj_id, state.positive)
            self._watch_points(state)
        if state.boxes is None:
            state.boxes = add_boxes_layer(self.viewer, state.image, state.obj_id)
            self._watch_boxes(state)
        back = self._put_back_removed(state) if made else {}
        if (made and not back) or state.last_prompts is None:  # what Undo of the next step puts back
            state.last_prompts = capture(state)
        self.activate_clicks()

    def _put_back_removed(self, state: ImageState) -> dict:
        """A clicks or boxes layer the user deleted was just made again: its prompts (the ones the session was made
        from) go back into it, and the status line says so; returns {"points" or "boxes": count put back}."""
        self._quiet += 1
        try:
            back = put_back_removed(state)
        finally:
            self._quiet -= 1
        if back:
            what = " and ".join(f"{count} {'click(s)' if kind == 'points' else 'box(es)'}"
                                for kind, count in back.items())
            layers = " and ".join(f"'{layer.name}'" for kind, layer in (("points", state.points),
                                                                          ("boxes", state.boxes)) if kind in back)
            were = "were deleted and are back" if len(back) > 1 else "was deleted and is back"
            message = (f"{layers} {were} with its {what}: the session's objects were made from them. To remove "
                       "prompts, select them and press Delete (or use Delete object).")
            self.status.setText(message)
            show_info(f"SAM 2: {message}")
        return back

    def _watch_points(self, state: ImageState) -> None:
        """Clicks added, moved or deleted on ``state``'s clicks layer segment; T toggles their polarity."""
        state.points.bind_key("t", lambda layer: self._on_toggle_positive(), overwrite=True)
        self._listen_for(state, state.points.events.data, lambda event, s=state: self._refuse_out_of_plane(
            s, s.points, event) or (self._measure_at_first_prompt(s, event), self._on_points_changed(s, event)))

    def _watch_boxes(self, state: ImageState) -> None:
        """Boxes drawn, moved or deleted on ``state``'s boxes layer segment."""
        self._listen_for(state, state.boxes.events.data, lambda event, s=state: self._refuse_out_of_plane(
            s, s.boxes, event) or (self._measure_at_first_prompt(s, event), self._on_boxes_changed(s, event)))

    def _refuse_out_of_plane(self, state: ImageState, layer: Any, event: Any) -> bool:
        """Remove the prompts just added to ``layer`` (``state``'s clicks or boxes) while its image is turned out of
        its plane (:func:`~._image_state.out_of_plane_turn`: the slider's frame is not the frame under the click), and
        say why and what is supported; True when removed (nothing is segmented). Moved or deleted prompts are left to
        the run, which refuses such an image too."""
        if self._quiet or str(getattr(event, "action", "")) != "added" or layer is None or not len(layer.data):
            return False
        if not any(known is state for known in self.states.values()):
            return False
        refused = out_of_plane_turn(state.image)
        if not refused:
            return False
        count = len(layer.data)
        added = getattr(event, "data_indices", None) or (-1,)  # napari says -1 for the one appended last
        added = sorted({int(i) % count for i in added if -count <= int(i) < count})
        what = "click(s)" if same_layer(layer, state.points) else "box(es)"
        self._remove_prompts(layer, added, f"{refused} The {len(added)} {what} just added were removed.")
        return True

    def _adopt_layers(self, state: ImageState) -> None:
        """Give a new image state the clicks, boxes and masklets layers the viewer already holds for its image (left
        by a widget that was closed), so this widget goes on with them and their clicks, not beside a second set. They
        and the image's Tracks layers are placed on the image as it is now (:meth:`_place_on_image`: its scale,
        translate, rotation or shear may have been set while the dock was closed), so each click stays on its pixel
        and a new click lands on the pixel under it."""
        try:
            layout: Optional[StackLayout] = self._layout(state.image)
        except ValueError:  # an impossible axis choice: the masklets are looked for when a run makes them
            layout = None
        self._rename_marked(state.image)  # renamed while the dock was closed: its layers found by their marks
        adopt_layers(self.viewer, state, layout)
        self._place_on_image(state, layout)  # the image may have been moved or turned while the dock was closed
        if state.points is not None:
            self._watch_points(state)
        if state.boxes is not None:
            self._watch_boxes(state)

    def _rename_marked(self, image: Any) -> None:
        """The layers marked in their metadata as ``image``'s (its clicks, boxes and masklets, its own Tracks layers,
        its Track all correction clicks) that are named for another name of the image (it was renamed while the dock
        was closed: "SAM2 clicks [cells]" for the image now named "nuclei") take its name now, so that a reopened dock
        goes on with them (found by name) and they are named as it is. A name the person gave one is kept (only
        "<base> [...]" is renamed), and a name another layer holds already is not taken."""
        from ._track_all_panel import FIX_NAME  # (the panel imports this module)

        bases = {"points": POINTS_NAME, "boxes": BOXES_NAME, "masklets": LABELS_NAME, "fix": FIX_NAME, **TRACKS_NAMES}
        for layer in list(self.viewer.layers):
            role, owner = layer_role(layer)
            base = bases.get(role)
            if base is None or owner != str(image.unique_id) or (role in TRACKS_NAMES and
                                                                  own_tracks_role(layer, image) != role):
                continue  # (a person's copy of a Tracks layer carries the mark too)
            name, new = str(layer.name), layer_name(base, image)
            if name != new and name.startswith(f"{base} [") and name.endswith("]") and new not in self.viewer.layers:
                layer.name = new

    def activate_clicks(self) -> None:
        """Make the current image's clicks layer the active layer, in add mode (a canvas click adds a prompt)."""
        points = self.points_layer
        if points is None or points not in self.viewer.layers or not self._attached:
            return
        points.visible = True
        self.viewer.layers.selection.active = points
        points.mode = "add"


def _joined(items: Iterable[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    items = list(items)
    return " and ".join(items) if len(items) < 3 else f"{', '.join(items[:-1])} and {items[-1]}"


def _quoted(names: Iterable[str]) -> str:
    """"'a'", "'a' and 'b'", "'a', 'b' and 'c'"."""
    return _joined(f"'{name}'" for name in names)


def _turn_key(image: Any) -> tuple:
    """(the image's id, its transform: rotation, shear, affine matrix and scale, rounded) for saying a turn once."""
    parts = (image.rotate, image.shear, image.affine.affine_matrix, image.scale)
    return (str(image.unique_id), b"".join(np.round(np.asarray(part, float), 9).tobytes() for part in parts))
