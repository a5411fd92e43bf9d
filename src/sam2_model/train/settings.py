"""The settings of a training run (:class:`TrainSettings`) and the fine-tuning defaults (:data:`FINE_TUNING_LR`,
:func:`fine_tuning_warmup`), apart from the loop so that ``sam2-train``'s argument parsing and ``--help``, and the
fine-tuning widget's form, need neither torch nor the training code (:mod:`sam2_model.train.loop` re-exports them)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Union

from ..demo_weights import embedded_weights_path


#: The command line's learning rate for a run that starts from trained weights (``--init`` a checkpoint or embedded,
#: or ``--stack`` without ``--init``): the fine-tuning widget's. :class:`TrainSettings`' ``lr`` (5e-4) is the value for
#: training from random weights, too large a step for trained weights once the warm-up is short.
FINE_TUNING_LR = 1e-4


def fine_tuning_warmup(steps: int) -> int:
    """Warm-up steps for fine-tuning on a user's few annotated frames: a quarter of the run, at most 50.

    A short warm-up let the first large updates (the object-score head learning that the user's cells are
    objects) wipe out the memory path: on the MSC example, 20 warm-up steps of 200 left every tracked object
    the same blob for one seed in four (docs/training_data.md); 50 did not for any.
    """
    return max(1, min(50, int(steps) // 4))


def embedded_weights_file() -> Path:
    """The demo model's weights shipped inside the package, as a run's ``init`` names them, found without importing
    torch (the fine-tuning widget's form, on napari's GUI thread): :func:`sam2_model.demo_weights.embedded_weights_path`
    (the model builder's file too), with its FileNotFoundError when it is missing."""
    return embedded_weights_path()


#: smooth, contrast_limits, invert, channel, channel_axis as a run without frame options has them
FRAME_DEFAULTS = (0.0, None, False, None, None)


@dataclass
class TrainSettings:
    """Everything a run needs; saved in its checkpoints."""

    out: str  # run folder
    model: str = "demo"  # preset name
    init: Optional[str] = None  # checkpoint to start from (None: random init, or the run's own last.pt)
    steps: int = 1000  # total optimiser steps of the run
    clip_len: int = 8  # frames per clip (1 = single-frame click segmentation, no memory)
    clips_per_step: int = 2
    max_objects: int = 3  # objects per clip
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    grad_clip: float = 1.0
    seed: int = 1  # data and sampling seed (>= 1; evaluation seeds are below 1_000_000)
    stack: Optional[str] = None  # user data: (T, H, W) TIFF (or a CTC sequence folder of t%03d.tif) ...
    labels: Optional[str] = None  # ... and its instance labels TIFF (or its CTC ground-truth folder); None: synthetic
    data: str = "nuclei"  # synthetic data: "nuclei" (sam2_model.synthetic), or a curriculum of the mix (MixedClips):
    # "mix", "leaps", "spread-cells" or "crowded-nuclei"
    data_workers: int = 0  # processes making "mix" clips ahead (0: in the training process; same clips either way)
    image_size: Optional[int] = None  # model input size (default: the preset's)
    alternate_image_size: Optional[int] = None  # every other step at this input size, same weights (resolutions.py)
    device: str = "auto"
    save_every: int = 50
    click_prob: float = 0.6
    box_prob: float = 0.3
    max_corrections: int = 2
    positional_init: bool = True  # start the decoder's cross-attentions position-aware (random init only)
    memory_positional_init: Optional[bool] = None  # memory attention starts local: None on random init only
    time_limit: Optional[float] = None  # seconds of wall time for this invocation, then stop cleanly (resumable)
    batch_clips: bool = True  # a step's clips go through the model as one batch per frame (False: one by one)
    contrast_jitter: bool = False  # half of the synthetic clips get random contrast limits (train/data.py)
    train_only: Optional[str] = None  # comma-separated parameter-name prefixes to train, the rest frozen (None: all)
    augment: bool = True  # user stacks: each clip turned by a multiple of 90 degrees and mirrored at random
    link_ids: bool = False  # user stacks painted frame by frame: ids linked from frame to frame by overlap first
    hold_out: Optional[str] = None  # user stacks: frames "first-last" not trained on, to check the run on (hold_out.py)
    # user stacks: how frames reach the model, as segmentation's options say (data.FrameOptions, FrameSource's words)
    smooth: float = 0.0  # a Gaussian of this many px blurs every frame before it is mapped (0: off)
    contrast_limits: Optional[List[float]] = None  # [low, high] shown as black and white (None: the percentiles)
    invert: bool = False  # the model sees 1 - x (dark objects on a bright background)
    channel: Optional[Union[int, str]] = None  # a channel index, or "mean" / "max" over the channels
    channel_axis: Optional[int] = None  # the axis holding the channels (None: the last, for (T, H, W, C))

    def __post_init__(self) -> None:
        at_least = {"steps": 0, "warmup_steps": 0, "save_every": 1, "clip_len": 1, "clips_per_step": 1,
                    "max_objects": 1}
        for name, low in at_least.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
        if self.hold_out is not None:
            from .hold_out import parse_frame_range  # (lazily: --help does without it)

            self.hold_out = str(parse_frame_range(self.hold_out))  # refused by name here when malformed
        if FRAME_DEFAULTS != (self.smooth, self.contrast_limits, self.invert, self.channel, self.channel_axis):
            from .frame_options import check_frame_options  # (lazily: --help does without it)

            self.smooth, self.contrast_limits, self.invert, self.channel, self.channel_axis = check_frame_options(
                self.smooth, self.contrast_limits, self.invert, self.channel, self.channel_axis)
        if not (float(self.lr) > 0):
            raise ValueError(f"lr must be a positive learning rate (e.g. 5e-4), got {self.lr!r}")
        if self.time_limit is not None and not (float(self.time_limit) > 0):
            raise ValueError(f"time_limit must be a positive number of seconds (or None: no limit), "
                             f"got {self.time_limit!r}")
        self.image_size = _input_size(self.image_size, "image_size", "None: the preset's own")
        self.alternate_image_size = _input_size(self.alternate_image_size, "alternate_image_size",
                                                "e.g. 512 beside a 256 px model; None: one size")
        # older runs and scripts spelled these flags 1/0 and 1/0/-1 (-1: on random init only)
        self.positional_init = bool(self.positional_init)
        if self.memory_positional_init is not None and not isinstance(self.memory_positional_init, bool):
            self.memory_positional_init = None if int(self.memory_positional_init) < 0 else bool(self.memory_positional_init)


def _input_size(value: Any, name: str, default: str) -> Optional[int]:
    """An input size setting as an int (512, "512" and 512.0 are one size), or None; a ValueError naming ``name``."""
    if value is None:
        return None
    try:
        size = int(str(value).strip()) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        size = None
    if isinstance(value, bool) or size is None or size != float(value) or size <= 0 or size % 32:
        raise ValueError(f"{name} must be a positive multiple of 32 pixels ({default}), got {value!r}")
    return size
