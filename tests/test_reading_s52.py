"""Reading stacks as microscopes write them, and scoring part of a movie (session 52, G3).

- A folder of one CYX (or ZYX) TIFF per time point is one stack for batch as for ``track``, its channel axis found
  from the files' own axes; an OME-Zarr's channel axis is found from its ``multiscales`` axes as an OME-TIFF's is.
- FrameView reads only the channel a FrameSource picks (not every channel of the plane), once per frame and pass.
- evaluate_ctc(frames=) / ``evaluate --frames A-B``: a result of part of a longer movie scored against the ground
  truth cut to those frames gives the scores of a ground truth made by hand from those frames alone.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2.batch_inputs import find_stacks
from napari_sam2.layout import FrameView, StackLayout
from sam2_model.frames import FrameSource
from sam2_model.frames_io import open_stack
from sam2_model.synthetic import make_timelapse
from sam2_model.tracking import evaluate_ctc, read_ctc, write_ctc, write_ctc_ground_truth

FIRST, LAST = 3, 10  # frames 3-10 of 14: cell 3 divides at 8 (into 9, 10); 7 and 8 lose their parent (1 ends at 0)


@pytest.fixture(scope="module")
def movie():
    return make_timelapse(num_frames=14, shape=(128, 128), num_cells=6, seed=900_021)


@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory, movie) -> Path:
    return write_ctc_ground_truth(tmp_path_factory.mktemp("gt") / "01_GT", movie.labels, movie.parents)


@pytest.fixture(scope="module")
def hand_cut(tmp_path_factory, movie) -> Path:
    """The ground truth of frames 3-10 written from those frames alone (parents that are not in them left out)."""
    part = movie.labels[FIRST:LAST + 1]
    present = set(np.unique(part).tolist())
    parents = {child: parent for child, parent in movie.parents.items() if child in present and parent in present}
    return write_ctc_ground_truth(tmp_path_factory.mktemp("hand") / "01_GT", part, parents)


def _eroded(labels: np.ndarray) -> np.ndarray:
    out = labels.copy()
    out[:, ::3] = 0  # every third row lost: SEG below 1, the same rows in every frame
    return out


def test_part_of_a_movie_scores_as_a_hand_cut_ground_truth(ground_truth: Path, hand_cut: Path, tmp_path: Path) -> None:
    labels, lineage = read_ctc(hand_cut / "TRA")
    res, _ = write_ctc(tmp_path / "res", _eroded(labels), lineage)
    by_hand = evaluate_ctc(res, hand_cut)
    assert 0.3 < by_hand["SEG"] < 0.99 and by_hand["gt_divisions"] == 1
    assert evaluate_ctc(res, ground_truth, frames=range(FIRST, LAST + 1)) == by_hand
    assert evaluate_ctc(res, ground_truth, frames=(FIRST, LAST)) == by_hand
    assert evaluate_ctc(res, ground_truth, frames=(np.int64(FIRST), np.int64(LAST))) == by_hand  # numpy ints (review)
    assert evaluate_ctc(res, ground_truth, frames=slice(FIRST, LAST + 1)) == by_hand
    # a result of the whole movie is cut to the same frames
    full, full_lineage = read_ctc(ground_truth / "TRA")
    whole, _ = write_ctc(tmp_path / "whole", _eroded(full), full_lineage)
    assert evaluate_ctc(whole, ground_truth, frames=range(FIRST, LAST + 1)) == by_hand


def test_a_result_of_fewer_frames_names_the_counts_and_the_option(ground_truth: Path, tmp_path: Path) -> None:
    labels, lineage = read_ctc(ground_truth / "TRA")
    first6 = labels[:6]
    res, _ = write_ctc(tmp_path / "res6", first6, lineage_of(first6, lineage))
    with pytest.raises(ValueError, match=r"has 6 frames .*has 14 .*frames=range\(6\).*--frames 0-5"):
        evaluate_ctc(res, ground_truth)
    with pytest.raises(ValueError, match=r"has 6 frames .*must have 8 frames .* or 14"):
        evaluate_ctc(res, ground_truth, frames=range(FIRST, LAST + 1))
    with pytest.raises(ValueError, match=r"within the ground truth's frames 0-13"):
        evaluate_ctc(res, ground_truth, frames=range(10, 16))
    assert evaluate_ctc(res, ground_truth, frames=range(6))["SEG"] == 1.0


def lineage_of(labels: np.ndarray, lineage):
    """The lineage of the first len(labels) frames: tracks clipped to them (CTC's rules, by hand)."""
    from sam2_model.tracking.lineage import Lineage, Track

    last = len(labels) - 1
    rows = [t for t in lineage.rows() if t.begin <= last]
    kept = {t.track_id for t in rows}
    return Lineage([Track(t.track_id, t.begin, min(t.end, last), t.parent if t.parent in kept else 0, t.end_reason)
                    for t in rows])


def test_cli_evaluate_frames(ground_truth: Path, hand_cut: Path, tmp_path: Path, capsys) -> None:
    from napari_sam2.cli import main

    labels, lineage = read_ctc(hand_cut / "TRA")
    res, _ = write_ctc(tmp_path / "res", _eroded(labels), lineage)
    assert main(["evaluate", str(res), str(ground_truth), "--frames", f"{FIRST}-{LAST}"]) == 0
    cut = capsys.readouterr().out
    assert main(["evaluate", str(res), str(hand_cut)]) == 0
    assert capsys.readouterr().out == cut and "SEG" in cut
    assert main(["evaluate", str(res), str(ground_truth)]) == 2
    assert "--frames 0-7" in capsys.readouterr().err
    assert main(["evaluate", str(res), str(ground_truth), "--frames", "0-2"]) == 2
    err = capsys.readouterr().err
    assert "--frames 0-2 chose 3" in err and "frames=" not in err
    with pytest.raises(SystemExit):
        main(["evaluate", str(res), str(ground_truth), "--frames", "5-2"])
    assert "--frames: takes A-B with 0 <= A <= B" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------- reading: files and axes
def _two_channels(frames: int = 4, size: int = 96):
    """(T, 2, Y, X) uint16: channel 0 a flipped decoy, channel 1 the cells; the truth and one click per cell."""
    movie = make_timelapse(num_frames=frames, shape=(size, size), num_cells=3, seed=5201, divisions=False,
                           enter_leave=False)
    cells = np.asarray(movie.image, dtype=np.uint16) * 200
    data = np.stack([cells[:, ::-1, ::-1], cells], axis=1)
    clicks = []
    for obj in np.unique(movie.labels[0])[1:]:
        ys, xs = np.nonzero(movie.labels[0] == obj)
        clicks.append((0, int(round(ys.mean())), int(round(xs.mean())), 1, int(obj)))
    return data, clicks


def _frames_folder(folder: Path, data: np.ndarray, axes: str) -> Path:
    folder.mkdir()
    for t, frame in enumerate(data):
        tifffile.imwrite(folder / f"t{t:03d}.tif", frame, metadata={"axes": axes})
    return folder


def _ome_zarr(path: Path, data: np.ndarray) -> Path:
    zarr = pytest.importorskip("zarr")
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    group.create_array("0", data=data, chunks=(1, 1) + data.shape[2:])
    group.attrs["multiscales"] = [{"version": "0.4", "axes": [
        {"name": "t", "type": "time"}, {"name": "c", "type": "channel"}, {"name": "y", "type": "space"},
        {"name": "x", "type": "space"}], "datasets": [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 1.0, 1.0, 1.0]}]}]}]
    return path


def test_a_folder_of_one_multichannel_tiff_per_time_point_is_one_stack(tmp_path: Path) -> None:
    data, _ = _two_channels()
    cyx = _frames_folder(tmp_path / "cyx", data, "CYX")
    zyx = _frames_folder(tmp_path / "zyx", data, "ZYX")
    assert find_stacks([cyx]) == [cyx]
    notes: list = []
    # batch keeps ZYX files apart (a folder of z-stacks, or of ImageJ stacks, looks the same); CYX frames are one stack
    assert find_stacks([tmp_path], notes=notes) == [cyx, *sorted(zyx.glob("*.tif"))]
    assert any(str(cyx) in note and "CYX" in note and "'" + str(cyx / "*.tif") + "'" in note for note in notes)
    assert [p.name for p in find_stacks(str(cyx / "*.tif"))] == [f"t{t:03d}.tif" for t in range(4)]  # one by one
    stack = open_stack(cyx)
    assert stack.shape == data.shape and stack.axes == "TCYX"
    np.testing.assert_array_equal(np.asarray(stack[2]), data[2])
    assert open_stack(zyx).axes == "TZYX"
    # multi-page TIFFs whose axes say nothing (tifffile's Q) or name time stay stacks of their own
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("a", "b"):
        tifffile.imwrite(plain / f"{name}.tif", data[:, 1], photometric="minisblack")
    timed = tmp_path / "timed"
    timed.mkdir()
    for name in ("a", "b"):
        tifffile.imwrite(timed / f"{name}.tif", data[:2], metadata={"axes": "TCYX"})
    assert [p.name for p in find_stacks([plain])] == ["a.tif", "b.tif"]
    assert [p.name for p in find_stacks([timed])] == ["a.tif", "b.tif"]
    assert getattr(open_stack(plain / "a.tif"), "axes", None) == "QYX"


def test_a_folder_of_movies_saved_by_imagej_or_as_ome_stays_separate_stacks(tmp_path: Path) -> None:
    """tifffile labels a plain (10, Y, X) movie saved with imagej=True or ome=True "CYX", and an ImageJ stack "ZYX":
    batch once read a folder of three such movies as one stack of 3 "time points" (review); they are three stacks."""
    for kind, options in (("imagej", dict(imagej=True)), ("ome", dict(ome=True)),
                          ("slices", dict(imagej=True, metadata={"axes": "ZYX"}))):
        folder = tmp_path / kind
        folder.mkdir()
        for name in ("movie_01", "movie_02", "movie_03"):
            tifffile.imwrite(folder / f"{name}.tif", np.zeros((10, 32, 32), np.uint8), **options)
        assert [p.name for p in find_stacks([folder])] == ["movie_01.tif", "movie_02.tif", "movie_03.tif"], kind


def test_track_finds_the_channel_axis_of_an_ome_zarr_and_of_a_cyx_frames_folder(tmp_path: Path) -> None:
    """`track --channel 1` without --channel-axis: the OME-Zarr's axes (c of type channel) and the frame files' own
    CYX axes say where the channels are, as an OME-TIFF's do; the labels are those of the array read with
    channel_axis=1, channel=1."""
    from napari_sam2 import segment
    from napari_sam2.cli import main

    data, clicks = _two_channels()
    prompts = tmp_path / "p.csv"
    prompts.write_text("frame,obj_id,y,x,label\n" + "".join(f"{f},{o},{y},{x},{lab}\n" for f, y, x, lab, o in clicks))
    expected = segment(data, clicks, channel_axis=1, channel=1, device="cpu", direction="forward")
    assert len(np.unique(expected)) == len(clicks) + 1
    for source in (_ome_zarr(tmp_path / "m.ome.zarr", data), _frames_folder(tmp_path / "frames", data, "CYX")):
        out = tmp_path / f"{source.name}.tif"
        assert main(["track", str(source), "--prompts", str(prompts), "-o", str(out), "--channel", "1",
                     "--device", "cpu", "--direction", "forward"]) == 0, source
        np.testing.assert_array_equal(tifffile.imread(out), expected)
    assert open_stack(tmp_path / "m.ome.zarr").axes == "TCYX"
    np.testing.assert_array_equal(segment(str(tmp_path / "m.ome.zarr"), clicks, channel=1, device="cpu",
                                          direction="forward"), expected)  # the console the same
    # batch: the frames folder (found as one stack) run by a worker with --channel 1 alone
    from napari_sam2.batch_worker import AxisOptions, ModelSpec, StackTask, process_stack

    (stack,) = find_stacks([tmp_path / "frames"])
    task = StackTask("frames", str(stack), str(tmp_path / "out"), ModelSpec("demo", "download", "cpu"),
                     prompts=str(prompts), axes=AxisOptions(channel=1), direction="forward")
    row = process_stack(task)
    assert row["status"] == "ok" and row["frames"] == len(data), row
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "frames" / "labels.tif"), expected)


# ----------------------------------------------------------------------------------------- reading: only what is used
class CountedReads:
    """A (T, C, Y, X) array that records every index it is read with."""

    def __init__(self, data: np.ndarray) -> None:
        self.data, self.shape, self.dtype, self.ndim = data, data.shape, data.dtype, data.ndim
        self.keys: list = []

    def __getitem__(self, key):
        self.keys.append(key)
        return self.data[key]


def test_frame_view_reads_only_the_channel_picked(tmp_path: Path) -> None:
    data, clicks = _two_channels(frames=6)
    counted = CountedReads(data)
    view = FrameView(counted, StackLayout(4, 0, channel_axis=1))
    source = FrameSource(view, image_size=256, channel=1, prefetch=0)
    for t in range(6):
        np.testing.assert_array_equal(source.raw(t), data[t, 1])
    assert [key[1] for key in counted.keys] == [1] * len(counted.keys) and counted.keys  # channel 0 is never read
    # in-plane indices read as asked, in the plane's (rows, cols, channels) order
    np.testing.assert_array_equal(view[2, 10:20, :, 0], data[2, 0, 10:20])
    np.testing.assert_array_equal(view[2, 5], np.moveaxis(data[2], 0, -1)[5])
    np.testing.assert_array_equal(view[2, :, 7, 0:2], np.moveaxis(data[2], 0, -1)[:, 7, 0:2])
    np.testing.assert_array_equal(view[-1, [1, 3]], np.moveaxis(data[5], 0, -1)[[1, 3]])
    np.testing.assert_array_equal(view[3], np.moveaxis(data[3], 0, -1))
    with pytest.raises(IndexError):
        view[6, 0]
    # a whole segment() pass: each frame's channel 1 read for the contrast sample and once for the model, the first
    # frame's once more for the input-size check (it reads what the model is shown: channel 1 alone); channel 0 never
    counted.keys.clear()
    from napari_sam2 import segment

    segment(counted, clicks[:1], channel_axis=1, channel=1, device="cpu", direction="forward")
    reads = collections.Counter((key[0], key[1] if isinstance(key[1], (int, np.integer)) else "all")
                                for key in counted.keys)
    assert reads[(0, 1)] <= 3 and all(reads[(t, 1)] <= 2 for t in range(1, 6)), reads
    assert sum(n for (t, c), n in reads.items() if c != 1) == 0, reads
