"""The "Track all cells" panel's ids beside the segmentation widget's own objects (a mixin of
:class:`~._track_all_panel.TrackAllPanel`).

The tracks and the widget's objects share one masklets layer: a typed, seeded or clicked object never takes a tracked
cell's id, the widget's next id goes above the tracks, and an undo refused because of a later change says who made
it. The rules are :mod:`._track_ids` (no Qt); this says what they did. Uses the panel's ``widget``, ``images``
(image id -> its tracking) and ``status``.

Exports hold every label of the masklets layer but the widget's objects: cells painted by hand become tracks of their
own (:meth:`TrackIdsMixin.export_result`), and the export's status says so (:meth:`TrackIdsMixin.painted_note`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, List, Sequence, Set

from napari.utils.notifications import show_warning

from . import _track_ids as id_rules
from ._track_ids import frames_text, id_above_tracks
from .labels_writer import EditedSince

if TYPE_CHECKING:
    from sam2_model.tracking import TrackingResult

    from ._track_all_panel import ImageTracking


class TrackIdsMixin:
    """Track ids and the widget's ids of an image; free ids; who changed a frame an undo was refused on."""

    _painted: Sequence[int] = ()  # the hand-painted ids the last export added as tracks
    _exports_objects = False  # the last export is of the widget's objects (nothing tracked by Track all yet)

    def track_ids(self, image: Any) -> Set[int]:
        """The track ids of ``image``'s tracking (lineage rows; empty when it was never tracked)."""
        entry = self.images.get(getattr(image, "unique_id", None))
        return id_rules.lineage_ids(None if entry is None else entry.tracking.lineage)

    def widget_ids(self, image: Any) -> Set[int]:
        """The ids the widget holds for ``image``: its sessions' objects, seeded masks and clicks and boxes (tracking
        gives its tracks ids above these)."""
        return id_rules.widget_ids(self.widget.states.get(getattr(image, "unique_id", None)))

    def replaced_frames(self, obj_ids: Sequence[int]) -> Dict[int, List[int]]:
        """{object: frames} for the current image's widget objects ``obj_ids`` that 'Track all cells' replaced (its
        runs write frames whole) and nothing wrote back since (the objects panel leaves those frames out)."""
        entry = self.images.get(getattr(self.widget.image_layer, "unique_id", None))
        return {} if entry is None else entry.tracking.erased(obj_ids)

    def _refresh_objects_panel(self) -> None:
        objects = getattr(self.widget, "objects", None)
        if objects is not None:
            objects.refresh()

    def free_ids_text(self, image: Any, taken: Set[int] = frozenset()) -> str:
        """The ids free for the widget's objects on ``image`` in words: gaps below the highest track id (at most a
        few) and "N and above"; ``taken``: ids also not free (e.g. other seeded objects)."""
        return id_rules.free_ids_text(self.track_ids(image) | self.widget_ids(image) | set(taken))

    def _on_object_id_typed(self, obj_id: int) -> None:
        """A typed Object id that a tracked cell of the current image holds moves to the next free id, saying so."""
        image = self.widget.image_layer
        tracks = self.track_ids(image)
        if int(obj_id) not in tracks:
            return
        new = id_rules.next_free_id(tracks, self.widget_ids(image))
        message = id_rules.typed_id_message(int(obj_id), new, self.free_ids_text(image))
        show_warning(f"SAM 2: {message}")
        self.status.setText(message)
        self.widget.object_spin.setValue(new)

    def free_seed_ids(self, image: Any, masks: List[Any]) -> List[Any]:
        """Seeded mask prompts (``FramePrompt`` with ``obj_id`` and ``mask``) whose ids a tracked cell of ``image``
        holds get free ids (above the tracks and the widget's objects), saying which moved; the others keep the
        seed layer's ids."""
        from .prompts import FramePrompt

        seeded = {int(m.obj_id) for m in masks}
        moved = id_rules.moved_seed_ids(seeded, self.track_ids(image), self.widget_ids(image))
        if not moved:
            return list(masks)
        message = id_rules.seed_ids_message(moved, self.free_ids_text(image, seeded))
        show_warning(f"SAM 2: {message}")
        self.status.setText(message)
        return [FramePrompt(m.frame, moved.get(int(m.obj_id), int(m.obj_id)), mask=m.mask) for m in masks]

    def _ids_above_tracks(self, entry: "ImageTracking") -> None:
        """The widget's next object id on the tracked image goes above its tracks (whichever image is shown), so a
        click never writes into a track."""
        tracks = self.track_ids(entry.image)
        state = self.widget.states.get(entry.image.unique_id)
        if state is None or not any(tracks):  # no track: nothing to keep clear of
            return
        above = id_above_tracks(state.obj_id, tracks)  # (the Object id's spin box shows state.obj_id where shown)
        if above != state.obj_id:
            self.widget.set_object_id(state, above)
        self._free_paint_label(entry, state.labels, state.obj_id)

    def _free_paint_label(self, entry: "ImageTracking", layer: Any, next_object: int) -> None:
        """The masklets ``layer``'s paint label becomes a free id: above every track, the widget's ids, its next
        object id ``next_object`` and the hand-painted ids the last follow found (``entry.untracked``; a missed cell painted right after a run never joins a track, and is exported as a
        cell of its own). Picking it is not picking a track (the panel's track id stays)."""
        if layer is None or layer not in self.viewer.layers:
            return
        taken = {int(next_object)} | set(entry.untracked)  # hand-painted ids have no lineage row
        free = id_rules.next_free_id(self.track_ids(entry.image), self.widget_ids(entry.image), taken)
        with layer.events.selected_label.blocker(self._on_label_picked):
            layer.selected_label = free

    def export_result(self, entry: "ImageTracking") -> Callable[[], TrackingResult]:
        """What an export of ``entry`` writes, read when called (in the export's worker): its tracking's
        :meth:`~.track_all.TrackAll.result` with ``lazy=True`` (the masklets layer read in place, a frame at a time as
        the writer goes: no copy of the stack; the layer must not change until the export ends), every label of the
        masklets layer but the widget's objects (its own 'Export labels' writes those); the cells painted by hand
        that it adds as tracks are remembered for :meth:`painted_note`. Before 'Track all cells' made any track, the
        widget's objects (clicked and propagated) are what is exported: one track each, from its first to its last
        frame, no parent. :meth:`export_words` says which."""
        tracked = len(entry.tracking.lineage) > 0
        leave_out = self.widget_ids(entry.image) if tracked else set()  # read here, on the GUI thread
        self._painted = []
        self._exports_objects = not tracked

        def result() -> TrackingResult:
            made = entry.tracking.result(leave_out, lazy=True)  # the masklets read in place, a frame at a time
            if tracked:
                self._painted = entry.tracking.untracked_ids(made)
            return made

        return result

    def export_words(self, detail: bool = False) -> str:
        """What the last :meth:`export_result` exports, in words ("the tracked cells" or "the widget's objects"); with
        ``detail``, also what is left out or how the objects became tracks."""
        if self._exports_objects:
            return "the widget's objects" + (" (one track each, from its first to its last frame; no divisions)"
                                             if detail else "")
        return "the tracked cells" + ("; the widget's own objects are in its 'Export labels'" if detail else "")

    def painted_note(self) -> str:
        """". N hand-painted id(s) (…) were added as tracks: …" after an export that added some, else ""."""
        ids = self._painted
        if not ids:
            return ""
        return (f". {len(ids)} hand-painted id(s) ({ids_text(ids)}) were added as tracks: begin and end from their pixels, no "
                "parent")

    def describe_edits(self, image: Any, frames: Sequence[int]) -> str:
        """Who changed ``frames`` of ``image``'s masklets (an undo found them changed since its step wrote them), and
        what reverts each: "Track all cells", the widget's clicks and propagations, or something else (a brush)."""
        entry = self.images.get(getattr(image, "unique_id", None))
        state = self.widget.states.get(getattr(image, "unique_id", None))
        controllers = [] if state is None else id_rules.state_controllers(state)
        tracked: List[int] = []
        widget: List[int] = []
        other: List[int] = []
        for t in sorted(set(frames)):
            if entry is not None and entry.tracking.wrote_last(t):
                tracked.append(t)
            elif any(c.wrote_last(t) for c in controllers):
                widget.append(t)
            else:
                other.append(t)
        parts = []
        if tracked:
            parts.append(f"{frames_text(tracked, 'rewritten')} by 'Track all cells' (its 'Undo tracking step' reverts "
                         "that)")
        if widget:
            parts.append(f"{frames_text(widget, 'changed')} by the widget's clicks or propagation (its 'Undo' reverts "
                         "that)")
        if other:
            parts.append(f"{frames_text(other, 'changed')} by hand or another tool (the masklets layer's own undo, "
                         "Ctrl+Z, reverts painting)")
        return "; ".join(parts)

    def tracking_undo_refused(self, image: Any, frames: Sequence[int]) -> str:
        """The panel's message when 'Undo tracking step' was refused because ``frames`` were changed after its step:
        one sentence naming each frame once, who changed it and what reverts that (as :meth:`widget_undo_refused`)."""
        return (f"Nothing was undone, as frames were edited after this tracking step: "
                f"{self.describe_edits(image, frames)}; revert that first, then press 'Undo tracking step' again (an "
                "undo never throws a later change away silently).")

    def widget_undo_refused(self, image: Any, error: EditedSince) -> str:
        """The widget's message when its Undo was refused because ``error.frames`` were changed after its step."""
        return (f"Nothing was undone: since the step that Undo would revert, {self.describe_edits(image, error.frames)}"
                ". Revert that first, then press Undo again (an undo never throws a later change away silently).")


def ids_text(ids: Sequence[int], shown: int = 10) -> str:
    """The first ``shown`` of ``ids`` in words ("3, 7, 12", then ", …" when there are more)."""
    return ", ".join(map(str, list(ids)[:shown])) + (", …" if len(ids) > shown else "")
