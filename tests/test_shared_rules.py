"""Rules the command line, batch and the widget share, written once: the prompts' direction check (track --prompts
and batch), the -o check (track --prompts and --auto), the model options' help (track and batch), one read of each
manifest when a batch run is planned, and one per-frame measurement table (the widget's, its CSV, batch's)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2 import batch_outputs
from napari_sam2._cli_auto import CHECKPOINT_HELP, DEVICE_HELP, MODEL_HELP
from napari_sam2.batch_outputs import plan_run, stack_fingerprint, write_manifest
from napari_sam2.batch_worker import ModelSpec, StackTask, process_stack, stack_prompts
from napari_sam2.cli import main


class Reached(Exception):
    """Raised where the CLI would segment: every check passed."""


@pytest.fixture
def no_model(monkeypatch):
    """track stops where it would build the model or segment (its checks come first)."""
    import napari_sam2.cli as cli

    def reached(*args, **kwargs):
        raise Reached

    monkeypatch.setattr(cli, "build_model", reached)
    monkeypatch.setattr(cli, "segment", reached)


def _stack(tmp_path: Path) -> Path:
    frames = np.zeros((4, 32, 32), np.uint8)
    frames[:, 8:20, 8:20] = 200
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, frames, photometric="minisblack")
    return path


@pytest.mark.parametrize("rows, direction, refused", [
    (["0,1,10,10,1", "2,2,10,10,0"], "backward", True),  # negative clicks only, and backward from frame 0
    (["0,1,10,10,1", "1,2,5,5,0"], "both", True),  # negative clicks only (track refused it only once segmenting)
    (["0,1,10,10,1", "2,1,12,12,0"], "backward", True),  # nothing before frame 0, and a correction never reached
    (["2,1,10,10,1", "0,1,12,12,0"], "forward", True),  # a correction before the first prompted frame
    (["3,1,2,2,,8,8"], "forward", True),  # a box on the last frame, forward
    (["0,1,10,10,1", "2,1,12,12,0"], "both", False),  # a correction on a later frame
    (["1,1,2,2,,8,8", "1,1,5,5,0,,"], "forward", False),  # a box with a negative click
])
def test_track_and_batch_give_the_same_answer_on_a_prompts_csv(tmp_path, capsys, no_model, rows, direction,
                                                                refused):
    """The one rule (directions.check_prompted_way): the same refusal, in the same words and order, or both accept."""
    stack = _stack(tmp_path)
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("\n".join(["frame,obj_id,y,x,label,y1,x1"] + rows) + "\n")
    try:
        stack_prompts(prompts, (4, 32, 32), direction, "cli")
        batch_answer = None
    except ValueError as error:
        batch_answer = str(error)
    argv = ["track", str(stack), "--prompts", str(prompts), "-o", str(tmp_path / "labels.tif"),
            "--direction", direction]
    if batch_answer is None:
        with pytest.raises(Reached):
            main(argv)
    else:
        assert main(argv) == 2
        assert capsys.readouterr().err == f"napari-sam2: {batch_answer}\n"
    assert (batch_answer is not None) == refused
    assert batch_answer is None or batch_answer.startswith(f"{prompts}: ")


def test_the_first_refusal_is_the_same(tmp_path):
    """Negative clicks only comes before the direction; nothing to track before a correction never reached."""
    prompts = tmp_path / "p.csv"
    prompts.write_text("frame,obj_id,y,x,label\n0,1,10,10,1\n2,2,10,10,0\n")
    with pytest.raises(ValueError, match=r"object 2 has negative clicks only"):
        stack_prompts(prompts, (4, 32, 32), "backward", "cli")
    prompts.write_text("frame,obj_id,y,x,label\n0,1,10,10,1\n2,1,12,12,0\n")
    with pytest.raises(ValueError, match=r"--direction backward from the first prompted frame \(0\): there is nothing"):
        stack_prompts(prompts, (4, 32, 32), "backward", "cli")


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_track_and_batch_describe_the_model_options_in_one_text(capsys):
    """--model, --checkpoint and --device: one text each (batch adds what a cluster changes); batch accepts cuda:N."""
    track, batch = _help("track", capsys), _help("batch", capsys)
    for text in (MODEL_HELP, CHECKPOINT_HELP, DEVICE_HELP):
        assert text in track and text in batch
    assert "cuda:N" in batch


def test_output_checks_are_one_for_prompts_and_auto(tmp_path, capsys, no_model):
    """-o is checked by one function for track --prompts and track --auto: the same words for the same fault."""
    stack = _stack(tmp_path)
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("frame,obj_id,y,x,label\n0,1,10,10,1\n")
    (tmp_path / "labels.tif").write_bytes(b"")
    for output in ("labels.tif", "labels.png"):
        messages = []
        for mode in (["--prompts", str(prompts)], ["--auto"]):
            assert main(["track", str(stack), *mode, "-o", str(tmp_path / output)]) == 2
            messages.append(capsys.readouterr().err)
        assert messages[0] == messages[1] and "-o/--output" in messages[0], messages


def _results(tmp_path: Path, ours: int, others: int) -> tuple:
    """An output folder with complete results of ``ours`` stacks of the run and ``others`` stacks not in it."""
    out, stacks = tmp_path / "out", []
    for n in range(ours + others):
        stack = tmp_path / "in" / f"s{n}.tif"
        stack.parent.mkdir(exist_ok=True)
        stack.write_bytes(b"stack %d" % n)
        folder = out / f"s{n}"
        folder.mkdir(parents=True)
        (folder / "labels.tif").write_bytes(b"")
        write_manifest(folder, {"stack": str(stack.resolve()), "input": stack_fingerprint(stack), "name": f"s{n}",
                                "outputs": ["labels.tif"]})
        stacks.append(stack)
    return out, stacks[:ours]


def test_planning_a_run_reads_each_manifest_once(tmp_path, monkeypatch):
    """plan_run reads each manifest in OUT once (it read most four times: names, reuse, the others' rows)."""
    out, stacks = _results(tmp_path, ours=5, others=3)
    reads = []
    read_text = Path.read_text

    def counted(path: Path, *args, **kwargs) -> str:
        if path.name == batch_outputs.MANIFEST:
            reads.append(path.parent.name)
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counted)
    plan = plan_run(stacks, out, overwrite=False)
    assert sorted(plan.reused) == [f"s{n}" for n in range(5)]
    assert sorted(plan.others) == ["s5", "s6", "s7"]
    assert sorted(reads) == [f"s{n}" for n in range(8)]  # each once


def test_a_manifest_that_is_not_an_object_is_no_result(tmp_path):
    """A manifest.json holding a JSON list (not written by batch) is an entry of the user's, not a crash."""
    out, stacks = _results(tmp_path, ours=2, others=0)
    (out / "odd").mkdir()
    (out / "odd" / "manifest.json").write_text(json.dumps(["not", "a", "record"]))
    plan = plan_run(stacks, out, overwrite=False)
    assert sorted(plan.reused) == ["s0", "s1"] and not plan.others


def test_batch_measures_zarr_and_tiff_labels_alike(tmp_path):
    """objects.csv is the session's table (controller.measurements) whether the labels go to TIFF or OME-Zarr: a
    colour stack's mean intensity too (the zarr path measured it as NaN)."""
    from sam2_model.synthetic import make_timelapse

    timelapse = make_timelapse(num_frames=4, shape=(64, 64), num_cells=2, seed=3, dtype="uint8", divisions=False,
                               enter_leave=False)
    grey = timelapse.image
    tifffile.imwrite(tmp_path / "rgb.tif", np.stack([grey, grey // 2, np.flip(grey, axis=-1)], -1), photometric="rgb")
    obj = int(np.unique(timelapse.labels[0])[1])
    ys, xs = np.nonzero(timelapse.labels[0] == obj)
    (tmp_path / "rgb.csv").write_text(f"frame,obj_id,y,x,label\n0,{obj},{ys.mean():.1f},{xs.mean():.1f},1\n")
    tables = []
    for zarr_above in (1, 2**40):
        out = tmp_path / f"out{zarr_above}"
        task = StackTask("rgb", str(tmp_path / "rgb.tif"), str(out), ModelSpec("demo", "download", "cpu", 256),
                         prompts=str(tmp_path / "rgb.csv"), zarr_above=zarr_above)
        row = process_stack(task)
        assert row["status"] == "ok", row["error"]
        with open(out / "rgb" / "objects.csv") as handle:
            tables.append(list(csv.DictReader(handle)))
    assert tables[0] == tables[1] and tables[0]
    assert all(np.isfinite(float(r["mean_intensity"])) for r in tables[0])
