"""How the demo model (trained only on synthetic nuclei) does on real microscopy: the Cell Tracking Challenge
time-lapse Fluo-C2DL-MSC/01 in ../shared/data (mesenchymal stem cells, 48 frames of 832 x 992 uint16).

    python bench/real_data_demo.py [--model demo] [--checkpoint PATH]

One click per cell of frame 0 (at the most interior pixel of its tracking-ground-truth mask), propagation
through all frames, then on every frame with segmentation ground truth: IoU of each tracked mask with the
ground-truth cell that carries its track. Prints the mean per frame and overall (the same run with an
official checkpoint, where one is available, gives the comparison).

Fine-tuning example (the README's, `bench/real_data_finetune.py`): train on the segmentation ground truth of frames
5-19 only (ids taken from the tracking ground truth), then run this with ``--checkpoint RUN/weights.pt`` and read
the frames >= 24.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np
import tifffile

from sam2_model import build_model
from sam2_model.evaluation import click_point, track_with_clicks
from sam2_model.metrics import region_similarity

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "ctc-msc"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--data", type=pathlib.Path, default=DATA)
    parser.add_argument("--held-out-from", type=int, default=24,
                        help="also report frames from this one on (not used by the fine-tuning example)")
    args = parser.parse_args()
    frames = sorted((args.data / "01").glob("t*.tif"))
    stack = np.stack([tifffile.imread(f) for f in frames])
    track = {int(p.stem[-3:]): tifffile.imread(p) for p in sorted((args.data / "01_GT" / "TRA").glob("man_track*.tif"))}
    seg = {int(p.stem[-3:]): tifffile.imread(p) for p in sorted((args.data / "01_GT" / "SEG").glob("man_seg*.tif"))}
    first = track[0]
    ids = [int(i) for i in np.unique(first) if i != 0]
    clicks = {obj_id: click_point(first == obj_id) for obj_id in ids}
    model = build_model(args.model, checkpoint=args.checkpoint, device="cpu")
    start = time.perf_counter()
    labels = track_with_clicks(model, stack, clicks)
    elapsed = time.perf_counter() - start
    print(f"{args.model}: {len(ids)} cells clicked on frame 0 of {stack.shape}, tracked in {elapsed:.1f} s")
    scores, held_out = [], []
    for t, truth in sorted(seg.items()):
        frame_scores = []
        for obj_id in ids:
            marker = track.get(t, np.zeros_like(truth)) == obj_id
            if not marker.any():
                continue
            overlap = np.bincount(truth[marker].ravel(), minlength=int(truth.max()) + 1)
            overlap[0] = 0
            if overlap.max() == 0:
                continue
            frame_scores.append(region_similarity(labels[t] == obj_id, truth == int(np.argmax(overlap))))
        if frame_scores:
            scores.extend(frame_scores)
            if t >= args.held_out_from:
                held_out.extend(frame_scores)
            print(f"  frame {t:2d}: mean IoU {np.mean(frame_scores):.3f} over {len(frame_scores)} cells")
    print(f"overall mean IoU with the segmentation ground truth: {np.mean(scores):.3f} ({len(scores)} cell-frames); "
          f"frames >= {args.held_out_from}: {np.mean(held_out):.3f} ({len(held_out)} cell-frames)")


if __name__ == "__main__":
    main()
