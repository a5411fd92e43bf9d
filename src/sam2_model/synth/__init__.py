"""Synthetic microscopy-like training data (nuclei, whole cells, bacteria; fluorescence, phase contrast,
brightfield, DIC; natural-image-like clips). See :mod:`sam2_model.synth.microscopy` for the entry points.

Modules: ``shapes`` (cell geometry and drawing), ``population`` (life of the cells), ``modalities`` (image
formation), ``optics`` (blur, illumination, camera noise), ``natural`` (natural-image-like clips),
``microscopy`` (the public generator and the training mix).
"""

from .microscopy import (CELL_SIZE_RANGES, CROWDED_DENSITY_RANGE, CROWDED_NUCLEI_SHARE, CROWDED_SIZE_RANGE, CURRICULA,
                         DIM_RIM_RANGE, DIM_RIM_SHARE, JUMP_RATE_RANGE, JUMP_SHARE, MIX,
                         PROCESS_CHANCE_RANGE, PROCESS_SHARE, SHAPE_CHANGE_RANGES, SPEED_RANGE, SPREAD_CELLS_SHARE,
                         check_curriculum, draw_jump_rate,
                         draw_microscopy_settings, draw_processes, draw_rim, make_microscopy_timelapse,
                         random_microscopy_timelapse)
from .modalities import MODALITIES, STAINS
from .population import CELL_TYPES

__all__ = ["CELL_SIZE_RANGES", "CELL_TYPES", "CROWDED_DENSITY_RANGE", "CROWDED_NUCLEI_SHARE", "CROWDED_SIZE_RANGE",
           "CURRICULA", "DIM_RIM_RANGE", "DIM_RIM_SHARE", "JUMP_RATE_RANGE", "JUMP_SHARE", "MIX",
           "MODALITIES", "PROCESS_CHANCE_RANGE", "PROCESS_SHARE", "SHAPE_CHANGE_RANGES", "SPEED_RANGE", "SPREAD_CELLS_SHARE", "STAINS",
           "check_curriculum", "draw_jump_rate", "draw_microscopy_settings", "draw_processes", "draw_rim", "make_microscopy_timelapse",
           "random_microscopy_timelapse"]
