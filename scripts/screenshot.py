"""The README's screenshot, taken from a real napari window: ``xvfb-run -a python scripts/screenshot.py``.

Opens the sample data, opens the widget through the plugin manifest, clicks three cells of frame 0 as
three objects, propagates forward, shows frame 15 and saves the whole window to docs/screenshot.png.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication

from sam2_model.evaluation import click_point, clickable_objects

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshot.png"


def wait_for(widget, timeout: float = 300.0) -> None:
    app = QApplication.instance()
    start = time.time()
    while widget.busy():
        app.processEvents()
        time.sleep(0.02)
        if time.time() - start > timeout:
            raise TimeoutError("the widget's worker did not finish")
    app.processEvents()


def main() -> int:
    viewer = napari.Viewer(title="napari-sam2")
    viewer.window.resize(1400, 900)
    viewer.open_sample("napari-sam2", "synthetic_nuclei")
    viewer.reset_view()
    _, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 segmentation")
    truth = viewer.layers["ground truth"].data
    wait_for(widget)  # the model loads in a worker
    points = widget.points_layer  # this image's clicks layer ("SAM2 clicks [image name]")
    for obj_id in clickable_objects(truth[0])[:4]:
        x, y = click_point(truth[0] == obj_id)
        points.add([0, y, x])
        wait_for(widget)
        widget.new_object_button.click()
    widget.forward_button.click()
    wait_for(widget)
    viewer.dims.set_current_step(0, 15)
    viewer.layers.selection.active = points
    points.mode = "pan_zoom"
    viewer.reset_view()
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for note in viewer.window._qt_window.findChildren(NapariQtNotification):  # e.g. backend deprecation toasts
        note.close()
    for _ in range(20):
        QApplication.instance().processEvents()
        time.sleep(0.05)
    OUT.parent.mkdir(exist_ok=True)
    viewer.screenshot(str(OUT), canvas_only=False)
    print(f"wrote {OUT}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
