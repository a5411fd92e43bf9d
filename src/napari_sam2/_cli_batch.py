"""``napari-sam2 batch INPUTS... --out DIR``: the batch command's arguments and its run.

Every stack is read with the same axis options as ``napari-sam2 track`` (``--axis``, ``--channel-axis``/``--channel``,
``--fix``, ``--rgb``); outputs hold (T, Y, X) frames along ``--axis``.

Exit codes: 0 every stack ok or skipped, 1 at least one stack failed (see DIR/summary.csv),
2 a usage error (bad arguments, no stacks found, unwritable output folder, unknown model or device,
weights that cannot be downloaded, a scheduler that cannot be reached).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict

from ._cli_axes import add_axis_arguments, axis_arguments

def add_batch_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``batch`` command to the CLI's subparsers; returns its parser."""
    parser = subparsers.add_parser(
        "batch", help="segment/track many stacks on a Dask cluster (local by default)",
        description="Run every stack as one Dask task; outputs go to OUT/<stack name>/ and OUT/summary.csv. "
                    "Exit code 0: all ok or skipped, 1: some stack failed, 2: usage error.")
    parser.add_argument("inputs", nargs="+", help="stack files (.tif, .ome.tif, .npy, .zarr), folders, glob patterns")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    source = parser.add_argument_group("prompts or automatic tracking")
    source.add_argument("--prompts-dir", type=Path, default=None,
                        help="folder of <stem>.csv / <stem>_prompts.csv (default: beside each stack)")
    source.add_argument("--auto", action="store_true", help="find and track cells automatically (no prompts)")
    source.add_argument("--seeding", default=None, choices=("blobs", "grid", "grid+blobs"), help="with --auto")
    source.add_argument("--cell-diameter", type=float, nargs=2, metavar=("MIN", "MAX"), default=None,
                        help="with --auto: cell diameters in pixels")
    source.add_argument("--redetect-every", type=int, default=None, help="with --auto: frames between detections")
    source.add_argument("--no-divisions", action="store_true", help="with --auto: do not detect divisions")
    add_axis_arguments(parser.add_argument_group(
        "axes", "how every stack is read (as for napari-sam2 track); labels are (T, Y, X) along --axis"))
    model = parser.add_argument_group("model")
    model.add_argument("--model", default="demo", help="demo (embedded, the default) or an official preset")
    model.add_argument("--checkpoint", default="download",
                       help="a .pt file (visible to every worker), 'download' or 'none' (random weights)")
    model.add_argument("--device", default="auto")
    model.add_argument("--image-size", type=int, default=None)
    model.add_argument("--smooth", type=float, default=0.0, metavar="SIGMA",
                       help="blur every frame by a Gaussian of SIGMA pixels before the model sees it (default 0: off)")
    model.add_argument("--contrast-limits", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                       help="grey values shown to the model as black and white (default: each stack's 0.5 and 99.8 "
                            "percentiles; 0 255 for uint8)")
    run = parser.add_argument_group("scheduling and outputs")
    run.add_argument("--workers", type=int, default=1,
                     help="worker processes of a local Dask cluster (with CUDA: one per GPU, at most this many)")
    run.add_argument("--scheduler", default=None, help="address of a running Dask scheduler, e.g. tcp://host:8786")
    run.add_argument("--overwrite", action="store_true", help="redo stacks whose outputs are complete")
    run.add_argument("--zarr-above", type=float, default=None, metavar="GIB",
                     help="write labels larger than this many GiB as OME-Zarr instead of TIFF (default 2)")
    parser.set_defaults(run=run_batch)
    return parser


def tracking_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The automatic-tracking options given on the command line (unset ones keep track_cells' defaults)."""
    options: Dict[str, Any] = {}
    if args.seeding is not None:
        options["seeding"] = args.seeding
    if args.cell_diameter is not None:
        options["cell_diameter"] = tuple(args.cell_diameter)
    if args.redetect_every is not None:
        options["redetect_every"] = args.redetect_every
    if args.no_divisions:
        options["divisions"] = False
    return options


def run_batch(args: argparse.Namespace) -> int:
    """Run the batch command; returns the exit code."""
    from sam2_model.checkpoints import CheckpointDownloadError

    from .batch import BatchInterrupted, batch

    options = tracking_options(args)
    if options and not args.auto:
        print(f"napari-sam2 batch: {', '.join('--' + k.replace('_', '-') for k in options)} need --auto",
              file=sys.stderr)
        return 2
    extra: Dict[str, Any] = {} if args.zarr_above is None else {"zarr_above_gb": args.zarr_above}
    checkpoint = "random" if str(args.checkpoint).lower() == "none" else args.checkpoint
    try:
        extra.update(axis_arguments(args), axis_names="cli")
        table = batch(args.inputs, args.out, auto=args.auto, prompts_dir=args.prompts_dir, model=args.model,
                      checkpoint=checkpoint, device=args.device, image_size=args.image_size, workers=args.workers,
                      scheduler=args.scheduler, overwrite=args.overwrite, smooth=args.smooth,
                      contrast_limits=args.contrast_limits, **extra, **options)
    except (ValueError, OSError, CheckpointDownloadError) as error:  # OSError: files, an unreachable scheduler
        print(f"napari-sam2 batch: {error}", file=sys.stderr)
        return 2
    except BatchInterrupted as interrupted:  # stacks finished before Ctrl-C are complete in --out
        print(f"napari-sam2 batch: {interrupted}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("napari-sam2 batch: interrupted before any stack was started; no results were written", file=sys.stderr)
        return 130
    counts = table["status"].value_counts().to_dict()
    print(f"napari-sam2 batch: {counts.get('ok', 0)} ok, {counts.get('skipped', 0)} skipped, "
          f"{counts.get('failed', 0)} failed; summary in {Path(args.out) / 'summary.csv'}")
    return 1 if counts.get("failed", 0) else 0
