"""sam2_model: a PyTorch implementation of SAM 2 / SAM 2.1 that loads Meta's official checkpoints.

    import sam2_model as sm
    model = sm.build_model("sam2.1_hiera_tiny", checkpoint="download", device="auto")
"""

from .build import CheckpointError, build_model, identify_preset, list_models, load_checkpoint, resolve_device
from .config import SAM2Config, get_config
from .frames import FrameSource
from .image_predictor import ImagePredictor
from .modeling.sam2 import FrameFeatures, MaskPrediction, MemoryEntry, SAM2Model
from .session_state import SessionSnapshot
from .video_session import VideoSession
from .tracking import track_cells

__all__ = [
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
    "build_model",
    "get_config",
    "identify_preset",
    "list_models",
    "load_checkpoint",
    "resolve_device",
    "track_cells",
]
