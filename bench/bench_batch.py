"""Batch throughput: stacks per hour with 1, 2, ... Dask workers on this machine.

    python bench/bench_batch.py                       # 8 stacks of 10 frames 128 x 128, workers 1 and 2, CPU
    python bench/bench_batch.py --workers 1 2 4 --stacks 16 --device cuda --model sam2.1_hiera_tiny

Each stack is a synthetic time-lapse (sam2_model.synthetic) with a prompts CSV clicking every cell
of its first frame. For each worker count a fresh LocalCluster runs all stacks into a fresh output
folder. Reported: wall time of the whole run (cluster start and model builds included), stacks per
hour from it, the cluster start alone, the median seconds of one stack inside a worker and the
workers' CPU seconds per stack (start-up and model build included; on a shared machine the CPU
seconds are the steadier figure: wall times grow with the load, CPU seconds much less).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import tifffile
from scipy import ndimage

from napari_sam2.batch import batch
from napari_sam2.batch_cluster import local_cluster
from sam2_model.synthetic import make_timelapse


def make_stacks(folder: Path, count: int, frames: int, size: int, cells: int) -> None:
    """``count`` TIFF stacks with a ``<stem>.csv`` of one positive click per cell on frame 0."""
    for i in range(count):
        timelapse = make_timelapse(num_frames=frames, shape=(size, size), num_cells=cells, seed=7000 + i,
                                   divisions=False, enter_leave=False)
        tifffile.imwrite(folder / f"stack{i:03d}.tif", timelapse.image, photometric="minisblack")
        lines = ["frame,obj_id,y,x,label"]
        for obj in np.unique(timelapse.labels[0])[1:]:
            cy, cx = ndimage.center_of_mass(timelapse.labels[0] == obj)
            lines.append(f"0,{obj},{cy:.1f},{cx:.1f},1")
        (folder / f"stack{i:03d}.csv").write_text("\n".join(lines) + "\n")


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's finished children: the local cluster's workers."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cluster_start_seconds(workers: int, device: str) -> float:
    from distributed import Client

    started = time.perf_counter()
    with local_cluster(workers, device) as cluster, Client(cluster) as client:
        client.wait_for_workers(len(cluster.workers))
        return time.perf_counter() - started


def run(args: argparse.Namespace) -> List[Dict[str, float]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as tmp:
        data = Path(tmp) / "stacks"
        data.mkdir()
        make_stacks(data, args.stacks, args.frames, args.size, args.cells)
        for workers in args.workers:
            start_only = cluster_start_seconds(workers, args.device)
            started, cpu_before = time.perf_counter(), _children_cpu()
            table = batch(data, Path(tmp) / f"out{workers}", model=args.model, checkpoint=args.checkpoint,
                          device=args.device, image_size=args.image_size, workers=workers, progress=False)
            wall, cpu = time.perf_counter() - started, _children_cpu() - cpu_before
            ok = int((table["status"] == "ok").sum())
            if ok != args.stacks:
                raise RuntimeError(f"only {ok} of {args.stacks} stacks succeeded:\n{table[['name', 'error']]}")
            per_stack = statistics.median(float(s) for s in table["seconds"])
            results.append({"workers": workers, "stacks": args.stacks, "wall_s": round(wall, 1),
                            "stacks_per_hour": round(args.stacks * 3600 / wall),
                            "cluster_start_s": round(start_only, 1), "median_stack_s": round(per_stack, 2),
                            "steady_stacks_per_hour": round(workers * 3600 / per_stack),
                            "worker_cpu_s_per_stack": round(cpu / args.stacks, 2)})
            print(json.dumps(results[-1]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--stacks", type=int, default=8)
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--checkpoint", default="download")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--image-size", type=int, default=256)
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    print(f"{args.stacks} stacks of {args.frames} frames {args.size}x{args.size}, {args.cells} cells, "
          f"model {args.model} at {args.image_size} px on {args.device}")
    results = run(args)
    heads = ("workers", "wall s", "stacks/h", "start s", "s/stack", "steady/h", "cpu s/stack")
    print(" ".join(f"{h:>{max(7, len(h))}}" for h in heads))
    for r in results:
        values = (r["workers"], r["wall_s"], r["stacks_per_hour"], r["cluster_start_s"], r["median_stack_s"],
                  r["steady_stacks_per_hour"], r["worker_cpu_s_per_stack"])
        print(" ".join(f"{v:>{max(7, len(h))}}" for v, h in zip(values, heads)))


if __name__ == "__main__":
    main()
