"""FrameSource: lazy, bounded-memory access to microscopy stacks as SAM 2 model inputs.

Intensity mapping (DESIGN.md): uint8 maps as x / 255 exactly as the reference does; every other dtype
maps linearly with contrast limits that are constant across the whole stack (default: the 0.5 and
99.8 percentiles of up to 16 evenly spaced frames; explicit limits win), clipped to [0, 1]. Grey
frames are repeated to RGB. Resizing to the model's square input is bicubic with antialiasing, the
filter the reference's PIL resize uses (for uint8 the two differ only by PIL's rounding to uint8).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .frames_io import open_stack, read_frame, sample_indices

IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
DEFAULT_PERCENTILES = (0.5, 99.8)


def check_finite(frame: np.ndarray, what: str) -> None:
    """ValueError naming ``what`` if ``frame`` holds NaN or infinity."""
    if frame.dtype.kind == "f" and not np.isfinite(frame).all():
        raise ValueError(f"{what} contains NaN or infinite values; replace them (e.g. np.nan_to_num) first")


def percentile_limits(frames: list, percentiles: Tuple[float, float] = DEFAULT_PERCENTILES) -> Tuple[float, float]:
    """Contrast limits from a sample of frames (at most ~1M values are looked at)."""
    values = np.concatenate([np.asarray(f, dtype=np.float64).ravel() for f in frames])
    step = max(1, values.size // 1_000_000)
    low, high = np.percentile(values[::step], percentiles)
    if high <= low:  # a constant stack
        high = low + 1.0
    return float(low), float(high)


def to_unit_rgb(frame: np.ndarray, limits: Optional[Tuple[float, float]]) -> np.ndarray:
    """(H, W) or (H, W, 3) frame -> (H, W, 3) float32 in [0, 1].

    uint8 maps as x / 255; everything else uses ``limits`` = (low, high).
    """
    if frame.dtype == np.uint8:
        unit = frame.astype(np.float32) / 255.0
    else:
        if limits is None:
            raise ValueError("contrast limits are needed for non-uint8 data")
        low, high = limits
        unit = np.clip((frame.astype(np.float32) - np.float32(low)) / np.float32(high - low), 0.0, 1.0)
    if unit.ndim == 2:
        unit = np.repeat(unit[..., None], 3, axis=-1)
    return unit


def to_model_input(unit_rgb: np.ndarray, image_size: int) -> torch.Tensor:
    """(H, W, 3) float in [0, 1] -> (3, S, S) float32, resized and ImageNet-normalised."""
    tensor = torch.from_numpy(np.ascontiguousarray(unit_rgb, dtype=np.float32)).permute(2, 0, 1)
    if tensor.shape[-2:] != (image_size, image_size):
        tensor = F.interpolate(
            tensor[None], size=(image_size, image_size), mode="bicubic", align_corners=False, antialias=True
        )[0].clamp_(0.0, 1.0)
    return (tensor - IMAGENET_MEAN) / IMAGENET_STD


class FrameSource:
    """Frames of a (T, H, W) or (T, H, W, C) stack, read, mapped and resized on demand.

    frames: numpy / dask / zarr array, tifffile memmap, a .tif path or a folder of frames.
    channel: pick this channel of a multichannel stack; composite: "mean" or "max" over channels;
    channel_axis: where the channels are, if not last (e.g. 1 for (T, C, H, W)).
    A background thread prepares the next ``prefetch`` frames in the direction of travel; at most
    ``cache_frames`` prepared inputs are kept, so memory does not grow with the stack.
    """

    def __init__(
        self,
        frames: Any,
        image_size: int = 1024,
        contrast_limits: Optional[Tuple[float, float]] = None,
        channel: Optional[int] = None,
        composite: Optional[str] = None,
        channel_axis: Optional[int] = None,
        prefetch: int = 2,
        cache_frames: int = 4,
    ) -> None:
        self._stack = open_stack(frames)
        shape = tuple(int(n) for n in self._stack.shape)
        if len(shape) not in (3, 4):
            raise ValueError(
                f"frames must be (T,H,W) or (T,H,W,C); got an array of shape {shape}. For a single image use "
                "ImagePredictor or add a time axis (frames[None])"
            )
        if channel_axis is not None and len(shape) == 4 and channel_axis % 4 != 3:
            self._stack = _MovedChannels(self._stack, channel_axis % 4)
            shape = tuple(int(n) for n in self._stack.shape)
        if shape[0] == 0 or 0 in shape[1:3]:
            raise ValueError(f"frames: the stack is empty (shape {shape}); it needs at least one frame")
        self.num_frames, self.height, self.width = shape[:3]
        self.num_channels = shape[3] if len(shape) == 4 else 1
        self.dtype = np.dtype(self._stack.dtype)
        if self.dtype.kind not in "uif" or self.dtype == np.bool_:
            raise ValueError(f"frames: unsupported dtype {self.dtype}; use integer or floating-point data")
        self.image_size = int(image_size)
        self.channel, self.composite = channel, composite
        self._check_channels()
        self.contrast_limits = self._resolve_limits(contrast_limits)
        self._cache: "OrderedDict[int, torch.Tensor]" = OrderedDict()
        self._pending: Dict[int, Future] = {}
        self._lock = threading.Lock()
        self._cache_frames = max(1, cache_frames)
        self._prefetch = max(0, prefetch)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frame-prefetch") if prefetch else None
        self._last: Optional[int] = None

    # ----------------------------------------------------------------- channels and limits
    def _check_channels(self) -> None:
        c = self.num_channels
        if self.channel is not None and not 0 <= self.channel < c:
            raise ValueError(f"channel={self.channel} is out of range: the stack has {c} channel(s)")
        if self.composite not in (None, "mean", "max"):
            raise ValueError(f"composite must be None, 'mean' or 'max', not {self.composite!r}")
        if c not in (1, 3) and self.channel is None and self.composite is None:
            raise ValueError(
                f"the stack has {c} channels: pick one with channel=<index> or combine them with composite='mean'"
            )

    def _combine_channels(self, frame: np.ndarray) -> np.ndarray:
        if frame.ndim == 2:
            return frame
        if self.channel is not None:
            return frame[..., self.channel]
        if self.composite == "mean":
            return frame.astype(np.float32).mean(axis=-1)
        if self.composite == "max":
            return frame.max(axis=-1)
        return frame[..., 0] if frame.shape[-1] == 1 else frame

    def _resolve_limits(self, limits: Optional[Tuple[float, float]]) -> Optional[Tuple[float, float]]:
        if limits is not None:
            low, high = (float(v) for v in limits)
            if not np.isfinite([low, high]).all() or high <= low:
                raise ValueError(f"contrast_limits must be (low, high) with low < high, got {limits}")
            return low, high
        sample = [self.raw(t) for t in sample_indices(self.num_frames)]
        if self.dtype == np.uint8 and self.composite != "mean":
            return None  # uint8 maps as x / 255
        return percentile_limits(sample)

    # ----------------------------------------------------------------- frames
    def check_index(self, t: int) -> int:
        if not isinstance(t, (int, np.integer)) or not 0 <= t < self.num_frames:
            raise ValueError(f"frame index {t!r} is out of range: valid frames are 0..{self.num_frames - 1}")
        return int(t)

    def raw(self, t: int) -> np.ndarray:
        """Frame ``t`` as stored, channels combined: (H, W) or (H, W, 3)."""
        frame = self._combine_channels(read_frame(self._stack, self.check_index(t)))
        check_finite(frame, f"frame {t}")
        return frame

    def mapped(self, t: int) -> np.ndarray:
        """Frame ``t`` at its own resolution as (H, W, 3) float32 in [0, 1]."""
        return to_unit_rgb(self.raw(t), self.contrast_limits)

    def _prepare(self, t: int) -> torch.Tensor:
        return to_model_input(self.mapped(t), self.image_size)

    def model_input(self, t: int) -> torch.Tensor:
        """Frame ``t`` as the model's input: (3, S, S) float32, ImageNet-normalised."""
        t = self.check_index(t)
        with self._lock:
            cached = self._cache.get(t)
            pending = self._pending.pop(t, None)
        if cached is None:
            cached = pending.result() if pending is not None else self._prepare(t)
            self._remember(t, cached)
        self._schedule(t)
        return cached

    def _remember(self, t: int, tensor: torch.Tensor) -> None:
        with self._lock:
            self._cache[t] = tensor
            self._cache.move_to_end(t)
            while len(self._cache) > self._cache_frames:
                self._cache.popitem(last=False)

    def _schedule(self, t: int) -> None:
        """Prepare the next frames in the direction of travel in the background."""
        step = -1 if self._last is not None and t < self._last else 1
        self._last = t
        if self._executor is None:
            return
        with self._lock:
            for stale in [k for k in self._pending if abs(k - t) > self._prefetch]:
                self._pending.pop(stale).cancel()
        for k in range(1, self._prefetch + 1):
            nxt = t + step * k
            if not 0 <= nxt < self.num_frames:
                break
            with self._lock:
                if nxt in self._cache or nxt in self._pending:
                    continue
                self._pending[nxt] = self._executor.submit(self._prefetch_one, nxt)

    def _prefetch_one(self, t: int) -> torch.Tensor:
        return self._prepare(t)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._pending.clear()
        self._cache.clear()

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.num_frames


class _MovedChannels:
    """A (T, ..., C at ``axis`` ...) stack seen as (T, H, W, C), moving the axis per frame read."""

    def __init__(self, stack: Any, axis: int) -> None:
        if axis == 0:
            raise ValueError("channel_axis cannot be the frame axis 0")
        self.stack, self.axis = stack, axis
        shape = list(stack.shape)
        channels = shape.pop(axis)
        self.shape = tuple(shape) + (channels,)
        self.dtype = stack.dtype

    def __getitem__(self, t: int) -> np.ndarray:
        return np.moveaxis(read_frame(self.stack, t), self.axis - 1, -1)
