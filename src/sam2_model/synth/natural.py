"""Natural-image-like clips: textured objects moving over a textured, panning background.

Not microscopy: these clips keep the model's general notion of an "object" (a region with its own
texture and boundary that moves coherently, occludes and is occluded), which real video and unusual
samples need. Backgrounds are 1/f^beta noise plus a grating; objects are irregular blobs (reusing
:class:`shapes.Blob`) with their own texture, mean grey level and shading, translating, turning and
scaling; nearer objects occlude farther ones; some leave the frame. Grey uint8 frames.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import numpy as np

from .optics import blur
from .shapes import HARMONICS, Blob, draw, texture_field

__all__ = ["make_natural_clip"]


def _power_law(rng: np.random.Generator, shape: Tuple[int, int], beta: float) -> np.ndarray:
    h, w = shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fy**2 + fx**2)
    f[0, 0] = 1.0
    spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f ** (beta / 2)
    spectrum[0, 0] = 0.0
    out = np.fft.irfft2(spectrum, s=(h, w))
    return ((out - out.mean()) / max(float(out.std()), 1e-6)).astype(np.float32)


def _background(rng: np.random.Generator, shape: Tuple[int, int]) -> np.ndarray:
    h, w = shape
    field = 0.12 * _power_law(rng, (h, w), rng.uniform(1.6, 2.8))
    if rng.random() < 0.5:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ang, period = rng.uniform(0, np.pi), rng.uniform(4.0, 30.0)
        field += rng.uniform(0.02, 0.1) * np.sin(2 * np.pi * (xx * math.cos(ang) + yy * math.sin(ang)) / period)
    return rng.uniform(0.2, 0.8) + field


def make_natural_clip(rng: np.random.Generator, shape: Tuple[int, int] = (256, 256),
                      num_frames: int = 8) -> Tuple[np.ndarray, np.ndarray, Dict[int, int]]:
    """(image (T, H, W) uint8, labels (T, H, W) int32, parents {}) of a natural-image-like clip."""
    h, w = shape
    pan = rng.normal(0.0, 1.5, 2)
    margin = int(math.ceil(np.abs(pan).max() * num_frames)) + 2
    scene = _background(rng, (h + 2 * margin, w + 2 * margin))
    count = int(rng.integers(1, 7))
    side = min(h, w)
    objects, looks = [], []
    for n in range(count):
        r = 0.5 * side * math.exp(rng.uniform(math.log(0.08), math.log(0.5)))
        ecc = math.exp(rng.uniform(0.0, math.log(3.0)))
        lobes = int(rng.integers(0, 4))
        obj = Blob(id=n + 1, pos=rng.uniform(0.1, 0.9, 2) * (h, w), vel=rng.normal(0.0, 0.02 * r + 0.5, 2),
                   theta=float(rng.uniform(0, np.pi)), depth=float(rng.random()), bright=1.0, height=1.0,
                   tex_offset=tuple(rng.uniform(0, 256, 2)), tex_scale=float(rng.uniform(0.5, 2.0)),
                   tex_fine=float(rng.uniform(0.0, 0.4)), tex_coarse=float(rng.uniform(0.0, 0.5)),
                   a=r * math.sqrt(ecc), b=r / math.sqrt(ecc),
                   amp=rng.uniform(0.0, 0.25, len(HARMONICS)) / np.arange(1, 6) ** 0.6,
                   phase=rng.uniform(0, 2 * np.pi, len(HARMONICS)), lobe_angle=rng.uniform(0, 2 * np.pi, lobes),
                   lobe_amp=rng.uniform(0.2, 0.9, lobes), lobe_width=rng.uniform(0.15, 0.4, lobes))
        objects.append(obj)
        looks.append(dict(grey=float(rng.uniform(0.05, 0.95)), fine=texture_field(rng, 128, rng.uniform(0.5, 2.0)),
                          coarse=texture_field(rng, 128, rng.uniform(6.0, 20.0)),
                          spin=float(rng.normal(0.0, 0.03)), grow=float(rng.normal(0.0, 0.01)),
                          shade=float(rng.uniform(0.0, 0.4))))
    image = np.zeros((num_frames, h, w), np.float32)
    labels = np.zeros((num_frames, h, w), np.int32)
    for t in range(num_frames):
        oy, ox = (margin + pan * t).astype(int)
        image[t] = scene[oy:oy + h, ox:ox + w]
        for obj, look in sorted(zip(objects, looks), key=lambda p: p[0].depth):
            if t > 0:
                obj.vel = 0.9 * obj.vel + rng.normal(0.0, 0.3, 2)
                obj.pos = obj.pos + obj.vel
                obj.theta += look["spin"]
                obj.a *= math.exp(look["grow"])
                obj.b *= math.exp(look["grow"])
            drawn = draw(obj, (h, w), look["fine"], look["coarse"])
            if drawn is None:
                continue
            y0, y1, x0, x1 = drawn.box
            value = look["grey"] * drawn.texture * (1.0 - look["shade"] * drawn.rho**2)
            image[t, y0:y1, x0:x1][drawn.inside] = value[drawn.inside]
            labels[t, y0:y1, x0:x1][drawn.inside] = obj.id
    image = blur(image, rng.uniform(0.3, 1.2))
    image = image * (1.0 + rng.normal(0.0, 0.02, (num_frames, 1, 1))).astype(np.float32)
    image += rng.normal(0.0, rng.uniform(0.005, 0.04), image.shape).astype(np.float32)
    lo, hi = np.percentile(image, [0.5, 99.5])
    out = np.clip(np.rint((image - lo) / max(float(hi - lo), 1e-6) * 235 + 10), 0, 255).astype(np.uint8)
    return out, labels, {}
