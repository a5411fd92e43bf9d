"""FrameSource: lazy, bounded-memory access to microscopy stacks as SAM 2 model inputs.

What the reference does (``sam2.utils.misc._load_img_as_tensor``, used by ``SAM2VideoPredictor``):
``PIL.Image.open(path).convert("RGB").resize((S, S))`` -- Pillow's default filter for RGB is BICUBIC
(antialiased when shrinking, with the result rounded to uint8 after each of its two separable
passes) -- then ``/ 255.0`` and ``(x - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)`` in float32.

Here: uint8 stacks (grey or RGB, default limits) go through exactly those steps, so their model
inputs are bit-identical to the reference's. Every other dtype maps linearly to [0, 1] with contrast
limits that are constant across the whole stack (default: the 0.5 and 99.8 percentiles of up to 16
evenly spaced frames; explicit ``contrast_limits`` win, for uint8 too), clipped, and is resized in
float32 with ``torch.nn.functional.interpolate(mode="bicubic", antialias=True)``, the same filter
without PIL's uint8 rounding (on uint8 data the two differ by at most about one grey level on smooth
images). Grey frames are repeated to RGB.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from .frames_io import SINGLE_IMAGE_HINT, open_stack, read_frame, sample_indices
from .prompt_validation import check_frame_size, dtype_problem

if TYPE_CHECKING:  # torch is imported by the functions that make tensors: the checks below (check_smooth, ...) and
    import torch   # FrameSource's reading and contrast limits load without it (the plugin's dock opens at once)

#: ImageNet's per-channel mean and standard deviation, as (3, 1, 1) float32 tensors IMAGENET_MEAN and IMAGENET_STD
#: (made on first use: see ``__getattr__``)
_IMAGENET = {"IMAGENET_MEAN": (0.485, 0.456, 0.406), "IMAGENET_STD": (0.229, 0.224, 0.225)}
DEFAULT_PERCENTILES = (0.5, 99.8)
UINT8_LIMITS = (0.0, 255.0)
COLOUR_NAMES = ("red", "green", "blue")
COLOUR_SAMPLE = 5  # frames looked at (first, last, between) to tell a one-colour RGB stack from true colour
_WIDE = {np.dtype(t) for t in (np.float64, np.int32, np.uint32, np.int64, np.uint64)}  # > float32's 24 bits


def _imagenet(name: str) -> "torch.Tensor":
    """IMAGENET_MEAN or IMAGENET_STD as a (3, 1, 1) float32 tensor: made (importing torch) on first use, then kept as
    the module's attribute."""
    tensor = globals().get(name)
    if tensor is None:
        import torch

        tensor = globals()[name] = torch.tensor(_IMAGENET[name]).view(3, 1, 1)
    return tensor


def __getattr__(name: str) -> Any:
    """IMAGENET_MEAN and IMAGENET_STD (:func:`_imagenet`): the module's only names made on first use (PEP 562)."""
    if name in _IMAGENET:
        return _imagenet(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class FrameIndexError(IndexError, ValueError):
    """A frame index outside 0..T-1 (both an IndexError and a ValueError)."""


def check_finite(frame: np.ndarray, what: str) -> None:
    """ValueError naming ``what`` if ``frame`` holds NaN or infinity."""
    if frame.dtype.kind == "f" and not np.isfinite(frame).all():
        raise ValueError(f"{what} contains NaN or infinite values; replace them (e.g. np.nan_to_num) first")


def check_contrast_limits(limits: Optional[Sequence[float]],
                          name: str = "contrast_limits") -> Optional[Tuple[float, float]]:
    """None, or ``limits`` as (low, high): two finite floats with low < high.

    ValueError naming ``name`` (an argument or a CLI option) and the accepted form otherwise.
    """
    if limits is None:
        return None
    try:
        low, high = (float(v) for v in limits)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (low, high): two numbers, got {limits!r}") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"{name} must be (low, high) finite numbers with low < high, got ({low:g}, {high:g})")
    return low, high


def check_smooth(sigma: Any, name: str = "smooth") -> float:
    """``sigma`` as a float >= 0 (a Gaussian's standard deviation in frame pixels; 0: no smoothing).

    ValueError naming ``name`` (an argument or a CLI option) and the accepted values otherwise.
    """
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number of pixels >= 0 (0: off), got {sigma!r}") from None
    if isinstance(sigma, bool) or not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a number of pixels >= 0 (0: off), got {sigma!r}")
    return value


def check_invert(invert: Any, name: str = "invert") -> bool:
    """``invert`` as a bool (True / False, or 0 / 1 as numpy or JSON may give them).

    ValueError naming ``name`` (an argument, a CLI option or a file's field) and the accepted values otherwise (a
    string such as "no" is refused rather than read as True).
    """
    if isinstance(invert, (bool, np.bool_)):
        return bool(invert)
    if isinstance(invert, (int, np.integer)) and int(invert) in (0, 1):
        return bool(invert)
    raise ValueError(f"{name} must be True or False (True: dark objects on a bright background), got {invert!r}")


def inverted(frame: np.ndarray, limits: Tuple[float, float]) -> np.ndarray:
    """``frame`` (H, W[, C]) reflected within ``limits`` = (low, high): low + high - x, so that
    ``to_unit(inverted(frame, limits), limits) == 1 - to_unit(frame, limits)`` (dark objects become bright ones).
    uint8 with (0, 255) stays uint8 (255 - x, exact); other data become float32 (float64 for wide integers)."""
    low, high = limits
    if frame.dtype == np.uint8 and (low, high) == UINT8_LIMITS:
        return np.subtract(np.uint8(255), frame)
    work = np.float64 if frame.dtype in _WIDE else np.float32
    return (work(low + high) - frame.astype(work)).astype(work, copy=False)


def smoothed(frame: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) or (H, W, C) ``frame`` blurred by a Gaussian of ``sigma`` px over its two spatial axes, as float32
    (the frame itself when ``sigma`` is 0)."""
    if not sigma:
        return frame
    from scipy import ndimage

    spread = (sigma, sigma) + (0.0,) * (frame.ndim - 2)
    return ndimage.gaussian_filter(frame.astype(np.float32, copy=False), spread)


def percentile_limits(
    frames: Iterable[np.ndarray], percentiles: Tuple[float, float] = DEFAULT_PERCENTILES,
    max_values: int = 1_000_000, count: Optional[int] = None,
) -> Tuple[float, float]:
    """Contrast limits from a sample of frames; each frame is subsampled on a regular pixel grid so
    that about ``max_values`` values are looked at in all. ``frames`` may be a generator of ``count``
    frames, so only one whole frame is held at a time."""
    if count is None:
        frames = list(frames)
        count = len(frames)
    budget = max(1, max_values // max(1, count))
    parts = []
    for frame in frames:
        frame = np.asarray(frame)
        step = max(1, int(np.ceil(np.sqrt(frame.size / budget))))
        parts.append(frame[::step, ::step].ravel())  # a copy in the frame's own dtype (uint16: 2 bytes)
    values = np.concatenate(parts)
    low, high = (float(v) for v in np.percentile(values, percentiles))
    if high <= low:  # mostly constant (e.g. sparse bright spots on zeros): fall back to min / max
        low, high = float(values.min()), float(values.max())
    if high <= low:  # a constant stack
        high = low + 1.0
    return low, high


def _channel_range(values: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(min, max) of an (h, w) or (h, w, C) array, per channel: shape () or (C,) (a channel at a time: numpy reduces
    an interleaved (H, W, 3) over its first two axes about 8x slower)."""
    if values.ndim == 2:
        return values.min(), values.max()
    channels = [values[..., c] for c in range(values.shape[-1])]
    return np.array([c.min() for c in channels]), np.array([c.max() for c in channels])


def blank_words(frame: np.ndarray, limits: Tuple[float, float]) -> Optional[str]:
    """Why the model sees nothing in ``frame`` (H, W) or (H, W, C) (as :meth:`FrameSource.filtered` gives it) mapped
    with ``limits`` (low, high), or None where it sees a picture: every pixel holds one value (per colour channel), or
    every pixel lies at or past one contrast limit, so that the clipped frame is one flat grey.

    Costs next to nothing on a frame that varies: about 32 x 32 evenly spread pixels are looked at first, and the whole
    frame is read (its min and max) only when those are all alike."""
    height, width = frame.shape[:2]
    low, high = limits
    for values in (frame[:: max(1, height // 32), :: max(1, width // 32)], frame):
        least, most = _channel_range(values)
        flat = (least == most) | (most <= low) | (least >= high)
        if not np.all(flat):
            return None
    if np.array_equal(least, most):
        value = least.tolist()
        shown = ", ".join(_number(v) for v in value) if isinstance(value, list) else _number(value)
        return f"every pixel is {f'({shown})' if isinstance(value, list) else shown}"
    if np.all(most <= low):
        return f"every pixel is at or below the low contrast limit {low:g}, so the model sees black"
    if np.all(least >= high):
        return f"every pixel is at or above the high contrast limit {high:g}, so the model sees white"
    return f"every colour channel is one value after the contrast limits ({low:g}, {high:g})"


def _number(value: Any) -> str:
    """A pixel value in words: integers as they are, floats short (``:g``)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def to_unit(frame: np.ndarray, limits: Tuple[float, float]) -> np.ndarray:
    """(H, W[, 3]) -> float32 in [0, 1] as (x - low) / (high - low); uint8 with (0, 255) is exactly x / 255."""
    low, high = limits
    work = np.float64 if frame.dtype in _WIDE else np.float32
    unit = frame.astype(work)  # always a copy
    if low != 0:
        unit -= work(low)
    unit /= work(high - low)
    np.clip(unit, 0.0, 1.0, out=unit)
    return unit.astype(np.float32, copy=False)


def varying_channels(frame: np.ndarray) -> set:
    """The channels of an (H, W, C) frame whose values are not all the same (a constant channel carries no picture)."""
    flat = np.asarray(frame).reshape(-1, frame.shape[-1])
    return {k for k in range(flat.shape[1]) if flat[:, k].min() != flat[:, k].max()}


def single_colour_channel(frame: np.ndarray) -> Optional[int]:
    """For an (H, W, 3) RGB frame whose picture is in one channel only (the other two constant, e.g. a green-only
    fluorescence export): that channel's index; else None (true colour, or nothing varies)."""
    varying = varying_channels(frame)
    return varying.pop() if len(varying) == 1 else None


def to_unit_rgb(frame: np.ndarray, limits: Optional[Tuple[float, float]]) -> np.ndarray:
    """(H, W) or (H, W, 3) frame -> (H, W, 3) float32 in [0, 1]; ``limits=None`` means x / 255 for uint8."""
    if limits is None:
        if frame.dtype != np.uint8:
            raise ValueError("contrast limits are needed for non-uint8 data")
        limits = UINT8_LIMITS
    unit = to_unit(frame, limits)
    return np.repeat(unit[..., None], 3, axis=-1) if unit.ndim == 2 else unit


def normalise(tensor: torch.Tensor) -> torch.Tensor:
    """(..., 1 or 3, S, S) in [0, 1] -> (..., 3, S, S) ImageNet-normalised float32."""
    return (tensor.expand(*tensor.shape[:-3], 3, -1, -1) - _imagenet("IMAGENET_MEAN")) / _imagenet("IMAGENET_STD")


def resize_unit(unit: np.ndarray, image_size: int, mode: str = "bicubic") -> torch.Tensor:
    """(H, W) or (H, W, 3) float in [0, 1] -> (1 or 3, S, S) float32, resized (antialiased):
    :func:`to_model_input` before :func:`normalise`.

    Bicubic overshoots at edges and is clamped to [0, 1] (as PIL's resize of 8-bit frames clips). Bilinear weights are
    never negative, so its only excess is rounding (1.0000002 over saturated pixels): it is kept, as torchvision's
    ``Resize`` in ``SAM2ImagePredictor`` keeps it, so that the image routes stay bit-identical to the reference."""
    import torch
    import torch.nn.functional as F

    array = np.ascontiguousarray(unit, dtype=np.float32)
    tensor = torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    if tensor.shape[-2:] != (image_size, image_size):
        tensor = F.interpolate(tensor[None], size=(image_size, image_size), mode=mode, align_corners=False,
                               antialias=True)[0]
        if mode != "bilinear":
            tensor.clamp_(0.0, 1.0)
    return tensor


def to_model_input(unit: np.ndarray, image_size: int, mode: str = "bicubic") -> torch.Tensor:
    """(H, W) or (H, W, 3) float in [0, 1] -> (3, S, S) float32, resized (antialiased) and normalised.

    Grey frames are resized once and repeated. ``mode="bilinear"`` matches ``SAM2ImagePredictor``'s
    torchvision ``Resize`` on float tensors; the video predictor's PIL resize is bicubic.
    """
    return normalise(resize_unit(unit, image_size, mode))


def uint8_to_model_input(frame: np.ndarray, image_size: int) -> torch.Tensor:
    """(H, W) or (H, W, 3) uint8 -> (3, S, S): the reference's exact steps (PIL resize, / 255, normalise)."""
    import torch
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(frame))
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.BICUBIC)
    resized = torch.from_numpy(np.array(image))  # uint8, (S, S) or (S, S, 3)
    tensor = resized[None] if resized.ndim == 2 else resized.permute(2, 0, 1)
    return normalise(tensor.to(torch.float32) / 255.0)


def _index(t: Any, num_frames: int) -> int:
    """``t`` as a frame index, or FrameIndexError naming the valid range."""
    valid = f"valid frames are 0..{num_frames - 1}"
    try:
        index = int(t)
        integral = not isinstance(t, (bool, np.bool_)) and index == t
    except (TypeError, ValueError, OverflowError):
        integral = False
    if not integral:
        raise FrameIndexError(f"frame index must be an integer, got {t!r}; {valid}")
    if not 0 <= index < num_frames:
        raise FrameIndexError(f"frame index {index} is out of range: {valid}")
    return index


class FrameSource:
    """Frames of a (T, H, W) or (T, H, W, C) stack, read, mapped and resized on demand.

    frames: numpy / dask / zarr / h5py array, tifffile memmap, or a path (multi-page .tif, .npy,
    zarr folder, folder of .tif/.png/.jpg frames). Nothing is read at construction except, for
    non-uint8 data without ``contrast_limits``, the (up to 16) frames of the contrast sample, and for RGB (three
    channels, none picked) up to 5 frames to tell one colour from true colour (one frame for true colour).
    channel: use this channel; composite: "mean" or "max" over channels; channel_axis: the axis of
    the channels if they are not last (1 for (T, C, H, W)). Three channels without either are RGB; when only one of
    them varies in up to 5 sampled frames (the others constant, e.g. a green-only fluorescence export), that channel
    is read as grey (``colour_channel``, ``colour_note`` and the repr say so): the model then sees what it sees for
    the same data given as grey, not a colour image; ``colour_as_given=True`` skips that check and reads three
    channels as colour (frames whose colour was decided already, e.g. the windows of a stack read as it is).
    prefetch: how many frames ahead (in the direction of travel) a background thread prepares;
    cache_frames: prepared model inputs kept (LRU), so memory does not grow with the stack.
    smooth: a Gaussian of this many frame pixels blurs every frame before it is mapped to the model's input
    (and before the default contrast limits are taken), for grainy, dim cells; 0 (default): frames as stored.
    invert: the model sees 1 - x of every frame's [0, 1] mapped values (after the contrast limits and smoothing; each
    colour channel of an RGB frame alike), for dark objects on a bright background (brightfield, phase contrast,
    stained histology): the demo model knows bright objects on a dark background. Only what the model sees changes:
    :meth:`raw` and :meth:`filtered` (what masks are measured on) keep the image's own values.
    blank_of: how :meth:`blank_note` judges frame ``t`` (``blank_of(t)``: words or None) instead of judging the frame
    read, for sources over crops whose frame is what matters (an object's window: an empty crop of a busy frame is
    not a blank frame).
    first_frame: the movie's number of frame 0 of ``frames``, for the words only: a source over part of a movie (its
    frames A..B given as 0..B-A, e.g. ``napari_sam2.track_cells(..., frames=(A, B))``) names frame ``t`` as the
    movie's ``t + first_frame`` in its errors and in the sessions' warnings (:meth:`movie_frame`); indices stay 0..T-1.
    Tensors returned by :meth:`model_input` are shared with the cache: do not modify them in place.
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
        smooth: float = 0.0,
        colour_as_given: bool = False,
        invert: bool = False,
        blank_of: Optional[Callable[[int], Optional[str]]] = None,
        first_frame: int = 0,
    ) -> None:
        self.smooth = check_smooth(smooth)
        self.first_frame = first_frame
        self._blank_of = blank_of
        self.invert = check_invert(invert)
        self._colour_as_given = bool(colour_as_given)
        self._owns_stack = isinstance(frames, str) or hasattr(frames, "__fspath__")
        self._given = (frames, image_size, channel, composite, channel_axis)  # for reopen()
        self._stack = open_stack(frames)
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()  # stacks (h5py, tifffile stores) need not be thread-safe
        self._cache: "OrderedDict[int, torch.Tensor]" = OrderedDict()
        self._pending: Dict[int, Future] = {}
        self._blank: Dict[int, str] = {}  # frames prepared for the model that show it nothing: why (blank_words)
        self._prefetch = max(0, int(prefetch))
        self._cache_frames = max(int(cache_frames), self._prefetch + 1, 1)
        self._executor: Optional[ThreadPoolExecutor] = None
        self._last: Optional[int] = None
        self._step = 1
        self._closed = False
        try:
            self._setup(image_size, channel, composite, channel_axis)
            self.contrast_limits = self._resolve_limits(contrast_limits)
        except BaseException:
            self._close_stack()
            raise

    # ----------------------------------------------------------------- layout and limits
    def _setup(self, image_size, channel, composite, channel_axis) -> None:
        shape = tuple(int(n) for n in self._stack.shape)
        if len(shape) not in (3, 4):
            raise ValueError(f"frames must be (T,H,W) or (T,H,W,C); got shape {shape}; {SINGLE_IMAGE_HINT}")
        if len(shape) == 3 and channel_axis is not None:
            raise ValueError(f"channel_axis={channel_axis} was given, but frames of shape {shape} have no channel axis")
        axes = getattr(self._stack, "axes", None)  # TIFF series axes, e.g. "TCYX"
        if channel_axis is None and isinstance(axes, str) and len(axes) == 4 and axes.find("C") in (1, 2):
            channel_axis = axes.find("C")
        axis = 3
        if len(shape) == 4 and channel_axis is not None:
            if not -4 <= int(channel_axis) < 4 or int(channel_axis) % 4 == 0:
                raise ValueError(
                    f"channel_axis must be 1, 2 or 3 (or -1) for (T, ..., C, ...) frames, got {channel_axis}")
            axis = int(channel_axis) % 4
        elif len(shape) == 4 and shape[3] > 16 and shape[1] <= 16:
            raise ValueError(
                f"frames of shape {shape}{f' (axes {axes})' if axes else ''}: the last axis looks like the image "
                "width, not channels; pass "
                "channel_axis=1 for (T,C,H,W) stacks (or channel_axis=-1 if the last axis really holds channels)"
            )
        self._caxis = axis if len(shape) == 4 else None  # the channel axis in the stack's own layout
        frame_shape = [n for i, n in enumerate(shape[1:], 1) if i != self._caxis]
        self._num_frames, self._height, self._width = shape[0], frame_shape[0], frame_shape[1]
        self._channels = shape[axis] if self._caxis else 1
        if 0 in (self._num_frames, self._height, self._width, self._channels):
            raise ValueError(f"frames: the stack is empty (shape {shape}); it needs at least one frame of at least 1x1")
        check_frame_size(self._height, self._width)  # thinner frames give empty masks, not an error
        self._dtype = np.dtype(self._stack.dtype)
        if dtype_problem(self._dtype) is not None:
            raise ValueError(f"frames: {dtype_problem(self._dtype)}")
        if int(image_size) < 1:
            raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
        self._image_size = int(image_size)
        c = self._channels
        if composite not in (None, "mean", "max"):
            raise ValueError(f"composite must be None, 'mean' or 'max', not {composite!r}")
        if channel is not None and composite is not None:
            raise ValueError(f"pass either channel={channel!r} or composite={composite!r}, not both")
        if channel is not None and (isinstance(channel, bool) or not isinstance(channel, (int, np.integer))):
            raise ValueError(f"channel must be an integer channel index, got {channel!r}")
        if channel is not None and not 0 <= channel < c:
            raise ValueError(f"channel={channel} is out of range: the stack has {c} channel(s) (0..{c - 1})")
        if c not in (1, 3) and channel is None and composite is None:
            hint = " (for RGBA data pass frames[..., :3])" if c == 4 else ""
            raise ValueError(
                f"frames have {c} channels: pick one with channel=<index> or combine them with "
                f"composite='mean' or 'max'{hint}"
            )
        self.channel, self.composite = (None if channel is None else int(channel)), composite
        self._pick = self.channel  # the channel raw() reads: the one asked for, or a one-colour stack's colour
        self.colour_channel: Optional[int] = None
        if c == 3 and channel is None and composite is None and not self._colour_as_given:
            self.colour_channel = self._single_colour_channel()
            self._pick = self.colour_channel

    def _single_colour_channel(self) -> Optional[int]:
        """The one channel of an RGB stack that varies within its sampled frames, when the other two are constant on
        each (e.g. zero: a green- or red-only fluorescence export), else None (true colour, or unreadable frames,
        which the frame reads report). Stops at the first frame with two varying channels (one read for colour)."""
        varying: set = set()
        try:
            for t in sample_indices(self._num_frames, COLOUR_SAMPLE):
                varying |= varying_channels(self.raw(t))
                if len(varying) > 1:
                    return None
        except ValueError:
            return None
        return varying.pop() if varying else None

    def _resolve_limits(self, limits: Optional[Sequence[float]]) -> Tuple[float, float]:
        checked = check_contrast_limits(limits)
        if checked is not None:
            return checked
        if self._dtype == np.uint8:
            return UINT8_LIMITS
        sample = sample_indices(self._num_frames)
        return percentile_limits((self.filtered(t) for t in sample), count=len(sample))

    # ----------------------------------------------------------------- properties
    num_frames = property(lambda self: self._num_frames, doc="T, the number of frames")
    height = property(lambda self: self._height, doc="frame height in pixels (original resolution)")
    width = property(lambda self: self._width, doc="frame width in pixels (original resolution)")
    dtype = property(lambda self: self._dtype, doc="the stack's dtype as stored")
    image_size = property(lambda self: self._image_size, doc="S: model inputs are (3, S, S)")
    num_channels = property(lambda self: self._channels, doc="channels of the stack (1 for (T, H, W))")

    @property
    def shape(self) -> Tuple[int, int, int]:
        return self._num_frames, self._height, self._width

    @property
    def first_frame(self) -> int:
        """The movie's number of frame 0 of these frames, for the words that name frames (0: the frames are the
        movie's own); set at construction, or by a caller that made the source and reads part of a movie."""
        return self._first_frame

    @first_frame.setter
    def first_frame(self, value: Any) -> None:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"first_frame must be the movie's number of frame 0 of these frames, an integer >= 0; "
                             f"got {value!r:.100}")
        self._first_frame = int(value)

    def movie_frame(self, t: int) -> int:
        """Frame ``t`` (0..T-1) as the words name it: the movie's number, ``t + first_frame``."""
        return int(t) + self._first_frame

    def __len__(self) -> int:
        return self._num_frames

    # ----------------------------------------------------------------- frames
    def check_index(self, t: Any) -> int:
        """``t`` as an int, or FrameIndexError (an IndexError and a ValueError) naming the valid range."""
        return _index(t, self._num_frames)

    def raw(self, t: int) -> np.ndarray:
        """Frame ``t`` as stored, channels picked or combined: (H, W) or (H, W, 3), the stack's dtype
        (float32/float64 for composite='mean')."""
        t = self.check_index(t)
        if self._closed:
            raise ValueError("this FrameSource is closed")
        key: Any = t
        if self._caxis is not None and self._pick is not None:
            key = (t,) + (slice(None),) * (self._caxis - 1) + (self._pick,)
        with self._read_lock:
            frame = read_frame(self._stack, key)
        if self._caxis is not None and self._pick is None:
            frame = np.moveaxis(frame, self._caxis - 1, -1)
            if self.composite == "mean":
                frame = frame.mean(axis=-1, dtype=np.float64 if frame.dtype in _WIDE else np.float32)
            elif self.composite == "max" or frame.shape[-1] == 1:
                frame = frame.max(axis=-1)
        if frame.shape[:2] != (self._height, self._width):
            raise ValueError(f"frames: frame {self.movie_frame(t)} has shape {frame.shape}, expected ({self._height}, "
                             f"{self._width}, ...)")
        check_finite(frame, f"frames: frame {self.movie_frame(t)}")
        return frame

    def filtered(self, t: int) -> np.ndarray:
        """Frame ``t`` as the model sees it before mapping: :meth:`raw`, smoothed when ``smooth`` > 0 (float32)."""
        return smoothed(self.raw(t), self.smooth)

    def mapped(self, t: int) -> np.ndarray:
        """Frame ``t`` at its own resolution as (H, W, 3) float32 in [0, 1] (the stack's constant limits; 1 - x of
        that when ``invert``)."""
        unit = to_unit_rgb(self.filtered(t), self.contrast_limits)
        return np.subtract(1.0, unit, out=unit) if self.invert else unit

    def _prepare(self, t: int) -> torch.Tensor:
        frame = self.filtered(t)
        tensor = self.input_of(frame)
        words = (blank_words(frame, self.contrast_limits) if self._blank_of is None  # the frame read: no second read
                 else self._blank_of(t))
        if words is not None:
            with self._lock:
                self._blank[t] = words
        return tensor

    def blank_note(self, t: int) -> Optional[str]:
        """Why frame ``t`` shows the model nothing (:func:`blank_words`, e.g. "every pixel is 0"), or None where it
        shows a picture or has not been prepared for the model yet (:meth:`model_input`, prefetching included): judged
        as the model sees it (channel, smoothing, contrast limits), at no extra read."""
        with self._lock:
            return self._blank.get(self.check_index(t))

    def input_of(self, frame: np.ndarray) -> torch.Tensor:
        """A frame as :meth:`filtered` returns it (h, w) or (h, w, 3), or a crop of one, as the model's input:
        (3, S, S) float32, mapped and normalised as :meth:`model_input` maps a frame, but not cached and with nothing
        prefetched (for a caller that already holds the frame, read once for several uses)."""
        if frame.dtype == np.uint8 and self.contrast_limits == UINT8_LIMITS:
            return uint8_to_model_input(inverted(frame, UINT8_LIMITS) if self.invert else frame, self._image_size)
        unit = to_unit(frame, self.contrast_limits)
        if self.invert:
            np.subtract(1.0, unit, out=unit)
        return to_model_input(unit, self._image_size)

    def model_input(self, t: int) -> torch.Tensor:
        """Frame ``t`` as the model's input: (3, S, S) float32, ImageNet-normalised (cached; read-only)."""
        t = self.check_index(t)
        with self._lock:
            tensor = self._cache.get(t)
            if tensor is not None:
                self._cache.move_to_end(t)
            pending = self._pending.get(t)
        if tensor is None and pending is not None:
            try:
                tensor = pending.result()  # None if the background read failed: read again to raise here
            except CancelledError:
                tensor = None
        if tensor is None:
            tensor = self._prepare(t)
            self._store(t, tensor)
        self._travel(t)
        return tensor

    # ----------------------------------------------------------------- cache and prefetch
    def _store(self, t: int, tensor: torch.Tensor) -> None:
        with self._lock:
            if self._closed:
                return
            self._cache[t] = tensor
            self._cache.move_to_end(t)
            while len(self._cache) > self._cache_frames:
                self._cache.popitem(last=False)

    def _travel(self, t: int) -> None:
        """Note the direction of travel and prefetch the next frames along it."""
        with self._lock:
            if self._last is not None and t != self._last:
                self._step = 1 if t > self._last else -1
            self._last = t
            wanted = [t + self._step * k for k in range(1, self._prefetch + 1)]
            self._submit([k for k in wanted if 0 <= k < self._num_frames], cancel_others=True)

    def prefetch(self, indices: Iterable[int]) -> None:
        """Prepare these frames in the background (at most ``cache_frames`` of them; a hint, not a promise)."""
        indices = [self.check_index(t) for t in indices][: self._cache_frames]
        with self._lock:
            self._submit(indices, cancel_others=False)

    def _submit(self, indices: Sequence[int], cancel_others: bool) -> None:
        # called with self._lock held
        if self._closed or not indices or (self._prefetch == 0 and cancel_others):
            return
        if cancel_others:
            for k in [k for k in self._pending if k not in indices]:
                if self._pending[k].cancel():
                    del self._pending[k]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sam2-frame-prefetch")
        for k in indices:
            if k not in self._cache and k not in self._pending:
                self._pending[k] = self._executor.submit(self._background, k)

    def _background(self, t: int) -> Optional[torch.Tensor]:
        try:
            tensor: Optional[torch.Tensor] = self._prepare(t)
        except Exception:  # reported by the synchronous read of the same frame
            tensor = None
        with self._lock:  # cached before it leaves _pending, so a reader always finds it in one of them
            if tensor is not None:
                self._store(t, tensor)
            self._pending.pop(t, None)
        return tensor

    @property
    def cached_frames(self) -> Tuple[int, ...]:
        """Frames whose model inputs are cached now (least recently used first)."""
        with self._lock:
            return tuple(self._cache)

    # ----------------------------------------------------------------- lifetime
    def reopen(self, prefetch: int = 0) -> "FrameSource":
        """A new, open source over the same frames with the same settings (channel, composite, contrast
        limits, input size, smoothing, inversion, first_frame), for reading them again after this one was closed (a
        file is opened again)."""
        frames, image_size, channel, composite, channel_axis = self._given
        return FrameSource(frames, image_size=image_size, contrast_limits=self.contrast_limits, channel=channel,
                           composite=composite, channel_axis=channel_axis, prefetch=prefetch, smooth=self.smooth,
                           colour_as_given=self._colour_as_given, invert=self.invert, first_frame=self.first_frame)

    def close(self) -> None:
        """Stop the prefetch thread, drop cached inputs and close files this source opened."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            self._pending.clear()
            self._cache.clear()
        self._close_stack()

    def _close_stack(self) -> None:
        if getattr(self, "_owns_stack", False) and hasattr(self._stack, "close"):
            self._stack.close()

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"FrameSource({self._num_frames} frames of {self._height}x{self._width}, {self._channels} channel(s), "
                f"{self._dtype}, image_size={self._image_size}, contrast_limits={self.contrast_limits}"
                + (f", smooth={self.smooth:g}" if self.smooth else "")
                + (", invert=True" if self.invert else "")
                + (f", {self.colour_note}" if self.colour_note else "") + ")")

    @property
    def colour_note(self) -> str:
        """"" unless the RGB frames hold one colour only and are read as grey: then one line saying so (for users)."""
        if self.colour_channel is None:
            return ""
        name = COLOUR_NAMES[self.colour_channel]
        return (f"RGB frames with {name} only (the other channels constant): {name} channel "
                f"{self.colour_channel} read as grey")
