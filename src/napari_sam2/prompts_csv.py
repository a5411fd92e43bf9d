"""Prompt tables: the CSV files the command line and batch runs read, and the row checks ``segment()`` shares.

A prompts CSV has a header and one row per click or box, in pixel coordinates of the stack::

    frame,obj_id,y,x,label,y1,x1
    0,1,120.5,85,1,,          <- a positive click on object 1 in frame 0
    4,1,130,90,0,,            <- a negative click (a correction) on frame 4
    0,2,40,30,,90,70          <- a box from (y, x) = (40, 30) to (y1, x1) = (90, 70) for object 2

Header names are case-insensitive and may come in any order (``Frame,Obj_ID,Y,X`` is fine); other
columns are ignored. ``label`` is 1 (positive, the default when empty) or 0 (negative); a table without a ``label``
column but with napari's ``positive`` (1 / 0, 1.0 / 0.0 or True / False: napari's CSV of a layer whose axis columns
were renamed) reads that as the label, so its negative clicks stay negative; a box row
has both ``y1`` and ``x1`` and no label (or 1). Whole numbers written as floats ("1.0", "12.0": pandas writes a
column with empty cells so) are read as the integers. Every error names the file and the line.
:func:`prompts_from_table` reads a pandas DataFrame of the same columns (``segment(clicks=table)``).

napari's own CSV of the widget's layers is read too (File > Save Selected Layers; napari writes the layer's data
coordinates, the pixels of the image, whatever its scale): a clicks layer's ``index,axis-0,axis-1,axis-2,positive,
obj_id`` as frame, y, x, label (``positive`` 1/0 or True/False) and obj_id, ``axis-0,axis-1`` of a 2-D image as y, x on
frame 0; a boxes layer's ``index,shape-type,vertex-index,axis-0,...`` once an ``obj_id`` column is added (napari writes
no features of a Shapes layer), each rectangle's corners as a box. More axes (a (T, Z, Y, X) image) are refused with
the columns to rename: the table cannot say which axis holds the frames. :func:`check_napari_frame_axis` refuses
napari's CSV of a (T, Y, X) layer for a stack whose frames are not its axis 0 (``--axis``), and
:func:`check_napari_table_frame_axis` such a table (``segment(clicks=table, frame_axis=2)``).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from sam2_model.prompt_validation import frame_span_words, inside_frame, zero_extent

from .layout import StackLayout
from .prompts import FramePrompt, collect_prompts

#: a click row for ``segment()``: (frame, y, x, label, obj_id)
Click = Tuple[int, float, float, int, int]
#: a box row for ``segment()``: (frame, y0, x0, y1, x1, obj_id)
Box = Tuple[int, float, float, float, float, int]

REQUIRED_COLUMNS = ("frame", "obj_id", "y", "x")
MAX_OBJ_ID = 2**32 - 1  # the labels written are uint32
OPTIONAL_COLUMNS = ("label", "y1", "x1")
EXPECTED_HEADER = "frame,obj_id,y,x,label[,y1,x1]"
#: what napari's File > Save Selected Layers writes for the widget's clicks layer over a (T, Y, X) image
NAPARI_POINTS_HEADER = "index,axis-0,axis-1,axis-2,positive,obj_id"


def read_prompts(path: Union[str, Path]) -> Tuple[List[Click], List[Box]]:
    """(clicks, boxes) rows for :func:`napari_sam2.api.segment` from a prompts CSV (see the module doc).

    Raises ValueError naming the file and line for a missing column, a non-number, a label other
    than 0/1, a negative frame or object id, half a box, or a table without any prompt; napari's CSV of a layer is
    read as the module doc says, or refused naming the columns expected.
    """
    clicks, boxes, _, _ = read_prompt_lines(path)
    return clicks, boxes


def read_prompt_lines(path: Union[str, Path]) -> Tuple[List[Click], List[Box], List[int], List[int]]:
    """As :func:`read_prompts`, plus the file line of every click and every box (for later messages)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: spreadsheets often write a BOM
            reader = csv.reader(handle)
            header = next(reader, None)
            names = [name.strip().lower() for name in header or ()]
            napari = _napari_reading(names, str(path))
            if napari is None:
                _columns(path, header)  # our own columns, or the error naming the missing ones
            first = {name: names.index(name) for name in names}  # a name given twice: its first column
            rows = [(line, {name: (values[i].strip() if i < len(values) else "") for name, i in first.items()})
                    for line, values in enumerate(reader, start=2)
                    if any(value.strip() for value in values)]  # blank lines skipped
    except (UnicodeDecodeError, csv.Error) as error:  # an image or another binary file given as the prompts
        raise ValueError(f"{path} is not a text CSV file ({_why_not_text(error)}): prompts are a CSV table with the "
                         f"header {EXPECTED_HEADER} and one row per click or box") from None
    clicks, boxes, click_lines, box_lines = _rows_to_prompts(rows, napari, lambda line: f"{path}, line {line}",
                                                             _own_polarity(names, napari))
    if not clicks and not boxes:
        raise ValueError(f"{path} holds no prompts: add one row per click (frame,obj_id,y,x,label) or box (+y1,x1)")
    return clicks, boxes, click_lines, box_lines


def _own_polarity(names: Sequence[str], napari: Optional["_NapariColumns"]) -> Optional[str]:
    """The column our own columns' table takes its label from where it has no ``label``: napari's ``positive``
    (napari's CSV whose axis columns were renamed to frame, y, x); None where it has ``label`` or neither, or where
    the table is read as napari's (``napari``)."""
    return "positive" if napari is None and "label" not in names and "positive" in names else None


def _rows_to_prompts(rows: Sequence[Tuple[int, Dict[str, str]]], napari: Optional["_NapariColumns"],
                     where: Callable[[int], str], polarity: Optional[str] = None
                     ) -> Tuple[List[Click], List[Box], List[int], List[int]]:
    """(clicks, boxes, their rows' numbers) of ``rows`` ((number, {lower-case column name: text})), read as our
    columns or, with ``napari``, as napari's CSV of a layer; ``where(number)`` starts each error's words.
    ``polarity``: the column read as our columns' label (:func:`_own_polarity`), None: ``label``."""
    clicks: List[Click] = []
    boxes: List[Box] = []
    click_lines: List[int] = []
    box_lines: List[int] = []
    if napari is not None and napari.shapes:
        for line, box in _napari_boxes(rows, napari, where):
            boxes.append(box)
            box_lines.append(line)
        return clicks, boxes, click_lines, box_lines
    said = napari.said if napari is not None else f" ({polarity} read as the label)" if polarity else ""
    for line, row in rows:
        try:
            if napari is not None:
                row = napari.click_row(row)
            elif polarity:
                row = {**row, "label": _polarity(row.get(polarity, ""), polarity)}
            prompt = _parse_row(row)
        except ValueError as error:
            raise ValueError(f"{where(line)}: {error}{said}") from None
        if len(prompt) == 6:
            boxes.append(prompt)  # type: ignore[arg-type]
            box_lines.append(line)
        else:
            clicks.append(prompt)  # type: ignore[arg-type]
            click_lines.append(line)
    return clicks, boxes, click_lines, box_lines


def is_table(rows: object) -> bool:
    """Whether ``rows`` is a pandas DataFrame, which :func:`prompts_from_table` reads by its column names (another
    library's table: convert it, e.g. polars' ``to_pandas()``, or pass its rows as an array)."""
    return any(cls.__module__.split(".")[0] == "pandas" and cls.__name__ == "DataFrame" for cls in type(rows).__mro__)


def prompts_from_table(table: object, name: str = "clicks") -> Tuple[List[Click], List[Box]]:
    """(clicks, boxes) rows for ``segment()`` from a table with named columns (a pandas DataFrame, e.g.
    ``pandas.read_csv("prompts.csv")``), read by its column names as a prompts CSV is (module doc): frame, obj_id, y,
    x, and optionally label (1 where empty: NaN or None) and y1, x1 (a row with both is a box), case-insensitive, in
    any order, other columns ignored; or napari's CSV of a clicks or boxes layer (module doc). ``name``: the argument
    it came in, for messages. ValueError naming the missing columns (and the accepted ones), or the row and what is
    wrong in it; a table without rows gives no prompts."""
    found = [str(column) for column in table.columns]  # type: ignore[attr-defined]
    lower = [column.strip().lower() for column in found]
    napari = _napari_reading(lower, name)
    missing = [column for column in REQUIRED_COLUMNS if column not in lower]
    if napari is None and missing:
        raise ValueError(f"{name}: a table is read by its column names, {EXPECTED_HEADER} (case-insensitive, in any "
                         f"order, others ignored; or napari's CSV of the widget's clicks layer, {NAPARI_POINTS_HEADER}"
                         f"); missing {','.join(missing)} in {','.join(found) or 'nothing'} (or pass rows (frame, y, "
                         "x, label, obj_id) as a list or array)")
    records = table.to_dict("records")  # type: ignore[attr-defined]
    rows = [(number, {key: _as_text(record[column]) for key, column in zip(lower, table.columns)})  # type: ignore
            for number, record in enumerate(records)]
    clicks, boxes, _, _ = _rows_to_prompts(rows, napari, lambda number: f"{name} row {number}",
                                           _own_polarity(lower, napari))
    return clicks, boxes


_AXIS_COLUMN = re.compile(r"axis-(\d+)$")


@dataclass(frozen=True)
class _NapariColumns:
    """How napari's CSV of a layer is read: the columns of the frame (None: a 2-D image's, frame 0), y and x, the
    label's (``positive``, None: all positive) and whether it is a Shapes layer's (one row per corner)."""

    frame: Optional[str]
    y: str
    x: str
    label: Optional[str]
    shapes: bool

    @property
    def said(self) -> str:
        """How the columns were read, for the end of an error."""
        frame = f"{self.frame} as the frame, " if self.frame else "frame 0 (a 2-D image), "
        label = f", {self.label} as the label" if self.label and not self.shapes else ""
        return f" (napari's CSV of a {'Shapes' if self.shapes else 'Points'} layer, read with {frame}{self.y} as y, " \
               f"{self.x} as x{label})"

    def click_row(self, row: Dict[str, str]) -> Dict[str, str]:
        """A row of napari's Points CSV in our column names (frame, obj_id, y, x, label)."""
        read = {"frame": row.get(self.frame, "") if self.frame else "0", "obj_id": row.get("obj_id", ""),
                "y": row.get(self.y, ""), "x": row.get(self.x, "")}
        if self.label:
            read["label"] = _polarity(row.get(self.label, ""), self.label)
        return read


def _napari_reading(names: Sequence[str], source: str) -> Optional[_NapariColumns]:
    """How to read a table whose lower-case column names are ``names`` as napari's CSV of a layer (columns axis-0,
    axis-1, ... and none of frame, y, x), or None where it is not one (our own columns: frame, obj_id, y, x, ...).
    ValueError, starting with ``source``, for napari's CSV that cannot be read unambiguously: not 2 or 3 axes, no
    obj_id column."""
    axes = sorted(int(match.group(1)) for match in map(_AXIS_COLUMN.match, names) if match)
    if not axes or any(name in names for name in ("frame", "y", "x")):
        return None
    shapes = "shape-type" in names
    layer = "Shapes" if shapes else "Points"
    columns = ",".join(f"axis-{axis}" for axis in axes)
    if axes != list(range(len(axes))) or len(axes) not in (2, 3):
        raise ValueError(
            f"{source}: napari's CSV of a {layer} layer with the axes {columns}: only a layer over a (T, Y, X) stack "
            "(axis-0,axis-1,axis-2 read as frame,y,x) or a 2-D image (axis-0,axis-1 read as y,x) says which axis holds "
            "the frames. Rename the columns to frame, y and x (e.g. for a (T, Z, Y, X) image tracked at z = 5 with "
            "--fix 1=5 or fixed={1: 5}: axis-0 -> frame, axis-2 -> y, axis-3 -> x, keeping the rows with axis-1 = 5); "
            "positive is read as the label (1 / 0 or True / False) where there is no label column, other columns are "
            f"ignored. Accepted headers: {EXPECTED_HEADER}")
    if "obj_id" not in names:
        what = ("napari writes no features of a Shapes layer, so its CSV has no object ids: add a column obj_id "
                "holding each box's object on its rows (or write the boxes as rows frame,obj_id,y,x,y1,x1)"
                if shapes else "save the widget's clicks layer (SAM2 clicks [image]), whose points carry obj_id and "
                "positive, or add a column obj_id")
        raise ValueError(f"{source}: napari's CSV of a {layer} layer ({columns}) without an obj_id column: {what}")
    three = len(axes) == 3
    label = "positive" if "positive" in names else ("label" if "label" in names else None)
    return _NapariColumns("axis-0" if three else None, f"axis-{int(three)}", f"axis-{int(three) + 1}", label, shapes)


def check_napari_frame_axis(path: Union[str, Path], frame_axis: Optional[int], why: str = "--axis") -> None:
    """ValueError where the prompts CSV ``path`` is napari's CSV of a layer over a (T, Y, X) stack (its axis-0 is read
    as the frame) and the stack's frames are its axis ``frame_axis`` (as the stack is stored), not 0: the layer's
    axis-0 is then not the frame. The words name the columns to rename; ``why`` says what put the frames there
    ("--axis 2"). None for our own columns, a 2-D image's CSV, frames on axis 0 or no frame axis (a 2-D image)."""
    if not frame_axis:
        return
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return  # (read_prompt_lines says what is wrong with the file)
    problem = _napari_frame_problem([name.strip().lower() for name in header or ()], str(path), frame_axis, why)
    if problem:
        raise ValueError(f"{path}: {problem}")


def check_napari_table_frame_axis(table: object, frame_axis: Optional[int], why: str = "frame_axis",
                                  name: str = "clicks") -> None:
    """:func:`check_napari_frame_axis` for a table with named columns (a pandas DataFrame, ``segment(clicks=table)``):
    ValueError, starting with ``name`` (the argument it came in), where its columns are napari's CSV of a layer over a
    (T, Y, X) stack and the stack's frames are its axis ``frame_axis`` (as stored), not 0; the words name the columns
    to rename, as pandas renames them. None for anything else (:func:`prompts_from_table` reads or refuses it)."""
    if not frame_axis or not is_table(table):
        return
    names = [str(column).strip().lower() for column in table.columns]  # type: ignore[attr-defined]
    problem = _napari_frame_problem(names, name, frame_axis, why)
    if problem:
        raise ValueError(f"{name}: {problem}")


def _napari_frame_problem(names: Sequence[str], source: str, frame_axis: int, why: str) -> Optional[str]:
    """Why napari's CSV of a (T, Y, X) layer with the lower-case columns ``names`` cannot be read for a stack whose
    frames are its axis ``frame_axis`` (not 0), in words naming the renames; None where the columns are not that
    (our own columns, a 2-D image's layer, or a table :func:`_napari_reading` refuses with its own words)."""
    try:
        napari = _napari_reading(names, source)
    except ValueError:
        return None
    if napari is None or napari.frame is None:
        return None
    others = [f"axis-{axis}" for axis in range(3) if axis != frame_axis]
    renamed = (f"for a layer over this stack as stored: axis-{frame_axis} -> frame, {others[0]} -> y, {others[1]} -> "
               "x; " if len(others) == 2 else "")
    return (f"napari's CSV of a {'Shapes' if napari.shapes else 'Points'} layer reads axis-0 as the frame, but "
            f"the stack's frames lie along its axis {frame_axis} ({why}): rename the columns to frame, y and x "
            f"({renamed}positive is read as the label where there is no label column). Accepted headers: "
            f"{EXPECTED_HEADER}")


def _polarity(text: str, column: str) -> str:
    """A click's polarity as napari writes ``positive`` (1.0 / 0.0, True / False) -> "1", "0" ("" where empty)."""
    word = _whole(text).lower()
    if word in ("", "1", "0"):
        return word
    if word in ("true", "false"):
        return "1" if word == "true" else "0"
    raise ValueError(f"{column} must be 1 / True (positive) or 0 / False (negative), got {text!r}")


def _napari_boxes(rows: Sequence[Tuple[int, Dict[str, str]]], napari: _NapariColumns,
                  where: Callable[[int], str]) -> Iterator[Tuple[int, Box]]:
    """(first row's number, box) of each shape of napari's Shapes CSV (rows with one ``index`` are one shape's
    corners, in the order napari writes them): a rectangle's corners on one frame -> (frame, y0, x0, y1, x1, obj_id),
    its extent (as the widget reads a box); ValueError for another shape type, corners on several frames or several
    object ids, or a row without a number where the corners need one."""
    shapes: Dict[str, List[Tuple[int, Dict[str, str]]]] = {}
    for line, row in rows:
        shapes.setdefault(_whole(row.get("index", "")), []).append((line, row))
    for index, corners in shapes.items():
        first = corners[0][0]
        try:
            kinds = {row.get("shape-type", "rectangle") or "rectangle" for _, row in corners}
            if kinds != {"rectangle"}:
                raise ValueError(f"shape {index} is a {', '.join(sorted(kinds - {'rectangle'}))}: only rectangles "
                                 "are boxes")
            ids = {_whole(row.get("obj_id", "")) for _, row in corners} - {""}
            if len(ids) != 1:
                raise ValueError(f"box {index} needs one obj_id on its rows, got "
                                 f"{', '.join(sorted(ids)) if ids else 'none'}")
            frames = {_whole(row.get(napari.frame, "")) if napari.frame else "0" for _, row in corners}
            if len(frames) != 1:
                raise ValueError(f"box {index}'s corners lie on frames {', '.join(sorted(frames))}: a box is drawn "
                                 "on one frame")
            ys, xs = [], []
            for line, row in corners:
                try:
                    ys.append(_number(row, napari.y))
                    xs.append(_number(row, napari.x))
                except ValueError as error:
                    first = line
                    raise error
            read = {"frame": frames.pop(), "obj_id": ids.pop(), "y": repr(min(ys)), "x": repr(min(xs)),
                    "y1": repr(max(ys)), "x1": repr(max(xs))}
            yield first, _parse_row(read)  # type: ignore[misc]
        except ValueError as error:
            raise ValueError(f"{where(first)}: {error}{napari.said}") from None


def _as_text(value: object) -> str:
    """A table cell as a prompts CSV holds it: "" for NaN or None, whole floats without ".0" (pandas reads a column
    with empty cells as float)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _why_not_text(error: Exception) -> str:
    """What made a prompts file unreadable as text, in a few words."""
    if isinstance(error, UnicodeDecodeError):
        return f"byte {error.start} is not UTF-8 text"
    return str(error)


def _columns(path: Path, header: Optional[Sequence[str]]) -> Dict[str, int]:
    """Column index of each known name, matched case-insensitively."""
    names = [name.strip().lower() for name in header or ()]
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing and len(names) == 1:
        for separator, called in ((";", "semicolons (';')"), ("\t", "tabs")):  # spreadsheets in many languages
            if not [name for name in REQUIRED_COLUMNS if name not in names[0].split(separator)]:
                raise ValueError(f"{path}: its columns are separated by {called}, not commas: save it as CSV with "
                                 f"commas (and '.' as the decimal point), e.g. {EXPECTED_HEADER}")
    if missing:
        found = ",".join(header or ()) or "nothing"
        raise ValueError(
            f"{path}: the header must name at least frame,obj_id,y,x (and label, or y1,x1 for boxes); "
            f"missing {','.join(missing)} in {found} (napari's CSV of the widget's clicks layer, "
            f"{NAPARI_POINTS_HEADER}, is read too)"
        )
    return {name: names.index(name) for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if name in names}


def _parse_row(row: Dict[str, str]) -> Union[Click, Box]:
    frame = _integer(row, "frame")
    obj_id = _integer(row, "obj_id")
    if frame < 0:
        raise ValueError(f"frame must be 0 or more (frames count from 0), got {frame}")
    if not 0 < obj_id <= MAX_OBJ_ID:
        raise ValueError(f"obj_id must be a positive integer up to {MAX_OBJ_ID} (labels are uint32), got {obj_id}")
    y, x = _number(row, "y"), _number(row, "x")
    label_text = _whole(row.get("label", ""))
    if label_text not in ("", "0", "1"):
        raise ValueError(f"label must be 1 (positive) or 0 (negative), got {label_text!r}")
    y1_text, x1_text = row.get("y1", ""), row.get("x1", "")
    if y1_text or x1_text:
        if not (y1_text and x1_text):
            raise ValueError("a box needs both y1 and x1 (the corner opposite (y, x)); leave both empty for a click")
        if label_text == "0":
            raise ValueError("a box cannot be negative: leave its label empty (or 1), or make the row a click")
        return frame, y, x, _number(row, "y1"), _number(row, "x1"), obj_id
    return frame, y, x, 0 if label_text == "0" else 1, obj_id


def _whole(text: str) -> str:
    """``text`` of a whole number written as a float ("1.0", as pandas writes a column with empty cells) without its
    ".0"; any other text as it is."""
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value.is_integer() and "." in text and "e" not in text.lower() else text


def _integer(row: Dict[str, str], name: str) -> int:
    text = _whole(row.get(name, ""))
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {text!r}") from None


def _number(row: Dict[str, str], name: str) -> float:
    text = row.get(name, "")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number (pixels), got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {text!r}")
    return value


def frame_problem(frame: float, num_frames: int) -> str:
    """The words for a prompt on ``frame``, which is not one of the ``num_frames`` frames (0..num_frames - 1)."""
    if num_frames == 1:  # a single image (a 2-D one, or a stack of one frame)
        return (f"frame {frame:g}: the image has one frame, frame 0 (a row's first column is its frame: check the "
                "columns' order)")
    return f"frame {frame:g} is not one of the stack's frames 0..{num_frames - 1}"


def click_problem(frame: float, y: float, x: float, num_frames: int, height: int, width: int) -> Optional[str]:
    """Why a click (frame, y, x) does not fit a stack of ``num_frames`` frames of height x width, or None.

    y and x are pixel coordinates with pixel i's centre at i, as napari shows them: -0.5 <= y < height - 0.5 and
    -0.5 <= x < width - 0.5 lie on the image (:func:`sam2_model.prompt_validation.inside_frame`)."""
    if frame != int(frame) or not 0 <= frame < num_frames:
        return frame_problem(frame, num_frames)
    if not inside_frame(x, y, height, width):
        return (f"(y={y:g}, x={x:g}) lies outside the {height} x {width} (rows x columns) image, which takes "
                f"{frame_span_words(height, width)}")
    return None


def box_problem(frame: float, num_frames: int, corners: Optional[Sequence[float]] = None, height: int = 0,
                width: int = 0) -> Optional[str]:
    """Why a box on ``frame`` does not fit a stack of ``num_frames`` frames of height x width, or None.

    corners: (y0, x0, y1, x1), opposite corners in either order. A box that reaches past the image is cut to its
    outer pixel edges, rows -0.5..height - 0.5 and columns -0.5..width - 0.5, where napari draws them (as the session is
    given it: :func:`napari_sam2.prompts.clip_to_frame`), so a box drawn from corner to corner of the image is the whole
    image; one that keeps no width or height once cut (wholly outside the image, which had it refused later, once the
    model was loaded) is a problem, and so is one of zero width or height (the model would make a mask of whatever lies
    under a line or a point)."""
    if frame != int(frame) or not 0 <= frame < num_frames:
        return frame_problem(frame, num_frames)
    if corners is not None:
        y0, x0, y1, x1 = (float(c) for c in corners)
        top, bottom, left, right = min(y0, y1), max(y0, y1), min(x0, x1), max(x0, x1)
        flat = zero_extent(right - left, bottom - top)
        if flat:
            return (f"the box from (y={y0:g}, x={x0:g}) to (y={y1:g}, x={x1:g}) has zero {flat}: give two opposite "
                    "corners of a box around the object, or a click instead")
        if bottom <= -0.5 or right <= -0.5 or top >= height - 0.5 or left >= width - 0.5:  # nothing left once cut
            return (f"the box from (y={y0:g}, x={x0:g}) to (y={y1:g}, x={x1:g}) lies wholly outside the {height} x "
                    f"{width} (rows x columns) image, whose outer pixel edges are y -0.5..{height - 0.5:g} and x "
                    f"-0.5..{width - 0.5:g} (pixel i spans i - 0.5..i + 0.5), to which boxes are cut: nothing of it "
                    "would be left")
    return None


def table_prompts(clicks: Sequence[Sequence[float]], boxes: Sequence[Sequence[float]]) -> List[FramePrompt]:
    """A prompts table as FramePrompts (grouped by frame and object, in frame order).

    clicks: (frame, y, x, label, obj_id) rows, label 1 positive / 0 negative; boxes: (frame, y0, x0, y1, x1, obj_id)
    rows; pixel coordinates of (T, Y, X) frames (as :func:`read_prompt_lines` gives them).
    """
    clicks_a = np.asarray(clicks, float).reshape(-1, 5)
    boxes_a = np.asarray(boxes, float).reshape(-1, 6)
    rectangles = [np.array([[f, y0, x0], [f, y1, x1]]) for f, y0, x0, y1, x1, _ in boxes_a]
    return collect_prompts(clicks_a[:, :3], clicks_a[:, 3] > 0, clicks_a[:, 4].astype(int), rectangles,
                           boxes_a[:, 5].astype(int), StackLayout(3, 0, None))


def checked_table_prompts(path: Path, clicks: Sequence[Sequence[float]], boxes: Sequence[Sequence[float]],
                          num_frames: int, direction: str, names: str = "cli") -> List[FramePrompt]:
    """The prompts of the table ``path`` (:func:`table_prompts`), checked with ``direction`` by the rule
    ``napari-sam2 track``, ``batch`` and ``segment()`` share (:func:`.directions.check_prompted_way`, in the words of
    ``names``); ValueError naming the file. ``num_frames``: 1 for a single image (its prompts' frames are then
    ignored, as :func:`.api.segment` ignores them)."""
    from .directions import check_prompted_way

    if num_frames == 1:
        clicks, boxes = [(0, *row[1:]) for row in clicks], [(0, *row[1:]) for row in boxes]
    prompts = table_prompts(clicks, boxes)
    try:
        check_prompted_way(prompts, num_frames, direction, names)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return prompts
