"""The Dask side of a batch run (:func:`napari_sam2.batch.batch`): its local cluster (one worker per GPU with CUDA),
the client it runs on (the user's, a scheduler's or its own local cluster), where the dashboard is, the cores this
process may use and each worker's machine; a script that would start the local cluster without
``if __name__ == "__main__":`` (:func:`check_main_guard`); and Ctrl-C / SIGTERM while the command runs and while
the local cluster starts (:func:`sigterm_stops`, :class:`Terminated`). No model, no Qt.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any, Iterator, List, Optional, Tuple

#: how to fix a script that starts the local cluster at its top level (the words of docs/batch.md)
GUARD_FIX = ('put the call under `if __name__ == "__main__":` (or in a function called there): the cluster\'s '
             "workers are new processes that import the script, and without the guard each would start a batch of its "
             "own (or pass client= or scheduler=)")


class UnguardedScript(ValueError):
    """batch() would start its local cluster from a script's top level without ``if __name__ == "__main__":``: its
    worker processes (started by "spawn", Dask's default) would run the script again and fail (Dask's "Nanny failed
    to start", ~80 lines of tracebacks). Raised before anything is created."""


def _guarded(path: str, line: int) -> bool:
    """Whether ``line`` of the Python file ``path`` lies inside an ``if __name__ == "__main__":`` block (or the file
    cannot be read or parsed: then nothing is refused)."""
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), path)  # (the file closed at once)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return True

    def names_main(test: ast.expr) -> bool:
        for node in ast.walk(test):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides) and any(
                        isinstance(s, ast.Constant) and s.value == "__main__" for s in sides):
                    return True
        return False

    return any(isinstance(node, ast.If) and names_main(node.test) and node.lineno <= line <= (node.end_lineno or 0)
               for node in ast.walk(tree))


def _script_line(frame: Optional[FrameType]) -> Optional[Tuple[str, int]]:
    """(file, line) of the main script's top-level statement that led to ``frame`` (the call itself, or a call of a
    function that makes it); None when the main module is no file spawn would run again (an interactive session,
    ``python -c``, a notebook, napari's console) or the call does not come from its top level."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path:
        return None
    import os

    target = os.path.realpath(path)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "<module>" and frame.f_globals.get("__name__") in ("__main__", "__mp_main__") and \
                os.path.realpath(code.co_filename) == target:
            return code.co_filename, frame.f_lineno
        frame = frame.f_back
    return None


def check_main_guard(caller: Optional[FrameType], local: bool = True) -> None:
    """Refuse (:class:`UnguardedScript`) a ``local`` cluster started from a script's top level outside
    ``if __name__ == "__main__":``, before anything is created; ``caller``: the frame that called batch(). In a worker
    process that runs such a script again while it starts (where the refusal did not catch it), the same message.
    Nothing is refused for Dask's "fork" start method, which runs no script again."""
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):  # a spawned process importing the script
        raise UnguardedScript(f"batch() was called while a worker process was starting (it runs the main script "
                              f"again): {GUARD_FIX}")
    import dask

    if not local or dask.config.get("distributed.worker.multiprocessing-method", "spawn") == "fork":
        return
    where = _script_line(caller)
    if where is not None and not _guarded(*where):
        raise UnguardedScript(f"batch() would start a local Dask cluster from the top level of the script "
                              f"{where[0]} (line {where[1]}): {GUARD_FIX}")


class Terminated(KeyboardInterrupt):
    """SIGTERM (a job's time limit, ``scancel``, ``kill``) under :func:`sigterm_stops`: raised where Ctrl-C raises
    KeyboardInterrupt, so that a batch stops the same way (its finished stacks listed, its local cluster closed)."""


def _gpu_count(device: str) -> int:
    """GPUs to spread workers over: only for device "auto"/"cuda" (a named "cuda:N" is the user's pick)."""
    if device not in ("auto", "cuda"):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpu_cluster(count: int, threads_per_worker: int = 1, dashboard_address: str = ":8787") -> Any:
    """A local cluster of ``count`` worker processes, worker i seeing only GPU i (CUDA_VISIBLE_DEVICES)."""
    from distributed import Nanny, Scheduler, SpecCluster

    specs = {i: {"cls": Nanny, "options": {"nthreads": threads_per_worker, "silence_logs": logging.ERROR,
                                           "env": {"CUDA_VISIBLE_DEVICES": str(i)}}}
             for i in range(count)}
    return SpecCluster(workers=specs, scheduler={"cls": Scheduler, "options": {"dashboard_address": dashboard_address}},
                       silence_logs=logging.ERROR)


def local_cluster(workers: int, device: str = "auto", threads_per_worker: int = 1) -> Any:
    """A local Dask cluster of worker processes.

    With CUDA (device "auto" or "cuda"): one worker per GPU (at most ``workers``), each seeing only
    its GPU (dask-cuda's LocalCUDACluster when it is installed, else :func:`gpu_cluster`).
    Otherwise ``workers`` processes with ``threads_per_worker`` Dask threads each. Without bokeh (no dashboard) its
    scheduler's HTTP server takes any free port (two runs at once: no "port 8787 is already in use" warning).
    """
    gpus = _gpu_count(device)
    dashboard = ":8787" if _has_bokeh() else ":0"  # no dashboard without bokeh: any free port, no "8787 in use"
    if gpus:
        count = min(workers, gpus)
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            return gpu_cluster(count, threads_per_worker, dashboard)
        return LocalCUDACluster(n_workers=count, threads_per_worker=threads_per_worker, silence_logs=logging.ERROR,
                                dashboard_address=dashboard)
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                        silence_logs=logging.ERROR, dashboard_address=dashboard)


def dashboard_line(client: Any) -> Optional[str]:
    """Where the Dask dashboard is, only when the scheduler really serves one (asked on the scheduler: a cluster
    without bokeh, or with its dashboard off, serves none, and its address would lead nowhere); None then. A
    scheduler that cannot be asked (one that refuses to run functions) gets the line, as before the question."""

    def serves_dashboard(dask_scheduler: Any) -> bool:
        """On the scheduler: whether its HTTP server serves Dask's dashboard (bokeh's application is connected to it;
        without bokeh>=3.1 the server only answers "Dask needs bokeh for the dashboard"). Defined here so that it
        travels by value: the scheduler needs no napari-sam2 (only the workers do)."""
        applications = getattr(getattr(dask_scheduler, "http_application", None), "applications", ())
        return "dashboard" in getattr(dask_scheduler, "services", {}) and any(
            "Bokeh" in type(application).__name__ for application in applications)

    try:
        link = client.dashboard_link
    except Exception:
        return None
    try:
        serves = client.run_on_scheduler(serves_dashboard)
    except Exception:  # not asked: the link, as a user's cluster always had it
        serves = True
    return f"Dask dashboard at {link}" if serves and link else None


def _has_bokeh() -> bool:
    """Whether bokeh is importable here, so that a local cluster's scheduler (in this process) serves a dashboard."""
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def usable_cores() -> int:
    """The cores this process may use (affinity and cgroup limits, as Dask counts them; os.cpu_count() counts every
    core of the machine, also those a job scheduler did not give it)."""
    from dask.system import cpu_count

    return cpu_count()


@contextlib.contextmanager
def client_for(client: Any, scheduler: Optional[str], workers: int, device: str, say: bool = True) -> Iterator[Any]:
    if client is not None:
        with stops_quietly():
            yield client
        return
    from distributed import Client

    if scheduler is not None:
        if say:
            print(f"napari-sam2 batch: connecting to the Dask scheduler at {scheduler}...", file=sys.stderr)
        with stops_quietly(), Client(scheduler) as own:
            yield own
        return
    if say:
        gpus = _gpu_count(device)
        count = min(workers, gpus) if gpus else workers
        print(f"napari-sam2 batch: starting Dask's local cluster ({count} worker{'s' * (count != 1)}"
              f"{', one per GPU' if gpus else ''})...", file=sys.stderr)
    with _ctrl_c_held() as pressed:  # a cluster cut off half-started cannot be closed (a traceback at exit)
        cluster = local_cluster(workers, device)
        try:
            own = Client(cluster)
            own.register_plugin(_ctrl_c_left_to_the_command(), name="napari-sam2-ctrl-c")
        except BaseException:
            cluster.close()
            raise
    with stops_quietly() as stopping, cluster, own:  # (closed before Ctrl-C's handler is given back)
        if pressed:
            stopping.by = pressed[0]
            stopping.quiet()
            if pressed[0] == "SIGTERM":
                import signal

                signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as _on_sigterm: another one changes nothing
                raise Terminated
            raise KeyboardInterrupt
        yield own


#: the loggers that report the cluster's shutdown after Ctrl-C / SIGTERM as errors (a worker process that got the
#: terminal's Ctrl-C too, a Dask call cut short: tornado's "NameError: cannot access free variable 'future'")
SHUTDOWN_LOGGERS = ("distributed", "tornado", "asyncio")


class _Stopping:
    """What :func:`stops_quietly` yields: ``by`` ("Ctrl-C" / "SIGTERM") once a stop came; :meth:`quiet` silences
    :data:`SHUTDOWN_LOGGERS` (and every logger below them) until the block ends."""

    def __init__(self) -> None:
        self.by = ""
        self.levels: dict = {}

    def quiet(self) -> None:
        if self.levels:
            return
        names = [n for n in list(logging.root.manager.loggerDict)
                 if any(n == top or n.startswith(top + ".") for top in SHUTDOWN_LOGGERS)]
        for name in dict.fromkeys([*SHUTDOWN_LOGGERS, *names]):
            logger = logging.getLogger(name)
            self.levels[name] = logger.level
            logger.setLevel(logging.CRITICAL + 1)

    def loud(self) -> None:
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)
        self.levels = {}


@contextlib.contextmanager
def stops_quietly() -> Iterator[_Stopping]:
    """While the block runs (the cluster in use, then closed), Ctrl-C and SIGTERM raise as before
    (KeyboardInterrupt; :class:`Terminated` under :func:`sigterm_stops`), but first silence Dask's and tornado's
    loggers until the block ends: the shutdown a stop causes (workers that got the terminal's Ctrl-C too, calls cut
    short) is no error of the run, and its tracebacks made a person think something broke. Further Ctrl-C / SIGTERM
    while it stops are ignored (``timeout`` and a terminal's second press send another: it cut Dask's close short,
    with more tracebacks). Errors of a run that is not stopped are logged as ever. Only in the main thread and only
    for a signal that raises (Python's own Ctrl-C handler, :func:`sigterm_stops`'); otherwise nothing changes."""
    import signal
    import threading

    stopping = _Stopping()
    if threading.current_thread() is not threading.main_thread():
        yield stopping
        return

    def stop(signum: int, frame: Any) -> None:
        if stopping.by:  # already stopping: let the close finish
            return
        stopping.by = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        stopping.quiet()
        raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    raising = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: _on_sigterm}
    previous = {number: signal.signal(number, stop) for number, handler in raising.items()
                if signal.getsignal(number) is handler}
    try:
        yield stopping
    finally:
        for number, handler in previous.items():  # after SIGTERM, another one still changes nothing (_on_sigterm)
            signal.signal(number, signal.SIG_IGN if number == signal.SIGTERM and stopping.by == "SIGTERM"
                          else handler)
        stopping.loud()


def _ctrl_c_left_to_the_command() -> Any:
    """A worker plugin for the command's own local cluster: its worker processes (also those Dask restarts) ignore
    Ctrl-C. A terminal sends Ctrl-C to every process of the command; each worker then printed its own
    KeyboardInterrupt traceback, while the command stops them itself (it closes its cluster)."""
    from distributed import WorkerPlugin

    class CtrlCLeftToTheCommand(WorkerPlugin):
        def setup(self, worker: Any) -> None:
            import signal
            import threading

            if threading.current_thread() is threading.main_thread():  # (the worker's event loop: its main thread)
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return CtrlCLeftToTheCommand()


def _on_sigterm(signum: int, frame: Any) -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the run is stopping: another SIGTERM changes nothing
    raise Terminated


@contextlib.contextmanager
def sigterm_stops() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises :class:`Terminated` where Ctrl-C raises
    KeyboardInterrupt, so the command stops as after Ctrl-C (exit code 143); a second SIGTERM is ignored while it
    stops. For the command line; the previous handler is back when the block ends."""
    from sam2_model.train.interrupt import sigterm_handled

    with sigterm_handled(_on_sigterm):
        yield


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[List[str]]:
    """Hold Ctrl-C (SIGINT) and SIGTERM back while the block runs: the yielded list gets "Ctrl-C" or "SIGTERM" when
    one came (the caller then stops); a second Ctrl-C interrupts at once. Only in the main thread, and each signal
    only where it raises (Python's own Ctrl-C handler; SIGTERM under :func:`sigterm_stops`); otherwise nothing
    changes."""
    import signal
    import threading

    pressed: List[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield pressed
        return

    def hold(signum: int, frame: Any) -> None:
        by = "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"
        if pressed:
            if by == "Ctrl-C":
                raise KeyboardInterrupt
            return
        pressed.append(by)
        again = "Ctrl-C: at once" if by == "Ctrl-C" else "another SIGTERM changes nothing"
        print(f"napari-sam2 batch: stopping once the local cluster has started ({again})", file=sys.stderr)

    held = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: _on_sigterm}
    previous = {number: signal.signal(number, hold) for number, raising in held.items()
                if signal.getsignal(number) is raising}
    try:
        yield pressed
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def workers_per_machine(client: Any) -> Tuple[Tuple[str, int], ...]:
    """(worker address, the cluster's worker processes on its machine) for each worker now connected: workers on one
    machine share its cores (:func:`.batch_worker.task_threads`)."""
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # an older distributed: every worker is listed
        workers = client.scheduler_info()["workers"]
    hosts = Counter(info.get("host") for info in workers.values())
    return tuple((address, hosts[info.get("host")]) for address, info in workers.items())
