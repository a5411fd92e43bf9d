"""Many objects: ours batched vs ours one by one vs Meta's SAM2VideoPredictor, one process, same weights and frames.

    python bench/bench_objects.py              # CUDA: four sam2.1 presets at 1024 (1 object) and tiny with 1/5/20/100
                                               # CPU: demo at 256 with 1/5/20 objects, sam2.1 tiny at 512 with 5
    python bench/bench_objects.py --cpu-quick  # CPU, fewer frames: demo 1 and 20 objects, tiny 512 with 5

Every run propagates forward from frame 0 (all objects clicked there) through a synthetic nuclei
time-lapse, image encoding included, in a fresh session (Meta: a fresh ``init_state`` whose frames
are our model inputs); ours yields boolean masks on the host (``output="masks"``), Meta's loop its
GPU logits. Our sides: "batched" (the default build: objects batched; on CUDA bfloat16-held weights and
CUDA graphs), "per_object" (``batch_objects=False``), "eager" (``cuda_graphs=False``), "fp32_weights"
(also ``low_precision_weights=False``: autocast re-casts the weights), "compiled" (``compile=True``). Weights: Meta's model with seeded random weights copied into ours (the demo
preset: our embedded trained weights copied into Meta's). Hole filling is off on both sides (Meta
skips it without its CUDA extension). CUDA runs use bfloat16 autocast as Meta runs it; peak memory
is the run's peak above what was allocated before it. Each configuration runs twice, the sides
interleaved, and the faster run is kept. Prints frames/s and ratios; timings on a shared
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
import sam2_model  # noqa: F401,E402 (before torch: OpenMP's wait policy as our users get it, sam2_model/threads.py)
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
    """(float32 state dict for our models, Meta's predictor on ``device``) holding identical weights."""
    predictor = reference_model(name, image_size=size, video=True)
    predictor.fill_hole_area = 0
    if name == "demo":
        ours = build_model("demo", device="cpu")
        predictor.load_state_dict(ours.state_dict(), strict=True)
    else:
        ours = build_model(name, checkpoint="random", device="cpu", image_size=size)
        ours.load_state_dict(predictor.state_dict(), strict=True)
    return ours.state_dict(), predictor.to(device).eval()


def ours_variant(name: str, size: int, device: torch.device, state: Dict[str, torch.Tensor], **options):
    """Our model holding weights ``state``, as ``build_model(name, device=device, **options)`` builds it."""
    model = build_model(name, checkpoint="random", device=device, image_size=size, **options)
    model.load_state_dict(state, strict=True)  # copies into bfloat16-held weights round as .to() does
    return model


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


def run_ours(model, frames, points, batch: bool, device, output: str = "masks") -> Tuple[float, Optional[float]]:
    session = VideoSession(model, FrameSource(frames, image_size=model.image_size), fill_hole_area=0,
                           batch_objects=batch)
    for k, point in enumerate(points):
        session.add_prompt(0, k + 1, points=[point], labels=[1])
    result = _measure(lambda: [None for _ in session.propagate(output=output)], device)
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


#: our sides: build options and whether objects are batched (Meta's side is "meta")
OUR_SIDES = {
    "batched": ({}, True),
    "per_object": ({}, False),
    "eager": ({"cuda_graphs": False}, True),
    "fp32_weights": ({"low_precision_weights": False, "cuda_graphs": False}, True),
}


def bench(name: str, size: int, objects: List[int], num_frames: int, device: torch.device, sides: List[str],
          repeats: int = 2, frames_for: Optional[Dict[int, int]] = None,
          sides_for: Optional[Dict[int, List[str]]] = None) -> List[Dict[str, object]]:
    """Rows of {model, size, objects, frames, side: (seconds, peak MB)}; each side warmed up once first.

    frames_for / sides_for: per object count, fewer frames or fewer sides (e.g. 100 objects).
    """
    state, predictor = same_weights(name, size, device)
    ours = ours_variant(name, size, device, state)
    models = {"batched": ours, "per_object": ours}
    rows = []
    for n in objects:
        count = (frames_for or {}).get(n, num_frames)
        wanted = (sides_for or {}).get(n, sides)
        frames, points = movie(count, size, n)
        source = FrameSource(frames, image_size=size)
        inputs = torch.stack([source.model_input(t) for t in range(count)])
        runs = {}
        for side in wanted:
            if side == "meta":
                runs[side] = lambda: run_meta(predictor, inputs, points, device)
                continue
            options, batch = OUR_SIDES[side]
            if side not in models:
                models[side] = ours_variant(name, size, device, state, **options)
            runs[side] = (lambda m, b: lambda: run_ours(m, frames, points, b, device))(models[side], batch)
        for side in wanted:  # warm-up: kernels, allocator, thread pools, cuDNN choices, graph captures
            if side == "meta":
                run_meta(predictor, inputs[:4], points, device)
            else:
                run_ours(models[side], frames[:4], points, OUR_SIDES[side][1], device)
        row: Dict[str, object] = {"model": name, "size": size, "objects": n, "frames": count}
        for _ in range(repeats):  # interleaved, fastest kept: load from other jobs hits all sides alike
            for key, run in runs.items():
                seconds, peak = run()
                if key not in row or seconds < row[key][0]:  # type: ignore[index]
                    row[key] = (seconds, peak)
        rows.append(row)
        print(format_row(row), flush=True)
    del models, ours, predictor, state
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def format_row(row: Dict[str, object]) -> str:
    frames = int(row["frames"])  # type: ignore[arg-type]
    parts = [f"{row['model']:>18} {row['size']:>5}px {row['objects']:>4} obj {frames:>3} fr"]
    for key in (*OUR_SIDES, "compiled", "meta"):
        if key in row:
            seconds, peak = row[key]  # type: ignore[misc]
            mem = f" ({peak:.0f} MB)" if peak is not None else ""
            ratio = f" = {row['meta'][0] / seconds:.2f}x Meta" if "meta" in row and key != "meta" else ""  # type: ignore[index]
            parts.append(f"{key} {frames / seconds:6.2f} fps{mem}{ratio}")
    return " | ".join(parts)


def bench_compiled(device: torch.device, num_frames: int, warm_frames: int = 8, name: str = "sam2.1_hiera_tiny",
                   size: int = 1024) -> Dict[str, object]:
    """One object, compiled (``build_model(compile=True)``): the first-use delay (build, compile and
    ``warm_frames`` frames) and then frames/s, with Meta's eager predictor in the same run for the ratio."""
    state, predictor = same_weights(name, size, device)
    frames, points = movie(num_frames, size, 1)
    start = time.perf_counter()
    model = ours_variant(name, size, device, state, compile=True)
    run_ours(model, frames[:warm_frames], points, True, device)
    run_ours(model, frames[: warm_frames + 4], points, True, device)  # memory counts of later frames
    delay = time.perf_counter() - start
    source = FrameSource(frames, image_size=size)
    inputs = torch.stack([source.model_input(t) for t in range(num_frames)])
    run_meta(predictor, inputs[:4], points, device)
    row: Dict[str, object] = {"model": name, "size": size, "objects": 1, "frames": num_frames,
                              "first_use_seconds": round(delay, 1)}
    for _ in range(2):
        for key, run in (("compiled", lambda: run_ours(model, frames, points, True, device)),
                         ("meta", lambda: run_meta(predictor, inputs, points, device))):
            seconds, peak = run()
            if key not in row or seconds < row[key][0]:  # type: ignore[index]
                row[key] = (seconds, peak)
    print(format_row(row) + f" | first use (build + compile + {warm_frames} frames) {delay:.0f} s", flush=True)
    return row


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--frames", type=int, default=None, help="frames per run (default: 60 CUDA, 12 CPU)")
    parser.add_argument("--cpu-quick", action="store_true", help="CPU: demo 1 and 20 objects, tiny 512 with 5")
    parser.add_argument("--no-meta", action="store_true", help="skip Meta's predictor")
    parser.add_argument("--objects", type=int, nargs="+", default=None,
                        help="object counts for sam2.1 tiny on CUDA (default 1 5 20 100)")
    parser.add_argument("--presets", nargs="*", default=None,
                        help="CUDA one-object presets at 1024 (default: the four sam2.1 presets; none to skip)")
    parser.add_argument("--parts", nargs="*", default=["presets", "objects", "demo", "compiled"],
                        help="CUDA parts to run (default: presets objects demo compiled)")
    parser.add_argument("--json", type=pathlib.Path, default=None, help="also write the rows here")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per side, fastest kept (default 2)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    meta = [] if args.no_meta else ["meta"]
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'})"
          f", torch {torch.__version__}", flush=True)
    rows: List[Dict[str, object]] = []

    def save() -> None:
        if args.json is not None:
            import json

            args.json.write_text(json.dumps(rows, indent=1, default=str))

    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        frames = args.frames or 60
        presets = args.presets if args.presets is not None else [
            "sam2.1_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus", "sam2.1_hiera_large"]
        if "presets" in args.parts:
            for preset in presets:
                extra = ["fp32_weights"] if preset == "sam2.1_hiera_tiny" else []
                rows += bench(preset, 1024, [1], frames, device, ["batched", "eager", *extra, *meta], args.repeats)
                save()
        if "objects" in args.parts:
            objects = args.objects or [1, 5, 20, 100]
            rows += bench("sam2.1_hiera_tiny", 1024, objects, 40, device, ["batched", "eager", "per_object", *meta],
                          args.repeats, frames_for={100: 12}, sides_for={100: ["batched", *meta]})
            save()
        if "demo" in args.parts:
            rows += bench("demo", 256, [1, 20, 100], 40, device, ["batched", "eager", "per_object", *meta],
                          args.repeats, frames_for={100: 12}, sides_for={100: ["batched", *meta]})
            save()
        if "compiled" in args.parts:
            rows.append(bench_compiled(device, frames))
            save()
    else:
        frames = args.frames or (8 if args.cpu_quick else 12)
        objects = [1, 20] if args.cpu_quick else [1, 5, 20]
        rows += bench("demo", 256, objects, frames, device, ["batched", "per_object", *meta])
        rows += bench("sam2.1_hiera_tiny", 512, [5], max(4, frames // 2), device, ["batched", "per_object", *meta])
        save()
    by_model: Dict[str, Dict[int, float]] = {}
    for row in rows:
        if "batched" not in row:
            continue
        for side in ("batched", "eager"):
            if side in row:
                seconds = row[side][0]  # type: ignore[index]
                key = f"{row['model']} {row['size']}px {side}"
                by_model.setdefault(key, {})[int(row["objects"])] = int(row["frames"]) / seconds  # type: ignore[arg-type]
    for model_name, fps in by_model.items():
        if 1 in fps:
            for n, rate in sorted(fps.items()):
                if n > 1:
                    print(f"{model_name}: {n} objects run at {rate / fps[1]:.2f}x the one-object frames/s")


if __name__ == "__main__":
    main()
