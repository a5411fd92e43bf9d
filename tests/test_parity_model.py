"""The composed model against Meta's SAM2Base: keys, strict loading, and every output of a tracking run."""

from __future__ import annotations

import pytest
import torch

from oracle import (
    PARITY_PROMPTS, assert_close, encode_both, max_errors, paired_models, point_inputs, reference_model, require_oracle,
    run_tracking,
)
from sam2_model import build_model, list_models
from sam2_model.build import identify_preset

OFFICIAL = [name for name in list_models() if name.startswith("sam2")]


@pytest.mark.parametrize("name", OFFICIAL + ["demo"])
def test_reference_checkpoint_loads_strictly(name, tmp_path):
    """Keys and shapes equal the reference model's; its state dict in the official format loads."""
    require_oracle()
    reference = reference_model(name, image_size=256)
    ours = build_model(name, device="cpu", image_size=256)
    ref_shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    our_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert our_shapes == ref_shapes
    path = tmp_path / f"{name}.pt"
    torch.save({"model": reference.state_dict()}, path)
    del reference
    loaded = build_model(name, checkpoint=path, device="cpu")
    saved = torch.load(path, weights_only=True)["model"]
    assert identify_preset(saved) == name
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, saved[key]), key


@pytest.mark.parametrize("name", ["sam2.1_hiera_tiny", "sam2_hiera_small", "sam2.1_hiera_base_plus"])
@torch.no_grad()
def test_image_features_and_prompt_heads_match(name):
    require_oracle()
    reference, ours = paired_models(name, 256)
    image = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    backbone, (feats, _, _), features = encode_both(reference, ours, image)
    assert_close(features.image_embed, backbone["vision_features"], what="vision features")
    assert_close(features.image_pos, backbone["vision_pos_enc"][-1], what="vision pos enc")
    for level in range(2):
        assert_close(features.high_res[level], backbone["backbone_fpn"][level], what=f"high-res level {level}")

    high_res_ref = backbone["backbone_fpn"][:2]
    for prompt, (coords, labels) in PARITY_PROMPTS.items():
        for multimask in (True, False):
            ref_out = reference._forward_sam_heads(
                backbone["vision_features"], point_inputs(coords, labels), None, high_res_ref, multimask
            )
            pred = ours.predict_masks(features.image_embed, features.high_res, coords, labels, None, multimask)
            ours_out = (pred.multimask_logits, None, pred.ious, pred.low_res_logits, pred.high_res_logits,
                        pred.obj_ptr, pred.object_score_logits)
            for index, label in ((0, "multimask"), (2, "ious"), (3, "low-res"), (4, "high-res"),
                                 (5, "obj_ptr"), (6, "object score")):
                assert_close(ours_out[index], ref_out[index], what=f"{prompt} multimask={multimask} {label}")

    mask = (torch.rand(1, 1, 256, 256, generator=torch.Generator().manual_seed(2)) > 0.7).float()
    ref_out = reference._forward_sam_heads(backbone["vision_features"], None, mask, high_res_ref, False)
    pred = ours.predict_masks(features.image_embed, features.high_res, mask_input=mask)
    assert_close(pred.low_res_logits, ref_out[3], what="mask prompt low-res")
    assert_close(pred.obj_ptr, ref_out[5], what="mask prompt obj_ptr")
    ref_out = reference._use_mask_as_output(backbone["vision_features"], high_res_ref, mask)
    pred = ours.mask_as_output(features, mask)
    for index, value in ((0, pred.low_res_logits), (1, pred.high_res_logits), (5, pred.obj_ptr),
                         (6, pred.object_score_logits)):
        assert_close(value, ref_out[index], what=f"mask as output [{index}]")


@pytest.mark.parametrize("name", ["sam2.1_hiera_tiny", "sam2_hiera_small", "sam2.1_hiera_base_plus"])
@pytest.mark.parametrize("reverse", [False, True])
@torch.no_grad()
def test_tracking_steps_match(name, reverse):
    """Memory encoder, memory attention (several memories + object pointers) through 10 frames."""
    require_oracle()
    reference, ours = paired_models(name, 256)
    generator = torch.Generator().manual_seed(3)
    frames = torch.randn(10, 3, 256, 256, generator=generator)
    start, later = (9, 3) if reverse else (0, 6)
    prompts = {
        start: (torch.tensor([[[100.0, 120.0]]]), torch.tensor([[1]], dtype=torch.int32)),
        later: (torch.tensor([[[100.0, 120.0], [30.0, 30.0]]]), torch.tensor([[1, 0]], dtype=torch.int32)),
    }
    worst = 0.0
    for frame_idx, errors in run_tracking(reference, ours, frames, prompts, reverse):
        for label, (mine, theirs) in errors.items():
            assert_close(mine, theirs, what=f"frame {frame_idx} {label}")
            worst = max(worst, max_errors(mine, theirs)[1])
    print(f"{name} reverse={reverse}: worst relative error over 10 frames {worst:.2e}")


@pytest.mark.slow
@torch.no_grad()
def test_full_resolution_tracking_matches():
    """sam2.1 tiny at 1024: image encoder, prompt heads, memory path on three frames."""
    require_oracle()
    reference, ours = paired_models("sam2.1_hiera_tiny", 1024)
    frames = torch.randn(3, 3, 1024, 1024, generator=torch.Generator().manual_seed(4))
    prompts = {0: (torch.tensor([[[400.0, 500.0]]]), torch.tensor([[1]], dtype=torch.int32))}
    for frame_idx, errors in run_tracking(reference, ours, frames, prompts):
        for label, (mine, theirs) in errors.items():
            assert_close(mine, theirs, what=f"1024 frame {frame_idx} {label}")
