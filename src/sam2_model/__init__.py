"""sam2_model: a PyTorch implementation of SAM 2 / SAM 2.1 that loads Meta's official checkpoints.

    import sam2_model as sm
    model = sm.build_model("sam2.1_hiera_tiny", checkpoint="download", device="auto")
"""

from .automatic import AutomaticMaskGenerator
from .build import CheckpointError, Weights, build_model, identify_preset, list_models, load_checkpoint, resolve_device
from .config import SAM2Config, get_config
from .frames import FrameSource
from .image_predictor import ImagePredictor
from .input_size import estimate_object_diameter, suggest_image_size
from .modeling.sam2 import FrameFeatures, MaskPrediction, MemoryEntry, SAM2Model
from .seeding import blob_points
from .session_state import SessionSnapshot
from .video_session import VideoSession
from .windowed_session import WindowedSession
from .windows import WindowedPredictor, window_side
from .tracking import track_cells

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
