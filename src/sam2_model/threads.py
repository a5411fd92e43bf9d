"""OpenMP's idle worker threads told to sleep, not spin: ``OMP_WAIT_POLICY=PASSIVE`` set before torch is imported.

torch's CPU build runs its parallel regions on GNU OpenMP (libgomp), whose worker threads busy-wait for a few
milliseconds after each region by default. Between two torch calls our code does NumPy / SciPy work on the main
thread (prompts, labels, the tracker's book-keeping), and on a machine with few cores the spinning workers take the
cores it needs (docs/performance.md has the figures). libgomp reads its settings once, when torch loads it, so
:func:`quiet_openmp_threads` must run before the first ``import torch`` of the process: ``sam2_model/__init__.py``
calls it, so any import of a module of ours (``napari_sam2``'s too) sets it first. Imports nothing but the standard
library.
"""

from __future__ import annotations

import os
import sys

#: the variables that choose how libgomp's idle threads wait; a user who set either keeps their choice
USER_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
DEFAULT_POLICY = "PASSIVE"


def quiet_openmp_threads() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` in this process's environment (inherited by the processes it starts) unless
    the environment already gives ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` a value (an empty one is no choice; the
    user's choice wins: ``ACTIVE`` or ``GOMP_SPINCOUNT=300000`` give back libgomp's spinning) or torch is already imported (another napari plugin
    imported it first: too late to matter, so nothing is changed or said). True when it set the variable."""
    if "torch" in sys.modules or any(os.environ.get(name, "").strip() for name in USER_SETTINGS):
        return False
    os.environ["OMP_WAIT_POLICY"] = DEFAULT_POLICY
    return True
