"""The "Track all cells" panel's track-level edits and its following of hand edits (a mixin of
:class:`~._track_all_panel.TrackAllPanel`).

* Delete track / Merge track into id: the track in 'Track id' deleted or relabelled on every frame in a worker, as a
  run (undoable; :func:`.track_edits.delete_track`, :func:`.track_edits.merge_track`).
* Following the masklets' hand edits: brush / fill / eraser strokes (and napari's own undo / redo of them) on a
  tracked image's masklets layer are watched; ``FOLLOW_DELAY_MS`` after the last one the lineage and the Tracks layer
  are re-derived from the labels in a worker (:func:`.track_edits.followed`) and applied on the GUI thread.

Uses the panel's ``widget``, ``viewer``, ``images``, ``status``, ``track_spin``, ``merge_spin``, ``worker``,
``current()``, ``slot()``, ``widget_ids()``, ``track_ids()``, ``follow_tracks_layer()``, ``_current_frame``,
``_start``, ``_fail`` and ``_refuse_if_busy``.
"""

from __future__ import annotations

import zlib
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, Optional, Tuple

import numpy as np
from qtpy.QtCore import QTimer

from sam2_model.tracking import Lineage, TrackingResult, tracks_layer_data

from ._track_all_ids_mixin import ids_text

if TYPE_CHECKING:
    from ._track_all_panel import ImageTracking
    from .track_all import TrackAll

FOLLOW_DELAY_MS = 500  # after the last brush / fill / eraser stroke, the Tracks layer and the lineage follow the labels


class TrackEditsMixin:
    """Delete / Merge track; the lineage and Tracks layer follow the person's hand edits of the masklets."""

    def _init_follow(self) -> None:
        """The follow worker, timer and watched layers (called once from the panel's ``__init__``)."""
        self.follow_worker: Any = None  # the worker refreshing the lineage and Tracks from hand-edited labels
        self._follow_again: Optional[ImageTracking] = None  # a refresh asked for while one runs
        self._follow_timer = QTimer(self)
        self._follow_timer.setSingleShot(True)
        self._follow_timer.setInterval(FOLLOW_DELAY_MS)
        self._follow_timer.timeout.connect(self._follow_labels)
        self._follow_entry: Optional[ImageTracking] = None
        self._watched: list = []  # the masklets layers whose strokes are followed

    def _watch_masklets(self, layer: Any) -> None:
        """Follow the brush / fill / eraser strokes on the masklets ``layer`` (and napari's undo / redo of them), once
        per layer (the layer may be made after its image's tracking)."""
        if layer is None or any(seen is layer for seen in self._watched):
            return
        self._watched.append(layer)
        layer.events.paint.connect(partial(self._on_masklets_painted, layer))  # (the events' source is not the layer)
        layer.events.set_data.connect(partial(self._on_masklets_redrawn, layer))

    def _entry_of(self, layer: Any) -> Optional[ImageTracking]:
        """The tracking whose masklets layer is ``layer`` (None: none)."""
        for entry in self.images.values():
            state = self.widget.states.get(entry.image.unique_id)
            if state is not None and layer is not None and state.labels is layer:
                return entry
        return None

    def _on_masklets_painted(self, layer: Any, event: Any = None) -> None:
        """A brush / fill / eraser stroke on a tracked image's masklets layer: the lineage and Tracks follow soon."""
        entry = self._entry_of(layer)
        if entry is not None and len(entry.tracking.lineage):
            entry.painted = True
            self.schedule_follow(entry)

    def _on_masklets_redrawn(self, layer: Any, event: Any = None) -> None:
        """The masklets layer redrawn (every redraw; also napari's own Undo / Redo of a stroke, which sends no paint
        event): after strokes, the lineage follows when the plane shown changed since it last did (a checksum of one
        plane: cheap)."""
        entry = self._entry_of(layer)
        if entry is None or not entry.painted:
            return
        state = self.widget.states.get(entry.image.unique_id)
        if state is None or state.controller is None:
            return
        t = self._current_frame(state.controller)
        if not 0 <= t < entry.tracking.num_frames:
            return
        now = _checksum(entry.tracking.plane(t))
        if t not in entry.checksums:  # a run, undo or edit wrote it since the last follow: what it wrote is known
            entry.checksums[t] = now
        elif entry.checksums[t] != now:
            self.schedule_follow(entry)

    def forget_checksums(self, entry: Optional[ImageTracking], frames: Optional[Iterable[int]] = None) -> None:
        """A run, undo or edit wrote ``frames`` of ``entry`` (None: any): their checksums are taken anew at their next
        redraw (no follow: nothing was edited by hand there)."""
        if entry is None:
            return
        if frames is None:
            entry.checksums.clear()
        for t in frames or ():
            entry.checksums.pop(int(t), None)

    def schedule_follow(self, entry: ImageTracking) -> None:
        """Have the lineage and the Tracks layer of ``entry`` follow its labels ``FOLLOW_DELAY_MS`` after the last
        call (strokes come in bursts)."""
        self._follow_entry = entry
        self._follow_timer.start()

    def _follow_labels(self) -> None:
        """Re-derive the lineage and Tracks data from the labels in a worker thread (one at a time: a refresh asked
        for meanwhile runs once after it; a run or export in progress delays it)."""
        entry = self._follow_entry
        if entry is None:
            return
        if self.follow_worker is not None:
            self._follow_again = entry
            return
        if self.worker is not None or self.widget.busy():
            self._follow_timer.start()
            return
        from napari.qt.threading import create_worker

        before, runs, leave_out = entry.tracking.lineage, len(entry.tracking.history), self.widget_ids(entry.image)
        worker = self.follow_worker = create_worker(_followed, entry.tracking, leave_out, _start_thread=False,
                                                    _ignore_errors=True)
        worker.returned.connect(self.slot(lambda out: self._apply_follow(entry, before, runs, out)))
        worker.errored.connect(self.slot(self._fail))
        worker.finished.connect(self.slot(lambda: self._follow_done(worker)))
        worker.start()

    def _apply_follow(self, entry: ImageTracking, before: Lineage, runs: int, out: tuple) -> None:
        """Take the refreshed lineage and Tracks data, unless a run, undo or edit changed the tracking meanwhile."""
        lineage, result, tracks, checksums = out
        if entry.tracking.lineage is not before or len(entry.tracking.history) != runs:
            self.schedule_follow(entry)  # derived from a state that is gone: again, from the labels now
            return
        entry.tracking.follow(lineage)
        painted = entry.tracking.untracked_ids(result)
        changed = lineage.rows() != before.rows() or set(painted) != entry.untracked
        entry.checksums = checksums
        entry.untracked = set(painted)
        if entry.image in self.viewer.layers:
            self.follow_tracks_layer(entry, *tracks)
        if changed:  # (a redraw that changed nothing says nothing)
            extra = f" ({len(painted)} of them painted by hand: {ids_text(painted)})" if painted else ""
            self.status.setText(f"Labels edited by hand: {len(result.lineage)} track(s){extra}, "
                                f"{len(result.lineage.divisions())} division(s); the Tracks layer and the lineage "
                                "follow the labels.")

    def _follow_done(self, worker: Any) -> None:
        if self.follow_worker is worker:
            self.follow_worker = None
        again, self._follow_again = self._follow_again, None
        if again is not None:
            self.schedule_follow(again)

    # ------------------------------------------------------------------ track-level edits
    def _on_delete_track(self) -> None:
        self._track_edit(lambda entry, track_id: entry.tracking.delete_track(track_id),
                         lambda track_id: f"Deleting track {track_id}")

    def _on_merge_track(self) -> None:
        into = self.merge_spin.value()
        self._track_edit(lambda entry, track_id: entry.tracking.merge_track(track_id, into),
                         lambda track_id: f"Merging track {track_id} into {into}", into)

    def _track_edit(self, make: Callable[[ImageTracking, int], Iterator], what: Callable[[int], str],
                    into: Optional[int] = None) -> None:
        """Run a track-level edit of the track in 'Track id' (``make(entry, id)``: its steps) in a worker, as a run
        (undoable, the Tracks layer follows at its end); refused, saying why, for the widget's own objects."""
        if self._refuse_if_busy():
            return
        try:
            if self.widget.controller is None:
                raise ValueError("Track the cells first ('Track all cells'), then pick a track (Track id)")
            entry = self.current()
            track_id = self.track_spin.value()
            objects = self.widget_ids(entry.image) - self.track_ids(entry.image)
            for value, role in ((track_id, "Track id"), (into, "the id to merge into")):
                if value is not None and value in objects:
                    raise ValueError(f"{role} {value} is an object of the segmentation widget (its own Delete / Merge "
                                     "act on it): choose a track's id, or an unused id")
            steps = make(entry, track_id)
        except Exception as error:
            self._fail(error)
            return
        self._follow_timer.stop()  # the edit's end remakes the Tracks layer from the labels
        self._start(entry, steps, what(track_id), self.widget_ids(entry.image))


def _checksum(plane: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(plane).view(np.uint8))


def _followed(tracking: TrackAll, leave_out: Any) -> Tuple[Lineage, TrackingResult, tuple, Dict[int, int]]:
    """(the lineage as the labels hold it, the result with it, its Tracks (data, graph), {frame: checksum}): in the
    follow worker's thread."""
    lineage, result = tracking.followed(leave_out)
    checksums = {t: _checksum(tracking.plane(t)) for t in range(tracking.num_frames)}
    return lineage, result, tracks_layer_data(result), checksums


def with_tracks(steps: Iterator, tracking: TrackAll, leave_out: Any, out: Dict[str, Any]) -> Iterator:
    """``steps`` (a run's or an edit's), then, in the same worker thread, what its end shows: ``out["tracks"]``, the
    Tracks (data (N, 4) [track, t, y, x], graph {child: [parent]}) of the tracking's result without ``leave_out``, and
    ``out["untracked"]``, its hand-painted ids (nothing is set when the steps were closed: cancelled)."""
    yield from steps
    result = tracking.result(leave_out)
    out["untracked"] = set(tracking.untracked_ids(result))
    out["tracks"] = tracks_layer_data(result)
