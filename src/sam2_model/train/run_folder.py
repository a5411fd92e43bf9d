"""A run folder before training, without torch: can a run be written there (:func:`check_run_folder`), which run
does it hold and may these settings resume it (:func:`run_differences`, :func:`run_is_finished`), the warm-up and
learning rate it keeps (:func:`run_warmup`, :func:`run_lr`). The fine-tuning widget asks these on napari's GUI thread
before a run starts, and ``sam2-train`` before it trains; :mod:`.loop` (which imports torch) re-exports them and
:func:`~.loop.train` makes the same checks. Nothing here imports torch, not even when called: a run's ``last.pt`` and
its weights' record are read by :mod:`sam2_model.run_record` (:func:`~sam2_model.run_record.resume_record`,
:func:`~sam2_model.run_record.weights_run_record`: the pickle alone, no tensor read).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..config import get_config
from ..run_record import resume_record, weights_run_record
from .settings import FRAME_DEFAULTS, TrainSettings, _input_size


# What may change when a run resumes: where and how it runs, and its number of steps (a larger one extends the run).
# Every other setting stays the run's own (weights.json records one set of settings for the whole run); a stack given
# by path may move, its content is checked by fingerprint (and a run never changes between synthetic clips and a stack:
# run_differences names that "training data"). image_size is compared as the size it resolves to (None: the preset's).
RESUME_MAY_CHANGE = ("out", "steps", "time_limit", "device", "data_workers", "save_every", "batch_clips", "stack",
                     "labels")


#: the frame options (:class:`.data.FrameOptions`) as a run saved before they existed trained with them: such a run
#: resumes without them and is refused with them, by name
FRAME_OPTION_DEFAULTS = dict(zip(("smooth", "contrast_limits", "invert", "channel", "channel_axis"), FRAME_DEFAULTS))


class RunConflict(ValueError):
    """The run folder holds a run that these settings or this data cannot resume (nothing was trained or written)."""


class RunFinished(RunConflict):
    """The run folder holds a finished run that the settings do not extend (nothing was trained or written)."""


#: what a run folder refusal asks for (one wording for sam2-train, train() and the fine-tuning widget)
CHOOSE_FOLDER = "choose a folder you can write to"


def check_run_folder(folder: Path) -> None:
    """ValueError unless a run can be written in ``folder``, making nothing: ``folder``, or when it does not exist yet
    the nearest folder above it that does (where it would be made), must be a folder this process can write in. Tried
    by making and deleting a hidden temporary file there, so a read-only drive or an immutable folder is caught
    whoever runs it (root included). The fine-tuning widget calls this before a run starts; :func:`make_run_folder`
    (train()) too, so both say the same. An OSError when a folder on the way cannot even be looked at."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    where = (f"the run folder {folder}" if existing == folder
             else f"{existing} (where the run folder {folder} would be made)")
    if not existing.is_dir():
        raise ValueError(f"{where} is a file: give a folder for the run (checkpoints, history, weights)")
    try:
        handle, probe = tempfile.mkstemp(prefix=".write-check-", dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        reason = error.strerror or str(error)
        if existing == folder:
            raise ValueError(f"cannot write in the run folder {folder} ({reason}): {CHOOSE_FOLDER}") from None
        raise ValueError(f"cannot make the run folder {folder} (cannot write in {existing}: {reason}): "
                         f"{CHOOSE_FOLDER}") from None


def make_run_folder(out: Path) -> None:
    """Create the run folder ``out`` (with its parents) once :func:`check_run_folder` passed, before a step is
    trained: a one-line ValueError naming the folder (a file of that name, a folder the user may not write in, a
    read-only drive) instead of an OSError at the first save. The checks leave nothing behind; a refused folder is not
    made."""
    check_run_folder(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # e.g. the drive filled or the folder above was locked since the check
        raise ValueError(f"cannot make the run folder {out} ({error.strerror or error}): {CHOOSE_FOLDER}") from None


def _same_setting(name: str, saved: Any, now: Any) -> bool:
    if name == "init" and saved is not None and now is not None:  # the same checkpoint file, however it is spelled
        return saved == now or Path(saved).resolve() == Path(now).resolve()
    if isinstance(saved, numbers.Number) and isinstance(now, numbers.Number) and not isinstance(saved, bool):
        return math.isclose(float(saved), float(now), rel_tol=1e-9, abs_tol=0.0)
    return saved == now


def _resolved_image_size(model: Any, value: Any) -> Any:
    """The input size ``value`` gives ``model`` (None: the preset's own; "512": 512), or ``value`` where none."""
    try:
        return get_config(str(model), _input_size(value, "image_size", "")).image_size
    except (ValueError, TypeError):
        return value


def _data_kind(fingerprint: Optional[str], data: Any) -> str:
    """What a run trains on, in words, from its data fingerprint (None: synthetic clips of kind ``data``)."""
    return f"synthetic clips (data {data!r})" if fingerprint is None else "a stack and its labels"


def run_differences(saved: Dict[str, Any], settings: TrainSettings,
                    data: Optional[Tuple[Optional[str], Optional[str]]] = None) -> List[Tuple[str, Any, Any]]:
    """(name, the run's value, the given value) for each setting in which ``settings`` differ from a run's
    ``saved`` settings (``last.pt``'s or ``weights.json``'s): empty when ``settings`` may resume that run.
    Settings a run saved before they existed are not compared. ``image_size`` is compared (and listed) as the size
    it resolves to, so None and the preset's own size, or 512 and "512", are the same. ``data``: (the run's data
    fingerprint, these data's; None for synthetic clips), where both are known: a run on synthetic clips resumed on
    a stack, or the other way round, differs in "training data"."""
    now = dataclasses.asdict(settings)
    differences = []
    for name in now:
        if name in RESUME_MAY_CHANGE or (name not in saved and name not in FRAME_OPTION_DEFAULTS):
            continue
        if name == "data" and saved.get(name) is None:  # a run on a user's stack records none (the stack is its data)
            continue
        before, given = saved.get(name, FRAME_OPTION_DEFAULTS.get(name)), now[name]  # (older runs: no options)
        if name == "image_size":
            before, given = _resolved_image_size(saved.get("model", now["model"]), before), \
                _resolved_image_size(now["model"], given)
        if not _same_setting(name, before, given):
            differences.append((name, before, given))
    if data is not None and (data[0] is None) != (data[1] is None):
        differences.append(("training data", _data_kind(data[0], saved.get("data", now["data"])),
                            _data_kind(data[1], now["data"])))
    return differences


def run_is_finished(steps_done: int, last_stop: Optional[str], settings: TrainSettings) -> bool:
    """Whether a run that did ``steps_done`` steps, its last call stopped by ``last_stop`` ("steps", "progress",
    ...; None: a periodic save, or a run saved before this was recorded), has nothing left to do with ``settings``:
    more steps than asked, or all of them and its final check (a run stopped on its last step still makes it), its
    weights written: ``settings.out``'s weights.pt records that run, finished at that step (:func:`weights_written`).
    Else, a run killed during its final check by code before 2026-12-08 (its last.pt said "steps" before the check,
    beside no weights.pt or an earlier call's) resumes with no step to train, makes the check and writes its weights,
    as a run saved by today's code does (its last.pt says "steps" only once weights.pt is written)."""
    if steps_done > settings.steps:
        return True
    return steps_done == settings.steps and last_stop == "steps" and weights_written(Path(settings.out), steps_done)


def weights_written(out: Path, steps_done: int) -> bool:
    """Whether run folder ``out`` holds the weights of its run finished at step ``steps_done``: a ``weights.pt``
    whose record (:func:`weights_run_record`: the one inside, else ``weights.json``; no torch, no tensor read) says
    ``steps_done`` steps, stopped by "steps" (its steps done and its final check made), written by the run that
    ``out/last.pt`` holds (:func:`same_run`: a new run in a finished run's folder, killed while its own weights were
    written, is not finished beside the earlier run's weights.pt of as many steps). False with no weights.pt, or
    weights.pt of an earlier call (another step, or stopped by Cancel or a time limit) or of another run, or one with
    no readable record."""
    weights = Path(out) / "weights.pt"
    if not weights.is_file():
        return False
    record = weights_run_record(weights)
    steps = record.get("steps")
    if not (isinstance(steps, int) and not isinstance(steps, bool) and steps == steps_done
            and record.get("stopped_by") == "steps"):
        return False
    last = Path(out) / "last.pt"
    return not last.is_file() or same_run(_resume_record(last), record)


def run_identity(record: Any) -> Tuple[Optional[str], Optional[str]]:
    """(run id, start time) of a run's training record (last.pt's, weights.pt's or weights.json's): its first
    session's ``run_id`` (written by :func:`~.loop.train` since 2026-12-08, once, when the run starts) and
    ``started_utc``; None for each that it does not record."""
    sessions = record.get("sessions") if isinstance(record, dict) else None
    first = sessions[0] if isinstance(sessions, list) and sessions and isinstance(sessions[0], dict) else {}
    run_id, started = first.get("run_id"), first.get("started_utc")
    return (run_id if isinstance(run_id, str) else None, started if isinstance(started, str) else None)


def same_run(one: Any, other: Any) -> bool:
    """Whether two training records are of the same run (last.pt's and weights.pt's, say): the same run id where
    either records one (:func:`run_identity`), else (runs saved before run ids) the same start of their first
    session where both record it; True where neither tells (older records: judged by steps alone, as before)."""
    (one_id, one_start), (other_id, other_start) = run_identity(one), run_identity(other)
    if one_id is not None or other_id is not None:
        return one_id == other_id
    if one_start is not None and other_start is not None:
        return one_start == other_start
    return True


def finished_words(out: Path, steps_done: int, last_stop: Optional[str], steps: int) -> str:
    """Why a run folder has nothing to do with ``steps`` (:func:`run_is_finished`): it finished them, or it was
    stopped (Ctrl-C, a time limit, ``last_stop`` says) after more steps than ``steps`` now asks for."""
    weights = out / "weights.pt"
    if last_stop == "steps" and steps_done == steps:
        return (f"{out} holds a finished run of {steps_done} steps (weights in {weights}), no more with steps "
                f"{steps}: more steps train it further with the same settings, or start a new run folder")
    how = {"interrupt": "stopped by Ctrl-C", "time_limit": "stopped by its time limit", "steps": "finished",
           "non_finite": "stopped by a non-finite loss", "progress": "stopped (Cancel)"}.get(str(last_stop), "saved")
    return (f"{out} holds a run {how} after step {steps_done} (its weights so far in {out / 'last.pt'}): steps "
            f"{steps} asks for no more than it has done; give more than {steps_done} steps to train it further with "
            "the same settings, or start a new run folder")


def finished_run_words(settings: TrainSettings) -> Optional[str]:
    """:func:`finished_words` where the run in ``settings.out`` has nothing left to do with ``settings``
    (:func:`run_is_finished` of its ``last.pt``: the step and how its last call stopped, :func:`_resume_record`), else
    None (no run there, an unreadable one, or one these settings train further). Read without torch, before anything
    is said: a command that will only say "nothing to do" says no warning of the run it will not train first.
    :func:`train` still decides (it refuses a run with other settings before it calls a run finished)."""
    out = Path(settings.out)
    record = _resume_record(out / "last.pt")
    done = record.get("steps")
    if not isinstance(done, int) or isinstance(done, bool):
        return None
    last_stop = record.get("stopped_by")
    last_stop = last_stop if isinstance(last_stop, str) else None
    return finished_words(out, done, last_stop, settings.steps) if run_is_finished(done, last_stop, settings) else None


def run_warmup(out: Path) -> Optional[int]:
    """The warm-up steps of the run in folder ``out`` that :func:`train` would resume, as :func:`_resumed_setting`
    reads it (its ``last.pt``'s settings, else its weights' record's). None where there is no run to resume (no
    ``last.pt``) or neither file records a warm-up (unreadable: :func:`train` names the problem).
    A resumed run keeps its own warm-up (the command line's and the fine-tuning widget's rule), so more steps extend
    it instead of being refused as another setting."""
    warmup = _resumed_setting(out, "warmup_steps", _whole)
    return None if warmup is None else int(warmup)


def run_lr(out: Path) -> Optional[float]:
    """The learning rate of the run in folder ``out`` that :func:`train` would resume, as :func:`_resumed_setting`
    reads it (its ``last.pt``'s settings, else its weights' record's). None where there is no run to resume (no
    ``last.pt``) or neither file records a positive one. A resumed run keeps its own learning rate when none is given
    (the command line's rule, as for the warm-up), so a run started under another default is not refused as another
    setting."""
    lr = _resumed_setting(out, "lr", lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool) and v > 0)
    return None if lr is None else float(lr)


def _resumed_setting(out: Path, key: str, valid: Callable[[Any], bool]) -> Any:
    """Setting ``key`` of the run in folder ``out`` that :func:`train` would resume: as its ``last.pt`` says it
    (:func:`_checkpoint_settings`: what train() resumes, read without torch), else as its weights' record says it
    (:func:`weights_run_record`: the record inside ``weights.pt``, else ``weights.json``; a last.pt that records no
    valid value), the first that ``valid`` accepts; None with no ``last.pt`` or no valid record. last.pt first: where a
    new run is under way in the folder of a finished one (its last.pt deleted, the new run killed before its weights
    were written), weights.pt still holds the earlier run's settings, and train() resumes the new one. The Fine-tune
    form judges a folder by the same file (``napari_sam2._run_folders.run_record``: last.pt's record first)."""
    out = Path(out)
    if not (out / "last.pt").is_file():
        return None
    for read in (lambda: _checkpoint_settings(out / "last.pt"), lambda: _recorded_settings(out / "weights.pt")):
        value = read().get(key)
        if valid(value):
            return value
    return None


def _whole(value: Any) -> bool:
    """Whether ``value`` is a whole number (not a bool): a recorded warm-up."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _recorded_settings(weights: Path) -> Dict[str, Any]:
    """The "settings" of the training record of ``weights`` (:func:`weights_run_record`; {} when it has none)."""
    settings = weights_run_record(weights).get("settings")
    return settings if isinstance(settings, dict) else {}


def _resume_record(path: Path) -> Dict[str, Any]:
    """The record of the run's resume file ``path`` (``RUN/last.pt``) as :func:`sam2_model.run_record.resume_record`
    reads it (``steps``, ``stopped_by``, ``settings``, ``sessions``, ...; a last.pt saved before it held a record
    included): the pickle alone, without torch and without reading a tensor. {} when it cannot be read (missing,
    unreadable or not a run's resume file: train() names the problem)."""
    return resume_record(path) or {}


def _checkpoint_settings(path: Path) -> Dict[str, Any]:
    """The "settings" saved in the run's resume file ``path`` ({} when it cannot be read), read without torch."""
    settings = _resume_record(path).get("settings")
    return dict(settings) if isinstance(settings, dict) else {}


def saved_step(path: Path) -> Optional[int]:
    """The step the training checkpoint ``path`` (a run's ``last.pt``) was saved at; None when it cannot be read
    (read without torch: :func:`_resume_record`)."""
    step = _resume_record(path).get("steps")
    return int(step) if isinstance(step, int) and not isinstance(step, bool) else None
