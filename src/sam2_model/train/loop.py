"""The training loop: AdamW with warm-up and cosine decay, gradient clipping, resumable checkpoints.

A run lives in one folder: ``last.pt`` (model, optimiser, step, data position, settings, and the run's record as
``"record"``; written atomically every ``save_every`` steps and at the end), ``history.csv`` (one row per step) and
``weights.pt`` (``{"model": state_dict}`` in the official format, loadable by ``build_model``, with the run's record
as ``"record"`` beside it) with that record as ``weights.json`` beside it (steps, wall time, data, settings such as the
input size, and the machine of every invocation). One record, whoever started the run (``sam2-train``, :func:`train`,
the fine-tuning widget): at the end of a call last.pt, weights.pt and weights.json hold the same one. A call writes
last.pt once at its end (its final state with that record), before weights.pt: a run killed while its weights are
written resumes with no step to train, as a finished run counts only beside weights.pt of its last step
(:func:`.run_folder.weights_written`). A call that ends with a check on the user's frames saves last.pt before the
check too, what stopped it not yet said (None, as a periodic save), and again with the check's record after weights.pt
is written: a run killed during its check resumes to make it. :func:`sam2_model.run_record.resume_record` reads
last.pt's record without torch.
Running again with the same folder resumes where it stopped, bit for bit in the data it sees.
``time_limit`` bounds one invocation's wall time: the run then stops cleanly after the current step
(checkpoint and weights written, ``stopped_by: "time_limit"`` in the metadata) and resumes on the next call.
On CUDA, float32 matmuls and convolutions use TF32.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from ..atomic_files import atomic_file, write_failed
from ..build import build_model, load_checkpoint, resolve_device
from ..modeling.sam2 import SAM2Model
from ..run_record import weights_run_record  # noqa: F401 (its home was here: package imports it from here)
from .ctc_training import is_ctc_ground_truth, read_ctc_training, segmented_frames
from .data import DATA_KINDS, MixedClips, StackClips, SyntheticClips, describe_training_data, frames_as_seen
from .episode import EpisodeSettings, run_episode
from .frame_options import FrameOptions, check_finite_frames
from .hold_out import check_held_out, parse_frame_range, read_ctc_held_out, split_off
from .interrupt import DeferredInterrupt, TrainingInterrupted
from .machine import describe_machine, enable_tf32
from .resolutions import ALTERNATE_SEED_OFFSET, model_sharing_parameters
from .run_folder import (RunConflict, RunFinished, check_run_folder, finished_run_words,  # noqa: F401
                         finished_words, make_run_folder, run_differences, run_is_finished, run_lr, run_warmup,
                         saved_step)  # (re-exported: their home was here; the checks of a run folder need no torch)
from .settings import FINE_TUNING_LR, TrainSettings, fine_tuning_warmup  # noqa: F401 (re-exported: their home was here)
from .stack_check import check_stack
from .stack_labels import frame_list

# seconds: training time so far (steps only, across invocations); data_seconds: this step's wait for clips
# image_size: the input size the step ran at (see alternate_image_size)
HISTORY_FIELDS = ("step", "seconds", "lr", "total", "focal", "dice", "iou", "object_score", "mask_iou",
                  "data_seconds", "image_size")


@torch.no_grad()
def positional_attention_init(model: SAM2Model, gain: float = 2.0) -> None:
    """Start the mask decoder's prompt<->image cross-attentions with equal query and key projections.

    Queries and keys both carry the prompt encoder's random Fourier position encoding (of the pixel and
    of the click), so with W_q = W_k their dot product contains the encoding's shift-invariant kernel:
    each pixel attends most to the clicks near it from the first step on. From a plain random
    initialisation this locality has to be discovered, and in our runs on two CPU cores the model
    ignored the click for the first several hundred steps. Only used when training starts from random
    weights; an initialisation choice, not a change of the architecture.
    """
    decoder = model.sam_mask_decoder.transformer
    attentions = [decoder.final_attn_token_to_image]
    for layer in decoder.layers:
        attentions += [layer.cross_attn_token_to_image, layer.cross_attn_image_to_token]
    for attention in attentions:
        if attention.q_proj.weight.shape != attention.k_proj.weight.shape:
            continue
        attention.q_proj.weight.mul_(gain)
        attention.k_proj.weight.copy_(attention.q_proj.weight)
        attention.k_proj.bias.zero_()
        attention.q_proj.bias.zero_()


@torch.no_grad()
def memory_attention_locality_init(model: SAM2Model, bias: float = 0.5) -> None:
    """Give memory attention's RoPE attentions equal constant query and key biases.

    With q = W_q x + b and k = W_k m + b, the score q . k contains sum_c b_c^2 cos(theta_c * (p - p')),
    RoPE's kernel peaked where the memory's position p' equals the pixel's p: from the first step on,
    each pixel of the current frame reads mostly the memory at its own place (where the object was),
    which is what tracking slow movement needs; content terms are learned on top.
    """
    for layer in model.memory_attention.layers:
        for attention in (layer.self_attn, layer.cross_attn_image):
            attention.q_proj.bias.fill_(bias)
            attention.k_proj.bias.fill_(bias)


def learning_rate_factor(step: int, settings: TrainSettings) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_lr_ratio`` at ``steps``."""
    if step < settings.warmup_steps:
        return (step + 1) / settings.warmup_steps
    span = max(1, settings.steps - settings.warmup_steps)
    progress = min(1.0, (step - settings.warmup_steps) / span)
    return settings.min_lr_ratio + (1 - settings.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def short_run_warning(settings: TrainSettings, resumed: bool = False) -> Optional[str]:
    """Why the learning rate of a run with ``settings`` never reaches ``lr``: fewer steps than its warm-up (a
    ``resumed`` run keeps the warm-up it started with, so giving it fewer steps than it started with does this); None
    when it reaches it. Nothing changes in the run: this is for the message before it starts."""
    if settings.steps >= settings.warmup_steps:
        return None
    reached = learning_rate_factor(settings.steps - 1, settings) if settings.steps > 0 else 0.0
    whose = "this run's warm-up, kept when it resumes" if resumed else "its warm-up"
    return (f"the learning rate rises over {settings.warmup_steps} steps ({whose}), more than the run's "
            f"{settings.steps} step{'s' * (settings.steps != 1)}: it reaches only {reached:.0%} of lr {settings.lr:g}; "
            f"give at least {settings.warmup_steps} steps to train at the full rate")


def make_clips(
    settings: TrainSettings, image_size: int, stack: Any = None, labels: Any = None
) -> "SyntheticClips | MixedClips | StackClips":
    """The run's clip stream: a user's stack and labels (arrays, TIFF paths, or a Cell Tracking Challenge sequence
    folder and its ground-truth folder: :mod:`.ctc_training`) or synthetic clips
    (``settings.data``: "nuclei", the microscopy "mix", "leaps": the mix's nuclei and cells, all leaping far
    between frames, "spread-cells": the mix with fluorescent whole cells in 40 % of its clips, or "crowded-nuclei":
    crowded fluorescent nuclei in 40 % of them; made at the model's input size). A user's frames go through
    :class:`~sam2_model.frames.FrameSource` with the settings' frame options (smooth, contrast_limits, invert,
    channel, channel_axis: :class:`.data.FrameOptions`), as segmentation shows them to the model."""
    stack = settings.stack if stack is None else stack
    labels = settings.labels if labels is None else labels
    if (stack is None) != (labels is None):
        raise ValueError("give both a stack and its labels to train on your own data, or neither for synthetic data")
    if settings.hold_out is not None and stack is None:
        raise ValueError("hold_out keeps frames of your own stack out of training: give a stack and its labels")
    if settings.data not in DATA_KINDS:
        raise ValueError(f"data must be one of {DATA_KINDS}, got {settings.data!r}")
    if stack is None and settings.data != "nuclei":
        # every curriculum keeps 15 % nuclei clips: without them the synthetic bars fell to 0.74 (leaps)
        return MixedClips(settings.clip_len, image_size, settings.max_objects, seed=settings.seed,
                          workers=settings.data_workers, contrast_jitter=settings.contrast_jitter,
                          curriculum=settings.data)
    if stack is None:
        return SyntheticClips(settings.clip_len, image_size, settings.max_objects, seed=settings.seed,
                              contrast_jitter=settings.contrast_jitter)
    options = FrameOptions.of(settings)
    parents, held, limits = None, None, None
    frames = None if settings.hold_out is None else parse_frame_range(settings.hold_out)
    if isinstance(labels, (str, os.PathLike)) and Path(labels).is_dir():  # read as CTC ground truth, or refused
        ctc = read_ctc_training(stack, labels)
        check_finite_frames(ctc.stack, ctc.frames)  # named by the sequence's t%03d numbers
        if options.given:  # the segmented frames as segmentation would show them (limits from these frames)
            seen, limits = frames_as_seen(ctc.stack, options, image_size)
            ctc = dataclasses.replace(ctc, stack=seen)
        if frames is not None:
            held = read_ctc_held_out(stack, labels, frames, truth=ctc)  # its segmented frames not read again
            check_finite_frames(held.stack, range(frames.first, frames.last + 1))
            if options.given:
                held = dataclasses.replace(held, stack=frames_as_seen(held.stack, options, image_size, limits)[0])
            kept = [i for i, t in enumerate(ctc.frames) if t not in frames]
            if not kept:
                raise ValueError(f"hold_out {frames} leaves no segmented frame to train on: {labels} segments frames "
                                 f"{frame_list(np.asarray(ctc.frames))}; hold out fewer frames")
            ctc = dataclasses.replace(ctc, stack=ctc.stack[kept], labels=ctc.labels[kept],
                                      frames=[ctc.frames[i] for i in kept])
        stack, labels, parents = ctc.stack, ctc.labels, ctc.parents
    else:
        if isinstance(stack, (str, os.PathLike)):
            if options.channel is not None and options.channel_axis is None:  # a TIFF that says where its channels
                options = dataclasses.replace(options, channel_axis=_tiff_channel_axis(stack))  # are, as track reads it
            stack, labels = _read_tiff(stack, "stack"), _read_tiff(labels, "labels")
        check_finite_frames(stack)  # every frame, the held-out ones too (the check after the run tracks on them)
        if options.given:  # every frame as segmentation shows it, the limits from the whole stack as at inference
            stack, limits = frames_as_seen(stack, options, image_size)
    if frames is not None and held is None:
        labels, held = split_off(stack, labels, frames, link_ids=settings.link_ids)
    return StackClips(stack, labels, settings.clip_len, image_size, settings.max_objects, seed=settings.seed,
                      parents=parents, augment=settings.augment, link_ids=settings.link_ids, held_out=held,
                      limits=limits, invert=options.invert)


def _read_tiff(path: "str | os.PathLike[str]", name: str) -> np.ndarray:
    """The TIFF at ``path`` (the run's ``name``: "stack" or "labels") as an array; a ValueError naming the setting
    and the file when tifffile cannot read it (another format, a damaged file)."""
    import tifffile

    try:
        return tifffile.imread(path)
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as error:  # tifffile.TiffFileError is a ValueError
        raise ValueError(f"{name} {path}: cannot be read as a TIFF ({error}); give a (T, H, W) TIFF or a Cell "
                         "Tracking Challenge sequence folder") from None


def _tiff_channel_axis(path: "str | os.PathLike[str]") -> Optional[int]:
    """The channel axis that the TIFF at ``path`` names in its axes ("TCYX": 1, "TZCYX" has no place here), as
    :class:`~sam2_model.frames.FrameSource` reads it from a file; None when it names none or cannot be read."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            axes = tif.series[0].axes
    except (OSError, ValueError, IndexError):
        return None
    return axes.find("C") if len(axes) == 4 and axes.find("C") in (1, 2) else None


def atomic_save(payload: Dict[str, Any], path: Path) -> None:
    """torch.save ``payload`` to ``path`` through a hidden temporary file beside it (:func:`atomic_file`), so a reader
    never sees half a file; an error or a second Ctrl-C during the save removes the temporary file (``path`` stays as
    it was). A save that fails (a folder that became unwritable, a full drive) is an OSError naming ``path`` and its
    folder (torch's own RuntimeError, C++ text and no file name, is its ``__cause__``)."""
    try:
        with atomic_file(path) as temporary:
            torch.save(payload, temporary)
    except RuntimeError as error:  # torch's C++ writer: "[enforce fail at inline_container.cc:...] ..."
        raise write_failed(path, str(error)) from error


def export_weights(model: SAM2Model, path: Path, metadata: Optional[Dict[str, Any]] = None) -> None:
    """Write ``{"model": state_dict}`` (float32, the official layout) and, if given, ``path``.json metadata, which the
    file also holds as ``"record"`` beside ``"model"`` (plain JSON values, loadable with ``weights_only=True``), so a
    weights.pt copied without its JSON still tells ``build_model`` its trained input size and steps. Both files are
    written under hidden temporary names (:func:`atomic_file`): the JSON first, then the .pt is saved and renamed into
    place, then the JSON, so an error leaves both as they were and a kill leaves at most an outdated JSON beside new
    weights (``build_model`` then uses the record inside the .pt and warns)."""
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    if metadata is None:
        atomic_save({"model": state}, path)
        return
    text = json.dumps(metadata, indent=2) + "\n"
    with atomic_file(path.with_suffix(".json")) as temporary:
        temporary.write_text(text)
        atomic_save({"model": state, "record": json.loads(text)}, path)


def data_description(settings: TrainSettings, source: Any = None) -> str:
    """What a run trains on, for its metadata; ``source``: the run's clip stream (a user's stack handed over as
    arrays, as the fine-tuning widget does, has no path in the settings)."""
    user_stack = isinstance(source, StackClips)
    if user_stack and not settings.stack:
        _, height, width = source.stack.shape
        described = (f"user image of {height} x {width} given as an array, with its labels" if source.total_frames == 1
                     else f"user stack of {source.total_frames} x {height} x {width} frames given as arrays, with its "
                     "labels")
    else:
        described = describe_training_data(dataclasses.asdict(settings))
    if user_stack and settings.labels and is_ctc_ground_truth(settings.labels):
        held = None if source.held_out is None else source.held_out.frames  # those are not trained on: not listed
        trained = np.array([t for t in segmented_frames(settings.labels) if held is None or t not in held], int)
        described += (f"; Cell Tracking Challenge ground truth: the segmentation truth of frames "
                      f"{frame_list(trained)}, each cell under its tracking id")
    if user_stack and len(source.frames) < source.total_frames:
        described += (f"; its {len(source.frames)} annotated frames ({frame_list(source.frames)}), those with no "
                      "label left out")
    if user_stack and source.held_out is not None:
        described += f"; frames {source.held_out.frames} held out (not trained on; held_out_check)"
    if user_stack and source.link_ids:
        described += "; ids linked from frame to frame by overlap"
    if user_stack and source.augment:
        described += "; each clip turned by a multiple of 90 degrees and mirrored at random"
    options = FrameOptions.of(settings).words() if user_stack else ""
    if options:
        described += f"; frames as segmentation with these options shows them: {options}"
    return described


def recorded_settings(settings: TrainSettings, source: Any) -> Dict[str, Any]:
    """``settings`` as a run records them (last.pt, weights.json): a run on a user's stack (``source`` a
    :class:`StackClips`) records ``data`` None, not the synthetic kind it did not train on (the stack is its data)."""
    recorded = dataclasses.asdict(settings)
    if isinstance(source, StackClips):
        recorded["data"] = None
    return recorded


def trained_parameters(model: torch.nn.Module, train_only: Optional[str]) -> List[Tuple[str, torch.nn.Parameter]]:
    """The (name, parameter) pairs a run trains: all of them, or with ``train_only`` ("a.b,c") those whose
    names start with one of its comma-separated prefixes; the others get ``requires_grad=False``.

    A recalibration stage, for example, trains only the decoder's IoU head:
    ``train_only="sam_mask_decoder.iou_prediction_head"``. A prefix that names no parameter is an error
    that lists the model's top-level parts.
    """
    named = list(model.named_parameters())
    if train_only is None:
        return named
    prefixes = [p.strip() for p in str(train_only).split(",") if p.strip()]
    tops = sorted({name.split(".")[0] for name, _ in named})
    if not prefixes:
        raise ValueError(f"train_only: no parameter-name prefix given (e.g. 'sam_mask_decoder'; "
                         f"parts: {', '.join(tops)})")
    def under(name: str, prefix: str) -> bool:
        return name == prefix or name.startswith(prefix.rstrip(".") + ".")

    for prefix in prefixes:
        if not any(under(name, prefix) for name, _ in named):
            raise ValueError(f"train_only: {prefix!r} names no parameter of the {type(model).__name__}; "
                             f"prefixes start with one of its parts: {', '.join(tops)}")
    chosen = []
    for name, parameter in named:
        keep = any(under(name, prefix) for prefix in prefixes)
        parameter.requires_grad_(keep)
        if keep:
            chosen.append((name, parameter))
    return chosen


class NonFiniteLoss(ValueError):
    """A step's loss or gradient became NaN or infinite: the run stopped before that step changed the weights (its
    ``last.pt`` stays the last save, every step of it finite; no weights.pt is written)."""


def non_finite_message(settings: TrainSettings, step: int, loss: float, saved: Optional[int]) -> str:
    """What a run stopped at ``step`` by a non-finite ``loss`` (or gradient) did and what to try; ``saved``: the step
    of the run's last save (None: none yet)."""
    what = f"its loss is {loss:g}" if not math.isfinite(loss) else f"its gradient is not finite (loss {loss:g})"
    kept = (f"{Path(settings.out) / 'last.pt'} still holds the run at step {saved}, its last save" if saved is not None
            else "no step of this run was saved yet")
    return (f"training stopped at step {step} of {settings.steps}: {what}, and that step would have made the weights "
            f"NaN, so it was not taken and no weights.pt was written; {kept}. A learning rate too large for these "
            f"weights does this: start a new run folder with a lower learning rate (now {settings.lr:g}, e.g. "
            f"{settings.lr / 10:g}), or check the frames for extreme values")


def _resume_state(last: Path) -> Dict[str, Any]:
    """The run's resume file ``last`` as saved; a :class:`RunConflict` naming it when it cannot be read (cut short,
    emptied, not a training checkpoint), instead of torch's traceback."""
    try:
        state = torch.load(last, map_location="cpu", weights_only=False)
    except Exception as error:  # zip, pickle and unpickler errors all mean: not a usable resume file
        detail = (str(error).strip().splitlines() or [""])[0][:200]
        raise RunConflict(f"{last} cannot be read as a run's resume file ({type(error).__name__}: {detail}; "
                          f"{last.stat().st_size} bytes): start a new run folder, or move it away to start this run "
                          "again from its first step") from None
    if not isinstance(state, dict) or "step" not in state or "model" not in state:
        raise RunConflict(f"{last} is not a run's resume file (sam2-train writes last.pt with the model, optimiser "
                          "and step): start a new run folder")
    return state


def _json_plain(value: Any) -> Any:
    """``json.dumps``'s ``default`` for a run's record: a setting given as a NumPy number (``steps=np.int64(2)``) or
    array becomes its plain value (``.item()``, ``.tolist()``), a path (``init=Path(...)``) its text; anything else
    raises TypeError naming its type."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"a run's record holds plain values (numbers, text, paths, lists, dicts), not "
                    f"{type(value).__name__} ({value!r:.80})")


def _session_record(machine: Dict[str, Any], start_step: int) -> Dict[str, Any]:
    """The record of one invocation of :func:`train` (kept in ``last.pt`` and the weights' metadata)."""
    return {"started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine, "start_step": start_step, "end_step": start_step,
            "train_seconds": 0.0, "wall_seconds": 0.0, "stopped_by": None}


def train(
    settings: TrainSettings,
    stack: Any = None,
    labels: Any = None,
    progress: Optional[Callable[[int, Dict[str, float]], bool]] = None,
) -> SAM2Model:
    """Run (or resume) training as ``settings`` say; returns the trained model.

    progress(step, row) is called after every step; returning False stops the run early (it is
    saved and can be resumed); returned after the last step it stops nothing: the run is finished, as without it, and
    makes its final check (a Cancel that landed during the last step). A Ctrl-C (or SIGTERM under ``sam2-train``)
    stops the run after the step it lands in; one that lands in the last step stops only the final check on a user's
    stack (recorded "interrupt" at its last step: not finished, and resuming trains no step, makes the check and
    writes the finished weights), and stops nothing where no check follows (synthetic clips: the run is finished).
    Without it a tqdm bar shows the loss. With ``settings.time_limit``, the run stops the same way once this call has
    run that many seconds (wall time from the call, set-up included). A run on a user's stack that completes its
    steps records ``stack_check`` in the weights' metadata (:mod:`.stack_check`: tracked IoU on the stack's first
    frames, starting against fine-tuned weights).
    """
    invoked = time.perf_counter()
    out = Path(settings.out)
    # Tiny gradients and activations become subnormal floats as training converges; on CPUs their
    # arithmetic is slow (measured: 3x slower steps). Flushing them to zero changes nothing that matters.
    torch.set_flush_denormal(True)
    device = resolve_device(settings.device)
    if device.type == "cuda":
        enable_tf32()
    torch.manual_seed(settings.seed)  # the random initialisation is part of the run's seed
    model = build_model(settings.model, checkpoint="random", device="cpu", image_size=settings.image_size)
    trained = trained_parameters(model, settings.train_only)  # checked before anything is written
    source = make_clips(settings, model.image_size, stack, labels)  # so is the user's stack
    last = out / "last.pt"
    state: Optional[Dict[str, Any]] = None
    if last.exists():
        state = _resume_state(last)
        held_before = state.get("settings", {}).get("hold_out")
        if held_before != settings.hold_out:  # else the held-out frames would be trained on, or some never
            raise RunConflict(f"{last} is a run that held out {held_before or 'no frames'}; resume it with the same "
                              f"hold_out ({'none' if held_before is None else held_before}) or start a new run folder")
        fingerprint = state.get("data_fingerprint")  # runs saved before 2026-12-06 have none (not even the key)
        given = source.fingerprint() if isinstance(source, StackClips) else None
        data = (fingerprint, given) if "data_fingerprint" in state else None
        # settings first: other frame options (smoothing, a channel) change the frames the fingerprint digests too,
        # and the user should read which option differs, not that the data changed
        differences = run_differences(state.get("settings", {}), settings, data)
        if differences:  # else weights.json would record settings the run did not train with
            listed = ", ".join(f"{name} {before!r} (not {now!r})" if name != "training data" else
                               f"{name} {before} (not {now})" for name, before, now in differences)
            raise RunConflict(f"{last} is a run with {listed}: resume it with its own settings and data (only steps, "
                              "time_limit, device, data_workers, save_every and batch_clips may change, and where "
                              "the same stack and labels are read from) or start a new run folder")
        if fingerprint is not None and given is not None and fingerprint != given:
            raise RunConflict(f"{last} is a run on other frames or labels than these (the stack or its labels changed "
                              "since it started): start a new run folder, or resume it with the same data")
        done, sessions_before = int(state["step"]), state.get("sessions") or [{}]
        last_stop = sessions_before[-1].get("stopped_by")
        if run_is_finished(done, last_stop, settings):
            raise RunFinished(finished_words(out, done, last_stop, settings.steps))
        model.load_state_dict(state["model"])
    elif settings.init is not None:
        load_checkpoint(model, settings.init)
    elif settings.positional_init:
        positional_attention_init(model)
    starting = state is None
    local_memory = settings.init is None if settings.memory_positional_init is None else settings.memory_positional_init
    if starting and local_memory:
        memory_attention_locality_init(model)
    make_run_folder(out)  # only now: a refused stack, run or starting checkpoint leaves no folder behind
    model.to(device).train()
    decay = [p for n, p in trained if p.ndim >= 2 and "pos_embed" not in n]
    no_decay = [p for n, p in trained if not (p.ndim >= 2 and "pos_embed" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.lr,
    )
    step, elapsed, failed_loss = 0, 0.0, math.nan
    alternate, alternate_source = None, None
    if settings.alternate_image_size is not None:
        alternate = model_sharing_parameters(model, settings.model, settings.alternate_image_size)
        alternate_source = make_clips(dataclasses.replace(settings, seed=settings.seed + ALTERNATE_SEED_OFFSET),
                                      alternate.image_size, stack, labels)
    rng = np.random.default_rng(settings.seed)
    sessions = []
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        step, elapsed = int(state["step"]), float(state["seconds"])
        rng.bit_generator.state = state["rng"]
        source.restore(state["clip_position"])
        if alternate_source is not None and state.get("alternate_clip_position") is not None:
            alternate_source.restore(state["alternate_clip_position"])
        sessions = list(state.get("sessions", []))
    recorded = recorded_settings(settings, source)
    session = _session_record(describe_machine(device), step)
    if not sessions:  # the run starts: its id, in every record of it (run_folder.same_run tells its weights.pt from
        session["run_id"] = uuid.uuid4().hex  # an earlier run's in the same folder)
    sessions.append(session)
    session_start_seconds = elapsed

    data_words = data_description(settings, source)

    def record_now(check: Any = None, held_check: Any = None) -> Dict[str, Any]:
        """The run's training record as of now, in plain JSON values: weights.pt (inside), weights.json and last.pt
        hold it, whoever started the run (sam2-train, train(), the fine-tuning widget). ``stopped_by`` is the
        session's: None while the run is under way (a periodic save)."""
        session.update(end_step=step, train_seconds=round(elapsed - session_start_seconds, 2),
                       wall_seconds=round(time.perf_counter() - invoked, 2))
        return json.loads(json.dumps({
            "preset": settings.model, "steps": step, "train_seconds": round(elapsed, 1),
            "wall_seconds": round(sum(s["wall_seconds"] for s in sessions), 1),
            "stopped_by": session["stopped_by"], "data": data_words,
            "machine": session["machine"], "torch": str(torch.__version__), "sessions": sessions,
            "date": datetime.date.today().isoformat(), "settings": recorded,
            "stack_check": None if check is None else check.as_dict(),
            "held_out_check": None if held_check is None else held_check.as_dict(),
        }, default=_json_plain))

    def save_checkpoint(record: Optional[Dict[str, Any]] = None) -> None:
        """Save the run to last.pt, with ``record`` (default: :func:`record_now`) as its ``"record"``."""
        record = record_now() if record is None else record
        atomic_save({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
            "seconds": elapsed, "rng": rng.bit_generator.state, "clip_position": source.position(),
            "alternate_clip_position": None if alternate_source is None else alternate_source.position(),
            "settings": recorded, "sessions": record["sessions"], "record": record,
            "data_fingerprint": source.fingerprint() if isinstance(source, StackClips) else None,
        }, last)

    clips = iter(source)
    alternate_clips = None if alternate_source is None else iter(alternate_source)
    episode = EpisodeSettings(settings.click_prob, settings.box_prob, settings.max_corrections)
    history_path = out / "history.csv"
    if history_path.exists():  # drop rows logged after the checkpoint we resume from
        with history_path.open(newline="") as handle:
            kept = [row for row in csv.DictReader(handle) if int(row["step"]) <= step]
        with history_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS)
            writer.writeheader()
            writer.writerows(kept)
    new_history = not history_path.exists()
    final_check = isinstance(source, StackClips)  # a run on the user's stack ends with a check on its frames
    bar = None
    if progress is None:
        from tqdm.auto import tqdm

        bar = tqdm(total=settings.steps, initial=step, desc="training", unit="step")
    with history_path.open("a", newline="") as history_file, DeferredInterrupt() as interrupt:
        writer = csv.DictWriter(history_file, fieldnames=HISTORY_FIELDS)
        if new_history:
            writer.writeheader()
        while step < settings.steps:
            if settings.time_limit is not None and time.perf_counter() - invoked >= settings.time_limit:
                session["stopped_by"] = "time_limit"
                break
            if interrupt.requested:  # asked to stop before the first step (SIGTERM during set-up: stop_on_sigterm)
                session["stopped_by"] = "interrupt"
                break
            started = time.perf_counter()
            factor = learning_rate_factor(step, settings)
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * factor
            torch.manual_seed(settings.seed * 1_000_003 + step)  # dropout: the same on resume
            on_alternate = alternate is not None and step % 2 == 1
            stepping, stream = (alternate, alternate_clips) if on_alternate else (model, clips)
            batch = [next(stream) for _ in range(settings.clips_per_step)]
            data_seconds = time.perf_counter() - started
            losses = run_episode(stepping, batch, rng, episode, batch_clips=settings.batch_clips)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            norm = torch.nn.utils.clip_grad_norm_([p for _, p in trained], settings.grad_clip)
            if not (torch.isfinite(losses["total"]) and torch.isfinite(norm)):  # the update would make weights NaN
                session["stopped_by"], failed_loss = "non_finite", float(losses["total"].detach())
                break
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # count this step's GPU work in its own time
            step += 1
            elapsed += time.perf_counter() - started
            row = {"step": step, "seconds": round(elapsed, 2), "lr": settings.lr * factor}
            row.update({k: round(float(v.detach()), 5) for k, v in losses.items()})
            row["data_seconds"] = round(data_seconds, 3)
            row["image_size"] = stepping.image_size
            writer.writerow(row)
            history_file.flush()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{row['total']:.3f}", iou=f"{row['mask_iou']:.2f}")
            elif progress(step, row) is False and step < settings.steps:  # after the last step a stop stops
                session["stopped_by"] = "progress"  # nothing: the run is finished and makes its final check
                break
            if interrupt.requested and (step < settings.steps or final_check):  # after the last step it stops the
                session["stopped_by"] = "interrupt"  # final check alone, and nothing where none follows
                break
            if step % settings.save_every == 0 and step < settings.steps:
                save_checkpoint()
    if bar is not None:
        bar.close()
    if session["stopped_by"] == "non_finite":  # nothing of that step is kept; last.pt stays the last good save
        raise NonFiniteLoss(non_finite_message(settings, step + 1, failed_loss, saved_step(last)))
    stopped_by = session["stopped_by"] or "steps"
    model.eval()
    held_check = None
    if not (final_check and stopped_by == "steps"):
        # no check follows: the final record is known, and last.pt is written once, before the weights: a run killed
        # while they are written resumes with no step to train (it counts as finished only beside weights.pt of this
        # step: run_folder.weights_written)
        session["stopped_by"] = stopped_by
        if final_check:  # its check on the user's frames not made (a Ctrl-C after the last step: not finished)
            session["final_check"] = "skipped"
        record = record_now()
        save_checkpoint(record)
        export_weights(model, out / "weights.pt", record)
        if stopped_by == "interrupt":
            raise TrainingInterrupted(step, interrupt.requested_by or "Ctrl-C", settings.steps)
        return model
    # resumable from here, its stop not yet recorded: a run killed or failing during its check or the weights' write
    # resumes with 0 steps to finish it, instead of counting as finished beside no (or an earlier call's) weights.pt
    session["stopped_by"] = None
    save_checkpoint()
    start = None
    if settings.init is not None:
        start = build_model(settings.model, checkpoint="random", device="cpu", image_size=settings.image_size)
        load_checkpoint(start, settings.init)
        start.to(device).eval()
    seen = dict(limits=source.given_limits, invert=source.invert)  # the frames as training mapped them
    check = check_stack(model, start, source.stack, source.labels, **seen)
    if source.held_out is not None:
        held_check = check_held_out(model, start, source.held_out, **seen)
    session["stopped_by"] = stopped_by
    session["final_check"] = "made"
    record = record_now(check, held_check)
    export_weights(model, out / "weights.pt", record)
    save_checkpoint(record)  # the final state again, with the check in its weights' record: resumable from here
    return model
