"""Run folders of the fine-tuning widget: a fresh folder's name, what a folder holds of a run, and a run's settings in
the form's words. No Qt: the widget (``_finetune``) asks, this module answers."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any, Dict, Optional


def default_run_folder() -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path.home() / "napari-sam2-runs" / f"finetune-{stamp}"


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
    """What ``folder`` holds of a run: None when no run (no last.pt and no weights.pt), else its weights.json
    (settings, steps, what stopped it; {} when there is none or it is unreadable)."""
    if not (folder / "last.pt").exists() and not (folder / "weights.pt").exists():
        return None
    try:
        record = json.loads((folder / "weights.json").read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def holds_finished_run(folder: Path) -> bool:
    """Whether Train would not resume the run in ``folder`` as it is: a finished run, or weights with no run."""
    record = run_record(folder)
    return record is not None and (record.get("stopped_by") == "steps" or not (folder / "last.pt").exists())


#: the form's words for the settings a run keeps (sam2_model.train.loop.run_differences)
FORM_NAMES = {"lr": "learning rate", "clip_len": "frames per clip", "augment": "turn and mirror clips",
              "link_ids": "link ids by overlap", "hold_out": "hold out frames", "init": "starting weights",
              "image_size": "input size", "warmup_steps": "warm-up steps",
              # how frames reach the model: the segmentation widget's choices, which the form takes from it
              "smooth": "smooth frames (px, the segmentation widget's)", "invert": "invert (the segmentation widget's)",
              "contrast_limits": "contrast limits", "channel": "channel", "channel_axis": "channel axis"}


def setting_in_form_words(name: str, value: Any, named: bool = True) -> str:
    """A run setting as the fine-tuning form says it, e.g. "learning rate 0.0001" ("0.0001" with named=False)."""
    if named:
        return f"{FORM_NAMES.get(name, name)} {setting_in_form_words(name, value, named=False)}"
    if name == "init":
        return "random weights" if value is None else str(value)
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)
