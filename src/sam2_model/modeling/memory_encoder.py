"""Memory encoder: fuses a frame's image features with its predicted mask into a memory."""

from __future__ import annotations

import math
from typing import Tuple

import torch
from torch import nn

from ..config import MemoryEncoderConfig
from .common import LayerNorm2d
from .position_encoding import PositionEmbeddingSine


class MaskDownSampler(nn.Module):
    """Strided conv + LayerNorm2d + GELU stages down to ``total_stride``, then a 1x1 conv.

    Channels grow by stride**2 per stage (1 -> 4 -> 16 -> 64 -> 256 for stride 2, total 16).
    (B, 1, H, W) -> (B, embed_dim, H / total_stride, W / total_stride). Key: ``encoder.{i}``.
    """

    def __init__(self, embed_dim: int, kernel_size: int, stride: int, padding: int, total_stride: int) -> None:
        super().__init__()
        num_stages = round(math.log(total_stride) / math.log(stride))
        if stride**num_stages != total_stride:
            raise ValueError(f"total_stride {total_stride} is not a power of stride {stride}")
        layers: list[nn.Module] = []
        channels = 1
        for _ in range(num_stages):
            out_channels = channels * stride**2
            layers += [
                nn.Conv2d(channels, out_channels, kernel_size=kernel_size, stride=stride, padding=padding),
                LayerNorm2d(out_channels),
                nn.GELU(),
            ]
            channels = out_channels
        layers.append(nn.Conv2d(channels, embed_dim, kernel_size=1))
        self.encoder = nn.Sequential(*layers)

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        return self.encoder(masks)


class CXBlock(nn.Module):
    """ConvNeXt block: depth-wise conv, LayerNorm, pointwise MLP (x4), layer scale, residual."""

    def __init__(self, dim: int, kernel_size: int, padding: int, layer_scale_init_value: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=padding, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim)) if layer_scale_init_value > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        y = self.norm(self.dwconv(x)).permute(0, 2, 3, 1)
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = self.gamma * y
        return x + y.permute(0, 3, 1, 2)


class Fuser(nn.Module):
    """A stack of CXBlocks (key ``layers.{i}``)."""

    def __init__(self, dim: int, config: MemoryEncoderConfig) -> None:
        super().__init__()
        self.proj = nn.Identity()
        self.layers = nn.ModuleList(
            CXBlock(dim, config.fuser_kernel_size, config.fuser_padding, config.fuser_layer_scale_init_value)
            for _ in range(config.fuser_num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nn.Module):
    """pix_feat (B, in_dim, h, w) + mask (B, 1, 16h, 16w) -> memory (B, out_dim, h, w) and its encoding."""

    def __init__(self, config: MemoryEncoderConfig, in_dim: int = 256) -> None:
        super().__init__()
        self.mask_downsampler = MaskDownSampler(
            in_dim, config.downsampler_kernel_size, config.downsampler_stride, config.downsampler_padding,
            config.downsampler_total_stride,
        )
        self.pix_feat_proj = nn.Conv2d(in_dim, in_dim, kernel_size=1)
        self.fuser = Fuser(in_dim, config)
        self.position_encoding = PositionEmbeddingSine(config.out_dim)
        self.out_proj: nn.Module = (
            nn.Conv2d(in_dim, config.out_dim, kernel_size=1) if config.out_dim != in_dim else nn.Identity()
        )

    def forward(
        self, pix_feat: torch.Tensor, masks: torch.Tensor, skip_mask_sigmoid: bool = False
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns (memory features, memory position encoding), each (B, out_dim, h, w).

        ``masks`` are logits unless ``skip_mask_sigmoid`` (then already scaled probabilities).
        """
        if not skip_mask_sigmoid:
            masks = torch.sigmoid(masks)
        mask_features = self.mask_downsampler(masks)
        x = self.pix_feat_proj(pix_feat.to(mask_features.device)) + mask_features
        x = self.out_proj(self.fuser(x))
        return x, self.position_encoding(x).to(x.dtype)
