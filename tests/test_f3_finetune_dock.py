"""Docking "SAM 2 fine-tuning" does not freeze napari importing torch: the widget's module, its form's defaults and the
checks it makes when Train is pressed (run folder, held-out frames, finite frames, the run it would resume, the demo
weights' file) come from torch-free modules; the training loop, and torch with it, is imported in the run's worker
thread (docking took 7.6-10.2 s on a loaded machine with torch, 2.1-2.6 s without).

Each check runs in a fresh interpreter (what the test process imported does not count), with the test's own napari
and napari-sam2 settings files.
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
    """``code`` in a fresh interpreter (the test's settings files); its stdout lines."""
    env = {**os.environ, "NAPARI_CONFIG": str(tmp_path / "napari_settings.yaml"),
           "NAPARI_SAM2_SETTINGS": str(tmp_path / "settings.json")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()


def test_the_checks_before_a_run_load_no_torch_and_stay_the_loops(tmp_path):
    """Fault: the fine-tuning defaults and the run-folder checks lived in ``sam2_model.train.loop``, the held-out frames'
    parser beside the model's code, the frame checks in the clips' module: all imported torch. Now they load without
    it, with the frame options a segmentation widget passes on (a run saved before them differs in them), and ``loop``
    and ``data`` still offer the same objects."""
    code = ("import sys\n"
            "from sam2_model.train import fine_tuning_warmup\n"
            "from sam2_model.train.frame_options import FrameOptions, check_finite_frames\n"
            "from sam2_model.train.hold_out import parse_frame_range, split_off\n"
            "from sam2_model.train.run_folder import check_run_folder, run_differences, run_is_finished, run_warmup\n"
            "from sam2_model.train.settings import FINE_TUNING_LR, TrainSettings, embedded_weights_file\n"
            "from sam2_model.train.stack_check import StackCheck\n"
            f"out = {str(tmp_path / 'run')!r}\n"
            "settings = TrainSettings(out=out, init=str(embedded_weights_file()), steps=200, lr=FINE_TUNING_LR,\n"
            "                         warmup_steps=fine_tuning_warmup(200), smooth=1.5, invert=True, hold_out='2-3')\n"
            "check_run_folder(__import__('pathlib').Path(out))\n"
            "print(settings.warmup_steps, settings.hold_out, FrameOptions.of(settings).words(),\n"
            "      run_warmup(__import__('pathlib').Path(out)), run_differences({'lr': 1e-4}, settings))\n"
            "print('torch' in sys.modules)\n"
            "from sam2_model import build\n"
            "from sam2_model.train import data, loop\n"
            "print(embedded_weights_file() == build.embedded_weights_path(), loop.FINE_TUNING_LR,\n"
            "      loop.fine_tuning_warmup is fine_tuning_warmup, loop.run_warmup is run_warmup,\n"
            "      loop.check_run_folder is check_run_folder, data.check_finite_frames is check_finite_frames,\n"
            "      data.FrameOptions is FrameOptions, loop.run_is_finished is run_is_finished)\n")
    lines = run_probe(code, tmp_path)
    assert lines == ["50 2-3 smoothed by 1.5 px, inverted None [('smooth', 0.0, 1.5), ('invert', False, True)]", "False",
                     "True 0.0001 True True True True True True"], lines


pytest.importorskip("napari")

TRAIN = """
import builtins, os, sys, threading, time
import napari
from qtpy.QtWidgets import QApplication
from sam2_model.synthetic import make_timelapse

movie = make_timelapse(num_frames=4, shape=(64, 64), num_cells=3, seed=7, radius_fraction=0.12)
viewer = napari.Viewer(show=False)
viewer.add_image(movie.image, name="nuclei")
viewer.add_labels(movie.labels, name="annotations")
_, widget = viewer.window.add_plugin_dock_widget("napari-sam2", "SAM 2 fine-tuning")
print(type(widget).__name__, widget.lr_spin.value(), 'torch' in sys.modules)
widget.image_combo.setCurrentText("nuclei")
widget.labels_combo.setCurrentText("annotations")
widget.picker.model_combo.setCurrentText("demo")
widget.picker.checkpoint_combo.setCurrentText("embedded (demo)")
widget.size_spin.setValue(64)
widget.clip_spin.setValue(2)
widget.steps_spin.setValue(1)
widget.hold_out_edit.setText("3-3")
widget.out_edit.setText(sys.argv[1] if len(sys.argv) > 1 else OUT)
on_main = []
real_import = builtins.__import__

def noting_import(name, globals=None, locals=None, fromlist=(), level=0):
    if name.split(".")[0] == "torch" and level == 0:
        on_main.append(threading.current_thread() is threading.main_thread())
    return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = noting_import
widget.train_button.click()  # the checks, then the worker starts
started = widget.worker is not None
app = QApplication.instance()
deadline = time.time() + 300
while not hasattr(sys.modules.get("sam2_model.train.loop"), "train") and time.time() < deadline:
    app.processEvents()
    time.sleep(0.01)
builtins.__import__ = real_import
print(started, bool(on_main), any(on_main), widget.status.text().startswith("training demo"))
sys.stdout.flush()
os._exit(0)  # (the run itself is the other fine-tuning tests' business)
"""


@pytest.mark.gui
def test_docking_and_train_load_torch_only_in_the_runs_worker(tmp_path):
    """Fault: docking the fine-tuning widget imported the training loop and torch on napari's GUI thread (7.6-10.2 s
    on a loaded machine, with no repaint). Now the docked form (Learning rate 1e-4) loads no torch, and Train with the
    demo model's embedded weights and a held-out frame makes its checks, starts its worker and says so without
    importing torch on the GUI thread: the worker imports it (and the training loop)."""
    lines = run_probe(TRAIN.replace("OUT", repr(str(tmp_path / "run"))), tmp_path)
    assert lines == ["FineTuneWidget 0.0001 False", "True True False True"], lines
