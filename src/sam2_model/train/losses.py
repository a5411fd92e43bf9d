"""SAM 2's training losses: focal + dice on masks, L1 on the IoU prediction, cross-entropy on presence.

Weights default to the paper's (20 : 1 : 1 : 1). Mask and IoU terms count only where the object is
present; when the decoder outputs several masks, only the one with the lowest mask loss is trained
(the others get the IoU term only), as in SAM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossWeights:
    focal: float = 20.0
    dice: float = 1.0
    iou: float = 1.0
    object_score: float = 1.0


def sigmoid_focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """(N, M, H, W) logits and (N, 1, H, W) target -> (N, M) mean focal loss per mask."""
    target = target.expand_as(logits)
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(2).mean(dim=2)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, M, H, W) logits and (N, 1, H, W) target -> (N, M) soft dice loss per mask."""
    prob = logits.sigmoid().flatten(2)
    target = target.expand_as(logits).flatten(2)
    numerator = 2 * (prob * target).sum(dim=2)
    denominator = prob.sum(dim=2) + target.sum(dim=2)
    return 1 - (numerator + 1) / (denominator + 1)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of (logits > 0) with target: (N, M, H, W), (N, 1, H, W) -> (N, M), no gradient."""
    with torch.no_grad():
        pred = (logits > 0).flatten(2)
        gt = (target > 0.5).expand_as(logits).flatten(2)
        inter = (pred & gt).sum(dim=2).float()
        union = (pred | gt).sum(dim=2).float()
        return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


def prediction_losses(
    logits: torch.Tensor, ious: torch.Tensor, object_scores: torch.Tensor, target: torch.Tensor,
    weights: LossWeights = LossWeights(), unknown: Optional[torch.Tensor] = None,
) -> Dict[str, torch.Tensor]:
    """Losses of one prediction step for N objects.

    logits: (N, M, H, W) raw mask logits at the target's resolution; ious: (N, M) predicted IoU in
    [0, 1]; object_scores: (N, 1) presence logits; target: (N, 1, H, W) in {0, 1}; unknown: (N,) bool, True for
    an object not annotated here (an empty target that does not mean "gone": it adds no presence loss), or None.
    Returns the weighted terms (each a scalar averaged over the N objects) and their sum "total".
    """
    present = (target.flatten(1).amax(dim=1) > 0).float()  # (N,)
    focal = sigmoid_focal_loss(logits, target)
    dice = dice_loss(logits, target)
    combined = weights.focal * focal + weights.dice * dice
    best = combined.argmin(dim=1)
    rows = torch.arange(logits.shape[0], device=logits.device)
    actual_iou = mask_iou(logits, target)
    iou_l1 = (ious.float() - actual_iou).abs().mean(dim=1)
    denominator = present.sum().clamp(min=1)
    terms = {
        "focal": weights.focal * (focal[rows, best] * present).sum() / denominator,
        "dice": weights.dice * (dice[rows, best] * present).sum() / denominator,
        "iou": weights.iou * (iou_l1 * present).sum() / denominator,
        "object_score": weights.object_score
        * F.binary_cross_entropy_with_logits(object_scores.float().squeeze(1), present,
                                             weight=None if unknown is None else (~unknown).float()),
    }
    terms["total"] = sum(terms.values())
    terms["mask_iou"] = (actual_iou[rows, best] * present).sum().detach() / denominator
    return terms
