"""Real fluorescence nuclei, never trained on: one click per nucleus at each input size, and automatic detection.

    python bench/real_nuclei.py src/sam2_model/weights/demo.pt [OTHER.pt ...] [--sizes 256 384 512 768]
                                [--json out.json]

The image is the 2-D example that ships inside the ``stardist`` wheel (``stardist/data/images/img2d.tif`` and
``mask2d.tif``: 512 x 512 uint16 widefield fluorescence of stained nuclei with every nucleus labelled, 125 of them,
median ~24 px wide; from the 2018 Data Science Bowl collection, BBBC038). The project reads it from the installed
package (``pip install --no-deps stardist==0.9.2``: the data files only, stardist itself is never imported) or from
``$NAPARI_SAM2_REAL_NUCLEI`` (a folder holding the two files); it is not copied into this repository and the
embedded model is not trained on it. It stands in for the maintainers' held-out fluorescence nuclei (issue 13).

Measures per weights file, on the CPU:

* one click at the most interior pixel of every nucleus that does not touch the border
  (:func:`sam2_model.evaluation.click_ious`), mean IoU of the one-output masks at each input size and at the size
  *auto* picks (:func:`sam2_model.input_size.suggest_image_size` from :func:`estimate_object_diameter` of the
  image, as the plugin does);
* automatic detection at the *auto* size (:func:`sam2_model.tracking.make_detector`, blob seeding, the cell-diameter
  range the plugin would use around the estimated width): precision, recall and F1 at IoU >= 0.5, and the mean IoU
  of the matched nuclei.

The first weights file is the reference: every other row prints its ratio to it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

import sam2_model as sm
from sam2_model import SAM2Model
from sam2_model.evaluation import click_ious, clickable_objects
from sam2_model.image_predictor import ImagePredictor
from sam2_model.input_size import estimate_object_diameter, suggest_image_size
from sam2_model.tracking import detection_f1, make_detector

ENV_FOLDER = "NAPARI_SAM2_REAL_NUCLEI"
IMAGE_FILE, LABELS_FILE = "img2d.tif", "mask2d.tif"
MIN_AREA = 40  # px: smaller labelled pieces are fragments cut by the image border or debris
SIZES = (256, 384, 512, 768)


@dataclass
class RealNuclei:
    image: np.ndarray  # (512, 512) uint16
    labels: np.ndarray  # (512, 512) uint16, 0 = background
    folder: pathlib.Path


def real_nuclei_folder() -> Optional[pathlib.Path]:
    """The folder holding img2d.tif and mask2d.tif: ``$NAPARI_SAM2_REAL_NUCLEI``, else the installed ``stardist``
    package's ``data/images`` (found without importing stardist); None when neither holds both files."""
    candidates: List[pathlib.Path] = []
    if os.environ.get(ENV_FOLDER):
        candidates.append(pathlib.Path(os.environ[ENV_FOLDER]))
    spec = importlib.util.find_spec("stardist")  # a top-level package: located, not executed
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(pathlib.Path(p) / "data" / "images" for p in spec.submodule_search_locations)
    return next((c for c in candidates if (c / IMAGE_FILE).is_file() and (c / LABELS_FILE).is_file()), None)


def load_real_nuclei(folder: Optional[pathlib.Path] = None) -> RealNuclei:
    """The image and its labels; FileNotFoundError naming where it looked when absent."""
    import tifffile

    folder = folder or real_nuclei_folder()
    if folder is None:
        raise FileNotFoundError(f"no {IMAGE_FILE} / {LABELS_FILE}: set ${ENV_FOLDER} to a folder holding them, or "
                                f"`pip install --no-deps stardist==0.9.2` (its wheel carries them)")
    return RealNuclei(tifffile.imread(folder / IMAGE_FILE), tifffile.imread(folder / LABELS_FILE), folder)


def one_click_ious(model: SAM2Model, data: RealNuclei) -> List[float]:
    """IoU of one click on each clickable nucleus (at its most interior pixel) with ``model``'s one-output mask."""
    ids = clickable_objects(data.labels, min_area=MIN_AREA)
    return click_ious(ImagePredictor(model), data.image, data.labels, ids)


def detection_scores(model: SAM2Model, data: RealNuclei, diameter: float) -> Dict[str, float]:
    """Blob-seeded automatic detection with cells of 0.5-2x ``diameter`` px: precision / recall / F1 at
    IoU >= 0.5 (one-to-one) and the matched nuclei's mean IoU."""
    detector = make_detector(model, "blobs", cell_diameter=(0.5 * diameter, 2.0 * diameter))
    return detection_f1(detector(data.image), data.labels)


def evaluate(weights: Optional[str], data: RealNuclei, sizes: Sequence[int]) -> Dict[str, Any]:
    """One weights file (None: the shipped ones): one click at each of ``sizes`` and at *auto*'s size, and
    detection at *auto*'s size, with the seconds it all took."""
    start = time.perf_counter()
    diameter = estimate_object_diameter(data.image)
    auto = suggest_image_size(diameter, data.image.shape)
    result: Dict[str, Any] = {"weights": weights or "shipped demo", "estimated_diameter": round(diameter, 1),
                              "auto_size": auto, "one_click": {}}
    for size in sorted(set(sizes) | {auto}):
        model = sm.build_model("demo", checkpoint=weights, device="cpu", image_size=size)
        ious = one_click_ious(model, data)
        result["one_click"][str(size)] = {"mean": round(float(np.mean(ious)), 4), "n": len(ious),
                                          "below_0_5": int(np.sum(np.asarray(ious) < 0.5))}
        if size == auto:
            result["detection"] = {k: round(float(v), 4) for k, v in detection_scores(model, data, diameter).items()}
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def table(results: List[Dict[str, Any]]) -> str:
    sizes = list(results[0]["one_click"])
    head = "| weights | " + " | ".join(f"one click {s} px" for s in sizes) + " | detection P / R / F1, matched IoU |"
    lines = [head, "|" + "---|" * (len(sizes) + 2)]
    ref = results[0]
    for r in results:
        cells = []
        for s in sizes:
            v = r["one_click"][s]["mean"]
            ratio = "" if r is ref else f" ({v / ref['one_click'][s]['mean']:.2f}x)"
            cells.append(f"{v:.3f}{ratio}")
        d = r["detection"]
        cells.append(f"{d['precision']:.2f} / {d['recall']:.2f} / {d['f1']:.3f}, {d['matched_iou']:.3f}")
        lines.append(f"| {pathlib.Path(r['weights']).name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="*", help="demo weights files; none: the shipped ones")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--json", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    data = load_real_nuclei()
    print(f"{data.folder}: {data.image.shape} {data.image.dtype}, {len(np.unique(data.labels)) - 1} nuclei, "
          f"{len(clickable_objects(data.labels, min_area=MIN_AREA))} clicked")
    results = []
    for weights in args.weights or [None]:
        results.append(evaluate(weights, data, args.sizes))
        r = results[-1]
        print(f"{r['weights']}: estimated width {r['estimated_diameter']} px -> auto {r['auto_size']} px; "
              f"{r['one_click']}; detection {r['detection']} ({r['seconds']} s)", flush=True)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
