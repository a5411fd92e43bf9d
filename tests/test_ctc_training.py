"""Fine-tuning on Cell Tracking Challenge ground truth: the segmented frames under tracking ids, with the lineage."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from sam2_model.synthetic import make_timelapse
from sam2_model.tracking.ctc_io import read_ctc, write_ctc_ground_truth
from sam2_model.train.__main__ import main as train_main
from sam2_model.train.ctc_training import read_ctc_training, segmented_frames, tracking_ids

SEGMENTED = [0, 2, 5, 7]


@pytest.fixture
def ctc_sequence(tmp_path):
    """A CTC sequence folder (01) and its ground truth (01_GT) from a synthetic movie with a division: the
    segmentation truth of frames 0, 2, 5 and 7 numbered frame by frame in another order (as the challenge's is),
    frame 5 segmenting some cells only."""
    movie = make_timelapse(num_frames=8, shape=(64, 64), num_cells=4, seed=1, radius_fraction=0.12)
    assert movie.parents  # 6 and 7 are daughters of 2
    (tmp_path / "01").mkdir()
    for t, frame in enumerate(movie.image):
        tifffile.imwrite(tmp_path / "01" / f"t{t:03d}.tif", frame)
    write_ctc_ground_truth(tmp_path / "01_GT", movie.labels, movie.parents, seg_frames=SEGMENTED)
    tracked, _ = read_ctc(tmp_path / "01_GT" / "TRA")
    for t in SEGMENTED:
        path = tmp_path / "01_GT" / "SEG" / f"man_seg{t:03d}.tif"
        truth = tifffile.imread(path)
        ids = np.unique(truth[truth > 0])[::-1]  # numbered on its own, backwards
        renumbered = np.zeros_like(truth)
        for number, obj_id in enumerate(ids[: 2 if t == 5 else None], start=1):
            renumbered[truth == obj_id] = number
        tifffile.imwrite(path, renumbered)
    return tmp_path, movie, tracked


def test_segmented_frames_take_their_cells_tracking_ids_and_the_lineage(ctc_sequence):
    folder, movie, tracked = ctc_sequence
    data = read_ctc_training(folder / "01", folder / "01_GT")
    assert data.frames == SEGMENTED == segmented_frames(folder / "01_GT")
    np.testing.assert_array_equal(data.stack, movie.image[SEGMENTED])
    for t, labels in zip(SEGMENTED, data.labels):
        if t == 5:  # two cells segmented, each under its tracking id; the others not annotated
            assert len(np.unique(labels[labels > 0])) == 2
            assert np.all((labels == 0) | (labels == tracked[t]))
        else:
            np.testing.assert_array_equal(labels, tracked[t])
    _, lineage = read_ctc(folder / "01_GT" / "TRA")
    assert data.parents == {track.track_id: track.parent for track in lineage if track.parent} != {}
    assert read_ctc_training(folder / "01", folder / "01_GT", first=1, last=5).frames == [2, 5]


def test_tracking_ids_drop_a_segmented_cell_no_tracked_cell_overlaps():
    segmentation = np.zeros((8, 8), np.int32)
    segmentation[1:3, 1:3], segmentation[5:7, 5:7] = 1, 2
    tracking = np.zeros((8, 8), np.int32)
    tracking[1:3, 1:4] = 9
    expected = np.where(segmentation == 1, 9, 0)
    np.testing.assert_array_equal(tracking_ids(segmentation, tracking), expected)


def test_wrong_folders_are_refused_by_name(ctc_sequence):
    folder, _, _ = ctc_sequence
    with pytest.raises(ValueError, match="is not Cell Tracking Challenge ground truth: it needs SEG/man_seg"):
        read_ctc_training(folder / "01", folder / "01")
    with pytest.raises(ValueError, match=r"segments no frame in \[20, 30\]"):
        read_ctc_training(folder / "01", folder / "01_GT", first=20, last=30)
    (folder / "01" / "t005.tif").unlink()
    with pytest.raises(ValueError, match=r"frames \[5\] have segmentation truth but no t%03d.tif"):
        read_ctc_training(folder / "01", folder / "01_GT")


def test_the_command_fine_tunes_on_ctc_ground_truth_and_says_so(ctc_sequence, capsys):
    folder, _, _ = ctc_sequence
    code = train_main(["--out", str(folder / "run"), "--image-size", "64", "--stack", str(folder / "01"),
                       "--labels", str(folder / "01_GT"), "--steps", "2", "--clip-len", "3", "--clips-per-step", "1",
                       "--threads", "1"])
    assert code == 0
    metadata = json.loads((folder / "run" / "weights.json").read_text())
    assert ("Cell Tracking Challenge ground truth: the segmentation truth of frames 0, 2, 5, 7, each cell under its "
            "tracking id") in metadata["data"]
    assert metadata["stack_check"]["frames"] == 4
