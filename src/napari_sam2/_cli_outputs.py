"""Checks of the command line's output paths, made before any work (before the model is built).

Each check names the option, what was wrong and what it accepts: an output that is an input (or lies inside a
folder being read), a folder where a file is expected or a file where a folder is expected, a folder that cannot
be created or written, an output that exists (replaced only with --overwrite). The checks leave nothing behind (a
trial file or folder is removed at once): missing folders are made when the outputs are written, once every check
has passed and the work is done. Once they are committed, Ctrl-C no longer stops the command
(:func:`ignore_ctrl_c_from_now`): it ends with the line that says what was written.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple

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


def check_writable(option: str, path: Path) -> None:
    """Check that ``path`` could be created, leaving nothing behind (ValueError otherwise): a trial file in its folder,
    or where that folder is missing a trial folder in the nearest existing folder above it, is made and removed at
    once. Missing folders are made only when the outputs are written."""
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ValueError(f"{option} {path} cannot be written: {blocker} is a file, not a folder")
    existing = next(p for p in path.parents if p.exists())
    if existing == path.parent:  # try it: a temporary file, removed at once
        try:
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".check"):
                pass
        except OSError as error:
            raise ValueError(f"{option} {path} cannot be written ({error.strerror or error})") from None
    else:  # try it: a temporary folder where the first missing one would go, removed at once (os.access says yes
        try:  # to root everywhere, also in /sys or on a read-only mount)
            os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".napari-sam2-", suffix=".check"))
        except OSError as error:
            raise ValueError(f"{option} {path} cannot be written: its folders cannot be created in {existing} "
                             f"({error.strerror or error})") from None


def refuse_existing(option: str, path: Path, what: str) -> None:
    """ValueError for an output ``path`` that exists, naming --overwrite (``what``: what it would replace)."""
    raise ValueError(f"{option} {path} exists: choose a new name, or pass --overwrite to replace {what}")


def prepare_file(option: str, path: Path, suffixes: Optional[Sequence[str]] = None, kind: str = "file",
                 example: str = "name", overwrite: bool = False) -> Path:
    """Check an output file before any work, creating nothing; returns its absolute path.

    ``suffixes``: the accepted endings (e.g. (".tif", ".tiff")), or None for any; ``kind`` and ``example`` name
    the file in messages (e.g. "labels file", "labels.tif"); an existing file is refused unless ``overwrite``
    (--overwrite) is given.
    """
    path = Path(path).expanduser().absolute()
    if suffixes and path.suffix.lower() not in suffixes:
        accepted = " or ".join(suffixes)
        raise ValueError(f"{option} must name a {accepted} file, got {path.name!r}")
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; name the {kind} inside it (e.g. {path / example})")
    if (path.exists() or path.is_symlink()) and not overwrite:
        refuse_existing(option, path, "it")
    check_writable(option, path)
    return path


def prepare_folder(option: str, path: Path, must_be_new: bool = False, overwrite: bool = False,
                   replaceable: Optional[Callable[[Path], None]] = None, what: str = "it") -> Path:
    """Check an output folder before any work, creating nothing: a new or empty folder (``must_be_new``: a name
    that does not exist yet). With ``overwrite`` (--overwrite) an existing one is accepted when ``replaceable(path)``
    raises no ValueError (an earlier result of the same kind, ``what``). Returns its absolute path."""
    path = Path(path).expanduser().absolute()
    if path.exists() and not path.is_dir() and not must_be_new:
        raise ValueError(f"{option} {path} is a file; it expects a folder: choose a new or empty folder")
    taken = path.exists() and (must_be_new or any(path.iterdir()))
    if taken and not overwrite:
        if must_be_new:
            refuse_existing(option, path, what)
        raise ValueError(f"{option} {path} exists and is not empty: choose a new folder, or pass --overwrite to "
                         f"replace {what}")
    if taken and replaceable is not None:
        try:
            replaceable(path)
        except ValueError as error:
            raise ValueError(f"{option}: {error} (--overwrite replaces {what} only)") from None
    check_writable(option, path)
    return path


def ignore_ctrl_c_from_now() -> None:
    """Ctrl-C (SIGINT) no longer stops this process: called just before the outputs are renamed into place, once
    nothing is left to cut short but the lines that say what was written. Before, a Ctrl-C in the instant after they
    were committed printed "interrupted; nothing was written" (wrong: the files were there) or, once Python's
    shutdown had given SIGINT back to the system, ended the process by the signal with a traceback and no line.
    Only in the main thread (signals are handled there; elsewhere nothing changes). A Ctrl-C before this call raises
    KeyboardInterrupt as before, with nothing committed. :func:`ctrl_c_restored` gives Ctrl-C back."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def ctrl_c_restored(restore: bool) -> Iterator[None]:
    """Around a command: with ``restore`` (the command called from Python, e.g. ``cli.main([...])`` in a script or a
    test), Ctrl-C is handled again afterwards as before (:func:`ignore_ctrl_c_from_now` may have turned it off);
    without (the ``napari-sam2`` process itself), it stays off up to the process's end, through Python's shutdown."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous: Any = signal.getsignal(signal.SIGINT) if main_thread else None
    try:
        yield
    finally:
        if restore and previous is not None and signal.getsignal(signal.SIGINT) is not previous:
            signal.signal(signal.SIGINT, previous)
