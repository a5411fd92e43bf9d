"""GEFF (graph exchange format for tracking, zarr-based) through the ``geff`` package.

Nodes are (track, frame) detections with properties t, y, x (centroid), area and track_id; edges join a
track's consecutive detections and a mother's last detection to each daughter's first. The file is
written next to the target and renamed when complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Tuple

import numpy as np

from ..atomic_files import publish_together, temporary_folder
from .lineage import Lineage, track_centroids


def lineage_graph(labels: np.ndarray, lineage: Lineage):
    """networkx DiGraph of a tracking result (labels (T, H, W), lineage); node ids are 0..N-1 ints."""
    import networkx as nx

    graph = nx.DiGraph()
    first: dict = {}
    last: dict = {}
    previous: dict = {}
    for node, (track_id, t, y, x, area) in enumerate(sorted(track_centroids(np.asarray(labels)), key=lambda r: (r[0], r[1]))):
        graph.add_node(node, t=t, y=y, x=x, area=area, track_id=track_id)
        if track_id in previous:
            graph.add_edge(previous[track_id], node)
        previous[track_id] = node
        first.setdefault(track_id, node)
        last[track_id] = node
    for track in lineage.rows():
        if track.parent and track.parent in last and track.track_id in first:
            graph.add_edge(last[track.parent], first[track.track_id])
    return graph


def write_geff(path: os.PathLike, labels: np.ndarray, lineage: Lineage, overwrite: bool = False) -> Path:
    """Write the result as a GEFF zarr folder at ``path`` (e.g. ``tracks.geff``)."""
    import geff

    path = Path(path)
    if path.exists() and not overwrite:
        raise ValueError(f"path {path} exists; pass overwrite=True or choose a new name")
    graph = lineage_graph(labels, lineage)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_folder(path) / path.name  # geff.write makes it with the mode of a plain mkdir() (umask)
    try:
        geff.write(graph, tmp, axis_names=["t", "y", "x"], axis_types=["time", "space", "space"])
        publish_together([(tmp, path)])  # an earlier GEFF is moved aside, and back if the rename fails
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)
    return path


def read_geff(path: os.PathLike) -> Tuple[object, object]:
    """(networkx DiGraph, GeffMetadata) of a GEFF folder."""
    import geff

    return geff.read(Path(path))
