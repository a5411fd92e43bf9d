"""Correctness of the GPU speed paths, on a CUDA machine (prints a table, writes JSON with --json).

    python bench/gpu_check.py [--json out.json]

Demo model (trained weights), 256 x 256 synthetic nuclei, 4 objects clicked on frame 0 and one added
on frame 6, 24 frames forward, bfloat16 autocast as Meta runs it:
1. weights held in bfloat16 vs float32 weights re-cast by autocast: should be bit-identical;
2. CUDA graphs vs eager: logits within float rounding;
3. batched objects vs one by one vs Meta's SAM2VideoPredictor (the issue's tolerance: logits within
   1e-3 and masks differing on at most 0.01 % of pixels).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
from typing import Dict, List, Tuple

import numpy as np
import sam2_model  # noqa: F401,E402 (before torch: OpenMP's wait policy as our users get it, sam2_model/threads.py)
import torch

os.environ.setdefault("TQDM_DISABLE", "1")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _common import reference_model  # noqa: E402

from sam2_model import FrameSource, VideoSession, build_model  # noqa: E402
from sam2_model.evaluation import click_point, clickable_objects  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402

Prompt = Tuple[int, int, Tuple[float, float]]  # frame, object id, (x, y)


def scene(num_frames: int = 24) -> Tuple[np.ndarray, List[Prompt]]:
    data = make_timelapse(num_frames=num_frames, shape=(256, 256), num_cells=10, seed=11, divisions=False)
    ids = clickable_objects(data.labels[0], min_area=20)
    prompts = [(0, k + 1, click_point(data.labels[0] == i)) for k, i in enumerate(ids[:4])]
    late = clickable_objects(data.labels[6], min_area=20)
    prompts.append((6, 5, click_point(data.labels[6] == late[-1])))
    return data.image, prompts


def ours(model, frames: np.ndarray, prompts: List[Prompt], batch: bool) -> np.ndarray:
    """(T, n_obj, H, W) logits from frame 0 forward (objects added on later frames are -1024 before)."""
    session = VideoSession(model, frames, fill_hole_area=0, batch_objects=batch)
    for frame, obj, point in prompts:
        session.add_prompt(frame, obj, points=[point], labels=[1])
    out = np.stack([session.frame_logits(t) for t, _, _ in session.propagate(start_frame=0)])
    session.close()
    return out


def meta(predictor, frames: np.ndarray, prompts: List[Prompt], device: torch.device) -> np.ndarray:
    from PIL import Image

    source = FrameSource(frames, image_size=256)
    inputs = torch.stack([source.model_input(t) for t in range(len(frames))]).to(device)
    with tempfile.TemporaryDirectory() as folder:
        for t in range(len(frames)):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(f"{folder}/{t:05d}.jpg")
        state = predictor.init_state(folder)
    state["images"], state["cached_features"] = inputs, {}
    state["video_height"] = state["video_width"] = 256
    ids = sorted({obj for _, obj, _ in prompts})
    out = np.full((len(frames), len(ids), 256, 256), -1024.0, np.float32)
    import contextlib

    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    with torch.inference_mode(), autocast:
        for frame, obj, (x, y) in prompts:
            predictor.add_new_points_or_box(state, frame, obj, points=np.array([[x, y]], np.float32),
                                            labels=np.array([1], np.int32))
        for t, obj_ids, logits in predictor.propagate_in_video(state, start_frame_idx=0):
            for row, obj in enumerate(obj_ids):
                out[t, ids.index(obj)] = logits[row, 0].float().cpu().numpy()
    return out


def compare(a: np.ndarray, b: np.ndarray) -> Dict[str, float]:
    both = (a > -1000) & (b > -1000)
    return {"max_abs_logit_diff": float(np.abs(a - b)[both].max()) if both.any() else 0.0,
            "mask_pixels_differing": float(((a > 0) != (b > 0)).mean()),
            "identical": bool(np.array_equal(a, b))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=pathlib.Path, default=None)
    parser.add_argument("--device", default="cuda", help="cpu: a dry run of the script (held weights and graphs are off)")
    args = parser.parse_args()
    device = torch.device(args.device)
    frames, prompts = scene()
    results: Dict[str, Dict[str, float]] = {}
    held = build_model("demo", device=device, cuda_graphs=False)
    base = ours(held, frames, prompts, True)
    fp32 = build_model("demo", device=device, low_precision_weights=False, cuda_graphs=False)
    results["held bf16 vs fp32 weights"] = compare(base, ours(fp32, frames, prompts, True))
    graphed = build_model("demo", device=device, cuda_graphs=True)
    for _ in range(2):  # the graphs are captured on the third call of each shape
        ours(graphed, frames, prompts, True)
    results["cuda graphs vs eager"] = compare(base, ours(graphed, frames, prompts, True))
    graphs = getattr(graphed, "cuda_graphs", None)
    results["cuda graphs vs eager"]["graphs"] = graphs.summary() if graphs is not None else None  # type: ignore[assignment]
    per_object = ours(held, frames, prompts, False)
    results["batched vs per-object"] = compare(base, per_object)
    predictor = reference_model("demo", image_size=256, video=True)
    predictor.fill_hole_area = 0
    predictor.load_state_dict(build_model("demo", device="cpu").state_dict(), strict=True)
    try:
        reference = meta(predictor.to(device).eval(), frames, prompts, device)
        results["per-object vs Meta"] = compare(per_object, reference)
        results["batched vs Meta"] = compare(base, reference)
    except RuntimeError as error:  # Meta's predictor needs autocast for its bfloat16 memories (CPU dry runs)
        results["Meta"] = {"error": str(error)}  # type: ignore[dict-item]
    for name, values in results.items():
        shown = {k: v for k, v in values.items() if k != "graphs"}
        print(f"{name:>28}: {shown}")
    print("graphs:", results["cuda graphs vs eager"]["graphs"])
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
