"""Build models from presets and load checkpoints strictly, with errors that say what is wrong."""

from __future__ import annotations

import contextlib
import enum
import os
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch

from .checkpoint_errors import TrainingRecord, run_folder_message, unreadable_checkpoint_message
from .config import PRESETS, SAM2Config, get_config
from .demo_weights import embedded_weights_path  # (its home: found without torch; public here as it always was)
from .modeling.sam2 import SAM2Model
from .run_record import stored_record, weights_record  # the run record readers (torch-free; used here too)

StateDict = Dict[str, torch.Tensor]
PathLike = Union[str, os.PathLike]


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used for the requested model; the message says why.

    ``held_preset``: the preset whose weights the file holds when that is not the model asked for (None otherwise),
    so that a caller can word the fix its own way (``--model demo`` on a command line, ``build_model('demo')``)."""

    def __init__(self, message: str, held_preset: Optional[str] = None) -> None:
        super().__init__(message)
        self.held_preset = held_preset


DEMO_MODEL = "demo"


class Weights(str, enum.Enum):
    """Where a model's weights come from (``build_model(checkpoint=...)``, the CLI's ``--checkpoint``).

    EMBEDDED: the demo model's trained weights shipped in the package (demo only, no network).
    DOWNLOAD: an official preset's file from the cache, downloaded and verified if missing; for the
    demo model the embedded weights. RANDOM: random initialisation (tests, training from scratch).
    Anything else is a path to a checkpoint file.
    """

    EMBEDDED = "embedded"
    DOWNLOAD = "download"
    RANDOM = "random"


#: what ``checkpoint=`` accepts: a :class:`Weights` (or its value), a path, or None (the preset's default)
WeightsArg = Union[Weights, str, os.PathLike, None]


def resolve_weights(name: str, checkpoint: WeightsArg) -> Union[Weights, Path]:
    """The explicit weights source of ``checkpoint`` for preset ``name``.

    Older spellings keep working: None means EMBEDDED for the demo model and RANDOM otherwise, and
    "none" means RANDOM. "download" for the demo model is EMBEDDED (its weights ship with the package).
    """
    if checkpoint is None:
        return Weights.EMBEDDED if name == DEMO_MODEL else Weights.RANDOM
    if isinstance(checkpoint, str) and not isinstance(checkpoint, Weights):
        word = checkpoint.strip().lower()
        if word == "none":
            checkpoint = Weights.RANDOM
        elif word in {w.value for w in Weights}:
            checkpoint = Weights(word)
    if checkpoint is Weights.DOWNLOAD and name == DEMO_MODEL:
        return Weights.EMBEDDED
    if checkpoint is Weights.EMBEDDED and name != DEMO_MODEL:
        raise ValueError(f"checkpoint='embedded': only the demo model ships with weights, not {name}; use "
                         "'download' (the official file), a checkpoint path, or 'random'")
    if isinstance(checkpoint, Weights):
        return checkpoint
    if isinstance(checkpoint, (str, os.PathLike)):
        return Path(checkpoint).expanduser()
    accepted = ", ".join(repr(w.value) for w in Weights)
    raise ValueError(f"checkpoint must be one of {accepted}, a checkpoint file path or None; got {checkpoint!r}")


def embedded_weights_metadata() -> Dict[str, object]:
    """The demo weights' metadata record (configuration, data seeds, steps, wall time, metrics)."""
    import json

    return json.loads(embedded_weights_path().with_suffix(".json").read_text())


def list_models() -> List[str]:
    """Names of all presets that :func:`build_model` accepts."""
    return sorted(PRESETS)


def resolve_device(device: Union[str, torch.device] = "auto") -> torch.device:
    """"auto" picks CUDA, then Apple MPS, then CPU; anything else is checked to be usable."""
    if isinstance(device, torch.device):
        return device
    name = device.lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was requested but CUDA is not available; use 'auto' or 'cpu'")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was requested but Apple MPS is not available; use 'auto' or 'cpu'")
    try:
        return torch.device(name)
    except RuntimeError:  # torch lists every device type it knows; say what this package runs on
        raise ValueError(f"device must be auto, cpu, cuda[:N] or mps, got {device!r}") from None


def autocast_dtype(device: torch.device) -> Optional[torch.dtype]:
    """Mixed-precision dtype used for inference on ``device`` (bfloat16 on CUDA, as Meta runs it)."""
    return torch.bfloat16 if device.type == "cuda" else None


def inference_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """The mixed-precision context inference runs in on ``device`` (see :func:`autocast_dtype`)."""
    dtype = autocast_dtype(device)
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def build_model(
    name: str,
    checkpoint: WeightsArg = None,
    device: Union[str, torch.device] = "auto",
    image_size: Optional[int] = None,
    compile: bool = False,
    low_precision_weights: Optional[bool] = None,
    cuda_graphs: Optional[bool] = None,
) -> SAM2Model:
    """Build preset ``name`` in eval mode.

    checkpoint: a :class:`Weights` source or a path (see :func:`resolve_weights`): "embedded" (the
    demo's shipped weights), "download" (an official file, cached or fetched; the demo: embedded),
    "random", a path (strict load), or None (embedded for "demo", random for the official presets).
    image_size: input resolution override (default: the preset's, or for a checkpoint file with a training record
    the size its weights were trained at: see :func:`weights_record`; a size given that differs from the trained one
    is used, with a warning naming both). A file whose training run stopped before its last step warns (steps done
    of those planned); a record that cannot be read is ignored with a warning.
    compile: compile the image encoder, memory attention and mask decoder with ``torch.compile``
    (CUDA only; see :func:`compile_model`).
    low_precision_weights: hold the linear and convolution weights in the autocast dtype (bfloat16)
    where inference runs under autocast (CUDA), so they are not re-cast on every call; results are
    bit-identical (see :mod:`sam2_model.precision`). None (default): on where autocast runs. Such a
    model is for inference: ``precision.restore_full_precision(model)`` before training it.
    cuda_graphs: replay the per-frame calls from CUDA graphs (see :mod:`sam2_model.cuda_graphs`). None
    (default): on for CUDA unless ``compile`` is set; True elsewhere warns and is ignored.
    """
    config = get_config(name, image_size)  # the name and an asked size checked before anything is read
    source = resolve_weights(name, checkpoint)
    target = resolve_device(device)  # checked before any weights are read
    state: Optional[StateDict] = None
    if isinstance(source, Path):
        state, inside = read_checkpoint(source)
        trained = _size_from_record(name, source, weights_record(source, inside), image_size)
        if trained != image_size:
            config = get_config(name, trained)
    model = SAM2Model(config)
    if source is Weights.EMBEDDED:
        load_checkpoint(model, embedded_weights_path())
    elif source is Weights.DOWNLOAD:
        from .checkpoints import download

        load_checkpoint(model, download(name))
    elif state is not None:
        _load_state(model, state, str(source))
    model = model.to(target).eval()
    dtype = autocast_dtype(target)
    if dtype is not None and (low_precision_weights is None or low_precision_weights):
        from .precision import hold_low_precision_weights

        hold_low_precision_weights(model, dtype)
    if compile:
        compile_model(model)
    if cuda_graphs or (cuda_graphs is None and target.type == "cuda" and not compile):
        from .cuda_graphs import enable_cuda_graphs

        enable_cuda_graphs(model)
    return model


def compile_model(model: SAM2Model) -> bool:
    """Compile the heavy parts in place with ``torch.compile`` (state-dict keys are unchanged).

    On CUDA: image encoder (static shapes), memory attention and mask decoder (dynamic shapes: the
    number of memories and of batched objects vary). Default mode, no autotuning, so the first frames
    wait for compilation (tens of seconds) rather than minutes. Elsewhere the model stays eager with
    a warning: Inductor on CPU/MPS compiles for minutes for these models and gains little.
    Returns whether the model was compiled.
    """
    import warnings

    if model.device.type != "cuda":
        warnings.warn(
            f"build_model(compile=True) is ignored on {model.device.type.upper()}: torch.compile is only used on "
            "CUDA (on CPU/MPS it takes minutes to compile and is not faster for SAM 2); the model runs eager",
            stacklevel=3,
        )
        return False
    model.image_encoder.compile()
    model.memory_attention.compile(dynamic=True)
    model.sam_mask_decoder.compile(dynamic=True)
    return True


def read_state_dict(path: PathLike) -> StateDict:
    """Read ``{"model": state_dict}`` (the official format; a training run's weights.pt adds ``"record"``) or a bare
    state dict from ``path``."""
    return read_checkpoint(path)[0]


def read_checkpoint(path: PathLike) -> Tuple[StateDict, Optional[Dict[str, Any]]]:
    """``(state_dict, record)`` of the checkpoint file ``path``: record is the training record stored beside
    ``"model"`` (``{"model": state_dict, "record": {...}}``, as ``sam2_model.train`` writes weights.pt; the same as
    its weights.json), None when the file holds none (official files, older runs' weights, a bare state dict).
    Errors as :func:`read_state_dict`'s."""
    path = Path(path)
    folder = run_folder_message(path)
    if folder is not None:
        raise CheckpointError(folder)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path} (checkpoint takes the path of a weights file, "
                                "'download' (Meta's file of an official model; the demo model's embedded weights) "
                                "or None (random weights))")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # zip, pickle and unpickler errors all mean: not a usable file
        raise CheckpointError(unreadable_checkpoint_message(path, error)) from error
    state = payload.get("model", payload) if isinstance(payload, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(
            f"{path} does not hold a SAM 2 state dict: expected {{'model': state_dict}} as in Meta's files"
        )
    record = payload.get("record") if isinstance(payload, Mapping) and "model" in payload else None
    return dict(state), (dict(record) if isinstance(record, Mapping) else None)


def trained_input_size(name: str, checkpoint: WeightsArg) -> Optional[int]:
    """The input size :func:`build_model` ``(name, checkpoint, image_size=None)`` builds at when it is not the preset's:
    a checkpoint file's trained size (its training record, :func:`weights_record`), else None. Reads the record inside
    the file (its tensors are not read: :mod:`.run_record`), else the JSON beside it; says nothing (no warnings). For a
    caller that sizes something from the input size before building (an object window)."""
    source = resolve_weights(name, checkpoint)
    if not isinstance(source, Path) or not source.is_file():
        return None
    record = weights_record(source, stored_record(source), quiet=True)
    size = None if record is None else record.image_size
    return None if size is None or size == get_config(name).image_size else size


def _size_from_record(name: str, path: Path, record: Optional[TrainingRecord],
                      image_size: Optional[int]) -> Optional[int]:
    """The input size to build ``name`` at from the checkpoint file ``path`` with training record ``record``: the size
    asked for (``image_size``; a warning names both sizes when the weights were trained at another), else the trained
    size (None when it is the preset's own or not recorded). Warns once when the record's run stopped early."""
    if record is None:
        return image_size
    if record.stopped_early:
        warnings.warn(record.stopped_early_words(path), stacklevel=3)
    trained = record.image_size
    if image_size is None:
        return None if trained is None or trained == get_config(name).image_size else trained
    if trained is not None and int(image_size) != trained:
        warnings.warn(f"{path} was trained at input size {trained} px ({record.where}); it runs at {image_size} px as "
                      f"asked, which may segment worse: leave the input size unset to use {trained} px",
                      stacklevel=3)
    return image_size


def identify_preset(state: Mapping[str, torch.Tensor]) -> Optional[str]:
    """Name of the preset whose parameter shapes match ``state`` exactly, or None.

    Size is told by the trunk's width and depth; SAM 2.1 by its extra parameters.
    """
    for name, config in PRESETS.items():
        if _shape_signature(config) == _state_signature(state):
            return name
    return None


_SIGNATURE_CACHE: Dict[str, tuple] = {}


def _shape_signature(config: SAM2Config) -> tuple:
    if config.name not in _SIGNATURE_CACHE:
        with torch.device("meta"):
            model = SAM2Model(config)
        _SIGNATURE_CACHE[config.name] = _state_signature(model.state_dict())
    return _SIGNATURE_CACHE[config.name]


def _state_signature(state: Mapping[str, torch.Tensor]) -> tuple:
    return tuple(sorted((key, tuple(value.shape)) for key, value in state.items()))


def key_differences(missing: List[str], unexpected: List[str], mismatched: List[str], shown: int = 2) -> str:
    """One line on how a file's state dict differs from a model's: each kind's count and at most ``shown`` names
    (e.g. "missing keys: a, b, ... (114 in all); shape mismatches: ...")."""
    parts = []
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("shape mismatches", mismatched)):
        if items:
            more = f", ... ({len(items)} in all)" if len(items) > shown else ""
            parts.append(f"{title}: {', '.join(items[:shown])}{more}")
    return "; ".join(parts)


def load_checkpoint(model: SAM2Model, checkpoint: Union[PathLike, Mapping[str, torch.Tensor]]) -> None:
    """Load a checkpoint strictly into ``model``; on any mismatch raise :class:`CheckpointError`.

    The error names the preset the file holds when it can be told from its tensors, and lists
    missing keys, unexpected keys and shape mismatches.
    """
    state = read_state_dict(checkpoint) if not isinstance(checkpoint, Mapping) else dict(checkpoint)
    _load_state(model, state, str(checkpoint) if not isinstance(checkpoint, Mapping) else "the state dict")


def _load_state(model: SAM2Model, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` strictly into ``model`` (:func:`load_checkpoint`'s rule); ``source`` names it in errors."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{key}: file {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in set(expected) & set(state)
        if state[key].shape != expected[key].shape
    )
    if missing or unexpected or mismatched:
        held = identify_preset(state)
        wanted = model.config.name
        if held is not None and held != wanted:
            first = (f"this file holds {held} weights; you asked for {wanted}: load it with the {held} model "
                     f"(--model {held} on the command line; build_model({held!r}, ...) or model={held!r} in Python)")
        else:
            first = f"{source} does not match the model {wanted}"
            held = None
        details = key_differences(missing, unexpected, mismatched)
        raise CheckpointError(f"{first}\n({details})", held_preset=held)
    model.load_state_dict(state, strict=True)
