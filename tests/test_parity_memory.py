"""Parity of the memory path (memory encoder, memory attention, RoPE attention) with ``sam2==1.1.0``.

Weights come from the reference's seeded, perturbed model (``oracle.reference_model``) and are
loaded strictly into ours. Memory-attention inputs are taken from the reference's own
``SAM2Base._prepare_memory_conditioned_features`` (captured with a forward pre-hook), so the
memory layout (conditioning + recent memories, temporal encodings, object pointers split into
``mem_dim`` tokens) is exactly what the reference feeds. Run with ``-s`` to see the errors.
"""

from __future__ import annotations

import functools
from typing import Any, Dict, Tuple

import pytest
import torch

from oracle import REFERENCE_CONFIG_FILES, assert_close, max_errors, reference_model, require_oracle
from sam2_model.config import get_config
from sam2_model.modeling.attention import RoPEAttention
from sam2_model.modeling.memory_attention import MemoryAttention
from sam2_model.modeling.memory_encoder import MemoryEncoder, MemoryEncoding

TINY = ["sam2.1_hiera_tiny", "sam2_hiera_tiny"]


@functools.lru_cache(maxsize=None)
def _reference(name: str, image_size: int) -> torch.nn.Module:
    return reference_model(name, image_size=image_size)


def _check(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    abs_err, rel_err = max_errors(ours, theirs)
    print(f"{what} {tuple(ours.shape)}: max abs {abs_err:.3e} rel {rel_err:.3e}")
    assert_close(ours, theirs, rtol=1e-4, what=what)


def _ours_from(ref: torch.nn.Module, name: str, image_size: int) -> Tuple[MemoryEncoder, MemoryAttention]:
    config = get_config(name, image_size=image_size)
    encoder = MemoryEncoder(config.memory_encoder, in_dim=config.hidden_dim).eval()
    encoder.load_state_dict(ref.memory_encoder.state_dict(), strict=True)
    attention = MemoryAttention(config.memory_attention, d_model=config.hidden_dim, mem_dim=config.mem_dim).eval()
    attention.load_state_dict(ref.memory_attention.state_dict(), strict=True)
    return encoder, attention


# ----------------------------------------------------------------------------- memory encoder
def _compare_encoder(name: str, image_size: int, batch: int, skip_mask_sigmoid: bool, seed: int = 0) -> None:
    ref = _reference(name, image_size)
    encoder, _ = _ours_from(ref, name, image_size)
    side = image_size // 16
    gen = torch.Generator().manual_seed(seed + 3)
    pix_feat = torch.randn(batch, 256, side, side, generator=gen)
    logits = 4 * torch.randn(batch, 1, image_size, image_size, generator=gen)
    # With skip_mask_sigmoid SAM 2 passes sigmoid(logits) * 20 - 10 (binarised for click frames).
    masks = torch.sigmoid(logits) * 20 - 10 if skip_mask_sigmoid else logits
    with torch.no_grad():
        expected = ref.memory_encoder(pix_feat, masks, skip_mask_sigmoid=skip_mask_sigmoid)
        got = encoder(pix_feat, masks, skip_mask_sigmoid=skip_mask_sigmoid)
    assert isinstance(got, MemoryEncoding)
    assert got.features.shape == (batch, 64, side, side)
    tag = f"{name}@{image_size} skip_sigmoid={skip_mask_sigmoid}"
    _check(got.features, expected["vision_features"], f"{tag} memory features")
    assert len(expected["vision_pos_enc"]) == 1
    _check(got.pos_enc, expected["vision_pos_enc"][0], f"{tag} memory pos enc")


@pytest.mark.parametrize("skip_mask_sigmoid", [True, False])
@pytest.mark.parametrize("name", TINY)
def test_memory_encoder_parity(name: str, skip_mask_sigmoid: bool) -> None:
    _compare_encoder(name, image_size=256, batch=2, skip_mask_sigmoid=skip_mask_sigmoid)


def test_memory_encoder_rejects_mismatched_mask() -> None:
    config = get_config("sam2.1_hiera_tiny", image_size=256)
    encoder = MemoryEncoder(config.memory_encoder, in_dim=256)
    with pytest.raises(ValueError, match="do not fit"):
        encoder(torch.zeros(1, 256, 4, 4), torch.zeros(1, 1, 32, 32))


# ----------------------------------------------------------------------------- memory attention
def _frame_output(gen: torch.Generator, batch: int, side: int) -> Dict[str, Any]:
    """A stored frame as the reference keeps it: its memory, memory encoding and object pointer."""
    return {
        "maskmem_features": torch.randn(batch, 64, side, side, generator=gen),
        "maskmem_pos_enc": [torch.randn(batch, 64, side, side, generator=gen)],
        "obj_ptr": torch.randn(batch, 256, generator=gen),
    }


def _reference_memory_attention_call(
    ref: torch.nn.Module, frame_idx: int, num_recent: int, batch: int, side: int, seed: int
) -> Tuple[Dict[str, Any], torch.Tensor]:
    """Run the reference's memory preparation for ``frame_idx`` (conditioning frame 0 plus frames
    ``frame_idx - num_recent .. frame_idx - 1``) and return what it fed memory attention and its output."""
    gen = torch.Generator().manual_seed(seed + 11)
    output_dict = {
        "cond_frame_outputs": {0: _frame_output(gen, batch, side)},
        "non_cond_frame_outputs": {t: _frame_output(gen, batch, side) for t in range(frame_idx - num_recent, frame_idx)},
    }
    tokens = side * side
    feats = [torch.randn(tokens, batch, 256, generator=gen)]
    pos = [torch.randn(tokens, batch, 256, generator=gen)]
    captured: Dict[str, Any] = {}

    def pre_hook(module, args, kwargs):
        captured.update(kwargs)

    def post_hook(module, args, kwargs, output):
        captured["output"] = output

    handles = [
        ref.memory_attention.register_forward_pre_hook(pre_hook, with_kwargs=True),
        ref.memory_attention.register_forward_hook(post_hook, with_kwargs=True),
    ]
    try:
        with torch.no_grad():
            ref._prepare_memory_conditioned_features(
                frame_idx=frame_idx,
                is_init_cond_frame=False,
                current_vision_feats=feats,
                current_vision_pos_embeds=pos,
                feat_sizes=[(side, side)],
                output_dict=output_dict,
                num_frames=frame_idx + 4,
            )
    finally:
        for handle in handles:
            handle.remove()
    return captured, captured.pop("output")


def _compare_attention(
    name: str, image_size: int, frame_idx: int, num_recent: int, expected_ptrs: int, batch: int, seed: int = 0
) -> None:
    ref = _reference(name, image_size)
    _, attention = _ours_from(ref, name, image_size)
    side = image_size // 16
    inputs, expected = _reference_memory_attention_call(ref, frame_idx, num_recent, batch, side, seed)
    num_memories = 1 + min(num_recent, 6)
    # Each 256-d pointer is split into 256 / mem_dim = 4 tokens (in SAM 2.0 and 2.1 alike).
    assert inputs["num_obj_ptr_tokens"] == 4 * expected_ptrs
    assert inputs["memory"].shape == (num_memories * side * side + 4 * expected_ptrs, batch, 64)
    with torch.no_grad():
        got = attention(
            curr=inputs["curr"][0],
            memory=inputs["memory"],
            curr_pos=inputs["curr_pos"][0],
            memory_pos=inputs["memory_pos"],
            num_obj_ptr_tokens=inputs["num_obj_ptr_tokens"],
        )
    what = f"{name}@{image_size} {num_memories} memories + {expected_ptrs} pointers"
    _check(got, expected, f"{what} memory attention")


@pytest.mark.parametrize(
    "frame_idx, num_recent, expected_ptrs",
    [(4, 3, 4), (16, 15, 16)],
    ids=["1cond+3recent+4ptrs", "1cond+6recent+16ptrs"],
)
@pytest.mark.parametrize("name", TINY)
def test_memory_attention_parity_from_reference_memory_bank(
    name: str, frame_idx: int, num_recent: int, expected_ptrs: int
) -> None:
    _compare_attention(name, 256, frame_idx, num_recent, expected_ptrs, batch=2)


@pytest.mark.parametrize("num_ptr_tokens", [0, 4, 16])
@pytest.mark.parametrize("name", TINY)
def test_memory_attention_parity_direct(name: str, num_ptr_tokens: int) -> None:
    """1 conditioning + 3 recent memories of 16x16 tokens, then ``num_ptr_tokens`` pointer tokens."""
    ref = _reference(name, 256)
    _, attention = _ours_from(ref, name, 256)
    gen = torch.Generator().manual_seed(5)
    batch, tokens = 2, 256
    num_mem = 4 * tokens + num_ptr_tokens
    curr = torch.randn(tokens, batch, 256, generator=gen)
    curr_pos = torch.randn(tokens, batch, 256, generator=gen)
    memory = torch.randn(num_mem, batch, 64, generator=gen)
    memory_pos = torch.randn(num_mem, batch, 64, generator=gen)
    with torch.no_grad():
        expected = ref.memory_attention(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=num_ptr_tokens)
        got = attention(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=num_ptr_tokens)
    _check(got, expected, f"{name}@256 4 memories + {num_ptr_tokens} pointer tokens (direct)")


def test_memory_attention_rejects_bad_inputs() -> None:
    config = get_config("sam2.1_hiera_tiny", image_size=256)
    attention = MemoryAttention(config.memory_attention, d_model=256, mem_dim=64)
    curr = torch.zeros(16, 2, 256)
    with pytest.raises(ValueError, match="batch sizes differ"):
        attention(curr, torch.zeros(16, 1, 64), curr, torch.zeros(16, 1, 64))
    with pytest.raises(ValueError, match="num_obj_ptr_tokens"):
        attention(curr, torch.zeros(16, 2, 64), curr, torch.zeros(16, 2, 64), num_obj_ptr_tokens=17)


# ----------------------------------------------------------------------------- RoPE attention
@pytest.mark.parametrize(
    "num_heads, num_memories, num_excluded",
    [(1, 1, 0), (1, 4, 0), (1, 3, 16), (2, 2, 8), (8, 0, 12)],
)
def test_rope_attention_matches_reference(num_heads: int, num_memories: int, num_excluded: int) -> None:
    """Our RoPEAttention against the reference's, for self- (k = q grid) and cross-attention (k repeats)."""
    require_oracle()
    from sam2.modeling.sam.transformer import RoPEAttention as RefRoPEAttention

    kv_dim = 256 if num_memories == 1 and num_excluded == 0 else 64
    repeat = kv_dim != 256
    torch.manual_seed(0)
    ref = RefRoPEAttention(256, num_heads, kv_in_dim=kv_dim, rope_k_repeat=repeat, feat_sizes=(64, 64)).eval()
    ours = RoPEAttention(256, num_heads, kv_in_dim=kv_dim, rope_k_repeat=repeat).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(2, 144, 256, generator=gen)  # a 12 x 12 grid
    k = torch.randn(2, num_memories * 144 + num_excluded, kv_dim, generator=gen)
    v = torch.randn(2, num_memories * 144 + num_excluded, kv_dim, generator=gen)
    with torch.no_grad():
        expected = ref(q, k.clone(), v, num_k_exclude_rope=num_excluded)
        got = ours(q, k, v, num_k_exclude_rope=num_excluded)
    _check(got, expected, f"RoPEAttention heads={num_heads} memories={num_memories} excluded={num_excluded}")


# ----------------------------------------------------------------------------- keys, shapes, config
def _reference_model_node(name: str):
    """The hydra node ``model`` of the reference config of ``name``."""
    require_oracle()
    import sam2  # noqa: F401  (initialises hydra's config module)
    from hydra import compose

    return compose(config_name=REFERENCE_CONFIG_FILES[name]).model


@pytest.mark.parametrize("name", sorted(REFERENCE_CONFIG_FILES))
def test_state_dict_keys_and_shapes(name: str) -> None:
    from hydra.utils import instantiate

    node = _reference_model_node(name)
    config = get_config(name)
    torch.manual_seed(0)
    for part in ("memory_encoder", "memory_attention"):
        reference = instantiate(node[part])
        expected = {key: tuple(value.shape) for key, value in reference.state_dict().items()}
        with torch.device("meta"):
            if part == "memory_encoder":
                ours: torch.nn.Module = MemoryEncoder(config.memory_encoder, in_dim=config.hidden_dim)
            else:
                ours = MemoryAttention(config.memory_attention, d_model=config.hidden_dim, mem_dim=config.mem_dim)
        got = {key: tuple(value.shape) for key, value in ours.state_dict().items()}
        assert sorted(got) == sorted(expected), f"{name} {part}: keys differ"
        assert got == expected, f"{name} {part}: shapes differ"


@pytest.mark.parametrize("name", sorted(REFERENCE_CONFIG_FILES))
def test_config_matches_reference(name: str) -> None:
    """Our memory settings equal the reference yaml's (flags that keys and shapes cannot reveal)."""
    node = _reference_model_node(name)
    enc, att = get_config(name).memory_encoder, get_config(name).memory_attention
    ref_enc, ref_att = node.memory_encoder, node.memory_attention
    down, fuser = ref_enc.mask_downsampler, ref_enc.fuser
    assert (enc.out_dim, ref_enc.position_encoding.num_pos_feats) == (ref_enc.out_dim, ref_enc.out_dim)
    assert (enc.downsampler_kernel_size, enc.downsampler_stride, enc.downsampler_padding) == (
        down.kernel_size, down.stride, down.padding,
    )
    assert enc.downsampler_total_stride == down.get("total_stride", 16)
    assert (enc.fuser_num_layers, enc.fuser_kernel_size, enc.fuser_padding) == (
        fuser.num_layers, fuser.layer.kernel_size, fuser.layer.padding,
    )
    assert enc.fuser_layer_scale_init_value == pytest.approx(float(fuser.layer.layer_scale_init_value))
    assert fuser.layer.use_dwconv and not fuser.get("input_projection", False)
    layer = ref_att.layer
    assert att.num_layers == ref_att.num_layers and att.pos_enc_at_input == ref_att.pos_enc_at_input
    assert ref_att.get("batch_first", True)
    assert (att.dim_feedforward, att.activation, att.dropout) == (layer.dim_feedforward, layer.activation, layer.dropout)
    assert (att.pos_enc_at_attn, att.pos_enc_at_cross_attn_keys, att.pos_enc_at_cross_attn_queries) == (
        layer.pos_enc_at_attn, layer.pos_enc_at_cross_attn_keys, layer.pos_enc_at_cross_attn_queries,
    )
    for attn, kv_dim, k_repeat in ((layer.self_attention, None, False), (layer.cross_attention, 64, True)):
        assert (attn.num_heads, attn.rope_theta, attn.downsample_rate) == (att.num_heads, att.rope_theta, 1)
        assert attn.get("kv_in_dim", None) == kv_dim and attn.get("rope_k_repeat", False) == k_repeat


# ----------------------------------------------------------------------------- full resolution
@pytest.mark.slow
@pytest.mark.parametrize("name", ["sam2.1_hiera_tiny"])
def test_memory_path_parity_1024(name: str) -> None:
    """64x64 tokens: conditioning frame 0 + frame 1 as memories (2 memories, 2 pointers)."""
    _compare_encoder(name, image_size=1024, batch=1, skip_mask_sigmoid=True)
    _compare_attention(name, 1024, frame_idx=2, num_recent=1, expected_ptrs=2, batch=1)
