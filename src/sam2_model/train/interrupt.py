"""Ctrl-C during training: finish the step, save the run, then stop; a second Ctrl-C aborts at once.

A KeyboardInterrupt raised in the middle of a step could leave the weights half-updated, so the first Ctrl-C only
asks the loop to stop after the step it is in; the loop saves ``last.pt`` and ``weights.pt`` and raises
:class:`TrainingInterrupted`. Signal handlers belong to the main thread: elsewhere (the fine-tuning widget's worker,
which stops through its progress callback) nothing changes.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any, Optional


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run after ``step`` steps; the run was saved and resumes from there."""

    def __init__(self, step: int) -> None:
        super().__init__(f"training stopped by Ctrl-C after step {step}; the run is saved and resumes from there")
        self.step = step


class DeferredInterrupt:
    """Context manager: ``requested`` turns True at the first Ctrl-C; the second raises KeyboardInterrupt."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> "DeferredInterrupt":
        # only in the main thread (signal handlers live there), and not where Ctrl-C is ignored (a background job)
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
            self._previous = signal.signal(signal.SIGINT, self._on_interrupt)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _on_interrupt(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step and saving the run (Ctrl-C again to abort without saving)", file=sys.stderr)
