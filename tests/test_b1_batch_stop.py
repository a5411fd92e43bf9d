"""B1: a batch run stopped by Ctrl-C (the terminal sends it to every process of the command, and ``timeout`` twice)
says only its own words, and a stack whose detector found too many candidate cells says how many became cells."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import tifffile

from napari_sam2.batch_worker import AxisOptions, ModelSpec, StackTask, process_stack


def _wait_for(condition, seconds: float = 300) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_ctrl_c_to_the_whole_command_after_a_stack_finished_prints_no_traceback(tmp_path):
    """Ctrl-C as a terminal sends it (to the command's whole process group: its Dask workers too), twice as
    ``timeout -s INT`` does, once a stack is finished: exit 130 with our lines only (it printed tornado's "NameError:
    cannot access free variable 'future'" and distributed.nanny's CancelledError tracebacks), the finished stacks
    complete and listed, no lock, no .partial/ attempt."""
    stacks, out = tmp_path / "in", tmp_path / "o"
    stacks.mkdir()
    for i in range(8):  # empty frames: --auto finds nothing, quickly
        tifffile.imwrite(stacks / f"t{i}.tif", np.zeros((2, 32, 32), np.uint8), photometric="minisblack")
    command = [sys.executable, "-m", "napari_sam2.cli", "batch", str(stacks), "--out", str(out), "--auto",
               "--device", "cpu", "--workers", "1"]
    run = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                           start_new_session=True,  # its own process group, as a terminal's foreground job
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert _wait_for(lambda: (out / "summary.csv").exists() or run.poll() is not None)
        group = os.getpgid(run.pid)
        os.killpg(group, signal.SIGINT)
        os.killpg(group, signal.SIGINT)  # a second press (timeout sends one to the command, one to its group)
        err = run.communicate(timeout=120)[1]
    finally:
        if run.poll() is None:
            os.killpg(os.getpgid(run.pid), signal.SIGKILL)
    assert run.returncode == 130, err
    assert "Traceback" not in err and " - ERROR - " not in err and "NameError" not in err, err
    assert re.search(r"napari-sam2 batch: interrupted; \d of 8 stacks are complete in ", err), err
    assert "run the same command again to do the rest" in err, err
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert 1 <= len(rows) < 8 and {r["status"] for r in rows} == {"ok"}, rows
    assert sorted(p.name for p in out.iterdir()) == sorted([r["name"] for r in rows] + ["summary.csv"])


def test_the_note_of_too_many_candidates_says_how_many_became_cells(tmp_path):
    """A stack whose detector finds too many candidate cells (noise at a small diameter range): its note said
    "239 candidate cells ..." beside objects 0-4 with no word on where the rest went; now it says how many of them
    were kept as cells on that frame (the labels' ids there) and why the others were not."""
    rng = np.random.default_rng(0)
    tifffile.imwrite(tmp_path / "n.tif", (rng.random((2, 64, 64)) * 255).astype(np.uint8), photometric="minisblack")
    task = StackTask("n", str(tmp_path / "n.tif"), str(tmp_path / "out"),
                     ModelSpec(model="demo", checkpoint="download", device="cpu", image_size=256), auto=True,
                     tracking_options={"cell_diameter": (3, 8)}, axes=AxisOptions(names="cli"))
    row = process_stack(task)
    assert row["status"] == "ok", row
    note = row["note"]
    count = re.search(r"(\d+) candidate cells \(blobs 3-8 px wide\)", note)
    assert count is not None and int(count.group(1)) > 200, note
    labels = tifffile.imread(tmp_path / "out" / "n" / "labels.tif")
    kept = len(np.unique(labels[0][labels[0] > 0]))
    if kept:
        said = f"of these {count.group(1)} candidates on frame 0, {kept} {'was' if kept == 1 else 'were'} kept as "
    else:
        said = f"of these {count.group(1)} candidates on frame 0, none was kept as a cell: each was the same cell"
    assert said in note, note
    assert "the same cell found again" in note and "too faint against their surroundings" in note, note


def test_a_stop_after_every_stack_was_done_does_not_ask_for_a_rerun(tmp_path):
    """Review R2 (session 56): Ctrl-C once every stack is complete said "run the same command again to do the rest"."""
    from napari_sam2.batch import BatchInterrupted

    done = str(BatchInterrupted(tmp_path, complete=2, failed=0, total=2))
    assert "2 of 2 stacks are complete" in done and "nothing is left to run" in done and "do the rest" not in done
    assert "do the rest" in str(BatchInterrupted(tmp_path, complete=1, failed=0, total=2))
    assert "do the rest" in str(BatchInterrupted(tmp_path, complete=1, failed=1, total=2))
