"""Batch runs on a real Dask LocalCluster (2 worker processes) with the demo model at 256 px.

Stacks are tiny synthetic time-lapses (5 frames of 96 x 96) with a prompts CSV each, plus a corrupt
file, a stack without prompts and a single image. Faults are injected into the worker processes with
``client.run`` (a write that raises, a worker that dies mid-write).
"""

from __future__ import annotations

import csv

import argparse
import os
import sys
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import tifffile
from scipy import ndimage

from napari_sam2._cli_batch import add_batch_parser
from napari_sam2.api import segment
from napari_sam2.batch import batch
from napari_sam2.batch_cluster import gpu_cluster, local_cluster
from napari_sam2.batch_inputs import find_prompts, find_stacks, stack_names
from napari_sam2.batch_worker import AxisOptions, ModelSpec, StackTask, process_stack, stack_prompts
from napari_sam2.cli import read_prompts
from sam2_model.frames_io import open_stack
from sam2_model.synthetic import make_timelapse

distributed = pytest.importorskip("distributed")
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # fault injectors travel to the workers

GOOD = ("s0", "s1", "s2")
MODEL = dict(model="demo", checkpoint="download", device="cpu", image_size=256)


def _write_stack(folder: Path, name: str, seed: int, box_for_first: bool = False) -> None:
    timelapse = make_timelapse(num_frames=5, shape=(96, 96), num_cells=3, seed=seed, dtype="uint8",
                               divisions=False, enter_leave=False)
    tifffile.imwrite(folder / f"{name}.tif", timelapse.image, photometric="minisblack")
    lines = ["frame,obj_id,y,x,label,y1,x1"] if box_for_first else ["frame,obj_id,y,x,label"]
    for n, obj in enumerate(np.unique(timelapse.labels[0])[1:]):
        cell = timelapse.labels[0] == obj
        if box_for_first and n == 0:
            ys, xs = np.nonzero(cell)
            lines.append(f"0,{obj},{ys.min()},{xs.min()},,{ys.max()},{xs.max()}")
        else:
            cy, cx = ndimage.center_of_mass(cell)
            lines.append(f"0,{obj},{cy:.1f},{cx:.1f},1" + (",," if box_for_first else ""))
    csv_name = f"{name}_prompts.csv" if box_for_first else f"{name}.csv"
    (folder / csv_name).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("stacks")
    for i, name in enumerate(GOOD):
        _write_stack(folder, name, seed=40 + i, box_for_first=(i == 1))
    (folder / "corrupt.tif").write_bytes(b"II*\x00" + b"\xff" * 60)  # a TIFF header, then garbage
    (folder / "corrupt.csv").write_text("frame,obj_id,y,x\n0,1,5,5\n")
    _write_stack(folder, "unprompted", seed=50)
    (folder / "unprompted.csv").unlink()
    tifffile.imwrite(folder / "flat.tif", np.zeros((96, 96), np.uint8))  # one image, not a stack
    (folder / "flat.csv").write_text("frame,obj_id,y,x\n0,1,5,5\n")
    return folder


@pytest.fixture(scope="module")
def reference(data) -> dict:
    """Labels of each good stack from napari_sam2.segment() run in this process."""
    result = {}
    for name in GOOD:
        clicks, boxes = read_prompts(find_prompts(data / f"{name}.tif"))
        result[name] = segment(tifffile.imread(data / f"{name}.tif"), clicks, boxes, **MODEL)
    return result


@pytest.fixture(scope="module")
def client():
    """A real LocalCluster: 2 worker processes, 1 thread each; a dead task is not retried (deterministic)."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with local_cluster(2, device="cpu") as cluster, distributed.Client(cluster) as active:
            active.wait_for_workers(2)
            yield active


def _cli(argv: list) -> int:
    parser = argparse.ArgumentParser(prog="napari-sam2")
    add_batch_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


def _labels(out: Path, name: str) -> np.ndarray:
    return tifffile.imread(out / name / "labels.tif")


def test_inputs_names_and_prompts(data, tmp_path):
    stacks = find_stacks([data])
    assert sorted(p.name for p in stacks) == ["corrupt.tif", "flat.tif", "s0.tif", "s1.tif", "s2.tif", "unprompted.tif"]
    assert [p.name for p in find_stacks(str(data / "s*.tif"))] == ["s0.tif", "s1.tif", "s2.tif"]
    assert find_prompts(data / "s1.tif").name == "s1_prompts.csv"
    assert find_prompts(data / "unprompted.tif") is None
    frames = tmp_path / "pos1"  # a folder of single frames is one stack
    frames.mkdir()
    for t in range(3):
        tifffile.imwrite(frames / f"t{t}.tif", np.zeros((8, 8), np.uint8))
    assert find_stacks([tmp_path]) == [frames]
    other = tmp_path / "b"
    other.mkdir()
    (other / "s0.tif").write_bytes(b"")
    assert stack_names([data / "s0.tif", other / "s0.tif"]) == [f"{data.name}_s0", "b_s0"]
    with pytest.raises(ValueError, match="inputs: .*matches no file"):
        find_stacks(str(tmp_path / "*.nothing"))
    prompts = tmp_path / "p.csv"
    prompts.write_text("Frame,Obj_ID,Y,X,Label\n0,1,5,5,1\n7,1,5,5,1\n")
    with pytest.raises(ValueError, match=r"p.csv, line 3: frame 7 is not one of the stack's frames 0..4"):
        stack_prompts(prompts, (5, 96, 96))
    prompts.write_text("frame,obj_id,y,x,label\n0,1,5,5,1\n2,1,9,9,0\n3,2,5,5,0\n")  # object 2: a correction only
    with pytest.raises(ValueError, match=r"p.csv: object 2 has negative clicks only \(label 0, on frame 3\)"):
        stack_prompts(prompts, (5, 96, 96))
    assert [(p.frame, p.obj_id) for p in stack_prompts(find_prompts(data / "s1.tif"), (5, 96, 96))] == \
        [(0, obj) for obj in (1, 2, 3)]


def test_cli_runs_good_stacks_and_records_failures(data, reference, client, tmp_path):
    assert list(client.nthreads().values()) == [1, 1]  # the local cluster: 2 processes, 1 thread each
    assert len(set(client.run(os.getpid).values())) == 2
    out = tmp_path / "out"
    code = _cli(["batch", str(data), "--out", str(out), "--scheduler", client.scheduler.address,
                 "--model", "demo", "--device", "cpu", "--image-size", "256"])
    assert code == 1  # some stacks failed
    summary = {row["name"]: row for row in _read_summary(out)}
    assert {n: summary[n]["status"] for n in summary} == {
        "corrupt": "failed", "flat": "failed", "s0": "ok", "s1": "ok", "s2": "ok", "unprompted": "failed"}
    assert "read" in summary["corrupt"]["error"] and "corrupt.tif" in summary["corrupt"]["error"]
    assert "(T, Y, X)" in summary["flat"]["error"] or "single image" in summary["flat"]["error"]
    assert "no prompts CSV" in summary["unprompted"]["error"]
    for name in GOOD:
        np.testing.assert_array_equal(_labels(out, name), reference[name])
        assert summary[name]["frames"] == "5" and summary[name]["objects"] == "3"
        assert (out / name / "objects.csv").read_text().count("\n") > 5
    assert not (out / "corrupt").exists() and not (out / ".partial").exists()
    # a rerun skips the complete stacks (their files are not touched) and tries the failed ones again
    stamps = {name: (out / name / "labels.tif").stat().st_mtime_ns for name in GOOD}
    table = batch([data], out, client=client, progress=False, **MODEL)
    expected = {n: summary[n]["status"].replace("ok", "skipped") for n in summary}
    assert dict(zip(table["name"], table["status"])) == expected
    assert stamps == {name: (out / name / "labels.tif").stat().st_mtime_ns for name in GOOD}
    builds = client.run(_model_builds)  # each worker built the model once for all its stacks
    assert sum(count.get("demo", 0) for count in builds.values()) <= 2, builds
    assert all(count.get("demo", 0) <= 1 for count in builds.values()), builds
    # overwrite redoes a complete stack
    table = batch(data / "s2.tif", out, client=client, overwrite=True, progress=False, **MODEL)
    assert list(table["status"]) == ["ok"]
    assert (out / "s2" / "labels.tif").stat().st_mtime_ns != stamps["s2"]
    np.testing.assert_array_equal(_labels(out, "s2"), reference["s2"])
    # a stack whose manifest names a missing output is not complete: it is run again
    (out / "s1" / "objects.csv").unlink()
    table = batch([data / f"{n}.tif" for n in GOOD], out, client=client, progress=False, **MODEL)
    assert list(table["status"]) == ["skipped", "ok", "skipped"]
    assert (out / "s1" / "objects.csv").exists()


def _model_builds() -> dict:
    from napari_sam2.batch_worker import model_builds

    return model_builds()


def _read_summary(out: Path) -> list:
    import csv

    with open(out / "summary.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _install_fault(kind: str, marker: str) -> None:
    """In a worker: labels writing leaves a partial file, then raises or kills the process (once)."""
    import os

    import napari_sam2.batch_worker as worker

    def faulty(labels, path, *axes):
        Path(path).write_bytes(b"II*\x00 partial")
        if kind == "raise":
            raise OSError("disk full (injected)")
        if not Path(marker).exists():
            Path(marker).touch()
            os._exit(1)  # the worker process dies mid-write

    worker.write_labels_tiff = faulty


def _remove_fault() -> None:
    import napari_sam2.batch_outputs as outputs
    import napari_sam2.batch_worker as worker

    worker.write_labels_tiff = outputs.write_labels_tiff


def test_failed_or_killed_task_leaves_nothing_finished(data, reference, client, tmp_path):
    out = tmp_path / "out"
    stack = data / "s0.tif"
    client.run(_install_fault, "raise", str(tmp_path / "unused"))
    try:
        table = batch(stack, out, client=client, progress=False, **MODEL)
    finally:
        client.run(_remove_fault)
    assert table.loc[0, "status"] == "failed" and "disk full (injected)" in table.loc[0, "error"]
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv"]  # nothing that looks finished, no leftovers

    marker = tmp_path / "killed"
    client.run(_install_fault, "kill", str(marker))
    try:
        table = batch(stack, out, client=client, progress=False, **MODEL)
    finally:
        client.run(_remove_fault)
    assert marker.exists()  # a worker really died inside the task
    assert table.loc[0, "status"] == "failed" and "KilledWorker" in table.loc[0, "error"]
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv"]
    client.wait_for_workers(2, timeout=120)
    table = batch(stack, out, client=client, progress=False, **MODEL)  # the rerun finishes it
    assert table.loc[0, "status"] == "ok"
    np.testing.assert_array_equal(_labels(out, "s0"), reference["s0"])


def _install_hang(release: str) -> None:
    """In a worker: every stack but s0 marks its arrival (``release``.arrived/<attempt>), waits at its labels write
    until ``release`` exists, then fails."""
    import time

    import napari_sam2.batch_outputs as outputs
    import napari_sam2.batch_worker as worker

    def hanging(labels, path, *axes):
        if f"{os.sep}s0-" in str(path):
            return outputs.write_labels_tiff(labels, path, *axes)
        (Path(release + ".arrived") / Path(path).parent.name).touch()
        deadline = time.monotonic() + 120
        while not Path(release).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        raise OSError("released after the test (injected)")

    worker.write_labels_tiff = hanging


def _wait_for(condition, seconds: float = 120) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_ctrl_c_reports_the_stacks_finished_and_a_rerun_does_the_rest(data, reference, client, tmp_path, capsys,
                                                                     ctrl_c_raises):
    import signal
    import threading

    out, release, arrived = tmp_path / "out", tmp_path / "release", tmp_path / "release.arrived"
    arrived.mkdir()
    main_thread = threading.main_thread().ident

    def interrupt_after_first_stack() -> None:
        """Ctrl-C once s0 is finished and listed in summary.csv, and s1 and s2 are both in flight (held)."""
        if _wait_for(lambda: len(list(arrived.iterdir())) == 2 and (out / "summary.csv").exists()
                     and any(r["status"] == "ok" for r in _read_summary(out))):
            signal.pthread_kill(main_thread, signal.SIGINT)

    client.run(_install_hang, str(release))
    watcher = threading.Thread(target=interrupt_after_first_stack, daemon=True)
    watcher.start()
    try:
        code = _cli(["batch", *(str(data / f"{n}.tif") for n in GOOD), "--out", str(out), "--scheduler",
                     client.scheduler.address, "--device", "cpu", "--image-size", "256"])
    finally:
        release.touch()
        watcher.join()
        # the held attempts fail and discard their private folders before the workers get the real writer back
        _wait_for(lambda: not (out / ".partial").is_dir() or not any((out / ".partial").iterdir()))
        client.run(_remove_fault)
    err = capsys.readouterr().err
    assert code == 130
    assert f"interrupted; 1 of 3 stacks are complete in {out}" in err and "run the same command again" in err, err
    assert "nothing was written" not in err
    assert [(r["name"], r["status"]) for r in _read_summary(out)] == [("s0", "ok")]
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["s0", "summary.csv"]
    np.testing.assert_array_equal(_labels(out, "s0"), reference["s0"])
    table = batch([data / f"{n}.tif" for n in GOOD], out, client=client, progress=False, **MODEL)
    assert list(table["status"]) == ["skipped", "ok", "ok"]
    np.testing.assert_array_equal(_labels(out, "s2"), reference["s2"])


def test_auto_tracking_writes_labels_tracks_ctc_and_geff(data, client, tmp_path):
    import sam2_model as sm
    from sam2_model.tracking import read_ctc, track_cells

    out = tmp_path / "auto"
    code = _cli(["batch", str(data / "s0.tif"), "--out", str(out), "--scheduler", client.scheduler.address, "--auto",
                 "--cell-diameter", "6", "30", "--device", "cpu", "--image-size", "256"])
    assert code == 0
    folder = out / "s0"
    assert {p.name for p in folder.iterdir()} == {"labels.tif", "objects.csv", "tracks.csv", "ctc", "tracks.geff",
                                                  "manifest.json"}
    net = sm.build_model("demo", checkpoint="download", device="cpu", image_size=256)
    expected = track_cells(net, tifffile.imread(data / "s0.tif"), cell_diameter=(6, 30))
    np.testing.assert_array_equal(_labels(out, "s0"), expected.labels)
    assert expected.labels.max() > 0
    _, lineage = read_ctc(folder / "ctc")
    assert len(lineage) >= 1
    assert _read_summary(out)[0]["objects"] == str(len(expected.lineage))


def test_large_labels_go_to_ome_zarr(data, reference, tmp_path):
    """In-process run of one task with a tiny size threshold: labels written plane by plane to OME-Zarr."""
    task = StackTask("s2", str(data / "s2.tif"), str(tmp_path), ModelSpec(**MODEL),
                     prompts=str(find_prompts(data / "s2.tif")), zarr_above=1)
    row = process_stack(task)
    assert row["status"] == "ok", row["error"]
    assert row["outputs"] == "s2/labels.ome.zarr;s2/objects.csv;s2/manifest.json"
    np.testing.assert_array_equal(np.asarray(open_stack(tmp_path / "s2" / "labels.ome.zarr")[:]), reference["s2"])
    with open(tmp_path / "s2" / "objects.csv") as handle:  # the table still has the session's scores and checks
        rows = list(csv.DictReader(handle))
    assert rows and all(np.isfinite(float(r["object_score"])) and r["check"] in ("0", "1") for r in rows)


def test_rgb_stack_matches_segment(data, tmp_path):
    """A (T, Y, X, 3) TIFF runs in colour, as segment() runs it (in-process task)."""
    grey = tifffile.imread(data / "s0.tif")
    rgb = np.stack([grey, grey // 2, np.flip(grey, axis=-1)], axis=-1)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    prompts = find_prompts(data / "s0.tif")
    task = StackTask("rgb", str(tmp_path / "rgb.tif"), str(tmp_path / "out"), ModelSpec(**MODEL), prompts=str(prompts))
    row = process_stack(task)
    assert row["status"] == "ok", row["error"]
    expected = segment(rgb, *read_prompts(prompts), **MODEL)
    np.testing.assert_array_equal(_labels(tmp_path / "out", "rgb"), expected)


def test_smoothed_and_contrast_mapped_stack_matches_segment(data, tmp_path):
    """smooth= and contrast_limits= reach the batch task's session (in-process task) as they reach segment(), and
    the manifest says so."""
    import json

    prompts = find_prompts(data / "s0.tif")
    task = StackTask("s0", str(data / "s0.tif"), str(tmp_path / "out"), ModelSpec(**MODEL), prompts=str(prompts),
                     smooth=2.0, contrast_limits=(100.0, 20000.0))
    row = process_stack(task)
    assert row["status"] == "ok", row["error"]
    expected = segment(tifffile.imread(data / "s0.tif"), *read_prompts(prompts), smooth=2.0,
                       contrast_limits=(100, 20000), **MODEL)
    np.testing.assert_array_equal(_labels(tmp_path / "out", "s0"), expected)
    manifest = json.loads((tmp_path / "out" / "s0" / "manifest.json").read_text())
    assert manifest["smooth"] == 2.0 and manifest["contrast_limits"] == [100.0, 20000.0]


def test_axis_options_read_4d_stacks(data, reference, tmp_path):
    """In-process tasks: z=1 of a (Z, T, Y, X) stack and channel 1 of a (T, C, Y, X) stack give the plain
    (T, Y, X) stack's labels; prompts CSV rows count frames along the chosen axis."""
    plain = tifffile.imread(data / "s2.tif")  # (T, Y, X) uint8
    noise = np.random.default_rng(0).integers(0, 255, plain.shape, dtype=np.uint8)
    tifffile.imwrite(tmp_path / "zt.tif", np.stack([noise, plain, noise[::-1]]))  # (Z, T, Y, X)
    tifffile.imwrite(tmp_path / "tc.tif", np.stack([noise, plain], axis=1))  # (T, C, Y, X)
    prompts = str(find_prompts(data / "s2.tif"))
    out = tmp_path / "out"
    for name, axes in (("zt", AxisOptions(frame_axis=1, fixed=((0, 1),))), ("tc", AxisOptions(channel_axis=1, channel=1))):
        row = process_stack(StackTask(name, str(tmp_path / f"{name}.tif"), str(out), ModelSpec(**MODEL), prompts=prompts,
                                      axes=axes))
        assert row["status"] == "ok", row["error"]
        np.testing.assert_array_equal(_labels(out, name), reference["s2"])
        assert row["frames"] == plain.shape[0]
    # Without axis options a 4D grey stack is refused, naming what to give; nothing is left behind.
    row = process_stack(StackTask("bare", str(tmp_path / "zt.tif"), str(out), ModelSpec(**MODEL), prompts=prompts))
    assert row["status"] == "failed"
    assert "zt.tif" in row["error"] and "fixed" in row["error"]
    assert not (out / "bare").exists()


def test_cli_auto_tracks_one_channel(data, client, tmp_path, capsys):
    """``batch --auto --channel-axis 1 --channel 1`` on (T, C, Y, X) stacks tracks that channel: the same
    tracks as the plain stack; a stack the options do not fit fails, naming the command-line option."""
    plain = tifffile.imread(data / "s0.tif")
    noise = np.random.default_rng(1).integers(0, 255, plain.shape, dtype=np.uint8)
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    tifffile.imwrite(stacks / "two.tif", np.stack([noise, plain], axis=1))  # (T, C, Y, X)
    tifffile.imwrite(stacks / "one.tif", plain[:, None])  # (T, 1, Y, X): there is no channel 1
    tifffile.imwrite(tmp_path / "plain.tif", plain)
    common = ["--scheduler", client.scheduler.address, "--auto", "--cell-diameter", "6", "30", "--device", "cpu",
              "--image-size", "256"]
    assert _cli(["batch", str(tmp_path / "plain.tif"), "--out", str(tmp_path / "ref")] + common) == 0
    code = _cli(["batch", str(stacks), "--out", str(tmp_path / "out"), "--channel-axis", "1", "--channel", "1"] + common)
    assert code == 1  # one stack failed
    summary = {row["name"]: row for row in _read_summary(tmp_path / "out")}
    assert summary["two"]["status"] == "ok", summary["two"]["error"]
    assert summary["one"]["status"] == "failed" and "--channel" in summary["one"]["error"]
    np.testing.assert_array_equal(_labels(tmp_path / "out", "two"), _labels(tmp_path / "ref", "plain"))
    assert (tmp_path / "out" / "two" / "tracks.csv").read_text() == (tmp_path / "ref" / "plain" / "tracks.csv").read_text()
    assert not (tmp_path / "out" / "one").exists()


def _visible_devices() -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


def test_gpu_cluster_pins_one_device_per_worker():
    """The CUDA layout (built here without GPUs): worker i sees only device i, one thread each."""
    with gpu_cluster(2, dashboard_address=":0") as cluster, distributed.Client(cluster) as active:
        active.wait_for_workers(2)
        assert sorted(active.run(_visible_devices).values()) == ["0", "1"]
        assert list(active.nthreads().values()) == [1, 1]


def test_usage_errors_exit_2(data, tmp_path, capsys):
    assert _cli(["batch", str(tmp_path / "missing.tif"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert _cli(["batch", str(data), "--out", str(tmp_path / "o"), "--seeding", "grid"]) == 2
    assert "--seeding needs --auto" in capsys.readouterr().err
    assert _cli(["batch", str(data), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "workers must be" in capsys.readouterr().err
    assert _cli(["batch", str(data), "--out", str(tmp_path / "o"), "--model", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="scheduler must be an address"):
        batch(data, tmp_path / "o", scheduler="localhost")
    assert _cli(["batch", str(data), "--out", str(tmp_path / "o"), "--smooth", "-1"]) == 2
    assert '--smooth must be "auto", "off" or a number of pixels >= 0, got' in capsys.readouterr().err
    assert _cli(["batch", str(data), "--out", str(tmp_path / "o"), "--contrast-limits", "5", "5"]) == 2
    assert "--contrast-limits must be (low, high) finite numbers with low < high" in capsys.readouterr().err
    with pytest.raises(ValueError, match="fixed must map axis numbers"):
        batch(data, tmp_path / "o", fixed=[1, 5])
    with pytest.raises(ValueError, match="channel must be a channel index"):
        batch(data, tmp_path / "o", channel="green")


def test_inputs_in_subfolders_or_inside_the_output_folder(tmp_path, capsys):
    """Stacks one sub-folder down are found (not deeper); stacks inside --out are refused with that reason and
    what to do; a folder without stacks says what was searched."""
    stack = np.zeros((3, 16, 16), np.uint8)
    for well in ("x", "y"):
        (tmp_path / "plate" / well).mkdir(parents=True)
        tifffile.imwrite(tmp_path / "plate" / well / "s.tif", stack, photometric="minisblack")
    (tmp_path / "plate" / "x" / "deep").mkdir()
    tifffile.imwrite(tmp_path / "plate" / "x" / "deep" / "d.tif", stack, photometric="minisblack")  # not an input
    found = find_stacks([tmp_path / "plate"])
    assert found == [tmp_path / "plate" / "x" / "s.tif", tmp_path / "plate" / "y" / "s.tif"]
    assert stack_names(found) == ["x_s", "y_s"]
    (tmp_path / "empty").mkdir()
    assert _cli(["batch", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no stacks found" in (err := capsys.readouterr().err) and "sub-folders" in err, err
    well = tmp_path / "plate" / "x"
    for inputs in ([str(well / "s.tif")], [str(well)]):
        assert _cli(["batch", *inputs, "--out", str(well)]) == 2
        err = capsys.readouterr().err
        assert "inside the output folder (--out" in err and "choose an output folder outside the inputs" in err, err


def test_cli_checks_every_setting_before_creating_anything(data, tmp_path, capsys):
    """Bad settings exit 2 in the command's words, before the cluster starts or --out is made."""
    out = tmp_path / "rX"
    (tmp_path / "p.csv").write_text("frame,obj_id,y,x,label\n")
    cases = {
        ("--image-size", "100"): "--image-size must be a positive multiple of 32",
        ("--object-window", "4"): "--object-window must be a window side",
        ("--model", "sam3"): "unknown model 'sam3'",
        ("--device", "nope"): "device must be auto, cpu",
        ("--checkpoint", str(tmp_path / "nope.pt")): "--checkpoint " + str(tmp_path / "nope.pt") + ": no such file",
        ("--prompts-dir", str(tmp_path / "nodir")): "--prompts-dir " + str(tmp_path / "nodir") + ": no such folder",
        ("--prompts-dir", str(tmp_path / "p.csv")): "is a file; it expects the folder",
        ("--zarr-above", "0"): "--zarr-above must be > 0",
        ("--auto", "--cell-diameter", "40", "8"): "--cell-diameter MIN MAX",
        ("--auto", "--redetect-every", "0"): "--redetect-every: look for new cells every K frames, K >= 1",
        ("--auto", "--min-contrast", "-1"): "--min-contrast: ",
        ("--auto", "--start-frame", "-1"): "--start-frame must be a frame number >= 0",
        ("--auto", "--direction", "both"): "--direction both: automatic tracking (--auto) runs one way",
        ("--auto", "--object-window", "off"): "--object-window applies to prompts",
    }
    for options, message in cases.items():
        assert _cli(["batch", str(data / "s0.tif"), "--out", str(out), *options]) == 2, options
        err = capsys.readouterr().err
        assert message in err, (options, err)
        assert not out.exists(), options


def test_cli_model_options_counts_and_paths(data, client, tmp_path, capsys, monkeypatch):
    """--image-size auto, --object-window off and --direction reach every stack as segment() takes them; the
    console counts add up and name each failure; summary.csv holds absolute stack paths on every run."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("s0.tif", "s0.csv", "unprompted.tif"):
        (inputs / name).write_bytes((data / name).read_bytes())
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    options = ["--image-size", "auto", "--object-window", "off", "--direction", "forward", "--device", "cpu"]
    code = _cli(["batch", "in", "--out", "out", "--scheduler", client.scheduler.address, *options])
    captured = capsys.readouterr()
    assert code == 1
    assert "2 stacks: 1 to run, 0 skipped (complete from an earlier run), 1 failed before running" in captured.err
    assert "failed: unprompted: no prompts CSV" in captured.err
    assert "2 stacks: 1 ok, 0 skipped, 1 failed" in captured.err and not captured.out  # every line on stderr
    expected = segment(tifffile.imread(data / "s0.tif"), *read_prompts(data / "s0.csv"), model="demo",
                       checkpoint="download", device="cpu", image_size="auto", object_window="off",
                       direction="forward")
    np.testing.assert_array_equal(_labels(out, "s0"), expected)
    import json

    manifest = json.loads((out / "s0" / "manifest.json").read_text())
    assert isinstance(manifest["image_size"], int) and manifest["object_window"] is None
    assert manifest["direction"] == "forward"
    from dask.system import cpu_count  # 2 worker processes of 1 thread on this machine share its cores

    assert manifest["torch_threads"] == max(1, cpu_count() // 2), manifest["torch_threads_why"]
    assert "2 worker processes on this machine / 1 Dask thread each" in manifest["torch_threads_why"]
    table = batch("in", "out", client=client, progress=False, model="demo", device="cpu", image_size="auto",
                  object_window="off", direction="forward")  # the same settings: s0 skipped now
    assert list(table["status"]) == ["skipped", "failed"]
    for run in (_read_summary(out), table.to_dict("records")):
        assert [r["stack"] for r in run] == [str(inputs / "s0.tif"), str(inputs / "unprompted.tif")]


def test_start_frame_beyond_a_stack_fails_that_stack(data, tmp_path):
    """--start-frame is checked against each stack (in-process task), naming the option."""
    task = StackTask("s0", str(data / "s0.tif"), str(tmp_path), ModelSpec(**MODEL), auto=True,
                     tracking_options={"start_frame": 9}, axes=AxisOptions(names="cli"))
    row = process_stack(task)
    assert row["status"] == "failed" and "--start-frame 9 is not a frame of this stack (0..4)" in row["error"]


def test_auto_outputs_of_a_stack_agree_when_a_track_has_a_gap(data, tmp_path, monkeypatch):
    """labels.tif, objects.csv, tracks.csv, the CTC folder and the GEFF of one stack name the same tracks (batch
    wrote the labels and tables unsplit and only the CTC folder split); in-process task."""
    from dataclasses import replace

    import napari_sam2.batch_worker as worker
    from sam2_model.tracking import read_ctc, read_geff

    real = worker.track_cells_advised  # sam2_model.tracking.track_cells, with the detector's advice handed over

    def missed_for_a_frame(*args, **kwargs):  # the real tracker's result, one cell missed on frame 2
        result = real(*args, **kwargs)
        labels = result.labels.copy()
        whole = [t.track_id for t in result.lineage.rows() if t.begin <= 1 and t.end >= 3]
        labels[2][labels[2] == whole[0]] = 0
        return replace(result, labels=labels)

    monkeypatch.setattr(worker, "track_cells_advised", missed_for_a_frame)
    task = StackTask("s0", str(data / "s0.tif"), str(tmp_path), ModelSpec(**MODEL), auto=True,
                     tracking_options={"cell_diameter": (6, 30)}, axes=AxisOptions(names="cli"))
    row = process_stack(task)
    assert row["status"] == "ok", row["error"]
    folder = tmp_path / "s0"
    ctc_labels, ctc_lineage = read_ctc(folder / "ctc")
    np.testing.assert_array_equal(_labels(tmp_path, "s0"), ctc_labels)
    with open(folder / "tracks.csv") as handle:
        rows = sorted((int(r["track_id"]), int(r["begin"]), int(r["end"]), int(r["parent_id"]))
                      for r in csv.DictReader(handle))
    assert rows == sorted(tuple(int(v) for v in r) for r in ctc_lineage.to_array())
    assert any(parent for *_, parent in rows)  # the piece after the gap, linked to the piece before
    with open(folder / "objects.csv") as handle:
        measured = {(int(r["frame"]), int(r["obj_id"])) for r in csv.DictReader(handle)}
    assert measured == {(t, int(i)) for t in range(len(ctc_labels)) for i in np.unique(ctc_labels[t]) if i}
    graph, _ = read_geff(folder / "tracks.geff")
    assert graph.number_of_nodes() == len(measured)
    assert row["objects"] == len(rows)


@pytest.mark.parametrize("options, message", [
    ({"start_frame": 0, "reverse": True}, "--direction backward from --start-frame 0: there is nothing before"),
    ({"start_frame": 4}, "--direction forward from --start-frame 4: frame 4 is the stack's last (0..4)"),
])
def test_one_way_auto_with_nothing_to_track_fails_that_stack(data, tmp_path, options, message):
    """The rule of track --auto, checked against each stack (in-process task), before any model is built."""
    task = StackTask("s0", str(data / "s0.tif"), str(tmp_path), ModelSpec(**MODEL), auto=True,
                     tracking_options=options, axes=AxisOptions(names="cli"))
    row = process_stack(task)
    assert row["status"] == "failed" and message in row["error"], row["error"]
    assert not (tmp_path / "s0").exists()


def test_prompts_forward_from_the_last_frame_fails_that_stack(data, tmp_path):
    prompts = tmp_path / "last.csv"
    prompts.write_text("frame,obj_id,y,x,label\n4,1,40,40,1\n")
    task = StackTask("s0", str(data / "s0.tif"), str(tmp_path), ModelSpec(**MODEL), prompts=str(prompts),
                     direction="forward", axes=AxisOptions(names="cli"))
    row = process_stack(task)
    assert row["status"] == "failed" and "--direction forward from the first prompted frame (4)" in row["error"]


def test_a_local_run_without_bokeh_says_nothing_of_a_dashboard(client):
    """A local cluster serves no dashboard without bokeh: batch no longer prints a note about it on every run (the
    scheduler is asked: its HTTP server answers only "Dask needs bokeh")."""
    import importlib.util

    from napari_sam2.batch_cluster import dashboard_line

    if importlib.util.find_spec("bokeh") is not None:
        pytest.skip("bokeh is installed here: a local cluster serves its dashboard")
    assert dashboard_line(client) is None


def test_auto_on_a_stack_with_no_cell_finishes_empty_and_says_why(client, tmp_path, capsys):
    """A stack with no cell on any frame (a z-stack above the sample) is tracked to the end: empty outputs, status ok,
    and the tracker's note in summary.csv; `track --auto` prints the same note (both stopped with "no cells were
    detected on start frame 0" before)."""
    from napari_sam2.cli import main

    tifffile.imwrite(tmp_path / "empty.tif", np.zeros((4, 64, 64), np.uint8), photometric="minisblack")
    common = ["--auto", "--cell-diameter", "6", "30", "--device", "cpu", "--image-size", "256"]
    assert _cli(["batch", str(tmp_path / "empty.tif"), "--out", str(tmp_path / "out"), "--scheduler",
                 client.scheduler.address] + common) == 0
    err = capsys.readouterr().err  # the note on the console as the stack finishes, and counted at the end
    assert "empty: note: no cells were detected on frames 0-3" in err and "1 ok (1 with a note: see summary.csv)" in err
    (row,) = _read_summary(tmp_path / "out")
    assert row["status"] == "ok" and row["objects"] == "0" and "no cells were detected" in row["note"]
    assert not _labels(tmp_path / "out", "empty").any()
    assert main(["track", str(tmp_path / "empty.tif"), "--table", str(tmp_path / "t.csv")] + common) == 0
    assert "no cells were detected on frames 0-3" in capsys.readouterr().err


def test_ome_zarr_labels_name_z_where_the_frames_run_through_z(tmp_path):
    """Labels of a z-stack (axes metadata "ZYX", or z of "TZYX") are written as (z, y, x) space axes, not as time
    (OME-Zarr), and as ZYX in a labels TIFF."""
    import zarr

    from napari_sam2.batch_outputs import create_zarr_labels
    from napari_sam2.batch_worker import frame_axis_name

    assert [frame_axis_name(a, i) for a, i in (("ZYX", 0), ("TZYX", 1), ("TZYX", 0), (None, 0))] == ["z", "z", "t", "t"]
    import tifffile

    from napari_sam2.batch_outputs import write_labels_tiff

    for axis in ("z", "t"):
        write_labels_tiff(np.zeros((2, 8, 8), np.uint32), tmp_path / f"{axis}.tif", axis)
        with tifffile.TiffFile(tmp_path / f"{axis}.tif") as tiff:
            assert tiff.series[0].axes == f"{axis.upper()}YX"
        create_zarr_labels(tmp_path / f"{axis}.ome.zarr", (2, 8, 8), axis)
        first = zarr.open_group(str(tmp_path / f"{axis}.ome.zarr"), mode="r").attrs["multiscales"][0]["axes"][0]
        assert first == ({"name": "z", "type": "space"} if axis == "z" else {"name": "t", "type": "time"})


def _copy_stack(data: Path, name: str, to: Path) -> None:
    """``data/<name>.tif`` and its prompts CSV as ``to`` (a .tif path) and ``to``'s .csv."""
    to.parent.mkdir(parents=True, exist_ok=True)
    to.write_bytes((data / f"{name}.tif").read_bytes())
    to.with_suffix(".csv").write_bytes(find_prompts(data / f"{name}.tif").read_bytes())


def test_a_result_is_reused_only_for_the_same_input(data, reference, client, tmp_path, capsys):
    """plate1/A01/pos1.tif and plate2/A01/pos1.tif run one plate at a time into one folder: the second plate is run
    (it was skipped as plate 1's 'pos1'), under a name that says which plate, and summary.csv keeps plate 1's row
    with its numbers."""
    screen, out = tmp_path / "screen", tmp_path / "out"
    _copy_stack(data, "s0", screen / "plate1" / "A01" / "pos1.tif")
    _copy_stack(data, "s1", screen / "plate2" / "A01" / "pos1.tif")
    common = ["--out", str(out), "--scheduler", client.scheduler.address, "--device", "cpu", "--image-size", "256"]
    assert _cli(["batch", str(screen / "plate1"), *common]) == 0
    assert _cli(["batch", str(screen / "plate2"), *common]) == 0
    err = capsys.readouterr().err
    assert "1 to run, 0 skipped" in err and f"{out / 'pos1'} holds the result of {screen / 'plate1'}" in err, err
    np.testing.assert_array_equal(_labels(out, "pos1"), reference["s0"])  # plate 1's result, untouched
    np.testing.assert_array_equal(_labels(out, "plate2_A01_pos1"), reference["s1"])
    rows = {row["name"]: row for row in _read_summary(out)}
    assert rows["plate2_A01_pos1"]["status"] == "ok"
    earlier = rows["pos1"]  # not among the second run's inputs: still listed, with its numbers
    assert earlier["stack"] == str(screen / "plate1" / "A01" / "pos1.tif") and earlier["status"] == "skipped"
    assert (earlier["frames"], earlier["objects"]) == ("5", "3") and float(earlier["seconds"]) > 0
    assert earlier["outputs"] == "pos1/labels.tif;pos1/objects.csv;pos1/manifest.json"


def test_a_stack_rewritten_in_place_is_run_again(data, client, tmp_path, capsys):
    """The same path, rewritten since its result was made: not complete; run again under its name, and said so."""
    import json

    stack, out = tmp_path / "in" / "pos1.tif", tmp_path / "out"
    _copy_stack(data, "s0", stack)
    assert list(batch(stack, out, client=client, progress=False, **MODEL)["status"]) == ["ok"]
    os.utime(stack, ns=(stack.stat().st_atime_ns, stack.stat().st_mtime_ns + 10**9))  # rewritten (newer)
    table = batch(stack, out, client=client, **MODEL)
    assert list(zip(table["name"], table["status"])) == [("pos1", "ok")]
    assert "input changed since their result was made: pos1" in capsys.readouterr().err
    assert json.loads((out / "pos1" / "manifest.json").read_text())["input"]["mtime_ns"] == stack.stat().st_mtime_ns
    assert list(batch(stack, out, client=client, progress=False, **MODEL)["status"]) == ["skipped"]


def test_names_stay_when_stacks_are_added_and_skipped_rows_keep_their_numbers(data, client, tmp_path):
    """A rerun fills a skipped stack's row from its manifest; a stack added later with the same file name does not
    rename the earlier one (whose result would be redone under a new name and left behind as a duplicate)."""
    plate, out = tmp_path / "plate", tmp_path / "out"
    _copy_stack(data, "s0", plate / "a.tif")
    for _ in range(2):
        table = batch(plate, out, client=client, progress=False, **MODEL)
    assert list(zip(table["name"], table["status"])) == [("a", "skipped")]
    assert (table.loc[0, "frames"], table.loc[0, "objects"], table.loc[0, "note"]) == (5, 3, "")
    assert table.loc[0, "outputs"] == "a/labels.tif;a/objects.csv;a/manifest.json" and table.loc[0, "seconds"] > 0
    assert [(r["name"], r["frames"], r["objects"]) for r in _read_summary(out)] == [("a", "5", "3")]
    _copy_stack(data, "s1", plate / "well2" / "a.tif")
    table = batch(plate, out, client=client, progress=False, **MODEL)
    assert list(zip(table["name"], table["status"])) == [("a", "skipped"), ("well2_a", "ok")]
    assert sorted(p.name for p in out.iterdir()) == ["a", "summary.csv", "well2_a"]


def test_plate_well_layouts_are_named_apart_and_a_refusal_names_the_files(tmp_path):
    """As many parent folders as it takes tell stacks apart; stacks no folder tells apart are refused by name."""
    stack = np.zeros((3, 16, 16), np.uint8)
    for plate in ("plate1", "plate2"):
        (tmp_path / "screen" / plate / "A01").mkdir(parents=True)
        tifffile.imwrite(tmp_path / "screen" / plate / "A01" / "pos1.tif", stack, photometric="minisblack")
    found = find_stacks([tmp_path / "screen" / "plate1", tmp_path / "screen" / "plate2"])
    assert stack_names(found) == ["plate1_A01_pos1", "plate2_A01_pos1"]
    tifffile.imwrite(tmp_path / "a.tif", stack, photometric="minisblack")
    np.save(tmp_path / "a.npy", stack)
    with pytest.raises(ValueError, match=r"share an output folder name .*a\.(tif|npy), .*a\.(npy|tif)"):
        stack_names([tmp_path / "a.tif", tmp_path / "a.npy"])


def _interrupted_run(client, argv: list, release: Path, count: int) -> int:
    """Run the batch command with every stack but s0 held in its worker; Ctrl-C once ``count`` are held, then let
    them fail and wait until their private folders are gone. Returns the exit code."""
    import signal
    import threading

    arrived = Path(str(release) + ".arrived")
    arrived.mkdir()
    main_thread = threading.main_thread().ident

    def interrupt() -> None:
        if _wait_for(lambda: len(list(arrived.iterdir())) == count):
            signal.pthread_kill(main_thread, signal.SIGINT)

    client.run(_install_hang, str(release))
    watcher = threading.Thread(target=interrupt, daemon=True)
    watcher.start()
    try:
        return _cli(argv)
    finally:
        release.touch()
        watcher.join()
        out = Path(argv[argv.index("--out") + 1])
        _wait_for(lambda: not (out / ".partial").is_dir() or not any((out / ".partial").iterdir()))
        client.run(_remove_fault)


def test_ctrl_c_messages_say_what_is_on_disk(data, reference, client, tmp_path, capsys, ctrl_c_raises):
    """Ctrl-C with --overwrite while older results are complete counts and lists them; Ctrl-C before anything was
    written does not point at a summary.csv that is not there."""
    out = tmp_path / "out"
    common = ["--scheduler", client.scheduler.address, "--device", "cpu", "--image-size", "256"]
    assert _cli(["batch", str(data / "s1.tif"), "--out", str(out), *common]) == 0
    capsys.readouterr()
    argv = ["batch", str(data / "s1.tif"), str(data / "s2.tif"), "--out", str(out), "--overwrite", *common]
    assert _interrupted_run(client, argv, tmp_path / "release1", 2) == 130
    messages = capsys.readouterr().err
    assert f"1 of 2 stacks are complete in {out} (1 of them from an earlier run, not redone) (see " \
           f"{out / 'summary.csv'}); run it again without --overwrite to do the rest (with it, every stack is " \
           "redone); that run also skips the 1 earlier result kept from the same stack and settings (s1): to redo " \
           "it, run it alone with --overwrite" in messages, messages  # (it said: run the same command again)
    assert not (out / ".batch.lock").exists()  # released
    (row,) = _read_summary(out)
    assert (row["name"], row["status"], row["frames"]) == ("s1", "skipped", "5")
    assert "interrupted before it was redone" in row["reason"] and row["error"] == "", row
    np.testing.assert_array_equal(_labels(out, "s1"), reference["s1"])  # the older result, complete
    new = tmp_path / "new"
    argv = ["batch", str(data / "s2.tif"), "--out", str(new), *common]
    assert _interrupted_run(client, argv, tmp_path / "release2", 1) == 130
    messages = capsys.readouterr().err
    assert f"interrupted before any stack finished; nothing was written to {new}" in messages, messages
    assert not (new / "summary.csv").exists()


def test_unreachable_scheduler_leaves_no_output_folder(data, tmp_path, capsys):
    import dask

    out = tmp_path / "o"
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        assert _cli(["batch", str(data / "s0.tif"), "--out", str(out), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    assert "napari-sam2 batch:" in capsys.readouterr().err
    assert not out.exists()


def test_ctrl_c_while_the_local_cluster_starts_stops_quietly(tmp_path):
    """Ctrl-C as the local cluster starts (a real command in its own process): exit 130 with one line, no
    traceback of the half-started cluster at exit, no output folder."""
    import signal
    import subprocess

    import psutil  # a dependency of distributed

    tifffile.imwrite(tmp_path / "a.tif", np.zeros((3, 32, 32), np.uint8), photometric="minisblack")
    command = [sys.executable, "-m", "napari_sam2.cli", "batch", str(tmp_path / "a.tif"), "--out", str(tmp_path / "o"),
               "--auto", "--device", "cpu"]
    run = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = run.stderr.readline()  # printed just before the cluster starts
    assert _wait_for(lambda: psutil.Process(run.pid).children())  # its worker processes are being started
    run.send_signal(signal.SIGINT)
    err = first + run.stderr.read()
    assert run.wait(timeout=120) == 130, err
    assert "1 to run" in first and "interrupted before any stack finished" in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


def test_sigterm_mid_run_stops_as_ctrl_c_does(data, tmp_path):
    """SIGTERM (a job's time limit, scancel, timeout) once a stack is finished, to a real command with its local
    cluster in its own process: exit 143 with Ctrl-C's line, summary.csv listing the finished stacks, no .partial/
    attempt, no lock, no leaked semaphores (it died silently, leaving .partial/ and a summary that did not say so)."""
    import signal
    import subprocess

    stacks, out = tmp_path / "in", tmp_path / "o"
    for i in range(6):
        _copy_stack(data, GOOD[i % 3], stacks / f"t{i}.tif")
    command = [sys.executable, "-m", "napari_sam2.cli", "batch", str(stacks), "--out", str(out), "--device", "cpu",
               "--image-size", "256"]
    run = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert _wait_for(lambda: (out / "summary.csv").exists() or run.poll() is not None, 300)
        run.send_signal(signal.SIGTERM)
        err = run.communicate(timeout=120)[1]
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 143, err
    assert "napari-sam2 batch: interrupted by SIGTERM; " in err and "run the same command again" in err, err
    assert "leaked" not in err and "Traceback" not in err, err
    rows = _read_summary(out)
    assert 1 <= len(rows) < 6 and {r["status"] for r in rows} == {"ok"}, rows
    assert sorted(p.name for p in out.iterdir()) == sorted([r["name"] for r in rows] + ["summary.csv"])


def test_a_single_image_in_a_batch_fails_with_a_command_line_reason(tmp_path):
    """A 2-D image among the stacks failed with the reader's Python advice ("use ImagePredictor or add a time axis
    (frames[None])"); the batch row now says what batch takes and which command takes one image."""
    tifffile.imwrite(tmp_path / "one.tif", np.zeros((64, 64), np.uint16))
    task = StackTask("one", str(tmp_path / "one.tif"), str(tmp_path), ModelSpec(**MODEL), auto=True,
                     tracking_options={}, axes=AxisOptions(names="cli"))
    row = process_stack(task)
    assert row["status"] == "failed" and "a single image, not a stack of frames" in row["error"]
    assert "napari-sam2 track IMAGE" in row["error"] and "frames[None]" not in row["error"]


PLAIN_ZARR_AXES = [{"name": "t", "type": "time"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]


def test_ome_zarr_labels_carry_the_stacks_pixel_size_and_frame_interval(data, reference, tmp_path):
    """A calibrated stack (ImageJ: 0.65 um pixels, 300 s frames) whose labels go to OME-Zarr: before, the dataset's
    scale was (1, 1, 1) without units while the same run's labels TIFF said um and s. Now the scale is (300, 0.65,
    0.65) with units "second" / "micrometer" (OME-NGFF 0.4), read back as the TIFF's calibration; an origin is
    written as a translation. An uncalibrated stack's OME-Zarr metadata is that of before."""
    import zarr

    from napari_sam2.batch_outputs import create_zarr_labels
    from napari_sam2.export import Calibration
    from napari_sam2.file_calibration import read_calibration

    tifffile.imwrite(tmp_path / "cal.tif", tifffile.imread(data / "s2.tif"), imagej=True,
                     resolution=(1 / 0.65, 1 / 0.65), metadata={"unit": "micron", "finterval": 300, "axes": "TYX"})
    task = StackTask("cal", str(tmp_path / "cal.tif"), str(tmp_path / "out"), ModelSpec(**MODEL),
                     prompts=str(find_prompts(data / "s2.tif")), zarr_above=1)
    row = process_stack(task)
    assert row["status"] == "ok", row["error"]
    store = tmp_path / "out" / "cal" / "labels.ome.zarr"
    np.testing.assert_array_equal(np.asarray(open_stack(store)[:]), reference["s2"])
    first = zarr.open_group(str(store), mode="r").attrs["multiscales"][0]
    assert first["axes"] == [{"name": "t", "type": "time", "unit": "second"},
                             {"name": "y", "type": "space", "unit": "micrometer"},
                             {"name": "x", "type": "space", "unit": "micrometer"}]
    assert first["datasets"][0]["coordinateTransformations"] == [{"type": "scale", "scale": [300.0, 0.65, 0.65]}]
    back = read_calibration(store, 0, (1, 2))
    assert (back.pixel_size, back.length_unit, back.frame_interval, back.time_unit) == \
        (pytest.approx((0.65, 0.65)), "micrometer", 300.0, "second")

    placed = Calibration((0.2, 0.25), "um", 1.5, "um", frames_through_z=True, origin=(3.0, 10.0, -4.0))
    create_zarr_labels(tmp_path / "z.ome.zarr", (2, 8, 8), "z", placed)
    assert read_calibration(tmp_path / "z.ome.zarr", 0, (1, 2), frames_through_z=True) == Calibration(
        (0.2, 0.25), "micrometer", 1.5, "micrometer", frames_through_z=True, origin=(3.0, 10.0, -4.0))
    plain = {"version": "0.4", "name": "labels", "axes": PLAIN_ZARR_AXES,
             "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]}]}
    for name, calibration in (("none", None), ("napari", Calibration())):
        create_zarr_labels(tmp_path / f"{name}.ome.zarr", (2, 8, 8), "t", calibration)
        assert zarr.open_group(str(tmp_path / f"{name}.ome.zarr"), mode="r").attrs.asdict() == {
            "multiscales": [plain], "image-label": {"version": "0.4"}}


def test_ome_zarr_labels_are_an_ngff_label_image(tmp_path):
    """labels.ome.zarr (--zarr-above) was a valid OME-Zarr 0.4 *image*: without the spec's "image-label" attributes
    ome-zarr-py found only its multiscales and napari-ome-zarr opened it as a grey image (ome-zarr-models' v04
    ImageLabel: "attributes.image-label Field required"). Now it is a label image those readers take as labels, and
    our own reader still opens its array and calibration."""
    import zarr

    from napari_sam2.batch_outputs import create_zarr_labels
    from napari_sam2.export import Calibration
    from napari_sam2.file_calibration import read_calibration

    store = tmp_path / "labels.ome.zarr"
    array = create_zarr_labels(store, (2, 8, 8), "t", Calibration((0.65, 0.65), "um", 300.0, "s"))
    array[1] = np.arange(64, dtype=np.uint32).reshape(8, 8) % 3
    attrs = zarr.open_group(str(store), mode="r").attrs.asdict()
    assert attrs["image-label"] == {"version": "0.4"}  # OME-NGFF 0.4, "labels": what marks a label image
    assert attrs["multiscales"][0]["version"] == "0.4" and attrs["multiscales"][0]["datasets"][0]["path"] == "0"
    assert np.asarray(open_stack(store)[:]).dtype == np.uint32 and int(np.asarray(open_stack(store)[1]).max()) == 2
    assert read_calibration(store, 0, (1, 2)).frame_interval == 300.0
    try:  # the spec's validator and reader, where installed (not among this project's dependencies)
        from ome_zarr_models.v04.image_label import ImageLabel
    except ImportError:
        ImageLabel = None
    if ImageLabel is not None:
        ImageLabel.from_zarr(zarr.open_group(str(store), mode="r"))
    try:
        from ome_zarr.io import parse_url
        from ome_zarr.reader import Label, Reader
    except ImportError:
        return
    (node, *_) = list(Reader(parse_url(str(store)))())
    assert node.load(Label) is not None


def test_frames_last_stacks_are_read_frames_first_as_track_reads_them(data, reference, client, tmp_path, capsys):
    """A TIFF of axes YXT (batch --axis 0, the default, means its T) and a (Y, X, T) .npy with frame_axis=2 (its last
    axis, shorter than the rows and columns) give the (T, Y, X) stack's labels, frames first as napari-sam2 track
    writes them; the console, the summary's note and the manifest say how each was read, in track's words. They
    were refused ("save the stack as TYX")."""
    import json
    import shutil

    yxt = np.moveaxis(tifffile.imread(data / "s0.tif"), 0, -1)  # (96, 96, 5)
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "yxt.tif", yxt, metadata={"axes": "YXT"})
    shutil.copy(find_prompts(data / "s0.tif"), folder / "yxt.csv")
    out = tmp_path / "out"
    code = _cli(["batch", str(folder / "yxt.tif"), "--out", str(out), "--scheduler", client.scheduler.address,
                 "--model", "demo", "--device", "cpu", "--image-size", "256"])
    line = ("the TIFF's axes YXT put the frames (T, axis 2) after the rows and columns: read as (5, 96, 96) (TYX), "
            "frames first; the labels are written in that order")
    assert code == 0 and f"yxt: {line}" in capsys.readouterr().err  # as track prints it, one line
    np.testing.assert_array_equal(_labels(out, "yxt"), reference["s0"])
    assert _read_summary(out)[0]["note"] == line
    assert json.loads((out / "yxt" / "manifest.json").read_text())["read_as"] == line
    np.save(folder / "plain.npy", yxt)
    row = process_stack(StackTask("plain", str(folder / "plain.npy"), str(out), ModelSpec(**MODEL),
                                  prompts=str(folder / "yxt.csv"), axes=AxisOptions(frame_axis=2)))
    assert row["status"] == "ok", row["error"]
    assert row["note"].startswith("frame_axis=2 names the stack's last axis, after its rows and columns (axes 0 and "
                                  "1): read as (5, 96, 96), frames first")
    np.testing.assert_array_equal(_labels(out, "plain"), reference["s0"])
