"""Rods (bacteria) by size, and a dense colony: what one click gives, at every scale the generator can draw.

    python bench/rods.py src/sam2_model/weights/demo.pt [OTHER.pt ...] [--json out.json]

The issue-13 goal for a phase-contrast bacteria colony (J&F >= 0.60, measured outside this repository) has no real
stand-in here, so this measures the generator's rods (:func:`sam2_model.synth.make_microscopy_timelapse`,
``cell_type="rods"``), on the CPU at the model's input size, per weights file:

* **by length**: rods of :data:`LENGTHS` px tip to tip in 256 x 256 fields of each modality of :data:`MODALITIES` (the
  generator's drawn density), :data:`FIELDS` fields per length, up to :data:`PER_FIELD` rods each that do not touch
  the border, one click at each rod's most interior pixel: mean IoU of the one-output mask. Object windows do not
  apply (the field is the model's own size), so this is the model's judgement of a rod of that size at the input;
* **colony**: :data:`COLONY_SHAPE` frames of :data:`COLONY_LENGTH` px rods covering :data:`COLONY_DENSITY` of the
  field, :data:`COLONY_RODS` rods clicked, on the whole frame and in object windows of :data:`COLONY_WINDOWS` px
  (:class:`sam2_model.windows.WindowedPredictor`).

Seeds are fixed (rod field ``n`` of length ``L``: ``777000 + 7 n + L``; colony 4242); measured with the weights shipped
on 2026-12-05 (docs/training_data.md, *Rods at every scale*). The first weights file is the reference: every other
row prints its ratio to it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import sam2_model  # noqa: F401,E402 (before torch: OpenMP's wait policy as our users get it, sam2_model/threads.py)
import torch

import sam2_model as sm
from sam2_model import SAM2Model
from sam2_model.evaluation import click_ious, clickable_objects
from sam2_model.image_predictor import ImagePredictor
from sam2_model.synth import make_microscopy_timelapse
from sam2_model.windows import WindowedPredictor

LENGTHS: Tuple[int, ...] = (8, 12, 18, 26, 36, 50, 60, 90, 120)
MODALITIES: Tuple[Tuple[str, Optional[str]], ...] = (("phase", None), ("fluorescence", "cytoplasm"),
                                                     ("brightfield", None))
FIELDS = 3
PER_FIELD = 10
MIN_AREA = 10  # px: smaller rods are not clicked
COLONY_SHAPE = (768, 768)
COLONY_LENGTH = 26.0
COLONY_DENSITY = 0.5
COLONY_RODS = 30
COLONY_WINDOWS: Tuple[int, ...] = (128, 96, 64)
COLONY_SEED = 4242


def _modality_name(modality: str, stain: Optional[str]) -> str:
    return modality + (f" ({stain})" if stain else "")


def rods_by_length(model: SAM2Model, lengths: Sequence[int] = LENGTHS,
                   modalities: Sequence[Tuple[str, Optional[str]]] = MODALITIES,
                   fields: int = FIELDS) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{modality: {length: {"iou": mean IoU, "rods": clicked}}} (see the module docstring)."""
    predictor = ImagePredictor(model)
    result: Dict[str, Dict[str, Dict[str, float]]] = {}
    for modality, stain in modalities:
        row: Dict[str, Dict[str, float]] = {}
        for length in lengths:
            ious: List[float] = []
            for n in range(fields):
                movie = make_microscopy_timelapse(777000 + 7 * n + int(length), shape=(256, 256), num_frames=1,
                                                  modality=modality, cell_type="rods", stain=stain,
                                                  cell_size=float(length), dtype="uint8")
                ids = clickable_objects(movie.labels[0], MIN_AREA)[:PER_FIELD]
                if ids:
                    ious.extend(click_ious(predictor, movie.image[0], movie.labels[0], ids))
            if ious:
                row[str(length)] = {"iou": round(float(np.mean(ious)), 4), "rods": len(ious)}
        result[_modality_name(modality, stain)] = row
    return result


def colony(model: SAM2Model, modalities: Sequence[Tuple[str, Optional[str]]] = MODALITIES[:2],
           windows: Sequence[int] = COLONY_WINDOWS, shape: Tuple[int, int] = COLONY_SHAPE,
           rods: int = COLONY_RODS) -> Dict[str, Dict[str, float]]:
    """{modality: {"whole": mean IoU on the whole frame, "<side> px": in windows of that side}} on a dense colony."""
    result: Dict[str, Dict[str, float]] = {}
    for modality, stain in modalities:
        movie = make_microscopy_timelapse(COLONY_SEED, shape=shape, num_frames=1, modality=modality, cell_type="rods",
                                          stain=stain, cell_size=COLONY_LENGTH, density=COLONY_DENSITY, dtype="uint8")
        ids = clickable_objects(movie.labels[0], 30)[:rods]
        row = {"whole": round(float(np.mean(click_ious(ImagePredictor(model), movie.image[0], movie.labels[0], ids))),
                              4)}
        for side in windows:
            ious = click_ious(WindowedPredictor(model, side), movie.image[0], movie.labels[0], ids)
            row[f"{side} px"] = round(float(np.mean(ious)), 4)
        row["rods"] = len(ids)
        result[_modality_name(modality, stain)] = row
    return result


def evaluate(weights: Optional[str]) -> Dict[str, Any]:
    """Both measures for one weights file (None: the shipped ones)."""
    model = sm.build_model("demo", checkpoint=weights, device="cpu")
    with torch.inference_mode():
        return {"weights": weights or "shipped demo", "by_length": rods_by_length(model), "colony": colony(model)}


def table(results: List[Dict[str, Any]]) -> str:
    """Markdown: one row per weights file and modality; rows after the first weights file's with ratios to it."""
    ref = results[0]
    lines = ["| weights | modality | " + " | ".join(f"{n} px" for n in LENGTHS) + " | colony whole | colony "
             + " / ".join(f"{s}" for s in COLONY_WINDOWS) + " px windows |",
             "|---|---|" + "---|" * (len(LENGTHS) + 2)]
    for result in results:
        for modality, row in result["by_length"].items():
            cells = []
            for n in LENGTHS:
                value = row.get(str(n), {}).get("iou")
                base = ref["by_length"].get(modality, {}).get(str(n), {}).get("iou")
                text = "-" if value is None else f"{value:.3f}"
                if result is not ref and value is not None and base:
                    text += f" ({value / base:.2f}x)"
                cells.append(text)
            col = result["colony"].get(modality)
            whole = "-" if col is None else f"{col['whole']:.3f}"
            windowed = "-" if col is None else " / ".join(f"{col[f'{s} px']:.3f}" for s in COLONY_WINDOWS)
            lines.append(f"| {result['weights']} | {modality} | " + " | ".join(cells) + f" | {whole} | {windowed} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", nargs="*", help="weights files (default: the shipped demo weights)")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args(argv)
    results = [evaluate(w) for w in (args.weights or [None])]
    print(table(results))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
