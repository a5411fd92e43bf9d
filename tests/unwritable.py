"""Folders and files the tests make unwritable, as a user's locked drive would be: chmod, or the immutable flag
(chattr +i) where the tests run as root, whom modes do not stop."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest


def lock(path: Path) -> Optional[Callable[[], None]]:
    """Make ``path`` (a folder or a file) unwritable; returns the undo, or None where neither way works here."""
    folder = path.is_dir()

    def writable() -> bool:
        try:
            if folder:
                (path / ".probe").touch()
                (path / ".probe").unlink()
            else:
                path.open("ab").close()
            return True
        except OSError:
            return False

    mode = path.stat().st_mode
    path.chmod(0o555 if folder else 0o444)
    if not writable():
        return lambda: path.chmod(mode)
    path.chmod(mode)
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0:
        if not writable():
            return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)
        subprocess.run(["chattr", "-i", str(path)], check=True)
    return None


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[Path]:
    """``path`` unwritable meanwhile (:func:`lock`); the test is skipped where this machine cannot make it so."""
    unlock = lock(path)
    if unlock is None:
        pytest.skip(f"cannot make {path} unwritable here")
    try:
        yield path
    finally:
        unlock()
