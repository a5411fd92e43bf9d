"""The npe2 manifest: it validates, its sample data opens, and Layers > Segment opens the widgets."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui


def test_manifest_validates_and_declares_everything():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-sam2")
    manifest.validate_imports()  # every python_name resolves
    widgets = {w.display_name for w in manifest.contributions.widgets}
    assert widgets == {"SAM 2 segmentation", "SAM 2 fine-tuning"}
    assert [s.key for s in manifest.contributions.sample_data] == ["synthetic_nuclei"]
    segment_menu = [item.command for item in manifest.contributions.menus["napari/layers/segment"]]
    assert segment_menu == ["napari-sam2.open_segmentation", "napari-sam2.open_finetune"]


def test_sample_data_has_the_time_lapse_and_its_ground_truth(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-sam2", "synthetic_nuclei")
    image, truth = viewer.layers["synthetic nuclei"], viewer.layers["ground truth"]
    assert image.data.shape == truth.data.shape == (30, 256, 256)
    assert image.data.dtype == np.uint16 and truth.__class__.__name__ == "Labels"
    ids_first = set(np.unique(truth.data[0])) - {0}
    assert len(ids_first) >= 8  # many cells, ids consistent through time
    assert ids_first & set(np.unique(truth.data[10]))


def test_layers_segment_menu_opens_the_widgets(make_napari_viewer):
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    app = get_app_model()
    in_menu = {item.command.id for item in app.menus.get_menu("napari/layers/segment") if hasattr(item, "command")}
    assert {"napari-sam2.open_segmentation", "napari-sam2.open_finetune"} <= in_menu
    app.commands.execute_command("napari-sam2.open_segmentation").result()
    app.commands.execute_command("napari-sam2.open_finetune").result()
    docked = set(viewer.window.dock_widgets)
    assert any("SAM 2 segmentation" in name for name in docked)
    assert any("SAM 2 fine-tuning" in name for name in docked)
