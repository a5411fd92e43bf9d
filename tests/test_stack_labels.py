"""What a user's label stack says before fine-tuning: annotated frames, cells not annotated on a frame, ids that
do or do not follow the cells; and the clips, losses and runs that follow from it."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import tifffile
import torch

from sam2_model.synthetic import make_timelapse
from sam2_model.train.ctc_training import tracking_ids
from sam2_model.train.data import StackClips
from sam2_model.train.losses import prediction_losses
from sam2_model.train.stack_labels import (
    annotated_frames,
    annotated_spans,
    check_ids_follow_cells,
    frame_list,
    link_by_overlap,
    not_annotated,
    relabelled_cells,
)

MSC = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ctc-msc"


def _painted_frame_by_frame(labels: np.ndarray) -> np.ndarray:
    """The same cells, each frame painted on its own as napari numbers new labels: ids 1..n on frame 0, n+1.. on
    frame 1, and so on, in another order on each frame."""
    out, next_id = np.zeros_like(labels), 1
    for t, frame in enumerate(labels):
        ids = np.unique(frame[frame > 0])
        for obj_id in ids[::-1] if t % 2 else ids:
            out[t][frame == obj_id] = next_id
            next_id += 1
    return out


def test_annotated_frames_and_their_compact_list():
    labels = np.zeros((12, 8, 8), np.int32)
    for t in (0, 1, 2, 5, 9, 10):
        labels[t, 2, 2] = 3
    assert annotated_frames(labels).tolist() == [0, 1, 2, 5, 9, 10]
    assert frame_list(annotated_frames(labels)) == "0-2, 5, 9-10"
    assert frame_list(np.array([4])) == "4" and annotated_frames(np.zeros((3, 4, 4), int)).size == 0


def test_tracked_ids_pass_and_frame_by_frame_painting_is_refused_by_name():
    movie = make_timelapse(num_frames=6, shape=(128, 128), seed=5)
    frames = annotated_frames(movie.labels)
    assert all(pair.matched > 0 and pair.relabelled == 0 for pair in relabelled_cells(movie.labels, frames))
    check_ids_follow_cells(movie.labels, frames)  # no error
    painted = _painted_frame_by_frame(movie.labels)
    pair = relabelled_cells(painted, frames)[0]
    assert (pair.first, pair.second) == (0, 1) and pair.relabelled == pair.matched > 0
    with pytest.raises(ValueError, match=r"object ids do not follow the cells through time: between frames 0 and 1, "
                                         r"\d+ of the \d+ cells that stay in place carry another id"):
        check_ids_follow_cells(painted, frames)


def test_a_daughter_under_its_mothers_place_is_no_relabelling_when_the_lineage_is_given():
    labels = np.zeros((2, 40, 40), np.int32)
    labels[0, 10:30, 10:30] = 1
    labels[1, 10:30, 10:27] = 2  # most of the mother's place: a daughter (or, without a lineage, a new id)
    labels[1, 10:30, 28:30] = 3
    frames = np.arange(2)
    assert relabelled_cells(labels, frames)[0].relabelled == 1
    assert relabelled_cells(labels, frames, parents={2: 1, 3: 1})[0].relabelled == 0
    check_ids_follow_cells(labels, frames, parents={2: 1, 3: 1})


def test_a_cell_missing_between_two_annotated_frames_is_not_annotated_there_and_gone_after_its_last():
    labels = np.zeros((6, 16, 16), np.int32)
    labels[[0, 1, 3], 2:6, 2:6] = 1  # annotated on 0, 1 and 3: not annotated on 2, gone from 4
    labels[[0, 1, 2, 3, 4, 5], 9:13, 9:13] = 2
    spans = annotated_spans(labels)
    assert spans == {1: (0, 3), 2: (0, 5)}
    present = (labels == 1).any(axis=(1, 2))
    order = np.arange(6)
    assert not_annotated(present, order, [1], spans).tolist() == [False, False, True, False, False, False]
    assert not not_annotated((labels == 2).any(axis=(1, 2)), order, [2], spans).any()
    # a reversed clip of frames 3, 2, 1: the same frame, wherever it falls in the clip
    assert not_annotated(present[[3, 2, 1]], np.array([3, 2, 1]), [1], spans).tolist() == [False, True, False]
    # a descendant annotated later stretches its mother's span
    assert not_annotated(present, order, [1, 7], {**spans, 7: (5, 5)}).tolist() == [False, False, True, False, True,
                                                                                   False]


def test_stack_clips_run_over_the_annotated_frames_only():
    """A stack of 10 frames annotated on 3: a blank frame would tell the model that every cell left."""
    movie = make_timelapse(num_frames=10, shape=(64, 64), num_cells=3, seed=3, radius_fraction=0.12)
    labels = movie.labels.copy()
    labels[[1, 2, 4, 5, 6, 8, 9]] = 0
    clips = StackClips(movie.image, labels, 3, 64, 2, seed=1)
    assert clips.frames.tolist() == [0, 3, 7] and clips.total_frames == 10 and len(clips.stack) == 3
    np.testing.assert_array_equal(clips.stack, movie.image[[0, 3, 7]])
    for _, clip in zip(range(8), clips):
        assert clip.num_frames == 3 and bool(clip.present.all())


def test_stack_clips_mark_cells_not_annotated_on_a_frame_and_refuse_painted_ids():
    movie = make_timelapse(num_frames=4, shape=(64, 64), num_cells=3, seed=3, radius_fraction=0.12)
    labels = movie.labels.copy()
    kept = int(np.unique(labels[1][labels[1] > 0])[0])
    labels[1][(labels[1] > 0) & (labels[1] != kept)] = 0  # frame 1: one cell annotated, the others not
    clips = StackClips(movie.image, labels, 4, 64, 3, seed=2)
    clip = next(iter(clips))
    assert clip.unknown is not None and clip.unknown.shape == clip.present.shape
    # exactly the cells missing from frame 1 (whichever end of the clip it is) are unknown, and only there
    assert torch.equal(clip.unknown, ~clip.present)
    assert int(clip.unknown.any(dim=1).sum()) == 1
    with pytest.raises(ValueError, match="object ids do not follow the cells"):
        StackClips(movie.image, _painted_frame_by_frame(movie.labels), 4, 64, 3)
    StackClips(movie.image, _painted_frame_by_frame(movie.labels), 1, 64, 3)  # single frames: ids do not matter


def test_an_object_not_annotated_adds_no_presence_loss():
    torch.manual_seed(0)
    logits, ious, scores = torch.randn(2, 3, 8, 8), torch.rand(2, 3), torch.randn(2, 1)
    target = torch.zeros(2, 1, 8, 8)
    target[0, 0, 2:5, 2:5] = 1  # object 0 present; object 1 has an empty target
    gone = prediction_losses(logits, ious, scores, target)
    unknown = prediction_losses(logits, ious, scores, target, unknown=torch.tensor([False, True]))
    alone = prediction_losses(logits[:1], ious[:1], scores[:1], target[:1])
    for key in ("focal", "dice", "iou", "mask_iou"):
        assert torch.allclose(unknown[key], gone[key])
    # the presence term counts object 0 alone (averaged over both rows, as the other terms are)
    assert torch.allclose(unknown["object_score"], alone["object_score"] / 2)
    assert unknown["object_score"] < gone["object_score"]


def test_a_run_on_a_partly_annotated_stack_says_which_frames_it_trained_on(tmp_path):
    from sam2_model.train.loop import TrainSettings, train

    movie = make_timelapse(num_frames=6, shape=(64, 64), num_cells=3, seed=3, radius_fraction=0.12)
    labels = movie.labels.copy()
    labels[[3, 4, 5]] = 0
    settings = TrainSettings(out=str(tmp_path / "run"), model="demo", image_size=64, steps=2, clip_len=3,
                             clips_per_step=1, max_objects=2, warmup_steps=1, device="cpu")
    train(settings, stack=movie.image, labels=labels)
    metadata = json.loads((tmp_path / "run" / "weights.json").read_text())
    assert ("user stack of 6 x 64 x 64 frames given as arrays, with its labels; its 3 annotated frames (0-2), "
            "those with no label left out") in metadata["data"]
    assert metadata["stack_check"]["frames"] == 3


@pytest.mark.skipif(not MSC.is_dir(), reason="the shared Cell Tracking Challenge data is not beside the repo")
def test_the_challenges_segmentation_truth_needs_its_tracking_ids():
    """CTC segmentation ground truth numbers the cells of each frame on its own (and annotates some frames only
    in part): trained on as it comes, it would teach tracking wrong; relabelled with the tracking truth's ids (as
    sam2_model.train.ctc_training does) it passes, and the part-annotated frame 9 marks its other cells unknown."""
    used = sorted(int(path.stem[-3:]) for path in (MSC / "01_GT" / "SEG").glob("man_seg*.tif"))
    segmentation = np.stack([tifffile.imread(MSC / "01_GT" / "SEG" / f"man_seg{t:03d}.tif") for t in used])
    tracking = np.stack([tifffile.imread(MSC / "01_GT" / "TRA" / f"man_track{t:03d}.tif") for t in used])
    with pytest.raises(ValueError, match="object ids do not follow the cells"):
        check_ids_follow_cells(segmentation, np.arange(len(used)))
    relabelled = np.stack([tracking_ids(seg, track) for seg, track in zip(segmentation, tracking)])
    check_ids_follow_cells(relabelled, np.arange(len(used)))
    # without the tracking truth, linking by overlap never joins two cells (it may break one into several tracks)
    linked = link_by_overlap(segmentation)
    check_ids_follow_cells(linked, np.arange(len(used)))
    cells = relabelled > 0
    pairs = set(zip(linked[cells].tolist(), relabelled[cells].tolist()))
    assert len({a for a, _ in pairs}) == len(pairs)
    # those frames stacked as they come pass the majority rule but hand ids from cell to cell (found by hand: frame
    # 5's cell 6 is numbered 5 on frame 7, and 6 is another cell there); training on them lost tracked IoU 0.36 -> 0.11
    stacked = np.zeros((20,) + segmentation.shape[1:], segmentation.dtype)
    for t in (5, 7, 9, 11, 19):
        stacked[t] = segmentation[used.index(t)]
    assert all(pair.relabelled * 2 <= pair.matched for pair in relabelled_cells(stacked, annotated_frames(stacked)))
    with pytest.raises(ValueError, match=r"between frames 5 and 7, a cell that stays in place handed its id to another "
                                         r"cell \(for example the cell with id 6 on frame 5 has id 5 on frame 7"):
        StackClips(stacked, stacked, 4, 256, 8)
    StackClips(stacked, tracking_ids_stack(stacked, used, tracking), 4, 256, 8)  # with tracking ids: accepted
    # the fine-tuning example's frames 5, 7, 9, 11 and 19: frame 9 annotates 2 of its 8 cells
    part = relabelled[[used.index(t) for t in (5, 7, 9, 11, 19)]]
    spans, order = annotated_spans(part), np.arange(5)
    missing_on_9 = [i for i, (first, last) in spans.items() if first < 2 < last and not (part[2] == i).any()]
    assert len(missing_on_9) >= 5
    for obj_id in missing_on_9:
        assert not_annotated((part == obj_id).any(axis=(1, 2)), order, [obj_id], spans).tolist() == [
            False, False, True, False, False]


def tracking_ids_stack(stacked: np.ndarray, used: list, tracking: np.ndarray) -> np.ndarray:
    """``stacked`` (T, H, W) per-frame segmentation truth with each annotated frame's cells given tracking ids."""
    out = np.zeros_like(stacked)
    for t in annotated_frames(stacked):
        out[t] = tracking_ids(stacked[t], tracking[used.index(int(t))])
    return out


def test_an_id_handed_to_another_cell_is_refused_but_a_cell_that_leaps_is_not():
    movie = make_timelapse(num_frames=4, shape=(96, 96), num_cells=4, seed=8, radius_fraction=0.1)
    labels = movie.labels.astype(np.int32)
    ids = [int(i) for i in np.unique(labels[2]) if i]
    a, b = ids[0], ids[1]
    swapped = labels.copy()  # from frame 2 on, two cells are numbered the other way round
    swapped[2:] = np.where(labels[2:] == a, b, np.where(labels[2:] == b, a, labels[2:]))
    pair = relabelled_cells(swapped, annotated_frames(swapped))[1]
    assert (pair.first, pair.second, pair.moved) == (1, 2, 2) and pair.relabelled * 2 <= pair.matched
    with pytest.raises(ValueError, match=rf"between frames 1 and 2, 2 cells that stay in place handed their id to "
                                         rf"another cell \(for example the cell with id {a} on frame 1 has id {b}"):
        check_ids_follow_cells(swapped, annotated_frames(swapped))
    # a cell that leaps away from its place keeps its id: nothing to refuse
    leapt = labels.copy()
    mask = leapt[3] == a
    leapt[3][mask] = 0
    leapt[3][np.roll(mask, 40, axis=1) & (leapt[3] == 0)] = a
    assert relabelled_cells(leapt, annotated_frames(leapt))[2].moved == 0
    check_ids_follow_cells(leapt, annotated_frames(leapt))
    # blank frames between the annotated ones: the message names the stack's frames, not the annotated ones' order
    sparse = np.zeros((8,) + labels.shape[1:], labels.dtype)
    sparse[[0, 6]] = swapped[[1, 2]]
    with pytest.raises(ValueError, match=r"between frames 0 and 6, 2 cells"):
        StackClips(np.zeros(sparse.shape, np.uint8), sparse, 2, 96, 4)


def test_an_image_given_as_labels_is_refused_by_name():
    movie = make_timelapse(num_frames=3, shape=(64, 64), num_cells=3, seed=4, radius_fraction=0.12)
    image = movie.image.astype(np.uint16) + 1  # a grey image: every pixel has a value, none is background
    with pytest.raises(ValueError, match=r"labels have no background: not one pixel is 0 on any of their 3 frames "
                                         r"\(\d+ distinct values on the first\), so they look like an image"):
        StackClips(movie.image, image, 2, 64, 3)


def test_one_annotated_image_is_a_stack_of_one_frame():
    movie = make_timelapse(num_frames=1, shape=(64, 64), num_cells=3, seed=4, radius_fraction=0.12)
    clips = StackClips(movie.image[0], movie.labels[0], 8, 64, 2, seed=1)
    assert clips.clip_len == 1 and clips.total_frames == 1
    clip = next(iter(clips))
    assert clip.num_frames == 1 and clip.num_objects == 2 and clip.unknown is None
    with pytest.raises(ValueError, match=r"\(T, H, W\) grey frames or one \(H, W\) grey image, got shape \(2, 64, 64, 3\)"):
        StackClips(np.zeros((2, 64, 64, 3)), np.zeros((2, 64, 64, 3), np.int32), 8, 64, 2)


def test_linking_by_overlap_gives_painted_labels_the_ids_of_tracked_ones():
    movie = make_timelapse(num_frames=6, shape=(128, 128), seed=5)
    blanked = movie.labels.copy()
    blanked[2] = 0  # a blank frame stays blank and is walked over
    painted = _painted_frame_by_frame(blanked)
    linked = link_by_overlap(painted)
    assert not linked[2].any()
    # one linked id for each true cell, the same on every frame (whatever the numbers)
    cells = blanked > 0
    pairs = set(zip(linked[cells].tolist(), blanked[cells].tolist()))
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(np.unique(blanked[cells]))
    check_ids_follow_cells(linked, annotated_frames(linked))
    clips = StackClips(movie.image, painted, 3, 64, 2, seed=1, link_ids=True)
    assert clips.link_ids and next(iter(clips)).num_frames == 3


def test_linking_takes_the_best_overlap_once_and_starts_a_new_track_for_a_cell_from_nowhere():
    labels = np.zeros((2, 20, 40), np.int32)
    labels[0, 2:10, 2:10] = 4
    labels[1, 2:10, 3:11] = 1  # cell 4 moved a pixel
    labels[1, 2:10, 5:6] = 2  # a sliver of it: a worse overlap, and 4 is taken
    labels[1, 12:18, 30:36] = 3  # a cell from nowhere
    linked = link_by_overlap(labels)
    assert set(np.unique(linked[1][labels[1] == 1])) == {4}
    new_ids = {int(linked[1][labels[1] == j][0]) for j in (2, 3)}
    assert len(new_ids) == 2 and not new_ids & {4}


def test_linking_pairs_cells_for_the_largest_total_overlap():
    """Cells 1 (columns 0-9) and 2 (10-19) become one over columns 3-15 and one over 0-2. Best overlap first would give
    the first to cell 1 (IoU 0.44) and leave the second a new track; the pairing of largest total IoU keeps both
    tracks: cell 1 -> columns 0-2 (0.30), cell 2 -> columns 3-15 (0.35)."""
    labels = np.zeros((2, 4, 24), np.int32)
    labels[0, :, 0:10], labels[0, :, 10:20] = 1, 2
    labels[1, :, 3:16], labels[1, :, 0:3] = 7, 8
    linked = link_by_overlap(labels)
    assert set(np.unique(linked[1][:, 0:3])) == {1} and set(np.unique(linked[1][:, 3:16])) == {2}


def test_label_images_are_taken_as_whole_number_ids_or_refused_by_name():
    """A 32-bit float label image of whole numbers (as Fiji saves them) trains like its integer twin; fractions,
    negative ids and boolean masks are refused with what is accepted."""
    movie = make_timelapse(num_frames=3, shape=(64, 64), num_cells=3, seed=4, radius_fraction=0.12)
    as_float = StackClips(movie.image, movie.labels.astype(np.float32), 2, 64, 2, seed=1)
    as_int = StackClips(movie.image, movie.labels, 2, 64, 2, seed=1)
    np.testing.assert_array_equal(as_float.labels, as_int.labels)
    assert np.issubdtype(as_float.labels.dtype, np.integer)
    half = movie.labels.astype(np.float32)
    half[half == 1] = 1.5
    with pytest.raises(ValueError, match="labels must be whole-number instance ids; this float32 image holds 1.5"):
        StackClips(movie.image, half, 2, 64, 2)
    with pytest.raises(ValueError, match=r"labels must be instance ids >= 0 .* they hold -\d"):
        StackClips(movie.image, -movie.labels.astype(np.int16), 2, 64, 2)
    with pytest.raises(ValueError, match="got a boolean mask: give each cell its own id"):
        StackClips(movie.image, movie.labels > 0, 2, 64, 2)
