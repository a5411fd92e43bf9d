"""Synthetic fluorescence time-lapse of nuclei with ground-truth instance labels.

``make_timelapse`` simulates nuclei as textured ellipses with a wobbly boundary
that drift, random-walk, deform, touch (overlaps resolved by a fixed depth
order: each cell draws a depth at birth, nearer cells are painted last), divide
(two daughters with new ids, ``parents[child] = parent``) and enter / leave the
field of view.  The image model is: signal -> Gaussian PSF blur -> + smooth
uneven background -> Poisson shot noise + Gaussian read noise -> uint16 counts
(or uint8, scaled).  All randomness comes from ``np.random.default_rng(seed)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["SyntheticTimelapse", "make_timelapse"]

_NUM_HARMONICS = 4  # boundary wobble harmonics k = 2..5
_PSF_SIGMA = 1.3
_READ_NOISE = 15.0
_UINT16_CEILING = 60000.0


@dataclass(frozen=True)
class SyntheticTimelapse:
    image: np.ndarray  # (T, H, W) uint8 or uint16
    labels: np.ndarray  # (T, H, W) int32, 0 = background, ids stable through time
    parents: dict[int, int]  # child id -> parent id (divisions)


class _Cell:
    """Mutable simulation state of one nucleus."""

    def __init__(self, cid, pos, vel, loga, logb, theta, bright, depth, rng, age=0):
        self.id = cid
        self.pos = np.asarray(pos, dtype=float)
        self.vel = np.asarray(vel, dtype=float)
        self.loga = self.loga0 = float(loga)
        self.logb = self.logb0 = float(logb)
        self.theta = float(theta)
        self.bright = float(bright)
        self.depth = float(depth)
        self.age = age
        self.amp = rng.uniform(0.0, 0.05, _NUM_HARMONICS)
        self.phase = rng.uniform(0.0, 2 * np.pi, _NUM_HARMONICS)
        # chromatin-like texture: a few plane waves in the cell frame (periods 3-9 px)
        k = 2 * np.pi / rng.uniform(3.0, 9.0, 4)
        ang = rng.uniform(0.0, 2 * np.pi, 4)
        self.tex_k = np.stack([k * np.cos(ang), k * np.sin(ang)], axis=1)
        self.tex_c = rng.uniform(0.03, 0.07, 4)
        self.tex_psi = rng.uniform(0.0, 2 * np.pi, 4)

    @property
    def radius(self) -> float:
        return math.exp(0.5 * (self.loga + self.logb))

    @property
    def extent(self) -> float:
        return math.exp(max(self.loga, self.logb)) * (1.0 + self.amp.sum())


def _render(cell: _Cell, labels: np.ndarray, signal: np.ndarray) -> None:
    h, w = labels.shape
    cy, cx = cell.pos
    r = cell.extent + 1.0
    y0, y1 = max(int(math.floor(cy - r)), 0), min(int(math.ceil(cy + r)) + 1, h)
    x0, x1 = max(int(math.floor(cx - r)), 0), min(int(math.ceil(cx + r)) + 1, w)
    if y0 >= y1 or x0 >= x1:
        return
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    ca, sa = math.cos(cell.theta), math.sin(cell.theta)
    u = dx * ca + dy * sa
    v = dy * ca - dx * sa
    a, b = math.exp(cell.loga), math.exp(cell.logb)
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    phi = np.arctan2(v, u)
    f = np.ones_like(rho)
    for i in range(_NUM_HARMONICS):
        f += cell.amp[i] * np.cos((i + 2) * phi + cell.phase[i])
    inside = rho < f
    if not inside.any():
        return
    prof = 0.78 + 0.22 * np.clip(1.0 - (rho / f) ** 2, 0.0, 1.0)
    tex = np.ones_like(rho)
    for (ku, kv), c, psi in zip(cell.tex_k, cell.tex_c, cell.tex_psi):
        tex += c * np.sin(ku * u + kv * v + psi)
    labels[y0:y1, x0:x1][inside] = cell.id
    signal[y0:y1, x0:x1][inside] = (cell.bright * prof * tex)[inside]


def _background(shape, rng) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy /= max(h - 1, 1)
    xx /= max(w - 1, 1)
    cy, cx = rng.uniform(0.2, 0.8, 2)
    vignette = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 0.35**2))
    g = rng.normal(0.0, 1.0, 2)
    grad = g[0] * (yy - 0.5) + g[1] * (xx - 0.5)
    s = 0.65 * vignette + 0.35 * grad
    s = (s - s.min()) / max(float(s.max() - s.min()), 1e-6)
    lo = rng.uniform(550.0, 800.0)
    hi = rng.uniform(1400.0, 1900.0)
    return (lo + (hi - lo) * s).astype(np.float32)


def make_timelapse(
    num_frames: int = 30,
    shape: tuple[int, int] = (256, 256),
    num_cells: int = 12,
    seed: int = 0,
    dtype: str = "uint16",
    divisions: bool = True,
    enter_leave: bool = True,
    radius_fraction: float = 0.06,
) -> SyntheticTimelapse:
    """Simulate a (T, H, W) fluorescence nuclei time-lapse with instance labels.

    radius_fraction: mean nucleus radius as a fraction of the shorter image side (0.06: 15 px at 256).
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise ValueError(f"dtype must be uint8 or uint16, got {dtype}")
    if num_frames < 1:
        raise ValueError("num_frames must be >= 1")
    h, w = int(shape[0]), int(shape[1])
    if h < 16 or w < 16:
        raise ValueError("shape must be at least 16 x 16")
    if not 0.005 <= radius_fraction <= 0.25:
        raise ValueError(f"radius_fraction must be between 0.005 and 0.25, got {radius_fraction}")
    rng = np.random.default_rng(seed)
    r_mean = radius_fraction * min(h, w)
    drift = rng.normal(0.0, 0.3, 2) if enter_leave else np.zeros(2)
    next_id = 1
    parents: dict[int, int] = {}

    def new_cell(pos, vel, radius=None, age=0):
        nonlocal next_id
        r = radius if radius is not None else r_mean * math.exp(rng.normal(0.0, 0.18))
        ecc = rng.uniform(1.0, 1.45)
        if rng.random() < 0.25:  # dim nucleus
            bright = rng.uniform(1200.0, 3000.0)
        else:
            bright = math.exp(rng.uniform(math.log(3500.0), math.log(28000.0)))
        cell = _Cell(next_id, pos, vel, math.log(r * math.sqrt(ecc)), math.log(r / math.sqrt(ecc)),
                     rng.uniform(0.0, np.pi), bright, rng.random(), rng, age)
        next_id += 1
        return cell

    cells: list[_Cell] = []
    for _ in range(num_cells):
        for _try in range(200):
            pos = rng.uniform([r_mean, r_mean], [h - r_mean, w - r_mean])
            if all(np.hypot(*(pos - c.pos)) > 1.9 * r_mean for c in cells):
                break
        cells.append(new_cell(pos, rng.normal(0.0, 0.5, 2), age=int(rng.integers(0, 8))))

    labels = np.zeros((num_frames, h, w), dtype=np.int32)
    signal = np.zeros((num_frames, h, w), dtype=np.float32)
    for t in range(num_frames):
        if t > 0:
            for c in cells:  # motion and slow deformation
                c.vel = 0.75 * c.vel + rng.normal(0.0, 0.45, 2)
                c.pos = c.pos + c.vel + drift
                c.loga0 += 0.004
                c.logb0 += 0.004
                c.loga += 0.1 * (c.loga0 - c.loga) + rng.normal(0.0, 0.02)
                c.logb += 0.1 * (c.logb0 - c.logb) + rng.normal(0.0, 0.02)
                c.theta += rng.normal(0.0, 0.04)
                c.amp = np.clip(c.amp + rng.normal(0.0, 0.004, _NUM_HARMONICS), 0.0, 0.07)
                c.phase = c.phase + rng.normal(0.0, 0.05, _NUM_HARMONICS)
                c.age += 1
            for i in range(len(cells)):  # soft repulsion: touching but limited overlap
                for j in range(i + 1, len(cells)):
                    d = cells[i].pos - cells[j].pos
                    dist = float(np.hypot(*d)) + 1e-6
                    min_d = 0.85 * (cells[i].radius + cells[j].radius)
                    if dist < min_d:
                        push = min(0.5 * (min_d - dist), 1.5) * d / dist
                        cells[i].pos = cells[i].pos + push
                        cells[j].pos = cells[j].pos - push
            if enter_leave:  # cells that are completely outside leave for good
                cells = [c for c in cells
                         if -c.extent - 2 < c.pos[0] < h + c.extent + 1
                         and -c.extent - 2 < c.pos[1] < w + c.extent + 1]
            else:  # stay inside: reflect at the walls
                for c in cells:
                    r = c.radius
                    for ax, size in ((0, h), (1, w)):
                        if c.pos[ax] < r or c.pos[ax] > size - 1 - r:
                            c.pos[ax] = min(max(c.pos[ax], r), size - 1 - r)
                            c.vel[ax] = -c.vel[ax]
            if divisions:
                born: list[_Cell] = []
                for c in list(cells):
                    r = c.extent
                    inside = r < c.pos[0] < h - 1 - r and r < c.pos[1] < w - 1 - r
                    if not (c.age >= 8 and inside and len(cells) + len(born) < 3 * num_cells):
                        continue
                    if rng.random() >= 0.015:
                        continue
                    axis = np.array([math.sin(c.theta), math.cos(c.theta)])  # major axis (y, x)
                    off = 0.45 * math.exp(c.loga) * axis
                    for sign in (1.0, -1.0):
                        d = new_cell(c.pos + sign * off, c.vel + sign * 0.8 * axis, radius=0.78 * c.radius)
                        d.theta = c.theta + rng.normal(0.0, 0.2)
                        d.bright = c.bright * rng.uniform(0.9, 1.15)
                        d.depth = c.depth + sign * 1e-3
                        parents[d.id] = c.id
                        born.append(d)
                    cells.remove(c)
                cells.extend(born)
            if enter_leave and rng.random() < 0.12 * num_cells / 12.0:
                # enter from a side, preferably upstream of the drift
                weights = np.array([max(drift[0], 0), max(-drift[0], 0), max(drift[1], 0), max(-drift[1], 0)]) + 0.1
                side = int(rng.choice(4, p=weights / weights.sum()))
                r = r_mean
                along = rng.uniform(r, (w if side < 2 else h) - r)
                inward = 1.5
                if side == 0:
                    pos, vel = (-0.6 * r, along), (inward, 0.0)
                elif side == 1:
                    pos, vel = (h - 1 + 0.6 * r, along), (-inward, 0.0)
                elif side == 2:
                    pos, vel = (along, -0.6 * r), (0.0, inward)
                else:
                    pos, vel = (along, w - 1 + 0.6 * r), (0.0, -inward)
                cells.append(new_cell(pos, vel))
        for c in sorted(cells, key=lambda c: (c.depth, c.id)):  # far first, near overwrites
            _render(c, labels[t], signal[t])

    blurred = ndimage.gaussian_filter(signal, sigma=(0.0, _PSF_SIGMA, _PSF_SIGMA))
    flicker = 1.0 + rng.normal(0.0, 0.01, (num_frames, 1, 1))
    expected = np.clip(blurred + _background((h, w), rng)[None] * flicker, 0.0, None)
    counts = rng.poisson(expected).astype(np.float32)
    counts += rng.normal(0.0, _READ_NOISE, counts.shape).astype(np.float32)
    counts = np.clip(counts, 0.0, _UINT16_CEILING)
    if dtype == np.uint16:
        image = np.rint(counts).astype(np.uint16)
    else:
        scale = 250.0 / max(float(counts.max()), 1.0)
        image = np.clip(np.rint(counts * scale), 0, 255).astype(np.uint8)
    return SyntheticTimelapse(image=image, labels=labels, parents=parents)
