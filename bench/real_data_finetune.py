"""Fine-tune a model on a few annotated frames of the real CTC time-lapse (../shared/data/ctc-msc), the
annotate -> fine-tune -> annotate-faster loop of the paper's data engine:

    python bench/real_data_finetune.py --out runs/ctc_msc [--first 5 --last 19 --steps 200]
    python bench/real_data_demo.py --checkpoint runs/ctc_msc/weights.pt --windows    # read the frames >= 24

Training data: the frames in [first, last] that have segmentation ground truth (01_GT/SEG), each cell
relabelled with the id of the tracking-ground-truth cell it overlaps most (01_GT/TRA), so ids are
consistent through time (``sam2_model.train.ctc_training``, as ``python -m sam2_model.train --stack 01 --labels
01_GT`` reads it); frame 9 segments 2 of its 8 cells: the others are not annotated there, not gone. Frames after
``last`` are never seen in training; ``real_data_demo.py`` reports
them separately.
"""

from __future__ import annotations

import argparse
import pathlib
import time
from typing import Tuple

import numpy as np

from real_data_demo import DATA  # the shared CTC time-lapse, beside the repository
from sam2_model.build import embedded_weights_path
from sam2_model.train.ctc_training import read_ctc_training
from sam2_model.train.loop import RunConflict, RunFinished, TrainSettings, fine_tuning_warmup, train


def annotated_frames(data: pathlib.Path, first: int, last: int) -> Tuple[np.ndarray, np.ndarray, list]:
    """(T, H, W) frames and (T, H, W) labels with tracking ids, for annotated frames in [first, last]
    (:func:`sam2_model.train.ctc_training.read_ctc_training`; MSC has no division, so no lineage)."""
    try:
        ctc = read_ctc_training(data / "01", data / "01_GT", first, last)
    except ValueError as error:
        raise SystemExit(str(error))
    return ctc.stack, ctc.labels, ctc.frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--data", type=pathlib.Path, default=DATA)
    parser.add_argument("--first", type=int, default=5)
    parser.add_argument("--last", type=int, default=19)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=1, help="the run's seed (clips, prompts, dropout)")
    parser.add_argument("--max-objects", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=None,
                        help="warm-up steps (default: sam2_model.train.fine_tuning_warmup, 50 for 200 steps)")
    parser.add_argument("--init", default=str(embedded_weights_path()))
    parser.add_argument("--no-augment", dest="augment", action="store_false",
                        help="train on the frames as they are (default: each clip turned and mirrored at random)")
    args = parser.parse_args()
    stack, labels, used = annotated_frames(args.data, args.first, args.last)
    print(f"training on frames {used}: {int(sum(len(np.unique(f)) - 1 for f in labels))} annotated cells")
    warmup = fine_tuning_warmup(args.steps) if args.warmup is None else args.warmup
    settings = TrainSettings(out=str(args.out), init=args.init, steps=args.steps, lr=args.lr, warmup_steps=warmup,
                             max_objects=args.max_objects, clip_len=min(4, len(used)), clips_per_step=2,
                             device="cpu", seed=args.seed, augment=args.augment)
    start = time.perf_counter()
    try:
        train(settings, stack=stack, labels=labels)
    except RunFinished as finished:  # run again on a finished folder: its weights stand
        print(f"nothing to do: {finished}")
        return
    except RunConflict as conflict:
        raise SystemExit(f"real_data_finetune: {conflict}") from None
    print(f"fine-tuned in {time.perf_counter() - start:.0f} s; weights: {args.out / 'weights.pt'}")


if __name__ == "__main__":
    main()
