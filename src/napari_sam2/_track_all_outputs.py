"""The "Track all cells" panel's outputs: the lineage Tracks layer and the exports (a mixin of
:class:`~._track_all_panel.TrackAllPanel`).

Exports (labels TIFF, tracks CSV, CTC folder, GEFF) describe the cells Track all tracked and run in a worker thread
(:func:`._session_actions.steps_worker`), written whole or not at all; they read the masklets layer in place, a frame
at a time (no copy of it: the labels TIFF too, :func:`.export.save_labels_tiff`), the layer held in pan/zoom mode meanwhile
(:class:`TrackExportRun`). Uses the panel's ``widget``, ``viewer``, ``status``, ``progress``, ``worker``,
``current()``, ``_set_busy``, ``_fail`` and ``_refuse_if_busy``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence

import numpy as np
from napari.utils.notifications import show_info

from ._edit_runs import HeldLayers
from ._image_state import layer_name, place_layer, same_layer
from ._runs import qt_deleted
from ._session_actions import ExportRun, steps_worker
from ._tracks_layer import TRACKS_NAMES, own_tracks, tracks_metadata, tracks_placement, tracks_role, tracks_transform
from .track_all import frame_and_plane
from .track_export import export_path, export_tracking, export_tracking_steps

if TYPE_CHECKING:
    from ._track_all_panel import ImageTracking

# what a person may have set on the lineage layer; kept when the layer must be made anew (its axes changed)
DISPLAY_SETTINGS = ("name", "visible", "opacity", "blending", "tail_width", "tail_length", "head_length", "colormap",
                    "display_id", "display_tail", "display_graph", "hide_completed_tracks")


@dataclass
class TrackExportRun(ExportRun, HeldLayers):
    """An export of the Track all panel running in a worker (:class:`~._session_actions.ExportRun`) and the masklets
    layer it reads, held in pan/zoom mode meanwhile as Save session holds it (:meth:`~._edit_runs.HeldLayers.freeze`):
    the writers read the layer in place, a frame at a time, so no brush, eraser or fill may change it before the
    export ends (a frame changed anyway, e.g. from the console, fails the export with nothing written:
    :class:`~.track_all.LabelsChanged`)."""


class TrackOutputsMixin:
    """The image's lineage Tracks layer; exports in a worker (the buttons) or on this thread (the console)."""

    _export: Optional[TrackExportRun] = None  # the last export run in a worker

    def update_tracks_layer(self, entry: "ImageTracking", tracks: tuple) -> Any:
        """Show the labels and lineage in the image's lineage Tracks layer (None when nothing is tracked: the layer
        goes); ``tracks``: its (data (N, 4) [track, t, y, x], graph {child: [parent]}), derived from the labels in a
        worker or by the run (reading every frame here would stall napari's GUI thread).

        A layer that is there on the same axes (scale, translate, columns, units) is updated in place (its data and
        graph), so its name, display settings (tail length, colormap, ...), place in the layer list and the layer
        selection stay as the person left them; otherwise it is made (anew, with those settings, where its axes
        changed)."""
        data, graph = tracks
        state = self.widget.states.get(entry.image.unique_id)
        labels = None if state is None else state.labels
        old = entry.tracks if entry.tracks is not None and entry.tracks in self.viewer.layers else None
        if not len(data) or labels is None or not len(entry.tracking.lineage):  # nothing tracked (any more)
            if old is not None:
                self.viewer.layers.remove(old)
            entry.tracks = None
            return None
        layout = None if state.controller is None else state.controller.layout
        if layout is not None:  # on the image's axes (its time on the time axis of a 4-D image)
            data, scale, translate = tracks_placement(data, entry.image, layout)
        else:
            scale, translate = frame_and_plane(labels.scale), frame_and_plane(labels.translate)
        metadata = tracks_metadata(entry.image, layout)
        transform = tracks_transform(entry.image, layout)  # a turned image's lineage turns with it
        role = tracks_role("lineage", entry.image, layout)  # so that it follows the image's placement later
        if old is not None and same_placement(old, data, scale, translate, metadata):
            old.graph = {}  # the old links may name tracks the new data lacks
            old.data = data
            old.graph = graph
            place_layer(old, scale, translate, transform)
            old.metadata = {**old.metadata, **role["metadata"]}
            return own_tracks(old)
        kept: Dict[str, Any] = {} if old is None else {name: getattr(old, name) for name in DISPLAY_SETTINGS}
        selection = self.viewer.layers.selection
        selected, active = list(selection), selection.active
        if old is not None:
            self.viewer.layers.remove(old)
        entry.tracks = self.viewer.add_tracks(data, graph=graph, name=layer_name(TRACKS_NAMES["lineage"], entry.image),
                                              scale=scale, translate=translate, **transform, **metadata, **role)
        own_tracks(entry.tracks)  # only this layer follows the image, not a person's duplicate of it
        for name, value in kept.items():
            setattr(entry.tracks, name, value)
        if old is not None:  # the new layer takes the old one's place in the selection
            selection.clear()
            selection.update(entry.tracks if layer is old else layer for layer in selected
                             if layer is old or layer in self.viewer.layers)
            selection.active = entry.tracks if active is old else active
        return entry.tracks

    def follow_tracks_layer(self, entry: "ImageTracking", data: Any, graph: Any) -> Any:
        """The image's lineage Tracks layer shows ``data`` (N, 4) [track, t, y, x] and ``graph`` {child: [parent]}
        (from the labels after hand edits): as :meth:`update_tracks_layer` (in place where it is there), and the layer
        being painted stays the active one when the layer is made."""
        active = self.viewer.layers.selection.active
        layer = self.update_tracks_layer(entry, (data, graph))
        if layer is not None and active is not None and active in self.viewer.layers \
                and self.viewer.layers.selection.active is not active:
            self.viewer.layers.selection.active = active  # keep painting where the person was
        return layer

    def _on_export(self, what: str) -> None:
        from qtpy.QtWidgets import QFileDialog

        title = {"labels": "Export labels (TIFF)", "tracks": "Export tracks (CSV)", "ctc": "Export a CTC folder",
                 "geff": "Export GEFF (a .geff folder)"}[what]
        filters = {"labels": "TIFF (*.tif)", "tracks": "CSV (*.csv)", "geff": "GEFF (*.geff)",
                   "ctc": "a new or empty folder (*)"}[what]
        path, _ = QFileDialog.getSaveFileName(self, title, "", filters)
        if path:  # the dialog asked about replacing; only an earlier result of the same kind is replaced
            self.export_in_worker(what, path, overwrite=True)

    def export_in_worker(self, what: str, path: str, overwrite: bool = False) -> Any:
        """:meth:`export` in a worker thread, as the export buttons do; returns the worker (None when refused: the
        status line says why).

        Nothing that scales with the stack runs on napari's GUI thread: the labels are read and the file or folder
        written in the worker, the progress bar follows, the panel and the widget are busy meanwhile (Cancel, the
        panel's or the widget's, stops it) and the result appears whole or not at all (an earlier one is kept on
        failure or cancel). The masklets layer is read in place, a frame at a time as the writer goes (no copy of
        it), so it is held in pan/zoom mode until the export ends (:class:`TrackExportRun`).
        """
        if self._refuse_if_busy():
            return None
        entry = self.current()
        try:
            if entry is None:
                raise ValueError("nothing to export yet: press 'Track all cells' (or click objects and propagate) first")
            target = export_path(what, path)
            steps = export_tracking_steps(self.export_result(entry), what, target, overwrite,
                                          self._calibration(entry))
        except Exception as error:
            self._fail(error)
            return None
        self._export = TrackExportRun(what, target)
        worker = self._export.worker = steps_worker(steps, self.slot(self._on_export_step), self._export.fail,
                                                    self.slot(self._on_export_finished, ends_run=True))
        state = self.widget.states.get(entry.image.unique_id)
        self._export.freeze((), None if state is None else state.labels)  # read in place: no painting until the end
        self.worker = self.widget.worker = worker  # the widget is busy while this runs
        self._set_busy(True)
        self.progress.setRange(0, 0)
        self.status.setText(f"Exporting {self.export_words()} ({what}) to {target}…")
        worker.start()
        return worker

    def _on_export_step(self, step: tuple) -> None:
        try:
            kind, _, _ = self._export.follow(step, self.progress)
            if kind == "frame":
                self.progress.setValue(1)
                self.status.setText(f"Exporting {self.export_words()} ({self._export.what}): labels read, writing…")
        except Exception as error:  # never let an exception escape a Qt slot
            if isinstance(error, RuntimeError) and qt_deleted(self):
                raise  # the window was closed: :meth:`slot` stops the export quietly (no error notification)
            self._export.fail(error)

    def _on_export_finished(self, worker: Any) -> None:
        run = self._export
        run.thaw()  # first: the layer outlives the panel's window
        if self.worker is worker:
            self.worker = None
        if self.widget.worker is worker:
            self.widget.worker = None
        self._set_busy(False)
        if run.written:
            show_info(f"SAM 2: wrote {run.written}")
        self.status.setText(run.outcome() + (f" ({self.export_words(detail=True)}){self.painted_note()}"
                                             if run.written else ""))

    def export(self, what: str, path: str, overwrite: bool = False) -> Optional[str]:
        """Write the current image's "labels" (.tif), "tracks" (.csv with parent ids), "ctc" folder or "geff" on this
        thread (the console; the buttons use :meth:`export_in_worker`); returns the path written (None on failure:
        the status line says why)."""
        entry = self.current()
        try:
            if entry is None:
                raise ValueError("nothing to export yet: press 'Track all cells' (or click objects and propagate) first")
            written = str(export_tracking(self.export_result(entry)(), what, export_path(what, path), overwrite,
                                          self._calibration(entry)))
        except Exception as error:
            self._fail(error)
            return None
        show_info(f"SAM 2: wrote {written}")
        self.status.setText(f"Wrote {written} ({self.export_words(detail=True)}){self.painted_note()}")
        return written

    def _calibration(self, entry: "ImageTracking") -> Any:
        """The tracked image's pixel size, frame interval (its layer's scale and units) and origin (its layer's
        translate: where napari draws it) for the GEFF export; None when it is not the image shown (the widget
        measures the current one)."""
        if self.widget.controller is None or not same_layer(entry.image, self.widget.image_layer):
            return None
        return self.widget.calibration()


def same_placement(layer: Any, data: np.ndarray, scale: Sequence[float], translate: Sequence[float],
                   metadata: Dict[str, tuple]) -> bool:
    """Whether the Tracks ``layer`` lies on the axes a layer of ``data`` (N, 1 + D) made with ``scale``, ``translate``
    (D,) and ``metadata`` (:func:`._tracks_layer.tracks_metadata`: units, axis labels) would: then its data can be
    replaced in place."""
    if np.shape(layer.data)[1:] != np.shape(data)[1:] or len(layer.scale) != len(scale):
        return False
    if not (np.allclose(layer.scale, scale) and np.allclose(layer.translate, translate)):
        return False
    return all([str(v) for v in getattr(layer, key, ())] == [str(v) for v in values] for key, values in metadata.items())
