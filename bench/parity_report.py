"""Per-component max absolute and relative errors against the reference (random weights copied over).

    python bench/parity_report.py --model sam2.1_hiera_tiny --image-size 1024

Relative error = max |ours - reference| / max |reference|, in float32 on CPU.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import sam2_model  # noqa: F401,E402 (before torch: OpenMP's wait policy as our users get it, sam2_model/threads.py)
import torch

from _common import PARITY_PROMPTS, encode_both, max_errors, paired_models, point_inputs, run_tracking


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="sam2.1_hiera_tiny")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args()
    size = args.image_size
    reference, ours = paired_models(args.model, size)
    worst: dict = defaultdict(lambda: (0.0, 0.0))

    def record(name: str, mine: torch.Tensor, theirs: torch.Tensor) -> None:
        a, r = max_errors(mine, theirs)
        worst[name] = (max(worst[name][0], a), max(worst[name][1], r))

    image = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    backbone, _, features = encode_both(reference, ours, image)
    record("image encoder: stride-16 features", features.image_embed, backbone["vision_features"])
    record("image encoder: position encoding", features.image_pos, backbone["vision_pos_enc"][-1])
    for level in range(2):
        record(f"image encoder: high-res level {level}", features.high_res[level], backbone["backbone_fpn"][level])
    scale = size / 256
    for prompt, (coords, labels) in PARITY_PROMPTS.items():
        for multimask in (True, False):
            ref = reference._forward_sam_heads(backbone["vision_features"], point_inputs(coords * scale, labels), None,
                                               backbone["backbone_fpn"][:2], multimask)
            pred = ours.predict_masks(features.image_embed, features.high_res, coords * scale, labels, None, multimask)
            record("SAM heads: low-res logits", pred.multimask_logits, ref[0])
            record("SAM heads: IoU predictions", pred.ious, ref[2])
            record("SAM heads: object score", pred.object_score_logits, ref[6])
            record("SAM heads: object pointer", pred.obj_ptr, ref[5])
    mask = (torch.rand(1, 1, size, size, generator=torch.Generator().manual_seed(2)) > 0.7).float()
    ref = reference._forward_sam_heads(backbone["vision_features"], None, mask, backbone["backbone_fpn"][:2], False)
    pred = ours.predict_masks(features.image_embed, features.high_res, mask_input=mask)
    record("SAM heads (mask prompt): low-res logits", pred.low_res_logits, ref[3])
    frames = torch.randn(args.frames, 3, size, size, generator=torch.Generator().manual_seed(3))
    prompts = {0: (torch.tensor([[[0.4 * size, 0.5 * size]]]), torch.tensor([[1]], dtype=torch.int32))}
    for _, errors in run_tracking(reference, ours, frames, prompts):
        record("memory encoder: features", *errors["maskmem_features"])
        record("memory encoder: position encoding", *errors["maskmem_pos_enc"])
        record("tracking (memory attention + heads): low-res logits", *errors["pred_masks"])
        record("tracking: object pointer", *errors["obj_ptr"])
    print(f"{args.model} at {size}px, float32 CPU; {args.frames} tracked frames")
    for name, (abs_err, rel_err) in worst.items():
        print(f"  {name:55s} max abs {abs_err:.2e}   max rel {rel_err:.2e}")


if __name__ == "__main__":
    main()
