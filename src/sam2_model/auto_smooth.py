"""Smoothing chosen from the frame itself: on for grainy, dim frames, off for clean ones (``smooth="auto"``).

A Gaussian blur of the frames helps the demo model on grainy, dim cells and hurts it on clean nuclei
(docs/demo_model.md, *Limits*): 8 px raises the real MSC time-lapse's tracked IoU from 0.241 to 0.289 and lowers
one click on clean synthetic nuclei. So it is turned on only where the frame's grain is large against its objects'
contrast (:func:`grain`):

* grain: the pixel noise, 1.4826 x the median absolute deviation of the frame minus its 3 x 3 mean (a robust
  standard deviation of what a 3 px neighbourhood does not explain: shot and read noise, speckle);
* contrast: the difference of the medians of the frame's two Otsu classes after a 2 px Gaussian (objects against
  background, whichever is brighter);
* both on the frame's central 512 x 512 at most (a grey mean over channels), in ~0.05 s.

Measured (docs/input_size.md, *Smoothing chosen from the grain*): the MSC frames 0-47 read 0.19-0.35, the real
widefield nuclei of ``bench/real_nuclei.py`` 0.12, the held-out synthetic nuclei 0.002-0.006. :data:`GRAIN_ON` (0.15)
lies between the real nuclei and MSC; :func:`suggest_smooth` blurs by :data:`SIGMA_PER_WIDTH` of the objects' width
(at most :data:`AUTO_SIGMA`, 8 px) above it, else not at all. On MSC in 312 px object windows (the default route)
4 px gave the best tracked IoU of 2-8 px (0.277 -> 0.342; 8 px 0.334), on whole frames 8 px (0.241 -> 0.289; 4 px
0.254); the clean guards read far under :data:`GRAIN_ON`, so their figures do not move.

The calibration is the shipped demo weights' (``build_model("demo")``, its embedded file): for any other weights
(Meta's official checkpoints, random weights, fine-tuned runs, which trained on unsmoothed frames) "auto" is 0
(:func:`demo_weights_as_shipped`, the rule ``segment()``, the command line, batch runs and the widget share).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .frames import check_smooth
from .input_size import estimate_object_diameter, estimate_prompted_diameter

__all__ = ["GRAIN_ON", "AUTO_SIGMA", "SIGMA_PER_WIDTH", "DEFAULT_SMOOTH", "GRAIN_CROP", "SmoothArg", "SmoothChoice",
           "grain", "choose_smooth", "suggest_smooth", "check_smooth_option", "demo_weights_as_shipped",
           "smooth_choice", "resolve_smooth"]

GRAIN_ON = 0.15  # grain / contrast from which smoothing is on (MSC 0.19-0.35, real nuclei 0.12, synthetic < 0.01)
AUTO_SIGMA = 8.0  # px: the most blur given (the most measured on MSC: 0.241 -> 0.289 tracked IoU, whole frames)
SIGMA_PER_WIDTH = 0.14  # blur per px of object width: 4 px for MSC's clicked cells (28.6 px wide), ~0.5-1 px for rods
DEFAULT_SMOOTH = "auto"  # what segment(), the command line and the widget should pass when the user says nothing
GRAIN_CROP = 512  # px: the central square measured (a larger frame measures the same, at more cost)

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
        """One line saying what "auto" chose, e.g. "smoothing 4 px: grainy frames (grain 0.30)"; "" where it chose
        no blur or the blur was given (nothing to say: the run is the one asked for)."""
        if not self.auto or self.sigma <= 0:
            return ""
        return f"smoothing {self.sigma:g} px: {self.why}"


def _grey_crop(frame: Any) -> np.ndarray:
    """(H, W) or (H, W, C) ``frame`` -> its central ``GRAIN_CROP`` square as float64 (H', W') grey (channel mean).
    ValueError for other shapes, non-numeric data or non-finite values."""
    array = np.asarray(frame)
    if array.ndim not in (2, 3) or array.shape[0] < 8 or array.shape[1] < 8:
        raise ValueError(f"frame must be (H, W) or (H, W, C) with H, W >= 8, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool) or np.iscomplexobj(array):
        raise ValueError(f"frame must hold real numbers (integers or floats), got dtype {array.dtype}")
    height, width = array.shape[:2]
    top, left = max(0, (height - GRAIN_CROP) // 2), max(0, (width - GRAIN_CROP) // 2)
    crop = np.asarray(array[top:top + GRAIN_CROP, left:left + GRAIN_CROP], np.float64)
    if crop.ndim == 3:
        crop = crop.mean(axis=2)
    if not np.isfinite(crop).all():
        raise ValueError("frame holds NaN or infinite values; give finite intensities")
    return crop


def grain(frame: Any) -> float:
    """The grain of ``frame`` ((H, W) or (H, W, C), any real dtype) against its objects' contrast: pixel noise /
    object contrast (module docstring); 0.0 for a flat frame (no contrast, nothing to smooth for)."""
    from scipy import ndimage
    from skimage.filters import threshold_otsu  # imported here: `import sam2_model` stays light

    crop = _grey_crop(frame)
    noise = 1.4826 * float(np.median(np.abs(crop - ndimage.uniform_filter(crop, 3))))
    smooth = ndimage.gaussian_filter(crop, 2.0)
    if float(smooth.max() - smooth.min()) <= 1e-9 * max(1.0, float(np.abs(smooth).max())):
        return 0.0
    upper = smooth > threshold_otsu(smooth)
    if upper.all() or not upper.any():
        return 0.0
    contrast = abs(float(np.median(smooth[upper])) - float(np.median(smooth[~upper])))
    return noise / contrast if contrast > 0 else 0.0


def choose_smooth(frame: Any, points: Optional[Any] = None) -> SmoothChoice:
    """The blur for frames like ``frame`` with the grain it was read from (:func:`suggest_smooth` says how)."""
    measured = grain(frame)
    if measured < GRAIN_ON:
        return SmoothChoice(0.0, measured, True, f"clean frames (grain {measured:.2f} < {GRAIN_ON:g})")
    width = float("nan")
    if points is not None and len(np.asarray(points).reshape(-1, 2)):
        width = estimate_prompted_diameter(frame, points)
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
    if isinstance(value, bool):
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


def _holds_shipped_tensors(state: Any) -> bool:
    """Whether the state dict ``state`` holds every tensor of the shipped demo file, equal (in its own dtype)."""
    import torch

    from .build import read_state_dict
    from .demo_weights import embedded_weights_path

    shipped = read_state_dict(embedded_weights_path())
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
