"""Training and fine-tuning of SAM 2 models by simulated interactive sessions (``python -m sam2_model.train``).

The public names are imported when first asked for, so that ``sam2-train --help`` (and a wrong argument's error)
answer without loading torch and the training code.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, List

#: each public name and the submodule it lives in
_PUBLIC: Dict[str, str] = {
    "Clip": "data", "MixedClips": "data", "StackClips": "data", "SyntheticClips": "data",
    "EpisodeSettings": "episode", "run_episode": "episode",
    "LossWeights": "losses", "prediction_losses": "losses",
    "TrainSettings": "settings", "export_weights": "loop", "fine_tuning_warmup": "settings", "train": "loop",
}

__all__ = [
    "Clip", "EpisodeSettings", "MixedClips", "LossWeights", "StackClips", "SyntheticClips", "TrainSettings",
    "export_weights", "fine_tuning_warmup", "prediction_losses", "run_episode", "train",
]


def __getattr__(name: str) -> Any:
    """A public name of :data:`__all__`, imported from its submodule on first use (then kept here)."""
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    """The public names with the module's own (tab completion)."""
    return sorted(set(globals()) | set(__all__))
