"""Why a file given as a checkpoint could not be read, in one or two lines a user can act on.

``torch.load(path, weights_only=True)`` explains a refusal with PyTorch's whole unpickler story; a user who passed a
training run's resume file, an image or a cut-short download needs to hear which of these it is and what to load
instead. Nothing here unpickles the file: a resume file is recognised by the names in its ``data.pkl``.

A weights file's training record (a run's ``weights.json`` beside its ``weights.pt``, or the same record stored inside
the .pt) is read here too (:func:`training_record`): the input size the weights were trained at and whether the run
did all its steps, for :func:`sam2_model.build.build_model` to apply and to say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Tuple, Union

PathLike = Union[str, Path]

#: how files that are not PyTorch checkpoints begin (the first bytes), to say what they are instead
_MAGIC = ((b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"II+\x00", "a BigTIFF image"),
          (b"MM\x00+", "a BigTIFF image"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
          (b"\x93NUMPY", "a NumPy .npy array"), (b"\x89HDF", "an HDF5 file"), (b"{", "a JSON or text file"))
#: the start of a file written by torch.save(..., _use_new_zipfile_serialization=False) (pickled magic number)
_LEGACY_TORCH = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
#: top-level keys of a training run's resume file (sam2_model.train.loop writes them to last.pt)
_RESUME_KEYS = {"model", "optimizer", "step", "settings"}


def _pickled_strings(path: Path) -> Optional[set]:
    """The strings in a torch zip file's ``data.pkl``, read with :mod:`pickletools` (nothing is unpickled
    or run); None when ``path`` is not a zip archive holding one."""
    import pickletools
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if not names:
                return None
            data = archive.read(min(names, key=len))
        return {arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)}
    except Exception:  # not a zip, damaged, or a pickle stream pickletools cannot walk
        return None


#: files a training run's folder holds (sam2_model.train writes them to --out)
_RUN_FILES = ("weights.pt", "last.pt", "history.csv")


def run_folder_message(path: PathLike) -> Optional[str]:
    """What to load instead when ``path`` is a folder (a training run's, say) given where a checkpoint file is
    expected; None when ``path`` is no folder. A folder is not read as its weights.pt: the file loaded stays the
    one named, and a run stopped early (its weights.pt holds the weights of that step) is told apart."""
    path = Path(path).expanduser()
    if not path.is_dir():
        return None
    weights = path / "weights.pt"
    if not any((path / name).is_file() for name in _RUN_FILES):
        return (f"{path} is a folder, not a checkpoint file: give a .pt file (e.g. a training run's "
                "RUN/weights.pt)")
    if not weights.is_file():
        return (f"{path} is a training run's folder, not a checkpoint file, and has no weights.pt yet (written when "
                "the run stops or finishes): finish the run, then use its weights.pt")
    return f"{path} is a training run's folder, not a checkpoint file: use {weights}{_run_state(weights)}"


def _run_state(weights: Path) -> str:
    """" (saved at step N of M; ...)" when ``weights``' run stopped before its last step; "" otherwise. The record
    is the one :func:`sam2_model.build.build_model` would apply (the record inside the file, else the JSON beside it);
    a foreign or damaged one says nothing here."""
    from .run_record import stored_record, weights_record  # torch-free

    record = weights_record(weights, stored_record(weights), quiet=True)
    if record is None or not record.stopped_early:
        return ""
    if record.final_check_missing:
        return (f" (it holds the weights of step {record.steps} of {record.planned_steps}, the run stopped before its "
                "final check: run its training command again to finish it)")
    return (f" (it holds the weights of step {record.steps} of {record.planned_steps}: the run stopped early; run its "
            "training command again to finish it)")


#: what stopped a run (weights.json's ``stopped_by``), as a user says it
_STOPPED_BY = {"time_limit": "its time limit", "interrupt": "Ctrl-C (or a stop signal)", "progress": "a Cancel",
               "non_finite": "a loss that was not finite"}


@dataclass(frozen=True)
class TrainingRecord:
    """What a weights file's training record says (:func:`training_record`).

    where: the record's place, for messages ("RUN/weights.json", "the record inside RUN/weights.pt");
    image_size: the input size in pixels the weights were trained at (None: not recorded, e.g. an average of files);
    steps: the steps done; planned_steps: the steps the run was asked for (None: not recorded);
    stopped_by: what ended the run ("steps", "time_limit", "interrupt", "progress" (a Cancel), ...; None: not recorded);
    check_skipped: the run's last call planned a final check on the user's frames and did not make it (its last
    session's ``final_check`` is "skipped", recorded by sam2_model.train since 2026-12-08; False where not recorded).
    """

    where: str
    image_size: Optional[int]
    steps: Optional[int]
    planned_steps: Optional[int]
    stopped_by: Optional[str]
    check_skipped: bool = False

    @property
    def facts(self) -> Tuple[Optional[int], Optional[int], Optional[int], Optional[str]]:
        """(image_size, steps, planned_steps, stopped_by): what two records of the same weights must agree on."""
        return self.image_size, self.steps, self.planned_steps, self.stopped_by

    def said(self) -> str:
        """The facts in words, e.g. "input size 64 px, step 1 of 3, stopped by a Cancel"."""
        size = "no input size" if self.image_size is None else f"input size {self.image_size} px"
        steps = ("no steps" if self.steps is None else f"{self.steps} steps" if self.planned_steps is None
                 else f"step {self.steps} of {self.planned_steps}")
        by = _STOPPED_BY.get(str(self.stopped_by), self.stopped_by)
        return f"{size}, {steps}" + ("" if by in (None, "steps") else f", stopped by {by}")

    @property
    def stopped_early(self) -> bool:
        """The run did fewer steps than it was asked for (its weights are those of the step it stopped at), or it was
        stopped by Ctrl-C after its last step, before its final check on the user's frames ("interrupt" at step N of
        N with ``check_skipped``: :attr:`final_check_missing`). An older record of "interrupt" at step N of N (code
        before 2026-12-08 recorded that after a last-step Ctrl-C with no check to skip) is not stopped early."""
        if self.steps is None or self.planned_steps is None:
            return False
        return self.steps < self.planned_steps or self.final_check_missing

    @property
    def final_check_missing(self) -> bool:
        """All its steps done, stopped by Ctrl-C before its final check on the user's frames (not finished: its
        training command again makes the check and writes the finished weights)."""
        return (self.steps is not None and self.steps == self.planned_steps and self.stopped_by == "interrupt"
                and self.check_skipped)

    def stopped_early_words(self, path: PathLike) -> str:
        """One line on a run that stopped early: the steps done of those planned, what stopped it, what to do."""
        by = _STOPPED_BY.get(str(self.stopped_by), None)
        if self.final_check_missing:
            return (f"{path} holds the weights of step {self.steps} of {self.planned_steps}: its training run was "
                    f"stopped by {by} after its last step, before its final quality check; run its training command "
                    "(or the Fine-tune widget's Train) again with the same folder to finish it (no more steps)")
        return (f"{path} holds the weights of step {self.steps} of {self.planned_steps}: its training run stopped "
                f"early{f' (stopped by {by})' if by else ''} and made no final quality check; run its training "
                "command (or the Fine-tune widget's Train) again with the same folder to finish it")


def _whole_number(value: Any, what: str, where: str, positive: bool = True) -> Optional[int]:
    """``value`` as an int (None stays None); ValueError naming ``what`` when it is no whole number (booleans too)."""
    if value is None:
        return None
    import math

    whole = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
             and value == int(value) and int(value) >= (1 if positive else 0))
    if not whole:
        raise ValueError(f"{where}: {what} is {value!r}, not a whole number{' above 0' if positive else ''}")
    return int(value)


def training_record(record: Any, where: str) -> TrainingRecord:
    """Read a training record: a run's (``sam2_model.train``: "settings" with "image_size", "model" and "steps";
    "steps", "stopped_by"), or a packaged model's (``sam2_model.train.package``, the demo's demo.json: "config" with
    "image_size"). ValueError saying why when ``record`` is neither (another tool's JSON, a damaged one): a caller
    ignores such a record and says so."""
    from .config import PRESETS, get_config

    if not isinstance(record, dict):
        raise ValueError(f"{where} holds a {type(record).__name__}, not a training record (a JSON object)")
    settings, config = record.get("settings"), record.get("config")
    if isinstance(settings, dict):
        named = settings.get("model")  # another tool's JSON may hold anything here (a list is no dict key)
        if named is not None and not isinstance(named, str):
            raise ValueError(f"{where}: settings.model is {named!r}, not a model name")
        model = named if named in PRESETS else None
        size = _whole_number(settings.get("image_size"), "settings.image_size", where)
        if size is None and model is not None:
            size = get_config(model).image_size  # the run trained at its preset's own size
        planned = _whole_number(settings.get("steps"), "settings.steps", where, positive=False)
    elif isinstance(config, dict):
        size = _whole_number(config.get("image_size"), "config.image_size", where)
        planned = None  # a packaged model: its stages' steps are its record, none of them unfinished
    else:
        raise ValueError(f"{where} is not a training record (no 'settings' of a sam2_model.train run, no 'config' of a "
                         "packaged model)")
    if size is not None and size % 32:
        raise ValueError(f"{where}: the input size {size} is not a multiple of 32")
    stopped_by = record.get("stopped_by")
    sessions = record.get("sessions")
    last = sessions[-1] if isinstance(sessions, list) and sessions and isinstance(sessions[-1], dict) else {}
    return TrainingRecord(where, size, _whole_number(record.get("steps"), "steps", where, positive=False), planned,
                          stopped_by if isinstance(stopped_by, str) else None, last.get("final_check") == "skipped")


def unreadable_checkpoint_message(path: PathLike, error: BaseException) -> str:
    """One or two lines on why ``torch.load(path, weights_only=True)`` failed with ``error``: a training run's
    resume file, a file that is no PyTorch file at all (an image, say), a damaged archive, or Python objects
    besides tensors. Only a file in the download cache is told to be downloaded again."""
    import zipfile

    from .checkpoints import in_cache

    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(16)
    redownload = (" It is in the download cache, so the download may be incomplete: delete it and download it "
                  "again." if in_cache(path) else "")
    prefix = f"{path} is not a readable PyTorch checkpoint"
    strings = _pickled_strings(path)
    if strings is not None and _RESUME_KEYS <= strings:
        weights = path.parent / "weights.pt"
        where = (f"load {weights} from the same folder" if weights.is_file() else
                 f"load the run's weights.pt (written to {path.parent} when the run finishes)")
        return f"{path} is a training run's resume file (python -m sam2_model.train), not a checkpoint: {where}"
    if strings is not None and {"model", "optimizer"} <= strings:
        return (f"{prefix}: it looks like a training resume file (a model and an optimizer's state); load the "
                "weights file that training wrote, or save {'model': model.state_dict()} with torch.save")
    if head.startswith(b"PK\x03\x04") and not zipfile.is_zipfile(path):
        return f"{prefix}: its zip archive is cut short or damaged ({size} bytes).{redownload}"
    if not head.startswith(b"PK\x03\x04") and not head.startswith(_LEGACY_TORCH):
        kind = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
        what = f"it is {kind}" if kind else f"its {size} bytes are not"
        return (f"{prefix}: {what}{' and not' if kind else ''} a file written by torch.save (expected a .pt file "
                f"such as an official SAM 2 checkpoint or a training run's weights.pt).{redownload}")
    detail = str(error).strip()
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", detail)
    if found:
        return (f"{prefix}: besides tensors it holds Python objects ({found.group(1)}) that are not loaded, "
                "for safety; save {'model': model.state_dict()} with torch.save instead." + redownload)
    first = detail.splitlines()[0][:200] if detail else ""
    return f"{prefix} ({size} bytes; {type(error).__name__}: {first}).{redownload}"
