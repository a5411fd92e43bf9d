"""SAM-style prompting of one image (or one frame): clicks, boxes, mask logits -> masks and scores.

Equal to the reference ``SAM2ImagePredictor`` on the same preprocessed input: the image embedding
gets the "no memory" embedding added, boxes become two corner points placed before the clicks,
masks are upsampled bilinearly to the image and thresholded at 0, low-res logits are clamped to
[-32, 32] so they can be passed back as ``mask_input``.
"""

from __future__ import annotations

import contextlib
from typing import Any, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .build import autocast_dtype
from .frames import check_finite, percentile_limits, to_model_input, to_unit_rgb
from .modeling.sam2 import SAM2Model
from .prompt_validation import validate_box, validate_points

Prediction = Tuple[np.ndarray, np.ndarray, np.ndarray]


class ImagePredictor:
    """Prompt one image at a time; features are computed once per ``set_image``.

    contrast_limits: for non-uint8 images (default: 0.5-99.8 percentiles of the image);
    channel: which channel of an (H, W, C) image with C != 3 to use.
    """

    def __init__(
        self, model: SAM2Model, contrast_limits: Optional[Tuple[float, float]] = None, channel: Optional[int] = None
    ) -> None:
        self.model = model
        self.contrast_limits = contrast_limits
        self.channel = channel
        self.reset_image()

    def reset_image(self) -> None:
        self._embed: Optional[torch.Tensor] = None
        self._high_res: list = []
        self.image_shape: Optional[Tuple[int, int]] = None

    @torch.inference_mode()
    def set_image(self, image: Any) -> None:
        """image: (H, W) or (H, W, C) of any numeric dtype."""
        array = np.asarray(image)
        if array.ndim not in (2, 3) or array.size == 0 or min(array.shape[:2]) == 0:
            raise ValueError(f"image must be a non-empty (H, W) or (H, W, C) array, got shape {array.shape}")
        if array.ndim == 3 and array.shape[-1] != 3:
            if self.channel is None:
                if array.shape[-1] != 1:
                    raise ValueError(f"the image has {array.shape[-1]} channels: pass channel=<index> to ImagePredictor")
                array = array[..., 0]
            else:
                array = array[..., self.channel]
        if array.dtype.kind not in "uif":
            raise ValueError(f"image dtype {array.dtype} is not numeric")
        check_finite(array, "image")
        limits = self.contrast_limits
        if array.dtype != np.uint8 and limits is None:
            limits = percentile_limits([array])
        # Bilinear + antialias, as SAM2ImagePredictor resizes (torchvision Resize on a float tensor).
        tensor = to_model_input(to_unit_rgb(array, limits), self.model.image_size, mode="bilinear")
        self.set_model_input(tensor, array.shape[:2])

    @torch.inference_mode()
    def set_model_input(self, tensor: torch.Tensor, image_shape: Tuple[int, int]) -> None:
        """Set an already preprocessed (3, S, S) input whose original size was ``image_shape``."""
        with self._autocast():
            features = self.model.encode_image(tensor[None].to(self.model.device))
        embed = features.image_embed
        if self.model.config.directly_add_no_mem_embed:
            embed = embed + self.model.no_mem_embed.view(1, -1, 1, 1)
        self._embed, self._high_res = embed, features.high_res
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))

    @torch.inference_mode()
    def predict(
        self,
        points: Optional[Any] = None,
        labels: Optional[Any] = None,
        box: Optional[Any] = None,
        mask_input: Optional[Any] = None,
        multimask: bool = True,
        return_logits: bool = False,
    ) -> Prediction:
        """Masks (M, H, W) bool (or float logits), scores (M,), low-res logits (M, 4h, 4w).

        points (N, 2) (x, y) pixels with labels (N,) 1/0; box (x0, y0, x1, y1); mask_input
        (1, 4h, 4w) low-res logits from an earlier call.
        """
        if self._embed is None or self.image_shape is None:
            raise ValueError("call set_image(image) before predict()")
        height, width = self.image_shape
        xy, lab = validate_points(points, labels, height, width)
        corners = validate_box(box, height, width)
        low_res_size = 4 * self.model.config.feature_size
        mask = None
        if mask_input is not None:
            mask = torch.as_tensor(np.asarray(mask_input), dtype=torch.float32)
            if mask.ndim == 2:
                mask = mask[None]
            if tuple(mask.shape) != (1, low_res_size, low_res_size):
                raise ValueError(
                    f"mask_input must be low-res logits of shape (1, {low_res_size}, {low_res_size}) as predict() "
                    f"returns them, got {tuple(mask.shape)}"
                )
            mask = mask[None].to(self.model.device)

        scale = torch.tensor([width, height], dtype=torch.float32)
        coords = torch.as_tensor(xy).reshape(1, -1, 2) / scale * self.model.image_size
        point_labels = torch.as_tensor(lab).reshape(1, -1)
        if corners is not None:
            box_coords = torch.as_tensor(corners).reshape(1, 2, 2) / scale * self.model.image_size
            coords = torch.cat([box_coords, coords], dim=1)
            point_labels = torch.cat([torch.tensor([[2, 3]], dtype=torch.int32), point_labels], dim=1)
        points_arg = None if coords.shape[1] == 0 else (coords.to(self.model.device), point_labels.to(self.model.device))

        decoder = self.model.sam_mask_decoder
        with self._autocast():
            sparse, dense = self.model.sam_prompt_encoder(points=points_arg, boxes=None, masks=mask)
            low_res, scores, _, _ = decoder(
                image_embeddings=self._embed,
                image_pe=self.model.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
                repeat_image=False,
                high_res_features=self._high_res or None,
            )
        low_res = low_res.float()
        masks = F.interpolate(low_res, size=(height, width), mode="bilinear", align_corners=False)
        low_res = low_res.clamp(-32.0, 32.0)
        out = masks[0] if return_logits else masks[0] > 0
        return out.cpu().numpy(), scores[0].float().cpu().numpy(), low_res[0].cpu().numpy()

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = autocast_dtype(self.model.device)
        return torch.autocast(self.model.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
