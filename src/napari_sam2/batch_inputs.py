"""Which stacks a batch run processes: files, folders and glob patterns -> stack paths, names, prompts.

A stack is a multi-page TIFF / OME-TIFF, a .npy file, a zarr folder (OME-Zarr: its array "0") or a
folder of single-frame images. A folder given as input is one stack when it is a zarr store or holds
only single-frame images; otherwise each stack directly inside it is one stack (multi-page TIFFs,
.npy files, zarr folders, sub-folders of frames; not searched deeper). Files that cannot be read
are kept as stacks so that the run records why they failed.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

from sam2_model.frames_io import FRAME_SUFFIXES, TIFF_SUFFIXES, natural_key

PathLike = Union[str, os.PathLike]
STACK_SUFFIXES = TIFF_SUFFIXES + (".npy", ".zarr")
_GLOB_CHARS = set("*?[")


def is_zarr_store(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in ("zarr.json", ".zarray", ".zgroup"))


def _is_single_frame(path: Path) -> bool:
    """True for a 2D (or 2D RGB) image file; False for a multi-page stack or an unreadable file."""
    suffix = path.suffix.lower()
    if suffix not in TIFF_SUFFIXES:
        return suffix in FRAME_SUFFIXES
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, axes = tuple(series.shape), series.axes
    except Exception:  # unreadable: a stack candidate that will fail with its reason
        return False
    return len(shape) == 2 or (len(shape) == 3 and axes.endswith("S"))


def _images(folder: Path) -> List[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
         and p.suffix.lower() in FRAME_SUFFIXES + (".npy",)),
        key=lambda p: natural_key(p.name),
    )


def _stacks_in_folder(folder: Path) -> List[Path]:
    if is_zarr_store(folder):
        return [folder]
    files = _images(folder)
    if files and all(_is_single_frame(p) for p in files):
        return [folder]
    stacks: List[Path] = list(files)
    for sub in sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                      key=lambda p: natural_key(p.name)):
        if is_zarr_store(sub):
            stacks.append(sub)
        else:
            frames = _images(sub)
            if frames and all(_is_single_frame(p) for p in frames):
                stacks.append(sub)
    return stacks


def find_stacks(inputs: Union[PathLike, Sequence[PathLike]], exclude: Optional[PathLike] = None) -> List[Path]:
    """Stack paths named by ``inputs`` (files, folders, glob patterns), in order, without duplicates.

    exclude: a folder whose contents are never taken as inputs (the run's output folder).
    Raises ValueError for an input that names nothing (missing path, pattern without matches).
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    skip = Path(exclude).resolve() if exclude is not None else None
    found: List[Path] = []
    for item in inputs:
        text = os.path.expanduser(str(item))
        if _GLOB_CHARS & set(text):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True), key=natural_key)]
            if not matches:
                raise ValueError(f"inputs: the pattern {text!r} matches no file or folder")
            paths: Iterable[Path] = matches
            explicit = False
        else:
            path = Path(text)
            if not path.exists():
                raise ValueError(f"inputs: {path} does not exist (give stack files, folders or glob patterns)")
            paths, explicit = [path], True
        for path in paths:
            if path.is_dir() and not is_zarr_store(path):
                found.extend(_stacks_in_folder(path))
            elif path.is_dir() or path.suffix.lower() in FRAME_SUFFIXES + STACK_SUFFIXES:
                found.append(path)
            elif explicit:  # a pattern's other matches (prompt CSVs, notes) are passed over
                raise ValueError(f"inputs: {path} is not a stack (accepted: {', '.join(STACK_SUFFIXES)}, "
                                 "zarr folders and folders of frames)")
    unique: Dict[Path, Path] = {}
    for path in found:
        resolved = path.resolve()
        if skip is not None and (resolved == skip or skip in resolved.parents):
            continue
        unique.setdefault(resolved, path)
    if not unique:
        raise ValueError(f"inputs: no stacks found in {[str(i) for i in inputs]}")
    return list(unique.values())


def stack_stem(path: Path) -> str:
    """'a.ome.tif' -> 'a', 'b.zarr' -> 'b', a frames folder -> its name."""
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr") + STACK_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def stack_names(paths: Sequence[Path]) -> List[str]:
    """A distinct output name per stack: its stem, or '<parent>_<stem>' where stems collide."""
    stems = [stack_stem(p) for p in paths]
    names = [f"{p.resolve().parent.name}_{s}" if stems.count(s) > 1 else s for p, s in zip(paths, stems)]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise ValueError(f"inputs: several stacks would be written as {clashes}; rename them or run them separately")
    bad = [n for n in names if not n or n.startswith(".")]
    if bad:
        raise ValueError(f"inputs: stack names {bad} cannot be output folder names")
    return names


def prompt_candidates(stack: Path, prompts_dir: Optional[PathLike] = None) -> List[Path]:
    """Where a stack's prompts CSV is looked for, in order: ``<stem>.csv``, then ``<stem>_prompts.csv``,
    in ``prompts_dir`` when given, else beside the stack."""
    stem = stack_stem(stack)
    folder = Path(prompts_dir) if prompts_dir is not None else stack.parent
    return [folder / f"{stem}.csv", folder / f"{stem}_prompts.csv"]


def find_prompts(stack: Path, prompts_dir: Optional[PathLike] = None) -> Optional[Path]:
    """The first existing prompts CSV for ``stack`` (see :func:`prompt_candidates`), or None."""
    return next((p for p in prompt_candidates(stack, prompts_dir) if p.is_file()), None)
