"""CTC measures through py-ctcmetrics on synthetic ground truth written in CTC layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import evaluate_ctc, read_ctc, write_ctc, write_ctc_ground_truth
from sam2_model.tracking.lineage import Lineage, Track


@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory) -> Path:
    tl = make_timelapse(num_frames=14, shape=(128, 128), num_cells=6, seed=900_021)
    return write_ctc_ground_truth(tmp_path_factory.mktemp("gt") / "01_GT", tl.labels, tl.parents)


def test_ground_truth_scores_perfectly(ground_truth: Path, tmp_path: Path) -> None:
    labels, lineage = read_ctc(ground_truth / "TRA")
    res, _ = write_ctc(tmp_path / "res", labels, lineage)
    m = evaluate_ctc(res, ground_truth)
    assert m["Valid"] == 1 and m["SEG"] == 1 and m["DET"] == 1 and m["TRA"] == 1
    assert m["gt_divisions"] >= 1 and m["division_recall"] == 1


def test_errors_lower_the_measures(ground_truth: Path, tmp_path: Path) -> None:
    labels, lineage = read_ctc(ground_truth / "TRA")
    eroded = labels.copy()
    eroded[:, ::3] = 0  # every third row lost: worse SEG, detections kept
    res, _ = write_ctc(tmp_path / "eroded", eroded, lineage)
    m = evaluate_ctc(res, ground_truth)
    assert 0.3 < m["SEG"] < 0.95 and m["DET"] > 0.9
    # forget every division: daughters carry no parent -> fewer correct divisions and a lower TRA
    orphans = Lineage([Track(t.track_id, t.begin, t.end, 0, t.end_reason) for t in lineage.rows()])
    res, _ = write_ctc(tmp_path / "orphans", labels, orphans)
    m = evaluate_ctc(res, ground_truth)
    assert m["division_recall"] == 0 and m["TRA"] < 1
    # one cell missing on every frame
    first = int(np.unique(labels[0])[1])
    missing = np.where(labels == first, 0, labels)
    res, _ = write_ctc(tmp_path / "missing", missing, lineage)
    assert evaluate_ctc(res, ground_truth)["DET"] < 1


def test_bad_folders_name_the_argument(tmp_path: Path, ground_truth: Path) -> None:
    with pytest.raises(ValueError, match="result_dir"):
        evaluate_ctc(tmp_path, ground_truth)
    labels, lineage = read_ctc(ground_truth / "TRA")
    res, _ = write_ctc(tmp_path / "res", labels, lineage)
    with pytest.raises(ValueError, match="gt_dir"):
        evaluate_ctc(res, tmp_path / "nothing")


def test_a_missing_folder_is_said_to_be_missing(tmp_path: Path, ground_truth: Path) -> None:
    """`napari-sam2 evaluate nope/ gt/` said "result_dir nope must hold res_track.txt ..." (explorer X9)."""
    with pytest.raises(ValueError, match="result_dir .*nope does not exist"):
        evaluate_ctc(tmp_path / "nope", ground_truth)
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match="gt_dir .*a_file is a file"):
        evaluate_ctc(tmp_path, tmp_path / "a_file")
