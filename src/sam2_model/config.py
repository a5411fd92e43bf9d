"""Typed configuration of every SAM 2 component, and the named presets.

Each official checkpoint (``sam2[.1]_hiera_{tiny,small,base_plus,large}.pt``) corresponds to one
:class:`SAM2Config` below. The values are the ones in Meta's hydra configs for ``sam2==1.1.0``
together with the post-processing overrides that its ``build_sam2`` / ``build_sam2_video_predictor``
apply (dynamic multimask via stability; binarised click masks and hole filling for video).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, Tuple


@dataclass(frozen=True)
class HieraConfig:
    """Hiera image-encoder trunk (hierarchical ViT with windowed attention and query pooling)."""

    embed_dim: int = 96  # channels of stage 1 (doubles at every stage shift)
    num_heads: int = 1  # heads of stage 1 (doubles at every stage shift)
    stages: Tuple[int, ...] = (2, 3, 16, 3)  # blocks per stage
    global_att_blocks: Tuple[int, ...] = (12, 16, 20)  # block indices that attend globally
    window_spec: Tuple[int, ...] = (8, 4, 14, 7)  # window size per stage (0 = global)
    window_pos_embed_bkg_spatial_size: Tuple[int, int] = (14, 14)  # background pos-embed grid
    q_pool: int = 3  # number of stage shifts that pool queries
    q_stride: Tuple[int, int] = (2, 2)  # pooling stride at a stage shift
    dim_mul: float = 2.0  # channel multiplier at a stage shift
    head_mul: float = 2.0  # head multiplier at a stage shift
    mlp_ratio: float = 4.0  # MLP hidden size relative to block width
    patch_kernel: Tuple[int, int] = (7, 7)  # patch-embedding convolution
    patch_stride: Tuple[int, int] = (4, 4)
    patch_padding: Tuple[int, int] = (3, 3)
    in_chans: int = 3

    @property
    def channel_list(self) -> Tuple[int, ...]:
        """Output channels of each stage, deepest first (the order the FPN neck takes)."""
        dims = [int(self.embed_dim * self.dim_mul**i) for i in range(len(self.stages))]
        return tuple(reversed(dims))


@dataclass(frozen=True)
class NeckConfig:
    """FPN neck that turns the Hiera stages into ``d_model``-channel feature maps."""

    d_model: int = 256  # channels of every FPN level
    fpn_top_down_levels: Tuple[int, ...] = (2, 3)  # levels that receive the top-down path
    fpn_interp_model: str = "nearest"  # upsampling mode of the top-down path
    fuse_type: str = "sum"  # "sum" or "avg" of lateral and top-down features
    scalp: int = 1  # number of lowest-resolution levels dropped after the neck


@dataclass(frozen=True)
class DecoderConfig:
    """SAM prompt encoder + two-way transformer mask decoder."""

    mask_in_chans: int = 16  # hidden channels of the dense mask-prompt downscaler
    transformer_depth: int = 2
    transformer_mlp_dim: int = 2048
    transformer_num_heads: int = 8
    attention_downsample_rate: int = 2  # token->image and image->token attention width reduction
    num_multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256
    dynamic_multimask_via_stability: bool = True  # build_sam2's post-processing default
    dynamic_multimask_stability_delta: float = 0.05
    dynamic_multimask_stability_thresh: float = 0.98


@dataclass(frozen=True)
class MemoryEncoderConfig:
    """Mask downsampler + fuser (ConvNeXt blocks) + projection to the memory dimension."""

    out_dim: int = 64  # memory channels (mem_dim)
    downsampler_kernel_size: int = 3
    downsampler_stride: int = 2
    downsampler_padding: int = 1
    downsampler_total_stride: int = 16
    fuser_num_layers: int = 2
    fuser_kernel_size: int = 7
    fuser_padding: int = 3
    fuser_layer_scale_init_value: float = 1e-6


@dataclass(frozen=True)
class MemoryAttentionConfig:
    """Stack of self-attention (RoPE) + cross-attention to memories (RoPE) + MLP layers."""

    num_layers: int = 4
    dim_feedforward: int = 2048
    num_heads: int = 1
    rope_theta: float = 10000.0
    dropout: float = 0.1  # only active in training
    activation: str = "relu"
    pos_enc_at_input: bool = True
    pos_enc_at_attn: bool = False
    pos_enc_at_cross_attn_keys: bool = True
    pos_enc_at_cross_attn_queries: bool = False


@dataclass(frozen=True)
class SAM2Config:
    """Everything needed to build one SAM 2 model. Field comments follow the paper's terms."""

    name: str
    hiera: HieraConfig
    neck: NeckConfig = field(default_factory=NeckConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    memory_encoder: MemoryEncoderConfig = field(default_factory=MemoryEncoderConfig)
    memory_attention: MemoryAttentionConfig = field(default_factory=MemoryAttentionConfig)

    image_size: int = 1024  # square model input resolution
    backbone_stride: int = 16  # stride of the lowest-resolution feature map used by SAM heads
    num_maskmem: int = 7  # memory bank: 1 conditioning + 6 recent frames
    sigmoid_scale_for_mem_enc: float = 20.0  # mask logits -> memory encoder: sigmoid(x)*scale+bias
    sigmoid_bias_for_mem_enc: float = -10.0
    binarize_mask_from_pts_for_mem_enc: bool = True  # video builder default
    use_mask_input_as_output_without_sam: bool = True  # mask prompts are output as they are
    max_cond_frames_in_attn: int = -1  # -1 = all conditioning frames attend
    directly_add_no_mem_embed: bool = True
    use_high_res_features_in_sam: bool = True
    multimask_output_in_sam: bool = True
    multimask_min_pt_num: int = 0
    multimask_max_pt_num: int = 1
    multimask_output_for_tracking: bool = True
    use_multimask_token_for_obj_ptr: bool = True
    iou_prediction_use_sigmoid: bool = True
    memory_temporal_stride_for_eval: int = 1
    non_overlap_masks_for_mem_enc: bool = False
    use_obj_ptrs_in_encoder: bool = True
    max_obj_ptrs_in_encoder: int = 16
    add_tpos_enc_to_obj_ptrs: bool = True  # SAM 2.0: False; SAM 2.1: True
    proj_tpos_enc_in_obj_ptrs: bool = True  # SAM 2.0: False; SAM 2.1: True
    use_signed_tpos_enc_to_obj_ptrs: bool = True  # SAM 2.0: False; SAM 2.1: True
    only_obj_ptrs_in_the_past_for_eval: bool = True
    pred_obj_scores: bool = True
    pred_obj_scores_mlp: bool = True
    fixed_no_obj_ptr: bool = True
    soft_no_obj_ptr: bool = False
    use_mlp_for_obj_ptr_proj: bool = True
    no_obj_embed_spatial: bool = True  # SAM 2.0: False; SAM 2.1: True
    fill_hole_area: int = 8  # video post-processing: holes up to this area (low-res px) are filled

    @property
    def hidden_dim(self) -> int:
        return self.neck.d_model

    @property
    def mem_dim(self) -> int:
        return self.memory_encoder.out_dim

    @property
    def feature_size(self) -> int:
        """Side of the stride-16 feature map the SAM heads and memory attention work on."""
        return self.image_size // self.backbone_stride

    def with_image_size(self, image_size: int) -> "SAM2Config":
        """The same model at another input resolution (must be a multiple of 32 times the stride-1 window)."""
        if image_size <= 0 or image_size % 32 != 0:
            raise ValueError(f"image_size must be a positive multiple of 32, got {image_size}")
        return replace(self, image_size=image_size)


_HIERA = {
    "tiny": HieraConfig(
        embed_dim=96, num_heads=1, stages=(1, 2, 7, 2), global_att_blocks=(5, 7, 9),
        window_pos_embed_bkg_spatial_size=(7, 7),
    ),
    "small": HieraConfig(
        embed_dim=96, num_heads=1, stages=(1, 2, 11, 2), global_att_blocks=(7, 10, 13),
        window_pos_embed_bkg_spatial_size=(7, 7),
    ),
    "base_plus": HieraConfig(embed_dim=112, num_heads=2),
    "large": HieraConfig(
        embed_dim=144, num_heads=2, stages=(2, 6, 36, 4), global_att_blocks=(23, 33, 43),
        window_spec=(8, 4, 16, 8), window_pos_embed_bkg_spatial_size=(7, 7),
    ),
}

PRESETS: Dict[str, SAM2Config] = {}
for _size, _hiera in _HIERA.items():
    PRESETS[f"sam2.1_hiera_{_size}"] = SAM2Config(name=f"sam2.1_hiera_{_size}", hiera=_hiera)
    PRESETS[f"sam2_hiera_{_size}"] = SAM2Config(
        name=f"sam2_hiera_{_size}",
        hiera=_hiera,
        add_tpos_enc_to_obj_ptrs=False,
        proj_tpos_enc_in_obj_ptrs=False,
        use_signed_tpos_enc_to_obj_ptrs=False,
        no_obj_embed_spatial=False,
    )
del _size, _hiera

# The embedded default model: SAM 2.1's architecture, narrowed so that it trains on two CPU cores
# (our own weights, trained by ``sam2_model.train`` on synthetic fluorescence time-lapses).
# One output mask per prompt (no multimask tokens in use, so no stability fallback either). Every
# value is expressible in Meta's hydra configs, so the reference package runs these weights too.
DEMO_CONFIG = SAM2Config(
    name="demo",
    hiera=HieraConfig(
        embed_dim=32, num_heads=1, stages=(1, 2, 3, 1), global_att_blocks=(5,),
        window_spec=(8, 4, 8, 4), window_pos_embed_bkg_spatial_size=(4, 4),
    ),
    neck=NeckConfig(d_model=128),
    decoder=DecoderConfig(dynamic_multimask_via_stability=False),  # Meta's SAM heads as they are
    memory_encoder=MemoryEncoderConfig(out_dim=64),
    memory_attention=MemoryAttentionConfig(num_layers=2, dim_feedforward=512),
    image_size=256,
    multimask_output_in_sam=False,
    multimask_output_for_tracking=False,
    use_multimask_token_for_obj_ptr=False,
    fill_hole_area=2,
)
PRESETS["demo"] = DEMO_CONFIG


def get_config(name: str, image_size: int | None = None) -> SAM2Config:
    """Return the preset called ``name``, optionally at another input resolution. A ``name`` that is not a string (e.g.
    a model already built) is a TypeError naming its type, not its repr (a model's repr is hundreds of lines)."""
    if not isinstance(name, str):
        known = ", ".join(sorted(PRESETS))
        built = " (a model already built: use it as it is, e.g. sam2_model.VideoSession(model, frames))" if (
            type(name).__name__ == "SAM2Model") else ""
        raise TypeError(f"model must be a preset name, one of {known}; got a {type(name).__name__}{built}")
    if name not in PRESETS:
        known = ", ".join(sorted(PRESETS))
        raise ValueError(f"unknown model {name!r}; known models: {known}")
    config = PRESETS[name]
    return config.with_image_size(image_size) if image_size is not None else config


# VideoSession.jumped_frames (and the plugin's objects table, which shows its figure without loading torch):
# a tracked mask overlapping the mask it was tracked from by less than this IoU is worth a look.
# On the MSC time-lapse (embedded weights, the 9 cells of frame 0 clicked once; bench/msc_check_frames.py) it flags
# 3 of the 212 frames where a cell was followed, and for 5 of the 8 cells that were lost or left the field the first
# flagged frame is within 3 frames of it.
JUMP_MAX_IOU = 0.2
