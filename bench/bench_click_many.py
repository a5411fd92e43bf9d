"""A click's wait in the widget's controller with many objects: 5, 20, 60, 100 cells at 512 px.

    python bench/bench_click_many.py                   # demo model at 256 px input, 512 x 512 frames, CPU
    python bench/bench_click_many.py --objects 5 60 --repeats 3 --window 0   # whole frames only

Every cell is clicked on frame 0 of a synthetic nuclei movie (one ``apply_prompts`` per cell, as the widget sends
them), then one more positive click is added to one cell ``--repeats`` times (a refinement, as a person corrects a
mask) through ``SegmentationController.apply_prompts``: its time is the click's wait, labels written included. The
fastest of the repeats is kept. Where the time goes (seconds in the session's ``add_prompt``, in composing the frame's
labels, the rest) is measured by wrapping those calls. ``--window N`` runs object windows of N px too (0: none).
Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict, List, Optional

import numpy as np
import sam2_model  # noqa: F401,E402 (before torch: OpenMP's wait policy as our users get it, sam2_model/threads.py)
import torch

from sam2_model import build_model
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model.synthetic import make_timelapse

from napari_sam2 import controller as controller_module
from napari_sam2.controller import SegmentationController
from napari_sam2.layout import StackLayout
from napari_sam2.prompts import FramePrompt


def cells(size: int, count: int, frames: int = 2) -> Any:
    """A synthetic movie with at least ``count`` clickable cells on frame 0 (.image, .labels) and their ids."""
    radius = float(np.clip(0.35 / np.sqrt(count * 1.4), 0.02, 0.08))
    data = make_timelapse(num_frames=frames, shape=(size, size), num_cells=int(count * 1.4) + 4, seed=5,
                          divisions=False, enter_leave=False, radius_fraction=radius)
    ids = clickable_objects(data.labels[0], min_area=20)[:count]
    if len(ids) < count:
        raise SystemExit(f"only {len(ids)} clickable cells for {count} objects at {size} px")
    return data, ids


class Timer:
    """Seconds spent in wrapped callables, by name."""

    def __init__(self) -> None:
        self.spent: Dict[str, float] = {}

    def wrap(self, name: str, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - start
        return timed


def click_wait(model: Any, size: int, count: int, window: Optional[int], repeats: int) -> Dict[str, float]:
    data, ids = cells(size, count)
    labels = np.zeros(data.image.shape, np.uint32)
    controller = SegmentationController(model, data.image, StackLayout(3, 0), labels, object_window=window)
    prompts: Dict[int, FramePrompt] = {}
    for cell in ids:
        xy = np.array(click_point(data.labels[0] == cell), np.float32)[None]
        prompts[int(cell)] = FramePrompt(0, int(cell), xy, np.ones(1, np.int32))
        list(controller.apply_prompts(list(prompts.values())))
    target = int(ids[len(ids) // 2])
    session = controller.session
    timer = Timer()
    session.add_prompt = timer.wrap("add_prompt", session.add_prompt)
    compose = controller_module.compose_frame
    controller_module.compose_frame = timer.wrap("compose", compose)
    best: Optional[Dict[str, float]] = None
    try:
        for _ in range(repeats):
            old = prompts[target]
            ys, xs = np.nonzero(data.labels[0] == target)
            extra = np.array([[xs.mean() + 1.0, ys.mean()]], np.float32)
            prompts[target] = FramePrompt(0, target, np.vstack([old.points, extra]), np.append(old.labels, 1))
            timer.spent.clear()
            start = time.perf_counter()
            list(controller.apply_prompts(list(prompts.values())))
            total = time.perf_counter() - start
            row = {"total": total, **timer.spent}
            if best is None or total < best["total"]:
                best = row
    finally:
        controller_module.compose_frame = compose
    assert best is not None
    best["frame_labels"] = best["total"] - best.get("add_prompt", 0.0)  # the frame's labels: every object's result
    return best


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, nargs="+", default=[5, 20, 60, 100])
    parser.add_argument("--size", type=int, default=512, help="frame side in px (default 512)")
    parser.add_argument("--input", type=int, default=256, help="the model's input size (default 256)")
    parser.add_argument("--window", type=int, default=128, help="object window side in px (0: whole frames only)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = build_model("demo", device=args.device, image_size=args.input)
    print(f"demo model at {args.input} px input, {args.size} x {args.size} frames, {args.device}, "
          f"{torch.get_num_threads()} threads; best of {args.repeats} clicks")
    print("objects | as | click s | session add_prompt s | labels of the frame s (compose s)")
    for window in [None] + ([args.window] if args.window else []):
        for count in args.objects:
            row = click_wait(model, args.size, count, window, args.repeats)
            where = "whole frames" if window is None else f"{window} px windows"
            print(f"{count} | {where} | {row['total']:.3f} | {row.get('add_prompt', 0.0):.3f} | "
                  f"{row['frame_labels']:.3f} ({row.get('compose', 0.0):.3f})", flush=True)


if __name__ == "__main__":
    main()
