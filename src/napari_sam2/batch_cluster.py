"""The Dask side of a batch run (:func:`napari_sam2.batch.batch`): its local cluster (one worker per GPU with CUDA),
the client it runs on (the user's, a scheduler's or its own local cluster), where the dashboard is, the cores this
process may use and each worker's machine; and Ctrl-C / SIGTERM while the command runs and while the local cluster
starts (:func:`sigterm_stops`, :class:`Terminated`). No model, no Qt.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections import Counter
from typing import Any, Iterator, List, Optional, Tuple


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
    Otherwise ``workers`` processes with ``threads_per_worker`` Dask threads each.
    """
    gpus = _gpu_count(device)
    if gpus:
        count = min(workers, gpus)
        try:
            from dask_cuda import LocalCUDACluster
        except ImportError:
            return gpu_cluster(count, threads_per_worker)
        return LocalCUDACluster(n_workers=count, threads_per_worker=threads_per_worker, silence_logs=logging.ERROR)
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                        silence_logs=logging.ERROR)


def dashboard_line(client: Any, local: bool) -> Optional[str]:
    """Where the Dask dashboard is; None for a local cluster without bokeh, which serves none (the README says how
    to get one: a note on every run would be noise for a user who never asked for it)."""
    if local:
        try:
            import bokeh  # noqa: F401
        except ImportError:
            return None
    return f"Dask dashboard at {client.dashboard_link}"


def usable_cores() -> int:
    """The cores this process may use (affinity and cgroup limits, as Dask counts them; os.cpu_count() counts every
    core of the machine, also those a job scheduler did not give it)."""
    from dask.system import cpu_count

    return cpu_count()


@contextlib.contextmanager
def client_for(client: Any, scheduler: Optional[str], workers: int, device: str, say: bool = True) -> Iterator[Any]:
    if client is not None:
        yield client
        return
    from distributed import Client

    if scheduler is not None:
        if say:
            print(f"napari-sam2 batch: connecting to the Dask scheduler at {scheduler}...", file=sys.stderr)
        with Client(scheduler) as own:
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
        except BaseException:
            cluster.close()
            raise
    with cluster, own:
        if pressed:
            if pressed[0] == "SIGTERM":
                import signal

                signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as _on_sigterm: another one changes nothing
                raise Terminated
            raise KeyboardInterrupt
        yield own


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
