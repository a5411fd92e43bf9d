"""FPN neck of the SAM 2 image encoder.

Every trunk stage is projected to ``d_model`` channels by a 1x1 convolution (the "lateral"
path). Going from the coarsest level to the finest, the levels listed in ``fpn_top_down_levels``
additionally receive the 2x-upsampled output of the level below them (the "top-down" path); the
other levels output their lateral features alone (and restart the top-down chain). There is no
output convolution.

State-dict keys (``image_encoder.neck.*`` in Meta's package): ``convs.{j}.conv.{weight,bias}``,
where ``j`` counts from the *deepest* stage (``j = 0`` is the lowest resolution).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from sam2_model.config import NeckConfig
from sam2_model.modeling.position_encoding import PositionEmbeddingSine

_INTERP_MODES = ("nearest", "bilinear", "bicubic")


class FpnNeck(nn.Module):
    """Lateral 1x1 projections + partial top-down fusion + sine position encodings.

    Args:
        config: the neck settings.
        backbone_channels: channels of the trunk stages, deepest first (``HieraConfig.channel_list``).
    """

    def __init__(self, config: NeckConfig, backbone_channels: Sequence[int]) -> None:
        super().__init__()
        if config.fuse_type not in ("sum", "avg"):
            raise ValueError(f"fuse_type must be 'sum' or 'avg', got {config.fuse_type!r}")
        if config.fpn_interp_model not in _INTERP_MODES:
            raise ValueError(f"fpn_interp_model must be one of {_INTERP_MODES}, got {config.fpn_interp_model!r}")
        self.config = config
        self.backbone_channel_list: Tuple[int, ...] = tuple(backbone_channels)
        self.position_encoding = PositionEmbeddingSine(config.d_model)
        self.convs = nn.ModuleList(
            nn.Sequential(OrderedDict(conv=nn.Conv2d(channels, config.d_model, kernel_size=1)))
            for channels in self.backbone_channel_list
        )
        self.top_down_levels = frozenset(config.fpn_top_down_levels)

    def _upsample(self, coarse: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) -> float32 (B, D, 2h, 2w)."""
        mode = self.config.fpn_interp_model
        return F.interpolate(
            coarse.float(),
            scale_factor=2.0,
            mode=mode,
            align_corners=None if mode == "nearest" else False,
        )

    def forward(self, stages: Sequence[torch.Tensor]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Fuse the trunk outputs.

        Args:
            stages: trunk outputs, highest resolution first; level ``i`` is ``(B, C_i, H_i, W_i)``.

        Returns:
            ``(features, positions)``, both highest resolution first: features ``(B, d_model, H_i, W_i)``
            and their sine position encodings of the same shape.
        """
        levels = len(self.convs)
        if len(stages) != levels:
            raise ValueError(f"expected {levels} trunk levels, got {len(stages)}")
        features: List[torch.Tensor] = [torch.empty(0)] * levels
        positions: List[torch.Tensor] = [torch.empty(0)] * levels
        running: torch.Tensor | None = None
        for level in reversed(range(levels)):
            lateral = self.convs[levels - 1 - level](stages[level])
            if running is not None and level in self.top_down_levels:
                running = lateral + self._upsample(running)
                if self.config.fuse_type == "avg":
                    running = running / 2
            else:
                running = lateral
            features[level] = running
            positions[level] = self.position_encoding(running).to(running.dtype)
        return features, positions
