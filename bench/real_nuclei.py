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
  image, as the plugin does); and at *auto*'s size in object windows (:class:`sam2_model.windows.WindowedPredictor`,
  the side :func:`~sam2_model.windows.window_side` gives, as ``object_window="auto"`` does);
* automatic detection at the *auto* size (:func:`sam2_model.tracking.make_detector`, blob seeding, the cell-diameter
  range the plugin would use around the estimated width), on the whole frame and in windows (its default, "auto"):
  precision, recall and F1 at IoU >= 0.5, and the mean IoU of the matched nuclei;
* a drifting time-lapse made of the image: :data:`DRIFT_FRAMES` frames, each the image rolled 2 px down and 3 px right
  of the one before (labels alike), one click on each of the first :data:`DRIFT_OBJECTS` clickable nuclei of frame 0,
  tracked forward by :func:`napari_sam2.segment` with ``object_window`` "off" and "auto": IoU on frame 0 and J&F over
  the tracked frames. Real pixels, synthetic motion: it measures following real nuclei, not real cell motion;
* the image held still: :data:`STILL_FRAMES` copies of it, one click on every clickable nucleus of the first, tracked
  forward in object windows: IoU on the clicked frame and mean IoU on the last. Nothing moves, so every point lost
  between the two is the memory path's own drift (masks that grow over the neighbours or shrink).

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
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

import sam2_model as sm
from sam2_model import SAM2Model
from sam2_model.evaluation import click_ious, clickable_objects
from sam2_model.image_predictor import ImagePredictor
from sam2_model.input_size import estimate_object_diameter, suggest_image_size
from sam2_model.windows import WindowedPredictor, window_side
from sam2_model.tracking import detection_f1, make_detector

ENV_FOLDER = "NAPARI_SAM2_REAL_NUCLEI"
IMAGE_FILE, LABELS_FILE = "img2d.tif", "mask2d.tif"
MIN_AREA = 40  # px: smaller labelled pieces are fragments cut by the image border or debris
SIZES = (256, 384, 512, 768)
DRIFT_FRAMES = 12  # frames of the drifting time-lapse
DRIFT_OBJECTS = 40  # nuclei clicked on its frame 0
STILL_FRAMES = 6  # copies of the image in the still time-lapse


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


def one_click_ious(model: SAM2Model, data: RealNuclei, window: Optional[int] = None) -> List[float]:
    """IoU of one click on each clickable nucleus (at its most interior pixel) with ``model``'s one-output mask,
    decoded on the whole image or (``window``) in a window of that many px around the click."""
    ids = clickable_objects(data.labels, min_area=MIN_AREA)
    predictor = ImagePredictor(model) if window is None else WindowedPredictor(model, window)
    return click_ious(predictor, data.image, data.labels, ids)


def detection_scores(model: SAM2Model, data: RealNuclei, diameter: float, window: Any = "auto") -> Dict[str, float]:
    """Blob-seeded automatic detection with cells of 0.5-2x ``diameter`` px (``window`` as for ``make_detector``):
    precision / recall / F1 at IoU >= 0.5 (one-to-one) and the matched nuclei's mean IoU."""
    detector = make_detector(model, "blobs", cell_diameter=(0.5 * diameter, 2.0 * diameter), window=window)
    return detection_f1(detector(data.image), data.labels)


def drifting(data: RealNuclei, frames: int = DRIFT_FRAMES) -> Tuple[np.ndarray, np.ndarray]:
    """(T, H, W) image and labels: frame t is the image (and labels) rolled 2t px down and 3t px right."""
    shifts = [(2 * t, 3 * t) for t in range(frames)]
    return (np.stack([np.roll(data.image, s, axis=(0, 1)) for s in shifts]),
            np.stack([np.roll(data.labels, s, axis=(0, 1)) for s in shifts]))


def _click_and_track(weights: Optional[str], image: np.ndarray, first_labels: np.ndarray, ids: Sequence[int],
                     image_size: int, object_window: str) -> Tuple[np.ndarray, float]:
    """One click on each of ``ids`` (at its most interior pixel in ``first_labels``, (H, W)) on frame 0 of ``image``
    (T, H, W), tracked forward by :func:`napari_sam2.segment` on the CPU: (T, H, W) labels and the seconds it took."""
    from napari_sam2 import segment
    from sam2_model.evaluation import click_point

    clicks = [(0, *click_point(first_labels == i)[::-1], 1, i) for i in ids]
    start = time.perf_counter()
    out = segment(image, clicks=clicks, checkpoint=weights or "embedded", device="cpu", image_size=image_size,
                  direction="forward", object_window=object_window)
    return out, time.perf_counter() - start


def drift_scores(weights: Optional[str], data: RealNuclei, image_size: int, object_window: str) -> Dict[str, float]:
    """One click on each of the first :data:`DRIFT_OBJECTS` clickable nuclei of the drifting time-lapse's frame 0,
    tracked forward with :func:`napari_sam2.segment`: IoU on frame 0 and mean J&F over the tracked frames."""
    from sam2_model.evaluation import j_and_f, region_similarity

    image, labels = drifting(data)
    ids = clickable_objects(labels[0], min_area=MIN_AREA)[:DRIFT_OBJECTS]
    out, seconds = _click_and_track(weights, image, labels[0], ids, image_size, object_window)
    first = float(np.mean([region_similarity(out[0] == i, labels[0] == i) for i in ids]))
    jf = float(np.mean([j_and_f(out[1:] == i, labels[1:] == i)["JF"] for i in ids]))
    return {"first_frame_iou": round(first, 4), "j_and_f": round(jf, 4), "seconds": round(seconds, 1)}


def still_scores(weights: Optional[str], data: RealNuclei, image_size: int, object_window: str = "auto",
                 frames: int = STILL_FRAMES) -> Dict[str, float]:
    """``frames`` copies of the image, one click on every clickable nucleus of the first, tracked forward with
    :func:`napari_sam2.segment`: mean IoU on the clicked frame, on the last frame, and over the tracked frames."""
    from sam2_model.evaluation import region_similarity

    labels = data.labels
    ids = clickable_objects(labels, min_area=MIN_AREA)
    out, seconds = _click_and_track(weights, np.stack([data.image] * frames), labels, ids, image_size, object_window)
    iou = np.array([[region_similarity(frame == i, labels == i) for frame in out] for i in ids])  # (objects, T)
    return {"first_frame_iou": round(float(iou[:, 0].mean()), 4), "last_frame_iou": round(float(iou[:, -1].mean()), 4),
            "tracked_iou": round(float(iou[:, 1:].mean()), 4), "objects": len(ids), "seconds": round(seconds, 1)}


def evaluate(weights: Optional[str], data: RealNuclei, sizes: Sequence[int], drift: bool = True) -> Dict[str, Any]:
    """One weights file (None: the shipped ones): one click at each of ``sizes`` and at *auto*'s size, on the whole
    image and in windows, detection at *auto*'s size (whole image and windows) and, with ``drift``, the drifting
    time-lapse tracked without and with object windows; with the seconds it all took."""
    start = time.perf_counter()
    diameter = estimate_object_diameter(data.image)
    auto = suggest_image_size(diameter, data.image.shape)
    side = window_side(diameter, data.image.shape, auto)
    result: Dict[str, Any] = {"weights": weights or "shipped demo", "estimated_diameter": round(diameter, 1),
                              "auto_size": auto, "window": side, "one_click": {}}
    for size in sorted(set(sizes) | {auto}):
        model = sm.build_model("demo", checkpoint=weights, device="cpu", image_size=size)
        ious = one_click_ious(model, data)
        result["one_click"][str(size)] = {"mean": round(float(np.mean(ious)), 4), "n": len(ious),
                                          "below_0_5": int(np.sum(np.asarray(ious) < 0.5))}
        if size == auto:
            windowed = one_click_ious(model, data, side)
            result["one_click_windows"] = {"mean": round(float(np.mean(windowed)), 4), "n": len(windowed),
                                           "below_0_5": int(np.sum(np.asarray(windowed) < 0.5))}
            for key, window in (("detection", None), ("detection_windows", "auto")):
                scores = detection_scores(model, data, diameter, window)
                result[key] = {k: round(float(v), 4) for k, v in scores.items()}
    if drift:
        result["drift"] = {mode: drift_scores(weights, data, auto, mode) for mode in ("off", "auto")}
        result["still"] = still_scores(weights, data, auto)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def table(results: List[Dict[str, Any]]) -> str:
    """Markdown: per weights file one click at each size and in windows, detection, drift tracking; every row after
    the first with its ratio to the first."""
    ref = results[0]
    sizes = list(ref["one_click"])
    columns = [(f"one click {s} px", lambda r, s=s: r["one_click"][s]["mean"]) for s in sizes]
    columns += [(f"one click in {ref['window']} px windows", lambda r: r["one_click_windows"]["mean"]),
                ("detection F1 (whole / windows)", None)]
    if "drift" in ref:
        columns += [("drift J&F (whole / windows)", None),
                    ("held still, clicked / last frame IoU", None)]
    lines = ["| weights | " + " | ".join(name for name, _ in columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for r in results:
        cells = []
        for name, get in columns:
            if get is not None:
                value = get(r)
                cells.append(f"{value:.3f}" + ("" if r is ref else f" ({value / get(ref):.2f}x)"))
            elif name.startswith("detection"):
                cells.append(f"{r['detection']['f1']:.3f} / {r['detection_windows']['f1']:.3f} "
                             f"({r['detection_windows']['f1'] / r['detection']['f1']:.2f}x)")
            elif name.startswith("held still"):
                first, last = r["still"]["first_frame_iou"], r["still"]["last_frame_iou"]
                cells.append(f"{first:.3f} / {last:.3f}" + ("" if r is ref else
                                                            f" ({last / ref['still']['last_frame_iou']:.2f}x)"))
            else:
                off, auto = r["drift"]["off"]["j_and_f"], r["drift"]["auto"]["j_and_f"]
                cells.append(f"{off:.3f} / {auto:.3f} ({auto / off:.2f}x)")
        lines.append(f"| {pathlib.Path(r['weights']).name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="*", help="demo weights files; none: the shipped ones")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--json", type=pathlib.Path, default=None)
    parser.add_argument("--no-drift", action="store_true",
                        help="skip the drifting and still time-lapses (~2 min per weights)")
    args = parser.parse_args(argv)
    data = load_real_nuclei()
    print(f"{data.folder}: {data.image.shape} {data.image.dtype}, {len(np.unique(data.labels)) - 1} nuclei, "
          f"{len(clickable_objects(data.labels, min_area=MIN_AREA))} clicked")
    results = []
    for weights in args.weights or [None]:
        results.append(evaluate(weights, data, args.sizes, drift=not args.no_drift))
        r = results[-1]
        print(f"{r['weights']}: estimated width {r['estimated_diameter']} px -> auto {r['auto_size']} px; "
              f"{r['one_click']}; in {r['window']} px windows {r['one_click_windows']}; detection {r['detection']}, in "
              f"windows {r['detection_windows']}; drift {r.get('drift')}; still {r.get('still')} ({r['seconds']} s)",
              flush=True)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
