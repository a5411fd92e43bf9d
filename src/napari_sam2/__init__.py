"""napari-sam2: SAM 2 segmentation and tracking in napari (widgets, layer <-> prompt conversion, CLI)."""

from .api import get_session, get_widget, segment

__all__ = ["get_session", "get_widget", "segment"]
