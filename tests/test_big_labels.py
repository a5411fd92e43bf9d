"""Big time-lapses: the labels TIFF, the CTC folder and the GEFF are written a plane at a time, in memory that scales
with one frame (not with the stack), byte for byte as the whole-array writers wrote them; the command line's write
shows its progress and leaves nothing behind when it fails."""

from __future__ import annotations

import hashlib
import re
import tracemalloc
import uuid

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from napari_sam2.export import Calibration, imagej_calibration, labels_ids, save_labels_tiff, tiff_calibration
from napari_sam2.track_export import export_tracking
from sam2_model.tracking import Lineage, Track, TrackingResult, ctc_consistent, read_ctc, write_ctc
from sam2_model.tracking.ctc_io import consistent_labels
from sam2_model.tracking.geff_io import detections
from sam2_model.tracking.lineage import frame_centroids

CAL = Calibration(pixel_size=(0.65, 0.65), length_unit="micrometer", frame_interval=300.0, time_unit="second",
                  origin=(0.0, 3.25, 1.3))


def drifting_cells(frames: int = 40, size: int = 256, cells: int = 12, seed: int = 0) -> np.ndarray:
    """(frames, size, size) uint32: ``cells`` square cells drifting; cell 2 is missing on frames 10-12 (a gap)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((frames, size, size), np.uint32)
    start = rng.integers(20, size - 40, (cells, 2))
    for t in range(frames):
        for k in range(cells):
            if k + 1 == 2 and 10 <= t <= 12:
                continue
            y, x = np.clip(start[k] + t // 4, 0, size - 20)
            labels[t, y:y + 14, x:x + 14] = k + 1
    return labels


def traced_peak(work) -> int:
    """Bytes tracemalloc saw allocated at the peak of ``work()`` over what was allocated before (numpy's arrays are
    traced)."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        work()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()


def test_a_labels_tiff_is_written_a_plane_at_a_time(tmp_path):
    labels = drifting_cells()  # uint32 ids < 65536: an ImageJ hyperstack of uint16 planes
    plane = labels[0].nbytes
    peak = traced_peak(lambda: save_labels_tiff(labels, tmp_path / "l.tif", "TYX", CAL))
    assert peak < 6 * plane, f"{peak / plane:.1f} planes over the labels (a uint16 copy of the stack is 20)"
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "l.tif"), labels)
    big = labels * 10_000  # ids over 65535: the uint32 OME-TIFF
    peak = traced_peak(lambda: save_labels_tiff(big, tmp_path / "big.tif", "TYX", CAL))
    assert peak < 6 * plane, f"{peak / plane:.1f} planes over the labels"
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "big.tif"), big)


@pytest.mark.parametrize("ids", ["imagej", "ome"])
def test_the_planes_written_are_the_bytes_and_metadata_of_the_whole_array(tmp_path, ids):
    labels = drifting_cells(frames=6, size=64) * (1 if ids == "imagej" else 10_000)
    save_labels_tiff(labels, tmp_path / "planes.tif", "TYX", CAL)
    if ids == "imagej":  # what the whole-array writer wrote: a uint16 copy of the stack, ImageJ's calibration
        tifffile.imwrite(tmp_path / "whole.tif", labels.astype(np.uint16), imagej=True, compression="zlib",
                         photometric="minisblack", **imagej_calibration(CAL, "TYX"))
    else:  # the uint32 OME-TIFF, its UUID from the whole array's bytes and its metadata
        arguments = tiff_calibration(CAL, "TYX")
        metadata = arguments.pop("metadata")
        digest = hashlib.sha1(labels.tobytes())
        digest.update(f"{labels.shape}{labels.dtype}{sorted(metadata.items())}".encode())
        metadata["UUID"] = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, digest.hexdigest())}"
        tifffile.imwrite(tmp_path / "whole.tif", labels, compression="zlib", photometric="minisblack",
                         bigtiff=False, metadata=metadata, **arguments)
    assert (tmp_path / "planes.tif").read_bytes() == (tmp_path / "whole.tif").read_bytes()
    with tifffile.TiffFile(tmp_path / "planes.tif") as tif:
        assert tif.series[0].axes == "TYX" and len(tif.pages) == 6
        np.testing.assert_array_equal(tif.asarray(), labels)
        tags = tif.pages[0].tags
        per_unit = 1 / 0.65 if ids == "imagej" else 0.01 / 0.65e-6  # pixels per micron (ImageJ), per cm (OME)
        assert tags["XResolution"].value[0] / tags["XResolution"].value[1] == pytest.approx(per_unit)
        if ids == "imagej":
            assert tif.imagej_metadata["unit"] == "micron" and tif.imagej_metadata["finterval"] == 300.0
            assert tif.imagej_metadata["frames"] == 6 and tif.pages[0].dtype == np.uint16
        else:
            assert "PhysicalSizeX=\"0.65\"" in tif.ome_metadata and 'TimeIncrement="300.0"' in tif.ome_metadata
            assert tif.pages[0].dtype == np.uint32
    again = tmp_path / "again.tif"  # the OME UUID comes from the pixels, hashed a plane at a time: a rerun's bytes
    save_labels_tiff(labels, again, "TYX", CAL)
    assert again.read_bytes() == (tmp_path / "planes.tif").read_bytes()


def test_the_write_reports_its_planes_and_a_failed_one_leaves_nothing(tmp_path):
    labels = drifting_cells(frames=5, size=64)
    seen = []
    save_labels_tiff(labels, tmp_path / "l.tif", "TYX", on_plane=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    output = tmp_path / "old.tif"
    output.write_bytes(b"the previous run's labels")

    def interrupt(done, total):
        if done == 3:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the planes

    with pytest.raises(KeyboardInterrupt):
        save_labels_tiff(labels, output, "TYX", on_plane=interrupt)
    assert output.read_bytes() == b"the previous run's labels"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.tif", "old.tif"]  # no temporary file


def test_labels_ids_counts_without_a_copy_of_the_stack():
    labels = drifting_cells()
    labels[7, 0, 0] = 70_000
    peak = traced_peak(lambda: labels_ids(labels))
    assert labels_ids(labels) == set(range(1, 13)) | {70_000}
    assert peak < 4 * labels[0].nbytes, f"{peak / labels[0].nbytes:.1f} planes (np.unique of the stack: 80)"
    assert labels_ids(labels[0]) == set(range(1, 13))


def test_track_shows_the_write_and_counts_the_objects(tmp_path, capsys, monkeypatch):
    from napari_sam2 import cli
    from sam2_model.evaluation import click_point, clickable_objects
    from sam2_model.synthetic import make_timelapse

    movie = make_timelapse(num_frames=4, shape=(128, 128), seed=900_301)
    ids = clickable_objects(movie.labels[0])[:2]
    rows = ["frame,obj_id,y,x,label"]
    for obj_id in ids:
        x, y = click_point(movie.labels[0] == obj_id)
        rows.append(f"0,{obj_id},{y},{x},1")
    tifffile.imwrite(tmp_path / "stack.tif", movie.image, photometric="minisblack")
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setattr(cli, "WRITE_BAR_DELAY", 0.0)  # a long write's bar, shown at once
    output = tmp_path / "out" / "labels.tif"
    assert cli.main(["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "p.csv"), "-o", str(output),
                     "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert re.search(r"writing labels: 100%.*4/4", captured.err), captured.err
    written = tifffile.imread(output)
    found = set(np.unique(written).tolist()) - {0}
    assert f"{len(found)} object" in captured.out and found <= {int(i) for i in ids}


def gappy_result(frames: int = 30, size: int = 128) -> TrackingResult:
    """Tracks with a gap (2), a division (3 -> 13, 14), a one-pixel speck (ids 20) and an id without a row (15)."""
    labels = drifting_cells(frames, size)
    later = labels[15:]
    later[later == 3] = 0  # 3 divides: it ends on frame 14
    labels[15:, 100:110, 5:15] = 13
    labels[15:, 100:110, 30:40] = 14
    labels[4, 0, 0] = 20
    labels[20:, 60:64, 0:4] = 15
    rows = [Track(i, 0, frames - 1) for i in range(1, 13) if i != 3]
    rows += [Track(3, 0, 14, 0, "divided"), Track(13, 15, frames - 1, 3), Track(14, 15, frames - 1, 3)]
    return TrackingResult(labels=labels, lineage=Lineage(rows))


@pytest.mark.parametrize("min_area", [1, 2])
def test_consistent_labels_are_ctc_consistent_plane_by_plane(min_area):
    result = gappy_result()
    lazy, lineage = consistent_labels(result.labels, result.lineage, min_area=min_area)
    whole, expected = ctc_consistent(result.labels, result.lineage, min_area=min_area)
    assert lineage.rows() == expected.rows()
    np.testing.assert_array_equal(np.asarray(lazy), whole)
    assert [ids.tolist() for ids in lazy.ids] == [sorted(set(np.unique(p).tolist()) - {0}) for p in whole]


@pytest.mark.parametrize("what", ["ctc", "geff"])
def test_ctc_and_geff_exports_hold_a_frame_at_a_time(tmp_path, what):
    export_tracking(gappy_result(frames=30, size=64), what, tmp_path / f"warm.{what}")  # geff's and zarr's imports
    result = gappy_result(frames=40, size=256)
    plane = result.labels[0].nbytes
    peak = traced_peak(lambda: export_tracking(result, what, tmp_path / f"out.{what}"))
    assert peak < 8 * plane, f"{peak / plane:.1f} planes over the labels (a copy of the stack is 40)"
    if what == "ctc":
        labels, lineage = read_ctc(tmp_path / "out.ctc")
        whole, expected = ctc_consistent(result.labels, result.lineage)
        np.testing.assert_array_equal(labels, whole)
        assert lineage.to_array().tolist() == expected.to_array().tolist()


def test_write_ctc_makes_a_result_consistent_without_copying_it(tmp_path):
    result = gappy_result()
    write_ctc(tmp_path / "lazy", result.labels, result.lineage)  # consistent=False: made consistent here
    whole, lineage = ctc_consistent(result.labels, result.lineage)
    write_ctc(tmp_path / "whole", whole, lineage, consistent=True)
    digest = [{p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in (tmp_path / name).iterdir()}
              for name in ("lazy", "whole")]
    assert digest[0] == digest[1]


@pytest.mark.parametrize("shape", [(6, 40, 50), (3, 4, 20, 30), (40, 50)])
def test_geff_detections_are_ndimage_centroids(shape):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 6, shape).astype(np.uint32) * (rng.random(shape) < 0.3)
    stack = labels[None] if labels.ndim == 2 else labels
    expected = []  # scipy's centres of mass, the oracle (frame_centroids and detections share frame_detections)
    for frame, plane in enumerate(stack):
        ids, counts = np.unique(plane[plane != 0], return_counts=True)
        centres = ndimage.center_of_mass(np.ones(plane.shape), plane, ids) if len(ids) else []
        expected += [(int(i), frame, tuple(float(c) for c in centre), int(n))
                     for i, n, centre in zip(ids.tolist(), counts.tolist(), centres)]
    assert frame_centroids(labels) == expected  # by frame, then id
    assert detections(labels) == sorted(expected, key=lambda row: (row[0], row[1]))

