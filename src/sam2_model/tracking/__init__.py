"""Automatic cell tracking on top of :class:`sam2_model.VideoSession` (no Qt): detection, propagation,
re-detection, divisions, the lineage table and its CTC / GEFF / CSV / napari Tracks outputs, CTC measures.

The public names below are imported from their submodules when first asked for (PEP 562), so that a light one
(``Lineage``, ``tracks_layer_data``, ``SEEDINGS``, ``TrackingResult``) loads no torch: the plugin's dock opens
without it.
"""

from __future__ import annotations

from typing import Any, Dict, List

#: each public name and the submodule it lives in
_PUBLIC: Dict[str, str] = {
    "read_ctc": "ctc_io", "write_ctc": "ctc_io", "write_ctc_ground_truth": "ctc_io",
    "evaluate_ctc": "ctc_metrics",
    "MIN_CONTRAST": "detection", "SEEDINGS": "detection", "detect_cells": "detection", "make_detector": "detection",
    "mask_contrast": "detection",
    "read_geff": "geff_io", "write_geff": "geff_io",
    "Lineage": "lineage", "Track": "lineage", "check_ctc": "lineage", "ctc_consistent": "lineage",
    "tracks_layer_data": "lineage", "write_track_table": "lineage",
    "detection_f1": "matching", "entering_recall": "matching", "match_detections": "matching",
    "CellTracker": "tracker", "TrackingResult": "tracker", "finish_divisions": "tracker", "track_cells": "tracker",
}

__all__ = [
    "MIN_CONTRAST", "SEEDINGS", "CellTracker", "Lineage", "Track", "TrackingResult", "check_ctc", "ctc_consistent", "detect_cells",
    "detection_f1", "entering_recall", "evaluate_ctc", "make_detector", "mask_contrast", "match_detections", "read_ctc", "read_geff",
    "finish_divisions", "track_cells", "tracks_layer_data", "write_ctc", "write_ctc_ground_truth", "write_geff", "write_track_table",
]


def __getattr__(name: str) -> Any:
    """A public name of :data:`__all__`, imported from its submodule on first use (then kept here); else a
    submodule by its name (``tracking.lineage``)."""
    from ..lazy import lazy_attribute

    return lazy_attribute(__name__, globals(), name, _PUBLIC)


def __dir__() -> List[str]:
    """The public names with the module's own (tab completion)."""
    return sorted(set(globals()) | set(__all__))
