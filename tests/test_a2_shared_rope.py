"""Rotary tables are built once per (head width, grid, theta, device) and shared by a model's RoPE modules.

Real memory attention (sam2.1 tiny's configuration, random weights) at a small grid; the outputs are
compared bit for bit with tables built independently for one module, the way a lone module builds them.
"""

from __future__ import annotations

import gc
import weakref

import torch

from sam2_model.config import get_config
from sam2_model.modeling.attention import RoPEAttention, axial_rope_angles, rope_tables, rotate_grids
from sam2_model.modeling.memory_attention import MemoryAttention


def _attention(seed: int = 0) -> MemoryAttention:
    config = get_config("sam2.1_hiera_tiny")
    torch.manual_seed(seed)
    return MemoryAttention(config.memory_attention, d_model=config.hidden_dim, mem_dim=config.mem_dim).eval()


def _run(model: MemoryAttention, side: int, memories: int = 2, pointers: int = 4, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    tokens = side * side
    curr = torch.randn(tokens, 1, 256, generator=gen)
    curr_pos = torch.randn(tokens, 1, 256, generator=gen)
    memory = torch.randn(memories * tokens + pointers, 1, 64, generator=gen)
    memory_pos = torch.randn(memories * tokens + pointers, 1, 64, generator=gen)
    with torch.no_grad():
        return model(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=pointers)


def _rope_modules(model: torch.nn.Module) -> list:
    return [m for m in model.modules() if isinstance(m, RoPEAttention)]


def test_modules_share_one_table_and_rotate_as_a_lone_module_does():
    model = _attention()
    out = _run(model, side=8)
    modules = _rope_modules(model)
    assert len(modules) == 8
    held = {id(m._tables(64, torch.device("cpu"))) for m in modules}
    assert len(held) == 1, "the eight RoPE modules should share one set of tables"
    shared = rope_tables(256, 64, 10000.0, torch.device("cpu"))
    assert id(shared) in held
    # the shared tables equal what a module builds on its own (polar of the axial angles)
    angles = axial_rope_angles(256, 8, 8)
    unit = torch.polar(torch.ones_like(angles), angles)
    assert torch.equal(shared.cos, unit.real.contiguous()) and torch.equal(shared.sin, unit.imag.contiguous())
    x = torch.randn(1, 1, 3 * 64, 256)
    assert torch.equal(rotate_grids(x, shared.cos, shared.sin, shared.unit),
                       rotate_grids(x, unit.real.contiguous(), unit.imag.contiguous()))
    # a second model gets the same tables object and the same outputs for the same weights
    twin = _attention()
    assert torch.equal(_run(twin, side=8), out)
    assert _rope_modules(twin)[0]._tables(64, torch.device("cpu")) is shared


def test_tables_stay_out_of_the_state_dict_and_load_strictly():
    model = _attention()
    keys = list(model.state_dict())
    _run(model, side=8)
    assert list(model.state_dict()) == keys
    assert not any("rope" in k or "cos" in k or "sin" in k for k in keys)
    other = _attention(seed=5)
    other.load_state_dict(model.state_dict(), strict=True)
    assert torch.equal(_run(other, side=8), _run(model, side=8))


def test_tables_are_freed_with_the_last_model_that_uses_them():
    model = _attention()
    _run(model, side=6)
    tables = weakref.ref(rope_tables(256, 36, 10000.0, torch.device("cpu")))
    for seed in range(3):  # more models on the same grid: still one table
        extra = _attention(seed)
        _run(extra, side=6)
        assert _rope_modules(extra)[0]._tables(36, torch.device("cpu")) is tables()
        del extra
    del model
    gc.collect()
    assert tables() is None, "no model holds the 6 x 6 tables any more; the cache must not keep them"


def test_new_grid_sizes_and_dtype_changes_and_device_moves():
    model = _attention()
    small, large = _run(model, side=4), _run(model, side=8)
    module = _rope_modules(model)[0]
    assert module._tables(16, torch.device("cpu")).cos.shape == (16, 128)
    assert module._tables(64, torch.device("cpu")).cos.shape == (64, 128)
    assert torch.equal(_run(model, side=4), small) and torch.equal(_run(model, side=8), large)

    held = weakref.ref(module._tables(64, torch.device("cpu")))
    model.double()  # a dtype change on the same device keeps the tables
    assert module._tables(64, torch.device("cpu")) is held()
    model.float()
    assert torch.equal(_run(model, side=8), large)

    model.to("meta")  # another device: the CPU tables are let go at once
    gc.collect()
    assert held() is None, "a model moved to another device kept its old device's rotary tables"
    assert module._tables(64, torch.device("meta")).cos.device.type == "meta"


def test_a_compiled_rope_module_uses_the_shared_tables():
    """Dynamo does not trace into the table cache (its lock and weak references); the call runs eagerly."""
    torch.manual_seed(0)
    module = RoPEAttention(32, 1, rope_k_repeat=True).eval()
    q, k = torch.randn(1, 16, 32), torch.randn(1, 2 * 16 + 2, 32)
    with torch.no_grad():
        expected = module(q, k, k, num_k_exclude_rope=2)
        module.compile(backend="eager")
        try:
            assert torch.equal(module(q, k, k, num_k_exclude_rope=2), expected)
        finally:
            torch._dynamo.reset()
    assert module._tables(16, torch.device("cpu")) is rope_tables(32, 16, 10000.0, torch.device("cpu"))


def test_tables_first_built_under_inference_mode_serve_a_training_step():
    """CI at d4188c0: a model run under torch.inference_mode filled the shared cache with inference tensors, and a
    model trained later in the same process failed ("Inference tensors cannot be saved for backward")."""
    from sam2_model.modeling.attention import RoPEAttention

    torch.manual_seed(0)
    seen = RoPEAttention(64, 1)
    q = torch.randn(1, 36, 64)
    with torch.inference_mode():
        seen(q, q, q)  # first use of this grid: the tables are built here
    trained = RoPEAttention(64, 1)
    x = torch.randn(1, 36, 64, requires_grad=True)
    trained(x, x, x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
