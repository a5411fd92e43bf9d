"""Evaluate embedded-model weights side by side: the synthetic bars, the held-out mix, real-data zero-shot IoU
and CPU speed.

    python bench/eval_embedded.py WEIGHTS [WEIGHTS ...] [--baseline src/sam2_model/weights/demo.pt]
                                  [--out eval_embedded.json] [--skip mix leaps msc nuclei fps]

For each weights file (the baseline first, when given), on the CPU:

* one-click IoU and 30-frame propagation J&F on the held-out synthetic seeds 900001-900005
  (:func:`sam2_model.evaluation.one_click_iou`, :func:`~sam2_model.evaluation.propagation_j_and_f`, the
  figures in ``demo.json``; goals >= 0.85 and >= 0.75);
* MSC zero-shot IoU: one click per cell on frame 0 of ``../shared/data/ctc-msc`` (never trained on), tracked
  through all frames, IoU with the segmentation ground truth (``bench/real_data_demo.py``'s
  :func:`msc_iou`; goal >= 0.5), with a 95 % bootstrap interval over the clicked cells and, beside a baseline,
  the interval of the paired difference (:mod:`sam2_model.confidence`: only 8 cells are scored, so read a
  change as real only when that interval excludes 0); beside it the same with the frames smoothed by 8 px (the
  sessions' ``smooth`` option a user may turn on, not the zero-shot protocol), and one click on each segmented
  cell of every ground-truth frame without tracking (:func:`msc_one_click_iou`: what the click alone gives);
  skipped with a note when the data is absent;
* held-out synthetic mix: one-click IoU and 8-frame tracked J&F on every kind of the training mix (fluorescence,
  phase contrast, brightfield, DIC; nuclei, cells, rods; natural-image-like clips), weighted as in the mix, per kind
  and by object size (:func:`sam2_model.mix_evaluation.mix_quality`; no goal: it says where a model stands
  beyond the nuclei the bars are measured on), beside the J&F of keeping frame 0's true mask, or its one-click
  mask, on every frame without tracking; ``--mix-frame-size`` sets the clips' side (default 256);
* real nuclei: one click on each of the 110 clickable nuclei of a real widefield image (the stardist wheel's example,
  never trained on; ``bench/real_nuclei.py``) at the model's input size, on the whole image and in object windows
  (``sam2_model.windows``), and blob-seeded automatic detection (whole image and windows)
  (precision / recall / F1 at IoU >= 0.5) with cells of 0.5-2x the image's estimated nucleus width; skipped with a
  note when the data is absent;
* far leaps: tracked J&F of sparse fluorescence cells on six held-out clips, without and with leaps of 1 to 2.5
  diameters between frames (:func:`sam2_model.leap_evaluation.leap_quality`; the motion of MSC's lost cells);
* frames/s propagating one object through 40 synthetic 512 x 512 frames
  (:func:`sam2_model.evaluation.propagation_frames_per_second`, ``bench/bench_demo.py``'s protocol; goal >= 5
  on 2 cores). Timings on a shared machine are noisy.

Prints a table and writes every figure (and each file's ``.json`` training metadata, when present) to
``--out``. Weights files are ``{"model": state_dict}`` for the ``--model`` preset (default ``demo``), at
``--image-size`` (default: the preset's, 256 px).
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import time
from typing import Any, Dict, List, Optional

import sam2_model  # noqa: F401,E402 (before torch: OpenMP's wait policy as our users get it, sam2_model/threads.py)
import torch

from real_data_demo import DATA as MSC_DATA
from real_data_demo import msc_available, msc_iou, msc_object_window, msc_one_click_iou
from real_nuclei import detection_scores, load_real_nuclei, one_click_ious, real_nuclei_folder
from sam2_model.windows import window_side

from sam2_model import build_model
from sam2_model.confidence import group_bootstrap_interval
from sam2_model.evaluation import one_click_iou, propagation_frames_per_second, propagation_j_and_f
from sam2_model.input_size import estimate_object_diameter
from sam2_model.leap_evaluation import leap_quality
from sam2_model.mix_evaluation import mix_quality

MSC_SMOOTH = 8.0  # px: frames blurred by the session's smooth option (README, "Smoothing grainy frames")
GOALS = {"one_click_iou": 0.85, "j_and_f_30": 0.75, "msc_iou": 0.5, "fps_512": 5.0}
MEASURES = ("synthetic", "mix", "leaps", "msc", "nuclei", "fps")


def evaluate_weights(path: pathlib.Path, model_name: str = "demo", image_size: Optional[int] = None,
                     skip: tuple = (), msc_data: pathlib.Path = MSC_DATA, mix_frame_size: int = 256) -> Dict[str, Any]:
    """Every figure for one weights file, with the seconds each measure took."""
    model = build_model(model_name, checkpoint=str(path), device="cpu", image_size=image_size)
    result: Dict[str, Any] = {"weights": str(path), "model": model_name, "image_size": model.image_size,
                              "seconds": {}}
    meta_path = pathlib.Path(path).with_suffix(".json")
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        result["training"] = {k: meta.get(k) for k in ("steps", "train_seconds", "wall_seconds", "stopped_by",
                                                        "training_data", "data", "machine", "machines")
                              if meta.get(k) is not None}
    if "synthetic" not in skip:
        start = time.perf_counter()
        click = one_click_iou(model)
        video = propagation_j_and_f(model, num_frames=30)
        result["one_click_iou"], result["j_and_f_30"] = round(click.value, 4), round(video.value, 4)
        result["per_sequence"] = {"one_click_iou": [round(v, 4) for v in click.per_sequence],
                                  "j_and_f_30": [round(v, 4) for v in video.per_sequence]}
        result["seconds"]["synthetic"] = round(time.perf_counter() - start, 1)
    if "mix" not in skip:
        start = time.perf_counter()
        mix = mix_quality(model, frame_shape=(mix_frame_size, mix_frame_size))
        result["mix_one_click_iou"], result["mix_j_and_f"] = round(mix.one_click_iou, 4), round(mix.j_and_f, 4)
        result["mix_copy_truth_j_and_f"] = round(mix.copy_truth_j_and_f, 4)
        result["mix_copy_click_j_and_f"] = round(mix.copy_click_j_and_f, 4)
        result["mix"] = mix.summary()
        result["mix_table"] = mix.table()
        result["seconds"]["mix"] = round(time.perf_counter() - start, 1)
    if "leaps" not in skip:
        start = time.perf_counter()
        leaps = leap_quality(model)
        result["leap_calm_j_and_f"], result["leap_j_and_f"] = round(leaps.calm_j_and_f, 4), round(leaps.leaping_j_and_f, 4)
        result["leaps"] = leaps.summary()
        result["seconds"]["leaps"] = round(time.perf_counter() - start, 1)
    if "msc" not in skip:
        if msc_available(msc_data):
            start = time.perf_counter()
            score = msc_iou(model, msc_data)
            result["msc_iou"], result["msc_iou_frames_24_on"] = round(score.overall, 4), round(score.held_out, 4)
            result["msc_cell_frames"] = score.cell_frames
            result["msc_per_cell"] = {str(cell): [round(v, 5) for v in values] for cell, values in score.per_cell.items()}
            result["msc_iou_interval"] = [round(v, 4) for v in group_bootstrap_interval(list(score.per_cell.values()))]
            smoothed = msc_iou(model, msc_data, smooth=MSC_SMOOTH)  # the user option, not the zero-shot protocol
            result["msc_iou_smoothed"] = round(smoothed.overall, 4)
            result["msc_one_click_iou"] = round(msc_one_click_iou(model, msc_data)[0], 4)
            window = msc_object_window(model, msc_data)  # what segment()'s default, object_window="auto", gives
            if window is not None:
                result["msc_iou_windows"] = round(msc_iou(model, msc_data, window=window).overall, 4)
            result["seconds"]["msc"] = round(time.perf_counter() - start, 1)
        else:
            result["msc_note"] = f"no MSC data at {msc_data}: not measured"
    if "nuclei" not in skip:
        if real_nuclei_folder() is not None:
            start = time.perf_counter()
            nuclei = load_real_nuclei()
            ious = one_click_ious(model, nuclei)
            result["nuclei_one_click_iou"] = round(float(sum(ious) / len(ious)), 4)
            diameter = estimate_object_diameter(nuclei.image)
            side = window_side(diameter, nuclei.image.shape, model.image_size)
            if side is not None:
                windowed = one_click_ious(model, nuclei, side)
                result["nuclei_one_click_iou_windows"] = round(float(sum(windowed) / len(windowed)), 4)
            detected = detection_scores(model, nuclei, diameter, window=None)
            result["nuclei_detection_f1"] = round(detected["f1"], 4)
            result["nuclei_detection"] = {k: round(float(v), 4) for k, v in detected.items()}
            windowed_detection = detection_scores(model, nuclei, diameter, window="auto")
            result["nuclei_detection_f1_windows"] = round(windowed_detection["f1"], 4)
            result["seconds"]["nuclei"] = round(time.perf_counter() - start, 1)
        else:
            result["nuclei_note"] = "no real nuclei image (pip install --no-deps stardist==0.9.2): not measured"
    if "fps" not in skip:
        start = time.perf_counter()
        result["fps_512"] = round(propagation_frames_per_second(model), 2)
        result["seconds"]["fps"] = round(time.perf_counter() - start, 1)
    return result


def _cell(value: Any, goal: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    mark = "" if goal is None else (" ok" if value >= goal else " NO")
    return f"{value:.3f}{mark}" if isinstance(value, float) and value < 10 else f"{value}{mark}"


def add_msc_differences(results: List[Dict[str, Any]]) -> None:
    """Beside a baseline (the first result): each other result's MSC IoU minus the baseline's, with the 95 %
    interval of that difference over the same cells resampled for both (``msc_difference``)."""
    base = results[0].get("msc_per_cell") if results and results[0].get("label") == "baseline" else None
    if not base:
        return
    for result in results[1:]:
        cells = result.get("msc_per_cell")
        if not cells or sorted(cells) != sorted(base):
            continue
        order = sorted(base)
        low, high = group_bootstrap_interval([cells[c] for c in order], baseline=[base[c] for c in order])
        result["msc_difference"] = {"value": round(result["msc_iou"] - results[0]["msc_iou"], 4),
                                    "interval": [round(low, 4), round(high, 4)]}


def _interval(result: Dict[str, Any], key: str) -> str:
    if key == "msc_iou_interval" and result.get(key):
        return "{:.3f}-{:.3f}".format(*result[key])
    if key == "msc_difference" and result.get(key):
        d = result[key]
        return "{:+.3f} ({:+.3f}, {:+.3f})".format(d["value"], *d["interval"])
    return "-"


def table(results: List[Dict[str, Any]]) -> str:
    """A side-by-side text table: one row per measure, one column per weights file (ok/NO against the goal)."""
    rows = [("one-click IoU (synthetic, >= 0.85)", "one_click_iou"), ("30-frame J&F (synthetic, >= 0.75)", "j_and_f_30"),
            ("mix one-click IoU (held-out)", "mix_one_click_iou"), ("mix 8-frame J&F (held-out)", "mix_j_and_f"),
            ("  no tracking: true frame-0 mask kept", "mix_copy_truth_j_and_f"),
            ("  no tracking: one-click mask kept", "mix_copy_click_j_and_f"),
            ("sparse cells J&F, no leaps", "leap_calm_j_and_f"), ("  the same cells leaping", "leap_j_and_f"),
            ("MSC zero-shot IoU (>= 0.5)", "msc_iou"), ("  95 % interval over cells", "msc_iou_interval"),
            ("  minus baseline (95 %, paired)", "msc_difference"), ("MSC IoU, frames >= 24", "msc_iou_frames_24_on"),
            ("MSC IoU, frames smoothed 8 px (option)", "msc_iou_smoothed"),
            ("MSC IoU, object windows (segment()'s default)", "msc_iou_windows"),
            ("MSC one click on each segmented cell, no tracking", "msc_one_click_iou"),
            ("real nuclei one-click IoU (110)", "nuclei_one_click_iou"),
            ("  in object windows", "nuclei_one_click_iou_windows"),
            ("real nuclei detection F1", "nuclei_detection_f1"), ("  in windows", "nuclei_detection_f1_windows"),
            ("CPU frames/s, 512 px (>= 5)", "fps_512"), ("training steps", None), ("training wall s", None)]
    names = [pathlib.Path(r["weights"]).name if r.get("label") is None else r["label"] for r in results]
    width = max(24, *(len(n) for n in names))
    first = max(36, *(len(title) + 2 for title, _ in rows))  # the measure column fits its longest title
    lines = ["measure".ljust(first) + "".join(n.rjust(width + 2) for n in names)]
    for title, key in rows:
        cells = []
        for r in results:
            if key is None:
                training = r.get("training", {})
                value = training.get("steps") if "steps" in title else training.get("wall_seconds", training.get("train_seconds"))
                cells.append("-" if value is None else str(value))
            elif key in ("msc_iou_interval", "msc_difference"):
                cells.append(_interval(r, key))
            else:
                cells.append(_cell(r.get(key), GOALS.get(key)))
        lines.append(title.ljust(first) + "".join(c.rjust(width + 2) for c in cells))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="+", type=pathlib.Path)
    parser.add_argument("--baseline", type=pathlib.Path, default=None, help="evaluated first, shown as 'baseline'")
    parser.add_argument("--model", default="demo")
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("eval_embedded.json"))
    parser.add_argument("--skip", nargs="*", default=[], choices=MEASURES)
    parser.add_argument("--msc-data", type=pathlib.Path, default=MSC_DATA)
    parser.add_argument("--mix-frame-size", type=int, default=256, help="side of the held-out mix clips (px)")
    args = parser.parse_args(argv)
    files = ([args.baseline] if args.baseline else []) + list(args.weights)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        print(f"error: weights: not a file: {', '.join(missing)}", file=sys.stderr)
        return 2
    results = []
    for index, path in enumerate(files):
        started = time.perf_counter()
        result = evaluate_weights(path, args.model, args.image_size, tuple(args.skip), args.msc_data,
                                  args.mix_frame_size)
        if args.baseline and index == 0:
            result["label"] = "baseline"
        results.append(result)
        print(f"{path}: done in {time.perf_counter() - started:.0f} s {result['seconds']}", flush=True)
    add_msc_differences(results)
    report = {"torch_threads": torch.get_num_threads(), "goals": GOALS, "results": results}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for result in results:
        if "mix_table" in result:
            name = result.get("label") or pathlib.Path(result["weights"]).name
            print(f"held-out mix, {name}:\n{result['mix_table']}")
    print(table(results))
    print(f"(CPU, {torch.get_num_threads()} threads; timings are noisy on a shared machine) wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
