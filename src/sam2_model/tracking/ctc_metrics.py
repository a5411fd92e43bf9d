"""CTC measures of a result folder against ground truth, computed by the ``py-ctcmetrics`` package.

Nothing here re-implements a measure: the folders are read and scored by ``ctc_metrics`` (the Cell
Tracking Challenge's Python port). Layout expected (CTC's): RESULT_DIR holds ``mask%03d.tif`` +
``res_track.txt``; GT_DIR holds ``TRA/man_track.txt`` + ``TRA/man_track%03d.tif`` and ``SEG/man_seg%03d.tif``
(SEG may cover only some frames).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence

DEFAULT_METRICS = ("Valid", "SEG", "DET", "TRA", "LNK", "BC", "CT", "TF", "CCA")


def _check_folders(result_dir: Path, gt_dir: Path) -> None:
    if not (result_dir / "res_track.txt").is_file():
        raise ValueError(f"result_dir {result_dir} must hold res_track.txt and mask%03d.tif files (CTC layout)")
    if not (gt_dir / "TRA" / "man_track.txt").is_file():
        raise ValueError(f"gt_dir {gt_dir} must hold TRA/man_track.txt and TRA/man_track%03d.tif (CTC layout)")


def evaluate_ctc(result_dir: os.PathLike, gt_dir: os.PathLike, metrics: Optional[Sequence[str]] = None,
                 division_tolerance: int = 3) -> Dict[str, float]:
    """SEG, DET, TRA, LNK and the division measures BC(i) (with tp/fp/fn per tolerance i frames), CT, TF,
    CCA (py-ctcmetrics). Adds ``division_recall`` = tp_div(i) / gt_divisions at i = ``division_tolerance``.
    SEG is left out when GT_DIR has no SEG folder. Returns name -> value (floats and counts)."""
    from ctc_metrics.scripts.evaluate import calculate_metrics, load_data

    result_dir, gt_dir = Path(result_dir), Path(gt_dir)
    _check_folders(result_dir, gt_dir)
    chosen = list(metrics or DEFAULT_METRICS)
    has_seg = (gt_dir / "SEG").is_dir() and any((gt_dir / "SEG").glob("man_seg*.tif"))
    if not has_seg:
        chosen = [m for m in chosen if m != "SEG"]
    if "BC" in chosen and f"BC({division_tolerance})" not in chosen:
        chosen.append(f"BC({division_tolerance})")
    trajectory = chosen not in (["SEG"], ["CCA"])
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        comp, ref, traj, segm, _, valid = load_data(str(result_dir), str(gt_dir), trajectory, "SEG" in chosen,
                                                    threads=1)
        results = calculate_metrics(comp, ref, traj, segm, chosen, valid)
    out = {k: float(v) for k, v in results.items() if v is not None and v == v}  # drop None / NaN
    key = f"tp_div({division_tolerance})"
    if key in out and out.get("gt_divisions", 0) > 0:
        out["division_recall"] = out[key] / out["gt_divisions"]
    return out
