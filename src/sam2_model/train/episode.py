"""One simulated interactive session on a clip, as SAM 2 is trained (Ravi et al. 2024, sec. 4 and app. D).

Frame 0 of the clip gets a prompt for every object (a positive click, a box, or the ground-truth
mask); on clicks and boxes, up to ``max_corrections`` corrective clicks follow, each sampled from the
error of the current prediction and decoded together with the previous logits. The other frames are
tracked through the memory bank (memories of the prompted frame and of the recent frames, object
pointers), and one of them may get a corrective click and become a prompted frame itself. Every
decoded prediction adds its losses; gradients flow through the memories (back-propagation through time).

A session is written once, as a generator (:func:`session`) that yields the model calls it needs
(:class:`Decode`: what ``SAM2Model.track_step`` does for all objects of a frame; :class:`Remember`:
the memory encoder) and receives their results. :func:`run_episode` runs the sessions of a step's
clips either one after another, each call straight through the model (the per-clip path), or in
lock-step, the calls of all clips at the same point of their sessions served as one batch
(:mod:`.episode_batch`). Each clip draws its prompts from its own random generator, seeded from the
step's generator, so both paths draw the same prompts and compute the same losses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Generator, List, Mapping, Optional, Sequence, Tuple, Union

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


@dataclass
class Decode:
    """Segment frame ``frame`` for all N objects of a clip, as ``SAM2Model.track_step`` does.

    cond / recent: the clip's memory bank (prompted / tracked frames); coords (N, P, 2), labels (N, P):
    point prompts; mask_input (N, 1, S, S): a mask prompt; prev_logits (N, 1, 4h, 4w): the previous
    low-res logits of a refinement.
    """

    frame: int
    is_init: bool
    cond: Mapping[int, MemoryEntry] = field(default_factory=dict)
    recent: Mapping[int, MemoryEntry] = field(default_factory=dict)
    coords: Optional[torch.Tensor] = None
    labels: Optional[torch.Tensor] = None
    mask_input: Optional[torch.Tensor] = None
    prev_logits: Optional[torch.Tensor] = None


@dataclass
class Remember:
    """Encode the memory of frame ``frame`` from ``prediction`` (N objects) -> a :class:`MemoryEntry`."""

    frame: int
    prediction: MaskPrediction
    from_points: bool


Request = Union[Decode, Remember]
Phase = Tuple[int, int]  # (frame, stage): sessions in lock-step serve equal phases together
LOSS_KEYS = ("focal", "dice", "iou", "object_score", "total", "mask_iou")  # what prediction_losses returns
MEMORY_STAGE = 1_000_000  # a frame's memory is encoded after all of its decoding stages
# A session yields (phase, request), is sent the request's result, and returns its loss terms.
Session = Generator[Tuple[Phase, Request], Union[MaskPrediction, MemoryEntry], List[Dict[str, torch.Tensor]]]


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
                     rng: np.random.Generator, unknown: Optional[torch.Tensor] = None) -> None:
    """One corrective click per object from the error of ``prediction`` against target (N, S, S); none for an
    object marked in ``unknown`` (N,) bool (not annotated on this frame)."""
    pred = (prediction.high_res_logits[:, 0] > 0).detach().cpu().numpy()
    gt = (target > 0.5).cpu().numpy()
    for n in range(gt.shape[0]):
        if (not gt[n].any() and not pred[n].any()) or (unknown is not None and bool(unknown[n])):
            continue  # nothing to correct (or nothing known to correct against): this object's row stays padded
        x, y, label = corrective_click(pred[n], gt[n], rng)
        points.add(n, x, y, label)


def _losses(prediction: MaskPrediction, target: torch.Tensor, weights: LossWeights,
            unknown: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
    """The loss terms of one decoded prediction against target (N, S, S) masks (``unknown``: see
    :func:`prediction_losses`)."""
    logits = prediction.raw_multimask_logits
    size = target.shape[-2:]
    if logits.shape[-2:] != size:
        logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
    return prediction_losses(logits, prediction.ious, prediction.object_score_logits, target[:, None], weights,
                             unknown)


def session(clip: Clip, rng: np.random.Generator, settings: EpisodeSettings, weights: LossWeights,
            device: torch.device) -> Session:
    """The simulated session on one clip, as a generator of model calls (see the module docstring)."""
    num_frames, num_objects = clip.num_frames, clip.num_objects
    masks = clip.masks.to(device)
    gt0 = clip.masks[0].numpy() > 0.5
    terms: List[Dict[str, torch.Tensor]] = []
    kind = rng.random()
    if kind >= settings.click_prob + settings.box_prob:
        prediction = yield (0, 0), Decode(0, True, mask_input=masks[0][:, None])
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
        prediction = yield (0, 0), Decode(0, True, coords=coords, labels=labels)
        terms.append(_losses(prediction, masks[0], weights))
        for round_ in range(int(rng.integers(0, settings.max_corrections + 1))):
            _add_corrections(points, prediction, masks[0], rng)
            coords, labels = points.tensors(device)
            prediction = yield (0, 1 + round_), Decode(0, True, coords=coords, labels=labels,
                                                       prev_logits=prediction.low_res_logits)
            terms.append(_losses(prediction, masks[0], weights))
        from_points = True
    if num_frames == 1:
        return terms
    cond: Dict[int, MemoryEntry] = {0: (yield (0, MEMORY_STAGE), Remember(0, prediction, from_points))}
    recent: Dict[int, MemoryEntry] = {}
    corrected_frame: Optional[int] = None
    if rng.random() < settings.correction_on_tracked_frame_prob:
        corrected_frame = int(rng.integers(1, num_frames))
    unknown = [None] * num_frames if clip.unknown is None else list(clip.unknown.to(device))
    for t in range(1, num_frames):
        prediction = yield (t, 0), Decode(t, False, cond, recent)
        terms.append(_losses(prediction, masks[t], weights, unknown[t]))
        if t == corrected_frame:
            points = _Points(num_objects)
            _add_corrections(points, prediction, masks[t], rng, unknown[t])
            coords, labels = points.tensors(device)
            prediction = yield (t, 1), Decode(t, False, cond, recent, coords, labels,
                                              prev_logits=prediction.low_res_logits)
            terms.append(_losses(prediction, masks[t], weights, unknown[t]))
            cond[t] = yield (t, MEMORY_STAGE), Remember(t, prediction, True)
        else:
            recent[t] = yield (t, MEMORY_STAGE), Remember(t, prediction, False)
    return terms


def clip_generators(rng: np.random.Generator, count: int) -> List[np.random.Generator]:
    """The prompt generators of a step's ``count`` clips, seeded from the step's ``rng`` (one draw each)."""
    return [np.random.default_rng(int(seed)) for seed in rng.integers(0, 2**63 - 1, size=count)]


def run_direct(model: SAM2Model, features: FrameFeatures, num_frames: int, num_objects: int
               ) -> Callable[[Request], Union[MaskPrediction, MemoryEntry]]:
    """The per-clip path: each request of one clip's session straight through ``model``.

    features: the clip's (T, ...) frame features.
    """

    def run(request: Request) -> Union[MaskPrediction, MemoryEntry]:
        frame = _frame(features, request.frame, num_objects)
        if isinstance(request, Remember):
            prediction = request.prediction
            mem, pos = model.encode_memory(frame, prediction.high_res_logits, prediction.object_score_logits,
                                           request.from_points)
            return MemoryEntry(mem, pos, prediction.obj_ptr)
        return model.track_step(request.frame, frame, request.is_init, request.cond, request.recent, num_frames,
                                request.coords, request.labels, request.mask_input,
                                prev_mask_logits=request.prev_logits)

    return run


def drive(sessions: Sequence[Session],
          serve: Callable[[List[Tuple[int, Request]]], List[Union[MaskPrediction, MemoryEntry]]]
          ) -> List[List[Dict[str, torch.Tensor]]]:
    """Run ``sessions`` in lock-step: at every round, the requests of the earliest pending phase are
    served together by ``serve([(session index, request), ...])``. Returns each session's loss terms."""
    pending: Dict[int, Tuple[Phase, Request]] = {i: next(s) for i, s in enumerate(sessions)}
    terms: List[List[Dict[str, torch.Tensor]]] = [[] for _ in sessions]
    while pending:
        phase = min(p for p, _ in pending.values())
        ready = [i for i in sorted(pending) if pending[i][0] == phase]
        results = serve([(i, pending[i][1]) for i in ready])
        for i, result in zip(ready, results):
            try:
                pending[i] = sessions[i].send(result)
            except StopIteration as stop:
                terms[i] = stop.value
                del pending[i]
    return terms


def run_episode(
    model: SAM2Model, clips: Sequence[Clip], rng: np.random.Generator,
    settings: EpisodeSettings = EpisodeSettings(), weights: LossWeights = LossWeights(),
    batch_clips: bool = True,
) -> Dict[str, torch.Tensor]:
    """Simulate one session per clip and return the mean of every loss term over all decoded predictions.

    clips: each with (T, 3, S, S) images and (T, N, S, S) masks. With ``batch_clips`` the clips' model
    calls go through the model together, one batch per frame and stage (clips of equal T and S; others
    in batches of their own); otherwise one clip after another. Both draw the same prompts from ``rng``
    and give the same losses (up to float rounding).
    """
    if not clips:
        raise ValueError("clips must hold at least one Clip, got none")
    device = model.device
    generators = clip_generators(rng, len(clips))
    images = torch.cat([clip.images for clip in clips]).to(device)
    all_features = model.encode_image(images)
    starts = np.cumsum([0] + [clip.num_frames for clip in clips])
    per_clip: List[List[Dict[str, torch.Tensor]]] = [[] for _ in clips]
    if batch_clips:
        from .episode_batch import BatchedCalls

        shapes: Dict[Tuple[int, ...], List[int]] = {}
        for i, clip in enumerate(clips):
            shapes.setdefault((clip.num_frames, *clip.images.shape[-2:]), []).append(i)
        for members in shapes.values():
            calls = BatchedCalls(model, all_features, [int(starts[i]) for i in members],
                                 [clips[i].num_objects for i in members], clips[members[0]].num_frames)
            sessions = [session(clips[i], generators[i], settings, weights, device) for i in members]
            for i, terms in zip(members, drive(sessions, calls.serve)):
                per_clip[i] = terms
    else:
        for i, clip in enumerate(clips):
            a, b = int(starts[i]), int(starts[i + 1])
            features = FrameFeatures(all_features.image_embed[a:b], all_features.image_pos[a:b],
                                     [x[a:b] for x in all_features.high_res])
            run = run_direct(model, features, clip.num_frames, clip.num_objects)
            per_clip[i] = drive([session(clip, generators[i], settings, weights, device)],
                                lambda requests: [run(request) for _, request in requests])[0]
    terms = [t for clip_terms in per_clip for t in clip_terms]
    if not terms:  # only mask prompts on single frames: nothing was decoded, nothing to learn
        zero = all_features.image_embed.sum() * 0.0
        return {key: zero for key in LOSS_KEYS}
    keys = terms[0].keys()
    return {key: torch.stack([t[key] for t in terms]).mean() for key in keys}
