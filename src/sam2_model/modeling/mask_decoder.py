"""SAM 2 mask decoder: output tokens -> 3+1 masks, IoU estimates and an object-presence score."""

from __future__ import annotations

from typing import List, Optional, Tuple, Type

import torch
from torch import nn

from ..config import SAM2Config
from .common import MLP, LayerNorm2d
from .two_way_transformer import TwoWayTransformer


class MaskDecoder(nn.Module):
    """Two-way transformer over [object-score, IoU, mask tokens, prompt tokens] and the image.

    Mask token 0 gives the single-mask output, tokens 1..3 the multimask outputs. With
    ``use_high_res_features`` the upscaling path adds stride-4 and stride-8 encoder features
    (projected by ``conv_s0`` / ``conv_s1``, which the model applies once per image).
    """

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: nn.Module,
        num_multimask_outputs: int = 3,
        activation: Type[nn.Module] = nn.GELU,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        use_high_res_features: bool = False,
        iou_prediction_use_sigmoid: bool = False,
        dynamic_multimask_via_stability: bool = False,
        dynamic_multimask_stability_delta: float = 0.05,
        dynamic_multimask_stability_thresh: float = 0.98,
        pred_obj_scores: bool = False,
        pred_obj_scores_mlp: bool = False,
        use_multimask_token_for_obj_ptr: bool = False,
    ) -> None:
        super().__init__()
        dim = transformer_dim
        self.transformer = transformer
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, dim)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, dim)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = nn.Embedding(1, dim)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            activation(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            activation(),
        )
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            self.conv_s0 = nn.Conv2d(dim, dim // 8, kernel_size=1)
            self.conv_s1 = nn.Conv2d(dim, dim // 4, kernel_size=1)
        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(dim, dim, dim // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            dim, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth, sigmoid_output=iou_prediction_use_sigmoid
        )
        if pred_obj_scores:
            self.pred_obj_score_head: nn.Module = MLP(dim, dim, 1, 3) if pred_obj_scores_mlp else nn.Linear(dim, 1)
        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: Optional[List[torch.Tensor]] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Decode masks for B prompts.

        image_embeddings (B or 1, C, h, w); image_pe (1, C, h, w); sparse (B, N, C); dense (B, C, h, w);
        high_res_features [(B, C/8, 4h, 4w), (B, C/4, 2h, 2w)].
        Returns masks (B, M, 4h, 4w) logits, iou_pred (B, M), sam_tokens_out (B, M or 1, C) and
        object_score_logits (B, 1); M = 3 with ``multimask_output`` else 1.
        """
        masks, ious, mask_tokens, object_scores = self.decode(
            image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, repeat_image,
            high_res_features,
        )
        if multimask_output:
            masks, ious = masks[:, 1:], ious[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            masks, ious = self.select_stable_mask(masks, ious)
        else:
            masks, ious = masks[:, :1], ious[:, :1]
        tokens = mask_tokens[:, 1:] if multimask_output and self.use_multimask_token_for_obj_ptr else mask_tokens[:, :1]
        return masks, ious, tokens, object_scores

    def decode(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse: torch.Tensor,
        dense: torch.Tensor,
        repeat_image: bool,
        high_res_features: Optional[List[torch.Tensor]],
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """All 4 masks (B, 4, 4h, 4w), IoUs (B, 4), mask tokens (B, 4, C), object scores (B, 1)."""
        batch = sparse.shape[0]
        fixed = [self.iou_token.weight, self.mask_tokens.weight]
        if self.pred_obj_scores:
            fixed.insert(0, self.obj_score_token.weight)
        output_tokens = torch.cat(fixed, dim=0).unsqueeze(0).expand(batch, -1, -1)
        tokens = torch.cat([output_tokens, sparse], dim=1)
        if repeat_image:
            image = torch.repeat_interleave(image_embeddings, batch, dim=0)
        else:
            if image_embeddings.shape[0] != batch:
                raise ValueError("image batch and prompt batch differ; pass repeat_image=True")
            image = image_embeddings
        image = image + dense
        pos = torch.repeat_interleave(image_pe, batch, dim=0)
        b, c, h, w = image.shape
        hidden, image_tokens = self.transformer(image, pos, tokens)
        iou_index = 1 if self.pred_obj_scores else 0  # the object-score token comes first
        iou_out = hidden[:, iou_index]
        mask_tokens = hidden[:, iou_index + 1 : iou_index + 1 + self.num_mask_tokens]

        grid = image_tokens.transpose(1, 2).reshape(b, c, h, w)
        upscaled = self._upscale(grid, high_res_features)
        hyper = torch.stack(
            [mlp(mask_tokens[:, index]) for index, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        _, up_c, up_h, up_w = upscaled.shape
        masks = (hyper @ upscaled.view(b, up_c, up_h * up_w)).view(b, -1, up_h, up_w)
        ious = self.iou_prediction_head(iou_out)
        if self.pred_obj_scores:
            object_scores = self.pred_obj_score_head(hidden[:, 0])
        else:
            object_scores = 10.0 * ious.new_ones(ious.shape[0], 1)
        return masks, ious, mask_tokens, object_scores

    def _upscale(self, grid: torch.Tensor, high_res_features: Optional[List[torch.Tensor]]) -> torch.Tensor:
        """(B, C, h, w) -> (B, C/8, 4h, 4w), adding the skip features when used."""
        if not self.use_high_res_features:
            return self.output_upscaling(grid)
        if high_res_features is None:
            raise ValueError("this decoder needs the high-resolution encoder features")
        deconv1, norm1, act1, deconv2, act2 = self.output_upscaling
        stride4, stride8 = high_res_features
        x = act1(norm1(deconv1(grid) + stride8))
        return act2(deconv2(x) + stride4)

    def stability_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """IoU between the masks thresholded at +delta and -delta: (B, M, H, W) -> (B, M)."""
        flat = logits.flatten(-2)
        delta = self.dynamic_multimask_stability_delta
        inner = (flat > delta).sum(dim=-1).float()
        outer = (flat > -delta).sum(dim=-1).float()
        return torch.where(outer > 0, inner / outer, 1.0)

    def select_stable_mask(self, masks: torch.Tensor, ious: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Single-mask output, replaced by the best multimask output where it is unstable.

        masks (B, 4, H, W), ious (B, 4) -> (B, 1, H, W), (B, 1).
        """
        rows = torch.arange(masks.shape[0], device=masks.device)
        best = torch.argmax(ious[:, 1:], dim=-1) + 1
        best_masks, best_ious = masks[rows, best][:, None], ious[rows, best][:, None]
        stable = self.stability_scores(masks[:, :1]) >= self.dynamic_multimask_stability_thresh
        return (
            torch.where(stable[..., None, None], masks[:, :1], best_masks),
            torch.where(stable, ious[:, :1], best_ious),
        )


def build_mask_decoder(config: SAM2Config) -> MaskDecoder:
    """The mask decoder that SAM 2 builds for ``config``."""
    d = config.decoder
    transformer = TwoWayTransformer(
        depth=d.transformer_depth,
        embedding_dim=config.hidden_dim,
        num_heads=d.transformer_num_heads,
        mlp_dim=d.transformer_mlp_dim,
        attention_downsample_rate=d.attention_downsample_rate,
    )
    return MaskDecoder(
        transformer_dim=config.hidden_dim,
        transformer=transformer,
        num_multimask_outputs=d.num_multimask_outputs,
        iou_head_depth=d.iou_head_depth,
        iou_head_hidden_dim=d.iou_head_hidden_dim,
        use_high_res_features=config.use_high_res_features_in_sam,
        iou_prediction_use_sigmoid=config.iou_prediction_use_sigmoid,
        dynamic_multimask_via_stability=d.dynamic_multimask_via_stability,
        dynamic_multimask_stability_delta=d.dynamic_multimask_stability_delta,
        dynamic_multimask_stability_thresh=d.dynamic_multimask_stability_thresh,
        pred_obj_scores=config.pred_obj_scores,
        pred_obj_scores_mlp=config.pred_obj_scores_mlp,
        use_multimask_token_for_obj_ptr=config.use_multimask_token_for_obj_ptr,
    )
