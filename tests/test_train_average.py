"""Checks of sam2_model.train.average: parameter averages of related weights, and their record as a stage."""

import json

import pytest
import torch

from sam2_model import build_model
from sam2_model.train.average import average_state_dicts, main as average_main
from sam2_model.train.package import stage_record


def _state(value: float):
    return {"w": torch.full((2, 3), value), "b": torch.tensor([value, 2 * value]), "count": torch.tensor(7)}


def test_weighted_average_of_every_float_tensor_and_copies_of_the_rest():
    out = average_state_dicts([_state(1.0), _state(3.0)], [0.25, 0.75])
    assert torch.allclose(out["w"], torch.full((2, 3), 2.5)) and torch.allclose(out["b"], torch.tensor([2.5, 5.0]))
    assert out["count"].item() == 7 and out["w"].dtype == torch.float32
    same = average_state_dicts([_state(1.5), _state(1.5), _state(1.5)])
    assert all(torch.equal(same[k], _state(1.5)[k]) for k in same)


@pytest.mark.parametrize("states, weights, message", [
    ([_state(1.0)], None, "at least two"),
    ([_state(1.0), _state(2.0)], [0.5], "one weight per"),
    ([_state(1.0), _state(2.0)], [0.7, 0.7], "sum to 1"),
    ([_state(1.0), _state(2.0)], [1.5, -0.5], "positive"),
    ([_state(1.0), {**_state(2.0), "extra": torch.zeros(1)}], None, "other parameters"),
    ([_state(1.0), {**_state(2.0), "w": torch.zeros(3, 2)}], None, "different shapes"),
    ([_state(1.0), {**_state(2.0), "count": torch.tensor(8)}], None, "not floating point"),
])
def test_bad_inputs_are_refused_with_what_is_wrong(states, weights, message):
    with pytest.raises(ValueError, match=message):
        average_state_dicts(states, weights)


def test_averaged_demo_weights_load_strictly_and_package_records_the_average_as_a_stage(tmp_path, capsys):
    model = build_model("demo", checkpoint="random", device="cpu")
    a, b = tmp_path / "a.pt", tmp_path / "b" / "weights.pt"
    b.parent.mkdir()
    torch.save({"model": model.state_dict()}, a)
    torch.save({"model": {k: v + 1.0 if v.is_floating_point() else v for k, v in model.state_dict().items()}}, b)
    out = tmp_path / "soup" / "weights.pt"
    assert average_main([str(a), str(b), "--weights", "0.5", "0.5", "-o", str(out)]) == 0
    averaged = build_model("demo", checkpoint=str(out), device="cpu")  # loads strictly
    key = next(k for k, v in model.state_dict().items() if v.is_floating_point())
    assert torch.allclose(averaged.state_dict()[key], model.state_dict()[key] + 0.5, atol=1e-6)
    record = stage_record(out.parent)
    assert record["steps"] == 0 and record["data"] == "no training: parameter average of 0.5 x a.pt, 0.5 x b"
    assert json.loads((out.parent / "weights.json").read_text())["stopped_by"] == "average"
    assert average_main([str(a), str(tmp_path / "nope.pt"), "-o", str(tmp_path / "x" / "weights.pt")]) == 2
    assert "do not exist" in capsys.readouterr().err and not (tmp_path / "x").exists()

