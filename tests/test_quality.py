"""Quality bars of the embedded demo model on held-out synthetic sequences (seeds never used in training).

These run the real inference path (ImagePredictor, VideoSession) with the weights shipped in the package.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sam2_model import build_model
from sam2_model.build import embedded_weights_metadata, embedded_weights_path
from sam2_model.evaluation import (HELD_OUT_SEEDS, clickable_objects, one_click_iou, propagation_j_and_f,
                                 track_clicked_cells)
from sam2_model.synthetic import make_timelapse


@pytest.fixture(scope="module")
def demo_model():
    return build_model("demo", device="cpu")


def test_embedded_weights_are_small_and_documented():
    path = embedded_weights_path()
    assert path.stat().st_size <= 25 * 1024 * 1024
    meta = embedded_weights_metadata()
    for key in ("preset", "config", "stages", "train_seconds", "metrics"):
        assert key in meta, key
    recorded = [stage for stage in meta["stages"] if stage.get("settings") is not None]
    assert recorded, "at least the last stage must be a recorded run"
    assert meta["stages"][-1] is recorded[-1]
    for stage in meta["stages"]:
        if stage.get("settings") is None:  # a stage whose run folder was lost says so
            assert stage["note"]
    # Training clip seeds are seed * 1_000_003 + index with seed >= 1 (SyntheticClips refuses less) ...
    trained = [stage for stage in recorded if not stage["settings"].get("average_of")]  # averages draw no clips
    assert all(stage["settings"]["seed"] >= 1 for stage in trained)
    assert all(stage["steps"] == 0 for stage in recorded if stage not in trained)
    assert all(seed < 1_000_000 for seed in HELD_OUT_SEEDS)  # ... evaluation seeds are below
    assert set(meta["metrics"]["held_out_seeds"]) == set(HELD_OUT_SEEDS)
    json.dumps(meta)


def test_one_click_segments_a_cell(demo_model):
    report = one_click_iou(demo_model)
    print(f"one-click IoU {report.value:.3f} over {report.num_objects} objects; per sequence {report.per_sequence}")
    assert report.num_objects >= 30
    assert report.value >= 0.85


def test_one_click_then_propagate_30_frames(demo_model):
    report = propagation_j_and_f(demo_model, num_frames=30)
    print(f"J&F {report.value:.3f} over {report.num_objects} objects; per sequence {report.per_sequence}")
    assert report.num_objects >= 30
    assert report.value >= 0.75


def test_tracking_clicked_cells_follows_only_those_cells(demo_model):
    """The shared step of every tracking measure: click some cells of frame 0, track them, keep their truth."""
    movie = make_timelapse(num_frames=6, shape=(256, 256), seed=HELD_OUT_SEEDS[0])
    chosen = clickable_objects(movie.labels[0])[:3]
    run = track_clicked_cells(demo_model, movie, chosen)
    assert run.obj_ids == chosen and run.predicted.shape == movie.labels.shape
    assert run.truth.shape == (6, 3) + movie.labels.shape[1:]
    for obj_id in chosen:  # each click lies inside its own cell
        x, y = run.clicks[obj_id]
        assert movie.labels[0, int(round(y)), int(round(x))] == obj_id
    assert set(np.unique(run.predicted)) <= {0, *chosen}  # unclicked cells are never labelled
    assert run.first_frame_iou() >= 0.8
    assert min(score["JF"] for score in run.scores()) >= 0.6
