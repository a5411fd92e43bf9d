"""The fine-tuning widget resumes a run that was killed before it wrote weights.json with the run's own warm-up
(read from last.pt, as the command line does), instead of refusing it for the warm-up its Steps would give."""

from __future__ import annotations

import dataclasses
import json

import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from widget_helpers import open_finetune  # noqa: E402
from sam2_model.train import train  # noqa: E402


def test_train_resumes_a_run_without_weights_json_with_its_own_warmup(make_napari_viewer, qtbot, tmp_path,
                                                                      monkeypatch):
    viewer, widget, movie = open_finetune(make_napari_viewer, tmp_path, monkeypatch, num_cells=3, clip=2)
    run = tmp_path / "run"
    # a run of 2 steps with a warm-up of 5 (the form's other settings and layers) stopped after its first and killed
    # before it wrote weights.json: only last.pt knows its settings
    train(dataclasses.replace(widget.settings(), steps=2, warmup_steps=5), movie.image, movie.labels,
          lambda *_: False)
    (run / "weights.json").unlink()
    widget.steps_spin.setValue(2)
    assert widget.settings().warmup_steps != 5  # the form's warm-up for 2 steps is not the run's
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)
    assert not widget.status.text().startswith("failed"), widget.status.text()
    assert widget.progress.value() == 2 and widget.out_edit.text() == str(run)
    assert json.loads((run / "weights.json").read_text())["settings"]["warmup_steps"] == 5
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 2
