"""OpenMP's idle threads sleep by default in our processes (``sam2_model.threads``): ``OMP_WAIT_POLICY=PASSIVE`` is
set before torch loads, through every entry point, and a user's own setting is kept.

Each check runs in a fresh interpreter (libgomp reads its settings once, when torch loads it); one with
``OMP_DISPLAY_ENV=VERBOSE``, so libgomp itself prints the spin count it runs with: 0 for PASSIVE, 300000 for its own
default (worker threads busy-wait after every parallel region).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]

ENTRY_POINTS = {
    "napari-sam2 command": ("import napari_sam2\ntry:\n    napari_sam2.cli_main(['--help'])\nexcept SystemExit:\n"
                            "    pass"),
    "napari_sam2.cli module": "import napari_sam2.cli",
    "any napari_sam2 module (plugin, batch workers)": "import napari_sam2.settings",
    "sam2_model public name": "import sam2_model as sm\nsm.get_config",
    "sam2-train": ("from sam2_model.train.__main__ import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
                   "    pass"),
}


def run(code: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter, with neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT set but those of ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=240,
                          env={**base, **(env or {})})
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_sets_passive_before_torch_loads(entry: str) -> None:
    """Arguments checked, modules imported: the policy is in the environment and torch is not loaded yet."""
    done = run(f"{ENTRY_POINTS[entry]}\nimport os, sys\nprint(os.environ.get('OMP_WAIT_POLICY', '-'), "
               "'torch' in sys.modules)")
    assert done.stdout.split()[-2:] == ["PASSIVE", "False"], (entry, done.stdout[-500:])  # "-" before


def test_libgomp_runs_passive_where_our_first_import_loads_torch() -> None:
    """``sam2_model.demo`` (``scripts/demo.sh``) loads torch as it is imported (through ``sam2_model.build``); libgomp
    (``OMP_DISPLAY_ENV=VERBOSE``) then reports its spin count: 0, where its default is 300000. Once torch is loaded it
    is too late: nothing is set (as where another napari plugin loaded torch first)."""
    done = run("import os, sam2_model.demo, torch\ntorch.ones(2)\nos.environ.pop('OMP_WAIT_POLICY', None)\n"
               "from sam2_model.threads import quiet_openmp_threads\n"
               "print(quiet_openmp_threads(), os.environ.get('OMP_WAIT_POLICY', '-'))",
               {"OMP_DISPLAY_ENV": "VERBOSE"})
    if "GOMP_SPINCOUNT" not in done.stderr:  # torch built with another OpenMP (LLVM's, Intel's) prints no such line
        pytest.skip("this torch's OpenMP is not GNU libgomp: it does not report its spin count")
    assert re.search(r"^\s*GOMP_SPINCOUNT = '0'", done.stderr, re.M), done.stderr[-2000:]  # '300000' before
    assert done.stdout.split()[-2:] == ["False", "-"]


@pytest.mark.parametrize("env", [{"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_WAIT_POLICY": "passive"},
                                 {"GOMP_SPINCOUNT": "300000"}, {"GOMP_SPINCOUNT": "10000"}])
def test_a_users_own_setting_is_kept(env: Dict[str, str]) -> None:
    done = run("import os, napari_sam2.cli\nprint(os.environ.get('OMP_WAIT_POLICY', '-'), "
               "os.environ.get('GOMP_SPINCOUNT', '-'))", env)
    assert done.stdout.split()[-2:] == [env.get("OMP_WAIT_POLICY", "-"), env.get("GOMP_SPINCOUNT", "-")]


def test_an_empty_setting_counts_as_unset() -> None:
    """``OMP_WAIT_POLICY=`` (set but empty, as a shell's ``export OMP_WAIT_POLICY=`` leaves it) is no choice: libgomp
    would spin, so PASSIVE is set."""
    done = run("import os, napari_sam2.cli\nprint(os.environ.get('OMP_WAIT_POLICY', '-'))", {"OMP_WAIT_POLICY": ""})
    assert done.stdout.split()[-1] == "PASSIVE", done.stdout[-500:]
