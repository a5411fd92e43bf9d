"""What the bench scripts share: timing helpers and Meta's reference package as an oracle.

The oracle lives with the tests (``tests/oracle.py``: reference models with copied weights, paired
models, the parity prompts, a step-by-step tracking comparison); this module is the one place that
makes it importable for the bench scripts, which import only its public names from here.
"""

from __future__ import annotations

import pathlib
import sys
import time
from typing import Callable, Optional

import numpy as np
import sam2_model  # noqa: F401,E402 (before torch: OpenMP's wait policy as our users get it, sam2_model/threads.py)
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from oracle import (  # noqa: E402
    PARITY_PROMPTS,
    encode_both,
    max_errors,
    paired_models,
    point_inputs,
    reference_model,
    run_tracking,
)

__all__ = ["PARITY_PROMPTS", "best_time", "encode_both", "max_errors", "paired_models", "point_inputs",
           "reference_model", "reference_video_state", "run_tracking", "timed"]


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls of ``fn``, after one warm-up call (allocations, kernels)."""
    fn()
    return min(timed(fn) for _ in range(repeats))


def reference_video_state(predictor: torch.nn.Module, inputs: torch.Tensor, folder: pathlib.Path,
                          video_size: Optional[int] = None) -> dict:
    """An inference state of Meta's SAM2VideoPredictor whose frames are ``inputs`` (T, 3, S, S) model inputs.

    The reference reads frames only from image files: tiny placeholder JPEGs are written to ``folder`` and
    its frames are replaced by ``inputs``, so both implementations see the same tensors. video_size: the
    original frame side that output masks are resized to (default: S).
    """
    from PIL import Image

    for t in range(inputs.shape[0]):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / f"{t:05d}.jpg")
    state = predictor.init_state(str(folder))
    state["images"] = inputs.clone()
    state["video_height"] = state["video_width"] = video_size or inputs.shape[-1]
    state["cached_features"] = {}
    return state
