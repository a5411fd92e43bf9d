"""Opening the plugin does not freeze napari importing torch: docking "SAM 2 segmentation" (and opening its sample
data) imports no torch on napari's GUI thread (it took 1.5 s warm, 6-8 s on a cold disk, with no repaint); torch loads
with the model, in the model picker's worker, when the first click needs it.

Each check runs in a fresh interpreter (what the test process imported does not count), on the display the tests
run on (xvfb-run), with the test's own napari and napari-sam2 settings files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_probe(code: str, tmp_path: Path) -> List[str]:
    """``code`` in a fresh interpreter (the test's settings files, the tests folder importable); its stdout lines."""
    env = {**os.environ, "NAPARI_CONFIG": str(tmp_path / "napari_settings.yaml"),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()


def test_frame_checks_and_their_module_load_no_torch(tmp_path):
    """Fault: ``sam2_model.frames`` imported torch at the top (two ImageNet tensors), so the widget's check_smooth
    imported it. Now the checks load without torch; the ImageNet constants and the model input are as before."""
    code = ("import sys\n"
            "import numpy as np\n"
            "from sam2_model import frames\n"
            "print(frames.check_smooth(1.5), frames.check_contrast_limits((0, 9)), frames.check_invert(True))\n"
            "print('torch' in sys.modules)\n"
            "import torch\n"
            "print(tuple(frames.IMAGENET_MEAN.shape), frames.IMAGENET_STD.flatten().tolist())\n"
            "unit = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(64, 48)\n"
            "expected = (torch.from_numpy(unit)[None].expand(3, -1, -1) - torch.tensor([0.485, 0.456, 0.406])"
            ".view(3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)\n"
            "print(torch.equal(frames.normalise(torch.from_numpy(unit)[None]), expected), "
            "tuple(frames.to_model_input(unit, 32).shape))\n")
    lines = run_probe(code, tmp_path)
    assert lines == ["1.5 (0.0, 9.0) True", "False", "(3, 1, 1) [0.2290000021457672, 0.2240000069141388, "
                     "0.22499999403953552]", "True (3, 32, 32)"], lines


def test_sam2_model_and_tracking_public_names_still_import(tmp_path):
    """The lazy packages keep ``from sam2_model import *`` and ``from sam2_model.tracking import *`` whole."""
    code = ("import sys\n"
            "from sam2_model.tracking import Lineage, SEEDINGS, TrackingResult, tracks_layer_data\n"
            "print('torch' in sys.modules)\n"
            "import sam2_model, sam2_model.tracking as tracking\n"
            "ns = {}\n"
            "exec('from sam2_model import *', ns)\n"
            "exec('from sam2_model.tracking import *', ns)\n"
            "print(sorted(set(sam2_model.__all__) | set(tracking.__all__)) == sorted(k for k in ns if k != '__builtins__'))\n"
            "print(tracking.track_cells is sam2_model.track_cells, tracking.CellTracker.__module__)\n")
    lines = run_probe(code, tmp_path)
    assert lines == ["False", "True", "True sam2_model.tracking.tracker"], lines


pytest.importorskip("napari")

DOCK = """
import sys, time
import numpy as np
import napari
viewer = napari.Viewer(show=False)
viewer.open_sample("napari-sam2", "synthetic_nuclei")
start = time.perf_counter()
dock, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 segmentation")
print("dock seconds", round(time.perf_counter() - start, 2), file=sys.stderr)
print(type(widget).__name__, widget.model_combo.count() > 1, widget.image_combo.currentText())
print('torch' in sys.modules)
viewer.close()
"""


@pytest.mark.gui
def test_docking_the_segmentation_widget_loads_no_torch(tmp_path):
    """Fault: docking the widget (napari's Plugins menu: ``add_plugin_dock_widget``) imported torch on the GUI thread
    (sam2_model.frames, the sessions the controller and the Track all panel imported, the model presets' list), and
    napari froze while the dock opened. Now the sample data and the docked widget, its model list filled, load none."""
    lines = run_probe(DOCK, tmp_path)
    assert lines == ["SegmentationWidget True synthetic nuclei", "False"], lines


CLICK = """
import builtins, sys, threading, time
import numpy as np
import napari
from qtpy.QtWidgets import QApplication
from sam2_model.click_points import click_point
from widget_helpers import small_movie

movie = small_movie(3, 4)
x, y = click_point(movie.labels[0] == 1)
viewer = napari.Viewer(show=False)
viewer.add_image(movie.image, name="cells")
_, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 segmentation")
widget.model_combo.setCurrentText("demo")
widget.checkpoint_combo.setCurrentText("embedded (demo)")
widget.size_spin.setValue(128)
widget.window_combo.setCurrentText("off")
first = []
real_import = builtins.__import__

def noting_import(name, *args, **kwargs):
    if not first and name.split(".")[0] == "torch" and "torch" not in sys.modules:
        first.append(threading.current_thread() is threading.main_thread())
    return real_import(name, *args, **kwargs)

builtins.__import__ = noting_import
widget.points_layer.add(np.array([[0, y, x]], float))  # the click, as napari's Points tool adds it
app = QApplication.instance()
deadline = time.time() + 300
while (widget.busy() or not widget.picker.is_ready()) and time.time() < deadline:
    app.processEvents()
    time.sleep(0.01)
builtins.__import__ = real_import
print(first, widget.status.text().startswith("Done"), int((np.asarray(widget.labels_layer.data[0]) == 1).sum()) > 50)
viewer.close()
"""


@pytest.mark.gui
def test_the_first_click_loads_torch_in_the_model_worker(tmp_path):
    """With the dock open and no torch, the first click loads the model (and torch with it) in the picker's worker
    thread, never on the GUI thread, and the click is segmented."""
    lines = run_probe(CLICK, tmp_path)
    assert lines == ["[False] True True"], lines
