"""Opening the segmentation widget as the GUI tests do: a viewer with images, the widget docked with the demo model's
embedded weights at a small input size (settings kept in the test's own folder)."""

from __future__ import annotations

from typing import Any, Tuple

WIDGET = ("napari-sam2", "SAM 2 segmentation")


def open_widget(make_napari_viewer: Any, tmp_path: Any, monkeypatch: Any, *images: Tuple[str, Any],
                size: int = 128) -> Tuple[Any, Any]:
    """(viewer, widget): a viewer holding ``images`` ((name, data) pairs) and the widget on the demo model."""
    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    viewer = make_napari_viewer()
    for name, data in images:
        viewer.add_image(data, name=name)
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    widget.model_combo.setCurrentText("demo")
    widget.checkpoint_combo.setCurrentText("embedded (demo)")
    widget.size_spin.setValue(size)
    return viewer, widget


def wait(qtbot: Any, widget: Any, timeout: int = 120_000) -> None:
    """Until the widget's run (if any) has finished."""
    qtbot.waitUntil(lambda: not widget.busy(), timeout=timeout)
