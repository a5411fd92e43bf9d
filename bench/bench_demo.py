"""Speed of the embedded demo model: frames per second propagating one object through 512 x 512 frames.

    python bench/bench_demo.py [--frames 40] [--size 512]

Ours (VideoSession) and Meta's SAM2VideoPredictor run the same demo weights on the same model inputs
in one process, one after the other; the goal is >= 5 frames/s for ours on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time

import numpy as np
import sam2_model  # noqa: F401,E402 (before torch: OpenMP's wait policy as our users get it, sam2_model/threads.py)
import torch

from _common import reference_model, reference_video_state

from sam2_model import FrameSource, VideoSession, build_model
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model.synthetic import make_timelapse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    movie = make_timelapse(num_frames=args.frames, shape=(args.size, args.size), seed=900_100)
    obj_id = clickable_objects(movie.labels[0])[0]
    x, y = click_point(movie.labels[0] == obj_id)
    model = build_model("demo", device="cpu")
    predictor = reference_model("demo", video=True)
    predictor.load_state_dict(model.state_dict(), strict=True)
    point, label = np.array([[x, y]], np.float32), np.array([1], np.int32)

    with torch.inference_mode():
        start = time.perf_counter()
        session = VideoSession(model, movie.image)
        session.add_prompt(0, 1, points=point, labels=label)
        first = time.perf_counter() - start
        start = time.perf_counter()
        count = sum(1 for _ in session.propagate())
        ours = count / (time.perf_counter() - start)

        source = FrameSource(movie.image, image_size=model.image_size)
        with tempfile.TemporaryDirectory() as tmp:
            inputs = torch.stack([source.model_input(t) for t in range(args.frames)])
            state = reference_video_state(predictor, inputs, pathlib.Path(tmp), video_size=args.size)
            predictor.add_new_points_or_box(state, 0, 1, points=point, labels=label)
            start = time.perf_counter()
            ref_count = sum(1 for _ in predictor.propagate_in_video(state))
            reference = ref_count / (time.perf_counter() - start)
    print(f"demo model, {args.frames} frames of {args.size}x{args.size} uint16, one object, "
          f"CPU with {torch.get_num_threads()} threads")
    print(f"  first click (open + embed frame 0): {first:.2f} s")
    print(f"  ours: {ours:.1f} frames/s (reading, contrast mapping, resizing and writing frame-size logits included)")
    print(f"  reference (frames preprocessed beforehand, so it does less work): {reference:.1f} frames/s")
    print(f"  ratio ours/reference throughput: {ours / reference:.2f}; goal ours >= 5 frames/s: "
          f"{'met' if ours >= 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
