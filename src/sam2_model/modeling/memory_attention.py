"""Memory attention: conditions the current frame's tokens on the memory bank.

Each layer is pre-norm: RoPE self-attention over the current frame's ``h*w`` tokens, RoPE
cross-attention from those tokens to the memories, then a feed-forward MLP, each with a residual.
The memory sequence is ``n`` spatial memories of ``h*w`` tokens each (rotated with the query grid's
RoPE, repeated ``n`` times) followed by object-pointer tokens, which get no rotation.

State-dict keys (prefix ``memory_attention.`` in the full model): ``layers.{i}.self_attn.*``,
``layers.{i}.cross_attn_image.*`` ({q,k,v,out}_proj; k/v take ``mem_dim`` inputs),
``layers.{i}.linear1/linear2``, ``layers.{i}.norm1/norm2/norm3`` and the final ``norm``.

``forward`` is the reference computation. ``forward_projected`` is the same network fed with the
cross-attentions' keys and values ready (``project_keys`` and ``project_values`` compute them as
``forward`` does), so a caller may keep what does not change between frames (the
batched video path keeps each memory's values) and share the first layer's work between objects.
On a CPU it also runs the MLP a chunk of tokens at a time, so that the (tokens, dim_feedforward)
hidden activations of many objects stay in the cache (:data:`MLP_CHUNK_BYTES`; on 2 AVX2 cores the
MLP of sam2.1 tiny at 512 px with 5 objects took 435-467 instead of 508-536 ms per frame inside a
session, 185 -> 118 ms per layer alone; no change for the demo model's smaller MLP).
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn

from ..config import MemoryAttentionConfig
from .attention import RoPEAttention
from .common import activation_fn


#: bytes of float32 hidden activations per MLP chunk in ``forward_projected`` on a CPU (a chunk holds at
#: least 128 tokens): 256 tokens for sam2.1's 2048 hidden units, 1024 for the demo model's 512
MLP_CHUNK_BYTES = 2 << 20


def _with_pos(x: torch.Tensor, pos: Optional[torch.Tensor], enabled: bool) -> torch.Tensor:
    """``x + pos`` when ``enabled`` and an encoding is given, else ``x``."""
    return x + pos if enabled and pos is not None else x


class MemoryAttentionLayer(nn.Module):
    """One pre-norm layer (self-attn, cross-attn to memories, MLP); batch-first tensors.

    ``forward(tgt (B, L, d_model), memory (B, M, mem_dim), memory_pos (B, M, mem_dim) | None,
    query_pos (B, L, d_model) | None, num_k_exclude_rope)`` -> (B, L, d_model), where L is a
    square grid and the first ``M - num_k_exclude_rope`` memory tokens are a multiple of L.
    """

    def __init__(self, config: MemoryAttentionConfig, d_model: int, mem_dim: int) -> None:
        super().__init__()
        self.self_attn = RoPEAttention(
            d_model, config.num_heads, dropout=config.dropout, rope_theta=config.rope_theta
        )
        self.cross_attn_image = RoPEAttention(
            d_model,
            config.num_heads,
            dropout=config.dropout,
            kv_in_dim=mem_dim,
            rope_theta=config.rope_theta,
            rope_k_repeat=True,
        )
        self.linear1 = nn.Linear(d_model, config.dim_feedforward)
        self.linear2 = nn.Linear(config.dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.activation = activation_fn(config.activation)
        # Dropout (training only): after each residual branch and inside the MLP.
        self.drop_self = nn.Dropout(config.dropout)
        self.drop_cross = nn.Dropout(config.dropout)
        self.drop_hidden = nn.Dropout(config.dropout)
        self.drop_mlp = nn.Dropout(config.dropout)
        self.pos_enc_at_attn = config.pos_enc_at_attn
        self.pos_enc_at_cross_attn_queries = config.pos_enc_at_cross_attn_queries
        self.pos_enc_at_cross_attn_keys = config.pos_enc_at_cross_attn_keys

    def _self_attention(self, tgt: torch.Tensor, query_pos: Optional[torch.Tensor]) -> torch.Tensor:
        normed = self.norm1(tgt)
        query_key = _with_pos(normed, query_pos, self.pos_enc_at_attn)
        return self.drop_self(self.self_attn(query_key, query_key, normed))

    def _cross_attention(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: Optional[torch.Tensor],
        query_pos: Optional[torch.Tensor],
        num_k_exclude_rope: int,
    ) -> torch.Tensor:
        normed = self.norm2(tgt)
        query = _with_pos(normed, query_pos, self.pos_enc_at_cross_attn_queries)
        key = _with_pos(memory, memory_pos, self.pos_enc_at_cross_attn_keys)
        attended = self.cross_attn_image(query, key, memory, num_k_exclude_rope=num_k_exclude_rope)
        return self.drop_cross(attended)

    def _mlp(self, tgt: torch.Tensor) -> torch.Tensor:
        hidden = self.drop_hidden(self.activation(self.linear1(self.norm3(tgt))))
        return self.drop_mlp(self.linear2(hidden))

    def _residual_mlp(self, tgt: torch.Tensor) -> torch.Tensor:
        """``tgt + self._mlp(tgt)``; on a CPU in eval mode computed a chunk of tokens at a time (:data:`MLP_CHUNK_BYTES`)."""
        flat = tgt.reshape(-1, tgt.shape[-1])
        chunk = max(128, MLP_CHUNK_BYTES // (4 * self.linear1.out_features))
        if tgt.device.type != "cpu" or self.training or flat.shape[0] <= chunk:
            return tgt + self._mlp(tgt)
        out = torch.empty_like(flat)
        for start in range(0, flat.shape[0], chunk):
            rows = flat[start : start + chunk]
            torch.add(rows, self._mlp(rows), out=out[start : start + chunk])
        return out.view(tgt.shape)

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: Optional[torch.Tensor] = None,
        query_pos: Optional[torch.Tensor] = None,
        num_k_exclude_rope: int = 0,
    ) -> torch.Tensor:
        tgt = tgt + self._self_attention(tgt, query_pos)
        tgt = tgt + self._cross_attention(tgt, memory, memory_pos, query_pos, num_k_exclude_rope)
        return tgt + self._mlp(tgt)

    def forward_projected(
        self, tgt: torch.Tensor, query_pos: Optional[torch.Tensor], keys: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        """As ``forward`` with the cross-attention's keys and values given: (B, heads, M, head_dim) each.

        tgt (1 | B, L, d_model): a batch of 1 (rows identical for all objects) is computed once up to
        the cross-attention; the result has the keys' batch B.
        """
        tgt = tgt + self._self_attention(tgt, query_pos)
        query = _with_pos(self.norm2(tgt), query_pos, self.pos_enc_at_cross_attn_queries)
        tgt = tgt + self.drop_cross(self.cross_attn_image.attend_projected(query, keys, values))
        return self._residual_mlp(tgt)


class MemoryAttention(nn.Module):
    """``num_layers`` :class:`MemoryAttentionLayer` and a final LayerNorm ``norm``.

    Takes and returns sequence-first tensors (as SAM 2 builds them); layers run batch-first.
    """

    def __init__(self, config: MemoryAttentionConfig, d_model: int = 256, mem_dim: int = 64) -> None:
        super().__init__()
        self.d_model = d_model
        self.mem_dim = mem_dim
        self.pos_enc_at_input = config.pos_enc_at_input
        self.layers = nn.ModuleList(MemoryAttentionLayer(config, d_model, mem_dim) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self,
        curr: torch.Tensor,
        memory: torch.Tensor,
        curr_pos: Optional[torch.Tensor] = None,
        memory_pos: Optional[torch.Tensor] = None,
        num_obj_ptr_tokens: int = 0,
    ) -> torch.Tensor:
        """Condition the current frame on its memories.

        curr: (L, B, d_model) tokens of the current frame's ``h x w`` grid (row-major, L = h*w, square).
        memory: (M, B, mem_dim): n * L spatial memory tokens, then ``num_obj_ptr_tokens`` pointer tokens.
        curr_pos: (L, B, d_model) and memory_pos: (M, B, mem_dim) encodings; None means none.
        Returns (L, B, d_model).
        """
        if curr.dim() != 3 or memory.dim() != 3:
            raise ValueError(f"curr and memory must be (seq, batch, dim), got {tuple(curr.shape)}, {tuple(memory.shape)}")
        if curr.shape[1] != memory.shape[1]:
            raise ValueError(f"batch sizes differ: curr {curr.shape[1]}, memory {memory.shape[1]}")
        if not 0 <= num_obj_ptr_tokens <= memory.shape[0]:
            raise ValueError(f"num_obj_ptr_tokens={num_obj_ptr_tokens} outside [0, {memory.shape[0]}]")
        tokens = _with_pos(curr, None if curr_pos is None else 0.1 * curr_pos, self.pos_enc_at_input)

        tokens, memory_b = tokens.transpose(0, 1), memory.transpose(0, 1)
        query_pos = None if curr_pos is None else curr_pos.transpose(0, 1)
        memory_pos_b = None if memory_pos is None else memory_pos.transpose(0, 1)
        for layer in self.layers:
            tokens = layer(tokens, memory_b, memory_pos_b, query_pos, num_k_exclude_rope=num_obj_ptr_tokens)
        return self.norm(tokens).transpose(0, 1)

    # ------------------------------------------------------------------ reusable projections (batched path)
    def project_values(self, memory: torch.Tensor) -> List[torch.Tensor]:
        """Every layer's values of memory tokens: memory (B, N, mem_dim) -> per layer (B, heads, N, head_dim)."""
        return [layer.cross_attn_image.values(memory) for layer in self.layers]

    def project_keys(
        self, memory: torch.Tensor, memory_pos: Optional[torch.Tensor], grid_tokens: int, num_obj_ptr_tokens: int = 0
    ) -> List[torch.Tensor]:
        """Every layer's cross-attention keys, as ``forward`` computes them.

        memory (B, M, mem_dim): whole spatial memories of ``grid_tokens`` tokens (the query grid's
        size), then ``num_obj_ptr_tokens`` pointer tokens (not rotated); memory_pos (1 | B, M, mem_dim)
        or None -> per layer (B, heads, M, head_dim).
        """
        out = []
        for layer in self.layers:
            key_in = _with_pos(memory, memory_pos, layer.pos_enc_at_cross_attn_keys)
            out.append(layer.cross_attn_image.rotated_keys(key_in, grid_tokens, num_obj_ptr_tokens))
        return out

    def forward_projected(
        self,
        curr: torch.Tensor,
        curr_pos: Optional[torch.Tensor],
        keys: Sequence[torch.Tensor],
        values: Sequence[torch.Tensor],
    ) -> torch.Tensor:
        """Condition the current frame on memories whose keys and values are ready, batch-first.

        curr: (1 | B, L, d_model) the frame's tokens (a batch of 1 is shared by all B objects);
        curr_pos: (1 | B, L, d_model) or None; keys, values: one (B, heads, M, head_dim) per layer.
        Returns (B, L, d_model).
        """
        if len(keys) != len(self.layers) or len(values) != len(self.layers):
            raise ValueError(f"keys and values must hold one tensor per layer ({len(self.layers)})")
        tokens = _with_pos(curr, None if curr_pos is None else 0.1 * curr_pos, self.pos_enc_at_input)
        for layer, key, value in zip(self.layers, keys, values):
            tokens = layer.forward_projected(tokens, curr_pos, key, value)
        return self.norm(tokens)
