"""Menu commands (Layers > Segment): open the plugin's dock widgets in the current viewer."""

from __future__ import annotations

from typing import Any

import napari

PLUGIN = "napari-sam2"


def open_segmentation_widget(viewer: napari.viewer.Viewer) -> Any:
    """Open (or show) the "SAM 2 segmentation" dock widget."""
    return viewer.window.add_plugin_dock_widget(PLUGIN, "SAM 2 segmentation")[1]


def open_finetune_widget(viewer: napari.viewer.Viewer) -> Any:
    """Open (or show) the "SAM 2 fine-tuning" dock widget."""
    return viewer.window.add_plugin_dock_widget(PLUGIN, "SAM 2 fine-tuning")[1]
