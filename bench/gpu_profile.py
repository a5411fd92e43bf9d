"""Where a propagated frame's time goes on CUDA: torch.profiler over sam2.1 tiny at 1024, one object.

    python bench/gpu_profile.py [--frames 12] [--graphs]

Random weights, synthetic frames; 24 frames tracked first so the memory bank is full, then
``--frames`` frames profiled. Prints the CPU time and GPU (kernel) time per frame, kernel launches
and dtype casts per frame, and the 25 operators with the most CPU time.
"""

from __future__ import annotations

import argparse

import sam2_model  # noqa: F401,E402 (before torch: OpenMP's wait policy as our users get it, sam2_model/threads.py)
import torch
from torch.profiler import ProfilerActivity, profile

from sam2_model import VideoSession, build_model
from sam2_model.synthetic import make_timelapse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--graphs", action="store_true", help="profile with cuda_graphs=True")
    parser.add_argument("--model", default="sam2.1_hiera_tiny")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    warm = 24
    data = make_timelapse(num_frames=warm + args.frames, shape=(1024, 1024), num_cells=12, seed=5, divisions=False)
    model = build_model(args.model, checkpoint="random", device="cuda", cuda_graphs=args.graphs)
    session = VideoSession(model, data.image, fill_hole_area=0)
    session.add_prompt(0, 1, points=[(512.0, 512.0)], labels=[1])
    steps = session.propagate(output="masks")
    for _ in range(warm):
        next(steps)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(args.frames):
            next(steps)
        torch.cuda.synchronize()
    events = prof.key_averages()
    frames = args.frames
    kernels = sum(e.count for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
    casts = sum(e.count for e in events if e.key in ("aten::to", "aten::_to_copy"))
    cpu_ms = sum(e.self_cpu_time_total for e in events) / 1000 / frames
    gpu_ms = sum(getattr(e, "self_device_time_total", 0) for e in events) / 1000 / frames
    print(f"{args.model} 1024px 1 object, graphs={args.graphs}: per frame CPU {cpu_ms:.1f} ms (profiled), "
          f"GPU kernels {gpu_ms:.1f} ms, {kernels / frames:.0f} kernel launches, {casts / frames:.0f} dtype casts")
    print(events.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=50))


if __name__ == "__main__":
    main()
