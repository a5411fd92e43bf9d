"""Training code: losses against hand computations, simulated prompts, resumable runs, fine-tuning on a user's stack."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile
import torch

from sam2_model import build_model
from sam2_model.build import load_checkpoint
from sam2_model.synthetic import make_timelapse
from sam2_model.train.__main__ import main as train_main
from sam2_model.train.data import MixedClips, SyntheticClips, jittered_limits, lineage_masks, make_clip
from sam2_model.train.episode import run_episode
from sam2_model.train.loop import TrainSettings, learning_rate_factor, train
from sam2_model.train.losses import dice_loss, prediction_losses, sigmoid_focal_loss
from sam2_model.train.prompts import corrective_click, sample_box, sample_click


def test_focal_and_dice_match_hand_computation():
    logits = torch.tensor([[[[0.0, 2.0]]]])  # (1, 1, 1, 2)
    target = torch.tensor([[[[1.0, 0.0]]]])
    # pixel 1: p = 0.5, target 1: ce = ln 2, (1 - p_t)^2 = 0.25, alpha 0.25
    # pixel 2: p = sigmoid(2), target 0: ce = -ln(1 - p), (1 - p_t)^2 = p^2, weight 0.75
    p = 1 / (1 + math.exp(-2.0))
    expected_focal = (0.25 * 0.25 * math.log(2) + 0.75 * p**2 * -math.log(1 - p)) / 2
    assert sigmoid_focal_loss(logits, target).item() == pytest.approx(expected_focal, rel=1e-6)
    expected_dice = 1 - (2 * 0.5 + 1) / ((0.5 + p) + 1 + 1)
    assert dice_loss(logits, target).item() == pytest.approx(expected_dice, rel=1e-6)


def test_prediction_losses_train_the_best_mask_and_skip_absent_objects():
    target = torch.zeros(2, 1, 4, 4)
    target[0, 0, :2, :2] = 1  # object 0 present, object 1 absent
    good = torch.where(target[0:1] > 0, 10.0, -10.0)  # (1, 1, 4, 4)
    logits = torch.cat([torch.cat([-good, good], 1), torch.full((1, 2, 4, 4), -10.0)])  # (2, 2, 4, 4)
    ious = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    scores = torch.tensor([[5.0], [-5.0]])
    terms = prediction_losses(logits, ious, scores, target)
    assert terms["mask_iou"].item() == pytest.approx(1.0)  # the second mask of object 0 is the one trained
    assert terms["dice"].item() < 0.01 and terms["iou"].item() == pytest.approx(0.0, abs=1e-6)
    assert terms["object_score"].item() == pytest.approx(-math.log(1 / (1 + math.exp(-5))), rel=1e-5)


def test_clicks_boxes_and_corrections_come_from_the_right_regions():
    rng = np.random.default_rng(0)
    gt = np.zeros((40, 40), bool)
    gt[10:30, 10:30] = True
    for _ in range(20):
        x, y = sample_click(gt, rng)
        assert gt[int(y), int(x)]
    (x0, y0), (x1, y1) = sample_box(gt, rng, jitter=0.1)
    assert abs(x0 - 10) <= 2 and abs(y1 - 30) <= 2
    pred = np.zeros_like(gt)
    pred[10:30, 10:20] = True  # the right half is missed -> positive click there
    x, y, label = corrective_click(pred, gt, rng)
    assert label == 1 and gt[int(y), int(x)] and not pred[int(y), int(x)]
    pred = gt.copy()
    pred[30:38, 10:30] = True  # a false-positive band -> negative click in it
    x, y, label = corrective_click(pred, gt, rng)
    assert label == 0 and pred[int(y), int(x)] and not gt[int(y), int(x)]


def test_lineage_masks_follow_divisions():
    labels = np.zeros((2, 4, 4), np.int32)
    labels[0, 0, 0] = 1
    labels[1, 0, 0], labels[1, 3, 3], labels[1, 2, 2] = 2, 3, 4
    masks = lineage_masks(labels, [1, 4], parents={2: 1, 3: 1})
    assert masks[1, 0].sum() == 2 and masks[1, 0, 3, 3] and not masks[1, 0, 2, 2]
    assert masks[1, 1].sum() == 1 and not masks[0, 1].any()


def test_contrast_jitter_varies_some_clips_and_keeps_the_others_and_the_stream():
    """With contrast jitter about half the clips get other contrast limits; the rest, and the clips' content, are
    the clips without jitter; the same seed gives the same clips."""
    def clips(kind, jitter, count=12):
        stream = kind(1, 64, 2, seed=5, contrast_jitter=jitter)
        return [clip for clip, _ in zip(stream, range(count))]

    for kind in (SyntheticClips, MixedClips):
        plain, jittered, again = clips(kind, False), clips(kind, True), clips(kind, True)
        changed = 0
        for a, b, c in zip(plain, jittered, again):
            assert torch.equal(b.images, c.images) and torch.equal(a.masks, b.masks)  # seeded; same objects
            changed += not torch.equal(a.images, b.images)
        assert 2 <= changed <= 10, f"{kind.__name__}: {changed} of 12 clips jittered"
    stack = np.random.default_rng(0).normal(100, 10, (2, 32, 32))
    drawn = [jittered_limits(stack, seed) for seed in range(200)]
    lows = [d[0] for d in drawn if d is not None]
    assert 70 <= len(lows) <= 130  # about half
    assert min(lows) < np.percentile(stack, 0.5) < np.percentile(stack, 30) < max(lows)  # lifted grey, clipped black


def test_learning_rate_warms_up_then_decays():
    settings = TrainSettings(out="x", steps=100, warmup_steps=10, min_lr_ratio=0.1)
    assert learning_rate_factor(0, settings) == pytest.approx(0.1)
    assert learning_rate_factor(9, settings) == pytest.approx(1.0)
    assert learning_rate_factor(10, settings) == pytest.approx(1.0)
    assert learning_rate_factor(100, settings) == pytest.approx(0.1)
    assert 0.1 < learning_rate_factor(55, settings) < 1.0


def _small_settings(out, **changes) -> TrainSettings:
    base = dict(out=str(out), model="demo", image_size=64, clip_len=3, clips_per_step=1, max_objects=2,
                steps=4, warmup_steps=2, save_every=1, seed=3)
    base.update(changes)
    return TrainSettings(**base)


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    straight = train(_small_settings(tmp_path / "straight"), progress=lambda step, row: True)
    stopped = train(_small_settings(tmp_path / "resumed"), progress=lambda step, row: step < 2)
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)["step"] == 2
    resumed = train(_small_settings(tmp_path / "resumed"), progress=lambda step, row: True)
    del stopped
    for (name, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    rows = (tmp_path / "resumed" / "history.csv").read_text().splitlines()
    assert len(rows) == 1 + 4  # header + one row per step, across the interruption


def test_training_on_one_clip_lowers_its_loss():
    torch.manual_seed(0)
    model = build_model("demo", checkpoint="random", image_size=64).train()
    rng = np.random.default_rng(0)
    movie = make_timelapse(num_frames=2, shape=(64, 64), num_cells=4, seed=11, radius_fraction=0.12)
    clip = make_clip(movie.image, movie.labels, movie.parents, 64, rng, max_objects=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(25):
        terms = run_episode(model, [clip], np.random.default_rng(1))
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        losses.append(terms["total"].item())
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])


def test_fine_tuning_on_a_users_tiff_writes_loadable_weights(tmp_path, capsys):
    movie = make_timelapse(num_frames=4, shape=(64, 64), num_cells=4, seed=5, radius_fraction=0.12)
    tifffile.imwrite(tmp_path / "stack.tif", movie.image, photometric="minisblack")
    tifffile.imwrite(tmp_path / "labels.tif", movie.labels, photometric="minisblack")
    start = build_model("demo", checkpoint="random", image_size=64)
    torch.save({"model": start.state_dict()}, tmp_path / "start.pt")
    code = train_main(["--out", str(tmp_path / "run"), "--image-size", "64", "--init", str(tmp_path / "start.pt"),
                       "--stack", str(tmp_path / "stack.tif"), "--labels", str(tmp_path / "labels.tif"),
                       "--steps", "2", "--clip-len", "3", "--clips-per-step", "1", "--threads", "1"])
    assert code == 0
    # the finished run tracked the stack's cells with the starting and the tuned weights, and said so
    assert "tracked IoU on the stack's first 4 frames, 4 objects clicked: " in capsys.readouterr().out
    tuned = build_model("demo", checkpoint="random", image_size=64)
    load_checkpoint(tuned, tmp_path / "run" / "weights.pt")  # strict, official layout
    changed = [k for k, v in tuned.state_dict().items() if not torch.equal(v, start.state_dict()[k])]
    assert changed, "two optimiser steps changed no parameter"


def test_training_data_errors_say_what_to_do(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 32, 32), np.uint16), photometric="minisblack")
    tifffile.imwrite(tmp_path / "labels.tif", np.zeros((3, 32, 32), np.int32), photometric="minisblack")
    with pytest.raises(ValueError, match="annotate at least one object"):
        train(_small_settings(tmp_path / "run", stack=str(tmp_path / "stack.tif"), labels=str(tmp_path / "labels.tif")))
    with pytest.raises(ValueError, match="give both"):
        train(_small_settings(tmp_path / "run2", stack=str(tmp_path / "stack.tif")))
    with pytest.raises(ValueError, match=">= 1"):
        next(iter(SyntheticClips(2, 64, 1, seed=0)))


def test_positional_init_ties_decoder_queries_and_keys_only_for_random_starts(tmp_path):
    model = train(_small_settings(tmp_path / "run", steps=0), progress=lambda step, row: True)
    layer = model.sam_mask_decoder.transformer.layers[0].cross_attn_image_to_token
    assert torch.equal(layer.q_proj.weight, layer.k_proj.weight)
    torch.save({"model": build_model("demo", checkpoint="random", image_size=64).state_dict()}, tmp_path / "w.pt")
    tuned = train(_small_settings(tmp_path / "run2", steps=0, init=str(tmp_path / "w.pt")), progress=lambda s, r: True)
    layer = tuned.sam_mask_decoder.transformer.layers[0].cross_attn_image_to_token
    assert not torch.equal(layer.q_proj.weight, layer.k_proj.weight)


def test_memory_attention_locality_init_on_request(tmp_path):
    torch.save({"model": build_model("demo", checkpoint="random", image_size=64).state_dict()}, tmp_path / "w.pt")
    plain = train(_small_settings(tmp_path / "a", steps=0, init=str(tmp_path / "w.pt")), progress=lambda s, r: True)
    local = train(_small_settings(tmp_path / "b", steps=0, init=str(tmp_path / "w.pt"), memory_positional_init=1),
                  progress=lambda s, r: True)
    cross = local.memory_attention.layers[0].cross_attn_image
    assert torch.all(cross.q_proj.bias == 0.5) and torch.all(cross.k_proj.bias == 0.5)
    assert not torch.all(plain.memory_attention.layers[0].cross_attn_image.q_proj.bias == 0.5)


def test_resuming_after_a_kill_drops_history_rows_past_the_checkpoint(tmp_path):
    train(_small_settings(tmp_path / "run", steps=2), progress=lambda step, row: True)
    history = tmp_path / "run" / "history.csv"
    with history.open("a") as handle:  # a step that was logged, then the process was killed before saving
        handle.write("3,9.9,0.001,1.0,0.1,0.1,0.1,0.1,0.5\n")
    train(_small_settings(tmp_path / "run", steps=3), progress=lambda step, row: True)
    steps = [line.split(",")[0] for line in history.read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3"]


def test_learning_curve_draws_each_run_after_the_other(tmp_path):
    import xml.etree.ElementTree as ET

    from sam2_model.train.curve import main as curve_main

    train(_small_settings(tmp_path / "image", clip_len=1, steps=3), progress=lambda step, row: True)
    train(_small_settings(tmp_path / "video", steps=2), progress=lambda step, row: True)
    out = tmp_path / "curve.svg"
    assert curve_main([str(tmp_path / "image"), str(tmp_path / "video"), "-o", str(out), "--window", "2",
                       "--labels", "single frame", "video"]) == 0
    svg = ET.parse(out).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    lines = svg.findall(f"{ns}polyline")
    assert len(lines) == 2  # loss and IoU
    assert all(len(line.get("points").split()) == 3 + 2 for line in lines)  # one point per step of both runs
    texts = [t.text for t in svg.findall(f"{ns}text")]
    assert "single frame" in texts and "video" in texts
    with pytest.raises(SystemExit):
        curve_main([str(tmp_path / "image"), "-o", str(out), "--labels", "a", "b"])


def test_on_off_training_flags_are_bools_and_old_spellings_still_work():
    from sam2_model.train.__main__ import parse_args

    settings = parse_args(["--out", "x", "--positional-init", "no", "--memory-positional-init", "auto"])
    assert settings.positional_init is False and settings.memory_positional_init is None
    assert parse_args(["--out", "x", "--memory-positional-init", "1"]).memory_positional_init is True
    assert parse_args(["--out", "x"]).positional_init is True
    old = TrainSettings(out="x", positional_init=0, memory_positional_init=-1)  # as older runs saved them
    assert old.positional_init is False and old.memory_positional_init is None
    assert TrainSettings(out="x", memory_positional_init=0).memory_positional_init is False
    with pytest.raises(SystemExit):
        parse_args(["--out", "x", "--positional-init", "auto"])


def test_packaged_weights_name_the_data_each_stage_trained_on():
    from sam2_model.train.data import TRAINING_DATA
    from sam2_model.train.package import training_data_description

    stages = [{"run": "first", "note": "folder lost"}, {"settings": {"data": "mix"}}, {"settings": {"data": "mix"}}]
    assert training_data_description(stages) == f"{TRAINING_DATA['nuclei']}; {TRAINING_DATA['mix']}"
    stack = {"data": "nuclei", "stack": "movie.tif", "labels": "truth.tif"}
    assert training_data_description([{"settings": stack}]) == "user stack movie.tif with labels truth.tif"
    jittered = [{"settings": {"data": "nuclei"}}, {"settings": {"data": "nuclei", "contrast_jitter": True}}]
    assert training_data_description(jittered) == (f"{TRAINING_DATA['nuclei']}; {TRAINING_DATA['nuclei']}; "
                                                    "contrast jitter on half of the clips")


def test_fine_tuning_warmup_is_a_quarter_of_the_run_up_to_50_steps() -> None:
    from sam2_model.train import fine_tuning_warmup

    assert [fine_tuning_warmup(n) for n in (1, 3, 40, 200, 1000)] == [1, 1, 10, 50, 50]


def test_train_only_trains_the_named_parts_and_leaves_the_rest_bit_identical(tmp_path):
    torch.save({"model": build_model("demo", checkpoint="random", image_size=64).state_dict()}, tmp_path / "w.pt")
    start = torch.load(tmp_path / "w.pt", weights_only=False)["model"]
    head = "sam_mask_decoder.iou_prediction_head"
    tuned = train(_small_settings(tmp_path / "run", steps=2, init=str(tmp_path / "w.pt"), train_only=head),
                  progress=lambda s, r: True)
    changed = {k for k, v in tuned.state_dict().items() if not torch.equal(v, start[k])}
    assert changed and all(k.startswith(head + ".") for k in changed), sorted(changed)[:5]
    # a resumed run keeps the choice (the optimiser's groups must match the checkpoint's)
    resumed = train(_small_settings(tmp_path / "run", steps=3, init=str(tmp_path / "w.pt"), train_only=head),
                    progress=lambda s, r: True)
    again = {k for k, v in resumed.state_dict().items() if not torch.equal(v, start[k])}
    assert all(k.startswith(head + ".") for k in again)


def test_train_only_names_what_it_accepts_before_writing_anything(tmp_path):
    with pytest.raises(ValueError, match="names no parameter.*sam_mask_decoder"):
        train(_small_settings(tmp_path / "run", train_only="sam_mask_decoder.iou_head"))
    with pytest.raises(ValueError, match="no parameter-name prefix"):
        train(_small_settings(tmp_path / "run", train_only=" , "))
    assert not (tmp_path / "run").exists()
    assert train_main(["--out", str(tmp_path / "cli"), "--train-only", "nope", "--steps", "1"]) == 2
    assert not (tmp_path / "cli").exists()


def _dihedral_index(view: np.ndarray, original: np.ndarray) -> int:
    """Which of the 8 symmetries of the square turns ``original`` (H, W) into ``view`` (-1: none)."""
    for index in range(8):
        candidate = np.rot90(original, index % 4)
        if index >= 4:
            candidate = candidate[:, ::-1]
        if candidate.shape == view.shape and np.array_equal(candidate, view):
            return index
    return -1


def test_random_view_turns_and_mirrors_every_frame_of_a_clip_alike():
    from sam2_model.train.data import random_view

    rng = np.random.default_rng(0)
    labels = np.zeros((3, 40, 56), np.int32)
    for t in range(3):  # an object moving right; a second one still
        labels[t, 5:15, 4 + 6 * t:16 + 6 * t] = 1
        labels[t, 25:37, 40:50] = 2
    frames = (labels * 100 + rng.integers(0, 50, labels.shape)).astype(np.uint16)
    seen = set()
    for _ in range(200):
        view, view_labels = random_view(frames, labels, rng)
        index = _dihedral_index(view[0], frames[0])
        assert index >= 0 and all(_dihedral_index(view[t], frames[t]) == index for t in range(3))
        assert all(_dihedral_index(view_labels[t], labels[t]) == index for t in range(3))
        seen.add(index)
    assert seen == set(range(8))


def test_stack_clips_augment_only_when_asked_and_the_settings_reach_them():
    from sam2_model.train.data import StackClips
    from sam2_model.train.loop import make_clips

    movie = make_timelapse(num_frames=4, shape=(64, 80), seed=5)
    plain = StackClips(movie.image, movie.labels, 3, 64, 2, seed=3)
    again = StackClips(movie.image, movie.labels, 3, 64, 2, seed=3)
    viewed = StackClips(movie.image, movie.labels, 3, 64, 2, seed=3, augment=True)
    first, second, third = (list(zip(range(6), clips)) for clips in (plain, again, viewed))
    assert all(torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
               for (_, a), (_, b) in zip(first, second))
    assert any(not torch.equal(a.images, c.images) for (_, a), (_, c) in zip(first, third))
    assert all(c.images.shape[-2:] == (64, 64) and c.masks.shape[-2:] == (64, 64) for _, c in third)
    settings = TrainSettings(out="x", clip_len=3, max_objects=2)
    assert settings.augment is True
    assert make_clips(settings, 64, movie.image, movie.labels).augment
    assert not make_clips(TrainSettings(out="x", augment=False), 64, movie.image, movie.labels).augment



def test_stack_clips_leave_out_objects_too_small_for_the_model_input():
    """An annotated object of 16 px in a 512 x 512 frame falls between the samples of a 64 px input: it is left out
    of the clip (a click on it would have nothing to land on), and a stack of nothing else is refused by name."""
    from sam2_model.train.data import StackClips

    labels = np.zeros((2, 512, 512), np.int32)
    labels[:, 1:5, 1:5] = 1  # between the nearest-neighbour samples (every 8th pixel from 0)
    frames = (labels * 200 + 10).astype(np.uint8)
    with pytest.raises(ValueError, match="no annotated object is left once the 512 x 512 frames are resized"):
        StackClips(frames, labels, 2, 64, 2)
    labels[:, 100:180, 200:300] = 2
    frames = (labels * 100 + 10).astype(np.uint8)
    for _, clip in zip(range(10), StackClips(frames, labels, 2, 64, 2, seed=4)):
        assert clip.num_objects == 1 and bool(clip.present[0].all())


@pytest.mark.parametrize("field, value", [("save_every", 0), ("steps", -1), ("clip_len", 0), ("clips_per_step", 2.5),
                                          ("max_objects", True), ("lr", 0.0)])
def test_settings_out_of_range_are_refused_by_name(tmp_path, field, value):
    """A bad number fails when the settings are made, naming the field, not later as a division by zero."""
    with pytest.raises(ValueError, match=f"^{field} must be"):
        TrainSettings(out=str(tmp_path / "run"), **{field: value})
