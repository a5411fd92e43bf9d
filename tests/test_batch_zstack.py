"""Batch runs of volumes (Z, Y, X) read through z, as ``napari-sam2 track`` runs them (tests/test_zstack_edges.py):
"auto" input sizes and object windows are measured on each stack's first prompted slice, not on slice 0 (an empty
slice above the sample, whose noise measures as tiny objects), and automatic tracking through z looks for no
divisions unless --divisions asks (said in the stack's note). The real demo model; one local worker; tiny volumes."""

from __future__ import annotations

import argparse
import csv
import json

import pytest
import tifffile

from napari_sam2._cli_batch import add_batch_parser
from test_zstack_edges import clicks_on, nuclei_volume, spheres_volume

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    """A real LocalCluster of one worker process (as --workers 1 starts), shared by this file's batches."""
    from napari_sam2.batch_cluster import local_cluster

    with local_cluster(1, device="cpu") as cluster, distributed.Client(cluster) as active:
        active.wait_for_workers(1)
        yield active


def _batch(argv: list) -> int:
    parser = argparse.ArgumentParser(prog="napari-sam2")
    add_batch_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["batch", *argv])
    return args.run(args)


def _note(out) -> str:
    with open(out / "summary.csv") as table:
        (row,) = list(csv.DictReader(table))
    assert row["status"] == "ok", row["error"]
    return row["note"]


def test_batch_measures_auto_on_the_prompted_slice(client, tmp_path):
    """Nine ~19 px nuclei from slice 2 on, noise alone on slices 0-1, clicks on slice 3: --image-size auto picks
    the demo's 256 px as track does (slice 0 asked for 512: 4x the pixels, worse masks) and --object-window auto
    measures the same slice (off: the nuclei are not small against it)."""
    image, labels = nuclei_volume()
    tifffile.imwrite(tmp_path / "zyx.tif", image, imagej=True, metadata={"axes": "ZYX"})
    rows = clicks_on(labels, 3)
    (tmp_path / "zyx.csv").write_text("frame,obj_id,y,x,label\n" + "".join(f"{f},{o},{y},{x},{lab}\n"
                                                                       for f, y, x, lab, o in rows))
    out = tmp_path / "out"
    assert _batch([str(tmp_path / "zyx.tif"), "--out", str(out), "--scheduler", client.scheduler.address,
                   "--device", "cpu", "--image-size", "auto", "--direction", "forward"]) == 0
    _note(out)
    manifest = json.loads((out / "zyx" / "manifest.json").read_text())
    assert manifest["image_size"] == 256 and manifest["object_window"] is None, manifest
    assert set(tifffile.imread(out / "zyx" / "labels.tif")[0].ravel()) == {0}  # forward from slice 3 only
    assert set(tifffile.imread(out / "zyx" / "labels.tif")[3].ravel()) == set(range(10))


def test_batch_auto_through_z_looks_for_no_divisions_unless_asked(client, tmp_path, capsys):
    """E3 finding 6 in batch: four spheres tracked through z (axes ZYX) gave "1 division" (a nucleus "divides" going
    up z). Now off, and the stack's note says why; --divisions reruns it (another setting) and finds it again."""
    image, _ = spheres_volume()
    stack = tmp_path / "zyx.tif"
    tifffile.imwrite(stack, image, imagej=True, resolution=(1 / 0.3, 1 / 0.3),
                     metadata={"axes": "ZYX", "spacing": 2.0, "unit": "um"})
    out = tmp_path / "out"
    common = [str(stack), "--out", str(out), "--scheduler", client.scheduler.address, "--device", "cpu", "--auto",
              "--cell-diameter", "20", "60"]
    assert _batch(common) == 0
    note = _note(out)
    assert note.startswith("divisions off: the frames are z slices (the stack's axes ZYX say so)"), note
    assert "--divisions" in note and "divided" not in (out / "zyx" / "tracks.csv").read_text()
    assert json.loads((out / "zyx" / "manifest.json").read_text())["tracking_options"]["divisions"] is False

    capsys.readouterr()
    assert _batch(common + ["--divisions"]) == 0  # asked for: run again (not reused) and looked for
    assert "other settings (divisions)" in capsys.readouterr().err
    assert "divisions off" not in _note(out) and "divided" in (out / "zyx" / "tracks.csv").read_text()
    assert json.loads((out / "zyx" / "manifest.json").read_text())["tracking_options"]["divisions"] is True

    with pytest.raises(SystemExit):  # argparse: not both
        _batch(common + ["--divisions", "--no-divisions"])
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.fixture(scope="module")
def top_empty_zstack(tmp_path_factory):
    """tests/test_input_size.py's volume: (6, 256, 256) ZYX of ~8 px nuclei whose slices 0-2 are empty (background
    noise, or zeros); (folder, the size choice auto makes on each slice)."""
    import numpy as np

    from napari_sam2.image_size import auto_image_size
    from sam2_model.synth.microscopy import make_microscopy_timelapse

    movie = make_microscopy_timelapse(11, shape=(256, 256), num_frames=6, cell_type="nuclei", cell_size=8,
                                      density=0.1, divisions=False, enter_leave=False, dtype="uint8")
    noisy, black = movie.image.copy(), movie.image.copy()
    noisy[:3] = np.clip(np.random.default_rng(0).normal(float(np.median(noisy[0])), 2, noisy[:3].shape), 0,
                        255).astype(np.uint8)
    black[:3] = 0
    folder = tmp_path_factory.mktemp("top_empty")
    for name, stack in (("noisy", noisy), ("black", black)):
        tifffile.imwrite(folder / f"{name}.tif", stack, photometric="minisblack", metadata={"axes": "ZYX"})
    return folder, [auto_image_size(frame, "demo") for frame in noisy]


def test_batch_auto_picks_the_input_size_by_tracks_rule_where_the_top_slices_are_empty(top_empty_zstack):
    """F1's rule for --auto (track --auto, track_cells): "auto" measures the start slice unless it holds too little
    to measure (an empty top slice of a z-stack: noise, or zeros), then the fullest of a few sampled slices. batch
    --auto measured slice 0 alone: 512 px from the noise's "~4.5 px objects" (or the model's size where it found
    none), twice the cells' own input. Now 384 px, measured on slice 3, as track --auto picks it and the same
    choice; a stack whose start slice holds cells is measured there; prompts keep their first prompted frame."""
    from napari_sam2.batch_worker import AxisOptions, ModelSpec, StackTask, open_frames, stack_model_spec
    from napari_sam2.image_size import auto_image_size_from

    folder, choices = top_empty_zstack
    assert choices[0].image_size == 512 and choices[3].image_size == 384  # noise measures as tiny objects
    model = ModelSpec("demo", "none", "cpu", "auto")
    for name in ("noisy", "black"):
        frames = open_frames(str(folder / f"{name}.tif"), AxisOptions())
        try:
            task = StackTask(name, str(folder / f"{name}.tif"), str(folder / "out"), model, None, True)
            assert stack_model_spec(task, frames).image_size == 384, name
            assert frames.through_z is not None  # its axes say ZYX
            assert auto_image_size_from(frames.view, "demo", 0, through_z=True).frame_index == 3
            later = StackTask(name, task.path, task.out, model, None, True, tracking_options={"start_frame": 4})
            assert stack_model_spec(later, frames).image_size == choices[4].image_size  # its start slice itself
            prompted = StackTask(name, task.path, task.out, model, str(folder / "p.csv"), False)
            assert stack_model_spec(prompted, frames, 4).image_size == choices[4].image_size  # the prompted slice
        finally:
            frames.close()
