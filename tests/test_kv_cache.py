"""Kept projections on the batched path: each stored memory's values are projected once and reused.

The split computation is checked against memory attention's reference ``forward`` on the demo
model's trained weights; sessions with and without reuse against each other and the per-object path.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sam2_model as sm
from sam2_model import batching
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model.session_state import FrameResult, MemoryProjection, ObjectState
from sam2_model.synthetic import make_timelapse
from sam2_model.video_session import VideoSession

NUM_FRAMES = 9
SHAPE = (128, 128)
# Largest logit difference that float32 rounding in another order may cause here (logits reach about +-20). The
# CPU's kernels set it: the bound was 1e-3 until an AMD EPYC CI machine measured 1.9e-3 (2026-12-04, with code that
# had passed before). The masks must still be equal pixel for pixel.
ROUNDING_BOUND = 5e-3


@pytest.fixture(scope="module")
def model():
    return sm.build_model("demo", checkpoint="download", device="cpu").eval()


@pytest.fixture(scope="module")
def movie():
    return make_timelapse(num_frames=NUM_FRAMES, shape=SHAPE, num_cells=8, seed=3, divisions=False)


@pytest.mark.parametrize("mlp_chunk_bytes", [None, 1])
def test_projected_attention_equals_reference(model, monkeypatch, mlp_chunk_bytes):
    """Keys and values computed apart (values per memory, as the session keeps them) give forward's output;
    also with the MLP run in chunks of 128 tokens (of 192: a full chunk and a partial one)."""
    if mlp_chunk_bytes is not None:
        from sam2_model.modeling import memory_attention as memory_attention_module

        monkeypatch.setattr(memory_attention_module, "MLP_CHUNK_BYTES", mlp_chunk_bytes)
    attention = model.memory_attention
    generator = torch.Generator().manual_seed(0)
    batch, side, num_memories, num_ptr = 3, 8, 3, 8
    tokens, d_model, mem_dim = side * side, attention.d_model, attention.mem_dim

    def rand(*shape):
        return torch.randn(*shape, generator=generator)

    curr, curr_pos = rand(tokens, batch, d_model), rand(tokens, batch, d_model)
    memories = [rand(batch, tokens, mem_dim) for _ in range(num_memories)]
    memory_pos = rand(batch, num_memories * tokens + num_ptr, mem_dim)
    pointers = rand(batch, num_ptr, mem_dim)
    with torch.inference_mode():
        memory = torch.cat([*memories, pointers], dim=1)
        expected = attention(curr, memory.transpose(0, 1), curr_pos, memory_pos.transpose(0, 1),
                             num_obj_ptr_tokens=num_ptr).transpose(0, 1)
        keys = attention.project_keys(memory, memory_pos, tokens, num_ptr)
        parts = [attention.project_values(m) for m in [*memories, pointers]]
        values = [torch.cat([p[layer] for p in parts], dim=2) for layer in range(len(attention.layers))]
        got = attention.forward_projected(curr.transpose(0, 1), curr_pos.transpose(0, 1), keys, values)
        # A batch of 1 shared by all rows (the frame's tokens before any memory) gives the same rows.
        shared = attention.forward_projected(curr[:, :1].transpose(0, 1), curr_pos[:, :1].transpose(0, 1),
                                             keys, values)
        repeated = attention.forward_projected(curr[:, :1].expand(-1, batch, -1).transpose(0, 1),
                                               curr_pos[:, :1].expand(-1, batch, -1).transpose(0, 1), keys, values)
    assert got.shape == expected.shape == shared.shape == (batch, tokens, d_model)
    assert float((got - expected).abs().max()) < 1e-5
    assert float((shared - repeated).abs().max()) < 1e-5
    with pytest.raises(ValueError, match="one tensor per layer"):
        attention.forward_projected(curr.transpose(0, 1), None, keys[:1], values[:1])
    with pytest.raises(ValueError, match="whole grids"):
        attention.project_keys(memory[:, 1:], None, tokens, num_ptr)


def run(model, movie, batch_objects, monkeypatch, budget=None, **options):
    """Three objects clicked on frame 0, one more on frame 3; forward to the end, then back to frame 0."""
    if budget is not None:
        monkeypatch.setattr(batching, "KV_CACHE_BYTES", budget)
    ids = clickable_objects(movie.labels[0], min_area=40)
    assert len(ids) >= 4
    session = VideoSession(model, movie.image, batch_objects=batch_objects, fill_hole_area=0, **options)
    for k, obj in enumerate(ids[:3]):
        session.add_prompt(0, k + 1, points=[click_point(movie.labels[0] == obj)], labels=[1])
    steps = list(session.propagate(max_frames=4))
    session.add_prompt(3, 7, points=[click_point(movie.labels[3] == ids[3])], labels=[1])
    steps += list(session.propagate(start_frame=2))
    steps += list(session.propagate(start_frame=NUM_FRAMES - 1, reverse=True))
    return session, steps


def worst(a, b):
    assert [(f, ids) for f, ids, _ in a] == [(f, ids) for f, ids, _ in b]
    return max(float(np.abs(x - y).max()) for (_, _, x), (_, _, y) in zip(a, b))


@pytest.mark.parametrize("release_memory", [True, False])
def test_session_with_projections_matches_per_object(model, movie, monkeypatch, release_memory):
    """Kept values change results only by float rounding (logits within ROUNDING_BOUND of the batched path
    without them and of the per-object path, masks equal); they are held only on the frames attended to last."""
    kept, steps = run(model, movie, True, monkeypatch, release_memory=release_memory)
    _, plain = run(model, movie, True, monkeypatch, budget=0, release_memory=release_memory)
    _, single = run(model, movie, False, monkeypatch, release_memory=release_memory)
    print(f"kept values vs batched: {worst(steps, plain):.1e}; vs per object: {worst(steps, single):.1e}")
    assert worst(steps, plain) <= ROUNDING_BOUND and worst(steps, single) <= ROUNDING_BOUND
    assert all(np.array_equal(a > 0, b > 0) for (_, _, a), (_, _, b) in zip(steps, single))
    window = model.config.num_maskmem  # conditioning frame(s) + recent frames
    held = 0
    for state in kept._objects.values():
        frames = [t for table in (state.cond, state.non_cond) for t, r in table.items() if r.projection is not None]
        assert len(frames) <= window + len(state.cond) - 1
        assert all(t in state.cond or t <= window for t in frames)  # the last run ended at frame 0, in reverse
        held += len(frames)
    assert held > 0


def test_budget_turns_projections_off(model, movie, monkeypatch):
    """A budget too small for the group: memory attention runs on the raw memories, nothing is kept."""
    session, steps = run(model, movie, True, monkeypatch, budget=1)
    assert all(r.projection is None for s in session._objects.values() for r in (*s.cond.values(),
                                                                                 *s.non_cond.values()))
    _, cached = run(model, movie, True, monkeypatch)
    assert worst(steps, cached) <= 1e-3


def test_projection_is_dropped_with_its_memory():
    """Releasing or restoring a memory drops its projection; copies (undo snapshots) hold none."""
    layers = (torch.zeros(2, 1, 4, 8), torch.ones(2, 1, 4, 8))
    result = FrameResult(torch.zeros(1, 1, 4, 4), torch.zeros(1, 8), torch.ones(1, 1), torch.zeros(1, 2, 2, 2), True)
    result.projection = MemoryProjection(layers, 1)
    assert [float(v.sum()) for v in result.projection.rows()] == [0.0, 32.0]
    state = ObjectState(1, non_cond={5: result}, projected_frames={5})
    assert state.copy().non_cond[5].projection is None and result.projection is not None
    result.memory = None
    assert result.projection is None
    result.projection = MemoryProjection(layers, 0)
    state.keep_projections({4})
    assert result.projection is None and state.projected_frames == {4}


def test_projection_bytes(model):
    """Values of every layer: objects * memories * h*w * inner width * element size."""
    c = model.config
    inner = sum(layer.cross_attn_image.internal_dim for layer in model.memory_attention.layers)
    assert batching.projection_bytes(model, 3, 7) == 3 * 7 * c.feature_size**2 * inner * 4
