"""What a batch run says on stderr: the plan before it runs, then a bar (a terminal) or plain lines (a log file)
counting the stacks done, the frames done in the stacks in flight and the detector's advice, from the workers'
events (:func:`.batch_worker.tell`), and each finished stack's failure or note. Used by :mod:`napari_sam2.batch`.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, Sequence

#: seconds between two progress lines where stderr is no terminal (a log file: SLURM, nohup; a terminal gets a bar)
PLAIN_EVERY_S = 30.0


def report_start(rows: Sequence[Dict[str, Any]], total: int, to_run: int, notes: Sequence[str] = ()) -> None:
    """Before any stack runs: how the stacks divide (the counts add up to ``total``), ``notes`` on their names and
    earlier results, and each stack that failed already (no prompts CSV) with its reason."""
    skipped = sum(row["status"] == "skipped" for row in rows)
    failed = [row for row in rows if row["status"] == "failed"]
    print(f"napari-sam2 batch: {total} stack{'s' if total != 1 else ''}: {to_run} to run, {skipped} skipped (complete "
          f"from an earlier run), {len(failed)} failed before running", file=sys.stderr)
    for note in notes:
        print(f"napari-sam2 batch: {note}", file=sys.stderr)
    for row in failed:
        print(f"failed: {row['name']}: {row['error']}", file=sys.stderr)


class Console:
    """A run's progress on stderr, for ``total`` stacks: a tqdm bar in a terminal; where stderr is no terminal (a log
    file: SLURM, nohup) plain lines, one every :data:`PLAIN_EVERY_S` seconds (also through a long first frame that
    sends no event) and when the last stack is done, never a bar's carriage returns. The workers' events of this
    ``run`` (:func:`.batch_worker.tell`): the frames done in each stack in flight (the bar's text, or in the plain
    lines) and the detector's advice of too many candidate cells, printed once per stack as it comes. ``show``
    False: silent. :meth:`close` ends it (and its clock's thread)."""

    def __init__(self, total: int, run: str, show: bool = True, stream: Any = None) -> None:
        import threading
        import time

        from tqdm import tqdm

        self.stream = sys.stderr if stream is None else stream
        self.total, self.run, self.show, self.done = total, run, show, 0
        self.tty = show and bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar = tqdm(total=total, unit="stack", desc="batch", file=self.stream) if self.tty else None
        self.frames: Dict[str, Any] = {}  # stack in flight -> (frames done, frames to do)
        self.advised: set = set()
        self.finished: set = set()  # (a stack's late frames event must not put it back in flight)
        self.started = self.last = time.monotonic()
        self.lock = threading.RLock()  # events come on the client's thread
        self.stopped = threading.Event()
        if show:  # the bar's clock, or a plain line where no event came for PLAIN_EVERY_S
            threading.Thread(target=self._clock, name="napari-sam2-batch-console", daemon=True).start()

    def _clock(self) -> None:
        while not self.stopped.wait(1.0 if self.bar is not None else max(0.2, min(PLAIN_EVERY_S, 5.0))):
            with self.lock:
                if self.stopped.is_set():
                    return
                if self.bar is not None:
                    self.bar.refresh()
                else:
                    self._plain()

    def line(self, text: str) -> None:
        if not self.show:
            return
        with self.lock:
            if self.bar is not None:
                self.bar.write(text, file=self.stream)
            else:
                print(text, file=self.stream, flush=True)

    def stack_done(self, name: str) -> None:
        with self.lock:
            self.done += 1
            self.finished.add(name)
            self.frames.pop(name, None)
            if self.bar is not None:
                self.bar.set_postfix_str(self._in_flight(), refresh=False)
                self.bar.update(1)
            self._plain(force=self.done == self.total)

    def stack_row(self, name: str, row: Dict[str, Any]) -> None:
        """A finished task's lines: a failed stack with its error; else how a frames-last stack was read
        (``read_as``), the detector's advice where its event was lost, and the note less what was already said.
        ``row`` is the worker's summary row; its "read_as" and "advice" keys are removed (they are not columns)."""
        read_as = row.pop("read_as", "")  # a frames-last stack: how it was read (the line track prints)
        advice = row.pop("advice", "")  # the detector's, printed as it came
        if row["status"] == "failed":
            self.line(f"failed: {name}: {row['error']}")
            return
        if read_as:
            self.line(f"{name}: {read_as}")
        if advice and name not in self.advised:  # (its event was lost)
            self.line(f"{name}: {' '.join(advice.split())}")
        note = str(row.get("note") or "")
        for said in (read_as, advice):
            note = note.replace(said, "", 1) if said else note
        note = "; ".join(part.strip() for part in note.split("; ") if part.strip())  # the tracker's, e.g.
        if note:
            self.line(f"{name}: note: {short(note)}")

    def event(self, event: Any) -> None:
        """A worker's event ((time, message) from Dask's ``subscribe_topic``)."""
        message = event[1] if isinstance(event, tuple) else event
        if not isinstance(message, dict) or message.get("run") != self.run:
            return
        name = str(message.get("name"))
        with self.lock:
            if message.get("advice") and name not in self.advised:
                self.advised.add(name)
                self.line(f"{name}: {' '.join(str(message['advice']).split())}")
            if "frames" in message and name not in self.finished:
                self.frames[name] = (int(message["frames"]), int(message["total"]))
                if self.bar is not None:
                    self.bar.set_postfix_str(self._in_flight(), refresh=True)
                self._plain()

    def _in_flight(self) -> str:
        shown = sorted(self.frames.items())
        text = ", ".join(f"{name}: {done}/{total} frames" for name, (done, total) in shown[:3])
        return text + (f", {len(shown) - 3} more" if len(shown) > 3 else "")

    def _plain(self, force: bool = False) -> None:
        import time

        now = time.monotonic()
        if self.bar is not None or not self.show or (not force and (now - self.last < PLAIN_EVERY_S
                                                                    or self.done >= self.total)):
            return
        self.last = now
        flight = self._in_flight()
        self.line(f"napari-sam2 batch: {self.done} of {self.total} stacks done{'; ' + flight if flight else ''} "
                  f"({now - self.started:.0f} s)")

    def close(self) -> None:
        with self.lock:
            self.stopped.set()
            if self.bar is not None:
                self.bar.close()


def short(text: str, most: int = 150) -> str:
    """``text`` on one console line: cut after ``most`` characters, pointing to summary.csv for the rest."""
    text = " ".join(text.split())
    return text if len(text) <= most else text[:most].rstrip() + "... (see summary.csv)"
