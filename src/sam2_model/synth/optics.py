"""Optics and camera: blur, uneven illumination, background texture, Poisson-Gaussian noise, 8/16 bits.

All functions work on (T, H, W) float32 stacks and take their randomness from the ``rng`` they are given.
"""

from __future__ import annotations

import math
from typing import Tuple

import numpy as np
from scipy import ndimage

__all__ = ["blur", "derivative", "laplacian", "illumination", "background_texture", "acquire"]


def _coarse_gaussian(stack: np.ndarray, sigma: float) -> np.ndarray:
    """Wide blur at a coarser grid: block means of k x k px, a Gaussian of ~sigma / k there, bilinear back."""
    t, h, w = stack.shape
    k = max(1, int(sigma / 4.0))  # positions are kept to within k / 2 px
    hp, wp = -(-h // k) * k, -(-w // k) * k
    padded = np.pad(stack, ((0, 0), (0, hp - h), (0, wp - w)), mode="edge") if (hp, wp) != (h, w) else stack
    small = padded.reshape(t, hp // k, k, wp // k, k).mean(axis=(2, 4), dtype=np.float32)
    inner = math.sqrt(max(sigma**2 - (k**2 - 1) / 12.0, 0.25)) / k  # the block mean already blurs a little
    small = ndimage.gaussian_filter(small, sigma=(0.0, inner, inner), mode="reflect")
    return _upsample(_upsample(small, h, k, axis=1), w, k, axis=2)


def _upsample(stack: np.ndarray, size: int, k: float, axis: int) -> np.ndarray:
    """Linear interpolation along ``axis`` from the centres of k-px blocks to ``size`` pixel centres
    (gathers and a weighted sum: no BLAS threads, which thrash on busy machines)."""
    coarse = stack.shape[axis]
    at = np.clip((np.arange(size) + 0.5) / k - 0.5, 0.0, coarse - 1.0)
    low = np.floor(at).astype(int)
    high = np.minimum(low + 1, coarse - 1)
    shape = [1, 1, 1]
    shape[axis] = size
    frac = (at - low).astype(np.float32).reshape(shape)
    return np.take(stack, low, axis=axis) * (1.0 - frac) + np.take(stack, high, axis=axis) * frac


def blur(stack: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each frame of a (T, H, W) stack (exact when small, on a coarser grid when wide)."""
    if sigma <= 0.05:
        return stack.astype(np.float32, copy=True)
    if sigma < 3.0:
        return ndimage.gaussian_filter(stack, sigma=(0.0, sigma, sigma), mode="reflect").astype(np.float32)
    return _coarse_gaussian(stack, sigma)


def derivative(stack: np.ndarray, angle: float) -> np.ndarray:
    """Directional derivative (per px) of each frame along ``angle`` (rad, 0 = +x, pi/2 = +y)."""
    gy = np.gradient(stack, axis=1)
    gx = np.gradient(stack, axis=2)
    return (math.cos(angle) * gx + math.sin(angle) * gy).astype(np.float32)


def laplacian(stack: np.ndarray) -> np.ndarray:
    """Discrete Laplacian of each frame."""
    kernel = np.array([[[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]], dtype=np.float32)
    return ndimage.convolve(stack.astype(np.float32), kernel, mode="reflect")


def illumination(rng: np.random.Generator, shape: Tuple[int, int], strength: float) -> np.ndarray:
    """(H, W) float32 multiplicative field in [1 - strength, 1]: vignetting, a gradient and slow blotches."""
    h, w = shape
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    xx = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    cy, cx = rng.uniform(0.1, 0.9, 2)
    width = rng.uniform(0.3, 0.8)
    vignette = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))
    g = rng.normal(0.0, 1.0, 2)
    small = rng.normal(0.0, 1.0, (6, 6)).astype(np.float32)
    blotch = _upsample(_upsample(small[None], h, h / 6, axis=1), w, w / 6, axis=2)[0]
    s = 0.6 * vignette + 0.25 * (g[0] * (yy - 0.5) + g[1] * (xx - 0.5)) + 0.15 * blotch
    s = (s - s.min()) / max(float(s.max() - s.min()), 1e-6)
    return (1.0 - strength + strength * s).astype(np.float32)


def background_texture(rng: np.random.Generator, shape: Tuple[int, int], sigma: float) -> np.ndarray:
    """(H, W) float32 smooth noise, mean 0, std 1, correlation length ~``sigma`` px (substrate, dirt)."""
    noise = rng.normal(0.0, 1.0, (1,) + tuple(shape)).astype(np.float32)
    field = blur(noise, sigma)[0]
    field -= field.mean()
    return field / max(float(field.std()), 1e-6)


def acquire(rng: np.random.Generator, expected: np.ndarray, photons: float, dtype: str,
            read_noise: float, offset: float = 100.0) -> np.ndarray:
    """Camera: (T, H, W) relative intensity >= 0 -> photon counts (Poisson, ``photons`` per unit
    intensity) -> ADU with offset and Gaussian read noise -> uint16 (12- or 16-bit range) or uint8
    (a random part of 0-255 used, as after a display mapping)."""
    counts = rng.poisson(np.clip(expected, 0.0, None) * photons).astype(np.float32)
    counts += rng.normal(offset, read_noise, counts.shape).astype(np.float32)
    if dtype == "uint16":
        ceiling = 4095.0 if rng.random() < 0.4 else 65535.0
        top = float(np.percentile(counts[:, ::3, ::3], 99.9))  # a regular subsample is enough for limits
        gain = min(1.0, 0.85 * (ceiling - offset) / max(top - offset, 1.0))
        adu = offset + (counts - offset) * gain if gain < 1.0 else counts
        return np.clip(np.rint(adu), 0, ceiling).astype(np.uint16)
    lo, hi = np.percentile(counts[:, ::3, ::3], [0.1, 99.9])
    low, high = rng.uniform(0, 40), rng.uniform(170, 255)
    scaled = low + (counts - lo) * (high - low) / max(float(hi - lo), 1e-6)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
