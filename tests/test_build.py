"""Building presets and loading checkpoints: strictness and the errors users see."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import sam2_model as sm
from sam2_model.build import CheckpointError, read_state_dict


@pytest.fixture(scope="module")
def tiny_state(tmp_path_factory):
    model = sm.build_model("sam2.1_hiera_tiny", device="cpu", image_size=256)
    path = tmp_path_factory.mktemp("ckpt") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    return path, model.state_dict()


def test_list_models_names_all_official_presets():
    names = sm.list_models()
    for size in ("tiny", "small", "base_plus", "large"):
        assert f"sam2_hiera_{size}" in names and f"sam2.1_hiera_{size}" in names


def test_unknown_model_name_lists_known_ones():
    with pytest.raises(ValueError, match="known models: .*sam2.1_hiera_tiny"):
        sm.build_model("sam2.1_hiera_huge")


def test_image_size_override_keeps_parameters(tiny_state):
    path, state = tiny_state
    model = sm.build_model("sam2.1_hiera_tiny", checkpoint=path, device="cpu", image_size=512)
    assert model.image_size == 512
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key])


def test_bad_image_size_is_rejected():
    with pytest.raises(ValueError, match="multiple of 32"):
        sm.build_model("sam2.1_hiera_tiny", image_size=250)


def test_strict_load_roundtrip_and_identify(tiny_state):
    path, state = tiny_state
    assert sm.identify_preset(state) == "sam2.1_hiera_tiny"
    model = sm.build_model("sam2.1_hiera_tiny", checkpoint=path, device="cpu")
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_checkpoint_of_another_size_is_named(tiny_state):
    path, _ = tiny_state
    with pytest.raises(CheckpointError, match="this file holds sam2.1_hiera_tiny weights; you asked for sam2.1_hiera_small"):
        sm.build_model("sam2.1_hiera_small", checkpoint=path, device="cpu")


def test_checkpoint_of_other_version_is_named(tiny_state):
    path, _ = tiny_state
    with pytest.raises(CheckpointError) as info:
        sm.build_model("sam2_hiera_tiny", checkpoint=path, device="cpu")
    message = str(info.value)
    assert "this file holds sam2.1_hiera_tiny weights; you asked for sam2_hiera_tiny" in message
    assert "unexpected keys" in message and "no_obj_embed_spatial" in message


def test_missing_unexpected_and_mismatched_keys_are_listed(tiny_state, tmp_path):
    _, state = tiny_state
    broken = dict(state)
    del broken["no_mem_embed"]
    broken["extra.weight"] = torch.zeros(3)
    broken["maskmem_tpos_enc"] = torch.zeros(5, 1, 1, 64)
    path = tmp_path / "broken.pt"
    torch.save({"model": broken}, path)
    with pytest.raises(CheckpointError) as info:
        sm.build_model("sam2.1_hiera_tiny", checkpoint=path, device="cpu")
    message = str(info.value)
    assert "missing keys: no_mem_embed" in message
    assert "unexpected keys: extra.weight" in message
    assert "maskmem_tpos_enc: file (5, 1, 1, 64) vs model (7, 1, 1, 64)" in message


def test_truncated_file_says_so(tiny_state, tmp_path):
    path, _ = tiny_state
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: 100_000])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint: its zip archive is cut") as info:
        sm.build_model("sam2.1_hiera_tiny", checkpoint=truncated, device="cpu")
    assert "download" not in str(info.value)  # the user's own file: no advice to download it again


def test_truncated_file_in_the_download_cache_says_download_again(tiny_state, tmp_path, monkeypatch):
    from sam2_model import checkpoints

    path, _ = tiny_state
    monkeypatch.setenv(checkpoints.CACHE_ENV, str(tmp_path / "cache"))
    cached = checkpoints.checkpoint_path("sam2.1_hiera_tiny")
    cached.parent.mkdir()
    cached.write_bytes(path.read_bytes()[: 100_000])
    with pytest.raises(CheckpointError, match="download cache.*delete it and download it again"):
        sm.build_model("sam2.1_hiera_tiny", checkpoint="download", device="cpu")


def _fake_resume_file(folder: Path) -> Path:
    """A last.pt as sam2_model.train.loop writes it (model, optimizer, step, settings, sessions): its
    sessions hold torch.__version__, a TorchVersion, which torch.load(weights_only=True) refuses."""
    folder.mkdir()
    state = sm.build_model("demo", device="cpu").state_dict()
    torch.save({"model": state}, folder / "weights.pt")
    last = folder / "last.pt"
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "step": 1, "seconds": 0.5,
                "clip_position": 2, "settings": {"steps": 1}, "sessions": [{"torch": torch.__version__}]}, last)
    return last


def test_training_resume_file_points_to_its_weights(tmp_path):
    last = _fake_resume_file(tmp_path / "run")
    with pytest.raises(CheckpointError) as info:
        sm.build_model("demo", checkpoint=last, device="cpu")
    message = str(info.value)
    assert "training run's resume file" in message and str(tmp_path / "run" / "weights.pt") in message
    assert "weights_only" not in message and "download" not in message and "\n" not in message
    sm.build_model("demo", checkpoint=tmp_path / "run" / "weights.pt", device="cpu")  # the advice works


def test_image_file_is_not_a_checkpoint(tmp_path):
    import tifffile

    image = tmp_path / "crop.tif"
    tifffile.imwrite(image, np.zeros((2, 32, 32), np.uint16))
    with pytest.raises(CheckpointError) as info:
        sm.build_model("demo", checkpoint=image, device="cpu")
    message = str(info.value)
    assert f"{image} is not a readable PyTorch checkpoint: it is a TIFF image" in message
    assert "weights_only" not in message and "download" not in message and "\n" not in message


def test_python_objects_besides_tensors_are_named(tmp_path):
    path = tmp_path / "objects.pt"
    torch.save({"model": {}, "when": __import__("datetime").date(2024, 1, 1)}, path)
    with pytest.raises(CheckpointError, match="holds Python objects \\(datetime.date\\)") as info:
        read_state_dict(path)
    assert "weights_only" not in str(info.value) and "\n" not in str(info.value)


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("these are my notes, not weights")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_state_dict(text)
    other = tmp_path / "other.pt"
    torch.save({"model": {"weights": [1, 2, 3]}}, other)
    with pytest.raises(CheckpointError, match="does not hold a SAM 2 state dict"):
        read_state_dict(other)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        sm.build_model("sam2.1_hiera_tiny", checkpoint="/nonexistent/sam2.1_hiera_tiny.pt")


def test_device_resolution():
    assert sm.resolve_device("cpu") == torch.device("cpu")
    auto = sm.resolve_device("auto")
    assert auto.type in {"cuda", "mps", "cpu"}
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            sm.resolve_device("cuda")


def test_unknown_device_lists_what_is_accepted():
    for device in ("gpu", "cuda:x"):
        if device.startswith("cuda") and not torch.cuda.is_available():
            continue  # said as "CUDA is not available" (above)
        with pytest.raises(ValueError, match=rf"device must be auto, cpu, cuda\[:N\] or mps, got '{device}'"):
            sm.resolve_device(device)
    with pytest.raises(ValueError, match="device must be"):  # before any weights are read
        sm.build_model("demo", checkpoint="/nonexistent/weights.pt", device="gpu")


def test_weights_vocabulary_and_the_old_spellings():
    from sam2_model.build import Weights, embedded_weights_path, resolve_weights

    assert resolve_weights("demo", None) is Weights.EMBEDDED  # old: None meant embedded for the demo
    assert resolve_weights("demo", "download") is Weights.EMBEDDED
    assert resolve_weights("demo", "Embedded") is Weights.EMBEDDED
    assert resolve_weights("sam2.1_hiera_tiny", None) is Weights.RANDOM  # old: None meant random otherwise
    assert resolve_weights("sam2.1_hiera_tiny", "download") is Weights.DOWNLOAD
    assert resolve_weights("sam2.1_hiera_tiny", "none") is Weights.RANDOM
    assert resolve_weights("demo", Weights.RANDOM) is Weights.RANDOM
    assert resolve_weights("demo", "runs/x/weights.pt") == Path("runs/x/weights.pt")
    with pytest.raises(ValueError, match="checkpoint='embedded': only the demo model"):
        resolve_weights("sam2.1_hiera_tiny", "embedded")
    with pytest.raises(ValueError, match="checkpoint must be one of 'embedded', 'download', 'random'"):
        resolve_weights("demo", 3)
    embedded = sm.build_model("demo", checkpoint=Weights.EMBEDDED, device="cpu")
    by_path = sm.build_model("demo", checkpoint=embedded_weights_path(), device="cpu")
    random = sm.build_model("demo", checkpoint="random", device="cpu")
    key = "sam_mask_decoder.iou_token.weight"
    assert torch.equal(embedded.state_dict()[key], by_path.state_dict()[key])
    assert not torch.equal(embedded.state_dict()[key], random.state_dict()[key])


def _track_argv(tmp_path: Path, model: str, checkpoint: str) -> list:
    """napari-sam2 track on a tiny two-frame stack with one click, with ``model`` and ``checkpoint``."""
    import tifffile

    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((2, 64, 64), np.uint16), photometric="minisblack")
    (tmp_path / "p.csv").write_text("frame,obj_id,y,x,label\n0,1,30,30,1\n")
    return ["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "p.csv"), "-o",
            str(tmp_path / "out.tif"), "--model", model, "--checkpoint", checkpoint, "--device", "cpu"]


def test_weights_of_another_preset_say_which_model_to_pick_in_a_few_lines(tmp_path, capsys):
    """The demo's weights given to an official preset: the first line says which model (--model demo on the
    command line, build_model('demo') in Python); the key differences follow as counts and a few names."""
    from napari_sam2.cli import main as cli_main

    from sam2_model.build import embedded_weights_path

    demo = embedded_weights_path()
    with pytest.raises(CheckpointError) as info:
        sm.build_model("sam2.1_hiera_tiny", checkpoint=demo, device="cpu")
    message = str(info.value)
    first, rest = message.split("\n", 1)
    assert info.value.held_preset == "demo"
    assert "this file holds demo weights; you asked for sam2.1_hiera_tiny" in first
    assert "--model demo" in first and "build_model('demo', ...)" in first and len(first) < 250
    assert "missing keys: " in rest and " in all)" in rest and len(message) < 1200, message
    assert rest.count("\n") == 0 and rest.count(", ...") >= 1
    assert cli_main(_track_argv(tmp_path, "sam2.1_hiera_tiny", str(demo))) == 2
    err = capsys.readouterr().err
    assert "--model demo" in err.splitlines()[0] and len(err) < 1200, err
    assert not (tmp_path / "out.tif").exists()


def test_a_run_folder_given_as_checkpoint_names_its_weights_file(tmp_path, capsys):
    """A training run's folder is not read as a file: the error names RUN/weights.pt (and says when its run stopped
    early), for build_model, napari-sam2 track --checkpoint and segment(checkpoint=...)."""
    import json

    from napari_sam2.api import segment
    from napari_sam2.cli import main as cli_main

    run = tmp_path / "runs" / "mine"
    run.mkdir(parents=True)
    (run / "last.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is a training run's folder, not a checkpoint file, and has no "
                                              "weights.pt yet"):
        sm.build_model("demo", checkpoint=run, device="cpu")
    torch.save({"model": sm.build_model("demo", device="cpu").state_dict()}, run / "weights.pt")
    expected = f"{run} is a training run's folder, not a checkpoint file: use {run / 'weights.pt'}"
    with pytest.raises(CheckpointError) as info:
        sm.build_model("demo", checkpoint=str(run), device="cpu")
    assert str(info.value) == expected
    (run / "weights.json").write_text(json.dumps({"steps": 1, "settings": {"steps": 50}}))
    with pytest.raises(CheckpointError, match="holds the weights of step 1 of 50: the run stopped early"):
        segment(np.zeros((2, 64, 64), np.uint16), [(0, 30, 30, 1, 1)], model="demo", checkpoint=str(run),
                device="cpu")
    assert cli_main(_track_argv(tmp_path, "demo", str(run))) == 2
    assert f"napari-sam2: {expected}" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file"):
        sm.build_model("demo", checkpoint=tmp_path / "runs", device="cpu")
