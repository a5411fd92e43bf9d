"""VideoSession mechanics with a real (random-weight) model: ids, order, corrections, cache, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sam2_model as sm
from sam2_model.frames import FrameSource
from sam2_model.postprocess import fill_holes
from sam2_model.video_session import VideoSession

SIZE = 128


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return sm.build_model("sam2.1_hiera_tiny", device="cpu", image_size=SIZE)


@pytest.fixture
def frames():
    rng = np.random.default_rng(0)
    return rng.integers(0, 4000, (6, 60, 80)).astype(np.uint16)


def run(session, **kwargs):
    return [(frame, ids, logits) for frame, ids, logits in session.propagate(**kwargs)]


def test_prompts_propagation_order_and_shapes(model, frames):
    session = VideoSession(model, frames)
    first = session.add_prompt(2, 7, points=[[10, 20]], labels=[1])
    assert first.shape == (1, 60, 80) and first.dtype == np.float32
    both = session.add_prompt(2, 3, box=[30, 10, 60, 50])
    assert both.shape == (2, 60, 80) and session.obj_ids == [7, 3]
    np.testing.assert_array_equal(both[0], first[0])  # adding object 3 leaves object 7 alone
    forward = run(session)
    assert [f for f, _, _ in forward] == [2, 3, 4, 5]  # from the earliest prompted frame
    assert all(ids == [7, 3] and lg.shape == (2, 60, 80) for _, ids, lg in forward)
    backward = run(session, start_frame=2, reverse=True)
    assert [f for f, _, _ in backward] == [2, 1, 0]
    limited = run(session, start_frame=0, max_frames=2)
    assert [f for f, _, _ in limited] == [0, 1, 2]
    # The prompted frame's output is the prompt's result, also after propagation.
    np.testing.assert_array_equal(forward[0][2], both)


def test_reuses_cached_features_when_repropagating(model, frames):
    session = VideoSession(model, frames, feature_cache_mb=512)
    session.add_prompt(0, 1, points=[[10, 20]], labels=[1])
    run(session)
    misses = session.features.misses
    session.add_prompt(4, 1, points=[[40, 30]], labels=[0], clear_old=False)
    run(session)
    assert session.features.misses == misses  # nothing was encoded twice


def test_feature_cache_stays_within_its_budget(model, frames):
    session = VideoSession(model, frames, feature_cache_mb=1.0)
    session.add_prompt(0, 1, points=[[10, 20]], labels=[1])
    run(session)
    assert len(session.features) >= 1
    assert session.features.nbytes <= max(1.0 * 1024 * 1024, one_frame_bytes(model, frames))


def one_frame_bytes(model, frames):
    """Bytes of one frame's cached features: a session with the default budget after one frame was encoded."""
    one = VideoSession(model, frames)
    one.add_prompt(0, 1, points=[[10, 20]], labels=[1])
    assert len(one.features) == 1
    return one.features.nbytes


def test_new_object_after_propagation_and_remove_and_reset(model, frames):
    session = VideoSession(model, frames)
    session.add_prompt(0, 1, points=[[10, 20]], labels=[1])
    run(session)
    prompt = np.pad(np.ones((10, 10), bool), ((20, 30), (30, 40)))
    session.add_prompt(3, 2, mask=prompt)
    steps = run(session)
    assert steps[0][1] == [1, 2]
    output = dict((f, lg) for f, _, lg in steps)[3][1] > 0
    # A mask prompt is output as given, up to the low-res (stride 4) round trip at its corners.
    assert (output & prompt).sum() / (output | prompt).sum() > 0.9
    assert session.remove_object(1) == [2]
    with pytest.raises(ValueError, match="unknown object id 1"):
        session.remove_object(1)
    session.reset()
    assert session.obj_ids == []
    with pytest.raises(ValueError, match="call add_prompt first"):
        session.propagate()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(frame_idx=6, obj_id=1, points=[[1, 1]], labels=[1]), "valid frames are 0..5"),
        (dict(frame_idx=0, obj_id=0, points=[[1, 1]], labels=[1]), "obj_id must be a positive integer"),
        (dict(frame_idx=0, obj_id=1, points=[[100, 1]], labels=[1]), "outside the 80x60 frame"),
        (dict(frame_idx=0, obj_id=1, points=[[1, 1]], labels=[2]), "labels must be 1 .positive. or 0"),
        (dict(frame_idx=0, obj_id=1, points=[[1, 1], [2, 2]], labels=[1]), "2 points but 1 labels"),
        (dict(frame_idx=0, obj_id=1, points=[[1, 1]]), "points and labels must be given together"),
        (dict(frame_idx=0, obj_id=1, box=[50, 10, 20, 30]), "x0 <= x1"),
        (dict(frame_idx=0, obj_id=1, mask=np.ones((5, 5), bool)), r"\(H, W\) = \(60, 80\)"),
        (dict(frame_idx=0, obj_id=1), "needs points with labels, a box, or a mask"),
        (dict(frame_idx=0, obj_id=1, box=[1, 1, 5, 5], clear_old=False), "clear_old=True"),
        (dict(frame_idx=0, obj_id=2, points=np.zeros((0, 2)), labels=np.zeros(0)), "points are empty and there is no box"),
    ],
)
def test_bad_prompts_leave_the_session_usable(model, frames, kwargs, match):
    reference = VideoSession(model, frames)
    reference.add_prompt(0, 1, points=[[10, 20]], labels=[1])
    expected = run(reference)
    session = VideoSession(model, frames)
    session.add_prompt(0, 1, points=[[10, 20]], labels=[1])
    with pytest.raises(ValueError, match=match):
        session.add_prompt(**kwargs)
    assert session.obj_ids == [1]
    for (f1, _, a), (f2, _, b) in zip(run(session), expected):
        assert f1 == f2
        np.testing.assert_array_equal(a, b)


def test_bad_propagate_arguments(model, frames):
    session = VideoSession(model, frames)
    session.add_prompt(0, 1, points=[[10, 20]], labels=[1])
    with pytest.raises(ValueError, match="valid frames"):
        session.propagate(start_frame=9)
    with pytest.raises(ValueError, match="max_frames"):
        session.propagate(max_frames=-1)


def test_fill_holes_on_hand_built_masks():
    logits = torch.full((1, 1, 12, 12), -5.0)
    logits[0, 0, 1:11, 1:11] = 5.0
    logits[0, 0, 3:5, 3:5] = -5.0  # a 4-pixel hole
    logits[0, 0, 6:9, 6:9] = -5.0  # a 9-pixel hole
    filled = fill_holes(logits, max_area=8)
    assert (filled[0, 0, 3:5, 3:5] == 0.1).all()
    assert (filled[0, 0, 6:9, 6:9] == -5.0).all()
    assert (filled[0, 0, 0] == -5.0).all()  # the outer background is large: kept
    diagonal = torch.full((1, 1, 5, 5), 5.0)
    diagonal[0, 0, 1, 1] = diagonal[0, 0, 2, 2] = -1.0  # 8-connected: one hole of area 2
    assert (fill_holes(diagonal, max_area=2)[0, 0].diagonal()[1:3] == 0.1).all()
    assert torch.equal(fill_holes(logits, 0), logits)


def test_released_memories_are_recomputed_exactly(model):
    frames = np.random.default_rng(3).integers(0, 4000, (14, 60, 80)).astype(np.uint16)
    outputs = {}
    for release in (True, False):
        session = VideoSession(model, frames, release_memory=release)
        session.add_prompt(0, 1, points=[[10, 20]], labels=[1])
        run(session)
        if release:
            bank = session.memory_bank(1)
            assert bank.prompted == (0,) and bank.tracked == tuple(range(1, 14))
            assert bank.released == tuple(range(1, 13 - 7))  # only frames beyond the recent-memory window
        # A correction on frame 4 reads the (released, so recomputed) memories of frames 1..3.
        session.add_prompt(4, 1, points=[[50, 30]], labels=[0], clear_old=False)
        outputs[release] = [lg for _, _, lg in session.propagate(start_frame=4, max_frames=6)]
    for a, b in zip(outputs[True], outputs[False]):
        np.testing.assert_array_equal(a, b)


def test_correction_options(model, frames):
    """corrections_as_conditioning keeps a correction as a prompted frame; clearing forgets stale memory."""
    plain = VideoSession(model, frames)
    sticky = VideoSession(model, frames, corrections_as_conditioning=True, clear_memory_around_corrections=True)
    for session in (plain, sticky):
        session.add_prompt(0, 1, points=[[10, 20]], labels=[1])
        run(session)
        session.add_prompt(3, 1, points=[[40, 30]], labels=[0], clear_old=False)
        session.propagate(start_frame=3)  # commits the correction
    assert 3 in plain.memory_bank(1).tracked and 3 not in plain.memory_bank(1).prompted
    assert sticky.memory_bank(1).prompted == (0, 3)
    # Tracked memories within num_maskmem (7) frames of the correction were forgotten.
    assert not set(sticky.memory_bank(1).tracked) & set(range(0, 6))
    assert set(plain.memory_bank(1).tracked) == {1, 2, 3, 4, 5}


def test_smoothing_is_given_once():
    """smooth= is the session's or its FrameSource's, not two different values."""
    from sam2_model.frames import FrameSource

    model = sm.build_model("demo", device="cpu")
    frames = np.zeros((2, 32, 32), np.uint8)
    assert VideoSession(model, frames, smooth=2).frames.smooth == 2.0
    source = FrameSource(frames, image_size=model.image_size, smooth=1.0)
    assert VideoSession(model, source).frames.smooth == 1.0
    with pytest.raises(ValueError, match="give smooth= to the FrameSource"):
        VideoSession(model, source, smooth=3)


@pytest.mark.parametrize("threads", [None, 1])
def test_recomputed_high_res_logits_equal_the_decoders(threads):
    """A released memory is recomputed from the chosen mask's low-res logits: upsampled as the SAM heads
    did it, among three masks, the high-res logits are the decoder's to the bit, also on one CPU thread,
    where PyTorch's bilinear kernel rounds a 3-channel tensor unlike a 1-channel one (conftest restores threads)."""
    from sam2_model.modeling.sam2 import upsample_as_decoded

    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(1)
    size = 256
    model = sm.build_model("sam2.1_hiera_tiny", device="cpu", image_size=size)
    image = np.random.default_rng(5).integers(0, 255, (size, size)).astype(np.uint8)
    with torch.inference_mode():
        features = model.encode_image(FrameSource(image[None], image_size=size).model_input(0)[None])
        prediction = model.predict_masks(features.image_embed, features.high_res, multimask=True)
    assert prediction.multimask_logits.shape[1] == 3
    again = upsample_as_decoded(prediction.low_res_logits, size, decoded_masks=3)
    assert torch.equal(again, prediction.high_res_logits)
