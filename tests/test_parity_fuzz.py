"""Seeded random prompt scripts on VideoSession / ImagePredictor and Meta's predictors, every output compared.

A handful of scripts from ``tests/parity_scripts.py`` (what the steps are, what is compared); the long version
with every configuration and shrinking is ``python bench/parity_fuzz.py``. A failure prints the configuration,
the seed, the script up to the failing step and the bench command that replays it.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, Sequence, Tuple, TypeVar

import numpy as np
import pytest

from oracle import require_oracle
from parity_scripts import (
    VIDEO_CONFIGS,
    ImagePair,
    ScriptDivergence,
    Step,
    VideoPair,
    failure_report,
    new_worst,
    random_image_script,
    random_video_script,
    run_image_script,
    run_video_script,
)

T = TypeVar("T")
NUM_STEPS = 10
# name -> (configuration of VIDEO_CONFIGS, frames, seeds): non-square demo frames (the shipped trained weights),
# square frames with sam2.1 tiny's random weights, and objects tracked as a batch (demo).
VIDEO_CASES = {
    "demo": ("demo", 5, (0, 4, 5, 16)),  # 5 and 16 caught the other objects' rows add_prompt returned (dcb6e3e)
    "sam2.1_tiny_square": ("sam2.1_tiny_square", 4, (0,)),
    "demo_batch": ("demo_batch", 5, (0,)),
}


def _replayable(run: Callable[[], T], label: str, seed: int, steps: Sequence[Step], replay: str) -> T:
    """``run()``'s result; on a divergence, fail with the seed, the script up to the failing step and ``replay``."""
    try:
        return run()
    except ScriptDivergence as error:
        message = failure_report(label, seed, steps, error, replay)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="module", params=list(VIDEO_CASES))
def video_case(request, tmp_path_factory) -> Iterator[Tuple[str, VideoPair, Tuple[int, ...]]]:
    """(configuration name, the pair of predictors, seeds) of one case; one model build per case."""
    require_oracle()
    name, frames, seeds = VIDEO_CASES[request.param]
    config = dataclasses.replace(VIDEO_CONFIGS[name], num_frames=frames)
    yield name, VideoPair(config, tmp_path_factory.mktemp(name)), seeds


def test_random_video_scripts_match_reference(video_case):
    """Every add_prompt / propagate / remove_object output is bit-identical (objects one by one) or within
    _compare's tolerance (batch_objects), over random 10-step scripts."""
    name, pair, seeds = video_case
    worst, compared = new_worst(), 0
    for seed in seeds:
        steps = random_video_script(np.random.default_rng(seed), pair.config, NUM_STEPS)
        replay = f"python bench/parity_fuzz.py --config {name} --frames {len(pair.inputs)} --seed {seed} --scripts 1"
        outputs, refused = _replayable(lambda: run_video_script(pair, steps, worst), f"video {name}", seed, steps,
                                       replay)
        assert refused is None, f"seed {seed}: the script stopped early ({refused}); choose a seed that runs through"
        compared += outputs
    print(f"{name}: {len(seeds)} scripts, {compared} outputs, max |logit diff| {worst['abs']:.2e}, "
          f"max differing mask pixels {worst['pixels']:.4%}")


@pytest.fixture(scope="module")
def image_pair() -> ImagePair:
    require_oracle()
    return ImagePair("demo")


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_random_image_calls_match_reference(image_pair, seed):
    """Masks, scores and low-res logits of 2-4 random predict calls on a random image are bit-identical."""
    image, calls = random_image_script(np.random.default_rng(seed))
    worst = new_worst()
    replay = f"python bench/parity_fuzz.py --config image_demo --seed {seed} --scripts 1"
    compared, refused = _replayable(lambda: run_image_script(image_pair, image, calls, worst),
                                    f"image demo, image {image.shape}", seed, calls, replay)
    assert compared + refused == len(calls) and compared >= 1
