"""Training at two input sizes with one set of weights.

A SAM 2 model's parameters do not depend on its input size: the image encoder's position embedding is
interpolated to the feature grid, and the prompt encoder's Fourier features scale coordinates by the
input size. :func:`model_sharing_parameters` builds the same preset at another input size whose
parameters and buffers *are* the given model's (the same tensors): a step through either model trains
both, and one optimiser holds them. The training loop uses it for ``alternate_image_size``: every other
step runs at that size, so a model that must work at 512 px keeps what it knows at 256 px (a stage at
512 px alone cost the 256 px tracking bars, docs/training_data.md).
"""

from __future__ import annotations

from ..build import build_model
from ..modeling.sam2 import SAM2Model

# the alternate size's clips come from their own seeded stream: seed + this offset
ALTERNATE_SEED_OFFSET = 100_000


def model_sharing_parameters(model: SAM2Model, preset: str, image_size: int) -> SAM2Model:
    """Preset ``preset`` built at input ``image_size``, holding ``model``'s parameters and buffers.

    ``model`` must be an instance of that preset (the same parameter names and shapes). The new model's
    tensors are ``model``'s (so it is on ``model``'s device, and changing either model's weights changes
    both); it starts in ``model``'s train/eval mode.
    """
    twin = build_model(preset, checkpoint="random", device="cpu", image_size=int(image_size))
    own = dict(model.named_modules())
    if set(own) != set(dict(twin.named_modules())):
        raise ValueError(f"the model is not an instance of preset {preset!r}: its modules differ")
    for name, module in twin.named_modules():
        source = own[name]
        for kind, register in (("parameters", module.register_parameter), ("buffers", module.register_buffer)):
            mine = dict(getattr(module, "named_" + kind)(recurse=False))
            theirs = dict(getattr(source, "named_" + kind)(recurse=False))
            if set(mine) != set(theirs):
                raise ValueError(f"the model is not an instance of preset {preset!r}: {name or 'the model'} "
                                 f"holds {kind} {sorted(theirs)}, the preset {sorted(mine)}")
            for key, tensor in theirs.items():
                if mine[key].shape != tensor.shape:
                    raise ValueError(f"{name}.{key} is {tuple(tensor.shape)} in the model but "
                                     f"{tuple(mine[key].shape)} in preset {preset!r} at {image_size} px")
                register(key, tensor)
    twin.train(model.training)
    return twin
