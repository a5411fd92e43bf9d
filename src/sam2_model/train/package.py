"""Ship a trained run as the embedded demo model:
``python -m sam2_model.train.package RUN [RUN ...] -o src/sam2_model/weights/demo.pt``.

Writes the last run's weights (``{"model": state_dict}``, float32) and beside them ``demo.json``: the
configuration, every training stage's settings, steps and wall time, and the quality figures
measured on held-out synthetic sequences through the inference path (``sam2_model.evaluation``; and every
kind of the training mix, ``sam2_model.mix_evaluation``).

``--split FILE`` / ``--join PARTS --out FILE`` cut a file into parts of at most 15 MiB and join them back,
checked by SHA-256 (see :mod:`sam2_model.train.parts`).

``--earlier STAGES.json`` prepends stages whose run folders no longer exist (a list of records with at
least ``run`` and ``note``; unknown ``steps``/``train_seconds``/``settings`` are null), so the record
says what is known and what is not.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from ..build import build_model, load_checkpoint
from ..config import get_config
from ..evaluation import HELD_OUT_SEEDS, QualityReport, one_click_iou, propagation_j_and_f
from ..mix_evaluation import MixReport, mix_quality
from ..modeling.sam2 import SAM2Model
from .data import describe_training_data
from .loop import export_weights, weights_run_record
from .parts import DEFAULT_PART_BYTES, join_files, manifest_path, split_file


def _trained_model(state: Dict[str, Any], model_name: str) -> SAM2Model:
    """The model of a run's ``last.pt`` contents, in eval mode on the CPU."""
    model = build_model(model_name, checkpoint="random", device="cpu")
    load_checkpoint(model, state["model"])
    return model.eval()


def _held_out_quality(model: SAM2Model) -> Tuple[QualityReport, QualityReport, MixReport]:
    """One-click IoU and 30-frame propagation J&F on the held-out synthetic sequences, and the held-out mix."""
    return one_click_iou(model), propagation_j_and_f(model, num_frames=30), mix_quality(model)


def load_run(run: Path) -> Dict[str, Any]:
    """A run folder's model state and record: from ``last.pt`` or, when only the weights came back from the
    machine that trained (``weights.pt``), from those and their training record (:func:`.loop.weights_run_record`: the
    record inside weights.pt, which wins over a disagreeing weights.json, else that JSON).

    Returns {"model": state_dict, "step", "seconds", "settings", "sessions"} (sessions: one record per
    invocation of the training, with its machine; empty for runs older than that record).
    """
    run = Path(run)
    if (run / "last.pt").is_file():
        state = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
        return {"model": state["model"], "step": int(state["step"]), "seconds": float(state["seconds"]),
                "settings": state["settings"], "sessions": list(state.get("sessions", []))}
    meta = weights_run_record(run / "weights.pt")  # the record inside weights.pt, else weights.json: the builder's
    if (run / "weights.pt").is_file() and meta.get("steps") is not None:
        state = torch.load(run / "weights.pt", map_location="cpu", weights_only=True)
        return {"model": state["model"], "step": int(meta["steps"]), "seconds": float(meta.get("train_seconds", 0.0)),
                "settings": meta.get("settings"), "sessions": list(meta.get("sessions", []))}
    raise ValueError(f"run folder {run} holds neither last.pt nor weights.pt with its training record (inside it or "
                     "its weights.json; join split weights first: --join NAME.001 NAME.002 --out RUN/weights.pt)")


def _machines(sessions: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The distinct machines of a stage's sessions, in order of first use."""
    seen: List[Dict[str, Any]] = []
    for session in sessions:
        if session.get("machine") and session["machine"] not in seen:
            seen.append(session["machine"])
    return seen


def stage_record(run: Path, model_name: str = "demo", evaluate: bool = False) -> Dict[str, Any]:
    """A run folder's steps, wall time, data, machines and settings; with ``evaluate``, its weights'
    held-out quality."""
    state = load_run(run)
    settings = state["settings"] or {}
    record = {"run": Path(run).name, "steps": state["step"], "train_seconds": round(state["seconds"], 1),
              "settings": state["settings"]}
    if state["sessions"]:
        machines = _machines(state["sessions"])
        record.update({
            "wall_seconds": round(sum(s.get("wall_seconds", 0.0) for s in state["sessions"]), 1),
            "machine": machines[0] if len(machines) == 1 else machines,
            "torch": sorted({m["torch"] for m in machines}),
            "sessions": state["sessions"],
        })
    record["data"] = describe_training_data(settings)
    if evaluate:
        click, video, mix = _held_out_quality(_trained_model(state, model_name))
        record["held_out_after_stage"] = {
            "one_click_iou": round(click.value, 4), "propagation_30_frames_j_and_f": round(video.value, 4),
            "mix_one_click_iou": round(mix.one_click_iou, 4), "mix_j_and_f": round(mix.j_and_f, 4),
        }
    return record


def training_data_description(stages: List[Dict[str, Any]]) -> str:
    """What the stages trained on, from their recorded settings (stages without settings: the nuclei generator)."""
    kinds: List[str] = []
    for stage in stages:
        kind = describe_training_data(stage.get("settings") or {})
        if kind not in kinds:
            kinds.append(kind)
    return "; ".join(kinds)


def package(runs: List[Path], output: Path, model_name: str = "demo",
            earlier: Optional[List[Dict[str, Any]]] = None, evaluate_stages: bool = False) -> Dict[str, Any]:
    for record in earlier or []:
        if "run" not in record or "note" not in record:
            raise ValueError(f"an earlier stage needs 'run' and 'note': {record}")
    Path(output).parent.mkdir(parents=True, exist_ok=True)  # before the minutes of measuring, not after
    stages = [dict(record) for record in earlier or []]
    stages += [stage_record(run, model_name, evaluate_stages and run != runs[-1]) for run in runs]
    model = _trained_model(load_run(runs[-1]), model_name)
    click, video, mix = _held_out_quality(model)
    metadata = {
        "preset": model_name,
        "config": dataclasses.asdict(get_config(model_name)),
        "parameters": sum(p.numel() for p in model.parameters()),
        "stages": stages,
        "steps": sum(s.get("steps") or 0 for s in stages),  # recorded steps (earlier stages may be unknown)
        "train_seconds": round(sum(s.get("train_seconds") or 0.0 for s in stages), 1),
        "wall_seconds": round(sum(s.get("wall_seconds") or 0.0 for s in stages), 1),  # stages that recorded it
        "machines": _machines([session for s in stages for session in s.get("sessions", [])]),
        "training_data": training_data_description(stages),
        "metrics": {
            "held_out_seeds": list(HELD_OUT_SEEDS),
            "one_click_iou": round(click.value, 4), "one_click_objects": click.num_objects,
            "propagation_30_frames_j_and_f": round(video.value, 4), "propagation_objects": video.num_objects,
            "per_sequence": {"one_click_iou": click.per_sequence, "j_and_f": video.per_sequence},
            "mix": mix.summary(),  # every kind of the training mix, held out (sam2_model.mix_evaluation)
        },
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
    }
    export_weights(model, output, metadata)
    return metadata


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam2_model.train.package", description=__doc__)
    parser.add_argument("runs", nargs="*", type=Path, help="the run folders in training order; the last one's weights ship")
    parser.add_argument("-o", "--output", "--out", type=Path, default=None)
    parser.add_argument("--split", type=Path, default=None, metavar="FILE",
                        help="write FILE as FILE.001, FILE.002, ... and FILE.sha256 (for machines that only send back small files)")
    parser.add_argument("--part-mib", type=float, default=DEFAULT_PART_BYTES / 2**20, help="--split: MiB per part (default 15)")
    parser.add_argument("--join", type=Path, nargs="+", default=None, metavar="PART",
                        help="join parts (in order) into --out, checked against the FILE.sha256 beside them")
    parser.add_argument("--model", default="demo")
    parser.add_argument("--earlier", type=Path, default=None,
                        help="JSON list of records of earlier stages whose run folders are gone")
    parser.add_argument("--evaluate-stages", action="store_true",
                        help="also measure each earlier run's weights on the held-out sequences (1 min each)")
    args = parser.parse_args(argv)
    try:
        if args.split is not None:
            parts = split_file(args.split, int(args.part_mib * 2**20))
            print(f"wrote {len(parts)} parts: {' '.join(str(p) for p in parts)} and {manifest_path(args.split)}")
            return 0
        if args.join is not None:
            if args.output is None:
                parser.error("--join needs --out FILE")
            summary = join_files(args.join, args.output)
            checked = "checked against its .sha256 manifest" if summary["checked"] else "no manifest found: NOT checked"
            print(f"wrote {args.output} ({summary['bytes']} bytes, sha256 {summary['sha256'][:12]}..., {checked})")
            return 0
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not args.runs or args.output is None:
        parser.error("give the run folders and -o OUTPUT (or --split FILE, or --join PARTS --out FILE)")
    earlier = json.loads(args.earlier.read_text()) if args.earlier else None
    meta = package(args.runs, args.output, args.model, earlier, args.evaluate_stages)
    print(f"wrote {args.output}: one-click IoU {meta['metrics']['one_click_iou']}, "
          f"30-frame J&F {meta['metrics']['propagation_30_frames_j_and_f']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
