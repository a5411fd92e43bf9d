"""One simulated interactive session on a clip, as SAM 2 is trained (Ravi et al. 2024, sec. 4 and app. D).

Frame 0 of the clip gets a prompt for every object (a positive click, a box, or the ground-truth
mask); on clicks and boxes, up to ``max_corrections`` corrective clicks follow, each sampled from the
error of the current prediction and decoded together with the previous logits. The other frames are
tracked through the memory bank (memories of the prompted frame and of the recent frames, object
pointers), and one of them may get a corrective click and become a prompted frame itself. Every
decoded prediction adds its losses; gradients flow through the memories (back-propagation through time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..modeling.sam2 import FrameFeatures, MaskPrediction, MemoryEntry, SAM2Model
from .data import Clip
from .losses import LossWeights, prediction_losses
from .prompts import corrective_click, sample_box, sample_click


@dataclass(frozen=True)
class EpisodeSettings:
    """How prompts are simulated. Probabilities are per clip."""

    click_prob: float = 0.6  # first prompt: a positive click ...
    box_prob: float = 0.3  # ... or a box; otherwise the ground-truth mask
    max_corrections: int = 2  # corrective clicks on the first frame (0..max, uniformly)
    correction_on_tracked_frame_prob: float = 0.25  # one tracked frame gets a corrective click


class _Points:
    """Growing per-object point prompts: N lists of (x, y) and labels, padded with label -1."""

    def __init__(self, num_objects: int) -> None:
        self.coords: List[List[Tuple[float, float]]] = [[] for _ in range(num_objects)]
        self.labels: List[List[int]] = [[] for _ in range(num_objects)]

    def add(self, n: int, x: float, y: float, label: int) -> None:
        self.coords[n].append((x, y))
        self.labels[n].append(label)

    def tensors(self, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        width = max(1, max(len(c) for c in self.coords))
        coords = np.zeros((len(self.coords), width, 2), dtype=np.float32)
        labels = -np.ones((len(self.coords), width), dtype=np.int32)
        for n, (c, l) in enumerate(zip(self.coords, self.labels)):
            if c:
                coords[n, : len(c)] = c
                labels[n, : len(l)] = l
        return torch.from_numpy(coords).to(device), torch.from_numpy(labels).to(device)


def _frame(features: FrameFeatures, t: int, num_objects: int) -> FrameFeatures:
    single = FrameFeatures(features.image_embed[t : t + 1], features.image_pos[t : t + 1],
                           [x[t : t + 1] for x in features.high_res])
    return single.expand(num_objects)


def _add_corrections(points: _Points, prediction: MaskPrediction, target: torch.Tensor,
                     rng: np.random.Generator) -> None:
    """One corrective click per object from the error of ``prediction`` against target (N, S, S)."""
    pred = (prediction.high_res_logits[:, 0] > 0).detach().cpu().numpy()
    gt = (target > 0.5).cpu().numpy()
    for n in range(gt.shape[0]):
        if not gt[n].any() and not pred[n].any():
            continue  # nothing to correct: this object's row stays padded
        x, y, label = corrective_click(pred[n], gt[n], rng)
        points.add(n, x, y, label)


def _losses(prediction: MaskPrediction, target: torch.Tensor, weights: LossWeights) -> Dict[str, torch.Tensor]:
    """The loss terms of one decoded prediction against target (N, S, S) masks."""
    logits = prediction.raw_multimask_logits
    size = target.shape[-2:]
    if logits.shape[-2:] != size:
        logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
    return prediction_losses(logits, prediction.ious, prediction.object_score_logits, target[:, None], weights)


def _memory(model: SAM2Model, features: FrameFeatures, prediction: MaskPrediction, from_points: bool) -> MemoryEntry:
    mem, pos = model.encode_memory(features, prediction.high_res_logits, prediction.object_score_logits, from_points)
    return MemoryEntry(mem, pos, prediction.obj_ptr)


def run_episode(
    model: SAM2Model, clips: Sequence[Clip], rng: np.random.Generator,
    settings: EpisodeSettings = EpisodeSettings(), weights: LossWeights = LossWeights(),
) -> Dict[str, torch.Tensor]:
    """Simulate one session per clip and return the mean of every loss term over all decoded predictions."""
    device = model.device
    images = torch.cat([clip.images for clip in clips]).to(device)
    all_features = model.encode_image(images)
    terms: List[Dict[str, torch.Tensor]] = []
    offset = 0
    for clip in clips:
        features = FrameFeatures(
            all_features.image_embed[offset : offset + clip.num_frames],
            all_features.image_pos[offset : offset + clip.num_frames],
            [x[offset : offset + clip.num_frames] for x in all_features.high_res],
        )
        offset += clip.num_frames
        terms.extend(_session(model, clip, features, rng, settings, weights))
    keys = terms[0].keys()
    return {key: torch.stack([t[key] for t in terms]).mean() for key in keys}


def _session(model: SAM2Model, clip: Clip, features: FrameFeatures, rng: np.random.Generator,
             settings: EpisodeSettings, weights: LossWeights) -> List[Dict[str, torch.Tensor]]:
    device = model.device
    num_frames, num_objects = clip.num_frames, clip.num_objects
    masks = clip.masks.to(device)
    gt0 = clip.masks[0].numpy() > 0.5
    terms: List[Dict[str, torch.Tensor]] = []
    first = _frame(features, 0, num_objects)
    kind = rng.random()
    if kind >= settings.click_prob + settings.box_prob:
        prediction = model.track_step(0, first, True, {}, {}, num_frames, mask_input=masks[0][:, None])
        from_points = False
    else:
        points = _Points(num_objects)
        for n in range(num_objects):
            if kind < settings.click_prob:
                x, y = sample_click(gt0[n], rng)
                points.add(n, x, y, 1)
            else:
                (x0, y0), (x1, y1) = sample_box(gt0[n], rng)
                points.add(n, x0, y0, 2)
                points.add(n, x1, y1, 3)
        coords, labels = points.tensors(device)
        prediction = model.track_step(0, first, True, {}, {}, num_frames, coords, labels)
        terms.append(_losses(prediction, masks[0], weights))
        for _ in range(int(rng.integers(0, settings.max_corrections + 1))):
            _add_corrections(points, prediction, masks[0], rng)
            coords, labels = points.tensors(device)
            prediction = model.track_step(0, first, True, {}, {}, num_frames, coords, labels,
                                          prev_mask_logits=prediction.low_res_logits)
            terms.append(_losses(prediction, masks[0], weights))
        from_points = True
    if num_frames == 1:
        return terms
    cond: Dict[int, MemoryEntry] = {0: _memory(model, first, prediction, from_points)}
    recent: Dict[int, MemoryEntry] = {}
    corrected_frame: Optional[int] = None
    if rng.random() < settings.correction_on_tracked_frame_prob:
        corrected_frame = int(rng.integers(1, num_frames))
    for t in range(1, num_frames):
        frame = _frame(features, t, num_objects)
        prediction = model.track_step(t, frame, False, cond, recent, num_frames)
        terms.append(_losses(prediction, masks[t], weights))
        if t == corrected_frame:
            points = _Points(num_objects)
            _add_corrections(points, prediction, masks[t], rng)
            coords, labels = points.tensors(device)
            prediction = model.track_step(t, frame, False, cond, recent, num_frames, coords, labels,
                                          prev_mask_logits=prediction.low_res_logits)
            terms.append(_losses(prediction, masks[t], weights))
            cond[t] = _memory(model, frame, prediction, True)
        else:
            recent[t] = _memory(model, frame, prediction, False)
    return terms
