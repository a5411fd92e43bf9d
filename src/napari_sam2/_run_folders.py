"""Run folders of the fine-tuning widget: a fresh folder's name, what a folder holds of a run, a run's settings in
the form's words, and the runs that wrote weights (the model picker offers them). No Qt: the widgets (``_finetune``,
``_model_picker``) ask, this module answers."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple


def runs_root() -> Path:
    """Where the fine-tuning widget puts its runs unless told otherwise: ~/napari-sam2-runs."""
    return Path.home() / "napari-sam2-runs"


def default_run_folder() -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return runs_root() / f"finetune-{stamp}"


#: the model picker's Weights entries for runs begin so
TRAINED_RUN_PREFIX = "fine-tuned: "


@dataclass(frozen=True)
class TrainedRun:
    """A run folder holding weights: ``weights`` its weights.pt, ``label`` the model picker's entry ("fine-tuned:
    FOLDER (YYYY-MM-DD HH:MM)", with the steps when the run stopped early), ``modified`` the weights' time (s)."""

    weights: Path
    label: str
    modified: float


def trained_runs(places: Iterable[Path] = (), limit: int = 20) -> List[TrainedRun]:
    """The runs with a weights.pt, newest first (at most ``limit``): the folders in :func:`runs_root` and beside each of
    ``places`` (e.g. the fine-tuning widget's remembered run folder, which may be anywhere), and those places
    themselves. Folders that cannot be read, or that vanish meanwhile, are left out (never an error)."""
    folders: Dict[str, Path] = {}
    for place in [runs_root(), *(Path(p).expanduser() for p in places)]:
        for candidate in [place, *_subfolders(place), *_subfolders(place.parent)] if place != runs_root() else \
                _subfolders(place):
            folders.setdefault(str(candidate.absolute()), candidate)
    found: List[Tuple[float, Path]] = []
    for folder in folders.values():
        weights = folder / "weights.pt"
        try:
            found.append((weights.stat().st_mtime, weights))
        except OSError:  # no weights (yet), or gone
            continue
    found.sort(key=lambda item: item[0], reverse=True)
    labels: Dict[str, TrainedRun] = {}
    for modified, weights in found:  # newest first; only the runs listed have their record read (a few ms each)
        if len(labels) >= limit:
            break
        folder = weights.parent
        stamp = datetime.datetime.fromtimestamp(modified).strftime("%Y-%m-%d %H:%M")
        label = f"{TRAINED_RUN_PREFIX}{folder.name} ({stamp}{_stopped_early(folder)})"
        if label in labels:  # two folders of one name elsewhere: the second named by its parent too
            label = label.replace(TRAINED_RUN_PREFIX, f"{TRAINED_RUN_PREFIX}{folder.parent.name}/", 1)
        labels.setdefault(label, TrainedRun(weights, label, modified))
    return list(labels.values())


def _subfolders(place: Path) -> List[Path]:
    try:
        return [child for child in place.iterdir() if child.is_dir()]
    except OSError:  # missing, not a folder, no permission
        return []


def _stopped_early(folder: Path) -> str:
    """", stopped at step N of M" when the run in ``folder`` stopped before its last step (", final check not made"
    when it stopped after it, before its final check on the user's frames), as the model builder reads
    its weights' training record (:func:`sam2_model.run_record.weights_record`): the record stored inside weights.pt
    (its pickle alone is read, without torch: the model picker lists runs on napari's GUI thread), which wins over a
    weights.json that disagrees, else the JSON. "" when neither says so or neither can be read (quietly: a menu entry
    is no place for warnings)."""
    from sam2_model.run_record import stored_record, weights_record

    weights = folder / "weights.pt"
    record = weights_record(weights, stored_record(weights), quiet=True)
    if record is not None and record.final_check_missing:  # all steps done, stopped (Ctrl-C) before its check
        return ", final check not made"
    if record is not None and record.stopped_early:
        return f", stopped at step {record.steps} of {record.planned_steps}"
    return ""


def next_free_folder(folder: Path) -> Path:
    """A fresh folder beside ``folder`` for a new run: run -> run-2, run-2 -> run-3 (the first that does not exist)."""
    match = re.fullmatch(r"(.+)-(\d{1,3})", folder.name)
    stem, number = (match.group(1), int(match.group(2))) if match else (folder.name, 1)
    while True:
        number += 1
        candidate = folder.with_name(f"{stem}-{number}")
        if not candidate.exists():
            return candidate


def run_record(folder: Path) -> Optional[Dict[str, Any]]:
    """What ``folder`` holds of a run: None when no run (no last.pt and no weights.pt), else its training record
    (settings, steps, train_seconds, what stopped it, the checks), read without torch: the record of its last.pt, the
    run that Train (``train()``) would resume (:func:`sam2_model.run_record.resume_record`; the same record as
    weights.pt's once a call ended, whoever started the run), else, with no readable last.pt, its weights' record as
    the model builder reads it (:func:`sam2_model.run_record.weights_run_record`: the one inside weights.pt, which
    wins over a weights.json that disagrees, else that JSON); {} when none can be read. So a run killed after a
    periodic save beside older weights is judged by the step it resumes from, not by those weights."""
    last, weights = folder / "last.pt", folder / "weights.pt"
    if not last.exists() and not weights.exists():
        return None
    from sam2_model.run_record import resume_record, weights_run_record

    resumed = resume_record(last) if last.exists() else None
    return resumed if resumed is not None else weights_run_record(weights)


def holds_finished_run(folder: Path) -> bool:
    """Whether Train would not resume the run in ``folder`` as it is: a finished run, or weights with no run."""
    from sam2_model.train.run_folder import weights_written  # torch-free

    record = run_record(folder)  # a finished run counts only beside its weights (an old run killed in its check: not)
    return record is not None and ((record.get("stopped_by") == "steps" and weights_written(folder, record.get("steps")))
                                   or not (folder / "last.pt").exists())


#: the form's words for the settings a run keeps (sam2_model.train.loop.run_differences)
FORM_NAMES = {"lr": "learning rate", "clip_len": "frames per clip", "augment": "turn and mirror clips",
              "link_ids": "link ids by overlap", "hold_out": "hold out frames", "init": "starting weights",
              "image_size": "input size", "warmup_steps": "warm-up steps",
              # how frames reach the model: the segmentation widget's choices, which the form takes from it
              "smooth": "smooth frames (px, the segmentation widget's)", "invert": "invert (the segmentation widget's)",
              "contrast_limits": "contrast limits", "channel": "channel", "channel_axis": "channel axis"}


def setting_in_form_words(name: str, value: Any, named: bool = True) -> str:
    """A run setting as the fine-tuning form says it, e.g. "learning rate 0.0001" ("0.0001" with named=False); a
    setting the form has no field for (a run started by sam2-train with other values) by its sam2-train option, e.g.
    "sam2-train's --clips-per-step 1"."""
    if named:
        words = FORM_NAMES.get(name, f"sam2-train's --{name.replace('_', '-')}")
        return f"{words} {setting_in_form_words(name, value, named=False)}"
    if name == "init":
        return "random weights" if value is None else str(value)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)
