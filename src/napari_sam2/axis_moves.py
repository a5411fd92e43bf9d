"""Stacks whose frames lie after their rows and columns, e.g. (Y, X, T): read frames first through a lazy view where the
user said so (a TIFF's axis letters such as YXT, or a ``frame_axis`` naming the last axis), and the options written as
the caller writes them (``channel_axis=3`` in Python, ``--channel-axis 3`` on the command line).

Used by :func:`~.api.segment`, :func:`~.console_tracking.track_cells`, ``napari-sam2 track`` and batch runs
(:meth:`~.batch_worker.AxisOptions.read`); Qt-free.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np

from .layout import StackLayout

PLACEHOLDER = "N"  # a channel index the user picks, written as is in messages


def option_words(names: Mapping[str, str], key: str, value: Any) -> str:
    """One option as the caller writes it: ``channel_axis=3`` in Python, ``--channel-axis 3`` on the command line."""
    name = names[key]
    if name.startswith("--"):
        return f"{name} {value}"
    return f"{name}={value!r}" if isinstance(value, str) and value != PLACEHOLDER else f"{name}={value}"


def axis_number(axis: Any, ndim: int) -> Optional[int]:
    """``axis`` as an index 0..ndim-1 (negative ones count from the end), or None for None or one out of range."""
    if axis is None or isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -ndim <= axis < ndim:
        return None
    return int(axis) % ndim


def rows_columns_not_last(letters: Any, ndim: int) -> Optional[str]:
    """For axis letters (a TIFF's, e.g. "YXT") that name rows (Y) and columns (X) with another axis after them
    (channels and colour aside): the letters with Y and X moved last (e.g. "TYX"); else None (no letters, or they
    end in Y, X)."""
    order = _letters_order(letters, ndim)
    return None if order is None else "".join(letters.upper()[a] for a in order)


def _letters_order(letters: Any, ndim: int) -> Optional[Tuple[int, ...]]:
    """The order of axes that puts a TIFF's Y and X last (colour, S, after them), where its letters put another axis
    after them; None where there is nothing to move (or Y, X come as X, Y: a transposed image is left as it is)."""
    if not isinstance(letters, str) or len(letters) != ndim:
        return None
    upper = letters.upper()
    if upper.count("Y") != 1 or upper.count("X") != 1:
        return None
    rows, cols = upper.index("Y"), upper.index("X")
    plain = [a for a in range(ndim) if upper[a] not in "CS"]
    if rows > cols or plain[-2:] == [rows, cols]:
        return None
    colour = [a for a in range(ndim) if upper[a] == "S"]
    return tuple([a for a in range(ndim) if a not in (rows, cols, *colour)] + [rows, cols] + colour)


@dataclass(frozen=True)
class AxisMove:
    """How a stack whose rows and columns are not its last axes is read (:func:`rows_columns_last`): view axis i is
    the stack's axis ``order[i]`` (rows and columns last, colour after them); ``options`` are the axis arguments in
    the view's numbering; ``letters`` the view's axis letters (None where the stack has none)."""

    order: Tuple[int, ...]
    options: Dict[str, Any]
    letters: Optional[str]
    reason: str  # what said where the frames are, for the note (e.g. "the TIFF's axes YXT")

    def view(self, data: Any) -> "MovedAxes":
        return MovedAxes(data, self.order, self.letters)

    def labels_back(self, labels: np.ndarray, layout: StackLayout) -> np.ndarray:
        """Labels of the view (its axes less the channel axis of ``layout``) in the stack's own axis order."""
        kept = [self.order[i] for i in range(len(self.order)) if i != layout.channel_axis]
        return np.ascontiguousarray(np.transpose(labels, [kept.index(a) for a in sorted(kept)]))

    def describe(self, shape: Sequence[int]) -> str:
        """One line for users (``shape``: the stack's), e.g. "the TIFF's axes YXT put the frames (T, axis 2) after the
        rows and columns: read as (6, 96, 96) (TYX), frames first"."""
        view_shape = tuple(int(shape[a]) for a in self.order)
        return f"{self.reason}: read as {view_shape}{f' ({self.letters})' if self.letters else ''}, frames first"


class MovedAxes:
    """A lazy view of an array-like with its axes in ``order`` (view axis i is the data's axis ``order[i]``); indexing
    reads only what is asked for (ints and slices), so a frame reads one frame of a TIFF, zarr or dask stack."""

    def __init__(self, data: Any, order: Sequence[int], letters: Optional[str] = None) -> None:
        self.data = data
        self.order = tuple(int(a) for a in order)
        self.shape = tuple(int(data.shape[a]) for a in self.order)
        self.dtype = np.dtype(data.dtype)
        self.ndim = len(self.shape)
        self.axes = letters  # read by resolve_axes (C, S) and for the labels' letters, as a TIFF's

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > self.ndim or not all(isinstance(k, (int, np.integer, slice)) for k in key):
            raise TypeError(f"a view of moved axes takes up to {self.ndim} ints or slices, got {key!r}")
        key = key + (slice(None),) * (self.ndim - len(key))
        source: list = [slice(None)] * self.ndim
        for i, k in enumerate(key):
            source[self.order[i]] = k
        part = np.asarray(self.data[tuple(source)])
        kept = [a for a in range(self.ndim) if isinstance(source[a], slice)]  # the data's order
        wanted = [self.order[i] for i in range(self.ndim) if isinstance(key[i], slice)]
        return np.transpose(part, [kept.index(a) for a in wanted])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        whole = self[()]
        return whole.astype(dtype) if dtype is not None else whole


def rows_columns_last(shape: Sequence[int], options: Mapping[str, Any], letters: Optional[str],
                      names: Mapping[str, str]) -> Optional[AxisMove]:
    """How to read a stack whose frames lie after its rows and columns, e.g. (Y, X, T), or None for the usual layout.

    Only where it is said: a TIFF's axis letters with Y and X before another axis (e.g. "YXT": the frames are T, and
    ``frame_axis`` 0, the default, means T there; an explicit ``frame_axis`` is the stack's own axis number), or a
    ``frame_axis`` naming the last axis (channels aside) of a stack whose letters are unknown or tifffile's guess
    ("QYX") and that is shorter than both axes before it: those are then the rows and columns (a last axis as long
    as them is more likely the columns of a (T, Y, X) stack named by mistake: not moved, refused by resolve_axes). ``options``: segment()'s axis arguments
    (frame_axis, rgb, channel_axis, channel, fixed), given back in the view's numbering. ValueError for a frame_axis
    that the letters call Y or X (in the words of ``names``)."""
    shape = tuple(int(n) for n in shape)
    order = _letters_order(letters, len(shape))
    if order is not None:
        return _move_by_letters(shape, str(letters).upper(), order, options, names)
    return _move_by_frame_axis(shape, options, letters, names)


def _remapped(options: Mapping[str, Any], order: Sequence[int], frame: int, ndim: int) -> Dict[str, Any]:
    """The axis arguments with axis numbers of the stack turned into the view's (``frame``: the stack's frame axis)."""
    new = {old: i for i, old in enumerate(order)}
    channel = axis_number(options.get("channel_axis"), ndim)
    fixed = {}
    for axis, index in dict(options.get("fixed") or {}).items():
        number = axis_number(axis, ndim)
        fixed[new[number] if number is not None else axis] = index
    return dict(options, frame_axis=new[frame], channel_axis=options.get("channel_axis") if channel is None else
                new[channel], fixed=fixed)


def _move_by_letters(shape: Tuple[int, ...], letters: str, order: Tuple[int, ...], options: Mapping[str, Any],
                     names: Mapping[str, str]) -> AxisMove:
    ndim = len(shape)
    frame = axis_number(options.get("frame_axis"), ndim)
    fixed = {axis_number(a, ndim) for a in dict(options.get("fixed") or {})}
    channel = axis_number(options.get("channel_axis"), ndim)
    spare = [a for a in range(ndim) if letters[a] not in "YXCS" and a not in fixed and a != channel]
    if frame is not None and letters[frame] in "YX":
        said = [a for a in spare if letters[a] == "T"] or (spare if len(spare) == 1 else [])
        if frame != 0 or not said:  # 0 is the default: the TIFF's T (or its one other axis) is meant
            choices = ", ".join(f"{a} ({letters[a]})" for a in spare) or "none"
            raise ValueError(f"{option_words(names, 'frame_axis', options.get('frame_axis'))} is {letters[frame]} in the "
                             f"TIFF's axes {letters}, its {'rows' if letters[frame] == 'Y' else 'columns'}: propagate "
                             f"through one of the axes {choices}")
        frame = said[0]
    view_letters = "".join(letters[a] for a in order)
    if frame is None:  # out of range: resolve_axes names it, in the view's numbering
        return AxisMove(order, dict(options), view_letters, f"the TIFF's axes {letters} end in other axes than Y, X")
    return AxisMove(order, _remapped(options, order, frame, ndim), view_letters,
                    f"the TIFF's axes {letters} put the frames ({letters[frame]}, axis {frame}) after the rows and "
                    "columns")


def _move_by_frame_axis(shape: Tuple[int, ...], options: Mapping[str, Any], letters: Optional[str],
                        names: Mapping[str, str]) -> Optional[AxisMove]:
    ndim = len(shape)
    frame = axis_number(options.get("frame_axis"), ndim)
    known = isinstance(letters, str) and len(letters) == ndim
    if frame is None or frame == 0 or (known and "Q" not in letters.upper() and set("YX") <= set(letters.upper())):
        return None  # the usual layout, or letters that say where the rows and columns are (resolve_axes checks)
    channel = axis_number(options.get("channel_axis"), ndim)
    if channel is None and options.get("rgb"):
        channel = ndim - 1
    if channel is None and known:
        upper = letters.upper()
        channel = next((a for a in range(ndim) if upper[a] in "CS"), None)
    plain = [a for a in range(ndim) if a != channel]
    if frame == channel or len(plain) < 3 or frame != plain[-1]:
        return None
    rows, cols = plain[-3], plain[-2]
    fixed = {axis_number(a, ndim) for a in dict(options.get("fixed") or {})}
    if rows in fixed or cols in fixed:
        return None
    if not shape[frame] < min(shape[rows], shape[cols]):  # e.g. X of a (T, Y, X) stack named by mistake: refused
        return None  # (resolve_axes: "a spatial (row/column) axis ... np.moveaxis"), never read as scrambled frames
    trailing = [channel] if channel == ndim - 1 else []
    order = tuple([a for a in range(ndim) if a not in (rows, cols, *trailing)] + [rows, cols] + trailing)
    view_letters = None
    if known:
        named = {frame: "T", rows: "Y", cols: "X"}
        view_letters = "".join(named.get(a, letters.upper()[a]) for a in order)
    said = option_words(names, "frame_axis", options.get("frame_axis"))
    return AxisMove(order, _remapped(options, order, frame, ndim), view_letters,
                    f"{said} names the stack's last axis, after its rows and columns (axes {rows} and {cols})")


def read_rows_columns_last(data: Any, options: Dict[str, Any], names: Mapping[str, str]
                           ) -> Tuple[Any, Dict[str, Any], Optional[AxisMove]]:
    """``data`` and its axis ``options`` (frame_axis, rgb, channel_axis, channel, fixed) as :func:`~.api.resolve_axes`
    takes them: for a stack whose frames lie after its rows and columns (:func:`rows_columns_last`, e.g. a TIFF of axes
    YXT), a lazy view with them last and the options in its numbering, and the move (None: ``data`` as it is)."""
    moved = rows_columns_last(data.shape, options, getattr(data, "axes", None), names)
    if moved is None:
        return data, options, None
    return moved.view(data), moved.options, moved


@contextmanager
def numbered_as_read(moved: Optional[AxisMove], shape: Sequence[int]) -> Iterator[None]:
    """A ValueError raised inside (resolve_axes' words, in the numbers of the view ``moved`` made of a stack of
    ``shape``) raised again with how the stack was read and how its axes map: the user gives the stack's own numbers.
    Nothing changes where ``moved`` is None."""
    try:
        yield
    except ValueError as error:
        if moved is None:
            raise
        pairs = ", ".join(f"{i} is its axis {a}" for i, a in enumerate(moved.order))
        raise ValueError(f"{error} (axis numbers of the stack as read: {moved.describe(shape)}; there axis {pairs}; "
                         "give the options in the stack's own numbers)") from None
