"""Scripting API (napari's console, notebooks, the CLI): segment a stack from a table of prompts.

    import napari_sam2
    labels = napari_sam2.segment(stack, clicks=[(0, 120, 85, 1, 1)], boxes=[(3, 40, 30, 90, 70, 2)])
    session = napari_sam2.get_session(viewer)      # the open widget's VideoSession
    result = napari_sam2.track_cells(viewer)       # track every cell (see napari_sam2.console_tracking.track_cells)

Shapes: both return labels without the colour/channel axis, and a single 2-D image ((Y, X), or (Y, X, 3) RGB) gives
(Y, X) labels from both. A stack gives (T, Y, X) from both; only with ``fixed`` (e.g. z of a (T, Z, Y, X) stack) do
they differ: segment() keeps the fixed axes (filled at the slice), track_cells() returns the (T, Y, X) planes tracked.

Every input is checked before the model is built, and each mistake is a ValueError that names the
argument, what was wrong and what is accepted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import numbers
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

import sam2_model as sm
from sam2_model.auto_smooth import SmoothArg, check_smooth_option, smooth_choice
from sam2_model.frames import check_contrast_limits, check_finite, check_invert
from sam2_model.frames_io import close_stack, open_stack, open_stack_or_image
from sam2_model.prompt_validation import dtype_problem, frame_size_problem

from .controller import SegmentationController
from .directions import check_prompted_way
from .image_size import (AUTO, ImageSizeArg, ObjectWindowArg, check_image_size, check_object_window, read_as_seen,
                         resolve_image_size, resolve_object_window, PromptSpots)
from .axis_moves import (
    PLACEHOLDER, axis_number, numbered_as_read, option_words, read_rows_columns_last, rows_columns_not_last,
)
from .layout import FrameView, StackLayout
from .prompts import collect_prompts
from .prompts_csv import MAX_OBJ_ID, box_problem, check_napari_table_frame_axis, click_problem, is_table, \
    prompts_from_table
from .console_tracking import track_cells  # noqa: F401  (the console's automatic tracking entry)

if TYPE_CHECKING:  # sam2_model.build (torch) is imported when a model is built: the widget's dock opens without it
    from sam2_model.build import WeightsArg

WIDGET = ("napari-sam2", "SAM 2 segmentation")
DIRECTIONS = ("forward", "backward", "both")
COMPOSITES = ("mean", "max")
#: a last axis this small (and smaller than the rows) is taken for channels in messages
MAX_CHANNELS = 16
#: How the axis arguments are called in messages (the CLI passes its option names instead).
API_NAMES = {"frame_axis": "frame_axis", "channel_axis": "channel_axis", "channel": "channel",
             "fixed": "fixed={axis: index}", "rgb": "rgb"}
# the same arguments as the command line names them (napari-sam2 track and batch)
CLI_NAMES = {"frame_axis": "--axis", "channel_axis": "--channel-axis", "channel": "--channel",
             "fixed": "--fix AXIS=INDEX", "rgb": "--rgb"}


@dataclass(frozen=True)
class StackAxes:
    """What :func:`resolve_axes` decided: the layout, how channels reach the model, and RGBA handling."""

    layout: StackLayout
    session_options: Dict[str, Any]  # channel=<index> or composite=<"mean"|"max">, or nothing
    drop_alpha: bool = False  # an RGBA image: the alpha channel is not shown to the model


def resolve_axes(
    shape: Sequence[int],
    frame_axis: Optional[int] = 0,
    rgb: Optional[bool] = None,
    channel_axis: Optional[int] = None,
    channel: Union[int, str, None] = None,
    fixed: Optional[Mapping[int, int]] = None,
    axes: Optional[str] = None,
    names: Mapping[str, str] = API_NAMES,
) -> StackAxes:
    """Check and combine the axis arguments of :func:`segment` for an image of ``shape``.

    rgb=None detects RGB(A): a 3D or 4D image whose last axis has 3 or 4 entries (as napari does), or
    a TIFF whose ``axes`` end in "S"; ``axes`` (a TIFF series' axes, e.g. "TCYX") also locates "C".
    The last two axes that are not the channel axis are (rows, columns); 2D images ignore frame_axis.

    Every mistake is a ValueError in the words of ``names`` (:data:`API_NAMES` or :data:`CLI_NAMES`): an
    unassigned small last axis, e.g. of a (T, Y, X, 2) stack, is named as the likely channels, and a channel axis
    of other than 1 or 3 channels without ``channel`` asks for one. Frames thinner than 8 px on a side are refused
    (a short last axis read as the columns is named as the frames or the channels it may be), and so are TIFF axes
    that put another axis after Y, X (callers that can move it, :func:`~.axis_moves.read_rows_columns_last`, do so first).
    """
    shape = tuple(int(n) for n in shape)
    fixed = dict(fixed or {})
    unread = rows_columns_not_last(axes, len(shape))
    if unread is not None:  # segment(), track_cells(), track and batch move them first (rows_columns_last)
        raise ValueError(f"the TIFF's axes {axes} put other axes after its rows and columns (Y, X), but they are read "
                         f"as the last two axes: save the stack as {unread} (segment(), track_cells(), napari-sam2 "
                         "track and batch read it as it is)")
    try:
        decided = _resolve(shape, frame_axis, rgb, channel_axis, channel, fixed, axes, names)
    except FrameSizeError as error:
        raise ValueError(f"{error}{_small_axis_hint(shape, decided_cols=error.cols, names=names)}") from None
    except ValueError:
        hint = _channels_last_hint(shape, frame_axis, rgb, channel_axis, channel, fixed, axes, names)
        if hint is None:
            raise
        raise ValueError(hint) from None
    said_c = (channel_axis is None and isinstance(axes, str) and len(axes) == len(shape) and "C" in axes
              and decided.layout.channel_axis == axes.index("C"))  # the TIFF's axes put the channels there
    _check_channel_choice(decided, shape, said_c, axes, names)
    return decided


def _channels_last_hint(shape: Tuple[int, ...], frame_axis: Optional[int], rgb: Optional[bool],
                        channel_axis: Optional[int], channel: Union[int, str, None], fixed: Mapping[int, int],
                        axes: Optional[str], names: Mapping[str, str]) -> Optional[str]:
    """The message for a stack whose small last axis was taken for image columns, when reading it as the channel
    axis would fit every other option (e.g. (T, Y, X, 2), or (T, Y, X, 3) with rgb=False); else None."""
    ndim, last = len(shape), len(shape) - 1
    told = channel_axis is not None or rgb or (isinstance(axes, str) and "C" in axes)
    if told or ndim < 3 or not shape[-1] <= MAX_CHANNELS or not shape[-1] < shape[-2]:
        return None
    if axis_number(frame_axis, ndim) == last:  # the user said the last axis holds the frames, not channels
        return None
    fixed = {int(k) % ndim if -ndim <= int(k) < ndim else int(k): v for k, v in fixed.items()}
    pinned = fixed.pop(last, None)  # fixing the last axis is picking a channel
    chosen = channel if pinned is None else pinned
    try:  # the rest of the options must fit too, or the first message is the right one
        _resolve(shape, frame_axis, False, last, chosen, fixed, None, names)
    except ValueError:
        return None
    n = shape[-1]
    start = f"axis {last} (size {n}), the last axis of the image {shape}, looks like {n} channels, not image columns"
    axis_option = option_words(names, "channel_axis", last)
    if pinned is not None:
        joined = " " if names["channel"].startswith("--") else ", "
        return (f"{start}, and only axes before the rows can be fixed: pass {axis_option}{joined}"
                f"{option_words(names, 'channel', pinned)}")
    if channel is not None:
        return f"{start}: pass {axis_option} with {option_words(names, 'channel', channel)}"
    colour = f" (or {option_words(names, 'rgb', _yes(names))} to use them as colour)" if n in (3, 4) else ""
    return (f"{start}: pass {axis_option} with {option_words(names, 'channel', PLACEHOLDER)} (0..{n - 1}) to use one of them, "
            f"or {option_words(names, 'channel', 'mean')} or {option_words(names, 'channel', 'max')} to combine them{colour}")


def colour_guess(shape: Sequence[int], dtype: Any, rgb: Optional[bool], decided: StackAxes,
                 names: Mapping[str, str] = API_NAMES, source: Any = None) -> Optional[str]:
    """A warning for an image whose last axis of 3 or 4 entries was taken for RGB(A) colour although nobody said so
    (``rgb`` None) and its data are not uint8; None otherwise (uint8 colour, ``rgb`` given, channels chosen, or a
    file that says it is colour).

    16-bit or floating-point data with 3 entries on the last axis are almost always 3 channels (e.g. fluorescence):
    read as colour, their masks are wrong without a word (one click on a nucleus: IoU 0.01 as colour, 0.89 with
    its channel). The message names both readings and the option that picks each, in the words of ``names``
    (:data:`API_NAMES` or :data:`CLI_NAMES`); giving either silences it.

    ``source``: where the image was read from, a path or a stack opened from one (its ``path``), or None. A TIFF
    whose own tags say it is colour (photometric RGB, 3 or 4 samples per pixel, written by a camera or scanner, not
    by tifffile's guess from the shape: :func:`~.file_calibration.tiff_says_colour`) is colour by the file's word,
    whatever its data type: no warning. A 16-bit or float array, or a TIFF of 3 "min-is-black" samples, still warns. So does float data in [0, 1] (a
    photograph after ``skimage.img_as_float``): its values cannot tell colour from channels scaled to [0, 1], and the
    cost of each wrong reading differs (demo model, one click per cell, mean IoU, s52): a float photo read as colour
    does as its uint8 original (0.44 against 0.40 stained on light, 0.75 against 0.75 coloured on dark), while
    3-channel fluorescence in [0, 1] read as colour gives 0.23 against 0.97 with its channel."""
    shape = tuple(int(n) for n in shape)
    last = len(shape) - 1
    if rgb is not None or np.dtype(dtype) == np.uint8 or decided.session_options:
        return None
    if decided.layout.channel_axis != last or shape[last] not in (3, 4):
        return None
    from .file_calibration import tiff_says_colour  # the file's tags are read only where the warning would come

    if tiff_says_colour(source if isinstance(source, (str, os.PathLike)) else getattr(source, "path", None)):
        return None
    n = shape[last]
    colour = "RGB colour" if n == 3 else "RGBA colour (its alpha entry is not shown to the model)"
    return (f"the last axis (size {n}) of the {np.dtype(dtype)} image {shape} is read as {colour}; {n} entries of "
            f"{np.dtype(dtype)} data (not 8-bit colour) are often {n} channels (e.g. fluorescence), whose masks come "
            f"out wrong read as colour. If they are channels, pass {option_words(names, 'channel_axis', -1)} with "
            f"{option_words(names, 'channel', PLACEHOLDER)} (0..{n - 1}) to use one of them, or "
            f"{option_words(names, 'channel', 'mean')} or {option_words(names, 'channel', 'max')} to combine them; "
            f"if they are colour, pass {option_words(names, 'rgb', _yes(names))} (either choice silences this warning)")


def _yes(names: Mapping[str, str]) -> Any:
    return "yes" if names["rgb"].startswith("--") else True


def _check_channel_choice(decided: StackAxes, shape: Tuple[int, ...], from_tiff: bool, axes: Optional[str],
                          names: Mapping[str, str]) -> None:
    """The model takes one channel or three (as colour): more or fewer need a channel choice, said before any work.
    Three channels that a TIFF's axes call "C" (not "S", samples of colour) are fluorescence channels, not RGB: they
    need a choice too."""
    axis = decided.layout.channel_axis
    if axis is None or decided.session_options or decided.drop_alpha or shape[axis] == 1:
        return
    if shape[axis] == 3 and not from_tiff:
        return
    n = shape[axis]
    source = f" (the TIFF's axes {axes} say so)" if from_tiff else ""
    rgba = f" (or {option_words(names, 'rgb', _yes(names))} if they are RGBA)" if n == 4 and axis == len(shape) - 1 else ""
    raise ValueError(f"axis {axis} of the image {shape} holds {n} channels{source}: pick one with "
                     f"{option_words(names, 'channel', PLACEHOLDER)} (0..{n - 1}) or combine them with "
                     f"{option_words(names, 'channel', 'mean')} or {option_words(names, 'channel', 'max')}{rgba}")


def _resolve(shape: Tuple[int, ...], frame_axis: Optional[int], rgb: Optional[bool], channel_axis: Optional[int],
             channel: Union[int, str, None], fixed: Mapping[int, int], axes: Optional[str],
             names: Mapping[str, str]) -> StackAxes:
    """:func:`resolve_axes` without its hints: the first rule the arguments break, or the decision."""
    ndim = len(shape)
    kinds = ("2D (Y, X) image, a (T, Y, X) stack, either with a trailing RGB(A) axis, or 4D+ data with "
             f"{names['frame_axis']}, {names['channel_axis']} and {names['fixed']} saying what each other axis is")
    if ndim < 2:
        raise ValueError(f"image must be a {kinds}; got {ndim}D data of shape {shape}")
    fixed = {int(a) % ndim if -ndim <= int(a) < ndim else int(a): int(i) for a, i in fixed.items()}
    if channel_axis is None and isinstance(axes, str) and len(axes) == ndim and "C" in axes and not rgb:
        channel_axis = axes.index("C")
    auto_rgb = ndim in (3, 4) and shape[-1] in (3, 4) and channel_axis is None and not fixed
    if isinstance(axes, str) and len(axes) == ndim and axes.endswith("S") and channel_axis is None:
        auto_rgb = True
    rgb = auto_rgb if rgb is None else bool(rgb)
    if rgb:
        if channel_axis not in (None, ndim - 1, -1):
            raise ValueError(f"{option_words(names, 'rgb', _yes(names))} puts colour on the last axis; "
                             f"{option_words(names, 'channel_axis', channel_axis)} names another axis: pass only one of them")
        if shape[-1] not in (3, 4) or ndim < 3:
            raise ValueError(f"{option_words(names, 'rgb', _yes(names))} needs a last axis of 3 (RGB) or 4 (RGBA) "
                             f"entries; got shape {shape}")
        channel_axis = ndim - 1
    if channel_axis is not None:
        if not -ndim <= int(channel_axis) < ndim:
            raise ValueError(f"{names['channel_axis']}={channel_axis} is not an axis of the {ndim}D image {shape}")
        channel_axis = int(channel_axis) % ndim
    options = _channel_options(shape, channel_axis, channel, rgb, names)
    spatial = [a for a in range(ndim) if a != channel_axis][-2:]
    if len(spatial) < 2:
        raise ValueError(f"image must be a {kinds}; got shape {shape}")
    others = [a for a in range(ndim) if a not in spatial and a != channel_axis]
    frame: Optional[int] = None
    if others:
        if frame_axis is None or not -ndim <= int(frame_axis) < ndim:
            raise ValueError(f"{names['frame_axis']} must be one of the axes {others} of the image {shape} "
                             f"(the axis to propagate through), got {frame_axis}")
        frame = int(frame_axis) % ndim
        if frame not in others:
            if frame == channel_axis:
                raise ValueError(f"{names['frame_axis']}={frame_axis} is the channel axis of the image {shape}; "
                                 f"propagate through one of the axes {others}")
            move = ("save the stack with its frames first (T, Y, X)" if names["frame_axis"].startswith("--") else
                    f"pass np.moveaxis(stack, {frame}, 0)")
            raise ValueError(f"{option_words(names, 'frame_axis', frame_axis)} is a spatial (row/column) axis of the "
                             f"image {shape}: rows and columns must be its last two axes (a channel axis aside); propagate "
                             f"through one of the axes {others}, or, if axis {frame} holds the frames, {move}")
    for axis, index in fixed.items():
        if axis not in others or axis == frame:
            raise ValueError(f"{names['fixed']}: axis {axis} cannot be fixed; only axes {sorted(set(others) - {frame})} "
                             "(neither propagated, channel nor spatial) can")
        if not 0 <= index < shape[axis]:
            raise ValueError(f"{names['fixed']}: index {index} is outside axis {axis} (0..{shape[axis] - 1})")
    free = [a for a in others if a != frame and a not in fixed]
    if free:
        axis = free[0]
        raise ValueError(
            f"axis {axis} (size {shape[axis]}) of the image {shape} is neither propagated, channel nor fixed: "
            f"pass {names['fixed']} to segment one slice of it, {names['channel_axis']}={axis} if it holds "
            f"channels, or {names['frame_axis']}={axis} to propagate through it"
        )
    rows, cols = spatial
    small = frame_size_problem(shape[rows], shape[cols])
    if small is not None:
        raise FrameSizeError(f"{small}; here they are axes {rows} and {cols} of the image {shape}", cols)
    layout = StackLayout(ndim, frame, channel_axis, tuple(sorted(fixed.items())))
    return StackAxes(layout, options, drop_alpha=bool(rgb) and shape[-1] == 4)


class FrameSizeError(ValueError):
    """Frames (rows x columns) thinner than SAM 2 can segment; ``cols`` is the axis read as the columns."""

    def __init__(self, message: str, cols: int) -> None:
        super().__init__(message)
        self.cols = cols


def _small_axis_hint(shape: Tuple[int, ...], decided_cols: int, names: Mapping[str, str]) -> str:
    """For frames too small because a short axis was read as the columns (e.g. T of a (Y, X, T) stack): what that axis
    may hold instead, frames or channels, each with its option; "" for any other shape (a thin strip)."""
    n = shape[decided_cols]
    if n > MAX_CHANNELS or len(shape) < 3:
        return ""
    return (f". If axis {decided_cols} (size {n}) holds the frames, pass {option_words(names, 'frame_axis', decided_cols)}; "
            f"if it holds channels, pass {option_words(names, 'channel_axis', decided_cols)} with "
            f"{option_words(names, 'channel', PLACEHOLDER)} (0..{n - 1}) or {option_words(names, 'channel', 'mean')}")


def _channel_options(shape: Tuple[int, ...], channel_axis: Optional[int], channel: Union[int, str, None],
                     rgb: bool, names: Mapping[str, str]) -> Dict[str, Any]:
    if channel is None:
        return {}
    if channel_axis is None or rgb:
        raise ValueError(f"{names['channel']}={channel!r} needs a channel axis: pass {names['channel_axis']}=<axis> "
                         "(RGB images are used in colour)")
    if isinstance(channel, str):
        if channel.lower() in COMPOSITES:
            return {"composite": channel.lower()}
        if not channel.strip().isdigit():
            raise ValueError(f"{names['channel']} must be a channel index or one of {COMPOSITES}, got {channel!r}")
        channel = int(channel)
    if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 0 <= channel < shape[channel_axis]:
        raise ValueError(f"{names['channel']} must be a channel index 0..{shape[channel_axis] - 1} or one of "
                         f"{COMPOSITES}, got {channel!r}")
    return {"channel": int(channel)}


def prompt_rows(rows: Any, width: int, name: str, columns: str) -> np.ndarray:
    """``rows`` as a float (N, width) array; ValueError naming ``name`` and the accepted ``columns``."""
    try:
        array = np.asarray(rows, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be rows {columns} of numbers; got {rows!r:.200}") from None
    if array.size == 0:
        return np.zeros((0, width))
    if array.ndim == 1 and array.shape[0] == width:
        array = array[None]
    if array.ndim != 2 or array.shape[1] != width:
        got = f"rows of {array.shape[1]} values" if array.ndim == 2 else f"an array of shape {array.shape}"
        raise ValueError(f"{name} must be rows {columns} ({width} values each); got {got}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must hold finite numbers; got NaN or infinity")
    return array


def table_prompts(clicks: Any, boxes: Any, frame_axis: Optional[int] = None, why: str = "frame_axis"
                  ) -> Tuple[Any, Any]:
    """``clicks`` and ``boxes`` of :func:`segment` with tables (pandas DataFrames) read by their column names
    (:func:`.prompts_csv.prompts_from_table`: frame, obj_id, y, x, label[, y1, x1], as a prompts CSV): a table's
    click rows join the clicks and its box rows the boxes; a table given as ``boxes`` must hold boxes only. Rows
    (lists, arrays) are left as they are: positional, (frame, y, x, label, obj_id) and (frame, y0, x0, y1, x1,
    obj_id). ``frame_axis``: the stack's frame axis as stored (None: no frames); napari's CSV of a (T, Y, X) layer,
    whose axis-0 is read as the frame, is refused where it is not 0, naming the columns to rename and ``why`` the
    frames lie there (:func:`.prompts_csv.check_napari_table_frame_axis`)."""
    if not is_table(clicks) and not is_table(boxes):
        return clicks, boxes
    found_clicks: list = []
    found_boxes: list = []
    for name, rows in (("clicks", clicks), ("boxes", boxes)):
        if is_table(rows):
            check_napari_table_frame_axis(rows, frame_axis, why, name)
            table_clicks, table_boxes = prompts_from_table(rows, name)
            if name == "boxes" and table_clicks:
                raise ValueError("boxes: a table given as boxes must have y1 and x1 on every row (the corner opposite "
                                 "(y, x)); pass a table of clicks and boxes as clicks")
            found_clicks += table_clicks
            found_boxes += table_boxes
        else:
            rows = prompt_rows(rows, 5 if name == "clicks" else 6, name,
                               "(frame, y, x, label, obj_id)" if name == "clicks" else "(frame, y0, x0, y1, x1, obj_id)")
            (found_clicks if name == "clicks" else found_boxes).extend(tuple(row) for row in rows)
    return found_clicks, found_boxes


def segment(
    image: Any,
    clicks: Sequence[Sequence[float]] = (),
    boxes: Sequence[Sequence[float]] = (),
    model: ModelArg = "demo",
    checkpoint: WeightsArg = "download",
    device: str = "auto",
    image_size: ImageSizeArg = None,
    frame_axis: int = 0,
    direction: str = "both",
    progress: Optional[Callable[[int, int], None]] = None,
    *,
    rgb: Optional[bool] = None,
    channel_axis: Optional[int] = None,
    channel: Union[int, str, None] = None,
    fixed: Optional[Mapping[int, int]] = None,
    contrast_limits: Optional[Sequence[float]] = None,
    smooth: SmoothArg = "auto",
    object_window: ObjectWindowArg = AUTO,
    invert: bool = False,
    frames: FrameRangeArg = None,
) -> np.ndarray:
    """Segment and track objects through ``image``; returns uint32 labels of the image's shape less its colour axis:
    (T, Y, X) for a stack, (Y, X) for a single 2-D image (as :func:`track_cells` returns); with ``frames``, the frame
    axis covers those frames only.

    image: (T, Y, X) stack or (Y, X) image, RGB(A) as a trailing axis of 3 or 4 (detected when ``rgb`` is
        None for 3D/4D arrays, with a UserWarning naming both readings where the data are not uint8:
        :func:`colour_guess`; fluorescence channels there: channel_axis=-1 and ``channel``), a napari Image
        layer, anything ``np.asarray`` takes (nested lists), or a path (TIFF, .npy, zarr, a folder of frames).
        Other 4D+ data: ``frame_axis`` is propagated, ``channel_axis`` holds channels (``channel``:
        an index, "mean" or "max"; 3 channels without it are RGB) and ``fixed`` = {axis: index} pins
        each remaining axis (e.g. z in (T, Z, Y, X)); the labels keep those axes, filled at the slice.
        Frames after the rows and columns, e.g. (Y, X, T): a TIFF whose axes say so (YXT) is read frames first
        (``frame_axis`` 0 then means its T), and ``frame_axis`` naming the last axis (channels aside) of an array
        reads the two axes before it as rows and columns where it is shorter than both
        (:func:`~.axis_moves.rows_columns_last`; said in a UserWarning); the labels keep the stack's
        order. Frames thinner than 8 px on a side, and bool images (``image.astype(np.uint8)``), are refused.
    clicks: rows (frame, y, x, label, obj_id), label 1 positive / 0 negative, in pixel coordinates; or a table with
        named columns (a pandas DataFrame, e.g. ``pandas.read_csv("prompts.csv")``) read by its names as the prompts
        CSV of ``napari-sam2 track`` (frame, obj_id, y, x, label[, y1, x1]: rows with y1, x1 are boxes), a table
        without those names refused with the names it needs (``napari_sam2.prompts_csv.read_prompts(path)`` gives
        (clicks, boxes) rows of such a file); napari's CSV of a (T, Y, X) layer (axis-0 read as the frame) is refused
        for a stack whose frames are not its axis 0 (``frame_axis=2``, a YXT TIFF), naming the columns to rename. An
        object's negative clicks alone on a frame are a correction of its tracked mask there: applied once propagation
        has made that mask, then propagation runs again (as clicking after *Propagate* in the widget does). Each object
        needs a positive click or a box on some frame.
    boxes: rows (frame, y0, x0, y1, x1, obj_id). A single 2-D image has frame 0 only: clicks and boxes on any
        other frame are refused (as by ``napari-sam2 track``).
    direction: "forward", "backward" or "both" from the first prompted frame; a one-way direction with nothing to
        track from there (backward from frame 0, forward from the last) is refused, as by ``napari-sam2 track``.
    progress: called with (frames done, frames to do) during propagation.
    model / checkpoint: the embedded demo model by default. model: a preset name (``sam2_model.list_models()``),
        built on every call, or a model built once with ``sam2_model.build_model`` and used as it is (a notebook that
        segments many stacks builds it once: ``net = sam2_model.build_model("demo"); segment(stack, clicks,
        model=net)``); with a built model, checkpoint, device and image_size stay at their defaults (it keeps its
        own; "auto" object windows are measured for its preset). checkpoint is one of
        ``sam2_model.build.Weights`` ("embedded": the demo's shipped weights, "download": an official
        preset's cached or downloaded file (the demo's embedded ones), "random": testing only) or a path.
    image_size: the model's input size (a multiple of 32), "auto" (picked from the size of the objects in
        the first prompted frame, :func:`prompted_frame`: see :func:`sam2_model.input_size.suggest_image_size`),
        or None (the model's own).
    contrast_limits: (low, high) grey values mapped to black and white for the model (default: the stack's
        0.5 and 99.8 percentiles; 0 and 255 for uint8). For dim cells on a noisy background, limits that make the
        background black help the demo model (docs/training_data.md: one click on MSC cells, IoU 0.23 -> 0.42).
    smooth: blur every frame by a Gaussian of this many pixels before the model sees it; "off" (or 0, None): no blur;
        "auto" (default): chosen from the first prompted frame's grain against its objects' contrast at the clicks
        (:func:`sam2_model.auto_smooth.smooth_choice`), for the demo model's shipped weights only: grainy, dim cells
        get a fraction of their width (the MSC time-lapse in object windows: 4 px, tracked IoU 0.277 -> 0.342), clean
        frames none (labels as with 0); official checkpoints, random weights and fine-tuned ones get 0. A blur "auto"
        chose is said once in a UserWarning ("smoothing 4 px: grainy frames (grain 0.20)"); the session runs with
        the px.
    invert: the model sees 1 - x of each frame's [0, 1] values (after the contrast limits and smoothing), for dark
        objects on a bright background (brightfield, phase contrast, stained histology): the demo model knows bright
        objects on dark. On dark discs on a bright background, one click each: IoU 0.61 -> 0.96 (README, *Dark
        objects on a bright background*). The labels and every measured intensity stay in the image's own values.
    object_window: segment and track each object in a square window of this many frame px that follows it
        (:class:`sam2_model.windowed_session.WindowedSession`); "auto" (default): windows only where the objects of the
        first prompted frame are small against the frame (:func:`sam2_model.windows.window_side`; demo model only),
        e.g. nuclei 24 px wide in 512 x 512 frames get 192 px windows; None or "off": every object on the whole frame
        (better for membrane-stained cells: README, *Object windows*). Windows cost one model input per object and
        frame instead of one per frame.
    frames: segment part of a stack: (first, last), both included (as ``napari-sam2 evaluate --frames A-B``; numpy
        integers too), or a range of step 1; None (default): every frame. Only those frames are read (a file path
        stays read lazily, a frame at a time), and the default contrast limits are sampled from them. Frame numbers
        stay the movie's: the clicks' and boxes' frames are the movie's (each must lie in the range), and frame
        ``first + i`` of the movie is index ``i`` of the labels' frame axis: labels of (last - first + 1, Y, X) for a
        (T, Y, X) stack. Warnings about blank frames name the movie's frames too (the session is told the range's
        first frame: ``first_frame=``). A one-way ``direction`` from the range's first (backward) or last (forward)
        frame is refused.
        Not for a single 2-D image. A reversed range, one outside the movie, or numbers that are not integers are a
        ValueError before any model work.
    """
    check_model_choice(model, checkpoint, device, image_size)
    is_layer = hasattr(image, "rgb") and hasattr(image, "data")  # a napari Image layer
    if is_layer and rgb is None:
        rgb = bool(image.rgb)
    with opened_image(image) as data:  # a file opened here is closed when segment() returns, fails or is stopped
        check_dtype(data.dtype)
        stack_shape = tuple(data.shape)
        asked = dict(frame_axis=frame_axis, rgb=rgb, channel_axis=channel_axis, channel=channel, fixed=fixed)
        data, given, moved = read_rows_columns_last(data, asked, API_NAMES)
        with numbered_as_read(moved, stack_shape):
            axes = resolve_axes(data.shape, names=API_NAMES, axes=getattr(data, "axes", None), **given)
        if moved is not None:
            warnings.warn(f"{moved.describe(stack_shape)}; the labels come back in the stack's own order",
                          stacklevel=2)
        guess = colour_guess(data.shape, data.dtype, given.get("rgb"), axes, source=image)  # a TIFF's word counts
        if guess is not None:
            warnings.warn(guess, stacklevel=2)
        layout = axes.layout
        chosen = stack_frame_range(frames, layout, data.shape)  # None: every frame
        if axes.drop_alpha:
            data = WithoutAlpha(data)
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(map(repr, DIRECTIONS))}, got {direction!r}")
        check_image_size(image_size)
        check_object_window(object_window)
        limits = check_contrast_limits(contrast_limits)
        asked_smooth = check_smooth_option(smooth)  # "auto" or px; measured once the model and frame are known
        flip = check_invert(invert)
        stored = layout.frame_axis if moved is None or layout.frame_axis is None else moved.order[layout.frame_axis]
        clicks, boxes = table_prompts(clicks, boxes, stored,  # napari's (T, Y, X) CSV: axis-0 must be the frames
                                      f"frame_axis={frame_axis}" if frame_axis else "as the TIFF's axes say")
        clicks = prompt_rows(clicks, 5, "clicks", "(frame, y, x, label, obj_id)")
        boxes = prompt_rows(boxes, 6, "boxes", "(frame, y0, x0, y1, x1, obj_id)")
        if chosen is not None:
            _check_prompts_in_range(clicks, boxes, chosen)
        _check_prompts(clicks, boxes, layout, data.shape)  # the movie's frame numbers, also with a range

        def coords(frame: float, y: float, x: float) -> list:
            point = [0.0] * layout.ndim
            if layout.frame_axis is not None:
                point[layout.frame_axis] = frame
            for axis, index in layout.fixed:
                point[axis] = index
            rows, cols = layout.spatial_axes
            point[rows], point[cols] = y, x
            return point

        point_coords = np.array([coords(f, y, x) for f, y, x, _, _ in clicks]).reshape(-1, layout.ndim)
        rectangles = [np.array([coords(f, y0, x0), coords(f, y1, x1)]) for f, y0, x0, y1, x1, _ in boxes]
        prompts = collect_prompts(point_coords, clicks[:, 3] > 0, clicks[:, 4].astype(int), rectangles,
                                  boxes[:, 5].astype(int), layout)
        start = prompted_frame(clicks, boxes)  # "auto" measures it
        if chosen is None:
            check_prompted_way(prompts, layout.num_frames(data.shape), direction, "api")  # as track, batch; before a model
        else:  # in the movie's numbers; then read and segment the range's frames only, numbered from its first
            check_way_in_range(start, chosen, direction)
            check_prompted_way(prompts, chosen.stop, direction, "api")
            prompts = [dataclasses.replace(prompt, frame=prompt.frame - chosen.start) for prompt in prompts]
            data = FrameRange(data, layout.frame_axis, chosen)
            start -= chosen.start
        measured = frame_seen(data, axes, start)
        size = resolve_image_size(image_size, measured, model) if image_size is not None else None
        net = model_to_use(model, checkpoint, device, size)
        spots = PromptSpots.of(prompts, start)  # the prompted objects: their width, their grain
        window = resolve_object_window(object_window, measured, model_name(model), net.image_size, prompts=spots)
        chosen_smooth = smooth_choice(asked_smooth, measured, spots.points, model=model if isinstance(model, str)
                                      else net, checkpoint=checkpoint)  # "auto": the shipped demo weights only
        sigma = chosen_smooth.sigma
        if chosen_smooth.describe():
            warnings.warn(chosen_smooth.describe(), stacklevel=2)
        labels = np.zeros(layout.labels_shape(data.shape), np.uint32)
        options = dict(axes.session_options, corrections_as_conditioning=True)  # corrections stick (issue 12, 1)
        if limits is not None:
            options["contrast_limits"] = limits
        if sigma:
            options["smooth"] = sigma
        if flip:
            options["invert"] = True
        if chosen is not None:
            options["first_frame"] = chosen.start  # the session's warnings name the movie's frames
        controller = SegmentationController(net, data, layout, labels, session_options=options,
                                            object_window=window)
        for _ in controller.segment_table(prompts, direction, progress):
            pass
        return labels if moved is None else moved.labels_back(labels, layout)


#: what ``model=`` of :func:`segment` and :func:`track_cells` accepts: a preset name, or a model already built
ModelArg = Union[str, "sm.SAM2Model"]


def check_model_choice(model: Any, checkpoint: Any = None, device: Any = "auto", image_size: Any = None) -> None:
    """Check ``model=`` (and, for a built model, the arguments that would rebuild it) before any work.

    model: a preset name (``sam2_model.list_models()``) or a :class:`sam2_model.SAM2Model` built by
    ``sam2_model.build_model`` (used as it is, not rebuilt: a notebook builds it once). Anything else is a TypeError
    naming its type (never its repr). A built model keeps its weights, device and input size: ``checkpoint`` must then
    be None or "download" (the defaults), ``image_size`` None, and ``device`` "auto" or the model's own device;
    otherwise a ValueError says how to get what was asked (build the model with it)."""
    if isinstance(model, str):
        return
    if not isinstance(model, sm.SAM2Model):
        known = ", ".join(sm.list_models())
        raise TypeError(f"model must be a preset name ({known}) or a model built by sam2_model.build_model; got a "
                        f"{type(model).__name__}")
    asked = []
    if checkpoint not in (None, "download"):
        asked.append(f"checkpoint={checkpoint!r:.80}")
    if image_size is not None:
        asked.append(f"image_size={image_size!r:.40}")
    if not (isinstance(device, str) and device.lower() == "auto"):
        wanted = sm.resolve_device(device)
        held = model.device
        if wanted.type != held.type or (wanted.index is not None and wanted.index != (held.index or 0)):
            asked.append(f"device={device!r:.40} (the model is on {held})")
    if asked:
        raise ValueError(f"{', '.join(asked)}: a model already built keeps its weights, device and input size "
                         f"({model.image_size} px); build it with them (sam2_model.build_model({model.config.name!r}, "
                         "checkpoint=..., device=..., image_size=...)) or pass model as a preset name")


def model_to_use(model: ModelArg, checkpoint: Any, device: Any, image_size: Optional[int]) -> "sm.SAM2Model":
    """The model to run: ``model`` itself where it is built (checked by :func:`check_model_choice`), else the preset
    built with ``checkpoint``, ``device`` and ``image_size``."""
    if isinstance(model, str):
        return sm.build_model(model, checkpoint=checkpoint, device=device, image_size=image_size)
    return model


def model_name(model: ModelArg) -> str:
    """The preset name of ``model`` (a name, or a built model's ``config.name``): what "auto" sizes and windows
    measure for."""
    return model if isinstance(model, str) else model.config.name


def check_dtype(dtype: Any) -> None:
    """ValueError for data that are not grey values (bool names its fix, ``.astype(np.uint8)``)."""
    if np.dtype(dtype).kind == "b":
        raise ValueError(f"image: {dtype_problem(dtype)}")
    if np.dtype(dtype).kind not in "iuf":
        raise ValueError(f"image must hold numbers (integer or floating point), got dtype {dtype}")


def open_image(image: Any) -> Any:
    """``image`` as :func:`segment` reads it: a napari Image layer's data (a pyramid's full-resolution level 0, read
    lazily), an array-like, or a path opened lazily (:func:`sam2_model.frames_io.open_stack`); a file of one image (a
    2-D or RGB TIFF, a PNG, JPEG or BMP) gives that (Y, X[, C]) image, as the same array would. ValueError "image:
    ..." where it cannot be read."""
    if hasattr(image, "rgb") and hasattr(image, "data"):  # a napari Image layer
        image = image.data[0] if getattr(image, "multiscale", False) else image.data
    try:
        data, one_image = open_stack_or_image(image) if isinstance(image, (str, os.PathLike)) else (open_stack(image),
                                                                                                     False)
    except ValueError as error:  # ragged nested lists, unknown files
        raise ValueError(f"image: {error}") from None
    return data[0] if one_image else data


@contextlib.contextmanager
def opened_image(image: Any) -> Iterator[Any]:
    """:func:`open_image` of ``image`` for the length of a ``with`` block: a file opened here from a path (a TIFF's,
    read lazily while frames are needed) is closed when the block ends, also on an error or Ctrl-C; arrays, layers
    and stacks the caller opened stay as they were."""
    data = open_image(image)
    try:
        yield data
    finally:
        if isinstance(image, (str, os.PathLike)):
            close_stack(data)


def frame_seen(data: Any, axes: StackAxes, index: int = 0) -> np.ndarray:
    """Frame ``index`` (along the propagated axis; 0 for a single image) of ``data`` as the model is shown it: (H, W),
    or (H, W, 3) colour. A picked channel or a composite of channels is applied, so that "auto" input sizes and
    object windows are measured on what is segmented, not on every channel mixed (data: the array-like, an RGBA one
    already without its alpha)."""
    index = int(index) if axes.layout.frame_axis is not None else 0
    frame = read_as_seen(FrameView(data, axes.layout), index, axes.session_options)  # only the channel picked is read
    check_finite(frame, f"frames: frame {index}")  # as every later read says it, before "auto" measures the frame
    return frame


def prompted_frame(clicks: Any = (), boxes: Any = ()) -> int:
    """The frame "auto" input sizes and object windows are measured on for a table of prompts: the first frame with a
    positive click or a box (where the objects' first masks are made and propagation starts; in a z-stack the slice
    clicked, not an empty slice above the sample), else the first clicked frame; 0 without prompts. clicks: rows
    (frame, y, x, label, obj_id); boxes: rows (frame, y0, x0, y1, x1, obj_id)."""
    starts = [int(row[0]) for row in clicks if float(row[3]) > 0] + [int(row[0]) for row in boxes]
    return min(starts or [int(row[0]) for row in clicks] or [0])


def frames_are_z(stack: Any, layout: StackLayout, calibration: Any = None, path: Any = None) -> Optional[str]:
    """What says the frames of ``stack`` read under ``layout`` are a volume's z slices, in words for the user: its
    axis letters (a TIFF's ``axes``, e.g. "ZYX", or, for a stack opened from the OME-Zarr folder ``path``, its axis
    names: :func:`~.file_calibration.stack_letters`) naming the frame axis Z, or its file's calibration (an
    :class:`~.export.Calibration` or None) saying so or giving the frame step in a length unit (an OME-Zarr's z axis
    in micrometers); None where nothing does (the frames are taken as time). The CLI, ``track_cells`` and batch runs
    decide divisions by it (:func:`auto_divisions`)."""
    from .file_calibration import frames_through_z, stack_letters
    from .units import unit_in

    letters = stack_letters(path, stack)
    if frames_through_z(letters, layout.frame_axis):
        return f"the stack's axes {letters} say so"
    if calibration is None:
        return None
    if getattr(calibration, "frames_through_z", False):
        return "the file's axes say so"
    unit = getattr(calibration, "time_unit", None)
    if unit is not None and unit_in(unit, "space") is not None:
        return f"the file gives their step in {unit}"
    return None


def auto_divisions(divisions: Optional[bool], through_z: Optional[str], ask: str = "divisions=True") -> Tuple[bool, str]:
    """Whether automatic tracking looks for divisions, and a line saying so where it decided it, not the user.

    divisions: as the user gave it (True or False: kept, whatever the frames are), or None (not said): on, except
    where the frames are a volume's z slices. through_z: what says they are (e.g. "the TIFF's axes ZYX say so"), or
    None (not known to be z: time). Cells do not divide along z, so through z a nucleus whose mask narrows to two
    touching slices would be "divided": off there, said in the line ("" where nothing was decided here), which
    names ``ask``, how the caller's user turns them on ("--divisions" on the command line)."""
    if divisions is not None:
        return bool(divisions), ""
    if through_z is None:
        return True, ""
    return False, (f"divisions off: the frames are z slices ({through_z}), and cells do not divide along z ({ask} "
                   "looks for them anyway)")


def _check_prompts(clicks: np.ndarray, boxes: np.ndarray, layout: StackLayout, shape: Sequence[int]) -> None:
    """Every prompt fits the image: frames exist (a single 2-D image has frame 0 only: a prompt on another frame
    is refused, as ``napari-sam2 track`` refuses it, so that a swapped column is caught), clicks lie inside, labels
    are 0/1, ids are positive."""
    if not len(clicks) and not len(boxes):
        raise ValueError("segment() needs at least one click or box: clicks=[(frame, y, x, label, obj_id)] or "
                         "boxes=[(frame, y0, x0, y1, x1, obj_id)]")
    height, width = (int(shape[a]) for a in layout.spatial_axes)
    frames = layout.num_frames(shape)
    for name, rows in (("clicks", clicks), ("boxes", boxes)):
        bad_ids = [n for n, obj in enumerate(rows[:, -1]) if obj != int(obj) or not 0 < obj <= MAX_OBJ_ID]
        if bad_ids:
            raise ValueError(f"{name} row {bad_ids[0]}: obj_id must be a positive integer up to {MAX_OBJ_ID} (labels "
                             f"are uint32), got {rows[bad_ids[0], -1]:.12g}")
    for n, (frame, y, x, label, _) in enumerate(clicks):
        if label not in (0, 1):
            raise ValueError(f"clicks row {n}: label must be 1 (positive) or 0 (negative), got {label:g}")
        problem = click_problem(frame, y, x, frames, height, width)  # a 2-D image has frame 0 only, as in the CLI
        if problem:
            raise ValueError(f"clicks row {n}: {problem}")
    for n, row in enumerate(boxes):
        problem = box_problem(row[0], frames, row[1:5], height, width)
        if problem:
            raise ValueError(f"boxes row {n}: {problem}")


#: ``frames=`` of :func:`segment` and :func:`track_cells`: (first, last), both included, in the movie's frame numbers
#: (as ``napari-sam2 evaluate --frames A-B``), a range of step 1, or None (every frame)
FrameRangeArg = Union[Tuple[int, int], range, None]


def check_frame_range(frames: Any, num_frames: int) -> Optional[range]:
    """``frames=`` of :func:`segment` / :func:`track_cells` as range(first, last + 1) within a movie of ``num_frames``
    frames (numbered 0..num_frames - 1); None for None (every frame).

    Accepted: (first, last), a tuple or list of two integers (numpy integers too, e.g. from ``np.unique``), both
    included, as ``evaluate_ctc(frames=(first, last))`` and ``napari-sam2 evaluate --frames A-B``; or a range of step 1.
    ValueError naming what was given and what is accepted for anything else (not integers, bools, first after last,
    frames outside the movie)."""
    if frames is None:
        return None
    span = f"the movie's frames 0-{num_frames - 1}" if num_frames > 1 else "the movie's only frame, 0"
    if isinstance(frames, range):
        if frames.step != 1 or len(frames) == 0:
            raise ValueError(f"frames={frames!r} must be consecutive frames (step 1, at least one); or pass (first, "
                             "last), both included")
        first, last = frames.start, frames.stop - 1
    elif (isinstance(frames, (tuple, list)) and len(frames) == 2
          and all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in frames)):
        first, last = int(frames[0]), int(frames[1])
    else:
        raise ValueError(f"frames must be (first, last), two integer frame numbers of the movie, both included (e.g. "
                         f"frames=(100, 150)), a range of step 1, or None for every frame; got {frames!r:.100}")
    if first > last:
        raise ValueError(f"frames={frames!r}: the first frame ({first}) is after the last ({last}); give "
                         f"frames=({last}, {first}) (first, last), both included")
    if first < 0 or last >= num_frames:
        raise ValueError(f"frames={frames!r} is outside {span} (frames are numbered from 0); give (first, last) "
                         f"within 0..{num_frames - 1}")
    return range(first, last + 1)


def stack_frame_range(frames: Any, layout: StackLayout, shape: Sequence[int]) -> Optional[range]:
    """:func:`check_frame_range` of ``frames`` for an image of ``shape`` read under ``layout``: its frames are those of
    the propagated axis; a single 2-D image (no frame axis) takes no ``frames`` (ValueError)."""
    if frames is None:
        return None
    if layout.frame_axis is None:
        raise ValueError(f"frames={frames!r:.100} picks frames of a stack, but the image {tuple(shape)} is a single 2-D "
                         "image (frame 0 only): leave frames out")
    return check_frame_range(frames, layout.num_frames(shape))


class FrameRange:
    """A lazy view of the frames ``frames`` (a range of step 1) of an array-like along its axis ``axis``: view index i
    on that axis is the data's frame ``frames[i]``; only what is indexed is read (a TIFF's, zarr's or dask array's
    frames outside the range never are). ``axes`` (a TIFF's axis letters) is kept where the data have it."""

    def __init__(self, data: Any, axis: int, frames: range) -> None:
        self.data = data
        self.axis = int(axis)
        self.frames = frames
        shape = [int(n) for n in data.shape]
        shape[self.axis] = len(frames)
        self.shape = tuple(shape)
        self.dtype = np.dtype(data.dtype)
        self.ndim = len(self.shape)
        if getattr(data, "axes", None) is not None:
            self.axes = data.axes

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = list(key) if isinstance(key, tuple) else [key]
        if any(k is Ellipsis for k in key):
            at = next(i for i, k in enumerate(key) if k is Ellipsis)
            key[at:at + 1] = [slice(None)] * (self.ndim - len(key) + 1)
        key += [slice(None)] * (self.ndim - len(key))
        index = key[self.axis]
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            if not -len(self.frames) <= index < len(self.frames):
                raise IndexError(f"frame {index} is out of range 0..{len(self.frames) - 1} of the frames read")
            key[self.axis] = self.frames[int(index)]
        elif isinstance(index, slice):
            picked = self.frames[index]
            stop = picked.stop if picked.stop >= 0 else None  # a backward slice down to frame 0
            key[self.axis] = slice(picked.start, stop, picked.step)
        else:  # lists or arrays of view indices
            key[self.axis] = np.asarray(self.frames)[np.asarray(index)]
        return np.asarray(self.data[tuple(key)])


def _check_prompts_in_range(clicks: np.ndarray, boxes: np.ndarray, frames: range) -> None:
    """Every click and box lies on a frame of ``frames`` (the movie's numbers): ValueError naming the row otherwise."""
    first, last = frames.start, frames.stop - 1
    for name, rows in (("clicks", clicks), ("boxes", boxes)):
        for n, frame in enumerate(rows[:, 0]):
            if frame == int(frame) and not first <= frame <= last:
                raise ValueError(f"{name} row {n}: frame {int(frame)} is outside frames=({first}, {last}) (frames "
                                 "are the movie's numbers): prompt a frame of the range, or widen it")


def check_way_in_range(start: int, frames: range, direction: str, start_name: str = "the first prompted frame") -> None:
    """Refuse a one-way ``direction`` with nothing to track from ``start`` within ``frames`` (the movie's numbers):
    backward from the range's first frame, forward from its last (one frame: any way passes). ``start_name`` says what
    ``start`` is, in the message."""
    first, last = frames.start, frames.stop - 1
    if len(frames) <= 1:
        return
    if direction == "backward" and start == first:
        raise ValueError(f"direction backward from {start_name} ({start}): it is the first of "
                         f"frames=({first}, {last}), there is nothing before it to track; give forward (or widen the "
                         "range)")
    if direction == "forward" and start == last:
        raise ValueError(f"direction forward from {start_name} ({start}): it is the last of "
                         f"frames=({first}, {last}), there is nothing after it to track; give backward (or widen the "
                         "range)")


class WithoutAlpha:
    """A lazy view of an RGBA array-like without its alpha channel (the model takes RGB)."""

    def __init__(self, data: Any) -> None:
        self.data = data
        self.shape = tuple(data.shape[:-1]) + (3,)
        self.dtype = data.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.data[key])[..., :3]


def get_widget(viewer: Any) -> Any:
    """The viewer's SAM 2 dock widget (opened if it is not yet); the one a script made and docked itself, if any (a
    viewer has one widget: a second ``SegmentationWidget(viewer)`` is refused)."""
    from ._widget import attached_widget

    widget = attached_widget(viewer)
    return widget if widget is not None else viewer.window.add_plugin_dock_widget(*WIDGET)[1]


def get_session(viewer: Any) -> Optional[sm.VideoSession]:
    """The VideoSession behind the open widget (None until something was segmented)."""
    controller = get_widget(viewer).controller
    return None if controller is None else controller.session
