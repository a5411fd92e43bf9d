"""Many stacks on Dask's distributed scheduler: one stack = one task, the model built once per worker.

    import napari_sam2
    table = napari_sam2.batch("plate1/*.tif", "results", workers=2)          # a LocalCluster of 2 processes
    table = napari_sam2.batch(["a.tif", "b.zarr"], "results", client=client)  # an existing distributed.Client
    table = napari_sam2.batch("movies/", "results", scheduler="tcp://head:8786", auto=True)
    table = napari_sam2.batch("plate2/", "results", auto=True, channel_axis=1, channel=0)  # (T, C, Y, X) stacks

Per stack, prompts come from ``<name>.csv`` or ``<name>_prompts.csv`` beside it (or in ``prompts_dir``; ``<name>``:
its output name, ``movie`` for ``movie.ome.tif``, whose ``movie.ome.csv`` is found too:
:func:`.batch_inputs.find_prompts`), or, with ``auto=True``, cells are found and tracked automatically. Outputs and their safety rules
are described in :mod:`napari_sam2.batch_outputs`; ``OUT/summary.csv`` has one row per stack. The cluster a run
starts or connects to, and Ctrl-C / SIGTERM while it runs, are in :mod:`napari_sam2.batch_cluster`.
"""

from __future__ import annotations

import csv
import numbers
import os
import sys
import uuid
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from sam2_model.atomic_files import atomic_file
from sam2_model.auto_smooth import DEFAULT_SMOOTH, SmoothArg, check_smooth_option
from sam2_model.frames import check_contrast_limits, check_invert

from .api import COMPOSITES, DIRECTIONS, FrameRangeArg
from .batch_console import Console, report_start
from .batch_cluster import (Terminated, check_main_guard, client_for, dashboard_line, usable_cores,
                            workers_per_machine)
from .batch_inputs import (AmbiguousPrompts, check_cell_diameter_option, check_diameter_fits_a_stack, find_prompts,
                           find_stacks, prompt_candidates)
from .batch_outputs import (ZARR_ABOVE_BYTES, RunPlan, as_recorded, clean_partials, file_fingerprint, out_lock,
                            plan_run, prepare_out, prompts_fingerprint, remove_if_empty, remove_partial_root,
                            reusable_result)
from .batch_worker import (AxisOptions, ModelSpec, StackTask, measured_smooth, process_stack, range_text,
                           tracking_settings)
from .directions import DIRECTION_WORDS, auto_direction, check_one_way
from .image_size import AUTO, ImageSizeArg, ObjectWindowArg, check_image_size, check_object_window


PathLike = Union[str, os.PathLike]
#: summary.csv: ``stack`` is the stack's absolute path, ``outputs`` are paths relative to the output folder; ``error``
#: is a failed stack's, ``reason`` why a stack was skipped (not run by this run); ``frame_range`` the stack's frames
#: tracked, "A-B" (``frames=(A, B)``, ``--frames A-B``; ``frames`` counts them), empty where every frame was
SUMMARY_COLUMNS = ["stack", "name", "status", "reason", "error", "seconds", "frames", "frame_range", "objects",
                   "outputs", "worker", "note"]
#: the command's option for each keyword argument of :func:`batch` (messages name what the user typed)
CLI_OPTIONS = {"workers": "--workers", "scheduler": "--scheduler", "zarr_above_gb": "--zarr-above",
               "image_size": "--image-size", "object_window": "--object-window", "direction": "--direction",
               "prompts_dir": "--prompts-dir", "checkpoint": "--checkpoint", "out": "--out", "auto": "--auto",
               "overwrite": "--overwrite",
               "smooth": "--smooth", "contrast_limits": "--contrast-limits", "invert": "--invert",
               "frames": "--frames"}


def _row(path: Path, name: str, status: str, error: str = "", **values: Any) -> Dict[str, Any]:
    row = {column: None for column in SUMMARY_COLUMNS}
    row.update(stack=str(Path(path).resolve()), name=name, status=status, reason="", error=error, outputs="")
    row.update(values)
    return row


def _earlier_row(stack: str, name: str, record: Mapping[str, Any], reason: str) -> Dict[str, Any]:
    """The summary row of a complete result from an earlier run (status "skipped"): its numbers, outputs and note
    from its manifest (``record``); ``reason`` says why it was not run now."""
    outputs = [f"{name}/{output}" for output in list(record.get("outputs", [])) + ["manifest.json"]]
    return _row(Path(stack), name, "skipped", reason=reason, seconds=record.get("seconds"),
                frames=record.get("frames"), frame_range=range_text(record.get("frame_range")),
                objects=record.get("objects"), outputs=";".join(outputs), note=record.get("note", ""))


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM: ``by``) during a batch run. The stacks finished before it are complete in ``out`` and
    listed in its summary.csv; the message says how to do the rest.

    complete: stacks of the run whose results are complete in ``out`` (``earlier`` of them from an earlier run, kept
    because the run was interrupted before ``overwrite`` redid them); summary: whether summary.csv was written;
    overwrite: the option the run was given, as the caller names it ("" when off: the same command does the rest);
    current: the kept earlier results that a run without it would skip (made from the same stack and settings)."""

    def __init__(self, out: Path, complete: int, failed: int, total: int, summary: bool = True,
                 earlier: int = 0, by: str = "Ctrl-C", overwrite: str = "", current: Sequence[str] = ()) -> None:
        super().__init__(out, complete, failed, total)
        self.out, self.complete, self.failed, self.total = Path(out), complete, failed, total
        self.summary, self.earlier, self.by = summary, earlier, by
        self.overwrite, self.current = overwrite, list(current)

    def __str__(self) -> str:
        by = "" if self.by == "Ctrl-C" else f" by {self.by}"
        if not self.complete and not self.summary:
            return f"interrupted{by} before any stack finished; nothing was written to {self.out}"
        failed = f", {self.failed} failed" if self.failed else ""
        earlier = f" ({self.earlier} of them from an earlier run, not redone)" if self.earlier else ""
        see = f" (see {self.out / 'summary.csv'})" if self.summary else ""
        return (f"interrupted{by}; {self.complete} of {self.total} stacks are complete in {self.out}{earlier}{failed}"
                f"{see}; {self.advice()}")

    def advice(self) -> str:
        """How to do the rest: the same command, or (it redoes every stack with overwrite) the command without it;
        nothing to do when every stack was complete before the stop."""
        if self.complete >= self.total and not self.failed:
            return "every stack was done before the stop: nothing is left to run"
        if not self.overwrite:
            return "run the same command again to do the rest"
        said = f"run it again without {self.overwrite} to do the rest (with it, every stack is redone)"
        if self.current:
            count = len(self.current)
            said += (f"; that run also skips the {count} earlier result{'s' * (count != 1)} kept from the same stack "
                     f"and settings ({', '.join(self.current[:3])}{', ...' if count > 3 else ''}): to redo "
                     f"{'them' if count != 1 else 'it'}, run {'them' if count != 1 else 'it'} alone with "
                     f"{self.overwrite}")
        return said


def write_summary(rows: Sequence[Dict[str, Any]], path: Path) -> None:
    """Write the summary table (temporary name, then renamed)."""
    with atomic_file(path) as scratch, open(scratch, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)


def _check_arguments(workers: int, scheduler: Optional[str], client: Any, auto: bool,
                     tracking_options: Dict[str, Any], zarr_above_gb: float, name: Any = str) -> None:
    """Usage errors in the caller's words: ``name`` maps a keyword argument to what is shown (an option)."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"{name('workers')} must be a whole number >= 1, got {workers!r}")
    if scheduler is not None and client is not None:
        raise ValueError("give either scheduler (an address such as tcp://host:8786) or client, not both")
    if scheduler is not None and "://" not in str(scheduler):
        raise ValueError(f"{name('scheduler')} must be an address such as tcp://host:8786, got {scheduler!r}")
    if tracking_options and not auto:
        raise ValueError(f"tracking options {sorted(tracking_options)} apply only with auto=True")
    if auto:
        _check_tracking_options(tracking_options, name)
    if not (isinstance(zarr_above_gb, (int, float)) and zarr_above_gb > 0):
        raise ValueError(f"{name('zarr_above_gb')} must be > 0 (GiB of uint32 labels), got {zarr_above_gb!r}")


#: track_cells's arguments that batch gives each stack itself (beside ``invert`` and ``progress``, its own keywords),
#: and the argument of batch that sets each
_SET_BY_BATCH = {"reverse": "direction", "on_advice": "progress"}


def _check_tracking_options(tracking_options: Mapping[str, Any], name: Any = str) -> None:
    """The names of ``tracking_options`` checked before any task starts (a typo fails no stack in its worker): a name
    :func:`sam2_model.tracking.track_cells` does not take is a TypeError naming the valid ones and a close match
    (:func:`sam2_model.tracking.tracker.check_tracking_options`, names only: no model or frames are needed); one that
    batch sets itself (reverse, on_advice, frames) is a ValueError naming batch's own argument for it."""
    import inspect

    from sam2_model.tracking.tracker import check_tracking_options, track_cells

    own = sorted(set(tracking_options) & set(_SET_BY_BATCH))
    if own:
        raise ValueError(f"tracking option{'s' * (len(own) > 1)} {', '.join(own)} {'is' if len(own) == 1 else 'are'} "
                         f"set by batch itself: use its own argument{'s' * (len(own) > 1)} "
                         f"{', '.join(sorted({name(_SET_BY_BATCH[o]) for o in own}))}")
    named = set(inspect.signature(track_cells).parameters) - {"amg_options"}
    try:  # the rest go to the detector (**amg_options); no FrameSource is given: only their names are checked
        check_tracking_options(None, None, {k: v for k, v in tracking_options.items() if k not in named})
    except TypeError as error:
        raise TypeError(f"batch(auto=True), whose tracking options go to track_cells: {error}") from None
    # its values too, in the caller's words: before any worker builds a model to refuse it
    check_cell_diameter_option(tracking_options, "cli" if name("auto") != "auto" else "api")


def _check_direction(direction: Optional[str], auto: bool, name: Any, names: str = "api") -> str:
    """``direction`` checked: prompts propagate "both" ways by default; automatic tracking follows
    :func:`napari_sam2.directions.auto_direction` (the rule ``track --auto`` follows too)."""
    if direction is not None and direction not in DIRECTIONS:
        raise ValueError(f"{name('direction')} must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if not auto:
        return direction or "both"
    return auto_direction(direction, names)


def _check_prompts_dir(prompts_dir: Optional[PathLike], auto: bool, name: Any) -> Optional[Path]:
    """``prompts_dir`` checked before any work: an existing folder, and only without automatic tracking."""
    if prompts_dir is None:
        return None
    option, folder = name("prompts_dir"), Path(prompts_dir).expanduser()
    if auto:
        raise ValueError(f"{option}: prompts are not used with automatic tracking ({name('auto')}); leave one out")
    expects = "it expects the folder holding <stack name>.csv or <stack name>_prompts.csv for every stack"
    if not folder.exists():
        raise ValueError(f"{option} {folder}: no such folder; {expects}")
    if not folder.is_dir():
        raise ValueError(f"{option} {folder} is a file; {expects} (or leave it out: each stack's CSV beside it)")
    return folder


def _axis_options(frame_axis: Any, channel_axis: Any, channel: Any, fixed: Any, rgb: Any, names: str) -> AxisOptions:
    """The axis arguments checked for type (whether they fit a stack is checked per stack)."""
    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not whole(frame_axis):
        raise ValueError(f"frame_axis must be an axis number, got {frame_axis!r}")
    if channel_axis is not None and not whole(channel_axis):
        raise ValueError(f"channel_axis must be an axis number or None, got {channel_axis!r}")
    if channel is not None and not (whole(channel) or str(channel).lower() in COMPOSITES or str(channel).isdigit()):
        raise ValueError(f"channel must be a channel index or one of {COMPOSITES}, got {channel!r}")
    if rgb is not None and not isinstance(rgb, bool):
        raise ValueError(f"rgb must be True, False or None (detect), got {rgb!r}")
    if not isinstance(fixed, Mapping) or not all(whole(a) and whole(i) for a, i in fixed.items()):
        raise ValueError(f"fixed must map axis numbers to indices, e.g. {{1: 5}}, got {fixed!r}")
    if names not in ("api", "cli"):
        raise ValueError(f"axis_names must be 'api' or 'cli', got {names!r}")
    channel = int(channel) if isinstance(channel, str) and channel.isdigit() else channel
    return AxisOptions(frame_axis, channel_axis, channel, tuple(sorted(fixed.items())), rgb, names)


def _model_spec(model: str, checkpoint: Any, device: str, image_size: ImageSizeArg,
                torch_threads: Optional[int], name: Any = str) -> ModelSpec:
    """Check the model settings here (usage errors, not one failure per stack) and make paths absolute.

    image_size: a checked size, "auto" (picked per stack by the worker) or None. A checkpoint file must exist here
    (inputs, outputs and weights are on a file system every worker sees). For a local cluster (torch_threads set)
    the device is checked too. Nothing is downloaded or created (see :func:`_fetch_weights`).
    """
    from sam2_model import get_config, resolve_device
    from sam2_model.build import resolve_weights

    get_config(model, image_size if isinstance(image_size, int) else None)
    source = resolve_weights(model, checkpoint)
    if isinstance(source, Path):
        if not source.is_file():
            problem = "is a folder" if source.is_dir() else "no such file"
            raise ValueError(f"{name('checkpoint')} {source}: {problem}; give a checkpoint file (.pt) that every "
                             "worker can read, download (the official weights) or none (random weights)")
        weights = str(source.resolve())
    else:
        weights = source.value
    if torch_threads is not None:
        resolve_device(device)
    return ModelSpec(model, weights, device, image_size, torch_threads)


def _fetch_weights(spec: ModelSpec) -> None:
    """For a local cluster: download an official checkpoint once here, so that the workers find it in the cache
    instead of racing to fetch it."""
    from sam2_model.build import Weights

    if spec.torch_threads is not None and spec.checkpoint == Weights.DOWNLOAD.value:
        from sam2_model.checkpoints import download

        download(spec.model)


def batch(
    inputs: Union[PathLike, Sequence[PathLike]],
    out: PathLike,
    *,
    auto: bool = False,
    prompts_dir: Optional[PathLike] = None,
    model: str = "demo",
    checkpoint: Optional[str] = "download",
    device: str = "auto",
    image_size: ImageSizeArg = None,
    object_window: ObjectWindowArg = AUTO,
    direction: Optional[str] = None,
    workers: int = 1,
    scheduler: Optional[str] = None,
    client: Any = None,
    overwrite: bool = False,
    zarr_above_gb: float = ZARR_ABOVE_BYTES / 1024**3,
    progress: bool = True,
    frame_axis: int = 0,
    channel_axis: Optional[int] = None,
    channel: Union[int, str, None] = None,
    fixed: Optional[Mapping[int, int]] = None,
    rgb: Optional[bool] = None,
    axis_names: str = "api",
    smooth: SmoothArg = DEFAULT_SMOOTH,
    contrast_limits: Optional[Sequence[float]] = None,
    invert: bool = False,
    frames: FrameRangeArg = None,
    **tracking_options: Any,
) -> Any:
    """Segment/track every stack of ``inputs`` into ``out``; returns the summary as a pandas DataFrame.

    inputs: stack files, folders or glob patterns (see :mod:`napari_sam2.batch_inputs`).
    auto: automatic cell tracking (``tracking_options`` go to ``sam2_model.track_cells``) instead of
    a prompts CSV per stack (``<name>.csv`` / ``<name>_prompts.csv`` beside it or in ``prompts_dir``; two that differ:
    that stack fails, naming both; :func:`.batch_inputs.find_prompts`).
    model / checkpoint / device / image_size / object_window: as in :func:`napari_sam2.api.segment`; "auto" picks
    each stack's input size (and, for prompts, object window) from its first prompted frame (with auto=True: by
    :func:`.image_size.tracking_size_choice`, the rule of ``track --auto`` and ``track_cells``: from the tracking
    option ``cell_diameter`` where it is given, else measured on its start frame, or, in a z-stack whose start slice
    holds too little to measure (an empty top slice), a fuller sampled slice). Tracking
    option ``divisions`` left out: on, except in a stack whose frames are z slices (its axes say so), where cells do
    not divide: off there, said in its note (``divisions=True`` looks for them anyway).
    direction: prompts: "forward", "backward" or "both" (the default) from the first prompted frame; auto=True:
    "forward" (the default) or "backward" from ``start_frame`` (a tracking option), "both" refused (the rule of
    ``napari-sam2 track --auto`` too). A stack where one way has nothing to track (backward from frame 0, forward
    from its last frame) fails with that reason.
    workers: worker processes of a local cluster (one per GPU with CUDA); scheduler: the address of an
    existing Dask scheduler; client: an existing ``distributed.Client`` (then neither is used).
    overwrite: redo stacks whose outputs are complete (otherwise they are skipped). A result in ``out`` is reused
    only when it was made from the same input (resolved path, size and modification time unchanged), the same
    prompts CSV content, in the same mode and with the same settings (model and weights, image_size, object_window,
    direction, tracking options, axes, smooth, contrast_limits, invert: its manifest's ``settings``); the console names
    the stacks run again and why. Names and reuse are decided by :func:`.batch_outputs.plan_run`.
    zarr_above_gb: labels larger than this (uint32 GiB) are written as OME-Zarr instead of TIFF.
    progress: what the run says on stderr (False: nothing): the plan, each failure and note, the stacks and the
    frames done in the stacks in flight (a bar in a terminal; in a log file a plain line every
    :data:`.batch_console.PLAIN_EVERY_S` seconds), and with auto the detector's advice of too many candidate
    cells, once per stack as soon as it comes (:mod:`.batch_console`).
    frame_axis / channel_axis / channel / fixed / rgb: how to read every stack's axes, as in
    :func:`napari_sam2.api.segment` (e.g. ``channel_axis=1, channel=0`` for (T, C, Y, X) stacks, ``frame_axis=1,
    fixed={0: 3}`` for z=3 of (Z, T, Y, X)); labels are (T, Y, X) along ``frame_axis``, prompts CSV rows
    give (frame, y, x) along it too. A stack with its frames after its rows and columns (a TIFF of axes YXT, or
    ``frame_axis`` naming the last axis where it is shorter than the two before it) is read frames first, as
    segment() and ``napari-sam2 track`` read it; its note (and a console line) says so. A stack they do not fit
    fails with the reason; axis_names="cli" makes those reasons name the command-line options.
    smooth / contrast_limits: blur every frame by a Gaussian of this many pixels ("off" or 0: no blur; "auto", the
    default: per stack, as :func:`napari_sam2.api.segment` chooses it, from its first prompted frame's grain at the
    prompted objects, for the demo model's shipped weights only; with auto=True no blur), and map these (low, high)
    grey values to black and white (None: each stack's percentiles), before the model sees it (as in
    :func:`napari_sam2.api.segment`). A blur "auto" chose is said in the stack's note ("smoothing 4 px: grainy frames
    (grain 0.20)"); its manifest records the px used (``smooth``, and in ``settings``) and why (``smooth_picked``),
    so a rerun reuses a result made with as much blur, asked as "auto" or as the number.
    invert: dark objects on a bright background: the model sees 1 - x of each frame's [0, 1] values, and with auto
    the detector finds the dark cells (as :func:`napari_sam2.api.segment` and ``track_cells``); labels and measures
    keep the stacks' own values.
    frames: track part of every stack: (first, last), both included, in each stack's frame numbers along
    ``frame_axis`` (a range of step 1 too; ``--frames A-B``), with exactly the rules of ``napari-sam2 track --frames
    A-B`` and ``segment(frames=)``: only those frames are read; prompts CSV rows name the stack's frames, each inside
    the range; with auto, ``start_frame`` (a tracking option) is the stack's number too, default ``first``; every
    output holds those frames numbered from 0 (the labels' calibration starts at frame ``first``). A stack with
    fewer frames fails, naming them (the others run). The manifest records ``frame_range`` [first, last] and the
    summary's ``frame_range`` column "first-last"; a result made with other frames (or none) is not reused.
    The summary has one row per stack of this run: stack (its absolute path), name, status ("ok", "failed",
    "skipped"), reason (why a skipped stack was not run), error (why a failed one failed), seconds, frames (how many
    frames the outputs hold: every frame of the range, or of the stack, also those a run from a later start frame
    did not track), frame_range (which: "A-B" of the stack's numbers with ``frames``; empty: all), objects,
    outputs (paths relative to ``out``), worker, note (what the numbers alone do not say, e.g. no cell found on any
    frame); a skipped stack's numbers, outputs and note are those of its earlier result (its manifest).
    ``out/summary.csv`` holds these rows and then a "skipped" row for each other
    complete result in ``out`` (stacks of earlier runs that are not among ``inputs``).
    Every setting is checked before anything is created, the cluster started or a stack read (ValueError; a tracking
    option that track_cells does not take, e.g. a typo: TypeError naming the valid ones and a close match; a local
    cluster started from a script's top level without ``if __name__ == "__main__":``, whose workers would run the
    script again: :class:`.batch_cluster.UnguardedScript`, naming the line and the fix); then
    ``out`` is created with its lock (one run per output folder: :class:`.batch_outputs.OutputFolderBusy`, a
    ValueError, while another run holds it) and removed again by a run that ends before writing anything (an
    unreachable scheduler). In the workers of a cluster of the user's, PyTorch's threads per task follow
    :func:`.batch_worker.task_threads` (Dask's nanny leaves it one thread). Ctrl-C (KeyboardInterrupt) or
    :class:`Terminated` (of :mod:`.batch_cluster`) stops the run: :class:`BatchInterrupted` says what is complete and
    how to do the rest.
    """
    if axis_names not in ("api", "cli"):
        raise ValueError(f"axis_names must be 'api' or 'cli', got {axis_names!r}")

    def word(keyword: str) -> str:
        return CLI_OPTIONS.get(keyword, keyword) if axis_names == "cli" else keyword

    _check_arguments(workers, scheduler, client, auto, tracking_options, zarr_above_gb, word)
    check_main_guard(sys._getframe(1), local=client is None and scheduler is None)  # a script without the guard
    axes = _axis_options(frame_axis, channel_axis, channel, {} if fixed is None else fixed, rgb, axis_names)
    sigma = check_smooth_option(smooth, word("smooth"))  # "auto" (measured per stack by its task) or px
    if auto and sigma == "auto":  # measured for prompted objects only: automatic tracking is not blurred unless told
        sigma = 0.0
    limits = check_contrast_limits(contrast_limits, word("contrast_limits"))
    flip = check_invert(invert, word("invert"))
    size = check_image_size(image_size, word("image_size"))
    window = check_object_window(object_window, word("object_window"))
    direction = _check_direction(direction, auto, word, axis_names)
    chosen = _check_frames(frames)
    if auto:
        tracking_options = dict(_start_given(tracking_options, axis_names, chosen), reverse=direction == "backward")
        if chosen is not None:  # the stack's number of the first frame tracked, as track --auto --frames A-B
            tracking_options.setdefault("start_frame", chosen.start)
        _check_start(tracking_options, axis_names, chosen)
    prompts_dir = _check_prompts_dir(prompts_dir, auto, word)
    in_cluster = client is not None or scheduler is not None
    spec = _model_spec(model, checkpoint, device, size,
                       torch_threads=None if in_cluster else max(1, usable_cores() // workers), name=word)
    out = Path(out).expanduser()
    read_as: List[str] = []  # folders of one CYX / ZYX file per time point, read as one stack: said at the start
    stacks = find_stacks(inputs, exclude=out, exclude_option=word("out"), notes=read_as)
    if auto:  # a cell diameter range that fits no stack's frames: refused from their shapes, before any worker
        check_diameter_fits_a_stack(stacks, axes, tracking_options)
    template = StackTask("", "", str(out.resolve()), spec, None, auto, int(zarr_above_gb * 1024**3),
                         dict(tracking_options), axes, sigma, limits, object_window=window, direction=direction,
                         run=uuid.uuid4().hex[:8], invert=flip,
                         frames=None if chosen is None else (chosen.start, chosen.stop - 1))
    created = prepare_out(out, stacks, word("out"))  # checked and made before the plan, which runs under its lock
    try:
        with out_lock(out, word("out")):  # one run per output folder: its plan and summary stay true
            return _plan_and_run(stacks, out, template, overwrite=overwrite, prompts_dir=prompts_dir, word=word,
                                 client=client, scheduler=scheduler, workers=workers, device=device,
                                 progress=progress, read_as=read_as)
    finally:
        remove_if_empty(out, created)  # a run stopped before it wrote anything (unreachable scheduler, Ctrl-C)


def _check_start(tracking_options: Mapping[str, Any], names: str, chosen: Optional[range] = None) -> None:
    """Automatic tracking backward from frame 0 has nothing to track in any stack: refused before the run (forward
    from the last frame depends on each stack's length: that stack fails). With ``chosen`` (``--frames A-B``) the
    rule of ``track --auto --frames A-B`` (:func:`.batch_worker.start_frame`), the same for every stack: a start
    outside A-B, backward from A or forward from B is refused before the run."""
    start = int(tracking_options.get("start_frame", 0))
    if chosen is not None:
        from .batch_worker import start_in_range

        probe = StackTask("", "", "", ModelSpec(), auto=True, tracking_options=dict(tracking_options),
                          axes=AxisOptions(names=names))
        start_in_range(probe, chosen, DIRECTION_WORDS[names]["start_frame"])
    elif tracking_options.get("reverse") and start == 0:
        check_one_way(0, 2, "backward", f"{DIRECTION_WORDS[names]['start_frame']} 0", names)


def _start_given(tracking_options: Mapping[str, Any], names: str, chosen: Optional[range]) -> Dict[str, Any]:
    """``tracking_options`` with a ``start_frame`` of None left out (None: not given, so the default: frame 0, or the
    first of ``chosen``, as ``track_cells`` takes it); ValueError naming the option for a start frame that is not a
    whole number >= 0 (5.5 is no frame, and is not taken for frame 5)."""
    options = {k: v for k, v in tracking_options.items() if not (k == "start_frame" and v is None)}
    start = options.get("start_frame", 0)
    if isinstance(start, bool) or not isinstance(start, numbers.Integral) or start < 0:
        default = "frame 0" if chosen is None else f"the first frame of the range, {chosen.start}"
        raise ValueError(f"{DIRECTION_WORDS[names]['start_frame']} must be a frame number, a whole number from 0 (the "
                         f"stack's number; left out or None: {default}); got {start!r:.60}")
    return options


def _check_frames(frames: Any) -> Optional[range]:
    """``frames`` (batch's ``frames=(first, last)``, both included, or a range of step 1, e.g. ``--frames A-B``
    parsed by ``track``'s :func:`._cli_auto.frames_option`): range(first, last + 1), None for None. Checked as
    :func:`.api.check_frame_range` checks ``segment(frames=)`` (ValueError naming what was given and what is
    accepted); whether each stack has frame ``last`` is checked per stack (a shorter one fails, naming its frames)."""
    from .api import check_frame_range

    if frames is None:
        return None
    given = (list(frames) if isinstance(frames, (tuple, list)) else
             [frames.start, frames.stop - 1] if isinstance(frames, range) else [])
    if any(isinstance(n, numbers.Integral) and n < 0 for n in given):  # (the check below names a movie's length)
        raise ValueError(f"frames={frames!r}: frames are numbered from 0; give (first, last) with 0 <= first <= "
                         "last, both included")
    if (len(given) == 2 and all(isinstance(n, numbers.Integral) for n in given) and given[0] <= given[1]
            and given[1] >= sys.maxsize):  # no stack has that frame (the check below would name its own limit)
        raise ValueError(f"frames={frames!r:.100}: frame {given[1]} is past the last frame of any stack; give (first, "
                         "last) within the stacks' frames 0-N (N: a stack's last frame, numbered from 0), both "
                         "included")
    return check_frame_range(frames, sys.maxsize)


def _settings(template: StackTask, prompts: Optional[Path]) -> Dict[str, Any]:
    """What decides a stack's result besides the stack itself (``template``: this run's settings; ``prompts``: its
    CSV): recorded in its manifest ("settings") and compared by a rerun (:func:`.batch_outputs.reusable_result`).
    Not among them: the device, threads, ``zarr_above_gb`` (how the labels are stored, not what they are)."""
    model = template.model
    weights = Path(model.checkpoint) if model.checkpoint and os.path.isabs(model.checkpoint) else None
    axes = asdict(template.axes)
    axes.pop("names")  # (only how messages name the options)
    return as_recorded({
        "mode": "auto" if template.auto else "prompts", "prompts": prompts_fingerprint(prompts),
        "model": model.model, "checkpoint": model.checkpoint,
        "checkpoint_file": None if weights is None else file_fingerprint(weights), "image_size": model.image_size,
        "object_window": None if template.auto else template.object_window, "direction": template.direction,
        "tracking_options": tracking_settings(template.tracking_options) if template.auto else {},
        "axes": axes, "smooth": template.smooth, "contrast_limits": template.contrast_limits,
        # only when on: the results of runs before these options (all without them) stay reusable
        **({"invert": True} if template.invert else {}),
        **({"frames": list(template.frames)} if template.frames is not None else {})})


def as_it_records(task: StackTask) -> Dict[str, Any]:
    """``task.settings`` as the manifest of its result records them, to compare with an earlier result's: smooth
    "auto" as the px it comes to on the stack (its first prompted frame measured here, without a model:
    :func:`.batch_worker.measured_smooth`; left "auto", which no result records, where the stack cannot be read)."""
    settings = task.settings
    if settings.get("smooth") != "auto" or task.auto or task.prompts is None:
        return settings
    sigma = measured_smooth(task)
    return settings if sigma is None else dict(settings, smooth=sigma)


def _plan_and_run(stacks: Sequence[Path], out: Path, template: StackTask, *, overwrite: bool,
                  prompts_dir: Optional[Path], word: Any, client: Any, scheduler: Optional[str], workers: int,
                  device: str, progress: bool, read_as: Sequence[str] = ()) -> Any:
    """The run itself, once ``out`` exists and its lock is held: plan (names, reuse), then run the stacks left on
    the cluster; returns this run's rows (a DataFrame). See :func:`batch`. ``read_as``: notes on how input folders
    were read (said at the start with the plan's)."""
    auto, in_cluster = template.auto, client is not None or scheduler is not None
    found: Dict[Path, Dict[str, Any]] = {}  # each stack's prompts CSV and settings, read once

    def settings_of(path: Path) -> Dict[str, Any]:
        if path not in found:
            prompts, error = None, ""
            try:
                prompts = None if auto else find_prompts(path, prompts_dir)
            except AmbiguousPrompts as ambiguous:  # that stack fails with the reason; the others run
                error = str(ambiguous)
            found[path] = {"prompts": prompts, "settings": _settings(template, prompts), "error": error}
        return found[path]["settings"]

    def reuse_settings(path: Path) -> Dict[str, Any]:
        settings, prompts = settings_of(path), found[path]["prompts"]
        return as_it_records(replace(template, path=str(path.resolve()), settings=settings,
                                     prompts=None if prompts is None else str(prompts.resolve())))

    plan = plan_run(stacks, out, overwrite, reuse_settings)
    _fetch_weights(template.model)
    rows: Dict[str, Dict[str, Any]] = {}
    tasks: List[StackTask] = []
    others = _other_rows(plan)
    for path, name in zip(stacks, plan.names):
        if name in plan.reused:
            rows[name] = _earlier_row(str(path), name, plan.reused[name],
                                      f"complete from an earlier run ({word('overwrite')} to redo)")
            continue
        settings = settings_of(path)
        prompts = found[path]["prompts"]
        if found[path]["error"]:
            rows[name] = _row(path, name, "failed", found[path]["error"])
            continue
        if not auto and prompts is None:
            looked = ", ".join(str(p.absolute()) for p in prompt_candidates(path.resolve(), prompts_dir))
            rows[name] = _row(path, name, "failed", f"no prompts CSV (looked for {looked}); or use {word('auto')}")
            continue
        tasks.append(replace(template, name=name, path=str(path.resolve()),
                             prompts=None if prompts is None else str(prompts.resolve()), settings=settings))
    order = {name: i for i, name in enumerate([*plan.names, *sorted(plan.others)])}
    if progress:
        report_start(list(rows.values()), len(plan.names), len(tasks), [*read_as, *plan.notes])

    def ordered(with_others: bool = True) -> List[Dict[str, Any]]:
        """This run's rows in input order, then (``with_others``) the other complete results in ``out``."""
        listed = list(rows.values()) + (others if with_others else [])
        return sorted(listed, key=lambda r: order[r["name"]])

    summary_path = out / "summary.csv"
    if tasks:
        try:
            with client_for(client, scheduler, workers, device, say=progress) as active:
                clean_partials(out, [t.name for t in tasks])
                dashboard = dashboard_line(active) if progress else None
                if dashboard:
                    print(f"napari-sam2 batch: {dashboard}", file=sys.stderr)
                machines = workers_per_machine(active) if in_cluster else ()
                for row in _run_tasks(active, [replace(t, host_workers=machines) for t in tasks], progress):
                    rows[row["name"]] = row
                    write_summary(ordered(), summary_path)
        except KeyboardInterrupt as stop:
            raise _interrupted(out, rows, plan, tasks, in_cluster, stop, word("overwrite") if overwrite else "") \
                from None
        clean_partials(out, [t.name for t in tasks])  # attempts of killed workers (their retries are done)
    write_summary(ordered(), summary_path)
    remove_partial_root(out)
    import pandas as pd

    return pd.DataFrame(ordered(with_others=False), columns=SUMMARY_COLUMNS)


def _other_rows(plan: RunPlan) -> List[Dict[str, Any]]:
    """summary.csv rows of the complete results in the output folder whose stacks are not among this run's."""
    return [_earlier_row(record["stack"], name, record, "complete from an earlier run; not among this run's inputs")
            for name, record in plan.others.items()]


def _interrupted(out: Path, rows: Dict[str, Dict[str, Any]], plan: RunPlan, tasks: Sequence[StackTask],
                 in_cluster: bool, stop: BaseException, overwrite: str = "") -> BatchInterrupted:
    """After Ctrl-C or SIGTERM (``stop``): the summary lists what is complete in ``out`` (this run's finished stacks,
    and the earlier results of stacks ``overwrite`` had not redone yet); partial attempts of a local cluster (now shut
    down) are removed. Returns the exception that says so (and, after ``overwrite``, what a run without it does)."""
    earlier, current = 0, []
    for task in tasks:
        if task.name not in rows:  # not finished: its earlier result (with --overwrite) is still complete
            record, _ = reusable_result(out / task.name, Path(task.path))
            if record is not None and record.get("run") == task.run:  # finished by a worker as the run stopped
                rows[task.name] = _earlier_row(task.path, task.name, record, "")
                rows[task.name]["status"] = "ok"
            elif record is not None:
                rows[task.name] = _earlier_row(task.path, task.name, record, "interrupted before it was redone; "
                                                                             "the result of an earlier run is kept")
                earlier += 1
                if reusable_result(out / task.name, Path(task.path), settings=as_it_records(task))[0] is not None:
                    current.append(task.name)  # a run without overwrite skips it
    order = {name: i for i, name in enumerate([*plan.names, *sorted(plan.others)])}
    listed = sorted([*rows.values(), *_other_rows(plan)], key=lambda r: order[r["name"]])
    if listed and out.is_dir():
        write_summary(listed, out / "summary.csv")
    if not in_cluster:
        clean_partials(out, [task.name for task in tasks])
        remove_partial_root(out)
    complete = sum(row["status"] in ("ok", "skipped") for row in rows.values())
    return BatchInterrupted(out, complete, sum(row["status"] == "failed" for row in rows.values()),
                            len(plan.names), summary=bool(listed) and out.is_dir(), earlier=earlier,
                            by="SIGTERM" if isinstance(stop, Terminated) else "Ctrl-C", overwrite=overwrite,
                            current=current)


def _run_tasks(client: Any, tasks: Sequence[StackTask], progress: bool) -> Iterator[Dict[str, Any]]:
    """Submit one task per stack; yield summary rows as tasks finish (a dead worker is a failed row)."""
    from distributed import as_completed

    from .batch_worker import PROGRESS_TOPIC

    run = tasks[0].run or uuid.uuid4().hex[:8]
    console = Console(len(tasks), run, progress)
    if progress:
        client.subscribe_topic(PROGRESS_TOPIC, console.event)
    futures = {client.submit(process_stack, replace(task, run=run), key=f"napari-sam2-{task.name}-{run}",
                             pure=False): task for task in tasks}
    try:
        for future in as_completed(futures):
            task = futures[future]
            try:
                row = future.result()
            except Exception as error:  # KilledWorker (process died: out of memory, killed), lost connection
                row = _row(Path(task.path), task.name, "failed", f"{type(error).__name__}: {error}")
            console.stack_row(task.name, row)
            row.setdefault("reason", "")
            console.stack_done(task.name)
            yield row
    finally:
        if progress:
            client.unsubscribe_topic(PROGRESS_TOPIC)
        console.close()
        for future in futures:
            future.release()
