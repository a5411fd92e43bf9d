"""A training step's clips batched through the model: the same losses and gradients as one clip after another
(so no clip reads another's features or memories), clips with different object counts and lengths, the
switch, and exact resumes of batched runs."""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch

from sam2_model.build import embedded_weights_path, load_checkpoint
from sam2_model.config import get_config
from sam2_model.modeling.sam2 import SAM2Model
from sam2_model.synthetic import make_timelapse
from sam2_model.train.__main__ import parse_args
from sam2_model.train.data import Clip, make_clip
from sam2_model.train.episode import EpisodeSettings, clip_generators, run_episode
from sam2_model.train.loop import TrainSettings, train

SIZE = 128


def _model_without_dropout() -> SAM2Model:
    """The demo model with its trained weights, in training mode, with memory attention's dropout off (dropout
    draws differ between batch shapes, so only a dropout-free model can give equal results both ways)."""
    config = get_config("demo", SIZE)
    config = dataclasses.replace(config, memory_attention=dataclasses.replace(config.memory_attention, dropout=0.0))
    model = SAM2Model(config)
    load_checkpoint(model, embedded_weights_path())
    return model.train()


def _clip(seed: int, num_frames: int, num_objects: int) -> Clip:
    movie = make_timelapse(num_frames=num_frames, shape=(SIZE, SIZE), num_cells=6, seed=seed, radius_fraction=0.1)
    clip = make_clip(movie.image, movie.labels, movie.parents, SIZE, np.random.default_rng(seed), max_objects=3)
    assert clip is not None and clip.num_objects >= num_objects
    return Clip(clip.images, clip.masks[:, :num_objects])


def _step(model: SAM2Model, clips: List[Clip], seed: int, settings: EpisodeSettings, batch: bool
          ) -> Tuple[Dict[str, float], Dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    losses = run_episode(model, clips, np.random.default_rng(seed), settings, batch_clips=batch)
    losses["total"].backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return {k: float(v.detach()) for k, v in losses.items()}, grads


def test_batched_step_gives_the_per_clip_losses_and_gradients(monkeypatch):
    torch.set_flush_denormal(True)
    model = _model_without_dropout()
    # different content, object counts 1, 3, 2 (and 2 in a shorter clip, batched on its own)
    clips = [_clip(11, 4, 1), _clip(12, 4, 3), _clip(13, 4, 2), _clip(14, 3, 2)]
    settings = EpisodeSettings(click_prob=0.4, box_prob=0.3, max_corrections=2, correction_on_tracked_frame_prob=1.0)
    seed = 4
    kinds = [g.random() for g in clip_generators(np.random.default_rng(seed), len(clips))]
    assert min(kinds) < 0.4 and any(0.4 <= k < 0.7 for k in kinds)  # clicks and boxes in the same batch

    calls: List[Tuple[int, int]] = []  # (frame, objects) of every memory-conditioning call
    real = model.condition_on_memory

    def counted(frame_idx, features, *args, **kwargs):
        calls.append((frame_idx, features.batch_size))
        return real(frame_idx, features, *args, **kwargs)

    monkeypatch.setattr(model, "condition_on_memory", counted)
    per_clip, per_clip_grads = _step(model, clips, seed, settings, batch=False)
    per_clip_calls, calls[:] = list(calls), []
    batched, batched_grads = _step(model, clips, seed, settings, batch=True)

    # the batched path did batch: frame 1 of the three 4-frame clips (1 + 3 + 2 objects) is one call
    assert (1, 6) in calls and len(calls) < len(per_clip_calls)
    for key in per_clip:
        assert batched[key] == pytest.approx(per_clip[key], rel=1e-4, abs=1e-7), key
    assert batched_grads.keys() == per_clip_grads.keys() and len(per_clip_grads) > 300
    for name, expected in per_clip_grads.items():
        # some gradients are zero in exact arithmetic (key biases under softmax): allow 1e-8 of rounding
        tolerance = 1e-4 * expected.abs().max().item() + 1e-8
        assert (batched_grads[name] - expected).abs().max().item() <= tolerance, name


def test_batch_clips_switch_in_settings_and_cli():
    assert TrainSettings(out="x").batch_clips is True
    assert parse_args(["--out", "x"]).batch_clips is True
    assert parse_args(["--out", "x", "--no-batch-clips"]).batch_clips is False
    assert parse_args(["--out", "x", "--batch-clips", "no"]).batch_clips is False


def test_a_resumed_batched_run_equals_an_uninterrupted_one(tmp_path):
    def settings(out) -> TrainSettings:
        return TrainSettings(out=str(out), model="demo", image_size=64, clip_len=2, clips_per_step=3, max_objects=2,
                             steps=3, warmup_steps=1, save_every=1, seed=6, batch_clips=True)

    straight = train(settings(tmp_path / "straight"), progress=lambda step, row: True)
    train(settings(tmp_path / "resumed"), progress=lambda step, row: step < 2)
    resumed = train(settings(tmp_path / "resumed"), progress=lambda step, row: True)
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
