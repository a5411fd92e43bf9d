"""``napari-sam2 --help``, an unknown option or a missing file answer without loading torch, napari or dask (they
took seconds to import before the arguments were parsed); the heavy modules load only when a command runs.

Each check runs in a fresh interpreter, so what the test process itself imported does not count.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "napari", "dask")

PROBE = """
import sys
from napari_sam2.cli import main
try:
    code = main({argv!r})
except SystemExit as done:
    code = done.code
print("exit", code, file=sys.stderr)
print(" ".join(name for name in {heavy!r} if name in sys.modules) or "-")
"""


def run_main(argv: List[str]) -> subprocess.CompletedProcess:
    """``napari_sam2.cli.main(argv)`` in a fresh interpreter; stdout's last line: the heavy modules it loaded."""
    return subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def loaded(done: subprocess.CompletedProcess) -> str:
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("argv", [["--help"], ["track", "--help"], ["batch", "--help"], ["evaluate", "--help"]])
def test_help_loads_no_torch(argv: List[str]) -> None:
    done = run_main(argv)
    assert "exit 0" in done.stderr, done.stderr
    assert "usage: napari-sam2" in done.stdout
    assert loaded(done) == "-", f"{argv} imported {loaded(done)}"


def test_python_m_help_loads_no_torch() -> None:
    """``python -m napari_sam2.cli track --help`` (the module's own entry): -X importtime lists every import."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "napari_sam2.cli", "track", "--help"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage: napari-sam2 track" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_a_bad_option_loads_no_torch() -> None:
    done = run_main(["track", "movie.tif", "--no-such-option"])
    assert "exit 2" in done.stderr and "unrecognized arguments: --no-such-option" in done.stderr, done.stderr
    assert loaded(done) == "-"


@pytest.mark.parametrize("missing", ["stack", "prompts"])
def test_a_missing_file_is_said_without_loading_torch(tmp_path: Path, missing: str) -> None:
    stack, prompts = tmp_path / "movie.tif", tmp_path / "clicks.csv"
    if missing != "stack":
        stack.write_bytes(b"")  # never read: the missing prompts are said first
    if missing != "prompts":
        prompts.write_text("frame,obj_id,y,x,label\n0,1,5,5,1\n")
    done = run_main(["track", str(stack), "--prompts", str(prompts), "-o", str(tmp_path / "labels.tif")])
    assert "exit 2" in done.stderr, done.stderr
    named = stack if missing == "stack" else prompts
    assert f"{named}" in done.stderr and "no such file" in done.stderr, done.stderr
    assert loaded(done) == "-"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (stack, prompts) if p.exists())


def test_a_missing_stack_with_auto_is_said_without_loading_torch(tmp_path: Path) -> None:
    done = run_main(["track", str(tmp_path / "movie.tif"), "--auto", "--ctc", str(tmp_path / "res")])
    assert "exit 2" in done.stderr and "no such file or folder" in done.stderr, done.stderr
    assert loaded(done) == "-"
    assert list(tmp_path.iterdir()) == []


def test_the_parsers_constants_are_the_models() -> None:
    """The values the parser repeats (so that it needs no torch) are the model's own."""
    from sam2_model.build import Weights
    from sam2_model.tracking import MIN_CONTRAST, SEEDINGS

    from napari_sam2 import _cli_auto

    assert _cli_auto.SEEDINGS == tuple(SEEDINGS)
    assert _cli_auto.MIN_CONTRAST == MIN_CONTRAST
    assert _cli_auto.WEIGHTS_DEFAULT == Weights.DOWNLOAD.value


def test_a_glob_pattern_is_not_refused_as_missing(tmp_path: Path) -> None:
    """A stack named by a pattern (frames/t*.tif) is the reader's to expand: the early check lets it through."""
    from napari_sam2.cli import check_stack_path

    check_stack_path(tmp_path / "t*.tif")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        check_stack_path(tmp_path / "t0.tif")


def test_a_stack_under_the_home_folder_is_found(tmp_path: Path, monkeypatch) -> None:
    """``~/movie.tif`` (quoted in a shell, or from Python) is the home folder's file, as the reader reads it: the early
    check refused it ("no such file or folder") before it expanded "~"."""
    from napari_sam2.cli import check_stack_path
    from sam2_model.frames_io import GLOB_CHARACTERS

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "movie.tif").write_bytes(b"")
    check_stack_path(Path("~/movie.tif"))
    with pytest.raises(FileNotFoundError, match="no such file or folder: ~/other.tif"):
        check_stack_path(Path("~/other.tif"))
    assert all(GLOB_CHARACTERS.search(c) for c in "*?[")  # the characters the early check lets through
