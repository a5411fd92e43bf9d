"""Outputs written under a temporary name in the target's folder and renamed when complete.

``tempfile.mkstemp``/``mkdtemp`` create owner-only entries (0o600 / 0o700); results on a shared drive must be
readable by colleagues, so every temporary file or folder made here gets the mode a plain ``open()``/``mkdir()``
would give (0o666 / 0o777 masked by the process umask) before it is renamed into place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

PathLike = Union[str, os.PathLike]
_UMASK: Optional[int] = None
_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask: read from /proc/self/status where the system shows it (no change, so no window in which
    another thread would create files under a wrong mask); elsewhere read once by setting and restoring it."""
    global _UMASK
    shown = _shown_umask()
    if shown is not None:
        return shown
    with _LOCK:
        if _UMASK is None:
            _UMASK = os.umask(0o022)
            os.umask(_UMASK)
        return _UMASK


def _shown_umask() -> Optional[int]:
    try:
        with open("/proc/self/status") as status:  # Linux >= 4.7
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0o666 less the umask."""
    return 0o666 & ~current_umask()


def folder_mode() -> int:
    """The mode ``Path.mkdir()`` gives a new folder: 0o777 less the umask."""
    return 0o777 & ~current_umask()


def naming_target(error: OSError, target: PathLike) -> OSError:
    """``error`` (raised on a hidden temporary file beside ``target``) as the same kind of OSError about ``target``,
    the file the user asked for, and its folder: "[Errno 13] Permission denied (cannot write in /data/run: choose a
    folder you can write to): '/data/run/s.sam2.npz'"; errors about other files are returned as they are."""
    target = Path(target)
    if error.filename is None or Path(error.filename).parent != target.parent or \
            not Path(error.filename).name.startswith(f".{target.name}"):
        return error
    advice = (": choose a folder you can write to" if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else "")
    return type(error)(error.errno, f"{error.strerror} (cannot write in {target.parent}{advice})", str(target))


def write_failed(target: PathLike, reason: str) -> OSError:
    """An OSError about ``target`` and its folder for a writer's failure that is no OSError: ``reason`` is its text,
    e.g. torch.save's C++ writer's RuntimeError "[enforce fail at inline_container.cc:747] . open file failed with
    strerror: Operation not permitted" (the kind that strerror names: a PermissionError here, worded as
    :func:`naming_target`) or "... unexpected pos 704 vs 598" (a drive full or over quota: a plain OSError that says
    so; its text names ``target``)."""
    target = Path(target)
    text = re.sub(r"^\[enforce fail at [^\]]*\][ .]*", "", str(reason)).strip() or "the write failed"
    said = re.search(r"strerror: (.+)$", text)
    code = next((code for code in sorted(errno.errorcode) if said and os.strerror(code) == said.group(1).strip()),
                None)
    if code is not None:
        return naming_target(OSError(code, os.strerror(code), str(target.with_name(f".{target.name}"))), target)
    return OSError(f"cannot write {target} ({text}; is the drive full or over its quota?): free some space or choose "
                   f"a folder other than {target.parent}")


def temporary_file(target: PathLike, suffix: str = ".tmp") -> Path:
    """A new empty file beside ``target`` (hidden name), with the mode of a plain ``open()``; an OSError names
    ``target`` and its folder, not the hidden name (:func:`naming_target`)."""
    target = Path(target)
    try:
        handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    except OSError as error:
        raise naming_target(error, target) from None
    try:
        os.fchmod(handle, file_mode())
    finally:
        os.close(handle)
    return Path(name)


def temporary_folder(target: PathLike) -> Path:
    """A new empty folder beside ``target`` (hidden name), with the mode of a plain ``mkdir()``."""
    target = Path(target)
    folder = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    os.chmod(folder, folder_mode())
    return folder


@contextlib.contextmanager
def atomic_file(target: PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; renamed to ``target`` when the block ends without error.

    On any error (Ctrl-C included) the temporary file is removed and ``target`` is left as it was; an OSError on the
    temporary file (writing it, renaming it) names ``target`` instead (:func:`naming_target`).
    """
    target = Path(target)
    temporary = temporary_file(target, suffix)
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        told = naming_target(error, target) if isinstance(error, OSError) else error
        if told is not error:
            raise told from None
        raise


def remove(path: Path) -> None:
    """Delete a file or a folder tree (missing is fine)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def staging_path(target: PathLike) -> Path:
    """A free hidden name beside ``target`` to write it under before :func:`publish_together`."""
    target = Path(target)
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")


def publish_together(moves: Sequence[Tuple[PathLike, PathLike]]) -> None:
    """Rename every (written, final) pair into place, all or nothing.

    A final file or (empty) folder that exists is moved aside first; if any rename fails (or Ctrl-C arrives),
    the finals already placed are removed, the old ones put back and the written ones deleted. On success the
    old ones are deleted.
    """
    placed: List[Tuple[Path, Path, Optional[Path]]] = []
    try:
        for written, final in moves:
            written, final = Path(written), Path(final)
            aside = None
            if final.exists() or final.is_symlink():
                aside = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.old")
                os.replace(final, aside)
            placed.append((written, final, aside))
            os.replace(written, final)
    except BaseException:
        for written, final, aside in reversed(placed):
            if not written.exists():  # it was moved into place: take it back out
                remove(final)
            if aside is not None:
                os.replace(aside, final)
        for written, _ in moves:
            remove(Path(written))
        raise
    for _, _, aside in placed:
        if aside is not None:
            remove(aside)
