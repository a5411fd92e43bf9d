"""A fine-tuning run's training record, read without torch: the record stored inside a run's ``weights.pt`` (beside
``"model"``) and the ``weights.json`` beside it, chosen as the model builder chooses them, and the same record inside
the run's ``last.pt`` (what training resumes: :func:`resume_record`).

``weights.pt`` is a ``torch.save`` zip archive whose ``PREFIX/data.pkl`` pickles ``{"model": state_dict, "record":
{...}}``. :func:`stored_record` unpickles that ``data.pkl`` alone with a restricted unpickler: tensor storages become
placeholders (no tensor data is read), and the only classes it resolves are stand-ins for torch's tensor rebuild
functions and storage types plus ``collections.OrderedDict``, ``set`` and ``frozenset``. A pickle naming any other class
(``torch.device``, a dtype, ``torch.Size``, a NumPy value, another tool's object) is read again with every such class
an inert stand-in that is never looked up: nothing in the file runs. A record is plain JSON data (dicts with text
keys, lists, text, numbers, True/False, None); one holding anything else (such an object, an OrderedDict, a set) is
no record.
Importing this module and reading a record load no torch, whatever the file (torch's import takes 1.5 s warm, 6-8 s on
a cold disk: on napari's GUI thread when the model picker lists the runs and the Fine-tune form judges its run folder).
Reading is bounded whatever the file: at most :data:`_MAX_HOOK_CALLS` classes looked up or stand-ins called per pickle
(a SAM 2 run's last.pt needs a few thousand), :data:`_MAX_INERT_CLASSES` classes of other kinds, and a record of at most :data:`_MAX_RECORD_DEPTH` levels and
:data:`_MAX_RECORD_VALUES` values (shared or looping containers count each time they are reached); beyond them a file
holds no record.
:mod:`sam2_model.build` (the model builder), :mod:`sam2_model.train` and the fine-tuning widget's run folders all read
the record here.
"""

from __future__ import annotations

import collections
import io
import json
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from .checkpoint_errors import TrainingRecord, training_record

PathLike = Union[str, os.PathLike]

#: the largest data.pkl read here (a SAM 2 state dict's is ~50 KB); a larger one is left to torch's loader
_MAX_PICKLE_BYTES = 64 * 1024 * 1024
#: torch's storage types as ``torch.save`` names them in a storage's persistent id ("FloatStorage", ...)
_STORAGE_NAME = re.compile(r"(?:[A-Z][A-Za-z0-9]*)?Storage")
#: the most classes looked up and stand-ins called while unpickling one data.pkl (each runs Python code: a crafted
#: pickle of a million GLOBALs took 38 s); a real run's last.pt takes a few per tensor
_MAX_HOOK_CALLS = 200_000
#: the most classes of other kinds (inert stand-ins, one made per name) one pickle may name (a checkpoint: a few)
_MAX_INERT_CLASSES = 1_000
#: a record's deepest nesting and most values (a run's record: 5 levels, a few hundred values)
_MAX_RECORD_DEPTH = 32
_MAX_RECORD_VALUES = 100_000


class _NotUnderstood(Exception):
    """The pickle uses something this reader does not take (a class outside its list, another storage form): the
    file is left to torch's loader."""


class _TooMuch(Exception):
    """The pickle looks up more classes or calls more stand-ins than :data:`_MAX_HOOK_CALLS`, or names more classes
    of other kinds than :data:`_MAX_INERT_CLASSES`: no run's file, and no record (neither pass reads it to the end)."""


class _NotPlain(Exception):
    """A value that is not plain JSON data, or nested deeper or larger than a record may be."""


class _Budget:
    """Counts the Python-level steps of one unpickling (class look-ups, stand-in calls); :class:`_TooMuch` past
    :data:`_MAX_HOOK_CALLS`."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = _MAX_HOOK_CALLS

    def tick(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise _TooMuch(f"more than {_MAX_HOOK_CALLS} classes or calls in one pickle")


class StoredTensor:
    """Where a tensor of the file stands in the unpickled payload: its ``shape`` only (its data is never read)."""

    __slots__ = ("shape",)

    def __init__(self, shape: Tuple[int, ...]) -> None:
        self.shape = shape

    def __repr__(self) -> str:
        return f"StoredTensor(shape={self.shape})"


class _StorageType:
    """Stand-in for a torch storage class named in a storage's persistent id (never called)."""

    def __init__(self, name: str) -> None:
        self.name = name


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, *rest: Any) -> StoredTensor:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: a :class:`StoredTensor` of shape ``size``."""
    if not isinstance(storage, _Storage):
        raise _NotUnderstood("a tensor rebuilt from something other than a stored storage")
    return StoredTensor(tuple(size))


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> Any:
    """Stand-in for ``torch._utils._rebuild_parameter``: the tensor it wraps."""
    if not isinstance(data, StoredTensor):
        raise _NotUnderstood("a parameter that wraps no tensor")
    return data


class _Storage:
    """Stand-in for a tensor storage (``persistent_load``'s answer); its data is never read."""

    __slots__ = ()


#: the only classes and functions the unpickler resolves: (module, name) -> stand-in or harmless builtin
_ALLOWED: Dict[Tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
}


class _RecordUnpickler(pickle.Unpickler):
    """Unpickles a torch zip's ``data.pkl`` with nothing but the stand-ins of :data:`_ALLOWED` (and torch's storage
    type names, as inert stand-ins); anything else raises :class:`_NotUnderstood` before it is looked up. Past
    :data:`_MAX_HOOK_CALLS` look-ups and stand-in calls it raises :class:`_TooMuch`."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self.budget = _Budget()

    def find_class(self, module: str, name: str) -> Any:
        self.budget.tick()
        allowed = _ALLOWED.get((module, name))
        if allowed in (_rebuild_tensor, _rebuild_parameter):
            return _counted(allowed, self.budget)
        allowed = _ALLOWED.get((module, name))
        if allowed is not None:
            return allowed
        if module == "torch" and _STORAGE_NAME.fullmatch(name):
            return _StorageType(name)
        raise _NotUnderstood(f"the pickle names {module}.{name}, which this reader does not load")

    def persistent_load(self, pid: Any) -> Any:
        self.budget.tick()
        if isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType):
            return _Storage()
        raise _NotUnderstood(f"a persistent id of another form ({type(pid).__name__})")


class _Inert:
    """An object of a class the file names that this reader does not load (its class is never looked up): built from
    anything, filled with anything, standing for nothing. A record holding one is no record (:func:`stored_record`)."""

    args: Tuple[Any, ...] = ()
    #: the unpickling's step counter (:class:`_Budget`), set on each unpickling's inert classes
    budget: Optional[_Budget] = None

    def _tick(self) -> None:
        if self.budget is not None:
            self.budget.tick()

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Inert":
        if cls.budget is not None:
            cls.budget.tick()
        made = super().__new__(cls)
        made.args = args  # (a str subclass, such as torch's TorchVersion, is made from its text: _cleaned keeps it)
        return made

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> "_Inert":  # a function of the file called by the pickle
        return type(self)()

    def __setstate__(self, state: Any) -> None:  # BUILD
        self._tick()

    def __setitem__(self, key: Any, value: Any) -> None:  # SETITEM(S) of a dict subclass
        self._tick()

    def append(self, value: Any) -> None:  # APPEND(S) of a list subclass
        self._tick()

    def extend(self, values: Any) -> None:
        self._tick()

    def add(self, value: Any) -> None:  # ADDITEMS of a set subclass
        self._tick()


def _inert_class(module: str, name: str, budget: Optional[_Budget] = None) -> type:
    """A fresh inert class standing for ``module.name`` (a class, so NEWOBJ's ``cls.__new__(cls)`` works too), its
    hooks counted in ``budget``."""
    return type(f"Inert[{module}.{name}]", (_Inert,), {"budget": budget})


def _counted(function: Any, budget: _Budget) -> Any:
    """``function`` (a tensor rebuild stand-in) with each call counted in ``budget``."""
    def call(*args: Any) -> Any:
        budget.tick()
        return function(*args)
    return call


class _TolerantUnpickler(_RecordUnpickler):
    """:class:`_RecordUnpickler` where every other class or function the pickle names, and a persistent id of another
    form, is an inert stand-in (:class:`_Inert`): any well-formed pickle is read, and nothing of it runs. One inert
    class per name (made once: a class per GLOBAL made a crafted pickle take 38 s)."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self.inert_classes: Dict[Tuple[str, str], type] = {}
        self.inert = _inert_class("", "persistent id", self.budget)

    def find_class(self, module: str, name: str) -> Any:
        made = self.inert_classes.get((module, name))
        if made is not None:
            self.budget.tick()
            return made
        try:
            found = super().find_class(module, name)
        except _NotUnderstood:
            if len(self.inert_classes) >= _MAX_INERT_CLASSES:
                raise _TooMuch(f"more than {_MAX_INERT_CLASSES} classes of other kinds in one pickle") from None
            made = self.inert_classes[(module, name)] = _inert_class(module, name, self.budget)
            return made
        return _tolerant(found, self.inert) if callable(found) and not isinstance(found, type) else found

    def persistent_load(self, pid: Any) -> Any:
        try:
            return super().persistent_load(pid)
        except _NotUnderstood:
            return self.inert()


def _tolerant(function: Any, inert: type) -> Any:
    """``function`` (a tensor rebuild stand-in) made tolerant: a call it does not understand gives an ``inert``
    object."""
    def call(*args: Any) -> Any:
        try:
            return function(*args)
        except _NotUnderstood:
            return inert()
    return call


def _cleaned(value: Any, count: Optional[list] = None, depth: int = 0) -> Any:
    """``value`` with plain values only (JSON's): an inert object made from one text (torch's TorchVersion, which
    runs saved before 2026-12-08 pickled in last.pt's sessions) becomes that text, any other object None.
    :class:`_NotPlain` when ``value`` nests deeper than :data:`_MAX_RECORD_DEPTH` or holds more than
    :data:`_MAX_RECORD_VALUES` values (a looping or crafted one)."""
    count = [0] if count is None else count
    count[0] += 1
    if count[0] > _MAX_RECORD_VALUES or depth > _MAX_RECORD_DEPTH:
        raise _NotPlain("too deep or too large for a record")
    if isinstance(value, _Inert):
        return value.args[0] if len(value.args) == 1 and isinstance(value.args[0], str) else None
    if isinstance(value, Mapping):
        return {str(key): _cleaned(item, count, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cleaned(item, count, depth + 1) for item in value]
    return value if value is None or isinstance(value, (str, bool, int, float)) else None


def _plain(value: Any, count: list, depth: int = 0) -> Any:
    """A copy of ``value``, plain JSON data (dicts with text keys, lists, text, numbers, True/False, None: no
    subclass, tuple, set or other object); :class:`_NotPlain` for anything else, or past :data:`_MAX_RECORD_DEPTH`
    levels or :data:`_MAX_RECORD_VALUES` values (each time a shared or looping container is reached it counts)."""
    count[0] += 1
    if count[0] > _MAX_RECORD_VALUES or depth > _MAX_RECORD_DEPTH:
        raise _NotPlain("too deep or too large for a record")
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return value
    if kind is dict:
        if any(type(key) is not str for key in value):
            raise _NotPlain("a key that is not text")
        return {key: _plain(item, count, depth + 1) for key, item in value.items()}
    if kind is list:
        return [_plain(item, count, depth + 1) for item in value]
    raise _NotPlain(f"a {kind.__name__}")


def _pickled_payload(path: Path) -> Any:
    """The payload of the torch zip file ``path`` with its tensors as :class:`StoredTensor` (and any object of another
    class inert: :class:`_TolerantUnpickler`); None when ``path`` is no torch zip file, a damaged one (torch's loader
    reads none of these either) or one whose pickle is larger than :data:`_MAX_PICKLE_BYTES` (no SAM 2 checkpoint's
    is). Never imports torch, never raises."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            if not entries:
                return None
            prefix = entries[0].filename.split("/", 1)[0]  # torch names the archive by its first entry's folder
            try:
                info = archive.getinfo(f"{prefix}/data.pkl")
            except KeyError:
                return None
            if info.file_size > _MAX_PICKLE_BYTES:
                return None
            data = archive.read(info)
    except Exception:  # missing, a folder, not a zip, cut short, a bad checksum: torch's loader reads none of these
        return None
    try:
        return _RecordUnpickler(io.BytesIO(data)).load()
    except _NotUnderstood:  # another class (torch.device, a dtype, NumPy, ...): read again with it inert
        pass
    except Exception:  # a damaged pickle: truncated, bad opcodes, wrong arguments to a stand-in; _TooMuch
        return None
    try:
        return _TolerantUnpickler(io.BytesIO(data)).load()
    except Exception:  # damaged, or _TooMuch
        return None


def stored_record(path: PathLike) -> Optional[Dict[str, Any]]:
    """The training record stored inside the checkpoint file ``path`` (``"record"`` beside ``"model"`` in its
    pickled payload, as ``sam2_model.train`` writes weights.pt and last.pt); None when it holds none or cannot be read
    (missing, a folder, not a torch zip file, cut short, damaged: :func:`sam2_model.build.read_checkpoint` says why a
    file cannot be read), or when the record holds anything but plain JSON values (a dict with text keys, a list,
    text, a number, True/False, None: no other class, however the file names it) or nests deeper or holds more values
    than a record may (:data:`_MAX_RECORD_DEPTH`, :data:`_MAX_RECORD_VALUES`; a looping one). Read without torch and without reading
    any tensor (a few ms), whatever else the file holds. Never raises."""
    try:
        path = Path(path).expanduser()
    except (RuntimeError, TypeError, ValueError):  # e.g. "~nosuchuser/weights.pt": no such file to read
        return None
    return _record_of(_pickled_payload(path))


def _record_of(payload: Any) -> Optional[Dict[str, Any]]:
    """A copy of the record beside ``"model"`` in an unpickled ``payload``; None when none, or one that is not plain
    JSON data within the bounds of :func:`_plain`."""
    record = payload.get("record") if isinstance(payload, Mapping) and "model" in payload else None
    if type(record) is not dict:
        return None
    try:
        return _plain(record, [0])
    except _NotPlain:
        return None


def resume_record(last: PathLike) -> Optional[Dict[str, Any]]:
    """The training record of a run's resume file ``last`` (``RUN/last.pt``), in the words of its weights' record
    (``steps``, ``train_seconds``, ``stopped_by``, ``settings``, ``sessions``, ...): what :func:`sam2_model.train.train`
    resumes from. A run saves the same record in last.pt as in weights.pt (after a periodic save ``stopped_by`` is
    None: the run is under way; it names what stopped the run once its weights are written); a last.pt of a run saved
    before 2026-12-08 holds none, and the record is made of its step, training seconds, settings and sessions. Read
    without torch (no tensor read); None when ``last`` is no run's resume file or cannot be read. Never raises."""
    try:
        last = Path(last).expanduser()
    except (RuntimeError, TypeError, ValueError):
        return None
    payload = _pickled_payload(last)
    if not isinstance(payload, Mapping) or "step" not in payload or "model" not in payload:
        return None
    record = _record_of(payload)
    if record is not None:
        return record
    step, seconds = payload.get("step"), payload.get("seconds")
    settings, sessions = payload.get("settings"), payload.get("sessions")
    if not isinstance(step, int) or isinstance(step, bool) or not isinstance(settings, Mapping):
        return None
    try:
        sessions = _cleaned(sessions) if isinstance(sessions, (list, tuple)) else []
        settings = _cleaned(settings)
    except _NotPlain:  # a looping or crafted file, no run's
        return None
    last_stop = sessions[-1].get("stopped_by") if sessions and isinstance(sessions[-1], dict) else None
    return {"steps": step, "train_seconds": round(float(seconds), 1) if isinstance(seconds, (int, float)) else 0.0,
            "stopped_by": last_stop if isinstance(last_stop, str) else None, "settings": settings,
            "sessions": sessions}


def weights_record(path: PathLike, inside: Optional[Mapping[str, Any]] = None,
                   quiet: bool = False) -> Optional[TrainingRecord]:
    """The training record of the checkpoint file ``path``: ``inside``, the record stored in the file itself
    (:func:`sam2_model.build.read_checkpoint`, :func:`stored_record`; it was saved with those weights, so a weights.pt
    copied away from its JSON, or over another run's, keeps its own), else the JSON beside it (``RUN/weights.json``
    beside ``RUN/weights.pt``, ``demo.json`` beside ``demo.pt``: files without a record inside). None when there is
    neither. When both are readable and disagree (input size, steps, what stopped the run: e.g. a run killed between
    writing the two, or weights.pt copied over another run's), the record inside is used with a warning naming both. A
    record that cannot be read (damaged JSON, another tool's, wrong types) is ignored with a warning, and the other one
    is used: never an error. ``quiet``: no warnings."""
    path = Path(path).expanduser()
    beside = path.with_suffix(".json")
    has_beside = beside.is_file()
    unset = "the weights load with the input size asked for (or the model's own)"

    def read(where: str, raw: Any, otherwise: str) -> Optional[TrainingRecord]:
        try:
            if isinstance(raw, Path):
                raw = json.loads(raw.read_text())
            return training_record(raw, where)
        except (OSError, ValueError, TypeError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            if not quiet:
                warnings.warn(f"{where} is ignored: it is not a readable training record of {path.name} ({error}); "
                              f"{otherwise}", stacklevel=4)
            return None

    stored = None if inside is None else read(f"the record inside {path}", inside,
                                              f"{beside} is read instead" if has_beside else unset)
    if not has_beside:
        return stored
    written = read(str(beside), beside, f"the record inside {path.name} is used" if stored is not None else unset)
    if stored is None:
        return written
    if written is not None and written.facts != stored.facts and not quiet:
        warnings.warn(f"{beside} does not match the record inside {path} ({written.said()} beside; "
                      f"{stored.said()} inside): the record inside is used, as it was saved with these weights. The "
                      f"JSON is outdated (its run was stopped between writing the two, or the .pt was copied over "
                      f"another run's): delete or replace {beside.name}", stacklevel=3)
    return stored


def weights_run_record(weights: PathLike) -> Dict[str, Any]:
    """The whole training record of a run's weights file ``weights`` (``RUN/weights.pt``: steps, what stopped the
    run, settings, seconds, checks), the one the model builder reads (:func:`weights_record` chooses): the record
    stored inside the file (:func:`stored_record`: no torch, no tensor read), which wins over a ``weights.json``
    beside it that disagrees (outdated: the run was stopped between writing the two; or another run's), else that
    JSON. {} when neither is a readable training record (missing, damaged, another tool's). Never raises."""
    weights = Path(weights).expanduser()
    inside = stored_record(weights)
    chosen = weights_record(weights, inside, quiet=True)
    if chosen is None:
        return {}
    beside = weights.with_suffix(".json")
    if inside is not None and chosen.where != str(beside):
        return inside
    try:
        record = json.loads(beside.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
