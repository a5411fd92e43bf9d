"""Exports computed on hand-built labels."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tifffile

from napari_sam2.export import measure, save_labels_tiff, save_table_csv, tracks_data


def test_measurements_tracks_and_files(tmp_path):
    labels = np.zeros((2, 10, 10), np.uint32)
    labels[0, 2:4, 3:7] = 5  # 2 x 4 = 8 px, centroid (2.5, 4.5)
    labels[1, 5:8, 5:8] = 5
    labels[1, 0:1, 0:2] = 9
    image = np.arange(200, dtype=np.float32).reshape(2, 10, 10)
    rows = measure(labels, image, {(0, 5): 3.5})
    assert [(r["frame"], r["obj_id"], r["area"]) for r in rows] == [(0, 5, 8), (1, 5, 9), (1, 9, 2)]
    first = rows[0]
    assert (first["centroid_y"], first["centroid_x"]) == (2.5, 4.5)
    assert (first["bbox_y0"], first["bbox_x0"], first["bbox_y1"], first["bbox_x1"]) == (2, 3, 4, 7)
    assert first["mean_intensity"] == image[0, 2:4, 3:7].mean() and first["object_score"] == 3.5
    assert all(np.isnan(r["check"]) for r in rows)  # not known without a session: NaN, a numeric column
    assert [r["check"] for r in measure(labels, image, check={(1, 9)})] == [0, 0, 1]
    tracks = tracks_data(rows)
    np.testing.assert_array_equal(tracks[:, :2], [[5, 0], [5, 1], [9, 1]])
    save_table_csv(rows, tmp_path / "t.csv")
    with open(tmp_path / "t.csv") as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == 3 and list(written[0])[-1] == "check"
    save_labels_tiff(labels, tmp_path / "l.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "l.tif"), labels)


def test_a_failed_or_stopped_table_write_keeps_the_earlier_file(tmp_path):
    """The CSV was written in place: a row that fails half-way left a truncated table instead of the earlier one."""
    labels = np.zeros((3, 10, 10), np.uint32)
    labels[:, 2:5, 2:5] = 4
    rows = measure(labels)
    path = tmp_path / "t.csv"
    path.write_text("the earlier table\n")
    with pytest.raises(ValueError, match="fields not in fieldnames"):
        save_table_csv(rows + [{**rows[0], "not a column": 1}], path)
    assert path.read_text() == "the earlier table\n" and [p.name for p in tmp_path.iterdir()] == ["t.csv"]

    from napari_sam2.export import FrameTable, frame_table_steps

    # a worker's steps, stopped (cancelled) after frame 1
    steps = frame_table_steps(FrameTable(3, lambda t: labels[t]), path)
    assert [next(steps) for _ in range(3)] == [("plan", 3, "", None), ("frame", 0, 1, None), ("frame", 1, 2, None)]
    steps.close()
    assert path.read_text() == "the earlier table\n" and [p.name for p in tmp_path.iterdir()] == ["t.csv"]

    assert list(frame_table_steps(FrameTable(3, lambda t: labels[t]), path))[-1] == ("written", 3, str(path), None)
    with open(path) as handle:
        assert [(int(r["frame"]), int(r["obj_id"])) for r in csv.DictReader(handle)] == [(0, 4), (1, 4), (2, 4)]


def test_the_tables_scaled_positions_start_at_the_calibrations_origin():
    """The scaled centroid and time columns are where napari draws the pixel: origin + size * index (a layer's
    translate, an OME-Zarr's translation), as the GEFF's axes say; no origin: as before."""
    from napari_sam2.export import Calibration

    row = {"frame": 2, "area": 4, "centroid_y": 3.0, "centroid_x": 5.0}
    placed = Calibration((0.5, 0.25), "um", 30.0, "s", origin=(60.0, 10.0, -5.0)).columns(row)
    assert (placed["time"], placed["centroid_y_scaled"], placed["centroid_x_scaled"]) == (120.0, 11.5, -3.75)
    plain = Calibration((0.5, 0.25), "um", 30.0, "s").columns(row)
    assert (plain["time"], plain["centroid_y_scaled"], plain["centroid_x_scaled"]) == (60.0, 1.5, 1.25)
