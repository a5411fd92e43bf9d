"""napari-sam2: SAM 2 segmentation and tracking in napari (widgets, layer <-> prompt conversion, CLI)."""

from .api import get_session, get_widget, segment, track_cells
from .batch import batch  # the function; the module stays importable as napari_sam2.batch

__all__ = ["batch", "get_session", "get_widget", "segment", "track_cells"]
