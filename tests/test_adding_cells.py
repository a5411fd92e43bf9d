"""Adding many cells costs each cell the same, however many the session holds already (s54 F2).

Automatic tracking starts one track per detected cell with a mask prompt (``CellTracker._start``:
``session.add_prompt(t, id, mask=..., return_logits=False)``). A crowded first frame (1024^2, 150 cells) spent 1350 s of
2344 s adding cells on a loaded machine, as if each add touched every object already there. Measured (s54 F2 report):
it does not; each add runs the same model calls (one mask decoding for the object pointer; in an object window, also
that window's image encoding) and no work over the other objects, and the slowness came from torch's CPU threads
spin-waiting on an oversubscribed machine. These tests keep it so: they count the model's calls (not time) of each add.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterator, List

import numpy as np
import pytest

import sam2_model as sm
from sam2_model import session_outputs
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import CellTracker
from sam2_model.windowed_session import WindowedSession

PARTS = ("image_encoder", "sam_prompt_encoder", "sam_mask_decoder", "memory_encoder", "memory_attention")


@pytest.fixture(scope="module")
def model():
    return sm.build_model("demo", device="cpu", image_size=128)


@pytest.fixture(scope="module")
def crowded():
    """Two frames of 256 x 256 with ~30 nuclei ~15 px wide, and their (H, W) masks on frame 0."""
    movie = make_timelapse(num_frames=2, shape=(256, 256), num_cells=30, seed=11, divisions=False,
                           radius_fraction=0.03)
    masks = [movie.labels[0] == i for i in np.unique(movie.labels[0]) if i]
    assert len(masks) >= 24
    return movie.image, masks


class Calls:
    """Counts the model's top-level parts' calls (forward hooks) and the rows (objects) of the batches they were given:
    the image encoder's images, the prompt encoder's points, the mask decoder's prompt embeddings."""

    def __init__(self, model) -> None:
        self.calls: Counter = Counter()
        self.rows: Counter = Counter()
        self._handles = [getattr(model, name).register_forward_hook(self._hook(name), with_kwargs=True)
                         for name in PARTS]

    def _hook(self, name: str) -> Callable:
        def hook(module, args, kwargs, output) -> None:
            self.calls[name] += 1
            if name == "sam_prompt_encoder":
                first = kwargs["points"][0]
            elif name == "sam_mask_decoder":
                first = kwargs["sparse_prompt_embeddings"]
            else:
                first = next((a for a in (*args, *kwargs.values()) if hasattr(a, "shape")), None)
            self.rows[f"{name} rows"] += 0 if first is None else int(first.shape[0])
        return hook

    def take(self) -> Counter:
        """The calls and rows since the last take, as one Counter ('name' and 'name rows')."""
        out = self.calls + self.rows
        self.calls.clear()
        self.rows.clear()
        return out

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


@pytest.fixture
def calls(model) -> Iterator[Calls]:
    counter = Calls(model)
    yield counter
    counter.close()


def _per_add(session, masks: List[np.ndarray], calls: Calls, monkeypatch, most_rows: int = 0) -> List[Counter]:
    """Each mask added as a new object on frame 0 (as the tracker adds cells): the model calls of each add. Fails if an
    add converts more than ``most_rows`` objects' results to frames (session_outputs: a cost that grows with the
    objects; an object window's own session holds its one object)."""
    def guarded(name: str) -> Callable:
        original = getattr(session_outputs, name)

        def convert(low_res, *args, **kwargs):
            rows = low_res.shape[0]
            assert rows <= most_rows, f"add_prompt(return_logits=False) ran {name} on {rows} objects"
            return original(low_res, *args, **kwargs)
        return convert

    for name in ("to_logits", "to_masks", "to_labels", "winners", "convert"):
        monkeypatch.setattr(session_outputs, name, guarded(name))
    counts = []
    for obj_id, mask in enumerate(masks, start=1):
        calls.take()
        assert session.add_prompt(0, obj_id, mask=mask, return_logits=False) is None
        counts.append(calls.take())
    return counts


def test_each_mask_prompt_on_whole_frames_costs_the_same(model, crowded, calls, monkeypatch):
    """The 24th object's mask prompt runs exactly the model calls of the 2nd (one prompt encoding and one mask decoding
    of one row, for its object pointer; the frame is encoded once, by the first), whatever the objects before it."""
    frames, masks = crowded
    session = sm.VideoSession(model, frames)
    counts = _per_add(session, masks[:24], calls, monkeypatch)
    assert counts[0]["image_encoder"] == 1  # the frame's features, once
    expected = Counter({"sam_prompt_encoder": 1, "sam_mask_decoder": 1, "sam_prompt_encoder rows": 1,
                        "sam_mask_decoder rows": 1})
    for count in counts[1:]:
        assert +count == expected
    assert session.obj_ids == list(range(1, 25))


def test_each_mask_prompt_in_object_windows_costs_the_same(model, crowded, calls, monkeypatch):
    """In object windows (the tracker's sessions for small cells on large frames) each new object costs its window's
    image encoding and one mask decoding: the same for the 24th as for the 1st."""
    frames, masks = crowded
    session = WindowedSession(model, frames, window=64)
    counts = _per_add(session, masks[:24], calls, monkeypatch, most_rows=1)
    expected = Counter({"image_encoder": 1, "sam_prompt_encoder": 1, "sam_mask_decoder": 1, "image_encoder rows": 1,
                        "sam_prompt_encoder rows": 1, "sam_mask_decoder rows": 1})
    for count in counts:
        assert +count == expected


@pytest.mark.parametrize("window", [None, 64])
def test_the_trackers_first_frame_costs_the_same_per_cell(model, crowded, calls, window):
    """Frame 0 of automatic tracking (a given detector, so the calls are the adds alone): 24 cells cost the model
    exactly 3x what 8 cells cost, less the frame's one image encoding on whole frames."""
    frames, masks = crowded

    def first_frame(n: int) -> Counter:
        tracker = CellTracker(model, frames, detector=lambda frame: [m.copy() for m in masks[:n]], window=window)
        run = tracker.run()
        calls.take()
        t, labels, active = next(run)
        run.close()
        assert t == 0 and active == n and len(np.unique(labels)) == n + 1
        return calls.take()

    few, many = first_frame(8), first_frame(24)
    shared = Counter({"image_encoder": 1, "image_encoder rows": 1}) if window is None else Counter()
    assert +(many - shared) == +Counter({k: 3 * v for k, v in (few - shared).items()})
