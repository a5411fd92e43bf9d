"""SAM-style prompting of one image (or one frame): clicks, boxes, mask logits -> masks and scores.

On the same preprocessed input this equals the reference ``SAM2ImagePredictor`` (``sam2==1.1.0``):

* features: the stride-16 embedding gets the learned "no memory" embedding added (the reference's
  ``directly_add_no_mem_embed``), the two high-resolution skip levels go to the mask decoder;
* prompts: (x, y) pixels are divided by the original width / height and scaled to the model's
  input size; a box becomes two corner points (labels 2 and 3) placed *before* the clicks; the
  prompt encoder and mask decoder are called directly (no object-score gating, unlike the video path);
* output: low-res logits upsampled bilinearly (``align_corners=False``) to the original size and
  thresholded at 0; the returned low-res logits are clamped to [-32, 32] so they can be fed back as
  ``mask_input``.

Images are mapped to the model input by :mod:`sam2_model.frames` (uint8 as x / 255; other dtypes
through contrast limits; grey repeated to RGB; RGBA without its alpha) and resized bilinearly with
antialiasing, as the reference's torchvision ``Resize`` does on float tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from .build import inference_autocast
from .frames import (UINT8_LIMITS, blank_words, check_contrast_limits, check_finite, percentile_limits,
                     single_colour_channel, to_model_input, to_unit_rgb)
from .modeling.sam2 import SAM2Model
from .prompt_validation import (MIN_FRAME_SIDE, channels_last_problem, check_frame_size, dtype_problem, validate_box,
                                validate_points)

Prediction = Tuple[np.ndarray, np.ndarray, np.ndarray]
BOX_CORNER_LABELS = (2, 3)  # prompt-encoder labels of a box's top-left and bottom-right corners
LOGIT_CLAMP = 32.0  # the reference clamps returned low-res logits to +-32
MIN_CHANNEL_SIDE = MIN_FRAME_SIDE  # channel=<index> must leave an image at least this many px on each side
RGB_CHANNELS = 3  # an (H, W, 4) image is RGBA: its first three channels are shown, its alpha is dropped
#: predict() hints at windows where set_image's image is at least this many times the model's input on its longer side
LARGE_IMAGE_FACTOR = 3.0
#: ... and the mask is narrower than this many px at the model's input (half the windows' 24 px: WINDOW_OBJECT_PX)
SMALL_MASK_INPUT_PX = 12.0


@dataclass(frozen=True)
class _ImageFeatures:
    """Features of the current image. embed: (1, C, h, w) incl. no_mem_embed; high_res: decoder skips."""

    embed: torch.Tensor
    high_res: List[torch.Tensor]
    height: int
    width: int


@dataclass(frozen=True)
class _Prompts:
    """Checked prompts in model-input pixels. coords (B, P, 2) / labels (B, P) or None; mask (B, 1, 4h, 4w) or None."""

    coords: Optional[torch.Tensor]
    labels: Optional[torch.Tensor]
    mask: Optional[torch.Tensor]
    batch: int
    batched: bool


def _as_float_array(value: Any, name: str, expected: str) -> np.ndarray:
    """``value`` as a float64 array, or a ValueError naming the argument and the form it should have."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be {expected} (numbers), got {value!r}") from error


class ImagePredictor:
    """Prompt one image at a time; the image features are computed once per :meth:`set_image`.

    contrast_limits: (low, high) mapped to 0 and 1 (default: x / 255 for uint8, the 0.5 / 99.8
    percentiles of the image for other dtypes); channel: which channel of an (H, W, C) image to use
    (required when C is not 1, 3 or 4; when given it is used for RGB and RGBA images too). An (H, W, 4) image is RGBA:
    its alpha channel is dropped. Channels are the last axis, 16 at most; channel-first arrays are refused
    (:func:`~sam2_model.prompt_validation.channels_last_problem`), and so is a channel that would leave an image under
    8 px on a side, and any image under 8 px on a side (as :class:`~sam2_model.frames.FrameSource` refuses such
    frames: the model gives them empty masks).
    """

    def __init__(
        self, model: SAM2Model, contrast_limits: Optional[Sequence[float]] = None, channel: Optional[int] = None
    ) -> None:
        if channel is not None and (isinstance(channel, bool) or not isinstance(channel, (int, np.integer))):
            raise ValueError(f"channel must be an integer channel index or None, got {channel!r}")
        self.model = model
        self.contrast_limits = check_contrast_limits(contrast_limits)
        self.channel = None if channel is None else int(channel)
        self._features: Optional[_ImageFeatures] = None
        self._size_hint = False  # set_image's image is large against the model's input: predict() may warn, once

    # ------------------------------------------------------------------ image
    @property
    def is_image_set(self) -> bool:
        return self._features is not None

    @property
    def image_shape(self) -> Optional[Tuple[int, int]]:
        """(H, W) of the current image, or None."""
        return None if self._features is None else (self._features.height, self._features.width)

    def reset_image(self) -> None:
        """Forget the current image and its features."""
        self._features = None
        self._size_hint = False

    def unit_rgb(self, image: Any) -> np.ndarray:
        """(H, W) or (H, W, C) of any numeric dtype -> (H, W, 3) float32 in [0, 1], as :meth:`set_image` maps it
        (this predictor's channel and contrast limits; an (H, W, 4) image is RGBA, read without its alpha; an RGB
        image whose picture is in one channel, the other two constant, is read as that channel in grey, as
        :class:`~sam2_model.frames.FrameSource` reads such stacks). ValueError, in the words of the video doors
        (:mod:`~sam2_model.prompt_validation`), for an image thinner than 8 px on a side (the image the channel
        leaves) and for non-numeric data (a bool mask names its fix, ``image.astype(np.uint8)``)."""
        return to_unit_rgb(*self._picked(image))

    def _picked(self, image: Any) -> Tuple[np.ndarray, Optional[Tuple[float, float]]]:
        """:meth:`unit_rgb`'s checks and channel choice: (the (H, W) or (H, W, 3) array the model is shown, in the
        image's own values; its contrast limits, None for uint8 as x / 255)."""
        array = np.asarray(image)
        if array.ndim not in (2, 3) or 0 in array.shape:
            raise ValueError(f"image must be a non-empty (H, W) or (H, W, C) array, got shape {array.shape}")
        if (problem := dtype_problem(array.dtype)) is not None:  # the video doors' words (bool: its fix)
            raise ValueError(f"image: {problem}")
        if array.ndim == 3:
            if (problem := channels_last_problem(array.shape)) is not None:
                raise ValueError(problem)
            channels = array.shape[2]
            if self.channel is not None:
                if not -channels <= self.channel < channels:
                    raise ValueError(f"channel={self.channel} is out of range for an image with {channels} channels")
                if min(array.shape[:2]) < MIN_CHANNEL_SIDE:
                    raise ValueError(
                        f"channel={self.channel} would leave a {array.shape[0]}x{array.shape[1]} image of the "
                        f"{array.shape} array (under {MIN_CHANNEL_SIDE} px on a side): channels must be the last "
                        "axis of an (H, W, C) image (np.moveaxis(image, 0, -1) moves them there)"
                    )
                array = array[..., self.channel]
            elif channels == 1:
                array = array[..., 0]
            elif channels not in (3, 4):
                raise ValueError(
                    f"image has {channels} channels: pass channel=<index> to ImagePredictor "
                    "(or give one channel, image[..., c], an (H, W, 3) RGB or an (H, W, 4) RGBA array)"
                )
            else:
                array = array[..., :RGB_CHANNELS]  # RGBA: the alpha channel is not shown to the model
                if (colour := single_colour_channel(array)) is not None:
                    array = array[..., colour]  # RGB with one colour only: that channel as grey, as FrameSource does
        check_frame_size(*array.shape[:2])  # as the video doors refuse them: thinner images give empty masks
        check_finite(array, "image")
        limits = self.contrast_limits
        if limits is None and array.dtype != np.uint8:
            limits = percentile_limits([array])
        return array, limits

    @torch.inference_mode()
    def set_image(self, image: Any) -> None:
        """Compute the features of ``image``: (H, W) or (H, W, C), any numeric dtype, at least 8 px on each side.

        On a ValueError the previously set image (if any) stays set. An image at least 3x the model's input on its
        longer side arms a hint: the first :meth:`predict` whose mask is then under 12 input px wide warns (a
        UserWarning, once per image) that small objects on a large image come out poorly on the whole image (40 px
        discs in 3000 x 4000 px at the demo's 256 px input: IoU 0.2) and names
        :class:`~sam2_model.windows.WindowedPredictor` and ``napari_sam2.segment()``, which prompt each object in a
        window around it (IoU 0.95 there). A blank image (every pixel one value, or every pixel at or past one
        contrast limit: :func:`~sam2_model.frames.blank_words`) is set as any other, with a UserWarning that the model
        has nothing to see there.
        """
        array, limits = self._picked(image)
        unit = to_unit_rgb(array, limits)
        tensor = to_model_input(unit, self.model.image_size, mode="bilinear")
        self.set_model_input(tensor, unit.shape[:2])
        blank = blank_words(array, UINT8_LIMITS if limits is None else limits)
        if blank is not None:
            warnings.warn(f"the image is blank ({blank}): the model has nothing to see there; its masks on it are "
                          "guesses", UserWarning, stacklevel=3)
        self._size_hint = max(unit.shape[:2]) >= LARGE_IMAGE_FACTOR * self.model.image_size

    @torch.inference_mode()
    def set_model_input(self, tensor: torch.Tensor, image_shape: Tuple[int, int]) -> None:
        """Set an already preprocessed (3, S, S) model input whose original size was ``image_shape`` (H, W)."""
        size = self.model.image_size
        if tuple(tensor.shape) != (3, size, size):
            raise ValueError(f"model input must have shape (3, {size}, {size}), got {tuple(tensor.shape)}")
        with inference_autocast(self.model.device):
            features = self.model.encode_image(tensor[None].to(self.model.device, torch.float32))
        embed = features.image_embed
        if self.model.config.directly_add_no_mem_embed:
            embed = embed + self.model.no_mem_embed.reshape(1, -1, 1, 1)
        self._features = _ImageFeatures(embed, list(features.high_res), int(image_shape[0]), int(image_shape[1]))
        self._size_hint = False  # callers of this door (windows, sessions) chose the image's scale themselves

    # ------------------------------------------------------------------ prompts
    def _prepare_prompts(self, points: Any, labels: Any, box: Any, mask_input: Any) -> _Prompts:
        """Check the user's prompts and move them to model-input pixels (see :meth:`predict`)."""
        assert self._features is not None
        height, width = self._features.height, self._features.width
        boxes = None if box is None else _as_float_array(box, "box", "(x0, y0, x1, y1) or a (B, 4) array")
        xy = None if points is None else _as_float_array(points, "points", "an (N, 2) array of (x, y) pixels")
        box_batch = boxes.shape[0] if boxes is not None and boxes.ndim == 2 else None
        point_batch = xy.shape[0] if xy is not None and xy.ndim == 3 else None
        if box_batch is not None and (boxes.shape[1] != 4 or box_batch == 0):
            raise ValueError(f"box must be (x0, y0, x1, y1) or a (B, 4) array of boxes, got shape {boxes.shape}")
        if box_batch is not None and point_batch is not None and box_batch != point_batch:
            raise ValueError(f"points give {point_batch} prompts but box gives {box_batch}: the batches must agree")
        batched = box_batch is not None or point_batch is not None
        batch = box_batch or point_batch or 1
        corners = None
        if boxes is not None:
            rows = boxes if box_batch is not None else [box]  # validate_box names the offending box
            corners = np.broadcast_to(np.stack([validate_box(b, height, width) for b in rows]), (batch, 4))
        point_xy, point_labels = self._prepare_points(xy, labels, batch, height, width)

        groups = []
        if corners is not None:
            box_labels = np.broadcast_to(np.array(BOX_CORNER_LABELS, np.int32), (batch, 2))
            groups.append((corners.reshape(batch, 2, 2), box_labels))
        if point_xy.shape[1] > 0:
            groups.append((point_xy, point_labels))
        coords = labels_t = None
        if groups:
            coords = self._to_input_pixels(np.concatenate([g[0] for g in groups], axis=1))
            labels_t = torch.as_tensor(np.concatenate([g[1] for g in groups], axis=1), device=self.model.device)

        mask = None if mask_input is None else self._prepare_mask(mask_input, batch, batched)
        return _Prompts(coords, labels_t, mask, batch, batched)

    def _to_input_pixels(self, xy: np.ndarray) -> torch.Tensor:
        """(B, P, 2) float32 (x, y) pixels of the current image -> (B, P, 2) float32 pixels of the model's input."""
        assert self._features is not None
        scale = np.array([self._features.width, self._features.height], np.float32)
        return torch.as_tensor((xy / scale * self.model.image_size).astype(np.float32), device=self.model.device)

    @staticmethod
    def _prepare_points(
        xy: Optional[np.ndarray], labels: Any, batch: int, height: int, width: int
    ) -> Tuple[np.ndarray, np.ndarray]:
        """-> coords (B, N, 2) float32 and labels (B, N) int32 in original pixels (N may be 0)."""
        if xy is not None and xy.ndim == 3:
            lab = np.asarray(labels) if labels is not None else None
            if lab is None or lab.shape != xy.shape[:2] or xy.shape[2] != 2:
                raise ValueError(
                    f"batched points must be (B, N, 2) with labels (B, N), got points {xy.shape} and labels "
                    f"{None if lab is None else lab.shape}"
                )
            flat_xy, flat_lab = validate_points(xy.reshape(-1, 2), lab.reshape(-1), height, width)
            return flat_xy.reshape(xy.shape), flat_lab.reshape(lab.shape)
        flat_xy, flat_lab = validate_points(xy, labels, height, width)
        # (N, 2) clicks go with every prompt of a batch.
        return np.broadcast_to(flat_xy, (batch,) + flat_xy.shape), np.broadcast_to(flat_lab, (batch,) + flat_lab.shape)

    def _prepare_mask(self, mask_input: Any, batch: int, batched: bool) -> torch.Tensor:
        """(1, 4h, 4w) / (4h, 4w) logits, or (B, 1, 4h, 4w) / (B, 4h, 4w) when batched -> (B, 1, 4h, 4w)."""
        side = 4 * self.model.config.feature_size
        array = _as_float_array(mask_input, "mask_input", "low-res logits from predict()").astype(np.float32)
        expected = f"({batch}, 1, {side}, {side})" if batched else f"(1, {side}, {side})"
        if array.ndim == 2 and not batched:
            array = array[None]
        if array.ndim == 3:
            array = array[:, None] if batched else array[None]
        if array.shape != (batch, 1, side, side):
            raise ValueError(
                f"mask_input must be low-res logits of shape {expected} as predict() returns them "
                f"(one of its masks), got shape {np.shape(mask_input)}"
            )
        if not np.isfinite(array).all():
            raise ValueError("mask_input contains NaN or infinite values")
        return torch.as_tensor(array, device=self.model.device)

    # ------------------------------------------------------------------ prediction
    @torch.inference_mode()
    def predict(
        self,
        points: Optional[Any] = None,
        labels: Optional[Any] = None,
        box: Optional[Any] = None,
        mask_input: Optional[Any] = None,
        multimask: Optional[bool] = None,
        return_logits: bool = False,
    ) -> Prediction:
        """Masks for the prompts on the current image.

        points (N, 2) (x, y) in original pixels with labels (N,) of 1 (positive) / 0 (negative);
        box (x0, y0, x1, y1); mask_input (1, 4h, 4w) low-res logits from an earlier call (one mask).
        Returns masks (M, H, W) bool (float32 logits when ``return_logits``), scores (M,) float32
        predicted IoU and low-res logits (M, 4h, 4w) float32, with M = 3 if ``multimask`` else 1.
        multimask None: the model's own choice (``config.multimask_output_in_sam``): 3 masks for the official
        presets (Meta's default), 1 for the demo model, which was trained with single-mask output (its 3
        multimask outputs and their scores are untrained).
        No prompt at all (no points, box or mask_input) is not an error: the masks the model gives for an empty
        prompt come back, as Meta's ``SAM2ImagePredictor.predict()`` returns them (kept for parity).

        Batched: box (B, 4) (with optional points (N, 2) shared by all boxes, or (B, N, 2) with
        labels (B, N)) and/or points (B, N, 2); mask_input then (B, 1, 4h, 4w). Returns
        (B, M, H, W), (B, M), (B, M, 4h, 4w) -- also for B = 1.
        """
        if self._features is None:
            raise ValueError("no image is set: call set_image(image) before predict()")
        prompts = self._prepare_prompts(points, labels, box, mask_input)
        masks_np, scores_np, low_np = self._decode(prompts, multimask, return_logits)
        if self._size_hint:
            self._warn_if_small(masks_np if not return_logits else masks_np > 0, prompts.batched)
        return masks_np, scores_np, low_np

    @torch.inference_mode()
    def predict_grid(self, points: Any, multimask: Optional[bool] = None, mask_input: Optional[Any] = None
                     ) -> Prediction:
        """The automatic mask generator's clicks: one positive click at each of ``points`` (B, 2) (x, y) pixels,
        taken where the reference's grid puts them, anywhere on the image's span 0 <= x <= W, 0 <= y <= H.

        :meth:`predict` takes napari's pixels (x < W - 0.5: a click past the last pixel's edge is off the image); a
        grid of n points a side scaled to a side of S px, as the reference scales it, puts its last point at
        S - S / (2 n), past that edge once S <= n (y = 23.625 on a 24 px side with 32 points), and the reference
        clicks it there; this door does too, so that grid masks equal the reference's on every image size.
        mask_input: optional (B, 1, 4h, 4w) low-res logits, one per click (the generator's refinement pass).
        Returns what ``predict(points[:, None], labels, mask_input, multimask, return_logits=True)`` returns:
        logits (B, M, H, W) float32, scores (B, M) float32, low-res logits (B, M, 4h, 4w) float32.
        """
        if self._features is None:
            raise ValueError("no image is set: call set_image(image) before predict_grid()")
        height, width = self._features.height, self._features.width
        xy = _as_float_array(points, "points", "a (B, 2) array of (x, y) pixels")
        if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] == 0:
            raise ValueError(f"points must be a (B, 2) array of (x, y) pixels, B >= 1, got shape {xy.shape}")
        if not np.isfinite(xy).all():
            raise ValueError("points contain NaN or infinite coordinates")
        outside = (xy[:, 0] < 0) | (xy[:, 0] > width) | (xy[:, 1] < 0) | (xy[:, 1] > height)
        if outside.any():
            x, y = xy[outside][0]
            raise ValueError(f"grid point (x={x:g}, y={y:g}) lies outside the {width}x{height} image; grid points take "
                             f"0 <= x <= {width} and 0 <= y <= {height}")
        batch = xy.shape[0]
        coords = self._to_input_pixels(xy.astype(np.float32)[:, None, :])
        labels = torch.ones((batch, 1), dtype=torch.int32, device=self.model.device)
        mask = None if mask_input is None else self._prepare_mask(mask_input, batch, True)
        return self._decode(_Prompts(coords, labels, mask, batch, True), multimask, True)

    def _decode(self, prompts: _Prompts, multimask: Optional[bool], return_logits: bool) -> Prediction:
        """Checked prompts -> masks (B, M, H, W) (bool, or float32 logits when ``return_logits``), scores (B, M),
        low-res logits (B, M, 4h, 4w), as NumPy arrays; without the batch axis unless ``prompts.batched``."""
        assert self._features is not None
        features = self._features
        point_arg = None if prompts.coords is None else (prompts.coords, prompts.labels)
        encoder = self.model.sam_prompt_encoder
        with inference_autocast(self.model.device):
            sparse, dense = encoder(points=point_arg, boxes=None, masks=prompts.mask)
            low_res, scores, _, _ = self.model.sam_mask_decoder(
                image_embeddings=features.embed,
                image_pe=encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=self.model.config.multimask_output_in_sam if multimask is None else bool(multimask),
                repeat_image=prompts.batch > 1,
                high_res_features=features.high_res or None,
            )
        low_res = low_res.float()
        full = F.interpolate(low_res, size=(features.height, features.width), mode="bilinear", align_corners=False)
        masks = full if return_logits else full > 0
        outputs = (masks, scores.float(), low_res.clamp(-LOGIT_CLAMP, LOGIT_CLAMP))
        if not prompts.batched:
            outputs = tuple(x[0] for x in outputs)
        masks_np, scores_np, low_np = (x.cpu().numpy() for x in outputs)
        return masks_np, scores_np, low_np

    def _warn_if_small(self, masks: np.ndarray, batched: bool) -> None:
        """Warn, once per image, where the prompts' first masks ((M, H, W), or (B, M, H, W) when ``batched``) are
        under :data:`SMALL_MASK_INPUT_PX` wide at the model's input (width: a disc's of the median mask's area)."""
        assert self._features is not None
        first = masks[:, 0] if batched else masks[:1]
        areas = np.count_nonzero(first.reshape(first.shape[0], -1), axis=1)
        area = float(np.median(areas[areas > 0])) if np.any(areas > 0) else 0.0
        if area == 0:
            return  # nothing to measure: no hint from an empty mask
        height, width, size = self._features.height, self._features.width, self.model.image_size
        longer = max(height, width)
        wide = 2.0 * math.sqrt(area / math.pi)
        at_input = wide * size / longer
        if at_input >= SMALL_MASK_INPUT_PX:
            return
        self._size_hint = False
        warnings.warn(
            f"ImagePredictor: this {height} x {width} image is shown to the model at {size} x {size} px "
            f"({longer / size:.0f}x smaller), so this mask, about {wide:.0f} px wide, is {at_input:.0f} px wide at the "
            "model's input: small objects on a large image come out poorly this way (one click on 40 px discs in "
            "a 3000 x 4000 image: IoU 0.2, in windows 0.9-0.95). Prompt each object in a window around it: "
            f"sam2_model.WindowedPredictor(model, side=sam2_model.window_side(d, ({height}, {width}), {size})), d "
            f"your objects' width in px (this mask says at most about {wide:.0f}: a whole-image mask is often wider "
            "than its object), takes the same set_image() and predict() calls; napari_sam2.segment() picks windows "
            "by itself", stacklevel=4)  # the caller of predict() (under torch.inference_mode's wrapper)

