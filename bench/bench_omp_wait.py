"""What OpenMP's wait policy costs or saves on the CPU: one child process per policy and case, alternated.

    python bench/bench_omp_wait.py                      # 3 rounds of: demo, add, track (over 25 min on 2 cores:
                                                        # track with spinning threads takes ~500 s a round)
    python bench/bench_omp_wait.py --rounds 2 --cases demo add --frames 20 --clicks 40

torch's CPU build runs its parallel regions on GNU OpenMP (libgomp), which reads ``OMP_WAIT_POLICY`` and
``GOMP_SPINCOUNT`` once, when torch is imported: so each setting runs in its own child process. The policies:

- ``spin``: ``GOMP_SPINCOUNT=300000``, libgomp's own default (worker threads busy-wait ~ms after each region);
  what every process ran before ``sam2_model.threads`` made PASSIVE the default (a GOMP_SPINCOUNT of the user's
  keeps our default out);
- ``passive``: ``OMP_WAIT_POLICY=PASSIVE`` (workers sleep at once; our default);
- ``spin10k``: ``GOMP_SPINCOUNT=10000`` (a short spin).

The cases (demo model on the CPU, 512 x 512 uint16 synthetic frames):

- ``demo``: one object propagated through ``--frames`` frames (the README demo's and bench_demo.py's work): frames/s;
- ``add``: ``--clicks`` cells clicked one after another on frame 0 (``add_prompt`` + ``frame_winners``, as the widget
  does on each click): seconds for all;
- ``track``: ``track_cells`` on the first ``--track-frames`` frames of a crowded movie (~60 cells): seconds.

Each line prints the median wall seconds and user + system CPU seconds of the measured part over the rounds, and
the ratio to ``spin`` (wall is noisy on a shared machine; CPU seconds less so).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List

POLICIES: Dict[str, Dict[str, str]] = {
    "spin": {"GOMP_SPINCOUNT": "300000"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin10k": {"GOMP_SPINCOUNT": "10000"},
}
CASES = ("demo", "add", "track")


def measured(work: Callable[[], float]) -> Dict[str, float]:
    """Wall and CPU seconds (all threads of this process) of ``work``, and the value it returns."""
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    value = work()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {"wall": wall, "user": after.ru_utime - before.ru_utime, "sys": after.ru_stime - before.ru_stime,
            "value": value}


def child(case: str, args: argparse.Namespace) -> Dict[str, float]:
    """One case in this process (its policy set by the parent's environment)."""
    import torch

    from sam2_model import VideoSession, build_model, track_cells
    from sam2_model.evaluation import click_point, clickable_objects
    from sam2_model.synthetic import make_timelapse

    model = build_model("demo", device="cpu")
    torch.set_grad_enabled(False)
    if case == "demo":
        movie = make_timelapse(num_frames=args.frames, shape=(512, 512), seed=900_100)
        obj_id = clickable_objects(movie.labels[0])[0]
        x, y = click_point(movie.labels[0] == obj_id)
        session = VideoSession(model, movie.image)
        session.add_prompt(0, 1, points=[[x, y]], labels=[1], return_logits=False)
        return measured(lambda: sum(1 for _ in session.propagate(output="labels")))
    movie = make_timelapse(num_frames=max(2, args.track_frames), shape=(512, 512), num_cells=60,
                           radius_fraction=0.025, seed=900_200)
    if case == "add":
        ids = clickable_objects(movie.labels[0], min_area=50)[:args.clicks]
        points = [click_point(movie.labels[0] == obj) for obj in ids]
        session = VideoSession(model, movie.image)
        session.add_prompt(0, 1, points=[points[0]], labels=[1], return_logits=False)  # frame 0 embedded

        def clicks() -> float:
            for n, (x, y) in enumerate(points[1:], start=2):
                session.add_prompt(0, n, points=[[x, y]], labels=[1], return_logits=False)
                session.frame_winners(0)
            return float(len(points))

        return measured(clicks)
    if case == "track":
        frames = movie.image[:args.track_frames]
        return measured(lambda: float(int(track_cells(model, frames, cell_diameter=(6, 40)).labels.max())))
    raise SystemExit(f"unknown case {case!r}; the cases are {', '.join(CASES)}")


def run_child(case: str, policy: str, args: argparse.Namespace) -> Dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(POLICIES[policy])
    command = [sys.executable, __file__, "--child", case, "--frames", str(args.frames), "--clicks", str(args.clicks),
               "--track-frames", str(args.track_frames)]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--policies", nargs="+", choices=list(POLICIES), default=list(POLICIES))
    parser.add_argument("--frames", type=int, default=20, help="frames propagated in the demo case")
    parser.add_argument("--clicks", type=int, default=40, help="cells clicked in the add case")
    parser.add_argument("--track-frames", type=int, default=2, help="frames of the track case")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args)))
        return
    results: Dict[tuple, List[Dict[str, float]]] = {}
    for round_ in range(args.rounds):
        for case in args.cases:
            order = args.policies[round_ % len(args.policies):] + args.policies[:round_ % len(args.policies)]
            for policy in order:  # the order turns each round: no policy always runs first
                result = run_child(case, policy, args)
                results.setdefault((case, policy), []).append(result)
                print(f"round {round_ + 1} {case:5s} {policy:8s} wall {result['wall']:7.2f} s  user "
                      f"{result['user']:7.2f} s  sys {result['sys']:6.2f} s", flush=True)
    print(f"\nmedians over {args.rounds} rounds (ratio to spin; load average now {os.getloadavg()[0]:.1f}):")
    for case in args.cases:
        base = results.get((case, "spin"))
        for policy in args.policies:
            rows = results[(case, policy)]
            wall = statistics.median(r["wall"] for r in rows)
            cpu = statistics.median(r["user"] + r["sys"] for r in rows)
            extra = ""
            if case == "demo":
                extra = f"  {statistics.median(r['value'] / r['wall'] for r in rows):5.2f} frames/s"
            if base:
                base_wall = statistics.median(r["wall"] for r in base)
                base_cpu = statistics.median(r["user"] + r["sys"] for r in base)
                extra += f"  wall x{wall / base_wall:.2f}  cpu x{cpu / base_cpu:.2f}"
            print(f"  {case:5s} {policy:8s} wall {wall:7.2f} s  cpu {cpu:7.2f} s{extra}")


if __name__ == "__main__":
    main()
