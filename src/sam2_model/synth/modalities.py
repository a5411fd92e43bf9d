"""Image formation: from a simulated population's physical maps to the relative intensity a camera sees.

- ``fluorescence``: the stained content (``nuclear``/``cytoplasm``: the object's body, ``membrane``: a
  ring on its boundary) blurred by the PSF, on a dim uneven autofluorescent background with
  out-of-focus haze, blurred out-of-focus objects and bright specks (:func:`out_of_focus_clutter`); few
  photons, so shot noise matters.
- ``phase`` (Zernike phase contrast): the optical thickness minus its low-pass (the phase ring passes
  low spatial frequencies with the direct light), so cells come out darker than the background with a
  bright halo around them.
- ``brightfield``: weak absorption plus the defocus term (proportional to the Laplacian of the optical
  thickness), so cells are faint with a dark or bright rim depending on the focus side.
- ``dic``: the derivative of the optical thickness along the shear direction: bas-relief shading, one
  side bright, the opposite side dark.

Every function returns ``(expected, photons, read_noise)``: a (T, H, W) float32 relative intensity, the
photon count per unit of it, and the camera's read noise in ADU, ready for :func:`optics.acquire`.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import numpy as np

from .optics import background_texture, blur, derivative, illumination, laplacian

__all__ = ["MODALITIES", "STAINS", "form_image", "maps_needed", "out_of_focus_clutter"]

MODALITIES = ("fluorescence", "phase", "brightfield", "dic")
STAINS = ("nuclear", "cytoplasm", "membrane")


def maps_needed(modality: str, stain: str) -> Tuple[str, ...]:
    """Which population maps a modality reads."""
    if modality == "fluorescence":
        return ("membrane",) if stain == "membrane" else ("body",)
    return ("opl",)


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _psf_sigma(rng: np.random.Generator, cell_size: float, defocus_prob: float) -> float:
    """PSF width in px grows with magnification (cell size in px); sometimes out of focus."""
    sigma = rng.uniform(0.5, 1.3) * float(np.clip(cell_size / 30.0, 0.7, 2.5))
    if rng.random() < defocus_prob:
        sigma += rng.uniform(0.5, 2.5) * min(1.0, cell_size / 20.0)
    return min(sigma, 0.15 * cell_size + 0.5)


def _flicker(rng: np.random.Generator, num_frames: int, amount: float) -> np.ndarray:
    return (1.0 + rng.normal(0.0, amount, (num_frames, 1, 1))).astype(np.float32)


def _spots(rng: np.random.Generator, shape: Tuple[int, int], count: int, sigma: float,
           brightness: Tuple[float, float]) -> np.ndarray:
    """(H, W) float32: ``count`` Gaussian spots of width ``sigma`` px at random places, each peaking at a
    brightness drawn uniformly from ``brightness`` (where spots do not overlap)."""
    h, w = shape
    points = np.zeros((1, h, w), np.float32)
    if count:
        ys, xs = rng.integers(0, h, count), rng.integers(0, w, count)
        np.add.at(points[0], (ys, xs), rng.uniform(*brightness, count).astype(np.float32))
    return blur(points, sigma)[0] * np.float32(2.0 * math.pi * max(sigma, 0.4) ** 2)


def out_of_focus_clutter(rng: np.random.Generator, shape: Tuple[int, int], cell_size: float) -> np.ndarray:
    """(H, W) float32 >= 0, static and unlabelled: what a widefield fluorescence camera sees besides the
    cells in focus, relative to a cell's brightness (~1). Wide dim blobs (cells and debris above or
    below the focal plane, blurred to 0.3-0.9 x the cell size) and small bright specks (dust, beads);
    on the CTC Fluo-C2DL-MSC frames this structure is most of the background's variation at the model's
    input. Some fields have neither."""
    h, w = shape
    ghosts = int(rng.poisson(rng.uniform(0.0, 1.5) * h * w / (5.0 * cell_size) ** 2))
    wide = _spots(rng, shape, ghosts, rng.uniform(0.3, 0.9) * cell_size, (0.05, 0.4))
    specks = int(rng.poisson(rng.uniform(0.0, 1.0) * h * w / 4000.0))
    fine = _spots(rng, shape, specks, rng.uniform(0.6, 1.5), (0.3, 1.5))
    return wide + fine


def _fluorescence(maps, rng, cell_size, clutter=None):
    signal = maps.get("body", maps.get("membrane"))
    t, h, w = signal.shape
    sharp = blur(signal, _psf_sigma(rng, cell_size, 0.3))
    haze = blur(signal, max(3.0, 1.5 * cell_size)) * rng.uniform(0.0, 0.25)
    texture = rng.uniform(0.0, 0.8) * background_texture(rng, (h, w), 0.2 * cell_size + 2)
    auto = rng.uniform(0.02, 0.25) * np.clip(1.0 + texture, 0.2, None)
    drawn = rng.random() < 0.7
    stray = out_of_focus_clutter(rng, (h, w), cell_size) if (drawn if clutter is None else clutter) else 0.0
    light = illumination(rng, (h, w), rng.uniform(0.0, 0.6))
    expected = (sharp + haze + (auto + stray)[None]) * light[None] * _flicker(rng, t, 0.01)
    return expected, _log_uniform(rng, 15.0, 3000.0), rng.uniform(1.0, 12.0)


def _transmitted_background(rng, shape, cell_size):
    h, w = shape
    texture = rng.uniform(0.003, 0.03) * background_texture(rng, (h, w), rng.uniform(1.0, 0.3 * cell_size + 2))
    return illumination(rng, (h, w), rng.uniform(0.0, 0.4)) * (1.0 + texture)


def _phase(maps, rng, cell_size):
    opl = maps["opl"]
    t, h, w = opl.shape
    phi = blur(opl, _psf_sigma(rng, cell_size, 0.2))
    halo_sigma = float(np.clip(rng.uniform(0.12, 0.45) * cell_size, 1.5, 30.0))
    relief = phi - blur(phi, halo_sigma)  # > 0 on cells, < 0 in a ring around them
    alpha = rng.uniform(0.35, 0.8)
    halo = alpha * rng.uniform(1.0, 3.0)  # the halo is often brighter than the cells are dark
    shade = 1.0 - alpha * np.maximum(relief, 0.0) - halo * np.minimum(relief, 0.0) - rng.uniform(0.0, 0.1) * phi
    expected = np.clip(shade, 0.03, None) * _transmitted_background(rng, (h, w), cell_size)[None]
    return expected * _flicker(rng, t, 0.005), _log_uniform(rng, 200.0, 20000.0), rng.uniform(2.0, 20.0)


def _brightfield(maps, rng, cell_size):
    opl = maps["opl"]
    t, h, w = opl.shape
    phi = blur(opl, _psf_sigma(rng, cell_size, 0.5))
    lap = laplacian(blur(phi, max(1.0, 0.08 * cell_size)))
    lap /= max(float(np.percentile(np.abs(lap), 99.5)), 1e-6)
    rim = rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.25)
    shade = 1.0 - rng.uniform(0.02, 0.2) * phi + rim * lap
    expected = np.clip(shade, 0.03, None) * _transmitted_background(rng, (h, w), cell_size)[None]
    return expected * _flicker(rng, t, 0.005), _log_uniform(rng, 300.0, 20000.0), rng.uniform(2.0, 20.0)


def _dic(maps, rng, cell_size):
    opl = maps["opl"]
    t, h, w = opl.shape
    phi = blur(opl, _psf_sigma(rng, cell_size, 0.2) + 0.5)
    slope = derivative(phi, float(rng.uniform(0, 2 * np.pi)))
    slope /= max(float(np.percentile(np.abs(slope), 99.5)), 1e-6)
    shade = rng.uniform(0.35, 0.6) + rng.uniform(0.15, 0.35) * slope - rng.uniform(0.0, 0.05) * phi
    expected = np.clip(shade, 0.02, None) * _transmitted_background(rng, (h, w), cell_size)[None]
    return expected * _flicker(rng, t, 0.005), _log_uniform(rng, 300.0, 20000.0), rng.uniform(2.0, 20.0)


_FORMERS = {"fluorescence": _fluorescence, "phase": _phase, "brightfield": _brightfield, "dic": _dic}


def form_image(modality: str, maps: Dict[str, np.ndarray], rng: np.random.Generator,
               cell_size: float, clutter: Optional[bool] = None) -> Tuple[np.ndarray, float, float]:
    """(expected (T, H, W) float32, photons per unit, read noise in ADU) for ``modality``. ``clutter``
    (fluorescence only): out-of-focus objects and specks (:func:`out_of_focus_clutter`) or not; None: drawn
    (70 %). The random stream is the same either way up to the clutter itself."""
    if modality not in _FORMERS:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    if modality == "fluorescence":
        return _fluorescence(maps, rng, cell_size, clutter)
    return _FORMERS[modality](maps, rng, cell_size)
