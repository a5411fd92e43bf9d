"""How a user's frames reach the model in training (:class:`FrameOptions`: smoothing, contrast limits, inversion,
channel) and the checks of a stack before a run (:func:`check_finite_frames`), without torch: the fine-tuning widget
and ``TrainSettings`` check them on napari's GUI thread and in ``sam2-train``'s parsing (:mod:`.data` re-exports
them; the clips that use them import torch there)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..frames import FrameSource, check_contrast_limits, check_finite, check_invert, check_smooth


def check_finite_frames(stack: Any, numbers: Optional[Sequence[int]] = None) -> None:
    """Refuse a stack to fine-tune on that holds NaN or infinity, before any run folder or file is made: a
    ValueError naming the first such frame in the words every frame read uses ("frames: frame 3 contains NaN or
    infinite values; replace them (e.g. np.nan_to_num) first"). ``stack``: (T, H, W) frames or one (H, W) image
    (an array or array-like); ``numbers``: the frames' own numbers (T,) to name, e.g. a Cell Tracking Challenge
    sequence's ``t%03d`` numbers (None: 0, 1, 2, ...). Integer frames cannot hold either. Looked at frame by frame (one frame's
    mask in memory at a time). Without this check a NaN pixel trains every step to NaN weights."""
    frames = np.asarray(stack)
    if frames.dtype.kind != "f":
        return
    for index, frame in enumerate(frames[None] if frames.ndim == 2 else frames):
        check_finite(frame, f"frames: frame {index if numbers is None else int(numbers[index])}")


@dataclass(frozen=True)
class FrameOptions:
    """How a user's frames reach the model, the options segmentation takes (``napari-sam2 track --smooth
    --contrast-limits --invert --channel --channel-axis``, the segmentation widget's *Smooth frames* and *Invert*):
    ``smooth`` a Gaussian of that many px before mapping (0: off), ``contrast_limits`` (low, high) shown as black and
    white (None: the stack's 0.5 and 99.8 percentiles after smoothing, 0-255 for uint8), ``invert`` the model sees
    1 - x, ``channel`` an index or "mean" / "max" over the channels, ``channel_axis`` the axis holding them (None:
    the last one). Training maps its clips through :class:`sam2_model.frames.FrameSource` with these, so the model
    trains on what it will see. The defaults (:attr:`given` False) leave the frames as they were always mapped."""

    smooth: float = 0.0
    contrast_limits: Optional[Tuple[float, float]] = None
    invert: bool = False
    channel: "int | str | None" = None
    channel_axis: Optional[int] = None

    @classmethod
    def of(cls, settings: Any) -> "FrameOptions":
        """The frame options of a TrainSettings (or its dict, as a record holds it; older runs lack them)."""
        get = settings.get if isinstance(settings, Mapping) else lambda name, default=None: getattr(settings, name,
                                                                                                     default)
        limits = get("contrast_limits")
        return cls(float(get("smooth") or 0.0), None if limits is None else (float(limits[0]), float(limits[1])),
                   bool(get("invert") or False), get("channel"), get("channel_axis"))

    @property
    def given(self) -> bool:
        """Whether any option differs from its default (else training maps frames as it always did)."""
        return self != FrameOptions()

    def source(self, frames: Any, image_size: int,
               limits: Optional[Tuple[float, float]] = None) -> FrameSource:
        """A :class:`FrameSource` over (T, H, W[, C]) ``frames`` with these options (``limits`` win over
        ``contrast_limits``: the training stack's, for its held-out frames)."""
        channel, composite = self.channel, None
        if channel in ("mean", "max"):
            channel, composite = None, channel
        return FrameSource(frames, image_size=image_size, contrast_limits=limits or self.contrast_limits,
                           channel=channel, composite=composite, channel_axis=self.channel_axis, prefetch=0,
                           smooth=self.smooth, invert=self.invert)

    def words(self) -> str:
        """The options in a user's words ("smoothed by 8 px, inverted"); "" for the defaults."""
        parts = []
        if self.channel is not None:
            axis = "" if self.channel_axis is None else f" of axis {self.channel_axis}"
            parts.append(f"channel {self.channel}{axis}" if isinstance(self.channel, int) else
                         f"the {self.channel} of the channels{axis}")
        if self.smooth:
            parts.append(f"smoothed by {self.smooth:g} px")
        if self.contrast_limits is not None:
            parts.append(f"contrast limits {self.contrast_limits[0]:g} {self.contrast_limits[1]:g}")
        if self.invert:
            parts.append("inverted")
        return ", ".join(parts)


def check_frame_options(smooth: Any = 0.0, contrast_limits: Any = None, invert: Any = False, channel: Any = None,
                        channel_axis: Any = None) -> Tuple[float, Optional[List[float]], bool, "int | str | None",
                                                           Optional[int]]:
    """The frame options of a run, checked as ``napari-sam2 track`` checks them (:func:`sam2_model.frames.check_smooth`,
    :func:`~sam2_model.frames.check_contrast_limits`, :func:`~sam2_model.frames.check_invert`): (smooth, [low, high]
    or None, invert, channel: an index >= 0 or "mean" / "max" or None, channel_axis or None). A ValueError names the
    option and what it accepts."""
    smooth = check_smooth(smooth, "smooth")
    limits = check_contrast_limits(contrast_limits, "contrast_limits")
    invert = check_invert(invert, "invert")
    if channel is not None:
        word = str(channel).strip().lower()
        if word in ("mean", "max"):
            channel = word
        elif word.isdigit() and not isinstance(channel, (bool, float)):
            channel = int(word)
        else:
            raise ValueError(f"channel must be a channel index (0, 1, ...) or mean / max, got {channel!r}")
    if channel_axis is not None:
        if isinstance(channel_axis, bool) or not (isinstance(channel_axis, (int, np.integer))
                                                  or str(channel_axis).strip().lstrip("-").isdigit()):
            raise ValueError(f"channel_axis must be a whole number (the axis holding the channels, e.g. 1 for "
                             f"(T, C, Y, X)), got {channel_axis!r}")
        channel_axis = int(channel_axis)
    return smooth, None if limits is None else [limits[0], limits[1]], invert, channel, channel_axis
