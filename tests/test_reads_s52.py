"""Frames read that nobody uses: object windows prepare no whole-frame model inputs ahead (the windows read crops of
the frames they share), each frame is read once per pass, and what "auto" measures reads only the channel segmented.
Reads are counted with a wrapper array; model inputs by a counting wrapper around the real resize (no stand-ins)."""

from __future__ import annotations

import collections
from typing import Any, List

import numpy as np
import pytest
import torch

import sam2_model as sm
import sam2_model.frames as frames_module
from napari_sam2.api import frame_seen, resolve_axes
from napari_sam2.image_size import auto_image_size_from, tracking_size_choice
from napari_sam2.layout import FrameView, StackLayout
from sam2_model.frames import FrameSource
from sam2_model.windowed_session import WindowedSession

SIDE = 1024


class CountedReads:
    """A (T, C, Y, X) array that records every index it is read with."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.keys: List[Any] = []

    def __getitem__(self, key: Any) -> np.ndarray:
        self.keys.append(key)
        return self.data[key]

    def reads(self) -> collections.Counter:
        """(frame, channel or "all") -> times read."""
        return collections.Counter((key[0], key[1] if isinstance(key[1], (int, np.integer)) else "all")
                                   for key in self.keys)


def _nuclei(frames: int, side: int = SIDE, objects: int = 5, seed: int = 3):
    """(T, 2, side, side) uint16: bright discs ~28 px wide drifting 1.5 px a frame in channel 1 (dimmer in channel 0);
    one click per disc on frame 0 as (y, x)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    margin = min(120, side // 4)
    centres = rng.uniform(margin, side - margin, size=(objects, 2))
    data = np.full((frames, 2, side, side), 200, np.uint16)
    for t in range(frames):
        for cy, cx in centres + t * 1.5:
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < 14 ** 2
            data[t, 1][disc] = 3000
            data[t, 0][disc] = 900
    return data, centres


@pytest.fixture(scope="module")
def model():
    return sm.build_model("demo", device="cpu", image_size=256)


def test_object_windows_prepare_no_whole_frame_inputs_ahead_and_read_each_frame_once(model, monkeypatch):
    """5 objects in 256 px windows on 4 frames of 1024^2: one whole-frame model input (frame 0's, which sizes the new
    objects' windows; was 3: frames 1 and 2 prepared ahead, never used) and each frame's channel read once (frames
    0-2 were read twice)."""
    prepared = collections.Counter()
    real = frames_module.to_model_input

    def counting(unit: np.ndarray, image_size: int, mode: str = "bicubic") -> torch.Tensor:
        prepared["whole frame" if unit.shape[:2] == (SIDE, SIDE) else "crop"] += 1
        return real(unit, image_size, mode)

    monkeypatch.setattr(frames_module, "to_model_input", counting)
    data, centres = _nuclei(frames=4)
    counted = CountedReads(data)
    view = FrameView(counted, StackLayout(4, 0, channel_axis=1))
    source = FrameSource(view, image_size=model.image_size, channel=1, contrast_limits=(0, 4000))  # prefetch on
    assert not counted.keys  # limits given: no contrast sample
    session = WindowedSession(model, source, window=256)
    for obj, (y, x) in enumerate(centres, 1):
        session.add_prompt(0, obj, points=[[x, y]], labels=[1], return_logits=False)
    labels = {frame: out for frame, _, out in session.propagate(0, output="labels")}
    session.close()  # waits for any prefetch thread: everything it prepared is counted
    assert sorted(labels) == [0, 1, 2, 3]
    for t, out in labels.items():  # every object found where it is (the reads left out were not needed)
        for obj, (y, x) in enumerate(centres + t * 1.5, 1):
            assert out[int(round(y)), int(round(x))] == obj, (t, obj)
    assert prepared["whole frame"] == 1, prepared
    assert prepared["crop"] == 5 * 4, prepared
    assert counted.reads() == {(t, 1): 1 for t in range(4)}, counted.reads()


@pytest.mark.parametrize("dtype, smooth, invert", [(np.uint16, 0.0, False), (np.uint16, 1.5, True),
                                                    (np.uint8, 0.0, False), (np.uint8, 0.0, True)])
def test_input_of_a_held_frame_is_the_model_input(dtype, smooth, invert):
    """FrameSource.input_of(filtered frame) is exactly model_input(t) (the whole-frame masks that size windows use it
    on the frame the windows read)."""
    data = np.random.default_rng(7).integers(0, 250, (3, 64, 80)).astype(dtype)
    source = FrameSource(data, image_size=64, smooth=smooth, invert=invert, prefetch=0)
    for t in range(3):
        assert torch.equal(source.input_of(source.filtered(t)), source.model_input(t))


def test_what_auto_measures_reads_only_the_channel_segmented():
    """frame_seen (what "auto" input sizes and object windows measure) and the tracking size choice read channel 1
    alone from a (T, C, Y, X) stack (frame_seen read every channel); a composite reads the channels it combines; a
    given cell diameter reads no frame at all (its frame shape came from a whole-frame read)."""
    data, _ = _nuclei(frames=3, side=128, objects=2)
    counted = CountedReads(data)
    axes = resolve_axes(data.shape, channel_axis=1, channel=1)
    np.testing.assert_array_equal(frame_seen(counted, axes, 2), data[2, 1])
    assert counted.reads() == {(2, 1): 1}, counted.keys
    counted.keys.clear()
    mixed = resolve_axes(data.shape, channel_axis=1, channel="max")
    np.testing.assert_array_equal(frame_seen(counted, mixed, 1), data[1].max(axis=0))
    assert counted.reads() == {(1, "all"): 1}, counted.keys

    view = FrameView(counted, StackLayout(4, 0, channel_axis=1))
    counted.keys.clear()
    choice = auto_image_size_from(view, "demo", 0, {"channel": 1}, through_z=True)
    assert counted.keys and all(key[1] == 1 for key in counted.keys), counted.keys
    assert choice.frame_shape == (128, 128)
    counted.keys.clear()
    given = tracking_size_choice(view, "demo", 0, {"channel": 1}, cell_diameter=(20, 40))
    assert given.frame_shape == (128, 128) and not counted.keys, counted.keys
    # a plain sequence of (H, W, C) frames still works, channel picked after the read
    from napari_sam2.image_size import read_as_seen

    frames = [np.moveaxis(frame, 0, -1) for frame in data]
    np.testing.assert_array_equal(read_as_seen(frames, 1, {"channel": 0}), data[1, 0])
