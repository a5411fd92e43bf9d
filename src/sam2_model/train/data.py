"""Training clips: short stacks of model inputs with the instance masks of the objects to segment.

A :class:`Clip` is what one simulated interactive session works on. Clips come from the synthetic
nuclei generator (:class:`SyntheticClips`), from the microscopy mix (:class:`MixedClips`) or from a
user's annotated stack (:class:`StackClips`). Frames
are mapped to model inputs exactly as :class:`sam2_model.frames.FrameSource` does at inference
(stack-wide percentile contrast limits, linear to [0, 1], antialiased resize, ImageNet normalisation),
so the model trains on what it will see. With ``contrast_jitter`` half of the synthetic clips take their limits
at random percentiles instead (:func:`jittered_limits`), so that the model does not depend on where the
background's grey level lands (docs/training_data.md: the demo weights need a near-black background).
"""

from __future__ import annotations

import collections
import hashlib
import multiprocessing
import multiprocessing.pool
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..evaluation import family_of, lineage_masks  # the ground truth that training and evaluation share
from ..frames import UINT8_LIMITS, normalise, percentile_limits, resize_unit, to_model_input, to_unit
from ..synth import CURRICULA, check_curriculum, random_microscopy_timelapse
from ..synthetic import make_timelapse
from .frame_options import FrameOptions, check_finite_frames  # noqa: F401 (check_finite_frames: its home was here)
from .hold_out import HeldOut
from .stack_labels import annotated_frames, annotated_spans, check_ids_follow_cells, link_by_overlap, not_annotated


@dataclass
class Clip:
    """images: (T, 3, S, S) float32 model inputs; masks: (T, N, S, S) float32 in {0, 1}, one channel per
    object (the object and, after a division, its descendants); present: (T, N) bool; unknown: (T, N) bool, True
    where an object is not annotated (neither there nor gone: no presence loss, no corrective click), or None."""

    images: torch.Tensor
    masks: torch.Tensor
    unknown: Optional[torch.Tensor] = None

    @property
    def present(self) -> torch.Tensor:
        return self.masks.flatten(2).amax(dim=2) > 0

    @property
    def num_frames(self) -> int:
        return self.images.shape[0]

    @property
    def num_objects(self) -> int:
        return self.masks.shape[1]


#: contrast jitter: share of clips jittered, the ranges of the lower and upper limits' percentiles, and how far
#: (a share of high - low) the lower limit may then drop, lifting the background from black towards grey
CONTRAST_JITTER_SHARE = 0.5
CONTRAST_JITTER_LOW = (0.0, 50.0)
CONTRAST_JITTER_HIGH = (98.0, 100.0)
CONTRAST_JITTER_LIFT = (0.0, 0.35)


def jittered_limits(stack: np.ndarray, seed: int) -> Optional[Tuple[float, float]]:
    """Contrast limits for a jittered clip, a pure function of ``seed`` (the clip's seed): with probability
    :data:`CONTRAST_JITTER_SHARE`, the stack's values at a lower percentile drawn from :data:`CONTRAST_JITTER_LOW`
    and an upper one from :data:`CONTRAST_JITTER_HIGH` (bright cells saturated or not), the lower one then moved
    down by a share of the range drawn from :data:`CONTRAST_JITTER_LIFT` (a noisy camera's background lands grey,
    not black, under percentile limits); otherwise None (the usual limits)."""
    rng = np.random.default_rng([seed, 0xC0])  # apart from the clip's own stream, which stays as without jitter
    if rng.random() >= CONTRAST_JITTER_SHARE:
        return None
    percentiles = (float(rng.uniform(*CONTRAST_JITTER_LOW)), float(rng.uniform(*CONTRAST_JITTER_HIGH)))
    low, high = percentile_limits(list(stack), percentiles)
    return low - float(rng.uniform(*CONTRAST_JITTER_LIFT)) * (high - low), high


def stack_to_unit_inputs(stack: np.ndarray, image_size: int, limits: Optional[Tuple[float, float]] = None) -> torch.Tensor:
    """(T, H, W) grey stack -> (T, 1, S, S) float32 in [0, 1], resized, with stack-wide contrast limits
    (``limits``, or 0-255 for uint8 and the 0.5 / 99.8 percentiles otherwise, as at inference): the model
    inputs before :func:`sam2_model.frames.normalise`."""
    if limits is None:
        limits = UINT8_LIMITS if stack.dtype == np.uint8 else percentile_limits(list(stack))
    return torch.stack([resize_unit(to_unit(frame, limits), image_size) for frame in stack])


def stack_to_model_inputs(stack: np.ndarray, image_size: int, limits: Optional[Tuple[float, float]] = None) -> torch.Tensor:
    """(T, H, W) grey stack -> (T, 3, S, S) model inputs (:func:`stack_to_unit_inputs`, normalised)."""
    return normalise(stack_to_unit_inputs(stack, image_size, limits))


def masks_to_model_resolution(masks: np.ndarray, image_size: int) -> torch.Tensor:
    """(T, N, H, W) bool -> (T, N, S, S) float32 in {0, 1} (nearest-neighbour resize when H, W != S)."""
    tensor = torch.from_numpy(masks.astype(np.float32))
    if tensor.shape[-2:] != (image_size, image_size):
        tensor = F.interpolate(tensor, size=(image_size, image_size), mode="nearest")
    return tensor


def pick_objects(
    labels: np.ndarray, rng: np.random.Generator, max_objects: int, min_area: int
) -> List[int]:
    """Ids of up to ``max_objects`` objects visible in frame 0 with at least ``min_area`` pixels."""
    ids, counts = np.unique(labels[0], return_counts=True)
    candidates = [int(i) for i, c in zip(ids, counts) if i != 0 and c >= min_area]
    if not candidates:
        return []
    count = min(max_objects, len(candidates))
    return [int(i) for i in rng.choice(candidates, size=count, replace=False)]


def make_clip(
    stack: np.ndarray, labels: np.ndarray, parents: Dict[int, int], image_size: int,
    rng: np.random.Generator, max_objects: int, min_area: int = 30, limits: Optional[Tuple[float, float]] = None,
) -> Optional[Clip]:
    """A clip from (T, H, W) ``stack`` and its instance ``labels``; objects are chosen in frame 0.

    Returns None when frame 0 has no usable object. limits: contrast limits (None: the usual ones).
    """
    obj_ids = pick_objects(labels, rng, max_objects, min_area)
    if not obj_ids:
        return None
    masks = lineage_masks(labels, obj_ids, parents)
    return Clip(stack_to_model_inputs(stack, image_size, limits), masks_to_model_resolution(masks, image_size))


class _SeededClipStream:
    """A resumable stream of generated clips: clip ``index`` is made from seed ``seed * 1_000_003 + index``."""

    seed: int
    index: int

    def position(self) -> Dict[str, int]:
        """Where the stream is, for resuming: the next clip's index."""
        return {"index": self.index}

    def restore(self, position: Dict[str, int]) -> None:
        self.index = int(position["index"])

    def clip_seed(self, index: int) -> int:
        return self.seed * 1_000_003 + index


class SyntheticClips(_SeededClipStream):
    """Endless clips from :func:`sam2_model.synthetic.make_timelapse` with randomised settings.

    Every clip's generator seed is ``seed * 1_000_003 + index``: reproducible, and disjoint from the
    small evaluation seeds as long as ``seed >= 1`` (evaluation uses seeds below 1_000_000).
    """

    def __init__(self, clip_len: int, image_size: int, max_objects: int, seed: int = 1,
                 shape: Tuple[int, int] = (256, 256), contrast_jitter: bool = False) -> None:
        if seed < 1:
            raise ValueError("training seed must be >= 1 (seeds below 1_000_000 are kept for evaluation)")
        self.clip_len, self.image_size, self.max_objects = clip_len, image_size, max_objects
        self.seed, self.shape, self.contrast_jitter = seed, shape, contrast_jitter
        self.index = 0

    def __iter__(self) -> Iterator[Clip]:
        while True:
            seed = self.clip_seed(self.index)
            self.index += 1
            rng = np.random.default_rng(seed)
            movie = make_timelapse(
                num_frames=self.clip_len, shape=self.shape, seed=seed,
                num_cells=int(rng.integers(5, 19)),
                dtype="uint8" if rng.random() < 0.3 else "uint16",
                radius_fraction=float(rng.uniform(0.045, 0.085)),
            )
            limits = jittered_limits(movie.image, seed) if self.contrast_jitter else None
            clip = make_clip(movie.image, movie.labels, movie.parents, self.image_size, rng, self.max_objects,
                             limits=limits)
            if clip is not None:
                yield clip


def random_view(frames: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """One clip's frames (T, H, W) and labels (T, H, W) under one of the 8 symmetries of the square, drawn at random
    (a turn by 0, 90, 180 or 270 degrees, mirrored or not), the same for every frame so that motion stays motion:
    eight views of each annotated frame. Returns (T, H, W) or (T, W, H) arrays."""
    quarter_turns, mirror = int(rng.integers(4)), bool(rng.random() < 0.5)
    frames, labels = np.rot90(frames, quarter_turns, axes=(1, 2)), np.rot90(labels, quarter_turns, axes=(1, 2))
    if mirror:
        frames, labels = frames[:, :, ::-1], labels[:, :, ::-1]
    return np.ascontiguousarray(frames), np.ascontiguousarray(labels)


def whole_number_labels(labels: np.ndarray) -> np.ndarray:
    """Instance labels as integers: integer arrays as they are, float arrays of whole numbers (a 32-bit label
    image saved by Fiji) as int64; fractional values, negative ids and other dtypes are refused by name."""
    if labels.dtype == bool:
        raise ValueError("labels must be instance ids (0 background, 1, 2, ... one per cell), got a boolean mask: "
                         "give each cell its own id (e.g. scipy.ndimage.label)")
    if np.issubdtype(labels.dtype, np.floating):
        fractional = labels[np.isfinite(labels) & (labels != np.round(labels))]
        if not np.isfinite(labels).all() or fractional.size:
            example = fractional.flat[0] if fractional.size else labels[~np.isfinite(labels)].flat[0]
            raise ValueError(f"labels must be whole-number instance ids; this {labels.dtype} image holds {example}")
        labels = labels.astype(np.int64)
    elif not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer instance ids, got dtype {labels.dtype}")
    if labels.min(initial=0) < 0:
        raise ValueError(f"labels must be instance ids >= 0 (0 background, 1, 2, ... one per cell); they hold "
                         f"{int(labels.min())}")
    return labels


def frames_as_seen(stack: Any, options: FrameOptions, image_size: int,
                   limits: Optional[Tuple[float, float]] = None) -> Tuple[np.ndarray, Tuple[float, float]]:
    """(T, H, W[, C]) ``stack`` (or one (H, W) image) as the model sees it before the contrast mapping, through a
    :class:`FrameSource` with ``options``: the channel picked or combined and the frames smoothed
    (:meth:`FrameSource.filtered`: (T, H, W), float32 when smoothed), and the contrast limits the source maps them
    with (``limits`` when given, else the options', else the stack's percentiles after smoothing, as at inference).
    One (H, W) image comes back as (H, W)."""
    array = np.asarray(stack)
    if array.ndim == 2:
        frames, found = frames_as_seen(array[None], options, image_size, limits)
        return frames[0], found
    with options.source(array, image_size, limits) as view:
        frames = np.stack([view.filtered(t) for t in range(view.num_frames)])
        return frames, view.contrast_limits


class StackClips:
    """Endless random clips (random start, random direction) from a user's annotated stack.

    stack: (T, H, W) grey frames (or one (H, W) image); labels: the same shape, instance labels with ids consistent
    through time. Frames with no label are taken as not annotated and left out: clips run over the annotated frames
    (``frames``, indices into the stack; ``stack`` and ``labels`` keep only those). An object missing from a frame
    between two on which it is annotated is marked unknown there (:attr:`Clip.unknown`), not gone. augment: each
    clip turned and mirrored at random (:func:`random_view`). A stack whose ids change from frame to frame is refused
    when clips are longer than one frame (:func:`.stack_labels.check_ids_follow_cells`), unless ``link_ids`` links
    them by overlap first (:func:`.stack_labels.link_by_overlap`). held_out: the frames the caller kept out of
    ``stack`` and ``labels`` (:mod:`.hold_out`), carried for the check after training. limits, invert: the frames'
    contrast limits and inversion as :class:`FrameSource` maps them (:func:`frames_as_seen` gives the frames and the
    limits; None: 0-255 for uint8, else the annotated frames' percentiles, as before frame options existed).
    """

    def __init__(self, stack: np.ndarray, labels: np.ndarray, clip_len: int, image_size: int,
                 max_objects: int, seed: int = 1, parents: Optional[Dict[int, int]] = None,
                 augment: bool = False, link_ids: bool = False, held_out: Optional[HeldOut] = None,
                 limits: Optional[Tuple[float, float]] = None, invert: bool = False) -> None:
        stack, labels = np.asarray(stack), np.asarray(labels)
        if stack.ndim == 2 and labels.ndim == 2:  # one annotated image: a stack of one frame
            stack, labels = stack[None], labels[None]
        if stack.ndim != 3:
            raise ValueError(f"the training stack must be (T, H, W) grey frames or one (H, W) grey image, got shape "
                             f"{stack.shape}; pick one channel first")
        if labels.shape != stack.shape:
            raise ValueError(f"labels shape {labels.shape} differs from the stack's {stack.shape}; "
                             "they must be the same (T, H, W)")
        labels = whole_number_labels(labels)
        if not labels.any():
            raise ValueError("labels hold no object (all zero): annotate at least one object")
        if labels.all():
            raise ValueError(f"labels have no background: not one pixel is 0 on any of their {len(labels)} frames "
                             f"({len(np.unique(labels[0]))} distinct values on the first), so they look like an image, "
                             "not labels. Labels give each object a positive id and the background 0: check that the "
                             "labels are the label stack and the stack the image")
        if not any(masks_to_model_resolution(frame[None, None] > 0, image_size).any() for frame in labels):
            raise ValueError(f"no annotated object is left once the {stack.shape[1]} x {stack.shape[2]} frames are "
                             f"resized to the model's {image_size} x {image_size} input: annotate larger objects, "
                             "crop the stack around them, or train at a larger input size")
        self.total_frames = len(stack)
        self.link_ids = bool(link_ids)
        if self.link_ids:
            labels = link_by_overlap(labels)
        self.frames = annotated_frames(labels)
        if clip_len > 1:  # before the blank frames go, so that messages name the stack's frames
            check_ids_follow_cells(labels, self.frames, parents)
        if len(self.frames) < len(labels):  # copies only the annotated frames, and only when some are blank
            stack, labels = stack[self.frames], labels[self.frames]
        self.stack, self.labels, self.parents = stack, labels, dict(parents or {})
        self.spans = annotated_spans(labels)
        self.clip_len = min(clip_len, stack.shape[0])
        self.image_size, self.max_objects = image_size, max_objects
        self.augment = bool(augment)
        self.given_limits = limits  # the frame options' limits, the run's check maps with them too (None: its own)
        self.limits = limits if limits is not None else UINT8_LIMITS if stack.dtype == np.uint8 else \
            percentile_limits(list(stack[:: max(1, len(stack) // 16)]))
        self.invert = bool(invert)
        self.rng = np.random.default_rng(seed)
        self.held_out = held_out  # frames kept out of training (not in stack and labels), for the run's check
        self._fingerprint: Optional[str] = None

    def position(self) -> Dict[str, object]:
        """Where the stream is, for resuming: its random generator's state."""
        return {"rng": self.rng.bit_generator.state}

    def restore(self, position: Dict[str, object]) -> None:
        self.rng.bit_generator.state = position["rng"]

    def fingerprint(self) -> str:
        """A digest of the frames and labels clips are drawn from (after blank frames are left out and ids linked):
        a run resumes only on the same data. Computed once (every checkpoint records it)."""
        if self._fingerprint is None:
            digest = hashlib.blake2b(digest_size=16)
            for array in (self.stack, self.labels):
                digest.update(f"{array.shape}{array.dtype}".encode())
                digest.update(np.ascontiguousarray(array).data)
            self._fingerprint = digest.hexdigest()
        return self._fingerprint

    def _unit(self, frame: np.ndarray) -> np.ndarray:
        """(H, W) frame -> float32 in [0, 1] as :meth:`FrameSource.mapped` maps it (limits, then 1 - x if inverted)."""
        unit = to_unit(frame, self.limits)
        return np.subtract(1.0, unit, out=unit) if self.invert else unit

    def __iter__(self) -> Iterator[Clip]:
        num_frames = self.stack.shape[0]
        while True:
            start = int(self.rng.integers(0, num_frames - self.clip_len + 1))
            order = np.arange(start, start + self.clip_len)
            if self.rng.random() < 0.5:
                order = order[::-1]
            frames, labels = self.stack[order], self.labels[order]
            if self.augment:
                frames, labels = random_view(frames, labels, self.rng)
            obj_ids = pick_objects(labels, self.rng, self.max_objects, min_area=10)
            if not obj_ids:
                continue
            drawn = lineage_masks(labels, obj_ids, self.parents)  # (T, N, H, W) bool
            masks = masks_to_model_resolution(drawn, self.image_size)
            seen = masks[0].flatten(1).amax(dim=1) > 0  # an object a few px wide can fall between the samples
            if not seen.any():
                continue
            unknown = np.stack([not_annotated(drawn[:, n].any(axis=(1, 2)), order, family_of(obj_id, self.parents),
                                              self.spans) for n, obj_id in enumerate(obj_ids)], axis=1)  # (T, N)
            images = torch.stack([to_model_input(self._unit(frame), self.image_size) for frame in frames])
            yield Clip(images, masks[:, seen], torch.from_numpy(unknown[:, seen.numpy()]) if unknown.any() else None)


DATA_KINDS = ("nuclei",) + CURRICULA
# what each kind of synthetic data is, for the weights' metadata
TRAINING_DATA = {
    "nuclei": "sam2_model.synthetic.make_timelapse, clip seeds seed * 1_000_003 + index (see SyntheticClips)",
    "mix": "sam2_model.synth microscopy mix (MIX weights; far leaps in 30% of the nuclei/cell clips since "
           "2026-12-04) + 15% sam2_model.synthetic nuclei clips (see MixedClips)",
    "leaps": "sam2_model.synth nuclei and whole cells of the mix (MIX weights), every clip with far leaps between "
             "frames (JUMP_RATE_RANGE) + 15% sam2_model.synthetic nuclei clips (see MixedClips)",
    "spread-cells": "sam2_model.synth microscopy mix with fluorescent whole cells at 40% of its clips (SPREAD_CELLS_SHARE; "
                    "dim rims and thin tails in half of them each, since 2026-12-05) + 15% sam2_model.synthetic "
                    "nuclei clips (see MixedClips)",
    "crowded-nuclei": "sam2_model.synth fluorescent nuclei 8-48 px wide covering 15-45% of the field in 40% of the "
                      "clips (CROWDED_NUCLEI_SHARE, since 2026-12-05), the rest drawn as for spread-cells; + 15% "
                      "sam2_model.synthetic nuclei clips (see MixedClips)",
}


def describe_training_data(settings: Mapping[str, Any]) -> str:
    """What a run trained on, from its settings (a TrainSettings as a dict; older runs lack some keys)."""
    if settings.get("stack"):
        return f"user stack {settings['stack']} with labels {settings.get('labels')}"
    if settings.get("average_of"):  # sam2_model.train.average: no data, a mix of earlier weights
        names = [Path(p).parent.name if Path(p).name == "weights.pt" else Path(p).name for p in settings["average_of"]]
        parts = ", ".join(f"{w:g} x {name}" for name, w in zip(names, settings.get("average_weights") or []))
        return f"no training: parameter average of {parts}"
    if "data" in settings and settings["data"] is None:  # a run on a user's stack handed over as arrays records none
        return "a user's stack given as arrays, with its labels"
    kind = settings.get("data") or "nuclei"
    described = TRAINING_DATA.get(kind, kind)
    if settings.get("contrast_jitter"):
        described += "; contrast jitter on half of the clips"
    if settings.get("alternate_image_size"):
        described += f"; every other step at {settings['alternate_image_size']} px input"
    return described


def mixed_clip_arrays(seed: int, clip_len: int, shape: Tuple[int, int], max_objects: int, min_area: int,
                      nuclei_fraction: float, curriculum: str = "mix") -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The arrays of one :class:`MixedClips` clip, a pure function of its arguments (so worker processes
    can make it): (T, H, W) image and (T, N, H, W) bool lineage masks, or None when frame 0 has no
    usable object. With probability ``nuclei_fraction`` the clip comes from the nuclei generator
    (drawn as :class:`SyntheticClips` draws it), otherwise from the microscopy mix drawn as ``curriculum`` says
    (:data:`sam2_model.synth.CURRICULA`)."""
    rng = np.random.default_rng(seed)
    if rng.random() < nuclei_fraction:
        movie = make_timelapse(
            num_frames=clip_len, shape=shape, seed=seed, num_cells=int(rng.integers(5, 19)),
            dtype="uint8" if rng.random() < 0.3 else "uint16", radius_fraction=float(rng.uniform(0.045, 0.085)),
        )
    else:
        movie = random_microscopy_timelapse(rng, shape, clip_len, curriculum)
    obj_ids = pick_objects(movie.labels, rng, max_objects, min_area)
    if not obj_ids:
        return None
    return movie.image, lineage_masks(movie.labels, obj_ids, movie.parents)


def mixed_clip_parts(seed: int, clip_len: int, shape: Tuple[int, int], max_objects: int, min_area: int,
                     nuclei_fraction: float, image_size: int,
                     contrast_jitter: bool, curriculum: str = "mix") -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """One :class:`MixedClips` clip nearly ready for training, a pure function of its arguments: the arrays
    of :func:`mixed_clip_arrays` as (T, 1, S, S) float32 grey inputs in [0, 1] (:func:`stack_to_unit_inputs`;
    jittered limits when ``contrast_jitter``) and (T, N, S, S) bool masks; None when frame 0 has no usable
    object. Worker processes do all of this and send these parts (about a quarter of a :class:`Clip`'s bytes,
    as numpy arrays pickled through the pool's pipe), so the training process only normalises
    (:func:`clip_from_parts`) and its CPU threads stay free."""
    arrays = mixed_clip_arrays(seed, clip_len, shape, max_objects, min_area, nuclei_fraction, curriculum)
    if arrays is None:
        return None
    image, masks = arrays
    limits = jittered_limits(image, seed) if contrast_jitter else None
    units = stack_to_unit_inputs(image, image_size, limits).numpy()
    if masks.shape[-2:] != (image_size, image_size):  # (clips are usually made at the input size already)
        masks = (masks_to_model_resolution(masks, image_size) > 0.5).numpy()
    return units, masks


def clip_from_parts(parts: Tuple[np.ndarray, np.ndarray]) -> Clip:
    """(grey inputs, bool masks) of :func:`mixed_clip_parts` -> the :class:`Clip` (normalised inputs, float masks)."""
    units, masks = parts
    return Clip(normalise(torch.from_numpy(units)), torch.from_numpy(masks).to(torch.float32))


_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _single_threaded_worker() -> None:
    torch.set_num_threads(1)


def _worker_pool(workers: int) -> "multiprocessing.pool.Pool":
    """``workers`` clip-making processes, safe beside CUDA: started by spawn (a fresh interpreter, not a
    fork of a process that may hold a CUDA context; they never touch CUDA: clips are numpy arrays), one
    compute thread each so that N workers use N cores."""
    saved = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    os.environ.update({name: "1" for name in _THREAD_VARIABLES})  # read by the children as they start
    try:
        return multiprocessing.get_context("spawn").Pool(workers, initializer=_single_threaded_worker)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class MixedClips(_SeededClipStream):
    """Endless clips from the microscopy mix (:func:`sam2_model.synth.random_microscopy_timelapse`:
    nuclei, whole cells and bacteria in fluorescence, phase contrast, brightfield and DIC, and
    natural-image-like clips), with a share ``nuclei_fraction`` of the original nuclei clips.

    Clips are made at ``shape`` (default: the model input, ``image_size`` x ``image_size``, so that small
    cells stay small at 512 px), with objects of at least ``min_area`` px in frame 0. Clip seeds follow
    :class:`SyntheticClips` (``seed * 1_000_003 + index``), so the stream is reproducible and resumes by
    index. ``workers`` > 0 makes clips ahead in that many processes; the clips are the same as with 0.
    ``curriculum`` (:data:`sam2_model.synth.CURRICULA`, the ``--data`` of the same name): "mix"; "leaps", the
    mix's nuclei and whole cells only, every clip with far leaps between frames (with the same share of nuclei
    clips; ``nuclei_fraction=0`` for leaping clips alone); "spread-cells", fluorescent whole cells raised to
    SPREAD_CELLS_SHARE of the mix; "crowded-nuclei", crowded fluorescent nuclei in CROWDED_NUCLEI_SHARE of it.
    """

    def __init__(self, clip_len: int, image_size: int, max_objects: int, seed: int = 1,
                 shape: Optional[Tuple[int, int]] = None, nuclei_fraction: float = 0.15,
                 min_area: int = 12, workers: int = 0, contrast_jitter: bool = False,
                 curriculum: str = "mix") -> None:
        if seed < 1:
            raise ValueError("training seed must be >= 1 (seeds below 1_000_000 are kept for evaluation)")
        if not 0.0 <= nuclei_fraction <= 1.0:
            raise ValueError(f"nuclei_fraction must be between 0 and 1, got {nuclei_fraction}")
        if workers < 0:
            raise ValueError(f"workers must be >= 0 (0: make clips in this process), got {workers}")
        check_curriculum(curriculum)
        self.clip_len, self.image_size, self.max_objects = clip_len, image_size, max_objects
        self.seed = seed
        self.shape = (image_size, image_size) if shape is None else (int(shape[0]), int(shape[1]))
        self.nuclei_fraction, self.min_area, self.workers = nuclei_fraction, min_area, workers
        self.contrast_jitter, self.curriculum = contrast_jitter, curriculum
        self.index = 0

    def _arguments(self, index: int) -> tuple:
        return (self.clip_seed(index), self.clip_len, self.shape, self.max_objects, self.min_area,
                self.nuclei_fraction, self.image_size, self.contrast_jitter, self.curriculum)

    def __iter__(self) -> Iterator[Clip]:
        if self.workers == 0:
            while True:
                parts = mixed_clip_parts(*self._arguments(self.index))
                self.index += 1
                if parts is not None:
                    yield clip_from_parts(parts)
        pool = _worker_pool(self.workers)
        try:
            pending: "collections.deque" = collections.deque()
            ahead = self.index
            while True:
                while len(pending) < 2 * self.workers:
                    pending.append(pool.apply_async(mixed_clip_parts, self._arguments(ahead)))
                    ahead += 1
                parts = pending.popleft().get()
                self.index += 1
                if parts is not None:
                    yield clip_from_parts(parts)
        finally:
            pool.terminate()
