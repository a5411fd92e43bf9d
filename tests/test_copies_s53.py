"""Big time-lapses are never copied whole, and only the channel chosen is read: the labels TIFF of Track all's export,
``track --auto -o`` and batch --auto is written a plane at a time by the one writer, export.save_labels_tiff, from any
stack indexable by frame (the same bytes as its array); the ids' frame spans are counted plane by
plane, unsorted; the Tracks layer's refresh (after hand edits, Undo, a run) reads the masklets in place; batch and
``track --auto`` measure "auto" sizes on the chosen channel alone.

Memory is traced with tracemalloc (numpy reports its buffers to it); reads are counted with test_reads_s52's wrapper.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from sam2_model.tracking import Lineage, Track, tracks_layer_data
from sam2_model.tracking.lineage import consistent_labels
from napari_sam2.export import Calibration, save_labels_tiff
from napari_sam2.layout import FrameView
from napari_sam2.track_export import export_path, export_tracking

from test_big_labels import traced_peak
from test_exports_s52 import FRAMES, WIDGET_OBJECT, export_closure, files_of, masklets, tracking_of, warm_up
from test_reads_s52 import CountedReads, _nuclei

CAL = Calibration(pixel_size=(0.65, 0.65), length_unit="micrometer", frame_interval=300.0, time_unit="second",
                  origin=(0.0, 3.25, 1.3))


# ---------------------------------------------------------------- 1. labels TIFF written a plane at a time
def test_track_all_labels_export_holds_a_few_planes_and_writes_the_same_file(tmp_path):
    """Track all's labels TIFF export (the panel's worker steps and the console's export) stacked the CTC-consistent
    labels into one uint32 copy (30 + 4 planes traced over 30 frames): now a few planes; the file is the one the
    copied result gives, byte for byte. (The panel calls track_export's own functions: one writer.)"""
    from napari_sam2.track_export import export_tracking_steps

    labels = masklets()
    tracking = tracking_of(labels)
    closure, panel = export_closure(tracking)
    plane = labels[0].nbytes
    warm_up("labels", tmp_path / "warm")
    target = Path(export_path("labels", tmp_path / "lazy"))
    peak = traced_peak(lambda: list(export_tracking_steps(closure, "labels", target, calibration=CAL)))
    assert peak < 6 * plane, f"{peak / plane:.1f} planes traced over {FRAMES} frames (a copy of the stack is {FRAMES})"
    assert panel._painted == [5]
    copied = tmp_path / "copied.tif"
    export_tracking(tracking.result({WIDGET_OBJECT}), "labels", copied, calibration=CAL)
    assert files_of(target) == files_of(copied)
    console = tmp_path / "console.tif"
    peak = traced_peak(lambda: export_tracking(closure(), "labels", console, calibration=CAL))
    assert peak < 6 * plane, f"{peak / plane:.1f} planes traced (console export)"
    assert console.read_bytes() == copied.read_bytes()
    np.testing.assert_array_equal(labels, masklets())


@pytest.mark.parametrize("top, axes, calibration", [(7, None, None), (7, "TYX", CAL), (70_000, None, None),
                                                     (70_000, "TYX", CAL), (70_000, "ZYX", None)])
def test_labels_read_a_frame_at_a_time_are_written_as_the_whole_array_is(tmp_path, top, axes, calibration):
    """save_labels_tiff of a ConsistentLabels (an ImageJ hyperstack of uint16 planes; ids over 65535: a uint32
    OME-TIFF with its content UUID, or a plain TIFF) is its file of the whole array, byte for byte, traced in a few
    planes (it copied the stack whole first: 30 planes and more)."""
    labels = masklets()
    labels[labels == 2] = top
    consistent, _ = consistent_labels(labels, Lineage([Track(1, 0, FRAMES - 1), Track(top, 0, FRAMES - 1)]))
    plane = labels[0].nbytes
    save_labels_tiff(consistent, tmp_path / "warm.tif", axes, calibration)  # (tifffile's first-call allocations)
    seen = []
    peak = traced_peak(lambda: save_labels_tiff(consistent, tmp_path / "planes.tif", axes, calibration,
                                                lambda done, total: seen.append((done, total))))
    assert peak < 6 * plane, f"{peak / plane:.1f} planes traced over {FRAMES} frames"
    assert seen[-1] == (FRAMES, FRAMES) and len(seen) == FRAMES
    save_labels_tiff(np.asarray(consistent), tmp_path / "whole.tif", axes, calibration)
    assert (tmp_path / "planes.tif").read_bytes() == (tmp_path / "whole.tif").read_bytes()
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "planes.tif"), np.asarray(consistent))


class Frames:
    """A stack indexable by frame only (``stack[t]``, t an int), as a ConsistentLabels or a FramesView is; frame
    ``fail_at`` raises OSError from its ``fail_on``-th read on."""

    def __init__(self, array: np.ndarray, fail_at: int = -1, fail_on: int = 1) -> None:
        self.array, self.shape, self.dtype = array, array.shape, array.dtype
        self.fail_at, self.fail_on, self.reads = fail_at, fail_on, 0

    def __getitem__(self, t):
        if not isinstance(t, (int, np.integer)):
            raise TypeError(f"indexed by one frame only, got {t!r}")
        if t == self.fail_at:
            self.reads += 1
            if self.reads >= self.fail_on:
                raise OSError("disk gone")
        return self.array[t]


@pytest.mark.parametrize("dtype, axes, calibration", [(np.uint32, "TZYX", CAL), (np.uint16, "TZYX", None),
                                                      (np.int32, "ZTYX", CAL)])
def test_a_stack_of_volumes_read_a_frame_at_a_time_is_written_as_the_whole_array_is(tmp_path, dtype, axes,
                                                                                    calibration):
    """(T, Z, Y, X) labels read a frame (a volume) at a time: the file of the whole array, byte for byte (ImageJ
    TZYX hyperstack; ZTYX: the plain or OME TIFF), in a few frames' memory."""
    volumes = np.zeros((12, 3, 256, 256), dtype)
    for t in range(12):
        volumes[t, t % 3, 20 + t:60 + t, 30:90] = 1 + t % 4
        volumes[t, :, 150:170, 100 + 5 * t:130 + 5 * t] = 9
    frame = volumes[0].nbytes
    save_labels_tiff(Frames(volumes[:2]), tmp_path / "warm.tif", axes, calibration)
    peak = traced_peak(lambda: save_labels_tiff(Frames(volumes), tmp_path / "frames.tif", axes, calibration))
    assert peak < 3 * frame, f"{peak / frame:.1f} frames traced over 12"
    save_labels_tiff(volumes, tmp_path / "whole.tif", axes, calibration)
    assert (tmp_path / "frames.tif").read_bytes() == (tmp_path / "whole.tif").read_bytes()


@pytest.mark.parametrize("top", [7, 70_000])
def test_a_failed_plane_write_leaves_the_old_file(tmp_path, top):
    """A stack whose frame cannot be read part-way through the write (planes already written: no pass reads the stack
    before the write, whatever its ids) leaves the file that was there, and no temporary file."""
    labels = masklets()[:6]
    labels[labels == 2] = top
    for dtype, fail_on in ((np.uint16, 1), (np.uint32, 1)):
        if np.iinfo(dtype).max < top:
            continue
        (tmp_path / "l.tif").write_bytes(b"old")
        seen = []
        with pytest.raises(OSError, match="disk gone"):
            save_labels_tiff(Frames(labels.astype(dtype), fail_at=4, fail_on=fail_on), tmp_path / "l.tif", "TYX",
                             on_plane=lambda done, total: seen.append(done))
        assert seen == [1, 2, 3, 4]  # four planes written when frame 4 failed
        assert [p.name for p in tmp_path.iterdir()] == ["l.tif"] and (tmp_path / "l.tif").read_bytes() == b"old"


def test_track_export_and_auto_outputs_write_the_labels_tiff_a_plane_at_a_time(tmp_path):
    """export_tracking's "labels" and write_auto_outputs' default labels writer (``track --auto -o``; batch's
    write_labels_tiff calls the same) copied the consistent labels whole (np.asarray: 30 planes and more over 30
    frames): a few planes now, the same bytes; a frame that fails part-way through the write leaves the old file."""
    from sam2_model.tracking import TrackingResult
    from napari_sam2.batch_outputs import write_labels_tiff
    from napari_sam2.track_export import AutoOutputs, write_auto_outputs

    labels = masklets()
    lineage = Lineage([Track(1, 0, FRAMES - 1), Track(2, 0, FRAMES - 1), Track(5, 3, 6), Track(9, 0, FRAMES - 1)])
    plane = labels[0].nbytes
    warm_up("labels", tmp_path / "warm")
    consistent, _ = consistent_labels(labels, lineage)
    save_labels_tiff(np.asarray(consistent), tmp_path / "whole.tif", "ZYX", CAL)
    peak = traced_peak(lambda: export_tracking(TrackingResult(labels, lineage), "labels", tmp_path / "export.tif",
                                               calibration=CAL))
    assert peak < 6 * plane, f"{peak / plane:.1f} planes traced over {FRAMES} frames (export_tracking)"
    save_labels_tiff(np.asarray(consistent), tmp_path / "whole_tyx.tif", None, CAL)
    assert (tmp_path / "export.tif").read_bytes() == (tmp_path / "whole_tyx.tif").read_bytes()
    auto = tmp_path / "auto.tif"
    peak = traced_peak(lambda: write_auto_outputs(labels, lineage, AutoOutputs(labels=auto), calibration=CAL,
                                                  labels_axes="ZYX"))
    assert peak < 6 * plane, f"{peak / plane:.1f} planes traced over {FRAMES} frames (write_auto_outputs)"
    assert auto.read_bytes() == (tmp_path / "whole.tif").read_bytes()
    peak = traced_peak(lambda: write_labels_tiff(consistent, tmp_path / "batch.tif", "z", CAL))
    assert peak < 6 * plane, f"{peak / plane:.1f} planes traced (batch_outputs.write_labels_tiff)"
    assert (tmp_path / "batch.tif").read_bytes() == (tmp_path / "whole.tif").read_bytes()

    before = auto.read_bytes()  # frame 7 read once by consistent_labels, then fails as the TIFF is written
    with pytest.raises(OSError, match="disk gone"):
        write_auto_outputs(Frames(labels, fail_at=7, fail_on=2), lineage, AutoOutputs(labels=auto),
                           calibration=CAL, labels_axes="ZYX")
    assert auto.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("auto")) == ["auto.tif"]


# ---------------------------------------------------------------- 2. id spans without sorting a copy of the planes
def _spans_by_unique(labels: np.ndarray) -> dict:
    spans: dict = {}
    for t, plane in enumerate(labels):
        for i in np.unique(plane).tolist():
            if i:
                spans[int(i)] = (spans.get(int(i), (t, t))[0], t)
    return spans


def test_id_spans_count_each_plane_without_a_sorted_copy():
    """id_spans sorted a copy of every plane (np.unique: one plane and more traced): the values of a mostly-empty
    plane are now picked out and counted (under 3/4 of a plane), a covered one counted in blocks; the spans, and their
    order, are np.unique's."""
    from napari_sam2.track_edits import id_spans

    sparse = np.zeros((4, 1024, 1024), np.uint32)
    sparse[:, 100:300, 100:300] = 3
    sparse[1:3, 500:700, 600:650] = 70_000
    sparse[2, 900:950, 10:60] = 1
    plane = sparse[0].nbytes
    id_spans(sparse[:1])
    peak = traced_peak(lambda: id_spans(sparse))
    assert peak < 0.75 * plane, f"{peak / plane:.2f} planes traced (np.unique sorted a copy of each: 1 and more)"
    assert list(id_spans(sparse).items()) == list(_spans_by_unique(sparse).items())
    dense = np.random.default_rng(0).integers(0, 5000, (3, 1024, 1024)).astype(np.uint32)
    peak = traced_peak(lambda: id_spans(dense))
    assert peak < 1.0 * plane, f"{peak / plane:.2f} planes traced for covered planes"
    assert list(id_spans(dense).items()) == list(_spans_by_unique(dense).items())
    huge = (dense[:, :64, :64].astype(np.uint64) << 33)  # ids past the counted range: still found
    assert list(id_spans(huge).items()) == list(_spans_by_unique(huge).items())


# ---------------------------------------------------------------- 3. the Tracks layer refreshed without a copy
def test_the_tracks_refresh_reads_the_masklets_in_place():
    """derived_tracks (the end of a run, Undo) and the follow of hand edits (_followed) made a copy of the masklets
    (TrackAll.result; 30 planes traced over 30 frames): they now read them a frame at a time, with the same
    hand-painted ids, Tracks data and graph, lineage and frame checksums as from the copy."""
    from napari_sam2 import track_edits
    from napari_sam2._track_all_edits_mixin import _checksum, _followed, derived_tracks

    labels = masklets()
    tracking = tracking_of(labels)
    tracking.lineage = Lineage(list(tracking.lineage.rows()) + [Track(7, 0, 3, 2, "divided")])  # no pixels: dropped
    plane = labels[0].nbytes
    derived_tracks(tracking, {WIDGET_OBJECT})
    peak = traced_peak(lambda: derived_tracks(tracking, {WIDGET_OBJECT}))
    assert peak < 8 * plane, f"{peak / plane:.1f} planes traced over {FRAMES} frames (derived_tracks)"
    untracked, (data, graph) = derived_tracks(tracking, {WIDGET_OBJECT})
    copied = tracking.result({WIDGET_OBJECT})
    want_data, want_graph = tracks_layer_data(copied)
    assert untracked == set(tracking.untracked_ids(copied)) == {5}
    np.testing.assert_array_equal(data, want_data)
    assert graph == want_graph

    peak = traced_peak(lambda: _followed(tracking, {WIDGET_OBJECT}))
    assert peak < 8 * plane, f"{peak / plane:.1f} planes traced over {FRAMES} frames (_followed)"
    lineage, result, (data, graph), checksums = _followed(tracking, {WIDGET_OBJECT})
    want_lineage, want_result = track_edits.followed(tracking, {WIDGET_OBJECT})
    assert lineage.rows() == want_lineage.rows() and result.lineage.rows() == want_result.lineage.rows()
    assert 7 not in lineage
    want_data, want_graph = tracks_layer_data(want_result)
    np.testing.assert_array_equal(data, want_data)
    assert graph == want_graph
    assert checksums == {t: _checksum(tracking.plane(t)) for t in range(FRAMES)}


def test_lazy_tracks_layer_data_reads_a_painted_frame_as_it_is_now():
    """The Tracks data of a lazy result whose frame was painted after its first read: the frame as it is now (the
    follow that the stroke asks for catches the lineage up), not a LabelsChanged failure."""
    from napari_sam2._tracks_layer import lazy_tracks_layer_data

    labels = masklets()
    tracking = tracking_of(labels)
    result = tracking.result({WIDGET_OBJECT}, lazy=True)  # every frame read once (the spans)
    labels[4, 200:230, 200:230] = 2  # track 2 now has two pieces on frame 4
    data, _ = lazy_tracks_layer_data(result)
    want, _ = tracks_layer_data(dataclasses.replace(result, labels=tracking.result({WIDGET_OBJECT}).labels))
    np.testing.assert_array_equal(data, want)


# ---------------------------------------------------------------- 4. only the chosen channel read
def _frames(counted: CountedReads, channel: int):
    """A batch task's Frames of a (T, C, Y, X) stack read along axis 0, channel ``channel`` (as open_frames makes)."""
    from napari_sam2.api import resolve_axes
    from napari_sam2.batch_worker import Frames, view_layout

    axes = resolve_axes(counted.shape, channel_axis=1, channel=channel)
    view = FrameView(counted, axes.layout)
    return Frames(counted, view, view_layout(view.ndim), dict(axes.session_options))


def test_batch_auto_size_and_prompts_read_the_chosen_channel_alone(tmp_path):
    """batch's image_size "auto" for prompts, and the object window segment_stack measures, read channel 1 alone of a
    (T, C, Y, X) stack (they read every channel of the frame, then picked one)."""
    import sam2_model as sm
    from napari_sam2.batch_worker import ModelSpec, StackTask, auto_size, segment_stack
    from napari_sam2.prompts import FramePrompt

    data, centres = _nuclei(frames=3, side=128, objects=2)
    counted = CountedReads(data)
    task = StackTask("s0", str(tmp_path / "s0.tif"), str(tmp_path / "out"),
                     ModelSpec(model="demo", checkpoint=None, device="cpu", image_size="auto"))
    choice = auto_size(task, _frames(counted, 1), 2)
    assert choice is not None and choice.frame_shape == (128, 128)
    assert counted.reads() == {(2, 1): 1}, counted.keys

    counted.keys.clear()
    model = sm.build_model("demo", device="cpu", image_size=256)
    (y, x) = centres[0]
    prompts = [FramePrompt(frame=0, obj_id=1, points=np.array([[x, y]]), labels=np.array([1]))]
    labels = np.zeros((3, 128, 128), np.uint32)
    segment_stack(model, _frames(counted, 1), prompts, labels, object_window="auto", direction="forward")
    assert counted.keys and all(key[1] == 1 for key in counted.keys), counted.keys
    assert labels[0, int(round(y)), int(round(x))] == 1


def test_track_auto_measures_the_start_frame_on_the_chosen_channel_alone(tmp_path, monkeypatch):
    """``track --auto --channel-axis 1 --channel 1`` read every channel of its start frame to measure image_size
    "auto": channel 1 alone now (the command stopped right after the measure)."""
    import contextlib

    from napari_sam2 import cli

    data, _ = _nuclei(frames=3, side=128, objects=2)
    tifffile.imwrite(tmp_path / "s.tif", data, photometric="minisblack")
    counted = CountedReads(data)
    measured = []

    @contextlib.contextmanager
    def opened(path):
        yield counted, False

    def stop(value, frame, *args, **kwargs):
        measured.append(np.array(frame))
        raise RuntimeError("stopped after the measure")

    monkeypatch.setattr(cli, "opened_stack", opened)
    monkeypatch.setattr(cli, "pick_image_size", stop)
    code = cli.main(["track", str(tmp_path / "s.tif"), "--auto", "--channel-axis", "1", "--channel", "1",
                     "--start-frame", "1", "--ctc", str(tmp_path / "ctc"), "--model", "demo", "--device", "cpu",
                     "--image-size", "auto"])
    assert code == 2 and len(measured) == 1
    np.testing.assert_array_equal(measured[0], data[1, 1])
    assert not [key for key in counted.keys if not isinstance(key[1], (int, np.integer))], counted.keys
    assert (1, 1) in counted.reads()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
