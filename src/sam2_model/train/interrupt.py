"""Ctrl-C during training: finish the step, save the run, then stop; a second Ctrl-C aborts at once.

A KeyboardInterrupt raised in the middle of a step could leave the weights half-updated, so the first Ctrl-C only
asks the loop to stop after the step it is in; the loop saves ``last.pt`` and ``weights.pt`` and raises
:class:`TrainingInterrupted`. Signal handlers belong to the main thread: elsewhere (the fine-tuning widget's worker,
which stops through its progress callback) nothing changes.

The command line also takes SIGTERM (what a cluster scheduler sends at a job's time limit, or ``kill``) as the first
Ctrl-C (:func:`stop_on_sigterm`): stop after the current step and save; a second SIGTERM changes nothing.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from types import FrameType
from typing import Any, Iterator, Optional


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM under :func:`stop_on_sigterm`: ``by``) stopped a run after ``step`` of its ``steps`` steps
    (None: not said); the run was saved and resumes from there. ``step == steps``: it stopped after its last step,
    before its final check on the user's frames (not finished: resuming trains no step and makes the check)."""

    def __init__(self, step: int, by: str = "Ctrl-C", steps: Optional[int] = None) -> None:
        super().__init__(f"training stopped by {by} {stopped_words(step, steps)}")
        self.step = step
        self.by = by
        self.steps = steps


def stopped_words(step: int, steps: Optional[int], where: str = "") -> str:
    """Where a run stopped by a signal after ``step`` of its ``steps`` steps (None: not said) stands, saved in folder
    ``where``, and what running it again does, e.g. "after step 2: the run is saved in RUN (weights.pt holds the
    weights of step 2 of 5); the same command again resumes at step 3". Stopped after its last step (before its final
    check on the user's frames) it is not finished: running it again trains no more steps, makes the check and writes
    the finished weights."""
    saved = f"the run is saved{f' in {where}' if where else ''}"
    if steps is None:
        return f"after step {step}: {saved} (weights.pt holds the weights of step {step}); it resumes from there"
    held = f"(weights.pt holds the weights of step {step} of {steps})"
    if step >= steps:
        return (f"after step {step}: {saved} {held}, before its final check on your frames: it is not finished; the "
                "same command again finishes it (it trains no more steps, makes the check and writes the finished "
                "weights)")
    return f"after step {step}: {saved} {held}; the same command again resumes it at step {step + 1}"


_active: Optional["DeferredInterrupt"] = None  # the run's stop request, while a run steps in the main thread
_pending: Optional[str] = None  # a SIGTERM that came before the run's first step (set-up), under stop_on_sigterm


class DeferredInterrupt:
    """Context manager: ``requested`` turns True at the first Ctrl-C; the second raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.requested = False
        self.requested_by: Optional[str] = None  # "Ctrl-C" or "SIGTERM"
        self._previous: Any = None
        self._installed = False
        self._main = False

    def __enter__(self) -> "DeferredInterrupt":
        global _active, _pending
        self._main = threading.current_thread() is threading.main_thread()
        if not self._main:
            return self
        _active = self
        if _pending is not None:  # a SIGTERM came while the run was being set up: stop before the first step
            self.request(_pending)
            _pending = None
        # not where Ctrl-C is ignored (a background job)
        if signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
            self._previous = signal.signal(signal.SIGINT, self._on_interrupt)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        global _active
        if self._main:
            _active = None
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def request(self, by: str) -> None:
        """Ask the run to stop after its current step and save (said once, however often asked)."""
        if self.requested:
            return
        self.requested, self.requested_by = True, by
        said = ("stopping after this step and saving the run (Ctrl-C again to abort without saving)" if by == "Ctrl-C"
                else f"{by} received: stopping after this step and saving the run")
        try:
            print(f"\n{said}", file=sys.stderr)
        except (OSError, RuntimeError):  # stderr busy (the handler ran inside a write to it) or closed: stop anyway
            pass

    def _on_interrupt(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.request("Ctrl-C")


def _on_sigterm(signum: int, frame: Optional[FrameType]) -> None:
    global _pending
    if _active is not None:
        _active.request("SIGTERM")
    else:
        _pending = "SIGTERM"


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While the block runs, SIGTERM asks the run to stop after its current step and save, as the first Ctrl-C does
    (a SIGTERM during set-up stops it before its first step; one after the last step changes nothing: the run is
    finishing). A second SIGTERM does not abort. For the command line (a scheduler's time limit); only in the main
    thread; the previous handler is back when the block ends."""
    global _pending
    try:
        with sigterm_handled(_on_sigterm):
            yield
    finally:
        _pending = None


@contextlib.contextmanager
def sigterm_handled(handler: Any) -> Iterator[None]:
    """While the block runs in the main thread, SIGTERM calls ``handler(signum, frame)``; the previous handler is back
    when the block ends. Elsewhere (a worker thread cannot set handlers) nothing changes. Shared by sam2-train's
    :func:`stop_on_sigterm` and batch runs' ``sigterm_stops``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
