"""The "Track all cells" panel's run lifecycle guards (a mixin of :class:`~._track_all_panel.TrackAllPanel`).

The frame a run starts from (asking whether to start at frame 0 when the frames before the one shown are empty), its
Divisions default (off where the frames are a volume's z slices, as the command line's), the progress kept in view,
worker slots that survive the viewer's window being closed mid-run, and stopping a run whose image or masklets layer
is going away; cancelling it, and the buttons disabled while it runs. Uses the panel's
``widget``, ``worker``, ``status``, ``progress``, its buttons, ``_steps``, ``_run_image``, ``_outcome`` and
``_export``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_info
from qtpy.QtWidgets import QScrollArea

from ._image_state import is_depth_axis, same_layer
from .file_calibration import READING, tiff_header
from ._runs import qt_deleted
from ._session_actions import let_go
from ._track_ids import frames_text

if TYPE_CHECKING:
    from ._track_all_panel import ImageTracking

BUSY = "Busy:"  # how a press refused while a run goes on starts (cleared when the run ends)
CANCELLING = "Cancelling… (stops after the current model call)"
DIVISIONS_TEXT = "Divisions (split a track when its cell divides)"
DIVISIONS_TIP = ("Follow cell divisions: a dividing cell's track ends and its two daughters start new tracks linked to "
                 "it.")
#: the Divisions checkbox on an image whose frames are z slices ({why}: what says so)
DIVISIONS_Z_TEXT = "Divisions (off: the frames are z slices; tick to look for them anyway)"
#: the Divisions checkbox while the image's file is read to learn whether its frames are z slices (an OME-TIFF)
DIVISIONS_READING_TEXT = "Divisions (reading the file's calibration…)"
DIVISIONS_Z_TIP = ("The frames are a volume's z slices ({why}), and cells do not divide along z: a nucleus whose mask "
                   "narrows to two touching slices would be split, so divisions are off for this image unless you tick "
                   "the box (your setting for time-lapses is kept). ")
RUN_BUTTONS = ("segment_button", "forward_button", "backward_button", "both_button", "undo_button",
               "seed_button")  # New object stays usable: it only moves the Object id


class TrackRunMixin:
    """Guards of a tracking run's life: its start frame, its progress in view, its worker's slots, stopping it."""

    #: the worker reading the calibration of an image's OME-TIFF (:meth:`refresh_divisions`) and that file's path
    _calibration_read: Optional[Any] = None
    _calibration_path: Optional[str] = None

    def slot(self, callback: Callable[..., None], ends_run: bool = False) -> Callable[..., None]:
        """``callback`` for a worker's signal (``ends_run``: its finished signal, given the worker), as
        ``_runs._on_worker_finished`` guards the widget's: once the viewer's window (and this panel in it) was
        closed, the deleted widgets' RuntimeError (which aborted Python) is not raised; the run is stopped instead and,
        when it ends, let go of (the widget is no longer busy). Any other error is raised."""

        def guarded(*args: Any) -> None:
            try:
                callback(*args)
            except RuntimeError:
                if not qt_deleted(self):  # a fault of ours, not a closed window: not hidden
                    raise
                self._window_closed(args[0] if ends_run and args else None)

        return guarded

    def _window_closed(self, finished: Any = None) -> None:
        """The panel's Qt parts were deleted with the window: stop the run (nothing is left to show it); once its
        worker has ``finished``, close its steps and let go of it."""
        if finished is None:
            if self.worker is not None:
                self.worker.quit()
            return
        steps, self._steps = self._steps, None
        if steps is not None:
            steps.close()
        if self.worker is finished:
            self.worker = None
        if self.widget.worker is finished:
            self.widget.worker = None

    def release(self) -> None:
        """The viewer's window was closed and no run of the panel is left (the widget's ``_release``): let go of
        every image's tracking (its undo stack, its lineage) and of the last run's image, so that nothing the closed
        viewer showed stays in memory through the panel."""
        steps, self._steps = self._steps, None
        if steps is not None:
            steps.close()
        self._derive_pending.clear()  # no Tracks layer is derived for a closed viewer
        self._follow_pending.clear()  # (its timer went with the window)
        if self.follow_worker is not None:
            self.follow_worker.quit()
            let_go(self.follow_worker)  # its end touches nothing of the closed viewer; napari keeps the worker, and its
            self.follow_worker = None  # slots kept this panel, the widget and the viewer
        self.images.clear()
        self._run_image = None
        self._derived = {}

    def refresh_divisions(self) -> None:
        """The Divisions checkbox for the current image: where its frame axis (the axis propagated) is a volume's z
        (:meth:`frames_z_words`) it is unticked, once per image shown, and says why (text and tooltip), the saved
        setting for time-lapses left as it was; a tick the person gives it then holds for that image. Elsewhere it
        shows the time-lapse setting again (off on one image, saying why). Called when the image or its axes change,
        and when a run reads the options. An OME-TIFF whose calibration is not read yet (seconds for many thousands
        of pages) is read in a worker (:meth:`calibration_reading`): meanwhile the checkbox says so, Track all is
        refused (:meth:`_refuse_if_busy`), and this is called again once it is read."""
        check = self.divisions_check
        why = self.frames_z_words(wait=False)
        if why is READING:
            check.setText(DIVISIONS_READING_TEXT)
            return
        if why is None:
            if self._z_image is not None:  # back on time points: the time-lapse setting
                self._z_image = None
                _set_quietly(check, self._timelapse_divisions)
            check.setText(DIVISIONS_TEXT)
            check.setToolTip(DIVISIONS_TIP)
            self.refresh_frame_controls(self.worker is not None or self.widget.busy())  # one image: off, says why
            return
        image = self.widget.image_layer.unique_id
        if self._z_image != image:  # a z-stack shown: off until ticked
            self._z_image = image
            _set_quietly(check, False)
        check.setText(DIVISIONS_Z_TEXT)
        check.setToolTip(DIVISIONS_Z_TIP.format(why=why) + DIVISIONS_TIP)

    def frames_z_words(self, wait: bool = True) -> Any:
        """What says the current image's frames (along the axis the axes panel propagates) are a volume's z slices, in
        words ("its frame axis is in micrometer", "its frame axis is named z", "the axes of cells.tif say so"); None
        where nothing does (time points), for a single 2-D image, or an axis choice that cannot work (the run says
        why). wait False: where the image's OME-TIFF is not read yet, its read starts in a worker
        (:meth:`calibration_reading`) and :data:`.file_calibration.READING` is returned."""
        image = self.widget.image_layer
        if image is None:
            return None
        try:
            layout = self.widget.axes.layout(image, self.viewer.dims.current_step)
        except ValueError:
            return None
        frame = layout.frame_axis
        if frame is None:
            return None
        if is_depth_axis(image, frame):
            unit = str(image.units[frame]) if getattr(image, "units", None) is not None else "pixel"
            return f"its frame axis is in {unit}" if unit != "pixel" else "its frame axis is named z"
        found = self.widget.source_file_calibration(image, layout, tell=False, wait=wait)
        if found is READING:
            self._read_calibration_later(str(image.source.path))
            return READING
        if found is not None and found.frames_through_z:
            return f"the axes of {Path(str(image.source.path)).name} say so"
        return None

    def calibration_reading(self) -> Optional[str]:
        """The name of the file whose calibration is read in a worker (:meth:`refresh_divisions`); None where none
        is."""
        return None if self._calibration_read is None else Path(str(self._calibration_path)).name

    def _read_calibration_later(self, path: str) -> None:
        """Read the header of the OME-TIFF at ``path`` (:func:`.file_calibration.tiff_header`: kept for the calls on
        the GUI thread that follow) in a worker, then refresh the Divisions checkbox. One read at a time: a read of
        the same file in progress is waited for; one of another file goes on (its header is kept) while this one is
        read next."""
        if self._calibration_read is not None and self._calibration_path == path:
            return
        worker = thread_worker(lambda: _read_quietly(path))()
        self._calibration_read, self._calibration_path = worker, path
        worker.finished.connect(self.slot(lambda w=worker: self._on_calibration_read(w)))
        worker.start()

    def _on_calibration_read(self, worker: Any) -> None:
        """The read started by :meth:`_read_calibration_later` ended: the Divisions checkbox follows the current
        image (its file's header now kept; a read of another file starts where the image shown changed)."""
        if self._calibration_read is not worker:
            return
        self._calibration_read = self._calibration_path = None
        self.refresh_divisions()
        if self.status.text().startswith(BUSY) and self.worker is None and not self.widget.busy():
            self.status.setText("")

    def _show_progress(self) -> None:
        """Scroll the dock (the QScrollArea napari puts a tall widget in) so that the status line, the progress bar
        and Cancel are in view while a run goes on (the panel sits at the bottom of the widget)."""
        area = self.parentWidget()
        while area is not None and not isinstance(area, QScrollArea):
            area = area.parentWidget()
        if area is not None:
            area.ensureWidgetVisible(self.status)
            area.ensureWidgetVisible(self.progress)

    def stop_run_on(self, image: Any, why: str) -> None:
        """Stop the tracking run (or correction) working on ``image`` (an Image layer whose image or masklets layer
        is going away; ``why`` says which): the frames finished are kept whole, and the status says why. An export
        goes on (it has read what it writes)."""
        worker = self.worker
        if worker is None or (self._export is not None and self._export.owns(worker)):
            return
        if same_layer(self._run_image, image):
            self._outcome = f"stopped: {why}"
            worker.quit()

    def _start_frame(self, entry: ImageTracking, shown: int) -> Optional[int]:
        """The frame to track from: the one ``shown``, or frame 0 if the person says so when the frames before it hold
        no labels (napari opens a stack on its middle frame; frames that hold some are continued, not asked about);
        None when the person cancels."""
        if shown == 0 or any(entry.tracking.plane(t).any() for t in range(shown - 1, -1, -1)):
            return shown
        from qtpy.QtWidgets import QMessageBox

        before = frames_text(range(shown))
        answer = QMessageBox.question(
            self, "Track all cells",
            f"The slider is on frame {shown} and {before} hold{'s' if shown == 1 else ''} no labels. Track the whole "
            f"movie from frame 0?\n\nYes: from frame 0. No: from frame {shown} ({before} stay empty). Cancel: "
            "nothing is tracked.",
            QMessageBox.Yes | QMessageBox.No | QMessageBox.Cancel, QMessageBox.Yes)
        if answer == QMessageBox.Cancel:
            return None
        return 0 if answer == QMessageBox.Yes else shown

    def cancel(self) -> None:
        """Stop the run: the frames finished so far are kept whole (Undo tracking step reverts the run). The status
        line says "Cancelling…" at once and Cancel (the panel's and the widget's) is disabled: the worker stops at its
        next step, after the model call in progress; the run's end says what was kept.

        The widget's Cancel button calls this too while a tracking run is in progress."""
        if self._export is not None and self._export.owns(self.worker):
            self.worker.quit()
            show_info("SAM 2: export cancelled; nothing is written (an earlier file or folder is kept).")
        elif self.worker is not None:
            if self._outcome == "running":  # (a run stopping for another reason keeps that reason)
                self._outcome = "cancelled"
            self.worker.quit()
            self.status.setText(CANCELLING if self._model_run else "Cancelling…")
            for button in (self.cancel_button, getattr(self.widget, "cancel_button", None)):
                if button is not None:
                    button.setEnabled(False)
            show_info("SAM 2: cancelled; the frames finished so far are kept whole ('Undo tracking step' in "
                      "'Track all cells' reverts the run).")

    def _refuse_if_busy(self) -> bool:
        """Whether an action is refused (the status says what it waits for): a run in progress, the widget busy, or
        the image's file read for its calibration (a run would start without knowing whether its frames are z)."""
        if self.worker is not None or self.widget.busy() or self._calibration_read is not None:
            words = "Busy: wait for the run in progress (or cancel it)" if self.worker is not None else \
                self.widget.busy_words()
            self.status.setText(f"{BUSY}{words[len(BUSY):]}.")
            return True
        return False

    def _set_busy(self, busy: bool) -> None:
        busy = busy or self.worker is not None
        for button in (self.track_button, self.undo_button, self.repropagate_button, self.delete_button,
                       self.merge_button, *self.export_buttons.values()):
            button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        for name in RUN_BUTTONS:  # the widget's own runs wait for this one
            button = getattr(self.widget, name, None)
            if button is not None:
                button.setEnabled(not busy)
        cancel = getattr(self.widget, "cancel_button", None)
        if cancel is not None:  # the widget's Cancel stops this run too
            cancel.setEnabled(busy)
        if not busy:  # its buttons as its state says (none on a single 2-D image); clicks made meanwhile segmented
            self.widget.after_other_run()


def _read_quietly(path: str) -> None:
    """:func:`.file_calibration.tiff_header` of ``path`` for a worker: a file that cannot be read stays uncalibrated
    (the call on the GUI thread that follows says nothing either: :func:`.file_calibration.source_calibration`)."""
    try:
        tiff_header(path)
    except Exception:  # unreadable: uncalibrated
        pass


def _set_quietly(check: Any, on: bool) -> None:
    """Tick or untick ``check`` without its ``toggled`` signal (an automatic choice is not saved as the person's)."""
    check.blockSignals(True)
    check.setChecked(bool(on))
    check.blockSignals(False)
