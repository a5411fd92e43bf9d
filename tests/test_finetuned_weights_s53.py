"""Fine-tuned weights behave the same in every route (explorer X7, finding 6): ``build_model(name, checkpoint=PATH)``
reads the training record beside the file (RUN/weights.json) or stored inside it (weights.pt's "record"): the trained
input size applies when none is asked for (an asked size wins, with a warning naming both), a run stopped early warns
with its steps, an unreadable or foreign record is ignored with a warning. The CLI's track and the console's
track_cells build through it and run at the trained size; the shipped demo weights are untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import tifffile
import torch

import sam2_model
import sam2_model.build as build
from sam2_model.build import CheckpointError, build_model, embedded_weights_path
from sam2_model.train.loop import TrainSettings, train

TRAINED = 64  # the runs' input size; the demo preset's own is 256


def _tiny(out: Path, steps: int) -> TrainSettings:
    return TrainSettings(out=str(out), model="demo", image_size=TRAINED, clip_len=2, clips_per_step=1, max_objects=2,
                         steps=steps, warmup_steps=1, save_every=1000, seed=5, augment=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    """Two real tiny runs on synthetic clips at 64 px: "done" (1 step of 1) and "stopped" (cancelled after step 1
    of 3, as the widget's Cancel stops it)."""
    root = tmp_path_factory.mktemp("runs")
    train(_tiny(root / "done", 1), progress=lambda step, row: True)
    train(_tiny(root / "stopped", 3), progress=lambda step, row: False)
    return {"done": root / "done" / "weights.pt", "stopped": root / "stopped" / "weights.pt"}


def _built(**kwargs: object) -> "tuple[sam2_model.SAM2Model, List[str]]":
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = build_model("demo", device="cpu", **kwargs)
    return model, [str(w.message) for w in caught]


def test_a_run_s_weights_build_at_the_size_they_were_trained_at(runs: Dict[str, Path]) -> None:
    """Before: 256 px (the preset's) unless the caller repeated 64."""
    model, said = _built(checkpoint=runs["done"])
    assert model.image_size == TRAINED and said == []
    assert build.trained_input_size("demo", runs["done"]) == TRAINED


def test_an_asked_size_wins_and_the_warning_names_both(runs: Dict[str, Path]) -> None:
    model, said = _built(checkpoint=str(runs["done"]), image_size=128)
    assert model.image_size == 128
    assert len(said) == 1 and "trained at input size 64 px" in said[0] and "runs at 128 px as asked" in said[0]
    _, said = _built(checkpoint=str(runs["done"]), image_size=TRAINED)  # the trained size asked for: nothing to say
    assert said == []


def test_a_run_stopped_early_warns_once_with_its_steps(runs: Dict[str, Path]) -> None:
    record = json.loads(runs["stopped"].with_suffix(".json").read_text())
    assert (record["steps"], record["settings"]["steps"], record["stopped_by"]) == (1, 3, "progress")
    model, said = _built(checkpoint=runs["stopped"])
    assert model.image_size == TRAINED
    early = [s for s in said if "stopped early" in s]
    assert len(early) == 1 and "step 1 of 3" in early[0] and "a Cancel" in early[0], said


def test_weights_copied_alone_keep_their_record_inside(runs: Dict[str, Path], tmp_path: Path) -> None:
    """Before: weights.pt held only {"model": ...}; a copy without weights.json ran at 256 px and said nothing."""
    payload = torch.load(runs["stopped"], weights_only=True)
    assert set(payload) == {"model", "record"} and payload["record"]["settings"]["image_size"] == TRAINED
    copy = tmp_path / "mine.pt"
    shutil.copy(runs["stopped"], copy)
    model, said = _built(checkpoint=copy)
    assert model.image_size == TRAINED
    assert [s for s in said if "step 1 of 3" in s and str(copy) in s]
    assert build.trained_input_size("demo", copy) == TRAINED
    record = build.weights_record(copy, payload["record"])
    assert record is not None and record.where == f"the record inside {copy}"


def test_old_weights_without_a_record_load_and_foreign_tensors_are_still_refused(runs: Dict[str, Path],
                                                                                  tmp_path: Path) -> None:
    payload = torch.load(runs["done"], weights_only=True)
    old = tmp_path / "old.pt"
    torch.save({"model": payload["model"]}, old)  # a weights.pt of before this record
    model, said = _built(checkpoint=old)
    assert model.image_size == 256 and said == []
    assert torch.equal(model.state_dict()["no_mem_embed"], payload["model"]["no_mem_embed"])
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {**payload["model"], "extra.weight": torch.zeros(2)}, "record": payload["record"]}, foreign)
    with pytest.raises(CheckpointError, match="unexpected keys: extra.weight"):
        build_model("demo", checkpoint=foreign, device="cpu")


@pytest.mark.parametrize("text", ["{not json", '{"tool": "another", "version": 3}', "[1, 2]",
                                  '{"settings": {"image_size": "big"}}', '{"settings": {"model": ["x"]}}'])
def test_an_unreadable_or_foreign_json_beside_is_ignored_with_a_warning(runs: Dict[str, Path], tmp_path: Path,
                                                                       text: str) -> None:
    """Never a crash: the record inside the file is used instead (a file without one: the preset's size)."""
    folder = tmp_path / "copy"
    folder.mkdir()
    shutil.copy(runs["done"], folder / "weights.pt")
    (folder / "weights.json").write_text(text)
    model, said = _built(checkpoint=folder / "weights.pt")
    assert model.image_size == TRAINED  # from the record inside
    assert len(said) == 1 and f"{folder / 'weights.json'} is ignored" in said[0]
    torch.save({"model": torch.load(runs["done"], weights_only=True)["model"]}, folder / "weights.pt")
    model, said = _built(checkpoint=folder / "weights.pt")
    assert model.image_size == 256 and len(said) == 1 and "is ignored" in said[0]


def test_a_foreign_json_beside_weights_without_a_record_never_crashes(runs: Dict[str, Path], tmp_path: Path) -> None:
    """Before (review R1, finding 1): settings.model holding a list (no dict key) raised TypeError from build_model,
    from weights_record and from the message on a run's folder given as the checkpoint."""
    folder = tmp_path / "run"
    folder.mkdir()
    torch.save({"model": torch.load(runs["done"], weights_only=True)["model"]}, folder / "weights.pt")
    (folder / "weights.json").write_text('{"settings": {"model": ["x"], "steps": 3}, "steps": 1}')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert build.weights_record(folder / "weights.pt") is None
    assert len(caught) == 1 and "settings.model is ['x'], not a model name" in str(caught[0].message)
    assert build.trained_input_size("demo", folder / "weights.pt") is None
    with pytest.raises(CheckpointError) as info:
        build_model("demo", checkpoint=folder, device="cpu")
    assert str(info.value) == f"{folder} is a training run's folder, not a checkpoint file: use {folder / 'weights.pt'}"


def test_an_outdated_json_beside_does_not_override_the_record_inside(runs: Dict[str, Path], tmp_path: Path) -> None:
    """Before (review R1, finding 2): the JSON beside won over the record saved inside the weights, silently: a run
    killed between writing weights.pt and weights.json, or a weights.pt copied over another run's, built at the JSON's
    128 px and warned that a finished run had stopped early. Now the record inside is used and the mismatch is said."""
    payload = torch.load(runs["done"], weights_only=True)
    inside = json.loads(json.dumps(payload["record"]))
    inside["steps"], inside["settings"]["steps"], inside["stopped_by"] = 3, 3, "steps"
    folder = tmp_path / "run"
    folder.mkdir()
    torch.save({"model": payload["model"], "record": inside}, folder / "weights.pt")
    beside = json.loads(json.dumps(inside))
    beside["steps"], beside["settings"]["image_size"], beside["stopped_by"] = 1, 128, "progress"
    (folder / "weights.json").write_text(json.dumps(beside))
    model, said = _built(checkpoint=folder / "weights.pt")
    assert model.image_size == TRAINED
    assert not [s for s in said if "stopped early" in s], said
    assert len(said) == 1, said
    assert f"{folder / 'weights.json'} does not match the record inside {folder / 'weights.pt'}" in said[0]
    assert "input size 128 px, step 1 of 3, stopped by a Cancel beside" in said[0]
    assert "input size 64 px, step 3 of 3 inside" in said[0] and "the record inside is used" in said[0]
    assert build.trained_input_size("demo", folder / "weights.pt") == TRAINED
    with pytest.raises(CheckpointError) as info:  # the run's folder given: no false "stopped early" either
        build_model("demo", checkpoint=folder, device="cpu")
    assert "stopped early" not in str(info.value)
    (folder / "weights.json").write_text(json.dumps({**inside, "note": "mine"}))  # the same facts: nothing to say
    model, said = _built(checkpoint=folder / "weights.pt")
    assert model.image_size == TRAINED and said == []


def test_a_run_writes_its_json_atomically_and_equal_to_the_record_inside(runs: Dict[str, Path]) -> None:
    for weights in runs.values():
        assert json.loads(weights.with_suffix(".json").read_text()) == \
            torch.load(weights, weights_only=True)["record"]
        assert not [p.name for p in weights.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_the_shipped_demo_weights_load_as_before_and_are_untouched() -> None:
    path = embedded_weights_path()
    head = subprocess.run(["git", "-C", str(Path(__file__).parents[1]), "ls-tree", "HEAD",
                           "src/sam2_model/weights/demo.pt"], capture_output=True, text=True).stdout.split()
    if head:  # the file as committed, bit for bit
        assert subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True).stdout.strip() == \
            head[2]
    by_path, said = _built(checkpoint=path)
    assert said == [] and by_path.image_size == 256
    embedded, _ = _built(checkpoint="embedded")
    for key, value in embedded.state_dict().items():
        assert torch.equal(value, by_path.state_dict()[key])
    record = build.weights_record(path)
    assert record is not None and record.image_size == 256 and not record.stopped_early


@pytest.fixture
def built_sizes(monkeypatch: pytest.MonkeyPatch) -> List[int]:
    """The input sizes of the models build_model builds (every route calls it: the CLI through sam2_model.build, the
    console through sam2_model.build_model); the real models, only their size noted."""
    sizes: List[int] = []
    real = build.build_model

    def noting(*args: object, **kwargs: object) -> sam2_model.SAM2Model:
        model = real(*args, **kwargs)
        sizes.append(model.image_size)
        return model

    monkeypatch.setattr(build, "build_model", noting)
    monkeypatch.setattr(sam2_model, "build_model", noting)
    return sizes


def _movie_files(tmp_path: Path) -> "tuple[Path, Path, np.ndarray]":
    from sam2_model.evaluation import click_point, clickable_objects
    from sam2_model.synthetic import make_timelapse

    movie = make_timelapse(num_frames=3, shape=(64, 64), num_cells=3, seed=5, radius_fraction=0.12)
    rows = ["frame,obj_id,y,x,label"]
    for obj_id in clickable_objects(movie.labels[0])[:2]:
        x, y = click_point(movie.labels[0] == obj_id)
        rows.append(f"0,{obj_id},{y},{x},1")
    tifffile.imwrite(tmp_path / "stack.tif", movie.image, photometric="minisblack")
    (tmp_path / "p.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "stack.tif", tmp_path / "p.csv", movie.image


def test_cli_track_runs_a_run_s_weights_at_their_trained_size(runs: Dict[str, Path], tmp_path: Path,
                                                              built_sizes: List[int]) -> None:
    from napari_sam2 import cli

    stack, prompts, _ = _movie_files(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli.main(["track", str(stack), "--prompts", str(prompts), "-o", str(tmp_path / "out.tif"),
                         "--device", "cpu", "--checkpoint", str(runs["stopped"])]) == 0
    assert built_sizes == [TRAINED]
    assert [w for w in caught if "step 1 of 3" in str(w.message)]  # the stopped run is said


def test_console_track_cells_runs_a_run_s_weights_at_their_trained_size(runs: Dict[str, Path], tmp_path: Path,
                                                                        built_sizes: List[int]) -> None:
    from napari_sam2 import track_cells

    _, _, image = _movie_files(tmp_path)
    track_cells(image, checkpoint=str(runs["done"]), device="cpu", cell_diameter=(6, 24))
    assert built_sizes == [TRAINED]


def test_the_cli_sizes_an_auto_object_window_for_the_trained_input_size(runs: Dict[str, Path]) -> None:
    """`track --checkpoint run/weights.pt --object-window auto` without --image-size: the model builds at the trained
    64 px, so the window is measured for 64 px (it was for the preset's 256 px: a window 4x too big)."""
    from sam2_model.synthetic import make_timelapse

    from napari_sam2.cli import pick_object_window
    from napari_sam2.image_size import resolve_object_window

    frame = make_timelapse(num_frames=1, shape=(512, 512), num_cells=12, seed=2, divisions=False, enter_leave=False,
                           radius_fraction=0.03).image[0]
    trained = resolve_object_window("auto", frame, "demo", TRAINED)
    assert trained != resolve_object_window("auto", frame, "demo", 256)  # the case this test is about
    assert pick_object_window("auto", frame, "demo", None, 0, str(runs["done"])) == trained
    assert pick_object_window("auto", frame, "demo", 256, 0, str(runs["done"])) == resolve_object_window(
        "auto", frame, "demo", 256)  # an asked size wins
