"""SAM prompt encoder: clicks and box corners -> sparse tokens; a mask -> dense embedding."""

from __future__ import annotations

from typing import Optional, Tuple, Type

import torch
from torch import nn

from ..config import SAM2Config
from .common import LayerNorm2d
from .position_encoding import PositionEmbeddingRandom

NUM_POINT_KINDS = 4  # label 0 negative, 1 positive, 2 box top-left, 3 box bottom-right
PADDING_LABEL = -1


class PromptEncoder(nn.Module):
    """Encodes point/box/mask prompts for the mask decoder.

    Keys: ``pe_layer``, ``point_embeddings.{0..3}``, ``not_a_point_embed``, ``mask_downscaling``,
    ``no_mask_embed``.
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        image_embedding_size: Tuple[int, int],
        input_image_size: Tuple[int, int],
        mask_in_chans: int,
        activation: Type[nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = tuple(image_embedding_size)
        self.input_image_size = tuple(input_image_size)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(NUM_POINT_KINDS))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        quarter = mask_in_chans // 4
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, quarter, kernel_size=2, stride=2),
            LayerNorm2d(quarter),
            activation(),
            nn.Conv2d(quarter, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            activation(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def get_dense_pe(self) -> torch.Tensor:
        """Encoding of every image-embedding location: (1, embed_dim, h, w); do not modify it in place.

        The same tensor on every inference call (eval mode, no gradient): it depends only on the grid size and
        the positional buffer (its tensor, device, dtype and version: a load_state_dict or an in-place change of the
        buffer makes it anew; a write through ``buffer.data`` bumps no version and is not seen: assign a new buffer
        then) and on the autocast state. Training, gradient-enabled calls and CUDA graph captures compute it each
        time.
        """
        size = tuple(self.image_embedding_size)
        matrix = self.pe_layer.positional_encoding_gaussian_matrix
        if self.training or torch.is_grad_enabled() or _capturing(matrix.device):
            return self.pe_layer(size).unsqueeze(0)
        device_type = matrix.device.type
        autocast = torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type)
        key = (size, matrix.data_ptr(), matrix.device, matrix.dtype, matrix._version, autocast,
               torch.is_inference_mode_enabled())
        cached = getattr(self, "_dense_pe_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, self.pe_layer(size).unsqueeze(0))
            self._dense_pe_cache = cached
        return cached[1]

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """coords (B, N, 2) pixel (x, y), labels (B, N) -> (B, N [+1 padding], embed_dim)."""
        coords = coords + 0.5  # pixel centres
        if pad:
            batch = coords.shape[0]
            coords = torch.cat([coords, coords.new_zeros(batch, 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((batch, 1), PADDING_LABEL)], dim=1)
        encoded = self.pe_layer.forward_with_coords(coords, self.input_image_size)
        labels = labels[..., None]
        encoded = torch.where(labels == PADDING_LABEL, self.not_a_point_embed.weight + torch.zeros_like(encoded), encoded)
        for kind, embedding in enumerate(self.point_embeddings):
            encoded = torch.where(labels == kind, encoded + embedding.weight, encoded)
        return encoded

    def embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """boxes (B, 4) as (x0, y0, x1, y1) -> corner tokens (B, 2, embed_dim)."""
        corners = (boxes + 0.5).reshape(-1, 2, 2)
        encoded = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_kinds = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight], dim=0)
        return encoded + corner_kinds

    def forward(
        self,
        points: Optional[Tuple[torch.Tensor, torch.Tensor]],
        boxes: Optional[torch.Tensor],
        masks: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Returns sparse (B, N, embed_dim) and dense (B, embed_dim, h, w) embeddings.

        A padding point is appended to clicks when no box is given. masks: (B, 1, 4h, 4w).
        """
        if points is not None:
            batch = points[0].shape[0]
        elif boxes is not None:
            batch = boxes.shape[0]
        elif masks is not None:
            batch = masks.shape[0]
        else:
            batch = 1
        device = self.no_mask_embed.weight.device
        tokens = [torch.empty((batch, 0, self.embed_dim), device=device)]
        if points is not None:
            tokens.append(self.embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            tokens.append(self.embed_boxes(boxes))
        sparse = torch.cat(tokens, dim=1)
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            h, w = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(batch, -1, h, w)
        return sparse, dense


def build_prompt_encoder(config: SAM2Config) -> PromptEncoder:
    """The prompt encoder that SAM 2 builds for ``config``."""
    side = config.feature_size
    return PromptEncoder(
        embed_dim=config.hidden_dim,
        image_embedding_size=(side, side),
        input_image_size=(config.image_size, config.image_size),
        mask_in_chans=config.decoder.mask_in_chans,
    )


def _capturing(device: torch.device) -> bool:
    """Whether a CUDA graph is being captured on the current stream (its tensors belong to the graph)."""
    return device.type == "cuda" and torch.cuda.is_current_stream_capturing()
