"""The objects panel of the segmentation widget: each object's colour, the frames where it is present, the frames
where the model lost it and those worth a look (its mask jumped); hide/show, delete, relabel and merge. Rows come from
the session's public read API, less the frames where the labels no longer hold the object ("Track all cells"
replaced it there: ``ObjectsPanel.replaced_frames``); the labels are the truth for "present": a frame the session
scored visible whose labels hold none of the object's pixels is listed as lost (``ObjectsPanel.pixel_frames``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Collection, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from qtpy.QtCore import QTimer, Signal
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import QHBoxLayout, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from sam2_model.config import JUMP_MAX_IOU

from ._colors import OBJECT_COLORMAP, object_colormap, object_colors, palette_slot
from ._track_ids import frame_ranges

HEADERS = ("Object", "Present on frames", "Lost on frames", "Check frames", "Shown")
CHECK_TIP = (f"Frames where the object's mask barely overlaps its mask on the frame it was tracked from "
             f"(IoU < {JUMP_MAX_IOU}): it jumped further than its size, collapsed, or the model followed something "
             f"else. A click there re-anchors it.")


@dataclass(frozen=True)
class ObjectRow:
    """One object: present = frames with a result the model scores as visible; lost = scored absent;
    check = present frames whose mask jumped from the frame it was tracked from (``VideoSession.jumped_frames``)."""

    obj_id: int
    present: Tuple[int, ...]
    lost: Tuple[int, ...]
    hidden: bool = False
    check: Tuple[int, ...] = ()
    replaced: Tuple[int, ...] = ()  # frames where another tool ("Track all cells") replaced the object's mask


def without_replaced(rows: Sequence[ObjectRow], replaced: Dict[int, Sequence[int]]) -> List[ObjectRow]:
    """``rows`` less the frames of ``replaced`` ({object: frames} whose labels no longer hold the object)."""
    found = []
    for row in rows:
        gone = set(replaced.get(row.obj_id, ()))
        if gone:
            row = replace(row, present=tuple(t for t in row.present if t not in gone),
                          lost=tuple(t for t in row.lost if t not in gone),
                          check=tuple(t for t in row.check if t not in gone),
                          replaced=tuple(sorted(gone | set(row.replaced))))
        found.append(row)
    return found


def with_pixels(rows: Sequence[ObjectRow], held: Mapping[int, Collection[int]]) -> List[ObjectRow]:
    """``rows`` with "present" read from the labels: of each row's frames (present and lost), those where ``held``
    ({object: frames whose labels hold at least one of its pixels}) says the object has pixels are present, the others
    lost (an object scored visible with an empty mask was lost there); check frames stay only where it is present."""
    found = []
    for row in rows:
        frames = sorted(set(row.present) | set(row.lost))
        mine = set(held.get(row.obj_id, ()))
        present = tuple(t for t in frames if t in mine)
        found.append(replace(row, present=present, lost=tuple(t for t in frames if t not in mine),
                             check=tuple(t for t in row.check if t in mine)))
    return found


def object_rows(session: object, hidden: Iterable[int] = ()) -> List[ObjectRow]:
    """The rows of a :class:`~sam2_model.VideoSession` (only its public read API is used)."""
    hidden = set(hidden)
    rows = []
    for obj in session.obj_ids:
        lost = tuple(session.lost_frames(obj))
        present = tuple(sorted(set(session.tracked_frames(obj)) - set(lost)))
        rows.append(ObjectRow(obj, present, lost, obj in hidden, tuple(session.jumped_frames(obj))))
    return rows


def labels_colormap(obj_ids: Iterable[int], hidden: Iterable[int]) -> object:
    """The masklets layer's colormap: the object colours, with hidden objects transparent. Other labels in the layer
    (Track all's tracks, brush strokes with a new id) keep their colours, unless they share a palette row with a
    hidden object (ids 255 apart); where a shown object of ``obj_ids`` shares one, the objects are listed one by one
    instead (every other label is then transparent while an object is hidden)."""
    from napari.utils.colormaps import DirectLabelColormap

    hidden = set(hidden)
    if not hidden:
        return OBJECT_COLORMAP
    shown = {palette_slot(k) for k in set(obj_ids) - hidden if k > 0}
    if not shown & {palette_slot(k) for k in hidden if k > 0}:
        return object_colormap(transparent=sorted(hidden))
    ids = sorted(set(obj_ids) | hidden)
    colors: Dict[Optional[int], np.ndarray] = {None: np.zeros(4, np.float32), 0: np.zeros(4, np.float32)}
    for obj, color in zip(ids, object_colors(ids)):
        colors[obj] = np.zeros(4, np.float32) if obj in hidden else color
    return DirectLabelColormap(color_dict=colors)


class ObjectsPanel(QWidget):
    """A table of the current image's objects with *Hide / show*, *Delete object*, *Relabel…*, *Merge into…* and
    *Next check frame* for the selected row.

    The selection follows the widget's *Object id* (:meth:`follow`): the row of the object being clicked is selected
    and scrolled into view, and selecting a row makes clicks add to that object.

    Signals: ``hide_toggled(obj_id)``, ``delete_requested(obj_id)``, ``relabel_requested(obj_id)``,
    ``merge_requested(obj_id)`` (the widget asks for the new id / the object to merge into) and
    ``check_requested(obj_id)`` (the widget shows the object's next check frame).
    """

    hide_toggled = Signal(int)
    delete_requested = Signal(int)
    relabel_requested = Signal(int)
    merge_requested = Signal(int)
    check_requested = Signal(int)
    object_selected = Signal(int)  # a person selected the object's row (not emitted when the table is refilled)

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        self.table.horizontalHeaderItem(HEADERS.index("Check frames")).setToolTip(CHECK_TIP)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.hide_button = QPushButton("Hide / show")
        self.delete_button = QPushButton("Delete object")
        self.relabel_button = QPushButton("Relabel…")
        self.merge_button = QPushButton("Merge into…")
        self.table.setToolTip("The objects of this image; the row of the Object id (the object being clicked) is "
                              "selected and scrolled into view. Select a row to make clicks add to that object.")
        self.hide_button.setToolTip("Hide the selected object's masks (or show them again); its masks are kept.")
        self.delete_button.setToolTip("Delete the selected object: its clicks, boxes and masks on every frame "
                                      "(Undo brings it back).")
        self.relabel_button.setToolTip("Give the selected object another id (asks for the new id); cannot be undone.")
        self.merge_button.setToolTip("Merge the selected object into another one (asks which): one cell segmented "
                                     "twice becomes one object; cannot be undone.")
        self.check_button = QPushButton("Next check frame")
        self.check_button.setToolTip("Go to the selected object's next check frame and make it the object that "
                                     "clicks add to, to re-anchor it there.")
        buttons = QHBoxLayout()
        for button in (self.hide_button, self.delete_button, self.relabel_button, self.merge_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addLayout(buttons)
        layout.addWidget(self.check_button)
        self.rows: List[ObjectRow] = []
        self._given: List[ObjectRow] = []  # the rows as given (before the replaced frames are taken out)
        # {object: frames} of the objects asked about whose labels no longer hold them there (set by the widget's
        # "Track all cells" panel; None: the rows are shown as given)
        self.replaced_frames: Optional[Callable[[Sequence[int]], Dict[int, List[int]]]] = None
        # {object: frames holding its pixels} among the frames asked about ({object: frames}), read from the labels
        # (set by the widget; None: "present" is the session's score)
        self.pixel_frames: Optional[Callable[[Dict[int, List[int]]], Dict[int, List[int]]]] = None
        self._filling = False  # True while the panel itself selects (refill, follow): not a person's choice
        self.current: Optional[int] = None  # the object followed (:meth:`follow`); None: the selection is kept
        self._scroll_later = QTimer(self)
        self._scroll_later.setSingleShot(True)
        self._scroll_later.setInterval(0)
        self._scroll_later.timeout.connect(self._scroll_to_current)
        self.table.itemSelectionChanged.connect(self._on_selection_changed)
        self.hide_button.clicked.connect(lambda: self._emit(self.hide_toggled))
        self.delete_button.clicked.connect(lambda: self._emit(self.delete_requested))
        self.relabel_button.clicked.connect(lambda: self._emit(self.relabel_requested))
        self.merge_button.clicked.connect(lambda: self._emit(self.merge_requested))
        self.check_button.clicked.connect(lambda: self._emit(self.check_requested))

    def refresh(self) -> None:
        """Show the rows last given again (after another tool changed the labels)."""
        self.show_rows(self._given)

    def show_rows(self, rows: List[ObjectRow]) -> None:
        """Show ``rows``, less the frames where :attr:`replaced_frames` says the labels no longer hold the object; the
        row of the object followed (:meth:`follow`) is selected and in view (without one: the row selected stays)."""
        selected = self.selected_object()
        self._given = list(rows)
        if self.replaced_frames is not None and rows:
            rows = without_replaced(rows, self.replaced_frames([r.obj_id for r in rows]))
        if self.pixel_frames is not None and rows:
            rows = with_pixels(rows, self.pixel_frames({r.obj_id: sorted(set(r.present) | set(r.lost))
                                                        for r in rows}))
        self._filling = True
        try:
            self._fill(rows, selected)
        finally:
            self._filling = False

    def _fill(self, rows: List[ObjectRow], selected: Optional[int]) -> None:
        self.rows = list(rows)
        self.table.setRowCount(len(rows))
        for index, (row, color) in enumerate(zip(rows, object_colors([r.obj_id for r in rows]))):
            present = frame_ranges(row.present)
            if row.replaced:  # say it in the cell: a tooltip alone is easily missed
                present += f" (Track all replaced {frame_ranges(row.replaced)})"
            cells = (str(row.obj_id), present, frame_ranges(row.lost), frame_ranges(row.check),
                     "no" if row.hidden else "yes")
            for column, text in enumerate(cells):
                self.table.setItem(index, column, QTableWidgetItem(text))
            if row.replaced:
                self.table.item(index, 1).setToolTip(f"Replaced by 'Track all cells' on frames "
                                                     f"{frame_ranges(row.replaced)} (its tracks hold those pixels "
                                                     "now; a click and Propagate there segment the object again).")
            swatch = QColor.fromRgbF(*[float(c) for c in color])
            self.table.item(index, 0).setBackground(QBrush(swatch))
            if row.obj_id == selected and self.current is None:
                self.table.selectRow(index)
        if self.current is not None:
            self._show_current()

    def check_frames(self, obj_id: int) -> Tuple[int, ...]:
        """The object's check frames as shown (empty for an unknown object)."""
        return next((row.check for row in self.rows if row.obj_id == obj_id), ())

    def selected_object(self) -> Optional[int]:
        """The object of the selected row (the buttons act on it); None when no row is selected."""
        index = self.table.currentRow()
        if not 0 <= index < len(self.rows) or not self.table.selectionModel().isRowSelected(index):
            return None
        return self.rows[index].obj_id

    def select_object(self, obj_id: int) -> None:
        for index, row in enumerate(self.rows):
            if row.obj_id == obj_id:
                self.table.selectRow(index)

    def follow(self, obj_id: Optional[int]) -> None:
        """Make ``obj_id`` the object the panel follows (the widget's *Object id*: the one clicks add to): its row is
        selected and scrolled into view, now and whenever the rows are shown again; with no row for it (a new object
        not segmented yet) no row is selected. Emits nothing (:attr:`object_selected` is a person's choice only)."""
        self.current = obj_id
        self._filling = True
        try:
            self._show_current()
        finally:
            self._filling = False

    def _show_current(self) -> None:
        """Select and scroll to the row of :attr:`current`; clear the selection when it has none."""
        index = next((i for i, row in enumerate(self.rows) if row.obj_id == self.current), None)
        if index is None:
            self.table.selectionModel().clear()  # the selection and the current row: the buttons act on nothing
            return
        if self.selected_object() != self.current:
            self.table.selectRow(index)
        self._scroll_to_current()
        self._scroll_later.start()  # again once Qt has laid the rows out (a scroll bar showing moves the last row)

    def _scroll_to_current(self) -> None:
        """Scroll the row of :attr:`current` into view (nothing when it is in view or has no row)."""
        index = next((i for i, row in enumerate(self.rows) if row.obj_id == self.current), None)
        if index is not None and self.table.item(index, 0) is not None:
            self.table.scrollToItem(self.table.item(index, 0))

    def _on_selection_changed(self) -> None:
        """A person selected a row: say which object (the widget makes it the one clicks add to)."""
        obj = self.selected_object()
        if not self._filling and obj is not None and self.table.selectionModel().hasSelection():
            self.object_selected.emit(obj)

    def _emit(self, signal: object) -> None:
        obj = self.selected_object()
        if obj is not None:
            signal.emit(obj)
