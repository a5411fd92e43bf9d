"""Memory attention: current-frame tokens attend to themselves and to the memory bank."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..config import MemoryAttentionConfig
from .attention import RoPEAttention
from .common import activation_fn


class MemoryAttentionLayer(nn.Module):
    """Pre-norm layer: RoPE self-attention, RoPE cross-attention to memories, feed-forward MLP.

    Works batch-first: tgt (B, L, C); memory (B, M, mem_dim). The last ``num_k_exclude_rope``
    memory tokens (object pointers) get no rotary encoding.
    """

    def __init__(self, config: MemoryAttentionConfig, d_model: int, mem_dim: int) -> None:
        super().__init__()
        self.self_attn = RoPEAttention(
            d_model, config.num_heads, dropout=config.dropout, rope_theta=config.rope_theta
        )
        self.cross_attn_image = RoPEAttention(
            d_model, config.num_heads, dropout=config.dropout, kv_in_dim=mem_dim,
            rope_theta=config.rope_theta, rope_k_repeat=True,
        )
        self.linear1 = nn.Linear(d_model, config.dim_feedforward)
        self.linear2 = nn.Linear(config.dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(config.dropout)
        self.activation = activation_fn(config.activation)
        self.config = config

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        memory_pos: torch.Tensor,
        query_pos: torch.Tensor,
        num_k_exclude_rope: int = 0,
    ) -> torch.Tensor:
        c = self.config
        x = self.norm1(tgt)
        qk = x + query_pos if c.pos_enc_at_attn else x
        tgt = tgt + self.dropout(self.self_attn(qk, qk, x))

        x = self.norm2(tgt)
        query = x + query_pos if c.pos_enc_at_cross_attn_queries else x
        key = memory + memory_pos if c.pos_enc_at_cross_attn_keys else memory
        tgt = tgt + self.dropout(self.cross_attn_image(query, key, memory, num_k_exclude_rope=num_k_exclude_rope))

        x = self.norm3(tgt)
        return tgt + self.dropout(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class MemoryAttention(nn.Module):
    """``num_layers`` memory-attention layers and a final LayerNorm (keys ``layers.{i}``, ``norm``)."""

    def __init__(self, config: MemoryAttentionConfig, d_model: int = 256, mem_dim: int = 64) -> None:
        super().__init__()
        self.layers = nn.ModuleList(MemoryAttentionLayer(config, d_model, mem_dim) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.pos_enc_at_input = config.pos_enc_at_input

    def forward(
        self,
        curr: torch.Tensor,
        memory: torch.Tensor,
        curr_pos: Optional[torch.Tensor],
        memory_pos: torch.Tensor,
        num_obj_ptr_tokens: int = 0,
    ) -> torch.Tensor:
        """Sequence-first: curr (L, B, C), memory (M, B, mem_dim) with encodings -> (L, B, C)."""
        out = curr
        if self.pos_enc_at_input and curr_pos is not None:
            out = out + 0.1 * curr_pos
        out = out.transpose(0, 1)
        query_pos = curr_pos.transpose(0, 1) if curr_pos is not None else torch.zeros_like(out)
        memory_b, memory_pos_b = memory.transpose(0, 1), memory_pos.transpose(0, 1)
        for layer in self.layers:
            out = layer(out, memory_b, memory_pos_b, query_pos, num_k_exclude_rope=num_obj_ptr_tokens)
        return self.norm(out).transpose(0, 1)
