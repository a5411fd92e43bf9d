"""Many objects: ours batched vs ours one by one vs Meta's SAM2VideoPredictor, one process, same weights and frames.

    python bench/bench_objects.py              # CUDA: four sam2.1 presets at 1024 (1 object) and tiny with 1/5/20/100
                                               # CPU: demo at 256 with 1/5/20 objects, sam2.1 tiny at 512 with 5
    python bench/bench_objects.py --cpu-quick  # CPU, fewer frames: demo 1 and 20 objects, tiny 512 with 5

Every run propagates forward from frame 0 (all objects clicked there) through a synthetic nuclei
time-lapse, image encoding included, in a fresh session (Meta: a fresh ``init_state`` whose frames
are our model inputs). Weights: Meta's model with seeded random weights copied into ours (the demo
preset: our embedded trained weights copied into Meta's). Hole filling is off on both sides (Meta
skips it without its CUDA extension). CUDA runs use bfloat16 autocast as Meta runs it; peak memory
is the run's peak above what was allocated before it. Each configuration runs twice, the three
sides interleaved, and the faster run is kept. Prints frames/s and ratios; timings on a shared
machine are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

os.environ.setdefault("TQDM_DISABLE", "1")  # Meta's progress bars

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from oracle import reference_model  # noqa: E402

from sam2_model import FrameSource, VideoSession, build_model  # noqa: E402
from sam2_model.evaluation import click_point, clickable_objects  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402


def movie(num_frames: int, size: int, num_objects: int) -> Tuple[np.ndarray, List[Tuple[float, float]]]:
    """(T, S, S) uint16 frames and ``num_objects`` click points (cell centres, then a grid if cells run out)."""
    cells = max(12, int(num_objects * 1.3))
    radius = float(np.clip(0.35 / np.sqrt(cells), 0.02, 0.08))
    data = make_timelapse(num_frames=num_frames, shape=(size, size), num_cells=cells, seed=5, divisions=False,
                          radius_fraction=radius)
    ids = clickable_objects(data.labels[0], min_area=20)
    points = [click_point(data.labels[0] == i) for i in ids[:num_objects]]
    side = int(np.ceil(np.sqrt(num_objects)))
    grid = [((i + 0.5) * size / side, (j + 0.5) * size / side) for i in range(side) for j in range(side)]
    points += grid[: num_objects - len(points)]
    return data.image, points


def same_weights(name: str, size: int, device: torch.device):
    """(ours, Meta's predictor) holding identical weights, on ``device``."""
    predictor = reference_model(name, image_size=size, video=True)
    predictor.fill_hole_area = 0
    if name == "demo":
        ours = build_model("demo", device="cpu")
        predictor.load_state_dict(ours.state_dict(), strict=True)
    else:
        ours = build_model(name, checkpoint="random", device="cpu", image_size=size)
        ours.load_state_dict(predictor.state_dict(), strict=True)
    return ours.to(device).eval(), predictor.to(device).eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _measure(run, device: torch.device) -> Tuple[float, Optional[float]]:
    """(seconds, peak MB above the start or None on CPU) of ``run()``."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    start = time.perf_counter()
    run()
    _sync(device)
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if device.type == "cuda" else None
    return seconds, peak


def run_ours(model, frames, points, batch: bool, device) -> Tuple[float, Optional[float]]:
    session = VideoSession(model, FrameSource(frames, image_size=model.image_size), fill_hole_area=0,
                           batch_objects=batch)
    for k, point in enumerate(points):
        session.add_prompt(0, k + 1, points=[point], labels=[1])
    result = _measure(lambda: [None for _ in session.propagate()], device)
    session.close()
    return result


def run_meta(predictor, inputs: torch.Tensor, points, device) -> Tuple[float, Optional[float]]:
    from PIL import Image

    size = inputs.shape[-1]
    with tempfile.TemporaryDirectory() as folder:
        for t in range(inputs.shape[0]):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(f"{folder}/{t:05d}.jpg")
        state = predictor.init_state(folder)
    state["images"] = inputs.to(device)
    state["video_height"] = state["video_width"] = size
    state["cached_features"] = {}
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        for k, (x, y) in enumerate(points):
            predictor.add_new_points_or_box(state, 0, k + 1, points=np.array([[x, y]], np.float32),
                                            labels=np.array([1], np.int32))
        return _measure(lambda: [None for _ in predictor.propagate_in_video(state)], device)


def bench(name: str, size: int, objects: List[int], num_frames: int, device: torch.device, meta: bool,
          per_object: bool, repeats: int = 2) -> List[Dict[str, object]]:
    ours, predictor = same_weights(name, size, device)
    rows = []
    for n in objects:
        frames, points = movie(num_frames, size, n)
        source = FrameSource(frames, image_size=size)
        inputs = torch.stack([source.model_input(t) for t in range(num_frames)])
        if n == objects[0]:  # warm-up: kernels, allocator, thread pools, cuDNN choices
            run_ours(ours, frames[:3], points, True, device)
            run_ours(ours, frames[:3], points, False, device)
            if meta:
                run_meta(predictor, inputs[:3], points, device)
        row: Dict[str, object] = {"model": name, "size": size, "objects": n, "frames": num_frames}
        runs = {"batched": lambda: run_ours(ours, frames, points, True, device)}
        if per_object:
            runs["per_object"] = lambda: run_ours(ours, frames, points, False, device)
        if meta:
            runs["meta"] = lambda: run_meta(predictor, inputs, points, device)
        for _ in range(repeats):  # interleaved, fastest kept: load from other jobs hits all sides alike
            for key, run in runs.items():
                seconds, peak = run()
                if key not in row or seconds < row[key][0]:  # type: ignore[index]
                    row[key] = (seconds, peak)
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def format_row(row: Dict[str, object]) -> str:
    frames = int(row["frames"])  # type: ignore[arg-type]
    parts = [f"{row['model']:>18} {row['size']:>5}px {row['objects']:>4} obj"]
    for key in ("batched", "per_object", "meta"):
        if key in row:
            seconds, peak = row[key]  # type: ignore[misc]
            mem = f", peak {peak:.0f} MB" if peak is not None else ""
            parts.append(f"{key} {frames / seconds:6.2f} frames/s{mem}")
    if "meta" in row:
        ratio = row["meta"][0] / row["batched"][0]  # type: ignore[index]
        parts.append(f"batched/Meta speed {ratio:.2f}x (time per frame {1 / ratio:.2f}x Meta's)")
    return " | ".join(parts)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=None, help="frames per run (default: 40 CUDA, 12 CPU)")
    parser.add_argument("--cpu-quick", action="store_true", help="CPU: demo 1 and 20 objects, tiny 512 with 5")
    parser.add_argument("--no-meta", action="store_true", help="skip Meta's predictor")
    parser.add_argument("--objects", type=int, nargs="+", default=None,
                        help="object counts for sam2.1 tiny on CUDA (default 1 5 20 100)")
    parser.add_argument("--presets", nargs="*", default=None,
                        help="CUDA one-object presets at 1024 (default: the four sam2.1 presets; none to skip)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    meta = not args.no_meta
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'})")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        frames = args.frames or 40
        presets = args.presets if args.presets is not None else [
            "sam2.1_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus", "sam2.1_hiera_large"]
        for preset in presets:
            bench(preset, 1024, [1], frames, device, meta, per_object=False)
        rows = bench("sam2.1_hiera_tiny", 1024, args.objects or [1, 5, 20, 100], frames, device, meta, per_object=True)
        rows += bench("demo", 256, [1, 20, 100], frames, device, meta, per_object=True)
    else:
        frames = args.frames or (8 if args.cpu_quick else 12)
        objects = [1, 20] if args.cpu_quick else [1, 5, 20]
        rows = bench("demo", 256, objects, frames, device, meta, per_object=True)
        rows += bench("sam2.1_hiera_tiny", 512, [5], max(4, frames // 2), device, meta, per_object=True)
    by_model: Dict[str, Dict[int, float]] = {}
    for row in rows:
        seconds = row["batched"][0]  # type: ignore[index]
        by_model.setdefault(f"{row['model']} {row['size']}px", {})[int(row["objects"])] = seconds  # type: ignore[arg-type]
    for model_name, times in by_model.items():
        if 1 in times:
            for n, seconds in sorted(times.items()):
                if n > 1:
                    print(f"{model_name}: {n} objects run at {times[1] / seconds:.2f}x the one-object frames/s (batched)")


if __name__ == "__main__":
    main()
