"""Ship a trained run as the embedded demo model:
``python -m sam2_model.train.package RUN [RUN ...] -o src/sam2_model/weights/demo.pt``.

Writes the last run's weights (``{"model": state_dict}``, float32) and beside them ``demo.json``: the
configuration, every training stage's settings, steps and wall time, and the quality figures
measured on held-out synthetic sequences through the inference path (``sam2_model.evaluation``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from ..build import build_model, load_checkpoint
from ..config import get_config
from ..evaluation import HELD_OUT_SEEDS, one_click_iou, propagation_j_and_f
from .loop import export_weights


def stage_record(run: Path) -> Dict[str, Any]:
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    return {"run": run.name, "steps": int(state["step"]), "train_seconds": round(float(state["seconds"]), 1),
            "settings": state["settings"]}


def package(runs: List[Path], output: Path, model_name: str = "demo") -> Dict[str, Any]:
    stages = [stage_record(run) for run in runs]
    model = build_model(model_name, checkpoint="random", device="cpu")
    state = torch.load(runs[-1] / "last.pt", map_location="cpu", weights_only=False)
    load_checkpoint(model, state["model"])
    model.eval()
    click = one_click_iou(model)
    video = propagation_j_and_f(model, num_frames=30)
    metadata = {
        "preset": model_name,
        "config": dataclasses.asdict(get_config(model_name)),
        "parameters": sum(p.numel() for p in model.parameters()),
        "stages": stages,
        "steps": sum(s["steps"] for s in stages),
        "train_seconds": round(sum(s["train_seconds"] for s in stages), 1),
        "training_data": "sam2_model.synthetic.make_timelapse, clip seeds seed * 1_000_003 + index (see SyntheticClips)",
        "metrics": {
            "held_out_seeds": list(HELD_OUT_SEEDS),
            "one_click_iou": round(click.value, 4), "one_click_objects": click.num_objects,
            "propagation_30_frames_j_and_f": round(video.value, 4), "propagation_objects": video.num_objects,
            "per_sequence": {"one_click_iou": click.per_sequence, "j_and_f": video.per_sequence},
        },
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
    }
    export_weights(model, output, metadata)
    return metadata


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam2_model.train.package", description=__doc__)
    parser.add_argument("runs", nargs="+", type=Path, help="the run folders in training order; the last one's weights ship")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--model", default="demo")
    args = parser.parse_args(argv)
    meta = package(args.runs, args.output, args.model)
    print(f"wrote {args.output}: one-click IoU {meta['metrics']['one_click_iou']}, "
          f"30-frame J&F {meta['metrics']['propagation_30_frames_j_and_f']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
