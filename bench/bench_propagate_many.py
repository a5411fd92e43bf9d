"""Propagation with many objects: seconds per frame in the model and in making the frame's labels.

    python bench/bench_propagate_many.py                          # 5, 30, 60, 120 cells; 256 and 512 px frames
    python bench/bench_propagate_many.py --objects 60 --sizes 512 --frames 4
    python bench/bench_propagate_many.py --parts track_cells      # track_cells on a 60-cell 512 px movie
    PYTHONPATH=/tmp/old/src python bench/bench_propagate_many.py  # the same on another copy of the code
    python bench/bench_propagate_many.py --parts tracker --sizes 512 --divisions   # with the division rules on
    python bench/bench_propagate_many.py --parts track_cells --track-cells 30 60 120 --track-window none

Demo model at its 256 px input on the CPU. Every cell of frame 0 of a synthetic nuclei movie is an object, then:

* ``controller``: the widget's Propagate (``SegmentationController.propagate`` forward through ``--frames`` frames,
  whole frames, labels written as the widget writes them);
* ``tracker``: the automatic tracking's propagation (``CellTracker`` seeded with the true masks of frame 0 and no
  re-detection, so its frames are propagation, labels and book-keeping only), on whole frames and in object windows;
  ``--divisions`` turns its division rules on (split and neck watches every frame, as ``track_cells`` has them);
* ``outputs``: one propagated frame's model seconds, then its labels made from the same results the old way (every
  object's full-resolution logits, then ``compose_frame`` or the tracker's argmax) and the new (``output="labels"``),
  best of 3 each (the cleanest split of a frame's time between the model and its labels);
* ``track_cells``: ``track_cells`` with its defaults on a ``--track-frames`` frame, 512 x 512 movie of each
  ``--track-cells`` count (60: detection included), in object windows or, with ``--track-window none``, whole frames.

"bookkeeping" is the time in ``CellTracker._update`` (the per-frame book-keeping: areas, lost cells, the split and
neck rules; a division's new objects' prompts included), per frame.

"model" is the time inside the session's batched model calls (each window session's for windows); "rest" is the
remainder: upsampling, labels, writes, book-keeping. Each run prints a checksum of the labels it made, so two copies
of the code can be seen to give the same labels. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import sam2_model  # noqa: F401,E402 (before torch: OpenMP's wait policy as our users get it, sam2_model/threads.py)
import torch

from sam2_model import build_model
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import CellTracker, track_cells

from napari_sam2.controller import SegmentationController
from napari_sam2.layout import StackLayout
from napari_sam2.prompts import FramePrompt

from bench_click_many import cells


def digest(labels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(labels).tobytes()).hexdigest()[:12]


class ModelClock:
    """Seconds spent in the wrapped sessions' model calls of propagation (``_track_batched``, or ``_infer`` where
    objects are tracked one by one, as in each object's window session), and in ``_encode_memory`` (the memories of
    objects prompted since the last propagation, e.g. the seed frame's, encoded on the first frame propagated);
    a call inside another counted call is not counted again."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._wrapped: set = set()
        self._depth = 0

    def wrap(self, session: Any) -> None:
        if id(session) in self._wrapped:
            return
        self._wrapped.add(id(session))
        names = ["_track_batched" if session.batch_objects else "_infer"]  # a window's session tracks one object
        names += ["_encode_memory"] if hasattr(session, "_encode_memory") else []
        for name in names:
            self._time(session, name)

    def _time(self, session: Any, name: str) -> None:
        real = getattr(session, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            self._depth += 1
            try:
                return real(*args, **kwargs)
            finally:
                self._depth -= 1
                if not self._depth:
                    self.seconds += time.perf_counter() - start
        setattr(session, name, timed)

    def wrap_all(self, session: Any) -> None:
        """The session itself, or each object's window session of a WindowedSession."""
        if hasattr(session, "_track_batched"):
            self.wrap(session)
        for track in getattr(session, "_objects", {}).values():
            if hasattr(track, "session"):
                self.wrap(track.session)


def controller_run(model: Any, size: int, count: int, frames: int) -> Dict[str, Any]:
    data, ids = cells(size, count, frames)
    labels = np.zeros(data.image.shape, np.uint32)
    controller = SegmentationController(model, data.image, StackLayout(3, 0), labels, object_window=None)
    seeds = [FramePrompt(0, int(c), mask=data.labels[0] == c) for c in ids]
    list(controller.seed_masks(seeds, []))
    clock = ModelClock()
    clock.wrap_all(controller.session)
    start = time.perf_counter()
    done = sum(1 for step in controller.propagate(0, "forward") if step[0] == "frame")
    total = time.perf_counter() - start
    return {"s_frame": total / done, "model": clock.seconds / done, "rest": (total - clock.seconds) / done,
            "frames": done, "labels": digest(labels)}


class UpdateClock:
    """Seconds spent in ``CellTracker._update`` (the per-frame book-keeping), on the class while in use."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._real = CellTracker._update

    def __enter__(self) -> "UpdateClock":
        real = self._real

        def timed(tracker: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return real(tracker, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        CellTracker._update = timed
        return self

    def __exit__(self, *exc: Any) -> None:
        CellTracker._update = self._real


def tracker_run(model: Any, size: int, count: int, frames: int, window: Any,
                divisions: bool = False) -> Dict[str, Any]:
    data, ids = cells(size, count, frames)
    first = [data.labels[0] == c for c in ids]
    calls: List[int] = []

    def detector(frame: np.ndarray) -> List[np.ndarray]:  # the true cells on the start frame, nothing after
        calls.append(1)
        return first if len(calls) == 1 else []

    tracker = CellTracker(model, data.image, detector=detector, redetect_every=10 ** 6, divisions=divisions,
                          window=window)
    clock = ModelClock()
    out = np.zeros(data.image.shape, np.uint32)
    spent, done = 0.0, 0
    steps = tracker.run()
    t, out[0], _ = next(steps)  # the seed frame (mask prompts), not timed
    clock.wrap_all(tracker.session)
    with UpdateClock() as update:
        while True:
            start = time.perf_counter()
            step = next(steps, None)
            if step is None:
                break
            spent += time.perf_counter() - start
            t, out[t], _ = step
            done += 1
    return {"s_frame": spent / done, "model": clock.seconds / done, "rest": (spent - clock.seconds) / done,
            "bookkeeping": update.seconds / done, "frames": done, "labels": digest(out),
            "lineage": digest(np.array([[r.track_id, r.begin, r.end, r.parent] for r in tracker.lineage.rows()])),
            "window": getattr(tracker, "window", None)}


def outputs_run(model: Any, size: int, count: int, repeats: int = 3) -> Dict[str, Any]:
    """One propagated frame of ``count`` objects: the model's seconds, then the frame's labels made from its results
    the old way (every object's full-resolution logits, then the widget's ``compose_frame`` or the tracker's argmax)
    and the new way (the session's ``output="labels"``), best of ``repeats``; the labels must be equal."""
    from sam2_model import VideoSession
    from napari_sam2.labels_writer import compose_frame

    data, ids = cells(size, count, 2)
    session = VideoSession(model, data.image)
    for c in ids:
        session.add_prompt(0, int(c), mask=data.labels[0] == c, return_logits=False)
    clock = ModelClock()
    clock.wrap(session)
    list(session.propagate(0, output="labels"))
    states = [session._objects[o] for o in session.obj_ids]
    obj_ids = session.obj_ids
    plane = np.zeros(data.image.shape[1:], np.uint32)

    def best(fn: Callable[[], Any]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return min(times)

    def argmax_labels() -> np.ndarray:
        logits = session._frame_output(1, states, obj_ids, "logits")
        top = np.argmax(logits, axis=0)
        fg = np.take_along_axis(logits, top[None], 0)[0] > 0
        out = np.zeros(logits.shape[1:], np.uint32)
        out[fg] = np.asarray(obj_ids, np.uint32)[top[fg]]
        return out

    new = session._frame_output(1, states, obj_ids, "labels")
    old = compose_frame(plane, obj_ids, session._frame_output(1, states, obj_ids, "logits"), set(obj_ids))
    assert np.array_equal(new, old) and np.array_equal(new, argmax_labels()), "labels differ"
    return {"model": clock.seconds,
            "logits_compose": best(lambda: compose_frame(plane, obj_ids,
                                                         session._frame_output(1, states, obj_ids, "logits"),
                                                         set(obj_ids))),
            "logits_argmax": best(argmax_labels),
            "labels": best(lambda: session._frame_output(1, states, obj_ids, "labels"))}


def track_cells_run(model: Any, frames: int, count: int, size: int, window: Any = "auto") -> Dict[str, Any]:
    data = make_timelapse(num_frames=frames, shape=(size, size), num_cells=count, seed=7, radius_fraction=0.025)
    with UpdateClock() as update:
        start = time.perf_counter()
        result = track_cells(model, data.image, window=window)
        total = time.perf_counter() - start
    rows = [(r.track_id, r.begin, r.end, r.parent, r.end_reason) for r in result.lineage.rows()]
    return {"s_frame": total / frames, "bookkeeping": update.seconds / frames, "frames": frames,
            "tracks": len(result.lineage), "divisions": len(result.lineage.divisions()),
            "cells_frame0": int(len(np.unique(data.labels[0])) - 1), "labels": digest(result.labels),
            "lineage": hashlib.sha256(repr(rows).encode()).hexdigest()[:12]}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, nargs="+", default=[5, 30, 60, 120])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--frames", type=int, default=4, help="frames of the propagation runs (frame 0 prompted)")
    parser.add_argument("--parts", nargs="+", default=["controller", "tracker"],
                        choices=["controller", "tracker", "tracker_windows", "outputs", "track_cells"])
    parser.add_argument("--track-frames", type=int, default=10)
    parser.add_argument("--track-cells", type=int, nargs="+", default=[60])
    parser.add_argument("--track-window", default="auto", help="track_cells' window: auto, none or a side in px")
    parser.add_argument("--divisions", action="store_true", help="the tracker part with its division rules on")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = build_model("demo", device="cpu")
    print(f"demo model at {model.image_size} px input, CPU, {torch.get_num_threads()} threads")
    runs: Dict[str, Callable[[int, int], Dict[str, Any]]] = {
        "controller": lambda s, n: controller_run(model, s, n, args.frames),
        "tracker": lambda s, n: tracker_run(model, s, n, args.frames, None, args.divisions),
        "tracker_windows": lambda s, n: tracker_run(model, s, n, args.frames, 96),
        "outputs": lambda s, n: outputs_run(model, s, n),
    }
    rows = []
    for part in args.parts:
        if part == "track_cells":
            window = {"auto": "auto", "none": None}.get(args.track_window.lower(), None)
            window = int(args.track_window) if args.track_window.isdigit() else window
            for count in args.track_cells:
                row = {"part": part, "size": 512, "objects": count, "window": args.track_window,
                       **track_cells_run(model, args.track_frames, count, 512, window)}
                rows.append(row)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
            continue
        for size in args.sizes:
            for count in args.objects:
                row = {"part": part, "size": size, "objects": count, **runs[part](size, count)}
                rows.append(row)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
