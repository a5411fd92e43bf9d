"""Automatic cell tracking on top of :class:`sam2_model.VideoSession` (no Qt): detection, propagation,
re-detection, divisions, the lineage table and its CTC / GEFF / CSV / napari Tracks outputs, CTC measures."""

from .ctc_io import read_ctc, write_ctc, write_ctc_ground_truth
from .ctc_metrics import evaluate_ctc
from .detection import MIN_CONTRAST, SEEDINGS, detect_cells, make_detector, mask_contrast
from .geff_io import read_geff, write_geff
from .lineage import Lineage, Track, check_ctc, ctc_consistent, tracks_layer_data, write_track_table
from .matching import detection_f1, entering_recall, match_detections
from .tracker import CellTracker, TrackingResult, finish_divisions, track_cells

__all__ = [
    "MIN_CONTRAST", "SEEDINGS", "CellTracker", "Lineage", "Track", "TrackingResult", "check_ctc", "ctc_consistent", "detect_cells",
    "detection_f1", "entering_recall", "evaluate_ctc", "make_detector", "mask_contrast", "match_detections", "read_ctc", "read_geff",
    "finish_divisions", "track_cells", "tracks_layer_data", "write_ctc", "write_ctc_ground_truth", "write_geff", "write_track_table",
]
