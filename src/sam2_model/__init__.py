"""sam2_model: a PyTorch implementation of SAM 2 / SAM 2.1 that loads Meta's official checkpoints.

    import sam2_model as sm
    model = sm.build_model("sam2.1_hiera_tiny", checkpoint="download", device="auto")
"""

from .build import CheckpointError, build_model, identify_preset, list_models, load_checkpoint, resolve_device
from .config import SAM2Config, get_config
from .modeling.sam2 import FrameFeatures, MaskPrediction, MemoryEntry, SAM2Model

__all__ = [
    "CheckpointError",
    "FrameFeatures",
    "MaskPrediction",
    "MemoryEntry",
    "SAM2Config",
    "SAM2Model",
    "build_model",
    "get_config",
    "identify_preset",
    "list_models",
    "load_checkpoint",
    "resolve_device",
]
