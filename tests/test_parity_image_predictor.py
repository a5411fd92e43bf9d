"""ImagePredictor against Meta's SAM2ImagePredictor (sam2==1.1.0) given the same preprocessed input.

Both predictors see the same (3, 256, 256) model input: ours from ``set_image`` (and, to be sure, the
tensor recomputed with the same sam2_model.frames functions), the reference's features set from that
tensor with the reference model's own methods, i.e. what its ``set_image`` does after its transforms.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch

from oracle import max_errors, reference_model, require_oracle
from sam2_model import ImagePredictor, build_model
from sam2_model.frames import to_model_input, to_unit_rgb

SIZE = 256
ERRORS: Dict[str, List[float]] = {"mask_mismatch": [], "scores_rel": [], "logits_rel": []}


def _reference_predictor_class():
    """Import sam2.sam2_image_predictor.SAM2ImagePredictor.

    That module imports ``torchvision.transforms`` (Normalize, Resize, ToTensor) at import time and
    builds them in SAM2Transforms, only for preprocessing, which this test bypasses. torchvision is not
    a dependency of this project (and is not installed beside our CPU torch), so when it cannot be
    imported, stand-in modules with identity transforms are registered; they are never applied.
    """
    try:
        importlib.import_module("torchvision.transforms")
    except ImportError:

        class _NeverUsed(torch.nn.Module):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__()

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return x

        package = types.ModuleType("torchvision")
        transforms = types.ModuleType("torchvision.transforms")
        for name in ("Normalize", "Resize", "ToTensor"):
            setattr(transforms, name, type(name, (_NeverUsed,), {}))
        package.transforms = transforms
        sys.modules["torchvision"] = package
        sys.modules["torchvision.transforms"] = transforms
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    return SAM2ImagePredictor


@torch.inference_mode()
def _set_reference_features(predictor, tensor: torch.Tensor, orig_hw: Tuple[int, int]) -> None:
    """The reference set_image from its model input on: backbone, no_mem_embed, (1, C, h, w) maps."""
    net = predictor.model
    backbone = net.forward_image(tensor[None])
    _, levels, _, sizes = net._prepare_backbone_features(backbone)  # (HW, 1, C) per level, fine to coarse
    if net.directly_add_no_mem_embed:
        levels[-1] = levels[-1] + net.no_mem_embed
    maps = [level.permute(1, 2, 0).reshape(1, -1, h, w) for level, (h, w) in zip(levels, sizes)]
    predictor._features = {"image_embed": maps[-1], "high_res_feats": maps[:-1]}
    predictor._orig_hw = [tuple(orig_hw)]
    predictor._is_image_set = True


@pytest.fixture(scope="module")
def pair():
    require_oracle()
    cls = _reference_predictor_class()
    net = reference_model("sam2.1_hiera_tiny", image_size=SIZE)
    model = build_model("sam2.1_hiera_tiny", device="cpu", image_size=SIZE)
    model.load_state_dict(net.state_dict(), strict=True)
    yield ImagePredictor(model), cls(net)
    print(
        "\nImagePredictor parity: worst mask mismatch fraction {:.2e}, scores rel err {:.2e}, low-res logits rel err "
        "{:.2e} over {} comparisons".format(
            max(ERRORS["mask_mismatch"], default=0), max(ERRORS["scores_rel"], default=0),
            max(ERRORS["logits_rel"], default=0), len(ERRORS["scores_rel"]),
        )
    )


def _reference_args(prompt: dict) -> dict:
    return dict(
        point_coords=None if "points" not in prompt else np.asarray(prompt["points"], np.float32),
        point_labels=None if "labels" not in prompt else np.asarray(prompt["labels"], np.int32),
        box=None if "box" not in prompt else np.asarray(prompt["box"], np.float32),
        mask_input=prompt.get("mask_input"),
    )


def _compare(ours, reference, what: str) -> None:
    masks, scores, logits = ours
    ref_masks, ref_scores, ref_logits = reference
    assert masks.shape == ref_masks.shape and scores.shape == ref_scores.shape and logits.shape == ref_logits.shape
    mismatch = float((masks != (ref_masks > 0)).mean())
    _, scores_rel = max_errors(torch.from_numpy(scores), torch.from_numpy(ref_scores))
    _, logits_rel = max_errors(torch.from_numpy(logits), torch.from_numpy(ref_logits))
    for key, value in zip(ERRORS, (mismatch, scores_rel, logits_rel)):
        ERRORS[key].append(value)
    assert mismatch <= 1e-3, f"{what}: {mismatch:.2e} of mask pixels differ"
    assert scores_rel <= 1e-4, f"{what}: scores relative error {scores_rel:.2e}"
    assert logits_rel <= 1e-4, f"{what}: low-res logits relative error {logits_rel:.2e}"


def _prompts(height: int, width: int) -> Dict[str, dict]:
    sx, sy = width / 256, height / 256
    pos, neg = [60 * sx, 80 * sy], [180 * sx, 40 * sy]
    box = [30 * sx, 40 * sy, 190 * sx, 200 * sy]
    return {
        "positive point": dict(points=[pos], labels=[1]),
        "positive+negative": dict(points=[pos, neg], labels=[1, 0]),
        "box": dict(box=box),
        "box+points": dict(box=box, points=[[100 * sx, 110 * sy], [35 * sx, 45 * sy]], labels=[1, 0]),
    }


@pytest.mark.parametrize("shape", [(256, 256), (200, 300)], ids=["256x256", "200x300"])
def test_single_prompts_match_reference(pair, shape):
    ours, reference = pair
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape + (3,), dtype=np.uint8)
    ours.set_image(image)
    tensor = to_model_input(to_unit_rgb(image, None), SIZE, mode="bilinear")
    _set_reference_features(reference, tensor, shape)
    for name, prompt in _prompts(*shape).items():
        for multimask in (True, False):
            what = f"{shape} {name} multimask={multimask}"
            mine = ours.predict(multimask=multimask, **prompt)
            theirs = reference.predict(multimask_output=multimask, **_reference_args(prompt))
            _compare(mine, theirs, what)
            # Feed the best low-res logits back as mask_input (each side its own, as a user would).
            best = int(np.argmax(theirs[1]))
            again = ours.predict(multimask=multimask, mask_input=mine[2][best : best + 1], **prompt)
            ref_again = reference.predict(
                multimask_output=multimask, **_reference_args(dict(prompt, mask_input=theirs[2][best : best + 1]))
            )
            _compare(again, ref_again, what + " +mask_input")
    # logits instead of masks
    prompt = _prompts(*shape)["box+points"]
    raw = ours.predict(return_logits=True, **prompt)[0]
    ref_raw = reference.predict(return_logits=True, **_reference_args(prompt))[0]
    _, rel = max_errors(torch.from_numpy(raw), torch.from_numpy(ref_raw))
    assert rel <= 1e-4, f"{shape} upsampled logits relative error {rel:.2e}"


def test_batched_boxes_match_reference(pair):
    ours, reference = pair
    shape = (200, 300)
    image = np.random.default_rng(7).integers(0, 256, shape + (3,), dtype=np.uint8)
    ours.set_image(image)
    _set_reference_features(reference, to_model_input(to_unit_rgb(image, None), SIZE, mode="bilinear"), shape)
    boxes = np.array([[10, 20, 120, 150], [100, 30, 290, 190], [0, 0, 300, 200]], np.float32)
    for multimask in (True, False):
        mine = ours.predict(box=boxes, multimask=multimask)
        theirs = reference.predict(box=boxes, multimask_output=multimask)
        _compare(mine, theirs, f"batched boxes multimask={multimask}")
        # per-box clicks (B, N, 2) and per-box mask inputs (B, 1, 4h, 4w)
        points = np.array([[[60, 80]], [[200, 100]], [[150, 100]]], np.float32)
        labels = np.ones((3, 1), np.int32)
        mine = ours.predict(box=boxes, points=points, labels=labels, mask_input=mine[2][:, :1], multimask=multimask)
        theirs = reference.predict(
            box=boxes, point_coords=points, point_labels=labels, mask_input=theirs[2][:, :1],
            multimask_output=multimask,
        )
        _compare(mine, theirs, f"batched boxes+points+mask_input multimask={multimask}")
