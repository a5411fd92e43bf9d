"""The "Track all cells" panel's track-level edits and its following of hand edits (a mixin of
:class:`~._track_all_panel.TrackAllPanel`).

* Delete track / Merge track into id: the track in 'Track id' deleted or relabelled on every frame in a worker, as a
  run (undoable; :func:`.track_edits.delete_track`, :func:`.track_edits.merge_track`).
* Following the masklets' hand edits: brush / fill / eraser strokes (and napari's own undo / redo of them, on any
  frame: the frames the strokes touched are checked, in the worker) on a tracked image's masklets layer are watched;
  ``FOLLOW_DELAY_MS`` after the last one the lineage and the Tracks layer are re-derived from the labels in a worker
  (:func:`.track_edits.followed`) and applied on the GUI thread.
* Every Labels layer's strokes, from the moment it is added, are told to the segmentation controllers of the image
  whose masklets layer it is (:meth:`~.controller.SegmentationController.painted`; also under the channel axis of a
  (T, C, Y, X) image's masklets), so their Propagate keeps the strokes of the objects it does not track again (also
  through a Track all run that writes those frames).
* The Tracks layer after Undo or a run that did not finish (cancelled, failed, stopped) is derived in a worker too
  (:meth:`TrackEditsMixin.derive_tracks`), as at the end of a run (:func:`with_tracks`): the GUI thread reads no stack.

Uses the panel's ``widget``, ``viewer``, ``images``, ``status``, ``track_spin``, ``merge_spin``, ``worker``,
``current()``, ``slot()``, ``widget_ids()``, ``track_ids()``, ``follow_tracks_layer()``, ``update_tracks_layer()``,
``_ids_above_tracks``, ``_current_frame``, ``_start``, ``_fail`` and ``_refuse_if_busy``.
"""

from __future__ import annotations

import weakref
import zlib
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple, Union

import numpy as np
from qtpy.QtCore import QTimer

from sam2_model.tracking import Lineage, TrackingResult

from ._image_state import masklets, same_layer
from ._track_all_ids_mixin import ids_text
from . import track_edits
from ._track_ids import state_controllers
from ._tracks_layer import lazy_tracks_layer_data
from .labels_writer import hashable_index

if TYPE_CHECKING:
    from ._track_all_panel import ImageTracking
    from .track_all import TrackAll

FOLLOW_DELAY_MS = 500  # after the last brush / fill / eraser stroke, the Tracks layer and the lineage follow the labels


class TrackEditsMixin:
    """Delete / Merge track; the lineage and Tracks layer follow the person's hand edits of the masklets."""

    def _init_follow(self) -> None:
        """The follow worker, timer and watched layers (called once from the panel's ``__init__``)."""
        self.follow_worker: Any = None  # the worker refreshing the lineage and Tracks from hand-edited labels
        self._follow_timer = QTimer(self)
        self._follow_timer.setSingleShot(True)
        self._follow_timer.setInterval(FOLLOW_DELAY_MS)
        self._follow_timer.timeout.connect(self._follow_labels)
        # the follows asked for, by tracking: the frames to compare first (None: follow whatever they hold)
        self._follow_pending: Dict[ImageTracking, Optional[Set[int]]] = {}
        # the Tracks layers to derive when the follow worker is free and no run goes on, in the order asked for (one
        # per image: the latest request; a dict as an ordered set)
        self._derive_pending: Dict[ImageTracking, None] = {}
        self._watched: list = []  # the masklets layers whose strokes are followed
        # every Labels layer's strokes reach the segmentation controllers writing into its data, from the start (before
        # anything is tracked): :meth:`_tell_controllers` (the viewer's event holds this panel weakly)
        self._stroked_layers: list = []  # weak references to the layers followed
        self.viewer.layers.events.inserted.connect(self._on_layer_inserted)
        for layer in list(self.viewer.layers):
            self._on_layer_inserted(layer=layer)

    def _on_layer_inserted(self, event: Any = None, layer: Any = None) -> None:
        """A layer added to the viewer: if it is a Labels layer (it may be, or become, an image's masklets layer), its
        brush / fill / eraser strokes are told to the controllers writing into its data (:meth:`_tell_controllers`),
        once per layer."""
        layer = getattr(event, "value", None) if layer is None else layer
        paint = getattr(getattr(layer, "events", None), "paint", None)
        self._stroked_layers = [ref for ref in self._stroked_layers if ref() is not None]
        if paint is None or any(ref() is layer for ref in self._stroked_layers):
            return
        self._stroked_layers.append(weakref.ref(layer))
        panel_ref, layer_ref = weakref.ref(self), weakref.ref(layer)

        def told(event: Any = None) -> None:  # holds neither the panel nor the layer: a closed viewer is freed
            panel, painted = panel_ref(), layer_ref()
            if panel is not None and painted is not None:
                panel._tell_controllers(painted, event)

        paint.connect(told)

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
        """A brush / fill / eraser stroke on a tracked image's masklets layer: the lineage and Tracks follow soon; the
        frames it touched are remembered (napari's undo / redo of it changes them back, on whatever frame is shown;
        a run that would replace them asks first: :meth:`hand_edited`)."""
        entry = self._entry_of(layer)
        if entry is None:
            return
        state = self.widget.states.get(entry.image.unique_id)
        layout = None if state is None or state.controller is None else state.controller.layout
        extra = np.ndim(layer.data) - np.ndim(entry.tracking.labels)  # 1: the channel axis the labels lack
        channel = getattr(layout, "channel_axis", None) if extra == 1 else None
        frames = entry.tracking.stroke_frames(getattr(event, "value", None), channel)
        entry.stroked |= frames
        if len(entry.tracking.lineage):
            entry.painted = True
            entry.strokes.append(frames)
            self.schedule_follow(entry)

    def _tell_controllers(self, layer: Any, event: Any = None) -> None:
        """A brush / fill / eraser stroke on the Labels ``layer``: when it is an image's masklets layer, that image's
        segmentation controllers writing into the labels behind it (:func:`~._image_state.masklets`, also under the
        size-1 channel axis with which the layer shows the labels of a (T, C, Y, X) image: the stroke's indices there
        are 0) learn which frames and pixels it changed (:meth:`~.controller.SegmentationController.painted`, the
        stroke's history atoms), so Propagate keeps those edits of the objects it does not track again, also on frames
        it never wrote and through a Track all run that writes those frames meanwhile. Controllers writing into another
        array (under a display axis) are not told: their checksums still see the change once they had written the
        plane. Other layers tell nobody. (The layer is compared by its id: the widget holds napari's proxy of it.)"""
        atoms = getattr(event, "value", None)
        for state in list(self.widget.states.values()):
            if not same_layer(state.labels, layer):
                continue
            for controller in state_controllers(state):
                if masklets(layer, state.image, controller.layout) is not controller.labels:
                    continue
                extra = layer.data.ndim - controller.labels.ndim  # 1: the channel axis the labels lack
                controller.painted(atoms, controller.layout.channel_axis if extra == 1 else None)

    def hand_edited(self, entry: ImageTracking, frames: Iterable[int]) -> List[int]:
        """Those of ``frames`` that hold hand edits (brush, fill, eraser strokes on the masklets layer) made after the
        tracking step that wrote them: stroked frames that no longer hold what the newest step on the undo stack
        wrote there; and, once a step is on the stack, stroked frames no step wrote that hold labels. Frames the
        widget's clicks or propagation wrote last are not counted (their objects are the widget's). Reads only the
        stroked frames' planes (a checksum each)."""
        tracking = entry.tracking
        state = self.widget.states.get(entry.image.unique_id)
        controllers = [] if state is None else state_controllers(state)
        edited = []
        for t in sorted(set(int(t) for t in frames) & entry.stroked):
            index = tracking.index_of(t)
            key = hashable_index(index)
            writer = next((run for run in reversed(tracking.history) if key in run.journal.written), None)
            if writer is not None:
                changed = not writer.journal.holds(tracking.labels, index)
            else:
                changed = bool(tracking.history) and bool(tracking.plane(t).any())
            if changed and not any(c.wrote_last(t) for c in controllers):
                edited.append(t)
        return edited

    def _on_masklets_redrawn(self, layer: Any, event: Any = None) -> None:
        """The masklets layer redrawn (every redraw: slider moves too; also napari's own Undo / Redo of a stroke, which
        sends no paint event): after strokes, the lineage follows when the plane shown changed since it last did (a
        checksum of one plane: cheap), or when a frame an earlier stroke touched did: napari undoes a stroke on
        whichever frame it was made, redrawing the frame shown in place, so on a redraw of the frame the last redraw
        showed (not a slider move) those frames are compared in the follow's worker, ``FOLLOW_DELAY_MS`` after the
        last redraw."""
        entry = self._entry_of(layer)
        if entry is None or not entry.painted:
            return
        state = self.widget.states.get(entry.image.unique_id)
        if state is None or state.controller is None:
            return
        t = self._current_frame(state.controller)
        if not 0 <= t < entry.tracking.num_frames:
            return
        in_place, entry.last_shown = t == entry.last_shown, t
        now = _checksum(entry.tracking.plane(t))
        if t not in entry.checksums:  # a run, undo or edit wrote it since the last follow: what it wrote is known
            entry.checksums[t] = now
        elif entry.checksums[t] != now:
            self.schedule_follow(entry)
            return
        stroked = set().union(*entry.strokes) - {t} if in_place else set()
        if stroked:
            self.schedule_follow(entry, stroked)

    def forget_checksums(self, entry: Optional[ImageTracking], frames: Iterable[int]) -> None:
        """A run, undo or edit wrote ``frames`` of ``entry``: their checksums are taken anew at their next redraw or
        follow (no follow: nothing was edited by hand there). The other frames keep theirs, so that napari's undo of
        an earlier stroke there is still seen."""
        if entry is None:
            return
        for t in frames:
            entry.checksums.pop(int(t), None)

    def schedule_follow(self, entry: ImageTracking, frames: Optional[Iterable[int]] = None) -> None:
        """Have the lineage and the Tracks layer of ``entry`` follow its labels ``FOLLOW_DELAY_MS`` after the last
        call (strokes come in bursts); ``frames``: only if one of these frames changed since the lineage last followed
        the labels (compared in the worker; None: they changed)."""
        pending = self._follow_pending.get(entry, set())
        self._follow_pending[entry] = None if frames is None or pending is None else pending | {int(t) for t in frames}
        self._follow_timer.start()

    def _follow_labels(self) -> None:
        """Re-derive the lineage and Tracks data of a tracking :meth:`schedule_follow` asked for from its labels in a
        worker thread (one at a time: those asked for meanwhile run after it; a run or export in progress delays
        them)."""
        if not self._follow_pending or self.follow_worker is not None:  # (its end starts the next)
            return
        if self.worker is not None or self.widget.busy():
            self._follow_timer.start()
            return
        entry = next(iter(self._follow_pending))
        check = self._follow_pending.pop(entry)
        known = None if check is None else {t: entry.checksums.get(t) for t in sorted(check)
                                            if 0 <= t < entry.tracking.num_frames}
        if known == {}:  # (no frame of the stack to compare)
            if self._follow_pending:
                self._follow_timer.start()
            return
        before, runs, leave_out = entry.tracking.lineage, len(entry.tracking.history), self.widget_ids(entry.image)
        self._in_worker(_followed, (entry.tracking, leave_out, known),
                        lambda out: self._apply_follow(entry, before, runs, known, out))

    def _in_worker(self, work: Callable[..., Any], args: tuple, apply: Callable[[Any], None]) -> None:
        """``work(*args)`` in the follow worker's thread, ``apply(its result)`` on the GUI thread (errors: the status
        line); when it is done, a Tracks layer or a follow asked for meanwhile is derived."""
        from napari.qt.threading import create_worker

        worker = self.follow_worker = create_worker(work, *args, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(self.slot(apply))
        worker.errored.connect(self.slot(self._fail))
        worker.finished.connect(self.slot(lambda: self._follow_done(worker)))
        from ._session_actions import let_go_when_finished

        let_go_when_finished(worker)  # its lambda held the worker and this panel: napari keeps workers for good
        worker.start()

    def _apply_follow(self, entry: ImageTracking, before: Lineage, runs: int, known: Optional[Dict[int, Any]],
                      out: Union[Dict[int, int], tuple]) -> None:
        """Take the refreshed lineage and Tracks data, unless a run, undo or edit changed the tracking meanwhile; when
        the frames it compared first (``known``) had not changed, only the checksums of those not known yet."""
        if entry not in self.images.values():  # the viewer was closed meanwhile (:meth:`release`)
            return
        if entry.tracking.lineage is not before or len(entry.tracking.history) != runs:
            self.schedule_follow(entry, known)  # derived from a state that is gone: again, from the labels now
            return
        if isinstance(out, dict):  # nothing changed: what the frames hold now is what the lineage follows
            for t, value in out.items():
                entry.checksums.setdefault(t, value)
            return
        lineage, result, tracks, checksums = out
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
        self._derive_next()
        if self._follow_pending:
            self._follow_timer.start()

    def derive_tracks(self, entry: ImageTracking) -> None:
        """Remake ``entry``'s Tracks layer (and its hand-painted ids) from its labels and lineage in a worker thread,
        as the end of a run does in the run's (:func:`with_tracks`): after Undo, or a run that did not finish. Applied
        on the GUI thread unless the tracking changed meanwhile (what changed it remakes them); with nothing tracked
        the layer goes at once."""
        if not len(entry.tracking.lineage):
            self.update_tracks_layer(entry, (np.zeros((0, 4)), {}))
        self._derive_pending.pop(entry, None)  # one per image, the latest, last in line
        self._derive_pending[entry] = None
        self._derive_next()

    def _derive_next(self) -> None:
        """Start deriving the first Tracks layer :meth:`derive_tracks` asked for, if the follow worker is free and no
        run goes on (the follow worker's end and a run's end call this again: each image asked for is derived)."""
        if not self._derive_pending or self.follow_worker is not None or self.worker is not None:
            return
        entry = next(iter(self._derive_pending))
        del self._derive_pending[entry]
        before, runs = entry.tracking.lineage, len(entry.tracking.history)
        self._in_worker(derived_tracks, (entry.tracking, self.widget_ids(entry.image)),
                        lambda out: self._apply_derived(entry, before, runs, out))

    def _apply_derived(self, entry: ImageTracking, before: Lineage, runs: int, out: tuple) -> None:
        """Show what :meth:`derive_tracks` derived, unless a run, undo, edit or follow changed the tracking meanwhile
        (it remade the Tracks layer itself)."""
        if entry.tracking.lineage is not before or len(entry.tracking.history) != runs:
            return
        if entry not in self.images.values():  # the viewer was closed meanwhile (:meth:`release`)
            return
        entry.untracked, tracks = out
        if entry.image in self.viewer.layers:  # not for a removed image
            self.follow_tracks_layer(entry, *tracks)
            self._ids_above_tracks(entry)

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
        self._start(entry, steps, what(track_id), self.widget_ids(entry.image), model_run=False)


def _checksum(plane: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(plane).view(np.uint8))


def _followed(tracking: TrackAll, leave_out: Any, known: Optional[Dict[int, Optional[int]]] = None
              ) -> Union[Dict[int, int], Tuple[Lineage, TrackingResult, tuple, Dict[int, int]]]:
    """(the lineage as the labels hold it, the result with it, its Tracks (data, graph), {frame: checksum}): in the
    follow worker's thread. ``known``: {frame: its checksum when the lineage last followed the labels, None: not
    taken}: those frames are read first and, when none of them changed, only {frame: checksum} of them comes back."""
    if known is not None:
        now = {t: _checksum(tracking.plane(t)) for t in known}
        if all(known[t] in (None, now[t]) for t in known):
            return now
    lineage, result = track_edits.followed(tracking, leave_out, lazy=True)  # the labels read in place: no copy
    checksums = dict(result.labels.read)  # {frame: crc32 of the plane the lineage was read from}
    return lineage, result, lazy_tracks_layer_data(result), checksums


def with_tracks(steps: Iterator, tracking: TrackAll, leave_out: Any, out: Dict[str, Any]) -> Iterator:
    """``steps`` (a run's or an edit's), then, in the same worker thread, what its end shows (:func:`derived_tracks`):
    ``out["untracked"]`` and ``out["tracks"]`` (nothing is set when the steps were closed: cancelled)."""
    yield from steps
    out["untracked"], out["tracks"] = derived_tracks(tracking, leave_out)


def derived_tracks(tracking: TrackAll, leave_out: Any) -> Tuple[Set[int], tuple]:
    """(the hand-painted ids, the Tracks (data (N, 4) [track, t, y, x], graph {child: [parent]})) of ``tracking``'s
    result without ``leave_out``; reads every plane (a worker thread's work)."""
    result = tracking.result(leave_out, lazy=True)  # the labels read in place, a frame at a time: no copy
    return set(tracking.untracked_ids(result)), lazy_tracks_layer_data(result)
