"""Training at two input sizes with one set of weights (sam2_model.train.resolutions, alternate_image_size)."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from sam2_model import build_model
from sam2_model.train.__main__ import main as train_main
from sam2_model.train.loop import TrainSettings, train
from sam2_model.train.resolutions import model_sharing_parameters


def test_a_model_at_another_size_holds_the_same_weights_and_trains_them():
    torch.manual_seed(0)
    small = build_model("demo", checkpoint="random", image_size=64).train()
    large = model_sharing_parameters(small, "demo", 128)
    assert (small.image_size, large.image_size) == (64, 128) and large.training
    ours = dict(small.named_parameters())
    assert all(ours[name] is tensor for name, tensor in large.named_parameters())
    assert all(a is b for a, b in zip(small.buffers(), large.buffers()))
    # the larger model sees a finer grid: its image embedding is 128 / 16 = 8 tokens across, not 4
    embedding = large.encode_image(torch.rand(1, 3, 128, 128)).image_embed
    assert embedding.shape[-2:] == (8, 8)
    before = {name: tensor.detach().clone() for name, tensor in ours.items()}
    optimizer = torch.optim.SGD(large.parameters(), lr=0.1)
    embedding.pow(2).mean().backward()
    optimizer.step()
    changed = [name for name, tensor in small.named_parameters() if not torch.equal(tensor, before[name])]
    assert any(name.startswith("image_encoder.") for name in changed)


def test_a_model_of_another_preset_is_refused():
    small = build_model("demo", checkpoint="random", image_size=64)
    with pytest.raises(ValueError, match="not an instance of preset 'sam2.1_hiera_tiny'"):
        model_sharing_parameters(small, "sam2.1_hiera_tiny", 128)


def _settings(out, **changes) -> TrainSettings:
    base = dict(out=str(out), model="demo", image_size=64, alternate_image_size=128, clip_len=2,
                clips_per_step=1, max_objects=2, steps=4, warmup_steps=2, save_every=1, seed=5)
    base.update(changes)
    return TrainSettings(**base)


def test_alternate_steps_run_at_the_other_size_and_a_resumed_run_is_the_same(tmp_path):
    straight = train(_settings(tmp_path / "straight"), progress=lambda step, row: True)
    with (tmp_path / "straight" / "history.csv").open() as handle:
        sizes = [row["image_size"] for row in csv.DictReader(handle)]
    assert sizes == ["64", "128", "64", "128"]
    # stop after step 3: both clip streams and the shared weights must come back from last.pt
    train(_settings(tmp_path / "resumed"), progress=lambda step, row: step < 3)
    resumed = train(_settings(tmp_path / "resumed"), progress=lambda step, row: True)
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    assert resumed.image_size == 64  # the exported weights are the main size's model
    metadata = json.loads((tmp_path / "straight" / "weights.json").read_text())
    assert metadata["settings"]["alternate_image_size"] == 128
    assert "every other step at 128 px input" in metadata["data"]


def test_one_size_run_differs_from_an_alternating_one(tmp_path):
    alternating = train(_settings(tmp_path / "two", steps=2), progress=lambda step, row: True)
    single = train(_settings(tmp_path / "one", steps=2, alternate_image_size=None), progress=lambda step, row: True)
    assert any(not torch.equal(a, b) for a, b in zip(alternating.state_dict().values(),
                                                        single.state_dict().values()))
    with (tmp_path / "one" / "history.csv").open() as handle:
        assert [row["image_size"] for row in csv.DictReader(handle)] == ["64", "64"]


@pytest.mark.parametrize("size", [0, 100, -512])
def test_bad_alternate_sizes_say_what_is_accepted(tmp_path, size, capsys):
    with pytest.raises(ValueError, match="alternate_image_size must be a positive multiple of 32"):
        _settings(tmp_path / "run", alternate_image_size=size)
    with pytest.raises(SystemExit):
        train_main(["--out", str(tmp_path / "cli"), "--alternate-image-size", str(size)])
    assert "multiple of 32" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cli").exists()
