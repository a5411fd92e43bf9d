"""Command line: ``python -m sam2_model.train --out runs/demo [options]`` (also ``sam2-train``).

Examples::

    # single-frame click segmentation first, then video, on synthetic data
    python -m sam2_model.train --out runs/image --clip-len 1 --clips-per-step 8 --steps 2000
    python -m sam2_model.train --out runs/video --init runs/image/weights.pt --clip-len 8 --steps 2000
    # microscopy-like mix (nuclei, cells, bacteria; fluorescence, phase, brightfield, DIC; natural clips)
    # at 512 px input, clips made ahead by 12 worker processes
    python -m sam2_model.train --out runs/mix512 --init embedded --data mix \\
        --image-size 512 --data-workers 12 --steps 4000 --lr 2e-4
    # fine-tune an official checkpoint on your own annotated time-lapse
    python -m sam2_model.train --out runs/mine --model sam2.1_hiera_tiny --init sam2.1_hiera_tiny.pt \\
        --stack movie.tif --labels movie_labels.tif --steps 500 --lr 1e-5
    # ... or on Cell Tracking Challenge ground truth (the frames it segments, each cell under its tracking id)
    python -m sam2_model.train --out runs/ctc --init embedded \\
        --stack Fluo-C2DL-MSC/01 --labels Fluo-C2DL-MSC/01_GT --steps 200 --lr 1e-4 --warmup-steps 50

With --stack and no --init, the demo model starts from its embedded weights (an official model needs its checkpoint
file); --init random trains from random weights. Without --lr a run from trained weights (--init a checkpoint or
embedded, or --stack) learns at 1e-4, as the fine-tuning widget, and one from random weights at 5e-4. Running the same
command again resumes from ``--out``/last.pt; a larger ``--steps`` extends the run (every other setting stays the
run's own: a run folder is refused with the settings that differ, and a finished run given no more steps is left as it
is); Ctrl-C (or SIGTERM, as a cluster scheduler sends at a time limit) stops after the current step and saves the run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import List, Optional

from ..checkpoint_errors import run_folder_message
from ..config import PRESETS, get_config
from ..demo_weights import embedded_weights_path
from .interrupt import TrainingInterrupted, stop_on_sigterm, stopped_words
from .run_folder import run_lr, run_warmup
from .settings import FINE_TUNING_LR, TrainSettings, fine_tuning_warmup

# torch, the model's and the training loop's code are imported where a run needs them, not at the top: --help and a
# wrong argument's error answer in a fraction of a second instead of seconds (test_leftovers_s51)


def list_models() -> List[str]:
    """The model presets --model accepts (:func:`sam2_model.build.list_models`, without importing torch)."""
    return sorted(PRESETS)


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


DESCRIPTION = """\
Train a SAM 2 model, or fine-tune one on your own labelled time-lapse, for napari-sam2.

Each run lives in one folder (--out): last.pt (the whole run: model, optimiser, step, settings; saved every
--save-every steps and at the end), history.csv (losses and learning rate per step), and weights.pt with weights.json
(the trained model and how it was made). weights.pt is what napari-sam2 loads:
napari-sam2 track STACK.tif --model demo --checkpoint RUN/weights.pt ... (or the plugin's model picker).
Without --stack the model learns from synthetic microscopy clips (--data); with --stack and --labels it learns
from your own frames and their instance labels, and prints how well it segments them before and after."""

EPILOG = """\
workflows:
  fine-tune the demo model on your own labelled stack (starts from its embedded weights):
    sam2-train --out runs/mine --stack movie.tif --labels movie_labels.tif --steps 500 --lr 1e-4
  ... keeping frames 40-49 out of training to check the result on frames it never saw:
    sam2-train --out runs/mine-checked --stack movie.tif --labels movie_labels.tif --steps 500 --hold-out 40-49
  fine-tune an official model (its checkpoint file is the starting point):
    sam2-train --out runs/tiny --model sam2.1_hiera_tiny --init sam2.1_hiera_tiny.pt \\
        --stack movie.tif --labels movie_labels.tif --steps 500 --lr 1e-5
  on Cell Tracking Challenge ground truth (a sequence folder and its _GT folder):
    sam2-train --out runs/ctc --stack Fluo-C2DL-MSC/01 --labels Fluo-C2DL-MSC/01_GT --steps 200
  resume: run the same command again (after Ctrl-C, SIGTERM, --time-limit, or a crash); it goes on from
  --out/last.pt.
  extend a finished run: the same command with a larger --steps (other settings must stay the run's own: a run
  folder is refused, with the settings that differ, when they change).
  use the result: napari-sam2 track STACK.tif --prompts p.csv -o labels.tif --checkpoint runs/mine/weights.pt

(python -m sam2_model.train is the same command.) More in the README's "Training and fine-tuning" section and in
docs/training.md."""

#: what each option means (its default is added); settings without an entry show their default only
OPTION_HELP = {
    "model": "the model to train: demo (small, CPU-friendly) or an official preset such as sam2.1_hiera_tiny",
    "init": "weights to start from: a .pt checkpoint, embedded (the demo's shipped weights) or random; with --stack "
            "and no --init the demo starts from its embedded weights; a resumed run goes on from --out/last.pt",
    "steps": "total optimiser steps of the run (a larger value extends a finished run)",
    "clip_len": "frames per training clip (1: single-frame click segmentation, no memory)",
    "clips_per_step": "clips per optimiser step (the batch size)",
    "max_objects": "objects prompted per clip",
    "lr": "peak learning rate of AdamW; fine-tuning trained weights: 1e-5 to 1e-4 (none: 1e-4, the fine-tuning "
          "widget's, for a run from trained weights, i.e. --init a checkpoint or embedded, or --stack without --init; "
          "5e-4 from random weights; a resumed run keeps its own)",
    "weight_decay": "AdamW weight decay",
    "warmup_steps": "steps of linear learning-rate warm-up before the cosine decay (none: with --stack a quarter "
                    "of --steps, at most 50, as the fine-tuning widget; a resumed run keeps its own; else 100)",
    "min_lr_ratio": "the cosine decay ends at lr x this",
    "grad_clip": "clip the gradient norm to this",
    "seed": "seed of the data and prompt sampling (>= 1): the same seed gives the same clips",
    "stack": "your stack: a (T, H, W) TIFF or a CTC sequence folder of t%%03d.tif (with --labels)",
    "labels": "the instance labels of --stack: a (T, H, W) TIFF, one id per object, 0 background, or its CTC "
              "ground-truth folder (none: synthetic data, see --data)",
    "data": "synthetic data without --stack: nuclei, or the microscopy mix: mix, leaps, spread-cells, crowded-nuclei",
    "data_workers": "processes making mix clips ahead (0: in the training process; the same clips either way)",
    "image_size": "the model's input size in px, a multiple of 32 (none: the preset's, demo 256, official 1024)",
    "alternate_image_size": "every other step at this input size, the same weights (for use at two sizes)",
    "device": "auto (CUDA, then MPS, then CPU), cpu, cuda[:N] or mps",
    "save_every": "write --out/last.pt every this many steps (and at the end)",
    "click_prob": "probability that an object is prompted with clicks",
    "box_prob": "probability that an object is prompted with a box (otherwise its mask)",
    "max_corrections": "corrective clicks simulated per prompted frame",
    "positional_init": "random init only: start the decoder's cross-attentions position-aware (yes/no)",
    "memory_positional_init": "start memory attention local (yes/no; auto: on random init only)",
    "time_limit": "seconds of wall time for this invocation, then save and stop cleanly (run again to resume)",
    "batch_clips": "put a step's clips through the model as one batch per frame (yes/no)",
    "contrast_jitter": "half of the synthetic clips get random contrast limits (yes/no)",
    "train_only": "comma-separated parameter-name prefixes to train, the rest frozen (none: train all)",
    "augment": "your stack: turn each clip by a multiple of 90 degrees and mirror it at random (yes/no)",
    "link_ids": "your labels were painted frame by frame with unrelated ids: link them between frames by overlap "
                "(yes/no)",
    "hold_out": "your stack: frames FIRST-LAST kept out of training, to check the run on (e.g. 40-49)",
}

#: the options of how your frames reach the model: napari-sam2 track's words and checks (FrameSource's options); the
#: run maps its clips and its checks as segmentation with the same options does, and weights.json records them
FRAME_OPTION_HELP = {
    "contrast_limits": "your stack: grey values shown to the model as black and white (default: the stack's 0.5 and "
                       "99.8 percentiles; 0 255 for uint8), as napari-sam2 track --contrast-limits",
    "smooth": "your stack: blur every frame by a Gaussian of SIGMA pixels before the model sees it (default: 0, off), "
              "as napari-sam2 track --smooth: train with the smoothing you segment with (8 on the CTC MSC time-lapse)",
    "invert": "your stack: dark objects on a bright background: the model sees each frame's grey values inverted, as "
              "napari-sam2 track --invert (default: off)",
    "channel_axis": "your stack: the axis that holds channels (default: the last, for (T, Y, X, C) frames)",
    "channel": "your stack: with channels, a channel index, or mean / max, as napari-sam2 track --channel "
               "(default: none, for grey frames)",
}


def add_frame_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --contrast-limits, --smooth, --invert, --channel-axis and --channel (napari-sam2 track's) to ``parser``."""
    parser.add_argument("--contrast-limits", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help=FRAME_OPTION_HELP["contrast_limits"])
    parser.add_argument("--smooth", type=float, default=0.0, metavar="SIGMA", help=FRAME_OPTION_HELP["smooth"])
    parser.add_argument("--invert", action="store_true", help=FRAME_OPTION_HELP["invert"])
    parser.add_argument("--channel-axis", type=int, default=None, help=FRAME_OPTION_HELP["channel_axis"])
    parser.add_argument("--channel", default=None, help=FRAME_OPTION_HELP["channel"])


def _option_help(name: str, default: object) -> str:
    """``name``'s meaning and its default ("none" for None), for --help."""
    shown = "none" if default is None else ("yes" if default is True else "no" if default is False else default)
    meaning = OPTION_HELP.get(name)
    return f"{meaning} (default: {shown})" if meaning else f"(default: {shown})"


def own_data_problem(stack: Optional[str], labels: Optional[str], picked: bool = False) -> Optional[str]:
    """Why ``--stack``/``--labels`` cannot be trained on, naming the option (None: fine, or synthetic data): one
    without the other, a path that is not there, or a TIFF stack in colour with no channel picked (``picked``:
    ``--channel`` given; sam2-train trains on grey frames)."""
    if (stack is None) != (labels is None):
        given, other = ("--stack", "--labels") if labels is None else ("--labels", "--stack")
        return (f"{given} needs {other}: give your stack (--stack) and its instance labels (--labels) to train on "
                "your own data, or neither for synthetic data (--data)")
    for option, path in (("--stack", stack), ("--labels", labels)):
        if path is not None and not Path(path).exists():
            return f"{option} {path}: no such file or folder (expected a (T, H, W) TIFF or a CTC folder)"
        if path is not None and Path(path).is_file() and (problem := tiff_problem(Path(path))) is not None:
            return f"{option} {path}: cannot be read as a TIFF ({problem}); expected a (T, H, W) TIFF or a CTC folder"
    return None if stack is None or picked or not Path(stack).is_file() else colour_stack_problem(Path(stack))


def tiff_problem(path: Path) -> Optional[str]:
    """What tifffile says when it cannot read the file ``path`` as a TIFF (another format, a damaged or empty file);
    None when it can (its header and first series are read, not its pixels)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tif.series[0].shape  # reads the header and page structure: enough to tell a TIFF
    except (OSError, ValueError, IndexError) as error:  # tifffile.TiffFileError is a ValueError
        return str(error) or type(error).__name__
    return None


def colour_stack_problem(stack: Path) -> Optional[str]:
    """How to make a grey stack of a colour (or multi-channel) TIFF ``stack``, whose shape is (T, H, W, C) or has
    a sample axis; None for grey frames or a file tifffile cannot read (the run reports that one)."""
    import tifffile

    try:
        with tifffile.TiffFile(stack) as tif:
            series = tif.series[0]
            shape, axes = tuple(series.shape), series.axes
    except Exception:  # not a TIFF (e.g. .npy): left to the loader
        return None
    if len(shape) <= 3 and "S" not in axes:
        return None
    axis = "" if "S" in axes or "C" in axes or len(shape) < 4 else " --channel-axis 1"  # (a named C axis is found)
    return (f"--stack {stack}: its frames have colour or channels (shape {shape}, axes {axes}); sam2-train trains "
            f"on grey (T, H, W) frames: pick the channel to train on as you segment it, e.g.{axis} --channel 0 (or "
            "mean / max), with labels of the frames' (T, H, W)")


def default_warmup(out: Path, steps: int, own_data: bool) -> int:
    """Warm-up steps when ``--warmup-steps`` is not given: a run in ``out`` keeps the warm-up it started with
    (:func:`~sam2_model.train.run_folder.run_warmup`, so a larger ``--steps`` extends it instead of changing a
    setting); fine-tuning on your own stack (``own_data``) warms up as the fine-tuning widget does
    (:func:`~sam2_model.train.settings.fine_tuning_warmup`: a quarter of ``steps``, at most 50); synthetic training
    keeps :class:`TrainSettings`' default (100)."""
    resumed = run_warmup(out)
    if resumed is not None:
        return resumed
    return fine_tuning_warmup(steps) if own_data else TrainSettings(out="").warmup_steps


def default_lr(out: Path, init: Optional[str]) -> float:
    """The learning rate when ``--lr`` is not given: a run in ``out`` keeps its own
    (:func:`~sam2_model.train.run_folder.run_lr`); a run from trained weights (``init``: the checkpoint path that
    ``--init`` or ``--stack`` resolved to) takes :data:`~sam2_model.train.settings.FINE_TUNING_LR` (1e-4), as the
    fine-tuning widget does; a run from random weights (``init`` None) keeps :class:`TrainSettings`' default (5e-4)."""
    resumed = run_lr(out)
    if resumed is not None:
        return resumed
    return FINE_TUNING_LR if init is not None else TrainSettings(out="").lr


def parse_args(argv: Optional[List[str]] = None, notes: Optional[List[str]] = None) -> TrainSettings:
    """The settings of ``argv`` (None: the command line); a wrong argument exits with argparse's usage line. What the
    run will start from (e.g. "starting from the embedded demo weights ...") is appended to ``notes`` when given (main
    says it only once the data passed its checks), else printed on stderr at once."""
    defaults = TrainSettings(out="")

    def note(words: str) -> None:
        if notes is None:
            print(words, file=sys.stderr)
        else:
            notes.append(words)

    invoked = Path(sys.argv[0]).name
    parser = argparse.ArgumentParser(prog=invoked if invoked == "sam2-train" else "python -m sam2_model.train",
                                     description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, metavar="RUN_DIR",
                        help="the run's folder: last.pt, history.csv, weights.pt and weights.json go here; an "
                             "existing run there is resumed (required)")
    for field in dataclasses.fields(TrainSettings):
        if field.name == "out" or field.name in FRAME_OPTION_HELP:  # (those: added below, as track has them)
            continue
        default = None if field.name in ("warmup_steps", "lr") else getattr(defaults, field.name)  # derived below
        annotation = str(field.type)
        if "bool" in annotation:
            kind = _flag if "Optional" in annotation else _on_off
        else:
            kind = int if "int" in annotation else float if "float" in annotation else str
        parser.add_argument("--" + field.name.replace("_", "-"), type=kind, default=default,
                            metavar=field.name.upper(), help=_option_help(field.name, default))
    add_frame_arguments(parser)
    parser.add_argument("--no-batch-clips", dest="batch_clips", action="store_false",
                        help="put a step's clips through the model one after another (same as --batch-clips no)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = vars(parser.parse_args(argv))
    if args["model"] not in list_models():
        parser.error(f"--model {args['model']}: no such model; the models are {', '.join(list_models())}")
    if args["steps"] < 1:
        parser.error(f"--steps must be a whole number >= 1 (the run's total optimiser steps), got {args['steps']}")
    problem = own_data_problem(args["stack"], args["labels"], picked=args["channel"] is not None)
    if problem:  # before any message on the starting weights
        parser.error(problem)
    given = [name for name in FRAME_OPTION_HELP if args[name] not in (None, False, 0.0)]
    if given and args["stack"] is None:
        parser.error(f"{', '.join('--' + name.replace('_', '-') for name in given)}: how your frames reach the model; "
                     "give them with --stack and --labels (synthetic clips are made as the model sees them)")
    if args["init"] is None and args["stack"] is not None:  # fine-tuning: from trained weights unless told otherwise
        if args["model"] != "demo":
            parser.error(f"--init: fine-tuning {args['model']} on your stack starts from its checkpoint file: pass "
                         f"--init path/to/{args['model']}.pt (napari-sam2 downloads official ones to its cache), or "
                         "--init random to train from random weights")
        args["init"] = str(embedded_weights_path())
        if (Path(args["out"]) / "last.pt").is_file():  # a resume goes on from the run's own weights
            note(f"resuming the run in {args['out']} from its last.pt (the weights it has trained so far)")
        else:
            note(f"starting from the embedded demo weights ({args['init']}); --init random trains from random "
                 "weights")
    if args["init"] == "random":
        args["init"] = None
    elif args["init"] == "embedded":  # the demo model's shipped weights, wherever the package is installed
        if args["model"] != "demo":
            parser.error(f"--init embedded: only the demo model ships weights; {args['model']} starts from its "
                         "checkpoint file (--init path/to/file.pt) or from random weights (--init random)")
        args["init"] = str(embedded_weights_path())
    elif args["init"] is not None and (folder := run_folder_message(args["init"])) is not None:
        parser.error(f"--init: {folder}")
    elif args["init"] is not None and not Path(args["init"]).is_file():
        parser.error(f"--init {args['init']}: no such checkpoint file (--init takes a .pt file, embedded for the "
                     "demo model's shipped weights, or random)")
    if Path(args["out"]).exists() and not Path(args["out"]).is_dir():
        parser.error(f"--out {args['out']} is a file: give a folder for the run (checkpoints, history, weights)")
    if args["lr"] is None:
        args["lr"] = default_lr(Path(args["out"]), args["init"])
    if args["warmup_steps"] is None:
        args["warmup_steps"] = default_warmup(Path(args["out"]), args["steps"], args["stack"] is not None)
    threads = args.pop("threads")
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        return TrainSettings(**args)
    except ValueError as error:
        parser.error(str(error))
        raise  # parser.error exits; this line only satisfies type checkers


def time_limit_message(settings: TrainSettings, step: int) -> str:
    """What a run stopped by ``--time-limit`` after ``step`` did and what to type next (as Ctrl-C tells)."""
    checks = ("; the check on your own frames was not run (it runs when the run reaches its last step)"
              if settings.stack is not None else "")
    return (f"stopped by --time-limit {settings.time_limit:g} after step {step} of {settings.steps}: the run is saved "
            f"in {settings.out} (weights.pt holds the weights of step {step}); run the same command again to "
            f"resume{checks}")


def plan_message(settings: TrainSettings) -> Optional[str]:
    """What a new run will do, said before it starts (a bare ``--out`` trains 1000 steps from random weights on
    synthetic clips: hours on a laptop): its steps, model, input size, starting weights and data. None where
    ``--out`` holds a run to resume."""
    out = Path(settings.out)
    if (out / "last.pt").is_file():
        return None
    size = get_config(settings.model, settings.image_size).image_size
    if settings.init is None:
        weights = "random weights"
    elif Path(settings.init).resolve() == embedded_weights_path().resolve():
        weights = "the embedded demo weights"
    else:
        weights = settings.init
    data = (f"your stack {settings.stack} with labels {settings.labels}" if settings.stack is not None
            else f"synthetic clips (--data {settings.data})")
    steps = f"{settings.steps} step{'s' * (settings.steps != 1)}"
    return (f"a new run in {out}: {steps} of the {settings.model} model at {size} px from {weights}, "
            f"on {data}; Ctrl-C stops after the current step and saves the run, and the same command resumes it")


def check_own_data(settings: TrainSettings) -> None:
    """The checks of a run's own stack and labels (``--stack``, ``--labels``), made as the run makes them (its clip
    stream, :func:`.loop.make_clips`, which reads them), before anything is said about the run or written: a
    ValueError (OSError for a file that cannot be read) names what is wrong. Nothing for synthetic data. The run reads
    the data again when it starts (seconds; its steps take minutes to hours)."""
    if settings.stack is None and settings.labels is None:
        return
    from .loop import make_clips  # torch and the training code: only for a run on the user's data

    make_clips(settings, get_config(settings.model, settings.image_size).image_size)


#: the exit code of a run stopped by each signal, as a shell reports a process the signal ended (128 + its number)
STOPPED_CODES = {"Ctrl-C": 130, "SIGTERM": 143}


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``sam2-train`` on ``argv`` (None: the command line); returns the exit status. The training code (and
    torch) is imported once the arguments are parsed: ``--help`` and a wrong argument answer without it."""
    notes: List[str] = []
    try:  # a path that cannot even be looked at (a folder on the way the user may not enter, a name too long)
        settings = parse_args(argv, notes)
        plan = plan_message(settings)
        check_own_data(settings)  # before any word on the run: refused data leaves no line about a run, no folder
    except (ValueError, OSError) as error:  # FileNotFoundError included
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted while the data was checked; nothing was started", file=sys.stderr)
        return 130
    for line in notes + ([plan] if plan is not None else []):
        print(line, file=sys.stderr)
    from .loop import RunFinished, finished_run_words, saved_step, short_run_warning, train
    from .stack_check import StackCheck

    # a run that will not train (finished: "nothing to do" below) gets no warning of how it would have trained
    finishing = plan is None and finished_run_words(settings) is not None
    warning = None if finishing else short_run_warning(settings, resumed=plan is None)
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        with stop_on_sigterm():  # a scheduler's time limit stops the run as Ctrl-C does: after a step, saved
            train(settings)
    except RunFinished as finished:  # the same command again on a finished run: nothing trained, nothing rewritten
        print(f"nothing to do: {finished}", file=sys.stderr)
        return 0
    except (ValueError, OSError) as error:  # FileNotFoundError and a failed save (atomic_save) included: one line
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingInterrupted as stopped:
        print(f"stopped by {stopped.by} {stopped_words(stopped.step, stopped.steps, settings.out)}", file=sys.stderr)
        return STOPPED_CODES.get(stopped.by, 130)
    except KeyboardInterrupt:
        last = Path(settings.out) / "last.pt"
        step = saved_step(last)
        saved = (f"the last save ({last}, step {step}) resumes when you run the same command again"
                 if step is not None else f"the last save ({last}) cannot be read" if last.is_file()
                 else "nothing was saved yet")
        print(f"\ninterrupted; {saved}", file=sys.stderr)
        return 130
    metadata = json.loads((Path(settings.out) / "weights.json").read_text())
    print(f"trained on: {metadata['data']}")
    if metadata.get("stopped_by") == "time_limit":
        print(time_limit_message(settings, int(metadata["steps"])), file=sys.stderr)
    for key in ("stack_check", "held_out_check"):
        if metadata.get(key) is not None:
            check = StackCheck(**metadata[key])
            print(check.summary() + (" (starting -> fine-tuned weights)" if check.before is not None
                                     else " (trained from random weights)"))
            warning = check.warning()
            if warning:
                print(f"warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
