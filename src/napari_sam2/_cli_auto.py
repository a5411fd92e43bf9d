"""Command-line pieces for automatic tracking and CTC evaluation (wired into ``cli.py`` by its owner).

    napari-sam2 track STACK.tif --auto --ctc OUT_DIR [--geff tracks.geff] [--table tracks.csv] [-o labels.tif]
    napari-sam2 evaluate RESULT_DIR GT_DIR
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple

from ._cli_outputs import ignore_ctrl_c_from_now, prepare_file, prepare_folder

if TYPE_CHECKING:  # the model's code (torch) loads when a command runs, not while the command line is parsed
    from .export import Calibration
    from .track_export import Write

LABELS_SUFFIXES = (".tif", ".tiff")  # -o/--output

# The model options' help, one text each for track and batch (batch adds what differs on a cluster)
MODEL_HELP = "demo (embedded, the default) or an official preset"
CHECKPOINT_HELP = ("embedded (the demo's shipped weights), download (official presets: cached or downloaded; demo: "
                   "embedded), random (or none: testing only), or a .pt file")
DEVICE_HELP = "where the model runs: auto (default: CUDA, then Apple MPS, then CPU), cpu, cuda, cuda:N or mps"

DEFAULT_CELL_DIAMETER = (8.0, 40.0)  # px: --cell-diameter's default (the detector's)
# The model's own values, repeated so that parsing needs no torch (tests/test_cli_startup.py checks they agree):
SEEDINGS = ("blobs", "grid", "grid+blobs")  # sam2_model.tracking.SEEDINGS
MIN_CONTRAST = 0.7  # sam2_model.tracking.MIN_CONTRAST
WEIGHTS_DEFAULT = "download"  # sam2_model.build.Weights.DOWNLOAD.value: --checkpoint's default
EVALUATE_ORDER = ("Valid", "SEG", "DET", "TRA", "LNK", "CT", "TF", "CCA", "BC(3)", "division_recall", "gt_divisions")


def add_auto_arguments(track_parser: argparse.ArgumentParser) -> None:
    """Options of ``track --auto`` (detect and track every cell, no prompts needed)."""
    group = track_parser.add_argument_group("automatic tracking (--auto)")
    group.add_argument("--auto", action="store_true", help="detect and track every cell (no --prompts needed)")
    group.add_argument("--seeding", default="blobs", choices=SEEDINGS,
                       help="point prompts on detected blobs (default, small cells), SAM 2's grid, or both")
    group.add_argument("--cell-diameter", type=float, nargs=2, default=None, metavar=("MIN", "MAX"),
                       help="range of cell diameters in pixels (default 8 40); given, it also picks --image-size "
                            "auto (else measured on the frames)")
    group.add_argument("--redetect-every", type=int, default=5, help="look for new cells every K frames (default 5)")
    divisions = group.add_mutually_exclusive_group()
    divisions.add_argument("--no-divisions", action="store_true",
                           help="do not split tracks at divisions (the default where the frames are z slices)")
    divisions.add_argument("--divisions", action="store_true",
                           help="split tracks at divisions even where the frames are z slices (a TIFF's axes or an "
                                "OME-Zarr's units say so; there the default is off: cells do not divide along z)")
    group.add_argument("--min-contrast", type=float, default=MIN_CONTRAST, metavar="C",
                       help="drop detections that stand out less than C from the pixels around them (|mean "
                            "difference| / their spread; background patches score near 0, cells mostly 0.6-4; "
                            f"default {MIN_CONTRAST:g}; 0: off)")
    group.add_argument("--start-frame", type=int, default=None,
                       help="detect the cells on this frame and track from it (default 0; with --frames A-B, A: a "
                            "frame of the range, the stack's numbers); with --direction backward towards frame 0 (A), "
                            "otherwise towards the last frame (B)")
    group.add_argument("--ctc", type=Path, default=None, metavar="OUT_DIR",
                       help="write Cell Tracking Challenge files (mask%%03d.tif + res_track.txt) to this folder")
    group.add_argument("--geff", type=Path, default=None, metavar="FILE", help="write the lineage graph as GEFF")
    group.add_argument("--table", type=Path, default=None, metavar="CSV",
                       help="write one row per track (id, begin, end, parent, end reason)")


#: the options of --auto that steer detection and tracking, with their defaults (outputs are checked apart)
AUTO_ONLY = (("--seeding", "seeding", "blobs"), ("--cell-diameter", "cell_diameter", DEFAULT_CELL_DIAMETER),
             ("--redetect-every", "redetect_every", 5), ("--no-divisions", "no_divisions", False),
             ("--divisions", "divisions", False),
             ("--min-contrast", "min_contrast", MIN_CONTRAST), ("--start-frame", "start_frame", 0))


def auto_options_given(args: argparse.Namespace) -> List[str]:
    """The --auto options given other than their defaults (for a prompted run, which would ignore them)."""
    return [flag for flag, name, default in AUTO_ONLY
            if getattr(args, name, default) is not None and _differs(getattr(args, name, default), default)]


def _differs(value: object, default: object) -> bool:
    if isinstance(default, tuple):
        return tuple(float(v) for v in value) != default  # type: ignore[union-attr]
    return value != default


def auto_outputs(args: argparse.Namespace) -> List[Tuple[str, Path]]:
    """(option, path) of every output named: --ctc, --geff, --table, -o/--output."""
    named = [("--ctc", args.ctc), ("--geff", args.geff), ("--table", args.table),
             ("-o/--output", getattr(args, "output", None))]
    return [(option, Path(path).expanduser()) for option, path in named if path is not None]


def check_detection_options(args: argparse.Namespace) -> None:
    """--cell-diameter, --redetect-every and --min-contrast, checked in the command's words before anything is read
    (a namespace without ``min_contrast``, or with None, leaves it unchecked; one without ``seeding``, or with None,
    leaves out the blob search's own rule, MIN >= 2). Whether a cell of the range fits the frames needs their size:
    :func:`check_diameter_fits`, once the stack's shape is known."""
    low, high = DEFAULT_CELL_DIAMETER if args.cell_diameter is None else args.cell_diameter  # None: not given
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
        raise ValueError(f"--cell-diameter MIN MAX: the smallest and largest cell diameter in pixels, 0 < MIN <= MAX; "
                         f"got {low:g} {high:g}")
    seeding = getattr(args, "seeding", None)
    if seeding is not None:  # refused by the blob search itself
        check_blob_minimum(low, high, seeding)
    if args.redetect_every < 1:
        raise ValueError(f"--redetect-every: look for new cells every K frames, K >= 1; got {args.redetect_every}")
    contrast = getattr(args, "min_contrast", None)
    if contrast is not None and not (math.isfinite(contrast) and contrast >= 0):
        raise ValueError(f"--min-contrast: how much a detection must stand out from the pixels around it, a number "
                         f">= 0 (0: off); got {contrast:g}")


def __getattr__(name: str) -> Any:
    """``MIN_BLOB_DIAMETER``: :data:`sam2_model.seeding.MIN_BLOB_DIAMETER`, read when asked for (importing
    ``sam2_model.seeding`` loads NumPy and SciPy, which parsing the command line does not need)."""
    if name == "MIN_BLOB_DIAMETER":
        from sam2_model.seeding import MIN_BLOB_DIAMETER

        return MIN_BLOB_DIAMETER
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_blob_minimum(low: float, high: float, seeding: str) -> None:
    """The blob search's own rule for ``--cell-diameter MIN MAX``, MIN >=
    :data:`sam2_model.seeding.MIN_BLOB_DIAMETER`, in the command's words (``track --auto``, and ``batch --auto`` through
    :func:`.batch_inputs.check_cell_diameter_option`): a ValueError where ``seeding`` ("blobs", "grid", "grid+blobs")
    uses the blob search and MIN is smaller."""
    if "blobs" not in seeding:
        return
    from sam2_model.seeding import MIN_BLOB_DIAMETER

    if low < MIN_BLOB_DIAMETER:
        raise ValueError(f"--cell-diameter MIN MAX: --seeding {seeding} looks for blobs of at least "
                         f"{MIN_BLOB_DIAMETER:g} px across, {MIN_BLOB_DIAMETER:g} <= MIN <= MAX; got {low:g} {high:g} "
                         "(--seeding grid takes smaller cells)")


def check_diameter_fits(cell_diameter: Optional[Sequence[float]], seeding: str, frame_shape: Sequence[int]) -> None:
    """The cell diameter range (None: the default, :data:`DEFAULT_CELL_DIAMETER`) checked against frames of
    ``frame_shape`` (H, W) before the model is built or a frame read (``track --auto`` and each stack of ``batch
    --auto``): a ValueError in the words the detector would refuse it with on the first frame
    (:func:`sam2_model.seeding.diameter_fit_problem`: no cell of the range fits across the frame's short side).
    Only where ``seeding`` uses the blob search ("blobs", "grid+blobs"): grid seeding takes any range."""
    if "blobs" not in seeding:
        return
    from sam2_model.seeding import diameter_fit_problem

    low, high = DEFAULT_CELL_DIAMETER if cell_diameter is None else cell_diameter
    problem = diameter_fit_problem(float(low), float(high), tuple(frame_shape)[:2])
    if problem is not None:
        raise ValueError(problem)


def check_output_kinds(args: argparse.Namespace) -> None:
    """Before anything is read or created: --ctc a new or empty folder, --geff a new name, --table and -o/--output
    files (never folders); an existing output only with --overwrite (and --ctc/--geff only over an earlier result of
    their kind); no other output inside the --ctc folder (it is written whole, with the challenge's files only).
    Nothing is created; the paths in ``args`` become absolute."""
    from .track_export import check_replaceable

    overwrite = bool(getattr(args, "overwrite", False))
    if args.ctc is not None:
        ctc = Path(args.ctc).expanduser().absolute()
        others = (("--geff", args.geff), ("--table", args.table), ("-o/--output", getattr(args, "output", None)))
        for option, path in others:
            if path is not None and ctc in Path(path).expanduser().absolute().parents:
                raise ValueError(f"{option} {path} lies inside --ctc {args.ctc}, which is written whole and holds the "
                                 "challenge's files only (mask%03d.tif, res_track.txt): choose a path outside it, "
                                 f"e.g. beside it in {ctc.parent}")
        args.ctc = prepare_folder("--ctc", args.ctc, overwrite=overwrite, what="an earlier CTC result",
                                  replaceable=lambda path: check_replaceable("ctc", path))
    if args.geff is not None:
        args.geff = prepare_folder("--geff", args.geff, must_be_new=True, overwrite=overwrite,
                                   what="an earlier GEFF", replaceable=lambda path: check_replaceable("geff", path))
    if args.table is not None:
        args.table = prepare_file("--table", args.table, kind="tracks table", example="tracks.csv",
                                  overwrite=overwrite)
    if getattr(args, "output", None) is not None:
        args.output = prepare_output(args.output, overwrite)


def prepare_output(path: Path, overwrite: bool = False) -> Path:
    """Check -o/--output (``track --prompts`` and ``track --auto`` alike) before any work: a .tif/.tiff name that
    could be created (missing folders are made only when the labels are written), not an existing file unless
    ``overwrite`` (--overwrite). Creates nothing; returns the absolute path (ValueError naming -o/--output)."""
    return prepare_file("-o/--output", path, LABELS_SUFFIXES, kind="labels file", example="labels.tif",
                        overwrite=overwrite)


def write_outputs(writes: Sequence[Write]) -> None:
    """Write every output, all or nothing: each ``write(staging)`` goes to a hidden name beside its final path,
    then all are renamed into place together; a failure or Ctrl-C leaves none of them (and no staging files, and
    none of the missing folders made for them). From the renaming on, Ctrl-C is ignored
    (:func:`~napari_sam2._cli_outputs.ignore_ctrl_c_from_now`): what was written is then said, not cut short."""
    from sam2_model.atomic_files import publish_together, remove, staging_path

    made: List[Path] = []  # folders created here, outermost first
    staged: List[Tuple[Path, Path]] = []
    try:
        for final, write in writes:
            made += [folder for folder in reversed(final.parents) if not folder.exists() and folder not in made]
            final.parent.mkdir(parents=True, exist_ok=True)
            staged.append((staging_path(final), final))
            write(staged[-1][0])
        ignore_ctrl_c_from_now()  # from the commit on, the command ends with the line that says what was written
        publish_together(staged)
    except BaseException:
        for staging, _ in staged:
            remove(staging)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
        raise


def run_auto(args: argparse.Namespace, stack: Any, model: Any, labels_axes: Optional[str] = None,
             calibration: Optional[Calibration] = None, through_z: Optional[str] = None, first_frame: int = 0) -> int:
    """Track every cell of ``stack`` ((T, H, W[, C]) array-like or FrameSource) and write the requested outputs.

    From ``args.start_frame`` (default 0), backwards when ``args.direction`` is "backward". Every output holds the
    same CTC-consistent result (:func:`napari_sam2.track_export.write_auto_outputs`, the writer batch uses too),
    written all or nothing (:func:`write_outputs`). labels_axes: the -o labels' axis letters (e.g. "TYX", "ZYX"),
    recorded in the TIFF; calibration: the stack's pixel size and frame interval, recorded in the GEFF, the
    labels TIFF and the tracks table. through_z: what says the frames are a volume's z slices (None: time): there
    divisions are off unless --divisions asks for them (:func:`napari_sam2.api.auto_divisions`; one line says so).
    first_frame: the stack's number of frame 0 of ``stack`` (``track --frames A-B``: A; ``args.start_frame`` counts
    from frame 0 of ``stack``): the progress line and the summary name the stack's frames; the outputs are numbered
    from 0."""
    from tqdm import tqdm

    from sam2_model.tracking import track_cells

    from .api import auto_divisions
    from .console_tracking import note_in_movie
    from .track_export import AutoOutputs, write_auto_outputs

    output = getattr(args, "output", None)
    if not any((args.ctc, args.geff, args.table, output)):
        print("napari-sam2: --auto needs at least one output: --ctc OUT_DIR, --geff FILE, --table CSV or -o FILE",
              file=sys.stderr)
        return 2
    asked = True if getattr(args, "divisions", False) else False if getattr(args, "no_divisions", False) else None
    divisions, said = auto_divisions(asked, through_z, "--divisions")
    if said:
        print(said)
    backward = getattr(args, "direction", "forward") == "backward"
    args.start_frame = args.start_frame or 0  # None: not given
    to_track = args.start_frame + 1 if backward else len(stack) - args.start_frame  # the bar's length from the start
    bar = tqdm(total=to_track, unit="frame", desc="tracking cells")

    shown = [0.0]  # when the bar's words on the frame in progress were last redrawn

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.set_postfix_str("", refresh=False)
        bar.update(done - bar.n)

    def working(step: Any) -> None:  # a frame can take minutes (thousands of candidate cells): say where it is
        now = time.monotonic()
        if now - shown[0] >= 0.5 or step.done == 0:
            shown[0] = now
            bar.set_postfix_str(f"frame {first_frame + step.frame}: {step.stage} {step.done}/{step.total}")

    options = dict(start_frame=args.start_frame, reverse=backward, seeding=args.seeding,
                   cell_diameter=tuple(args.cell_diameter or DEFAULT_CELL_DIAMETER),
                   redetect_every=args.redetect_every, divisions=divisions, min_contrast=args.min_contrast,
                   invert=bool(getattr(stack, "invert", False)))
    outputs = AutoOutputs(labels=_path(output), tracks=_path(args.table), ctc=_path(args.ctc), geff=_path(args.geff))
    try:
        try:
            result = track_cells(model, stack, progress=progress, on_work=working, **options)
        finally:
            bar.close()
        labels, lineage = write_auto_outputs(result.labels, result.lineage, outputs, write_all=write_outputs,
                                             calibration=calibration, labels_axes=labels_axes)
    except KeyboardInterrupt as stop:
        partial = getattr(stop, "result", None)
        if partial is None or not partial.frames_tracked:
            raise  # nothing finished: the command's "interrupted; nothing was written"
        return _write_interrupted(partial, len(stack), backward, outputs, calibration, labels_axes, first_frame)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"napari-sam2: {error}", file=sys.stderr)
        return 2
    divided = len(lineage.divisions())
    done = sorted(result.frames_tracked)
    of = f" ({first_frame + done[0]}-{first_frame + done[-1]}, written numbered from 0)" if first_frame and done else ""
    print(f"tracked {len(lineage)} track{'s' * (len(lineage) != 1)} ({divided} division{'s' * (divided != 1)}) over "
          f"{len(result.frames_tracked)} frames{of}")
    print_written(outputs, labels, lineage)
    if result.note:  # e.g. no cell found on any frame: the outputs are empty, and this says why (the stack's frames)
        print(f"napari-sam2: {note_in_movie(result.note, first_frame)}", file=sys.stderr)
    return 0


def _write_interrupted(partial: Any, num_frames: int, backward: bool, outputs: Any, calibration: Any,
                       labels_axes: Optional[str], first_frame: int) -> int:
    """Write ``partial`` (the frames finished before Ctrl-C: the KeyboardInterrupt's ``result`` from
    :func:`sam2_model.tracking.track_cells`), all or nothing, and say so loudly; returns the exit status, 130.
    Forward: frames 0..k, k the last one finished (the frames after it are in no output). Backward (from frame s down
    to j): frames 0..T-1 as a whole run writes them, those before j and after s empty. The tracks still followed end
    "run stopped" (not "end of stack"); forward, the end-of-run division steps were run on them, as on a whole run
    of those frames (by ``track_cells``). The messages name frames in the stack's numbers (``first_frame``: the
    stack's number of frame 0 of the outputs, for ``--frames A-B``) and the written frames left empty. A second
    Ctrl-C while they are written leaves nothing (the command then says "interrupted; nothing was written")."""
    from .track_export import write_auto_outputs

    def span(a: int, b: int) -> str:
        return f"{a}-{b}" if b > a else f"{a}"

    def named(a: int, b: int) -> str:  # written frames a..b, and where they are in the stack when it was cut
        return span(a, b) + (f" (the stack's {span(first_frame + a, first_frame + b)})" if first_frame else "")

    done = sorted(partial.frames_tracked)
    first, last = done[0], done[-1]
    end = num_frames if backward else last + 1
    stopped = first - 1 if backward else last + 1  # the frame in progress, left out whole
    where = f"frame {first_frame + stopped} of {span(first_frame, first_frame + num_frames - 1)}"
    print(f"napari-sam2: interrupted (Ctrl-C) during {where}: writing the frames finished, "
          f"{span(first_frame + first, first_frame + last)} (Ctrl-C again: nothing is written)", file=sys.stderr,
          flush=True)
    labels, lineage = write_auto_outputs(partial.labels[:end], partial.lineage, outputs, write_all=write_outputs,
                                         calibration=calibration, labels_axes=labels_axes)
    print_written(outputs, labels, lineage)
    gaps = [(a, b) for a, b in ((0, first - 1), (last + 1, end - 1)) if a <= b]  # before / after the frames done
    several = len(gaps) > 1 or any(b > a for a, b in gaps)
    empty = f", frame{'s' * several} {' and '.join(named(a, b) for a, b in gaps)} empty (not tracked)" if gaps else ""
    print(f"napari-sam2: stopped at {where}: wrote frames {named(0, end - 1)}{empty}; the tracks still followed "
          f"at frame {first_frame + (first if backward else last)} end \"run stopped\" in the tracks table (CTC "
          f"and GEFF store no end reason)", file=sys.stderr)
    return 130


def print_written(outputs: Any, labels: Any, lineage: Any) -> None:
    """One line per output written, in the words of the prompted ``track``: ``wrote PATH (what it holds)``.
    outputs: the :class:`~napari_sam2.track_export.AutoOutputs`; labels, lineage: what was written (T, H, W)."""
    tracks = f"{len(lineage)} track{'s' * (len(lineage) != 1)}"
    frames = len(labels)
    if outputs.labels is not None:
        print(f"wrote {outputs.labels} ({tuple(np_shape(labels))} labels, {tracks})")
    if outputs.tracks is not None:
        print(f"wrote {outputs.tracks} (tracks table, {tracks})")
    if outputs.ctc is not None:
        print(f"wrote {outputs.ctc} (Cell Tracking Challenge result: {frames} mask files and res_track.txt, {tracks})")
    if outputs.geff is not None:
        print(f"wrote {outputs.geff} (GEFF lineage graph, {tracks})")


def np_shape(labels: Any) -> Tuple[int, ...]:
    return tuple(int(n) for n in getattr(labels, "shape", ()))


def _path(value: Any) -> Optional[Path]:
    return None if value is None else Path(value)


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate", help="CTC measures (SEG, DET, TRA, divisions) of a result",
        description="The Cell Tracking Challenge measures of a tracking result in CTC format (for example `track "
                    "--auto --ctc res/`) against the challenge's ground truth folder: SEG, DET, TRA, LNK and the division "
                    "measures, computed by the py-ctcmetrics package (installed with napari-sam2). Printed one measure "
                    "a line, NAME VALUE (lines starting with # are headings): first the main measures, each with what "
                    "it is, then the others.")
    parser.add_argument("result_dir", type=Path, help="folder with mask%%03d.tif and res_track.txt")
    parser.add_argument("gt_dir", type=Path, help="folder with TRA/ (man_track.txt, man_track%%03d.tif) and SEG/")
    parser.add_argument("--frames", type=frames_option, default=None, metavar="A-B",
                        help="score frames A to B (both included, from 0) of the ground truth: for a result of part of "
                             "a longer movie (e.g. --frames 0-5 for one of its first 6 frames); a result of the whole "
                             "movie is cut to the same frames")
    return parser


def frames_option(text: str) -> range:
    """``--frames A-B`` (or one frame ``A``) -> range(A, B + 1); argparse's error naming the option otherwise."""
    first, dash, last = text.strip().partition("-")
    try:
        a, b = int(first), int(last) if dash else int(first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes A-B, two frame numbers from 0 (e.g. 0-5), got {text!r}") from None
    if a < 0 or b < a:
        raise argparse.ArgumentTypeError(f"takes A-B with 0 <= A <= B (e.g. 0-5), got {text!r}")
    return range(a, b + 1)


def frames_words(frames: range) -> str:
    """``--frames A-B`` of a range, as the user typed it (A and B both included)."""
    return f"--frames {frames.start}-{frames.stop - 1}"


def frames_in_stack(frames: Optional[range], layout: Any, shape: Sequence[int]) -> Optional[range]:
    """``track --frames A-B`` (:func:`frames_option`'s range) checked against a stack of ``shape`` read under
    ``layout`` (a :class:`~napari_sam2.layout.StackLayout`): frames of its propagated axis, numbered from 0. None for
    None (every frame). ValueError in the command's words for a single 2-D image or frames past the stack's last."""
    if frames is None:
        return None
    if layout.frame_axis is None:
        raise ValueError(f"{frames_words(frames)} picks frames of a stack, but {tuple(shape)} is a single 2-D image "
                         "(frame 0 only): leave --frames out")
    count = layout.num_frames(shape)
    if frames.stop > count:
        span = "only frame, 0" if count == 1 else f"frames 0-{count - 1}"
        raise ValueError(f"{frames_words(frames)} is outside the stack's {span} (numbered from 0 along the propagated "
                         f"axis): give A-B within 0-{count - 1}")
    return frames


@contextlib.contextmanager
def in_cli_words(frames: Optional[range]) -> Any:
    """Inside: a ValueError naming the API's ``frames=(A, B)`` is raised again naming ``--frames A-B`` (and
    ``--direction`` where it starts with the API's ``direction``)."""
    try:
        yield
    except ValueError as error:
        if frames is None:
            raise
        api = f"frames=({frames.start}, {frames.stop - 1})"
        if api not in str(error):
            raise
        text = str(error).replace(api, frames_words(frames))
        if text.startswith("direction "):  # check_way_in_range's "direction backward from ..."
            text = "--" + text
        raise ValueError(text) from None


def run_evaluate(args: argparse.Namespace) -> int:
    from sam2_model.tracking import evaluate_ctc

    try:
        measures = evaluate_ctc(args.result_dir, args.gt_dir, frames=args.frames)
    except (ValueError, FileNotFoundError, AssertionError) as error:
        text = str(error)
        if args.frames is not None:  # the API's words for the option -> the command line's
            text = text.replace(f"frames={args.frames!r}", f"--frames {args.frames.start}-{args.frames.stop - 1}")
        print(f"napari-sam2: {text}", file=sys.stderr)
        return 2
    shown = {k: v for k, v in measures.items() if not math.isnan(v)}
    main = [(key, meaning) for key, meaning in EVALUATE_MAIN if key in shown]
    print("# the main measures (0-1, higher is better, except the counts); every line below that does not start with #")
    print("# is NAME VALUE")
    for key, meaning in main:
        print(f"#   {key}: {meaning}")
    for key, _ in main:
        print(f"{key:>16}  {_measure_text(shown.pop(key))}")
    rest = [k for k in EVALUATE_ORDER if k in shown] + sorted(k for k in shown if k not in EVALUATE_ORDER)
    if rest:
        print("# the others (LNK: links only; CT: tracks followed whole; TF: mean fraction of a track followed; "
              "BC(i), CCA, *_div(i): divisions within i frames; AOGM*: the weighted fixes behind DET and TRA; BIO, "
              "OP_*: the challenge's combined scores)")
    for key in rest:
        print(f"{key:>16}  {_measure_text(shown[key])}")
    return 0


def _measure_text(value: float) -> str:
    """A count as an integer, any other measure with 4 decimals."""
    return str(int(value)) if float(value).is_integer() and not 0 < value < 1 else f"{value:.4f}"


# the measures `evaluate` prints first (the rest under a heading), each with what it is
EVALUATE_MAIN = (
    ("SEG", "segmentation: mean IoU of each true cell's mask with the mask covering over half of it (0 if none), on "
            "the frames with SEG truth"),
    ("DET", "detection: 1 - the weighted fixes (cells missed, extra, to split) over building it from nothing"),
    ("TRA", "tracking: DET's fixes plus those of the links between frames and to parents"),
    ("gt_divisions", "divisions in the ground truth"),
    ("tp_div(3)", "divisions found (within 3 frames of the true one)"),
    ("fp_div(3)", "false divisions (a track split where no cell divided)"),
    ("fn_div(3)", "divisions missed"),
    ("division_recall", "tp_div(3) / gt_divisions"),
    ("BC(3)", "branching correctness: F1 of the divisions (within 3 frames)"),
    ("Valid", "1: the result keeps the CTC format's rules (0: it does not)"),
)
