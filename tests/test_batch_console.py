"""What a batch run says, and where: a script without ``if __name__ == "__main__":`` (one message, not Dask's
tracebacks), the dashboard line only where a dashboard is served, skipped rows' own ``reason`` column, plain
progress lines in a log file (no tqdm carriage returns), the frames done within a stack, and the detector's advice
of too many candidate cells once per stack (docs/batch.md).
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import napari_sam2.batch_console as batch_console
import napari_sam2.batch_worker as batch_worker
from napari_sam2.batch import batch
from test_batch import MODEL, _write_stack

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    """A real in-process cluster without bokeh's dashboard: one worker, one thread."""
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as active:
        yield active


def _script(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    path = tmp_path / "my_batch.py"
    path.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_a_script_without_the_main_guard_is_refused_in_one_message(tmp_path):
    """`python my_batch.py` calling batch() at its top level: every spawned worker ran the script again and Dask
    printed ~80 lines ("Nanny failed to start", the other run's lock). Now: refused before anything is created or
    started, naming the script's line and the fix; a guarded call (in a function) is not refused."""
    _write_stack(tmp_path, "a", seed=71)
    run = _script(tmp_path, f"""
        import napari_sam2
        table = napari_sam2.batch({str(tmp_path / 'a.tif')!r}, {str(tmp_path / 'out')!r}, device="cpu")
        """)
    assert run.returncode == 1, run.stderr
    assert 'my_batch.py (line 3): put the call under `if __name__ == "__main__":`' in run.stderr, run.stderr
    assert "Nanny" not in run.stderr and "starting Dask" not in run.stderr and len(run.stderr.splitlines()) < 15
    assert not (tmp_path / "out").exists()
    run = _script(tmp_path, f"""
        import napari_sam2

        def main():
            napari_sam2.batch({str(tmp_path / 'missing.tif')!r}, {str(tmp_path / 'out')!r}, device="cpu")

        if __name__ == "__main__":
            main()
        """)
    assert run.returncode == 1 and "missing.tif" in run.stderr and "__main__" not in run.stderr, run.stderr


def test_no_dashboard_line_for_a_client_whose_scheduler_serves_none(client, tmp_path, capsys):
    """A Client of the user's whose scheduler has no bokeh: its address leads to "Dask needs bokeh" only, so the
    console says nothing of a dashboard (it printed "Dask dashboard at http://...")."""
    _write_stack(tmp_path, "a", seed=72)
    assert list(batch(tmp_path / "a.tif", tmp_path / "out", client=client, **MODEL)["status"]) == ["ok"]
    assert "dashboard" not in capsys.readouterr().err


def test_the_dashboard_line_where_the_scheduler_serves_one_or_cannot_be_asked(client, monkeypatch):
    """A scheduler whose HTTP server carries Bokeh's application gets the line; so does one that cannot be asked (it
    refuses to run functions, e.g. one without napari-sam2 installed, before the question travelled by value): the
    link it always had. One without: none."""
    from napari_sam2.batch_cluster import dashboard_line

    assert dashboard_line(client) is None
    scheduler = client.cluster.scheduler  # in-process: the real scheduler object
    BokehApplication = type("BokehApplication", (), {})
    monkeypatch.setitem(scheduler.services, "dashboard", scheduler.services.get("dashboard"))
    monkeypatch.setattr(scheduler.http_application, "applications", [BokehApplication()], raising=False)
    assert dashboard_line(client) == f"Dask dashboard at {client.dashboard_link}"
    monkeypatch.setattr(type(client), "run_on_scheduler", lambda self, function: (_ for _ in ()).throw(
        RuntimeError("cannot run functions")))
    assert dashboard_line(client) == f"Dask dashboard at {client.dashboard_link}"


def test_skipped_rows_give_their_reason_in_their_own_column(client, tmp_path):
    """A skipped stack's explanation went into `error`, so `error != ""` also picked out skipped stacks: it now has
    its own `reason` column, and `error` is a failed stack's alone."""
    _write_stack(tmp_path, "a", seed=73)
    out = tmp_path / "out"
    batch(tmp_path / "a.tif", out, client=client, progress=False, **MODEL)
    table = batch(tmp_path / "a.tif", out, client=client, progress=False, **MODEL)
    assert (table.loc[0, "status"], table.loc[0, "error"]) == ("skipped", "")
    assert table.loc[0, "reason"] == "complete from an earlier run (overwrite to redo)"
    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:5] == ["stack", "name", "status", "reason", "error"]
    assert (rows[0]["reason"], rows[0]["error"]) == ("complete from an earlier run (overwrite to redo)", "")


def test_a_log_file_gets_plain_progress_lines_with_the_frames_done(client, tmp_path, capsys, monkeypatch):
    """stderr a file (SLURM's log): no tqdm bar redrawn with '\\r', but plain lines at a set pace, naming the frames
    done within a stack in flight (the bar sat at 0/1 through a long stack) and the stacks done."""
    monkeypatch.setattr(batch_console, "PLAIN_EVERY_S", 0.0, raising=False)  # every event a line (a real log: 30 s)
    monkeypatch.setattr(batch_worker, "PROGRESS_EVERY_S", 0.0, raising=False)
    _write_stack(tmp_path, "a", seed=74)
    assert list(batch(tmp_path / "a.tif", tmp_path / "out", client=client, **MODEL)["status"]) == ["ok"]
    err = capsys.readouterr().err
    assert "\r" not in err, err
    assert "napari-sam2 batch: 0 of 1 stacks done; a: 2/5 frames (" in err, err  # 5 frames, from frame 0
    assert err.rstrip().splitlines()[-1].startswith("napari-sam2 batch: 1 of 1 stacks done ("), err


def test_a_terminal_gets_the_bar_and_the_plain_pace_holds_lines_back(monkeypatch):
    """A terminal gets tqdm's bar with the frames in flight; a log file gets at most one line per PLAIN_EVERY_S
    (and one when the last stack is done), also where no event comes (a long first frame: it said nothing)."""
    import time

    from napari_sam2.batch_console import Console

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    shown = Terminal()
    console = Console(2, "r1", stream=shown)
    console.event((0.0, {"run": "r1", "name": "a", "frames": 3, "total": 9}))
    console.event((0.0, {"run": "other", "name": "b", "frames": 1, "total": 9}))  # another run's: not shown
    assert "a: 3/9 frames" in shown.getvalue() and "b: 1/9" not in shown.getvalue()
    console.close()
    log = io.StringIO()
    console = Console(2, "r1", stream=log)
    for done in range(1, 5):
        console.event((0.0, {"run": "r1", "name": "a", "frames": done, "total": 9}))
    console.stack_done("a")
    console.stack_done("b")
    assert log.getvalue().count("\n") == 1 and "2 of 2 stacks done (" in log.getvalue(), log.getvalue()
    console.close()
    monkeypatch.setattr(batch_console, "PLAIN_EVERY_S", 0.3)
    log = io.StringIO()
    console = Console(1, "r1", stream=log)
    console.event((0.0, {"run": "r1", "name": "a", "frames": 0, "total": 9}))  # the task started: no frame done yet
    time.sleep(1.5)
    console.close()
    assert log.getvalue().count("napari-sam2 batch: 0 of 1 stacks done; a: 0/9 frames (") >= 2, log.getvalue()


def test_the_detectors_advice_of_too_many_candidates_is_said_once_per_stack(tmp_path, capsys, monkeypatch):
    """--auto with a cell diameter far below the cells' (the README's 8 40 on a noisy stack): the detector's advice
    (too many candidate cells, each clicked: slow) reached no console line, only a Python warning per frame in the
    worker's log. Now one line per stack as soon as it comes, and the stack's note in summary.csv; also for two
    stacks run at once by one worker (two threads) that give the same text."""
    import shutil

    from sam2_model.tracking import detection

    monkeypatch.setattr(detection, "MANY_SEEDS", 0)  # every frame's blobs are "too many" (real ones: > 1000)
    _write_stack(tmp_path, "a", seed=75)
    shutil.copy(tmp_path / "a.tif", tmp_path / "b.tif")
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as client:
        table = batch([tmp_path / "a.tif", tmp_path / "b.tif"], tmp_path / "out", client=client, auto=True,
                      redetect_every=1, **MODEL)
    assert list(table["status"]) == ["ok", "ok"]
    err = capsys.readouterr().err
    for name in ("a", "b"):
        said = [line for line in err.splitlines() if line.startswith(f"{name}: ") and "candidate cells" in line]
        assert len(said) == 1 and "--cell-diameter MIN MAX" in said[0], err
    assert err.count("candidate cells") == 2 and "UserWarning" not in err, err
    assert all("candidate cells (blobs 8-40 px wide)" in note for note in table["note"]), list(table["note"])


def test_a_task_leaves_the_process_warnings_filters_and_hook_alone(client, tmp_path, capsys, monkeypatch):
    """The "always" filter that let every frame's advice reach its stack's line stayed in a process that ran a task
    (an in-process cluster, napari's console): that process then showed the detector's warning on every frame of
    every later run. Then it lasted while a task ran, for every thread of the process (s51), and later a
    ``warnings.showwarning`` hook hid the detector's warning in a task's thread. Now the advice is read from the
    detector, which gives no warning of it then (``track_cells(on_advice=)``): nothing process-wide is touched, not
    even while tasks run, two of them overlapping on two threads (s52), and the advice still reaches the console."""
    import threading
    import warnings

    from sam2_model.tracking import detection

    monkeypatch.setattr(detection, "MANY_SEEDS", 0)  # every frame's blobs are "too many"
    _write_stack(tmp_path, "a", seed=76)
    filters, hook = list(warnings.filters), warnings.showwarning
    table = batch(tmp_path / "a.tif", tmp_path / "out", client=client, auto=True, redetect_every=1, **MODEL)
    assert list(table["status"]) == ["ok"] and "candidate cells" in table.loc[0, "note"]
    err = capsys.readouterr().err
    assert "a: " in err and "candidate cells" in err and "UserWarning" not in err, err
    assert warnings.filters == filters and warnings.showwarning is hook

    task = batch_worker.StackTask("t", "", "", batch_worker.ModelSpec())
    first_in, second_out, first_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def first() -> None:
        with batch_worker.detector_advice(task):
            first_in.set()
            second_out.wait(30)
            seen["while the first runs"] = (list(warnings.filters) == filters, warnings.showwarning is hook)
        first_out.set()

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(30)
    with batch_worker.detector_advice(task):
        seen["both"] = (list(warnings.filters) == filters, warnings.showwarning is hook)
    second_out.set()
    first_out.wait(30)
    thread.join(30)
    assert seen == {"both": (True, True), "while the first runs": (True, True)}
    assert warnings.filters == filters and warnings.showwarning is hook
