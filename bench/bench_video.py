"""Video benchmark, ours vs Meta's reference in one run on the same CPU, random weights copied over.

    python bench/bench_video.py                      # sam2.1 tiny at 1024, 20 frames
    python bench/bench_video.py --image-size 512 --frames 10 --rss-frames 100 1000 --rss-image-size 256

Prints seconds per propagated frame (one object), seconds to re-propagate after a correction,
click-to-mask time on a frame whose features are computed, each as ours / reference, and our peak
RSS propagating through N frames of 512x512 uint16 (one subprocess per N).
"""

from __future__ import annotations

import argparse
import pathlib
import resource
import subprocess
import sys
import tempfile

import numpy as np
import sam2_model  # noqa: F401,E402 (before torch: OpenMP's wait policy as our users get it, sam2_model/threads.py)
import torch

from _common import reference_model, reference_video_state, timed

from sam2_model import FrameSource, VideoSession, build_model


def blobs(num_frames: int, size: int, dtype=np.uint8) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    out = []
    for t in range(num_frames):
        cx = size * (0.3 + 0.01 * t)
        image = 20 + 200 * np.exp(-((xx - cx) ** 2 + (yy - size / 2) ** 2) / (2 * (size / 10) ** 2))
        out.append(image)
    stack = np.stack(out)
    if dtype == np.uint16:
        return (stack * 100).astype(np.uint16)
    return np.repeat(stack.astype(np.uint8)[..., None], 3, axis=-1)


def compare(args) -> None:
    size, n = args.image_size, args.frames
    predictor = reference_model(args.model, image_size=size, video=True)
    predictor.fill_hole_area = 0
    model = build_model(args.model, device="cpu", image_size=size)
    model.load_state_dict(predictor.state_dict(), strict=True)
    frames = blobs(n, size)
    inputs = torch.stack([FrameSource(frames, image_size=size).model_input(t) for t in range(n)])
    click = np.array([[size * 0.3, size / 2]], np.float32)
    label = np.array([1], np.int32)
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        state = reference_video_state(predictor, inputs, pathlib.Path(tmp))
        session = VideoSession(model, frames, fill_hole_area=0)
        rows = []
        ref_click = timed(lambda: predictor.add_new_points_or_box(state, 0, 1, points=click, labels=label))
        our_click = timed(lambda: session.add_prompt(0, 1, points=click, labels=label))
        ref = timed(lambda: list(predictor.propagate_in_video(state))) / n
        ours = timed(lambda: list(session.propagate())) / n
        rows.append(("seconds per propagated frame", ours, ref))
        correction = np.array([[size * 0.45, size / 2]], np.float32)
        args_c = dict(points=correction, labels=np.array([0], np.int32))
        ref_fix = timed(lambda: predictor.add_new_points_or_box(state, n // 2, 1, clear_old_points=False, **args_c))
        our_fix = timed(lambda: session.add_prompt(n // 2, 1, clear_old=False, **args_c))
        rows.append(("click-to-mask on an embedded frame (s)", our_fix, ref_fix))
        ref = timed(lambda: list(predictor.propagate_in_video(state, start_frame_idx=n // 2)))
        ours = timed(lambda: list(session.propagate(start_frame=n // 2)))
        rows.append(("re-propagate after a correction (s)", ours, ref))
    print(f"{args.model} at {size}px, {n} frames, one object, CPU with {torch.get_num_threads()} threads")
    print(f"  first click (includes embedding frame 0): ours {our_click:.2f} s, reference {ref_click:.2f} s")
    for name, ours, ref in rows:
        print(f"  {name:42s} ours {ours:8.3f}  reference {ref:8.3f}  ratio {ours / ref:.2f}")


def rss_child(num_frames: int, image_size: int, model_name: str) -> None:
    """Propagate through num_frames of 512x512 uint16; print peak RSS in MB."""
    # A multi-page TIFF read page by page, as microscopy stacks arrive (a numpy memmap would count
    # every page it touched as resident memory of this process).
    import tifffile

    path = pathlib.Path(tempfile.mkdtemp()) / "stack.tif"
    template = blobs(1, 512, np.uint16)[0]
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for t in range(num_frames):
            tif.write(np.roll(template, t, axis=1), photometric="minisblack", contiguous=True)
    frames = str(path)
    model = build_model(model_name, device="cpu", image_size=image_size)
    session = VideoSession(model, frames, feature_cache_mb=64)
    session.add_prompt(0, 1, points=[[150, 256]], labels=[1])
    with torch.inference_mode():
        for _ in session.propagate():
            pass
    print(peak_rss_mb())


def peak_rss_mb() -> float:
    """This process's peak RSS. ru_maxrss would carry the parent's peak over fork+exec; VmHWM does not."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss(args) -> None:
    peaks = {}
    for n in args.rss_frames:
        out = subprocess.run(
            [sys.executable, __file__, "--rss-child", str(n), "--rss-image-size", str(args.rss_image_size),
             "--model", args.model],
            check=True, capture_output=True, text=True,
        )
        peaks[n] = float(out.stdout.strip().splitlines()[-1])
        print(f"  peak RSS propagating {n} frames of 512x512 uint16 at {args.rss_image_size}px: {peaks[n]:.0f} MB")
    low, high = min(peaks), max(peaks)
    print(f"  ratio {high} vs {low} frames: {peaks[high] / peaks[low]:.2f} (goal <= 1.3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sam2.1_hiera_tiny")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--rss-frames", type=int, nargs="*", default=[100, 1000])
    parser.add_argument("--rss-image-size", type=int, default=256)
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--skip-compare", action="store_true")
    args = parser.parse_args()
    if args.rss_child is not None:
        rss_child(args.rss_child, args.rss_image_size, args.model)
        return
    if not args.skip_compare:
        compare(args)
    if args.rss_frames:
        rss(args)


if __name__ == "__main__":
    main()
