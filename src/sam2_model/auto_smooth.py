"""Smoothing chosen from the frame itself: on for grainy, dim frames, off for clean ones (``smooth="auto"``).

A Gaussian blur of the frames helps the demo model on grainy, dim cells and hurts it on clean nuclei
(docs/demo_model.md, *Limits*): 8 px raises the real MSC time-lapse's tracked IoU from 0.241 to 0.289 and lowers
one click on clean synthetic nuclei. So it is turned on only where the frame's grain is large against its objects'
contrast (:func:`grain`):

* grain: the pixel noise, 1.4826 x the median absolute deviation of the frame minus its 3 x 3 mean (a robust
  standard deviation of what a 3 px neighbourhood does not explain: shot and read noise, speckle);
* contrast: the difference of the medians of the two Otsu classes after a 2 px Gaussian (objects against
  background, whichever is brighter), the intensities first clipped to :data:`CLIP_PERCENTILES` (a hot pixel is
  not a class of its own);
* both read where the objects are: in squares of :data:`WINDOW_PER_WIDTH` x the clicked objects' width around the
  clicks, pooled (:func:`measured_windows`; at most :data:`GRAIN_PIXELS` pixels), else on the frame's central
  :data:`GRAIN_CROP` square (a grey mean over channels), in ~0.05 s.

Measured (docs/input_size.md, *Smoothing chosen from the grain*): the MSC frames 0-47 read 0.14-0.41 at their clicks
(frame 0: 0.20), the real widefield nuclei of ``bench/real_nuclei.py`` 0.11, the held-out synthetic nuclei
0.003-0.005. The threshold and the factor were chosen on MSC itself (its figure is not a zero-shot one).
:data:`GRAIN_ON` (0.15)
lies between the real nuclei and MSC; :func:`suggest_smooth` blurs by :data:`SIGMA_PER_WIDTH` of the objects' width
(at most :data:`AUTO_SIGMA`, 8 px) above it, else not at all. On MSC in 312 px object windows (the default route)
4 px gave the best tracked IoU of 2-8 px (0.277 -> 0.342; 8 px 0.334), on whole frames 8 px (0.241 -> 0.289; 4 px
0.254); the clean guards read under :data:`GRAIN_ON`, so their figures do not move.

The calibration is the shipped demo weights' (``build_model("demo")``, its embedded file): for any other weights
(Meta's official checkpoints, random weights, fine-tuned runs, which trained on unsmoothed frames) "auto" is 0
(:func:`demo_weights_as_shipped`, the rule ``segment()``, the command line, batch runs and the widget share).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from .frames import check_smooth
from .input_size import estimate_object_diameter, estimate_prompted_diameter

__all__ = ["GRAIN_ON", "AUTO_SIGMA", "SIGMA_PER_WIDTH", "DEFAULT_SMOOTH", "GRAIN_CROP", "WINDOW_PER_WIDTH",
           "MIN_WINDOW", "DEFAULT_WINDOW", "GRAIN_PIXELS", "CLIP_PERCENTILES", "SmoothArg", "SmoothChoice", "grain",
           "measured_windows", "choose_smooth", "suggest_smooth", "check_smooth_option", "demo_weights_as_shipped",
           "smooth_choice", "resolve_smooth"]

GRAIN_ON = 0.15  # grain / contrast from which smoothing is on (MSC 0.14-0.41, real nuclei 0.11, synthetic < 0.01)
AUTO_SIGMA = 8.0  # px: the most blur given (the most measured on MSC: 0.241 -> 0.289 tracked IoU, whole frames)
SIGMA_PER_WIDTH = 0.14  # blur per px of object width: 4 px for MSC's clicked cells (28.6 px wide), ~0.5-1 px for rods
DEFAULT_SMOOTH = "auto"  # what segment(), the command line and the widget should pass when the user says nothing
GRAIN_CROP = 512  # px: the central square measured without clicks (a larger frame measures the same, at more cost)
WINDOW_PER_WIDTH = 4.0  # the square measured around each click: 4 x the clicked objects' width ...
MIN_WINDOW = 64  # px: ... at least this (objects and background in each) ...
DEFAULT_WINDOW = 128  # px: ... or this where their width could not be read
GRAIN_PIXELS = GRAIN_CROP * GRAIN_CROP  # the most pixels measured in all (~0.05 s): windows spread over the clicks
CLIP_PERCENTILES = (0.5, 99.5)  # % : intensities clipped to these before the Otsu split (a hot pixel is no class)

#: what ``smooth=`` / ``--smooth`` accept: "auto", "off" (or None, 0) or a number of pixels >= 0
SmoothArg = Union[str, float, int, None]
_ACCEPTED = '"auto", "off" or a number of pixels >= 0'


@dataclass(frozen=True)
class SmoothChoice:
    """What a smoothing option came to: ``sigma`` the blur in px (0.0: off), ``grain`` the frame's grain where
    "auto" measured it (:func:`grain`; NaN where nothing was measured), ``auto`` whether it was "auto"'s choice and
    ``why`` a few words on what "auto" decided (empty for a number given)."""

    sigma: float
    grain: float = float("nan")
    auto: bool = False
    why: str = ""

    def describe(self) -> str:
        """One line saying what "auto" chose, e.g. "smoothing 4 px: grainy frames (grain 0.20)"; "" where it chose
        no blur or the blur was given (nothing to say: the run is the one asked for)."""
        if not self.auto or self.sigma <= 0:
            return ""
        return f"smoothing {self.sigma:g} px: {self.why}"


def _checked_array(frame: Any) -> np.ndarray:
    """``frame`` as an array, (H, W) or (H, W, C) with H, W >= 8 of real numbers; ValueError naming what is wrong."""
    array = np.asarray(frame)
    if array.ndim not in (2, 3) or array.shape[0] < 8 or array.shape[1] < 8:
        raise ValueError(f"frame must be (H, W) or (H, W, C) with H, W >= 8, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or np.iscomplexobj(array):
        raise ValueError(f"frame must hold real numbers (integers or floats), got dtype {array.dtype}")
    return array


def _grey(piece: np.ndarray) -> np.ndarray:
    """A (h, w) or (h, w, C) piece of a frame -> float64 (h, w) grey (channel mean); ValueError if not finite."""
    grey = np.asarray(piece, np.float64)
    if grey.ndim == 3:
        grey = grey.mean(axis=2)
    if not np.isfinite(grey).all():
        raise ValueError("frame holds NaN or infinite values; give finite intensities")
    return grey


def measured_windows(shape: Tuple[int, ...], points: Optional[Any] = None,
                     width: float = float("nan")) -> List[Tuple[slice, slice]]:
    """The (rows, cols) windows of a frame of ``shape`` (H, W[, C]) that :func:`grain` reads: squares of
    :data:`WINDOW_PER_WIDTH` x ``width`` (at least :data:`MIN_WINDOW` px; :data:`DEFAULT_WINDOW` where the width is
    unknown) centred on ``points`` ((N, 2) (x, y) frame px; those outside the frame skipped), moved inside the frame,
    as many as fit in :data:`GRAIN_PIXELS` pixels (spread over the list); without points (or none inside) the
    central :data:`GRAIN_CROP` square."""
    height, frame_width = int(shape[0]), int(shape[1])
    xy = np.zeros((0, 2)) if points is None else np.asarray(points, np.float64).reshape(-1, 2)
    inside = xy[(xy[:, 0] >= 0) & (xy[:, 0] < frame_width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)] \
        if np.isfinite(xy).all() else np.zeros((0, 2))
    if not len(inside):
        top, left = max(0, (height - GRAIN_CROP) // 2), max(0, (frame_width - GRAIN_CROP) // 2)
        return [(slice(top, top + GRAIN_CROP), slice(left, left + GRAIN_CROP))]
    side = WINDOW_PER_WIDTH * width if np.isfinite(width) and width > 0 else DEFAULT_WINDOW
    side = int(min(GRAIN_CROP, max(MIN_WINDOW, round(side))))
    keep = max(1, GRAIN_PIXELS // (side * side))
    if len(inside) > keep:
        inside = inside[np.linspace(0, len(inside) - 1, keep).round().astype(int)]
    windows = []
    for x, y in inside:
        top = int(min(max(0, round(y) - side // 2), max(0, height - side)))
        left = int(min(max(0, round(x) - side // 2), max(0, frame_width - side)))
        windows.append((slice(top, top + side), slice(left, left + side)))
    return windows


def grain(frame: Any, points: Optional[Any] = None, width: float = float("nan")) -> float:
    """The grain of ``frame`` ((H, W) or (H, W, C), any real dtype) against its objects' contrast: pixel noise /
    object contrast (module docstring), read in :func:`measured_windows` (around the clicked ``points`` of objects
    ``width`` px wide where given, else the central square), pooled; 0.0 for a flat frame (nothing to smooth for)."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu  # imported here: `import sam2_model` stays light

    array = _checked_array(frame)
    pieces = [_grey(array[rows, cols]) for rows, cols in measured_windows(array.shape, points, width)]
    noise = 1.4826 * float(np.median(np.concatenate(
        [np.abs(piece - ndimage.uniform_filter(piece, 3)).ravel() for piece in pieces])))
    low, high = np.percentile(np.concatenate([piece.ravel() for piece in pieces]), CLIP_PERCENTILES)
    smooth = np.concatenate([ndimage.gaussian_filter(np.clip(piece, low, high), 2.0).ravel() for piece in pieces])
    if float(smooth.max() - smooth.min()) <= 1e-9 * max(1.0, float(np.abs(smooth).max())):
        return 0.0
    upper = smooth > threshold_otsu(smooth)
    if upper.all() or not upper.any():
        return 0.0
    contrast = abs(float(np.median(smooth[upper])) - float(np.median(smooth[~upper])))
    return noise / contrast if contrast > 0 else 0.0


def choose_smooth(frame: Any, points: Optional[Any] = None) -> SmoothChoice:
    """The blur for frames like ``frame`` with the grain it was read from (:func:`suggest_smooth` says how)."""
    width = float("nan")
    if points is not None and len(np.asarray(points).reshape(-1, 2)):
        width = estimate_prompted_diameter(frame, points)
    measured = grain(frame, points, width)
    if measured < GRAIN_ON:
        return SmoothChoice(0.0, measured, True, f"clean frames (grain {measured:.2f} < {GRAIN_ON:g})")
    if not np.isfinite(width):
        width = estimate_object_diameter(frame)
    if not np.isfinite(width):
        return SmoothChoice(0.0, measured, True, f"grainy frames (grain {measured:.2f}) but no objects to measure")
    sigma = float(min(AUTO_SIGMA, round(2.0 * SIGMA_PER_WIDTH * width) / 2.0))
    return SmoothChoice(sigma, measured, True, f"grainy frames (grain {measured:.2f})")


def suggest_smooth(frame: Any, points: Optional[Any] = None) -> float:
    """The blur (px) for frames like ``frame``: 0.0 where :func:`grain` is under :data:`GRAIN_ON` (clean frames:
    smoothing would cost their objects' edges), else :data:`SIGMA_PER_WIDTH` x the objects' width, at most
    :data:`AUTO_SIGMA`, in steps of 0.5 px (a blur as wide as the cells would erase them: rods 4 px wide get ~1 px).
    The width: of the clicked objects where ``points`` ((N, 2) (x, y) frame px, one click per object) are given and
    at least half of them can be read (:func:`~sam2_model.input_size.estimate_prompted_diameter`), else of the
    frame's pieces (:func:`~sam2_model.input_size.estimate_object_diameter`, which errs small: less blur)."""
    return choose_smooth(frame, points).sigma


def check_smooth_option(value: SmoothArg, name: str = "smooth") -> Union[str, float]:
    """``value`` checked before any work: "auto" (any case, spaces around), or the px it stands for ("off", None:
    0.0; a number >= 0: itself). ValueError naming ``name``, the value and what is accepted otherwise."""
    given = value
    if isinstance(value, str):
        word = value.strip().lower()
        if word == "auto":
            return "auto"
        if word == "off":
            return 0.0
        try:  # a command line's "4" or "0"
            value = float(word)
        except ValueError:
            raise ValueError(f"{name} must be {_ACCEPTED}, got {given!r:.80}") from None
    if value is None:
        return 0.0
    if isinstance(value, (bool, np.bool_)) or getattr(value, "dtype", None) == np.bool_:
        raise ValueError(f"{name} must be {_ACCEPTED}, got {given!r}")
    try:
        return check_smooth(value, name)
    except (ValueError, TypeError):
        raise ValueError(f"{name} must be {_ACCEPTED}, got {given!r:.80}") from None


def demo_weights_as_shipped(model: Any, checkpoint: Any = None) -> bool:
    """Whether ``model`` runs the demo weights as shipped (the weights "auto" smoothing is calibrated for).

    model: a preset name with ``checkpoint`` as ``build_model`` takes it (True for "demo" with None, "embedded",
    "download" or the path of the shipped file itself), or a built :class:`~sam2_model.modeling.sam2.SAM2Model`
    (True where it is the demo preset and every tensor of the shipped file equals its own: a fine-tuned copy differs).
    False for official presets, random weights and any other file (fine-tuned runs)."""
    from .build import DEMO_MODEL, Weights, resolve_weights
    from .demo_weights import embedded_weights_path

    if isinstance(model, str):
        if model != DEMO_MODEL:
            return False
        source = resolve_weights(model, checkpoint)
        if source is Weights.EMBEDDED:
            return True
        if not isinstance(source, Path):
            return False
        try:
            return os.path.samefile(source, embedded_weights_path())
        except OSError:
            return False
    config = getattr(model, "config", None)
    if getattr(config, "name", None) != DEMO_MODEL or not hasattr(model, "state_dict"):
        return False
    return _holds_shipped_tensors(model.state_dict())


_SHIPPED: Dict[Tuple[str, int, int], Dict[str, Any]] = {}  # the shipped file read once per process (one entry)


def _shipped_tensors(path: Path) -> Dict[str, Any]:
    """The tensors of the shipped demo file at ``path``, read once per process (kept while its path, size and date
    stay the same: ~17 MB, one file at most)."""
    from .build import read_state_dict

    stat = os.stat(path)
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHIPPED:
        _SHIPPED.clear()
        _SHIPPED[key] = read_state_dict(path)
    return _SHIPPED[key]


def _holds_shipped_tensors(state: Any) -> bool:
    """Whether the state dict ``state`` holds every tensor of the shipped demo file, equal (in its own dtype)."""
    import torch

    from .demo_weights import embedded_weights_path

    shipped = _shipped_tensors(embedded_weights_path())
    for key, tensor in shipped.items():
        held = state.get(key)
        if held is None or tuple(held.shape) != tuple(tensor.shape):
            return False
        held = held.detach().to("cpu")
        if not torch.equal(held, tensor.to(held.dtype)):
            return False
    return True


def smooth_choice(value: SmoothArg, frame: Any, points: Optional[Any] = None, name: str = "smooth", *,
                  model: Any = None, checkpoint: Any = None) -> SmoothChoice:
    """:func:`resolve_smooth` with what "auto" read (:class:`SmoothChoice`; its ``describe()`` is the line a run
    says once)."""
    asked = check_smooth_option(value, name)
    if asked != "auto":
        return SmoothChoice(float(asked))
    other = SmoothChoice(0.0, auto=True, why="not the demo weights as shipped (calibrated for those only)")
    if isinstance(model, str) and not demo_weights_as_shipped(model, checkpoint):  # a name: told without tensors
        return other
    choice = choose_smooth(frame, points)
    if choice.sigma > 0 and model is not None and not isinstance(model, str) and not demo_weights_as_shipped(model):
        return other  # a built model's tensors compared only where a blur would be given
    return choice


def resolve_smooth(value: SmoothArg, frame: Any, points: Optional[Any] = None, name: str = "smooth", *,
                   model: Any = None, checkpoint: Any = None) -> float:
    """A smoothing option as the user gives it -> px: "auto" measures ``frame`` ((H, W) or (H, W, C)) at ``points``
    ((N, 2) (x, y), :func:`suggest_smooth`; the first prompted frame and its objects' clicks, as the input size and
    object windows are measured), "off" or None is 0, a number >= 0 (or its text) is itself. ``model`` (a preset name
    with its ``checkpoint``, or a built model): "auto" is 0 unless it runs the demo weights as shipped
    (:func:`demo_weights_as_shipped`); None: the caller runs those (as ``bench/real_data_demo.py``). ValueError naming
    ``name`` and the accepted values otherwise."""
    return smooth_choice(value, frame, points, name, model=model, checkpoint=checkpoint).sigma
