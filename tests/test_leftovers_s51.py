"""Leftovers of stop 51: one "auto" input-size rule for every --auto route; ``sam2-train --help`` without torch;
the batch's advice capture per task."""

from __future__ import annotations

import subprocess
import sys

import pytest


# --- sam2-train --help and a wrong argument answer without torch --------------------------------------------------

def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_sam2_train_help_and_a_wrong_argument_do_not_import_torch():
    """sam2-train --help took ~2.5 s (6 s on a busy machine): sam2_model/__init__ imported torch and the model, and
    the command's module the training loop, before argparse ran. Now neither --help nor a wrong argument's error
    imports torch; the help is the same text."""
    code = ("import sys, io, contextlib\n"
            "import sam2_model.train.__main__ as m\n"
            "sys.argv = ['sam2-train']\n"
            "for argv in (['--help'], ['--out', 'x', '--bogus'], ['--out', 'x', '--steps', 'many']):\n"
            "    out, err = io.StringIO(), io.StringIO()\n"
            "    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
            "        try:\n"
            "            m.main(argv)\n"
            "        except SystemExit as stop:\n"
            "            code = stop.code\n"
            "    print(argv[-1], code, 'usage: sam2-train' in out.getvalue() + err.getvalue())\n"
            "print('torch' in sys.modules, any(n.startswith('sam2_model.modeling') for n in sys.modules))\n")
    lines = _run(code).splitlines()
    assert lines == ["--help 0 True", "--bogus 2 True", "many 2 True", "False False"], lines


def test_every_public_name_of_sam2_model_and_its_training_api_still_imports():
    """The lazy package keeps ``from sam2_model import X`` (and ``sm.X``, ``sm.<submodule>``) working for every name
    of ``__all__``, and the training API's names too; TrainSettings is one class wherever it is imported from."""
    code = ("import sam2_model as sm, sam2_model.train as t\n"
            "import importlib\n"
            "print('torch' in __import__('sys').modules)\n"
            "for n in sm.__all__: exec(f'from sam2_model import {n}')\n"
            "for n in t.__all__: exec(f'from sam2_model.train import {n}')\n"
            "from sam2_model.train.loop import TrainSettings as L\n"
            "print(L is t.TrainSettings, sorted(sm.__all__) == sorted(set(dir(sm)) & set(sm.__all__)))\n"
            "print(sm.frames_io.__name__, sm.build_model.__module__)\n"
            "try:\n"
            "    sm.no_such_name\n"
            "except AttributeError as e:\n"
            "    print(e)\n")
    lines = _run(code).splitlines()
    assert lines == ["False", "True True", "sam2_model.frames_io sam2_model.build",
                     "module 'sam2_model' has no attribute 'no_such_name'"], lines


# --- one "auto" input-size rule for track --auto, batch --auto and track_cells ------------------------------------

@pytest.fixture(scope="module")
def small_nuclei(tmp_path_factory):
    """A 2-frame 256 x 256 stack of five ~6 px nuclei: measured, "auto" picks 512 px; from a given cell diameter
    16-40 px, 256 px."""
    import tifffile

    from sam2_model.synthetic import make_timelapse

    movie = make_timelapse(num_frames=2, shape=(256, 256), num_cells=5, seed=3, dtype="uint8", divisions=False,
                           enter_leave=False, radius_fraction=0.012)
    folder = tmp_path_factory.mktemp("s51_sizes")
    tifffile.imwrite(folder / "stack.tif", movie.image, photometric="minisblack")
    return movie.image, folder


def _three_routes(stack, folder, diameter, capsys, caplog, tag):
    """The "auto" input size (and its line) that track --auto, track_cells and batch --auto use for ``stack`` with
    ``diameter`` ((min, max) given, or None), each run for real with the embedded demo model."""
    import json
    import logging

    import distributed

    from napari_sam2 import track_cells
    from napari_sam2.batch import batch
    from napari_sam2.cli import main

    given = [] if diameter is None else ["--cell-diameter", *(f"{v:g}" for v in diameter)]
    kwargs = {} if diameter is None else {"cell_diameter": diameter}
    capsys.readouterr()
    assert main(["track", str(folder / "stack.tif"), "--auto", "--image-size", "auto", "--device", "cpu",
                 "--checkpoint", "embedded", "--table", str(folder / f"{tag}.csv"), *given]) == 0
    cli = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("--image-size auto:"))
    with caplog.at_level(logging.INFO, logger="napari_sam2.console_tracking"):
        track_cells(stack, model="demo", checkpoint="embedded", device="cpu", image_size="auto", **kwargs)
    console = next((r.getMessage() for r in caplog.records if r.getMessage().startswith("image_size auto:")), "")
    caplog.clear()
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        table = batch(folder / "stack.tif", folder / f"out_{tag}", client=client, auto=True, model="demo",
                      checkpoint="embedded", device="cpu", image_size="auto", progress=False, **kwargs)
    assert list(table["status"]) == ["ok"], table
    manifest = json.loads((folder / f"out_{tag}" / "stack" / "manifest.json").read_text())
    return (cli.removeprefix("--image-size auto: "), console.removeprefix("image_size auto: "),
            manifest["image_size_picked"], manifest["image_size"])


def test_track_auto_batch_auto_and_track_cells_pick_one_input_size_from_a_given_cell_diameter(
        small_nuclei, capsys, caplog):
    """track --auto --cell-diameter A B --image-size auto picked the size from the diameter given, while track_cells
    and batch --auto measured the frames whatever diameter was given (512 px here, against 256 px from 16-40 px
    cells). Now one rule (image_size.tracking_size_choice): a given diameter decides, else the frames are measured;
    the three routes pick the same size and say which."""
    stack, folder = small_nuclei
    cli, console, batch_line, size = _three_routes(stack, folder, (16.0, 40.0), capsys, caplog, "given")
    assert (cli.split(" px")[0], size) == ("input size 256", 256), (cli, size)  # before: batch measured, 512
    said = "input size 256 px (from the cell diameter 16-40 px you gave: its smallest cells, 16 px wide, in 256 x 256 "
    assert cli.startswith(said) and console == cli and batch_line == cli and size == 256, (cli, console, batch_line)
    cli, console, batch_line, size = _three_routes(stack, folder, None, capsys, caplog, "measured")
    assert cli.startswith("input size 512 px (objects ~") and "measured on frame 0" in cli, cli
    assert console == cli and batch_line == cli and size == 512, (cli, console, batch_line)


def test_the_rule_itself(small_nuclei):
    """tracking_size_choice: (24, 48) given -> 256 px (its smallest cells), whatever the frames measure (512 px);
    None -> the frames' measure (auto_image_size_from)."""
    from napari_sam2.image_size import auto_image_size_from, tracking_size_choice

    stack, _ = small_nuclei
    choice = tracking_size_choice(stack, "demo", 0, cell_diameter=(24, 48))
    assert (choice.image_size, choice.given_diameter, choice.frame_shape) == (256, (24.0, 48.0), (256, 256))
    assert tracking_size_choice(stack, "demo", 1) == auto_image_size_from(stack, "demo", 1)
    assert tracking_size_choice(stack, "demo", 0).image_size == 512


# --- batch: the detector's advice per task, no process-wide warning filter ----------------------------------------

ADVICE = "12 candidate cells (blobs 8-40 px wide) on one 96 x 96 frame: each is clicked"


def test_tasks_on_threads_leave_the_users_warnings_and_filters_alone():
    """While a stack ran, batch put an "always" filter for the advice in front of the process's filters: on a worker
    running two stacks on threads, or an in-process cluster in the user's session, the user's own "ignore" of that
    advice stopped applying (their thread showed it) and every thread's repeats were shown. Now the filters are not
    touched: with two tasks inside at once, every thread (theirs and the user's) warns as the user's filters say,
    and other warnings of the task threads are shown (s52: nothing of batch hides a warning any more; the detector
    gives none of its advice to a caller that takes it, track_cells(on_advice=))."""
    import threading
    import warnings

    import napari_sam2.batch_worker as worker

    task = worker.StackTask("t", "", "", worker.ModelSpec())
    inside, done = threading.Barrier(3), threading.Event()

    def run_task(name: str) -> None:
        with worker.detector_advice(task):
            inside.wait(30)
            warnings.warn(f"{name}: {ADVICE}", UserWarning)  # advice words in a task's thread: the user's ignore
            warnings.warn(f"{name}: another warning of the task's thread", UserWarning)  # shown
            done.wait(30)

    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", message=f".*{worker.MANY_CANDIDATES}")  # the user's word
        filters = list(warnings.filters)
        threads = [threading.Thread(target=run_task, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        inside.wait(30)
        unchanged = list(warnings.filters) == filters
        warnings.warn(f"user: {ADVICE}", UserWarning)  # ignored, as the user asked
        warnings.warn("user: their own warning", UserWarning)
        done.set()
        for thread in threads:
            thread.join(30)
    shown = sorted(str(entry.message) for entry in log)
    assert unchanged, "the process's warning filters changed while tasks ran"
    assert shown == ["a: another warning of the task's thread", "b: another warning of the task's thread",
                     "user: their own warning"], shown


def test_two_stacks_at_once_each_get_their_advice_and_the_filters_never_change(tmp_path, capsys, monkeypatch):
    """Two stacks on one worker's two threads, the user having silenced the detector's warning: each stack's note
    and console line still give its advice (read from its own detector, not caught from the process's warnings),
    and the process's filters stay the user's for the whole run (looked at every few ms while it runs)."""
    import shutil
    import threading
    import warnings

    import distributed

    from napari_sam2.batch import batch
    from sam2_model.tracking import detection
    from test_batch import MODEL, _write_stack

    monkeypatch.setattr(detection, "MANY_SEEDS", 0)  # every frame's blobs are "too many"
    _write_stack(tmp_path, "a", seed=77)
    shutil.copy(tmp_path / "a.tif", tmp_path / "b.tif")
    changed, stop = [], threading.Event()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*candidate cells")  # the user's word
        filters = list(warnings.filters)

        def watch() -> None:
            while not stop.wait(0.005):
                if list(warnings.filters) != filters:
                    changed.append(list(warnings.filters)[:1])

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                                    dashboard_address=":0") as client:
                table = batch([tmp_path / "a.tif", tmp_path / "b.tif"], tmp_path / "out", client=client, auto=True,
                              redetect_every=1, **MODEL)
        finally:
            stop.set()
            watcher.join(30)
    assert list(table["status"]) == ["ok", "ok"]
    assert not changed, changed[:1]
    err = capsys.readouterr().err
    for name in ("a", "b"):
        said = [line for line in err.splitlines() if line.startswith(f"{name}: ") and "candidate cells" in line]
        assert len(said) == 1 and "--cell-diameter MIN MAX" in said[0], err
    assert all("candidate cells (blobs 8-40 px wide)" in note for note in table["note"]), list(table["note"])
