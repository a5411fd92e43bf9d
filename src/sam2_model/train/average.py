"""Average the parameters of weights files fine-tuned from the same start ("model soup", Wortsman et al.
2022): ``python -m sam2_model.train.average A.pt B.pt [--weights 0.5 0.5] -o RUN/weights.pt``.

Fine-tuning moves weights a short way from where they started, and the straight line between a model and
its fine-tuned descendant tends to stay good; a point on it can keep most of what each end does well (here:
the shipped demo weights on nuclei and the weights trained further on the microscopy mix at 256 and 512 px).
Weights of unrelated runs do not average into a working model: this is only for files that share an
ancestor.

Writes ``{"model": state_dict}`` (float32) and, beside it, ``weights.json`` in the layout of a training run's
(steps 0, no sessions; ``settings.average_of`` and ``settings.average_weights`` say what was mixed), so
that ``python -m sam2_model.train.package`` records the average as a stage between the runs around it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import torch

from ..build import read_state_dict
from .loop import atomic_save


def average_state_dicts(states: Sequence[Mapping[str, torch.Tensor]],
                        weights: Optional[Sequence[float]] = None) -> Dict[str, torch.Tensor]:
    """sum_i weights[i] * states[i] for every floating-point tensor (computed in float64, stored float32).

    states: two or more state dicts with the same keys and shapes. weights: one positive number per state,
    summing to 1 (default: equal). Tensors that are not floating point (counters, indices) must be equal
    in every state and are copied. Raises ValueError naming the first key or weight that does not fit.
    """
    if len(states) < 2:
        raise ValueError(f"give at least two weights files to average, got {len(states)}")
    weights = [1.0 / len(states)] * len(states) if weights is None else [float(w) for w in weights]
    if len(weights) != len(states):
        raise ValueError(f"give one weight per weights file: {len(states)} files, {len(weights)} weights")
    if not all(math.isfinite(w) and w > 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
        raise ValueError(f"weights must be positive and sum to 1, got {weights}")
    keys = list(states[0].keys())
    for index, state in enumerate(states[1:], start=1):
        if set(state.keys()) != set(keys):
            missing = sorted(set(keys) ^ set(state.keys()))
            raise ValueError(f"file {index + 1} has other parameters than file 1 (e.g. {missing[:3]}): "
                             "only weights of the same model can be averaged")
    averaged: Dict[str, torch.Tensor] = {}
    for key in keys:
        tensors = [state[key] for state in states]
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) != 1:
            raise ValueError(f"parameter {key} has different shapes in the files: {sorted(shapes)}")
        if tensors[0].is_floating_point():
            total = sum(w * t.detach().to("cpu", torch.float64) for w, t in zip(weights, tensors))
            averaged[key] = total.to(torch.float32).contiguous()
        else:
            if not all(torch.equal(tensors[0].cpu(), t.cpu()) for t in tensors[1:]):
                raise ValueError(f"parameter {key} is not floating point and differs between the files: "
                                 "it cannot be averaged")
            averaged[key] = tensors[0].detach().cpu().clone()
    return averaged


def average_files(paths: Sequence[Path], output: Path, weights: Optional[Sequence[float]] = None) -> Dict[str, object]:
    """Average ``{"model": state_dict}`` files into ``output`` and write ``output``'s folder / weights.json
    (a run record: steps 0, the files and weights in ``settings``). Returns that record."""
    paths = [Path(p) for p in paths]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ValueError(f"these weights files do not exist: {', '.join(missing)}")
    states = [read_state_dict(path) for path in paths]  # CheckpointError (a ValueError) names a bad file
    used = [1.0 / len(paths)] * len(paths) if weights is None else [float(w) for w in weights]
    averaged = average_state_dicts(states, used)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "steps": 0, "train_seconds": 0.0, "wall_seconds": 0.0, "stopped_by": "average", "sessions": [],
        "settings": {"average_of": [str(p) for p in paths], "average_weights": used},
        "date": datetime.date.today().isoformat(),
    }
    atomic_save({"model": averaged}, output)
    (output.parent / "weights.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sam2_model.train.average", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="weights files ({'model': state_dict}) with a common ancestor")
    parser.add_argument("--weights", type=float, nargs="+", default=None, help="one per file, summing to 1 (default: equal)")
    parser.add_argument("-o", "--output", "--out", type=Path, required=True, help="RUN/weights.pt to write")
    args = parser.parse_args(argv)
    try:
        average_files(args.files, args.output, args.weights)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} and {args.output.parent / 'weights.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
