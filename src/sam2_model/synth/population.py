"""A population of cells through time: birth, motion, growth, division, contact, entry and exit.

:func:`simulate` returns the ground-truth labels and the per-pixel physical quantities that the
modalities turn into images: ``body`` (fluorescent content of the whole object), ``membrane`` (a
stain on the boundary) and ``opl`` (optical thickness, for phase contrast, brightfield and DIC). Where
cells overlap, signals add up (as light does) and the nearer cell owns the label. Divisions end the
mother and start two daughters on the next frame (``parents[daughter] = mother``); rods grow and split
along their axis, blobs split along their long axis. Contacts are resolved by pushing apart discs
("beads") laid along each cell, with a tolerated overlap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy.spatial import cKDTree

from .batch import draw_many
from .shapes import HARMONICS, Blob, Cell, Rod, texture_field

__all__ = ["CELL_TYPES", "Population", "PopulationSettings", "simulate"]

CELL_TYPES = ("nuclei", "cells", "rods")
MAPS = ("body", "membrane", "opl")


@dataclass
class PopulationSettings:
    """cell_size: typical object length in px (nuclei/cells: diameter; rods: tip to tip); density:
    fraction of the field covered at the start; overlap: tolerated relative overlap of touching cells;
    speed: random-walk step as a fraction of the cell radius per frame (a cell moves about 0.6 x speed of
    its diameter per frame); shape_change: scales how much blobs turn and change their outline per frame
    (1: slowly; 4: protrusions come and go within a few frames); colony: rods start inside one blob-shaped
    patch (a colony) instead of everywhere; division_rate: per frame per eligible blob; jump_rate: chance per
    frame that a blob (not a rod) leaps ``jump_size`` (low, high) of its diameter in a random direction
    beside its random walk, as fast-crawling cells do between widely spaced frames (0: never); rim (whole cells,
    0..1): the stained thickness of a spread cell's rim relative to its middle (1: even, a flat body with a steep
    edge; 0.15: a thick bright middle fading into a wide, dim lamella, as in flat cells on a substrate);
    processes (whole cells, 0..1): the chance that a cell grows one or two long thin processes (tails, as of
    fibroblasts and mesenchymal stem cells; see :class:`shapes.Blob`)."""

    cell_type: str = "nuclei"
    cell_size: float = 24.0
    density: float = 0.25
    overlap: float = 0.1
    speed: float = 0.06
    shape_change: float = 1.0
    divisions: bool = True
    enter_leave: bool = True
    colony: bool = False
    division_rate: float = 0.02
    debris: int = 0
    max_cells: int = 300
    jump_rate: float = 0.0
    jump_size: Tuple[float, float] = (1.0, 2.5)
    rim: float = 1.0
    processes: float = 0.0


@dataclass
class Population:
    """labels: (T, H, W) int32; maps: name -> (T, H, W) float32 (only those asked for); parents:
    daughter id -> mother id."""

    labels: np.ndarray
    maps: Dict[str, np.ndarray]
    parents: Dict[int, int]


class _World:
    def __init__(self, rng: np.random.Generator, shape: Tuple[int, int], s: PopulationSettings,
                 leap_rng: Optional[np.random.Generator] = None,
                 process_rng: Optional[np.random.Generator] = None) -> None:
        self.rng, self.shape, self.s = rng, shape, s
        self.next_id = 1
        self.parents: Dict[int, int] = {}
        self.drift = rng.normal(0.0, 0.25, 2) if s.enter_leave and s.cell_type != "rods" else np.zeros(2)
        # leaps come from a stream of their own, so the rest of the population draws what it drew without them
        self.leap_rng = leap_rng if s.jump_rate > 0 and s.cell_type != "rods" else None
        # so do thin processes (their presence, shape and changes)
        self.process_rng = None
        if s.processes > 0 and s.cell_type == "cells":
            self.process_rng = process_rng if process_rng is not None else np.random.default_rng(
                int(rng.integers(0, 2**63 - 1)))

    # -- creation --------------------------------------------------------------------------------
    def _common(self, pos, vel, debris=False) -> dict:
        rng = self.rng
        bright = math.exp(rng.uniform(math.log(0.25), 0.0)) if rng.random() < 0.3 else rng.uniform(0.6, 1.0)
        cid = 0
        if not debris:
            cid, self.next_id = self.next_id, self.next_id + 1
        return dict(id=cid, pos=np.asarray(pos, float), vel=np.asarray(vel, float),
                    theta=float(rng.uniform(0, np.pi)), depth=float(rng.random()), bright=bright,
                    height=float(rng.uniform(0.6, 1.0)), tex_offset=tuple(rng.uniform(0, 512, 2)),
                    tex_scale=float(rng.uniform(0.6, 1.6)), tex_fine=float(rng.uniform(0.03, 0.2)),
                    tex_coarse=float(rng.uniform(0.03, 0.25)), debris=debris)

    def new_cell(self, pos, vel, size: float, debris: bool = False) -> Cell:
        rng, kind = self.rng, self.s.cell_type
        common = self._common(pos, vel, debris)
        if kind == "rods" and not debris:
            aspect = rng.uniform(2.0, 4.5)
            radius = max(1.2, 0.5 * size / aspect)
            length = max(0.0, size * rng.uniform(0.55, 1.0) - 2 * radius)
            cell = Rod(**common, length=length, radius=radius, bend=float(rng.normal(0.0, 0.004 / radius)))
            cell.div_length = (size - 2 * radius) * rng.uniform(0.95, 1.25)
            cell.growth = rng.uniform(0.02, 0.05)
            return cell
        r = 0.5 * size * math.exp(rng.normal(0.0, 0.18))
        if kind == "nuclei" or debris:
            ecc = rng.uniform(1.0, 1.8)
            amp = rng.uniform(0.0, 0.06 if rng.random() < 0.7 else 0.14, len(HARMONICS)) / np.arange(1, 6) ** 0.5
            lobes = 0
        else:  # whole cells: elongated, concave, with protrusions; a third spindle-shaped (fibroblasts, MSCs)
            spindle = rng.random() < 0.35
            ecc = math.exp(rng.uniform(math.log(3.5), math.log(10.0)) if spindle else rng.uniform(0.0, math.log(3.5)))
            amp = rng.uniform(0.0, 0.22, len(HARMONICS)) / np.arange(1, 6) ** 0.7
            lobes = int(rng.choice([0, 1, 2, 3], p=[0.35, 0.3, 0.2, 0.15]))
        cell = Blob(**common, a=r * math.sqrt(ecc), b=r / math.sqrt(ecc), amp=amp,
                    phase=rng.uniform(0, 2 * np.pi, len(HARMONICS)),
                    lobe_angle=rng.uniform(0, 2 * np.pi, lobes), lobe_amp=rng.uniform(0.3, 1.1, lobes),
                    lobe_width=rng.uniform(0.12, 0.35, lobes))
        if kind == "cells" and not debris:
            cell.nucleus = (float(rng.normal(0, 0.15)), float(rng.normal(0, 0.1)), float(rng.uniform(0.3, 0.5)))
            if self.process_rng is not None:
                self._grow_processes(cell, spindle)
        if debris:
            cell.a, cell.b = cell.a * 0.25, cell.b * 0.25
        return cell

    def _grow_processes(self, cell: Blob, spindle: bool) -> None:
        """With chance ``processes``, one or two long thin tails: from a spindle's ends, along its axis; from
        other cells in any direction; 1.3-4 x the long semi-axis from the centre; 0.05-0.15 x the mean radius wide
        on each side at the base (at most 0.35 x the short semi-axis, at least 0.7 px)."""
        rng = self.process_rng
        if rng.random() >= self.s.processes:
            return
        count = 1 + int(rng.random() < 0.6)
        base = rng.permutation(np.array([0.0, math.pi]))[:count] if spindle else rng.uniform(0, 2 * np.pi, count)
        cell.process_angle = base + rng.normal(0.0, 0.15, count)
        cell.process_length = cell.a * rng.uniform(1.3, 4.0, count)
        cell.process_width = np.maximum(0.7, np.minimum(0.35 * cell.b, cell.radius * rng.uniform(0.05, 0.15, count)))

    def populate(self) -> List[Cell]:
        s, rng = self.s, self.rng
        h, w = self.shape
        probe = [self.new_cell((0, 0), (0, 0), s.cell_size) for _ in range(8)]
        self.next_id = 1
        mean_area = float(np.mean([c.area() for c in probe]))
        count = int(np.clip(round(s.density * h * w / mean_area), 1, 0.85 * s.max_cells))  # room to divide
        if s.colony:
            centre = rng.uniform(0.3, 0.7, 2) * (h, w)
            spread = math.sqrt(count * mean_area / (0.7 * math.pi))  # packed at ~70 % inside the colony
            ang = rng.uniform(0, 2 * np.pi, count)
            rad = spread * np.sqrt(rng.random(count)) * (1 + 0.25 * np.cos(3 * ang + rng.uniform(0, 6)))
            positions = centre + np.stack([rad * np.sin(ang), rad * np.cos(ang)], 1)
        else:
            positions = rng.uniform(0, 1, (count, 2)) * (h, w)
        speed = s.speed * 0.5 * s.cell_size
        cells = [self.new_cell(p, rng.normal(0, speed, 2), s.cell_size) for p in positions]
        if s.cell_type == "rods":  # neighbouring rods align (colonies grow in aligned domains)
            field = texture_field(rng, 64, 6.0)
            for c in cells:
                iy, ix = int(c.pos[0] / h * 63) % 64, int(c.pos[1] / w * 63) % 64
                c.theta = float(field[iy, ix] * 1.2 + rng.normal(0, 0.25))
        for c in cells:
            c.age = int(rng.integers(0, 10))
        for _ in range(6):
            self.relax(cells)
        self.debris = [self.new_cell(rng.uniform(0, 1, 2) * (h, w), rng.normal(0, 0.3, 2),
                                     s.cell_size, debris=True) for _ in range(s.debris)]
        return cells

    # -- mechanics -------------------------------------------------------------------------------
    @staticmethod
    def beads(cells: Sequence[Cell]):
        """Discs along each cell: owner index, centre (y, x), radius, lever (offset from the cell centre)."""
        counts, spans, radii = [], [], []
        for c in cells:
            if isinstance(c, Rod):
                counts.append(min(max(int(math.ceil(c.length / c.radius)) + 1, 2), 8))
                spans.append(0.5 * c.length)
                radii.append(c.radius)
            elif c.a > 1.5 * c.b:
                counts.append(3)
                spans.append(0.55 * c.a)
                radii.append(1.1 * c.b)
            else:
                counts.append(1)
                spans.append(0.0)
                radii.append(c.radius)
        counts_a = np.array(counts)
        owner = np.repeat(np.arange(len(cells)), counts_a)
        start = np.cumsum(counts_a) - counts_a
        j = np.arange(len(owner)) - start[owner]
        frac = np.where(counts_a[owner] > 1, 2.0 * j / np.maximum(counts_a[owner] - 1, 1) - 1.0, 0.0)
        theta = np.array([c.theta for c in cells])
        axis = np.stack([np.sin(theta), np.cos(theta)], 1)
        lever = (frac * np.array(spans)[owner])[:, None] * axis[owner]
        centre = np.array([c.pos for c in cells])[owner] + lever
        return owner, centre, np.array(radii)[owner], lever

    def relax(self, cells: List[Cell]) -> None:
        if len(cells) < 2:
            return
        owner, centre, radius, lever = self.beads(cells)
        tree = cKDTree(centre)
        pairs = tree.query_pairs(r=2 * float(radius.max()), output_type="ndarray")
        if len(pairs) == 0:
            return
        i, j = pairs[:, 0], pairs[:, 1]
        keep = owner[i] != owner[j]
        i, j = i[keep], j[keep]
        d = centre[i] - centre[j]
        dist = np.hypot(d[:, 0], d[:, 1]) + 1e-6
        min_d = (radius[i] + radius[j]) * (1.0 - self.s.overlap)
        hit = dist < min_d
        if not hit.any():
            return
        i, j, d, dist, min_d = i[hit], j[hit], d[hit], dist[hit], min_d[hit]
        push = (np.minimum(0.5 * (min_d - dist), 2.0) / dist)[:, None] * d
        nb, nc = len(centre), len(cells)
        force = np.stack([np.bincount(i, push[:, k], nb) - np.bincount(j, push[:, k], nb) for k in (0, 1)], 1)
        count = np.bincount(owner, minlength=nc).astype(float)
        move = np.stack([np.bincount(owner, force[:, k], nc) for k in (0, 1)], 1) / np.maximum(count, 1.0)[:, None]
        torque = force[:, 0] * lever[:, 1] - force[:, 1] * lever[:, 0]
        arm = (lever**2).sum(1) + radius**2
        turn = np.clip(0.5 * np.bincount(owner, torque / arm, nc) / np.maximum(count, 1.0), -0.15, 0.15)
        for n in np.nonzero(np.abs(move).sum(1) > 0)[0]:
            c = cells[n]
            c.pos = c.pos + 1.2 * move[n]
            if isinstance(c, Rod):
                c.theta += float(turn[n])

    # -- one frame of life -----------------------------------------------------------------------
    def step(self, cells: List[Cell]) -> List[Cell]:
        s, rng = self.s, self.rng
        h, w = self.shape
        speed = s.speed * 0.5 * s.cell_size
        for c in cells + self.debris:
            c.vel = 0.7 * c.vel + rng.normal(0.0, speed * 0.7, 2)
            c.pos = c.pos + c.vel + self.drift
            c.age += 1
            if self.leap_rng is not None and not c.debris and self.leap_rng.random() < s.jump_rate:
                angle = self.leap_rng.uniform(0.0, 2.0 * np.pi)
                c.pos = c.pos + self.leap_rng.uniform(*s.jump_size) * s.cell_size * np.array([math.sin(angle),
                                                                                              math.cos(angle)])
            if isinstance(c, Rod):
                c.vel *= 0.3
                c.length *= math.exp(c.growth)
                c.theta += rng.normal(0, 0.01)
            else:
                k = s.shape_change
                c.theta += rng.normal(0, 0.03 * k)
                c.a *= math.exp(0.003 + rng.normal(0, 0.01 * k))
                c.b *= math.exp(0.003 + rng.normal(0, 0.01 * k))
                c.amp = np.clip(c.amp + rng.normal(0, 0.006 * k, len(c.amp)), 0, 0.3)
                c.phase = c.phase + rng.normal(0, 0.05 * k, len(c.phase))
                c.lobe_amp = np.clip(c.lobe_amp + rng.normal(0, 0.04 * k, len(c.lobe_amp)), 0.0, 1.3)
                c.lobe_angle = c.lobe_angle + rng.normal(0, 0.04 * k, len(c.lobe_angle))
                if len(c.process_length):  # from their own stream: the other draws are those without processes
                    n = len(c.process_length)
                    c.process_angle = c.process_angle + self.process_rng.normal(0, 0.02 * k, n)
                    c.process_length = c.process_length * np.exp(self.process_rng.normal(0, 0.03 * k, n))
        self.relax(cells)
        if s.enter_leave:
            cells = [c for c in cells if -c.extent - 2 < c.pos[0] < h + c.extent + 1
                     and -c.extent - 2 < c.pos[1] < w + c.extent + 1]
        else:
            for c in cells:
                c.pos = np.clip(c.pos, 0, (h - 1, w - 1))
        if s.divisions:
            cells = self.divide(cells)
        if s.enter_leave and s.cell_type != "rods" and rng.random() < 0.1 * max(1.0, len(cells) / 12):
            side = int(rng.integers(4))
            r = 0.5 * s.cell_size
            along = rng.uniform(0, w if side < 2 else h)
            pos = [(-0.6 * r, along), (h - 1 + 0.6 * r, along), (along, -0.6 * r), (along, w - 1 + 0.6 * r)][side]
            vel = [(1.5, 0.0), (-1.5, 0.0), (0.0, 1.5), (0.0, -1.5)][side]
            if len(cells) < s.max_cells:
                cells.append(self.new_cell(pos, np.array(vel) * max(1.0, speed), s.cell_size))
        return cells

    def divide(self, cells: List[Cell]) -> List[Cell]:
        rng = self.rng
        h, w = self.shape
        out: List[Cell] = []
        room = self.s.max_cells - len(cells)
        for c in cells:
            r = c.extent
            inside = r < c.pos[0] < h - 1 - r and r < c.pos[1] < w - 1 - r
            if isinstance(c, Rod):
                ready = c.length >= c.div_length
            else:
                ready = c.age >= 6 and rng.random() < self.s.division_rate
            if not (ready and inside and room > 0):
                out.append(c)
                continue
            room -= 1
            axis = np.array([math.sin(c.theta), math.cos(c.theta)])
            for sign in (1.0, -1.0):
                if isinstance(c, Rod):
                    d = self.new_cell(c.pos, c.vel, 1.0)
                    total = c.length + 2 * c.radius
                    d.radius, d.bend = c.radius, c.bend
                    d.length = max(0.3 * c.radius, 0.5 * total - 2 * c.radius)
                    d.div_length = c.div_length * rng.uniform(0.9, 1.1)
                    d.growth = c.growth * rng.uniform(0.9, 1.1)
                    d.pos = c.pos + sign * 0.25 * total * axis
                    d.theta = c.theta + rng.normal(0, 0.05)
                else:
                    d = self.new_cell(c.pos + sign * 0.45 * c.a * axis, c.vel + sign * 0.5 * axis,
                                      2 * 0.75 * c.radius)
                    d.theta = c.theta + rng.normal(0.0, 0.2)
                    if isinstance(c, Blob) and c.nucleus is None:
                        d.nucleus = None
                d.bright = c.bright * rng.uniform(0.9, 1.1)
                d.depth = c.depth + sign * 1e-3
                d.tex_fine, d.tex_coarse = c.tex_fine, c.tex_coarse
                self.parents[d.id] = c.id
                out.append(d)
        return out


def _render(cells: Sequence[Cell], debris: Sequence[Cell], t: int, labels: np.ndarray,
            maps: Dict[str, np.ndarray], fine: np.ndarray, coarse: np.ndarray, cell_type: str,
            nucleus_factor: float, membrane_width: float, rim: float) -> None:
    """Draw frame ``t``: labels by depth (the nearest cell owns a pixel), signals added up."""
    h, w = labels.shape[1:]
    every = sorted(list(cells) + list(debris), key=lambda c: (c.depth, c.id))  # far first
    drawn = draw_many(every, (h, w), fine, coarse)
    if drawn is None:
        return
    own = drawn.owner
    column = lambda values, dtype=np.float32: np.asarray(values, dtype=dtype)[own]  # noqa: E731 (per pixel)
    labelled = ~column([c.debris for c in every], bool)
    order = np.lexsort((own[labelled], drawn.flat[labelled]))  # by pixel, then from far to near
    flat = drawn.flat[labelled][order]
    if flat.size:  # none when only debris is in view (every cell has left the field)
        nearest = np.r_[flat[1:] != flat[:-1], True]
        ids = np.array([c.id for c in every], dtype=np.int32)
        labels[t].reshape(-1)[flat[nearest]] = ids[own[labelled][order][nearest]]
    edge = np.maximum(drawn.edge, 0.0)
    rho2 = np.clip(1.0 - drawn.rho**2, 0.0, 1.0)
    whole = column([isinstance(c, Blob) and cell_type == "cells" for c in every], bool)  # spread cells
    radius = column([c.radius for c in every])
    in_nucleus = drawn.nucleus < 1.0

    def add(name: str, value: np.ndarray) -> None:
        maps[name][t] += np.bincount(drawn.flat, value, minlength=h * w).reshape(h, w).astype(np.float32)

    if "body" in maps:  # spread cells: thin at the rim, thicker in the middle; nuclei and rods: domes
        spread = (1.0 - np.exp(-edge / np.maximum(1.0, 0.15 * radius))) * np.where(in_nucleus, nucleus_factor, 1.0)
        if rim < 1.0:  # a thick middle over a thin lamella: rim + (1 - rim) (1 - rho^2)^3
            spread = spread * (rim + (1.0 - rim) * rho2**3)
        add("body", column([c.bright for c in every]) * np.where(whole, spread, 0.75 + 0.25 * rho2) * drawn.texture)
    if "membrane" in maps:
        ring = np.exp(-0.5 * (edge / membrane_width) ** 2) + 0.08
        add("membrane", column([c.bright for c in every]) * ring * (0.8 + 0.2 * drawn.texture))
    if "opl" in maps:
        nucleus_bump = np.sqrt(np.clip(1.0 - np.minimum(drawn.nucleus, 2.0) ** 2, 0.0, 1.0))
        spread = 0.55 * (1.0 - np.exp(-edge / np.maximum(1.0, 0.2 * radius))) + 0.45 * nucleus_bump
        add("opl", column([c.height for c in every]) * np.where(whole, spread, np.sqrt(rho2)) * drawn.texture)


def simulate(rng: np.random.Generator, shape: Tuple[int, int], num_frames: int, settings: PopulationSettings,
             needs: Sequence[str] = MAPS, leap_rng: Optional[np.random.Generator] = None,
             process_rng: Optional[np.random.Generator] = None) -> Population:
    """Simulate ``num_frames`` frames of ``shape`` (H, W); ``needs`` names the maps to fill. ``leap_rng`` draws
    the leaps (``settings.jump_rate``), ``process_rng`` the thin processes (``settings.processes``); None: a
    stream seeded from ``rng`` (only when they are on)."""
    if settings.cell_type not in CELL_TYPES:
        raise ValueError(f"cell_type must be one of {CELL_TYPES}, got {settings.cell_type!r}")
    unknown = set(needs) - set(MAPS)
    if unknown:
        raise ValueError(f"needs must name maps among {MAPS}, got {sorted(unknown)}")
    if not 0.0 <= settings.jump_rate <= 1.0:
        raise ValueError(f"jump_rate must be in [0, 1] (a chance per cell and frame), got {settings.jump_rate}")
    if not 0.0 <= settings.processes <= 1.0:
        raise ValueError(f"processes must be in [0, 1] (a chance per whole cell), got {settings.processes}")
    if not 0.0 < settings.rim <= 1.0:
        raise ValueError(f"rim must be in (0, 1] (the rim's thickness relative to the middle), got {settings.rim}")
    if not 0.0 <= settings.jump_size[0] <= settings.jump_size[1]:
        raise ValueError(f"jump_size must be (low, high) diameters with 0 <= low <= high, got {settings.jump_size}")
    h, w = shape
    if leap_rng is None and settings.jump_rate > 0:
        leap_rng = np.random.default_rng(int(rng.integers(0, 2**63 - 1)))
    world = _World(rng, shape, settings, leap_rng, process_rng)
    fine, coarse = texture_field(rng, 128, 0.8), texture_field(rng, 128, 6.0)
    nucleus_factor = rng.uniform(0.25, 1.3)  # cytoplasmic stain: nucleus excluded (< 1) or enriched
    membrane_width = rng.uniform(0.6, 1.4) * max(0.7, settings.cell_size / 40)
    cells = world.populate()
    labels = np.zeros((num_frames, h, w), np.int32)
    maps: Dict[str, np.ndarray] = {name: np.zeros((num_frames, h, w), np.float32) for name in needs}
    for t in range(num_frames):
        if t > 0:
            cells = world.step(cells)
        _render(cells, world.debris, t, labels, maps, fine, coarse, settings.cell_type,
                nucleus_factor, membrane_width, settings.rim)
    return Population(labels, maps, dict(world.parents))
