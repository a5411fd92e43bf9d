"""Checks of the command line's output paths, made before any work (before the model is built).

Each check names the option, what was wrong and what it accepts: an output that is an input (or lies inside a
folder being read), a folder where a file is expected or a file where a folder is expected, a folder that cannot
be created or written. Missing parent folders are created.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence, Tuple

Named = Tuple[str, Path]  # (option or description, path)


def same_path(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same file or folder (``os.path.samefile`` when both exist)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_not_input(option: str, output: Path, inputs: Sequence[Named]) -> None:
    """ValueError when ``output`` is one of ``inputs`` or lies inside an input folder (a folder of frames, zarr)."""
    for name, source in inputs:
        if source is None:
            continue
        source = Path(source).expanduser()
        if same_path(output, source):
            raise ValueError(f"{option} {output} is the same file as {name} {source}: writing it would overwrite "
                             "the input; choose another output name")
        if source.is_dir() and source.resolve() in output.resolve().parents:
            raise ValueError(f"{option} {output} lies inside {name} {source}, which is read as input; choose an "
                             "output outside it")


def check_distinct(outputs: Sequence[Named]) -> None:
    """ValueError when two options name the same output path."""
    for i, (first, a) in enumerate(outputs):
        for second, b in outputs[i + 1:]:
            if same_path(a, b):
                raise ValueError(f"{first} and {second} both name {a}; give each output its own path")


def make_parent(option: str, path: Path) -> None:
    """Create the folders above ``path`` and check that a file can be created there (ValueError otherwise)."""
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ValueError(f"{option} {path} cannot be written: {blocker} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".check"):
            pass
    except OSError as error:
        raise ValueError(f"{option} {path} cannot be written ({error.strerror or error})") from None


def prepare_file(option: str, path: Path, suffixes: Optional[Sequence[str]] = None, kind: str = "file",
                 example: str = "name", create: bool = True) -> Path:
    """Check an output file before any work; returns its absolute path.

    ``suffixes``: the accepted endings (e.g. (".tif", ".tiff")), or None for any; ``kind`` and ``example`` name
    the file in messages (e.g. "labels file", "labels.tif"); ``create=False`` checks without creating folders.
    """
    path = Path(path).expanduser().absolute()
    if suffixes and path.suffix.lower() not in suffixes:
        accepted = " or ".join(suffixes)
        raise ValueError(f"{option} must name a {accepted} file, got {path.name!r}")
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; name the {kind} inside it (e.g. {path / example})")
    if create:
        make_parent(option, path)
    return path


def prepare_folder(option: str, path: Path, must_be_new: bool = False, create: bool = True) -> Path:
    """Check an output folder before any work: a new or empty folder (``must_be_new``: a name that does not
    exist yet). The folders above it are created (unless ``create`` is False); returns its absolute path."""
    path = Path(path).expanduser().absolute()
    if path.exists() and must_be_new:
        raise ValueError(f"{option} {path} exists: choose a new name")
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file; it expects a folder: choose a new or empty folder")
    if path.is_dir() and any(path.iterdir()):
        raise ValueError(f"{option} {path} exists and is not empty: choose a new folder")
    if create:
        make_parent(option, path)
    return path
