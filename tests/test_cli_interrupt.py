"""Ctrl-C while ``napari-sam2`` starts a command (its imports of numpy, torch and the model's code take seconds; parsing
and --help load none of them): one line and exit status 130, as during a run, not a long traceback; the package's
import stays cheap and its console names work.

Each command runs in its own process with an import hook that stalls the import of one module (it says so on
stderr, then sleeps), so SIGINT lands exactly while that module is being imported, with no timing guesswork.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parents[1]

STALL = """
import sys, time

class Stall:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            sys.stderr.write("stalling the import of " + name + "\\n")
            sys.stderr.flush()
            time.sleep(60)  # Ctrl-C lands here, inside the import
        return None

sys.meta_path.insert(0, Stall())
sys.argv[1:] = {argv!r}  # a command that runs: it reads a stack (numpy) and builds the model (torch)
"""


def entry_point() -> str:
    """``module:function`` of the ``napari-sam2`` console script, as pyproject.toml declares it."""
    text = (ROOT / "pyproject.toml").read_text()
    scripts = text.split("[project.scripts]", 1)[1]
    return re.search(r'^napari-sam2\s*=\s*"([^"]+)"', scripts, re.M).group(1)


def as_console_script() -> str:
    """What pip's generated ``napari-sam2`` script runs."""
    module, function = entry_point().split(":")
    return f"from {module} import {function}\nsys.exit({function}())\n"


AS_MODULE = "import runpy\nrunpy.run_module('napari_sam2.cli', run_name='__main__', alter_sys=True)\n"  # python -m


def interrupted_while_importing(module: str, start: str, folder: Path) -> subprocess.CompletedProcess:
    """Run ``start`` (Python) with the import of ``module`` stalled; SIGINT once the stall is reached. The command
    tracks a small stack written to ``folder`` (a command that only checks its arguments imports neither numpy nor
    torch now: the start-up is lazy)."""
    import numpy as np
    import tifffile

    stack = folder / "stack.tif"
    tifffile.imwrite(stack, np.zeros((2, 32, 32), np.uint8))
    argv = ["track", str(stack), "--auto", "-o", str(folder / "labels.tif")]
    command: List[str] = [sys.executable, "-c", STALL.format(module=module, argv=argv) + start]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = run.stderr.readline()
        assert first.startswith("stalling the import of"), first + run.stderr.read()
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    return subprocess.CompletedProcess(command, run.returncode, out, first + err)


@pytest.mark.parametrize("module, start", [("numpy", as_console_script()), ("torch", as_console_script()),
                                           ("torch", AS_MODULE)], ids=["numpy", "torch", "python-m"])
def test_ctrl_c_during_the_start_up_imports_prints_one_line_and_exits_130(module: str, start: str,
                                                                          tmp_path: Path) -> None:
    """Before: the console script's ``from napari_sam2.cli import main`` imported torch (through the package's
    __init__ and cli.py's own imports) outside any handler, so Ctrl-C there printed a KeyboardInterrupt traceback
    through importlib's frames and the process died of the signal."""
    done = interrupted_while_importing(module, start, tmp_path)
    lines = [line for line in done.stderr.splitlines() if not line.startswith("stalling the import of")]
    assert done.returncode == 130, done.stderr
    assert lines == ["napari-sam2: interrupted; nothing was written"], done.stderr
    assert done.stdout == ""


def test_the_entry_point_runs_the_command(capsys: pytest.CaptureFixture) -> None:
    """The console script's function is the command: --help, and a bad input's one-line reason with status 2."""
    import importlib

    module, function = entry_point().split(":")
    command = getattr(importlib.import_module(module), function)
    with pytest.raises(SystemExit) as helped:
        command(["--help"])
    assert helped.value.code == 0 and "usage: napari-sam2" in capsys.readouterr().out
    assert command(["evaluate", "/no/such/result", "/no/such/truth"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("napari-sam2:") and "Traceback" not in err


def test_importing_the_package_loads_no_torch_and_its_console_names_work() -> None:
    """``import napari_sam2`` (napari's plugin manager, the command's start-up) no longer imports torch; the console
    names are there on first use, and ``napari_sam2.batch`` stays the function even once the submodule of that name
    is imported (the import system binds a submodule to its package's attribute)."""
    probe = "import sys, napari_sam2; print('torch' in sys.modules, 'napari_sam2.api' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.split() == ["False", "False"]

    import napari_sam2
    import napari_sam2.batch
    from napari_sam2 import batch, get_session, get_widget, segment, track_cells

    assert batch is sys.modules["napari_sam2.batch"].batch and napari_sam2.batch is batch
    setattr(napari_sam2, "batch", sys.modules["napari_sam2.batch"])  # what the import system does
    assert napari_sam2.batch is batch and callable(batch)
    api = sys.modules["napari_sam2.api"]
    assert (segment, get_session, get_widget, track_cells) == (api.segment, api.get_session, api.get_widget,
                                                              api.track_cells)
    assert napari_sam2.export.save_labels_tiff  # submodules by name, as when __init__ imported them all
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        napari_sam2.no_such_name
