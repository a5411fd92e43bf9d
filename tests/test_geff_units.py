"""GEFF output: physical units and scales on the axes, track metadata (tracklets, lineages), byte-identical reruns.

Every file written is checked with geff's own validators (``geff.validate_structure`` and the tracklet / lineage
data validation of ``geff.read``) and read back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

import geff
import numpy as np
import pytest
from geff.validate.data import ValidationConfig
from geff.validate.tracks import validate_lineages, validate_tracklets

import sam2_model as sm
from lineage_examples import division_stack
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import Lineage, Track, ctc_consistent, read_ctc, track_cells, write_ctc, write_geff

EVERY_CHECK = ValidationConfig(graph=True, tracklet=True, lineage=True)


def division_and_gap() -> Tuple[np.ndarray, Lineage]:
    """CTC-consistent labels (4, 20, 20): track 1 (frames 0-1) divides into 2 and 3 (frames 2-3); track 4 is absent
    on frame 2, so the piece after the gap is track 5 with parent 4 (one daughter: the same tracklet as 4)."""
    return ctc_consistent(*division_stack())


def read_valid(path: Path):
    """(networkx graph, metadata) of a GEFF that passes geff's structure, graph, tracklet and lineage checks."""
    geff.validate_structure(path)
    return geff.read(path, data_validation=EVERY_CHECK)


def axes_of(meta) -> list:
    return [(a.name, a.type, a.unit, a.scale, a.scaled_unit) for a in meta.axes]


def nodes_by_track_and_frame(graph) -> Dict[Tuple[int, int], dict]:
    return {(d["track_id"], d["t"]): d for _, d in graph.nodes(data=True)}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> Tuple[np.ndarray, Lineage]:
    """A real tracking result (demo model, 6 frames of 96 x 96 synthetic nuclei), made CTC-consistent as the CLI and
    batch write it."""
    model = sm.build_model("demo", checkpoint="download")
    clip = make_timelapse(num_frames=6, shape=(96, 96), num_cells=5, seed=900_411)
    result = track_cells(model, clip.image, cell_diameter=(8, 40))
    labels, lineage = ctc_consistent(result.labels, result.lineage)
    assert len(lineage) >= 3
    return labels, lineage


def test_a_calibration_is_written_as_the_axes_scale_and_scaled_unit(tracked, tmp_path: Path) -> None:
    """Before: write_geff had no calibration arguments and wrote every axis with unit, scale and scaled_unit None."""
    labels, lineage = tracked
    plain = write_geff(tmp_path / "plain.geff", labels, lineage)
    path = write_geff(tmp_path / "cal.geff", labels, lineage, scale=(300.0, 0.65, 0.65),
                      units=("second", "micrometer", "micrometer"))  # napari's layer.scale / str(layer.units)
    graph, meta = read_valid(path)
    assert axes_of(meta) == [("t", "time", "frame", 300.0, "second"), ("y", "space", "pixel", 0.65, "micrometer"),
                             ("x", "space", "pixel", 0.65, "micrometer")]
    # node positions stay in frames and pixels: the same nodes as without a calibration
    plain_graph, plain_meta = read_valid(plain)
    assert nodes_by_track_and_frame(graph) == nodes_by_track_and_frame(plain_graph)
    assert axes_of(plain_meta) == [("t", "time", "frame", None, None), ("y", "space", "pixel", None, None),
                                   ("x", "space", "pixel", None, None)]
    assert meta.node_props_metadata["t"].unit == "frame" and meta.node_props_metadata["x"].unit == "pixel"


def test_common_unit_spellings_and_napari_defaults(tmp_path: Path) -> None:
    """ImageJ's "micron", "um", "µm", "s", "min" are written as OME-NGFF names (geff warns on anything else);
    napari's uncalibrated scale 1 / unit "pixel" writes no calibration; a unit alone means a scale of 1."""
    labels, lineage = division_and_gap()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # geff warns about units readers may not know
        path = write_geff(tmp_path / "a.geff", labels, lineage, scale=(5, 0.2, 0.2), units=("min", "micron", "\u00b5m"))
    assert axes_of(read_valid(path)[1]) == [("t", "time", "frame", 5.0, "minute"),
                                            ("y", "space", "pixel", 0.2, "micrometer"),
                                            ("x", "space", "pixel", 0.2, "micrometer")]
    path = write_geff(tmp_path / "b.geff", labels, lineage, scale=(1.0, 1.0, 1.0), units=("pixel",) * 3)
    assert axes_of(read_valid(path)[1]) == [("t", "time", "frame", None, None), ("y", "space", "pixel", None, None),
                                            ("x", "space", "pixel", None, None)]
    path = write_geff(tmp_path / "c.geff", labels, lineage, scale=(None, 2.0, 2.0), units=("s", "um", "um"))
    assert axes_of(read_valid(path)[1]) == [("t", "time", "frame", 1.0, "second"),
                                            ("y", "space", "pixel", 2.0, "micrometer"),
                                            ("x", "space", "pixel", 2.0, "micrometer")]


def test_a_volume_gets_a_z_axis_with_its_own_scale(tmp_path: Path) -> None:
    labels = np.zeros((3, 4, 10, 10), np.uint32)
    labels[:, 1:3, 2:5, 2:5] = 1
    labels[2, 0, 7:9, 7:9] = 2
    path = write_geff(tmp_path / "v.geff", labels, Lineage([Track(1, 0, 2), Track(2, 2, 2)]),
                      scale=(60.0, 2.0, 0.5, 0.5), units=("s", "um", "um", "um"))
    graph, meta = read_valid(path)
    assert axes_of(meta) == [("t", "time", "frame", 60.0, "second"), ("z", "space", "pixel", 2.0, "micrometer"),
                             ("y", "space", "pixel", 0.5, "micrometer"), ("x", "space", "pixel", 0.5, "micrometer")]
    nodes = nodes_by_track_and_frame(graph)
    assert (nodes[(1, 0)]["z"], nodes[(1, 0)]["y"], nodes[(1, 0)]["area"]) == (1.5, 3.0, 18)
    assert (nodes[(2, 2)]["z"], nodes[(2, 2)]["x"]) == (0.0, 7.5)


@pytest.mark.parametrize("scale, units, message", [
    ((1.0, 0.5), None, r"scale must give one entry per axis \(t, y, x\): 3 entries, got 2"),
    (None, ("s", "um"), r"units must give one entry per axis \(t, y, x\): 3 entries, got 2"),
    ((1.0, -0.5, 0.5), None, r"scale: axis y must be a positive finite number or None, got -0.5"),
    ((float("nan"), 0.5, 0.5), None, r"scale: axis t must be a positive finite number or None"),
    ((1.0, "0.5", 0.5), None, r"scale: axis y must be a positive finite number"),
    (None, ("s", "furlong", "um"), r"units: axis y: 'furlong' is not a length unit; use one of micrometer"),
    (None, ("s", "um", "second"), r"units: axis x: 'second' is not a length unit"),
    (None, ("um", "um", "um"), r"units: axis t: 'um' is not a time unit; use one of second"),
])
def test_a_bad_calibration_is_refused_before_anything_is_written(tmp_path: Path, scale, units, message) -> None:
    """Before: write_geff took no scale / units (TypeError); now a clear ValueError naming the axis and what is
    accepted, and nothing is created."""
    labels, lineage = division_and_gap()
    with pytest.raises(ValueError, match=message):
        write_geff(tmp_path / "out" / "t.geff", labels, lineage, scale=scale, units=units)
    assert list(tmp_path.iterdir()) == []


def test_tracklets_and_lineages_are_declared_and_pass_geffs_checks(tmp_path: Path) -> None:
    """Before: track_node_props was null. track_id stays the CTC / table id; GEFF's tracklet (a maximal unbranched
    path) is tracklet_id because the piece after a gap (5, parent 4) continues 4 without a branch: declaring
    track_id itself would fail geff's tracklet check there."""
    labels, lineage = division_and_gap()
    graph, meta = read_valid(write_geff(tmp_path / "t.geff", labels, lineage))
    assert meta.track_node_props == {"tracklet": "tracklet_id", "lineage": "lineage_id"}
    by_track = {d["track_id"]: (d["tracklet_id"], d["lineage_id"]) for _, d in graph.nodes(data=True)}
    assert by_track == {1: (1, 1), 2: (2, 1), 3: (3, 1), 4: (4, 4), 5: (4, 4)}
    nodes = list(graph.nodes)
    assert not validate_tracklets(nodes, list(graph.edges), [graph.nodes[n]["track_id"] for n in nodes])[0]
    assert validate_tracklets(nodes, list(graph.edges), [graph.nodes[n]["tracklet_id"] for n in nodes])[0]
    assert validate_lineages(nodes, list(graph.edges), [graph.nodes[n]["lineage_id"] for n in nodes])[0]


def test_a_real_result_matches_its_ctc_folder_and_passes_geffs_checks(tracked, tmp_path: Path) -> None:
    labels, lineage = tracked
    ctc_labels, ctc_lineage = read_ctc(write_ctc(tmp_path / "res", labels, lineage)[0])
    graph, meta = read_valid(write_geff(tmp_path / "t.geff", labels, lineage, scale=(120.0, 0.5, 0.5),
                                        units=("s", "um", "um")))
    present = {(int(i), t) for t in range(len(ctc_labels)) for i in np.unique(ctc_labels[t]) if i}
    assert set(nodes_by_track_and_frame(graph)) == present
    parents = {(graph.nodes[u]["track_id"], graph.nodes[v]["track_id"]) for u, v in graph.edges
               if graph.nodes[u]["track_id"] != graph.nodes[v]["track_id"]}
    assert parents == {(t.parent, t.track_id) for t in ctc_lineage.rows() if t.parent}
    assert list(meta.node_props_metadata) == ["t", "y", "x", "area", "track_id", "tracklet_id", "lineage_id"]


WRITE_IN_A_NEW_PROCESS = """
import sys
import numpy as np
from sam2_model.tracking import Lineage, Track, write_geff
data = np.load(sys.argv[1])
lineage = Lineage([Track(*map(int, row)) for row in data["rows"]])
write_geff(sys.argv[2], data["labels"], lineage)
"""


def folder_bytes(path: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_identical_runs_give_byte_identical_folders(tracked, tmp_path: Path) -> None:
    """Before: node_props_metadata came in set order, which changes with each process's hash seed, so two runs of
    the same result gave .zattrs that differ (seeds 1 and 2 order them differently). Written here by two processes
    with those seeds and by this one."""
    labels, lineage = tracked
    rows = np.asarray([(t.track_id, t.begin, t.end, t.parent) for t in lineage.rows()], np.int64)
    np.savez(tmp_path / "result.npz", labels=labels, rows=rows)
    folders = []
    for seed in ("1", "2"):
        folder = tmp_path / f"run{seed}.geff"
        subprocess.run([sys.executable, "-c", WRITE_IN_A_NEW_PROCESS, str(tmp_path / "result.npz"), str(folder)],
                       check=True, env={**os.environ, "PYTHONHASHSEED": seed}, timeout=300)
        folders.append(folder_bytes(folder))
    assert ".zattrs" in folders[0] and len(folders[0]) > 5
    assert folders[0] == folders[1]
    assert folders[0] == folder_bytes(write_geff(tmp_path / "here.geff", labels, lineage))


# ---------------------------------------------------------------- where the image lies (napari's layer.translate)
def axis_offsets(meta) -> list:
    return [(a.name, a.offset) for a in meta.axes]


def test_an_offset_is_written_as_the_axes_offset_and_positions_stay_indices(tmp_path: Path) -> None:
    """write_geff(offset=...) is each axis's GEFF ``offset`` (0 or None: none written); node positions unchanged."""
    labels, lineage = division_and_gap()
    graph, meta = read_valid(write_geff(tmp_path / "o.geff", labels, lineage, scale=(60.0, 0.5, 0.5),
                                        units=("s", "um", "um"), offset=(0, 10.0, -5.0)))
    assert axis_offsets(meta) == [("t", None), ("y", 10.0), ("x", -5.0)]
    assert nodes_by_track_and_frame(graph) == nodes_by_track_and_frame(read_valid(write_geff(
        tmp_path / "plain.geff", labels, lineage))[0])


@pytest.mark.parametrize("offset, message", [
    ((0.0, 1.0), r"offset must give one entry per axis \(t, y, x\): 3 entries, got 2"),
    ((0.0, float("nan"), 1.0), r"offset: axis y must be a finite number or None, got nan"),
    ((0.0, 1.0, "2"), r"offset: axis x must be a finite number or None, got '2'"),
    ((True, 1.0, 2.0), r"offset: axis t must be a finite number or None, got True"),
])
def test_a_bad_offset_is_refused_before_anything_is_written(tmp_path: Path, offset, message) -> None:
    labels, lineage = division_and_gap()
    with pytest.raises(ValueError, match=message):
        write_geff(tmp_path / "out" / "t.geff", labels, lineage, offset=offset)
    assert list(tmp_path.iterdir()) == []


def test_a_calibration_refuses_a_bad_origin() -> None:
    from napari_sam2.export import Calibration

    for origin in ((0.0, 1.0), (0.0, float("inf"), 1.0), (0.0, "1", 2.0)):
        with pytest.raises(ValueError, match=r"origin must be three finite numbers \(t, y, x\)"):
            Calibration(origin=origin)


def world_position(node: dict, meta) -> np.ndarray:
    """A node's (t, y, x) as a GEFF reader places it: offset + scale * position along each axis."""
    return np.array([node[a.name] * (a.scale or 1.0) + (a.offset or 0.0) for a in meta.axes])


@pytest.mark.gui
def test_the_panels_geff_lies_where_napari_draws_a_translated_image(make_napari_viewer, qtbot, tmp_path,
                                                                     monkeypatch) -> None:
    """An image layer with scale and translate (e.g. read from an OME-Zarr with a translation): napari draws pixel i
    at translate + scale * i. Before, the GEFF said only the scale (offset None), so every cell read back 10 um too
    high and 5 um too far left of where napari (and the panel's own Tracks layer) shows it."""
    from sam2_model.synthetic import make_timelapse
    from widget_helpers import open_widget, track_all_panel, wait_tracking

    movie = make_timelapse(num_frames=4, shape=(96, 96), num_cells=3, seed=11, divisions=False, enter_leave=False,
                           radius_fraction=0.12)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    layer = viewer.add_image(movie.image, name="cells", scale=(300.0, 0.65, 0.65), translate=(600.0, 10.0, -5.0),
                             units=("s", "um", "um"))
    panel = track_all_panel(widget)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    monkeypatch.setattr("qtpy.QtWidgets.QFileDialog.getSaveFileName", lambda *a, **k: (str(tmp_path / "p.geff"), ""))
    panel.export_buttons["geff"].click()
    qtbot.waitUntil(lambda: panel.worker is None and not widget.busy(), timeout=60_000)
    graph, meta = read_valid(tmp_path / "p.geff")
    assert axis_offsets(meta) == [("t", 600.0), ("y", 10.0), ("x", -5.0)]
    nodes = [d for _, d in graph.nodes(data=True)]
    assert len(nodes) >= 3
    for node in nodes:  # where napari draws the node's pixel position on the layer
        expected = np.asarray(layer.data_to_world((node["t"], node["y"], node["x"])))
        np.testing.assert_allclose(world_position(node, meta), expected, rtol=1e-6)


def test_track_auto_places_its_geff_at_an_ome_zarrs_translation(tmp_path: Path) -> None:
    """An OME-Zarr whose first dataset has a translation: napari places it there; the command line's GEFF offsets
    now say it (before: the scale only, the cells off by the translation)."""
    zarr = pytest.importorskip("zarr")
    from sam2_model.synthetic import make_timelapse
    from napari_sam2.cli import main
    from napari_sam2.file_calibration import read_calibration

    movie = make_timelapse(num_frames=4, shape=(96, 96), num_cells=3, seed=11, divisions=False, enter_leave=False,
                           radius_fraction=0.12)
    group = zarr.open_group(str(tmp_path / "a.ome.zarr"), mode="w")
    group.create_array("0", data=movie.image)
    transforms = [{"type": "scale", "scale": [30.0, 0.2, 0.25]}, {"type": "translation", "translation": [60.0, 10.0, -5.0]}]
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": "t", "type": "time", "unit": "second"}, {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "0", "coordinateTransformations": transforms}]}]
    assert read_calibration(tmp_path / "a.ome.zarr", 0, (1, 2)).origin == (60.0, 10.0, -5.0)
    assert main(["track", str(tmp_path / "a.ome.zarr"), "--auto", "--cell-diameter", "8", "40", "--geff",
                 str(tmp_path / "t.geff"), "--device", "cpu"]) == 0
    _, meta = read_valid(tmp_path / "t.geff")
    assert [(a.name, a.scale, a.offset) for a in meta.axes] == [("t", 30.0, 60.0), ("y", 0.2, 10.0), ("x", 0.25, -5.0)]
    # a broken translation places nothing but keeps the calibration
    transforms[1]["translation"] = [0.0, "ten", 1.0]
    group.attrs["multiscales"] = [{**group.attrs["multiscales"][0], "datasets": [
        {"path": "0", "coordinateTransformations": transforms}]}]
    cal = read_calibration(tmp_path / "a.ome.zarr", 0, (1, 2))
    assert cal.pixel_size == (0.2, 0.25) and cal.origin == (0.0, 0.0, 0.0)
