"""Random prompt scripts on our predictors and Meta's (``sam2==1.1.0``), every output compared: the long version.

    python bench/parity_fuzz.py --config demo --scripts 200 --seed 0
    python bench/parity_fuzz.py --config sam2.1_tiny_tall --threads 1 --scripts 20 --seed 900
    python bench/parity_fuzz.py --config image_sam2_tiny --scripts 50

Scripts, steps and comparisons are those of ``tests/parity_scripts.py`` (shared with ``tests/test_parity_fuzz.py``,
which runs a handful in CI): seeds ``--seed`` .. ``--seed + --scripts - 1``, one script per seed. Video
configurations (``VIDEO_CONFIGS``: preset, H x W, frames, batch_objects, corrections as conditioning, non-overlapping
masks) must be bit-identical, batched ones within the parity test's tolerance; image configurations
(``image_<preset>``) bit-identical. A failing script is shrunk greedily to its fewest steps that still fail the
same way (``--no-shrink`` to skip) and printed as JSON. At the end: scripts, outputs compared, failures by kind,
steps both sides refused, and the worst difference. Exit status 1 when any script failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import tempfile
import time
import traceback
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence, Tuple

if not os.environ.get("TQDM_DISABLE"):  # Meta's progress bars (tqdm reads it when imported, by torch)
    os.environ["TQDM_DISABLE"] = "1"

import numpy as np  # noqa: E402
import sam2_model  # noqa: F401,E402 (before torch: OpenMP's wait policy as our users get it, sam2_model/threads.py)
import torch  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from parity_scripts import (  # noqa: E402
    VIDEO_CONFIGS,
    ImagePair,
    ScriptDivergence,
    Step,
    VideoPair,
    Worst,
    new_worst,
    random_image_script,
    random_video_script,
    run_image_script,
    run_video_script,
)

IMAGE_CONFIGS = {"image_demo": "demo", "image_sam2.1_tiny": "sam2.1_hiera_tiny", "image_sam2_tiny": "sam2_hiera_tiny"}

# Runs a script, returns (outputs compared, steps both refused); raises ScriptDivergence (or crashes).
Runner = Callable[[Sequence[Step], Worst], Tuple[int, int]]


def failure_kind(steps: Sequence[Step], run: Runner) -> Optional[Tuple[str, str]]:
    """(category, message) of how ``steps`` fail ("crash": an exception other than a divergence); None if they pass."""
    try:
        run(steps, new_worst())
    except ScriptDivergence as error:
        return error.category, str(error)
    except Exception as error:  # noqa: BLE001 - a crash is a finding too
        return "crash", repr(error)
    return None


def shrink(steps: Sequence[Step], category: str, message: str, run: Runner) -> Tuple[List[Step], str]:
    """Drop one step at a time while the script still fails with ``category`` (as ``message`` says it does);
    (fewest steps, their failure)."""
    current = list(steps)
    changed = True
    while changed:
        changed = False
        for index in range(len(current)):
            candidate = current[:index] + current[index + 1:]
            kind = failure_kind(candidate, run) if candidate else None
            if kind is not None and kind[0] == category:
                current, message, changed = candidate, kind[1], True
                break
    return current, message


def video_runner(config_name: str, frames: Optional[int], steps: int, folder: pathlib.Path
                 ) -> Tuple[Callable[[int], List[Step]], Runner, Callable[[int], str]]:
    """(script of a seed, runner, description of a seed) for a video configuration."""
    config = VIDEO_CONFIGS[config_name]
    if frames is not None:
        config = dataclasses.replace(config, num_frames=frames)
    print(f"{config_name}: {config}", flush=True)
    pair = VideoPair(config, folder)

    def run(script: Sequence[Step], worst: Worst) -> Tuple[int, int]:
        compared, refused = run_video_script(pair, script, worst)
        return compared, int(refused is not None)

    return (lambda seed: random_video_script(np.random.default_rng(seed), config, steps)), run, (lambda seed: "")


def image_runner(config_name: str) -> Tuple[Callable[[int], List[Step]], Runner, Callable[[int], str]]:
    """(calls of a seed, runner, description of a seed's image) for an image configuration."""
    pair = ImagePair(IMAGE_CONFIGS[config_name])
    held: Dict[str, np.ndarray] = {}  # the image of the seed whose calls were made last

    def script(seed: int) -> List[Step]:
        held["image"], calls = random_image_script(np.random.default_rng(seed))
        return calls

    def run(calls: Sequence[Step], worst: Worst) -> Tuple[int, int]:
        return run_image_script(pair, held["image"], calls, worst)

    return script, run, (lambda seed: f"image {held['image'].shape} ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="demo", choices=sorted(VIDEO_CONFIGS) + sorted(IMAGE_CONFIGS))
    parser.add_argument("--scripts", type=int, default=20, help="how many scripts (one per seed)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--steps", type=int, default=10, help="steps per video script (image: 2-4 calls)")
    parser.add_argument("--frames", type=int, default=None, help="override the video configuration's frame count")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-shrink", action="store_true", help="print failing scripts whole")
    args = parser.parse_args()
    if args.scripts < 1 or args.steps < 1 or (args.frames is not None and args.frames < 1):
        parser.error("--scripts, --steps and --frames must be positive")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="parity_fuzz") as folder:
        if args.config in IMAGE_CONFIGS:
            script_of, run, describe = image_runner(args.config)
        else:
            script_of, run, describe = video_runner(args.config, args.frames, args.steps, pathlib.Path(folder))
        failed = fuzz(args, script_of, run, describe)
    sys.exit(1 if failed else 0)


def fuzz(args: argparse.Namespace, script_of: Callable[[int], List[Step]], run: Runner,
         describe: Callable[[int], str]) -> int:
    """Run every seed's script, print a line per script and the totals; the number of failing scripts."""
    worst, failures, kinds = new_worst(), Counter(), Counter()
    compared = refused = 0
    for seed in range(args.seed, args.seed + args.scripts):
        script = script_of(seed)
        kinds.update(step["kind"] for step in script)
        start = time.perf_counter()
        try:
            outputs, refusals = run(script, worst)
            compared, refused = compared + outputs, refused + refusals
            status = f"ok, {outputs} outputs" + (f", {refusals} steps both refused" if refusals else "")
        except ScriptDivergence as error:
            failures[error.category] += 1
            status = f"DIVERGENCE [{error.category}] {error}"
            report(seed, script, error.step, error.category, str(error), run, args.no_shrink)
        except Exception:  # noqa: BLE001 - a crash is a finding too
            failures["crash"] += 1
            status = "CRASH\n" + traceback.format_exc()
            report(seed, script, len(script) - 1, "crash", status, run, args.no_shrink)
        print(f"[{args.config} seed {seed}] {describe(seed)}{time.perf_counter() - start:.1f}s {status}", flush=True)
    print(f"\n{args.config}: {args.scripts} scripts ({dict(kinds)}), {compared} outputs compared, "
          f"{sum(failures.values())} failing {dict(failures)}, {refused} steps both refused (a video script stops "
          "there, an image call is skipped)", flush=True)
    print(f"worst: max |difference| {worst['abs']:.3e} (relative {worst['rel']:.2e}), "
          f"max fraction of differing mask pixels {worst['pixels']:.2e}", flush=True)
    return sum(failures.values())


def report(seed: int, script: Sequence[Step], step: int, category: str, message: str, run: Runner,
           whole: bool) -> None:
    """Print a failing script up to its failing step, and its shrunk version unless ``whole``."""
    print(f"  seed {seed} script up to step {step}: {json.dumps(list(script[: step + 1]))}", flush=True)
    if not whole:
        small, message = shrink(script[: step + 1], category, message, run)
        print(f"  shrunk to {len(small)} steps: {json.dumps(small)}\n  fails with: {message}", flush=True)


if __name__ == "__main__":
    main()
