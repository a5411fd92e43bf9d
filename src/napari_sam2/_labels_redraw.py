"""Redraw only what a run changed in the masklets Labels layer.

napari redraws a Labels layer by casting the whole plane shown to its texture dtype (for uint32 labels a modulo over
every pixel, 0.2-1 s for a 12 Mpx plane on the GUI thread). A click changes a small box of it. :class:`PlaneChanges`
watches the journal writes into a labels array (:func:`~.labels_writer.watch_writes`, in the writer's thread) and
keeps, per (H, W) plane, a signature of each row and column; a write marks the rows and columns whose signature
changed. :func:`redraw` then recasts and uploads only that box of the plane shown, skips a plane nothing was written to
since it was last drawn, and falls back to napari's full ``refresh()`` whenever it cannot tell (a plane not seen
before, a brush stroke or napari's own undo, another display mode, non-NumPy data).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .labels_writer import hashable_index, watch_writes

Box = Tuple[int, int, int, int]  # rows r0:r1, columns c0:c1
FULL = "full"  # a plane whose changes are not known: redraw it whole

_TRACKERS: "weakref.WeakKeyDictionary[Any, PlaneChanges]" = weakref.WeakKeyDictionary()  # layer -> its tracker


def _signature(plane: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """A weighted sum of each row and of each column of an (H, W) plane (float64 weights in [1, 2), fixed): a changed
    pixel changes its row's and its column's sum (exact float equality; a coincidence needs values that cancel to the
    last bit)."""
    rows, cols = plane.shape
    rng = np.random.default_rng(rows * 100_003 + cols)
    values = plane.astype(np.float64)
    return values @ (1.0 + rng.random(cols)), (1.0 + rng.random(rows)) @ values


class PlaneChanges:
    """Which box of each (H, W) plane of ``array`` (a labels layer's data) changed since it was last drawn."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self._lock = threading.Lock()
        self._signatures: Dict[Tuple[Any, ...], Tuple[np.ndarray, np.ndarray]] = {}
        self._pending: Dict[Tuple[Any, ...], Any] = {}  # plane -> Box to redraw, or FULL
        self._drawn: set = set()  # planes drawn (whole, by napari) with their signature known since
        self._painted = False  # a brush stroke was seen: napari's own Undo / Redo may replay it
        self.redrawing = False  # :func:`redraw`'s own full refresh is under way
        watch_writes(array, self._on_written)

    def _on_written(self, index: Tuple[Any, ...], plane: np.ndarray) -> None:
        """A journal write of ``plane`` at ``array[index]`` (the writer's thread): mark the rows and columns that
        changed."""
        plane = np.asarray(plane)
        if plane.ndim != 2:
            key = hashable_index(index)
            with self._lock:
                self._signatures.pop(key, None)
                self._pending[key] = FULL
            return
        rows, cols = _signature(plane)
        key = hashable_index(index)
        with self._lock:
            before = self._signatures.get(key)
            self._signatures[key] = (rows, cols)
            if before is None or before[0].shape != rows.shape or before[1].shape != cols.shape:
                self._pending[key] = FULL
                return
            changed_rows = np.flatnonzero(before[0] != rows)
            changed_cols = np.flatnonzero(before[1] != cols)
            if not len(changed_rows) or not len(changed_cols):
                return  # the same plane again
            box = (int(changed_rows[0]), int(changed_rows[-1]) + 1, int(changed_cols[0]), int(changed_cols[-1]) + 1)
            held = self._pending.get(key)
            if held is FULL:
                return
            if held is not None:
                box = (min(box[0], held[0]), max(box[1], held[1]), min(box[2], held[2]), max(box[3], held[3]))
            self._pending[key] = box

    def forget(self, event: Any = None) -> None:
        """A brush stroke (napari's paint event) changed the array where no journal said: every plane is redrawn whole
        next."""
        self._painted = True
        self._drop()

    def maybe_replayed(self, event: Any = None) -> None:
        """napari redrew the layer (its set_data event), perhaps for its own Undo / Redo of a brush stroke, which has no
        paint event: once a stroke was seen, every plane is redrawn whole next (not for :func:`redraw`'s own)."""
        if self._painted and not self.redrawing:
            self._drop()

    def _drop(self) -> None:
        with self._lock:
            self._signatures.clear()
            self._pending.clear()
            self._drawn.clear()

    def take(self, index: Tuple[Any, ...]) -> Any:
        """What to redraw of the plane ``index`` (and forget it): None (nothing written since it was drawn), a Box, or
        FULL."""
        key = hashable_index(index)
        with self._lock:
            if key not in self._drawn:
                self._pending.pop(key, None)
                return FULL
            return self._pending.pop(key, None)

    def before_whole_draw(self, index: Tuple[Any, ...], array: np.ndarray) -> bool:
        """napari is about to draw the plane ``index`` of ``array`` whole: its signature is taken now where no write
        gave it yet (once per plane), BEFORE napari reads the plane, so that a write landing during the draw differs
        from it and stays pending. False where the plane is not 2-D (no box can be drawn of it)."""
        key = hashable_index(index)  # (what was pending was taken before the draw: later writes stay pending)
        with self._lock:
            known = key in self._signatures
        if not known:
            plane = np.asarray(array[index])
            if plane.ndim != 2:
                return False
            signature = _signature(plane)
            with self._lock:
                self._signatures.setdefault(key, signature)
        return True

    def drawn_whole(self, index: Tuple[Any, ...]) -> None:
        """napari drew the plane ``index`` whole (:meth:`before_whole_draw` first): later writes into it can be drawn
        as boxes."""
        with self._lock:
            self._drawn.add(hashable_index(index))


def tracker(layer: Any, written: Any) -> Optional[PlaneChanges]:
    """The :class:`PlaneChanges` of the Labels ``layer``'s data (made at the first call; remade when the layer holds
    another array); None when the runs write into another array than the layer's (``written``, e.g. the array under
    a display axis) or the data is not a NumPy array."""
    data = layer.data
    if not isinstance(data, np.ndarray) or written is not data:
        return None
    found = _TRACKERS.get(layer)
    if found is None or found.array is not data:
        found = PlaneChanges(data)
        _TRACKERS[layer] = found
        layer.events.paint.connect(found.forget)  # a brush or fill: napari draws it, the signatures are stale
        layer.events.set_data.connect(found.maybe_replayed)
    return found


def _plane_of(layer: Any) -> Optional[Tuple[int, ...]]:
    """The index (on the axes before the last two) of the (H, W) plane napari holds drawn of ``layer`` when it draws
    the layer's last two axes in order, a 2-D slice of NumPy data; None otherwise (napari's full refresh then)."""
    if (getattr(layer, "multiscale", False) or layer.contour or not isinstance(layer.data, np.ndarray)
            or str(getattr(layer, "projection_mode", "none")) != "none"):
        return None
    slice_input = getattr(getattr(layer, "_slice", None), "slice_input", None)
    if (slice_input is None or slice_input.ndisplay != 2
            or tuple(slice_input.displayed) != (layer.ndim - 2, layer.ndim - 1)):
        return None
    try:  # a napari without it (private, napari 0.5-0.9): napari's full refresh
        point = layer._get_pt_not_disp()  # {axis: its integer position} of the slice napari holds
        plane = tuple(int(point[axis]) for axis in range(layer.ndim - 2))
    except (AttributeError, KeyError, TypeError):
        return None
    if any(not 0 <= at < size for at, size in zip(plane, layer.data.shape)):
        return None  # the dims stand outside this layer (another, longer image's slider): napari shows none of it
    return plane


def redraw(layer: Any, written: Any) -> str:
    """Redraw the masklets Labels ``layer`` after journal writes into ``written`` (the array the runs write into):
    "box" (only the changed box of the plane shown was recast and uploaded), "none" (nothing was written into the
    plane shown since it was drawn) or "full" (napari's ``refresh()``: whenever that cannot be told). The layer is
    used unwrapped (the viewer gives a plugin napari's public-only proxy): the box is drawn as napari's own brush
    draws it, through the Labels layer's private slice (napari 0.5-0.9; napari's full refresh where that is
    missing)."""
    layer = getattr(layer, "__wrapped__", layer)
    changes = tracker(layer, written)
    plane = None if changes is None else _plane_of(layer)
    if changes is None or plane is None:
        layer.refresh()
        return "full"
    index = plane + (slice(None), slice(None))
    todo = changes.take(index)
    if todo is None:
        return "none"
    if todo is not FULL and _draw_box(layer, todo, index):
        return "box"
    boxes_later = changes.before_whole_draw(index, layer.data)
    changes.redrawing = True
    try:
        layer.refresh()
    finally:
        changes.redrawing = False
    if boxes_later:
        changes.drawn_whole(index)
    return "full"


def _draw_box(layer: Any, box: Box, index: Tuple[Any, ...]) -> bool:
    """Recast ``box`` of the plane ``index`` into napari's texture and upload that part (what napari's own painting
    does: ``Labels._partial_labels_refresh``); False (nothing drawn: the caller refreshes whole) when the slice napari
    holds is not that plane of the data (its slicing lags, another plane), or napari lacks or refuses the private parts
    used."""
    image = getattr(getattr(layer, "_slice", None), "image", None)
    raw, view = getattr(image, "raw", None), getattr(image, "view", None)
    if (not isinstance(raw, np.ndarray) or not isinstance(view, np.ndarray) or raw.shape != view.shape
            or raw.ndim != 2 or not hasattr(layer, "_partial_labels_refresh")):
        return False
    plane = layer.data[index]
    if raw.shape != plane.shape or raw.__array_interface__["data"][0] != plane.__array_interface__["data"][0]:
        return False  # not a view of this plane
    r0, r1, c0, c1 = box
    if r1 > raw.shape[0] or c1 > raw.shape[1]:
        return False
    try:
        view[r0:r1, c0:c1] = layer.colormap._data_to_texture(raw[r0:r1, c0:c1])
        layer._updated_slice = tuple([slice(None)] * (layer.ndim - 2) + [slice(r0, r1), slice(c0, c1)])
        layer._partial_labels_refresh()
    except (AttributeError, TypeError, ValueError):  # another napari: its full refresh
        return False
    return True
