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
