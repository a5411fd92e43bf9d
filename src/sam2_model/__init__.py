"""sam2_model: a PyTorch implementation of SAM 2 / SAM 2.1 that loads Meta's official checkpoints.

    import sam2_model as sm
    model = sm.build_model("sam2.1_hiera_tiny", checkpoint="download", device="auto")

The public names below are imported when first asked for (``sm.build_model``, ``from sam2_model import
VideoSession``), so importing the package, or a light submodule of it (``sam2_model.config``, the ``sam2-train``
command's argument parsing and ``--help``), does not load torch and the model's code.
"""

from __future__ import annotations

from typing import Any, Dict, List

from .threads import quiet_openmp_threads

quiet_openmp_threads()  # before any module of ours loads torch: every import of sam2_model or napari_sam2 passes here

#: each public name and the submodule it lives in
_PUBLIC: Dict[str, str] = {
    "AutomaticMaskGenerator": "automatic",
    "CheckpointError": "build",
    "Weights": "build",
    "build_model": "build",
    "identify_preset": "build",
    "list_models": "build",
    "load_checkpoint": "build",
    "resolve_device": "build",
    "SAM2Config": "config",
    "get_config": "config",
    "FrameSource": "frames",
    "ImagePredictor": "image_predictor",
    "estimate_object_diameter": "input_size",
    "suggest_image_size": "input_size",
    "FrameFeatures": "modeling.sam2",
    "MaskPrediction": "modeling.sam2",
    "MemoryEntry": "modeling.sam2",
    "SAM2Model": "modeling.sam2",
    "blob_points": "seeding",
    "SessionSnapshot": "session_state",
    "VideoSession": "video_session",
    "WindowedSession": "windowed_session",
    "WindowedPredictor": "windows",
    "window_side": "windows",
    "track_cells": "tracking",
}

__all__ = [
    "AutomaticMaskGenerator",
    "CheckpointError",
    "FrameFeatures",
    "FrameSource",
    "ImagePredictor",
    "MaskPrediction",
    "MemoryEntry",
    "SAM2Config",
    "SAM2Model",
    "SessionSnapshot",
    "VideoSession",
    "WindowedPredictor",
    "WindowedSession",
    "Weights",
    "blob_points",
    "build_model",
    "estimate_object_diameter",
    "get_config",
    "identify_preset",
    "list_models",
    "load_checkpoint",
    "resolve_device",
    "suggest_image_size",
    "window_side",
    "track_cells",
]


def __getattr__(name: str) -> Any:
    """A public name of :data:`__all__`, imported from its submodule on first use (then kept here); else a
    submodule by its name (``sm.frames_io``), as the package's former eager imports made many of them attributes."""
    from .lazy import lazy_attribute

    return lazy_attribute(__name__, globals(), name, _PUBLIC)


def __dir__() -> List[str]:
    """The public names with the module's own (tab completion)."""
    return sorted(set(globals()) | set(__all__))
