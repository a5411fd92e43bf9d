"""How the demo model (trained only on synthetic nuclei) does on real microscopy: the Cell Tracking Challenge
time-lapse Fluo-C2DL-MSC/01 in ../shared/data (mesenchymal stem cells, 48 frames of 832 x 992 uint16).

    python bench/real_data_demo.py [--model demo] [--checkpoint PATH]

(:func:`msc_iou` is the measure; ``bench/eval_embedded.py`` uses it too.)

One click per cell of frame 0 (at the most interior pixel of its tracking-ground-truth mask), propagation
through all frames, then on every frame with segmentation ground truth: IoU of each tracked mask with the
ground-truth cell that carries its track. Prints the mean per frame and overall (the same run with an
official checkpoint, where one is available, gives the comparison).

Fine-tuning example (the README's, `bench/real_data_finetune.py`): train on the segmentation ground truth of frames
5-19 only (ids taken from the tracking ground truth), then run this with ``--checkpoint RUN/weights.pt [--windows]``
and read the frames >= 24.
"""

from __future__ import annotations

import argparse
import pathlib
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import tifffile

from sam2_model import ImagePredictor, SAM2Model, build_model
from sam2_model.auto_smooth import resolve_smooth, suggest_smooth
from sam2_model.evaluation import click_ious, click_point, track_with_clicks
from sam2_model.metrics import region_similarity

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "ctc-msc"


@dataclass
class MscScore:
    """Zero-shot IoU on the MSC time-lapse: ``overall`` over all scored cell-frames, ``held_out`` over frames
    >= ``held_out_from``; per_frame: {frame: (mean IoU, cells scored)}; per_cell: {clicked cell id: its IoU on
    each scored frame} (for intervals over cells, :mod:`sam2_model.confidence`); seconds: clicks and tracking."""

    overall: float
    held_out: float
    held_out_from: int
    cell_frames: int
    num_cells: int
    image_shape: Tuple[int, ...]
    seconds: float
    per_frame: Dict[int, Tuple[float, int]] = field(default_factory=dict)
    per_cell: Dict[int, Tuple[float, ...]] = field(default_factory=dict)


def msc_available(data: pathlib.Path = DATA) -> bool:
    """Whether the MSC time-lapse (frames and ground truth) is where ``data`` says."""
    return (data / "01").is_dir() and (data / "01_GT" / "TRA").is_dir() and (data / "01_GT" / "SEG").is_dir()


@dataclass
class MscData:
    """The MSC time-lapse: stack (T, H, W) uint16; track / seg: {frame: (H, W) tracking markers / segmentation
    ground truth} (seg on a subset of frames); ids: the cells of frame 0's tracking ground truth."""

    stack: np.ndarray
    track: Dict[int, np.ndarray]
    seg: Dict[int, np.ndarray]
    ids: List[int]

    def first_clicks(self) -> Dict[int, Tuple[float, float]]:
        """One (x, y) click per cell of frame 0, at the most interior pixel of its tracking marker."""
        return {obj_id: click_point(self.track[0] == obj_id) for obj_id in self.ids}


def load_msc(data: pathlib.Path = DATA) -> MscData:
    """Frames, tracking and segmentation ground truth of ``data`` (a CTC sequence 01 with its 01_GT)."""
    if not msc_available(data):
        raise ValueError(f"data: no CTC time-lapse at {data} (expected 01/, 01_GT/TRA/ and 01_GT/SEG/)")
    frames = sorted((data / "01").glob("t*.tif"))
    stack = np.stack([tifffile.imread(f) for f in frames])
    track = {int(p.stem[-3:]): tifffile.imread(p) for p in sorted((data / "01_GT" / "TRA").glob("man_track*.tif"))}
    seg = {int(p.stem[-3:]): tifffile.imread(p) for p in sorted((data / "01_GT" / "SEG").glob("man_seg*.tif"))}
    return MscData(stack, track, seg, [int(i) for i in np.unique(track[0]) if i != 0])


def msc_iou(model: SAM2Model, data: pathlib.Path = DATA, held_out_from: int = 24, smooth: Union[float, str] = 0.0,
            window: Optional[int] = None) -> MscScore:
    """One click per cell of frame 0 (most interior pixel of its tracking-ground-truth marker), propagation
    through all frames, then on every frame with segmentation ground truth the IoU of each tracked mask
    with the ground-truth cell that carries its track; ``smooth``: frames blurred by a Gaussian of that many px
    first (the session's option; 0: the zero-shot protocol; "auto": :func:`msc_smooth`, what
    :func:`sam2_model.auto_smooth.resolve_smooth` picks from frame 0 and the clicks); ``window``: each cell tracked in an object window of
    that many px (:func:`msc_object_window` gives the one ``object_window="auto"`` picks; None: whole frames)."""
    msc = load_msc(data)
    start = time.perf_counter()
    sigma = resolve_smooth(smooth, msc.stack[0], np.array(list(msc.first_clicks().values())))
    labels = track_with_clicks(model, msc.stack, msc.first_clicks(), smooth=sigma, window=window)
    return score_msc(labels, msc, held_out_from, time.perf_counter() - start)


def msc_object_window(model: SAM2Model, data: pathlib.Path = DATA) -> Optional[int]:
    """The object window ``napari_sam2.segment(..., object_window="auto")`` picks for the MSC frames with the clicks
    :func:`msc_iou` makes (the default a new user gets): measured on frame 0, on the clicked cells (their width read
    around each click, as every route measures "auto" on the prompted objects; 312 px for these cells, whose window
    the whole-frame size check may then resize)."""
    from napari_sam2.image_size import PromptSpots, resolve_object_window

    msc = load_msc(data)
    spots = PromptSpots.from_pairs([(np.asarray(xy, np.float64), np.full(4, np.nan))
                                    for xy in msc.first_clicks().values()])
    return resolve_object_window("auto", msc.stack[0], model.config.name, model.image_size, prompts=spots)


def msc_smooth(data: pathlib.Path = DATA) -> float:
    """The blur (px) ``smooth="auto"`` picks for the MSC frames with the clicks :func:`msc_iou` makes: measured on
    frame 0 at the clicked cells (:func:`sam2_model.auto_smooth.suggest_smooth`; 4 px: grain 0.20 against the
    threshold 0.15, cells 28.6 px wide)."""
    msc = load_msc(data)
    return suggest_smooth(msc.stack[0], np.array(list(msc.first_clicks().values())))


def msc_one_click_iou(model: SAM2Model, data: pathlib.Path = DATA) -> Tuple[float, int]:
    """Mean IoU of one click on each segmented cell of every frame with segmentation ground truth (at the cell's
    most interior pixel), without tracking: what the click alone gives, beside what tracking keeps of it. Each
    frame goes through :class:`ImagePredictor` (its own contrast limits). Returns (mean IoU, cells clicked)."""
    msc = load_msc(data)
    predictor = ImagePredictor(model)
    scores: List[float] = []
    for t, truth in sorted(msc.seg.items()):
        scores.extend(click_ious(predictor, msc.stack[t], truth, np.unique(truth)[1:]))
    return float(np.mean(scores)), len(scores)


def score_msc(labels: np.ndarray, msc: MscData, held_out_from: int = 24, seconds: float = float("nan")) -> MscScore:
    """Score (T, H, W) tracked labels (ids of ``msc.ids``): on every frame with segmentation ground truth, the IoU
    of each cell's mask with the ground-truth cell that carries its track."""
    scores: List[float] = []
    held_out: List[float] = []
    per_frame: Dict[int, Tuple[float, int]] = {}
    per_cell: Dict[int, List[float]] = {}
    for t, truth in sorted(msc.seg.items()):
        frame_scores = []
        for obj_id in msc.ids:
            marker = msc.track.get(t, np.zeros_like(truth)) == obj_id
            if not marker.any():
                continue
            overlap = np.bincount(truth[marker].ravel(), minlength=int(truth.max()) + 1)
            overlap[0] = 0
            if overlap.max() == 0:
                continue
            frame_scores.append(region_similarity(labels[t] == obj_id, truth == int(np.argmax(overlap))))
            per_cell.setdefault(obj_id, []).append(frame_scores[-1])
        if frame_scores:
            scores.extend(frame_scores)
            if t >= held_out_from:
                held_out.extend(frame_scores)
            per_frame[t] = (float(np.mean(frame_scores)), len(frame_scores))
    return MscScore(float(np.mean(scores)), float(np.mean(held_out)) if held_out else float("nan"), held_out_from,
                    len(scores), len(msc.ids), tuple(msc.stack.shape), seconds, per_frame,
                    {obj_id: tuple(values) for obj_id, values in per_cell.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="demo")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--data", type=pathlib.Path, default=DATA)
    parser.add_argument("--held-out-from", type=int, default=24,
                        help="also report frames from this one on (not used by the fine-tuning example)")
    parser.add_argument("--smooth", default="0", metavar="SIGMA",
                        help="blur the frames by a Gaussian of SIGMA px before tracking, or 'auto' (from the grain "
                             "of frame 0 and the clicked cells' width: 4 px here; default 0, the zero-shot protocol; "
                             "8 raised the demo model from 0.241 to 0.289 on whole frames)")
    parser.add_argument("--image-size", type=int, default=None, help="the model's input size (default: its own)")
    parser.add_argument("--windows", action="store_true",
                        help="track each cell in its object window, as segment()'s default does "
                             "(default: whole frames)")
    args = parser.parse_args()
    model = build_model(args.model, checkpoint=args.checkpoint, device="cpu", image_size=args.image_size)
    window = msc_object_window(model, args.data) if args.windows else None
    smooth = args.smooth.strip().lower()
    try:
        sigma = msc_smooth(args.data) if smooth == "auto" else resolve_smooth(
            smooth if smooth == "off" else float(smooth), None, name="--smooth")
    except ValueError:
        parser.error(f"--smooth must be 'auto', 'off' or a number of pixels >= 0, got {args.smooth!r}")
    score = msc_iou(model, args.data, args.held_out_from, smooth=sigma, window=window)
    print(f"{args.model}: {score.num_cells} cells clicked on frame 0 of {score.image_shape}, "
          f"tracked in {score.seconds:.1f} s" + (f" in object windows (from {window} px)" if window else "")
          + (f", frames smoothed by {sigma:g} px" + (" (auto)" if smooth == "auto" else "") if sigma else ""))
    for t, (mean, count) in score.per_frame.items():
        print(f"  frame {t:2d}: mean IoU {mean:.3f} over {count} cells")
    held = sum(count for t, (_, count) in score.per_frame.items() if t >= args.held_out_from)
    print(f"overall mean IoU with the segmentation ground truth: {score.overall:.3f} ({score.cell_frames} cell-frames); "
          f"frames >= {args.held_out_from}: {score.held_out:.3f} ({held} cell-frames)")


if __name__ == "__main__":
    main()
