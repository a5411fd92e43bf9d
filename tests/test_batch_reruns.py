"""Batch reruns and the output folder's lock, on an in-process Dask cluster (one worker thread: starts in a second)
with the real demo model at 256 px, and the checks made before any cluster starts.

A rerun reuses a stack's result only when what decides it is unchanged: the stack, its prompts CSV's content, the
mode and the settings (it reused a result whose prompts had been edited, or made with prompts for an --auto rerun,
saying only "skipped"). One run writes into an output folder at a time (OUT/.batch.lock).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2.batch import batch
from napari_sam2.batch_outputs import LOCK, OutputFolderBusy, plan_run
from napari_sam2.prompts_csv import read_prompts
from test_batch import MODEL, _cli, _read_summary, _write_stack

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    """A real in-process cluster: one worker, one thread (tasks run in this process, on the worker's thread)."""
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as active:
        yield active


@pytest.fixture
def plate(tmp_path) -> Path:
    folder = tmp_path / "plate"
    folder.mkdir()
    for i, name in enumerate(("a", "b")):
        _write_stack(folder, name, seed=60 + i)
    return folder


def _statuses(table) -> dict:
    return dict(zip(table["name"], table["status"]))


def test_a_rerun_redoes_the_stack_whose_prompts_changed_and_says_why(plate, client, tmp_path, capsys):
    """b's prompts CSV loses its last object: the rerun redoes b only (it said "skipped" and kept b's old labels),
    naming it; the same CSV written again (the same content, a newer time) changes nothing."""
    out = tmp_path / "out"
    assert _statuses(batch(plate, out, client=client, progress=False, **MODEL)) == {"a": "ok", "b": "ok"}
    lines = (plate / "b.csv").read_text().splitlines()
    dropped = int(lines[-1].split(",")[1])
    assert dropped in np.unique(tifffile.imread(out / "b" / "labels.tif"))
    (plate / "b.csv").write_text("\n".join(lines[:-1]) + "\n")
    table = batch(plate, out, client=client, **MODEL)
    assert _statuses(table) == {"a": "skipped", "b": "ok"}
    assert "run again, their prompts CSV changed since their result was made: b" in capsys.readouterr().err
    assert dropped not in np.unique(tifffile.imread(out / "b" / "labels.tif"))
    assert table.loc[1, "objects"] == len(lines) - 2
    text = (plate / "b.csv").read_text()
    (plate / "b.csv").write_text(text)  # touched: the same prompts
    assert _statuses(batch(plate, out, client=client, progress=False, **MODEL)) == {"a": "skipped", "b": "skipped"}


def test_a_rerun_redoes_stacks_made_in_another_mode_or_with_other_tracking_options(plate, client, tmp_path, capsys):
    """A folder run with prompts, then with --auto: every stack is tracked automatically (they were all "skipped",
    with no tracks.csv); --auto again with another cell diameter redoes them too, naming the option."""
    out = tmp_path / "out"
    batch(plate / "a.tif", out, client=client, progress=False, **MODEL)
    capsys.readouterr()
    table = batch(plate / "a.tif", out, client=client, auto=True, cell_diameter=(6, 30), **MODEL)
    assert _statuses(table) == {"a": "ok"} and (out / "a" / "tracks.csv").exists()
    assert "run again, their result was made with prompts: a" in capsys.readouterr().err
    manifest = json.loads((out / "a" / "manifest.json").read_text())
    settings = manifest["settings"]
    assert settings["mode"] == "auto" and settings["tracking_options"]["cell_diameter"] == [6, 30]
    assert _statuses(batch(plate / "a.tif", out, client=client, auto=True, cell_diameter=(6, 30), progress=False,
                           **MODEL)) == {"a": "skipped"}
    table = batch(plate / "a.tif", out, client=client, auto=True, cell_diameter=(6, 20), **MODEL)
    assert _statuses(table) == {"a": "ok"}
    assert "run again, their result was made with other settings (cell_diameter): a" in capsys.readouterr().err


def test_a_result_of_an_earlier_version_is_judged_by_the_mode_and_prompts_it_records(plate, client, tmp_path):
    """A manifest without "settings" (written before they were recorded) is reused for the same mode and an unchanged
    prompts CSV, and not for --auto or a CSV edited after it was written."""
    out = tmp_path / "out"
    batch(plate, out, client=client, progress=False, **MODEL)
    for name in ("a", "b"):
        path = out / name / "manifest.json"
        record = json.loads(path.read_text())
        del record["settings"]
        path.write_text(json.dumps(record))
    stacks = [plate / "a.tif", plate / "b.tif"]
    future = time.time() + 5
    os.utime(plate / "b.csv", (future, future))  # edited after the manifests were written

    def settings(mode: str):
        from napari_sam2.batch_outputs import prompts_fingerprint

        return lambda path: {"mode": mode, "prompts": prompts_fingerprint(path.with_suffix(".csv")) if mode ==
                             "prompts" else None}

    plan = plan_run(stacks, out, False, settings("prompts"))
    assert sorted(plan.reused) == ["a"] and plan.notes == [
        "run again, their prompts CSV changed since their result was made: b"]
    plan = plan_run(stacks, out, False, settings("auto"))
    assert not plan.reused and plan.notes == ["run again, their result was made with prompts: a, b"]


def test_a_second_run_into_the_same_folder_is_refused_and_a_dead_runs_lock_is_taken_over(plate, client, tmp_path,
                                                                                         capsys):
    """While another run's lock (a live process on this machine) is in OUT, a run is refused before it plans, naming
    that run (two runs at once left a summary.csv listing one run's stacks, and one removed the other's .partial/);
    the lock of a run whose process is gone is taken over; the lock is gone once a run ends."""
    import socket

    out = tmp_path / "out"
    out.mkdir()
    other = subprocess.Popen(["sleep", "60"])
    try:
        (out / LOCK).write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(),
                                            "started": "2026-01-01 10:00:00", "started_s": time.time() - 1}))
        with pytest.raises(OutputFolderBusy, match=rf"out {out} is in use by another batch run \(pid {other.pid} on "
                                                   rf"{socket.gethostname()}, started 2026-01-01 10:00:00\)"):
            batch(plate, out, client=client, progress=False, **MODEL)
        assert _cli(["batch", str(plate), "--out", str(out), "--scheduler", client.scheduler.address]) == 2
        err = capsys.readouterr().err
        assert f"--out {out} is in use by another batch run (pid {other.pid}" in err and f"delete {out / LOCK}" in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK]  # nothing planned or written
    finally:
        other.kill()
        other.wait()
    # the process is gone now: its lock is stale and taken over
    assert _statuses(batch(plate, out, client=client, progress=False, **MODEL)) == {"a": "ok", "b": "ok"}
    assert not (out / LOCK).exists()
    assert [r["status"] for r in _read_summary(out)] == ["ok", "ok"]


def test_problems_known_before_the_run_are_refused_before_a_cluster_starts(plate, tmp_path, capsys):
    """--auto --direction backward from frame 0 (nothing to track in any stack) and an --out that cannot be created
    are usage errors before the plan line and any cluster (every stack failed after the cluster started; the
    folder was refused after the plan line and the cluster's start)."""
    out = tmp_path / "out"
    assert _cli(["batch", str(plate), "--out", str(out), "--auto", "--direction", "backward"]) == 2
    err = capsys.readouterr().err
    assert "--direction backward from --start-frame 0: there is nothing before frame 0 to track" in err, err
    assert not out.exists()
    blocked = tmp_path / "file"
    blocked.write_text("")
    for target in ([Path("/proc/napari-sam2-out")] if os.path.isdir("/proc/self") else []) + [blocked / "out"]:
        assert _cli(["batch", str(plate), "--out", str(target)]) == 2
        err = capsys.readouterr().err
        assert f"the folder {target} cannot be created" in err and "to run" not in err and "Dask" not in err, err


def test_a_semicolon_separated_prompts_csv_says_so(tmp_path):
    """A spreadsheet's CSV with ';' (many languages' Excel) is refused saying that and what to do (it said the
    header missed frame,obj_id,y,x, which it shows)."""
    path = tmp_path / "p.csv"
    path.write_text("frame;obj_id;y;x;label\n0;1;5,5;5;1\n")
    with pytest.raises(ValueError, match=r"p.csv: its columns are separated by semicolons \(';'\), not commas: "
                                         r"save it as CSV with commas"):
        read_prompts(path)
    path.write_text("frame\tobj_id\ty\tx\n0\t1\t5\t5\n")
    with pytest.raises(ValueError, match="separated by tabs"):
        read_prompts(path)
