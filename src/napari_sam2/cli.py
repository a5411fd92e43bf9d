"""Command line: ``napari-sam2 track STACK.tif --prompts prompts.csv -o labels.tif``.

``napari-sam2 track STACK.tif --auto --ctc OUT_DIR [--geff FILE]`` detects and tracks every cell (options in
:mod:`napari_sam2._cli_auto`); ``napari-sam2 evaluate RESULT_DIR GT_DIR`` prints the CTC measures.

prompts.csv has a header and one row per click, ``frame,obj_id,y,x,label``; a row that also has
``y1,x1`` is a box from (y, x) to (y1, x1). Coordinates are pixels; header names are case-insensitive
(see :mod:`napari_sam2.prompts_csv`). ``napari-sam2 batch INPUTS... --out DIR`` runs many stacks on Dask
(:mod:`napari_sam2._cli_batch`). 4D stacks: ``--axis`` is propagated, ``--channel-axis`` holds
channels (``--channel`` picks one, or ``mean``/``max``), ``--fix AXIS=INDEX`` pins any other axis. ``--frames A-B``
tracks frames A to B only (prompts in the stack's numbers; outputs numbered from 0, as ``evaluate --frames A-B`` reads).

Everything that can be checked is checked before the model is built: the prompts, the stack's axes, the
direction, and that every output can be written, is not an input and does not exist yet (``--overwrite`` replaces
it; see :mod:`napari_sam2._cli_outputs`). Nothing is created before the results are written: outputs (and their
missing folders) are written under temporary names and renamed, so a failed run leaves nothing behind; outputs
get the mode a plain open() gives (the umask).
"""

from __future__ import annotations

if __name__ == "__main__":  # python -m napari_sam2.cli: the command's entry point, which imports this module itself
    from napari_sam2 import cli_main  # so that Ctrl-C during the imports below ends it quietly (exit status 130)

    raise SystemExit(cli_main())

import argparse
import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple

# Only what parsing needs is imported here: ``--help``, an unknown option or a missing file answer in a fraction of a
# second. torch, the model's code and the readers load when a command runs (inside main()'s handlers, so Ctrl-C
# there ends it as during a run).
from . import INTERRUPTED
from ._cli_auto import (CHECKPOINT_HELP, DEVICE_HELP, MODEL_HELP, WEIGHTS_DEFAULT,
                        add_auto_arguments, add_evaluate_parser, auto_options_given, auto_outputs,
                        check_detection_options, check_diameter_fits, check_output_kinds, frames_in_stack,
                        frames_option, frames_words, in_cli_words, prepare_output, run_auto, run_evaluate,
                        write_outputs)
from ._cli_axes import add_axis_arguments, axis_arguments, stack_axes
from ._cli_batch import add_batch_parser
from ._cli_outputs import check_distinct, check_not_input, ctrl_c_restored

if TYPE_CHECKING:
    from .api import StackAxes
    from .axis_moves import AxisMove
    from .prompts_csv import read_prompts
    from .export import Calibration
    from .layout import FrameView, StackLayout

__all__ = ["main", "read_prompts"]  # read_prompts: kept here for scripts that import it from the CLI


#: names of this module imported on first use (they load the model's code, which parsing does not need):
#: read_prompts for scripts; build_model and segment, which the commands call through :func:`_lazy`
_LAZY = {"read_prompts": ("napari_sam2.prompts_csv", "read_prompts"), "build_model": ("sam2_model.build", "build_model"),
         "segment": ("napari_sam2.api", "segment")}


def __getattr__(name: str) -> Any:
    """A name of :data:`_LAZY`, imported from its module now."""
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _lazy(name: str) -> Any:
    """The value of ``name`` (of :data:`_LAZY`) for a command: one set on this module (a test's stand-in, e.g. for
    build_model) or else imported now."""
    return globals()[name] if name in globals() else __getattr__(name)

TOP_EXAMPLES = """examples:
  napari-sam2 track movie.tif --prompts clicks.csv -o labels.tif      # the objects you clicked
  napari-sam2 track movie.tif --auto --ctc res/ --table tracks.csv   # every cell, with a lineage
  napari-sam2 batch plate/*.tif --out results/ --auto --workers 2    # many stacks, on Dask
  napari-sam2 evaluate res/ gt/                                      # CTC measures of a result
  sam2-train --out runs/mine --stack movie.tif --labels masks.tif    # fine-tune (then --checkpoint runs/mine/weights.pt)

napari-sam2 COMMAND --help says more about each command."""
TRACK_EXAMPLES = """examples:
  napari-sam2 track movie.tif --prompts clicks.csv -o labels.tif
  napari-sam2 track movie.tif --prompts clicks.csv -o labels.tif --image-size auto     # small objects
  napari-sam2 track zstack.tif --axis 1 --fix 0=5 --prompts clicks.csv -o z5.tif       # (Z, T, Y, X): time at z = 5
  napari-sam2 track two_colour.tif --channel-axis 1 --channel 0 --prompts c.csv -o l.tif
  napari-sam2 track movie.tif --auto --cell-diameter 8 40 --ctc res/ --geff tracks.geff
  napari-sam2 track movie.tif --auto --frames 100-150 --ctc res/   # frames 100-150 only: evaluate --frames 100-150
  napari-sam2 track movie.tif --prompts clicks.csv -o l.tif --checkpoint runs/mine/weights.pt   # fine-tuned

clicks.csv:
  frame,obj_id,y,x,label,y1,x1
  0,1,120,85,1,,          <- a click on object 1 at row 120, column 85 of frame 0
  0,1,130,90,0,,          <- a click off it (a part to remove)
  0,2,40,60,,70,110       <- a box for object 2 from (40, 60) to (70, 110)"""


def build_parser() -> argparse.ArgumentParser:
    """The ``napari-sam2`` parser; each subcommand sets ``run`` (a function of the parsed args -> exit code)."""
    parser = argparse.ArgumentParser(
        prog="napari-sam2", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="SAM 2 for microscopy stacks from a shell: segment and track the objects you click (track "
                    "--prompts), every cell with its divisions (track --auto), many stacks at once (batch), and score a "
                    "result against Cell Tracking Challenge ground truth (evaluate). The same work is done "
                    "interactively in napari (Plugins > SAM 2 segmentation); to fine-tune a model on your own labelled stack, "
                    "see sam2-train --help.",
        epilog=TOP_EXAMPLES)
    commands = parser.add_subparsers(dest="command", required=True)
    add_track_parser(commands)
    add_evaluate_parser(commands).set_defaults(run=run_evaluate)
    add_batch_parser(commands)
    return parser


def add_track_parser(commands: "argparse._SubParsersAction") -> argparse.ArgumentParser:
    track = commands.add_parser(
        "track", help="segment and track objects through a stack", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Segment the objects of --prompts (clicks and boxes) and track them through the stack, or with "
                    "--auto find and track every cell (divisions and cells that enter included). Every input is "
                    "checked before the model is built; outputs are written together at the end (nothing is left "
                    "half-written by a failure or Ctrl-C).", epilog=TRACK_EXAMPLES)
    track.set_defaults(run=track_command)
    track.add_argument("stack", type=Path, help="a (T, Y, X) stack: .tif, .npy, zarr or a folder of frames")
    track.add_argument("--prompts", type=Path, default=None,
                       help="CSV with a header, one prompt per row: frame,obj_id,y,x,label is a click (label 1 on the "
                            "object, 0 off it); a row that also has y1,x1 is a box from (y, x) to (y1, x1) (label "
                            "empty). Not with --auto")
    track.add_argument("-o", "--output", type=Path, default=None,
                       help="labels .tif to write (folders are created); optional with --auto")
    track.add_argument("--model", default="demo", help=MODEL_HELP)
    track.add_argument("--checkpoint", default=WEIGHTS_DEFAULT, help=CHECKPOINT_HELP)
    track.add_argument("--device", default="auto", help=DEVICE_HELP)
    track.add_argument("--image-size", default=None, metavar="N|auto",
                       help="the model's input size: a multiple of 32 (e.g. 512), or auto (picked from the size of "
                            "the objects in the first prompted frame; --auto: --start-frame, or where that frame holds "
                            "too little to measure, e.g. an empty top slice of a z-stack, the fullest of a few frames "
                            "sampled through the stack); default: the model's own (demo 256, official 1024)")
    track.add_argument("--object-window", default="auto", metavar="N|auto|off",
                       help="segment and track each prompted object in a square window of N frame px around it "
                            "(small objects on large frames; with --prompts); auto (default): only where the objects of "
                            "the first prompted frame are small against it; off: every object on the whole frame")
    track.add_argument("--direction", default=None, choices=("forward", "backward", "both"),
                       help="from the first prompted frame (default both); --auto tracks one way from --start-frame: "
                            "forward (default) or backward, not both. One way with nothing to track (backward from "
                            "frame 0, forward from the last frame) is refused")
    track.add_argument("--frames", type=frames_option, default=None, metavar="A-B",
                       help="track frames A to B only (both included, the stack's numbers from 0; only they are "
                            "read): --prompts name the stack's frames, each inside A-B; --auto starts on A (or "
                            "--start-frame, a frame of A-B). The outputs hold those frames, numbered from 0 as the "
                            "Cell Tracking Challenge numbers a sequence (labels' frame 0 and --ctc's mask000.tif are "
                            "frame A): napari-sam2 evaluate --frames A-B scores them against the whole movie's "
                            "ground truth")
    track.add_argument("--overwrite", action="store_true",
                       help="replace outputs that exist (-o, --table; --ctc and --geff only over an earlier result of "
                            "their kind); without it an existing output is refused before any work")
    add_axis_arguments(track)
    track.add_argument("--contrast-limits", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                       help="grey values shown to the model as black and white (default: the stack's 0.5 and 99.8 "
                            "percentiles; 0 255 for uint8); a black background helps dim cells on noisy backgrounds")
    track.add_argument("--smooth", default="auto", metavar="SIGMA|auto|off",
                       help="blur every frame by a Gaussian of SIGMA pixels before the model sees it; off (or 0): "
                            "no blur; auto (default): chosen from the first prompted frame's grain at the clicked "
                            "objects, for the demo model's shipped weights only (grainy, dim cells: a fraction of "
                            "their width, 4 on the CTC MSC time-lapse; clean frames: none; other weights: none), "
                            "said once; with --auto, auto is off")
    track.add_argument("--invert", action="store_true",
                       help="dark objects on a bright background (brightfield, phase contrast, stained histology): "
                            "the model sees each frame's grey values inverted (the demo model knows bright objects "
                            "on dark), and --auto detects the dark cells; labels and measures keep the image's values")
    add_auto_arguments(track)
    return track


def data_range(view: FrameView, max_values: int = 1_000_000) -> Tuple[float, float, int]:
    """(min, max, frames looked at) of the grey values of a sample of ``view``'s frames ((T, Y, X[, C])): the frames
    and the regular pixel grid the contrast percentiles use, about ``max_values`` values in all (never a full pass)."""
    import numpy as np

    from sam2_model.frames_io import sample_indices

    sample = sample_indices(len(view))
    budget = max(1, max_values // max(1, len(sample)))
    low, high = np.inf, -np.inf
    for t in sample:
        frame = np.asarray(view[t])
        step = max(1, int(np.ceil(np.sqrt(frame.size / budget))))
        part = frame[::step, ::step]
        low, high = min(low, float(part.min())), max(high, float(part.max()))
    return low, high, len(sample)


def warn_contrast_outside(limits: Optional[Tuple[float, float]], view: FrameView) -> None:
    """One stderr line when --contrast-limits LOW HIGH lie wholly outside the data's range (from a sample of frames):
    the model would see every pixel as white (HIGH at or below the data's minimum) or black (LOW at or above its
    maximum)."""
    if limits is None or len(view) == 0:
        return
    low, high = limits
    data_low, data_high, count = data_range(view)
    if high > data_low and low < data_high:
        return
    shade = "white" if high <= data_low else "black"
    frames = f"{count} frame{'s' if count != 1 else ''}"
    print(f"napari-sam2: warning: --contrast-limits {low:g} {high:g} lie outside the data's range {data_low:g}.."
          f"{data_high:g} (a sample of {frames}): the model sees every pixel as {shade}; leave the option out for the "
          "stack's own 0.5 and 99.8 percentiles", file=sys.stderr)


def check_stack_path(path: Path) -> None:
    """The stack must exist (FileNotFoundError, as the reader says it; "~" is the home folder, as the reader reads
    it), unless its name holds glob characters (a pattern the reader expands, e.g. frames/t*.tif: the characters of
    ``sam2_model.frames_io.GLOB_CHARACTERS``, whose module loads torch): checked before the model's code loads."""
    if not Path(path).expanduser().exists() and not any(c in str(path) for c in "*?["):
        raise FileNotFoundError(f"frames: no such file or folder: {path}")


def check_prompts_file(path: Path) -> None:
    """--prompts must name an existing CSV file (ValueError naming the option and what it expects)."""
    if path.is_dir():
        raise ValueError(f"--prompts {path} is a folder; it expects a CSV file with the header "
                         "frame,obj_id,y,x,label[,y1,x1]")
    if not path.exists():
        raise ValueError(f"--prompts {path}: no such file; it expects a CSV file with the header "
                         "frame,obj_id,y,x,label[,y1,x1]")


def pick_image_size(value: Optional[str], frame: object, model: str,
                    cell_diameter: Optional[Tuple[float, float]] = None, frame_index: Optional[int] = None,
                    stack: Optional[Tuple[FrameView, Dict[str, Any]]] = None, through_z: bool = False) -> Optional[int]:
    """``--image-size``: None (the model's own), a multiple of 32, or "auto" (printed with what it was picked from).
    With prompts: measured on ``frame`` (frame ``frame_index``, the first prompted frame). With --auto (``stack``:
    the frames and their session options, tracked from ``frame_index``): by
    :func:`.image_size.tracking_size_choice`, the rule of ``batch --auto`` and ``track_cells`` too: from
    ``cell_diameter`` ((MIN, MAX) px) where the user gave --cell-diameter, else measured on the start frame, or
    where it holds too little to measure (an empty slice at the top of a z-stack) a fuller frame sampled through
    them; the printed line says which."""
    from .image_size import AUTO, auto_image_size, check_image_size, tracking_size_choice

    checked = check_image_size(value, "--image-size")
    if checked != AUTO:
        return checked  # type: ignore[return-value]
    if stack is not None:
        choice = tracking_size_choice(stack[0], model, frame_index or 0, stack[1], through_z, cell_diameter)
    else:
        choice = auto_image_size(frame, model, frame_index)
    print(f"--image-size auto: {choice.describe()}")
    return choice.image_size


def pick_smooth(value: object, frame: object, points: object, model: str, checkpoint: object) -> float:
    """``--smooth`` as px: a number as given; "auto" chosen from ``frame`` (the first prompted frame, (H, W[, C])) at
    ``points`` ((N, 2) (x, y), one per object) for ``model`` with ``checkpoint`` (the demo's shipped weights only:
    :func:`sam2_model.auto_smooth.smooth_choice`), a blur it gives printed once."""
    from sam2_model.auto_smooth import smooth_choice

    choice = smooth_choice(value, frame, points, "--smooth", model=model, checkpoint=checkpoint)
    if choice.describe():
        print(f"--smooth auto: {choice.describe()}")
    return choice.sigma


def pick_object_window(value: Optional[str], frame: object, model: str, image_size: Optional[int],
                       frame_index: int = 0, checkpoint: Optional[str] = None,
                       prompts: Optional[Any] = None) -> Optional[int]:
    """``--object-window``: a side in frame px, None (off), or "auto" (printed with what it gave and what it measured),
    measured on ``frame`` (frame ``frame_index``, the first prompted frame) for the input size the model runs at:
    ``image_size``, else the size fine-tuned weights (``checkpoint``) were trained at, else the preset's. prompts: the
    objects prompted on that frame (:class:`~napari_sam2.image_size.PromptSpots`), whose width is then measured
    rather than the frame's every object; None: the frame's."""
    import math

    from sam2_model.build import trained_input_size
    from sam2_model.config import get_config

    from .image_size import AUTO, check_object_window, object_window_choice

    size = image_size if image_size is not None else (trained_input_size(model, checkpoint)
                                                      or get_config(model).image_size)
    choice = object_window_choice(value, frame, model, size, "--object-window", prompts)
    if check_object_window(value, "--object-window") == AUTO:
        words = choice.measure_words()
        if choice.side:
            print(f"--object-window auto: each object in a {choice.side} px window around it ({words} on frame "
                  f"{frame_index})")
        elif math.isnan(choice.object_diameter) and choice.measured:
            print(f"--object-window auto: off (no objects found to measure on frame {frame_index})")
        else:
            said = f": {words}" if words else ""
            print(f"--object-window auto: off (the objects of frame {frame_index} are not small against it){said}")
    return choice.side


@contextlib.contextmanager
def opened_stack(path: Path) -> Iterator[Tuple[Any, bool]]:
    """(stack, one image) of ``path`` (:func:`sam2_model.frames_io.open_stack_or_image`, read lazily) for the length of
    a ``with`` block: its file (a TIFF's) is closed when the block ends, also on an error or Ctrl-C."""
    from sam2_model.frames_io import close_stack, open_stack_or_image

    stack, one_image = open_stack_or_image(path)
    try:
        yield stack, one_image
    finally:
        close_stack(stack)


#: seconds a labels write runs before ``track`` shows its bar (a short write shows none)
WRITE_BAR_DELAY = 2.0


class _LazyBar:
    """A tqdm bar created at the first progress report (so errors before propagation print no bar): ``desc`` and
    ``unit`` name the work; ``delay``: seconds before it shows (tqdm's ``delay``; 0: at once)."""

    def __init__(self, desc: str = "propagating", unit: str = "frame", delay: float = 0.0) -> None:
        self.bar = None
        self.desc, self.unit, self.delay = desc, unit, delay

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=self.unit, desc=self.desc, delay=self.delay)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def labels_metadata(path: Path, stack: Any, layout: StackLayout, keep: Optional[Sequence[int]] = None,
                    moved: Optional[AxisMove] = None) -> Tuple[Optional[str], Optional[Calibration]]:
    """(axis letters, calibration) of the labels ``track`` writes from the stack opened from ``path`` (its
    ``axes`` letters where the reader gives them) and read under ``layout``: the stack's letters less its channel
    axis (or only the axes in ``keep``: (frame, row, col) for --auto's (T, Y, X) labels; :func:`.export.labels_axes`)
    and the pixel size and frame step its file records (:func:`.file_calibration.stack_calibration`; None where it
    records none: the labels are written in pixels and frames, as before). --prompts and --auto both ask here.
    ``moved``: the stack is a view with its rows and columns moved last (:func:`stack_read_as`); its file's axes are
    those the move came from."""
    from .export import labels_axes
    from .file_calibration import frames_through_z, read_calibration, stack_calibration, stack_letters

    letters = getattr(stack, "axes", None) if moved is not None else stack_letters(path, stack)  # an OME-Zarr's too
    axes = labels_axes(letters, len(stack.shape), layout.channel_axis, keep, layout.frame_axis)
    if moved is None:
        return axes, stack_calibration(path, letters, layout)
    frame = None if layout.frame_axis is None else moved.order[layout.frame_axis]
    spatial = tuple(moved.order[a] for a in layout.spatial_axes)
    through_z = frames_through_z(letters, layout.frame_axis)
    return axes, read_calibration(path, frame, spatial, frames_through_z=through_z)


def outside_range(frame: float, chosen: Optional[range]) -> Optional[str]:
    """Why a prompt on the stack's ``frame`` does not fit ``--frames`` (``chosen``: range(A, B + 1); None: every
    frame fits), or None."""
    if chosen is None or frame != int(frame) or int(frame) in chosen:
        return None
    return (f"frame {int(frame)} is outside {frames_words(chosen)} (frames are the stack's numbers): prompt a frame "
            "of the range, or widen it")


def stack_read_as(args: argparse.Namespace, stack: Any) -> Tuple[Any, Dict[str, Any], Optional[AxisMove]]:
    """The stack, its axis options and how it was moved (:func:`.axis_moves.read_rows_columns_last`): a stack whose frames
    lie after its rows and columns (a TIFF of axes YXT, or --axis naming the last axis) is read as a lazy view with
    them last, said in one line; the labels are then written frames first. A stack of booleans is refused here."""
    import numpy as np

    from .api import CLI_NAMES
    from .axis_moves import read_rows_columns_last

    if np.dtype(stack.dtype).kind == "b":
        raise ValueError(f"{args.stack} holds booleans (a mask, e.g. a thresholded image): SAM 2 segments grey "
                         "values; give the image the mask was made from, or save the mask as 8-bit (0 and 255)")
    view, options, moved = read_rows_columns_last(stack, axis_arguments(args), CLI_NAMES)
    if moved is not None:
        print(f"{moved.describe(stack.shape)}; the labels are written in that order")
    return view, options, moved


def warn_colour_guess(stack: Any, axes: StackAxes, rgb: Optional[bool], one_image: bool,
                      source: Any = None) -> Optional[bool]:
    """Say once on stderr, in the command's words (``napari-sam2: warning: ...``, :func:`napari_sam2.api.colour_guess`
    with :data:`~napari_sam2.api.CLI_NAMES`), where a last axis of 3 or 4 entries of data that are not uint8 is read
    as colour without --rgb or a channel choice; returns the ``rgb`` to pass on: True where it was said (the reading
    stays colour, and segment() does not say it again in Python's words), else ``rgb`` as given.

    ``stack``: the stack as read (:func:`stack_read_as`), ``axes`` its :func:`stack_axes`; ``one_image``: a file of one
    image, read as a stack of one frame (1, Y, X, C): the message names the file's own shape (Y, X, C); ``source``:
    the path given, whose TIFF tags may say it is colour (then nothing is said)."""
    from .api import CLI_NAMES, colour_guess

    shape = tuple(int(n) for n in stack.shape)
    message = colour_guess(shape, stack.dtype, rgb, axes, CLI_NAMES, source=source)
    if message is None:
        return rgb
    if one_image and len(shape) > 1 and shape[0] == 1:
        message = message.replace(str(shape), str(shape[1:]), 1)  # the file's shape, not the one-frame stack's
    print(f"napari-sam2: warning: {message}", file=sys.stderr)
    return True


def track_command(args: argparse.Namespace) -> int:
    """``napari-sam2 track``: check everything cheap first (prompts, axes, output), then segment and write."""
    check_stack_path(args.stack)  # before the model's code loads (seconds): a mistyped name answers at once
    if args.prompts is not None and not args.auto:
        check_prompts_file(args.prompts)
    from sam2_model.auto_smooth import check_smooth_option
    from sam2_model.frames import check_contrast_limits

    from .image_size import check_image_size, check_object_window

    check_image_size(args.image_size, "--image-size")
    check_object_window(args.object_window, "--object-window")
    limits = check_contrast_limits(args.contrast_limits, "--contrast-limits")
    args.smooth = check_smooth_option(args.smooth, "--smooth")  # "auto" or px
    if args.auto:
        if args.smooth == "auto":  # measured for prompted objects only: --auto tracks unsmoothed unless told px
            args.smooth = 0.0
        if args.object_window != "auto":  # --auto sizes its windows from --cell-diameter
            raise ValueError("--object-window applies to --prompts: --auto detects and tracks cells in windows "
                             "sized from --cell-diameter where they are small against the frame")
        return auto_command(args, limits)
    ignored = auto_options_given(args)
    if ignored:
        raise ValueError(f"{', '.join(ignored)}: options of --auto only; with --prompts, track segments the "
                         "prompted objects from their first prompted frame (--direction says which way)")
    auto_outputs = [flag for flag in ("ctc", "geff", "table") if getattr(args, flag) is not None]
    if auto_outputs:
        named = ", ".join(f"--{flag}" for flag in auto_outputs)
        raise ValueError(f"{named}: outputs of --auto only; with --prompts, track writes -o labels.tif (for a "
                         "table per object and frame, with object scores and check frames, run napari-sam2 batch "
                         "STACK -o OUT_DIR with the prompts beside the stack: OUT_DIR/<stack>/objects.csv)")
    if args.prompts is None or args.output is None:
        raise ValueError("track needs --prompts CSV and -o labels.tif (or --auto with --ctc OUT_DIR, --geff FILE, "
                         "--table CSV or -o labels.tif to track every cell)")
    check_not_input("-o/--output", Path(args.output).expanduser(),
                    [("the stack", args.stack), ("--prompts", args.prompts)])
    output = prepare_output(args.output, args.overwrite)  # before any work; nothing is created until the end
    from .api import FrameRange, check_way_in_range, frame_seen, prompted_frame
    from .axis_moves import numbered_as_read
    from .export import labels_ids, save_labels_tiff
    from .image_size import OFF, PromptSpots
    from .layout import FrameView
    from .prompts_csv import box_problem, check_napari_frame_axis, checked_table_prompts, click_problem, \
        read_prompt_lines
    from .track_export import calibration_from_frame

    clicks, boxes, click_lines, box_lines = read_prompt_lines(args.prompts)
    with opened_stack(args.stack) as (stack, one_image):  # read lazily, frame by frame (one image: a frame)
        stack_shape = tuple(stack.shape)
        stack, axis_options, moved = stack_read_as(args, stack)
        with numbered_as_read(moved, stack_shape):
            axes = stack_axes(args, stack, axis_options)
        layout = axes.layout
        # napari's CSV of a (T, Y, X) layer reads axis-0 as the frame: refused where the stored frames lie elsewhere
        check_napari_frame_axis(args.prompts, layout.frame_axis if moved is None or layout.frame_axis is None
                                else moved.order[layout.frame_axis],
                                f"--axis {args.axis}" if args.axis else "as the TIFF's axes say")
        frames = layout.num_frames(stack.shape)  # a 2-D image (frame_axis None): one frame, 0, as segment() rules
        chosen = frames_in_stack(args.frames, layout, stack.shape)  # --frames A-B: range(A, B + 1); None: all
        height, width = (int(stack.shape[a]) for a in layout.spatial_axes)
        for (frame, y, x, _, _), line in zip(clicks, click_lines):
            problem = click_problem(frame, y, x, frames, height, width) or outside_range(frame, chosen)
            if problem:
                raise ValueError(f"{args.prompts}, line {line}: {problem}")
        for box, line in zip(boxes, box_lines):
            problem = box_problem(box[0], frames, box[1:5], height, width) or outside_range(box[0], chosen)
            if problem:
                raise ValueError(f"{args.prompts}, line {line}: {problem}")
        direction = args.direction or "both"
        # the rule batch and segment() follow; with --frames A-B, within A-B (as segment(frames=(A, B)))
        checked_table_prompts(args.prompts, clicks, boxes, frames if chosen is None else chosen.stop, direction)
        index = prompted_frame(clicks, boxes) if layout.frame_axis is not None else 0  # "auto" measures it, not frame 0
        if chosen is not None:
            with in_cli_words(chosen):
                check_way_in_range(index, chosen, direction)
        warn_contrast_outside(limits, FrameView(stack if chosen is None else FrameRange(stack, layout.frame_axis,
                                                                                        chosen), layout))
        measured = frame_seen(stack, axes, index)  # the channel segmented
        image_size = pick_image_size(args.image_size, measured, args.model, frame_index=index)
        spots = PromptSpots.of_rows(clicks, boxes, index)  # the prompted objects: their width, their grain
        window = pick_object_window(args.object_window, measured, args.model, image_size, index, args.checkpoint,
                                    spots)
        args.smooth = pick_smooth(args.smooth, measured, spots.points, args.model, args.checkpoint)
        axis_options["rgb"] = warn_colour_guess(stack, axes, axis_options["rgb"], one_image, source=args.stack)
        bar = _LazyBar() if frames > 1 else None  # one image: nothing to propagate, no bar
        try:
            segment = _lazy("segment")
            with in_cli_words(chosen):
                labels = segment(stack, clicks, boxes, model=args.model, checkpoint=args.checkpoint,
                                 device=args.device, image_size=image_size, direction=direction, progress=bar,
                                 contrast_limits=limits, smooth=args.smooth, object_window=window or OFF,
                                 invert=bool(getattr(args, "invert", False)),
                                 frames=None if chosen is None else (chosen.start, chosen.stop - 1), **axis_options)
        finally:
            if bar is not None:
                bar.close()
        letters, calibration = labels_metadata(args.stack, stack, layout, moved=moved)  # less channels, as --auto
        calibration = calibration_from_frame(calibration, 0 if chosen is None else chosen.start)  # frame 0: A's
        if one_image:
            labels, letters = labels[0], None  # one image in, one label image out (YX)
        writing = _LazyBar("writing labels", "plane", WRITE_BAR_DELAY)  # plane by plane; a bar where it takes long
        try:
            write_outputs([(output, lambda to: save_labels_tiff(labels, to, letters, calibration, writing))])
        finally:  # folders too, only now
            writing.close()
        found = labels_ids(labels)  # a plane at a time (no sorted copy of the stack)
        of = "" if chosen is None else f" of frames {chosen.start}-{chosen.stop - 1}, numbered from 0"
        print(f"wrote {output} ({labels.shape} labels{of}, {len(found)} object{'s' * (len(found) != 1)})")
        missing = sorted({int(row[-1]) for row in list(clicks) + list(boxes)} - found)
        if missing:  # e.g. two objects clicked on one cell: the other one's mask won every pixel
            many = len(missing) > 1
            print(f"napari-sam2: warning: object{'s' if many else ''} {', '.join(map(str, missing))} of the prompts "
                  f"{'have' if many else 'has'} no pixel in the labels (the model found nothing there, or another "
                  "object's mask covers it everywhere)", file=sys.stderr)
        return 0


def auto_command(args: argparse.Namespace, limits: Optional[Tuple[float, float]] = None) -> int:
    """``napari-sam2 track --auto``: checks first (no prompts, axes, start frame, outputs), then track every cell.

    The stack's axes are read as for prompts (``--axis``, ``--channel-axis``/``--channel``, ``--fix``, ``--rgb``);
    the outputs hold (T, Y, X) frames along the chosen axis; ``limits`` are the checked --contrast-limits.
    """
    from .directions import auto_direction

    if args.prompts is not None:
        raise ValueError("--prompts and --auto exclude each other: --auto finds the cells itself")
    args.direction = auto_direction(args.direction, "cli")  # the rule batch --auto follows too
    if not any((args.ctc, args.geff, args.table, args.output)):
        raise ValueError("--auto needs at least one output: --ctc OUT_DIR, --geff FILE, --table CSV or -o labels.tif")
    outputs = auto_outputs(args)
    check_distinct(outputs)
    for option, path in outputs:
        check_not_input(option, path, [("the stack", args.stack)])
    check_output_kinds(args)  # every output (-o too), creating nothing
    check_detection_options(args)
    from sam2_model.frames import check_finite

    from .api import FrameRange, check_way_in_range, frames_are_z
    from .axis_moves import numbered_as_read
    from .directions import check_one_way
    from .image_size import read_as_seen
    from .layout import FrameView
    from .track_all import frame_source
    from .track_export import calibration_from_frame

    with opened_stack(args.stack) as (stack, one_image):  # one image: a stack of one frame, its outputs too
        stack_shape = tuple(stack.shape)
        stack, axis_options, moved = stack_read_as(args, stack)
        with numbered_as_read(moved, stack_shape):
            axes = stack_axes(args, stack, axis_options)
        warn_colour_guess(stack, axes, axis_options["rgb"], one_image, source=args.stack)
        view = FrameView(stack, axes.layout)
        chosen = frames_in_stack(args.frames, axes.layout, stack.shape)  # --frames A-B: range(A, B + 1); None: all
        first = 0 if chosen is None else chosen.start  # the stack's number of the frames tracked' frame 0
        if args.start_frame is None:  # not given: the first frame tracked
            args.start_frame = first
        if not 0 <= args.start_frame < len(view):
            frame_axis = axes.layout.frame_axis if moved is None else moved.order[axes.layout.frame_axis]
            raise ValueError(f"--start-frame must be a frame of the stack, 0..{len(view) - 1} along axis "
                             f"{frame_axis}, got {args.start_frame}")
        if chosen is None:
            check_one_way(args.start_frame, len(view), args.direction, f"--start-frame {args.start_frame}")
        else:  # the stack's numbers in messages; then only the range is read, numbered from A
            if args.start_frame not in chosen:
                raise ValueError(f"--start-frame {args.start_frame} is outside {frames_words(chosen)}: start on a "
                                 f"frame of the range (default: its first, {first})")
            with in_cli_words(chosen):
                check_way_in_range(args.start_frame, chosen, args.direction, "--start-frame")
            stack = FrameRange(stack, axes.layout.frame_axis, chosen)
            view = FrameView(stack, axes.layout)
        check_diameter_fits(args.cell_diameter, args.seeding, view.shape[1:3])  # the shape only: no frame read
        warn_contrast_outside(limits, view)
        start = read_as_seen(view, args.start_frame - first, axes.session_options)  # the channel tracked, alone read
        check_finite(start, f"frames: frame {args.start_frame}")  # before "auto" measures it
        keep = (axes.layout.frame_axis, *axes.layout.spatial_axes)  # (T, Y, X) along the axis
        letters, calibration = labels_metadata(args.stack, stack, axes.layout, keep=keep, moved=moved)
        through_z = frames_are_z(stack, axes.layout, calibration, args.stack)
        calibration = calibration_from_frame(calibration, first)  # the outputs' frame 0 is the stack's frame A
        given = None if args.cell_diameter is None else tuple(args.cell_diameter)  # the user said how large
        image_size = pick_image_size(args.image_size, start, args.model, given, args.start_frame - first,
                                     (view, axes.session_options), through_z is not None)
        args.start_frame -= first  # run_auto tracks the frames read, numbered from 0
        build_model = _lazy("build_model")
        model = build_model(args.model, checkpoint=args.checkpoint, device=args.device, image_size=image_size)
        options = dict(axes.session_options)
        if limits is not None:
            options["contrast_limits"] = limits
        if args.smooth:
            options["smooth"] = args.smooth
        if getattr(args, "invert", False):
            options["invert"] = True
        frames = frame_source(view, model, options)
        frames.first_frame = first  # the sessions' warnings name the stack's frames
        try:
            return run_auto(args, frames, model, letters, calibration, through_z, first)
        finally:
            frames.close()


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``napari-sam2`` on ``argv`` (None: the command line); returns the exit status (2: a bad input, 130:
    interrupted). The command's entry point is :func:`napari_sam2.cli_main`, which also covers the start-up imports."""
    args = build_parser().parse_args(argv)
    # once track has committed its outputs Ctrl-C is ignored to the end (write_outputs): its last line says what was
    # written; given back afterwards to a caller in Python (argv given), not in the command's own process
    with ctrl_c_restored(restore=argv is not None):
        try:
            return args.run(args)
        except (ValueError, OSError, RuntimeError) as error:  # OSError: missing files, a full disk
            print(f"napari-sam2: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # batch reports its own interruptions (what is finished); track writes at the end
            print(INTERRUPTED, file=sys.stderr)
            return 130
