"""Weights held in the autocast dtype, so mixed-precision inference stops re-casting them on every call.

Under ``torch.autocast`` a matrix layer (linear, convolution, transposed convolution) casts its
float32 weight and bias to bfloat16 each time it runs. Autocast caches those casts only within one
``autocast`` block and only for parameters that require gradients; a session enters a block per frame,
so a SAM 2 frame paid for ~500 weight casts (extra kernel launches and allocations: the CPU-side
launch overhead that bounds a GPU run). Casting those weights once gives the very same bfloat16
values autocast would compute, so results are bit-identical; every other parameter (normalisation,
embeddings, position encodings) stays float32 exactly as autocast leaves it.

Only for inference under autocast: a model so converted must run inside ``torch.autocast`` with the
same dtype (the session and image predictor do). :func:`restore_full_precision` undoes it before
training or a move to a device without autocast.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

#: layers whose forward is an autocast "lower precision" op (their weight and bias are cast by autocast)
MATRIX_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _matrix_layers(model: nn.Module) -> Iterator[nn.Module]:
    return (module for module in model.modules() if isinstance(module, MATRIX_LAYERS))


def hold_low_precision_weights(model: nn.Module, dtype: torch.dtype = torch.bfloat16) -> int:
    """Store the weights and biases of ``model``'s linear and convolution layers in ``dtype``, in place.

    Returns how many tensors were converted. Parameters stay leaves but no longer require gradients
    (this is an inference-only form of the model).
    """
    count = 0
    for module in _matrix_layers(model):
        for name, param in module.named_parameters(recurse=False):
            if param.dtype != dtype:
                param.data = param.data.to(dtype)
                count += 1
            param.requires_grad_(False)
    return count


def restore_full_precision(model: nn.Module) -> int:
    """Undo :func:`hold_low_precision_weights`: matrix-layer weights back to float32 (values stay rounded).

    Returns how many tensors were converted.
    """
    count = 0
    for module in _matrix_layers(model):
        for param in module.parameters(recurse=False):
            if param.dtype != torch.float32:
                param.data = param.data.float()
                param.requires_grad_(True)
                count += 1
    return count


def holds_low_precision_weights(model: nn.Module) -> bool:
    """Whether any matrix layer of ``model`` holds weights in a dtype other than float32."""
    return any(param.dtype != torch.float32 for module in _matrix_layers(model) for param in module.parameters(False))
