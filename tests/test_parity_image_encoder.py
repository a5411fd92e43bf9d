"""Parity of our image encoder (Hiera trunk + FPN neck) with Meta's reference ``sam2==1.1.0``.

Run with ``-s`` to see the max abs / rel error of every output level.
"""

from __future__ import annotations

import pytest
import torch

from oracle import REFERENCE_CONFIG_FILES, assert_close, max_errors, reference_model, require_oracle
from sam2_model.config import get_config
from sam2_model.modeling.image_encoder import ImageEncoder, ImageFeatures


def _reference_encoder_config(name: str, image_size: int):
    """The hydra node ``model.image_encoder`` of the reference config of ``name``."""
    require_oracle()
    import sam2  # noqa: F401  (initialises hydra's config module)
    from hydra import compose

    config = compose(
        config_name=REFERENCE_CONFIG_FILES[name], overrides=[f"++model.image_size={image_size}"]
    )
    return config.model.image_encoder


def _compare(name: str, image_size: int, seed: int = 0) -> None:
    ref = reference_model(name, image_size=image_size, seed=seed)
    config = get_config(name, image_size=image_size)
    ours = ImageEncoder(config.hiera, config.neck).eval()
    ours.load_state_dict(ref.image_encoder.state_dict(), strict=True)

    image = torch.randn(1, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed + 7))
    with torch.no_grad():
        expected = ref.image_encoder(image)
        got = ours(image)

    assert isinstance(got, ImageFeatures)
    assert len(got.backbone_fpn) == len(expected["backbone_fpn"]) == 3
    assert len(got.vision_pos_enc) == len(expected["vision_pos_enc"]) == 3
    for level, (mine, theirs) in enumerate(zip(got.backbone_fpn, expected["backbone_fpn"])):
        abs_err, rel_err = max_errors(mine, theirs)
        print(f"{name}@{image_size} backbone_fpn[{level}] {tuple(mine.shape)}: abs {abs_err:.3e} rel {rel_err:.3e}")
        assert_close(mine, theirs, rtol=1e-4, what=f"{name} backbone_fpn[{level}]")
    for level, (mine, theirs) in enumerate(zip(got.vision_pos_enc, expected["vision_pos_enc"])):
        abs_err, rel_err = max_errors(mine, theirs)
        print(f"{name}@{image_size} vision_pos_enc[{level}] {tuple(mine.shape)}: abs {abs_err:.3e} rel {rel_err:.3e}")
        assert_close(mine, theirs, rtol=1e-4, what=f"{name} vision_pos_enc[{level}]")
    assert torch.equal(got.vision_features, got.backbone_fpn[-1])
    assert_close(got.vision_features, expected["vision_features"], rtol=1e-4, what=f"{name} vision_features")


@pytest.mark.parametrize("name", ["sam2.1_hiera_tiny", "sam2_hiera_small", "sam2.1_hiera_base_plus"])
def test_image_encoder_parity_256(name: str) -> None:
    _compare(name, image_size=256)


@pytest.mark.slow
def test_image_encoder_parity_1024_tiny() -> None:
    _compare("sam2.1_hiera_tiny", image_size=1024)


@pytest.mark.parametrize("name", sorted(REFERENCE_CONFIG_FILES))
def test_state_dict_keys_and_shapes(name: str) -> None:
    from hydra.utils import instantiate

    ref_config = _reference_encoder_config(name, image_size=256)
    # The image encoder's settings (hence its parameter shapes) do not depend on image_size.
    assert ref_config == _reference_encoder_config(name, image_size=1024)
    torch.manual_seed(0)
    reference = instantiate(ref_config)
    expected = {key: tuple(value.shape) for key, value in reference.state_dict().items()}

    config = get_config(name, image_size=256)
    with torch.device("meta"):
        ours = ImageEncoder(config.hiera, config.neck)
    got = {key: tuple(value.shape) for key, value in ours.state_dict().items()}

    assert sorted(got) == sorted(expected)
    assert got == expected
    assert ours.trunk.channel_list == tuple(reference.trunk.channel_list) == config.hiera.channel_list
    assert ours.scalp == reference.scalp
