"""PyTorch's threads in the workers of a cluster the user starts (a Client passed to batch, --scheduler, SLURM).

Dask's nanny starts every worker process with OMP_NUM_THREADS=1 and MKL_NUM_THREADS=1, which left PyTorch one thread
per worker whatever its cores (batch set threads only on its own local cluster). Now each task gives PyTorch the
cores its process may use, shared among the cluster's worker processes on that machine and their Dask threads, or
OMP_NUM_THREADS where the user set it above 1 for the workers (docs/batch.md, "How it scales").
"""

from __future__ import annotations

import json
import os
import sys

import pytest
import tifffile

from napari_sam2.batch import batch
from test_batch import MODEL, _write_stack

cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the probes below travel to the workers

distributed = pytest.importorskip("distributed")


def _set_environ(name: str, value: str) -> None:
    os.environ[name] = value


def _torch_threads_here() -> int:
    import torch

    return torch.get_num_threads()


def test_workers_of_a_users_local_cluster_give_torch_their_cores(tmp_path):
    """A LocalCluster started as a user starts one (worker processes, the nanny's environment): the stack's task ran
    PyTorch on cores // (workers on the machine * their threads) threads (it ran on 1); OMP_NUM_THREADS set above 1
    for the workers wins. The manifest says how many and why."""
    from dask.system import cpu_count

    _write_stack(tmp_path, "a", seed=70)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as client:
        assert client.run(os.environ.get, "OMP_NUM_THREADS") == {w: "1" for w in client.nthreads()}  # Dask's default
        out = tmp_path / "out"
        assert list(batch(tmp_path / "a.tif", out, client=client, progress=False, **MODEL)["status"]) == ["ok"]
        manifest = json.loads((out / "a" / "manifest.json").read_text())
        assert manifest["torch_threads"] == cpu_count(), manifest
        assert manifest["torch_threads_why"] == f"{cpu_count()} cores / 1 worker process on this machine / 1 Dask " \
                                                "thread each"
        assert client.submit(_torch_threads_here, pure=False).result() == cpu_count()  # the worker's task thread
        client.run(_set_environ, "OMP_NUM_THREADS", "3")  # as `OMP_NUM_THREADS=3 dask worker ...` sets it
        batch(tmp_path / "a.tif", out, client=client, overwrite=True, progress=False, **MODEL)
        manifest = json.loads((out / "a" / "manifest.json").read_text())
        assert (manifest["torch_threads"], manifest["torch_threads_why"]) == (
            3, "OMP_NUM_THREADS=3 in the worker's environment")
    assert tifffile.imread(out / "a" / "labels.tif").max() > 0


def test_the_main_guard_check_leaves_no_file_open(tmp_path):
    """F1: the check read the script with a bare open() that nobody closed (a ResourceWarning in test_cli_wiring's
    batch test, where -W error turns it into a failure)."""
    import gc
    import warnings

    from napari_sam2.batch_cluster import _guarded

    script = tmp_path / "my_batch.py"
    script.write_text('import napari_sam2\n\nif __name__ == "__main__":\n    napari_sam2.batch("a.tif", "out")\n')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert _guarded(str(script), 4) and not _guarded(str(script), 1)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)], [str(w.message) for w in caught]
