"""Cell shapes and how one cell is drawn into a frame's bounding box.

Two shape families, both described in the cell's own frame (``u`` along the long axis, ``v`` across):

- :class:`Blob`: an ellipse whose boundary radius is modulated by angular harmonics (k = 2..6: wobble,
  bean and kidney shapes, concavities) and by Gaussian lobes (protrusions of spread, mesenchymal cells);
  optionally with a nucleus inside (whole cells).
- :class:`Rod`: a capsule (bacteria): a spine of length ``length`` swept by a disc of radius ``radius``,
  slightly bent by ``bend``.

:func:`draw` returns, for the pixels of the cell's bounding box, the inside mask, the distance to the
boundary in pixels (membranes, thickness profiles) and the normalised radial coordinate (0 at the
centre or spine, 1 on the boundary), plus a texture sampled in the cell's frame so that it moves and
turns with the cell. Nothing here is random: cells are created and changed by ``population``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np

__all__ = ["Cell", "Blob", "Rod", "Drawn", "draw", "texture_field"]

HARMONICS = np.arange(2, 7)  # boundary wobble orders
_ANGLES = np.linspace(0.0, 2 * np.pi, 72, endpoint=False)


@dataclass
class Cell:
    """Common state of a cell: id, position (y, x) in px, velocity, orientation (rad), depth (nearer
    cells are drawn last and occlude), brightness (fluorescence), height (optical thickness), age in
    frames, texture offset and contrast."""

    id: int
    pos: np.ndarray
    vel: np.ndarray
    theta: float
    depth: float
    bright: float
    height: float
    age: int = 0
    tex_offset: Tuple[float, float] = (0.0, 0.0)
    tex_scale: float = 1.0
    tex_fine: float = 0.1
    tex_coarse: float = 0.1
    debris: bool = False  # unlabelled clutter: drawn into the signal, never into the labels


@dataclass
class Blob(Cell):
    """Ellipse (semi-axes ``a`` >= ``b`` in px) with harmonic wobble and lobes; ``nucleus`` is
    (offset_u, offset_v, radius) as fractions of the cell's mean radius, or None (the object is a
    nucleus itself, or a cell without a visible one). Thin processes (the long tails of fibroblasts and
    mesenchymal stem cells): straight strips from the centre at ``process_angle`` (rad, in the cell's frame),
    reaching ``process_length`` px, ``process_width`` px wide on each side of their axis at the centre and
    tapering to 40 % of that at the tip."""

    a: float = 10.0
    b: float = 10.0
    amp: np.ndarray = field(default_factory=lambda: np.zeros(len(HARMONICS)))
    phase: np.ndarray = field(default_factory=lambda: np.zeros(len(HARMONICS)))
    lobe_angle: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lobe_amp: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lobe_width: np.ndarray = field(default_factory=lambda: np.zeros(0))
    nucleus: Optional[Tuple[float, float, float]] = None
    process_angle: np.ndarray = field(default_factory=lambda: np.zeros(0))
    process_length: np.ndarray = field(default_factory=lambda: np.zeros(0))
    process_width: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def radius(self) -> float:
        return math.sqrt(self.a * self.b)

    @property
    def extent(self) -> float:
        """An upper bound of the distance from ``pos`` to the boundary, in px."""
        body = self.a * (1.0 + float(self.amp.sum() + self.lobe_amp.sum()))  # both are >= 0
        return max([body] + [float(n + w) for n, w in zip(self.process_length, self.process_width)])

    def area(self) -> float:
        return math.pi * self.a * self.b

    def max_factor(self) -> float:
        """The largest boundary factor f(phi) (sampled every 5 degrees, with a margin for between)."""
        f = 1.0 + self.amp @ np.cos(np.outer(HARMONICS, _ANGLES) + self.phase[:, None])
        if len(self.lobe_amp):
            cosd = np.cos(_ANGLES[None, :] - self.lobe_angle[:, None])
            f = f + self.lobe_amp @ np.exp((cosd - 1.0) / (self.lobe_width[:, None] ** 2))
        return float(f.max()) * 1.03 + 0.02

    def half_box(self) -> Tuple[float, float]:
        """Half height and half width (px) of a box that holds the cell: the shape lies inside the
        ellipse scaled by the largest boundary factor."""
        grow = self.max_factor()
        s, c = math.sin(self.theta), math.cos(self.theta)
        ry, rx = grow * math.hypot(self.a * s, self.b * c) + 1.5, grow * math.hypot(self.a * c, self.b * s) + 1.5
        for angle, length, width in zip(self.process_angle, self.process_length, self.process_width):
            ry = max(ry, abs(length * math.sin(self.theta + angle)) + width + 1.5)
            rx = max(rx, abs(length * math.cos(self.theta + angle)) + width + 1.5)
        return ry, rx


@dataclass
class Rod(Cell):
    """Capsule: spine ``length`` px, half-width ``radius`` px, spine bent by ``bend`` (1/px)."""

    length: float = 10.0
    radius: float = 2.0
    bend: float = 0.0

    @property
    def extent(self) -> float:
        half = 0.5 * self.length
        return half + self.radius + abs(self.bend) * half * half

    def area(self) -> float:
        return self.length * 2 * self.radius + math.pi * self.radius**2

    def half_box(self) -> Tuple[float, float]:
        """Half height and half width (px) of a box that holds the rod."""
        half = 0.5 * self.length
        s, c = abs(math.sin(self.theta)), abs(math.cos(self.theta))
        pad = self.radius + abs(self.bend) * half * half + 1.5
        return half * s + pad, half * c + pad


@dataclass
class Drawn:
    """One cell drawn into the box ``(y0, y1, x0, x1)`` of a frame; arrays are (y1 - y0, x1 - x0).

    inside: bool; edge: distance to the boundary in px (> 0 inside); rho: 0 at the centre/spine, 1 on
    the boundary; texture: ~1 +- contrast; nucleus: normalised nucleus radius (< 1 inside) or None."""

    box: Tuple[int, int, int, int]
    inside: np.ndarray
    edge: np.ndarray
    rho: np.ndarray
    texture: np.ndarray
    nucleus: Optional[np.ndarray]


def texture_field(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """(size, size) float32 periodic band-limited noise (Gaussian spectrum of width ``sigma`` px), mean 0, std 1."""
    noise = rng.normal(0.0, 1.0, (size, size))
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    spectrum = np.fft.rfft2(noise) * np.exp(-2 * (math.pi * sigma) ** 2 * (fy**2 + fx**2))
    out = np.fft.irfft2(spectrum, s=(size, size))
    out -= out.mean()
    return (out / max(float(out.std()), 1e-6)).astype(np.float32)


def _blob_geometry(cell: Blob, u: np.ndarray, v: np.ndarray):
    ru, rv = u / np.float32(cell.a), v / np.float32(cell.b)
    rho = np.sqrt(ru * ru + rv * rv)
    safe = np.maximum(rho, np.float32(1e-3))
    cos1, sin1 = ru / safe, rv / safe  # direction in the ellipse's normalised frame
    f = np.ones_like(rho)
    ck, sk = cos1, sin1
    for k, (amp, ph) in enumerate(zip(cell.amp, cell.phase), start=1):
        ck, sk = ck * cos1 - sk * sin1, sk * cos1 + ck * sin1  # cos, sin of (k + 1) phi
        if amp:
            f += np.float32(amp * math.cos(ph)) * ck - np.float32(amp * math.sin(ph)) * sk
    for ang, amp, width in zip(cell.lobe_angle, cell.lobe_amp, cell.lobe_width):
        c = cos1 * np.float32(math.cos(ang)) + sin1 * np.float32(math.sin(ang))  # cos(phi - ang)
        f += np.float32(amp) * np.exp((c - np.float32(1.0)) / np.float32(width * width))
    np.maximum(f, np.float32(0.3), out=f)
    scale = np.sqrt(u * u + v * v) / safe  # px per unit of rho along this direction
    edge = (f - rho) * np.where(rho < 1e-3, np.float32(cell.b), scale)
    rho = rho / f
    for angle, length, width in zip(cell.process_angle, cell.process_length, cell.process_width):
        edge, rho = process_geometry(edge, rho, u, v, np.float32(angle), np.float32(length), np.float32(width))
    return edge, rho


def process_geometry(edge: np.ndarray, rho: np.ndarray, u: np.ndarray, v: np.ndarray, angle, length, width):
    """Add one thin process (see :class:`Blob`; the arguments are scalars or arrays that broadcast against
    ``u``, ``v``: (…, Sy, Sx) pixel coordinates in the cells' frames) to a body's ``edge`` (px to the
    boundary, > 0 inside) and ``rho`` (normalised position, 1 on the boundary): where the process reaches
    further from its boundary than the body does, its own distance wins and rho runs from 0.5 on its axis
    to 1 on its edge. Returns the new (edge, rho)."""
    angle = np.asarray(angle, np.float64)  # cos and sin in float64 whatever the shape: the same bits either way
    ca, sa = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
    along = u * ca + v * sa
    foot = np.clip(along, np.float32(0.0), length)
    half = width * (np.float32(1.0) - np.float32(0.6) * foot / np.maximum(length, np.float32(1e-3)))
    own = half - np.hypot(along - foot, v * ca - u * sa)
    wins = own > edge
    rho_own = np.float32(1.0) - np.float32(0.5) * np.clip(own / np.maximum(half, np.float32(1e-3)), 0.0, 1.0)
    return np.where(wins, own, edge), np.where(wins, rho_own, rho)


def _rod_geometry(cell: Rod, u: np.ndarray, v: np.ndarray):
    half = 0.5 * cell.length
    along = np.clip(u, -half, half)
    across = v - cell.bend * along * along
    dist = np.hypot(u - along, across)
    return cell.radius - dist, dist / cell.radius


def draw(cell: Cell, shape: Tuple[int, int], fine: np.ndarray, coarse: np.ndarray) -> Optional[Drawn]:
    """Draw ``cell`` (a Blob or a Rod) into a frame of ``shape`` (H, W); None when it is off the frame.

    fine, coarse: (N, N) texture fields, N a power of 2 (see :func:`texture_field`), sampled in the
    cell's frame (coarse: generate it with a larger ``sigma``)."""
    h, w = shape
    cy, cx = float(cell.pos[0]), float(cell.pos[1])
    ry, rx = cell.half_box()
    y0, y1 = max(int(math.floor(cy - ry)), 0), min(int(math.ceil(cy + ry)) + 1, h)
    x0, x1 = max(int(math.floor(cx - rx)), 0), min(int(math.ceil(cx + rx)) + 1, w)
    if y0 >= y1 or x0 >= x1:
        return None
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    ca, sa = np.float32(math.cos(cell.theta)), np.float32(math.sin(cell.theta))
    u = dx * ca + dy * sa
    v = dy * ca - dx * sa
    if isinstance(cell, Rod):
        edge, rho = _rod_geometry(cell, u, v)
    else:
        edge, rho = _blob_geometry(cell, u, v)
    inside = edge > 0
    if not inside.any():
        return None
    mask = fine.shape[0] - 1  # the fields are 2^k on a side: "& mask" is a cheap modulo, also below 0
    scale = np.float32(cell.tex_scale)
    iy = (v * scale + np.float32(cell.tex_offset[0])).astype(np.int32) & mask
    ix = (u * scale + np.float32(cell.tex_offset[1])).astype(np.int32) & mask
    texture = 1.0 + np.float32(cell.tex_fine) * fine[iy, ix] + np.float32(cell.tex_coarse) * coarse[iy, ix]
    nucleus = None
    if isinstance(cell, Blob) and cell.nucleus is not None:
        ou, ov, nr = cell.nucleus
        rad = cell.radius
        nucleus = np.hypot(u - ou * rad, (v - ov * rad) * 1.15) / (nr * rad)
    return Drawn((y0, y1, x0, x1), inside, edge.astype(np.float32), rho.astype(np.float32),
                 texture.astype(np.float32), nucleus)

