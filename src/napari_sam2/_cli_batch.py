"""``napari-sam2 batch INPUTS... --out DIR``: the batch command's arguments and its run.

Every stack is read with the same axis options as ``napari-sam2 track`` (``--axis``, ``--channel-axis``/``--channel``,
``--fix``, ``--rgb``); outputs hold (T, Y, X) frames along ``--axis``. The model and tracking options that batch
shares with ``track`` (``--image-size N|auto``, ``--object-window``, ``--direction``, ``--cell-diameter``,
``--redetect-every``, ``--min-contrast``, ``--start-frame``, ``--frames A-B``, ...) mean the same and are checked by
the same code, all before anything is created or the cluster starts (``--frames``: parsed by track's parser; a stack
with fewer frames than B fails, the others run).

Exit codes: 0 every stack ok or skipped, 1 at least one stack failed (see DIR/summary.csv),
2 a usage error (bad arguments, no stacks found, unwritable output folder or one another run is writing into,
unknown model or device, weights that cannot be downloaded, a scheduler that cannot be reached), 130 Ctrl-C,
143 SIGTERM (a job's time limit, scancel: stopped as after Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict

from ._cli_auto import CHECKPOINT_HELP, DEVICE_HELP, MODEL_HELP, check_detection_options, frames_option
from ._cli_axes import add_axis_arguments, axis_arguments

#: exit codes of a run stopped by Ctrl-C (SIGINT) or SIGTERM (a job's time limit, scancel, kill): 128 + the signal
INTERRUPTED_CODES = {"Ctrl-C": 130, "SIGTERM": 143}


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
                        help="folder of <name>.csv / <name>_prompts.csv, <name> the stack's file name without its suffix "
                             "(movie for movie.ome.tif, also movie.ome.csv) (default: beside each stack)")
    source.add_argument("--auto", action="store_true", help="find and track cells automatically (no prompts)")
    source.add_argument("--seeding", default=None, choices=("blobs", "grid", "grid+blobs"), help="with --auto")
    source.add_argument("--cell-diameter", type=float, nargs=2, metavar=("MIN", "MAX"), default=None,
                        help="with --auto: cell diameters in pixels")
    source.add_argument("--redetect-every", type=int, default=None, help="with --auto: frames between detections")
    divisions = source.add_mutually_exclusive_group()
    divisions.add_argument("--no-divisions", action="store_true",
                           help="with --auto: do not detect divisions (the default in stacks whose frames are z "
                                "slices)")
    divisions.add_argument("--divisions", action="store_true",
                           help="with --auto: detect divisions even in stacks whose frames are z slices (a TIFF's "
                                "axes or an OME-Zarr's say so; there the default is off: cells do not divide along z)")
    source.add_argument("--min-contrast", type=float, default=None, metavar="C",
                        help="with --auto: drop detections that stand out less than C from the pixels around them "
                             "(as in track --auto; 0: off)")
    source.add_argument("--start-frame", type=int, default=None,
                        help="with --auto: detect the cells on this frame of every stack and track from it (default 0)")
    source.add_argument("--direction", default=None, choices=("forward", "backward", "both"),
                        help="prompts: from the first prompted frame (default both); --auto: from --start-frame, "
                             "forward (default) or backward, not both (the rule of track --auto); a stack where that "
                             "way has nothing to track (backward from frame 0, forward from its last) fails")
    axes = parser.add_argument_group(
        "axes", "how every stack is read (as for napari-sam2 track); labels are (T, Y, X) along --axis")
    add_axis_arguments(axes)
    axes.add_argument("--frames", type=frames_option, default=None, metavar="A-B",
                      help="track frames A to B of every stack only (both included, each stack's numbers from 0; "
                           "only they are read), as napari-sam2 track --frames A-B: prompts CSV rows name the "
                           "stack's frames, each inside A-B; --auto starts on A (or --start-frame, a frame of A-B). "
                           "The outputs hold those frames, numbered from 0; summary.csv's frame_range and each "
                           "manifest say which. A stack with fewer frames fails (the others run)")
    model = parser.add_argument_group("model")
    model.add_argument("--model", default="demo", help=MODEL_HELP)
    model.add_argument("--checkpoint", default="download", help=f"{CHECKPOINT_HELP} (visible to every worker)")
    model.add_argument("--device", default="auto",
                       help=f"{DEVICE_HELP}; with auto or cuda, one worker per GPU (cuda:N: every worker on GPU N)")
    model.add_argument("--image-size", default=None, metavar="N|auto",
                       help="the model's input size: a multiple of 32, or auto (picked per stack from the size of the "
                            "objects in its first prompted frame; --auto: its --start-frame); default: the model's own "
                            "(demo 256, official 1024)")
    model.add_argument("--object-window", default=None, metavar="N|auto|off",
                       help="prompts only: segment and track each object in a square window of N frame px around it; "
                            "auto (default): per stack, only where the objects of its first prompted frame are small "
                            "against it; off: every object on the whole frame (e.g. membrane-stained cells)")
    model.add_argument("--smooth", default="auto", metavar="SIGMA|auto|off",
                       help="blur every frame by a Gaussian of SIGMA pixels before the model sees it; off (or 0): no "
                            "blur; auto (default): per stack, as napari-sam2 track chooses it, from its first "
                            "prompted frame's grain at the clicked objects, for the demo model's shipped weights only "
                            "(grainy, dim cells: a fraction of their width; clean frames and other weights: none), "
                            "said in the stack's note; with --auto, auto is off")
    model.add_argument("--invert", action="store_true",
                       help="dark objects on a bright background (brightfield, phase contrast, stained histology): "
                            "the model sees the grey values inverted, and --auto detects the dark cells")
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
    if args.no_divisions or args.divisions:  # neither: on, except where a stack's frames are z slices
        options["divisions"] = bool(args.divisions)
    if args.min_contrast is not None:
        options["min_contrast"] = args.min_contrast
    if args.start_frame is not None:
        options["start_frame"] = args.start_frame
    return options


def check_batch_options(args: argparse.Namespace, options: Dict[str, Any]) -> None:
    """The options that only the command line has, checked in its words before anything is created or started
    (the rest is checked by :func:`napari_sam2.batch.batch` with the options' names)."""
    if options and not args.auto:
        raise ValueError(f"{', '.join('--' + k.replace('_', '-') for k in options)} "
                         f"{'needs' if len(options) == 1 else 'need'} --auto")
    if args.auto and args.object_window is not None:
        raise ValueError("--object-window applies to prompts; --auto finds and tracks cells on whole frames")
    # track's own checks; an option left out keeps track_cells' default, so a valid stand-in is checked for it
    check_detection_options(argparse.Namespace(
        cell_diameter=args.cell_diameter if args.cell_diameter is not None else (1.0, 1.0),
        redetect_every=args.redetect_every if args.redetect_every is not None else 1, min_contrast=args.min_contrast))
    if args.start_frame is not None and args.start_frame < 0:
        raise ValueError(f"--start-frame must be a frame number >= 0 (the stack's first is 0), got {args.start_frame}")


def run_batch(args: argparse.Namespace) -> int:
    """Run the batch command; returns the exit code."""
    from sam2_model.checkpoints import CheckpointDownloadError

    from .batch import BatchInterrupted, batch
    from .batch_cluster import Terminated, sigterm_stops

    options = tracking_options(args)
    extra: Dict[str, Any] = {} if args.zarr_above is None else {"zarr_above_gb": args.zarr_above}
    checkpoint = "random" if str(args.checkpoint).lower() == "none" else args.checkpoint
    try:
        with sigterm_stops():  # a job's time limit or scancel stops the run as Ctrl-C does
            check_batch_options(args, options)
            extra.update(axis_arguments(args), axis_names="cli")
            table = batch(args.inputs, args.out, auto=args.auto, prompts_dir=args.prompts_dir, model=args.model,
                          checkpoint=checkpoint, device=args.device, image_size=args.image_size,
                          object_window="auto" if args.object_window is None else args.object_window,
                          direction=args.direction, workers=args.workers, scheduler=args.scheduler,
                          overwrite=args.overwrite, smooth=args.smooth, contrast_limits=args.contrast_limits,
                          invert=args.invert, frames=args.frames, **extra, **options)
    except (ValueError, OSError, CheckpointDownloadError) as error:  # OSError: files, an unreachable scheduler
        print(f"napari-sam2 batch: {error}", file=sys.stderr)
        return 2
    except BatchInterrupted as interrupted:  # stacks finished before Ctrl-C are complete in --out
        print(f"napari-sam2 batch: {interrupted}", file=sys.stderr)
        return INTERRUPTED_CODES[interrupted.by]
    except KeyboardInterrupt as stop:
        by = "SIGTERM" if isinstance(stop, Terminated) else "Ctrl-C"
        print(f"napari-sam2 batch: interrupted{' by SIGTERM' * (by == 'SIGTERM')} before any stack was started; no "
              "results were written", file=sys.stderr)
        return INTERRUPTED_CODES[by]
    counts = table["status"].value_counts().to_dict()
    total, ok = len(table), counts.get("ok", 0)
    noted = int(((table["status"] == "ok") & (table["note"].fillna("").astype(str) != "")).sum())
    with_note = f" ({noted} with a note: see summary.csv)" if noted else ""
    print(f"napari-sam2 batch: {total} stack{'s' if total != 1 else ''}: {ok} ok{with_note}, "
          f"{counts.get('skipped', 0)} skipped, {counts.get('failed', 0)} failed; summary in "
          f"{Path(args.out) / 'summary.csv'}", file=sys.stderr)
    return 1 if counts.get("failed", 0) else 0
