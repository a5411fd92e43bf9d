"""The command line and the scripting API on a synthetic time-lapse with the embedded demo model."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_sam2 import segment
from napari_sam2.cli import main
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model.metrics import region_similarity
from sam2_model.synthetic import make_timelapse


def movie_and_prompts():
    movie = make_timelapse(num_frames=6, shape=(256, 256), seed=900_301)
    ids = clickable_objects(movie.labels[0])[:2]
    clicks = []
    for obj_id in ids:
        x, y = click_point(movie.labels[0] == obj_id)
        clicks.append((0, y, x, 1, obj_id))
    ys, xs = np.nonzero(movie.labels[0] == clickable_objects(movie.labels[0])[2])
    box = (0, ys.min(), xs.min(), ys.max(), xs.max(), 99)
    return movie, clicks, box


def test_cli_track_writes_the_same_labels_as_the_api_and_they_find_the_cells(tmp_path, capsys):
    movie, clicks, box = movie_and_prompts()
    tifffile.imwrite(tmp_path / "stack.tif", movie.image, photometric="minisblack")
    rows = ["frame,obj_id,y,x,label,y1,x1"] + [f"{f},{o},{y},{x},{lab},," for f, y, x, lab, o in clicks]
    rows.append(f"{box[0]},{box[5]},{box[1]},{box[2]},,{box[3]},{box[4]}")
    (tmp_path / "prompts.csv").write_text("\n".join(rows) + "\n")
    code = main(["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "prompts.csv"), "-o",
                 str(tmp_path / "labels.tif"), "--device", "cpu"])
    assert code == 0
    written = tifffile.imread(tmp_path / "labels.tif")
    seen = []
    expected = segment(movie.image, clicks, [box], device="cpu", progress=lambda done, total: seen.append((done, total)))
    assert written.shape == movie.image.shape
    np.testing.assert_array_equal(written, expected)
    assert seen[-1] == (6, 6)  # forward from frame 0 (nothing lies before it)
    assert set(np.unique(expected)) == {0, clicks[0][4], clicks[1][4], 99}
    box_truth = movie.labels[0] == movie.labels[0][int(box[1] + box[3]) // 2, int(box[2] + box[4]) // 2]
    for f, y, x, _, obj_id in clicks:  # the demo model really segments the clicked cells
        assert region_similarity(expected[0] == obj_id, movie.labels[0] == obj_id) > 0.7
    assert region_similarity(expected[0] == 99, box_truth) > 0.6


def test_cli_reports_bad_prompt_files(tmp_path, capsys):
    movie, _, _ = movie_and_prompts()
    tifffile.imwrite(tmp_path / "stack.tif", movie.image, photometric="minisblack")
    (tmp_path / "prompts.csv").write_text("t,id\n1,2\n")
    code = main(["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "prompts.csv"), "-o",
                 str(tmp_path / "out.tif")])
    assert code == 2 and "header must name at least frame,obj_id,y,x" in capsys.readouterr().err
    assert not (tmp_path / "out.tif").exists()
