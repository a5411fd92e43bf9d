"""SAM 2 image encoder: Hiera trunk + FPN neck, with the lowest-resolution levels dropped ("scalp").

State-dict keys: ``trunk.*`` (see :mod:`sam2_model.modeling.hiera`) and ``neck.*`` (see
:mod:`sam2_model.modeling.fpn_neck`), as ``image_encoder.*`` of Meta's ``SAM2Base``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import torch
from torch import nn

from sam2_model.config import HieraConfig, NeckConfig
from sam2_model.modeling.fpn_neck import FpnNeck
from sam2_model.modeling.hiera import Hiera


@dataclass(frozen=True)
class ImageFeatures:
    """Output of :class:`ImageEncoder` for a batch of B images.

    ``backbone_fpn[i]`` is ``(B, d_model, H_i, W_i)``, highest resolution first; with the default
    settings and a 1024 px input these are 256x256, 128x128 and 64x64 (strides 4, 8, 16).
    ``vision_pos_enc[i]`` is the matching sine position encoding, same shape.
    """

    backbone_fpn: List[torch.Tensor]
    vision_pos_enc: List[torch.Tensor]

    @property
    def vision_features(self) -> torch.Tensor:
        """Lowest-resolution kept level, ``(B, d_model, H / 16, W / 16)`` by default."""
        return self.backbone_fpn[-1]


class ImageEncoder(nn.Module):
    """``(B, 3, H, W)`` normalised image -> :class:`ImageFeatures`."""

    def __init__(self, hiera: HieraConfig, neck: NeckConfig) -> None:
        super().__init__()
        self.trunk = Hiera(hiera)
        self.neck = FpnNeck(neck, self.trunk.channel_list)
        if not 0 <= neck.scalp < len(hiera.stages):
            raise ValueError(f"scalp must be in [0, {len(hiera.stages) - 1}], got {neck.scalp}")
        self.scalp = neck.scalp

    def forward(self, image: torch.Tensor) -> ImageFeatures:
        features, positions = self.neck(self.trunk(image))
        keep = len(features) - self.scalp
        return ImageFeatures(backbone_fpn=features[:keep], vision_pos_enc=positions[:keep])
