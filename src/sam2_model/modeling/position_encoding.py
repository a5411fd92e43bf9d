"""Position encodings: 2D sine (FPN levels, memories) and random Fourier features (prompts)."""

from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
from torch import nn


class PositionEmbeddingSine(nn.Module):
    """Normalised 2D sine/cosine encoding of a feature map's grid (DETR style).

    ``forward(x)`` with x (B, C_any, H, W) -> (B, num_pos_feats, H, W); the first half of the
    channels encode y, the second half x. It has no parameters, so no state-dict keys.
    """

    def __init__(
        self,
        num_pos_feats: int,
        temperature: float = 10000,
        normalize: bool = True,
        scale: float | None = None,
    ) -> None:
        super().__init__()
        if num_pos_feats % 2:
            raise ValueError(f"num_pos_feats must be even, got {num_pos_feats}")
        if scale is not None and not normalize:
            raise ValueError("scale is only used with normalize=True")
        self.half_feats = num_pos_feats // 2
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale
        self._cache: Dict[Tuple[int, int, str], torch.Tensor] = {}

    def _frequencies(self, device: torch.device) -> torch.Tensor:
        exponent = 2 * (torch.arange(self.half_feats, dtype=torch.float32, device=device) // 2)
        return self.temperature ** (exponent / self.half_feats)

    def _interleave(self, angles: torch.Tensor) -> torch.Tensor:
        """(..., F) angles -> (..., F) with sin at even and cos at odd channels."""
        return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)

    def grid(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        """Encoding of an ``height x width`` grid: (num_pos_feats, H, W)."""
        key = (height, width, str(device))
        if key not in self._cache:
            ys = torch.arange(1, height + 1, dtype=torch.float32, device=device)
            xs = torch.arange(1, width + 1, dtype=torch.float32, device=device)
            if self.normalize:
                eps = 1e-6
                ys = ys / (ys[-1] + eps) * self.scale
                xs = xs / (xs[-1] + eps) * self.scale
            freqs = self._frequencies(device)
            pos_y = self._interleave(ys[:, None] / freqs)  # (H, F)
            pos_x = self._interleave(xs[:, None] / freqs)  # (W, F)
            pos = torch.cat(
                (pos_y[:, None, :].expand(height, width, -1), pos_x[None, :, :].expand(height, width, -1)),
                dim=-1,
            )
            self._cache[key] = pos.permute(2, 0, 1).contiguous()
        return self._cache[key]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = self.grid(x.shape[-2], x.shape[-1], x.device)
        return pos[None].expand(x.shape[0], -1, -1, -1).to(x.dtype)


class PositionEmbeddingRandom(nn.Module):
    """Random Fourier features of normalised (x, y) coordinates, as SAM's prompt encoder uses.

    Key: ``positional_encoding_gaussian_matrix`` (2, num_pos_feats). Output channels: 2 * num_pos_feats.
    """

    def __init__(self, num_pos_feats: int = 64, scale: float | None = None) -> None:
        super().__init__()
        scale = 1.0 if scale is None or scale <= 0.0 else scale
        self.register_buffer("positional_encoding_gaussian_matrix", scale * torch.randn((2, num_pos_feats)))

    def encode_unit(self, coords: torch.Tensor) -> torch.Tensor:
        """(..., 2) coordinates in [0, 1] -> (..., 2 * num_pos_feats)."""
        projected = (2 * coords - 1) @ self.positional_encoding_gaussian_matrix
        projected = 2 * math.pi * projected
        return torch.cat([projected.sin(), projected.cos()], dim=-1)

    def forward(self, size: Tuple[int, int]) -> torch.Tensor:
        """Dense encoding of pixel centres of an ``(h, w)`` grid: (2 * num_pos_feats, h, w)."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w
        coords = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (h, w, 2) as (x, y)
        return self.encode_unit(coords).permute(2, 0, 1)

    def forward_with_coords(self, coords: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
        """(B, N, 2) pixel (x, y) in an image of ``(h, w)`` -> (B, N, 2 * num_pos_feats)."""
        h, w = image_size
        # Made on the device (no host-to-device copy), so the prompt path can be captured in a CUDA graph.
        size = torch.stack((coords.new_full((), w), coords.new_full((), h)))
        return self.encode_unit((coords / size).float())
