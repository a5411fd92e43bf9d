"""The model's input size as the user gives it: a number, "auto" (from the objects' size), or None (the preset).

Shared by :func:`napari_sam2.segment`, the CLI's ``--image-size N|auto`` and the widget's "Input size"
control; the rule itself is :func:`sam2_model.input_size.suggest_image_size`.

Which frame "auto" (input size and object windows) measures is the caller's: the first prompted frame for
:func:`napari_sam2.segment` and ``napari-sam2 track --prompts`` (:func:`napari_sam2.api.prompted_frame`), the slice
shown (then the one clicked first) in the widget, the start frame for ``--auto`` (where no cell diameter is given:
one given decides, :func:`tracking_size_choice`); frame 0 only without prompts. In
a z-stack frame 0 is often an empty slice above the sample, whose noise measures as tiny objects: where tracking
starts on a frame that holds too little to measure, :func:`auto_image_size_from` measures the fullest of a few
frames sampled through the stack instead, and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from sam2_model.config import get_config
from sam2_model.frames_io import sample_indices
from sam2_model.input_size import (ESTIMATE_CROP, estimate_object_diameter, measured_spread, median_of_most,
                                   prompted_object_widths, suggest_image_size)

AUTO = "auto"
#: what ``image_size=`` accepts: a multiple of 32, "auto", or None (the model's preset size)
ImageSizeArg = Union[int, str, None]


@dataclass(frozen=True)
class SizeChoice:
    """An input size picked for a frame: the size, the object width (frame px) it was picked from, and the index of
    the frame measured where the caller said it (None: not said)."""

    image_size: int
    object_diameter: float  # NaN: no objects were found and the preset size was kept
    frame_shape: tuple
    frame_index: Optional[int] = None
    note: str = ""  # why frame_index was measured and not the frame asked for ("": it was that frame)
    #: the (min, max) cell diameter in frame px the user gave, which picked the size (None: measured on a frame)
    given_diameter: Optional[Tuple[float, float]] = None

    def describe(self) -> str:
        """One line for the user, e.g. "input size 512 px (objects ~9.0 px wide in 1024 x 1024 frames, measured on
        frame 8)", or where the user's cell diameter picked it "input size 512 px (from the cell diameter 4-48 px you
        gave: its smallest cells, 4 px wide, in 256 x 256 frames)"."""
        height, width = self.frame_shape[:2]
        if self.given_diameter is not None:
            low, high = self.given_diameter
            return (f"input size {self.image_size} px (from the cell diameter {low:g}-{high:g} px you gave: its "
                    f"smallest cells, {low:g} px wide, in {height} x {width} frames)")
        where = "the frame measured" if self.frame_index is None else f"frame {self.frame_index}"
        why = f": {self.note}" if self.note else ""
        if math.isnan(self.object_diameter):
            return f"input size {self.image_size} px (the model's; no objects found to measure in {where}{why})"
        on = "" if self.frame_index is None else f", measured on frame {self.frame_index}"
        return (f"input size {self.image_size} px (objects ~{self.object_diameter:.1f} px wide in "
                f"{height} x {width} frames{on}{why})")


@dataclass(frozen=True)
class FrameSample:
    """What the "auto" choices measure of a frame that is not read whole (a big or lazy frame on napari's GUI
    thread): its central ``ESTIMATE_CROP`` px at most (all that the object measure reads, so the result is the
    whole frame's) and the whole frame's (H, W), which the sizes are picked for."""

    pixels: np.ndarray  # (h, w) or (h, w, C): the central crop
    frame_shape: Tuple[int, int]  # (H, W) of the whole frame
    frame_index: Optional[int] = None  # which frame (along the propagated axis) it is of, where known

    @staticmethod
    def side() -> int:
        """The side of the central crop to read (px)."""
        return ESTIMATE_CROP


def _pixels_and_shape(frame: Any) -> Tuple[np.ndarray, Tuple[int, int]]:
    """(pixels to measure with channels over 4 averaged, the whole frame's (H, W)) of an array or a FrameSample."""
    if isinstance(frame, FrameSample):
        array, shape = np.asarray(frame.pixels), tuple(int(n) for n in frame.frame_shape[:2])
    else:
        array = np.asarray(frame)
        shape = tuple(int(n) for n in array.shape[:2])
    if array.ndim == 3 and array.shape[-1] > 4:
        array = array.mean(axis=-1)
    return array, shape  # type: ignore[return-value]


def frame_as_seen(frame: Any, session_options: Mapping[str, Any]) -> np.ndarray:
    """``frame`` (H, W) or (H, W, C) as the model is shown it, for measuring objects ("auto" input size and object
    windows): the channel picked (``channel=<index>``) or the channels combined (``composite="mean"|"max"``), so that
    the objects of the channel segmented are measured, not every channel mixed; (H, W) or (H, W, 3) colour as is."""
    frame = np.asarray(frame)
    if "channel" in session_options:
        return frame[..., int(session_options["channel"])]
    if session_options.get("composite") == "max":
        return frame.max(axis=-1)
    if session_options.get("composite") == "mean":
        return frame.mean(axis=-1)
    return frame


def read_as_seen(frames: Any, index: int, session_options: Mapping[str, Any]) -> np.ndarray:
    """Frame ``index`` of ``frames`` (a sequence of (H, W[, C]) frames, e.g. a :class:`~napari_sam2.layout.FrameView`)
    as the model is shown it (:func:`frame_as_seen`), reading only the channel picked where ``frames`` is indexed
    (T, H, W, C) (``frames[index, :, :, channel]``: a FrameView reads that channel alone from a lazy stack, not every
    channel); composites read the channels they combine."""
    channel = session_options.get("channel")
    if channel is not None and len(getattr(frames, "shape", ())) == 4:
        return np.asarray(frames[int(index), :, :, int(channel)])
    return frame_as_seen(frames[int(index)], session_options)


def check_image_size(image_size: ImageSizeArg, name: str = "image_size") -> ImageSizeArg:
    """``image_size`` as given, checked: None, "auto" (any case) or a positive multiple of 32."""
    if image_size is None:
        return None
    if isinstance(image_size, str):
        word = image_size.strip().lower()
        if word == AUTO:
            return AUTO
        if word.isdigit():
            image_size = int(word)
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        if image_size > 0 and image_size % 32 == 0:
            return int(image_size)
    raise ValueError(f"{name} must be a positive multiple of 32 (e.g. 256, 512, 1024), 'auto' (picked from the "
                     f"objects' size), or left out / None (the model's own size); got {image_size!r}")


def auto_image_size(frame: Any, model: str, frame_index: Optional[int] = None) -> SizeChoice:
    """The suggested input size of ``model`` for frames like ``frame`` ((H, W) or (H, W, C), any numeric dtype, or a
    :class:`FrameSample` of one); ``frame_index``: which frame it is (said by :meth:`SizeChoice.describe`; default
    the sample's own, else unsaid).

    Frames with more than 4 channels are averaged over their last axis first. When no object can be
    measured (a flat frame) the preset size is kept.
    """
    array, shape = _pixels_and_shape(frame)
    if frame_index is None and isinstance(frame, FrameSample):
        frame_index = frame.frame_index
    diameter = estimate_object_diameter(array)
    if math.isnan(diameter):
        return SizeChoice(get_config(model).image_size, diameter, shape, frame_index)
    return SizeChoice(suggest_image_size(diameter, shape, model), diameter, shape, frame_index)


#: frames sampled through a stack (its first and last among them) when the start frame holds too little to measure
SAMPLED_FRAMES = 8
#: the start frame holds too little when its grey values spread less than this fraction of the sampled frames' most
NEARLY_EMPTY = 0.5


def grey_spread(frame: Any) -> float:
    """How far the grey values of ``frame`` ((H, W) or (H, W, C) as seen, or a :class:`FrameSample`) spread: the
    difference of their 99.8 and 1 percentiles (the ones the object measure normalises by) over the central
    :data:`~sam2_model.input_size.ESTIMATE_CROP` px, channels averaged; NaN where those hold NaN or infinity. An empty
    slice above a sample spreads its noise only, one through the cells their brightness above the background."""
    array, _ = _pixels_and_shape(frame)
    side = ESTIMATE_CROP
    top, left = max(0, (array.shape[0] - side) // 2), max(0, (array.shape[1] - side) // 2)
    array = array[top:top + side, left:left + side]
    if array.ndim == 3:
        array = array.mean(axis=-1)
    array = np.asarray(array, np.float64)
    if not np.isfinite(array).all():
        return float("nan")
    low, high = np.percentile(array, (1.0, 99.8))
    return float(high - low)


def auto_image_size_from(frames: Sequence[Any], model: str, start: int = 0,
                         session_options: Optional[Mapping[str, Any]] = None, through_z: bool = False) -> SizeChoice:
    """The "auto" input size for tracking from frame ``start`` of ``frames`` (a sequence of (H, W[, C]) frames, e.g.
    a :class:`~napari_sam2.layout.FrameView`, read lazily; ``session_options``: the channel picked or combined, as in
    :func:`frame_as_seen`): measured on the start frame where it holds objects, as :func:`auto_image_size` does.

    In a z-stack (``through_z``: the frames are a volume's slices) the start slice is often empty or nearly so (the
    top of the volume): its noise measures as tiny objects, or nothing measures (the model's size is kept). There,
    where the start frame's grey values spread less than :data:`NEARLY_EMPTY` of the most that :data:`SAMPLED_FRAMES`
    frames sampled through the stack spread (:func:`grey_spread`), or no object can be measured on it, the sampled
    frame that spreads most is measured instead: the choice's ``frame_index`` says which, and its ``note`` why
    (:meth:`SizeChoice.describe`). A time-lapse is measured on its start frame (a dimmer first frame of a rising
    fluorescence is still its cells), unless no object can be measured on it. The rule of ``napari-sam2 track
    --auto``, batch runs with ``--auto`` and :func:`napari_sam2.track_cells` where no cell diameter is given
    (:func:`tracking_size_choice`).
    """
    options = session_options or {}
    start = int(start)
    seen = {start: read_as_seen(frames, start, options)}
    first = auto_image_size(seen[start], model, start)
    count = len(frames)
    if count < 2 or not (through_z or math.isnan(first.object_diameter)):
        return first  # (frames are not read where they cannot change the choice)
    for index in sample_indices(count, SAMPLED_FRAMES):
        if index not in seen:
            seen[index] = read_as_seen(frames, index, options)
    spreads = {index: grey_spread(frame) for index, frame in seen.items()}
    finite = {index: value for index, value in spreads.items() if math.isfinite(value)}
    if not finite:
        return first
    fullest = max(finite, key=lambda index: (finite[index], -abs(index - start)))
    start_spread = finite.get(start, float("nan"))
    nearly_empty = not start_spread >= NEARLY_EMPTY * finite[fullest]
    if fullest == start or not (nearly_empty or math.isnan(first.object_diameter)):
        return first
    other = auto_image_size(seen[fullest], model, fullest)
    if math.isnan(other.object_diameter):
        return first
    reason = ("holds too little to measure" if nearly_empty else "holds no object to measure")
    note = (f"the start frame {start} {reason}, so the fullest of {len(seen)} frames sampled through the stack was "
            "measured")
    return SizeChoice(other.image_size, other.object_diameter, other.frame_shape, fullest, note)


def tracking_size_choice(frames: Sequence[Any], model: str, start: int = 0,
                         session_options: Optional[Mapping[str, Any]] = None, through_z: bool = False,
                         cell_diameter: Optional[Sequence[float]] = None) -> SizeChoice:
    """The "auto" input size for finding and tracking every cell from frame ``start`` of ``frames``: the one rule of
    ``napari-sam2 track --auto``, ``napari-sam2 batch --auto`` and :func:`napari_sam2.track_cells`.

    A cell diameter the user gave (``cell_diameter``: (min, max) frame px; None where they gave none, the detector's
    default then being no word on these cells) decides: the size at which its smallest cells are wide enough
    (:func:`~sam2_model.input_size.suggest_image_size` of min, for the (H, W) of frame ``start``), as the user said
    how large the cells are (the frames' texture can measure far from it: ~5 px on MSC for 40-160 px cells).
    Otherwise the objects are measured on the frames (:func:`auto_image_size_from`). The choice's ``describe()``
    says which."""
    if cell_diameter is None:
        return auto_image_size_from(frames, model, start, session_options, through_z)
    low, high = (float(value) for value in cell_diameter)
    known = tuple(getattr(frames, "shape", ()))  # (T, H, W[, C]): no frame read for its shape
    shape = tuple(int(n) for n in (known[1:3] if len(known) >= 3 else np.shape(frames[int(start)])[:2]))
    return SizeChoice(suggest_image_size(low, shape, model), low, shape, given_diameter=(low, high))


def resolve_image_size(image_size: ImageSizeArg, frame: Any, model: str, name: str = "image_size") -> Optional[int]:
    """``image_size`` with "auto" replaced by the suggestion for ``frame`` (None stays None: the preset)."""
    checked = check_image_size(image_size, name)
    if checked == AUTO:
        return auto_image_size(frame, model).image_size
    return checked  # type: ignore[return-value]


#: what ``object_window=`` accepts: a window side in frame px (at least 8), "auto" (from the objects' size) or
#: None / "off" (each object on the whole frame)
ObjectWindowArg = Union[int, str, None]
OFF = "off"


def check_object_window(value: ObjectWindowArg, name: str = "object_window") -> ObjectWindowArg:
    """``value`` as given, checked: None ("off"), "auto" (any case) or a window side of at least 8 frame px."""
    if value is None:
        return None
    if isinstance(value, str):
        word = value.strip().lower()
        if word in (AUTO, OFF):
            return None if word == OFF else AUTO
        if word.isdigit():
            value = int(word)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 8:
        return int(value)
    raise ValueError(f"{name} must be a window side in frame pixels (at least 8, e.g. 192), 'auto' (from the "
                     f"objects' size: windows only where objects are small against the frame) or 'off' / None "
                     f"(every object on the whole frame); got {value!r}")


@dataclass(frozen=True)
class PromptSpots:
    """Where the objects were prompted on the frame "auto" object windows measure: one (x, y) spot per object, in the
    whole frame's pixels (its first positive click, or its box's centre), and each spot's box (x0, y0, x1, y1), or
    NaNs for a click. The objects under the spots are measured (:func:`object_window_choice`), not the frame's every
    piece: on frames where a few large cells lie among many noise specks the frame's median width is the specks'."""

    points: np.ndarray  # (N, 2) float (x, y)
    boxes: np.ndarray  # (N, 4) float (x0, y0, x1, y1); NaN rows for clicks

    def __len__(self) -> int:
        return len(self.points)

    @staticmethod
    def of(prompts: Sequence[Any], frame: Optional[int] = None) -> "PromptSpots":
        """The spots of ``prompts`` (:class:`~napari_sam2.prompts.FramePrompt`-like: ``frame``, ``obj_id``,
        ``points`` (N, 2) (x, y), ``labels``, ``box``) on ``frame`` (None: every prompt), one per object: its first
        positive click, else its box's centre (mask prompts and negative clicks only: no spot)."""
        spots = {}
        for prompt in prompts:
            if frame is not None and int(prompt.frame) != int(frame):
                continue
            obj = int(prompt.obj_id)
            points = np.asarray(getattr(prompt, "points", np.zeros((0, 2))), np.float64).reshape(-1, 2)
            labels = np.asarray(getattr(prompt, "labels", np.zeros(0)), np.int64).reshape(-1)
            positive = points[labels[:len(points)] > 0] if len(labels) else points[:0]
            box = getattr(prompt, "box", None)
            if len(positive) and (obj not in spots or not math.isnan(spots[obj][1][0])):
                spots[obj] = (positive[0], np.full(4, np.nan))
            elif box is not None and obj not in spots:
                corners = np.asarray(box, np.float64).reshape(4)
                spots[obj] = (np.array([(corners[0] + corners[2]) / 2, (corners[1] + corners[3]) / 2]), corners)
        return PromptSpots.from_pairs(list(spots.values()))

    @staticmethod
    def of_rows(clicks: Any, boxes: Any, frame: int) -> "PromptSpots":
        """The spots of a prompts table's rows on ``frame``: clicks (frame, y, x, label, obj_id), boxes (frame, y0,
        x0, y1, x1, obj_id) as :func:`~napari_sam2.prompts_csv.read_prompts` gives them, one per object (its first
        positive click, else its first box)."""
        spots = {}
        for row in clicks:
            if int(row[0]) == int(frame) and float(row[3]) > 0 and int(row[4]) not in spots:
                spots[int(row[4])] = (np.array([float(row[2]), float(row[1])]), np.full(4, np.nan))
        for row in boxes:
            if int(row[0]) == int(frame) and int(row[5]) not in spots:
                y0, x0, y1, x1 = (float(v) for v in row[1:5])
                corners = np.array([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)])
                spots[int(row[5])] = (np.array([(x0 + x1) / 2, (y0 + y1) / 2]), corners)
        return PromptSpots.from_pairs(list(spots.values()))

    @staticmethod
    def from_pairs(pairs: Sequence[Tuple[np.ndarray, np.ndarray]]) -> "PromptSpots":
        """From (point (2,), box (4,)) pairs."""
        points = np.array([point for point, _ in pairs], np.float64).reshape(-1, 2)
        boxes = np.array([box for _, box in pairs], np.float64).reshape(-1, 4)
        return PromptSpots(points, boxes)


@dataclass(frozen=True)
class WindowChoice:
    """An "auto" object window: its side (None: whole frames), the object width (frame px) it was picked from (NaN:
    none measured), what was measured ("prompts": the objects under the prompts; "frame": every object of the frame
    measured; "" nothing: another model's or the value given), how many prompted objects were read of how many, and
    the frame's (H, W)."""

    side: Optional[int]
    object_diameter: float = float("nan")
    measured: str = ""
    read: int = 0
    prompted: int = 0
    frame_shape: Tuple[int, ...] = ()

    def measure_words(self) -> str:
        """What was measured, e.g. "the 4 prompted objects read as ~29 px wide" or "objects read as ~4.5 px wide
        (the frame's; the prompted objects could not be read: they lie on clumps or the background)"; "" where
        nothing was measured."""
        if math.isnan(self.object_diameter):
            return "no objects found to measure" if self.measured else ""
        width = f"~{self.object_diameter:.0f}" if self.object_diameter >= 10 else f"~{self.object_diameter:.1f}"
        if self.measured == "prompts":
            many = f"{self.read} of {self.prompted}" if self.read < self.prompted else f"{self.read}"
            return f"the {many} prompted object{'s' * (self.prompted != 1)} read as {width} px wide"
        why = (" (the frame's objects; the prompted ones could not be read: on clumps of touching objects or the "
               "background)" if self.prompted else "")
        return f"objects read as {width} px wide{why}"


def object_window_choice(value: ObjectWindowArg, frame: Any, model: str, image_size: int,
                         name: str = "object_window", prompts: Optional[PromptSpots] = None) -> WindowChoice:
    """``value`` with "auto" replaced by :func:`sam2_model.windows.window_side` for the objects in ``frame`` ((H, W[,
    C]) or a :class:`FrameSample`) at an ``image_size`` px model input, with what was measured: None where they are
    not small against the frame, where none can be measured, and for the official presets (trained at 1024 px on
    whole frames; windows are measured with the demo model only).

    With ``prompts`` (the objects prompted on ``frame``: :class:`PromptSpots`, whole-frame pixels) the objects under
    them are measured (:func:`~sam2_model.input_size.prompted_object_widths`; a box's object at most as wide as the
    box's shorter side, and that wide where nothing under it reads) and the window sized for their median width,
    where at least half of them read; else (and without prompts) the frame's objects are
    (:func:`~sam2_model.input_size.estimate_object_diameter`). On a :class:`FrameSample` only spots on its central
    crop are measured."""
    checked = check_object_window(value, name)
    if checked != AUTO:
        return WindowChoice(checked)  # type: ignore[arg-type]
    if model != "demo":
        return WindowChoice(None)
    array, shape = _pixels_and_shape(frame)
    diameter, measured, read, count = float("nan"), "frame", 0, 0
    if prompts is not None and len(prompts):
        diameter, read, count = _prompted_diameter(array, shape, prompts)
        measured = "prompts" if not math.isnan(diameter) else "frame"
    if math.isnan(diameter):
        diameter = estimate_object_diameter(array)
    if math.isnan(diameter):
        return WindowChoice(None, diameter, measured, read, count, shape)
    from sam2_model.windows import window_side  # torch (the windowed predictor's module): loaded with the model by now

    return WindowChoice(window_side(diameter, shape, int(image_size)), diameter, measured, read, count, shape)


def _prompted_diameter(array: np.ndarray, shape: Tuple[int, int], prompts: PromptSpots) -> Tuple[float, int, int]:
    """(median width of the objects under ``prompts`` in ``array`` (the frame, or a :class:`FrameSample`'s central
    crop of a frame of (H, W) ``shape``: spots off it are left out), how many read, how many were measured); NaN where
    fewer than half of those measured read."""
    top, left = (shape[0] - array.shape[0]) // 2, (shape[1] - array.shape[1]) // 2  # a FrameSample's central crop
    points = np.asarray(prompts.points, np.float64).reshape(-1, 2) - np.array([left, top], np.float64)
    boxes = np.asarray(prompts.boxes, np.float64).reshape(-1, 4)
    pixels = np.rint(points)
    on = np.flatnonzero((pixels[:, 0] >= 0) & (pixels[:, 0] < array.shape[1]) & (pixels[:, 1] >= 0)
                        & (pixels[:, 1] < array.shape[0]))
    if len(on) == 0:
        return float("nan"), 0, 0
    chosen = on[measured_spread(len(on))]
    widths = prompted_object_widths(array, points[on], measured_spread(len(on)))  # every spot on it marks its object
    shorter = np.minimum(boxes[chosen, 2] - boxes[chosen, 0], boxes[chosen, 3] - boxes[chosen, 1])  # NaN: a click
    widths = np.where(np.isnan(shorter), widths, np.fmin(widths, np.maximum(shorter, 1.0)))
    return median_of_most(widths), int(np.isfinite(widths).sum()), len(chosen)


def resolve_object_window(value: ObjectWindowArg, frame: Any, model: str, image_size: int,
                          name: str = "object_window", prompts: Optional[PromptSpots] = None) -> Optional[int]:
    """``value`` with "auto" replaced by the window :func:`object_window_choice` picks for ``frame`` at an
    ``image_size`` px model input (measured on the objects under ``prompts`` where given and readable, else on the
    frame's objects): None where they are not small against the frame, where none can be measured, and for the
    official presets (trained at 1024 px on whole frames; windows are measured with the demo model only)."""
    return object_window_choice(value, frame, model, image_size, name, prompts).side
