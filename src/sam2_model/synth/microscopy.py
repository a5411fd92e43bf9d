"""Seeded synthetic microscopy time-lapses with instance labels, and the training mix that draws them.

``make_microscopy_timelapse(seed, shape, num_frames, modality, cell_type, ...)`` simulates a population
(``population``), forms the image of one modality (``modalities``) and acquires it with a camera
(``optics``); ``modality="natural"`` gives a natural-image-like clip instead (``natural``). The result is
a :class:`sam2_model.synthetic.SyntheticTimelapse` (image, labels, parents) like the nuclei generator's.

``random_microscopy_timelapse(rng, shape, num_frames)`` draws the kind of clip from :data:`MIX` (weights
below) and its free parameters (cell size from ~6 to ~120 px, density, bit depth, ...) from ``rng``.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..synthetic import SyntheticTimelapse
from .modalities import MODALITIES, STAINS, form_image, maps_needed
from .natural import make_natural_clip
from .optics import acquire
from .population import CELL_TYPES, PopulationSettings, simulate

__all__ = ["MIX", "CELL_SIZE_RANGES", "SPEED_RANGE", "SHAPE_CHANGE_RANGES", "JUMP_SHARE", "JUMP_RATE_RANGE",
           "DIM_RIM_SHARE", "DIM_RIM_RANGE", "PROCESS_SHARE", "PROCESS_CHANCE_RANGE", "draw_jump_rate", "draw_rim",
           "SPREAD_CELLS_SHARE", "CROWDED_NUCLEI_SHARE", "CROWDED_SIZE_RANGE", "CROWDED_DENSITY_RANGE", "CURRICULA",
           "check_curriculum", "draw_processes", "make_microscopy_timelapse",
           "draw_microscopy_settings", "random_microscopy_timelapse"]

# (weight, modality, cell_type, stain): the mix drawn by random_microscopy_timelapse. Transmitted-light
# kinds have no stain (None). Weights sum to 1.
MIX: Tuple[Tuple[float, str, str, Optional[str]], ...] = (
    (0.16, "fluorescence", "nuclei", "nuclear"),
    (0.08, "fluorescence", "cells", "cytoplasm"),
    (0.05, "fluorescence", "cells", "membrane"),
    (0.04, "fluorescence", "rods", "cytoplasm"),
    (0.02, "fluorescence", "rods", "membrane"),
    (0.12, "phase", "cells", None),
    (0.12, "phase", "rods", None),
    (0.04, "phase", "nuclei", None),  # round cells (e.g. in suspension)
    (0.07, "brightfield", "cells", None),
    (0.03, "brightfield", "rods", None),
    (0.07, "dic", "cells", None),
    (0.03, "dic", "nuclei", None),
    (0.02, "dic", "rods", None),
    (0.15, "natural", "", None),
)

# cell_type -> (smallest, largest) typical object length in px, drawn log-uniformly (magnification)
CELL_SIZE_RANGES: Dict[str, Tuple[float, float]] = {"nuclei": (8.0, 80.0), "cells": (16.0, 120.0),
                                                    "rods": (6.0, 30.0)}
# (lowest, highest) fraction of the field covered at the start, drawn log-uniformly: from sparse fields (the CTC
# Fluo-C2DL-MSC cells cover 5 %) to confluent ones
_DENSITY_RANGES = {"nuclei": (0.04, 0.4), "cells": (0.03, 0.6), "rods": (0.1, 0.7)}
# Motion, drawn log-uniformly per clip: a cell moves about 0.6 x speed of its diameter per frame, so from
# ~1 % (a short frame interval) to ~35 % (cells that crawl far between frames: on the CTC Fluo-C2DL-MSC
# time-lapse the median is 15 %, the 90th percentile 60 %). shape_change: how fast blobs change outline.
SPEED_RANGE: Tuple[float, float] = (0.02, 0.6)
SHAPE_CHANGE_RANGES: Dict[str, Tuple[float, float]] = {"nuclei": (1.0, 2.0), "cells": (1.0, 4.0), "rods": (1.0, 1.0)}
# Far leaps on top of the random walk: four cells of Fluo-C2DL-MSC leap 48-84 px between some frames (1.2-2.5 cell
# widths; their tracking markers on the two frames overlap with IoU 0-0.54), and no embedded weights followed
# them. A share of the nuclei/cells clips (JUMP_SHARE) gets a per-frame leap chance drawn log-uniformly from
# JUMP_RATE_RANGE; each leap covers 1 to 2.5 equivalent diameters. Drawn from streams of their own (seeded by the
# clip's seed), so the clips without leaps are exactly those of before leaps existed.
JUMP_SHARE = 0.3
JUMP_RATE_RANGE: Tuple[float, float] = (0.03, 0.25)
_JUMP_DRAW_STREAM, _LEAP_STREAM = 0x1EA7, 0x1EA8  # second words of the seeds of those streams
# How a spread cell's stain fades towards its boundary. Whole cells of even thickness put 9-11 % of their area below
# a quarter of their middle's brightness (over the background); the flat cells of Fluo-C2DL-MSC put 49 % there
# (median over its 112 segmented cells: a bright middle fading into a wide dim lamella), and the embedded weights,
# clicked on them, marked the bright middle only (precision 0.88, recall 0.53). A share of the whole-cell clips
# (DIM_RIM_SHARE) gets a rim thinner than the middle (`rim`, drawn log-uniformly from DIM_RIM_RANGE), from a stream
# of its own seeded by the clip's seed, so the other clips are exactly those of before.
DIM_RIM_SHARE = 0.5
DIM_RIM_RANGE: Tuple[float, float] = (0.05, 0.6)
_RIM_STREAM = 0x1EA9
# Long thin processes: the spindle-shaped cells of Fluo-C2DL-MSC trail tails several body lengths long and a few px
# wide, which their segmentation ground truth includes and the embedded weights left out. A share of the whole-cell
# clips (PROCESS_SHARE) gives each cell a chance, uniform in PROCESS_CHANCE_RANGE, of one or two tails
# (population._World._grow_processes), drawn from streams of their own so that the other clips, and the rest of
# these, are those of before.
PROCESS_SHARE = 0.5
PROCESS_CHANCE_RANGE: Tuple[float, float] = (0.3, 1.0)
_PROCESS_DRAW_STREAM, _PROCESS_STREAM = 0x1EAA, 0x1EAB
# The spread-cells curriculum (`--data spread-cells`): fluorescent whole cells, where dim rims and tails are drawn,
# raised from 8 % of the mix to this share
SPREAD_CELLS_SHARE = 0.4
# The crowded-nuclei curriculum (`--data crowded-nuclei`): real widefield nuclei (the stardist example image of the
# 2018 Data Science Bowl set: 125 nuclei ~24 px wide on 512 x 512, a fifth of the field covered, many touching) got
# one-click IoU 0.55 from the embedded weights at 256 px input and 0.35 at 512, and the mix's own fluorescent nuclei
# of that size 0.60 at density 0.1 and 0.45 at 0.3 (256 px): clicked masks spread over the neighbours. The mix draws such fields rarely
# (16 % nuclei clips, sizes 8-80 px and densities 0.04-0.4 log-uniform). This curriculum gives CROWDED_NUCLEI_SHARE
# of the clips to fluorescent nuclei of CROWDED_SIZE_RANGE px at CROWDED_DENSITY_RANGE (both log-uniform); the
# rest are drawn as in the spread-cells curriculum, so the flat cells it taught stay in the diet.
CROWDED_NUCLEI_SHARE = 0.4
CROWDED_SIZE_RANGE: Tuple[float, float] = (8.0, 48.0)
CROWDED_DENSITY_RANGE: Tuple[float, float] = (0.15, 0.45)
# the ways the mix can be drawn (`--data` of sam2_model.train besides the original "nuclei")
CURRICULA: Tuple[str, ...] = ("mix", "leaps", "spread-cells", "crowded-nuclei")
_DEFAULT_STAIN = {"nuclei": "nuclear", "cells": "cytoplasm", "rods": "cytoplasm"}


def _check(modality: str, cell_type: str, stain: Optional[str], dtype: str, shape, num_frames: int,
           clutter: Optional[bool] = None) -> None:
    if modality not in MODALITIES + ("natural",):
        raise ValueError(f"modality must be one of {MODALITIES + ('natural',)}, got {modality!r}")
    if modality != "natural" and cell_type not in CELL_TYPES:
        raise ValueError(f"cell_type must be one of {CELL_TYPES}, got {cell_type!r}")
    if stain is not None and stain not in STAINS:
        raise ValueError(f"stain must be one of {STAINS} or None, got {stain!r}")
    if stain == "nuclear" and cell_type != "nuclei":
        raise ValueError(f"stain='nuclear' labels nuclei: use cell_type='nuclei' (got {cell_type!r}), "
                         "or stain 'cytoplasm'/'membrane' for whole cells and rods")
    if dtype not in ("uint8", "uint16"):
        raise ValueError(f"dtype must be 'uint8' or 'uint16', got {dtype!r}")
    if len(shape) != 2 or min(int(shape[0]), int(shape[1])) < 32:
        raise ValueError(f"shape must be (H, W) with both at least 32, got {tuple(shape)}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if clutter is not None and not isinstance(clutter, (bool, np.bool_)):
        raise ValueError(f"clutter must be True, False or None (drawn), got {clutter!r}")


def make_microscopy_timelapse(
    seed: int,
    shape: Tuple[int, int] = (256, 256),
    num_frames: int = 8,
    modality: str = "fluorescence",
    cell_type: str = "nuclei",
    stain: Optional[str] = None,
    cell_size: Optional[float] = None,
    density: Optional[float] = None,
    dtype: str = "uint16",
    divisions: bool = True,
    enter_leave: bool = True,
    overlap: Optional[float] = None,
    debris: Optional[int] = None,
    clutter: Optional[bool] = None,
    speed: Optional[float] = None,
    shape_change: Optional[float] = None,
    jump_rate: Optional[float] = None,
    rim: Optional[float] = None,
    processes: Optional[float] = None,
) -> SyntheticTimelapse:
    """A (T, H, W) time-lapse of ``cell_type`` ('nuclei', 'cells' with a nucleus inside, 'rods') seen in
    ``modality`` ('fluorescence', 'phase', 'brightfield', 'dic'; or 'natural' for a natural-image-like
    clip, which ignores the cell arguments and is always uint8).

    stain (fluorescence only): 'nuclear' (nuclei), 'cytoplasm' or 'membrane'; None: the cell type's usual.
    cell_size: typical object length in px (diameter; rods tip to tip); None: drawn log-uniformly from
    CELL_SIZE_RANGES (capped at 0.45 x the shorter side). density: fraction of the field covered at the start; None: drawn. overlap:
    tolerated overlap of touching cells (0..0.5); None: drawn. debris: unlabelled particles; None: drawn.
    clutter (fluorescence): static out-of-focus objects and specks beside the cells; None: drawn (70 %).
    speed: random-walk step as a fraction of the cell radius per frame (0..2; a cell moves ~0.6 x speed of its
    diameter per frame); None: drawn log-uniformly from SPEED_RANGE. shape_change: >= 0, how fast blobs turn
    and change outline (1: slowly, 4: protrusions come and go within frames); None: drawn from
    SHAPE_CHANGE_RANGES. jump_rate (nuclei and cells; 0..1): chance per frame that a cell leaps 1 to 2.5 of its
    diameter besides its random walk; None: drawn (0 for most clips, see JUMP_SHARE; always 0 for rods).
    rim (whole cells; 0..1): a spread cell's stained thickness at its rim relative to its middle (1: even; 0.15:
    a bright middle fading into a wide dim lamella); None: drawn (see DIM_RIM_SHARE).
    processes (whole cells; 0..1): the chance that a cell has one or two long thin tails; None: drawn (see
    PROCESS_SHARE; always 0 for nuclei and rods).
    Labels: int32, 0 = background, ids stable through time; parents: daughter id -> mother id (a
    daughter's first frame follows its mother's last). Deterministic for a given seed.
    """
    shape = (int(shape[0]), int(shape[1]))
    _check(modality, cell_type, stain, dtype, shape, num_frames, clutter)
    rng = np.random.default_rng(seed)
    if modality == "natural":
        image, labels, parents = make_natural_clip(rng, shape, num_frames)
        return SyntheticTimelapse(image=image, labels=labels, parents=parents)
    if cell_size is None:  # the largest cells take at most ~45 % of a small frame
        low, high = CELL_SIZE_RANGES[cell_type]
        high = max(low, min(high, 0.45 * min(shape)))
        cell_size = math.exp(rng.uniform(math.log(low), math.log(high)))
    if not 4.0 <= cell_size <= 0.6 * min(shape):
        raise ValueError(f"cell_size must be between 4 px and 0.6 x the shorter side ({0.6 * min(shape):.0f} px), "
                         f"got {cell_size}")
    if density is None:
        density = math.exp(rng.uniform(*np.log(_DENSITY_RANGES[cell_type])))
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    if overlap is None:
        overlap = rng.uniform(0.0, 0.25)
    if not 0.0 <= overlap <= 0.5:
        raise ValueError(f"overlap must be in [0, 0.5], got {overlap}")
    if debris is None:
        debris = int(rng.integers(0, 6))
    speed_draw = math.exp(rng.uniform(math.log(SPEED_RANGE[0]), math.log(SPEED_RANGE[1])))
    speed = speed_draw if speed is None else float(speed)
    if not 0.0 <= speed <= 2.0:
        raise ValueError(f"speed must be in [0, 2] (a fraction of the cell radius per frame), got {speed}")
    low, high = SHAPE_CHANGE_RANGES[cell_type]
    change_draw = math.exp(rng.uniform(math.log(low), math.log(high)))
    shape_change = change_draw if shape_change is None else float(shape_change)
    if not 0.0 <= shape_change <= 10.0:
        raise ValueError(f"shape_change must be in [0, 10], got {shape_change}")
    jump_rate = draw_jump_rate(seed, cell_type) if jump_rate is None else float(jump_rate)
    rim = draw_rim(seed) if rim is None else float(rim)
    processes = draw_processes(seed, cell_type) if processes is None else float(processes)
    if not 0.0 <= processes <= 1.0:
        raise ValueError(f"processes must be in [0, 1] (a chance per whole cell), got {processes}")
    if processes > 0 and cell_type != "cells":
        raise ValueError(f"processes (thin tails) apply to whole cells ('cells'), not {cell_type!r}: use 0 or None")
    if not 0.0 < rim <= 1.0:
        raise ValueError(f"rim must be in (0, 1] (the rim's thickness relative to the middle), got {rim}")
    if not 0.0 <= jump_rate <= 1.0:
        raise ValueError(f"jump_rate must be in [0, 1] (a chance per cell and frame), got {jump_rate}")
    if jump_rate > 0 and cell_type == "rods":
        raise ValueError("jump_rate applies to nuclei and cells; rods (bacteria) do not leap: use 0 or None")
    stain = stain or _DEFAULT_STAIN[cell_type]
    settings = PopulationSettings(
        cell_type=cell_type, cell_size=float(cell_size), density=float(density), overlap=float(overlap),
        speed=speed, shape_change=shape_change, divisions=divisions, enter_leave=enter_leave,
        colony=cell_type == "rods" and rng.random() < 0.5, division_rate=float(rng.uniform(0.0, 0.04)),
        debris=int(debris), max_cells=int(300 * max(1.0, shape[0] * shape[1] / 65536.0)), jump_rate=jump_rate,
        rim=rim, processes=processes,
    )
    needs = maps_needed(modality, stain) if modality == "fluorescence" else maps_needed(modality, "")
    population = simulate(rng, shape, num_frames, settings, needs, leap_rng=np.random.default_rng([seed, _LEAP_STREAM]),
                          process_rng=np.random.default_rng([seed, _PROCESS_STREAM]))
    expected, photons, read_noise = form_image(modality, population.maps, rng, float(cell_size), clutter)
    image = acquire(rng, expected, photons, dtype, read_noise, offset=float(rng.uniform(50.0, 500.0)))
    return SyntheticTimelapse(image=image, labels=population.labels, parents=population.parents)


def draw_jump_rate(seed: int, cell_type: str) -> float:
    """The clip's leap chance per cell and frame (see JUMP_SHARE), from a stream seeded by ``seed`` alone."""
    if cell_type == "rods":
        return 0.0
    rng = np.random.default_rng([int(seed), _JUMP_DRAW_STREAM])
    return 0.0 if rng.random() >= JUMP_SHARE else _leap_chance(rng)


def draw_rim(seed: int) -> float:
    """The clip's rim thickness for spread cells (see DIM_RIM_SHARE), from a stream seeded by ``seed`` alone."""
    rng = np.random.default_rng([int(seed), _RIM_STREAM])
    if rng.random() >= DIM_RIM_SHARE:
        return 1.0
    return math.exp(rng.uniform(math.log(DIM_RIM_RANGE[0]), math.log(DIM_RIM_RANGE[1])))


def draw_processes(seed: int, cell_type: str) -> float:
    """The clip's chance per whole cell of thin processes (see PROCESS_SHARE), from a stream seeded by ``seed``."""
    if cell_type != "cells":
        return 0.0
    rng = np.random.default_rng([int(seed), _PROCESS_DRAW_STREAM])
    return 0.0 if rng.random() >= PROCESS_SHARE else float(rng.uniform(*PROCESS_CHANCE_RANGE))


def _leap_chance(rng: np.random.Generator) -> float:
    """A leap chance per cell and frame, log-uniform in JUMP_RATE_RANGE."""
    return math.exp(rng.uniform(math.log(JUMP_RATE_RANGE[0]), math.log(JUMP_RATE_RANGE[1])))


def _spread_cells_mix() -> List[Tuple[float, str, str, Optional[str]]]:
    """MIX with the fluorescent whole cells (cytoplasmic stain) at SPREAD_CELLS_SHARE of all clips, first, and
    the other kinds in their MIX proportions after them."""
    focus = ("fluorescence", "cells", "cytoplasm")
    rest = [m for m in MIX if tuple(m[1:]) != focus]
    total = sum(m[0] for m in rest)
    return [(SPREAD_CELLS_SHARE,) + focus] + [((1 - SPREAD_CELLS_SHARE) * m[0] / total,) + tuple(m[1:]) for m in rest]


def check_curriculum(curriculum: Any) -> str:
    """``curriculum`` if it is one of :data:`CURRICULA`, else ValueError naming them."""
    if curriculum not in CURRICULA:
        raise ValueError(f"curriculum must be one of {CURRICULA}, got {curriculum!r}")
    return curriculum


def _log_uniform(rng: np.random.Generator, bounds: Tuple[float, float]) -> float:
    return math.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1])))


def draw_microscopy_settings(rng: np.random.Generator, curriculum: str = "mix") -> Dict[str, Any]:
    """Keyword arguments of :func:`make_microscopy_timelapse` for one clip of the mix: the kind is drawn
    from :data:`MIX` by weight; 30 % of microscopy clips are uint8; the seed comes from ``rng``.
    curriculum (one of :data:`CURRICULA`): "mix", the plain mix; "leaps", only the nuclei and whole-cell kinds of
    MIX (by their weights), every clip with a leap chance drawn log-uniformly from JUMP_RATE_RANGE (for following
    cells that leap between frames); "spread-cells", the fluorescent whole cells make SPREAD_CELLS_SHARE of the
    clips (the flat cells of the CTC Fluo-C2DL-MSC kind: dim rims and thin tails in their usual shares), the other
    kinds the rest; "crowded-nuclei", CROWDED_NUCLEI_SHARE of the clips fluorescent nuclei of CROWDED_SIZE_RANGE px
    covering CROWDED_DENSITY_RANGE of the field, the rest drawn as for "spread-cells"."""
    check_curriculum(curriculum)
    if curriculum == "crowded-nuclei" and rng.random() < CROWDED_NUCLEI_SHARE:
        return {"seed": int(rng.integers(0, 2**63 - 1)), "modality": "fluorescence", "cell_type": "nuclei",
                "stain": "nuclear", "dtype": "uint8" if rng.random() < 0.3 else "uint16",
                "cell_size": _log_uniform(rng, CROWDED_SIZE_RANGE), "density": _log_uniform(rng, CROWDED_DENSITY_RANGE)}
    if curriculum == "leaps":
        entries = [m for m in MIX if m[2] in ("nuclei", "cells") and m[1] != "natural"]
    else:
        entries = _spread_cells_mix() if curriculum in ("spread-cells", "crowded-nuclei") else list(MIX)
    weights = np.array([m[0] for m in entries])
    _, modality, cell_type, stain = entries[int(rng.choice(len(entries), p=weights / weights.sum()))]
    settings: Dict[str, Any] = {"seed": int(rng.integers(0, 2**63 - 1)), "modality": modality}
    if modality != "natural":
        settings.update(cell_type=cell_type, stain=stain, dtype="uint8" if rng.random() < 0.3 else "uint16")
    if curriculum == "leaps":
        settings["jump_rate"] = _leap_chance(rng)
    return settings


def random_microscopy_timelapse(rng: np.random.Generator, shape: Tuple[int, int] = (256, 256),
                                num_frames: int = 8, curriculum: str = "mix") -> SyntheticTimelapse:
    """One clip of the training mix, drawn as ``curriculum`` says (see :data:`MIX`, :data:`CURRICULA` and
    :func:`draw_microscopy_settings`)."""
    settings = draw_microscopy_settings(rng, curriculum)
    return make_microscopy_timelapse(shape=shape, num_frames=num_frames, **settings)
