"""The composed SAM 2 model: image encoder, SAM heads, memory encoder, memory attention.

The model is stateless between calls: the caller (``VideoSession``, ``ImagePredictor``, training)
owns the memory bank and passes the relevant entries in. State-dict keys equal those of the
reference ``SAM2Base`` so official checkpoints load strictly.
"""

from __future__ import annotations

from collections import ChainMap
from dataclasses import dataclass
from typing import List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SAM2Config
from .common import MLP
from .image_encoder import ImageEncoder
from .mask_decoder import build_mask_decoder
from .memory_attention import MemoryAttention
from .memory_bank import recent_memory_frames, select_object_pointers, sine_encoding_1d, split_conditioning_frames
from .memory_encoder import MemoryEncoder
from .prompt_encoder import build_prompt_encoder

NO_OBJECT_SCORE = -1024.0  # logit given to every pixel when the object-score head says "absent"
MASK_AS_OUTPUT_SCALE, MASK_AS_OUTPUT_BIAS = 20.0, -10.0  # binary mask prompt -> logits


def upsample_as_decoded(low_res_logits: torch.Tensor, image_size: int, decoded_masks: int) -> torch.Tensor:
    """High-res logits of a chosen mask, upsampled exactly as :meth:`SAM2Model.predict_masks` upsampled them.

    low_res_logits: (B, 1, 4h, 4w) float32, the mask chosen among ``decoded_masks`` (1 or 3) decoder outputs;
    returns (B, 1, image_size, image_size). The SAM heads upsample all their masks at once, as the reference
    does, and on one CPU thread PyTorch's bilinear kernel rounds a 3-channel tensor unlike a 1-channel one
    (3.8e-6 apart); a memory recomputed from stored low-res logits would then differ from the one first made.
    Upsampling the chosen mask among as many copies of itself gives the same bits on any thread count.
    """
    size = (image_size, image_size)
    if decoded_masks == 1:
        return F.interpolate(low_res_logits, size=size, mode="bilinear", align_corners=False)
    copies = low_res_logits.expand(-1, decoded_masks, -1, -1).contiguous()
    return F.interpolate(copies, size=size, mode="bilinear", align_corners=False)[:, :1]


@dataclass
class FrameFeatures:
    """Image features of one frame, ready for the SAM heads and memory attention.

    image_embed: (B, C, h, w) stride-16 features; image_pos: (B, C, h, w) their sine encoding;
    high_res: [(B, C/8, 4h, 4w), (B, C/4, 2h, 2w)] skip features (already through conv_s0/conv_s1),
    or an empty list when the model does not use them.
    """

    image_embed: torch.Tensor
    image_pos: torch.Tensor
    high_res: List[torch.Tensor]

    @property
    def batch_size(self) -> int:
        return self.image_embed.shape[0]

    def expand(self, batch_size: int) -> "FrameFeatures":
        """The same single-image features repeated for ``batch_size`` objects."""
        if self.batch_size == batch_size:
            return self
        return FrameFeatures(
            self.image_embed.expand(batch_size, -1, -1, -1),
            self.image_pos.expand(batch_size, -1, -1, -1),
            [x.expand(batch_size, -1, -1, -1) for x in self.high_res],
        )

    def to(self, device: torch.device | str) -> "FrameFeatures":
        return FrameFeatures(
            self.image_embed.to(device), self.image_pos.to(device), [x.to(device) for x in self.high_res]
        )


@dataclass
class MaskPrediction:
    """Output of the SAM heads for a batch of B prompts on one frame.

    multimask_logits: (B, M, 4h, 4w) low-res logits of all M output masks (M = 3 or 1);
    ious: (B, M) predicted IoU; low_res_logits: (B, 1, 4h, 4w) and high_res_logits:
    (B, 1, S, S) of the chosen mask (highest IoU when multimask); obj_ptr: (B, C) object pointer;
    object_score_logits: (B, 1) presence logit (> 0: the object is visible).
    raw_multimask_logits: (B, M, 4h, 4w) the decoder's logits before absent objects are blanked
    (what training losses look at; the same tensor as ``multimask_logits`` for mask prompts).
    """

    multimask_logits: torch.Tensor
    ious: torch.Tensor
    low_res_logits: torch.Tensor
    high_res_logits: torch.Tensor
    obj_ptr: torch.Tensor
    object_score_logits: torch.Tensor
    raw_multimask_logits: Optional[torch.Tensor] = None


@dataclass
class MemoryEntry:
    """What the memory bank keeps of one frame: encoded memory, its position encoding, object pointer.

    features, pos_enc: (B, mem_dim, h, w); obj_ptr: (B, C).
    """

    features: torch.Tensor
    pos_enc: torch.Tensor
    obj_ptr: torch.Tensor


class SAM2Model(nn.Module):
    """SAM 2 (or 2.1): built from a :class:`SAM2Config`; keys match Meta's checkpoints."""

    def __init__(self, config: SAM2Config) -> None:
        super().__init__()
        self.config = config
        hidden, mem_dim = config.hidden_dim, config.mem_dim
        self.image_encoder = ImageEncoder(config.hiera, config.neck)
        self.memory_attention = MemoryAttention(config.memory_attention, d_model=hidden, mem_dim=mem_dim)
        self.memory_encoder = MemoryEncoder(config.memory_encoder, in_dim=hidden)
        self.sam_prompt_encoder = build_prompt_encoder(config)
        self.sam_mask_decoder = build_mask_decoder(config)
        if config.use_obj_ptrs_in_encoder:
            self.mask_downsample = nn.Conv2d(1, 1, kernel_size=4, stride=4)
            self.obj_ptr_proj: nn.Module = (
                MLP(hidden, hidden, hidden, 3) if config.use_mlp_for_obj_ptr_proj else nn.Linear(hidden, hidden)
            )
        else:
            self.obj_ptr_proj = nn.Identity()
        self.obj_ptr_tpos_proj: nn.Module = (
            nn.Linear(hidden, mem_dim) if config.proj_tpos_enc_in_obj_ptrs else nn.Identity()
        )
        self.maskmem_tpos_enc = nn.Parameter(torch.zeros(config.num_maskmem, 1, 1, mem_dim))
        self.no_mem_embed = nn.Parameter(torch.zeros(1, 1, hidden))
        self.no_mem_pos_enc = nn.Parameter(torch.zeros(1, 1, hidden))
        if config.pred_obj_scores and config.use_obj_ptrs_in_encoder:
            self.no_obj_ptr = nn.Parameter(torch.zeros(1, hidden))
        self.no_obj_embed_spatial = nn.Parameter(torch.zeros(1, mem_dim)) if config.no_obj_embed_spatial else None
        for param in (self.maskmem_tpos_enc, self.no_mem_embed, self.no_mem_pos_enc):
            nn.init.trunc_normal_(param, std=0.02)
        for name in ("no_obj_ptr", "no_obj_embed_spatial"):
            if getattr(self, name, None) is not None:
                nn.init.trunc_normal_(getattr(self, name), std=0.02)

    # ------------------------------------------------------------------ properties
    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------ image encoder
    def encode_image(self, images: torch.Tensor) -> FrameFeatures:
        """images (B, 3, S, S), ImageNet-normalised -> :class:`FrameFeatures`."""
        out = self.image_encoder(images)
        levels, pos = list(out.backbone_fpn), list(out.vision_pos_enc)
        high_res: List[torch.Tensor] = []
        if self.config.use_high_res_features_in_sam:
            high_res = [self.sam_mask_decoder.conv_s0(levels[0]), self.sam_mask_decoder.conv_s1(levels[1])]
        return FrameFeatures(image_embed=levels[-1], image_pos=pos[-1], high_res=high_res)

    # ------------------------------------------------------------------ SAM heads
    def predict_masks(
        self,
        image_embed: torch.Tensor,
        high_res: List[torch.Tensor],
        point_coords: Optional[torch.Tensor] = None,
        point_labels: Optional[torch.Tensor] = None,
        mask_input: Optional[torch.Tensor] = None,
        multimask: bool = False,
    ) -> MaskPrediction:
        """Prompt encoder + mask decoder on (memory-conditioned) features.

        image_embed: (B, C, h, w); point_coords (B, P, 2) in model-input pixels (x, y) with
        point_labels (B, P) (1 positive, 0 negative, 2/3 box corners, -1 padding); mask_input
        (B, 1, H', W') logits or binary mask, resized to the prompt encoder's 4h x 4w if needed.
        """
        batch, device = image_embed.shape[0], image_embed.device
        if point_coords is None:
            point_coords = torch.zeros(batch, 1, 2, device=device)
            point_labels = -torch.ones(batch, 1, dtype=torch.int32, device=device)
        mask_prompt = None
        if mask_input is not None:
            target = (4 * self.config.feature_size, 4 * self.config.feature_size)
            mask_prompt = mask_input
            if tuple(mask_input.shape[-2:]) != target:
                mask_prompt = F.interpolate(
                    mask_input.float(), size=target, mode="bilinear", align_corners=False, antialias=True
                )
        sparse, dense = self.sam_prompt_encoder(points=(point_coords, point_labels), boxes=None, masks=mask_prompt)
        multimask_logits, ious, tokens, object_scores = self.sam_mask_decoder(
            image_embeddings=image_embed,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
            repeat_image=False,
            high_res_features=high_res or None,
        )
        raw_logits = multimask_logits
        present = object_scores > 0
        if self.config.pred_obj_scores:
            multimask_logits = torch.where(present[:, None, None], multimask_logits, NO_OBJECT_SCORE)
        multimask_logits = multimask_logits.float()
        size = (self.image_size, self.image_size)
        high_res_multimask = F.interpolate(multimask_logits, size=size, mode="bilinear", align_corners=False)
        token = tokens[:, 0]
        if multimask:
            best = torch.argmax(ious, dim=-1)
            rows = torch.arange(batch, device=device)
            low_res = multimask_logits[rows, best].unsqueeze(1)
            high = high_res_multimask[rows, best].unsqueeze(1)
            if tokens.shape[1] > 1:
                token = tokens[rows, best]
        else:
            low_res, high = multimask_logits, high_res_multimask
        obj_ptr = self._gate_pointer(self.obj_ptr_proj(token), object_scores)
        return MaskPrediction(multimask_logits, ious, low_res, high, obj_ptr, object_scores, raw_logits)

    def _gate_pointer(self, obj_ptr: torch.Tensor, object_scores: torch.Tensor) -> torch.Tensor:
        """Blend the pointer towards the learned "no object" pointer when the object is absent."""
        if not self.config.pred_obj_scores:
            return obj_ptr
        weight = object_scores.sigmoid() if self.config.soft_no_obj_ptr else (object_scores > 0).float()
        if self.config.fixed_no_obj_ptr:
            obj_ptr = weight * obj_ptr
        return obj_ptr + (1 - weight) * self.no_obj_ptr

    def mask_as_output(self, features: FrameFeatures, mask: torch.Tensor) -> MaskPrediction:
        """Turn a binary mask prompt (B, 1, S, S) directly into output logits (no SAM decoding).

        The object pointer still comes from the SAM heads run on the downsampled mask.
        """
        mask = mask.float()
        high = mask * MASK_AS_OUTPUT_SCALE + MASK_AS_OUTPUT_BIAS
        low = F.interpolate(
            high, size=(high.shape[-2] // 4, high.shape[-1] // 4), mode="bilinear", align_corners=False,
            antialias=True,
        )
        ious = mask.new_ones(mask.shape[0], 1)
        present = (mask.flatten(1) > 0).any(dim=1, keepdim=True).float()
        if self.config.use_obj_ptrs_in_encoder:
            obj_ptr = self.predict_masks(
                features.image_embed, features.high_res, mask_input=self.mask_downsample(mask)
            ).obj_ptr
        else:
            obj_ptr = torch.zeros(mask.shape[0], self.config.hidden_dim, device=mask.device)
        object_scores = MASK_AS_OUTPUT_SCALE * present + MASK_AS_OUTPUT_BIAS
        if self.config.pred_obj_scores:
            if self.config.fixed_no_obj_ptr:
                obj_ptr = present * obj_ptr
            obj_ptr = obj_ptr + (1 - present) * self.no_obj_ptr
        return MaskPrediction(low, ious, low, high, obj_ptr, object_scores, low)

    def use_multimask(self, is_init_cond_frame: bool, num_points: int) -> bool:
        """Whether the SAM heads output 3 masks for a frame with ``num_points`` clicks."""
        c = self.config
        return (
            c.multimask_output_in_sam
            and (is_init_cond_frame or c.multimask_output_for_tracking)
            and c.multimask_min_pt_num <= num_points <= c.multimask_max_pt_num
        )

    # ------------------------------------------------------------------ memory
    def condition_on_memory(
        self,
        frame_idx: int,
        features: FrameFeatures,
        is_init_cond_frame: bool,
        cond_memories: Mapping[int, MemoryEntry],
        recent_memories: Mapping[int, MemoryEntry],
        num_frames: Optional[int],
        reverse: bool = False,
    ) -> torch.Tensor:
        """Fuse the frame's features with the memory bank by memory attention: -> (B, C, h, w).

        cond_memories: prompted frames; recent_memories: tracked (unprompted) frames.
        """
        c = self.config
        embed = features.image_embed
        batch, channels, height, width = embed.shape
        if c.num_maskmem == 0:
            return embed
        if is_init_cond_frame:
            if c.directly_add_no_mem_embed:
                return embed + self.no_mem_embed.view(1, channels, 1, 1)
            memory = self.no_mem_embed.expand(1, batch, c.mem_dim)
            memory_pos = self.no_mem_pos_enc.expand(1, batch, c.mem_dim)
            return self._attend(embed, features.image_pos, memory, memory_pos, 0)
        if not cond_memories:
            raise ValueError("a frame that is not an initial prompt frame needs at least one prompted frame")

        selected, unselected = split_conditioning_frames(frame_idx, cond_memories, c.max_cond_frames_in_attn)
        stride = 1 if self.training else c.memory_temporal_stride_for_eval
        slots: List[Tuple[int, MemoryEntry]] = [(0, entry) for entry in selected.values()]
        for slot, frame in recent_memory_frames(frame_idx, c.num_maskmem, reverse, stride):
            entry = recent_memories.get(frame, unselected.get(frame))
            if entry is not None:
                slots.append((slot, entry))
        memories, memory_pos = [], []
        for slot, entry in slots:
            memories.append(entry.features.to(embed.device, torch.float32).flatten(2).permute(2, 0, 1))
            pos = entry.pos_enc.to(embed.device).flatten(2).permute(2, 0, 1)
            memory_pos.append(pos + self.maskmem_tpos_enc[c.num_maskmem - slot - 1])

        num_ptr_tokens = 0
        if c.use_obj_ptrs_in_encoder:
            pointer_sources = ChainMap(recent_memories, unselected)  # lazy: entries are built on access
            selection = select_object_pointers(
                frame_idx, selected, pointer_sources, num_frames, c.max_obj_ptrs_in_encoder, reverse,
                only_past=not self.training and c.only_obj_ptrs_in_the_past_for_eval,
                signed=c.use_signed_tpos_enc_to_obj_ptrs,
            )
            if selection.frames:
                entries = [selected[t] if t in selected else pointer_sources[t] for t in selection.frames]
                ptr_tokens, ptr_pos = self._pointer_tokens(entries, selection.offsets, selection.max_offset, batch)
                memories.append(ptr_tokens)
                memory_pos.append(ptr_pos)
                num_ptr_tokens = ptr_tokens.shape[0]
        memory = torch.cat(memories, dim=0)
        return self._attend(embed, features.image_pos, memory, torch.cat(memory_pos, dim=0), num_ptr_tokens)

    def _pointer_tokens(
        self, entries: List[MemoryEntry], offsets: Tuple[int, ...], max_offset: int, batch: int
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Object pointers (N, B, C) -> memory tokens (N * C/mem_dim, B, mem_dim) and their encodings."""
        c = self.config
        hidden, mem_dim = c.hidden_dim, c.mem_dim
        pointers = torch.stack([entry.obj_ptr for entry in entries], dim=0)
        device = pointers.device
        if c.add_tpos_enc_to_obj_ptrs:
            positions = torch.tensor(offsets, device=device, dtype=torch.float32) / max_offset
            encoding = sine_encoding_1d(positions, hidden if c.proj_tpos_enc_in_obj_ptrs else mem_dim)
            pos = self.obj_ptr_tpos_proj(encoding).unsqueeze(1).expand(-1, batch, mem_dim)
        else:
            pos = pointers.new_zeros(len(entries), batch, mem_dim)
        if mem_dim < hidden:
            split = hidden // mem_dim
            pointers = pointers.reshape(-1, batch, split, mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
            pos = pos.repeat_interleave(split, dim=0)
        return pointers, pos

    def _attend(
        self, embed: torch.Tensor, pos: torch.Tensor, memory: torch.Tensor, memory_pos: torch.Tensor, num_ptr: int
    ) -> torch.Tensor:
        batch, channels, height, width = embed.shape
        tokens = embed.flatten(2).permute(2, 0, 1)
        token_pos = pos.flatten(2).permute(2, 0, 1)
        fused = self.memory_attention(
            curr=tokens, memory=memory, curr_pos=token_pos, memory_pos=memory_pos, num_obj_ptr_tokens=num_ptr
        )
        return fused.permute(1, 2, 0).reshape(batch, channels, height, width)

    def encode_memory(
        self,
        features: FrameFeatures,
        high_res_logits: torch.Tensor,
        object_score_logits: torch.Tensor,
        from_points: bool,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Memory encoder on the frame's features and predicted mask (B, 1, S, S).

        Returns memory features and position encoding, each (B, mem_dim, h, w).
        """
        c = self.config
        masks = high_res_logits
        if c.non_overlap_masks_for_mem_enc and not self.training:
            masks = keep_highest_object(masks)
        if c.binarize_mask_from_pts_for_mem_enc and from_points and not self.training:
            mask_for_mem = (masks > 0).float()
        else:
            mask_for_mem = torch.sigmoid(masks)
        mask_for_mem = mask_for_mem * c.sigmoid_scale_for_mem_enc + c.sigmoid_bias_for_mem_enc
        # Meta's code hands the memory encoder a strided view of its token-major features that PyTorch's
        # convolutions treat as NCHW; our channels-last features would pick another kernel and round
        # differently (1e-6), which the bfloat16 memory bank then amplifies. NCHW gives identical bits.
        pix_feat = features.image_embed.contiguous()
        mem_features, mem_pos = self.memory_encoder(pix_feat, mask_for_mem, skip_mask_sigmoid=True)
        if self.no_obj_embed_spatial is not None:
            absent = (object_score_logits <= 0).float()[..., None, None]
            mem_features = mem_features + absent * self.no_obj_embed_spatial[..., None, None]
        return mem_features, mem_pos

    # ------------------------------------------------------------------ one tracking step
    def track_step(
        self,
        frame_idx: int,
        features: FrameFeatures,
        is_init_cond_frame: bool,
        cond_memories: Mapping[int, MemoryEntry],
        recent_memories: Mapping[int, MemoryEntry],
        num_frames: Optional[int],
        point_coords: Optional[torch.Tensor] = None,
        point_labels: Optional[torch.Tensor] = None,
        mask_input: Optional[torch.Tensor] = None,
        reverse: bool = False,
        prev_mask_logits: Optional[torch.Tensor] = None,
    ) -> MaskPrediction:
        """Segment one frame from its prompts (if any) and the memory bank.

        A mask prompt (B, 1, S, S) is output as it is (``use_mask_input_as_output_without_sam``);
        otherwise features are conditioned on memory and decoded with the points and, for a
        refinement, the previous low-res logits ``prev_mask_logits`` (B, 1, 4h, 4w) as a mask prompt.
        """
        if mask_input is not None and self.config.use_mask_input_as_output_without_sam:
            return self.mask_as_output(features, mask_input)
        fused = self.condition_on_memory(
            frame_idx, features, is_init_cond_frame, cond_memories, recent_memories, num_frames, reverse
        )
        if prev_mask_logits is not None:
            mask_input = prev_mask_logits
        num_points = 0 if point_labels is None else point_labels.shape[1]
        return self.predict_masks(
            fused, features.high_res, point_coords, point_labels, mask_input,
            multimask=self.use_multimask(is_init_cond_frame, num_points),
        )


def keep_highest_object(logits: torch.Tensor) -> torch.Tensor:
    """Where objects overlap keep the highest-scoring one: others are clamped to at most -10.

    logits: (N_obj, 1, H, W) -> same shape.
    """
    if logits.shape[0] == 1:
        return logits
    winner = torch.argmax(logits, dim=0, keepdim=True)
    index = torch.arange(logits.shape[0], device=logits.device)[:, None, None, None]
    return torch.where(winner == index, logits, torch.clamp(logits, max=-10.0))
