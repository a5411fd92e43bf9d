"""Memory encoder: turns a frame's image embedding and its predicted mask into a memory.

Pipeline (shapes for the stride-16 grid ``h x w``, ``in_dim`` = hidden dim 256, ``out_dim`` = mem_dim 64)::

    masks (B, 1, 16h, 16w) --[sigmoid unless skipped]--> mask_downsampler --> (B, in_dim, h, w)
    pix_feat (B, in_dim, h, w) --> pix_feat_proj (1x1 conv)  --> (B, in_dim, h, w)
    sum --> fuser (ConvNeXt blocks) --> out_proj (1x1 conv) --> memory (B, out_dim, h, w)
    memory --> 2D sine encoding --> memory position encoding (B, out_dim, h, w)

State-dict keys (prefix ``memory_encoder.`` in the full model): ``mask_downsampler.encoder.{i}.*``,
``pix_feat_proj.*``, ``fuser.layers.{i}.{dwconv,norm,pwconv1,pwconv2,gamma}``, ``out_proj.*``.
"""

from __future__ import annotations

import math
from typing import List, NamedTuple

import torch
from torch import nn

from ..config import MemoryEncoderConfig
from .common import LayerNorm2d
from .position_encoding import PositionEmbeddingSine


def _num_downsampling_stages(stride: int, total_stride: int) -> int:
    """How many ``stride``-strided stages reach ``total_stride`` (which must be a power of it)."""
    if stride < 2:
        raise ValueError(f"downsampler stride must be at least 2, got {stride}")
    stages = round(math.log(total_stride) / math.log(stride))
    if stages < 1 or stride**stages != total_stride:
        raise ValueError(f"downsampler total_stride {total_stride} is not a power of its stride {stride}")
    return stages


class MaskDownSampler(nn.Module):
    """Brings a full-resolution mask down to the stride-16 grid with ``embed_dim`` channels.

    Each stage is a strided conv that multiplies the channels by ``stride**2`` (so the number of
    values per stage stays constant: 1 -> 4 -> 16 -> 64 -> 256 for stride 2 and total stride 16),
    followed by a channel LayerNorm and GELU; a final 1x1 conv maps to ``embed_dim``.

    ``forward``: (B, 1, H, W) -> (B, embed_dim, H / total_stride, W / total_stride).
    Keys: ``encoder.{3k}`` conv, ``encoder.{3k+1}`` norm of stage k, ``encoder.{3 * stages}`` the 1x1 conv.
    """

    def __init__(self, embed_dim: int, kernel_size: int, stride: int, padding: int, total_stride: int) -> None:
        super().__init__()
        self.total_stride = total_stride
        stages: List[nn.Module] = []
        width = 1
        for _ in range(_num_downsampling_stages(stride, total_stride)):
            wider = width * stride * stride
            stages.append(nn.Conv2d(width, wider, kernel_size, stride=stride, padding=padding))
            stages.append(LayerNorm2d(wider))
            stages.append(nn.GELU())
            width = wider
        stages.append(nn.Conv2d(width, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*stages)

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        return self.encoder(masks)


class CXBlock(nn.Module):
    """ConvNeXt block in channels-last form, with a residual connection.

    depth-wise ``kernel_size`` conv -> LayerNorm over channels -> Linear(dim, 4 dim) -> GELU ->
    Linear(4 dim, dim) -> per-channel layer scale ``gamma`` (absent when the init value is <= 0).

    ``forward``: (B, dim, H, W) -> (B, dim, H, W).
    Keys: ``dwconv``, ``norm``, ``pwconv1``, ``pwconv2`` (weight/bias each) and ``gamma`` (dim,).
    """

    def __init__(self, dim: int, kernel_size: int = 7, padding: int = 3, layer_scale_init_value: float = 1e-6) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=padding, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma: nn.Parameter | None = None
        if layer_scale_init_value > 0:
            self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.norm(self.dwconv(x))
        channels_last = branch.permute(0, 2, 3, 1)  # (B, H, W, dim)
        channels_last = self.pwconv2(self.act(self.pwconv1(channels_last)))
        if self.gamma is not None:
            channels_last = channels_last * self.gamma
        return x + channels_last.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """``num_layers`` CXBlocks applied in sequence (keys ``layers.{i}.*``); (B, dim, H, W) -> same."""

    def __init__(self, dim: int, config: MemoryEncoderConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            CXBlock(dim, config.fuser_kernel_size, config.fuser_padding, config.fuser_layer_scale_init_value)
            for _ in range(config.fuser_num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.layers:
            x = block(x)
        return x


class MemoryEncoding(NamedTuple):
    """Output of :class:`MemoryEncoder`; unpacks as ``features, pos_enc``.

    features: (B, out_dim, h, w) the memory; pos_enc: (B, out_dim, h, w) its 2D sine encoding.
    """

    features: torch.Tensor
    pos_enc: torch.Tensor


class MemoryEncoder(nn.Module):
    """Fuses stride-16 image features with a mask into an ``out_dim``-channel memory (see module doc)."""

    def __init__(self, config: MemoryEncoderConfig, in_dim: int = 256) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.out_dim = config.out_dim
        self.mask_downsampler = MaskDownSampler(
            embed_dim=in_dim,
            kernel_size=config.downsampler_kernel_size,
            stride=config.downsampler_stride,
            padding=config.downsampler_padding,
            total_stride=config.downsampler_total_stride,
        )
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(in_dim, config)
        # Without a width change the reference keeps an identity here (and so has no out_proj keys).
        self.out_proj: nn.Module = nn.Identity()
        if config.out_dim != in_dim:
            self.out_proj = nn.Conv2d(in_dim, config.out_dim, kernel_size=1)
        self.position_encoding = PositionEmbeddingSine(config.out_dim)

    def forward(self, pix_feat: torch.Tensor, masks: torch.Tensor, skip_mask_sigmoid: bool = False) -> MemoryEncoding:
        """Encode one memory per batch element.

        pix_feat: (B, in_dim, h, w) stride-16 image features (moved to the masks' device).
        masks: (B, 1, S*h, S*w) with S the downsampler's total stride: mask logits, or, when
        ``skip_mask_sigmoid``, values already mapped by the caller (SAM 2 feeds sigmoid*20-10).
        Returns :class:`MemoryEncoding` with features and pos_enc, each (B, out_dim, h, w).
        """
        if masks.dim() != 4 or masks.shape[1] != 1:
            raise ValueError(f"masks must be (B, 1, H, W), got {tuple(masks.shape)}")
        stride = self.mask_downsampler.total_stride
        expected = (pix_feat.shape[0], stride * pix_feat.shape[-2], stride * pix_feat.shape[-1])
        if (masks.shape[0], masks.shape[-2], masks.shape[-1]) != expected:
            raise ValueError(
                f"masks {tuple(masks.shape)} do not fit image features {tuple(pix_feat.shape)} at stride {stride}"
            )
        mask_input = masks if skip_mask_sigmoid else torch.sigmoid(masks)
        mask_embed = self.mask_downsampler(mask_input)
        fused = self.pix_feat_proj(pix_feat.to(mask_embed.device)) + mask_embed
        memory = self.out_proj(self.fuser(fused))
        return MemoryEncoding(memory, self.position_encoding(memory).to(memory.dtype))
