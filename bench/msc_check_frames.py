"""How well ``VideoSession.jumped_frames`` (the objects panel's *Check frames*) points to where tracking went wrong,
on the Cell Tracking Challenge time-lapse Fluo-C2DL-MSC/01 in ../shared/data.

    python bench/msc_check_frames.py [--model demo] [--checkpoint PATH] [--max-iou 0.2]

Each cell of frame 0 is clicked once (the most interior pixel of its tracking-ground-truth marker, as in
``real_data_demo.py``) and tracked through all 48 frames. A frame is *followed* where the tracked mask covers at
least ``--min-cover`` of the cell's marker; the cell is *lost* from the first later frame where it does not
(or where the cell has left the field). Prints per cell the frames flagged to check and the frame it was lost
on, then: how many followed frames were flagged (false alarms), and for how many lost cells the first
flagged frame is within ``--within`` frames of the loss.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Dict, List, Optional

import numpy as np
import tifffile

from sam2_model import build_model
from sam2_model.evaluation import click_point
from sam2_model.video_session import JUMP_MAX_IOU, VideoSession

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "ctc-msc"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--data", type=pathlib.Path, default=DATA)
    parser.add_argument("--max-iou", type=float, default=JUMP_MAX_IOU)
    parser.add_argument("--min-cover", type=float, default=0.2)
    parser.add_argument("--within", type=int, default=3)
    args = parser.parse_args()
    if not (args.data / "01").is_dir() or not (args.data / "01_GT" / "TRA").is_dir():
        raise SystemExit(f"--data: no CTC time-lapse at {args.data} (expected 01/ and 01_GT/TRA/)")
    stack = np.stack([tifffile.imread(f) for f in sorted((args.data / "01").glob("t*.tif"))])
    track = [tifffile.imread(p) for p in sorted((args.data / "01_GT" / "TRA").glob("man_track*.tif"))]
    ids = [int(i) for i in np.unique(track[0]) if i]
    session = VideoSession(build_model(args.model, checkpoint=args.checkpoint, device="cpu"), stack)
    for obj_id in ids:
        session.add_prompt(0, obj_id, points=[click_point(track[0] == obj_id)], labels=[1])
    cover: Dict[int, Dict[int, float]] = {obj_id: {} for obj_id in ids}
    for t, obj_ids, logits in session.propagate():
        for row, obj_id in enumerate(obj_ids):
            marker = track[t] == obj_id
            if marker.any():
                cover[obj_id][t] = float((logits[row] > 0)[marker].mean())
    followed_frames = flagged_followed = found = 0
    losses = 0
    for obj_id in ids:
        flagged = session.jumped_frames(obj_id, max_iou=args.max_iou)
        followed = [t for t, c in cover[obj_id].items() if t > 0 and c >= args.min_cover]
        bad = [t for t in range(1, len(stack)) if cover[obj_id].get(t, 0.0) < args.min_cover]
        lost: Optional[int] = bad[0] if bad else None
        followed_frames += len(followed)
        flagged_followed += len(set(flagged) & set(followed))
        if lost is not None:
            losses += 1
            found += bool(flagged) and abs(flagged[0] - lost) <= args.within
        print(f"cell {obj_id:2d}: check frames {flagged}; lost from frame {lost}")
    print(f"flagged: {flagged_followed} of {followed_frames} followed frames; first flag within {args.within} "
          f"frames of the loss for {found} of {losses} lost cells (max_iou {args.max_iou})")


if __name__ == "__main__":
    main()
