"""The console's automatic tracking: :func:`track_cells` (``napari_sam2.track_cells(viewer)`` or of an array, a layer
or a file; no Qt of its own: with a viewer it asks the widget's Track all panel).

With a viewer the panel tracks (its masklets and Tracks layers, undoable and correctable there); otherwise a
:class:`~.track_all.TrackAll` of this call's own tracks the frames into a fresh labels array. The options it adds to
the panel's (direction, lost frames, minimum contrast) are those of ``napari-sam2 track --auto``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence

import numpy as np

from sam2_model.frames import check_contrast_limits, check_invert, check_smooth
from sam2_model.prompt_validation import check_count
from sam2_model.tracking import TrackingResult
from sam2_model.tracking.lineage import frames_shifted
from sam2_model.tracking.detection import MIN_CONTRAST, check_cell_diameter, check_min_contrast

from .directions import auto_direction, check_one_way
from .image_size import ImageSizeArg, check_image_size, tracking_size_choice
from .track_all import TrackAll, TrackAllOptions, frame_source

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsoleOptions(TrackAllOptions):
    """The panel's choices and those of ``napari-sam2 track --auto`` that the console's :func:`track_cells` adds:
    reverse (from the start frame down to frame 0, divisions off), max_lost_frames (empty frames before a cell ends,
    an integer >= 1) and min_contrast (detections that stand out less are background; a number >= 0, 0: off); invert
    (dark cells on a bright background: the detector reflects each frame as the session's ``invert`` does, so it finds
    the dark cells the model then tracks)."""

    reverse: bool = False
    max_lost_frames: int = 3
    min_contrast: float = MIN_CONTRAST
    invert: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_count(self.max_lost_frames, "max_lost_frames", 1)
        check_min_contrast(self.min_contrast)
        check_invert(self.invert)

    def tracker_kwargs(self) -> Dict[str, Any]:
        return {**super().tracker_kwargs(), "reverse": bool(self.reverse), "max_lost_frames": int(self.max_lost_frames),
                "min_contrast": float(self.min_contrast), "invert": bool(self.invert)}


def track_cells(target: Any, image: Any = None, *, model: Any = None, checkpoint: Any = None,
                device: str = "auto", image_size: ImageSizeArg = None, frame_axis: int = 0,
                start_frame: Optional[int] = None,
                direction: Optional[str] = None, seeding: str = "blobs",
                cell_diameter: Optional[Sequence[float]] = None,
                redetect_every: int = 5, divisions: Optional[bool] = None, max_lost_frames: int = 3,
                min_contrast: float = MIN_CONTRAST, smooth: float = 0.0,
                contrast_limits: Optional[Sequence[float]] = None,
                progress: Optional[Callable[[int, int], None]] = None, rgb: Optional[bool] = None,
                channel_axis: Optional[int] = None, channel: Any = None,
                fixed: Optional[Dict[int, int]] = None, invert: bool = False,
                on_work: Optional[Callable[[int, float], None]] = None, stop: Any = None,
                frames: Any = None) -> TrackingResult:
    """Detect and track every cell (napari's console, notebooks); returns the :class:`TrackingResult`.

    target: a napari viewer, or an image (array, napari Image layer or path, as :func:`napari_sam2.segment`).
    With a viewer: ``image`` is the Image layer (or its name; default the widget's current image), the
    SAM 2 widget is opened and its model choice used (``model``/``checkpoint`` must stay None), and the
    result lands in the image's masklets layer plus a lineage Tracks layer, undoable and correctable in
    the widget. Otherwise ``model``/``checkpoint`` default to the demo model ("download"); ``model`` is a preset name
    (built on every call) or a model built once with ``sam2_model.build_model`` and used as it is (``net =
    sam2_model.build_model("demo")``, then ``track_cells(stack, model=net)`` for every stack; its checkpoint, device
    and input size are its own: those arguments stay at their defaults, see :func:`.api.check_model_choice`); the axis
    arguments are those of :func:`napari_sam2.segment` (a last axis of 3 or 4 entries of data that are not uint8,
    taken for colour without ``rgb`` or a channel choice, warns as there). result.labels: (T, H, W) uint32 track
    ids (the planes tracked, also with ``fixed``); a single 2-D image ((Y, X), or (Y, X, 3) RGB) gives (Y, X), as from
    :func:`napari_sam2.segment`: its lineage rows then begin and end at frame 0 and ``frames_tracked`` is [0].
    seeding, cell_diameter, redetect_every, divisions as :class:`TrackAllOptions`; ``progress(done, total)`` after
    each frame; ``on_work(frame, fraction)`` between the pieces of model work inside a frame (``fraction`` of that
    frame's work done, in [0, 1], never going down within it): progress within the slow first frame (the detection of
    every cell; minutes on large frames). Stopping early (not with a viewer: its Track all panel's Cancel does it):
    ``stop``, a ``threading.Event`` or a function of no arguments, is checked after every frame and every piece of
    model work; once it is set (or returns true) tracking stops there and the result of the frames done is returned
    (the frame in progress is left out whole: its labels stay 0; ``frames_tracked`` lists the frames done, the tracks
    still followed end "active", and ``note`` says where it stopped). Ctrl-C (KeyboardInterrupt) still raises, as
    Python's rule is, with the result of the frames done as the exception's ``result`` (in a notebook, after an
    interrupt: ``sys.last_value.result``; or ``except KeyboardInterrupt as error: result = error.result``). divisions None (the default): on, except where the frames are known to be a volume's z slices (a
    TIFF whose axes name the frame axis Z, an OME-Zarr whose frame axis is in a length unit; with a viewer, as the
    Track all panel decides it: a frame axis in a length unit or named z, or a source file whose axes say Z): off
    there, said in a UserWarning (cells do not divide along z); True or False is kept whatever the frames are. The options of ``napari-sam2 track --auto`` (see :class:`sam2_model.tracking.CellTracker`):

    * direction: "forward" (None, the default: towards the last frame) or "backward" (towards frame 0) from
      ``start_frame``; "both" is refused, and so is a way with nothing to track (backward from frame 0, forward from
      the last frame; with a viewer that run tracks the start frame alone). Backwards divisions are off whatever
      ``divisions`` says (a division seen backwards is two cells merging, which the tracker does not model).
    * max_lost_frames: empty frames (an integer >= 1, default 3) after which a cell ends ("lost" or "left the field").
    * min_contrast: detections that stand out less than this from the pixels around them are background (a number >=
      0, default ``MIN_CONTRAST``; 0: off).
    * smooth / contrast_limits: as in :func:`napari_sam2.segment`: blur every frame by a Gaussian of this many pixels
      (0: off; 8 on the CTC MSC time-lapse), and map these (low, high) grey values to black and white (None: the
      stack's percentiles), before the model sees it. Not with a viewer: it tracks the frames as the widget reads
      them (its "Smooth frames (px)" control).
    * invert: dark cells on a bright background (brightfield, phase contrast, stained histology): the model sees 1 - x
      of each frame's [0, 1] values, as in :func:`napari_sam2.segment`, and the detector looks for dark cells (the
      ones the model then tracks). Not with a viewer: there the widget's "Invert (dark objects)" box decides.

    cell_diameter: (min, max) cell diameter in pixels; None (the default): the detector's (8, 40), and the cells'
    size is not known (below).

    image_size: the model's input size (a multiple of 32), "auto" or None (the model's own); not with a viewer (the
    widget's). "auto" is picked as ``napari-sam2 track --auto`` and ``batch --auto`` pick it
    (:func:`.image_size.tracking_size_choice`): from ``cell_diameter`` where it is given (the user's word on the
    cells), else from the objects measured on the start frame (a fuller sampled slice where the start slice of a
    z-stack holds too little); the choice is logged (logger ``napari_sam2.console_tracking``, INFO), saying which.

    frames: track part of a movie (not with a viewer): (first, last), both included (as ``napari-sam2 evaluate
    --frames A-B``; numpy integers too), or a range of step 1; None (default): every frame. Only those frames are read
    (a file path stays read lazily, a frame at a time; the default contrast limits are sampled from them), and frame
    numbers stay the movie's: ``start_frame`` is a frame of the range (None, the default: its first frame; without
    ``frames``, frame 0), and result.labels is (last - first + 1, H, W), its index ``i`` the movie's frame ``first +
    i``, while ``frames_tracked``, the lineage's begin and end, ``on_work``'s frame, a stopped run's ``note`` and the
    warnings about blank frames (as they come) are the movie's frame numbers (a track reaching ``last``
    ends "end of stack"); ``track_export.export_tracking(result, ...)`` writes it numbered from 0, as ``napari-sam2
    track --frames A-B``. A reversed range, one outside the movie, or numbers that are not integers are a ValueError
    before the model is built.

    Options are checked (ValueError naming them) before a model is built or a frame is read; ``start_frame`` is
    checked against the frames of the stack before the model is built, with a viewer too (the frames along the
    widget's propagated axis, of ``image``, which becomes the widget's current image). Without a viewer the stack is
    read as :func:`napari_sam2.segment` reads it: a TIFF of axes YXT (or ``frame_axis`` naming the last axis) frames
    first, frames thinner than 8 px and bool images refused.
    """
    way = auto_direction(direction, "console")
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be a function called with (frames done, frames to do), or None; got "
                         f"{progress!r}")
    if on_work is not None and not callable(on_work):
        raise ValueError(f"on_work must be a function called with (frame, fraction of its work done), or None; got "
                         f"{on_work!r:.200}")
    should_stop = stop_check(stop)
    if model is not None:
        from .api import check_model_choice

        check_model_choice(model, checkpoint, device, image_size)
    check_image_size(image_size)
    diameter = None if cell_diameter is None else check_cell_diameter(cell_diameter)  # the user's word on the cells
    options = ConsoleOptions(seeding, diameter or (8.0, 40.0), redetect_every,
                             True if divisions is None else divisions,
                              reverse=way == "backward", max_lost_frames=max_lost_frames, min_contrast=min_contrast)
    limits = check_contrast_limits(contrast_limits)
    sigma = check_smooth(smooth)
    flip = check_invert(invert)
    if hasattr(target, "window") and hasattr(target, "layers"):  # a napari viewer
        if frames is not None:
            raise ValueError("frames: with a viewer the Track all panel tracks the whole stack; pass the array, layer "
                             "or file instead of the viewer to track part of it")
        start_frame = 0 if start_frame is None else start_frame
        if model is not None or checkpoint is not None or image_size is not None:
            raise ValueError("model/checkpoint/image_size: with a viewer the widget's model choice and input size are "
                             "used; choose them there (or pass an array instead of the viewer)")
        if stop is not None or on_work is not None:
            raise ValueError("stop/on_work: with a viewer the Track all panel runs the tracking (its progress bar moves "
                             "within frames, and its Cancel stops it keeping the frames done); pass an array instead "
                             "of the viewer to stop it from a script")
        given = [name for name, value in (("smooth", sigma), ("contrast_limits", limits), ("invert", flip)) if value]
        if given:
            raise ValueError(f"{'/'.join(given)}: with a viewer the frames are tracked as the widget reads them (its "
                             "'Smooth frames (px)' and 'Invert (dark objects)' controls, the stack's contrast limits); "
                             "set them there (or pass an array instead of the viewer)")
        from .api import get_widget

        widget = get_widget(target)
        shown = widget.image_combo.currentText()
        count = frames_in_widget(widget, image)
        if count is not None:  # else track_now says what is missing (no image, a busy widget)
            try:
                check_start_frame(start_frame, count)
            except ValueError:
                widget.image_combo.setCurrentText(shown)  # refused: the widget stays on the image it showed
                raise
        if divisions is None:  # the widget's image is the one to track now: divisions off where its frames are z
            from .api import auto_divisions

            on, said = auto_divisions(None, widget.track_all.frames_z_words())
            if said:
                warnings.warn(said, stacklevel=2)
                options = dataclasses.replace(options, divisions=on)
        if getattr(widget, "invert_check", None) is not None and widget.invert_check.isChecked():
            options = dataclasses.replace(options, invert=True)  # the detector finds the dark cells the model tracks
        result = widget.track_all.track_now(image, start_frame, options, progress)
        return as_image(result, widget.controller is not None and widget.controller.layout.frame_axis is None)
    from .api import (API_NAMES, FrameRange, auto_divisions, check_dtype, colour_guess, frame_seen, frames_are_z,
                      check_way_in_range, model_name, model_to_use, opened_image, resolve_axes,
                      stack_frame_range)
    from .axis_moves import numbered_as_read, read_rows_columns_last
    from .layout import FrameView

    is_layer = hasattr(target, "rgb") and hasattr(target, "data")
    # a pyramid's level 0; a file of one 2-D image as that image; a file opened here is closed when tracking ends
    with opened_image(target) as data:
        check_dtype(data.dtype)
        rgb = bool(target.rgb) if is_layer and rgb is None else rgb
        stack_shape = tuple(data.shape)
        data, given, moved = read_rows_columns_last(data, dict(frame_axis=frame_axis, rgb=rgb, channel_axis=channel_axis,
                                                               channel=channel, fixed=fixed), API_NAMES)  # e.g. YXT
        with numbered_as_read(moved, stack_shape):
            axes = resolve_axes(data.shape, axes=getattr(data, "axes", None), **given)
        if moved is not None:
            warnings.warn(f"{moved.describe(stack_shape)}; the labels are frames first, as read", stacklevel=2)
        guess = colour_guess(data.shape, data.dtype, given.get("rgb"), axes, source=target)  # 16-bit "RGB": channels, more often
        if guess is not None:
            warnings.warn(guess, stacklevel=2)
        layout = axes.layout
        chosen = stack_frame_range(frames, layout, data.shape)  # the movie's frame numbers; None: every frame
        start_frame = (0 if chosen is None else chosen.start) if start_frame is None else start_frame
        check_start_frame(start_frame, layout.num_frames(data.shape), chosen)
        first = 0 if chosen is None else chosen.start
        if chosen is not None:  # read only the range's frames, numbered from its first (shifted back at the end)
            data = FrameRange(data, layout.frame_axis, chosen)
        frames = FrameView(data, layout)
        if chosen is None:
            check_one_way(start_frame, len(frames), way, f"start_frame {start_frame}", "console")
        else:
            check_way_in_range(start_frame, chosen, way, "start_frame")
        start_frame -= first  # from here, numbered within the frames read
        session_options = dict(axes.session_options)
        if limits is not None:
            session_options["contrast_limits"] = limits
        if sigma:
            session_options["smooth"] = sigma
        if flip:
            session_options["invert"] = True
            options = dataclasses.replace(options, invert=True)  # the detector finds the dark cells the model tracks
        stored = target if moved is None and isinstance(target, (str, os.PathLike)) else None  # a file read as stored
        through_z = frames_are_z(data, layout, _file_calibration(stored, data, layout), stored)
        on, said = auto_divisions(divisions, through_z)
        if said:
            warnings.warn(said, stacklevel=2)
            options = dataclasses.replace(options, divisions=on)
        if image_size is not None:
            frame_seen(data, axes, start_frame)  # the start frame checked (finite) as every later read checks it
        size = None if image_size is None else check_image_size(image_size)
        if size == "auto":
            choice = tracking_size_choice(frames, model_name(model or "demo"), start_frame, session_options,
                                          through_z is not None, diameter)
            _LOG.info("image_size auto: %s", choice.describe())
            size = choice.image_size
        net = model_to_use(model or "demo", checkpoint or "download", device, size)
        tracking = TrackAll(np.zeros(layout.labels_shape(data.shape), np.uint32), len(frames),
                            layout.frame_index_in_labels)
        source = frame_source(frames, net, session_options)
        source.first_frame = first  # the sessions' warnings name the movie's frames
        run = tracking.track(net, source, start_frame, options)
        return _tracked(tracking, run, first, layout.frame_axis is None, progress, on_work, should_stop)


def _tracked(tracking: TrackAll, run: Any, first: int, single_image: bool,
             progress: Optional[Callable[[int, int], None]], on_work: Optional[Callable[[int, float], None]],
             should_stop: Callable[[], bool]) -> TrackingResult:
    """:func:`track_cells`' run of ``tracking`` to its end (or until ``should_stop()``, or Ctrl-C: the error then
    carries ``result``), the result numbered as the movie from its frame ``first`` on (:func:`in_movie`)."""
    planned = 0  # the frames this run tracks (its "plan" step says)
    try:
        for kind, frame, done, total in run:
            if kind == "plan":
                planned = total
            elif kind == "work" and on_work is not None:
                on_work(frame + first, done / total)  # the movie's frame number
            elif kind == "frame" and progress is not None:
                progress(len(tracking.history[-1].frames), total)
            finished = kind == "frame" and len(tracking.history[-1].frames) == planned  # its end steps to come
            if kind in ("work", "frame") and not finished and should_stop():
                run.close()  # the frame in progress is left out whole (TrackAll.track)
                return in_movie(as_image(stopped_result(tracking, planned, "stop was set", first), single_image), first)
    except KeyboardInterrupt as error:
        run.close()
        stopped = in_movie(as_image(stopped_result(tracking, planned, "interrupted", first), single_image), first)
        error.result = stopped  # type: ignore[attr-defined]
        raise
    return in_movie(as_image(tracking.result(), single_image), first)


def stop_check(stop: Any) -> Callable[[], bool]:
    """``stop`` of :func:`track_cells` as a function that says whether to stop now: a ``threading.Event`` (set: stop),
    a function of no arguments (true: stop), or None (never). ValueError naming what is accepted otherwise."""
    if stop is None:
        return lambda: False
    if callable(getattr(stop, "is_set", None)):
        return lambda: bool(stop.is_set())
    if callable(stop):
        return lambda: bool(stop())
    raise ValueError(f"stop must be a threading.Event or a function of no arguments (set / true: stop tracking and "
                     f"return the frames done), or None; got {stop!r:.200}")


def stopped_result(tracking: TrackAll, total: int, why: str, first: int = 0) -> TrackingResult:
    """The result of a run stopped part-way (``why``: "stop was set", "interrupted"): the frames done, whose tracks
    still followed end "active", and a ``note`` that says where it stopped (in the movie's numbers: frames tracked
    numbered from its frame ``first``)."""
    result = tracking.result()
    done = tracking.history[-1].frames if tracking.history else []  # in the order tracked (empty runs are dropped)
    where = f"after frame {done[-1] + first}" if done else "before any frame was done"
    note = (f"tracking stopped ({why}) {where}: {len(done)} of {total} frames tracked (frames_tracked); the other "
            "frames' labels are 0 and tracks still followed end 'active'")
    return dataclasses.replace(result, note=note)


def _file_calibration(path: Any, data: Any, layout: Any) -> Any:
    """The calibration of the file at ``path`` (:func:`.file_calibration.stack_calibration`; its OME-Zarr axis names
    read too); None without a path (arrays, layers, a stack read with its axes moved)."""
    if path is None:
        return None
    from .file_calibration import stack_calibration, stack_letters

    return stack_calibration(path, stack_letters(path, data), layout)


def check_start_frame(start_frame: Any, num_frames: int, frames: Optional[range] = None) -> None:
    """ValueError naming ``start_frame`` unless it is a frame of the stack (an integer 0..num_frames-1) and, where
    ``frames`` (the range tracked, the movie's numbers) is given, of that range."""
    whole = isinstance(start_frame, (int, np.integer)) and not isinstance(start_frame, bool)
    if not whole or not 0 <= start_frame < num_frames:
        raise ValueError(f"start_frame must be a frame of the stack, an integer 0..{num_frames - 1}, got "
                         f"{start_frame!r}")
    if frames is not None and start_frame not in frames:
        raise ValueError(f"start_frame {start_frame} is outside frames=({frames.start}, {frames.stop - 1}): it must be "
                         f"a frame of the range tracked (the movie's numbers), {frames.start}..{frames.stop - 1}")


def in_movie(result: TrackingResult, first: int) -> TrackingResult:
    """``result`` of the frames from the movie's frame ``first`` on, tracked numbered from 0, with its frame numbers
    the movie's: ``frames_tracked`` and the lineage's begin and end shifted by ``first`` and ``first_frame`` set to it
    (the labels stay as they are: index 0 of their frame axis is frame ``first``; ``napari_sam2.measure`` reads
    ``first_frame`` to number its rows as the movie, ``tracks_layer_data`` its t, and the writers to number their files
    from 0 again: :func:`.track_export.export_tracking`); as it is for ``first`` 0."""
    if not first:
        return result
    return dataclasses.replace(result, lineage=frames_shifted(result.lineage, first),
                               frames_tracked=[t + first for t in result.frames_tracked],
                               first_frame=first, note=note_in_movie(result.note, first))


def note_in_movie(note: str, first: int) -> str:
    """The tracker's note (:attr:`sam2_model.tracking.CellTracker.note`: "no cells were detected on frames 0-3: ...")
    of frames read from the movie's frame ``first`` on (numbered from 0) with its frame numbers the movie's ("... on
    frames 4-7: ..." for ``first`` 4): what :func:`track_cells`, ``napari-sam2 track --auto --frames A-B`` and ``batch
    --frames A-B`` say. Any other note, or ``first`` 0, as it is."""
    def shifted(match: "re.Match[str]") -> str:
        numbers = "-".join(str(int(n) + first) for n in match.group(2).split("-"))
        return f"{match.group(1)}{numbers}:"

    return re.sub(r"^(no cells were detected on frames? )(\d+(?:-\d+)?):", shifted, note)


def frames_in_widget(widget: Any, image: Any = None) -> Optional[int]:
    """How many frames the SAM 2 ``widget``'s Track all would track of ``image`` (an Image layer or its name; None:
    the widget's current image), along the axis its axes panel propagates; the image named becomes the widget's
    current one (as the run makes it). None where the run itself will refuse (a busy widget, no such image, axes
    that clash): it says why, before any model work."""
    if widget.busy() or widget.track_all.worker is not None:
        return None
    if image is not None:
        name = getattr(image, "name", image)
        layers = widget.viewer.layers
        if not isinstance(name, str) or name not in layers or layers[name].__class__.__name__ != "Image":
            return None
        widget.image_combo.setCurrentText(name)
    layer = widget.image_layer
    if layer is None:
        return None
    try:
        layout = widget.axes.layout(layer, widget.viewer.dims.current_step)
    except ValueError:
        return None
    return layout.num_frames(layer.data.shape)


def as_image(result: TrackingResult, single_image: bool) -> TrackingResult:
    """``result`` with (Y, X) labels where one 2-D image was tracked (its (1, Y, X) plane), else as it is."""
    if single_image and result.labels.ndim == 3 and len(result.labels) == 1:
        return dataclasses.replace(result, labels=result.labels[0])
    return result
