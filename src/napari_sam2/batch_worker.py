"""One batch task = one stack, run inside a Dask worker process (or in-process).

The model is built once per worker process and kept in a module-level cache keyed by its settings,
so every later stack on that worker reuses it. A task never raises for a bad stack: it returns a
summary row with status "failed" and the error, after deleting its private output folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

import sam2_model as sm
from sam2_model.auto_smooth import SmoothChoice, check_smooth_option, smooth_choice

from .api import (API_NAMES, CLI_NAMES, StackAxes, WithoutAlpha, auto_divisions, colour_guess, frames_are_z,
                  resolve_axes)
from .axis_moves import AxisMove, numbered_as_read, read_rows_columns_last
from .batch_outputs import (ZARR_ABOVE_BYTES, create_zarr_labels, discard, labels_nbytes, new_partial_dir, publish,
                            stack_fingerprint, write_labels_tiff, write_manifest)
from .controller import SegmentationController
from .directions import DIRECTION_WORDS, check_one_way
from .file_calibration import frames_through_z, read_calibration, stack_calibration, stack_letters
from .image_size import (AUTO, PromptSpots, SizeChoice, auto_image_size, read_as_seen, tracking_size_choice,
                         resolve_object_window)
from .layout import FrameView, StackLayout
from .prompts import FramePrompt
from .track_all import frame_source

log = logging.getLogger(__name__)
#: the Dask event topic a task tells the batch's console on (:func:`tell`): frames done, the detector's advice
PROGRESS_TOPIC = "napari-sam2-batch"
#: seconds between two "frames done" events of one task (the console shows them at its own pace)
PROGRESS_EVERY_S = 2.0
#: after how a frames-last stack was read (the words of ``napari-sam2 track``): the labels are (T, Y, X), frames first
LABELS_AS_READ = "the labels are written in that order"


@dataclass(frozen=True)
class ModelSpec:
    """What to build on a worker; equal specs share one cached model."""

    model: str = "demo"
    checkpoint: Optional[str] = "download"
    device: str = "auto"
    image_size: Union[int, str, None] = None  # "auto": picked per stack (see stack_model_spec)
    torch_threads: Optional[int] = None  # torch threads per task on the worker (None: :func:`task_threads` decides)


@dataclass(frozen=True)
class AxisOptions:
    """How every stack of a batch is read, as :func:`napari_sam2.api.segment`'s axis arguments say.

    frame_axis is propagated; channel_axis holds channels (channel: an index, "mean" or "max"); fixed
    pins each other axis ((axis, index) pairs); rgb: None detects a trailing RGB(A) axis. Each stack is
    checked on its own (shapes and TIFF axes may differ); errors use the options' ``names`` ("api": the
    keyword arguments, "cli": the command's options).
    """

    frame_axis: int = 0
    channel_axis: Optional[int] = None
    channel: Union[int, str, None] = None
    fixed: Tuple[Tuple[int, int], ...] = ()
    rgb: Optional[bool] = None
    names: str = "api"

    @property
    def words(self) -> Dict[str, str]:
        """How the options are called in messages: :data:`~.api.CLI_NAMES` or :data:`~.api.API_NAMES`."""
        return CLI_NAMES if self.names == "cli" else API_NAMES

    @property
    def frames_why(self) -> str:
        """What put a stack's frames on an axis other than 0, in the options' words ("--axis 2", "frame_axis=2"), or
        "as the TIFF's axes say" where ``frame_axis`` is 0 (a YXT TIFF read frames first)."""
        if not self.frame_axis:
            return "as the TIFF's axes say"
        return f"--axis {self.frame_axis}" if self.names == "cli" else f"frame_axis={self.frame_axis}"

    def read(self, stack: Any) -> Tuple[Any, StackAxes, Optional[AxisMove]]:
        """``stack`` as these options read it: (the stack or a lazy view of it frames first, its axes, the move or
        None). A stack whose frames lie after its rows and columns (a TIFF of axes YXT, or ``frame_axis`` naming
        the last axis where it is shorter than both before it) is read frames first, as ``napari-sam2 track`` and
        :func:`~.api.segment` read it (:func:`~.axis_moves.read_rows_columns_last`). ValueError naming the options
        (after a move, in the stack's own axis numbers) where they do not fit."""
        options = dict(frame_axis=self.frame_axis, rgb=self.rgb, channel_axis=self.channel_axis,
                       channel=self.channel, fixed=dict(self.fixed))
        shape = tuple(int(n) for n in stack.shape)
        data, given, moved = read_rows_columns_last(stack, options, self.words)
        with numbered_as_read(moved, shape):
            resolved = resolve_axes(data.shape, names=self.words, axes=getattr(data, "axes", None), **given)
        return data, resolved, moved


@dataclass(frozen=True)
class StackTask:
    """Everything a worker needs for one stack (paths must be readable/writable on the worker)."""

    name: str
    path: str
    out: str
    model: ModelSpec
    prompts: Optional[str] = None  # prompts CSV (prompt mode)
    auto: bool = False
    zarr_above: int = ZARR_ABOVE_BYTES
    tracking_options: Dict[str, Any] = field(default_factory=dict)
    axes: AxisOptions = AxisOptions()
    #: Gaussian sigma (px) applied to every frame before the model (0: off), or "auto": chosen per stack from its first
    #: prompted frame's grain, as segment() chooses it (:func:`stack_smooth`; 0 with ``auto``)
    smooth: Union[str, float] = "auto"
    contrast_limits: Optional[Tuple[float, float]] = None  # grey values mapped to black and white (None: percentiles)
    object_window: Union[int, str, None] = AUTO  # prompts: window side in frame px, "auto" or None (whole frame)
    direction: str = "both"  # prompts: from the first prompted frame
    settings: Dict[str, Any] = field(default_factory=dict)  # what decides the result (manifest "settings"; reruns)
    #: (worker address, worker processes of the cluster on its machine) when the tasks were sent (see task_threads)
    host_workers: Tuple[Tuple[str, int], ...] = ()
    run: str = ""  # the batch run's token (manifest "run": a result this very run finished as it was stopped)
    invert: bool = False  # the model sees 1 - x of every frame's [0, 1] values (dark objects on a bright background)
    #: (first, last) frames of every stack to track, both included, in the stack's numbers along the frame axis (as
    #: ``track --frames A-B``); only they are read, and the outputs number them from 0. None: every frame
    frames: Optional[Tuple[int, int]] = None


_MODELS: Dict[ModelSpec, sm.SAM2Model] = {}
_BUILDS: Dict[str, int] = {}


def cached_model(spec: ModelSpec) -> sm.SAM2Model:
    """The worker's model for ``spec``, built on first use."""
    if spec not in _MODELS:
        _MODELS[spec] = sm.build_model(spec.model, checkpoint=spec.checkpoint, device=spec.device,
                                       image_size=spec.image_size)
        _BUILDS[spec.model] = _BUILDS.get(spec.model, 0) + 1
    return _MODELS[spec]


def model_builds() -> Dict[str, int]:
    """How many models this process has built, per preset name (a worker builds each spec once)."""
    return dict(_BUILDS)


@dataclass(frozen=True)
class Frames:
    """A stack opened for one task: ``view`` (T, Y, X[, C]) frames along the chosen axis (read lazily),
    ``layout`` of that view and the session's channel choice (``session_options``); ``stack`` is the
    opened file (closed by :meth:`close`)."""

    stack: Any
    view: FrameView
    layout: StackLayout
    session_options: Dict[str, Any]
    frame_axis_name: str = "t"  # "z" where the stack's axes metadata says the frames run through z
    calibration: Any = None  # the pixel size and frame interval its file records (export.Calibration), or None
    #: how the stack was read where that needs saying: frames first for a stack with its frames after its rows and
    #: columns (YXT); a last axis of 3 or 4 non-uint8 entries taken for colour (:func:`~.api.colour_guess`)
    read_as: str = ""
    #: what says the frames are a volume's z slices, in words (:func:`~.api.frames_are_z`), or None (time)
    through_z: Optional[str] = None
    #: the stack's frames ``view`` holds (``--frames A-B``: range(A, B + 1), view index i = the stack's frame A + i);
    #: None: every frame (view index = the stack's frame)
    chosen: Optional[range] = None
    stack_frames: int = 0  # the stack's frames along its frame axis (all of them, read or not)
    stored_frame_axis: int = 0  # the stack's frame axis as stored (2 for a YXT stack read frames first)

    def close(self) -> None:
        if hasattr(self.stack, "close"):
            self.stack.close()

    @property
    def grey(self) -> Optional[FrameView]:
        """The frames as intensities for measurements when they are grey (T, Y, X), else None."""
        return self.view if self.view.ndim == 3 else None


def frames_range_words(chosen: range, names: str) -> str:
    """``chosen`` as the batch's caller named it: ``--frames A-B`` (``names`` "cli") or ``frames=(A, B)``."""
    from ._cli_auto import frames_words

    return frames_words(chosen) if names == "cli" else f"frames=({chosen.start}, {chosen.stop - 1})"


@contextlib.contextmanager
def in_range_words(chosen: Optional[range], names: str) -> Iterator[None]:
    """Inside: a ValueError naming the API's ``frames=(A, B)`` names ``--frames A-B`` where ``names`` is "cli"
    (:func:`._cli_auto.in_cli_words`, the words of ``track --frames``)."""
    from ._cli_auto import in_cli_words

    with in_cli_words(chosen if names == "cli" else None):
        yield


def stack_range(frames: Optional[Tuple[int, int]], layout: StackLayout, shape: Sequence[int],
                names: str) -> Optional[range]:
    """``frames`` (first, last) checked against a stack of ``shape`` read under ``layout``: range(first, last + 1) of
    its propagated axis, None for None. A stack with fewer frames is a ValueError naming its frames, in the words of
    ``track --frames`` (:func:`._cli_auto.frames_in_stack`, ``names`` "cli") or of ``segment(frames=)``
    (:func:`.api.stack_frame_range`)."""
    if frames is None:
        return None
    if names == "cli":
        from ._cli_auto import frames_in_stack

        return frames_in_stack(range(frames[0], frames[1] + 1), layout, shape)
    from .api import stack_frame_range

    return stack_frame_range(tuple(frames), layout, shape)


def open_frames(path: str, axes: AxisOptions = AxisOptions(), smooth: float = 0.0,
                contrast_limits: Optional[Tuple[float, float]] = None, invert: bool = False,
                frames: Optional[Tuple[int, int]] = None) -> Frames:
    """The stack at ``path`` opened lazily and read along ``axes``, its frames smoothed by ``smooth`` px and mapped
    with ``contrast_limits`` (None: the stack's percentiles) for the model, inverted for it when ``invert``
    (ValueError naming the file otherwise). ``frames`` (first, last), both included, in the stack's numbers: the view
    holds only those frames, numbered from 0, and no other frame is read (:class:`~.api.FrameRange`); the
    calibration's frame origin is then frame ``first``'s, as ``track --frames`` writes it. A stack shorter than
    ``last``: ValueError naming the file and the stack's frames."""
    from sam2_model.frames_io import SingleImageError, open_stack

    from .api import FrameRange

    try:
        stack = open_stack(path)
    except SingleImageError:  # the reader's advice is for Python; say it for a batch run
        raise ValueError(f"{path}: a single image, not a stack of frames: batch runs segment and track (T, Y, X) "
                         "stacks (for one image use `napari-sam2 track IMAGE ...`, which takes single images)") from None
    try:
        data, resolved, moved = axes.read(stack)  # frames-last stacks (YXT) through a view, frames first
        if resolved.layout.frame_axis is None:
            raise ValueError(f"batch needs frames to propagate through, e.g. a (T, Y, X) stack; this is a single "
                             f"image of shape {tuple(int(n) for n in stack.shape)}")
        stack_frames = resolved.layout.num_frames(data.shape)
        chosen = stack_range(frames, resolved.layout, data.shape, axes.names)
        picked = data if chosen is None else FrameRange(data, resolved.layout.frame_axis, chosen)  # lazy
        view = FrameView(WithoutAlpha(picked) if resolved.drop_alpha else picked, resolved.layout)
        if len(view) < 1:
            raise ValueError(f"the stack has no frames along axis {resolved.layout.frame_axis}")
    except ValueError as error:
        if hasattr(stack, "close"):
            stack.close()
        raise ValueError(f"{path}: {error}") from None
    options = dict(resolved.session_options)
    if smooth:
        options["smooth"] = float(smooth)
    if contrast_limits is not None:
        options["contrast_limits"] = tuple(contrast_limits)
    if invert:
        options["invert"] = True
    layout = resolved.layout  # a view's letters: the stack's, moved; an OME-Zarr's from its axes
    letters = getattr(data, "axes", None) if moved is not None else stack_letters(path, data)
    if moved is None:
        calibration, read_as = stack_calibration(path, letters, layout), ""
    else:  # the file's calibration by the stack's own axes; said in the line napari-sam2 track prints
        calibration = read_calibration(path, moved.order[layout.frame_axis],
                                       tuple(moved.order[a] for a in layout.spatial_axes),
                                       frames_through_z=frames_through_z(letters, layout.frame_axis))
        read_as = f"{moved.describe(stack.shape)}; {LABELS_AS_READ}"
    guess = colour_guess(data.shape, data.dtype, axes.rgb, resolved, axes.words, source=path)  # 16-bit "RGB": said as read_as is
    read_as = "; ".join(filter(None, [read_as, guess]))
    through_z = frames_are_z(data, layout, calibration, path if moved is None else None)  # an OME-Zarr's names too
    if chosen is not None:  # the outputs' frame 0 is the stack's frame A (a time, or a z)
        from .track_export import calibration_from_frame

        calibration = calibration_from_frame(calibration, chosen.start)
    stored = layout.frame_axis if moved is None else moved.order[layout.frame_axis]
    return Frames(stack, view, view_layout(view.ndim), options, frame_axis_name(letters, layout.frame_axis),
                  calibration, read_as, through_z, chosen, stack_frames, stored)


def frame_axis_name(axes: Optional[str], frame_axis: int) -> str:
    """"z" when the stack's axes letters (a TIFF's or OME-Zarr's, e.g. "ZYX") name its frame axis Z, else "t" (the
    frames of a stack without axes metadata are taken as time, as everywhere else)."""
    return "z" if frames_through_z(axes, frame_axis) else "t"


def view_layout(ndim: int) -> StackLayout:
    """The layout of a :class:`Frames` view: (T, Y, X) or (T, Y, X, C) with frames on axis 0."""
    return StackLayout(ndim, 0, 3 if ndim == 4 else None)


def start_frame(task: StackTask, frames: Frames) -> int:
    """The frame automatic tracking starts on (tracking option start_frame, default 0), checked against this stack
    (ValueError naming the option as the batch's caller named it; see :func:`check_one_way`); 0 for prompts.

    With ``frames.chosen`` (``--frames A-B``): start_frame is the stack's number, default A, and must lie in A-B,
    checked as ``track --auto --frames A-B`` checks it (:func:`.api.check_way_in_range`); the frame returned is the
    view's (start - A)."""
    option = DIRECTION_WORDS[task.axes.names]["start_frame"]
    if frames.chosen is not None and task.auto:
        return start_in_range(task, frames.chosen, option)
    start = int(task.tracking_options.get("start_frame", 0)) if task.auto else 0
    if not 0 <= start < len(frames.view):
        raise ValueError(f"{option} {start} is not a frame of this stack (0..{len(frames.view) - 1})")
    if task.auto:
        direction = "backward" if task.tracking_options.get("reverse") else "forward"
        check_one_way(start, len(frames.view), direction, f"{option} {start}", task.axes.names)
    return start


def start_in_range(task: StackTask, chosen: range, option: str) -> int:
    """:func:`start_frame` within ``chosen`` (the stack's frames tracked): the view's number of the start frame."""
    from .api import check_way_in_range

    first = chosen.start
    start = int(task.tracking_options.get("start_frame", first))
    if start not in chosen:
        raise ValueError(f"{option} {start} is outside {frames_range_words(chosen, task.axes.names)}: start on a "
                         f"frame of the range (default: its first, {first})")
    direction = "backward" if task.tracking_options.get("reverse") else "forward"
    with in_range_words(chosen, task.axes.names):
        check_way_in_range(start, chosen, direction, option)
    return start - first


def prompted_frame(prompts: Sequence[FramePrompt]) -> int:
    """The frame "auto" input sizes and object windows are measured on for ``prompts``: the first frame with a
    positive click, a box or a mask (where the objects' first masks are made; in a z-stack the slice clicked, not
    an empty slice above the sample), else the first prompted frame; 0 without prompts. The rule of
    :func:`napari_sam2.api.prompted_frame`, which ``segment()`` and ``track`` follow on their tables."""
    starts = [p.frame for p in prompts if p.box is not None or p.mask is not None or (np.asarray(p.labels) > 0).any()]
    return int(min(starts or [p.frame for p in prompts] or [0]))


def auto_size(task: StackTask, frames: Frames, index: Optional[int] = None) -> Optional[SizeChoice]:
    """How image_size "auto" is picked for this stack (None where ``task.model.image_size`` is not "auto").

    With ``task.auto``: by the rule of ``napari-sam2 track --auto`` and :func:`napari_sam2.track_cells`
    (:func:`.image_size.tracking_size_choice`): from the tracking option ``cell_diameter`` where it was given, else
    measured on the start frame (``index``, None: the task's start frame), or, in a z-stack whose start slice holds
    too little to measure (an empty top slice), on the fullest of a few slices sampled through the stack; the
    choice's ``describe()`` says which and why. Prompts: on frame ``index`` (None: 0; :func:`process_stack` gives
    their first prompted frame, :func:`prompted_frame`), as ``segment()`` picks it."""
    if task.model.image_size != AUTO:
        return None
    if task.auto:
        start = start_frame(task, frames) if index is None else index
        return tracking_size_choice(frames.view, task.model.model, start, frames.session_options,
                                    frames.through_z is not None, task.tracking_options.get("cell_diameter"))
    index = 0 if index is None else index
    frame = read_as_seen(frames.view, index, frames.session_options)  # the channel segmented, alone read
    return auto_image_size(frame, task.model.model, index)


def stack_model_spec(task: StackTask, frames: Frames, index: Optional[int] = None,
                     choice: Optional[SizeChoice] = None) -> ModelSpec:
    """``task.model``, with image_size "auto" replaced by the size :func:`auto_size` picks for frame ``index`` of
    this stack (``choice``: that pick, when the caller has made it already)."""
    choice = auto_size(task, frames, index) if choice is None else choice
    return task.model if choice is None else replace(task.model, image_size=choice.image_size)


def stack_smooth(asked: Any, frames: Frames, prompts: Optional[Sequence[FramePrompt]], spec: ModelSpec,
                 names: str = "api") -> SmoothChoice:
    """The blur (px) this stack's frames get for the smoothing option ``asked`` (a number, "off" or "auto"), as
    :func:`napari_sam2.api.segment` picks it: "auto" measures the first prompted frame (:func:`prompted_frame`, the
    channel segmented) at the prompted objects (one spot each) for ``spec``'s model and weights (the demo's shipped
    weights only: :func:`sam2_model.auto_smooth.smooth_choice`); with automatic tracking (``prompts`` None) "auto" is
    0, as for ``track --auto``. ValueError naming the option (``names``: "cli" --smooth, else smooth) otherwise."""
    option = "--smooth" if names == "cli" else "smooth"
    if prompts is None:
        value = check_smooth_option(asked, option)
        return SmoothChoice(0.0 if value == "auto" else float(value))
    start = prompted_frame(prompts)
    measured = read_as_seen(frames.view, start, frames.session_options)  # the channel segmented, alone read
    return smooth_choice(asked, measured, PromptSpots.of(prompts, start).points, option, model=spec.model,
                         checkpoint=spec.checkpoint)


def smoothed(frames: Frames, sigma: float) -> Frames:
    """``frames`` shown to the model blurred by ``sigma`` px (0: not blurred); the same opened stack."""
    options = {k: v for k, v in frames.session_options.items() if k != "smooth"}
    if sigma:
        options["smooth"] = float(sigma)
    return replace(frames, session_options=options)


def recorded_settings(settings: Mapping[str, Any], sigma: float) -> Dict[str, Any]:
    """A task's ``settings`` as its manifest records them: ``smooth`` the px used (what "auto" chose, not the word),
    so that a result compares equal to a later run's that blurs as much (:func:`measured_smooth`)."""
    return dict(settings, smooth=float(sigma)) if "smooth" in settings else dict(settings)


def measured_smooth(task: StackTask) -> Optional[float]:
    """The px a run of ``task`` (its ``smooth`` "auto") would blur its stack by (:func:`stack_smooth`), measured
    without a model (the batch's plan compares it with an earlier result's); None where the stack or its prompts
    cannot be read (the task itself then fails with the reason)."""
    try:
        frames = open_frames(task.path, task.axes, 0.0, task.contrast_limits, task.invert, task.frames)
    except Exception:  # noqa: BLE001 - any unreadable stack: not reusable, its task says why
        return None
    try:
        prompts = None if task.auto else stack_prompts(
            Path(str(task.prompts)), (frames.stack_frames, *frames.view.shape[1:]), task.direction, task.axes.names,
            frames.chosen, frames.stored_frame_axis, task.axes.frames_why)
        return stack_smooth(task.smooth, frames, prompts, task.model, task.axes.names).sigma
    except Exception:  # noqa: BLE001
        return None
    finally:
        frames.close()


def stack_prompts(path: Path, shape: Tuple[int, ...], direction: str = "both", names: str = "cli",
                  chosen: Optional[range] = None, stored_frame_axis: int = 0, frames_why: str = "--axis") -> list:
    """FramePrompts from a prompts CSV, after checking every row fits frames of ``shape`` (T, Y, X[, C]: the whole
    stack's).

    Rows are checked as :func:`napari_sam2.api.segment` checks them; errors name the file and line. The prompts and
    ``direction`` are checked as ``napari-sam2 track`` checks them (:func:`.prompts_csv.checked_table_prompts`, in
    the words of ``names``: "cli" or "api"); errors name the file. ``chosen`` (``--frames A-B``: range(A, B + 1)):
    the rows name the stack's frames, each inside the range, checked as ``track --frames A-B`` checks them
    (:func:`.cli.outside_range`, :func:`.api.check_way_in_range`); the prompts returned are numbered from A (the
    view's frames). ``stored_frame_axis``: the stack's frame axis as stored; napari's CSV of a (T, Y, X) layer (axis-0
    read as the frame) is refused where it is not 0, naming the columns to rename and ``frames_why`` ("--axis 2")
    the frames lie there (:func:`.prompts_csv.check_napari_frame_axis`, as ``track`` refuses it).
    """
    import dataclasses

    from .api import check_way_in_range
    from .cli import outside_range
    from .prompts_csv import box_problem, check_napari_frame_axis, checked_table_prompts, click_problem, \
        read_prompt_lines

    def outside(frame: float) -> Optional[str]:
        problem = outside_range(frame, chosen)
        if problem and names != "cli":  # in the words of segment(frames=(A, B))
            problem = problem.replace(frames_range_words(chosen, "cli"), frames_range_words(chosen, names))
        return problem

    clicks, boxes, click_lines, box_lines = read_prompt_lines(path)
    check_napari_frame_axis(path, stored_frame_axis, frames_why)  # napari's axis-0 is not this stack's frames
    frames, height, width = (int(n) for n in shape[:3])
    problems = [(line, click_problem(row[0], row[1], row[2], frames, height, width) or outside(row[0]))
                for row, line in zip(clicks, click_lines)]
    problems += [(line, box_problem(row[0], frames, row[1:5], height, width) or outside(row[0]))
                 for row, line in zip(boxes, box_lines)]
    for line, problem in problems:
        if problem:
            raise ValueError(f"{path}, line {line}: {problem}")
    prompts = checked_table_prompts(path, clicks, boxes, frames if chosen is None else chosen.stop, direction, names)
    if chosen is None:
        return prompts
    try:
        with in_range_words(chosen, names):
            check_way_in_range(prompted_frame(prompts), chosen, direction)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return [dataclasses.replace(prompt, frame=prompt.frame - chosen.start) for prompt in prompts]


def segment_stack(model: sm.SAM2Model, frames: Frames, prompts: list, labels: Any,
                  object_window: Union[int, str, None] = AUTO, direction: str = "both",
                  progress: Optional[Callable[[int, int], None]] = None) -> SegmentationController:
    """Apply ``prompts`` and propagate ``direction`` from the first prompted frame, writing into ``labels``.

    labels: (T, Y, X) uint32, numpy or zarr (written one whole plane at a time). Same steps as
    :func:`napari_sam2.api.segment` with that ``direction`` and ``object_window`` ("auto": measured on the first
    prompted frame, :func:`prompted_frame`), on a model the caller keeps. progress: called with (frames propagated,
    frames to propagate) after each frame.
    """
    options = dict(frames.session_options, corrections_as_conditioning=True)  # as segment() runs
    if frames.chosen is not None:
        options["first_frame"] = frames.chosen.start  # the session's warnings name the stack's frames
    start = prompted_frame(prompts)
    measured = read_as_seen(frames.view, start, frames.session_options)  # that channel alone read
    window = resolve_object_window(object_window, measured, model.config.name, model.image_size,
                                   prompts=PromptSpots.of(prompts, start))  # the prompted objects' width
    controller = SegmentationController(model, frames.view, frames.layout, labels, session_options=options,
                                        object_window=window)
    for _ in controller.segment_table(prompts, direction, progress):
        pass
    return controller


def _run_prompts(task: StackTask, model: sm.SAM2Model, frames: Frames, folder: Path,
                 prompts: Sequence[FramePrompt]) -> Dict[str, Any]:
    """Segment and track ``prompts`` (the stack's checked prompts CSV, :func:`stack_prompts`): labels, objects table."""
    from .export import save_table_csv

    shape = frames.view.shape[:3]
    large = labels_nbytes(shape) > task.zarr_above
    if large:
        labels_name = "labels.ome.zarr"
        labels: Any = create_zarr_labels(folder / labels_name, shape, frames.frame_axis_name, frames.calibration)
    else:
        labels_name, labels = "labels.tif", np.zeros(shape, np.uint32)
    controller = segment_stack(model, frames, prompts, labels, task.object_window, task.direction, frames_told(task))
    if not large:  # (large stacks: the zarr labels were written plane by plane as they were tracked)
        write_labels_tiff(labels, folder / labels_name, frames.frame_axis_name, frames.calibration)
    save_table_csv(controller.measurements(frames.calibration), folder / "objects.csv")  # the widget's table
    return {"outputs": [labels_name, "objects.csv"], "frames": shape[0], "objects": len(controller.obj_ids),
            "object_window": controller.object_window, "direction": task.direction}


def _run_auto(task: StackTask, model: sm.SAM2Model, frames: Frames, folder: Path) -> Dict[str, Any]:
    """Automatic tracking: labels, per-object table, per-track table, CTC folder and GEFF lineage."""
    from .console_tracking import note_in_movie
    from .export import measure, save_table_csv
    from .track_export import AutoOutputs, write_auto_outputs

    options = dict(task.tracking_options)  # divisions: as given, else off through z (said in the note)
    if frames.chosen is not None:  # the stack's number -> the frames read's, numbered from the range's first
        options["start_frame"] = start_frame(task, frames)
    divisions, said = auto_divisions(options.pop("divisions", None), frames.through_z,
                                     "--divisions" if task.axes.names == "cli" else "divisions=True")
    source = frame_source(frames.view, model, frames.session_options)
    first = 0 if frames.chosen is None else frames.chosen.start
    source.first_frame = first  # the sessions' warnings name the stack's frames
    told, done, advised_at = frames_told(task), [0], []  # (frames done when the advice came: which frame it is)

    def progress(count: int, total: int) -> None:
        done[0] = count
        told(count, total)

    try:
        with detector_advice(task, done, advised_at) as advice:  # too many candidate cells: said once, as it comes
            result = track_cells_advised(model, source, divisions=divisions, progress=progress,
                                         invert=source.invert, **options)  # the detector finds the cells tracked
    finally:
        source.close()
    large = labels_nbytes(result.labels.shape) > task.zarr_above
    labels_name = "labels.ome.zarr" if large else "labels.tif"

    def write_labels(labels: Any, path: Path) -> None:  # (a ConsistentLabels: one plane made per frame read)
        if large:
            array = create_zarr_labels(path, labels.shape, frames.frame_axis_name, frames.calibration)
            for t in range(labels.shape[0]):
                array[t] = labels[t]  # one frame = whole chunks: no copy of the stack
        else:  # plane by plane (write_labels_tiff reads a ConsistentLabels a frame at a time)
            write_labels_tiff(labels, path, frames.frame_axis_name, frames.calibration)

    # the private folder is published whole later, so each output is written straight into it
    labels, lineage = write_auto_outputs(result.labels, result.lineage, AutoOutputs(
        labels=folder / labels_name, tracks=folder / "tracks.csv", ctc=folder / "ctc", geff=folder / "tracks.geff"),
        write_labels=write_labels, calibration=frames.calibration)
    save_table_csv(measure(labels, frames.grey, calibration=frames.calibration),  # the same ids, a frame at a time
                   folder / "objects.csv")
    outputs = [labels_name, "objects.csv", "tracks.csv", "ctc", "tracks.geff"]
    return {"outputs": outputs, "frames": int(labels.shape[0]), "objects": len(lineage),
            "note": "; ".join(filter(None, [said, *advice, candidates_kept(task, advice, advised_at, result.labels,
                                                                         options, first, len(lineage)),
                                            note_in_movie(result.note, first)])),
            "advice": "".join(advice), "divisions": divisions}


def tell(task: StackTask, **message: Any) -> None:
    """Send ``message`` (plain values) to the batch's console as a Dask event on :data:`PROGRESS_TOPIC`, tagged with
    the run and the stack's name; nothing outside a Dask worker (a task run in-process)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    worker.log_event(PROGRESS_TOPIC, {"run": task.run, "name": task.name, **message})


def frames_told(task: StackTask) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that tells the console the frames done (at most every
    :data:`PROGRESS_EVERY_S` seconds, and the last frame)."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S or done == total:
            last[0] = now
            tell(task, frames=int(done), total=int(total))

    return progress


#: words of the detector's warning of too many candidate cells (:func:`sam2_model.tracking.detection.many_seeds_advice`)
MANY_CANDIDATES = "candidate cells"
_ADVICE = threading.local()  # .sink: where the detector's advice goes in the thread running a task (None: no task)


def track_cells_advised(model: sm.SAM2Model, frames: Any, progress: Optional[Callable[[int, int], None]] = None,
                        **options: Any) -> Any:
    """:func:`sam2_model.tracking.track_cells` of ``frames`` (same arguments, same result) that hands the detector's
    advice of too many candidate cells to this thread's task (:func:`detector_advice`) as soon as the detector has it,
    before the slow clicks it warns of: read from the detector (``on_advice``), not caught from Python's warnings,
    whose filters are one for the whole process, so a task's advice arrives whatever the user's filters say."""
    try:
        from sam2_model.tracking import track_cells
    except ImportError as error:  # pragma: no cover - shipped together
        raise RuntimeError(f"auto needs sam2_model.tracking, which this installation lacks ({error})") from error
    return track_cells(model, frames, progress=progress, on_advice=getattr(_ADVICE, "sink", None), **options)


def candidates_kept(task: StackTask, advice: Sequence[str], advised_at: Sequence[int], labels: np.ndarray,
                    options: Mapping[str, Any], first: int, objects: int) -> str:
    """After the detector's advice of too many candidate cells (``advice``: its one text; ``advised_at``: the frames
    tracked before it came), how many of them became cells on that frame (the ids of ``labels`` (T, H, W) there) and
    why the rest did not, so that a note of "234 candidate cells" beside ``objects`` 4 reads as one result, and what
    makes such a run quick; "" without that advice. ``options``: the tracking options (``start_frame``, ``reverse``,
    frames read numbered from 0); ``first``: the stack's number of the first frame read."""
    import re

    count = re.search(r"(\d+) " + MANY_CANDIDATES, advice[0]) if advice and advised_at else None
    if count is None:
        return ""
    step = -1 if options.get("reverse") else 1
    t = int(options.get("start_frame", 0)) + step * int(advised_at[0])
    if not 0 <= t < len(labels):
        return ""
    plane = np.asarray(labels[t])
    kept = int(np.count_nonzero(np.unique(plane[plane > 0]))) if plane.any() else 0
    option = "--cell-diameter MIN MAX" if task.axes.names == "cli" else "cell_diameter=(min, max)"
    why = ("the same cell found again, overlapping a cell already kept, or too uncertain or too faint against their "
           "surroundings to be a cell (texture or noise)")
    if kept == 0:
        return f"of these {count.group(1)} candidates on frame {first + t}, none was kept as a cell: each was {why}"
    later = (f"; {objects} object{'s' * (objects != 1)} in all, with the cells found on later frames and their "
             f"daughters" if objects != kept else "")
    others = f"; the others were {why}" if kept < int(count.group(1)) else ""
    return (f"of these {count.group(1)} candidates on frame {first + t}, {kept} {'was' if kept == 1 else 'were'} "
            f"kept as cell{'s' * (kept != 1)} and tracked{others}{later}. If these are your cells, the result stands, "
            f"and {option} set to their size finds them many times faster")


@contextlib.contextmanager
def detector_advice(task: StackTask, done: Sequence[int] = (0,), at: Optional[List[int]] = None) -> Iterator[list]:
    """While the block runs in this thread, the detector's advice of too many candidate cells
    (:func:`track_cells_advised` hands it over, one per frame it detects on) is told to the console once for this
    stack, as soon as it comes, and kept in the yielded list (at most one text); the detector gives no warning of it
    then (``track_cells(on_advice=)``: the caller has it). Nothing process-wide is touched (no warnings filter, no
    ``warnings.showwarning`` hook): every warning, this thread's and the others' (another stack of a worker running
    several at once, the user's), is shown as the process's filters say."""
    said: list = []

    def sink(message: str) -> None:
        if not said:
            said.append(message)
            if at is not None:  # the frames tracked before it came (``done[0]``): which frame it is about
                at.append(int(done[0]))
            tell(task, advice=message)

    _ADVICE.sink = sink
    try:
        yield said
    finally:
        _ADVICE.sink = None


def task_threads(task: StackTask) -> Tuple[Optional[int], str]:
    """How many threads PyTorch gets for this task, and why (the manifest records both).

    ``task.model.torch_threads`` when batch set it (its local cluster: the machine's cores / its workers). In a
    worker of another cluster (a Client or scheduler of the user's; Dask's nanny starts workers with
    OMP_NUM_THREADS=1 and MKL_NUM_THREADS=1, which leave PyTorch one thread): OMP_NUM_THREADS when the worker's
    environment sets it above 1 (the user's: Dask's default is 1); else the cores this process may use (affinity and
    cgroup limits: ``dask.system.cpu_count``) shared among the cluster's worker processes on its machine and their
    Dask threads (tasks at once), at least 1. Outside a Dask worker (a task run in-process): None, left as it is.
    """
    if task.model.torch_threads:
        return int(task.model.torch_threads), "batch's local cluster: the machine's cores / its workers"
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None, "not in a Dask worker: left as it was"
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 1:
        return int(omp), f"OMP_NUM_THREADS={omp} in the worker's environment"
    from dask.system import cpu_count

    cores, tasks = cpu_count(), max(1, int(worker.state.nthreads))
    sharing = dict(task.host_workers).get(worker.address, 1)
    return max(1, cores // (sharing * tasks)), (f"{cores} cores / {sharing} worker process{'es' * (sharing != 1)} on "
                                                f"this machine / {tasks} Dask thread{'s' * (tasks != 1)} each")


def set_task_threads(task: StackTask) -> Tuple[int, str]:
    """Set PyTorch's threads for this task (:func:`task_threads`; per task: Dask may run tasks on new threads, and
    OpenMP's setting is per thread); returns the threads PyTorch now uses and why."""
    import torch

    threads, why = task_threads(task)
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads(), why


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return "local"


def tracking_settings(given: Dict[str, Any]) -> Dict[str, Any]:
    """Every setting automatic tracking ran with: ``given`` over the tracker's defaults
    (:func:`sam2_model.tracking.track_cells`' keywords), so a manifest says them all, not only those changed.
    ``divisions`` not given is None: decided per stack (off where its frames are z slices, :func:`_run_auto`), so a
    rerun with divisions asked for is not taken for one without (a manifest's tracking_options say what was used)."""
    import inspect

    from sam2_model.tracking import track_cells
    from sam2_model.tracking.detection import MIN_CONTRAST

    defaults = {name: p.default for name, p in inspect.signature(track_cells).parameters.items()
                if p.kind == p.KEYWORD_ONLY and p.default is not p.empty and name not in ("progress", "detector")}
    settings = {**defaults, "min_contrast": MIN_CONTRAST, "divisions": None, **given}  # min_contrast: the detector's
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()
            if v is None or isinstance(v, (bool, int, float, str, list, tuple))}


def range_text(frame_range: Any) -> str:
    """A manifest's ``frame_range`` ([first, last] of the stack, both included) as summary.csv says it: "A-B" (the
    words of ``--frames A-B``); "" for none (every frame was tracked)."""
    if not frame_range:
        return ""
    first, last = (int(n) for n in frame_range)
    return f"{first}-{last}"


def process_stack(task: StackTask) -> Dict[str, Any]:
    """Run one stack and publish its outputs; returns its summary row (never raises for a bad stack)."""
    started = time.perf_counter()
    row: Dict[str, Any] = {"stack": task.path, "name": task.name, "status": "failed", "error": "", "note": "",
                           "seconds": 0.0, "frames": None, "objects": None, "outputs": "", "worker": _worker_name()}
    folder: Optional[Path] = None
    frames: Optional[Frames] = None
    source = stack_fingerprint(Path(task.path))  # size/mtime as read: a rerun reuses the result only if unchanged
    try:
        threads, threads_why = set_task_threads(task)
        frames = open_frames(task.path, task.axes, 0.0, task.contrast_limits, task.invert,
                             task.frames)  # a bad file (or one shorter than --frames) fails first; blurred below
        index = start_frame(task, frames)  # --start-frame beyond a short stack: its reason, before any work
        if task.auto:  # a cell diameter range of which no cell fits these frames: refused before the model is built
            from ._cli_auto import check_diameter_fits

            check_diameter_fits(task.tracking_options.get("cell_diameter"),
                                str(task.tracking_options.get("seeding", "blobs")), frames.view.shape[1:3])
        tell(task, frames=0, total=len(frames.view))  # the console shows it in flight (a first frame can be long)
        prompts = None if task.auto else stack_prompts(  # a bad CSV: its reason, before the model
            Path(task.prompts), (frames.stack_frames, *frames.view.shape[1:]), task.direction, task.axes.names,
            frames.chosen, frames.stored_frame_axis, task.axes.frames_why)
        if prompts is not None:
            index = prompted_frame(prompts)  # "auto" measures where the objects are, not an empty slice 0
        blur = stack_smooth(task.smooth, frames, prompts, task.model, task.axes.names)  # "auto": as segment()
        frames = smoothed(frames, blur.sigma)
        size = auto_size(task, frames, index)  # image_size "auto": how it was picked (the manifest says)
        model = cached_model(stack_model_spec(task, frames, index, size))
        folder = new_partial_dir(Path(task.out), task.name)
        record = (_run_auto(task, model, frames, folder) if prompts is None else
                  _run_prompts(task, model, frames, folder, prompts))
        used = {"divisions": record.pop("divisions")} if "divisions" in record else {}  # as run on this stack
        advice = record.pop("advice", "")  # in the note; the console said it as it came
        if blur.describe():  # what "auto" chose, said once: in the note (the console shows it) and the manifest
            record["note"] = "; ".join(filter(None, [blur.describe(), record.get("note")]))
        if frames.read_as:  # frames-last, or 16-bit "RGB": the summary's note and the manifest say how it was read
            record.update(read_as=frames.read_as, note="; ".join(filter(None, [frames.read_as, record.get("note")])))
        record.update(stack=task.path, input=source, name=task.name, mode="auto" if task.auto else "prompts",
                      prompts=task.prompts, model=asdict(task.model), device_used=str(model.device),
                      tracking_options=tracking_settings({**task.tracking_options, **used}) if task.auto else {},
                      axes=asdict(task.axes), smooth=blur.sigma, invert=task.invert,
                      smooth_picked=f"{blur.sigma:g} px: {blur.why}" if blur.auto else None,
                      contrast_limits=None if task.contrast_limits is None else list(task.contrast_limits),
                      image_size=model.image_size, image_size_picked=None if size is None else size.describe(),
                      settings=recorded_settings(task.settings, blur.sigma), run=task.run, torch_threads=threads,
                      torch_threads_why=threads_why,
                      calibration=None if frames.calibration is None else asdict(frames.calibration),
                      frame_range=None if frames.chosen is None else [frames.chosen.start, frames.chosen.stop - 1],
                      stack_frames=frames.stack_frames,
                      seconds=round(time.perf_counter() - started, 3),
                      finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        write_manifest(folder, record)  # last file: its presence means "complete"
        publish(folder, Path(task.out) / task.name)
        folder = None
        row.update(status="ok", frames=record["frames"], objects=record["objects"], note=record.get("note", ""),
                   frame_range=range_text(record["frame_range"]),
                   read_as=frames.read_as, advice=advice,  # for the batch's console (not summary columns)
                   outputs=";".join(f"{task.name}/{name}" for name in record["outputs"] + ["manifest.json"]))
    except Exception as error:  # a bad stack must not stop the others; MemoryError is an Exception too
        log.debug("stack %s failed", task.path, exc_info=True)
        row["error"] = f"{type(error).__name__}: {error}"
    finally:
        discard(folder)
        if frames is not None:
            frames.close()
        row["seconds"] = round(time.perf_counter() - started, 3)
    return row
