"""Command line: ``python -m sam2_model.train --out runs/demo [options]`` (also ``sam2-train``).

Examples::

    # single-frame click segmentation first, then video, on synthetic data
    python -m sam2_model.train --out runs/image --clip-len 1 --clips-per-step 8 --steps 2000
    python -m sam2_model.train --out runs/video --init runs/image/weights.pt --clip-len 8 --steps 2000
    # microscopy-like mix (nuclei, cells, bacteria; fluorescence, phase, brightfield, DIC; natural clips)
    # at 512 px input, clips made ahead by 12 worker processes
    python -m sam2_model.train --out runs/mix512 --init src/sam2_model/weights/demo.pt --data mix \\
        --image-size 512 --data-workers 12 --steps 4000 --lr 2e-4
    # fine-tune an official checkpoint on your own annotated time-lapse
    python -m sam2_model.train --out runs/mine --model sam2.1_hiera_tiny --init sam2.1_hiera_tiny.pt \\
        --stack movie.tif --labels movie_labels.tif --steps 500 --lr 1e-5
    # ... or on Cell Tracking Challenge ground truth (the frames it segments, each cell under its tracking id)
    python -m sam2_model.train --out runs/ctc --init src/sam2_model/weights/demo.pt \
        --stack Fluo-C2DL-MSC/01 --labels Fluo-C2DL-MSC/01_GT --steps 200 --lr 1e-4 --warmup-steps 50

Running the same command again resumes from ``--out``/last.pt; a larger ``--steps`` extends the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import List, Optional

import torch

from .loop import TrainSettings, train
from .stack_check import StackCheck


def _flag(text: str) -> Optional[bool]:
    """An on/off option: 1/0, true/false, yes/no, on/off; auto (or -1) leaves the choice to the run."""
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    if word in ("auto", "-1", "none"):
        return None
    raise argparse.ArgumentTypeError(f"expected 1/0, true/false, yes/no or auto, got {text!r}")


def _on_off(text: str) -> bool:
    value = _flag(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"expected 1/0, true/false or yes/no, got {text!r}")
    return value


def parse_args(argv: Optional[List[str]] = None) -> TrainSettings:
    defaults = TrainSettings(out="")
    parser = argparse.ArgumentParser(prog="python -m sam2_model.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="run folder (checkpoints, history.csv, weights.pt)")
    for field in dataclasses.fields(TrainSettings):
        if field.name == "out":
            continue
        default = getattr(defaults, field.name)
        annotation = str(field.type)
        if "bool" in annotation:
            kind = _flag if "Optional" in annotation else _on_off
        else:
            kind = int if "int" in annotation else float if "float" in annotation else str
        parser.add_argument("--" + field.name.replace("_", "-"), type=kind, default=default,
                            help=f"(default: {default})")
    parser.add_argument("--no-batch-clips", dest="batch_clips", action="store_false",
                        help="put a step's clips through the model one after another (same as --batch-clips no)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = vars(parser.parse_args(argv))
    threads = args.pop("threads")
    if threads:
        torch.set_num_threads(threads)
    try:
        return TrainSettings(**args)
    except ValueError as error:
        parser.error(str(error))
        raise  # parser.error exits; this line only satisfies type checkers


def main(argv: Optional[List[str]] = None) -> int:
    settings = parse_args(argv)
    try:
        train(settings)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; run the same command again to resume from {settings.out}/last.pt", file=sys.stderr)
        return 130
    metadata = json.loads((Path(settings.out) / "weights.json").read_text())
    for key in ("stack_check", "held_out_check"):
        if metadata.get(key) is not None:
            check = StackCheck(**metadata[key])
            print(check.summary() + " (starting -> fine-tuned weights)")
            warning = check.warning()
            if warning:
                print(f"warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
