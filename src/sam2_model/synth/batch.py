"""Many cells drawn in one vectorised pass (the same geometry and texture as :func:`shapes.draw`).

Drawing cell by cell costs a few dozen small NumPy calls per cell and frame, which dominates when a
frame holds hundreds of bacteria or small nuclei. Here the small cells of a group get boxes of one
size (the largest in the group; groups are formed by box size so that little is wasted) and every
quantity is computed on (N, Sy, Sx) arrays; large cells keep their own boxes. Only the pixels inside a
cell are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .shapes import HARMONICS, Blob, Cell, Rod, draw, process_geometry

__all__ = ["DrawnMany", "draw_many"]


@dataclass
class DrawnMany:
    """Inside pixels of many cells: owner (index into the cells given), flat (index into the H x W
    frame), edge (px to the boundary), rho (0 centre/spine .. 1 boundary), texture, nucleus
    (normalised nucleus radius, inf for cells without one)."""

    owner: np.ndarray
    flat: np.ndarray
    edge: np.ndarray
    rho: np.ndarray
    texture: np.ndarray
    nucleus: np.ndarray


def _column(values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)[:, None, None]


def _rod_geometry(rods: Sequence[Rod], u: np.ndarray, v: np.ndarray):
    half = _column([0.5 * r.length for r in rods])
    radius = _column([r.radius for r in rods])
    along = np.minimum(np.maximum(u, -half), half)
    across = v - _column([r.bend for r in rods]) * along * along
    dist = np.hypot(u - along, across)
    return radius - dist, dist / radius, np.full(u.shape, np.inf, np.float32)


def _blob_geometry(blobs: Sequence[Blob], u: np.ndarray, v: np.ndarray):
    a, b = _column([c.a for c in blobs]), _column([c.b for c in blobs])
    ru, rv = u / a, v / b
    rho = np.sqrt(ru * ru + rv * rv)
    safe = np.maximum(rho, np.float32(1e-3))
    cos1, sin1 = ru / safe, rv / safe
    f = np.ones_like(rho)
    amp = np.array([c.amp for c in blobs], dtype=np.float64)
    phase = np.array([c.phase for c in blobs], dtype=np.float64)
    ck, sk = cos1, sin1
    for k in range(len(HARMONICS)):
        ck, sk = ck * cos1 - sk * sin1, sk * cos1 + ck * sin1
        f += _column(amp[:, k] * np.cos(phase[:, k])) * ck - _column(amp[:, k] * np.sin(phase[:, k])) * sk
    for lobe in range(max(len(c.lobe_amp) for c in blobs)):
        has = [lobe < len(c.lobe_amp) for c in blobs]
        ang = np.array([c.lobe_angle[lobe] if h else 0.0 for c, h in zip(blobs, has)])
        lamp = _column([c.lobe_amp[lobe] if h else 0.0 for c, h in zip(blobs, has)])
        width = _column([c.lobe_width[lobe] if h else 1.0 for c, h in zip(blobs, has)])
        cosd = cos1 * _column(np.cos(ang)) + sin1 * _column(np.sin(ang))
        f += lamp * np.exp((cosd - np.float32(1.0)) / (width * width))
    np.maximum(f, np.float32(0.3), out=f)
    scale = np.sqrt(u * u + v * v) / safe
    edge = (f - rho) * np.where(rho < 1e-3, b, scale)
    rho = rho / f
    for k in range(max(len(c.process_length) for c in blobs)):
        has = [k < len(c.process_length) for c in blobs]
        if not any(has):
            continue
        angle = _column([c.process_angle[k] if h else 0.0 for c, h in zip(blobs, has)])
        length = _column([c.process_length[k] if h else 0.0 for c, h in zip(blobs, has)])
        width = _column([c.process_width[k] if h else -1.0 for c, h in zip(blobs, has)])  # < 0: never inside
        edge, rho = process_geometry(edge, rho, u, v, angle, length, width)
    nucleus = np.full(u.shape, np.inf, np.float32)
    with_nucleus = [n for n, c in enumerate(blobs) if c.nucleus is not None]
    if with_nucleus:
        ou, ov, nr = (np.array([blobs[n].nucleus[k] for n in with_nucleus]) for k in range(3))
        rad = np.array([blobs[n].radius for n in with_nucleus])
        uu, vv = u[with_nucleus], v[with_nucleus]
        nucleus[with_nucleus] = np.hypot(uu - _column(ou * rad), (vv - _column(ov * rad)) * 1.15) / _column(nr * rad)
    return edge, rho, nucleus


def _draw_group(cells: Sequence[Cell], boxes: np.ndarray, shape: Tuple[int, int], fine: np.ndarray,
                coarse: np.ndarray):
    h, w = shape
    n = len(cells)
    sy, sx = (2 * np.ceil(boxes.max(axis=0)).astype(int) + 2)
    cy = np.array([c.pos[0] for c in cells])
    cx = np.array([c.pos[1] for c in cells])
    yy = (np.floor(cy).astype(np.int64) - sy // 2)[:, None, None] + np.arange(sy)[None, :, None]
    xx = (np.floor(cx).astype(np.int64) - sx // 2)[:, None, None] + np.arange(sx)[None, None, :]
    dy = yy.astype(np.float32) - _column(cy)
    dx = xx.astype(np.float32) - _column(cx)
    theta = np.array([c.theta for c in cells])
    ca, sa = _column(np.cos(theta)), _column(np.sin(theta))
    u = dx * ca + dy * sa
    v = dy * ca - dx * sa
    geometry = _rod_geometry if isinstance(cells[0], Rod) else _blob_geometry
    edge, rho, nucleus = geometry(cells, u, v)
    inside = (edge > 0) & (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
    mask = fine.shape[0] - 1  # the fields are 2^k on a side: "& mask" is a cheap modulo, also below 0
    scale = _column([c.tex_scale for c in cells])
    iy = (v * scale + _column([c.tex_offset[0] for c in cells])).astype(np.int32) & mask
    ix = (u * scale + _column([c.tex_offset[1] for c in cells])).astype(np.int32) & mask
    texture = 1.0 + _column([c.tex_fine for c in cells]) * fine[iy, ix] + \
        _column([c.tex_coarse for c in cells]) * coarse[iy, ix]
    sel = inside.ravel()
    return (np.repeat(np.arange(n), sy * sx)[sel], (yy * w + xx).ravel()[sel], edge.ravel()[sel],
            rho.ravel()[sel], texture.ravel()[sel], nucleus.ravel()[sel])


def _draw_one(cell: Cell, shape: Tuple[int, int], fine: np.ndarray, coarse: np.ndarray):
    one = draw(cell, shape, fine, coarse)
    if one is None:
        return None
    y0, y1, x0, x1 = one.box
    ys, xs = np.nonzero(one.inside)
    nucleus = one.nucleus[one.inside] if one.nucleus is not None else np.full(len(ys), np.inf, np.float32)
    return (np.zeros(len(ys), np.int64), (ys + y0) * shape[1] + xs + x0, one.edge[one.inside],
            one.rho[one.inside], one.texture[one.inside], nucleus)


def draw_many(cells: Sequence[Cell], shape: Tuple[int, int], fine: np.ndarray, coarse: np.ndarray,
              max_waste: float = 1.5, large: float = 24.0) -> Optional[DrawnMany]:
    """Draw ``cells`` (Rods and Blobs, any mix) into a frame of ``shape``; None when no pixel is inside.

    Cells whose box reaches more than ``large`` px from their centre are drawn one by one (their own
    boxes are big enough to keep NumPy busy); the others are grouped by kind and box size (a group's
    largest box side is at most ``max_waste`` times its smallest) and each group is drawn at once."""
    parts = []
    small = []
    boxes = np.array([cell.half_box() for cell in cells]).reshape(len(cells), 2)
    for n, cell in enumerate(cells):
        if boxes[n].max() > large:
            one = _draw_one(cell, shape, fine, coarse)
            if one is not None:
                parts.append((np.full(len(one[0]), n, np.int64), *one[1:]))
        else:
            small.append(n)
    side = {n: float(boxes[n].max()) for n in small}
    groups: List[List[int]] = []
    for n in sorted(small, key=lambda n: (isinstance(cells[n], Rod), side[n])):
        if groups and isinstance(cells[n], Rod) == isinstance(cells[groups[-1][0]], Rod) and \
                side[n] <= max_waste * side[groups[-1][0]]:
            groups[-1].append(n)
        else:
            groups.append([n])
    for group in groups:
        owner, *rest = _draw_group([cells[n] for n in group], boxes[group], shape, fine, coarse)
        parts.append((np.asarray(group)[owner], *rest))
    if not parts or sum(len(p[0]) for p in parts) == 0:
        return None
    return DrawnMany(*(np.concatenate([p[k] for p in parts]) for k in range(6)))
