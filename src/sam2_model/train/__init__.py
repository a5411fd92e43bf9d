"""Training and fine-tuning of SAM 2 models by simulated interactive sessions (``python -m sam2_model.train``)."""

from .data import Clip, MixedClips, StackClips, SyntheticClips
from .episode import EpisodeSettings, run_episode
from .losses import LossWeights, prediction_losses
from .loop import TrainSettings, export_weights, fine_tuning_warmup, train

__all__ = [
    "Clip", "EpisodeSettings", "MixedClips", "LossWeights", "StackClips", "SyntheticClips", "TrainSettings",
    "export_weights", "fine_tuning_warmup", "prediction_losses", "run_episode", "train",
]
