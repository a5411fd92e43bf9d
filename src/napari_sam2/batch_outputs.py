"""A stack's outputs in a batch run: written in a private folder, published by one rename.

Layout of an output folder ``OUT``::

    OUT/summary.csv            one row per stack (see napari_sam2.batch)
    OUT/<name>/manifest.json   written last: the stack, the settings and the files below
    OUT/<name>/labels.tif      (T, Y, X) labels (a uint16 ImageJ hyperstack; uint32 OME-TIFF past id 65535),
                               or labels.ome.zarr/ for large stacks
    OUT/<name>/objects.csv     one row per object and frame (area, centroid, bbox, intensity, score)
    OUT/.partial/              stacks being written (never a finished-looking name)
    OUT/.batch.lock            the run writing into OUT (pid, host): one run per output folder at a time

A task writes everything into ``OUT/.partial/<name>-<token>/``, writes the manifest last and then
renames the folder to ``OUT/<name>``. A worker killed at any point therefore leaves either nothing
under ``OUT/<name>`` or the previous complete result; the rename is atomic on one file system.

A rerun into ``OUT`` (:func:`plan_run`) reuses a result only when its manifest names the same input (resolved path,
size and modification time as recorded) and the same settings (the prompts CSV's content, the mode, the model, ...:
:func:`reusable_result`); a stack keeps the name of its earlier result, and no stack is given the name of an entry
of ``OUT`` that holds something else.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .units import unit_in

MANIFEST = "manifest.json"
PARTIAL = ".partial"
MANIFEST_VERSION = 1
# Labels larger than this (bytes of uint32) go to OME-Zarr, written plane by plane, instead of one
# in-memory TIFF. 2 GiB keeps a worker's peak memory well below common per-worker limits (4-16 GiB).
ZARR_ABOVE_BYTES = 2 * 1024**3


def labels_nbytes(shape: Sequence[int]) -> int:
    """Bytes of a uint32 labels array of ``shape``."""
    return int(np.prod([int(n) for n in shape], dtype=np.int64)) * 4


def new_partial_dir(out: Path, name: str) -> Path:
    """A fresh private folder for one attempt at stack ``name`` (unique per attempt)."""
    folder = Path(out) / PARTIAL / f"{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return folder


def create_zarr_labels(folder: Path, shape: Tuple[int, int, int], frame_axis: str = "t",
                       calibration: Any = None) -> Any:
    """An OME-Zarr (NGFF 0.4, zarr format 2) label image ``folder`` with a uint32 (T, Y, X) array "0" (frame_axis
    "t"), or (Z, Y, X) for frames through z ("z": the first axis is then space, as OME-Zarr viewers should show it).

    The group carries ``multiscales`` and the spec's ``image-label`` attributes (``{"version": "0.4"}``), so OME-Zarr
    readers (ome-zarr-py, napari-ome-zarr, ome-zarr-models' ``ImageLabel``) take it as labels, not as a grey image.
    It stands alone: the spec's ``labels/<name>`` group sits under the image it labels, and a batch run writes no
    copy of the stack's image (its source may be a TIFF), so ``image-label`` names no ``source``.

    calibration: the stack's pixel size, frame step and origin (an :class:`~.export.Calibration`, or None), written
    as the dataset's ``scale`` and ``translation`` and the axes' units (:func:`zarr_transforms`), the calibration
    :func:`write_labels_tiff` writes into a TIFF; without one: scale 1, no units, as before.
    Returns the array; chunks are one frame (at most 1024 x 1024), so each written plane is whole.
    """
    import zarr

    group = zarr.open_group(str(folder), mode="w", zarr_format=2)
    chunks = (1, min(int(shape[1]), 1024), min(int(shape[2]), 1024))
    array = group.create_array("0", shape=tuple(int(n) for n in shape), chunks=chunks, dtype="uint32", fill_value=0)
    axes, transforms = zarr_transforms(frame_axis, calibration)
    group.attrs["multiscales"] = [{
        "version": "0.4",
        "name": "labels",
        "axes": axes,
        "datasets": [{"path": "0", "coordinateTransformations": transforms}],
    }]
    group.attrs["image-label"] = {"version": "0.4"}  # labels, not intensities (OME-NGFF 0.4 "labels")
    return array


def zarr_transforms(frame_axis: str = "t", calibration: Any = None) -> Tuple[List[Dict[str, str]],
                                                                             List[Dict[str, Any]]]:
    """OME-NGFF 0.4 ``axes`` and ``coordinateTransformations`` of (T, Y, X) labels (frame_axis "t") or (Z, Y, X)
    ("z"): a ``scale`` of (frame step, row size, col size), each axis's ``unit`` (its OME-NGFF name: "micrometer",
    "second") where ``calibration`` names a known unit of that axis's kind (napari's "pixel" / "frame" are none), and
    a ``translation`` of the calibration's origin (t, y, x) where it is not 0. None: scale 1, no units."""
    step_kind = "space" if frame_axis == "z" else "time"
    axes = [{"name": "z" if frame_axis == "z" else "t", "type": step_kind},
            {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    if calibration is None:
        return axes, [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]
    length = unit_in(calibration.length_unit, "space")
    units = (unit_in(calibration.time_unit, step_kind), length, length)
    for axis, unit in zip(axes, units):
        if unit is not None:
            axis["unit"] = unit
    scale = [float(calibration.frame_interval), *(float(v) for v in calibration.pixel_size)]
    transforms: List[Dict[str, Any]] = [{"type": "scale", "scale": scale}]
    if any(calibration.origin):
        transforms.append({"type": "translation", "translation": [float(v) for v in calibration.origin]})
    return axes, transforms


def write_labels_tiff(labels: Any, path: Path, frame_axis: str = "t", calibration: Any = None) -> None:
    """(T, Y, X) labels as a zlib-compressed TIFF (BigTIFF when over 2 GiB): :func:`.export.save_labels_tiff`, its axes
    recorded as TYX, or ZYX for frames through z (``frame_axis`` "z"), as the OME-Zarr labels name them; with the
    stack's ``calibration`` (an :class:`~.export.Calibration`, or None) its pixel size and frame step. ``labels``: an
    array, or a stack read a frame at a time (e.g. a :class:`~sam2_model.tracking.lineage.ConsistentLabels`), written a
    plane at a time either way (no copy of the stack)."""
    from .export import save_labels_tiff

    save_labels_tiff(labels, path, f"{frame_axis.upper()}YX", calibration)


def write_manifest(folder: Path, record: Dict[str, Any]) -> None:
    """Write ``folder/manifest.json`` (last step before publishing); ``record["outputs"]`` must exist."""
    missing = [name for name in record.get("outputs", []) if not (folder / name).exists()]
    if missing:
        raise RuntimeError(f"refusing to write the manifest: outputs {missing} are missing in {folder}")
    payload = dict(record, version=MANIFEST_VERSION)
    scratch = folder / (MANIFEST + ".tmp")
    scratch.write_text(json.dumps(payload, indent=1, default=str))
    scratch.replace(folder / MANIFEST)


@dataclass(frozen=True)
class FoundResult:
    """What one entry of an output folder holds, from one read of its manifest: ``stack``, the resolved path of the
    stack whose result it is (complete or not; None: no batch result), and ``record``, its manifest when the result
    is complete (manifest and every output present), else None."""

    stack: Optional[str] = None
    record: Optional[Dict[str, Any]] = None


def find_result(folder: Path) -> FoundResult:
    """Read the manifest of ``folder`` once (see :class:`FoundResult`); an entry without one holds nothing."""
    try:
        raw = json.loads((Path(folder) / MANIFEST).read_text())
    except (OSError, ValueError):
        return FoundResult()
    if not isinstance(raw, dict):
        return FoundResult()
    stack = raw.get("stack")
    stack = str(Path(stack).resolve()) if isinstance(stack, str) and stack else None
    outputs = raw.get("outputs")
    complete = (isinstance(outputs, list) and bool(outputs) and raw.get("version") == MANIFEST_VERSION
                and all(isinstance(name, str) and (Path(folder) / name).exists() for name in outputs))
    return FoundResult(stack, raw if complete else None)


def stack_fingerprint(stack: Path) -> Optional[Dict[str, int]]:
    """What a stack's input looked like: ``{"files", "bytes", "mtime_ns"}`` (a file: 1, its size, its modification
    time; a zarr store or a folder of frames: the count and total size of its files and the newest modification
    time among them). None when it cannot be read (the run then fails with the reader's reason)."""
    try:
        stack = Path(stack)
        if not stack.is_dir():
            info = stack.stat()
            return {"files": 1, "bytes": int(info.st_size), "mtime_ns": int(info.st_mtime_ns)}
        files = total = newest = 0
        for root, _, names in os.walk(stack):
            for name in names:
                info = os.stat(os.path.join(root, name))
                files, total, newest = files + 1, total + info.st_size, max(newest, info.st_mtime_ns)
        return {"files": files, "bytes": int(total), "mtime_ns": int(newest)}
    except OSError:
        return None


def found_results(out: Path) -> Dict[str, FoundResult]:
    """Every entry of an output folder (no hidden names), each manifest read once: its name -> what it holds
    (:class:`FoundResult`; an empty one for anything else: summary.csv, a folder of the user's). {} when ``out``
    does not exist."""
    try:
        entries = sorted(Path(out).iterdir())
    except OSError:
        return {}
    return {entry.name: find_result(entry) if entry.is_dir() else FoundResult()
            for entry in entries if not entry.name.startswith(".")}


def prompts_fingerprint(path: Optional[Path]) -> Optional[Dict[str, Any]]:
    """What a prompts CSV held: ``{"path": its resolved path, "sha256": of its bytes}`` (a prompts table is small);
    None for no file (automatic tracking) or one that cannot be read."""
    if path is None:
        return None
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None
    return {"path": str(Path(path).resolve()), "sha256": digest}


def file_fingerprint(path: Path) -> Optional[Dict[str, int]]:
    """``{"bytes", "mtime_ns"}`` of a file (a checkpoint rewritten in place by a fine-tuning run), None if missing."""
    try:
        info = Path(path).stat()
    except OSError:
        return None
    return {"bytes": int(info.st_size), "mtime_ns": int(info.st_mtime_ns)}


def as_recorded(settings: Mapping[str, Any]) -> Dict[str, Any]:
    """``settings`` as a manifest holds them once written and read back (tuples become lists), so that the settings
    of a run compare equal to the same settings recorded."""
    return json.loads(json.dumps(dict(settings), default=str))


def settings_changes(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> List[str]:
    """The names of the settings (see :func:`reusable_result`) that differ between a result's manifest and this
    run, in ``wanted``'s order; the tracking options and the axes name their keys that differ. The prompts compare
    by content (their sha256), not by path. A setting recorded only when on (``invert``, ``frames``) and left out of
    ``wanted`` is off in this run: it differs where the result recorded it on (the result of a --frames run is not
    the whole stack's)."""
    changed: List[str] = []
    wanted = as_recorded(wanted)
    for key, value in wanted.items():
        before = recorded.get(key)
        if key == "prompts":
            same = (before or {}).get("sha256") == (value or {}).get("sha256") if before or value else True
        elif key in ("tracking_options", "axes") and isinstance(value, dict) and isinstance(before, dict):
            changed += [k for k in value if value[k] != before.get(k)] + [k for k in before if k not in value]
            continue
        else:
            same = before == value
        if not same:
            changed.append(key)
    return changed + [key for key in recorded if key not in wanted and recorded[key] not in (None, False)]


def _stale_by_settings(record: Mapping[str, Any], wanted: Mapping[str, Any], manifest: Path) -> str:
    """Why a complete result of the same stack was not made as this run would make it ("" when it was): its
    ``settings`` against ``wanted``. A manifest without them (an earlier version) is judged by what it does record:
    the mode, and for prompts the same CSV not modified since the manifest was written."""
    recorded = record.get("settings")
    if isinstance(recorded, dict):
        changed = settings_changes(recorded, wanted)
    else:
        changed = [] if record.get("mode") == wanted.get("mode") else ["mode"]
        prompts = wanted.get("prompts") or {}
        if not changed and prompts:
            now = file_fingerprint(Path(prompts["path"]))
            if record.get("prompts") != prompts["path"] or now is None or \
                    now["mtime_ns"] > manifest.stat().st_mtime_ns:
                changed.append("prompts")
    if changed == ["prompts"]:
        return "their prompts CSV changed since their result was made"
    if "mode" in changed:
        return f"their result was made {'with prompts' if wanted.get('mode') == 'auto' else 'by automatic tracking'}"
    return f"their result was made with other settings ({', '.join(_few(changed, 4))})" if changed else ""


def reusable_result(folder: Path, stack: Path, found: Optional[FoundResult] = None,
                    settings: Optional[Mapping[str, Any]] = None) -> Tuple[Optional[Dict[str, Any]], str]:
    """The manifest of ``folder`` when it holds a complete result made from ``stack`` as it is now (and, given
    ``settings``, made with them), else None and why not, in a few words for the console ("their input changed since
    their result was made", "their result was made with other settings (cell_diameter)", ...; "" where there is no
    complete result of this stack at all).

    The same input means: the manifest's ``stack`` is ``stack``'s resolved path, and the input's size and
    modification time (:func:`stack_fingerprint`) are those recorded when it was run; for a manifest without
    them (written by an earlier version), the input was not modified after the manifest was written.
    settings: what decides the result besides the stack (the mode, the prompts CSV's content, the model and its
    weights, input size, object window, direction, tracking options, axes, smoothing, contrast limits: the
    ``settings`` a manifest records, see :func:`settings_changes`); None: not compared.
    ``found``: what ``folder`` holds, already read (:func:`find_result`; None: read it here).
    """
    found = find_result(folder) if found is None else found
    record = found.record
    if record is None or found.stack != str(Path(stack).resolve()):
        return None, ""
    now = stack_fingerprint(Path(stack))
    recorded = record.get("input")
    if isinstance(recorded, dict):
        changed = now != recorded
    else:
        changed = now is None or now["mtime_ns"] > (Path(folder) / MANIFEST).stat().st_mtime_ns
    if changed:
        return None, "their input changed since their result was made"
    why = "" if settings is None else _stale_by_settings(record, settings, Path(folder) / MANIFEST)
    return (None, why) if why else (record, "")


def check_out(out: Path, stacks: Sequence[Path], option: str) -> None:
    """Check the output folder without creating anything; ValueError (naming ``option``) for a file, an input, or a
    folder that cannot be created or written."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{option}: {out} is a file; it expects a folder for the results (new or existing)")
    resolved = out.resolve()
    for stack in stacks:
        if stack.resolve() == resolved or (stack.is_dir() and stack.resolve() in resolved.parents):
            raise ValueError(f"{option}: {out} is or lies inside the input stack {stack}; choose a folder outside it")
    existing = next(p for p in (resolved, *resolved.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{option}: the folder {out} cannot be created ({existing} is a file)")
    if not os.access(existing, os.W_OK):
        raise ValueError(f"{option}: {out} is not writable" if existing == resolved else
                         f"{option}: the folder {out} cannot be created ({existing} is not writable)")


def prepare_out(out: Path, stacks: Sequence[Path], option: str) -> Optional[Path]:
    """Check (:func:`check_out`) and create the output folder; returns the outermost folder this created (None
    when ``out`` existed), so that a run that writes nothing can remove it again."""
    check_out(out, stacks, option)
    missing = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{option}: the folder {out} cannot be created ({error.strerror or error})") from None
    return missing[-1] if missing else None


#: ``OUT/.batch.lock``: held by the run writing into ``OUT`` (hidden: never a result's or an input's name)
LOCK = ".batch.lock"


class OutputFolderBusy(ValueError):
    """Another batch run holds the output folder's lock (a usage error: exit code 2)."""


def _lock_holder(text: str) -> Dict[str, Any]:
    try:
        held = json.loads(text)
    except ValueError:
        return {}
    return held if isinstance(held, dict) else {}


def _holder_is_gone(held: Mapping[str, Any]) -> bool:
    """True when the lock's run is known to be over: it names this machine and a process that no longer runs (or a
    process started after the lock was taken: its number was reused). A lock of another machine is never judged."""
    pid, started = held.get("pid"), held.get("started_s")
    if held.get("host") != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's process: it runs
        return False
    try:
        import psutil  # a dependency of distributed

        return isinstance(started, (int, float)) and psutil.Process(pid).create_time() > started + 1
    except Exception:  # no psutil, or the process ended meanwhile (then the next try takes the lock)
        return False


def take_lock(out: Path, option: str = "out") -> str:
    """Take ``OUT/.batch.lock`` (created with O_EXCL: of two runs, one gets it) holding this process's pid, host and
    start time; returns what it holds (for :func:`release_lock`). A lock left by a run that ended without releasing
    it (killed: its process is gone from this machine) is taken over. OutputFolderBusy, naming the other run and
    ``option``, while another run holds it."""
    lock = Path(out) / LOCK
    mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                       "started_s": time.time(), "token": uuid.uuid4().hex})
    held: Dict[str, Any] = {}
    for _ in range(5):
        try:
            handle = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                text = lock.read_text()
            except FileNotFoundError:  # released meanwhile: try again
                continue
            held = _lock_holder(text)
            if not _holder_is_gone(held):
                break
            with contextlib.suppress(FileNotFoundError):
                if lock.read_text() == text:  # still the dead run's (not one taken meanwhile)
                    lock.unlink()
            continue
        except OSError as error:
            raise ValueError(f"{option}: cannot write in {out} ({error.strerror or error})") from None
        with os.fdopen(handle, "w") as stream:
            stream.write(mine)
        return mine
    who = (f"pid {held.get('pid')} on {held.get('host')}, started {held.get('started')}" if held
           else "its lock is being written")
    raise OutputFolderBusy(f"{option} {out} is in use by another batch run ({who}): wait for it to end, or choose "
                           f"another {option}; if that run is no longer going (its machine was restarted), delete "
                           f"{lock}")


def release_lock(out: Path, mine: str) -> None:
    """Remove ``OUT/.batch.lock`` if it is still the one :func:`take_lock` wrote (``mine``)."""
    lock = Path(out) / LOCK
    with contextlib.suppress(OSError):
        if lock.read_text() == mine:
            lock.unlink()


@contextlib.contextmanager
def out_lock(out: Path, option: str = "out") -> Iterator[None]:
    """Hold ``OUT``'s lock while the block runs (:func:`take_lock`); released however the block ends."""
    mine = take_lock(out, option)
    try:
        yield
    finally:
        release_lock(out, mine)


def remove_if_empty(out: Path, created: Optional[Path]) -> bool:
    """Remove ``out`` and its parents up to ``created`` (see :func:`prepare_out`) where they are empty; True when
    ``out`` is gone."""
    if created is None:
        return False
    for folder in (out, *out.parents):
        try:
            folder.rmdir()
        except OSError:
            return False
        if folder == created:
            return True
    return True


@dataclass
class RunPlan:
    """What a run does with its stacks, decided from the output folder before anything is created.

    names: each stack's output name (in input order); reused: name -> the manifest of a stack's complete result
    from the same input (the stack is skipped); others: name -> the manifest of each complete result made from a
    stack that is not among this run's (summary.csv keeps listing them); notes: what the console says before the
    run (stacks given a longer name, results no longer current).
    """

    names: List[str]
    reused: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    others: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)


def _kept_names(stacks: Sequence[Path], found: Mapping[str, FoundResult]) -> Dict[Path, str]:
    """Stacks whose results are in the output folder (``found``: :func:`found_results`) keep that folder's name;
    where one stack has several (left by an older version), the complete one, then the shortest name."""
    wanted = {str(p.resolve()): p.resolve() for p in stacks}
    kept: Dict[Path, str] = {}
    for name in sorted(found, key=lambda n: (found[n].record is None, len(n), n)):
        stack = found[name].stack
        if stack in wanted and wanted[stack] not in kept:
            kept[wanted[stack]] = name
    return kept


def plan_run(stacks: Sequence[Path], out: Path, overwrite: bool,
             settings: Optional[Callable[[Path], Mapping[str, Any]]] = None) -> RunPlan:
    """Name the stacks and find the results in ``out`` that are reused (see :class:`RunPlan`); reads ``out`` only.

    A result in ``out`` is reused (the stack skipped) only when it is complete, was made from the same input
    (:func:`reusable_result`: the same resolved path, size and modification time unchanged) and, given
    ``settings`` (a stack -> what decides its result: its prompts CSV's content, the mode, the model, ...), with
    the same settings, and ``overwrite`` is off; the notes say which stacks run again and why. A stack keeps the
    name of its earlier result (complete or not); other stacks never get the name of an entry of ``out``
    (:func:`.batch_inputs.stack_names`), so a result of another input is never taken for this one's, nor replaced.
    """
    from .batch_inputs import stack_names, stack_stem

    found = found_results(out)  # each manifest read once
    earlier = {name: result.stack for name, result in found.items()}  # name -> its stack (None: not a result)
    kept = _kept_names(stacks, found)
    resolved = {str(p.resolve()) for p in stacks}
    others = [Path(s) for s in earlier.values() if s is not None and s not in resolved]
    plan = RunPlan(stack_names(stacks, kept, taken=earlier, others=others))
    renamed: List[str] = []
    changed: Dict[str, List[str]] = {}  # why -> the stacks run again for it
    for path, name in zip(stacks, plan.names):
        if path.resolve() not in kept:
            stem = stack_stem(path)
            if name != stem and earlier.get(stem) is not None and earlier[stem] not in resolved:
                renamed.append(f"{name} ({out / stem} holds the result of {earlier[stem]})")
            continue
        if overwrite:
            continue
        record, why = reusable_result(out / name, path, found.get(name), None if settings is None else settings(path))
        if record is not None:
            plan.reused[name] = record
        elif why:
            changed.setdefault(why, []).append(name)
    for name, result in found.items():
        if result.record is not None and result.stack is not None and result.stack not in resolved:
            plan.others[name] = dict(result.record, stack=result.stack)
    if renamed:
        plan.notes.append(f"{len(renamed)} stack{'s' if len(renamed) != 1 else ''} written under a longer name, "
                          f"the short one holding another stack's result: " + "; ".join(_few(renamed)))
    for why, names in changed.items():
        plan.notes.append(f"run again, {why}: " + ", ".join(_few(names)))
    return plan


def _few(items: Sequence[str], most: int = 3) -> List[str]:
    return list(items[:most]) + ([f"and {len(items) - most} more"] if len(items) > most else [])


def publish(partial: Path, final: Path) -> None:
    """Move a finished private folder to its final name, replacing an earlier result.

    The old folder is first moved aside (so ``final`` never holds a mix) and deleted afterwards.
    """
    final = Path(final)
    aside: Optional[Path] = None
    if final.exists():
        aside = partial.parent / f"{partial.name}-replaced"
        final.rename(aside)
    partial.rename(final)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def discard(folder: Optional[Path]) -> None:
    """Delete a private folder of a failed attempt (missing is fine)."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def clean_partials(out: Path, names: Sequence[str]) -> List[Path]:
    """Delete leftovers of earlier killed attempts at ``names``; returns what was deleted.

    Only call this before submitting those stacks: one batch run per output folder at a time.
    """
    root = Path(out) / PARTIAL
    if not root.is_dir():
        return []
    wanted = set(names)
    removed = []
    for entry in root.iterdir():
        owner = entry.name.rsplit("-", 2)[0]  # "<name>-<pid>-<token>"
        if owner in wanted or entry.name.endswith("-replaced"):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def remove_partial_root(out: Path) -> None:
    """Remove ``OUT/.partial`` when it is empty (nothing in flight)."""
    try:
        (Path(out) / PARTIAL).rmdir()
    except OSError:
        pass
