"""ImagePredictor against Meta's SAM2ImagePredictor on the same preprocessed input."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from oracle import reference_model, require_oracle
from sam2_model import build_model
from sam2_model.frames import to_model_input, to_unit_rgb
from sam2_model.image_predictor import ImagePredictor


class _Unused(torch.nn.Module):
    """Stand-in for a torchvision transform: the reference scripts it but we never call it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _import_reference_predictor():
    """The reference module imports torchvision.transforms for its preprocessing, which we bypass.

    torchvision is not installed in our test environment (PyPI's wheel does not load beside the CPU
    torch build), so a stand-in module with the three names is registered; they are never called.
    """
    try:
        import torchvision.transforms  # noqa: F401
    except ImportError:
        fake = types.ModuleType("torchvision")
        transforms = types.ModuleType("torchvision.transforms")
        for name in ("Normalize", "Resize", "ToTensor"):
            setattr(transforms, name, type(name, (_Unused,), {}))
        fake.transforms = transforms
        sys.modules.setdefault("torchvision", fake)
        sys.modules.setdefault("torchvision.transforms", transforms)
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    return SAM2ImagePredictor


def _set_reference_image(predictor, tensor: torch.Tensor, orig_hw) -> None:
    """What SAM2ImagePredictor.set_image does after its own transforms, on our tensor."""
    model = predictor.model
    backbone = model.forward_image(tensor[None])
    _, feats, _, sizes = model._prepare_backbone_features(backbone)
    feats[-1] = feats[-1] + model.no_mem_embed
    maps = [f.permute(1, 2, 0).view(1, -1, *s) for f, s in zip(feats, sizes)]
    predictor._features = {"image_embed": maps[-1], "high_res_feats": maps[:-1]}
    predictor._orig_hw = [tuple(orig_hw)]
    predictor._is_image_set = True


CASES = {
    "point": dict(points=[[60.0, 80.0]], labels=[1]),
    "pos+neg": dict(points=[[60.0, 80.0], [150.0, 40.0]], labels=[1, 0]),
    "box": dict(box=[30.0, 40.0, 180.0, 190.0]),
    "box+points": dict(box=[30.0, 40.0, 180.0, 190.0], points=[[90.0, 100.0], [35.0, 45.0]], labels=[1, 0]),
}


@pytest.mark.parametrize("shape", [(256, 256), (200, 300)])
def test_predictions_match_reference(shape):
    require_oracle()
    cls = _import_reference_predictor()
    reference_net = reference_model("sam2.1_hiera_tiny", image_size=256)
    model = build_model("sam2.1_hiera_tiny", device="cpu", image_size=256)
    model.load_state_dict(reference_net.state_dict(), strict=True)
    reference = cls(reference_net)

    image = np.random.default_rng(0).integers(0, 256, shape + (3,), dtype=np.uint8)
    tensor = to_model_input(to_unit_rgb(image, None), 256, mode="bilinear")
    ours = ImagePredictor(model)
    ours.set_image(image)
    with torch.inference_mode():
        _set_reference_image(reference, tensor, shape)
    for name, prompt in CASES.items():
        for multimask in (True, False):
            masks, scores, logits = ours.predict(multimask=multimask, **prompt)
            ref_masks, ref_scores, ref_logits = reference.predict(
                point_coords=None if "points" not in prompt else np.array(prompt["points"], np.float32),
                point_labels=None if "labels" not in prompt else np.array(prompt["labels"], np.int32),
                box=None if "box" not in prompt else np.array(prompt["box"], np.float32),
                multimask_output=multimask,
            )
            assert masks.shape == ref_masks.shape
            assert (masks == (ref_masks > 0)).mean() >= 0.999, f"{name} {multimask}"
            np.testing.assert_allclose(scores, ref_scores, atol=1e-4 * max(1.0, np.abs(ref_scores).max()))
            np.testing.assert_allclose(logits, ref_logits, atol=1e-4 * np.abs(ref_logits).max())
            # Low-res logits fed back as mask_input, as users iterate on a mask.
            best = int(np.argmax(scores))
            again, _, _ = ours.predict(mask_input=logits[best : best + 1], multimask=False, **prompt)
            ref_again, _, _ = reference.predict(
                point_coords=None if "points" not in prompt else np.array(prompt["points"], np.float32),
                point_labels=None if "labels" not in prompt else np.array(prompt["labels"], np.int32),
                box=None if "box" not in prompt else np.array(prompt["box"], np.float32),
                mask_input=ref_logits[best : best + 1],
                multimask_output=False,
            )
            assert (again == (ref_again > 0)).mean() >= 0.999


def test_bad_input_keeps_the_predictor_usable():
    model = build_model("sam2.1_hiera_tiny", device="cpu", image_size=256)
    predictor = ImagePredictor(model)
    with pytest.raises(ValueError, match="call set_image"):
        predictor.predict(points=[[1, 1]], labels=[1])
    with pytest.raises(ValueError, match="non-empty"):
        predictor.set_image(np.zeros(5))
    bad = np.ones((20, 20), np.float32)
    bad[3, 3] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        predictor.set_image(bad)
    predictor.set_image(np.random.default_rng(1).integers(0, 5000, (40, 50)).astype(np.uint16))
    for kwargs, match in (
        (dict(points=[[60, 1]], labels=[1]), "outside the 50x40"),
        (dict(points=[[1, 1]], labels=[3]), "labels must be 1"),
        (dict(points=[[1, 1], [2, 2]], labels=[1]), "differ in length"),
        (dict(box=[30, 1, 10, 5]), "x0 <= x1"),
        (dict(points=[[1, 1]], labels=[1], mask_input=np.zeros((1, 10, 10))), "mask_input must be"),
    ):
        with pytest.raises(ValueError, match=match):
            predictor.predict(**kwargs)
    masks, scores, logits = predictor.predict(points=[[10, 10]], labels=[1])
    assert masks.shape == (3, 40, 50) and scores.shape == (3,) and logits.shape == (3, 64, 64)
