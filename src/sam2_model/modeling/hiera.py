"""Hiera trunk of the SAM 2 image encoder.

Hiera is a hierarchical vision transformer: a strided convolution turns the image into a grid of
tokens, then four stages of transformer blocks follow. Most blocks attend inside square windows;
a few ("global" blocks) attend over the whole grid. The first block of stages 2..4 halves the grid
by max-pooling its queries (and its shortcut), doubling channels and heads.

The state-dict keys follow Meta's ``sam2`` package (``image_encoder.trunk.*`` there):

- ``patch_embed.proj.{weight,bias}``
- ``pos_embed`` (1, C, *bkg_size) and ``pos_embed_window`` (1, C, w0, w0)
- ``blocks.{i}.norm1 / attn.qkv / attn.proj / norm2 / mlp.layers.{0,1}`` and, where the width
  changes, ``blocks.{i}.proj``

All tensors inside the trunk are channels-last ``(B, H, W, C)``; the stage outputs are returned
channels-first ``(B, C, H, W)``.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from sam2_model.config import HieraConfig
from sam2_model.modeling.common import MLP

_LN_EPS = 1e-6


def _pool_channels_last(x: torch.Tensor, stride: Tuple[int, int]) -> torch.Tensor:
    """Max-pool a ``(B, H, W, C)`` grid with kernel = stride -> ``(B, H // sh, W // sw, C)``."""
    pooled = F.max_pool2d(x.permute(0, 3, 1, 2), kernel_size=stride, stride=stride)
    return pooled.permute(0, 2, 3, 1)


def split_windows(x: torch.Tensor, size: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Cut a ``(B, H, W, C)`` grid into ``size x size`` windows.

    The grid is zero-padded at the bottom/right up to a multiple of ``size`` first (the padded
    tokens are *not* masked out later: they take part in attention, as in the reference).

    Returns ``(windows, (rows, cols))``: windows ``(B * rows * cols, size, size, C)`` ordered
    batch-major then row-major, and the number of window rows/columns.
    """
    batch, height, width, channels = x.shape
    rows = -(-height // size)
    cols = -(-width // size)
    extra_h, extra_w = rows * size - height, cols * size - width
    if extra_h or extra_w:
        x = F.pad(x, (0, 0, 0, extra_w, 0, extra_h))
    grid = x.reshape(batch, rows, size, cols, size, channels).transpose(2, 3)
    return grid.reshape(batch * rows * cols, size, size, channels), (rows, cols)


def merge_windows(windows: torch.Tensor, layout: Tuple[int, int], height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`split_windows`: ``(B * rows * cols, s, s, C)`` -> ``(B, height, width, C)``.

    ``s`` may differ from the size used to split (after query pooling); the merged grid of
    ``rows * s x cols * s`` tokens is cropped to ``height x width``.
    """
    rows, cols = layout
    size, channels = windows.shape[1], windows.shape[-1]
    batch = windows.shape[0] // (rows * cols)
    grid = windows.reshape(batch, rows, cols, size, size, channels).transpose(2, 3)
    grid = grid.reshape(batch, rows * size, cols * size, channels)
    return grid[:, :height, :width, :]


class PatchEmbed(nn.Module):
    """Strided convolution ``(B, in_chans, H, W)`` -> channels-last tokens ``(B, H/s, W/s, C)``.

    Key: ``proj.{weight,bias}``.
    """

    def __init__(self, config: HieraConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            config.in_chans,
            config.embed_dim,
            kernel_size=config.patch_kernel,
            stride=config.patch_stride,
            padding=config.patch_padding,
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.proj(image).permute(0, 2, 3, 1)


class PooledAttention(nn.Module):
    """Multi-head self-attention whose queries may be max-pooled (Hiera's "mask unit attention").

    Input ``(N, h, w, dim_in)`` (N = batch x windows) -> ``(N, h', w', dim_out)`` where
    ``(h', w') = (h // sh, w // sw)`` when ``q_stride`` is set, else ``(h, w)``.
    Keys: ``qkv`` (dim_in -> 3 * dim_out) and ``proj`` (dim_out -> dim_out).
    """

    def __init__(self, dim_in: int, dim_out: int, num_heads: int, q_stride: Optional[Tuple[int, int]]) -> None:
        super().__init__()
        if dim_out % num_heads:
            raise ValueError(f"width {dim_out} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.q_stride = q_stride
        self.qkv = nn.Linear(dim_in, 3 * dim_out)
        self.proj = nn.Linear(dim_out, dim_out)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """(N, h, w, C) -> (N, heads, h * w, C / heads)."""
        n, h, w, c = t.shape
        return t.reshape(n, h * w, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        queries, keys, values = self.qkv(x).chunk(3, dim=-1)  # each (N, h, w, dim_out)
        if self.q_stride is not None:
            queries = _pool_channels_last(queries, self.q_stride)
        n, out_h, out_w, width = queries.shape
        attended = F.scaled_dot_product_attention(self._heads(queries), self._heads(keys), self._heads(values))
        attended = attended.transpose(1, 2).reshape(n, out_h, out_w, width)
        return self.proj(attended)


class HieraBlock(nn.Module):
    """Pre-norm transformer block with (windowed or global) pooled attention and an MLP.

    ``(B, H, W, dim_in)`` -> ``(B, H', W', dim_out)``, where ``H' = H // q_stride[0]`` when the
    block pools, else ``H``. ``window_size == 0`` means global attention.
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        num_heads: int,
        mlp_ratio: float,
        window_size: int,
        q_stride: Optional[Tuple[int, int]] = None,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.q_stride = q_stride
        self.norm1 = nn.LayerNorm(dim_in, eps=_LN_EPS)
        self.attn = PooledAttention(dim_in, dim_out, num_heads, q_stride)
        self.norm2 = nn.LayerNorm(dim_out, eps=_LN_EPS)
        self.mlp = MLP(dim_out, int(dim_out * mlp_ratio), dim_out, num_layers=2, activation=nn.GELU)
        # Width change: the shortcut is a linear projection of the *normalised* input.
        self.proj: Optional[nn.Linear] = nn.Linear(dim_in, dim_out) if dim_in != dim_out else None

    def _residual(self, x: torch.Tensor, normed: torch.Tensor) -> torch.Tensor:
        shortcut = self.proj(normed) if self.proj is not None else x
        if self.q_stride is not None:
            shortcut = _pool_channels_last(shortcut, self.q_stride)
        return shortcut

    def _attend(self, normed: torch.Tensor, out_hw: Tuple[int, int]) -> torch.Tensor:
        if self.window_size <= 0:
            return self.attn(normed)
        windows, layout = split_windows(normed, self.window_size)
        return merge_windows(self.attn(windows), layout, *out_hw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.norm1(x)
        shortcut = self._residual(x, normed)
        x = shortcut + self._attend(normed, (shortcut.shape[1], shortcut.shape[2]))
        return x + self.mlp(self.norm2(x))


class Hiera(nn.Module):
    """The Hiera trunk: ``(B, 3, H, W)`` -> four stage outputs, highest resolution first.

    With the default 4x4 patch stride and 2x2 query stride the outputs are
    ``(B, C * 2**s, H / (4 * 2**s), W / (4 * 2**s))`` for stages ``s = 0..3``, ``C = embed_dim``.
    """

    def __init__(self, config: HieraConfig) -> None:
        super().__init__()
        if len(config.stages) != len(config.window_spec):
            raise ValueError("stages and window_spec must have the same length")
        if not 0 <= config.q_pool <= len(config.stages) - 1:
            raise ValueError(f"q_pool must be in [0, {len(config.stages) - 1}], got {config.q_pool}")
        self.config = config
        self.patch_embed = PatchEmbed(config)
        self.pos_embed = nn.Parameter(torch.zeros(1, config.embed_dim, *config.window_pos_embed_bkg_spatial_size))
        first_window = config.window_spec[0]
        self.pos_embed_window = nn.Parameter(torch.zeros(1, config.embed_dim, first_window, first_window))

        # Index of the last block of every stage.
        ends = [sum(config.stages[: s + 1]) - 1 for s in range(len(config.stages))]
        self.stage_ends: Tuple[int, ...] = tuple(ends)
        stage_starts = [end + 1 for end in ends[:-1]]  # first block of stages 2..n
        pooling_blocks = set(stage_starts[: config.q_pool])
        global_blocks = set(config.global_att_blocks)

        self.blocks = nn.ModuleList()
        width, heads, stage = config.embed_dim, config.num_heads, 0
        for index in range(sum(config.stages)):
            # The first block of a stage still uses the window size of the previous stage.
            window = 0 if index in global_blocks else config.window_spec[stage]
            width_out = width
            if index in stage_starts:
                width_out = int(width * config.dim_mul)
                heads = int(heads * config.head_mul)
                stage += 1
            self.blocks.append(
                HieraBlock(
                    dim_in=width,
                    dim_out=width_out,
                    num_heads=heads,
                    mlp_ratio=config.mlp_ratio,
                    window_size=window,
                    q_stride=tuple(config.q_stride) if index in pooling_blocks else None,
                )
            )
            width = width_out
        self.channel_list: Tuple[int, ...] = tuple(self.blocks[end].attn.proj.out_features for end in reversed(ends))

    def position_embedding(self, height: int, width: int) -> torch.Tensor:
        """Background embedding resized (bicubic) to ``height x width`` plus the tiled window embedding.

        Returns ``(1, height, width, C)``. The reference requires the grid to be a multiple of the
        window; here a partial last tile is cropped instead.
        """
        background = F.interpolate(self.pos_embed, size=(height, width), mode="bicubic")
        win_h, win_w = self.pos_embed_window.shape[-2:]
        tiled = self.pos_embed_window.repeat(1, 1, -(-height // win_h), -(-width // win_w))
        return (background + tiled[..., :height, :width]).permute(0, 2, 3, 1)

    def forward(self, image: torch.Tensor) -> List[torch.Tensor]:
        x = self.patch_embed(image)
        x = x + self.position_embedding(x.shape[1], x.shape[2])
        outputs: List[torch.Tensor] = []
        stage_ends = set(self.stage_ends)
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in stage_ends:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
