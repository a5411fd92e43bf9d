"""Weights held in bfloat16 give autocast's results bit for bit; CUDA graphs replay the eager results.

The GPU paths are what these options are for; autocast on the CPU applies the same casting rules to
linear and convolution layers, so the bit-identity of held weights is checked here on the CPU. The
CUDA-graph test runs where CUDA is present (bench/gpu_check.py runs it on a lent GPU).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from sam2_model import VideoSession, build_model
from sam2_model.cuda_graphs import GraphedCall, enable_cuda_graphs
from sam2_model.precision import holds_low_precision_weights, hold_low_precision_weights, restore_full_precision
from sam2_model.synthetic import make_timelapse


def _model_calls(model, image: torch.Tensor):
    """Image encoder, a clicked first frame and its memory, then a tracked frame, under CPU bf16 autocast."""
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        features = model.encode_image(image)
        coords = torch.tensor([[[100.0, 120.0]]])
        labels = torch.tensor([[1]], dtype=torch.int32)
        first = model.track_step(0, features, True, {}, {}, 4, coords, labels)
        memory, pos = model.encode_memory(features, first.high_res_logits, first.object_score_logits, True)
        from sam2_model import MemoryEntry

        entry = MemoryEntry(memory.to(torch.bfloat16), pos, first.obj_ptr)
        second = model.track_step(1, features, False, {0: entry}, {}, 4)
    return [features.image_embed, *features.high_res, first.low_res_logits, first.obj_ptr, memory,
            second.low_res_logits, second.object_score_logits]


def test_held_bf16_weights_equal_autocast_bit_for_bit():
    reference = build_model("demo", device="cpu")
    held = build_model("demo", device="cpu")
    converted = hold_low_precision_weights(held, torch.bfloat16)
    assert converted > 50 and holds_low_precision_weights(held)
    image = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    for ours, theirs in zip(_model_calls(held, image), _model_calls(reference, image)):
        assert ours.dtype == theirs.dtype
        assert torch.equal(ours, theirs)
    # and back: float32 weights again (rounded values), usable without autocast
    assert restore_full_precision(held) == converted and not holds_low_precision_weights(held)
    with torch.inference_mode():
        held.encode_image(image)


def test_build_model_holds_bf16_only_where_autocast_runs():
    assert not holds_low_precision_weights(build_model("demo", device="cpu"))
    if torch.cuda.is_available():
        assert holds_low_precision_weights(build_model("demo", device="cuda"))
        assert not holds_low_precision_weights(build_model("demo", device="cuda", low_precision_weights=False))


def test_cuda_graphs_off_the_gpu_warn_and_change_nothing():
    model = build_model("demo", device="cpu")
    with pytest.warns(UserWarning, match="only used on CUDA"):
        assert enable_cuda_graphs(model) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        built = build_model("demo", device="cpu", cuda_graphs=False)
    assert "encode_image" not in built.__dict__
    call = GraphedCall(lambda x: (x * 2,), "doubling")  # CPU tensors always run eagerly
    x = torch.arange(4.0)
    assert torch.equal(call(x)[0], x * 2) and call.num_graphs == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need CUDA")
def test_cuda_graphs_replay_the_eager_results():
    data = make_timelapse(num_frames=24, shape=(256, 256), num_cells=8, seed=3, divisions=False)
    points = [(60.0, 60.0), (190.0, 70.0), (120.0, 200.0)]

    def run(graphs: bool) -> np.ndarray:
        model = build_model("demo", device="cuda", cuda_graphs=graphs)
        session = VideoSession(model, data.image, fill_hole_area=0)
        for k, point in enumerate(points):
            session.add_prompt(0, k + 1, points=[point], labels=[1])
        out = np.stack([logits for _, _, logits in session.propagate()])
        if graphs:
            summary = model.cuda_graphs.summary()
            assert all(entry["off"] is None for entry in summary.values()), summary
            assert summary["image_encoder"]["replays"] > 10 and summary["memory_attention"]["replays"] > 0
        return out

    eager, graphed = run(False), run(True)
    assert np.abs(eager - graphed).max() < 1e-2
    assert ((eager > 0) != (graphed > 0)).mean() < 1e-4
