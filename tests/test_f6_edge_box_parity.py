"""Boxes on the frame's pixel edges: VideoSession against Meta's SAM2VideoPredictor, bit for bit.

A frame of W columns spans x in [-0.5, W - 0.5] as napari draws it, and a session takes box corners from -0.5 up to W
(prompt_validation.validate_box). These are the boxes a person drags at the border of an image: past the first pixel's
centre (x0 < 0), past the last one (x1 > W - 1), the whole frame by its pixel edges and counted in pixels, one pixel
thin along an edge; alone and with clicks. The frame is not square and not the model's size, so the corners are scaled
unequally in x and y (x / W * S) before the prompt encoder, as the reference does.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oracle import reference_model, require_oracle, share_weights
from test_parity_video import _promote_reference_memory
from sam2_model.frames import FrameSource
from sam2_model.video_session import VideoSession

SIZE = 256  # the model's input
HEIGHT, WIDTH = 90, 120  # the frames: not square, not the model's size
NUM_FRAMES = 4


def edge_blobs(num_frames: int = NUM_FRAMES) -> np.ndarray:
    """uint8 (T, H, W, 3): bright blobs cut by the left, right and bottom edges, drifting a little."""
    yy, xx = np.mgrid[:HEIGHT, :WIDTH].astype(np.float32)
    frames = []
    for t in range(num_frames):
        image = 15 + 20 * yy / HEIGHT
        for cx, cy, r in ((2 + t, 30, 12), (WIDTH - 3 - t, 55, 14), (60, HEIGHT - 2, 11)):
            image = image + 190 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r**2))
        frames.append(np.clip(image, 0, 255).astype(np.uint8))
    return np.repeat(np.stack(frames)[..., None], 3, axis=-1)


W, H = float(WIDTH), float(HEIGHT)
# (name, box (x0, y0, x1, y1), clicks (x, y), labels): every box touches or crosses an edge of the frame
EDGE_PROMPTS = [
    ("whole frame by pixel edges", (-0.5, -0.5, W - 0.5, H - 0.5), None, None),
    ("whole frame in pixels", (0.0, 0.0, W, H), None, None),
    ("left edge, x0 < 0", (-0.3, 15.0, 16.0, 46.0), None, None),
    ("right edge, x1 = W", (W - 20.0, 38.0, W, 72.0), None, None),
    ("bottom-left corner, both past the centres", (-0.5, H - 12.0, 40.0, H), None, None),
    ("1 px thin on the left edge", (-0.5, 20.0, 0.5, 40.0), None, None),
    ("1 px thin on the bottom edge", (45.0, H - 1.5, 75.0, H - 0.5), None, None),
    ("right edge with a click", (W - 22.0, 40.0, W - 0.5, 70.0), [[W - 1.0, 55.0]], [1]),
    ("whole frame with a click and a negative click", (-0.5, -0.5, W - 0.5, H - 0.5),
     [[60.0, H - 1.0], [-0.5, -0.5]], [1, 0]),
    ("1 px thin on the right edge with a click", (W - 1.5, 45.0, W - 0.5, 65.0), [[W - 1.0, 55.0]], [1]),
]


def _reference_state(predictor, tmp_path, inputs: torch.Tensor):
    """The reference's inference state for frames of HEIGHT x WIDTH whose model inputs are exactly ours."""
    from PIL import Image

    folder = tmp_path / "jpg"
    folder.mkdir()
    for t in range(inputs.shape[0]):
        Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(folder / f"{t:05d}.jpg")
    state = predictor.init_state(str(folder))
    assert (state["video_height"], state["video_width"]) == (HEIGHT, WIDTH)
    state["images"] = inputs.clone()
    state["cached_features"] = {}
    return state


def _assert_identical(ours: np.ndarray, theirs: torch.Tensor, what: str) -> None:
    theirs = theirs[:, 0].float().numpy()
    assert ours.shape == theirs.shape == (ours.shape[0], HEIGHT, WIDTH), what
    abs_err = float(np.abs(ours - theirs).max())
    pixels = int(((ours > 0) != (theirs > 0)).sum())
    assert abs_err == 0.0 and pixels == 0, f"{what}: max |logit difference| {abs_err:.3e}, {pixels} mask pixels differ"


@pytest.fixture(scope="module")
def demo_pair():
    require_oracle()
    predictor = reference_model("demo", image_size=SIZE, video=True)
    predictor.fill_hole_area = 0  # the reference skips hole filling on CPU anyway
    _promote_reference_memory(predictor)  # its CPU dtype bug for an object tracked back from its prompt
    return predictor, share_weights("demo", predictor, SIZE)


def test_edge_box_prompts_match_reference(demo_pair, tmp_path):
    """Each edge box (alone or with clicks) prompts its own object on one frame: after each prompt, every object's
    logits equal the reference's bit for bit (one image encoding for all ten cases)."""
    predictor, model = demo_pair
    source = FrameSource(edge_blobs(1), image_size=SIZE)
    state = _reference_state(predictor, tmp_path, source.model_input(0)[None])
    session = VideoSession(model, source, fill_hole_area=0, batch_objects=False)
    with torch.inference_mode():
        for obj_id, (name, box, points, labels) in enumerate(EDGE_PROMPTS, start=1):
            kwargs = {"box": np.array(box, np.float32)}
            if points is not None:
                kwargs.update(points=np.array(points, np.float32), labels=np.array(labels, np.int32))
            _, ref_ids, theirs = predictor.add_new_points_or_box(state, 0, obj_id, **kwargs)
            ours = session.add_prompt(0, obj_id, **kwargs)
            assert list(ref_ids) == session.obj_ids == list(range(1, obj_id + 1))
            assert (theirs[-1] > 0).any(), f"{name}: the reference's mask is empty, the case tests nothing"
            _assert_identical(ours, theirs, name)


def test_edge_boxes_tracked_match_reference(demo_pair, tmp_path):
    """Three objects boxed on three edges of frame 0 (one with a click), one more boxed on the last frame, tracked
    forward and back: every frame's logits equal the reference's bit for bit."""
    predictor, model = demo_pair
    source = FrameSource(edge_blobs(), image_size=SIZE)
    state = _reference_state(predictor, tmp_path, torch.stack([source.model_input(t) for t in range(NUM_FRAMES)]))
    session = VideoSession(model, source, fill_hole_area=0, batch_objects=False)

    def both_prompt(frame, obj, box, points=None, labels=None):
        kwargs = {"box": np.array(box, np.float32)}
        if points is not None:
            kwargs.update(points=np.array(points, np.float32), labels=np.array(labels, np.int32))
        _, ref_ids, theirs = predictor.add_new_points_or_box(state, frame, obj, **kwargs)
        ours = session.add_prompt(frame, obj, **kwargs)
        assert list(ref_ids) == session.obj_ids
        _assert_identical(ours, theirs, f"box {box} on frame {frame}")

    def both_propagate(**kwargs):
        ref_steps = list(predictor.propagate_in_video(
            state, start_frame_idx=kwargs.get("start_frame"), reverse=kwargs.get("reverse", False)))
        our_steps = list(session.propagate(**kwargs))
        assert [s[0] for s in our_steps] == [s[0] for s in ref_steps]
        for (frame, ids, ours), (_, ref_ids, theirs) in zip(our_steps, ref_steps):
            assert ids == list(ref_ids)
            _assert_identical(ours, theirs, f"propagate {kwargs} frame {frame}")

    with torch.inference_mode():
        both_prompt(0, 1, (-0.5, 15.0, 16.0, 46.0))
        both_prompt(0, 2, (W - 20.0, 38.0, W, 72.0), [[W - 1.0, 55.0]], [1])
        both_prompt(0, 3, (44.0, H - 14.0, 76.0, H - 0.5))
        both_propagate()
        both_prompt(NUM_FRAMES - 1, 4, (-0.5, -0.5, W - 0.5, H - 0.5))
        both_propagate(start_frame=NUM_FRAMES - 1, reverse=True)


@pytest.mark.parametrize("box", [(-0.6, 10.0, 20.0, 40.0), (100.0, 10.0, W + 0.1, 40.0), (10.0, -1.0, 20.0, H + 1.0)])
def test_box_past_the_edges_is_refused_before_any_change(demo_pair, box):
    """A box further out than the frame's pixel edges (-0.5 .. W, which the reference would take unclipped) is refused
    by a ValueError naming the box and the accepted corners, and the session stays empty."""
    _, model = demo_pair
    session = VideoSession(model, FrameSource(edge_blobs(1), image_size=SIZE), fill_hole_area=0)
    with pytest.raises(ValueError, match=r"extends outside the 120x90 frame.*-0\.5 <= x <= 119\.5"):
        session.add_prompt(0, 1, box=np.array(box, np.float32))
    assert session.obj_ids == []
