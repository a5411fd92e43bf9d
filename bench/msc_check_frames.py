"""How well ``VideoSession.jumped_frames`` (the objects panel's *Check frames*) points to where tracking went wrong,
and what a click there is worth, on the Cell Tracking Challenge time-lapse Fluo-C2DL-MSC/01 in ../shared/data.

    python bench/msc_check_frames.py [--model demo] [--checkpoint PATH] [--max-iou 0.2] [--rounds 2]

(about 25 s per round on 2 CPU cores with the embedded model)

Each cell of frame 0 is clicked once (the most interior pixel of its tracking-ground-truth marker, as in
``real_data_demo.py``) and tracked through all 48 frames. A frame is *followed* where the tracked mask covers at
least ``--min-cover`` of the cell's marker; the cell is *lost* from the first later frame where it does not
(or where the cell has left the field). Prints per cell the frames flagged to check and the frame it was lost
on; how many followed frames were flagged (false alarms); for how many lost cells the first flagged frame is
within ``--within`` frames of the loss; and the zero-shot MSC IoU (``real_data_demo.score_msc``).

Then ``--rounds`` rounds of what a user does with the flags: on each cell's first flagged frame that has no click
yet, click the cell (its marker's interior; nothing if it has left the field), propagate again, score. Beside it,
rounds of clicks placed from the ground truth instead (one on each still-lost cell's first lost frame): what a
person who watched every frame would do.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Callable, Dict, List, Optional

import numpy as np

from real_data_demo import DATA, MscData, load_msc, score_msc
from sam2_model import SAM2Model, build_model
from sam2_model.evaluation import click_point
from sam2_model.video_session import JUMP_MAX_IOU, VideoSession

# Picks, for one cell of a session, the frame to click next (None: no click) from its coverage of the truth.
ClickRule = Callable[[VideoSession, int, Dict[int, float]], Optional[int]]


def track(session: VideoSession, msc: MscData) -> tuple:
    """Propagate from the first prompt: (T, H, W) labels and {cell: {frame: fraction of its marker covered}}."""
    labels = np.zeros(msc.stack.shape[:3], np.int32)
    cover: Dict[int, Dict[int, float]] = {obj_id: {} for obj_id in msc.ids}
    for t, _, plane in session.propagate(output="labels"):
        labels[t] = plane
        for obj_id in msc.ids:
            marker = msc.track[t] == obj_id
            if marker.any():
                cover[obj_id][t] = float((plane[marker] == obj_id).mean())
    return labels, cover


def lost_from(cover: Dict[int, float], num_frames: int, min_cover: float) -> Optional[int]:
    """First frame after 0 where the cell's marker is covered less than ``min_cover`` or the cell is gone."""
    bad = [t for t in range(1, num_frames) if cover.get(t, 0.0) < min_cover]
    return bad[0] if bad else None


def assisted(model: SAM2Model, msc: MscData, rounds: int, pick: ClickRule, max_iou: float) -> List[tuple]:
    """Round 0: the first clicks; then ``rounds`` rounds of one click per cell where ``pick`` says, kept as
    conditioning frames as the plugin keeps corrections. Returns per round (clicks added, MscScore,
    {cell: check frames}, {cell: {frame: marker covered}})."""
    session = VideoSession(model, msc.stack, corrections_as_conditioning=True)
    for obj_id, point in msc.first_clicks().items():
        session.add_prompt(0, obj_id, points=[point], labels=[1])
    labels, cover = track(session, msc)

    def flags() -> Dict[int, List[int]]:
        return {obj_id: session.jumped_frames(obj_id, max_iou=max_iou) for obj_id in msc.ids}

    results = [(0, score_msc(labels, msc), flags(), cover)]
    for _ in range(rounds):
        added = 0
        for obj_id in msc.ids:
            frame = pick(session, obj_id, cover[obj_id])
            if frame is None or frame in session.prompted_frames(obj_id):
                continue
            marker = msc.track[frame] == obj_id
            if marker.any():
                session.add_prompt(frame, obj_id, points=[click_point(marker)], labels=[1])
                added += 1
        if added:
            labels, cover = track(session, msc)
        results.append((added, score_msc(labels, msc), flags(), cover))
    session.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--data", type=pathlib.Path, default=DATA)
    parser.add_argument("--max-iou", type=float, default=JUMP_MAX_IOU)
    parser.add_argument("--min-cover", type=float, default=0.2)
    parser.add_argument("--within", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    msc = load_msc(args.data)
    model = build_model(args.model, checkpoint=args.checkpoint, device="cpu")
    frames = len(msc.stack)

    def first_unclicked_flag(session: VideoSession, obj_id: int, cover: Dict[int, float]) -> Optional[int]:
        flagged = session.jumped_frames(obj_id, max_iou=args.max_iou)  # never a prompted frame
        return flagged[0] if flagged else None

    def first_lost(session: VideoSession, obj_id: int, cover: Dict[int, float]) -> Optional[int]:
        return lost_from(cover, frames, args.min_cover)

    by_flags = assisted(model, msc, args.rounds, first_unclicked_flag, args.max_iou)
    _, _, check, cover = by_flags[0]
    followed_frames = flagged_followed = found = losses = 0
    for obj_id in msc.ids:
        flagged = check[obj_id]
        followed = [t for t, c in cover[obj_id].items() if t > 0 and c >= args.min_cover]
        lost = lost_from(cover[obj_id], frames, args.min_cover)
        followed_frames += len(followed)
        flagged_followed += len(set(flagged) & set(followed))
        if lost is not None:
            losses += 1
            found += bool(flagged) and abs(flagged[0] - lost) <= args.within
        print(f"cell {obj_id:2d}: check frames {flagged}; lost from frame {lost}")
    print(f"flagged: {flagged_followed} of {followed_frames} followed frames; first flag within {args.within} "
          f"frames of the loss for {found} of {losses} lost cells (max_iou {args.max_iou})")
    by_truth = assisted(model, msc, args.rounds, first_lost, args.max_iou)
    print("round | clicks added, MSC IoU: at the first check frame | at the first lost frame (ground truth)")
    for r, ((n_f, s_f, _, _), (n_t, s_t, _, _)) in enumerate(zip(by_flags, by_truth)):
        print(f"{r:5d} | {n_f:2d}, {s_f.overall:.3f} | {n_t:2d}, {s_t.overall:.3f}")


if __name__ == "__main__":
    main()
