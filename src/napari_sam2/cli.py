"""Command line: ``napari-sam2 track STACK.tif --prompts prompts.csv -o labels.tif``.

prompts.csv has a header and one row per click, ``frame,obj_id,y,x,label``; a row that also has
``y1,x1`` is a box from (y, x) to (y1, x1) (its label is ignored). Coordinates are pixels.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import tifffile
from tqdm import tqdm

from sam2_model.frames_io import open_stack

from .api import segment


def read_prompts(path: Path) -> Tuple[List[tuple], List[tuple]]:
    """(clicks, boxes) rows for :func:`napari_sam2.api.segment` from a prompts CSV."""
    clicks, boxes = [], []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        required = {"frame", "obj_id", "y", "x"}
        if not reader.fieldnames or not required <= set(reader.fieldnames):
            raise ValueError(f"{path}: the header must name at least frame,obj_id,y,x (and label, or y1,x1 for boxes)")
        for line, row in enumerate(reader, start=2):
            try:
                frame, obj, y, x = int(row["frame"]), int(row["obj_id"]), float(row["y"]), float(row["x"])
                if row.get("y1") and row.get("x1"):
                    boxes.append((frame, y, x, float(row["y1"]), float(row["x1"]), obj))
                else:
                    clicks.append((frame, y, x, int(row.get("label") or 1), obj))
            except (TypeError, ValueError) as error:
                raise ValueError(f"{path}, line {line}: {error}") from error
    return clicks, boxes


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="napari-sam2", description="SAM 2 for microscopy stacks")
    commands = parser.add_subparsers(dest="command", required=True)
    track = commands.add_parser("track", help="segment and track objects through a stack")
    track.add_argument("stack", type=Path, help="a (T, Y, X) .tif stack")
    track.add_argument("--prompts", type=Path, required=True, help="CSV: frame,obj_id,y,x,label[,y1,x1]")
    track.add_argument("-o", "--output", type=Path, required=True, help="labels .tif to write")
    track.add_argument("--model", default="demo", help="demo (embedded, the default) or an official preset")
    track.add_argument("--checkpoint", default="download", help="a .pt file, 'download' (official presets: cached or downloaded; demo: embedded), or 'none' (random weights)")
    track.add_argument("--device", default="auto")
    track.add_argument("--image-size", type=int, default=None)
    track.add_argument("--direction", default="both", choices=("forward", "backward", "both"))
    args = parser.parse_args(argv)
    try:
        clicks, boxes = read_prompts(args.prompts)
        stack = open_stack(args.stack)  # read lazily, frame by frame
        bar = tqdm(total=0, unit="frame", desc="propagating")

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        checkpoint = "random" if args.checkpoint.lower() == "none" else args.checkpoint
        labels = segment(stack, clicks, boxes, model=args.model, checkpoint=checkpoint, device=args.device,
                         image_size=args.image_size, direction=args.direction, progress=progress)
        bar.close()
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"napari-sam2: {error}", file=sys.stderr)
        return 2
    tifffile.imwrite(args.output, labels, compression="zlib")
    print(f"wrote {args.output} ({labels.max()} objects max id)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
